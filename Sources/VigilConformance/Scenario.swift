import Foundation
import SwiftProtobuf
import VigilClient
import VigilCore
import VigilProto

/// A step whose answer is not what the scenario needs to go on.
struct ScenarioFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The conformance scenario (`Clients/conformance/SCENARIO.md`), step by step,
/// as the Python reference (`vigil_client/conformance.py`) runs it.
struct Scenario {
    /// Every call's deadline.
    static let callTimeout: Duration = .seconds(30)

    let client: VigilClient
    let tenant: String
    /// The 260 events of `events.jsonl`, in the tenant.
    let events: [AuditEvent]
    /// Prints one step's line.
    let emit: (CanonicalJSON) throws -> Void

    func run() async throws {
        // 1. ingest: 100, 100, 40 with keys T-batch-0…2, then batch 0 again.
        let batches = [Array(events[0..<100]), Array(events[100..<200]), Array(events[200..<240])]
        var answers: [Vigil_V1_IngestResponse] = []
        for (number, batch) in batches.enumerated() {
            answers.append(try await client.ingest(batch, idempotencyKey: "\(tenant)-batch-\(number)", timeout: Self.callTimeout))
        }
        let again = try await client.ingest(batches[0], idempotencyKey: "\(tenant)-batch-0", timeout: Self.callTimeout)
        try emit([
            "step": "ingest",
            "stored": .integer(answers.reduce(0) { $0 + Int($1.count) }),
            "replayed": .bool(again.replayed),
            "seq_span": .integer(Int(answers[2].lastSeq) - Int(answers[0].firstSeq)),
        ])

        // 2. query-all: oldest first, pages of 50, every page.
        var all = query(.oldestFirst)
        all.pageSize = 50
        var pages = 0
        var stored: [AuditEvent] = []
        for try await page in client.queryPages(all, timeout: Self.callTimeout) {
            pages += 1
            stored += page.events
        }
        let ids = Dictionary(stored.map { ($0.requestID, $0.id) }, uniquingKeysWith: { _, last in last })
        try emit(["step": "query-all", "pages": .integer(pages), "request_ids": .strings(stored.map(\.requestID))])

        // 3. query-resume: newest first, limit 70, pages of 25; resume from the trailers' cursor.
        var calls = 0
        var resumed: [String] = []
        var cursor = ""
        while true {
            var request = query(.newestFirst)
            request.limit = 70
            request.pageSize = 25
            request.cursor = cursor
            var call = client.queryPages(request, timeout: Self.callTimeout).makeAsyncIterator()
            var got: [AuditEvent] = []
            while let page = try await call.next() { got += page.events }
            calls += 1
            resumed += got.map(\.requestID)
            if got.isEmpty { break }
            guard let next = call.trailers["vigil.cursor"], !next.isEmpty else {
                throw ScenarioFailure("a query call that returned events has no vigil.cursor in its trailers")
            }
            cursor = next
        }
        try emit(["step": "query-resume", "calls": .integer(calls), "request_ids": .strings(resumed)])

        // 4–7. filtered queries.
        var failedLogins = query(.newestFirst)
        failedLogins.filter.actions = ["auth.login"]
        failedLogins.filter.outcomes = [.failure]
        try emit(["step": "failed-logins", "request_ids": .strings(try await requestIDs(failedLogins))])

        var actor = query(.newestFirst)
        actor.filter.actorIds = ["u-7"]
        try emit(["step": "actor", "request_ids": .strings(try await requestIDs(actor))])

        var search = query(.newestFirst)
        search.filter.search = "acme"
        try emit(["step": "search", "request_ids": .strings(try await requestIDs(search))])

        var timeRange = query(.oldestFirst)
        timeRange.filter.since = try Self.timestamp("2026-11-18T12:00:00Z")
        timeRange.filter.until = try Self.timestamp("2026-11-18T13:00:00Z")
        try emit(["step": "time-range", "request_ids": .strings(try await requestIDs(timeRange))])

        // 8. count-by-action.
        var count = Vigil_V1_AggregateRequest()
        count.filter.tenants = [tenant]
        count.groupBy = .action
        count.top = 100
        let counted = try await client.aggregate(count, timeout: Self.callTimeout)
        try emit([
            "step": "count-by-action",
            "count": .integer(Int(counted.count)),
            "groups": .array(counted.groups.map { [.string($0.key), .integer(Int($0.count))] }),
        ])

        // 9. get conf-0042 by the id step 2 returned.
        guard let id = ids["conf-0042"] else { throw ScenarioFailure("step 2 did not return the event conf-0042") }
        let event = try await client.get(id: id, timeout: Self.callTimeout)
        try emit(["step": "get", "request_id": .string(event.requestID), "action": .string(event.action)])

        // 10. subscribe since a time, 100 events; ingest 20 more; resume from the 100th's cursor for 160.
        var since = Vigil_V1_SubscribeRequest()
        since.filter.tenants = [tenant]
        since.since = try Self.timestamp("2026-11-18T00:00:00Z")
        let first = try await subscribe(since, count: 100)
        _ = try await client.ingest(Array(events[240..<260]), idempotencyKey: "\(tenant)-batch-3", timeout: Self.callTimeout)
        var resume = Vigil_V1_SubscribeRequest()
        resume.filter.tenants = [tenant]
        resume.cursor = first.cursor
        let second = try await subscribe(resume, count: 160)
        try emit(["step": "subscribe", "first": .strings(first.requestIDs), "resumed": .strings(second.requestIDs)])

        // 11. errors.
        var codes: [Int] = []
        var tooLarge = query(.newestFirst)
        tooLarge.pageSize = 20_000
        codes.append(try await expectFailure { for try await _ in client.queryPages(tooLarge, timeout: Self.callTimeout) {} }.code)
        codes.append(try await expectFailure { _ = try await client.get(id: "not-a-uuid", timeout: Self.callTimeout) }.code)
        codes.append(try await expectFailure {
            _ = try await client.get(id: "00000000-0000-7000-8000-000000000000", timeout: Self.callTimeout)
        }.code)
        var bad = events[0]
        bad.action = ""
        let refused = try await expectFailure { _ = try await client.ingest([bad], timeout: Self.callTimeout) }
        codes.append(refused.code)
        let invalidIndexes = Set(refused.error.eventErrors.map { Int($0.index) }).sorted()
        try emit(["step": "errors", "codes": .array(codes.map(CanonicalJSON.integer)), "invalid_indexes": .array(invalidIndexes.map(CanonicalJSON.integer))])
    }

