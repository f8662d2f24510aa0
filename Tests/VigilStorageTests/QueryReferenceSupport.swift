import Foundation
import SwiftProtobuf
import Testing
import VigilCore
import VigilProto
@testable import VigilStorage

/// Shared pieces of the query reference tests: a store in a temporary
/// directory with small blocks, a generator of varied events and of filters
/// drawn from them, the brute-force reference (`EventFilter.matches` over
/// every stored event) and a pager that checks every page it reads.
enum QueryReference {
    static let second: Int64 = 1_000_000_000
    static let hour: Int64 = 3_600 * second
    static let day: Int64 = 86_400 * second
    /// 2026-05-26T00:00:00Z: events spread over the three days from here.
    static let start: Int64 = 1_779_753_600 * second
    static let span: Int64 = 3 * day

    /// Seeds from `VIGIL_QUERY_SEEDS` (comma-separated, decimal or 0x-hex), to replay a failure.
    static func seeds(default fallback: [UInt64]) -> [UInt64] {
        guard let text = ProcessInfo.processInfo.environment["VIGIL_QUERY_SEEDS"], !text.isEmpty else { return fallback }
        return text.split(separator: ",").compactMap { part in
            let trimmed = part.trimmingCharacters(in: .whitespaces)
            return trimmed.hasPrefix("0x") ? UInt64(trimmed.dropFirst(2), radix: 16) : UInt64(trimmed)
        }
    }

    static func options(_ directory: String, rowsPerBlock: Int, mergeFanIn: Int = 3) -> StorageOptions {
        var options = StorageOptions(directory: directory)
        options.retentionNanos = nil
        options.sync = .never
        options.rowsPerBlock = rowsPerBlock
        options.mergeFanIn = mergeFanIn
        // Flushes are the tests' to make.
        options.segmentMaxRows = 1_000_000
        options.segmentMaxAge = .seconds(3_600)
        return options
    }

    /// Runs `body` with a store in a fresh directory, closed and removed afterwards.
    static func withStore<R>(
        rowsPerBlock: Int = 16, mergeFanIn: Int = 3, configure: (inout StorageOptions) -> Void = { _ in },
        _ body: (ColumnarEventStore) async throws -> R
    ) async throws -> R {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-query-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        var options = options(path, rowsPerBlock: rowsPerBlock, mergeFanIn: mergeFanIn)
        configure(&options)
        let store = try ColumnarEventStore(options: options)
        do {
            let result = try await body(store)
            try await store.close()
            return result
        } catch {
            try? await store.close()
            throw error
        }
    }

    /// Validates `batch` as the server would, appends it, and returns the
    /// events as the store must give them back (seq, received_at, id).
    static func append(_ batch: [AuditEvent], to store: ColumnarEventStore, now: Int64 = start + span + day) async throws -> [AuditEvent] {
        var events = batch
        let errors = EventValidator().validate(&events, now: now)
        #expect(errors.isEmpty, "the generator made an invalid event: \(errors)")
        // Batches of an even size go in with their actor and resource columns
        // as stored rows, which is how a wire batch whose values are mostly
        // distinct keeps them (`AdaptiveTextBuilder`); odd ones as dictionaries.
        let result: AppendResult
        if events.count % 2 == 0 {
            let batch = WireIngestBatch(
                columns: MemoryChunk.Columns(events).withStoredActorAndResource(), encoded: EncodedEvents(encoding: events),
                idempotencyKey: "", wantReceipts: false, tenantCounts: [])
            result = try await store.append(batch)
        } else {
            result = try await store.append(events, idempotencyKey: nil)
        }
        #expect(result.count == events.count)
        for index in events.indices {
            events[index].seq = result.firstSeq + UInt64(index)
            events[index].receivedAt = .init(unixNanos: result.receivedAt)
            if events[index].id.isEmpty {
                events[index].id = derivedEventID(receivedAt: result.receivedAt, seq: events[index].seq).description
            }
        }
        return events
    }

    // MARK: The reference

