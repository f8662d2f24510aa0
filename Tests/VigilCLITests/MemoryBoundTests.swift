import Foundation
import Testing
import VigilClient
import VigilCore
import VigilProto

@Suite("Memory stays bounded with a real process")
struct MemoryBoundTests {
    @Test("ingesting far more than the memory budget keeps resident memory within it")
    func residentMemory() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-memory-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let budgetMiB = 4
        let server = try ServerProcess(dataDir: directory, extraArguments: ["--memory-budget-mb", "\(budgetMiB)", "--segment-max-events", "2000"])
        let baseline = try #require(server.peakResidentBytes)
        let client = try await VigilClient.connect(VigilClient.Configuration(server: server.address))
        let batches = 100
        let batchSize = 500
        var ingestedBytes = 0
        var peaks: [Int] = []
        // Two equal phases: memory that tracked the volume would grow in the second.
        for phase in 0..<2 {
            try await withThrowingTaskGroup(of: Int.self) { group in
                for worker in 0..<4 {
                    group.addTask {
                        var bytes = 0
                        for number in stride(from: phase * batches / 2 + worker, to: (phase + 1) * batches / 2, by: 4) {
                            let events = (0..<batchSize).map { index in
                                var event = AuditEvent()
                                event.occurredAt = .init(unixNanos: currentUnixNanos() - Int64(index) * 1_000_000)
                                event.tenant = "tenant-\(index % 50)"
                                event.actor.id = "user-\(number)-\(index)"
                                event.actor.email = "user-\(number)-\(index)@example.test"
                                event.action = "document.update"
                                event.resource.type = "document"
                                event.resource.id = "doc-\(number * batchSize + index)"
                                event.description_p = String(repeating: "x", count: 1_000) + "\(number)-\(index)"
                                event.traceID = String(format: "%016llx%016llx", UInt64.random(in: 0...UInt64.max), UInt64.random(in: 0...UInt64.max))
                                return event
                            }
                            bytes += events.reduce(0) { $0 + ((try? $1.serializedBytes() as [UInt8])?.count ?? 0) }
                            // A well-behaved agent: on RESOURCE_EXHAUSTED, wait the hinted time and retry.
                            while true {
                                do {
                                    _ = try await client.ingest(events, idempotencyKey: "m\(number)")
                                    break
                                } catch let error as VigilError where error.code == .resourceExhausted {
                                    let hint = Int(error.metadata["vigil.retry-after-ms"] ?? "") ?? 100
                                    try await Task.sleep(for: .milliseconds(hint))
                                }
                            }
                        }
                        return bytes
                    }
                }
                for try await bytes in group { ingestedBytes += bytes }
            }
            peaks.append(try #require(server.peakResidentBytes))
        }
        await client.close()
        let peak = peaks[1]
        let growth = peak - baseline
        print("memory bound: baseline \(baseline / 1_048_576) MiB, peaks \(peaks.map { $0 / 1_048_576 }) MiB, ingested \(ingestedBytes / 1_048_576) MiB")
        #expect(ingestedBytes > 10 * budgetMiB * 1_048_576, "the test ingests far more than the budget")
        // Everything arrived.
        let check = try await VigilClient.connect(VigilClient.Configuration(server: server.address))
        var request = Vigil_V1_QueryRequest()
        request.pageSize = 5_000
        var count = 0
        for try await _ in check.query(request) { count += 1 }
        await check.close()
        #expect(count == batches * batchSize)
        // The budget, plus a fixed allowance for calls in flight, one flush or
        // merge being written, and allocator slack — whatever the volume.
        #expect(growth < (budgetMiB + 64) * 1_048_576, "resident memory grew by \(growth / 1_048_576) MiB for a \(budgetMiB) MiB budget")
        #expect(peaks[1] - peaks[0] < 8 * 1_048_576, "the second half of the ingest added \((peaks[1] - peaks[0]) / 1_048_576) MiB of peak memory")
        _ = server.stop()
    }
}
