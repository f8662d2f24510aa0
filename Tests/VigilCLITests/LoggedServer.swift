import Foundation
import Testing

/// A `vigil serve` process whose standard error (and output) go to files, so
/// a test can read its log while it runs: after a SIGHUP, after a call.
final class LoggedServer {
    let process = Process()
    let logPath: String
    let outputPath: String
    let port: Int

    /// `openFiles`: the server starts with these limits on open files
    /// (through a shell's `ulimit`, which then execs it in the same process).
    init(arguments: [String], directory: String, openFiles: (soft: Int, hard: Int?)? = nil) throws {
        logPath = directory + "/server.log"
        outputPath = directory + "/server.out"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        let serve = ["serve", "--handshake-timeout", "120"] + arguments
        if let openFiles {
            let hard = openFiles.hard.map { "; ulimit -Hn \($0)" } ?? ""
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "ulimit -Sn \(openFiles.soft)\(hard) && exec \"$0\" \"$@\"", VigilBinary.url.path] + serve
        } else {
            process.executableURL = VigilBinary.url
            process.arguments = serve
        }
        process.standardError = FileHandle(forWritingAtPath: logPath)
        process.standardOutput = FileHandle(forWritingAtPath: outputPath)
        try process.run()
        var found: Int?
        let log = try Self.eventually(process: process, read: { (try? String(contentsOfFile: directory + "/server.log", encoding: .utf8)) ?? "" }) { log in
            guard let range = log.range(of: "listening on 127.0.0.1:") else { return false }
            let digits = log[range.upperBound...].prefix { $0.isNumber }
            guard log[range.upperBound...].dropFirst(digits.count).first != nil else { return false }
            found = Int(digits)
            return true
        }
        guard let found else { throw CLITestError("the server did not start: \(log)") }
        port = found
    }

    var address: String { "127.0.0.1:\(port)" }
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
    var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }

    /// Waits (up to two minutes: a loaded machine) until the log satisfies `condition`; returns the log.
    @discardableResult
    func waitForLog(_ what: String, _ condition: (String) -> Bool) throws -> String {
        let path = logPath
        let log = try Self.eventually(process: process, read: { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }, condition)
        guard condition(log) else { throw CLITestError("the server never logged \(what); its log:\n\(log)") }
        return log
    }

    func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// SIGTERM, then wait; the exit status.
    @discardableResult
    func stop() -> Int32 {
        process.terminate()
        process.waitUntilExit()
        return process.terminationStatus
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// Polls `read()` until `condition` holds, the process exits, or two minutes pass.
    private static func eventually(process: Process, read: () -> String, _ condition: (String) -> Bool) throws -> String {
        let deadline = Date().addingTimeInterval(120)
        while true {
            let text = read()
            if condition(text) || !process.isRunning || Date() > deadline { return text }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }
}

/// A file's permission bits.
func fileMode(_ path: String) throws -> Int {
    try #require(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
}
