import Foundation
import Testing

@Suite("vigil export's continue command picks up events stored after the export")
struct IncrementalExportTests {
    static func events(_ count: Int, at date: Date, first: Int) -> String {
        (first..<(first + count)).map { index in
            #"{"occurredAt":"\#(date.addingTimeInterval(Double(index)).ISO8601Format())","tenant":"acme","actor":{"id":"u-\#(index)"},"action":"user.update"}"#
        }.joined(separator: "\n") + "\n"
    }

    @Test("export, ingest more, run the printed continue command: exactly the new events are appended")
    func continueAfterNewEvents() throws {
        let directory = try ConfigFileTests.temporaryDirectory("incremental-export")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try ServerProcess(dataDir: directory + "/data")
        let ingest = try VigilBinary.run(["ingest", "-", "--server", server.address], input: Self.events(3, at: Date().addingTimeInterval(-3_600), first: 0))
        #expect(ingest.status == 0, "\(ingest.stderr)")

        let output = directory + "/a.jsonl"
        let first = try VigilBinary.run(["export", "--tenant", "acme", "--format", "jsonl", "-o", output, "--server", server.address])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stderr.contains("export complete: 3 events written"), "\(first.stderr)")
        let prefix = "to continue after the last event written: "
        let line = try #require(first.stderr.split(separator: "\n").first { $0.hasPrefix(prefix) }, "\(first.stderr)")
        // The printed command: the binary, then its arguments (the test's paths need no quoting).
        let words = line.dropFirst(prefix.count).split(separator: " ").map(String.init)
        #expect(words.contains("--cursor"), "\(line)")

        let more = try VigilBinary.run(["ingest", "-", "--server", server.address], input: Self.events(2, at: Date(), first: 3))
        #expect(more.status == 0, "\(more.stderr)")
        let second = try VigilBinary.run(Array(words.dropFirst()))
        #expect(second.status == 0, "\(second.stderr)")
        #expect(second.stderr.contains("export complete: 2 events written"), "\(second.stderr)")
        let lines = try String(contentsOfFile: output, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 5, "\(lines)")
        #expect(lines.suffix(2).allSatisfy { $0.contains("\"u-3\"") || $0.contains("\"u-4\"") }, "\(lines)")
    }
}
