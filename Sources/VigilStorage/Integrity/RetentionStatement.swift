import Crypto
import Foundation
import VigilCore
import VigilProto

/// Signed retention statements: the server's word that events gone from the
/// chain were removed by retention, not deleted.
///
/// The chain lets events go in two ways only: its start moves past them (a
/// retention pass removed everything up to an anchor), or an expired-leaves
/// file keeps their leaves (retention or a merge removed them from a range
/// that keeps other events). Both are files in `chain/`, checksummed but not
/// signed, so without a statement whoever could write the data directory could
/// delete events and write either file: verify counted them as expired. Each
/// removal is now signed, with the checkpoint key, into the checkpoint
/// directory before it commits, and verify (once statements have begun
/// there: `begin.retention`) requires a statement for the live chain start
/// and for every live expired-leaves file.
///
/// One file per fact, named so that it is found without listing the
/// directory: `start-<16 hex seq>-<16 hex of the head's first 8 bytes>.retention`
/// and `expired-<16 hex file number>-<16 hex of the payload's SHA-256>.retention`,
/// each a binary `vigil.v1.SignedRetentionStatement`. A statement whose fact
/// is no longer live (an expired file the chain's start has passed) stays as
/// the record of that removal.
public enum RetentionStatements {
    public static let formatVersion: UInt32 = 1
    static let fileExtension = ".retention"
    static let domain = Array("vigil-retention-v1".utf8)

    /// Where the signing key and the statements go (`vigil serve
    /// --checkpoint-key` and `--checkpoint-dir`).
    public struct Signer: Sendable {
        public var key: CheckpointKey
        public var directory: String

        public init(key: CheckpointKey, directory: String) {
            self.key = key
            self.directory = directory
        }
    }

    /// What a statement attests, and the name of its file.
    public enum Fact: Sendable, Hashable {
        /// The chain starts after `seq`, with `head`; `eventsRemoved` events at or below it were removed.
        case chainStart(seq: UInt64, head: ChainDigest, eventsRemoved: UInt64)
        /// The expired-leaves file at `path` (relative to the data directory).
        case expired(path: String, sha256: ChainDigest, events: UInt64, firstSeq: UInt64, lastSeq: UInt64)

        /// The chain's start of `ledger`, when retention moved it (nil: at 0, or
        /// where events stored before the chain end).
        static func start(of ledger: ChainLedger) -> Fact? {
            guard ledger.startSeq > 0, ledger.startReason == .retention else { return nil }
            return .chainStart(seq: ledger.startSeq, head: ledger.startHead, eventsRemoved: ledger.expiredBeforeStart)
        }

        /// The fact of an expired-leaves file as written or read.
        static func expired(_ file: ExpiredLeaves, path: String) -> Fact {
            .expired(
                path: path, sha256: ChainDigest(SHA256.hash(data: file.encode())), events: UInt64(file.entries.count),
                firstSeq: file.entries.first?.seq ?? 0, lastSeq: file.maxSeq)
        }

        public var fileName: String {
            switch self {
            case .chainStart(let seq, let head, _):
                return "start-\(hex16(seq))-\(hex16(head.prefix64))" + fileExtension
            case .expired(let path, let sha256, _, _, _):
                let number = ChainFiles.parse(String(path.split(separator: "/").last ?? ""))?.number ?? 0
                return "expired-\(hex16(number))-\(hex16(sha256.prefix64))" + fileExtension
            }
        }

        /// The removal, as a problem located at its file describes it.
        public var removal: String {
            switch self {
            case .chainStart(let seq, _, let removed): return "the chain starts after seq \(seq) (\(removed) events removed at or below it)"
            case .expired(_, _, let events, let first, let last): return "\(events) events removed (seqs \(first)…\(last)), their leaves kept here"
            }
        }

        /// As verify names it.
        public var description: String {
            switch self {
            case .chainStart(let seq, _, let removed): return "the chain's start at seq \(seq) (\(removed) events removed at or below it)"
            case .expired(let path, _, let events, let first, let last): return "\(path) (\(events) removed events, seqs \(first)…\(last))"
            }
        }

        var proto: Vigil_V1_RetentionStatement {
            var statement = Vigil_V1_RetentionStatement()
            switch self {
            case .chainStart(let seq, let head, let removed):
                statement.chainStart.seq = seq
                statement.chainStart.head = Data(head.bytes)
                statement.chainStart.eventsRemoved = removed
            case .expired(let path, let sha256, let events, let first, let last):
                statement.expired.path = path
                statement.expired.sha256 = Data(sha256.bytes)
                statement.expired.events = events
                statement.expired.firstSeq = first
                statement.expired.lastSeq = last
            }
            return statement
        }

        /// The fact `statement` attests, or nil when it holds none or both.
        init?(_ statement: Vigil_V1_RetentionStatement) {
            switch (statement.hasChainStart, statement.hasExpired) {
            case (true, false):
                guard let head = ChainDigest(bytes: Array(statement.chainStart.head)) else { return nil }
                self = .chainStart(seq: statement.chainStart.seq, head: head, eventsRemoved: statement.chainStart.eventsRemoved)
            case (false, true):
                let file = statement.expired
                guard let sha256 = ChainDigest(bytes: Array(file.sha256)) else { return nil }
                self = .expired(path: file.path, sha256: sha256, events: file.events, firstSeq: file.firstSeq, lastSeq: file.lastSeq)
            default:
                return nil
            }
        }
    }

