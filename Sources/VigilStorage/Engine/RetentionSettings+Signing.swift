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
        /// Retention is suspended, and why (an error).
        public var suspended: String?
        /// Why the settings could not be checked, put back or signed.
        public var failure: String?

        public init() {}
    }

    /// At start, once the data directory is locked and has passed its
    /// checks, when there are signed settings to check against (a signer, or
    /// `settingsDirectory`): reads `RETENTION` once (what is checked is what
    /// is applied) and compares it with the highest generation of settings
    /// statements.
    ///
    /// - No statement yet (a new key, a store from before settings were
    ///   signed): the settings found are signed as generation 1.
    /// - The file is the signed one: it stays.
    /// - Anything else, no file or one that does not parse included, was
    ///   changed behind the server (or a crash came between a statement and
    ///   its file): the signed settings are put in force, the file found is
    ///   kept as `RETENTION.unsigned-<UTC time>` for people to examine, and
    ///   the signed file is written back.
    /// - The statements cannot be read, or the highest generation's does not
    ///   verify (damage, another key): nothing shows which settings were
    ///   set. Retention is suspended (nothing removed or hidden), the file
    ///   found stays unapplied where it is, and the flags alone are the
    ///   settings a change builds on (`suspend`). No older generation stands
    ///   in for the latest: damage to it would bring back settings since changed.
    ///
    /// A signer signs a new generation whenever the settings in force (the
    /// flags) differ from the latest statement's. Throws only when the file
    /// is all there is (no statement) and it cannot be applied, as a store
    /// without signed settings refuses it; other failures are reported, and
    /// the store starts.
    func reconcile(now: Int64 = currentUnixNanos()) throws(VigilError) -> Reconciliation {
        var result = Reconciliation()
        guard let directory = settingsDirectory else { return result }
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
        let foundExists = found != nil || foundProblem != nil
        let latest: RetentionStatements.LatestSettings
        do throws(VigilError) {
            latest = try RetentionStatements.latestSettings(in: directory, trusted: signer?.key.publicKey)
        } catch {
            suspend("the signed retention settings in \(directory) cannot be read (\(error.message))", generation: nil, into: &result)
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
            suspend(
                "the latest retention settings statement, \(directory)/\(name), cannot be trusted (\(error.message))", generation: generation,
                into: &result)
            return result
        case .signed(let signed):
            if foundProblem == nil && signed.accepts(found) {
                let values = Self.overlay(foundLines, on: flags)
                state.withLock { $0.values = values; $0.generation = signed.generation }
                if Self.fileBytes(values) == signed.inForce { return result }
                cause = "the flags changed"
                break
            }
            let values = Self.overlay((try? Self.parse(signed.file ?? [], path: path)) ?? [], on: flags)
            // In force now, whatever happens to the files below.
            state.withLock { $0.values = values; $0.generation = signed.generation }
            file = signed.file
            var restored = restoredDescription(found: found, problem: foundProblem, signed: signed, directory: directory)
            do throws(VigilError) {
                if let aside = try putBack(signed.file, found: foundExists, now: now) {
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
        guard let signer else { return result }
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
            let failure = "cannot sign the retention settings into \(signer.directory): \(error.message); they stay unsigned until a change or a start signs them"
            result.failure = result.failure.map { $0 + "; " + failure } ?? failure
        }
        return result
    }

    /// Nothing shows which settings were set (`problem`): keep everything,
    /// and let the next change build on the flags alone, so that it does not
    /// sign a file nobody checked. The file stays where it is: a start that
    /// can check it again (the directory readable, the statement put back)
    /// finds it as it was, not missing.
    private func suspend(_ problem: String, generation: UInt64?, into result: inout Reconciliation) {
        var reason = problem + ", so nothing shows which retention was set. Retention is suspended: nothing is removed or hidden"
        reason +=
            generation == nil
            ? ". Make the checkpoint directory readable and restart"
            : ". The settings are the flags' now, not RETENTION's: set each retention you need with vigil retention (the first change signs them, overwrites RETENTION and ends the suspension), or put back a valid statement and restart"
        state.withLock {
            $0.values = flags
            $0.generation = generation
            $0.suspended = reason
        }
        result.suspended = reason
    }

    /// For an online backup, which records the settings in force
    /// (`inForce`) as its `RETENTION`: when they are not the file signed
    /// last (flags decide some of them), a statement of the next generation
    /// signing them as that file, for the backup's copy of the statements
    /// only. A restored server then finds its `RETENTION` signed. The
    /// running server's directory does not get it, unless a restore with
    /// `--checkpoint-dir` copies it there; the restored server then
    /// supersedes the original, and the original's next change is refused
    /// (that generation exists) until it restarts.
    /// Call under `writer`. Nil when there is nothing to sign, or no
    /// trustworthy generation to sign after (no signer, suspended).
    func pinnedByBackup(_ inForce: [UInt8], takenAt: Int64) throws(VigilError) -> (name: String, bytes: [UInt8])? {
        guard let signer else { return nil }
        let generation: UInt64? = state.withLock { $0.suspended == nil ? $0.generation : nil }
        guard let generation, generation > 0, generation < .max else { return nil }
        guard case .signed(let latest) = try RetentionStatements.latestSettings(in: signer.directory, trusted: signer.key.publicKey),
            latest.generation == generation, latest.file != inForce
        else { return nil }
        let bytes = try RetentionStatements.settingsStatement(
            generation: generation + 1, file: inForce, inForce: inForce,
            cause: "the settings in force, recorded as RETENTION by a backup taken on \(formatTime(takenAt))", key: signer.key, now: takenAt)
        return (RetentionStatements.settingsFileName(generation: generation + 1), bytes)
    }

    /// Writes the signed `file` (nil: none) as `RETENTION`, keeping what was
    /// there (`found`) as `RETENTION.unsigned-<UTC time>`: by a second name
    /// first when it is a regular file, so that a crash in between leaves
    /// the file in place rather than none. Returns the name it was kept by.
    private func putBack(_ file: [UInt8]?, found: Bool, now: Int64) throws(VigilError) -> String? {
        var aside: String?
        if found {
            let base = path + ".unsigned-" + Checkpoints.supersededTime(at: now)
            // Never over one kept before (two starts within a second).
            var name = base
            var taken = stat()
            var attempt = 1
            while lstat(name, &taken) == 0 {
                attempt += 1
                name = base + "-\(attempt)"
            }
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
    /// `RETENTION` (the settings changed after the backup), its file replaces
    /// it (none, when it signed none: the flags decide). The restored server
    /// then starts under the latest signed settings instead of reporting the
    /// backup's as changed behind it. Returns a line for people; nil when
    /// nothing changed.
    public static func alignRestored(
        dataDirectory: String, checkpointDirectory: String, trusted: CheckpointPublicKey?
    ) throws(VigilError) -> String? {
        guard case .signed(let signed) = try RetentionStatements.latestSettings(in: checkpointDirectory, trusted: trusted) else { return nil }
        let path = dataDirectory + "/" + fileName
        let found = try? readBytes(path)
        if signed.accepts(found) { return nil }
        if let file = signed.file {
            try FileIO.writeAtomically(file, to: path)
        } else {
            try FileIO.remove(path)
            try FileIO.syncDirectory(dataDirectory)
        }
        let signedText = signed.file.map(describe) ?? "no RETENTION, so the restored RETENTION is removed and the flags decide (they made \(describe(signed.inForce)) then: start the restored server with the same retention flags)"
        return "retention: \(checkpointDirectory) holds settings signed after the backup (generation \(signed.generation) on \(formatTime(signed.createdAt)): \(signedText)); they replace the backup's RETENTION (\(found.map(describe) ?? "none"))"
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
