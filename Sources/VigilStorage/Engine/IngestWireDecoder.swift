import CVigilSystem
import VigilCore
import VigilProto

/// An Ingest request taken straight from its bytes into a memory chunk's
/// columns: what `IngestWireDecoder` gives for a batch it accepts.
public struct WireIngestBatch: Sendable {
    public let columns: MemoryChunk.Columns
    /// The request's events field by field, byte for byte: the WAL's record.
    public let encoded: EncodedEvents
    public let idempotencyKey: String
    public let wantReceipts: Bool
    /// The batch's tenants in order of first appearance, each with its events.
    public let tenantCounts: [(tenant: String, events: Int)]

    public var count: Int { columns.count }

    /// Refuses the batch when it holds events older than their tenant's retention.
    public func refuseExpired(_ retention: RetentionSettings.Values, now: Int64) throws(VigilError) {
        let columns = columns
        try retention.refuseExpired(count: count, tenants: tenantCounts.lazy.map(\.tenant), oldest: columns.minOccurredAt, now: now) { row in
            (columns.tenant.value(at: row), columns.occurredAt[row])
        }
    }
}

/// Decodes an `IngestRequest` from its protobuf bytes straight into the
/// memory segment's columns, validating as it goes: no `AuditEvent`
/// messages are built, no strings are made for values a column has already
/// seen, and checks that depend only on a value (a tenant's name, an
/// action's dot notation, an address's canonical form) run once per
/// distinct value. Decoding and validating the messages with swift-protobuf
/// took about a third of the server's CPU per ingested event.
///
/// It takes only batches that `EventValidator` accepts unchanged and that
/// decode to exactly the events swift-protobuf would give: valid UTF-8,
/// each singular field at most once, no unknown fields, no client-supplied
/// id, seq or received_at, only known enum values, addresses already in
/// canonical form. For anything else it returns nil and the caller takes
/// the general path (swift-protobuf and `EventValidator`), which gives the
/// precise error or the rewrite. So this decoder never has to explain a
/// refusal, only to be sure of an acceptance; the tests hold both paths to
/// the same columns and the same WAL bytes.
public enum IngestWireDecoder {
    /// The batch, or nil when the general path must decide. `now` is the
    /// server's clock. The batch's WAL bytes are read in place from
    /// `request`, which they keep.
    public static func decode(_ request: some ByteOwner, limits: EventLimits, now: UnixNanos) -> WireIngestBatch? {
        guard let (batch, entries) = request.withUnsafeBytes({ decode($0, limits: limits, now: now) }) else { return nil }
        return WireIngestBatch(
            columns: batch.columns, encoded: EncodedEvents(entries, of: request), idempotencyKey: batch.idempotencyKey,
            wantReceipts: batch.wantReceipts, tenantCounts: batch.tenantCounts)
    }

    /// What `decode` finds in the request's bytes: the batch but for its
    /// WAL bytes, and where those are.
    private struct Decoded {
        let columns: MemoryChunk.Columns
        let idempotencyKey: String
        let wantReceipts: Bool
        let tenantCounts: [(tenant: String, events: Int)]
    }

