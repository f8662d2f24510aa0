import NIOCore
import NIOPosix
import VigilCore
import VigilProto
import VigilWire

/// One message of a subscription: a matching event or a heartbeat, with the
/// cursor that resumes right after it (neither repeating nor skipping anything).
public struct SubscriptionItem: Sendable, Hashable {
    public enum Content: Sendable, Hashable {
        /// A matching event; events come in `seq` order.
        case event(AuditEvent)
        /// Nothing matched for a while; the cursor still moved on.
        case heartbeat(Vigil_V1_Heartbeat)
    }

    public var content: Content
    /// Resumes after this item (`SubscribeRequest.cursor`, with the same filter).
    public var cursor: String

    public init(content: Content, cursor: String) {
        self.content = content
        self.cursor = cursor
    }

    /// The event, or nil for a heartbeat.
    public var event: AuditEvent? {
        if case .event(let event) = content { return event }
        return nil
    }

    public var isHeartbeat: Bool {
        if case .heartbeat = content { return true }
        return false
    }

    /// Nil for a message without an item this client knows (a newer server's).
    init?(_ response: Vigil_V1_SubscribeResponse) {
        switch response.item {
        case .event(let event): self.init(content: .event(event), cursor: response.cursor)
        case .heartbeat(let heartbeat): self.init(content: .heartbeat(heartbeat), cursor: response.cursor)
        case nil: return nil
        }
    }
}

extension VigilClient {
    /// Follows the events that match `request.filter`, from where `request`
    /// says (`from_now`, the default; `since` a time: stored matches first, then
    /// live ones; or after a `cursor`), on this connection, until the server
    /// ends it or the consumer stops. At most `window` messages are in flight;
    /// more credit is granted as items are consumed.
    ///
    /// The server ends a subscription with RESOURCE_EXHAUSTED when the consumer
    /// stopped reading (granted no credit while the live stream moved on) and with UNAVAILABLE when it shuts down; the thrown
    /// `VigilError.metadata["vigil.cursor"]` resumes from there. For a
    /// subscription that reconnects and resumes by itself, see
    /// `VigilClient.resilientSubscription(_:configuration:window:reconnect:onConnectionEvent:)`.
    /// A `timeout` is a deadline for the whole call (none by default: a
    /// subscription is meant to last).
    public func subscribe(_ request: Vigil_V1_SubscribeRequest, window: UInt32 = 64, timeout: Duration? = nil) -> Subscription {
        Subscription(client: self, request: request, window: max(1, window), timeout: timeout)
    }

    /// A subscription that owns its connections and survives them: after a
    /// dropped connection, UNAVAILABLE or RESOURCE_EXHAUSTED it reconnects
    /// (capped exponential backoff with jitter) and resumes from the last
    /// cursor it saw, never yielding an event twice. Other errors
    /// (INVALID_ARGUMENT, PERMISSION_DENIED, …) end it by throwing.
    /// Cancelling the consuming task, or dropping the iterator, closes its connection.
    public static func resilientSubscription(
        _ request: Vigil_V1_SubscribeRequest,
        configuration: Configuration,
        window: UInt32 = 64,
        reconnect: ReconnectPolicy = ReconnectPolicy(),
        onConnectionEvent: (@Sendable (SubscriptionConnectionEvent) -> Void)? = nil
    ) -> ResilientSubscription {
        ResilientSubscription(
            request, configuration: configuration, window: window, reconnect: reconnect, onConnectionEvent: onConnectionEvent)
    }
}

/// One `Subscribe` call on one connection. Iterating opens the call; each item
/// taken frees credit for another (WINDOW, granted half a window at a time),
/// so at most `window` messages are ever buffered.
public struct Subscription: AsyncSequence, Sendable {
    public typealias Element = SubscriptionItem

    let client: VigilClient
    public let request: Vigil_V1_SubscribeRequest
    public let window: UInt32
    /// The call's deadline, if any.
    public let timeout: Duration?

    public func makeAsyncIterator() -> Iterator {
        Iterator(sequence: self)
    }

