import Testing
import VigilCore
import VigilProto

@Suite("EventValidator")
struct EventValidatorTests {
    // MARK: - Baseline

    @Test("a well-formed event passes and keeps its content")
    func validEventPasses() {
        let event = makeValidEvent()
        let (normalized, errors) = validateOne(event)
        #expect(errors.isEmpty)
        #expect(normalized == event)
    }

    @Test("every problem of an event is reported, each with the event's index")
    func everyProblemIsReported() {
        var good = makeValidEvent()
        good.id = ""
        var bad = makeValidEvent()
        bad.clearOccurredAt()
        bad.tenant = ""
        bad.action = ""
        var events = [good, good, bad]
        let errors = EventValidator().validate(&events, now: testNow)
        #expect(errors.map(\.field) == ["occurredAt", "tenant", "action"])
        #expect(errors.allSatisfy { $0.index == 2 && !$0.reason.isEmpty })
    }

    // MARK: - occurred_at

    @Test("occurredAt is required")
    func missingOccurredAt() {
        var event = makeValidEvent()
        event.clearOccurredAt()
        expectSingleError(validateOne(event).errors, field: "occurredAt", reasonContains: "required")
    }

    @Test("occurredAt may lie at most the clock skew in the future")
    func futureOccurredAt() {
        let skew = EventLimits.default.maxClockSkewNanos
        var event = makeValidEvent()
        event.occurredAt = .init(unixNanos: testNow + skew)
        #expect(validateOne(event).errors.isEmpty, "exactly the allowed skew is accepted")

        event.occurredAt = .init(unixNanos: testNow + skew + 1)
        expectSingleError(validateOne(event).errors, field: "occurredAt", reasonContains: "future")

        event.occurredAt = .init(unixNanos: testNow + 7 * 24 * 3_600 * 1_000_000_000)
        expectSingleError(validateOne(event).errors, field: "occurredAt", reasonContains: "future")

        var limits = EventLimits()
        limits.maxClockSkewNanos = 0
        event.occurredAt = .init(unixNanos: testNow + 1)
        expectSingleError(validateOne(event, limits: limits).errors, field: "occurredAt", reasonContains: "future")
    }

    @Test("occurredAt before 1970 is refused; the epoch itself is accepted")
    func occurredAtBefore1970() {
        var event = makeValidEvent()
        event.occurredAt = .init(seconds: 0, nanos: 0)
        #expect(validateOne(event).errors.isEmpty)

        event.occurredAt = .init(seconds: -1, nanos: 999_999_999)  // 1 ns before the epoch
        expectSingleError(validateOne(event).errors, field: "occurredAt", reasonContains: "1970")

        event.occurredAt = .init(seconds: -86_400 * 365, nanos: 0)
        expectSingleError(validateOne(event).errors, field: "occurredAt", reasonContains: "1970")
    }

    @Test("occurredAt nanos must lie in 0..999999999", arguments: [Int32(-1), 1_000_000_000, .min, .max])
    func badNanos(nanos: Int32) {
        var event = makeValidEvent()
        event.occurredAt = .init(seconds: 1_700_000_000, nanos: nanos)
        expectSingleError(validateOne(event).errors, field: "occurredAt", reasonContains: "nanos")
    }

    // MARK: - tenant

    @Test("tenant is required")
    func emptyTenant() {
        var event = makeValidEvent()
        event.tenant = ""
        expectSingleError(validateOne(event).errors, field: "tenant", reasonContains: "required")
    }

    @Test("tenant characters are restricted", arguments: ["acme corp", "acme/eu", "acme\n", "acmé", "a*b", "a,b"])
    func invalidTenant(tenant: String) {
        var event = makeValidEvent()
        event.tenant = tenant
        expectSingleError(validateOne(event).errors, field: "tenant", reasonContains: "letters, digits")
    }

    @Test("tenant accepts letters, digits, '.', '_', ':' and '-'", arguments: ["acme", "ACME-eu.1", "org:team_2", "9lives"])
    func validTenant(tenant: String) {
        var event = makeValidEvent()
        event.tenant = tenant
        #expect(validateOne(event).errors.isEmpty)
    }

    @Test("tenants starting with '_' are reserved", arguments: ["_system", "_alerts", "_"])
    func reservedTenant(tenant: String) {
        var event = makeValidEvent()
        event.tenant = tenant
        expectSingleError(validateOne(event).errors, field: "tenant", reasonContains: "reserved")
    }

