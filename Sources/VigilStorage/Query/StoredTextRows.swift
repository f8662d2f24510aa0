import VigilCore
import VigilProto

/// A text column kept as the bytes its chunk stores, one row's `String`
/// made only when that row is asked for. Columns whose rows are mostly
/// distinct — event ids, trace and request ids, descriptions — would cost an
/// allocation per row to decode whole; a query that returns 100 rows of a
/// 4,096-row block should pay for 100. Set membership (a trace id filter) is
/// decided on the stored bytes without making any string.
final class StoredTextRows: Sendable {
    enum Form: UInt8 {
        /// UTF-8 bytes as they are.
        case text = 0
        /// Raw bytes shown as lowercase hex (trace and request ids).
        case hex = 1
        /// An event id derived from the row's received_at and seq: no bytes.
        case derivedID = 2
        /// An event id as 16 raw bytes, shown in canonical UUID form.
        case explicitID = 3
        case empty = 4
    }

    /// Per row, where its bytes lie in `bytes` and their form (`Entry`):
    /// row r's is `entries[r * stride + column]`. A memory chunk's per-row
    /// columns share one table (`SharedBuilder`), so that a row's entries
    /// sit in one or two cache lines and its values side by side: a flush
    /// gathers its rows a few at a time from hundreds of chunks, and with a
    /// form, a start and a length array per column, and the bytes apart,
    /// each of those was a cache miss per column per row.
    private let entries: [UInt64]
    private let stride: Int
    private let column: Int
    let count: Int
    /// The decoded chunk, or the batch's per-row values, the rows point into.
    let bytes: [UInt8]
    /// Bytes of this column's own rows (a shared table's bytes hold others' too).
    private let ownBytes: Int
    /// For derived ids.
    let receivedAt: [Int64]
    let seq: [UInt64]

    /// A row's form, start and length in one word: start in bits 0–31,
    /// length in bits 32–60, form in bits 61–63. Chunks and batches are far
    /// below 4 GiB, and a value below 512 MiB.
    enum Entry {
        static let empty = make(.empty, start: 0, length: 0)

        @inline(__always)
        static func make(_ form: Form, start: Int, length: Int) -> UInt64 {
            precondition(start >= 0 && start <= Int(UInt32.max) && length >= 0 && length < 1 << 29, "stored text row out of range")
            return UInt64(start) | UInt64(length) << 32 | UInt64(form.rawValue) << 61
        }

        @inline(__always)
        static func form(_ entry: UInt64) -> UInt8 { UInt8(truncatingIfNeeded: entry >> 61) }
        @inline(__always)
        static func start(_ entry: UInt64) -> Int { Int(truncatingIfNeeded: entry & 0xFFFF_FFFF) }
        @inline(__always)
        static func length(_ entry: UInt64) -> Int { Int(truncatingIfNeeded: (entry >> 32) & 0x1FFF_FFFF) }
    }

    /// Rows of one column, from their forms, starts and lengths.
    convenience init(forms: [UInt8], starts: [Int32], lengths: [Int32], bytes: [UInt8], receivedAt: [Int64] = [], seq: [UInt64] = []) {
        let entries = forms.indices.map { row in
            Entry.make(Form(rawValue: forms[row]) ?? .empty, start: Int(starts[row]), length: Int(lengths[row]))
        }
        self.init(entries: entries, stride: 1, column: 0, count: forms.count, bytes: bytes, ownBytes: bytes.count, receivedAt: receivedAt, seq: seq)
    }

    private init(
        entries: [UInt64], stride: Int, column: Int, count: Int, bytes: [UInt8], ownBytes: Int, receivedAt: [Int64] = [],
        seq: [UInt64] = []
    ) {
        precondition(entries.count >= count * stride && column < stride, "a stored text table too small for its rows")
        self.entries = entries
        self.stride = stride
        self.column = column
        self.count = count
        self.bytes = bytes
        self.ownBytes = ownBytes
        self.receivedAt = receivedAt
        self.seq = seq
    }

    var estimatedBytes: Int { 96 + ownBytes + count * 8 + receivedAt.count * 16 }

