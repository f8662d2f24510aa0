import Logging
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
    /// Sends the first of `messages` (already serialized) and as many more as
    /// the client's credit allows now, in one write (one flush, one system
    /// call for all); returns how many it sent, at least one. Waits for
    /// credit only for the first. Stops before a message larger than the
    /// client's frames, and throws FAILED_PRECONDITION when that one is first.
    func sendSome(serialized messages: ArraySlice<ByteBuffer>) async throws -> Int
    /// Messages the client has granted credit for and not been sent yet
    /// (`Int.max` for a call that is not server-streaming).
    var credit: Int { get }
    /// Suspends until the client has granted credit for another message,
    /// without taking it: the next `send` or `sendSome` goes out at once.
    func waitForCredit() async throws
    /// The largest frame payload the client accepts.
    var maxFrameSize: Int { get }
    /// The subscriptions open on the call's connection.
    var subscriptions: SubscriptionSlots { get }
    /// Runs `body`, which builds and sends one page, once the client has
    /// granted credit for it and the connection may build another page:
    /// what bounds the memory a client that stops reading can pin.
    func withPageSlot<R>(_ body: () async throws -> R) async throws -> R
    /// What the trailers carry should the call be ended from outside its
    /// task (its deadline passed): the task is then cancelled and what it
    /// would have returned or thrown is dropped, so they ask `metadata`.
    func setEndingMetadata(_ metadata: @escaping @Sendable () -> [String: String])
}

/// Who makes a call: the connection's principal and address.
struct Caller: Sendable {
    var principal: Principal
    /// The peer's IP address, for `_system` events.
    var peerIP: String?

    static let anonymous = Caller(principal: .anonymous, peerIP: nil)
}

/// The `vigil.v1.Audit` methods, transport-free: a decoded request in, response
/// messages out through a `ResponseSender`, and the final status's metadata
/// returned (or a `VigilError` thrown).
struct AuditService: Sendable {
    let store: any EventStore
    let configuration: ServerConfiguration
    let validator: EventValidator
    /// Subscriptions open on the whole server.
    let subscriptions: SubscriptionSlots
    let access: AccessControl
    let startedAt: UnixNanos
    let metrics: VigilMetrics
    /// The server's own state, for Health and GetStats.
    let vitals: ServerVitals

    init(
        store: any EventStore, configuration: ServerConfiguration, logger: Logger = Logger(label: "vigil"),
        metrics: VigilMetrics = VigilMetrics(), vitals: ServerVitals = ServerVitals()
    ) {
        self.metrics = metrics
        self.vitals = vitals
        self.store = store
        self.configuration = configuration
        self.validator = EventValidator(limits: configuration.eventLimits)
        self.subscriptions = SubscriptionSlots(limit: configuration.maxSubscriptions)
        let registry: TokenRegistry? = switch configuration.authentication {
        case .disabled: nil
        case .tokens(let registry): registry
        }
        let connections = LiveConnections(limit: configuration.maxConnections)
        // A token file reloaded on SIGHUP may no longer hold a token: its connections close as on a revocation.
        registry?.onDeactivation { tokenID in connections.revoke(tokenID: tokenID) }
        self.access = AccessControl(
            registry: registry,
            rateLimiter: IngestRateLimiter(defaultEventsPerSecond: configuration.defaultIngestEventsPerSecond),
            connections: connections,
            systemLog: SystemAuditLog(store: store, logger: logger))
        self.startedAt = vitals.startedAt
    }