    @Test(
        "tenant must start with a letter or digit (event.proto)",
        arguments: ["-acme", ".acme", ":acme"])
    func tenantMustStartWithLetterOrDigit(tenant: String) {
        var event = makeValidEvent()
        event.tenant = tenant
        expectSingleError(validateOne(event).errors, field: "tenant")
    }

    // MARK: - actor

    @Test(
        "actor.id is required unless the actor is ANONYMOUS",
        arguments: [Vigil_V1_ActorType.unspecified, .user, .service, .apiToken, .system])
    func actorIDRequired(type: Vigil_V1_ActorType) {
        var event = makeValidEvent()
        event.actor.id = ""
        event.actor.type = type
        expectSingleError(validateOne(event).errors, field: "actor.id", reasonContains: "ANONYMOUS")
    }

    @Test("an ANONYMOUS actor needs no id")
    func anonymousActor() {
        var event = makeValidEvent()
        event.actor = .init()
        event.actor.type = .anonymous
        #expect(validateOne(event).errors.isEmpty)

        event.clearActor()  // no actor at all: type UNSPECIFIED, so an id is required
        expectSingleError(validateOne(event).errors, field: "actor.id")
    }

    // MARK: - action

    @Test("action is required")
    func emptyAction() {
        var event = makeValidEvent()
        event.action = ""
        expectSingleError(validateOne(event).errors, field: "action", reasonContains: "required")
    }

    @Test(
        "action must be dot notation",
        arguments: ["user..create", ".user", "user.", ".", "user create", "user/create", "user.*", "usér.create", "user:create"])
    func actionNotDotNotation(action: String) {
        var event = makeValidEvent()
        event.action = action
        expectSingleError(validateOne(event).errors, field: "action", reasonContains: "dot notation")
    }

    @Test("dot-notation actions pass", arguments: ["login", "user.create", "auth.mfa.verify", "credential.token_refresh", "a-b.C_9"])
    func actionDotNotation(action: String) {
        var event = makeValidEvent()
        event.action = action
        #expect(validateOne(event).errors.isEmpty)
    }

    // MARK: - Length limits

    struct LengthCase: Sendable, CustomTestStringConvertible {
        var field: String
        var limit: Int
        var apply: @Sendable (inout AuditEvent, String) -> Void
        var testDescription: String { "\(field) ≤ \(limit)" }
    }

    static let lengthCases: [LengthCase] = {
        let limits = EventLimits.default
        return [
            LengthCase(field: "tenant", limit: limits.maxTenantBytes) { $0.tenant = $1 },
            LengthCase(field: "action", limit: limits.maxActionBytes) { $0.action = $1 },
            LengthCase(field: "actor.id", limit: limits.maxActorFieldBytes) { $0.actor.id = $1 },
            LengthCase(field: "actor.name", limit: limits.maxActorFieldBytes) { $0.actor.name = $1 },
            LengthCase(field: "actor.email", limit: limits.maxActorFieldBytes) { $0.actor.email = $1 },
            LengthCase(field: "resource.type", limit: limits.maxResourceTypeBytes) { $0.resource.type = $1 },
            LengthCase(field: "resource.id", limit: limits.maxResourceFieldBytes) { $0.resource.id = $1 },
            LengthCase(field: "resource.name", limit: limits.maxResourceFieldBytes) { $0.resource.name = $1 },
            LengthCase(field: "targets[1].type", limit: limits.maxResourceTypeBytes) {
                var target = Vigil_V1_Resource()
                target.type = $1
                $0.targets = [$0.resource, target]
            },
            LengthCase(field: "targets[1].id", limit: limits.maxResourceFieldBytes) {
                var target = Vigil_V1_Resource()
                target.id = $1
                $0.targets = [$0.resource, target]
            },
            LengthCase(field: "targets[0].name", limit: limits.maxResourceFieldBytes) {
                var target = Vigil_V1_Resource()
                target.name = $1
                $0.targets = [target]
            },
            LengthCase(field: "reason", limit: limits.maxReasonBytes) { $0.reason = $1 },
            LengthCase(field: "userAgent", limit: limits.maxUserAgentBytes) { $0.userAgent = $1 },
            LengthCase(field: "traceId", limit: limits.maxCorrelationIDBytes) { $0.traceID = $1 },
            LengthCase(field: "requestId", limit: limits.maxCorrelationIDBytes) { $0.requestID = $1 },
            LengthCase(field: "description", limit: limits.maxDescriptionBytes) { $0.description_p = $1 },
            LengthCase(field: "changes[0].field", limit: limits.maxChangeFieldBytes) {
                var change = Vigil_V1_Change()
                change.field = $1
                $0.changes = [change]
            },
            LengthCase(field: "changes[1].old", limit: limits.maxChangeValueBytes) {
                var change = Vigil_V1_Change()
                change.field = "email"
                change.old = $1
                $0.changes = [change, change]
                $0.changes[0].old = "short"
            },
            LengthCase(field: "changes[0].new", limit: limits.maxChangeValueBytes) {
                var change = Vigil_V1_Change()
                change.field = "email"
                change.new = $1
                $0.changes = [change]
            },
            LengthCase(field: "metadata[region]", limit: limits.maxMetadataValueBytes) {
                $0.metadata = ["project": "p1", "region": $1]
            },
        ]
    }()

