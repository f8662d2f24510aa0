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
        var bytes: [UInt8] = [Self.formatVersion, Self.kind]
        for word in [seq, filterFingerprint, UInt64(bitPattern: floorTime), floorThrough] {
            for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: word >> UInt64(shift))) }
        }
        let digits = Array("0123456789abcdef".utf8)
        var text = [UInt8]()
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// Decodes a cursor and checks that it belongs to this filter; throws
    /// INVALID_ARGUMENT otherwise.
    public init(decoding text: String, filterFingerprint: UInt64) throws(VigilError) {
        let invalid = VigilError(.invalidArgument, "cursor is not a subscription cursor this server issued")
        let utf8 = Array(text.utf8)
        guard utf8.count == Self.encodedLength else { throw invalid }
        var bytes = [UInt8]()
        for pair in stride(from: 0, to: utf8.count, by: 2) {
            guard let high = Self.hexValue(utf8[pair]), let low = Self.hexValue(utf8[pair + 1]) else { throw invalid }
            bytes.append(high << 4 | low)
        }
        guard bytes[0] == Self.formatVersion, bytes[1] == Self.kind else { throw invalid }
        func word(_ at: Int) -> UInt64 { bytes[at..<at + 8].reduce(0) { $0 << 8 | UInt64($1) } }
        guard word(10) == filterFingerprint else {
            throw VigilError(.invalidArgument, "cursor was issued for a different filter; resume with the filter it came from")
        }
        self.init(seq: word(2), filterFingerprint: filterFingerprint, floorTime: Int64(bitPattern: word(18)), floorThrough: word(26))
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        default: nil
        }
    }
}
