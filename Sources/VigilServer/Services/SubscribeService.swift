import NIOCore
import ServiceLifecycle
import Synchronization
import VigilCore
import VigilProto
import VigilStorage

/// Counts open subscriptions against a limit (per connection, per server).
final class SubscriptionSlots: Sendable {
    let limit: Int
    private let open = Mutex(0)

    init(limit: Int) {
        self.limit = limit
    }

    /// Takes a slot, or returns false when all are taken.
    func take() -> Bool {
        open.withLock { open in
            guard open < limit else { return false }
            open += 1
            return true
        }
    }

    func release() {
        open.withLock { $0 -= 1 }
    }

    var count: Int { open.withLock { $0 } }
}

/// Subscribe: stored matches first (catch-up, read from the store in seq
/// order), then live ones from the commit feed, switching without a gap or a
/// duplicate because both are read "after the last seq delivered". A
/// subscriber that falls behind what the feed keeps while it reads (a large
/// group commit, or it was not scheduled) catches up from the store again,
/// the same way. One that stops granting credit while the feed moves on past
/// its position is ended with RESOURCE_EXHAUSTED, and graceful shutdown
/// ends every subscription with UNAVAILABLE; both carry `vigil.cursor` to
/// resume from, so neither costs the subscriber an event.
extension AuditService {
    /// Events per catch-up read.
    static let catchUpPage = 500
    /// Most messages, and about the most bytes, one turn of live delivery
    /// builds, and never more messages than the credit the client has
    /// granted: a turn is sent whole as soon as it is built, and a
    /// subscription waiting for credit holds no messages (a client that
    /// stops reading pins none). With no credit at all, a turn is not built
    /// for one message but waited for (`LiveTurn.needsCredit`): a subscriber
    /// that had just used its credit up then built turns of one message, and
    /// at 100 subscribers delivery p99 rose from 3–5 ms to 9–16 ms
    /// (`vigil-bench subscribe`, ebf3cfa).
    static let liveTurnMessages = 256
    static let liveTurnBytes = 1 << 20

    /// Subscription messages, each an event and the cursor after it, written
    /// into one buffer and sent as slices of it: one allocation, not one per event.
    struct EventMessages {
        private(set) var buffer = ByteBuffer()
        private var ends: [Int] = []
        /// Each message's event's seq.
        private(set) var seqs: [UInt64] = []
        private var cursor: SubscriptionCursor
        /// Every match up to here is in the messages (or was delivered before).
        var through: UInt64

        init(cursor: SubscriptionCursor, through: UInt64) {
            self.cursor = cursor
            self.through = through
        }

        var count: Int { seqs.count }
        var bytes: Int { buffer.readableBytes }

        /// The bytes `append` writes for an event of `eventBytes` bytes.
        static func size(ofEvent eventBytes: Int) -> Int {
            ByteBuffer.protobufFieldSize(count: eventBytes) + ByteBuffer.protobufFieldSize(count: SubscriptionCursor.encodedLength)
        }

        mutating func append(event: [UInt8], seq: UInt64) {
            cursor.seq = seq
            AuditService.writeEventResponse(encodedEvent: event, cursor: cursor.encoded, into: &buffer)
            ends.append(buffer.writerIndex)
            seqs.append(seq)
            through = seq
        }

        /// The messages, as slices of the buffer.
        var messages: [ByteBuffer] {
            ends.indices.map { index in
                let start = index == 0 ? 0 : ends[index - 1]
                return buffer.getSlice(at: start, length: ends[index] - start)!
            }
        }
    }

    /// What the ring holds for a subscriber at a position.
    enum LiveTurn {
        /// The ring no longer holds the next seq: read the store up to `head`.
        case behind(head: UInt64)
        /// Nothing was published after the position.
        case idle
        /// Messages for the matches after the position, through `through`.
        case events(EventMessages)
        /// The client has granted no credit and a match comes after
        /// `through`: nothing is built for it until credit comes.
        case needsCredit(through: UInt64)
    }

