import SwiftProtobuf
import VigilCore
import VigilProto

/// A deterministic generator of realistic audit events: the same seed, count
/// and end time give the same events, byte for byte.
///
/// Event `i` of `count` occurs about `i/count` of the way through the span
/// (30 days by default) that ends at `end`, with seconds of jitter (and now and
/// then minutes of lateness), so the stream is mostly but not strictly in time
/// order. Ids are left empty: the server assigns them (UUIDv7), as it does for
/// most clients.
public struct EventGenerator: Sendable {
    public static let defaultSpanNanos: Int64 = 30 * 86_400 * 1_000_000_000

    public let vocabulary: EventVocabulary
    public let seed: UInt64
    public let count: Int
    /// The latest time an event may have (Unix nanoseconds).
    public let end: UnixNanos
    public let span: Int64
    /// How many events were generated so far.
    public private(set) var index = 0
    private var random: BenchRandom

    public init(seed: UInt64, count: Int, end: UnixNanos, span: Int64 = defaultSpanNanos, vocabulary: EventVocabulary? = nil) {
        self.seed = seed
        self.count = max(0, count)
        self.end = end
        self.span = max(1, span)
        self.vocabulary = vocabulary ?? EventVocabulary(seed: seed)
        random = BenchRandom(seed: seed)
    }

    /// The start of the time range.
    public var start: UnixNanos { end - span }

    public var remaining: Int { count - index }

    /// The next event, or nil after `count` of them.
    public mutating func next() -> AuditEvent? {
        guard index < count else { return nil }
        defer { index += 1 }
        return makeEvent(index)
    }

    /// Up to `size` next events.
    public mutating func nextBatch(_ size: Int) -> [AuditEvent] {
        let take = min(size, remaining)
        var events: [AuditEvent] = []
        events.reserveCapacity(max(0, take))
        for _ in 0..<max(0, take) {
            if let event = next() { events.append(event) }
        }
        return events
    }

    // MARK: Encodings

    /// One event as a JSON line (the protobuf JSON form `vigil ingest` reads), without the newline.
    /// Metadata keys are sorted, so equal events give equal lines.
    public static func jsonLine(_ event: AuditEvent) throws -> String {
        var options = JSONEncodingOptions()
        options.useDeterministicOrdering = true
        return try event.jsonString(options: options)
    }

    /// A batch as the protobuf bytes of an `IngestRequest`, ready to send as is.
    /// Metadata keys are sorted, so equal batches give equal bytes.
    public static func encodeBatch(_ events: [AuditEvent], idempotencyKey: String = "") throws -> [UInt8] {
        var request = Vigil_V1_IngestRequest()
        request.events = events
        request.idempotencyKey = idempotencyKey
        var options = BinaryEncodingOptions()
        options.useDeterministicOrdering = true
        return try request.serializedBytes(options: options)
    }

    // MARK: Making one event

