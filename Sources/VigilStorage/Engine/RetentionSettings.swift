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

    struct State {
        /// The settings in force, as the file and the flags say.
        var values: Values
        /// The generation of the last settings signed; nil until a signing
        /// store's start has read its statements (`reconcile`), or when it
        /// could not: the next change would not know its number.
        var generation: UInt64?
        /// Set when the signed settings cannot be trusted at start: nothing
        /// is removed or hidden (`current` keeps everything) until a change
        /// signs the settings again. Why, for people.
        var suspended: String?
    }

    let path: String
    /// The settings of the flags alone, under the file's.
    let flags: Values
    let signer: RetentionStatements.Signer?
    /// Where signed settings are looked up: the signer's directory, or a
    /// keyless server's checkpoint directory that holds some
    /// (`StorageOptions/retentionSettingsDirectory`).
    let settingsDirectory: String?
    /// Why changes are refused (a store without the key whose checkpoint
    /// directory holds signed settings: the next start with the key would
    /// undo them).
    let changesRefused: String?
    let state: Mutex<State>
    /// Held across a change's signing and writing, so that changes come one
    /// at a time while ingest and queries read `state` without waiting for
    /// the fsyncs.
    let writer = Mutex(())

    init(options: StorageOptions) throws(VigilError) {
        path = options.directory + "/" + Self.fileName
        flags = Values(defaultNanos: options.retentionNanos, tenantNanos: options.tenantRetentionNanos)
        signer = options.retentionSigner
        settingsDirectory = options.retentionSigner?.directory ?? options.retentionSettingsDirectory
        changesRefused = options.retentionChangesRefused
        // A store with signed settings reads the file once, under its lock
        // (`reconcile`): read here too, it could be one file checked and another applied.
        let lines = settingsDirectory == nil ? try Self.readFile(path) ?? [] : []
        state = Mutex(State(values: Self.overlay(lines, on: flags)))
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

    /// The bytes of the file at `path`, nil when there is none. Only a
    /// regular file, not through a symbolic link, and not a FIFO that would
    /// hang the start; at most `RetentionStatements.maximumSettingsBytes`.
    static func readBytes(_ path: String) throws(VigilError) -> [UInt8]? {
        var info = stat()
        guard lstat(path, &info) == 0 else {
            if errno == ENOENT { return nil }
            throw FileIO.error("stat", path)
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw VigilError(.dataLoss, "\(path) is not a regular file; remove it")
        }
        guard Int(info.st_size) <= RetentionStatements.maximumSettingsBytes / 2 else {
            throw VigilError(.dataLoss, "\(path) holds \(info.st_size) bytes, more than any retention settings (at most \(RetentionStatements.maximumSettingsBytes / 2)); remove it")
        }
        let file = try FileHandleDescriptor.open(path, flags: O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
        defer { file.close() }
        // Again on what was opened: it may have been replaced in between.
        guard fstat(file.fd, &info) == 0 else { throw FileIO.error("stat", path) }
        guard info.st_mode & S_IFMT == S_IFREG, Int(info.st_size) <= RetentionStatements.maximumSettingsBytes / 2 else {
            throw VigilError(.dataLoss, "\(path) is not a regular file of retention settings; remove it")
        }
        return try file.read(count: Int(info.st_size), at: 0)
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

    /// The settings to apply: keep everything while suspended.
    public var current: Values {
        state.withLock { $0.suspended == nil ? $0.values : Values(defaultNanos: nil, tenantNanos: [:]) }
    }

    /// Sets the retention of `tenant` (nil: the default). For a tenant, nil
    /// `nanos` removes its own setting; for the default, nil means forever.
    /// Returns the retention in effect for it before and after (nil: forever).
    ///
    /// With a signer the new settings are signed first: a change that cannot
    /// be signed is not made (UNAVAILABLE), and a statement whose file then
    /// cannot be written is withdrawn. A change ends a suspension: the
    /// settings it writes are signed.
    @discardableResult
    public func set(tenant: String?, nanos: Int64?) throws(VigilError) -> (before: Int64?, after: Int64?) {
        // Never a file that the next start refuses.
        if let nanos, nanos != .max, nanos < Self.minimumNanos {
            throw VigilError(.invalidArgument, "retention must be at least 1 day (86400 s); unset it to keep events forever")
        }
        if let changesRefused { throw VigilError(.failedPrecondition, changesRefused) }
        return try writer.withLock { _ throws(VigilError) -> (before: Int64?, after: Int64?) in
            let (values, generation) = state.withLock { ($0.values, $0.generation) }
            let before = tenant.map { values.of($0) } ?? values.defaultNanos
            var next = values
            if let tenant {
                if let nanos { next.tenantNanos[tenant] = nanos } else { next.tenantNanos[tenant] = nil }
            } else {
                next.defaultNanos = nanos
            }
            let after = tenant.map { next.of($0) } ?? next.defaultNanos
            let bytes = Self.fileBytes(next)
            guard let signer else {
                try FileIO.writeAtomically(bytes, to: path)
                state.withLock { $0.values = next }
                return (before, after)
            }
            guard let generation else {
                throw VigilError(
                    .failedPrecondition,
                    "the signed retention settings in \(signer.directory) could not be read when the server started, so a change would not know its generation; fix what the start logged and restart")
            }
            guard generation < .max else {
                throw VigilError(
                    .failedPrecondition,
                    "the retention settings in \(signer.directory) are at generation \(generation), the last there can be; move the settings statements aside and restart (the next start signs the settings found as generation 1)")
            }
            let cause = "set the retention of \(tenant.map { "tenant \($0)" } ?? "every tenant without its own") from \(Values.text(before)) to \(Values.text(after))"
            let statement: String
            do throws(VigilError) {
                statement = try RetentionStatements.signSettings(
                    generation: generation + 1, file: bytes, inForce: bytes, cause: cause, signer: signer)
            } catch where error.code == .resourceExhausted {
                throw error
            } catch where error.code == .alreadyExists {
                throw VigilError(
                    .failedPrecondition,
                    "another server signed retention settings in \(signer.directory) since this one started (\(error.message)): a restore into this checkpoint directory, or a second server on it. The retention is unchanged; restart this server to take up the latest settings")
            } catch {
                throw VigilError(
                    .unavailable,
                    "cannot sign the new retention settings into \(signer.directory): \(error.message). The retention is unchanged; retry once the checkpoint directory is writable")
            }
            do throws(VigilError) {
                try FileIO.writeAtomically(bytes, to: path, syncDirectory: false)
            } catch {
                // Not written: left in place, the statement would have the next
                // start put in force a change that was refused.
                try? FileIO.remove(statement)
                try? FileIO.syncDirectory(signer.directory)
                throw error
            }
            // Written (maybe not yet durable): the statement stays, so that the
            // next start does not take the new file for one changed behind it.
            state.withLock { state in
                state.values = next
                state.generation = generation + 1
                state.suspended = nil
            }
            do throws(VigilError) {
                try FileIO.syncDirectory(FileIO.directoryName(of: path))
            } catch {
                throw VigilError(
                    .unavailable,
                    "the retention is changed and in force, but \(path) may not be durable (\(error.message)); set it again once the disk is healthy")
            }
            return (before, after)
        }
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
