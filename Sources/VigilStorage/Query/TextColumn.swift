import VigilCore

/// A text column in dictionary form: each distinct value once, and a code
/// per row. A filter decides each condition once per distinct value and then
/// only looks codes up per row, which is what makes scans of repetitive
/// columns (tenant, action, actor) cheap. Columns stored plain have an
/// identity coding: value `row` belongs to row `row`.
struct TextColumn: Sendable {
    var values: [String]
    var codes: Codes

    enum Codes: Sendable {
        /// Row `r` has value `r`.
        case identity
        /// Part chunks: at most `ColumnEncoding.maxRows` distinct values.
        case narrow([UInt16])
        /// Memory chunks (a batch may be larger).
        case wide([UInt32])
        /// Row `r`'s value is made from the stored bytes when asked for
        /// (`values` is empty).
        case stored(StoredTextRows)
    }

    var count: Int {
        switch codes {
        case .identity: values.count
        case .narrow(let codes): codes.count
        case .wide(let codes): codes.count
        case .stored(let rows): rows.count
        }
    }

    /// Whether each row has a value of its own (no dictionary to decide once per value).
    var isPerRow: Bool {
        switch codes {
        case .identity, .stored: true
        case .narrow, .wide: false
        }
    }

    /// The dictionary code of `row` (its own index when values are per row).
    @inline(__always)
    func code(at row: Int) -> Int {
        switch codes {
        case .identity, .stored: row
        case .narrow(let codes): Int(codes[row])
        case .wide(let codes): Int(codes[row])
        }
    }

    @inline(__always)
    func value(at row: Int) -> String {
        switch codes {
        case .identity: values[row]
        case .narrow(let codes): values[Int(codes[row])]
        case .wide(let codes): values[Int(codes[row])]
        case .stored(let rows): rows.value(at: row)
        }
    }

    /// Asks memory for row `row`'s code, or where its stored bytes are
    /// (memory chunks' columns: wide codes or stored rows).
    @inline(__always)
    func prefetchCode(at row: Int) {
        switch codes {
        case .wide(let codes): prefetchElement(of: codes, at: row)
        case .stored(let rows): rows.prefetchRow(row)
        case .identity, .narrow: break
        }
    }

    /// Asks memory for row `row`'s value (its `String`, or its stored
    /// bytes), once `prefetchCode` brought its code.
    @inline(__always)
    func prefetchValue(at row: Int) {
        switch codes {
        case .wide(let codes):
            let code = Int(codes[row])
            prefetchElement(of: values, at: code)
        case .stored(let rows): rows.prefetchBytes(row)
        case .identity, .narrow: break
        }
    }

    /// Calls `body` with row `row`'s UTF-8 bytes: in place for stored text
    /// rows, else those of its `String`.
    ///
    /// A dictionary's value is read through the array's buffer rather than
    /// returned as a `String`: fewer retains of storage that a flush's tasks,
    /// gathering rows side by side, share (each an atomic write to a cache
    /// line the other core holds). Reading the UTF-8 view still retains once.
    @inline(__always)
    func withBytes<R>(at row: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        if case .stored(let rows) = codes { return rows.withValueBytes(row, body) }
        let index = code(at: row)
        if let result = values.withUnsafeBufferPointer({ values in
            values[index].utf8.withContiguousStorageIfAvailable { body(UnsafeRawBufferPointer($0)) }
        }) {
            return result
        }
        return withUTF8Bytes(values[index], body)
    }

    init(stored rows: StoredTextRows) {
        values = []
        codes = .stored(rows)
    }

    /// One value per row.
    init(identity values: [String]) {
        self.values = values
        codes = .identity
    }

    init(values: [String], codes: Codes) {
        self.values = values
        self.codes = codes
    }

    /// A dictionary column built a row at a time, in order of first
    /// appearance (distinct by bytes: canonically equivalent spellings stay
    /// apart), so that several columns can be filled in one pass over the
    /// events (each protobuf getter retains).
    struct DictionaryBuilder {
        /// The distinct values' bytes, hashed with XXH64: cheaper than
        /// `Hasher` over `ExactString` for the eleven columns of every event.
        private var index = ByteStringTable()
        private var values: [String] = []
        private var codes: [UInt32] = []
        /// The previous row's code: runs of one value (a batch of one tenant,
        /// one agent's user agent) skip the hash.
        private var last = -1

        init(capacity: Int) {
            codes.reserveCapacity(capacity)
            index.reset(capacity: 64)
        }

        mutating func append(_ string: String) {
            _ = withUTF8Bytes(string) { append(bytes: $0, value: { string }) }
        }

        /// Appends the value with UTF-8 bytes `bytes`. A value not seen before
        /// is made a `String` only if its bytes are valid UTF-8, and kept only
        /// if `accept` takes it; false (and the builder left unusable) otherwise.
        /// Each distinct value is so checked once, not once per row.
        @inline(__always)
        mutating func append(bytes: UnsafeRawBufferPointer, accept: (String) -> Bool) -> Bool {
            append(bytes: bytes) { validUTF8String(bytes).flatMap { accept($0) ? $0 : nil } }
        }