    @Test("each length limit accepts exactly the limit and refuses one byte more", arguments: lengthCases)
    func lengthLimit(_ lengthCase: LengthCase) {
        var atLimit = makeValidEvent()
        lengthCase.apply(&atLimit, String(repeating: "a", count: lengthCase.limit))
        #expect(validateOne(atLimit).errors.isEmpty)

        var overLimit = makeValidEvent()
        lengthCase.apply(&overLimit, String(repeating: "a", count: lengthCase.limit + 1))
        expectSingleError(
            validateOne(overLimit).errors, field: lengthCase.field,
            reasonContains: "is \(lengthCase.limit + 1) bytes; the limit is \(lengthCase.limit)")
    }

    @Test("lengths are counted in UTF-8 bytes, not characters")
    func lengthsAreUTF8Bytes() {
        var event = makeValidEvent()
        event.reason = String(repeating: "é", count: 513)  // 513 characters, 1,026 bytes
        expectSingleError(validateOne(event).errors, field: "reason", reasonContains: "1026 bytes")
    }

    // MARK: - Counts

    @Test("at most maxTargets targets")
    func tooManyTargets() {
        var event = makeValidEvent()
        event.targets = Array(repeating: event.resource, count: 16)
        #expect(validateOne(event).errors.isEmpty)
        event.targets.append(event.resource)
        expectSingleError(validateOne(event).errors, field: "targets", reasonContains: "17 entries; the limit is 16")
    }

    @Test("at most maxChanges changes")
    func tooManyChanges() {
        var change = Vigil_V1_Change()
        change.field = "role"
        change.old = "viewer"
        change.new = "admin"
        var event = makeValidEvent()
        event.changes = Array(repeating: change, count: 64)
        #expect(validateOne(event).errors.isEmpty)
        event.changes.append(change)
        expectSingleError(validateOne(event).errors, field: "changes", reasonContains: "65 entries; the limit is 64")
    }

    @Test("at most maxMetadataEntries metadata entries")
    func tooManyMetadataEntries() {
        var event = makeValidEvent()
        for index in 0..<32 { event.metadata["key\(index)"] = "value" }
        #expect(validateOne(event).errors.isEmpty)
        event.metadata["key32"] = "value"
        expectSingleError(validateOne(event).errors, field: "metadata", reasonContains: "33 entries; the limit is 32")
    }

    @Test("a change needs a field name")
    func changeFieldRequired() {
        var change = Vigil_V1_Change()
        change.new = "admin"
        var event = makeValidEvent()
        event.changes = [change]
        expectSingleError(validateOne(event).errors, field: "changes[0].field", reasonContains: "required")
    }

    // MARK: - Metadata keys

    struct MetadataKeyCase: Sendable, CustomTestStringConvertible {
        var key: String
        var field: String
        var testDescription: String { "'\(key.prefix(20))'" }
    }

    @Test(
        "metadata keys are 1-64 bytes of [A-Za-z0-9._-]",
        arguments: [
            MetadataKeyCase(key: "", field: "metadata[]"),
            MetadataKeyCase(key: "bad key", field: "metadata[bad key]"),
            MetadataKeyCase(key: "a:b", field: "metadata[a:b]"),
            MetadataKeyCase(key: "ключ", field: "metadata[ключ]"),
            MetadataKeyCase(key: String(repeating: "k", count: 65), field: "metadata[\(String(repeating: "k", count: 64))]"),
        ])
    func badMetadataKey(_ keyCase: MetadataKeyCase) {
        var event = makeValidEvent()
        event.metadata = [keyCase.key: "v"]
        expectSingleError(validateOne(event).errors, field: keyCase.field, reasonContains: "keys are 1-64 bytes")
    }

