/// The columns of a part: one per event field, each stored as its own chunk
/// in every block. The raw values are the column ids written in part files:
/// they are never renumbered and a retired id is never reused.
public enum PartColumn: UInt8, CaseIterable, Sendable, Hashable, Comparable {
    case occurredAt = 1
    case seq = 2
    case receivedAt = 3
    case id = 4
    case tenant = 5
    case actorID = 6
    case actorType = 7
    case actorName = 8
    case actorEmail = 9
    case action = 10
    case category = 11
    case resourceType = 12
    case resourceID = 13
    case resourceName = 14
    case outcome = 15
    case reason = 16
    case sourceIP = 17
    case userAgent = 18
    case traceID = 19
    case requestID = 20
    case description = 21
    /// `targets`, `changes` and `metadata`, as the protobuf bytes of an
    /// `AuditEvent` holding only those fields (empty when all three are).
    case extras = 22
    /// Which optional sub-messages the event had set (a bit mask per row,
    /// see `PartPresence`), so that events round trip exactly.
    case presence = 23
    /// The first 4 bytes (big-endian) of each event's leaf hash in the hash
    /// chain, so that verification can name the exact event that was altered.
    /// Optional: parts written before tamper evidence have no such chunks.
    case leaf = 24

    /// How the column's values are encoded.
    enum Kind {
        /// Int64 nanoseconds (or a UInt64 bit pattern): delta or delta-of-delta varints.
        case integer
        /// A protobuf enum's raw value: a byte per row, runs, or varints.
        case enumeration
        /// Text: dictionary or plain.
        case string
        case eventID
        /// trace_id / request_id: hex as raw bytes, anything else as text.
        case correlationID
        /// Opaque bytes, plain.
        case bytes
        /// A 32-bit value per row, big-endian.
        case fixed32
    }

    var kind: Kind {
        switch self {
        case .occurredAt, .seq, .receivedAt: .integer
        case .actorType, .category, .outcome, .presence: .enumeration
        case .id: .eventID
        case .traceID, .requestID: .correlationID
        case .extras: .bytes
        case .leaf: .fixed32
        case .tenant, .actorID, .actorName, .actorEmail, .action, .resourceType, .resourceID,
            .resourceName, .reason, .sourceIP, .userAgent, .description:
            .string
        }
    }

    /// The encodings a chunk of this column may use.
    var allowedEncodings: Set<ChunkEncoding> {
        switch kind {
        case .integer: [.delta, .deltaOfDelta]
        case .enumeration: keyRelation == .keyed ? [.byte, .runLength, .varint, .keyed] : [.byte, .runLength, .varint]
        case .string:
            if self == .sourceIP { [.plain, .dictionary, .prefixNumber, .ipDictionary, .usual] }
            else if let relation = keyRelation { [.plain, .dictionary, .prefixNumber, relation] }
            else { [.plain, .dictionary, .prefixNumber] }
        case .eventID: [.eventID]
        case .correlationID: [.correlationID]
        case .bytes: [.plain, .extrasColumns]
        case .fixed32: [.fixed32]
        }
    }

    /// The column's name in messages and `vigil inspect`.
    public var name: String {
        switch self {
        case .occurredAt: "occurredAt"
        case .seq: "seq"
        case .receivedAt: "receivedAt"
        case .id: "id"
        case .tenant: "tenant"
        case .actorID: "actorID"
        case .actorType: "actorType"
        case .actorName: "actorName"
        case .actorEmail: "actorEmail"
        case .action: "action"
        case .category: "category"
        case .resourceType: "resourceType"
        case .resourceID: "resourceID"
        case .resourceName: "resourceName"
        case .outcome: "outcome"
        case .reason: "reason"
        case .sourceIP: "sourceIP"
        case .userAgent: "userAgent"
        case .traceID: "traceID"
        case .requestID: "requestID"
        case .description: "description"
        case .extras: "extras"
        case .presence: "presence"
        case .leaf: "leaf"
        }
    }

    /// The column whose value this one usually follows from within a block
    /// (an actor's name, email and type from its id, a resource's name from
    /// its id, the category and resource type from the action), often equals
    /// (a resource id, the actor's), or usually determines (a source IP, the
    /// actor): chunks stored `keyed`, `copied` or `usual` are decoded with it. Every key column precedes its dependents
    /// in column order.
    var keyColumn: PartColumn? {
        switch self {
        case .actorName, .actorEmail, .actorType: .actorID
        case .resourceName: .resourceID
        case .resourceType, .category: .action
        case .resourceID, .sourceIP: .actorID
        default: nil
        }
    }