    private static func decode(_ request: UnsafeRawBufferPointer, limits: EventLimits, now: UnixNanos) -> (Decoded, EncodedEvents.Entries)? {
        guard request.baseAddress != nil else { return nil }
        // Count the events first, so that every column is allocated once at
        // its size: a guess from the request's size overshoots for large events,
        // and the memory budget counts what the columns hold, not their capacity.
        var counter = ProtobufFieldReader(request)
        var events = 0
        // This pass is the first to read the request, which is seldom in this
        // core's caches yet, and it reads one line per event, each address
        // known only from the line before: without asking ahead, it waited
        // on every line in turn (nearly all of its time, in `perf annotate`).
        let base = request.baseAddress!
        var asked = 0
        while !counter.atEnd {
            let ahead = min(counter.position &+ Self.prefetchDistance, request.count)
            while asked < ahead {
                vigil_prefetch(base + asked)
                asked &+= 64
            }
            guard let (field, wireType) = counter.tag(), counter.skip(wireType: wireType) else { return nil }
            if field == 1 { events += 1 }
        }
        guard events > 0, events <= limits.maxBatchEvents else { return nil }
        var state = State(bytes: request, limits: limits, now: now, events: events)
        var reader = ProtobufFieldReader(request)
        var entries = EncodedEvents.Entries()
        var key: String?
        var wantReceipts: Bool?
        while !reader.atEnd {
            let start = reader.position
            guard let (field, wireType) = reader.tag() else { return nil }
            switch (field, wireType) {
            case (1, 2):
                guard let range = reader.lengthDelimited(), state.event(range) else { return nil }
                entries.add(start..<reader.position, of: request)
            case (2, 2):
                guard key == nil, let range = reader.lengthDelimited(), range.count <= limits.maxIdempotencyKeyBytes,
                    let text = validUTF8String(UnsafeRawBufferPointer(rebasing: request[range]))
                else { return nil }
                key = text
            case (3, 0):
                guard wantReceipts == nil, let value = reader.varint() else { return nil }
                wantReceipts = value != 0
            default:
                return nil
            }
        }
        let tenants = state.tenant.distinctValues
        let counts = state.tenant.countsByCode
        let decoded = Decoded(
            columns: state.columns(), idempotencyKey: key ?? "", wantReceipts: wantReceipts ?? false,
            tenantCounts: tenants.indices.map { (tenant: tenants[$0], events: counts[$0]) })
        return (decoded, entries)
    }

    /// How far ahead of the counting pass the request's bytes are asked for:
    /// about a dozen events of the generator's size.
    static let prefetchDistance = 4_096

    /// The columns as they fill, event by event.
    private struct State {
        let bytes: UnsafeRawBufferPointer
        let limits: EventLimits
        /// The latest acceptable occurred-at: the server's clock plus the allowed skew.
        let latest: Int64
        var events = 0
        var occurredAt: [Int64] = []
        var tenant: TextColumn.DictionaryBuilder
        var actorID: AdaptiveTextBuilder
        var actorName: AdaptiveTextBuilder
        var actorEmail: AdaptiveTextBuilder
        var action: TextColumn.DictionaryBuilder
        var resourceType: TextColumn.DictionaryBuilder
        var resourceID: AdaptiveTextBuilder
        var resourceName: AdaptiveTextBuilder
        var reason: TextColumn.DictionaryBuilder
        var sourceIP: TextColumn.DictionaryBuilder
        var userAgent: TextColumn.DictionaryBuilder
        var actorType: [Int32] = []
        var category: [Int32] = []
        var outcome: [Int32] = []
        /// The columns with a value per row (trace and request ids,
        /// descriptions, and the adaptive columns once stored), in one table:
        /// a row's values side by side (`StoredTextRows`).
        var perRow: StoredTextRows.SharedBuilder
        var extras = ByteColumn()
        /// Writes one event's extras; its buffer is reused from event to event.
        var extrasWriter = CanonicalEvent.Writer()
        /// Scratch for one event's metadata entries (key, value), reused.
        var metadata: [(key: Range<Int>, value: Range<Int>)] = []
        /// Scratch for one event's targets and changes, reused.
        var targets: [Range<Int>] = []
        var changes: [Range<Int>] = []
        /// `bytes` typed, for the extras writers.
        let typed: UnsafeBufferPointer<UInt8>

