import PropertyBased
import SwiftProtobuf
import Testing
import VigilCore
import VigilProto
@testable import VigilStorage

/// Encodes with the column's encoder and decodes through the reader's
/// dispatch, as a part would.
enum ColumnCodec {
    static func decode(
        _ raw: [UInt8], column: PartColumn, encoding: ChunkEncoding, rows: Int,
        receivedAt: [Int64]? = nil, seq: [UInt64]? = nil, extrasAsBytes: Bool = false
    ) throws -> DecodedBlock {
        var block = DecodedBlock(rowCount: rows)
        block.wantsExtrasBytes = extrasAsBytes
        block.receivedAt = receivedAt
        block.seq = seq
        let chunk = ChunkInfo(
            column: column, encoding: encoding, codec: .none, offset: 0, storedLength: raw.count,
            rawLength: raw.count, checksum: 0)
        try withBytes(raw) { (bytes) throws(PartFormatError) in
            try PartReader.decodeColumn(bytes, chunk: chunk, rows: rows, into: &block)
        }
        return block
    }

    static func integers(_ values: [Int64]) throws -> (encoding: ChunkEncoding, decoded: [Int64], bytes: Int) {
        var out = ByteWriter()
        let encoding = values.withUnsafeBufferPointer { ColumnEncoding.encodeIntegers($0, into: &out) }
        let block = try decode(out.bytes, column: .occurredAt, encoding: encoding, rows: values.count)
        return (encoding, block.occurredAt!, out.count)
    }

    static func enums(_ values: [Int32]) throws -> (encoding: ChunkEncoding, decoded: [Int32], bytes: Int) {
        var out = ByteWriter()
        let encoding = values.withUnsafeBufferPointer { ColumnEncoding.encodeEnums($0, into: &out) }
        let block = try decode(out.bytes, column: .outcome, encoding: encoding, rows: values.count)
        return (encoding, block.outcome!, out.count)
    }

    static func strings(_ values: [String], column: PartColumn = .actorID) throws -> (encoding: ChunkEncoding, decoded: [String], bytes: Int) {
        var out = ByteWriter()
        var scratch = ColumnEncoding.TextScratch()
        let encoding = ByteColumn(values).withRows {
            ColumnEncoding.encodeStrings($0, scratch: &scratch, addresses: column == .sourceIP, into: &out)
        }
        let block = try decode(out.bytes, column: column, encoding: encoding, rows: values.count)
        return (encoding, block.strings(column)!, out.count)
    }

    static func eventIDs(_ ids: [String], receivedAt: [Int64], seq: [UInt64]) throws -> (decoded: [String], bytes: Int, hashes: Int) {
        var out = ByteWriter()
        var hashes: [UInt64] = []
        let encoding = ByteColumn(ids).withRows { rows in
            receivedAt.withUnsafeBufferPointer { receivedAt in
                seq.withUnsafeBufferPointer { seq in
                    ColumnEncoding.encodeEventIDs(rows, receivedAt: receivedAt, seq: seq, into: &out, bloomHashes: &hashes)
                }
            }
        }
        let block = try decode(out.bytes, column: .id, encoding: encoding, rows: ids.count, receivedAt: receivedAt, seq: seq)
        return (block.id!, out.count, hashes.count)
    }

    static func correlationIDs(_ values: [String]) throws -> (decoded: [String], raw: [UInt8], tail: Int) {
        var out = ByteWriter()
        var hashes: [UInt64] = []
        let (encoding, tail) = ByteColumn(values).withRows {
            ColumnEncoding.encodeCorrelationIDs($0, into: &out, bloomHashes: &hashes)
        }
        let block = try decode(out.bytes, column: .traceID, encoding: encoding, rows: values.count)
        return (block.traceID!, out.bytes, tail)
    }

    static func extras(_ events: [AuditEvent]) throws -> [AuditEvent] {
        var out = ByteWriter()
        let encoding = ByteColumn(bytes: events.map(ColumnEncoding.extrasBytes(of:))).withRows {
            ColumnEncoding.encodePlainBytes($0, into: &out)
        }
        return try decode(out.bytes, column: .extras, encoding: encoding, rows: events.count).extras!
    }
}

@Suite("Column encodings")
struct ColumnEncodingTests {
    // MARK: Varints and hashing

