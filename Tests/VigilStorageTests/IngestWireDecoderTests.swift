import SwiftProtobuf
import Testing
import VigilCore
import VigilProto
@testable import VigilStorage

@Suite("IngestWireDecoder: Ingest bytes straight into columns, agreeing with swift-protobuf and EventValidator")
struct IngestWireDecoderTests {
    static let now: UnixNanos = 1_780_000_000_000_000_000

    /// Valid events with every kind of field, some empty, some not ASCII.
    static func validEvents(_ count: Int, seed: UInt64) -> [AuditEvent] {
        var rng = SplitMix64(seed: seed)
        func pick<T>(_ values: [T]) -> T { values[Int.random(in: 0..<values.count, using: &rng)] }
        func chance(_ percent: Int) -> Bool { Int.random(in: 0..<100, using: &rng) < percent }
        let texts = ["", "plain", "café", "e\u{301}", "日本語", "emoji 🎉", "tab\there", String(repeating: "x", count: 40)]
        return (0..<count).map { index in
            var event = AuditEvent()
            event.tenant = pick(["acme", "globex", "t-1", "a:b.c_d"])
            event.occurredAt = Google_Protobuf_Timestamp(
                unixNanos: chance(5) ? 0 : now - Int64.random(in: 0..<86_400_000_000_000, using: &rng))
            if !chance(5) {
                var actor = Vigil_V1_Actor()
                actor.id = chance(50) ? "user-\(index % 7)" : pick(["ü-1", "system", "token:9"])
                actor.type = Vigil_V1_ActorType(rawValue: Int.random(in: 0...4, using: &rng))!
                if chance(70) { actor.name = pick(texts) }
                if chance(50) { actor.email = "u\(index % 5)@example.com" }
                event.actor = actor
            } else {
                event.actor.type = .anonymous
            }
            event.action = pick(["auth.login", "user.create", "a", "x_y.z-1.w"])
            event.category = Vigil_V1_Category(rawValue: Int.random(in: 0...10, using: &rng))!
            if chance(80) {
                event.resource.type = pick(["", "user", "pod"])
                event.resource.id = chance(50) ? "r-\(Int.random(in: 0..<20, using: &rng))" : pick(texts)
                event.resource.name = pick(texts)
            }
            event.outcome = Vigil_V1_Outcome(rawValue: Int.random(in: 0...3, using: &rng))!
            event.reason = chance(50) ? "" : pick(texts)
            event.sourceIp = pick(["", "10.0.0.1", "2001:db8::1", "::ffff:1.2.3.4", "192.168.1.\(index % 256)"])
            event.userAgent = pick(texts)
            event.traceID = chance(80) ? String(UInt64.random(in: 0...UInt64.max, using: &rng), radix: 16) : pick(texts)
            event.requestID = chance(50) ? "req-\(index)" : ""
            event.description_p = chance(30) ? pick(texts) : ""
            if chance(40) {
                for _ in 0..<Int.random(in: 0...3, using: &rng) {
                    var target = Vigil_V1_Resource()
                    target.type = pick(["", "node"])
                    target.id = pick(texts)
                    target.name = pick(texts)
                    event.targets.append(target)
                }
                for _ in 0..<Int.random(in: 0...3, using: &rng) {
                    var change = Vigil_V1_Change()
                    change.field = pick(["role", "name", "ü"])
                    change.old = pick(texts)
                    change.new = pick(texts)
                    event.changes.append(change)
                }
                for _ in 0..<Int.random(in: 0...5, using: &rng) {
                    event.metadata[pick(["region", "a", "B", "z.k", "k-1", "_x", "0"])] = pick(texts)
                }
            }
            return event
        }
    }

    static func requestBytes(_ events: [AuditEvent], key: String = "", receipts: Bool = false) throws -> [UInt8] {
        var request = Vigil_V1_IngestRequest()
        request.events = events
        request.idempotencyKey = key
        request.wantReceipts = receipts
        return try request.serializedBytes()
    }

    static func decode(_ bytes: [UInt8], limits: EventLimits = .default) -> WireIngestBatch? {
        IngestWireDecoder.decode(bytes, limits: limits, now: now)
    }

    /// What the general path makes of `bytes`: the validated events, or why
    /// the fast path must not take them (nil: refused or rewritten).
    enum General {
        case undecodable
        case refused([EventError])
        case rewritten
        case accepted(Vigil_V1_IngestRequest, [AuditEvent])
    }