    private mutating func makeEvent(_ position: Int) -> AuditEvent {
        let v = vocabulary
        var event = AuditEvent()
        event.occurredAt = Google_Protobuf_Timestamp(unixNanos: time(of: position))
        let tenant = v.tenantTable.sample(&random)
        event.tenant = EventVocabulary.tenantNames[tenant]
        let actionIndex = v.actionTable.sample(&random)
        let action = v.actions[actionIndex]
        event.action = action.name
        event.category = action.category

        // The actor.
        var kind = EventVocabulary.ActorKind.user
        let roll = random.unit() * action.actorMix.reduce(0, +)
        if roll >= action.actorMix[0] + action.actorMix[1] {
            kind = .system
        } else if roll >= action.actorMix[0] {
            kind = .token
        }
        var actorUser: Int?
        var actorToken: Int?
        switch kind {
        case .user:
            let user = pickUser(tenant: tenant)
            actorUser = user
            event.actor.id = v.users[user].id
            event.actor.type = .user
            event.actor.name = v.users[user].name
            event.actor.email = v.users[user].email
        case .token:
            let owned = v.tokensByTenant[tenant]
            let token = owned[skewed(owned.count, power: 2)]
            actorToken = token
            event.actor.id = v.tokens[token].id
            event.actor.type = .apiToken
            event.actor.name = v.tokens[token].name
        case .system:
            event.actor.id = "system"
            event.actor.type = .system
        }

        // The resource, which follows from the action.
        switch action.target {
        case .actorSelf:
            let user = actorUser ?? pickUser(tenant: tenant)
            event.resource.type = "user"
            event.resource.id = v.users[user].id
            event.resource.name = v.users[user].email
        case .user:
            let user = pickUser(tenant: tenant)
            event.resource.type = "user"
            event.resource.id = v.users[user].id
            event.resource.name = v.users[user].email
        case .token:
            let owned = v.tokensByTenant[tenant]
            let token = actorToken ?? owned[random.below(owned.count)]
            event.resource.type = "token"
            event.resource.id = v.tokens[token].id
            event.resource.name = v.tokens[token].name
        case .pooled(let type):
            event.resource.type = type
            if let pool = v.resourcePools[type] {
                let slice = pool.slices[tenant]
                event.resource.id = Self.resourceID(prefix: pool.prefix, index: slice.start + skewed(slice.count, power: 3))
            }
        }

        // The outcome: failures cluster on logins.
        if random.unit() < v.failureRates[actionIndex] {
            if action.loginFailureRate != nil || random.unit() < 0.3 {
                event.outcome = .failure
            } else {
                event.outcome = .denied
            }
            event.reason = action.failureReasons[random.below(action.failureReasons.count)]
        } else {
            event.outcome = .success
        }

        // Where from.
        switch kind {
        case .user:
            let user = actorUser ?? 0
            let home = Int(Self.mix(UInt64(user) &+ 0x5EED) % UInt64(v.ipAddresses.count))
            event.sourceIp = random.unit() < 0.8 ? v.ipAddresses[home] : v.ipAddresses[random.below(v.ipAddresses.count)]
            let agents = v.userAgents
            let preferred = Int(Self.mix(UInt64(user) &+ 0xA6E7) % 7)
            event.userAgent = random.unit() < 0.85 ? agents[preferred] : agents[random.below(agents.count)]
        case .token:
            let token = actorToken ?? 0
            event.sourceIp = v.ipAddresses[Int(Self.mix(UInt64(token) &+ 0x70C3) % UInt64(v.ipAddresses.count))]
            event.userAgent = v.userAgents[7 + Int(Self.mix(UInt64(token)) % UInt64(v.userAgents.count - 7))]
        case .system:
            event.sourceIp = "10.12.\(random.below(4)).\(1 + random.below(30))"
            event.userAgent = v.systemUserAgents[random.below(v.systemUserAgents.count)]
        }

        // Correlation ids: random 128-bit, lowercase hex.
        event.traceID = random.hex(bytes: 16)
        if kind != .system { event.requestID = random.hex(bytes: 16) }

        // What changed, on updates.
        if action.category == .update && !action.changeFields.isEmpty && event.outcome == .success {
            let fields = action.changeFields
            let changeCount = 1 + random.below(min(3, fields.count))
            let first = random.below(fields.count)
            for offset in 0..<changeCount {
                event.changes.append(makeChange(fields[(first + offset) % fields.count], tenant: tenant))
            }
        }

        // 0 to 4 metadata entries.
        let entryRoll = random.unit()
        let entries = entryRoll < 0.25 ? 0 : entryRoll < 0.55 ? 1 : entryRoll < 0.80 ? 2 : entryRoll < 0.92 ? 3 : 4
        if entries > 0 {
            let keys = EventVocabulary.metadataKeys
            let first = random.below(keys.count)
            // A stride coprime to the key count (10) visits distinct keys.
            let stride = [1, 3, 7, 9][random.below(4)]
            for step in 0..<entries {
                let key = keys[(first + step * stride) % keys.count]
                event.metadata[key] = metadataValue(key)
            }
        }
        return event
    }

