import Foundation
import VigilCore

/// The `keyed` encoding of a text column whose value follows from another
/// column of the same row within the block: an actor's name and email from
/// its id, a resource's name from its id. The chunk stores one value per
/// distinct key, in the order the keys first appear, and no per-row codes at
/// all: on the bench's events that takes `actorName`, `actorEmail` and
/// `resourceName` from 5.8 to about 3 bytes per event together.
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
        let count = rows.count
        guard keys.count == count else { return false }
        table.reset(capacity: count)
        // For each distinct key, the first row that has it.
        var firstRows: [Int] = []
        for row in 0..<count {
            let rank = table.insert(keys[row])
            if rank == firstRows.count {
                firstRows.append(row)
                continue
            }
            let value = rows[row]
            let first = rows[firstRows[rank]]
            guard value.count == first.count, value.count == 0 || memcmp(value.baseAddress!, first.baseAddress!, value.count) == 0 else {
                return false
            }
        }
        ColumnEncoding.writeHeader(.keyed, rows: count, into: &out)
        out.varint(firstRows.count)
        for row in firstRows { out.varint(rows[row].count) }
        for row in firstRows { out.append(rows[row]) }
        return true
    }

    /// Decodes a keyed body (after the chunk header) in dictionary form: the
    /// values are the entries, each row's code is its key's rank.
    static func decode(_ reader: inout ByteReader, rows: Int, keys: TextColumn) throws(PartFormatError) -> TextColumn {
        guard keys.count == rows else {
            throw reader.error("the key column holds \(keys.count) rows, the block \(rows)")
        }
        let (ranks, distinct) = self.ranks(keys)
        let entries = try readEntries(&reader, expected: distinct)
        return TextColumn(values: entries, codes: .narrow(ranks))
    }

    /// Decodes a keyed body into one value per row.
    static func decode(_ reader: inout ByteReader, rows: Int, keys: [String]) throws(PartFormatError) -> [String] {
        try decode(&reader, rows: rows, keys: TextColumn(identity: keys)).allValues
    }

    /// Each row's key rank, in order of first appearance by UTF-8 bytes, and
    /// the number of distinct keys.
    static func ranks(_ keys: TextColumn) -> (ranks: [UInt16], distinct: Int) {
        var rankOf: [ExactString: UInt16] = [:]
        var ranks: [UInt16] = []
        ranks.reserveCapacity(keys.count)
        func rank(_ value: String) -> UInt16 {
            let key = ExactString(value)
            if let known = rankOf[key] { return known }
            let new = UInt16(truncatingIfNeeded: rankOf.count)
            rankOf[key] = new
            return new
        }
        if case .narrow(let codes) = keys.codes {
            // One lookup per dictionary entry, not per row.
            var rankOfCode = [Int32](repeating: -1, count: keys.values.count)
            for code in codes {
                let index = Int(code)
                if rankOfCode[index] < 0 { rankOfCode[index] = Int32(rank(keys.values[index])) }
                ranks.append(UInt16(truncatingIfNeeded: rankOfCode[index]))
            }
        } else {
            for row in 0..<keys.count { ranks.append(rank(keys.value(at: row))) }
        }
        return (ranks, rankOf.count)
    }

    private static func readEntries(_ reader: inout ByteReader, expected: Int) throws(PartFormatError) -> [String] {
        let countOffset = reader.offset
        let count = try reader.count("entry count", limit: ColumnEncoding.maxRows)
        guard count == expected else {
            throw PartFormatError("\(count) entries for \(expected) distinct keys", at: countOffset)
        }
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
