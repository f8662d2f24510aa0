/// A command that could not do its work, though its command line was right:
/// printed as `Error: <message>` without a usage line (that is for mistakes
/// on the command line, `ValidationError`, exit 64), exiting with `exitCode`.
struct CLIFailure: Error, CustomStringConvertible {
    let message: String
    let exitCode: Int32

    var description: String { message }

    /// The server refused, the work failed: exit 1.
    static func runtime(_ message: String) -> CLIFailure { CLIFailure(message: message, exitCode: 1) }

    /// An input file that does not exist or cannot be read: sysexits' EX_NOINPUT, 66.
    static func noInput(_ message: String) -> CLIFailure { CLIFailure(message: message, exitCode: 66) }

    /// The configuration, or a file it names, cannot be used: sysexits' EX_CONFIG, 78.
    static func configuration(_ message: String) -> CLIFailure { CLIFailure(message: message, exitCode: 78) }
}
