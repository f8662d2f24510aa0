import VigilCore

/// Where the hash chain starts and what its flushed ranges end with: the
/// chain's table of contents, stored as `chain/<16 hex>.chain` in the data
/// directory (see the DataDirectory article), replaced at every flush and
/// whenever retention moves the start.
///
/// Anchor `i` covers the seqs after the previous anchor (or after `startSeq`)
/// through `anchors[i].lastSeq`, and records the chain head after its last
/// event. A flush adds one anchor for the seqs it wrote; old anchors are
/// merged (their inner heads dropped) once there are more than `maxAnchors`,
/// as long as a merged range stays within `maxSpan` seqs. Anchors are not
/// signed: they let verification name the range an undetected-by-leaf change
/// lies in, while the signed checkpoints make the chain binding.
public struct ChainLedger: Sendable, Hashable {
    public struct Anchor: Sendable, Hashable {
        public var lastSeq: UInt64
        public var head: ChainDigest

        public init(lastSeq: UInt64, head: ChainDigest) {
            self.lastSeq = lastSeq
            self.head = head
        }
    }

    /// Why events at or below `startSeq` are not in the chain.
    public enum StartReason: UInt8, Sendable {
        /// Retention removed them; `startHead` is the head after `startSeq`.
        case retention = 0
        /// They were stored before this data directory had a chain (no
        /// tamper evidence for them); `startHead` is zero.
        case predatesChain = 1
    }

    /// One anchored range.
    public struct Range: Sendable, Hashable {
        public var first: UInt64
        public var last: UInt64
        public var headBefore: ChainDigest
        public var headAfter: ChainDigest
        public var count: UInt64 { last - first + 1 }
    }

    static let magic = "VCHN"
    /// Anchors kept before old ones are merged.
    static let maxAnchors = 4096
    /// The most seqs a merged anchor range covers: verification holds one
    /// range's leaves at a time (32 bytes each), so this bounds its memory.
    public static let maxSpan: UInt64 = 1 << 20

    public var startSeq: UInt64 = 0
    public var startHead = ChainDigest.zero
    public var startReason = StartReason.retention
    /// Events at or below `startSeq` removed by retention (for `events_expired`).
    public var expiredBeforeStart: UInt64 = 0
    public var anchors: [Anchor] = []

    public init() {}

    /// Why this ledger is not one the engine writes, or nil. A chain that
    /// starts after events stored before it existed starts from the zero
    /// head; any other head there is an edited start, which would leave
    /// every event up to it unverified while later checkpoints still match.
    var startProblem: String? {
        guard startReason == .predatesChain, startHead != .zero else { return nil }
        return "it says the events up to seq \(startSeq) predate the hash chain, yet gives the head after them as \(startHead.hex) (a chain that starts after older events starts from the zero head): its start was edited, and the events up to seq \(startSeq) would go unverified"
    }

    /// The last seq an anchor covers (`startSeq` when there is none).
    public var endSeq: UInt64 { anchors.last?.lastSeq ?? startSeq }
    /// The head after `endSeq`.
    public var endHead: ChainDigest { anchors.last?.head ?? startHead }

    /// The anchored ranges in seq order.
    public var ranges: [Range] {
        var result: [Range] = []
        result.reserveCapacity(anchors.count)
        var first = startSeq + 1
        var head = startHead
        for anchor in anchors {
            result.append(Range(first: first, last: anchor.lastSeq, headBefore: head, headAfter: anchor.head))
            first = anchor.lastSeq + 1
            head = anchor.head
        }
        return result
    }

    /// The head after `seq` when `seq` is the start or an anchor's end.
    public func head(atBoundary seq: UInt64) -> ChainDigest? {
        if seq == startSeq { return startHead }
        var low = 0
        var high = anchors.count
        while low < high {
            let middle = (low + high) / 2
            if anchors[middle].lastSeq < seq { low = middle + 1 } else { high = middle }
        }
        return low < anchors.count && anchors[low].lastSeq == seq ? anchors[low].head : nil
    }

