import Foundation
import Testing
import VigilClient
import VigilCore
import VigilProto

@Suite("Memory stays bounded with a real process")
struct MemoryBoundTests {
    @Test("calls with a long deadline leave nothing behind once they finish: resident memory stays flat over thousands of them")
    func finishedCallsReleaseTheirDeadlines() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-deadlines-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try ServerProcess(dataDir: directory)
        let client = try await VigilClient.connect(VigilClient.Configuration(server: server.address))
        // Health calls on one connection, each with a 10-minute deadline:
        // until the fix, every finished call's deadline timer stayed armed,
        // with its call's context, for the whole 10 minutes.
        func calls(_ count: Int) async throws {
            for _ in 0..<count { _ = try await client.health(timeout: .seconds(600)) }
        }
        try await calls(2_000)
        let before = try #require(server.residentBytes)
        try await calls(12_000)
        let after = try #require(server.residentBytes)
        await client.close()
        _ = server.stop()
        print("deadlines: resident \(before / 1_024) KiB before, \(after / 1_024) KiB after 12,000 calls")
        #expect(after - before < 4 * 1_048_576, "12,000 finished calls added \((after - before) / 1_024) KiB of resident memory")
    }

    @Test("ingesting far more than the memory budget keeps resident memory within it")
    func residentMemory() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-memory-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let budgetMiB = 4
        let server = try ServerProcess(dataDir: directory, extraArguments: ["--memory-budget-mb", "\(budgetMiB)", "--segment-max-events", "2000"])
        let baseline = try #require(server.peakResidentBytes)
        let client = try await VigilClient.connect(VigilClient.Configuration(server: server.address))
        let phases = 3
        let batches = 150
        let batchSize = 500
        var ingestedBytes = 0
        var peaks: [Int] = []
        // Equal phases: memory that tracked the volume would grow in the last.
        // The first warms up (its peak varies by several MiB with the timing of
        // flushes and merges), so the last is compared with the second.
        for phase in 0..<phases {
            try await withThrowingTaskGroup(of: Int.self) { group in
                for worker in 0..<4 {
                    group.addTask {
                        var bytes = 0
                        for number in stride(from: phase * batches / phases + worker, to: (phase + 1) * batches / phases, by: 4) {
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
        let peak = peaks[phases - 1]
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
        #expect(peaks[2] - peaks[1] < 8 * 1_048_576, "the last third of the ingest added \((peaks[2] - peaks[1]) / 1_048_576) MiB of peak memory")
        _ = server.stop()
    }

    @Test("a subscriber that stops reading is cut off with a cursor while ingest goes on, memory stays flat, and it resumes with everything")
    func stalledSubscriber() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-memory-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try ServerProcess(
            dataDir: directory, extraArguments: ["--memory-budget-mb", "4", "--live-feed-mb", "2", "--segment-max-events", "2000"])
        let baseline = try #require(server.peakResidentBytes)
        let subscriber = try await VigilClient.connect(VigilClient.Configuration(server: server.address))
        var request = Vigil_V1_SubscribeRequest()
        request.fromNow = true
        // Window 1, and the loop below reads one item, then stops reading while ingest goes on.
        var items = subscriber.subscribe(request, window: 1).makeAsyncIterator()
        let writer = try await VigilClient.connect(VigilClient.Configuration(server: server.address))
        // Four phases: the first warms up (the memory segment, the live
        // feed's ring and the allocator reach their working size); the last
        // two together must add less than one phase's events would (15 MB).
        // Two, not one: a flush or merge that peaks in one of them under a
        // loaded machine added 10 MiB once, and a buffer that tracks the
        // volume adds that much in each.
        let batches = 120
        var peaks: [Int] = []
        for phase in 0..<4 {
            for number in phase * batches / 4..<(phase + 1) * batches / 4 {
                let events = (0..<500).map { index in
                    var event = AuditEvent()
                    event.occurredAt = .init(unixNanos: currentUnixNanos() - Int64(index) * 1_000_000)
                    event.tenant = "tenant-\(index % 50)"
                    event.actor.id = "user-\(number)-\(index)"
                    event.action = "document.update"
                    event.description_p = String(repeating: "x", count: 1_000) + "\(number)-\(index)"
                    return event
                }
                while true {
                    do {
                        _ = try await writer.ingest(events, idempotencyKey: "s\(number)")
                        break
                    } catch let error as VigilError where error.code == .resourceExhausted {
                        try await Task.sleep(for: .milliseconds(Int(error.metadata["vigil.retry-after-ms"] ?? "") ?? 100))
                    }
                }
                if number == 0 { _ = try await items.next() }  // the one item read
            }
            peaks.append(try #require(server.peakResidentBytes))
        }
        // The subscription was ended behind our back: reading on shows the cut and its cursor.
        var cursor: String?
        do {
            while try await items.next() != nil {}
            Issue.record("the stalled subscription was never cut off")
        } catch let error as VigilError {
            #expect(error.code == .resourceExhausted, "\(error)")
            cursor = error.metadata["vigil.cursor"]
        }
        let resumeFrom = try #require(cursor)
        let growth = peaks[3] - baseline
        print("stalled subscriber: baseline \(baseline / 1_048_576) MiB, peaks \(peaks.map { $0 / 1_048_576 }) MiB")
        #expect(growth < (4 + 2 + 64) * 1_048_576, "resident memory grew by \(growth / 1_048_576) MiB")
        #expect(peaks[3] - peaks[1] < 12 * 1_048_576, "the last two quarters added \((peaks[3] - peaks[1]) / 1_048_576) MiB of peak memory")
        // Resuming catches up from disk: every event after the cursor, in seq order.
        var resume = Vigil_V1_SubscribeRequest()
        resume.cursor = resumeFrom
        let position = try SubscriptionCursor(decoding: resumeFrom, filterFingerprint: EventFilter.fingerprint(of: Vigil_V1_Filter()))
        let expected = batches * 500 - Int(position.seq)
        var seqs: [UInt64] = []
        for try await item in subscriber.subscribe(resume, window: 1_000) {
            if let event = item.event { seqs.append(event.seq) }
            if seqs.count == expected { break }
        }
        #expect(seqs == Array(position.seq + 1...UInt64(batches * 500)))
        await subscriber.close()
        await writer.close()
        _ = server.stop()
    }
}