    /// A statement as read and checked.
    public struct Checked: Sendable {
        public var reason: Vigil_V1_RetentionStatement.Reason
        public var createdAt: Int64
        public var publicKey: CheckpointPublicKey
    }

    public static func signingBytes(_ statement: [UInt8]) -> [UInt8] { domain + statement }

    /// Signs `fact` and writes it into `signer.directory` (created if
    /// missing), durably, unless a statement of it signed with this key is
    /// there already. Anything else under its name (the names are
    /// predictable: a file planted there must not stand in for it) is replaced.
    /// Returns the path written, nil when it was there already.
    @discardableResult
    public static func attest(
        _ fact: Fact, reason: Vigil_V1_RetentionStatement.Reason, retention: String, signer: Signer, now: Int64 = currentUnixNanos()
    ) throws(VigilError) -> String? {
        if case .success = check(fact, in: signer.directory, trusted: signer.key.publicKey) { return nil }
        var statement = fact.proto
        statement.formatVersion = formatVersion
        statement.reason = reason
        statement.createdAtNanos = now
        statement.retention = retention
        let path = signer.directory + "/" + fact.fileName
        try write(statement, to: path, signer: signer)
        return path
    }

    /// The name of the statement that statements have begun
    /// (`RetentionStatement.Reason.begin`).
    public static let beginFileName = "begin" + fileExtension

    /// Writes `begin.retention` unless a valid one signed with this key is
    /// there. Returns whether it wrote.
    @discardableResult
    public static func begin(signer: Signer, retention: String, now: Int64 = currentUnixNanos()) throws(VigilError) -> Bool {
        if case .success = began(in: signer.directory, trusted: signer.key.publicKey) { return false }
        var statement = Vigil_V1_RetentionStatement()
        statement.formatVersion = formatVersion
        statement.reason = .begin
        statement.createdAtNanos = now
        statement.retention = retention
        try write(statement, to: signer.directory + "/" + beginFileName, signer: signer)
        return true
    }

    /// `begin.retention` in `directory`: nil when there is none, else when
    /// statements began or why it cannot be trusted.
    public static func began(in directory: String, trusted: CheckpointPublicKey?) -> Result<Checked, VigilError>? {
        let path = directory + "/" + beginFileName
        guard FileIO.exists(path) else { return nil }
        return read(path, trusted: trusted).flatMap { statement, checked in
            guard statement.reason == .begin, Fact(statement) == nil else {
                return .failure(VigilError(.dataLoss, "it is not a BEGIN statement"))
            }
            return .success(checked)
        }
    }

    static func write(_ statement: Vigil_V1_RetentionStatement, to path: String, signer: Signer) throws(VigilError) {
        try FileIO.makeDirectory(signer.directory)
        try FileIO.writeAtomically(try signedBytes(statement, key: signer.key), to: path)
    }

    /// `statement` signed with `key`, as a `SignedRetentionStatement`'s bytes.
    static func signedBytes(_ statement: Vigil_V1_RetentionStatement, key: CheckpointKey) throws(VigilError) -> [UInt8] {
        var signed = Vigil_V1_SignedRetentionStatement()
        signed.statement = Data((try? statement.serializedBytes()) ?? [])
        signed.publicKey = Data(key.publicKey.raw)
        do {
            signed.signature = try key.privateKey.signature(for: signingBytes(Array(signed.statement)))
        } catch {
            throw VigilError(.internal, "cannot sign a retention statement: \(error)")
        }
        return (try? signed.serializedBytes()) ?? []
    }

    /// Moves into `superseded/<UTC time>-unused-retention-statements/` the
    /// statements of removals that never committed: a start after `startSeq`
    /// (the live chain's), or an expired-leaves file not among `live` with
    /// events after it. They come from an operation that failed or was
    /// interrupted between its statement and its commit, or from a restore's
    /// lost future; left in place, one would attest a file recreated by hand
    /// with the same contents. Returns how many it moved.
    public static func setAsideUnused(in directory: String, live: [Fact], startSeq: UInt64, now: Int64 = currentUnixNanos()) throws(VigilError) -> Int {
        let liveNames = Set(live.map(\.fileName))
        var unused: [String] = []
        for name in try names(in: directory) where name != beginFileName && !liveNames.contains(name) {
            let parts = name.dropLast(fileExtension.count).split(separator: "-")
            guard parts.count == 3, let number = UInt64(parts[1], radix: 16) else { continue }
            switch parts[0] {
            case "start" where number > startSeq:
                unused.append(name)
            case "expired":
                guard case .success(let (statement, _)) = read(directory + "/" + name, trusted: nil),
                    case .expired(_, _, _, _, let lastSeq)? = Fact(statement), lastSeq > startSeq
                else { continue }
                unused.append(name)
            default:
                continue
            }
        }
        guard !unused.isEmpty else { return 0 }
        let superseded = directory + "/" + Checkpoints.supersededDirectory
        let destination = superseded + "/" + Checkpoints.supersededTime(at: now) + "-unused-retention-statements"
        try FileIO.makeDirectory(superseded)
        try FileIO.makeDirectory(destination)
        for name in unused { try FileIO.rename(directory + "/" + name, to: destination + "/" + name) }
        try FileIO.syncDirectory(destination)
        try FileIO.syncDirectory(superseded)
        try FileIO.syncDirectory(directory)
        return unused.count
    }