    public struct Iterator: AsyncIteratorProtocol {
        let sequence: Subscription
        let fingerprint: UInt64
        var call: (streamID: UInt32, events: AsyncThrowingStream<ClientConnectionHandler.CallEvent, any Error>.AsyncIterator)?
        var finished = false
        /// Messages consumed whose credit has not been granted back yet.
        var ungranted: UInt32 = 0
        /// Where to resume: the cursor of the last message, or the `vigil.cursor`
        /// of the trailers that ended the call when that is further on. Nil
        /// until the server sent one.
        public private(set) var cursor: String?
        /// The metadata of the trailers that ended the call, once it ended.
        public private(set) var trailers: [String: String] = [:]

        init(sequence: Subscription) {
            self.sequence = sequence
            fingerprint = EventFilter.fingerprint(of: sequence.request.filter)
            if case .cursor(let text) = sequence.request.start, !text.isEmpty { cursor = text }
        }

        /// Opens the call (sends HEADERS and the request) if it is not open yet.
        mutating func open() async throws {
            guard call == nil, !finished else { return }
            do {
                let opened = try await sequence.client.openCall(
                    .subscribe, request: sequence.request, timeout: sequence.timeout, initialWindow: sequence.window)
                call = (opened.streamID, opened.events.makeAsyncIterator())
            } catch {
                finished = true
                throw error
            }
        }

        public mutating func next() async throws -> SubscriptionItem? {
            while let payload = try await nextPayload() {
                let response: Vigil_V1_SubscribeResponse
                do {
                    response = try EventDecoding.subscribeResponse(payload) ?? payload.decodeMessage(Vigil_V1_SubscribeResponse.self)
                } catch {
                    finished = true
                    throw error
                }
                if !response.cursor.isEmpty { cursor = response.cursor }
                if let item = SubscriptionItem(response) { return item }
            }
            return nil
        }

        /// The next message as it came, a `SubscribeResponse` in protobuf
        /// binary form, not decoded: for consumers that read only a few fields
        /// (a load generator). Ends, and throws, as `next()` does. `cursor`
        /// then moves only with the trailers: keep the messages' own cursors
        /// to resume.
        public mutating func nextPayload() async throws -> ByteBuffer? {
            try await open()
            while !finished {
                let event: ClientConnectionHandler.CallEvent?
                do {
                    event = try await call!.events.next()
                } catch {
                    finished = true
                    throw error
                }
                guard let event else {
                    finished = true
                    try Task.checkCancellation()
                    throw VigilError(.unavailable, "the subscription ended without trailers")
                }
                switch event {
                case .message(let frame):
                    let payload: ByteBuffer
                    do {
                        payload = try frame.messagePayload(maxMessageSize: sequence.client.maxMessageSize)
                    } catch {
                        finished = true
                        throw error
                    }
                    grantCredit()
                    return payload
                case .trailers(let status):
                    finished = true
                    trailers = status.metadata
                    if let resume = status.metadata["vigil.cursor"], !resume.isEmpty {
                        cursor = SubscriptionCursors.furthest(cursor, resume, fingerprint: fingerprint)
                    }
                    if let error = VigilError(status: status) { throw error }
                    return nil
                }
            }
            return nil
        }

        /// Gives back the credit of consumed messages, half a window at a time
        /// (one WINDOW frame per message would cost a frame per event).
        private mutating func grantCredit() {
            ungranted += 1
            if ungranted >= Swift.max(1, sequence.window / 2), let call {
                sequence.client.grantWindow(streamID: call.streamID, messages: ungranted)
                ungranted = 0
            }
        }
    }
}