    /// Where a subscription stands, shared by its delivery loop and the
    /// tasks that may end it.
    final class SubscriptionPosition: Sendable {
        /// The delivery loop waiting for the client's credit: the `number`th
        /// such wait, which lasts too long once the feed's ring no longer
        /// holds the seq after `watched`.
        struct Stall: Equatable {
            var number: UInt64
            var watched: UInt64
        }

        struct State {
            /// Every match up to here was delivered.
            var seq: UInt64
            /// When the subscriber was last sent a message (or the subscription began).
            var lastSent = ContinuousClock.now
            /// Nothing was sent for a heartbeat interval: the delivery loop sends a heartbeat.
            var heartbeatDue = false
            /// The delivery loop's wait for credit, while it lasts.
            var stall: Stall?
            var stalls: UInt64 = 0
            /// The watcher, waiting for the delivery loop to wait for credit.
            var stallWatcher: CheckedContinuation<Void, Never>?
        }
        let state: Mutex<State>
        init(seq: UInt64) { state = Mutex(State(seq: seq)) }
        var seq: UInt64 { state.withLock { $0.seq } }

        /// The delivery loop begins to wait for credit, watching `watched`.
        func stalling(watching watched: UInt64) {
            let watcher = state.withLock { state -> CheckedContinuation<Void, Never>? in
                state.stalls += 1
                state.stall = Stall(number: state.stalls, watched: watched)
                defer { state.stallWatcher = nil }
                return state.stallWatcher
            }
            watcher?.resume()
        }

        /// The client granted credit: the wait is over.
        func stallEnded() {
            state.withLock { $0.stall = nil }
        }

        /// Whether the delivery loop is still in `stall`.
        func isStalled(_ stall: Stall) -> Bool {
            state.withLock { $0.stall == stall }
        }

