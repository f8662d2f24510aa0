import VigilCore

#if canImport(Glibc)
import Glibc
#endif

/// The start of a signing store: `RETENTION` against the signed settings
/// (`RetentionStatements.SignedSettings`, the rules in the DataDirectory article).
extension RetentionSettings {
    /// What `reconcile` found and did, for the server's log.
    public struct Reconciliation: Sendable, Equatable {
        /// A new generation was signed: which, and why.
        public var signed: String?
        /// `RETENTION` was not the signed file: what was found and put back (an error to log).
        public var restored: String?
        /// Where the file found was moved (`RETENTION.unsigned-<UTC time>`).
        public var setAside: String?
        /// `RETENTION` pins the signed settings in force over other flags, as
        /// a restored backup's does (a warning).
        public var pinned: String?
        /// Retention is suspended, and why (an error).
        public var suspended: String?
        /// Why the settings could not be checked, put back or signed.
        public var failure: String?

        public init() {}
    }

    /// At start, with a signer, once the data directory is locked and has
    /// passed its checks: reads `RETENTION` (once: what is checked is what is
    /// applied) and compares it with the highest generation of settings
    /// statements.
    ///
    /// - No statement yet (a new key, a store from before settings were
    ///   signed): the settings found are signed as generation 1.
    /// - The file is the signed one, or holds the signed settings in force
    ///   (a restored backup records them so; `pinned` when that overrides the
    ///   flags now given): it stays.
    /// - Anything else, no file or one that does not parse included, was
    ///   changed behind the server (or a crash came between a statement and
    ///   its file): the signed settings are put in force, the file found is
    ///   kept as `RETENTION.unsigned-<UTC time>` for people to examine, and
    ///   the signed file is written back.
    /// - The highest generation's statement does not verify (damage, another
    ///   key): retention is suspended, so nothing is removed or hidden until
    ///   a change signs the settings again. No older generation stands in for
    ///   it: damage to the latest would bring back settings since changed.
    ///
    /// A new generation is signed whenever the file or the settings in force
    /// (the flags changed) differ from the latest statement's. Throws only
    /// when the file is all there is and it cannot be applied (no statement
    /// or an untrusted one, and a malformed file), as a store without a key
    /// refuses it; other failures are reported, and the store starts.
    func reconcile(now: Int64 = currentUnixNanos()) throws(VigilError) -> Reconciliation {
        var result = Reconciliation()
        guard let signer else { return result }
        var found: [UInt8]?
        var foundLines: [FileLine] = []
        // Why the file found cannot be applied: not a regular file, malformed.
        var foundProblem: VigilError?
        do throws(VigilError) {
            found = try Self.readBytes(path)
            if let found { foundLines = try Self.parse(found, path: path) }
        } catch {
            foundProblem = error
        }
        let latest: RetentionStatements.LatestSettings
        do throws(VigilError) {
            latest = try RetentionStatements.latestSettings(in: signer.directory, trusted: signer.key.publicKey)
        } catch {
            if let foundProblem { throw foundProblem }
            state.withLock { $0.values = Self.overlay(foundLines, on: flags) }
            result.failure =
                "cannot read the signed retention settings in \(signer.directory) (\(error.message)); RETENTION is applied as found, unchecked, and changes are refused until a start reads them"
            return result
        }
        let cause: String
        var file = found
        switch latest {
        case .none:
            if let foundProblem { throw foundProblem }
            state.withLock { $0.values = Self.overlay(foundLines, on: flags); $0.generation = 0 }
            cause = "found at the first start with the checkpoint key" + (found == nil ? " (no RETENTION file: the flags decide)" : "")
        case .untrusted(let name, let generation, let error):
            if let foundProblem { throw foundProblem }
            let reason =
                "the latest retention settings statement, \(signer.directory)/\(name), cannot be trusted (\(error.message)), so nothing shows RETENTION is what was set. Retention is suspended: nothing is removed or hidden until the settings are signed again. Set the retention you want with vigil retention (which signs all of it), or put back a valid statement and restart"
            state.withLock {
                $0.values = Self.overlay(foundLines, on: flags)
                $0.generation = generation
                $0.suspended = reason
            }
            result.suspended = reason
            return result
        case .signed(let signed):
            if foundProblem == nil && signed.accepts(found) {
                let values = Self.overlay(foundLines, on: flags)
                state.withLock { $0.values = values; $0.generation = signed.generation }
                if found == signed.file {
                    if Self.fileBytes(values) == signed.inForce { return result }
                    cause = "the flags changed"
                } else {
                    let unpinned = Self.overlay((try? Self.parse(signed.file ?? [], path: path)) ?? [], on: flags)
                    if unpinned != values {
                        result.pinned =
                            "RETENTION pins the settings in force when generation \(signed.generation) was signed (\(Self.describe(signed.inForce))), as a restored backup's does; they override the flags now given, which would make them \(Self.describe(Self.fileBytes(unpinned))). If this directory was not restored from a backup, RETENTION was written behind the server: set the retention you want with vigil retention"
                    }
                    cause = "RETENTION holds the settings in force of generation \(signed.generation), as a backup records them"
                }
                break
            }
            let values = Self.overlay((try? Self.parse(signed.file ?? [], path: path)) ?? [], on: flags)
            // In force now, whatever happens to the files below.
            state.withLock { $0.values = values; $0.generation = signed.generation }
            file = signed.file
            var restored = restoredDescription(found: found, problem: foundProblem, signed: signed, directory: signer.directory)
            do throws(VigilError) {
                if let aside = try putBack(signed.file, found: found != nil || foundProblem != nil, now: now) {
                    result.setAside = aside
                    restored += "; the file found was kept as \(aside)"
                }
            } catch {
                result.failure = "cannot put the signed RETENTION file back (\(error.message)); the signed settings are in force, and the next start tries again"
            }
            result.restored = restored
            if Self.fileBytes(values) == signed.inForce { return result }
            cause = "the flags changed"
        }
        do throws(VigilError) {
            try state.withLock { (state: inout State) throws(VigilError) in
                let generation = state.generation ?? 0
                guard generation < .max else { throw VigilError(.outOfRange, "generation \(generation) is the last there can be") }
                try RetentionStatements.signSettings(
                    generation: generation + 1, file: file, inForce: Self.fileBytes(state.values), cause: cause, signer: signer, now: now)
                state.generation = generation + 1
                result.signed = "signed the retention settings (\(Self.describe(Self.fileBytes(state.values)))) as generation \(generation + 1): \(cause)"
            }
        } catch {
            result.failure = "cannot sign the retention settings into \(signer.directory): \(error.message); they stay unsigned until a change or a start signs them"
        }
        return result
    }

