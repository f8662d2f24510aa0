import VigilCore
import VigilProto

/// One thing verification found wrong.
public struct IntegrityProblem: Sendable, Hashable {
    public enum Kind: String, Sendable, CaseIterable {
        /// An event's bytes differ from what was chained (named by its leaf
        /// hash), or a range's chain does not reach its anchor's head.
        case altered = "ALTERED"
        /// Seqs the chain covers have no event.
        case missing = "MISSING"
        /// An event the chain does not cover: an unknown or duplicate seq.
        case inserted = "INSERTED"
        /// Two events' seqs were exchanged, or rows break a part's sort order.
        case reordered = "REORDERED"
        /// A part, WAL record or chain file fails its checksum or cannot be
        /// read, or a part's index (a block's footer entry) does not describe
        /// its rows.
        case checksum = "CHECKSUM"
        /// A checkpoint's signature fails, or the recomputed head differs from
        /// it; or, once retention statements have begun, events were removed
        /// without a valid signed retention statement (`RetentionStatements`).
        case checkpoint = "CHECKPOINT"
    }

    public var kind: Kind
    /// The event's seq, or the first of a range.
    public var seq: UInt64?
    /// The last seq of a range (MISSING runs, a range whose chain breaks).
    public var lastSeq: UInt64?
    public var eventID: String?
    /// The file, relative to the data directory, and where in it.
    public var location: String?
    public var detail: String

    public init(_ kind: Kind, seq: UInt64? = nil, lastSeq: UInt64? = nil, eventID: String? = nil, location: String? = nil, _ detail: String) {
        self.kind = kind
        self.seq = seq
        self.lastSeq = lastSeq
        self.eventID = eventID
        self.location = location
        self.detail = detail
    }

    /// One line, as `vigil verify` prints it:
    /// `ALTERED seq 42 id 0190… in parts/2026-11-20/0000000000000003.part block 0 row 7: …`.
    public var line: String {
        var text = kind.rawValue
        if let seq {
            if let lastSeq, lastSeq != seq { text += " seqs \(seq)…\(lastSeq)" } else { text += " seq \(seq)" }
        }
        if let eventID, !eventID.isEmpty { text += " id \(eventID)" }
        if let location { text += " in \(location)" }
        return text + ": " + detail
    }

    public var proto: Vigil_V1_IntegrityProblem {
        var problem = Vigil_V1_IntegrityProblem()
        switch kind {
        case .altered: problem.kind = .altered
        case .missing: problem.kind = .missing
        case .inserted: problem.kind = .inserted
        case .reordered: problem.kind = .reordered
        case .checksum: problem.kind = .checksum
        case .checkpoint: problem.kind = .checkpoint
        }
        problem.seq = seq ?? 0
        problem.eventID = eventID ?? ""
        problem.location = location ?? ""
        problem.detail = detail
        if let seq, let lastSeq, lastSeq != seq { problem.detail = "seqs \(seq)…\(lastSeq): " + detail }
        return problem
    }
}

/// What verification found.
public struct IntegrityReport: Sendable {
    /// The first `VerificationOptions.maxProblems` problems, in the order found.
    public var problems: [IntegrityProblem] = []
    /// Every problem found, including those not kept in `problems`.
    public var problemsTotal: UInt64 = 0
    /// Events whose leaf hash was recomputed from their stored bytes.
    public var eventsChecked: UInt64 = 0
    public var partsChecked: UInt64 = 0
    public var walRecordsChecked: UInt64 = 0
    public var checkpointsChecked: UInt64 = 0
    /// Events removed by retention, accounted for by the chain.
    public var eventsExpired: UInt64 = 0
    /// The last seq the chain was recomputed through, and its head there.
    public var headSeq: UInt64 = 0
    public var headHash = ChainDigest.zero
    /// Remarks that are not problems (a torn WAL tail, events older than the
    /// chain, checkpoints before the retention cut, the key used).
    public var notes: [String] = []

    public var intact: Bool { problemsTotal == 0 }

    public init() {}

    mutating func add(_ problem: IntegrityProblem, limit: Int) {
        problemsTotal += 1
        if problems.count < limit { problems.append(problem) }
    }

    public var proto: Vigil_V1_VerifyResponse {
        var response = Vigil_V1_VerifyResponse()
        response.intact = intact
        response.eventsChecked = eventsChecked
        response.headHash = headHash.hex
        response.headSeq = headSeq
        response.problems = problems.map(\.line)
        response.details = problems.map(\.proto)
        response.problemsTotal = problemsTotal
        response.partsChecked = partsChecked
        response.walRecordsChecked = walRecordsChecked
        response.checkpointsChecked = checkpointsChecked
        response.eventsExpired = eventsExpired
        response.notes = notes
        return response
    }
}

/// How to verify.
public struct VerificationOptions: Sendable {
    /// The seqs to check, inclusive; 0 means from the first / to the last.
    /// The range is widened to whole anchored ranges (each is checked against
    /// its anchor's head).
    public var fromSeq: UInt64 = 0
    public var toSeq: UInt64 = 0
    /// Where the signed checkpoints are; nil: none are checked.
    public var checkpointDirectory: String?
    /// The key checkpoints must be signed with; nil: each is checked with the
    /// key it carries, and all must carry the same one.
    public var trustedKey: CheckpointPublicKey?
    /// Seqs whose leaves are held at once (32 bytes each, plus a byte): the
    /// memory bound of a run. Anchored ranges larger than this are held whole.
    public var windowSeqs = 1 << 20
    /// Problems kept in the report (all are counted).
    public var maxProblems = 1_000
    /// Called after each window with (events checked, events expected).
    public var progress: (@Sendable (UInt64, UInt64) -> Void)?
    /// Polled between blocks: verification stops with CANCELLED when true.
    public var isCancelled: @Sendable () -> Bool = { false }

    public init() {}
}
