import Foundation
import Synchronization
import Testing
import VigilClient
import VigilCore
import VigilProto
import VigilStorage

/// What a consumer task received, shared with the test that waits for it.
final class SubscriptionRecord: Sendable {
    struct State {
        var items: [SubscriptionItem] = []
        var connectionEvents: [SubscriptionConnectionEvent] = []
        var ending: String?
    }
    let state = Mutex(State())

    var events: [AuditEvent] { state.withLock { $0.items.compactMap(\.event) } }
    var connectionEvents: [SubscriptionConnectionEvent] { state.withLock { $0.connectionEvents } }

    func append(_ item: SubscriptionItem) { state.withLock { $0.items.append(item) } }
    func record(_ event: SubscriptionConnectionEvent) { state.withLock { $0.connectionEvents.append(event) } }

    /// The codes and cursors of the interruptions so far.
    var interruptions: [(code: VigilError.Code, cursor: String?)] {
        connectionEvents.compactMap {
            if case .interrupted(let error, _, _, let cursor) = $0 { return (error.code, cursor) }
            return nil
        }
    }

    var resumptions: Int {
        connectionEvents.count { if case .resumed = $0 { true } else { false } }
    }
}

/// Waits until `condition` holds, checking every few milliseconds, for at most `timeout`.
func waitUntil(
    _ what: String, timeout: Duration = .seconds(60), sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while try await !condition() {
        guard ContinuousClock.now < deadline else {
            Issue.record("timed out waiting until \(what)", sourceLocation: sourceLocation)
            throw CancellationError()
        }
        try await Task.sleep(for: .milliseconds(10))
    }
}

/// The Swift client's subscriptions against a real server in-process: the
/// plain one-connection `Subscription` and the `ResilientSubscription` that
/// reconnects and resumes by itself.
@Suite("Subscriptions through the Swift client", .timeLimit(.minutes(3)))
struct SubscriptionClientTests {
    static func events(_ tag: String, count: Int) -> [AuditEvent] {
        (0..<count).map { index in
            makeEvent(
                tenant: index % 2 == 0 ? "acme" : "globex", actor: "\(tag)-\(index)",
                action: index % 4 < 2 ? "auth.login" : "user.update")
        }
    }

    static func request(_ configure: (inout Vigil_V1_SubscribeRequest) -> Void) -> Vigil_V1_SubscribeRequest {
        var request = Vigil_V1_SubscribeRequest()
        configure(&request)
        return request
    }

    /// Every stored event matching `filter`, in seq order.
    static func stored(_ client: VigilClient, _ filter: Vigil_V1_Filter) async throws -> [AuditEvent] {
        try await collect(client, queryRequest {
            $0.filter = filter
            $0.order = .oldestFirst
            $0.pageSize = 10_000
        }).sorted { $0.seq < $1.seq }
    }

    /// The next `count` events of a subscription (heartbeats skipped), with the cursor after each.
    static func take(_ count: Int, from iterator: inout Subscription.Iterator) async throws -> [(event: AuditEvent, cursor: String)] {
        var taken: [(AuditEvent, String)] = []
        while taken.count < count {
            guard let item = try await iterator.next() else { break }
            if let event = item.event { taken.append((event, item.cursor)) }
        }
        return taken
    }

    static func tenantFilter(_ tenant: String) -> Vigil_V1_Filter {
        var filter = Vigil_V1_Filter()
        filter.tenants = [tenant]
        return filter
    }

    /// Quick retries, so that tests spend little time in backoff.
    static var quickReconnect: ReconnectPolicy {
        var policy = ReconnectPolicy()
        policy.initialDelay = .milliseconds(20)
        policy.maxDelay = .milliseconds(200)
        return policy
    }

