import Foundation
import Testing
import VigilClient
import VigilCore
import VigilProto

/// Real processes, killed with SIGKILL at random moments while several
/// connections ingest: every acknowledged event must be there exactly once
/// after the restart, and no batch may be partly visible.
@Suite("Crash safety with real processes", .serialized)
struct CrashTests {
    static let batchSize = 40

    func batch(_ tag: String) -> [AuditEvent] {
        let now = currentUnixNanos()
        return (0..<Self.batchSize).map { index in
            var event = AuditEvent()
            event.occurredAt = .init(unixNanos: now - Int64(index) * 1_000_000)
            event.tenant = "crash"
            event.actor.id = "\(tag)/\(index)"
            event.action = "crash.test"
            event.traceID = String(format: "%016llx%016llx", UInt64.random(in: 0...UInt64.max), UInt64.random(in: 0...UInt64.max))
            return event
        }
    }

    /// Every stored event's actor id, fetched page by page.
    func storedTags(_ server: ServerProcess) async throws -> [String] {
        var configuration = try VigilClient.Configuration(server: server.address)
        configuration.clientName = "crash-check"
        let client = try await VigilClient.connect(configuration)
        var request = Vigil_V1_QueryRequest()
        request.pageSize = 5_000
        var tags: [String] = []
        for try await event in client.query(request) { tags.append(event.actor.id) }
        await client.close()
        return tags
    }

    @Test("kill -9 during ingest, 20 rounds: every acknowledged event exactly once, batches whole or absent")
    func killNineRounds() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-crash-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var acknowledged = Set<String>()  // batch tags
        var generator = SystemRandomNumberGenerator()

        for round in 0..<20 {
            // Small segments, so that kills also land during flushes and WAL rotation.
            let server = try ServerProcess(dataDir: directory, extraArguments: ["--segment-max-events", "2000", "--log-level", "debug"])
            let stored: [String]
            do {
                stored = try await storedTags(server)
            } catch {
                if server.exitedLog == nil { server.kill9() }
                Issue.record("round \(round): the query failed (\(error)); server: \(server.exitedLog ?? "?")")
                throw error
            }
            try check(stored, acknowledged: acknowledged, round: round)

            let address = server.address
            // The kill comes a random moment after the round's first acknowledgement,
            // so that every round stores something however loaded the machine is.
            let (firstAck, signalAck) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
            let acks = try await withThrowingTaskGroup(of: [String].self) { group in
                for connection in 0..<4 {
                    group.addTask {
                        var acked: [String] = []
                        defer { signalAck.yield() }  // never leave the killer waiting
                        guard let client = try? await VigilClient.connect(VigilClient.Configuration(server: address)) else { return acked }
                        for number in 0..<10_000 {
                            let tag = "r\(round)c\(connection)b\(number)"
                            do {
                                _ = try await client.ingest(batch(tag), idempotencyKey: tag)
                                acked.append(tag)
                                signalAck.yield()
                            } catch {
                                break  // the server is gone
                            }
                        }
                        await client.close()
                        return acked
                    }
                }
                for await _ in firstAck { break }
                // The random moment of death (a delay, not a synchronization).
                try await Task.sleep(for: .milliseconds(Int.random(in: 30...400, using: &generator)))
                server.kill9()
                return try await group.reduce(into: [String]()) { $0 += $1 }
            }
            acknowledged.formUnion(acks)
        }
        let server = try ServerProcess(dataDir: directory)
        let stored = try await storedTags(server)
        try check(stored, acknowledged: acknowledged, round: 20)
        #expect(acknowledged.count >= 20, "every round ingested something (\(acknowledged.count) batches)")
        _ = server.stop()
        // Twenty kills, some during flushes and WAL rotation: the hash chain is whole.
        let verify = try VigilBinary.run(["verify", "--data-dir", directory])
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
    }

    /// Exactly once, and batches whole or absent.
    func check(_ stored: [String], acknowledged: Set<String>, round: Int) throws {
        var perBatch: [String: Int] = [:]
        var seen = Set<String>()
        for tag in stored {
            #expect(seen.insert(tag).inserted, "round \(round): \(tag) is stored twice")
            perBatch[String(tag.split(separator: "/")[0]), default: 0] += 1
        }
        for (batch, count) in perBatch {
            #expect(count == Self.batchSize, "round \(round): batch \(batch) is partly visible (\(count) of \(Self.batchSize))")
        }
        let missing = acknowledged.subtracting(perBatch.keys)
        #expect(missing.isEmpty, "round \(round): acknowledged batches lost: \(missing.sorted().prefix(5))")
    }
}
