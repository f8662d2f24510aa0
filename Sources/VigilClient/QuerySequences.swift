import NIOCore
import VigilCore
import VigilProto
import VigilWire

/// The pages of one `Query` call. Iterating opens the call; the pages taken
/// give the server credit for as many more (WINDOW), half a window at a time,
/// so at most `window` pages are ever buffered. The final status is in `trailers` once iteration ends.
public struct QueryPages: AsyncSequence, Sendable {
    public typealias Element = Vigil_V1_QueryResponse

    let client: VigilClient
    let request: Vigil_V1_QueryRequest
    let window: UInt32
    let timeout: Duration?

    public func makeAsyncIterator() -> Iterator {
        Iterator(sequence: self)
    }

    public struct Iterator: AsyncIteratorProtocol {
        let sequence: QueryPages
        var call: (streamID: UInt32, events: AsyncThrowingStream<ClientConnectionHandler.CallEvent, any Error>.AsyncIterator)?
        var finished = false
        /// Pages taken whose credit is not given back yet.
        var ungranted: UInt32 = 0
        /// The OK trailers' metadata (query statistics, `vigil.cursor`), once the call ended.
        public private(set) var trailers: [String: String] = [:]

        init(sequence: QueryPages) {
            self.sequence = sequence
        }

        public mutating func next() async throws -> Vigil_V1_QueryResponse? {
            if finished { return nil }
            if call == nil {
                let opened = try await sequence.client.openCall(
                    .query, request: sequence.request, timeout: sequence.timeout, initialWindow: sequence.window)
                call = (opened.streamID, opened.events.makeAsyncIterator())
            }
            guard let event = try await call!.events.next() else {
                finished = true
                try Task.checkCancellation()
                throw VigilError(.internal, "the server ended the query without trailers")
            }
            switch event {
            case .message(let frame):
                let payload = try frame.messagePayload(maxMessageSize: sequence.client.maxMessageSize)
                let page = try EventDecoding.queryResponse(payload) ?? payload.decodeMessage(Vigil_V1_QueryResponse.self)
                // Credit goes back half a window at a time, as subscriptions
                // give it: with the default window of 4, a one-page answer
                // (most queries) costs no WINDOW frame, and a long one half as many.
                ungranted += 1
                if ungranted >= Swift.max(1, sequence.window / 2) {
                    sequence.client.grantWindow(streamID: call!.streamID, messages: ungranted)
                    ungranted = 0
                }
                return page
            case .trailers(let status):
                finished = true
                if let error = VigilError(status: status) { throw error }
                trailers = status.metadata
                return nil
            }
        }
    }
}

/// The events of one `Query` call, in order. `cursor` resumes after the last
/// event returned, in a later call with the same filter and order.
public struct QueryEvents: AsyncSequence, Sendable {
    public typealias Element = AuditEvent

    let pages: QueryPages

    public func makeAsyncIterator() -> Iterator {
        Iterator(pages: pages.makeAsyncIterator())
    }

    public struct Iterator: AsyncIteratorProtocol {
        var pages: QueryPages.Iterator
        var buffer: [AuditEvent] = []
        var position = 0
        var pageCursor = ""
        /// Resumes after the last event returned, once a whole page was returned;
        /// nil before that. (Cursors are per page: resume from here.) Once the
        /// query has been read to its end, the trailers' cursor: it no longer
        /// holds the query's snapshot, so a later call with it returns what
        /// was stored since (an incremental export). A page's cursor keeps
        /// the snapshot, and such a call would return nothing new, ever.
        public private(set) var cursor: String?

        /// The OK trailers' metadata (query statistics, `vigil.cursor`), once iteration ended.
        public var trailers: [String: String] { pages.trailers }

        public mutating func next() async throws -> AuditEvent? {
            while position == buffer.count {
                guard let page = try await pages.next() else {
                    if let end = pages.trailers["vigil.cursor"], !end.isEmpty { cursor = end }
                    return nil
                }
                buffer = page.events
                position = 0
                pageCursor = page.cursor
            }
            defer {
                position += 1
                if position == buffer.count { cursor = pageCursor }
            }
            return buffer[position]
        }
    }
}