/// How a `ResilientSubscription` waits between attempts: the n-th consecutive
/// failure waits `initialDelay * multiplier^(n-1)`, at most `maxDelay`, less a
/// random part of up to `jitter` of it (so that many clients cut off at once
/// do not come back at once). Any message received resets the count.
public struct ReconnectPolicy: Sendable {
    public var initialDelay: Duration = .milliseconds(100)
    public var maxDelay: Duration = .seconds(10)
    public var multiplier = 2.0
    /// The fraction (0…1) of each delay that is random.
    public var jitter = 0.5
    /// Consecutive failed attempts after which the error is thrown; nil: never give up.
    public var maxConsecutiveFailures: Int?
    /// Whether a failure before the first subscription was opened is retried too;
    /// false makes an unreachable server an error at once (what a command line wants).
    public var retryInitialConnection = true
    /// The status codes that are retried (by resuming) rather than thrown.
    public var retriedCodes: Set<VigilError.Code> = [.unavailable, .resourceExhausted]

    public init() {}

    /// The wait before the attempt that follows `failures` consecutive failures (≥ 1).
    public func delay(afterFailures failures: Int, using generator: inout some RandomNumberGenerator) -> Duration {
        let initial = Self.seconds(initialDelay)
        let cap = Self.seconds(maxDelay)
        let exponent = Double(max(0, min(failures - 1, 62)))
        let base = min(cap, initial * power(max(1, multiplier), exponent))
        let random = base * min(1, max(0, jitter)) * Double.random(in: 0...1, using: &generator)
        // At most Int64.max nanoseconds (292 years): a longer `maxDelay` would trap the conversion.
        return .nanoseconds(Int64(min((base - random) * 1e9, 9.2e18)))
    }

    static func seconds(_ duration: Duration) -> Double {
        let components = duration.components
        return Double(components.seconds) + Double(components.attoseconds) / 1e18
    }

    /// `base` to a whole power, stopping early once far past any cap.
    private func power(_ base: Double, _ exponent: Double) -> Double {
        var result = 1.0
        var count = Int(exponent)
        while count > 0 && result < 1e12 {
            result *= base
            count -= 1
        }
        return result
    }
}

/// What happened to a `ResilientSubscription`'s connection.
public enum SubscriptionConnectionEvent: Sendable {
    /// The subscription was cut (`error`); attempt `attempt` to resume from
    /// `cursor` follows after `retryIn`. Nil cursor: nothing was received yet,
    /// so the original request is sent again.
    case interrupted(error: VigilError, attempt: Int, retryIn: Duration, cursor: String?)
    /// A new connection is up and the subscription was sent again from `cursor`.
    case resumed(attempt: Int, cursor: String?)
}

/// A subscription that reconnects and resumes by itself. See
/// `VigilClient.resilientSubscription(_:configuration:window:reconnect:onConnectionEvent:)`.
///
/// Events come in `seq` order and none twice, across reconnects and server
/// restarts: each attempt resumes from the furthest cursor seen (from a
/// message, or from the `vigil.cursor` of the error that ended the call), and
/// an event at or below the last `seq` yielded is never yielded again. A
/// subscription that starts `from_now` has no position until its first
/// message (event or heartbeat); if it is cut before that, the retry starts
/// from now again. Start `since` a time, or from a cursor, to rule that out.
public struct ResilientSubscription: AsyncSequence, Sendable {
    public typealias Element = SubscriptionItem

    public let request: Vigil_V1_SubscribeRequest
    public let configuration: VigilClient.Configuration
    public let window: UInt32
    public let reconnect: ReconnectPolicy
    let onConnectionEvent: (@Sendable (SubscriptionConnectionEvent) -> Void)?
    let eventLoopGroup: any EventLoopGroup

    public init(
        _ request: Vigil_V1_SubscribeRequest,
        configuration: VigilClient.Configuration,
        window: UInt32 = 64,
        reconnect: ReconnectPolicy = ReconnectPolicy(),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        onConnectionEvent: (@Sendable (SubscriptionConnectionEvent) -> Void)? = nil
    ) {
        self.request = request
        self.configuration = configuration
        self.window = Swift.max(1, window)
        self.reconnect = reconnect
        self.eventLoopGroup = eventLoopGroup
        self.onConnectionEvent = onConnectionEvent
    }

    public func makeAsyncIterator() -> Iterator {
        Iterator(sequence: self)
    }

