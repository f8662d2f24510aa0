import Foundation
import SwiftProtobuf
import Testing
import VigilClient
import VigilCore
import VigilProto
import VigilStorage

/// A valid event; tests change what they test.
func makeEvent(
    tenant: String = "acme", actor: String = "u-1", action: String = "user.update",
    at nanos: Int64 = currentUnixNanos() - 60_000_000_000, outcome: Vigil_V1_Outcome = .success,
    resourceType: String = "user", resourceID: String = "r-1"
) -> AuditEvent {
    var event = AuditEvent()
    event.occurredAt = .init(unixNanos: nanos)
    event.tenant = tenant
    event.actor.id = actor
    event.actor.type = .user
    event.action = action
    event.outcome = outcome
    event.resource.type = resourceType
    event.resource.id = resourceID
    return event
}

func expectVigilError(_ code: VigilError.Code, _ body: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async -> VigilError? {
    do {
        try await body()
        Issue.record("expected \(code), the call succeeded", sourceLocation: sourceLocation)
        return nil
    } catch let error as VigilError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected VigilError \(code), got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

func collect(_ client: VigilClient, _ request: Vigil_V1_QueryRequest) async throws -> [AuditEvent] {
    var events: [AuditEvent] = []
    for try await event in client.query(request) { events.append(event) }
    return events
}

func queryRequest(_ configure: (inout Vigil_V1_QueryRequest) -> Void = { _ in }) -> Vigil_V1_QueryRequest {
    var request = Vigil_V1_QueryRequest()
    configure(&request)
    return request
}

@Suite("Ingest and query over a real connection")
struct IngestQueryTests {
    /// Each validation rule, through the server: INVALID_ARGUMENT naming the field.
    static let invalidEvents: [(String, @Sendable (inout AuditEvent) -> Void)] = [
        ("occurredAt", { $0.clearOccurredAt() }),
        ("occurredAt", { $0.occurredAt = .init(unixNanos: currentUnixNanos() + 3_600_000_000_000) }),
        ("occurredAt", { $0.occurredAt = .init(seconds: -10, nanos: 0) }),
        ("tenant", { $0.tenant = "" }),
        ("tenant", { $0.tenant = "_system" }),
        ("tenant", { $0.tenant = "has space" }),
        ("tenant", { $0.tenant = String(repeating: "t", count: 129) }),
        ("actor.id", { $0.actor.id = "" }),
        ("actor.id", { $0.actor.id = String(repeating: "a", count: 257) }),
        ("actor.email", { $0.actor.email = String(repeating: "e", count: 257) }),
        ("action", { $0.action = "" }),
        ("action", { $0.action = "user..create" }),
        ("action", { $0.action = "user create" }),
        ("action", { $0.action = String(repeating: "a", count: 129) }),
        ("resource.type", { $0.resource.type = String(repeating: "r", count: 65) }),
        ("resource.id", { $0.resource.id = String(repeating: "r", count: 257) }),
        ("targets", { $0.targets = Array(repeating: Vigil_V1_Resource(), count: 17) }),
        ("reason", { $0.reason = String(repeating: "x", count: 1025) }),
        ("sourceIp", { $0.sourceIp = "300.1.1.1" }),
        ("userAgent", { $0.userAgent = String(repeating: "u", count: 513) }),
        ("traceId", { $0.traceID = String(repeating: "t", count: 129) }),
        ("requestId", { $0.requestID = String(repeating: "q", count: 129) }),
        ("changes", { $0.changes = Array(repeating: Vigil_V1_Change.with { $0.field = "f" }, count: 65) }),
        ("changes[0].field", { $0.changes = [Vigil_V1_Change()] }),
        ("changes[0].new", { $0.changes = [Vigil_V1_Change.with { $0.field = "f"; $0.new = String(repeating: "n", count: 4097) }] }),
        ("metadata", { event in for index in 0..<33 { event.metadata["k\(index)"] = "v" } }),
        ("metadata[bad key]", { $0.metadata["bad key"] = "v" }),
        ("description", { $0.description_p = String(repeating: "d", count: 4097) }),
        ("id", { $0.id = "not-a-uuid" }),
        // Every field within its own limit, the whole over maxEventBytes (64 KiB).
        ("", { event in
            event.changes = (0..<10).map { index in
                Vigil_V1_Change.with { $0.field = "f\(index)"; $0.old = String(repeating: "o", count: 4096); $0.new = String(repeating: "n", count: 4096) }
            }
        }),
    ]

    @Test("every validation rule is refused with INVALID_ARGUMENT naming the field", arguments: 0..<invalidEvents.count)
    func validationRule(_ index: Int) async throws {
        let (field, mutate) = Self.invalidEvents[index]
        try await withTestServer { server in
            let client = try await server.connect()
            var bad = makeEvent()
            mutate(&bad)
            let error = await expectVigilError(.invalidArgument) {
                _ = try await client.ingest([makeEvent(), bad])
            }
            #expect(error?.eventErrors.contains { $0.index == 1 && $0.field == field } == true, "\(String(describing: error))")
            #expect(error?.eventErrors.allSatisfy { $0.index == 1 && !$0.reason.isEmpty } == true)
            #expect(try await collect(client, queryRequest()).isEmpty, "nothing of a refused batch is stored")
            await client.close()
        }
    }

    @Test("a batch is atomic: one bad event and none is stored, every bad event is listed")
    func atomicRejection() async throws {
        try await withTestServer { server in
            let client = try await server.connect()
            var events = (0..<10).map { makeEvent(actor: "u-\($0)") }
            events[3].action = ""
            events[7].tenant = ""
            let error = await expectVigilError(.invalidArgument) { _ = try await client.ingest(events) }
            #expect(error?.eventErrors.map(\.index) == [3, 7])
            #expect(error?.message.contains("2 of 10") == true)
            #expect(try await collect(client, queryRequest()).isEmpty)
            await client.close()
        }
    }

    @Test("events older than their tenant's retention are refused (INVALID_ARGUMENT, each named), on both ingest paths; a tenant kept longer takes them")
    func olderThanRetention() async throws {
        try await withTestServer { server in
            let client = try await server.connect()
            let day: Int64 = 86_400_000_000_000
            let now = currentUnixNanos()
            _ = try await server.store.setRetention(tenant: nil, nanos: 90 * day)
            var events = (0..<4).map { makeEvent(actor: "u-\($0)", at: now - 60_000_000_000) }
            events[1].occurredAt = .init(unixNanos: now - 100 * day)
            events[2] = makeEvent(tenant: "globex", at: now - 91 * day)
            for clientIDs in [false, true] {
                // A client's own ids take the general path; without, the wire decoder's.
                var batch = events
                if clientIDs { for index in batch.indices { batch[index].id = randomEventID() } }
                let error = await expectVigilError(.invalidArgument) { _ = try await client.ingest(batch) }
                #expect(error?.eventErrors.map(\.index) == [1, 2], "\(String(describing: error))")
                #expect(error?.eventErrors.allSatisfy { $0.field == "occurredAt" && $0.reason.contains("90d") } == true)
                #expect(error?.message.contains("2 of 4") == true, "\(String(describing: error))")
            }
            #expect(try await collect(client, queryRequest()).isEmpty, "nothing was stored")
            // acme kept for a year: its 100-day-old event is taken; globex's is still refused.
            _ = try await server.store.setRetention(tenant: "acme", nanos: 365 * day)
            let error = await expectVigilError(.invalidArgument) { _ = try await client.ingest(events) }
            #expect(error?.eventErrors.map(\.index) == [2])
            _ = try await client.ingest([events[0], events[1], events[3]])
            #expect(try await collect(client, queryRequest()).count == 3)
            await client.close()
        }
    }

    @Test("a query read to its end gives a cursor that returns what was stored since (an incremental read), not the query's snapshot again")
    func incrementalCursor() async throws {
        try await withTestServer { server in
            let client = try await server.connect()
            let now = currentUnixNanos()
            _ = try await client.ingest((0..<3).map { makeEvent(actor: "u-\($0)", at: now - 3_600_000_000_000 + Int64($0)) })
            let request = queryRequest { $0.order = .oldestFirst }
            var first = client.query(request).makeAsyncIterator()
            var seen = 0
            while try await first.next() != nil { seen += 1 }
            #expect(seen == 3)
            let cursor = try #require(first.cursor)
            _ = try await client.ingest((3..<5).map { makeEvent(actor: "u-\($0)", at: now - 60_000_000_000 + Int64($0)) })
            let later = try await collect(client, queryRequest { $0.order = .oldestFirst; $0.cursor = cursor })
            #expect(later.map(\.actor.id) == ["u-3", "u-4"])
            await client.close()
        }
    }

    @Test("empty and oversized batches and long idempotency keys are refused")
    func batchLimits() async throws {
        try await withTestServer(configure: { $0.eventLimits.maxBatchEvents = 5 }) { server in
            let client = try await server.connect()
            #expect(client.welcome.maxBatchEvents == 5)
            _ = await expectVigilError(.invalidArgument) { _ = try await client.ingest([]) }
            _ = await expectVigilError(.invalidArgument) { _ = try await client.ingest(Array(repeating: makeEvent(), count: 6)) }
            _ = await expectVigilError(.invalidArgument) {
                _ = try await client.ingest([makeEvent()], idempotencyKey: String(repeating: "k", count: 129))
            }
            let ok = try await client.ingest(Array(repeating: makeEvent(), count: 5))
            #expect(ok.count == 5)
            await client.close()
        }
    }

    @Test("a retried idempotency key returns the first answer and stores nothing twice")
    func idempotentRetry() async throws {
        try await withTestServer { server in
            let client = try await server.connect()
            let batch = (0..<3).map { makeEvent(actor: "u-\($0)") }
            let first = try await client.ingest(batch, idempotencyKey: "batch-1")
            #expect(!first.replayed)
            #expect(first.lastSeq - first.firstSeq == 2)
            // A retry on a new connection, as after a dropped one.
            let other = try await server.connect()
            let retry = try await other.ingest(batch, idempotencyKey: "batch-1")
            #expect(retry.replayed)
            #expect(retry.firstSeq == first.firstSeq && retry.lastSeq == first.lastSeq && retry.count == 3)
            #expect(try await collect(client, queryRequest()).count == 3)
            let second = try await client.ingest(batch, idempotencyKey: "batch-2")
            #expect(second.firstSeq == first.lastSeq + 1)
            #expect(try await collect(client, queryRequest()).count == 6)
            await client.close()
            await other.close()
        }
    }

    @Test("an acknowledged event is visible to the next query and to Get, with server-assigned fields")
    func readYourWrites() async throws {
        try await withTestServer { server in
            let client = try await server.connect()
            var event = makeEvent()
            event.sourceIp = "2001:DB8:0:0:0:0:0:1"
            event.seq = 999  // ignored
            let ack = try await client.ingest([event])
            let found = try await collect(client, queryRequest())
            let stored = try #require(found.first)
            #expect(found.count == 1)
            #expect(stored.seq == ack.firstSeq)
            #expect(stored.receivedAt == ack.receivedAt)
            #expect(stored.sourceIp == "2001:db8::1")
            let id = try #require(EventID(stored.id))
            #expect(id.high >> 12 & 0xF == 7, "server ids are UUIDv7")
            let fetched = try await client.get(id: stored.id)
            #expect(fetched == stored)
            _ = await expectVigilError(.notFound) { _ = try await client.get(id: EventID(high: 1, low: 2).description) }
            _ = await expectVigilError(.invalidArgument) { _ = try await client.get(id: "nope") }
            await client.close()
        }
    }

    @Test("calls made on the client's executor run on the connection's thread and answer as any others")
    func callsOnTheClientsExecutor() async throws {
        try await withTestServer { server in
            let client = try await server.connect()
            let base = currentUnixNanos() - 3_600_000_000_000
            let elsewhere = try await client.ingest((0..<30).map { makeEvent(actor: "u-\($0)", at: base + Int64($0) * 1_000) })
            let request = queryRequest { $0.pageSize = 7 }
            let expected = try await collect(client, request)
            let loop = client.executor.eventLoop
            try await withTaskExecutorPreference(client.executor) {
                let ack = try await client.ingest([makeEvent(actor: "u-30", at: base + 30_000)])
                #expect(loop.inEventLoop)
                #expect(ack.firstSeq == elsewhere.lastSeq + 1)
                var events: [AuditEvent] = []
                for try await page in client.queryPages(request, window: 2, timeout: .seconds(30)) {
                    #expect(loop.inEventLoop)
                    events += page.events
                }
                // Newest first: the event ingested here, then what a query elsewhere read.
                #expect(events.first?.actor.id == "u-30")
                #expect(Array(events.dropFirst()) == expected)
                _ = try await client.health()
                #expect(loop.inEventLoop)
                _ = await expectVigilError(.notFound) { _ = try await client.get(id: EventID(high: 1, low: 2).description) }
                #expect(loop.inEventLoop)
            }
            await client.close()
        }
    }

    @Test("a query of many pages reads every event once, in order, whatever the client's window (credit is given back half a window at a time)")
    func pagesUnderEveryWindow() async throws {
        try await withTestServer { server in
            let client = try await server.connect()
            let base = currentUnixNanos() - 3_600_000_000_000
            _ = try await client.ingest((0..<50).map { makeEvent(actor: "u-\($0)", at: base + Int64($0) * 1_000) })
            let request = queryRequest { $0.pageSize = 3 }
            for window: UInt32 in [1, 2, 3, 4, 5] {
                var pages = client.queryPages(request, window: window, timeout: .seconds(30)).makeAsyncIterator()
                var actors: [String] = []
                var count = 0
                while let page = try await pages.next() {
                    count += 1
                    actors += page.events.map(\.actor.id)
                }
                #expect(count == 17, "window \(window)")
                #expect(actors == (0..<50).reversed().map { "u-\($0)" }, "window \(window)")
                #expect(pages.trailers["vigil.exhausted"] == "true", "window \(window)")
            }
            await client.close()
        }
    }

    @Test("a client-supplied id is kept; a repeated id within a batch is refused")
    func clientIDs() async throws {
        try await withTestServer { server in
            let client = try await server.connect()
            var event = makeEvent()
            event.id = "0190F3C2-5B1E-7C3A-9F00-1A2B3C4D5E6F"
            _ = try await client.ingest([event])
            let fetched = try await client.get(id: "0190f3c2-5b1e-7c3a-9f00-1a2b3c4d5e6f")
            #expect(fetched.id == "0190f3c2-5b1e-7c3a-9f00-1a2b3c4d5e6f")
            let error = await expectVigilError(.invalidArgument) { _ = try await client.ingest([event, event]) }
            #expect(error?.eventErrors.first?.field == "id")
            await client.close()
        }
    }

    @Test("filters select by tenant, actor, action and prefix, resource, outcome and time range")
    func filters() async throws {
        try await withTestServer { server in
            let client = try await server.connect()
            let base = currentUnixNanos() - 3_600_000_000_000
            _ = try await client.ingest([
                makeEvent(tenant: "a", actor: "alice", action: "auth.login", at: base, outcome: .failure),
                makeEvent(tenant: "a", actor: "bob", action: "auth.mfa.verify", at: base + 1_000),
                makeEvent(tenant: "b", actor: "alice", action: "authz.check", at: base + 2_000, resourceType: "doc", resourceID: "d-1"),
                makeEvent(tenant: "b", actor: "carol", action: "user.delete", at: base + 3_000, outcome: .denied, resourceID: "r-9"),
            ])
            func actors(_ configure: (inout Vigil_V1_Filter) -> Void) async throws -> [String] {
                var filter = Vigil_V1_Filter()
                configure(&filter)
                return try await collect(client, queryRequest { $0.filter = filter; $0.order = .oldestFirst }).map(\.actor.id)
            }
            #expect(try await actors { $0.tenants = ["a"] } == ["alice", "bob"])
            #expect(try await actors { $0.actorIds = ["alice"] } == ["alice", "alice"])
            #expect(try await actors { $0.actions = ["auth.*"] } == ["alice", "bob"])
            #expect(try await actors { $0.actions = ["authz.check", "user.delete"] } == ["alice", "carol"])
            #expect(try await actors { $0.resourceTypes = ["doc"] } == ["alice"])
            #expect(try await actors { $0.resourceIds = ["r-9"] } == ["carol"])
            #expect(try await actors { $0.outcomes = [.failure, .denied] } == ["alice", "carol"])
            #expect(try await actors { $0.since = .init(unixNanos: base + 1_000); $0.until = .init(unixNanos: base + 3_000) } == ["bob", "alice"])
            #expect(try await actors { $0.tenants = ["b"]; $0.actorIds = ["alice"] } == ["alice"])
            _ = await expectVigilError(.invalidArgument) {
                _ = try await actors { $0.since = .init(unixNanos: base); $0.until = .init(unixNanos: base) }
            }
            _ = await expectVigilError(.invalidArgument) { _ = try await actors { $0.actions = ["auth*"] } }
            await client.close()
        }
    }

    @Test("newest first by default, oldest first on request, limit honoured, equal times ordered by seq")
    func ordering() async throws {
        try await withTestServer { server in
            let client = try await server.connect()
            let time = currentUnixNanos() - 1_000_000_000
            _ = try await client.ingest((0..<5).map { makeEvent(actor: "u-\($0)", at: time) })
            _ = try await client.ingest([makeEvent(actor: "early", at: time - 10)])
            let newest = try await collect(client, queryRequest())
            #expect(newest.map(\.actor.id) == ["u-4", "u-3", "u-2", "u-1", "u-0", "early"])
            let oldest = try await collect(client, queryRequest { $0.order = .oldestFirst; $0.limit = 3 })
            #expect(oldest.map(\.actor.id) == ["early", "u-0", "u-1"])
            _ = await expectVigilError(.invalidArgument) { _ = try await collect(client, queryRequest { $0.pageSize = 10_001 }) }
            // An order this server does not know (a newer client's) is refused, not read as the default.
            let unknownOrder = await expectVigilError(.invalidArgument) {
                _ = try await collect(client, queryRequest { $0.order = .UNRECOGNIZED(7) })
            }
            #expect(unknownOrder?.message.contains("order 7") == true, "\(String(describing: unknownOrder))")
            await client.close()
        }
    }

    @Test("cursor paging over 10,000 events, with ingest going on, has no duplicate and no gap")
    func cursorPaging() async throws {
        try await withTestServer { server in
            let client = try await server.connect()
            let start = currentUnixNanos() - 86_400_000_000_000
            var expected: [String] = []
            for batch in 0..<10 {
                let events = (0..<1_000).map { index in
                    // Shuffled times with collisions, so order by (time, seq) matters.
                    makeEvent(actor: "u-\(batch)-\(index)", at: start + Int64((index * 7919 + batch * 13) % 5_000) * 1_000_000)
                }
                _ = try await client.ingest(events)
                expected += events.map(\.actor.id)
            }
            let until = Google_Protobuf_Timestamp(unixNanos: start + 10_000_000_000)
            for order in [Vigil_V1_Order.newestFirst, .oldestFirst] {
                var seen: [String] = []
                var seenKeys: [(Int64, UInt64)] = []
                var cursor = ""
                var calls = 0
                repeat {
                    var pageCursor = ""
                    var pages = client.queryPages(queryRequest {
                        $0.order = order
                        $0.limit = 700
                        $0.pageSize = 128
                        $0.cursor = cursor
                        $0.filter.until = until
                    }).makeAsyncIterator()
                    while let page = try await pages.next() {
                        seen += page.events.map(\.actor.id)
                        seenKeys += page.events.map { ($0.occurredAt.unixNanos, $0.seq) }
                        pageCursor = page.cursor
                    }
                    cursor = pages.trailers["vigil.exhausted"] == "true" ? "" : pageCursor
                    calls += 1
                    // Ingest between pages: new events outside the filter's range must not disturb paging.
                    _ = try await client.ingest([makeEvent(actor: "late-\(calls)")])
                } while !cursor.isEmpty && calls < 100
                #expect(seen.count == 10_000)
                #expect(Set(seen).count == 10_000, "no duplicate")
                #expect(Set(seen) == Set(expected), "no gap")
                let sorted = zip(seenKeys, seenKeys.dropFirst()).allSatisfy { order == .oldestFirst ? $0 < $1 : $0 > $1 }
                #expect(sorted, "strictly ordered by (occurred_at, seq)")
            }
            await client.close()
        }
    }

    @Test("a cursor is refused for another filter or order, or when it is not a cursor")
    func cursorMisuse() async throws {
        try await withTestServer { server in
            let client = try await server.connect()
            _ = try await client.ingest((0..<3).map { makeEvent(actor: "u-\($0)") })
            var pages = client.queryPages(queryRequest { $0.pageSize = 1; $0.limit = 1 }).makeAsyncIterator()
            let page = try #require(try await pages.next())
            while try await pages.next() != nil {}
            let rest = try await collect(client, queryRequest { $0.cursor = page.cursor })
            #expect(rest.count == 2)
            _ = await expectVigilError(.invalidArgument) { _ = try await collect(client, queryRequest { $0.cursor = page.cursor; $0.order = .oldestFirst }) }
            _ = await expectVigilError(.invalidArgument) { _ = try await collect(client, queryRequest { $0.cursor = page.cursor; $0.filter.tenants = ["acme"] }) }
            _ = await expectVigilError(.invalidArgument) { _ = try await collect(client, queryRequest { $0.cursor = "garbage" }) }
            await client.close()
        }
    }

    @Test("GetStats reports the events stored, the last seq, bytes on disk and the start time")
    func getStats() async throws {
        try await withTestServer { server in
            let client = try await server.connect()
            let before = currentUnixNanos()
            let stored = try await client.ingest((0..<25).map { makeEvent(actor: "u-\($0)") })
            let stats = try await client.stats()
            #expect(stats.eventsStored == 25)
            #expect(stats.lastSeq == stored.lastSeq)
            #expect(stats.bytesOnDisk > 0, "the WAL holds the batch")
            #expect(stats.startedAt.unixNanos <= before)
            await client.close()
        }
    }

    @Test("many tasks share one connection: concurrent ingests get disjoint seq ranges")
    func concurrentCalls() async throws {
        try await withTestServer { server in
            let client = try await server.connect()
            let acks = try await withThrowingTaskGroup(of: Vigil_V1_IngestResponse.self) { group in
                for task in 0..<50 {
                    group.addTask { try await client.ingest((0..<20).map { makeEvent(actor: "t\(task)-\($0)") }) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let seqs = acks.flatMap { Array($0.firstSeq...$0.lastSeq) }
            #expect(Set(seqs).count == 1_000)
            #expect(try await collect(client, queryRequest { $0.limit = 0 }).count == 1_000)
            await client.close()
        }
    }

    @Test("compressed requests are accepted")
    func compressedRequests() async throws {
        try await withTestServer { server in
            var configuration = server.clientConfiguration
            configuration.compressRequests = true
            let client = try await VigilClient.connect(configuration)
            let ack = try await client.ingest((0..<200).map { makeEvent(actor: "u-\($0)") })
            #expect(ack.count == 200)
            await client.close()
        }
    }
}
