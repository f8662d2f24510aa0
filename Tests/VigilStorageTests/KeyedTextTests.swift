import Testing
import VigilCore
import VigilProto
@testable import VigilStorage

@Suite("Text that follows from another column (keyed)")
struct KeyedTextTests {
    /// Events whose actor name and email follow from the actor id, and
    /// resource names from resource ids, except where `breakRow` gives one
    /// row of each a value of its own.
    static func events(count: Int, breakRow: Int? = nil) -> [AuditEvent] {
        (0..<count).map { index in
            var event = AuditEvent()
            event.tenant = "acme"
            event.seq = UInt64(index + 1)
            event.occurredAt = PartTestSupport.timestamp(1_780_000_000_000_000_000 + Int64(index) * 1_000_000)
            var actor = Vigil_V1_Actor()
            let user = index * 7 % 23
            actor.id = user == 0 ? "" : "u-\(user)"
            actor.name = user % 5 == 0 ? "" : "User \(user)"
            actor.email = "user\(user)@acme.example"
            var resource = Vigil_V1_Resource()
            resource.id = "doc-\(index % 11)"
            resource.name = "Document \(index % 11)"
            if index == breakRow {
                actor.name = "Someone Else"
                actor.email = "someone@acme.example"
                resource.name = "Renamed"
            }
            event.actor = actor
            event.resource = resource
            return event
        }
    }

    static func write(_ events: [AuditEvent], in directory: String) throws -> PartReader {
        let path = directory + "/keyed.vprt"
        _ = try PartWriter.write(events, to: path)
        return try PartReader(path: path)
    }

    static let keyedColumns: [PartColumn] = [.actorName, .actorEmail, .resourceName]

    @Test("names and emails that follow from ids are stored keyed and read back exactly, as events and as query columns")
    func keyedRoundTrip() throws {
        let events = Self.events(count: 500)
        try PartTestSupport.withDirectory { directory in
            let reader = try Self.write(events, in: directory)
            defer { reader.close() }
            let block = reader.blocks[0]
            for column in Self.keyedColumns {
                #expect(block.columns[column]?.encoding == .keyed, "\(column.name)")
            }
            #expect(try reader.events(block: 0) == events)
            // Only the keyed column asked for: its key column is read with it.
            let partial = try reader.readColumns(block: 0, [.actorEmail])
            #expect(partial.actorEmail == events.map(\.actor.email))
            // Query form, with the key read by readColumn itself and passed in.
            for column in Self.keyedColumns {
                let expected = events.map { column == .resourceName ? $0.resource.name : column == .actorName ? $0.actor.name : $0.actor.email }
                guard case .text(let alone) = try reader.readColumn(block: 0, column).0 else { Issue.record("not text"); continue }
                #expect(alone.allValues == expected)
                guard case .text(let key) = try reader.readColumn(block: 0, column.keyColumn!).0,
                    case .text(let given) = try reader.readColumn(block: 0, column, key: key).0
                else { Issue.record("not text"); continue }
                #expect(given.allValues == expected)
                // Dictionary form: one value per distinct key.
                #expect(given.values.count == Set(events.map { column == .resourceName ? $0.resource.id : $0.actor.id }).count)
            }
        }
    }

    @Test("a key with two values in a block keeps that column in its usual encoding")
    func notFunctional() throws {
        let events = Self.events(count: 500, breakRow: 250)
        try PartTestSupport.withDirectory { directory in
            let reader = try Self.write(events, in: directory)
            defer { reader.close() }
            for column in Self.keyedColumns {
                #expect(reader.blocks[0].columns[column]?.encoding != .keyed, "\(column.name)")
            }
            #expect(try reader.events(block: 0) == events)
        }
    }

    @Test("keys are compared by their bytes: canonically equivalent ids keep their own names")
    func keysByBytes() throws {
        var events = Self.events(count: 4)
        events[0].actor.id = "\u{E9}"  // é, precomposed
        events[0].actor.name = "precomposed"
        events[1].actor.id = "e\u{301}"  // é, decomposed
        events[1].actor.name = "decomposed"
        events[2].actor.id = "\u{E9}"
        events[2].actor.name = "precomposed"
        try PartTestSupport.withDirectory { directory in
            let reader = try Self.write(events, in: directory)
            defer { reader.close() }
            #expect(reader.blocks[0].columns[.actorName]?.encoding == .keyed)
            let read = try reader.events(block: 0)
            #expect(read.map(\.actor.name) == events.map(\.actor.name))
            #expect(zip(read, events).allSatisfy { sameUTF8($0.actor.id, $1.actor.id) })
            guard case .text(let names) = try reader.readColumn(block: 0, .actorName).0 else { Issue.record("not text"); return }
            #expect(names.allValues == events.map(\.actor.name))
        }
    }

    @Test("a keyed chunk whose entries do not match its key column, or cut short, is refused")
    func damage() throws {
        let keys = ["a", "b", "a", "c"]
        let values = ["A", "B", "A", "C"]
        var table = ByteStringTable()
        var out = ByteWriter()
        let encoded = ByteColumn(values).withRows { rows in
            ByteColumn(keys).withRows { keyRows in KeyedText.encode(rows, keys: keyRows, table: &table, into: &out) }
        }
        #expect(encoded)
        func decode(_ raw: [UInt8], keys: [String]?) throws -> [String]? {
            var block = DecodedBlock(rowCount: 4)
            block.actorID = keys
            let chunk = ChunkInfo(
                column: .actorName, encoding: .keyed, codec: .none, offset: 0, storedLength: raw.count, rawLength: raw.count, checksum: 0)
            try withBytes(raw) { (bytes) throws(PartFormatError) in
                try PartReader.decodeColumn(bytes, chunk: chunk, rows: 4, into: &block)
            }
            return block.actorName
        }
        #expect(try decode(out.bytes, keys: keys) == values)
        // Four distinct keys where the chunk has three entries.
        #expect(throws: PartFormatError.self) { try decode(out.bytes, keys: ["a", "b", "d", "c"]) }
        // Without the key column.
        #expect(throws: PartFormatError.self) { try decode(out.bytes, keys: nil) }
        for length in 0..<out.count {
            #expect(throws: PartFormatError.self) { try decode(Array(out.bytes.prefix(length)), keys: keys) }
        }
        #expect(throws: PartFormatError.self) { try decode(out.bytes + [0x41], keys: keys) }
        // A key with two values is not encoded at all.
        var other = ByteWriter()
        let mixed = ByteColumn(["A", "B", "X", "C"]).withRows { rows in
            ByteColumn(keys).withRows { keyRows in KeyedText.encode(rows, keys: keyRows, table: &table, into: &other) }
        }
        #expect(!mixed)
        #expect(other.count == 0)
    }
}