    /// Runs one call for `caller`, once its token's scopes and tenants allow
    /// it. Returns the metadata for the OK trailers.
    func handle(
        _ method: AuditMethod, request: ByteBuffer, sender: some ResponseSender, caller: Caller = .anonymous,
        tenants: CallTenants? = nil
    ) async throws -> [String: String] {
        let principal = caller.principal
        try access.checkActive(principal)
        switch method {
        case .ingest:
            try principal.require(.ingest, for: method)
            // Most batches go straight from bytes to columns; the rest (an
            // error to explain, a value to rewrite, redaction) take the general path.
            if configuration.redaction == nil,
                let batch = IngestWireDecoder.decode(RequestBytes(request), limits: validator.limits, now: currentUnixNanos())
            {
                tenants?.record(.list(batch.tenantCounts.map(\.tenant)))
                return try await measuredIngest(tenantCounts: batch.tenantCounts) {
                    try await self.ingest(batch, sender: sender, caller: caller)
                }
            }
            let ingest: Vigil_V1_IngestRequest = try request.decodeMessage()
            tenants?.record(.events(ingest.events))
            return try await measuredIngest(tenantCounts: VigilMetrics.tenantCounts(of: ingest.events)) {
                try await self.ingest(ingest, bytes: request, sender: sender, caller: caller)
            }
        case .query:
            try principal.require(.read, for: method)
            var query: Vigil_V1_QueryRequest = try request.decodeMessage()
            tenants?.record(.list(query.filter.tenants))
            query.filter = try principal.scoped(query.filter, for: method)
            let metadata = try await measured(method) { try await self.query(query, sender: sender) }
            return Self.withoutScanStatistics(metadata, unlessAllTenants: principal)
        case .get:
            try principal.require(.read, for: method)
            let get: Vigil_V1_GetRequest = try request.decodeMessage()
            return try await measured(method) { try await self.get(get, sender: sender, principal: principal) }
        case .aggregate:
            try principal.require(.read, for: method)
            var aggregate: Vigil_V1_AggregateRequest = try request.decodeMessage()
            tenants?.record(.list(aggregate.filter.tenants))
            aggregate.filter = try principal.scoped(aggregate.filter, for: method)
            let metadata = try await measured(method) { try await self.aggregate(aggregate, sender: sender) }
            return Self.withoutScanStatistics(metadata, unlessAllTenants: principal)
        case .subscribe:
            try principal.require(.read, for: method)
            var subscribe: Vigil_V1_SubscribeRequest = try request.decodeMessage()
            tenants?.record(.list(subscribe.filter.tenants))
            try checkSubscriptionFilterSize(subscribe.filter)
            subscribe.filter = try principal.scoped(subscribe.filter, for: method)
            return try await self.subscribe(subscribe, sender: sender)
        case .verify:
            try await authorizeAdmin(method, caller: caller) { () throws(VigilError) in try principal.requireServerAdmin(for: method) }
            return try await verify(request.decodeMessage(), sender: sender)
        case .createToken, .listTokens, .revokeToken, .setRetention, .getStats:
            return try await admin(method, request: request, sender: sender, caller: caller)
        case .health:
            // Any authenticated principal: a probe needs no scope.
            let _: Vigil_V1_HealthRequest = try request.decodeMessage()
            try await sender.send(healthResponse())
            return [:]
        case .backup:
            try await authorizeAdmin(method, caller: caller) { () throws(VigilError) in try principal.requireServerAdmin(for: method) }
            return try await backup(request.decodeMessage(), sender: sender, caller: caller)
        }
    }

    /// Ingest, counted by tenant and outcome (and timed when acknowledged).
    func measuredIngest(
        tenantCounts: @autoclosure () -> [(tenant: String, events: Int)], _ body: () async throws -> [String: String]
    ) async throws -> [String: String] {
        let started = ContinuousClock.now
        do {
            let metadata = try await body()
            let counts = tenantCounts()
            metrics.recordIngest(counts, code: .ok, duration: .now - started)
            vitals.ingestRate.record(counts.reduce(0) { $0 + $1.events })
            return metadata
        } catch {
            let code: StatusCode = (error as? VigilError)?.code.status ?? (error is CancellationError ? .cancelled : .internal)
            metrics.recordIngest(tenantCounts(), code: code, duration: nil)
            throw error
        }
    }

    /// Runs a read call, recording its duration and blocks when it succeeds.
    func measured(_ method: AuditMethod, _ body: () async throws -> [String: String]) async throws -> [String: String] {
        let started = ContinuousClock.now
        let trailers = try await body()
        metrics.recordQuery(method, duration: .now - started, trailers: trailers)
        return trailers
    }

    /// Serving, or not and why: the server's reasons, then the store's.
    func healthResponse() -> Vigil_V1_HealthResponse {
        var response = Vigil_V1_HealthResponse()
        response.reasons = vitals.problems + store.healthProblems
        response.status = response.reasons.isEmpty ? .serving : .notServing
        return response
    }

