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
            actor.type = user % 3 == 0 ? .apiToken : .user
            let verb = index % 4
            event.action = "document.\(["read", "update", "delete", "login"][verb])"
            event.category = [.read, .update, .delete, .login][verb]
            var resource = Vigil_V1_Resource()
            resource.type = verb == 3 ? "user" : "document"
            // Logins act on the actor themselves: the resource id is the actor's.
            resource.id = verb == 3 ? actor.id : "doc-\(index % 11)"
            resource.name = verb == 3 ? actor.email : "Document \(index % 11)"
            if index == breakRow {
                actor.name = "Someone Else"
                actor.email = "someone@acme.example"
                actor.type = .system
                event.category = .other
                resource.type = "folder"
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

    static let keyedColumns: [PartColumn] = [.actorName, .actorEmail, .actorType, .category, .resourceType, .resourceName]

    /// Each event's value of a text or enum column, as the query form holds it.
    static func expected(_ column: PartColumn, _ events: [AuditEvent]) -> ColumnValues {
        switch column {
        case .actorType: .enums(events.map { Int32($0.actor.type.rawValue) })
        case .category: .enums(events.map { Int32($0.category.rawValue) })
        default:
            .text(TextColumn(identity: events.map { event in
                switch column {
                case .actorName: event.actor.name
                case .actorEmail: event.actor.email
                case .actorID: event.actor.id
                case .resourceType: event.resource.type
                case .resourceID: event.resource.id
                default: event.resource.name
                }
            }))
        }
    }

    static func same(_ a: ColumnValues, _ b: ColumnValues) -> Bool {
        switch (a, b) {
        case (.enums(let x), .enums(let y)): x == y
        case (.text(let x), .text(let y)): x.allValues == y.allValues
        default: false
        }
    }

    @Test("names, emails, types and categories that follow from their keys are stored keyed, resource ids that are the actor's copied, and all read back exactly")
    func keyedRoundTrip() throws {
        let events = Self.events(count: 500)
        try PartTestSupport.withDirectory { directory in
            let reader = try Self.write(events, in: directory)
            defer { reader.close() }
            let block = reader.blocks[0]
            for column in Self.keyedColumns {
                #expect(block.columns[column]?.encoding == .keyed, "\(column.name)")
            }
            // A quarter of the resource ids are the actor's own.
            #expect(block.columns[.resourceID]?.encoding == .copied)
            #expect(try reader.events(block: 0) == events)
            // Only the keyed column asked for: its key column is read with it.
            let partial = try reader.readColumns(block: 0, [.actorEmail])
            #expect(partial.actorEmail == events.map(\.actor.email))
            // Only resourceName asked for: resourceID comes with it, and actorID with that.
            let chained = try reader.readColumns(block: 0, [.resourceName])
            #expect(chained.resourceName == events.map(\.resource.name))
            #expect(chained.resourceID == events.map(\.resource.id))
            // Query form, with the key read by readColumn itself and passed in.
            for column in Self.keyedColumns + [.resourceID] {
                let expected = Self.expected(column, events)
                #expect(Self.same(try reader.readColumn(block: 0, column).0, expected), "\(column.name)")
                guard case .text(let key) = try reader.readColumn(block: 0, column.keyColumn!).0 else { Issue.record("not text"); continue }
                let given = try reader.readColumn(block: 0, column, key: key).0
                #expect(Self.same(given, expected), "\(column.name)")
                if case .text(let text) = given, column != .resourceID {
                    // Dictionary form: one value per distinct key.
                    #expect(text.values.count == key.allValues.map(ExactString.init).reduce(into: Set()) { $0.insert($1) }.count)
                }
            }
            // Statistics are kept whatever the encoding.
            #expect(block.valueCounts(of: .resourceType).map { Set($0.values) } == ["document", "user"])
            #expect(block.enumCounts(of: .category)?.counts.reduce(0, +) == 500)
            #expect(block.enumCounts(of: .actorType).map { Set($0.values) } == [1, 3])
            #expect(block.mayContain(.resourceID, "doc-3") && block.mayContain(.resourceID, "u-7"))
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

    /// Event `index` of tenant "acme", one millisecond after the one before, by user `user`.
    static func userEvent(_ index: Int, user: Int) -> AuditEvent {
        var event = AuditEvent()
        event.tenant = "acme"
        event.seq = UInt64(index + 1)
        event.occurredAt = PartTestSupport.timestamp(1_780_000_000_000_000_000 + Int64(index) * 1_000_000)
        event.actor.id = "u-\(user)"
        return event
    }

    @Test("the text encodings a block tries are tried in the first block of every task; the task's other blocks take the one that won")
    func encodingSearchOncePerTask() throws {
        var rng = SplitMix64(seed: 21)
        let rowsPerBlock = 256
        // 24 blocks: each actor's usual address, except in block 4 and in blocks 8..<16 (one of three, whoever the actor).
        let events: [AuditEvent] = (0..<(24 * rowsPerBlock)).map { index in
            let user = Int.random(in: 0..<60, using: &rng)
            var event = Self.userEvent(index, user: user)
            let block = index / rowsPerBlock
            event.sourceIp = block == 4 || (8..<16).contains(block)
                ? "198.51.100.\(Int.random(in: 1...3, using: &rng))" : "192.0.2.\(user)"
            return event
        }
        try PartTestSupport.withDirectory { directory in
            func encodings(blocksPerTask: Int) throws -> [ChunkEncoding?] {
                var options = PartWriter.Options()
                options.rowsPerBlock = rowsPerBlock
                options.blocksPerTask = blocksPerTask
                let path = directory + "/search-\(blocksPerTask).vprt"
                _ = try PartWriter.write(events, to: path, options: options)
                let reader = try PartReader(path: path)
                defer { reader.close() }
                #expect(try reader.blocks.indices.flatMap { try reader.events(block: $0) } == events)
                return reader.blocks.map { $0.columns[.sourceIP]?.encoding }
            }
            // Tried in every block: the usual addresses lose wherever the addresses are not the actors'.
            let everyBlock = try encodings(blocksPerTask: 1)
            #expect(everyBlock[0] == .usual && everyBlock[16] == .usual)
            #expect(everyBlock[4] != .usual && everyBlock[8] != .usual)
            // Tried in blocks 0, 8 and 16: block 4 keeps block 0's choice, blocks 9..<16 block 8's.
            let perTask = try encodings(blocksPerTask: 8)
            #expect(perTask[0..<8].allSatisfy { $0 == .usual })
            #expect(perTask[8] == everyBlock[8])
            #expect(perTask[8..<16].allSatisfy { $0 == perTask[8] })
            #expect(perTask[16..<24].allSatisfy { $0 == .usual })
        }
    }

    @Test("a block that takes a keyed encoding where the others are tried does not pass an older choice to the blocks after it: one task writes what many do")
    func encodingSearchAfterKeyedBlock() throws {
        var rng = SplitMix64(seed: 22)
        let rowsPerBlock = 512
        // actorEmail follows actorID (keyed), except in blocks 0 and 9: there many
        // distinct addresses, written so that block 0 and block 9 store them differently.
        // Block 9's 260 long ones repeat further apart than zlib's window: a dictionary wins.
        let longAddresses = (0..<260).map { _ in
            (0..<12).map { _ in String(UInt64.random(in: 0...UInt64.max, using: &rng), radix: 16) }.joined() + "@x.example"
        }
        let events: [AuditEvent] = (0..<(10 * rowsPerBlock)).map { index in
            let user = Int.random(in: 0..<60, using: &rng)
            var event = Self.userEvent(index, user: user)
            switch index / rowsPerBlock {
            case 0: event.actor.email = "\(UInt64.random(in: 0...UInt64.max, using: &rng))@x.example"
            case 9: event.actor.email = longAddresses[index % longAddresses.count]
            default: event.actor.email = "user\(user)@x.example"
            }
            return event
        }
        try PartTestSupport.withDirectory { directory in
            func write(_ name: String, blocksPerTask: Int, parallel: Bool) throws -> (bytes: [UInt8], emails: [ChunkEncoding?]) {
                var options = PartWriter.Options()
                options.rowsPerBlock = rowsPerBlock
                options.blocksPerTask = blocksPerTask
                options.parallelTasks = parallel
                options.createdAt = 1_780_000_000_000_000_000
                let path = directory + "/" + name
                _ = try PartWriter.write(events, to: path, options: options)
                let reader = try PartReader(path: path)
                defer { reader.close() }
                #expect(try reader.blocks.indices.flatMap { try reader.events(block: $0) } == events)
                return (PartTestSupport.readFile(path), reader.blocks.map { $0.columns[.actorEmail]?.encoding })
            }
            // Tried in every block: plain for block 0's addresses, a dictionary for block 9's.
            let everyBlock = try write("every.vprt", blocksPerTask: 1, parallel: false)
            #expect(everyBlock.emails[0] == .plain && everyBlock.emails[9] == .dictionary)
            #expect(everyBlock.emails[1..<9].allSatisfy { $0 == .keyed })
            // Tried in blocks 0 and 8 (keyed there): block 9 tries them again, in one task as in a task of its own.
            let one = try write("one.vprt", blocksPerTask: 8, parallel: false)
            let tasks = try write("tasks.vprt", blocksPerTask: 8, parallel: true)
            #expect(one.emails == everyBlock.emails)
            #expect(tasks.emails == everyBlock.emails)
            #expect(one.bytes.elementsEqual(tasks.bytes), "one task and tasks of 8 blocks write the same part")
        }
    }

    @Test("source IPs that are mostly each actor's usual address are stored as usual addresses and exceptions, exactly")
    func usualAddresses() throws {
        var rng = SplitMix64(seed: 12)
        let events: [AuditEvent] = (0..<4_096).map { index in
            let user = Int.random(in: 0..<120, using: &rng)
            var event = Self.userEvent(index, user: user)
            let home: String
            switch user % 4 {
            case 0: home = "2001:db8::\(String(user, radix: 16))"
            case 1: home = "010.0.0.\(user)"  // not canonical: stored as text
            default: home = "192.0.2.\(user)"
            }
            event.sourceIp = Int.random(in: 0..<10, using: &rng) < 8 ? home : (user == 7 ? "" : "198.51.100.\(Int.random(in: 0..<250, using: &rng))")
            return event
        }
        try PartTestSupport.withDirectory { directory in
            let path = directory + "/usual.vprt"
            _ = try PartWriter.write(events, to: path)
            let reader = try PartReader(path: path)
            defer { reader.close() }
            #expect(reader.blocks[0].columns[.sourceIP]?.encoding == .usual)
            #expect(try reader.events(block: 0).map(\.sourceIp) == events.map(\.sourceIp))
            #expect(try reader.readColumns(block: 0, [.sourceIP]).sourceIP == events.map(\.sourceIp))
            guard case .text(let alone) = try reader.readColumn(block: 0, .sourceIP).0 else { Issue.record("not text"); return }
            #expect(alone.allValues == events.map(\.sourceIp))
            #expect(reader.blocks[0].mayContain(.sourceIP, "192.0.2.6") && reader.blocks[0].mayContain(.sourceIP, "010.0.0.5"))
        }
    }

    @Test("usual chunks with bad flags, counts or nested encodings are refused")
    func usualDamage() throws {
        let keys = ["u-1", "u-2", "u-1", "u-1"]
        let values = ["192.0.2.1", "192.0.2.2", "198.51.100.7", "192.0.2.1"]
        var out = ByteWriter()
        var keyTable = ByteStringTable(), valueTable = ByteStringTable()
        var scratch = ColumnEncoding.TextScratch()
        ByteColumn(values).withRows { rows in
            ByteColumn(keys).withRows { UsualText.encode(rows, keys: $0, keyTable: &keyTable, valueTable: &valueTable, scratch: &scratch, into: &out) }
        }
        func decode(_ raw: [UInt8]) throws -> [String] {
            try withBytes(raw) { (bytes) throws(PartFormatError) in
                var reader = ByteReader(bytes)
                _ = try ColumnEncoding.readHeader(&reader, column: .sourceIP, expected: .usual, rows: 4)
                return try UsualText.decode(&reader, rows: 4, keys: TextColumn(identity: keys)).allValues
            }
        }
        #expect(try decode(out.bytes) == values)
        // Header (2 bytes), entry count, two IPv4 entries of 5 bytes, then 4 flags.
        let flags = 3 + 10
        #expect(Array(out.bytes[flags..<flags + 4]) == [0, 0, 1, 0])
        var badFlag = out.bytes
        badFlag[flags] = 2
        #expect(throws: PartFormatError.self) { try decode(badFlag) }
        var moreOthers = out.bytes
        moreOthers[flags] = 1
        #expect(throws: PartFormatError.self) { try decode(moreOthers) }
        var nested = out.bytes
        nested[flags + 4] = ChunkEncoding.usual.rawValue
        #expect(throws: PartFormatError.self) { try decode(nested) }
        var fewerEntries = out.bytes
        fewerEntries[2] = 1
        #expect(throws: PartFormatError.self) { try decode(fewerEntries) }
        for length in 0..<out.count {
            #expect(throws: PartFormatError.self) { try decode(Array(out.bytes.prefix(length))) }
        }
        #expect(throws: PartFormatError.self) { try decode(out.bytes + [0]) }
    }

    @Test("keyed enum chunks out of Int32 range or of the wrong length are refused")
    func enumDamage() throws {
        let keys = TextColumn(identity: ["a", "b", "a"])
        func decode(_ body: [UInt8]) throws -> [Int32] {
            try withBytes(body) { (raw) throws(PartFormatError) in
                var reader = ByteReader(raw)
                return try KeyedText.decodeEnums(&reader, rows: 3, keys: keys)
            }
        }
        // Two entries, zigzag 2 (1) and 6 (3).
        #expect(try decode([2, 2, 6]) == [1, 3, 1])
        #expect(throws: PartFormatError.self) { try decode([3, 2, 6, 2]) }
        #expect(throws: PartFormatError.self) { try decode([2, 2]) }
        #expect(throws: PartFormatError.self) { try decode([2, 2, 6, 0]) }
        // 2^32 as a zigzag varint: outside Int32.
        #expect(throws: PartFormatError.self) { try decode([2, 2, 0x80, 0x80, 0x80, 0x80, 0x20]) }
    }

    @Test("copied chunks with bad flags or counts are refused; nothing equal to its key is not copied")
    func copiedDamage() throws {
        let keys = ["u-1", "u-2", "u-3", "u-4"]
        let values = ["u-1", "doc-9", "u-3", "doc-8"]
        var out = ByteWriter()
        #expect(ByteColumn(values).withRows { rows in ByteColumn(keys).withRows { CopiedText.encode(rows, keys: $0, into: &out) } })
        func decode(_ raw: [UInt8]) throws -> [String] {
            try withBytes(raw) { (bytes) throws(PartFormatError) in
                var reader = ByteReader(bytes)
                _ = try ColumnEncoding.readHeader(&reader, column: .resourceID, expected: .copied, rows: 4)
                return try CopiedText.decode(&reader, rows: 4, keys: TextColumn(identity: keys)).allValues
            }
        }
        #expect(try decode(out.bytes) == values)
        // Header: encoding and row count (2 bytes); then 4 flags; then the plain sub-chunk.
        var badFlag = out.bytes
        badFlag[2] = 2
        #expect(throws: PartFormatError.self) { try decode(badFlag) }
        var flippedFlag = out.bytes
        flippedFlag[3] = 1
        #expect(throws: PartFormatError.self) { try decode(flippedFlag) }
        var notPlain = out.bytes
        notPlain[6] = ChunkEncoding.dictionary.rawValue
        #expect(throws: PartFormatError.self) { try decode(notPlain) }
        for length in 0..<out.count {
            #expect(throws: PartFormatError.self) { try decode(Array(out.bytes.prefix(length))) }
        }
        #expect(throws: PartFormatError.self) { try decode(out.bytes + [0x41]) }
        var none = ByteWriter()
        #expect(!ByteColumn(["x", "y", "z", "w"]).withRows { rows in ByteColumn(keys).withRows { CopiedText.encode(rows, keys: $0, into: &none) } })
        #expect(none.count == 0)
    }
}
