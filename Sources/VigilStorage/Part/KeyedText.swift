import Foundation
import VigilCore

/// The `keyed` encoding of a column whose value follows from another
/// column of the same row within the block: an actor's name, email and type
/// from its id, a resource's name from its id, the category and resource type
/// from the action. The chunk stores one value per distinct key, in the order
/// the keys first appear, and no per-row codes at all: on the bench's events
/// that takes `actorName`, `actorEmail` and `resourceName` from 5.8 to 2.6
/// bytes per event together.
///
/// Persisted in chunks of the columns with a `PartColumn.keyColumn`
/// (PartFormat, "keyed"). Keys are compared by their UTF-8 bytes. The writer
/// uses the encoding only when every row with the same key has the same
/// value; a reader needs the key column's values to decode it.
enum KeyedText {
    /// Writes the keyed chunk of `rows` with `keys` (the key column's rows),
    /// or writes nothing and returns false when some key has two values.
    static func encode(
        _ rows: ByteRows, keys: ByteRows, table: inout ByteStringTable, into out: inout ByteWriter
    ) -> Bool {
        guard let firstRows = firstRows(keys: keys, count: rows.count, table: &table, same: { a, b in
            memoryEqual(rows[a], rows[b])
        }) else { return false }
        ColumnEncoding.writeHeader(.keyed, rows: rows.count, into: &out)
        out.varint(firstRows.count)
        for row in firstRows { out.varint(rows[row].count) }
        out.markBoundary()
        for row in firstRows { out.append(rows[row]) }
        return true
    }

    /// The same for an enum column: one zigzag varint per distinct key.
    static func encode(
        enums values: UnsafeBufferPointer<Int32>, keys: ByteRows, table: inout ByteStringTable, into out: inout ByteWriter
    ) -> Bool {
        guard let firstRows = firstRows(keys: keys, count: values.count, table: &table, same: { values[$0] == values[$1] }) else {
            return false
        }
        ColumnEncoding.writeHeader(.keyed, rows: values.count, into: &out)
        out.varint(firstRows.count)
        for row in firstRows { out.zigzag(Int64(values[row])) }
        return true
    }

    /// For each distinct key in order of first appearance, the first row
    /// that has it; nil when a later row with that key differs from it.
    private static func firstRows(
        keys: ByteRows, count: Int, table: inout ByteStringTable, same: (Int, Int) -> Bool
    ) -> [Int]? {
        guard keys.count == count else { return nil }
        table.reset(capacity: count)
        var firstRows: [Int] = []
        for row in 0..<count {
            let rank = table.insert(keys[row])
            if rank == firstRows.count {
                firstRows.append(row)
            } else if !same(firstRows[rank], row) {
                return nil
            }
        }
        return firstRows
    }

    /// Decodes a keyed body (after the chunk header) in dictionary form: the
    /// values are the entries, each row's code is its key's rank.
    static func decode(_ reader: inout ByteReader, rows: Int, keys: TextColumn) throws(PartFormatError) -> TextColumn {
        let (ranks, count) = try keyRanks(&reader, rows: rows, keys: keys)
        let entries = try readEntries(&reader, count: count)
        return TextColumn(values: entries, codes: .narrow(ranks))
    }

    /// Decodes a keyed enum body (protobuf raw values) into one value per row.
    static func decodeEnums(_ reader: inout ByteReader, rows: Int, keys: TextColumn) throws(PartFormatError) -> [Int32] {
        let (ranks, count) = try keyRanks(&reader, rows: rows, keys: keys)
        var entries: [Int32] = []
        entries.reserveCapacity(count)
        for entry in 0..<count {
            let offset = reader.offset
            let value = try reader.zigzag("entry \(entry)")
            guard let narrow = Int32(exactly: value) else {
                throw PartFormatError("entry \(entry) is \(value), outside Int32", at: offset)
            }
            entries.append(narrow)
        }
        try reader.expectEnd("the last entry")
        return ranks.map { entries[Int($0)] }
    }

    /// Each row's key rank, in order of first appearance by UTF-8 bytes, and
    /// the number of distinct keys. Bytes are interned in a `ByteStringTable`
    /// (XXH64): hashing `ExactString`s in a Swift dictionary made cold queries
    /// twice as slow. A dictionary-coded key column is interned once per
    /// entry, or not at all when its codes are ranks already.
    static func ranks(_ keys: TextColumn) -> (ranks: [UInt16], distinct: Int) {
        // A dictionary chunk's codes already are ranks when its entries come
        // in order of first appearance, as the writer puts them (and its
        // entries are distinct): check the order, no hashing.
        if case .narrow(let codes) = keys.codes {
            var distinct = 0
            var inOrder = true
            for code in codes where Int(code) >= distinct {
                if Int(code) != distinct {
                    inOrder = false
                    break
                }
                distinct += 1
            }
            if inOrder { return (codes, distinct) }
        }
        var table = ByteStringTable()
        table.reset(capacity: min(keys.count, keys.values.count > 0 ? keys.values.count : keys.count))
        func intern(_ value: String) -> Int {
            var value = value
            return value.withUTF8 { table.insert(UnsafeRawBufferPointer($0)) }
        }
        var ranks: [UInt16] = []
        ranks.reserveCapacity(keys.count)
        switch keys.codes {
        case .narrow, .wide:
            var rankOfCode = [Int32](repeating: -1, count: keys.values.count)
            for row in 0..<keys.count {
                let index = keys.code(at: row)
                if rankOfCode[index] < 0 { rankOfCode[index] = Int32(intern(keys.values[index])) }
                ranks.append(UInt16(truncatingIfNeeded: rankOfCode[index]))
            }
        case .identity, .stored:
            for row in 0..<keys.count { ranks.append(UInt16(truncatingIfNeeded: intern(keys.value(at: row)))) }
        }
        return (ranks, table.count)
    }

    /// Each row's key rank (see `ranks`) and the chunk's entry count, read
    /// and checked against the key column: one entry per distinct key.
    static func keyRanks(
        _ reader: inout ByteReader, rows: Int, keys: TextColumn
    ) throws(PartFormatError) -> (ranks: [UInt16], entries: Int) {
        guard keys.count == rows else {
            throw reader.error("the key column holds \(keys.count) rows, the block \(rows)")
        }
        let (ranks, distinct) = self.ranks(keys)
        let countOffset = reader.offset
        let count = try reader.count("entry count", limit: ColumnEncoding.maxRows)
        guard count == distinct else {
            throw PartFormatError("\(count) entries for \(distinct) distinct keys", at: countOffset)
        }
        return (ranks, count)
    }

    private static func readEntries(_ reader: inout ByteReader, count: Int) throws(PartFormatError) -> [String] {
        var lengths: [Int] = []
        lengths.reserveCapacity(count)
        for entry in 0..<count {
            lengths.append(try reader.count("length of entry \(entry)", limit: reader.remaining))
        }
        var entries: [String] = []
        entries.reserveCapacity(count)
        for (entry, length) in lengths.enumerated() {
            entries.append(String(decoding: try reader.bytes(length, "entry \(entry)"), as: UTF8.self))
        }
        try reader.expectEnd("the last entry")
        return entries
    }
}

extension TextColumn {
    /// Every row's value.
    var allValues: [String] {
        if case .identity = codes { return values }
        return (0..<count).map { value(at: $0) }
    }
}