    @Test("subscribe: stored matches since a time, then live ones, in seq order under a small window; an item's cursor resumes with no repeat")
    func catchUpThenLive() async throws {
        try await withTestServer { server in
            let client = try await server.connect()
            for round in 0..<3 { _ = try await client.ingest(Self.events("pre\(round)", count: 40)) }
            let filter = Self.tenantFilter("acme")
            let before = try await Self.stored(client, filter)
            #expect(before.count == 60)

            // Window 4: sixty events need credit granted back many times over.
            var iterator = client.subscribe(Self.request { $0.filter = filter; $0.since = .init(unixNanos: 0) }, window: 4).makeAsyncIterator()
            let caughtUp = try await Self.take(before.count, from: &iterator)
            #expect(caughtUp.map(\.event.seq) == before.map(\.seq))
            #expect(caughtUp.map(\.event) == before)
            #expect(Set(caughtUp.map(\.cursor)).count == caughtUp.count, "every item has its own cursor")

            for round in 0..<2 { _ = try await client.ingest(Self.events("live\(round)", count: 40)) }
            let all = try await Self.stored(client, filter)
            let live = try await Self.take(all.count - before.count, from: &iterator)
            #expect(live.map(\.event.seq) == all.dropFirst(before.count).map(\.seq))

            // Resume from the middle of what was delivered: the rest, nothing before.
            let middle = caughtUp[29]
            var resumed = client.subscribe(Self.request { $0.filter = filter; $0.cursor = middle.cursor }).makeAsyncIterator()
            let rest = try await Self.take(all.count - 30, from: &resumed)
            #expect(rest.map(\.event.seq) == all.dropFirst(30).map(\.seq))
            #expect(rest.first?.event.seq ?? 0 > middle.event.seq)
            await client.close()
        }
    }

    @Test("heartbeats arrive while nothing matches and carry the position: resuming from one gives only later events")
    func heartbeatCursor() async throws {
        try await withTestServer(configure: { $0.heartbeatInterval = .milliseconds(100) }) { server in
            let client = try await server.connect()
            _ = try await client.ingest(Self.events("before", count: 10))
            var iterator = client.subscribe(Self.request { $0.fromNow = true }).makeAsyncIterator()
            let first = try #require(try await iterator.next())
            #expect(first.isHeartbeat)
            #expect(first.event == nil)
            #expect(!first.cursor.isEmpty)
            #expect(iterator.cursor == first.cursor)

            let ack = try await client.ingest(Self.events("after", count: 5))
            var resumed = client.subscribe(Self.request { $0.cursor = first.cursor }).makeAsyncIterator()
            let events = try await Self.take(5, from: &resumed)
            #expect(events.map(\.event.seq) == Array(ack.firstSeq...ack.lastSeq))
            await client.close()
        }
    }

    @Test("a subscription the server refuses throws its error; the resilient one does not retry it")
    func refused() async throws {
        try await withTestServer { server in
            let client = try await server.connect()
            _ = try await client.ingest(Self.events("x", count: 4))
            // A cursor of another filter.
            let foreign = SubscriptionCursor(seq: 1, filterFingerprint: EventFilter.fingerprint(of: Vigil_V1_Filter())).encoded
            let request = Self.request { $0.filter = Self.tenantFilter("acme"); $0.cursor = foreign }
            _ = await expectVigilError(.invalidArgument) {
                for try await _ in client.subscribe(request) {}
            }
            let record = SubscriptionRecord()
            let resilient = VigilClient.resilientSubscription(
                request, configuration: server.clientConfiguration, reconnect: Self.quickReconnect, onConnectionEvent: record.record)
            let error = await expectVigilError(.invalidArgument) {
                for try await _ in resilient {}
            }
            #expect(error?.message.contains("different filter") == true, "\(String(describing: error))")
            #expect(record.connectionEvents.isEmpty, "INVALID_ARGUMENT is not retried")

            // No server at all: with retryInitialConnection off, UNAVAILABLE at once;
            // otherwise retried, here up to maxConsecutiveFailures.
            var strict = Self.quickReconnect
            strict.retryInitialConnection = false
            let nowhere = VigilClient.Configuration(host: "127.0.0.1", port: 1)
            _ = await expectVigilError(.unavailable) {
                for try await _ in VigilClient.resilientSubscription(Vigil_V1_SubscribeRequest(), configuration: nowhere, reconnect: strict) {}
            }
            var limited = Self.quickReconnect
            limited.maxConsecutiveFailures = 3
            let attempts = SubscriptionRecord()
            _ = await expectVigilError(.unavailable) {
                for try await _ in VigilClient.resilientSubscription(
                    Vigil_V1_SubscribeRequest(), configuration: nowhere, reconnect: limited, onConnectionEvent: attempts.record) {}
            }
            #expect(attempts.interruptions.count == 3, "three retries, then the error")
            await client.close()
        }
    }

