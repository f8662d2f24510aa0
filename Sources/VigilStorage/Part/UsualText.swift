/// The `usual` encoding of a text column whose value is mostly, but not
/// always, the same for a given key: the source IP of an actor (people work
/// from one address most of the time). The chunk stores each distinct key's
/// usual value once, a flag per row, and the values of the rows that differ.
/// On the bench's events `sourceIP` takes 2.4 bytes per event this way
/// instead of 3.5.
///
/// Persisted in chunks of `sourceIP` keyed to `actorID` (PartFormat,
/// "usual"). Values are stored as `ipDictionary` entries (canonical
/// addresses as raw bytes). The writer keeps this encoding only when it
/// compresses smaller than the column's usual ones.
enum UsualText {
    /// Writes the usual chunk of `rows` with `keys` (the key column's rows).
    static func encode(
        _ rows: ByteRows, keys: ByteRows, keyTable: inout ByteStringTable, valueTable: inout ByteStringTable,
        scratch: inout ColumnEncoding.TextScratch, into out: inout ByteWriter
    ) {
        let count = rows.count
        precondition(keys.count == count, "a key per row")
        keyTable.reset(capacity: count)
        valueTable.reset(capacity: count)
        var keyRanks: [Int] = []
        var valueCodes: [Int] = []
        keyRanks.reserveCapacity(count)
        valueCodes.reserveCapacity(count)
        for row in 0..<count {
            keyRanks.append(keyTable.insert(keys[row]))
            valueCodes.append(valueTable.insert(rows[row]))
        }
        // Each key's most frequent value (the first to reach the highest count).
        var pairCounts: [Int: Int] = [:]
        var usual = [Int](repeating: -1, count: keyTable.count)
        var usualCount = [Int](repeating: 0, count: keyTable.count)
        for row in 0..<count {
            let rank = keyRanks[row], code = valueCodes[row]
            let pair = rank << 20 | code
            let seen = pairCounts[pair, default: 0] + 1
            pairCounts[pair] = seen
            if seen > usualCount[rank] {
                usualCount[rank] = seen
                usual[rank] = code
            }
        }
        ColumnEncoding.writeHeader(.usual, rows: count, into: &out)
        out.varint(keyTable.count)
        for rank in 0..<keyTable.count {
            valueTable.withValue(usual[rank]) { IPEntry($0).write($0, into: &out) }
        }
        out.markBoundary()
        var others = ByteColumn()
        for row in 0..<count {
            if valueCodes[row] == usual[keyRanks[row]] {
                out.u8(0)
            } else {
                out.u8(1)
                others.append(raw: rows[row])
            }
        }
        var sub = ByteWriter()
        _ = others.withRows { ColumnEncoding.encodeStrings($0, scratch: &scratch, addresses: true, into: &sub) }
        out.append(section: sub)
    }

    /// Decodes a usual body (after the chunk header): one value per row.
    static func decode(_ reader: inout ByteReader, rows: Int, keys: TextColumn) throws(PartFormatError) -> TextColumn {
        let (ranks, entryCount) = try KeyedText.keyRanks(&reader, rows: rows, keys: keys)
        var entries: [String] = []
        entries.reserveCapacity(entryCount)
        for entry in 0..<entryCount { entries.append(try IPEntry.read(&reader, entry: entry)) }
        let flagsOffset = reader.offset
        let flags = try reader.bytes(rows, "usual flags")
        var others = 0
        for (row, flag) in flags.enumerated() {
            guard flag <= 1 else { throw PartFormatError("usual flag \(flag) of row \(row) is neither 0 nor 1", at: flagsOffset + row) }
            others += Int(flag)
        }
        let encodingOffset = reader.offset
        let raw = try reader.u8("encoding of the other values")
        guard let encoding = ChunkEncoding(rawValue: raw), PartColumn.sourceIP.allowedEncodings.contains(encoding), encoding != .usual else {
            throw PartFormatError("the other values have encoding \(raw)", at: encodingOffset)
        }
        let subCountOffset = reader.offset
        let subCount = try reader.varint("count of the other values")
        guard subCount == UInt64(others) else {
            throw PartFormatError("\(subCount) other values where \(others) flags say so", at: subCountOffset)
        }
        let values = try ColumnEncoding.decodeText(&reader, encoding: encoding, rows: others).allValues
        // Dictionary form: the usual addresses, then the others.
        var codes: [UInt32] = []
        codes.reserveCapacity(rows)
        var next = UInt32(entries.count)
        for row in 0..<rows {
            if flags[row] == 0 {
                codes.append(UInt32(ranks[row]))
            } else {
                codes.append(next)
                next += 1
            }
        }
        return TextColumn(values: entries + values, codes: .wide(codes))
    }
}
