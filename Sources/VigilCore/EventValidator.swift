import SwiftProtobuf
import VigilProto

/// Checks ingested events against `EventLimits` and puts them into canonical
/// form (lower-case ids, canonical IP text). Every problem is reported with the
/// event's index, the field (as a protobuf JSON path) and a reason; a batch with
/// any problem is refused whole.
public struct EventValidator: Sendable {
    public var limits: EventLimits

    public init(limits: EventLimits = .default) {
        self.limits = limits
    }

    /// Validates and normalizes `events` in place. Returns every problem found
    /// (empty when the batch may be stored). `now` is the server's clock.
    public func validate(_ events: inout [AuditEvent], now: UnixNanos) -> [EventError] {
        var rewritten = false
        return validate(&events, now: now, rewritten: &rewritten)
    }

    /// `validate`, also telling whether it rewrote any event (an id or an
    /// address into canonical form, a client's seq or received_at cleared):
    /// when it did not, the events still match the bytes they were decoded from.
    public func validate(_ events: inout [AuditEvent], now: UnixNanos, rewritten: inout Bool) -> [EventError] {
        var errors: [EventError] = []
        if events.isEmpty {
            errors.append(.init(index: 0, field: "events", reason: "a batch needs at least one event"))
            return errors
        }
        if events.count > limits.maxBatchEvents {
            errors.append(.init(
                index: 0, field: "events",
                reason: "a batch holds at most \(limits.maxBatchEvents) events, this one has \(events.count); split it"))
            return errors
        }
        var suppliedIDs: [EventID: Int] = [:]
        for index in events.indices {
            let before = errors.count
            validate(&events[index], index: UInt32(index), now: now, into: &errors, rewritten: &rewritten)
            if errors.count == before, !events[index].id.isEmpty, let id = EventID(events[index].id) {
                if let first = suppliedIDs.updateValue(index, forKey: id) {
                    errors.append(.init(index: UInt32(index), field: "id", reason: "repeats the id of event \(first)"))
                }
            }
        }
        return errors
    }

    /// Validates an idempotency key; nil when it is acceptable.
    public func checkIdempotencyKey(_ key: String) -> String? {
        key.utf8.count > limits.maxIdempotencyKeyBytes
            ? "idempotency_key is \(key.utf8.count) bytes; the limit is \(limits.maxIdempotencyKeyBytes)" : nil
    }