    /// The names of the statements in `directory` (none when it does not exist).
    public static func names(in directory: String) throws(VigilError) -> [String] {
        guard FileIO.exists(directory) else { return [] }
        return try FileIO.list(directory).filter { $0.hasSuffix(fileExtension) }.sorted()
    }

    /// Copies the statements of `source` that `destination` lacks (a
    /// restore's into an external checkpoint directory). Settings statements
    /// only when they verify under `trusted`, or, without it, under the key
    /// of `destination`'s own latest settings: the highest generation decides
    /// the retention, and a backup is not the server's to vouch for. Returns how many.
    public static func copyAll(from source: String, to destination: String, trusted: CheckpointPublicKey? = nil) throws(VigilError) -> Int {
        var settingsKey = trusted
        // Settings there whose key cannot be told (the latest damaged): copy none.
        var copySettings = true
        if settingsKey == nil {
            switch try latestSettings(in: destination, trusted: nil) {
            case .none: break
            case .signed(let own): settingsKey = own.publicKey
            case .untrusted: copySettings = false
            }
        }
        var copied = 0
        for name in try names(in: source) where !FileIO.exists(destination + "/" + name) {
            if settingsGeneration(ofFileName: name) != nil {
                guard copySettings else { continue }
                if let settingsKey, case .failure = readSettings(source + "/" + name, trusted: settingsKey) { continue }
            }
            let file = try FileHandleDescriptor.open(source + "/" + name, flags: O_RDONLY)
            defer { file.close() }
            try FileIO.makeDirectory(destination)
            try FileIO.writeAtomically(try file.read(count: try file.size(), at: 0), to: destination + "/" + name)
            copied += 1
        }
        return copied
    }

    /// The statement of `fact` in `directory`: nil when there is none, else
    /// what it says or why it cannot be trusted (unreadable, a bad signature,
    /// signed by a key other than `trusted`, or attesting something else).
    public static func check(_ fact: Fact, in directory: String, trusted: CheckpointPublicKey?) -> Result<Checked, VigilError>? {
        let path = directory + "/" + fact.fileName
        guard FileIO.exists(path) else { return nil }
        return read(path, trusted: trusted).flatMap { statement, checked in
            guard let attested = Fact(statement), attested == fact else {
                return .failure(VigilError(.dataLoss, "it attests \(Fact(statement)?.description ?? "no removal"), not \(fact.description)"))
            }
            return .success(checked)
        }
    }

    /// The statement at `path` once its signature holds (under `trusted`,
    /// when given, else under the key it carries).
    static func read(
        _ path: String, trusted: CheckpointPublicKey?, maxBytes: Int = 64 * 1024
    ) -> Result<(Vigil_V1_RetentionStatement, Checked), VigilError> {
        let signed: Vigil_V1_SignedRetentionStatement
        do throws(VigilError) {
            let file = try FileHandleDescriptor.open(path, flags: O_RDONLY)
            defer { file.close() }
            let size = try file.size()
            guard size <= maxBytes else { return .failure(VigilError(.dataLoss, "\(size) bytes: too large for a retention statement")) }
            guard let message = try? Vigil_V1_SignedRetentionStatement(serializedBytes: try file.read(count: size, at: 0)) else {
                return .failure(VigilError(.dataLoss, "not a SignedRetentionStatement message"))
            }
            signed = message
        } catch {
            return .failure(error)
        }
        guard let key = CheckpointPublicKey(raw: Array(signed.publicKey)) else {
            return .failure(VigilError(.dataLoss, "it carries no valid Ed25519 public key"))
        }
        if let trusted, trusted != key {
            return .failure(VigilError(.dataLoss, "it is signed by key \(key.hex), not by the trusted key \(trusted.hex)"))
        }
        guard key.isValid(signature: Array(signed.signature), for: signingBytes(Array(signed.statement))) else {
            return .failure(VigilError(.dataLoss, "its signature does not verify (the statement was altered or forged)"))
        }
        guard let statement = try? Vigil_V1_RetentionStatement(serializedBytes: signed.statement),
            statement.formatVersion == formatVersion
        else {
            return .failure(VigilError(.dataLoss, "its signed statement is not a format \(formatVersion) RetentionStatement"))
        }
        return .success((statement, Checked(reason: statement.reason, createdAt: statement.createdAtNanos, publicKey: key)))
    }
}

extension ChainDigest {
    /// The first 8 bytes, big-endian: enough to tell two statements' files apart.
    var prefix64: UInt64 { words.0 }
}
