import Crypto
import Synchronization
import VigilCore
import VigilProto

#if canImport(Glibc)
import Glibc
#endif

/// How long events are kept, changeable while the server runs (the
/// `SetRetention` call). Starts from `StorageOptions`; changes are kept in
/// `<data-dir>/RETENTION` and win over the flags on the next start, so a
/// change made through the API is not undone by a restart.
///
/// `RETENTION` is text, one line per setting: `<tenant or *>\t<nanoseconds
/// or forever>`, replaced atomically. With a checkpoint key each change is
/// signed first (`RetentionStatements.signSettings`), and a start puts back
/// the signed file when it finds another (`reconcile`).
public final class RetentionSettings: Sendable {
    public struct Values: Sendable, Equatable {
        /// nil keeps events forever.
        public var defaultNanos: Int64?
        /// A tenant's own setting; `Int64.max` means forever.
        public var tenantNanos: [String: Int64]

        /// The retention of `tenant`, or nil for forever.
        public func of(_ tenant: String) -> Int64? {
            if let own = tenantNanos[tenant] { return own == .max ? nil : own }
            return defaultNanos
        }

        public var keepsEverything: Bool { defaultNanos == nil && tenantNanos.values.allSatisfy { $0 == .max } }

        /// The oldest time `tenant` keeps as of `now` (`.min`: everything).
        public func cutoff(of tenant: String, now: Int64) -> Int64 {
            guard let nanos = of(tenant) else { return .min }
            let (cutoff, overflow) = now.subtractingReportingOverflow(nanos)
            return overflow ? .min : cutoff
        }

        /// Refuses a batch with events older than their tenant's retention
        /// (INVALID_ARGUMENT, each such event named): stored, such an event
        /// would be acknowledged, hidden from every query at once and deleted
        /// by the next retention pass. `tenants`: the batch's distinct
        /// tenants; `oldest`: its oldest time. Only when that is older than
        /// some tenant's cutoff are the events looked at one by one.
        public func refuseExpired(
            count: Int, tenants: some Sequence<String>, oldest: Int64, now: Int64,
            event: (Int) -> (tenant: String, occurredAt: Int64)
        ) throws(VigilError) {
            if keepsEverything { return }
            guard oldest < tenants.lazy.map({ cutoff(of: $0, now: now) }).max() ?? .min else { return }
            var errors: [Vigil_V1_EventError] = []
            for index in 0..<count {
                let (tenant, occurredAt) = event(index)
                guard occurredAt < cutoff(of: tenant, now: now) else { continue }
                errors.append(.init(
                    index: UInt32(index), field: "occurredAt",
                    reason: "is older than the retention of tenant \(tenant) (\(Self.text(of(tenant)))): it would be hidden and deleted at once; raise that retention first (vigil retention) to store it"))
            }
            guard !errors.isEmpty else { return }
            throw VigilError(
                .invalidArgument, "\(errors.count) of \(count) events are older than their tenant's retention; nothing was stored", eventErrors: errors)
        }

        /// A retention for people: `90d`, `3600s`, `forever` (nil or `Int64.max`).
        public static func text(_ nanos: Int64?) -> String {
            guard let nanos, nanos != .max else { return "forever" }
            let seconds = nanos / 1_000_000_000
            return seconds % 86_400 == 0 ? "\(seconds / 86_400)d" : "\(seconds)s"
        }
    }

    /// The shortest retention anywhere (flags, `RETENTION`, SetRetention):
    /// anything shorter is more likely a unit mistake — days or seconds
    /// where nanoseconds are meant, `12m` meant as months — than a wish to
    /// delete today's events.
    public static let minimumNanos: Int64 = 86_400 * 1_000_000_000

    /// The name of the file in the data directory.
    public static let fileName = "RETENTION"

    /// One line of a `RETENTION` file.
    public struct FileLine: Sendable, Equatable {
        /// nil: the default (`*`).
        public var tenant: String?
        /// nil: forever.
        public var nanos: Int64?
    }

    private struct State {
        var values: Values
        /// The generation of the last settings signed (0: none yet).
        var generation: UInt64 = 0
    }

