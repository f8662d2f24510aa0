/// Where a subscription stands: every matching event with a seq up to
/// `seq` has been delivered. Subscriptions deliver in seq order, so "resume
/// after this seq" neither repeats nor skips an event, across reconnects and
/// server restarts.
///
/// A subscription that started `since` a time applies that time only to the
/// events stored when it started (seq up to `floorThrough`); the cursor
/// carries both, so a resume in the middle of that catch-up keeps it.
///
/// On the wire: 34 bytes in lowercase hex — format version (1), kind (0x53,
/// "S"), seq, the filter's fingerprint, the floor time (i64 ns; Int64.min
/// for none) and floorThrough, all big-endian.
public struct SubscriptionCursor: Sendable, Hashable {
    public var seq: UInt64
    public var filterFingerprint: UInt64
    public var floorTime: UnixNanos
    public var floorThrough: UInt64

    public static let formatVersion: UInt8 = 1
    static let kind: UInt8 = 0x53
    public static let encodedLength = 68

    public init(seq: UInt64, filterFingerprint: UInt64, floorTime: UnixNanos = .min, floorThrough: UInt64 = 0) {
        self.seq = seq
        self.filterFingerprint = filterFingerprint
        self.floorTime = floorTime
        self.floorThrough = floorThrough
    }

    public var encoded: String {
        CursorText.encode(header: [Self.formatVersion, Self.kind], words: [seq, filterFingerprint, UInt64(bitPattern: floorTime), floorThrough])
    }

    /// Decodes a cursor and checks that it belongs to this filter; throws
    /// INVALID_ARGUMENT otherwise.
    public init(decoding text: String, filterFingerprint: UInt64) throws(VigilError) {
        guard let bytes = CursorText.decode(text, length: Self.encodedLength), bytes[0] == Self.formatVersion, bytes[1] == Self.kind else {
            throw VigilError(.invalidArgument, "cursor is not a subscription cursor this server issued")
        }
        guard CursorText.word(bytes, at: 10) == filterFingerprint else {
            throw VigilError(.invalidArgument, "cursor was issued for a different filter; resume with the filter it came from")
        }
        self.init(
            seq: CursorText.word(bytes, at: 2), filterFingerprint: filterFingerprint,
            floorTime: Int64(bitPattern: CursorText.word(bytes, at: 18)), floorThrough: CursorText.word(bytes, at: 26))
    }
}