    /// `bytes`: the request as it arrived, whose events the WAL can take as
    /// they are when nothing rewrites them.
    func ingest(
        _ request: Vigil_V1_IngestRequest, bytes: ByteBuffer? = nil, sender: some ResponseSender, caller: Caller = .anonymous
    ) async throws -> [String: String] {
        if let problem = validator.checkIdempotencyKey(request.idempotencyKey) {
            throw VigilError(.invalidArgument, problem)
        }
        var events = request.events
        var rewritten = false
        let now = currentUnixNanos()
        let errors = validator.validate(&events, now: now, rewritten: &rewritten)
        if !errors.isEmpty {
            let bad = Set(errors.map(\.index)).count
            throw VigilError(
                .invalidArgument,
                "\(bad) of \(request.events.count) events are invalid; nothing was stored",
                eventErrors: errors)
        }
        if let retention = store.retentionInForce {
            try retention.refuseExpired(
                count: events.count, tenants: Set(events.lazy.map(\.tenant)),
                oldest: events.lazy.map(\.occurredAt.unixNanos).min() ?? .max, now: now
            ) { (events[$0].tenant, events[$0].occurredAt.unixNanos) }
        }
        if case .only = caller.principal.tenants {
            for event in events { try caller.principal.require(tenant: event.tenant, for: .ingest) }
        }
        if let redaction = configuration.redaction {
            for index in events.indices { redaction.apply(to: &events[index]) }
        }
        let encoded = rewritten || configuration.redaction != nil
            ? nil : bytes.flatMap { EncodedEvents(eventsOf: RequestBytes($0)) }
        let result = try await rateLimited(
            caller.principal, events: events.count, idempotencyKey: request.idempotencyKey, tenants: events.lazy.map(\.tenant)
        ) { () async throws(VigilError) in
            try await store.append(
                events, encoded: encoded, idempotencyKey: request.idempotencyKey.isEmpty ? nil : request.idempotencyKey,
                wantReceipts: request.wantReceipts)
        }
        return try await acknowledge(result, sender: sender)
    }

    /// Runs `append` under the token's rate limit. A retry the store
    /// remembers is answered first, uncharged (an agent whose ack was lost
    /// must get its answer, not RESOURCE_EXHAUSTED); a batch that stored
    /// nothing (refused, or replayed after all) is refunded.
    private func rateLimited(
        _ principal: Principal, events: Int, idempotencyKey: String, tenants: some Sequence<String>,
        append: () async throws(VigilError) -> AppendResult
    ) async throws(VigilError) -> AppendResult {
        if let waitMilliseconds = access.rateLimiter.admit(principal, events: events) {
            // Asked only when refused (a refusal charges nothing): the usual
            // batch is not looked up twice.
            if !idempotencyKey.isEmpty, let earlier = try await store.earlierAnswer(idempotencyKey: idempotencyKey, tenants: tenants) {
                return earlier
            }
            throw rateLimited(waitMilliseconds)
        }
        do throws(VigilError) {
            let result = try await append()
            if result.replayed { access.rateLimiter.refund(principal, events: events) }
            return result
        } catch {
            access.rateLimiter.refund(principal, events: events)
            throw error
        }
    }

    /// `ingest` of a batch `IngestWireDecoder` took: valid, and with nothing to rewrite or redact.
    func ingest(_ batch: WireIngestBatch, sender: some ResponseSender, caller: Caller) async throws -> [String: String] {
        if case .only = caller.principal.tenants {
            for (tenant, _) in batch.tenantCounts { try caller.principal.require(tenant: tenant, for: .ingest) }
        }
        if let retention = store.retentionInForce { try batch.refuseExpired(retention, now: currentUnixNanos()) }
        let result = try await rateLimited(
            caller.principal, events: batch.count, idempotencyKey: batch.idempotencyKey, tenants: batch.tenantCounts.lazy.map(\.tenant)
        ) { () async throws(VigilError) in try await store.append(batch) }
        return try await acknowledge(result, sender: sender)
    }

    private func rateLimited(_ waitMilliseconds: UInt64) -> VigilError {
        VigilError(
            .resourceExhausted,
            "this token's ingest rate limit is used up; retry in \(waitMilliseconds) ms (vigil.retry-after-ms)",
            metadata: ["vigil.retry-after-ms": String(waitMilliseconds)])
    }

    /// Answers a stored (or replayed) batch.
    private func acknowledge(_ result: AppendResult, sender: some ResponseSender) async throws -> [String: String] {
        var response = Vigil_V1_IngestResponse()
        if let receipt = result.receipt { response.set(receipt) }
        response.firstSeq = result.firstSeq
        response.lastSeq = result.lastSeq
        response.count = UInt32(result.count)
        response.receivedAt = .init(unixNanos: result.receivedAt)
        response.replayed = result.replayed
        try await sender.send(response)
        return [:]
    }

    /// A scan's statistics count whole blocks, whatever tenants share them,
    /// and every other tenant's blocks skipped: a token bound to tenants
    /// could watch the whole server's volume through them.
    static func withoutScanStatistics(_ metadata: [String: String], unlessAllTenants principal: Principal) -> [String: String] {
        guard principal.tenants != .all else { return metadata }
        return metadata.filter { ScanStatistics().trailerMetadata[$0.key] == nil }
    }

