import Foundation

/// The `copied` encoding of a text column that often holds the same value
/// as its key column in the same row: a resource id that is the actor's own
/// id (a login, a logout, a token refresh: a third of the bench's events).
/// A flag per row says "the key column's value"; the other rows' values
/// follow, plain. On the bench's events `resourceID` takes 3.7 bytes per
/// event this way instead of 4.7.
///
/// Persisted in chunks of `resourceID` (PartFormat, "copied"), keyed to
/// `actorID`. The writer keeps this encoding only when it compresses smaller
/// than the column's usual ones.
enum CopiedText {
    /// Writes the copied chunk of `rows` with `keys` (the key column's rows),
    /// or writes nothing and returns false when no row equals its key.
    static func encode(_ rows: ByteRows, keys: ByteRows, into out: inout ByteWriter) -> Bool {
        let count = rows.count
        guard keys.count == count else { return false }
        var flags = [UInt8](repeating: 0, count: count)
        var copied = 0
        var ownLengths = 0
        for row in 0..<count {
            let value = rows[row], key = keys[row]
            if memoryEqual(value, key) {
                flags[row] = 1
                copied += 1
            } else {
                ownLengths += Varint.size(UInt64(value.count))
            }
        }
        guard copied > 0 else { return false }
        ColumnEncoding.writeHeader(.copied, rows: count, into: &out)
        out.append(flags)
        out.markBoundary()
        // The rows of their own, as a plain text sub-chunk.
        ColumnEncoding.writeHeader(.plain, rows: count - copied, into: &out)
        out.appendSpace(ownLengths) { pointer in
            var position = 0
            for row in 0..<count where flags[row] == 0 {
                position += Varint.write(UInt64(rows[row].count), to: pointer + position)
            }
        }
        out.markBoundary()
        for row in 0..<count where flags[row] == 0 { out.append(rows[row]) }
        return true
    }

    /// Decodes a copied body (after the chunk header): one value per row.
    static func decode(_ reader: inout ByteReader, rows: Int, keys: TextColumn) throws(PartFormatError) -> TextColumn {
        guard keys.count == rows else {
            throw reader.error("the key column holds \(keys.count) rows, the block \(rows)")
        }
        let flagsOffset = reader.offset
        let flags = try reader.bytes(rows, "copy flags")
        var own = 0
        for (row, flag) in flags.enumerated() {
            guard flag <= 1 else { throw PartFormatError("copy flag \(flag) of row \(row) is neither 0 nor 1", at: flagsOffset + row) }
            if flag == 0 { own += 1 }
        }
        let encodingOffset = reader.offset
        let encoding = try reader.u8("encoding of the rows of their own")
        guard encoding == ChunkEncoding.plain.rawValue else {
            throw PartFormatError("the rows of their own have encoding \(encoding), not plain", at: encodingOffset)
        }
        let countOffset = reader.offset
        let count = try reader.varint("count of the rows of their own")
        guard count == UInt64(own) else {
            throw PartFormatError("\(count) rows of their own where \(own) flags say so", at: countOffset)
        }
        let values = try ColumnEncoding.decodeText(&reader, encoding: .plain, rows: own).values
        if !keys.isPerRow {
            // Dictionary form over the key's entries and then the own values
            // (a value may appear in both: filters and groups go by bytes).
            var codes: [UInt32] = []
            codes.reserveCapacity(rows)
            var next = UInt32(keys.values.count)
            for row in 0..<rows {
                if flags[row] == 1 {
                    codes.append(UInt32(keys.code(at: row)))
                } else {
                    codes.append(next)
                    next += 1
                }
            }
            return TextColumn(values: keys.values + values, codes: .wide(codes))
        }
        var result: [String] = []
        result.reserveCapacity(rows)
        var next = 0
        for row in 0..<rows {
            if flags[row] == 1 {
                result.append(keys.value(at: row))
            } else {
                result.append(values[next])
                next += 1
            }
        }
        return TextColumn(identity: result)
    }
}