    @Test("varints and zigzag round trip over the whole range")
    func varints() async throws {
        await propertyCheck(input: Gen.uint64(), Gen.int64()) { unsigned, signed in
            var out = ByteWriter()
            out.varint(unsigned)
            out.zigzag(signed)
            #expect(out.count == Varint.size(unsigned) + Varint.size(Varint.zigzag(signed)))
            try withBytes(out.bytes) { (raw) throws(PartFormatError) in
                var reader = ByteReader(raw)
                #expect(try reader.varint() == unsigned)
                #expect(try reader.zigzag() == signed)
                #expect(reader.isAtEnd)
            }
        }
        for value: UInt64 in [0, 127, 128, 16_383, 16_384, .max] {
            var out = ByteWriter()
            out.varint(value)
            #expect(out.count == Varint.size(value))
        }
        #expect(Varint.size(.max) == 10)
        #expect(Varint.zigzag(-1) == 1 && Varint.zigzag(1) == 2 && Varint.zigzag(.min) == .max)
    }

    @Test("the reader refuses truncated and overlong varints and reads past the end")
    func readerBounds() throws {
        let cases: [[UInt8]] = [[0x80], [0xFF, 0xFF], Array(repeating: 0xFF, count: 10) + [0x01], Array(repeating: 0x80, count: 9) + [0x02]]
        for bytes in cases {
            #expect(throws: PartFormatError.self) {
                try withBytes(bytes) { (raw) throws(PartFormatError) in
                    var reader = ByteReader(raw)
                    _ = try reader.varint()
                }
            }
        }
        #expect(throws: PartFormatError.self) {
            try withBytes([1, 2, 3]) { (raw) throws(PartFormatError) in
                var reader = ByteReader(raw, base: 100)
                _ = try reader.u32()
            }
        }
        do {
            try withBytes([0x05]) { (raw) throws(PartFormatError) in
                var reader = ByteReader(raw, base: 100)
                _ = try reader.count("things", limit: 4)
            }
            Issue.record("a count above its limit was accepted")
        } catch {
            #expect(error.offset == 100)
            #expect(error.what.contains("exceeds the limit"))
        }
    }

    @Test("XXH64 matches the reference vectors")
    func xxhash() {
        #expect(XXHash64.hash("") == 0xEF46_DB37_51D8_E999)
        #expect(XXHash64.hash("a") == 0xD24E_C4F1_A98C_6E5B)
        #expect(XXHash64.hash("abc") == 0x44BC_2CF5_AD77_0999)
        #expect(XXHash64.hash("abcd") == 0xDE03_27B0_D25D_92CC)
        #expect(XXHash64.hash("abcdefgh") == 0x3AD3_5177_5B46_34B7)
        #expect(XXHash64.hash("abcdefghijk") == 0x814E_2574_41CF_78E0)
        #expect(XXHash64.hash(String(repeating: "a", count: 32)) == 0x856E_8432_98F9_9AD7)
        #expect(XXHash64.hash("Nobody inspects the spammish repetition") == 0xFBCE_A83C_8A37_8BF1)
        // Canonically equivalent strings are different bytes, so different values.
        #expect(XXHash64.hash("\u{e9}") != XXHash64.hash("e\u{301}"))
    }

    // MARK: Integers

    @Test("integer chunks round trip any Int64 sequence")
    func integersProperty() async throws {
        await propertyCheck(input: Gen.int64().array(of: 0...300)) { values in
            let result = try ColumnCodec.integers(values)
            #expect(result.decoded == values)
        }
        await propertyCheck(input: Gen.int64(in: -5_000...5_000).array(of: 1...300), Gen.int64(in: -(1 << 62)...(1 << 62))) { steps, start in
            var value = start
            let values = steps.map { step -> Int64 in
                value &+= step * 1_000_000
                return value
            }
            let result = try ColumnCodec.integers(values)
            #expect(result.decoded == values)
        }
    }

    @Test("integer chunks: edge cases and the choice of encoding")
    func integersEdges() throws {
        let edges: [[Int64]] = [
            [], [0], [.min], [.max], [.min, .max, .min, .max], [.max, .min, 0, -1, 1],
            [-1_000_000_007, 0, 1_000_000_007], Array(repeating: 42, count: 1000),
            [1_000_000_000, 2_000_000_000, -3_000_000_000],
        ]
        for values in edges {
            #expect(try ColumnCodec.integers(values).decoded == values, "\(values.prefix(8))")
        }
        // Constant steps: delta-of-delta, about one byte per row.
        let steady = (0..<1000).map { Int64(1_780_000_000_000_000_000) + Int64($0) * 1_234_567 }
        let steadyResult = try ColumnCodec.integers(steady)
        #expect(steadyResult.encoding == .deltaOfDelta)
        #expect(steadyResult.bytes < 1100)
        // A batch sharing one receivedAt: deltas are 0, one byte per row.
        let batches = (0..<1000).map { Int64(1_780_000_000_000_000_000) + Int64($0 / 100) * 987_654_321 }
        let batchResult = try ColumnCodec.integers(batches)
        #expect(batchResult.encoding == .delta)
        #expect(batchResult.bytes < 1100)
        // Whole milliseconds: the power of ten is factored out.
        let millis = (0..<1000).map { Int64(1_780_000_000_000) * 1_000_000 + Int64($0 * 37 % 1000) * 1_000_000 }
        let nanos = millis.enumerated().map { $0.element + Int64($0.offset % 7) }
        #expect(try ColumnCodec.integers(millis).bytes < ColumnCodec.integers(nanos).bytes)
        #expect(try ColumnCodec.integers(millis).decoded == millis)
    }

    // MARK: Enums

    @Test("enum chunks round trip every value, known or not")
    func enumsProperty() async throws {
        await propertyCheck(input: Gen.int32().array(of: 0...200)) { values in
            let result = try ColumnCodec.enums(values)
            #expect(result.decoded == values)
        }
        await propertyCheck(input: Gen.int32(in: 0...5).array(of: 0...500)) { values in
            let result = try ColumnCodec.enums(values)
            #expect(result.decoded == values)
            #expect(result.encoding != .varint)
        }
    }

    @Test("enum chunks: all known values, unknown ones, runs")
    func enumsEdges() throws {
        let all = (0...5).map { Int32(Vigil_V1_ActorType(rawValue: $0)!.rawValue) }
            + (0...10).map { Int32(Vigil_V1_Category(rawValue: $0)!.rawValue) }
            + (0...3).map { Int32(Vigil_V1_Outcome(rawValue: $0)!.rawValue) }
        #expect(try ColumnCodec.enums(all).decoded == all)
        #expect(try ColumnCodec.enums(all).encoding == .byte)
        let unknown: [Int32] = [255, 256, -1, .min, .max, 1000, 0]
        let unknownResult = try ColumnCodec.enums(unknown)
        #expect(unknownResult.decoded == unknown)
        #expect(unknownResult.encoding == .varint)
        let runs = Array(repeating: Int32(1), count: 4000) + Array(repeating: 2, count: 96)
        let runResult = try ColumnCodec.enums(runs)
        #expect(runResult.encoding == .runLength)
        #expect(runResult.bytes < 16)
        #expect(runResult.decoded == runs)
        #expect(try ColumnCodec.enums([]).decoded == [])
        #expect(try ColumnCodec.enums([7]).decoded == [7])
    }

    // MARK: Strings

    static let stringPool: [String] = PartEvents.awkwardStrings + (0..<40).map { "value-\($0)" }

    @Test("string chunks round trip, byte for byte")
    func stringsProperty() async throws {
        let pool = Self.stringPool
        await propertyCheck(input: Gen.int(in: 0...(pool.count - 1)).array(of: 0...300)) { picks in
            let values = picks.map { pool[$0] }
            let result = try ColumnCodec.strings(values)
            #expect(result.decoded.count == values.count)
            #expect(zip(result.decoded, values).allSatisfy { sameUTF8($0, $1) })
        }
        await propertyCheck(input: Gen.latin1.string(of: 0...40).array(of: 0...100)) { values in
            let result = try ColumnCodec.strings(values)
            #expect(zip(result.decoded, values).allSatisfy { sameUTF8($0, $1) } && result.decoded.count == values.count)
        }
    }

    @Test("string chunks: empty, single, huge, non-ASCII, NUL, canonically equivalent")
    func stringsEdges() throws {
        let cases: [[String]] = [
            [], [""], ["x"], [String(repeating: "é", count: 32_768)], [String(repeating: "a", count: 1 << 20), ""],
            ["🦤", "🏳️‍🌈", "e\u{301}", "\u{e9}", "e\u{301}", "\u{e9}"], ["a\0b", "\0", "\0\0"],
            Array(repeating: "same", count: 1000),
        ]
        for values in cases {
            let result = try ColumnCodec.strings(values)
            #expect(result.decoded.count == values.count)
            for (decoded, value) in zip(result.decoded, values) {
                #expect(Array(decoded.utf8) == Array(value.utf8))
            }
        }
        // "é" and "e + combining acute" are equal Strings but distinct values: both survive.
        let equivalent = try ColumnCodec.strings(["e\u{301}", "\u{e9}"])
        #expect(Array(equivalent.decoded[0].utf8) == Array("e\u{301}".utf8))
        #expect(Array(equivalent.decoded[1].utf8) == Array("\u{e9}".utf8))
        #expect(try ColumnCodec.strings(Array(repeating: "same", count: 1000)).encoding == .dictionary)
        var rng = SplitMix64(seed: 2)
        #expect(try ColumnCodec.strings((0..<1000).map { _ in PartEvents.hex(6, &rng) + "x" }).encoding == .plain)
        // More than 256 distinct values: two-byte codes.
        let wide = (0..<3000).map { "v\($0 % 700)" }
        let wideResult = try ColumnCodec.strings(wide)
        #expect(wideResult.encoding == .dictionary)
        #expect(wideResult.decoded == wide)
    }

    @Test("ids with numeric suffixes split into prefix and number, exactly")
    func prefixNumbers() throws {
        var rng = SplitMix64(seed: 17)
        let kinds = ["user-", "grp_", "", "🦤", "INC", "a\0b-", "e\u{301}-"]
        var values: [String] = []
        for _ in 0..<3000 {
            let kind = kinds[Int.random(in: 0..<kinds.count, using: &rng)]
            switch Int.random(in: 0..<30, using: &rng) {
            case 0: values.append(kind + "000" + String(Int.random(in: 0..<1000, using: &rng)))  // leading zeros
            case 1: values.append(kind + String(repeating: "9", count: 19))  // the most digits
            case 2: values.append(kind + "1" + String(repeating: "0", count: 25))  // more digits than a number holds
            case 3: values.append(kind)  // no digits
            case 4: values.append(String(UInt64.random(in: 0...UInt64.max, using: &rng)))  // only digits
            case 5: values.append("")
            default: values.append(kind + String(Int.random(in: 0..<10_000_000, using: &rng)))
            }
        }
        let result = try ColumnCodec.strings(values)
        #expect(result.encoding == .prefixNumber)
        #expect(result.decoded.count == values.count)
        for (decoded, value) in zip(result.decoded, values) {
            #expect(Array(decoded.utf8) == Array(value.utf8), "\(value)")
        }
        // Realistic resource ids: a few kinds, many numbers.
        let ids = (0..<4096).map { _ in ["use-", "gro-", "pol-"][Int.random(in: 0..<3, using: &rng)] + String(Int.random(in: 0..<200_000, using: &rng)) }
        let idResult = try ColumnCodec.strings(ids)
        #expect(idResult.encoding == .prefixNumber)
        #expect(idResult.decoded == ids)
        // Few distinct values stay a dictionary; numbers do not pay for text.
        #expect(try ColumnCodec.strings((0..<4096).map { "u-\($0 % 100)" }).encoding == .dictionary)
        #expect(try ColumnCodec.strings((0..<4096).map { _ in PartEvents.hex(8, &rng) }).encoding == .plain)
    }

    @Test("source IPs: canonical addresses as raw bytes, everything else as text")
    func addresses() throws {
        let canonical = (0..<2000).map { "10.\($0 % 7).\($0 % 256).\($0 % 13)" } + ["2001:db8::1", "::1", "::ffff:1.2.3.4", "0.0.0.0", "255.255.255.255"]
        let odd = ["010.0.0.1", "1.2.3", "1.2.3.4.5", "256.1.1.1", "2001:DB8::1", "2001:db8:0:0:0:0:0:1", "fe80::1%eth0", "", "not an ip", "1.2.3.4 ", "١.٢.٣.٤", "1.2.3.\0"]
        let values = canonical + odd + canonical.prefix(100)
        let result = try ColumnCodec.strings(values, column: .sourceIP)
        #expect(result.encoding == .ipDictionary)
        #expect(result.decoded.count == values.count)
        for (decoded, value) in zip(result.decoded, values) {
            #expect(Array(decoded.utf8) == Array(value.utf8), "\(value)")
        }
        #expect(IPEntry.parseIPv4(UnsafeRawBufferPointer(start: nil, count: 0)) == nil)
        for text in odd {
            let entry = withUTF8Bytes(text) { IPEntry($0) }
            guard case .text = entry else {
                Issue.record("\(text) should be stored as text")
                continue
            }
        }
        // Few distinct values, or not addresses: the ordinary encodings.
        #expect(try ColumnCodec.strings(Array(repeating: "10.0.0.1", count: 100), column: .sourceIP).decoded.allSatisfy { $0 == "10.0.0.1" })
    }

    // MARK: Event ids

    @Test("ids round trip: derived, explicit, empty, uppercase and other text")
    func eventIDs() throws {
        var rng = SplitMix64(seed: 7)
        var ids: [String] = []
        var received: [Int64] = []
        var seqs: [UInt64] = []
        for row in 0..<500 {
            let receivedAt: Int64 = [Int64.min, .max, 0, -1, 1_780_000_000_123_456_789][row % 5]
            let seq: UInt64 = [0, 1, .max, UInt64(row), 1 << 62][row % 5]
            received.append(receivedAt)
            seqs.append(seq)
            switch row % 6 {
            case 0, 1: ids.append(derivedEventID(receivedAt: receivedAt, seq: seq).description)
            case 2: ids.append(EventID(high: rng.next(), low: rng.next()).description)
            case 3: ids.append("")
            case 4: ids.append(EventID(high: rng.next(), low: rng.next()).description.uppercased())
            default: ids.append(["not-a-uuid", "🦤", "0190f3c2-5b1e-7c3a-9f00-1a2b3c4d5e6", "\0"][row % 4])
            }
        }
        let result = try ColumnCodec.eventIDs(ids, receivedAt: received, seq: seqs)
        #expect(result.decoded == ids)
        // Derived ids take no bytes and no bloom entry.
        let derivedOnly = (0..<1000).map { derivedEventID(receivedAt: 1_780_000_000_000_000_000 + Int64($0 / 100), seq: UInt64($0)).description }
        let derived = try ColumnCodec.eventIDs(derivedOnly, receivedAt: (0..<1000).map { 1_780_000_000_000_000_000 + Int64($0 / 100) }, seq: (0..<1000).map { UInt64($0) })
        #expect(derived.decoded == derivedOnly)
        #expect(derived.bytes == 1000 + 3)
        #expect(derived.hashes == 0)
    }

    @Test("derived ids have the UUIDv7 layout the engine assigns")
    func derivedIDs() {
        let id = derivedEventID(receivedAt: 1_700_000_000_123_456_789, seq: 42)
        #expect(id.high == (UInt64(1_700_000_000_123) << 16 | 0x7000))
        #expect(id.low == 0x8000_0000_0000_002A)
        #expect(id.description == "018bcfe5-687b-7000-8000-00000000002a")
        #expect(EventID(id.description) == id)
        #expect(CanonicalEventID.format(id) == id.description)
        #expect(CanonicalEventID.parse(id.description) == id)
        #expect(CanonicalEventID.parse(id.description.uppercased()) == nil)
        #expect(CanonicalEventID.parse("018bcfe5-687b-7000-8000-00000000002") == nil)
        #expect(CanonicalEventID.parse("018bcfe5x687b-7000-8000-00000000002a") == nil)
        #expect(CanonicalEventID.parse("018bcfe5-687b-7000-8000-00000000002g") == nil)
        // Seq's top two bits do not fit; negative times do not trap.
        #expect(derivedEventID(receivedAt: -1, seq: .max).low == 0xBFFF_FFFF_FFFF_FFFF)
    }

    @Test("the canonical text of an id, formatted eight digits at a time, is its description, every nibble from 0 to f in every place")
    func formattedIDs() {
        var ids = [EventID(high: 0, low: 0), EventID(high: .max, low: .max), EventID(high: 0x0123_4567_89AB_CDEF, low: 0xFEDC_BA98_7654_3210)]
        // Each digit value in each of the 32 places.
        for place in 0..<32 {
            for digit in UInt64(0)...15 {
                let shifted = digit << UInt64(60 - (place % 16) * 4)
                ids.append(place < 16 ? EventID(high: shifted, low: ~0) : EventID(high: ~0, low: shifted))
            }
        }
        var rng = SplitMix64(seed: 9)
        for _ in 0..<1_000 { ids.append(EventID(high: rng.next(), low: rng.next())) }
        for id in ids {
            #expect(CanonicalEventID.format(id) == id.description)
            #expect(CanonicalEventID.withFormatted(id) { Array($0) } == Array(id.description.utf8))
            #expect(CanonicalEventID.parse(CanonicalEventID.format(id)) == id)
        }
    }

    // MARK: Trace and request ids

    @Test("trace ids: lowercase hex as bytes, everything else as text, exactly")
    func correlationIDs() throws {
        var rng = SplitMix64(seed: 3)
        var values = PartEvents.awkwardTraceIDs
        for length in 1...33 { values.append(PartEvents.hex(length, &rng)) }
        values += ["ABCD", "abcd", "ABCD"]
        let result = try ColumnCodec.correlationIDs(values)
        #expect(result.decoded.count == values.count)
        for (decoded, value) in zip(result.decoded, values) {
            #expect(Array(decoded.utf8) == Array(value.utf8))
        }
        // "ABCD" (uppercase) is text; "abcd" is two raw bytes.
        let kinds = Array(result.raw[2..<(2 + values.count)])
        let upper = values.firstIndex(of: "ABCD")!
        let lower = values.firstIndex(of: "abcd")!
        #expect(kinds[upper] == ColumnEncoding.correlationText)
        #expect(kinds[lower] == 2)
        #expect(kinds[values.firstIndex(of: "")!] == ColumnEncoding.correlationEmpty)
        #expect(kinds[values.firstIndex(of: String(repeating: "f", count: 66))!] == ColumnEncoding.correlationText)
        // Random 128-bit ids: 16 raw bytes each, at the end of the chunk.
        let random = (0..<100).map { _ in PartEvents.hex(16, &rng) }
        let randomResult = try ColumnCodec.correlationIDs(random)
        #expect(randomResult.decoded == random)
        #expect(randomResult.tail == 1600)
        #expect(randomResult.raw.count == 2 + 100 + 1600)
    }

    @Test("trace ids round trip for arbitrary text")
    func correlationProperty() async throws {
        let pool = PartEvents.awkwardTraceIDs + PartEvents.awkwardStrings
        await propertyCheck(input: Gen.int(in: 0...(pool.count - 1)).array(of: 0...200)) { picks in
            let values = picks.map { pool[$0] }
            let result = try ColumnCodec.correlationIDs(values)
            #expect(result.decoded.count == values.count)
            #expect(zip(result.decoded, values).allSatisfy { sameUTF8($0, $1) })
        }
    }

    // MARK: Extras

    @Test("extras hold targets, changes and metadata and nothing else")
    func extras() throws {
        var rng = SplitMix64(seed: 11)
        var events: [AuditEvent] = [AuditEvent()]
        for _ in 0..<50 { events.append(PartEvents.random(&rng)) }
        let big = PartEvents.largeExtras()
        events.append(big)
        let decoded = try ColumnCodec.extras(events)
        for (partial, event) in zip(decoded, events) {
            #expect(partial.targets == event.targets)
            #expect(partial.changes == event.changes)
            #expect(partial.metadata == event.metadata)
            #expect(partial.tenant.isEmpty && partial.id.isEmpty && !partial.hasActor)
        }
        #expect(ColumnEncoding.extrasBytes(of: AuditEvent()).isEmpty)
        var onlyTenant = AuditEvent()
        onlyTenant.tenant = "acme"
        #expect(ColumnEncoding.extrasBytes(of: onlyTenant).isEmpty)
        // Deterministic: equal events give equal bytes whatever the map's order.
        #expect(ColumnEncoding.extrasBytes(of: big) == ColumnEncoding.extrasBytes(of: big))
    }

    // MARK: Robustness

    @Test("decoders never trap on damaged chunks: they throw or return values")
    func decodersSurviveDamage() throws {
        var rng = SplitMix64(seed: 99)
        var events: [AuditEvent] = []
        for _ in 0..<200 { events.append(PartEvents.random(&rng)) }
        let chunks: [(PartColumn, ChunkEncoding, [UInt8])] = {
            var result: [(PartColumn, ChunkEncoding, [UInt8])] = []
            var out = ByteWriter()
            var scratch = ColumnEncoding.TextScratch()
            var hashes: [UInt64] = []
            let times = events.map { $0.occurredAt.unixNanos }
            var encoding = times.withUnsafeBufferPointer { ColumnEncoding.encodeIntegers($0, into: &out) }
            result.append((.occurredAt, encoding, out.bytes))
            out.removeAll()
            let outcomes = events.map { Int32($0.outcome.rawValue) }
            encoding = outcomes.withUnsafeBufferPointer { ColumnEncoding.encodeEnums($0, into: &out) }
            result.append((.outcome, encoding, out.bytes))
            for (column, values) in [(PartColumn.actorID, events.map(\.actor.id)), (.sourceIP, events.map(\.sourceIp)), (.action, Array(repeating: "a.b", count: 200))] {
                out.removeAll()
                encoding = ByteColumn(values).withRows {
                    ColumnEncoding.encodeStrings($0, scratch: &scratch, addresses: column == .sourceIP, into: &out)
                }
                result.append((column, encoding, out.bytes))
            }
            out.removeAll()
            encoding = ByteColumn(events.map(\.traceID)).withRows { ColumnEncoding.encodeCorrelationIDs($0, into: &out, bloomHashes: &hashes).encoding }
            result.append((.traceID, encoding, out.bytes))
            out.removeAll()
            encoding = ByteColumn(events.map(\.id)).withRows { rows in
                events.map { $0.receivedAt.unixNanos }.withUnsafeBufferPointer { received in
                    events.map(\.seq).withUnsafeBufferPointer { seq in
                        ColumnEncoding.encodeEventIDs(rows, receivedAt: received, seq: seq, into: &out, bloomHashes: &hashes)
                    }
                }
            }
            result.append((.id, encoding, out.bytes))
            out.removeAll()
            encoding = ByteColumn(bytes: events.map(ColumnEncoding.extrasBytes(of:))).withRows { ColumnEncoding.encodePlainBytes($0, into: &out) }
            result.append((.extras, encoding, out.bytes))
            return result
        }()
        let received = events.map { $0.receivedAt.unixNanos }
        let seqs = events.map(\.seq)
        for (column, encoding, raw) in chunks {
            // Intact: decodes.
            _ = try ColumnCodec.decode(raw, column: column, encoding: encoding, rows: 200, receivedAt: received, seq: seqs)
            // Every truncation throws.
            for length in stride(from: 0, to: raw.count, by: max(1, raw.count / 97)) {
                #expect(throws: (any Error).self) {
                    try ColumnCodec.decode(Array(raw.prefix(length)), column: column, encoding: encoding, rows: 200, receivedAt: received, seq: seqs)
                }
            }
            // Random damage: any outcome but a trap.
            for _ in 0..<300 {
                var damaged = raw
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    damaged[Int.random(in: 0..<damaged.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
                _ = try? ColumnCodec.decode(damaged, column: column, encoding: encoding, rows: 200, receivedAt: received, seq: seqs)
            }
        }
    }

    // MARK: Bloom filters

    @Test("bloom filters have no false negatives and about 1% false positives")
    func bloom() async throws {
        await propertyCheck(count: 50, input: Gen.int(in: 0...3000), Gen.uint64()) { count, seed in
            var rng = SplitMix64(seed: seed)
            let values = (0..<count).map { _ in PartEvents.hex(Int.random(in: 1...20, using: &rng), &rng) }
            var filter = BloomFilter(expectedCount: count)
            for value in values { filter.insert(hash: XXHash64.hash(value)) }
            #expect(values.allSatisfy { filter.mayContain($0) })
            #expect(filter.bitCount % 8 == 0 && filter.bitCount >= 64)
        }
        var filter = BloomFilter(expectedCount: 10_000)
        for index in 0..<10_000 { filter.insert(hash: XXHash64.hash("member-\(index)")) }
        var positives = 0
        for index in 0..<100_000 where filter.mayContain("stranger-\(index)") { positives += 1 }
        let rate = Double(positives) / 100_000
        #expect(rate < 0.02, "false positive rate \(rate)")
        #expect(rate > 0.002, "false positive rate \(rate) is suspiciously low for the size")
    }
}
