import VigilCore
import VigilProto

extension MemoryChunk {
    /// The leaf hash of every row, in seq order.
    func leaves() -> [ChainDigest] {
        var scratch = LeafScratch()
        var leaves: [ChainDigest] = []
        leaves.reserveCapacity(count)
        forEachLeaf(kept: [], scratch: &scratch) { leaves.append($0) }
        return leaves
    }

    /// Calls `body` with the leaf hash of every row, in seq order, hashing
    /// the rows two at a time (`HashChain.leaves(canonical:_:)`); `kept` as
    /// in `leaf(at:kept:scratch:)`.
    func forEachLeaf(kept: [[UInt8]], scratch: inout LeafScratch, _ body: (ChainDigest) -> Void) {
        var row = 0
        while row + 1 < count {
            let first = canonicalBytes(row, kept: kept, into: scratch.bytes, layout: &scratch.layout)
            let second = canonicalBytes(row + 1, kept: kept, into: scratch.secondBytes, layout: &scratch.layout)
            if let first, let second {
                let pair = first.withBytes(kept) { a in second.withBytes(kept) { b in HashChain.leaves(canonical: a, b) } }
                body(pair.0)
                body(pair.1)
            } else {
                body(leaf(at: row, kept: kept, scratch: &scratch))
                body(leaf(at: row + 1, kept: kept, scratch: &scratch))
            }
            row += 2
        }
        if row < count { body(leaf(at: row, kept: kept, scratch: &scratch)) }
    }

    /// Where row `row`'s canonical bytes are once this returns: in `kept`,
    /// or written into `scratch`; nil when only the event path can write them.
    private func canonicalBytes(_ row: Int, kept: [[UInt8]], into scratch: CanonicalScratch, layout: inout ExtrasLayout) -> CanonicalBytes? {
        if row < kept.count, !kept[row].isEmpty { return .kept(row) }
        return CanonicalEvent.write(row: row, of: self, layout: &layout, into: scratch) ? .written(scratch) : nil
    }

    /// The leaf hash of row `row`: its canonical bytes written straight from
    /// the columns, or, for the rare row whose extras hold something that
    /// path does not write (unknown fields), from the event rebuilt whole.
    func leaf(at row: Int, scratch: inout LeafScratch) -> ChainDigest {
        if CanonicalEvent.write(row: row, of: self, layout: &scratch.layout, into: scratch.bytes) {
            return HashChain.leaf(canonical: scratch.bytes.bytes)
        }
        CanonicalEvent.write(event(at: row), into: &scratch.eventBytes)
        return HashChain.leaf(canonical: scratch.eventBytes)
    }

    /// The same, hashed from `kept` (the chunk's `DeliveryCache.rows`, taken
    /// once for all its rows) when live subscribers left the row's canonical
    /// bytes there: they need not be written a second time.
    func leaf(at row: Int, kept: [[UInt8]], scratch: inout LeafScratch) -> ChainDigest {
        if row < kept.count, !kept[row].isEmpty { return HashChain.leaf(canonical: kept[row]) }
        return leaf(at: row, scratch: &scratch)
    }
}

/// A row's canonical bytes, found or written by `forEachLeaf`.
private enum CanonicalBytes {
    /// Row `row` of the delivery cache's rows.
    case kept(Int)
    /// The bytes `scratch` holds.
    case written(CanonicalScratch)

    @inline(__always)
    func withBytes<R>(_ kept: [[UInt8]], _ body: (UnsafeRawBufferPointer) -> R) -> R {
        switch self {
        case .kept(let row): kept[row].withUnsafeBytes(body)
        case .written(let scratch): body(scratch.bytes)
        }
    }
}

/// What hashing one row after another reuses: the canonical bytes' memory
/// and the extras' layout (no allocation per row). One thread at a time.
struct LeafScratch {
    var bytes = CanonicalScratch()
    /// The second row of a pair (`MemoryChunk.forEachLeaf`).
    var secondBytes = CanonicalScratch()
    var layout = ExtrasLayout()
    /// For the rows written from their events.
    var eventBytes: [UInt8] = []
}

extension CanonicalEvent {
    /// Writes the canonical bytes of `chunk.event(at: row)` into `out` without
    /// building that event (a flush hashes every row it has not hashed yet).
    /// Returns false, with `out` undefined, when the row's extras hold
    /// anything but plain targets, changes and metadata entries; the caller
    /// then takes the event path, which handles every case.
    static func write(row: Int, of chunk: MemoryChunk, into out: inout [UInt8]) -> Bool {
        var layout = ExtrasLayout()
        let scratch = CanonicalScratch()
        guard write(row: row, of: chunk, layout: &layout, into: scratch) else { return false }
        out = scratch.array
        return true
    }

    /// `write(row:of:into:)` into `scratch`, with a layout reused from row to row.
    static func write(row: Int, of chunk: MemoryChunk, layout: inout ExtrasLayout, into scratch: CanonicalScratch) -> Bool {
        chunk.columns.extras.withRow(row) { write(row: row, of: chunk, extras: $0, layout: &layout, into: scratch) }
    }

    /// `write(row:of:into:)` with the row's extras at hand.
    private static func write(
        row: Int, of chunk: MemoryChunk, extras: UnsafeBufferPointer<UInt8>, layout: inout ExtrasLayout, into scratch: CanonicalScratch
    ) -> Bool {
        let c = chunk.columns
        guard let extras = CanonicalRowExtras(extras, canonical: c.extrasCanonical, layout: &layout) else { return false }
        var writer = ScratchWriter(scratch)
        // As `event(at:)` builds it: both times set, actor and resource only when not empty.
        CanonicalEventID.withFormatted(chunk.id(at: row)) { writer.string(1, bytes: $0) }
        writer.uint64(2, chunk.seq(at: row))
        writer.timestamp(3, unixNanos: c.occurredAt[row])
        writer.timestamp(4, unixNanos: chunk.receivedAt)
        writer.rowFields(row, of: c, hasActor: nil, hasResource: nil, extras: extras, layout: layout)
        writer.finish()
        return true
    }
}

