import Testing
import VigilCore
import VigilProto

/// A fixed server clock for every validation test: 2026-05-28T20:26:40Z.
let testNow: UnixNanos = 1_780_000_000 * 1_000_000_000

/// An event that passes validation with the default limits.
func makeValidEvent() -> AuditEvent {
    var event = AuditEvent()
    event.occurredAt = .init(unixNanos: testNow - 1_000_000_000)
    event.tenant = "acme"
    event.actor.id = "u-42"
    event.actor.type = .user
    event.actor.email = "bob@acme.test"
    event.action = "user.create"
    event.category = .create
    event.resource.type = "user"
    event.resource.id = "u-77"
    event.resource.name = "alice"
    event.outcome = .success
    event.sourceIp = "203.0.113.9"
    return event
}

/// Validates one event; returns it (normalized) and the problems found.
func validateOne(
    _ event: AuditEvent, limits: EventLimits = .default, now: UnixNanos = testNow
) -> (event: AuditEvent, errors: [EventError]) {
    var events = [event]
    let errors = EventValidator(limits: limits).validate(&events, now: now)
    return (events[0], errors)
}

/// Expects exactly one error, for `field`, with a non-empty reason that
/// contains `reasonContains` (when given).
func expectSingleError(
    _ errors: [EventError], field: String, index: UInt32 = 0, reasonContains: String? = nil,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(errors.count == 1, "expected one error for \(field), got \(errors)", sourceLocation: sourceLocation)
    guard let error = errors.first else { return }
    #expect(error.field == field, sourceLocation: sourceLocation)
    #expect(error.index == index, sourceLocation: sourceLocation)
    #expect(!error.reason.isEmpty, "the reason must say what is wrong", sourceLocation: sourceLocation)
    if let reasonContains {
        #expect(error.reason.contains(reasonContains), "reason '\(error.reason)'", sourceLocation: sourceLocation)
    }
}

/// A deterministic pseudo-random generator (SplitMix64), so failures reproduce.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