    func query(_ request: Vigil_V1_QueryRequest, sender: some ResponseSender) async throws -> [String: String] {
        if case .UNRECOGNIZED(let value) = request.order {
            throw VigilError(.invalidArgument, "order \(value) is not NEWEST_FIRST or OLDEST_FIRST")
        }
        guard request.pageSize <= configuration.maxPageSize else {
            throw VigilError(.invalidArgument, "page_size \(request.pageSize) is over the limit of \(configuration.maxPageSize)")
        }
        let pageSize = request.pageSize == 0 ? configuration.defaultPageSize : Int(request.pageSize)
        // A resumed query keeps the first page's clock (for `last`) and snapshot.
        var cursor = request.cursor.isEmpty
            ? nil
            : try QueryCursor(
                decoding: request.cursor, order: request.order, filterFingerprint: EventFilter.fingerprint(of: request.filter))
        let anchor = cursor?.anchor ?? currentUnixNanos()
        let filter = try EventFilter(request.filter, anchor: anchor)
        var remaining = request.limit == 0 ? UInt64.max : request.limit
        var statistics = ScanStatistics()
        var returned = 0
        var exhausted = false

        while remaining > 0 {
            try Task.checkCancellation()
            let page = try await sender.withPageSlot {
                let page = try await store.scanEncoded(
                    filter: filter, order: request.order, after: cursor, limit: Int(min(UInt64(pageSize), remaining)))
                let context = PageContext(order: request.order, filter: filter, anchor: anchor, visibleSeq: page.visibleSeq)
                if let last = try await sendPage(page.encodedEvents[...], context: context, sender: sender) {
                    cursor = last
                }
                return page
            }
            statistics.add(page.statistics)
            returned += page.encodedEvents.count
            remaining -= UInt64(page.encodedEvents.count)
            if page.exhausted {
                exhausted = true
                break
            }
        }
        var metadata = statistics.trailerMetadata
        metadata["vigil.events-returned"] = String(returned)
        metadata["vigil.exhausted"] = String(exhausted)
        if var cursor {
            // A result read to its end resumes into whatever is stored later
            // (an incremental export); a cut-off one keeps its snapshot.
            if exhausted { cursor.visibleSeq = .max }
            metadata["vigil.cursor"] = cursor.encoded
        }
        return metadata
    }

    /// What a page's cursor is made of besides its last event.
    private struct PageContext {
        var order: Vigil_V1_Order
        var filter: EventFilter
        var anchor: UnixNanos
        var visibleSeq: UInt64
    }

    /// Sends `events` as one QueryResponse, or as several when one would not fit
    /// the client's frame limit. Returns the cursor after the last event.
    ///
    /// The response is written by hand around the events' bytes (field 1
    /// per event, then the cursor as field 2): what swift-protobuf would
    /// write for `QueryResponse` with those events, without building them.
    private func sendPage(
        _ events: ArraySlice<EncodedEvent>, context: PageContext, sender: some ResponseSender
    ) async throws -> QueryCursor? {
        guard let last = events.last else { return nil }
        let cursor = QueryCursor(
            order: context.order, occurredAt: last.occurredAt, seq: last.seq,
            filterFingerprint: context.filter.fingerprint, anchor: context.anchor, visibleSeq: context.visibleSeq)
        let cursorText = cursor.encoded
        var size = ByteBuffer.protobufFieldSize(count: cursorText.utf8.count)
        for event in events { size += ByteBuffer.protobufFieldSize(count: event.bytes.count) }
        // Rare: a page of large events. Halve until each part fits.
        if size > sender.maxFrameSize {
            guard events.count > 1 else {
                // Possible only with --max-event-bytes raised past the client's
                // frame limit (128 KiB at least): sent, the frame would break
                // the connection instead of saying why.
                throw FrameSender.largerThanClientFrames(bytes: size, maxFrameSize: sender.maxFrameSize, seq: last.seq)
            }
            let middle = events.startIndex + events.count / 2
            _ = try await sendPage(events[..<middle], context: context, sender: sender)
            return try await sendPage(events[middle...], context: context, sender: sender)
        }
        var buffer = ByteBufferAllocator().buffer(capacity: size)
        for event in events {
            buffer.writeProtobufFieldHeader(field: 1, count: event.bytes.count)
            buffer.writeBytes(event.bytes)
        }
        if !cursorText.isEmpty {
            buffer.writeProtobufFieldHeader(field: 2, count: cursorText.utf8.count)
            buffer.writeString(cursorText)
        }
        try await sender.send(serialized: buffer)
        return cursor
    }