    /// Every event of `events` the filter selects, with a seq up to
    /// `visibleSeq`, in `order` by (occurred_at, seq).
    static func expected(
        _ events: [AuditEvent], _ filter: EventFilter, order: Vigil_V1_Order, visibleSeq: UInt64 = .max
    ) -> [AuditEvent] {
        let selected = events.filter { $0.seq <= visibleSeq && filter.matches($0) }.sorted(by: keyLess)
        return order == .oldestFirst ? selected : selected.reversed()
    }

    static func keyLess(_ a: AuditEvent, _ b: AuditEvent) -> Bool {
        (a.occurredAt.unixNanos, a.seq) < (b.occurredAt.unixNanos, b.seq)
    }

    static func groupKey(_ event: AuditEvent, _ field: GroupField) -> String {
        switch field {
        case .action: event.action
        case .actorID: event.actor.id
        case .resourceType: event.resource.type
        case .outcome: EnumNames.outcome(Int32(event.outcome.rawValue))
        case .tenant: event.tenant
        case .category: EnumNames.category(Int32(event.category.rawValue))
        case .sourceIP: event.sourceIp
        }
    }

    /// Group counts keyed by the UTF-8 bytes of the group's value: two
    /// spellings Swift calls equal ("é", "e\u{301}") are two groups.
    typealias Groups = [[UInt8]: UInt64]

    static func groups(_ events: [AuditEvent], _ field: GroupField) -> Groups {
        var groups: Groups = [:]
        for event in events { groups[Array(groupKey(event, field).utf8), default: 0] += 1 }
        return groups
    }

    /// An aggregate's groups in the same form, whatever its key type (text or a byte-exact wrapper).
    static func groups<Key: Hashable & CustomStringConvertible>(of result: [Key: UInt64]) -> Groups {
        result.reduce(into: [:]) { groups, entry in groups[Array(entry.key.description.utf8), default: 0] += entry.value }
    }