    /// Records that the chain after `lastSeq` (> `endSeq`) is `head`.
    mutating func append(lastSeq: UInt64, head: ChainDigest) {
        precondition(lastSeq > endSeq, "anchors are appended in seq order")
        anchors.append(Anchor(lastSeq: lastSeq, head: head))
        coarsen()
    }

    /// Merges the oldest adjacent ranges while there are too many anchors.
    mutating func coarsen() {
        guard anchors.count > Self.maxAnchors else { return }
        var kept: [Anchor] = []
        kept.reserveCapacity(anchors.count)
        var excess = anchors.count - Self.maxAnchors
        var previousEnd = startSeq
        var index = 0
        while index < anchors.count {
            // Dropping anchor `index` merges its range with the next one.
            if excess > 0, index + 1 < anchors.count, anchors[index + 1].lastSeq - previousEnd <= Self.maxSpan {
                kept.append(anchors[index + 1])
                previousEnd = anchors[index + 1].lastSeq
                index += 2
                excess -= 1
                continue
            }
            kept.append(anchors[index])
            previousEnd = anchors[index].lastSeq
            index += 1
        }
        anchors = kept
    }

    /// Moves the start to `seq`, which must be an anchor's end: retention
    /// removed every event at or below it.
    mutating func cut(at seq: UInt64, expired: UInt64) {
        guard seq > startSeq, let head = head(atBoundary: seq) else { return }
        startSeq = seq
        startHead = head
        startReason = .retention
        expiredBeforeStart += expired
        anchors.removeAll { $0.lastSeq <= seq }
    }

    // MARK: Encoding

    func encode() -> [UInt8] {
        var out = ByteWriter(capacity: 64 + anchors.count * 40)
        out.u64(startSeq)
        out.append(startHead.bytes)
        out.u8(startReason.rawValue)
        out.u64(expiredBeforeStart)
        out.u32(UInt32(anchors.count))
        for anchor in anchors {
            out.u64(anchor.lastSeq)
            out.append(anchor.head.bytes)
        }
        return out.bytes
    }

    static func decode(_ payload: [UInt8], path: String) throws(VigilError) -> ChainLedger {
        do throws(PartFormatError) {
            return try withBytes(payload) { (raw) throws(PartFormatError) -> ChainLedger in
                var reader = ByteReader(raw)
                var ledger = ChainLedger()
                ledger.startSeq = try reader.u64("start seq")
                ledger.startHead = ChainDigest(bytes: Array(try reader.bytes(32, "start head")))!
                let reasonAt = reader.offset
                guard let reason = StartReason(rawValue: try reader.u8("start reason")) else {
                    throw PartFormatError("unknown start reason", at: reasonAt)
                }
                ledger.startReason = reason
                ledger.expiredBeforeStart = try reader.u64("expired count")
                let countAt = reader.offset
                let count = Int(try reader.u32("anchor count"))
                guard count <= reader.remaining / 40 else { throw PartFormatError("anchor count \(count) is impossible", at: countAt) }
                ledger.anchors.reserveCapacity(count)
                var previous = ledger.startSeq
                for index in 0..<count {
                    let at = reader.offset
                    let lastSeq = try reader.u64()
                    guard lastSeq > previous else { throw PartFormatError("anchor \(index) does not follow the one before", at: at) }
                    previous = lastSeq
                    ledger.anchors.append(Anchor(lastSeq: lastSeq, head: ChainDigest(bytes: Array(try reader.bytes(32)))!))
                }
                try reader.expectEnd("the chain file")
                return ledger
            }
        } catch {
            throw VigilError(.dataLoss, "\(path): \(error.what) at offset \(error.offset + ChecksummedFile.headerSize)")
        }
    }

    func write(to path: String) throws(VigilError) {
        try ChecksummedFile.write(payload: encode(), magic: Self.magic, to: path)
    }

    static func read(from path: String) throws(VigilError) -> ChainLedger {
        try decode(try ChecksummedFile.readPayload(magic: magic, from: path), path: path)
    }
}