    @inline(__always)
    private func entry(_ row: Int) -> UInt64 {
        precondition(row >= 0 && row < count, "row out of range")
        return entries[row &* stride &+ column]
    }

    func value(at row: Int) -> String {
        withValueBytes(row) { String(decoding: $0, as: UTF8.self) }
    }

    /// Calls `body` with the UTF-8 bytes of `value(at: row)`, written into
    /// temporary memory for the forms shown as text other than their bytes
    /// (hex, ids): a row written out (a query page, a flush's leaves) makes
    /// no `String` for its trace and request ids.
    func withValueBytes<R>(_ row: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        let entry = entry(row)
        let start = Entry.start(entry)
        let length = Entry.length(entry)
        switch Form(rawValue: Entry.form(entry)) {
        case .text:
            return bytes.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[start..<start + length])) }
        case .hex:
            return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: max(1, length * 2)) { buffer in
                bytes.withUnsafeBufferPointer { source in
                    for index in 0..<length {
                        let byte = source[start + index]
                        buffer[2 * index] = hexDigit(byte >> 4)
                        buffer[2 * index + 1] = hexDigit(byte & 0xF)
                    }
                }
                return body(UnsafeRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(buffer)[0..<length * 2]))
            }
        case .derivedID:
            return CanonicalEventID.withFormatted(derivedEventID(receivedAt: receivedAt[row], seq: seq[row]), body)
        case .explicitID:
            var high: UInt64 = 0
            var low: UInt64 = 0
            for index in 0..<8 {
                high = high << 8 | UInt64(bytes[start + index])
                low = low << 8 | UInt64(bytes[start + 8 + index])
            }
            return CanonicalEventID.withFormatted(EventID(high: high, low: low), body)
        case .empty, nil:
            return body(UnsafeRawBufferPointer(start: nil, count: 0))
        }
    }

    /// Asks memory for where row `row` is (see `TextColumn.prefetchCode`).
    @inline(__always)
    func prefetchRow(_ row: Int) {
        prefetchElement(of: entries, at: row &* stride &+ column)
    }

    /// Asks memory for row `row`'s bytes, once `prefetchRow` brought its entry.
    @inline(__always)
    func prefetchBytes(_ row: Int) {
        let start = Entry.start(entries[row &* stride &+ column])
        guard start < bytes.count else { return }
        prefetchElement(of: bytes, at: start)
    }

    /// Text rows gathered one at a time, a column of their own: how a memory
    /// chunk built from events keeps the columns with a value per row (trace
    /// and request ids, descriptions) without a `String`, and so an
    /// allocation, per row.
    struct Builder {
        private var entries: [UInt64] = []
        private var bytes: [UInt8] = []

        init(capacity: Int) {
            entries.reserveCapacity(capacity)
        }

        /// Appends a row of valid UTF-8 (an empty one as `empty`, as `filter(_:in:)` expects).
        @inline(__always)
        mutating func append(_ value: UnsafeRawBufferPointer) {
            entries.append(value.isEmpty ? Entry.empty : Entry.make(.text, start: bytes.count, length: value.count))
            bytes.append(contentsOf: value)
        }

        var rows: StoredTextRows {
            let exact = StoredTextRows.exactSize(bytes)
            return StoredTextRows(
                entries: entries, stride: 1, column: 0, count: entries.count, bytes: exact, ownBytes: exact.count)
        }
        var column: TextColumn { TextColumn(stored: rows) }
    }

    /// The per-row text columns of one batch, filled row by row into one
    /// table: a row's entries side by side, its values one after the other.
    /// Every row starts empty in every column.
    struct SharedBuilder {
        let columns: Int
        let rows: Int
        private var entries: [UInt64]
        private var bytes: [UInt8] = []
        private var ownBytes: [Int]

        init(columns: Int, rows: Int) {
            self.columns = columns
            self.rows = rows
            entries = [UInt64](repeating: Entry.empty, count: columns * rows)
            ownBytes = [Int](repeating: 0, count: columns)
        }

        /// Sets row `row` of `column` to `value`, valid UTF-8 (empty: nothing to set).
        @inline(__always)
        mutating func set(row: Int, column: Int, _ value: UnsafeRawBufferPointer) {
            guard !value.isEmpty else { return }
            precondition(row < rows && column < columns, "a stored text row outside its table")
            entries[row &* columns &+ column] = Entry.make(.text, start: bytes.count, length: value.count)
            bytes.append(contentsOf: value)
            ownBytes[column] += value.count
        }

        /// The table, for `Table.rows(column:)`.
        func finish() -> Table {
            Table(entries: entries, columns: columns, rows: rows, bytes: StoredTextRows.exactSize(bytes), ownBytes: ownBytes)
        }
    }

    /// What a `SharedBuilder` filled; its columns' rows share its arrays.
    struct Table {
        fileprivate let entries: [UInt64]
        let columns: Int
        let rows: Int
        fileprivate let bytes: [UInt8]
        fileprivate let ownBytes: [Int]

        /// Column `column`'s rows. Each column's `estimatedBytes` counts its
        /// own entries and bytes; the entries of `unused` columns that hold
        /// no rows (an adaptive column that kept its dictionary) are counted
        /// in the one asked for with them.
        func rows(column: Int, alsoCountingUnused unused: Int = 0) -> StoredTextRows {
            StoredTextRows(
                entries: entries, stride: columns, column: column, count: rows, bytes: bytes,
                ownBytes: ownBytes[column] + unused * rows * 8)
        }
    }

    /// `bytes` in an array of exactly their size: held in memory until
    /// flushed, where doubling's spare capacity would be memory the budget
    /// does not see.
    fileprivate static func exactSize(_ bytes: [UInt8]) -> [UInt8] {
        guard bytes.capacity > bytes.count + bytes.count / 16 + 64 else { return bytes }
        return [UInt8](unsafeUninitializedCapacity: bytes.count) { buffer, count in
            count = bytes.withUnsafeBufferPointer { buffer.initialize(fromContentsOf: $0) }
        }
    }

    /// Whether row `row` contains `search` (text rows are searched in place).
    func matches(_ row: Int, _ search: TextSearch) -> Bool {
        let entry = entry(row)
        guard Entry.form(entry) == Form.text.rawValue else { return search.matches(value(at: row)) }
        let start = Entry.start(entry)
        let length = Entry.length(entry)
        return bytes.withUnsafeBufferPointer { search.matches(utf8: UnsafeBufferPointer(rebasing: $0[start..<start + length])) }
    }

    /// The rows among `rows` whose value is in `set`, compared as stored:
    /// each wanted value is put in the form the column would store it in.
    func filter(_ rows: [Int32], in set: ExactStringSet) -> [Int32] {
        var wanted: [(form: UInt8, bytes: [UInt8])] = []
        for value in set {
            let utf8 = Array(value.utf8)
            if utf8.isEmpty {
                // Written as an empty entry; a part may hold it as empty text too.
                wanted.append((Form.empty.rawValue, []))
                wanted.append((Form.text.rawValue, []))
            } else if utf8.count % 2 == 0, utf8.count <= 2 * ColumnEncoding.maxHexBytes,
                let raw = Self.hexBytes(utf8)
            {
                // The writer stores such ids as raw bytes; another writer may have kept them as text.
                wanted.append((Form.hex.rawValue, raw))
                wanted.append((Form.text.rawValue, utf8))
            } else {
                wanted.append((Form.text.rawValue, utf8))
            }
        }
        if wanted.count > Self.linearCandidates {
            // A list of many ids (a filter may hold 1,000): compared one by
            // one, each row cost up to 2,000 comparisons, tens of CPU-seconds
            // over ten million rows. Hashed once, each row costs one hash.
            var byHash: [UInt64: [Int]] = [:]
            for (index, candidate) in wanted.enumerated() {
                byHash[candidate.bytes.withUnsafeBytes { XXHash64.hash($0, seed: UInt64(candidate.form)) }, default: []].append(index)
            }
            return bytes.withUnsafeBytes { stored in
                rows.filter { row in
                    let entry = entry(Int(row))
                    let form = Entry.form(entry)
                    let start = Entry.start(entry)
                    let value = UnsafeRawBufferPointer(rebasing: stored[start..<start + Entry.length(entry)])
                    guard let indexes = byHash[XXHash64.hash(value, seed: UInt64(form))] else { return false }
                    return indexes.contains { wanted[$0].form == form && wanted[$0].bytes.elementsEqual(value) }
                }
            }
        }
        return bytes.withUnsafeBufferPointer { stored in
            rows.filter { row in
                let entry = entry(Int(row))
                let form = Entry.form(entry)
                let start = Entry.start(entry)
                let length = Entry.length(entry)
                for candidate in wanted where candidate.form == form && candidate.bytes.count == length {
                    var index = 0
                    while index < length && candidate.bytes[index] == stored[start + index] { index += 1 }
                    if index == length { return true }
                }
                return false
            }
        }
    }

    /// Up to this many wanted values are compared one by one; more are hashed.
    static let linearCandidates = 8

    /// Lowercase hex to bytes; nil for anything else (stored as text then).
    static func hexBytes(_ utf8: [UInt8]) -> [UInt8]? {
        var raw: [UInt8] = []
        raw.reserveCapacity(utf8.count / 2)
        var invalid: UInt8 = 0
        for pair in Swift.stride(from: 0, to: utf8.count, by: 2) {
            let high = HexDigits.decode(utf8[pair])
            let low = HexDigits.decode(utf8[pair + 1])
            invalid |= high.invalid | low.invalid
            raw.append(high.value << 4 | low.value)
        }
        return invalid == 0 ? raw : nil
    }
}