    @Test("good metadata keys pass")
    func goodMetadataKeys() {
        var event = makeValidEvent()
        event.metadata = ["region": "eu", "k8s.namespace": "prod", "Build_ID-2": "7", String(repeating: "k", count: 64): ""]
        #expect(validateOne(event).errors.isEmpty)
    }

    // MARK: - Source IP

    @Test(
        "sourceIp must be an IPv4 or IPv6 literal",
        arguments: ["300.1.1.1", "10.0.0.1:80", "[2001:db8::1]", "fe80::1%eth0", "localhost", "1.2.3", "2001:db8:::1", " 10.0.0.1"])
    func badSourceIP(ip: String) {
        var event = makeValidEvent()
        event.sourceIp = ip
        expectSingleError(validateOne(event).errors, field: "sourceIp", reasonContains: "not an IPv4 or IPv6 address")
    }

    @Test(
        "sourceIp is stored in canonical form",
        arguments: [
            ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
            ("2001:0db8:0000:0000:0000:ff00:0042:8329", "2001:db8::ff00:42:8329"),
            ("0:0:0:0:0:0:0:1", "::1"),
            ("::FFFF:10.0.0.1", "::ffff:10.0.0.1"),
            ("10.0.0.1", "10.0.0.1"),
            ("203.0.113.9", "203.0.113.9"),
        ])
    func sourceIPCanonicalization(input: String, canonical: String) {
        var event = makeValidEvent()
        event.sourceIp = input
        let (normalized, errors) = validateOne(event)
        #expect(errors.isEmpty)
        #expect(normalized.sourceIp == canonical)
    }

    @Test(
        "sourceIp with a NUL byte is refused, not truncated",
        arguments: ["10.0.0.1\u{0}", "10.0.0.1\u{0}evil", "2001:db8::1\u{0}x"])
    func sourceIPWithNUL(ip: String) {
        var event = makeValidEvent()
        event.sourceIp = ip
        // inet_pton reads a C string: a NUL must not hide what follows it.
        let (normalized, errors) = validateOne(event)
        expectSingleError(errors, field: "sourceIp")
        #expect(normalized.sourceIp == ip)
    }

    @Test("an empty sourceIp is allowed and stays empty")
    func emptySourceIP() {
        var event = makeValidEvent()
        event.sourceIp = ""
        let (normalized, errors) = validateOne(event)
        #expect(errors.isEmpty)
        #expect(normalized.sourceIp.isEmpty)
    }

    // MARK: - Ids

    @Test("a supplied id is normalized to lower case")
    func idNormalizedToLowercase() {
        var event = makeValidEvent()
        event.id = "0190F3C2-5B1E-7C3A-9F00-1A2B3C4D5E6F"
        let (normalized, errors) = validateOne(event)
        #expect(errors.isEmpty)
        #expect(normalized.id == "0190f3c2-5b1e-7c3a-9f00-1a2b3c4d5e6f")
    }

    @Test(
        "a supplied id must be a UUID",
        arguments: [
            "not-a-uuid", "0190f3c25b1e7c3a9f001a2b3c4d5e6f", "{0190f3c2-5b1e-7c3a-9f00-1a2b3c4d5e6f}",
            "0190f3c2-5b1e-7c3a-9f00-1a2b3c4d5e6", "0190f3c2-5b1e-7c3a-9f00-1a2b3c4d5e6f0",
            "0190f3c2-5b1e-7c3a-9f00-1a2b3c4d5e6g", "0190f3c25-b1e-7c3a-9f00-1a2b3c4d5e6f", " 0190f3c2-5b1e-7c3a-9f00-1a2b3c4d5e6",
        ])
    func badID(id: String) {
        var event = makeValidEvent()
        event.id = id
        let (normalized, errors) = validateOne(event)
        expectSingleError(errors, field: "id", reasonContains: "UUID")
        #expect(normalized.id == id, "a bad id is left as sent")
    }