        init(bytes: UnsafeRawBufferPointer, limits: EventLimits, now: UnixNanos, events capacity: Int) {
            self.bytes = bytes
            typed = bytes.assumingMemoryBound(to: UInt8.self)
            self.limits = limits
            let (latest, overflow) = now.addingReportingOverflow(limits.maxClockSkewNanos)
            self.latest = overflow ? .max : latest
            tenant = TextColumn.DictionaryBuilder(capacity: capacity)
            action = tenant
            resourceType = tenant
            reason = tenant
            sourceIP = tenant
            userAgent = tenant
            occurredAt.reserveCapacity(capacity)
            actorType.reserveCapacity(capacity)
            category.reserveCapacity(capacity)
            outcome.reserveCapacity(capacity)
            perRow = StoredTextRows.SharedBuilder(columns: PerRowColumn.count, rows: capacity)
            actorID = AdaptiveTextBuilder(capacity: capacity, sharedColumn: PerRowColumn.actorID)
            actorName = AdaptiveTextBuilder(capacity: capacity, sharedColumn: PerRowColumn.actorName)
            actorEmail = AdaptiveTextBuilder(capacity: capacity, sharedColumn: PerRowColumn.actorEmail)
            resourceID = AdaptiveTextBuilder(capacity: capacity, sharedColumn: PerRowColumn.resourceID)
            resourceName = AdaptiveTextBuilder(capacity: capacity, sharedColumn: PerRowColumn.resourceName)
            extras.ends.reserveCapacity(capacity)
        }

        /// Columns of `perRow`, in the order a row's values are read.
        enum PerRowColumn {
            static let actorID = 0, actorName = 1, actorEmail = 2, resourceID = 3, resourceName = 4
            static let traceID = 5, requestID = 6, descriptionText = 7
            static let count = 8
        }

        func columns() -> MemoryChunk.Columns {
            let table = perRow.finish()
            let dictionaries = [actorID, actorName, actorEmail, resourceID, resourceName].count { !$0.isStored }
            return MemoryChunk.Columns(
                occurredAt: occurredAt, explicitIDs: nil, tenant: tenant.column, actorID: actorID.column(in: table),
                actorType: actorType, actorName: actorName.column(in: table), actorEmail: actorEmail.column(in: table),
                action: action.column, category: category, resourceType: resourceType.column,
                resourceID: resourceID.column(in: table), resourceName: resourceName.column(in: table), outcome: outcome,
                reason: reason.column, sourceIP: sourceIP.column, userAgent: userAgent.column,
                traceID: TextColumn(stored: table.rows(column: PerRowColumn.traceID, alsoCountingUnused: dictionaries)),
                requestID: TextColumn(stored: table.rows(column: PerRowColumn.requestID)),
                descriptionText: TextColumn(stored: table.rows(column: PerRowColumn.descriptionText)),
                extras: extras, extrasCanonical: true)
        }

        @inline(__always)
        func raw(_ range: Range<Int>) -> UnsafeRawBufferPointer {
            UnsafeRawBufferPointer(rebasing: bytes[range])
        }

        /// A string field's bytes; nil for the wrong wire type or a cut value.
        @inline(__always)
        static func string(_ reader: inout ProtobufFieldReader, wireType: Int) -> Range<Int>? {
            guard wireType == 2 else { return nil }
            return reader.lengthDelimited()
        }

        /// An enum field's value when it is one of `0...max`.
        @inline(__always)
        static func enumeration(_ reader: inout ProtobufFieldReader, wireType: Int, max: UInt64) -> Int32? {
            guard wireType == 0, let value = reader.varint(), value <= max else { return nil }
            return Int32(value)
        }