    /// Most groups an aggregate returns, and most histogram buckets: both
    /// bound the size of the answer (a frame) and the work of building it.
    static let maxTop = 1_000
    static let maxHistogramBuckets = 100_000
    /// Most distinct groups an aggregate counts (it answers `top` of them):
    /// about 100 bytes each, per counting lane, while it counts.
    static let maxGroups = 1_000_000
    static let histogramWidthRange: ClosedRange<Int64> = 1_000_000_000...(366 * 86_400 * 1_000_000_000)

    func aggregate(_ request: Vigil_V1_AggregateRequest, sender: some ResponseSender) async throws -> [String: String] {
        let filter = try EventFilter(request.filter)
        let groupBy: GroupField?
        switch request.groupBy {
        case .none: groupBy = nil
        case .action: groupBy = .action
        case .actor: groupBy = .actorID
        case .resourceType: groupBy = .resourceType
        case .outcome: groupBy = .outcome
        case .tenant: groupBy = .tenant
        case .category: groupBy = .category
        case .sourceIp: groupBy = .sourceIP
        case .UNRECOGNIZED(let value):
            throw VigilError(.invalidArgument, "group_by \(value) is not a GroupBy value")
        }
        guard request.top <= Self.maxTop else {
            throw VigilError(.invalidArgument, "top \(request.top) is over the limit of \(Self.maxTop)")
        }
        let top = request.top == 0 ? 10 : Int(request.top)
        var width: Int64?
        if request.hasHistogramInterval {
            let interval = request.histogramInterval
            let (nanos, overflow) = interval.seconds.multipliedReportingOverflow(by: 1_000_000_000)
            let total = overflow ? Int64.max : nanos &+ Int64(interval.nanos)
            guard Self.histogramWidthRange.contains(total) else {
                throw VigilError(.invalidArgument, "histogram_interval must be between 1 second and 366 days")
            }
            width = total
        }
        var query = AggregateQuery(filter: filter, groupBy: groupBy, histogramWidth: width)
        query.maxHistogramBuckets = Self.maxHistogramBuckets
        query.maxGroups = Self.maxGroups
        let result = try await store.aggregate(query)

        var response = Vigil_V1_AggregateResponse()
        response.count = result.count
        if groupBy != nil {
            // Ties by key bytes, so the order is stable whatever the spelling.
            let sorted = result.groups.sorted {
                $0.value != $1.value ? $0.value > $1.value : $0.key.value.utf8.lexicographicallyPrecedes($1.key.value.utf8)
            }
            response.groups = sorted.prefix(top).map { entry in
                var group = Vigil_V1_GroupCount()
                group.key = entry.key.value
                group.count = entry.value
                return group
            }
            response.otherCount = sorted.dropFirst(top).reduce(0) { $0 + $1.value }
            response.groupTotal = UInt64(sorted.count)
        }
        if let width, let first = result.histogram.keys.min(), let last = result.histogram.keys.max() {
            let (span, overflow) = last.subtractingReportingOverflow(first)
            let buckets = overflow ? Int64.max : span / width + 1
            guard buckets <= Self.maxHistogramBuckets else {
                throw VigilError(
                    .invalidArgument,
                    "the histogram would have \(buckets) buckets; the limit is \(Self.maxHistogramBuckets): choose a wider histogram_interval or a narrower time range")
            }
            response.histogram = stride(from: first, through: last, by: Int(width)).map { start in
                var bucket = Vigil_V1_HistogramBucket()
                bucket.start = .init(unixNanos: start)
                bucket.count = result.histogram[start] ?? 0
                return bucket
            }
        }
        let bytes = response.serializedBuffer()
        guard bytes.readableBytes <= sender.maxFrameSize else {
            throw VigilError(
                .resourceExhausted,
                "the answer is \(bytes.readableBytes) bytes, over the client's frame limit of \(sender.maxFrameSize): ask for fewer groups (top) or fewer histogram buckets")
        }
        try await sender.send(serialized: bytes)
        return result.statistics.trailerMetadata
    }

    func get(_ request: Vigil_V1_GetRequest, sender: some ResponseSender, principal: Principal = .anonymous) async throws -> [String: String] {
        guard let id = EventID(request.id) else {
            throw VigilError(.invalidArgument, "id '\(request.id.prefix(64))' is not a UUID")
        }
        // Another tenant's event is "not found": its existence is not the caller's business.
        let tenants = principal.tenants
        guard let event = try await store.get(id: id, tenantAllowed: { tenants.allows($0) }) else {
            throw VigilError(.notFound, "no event has id \(id)")
        }
        var response = Vigil_V1_GetResponse()
        response.event = event
        try await sender.send(response)
        return [:]
    }
}