/// The extras column kept as stored: a row's targets, changes and metadata
/// are rebuilt and parsed only when the row is materialized or its metadata
/// is filtered on.
final class StoredExtras: Sendable {
    private enum Storage: Sendable {
        /// A plain chunk: each row's bytes as they are.
        case rows(starts: [Int32], lengths: [Int32], bytes: [UInt8])
        /// An extrasColumns chunk: rows rebuilt from its lists.
        case lists(ExtrasLists)
    }

    private let storage: Storage

    init(starts: [Int32], lengths: [Int32], bytes: [UInt8]) {
        storage = .rows(starts: starts, lengths: lengths, bytes: bytes)
    }

    init(lists: ExtrasLists) {
        storage = .lists(lists)
    }

    var count: Int {
        switch storage {
        case .rows(let starts, _, _): starts.count
        case .lists(let lists): lists.rowCount
        }
    }

    var estimatedBytes: Int {
        switch storage {
        case .rows(let starts, _, let bytes): 64 + bytes.count + starts.count * 8
        case .lists(let lists): lists.estimatedBytes
        }
    }

    /// The row's extras bytes (the canonical form for rebuilt rows).
    func bytes(at row: Int) -> [UInt8] {
        switch storage {
        case .rows(let starts, let lengths, let bytes):
            let start = Int(starts[row])
            return Array(bytes[start..<start + Int(lengths[row])])
        case .lists(let lists):
            return lists.bytes(of: row)
        }
    }

    /// Calls `body` with the row's extras bytes (in place for a plain chunk)
    /// and whether they are known to be canonical (rows rebuilt from lists,
    /// in `scratch`: reused from row to row, where a page of 100 rows made
    /// 100 arrays).
    func withBytes<R>(at row: Int, scratch: inout [UInt8], _ body: (UnsafeBufferPointer<UInt8>, _ canonical: Bool) -> R) -> R {
        switch storage {
        case .rows(let starts, let lengths, let bytes):
            let start = Int(starts[row])
            return bytes.withUnsafeBufferPointer { body(UnsafeBufferPointer(rebasing: $0[start..<start + Int(lengths[row])]), false) }
        case .lists(let lists):
            lists.write(row, into: &scratch)
            return scratch.withUnsafeBufferPointer { body($0, true) }
        }
    }

    /// An event holding only the row's targets, changes and metadata.
    func partial(at row: Int) -> AuditEvent {
        let bytes = bytes(at: row)
        guard !bytes.isEmpty else { return AuditEvent() }
        return (try? AuditEvent(serializedBytes: bytes)) ?? AuditEvent()
    }
}
