import Testing
import VigilCore
import VigilProto
@testable import VigilStorage

@Suite("Extras stored as lists (extrasColumns)")
struct ExtrasColumnsTests {
    /// Encodes rows of extras bytes with the writer's choice, then decodes
    /// them through the reader's dispatch both ways (events and stored rows).
    static func roundTrip(
        _ rows: [[UInt8]], decodeEvents: Bool = true
    ) throws -> (encoding: ChunkEncoding, raw: [UInt8], events: [AuditEvent], stored: [[UInt8]]) {
        var out = ByteWriter()
        let encoding: ChunkEncoding = ByteColumn(bytes: rows).withRows { rows in
            ExtrasColumns.encode(rows, into: &out) ? .extrasColumns : ColumnEncoding.encodePlainBytes(rows, into: &out)
        }
        // (Rows of invalid UTF-8 decode as stored rows only: swift-protobuf refuses them.)
        let events = decodeEvents ? try ColumnCodec.decode(out.bytes, column: .extras, encoding: encoding, rows: rows.count).extras! : []
        if decodeEvents {
            // As a merge reads them: each row's bytes as stored, the bytes each event gives back.
            let asBytes = try ColumnCodec.decode(out.bytes, column: .extras, encoding: encoding, rows: rows.count, extrasAsBytes: true)
            #expect(asBytes.extras == nil)
            #expect(asBytes.extrasBytes == events.map(ColumnEncoding.extrasBytes(of:)))
            if encoding == .extrasColumns { #expect(asBytes.extrasBytes == rows) }
        }
        let stored = try withBytes(out.bytes) { (raw) throws(PartFormatError) -> StoredExtras in
            var reader = ByteReader(raw)
            _ = try ColumnEncoding.readHeader(&reader, column: .extras, expected: encoding, rows: rows.count)
            return try ColumnEncoding.decodeExtrasRows(&reader, encoding: encoding, rows: rows.count, owner: out.bytes)
        }
        #expect(stored.count == rows.count)
        let storedRows = (0..<rows.count).map { stored.bytes(at: $0) }
        return (encoding, out.bytes, events, storedRows)
    }

    static func awkwardEvents() -> [AuditEvent] {
        var rng = SplitMix64(seed: 2026)
        var events: [AuditEvent] = [AuditEvent()]
        for _ in 0..<300 { events.append(PartEvents.random(&rng)) }
        let big = PartEvents.largeExtras()
        events.append(big)
        var sparse = AuditEvent()
        var target = Vigil_V1_Resource()
        target.id = "only-an-id"
        var emptyTarget = Vigil_V1_Resource()
        emptyTarget.name = ""
        sparse.targets = [target, emptyTarget]
        var change = Vigil_V1_Change()
        change.new = "only new"
        sparse.changes = [change, Vigil_V1_Change()]
        sparse.metadata = ["": "empty key", "empty value": "", "é": "non-ASCII key", "z": "last"]
        events.append(sparse)
        var labelled = AuditEvent()
        labelled.metadata = ["region": "eu-west-1", "env": "prod"]
        events += Array(repeating: labelled, count: 5)
        return events
    }

    @Test("targets, changes and metadata come back byte for byte, as events and as stored rows")
    func roundTrips() throws {
        let events = Self.awkwardEvents()
        let rows = events.map(ColumnEncoding.extrasBytes(of:))
        let result = try Self.roundTrip(rows)
        #expect(result.encoding == .extrasColumns)
        #expect(result.stored.count == rows.count)
        #expect(zip(result.stored, rows).filter { $0 != $1 }.isEmpty, "rows rebuilt differently")
        for (partial, event) in zip(result.events, events) {
            #expect(partial.targets == event.targets)
            #expect(partial.changes == event.changes)
            #expect(partial.metadata == event.metadata)
        }
    }

    @Test("the lists are smaller than the rows after compression when values repeat")
    func smallerCompressed() throws {
        var rng = SplitMix64(seed: 7)
        let regions = ["us-east-1", "eu-west-1", "ap-southeast-2"]
        let events = (0..<4096).map { _ in
            var event = AuditEvent()
            event.metadata["region"] = regions[Int.random(in: 0..<3, using: &rng)]
            event.metadata["latency_ms"] = String(Int.random(in: 1...300, using: &rng))
            if Int.random(in: 0..<4, using: &rng) == 0 {
                event.metadata["session_id"] = PartEvents.hex(8, &rng)
            }
            return event
        }
        let rows = events.map(ColumnEncoding.extrasBytes(of:))
        var lists = ByteWriter()
        var plain = ByteWriter()
        let columnar = ByteColumn(bytes: rows).withRows { ExtrasColumns.encode($0, into: &lists) }
        _ = ByteColumn(bytes: rows).withRows { ColumnEncoding.encodePlainBytes($0, into: &plain) }
        #expect(columnar)
        let deflater = try ZlibDeflater()
        func compressed(_ bytes: [UInt8]) -> Int {
            var output: [UInt8] = []
            bytes.withUnsafeBytes { deflater.compress($0, level: 6, strategy: 0, into: &output) }
            return output.count
        }
        let listsCompressed = compressed(lists.bytes)
        let plainCompressed = compressed(plain.bytes)
        #expect(listsCompressed * 10 < plainCompressed * 8, "lists \(listsCompressed) bytes, plain \(plainCompressed)")
    }

    // MARK: Rows left plain

    /// A map entry (field 18) with the given fields 1 and 2.
    static func entry(key: [UInt8]?, value: [UInt8]?) -> [UInt8] {
        var payload: [UInt8] = []
        if let key { payload += [0x0A, UInt8(key.count)] + key }
        if let value { payload += [0x12, UInt8(value.count)] + value }
        return [0x92, 0x01, UInt8(payload.count)] + payload
    }

    @Test(
        "rows that rebuilding would change are stored plain, unchanged",
        arguments: [
            ("entries out of key order", entry(key: Array("b".utf8), value: [0x31]) + entry(key: Array("a".utf8), value: [0x32])),
            ("an entry without its value field", entry(key: Array("k".utf8), value: nil)),
            ("an entry without its key field", entry(key: nil, value: Array("v".utf8))),
            ("invalid UTF-8 in a value", entry(key: Array("k".utf8), value: [0xC3, 0x28])),
            ("two entries with one key", entry(key: Array("k".utf8), value: [0x31]) + entry(key: Array("k".utf8), value: [0x32])),
            ("metadata before a change", entry(key: Array("k".utf8), value: [0x31]) + [0x8A, 0x01, 0x03, 0x0A, 0x01, 0x66]),
            ("an unknown field in a change", [0x8A, 0x01, 0x05, 0x0A, 0x01, 0x66, 0x20, 0x01]),
            ("an unknown top-level field", [0x08, 0x01]),
        ] as [(String, [UInt8])])
    func leftPlain(_ label: String, _ row: [UInt8]) throws {
        var out = ByteWriter()
        let rows = [ColumnEncoding.extrasBytes(of: Self.awkwardEvents()[1]), row, []]
        #expect(!ByteColumn(bytes: rows).withRows { ExtrasColumns.encode($0, into: &out) }, "\(label)")
        #expect(out.count == 0)
        let result = try Self.roundTrip(rows, decodeEvents: !label.contains("UTF-8"))
        #expect(result.encoding == .plain)
        #expect(result.stored == rows)
    }

    @Test("a change with unknown fields (as swift-protobuf keeps them) is stored plain")
    func unknownFieldsInAChange() throws {
        // Field 1 "f", then field 4 (unknown) as a varint.
        let change = try Vigil_V1_Change(serializedBytes: [0x0A, 0x01, 0x66, 0x20, 0x05] as [UInt8])
        #expect(!change.unknownFields.data.isEmpty)
        var event = AuditEvent()
        event.changes = [change]
        let result = try Self.roundTrip([ColumnEncoding.extrasBytes(of: event)])
        #expect(result.encoding == .plain)
        #expect(result.stored == [ColumnEncoding.extrasBytes(of: event)])
    }

    @Test("more metadata entries than a chunk holds rows are stored plain")
    func listTooLong() throws {
        var event = AuditEvent()
        event.metadata = Dictionary(uniqueKeysWithValues: (0..<100).map { ("k\($0)", "v") })
        let rows = Array(repeating: ColumnEncoding.extrasBytes(of: event), count: ColumnEncoding.maxRows / 100 + 1)
        var out = ByteWriter()
        #expect(!ByteColumn(bytes: rows).withRows { ExtrasColumns.encode($0, into: &out) })
        let fits = Array(rows.prefix(ColumnEncoding.maxRows / 100))
        #expect(ByteColumn(bytes: fits).withRows { ExtrasColumns.encode($0, into: &out) })
    }

    // MARK: Damage

    @Test("counts that disagree with the lists, and damaged lists, are refused")
    func damage() throws {
        let events = Self.awkwardEvents()
        let rows = events.map(ColumnEncoding.extrasBytes(of:))
        let good = try Self.roundTrip(rows)
        #expect(good.encoding == .extrasColumns)
        let count = rows.count
        func decode(_ raw: [UInt8]) throws {
            _ = try ColumnCodec.decode(raw, column: .extras, encoding: .extrasColumns, rows: count)
        }
        try decode(good.raw)
        // The header is 1 byte of encoding and a 2-byte row count; then the
        // first row's target count: one more target than the list holds.
        var extraTarget = good.raw
        #expect(extraTarget[3] == 0)
        extraTarget[3] = 1
        #expect(throws: PartFormatError.self) { try decode(extraTarget) }
        // Every truncation throws.
        for length in stride(from: 0, to: good.raw.count, by: max(1, good.raw.count / 151)) {
            #expect(throws: PartFormatError.self) { try decode(Array(good.raw.prefix(length))) }
        }
        // Bytes after the last list.
        #expect(throws: PartFormatError.self) { try decode(good.raw + [0]) }
        // Random damage: any outcome but a trap.
        var rng = SplitMix64(seed: 5)
        for _ in 0..<500 {
            var damaged = good.raw
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                damaged[Int.random(in: 0..<damaged.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            _ = try? decode(damaged)
        }
    }

    @Test("a stored row that is not a protobuf message is refused alike, read as events or as bytes")
    func badPlainRowRefusedBothWays() throws {
        let good = ColumnEncoding.extrasBytes(of: Self.awkwardEvents()[1])
        var out = ByteWriter()
        let rows: [[UInt8]] = [good, [0x0A, 0x05, 0x01]]  // the second: a length past its end
        let encoding = ByteColumn(bytes: rows).withRows { ColumnEncoding.encodePlainBytes($0, into: &out) }
        for asBytes in [false, true] {
            #expect(throws: PartFormatError.self) {
                _ = try ColumnCodec.decode(out.bytes, column: .extras, encoding: encoding, rows: rows.count, extrasAsBytes: asBytes)
            }
        }
    }
}

@Suite("Compression with block boundaries")
struct ZlibBoundaryTests {
    @Test("a stream cut into deflate blocks at any boundaries inflates to the same bytes, and helps mixed content")
    func boundariesRoundTrip() throws {
        var rng = SplitMix64(seed: 3)
        // Text, then binary codes, then text again.
        var input = Array((0..<3_000).flatMap { "region-\($0 % 7);".utf8 })
        let textEnd = input.count
        input += (0..<8_000).map { _ in UInt8.random(in: 0...15, using: &rng) }
        let codesEnd = input.count
        input += Array((0..<2_000).flatMap { "user\($0 % 50)@example.com".utf8 })
        let deflater = try ZlibDeflater()
        let inflater = ZlibInflater()
        func roundTrip(_ boundaries: [Int]) -> Int {
            var output: [UInt8] = []
            input.withUnsafeBytes { deflater.compress($0, level: 6, strategy: 0, boundaries: boundaries, into: &output) }
            var inflated = [UInt8](repeating: 0, count: input.count)
            let problem = output.withUnsafeBytes { compressed in
                inflated.withUnsafeMutableBytes { inflater.decompress(compressed, into: $0) }
            }
            #expect(problem == nil)
            #expect(inflated == input, "boundaries \(boundaries)")
            return output.count
        }
        let plain = roundTrip([])
        let split = roundTrip([textEnd, codesEnd])
        _ = roundTrip([0, 1, 1, textEnd, textEnd, codesEnd, input.count - 1, input.count, input.count + 10])
        _ = roundTrip(Array(stride(from: 100, to: input.count, by: 997)))
        #expect(split < plain, "split \(split) bytes, whole \(plain)")
    }
}