    /// Groups as text, largest first, for failure messages.
    static func describe(_ groups: Groups) -> String {
        groups.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key.lexicographicallyPrecedes($1.key) }
            .map { "\(String(decoding: $0.key, as: UTF8.self).debugDescription): \($0.value)" }.joined(separator: ", ")
    }

    static func histogram(_ events: [AuditEvent], width: Int64) -> [Int64: UInt64] {
        var buckets: [Int64: UInt64] = [:]
        for event in events {
            let time = event.occurredAt.unixNanos
            // Floor to a multiple of the width, also before the epoch.
            let offset = time % width
            buckets[offset < 0 ? time - offset - width : time - offset, default: 0] += 1
        }
        return buckets
    }

    // MARK: Paging

    struct Paged {
        var events: [AuditEvent] = []
        var pages = 0
        var visibleSeq: UInt64 = 0
        var statistics = ScanStatistics()
        /// Events delivered before each page that said it was not exhausted.
        var notExhaustedAfter: [Int] = []
        /// What went wrong on the way (over-long page, a changed visibleSeq, no end).
        var problems: [String] = []
        /// Pages also read as protobuf bytes (`scanEncoded`) and compared.
        var encodedPagesCompared = 0
    }

    /// Pages through `filter` in `order` with pages of `pageSize`, as a
    /// client does: each cursor carries the first page's visibleSeq and the
    /// anchor; the first page starts after `start` when given. `between`
    /// runs after every page but the last, with the number
    /// of pages read and the page's last event (ingest, flushes, merges).
    static func page(
        _ store: ColumnarEventStore, _ filter: EventFilter, order: Vigil_V1_Order, pageSize: Int, anchor: Int64 = 0,
        maxPages: Int, from start: QueryCursor? = nil, between: ((Int, AuditEvent) async throws -> Void)? = nil
    ) async throws -> Paged {
        var paged = Paged()
        var cursor = start
        while true {
            if paged.pages >= maxPages {
                paged.problems.append("no end after \(maxPages) pages")
                return paged
            }
            let page = try await store.scan(filter: filter, order: order, after: cursor, limit: pageSize)
            paged.pages += 1
            // The Query call's path: the same page as protobuf bytes written from the columns.
            let encoded = try await store.scanEncoded(filter: filter, order: order, after: cursor, limit: pageSize)
            if encoded.visibleSeq == page.visibleSeq {
                let decoded = try encoded.encodedEvents.map { try AuditEvent(serializedBytes: $0.bytes) }
                let keys = encoded.encodedEvents.map { [$0.occurredAt, Int64(bitPattern: $0.seq)] }
                if !encoded.events.isEmpty || decoded != page.events || encoded.exhausted != page.exhausted
                    || keys != page.events.map({ [$0.occurredAt.unixNanos, Int64(bitPattern: $0.seq)] })
                {
                    paged.problems.append("page \(paged.pages) encoded (\(decoded.count) events) differs from the page of events (\(page.events.count))")
                }
                paged.encodedPagesCompared += 1
            }
            paged.statistics.add(page.statistics)
            if paged.pages == 1 {
                paged.visibleSeq = page.visibleSeq
            } else if page.visibleSeq != paged.visibleSeq {
                paged.problems.append("page \(paged.pages) read visibleSeq \(page.visibleSeq), the first page \(paged.visibleSeq)")
            }
            if page.events.count > pageSize {
                paged.problems.append("page \(paged.pages) has \(page.events.count) events, more than the limit \(pageSize)")
            }
            paged.events += page.events
            if page.exhausted { return paged }
            paged.notExhaustedAfter.append(paged.events.count)
            guard let last = page.events.last else {
                paged.problems.append("page \(paged.pages) is empty but not exhausted")
                return paged
            }
            cursor = QueryCursor(
                order: order, occurredAt: last.occurredAt.unixNanos, seq: last.seq, filterFingerprint: filter.fingerprint,
                anchor: anchor, visibleSeq: paged.visibleSeq)
            try await between?(paged.pages, last)
        }
    }

    /// Compares what paging returned with the reference; returns the
    /// problems found, each a line.
    static func compare(_ paged: Paged, with reference: [AuditEvent]) -> [String] {
        var problems = paged.problems
        let got = paged.events.map(\.seq)
        let want = reference.map(\.seq)
        if got != want {
            problems.append(difference(got: got, want: want, events: paged.events, reference: reference))
        } else {
            for (index, (event, expected)) in zip(paged.events, reference).enumerated() where !sameBytes(event, expected) {
                problems.append("event \(index) (seq \(event.seq)) differs from what was stored:\n  got  \(json(event))\n  want \(json(expected))")
                break
            }
        }
        for count in paged.notExhaustedAfter where count >= reference.count {
            problems.append("a page said more follow after \(count) events, but the result has \(reference.count)")
            break
        }
        return problems
    }

    /// A short account of how two lists of seqs differ.
    static func difference(got: [UInt64], want: [UInt64], events: [AuditEvent] = [], reference: [AuditEvent] = []) -> String {
        let gotSet = Set(got)
        let wantSet = Set(want)
        let missing = want.filter { !gotSet.contains($0) }
        let extra = got.filter { !wantSet.contains($0) }
        var repeated: [UInt64] = []
        var seen = Set<UInt64>()
        for seq in got where !seen.insert(seq).inserted { repeated.append(seq) }
        let firstDifference = zip(got, want).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(got.count, want.count)
        var text = "got \(got.count) events, want \(want.count); first difference at position \(firstDifference)"
        if !missing.isEmpty { text += "; missing seqs \(missing.prefix(10))" }
        if !extra.isEmpty { text += "; extra seqs \(extra.prefix(10))" }
        if !repeated.isEmpty { text += "; repeated seqs \(repeated.prefix(10))" }
        if missing.isEmpty && extra.isEmpty && repeated.isEmpty { text += "; same events, wrong order" }
        if let seq = missing.first, let event = reference.first(where: { $0.seq == seq }) {
            text += "\n  first missing: \(json(event))"
        }
        if let seq = extra.first, let event = events.first(where: { $0.seq == seq }) {
            text += "\n  first extra: \(json(event))"
        }
        return text
    }

    /// Byte-for-byte equality of two events. `==` is not enough: it compares
    /// strings by Unicode canonical equivalence ("é" == "e\u{301}").
    static func sameBytes(_ a: AuditEvent, _ b: AuditEvent) -> Bool {
        var options = BinaryEncodingOptions()
        options.useDeterministicOrdering = true
        let x: [UInt8]? = try? a.serializedBytes(options: options)
        let y: [UInt8]? = try? b.serializedBytes(options: options)
        return x != nil && x == y
    }

    static func json(_ message: some SwiftProtobuf.Message) -> String {
        (try? message.jsonString()) ?? "\(message)"
    }
}

