import VigilCore

/// When a write-ahead log record counts as stored, relative to its fsync.
public enum SyncPolicy: Sendable, Hashable, CustomStringConvertible {
    /// `waitDurable` returns after an fsync that covers the record. Concurrent
    /// writers share fsyncs (group commit), so the cost is one fsync per batch
    /// of waiters, not per record.
    case always
    /// `waitDurable` returns after the `write()`; a background thread fsyncs
    /// every `milliseconds` (1...60000). A machine crash loses at most about
    /// that much acknowledged data; a process crash loses nothing.
    case interval(milliseconds: Int)
    /// `waitDurable` returns after the `write()`; the kernel writes the pages
    /// back when it likes (on Linux, typically within 30 seconds).
    case never

    /// The longest interval `interval(milliseconds:)` accepts: a minute.
    static let maximumIntervalMilliseconds = 60_000

    /// Parses `always`, `never` or `interval:<ms>` (ms 1...60000, digits only).
    public init?(parsing text: String) {
        switch text {
        case "always": self = .always
        case "never": self = .never
        default:
            let prefix = "interval:"
            guard text.hasPrefix(prefix) else { return nil }
            let digits = text.dropFirst(prefix.count)
            guard !digits.isEmpty, digits.count <= 6, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
                let milliseconds = Int(digits), (1...Self.maximumIntervalMilliseconds).contains(milliseconds)
            else { return nil }
            self = .interval(milliseconds: milliseconds)
        }
    }

    public var description: String {
        switch self {
        case .always: "always"
        case .never: "never"
        case .interval(let milliseconds): "interval:\(milliseconds)"
        }
    }
}

/// How a `WriteAheadLog` is laid out and synced.
public struct WALOptions: Sendable {
    /// The WAL directory itself (created if missing); segments are `<16 hex digits>.wal` in it.
    public var directory: String
    /// A segment is rotated when the next record would take it past this size.
    /// A record larger than this gets a segment of its own.
    public var segmentBytes: Int = 64 * 1024 * 1024
    public var sync: SyncPolicy = .always
    /// Where fsync durations, group sizes and bytes written are recorded.
    public var metrics: StorageMetrics = .disabled

    public init(directory: String) {
        self.directory = directory
    }
}

/// Where a record is: its segment, and the offset just past its last byte.
/// Locations order as the records were written.
public struct WALLocation: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var segment: UInt64
    /// The offset in the segment file just past the record.
    public var offset: Int

    public init(segment: UInt64, offset: Int) {
        self.segment = segment
        self.offset = offset
    }

    public static func < (lhs: WALLocation, rhs: WALLocation) -> Bool {
        (lhs.segment, lhs.offset) < (rhs.segment, rhs.offset)
    }

    public var description: String { "\(WALFormat.fileName(of: segment))@\(offset)" }
}

/// What a replay body makes of a record whose checksum is valid.
public enum WALRecordVerdict: Sendable, Equatable {
    /// The record is taken.
    case replayed
    /// The record cannot follow the ones before it (its seqs leave a hole
    /// after them, say): the log is treated as corrupt from this record on,
    /// as for a bad record followed by good ones. The text says why.
    case doesNotFollow(String)
}

/// What `WriteAheadLog.replay` found and changed.
public struct WALReplayReport: Sendable {
    /// Records delivered to the replay body.
    public var records: Int
    /// Segments read (those with a valid header).
    public var segments: Int
    /// A torn or corrupt tail of the last segment (a crash mid-write) that was
    /// truncated away: the segment, the offset it was cut at, and the bytes dropped.
    public var truncatedTail: (segment: UInt64, offset: Int, droppedBytes: Int)?
    /// With `repair: true`: one line per file that was cut, renamed or saved.
    public var repaired: [String]

    public init(records: Int = 0, segments: Int = 0, truncatedTail: (segment: UInt64, offset: Int, droppedBytes: Int)? = nil, repaired: [String] = []) {
        self.records = records
        self.segments = segments
        self.truncatedTail = truncatedTail
        self.repaired = repaired
    }
}