    static func general(_ bytes: [UInt8], limits: EventLimits = .default) -> General {
        guard let request = try? Vigil_V1_IngestRequest(serializedBytes: bytes) else { return .undecodable }
        let validator = EventValidator(limits: limits)
        if let problem = validator.checkIdempotencyKey(request.idempotencyKey) {
            return .refused([EventError(index: 0, field: "idempotencyKey", reason: problem)])
        }
        var events = request.events
        var rewritten = false
        let errors = validator.validate(&events, now: now, rewritten: &rewritten)
        if !errors.isEmpty { return .refused(errors) }
        return rewritten ? .rewritten : .accepted(request, events)
    }

    /// The property: whatever the decoder accepts, the general path accepts
    /// unchanged, with the same columns, WAL bytes, key and tenants. Returns
    /// whether the decoder accepted.
    @discardableResult
    static func agree(_ bytes: [UInt8], limits: EventLimits = .default, sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        guard let fast = decode(bytes, limits: limits) else { return false }
        guard case .accepted(let request, let events) = general(bytes, limits: limits) else {
            Issue.record("the decoder accepted what the general path refuses or rewrites: \(general(bytes, limits: limits))", sourceLocation: sourceLocation)
            return true
        }
        let expected = MemoryChunk.Columns(events)
        #expect(fast.columns.firstDifference(from: expected) == nil, sourceLocation: sourceLocation)
        #expect(fast.encoded == EncodedEvents(eventsOf: bytes), sourceLocation: sourceLocation)
        #expect(fast.idempotencyKey == request.idempotencyKey, sourceLocation: sourceLocation)
        #expect(fast.wantReceipts == request.wantReceipts, sourceLocation: sourceLocation)
        var order: [String] = []
        var counts: [String: Int] = [:]
        for event in events {
            if counts[event.tenant] == nil { order.append(event.tenant) }
            counts[event.tenant, default: 0] += 1
        }
        #expect(fast.tenantCounts.map(\.tenant) == order, sourceLocation: sourceLocation)
        #expect(fast.tenantCounts.map(\.events) == order.map { counts[$0]! }, sourceLocation: sourceLocation)
        return true
    }

    @Test("valid batches are taken, with exactly the general path's columns, WAL bytes, key and tenants")
    func validBatches() throws {
        for seed in 0..<20 as Range<UInt64> {
            let events = Self.validEvents(Int(seed) * 7 + 1, seed: seed)
            let bytes = try Self.requestBytes(events, key: seed % 2 == 0 ? "key-\(seed)" : "", receipts: seed % 3 == 0)
            guard case .accepted = Self.general(bytes) else {
                Issue.record("seed \(seed): the test's events are not valid: \(Self.general(bytes))")
                continue
            }
            #expect(Self.agree(bytes), "seed \(seed): a valid batch took the general path")
        }
    }

    @Test("the per-row table's memory is counted whole, whichever adaptive columns kept their dictionaries")
    func perRowTableCounted() throws {
        // 40 events: the adaptive columns stay dictionaries (fewer rows than
        // their sample), yet the table holds entries for them too.
        let events = Self.validEvents(40, seed: 3)
        let batch = try #require(Self.decode(try Self.requestBytes(events)))
        let stored = [batch.columns.traceID, batch.columns.requestID, batch.columns.descriptionText]
        let text = stored.reduce(0) { $0 + $1.estimatedBytes }
        let perRowBytes = events.reduce(0) { $0 + $1.traceID.utf8.count + $1.requestID.utf8.count + $1.description_p.utf8.count }
        // Eight entries of 8 bytes per row, and the three columns' bytes.
        #expect(text >= 40 * 8 * 8 + perRowBytes, "\(text) bytes counted")
        for column in [batch.columns.actorID, batch.columns.resourceID] {
            if case .stored = column.codes { Issue.record("a 40-row column was stored") }
        }
    }