/// Varied audit events, deterministic from a seed: several tenants, actors
/// with mixed-case e-mails and non-ASCII names, actions sharing prefixes,
/// every enum value (unspecified included), IPv4, IPv6, IPv4-mapped and
/// missing source IPs, shared and unique correlation ids, canonically
/// equivalent spellings of one text (é, e + U+0301), metadata from a
/// small pool, targets and changes, descriptions, and times over three days
/// with exact duplicates and day boundaries.
struct QueryEventGenerator {
    var rng: SplitMix64
    private var usedTimes: [Int64] = []
    private var serial = 0

    init(seed: UInt64) { rng = SplitMix64(seed: seed) }

    static let tenants = ["acme", "acme-eu", "globex", "initech", "umbrella:1"]
    static let actors: [(id: String, type: Vigil_V1_ActorType, name: String, email: String)] = [
        ("u-1", .user, "Alice Smith", "alice@example.com"),
        ("u-2", .user, "Ünïcode Ölaf", "ölaf@example.com"),
        ("u-3", .user, "bob", "Bob@Example.com"),
        ("u-4", .user, "BOB", "bob.builder@example.com"),
        ("u-10", .user, "日本 太郎", "taro@example.jp"),
        ("u-11", .user, "Ärger Ü", "ÄRGER@EXAMPLE.COM"),
        ("u-12", .user, "ärger ü", "ärger@example.com"),
        ("svc-1", .service, "billing service", ""),
        ("tok-9", .apiToken, "CI token", "ci@example.com"),
        ("system", .system, "", ""),
        ("", .anonymous, "", ""),
        ("x-1", .unspecified, "Mystery", "MYSTERY@EXAMPLE.COM"),
        // Canonically equivalent spellings (é, and e + U+0301): equal to Swift's ==, two values to Vigil.
        ("u-13", .user, "Jos\u{E9}", "jos\u{E9}@example.com"),
        ("u-13", .user, "Jose\u{301}", "jose\u{301}@example.com"),
        ("u-\u{E9}", .service, "svc \u{E9}", ""),
        ("u-e\u{301}", .service, "svc e\u{301}", ""),
    ]
    static let actions = [
        "auth.login", "auth.logout", "auth.mfa.verify", "authz.check", "user.create", "user.created", "user.update",
        "user", "user.delete.bulk", "document.read", "document.share", "Doc.Read",
    ]
    static let resourceTypes = ["user", "document", "project", "Document", "", "caf\u{E9}", "cafe\u{301}"]
    static let resourceNames = [
        "alice", "Quarterly Report", "Ünïcode résumé.pdf", "", "日本語ファイル", "report", "REPORT-2", "Caf\u{E9} menu", "Cafe\u{301} menu",
    ]
    static let ipv4 = ["10.0.0.1", "10.0.0.2", "10.1.2.3", "10.200.0.9", "192.168.1.10", "192.168.1.77", "203.0.113.9", "8.8.8.8"]
    static let ipv6 = ["2001:db8::1", "2001:DB8::2", "2001:db8:1::5", "2001:db8:8000::1", "fe80::1", "::1", "::ffff:10.0.0.1"]
    static let traceIDs = [
        "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7aabbccddeeff0011", "0af7651916cd43dd8448eb211c80319c",
        "ABCDEF0123456789ABCDEF0123456789", "trace-not-hex", "4bf92f3577b34da6a3ce929d0e0e4737", "trace-\u{E9}", "trace-e\u{301}",
    ]
    static let metadataKeys = ["region", "env", "project", "team.name", "k-1"]
    static let metadataValues = ["eu", "us", "prod", "staging", "", "a=b", "Ünï"]
    static let descriptions = [
        "Bob made Alice an admin", "Ünïcode résumé uploaded", "", "password reset for ALICE", "日本語の説明",
        "report exported to CSV", "", "Caf\u{E9} opened", "Cafe\u{301} opened",
    ]
    /// Text only in fields search must not look at.
    static let hiddenWord = "zanzibar"

