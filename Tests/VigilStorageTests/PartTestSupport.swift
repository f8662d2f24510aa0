#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SwiftProtobuf
import Testing
import VigilCore
import VigilProto
@testable import VigilStorage

/// Shared helpers of the part tests.
enum PartTestSupport {
    /// A fresh directory under /tmp; remove it with `removeDirectory`.
    static func makeDirectory() -> String {
        var template = Array("/tmp/vigil-part-test-XXXXXX".utf8CString)
        let path = template.withUnsafeMutableBufferPointer { buffer -> String in
            guard let result = mkdtemp(buffer.baseAddress!) else { fatalError("mkdtemp failed") }
            return String(cString: result)
        }
        return path
    }

    static func removeDirectory(_ path: String) {
        for name in (try? FileIO.list(path)) ?? [] { try? FileIO.remove(path + "/" + name) }
        try? FileIO.removeDirectory(path)
    }

    /// Runs `body` with a fresh directory, removed afterwards.
    static func withDirectory<R>(_ body: (String) throws -> R) rethrows -> R {
        let directory = makeDirectory()
        defer { removeDirectory(directory) }
        return try body(directory)
    }

    static func readFile(_ path: String) -> [UInt8] {
        let file = try! FileHandleDescriptor.open(path, flags: O_RDONLY)
        defer { file.close() }
        return try! file.read(count: try! file.size(), at: 0)
    }

    static func writeFile(_ path: String, _ bytes: [UInt8]) {
        let file = try! FileHandleDescriptor.open(path, flags: O_WRONLY | O_CREAT | O_TRUNC)
        defer { file.close() }
        bytes.withUnsafeBytes { try! file.write($0, at: 0) }
    }

    /// The order a part stores rows in: tenant bytes, occurred-at, seq, then input position.
    static func sortedLikePart(_ events: [AuditEvent]) -> [AuditEvent] {
        events.enumerated().sorted { a, b in
            let (x, y) = (a.element, b.element)
            if !sameUTF8(x.tenant, y.tenant) { return utf8Less(x.tenant, y.tenant) }
            let (tx, ty) = (x.occurredAt.unixNanos, y.occurredAt.unixNanos)
            if tx != ty { return tx < ty }
            if x.seq != y.seq { return x.seq < y.seq }
            return a.offset < b.offset
        }.map(\.element)
    }

    /// Writes `events` as a part at `path` in the given order, sorted or not
    /// (`PartWriter` would sort them): a part whose rows break the format's order.
    static func writeInInputOrder(_ events: [AuditEvent], leaves: [UInt32]? = nil, to path: String) throws {
        let file = try FileHandleDescriptor.open(path, flags: O_WRONLY | O_CREAT | O_TRUNC)
        defer { file.close() }
        var sink = ChunkSink(output: PartOutput(file: file), level: 6, deflater: try ZlibDeflater())
        try sink.output.write(PartFormat.header())
        let plan = try SortPlan(events, inputOrder: true)
        var footer = try PartWriter.encodeBlocks(events, leaves: leaves, plan: plan, options: .init(), sink: &sink)
        footer.createdAt = 1
        let bytes = footer.encode()
        let offset = sink.output.offset
        try sink.output.write(bytes)
        try sink.output.write(PartFormat.trailer(footerOffset: offset, footerLength: bytes.count, footerChecksum: CRC32C.checksum(bytes)))
        try sink.output.flush()
    }

    /// Every event of every block of the part at `path`.
    static func readAll(_ path: String) throws -> [AuditEvent] {
        let reader = try PartReader(path: path)
        defer { reader.close() }
        var events: [AuditEvent] = []
        for block in reader.blocks.indices { events += try reader.events(block: block) }
        return events
    }

    /// Expects `body` to throw a VigilError with `code`; returns its message.
    @discardableResult
    static func expectError(
        _ code: VigilError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
    ) -> String? {
        do {
            try body()
            Issue.record("expected \(code), but nothing was thrown", sourceLocation: sourceLocation)
        } catch let error as VigilError {
            #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
            return error.message
        } catch {
            Issue.record("expected a VigilError, got \(error)", sourceLocation: sourceLocation)
        }
        return nil
    }

    static func timestamp(_ nanos: Int64) -> Google_Protobuf_Timestamp {
        Google_Protobuf_Timestamp(unixNanos: nanos)
    }
}

/// A small deterministic random number generator (SplitMix64) for test data.
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

/// Test events: awkward ones for round trips, realistic ones for sizes.
enum PartEvents {
    /// Values that stress the string encodings.
    static let awkwardStrings: [String] = [
        "", "a", "A", "tenant-1", "héllo", "he\u{301}llo", "\u{e9}", "e\u{301}", "🦤🏳️‍🌈", "nul\0inside", "\0",
        "ABCD", "abcd", "0123456789abcdef", "abc", "ab\u{0}cd", "ŝtrîñg wïth ünïcödé", "日本語のテキスト",
        String(repeating: "x", count: 300), "line\nbreak\ttab", "\u{FEFF}bom", "\u{10FFFF}",
    ]

