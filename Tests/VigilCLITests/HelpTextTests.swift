import Foundation
import Testing

/// `--help` is where most people first read about a command, so its prose
/// must read as paragraphs. ArgumentParser wraps each source line on its own
/// at 79 columns: a discussion written as hard-wrapped lines of about 90
/// came out ragged ("sends --events" / "events in batches of…"). Prose lines
/// are therefore joined in the source (a trailing `\`), and line breaks are
/// kept only where a new topic starts.
@Suite("Help text")
struct HelpTextTests {
    /// Every command path of `executable`, found through the SUBCOMMANDS
    /// sections of its help, the root included (as []).
    static func commands(of executable: String, under path: [String] = []) throws -> [[String]] {
        let help = try VigilBinary.run(path + ["--help"], executable: executable).stdout
        var found = [path]
        var inList = false
        for line in help.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("SUBCOMMANDS:") {
                inList = true
            } else if inList, line.hasPrefix("  "), !line.hasPrefix("   "), let name = line.split(separator: " ").first,
                name != "See"
            {
                found += try commands(of: executable, under: path + [String(name)])
            } else if inList, !line.isEmpty, !line.hasPrefix(" ") {
                inList = false
            }
        }
        return found
    }

    /// The places in `help` where a line of the discussion ends although the
    /// next line's first word would have fitted on it, and no new topic
    /// starts there (a line ending in ":", or one starting with a flag, a
    /// label such as "Examples:" or "csv:", or an indented example).
    static func raggedBreaks(in help: String) -> [String] {
        let lines = help.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        // After the overview (its first paragraph), up to the usage line.
        guard let overviewEnd = lines.firstIndex(where: \.isEmpty),
            let usage = lines.firstIndex(where: { $0.hasPrefix("USAGE:") }), overviewEnd < usage
        else { return [] }
        var ragged: [String] = []
        for index in overviewEnd..<usage - 1 {
            let line = lines[index], next = lines[index + 1]
            if line.isEmpty || next.isEmpty || line.hasPrefix(" ") || next.hasPrefix(" ") || line.hasSuffix(":") { continue }
            let firstWord = next.prefix { $0 != " " }
            if line.count + 1 + firstWord.count > 79 { continue }
            if next.hasPrefix("--") || next.hasPrefix("Examples:") || next.wholeMatch(of: /[A-Za-z][\w -]{0,24}: .*/) != nil {
                continue
            }
            ragged.append("\(line) ⏎ \(next)")
        }
        return ragged
    }

    @Test("every command's --help wraps its prose as paragraphs", arguments: ["vigil", "vigil-bench"])
    func proseIsWrapped(_ executable: String) throws {
        let commands = try Self.commands(of: executable)
        #expect(commands.count > 5, "found \(commands)")
        for command in commands {
            let output = try VigilBinary.run(command + ["--help"], executable: executable)
            #expect(output.status == 0)
            let ragged = Self.raggedBreaks(in: output.stdout)
            #expect(ragged.isEmpty, "\(([executable] + command).joined(separator: " ")) --help breaks lines early: \(ragged)")
        }
    }

    @Test("the check finds a discussion written as hard-wrapped lines")
    func checkFindsRaggedHelp() {
        // What `vigil-bench ingest --help` printed before its lines were joined.
        let before = """
            OVERVIEW: Ingest throughput and acknowledgement latency.

            Opens --connections connections with --in-flight Ingest calls each, and sends
            --events
            events in batches of --batch-size.

            USAGE: vigil-bench ingest
            """
        #expect(Self.raggedBreaks(in: before) == ["--events ⏎ events in batches of --batch-size."])
        let wrapped = """
            OVERVIEW: x

            Opens --connections connections with --in-flight Ingest calls each, and sends
            --events events in batches of --batch-size. Examples:
              vigil-bench ingest
            csv: a topic of its own.

            USAGE: vigil-bench ingest
            """
        #expect(Self.raggedBreaks(in: wrapped).isEmpty)
    }
}