    mutating func pick<T>(_ values: [T]) -> T { values[Int.random(in: 0..<values.count, using: &rng)] }
    mutating func chance(_ percent: Int) -> Bool { Int.random(in: 0..<100, using: &rng) < percent }
    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &rng) }

    /// ASCII letters flipped to the other case at random.
    mutating func mixCase(_ text: String) -> String {
        String(decoding: text.utf8.map { byte in
            let letter = (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
            return letter && chance(40) ? byte ^ 0x20 : byte
        }, as: UTF8.self)
    }

    mutating func hex(_ count: Int) -> String {
        String((0..<count).map { _ in "0123456789abcdef".randomElement(using: &rng)! })
    }

    mutating func time() -> Int64 {
        if !usedTimes.isEmpty && chance(20) { return pick(usedTimes) }
        let time: Int64
        switch int(0...99) {
        case 0...2: time = QueryReference.start + Int64(int(0...3)) * QueryReference.day - Int64(int(0...1))  // day boundaries
        case 3...9: time = QueryReference.start + Int64.random(in: 0..<QueryReference.span, using: &rng) / 1_000_000_000 * 1_000_000_000
        default: time = QueryReference.start + Int64.random(in: 0..<QueryReference.span, using: &rng)
        }
        usedTimes.append(time)
        return time
    }

    mutating func event() -> AuditEvent {
        serial += 1
        var event = AuditEvent()
        switch int(0...99) {
        case 0...3:
            // A client's own id (the validator lowercases the upper-case ones).
            let id = EventID(high: rng.next(), low: rng.next()).description
            event.id = chance(25) ? id.uppercased() : id
        case 4:
            // A client id shaped like a derived one (version 7, variant 2), with a seq of its own.
            event.id = EventID(high: rng.next() << 16 | 0x7000, low: 0x8000_0000_0000_0000 | UInt64(int(1...2_000))).description
        default: break
        }
        event.occurredAt = .init(unixNanos: time())
        event.tenant = pick(Self.tenants)
        let actor = pick(Self.actors)
        event.actor.id = actor.id
        event.actor.type = actor.type
        if !actor.id.isEmpty && chance(10) { event.actor.type = Vigil_V1_ActorType(rawValue: int(0...5))! }
        event.actor.name = actor.name
        event.actor.email = chance(50) ? mixCase(actor.email) : actor.email
        event.action = pick(Self.actions)
        event.category = Vigil_V1_Category(rawValue: int(0...10))!
        if !chance(10) {
            event.resource.type = pick(Self.resourceTypes)
            event.resource.id = chance(10) ? "" : chance(5) ? pick(["r-\u{E9}", "r-e\u{301}"]) : "r-\(int(0...39))"
            event.resource.name = pick(Self.resourceNames)
            if event.resource.type.isEmpty && event.resource.id.isEmpty && event.resource.name.isEmpty { event.resource.id = "r-0" }
        }
        event.outcome = Vigil_V1_Outcome(rawValue: int(0...3))!
        if event.outcome != .success && chance(50) { event.reason = chance(50) ? "quota exceeded" : Self.hiddenWord }
        switch int(0...9) {
        case 0...3: event.sourceIp = pick(Self.ipv4)
        case 4: event.sourceIp = "10.\(int(0...255)).\(int(0...255)).\(int(0...255))"
        case 5...6: event.sourceIp = pick(Self.ipv6)
        case 7: event.sourceIp = "2001:db8::\(String(int(0...0xffff), radix: 16))"
        default: event.sourceIp = ""
        }
        event.userAgent = chance(20) ? "agent \(Self.hiddenWord)/1.0" : pick(["", "vigil-cli/1.2.0", "Mozilla/5.0"])
        switch int(0...9) {
        case 0...3: event.traceID = pick(Self.traceIDs)
        case 4...7: event.traceID = hex(32)
        default: event.traceID = ""
        }
        switch int(0...9) {
        case 0...4: event.requestID = "req-\(int(0...19))"
        case 5...7: event.requestID = "req-\(hex(12))"
        default: event.requestID = ""
        }
        for _ in 0..<int(0...4) {
            event.metadata[pick(Self.metadataKeys)] = pick(Self.metadataValues)
        }
        if chance(15) {
            event.metadata[Self.hiddenWord] = Self.hiddenWord
        }
        if chance(15) {
            for _ in 0..<int(1...2) {
                var target = Vigil_V1_Resource()
                target.type = "group"
                target.id = chance(30) ? Self.hiddenWord : "g-\(int(0...9))"
                target.name = "Group \(int(0...9))"
                event.targets.append(target)
            }
        }
        if chance(15) {
            var change = Vigil_V1_Change()
            change.field = "role"
            change.old = "viewer"
            change.new = chance(50) ? "admin" : Self.hiddenWord
            event.changes = [change]
        }
        event.description_p = chance(10) ? "event #\(serial)" : pick(Self.descriptions)
        return event
    }

    mutating func batch(_ count: Int) -> [AuditEvent] {
        (0..<count).map { _ in event() }
    }

    // MARK: Filters

    /// A random filter of 0-4 conditions, values drawn mostly from `events`
    /// (so that it selects something) and sometimes not; with the anchor a
    /// `last` in it is resolved against.
    mutating func filter(from events: [AuditEvent]) -> (message: Vigil_V1_Filter, anchor: Int64) {
        var message = Vigil_V1_Filter()
        var anchor = QueryReference.start + QueryReference.span
        let conditions = int(0...99) < 10 ? 0 : int(1...4)
        // Most conditions come from one event, so that their conjunction selects something.
        let base = pick(events)
        for _ in 0..<conditions {
            let sample = chance(75) ? base : pick(events)
            let miss = chance(8)
            switch int(0...21) {
            case 0, 1:
                // Bounds at events' very times: since includes its event, until excludes its own.
                let a = sample.occurredAt.unixNanos
                let b = pick(events).occurredAt.unixNanos
                switch int(0...3) {
                case 0: message.since = .init(unixNanos: min(a, b))
                case 1: message.until = .init(unixNanos: max(a, b) + Int64(int(0...1)))
                default:
                    message.since = .init(unixNanos: min(a, b))
                    message.until = .init(unixNanos: max(a, b) + Int64(int(0...1)))
                    if message.since.unixNanos >= message.until.unixNanos { message.clearSince() }
                }
                if message.hasSince { message.clearLast() }
            case 2:
                guard !message.hasSince else { break }
                let seconds = Int64(int(1...48 * 3600))
                message.last = .init(seconds: seconds)
                anchor = sample.occurredAt.unixNanos + (chance(20) ? 0 : Int64.random(in: 0...seconds * QueryReference.second, using: &rng))
            case 3: message.tenants.append(miss ? "nobody" : sample.tenant)
            case 4: message.actorIds.append(miss ? "u-999" : sample.actor.id)
            case 5:
                let action = sample.action
                let segments = action.split(separator: ".")
                switch int(0...2) {
                case 0: message.actions.append(miss ? "user.nothing" : action)
                default: message.actions.append(segments.prefix(int(1...max(1, segments.count))).joined(separator: ".") + ".*")
                }
            case 6: message.resourceTypes.append(miss ? "planet" : sample.resource.type)
            case 7: message.resourceIds.append(miss ? "r-999" : sample.resource.id)
            case 8:
                message.outcomes.append(sample.outcome)
                if chance(30) { message.outcomes.append(Vigil_V1_Outcome(rawValue: int(0...3))!) }
            case 9:
                guard !sample.actor.email.isEmpty || chance(20) else { break }
                message.actorEmails.append(miss ? "nobody@example.com" : mixCase(sample.actor.email))
            case 10: message.actorNames.append(miss ? "Nobody" : sample.actor.name)
            case 11:
                message.actorTypes.append(sample.actor.type)
                if chance(30) { message.actorTypes.append(Vigil_V1_ActorType(rawValue: int(0...5))!) }
            case 12:
                message.categories.append(sample.category)
                if chance(40) { message.categories.append(Vigil_V1_Category(rawValue: int(0...10))!) }
            case 13: message.resourceNames.append(miss ? "nothing" : sample.resource.name)
            case 14:
                message.excludeOutcomes.append(Vigil_V1_Outcome(rawValue: int(0...3))!)
                if chance(30) { message.excludeOutcomes.append(Vigil_V1_Outcome(rawValue: int(0...3))!) }
            case 15, 16: message.sourceIps.append(sourceIPCondition(sample.sourceIp, miss: miss))
            case 17:
                if miss || sample.traceID.isEmpty { message.traceIds.append(hex(32)) } else { message.traceIds.append(sample.traceID) }
            case 18:
                if miss || sample.requestID.isEmpty { message.requestIds.append("req-none") } else { message.requestIds.append(sample.requestID) }
            case 19:
                // Sorted: a dictionary's order differs from process to process, the seed must not.
                let entries = sample.metadata.sorted { $0.key < $1.key }
                if !miss, let (key, value) = entries.randomElement(using: &rng) {
                    message.metadata.append("\(key)=\(value)")
                    if chance(40) { message.metadata.append("\(key)=\(pick(Self.metadataValues))") }
                } else {
                    message.metadata.append("\(pick(Self.metadataKeys))=\(pick(Self.metadataValues))")
                }
            default: message.search = searchText(sample, miss: miss)
            }
        }
        return (message, anchor)
    }

    private mutating func sourceIPCondition(_ ip: String, miss: Bool) -> String {
        if miss || ip.isEmpty || chance(20) {
            return pick(["10.0.0.0/8", "2001:db8::/32", "::ffff:0:0/96", "0.0.0.0/0", "::/0", "192.168.1.0/25", "172.16.0.0/12", "fe80::/10"])
        }
        guard let address = IPAddress(ip) else { return ip }
        switch int(0...3) {
        case 0: return ip
        case 1: return address.isIPv4 ? ip : ip.uppercased()
        default:
            // A block around the address, written with its host bits set.
            let bits = address.isIPv4 ? 32 : 128
            return "\(ip)/\(int(0...bits))"
        }
    }

    private mutating func searchText(_ sample: AuditEvent, miss: Bool) -> String {
        if miss || chance(15) {
            return pick([Self.hiddenWord, "ALICE", "ünï", "REPORT", "auth.", "@example", "日本", "résumé", "nothing-like-this", "1"])
        }
        let fields = EventFilter.searchFields(of: sample).filter { !$0.isEmpty }
        guard !fields.isEmpty else { return "a" }
        let characters = Array(pick(fields))
        let length = int(1...min(12, characters.count))
        let from = int(0...characters.count - length)
        let text = String(characters[from..<from + length])
        return chance(20) ? text.uppercased() : mixCase(text)
    }
}

extension MemoryChunk.Columns {
    /// The same columns with actor id, name and email and resource id and
    /// name as stored rows instead of dictionaries.
    func withStoredActorAndResource() -> MemoryChunk.Columns {
        func stored(_ column: TextColumn) -> TextColumn {
            var builder = StoredTextRows.Builder(capacity: column.count)
            for row in 0..<column.count { column.withBytes(at: row) { builder.append($0) } }
            return builder.column
        }
        return MemoryChunk.Columns(
            occurredAt: occurredAt, explicitIDs: explicitIDs, tenant: tenant, actorID: stored(actorID), actorType: actorType,
            actorName: stored(actorName), actorEmail: stored(actorEmail), action: action, category: category,
            resourceType: resourceType, resourceID: stored(resourceID), resourceName: stored(resourceName), outcome: outcome,
            reason: reason, sourceIP: sourceIP, userAgent: userAgent, traceID: traceID, requestID: requestID,
            descriptionText: descriptionText, extras: extras)
    }
}