    private let path: String
    /// The settings of the flags alone, under the file's.
    private let flags: Values
    private let signer: RetentionStatements.Signer?
    private let state: Mutex<State>

    init(options: StorageOptions) throws(VigilError) {
        path = options.directory + "/" + Self.fileName
        flags = Values(defaultNanos: options.retentionNanos, tenantNanos: options.tenantRetentionNanos)
        signer = options.retentionSigner
        state = Mutex(State(values: Self.overlay(try Self.readFile(path) ?? [], on: flags)))
    }

    /// `flags` with the lines of a `RETENTION` file over them.
    static func overlay(_ lines: [FileLine], on flags: Values) -> Values {
        var values = flags
        for line in lines {
            if let tenant = line.tenant {
                values.tenantNanos[tenant] = line.nanos ?? .max
            } else {
                values.defaultNanos = line.nanos
            }
        }
        return values
    }

    /// The settings of the `RETENTION` file at `path`, in file order (nil
    /// when there is none). A malformed line is DATA_LOSS; a retention under
    /// `minimumNanos` is FAILED_PRECONDITION: the file wins over the flags,
    /// and `*\t90` (days meant, nanoseconds read) had the first retention
    /// pass delete every event. Both name the line.
    public static func readFile(_ path: String) throws(VigilError) -> [FileLine]? {
        guard let bytes = try readBytes(path) else { return nil }
        return try parse(bytes, path: path)
    }

    /// The bytes of the file at `path`, nil when there is none.
    static func readBytes(_ path: String) throws(VigilError) -> [UInt8]? {
        guard FileIO.exists(path) else { return nil }
        let file = try FileHandleDescriptor.open(path, flags: O_RDONLY)
        defer { file.close() }
        return try file.read(count: file.size(), at: 0)
    }