    @Test("fields in any order, and explicitly empty ones, decode as swift-protobuf decodes them")
    func fieldOrder() throws {
        let events = Self.validEvents(30, seed: 99)
        var reversed: [UInt8] = []
        for event in events {
            // The event's fields in reverse order (repeated ones too: swift-protobuf sees the same order).
            let bytes: [UInt8] = try event.serializedBytes()
            var fields: [[UInt8]] = []
            bytes.withUnsafeBytes { raw in
                var reader = ProtobufFieldReader(raw)
                while !reader.atEnd {
                    let start = reader.position
                    guard let (_, wireType) = reader.tag(), reader.skip(wireType: wireType) else { break }
                    fields.append(Array(raw[start..<reader.position]))
                }
            }
            // An explicitly empty description (field 19) and reason (12), which proto3 writers may send.
            var body = fields.reversed().flatMap { $0 }
            body += [0x9A, 0x01, 0x00, 0x62, 0x00].filter { _ in event.description_p.isEmpty && event.reason.isEmpty }
            reversed += [0x0A] + Self.varint(body.count) + body
        }
        guard case .accepted = Self.general(reversed) else {
            Issue.record("the reordered batch is not valid: \(Self.general(reversed))")
            return
        }
        #expect(Self.agree(reversed))
    }

    static func varint(_ value: Int) -> [UInt8] {
        var value = UInt64(value)
        var out: [UInt8] = []
        while value >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        out.append(UInt8(value))
        return out
    }

    @Test("what needs rewriting or explaining takes the general path", arguments: [
        "client id", "seq", "received_at", "non-canonical address", "future time", "missing time", "bad UTF-8",
        "unknown field", "repeated metadata key", "unknown actor type", "reserved tenant", "bad metadata key",
        "empty batch", "actor id missing", "action not dot notation", "too many targets", "long tenant",
        "repeated singular field", "change without field", "too many events", "long idempotency key",
    ])
    func generalPath(_ name: String) throws {
        var event = Self.validEvents(1, seed: 5)[0]
        event.actor.id = "u"
        event.actor.type = .user
        var extra: [UInt8] = []  // bytes appended to the event
        var limits = EventLimits.default
        var events: [AuditEvent]?
        var key = ""
        switch name {
        case "client id": event.id = EventID(high: 1, low: 2).description
        case "seq": event.seq = 7
        case "received_at": event.receivedAt = Google_Protobuf_Timestamp(unixNanos: Self.now)
        case "non-canonical address": event.sourceIp = "2001:DB8:0::1"
        case "future time": event.occurredAt = Google_Protobuf_Timestamp(unixNanos: Self.now + 3_600_000_000_000)
        case "missing time": event.clearOccurredAt()
        case "bad UTF-8":
            event.reason = ""
            extra = [0x62, 0x02, 0xC3, 0x28]  // reason: a two-byte sequence with a bad second byte
        case "unknown field": extra = [0xF8, 0x07, 0x01]
        case "repeated metadata key":
            event.metadata = [:]
            extra = [0x92, 0x01, 0x06, 0x0A, 0x01, 0x6B, 0x12, 0x01, 0x61] + [0x92, 0x01, 0x06, 0x0A, 0x01, 0x6B, 0x12, 0x01, 0x62]
        case "unknown actor type": event.actor.type = .UNRECOGNIZED(9)
        case "reserved tenant": event.tenant = "_system"
        case "bad metadata key": event.metadata = ["a b": "c"]
        case "empty batch": events = []
        case "actor id missing": event.actor.id = ""
        case "action not dot notation": event.action = "user..create"
        case "too many targets": event.targets = Array(repeating: Vigil_V1_Resource(), count: 17)
        case "long tenant": event.tenant = String(repeating: "t", count: 129)
        case "repeated singular field": extra = [0x3A, 0x01, 0x78]  // action again
        case "change without field":
            var change = Vigil_V1_Change()
            change.new = "x"
            event.changes = [change]
        case "too many events": limits.maxBatchEvents = 1; events = [event, event]
        case "long idempotency key": key = String(repeating: "k", count: 129)
        default: Issue.record("no case \(name)")
        }
        let body: [UInt8] = try event.serializedBytes() + extra
        var bytes: [UInt8]
        if let events {
            bytes = try Self.requestBytes(events, key: key)
        } else {
            bytes = [0x0A] + Self.varint(body.count) + body
            if !key.isEmpty { bytes += [0x12] + Self.varint(key.utf8.count) + Array(key.utf8) }
        }
        #expect(Self.decode(bytes, limits: limits) == nil, "\(name): the decoder took it")
        // A few valid batches are left to the general path too, being rare
        // and fiddly to match: a client's ids (canonical form, repeats),
        // unknown fields (kept by swift-protobuf), repeated map keys and
        // singular fields (protobuf keeps the last, or merges).
        let leftValid = ["client id", "unknown field", "repeated metadata key", "repeated singular field"]
        switch Self.general(bytes, limits: limits) {
        case .accepted: #expect(leftValid.contains(name), "\(name): the general path accepts it unchanged")
        case .undecodable, .refused, .rewritten: #expect(!leftValid.contains(name), "\(name): the general path does not accept it")
        }
    }

