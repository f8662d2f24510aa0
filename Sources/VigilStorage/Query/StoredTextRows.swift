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

    let forms: [UInt8]
    let starts: [Int32]
    let lengths: [Int32]
    /// The decoded chunk the rows point into.
    let bytes: [UInt8]
    /// For derived ids.
    let receivedAt: [Int64]
    let seq: [UInt64]

    init(forms: [UInt8], starts: [Int32], lengths: [Int32], bytes: [UInt8], receivedAt: [Int64] = [], seq: [UInt64] = []) {
        self.forms = forms
        self.starts = starts
        self.lengths = lengths
        self.bytes = bytes
        self.receivedAt = receivedAt
        self.seq = seq
    }

    var count: Int { forms.count }

    var estimatedBytes: Int { 96 + bytes.count + forms.count * 9 + receivedAt.count * 16 }

    func value(at row: Int) -> String {
        let start = Int(starts[row])
        let length = Int(lengths[row])
        switch Form(rawValue: forms[row]) {
        case .text:
            return bytes.withUnsafeBufferPointer { String(decoding: UnsafeBufferPointer(rebasing: $0[start..<start + length]), as: UTF8.self) }
        case .hex:
            return String(unsafeUninitializedCapacity: length * 2) { buffer in
                for index in 0..<length {
                    let byte = bytes[start + index]
                    buffer[2 * index] = hexDigit(byte >> 4)
                    buffer[2 * index + 1] = hexDigit(byte & 0xF)
                }
                return length * 2
            }
        case .derivedID:
            return CanonicalEventID.format(derivedEventID(receivedAt: receivedAt[row], seq: seq[row]))
        case .explicitID:
            var high: UInt64 = 0
            var low: UInt64 = 0
            for index in 0..<8 {
                high = high << 8 | UInt64(bytes[start + index])
                low = low << 8 | UInt64(bytes[start + 8 + index])
            }
            return CanonicalEventID.format(EventID(high: high, low: low))
        case .empty, nil:
            return ""
        }
    }

    /// Asks memory for where row `row` is (see `TextColumn.prefetchCode`).
    @inline(__always)
    func prefetchRow(_ row: Int) {
        prefetchElement(of: forms, at: row)
        prefetchElement(of: starts, at: row)
        prefetchElement(of: lengths, at: row)
    }

    /// Asks memory for row `row`'s bytes, once `prefetchRow` brought its start.
    @inline(__always)
    func prefetchBytes(_ row: Int) {
        let start = Int(starts[row])
        guard start < bytes.count else { return }
        prefetchElement(of: bytes, at: start)
    }

    /// Calls `body` with row `row`'s UTF-8 bytes when the row holds them as
    /// they are (text, or empty); nil for rows shown in another form.
    @inline(__always)
    func withTextBytes<R>(_ row: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R? {
        switch forms[row] {
        case Form.text.rawValue:
            let start = Int(starts[row])
            return bytes.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[start..<start + Int(lengths[row])])) }
        case Form.empty.rawValue:
            return body(UnsafeRawBufferPointer(start: nil, count: 0))
        default:
            return nil
        }
    }

    /// Text rows gathered one at a time: how a memory chunk keeps the
    /// columns with a value per row (trace and request ids, descriptions)
    /// without a `String`, and so an allocation, per row.
    struct Builder {
        private var forms: [UInt8] = []
        private var starts: [Int32] = []
        private var lengths: [Int32] = []
        private var bytes: [UInt8] = []

        init(capacity: Int) {
            forms.reserveCapacity(capacity)
            starts.reserveCapacity(capacity)
            lengths.reserveCapacity(capacity)
        }

        /// Appends a row of valid UTF-8 (an empty one as `empty`, as `filter(_:in:)` expects).
        @inline(__always)
        mutating func append(_ value: UnsafeRawBufferPointer) {
            forms.append(value.isEmpty ? Form.empty.rawValue : Form.text.rawValue)
            starts.append(Int32(truncatingIfNeeded: bytes.count))
            lengths.append(Int32(truncatingIfNeeded: value.count))
            bytes.append(contentsOf: value)
        }

        /// The rows, their bytes in an array of exactly their size: held in
        /// memory until flushed, where doubling's spare capacity would be
        /// memory the budget does not see.
        var rows: StoredTextRows {
            var exact = bytes
            if bytes.capacity > bytes.count + bytes.count / 16 + 64 {
                exact = [UInt8](unsafeUninitializedCapacity: bytes.count) { buffer, count in
                    count = bytes.withUnsafeBufferPointer { buffer.initialize(fromContentsOf: $0) }
                }
            }
            return StoredTextRows(forms: forms, starts: starts, lengths: lengths, bytes: exact)
        }
        var column: TextColumn { TextColumn(stored: rows) }
    }

    /// Whether row `row` contains `search` (text rows are searched in place).
    func matches(_ row: Int, _ search: TextSearch) -> Bool {
        guard forms[row] == Form.text.rawValue else { return search.matches(value(at: row)) }
        let start = Int(starts[row])
        let length = Int(lengths[row])
        return bytes.withUnsafeBufferPointer { search.matches(utf8: UnsafeBufferPointer(rebasing: $0[start..<start + length])) }
    }

    /// The rows among `rows` whose value is in `set`, compared as stored:
    /// each wanted value is put in the form the column would store it in.
    func filter(_ rows: [Int32], in set: ExactStringSet) -> [Int32] {
        var wanted: [(form: UInt8, bytes: [UInt8])] = []
        for value in set {
            let utf8 = Array(value.utf8)
            if utf8.isEmpty {
                wanted.append((Form.empty.rawValue, []))
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
        return bytes.withUnsafeBufferPointer { stored in
            rows.filter { row in
                let form = forms[Int(row)]
                let start = Int(starts[Int(row)])
                let length = Int(lengths[Int(row)])
                for candidate in wanted where candidate.form == form && candidate.bytes.count == length {
                    var index = 0
                    while index < length && candidate.bytes[index] == stored[start + index] { index += 1 }
                    if index == length { return true }
                }
                return false
            }
        }
    }

    /// Lowercase hex to bytes; nil for anything else (stored as text then).
    static func hexBytes(_ utf8: [UInt8]) -> [UInt8]? {
        var raw: [UInt8] = []
        raw.reserveCapacity(utf8.count / 2)
        var invalid: UInt8 = 0
        for pair in stride(from: 0, to: utf8.count, by: 2) {
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

    /// An event holding only the row's targets, changes and metadata.
    func partial(at row: Int) -> AuditEvent {
        let bytes = bytes(at: row)
        guard !bytes.isEmpty else { return AuditEvent() }
        return (try? AuditEvent(serializedBytes: bytes)) ?? AuditEvent()
    }
}
