import VigilCore

/// The `extrasColumns` encoding of the extras column: the rows' targets,
/// changes and metadata taken apart into lists of strings, each stored as a
/// text sub-chunk, so that like values sit together (every `region` value in
/// one list, every change's field name in another) instead of inside each
/// row's protobuf bytes. On the bench's events that makes the compressed
/// column about 35% smaller than `plain`.
///
/// Persisted inside chunks of column 22 (PartFormat, "extrasColumns"). A row
/// is rebuilt as the canonical bytes `ColumnEncoding.extrasBytes(of:)` writes:
/// targets (field 10), then changes (field 17), each with its non-empty
/// strings 1, 2 and 3, then metadata entries (field 18) with key and value
/// always written. The writer uses this encoding only when rebuilding gives
/// every row's bytes back exactly; anything else (unknown fields, entries out
/// of key order, invalid UTF-8, lists longer than a chunk allows) is stored
/// `plain`.
enum ExtrasColumns {
    /// The lists, in stored order. After them come the metadata values, one
    /// list per distinct key (in order of first appearance in `metadataKey`),
    /// each in row order.
    enum List: Int, CaseIterable {
        case targetType, targetID, targetName
        case changeField, changeOld, changeNew
        case metadataKey

        /// The first list of each kind of three-string message: targets, then changes.
        static let messageLists: [List] = [.targetType, .changeField]
    }

    /// Encodes `rows` (each an extras value) as `extrasColumns`, or writes
    /// nothing and returns false when some row would not round trip.
    /// `canonical`: the rows are known to round trip (they were written in
    /// this form, from checked values), so that their strings are not
    /// checked for UTF-8 nor each row rebuilt and compared (under a live
    /// agent, `perf`: this function's share of the server's CPU went from
    /// 6.2% to 4.4%).
    static func encode(_ rows: ByteRows, canonical: Bool = false, into out: inout ByteWriter) -> Bool {
        let count = rows.count
        var targetCounts: [Int] = []
        var changeCounts: [Int] = []
        var metadataCounts: [Int] = []
        targetCounts.reserveCapacity(count)
        changeCounts.reserveCapacity(count)
        metadataCounts.reserveCapacity(count)
        var lists = [ByteColumn](repeating: ByteColumn(), count: List.allCases.count)
        // Metadata values by key group (group = the key's first-appearance rank).
        var keys = ByteStringTable()
        keys.reset(capacity: 64)
        var valuesByKey: [ByteColumn] = []
        var rebuilt = CanonicalEvent.Writer()
        var layout = ExtrasLayout()

        for row in 0..<count {
            let raw = rows[row]
            guard !raw.isEmpty else {
                targetCounts.append(0)
                changeCounts.append(0)
                metadataCounts.append(0)
                continue
            }
            let bytes = raw.assumingMemoryBound(to: UInt8.self)
            guard layout.parse(bytes, canonical: canonical) else { return false }
            rebuilt.out.removeAll(keepingCapacity: true)
            for first in List.messageLists {
                for range in first == .targetType ? layout.targets : layout.changes {
                    let none = range.lowerBound..<range.lowerBound
                    var strings = (none, none, none)
                    var reader = ProtobufFieldReader(extras: bytes, range: range)
                    while !reader.atEnd {
                        // ExtrasLayout checked: fields 1...3, increasing, non-empty.
                        guard let (number, value) = reader.lengthDelimitedField() else { return false }
                        switch number {
                        case 1: strings.0 = value
                        case 2: strings.1 = value
                        default: strings.2 = value
                        }
                    }
                    lists[first.rawValue].append(slice: bytes, strings.0)
                    lists[first.rawValue + 1].append(slice: bytes, strings.1)
                    lists[first.rawValue + 2].append(slice: bytes, strings.2)
                    if canonical { continue }
                    guard isValidUTF8(bytes, strings.0), isValidUTF8(bytes, strings.1), isValidUTF8(bytes, strings.2) else {
                        return false
                    }
                    rebuilt.triple(first == .targetType ? 10 : 17, bytes, strings.0, strings.1, strings.2)
                }
            }
            for (key, value) in layout.metadata {
                lists[List.metadataKey.rawValue].append(slice: bytes, key)
                let group = keys.insert(UnsafeRawBufferPointer(rebasing: raw[key]))
                if group == valuesByKey.count { valuesByKey.append(ByteColumn()) }
                valuesByKey[group].append(slice: bytes, value)
                if canonical { continue }
                guard isValidUTF8(bytes, key), isValidUTF8(bytes, value) else { return false }
                rebuilt.entry(bytes, key: key, value: value)
            }
            // Rebuilding must give the row's bytes back (entries in key order,
            // keys and values written, sub-messages in field order).
            guard canonical || rebuilt.out.withUnsafeBytes({ memoryEqual($0, raw) }) else { return false }
            targetCounts.append(layout.targets.count)
            changeCounts.append(layout.changes.count)
            metadataCounts.append(layout.metadata.count)
        }
        guard lists.allSatisfy({ $0.count <= ColumnEncoding.maxRows }) else { return false }

        ColumnEncoding.writeHeader(.extrasColumns, rows: count, into: &out)
        for counts in [targetCounts, changeCounts, metadataCounts] {
            for value in counts { out.varint(value) }
        }
        var scratch = ColumnEncoding.TextScratch()
        var sub = ByteWriter()
        // Each list in a deflate block of its own (values of one key look
        // alike: a session id's hex, a region's names).
        for list in lists + valuesByKey {
            sub.removeAll()
            _ = list.withRows { ColumnEncoding.encodeStrings($0, scratch: &scratch, numbers: false, into: &sub) }
            out.varint(sub.count)
            out.append(section: sub)
        }
        return true
    }