    /// The lines of a `RETENTION` file's `bytes`; `path` names it in errors.
    static func parse(_ bytes: [UInt8], path: String) throws(VigilError) -> [FileLine] {
        let text = String(decoding: bytes, as: UTF8.self)
        var lines: [FileLine] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
            let fields = line.split(separator: "\t")
            guard fields.count == 2 else {
                throw VigilError(.dataLoss, "\(path) line \(index + 1) is malformed ('\(line.prefix(100))'); fix or remove the file")
            }
            let tenant = fields[0] == "*" ? nil : String(fields[0])
            if fields[1] == "forever" {
                lines.append(FileLine(tenant: tenant, nanos: nil))
                continue
            }
            guard let nanos = Int64(fields[1]), nanos > 0 else {
                throw VigilError(.dataLoss, "\(path) line \(index + 1) has a malformed duration ('\(line.prefix(100))'); fix or remove the file")
            }
            guard nanos >= minimumNanos else {
                throw VigilError(
                    .failedPrecondition,
                    "\(path) line \(index + 1) sets the retention of \(tenant.map { "tenant \($0)" } ?? "every tenant (*)") to \(nanos) ns, under the minimum of 1 day (\(minimumNanos) ns); the file is in nanoseconds (90 days is 7776000000000000), and the first retention pass would delete nearly every event. Fix the line, set it with vigil retention, or remove the file to go back to --retention")
            }
            lines.append(FileLine(tenant: tenant, nanos: nanos))
        }
        return lines
    }

    public var current: Values { state.withLock { $0.values } }

    /// Sets the retention of `tenant` (nil: the default). For a tenant, nil
    /// `nanos` removes its own setting; for the default, nil means forever.
    /// Returns the retention in effect for it before and after (nil: forever).
    ///
    /// With a signer the new settings are signed first: a change that cannot
    /// be signed is not made (UNAVAILABLE), and a statement whose file then
    /// cannot be written is withdrawn.
    @discardableResult
    public func set(tenant: String?, nanos: Int64?) throws(VigilError) -> (before: Int64?, after: Int64?) {
        // Never a file that the next start refuses.
        if let nanos, nanos != .max, nanos < Self.minimumNanos {
            throw VigilError(.invalidArgument, "retention must be at least 1 day (86400 s); unset it to keep events forever")
        }
        return try state.withLock { (state: inout State) throws(VigilError) -> (before: Int64?, after: Int64?) in
            let before = tenant.map { state.values.of($0) } ?? state.values.defaultNanos
            var next = state.values
            if let tenant {
                if let nanos { next.tenantNanos[tenant] = nanos } else { next.tenantNanos[tenant] = nil }
            } else {
                next.defaultNanos = nanos
            }
            let after = tenant.map { next.of($0) } ?? next.defaultNanos
            let bytes = Self.fileBytes(next)
            guard let signer else {
                try FileIO.writeAtomically(bytes, to: path)
                state.values = next
                return (before, after)
            }
            let cause = "set the retention of \(tenant.map { "tenant \($0)" } ?? "every tenant without its own") from \(Values.text(before)) to \(Values.text(after))"
            let statement: String
            do throws(VigilError) {
                statement = try RetentionStatements.signSettings(
                    generation: state.generation + 1, file: bytes, inForce: bytes, cause: cause, signer: signer)
            } catch where error.code == .resourceExhausted {
                throw error
            } catch {
                throw VigilError(
                    .unavailable,
                    "cannot sign the new retention settings into \(signer.directory): \(error.message). The retention is unchanged; retry once the checkpoint directory is writable")
            }
            do throws(VigilError) {
                try FileIO.writeAtomically(bytes, to: path)
            } catch {
                // Left in place, the statement would have the next start put in force a change that was refused.
                try? FileIO.remove(statement)
                try? FileIO.syncDirectory(signer.directory)
                throw error
            }
            state.values = next
            state.generation += 1
            return (before, after)
        }
    }

    /// What `reconcile` found and did, for the server's log.
    public struct Reconciliation: Sendable, Equatable {
        /// A new generation was signed: which, and why.
        public var signed: String?
        /// `RETENTION` was not the signed file: what was found and put back (an error to log).
        public var restored: String?
        /// Where the file found was moved (`RETENTION.unsigned-<UTC time>`).
        public var setAside: String?
        /// Why the settings could not be checked, put back or signed.
        public var failure: String?

        public init() {}
    }

    /// At start, with a signer, once the data directory is locked and has
    /// passed its checks: `RETENTION` must be what the highest generation of
    /// settings statements signed.
    ///
    /// - No statement yet (a new key, a store from before settings were
    ///   signed): the settings found are signed as generation 1.
    /// - The file is the signed one, or holds the signed settings in force
    ///   (a restored backup records them so): it stays.
    /// - Any other file, or none where one was signed, was changed without
    ///   the server (or a crash came between a statement and its file): the
    ///   signed settings are put in force, the file found is moved to
    ///   `RETENTION.unsigned-<UTC time>` for people to examine, and the
    ///   signed file is written back.
    ///
    /// A new generation is signed whenever the file or the settings in force
    /// (the flags changed) differ from the latest statement's. A latest
    /// statement that cannot be trusted leaves the file as found: no older
    /// one stands in for it, or damage to it would bring back settings since
    /// changed. Failures are reported, not thrown: the store starts.
    func reconcile(now: Int64 = currentUnixNanos()) -> Reconciliation {
        var result = Reconciliation()
        guard let signer else { return result }
        let found: [UInt8]?
        let latest: RetentionStatements.LatestSettings
        do throws(VigilError) {
            found = try Self.readBytes(path)
            latest = try RetentionStatements.latestSettings(in: signer.directory, trusted: signer.key.publicKey)
        } catch {
            result.failure = "cannot check the retention settings against their signed statements: \(error.message)"
            return result
        }
        return state.withLock { state in
            var file = found
            let cause: String
            switch latest {
            case .none:
                cause = "found at the first start with the checkpoint key" + (found == nil ? " (no RETENTION file: the flags decide)" : "")
            case .untrusted(let name, let generation, let error):
                state.generation = generation
                result.failure =
                    "the latest retention settings statement, \(signer.directory)/\(name), cannot be trusted (\(error.message)); RETENTION is used as found, unchecked, and the next change is signed as generation \(generation + 1)"
                return result
            case .signed(let signed):
                state.generation = signed.generation
                if signed.accepts(found) {
                    if found == signed.file && Self.fileBytes(state.values) == signed.inForce { return result }
                    cause = found == signed.file ? "the flags changed" : "RETENTION holds the settings in force of generation \(signed.generation), as a backup records them"
                    break
                }
                let values: Values
                do throws(VigilError) {
                    values = Self.overlay(try signed.file.map { bytes throws(VigilError) in try Self.parse(bytes, path: path) } ?? [], on: flags)
                } catch {
                    result.failure = "the retention settings signed as generation \(signed.generation) do not parse (\(error.message)); RETENTION is used as found"
                    return result
                }
                // In force now, whatever happens to the files below.
                state.values = values
                file = signed.file
                var restored = restoredDescription(found: found, signed: signed, directory: signer.directory)
                do throws(VigilError) {
                    if found != nil {
                        let aside = path + ".unsigned-" + Checkpoints.supersededTime(at: now)
                        try FileIO.rename(path, to: aside)
                        result.setAside = aside
                        restored += "; the file found was moved to \(aside)"
                    }
                    if let bytes = signed.file {
                        try FileIO.writeAtomically(bytes, to: path)
                    } else {
                        try FileIO.syncDirectory(String(path.dropLast(Self.fileName.count + 1)))
                    }
                } catch {
                    result.failure = "cannot put the signed RETENTION file back (\(error.message)); the signed settings are in force, and the next start tries again"
                }
                result.restored = restored
                if Self.fileBytes(values) == signed.inForce { return result }
                cause = "the flags changed"
            }
            do throws(VigilError) {
                try RetentionStatements.signSettings(
                    generation: state.generation + 1, file: file, inForce: Self.fileBytes(state.values), cause: cause, signer: signer, now: now)
                state.generation += 1
                result.signed = "signed the retention settings (\(Self.describe(Self.fileBytes(state.values)))) as generation \(state.generation): \(cause)"
            } catch {
                result.failure = "cannot sign the retention settings into \(signer.directory): \(error.message); they stay unsigned until a change or a start signs them"
            }
            return result
        }
    }

    private func restoredDescription(found: [UInt8]?, signed: RetentionStatements.SignedSettings, directory: String) -> String {
        var text =
            "RETENTION in the data directory (\(found.map(Self.describe) ?? "none")) is not the file signed as generation \(signed.generation) on \(formatTime(signed.createdAt)) (\(signed.file.map(Self.describe) ?? "none"): \(signed.cause)): it was changed without the server"
        if signed.generation > 1,
            case .success(let previous) = RetentionStatements.readSettings(
                directory + "/" + RetentionStatements.settingsFileName(generation: signed.generation - 1), trusted: signed.publicKey),
            previous.accepts(found)
        {
            text += " (it holds generation \(previous.generation)'s settings: a crash between signing generation \(signed.generation) and writing it leaves that, as does putting older settings back by hand)"
        }
        return text + ". The signed settings are in force"
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

    /// `values` as the `RETENTION` file's text, as retention statements
    /// record it (`summary(ofFile:)`).
    static func text(_ values: Values) -> String { summary(ofFile: fileBytes(values)) }

    /// A `RETENTION` file's bytes as statements record them. Past 32 KiB
    /// (thousands of tenant settings; a removal's statement is read whole)
    /// the default line, the count of the others and their SHA-256.
    static func summary(ofFile bytes: [UInt8]) -> String {
        guard bytes.count > 32 * 1024 else { return String(decoding: bytes, as: UTF8.self) }
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n")
        return "\(lines[0])\n… and \(lines.count - 1) tenant settings, SHA-256 \(ChainDigest(SHA256.hash(data: bytes)).hex)\n"
    }

    /// `values` as a `RETENTION` file: every setting, the default included.
    static func fileBytes(_ values: Values) -> [UInt8] {
        var lines = ["*\t\(values.defaultNanos.map(String.init) ?? "forever")"]
        for (tenant, nanos) in values.tenantNanos.sorted(by: { $0.key < $1.key }) {
            lines.append("\(tenant)\t\(nanos == .max ? "forever" : String(nanos))")
        }
        return Array((lines.joined(separator: "\n") + "\n").utf8)
    }
}
