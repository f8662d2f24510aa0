import NIOCore
import SwiftProtobuf
import VigilCore
import VigilProto
import VigilStorage
import VigilWire

/// Sends a call's response messages.
protocol ResponseSender: Sendable {
    /// Sends one response message. For server-streaming calls it first waits
    /// for WINDOW credit, so a client that grants none receives nothing more.
    func send(_ message: some SwiftProtobuf.Message) async throws
    /// Sends a message already in protobuf binary form.
    func send(serialized: ByteBuffer) async throws
    /// The largest frame payload the client accepts.
    var maxFrameSize: Int { get }
}

/// The `vigil.v1.Audit` methods, transport-free: a decoded request in, response
/// messages out through a `ResponseSender`, and the final status's metadata
/// returned (or a `VigilError` thrown).
struct AuditService: Sendable {
    let store: any EventStore
    let configuration: ServerConfiguration
    let validator: EventValidator

    init(store: any EventStore, configuration: ServerConfiguration) {
        self.store = store
        self.configuration = configuration
        self.validator = EventValidator(limits: configuration.eventLimits)
    }

    /// Runs one call. Returns the metadata for the OK trailers.
    func handle(_ method: AuditMethod, request: ByteBuffer, sender: some ResponseSender) async throws -> [String: String] {
        switch method {
        case .ingest:
            try await ingest(request.decodeMessage(), sender: sender)
        case .query:
            try await query(request.decodeMessage(), sender: sender)
        case .get:
            try await get(request.decodeMessage(), sender: sender)
        case .aggregate, .subscribe, .verify, .createToken, .listTokens, .revokeToken, .setRetention, .getStats:
            throw VigilError(.unimplemented, "\(method.rawValue) is not implemented by this server version (\(vigilVersion)) yet")
        }
    }

    func ingest(_ request: Vigil_V1_IngestRequest, sender: some ResponseSender) async throws -> [String: String] {
        if let problem = validator.checkIdempotencyKey(request.idempotencyKey) {
            throw VigilError(.invalidArgument, problem)
        }
        var events = request.events
        let errors = validator.validate(&events, now: currentUnixNanos())
        if !errors.isEmpty {
            let bad = Set(errors.map(\.index)).count
            throw VigilError(
                .invalidArgument,
                "\(bad) of \(request.events.count) events are invalid; nothing was stored",
                eventErrors: errors)
        }
        let result = try await store.append(events, idempotencyKey: request.idempotencyKey.isEmpty ? nil : request.idempotencyKey)
        var response = Vigil_V1_IngestResponse()
        response.firstSeq = result.firstSeq
        response.lastSeq = result.lastSeq
        response.count = UInt32(result.count)
        response.receivedAt = .init(unixNanos: result.receivedAt)
        response.replayed = result.replayed
        try await sender.send(response)
        return [:]
    }

    func query(_ request: Vigil_V1_QueryRequest, sender: some ResponseSender) async throws -> [String: String] {
        let filter = try EventFilter(request.filter)
        if case .UNRECOGNIZED(let value) = request.order {
            throw VigilError(.invalidArgument, "order \(value) is not NEWEST_FIRST or OLDEST_FIRST")
        }
        guard request.pageSize <= configuration.maxPageSize else {
            throw VigilError(.invalidArgument, "page_size \(request.pageSize) is over the limit of \(configuration.maxPageSize)")
        }
        let pageSize = request.pageSize == 0 ? configuration.defaultPageSize : Int(request.pageSize)
        var cursor = request.cursor.isEmpty
            ? nil : try QueryCursor(decoding: request.cursor, order: request.order, filterFingerprint: filter.fingerprint)
        var remaining = request.limit == 0 ? UInt64.max : request.limit
        var rowsExamined = 0
        var returned = 0
        var exhausted = false

        while remaining > 0 {
            try Task.checkCancellation()
            let page = try await store.scan(
                filter: filter, order: request.order, after: cursor, limit: Int(min(UInt64(pageSize), remaining)))
            rowsExamined += page.rowsExamined
            if let last = try await sendPage(page.events[...], order: request.order, filter: filter, sender: sender) {
                cursor = last
            }
            returned += page.events.count
            remaining -= UInt64(page.events.count)
            if page.exhausted {
                exhausted = true
                break
            }
        }
        var metadata = [
            "vigil.rows-examined": String(rowsExamined),
            "vigil.events-returned": String(returned),
            "vigil.exhausted": String(exhausted),
        ]
        if let cursor { metadata["vigil.cursor"] = cursor.encoded }
        return metadata
    }

    /// Sends `events` as one QueryResponse, or as several when one would not fit
    /// the client's frame limit. Returns the cursor after the last event.
    private func sendPage(
        _ events: ArraySlice<AuditEvent>, order: Vigil_V1_Order, filter: EventFilter, sender: some ResponseSender
    ) async throws -> QueryCursor? {
        guard let last = events.last else { return nil }
        var response = Vigil_V1_QueryResponse()
        response.events = Array(events)
        let cursor = QueryCursor(
            order: order, occurredAt: last.occurredAt.unixNanos, seq: last.seq, filterFingerprint: filter.fingerprint)
        response.cursor = cursor.encoded
        let bytes = response.serializedBuffer()
        // Rare: a page of large events. Halve until each part fits (one event always does).
        if bytes.readableBytes > sender.maxFrameSize && events.count > 1 {
            let middle = events.startIndex + events.count / 2
            _ = try await sendPage(events[..<middle], order: order, filter: filter, sender: sender)
            return try await sendPage(events[middle...], order: order, filter: filter, sender: sender)
        }
        try await sender.send(serialized: bytes)
        return cursor
    }

    func get(_ request: Vigil_V1_GetRequest, sender: some ResponseSender) async throws -> [String: String] {
        guard let id = EventID(request.id) else {
            throw VigilError(.invalidArgument, "id '\(request.id.prefix(64))' is not a UUID")
        }
        guard let event = try await store.get(id: id) else {
            throw VigilError(.notFound, "no event has id \(id)")
        }
        var response = Vigil_V1_GetResponse()
        response.event = event
        try await sender.send(response)
        return [:]
    }
}