    /// Reads an `extrasColumns` body (after the chunk header) of `owner` (the
    /// decoded chunk the reader reads, offsets counted from its first byte):
    /// where every list's values lie, checked, and which values belong to
    /// which row. A row's bytes are rebuilt only when asked for
    /// (`ExtrasLists.bytes(of:)`): materializing the 100 events of a page
    /// must not rebuild the 4,096 rows of their block.
    static func decodeLists(_ reader: inout ByteReader, rows: Int, owner: [UInt8]) throws(PartFormatError) -> ExtrasLists {
        // Per row: targets, changes, metadata entries. Each list holds at
        // most maxRows strings, which bounds every count before it sizes anything.
        var firsts = [[Int32]](repeating: [0], count: 3)
        for kind in 0..<3 {
            firsts[kind].reserveCapacity(rows + 1)
            var total = 0
            for row in 0..<rows {
                total += try reader.count("count of row \(row)", limit: ColumnEncoding.maxRows - total)
                firsts[kind].append(Int32(total))
            }
        }
        var starts: [Int32] = []
        var lengths: [Int32] = []
        var listFirst: [Int32] = []
        func readList(_ index: Int, expected: Int) throws(PartFormatError) {
            listFirst.append(Int32(starts.count))
            let length = try reader.count("length of list \(index)", limit: reader.remaining)
            let start = reader.offset
            var sub = ByteReader(try reader.bytes(length), base: start)
            let raw = try sub.u8("encoding of list \(index)")
            guard raw == ChunkEncoding.plain.rawValue || raw == ChunkEncoding.dictionary.rawValue else {
                throw PartFormatError("list \(index) has encoding \(raw), not plain or dictionary", at: start)
            }
            let countOffset = sub.offset
            let listCount = try sub.varint("count of list \(index)")
            guard listCount == UInt64(expected) else {
                throw PartFormatError("list \(index) holds \(listCount) strings where \(expected) belong", at: countOffset)
            }
            try ColumnEncoding.readSpans(&sub, dictionary: raw == ChunkEncoding.dictionary.rawValue, rows: expected, starts: &starts, lengths: &lengths)
        }
        for list in List.allCases {
            try readList(list.rawValue, expected: Int(firsts[list.rawValue / 3][rows]))
        }
        // Which value list each metadata entry's value is in: one per distinct key.
        let keysFirst = Int(listFirst[List.metadataKey.rawValue])
        let entryCount = Int(firsts[2][rows])
        var keys = ByteStringTable()
        keys.reset(capacity: 64)
        var groupSizes: [Int] = []
        var valueIndex: [Int32] = []
        valueIndex.reserveCapacity(entryCount)
        var groupOfEntry: [Int32] = []
        groupOfEntry.reserveCapacity(entryCount)
        try withBytes(owner) { (all) throws(PartFormatError) in
            for entry in 0..<entryCount {
                let at = keysFirst + entry
                let group = keys.insert(UnsafeRawBufferPointer(rebasing: all[Int(starts[at])..<Int(starts[at]) + Int(lengths[at])]))
                if group == groupSizes.count { groupSizes.append(0) }
                groupOfEntry.append(Int32(group))
                valueIndex.append(Int32(groupSizes[group]))
                groupSizes[group] += 1
            }
        }
        for (group, size) in groupSizes.enumerated() {
            try readList(List.allCases.count + group, expected: size)
        }
        try reader.expectEnd("the last list")
        // valueIndex becomes the flat index of each entry's value.
        for entry in 0..<entryCount {
            valueIndex[entry] += listFirst[List.allCases.count + Int(groupOfEntry[entry])]
        }
        return ExtrasLists(
            owner: owner, starts: starts, lengths: lengths, listFirst: listFirst, targetFirst: firsts[0], changeFirst: firsts[1],
            entryFirst: firsts[2], valueOfEntry: valueIndex)
    }

