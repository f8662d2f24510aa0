import Foundation
import Testing
@testable import vigil

@Suite("small wording: plurals, defaults in --help, backup's token")
struct WordingTests {
    @Test("one event, one part: no plural s")
    func plurals() throws {
        #expect(counted(1, "event") == "1 event")
        #expect(counted(0, "event") == "0 events")
        #expect(counted(UInt64(2), "WAL record") == "2 WAL records")

        let directory = try ConfigFileTests.temporaryDirectory("wording")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try ServerProcess(dataDir: directory + "/data")
        let event = #"{"occurredAt":"2026-11-20T10:15:00Z","tenant":"acme","actor":{"id":"u"},"action":"a.b"}"# + "\n"
        let ingest = try VigilBinary.run(["ingest", "-", "--server", server.address], input: event)
        #expect(ingest.stderr.hasPrefix("ingested 1 event in "), "\(ingest.stderr)")
        let query = try VigilBinary.run(["query", "--server", server.address])
        #expect(query.stderr == "1 event\n", "\(query.stderr)")
        let export = try VigilBinary.run(["export", "--server", server.address])
        #expect(export.stderr.contains("export complete: 1 event written"), "\(export.stderr)")
    }

    @Test("query --order shows its default; backup says it needs an admin of every tenant")
    func helpTexts() {
        let query = QueryCommand.helpMessage(columns: 300)
        #expect(query.contains("newest (first) or oldest (first) (default: newest)."), "\(query)")
        let backup = BackupCommand.helpMessage(columns: 300)
        #expect(backup.contains("an admin token of every tenant is needed"), "\(backup)")
    }
}