    static let awkwardTraceIDs: [String] = [
        "", "ab", "ABCD", "abcd", "0123456789abcdef0123456789abcdef", "abc", "xyz", "a", "0", "00",
        String(repeating: "f", count: 64), String(repeating: "f", count: 66), String(repeating: "0", count: 62),
        "4bf92f3577b34da6a3ce929d0e0e4736", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "🦤", "ab\0cd",
        "AbCd", "ab cd",
    ]

    static func hex(_ bytes: Int, _ rng: inout SplitMix64) -> String {
        var text = ""
        for _ in 0..<bytes {
            let byte = UInt8.random(in: 0...255, using: &rng)
            text.append(Character(Unicode.Scalar(hexDigit(byte >> 4))))
            text.append(Character(Unicode.Scalar(hexDigit(byte & 0xF))))
        }
        return text
    }

    /// A random event exercising every field, including unknown enum values,
    /// explicit, derived, empty and non-canonical ids, extreme times and seqs,
    /// absent sub-messages and extras.
    /// An event with large extras: 32 metadata entries of 1 KiB and 64
    /// changes with emoji, NUL and a decomposed accent.
    static func largeExtras() -> AuditEvent {
        var big = AuditEvent()
        big.metadata = Dictionary(uniqueKeysWithValues: (0..<32).map { ("key-\($0)", String(repeating: "v", count: 1024)) })
        big.changes = (0..<64).map { index in
            var change = Vigil_V1_Change()
            change.field = "field.\(index)"
            change.old = "🦤 old \0"
            change.new = "e\u{301} new"
            return change
        }
        return big
    }

    static func random(_ rng: inout SplitMix64, tenants: Int = 5) -> AuditEvent {
        func pick<T>(_ values: [T]) -> T { values[Int.random(in: 0..<values.count, using: &rng)] }
        func chance(_ percent: Int) -> Bool { Int.random(in: 0..<100, using: &rng) < percent }
        func text() -> String {
            chance(50) ? pick(awkwardStrings) : "v-\(Int.random(in: 0..<50, using: &rng))"
        }
        var event = AuditEvent()
        event.tenant = chance(5) ? pick(awkwardStrings) : "tenant-\(Int.random(in: 0..<tenants, using: &rng))"
        event.seq = chance(5) ? pick([0, 1, UInt64.max, UInt64.max - 1, UInt64(Int64.max) + 1]) : UInt64.random(in: 0..<1_000_000, using: &rng)
        let base: Int64 = 1_780_000_000_000_000_000
        let occurred: Int64 = chance(5) ? pick([Int64.min, Int64.max, 0, -1, -1_000_000_007]) : base + Int64.random(in: 0..<86_400_000_000_000, using: &rng)
        if !chance(3) { event.occurredAt = PartTestSupport.timestamp(occurred) }
        let received: Int64 = chance(5) ? pick([Int64.min, Int64.max, 0, -5]) : base + Int64.random(in: 0..<10, using: &rng) * 1_000_000_007
        if !chance(3) { event.receivedAt = PartTestSupport.timestamp(received) }
        switch Int.random(in: 0..<10, using: &rng) {
        case 0...4: event.id = derivedEventID(receivedAt: event.receivedAt.unixNanos, seq: event.seq).description
        case 5, 6: event.id = EventID(high: rng.next(), low: rng.next()).description
        case 7: event.id = ""
        case 8: event.id = EventID(high: rng.next(), low: rng.next()).description.uppercased()
        default: event.id = text()
        }
        if !chance(5) {
            var actor = Vigil_V1_Actor()
            actor.id = text()
            actor.type = chance(10) ? .UNRECOGNIZED(pick([6, 255, 256, 100_000, -1, Int(Int32.max), Int(Int32.min)])) : Vigil_V1_ActorType(rawValue: Int.random(in: 0...5, using: &rng))!
            actor.name = text()
            actor.email = text()
            event.actor = actor
        }
        event.action = chance(80) ? "action.\(Int.random(in: 0..<8, using: &rng))" : text()
        event.category = chance(10) ? .UNRECOGNIZED(pick([11, 300, -7])) : Vigil_V1_Category(rawValue: Int.random(in: 0...10, using: &rng))!
        if !chance(10) {
            var resource = Vigil_V1_Resource()
            if !chance(10) {
                resource.type = "type-\(Int.random(in: 0..<4, using: &rng))"
                resource.id = text()
                resource.name = text()
            }
            event.resource = resource
        }
        event.outcome = chance(10) ? .UNRECOGNIZED(pick([4, 1000])) : Vigil_V1_Outcome(rawValue: Int.random(in: 0...3, using: &rng))!
        event.reason = chance(50) ? "" : text()
        event.sourceIp = chance(50) ? "10.0.\(Int.random(in: 0..<4, using: &rng)).\(Int.random(in: 0..<256, using: &rng))" : text()
        event.userAgent = text()
        event.traceID = chance(60) ? hex(16, &rng) : pick(awkwardTraceIDs)
        event.requestID = chance(60) ? hex(Int.random(in: 1...32, using: &rng), &rng) : pick(awkwardTraceIDs)
        event.description_p = text()
        if chance(30) {
            var target = Vigil_V1_Resource()
            target.type = "t"
            target.id = text()
            event.targets = [target]
            var change = Vigil_V1_Change()
            change.field = "f"
            change.old = text()
            change.new = text()
            event.changes = chance(50) ? [change] : []
            event.metadata = ["k": text(), "region": "eu-west-1"]
        }
        return event
    }