    @Test("ids must not repeat inside a batch, whatever their case")
    func duplicateIDs() {
        var first = makeValidEvent()
        first.id = "0190f3c2-5b1e-7c3a-9f00-1a2b3c4d5e6f"
        var other = makeValidEvent()
        other.id = "0190f3c2-5b1e-7c3a-9f00-000000000000"
        var repeat1 = makeValidEvent()
        repeat1.id = "0190F3C2-5B1E-7C3A-9F00-1A2B3C4D5E6F"
        var unassigned = makeValidEvent()
        unassigned.id = ""
        var events = [first, unassigned, other, unassigned, repeat1]
        let errors = EventValidator().validate(&events, now: testNow)
        expectSingleError(errors, field: "id", index: 4, reasonContains: "repeats the id of event 0")
    }

    // MARK: - Batches

    @Test("a batch needs at least one event")
    func emptyBatch() {
        var events: [AuditEvent] = []
        let errors = EventValidator().validate(&events, now: testNow)
        expectSingleError(errors, field: "events", reasonContains: "at least one event")
    }

    @Test("a batch holds at most maxBatchEvents events")
    func batchTooLarge() {
        let event = makeValidEvent()
        var full = Array(repeating: event, count: EventLimits.default.maxBatchEvents)
        #expect(EventValidator().validate(&full, now: testNow).isEmpty)

        var over = Array(repeating: event, count: EventLimits.default.maxBatchEvents + 1)
        expectSingleError(
            EventValidator().validate(&over, now: testNow), field: "events",
            reasonContains: "at most 10000 events, this one has 10001")

        var limits = EventLimits()
        limits.maxBatchEvents = 2
        var three = [event, event, event]
        expectSingleError(EventValidator(limits: limits).validate(&three, now: testNow), field: "events", reasonContains: "at most 2")
    }

    @Test("an event's text together is at most maxEventBytes")
    func eventTooLarge() {
        // Every field within its own limit, the whole over 64 KiB.
        var change = Vigil_V1_Change()
        change.field = "blob"
        change.old = String(repeating: "o", count: 4_096)
        change.new = String(repeating: "n", count: 4_096)
        var event = makeValidEvent()
        event.changes = Array(repeating: change, count: 7)
        #expect(validateOne(event).errors.isEmpty, "7 changes of 8 KiB stay under 64 KiB")
        event.changes = Array(repeating: change, count: 8)
        expectSingleError(validateOne(event).errors, field: "", reasonContains: "the limit is 65536")

        // makeValidEvent() holds 45 bytes of text: tenant 4, actor 4 + 13,
        // action 11, resource 4 + 4 + 5. Metadata keys count too.
        var limits = EventLimits()
        limits.maxEventBytes = 45
        var small = makeValidEvent()
        #expect(validateOne(small, limits: limits).errors.isEmpty)
        small.metadata = ["k": ""]
        expectSingleError(validateOne(small, limits: limits).errors, field: "", reasonContains: "46 bytes of text; the limit is 45")
    }

    @Test("seq and receivedAt are the server's: a client's values are cleared")
    func serverFieldsCleared() {
        var event = makeValidEvent()
        event.seq = 42
        event.receivedAt = .init(unixNanos: testNow)
        let (normalized, errors) = validateOne(event)
        #expect(errors.isEmpty)
        #expect(normalized.seq == 0)
        #expect(!normalized.hasReceivedAt)
    }

    @Test("unknown enum values are refused")
    func unknownEnums() {
        var event = makeValidEvent()
        event.outcome = .UNRECOGNIZED(9)
        expectSingleError(validateOne(event).errors, field: "outcome")
        event = makeValidEvent()
        event.category = .UNRECOGNIZED(99)
        expectSingleError(validateOne(event).errors, field: "category")
        event = makeValidEvent()
        event.actor.type = .UNRECOGNIZED(7)
        expectSingleError(validateOne(event).errors, field: "actor.type")
    }

    @Test("idempotency keys are at most maxIdempotencyKeyBytes")
    func idempotencyKey() {
        let validator = EventValidator()
        #expect(validator.checkIdempotencyKey("") == nil)
        #expect(validator.checkIdempotencyKey(String(repeating: "k", count: 128)) == nil)
        let problem = validator.checkIdempotencyKey(String(repeating: "k", count: 129))
        #expect(problem?.contains("129 bytes; the limit is 128") == true)
    }
}
