import VigilCore
import VigilStorage

/// How far the alert engine has evaluated the log, persisted so that a
/// restart resumes there: every event up to `throughSeq` has been counted
/// by each rule in `rules`, and every alert those counts called for is
/// stored. Without it, a restart would start at the store's head and never
/// evaluate what was stored after the engine stopped (a graceful shutdown
/// stops the engine before the server drains) or what it had not reached
/// when the process died.
///
/// Lives in `<data-dir>/alerts.progress`: a `ChecksummedFile` (magic
/// `VALP`) whose payload is, big-endian, the u64 `throughSeq`, a u32 count
/// and that many u64 rule fingerprints (`AlertRule.definitionFingerprint`).
/// Written atomically at most about once a second while the engine moves,
/// and when it stops: after a crash the engine counts again from a point up
/// to a second back, and the alerts' idempotency keys keep those it fired
/// meanwhile from being stored twice.
struct AlertProgress: Equatable {
    static let magic = "VALP"

    var throughSeq: UInt64
    /// The rules (by definition) that counted every event through `throughSeq`.
    var rules: Set<UInt64>

    func write(to path: String) throws(VigilError) {
        var payload: [UInt8] = []
        func append(_ value: UInt64, bytes: Int) {
            for shift in stride(from: (bytes - 1) * 8, through: 0, by: -8) { payload.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
        }
        append(throughSeq, bytes: 8)
        append(UInt64(rules.count), bytes: 4)
        for rule in rules.sorted() { append(rule, bytes: 8) }
        try ChecksummedFile.write(payload: payload, magic: Self.magic, to: path)
    }

    /// The progress stored at `path`; nil when there is none yet.
    static func read(from path: String) throws(VigilError) -> AlertProgress? {
        guard FileIO.exists(path) else { return nil }
        let payload = try ChecksummedFile.readPayload(magic: magic, from: path)
        func word(_ at: Int, _ bytes: Int) -> UInt64 { payload[at..<at + bytes].reduce(0) { $0 << 8 | UInt64($1) } }
        guard payload.count >= 12, payload.count == 12 + 8 * Int(word(8, 4)) else {
            throw VigilError(.dataLoss, "\(path): \(payload.count) bytes do not hold a seq and the rules they announce")
        }
        let count = Int(word(8, 4))
        return AlertProgress(throughSeq: word(0, 8), rules: Set((0..<count).map { word(12 + 8 * $0, 8) }))
    }
}