    /// A query of the tenant's events in `order`.
    private func query(_ order: Vigil_V1_Order) -> Vigil_V1_QueryRequest {
        var request = Vigil_V1_QueryRequest()
        request.filter.tenants = [tenant]
        request.order = order
        return request
    }

    /// The request ids of every event a query returns, in order.
    private func requestIDs(_ request: Vigil_V1_QueryRequest) async throws -> [String] {
        var ids: [String] = []
        for try await event in client.query(request, timeout: Self.callTimeout) { ids.append(event.requestID) }
        return ids
    }

    /// Reads `count` events (skipping heartbeats) of a new subscription, then
    /// cancels it: returning drops the call's iterator, which sends CANCEL.
    private func subscribe(_ request: Vigil_V1_SubscribeRequest, count: Int) async throws -> (requestIDs: [String], cursor: String) {
        var ids: [String] = []
        for try await item in client.subscribe(request, timeout: Self.callTimeout) {
            guard let event = item.event else { continue }
            ids.append(event.requestID)
            if ids.count == count { return (ids, item.cursor) }
        }
        throw ScenarioFailure("the subscription ended after \(ids.count) of \(count) events")
    }

    /// Runs a call that must fail with a status; returns that status.
    private func expectFailure(_ call: () async throws -> Void) async throws -> (code: Int, error: VigilError) {
        do {
            try await call()
        } catch let error as VigilError {
            return (Int(error.code.status.rawValue), error)
        }
        throw ScenarioFailure("a call that must fail succeeded")
    }

    private static func timestamp(_ text: String) throws -> Google_Protobuf_Timestamp {
        try Google_Protobuf_Timestamp(jsonString: "\"\(text)\"")
    }
}