/// Where the leading targets (field 10) of canonical extras end; nil when
/// the bytes do not parse.
func leadingTargetsEnd(_ extras: UnsafeBufferPointer<UInt8>) -> Int? {
    var reader = ProtobufFieldReader(extras: extras)
    while !reader.atEnd {
        let start = reader.position
        guard let (field, _) = reader.lengthDelimitedField() else { return nil }
        if field != 10 { return start }
    }
    return extras.count
}

/// Where an extras value (the protobuf bytes of an `AuditEvent` holding only
/// targets, changes and metadata) keeps each of them, when every target and
/// change is already canonical: only its own string fields, in field order,
/// none empty — which is how swift-protobuf writes them unless they carry
/// unknown fields. Metadata entries are sorted by key bytes.
struct ExtrasLayout {
    /// Payloads of the field-10 (targets) and field-17 (changes) messages.
    var targets: [Range<Int>] = []
    var changes: [Range<Int>] = []
    /// Keys and values of the field-18 entries, in key byte order.
    var metadata: [(key: Range<Int>, value: Range<Int>)] = []

    /// False when the bytes hold anything else (then nothing is promised).
    /// A layout is reused from row to row: its lists keep their memory.
    /// `canonical`: the bytes are known to be canonical
    /// (`MemoryChunk.Columns.extrasCanonical`), so that each message's
    /// strings are not checked again and the entries, sorted already, not sorted.
    mutating func parse(_ bytes: UnsafeBufferPointer<UInt8>, canonical: Bool = false) -> Bool {
        removeAll()
        var reader = ProtobufFieldReader(extras: bytes)
        while !reader.atEnd {
            guard let (field, payload) = reader.lengthDelimitedField() else { return false }
            switch field {
            case 10:
                guard canonical || Self.plainStrings(bytes, payload, maxField: 3) else { return false }
                targets.append(payload)
            case 17:
                guard canonical || Self.plainStrings(bytes, payload, maxField: 3) else { return false }
                changes.append(payload)
            case 18:
                var entry = ProtobufFieldReader(extras: bytes, range: payload)
                var key = payload.lowerBound..<payload.lowerBound, value = key
                var last = 0
                while !entry.atEnd {
                    guard let (number, range) = entry.lengthDelimitedField(), number > last, number <= 2 else { return false }
                    if number == 1 { key = range } else { value = range }
                    last = number
                }
                metadata.append((key, value))
            default:
                return false
            }
        }
        if metadata.count > 1 && !canonical {
            metadata.sort { a, b in Self.less(bytes[a.key], bytes[b.key]) }
            // A map keeps the last of equal keys: leave such bytes to the event path.
            for index in 1..<metadata.count where memoryEqual(Self.raw(bytes[metadata[index - 1].key]), Self.raw(bytes[metadata[index].key])) {
                return false
            }
        }
        return true
    }

    /// The layout of empty extras, keeping the lists' memory.
    mutating func removeAll() {
        targets.removeAllKeepingCapacity()
        changes.removeAllKeepingCapacity()
        metadata.removeAllKeepingCapacity()
    }

    /// Whether `payload` holds only non-empty length-delimited fields 1...maxField, in increasing order.
    private static func plainStrings(_ bytes: UnsafeBufferPointer<UInt8>, _ payload: Range<Int>, maxField: Int) -> Bool {
        var reader = ProtobufFieldReader(extras: bytes, range: payload)
        var last = 0
        while !reader.atEnd {
            guard let (number, range) = reader.lengthDelimitedField(), number > last, number <= maxField, !range.isEmpty else { return false }
            last = number
        }
        return true
    }

    private static func less(_ a: Slice<UnsafeBufferPointer<UInt8>>, _ b: Slice<UnsafeBufferPointer<UInt8>>) -> Bool {
        memoryLess(raw(a), raw(b))
    }

    @inline(__always)
    private static func raw(_ slice: Slice<UnsafeBufferPointer<UInt8>>) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: slice))
    }
}

extension ProtobufFieldReader {
    /// Over `range` of an extras value: minimal varints only, as protobuf
    /// encoders write them, since the payloads are copied as they are.
    init(extras bytes: UnsafeBufferPointer<UInt8>, range: Range<Int>? = nil) {
        self.init(UnsafeRawBufferPointer(bytes), range: range, minimalVarints: true)
    }

    /// The next field's number and payload, when it is length-delimited (all the extras hold).
    mutating func lengthDelimitedField() -> (Int, Range<Int>)? {
        guard let (field, wireType) = tag(), wireType == 2, let payload = lengthDelimited() else { return nil }
        return (field, payload)
    }
}

extension CanonicalEvent.Writer {
    /// A bytes or string field written even when empty (map entries).
    mutating func bytes(_ field: Int, _ value: Slice<UnsafeBufferPointer<UInt8>>) {
        string(field, bytes: UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: value)), always: true)
    }

    static func bytesSize(_ field: Int, _ count: Int) -> Int {
        varintSize(UInt64(field << 3)) + varintSize(UInt64(count)) + count
    }

    /// The size of a string field of `count` bytes as `string(_:bytes:)` writes it (nothing when empty).
    static func bytesStringSize(_ field: Int, _ count: Int) -> Int {
        count == 0 ? 0 : bytesSize(field, count)
    }
}
