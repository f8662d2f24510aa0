import Crypto
import Foundation
import VigilCore
import VigilProto

/// Signed checkpoints: the chain head at a seq, signed with Ed25519, one file
/// per checkpoint, `<16 hex seq>.checkpoint` (a binary `vigil.v1.SignedCheckpoint`)
/// in the checkpoint directory. The signature covers the signing bytes:
///
///     "vigil-checkpoint-v1" (19 ASCII bytes) || seq (u64 BE) || head (32 bytes) || created_at_nanos (i64 BE)
public enum Checkpoints {
    public static let formatVersion: UInt32 = 1
    static let fileExtension = ".checkpoint"
    static let domain = Array("vigil-checkpoint-v1".utf8)

    public static func signingBytes(seq: UInt64, head: ChainDigest, createdAt: Int64) -> [UInt8] {
        var out = ByteWriter(capacity: domain.count + 48)
        out.append(domain)
        out.u64(seq)
        out.append(head.bytes)
        out.i64(createdAt)
        return out.bytes
    }

    public static func sign(seq: UInt64, head: ChainDigest, createdAt: Int64, key: CheckpointKey) throws(VigilError) -> Vigil_V1_SignedCheckpoint {
        var checkpoint = Vigil_V1_SignedCheckpoint()
        checkpoint.formatVersion = formatVersion
        checkpoint.seq = seq
        checkpoint.head = Data(head.bytes)
        checkpoint.createdAtNanos = createdAt
        checkpoint.publicKey = Data(key.publicKey.raw)
        do {
            checkpoint.signature = try key.privateKey.signature(for: signingBytes(seq: seq, head: head, createdAt: createdAt))
        } catch {
            throw VigilError(.internal, "cannot sign a checkpoint: \(error)")
        }
        return checkpoint
    }

    public static func fileName(seq: UInt64) -> String { hex16(seq) + fileExtension }

    /// The subdirectory of a checkpoint directory where `vigil restore
    /// --checkpoint-dir` moves checkpoints past a restored backup: signed
    /// for events the restore lost, kept as the record of that loss. Verify
    /// reads only the directory's own files, and notes these.
    public static let supersededDirectory = "superseded"

    /// Every set in `directory`'s `superseded/` (none when there is no such
    /// directory): checkpoints a restore set aside, and retention statements
    /// a start set aside (of removals that never committed), counted by kind.
    public static func supersededSets(in directory: String) -> [(name: String, checkpoints: Int, statements: Int)] {
        let root = directory + "/" + supersededDirectory
        guard FileIO.exists(root), let sets = try? FileIO.list(root) else { return [] }
        return sets.sorted().compactMap { name in
            guard let files = try? FileIO.list(root + "/" + name) else { return nil }
            return (name, files.count { $0.hasSuffix(fileExtension) }, files.count { $0.hasSuffix(RetentionStatements.fileExtension) })
        }
    }

    /// `<UTC day>T<hhmmss>Z-after-seq-<cut>`, e.g. `2026-12-06T221500Z-after-seq-1200`
    /// (the day as parts' directories name it).
    public static func supersededName(at nanos: Int64, cutSeq: UInt64) -> String {
        supersededTime(at: nanos) + "-after-seq-\(cutSeq)"
    }

    /// `<UTC day>T<hhmmss>Z`, how a set in `superseded/` begins its name.
    static func supersededTime(at nanos: Int64) -> String {
        let seconds = (nanos - dayNumber(of: nanos) * 86_400_000_000_000) / 1_000_000_000
        func two(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return dayName(of: nanos) + "T\(two(seconds / 3_600))\(two(seconds / 60 % 60))\(two(seconds % 60))Z"
    }

    /// Writes `checkpoint` into `directory` (created if missing) unless a
    /// checkpoint of its seq is there already. Returns whether it wrote.
    @discardableResult
    public static func write(_ checkpoint: Vigil_V1_SignedCheckpoint, to directory: String) throws(VigilError) -> Bool {
        try FileIO.makeDirectory(directory)
        let path = directory + "/" + fileName(seq: checkpoint.seq)
        guard !FileIO.exists(path) else { return false }
        let bytes: [UInt8] = (try? checkpoint.serializedBytes()) ?? []
        try FileIO.writeAtomically(bytes, to: path)
        return true
    }

    /// A checkpoint file as read: its name and either its contents or why it cannot be read.
    public struct Stored: Sendable {
        public var name: String
        public var checkpoint: Result<Vigil_V1_SignedCheckpoint, VigilError>
    }

    /// Every `*.checkpoint` file of `directory` (none when it does not exist), by name.
    public static func list(_ directory: String) throws(VigilError) -> [Stored] {
        try list(directory, where: { _ in true })
    }

    /// The `*.checkpoint` files of `directory` whose name says a seq above
    /// `seq`, or does not say one: a server's start-up check reads the few
    /// past its head, not a year of checkpoints (105,000 at 5 minutes).
    public static func list(_ directory: String, namedAbove seq: UInt64) throws(VigilError) -> [Stored] {
        try list(directory) { name in
            guard let named = UInt64(name.dropLast(fileExtension.count), radix: 16), fileName(seq: named) == name else { return true }
            return named > seq
        }
    }

    private static func list(_ directory: String, where include: (String) -> Bool) throws(VigilError) -> [Stored] {
        guard FileIO.exists(directory) else { return [] }
        var result: [Stored] = []
        for name in try FileIO.list(directory).sorted() where name.hasSuffix(fileExtension) && include(name) {
            do throws(VigilError) {
                result.append(Stored(name: name, checkpoint: .success(try read(directory + "/" + name))))
            } catch {
                result.append(Stored(name: name, checkpoint: .failure(error)))
            }
        }
        return result
    }

    /// The checkpoint file at `path`, unverified. Throws DATA_LOSS for a file
    /// that is not one.
    public static func read(_ path: String) throws(VigilError) -> Vigil_V1_SignedCheckpoint {
        let file = try FileHandleDescriptor.open(path, flags: O_RDONLY)
        defer { file.close() }
        let size = try file.size()
        guard size <= 4096 else { throw VigilError(.dataLoss, "\(size) bytes: too large for a checkpoint") }
        let bytes = try file.read(count: size, at: 0)
        guard let checkpoint = try? Vigil_V1_SignedCheckpoint(serializedBytes: bytes) else {
            throw VigilError(.dataLoss, "not a SignedCheckpoint message")
        }
        return checkpoint
    }

    /// Why `checkpoint` cannot be trusted, or nil when its signature holds
    /// (under `trusted`, when given, else under the key it carries).
    public static func problem(with checkpoint: Vigil_V1_SignedCheckpoint, trusted: CheckpointPublicKey?) -> String? {
        guard checkpoint.formatVersion == formatVersion else {
            return "format version \(checkpoint.formatVersion) is not \(formatVersion)"
        }
        guard let head = ChainDigest(bytes: Array(checkpoint.head)) else { return "its head is \(checkpoint.head.count) bytes, not 32" }
        guard let key = CheckpointPublicKey(raw: Array(checkpoint.publicKey)) else { return "it carries no valid Ed25519 public key" }
        if let trusted, trusted != key {
            return "it is signed by key \(key.hex), not by the trusted key \(trusted.hex)"
        }
        let message = signingBytes(seq: checkpoint.seq, head: head, createdAt: checkpoint.createdAtNanos)
        guard key.isValid(signature: Array(checkpoint.signature), for: message) else {
            return "its signature does not verify (the checkpoint was altered or forged)"
        }
        return nil
    }
}
