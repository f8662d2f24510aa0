import NIOCore
import SwiftProtobuf
import VigilCore
import VigilProto
@testable import VigilStorage
import VigilWire

/// Protobuf → events → `EventValidator` (and `IngestWireDecoder`, which must
/// agree with it); filters → `EventFilter`; cursor text
/// → `QueryCursor` / `SubscriptionCursor`: the paths a request's bytes take in
/// the server before anything is stored or scanned.
///
/// Input: a control byte, then the message bytes (or, for cursors, the text).
/// Nothing may trap, and whatever is refused is refused with INVALID_ARGUMENT.
/// Validation must be idempotent: a batch it accepts (and normalizes) is
/// accepted again unchanged.
enum EventFuzz {
    /// The server's clock for validation: a fixed, realistic time.
    static let now: UnixNanos = 1_780_000_000_000_000_000

    /// Small limits, so that the fuzzer reaches every "over the limit" branch with short inputs.
    static let tightLimits: EventLimits = {
        var limits = EventLimits()
        limits.maxBatchEvents = 4
        limits.maxEventBytes = 256
        limits.maxTenantBytes = 8
        limits.maxActionBytes = 16
        limits.maxActorFieldBytes = 8
        limits.maxResourceTypeBytes = 8
        limits.maxResourceFieldBytes = 8
        limits.maxTargets = 2
        limits.maxReasonBytes = 8
        limits.maxUserAgentBytes = 8
        limits.maxCorrelationIDBytes = 8
        limits.maxChanges = 2
        limits.maxChangeFieldBytes = 8
        limits.maxChangeValueBytes = 8
        limits.maxMetadataEntries = 2
        limits.maxMetadataKeyBytes = 8
        limits.maxMetadataValueBytes = 8
        limits.maxDescriptionBytes = 8
        limits.maxIdempotencyKeyBytes = 8
        return limits
    }()

    static func run(_ data: UnsafeRawBufferPointer) {
        var input = FuzzInput(data)
        let control = input.byte()
        let rest = input.rest()
        switch control & 0x03 {
        case 0, 1: ingest(rest, limits: control & 0x04 == 0 ? .default : tightLimits)
        case 2: query(rest)
        default:
            if control & 0x04 == 0 {
                subscribe(rest)
            } else {
                cursorText(String(decoding: rest, as: UTF8.self))
            }
        }
    }

    /// Decodes `bytes` as the server does (`ByteBuffer.decodeMessage`); nil when refused.
    static func decode<M: SwiftProtobuf.Message>(_ bytes: [UInt8], _ type: M.Type) -> M? {
        do {
            return try ByteBuffer(bytes: bytes).decodeMessage(M.self)
        } catch {
            precondition(error.code == .invalidArgument, "decoding \(M.self) threw \(error)")
            return nil
        }
    }

    // MARK: - Ingest

    static func ingest(_ bytes: [UInt8], limits: EventLimits) {
        // The server's fast path must take only what the general path takes unchanged, and agree with it.
        let wire = IngestWireDecoder.decode(bytes, limits: limits, now: now)
        guard let request = decode(bytes, Vigil_V1_IngestRequest.self) else {
            precondition(wire == nil, "IngestWireDecoder took a request swift-protobuf refuses")
            return
        }
        let validator = EventValidator(limits: limits)
        let keyProblem = validator.checkIdempotencyKey(request.idempotencyKey)
        var events = request.events
        var rewritten = false
        let errors = validator.validate(&events, now: now, rewritten: &rewritten)
        if let wire {
            precondition(keyProblem == nil && errors.isEmpty && !rewritten, "IngestWireDecoder took a batch the validator refuses or rewrites")
            if let difference = wire.columns.firstDifference(from: MemoryChunk.Columns(events)) {
                preconditionFailure("IngestWireDecoder's columns differ: \(difference)")
            }
            precondition(wire.encoded == EncodedEvents(eventsOf: bytes), "IngestWireDecoder's WAL bytes differ")
            precondition(wire.idempotencyKey == request.idempotencyKey && wire.wantReceipts == request.wantReceipts)
            precondition(wire.tenantCounts.reduce(0) { $0 + $1.events } == events.count)
        }
        precondition(events.count == request.events.count, "validation changed the number of events")
        if !rewritten { precondition(events == request.events, "validation rewrote an event and did not say so") }
        // The WAL copies the request's event bytes when nothing was rewritten:
        // they must decode to exactly the events (nil only for what it cannot
        // copy, such as a group field, where the store encodes the events itself).
        if errors.isEmpty, !rewritten, let encoded = EncodedEvents(eventsOf: bytes) {
            let batch = try? Vigil_V1_WalBatch(serializedBytes: encoded.bytes)
            precondition(batch?.events == events, "the request's event bytes do not decode to its events")
        }
        for error in errors {
            precondition(Int(error.index) < max(1, events.count), "error for event \(error.index) of \(events.count)")
            precondition(!error.reason.isEmpty, "an error without a reason")
        }
        _ = VigilError(.invalidArgument, "batch refused", eventErrors: errors).description
        guard errors.isEmpty else { return }

        // An accepted batch is normalized: accepting it again changes nothing.
        var again = events
        let secondErrors = validator.validate(&again, now: now)
        precondition(secondErrors.isEmpty, "a normalized batch is refused: \(secondErrors)")
        precondition(again == events, "validation is not idempotent")
        let everything = EventFilter()
        for event in events {
            precondition(event.seq == 0 && !event.hasReceivedAt, "server fields survived validation")
            if !event.id.isEmpty {
                precondition(EventID(event.id)?.description == event.id, "id \(event.id) is not canonical after validation")
            }
            if !event.sourceIp.isEmpty {
                precondition(IPAddress(event.sourceIp)?.description == event.sourceIp, "source IP \(event.sourceIp) is not canonical")
            }
            precondition(everything.matches(event), "the empty filter refuses an event")
        }
        // What is stored is what comes back.
        var response = Vigil_V1_QueryResponse()
        response.events = events
        precondition(decode(Array(buffer: response.serializedBuffer()), Vigil_V1_QueryResponse.self) == response, "events do not round trip")
    }