    /// Event `position`'s time: its share of the span, with seconds of jitter,
    /// sometimes minutes late; at millisecond precision, within [start, end].
    private mutating func time(of position: Int) -> UnixNanos {
        let fraction = count > 1 ? Double(position) / Double(count - 1) : 1
        var nanos = start + Int64(Double(span) * fraction)
        // Roughly normal jitter of a few seconds.
        let jitter = (random.unit() + random.unit() + random.unit() - 1.5) * 6
        nanos += Int64(jitter * 1e9)
        if random.unit() < 0.005 {
            nanos -= Int64(random.below(600_000)) * 1_000_000  // delivered up to 10 minutes late
        }
        nanos = min(end, max(start, nanos))
        return nanos / 1_000_000 * 1_000_000
    }

    private mutating func pickUser(tenant: Int) -> Int {
        let members = vocabulary.usersByTenant[tenant]
        return members[skewed(members.count, power: 2)]
    }

    /// An index in `0 ..< count`, low indexes more likely (u^power).
    private mutating func skewed(_ count: Int, power: Double) -> Int {
        let u = random.unit()
        let value = power == 2 ? u * u : power == 3 ? u * u * u : u
        return min(count - 1, Int(Double(count) * value))
    }

    private mutating func makeChange(_ field: String, tenant: Int) -> Vigil_V1_Change {
        var change = Vigil_V1_Change()
        change.field = field
        let values = EventVocabulary.changeValues(field)
        if values.count >= 2 {
            let old = random.below(values.count)
            let new = (old + 1 + random.below(values.count - 1)) % values.count
            change.old = values[old]
            change.new = values[new]
            return change
        }
        let v = vocabulary
        switch field {
        case "email", "shared_with":
            change.old = v.users[pickUser(tenant: tenant)].email
            change.new = v.users[pickUser(tenant: tenant)].email
        case "display_name":
            change.old = v.users[pickUser(tenant: tenant)].name
            change.new = v.users[pickUser(tenant: tenant)].name
        case "owner", "principal":
            change.old = v.users[pickUser(tenant: tenant)].id
            change.new = v.users[pickUser(tenant: tenant)].id
        case "members":
            change.new = v.users[pickUser(tenant: tenant)].id
        case "tags":
            change.old = "team:" + ["core", "data", "infra", "growth"][random.below(4)]
            change.new = change.old + ",cost-center:" + String(1000 + random.below(50))
        case "rules":
            change.old = "allow read on \(["*", "projects/*", "buckets/*"][random.below(3)])"
            change.new = change.old + "; deny delete on *"
        case "version":
            let version = 1 + random.below(40)
            change.old = String(version)
            change.new = String(version + 1)
        case "expires_at", "password_changed_at":
            let day = 1 + random.below(28)
            change.old = "2026-0\(1 + random.below(9))-\(day < 10 ? "0" : "")\(day)T00:00:00Z"
            change.new = "2027-0\(1 + random.below(9))-\(day < 10 ? "0" : "")\(day)T00:00:00Z"
        default:
            change.new = random.hex(bytes: 4)
        }
        return change
    }

    private mutating func metadataValue(_ key: String) -> String {
        switch key {
        case "session_id": return random.hex(bytes: 8)
        case "latency_ms": return String(1 + random.below(random.unit() < 0.95 ? 300 : 5_000))
        default:
            let values = EventVocabulary.metadataValues(key)
            return values.isEmpty ? "" : values[random.below(values.count)]
        }
    }

    /// The id of pooled resource `index`: `prefix-` and 7 base-36 characters.
    public static func resourceID(prefix: String, index: Int) -> String {
        var value = mix(UInt64(index) &+ 0x7265_736f_7572_6365) % 78_364_164_096  // 36^7
        var characters: [UInt8] = Array(repeating: UInt8(ascii: "0"), count: 7)
        var position = 6
        while value > 0 && position >= 0 {
            let digit = UInt8(value % 36)
            characters[position] = digit < 10 ? UInt8(ascii: "0") + digit : UInt8(ascii: "a") + digit - 10
            value /= 36
            position -= 1
        }
        return prefix + "-" + String(decoding: characters, as: UTF8.self)
    }

    /// A fixed 64-bit mixing function (SplitMix64's finalizer).
    static func mix(_ input: UInt64) -> UInt64 {
        var z = input &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