    /// Whether `range` of `bytes` is valid UTF-8 (what `String` keeps byte for byte).
    private static func isValidUTF8(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> Bool {
        VigilCore.isValidUTF8(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[range])))
    }
}

/// The decoded lists of an `extrasColumns` chunk: each value as a span of
/// the chunk's bytes, and each row's share of every list.
struct ExtrasLists: Sendable {
    let owner: [UInt8]
    /// Every list's values in list order, as spans of `owner`.
    let starts: [Int32]
    let lengths: [Int32]
    /// Where each list's first value is in `starts`.
    let listFirst: [Int32]
    /// Row r's targets, changes and entries are items `first[r] ..< first[r + 1]`
    /// of their lists.
    let targetFirst: [Int32]
    let changeFirst: [Int32]
    let entryFirst: [Int32]
    /// Each entry's value, as an index into `starts`.
    let valueOfEntry: [Int32]

    var rowCount: Int { targetFirst.count - 1 }
    var estimatedBytes: Int { 64 + owner.count + starts.count * 8 + (targetFirst.count * 3 + valueOfEntry.count) * 4 }

    /// Row `row`'s extras bytes, rebuilt in canonical form.
    func bytes(of row: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        write(row, into: &bytes)
        return bytes
    }

    /// Replaces `out`'s contents (keeping its capacity) with row `row`'s
    /// extras bytes, rebuilt in canonical form.
    func write(_ row: Int, into out: inout [UInt8]) {
        var writer = CanonicalEvent.Writer()
        swap(&writer.out, &out)
        writer.out.removeAll(keepingCapacity: true)
        defer { swap(&writer.out, &out) }
        owner.withUnsafeBufferPointer { all in
            func span(_ index: Int) -> Range<Int> {
                let start = Int(starts[index])
                return start..<start + Int(lengths[index])
            }
            // Targets, then changes: three lists each (an array of the two
            // would be allocated for every row written).
            func triples(_ firsts: [Int32], _ list: ExtrasColumns.List, field: Int) {
                let base = Int(listFirst[list.rawValue])
                let stride = Int(listFirst[list.rawValue + 1]) - base
                for item in Int(firsts[row])..<Int(firsts[row + 1]) {
                    writer.triple(field, all, span(base + item), span(base + stride + item), span(base + 2 * stride + item))
                }
            }
            triples(targetFirst, .targetType, field: 10)
            triples(changeFirst, .changeField, field: 17)
            let keys = Int(listFirst[ExtrasColumns.List.metadataKey.rawValue])
            for entry in Int(entryFirst[row])..<Int(entryFirst[row + 1]) {
                writer.entry(all, key: span(keys + entry), value: span(Int(valueOfEntry[entry])))
            }
        }
    }
}

extension ByteColumn {
    mutating func append(slice source: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) {
        bytes.append(contentsOf: source[range])
        ends.append(bytes.count)
    }
}

extension CanonicalEvent.Writer {
    /// A message of up to three strings (fields 1, 2, 3; empty ones left
    /// out). Three ranges, not an array of them: this runs for every target
    /// and change at ingest and at flush, and an array would be allocated each time.
    mutating func triple(_ field: Int, _ bytes: UnsafeBufferPointer<UInt8>, _ first: Range<Int>, _ second: Range<Int>, _ third: Range<Int>) {
        var size = 0
        if !first.isEmpty { size += Self.bytesSize(1, first.count) }
        if !second.isEmpty { size += Self.bytesSize(2, second.count) }
        if !third.isEmpty { size += Self.bytesSize(3, third.count) }
        messageHeader(field, size: size)
        if !first.isEmpty { self.bytes(1, bytes[first]) }
        if !second.isEmpty { self.bytes(2, bytes[second]) }
        if !third.isEmpty { self.bytes(3, bytes[third]) }
    }

    /// A map entry with its key and value both written.
    mutating func entry(_ bytes: UnsafeBufferPointer<UInt8>, key: Range<Int>, value: Range<Int>) {
        messageHeader(18, size: Self.bytesSize(1, key.count) + Self.bytesSize(2, value.count))
        self.bytes(1, bytes[key])
        self.bytes(2, bytes[value])
    }
}
