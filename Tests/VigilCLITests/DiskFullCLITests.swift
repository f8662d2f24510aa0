import Foundation
import Testing
import VigilClient
import VigilCore
import VigilProto

/// A real `vigil serve` whose data directory is a small tmpfs: when it fills,
/// Ingest answers UNAVAILABLE with the reason, queries go on, ingest resumes
/// by itself once space returns, and a restart finds every acknowledged event
/// exactly once.
@Suite("vigil serve on a disk that fills up", .serialized)
struct DiskFullCLITests {
    static let batchSize = 50

    func batch(_ tag: String) -> [AuditEvent] {
        let now = currentUnixNanos()
        return (0..<Self.batchSize).map { index in
            var event = AuditEvent()
            event.occurredAt = .init(unixNanos: now - Int64(index) * 1_000_000)
            event.tenant = "full"
            event.actor.id = "\(tag)/\(index)"
            event.action = "disk.fill"
            event.traceID = String(format: "%016llx%016llx", UInt64.random(in: 0...UInt64.max), UInt64.random(in: 0...UInt64.max))
            return event
        }
    }

    func storedActors(_ client: VigilClient) async throws -> [String] {
        var request = Vigil_V1_QueryRequest()
        request.pageSize = 5_000
        var actors: [String] = []
        for try await event in client.query(request) { actors.append(event.actor.id) }
        return actors
    }

    func expected(_ batches: [String]) -> [String] {
        batches.flatMap { tag in (0..<Self.batchSize).map { "\(tag)/\($0)" } }
    }

    @Test("full disk: UNAVAILABLE with the reason, queries answer, resumes without a restart, every acked event exactly once after one")
    func fullDiskRoundTrip() async throws {
        let disk = try TmpfsDisk(megabytes: 8)
        defer { disk.unmount() }
        let dataDir = disk.path + "/data"
        var server = try ServerProcess(dataDir: dataDir, extraArguments: ["--min-free-disk-mb", "0"])
        var client = try await VigilClient.connect(VigilClient.Configuration(server: server.address))
        var acked: [String] = []
        for number in 0..<10 {
            _ = try await client.ingest(batch("a\(number)"), idempotencyKey: "a\(number)")
            acked.append("a\(number)")
        }
        let filler = try disk.fill()

        // Batches that still fit in the WAL's last page are acknowledged; then the disk is full.
        var refusal: VigilError?
        for attempt in 0..<1_000 {
            do {
                _ = try await client.ingest(batch("f\(attempt)"), idempotencyKey: "f\(attempt)")
                acked.append("f\(attempt)")
            } catch let error as VigilError {
                refusal = error
                break
            }
        }
        let refused = try #require(refusal, "ingest kept succeeding on a full disk")
        #expect(refused.code == .unavailable)
        #expect(refused.message.hasPrefix("the data disk is full: write \(dataDir)/wal/"), "\(refused.message)")
        #expect(refused.message.hasSuffix(
            ".wal: No space left on device; free space under \(dataDir) or lower retention; ingest resumes by itself"), "\(refused.message)")
        #expect(refused.metadata["vigil.retry-after-ms"] == "1000")
        // The Health call says why, and `vigil status` shows it.
        let health = try await client.health()
        #expect(health.status == .notServing)
        #expect(health.reasons == [refused.message], "\(health.reasons)")
        let status = try VigilBinary.run(["status", "--server", server.address, "--format", "json"])
        #expect(status.status == 0, "\(status.stderr)")
        #expect(status.stdout.contains("the data disk is full"), "\(status.stdout)")
        // Queries keep answering, with every acknowledged event.
        var actors = try await storedActors(client)
        #expect(actors.count == expected(acked).count)
        #expect(Set(actors) == Set(expected(acked)))

        // Space returns: ingest resumes by itself (the server probes about once a second).
        try FileManager.default.removeItem(atPath: filler)
        let deadline = ContinuousClock.now + .seconds(60)
        var resumed = false
        var tries = 0
        while !resumed && ContinuousClock.now < deadline {
            var refusedAgain = false
            do {
                _ = try await client.ingest(batch("b0"), idempotencyKey: "b0")
                resumed = true
            } catch let error as VigilError where error.code == .unavailable {
                tries += 1
                refusedAgain = true
            }
            if refusedAgain { try await Task.sleep(for: .milliseconds(50)) }  // a polling interval
        }
        #expect(resumed, "ingest did not resume within 60 s after space returned (\(tries) refusals)")
        acked.append("b0")
        _ = try await client.ingest(batch("b1"), idempotencyKey: "b1")
        acked.append("b1")
        #expect(try await client.health().status == .serving)
        await client.close()

        let (exitStatus, log) = server.stop()
        #expect(exitStatus == 0, "\(log)")
        #expect(log.components(separatedBy: "ingest is refused: the data disk is full").count == 2, "logged once on entering: \(log)")
        #expect(log.components(separatedBy: "ingest resumed").count == 2, "logged once on leaving: \(log)")

        server = try ServerProcess(dataDir: dataDir, extraArguments: ["--min-free-disk-mb", "0"])
        client = try await VigilClient.connect(VigilClient.Configuration(server: server.address))
        actors = try await storedActors(client)
        #expect(actors.count == expected(acked).count, "every acknowledged event exactly once after the restart")
        #expect(Set(actors) == Set(expected(acked)), "and none of the refused batches")
        await client.close()
        _ = server.stop()
    }

    @Test("--min-free-disk-mb out of range is refused before anything is opened")
    func badReserveFlag() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-flags-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let result = try VigilBinary.run(["serve", "--listen", "127.0.0.1:0", "--data-dir", directory, "--min-free-disk-mb", "2000000000"])
        #expect(result.status == 64, "\(result.stderr)")
        #expect(result.stderr.contains("--min-free-disk-mb must be 0...1073741824 (MiB), not 2000000000"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory + "/MANIFEST"), "nothing was opened")
    }
}