    public struct Iterator: AsyncIteratorProtocol {
        let sequence: ResilientSubscription
        let fingerprint: UInt64
        private var connection: OwnedConnection?
        private var current: Subscription.Iterator?
        private var finished = false
        private var opened = false
        private var failures = 0
        private var lastEventSeq: UInt64 = 0
        private var generator = SystemRandomNumberGenerator()
        /// Resumes after the last item yielded (or further on, when the server
        /// said so in an error's `vigil.cursor`); nil until there is a position.
        public private(set) var cursor: String?

        init(sequence: ResilientSubscription) {
            self.sequence = sequence
            fingerprint = EventFilter.fingerprint(of: sequence.request.filter)
            if case .cursor(let text) = sequence.request.start, !text.isEmpty { cursor = text }
        }

        public mutating func next() async throws -> SubscriptionItem? {
            while !finished {
                do {
                    if current == nil { try await connect() }
                    guard let item = try await current!.next() else {
                        // The server ended the subscription with OK.
                        disconnect()
                        finished = true
                        return nil
                    }
                    failures = 0
                    if !item.cursor.isEmpty { cursor = item.cursor }
                    if let event = item.event {
                        if event.seq <= lastEventSeq { continue }  // already yielded before a resume
                        lastEventSeq = event.seq
                    }
                    return item
                } catch {
                    let resume = current?.cursor
                    disconnect()
                    cursor = SubscriptionCursors.furthest(cursor, resume, fingerprint: fingerprint)
                    if error is CancellationError || Task.isCancelled {
                        finished = true
                        throw CancellationError()
                    }
                    guard let vigilError = error as? VigilError, sequence.reconnect.retriedCodes.contains(vigilError.code),
                        opened || sequence.reconnect.retryInitialConnection
                    else {
                        finished = true
                        throw error
                    }
                    failures += 1
                    if let limit = sequence.reconnect.maxConsecutiveFailures, failures > limit {
                        finished = true
                        throw error
                    }
                    let delay = sequence.reconnect.delay(afterFailures: failures, using: &generator)
                    sequence.onConnectionEvent?(.interrupted(error: vigilError, attempt: failures, retryIn: delay, cursor: cursor))
                    do {
                        try await Task.sleep(for: delay)
                    } catch {
                        finished = true
                        throw error
                    }
                }
            }
            return nil
        }

        /// Connects and sends the subscription again, from the cursor when there is one.
        private mutating func connect() async throws {
            let client = try await VigilClient.connect(sequence.configuration, eventLoopGroup: sequence.eventLoopGroup)
            let owned = OwnedConnection(client)
            connection = owned
            try Task.checkCancellation()
            var request = sequence.request
            if let cursor { request.cursor = cursor }
            var subscription = client.subscribe(request, window: sequence.window).makeAsyncIterator()
            try await subscription.open()
            current = subscription
            if opened {
                sequence.onConnectionEvent?(.resumed(attempt: failures, cursor: cursor))
            }
            opened = true
        }

        private mutating func disconnect() {
            current = nil
            connection?.client.closeSoon()
            connection = nil
        }
    }
}

/// A connection that closes when its last owner lets go of it.
final class OwnedConnection: Sendable {
    let client: VigilClient

    init(_ client: VigilClient) {
        self.client = client
    }

    deinit {
        client.closeSoon()
    }
}

/// Comparing the cursors of one subscription.
enum SubscriptionCursors {
    /// Of two cursors of one subscription, the one further along by the seq
    /// it carries; `later` when either cannot be read (the server's latest word).
    static func furthest(_ earlier: String?, _ later: String?, fingerprint: UInt64) -> String? {
        guard let later, !later.isEmpty else { return earlier }
        guard let earlier, !earlier.isEmpty else { return later }
        guard let earlierSeq = try? SubscriptionCursor(decoding: earlier, filterFingerprint: fingerprint).seq,
            let laterSeq = try? SubscriptionCursor(decoding: later, filterFingerprint: fingerprint).seq
        else { return later }
        return laterSeq >= earlierSeq ? later : earlier
    }
}