    @Test("resilient: resumes across a graceful shutdown and a restart on the same port — every match once, in seq order")
    func resumesAcrossRestart() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-subclient-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var options = StorageOptions(directory: directory)
        options.retentionNanos = nil
        var filter = Vigil_V1_Filter()
        filter.actions = ["auth.*"]
        let record = SubscriptionRecord()

        // Both servers listen on one port, outside the range port 0 draws from.
        var consumer: Task<Void, any Error>?
        let port = try portBelowEphemeralRange()
        try await withTestServer(configure: { $0.port = port }, store: try ColumnarEventStore(options: options)) { server in
            let writer = try await server.connect()
            _ = try await writer.ingest(Self.events("one", count: 40))
            let subscription = VigilClient.resilientSubscription(
                Self.request { $0.filter = filter; $0.since = .init(unixNanos: 0) },
                configuration: server.clientConfiguration, window: 8, reconnect: Self.quickReconnect,
                onConnectionEvent: record.record)
            consumer = Task {
                for try await item in subscription { record.append(item) }
            }
            try await waitUntil("the stored matches arrived") { record.events.count == 20 }
            _ = try await writer.ingest(Self.events("two", count: 40))
            try await waitUntil("the live matches arrived") { record.events.count == 40 }
            await writer.close()
        }
        // Shut down gracefully: the subscription ended with UNAVAILABLE and a cursor.
        try await waitUntil("the subscription saw the shutdown") { !record.interruptions.isEmpty }
        let first = try #require(record.interruptions.first)
        #expect(first.code == .unavailable)
        #expect(first.cursor != nil, "UNAVAILABLE carries vigil.cursor")