        /// Decodes, checks and appends the event in `range`; false when the
        /// general path must decide the batch.
        mutating func event(_ range: Range<Int>) -> Bool {
            var reader = ProtobufFieldReader(bytes, range: range)
            var seen: UInt32 = 0
            let none = 0..<0
            var tenantSpan = none, actionSpan = none, reasonSpan = none, sourceIPSpan = none
            var userAgentSpan = none, traceSpan = none, requestSpan = none, descriptionSpan = none
            var actorIDSpan = none, actorNameSpan = none, actorEmailSpan = none
            var resourceTypeSpan = none, resourceIDSpan = none, resourceNameSpan = none
            var actorTypeValue: Int32 = 0, categoryValue: Int32 = 0, outcomeValue: Int32 = 0
            var occurred: Int64?
            targets.removeAllKeepingCapacity()
            changes.removeAllKeepingCapacity()
            metadata.removeAllKeepingCapacity()
            while !reader.atEnd {
                guard let (field, wireType) = reader.tag() else { return false }
                // Repeated fields (10, 17, 18) may come many times; a singular one only once.
                if field < 32 && field != 10 && field != 17 && field != 18 {
                    let bit: UInt32 = 1 << UInt32(field)
                    guard seen & bit == 0 else { return false }
                    seen |= bit
                }
                switch field {
                case 1:
                    // A client's id takes the general path (canonical form, repeats in the batch).
                    guard let id = Self.string(&reader, wireType: wireType), id.isEmpty else { return false }
                case 3:
                    guard wireType == 2, let value = reader.lengthDelimited(), let time = timestamp(value) else { return false }
                    occurred = time
                case 5: guard let span = Self.string(&reader, wireType: wireType) else { return false }; tenantSpan = span
                case 6:
                    guard wireType == 2, let value = reader.lengthDelimited() else { return false }
                    var actor = ProtobufFieldReader(bytes, range: value)
                    var actorSeen: UInt8 = 0
                    while !actor.atEnd {
                        guard let (actorField, actorWire) = actor.tag(), actorField <= 4,
                            actorSeen & (1 << UInt8(actorField)) == 0
                        else { return false }
                        actorSeen |= 1 << UInt8(actorField)
                        switch actorField {
                        case 1: guard let span = Self.string(&actor, wireType: actorWire) else { return false }; actorIDSpan = span
                        case 2:
                            guard let value = Self.enumeration(&actor, wireType: actorWire, max: 5) else { return false }
                            actorTypeValue = value
                        case 3: guard let span = Self.string(&actor, wireType: actorWire) else { return false }; actorNameSpan = span
                        default: guard let span = Self.string(&actor, wireType: actorWire) else { return false }; actorEmailSpan = span
                        }
                    }
                case 7: guard let span = Self.string(&reader, wireType: wireType) else { return false }; actionSpan = span
                case 8:
                    guard let value = Self.enumeration(&reader, wireType: wireType, max: 10) else { return false }
                    categoryValue = value
                case 9:
                    guard wireType == 2, let value = reader.lengthDelimited(),
                        let (type, id, name) = stringTriple(value)
                    else { return false }
                    (resourceTypeSpan, resourceIDSpan, resourceNameSpan) = (type, id, name)
                case 10:
                    guard wireType == 2, let value = reader.lengthDelimited() else { return false }
                    targets.append(value)
                case 11:
                    guard let value = Self.enumeration(&reader, wireType: wireType, max: 3) else { return false }
                    outcomeValue = value
                case 12: guard let span = Self.string(&reader, wireType: wireType) else { return false }; reasonSpan = span
                case 13: guard let span = Self.string(&reader, wireType: wireType) else { return false }; sourceIPSpan = span
                case 14: guard let span = Self.string(&reader, wireType: wireType) else { return false }; userAgentSpan = span
                case 15: guard let span = Self.string(&reader, wireType: wireType) else { return false }; traceSpan = span
                case 16: guard let span = Self.string(&reader, wireType: wireType) else { return false }; requestSpan = span
                case 17:
                    guard wireType == 2, let value = reader.lengthDelimited() else { return false }
                    changes.append(value)
                case 18:
                    guard wireType == 2, let value = reader.lengthDelimited(), let entry = mapEntry(value) else { return false }
                    metadata.append(entry)
                case 19: guard let span = Self.string(&reader, wireType: wireType) else { return false }; descriptionSpan = span
                default:
                    // seq (2) and received_at (4) are the server's to set: the
                    // general path clears them. Anything else is unknown here.
                    return false
                }
            }

            // The checks of `EventValidator`, in terms of bytes.
            guard let occurred else { return false }
            let limits = limits
            if actorIDSpan.isEmpty && actorTypeValue != 5 { return false }  // only ANONYMOUS actors may lack an id
            guard tenantSpan.count <= limits.maxTenantBytes, actionSpan.count <= limits.maxActionBytes,
                actorIDSpan.count <= limits.maxActorFieldBytes, actorNameSpan.count <= limits.maxActorFieldBytes,
                actorEmailSpan.count <= limits.maxActorFieldBytes,
                resourceTypeSpan.count <= limits.maxResourceTypeBytes,
                resourceIDSpan.count <= limits.maxResourceFieldBytes,
                resourceNameSpan.count <= limits.maxResourceFieldBytes,
                reasonSpan.count <= limits.maxReasonBytes, userAgentSpan.count <= limits.maxUserAgentBytes,
                traceSpan.count <= limits.maxCorrelationIDBytes, requestSpan.count <= limits.maxCorrelationIDBytes,
                descriptionSpan.count <= limits.maxDescriptionBytes,
                targets.count <= limits.maxTargets, changes.count <= limits.maxChanges,
                metadata.count <= limits.maxMetadataEntries
            else { return false }
            var total = tenantSpan.count + actionSpan.count + actorIDSpan.count + actorNameSpan.count
                + actorEmailSpan.count + resourceTypeSpan.count + resourceIDSpan.count + resourceNameSpan.count
                + reasonSpan.count + userAgentSpan.count + traceSpan.count + requestSpan.count + descriptionSpan.count

            // Extras: checked, then written in the part's form (`ColumnEncoding.extrasBytes(of:)`).
            extrasWriter.out.removeAllKeepingCapacity()
            if !targets.isEmpty || !changes.isEmpty || !metadata.isEmpty {
                for target in targets {
                    guard let (type, id, name) = stringTriple(target), type.count <= limits.maxResourceTypeBytes,
                        id.count <= limits.maxResourceFieldBytes, name.count <= limits.maxResourceFieldBytes,
                        isValidUTF8(raw(type)), isValidUTF8(raw(id)), isValidUTF8(raw(name))
                    else { return false }
                    total += type.count + id.count + name.count
                    extrasWriter.triple(10, typed, type, id, name)
                }
                for change in changes {
                    guard let (field, old, new) = stringTriple(change), !field.isEmpty,
                        field.count <= limits.maxChangeFieldBytes, old.count <= limits.maxChangeValueBytes,
                        new.count <= limits.maxChangeValueBytes,
                        isValidUTF8(raw(field)), isValidUTF8(raw(old)), isValidUTF8(raw(new))
                    else { return false }
                    total += field.count + old.count + new.count
                    extrasWriter.triple(17, typed, field, old, new)
                }
                if metadata.count > 1 {
                    let bytes = bytes
                    metadata.sort {
                        memoryLess(UnsafeRawBufferPointer(rebasing: bytes[$0.key]), UnsafeRawBufferPointer(rebasing: bytes[$1.key]))
                    }
                }
                // By index: `enumerated()` over these tuples was not inlined (a call per entry).
                for position in metadata.indices {
                    let (key, value) = metadata[position]
                    let keyBytes = raw(key)
                    // A repeated key: protobuf keeps the last, which the general path sorts out.
                    if position > 0 && memoryEqual(keyBytes, raw(metadata[position - 1].key)) { return false }
                    guard !key.isEmpty, key.count <= limits.maxMetadataKeyBytes,
                        keyBytes.allSatisfy(EventValidator.isKeyByte),
                        value.count <= limits.maxMetadataValueBytes, isValidUTF8(raw(value))
                    else { return false }
                    total += key.count + value.count
                    extrasWriter.entry(typed, key: key, value: value)
                }
            }
            guard total <= limits.maxEventBytes else { return false }

            // Per-row text: valid UTF-8 each time.
            guard isValidUTF8(raw(traceSpan)), isValidUTF8(raw(requestSpan)), isValidUTF8(raw(descriptionSpan)) else {
                return false
            }

            // Dictionary columns: each new value is checked once, when first seen.
            let address = raw(sourceIPSpan)
            guard
                tenant.append(bytes: raw(tenantSpan), accept: { EventValidator.tenantProblem($0) == nil }),
                action.append(bytes: raw(actionSpan), accept: EventValidator.isDotNotation),
                sourceIP.append(bytes: address, accept: { $0.isEmpty || isCanonicalIPv4(bytes: address) || IPAddress($0)?.description == $0 }),
                resourceType.append(bytes: raw(resourceTypeSpan), accept: { _ in true }),
                reason.append(bytes: raw(reasonSpan), accept: { _ in true }),
                userAgent.append(bytes: raw(userAgentSpan), accept: { _ in true }),
                // Mostly distinct within a batch, often: a dictionary or stored rows, as the batch shows.
                actorID.append(bytes: raw(actorIDSpan), shared: &perRow),
                actorName.append(bytes: raw(actorNameSpan), shared: &perRow),
                actorEmail.append(bytes: raw(actorEmailSpan), shared: &perRow),
                resourceID.append(bytes: raw(resourceIDSpan), shared: &perRow),
                resourceName.append(bytes: raw(resourceNameSpan), shared: &perRow)
            else { return false }
            occurredAt.append(occurred)
            actorType.append(actorTypeValue)
            category.append(categoryValue)
            outcome.append(outcomeValue)
            perRow.set(row: events, column: PerRowColumn.traceID, raw(traceSpan))
            perRow.set(row: events, column: PerRowColumn.requestID, raw(requestSpan))
            perRow.set(row: events, column: PerRowColumn.descriptionText, raw(descriptionSpan))
            extras.append(bytes: extrasWriter.out)
            events += 1
            return true
        }

