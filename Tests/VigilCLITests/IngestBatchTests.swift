import Foundation
import Testing

@Suite("vigil ingest says its idempotency needs the same batches, and prints the batch size")
struct IngestBatchTests {
    @Test("the summary names the batch size (the smaller of --batch-size and the server's --max-batch-events); the help says why it matters")
    func batchSizeIsReported() throws {
        let directory = try ConfigFileTests.temporaryDirectory("ingest-batches")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try ServerProcess(dataDir: directory + "/data", extraArguments: ["--max-batch-events", "2"])
        let line = #"{"occurredAt":"2026-11-20T10:15:00Z","tenant":"acme","actor":{"id":"u-N"},"action":"user.update"}"#
        let input = (1...3).map { line.replacingOccurrences(of: "u-N", with: "u-\($0)") }.joined(separator: "\n") + "\n"
        let limited = try VigilBinary.run(["ingest", "-", "--server", server.address], input: input)
        #expect(limited.status == 0, "\(limited.stderr)")
        #expect(limited.stderr.contains("events/s, batches of 2)"), "\(limited.stderr)")
        let small = try VigilBinary.run(["ingest", "-", "--batch-size", "1", "--server", server.address], input: input)
        #expect(small.stderr.contains("events/s, batches of 1)"), "\(small.stderr)")

        let help = try VigilBinary.run(["ingest", "--help"]).stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(help.contains("as long as the batches are the same: the same --batch-size and the same server --max-batch-events"), "\(help)")
    }
}