    @Test("damaged requests: whatever the decoder still takes, the general path takes alike")
    func mutations() throws {
        var rng = SplitMix64(seed: 2026)
        var taken = 0
        var tried = 0
        for round in 0..<40 {
            let events = Self.validEvents(3, seed: UInt64(round))
            let original = try Self.requestBytes(events, key: round % 2 == 0 ? "k" : "")
            for _ in 0..<50 {
                var bytes = original
                switch Int.random(in: 0..<4, using: &rng) {
                case 0:
                    let index = Int.random(in: 0..<bytes.count, using: &rng)
                    bytes[index] ^= UInt8(1 << Int.random(in: 0..<8, using: &rng))
                case 1:
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                case 2:
                    bytes.removeLast(Int.random(in: 1...min(8, bytes.count), using: &rng))
                default:
                    bytes.insert(UInt8.random(in: 0...255, using: &rng), at: Int.random(in: 0...bytes.count, using: &rng))
                }
                tried += 1
                if Self.agree(bytes) { taken += 1 }
            }
        }
        // Many single-byte changes leave a valid batch (a different letter, a different time).
        #expect(taken > tried / 20, "only \(taken) of \(tried) damaged requests were taken: the property was hardly tested")
    }

    @Test("tight limits: the decoder takes nothing the validator refuses")
    func tightLimits() throws {
        var limits = EventLimits()
        limits.maxEventBytes = 120
        limits.maxActorFieldBytes = 6
        limits.maxResourceFieldBytes = 6
        limits.maxReasonBytes = 6
        limits.maxUserAgentBytes = 6
        limits.maxCorrelationIDBytes = 10
        limits.maxChangeValueBytes = 6
        limits.maxMetadataValueBytes = 6
        limits.maxMetadataEntries = 2
        limits.maxTargets = 1
        limits.maxChanges = 1
        limits.maxDescriptionBytes = 6
        var taken = 0
        for seed in 0..<300 as Range<UInt64> {
            let bytes = try Self.requestBytes(Self.validEvents(1, seed: seed))
            if Self.agree(bytes, limits: limits) { taken += 1 }
        }
        #expect(taken > 0 && taken < 300, "\(taken) of 300 taken: the limits decided nothing")

        // The event's total alone: every field within its own limit.
        var total = EventLimits()
        total.maxEventBytes = 60
        taken = 0
        for seed in 0..<300 as Range<UInt64> {
            let bytes = try Self.requestBytes(Self.validEvents(1, seed: seed))
            if Self.agree(bytes, limits: total) { taken += 1 }
        }
        #expect(taken > 0 && taken < 300, "\(taken) of 300 taken: the total decided nothing")
    }

    @Test("an address taken as canonical IPv4 without parsing is exactly what IPAddress formats")
    func canonicalIPv4() {
        var rng = SplitMix64(seed: 4)
        var samples = [
            "0.0.0.0", "255.255.255.255", "1.2.3.4", "10.0.0.1", "01.2.3.4", "1.2.3", "1.2.3.4.5", "256.1.1.1",
            "1..2.3", ".1.2.3", "1.2.3.", "1.2.3.04", "1.2.3.4 ", "a.b.c.d", "", "1.2.3.1000", "::1", "1.2.3.00",
        ]
        for _ in 0..<2_000 {
            let parts = (0..<4).map { _ in Int.random(in: 0...300, using: &rng) }
            samples.append(parts.map { Int.random(in: 0..<10, using: &rng) == 0 ? "0\($0)" : String($0) }.joined(separator: "."))
        }
        for text in samples {
            let canonical = IPAddress(text)?.description == text && !text.contains(":")
            #expect(withUTF8Bytes(text) { isCanonicalIPv4(bytes: $0) } == canonical, "\(text)")
        }
    }
}
