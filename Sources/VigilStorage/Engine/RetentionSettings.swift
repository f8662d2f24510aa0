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
/// or forever>`, replaced atomically.
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

    private let path: String
    private let values: Mutex<Values>

    init(options: StorageOptions) throws(VigilError) {
        path = options.directory + "/" + Self.fileName
        var values = Values(defaultNanos: options.retentionNanos, tenantNanos: options.tenantRetentionNanos)
        for line in try Self.readFile(path) ?? [] {
            if let tenant = line.tenant {
                values.tenantNanos[tenant] = line.nanos ?? .max
            } else {
                values.defaultNanos = line.nanos
            }
        }
        self.values = Mutex(values)
    }

    /// The settings of the `RETENTION` file at `path`, in file order (nil
    /// when there is none). A malformed line is DATA_LOSS; a retention under
    /// `minimumNanos` is FAILED_PRECONDITION: the file wins over the flags,
    /// and `*\t90` (days meant, nanoseconds read) had the first retention
    /// pass delete every event. Both name the line.
    public static func readFile(_ path: String) throws(VigilError) -> [FileLine]? {
        guard FileIO.exists(path) else { return nil }
        let file = try FileHandleDescriptor.open(path, flags: O_RDONLY)
        defer { file.close() }
        let text = String(decoding: try file.read(count: file.size(), at: 0), as: UTF8.self)
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

    public var current: Values { values.withLock { $0 } }

    /// Sets the retention of `tenant` (nil: the default). For a tenant, nil
    /// `nanos` removes its own setting; for the default, nil means forever.
    /// Returns the retention in effect for it before and after (nil: forever).
    @discardableResult
    public func set(tenant: String?, nanos: Int64?) throws(VigilError) -> (before: Int64?, after: Int64?) {
        // Never a file that the next start refuses.
        if let nanos, nanos != .max, nanos < Self.minimumNanos {
            throw VigilError(.invalidArgument, "retention must be at least 1 day (86400 s); unset it to keep events forever")
        }
        return try values.withLock { (values: inout Values) throws(VigilError) -> (before: Int64?, after: Int64?) in
            let before = tenant.map { values.of($0) } ?? values.defaultNanos
            var next = values
            if let tenant {
                if let nanos { next.tenantNanos[tenant] = nanos } else { next.tenantNanos[tenant] = nil }
            } else {
                next.defaultNanos = nanos
            }
            try save(next)
            values = next
            return (before, tenant.map { next.of($0) } ?? next.defaultNanos)
        }
    }

    private func save(_ values: Values) throws(VigilError) {
        try FileIO.writeAtomically(Self.fileBytes(values), to: path)
    }

    /// `values` as the `RETENTION` file's text, as retention statements
    /// record it. Past 32 KiB (thousands of tenant settings; a statement is
    /// read whole) the default line, the count of the others and their SHA-256.
    static func text(_ values: Values) -> String {
        let bytes = fileBytes(values)
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