    private func validate(_ event: inout AuditEvent, index: UInt32, now: UnixNanos, into errors: inout [EventError], rewritten: inout Bool) {
        // Field paths such as "changes[3].old" are built only for a problem:
        // building them for every field of every event was a tenth of ingest's CPU.
        func fail(_ field: @autoclosure () -> String, _ reason: @autoclosure () -> String) {
            errors.append(.init(index: index, field: field(), reason: reason()))
        }
        func checkLength(_ value: String, _ field: @autoclosure () -> String, max: Int) -> Int {
            let length = value.utf8.count
            if length > max { fail(field(), "is \(length) bytes; the limit is \(max)") }
            return length
        }
        func checkResource(_ resource: Vigil_V1_Resource, _ path: @autoclosure () -> String) -> Int {
            checkLength(resource.type, "\(path()).type", max: limits.maxResourceTypeBytes)
                + checkLength(resource.id, "\(path()).id", max: limits.maxResourceFieldBytes)
                + checkLength(resource.name, "\(path()).name", max: limits.maxResourceFieldBytes)
        }
        var total = 0

        if !event.id.isEmpty {
            if let id = EventID(event.id) {
                let canonical = id.description
                if canonical != event.id {
                    event.id = canonical
                    rewritten = true
                }
            } else {
                fail("id", "must be a UUID in 8-4-4-4-12 hex form, or empty to let the server assign one")
            }
        }

        if !event.hasOccurredAt {
            fail("occurredAt", "is required")
        } else if event.occurredAt.nanos < 0 || event.occurredAt.nanos >= 1_000_000_000 {
            fail("occurredAt", "nanos must be in 0..999999999")
        } else {
            let occurred = event.occurredAt.unixNanos
            if occurred < 0 {
                fail("occurredAt", "must not be before 1970-01-01T00:00:00Z")
            } else if occurred > now &+ limits.maxClockSkewNanos {
                fail("occurredAt", "lies more than \(limits.maxClockSkewNanos / 1_000_000_000) s in the future of the server's clock; check the client's clock")
            }
        }

        total += checkLength(event.tenant, "tenant", max: limits.maxTenantBytes)
        if event.tenant.isEmpty {
            fail("tenant", "is required")
        } else if let problem = Self.tenantProblem(event.tenant) {
            fail("tenant", problem)
        }

        let actor = event.actor  // once: the getter copies the message
        if actor.id.isEmpty && actor.type != .anonymous {
            fail("actor.id", "is required unless actor.type is ANONYMOUS")
        }
        total += checkLength(actor.id, "actor.id", max: limits.maxActorFieldBytes)
        total += checkLength(actor.name, "actor.name", max: limits.maxActorFieldBytes)
        total += checkLength(actor.email, "actor.email", max: limits.maxActorFieldBytes)
        if case .UNRECOGNIZED(let value) = actor.type { fail("actor.type", "unknown actor type \(value)") }

        total += checkLength(event.action, "action", max: limits.maxActionBytes)
        if event.action.isEmpty {
            fail("action", "is required")
        } else if !Self.isDotNotation(event.action) {
            fail("action", "must be dot notation such as user.create: segments of letters, digits, '_' or '-' separated by single dots")
        }
        if case .UNRECOGNIZED(let value) = event.category { fail("category", "unknown category \(value)") }
        if case .UNRECOGNIZED(let value) = event.outcome { fail("outcome", "unknown outcome \(value)") }

        if event.hasResource {
            total += checkResource(event.resource, "resource")
        }
        if event.targets.count > limits.maxTargets {
            fail("targets", "has \(event.targets.count) entries; the limit is \(limits.maxTargets)")
        }
        for (position, target) in event.targets.enumerated() {
            total += checkResource(target, "targets[\(position)]")
        }

        total += checkLength(event.reason, "reason", max: limits.maxReasonBytes)
        if !event.sourceIp.isEmpty {
            if let address = IPAddress(event.sourceIp) {
                let canonical = address.description
                // Assigning only a change keeps the message's storage unshared and untouched.
                if canonical != event.sourceIp {
                    event.sourceIp = canonical
                    rewritten = true
                }
            } else {
                fail("sourceIp", "'\(event.sourceIp.prefix(64))' is not an IPv4 or IPv6 address")
            }
        }
        total += checkLength(event.userAgent, "userAgent", max: limits.maxUserAgentBytes)
        total += checkLength(event.traceID, "traceId", max: limits.maxCorrelationIDBytes)
        total += checkLength(event.requestID, "requestId", max: limits.maxCorrelationIDBytes)

        if event.changes.count > limits.maxChanges {
            fail("changes", "has \(event.changes.count) entries; the limit is \(limits.maxChanges)")
        }
        for (position, change) in event.changes.enumerated() {
            if change.field.isEmpty { fail("changes[\(position)].field", "is required") }
            total += checkLength(change.field, "changes[\(position)].field", max: limits.maxChangeFieldBytes)
            total += checkLength(change.old, "changes[\(position)].old", max: limits.maxChangeValueBytes)
            total += checkLength(change.new, "changes[\(position)].new", max: limits.maxChangeValueBytes)
        }

        if event.metadata.count > limits.maxMetadataEntries {
            fail("metadata", "has \(event.metadata.count) entries; the limit is \(limits.maxMetadataEntries)")
        }
        for (key, value) in event.metadata {
            let field = { "metadata[\(key.prefix(64))]" }
            if key.isEmpty || key.utf8.count > limits.maxMetadataKeyBytes || !key.utf8.allSatisfy(Self.isKeyByte) {
                fail(field(), "keys are 1-\(limits.maxMetadataKeyBytes) bytes of letters, digits, '.', '_' or '-'")
            }
            total += key.utf8.count
            total += checkLength(value, field(), max: limits.maxMetadataValueBytes)
        }
        total += checkLength(event.description_p, "description", max: limits.maxDescriptionBytes)

        if total > limits.maxEventBytes {
            fail("", "the event holds \(total) bytes of text; the limit is \(limits.maxEventBytes)")
        }

        // Set by the server; a client's values (say, from `vigil query --format json`) are ignored.
        // Only written when set: any write copies the event's storage, which the
        // decoded request still shares.
        if event.seq != 0 || event.hasReceivedAt {
            event.seq = 0
            event.clearReceivedAt()
            rewritten = true
        }
    }

    /// Inlinable: the ingest decoder checks every byte of every metadata key with it.
    @inlinable
    public static func isKeyByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "."):
            true
        default: false
        }
    }

    /// Why `tenant` is not an acceptable client tenant name, or nil.
    public static func tenantProblem(_ tenant: String, allowReserved: Bool = false) -> String? {
        guard let first = tenant.utf8.first else { return "is required" }
        if first == UInt8(ascii: "_") {
            if !allowReserved { return "names starting with '_' are reserved for the server's own tenants" }
        } else if !isKeyByte(first) || first == UInt8(ascii: "-") || first == UInt8(ascii: ".") {
            return "must start with a letter or digit"
        }
        let valid = tenant.utf8.allSatisfy { isKeyByte($0) || $0 == UInt8(ascii: ":") }
        return valid ? nil : "must be letters, digits, '.', '_', ':' or '-'"
    }

    /// `user.create`, `auth.mfa.verify`: non-empty segments of [A-Za-z0-9_-] joined by dots.
    public static func isDotNotation(_ action: String) -> Bool {
        var segmentLength = 0
        for byte in action.utf8 {
            if byte == UInt8(ascii: ".") {
                if segmentLength == 0 { return false }
                segmentLength = 0
            } else if byte != UInt8(ascii: ".") && isKeyByte(byte) {
                segmentLength += 1
            } else {
                return false
            }
        }
        return segmentLength > 0
    }
}