    // MARK: - Query, subscribe, cursors

    static func query(_ bytes: [UInt8]) {
        guard let request = decode(bytes, Vigil_V1_QueryRequest.self) else { return }
        let fingerprint = EventFilter.fingerprint(of: request.filter)
        var anchor = now
        if !request.cursor.isEmpty {
            // As the server does, then again with the fingerprint the cursor
            // itself names, so that forged cursors reach the filter too.
            if let cursor = queryCursor(request.cursor, order: request.order, fingerprint: fingerprint) {
                anchor = cursor.anchor
            } else if let named = namedFingerprint(request.cursor, at: 36),
                let cursor = queryCursor(request.cursor, order: request.order, fingerprint: named)
            {
                anchor = cursor.anchor
            }
        }
        compile(request.filter, anchor: anchor)
    }

    static func subscribe(_ bytes: [UInt8]) {
        guard let request = decode(bytes, Vigil_V1_SubscribeRequest.self) else { return }
        compile(request.filter, anchor: now)
        if case .cursor(let text) = request.start {
            let fingerprint = EventFilter.fingerprint(of: request.filter)
            _ = subscriptionCursor(text, fingerprint: fingerprint)
            cursorText(text)
        }
    }

    /// Any text as either kind of cursor, with the fingerprint it names.
    static func cursorText(_ text: String) {
        for order in [Vigil_V1_Order.newestFirst, .oldestFirst] {
            _ = queryCursor(text, order: order, fingerprint: namedFingerprint(text, at: 36) ?? 0)
        }
        _ = subscriptionCursor(text, fingerprint: namedFingerprint(text, at: 20) ?? 0)
    }

    /// The 16 hex digits at `offset` of `text`, as a fingerprint.
    static func namedFingerprint(_ text: String, at offset: Int) -> UInt64? {
        let utf8 = Array(text.utf8)
        guard utf8.count >= offset + 16 else { return nil }
        return UInt64(String(decoding: utf8[offset..<offset + 16], as: UTF8.self), radix: 16)
    }

    static func queryCursor(_ text: String, order: Vigil_V1_Order, fingerprint: UInt64) -> QueryCursor? {
        do {
            let cursor = try QueryCursor(decoding: text, order: order, filterFingerprint: fingerprint)
            precondition(cursor.encoded == text, "query cursor \(text) re-encodes as \(cursor.encoded)")
            return cursor
        } catch {
            precondition(error.code == .invalidArgument, "QueryCursor(decoding:) threw \(error)")
            return nil
        }
    }

    static func subscriptionCursor(_ text: String, fingerprint: UInt64) -> SubscriptionCursor? {
        do {
            let cursor = try SubscriptionCursor(decoding: text, filterFingerprint: fingerprint)
            precondition(cursor.encoded == text, "subscription cursor \(text) re-encodes as \(cursor.encoded)")
            return cursor
        } catch {
            precondition(error.code == .invalidArgument, "SubscriptionCursor(decoding:) threw \(error)")
            return nil
        }
    }

    /// Compiles a filter and, when it is accepted, evaluates it against sample events.
    static func compile(_ message: Vigil_V1_Filter, anchor: UnixNanos) {
        let filter: EventFilter
        do {
            filter = try EventFilter(message, anchor: anchor)
        } catch {
            precondition(error.code == .invalidArgument, "EventFilter(_:) threw \(error)")
            precondition(error.message.hasPrefix("filter."), "the error does not name the field: \(error.message)")
            return
        }
        precondition(filter.fingerprint == EventFilter.fingerprint(of: message), "fingerprint differs")
        precondition(EventFilter.entryCount(of: message) >= 0)
        _ = filter.isTimeAndTenantOnly
        for event in sampleEvents {
            _ = filter.matches(event)
        }
    }

    /// Events for filters to match: ordinary, empty, and awkward.
    static let sampleEvents: [AuditEvent] = {
        var ordinary = AuditEvent()
        ordinary.tenant = "acme"
        ordinary.occurredAt = Google_Protobuf_Timestamp(unixNanos: now - 1_000)
        ordinary.actor.id = "u-1"
        ordinary.actor.type = .user
        ordinary.actor.email = "Alice@Example.com"
        ordinary.actor.name = "Alice"
        ordinary.action = "user.create"
        ordinary.category = .create
        ordinary.resource.type = "user"
        ordinary.resource.id = "u-2"
        ordinary.outcome = .success
        ordinary.sourceIp = "10.1.2.3"
        ordinary.traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
        ordinary.metadata = ["region": "eu-west-1", "project": "p"]
        ordinary.description_p = "Alice created user u-2"
        var awkward = ordinary
        awkward.tenant = "_system"
        awkward.occurredAt = Google_Protobuf_Timestamp(seconds: .max, nanos: 999_999_999)
        awkward.actor.email = "ÉLISE@exämple.com"
        awkward.actor.type = .UNRECOGNIZED(1_000)
        awkward.action = "a.b.c.delete"
        awkward.sourceIp = "2001:db8::1"
        awkward.description_p = "e\u{301} 🦤 \u{0}"
        var minimal = AuditEvent()
        minimal.occurredAt = Google_Protobuf_Timestamp(seconds: .min, nanos: 0)
        minimal.sourceIp = "not an address"
        return [ordinary, awkward, minimal, AuditEvent()]
    }()
}