    /// Writes the signed `file` (nil: none) as `RETENTION`, keeping what was
    /// there (`found`) as `RETENTION.unsigned-<UTC time>`: by a second name
    /// first when it is a regular file, so that a crash in between leaves
    /// the file in place rather than none. Returns the name it was kept by.
    private func putBack(_ file: [UInt8]?, found: Bool, now: Int64) throws(VigilError) -> String? {
        var aside: String?
        if found {
            let name = path + ".unsigned-" + Checkpoints.supersededTime(at: now)
            var info = stat()
            if lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG {
                try FileIO.link(path, to: name)
                if file == nil { try FileIO.remove(path) }
            } else {
                try FileIO.rename(path, to: name)
            }
            aside = name
        }
        if let file {
            try FileIO.writeAtomically(file, to: path)
        } else {
            try FileIO.syncDirectory(FileIO.directoryName(of: path))
        }
        return aside
    }

    private func restoredDescription(
        found: [UInt8]?, problem: VigilError?, signed: RetentionStatements.SignedSettings, directory: String
    ) -> String {
        let foundText = found.map(Self.describe) ?? problem.map { "unusable: \($0.message)" } ?? "none"
        var text =
            "RETENTION in the data directory (\(foundText)) is not the file signed as generation \(signed.generation) on \(formatTime(signed.createdAt)) (\(signed.file.map(Self.describe) ?? "none"): \(signed.cause)): it was changed without the server"
        if signed.generation > 1, problem == nil,
            case .success(let previous) = RetentionStatements.readSettings(
                directory + "/" + RetentionStatements.settingsFileName(generation: signed.generation - 1), trusted: signed.publicKey),
            previous.accepts(found)
        {
            text += " (it holds generation \(previous.generation)'s settings: a crash between signing generation \(signed.generation) and writing it leaves that, as does putting older settings back by hand)"
        }
        return text + ". The signed settings are in force"
    }

    /// After a restore into a checkpoint directory that holds signed
    /// settings already (a server's own, kept outside its data directory):
    /// when the latest generation there does not accept the restored
    /// `RETENTION` (the settings changed after the backup), its file — or,
    /// when it had none, its settings in force, as a backup records them —
    /// replaces it. The restored server then starts under the latest signed
    /// settings instead of reporting the backup's as changed behind it.
    /// Returns a line for people; nil when nothing changed.
    public static func alignRestored(
        dataDirectory: String, checkpointDirectory: String, trusted: CheckpointPublicKey?
    ) throws(VigilError) -> String? {
        guard case .signed(let signed) = try RetentionStatements.latestSettings(in: checkpointDirectory, trusted: trusted) else { return nil }
        let path = dataDirectory + "/" + fileName
        let found = try? readBytes(path)
        if signed.accepts(found) { return nil }
        let bytes = signed.file ?? signed.inForce
        try FileIO.writeAtomically(bytes, to: path)
        return "retention: \(checkpointDirectory) holds settings signed after the backup (generation \(signed.generation) on \(formatTime(signed.createdAt)): \(describe(bytes))); they replace the backup's RETENTION (\(found.map(describe) ?? "none"))"
    }

    /// A `RETENTION` file's settings on one line, as `*=90d, globex=forever`.
    public static func describe(_ bytes: [UInt8]) -> String {
        guard let lines = try? parse(bytes, path: fileName) else {
            return "unreadable: \"\(String(decoding: bytes.prefix(100), as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).joined(separator: "\\n"))\""
        }
        guard !lines.isEmpty else { return "empty" }
        let shown = lines.prefix(20).map { "\($0.tenant ?? "*")=\(Values.text($0.nanos))" }.joined(separator: ", ")
        return lines.count > 20 ? shown + ", … (\(lines.count) settings)" : shown
    }
}