        try await withTestServer(configure: { $0.port = port }, store: try ColumnarEventStore(options: options)) { server in
            let writer = try await server.connect()
            _ = try await writer.ingest(Self.events("three", count: 40))
            let expected = try await Self.stored(writer, filter)
            #expect(expected.count == 60)
            try await waitUntil("every match arrived after the restart") { record.events.count >= expected.count }
            // One more live batch: nothing extra arrives before it.
            let ack = try await writer.ingest(Self.events("four", count: 4))
            try await waitUntil("the last batch arrived") { record.events.count >= expected.count + 2 }
            #expect(record.events.map(\.seq) == expected.map(\.seq) + [ack.firstSeq, ack.firstSeq + 1])
            #expect(record.events.dropLast(2) == expected[...])
            #expect(record.resumptions >= 1)
            consumer?.cancel()
            let ending = await consumer?.result
            if case .failure(let error) = ending {
                #expect(error is CancellationError, "cancellation ends the sequence: \(error)")
            }
            await writer.close()
        }
    }

    @Test("resilient: a consumer that falls behind is cut off with RESOURCE_EXHAUSTED and resumes through catch-up")
    func resumesAfterCutOff() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-subclient-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var options = StorageOptions(directory: directory)
        options.retentionNanos = nil
        options.liveFeedBytes = 256 * 1024  // a live window of a few batches
        let store = try ColumnarEventStore(options: options)
        try await withTestServer(store: store) { server in
            let writer = try await server.connect()
            _ = try await writer.ingest(Self.events("first", count: 2))
            let record = SubscriptionRecord()
            let subscription = VigilClient.resilientSubscription(
                Self.request { $0.since = .init(unixNanos: 0) }, configuration: server.clientConfiguration, window: 16,
                reconnect: Self.quickReconnect, onConnectionEvent: record.record)
            var iterator = subscription.makeAsyncIterator()
            let firstItem = try #require(try await iterator.next())
            #expect(firstItem.event?.seq == 1)
            // Live now (a batch published while subscribed stays in the ring for it)…
            _ = try await writer.ingest(Self.events("live", count: 2))
            try await waitUntil("the subscriber holds the live ring") { store.feed.oldestInRing <= store.feed.head }
            // …then the consumer stops taking items while ingest goes on, until the
            // server lets go of the subscription (the ring empties when its last reader leaves).
            var rounds = 0
            while store.feed.oldestInRing <= store.feed.head {
                _ = try await writer.ingest(Self.events("flood\(rounds)", count: 200))
                rounds += 1
                try #require(rounds < 2_000, "2,000 batches went by and the subscriber was not cut off")
            }
            let expected = try await Self.stored(writer, Vigil_V1_Filter())
            var seqs: [UInt64] = [1]
            while seqs.count < expected.count, let item = try await iterator.next() {
                if let event = item.event { seqs.append(event.seq) }
            }
            #expect(seqs == expected.map(\.seq), "every event once, in seq order")
            let cutOff = try #require(record.interruptions.first)
            #expect(cutOff.code == .resourceExhausted)
            #expect(cutOff.cursor != nil, "RESOURCE_EXHAUSTED carries vigil.cursor")
            #expect(iterator.cursor != nil)
            await writer.close()
        }
    }

    @Test("cancelling the consuming task, or dropping a subscription's iterator, ends the subscription on the server")
    func cancellation() async throws {
        try await withTestServer { server in
            let store = server.store
            let writer = try await server.connect()
            _ = try await writer.ingest(Self.events("a", count: 2))
            let record = SubscriptionRecord()
            let subscription = VigilClient.resilientSubscription(
                Self.request { $0.since = .init(unixNanos: 0) }, configuration: server.clientConfiguration)
            let consumer = Task {
                for try await item in subscription { record.append(item) }
            }
            try await waitUntil("the stored events arrived") { record.events.count == 2 }
            _ = try await writer.ingest(Self.events("b", count: 2))
            try await waitUntil("the live events arrived") { record.events.count == 4 }
            #expect(store.feed.oldestInRing <= store.feed.head, "a live subscriber holds the ring")
            consumer.cancel()
            if case .failure(let error) = await consumer.result {
                #expect(error is CancellationError, "\(error)")
            }
            try await waitUntil("the server let go of the subscription") { store.feed.oldestInRing > store.feed.head }

            // The plain subscription: leaving the loop cancels the call; the connection stays usable.
            do {
                var iterator = writer.subscribe(Self.request { $0.since = .init(unixNanos: 0) }).makeAsyncIterator()
                _ = try await Self.take(4, from: &iterator)
                _ = try await writer.ingest(Self.events("c", count: 2))
                _ = try await Self.take(2, from: &iterator)
                #expect(store.feed.oldestInRing <= store.feed.head)
            }
            try await waitUntil("the server let go of the dropped subscription") { store.feed.oldestInRing > store.feed.head }
            #expect(try await Self.stored(writer, Vigil_V1_Filter()).count == 6)
            await writer.close()
        }
    }

    @Test("reconnect delays grow exponentially up to the cap, less at most the jitter")
    func backoff() {
        var policy = ReconnectPolicy()
        policy.initialDelay = .milliseconds(100)
        policy.maxDelay = .seconds(2)
        policy.jitter = 0.5
        var generator = SystemRandomNumberGenerator()
        for failures in 1...12 {
            let base = min(2.0, 0.1 * pow(2.0, Double(failures - 1)))
            for _ in 0..<20 {
                let delay = policy.delay(afterFailures: failures, using: &generator)
                let seconds = Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18
                #expect(seconds <= base + 1e-6 && seconds >= base * 0.5 - 1e-6, "attempt \(failures): \(seconds)s, base \(base)s")
            }
        }
        policy.jitter = 0
        #expect(policy.delay(afterFailures: 3, using: &generator) == .milliseconds(400))
        #expect(policy.delay(afterFailures: 1_000, using: &generator) == .seconds(2))
    }
}