    /// The columns other columns are keyed to.
    static let keyColumns: Set<PartColumn> = Set(allCases.compactMap(\.keyColumn))

    /// How a chunk of this column may be stored relative to its key column:
    /// `keyed` (a value per distinct key), for `resourceID` `copied` (rows
    /// equal to the actor's id are flagged), for `sourceIP` `usual` (each
    /// actor's usual address, and the rows that differ).
    var keyRelation: ChunkEncoding? {
        switch self {
        case .resourceID: .copied
        case .sourceIP: .usual
        default: keyColumn == nil ? nil : .keyed
        }
    }

    /// The columns every block must have (all but `leaf`).
    static let required: [PartColumn] = allCases.filter { $0 != .leaf }

    /// Columns that carry a bloom filter per block (when the block has values).
    static let bloomColumns: Set<PartColumn> = [.id, .actorID, .resourceID, .traceID, .requestID, .sourceIP]
    /// Columns that carry their distinct values per block when there are at most
    /// `BlockStatistics.maxDistinctValues` of them.
    static let valueSetColumns: Set<PartColumn> = [.action, .resourceType, .actorType, .outcome, .category]

    public static func < (lhs: PartColumn, rhs: PartColumn) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// How one chunk's values are laid out (its first byte, and its entry in the
/// block index). One numbering for all columns; `PartColumn.allowedEncodings`
/// says which apply to which column. Never renumbered.
public enum ChunkEncoding: UInt8, Sendable, Hashable, CaseIterable {
    /// Integers: first value, then zigzag varint differences.
    case delta = 1
    /// Integers: first value, first difference, then zigzag varint differences of differences.
    case deltaOfDelta = 2
    /// Enums: one byte per row.
    case byte = 3
    /// Enums: (value, run length) pairs.
    case runLength = 4
    /// Enums: one zigzag varint per row.
    case varint = 5
    /// Strings and bytes: every row's length, then every row's bytes.
    case plain = 6
    /// Strings: the distinct values, then a fixed-width code per row.
    case dictionary = 7
    /// Event ids: a mode byte per row (derived, 16 raw bytes, empty, text), then the payloads.
    case eventID = 8
    /// Trace and request ids: a kind byte per row (empty, hex as n raw bytes, text), then the payloads.
    case correlationID = 9
    /// Source IPs: a dictionary whose entries are IPv4 or IPv6 addresses as raw bytes (or text), then codes.
    case ipDictionary = 10
    /// Text split into a prefix and a decimal suffix: a dictionary of
    /// prefixes, then a code and a digit count per row, then the numbers.
    case prefixNumber = 11
    /// Four bytes per row, big-endian (the truncated leaf hashes).
    case fixed32 = 12
    /// The extras column taken apart into lists of strings (targets,
    /// changes, metadata keys and values), each a text sub-chunk.
    case extrasColumns = 13
    /// Text that follows from another column of the row (`PartColumn.keyColumn`):
    /// one value per distinct key, no per-row codes.
    case keyed = 14
    /// Text that often equals its key column's value in the same row: a flag
    /// per row, then the other rows' values, plain.
    case copied = 15
    /// Source IPs: each key's usual address, a flag per row, then the other rows' addresses.
    case usual = 16

    /// Whether decoding the chunk needs its column's `PartColumn.keyColumn`.
    var readsKeyColumn: Bool { self == .keyed || self == .copied || self == .usual }

    /// Whether the chunk is mostly binary (varints, codes, raw bytes), which
    /// zlib's run-length strategy compresses as well as full matching, and
    /// several times faster; text benefits from full LZ77 matching.
    var isBinary: Bool {
        switch self {
        case .plain, .dictionary, .extrasColumns, .keyed, .copied, .usual: false
        default: true
        }
    }
}

/// How a chunk's stored bytes relate to its encoded (raw) bytes.
public enum ChunkCodec: UInt8, Sendable, Hashable {
    /// Stored as is: compression would not have made it smaller.
    case none = 0
    /// A zlib stream (RFC 1950).
    case zlib = 1
}

/// The bits of the `presence` column.
public enum PartPresence {
    public static let occurredAt: UInt8 = 1 << 0
    public static let receivedAt: UInt8 = 1 << 1
    public static let actor: UInt8 = 1 << 2
    public static let resource: UInt8 = 1 << 3
    public static let all: UInt8 = 0x0F
}