        /// Appends `bytes`' code; `value` makes the `String` of a value not
        /// seen before (nil refuses it).
        @inline(__always)
        private mutating func append(bytes: UnsafeRawBufferPointer, value: () -> String?) -> Bool {
            if last >= 0 && index.equals(last, bytes) {
                codes.append(UInt32(last))
                return true
            }
            let known = index.count
            let code = index.insert(bytes)
            if code == known {
                guard let string = value() else { return false }
                values.append(string)
            }
            codes.append(UInt32(code))
            last = code
            return true
        }

        /// How many rows have each value, by code.
        var countsByCode: [Int] {
            var counts = [Int](repeating: 0, count: values.count)
            for code in codes { counts[Int(code)] += 1 }
            return counts
        }

        var distinctValues: [String] { values }

        var rowCount: Int { codes.count }
        var distinctCount: Int { values.count }

        /// Calls `body` with each row's bytes, in row order.
        func forEachRow(_ body: (UnsafeRawBufferPointer) -> Void) {
            for code in codes { index.withValue(Int(code), body) }
        }

        var column: TextColumn { TextColumn(values: values, codes: .wide(codes)) }
    }

    /// For each row in `rows`, whether `allowed` holds for its value: decided
    /// once per distinct value (when the column has a dictionary).
    func filter(_ rows: [Int32], _ allowed: (String) -> Bool) -> [Int32] {
        switch codes {
        case .identity:
            return rows.filter { allowed(values[Int($0)]) }
        case .stored(let stored):
            return rows.filter { allowed(stored.value(at: Int($0))) }
        case .narrow(let codes):
            let verdicts = verdicts(allowed)
            return rows.filter { verdicts[Int(codes[Int($0)])] }
        case .wide(let codes):
            let verdicts = verdicts(allowed)
            return rows.filter { verdicts[Int(codes[Int($0)])] }
        }
    }

    /// The rows among `rows` whose value is in `set` (stored columns compare bytes).
    func filter(_ rows: [Int32], in set: ExactStringSet) -> [Int32] {
        switch codes {
        case .stored(let stored):
            return stored.filter(rows, in: set)
        case .identity where set.count <= 4:
            // A value per row and few wanted: compare bytes, no hashing.
            let wanted = set.map { Array($0.utf8) }
            return rows.filter { row in
                var value = values[Int(row)]
                return value.withUTF8 { bytes in
                    wanted.contains { $0.count == bytes.count && $0.elementsEqual(bytes) }
                }
            }
        case .narrow(let codes) where set.count <= ExactStringSetLimits.few:
            return Self.filter(rows, codes, matching: wantedCodes(set))
        case .wide(let codes) where set.count <= ExactStringSetLimits.few:
            return Self.filter(rows, codes, matching: wantedCodes(set))
        default:
            return filter(rows, set.contains)
        }
    }

    /// The codes of the dictionary values in `set` (of a few members): found
    /// by comparing lengths and then bytes, instead of asking the set about
    /// each value. One actor's events among a block's thousands of distinct
    /// actors hashed every one of them (`perf`, vigil-bench query Q3).
    private func wantedCodes(_ set: ExactStringSet) -> [Int] {
        let wanted = set.map { Array($0.utf8) }
        var found: [Int] = []
        for code in values.indices {
            let length = values[code].utf8.count
            guard wanted.contains(where: { $0.count == length }) else { continue }
            var value = values[code]
            let match = value.withUTF8 { bytes in
                wanted.contains { $0.count == bytes.count && $0.withUnsafeBufferPointer { memoryEqual(UnsafeRawBufferPointer($0), UnsafeRawBufferPointer(bytes)) } }
            }
            if match { found.append(code) }
        }
        return found
    }

    private static func filter<Code: FixedWidthInteger>(_ rows: [Int32], _ codes: [Code], matching wanted: [Int]) -> [Int32] {
        switch wanted.count {
        case 0:
            return []
        case 1:
            let only = Code(truncatingIfNeeded: wanted[0])
            return codes.withUnsafeBufferPointer { codes in rows.filter { codes[Int($0)] == only } }
        default:
            let wanted = wanted.map { Code(truncatingIfNeeded: $0) }
            return codes.withUnsafeBufferPointer { codes in rows.filter { wanted.contains(codes[Int($0)]) } }
        }
    }

    /// `allowed` of every distinct value.
    func verdicts(_ allowed: (String) -> Bool) -> [Bool] {
        values.map(allowed)
    }

    /// Approximate heap bytes (for the column cache and the memory budget).
    var estimatedBytes: Int {
        var total = 64 + values.count * 16
        for value in values where value.utf8.count > 15 { total += value.utf8.count + 32 }
        switch codes {
        case .identity: break
        case .narrow(let codes): total += codes.count * 2
        case .wide(let codes): total += codes.count * 4
        case .stored(let rows): total += rows.estimatedBytes
        }
        return total
    }
}
