import VigilCore
import VigilProto

/// A batch's events in protobuf form, as a WAL record holds them: the
/// `events` entries (field 1, length-delimited) of a `WalBatch`.
///
/// `IngestRequest.events` is field 1 as well, so the entries can be copied
/// from the bytes the client sent instead of encoding the decoded events
/// again (about a tenth of the server's CPU under ingest). That is only
/// right while the events are exactly what was decoded: the caller passes
/// them only when validation rewrote nothing and no redaction applies.
/// Lives in: WAL records (see <doc:WALFormat>), between decoding and the
/// store's append.
public struct EncodedEvents: Sendable, Equatable {
    /// Whose bytes these are: the request's buffer (read in place) or an
    /// array of their own.
    private let owner: any ByteOwner
    /// Where in `owner`'s bytes the entries are.
    private let range: Range<Int>

    public var count: Int { range.count }

    /// The entries' bytes, while `body` runs.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try owner.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[range])) }
    }

    /// A copy of the entries' bytes.
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    public static func == (lhs: EncodedEvents, rhs: EncodedEvents) -> Bool {
        lhs.withUnsafeBytes { left in rhs.withUnsafeBytes { right in memoryEqual(left, right) } }
    }

    /// The field-1 entries of a serialized message, in order, byte for byte
    /// (every other field is left out); nil when the bytes are not a
    /// well-formed message (a group, a truncated field). When the entries
    /// are one run of the message (the usual case: events first, then the
    /// key), they are read in place from `message`, not copied.
    public init?(eventsOf message: some ByteOwner) {
        let found = message.withUnsafeBytes { bytes -> Entries? in
            var entries = Entries()
            var reader = ProtobufFieldReader(bytes)
            while !reader.atEnd {
                let start = reader.position
                guard let (field, wireType) = reader.tag(), reader.skip(wireType: wireType) else { return nil }
                if field == 1 && wireType == 2 { entries.add(start..<reader.position, of: bytes) }
            }
            return entries
        }
        guard let found else { return nil }
        self.init(found, of: message)
    }

    /// The entries `found` in `message`: borrowed when they are one run, else their gathered copy.
    init(_ found: Entries, of message: some ByteOwner) {
        if let gathered = found.gathered {
            owner = gathered
            range = gathered.indices
        } else {
            owner = message
            range = found.run
        }
    }

    /// Where a message's field-1 entries are, as a scan finds them in order:
    /// one run of bytes, until an entry does not follow the one before;
    /// from then on, a copy.
    struct Entries {
        var run = 0..<0
        var gathered: [UInt8]?

        @inline(__always)
        mutating func add(_ entry: Range<Int>, of message: UnsafeRawBufferPointer) {
            if gathered == nil {
                if run.isEmpty {
                    run = entry
                    return
                }
                if entry.lowerBound == run.upperBound {
                    run = run.lowerBound..<entry.upperBound
                    return
                }
                gathered = Array(UnsafeRawBufferPointer(rebasing: message[run]))
            }
            gathered!.append(contentsOf: UnsafeRawBufferPointer(rebasing: message[entry]))
        }
    }

    /// Encodes `events` (what the store does when it is given no bytes).
    public init(encoding events: [AuditEvent]) {
        var batch = Vigil_V1_WalBatch()
        batch.events = events
        let bytes = (try? batch.serializedBytes()) ?? [UInt8]()
        owner = bytes
        range = bytes.indices
    }
}

/// Bytes that something else owns and keeps (a request's buffer), which an
/// `EncodedEvents` reads in place until the batch's WAL record is written:
/// copying a batch's few hundred kilobytes cost about 3% of the server's CPU
/// under ingest, more while fresh pages are slow to fault in.
public protocol ByteOwner: Sendable {
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

extension Array: ByteOwner where Element == UInt8 {}
