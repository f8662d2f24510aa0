import Foundation
import NIOCore
import SwiftProtobuf
import Synchronization
import Testing
import VigilClient
import VigilCore
import VigilProto
import VigilStorage
import VigilWire

/// Subscribe over a real connection, spoken frame by frame so that credit is
/// exactly what each test grants.
@Suite("Subscriptions over a real connection")
struct SubscribeTests {
    static func subscribeRequest(_ configure: (inout Vigil_V1_SubscribeRequest) -> Void) -> Vigil_V1_SubscribeRequest {
        var request = Vigil_V1_SubscribeRequest()
        configure(&request)
        return request
    }

    /// What a subscription delivered, frame by frame, until `done` says stop or the call ends.
    struct Received {
        var events: [AuditEvent] = []
        var heartbeats = 0
        var lastCursor = ""
        var status: Vigil_V1_Status?
    }

    /// Ingests 200-event batches at full speed until the call `streamID` on
    /// `raw` ends: its status, and how many frames came before its trailers
    /// (nil, recorded as an issue, when 2,000 batches went by first).
    static func floodUntilEnded(
        _ writer: VigilClient, _ raw: RawConnection, streamID: UInt32
    ) async throws -> (status: Vigil_V1_Status, messagesBefore: Int)? {
        try await withThrowingTaskGroup(of: (status: Vigil_V1_Status, messagesBefore: Int)?.self) { group in
            group.addTask {
                for round in 0..<2_000 {
                    try Task.checkCancellation()
                    _ = try await writer.ingest(Self.batch("flood\(round)", tenant: "acme", count: 200))
                }
                Issue.record("2,000 batches went by and the subscriber was not cut off")
                return nil
            }
            group.addTask {
                let (frame, before) = try await raw.readUntil(.trailers, streamID: streamID, timeout: .seconds(120))
                return (try frame.decode(Vigil_V1_Status.self), before.count)
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    static func receive(
        _ connection: RawConnection, streamID: UInt32, sourceLocation: SourceLocation = #_sourceLocation,
        until done: (Received) -> Bool
    ) async throws -> Received {
        var received = Received()
        while !done(received) {
            let frame = try await connection.readFrame(sourceLocation: sourceLocation)
            guard frame.streamID == streamID else { continue }
            switch frame.type {
            case .message:
                let response = try frame.decode(Vigil_V1_SubscribeResponse.self)
                received.lastCursor = response.cursor
                switch response.item {
                case .event(let event): received.events.append(event)
                case .heartbeat: received.heartbeats += 1
                case .none: Issue.record("a subscription message without an item")
                }
            case .trailers:
                received.status = try frame.decode(Vigil_V1_Status.self)
                return received
            default:
                break
            }
        }
        return received
    }

    /// Every stored event of `tenant`, by seq.
    static func stored(_ client: VigilClient, tenant: String? = nil) async throws -> [AuditEvent] {
        var request = Vigil_V1_QueryRequest()
        request.order = .oldestFirst
        request.pageSize = 10_000
        if let tenant { request.filter.tenants = [tenant] }
        var events: [AuditEvent] = []
        for try await event in client.query(request) { events.append(event) }
        return events.sorted { $0.seq < $1.seq }
    }

    static func batch(_ tag: String, tenant: String, count: Int) -> [AuditEvent] {
        (0..<count).map { index in
            makeEvent(tenant: tenant, actor: "\(tag)-\(index)", action: index % 2 == 0 ? "auth.login" : "user.update")
        }
    }

    @Test("catch-up then live under concurrent ingest from several connections: every match once, in seq order")
    func catchUpToLive() async throws {
        try await withTestServer { server in
            let writer = try await server.connect()
            for round in 0..<5 { _ = try await writer.ingest(Self.batch("pre\(round)", tenant: round % 2 == 0 ? "acme" : "globex", count: 100)) }
            try await RawConnection.with(port: server.port) { raw in
                _ = try await raw.handshake()
                let request = Self.subscribeRequest {
                    $0.filter.tenants = ["acme"]
                    $0.since = .init(unixNanos: 0)
                }
                try await raw.startCall(streamID: 1, method: .subscribe, request: request, initialWindow: 1_000_000)
                // Three connections ingest while the subscription catches up and goes live.
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for connection in 0..<3 {
                        group.addTask {
                            let client = try await server.connect()
                            for round in 0..<20 {
                                _ = try await client.ingest(Self.batch("c\(connection)r\(round)", tenant: round % 2 == 0 ? "acme" : "globex", count: 50))
                            }
                            await client.close()
                        }
                    }
                    try await group.waitForAll()
                }
                let expected = try await Self.stored(writer, tenant: "acme")
                let received = try await Self.receive(raw, streamID: 1) { $0.events.count >= expected.count }
                #expect(received.status == nil, "the subscription is still open")
                #expect(received.events.map(\.seq) == expected.map(\.seq))
                #expect(received.events == expected)
            }
            await writer.close()
        }
    }

    @Test("from now delivers only what is stored afterwards; heartbeats carry the position while idle")
    func fromNowAndHeartbeats() async throws {
        try await withTestServer(configure: { $0.heartbeatInterval = .milliseconds(100) }) { server in
            let writer = try await server.connect()
            _ = try await writer.ingest(Self.batch("before", tenant: "acme", count: 10))
            try await RawConnection.with(port: server.port) { raw in
                _ = try await raw.handshake()
                try await raw.startCall(streamID: 1, method: .subscribe, request: Self.subscribeRequest { $0.fromNow = true }, initialWindow: 1_000)
                let idle = try await Self.receive(raw, streamID: 1) { $0.heartbeats >= 1 }
                #expect(idle.events.isEmpty)
                let cursor = try SubscriptionCursor(decoding: idle.lastCursor, filterFingerprint: EventFilter.fingerprint(of: Vigil_V1_Filter()))
                #expect(cursor.seq == 10, "the heartbeat's cursor is the current position")
                let ack = try await writer.ingest(Self.batch("after", tenant: "acme", count: 5))
                let live = try await Self.receive(raw, streamID: 1) { $0.events.count >= 5 }
                #expect(live.events.map(\.seq) == Array(ack.firstSeq...ack.lastSeq))
            }
            await writer.close()
        }
    }

    @Test("a subscription that matches nothing on a busy server still gets heartbeats, carrying the position past what it skipped")
    func heartbeatsWhileOthersIngest() async throws {
        try await withTestServer(configure: { $0.heartbeatInterval = .milliseconds(100) }) { server in
            let writer = try await server.connect()
            let before = try await writer.ingest(Self.batch("before", tenant: "acme", count: 5))
            try await RawConnection.with(port: server.port) { raw in
                _ = try await raw.handshake()
                let request = Self.subscribeRequest {
                    $0.filter.tenants = ["nobody"]
                    $0.fromNow = true
                }
                try await raw.startCall(streamID: 1, method: .subscribe, request: request, initialWindow: 1_000)
                // Batches of another tenant keep arriving, far more often than the
                // heartbeat interval, until the subscriber has seen two heartbeats.
                final class Progress: Sendable {
                    let writing = Atomic(true)
                    let written = Atomic(UInt64(0))
                }
                let progress = Progress()
                let rounds = 5_000
                let finishedWriting = try await withThrowingTaskGroup(of: Bool.self) { group in
                    group.addTask {
                        for round in 0..<rounds where progress.writing.load(ordering: .relaxed) {
                            let ack = try await writer.ingest(Self.batch("busy\(round)", tenant: "acme", count: 1))
                            progress.written.store(ack.lastSeq, ordering: .relaxed)
                        }
                        return progress.writing.load(ordering: .relaxed)
                    }
                    var heartbeats: [SubscriptionCursor] = []
                    while heartbeats.count < 2 {
                        let frame = try await raw.readFrame()
                        guard frame.streamID == 1, frame.type == .message else { continue }
                        let response = try frame.decode(Vigil_V1_SubscribeResponse.self)
                        #expect(response.item.map { if case .heartbeat = $0 { true } else { false } } == true, "only heartbeats match nothing")
                        let fingerprint = EventFilter.fingerprint(of: request.filter)
                        heartbeats.append(try SubscriptionCursor(decoding: response.cursor, filterFingerprint: fingerprint))
                    }
                    progress.writing.store(false, ordering: .relaxed)
                    let writerRanOut = try await group.next() ?? true
                    // The second heartbeat went out after batches that did not match: its position is past them.
                    #expect(heartbeats[1].seq > before.lastSeq, "the heartbeat's cursor moved past the batches it skipped")
                    #expect(heartbeats[1].seq <= progress.written.load(ordering: .relaxed))
                    return writerRanOut
                }
                #expect(!finishedWriting, "the heartbeats came while batches were still arriving, not after the \(rounds) batches")
            }
            await writer.close()
        }
    }

    /// Reads `events` events of `streamID`, granting 7 more messages each
    /// time the credit (`granted` so far) is used up — after checking, with a
    /// ping round trip, that nothing beyond it arrives. Returns the events and
    /// their messages' cursors.
    static func receiveGranting(
        _ raw: RawConnection, streamID: UInt32, events count: Int, granted initial: Int
    ) async throws -> (events: [AuditEvent], cursors: [String]) {
        var granted = initial
        var received: [AuditEvent] = []
        var cursors: [String] = []
        while received.count < count {
            let frame = try await raw.readFrame()
            guard frame.streamID == streamID, frame.type == .message else { continue }
            let response = try frame.decode(Vigil_V1_SubscribeResponse.self)
            guard case .event(let event) = response.item else { continue }
            received.append(event)
            cursors.append(response.cursor)
            #expect(received.count <= granted, "a message beyond the credit granted")
            if received.count == granted {
                // Credit used up: nothing more comes before a ping's answer.
                let early = try await raw.pingBarrier()
                #expect(!early.contains { $0.streamID == streamID && $0.type == .message }, "messages beyond the credit granted")
                let more = min(7, count - granted)
                if more > 0 {
                    granted += more
                    try await raw.sendWindow(streamID: streamID, messages: UInt32(more))
                }
            }
        }
        return (received, cursors)
    }

    @Test("catch-up with credit granted a few messages at a time: stored events arrive once each, in seq order, never more than granted")
    func catchUpCreditInSmallSteps() async throws {
        try await withTestServer { server in
            let writer = try await server.connect()
            let ack = try await writer.ingest(Self.batch("stored", tenant: "acme", count: 40))
            try await RawConnection.with(port: server.port) { raw in
                _ = try await raw.handshake()
                let hourAgo = currentUnixNanos() - 3_600_000_000_000
                try await raw.startCall(streamID: 1, method: .subscribe, request: Self.subscribeRequest { $0.since = .init(unixNanos: hourAgo) }, initialWindow: 3)
                let (received, cursors) = try await Self.receiveGranting(raw, streamID: 1, events: 40, granted: 3)
                #expect(received.map(\.seq) == Array(ack.firstSeq...ack.lastSeq))
                #expect(received.map(\.id) == (try await Self.stored(writer)).map(\.id))
                let fingerprint = EventFilter.fingerprint(of: Vigil_V1_Filter())
                #expect(try cursors.map { try SubscriptionCursor(decoding: $0, filterFingerprint: fingerprint).seq } == received.map(\.seq))
            }
            await writer.close()
        }
    }

    @Test("credit granted a few messages at a time: live events arrive once each, in seq order, never more than granted")
    func creditInSmallSteps() async throws {
        try await withTestServer { server in
            let writer = try await server.connect()
            try await RawConnection.with(port: server.port) { raw in
                _ = try await raw.handshake()
                // From an hour ago, so that a first event proves the subscription
                // runs (and reads the live feed from then on), whenever it started.
                let hourAgo = currentUnixNanos() - 3_600_000_000_000
                try await raw.startCall(streamID: 1, method: .subscribe, request: Self.subscribeRequest { $0.since = .init(unixNanos: hourAgo) }, initialWindow: 1)
                let first = try await writer.ingest(Self.batch("first", tenant: "acme", count: 1))
                let started = try await Self.receive(raw, streamID: 1) { $0.events.count == 1 }
                #expect(started.events.map(\.seq) == [first.firstSeq])
                let ack = try await writer.ingest(Self.batch("steps", tenant: "acme", count: 40))
                try await raw.sendWindow(streamID: 1, messages: 3)
                let (received, cursors) = try await Self.receiveGranting(raw, streamID: 1, events: 40, granted: 3)
                #expect(received.map(\.seq) == Array(ack.firstSeq...ack.lastSeq))
                #expect(received.map(\.id) == (try await Self.stored(writer)).dropFirst().map(\.id))
                // Each message's cursor resumes right after its event.
                let fingerprint = EventFilter.fingerprint(of: Vigil_V1_Filter())
                #expect(try cursors.map { try SubscriptionCursor(decoding: $0, filterFingerprint: fingerprint).seq } == received.map(\.seq))
                // No credit left: another batch sends nothing.
                _ = try await writer.ingest(Self.batch("unread", tenant: "acme", count: 5))
                let after = try await raw.pingBarrier()
                #expect(!after.contains { $0.streamID == 1 && $0.type == .message })
            }
            await writer.close()
        }
    }

    @Test("a subscriber that grants no credit is cut off with RESOURCE_EXHAUSTED and a cursor; resuming gets everything")
    func slowSubscriberCutOff() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-sub-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var options = StorageOptions(directory: directory)
        options.retentionNanos = nil
        options.liveFeedBytes = 256 * 1024  // a small live window: a few batches
        let store = try ColumnarEventStore(options: options)
        try await withTestServer(store: store) { server in
            let writer = try await server.connect()
            try await RawConnection.with(port: server.port) { raw in
                _ = try await raw.handshake()
                try await raw.startCall(streamID: 1, method: .subscribe, request: Self.subscribeRequest { $0.fromNow = true }, initialWindow: 1)
                // Ingest goes on at full speed; the subscriber never grants more credit.
                let ended = try await Self.floodUntilEnded(writer, raw, streamID: 1)
                #expect(ended?.messagesBefore == 1, "one message for the one unit of credit")
                let status = try #require(ended?.status)
                #expect(StatusCode(wireValue: status.code) == .resourceExhausted, "\(status)")
                let cursorText = try #require(status.metadata["vigil.cursor"])
                let cursor = try SubscriptionCursor(decoding: cursorText, filterFingerprint: EventFilter.fingerprint(of: Vigil_V1_Filter()))
                // Resume: catch-up from the store, then live, nothing lost.
                let expected = try await Self.stored(writer).filter { $0.seq > cursor.seq }
                try await raw.startCall(streamID: 3, method: .subscribe, request: Self.subscribeRequest { $0.cursor = cursorText }, initialWindow: 1_000_000)
                let resumed = try await Self.receive(raw, streamID: 3) { $0.events.count >= expected.count }
                #expect(resumed.events.map(\.seq) == expected.map(\.seq))
            }
            await writer.close()
        }
    }

    @Test("a subscriber that stops granting credit while it catches up from disk is cut off once the live stream moves on past the ring")
    func slowSubscriberCutOffCatchingUp() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-sub-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var options = StorageOptions(directory: directory)
        options.retentionNanos = nil
        options.liveFeedBytes = 256 * 1024
        let store = try ColumnarEventStore(options: options)
        try await withTestServer(store: store) { server in
            let writer = try await server.connect()
            _ = try await writer.ingest(Self.batch("stored", tenant: "acme", count: 1_000))
            try await RawConnection.with(port: server.port) { raw in
                _ = try await raw.handshake()
                // From the start, with credit for one message: it waits for
                // more with its position behind the ring, reading the store.
                try await raw.startCall(
                    streamID: 1, method: .subscribe, request: Self.subscribeRequest { $0.since = .init(unixNanos: 0) }, initialWindow: 1)
                _ = try await raw.readUntil(.message, streamID: 1)
                let ended = try await Self.floodUntilEnded(writer, raw, streamID: 1)
                #expect(ended?.messagesBefore == 0, "nothing beyond the one unit of credit")
                let status = try #require(ended?.status)
                #expect(StatusCode(wireValue: status.code) == .resourceExhausted, "\(status)")
                let cursor = try SubscriptionCursor(
                    decoding: try #require(status.metadata["vigil.cursor"]), filterFingerprint: EventFilter.fingerprint(of: Vigil_V1_Filter()))
                #expect(cursor.seq == 1, "the one event sent")
            }
            await writer.close()
        }
    }

    @Test("an idle subscriber at the head survives group commits larger than the live feed: it reads the disk, then goes live again, every event once, in seq order")
    func idleSubscriberSurvivesLargePublish() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-sub-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var options = StorageOptions(directory: directory)
        options.retentionNanos = nil
        options.liveFeedBytes = 256 * 1024  // less than one of the batches below
        let store = try ColumnarEventStore(options: options)
        try await withTestServer(store: store) { server in
            let writer = try await server.connect()
            try await RawConnection.with(port: server.port) { raw in
                _ = try await raw.handshake()
                // Credit to spare: this subscriber reads everything it is sent.
                let hourAgo = currentUnixNanos() - 3_600_000_000_000
                try await raw.startCall(
                    streamID: 1, method: .subscribe, request: Self.subscribeRequest { $0.since = .init(unixNanos: hourAgo) },
                    initialWindow: 1_000_000)
                let first = try await writer.ingest(Self.batch("first", tenant: "acme", count: 1))
                let started = try await Self.receive(raw, streamID: 1) { $0.events.count == 1 }
                #expect(started.events.map(\.seq) == [first.firstSeq], "caught up: the subscriber waits at the head")
                // Batches each larger than the ring, from four connections at
                // once: group commits publish several together, so the ring
                // drops the subscriber's next seq before it is scheduled.
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for connection in 0..<4 {
                        group.addTask {
                            let client = try await server.connect()
                            for round in 0..<3 {
                                _ = try await client.ingest(Self.batch("big\(connection)-\(round)", tenant: "acme", count: 3_000))
                            }
                            await client.close()
                        }
                    }
                    try await group.waitForAll()
                }
                let expected = try await Self.stored(writer).dropFirst()
                let received = try await Self.receive(raw, streamID: 1) { $0.events.count >= expected.count }
                #expect(received.status == nil, "the subscription is still open: \(String(describing: received.status))")
                // Compared whole, reported briefly: tens of thousands of seqs.
                let seqs = received.events.map(\.seq)
                let inOrder = seqs == expected.map(\.seq)
                #expect(inOrder, "\(seqs.count) events received, \(expected.count) stored; the first and last received: \(seqs.first ?? 0), \(seqs.last ?? 0)")
                let asStored = received.events.map(\.id) == expected.map(\.id)
                #expect(asStored, "the stored events, as stored")
                // Live again: a later batch arrives, once.
                let after = try await writer.ingest(Self.batch("after", tenant: "acme", count: 3))
                let tail = try await Self.receive(raw, streamID: 1) { $0.events.count >= 3 }
                #expect(tail.status == nil)
                #expect(tail.events.map(\.seq) == Array(after.firstSeq...after.lastSeq))
                let quiet = try await raw.pingBarrier()
                #expect(!quiet.contains { $0.streamID == 1 && $0.type == .message }, "nothing twice")
            }
            await writer.close()
        }
    }

    @Test("graceful shutdown ends a subscription with UNAVAILABLE and a cursor; after a restart the cursor resumes exactly")
    func restartResume() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-sub-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var options = StorageOptions(directory: directory)
        options.retentionNanos = nil
        var filter = Vigil_V1_Filter()
        filter.actions = ["auth.*"]
        let cursorText: String = try await withTestServer(store: try ColumnarEventStore(options: options)) { server in
            let writer = try await server.connect()
            _ = try await writer.ingest(Self.batch("one", tenant: "acme", count: 40))
            let cursor = try await RawConnection.with(port: server.port) { raw in
                _ = try await raw.handshake()
                try await raw.startCall(
                    streamID: 1, method: .subscribe, request: Self.subscribeRequest { $0.filter = filter; $0.since = .init(unixNanos: 0) },
                    initialWindow: 1_000)
                let first = try await Self.receive(raw, streamID: 1) { $0.events.count >= 20 }
                #expect(first.events.map(\.seq) == stride(from: 1, through: 39, by: 2).map { UInt64($0) })
                _ = try await writer.ingest(Self.batch("two", tenant: "acme", count: 10))
                // Received before the shutdown: it ends the subscription at once,
                // with what was sent by then, acknowledged or not.
                let second = try await Self.receive(raw, streamID: 1) { $0.events.count >= 5 }
                #expect(second.events.map(\.seq) == [41, 43, 45, 47, 49])
                await server.shutDown()
                let rest = try await Self.receive(raw, streamID: 1) { _ in false }
                let status = try #require(rest.status)
                #expect(StatusCode(wireValue: status.code) == .unavailable, "\(status)")
                #expect(rest.events.isEmpty)
                return try #require(status.metadata["vigil.cursor"])
            }
            await writer.close()
            return cursor
        }
        try await withTestServer(store: try ColumnarEventStore(options: options)) { server in
            let writer = try await server.connect()
            _ = try await writer.ingest(Self.batch("three", tenant: "acme", count: 10))
            try await RawConnection.with(port: server.port) { raw in
                _ = try await raw.handshake()
                try await raw.startCall(
                    streamID: 1, method: .subscribe, request: Self.subscribeRequest { $0.filter = filter; $0.cursor = cursorText },
                    initialWindow: 1_000)
                let resumed = try await Self.receive(raw, streamID: 1) { $0.events.count >= 5 }
                #expect(resumed.events.map(\.seq) == [51, 53, 55, 57, 59])
            }
            await writer.close()
        }
    }

    @Test("1,000 concurrent subscribers with different filters each receive exactly their matches")
    func thousandSubscribers() async throws {
        try await withTestServer(configure: { $0.maxSubscriptionsPerConnection = 250; $0.maxConcurrentCalls = 300 }) { server in
            let tenants = (0..<25).map { "t\($0)" }
            // Few connections, many calls each: the point is the subscribers, not the handshakes.
            let connections = 4
            let perConnection = 250
            // The plan: 40 events per tenant, half of them auth.login. Subscriptions start
            // `since` the epoch, so whether a subscription starts before or after an
            // event is stored, it gets it (catch-up or live) exactly once.
            func filter(_ index: Int) -> Vigil_V1_Filter {
                var filter = Vigil_V1_Filter()
                filter.tenants = [tenants[index % tenants.count]]
                if index % 2 == 1 { filter.actions = ["auth.*"] }
                return filter
            }
            func expectedCount(_ index: Int) -> Int { index % 2 == 1 ? 20 : 40 }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    let writer = try await server.connect()
                    for round in 0..<4 {
                        var events: [AuditEvent] = []
                        for tenant in tenants { events += Self.batch("r\(round)\(tenant)", tenant: tenant, count: 10) }
                        _ = try await writer.ingest(events)
                    }
                    await writer.close()
                }
                for connection in 0..<connections {
                    group.addTask {
                        try await RawConnection.with(port: server.port) { raw in
                            _ = try await raw.handshake()
                            var wanted: [UInt32: (filter: EventFilter, count: Int)] = [:]
                            for slot in 0..<perConnection {
                                let index = connection * perConnection + slot
                                let streamID = UInt32(2 * slot + 1)
                                wanted[streamID] = (try EventFilter(filter(index)), expectedCount(index))
                                try await raw.startCall(
                                    streamID: streamID, method: .subscribe,
                                    request: Self.subscribeRequest { $0.filter = filter(index); $0.since = .init(unixNanos: 0) },
                                    initialWindow: 100_000)
                            }
                            var seqs: [UInt32: [UInt64]] = [:]
                            var complete = 0
                            while complete < perConnection {
                                let frame = try await raw.readFrame()
                                guard frame.type == .message, let (filter, count) = wanted[frame.streamID] else {
                                    Issue.record("unexpected \(frame)")
                                    return
                                }
                                guard case .event(let event) = try frame.decode(Vigil_V1_SubscribeResponse.self).item else { continue }
                                #expect(filter.matches(event), "stream \(frame.streamID) got an event its filter does not select")
                                seqs[frame.streamID, default: []].append(event.seq)
                                if seqs[frame.streamID]!.count == count { complete += 1 }
                                #expect(seqs[frame.streamID]!.count <= count, "stream \(frame.streamID) got more than its matches")
                            }
                            for (streamID, delivered) in seqs {
                                #expect(delivered == delivered.sorted() && Set(delivered).count == delivered.count, "stream \(streamID) in seq order, none twice")
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
    }

    @Test("past the server-wide subscription limit: RESOURCE_EXHAUSTED, whatever the connection")
    func serverSubscriptionLimit() async throws {
        try await withTestServer(configure: { $0.maxSubscriptions = 2; $0.maxSubscriptionsPerConnection = 8 }) { server in
            let writer = try await server.connect()
            _ = try await writer.ingest(Self.batch("x", tenant: "acme", count: 1))
            var holding = Vigil_V1_SubscribeRequest()
            holding.since = .init(unixNanos: 0)
            // Two subscriptions on two connections hold the server's slots: each
            // has delivered the stored event before the third is asked for.
            try await RawConnection.with(port: server.port) { first in
                _ = try await first.handshake()
                try await first.startCall(streamID: 1, method: .subscribe, request: holding, initialWindow: 10)
                _ = try await first.readUntil(.message, streamID: 1)
                try await RawConnection.with(port: server.port) { second in
                    _ = try await second.handshake()
                    try await second.startCall(streamID: 1, method: .subscribe, request: holding, initialWindow: 10)
                    _ = try await second.readUntil(.message, streamID: 1)
                    // The third, on a connection far below its own limit.
                    try await second.startCall(streamID: 3, method: .subscribe, request: holding, initialWindow: 10)
                    let (frame, _) = try await second.readUntil(.trailers, streamID: 3)
                    let status = try frame.decode(Vigil_V1_Status.self)
                    #expect(StatusCode(wireValue: status.code) == .resourceExhausted, "\(status)")
                    #expect(status.message.contains("the server has 2 subscriptions open"), "\(status.message)")
                }
            }
            await writer.close()
        }
    }

    @Test(
        "filter.last is refused with INVALID_ARGUMENT, pointing to since: resumed, it would move the start forward",
        arguments: ["from now", "since", "cursor"])
    func lastRefused(_ start: String) async throws {
        try await withTestServer { server in
            let writer = try await server.connect()
            _ = try await writer.ingest(Self.batch("x", tenant: "acme", count: 3))
            try await RawConnection.with(port: server.port) { raw in
                _ = try await raw.handshake()
                var request = Vigil_V1_SubscribeRequest()
                request.filter.last = .init(seconds: 3_600)
                switch start {
                case "from now": request.fromNow = true
                case "since": request.since = .init(unixNanos: 0)
                default: request.cursor = SubscriptionCursor(seq: 1, filterFingerprint: EventFilter.fingerprint(of: request.filter)).encoded
                }
                try await raw.startCall(streamID: 1, method: .subscribe, request: request, initialWindow: 10)
                let (status, messages) = try await raw.readCall(streamID: 1)
                #expect(StatusCode(wireValue: status.code) == .invalidArgument, "\(status)")
                #expect(status.message.contains("filter.last") && status.message.contains("since"), "\(status.message)")
                #expect(messages.isEmpty)
            }
            await writer.close()
        }
    }

    @Test("an event larger than the client's frames ends a subscription with FAILED_PRECONDITION, after the events before it")
    func eventLargerThanClientFrames() async throws {
        try await withTestServer(configure: { $0.eventLimits.maxEventBytes = 400_000 }) { server in
            let writer = try await server.connect()
            var large = makeEvent(tenant: "acme", actor: "large")
            // About 240 KB: within the raised event limit, over the client's 128 KiB frames.
            large.changes = (0..<30).map { change in
                Vigil_V1_Change.with {
                    $0.field = "field\(change)"
                    $0.old = String(repeating: "o", count: 4_000)
                    $0.new = String(repeating: "n", count: 4_000)
                }
            }
            let ack = try await writer.ingest(Self.batch("small", tenant: "acme", count: 3) + [large] + Self.batch("later", tenant: "acme", count: 2))
            try await RawConnection.with(port: server.port, maxFrameSize: 131_072) { raw in
                _ = try await raw.handshake(maxFrameSize: 131_072)
                // The six events go out in one catch-up write as far as they can.
                try await raw.startCall(
                    streamID: 1, method: .subscribe, request: Self.subscribeRequest { $0.since = .init(unixNanos: 0) }, initialWindow: 100)
                let received = try await Self.receive(raw, streamID: 1) { _ in false }
                let status = try #require(received.status)
                // Not RESOURCE_EXHAUSTED, which a resuming client retries, at the same event, for ever.
                #expect(StatusCode(wireValue: status.code) == .failedPrecondition, "\(status)")
                #expect(status.message.contains("max frame size") && status.message.contains("131072"), "\(status.message)")
                #expect(received.events.map(\.seq) == Array(ack.firstSeq..<ack.firstSeq + 3), "the events before it were sent")
                let cursor = try SubscriptionCursor(
                    decoding: try #require(status.metadata["vigil.cursor"]), filterFingerprint: EventFilter.fingerprint(of: Vigil_V1_Filter()))
                #expect(cursor.seq == ack.firstSeq + 2, "the cursor resumes at the large event")
            }
            await writer.close()
        }
    }

    @Test(
        "bad subscriptions are refused: INVALID_ARGUMENT for a bad cursor or filter, RESOURCE_EXHAUSTED past the per-connection limit",
        arguments: ["garbage cursor", "other filter's cursor", "cursor ahead", "catch-up ahead", "filter too complex", "bad filter", "limit"])
    func badSubscriptions(_ problem: String) async throws {
        try await withTestServer(configure: { $0.maxSubscriptionsPerConnection = 2 }) { server in
            let writer = try await server.connect()
            _ = try await writer.ingest(Self.batch("x", tenant: "acme", count: 3))
            try await RawConnection.with(port: server.port) { raw in
                _ = try await raw.handshake()
                var expectedCode = StatusCode.invalidArgument
                var request = Vigil_V1_SubscribeRequest()
                switch problem {
                case "garbage cursor": request.cursor = "nonsense"
                case "other filter's cursor":
                    request.filter.tenants = ["acme"]
                    request.cursor = SubscriptionCursor(seq: 1, filterFingerprint: EventFilter.fingerprint(of: Vigil_V1_Filter())).encoded
                case "cursor ahead":
                    request.cursor = SubscriptionCursor(seq: 99, filterFingerprint: EventFilter.fingerprint(of: Vigil_V1_Filter())).encoded
                case "catch-up ahead":
                    // A forged cursor whose `since` catch-up runs to the end of
                    // the seq space: taken, it moved the position to UInt64.max,
                    // and the next ingest trapped the server adding 1 to it.
                    request.filter.actions = ["nothing.matches"]
                    request.cursor = SubscriptionCursor(
                        seq: 0, filterFingerprint: EventFilter.fingerprint(of: request.filter), floorTime: 0, floorThrough: .max
                    ).encoded
                case "filter too complex": request.filter.actorIds = (0..<257).map { "u-\($0)" }
                case "bad filter": request.filter.sourceIps = ["10.0.0.0/99"]
                default:
                    expectedCode = .resourceExhausted
                    // Two subscriptions that hold the connection's slots: each has
                    // delivered a stored event before the third is asked for (calls
                    // run concurrently, so merely sent first is not taken first).
                    var holding = Vigil_V1_SubscribeRequest()
                    holding.since = .init(unixNanos: 0)
                    for streamID in [UInt32(1), 3] {
                        try await raw.startCall(streamID: streamID, method: .subscribe, request: holding, initialWindow: 10)
                        _ = try await raw.readUntil(.message, streamID: streamID)
                    }
                }
                try await raw.startCall(streamID: 5, method: .subscribe, request: request, initialWindow: 10)
                let (frame, _) = try await raw.readUntil(.trailers, streamID: 5)
                let status = try frame.decode(Vigil_V1_Status.self)
                #expect(StatusCode(wireValue: status.code) == expectedCode, "\(problem): \(status)")
            }
            await writer.close()
        }
    }
}

extension SubscribeTests {
    @Test("a since subscription keeps its time floor after catch-up reaches the live feed, and so does one resumed inside it: no event older than since")
    func sinceFloorHoldsInTheRing() async throws {
        try await withTestServer { server in
            let writer = try await server.connect()
            try await RawConnection.with(port: server.port) { raw in
                _ = try await raw.handshake()
                // Another subscriber keeps the live feed's ring filled (as the
                // alert engine or a SIEM exporter does). Its first event shows
                // that its reader is registered: what follows is in the ring.
                let hourAgo = currentUnixNanos() - 3_600_000_000_000
                try await raw.startCall(
                    streamID: 1, method: .subscribe, request: Self.subscribeRequest { $0.since = .init(unixNanos: hourAgo) },
                    initialWindow: 1_000_000)
                let marker = try await writer.ingest(Self.batch("marker", tenant: "acme", count: 1))
                _ = try await Self.receive(raw, streamID: 1) { $0.events.count == 1 }
                // A, B (a backfill from two hours ago) and C, stored before the subscription below starts.
                _ = try await writer.ingest(Self.batch("a", tenant: "acme", count: 50))
                let backfill = (0..<10).map { makeEvent(actor: "b-\($0)", at: currentUnixNanos() - 7_200_000_000_000) }
                let old = try await writer.ingest(backfill)
                let last = try await writer.ingest(Self.batch("c", tenant: "acme", count: 50))
                let expected = (marker.firstSeq...last.lastSeq).filter { !(old.firstSeq...old.lastSeq).contains($0) }

                // Catch-up pages of at most the credit: after the first, the
                // position is inside what the ring holds, still under the floor.
                let since = currentUnixNanos() - 3_600_000_000_000
                try await raw.startCall(
                    streamID: 3, method: .subscribe, request: Self.subscribeRequest { $0.since = .init(unixNanos: since) }, initialWindow: 20)
                let (received, cursors) = try await Self.receiveGranting(raw, streamID: 3, events: expected.count, granted: 20)
                #expect(received.allSatisfy { $0.occurredAt.unixNanos >= since }, "events older than since: \(received.filter { $0.occurredAt.unixNanos < since }.map(\.seq))")
                #expect(received.map(\.seq) == expected)

                // Resumed from the 20th event's cursor, inside the floor: the rest, and nothing older.
                try await raw.startCall(streamID: 5, method: .subscribe, request: Self.subscribeRequest { $0.cursor = cursors[19] }, initialWindow: 1_000)
                let resumed = try await Self.receive(raw, streamID: 5) { $0.events.count >= expected.count - 20 }
                #expect(resumed.status == nil, "\(String(describing: resumed.status))")
                #expect(resumed.events.map(\.seq) == Array(expected.dropFirst(20)))
            }
            await writer.close()
        }
    }
}

extension SubscribeTests {
    @Test("a subscription ended by its deadline carries vigil.cursor in its DEADLINE_EXCEEDED trailers, at its position")
    func deadlineTrailersCarryTheCursor() async throws {
        try await withTestServer { server in
            let writer = try await server.connect()
            let stored = try await writer.ingest(Self.batch("stored", tenant: "acme", count: 5))
            try await RawConnection.with(port: server.port) { raw in
                _ = try await raw.handshake()
                // From now, and nothing stored after: no message carries the position, only the trailers can.
                try await raw.startCall(
                    streamID: 1, method: .subscribe, request: Self.subscribeRequest { $0.fromNow = true }, timeoutMs: 300, initialWindow: 10)
                let (status, messages) = try await raw.readCall(streamID: 1)
                #expect(messages.isEmpty)
                #expect(StatusCode(wireValue: status.code) == .deadlineExceeded, "\(status)")
                let text = try #require(status.metadata["vigil.cursor"], "\(status)")
                let cursor = try SubscriptionCursor(decoding: text, filterFingerprint: EventFilter.fingerprint(of: Vigil_V1_Filter()))
                #expect(cursor.seq == stored.lastSeq)
            }
            await writer.close()
        }
    }
}