        /// The delivery loop's wait for credit: the current one, or the next
        /// (nil when it ended before this looked, or the task was cancelled).
        func nextStall() async -> Stall? {
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let ready = state.withLock { state -> Bool in
                        if state.stall != nil || Task.isCancelled { return true }
                        state.stallWatcher = continuation
                        return false
                    }
                    if ready { continuation.resume() }
                }
            } onCancel: {
                let watcher = state.withLock { state -> CheckedContinuation<Void, Never>? in
                    defer { state.stallWatcher = nil }
                    return state.stallWatcher
                }
                watcher?.resume()
            }
            return state.withLock { $0.stall }
        }

        /// A message went out carrying the position through `seq`.
        func sent(through seq: UInt64) {
            state.withLock { state in
                state.seq = seq
                state.lastSent = .now
                state.heartbeatDue = false
            }
        }

        /// Whether a heartbeat is due, clearing it.
        func takeHeartbeat() -> Bool {
            state.withLock { state in
                defer { state.heartbeatDue = false }
                return state.heartbeatDue
            }
        }
    }

    /// Refuses a subscription filter with more entries than a subscriber may
    /// match per batch. Counted as the client sent it, before its token's
    /// tenants are filled in: a token bound to 300 tenants may still follow
    /// all of them with an empty filter (the tenant check is one pass over a
    /// batch's tenant codes, whatever their number).
    func checkSubscriptionFilterSize(_ sent: Vigil_V1_Filter) throws(VigilError) {
        let entries = EventFilter.entryCount(of: sent)
        guard entries <= configuration.maxSubscriptionFilterEntries else {
            throw VigilError(
                .invalidArgument,
                "filter has \(entries) entries; a subscription's filter may have at most \(configuration.maxSubscriptionFilterEntries)")
        }
    }

    func subscribe(_ request: Vigil_V1_SubscribeRequest, sender: some ResponseSender) async throws -> [String: String] {
        // `last` counts back from the call's now, and the cursor does not
        // keep that now (its fingerprint covers the duration only): every
        // resumption would move the start forward, past events never sent.
        guard !request.filter.hasLast else {
            throw VigilError(
                .invalidArgument,
                "filter.last is not accepted in Subscribe: it counts back from each call's start, so a resumed subscription would skip events; give filter.since or SubscribeRequest.since (a timestamp) instead")
        }
        let fingerprint = EventFilter.fingerprint(of: request.filter)
        let filter = try EventFilter(request.filter)
        let feed = store.feed
        let head = feed.head
        var begin = SubscriptionCursor(seq: head, filterFingerprint: fingerprint)
        switch request.start {
        case .cursor(let text):
            begin = try SubscriptionCursor(decoding: text, filterFingerprint: fingerprint)
            guard begin.seq <= head else {
                throw VigilError(.invalidArgument, "cursor is ahead of this server's log (seq \(begin.seq) > \(head))")
            }
            // A cursor is not signed: one whose catch-up would run past the
            // log (forged, or from another server) would move the position
            // past events not stored yet, up to where adding 1 traps.
            guard begin.floorThrough <= head else {
                throw VigilError(
                    .invalidArgument, "cursor is ahead of this server's log (its catch-up runs to seq \(begin.floorThrough) > \(head))")
            }
        case .since(let time):
            begin = SubscriptionCursor(seq: 0, filterFingerprint: fingerprint, floorTime: time.unixNanos, floorThrough: head)
        case .fromNow, nil:
            break
        }
        guard sender.subscriptions.take() else {
            throw VigilError(.resourceExhausted, "this connection has \(sender.subscriptions.limit) subscriptions open, the limit; close one or use another connection")
        }
        defer { sender.subscriptions.release() }
        guard subscriptions.take() else {
            throw VigilError(.resourceExhausted, "the server has \(subscriptions.limit) subscriptions open, the limit; retry later")
        }
        defer { subscriptions.release() }

        let reader = feed.addReader()
        defer { feed.removeReader(reader) }
        let start = begin
        let position = SubscriptionPosition(seq: start.seq)
        let registration = vitals.addSubscription(position)
        defer { vitals.removeSubscription(registration) }
        @Sendable func cursor() -> String {
            var cursor = start
            cursor.seq = position.seq
            return cursor.encoded
        }
        // A deadline ends the call without this function's `catch` below:
        // its trailers carry the cursor all the same (the README says so).
        sender.setEndingMetadata { ["vigil.cursor": cursor()] }
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await deliver(filter: filter, start: start, position: position, reader: reader, sender: sender)
                }
                group.addTask {
                    // The subscriber stopped reading: delivery waits for its
                    // credit while the live stream moves on past what the ring
                    // keeps. End it, rather than hold it. One that reads,
                    // however far behind, is not ended here: delivery finds
                    // itself behind the ring and catches up from the store.
                    // Wakes when delivery begins to wait for credit, then when
                    // the ring drops what that wait watches (or the feed closes).
                    while !Task.isCancelled {
                        guard let stall = await position.nextStall() else { continue }
                        await feed.waitUntilBehind(stall.watched)
                        if Task.isCancelled { return }
                        if feed.isClosed {
                            throw VigilError(.unavailable, "the server is shutting down; resume from the cursor on another server or later")
                        }
                        if stall.watched + 1 < feed.oldestInRing && position.isStalled(stall) {
                            throw VigilError(
                                .resourceExhausted,
                                "the subscriber granted no credit while the live stream moved on past what the server keeps for subscribers; resume from the cursor")
                        }
                    }
                }
                group.addTask {
                    // The heartbeat clock: when nothing was sent for an interval,
                    // whether nothing was published or nothing matched, it has the
                    // delivery loop send a heartbeat with the position.
                    let interval = configuration.heartbeatInterval
                    var fired = ContinuousClock.now
                    while true {
                        let lastSent = position.state.withLock { $0.lastSent }
                        try await Task.sleep(until: max(lastSent, fired) + interval)
                        let due = position.state.withLock { state in
                            guard ContinuousClock.now - state.lastSent >= interval else { return false }
                            state.heartbeatDue = true
                            return true
                        }
                        if due {
                            fired = .now
                            feed.interrupt(reader)
                        }
                    }
                }
                group.addTask {
                    try await gracefulShutdown()
                    throw VigilError(.unavailable, "the server is shutting down; resume from the cursor on another server or later")
                }
                try await group.next()
                group.cancelAll()
            }
        } catch var error as VigilError {
            error.metadata["vigil.cursor"] = cursor()
            throw error
        }
        return ["vigil.cursor": cursor()]
    }

    /// The delivery loop: catch-up reads while the subscriber is behind what
    /// the feed keeps, live batches after, heartbeats when idle.
    private func deliver(
        filter: EventFilter, start: SubscriptionCursor, position: SubscriptionPosition, reader: CommitFeed.Reader,
        sender: some ResponseSender
    ) async throws {
        let feed = store.feed
        let matcher = LiveMatcher(filter: filter)
        var floored = filter
        floored.since = max(filter.since, start.floorTime)
        func send(_ item: Vigil_V1_SubscribeResponse.OneOf_Item, through seq: UInt64) async throws {
            var response = Vigil_V1_SubscribeResponse()
            response.item = item
            var cursor = start
            cursor.seq = seq
            response.cursor = cursor.encoded
            try await sender.send(response)
            position.sent(through: seq)
        }
        func advance(to seq: UInt64) {
            position.state.withLock { $0.seq = max($0.seq, seq) }
        }
        /// Waits until the client grants credit for another message, when it
        /// has none now, letting the watcher know. The wait lasts too long
        /// (the subscription is ended) once the ring lets go of the position,
        /// when the ring holds it now; or, when it is behind the ring already
        /// (catching up), once the ring lets go of everything published
        /// since the wait began.
        func awaitCredit() async throws {
            guard sender.credit == 0 else { return }
            let at = position.seq
            position.stalling(watching: at + 1 >= feed.oldestInRing ? at : feed.head)
            defer { position.stallEnded() }
            try await sender.waitForCredit()
        }
        /// Sends messages, as many to a write as the client's credit allows,
        /// moving the position past each write.
        func sendEvents(_ events: EventMessages) async throws {
            let messages = events.messages
            var sent = 0
            while sent < messages.count {
                try await awaitCredit()
                sent += try await sender.sendSome(serialized: messages[sent...])
                position.sent(through: events.seqs[sent - 1])
            }
        }
        /// The matching rows of the batch a turn stopped in, for the next
        /// turn: a batch larger than a turn is matched once, not once a turn.
        var matched: (firstSeq: UInt64, rows: [Int32])?
        /// One turn of live delivery: the matches after `at` in the ring's
        /// batches — at most `limit` messages (the credit there is) and
        /// `liveTurnBytes` (or one message, however large). The batches are
        /// not held past the turn. With a `limit` of 0, it only moves past
        /// what does not match, up to the first match.
        func liveTurn(after at: UInt64, limit: Int) -> LiveTurn {
            let batches: [MemoryChunk]
            // No more batches than a turn may reach into: a turn copies (retains) what it reads.
            switch feed.read(after: at, limit: 64) {
            case .behind(let head): return .behind(head: head)
            case .batches(let read) where read.isEmpty: return .idle
            case .batches(let read): batches = read
            }
            var turn = EventMessages(cursor: start, through: at)
            for batch in batches {
                let rows = matched.flatMap { $0.firstSeq == batch.firstSeq ? $0.rows : nil } ?? matcher.rows(in: batch, after: at)
                var next = rows.firstIndex { batch.seq(at: Int($0)) > at } ?? rows.endIndex
                while next < rows.endIndex {
                    if turn.count == limit {
                        matched = (batch.firstSeq, rows)
                        return limit == 0 ? .needsCredit(through: turn.through) : .events(turn)
                    }
                    // A few rows encoded at a time: what does not fit is not encoded.
                    let encoding = rows[next..<min(rows.endIndex, next + min(32, limit - turn.count))]
                    for (seq, bytes) in matcher.encodedEvents(in: batch, rows: encoding) {
                        guard turn.count == 0 || turn.bytes + EventMessages.size(ofEvent: bytes.count) <= Self.liveTurnBytes else {
                            matched = (batch.firstSeq, rows)
                            return .events(turn)
                        }
                        turn.append(event: bytes, seq: seq)
                    }
                    next = encoding.endIndex
                }
                turn.through = batch.lastSeq
            }
            matched = nil
            return .events(turn)
        }
        while true {
            try Task.checkCancellation()
            if feed.isClosed { throw VigilError(.unavailable, "the server is shutting down; resume from the cursor") }
            let at = position.seq
            // Under the `since` floor (what was stored when a `since`
            // subscription began) events come from the store, with the floor,
            // even when the ring holds them: the ring's turns match without it,
            // and another reader (the alert engine, any subscriber) keeps the
            // ring filled, so what went out would depend on what it held.
            let next: LiveTurn =
                at < start.floorThrough
                ? .behind(head: start.floorThrough) : liveTurn(after: at, limit: min(Self.liveTurnMessages, sender.credit))
            switch next {
            case .behind(let head):
                // Behind what the ring holds: when the subscription began,
                // or later, when the ring let go of the position before
                // delivery came back to it (a group commit larger than the
                // ring, a subscriber not scheduled in time). Catch up from the
                // store, then read the ring again, still after the last seq
                // delivered; the `since` floor covers only what was stored when the subscription began.
                let inFloor = at < start.floorThrough
                let through = inFloor ? start.floorThrough : head
                // A page is read once the client has granted credit, of no
                // more events than that credit, and through the connection's
                // page gate, as a Query's pages are: a subscriber that stops
                // reading pins no page, and a connection's subscriptions and
                // queries together build no more pages at once than the gate allows.
                try await awaitCredit()
                let exhausted = try await sender.withPageSlot {
                    // Written from the columns, as a Query's pages are.
                    let page = try await store.scanBySeqEncoded(
                        filter: inFloor ? floored : filter, after: at, through: through,
                        limit: min(Self.catchUpPage, max(sender.credit, 1)))
                    configuration.subscriptionProbe?.catchUpPageRead()
                    defer { configuration.subscriptionProbe?.catchUpPageSent() }
                    var messages = EventMessages(cursor: start, through: at)
                    for event in page.encodedEvents { messages.append(event: event.bytes, seq: event.seq) }
                    try await sendEvents(messages)
                    return page.exhausted
                }
                if exhausted { advance(to: through) }
            case .idle:
                if !position.state.withLock({ $0.heartbeatDue }) {
                    // A publish, or the heartbeat clock (then one is due below).
                    _ = await feed.waitForNew(after: at, reader: reader)
                }
            case .events(let turn):
                // Live turns start at or past `floorThrough` (above), so the `since` floor never applies.
                // Events come encoded once for all subscribers, and go out as many
                // to a write as the client's credit allows: the matches of every
                // batch that arrived since the last write go together (up to a
                // turn's bounds, the credit among them), so a busy server makes
                // fewer, larger writes instead of falling behind.
                if turn.count > 0 { configuration.subscriptionProbe?.liveTurnBuilt(bytes: turn.bytes) }
                try await sendEvents(turn)
                advance(to: turn.through)
            case .needsCredit(let through):
                // Past what did not match; the next match waits for credit, unbuilt.
                advance(to: through)
                try await awaitCredit()
                // The credit is for that match: no heartbeat for the wait
                // (it would take the credit, and a client that grants as it
                // reads events would wait for an event that never comes).
                _ = position.takeHeartbeat()
                continue
            }
            // Nothing went out for an interval (nothing published, or nothing
            // that matched): a heartbeat keeps the subscription alive and
            // carries the position past what did not match.
            if position.takeHeartbeat() {
                try await awaitCredit()
                var heartbeat = Vigil_V1_Heartbeat()
                heartbeat.at = .init(unixNanos: currentUnixNanos())
                try await send(.heartbeat(heartbeat), through: position.seq)
            }
        }
    }

    /// Appends a `SubscribeResponse` holding an event already in protobuf binary
    /// form: field 1 (the event), then field 3 (the cursor), as swift-protobuf writes them.
    static func writeEventResponse(encodedEvent event: [UInt8], cursor: String, into buffer: inout ByteBuffer) {
        buffer.writeProtobufFieldHeader(field: 1, count: event.count)
        buffer.writeBytes(event)
        if !cursor.isEmpty {
            buffer.writeProtobufFieldHeader(field: 3, count: cursor.utf8.count)
            buffer.writeString(cursor)
        }
    }
}