    /// The realistic data set: 50 tenants of 100 actors each, 60 actions over
    /// 12 resource types, 200,000 resource ids, 95% success, random 128-bit
    /// hex trace and request ids, 2,000 IPs, 5 user agents, times spread over
    /// a day in arrival order with up to ±2 s of nanosecond jitter, batches of
    /// 1,000 sharing a received-at, server-assigned (derived) ids.
    static func realistic(count: Int, seed: UInt64 = 42) -> [AuditEvent] {
        var rng = SplitMix64(seed: seed)
        let resourceTypes = ["user", "group", "role", "policy", "project", "node", "pod", "secret", "token", "acl", "bucket", "document"]
        let verbs: [(String, Vigil_V1_Category)] = [("create", .create), ("read", .read), ("update", .update), ("delete", .delete), ("list", .read)]
        let userAgents = [
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
            "vigil-cli/1.2.0", "terraform-provider-acme/3.4.1", "kubectl/v1.29.2 (linux/amd64)",
        ]
        var ips: [String] = []
        for _ in 0..<2_000 {
            ips.append("\(Int.random(in: 1...223, using: &rng)).\(Int.random(in: 0...255, using: &rng)).\(Int.random(in: 0...255, using: &rng)).\(Int.random(in: 1...254, using: &rng))")
        }
        let firstNames = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"]
        let start: Int64 = 1_780_000_000_000_000_000
        let spacing: Int64 = 86_400_000_000_000 / Int64(count)
        var events: [AuditEvent] = []
        events.reserveCapacity(count)
        var receivedAt: Int64 = 0
        for index in 0..<count {
            if index % 1_000 == 0 {
                receivedAt = start + Int64(min(index + 1_000, count)) * spacing + Int64.random(in: 0..<50_000_000, using: &rng)
            }
            var event = AuditEvent()
            let tenant = Int.random(in: 0..<50, using: &rng)
            event.tenant = "tenant-\(tenant)"
            event.seq = UInt64(index + 1)
            event.occurredAt = PartTestSupport.timestamp(start + Int64(index) * spacing + Int64.random(in: -2_000_000_000...2_000_000_000, using: &rng))
            event.receivedAt = PartTestSupport.timestamp(receivedAt)
            event.id = derivedEventID(receivedAt: receivedAt, seq: event.seq).description
            var actor = Vigil_V1_Actor()
            let actorNumber = tenant * 100 + Int.random(in: 0..<100, using: &rng)
            let roll = Int.random(in: 0..<100, using: &rng)
            if roll < 90 {
                actor.type = .user
                actor.id = "u-\(100_000 + actorNumber)"
                let name = firstNames[actorNumber % firstNames.count]
                actor.name = "\(name.prefix(1).uppercased())\(name.dropFirst()) \(actorNumber)"
                actor.email = "\(name).\(actorNumber)@tenant-\(tenant).example.com"
            } else if roll < 98 {
                actor.type = .service
                actor.id = "svc-\(actorNumber % 20)"
                actor.name = "service \(actorNumber % 20)"
            } else {
                actor.type = .system
                actor.id = "system"
            }
            event.actor = actor
            let resourceType = resourceTypes[Int.random(in: 0..<resourceTypes.count, using: &rng)]
            let (verb, category) = verbs[Int.random(in: 0..<verbs.count, using: &rng)]
            event.action = "\(resourceType).\(verb)"
            event.category = category
            var resource = Vigil_V1_Resource()
            resource.type = resourceType
            let resourceNumber = Int.random(in: 0..<200_000, using: &rng)
            resource.id = "\(resourceType.prefix(3))-\(resourceNumber)"
            if Int.random(in: 0..<100, using: &rng) < 30 { resource.name = "\(resourceType) \(resourceNumber)" }
            event.resource = resource
            let outcomeRoll = Int.random(in: 0..<100, using: &rng)
            if outcomeRoll < 95 {
                event.outcome = .success
            } else if outcomeRoll < 98 {
                event.outcome = .failure
                event.reason = "invalid_argument"
            } else {
                event.outcome = .denied
                event.reason = "permission_denied"
            }
            event.sourceIp = ips[Int.random(in: 0..<ips.count, using: &rng)]
            event.userAgent = userAgents[Int.random(in: 0..<userAgents.count, using: &rng)]
            event.traceID = hex(16, &rng)
            event.requestID = hex(16, &rng)
            events.append(event)
        }
        return events
    }
}
