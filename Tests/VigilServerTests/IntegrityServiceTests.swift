import Foundation
import Testing
import VigilClient
import VigilCore
import VigilProto
import VigilServer
@testable import VigilStorage

@Suite("Verify, receipts and signed checkpoints over a real connection")
struct IntegrityServiceTests {
    func events(_ count: Int, tag: String, endingAgo: Int64 = 60_000_000_000) -> [AuditEvent] {
        let end = currentUnixNanos() - endingAgo
        return (0..<count).map { index in
            var event = AuditEvent()
            event.occurredAt = .init(unixNanos: end - Int64(count - index) * 1_000_000_000)
            event.tenant = "acme"
            event.actor.id = "\(tag)-\(index)"
            event.action = "user.login"
            return event
        }
    }

    @Test("receipts agree with Verify; a bad range is INVALID_ARGUMENT")
    func receiptsAndVerify() async throws {
        try await withTestServer { server in
            let client = try await server.connect()
            var heads: [UInt64: String] = [:]
            for batch in 0..<5 {
                let ack = try await client.ingest(events(700, tag: "b\(batch)"), wantReceipts: true)
                #expect(ack.leafHashes.count == 700)
                heads[ack.lastSeq] = ChainDigest(bytes: Array(ack.chainHead))!.hex
            }
            let whole = try await client.verify()
            #expect(whole.intact && whole.eventsChecked == 3_500 && whole.headSeq == 3_500 && whole.headHash == heads[3_500], "\(whole.problems)")
            // What an intact result does not prove travels with it: this server signs no checkpoints.
            #expect(whole.notes == ["no signed checkpoints: this proves the stored events and the chain agree with each other, not that they are what the server signed"])
            var request = Vigil_V1_VerifyRequest()
            request.toSeq = 2_100
            let part = try await client.verify(request)
            #expect(part.intact && part.headSeq == 2_100 && part.headHash == heads[2_100])
            request.fromSeq = 10
            request.toSeq = 5
            do {
                _ = try await client.verify(request)
                Issue.record("from after to is refused")
            } catch let error as VigilError {
                #expect(error.code == .invalidArgument)
            }
            await client.close()
        }
    }

    @Test("the server signs a checkpoint on shutdown and one at the retention cut; both verify against its key")
    func checkpointsOnShutdownAndAtTheCut() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-checkpoints-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let day: Int64 = 86_400_000_000_000
        var options = StorageOptions(directory: directory + "/data")
        // Kept until they are stored (ingest refuses events already past
        // retention), then cut to 10 days.
        options.retentionNanos = nil
        let key = CheckpointKey.generate()
        let checkpoints = directory + "/checkpoints"
        // As `vigil serve` wires it: the checkpoint key signs removals too.
        options.retentionSigner = .init(key: key, directory: checkpoints)
        let store = try ColumnarEventStore(options: options)
        try await withTestServer(configure: {
            $0.checkpoints = CheckpointConfiguration(key: key, directory: checkpoints, interval: .seconds(3600))
        }, store: store) { server in
            let client = try await server.connect()
            _ = try await client.ingest(events(50, tag: "old", endingAgo: 20 * day))
            try await store.flushNow()
            _ = try await client.ingest(events(50, tag: "new"))
            try await store.flushNow()
            _ = try await store.setRetention(tenant: nil, nanos: 10 * day)
            try await store.retainNow(now: currentUnixNanos())
            #expect(store.chainCut()?.seq == 50)
            _ = try await client.ingest(events(25, tag: "newer"))
            await client.close()
        }
        let names = try FileIO.list(checkpoints)
        #expect(names.filter { $0.hasSuffix(".checkpoint") } == [Checkpoints.fileName(seq: 50), Checkpoints.fileName(seq: 125)])
        #expect(names.filter { $0.hasPrefix("start-") }.count == 1 && names.contains("begin.retention"), "the cut's retention statement: \(names)")
        var verification = VerificationOptions()
        verification.checkpointDirectory = checkpoints
        verification.trustedKey = key.publicKey
        let report = try DirectoryVerification.verify(directory: directory + "/data", options: verification)
        #expect(report.intact && report.checkpointsChecked == 2 && report.eventsExpired == 50 && report.headSeq == 125, "\(report.problems.map(\.line)) \(report.notes)")
        #expect(!report.notes.contains { $0.contains("cannot be checked") }, "the checkpoint at the cut is checked against the chain's start")
    }
}