        /// A Timestamp's nanoseconds since the epoch when the validator takes
        /// it as it is: seconds ≥ 0, nanos in 0..<10⁹, not past `latest`.
        func timestamp(_ range: Range<Int>) -> Int64? {
            var reader = ProtobufFieldReader(bytes, range: range)
            var seconds: UInt64?
            var nanos: UInt64?
            while !reader.atEnd {
                guard let (field, wireType) = reader.tag(), wireType == 0 else { return nil }
                switch field {
                case 1: guard seconds == nil, let value = reader.varint() else { return nil }; seconds = value
                case 2: guard nanos == nil, let value = reader.varint() else { return nil }; nanos = value
                default: return nil
                }
            }
            // Larger seconds (or negative ones, as ten-byte varints) overflow or precede 1970.
            guard (seconds ?? 0) <= 9_000_000_000, (nanos ?? 0) < 1_000_000_000 else { return nil }
            let time = Int64(seconds ?? 0) * 1_000_000_000 + Int64(nanos ?? 0)
            return time <= latest ? time : nil
        }

        /// Fields 1, 2 and 3 (up to `maxField`) of a Resource, a Change or a
        /// map entry, each a string at most once; missing ones are empty.
        func stringTriple(_ range: Range<Int>, maxField: Int = 3) -> (Range<Int>, Range<Int>, Range<Int>)? {
            var reader = ProtobufFieldReader(bytes, range: range)
            var spans = (0..<0, 0..<0, 0..<0)
            var seen: UInt8 = 0
            while !reader.atEnd {
                guard let (field, wireType) = reader.tag(), field <= maxField, seen & (1 << UInt8(field)) == 0,
                    let span = Self.string(&reader, wireType: wireType)
                else { return nil }
                seen |= 1 << UInt8(field)
                switch field {
                case 1: spans.0 = span
                case 2: spans.1 = span
                default: spans.2 = span
                }
            }
            return spans
        }

        /// A metadata map entry: key (1) and value (2), each at most once.
        func mapEntry(_ range: Range<Int>) -> (key: Range<Int>, value: Range<Int>)? {
            guard let (key, value, _) = stringTriple(range, maxField: 2) else { return nil }
            return (key, value)
        }
    }
}

/// Whether the UTF-8 bytes `text` are an IPv4 address in canonical form
/// (four decimal numbers 0-255 without leading zeros): most addresses,
/// checked without parsing them into an `IPAddress` and formatting them back.
func isCanonicalIPv4(bytes text: UnsafeRawBufferPointer) -> Bool {
    var parts = 0
    var value = 0
    var digits = 0
    var leadingZero = false
    for byte in text {
        if byte == UInt8(ascii: ".") {
            guard digits > 0, parts < 3 else { return false }
            parts += 1
            value = 0
            digits = 0
        } else if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
            if digits == 0 { leadingZero = byte == UInt8(ascii: "0") } else if leadingZero { return false }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
            digits += 1
            guard value <= 255 else { return false }
        } else {
            return false
        }
    }
    return parts == 3 && digits > 0
}
