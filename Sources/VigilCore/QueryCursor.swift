import VigilProto

/// Where a query result stands: the sort key of the last event delivered,
/// and the snapshot the query reads. Results are ordered by (occurred_at,
/// seq), a key no two events share, so "resume after this key" never repeats
/// an event; and every page reads only events with a seq up to the
/// `visibleSeq` of the first page, so an event stored while a client pages
/// (even one that occurred long ago) cannot slip in behind the cursor: the
/// pages of one query add up to exactly the result as it stood when the
/// first page was cut. `anchor` is when that was: a relative range (`last
/// 24h`) keeps meaning the same 24 hours on every page.
///
/// On the wire the cursor is opaque text: 42 bytes in lowercase hex —
/// format version (2), order (0 newest first, 1 oldest first),
/// occurred_at (i64 ns), seq (u64), the filter's fingerprint (u64), the
/// anchor (i64 ns) and the visible seq (u64), all big-endian — so a cursor
/// can be handed to another client or stored.
public struct QueryCursor: Sendable, Hashable {
    public var order: Vigil_V1_Order
    public var occurredAt: UnixNanos
    public var seq: UInt64
    public var filterFingerprint: UInt64
    /// The server time the first page was cut at.
    public var anchor: UnixNanos
    /// The highest seq the query reads.
    public var visibleSeq: UInt64

    public static let formatVersion: UInt8 = 2
    /// Characters of an encoded cursor.
    public static let encodedLength = 84

    public init(
        order: Vigil_V1_Order, occurredAt: UnixNanos, seq: UInt64, filterFingerprint: UInt64,
        anchor: UnixNanos = 0, visibleSeq: UInt64 = .max
    ) {
        self.order = order
        self.occurredAt = occurredAt
        self.seq = seq
        self.filterFingerprint = filterFingerprint
        self.anchor = anchor
        self.visibleSeq = visibleSeq
    }

    public var encoded: String {
        CursorText.encode(
            header: [Self.formatVersion, order == .oldestFirst ? 1 : 0],
            words: [UInt64(bitPattern: occurredAt), seq, filterFingerprint, UInt64(bitPattern: anchor), visibleSeq])
    }

    /// Decodes a cursor and checks that it belongs to this query; throws
    /// INVALID_ARGUMENT otherwise.
    public init(decoding text: String, order: Vigil_V1_Order, filterFingerprint: UInt64) throws(VigilError) {
        guard let bytes = CursorText.decode(text, length: Self.encodedLength), bytes[0] == Self.formatVersion else {
            throw VigilError(.invalidArgument, "cursor is not a cursor this server issued")
        }
        let cursorOrder = Vigil_V1_Order(rawValue: Int(bytes[1])) ?? .UNRECOGNIZED(Int(bytes[1]))
        guard cursorOrder == order else {
            throw VigilError(.invalidArgument, "cursor was issued for the other order; use the same order as the query it came from")
        }
        guard CursorText.word(bytes, at: 18) == filterFingerprint else {
            throw VigilError(.invalidArgument, "cursor was issued for a different filter; resume with the filter it came from")
        }
        self.init(
            order: order, occurredAt: Int64(bitPattern: CursorText.word(bytes, at: 2)), seq: CursorText.word(bytes, at: 10),
            filterFingerprint: filterFingerprint, anchor: Int64(bitPattern: CursorText.word(bytes, at: 26)),
            visibleSeq: CursorText.word(bytes, at: 34))
    }

    /// Whether an event with this key comes after the cursor in the cursor's order.
    public func isBefore(occurredAt time: UnixNanos, seq eventSeq: UInt64) -> Bool {
        switch order {
        case .oldestFirst: (time, eventSeq) > (occurredAt, seq)
        default: (time, eventSeq) < (occurredAt, seq)
        }
    }
}
