/// Decoders that keep a chunk's bytes and index its rows instead of making
/// a value per row (see `StoredTextRows`). They check the chunk exactly as
/// the matching `decodeX` does. `reader` must read `owner` from its start, so
/// that reader positions are indexes into `owner`.
extension ColumnEncoding {
    /// A plain text chunk (after its header).
    static func decodePlainRows(_ reader: inout ByteReader, rows: Int, owner: [UInt8]) throws(PartFormatError) -> StoredTextRows {
        let (starts, lengths) = try plainRowSpans(&reader, rows: rows)
        return StoredTextRows(
            forms: [UInt8](repeating: StoredTextRows.Form.text.rawValue, count: rows), starts: starts, lengths: lengths, bytes: owner)
    }

    /// Where each row of a plain chunk lies; leaves the reader at the end.
    private static func plainRowSpans(_ reader: inout ByteReader, rows: Int) throws(PartFormatError) -> (starts: [Int32], lengths: [Int32]) {
        let lengths = try readPlainLengths(&reader, rows: rows)
        var starts = [Int32]()
        starts.reserveCapacity(rows)
        var position = reader.position
        for length in lengths {
            starts.append(Int32(position))
            position += length
        }
        reader.position = position
        return (starts, lengths.map { Int32($0) })
    }

    /// A trace or request id chunk (after its header); the layout of `decodeCorrelationIDs`.
    static func decodeCorrelationRows(_ reader: inout ByteReader, rows: Int, owner: [UInt8]) throws(PartFormatError) -> StoredTextRows {
        let kindsOffset = reader.offset
        let kinds = Array(try reader.bytes(rows, "id kinds"))
        var hexBytes = 0
        for row in 0..<rows {
            let kind = kinds[row]
            if kind >= 1 && kind <= UInt8(maxHexBytes) {
                hexBytes += Int(kind)
            } else if kind != correlationEmpty && kind != correlationText {
                throw PartFormatError("unknown id kind \(kind) of row \(row)", at: kindsOffset + row)
            }
        }
        guard hexBytes <= reader.remaining else {
            throw reader.error("hex ids need \(hexBytes) bytes but \(reader.remaining) remain")
        }
        let textEnd = reader.position + reader.remaining - hexBytes
        var text = ByteReader(UnsafeRawBufferPointer(rebasing: reader.bytes[..<textEnd]), base: reader.base)
        text.position = reader.position
        var hexPosition = textEnd
        var forms = [UInt8]()
        var starts = [Int32]()
        var lengths = [Int32]()
        forms.reserveCapacity(rows)
        starts.reserveCapacity(rows)
        lengths.reserveCapacity(rows)
        for row in 0..<rows {
            let kind = kinds[row]
            switch kind {
            case correlationEmpty:
                forms.append(StoredTextRows.Form.empty.rawValue)
                starts.append(0)
                lengths.append(0)
            case correlationText:
                let length = try text.count("id length of row \(row)", limit: text.remaining)
                forms.append(StoredTextRows.Form.text.rawValue)
                starts.append(Int32(text.position))
                lengths.append(Int32(length))
                _ = try text.bytes(length)
            default:
                forms.append(StoredTextRows.Form.hex.rawValue)
                starts.append(Int32(hexPosition))
                lengths.append(Int32(kind))
                hexPosition += Int(kind)
            }
        }
        try text.expectEnd("the last text id")
        reader.position = reader.bytes.count
        return StoredTextRows(forms: forms, starts: starts, lengths: lengths, bytes: owner)
    }

    /// An event id chunk (after its header); the layout of `decodeEventIDs`.
    static func decodeEventIDRows(
        _ reader: inout ByteReader, rows: Int, receivedAt: [Int64], seq: [UInt64], owner: [UInt8]
    ) throws(PartFormatError) -> StoredTextRows {
        precondition(receivedAt.count == rows && seq.count == rows, "ids decode after receivedAt and seq")
        let modesOffset = reader.offset
        let modes = Array(try reader.bytes(rows, "id modes"))
        var forms = [UInt8]()
        var starts = [Int32]()
        var lengths = [Int32]()
        forms.reserveCapacity(rows)
        starts.reserveCapacity(rows)
        lengths.reserveCapacity(rows)
        for row in 0..<rows {
            switch IDMode(rawValue: modes[row]) {
            case .derived:
                forms.append(StoredTextRows.Form.derivedID.rawValue)
                starts.append(0)
                lengths.append(0)
            case .explicit:
                forms.append(StoredTextRows.Form.explicitID.rawValue)
                starts.append(Int32(reader.position))
                lengths.append(16)
                _ = try reader.bytes(16, "id of row \(row)")
            case .empty:
                forms.append(StoredTextRows.Form.empty.rawValue)
                starts.append(0)
                lengths.append(0)
            case .text:
                let length = try reader.count("id length of row \(row)", limit: reader.remaining)
                forms.append(StoredTextRows.Form.text.rawValue)
                starts.append(Int32(reader.position))
                lengths.append(Int32(length))
                _ = try reader.bytes(length)
            case nil:
                throw PartFormatError("unknown id mode \(modes[row]) of row \(row)", at: modesOffset + row)
            }
        }
        try reader.expectEnd("the last id")
        return StoredTextRows(forms: forms, starts: starts, lengths: lengths, bytes: owner, receivedAt: receivedAt, seq: seq)
    }

    /// An extras chunk (after its header), rows checked to be well-formed
    /// protobuf only when parsed.
    static func decodeExtrasRows(
        _ reader: inout ByteReader, encoding: ChunkEncoding, rows: Int, owner: [UInt8]
    ) throws(PartFormatError) -> StoredExtras {
        if encoding == .extrasColumns {
            return StoredExtras(lists: try ExtrasColumns.decodeLists(&reader, rows: rows, owner: owner))
        }
        let (starts, lengths) = try plainRowSpans(&reader, rows: rows)
        return StoredExtras(starts: starts, lengths: lengths, bytes: owner)
    }
}
