#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Synchronization
import SwiftProtobuf
import VigilCore
import VigilProto

/// The storage engine: a write-ahead log, an in-memory columnar segment that
/// queries read at once, and immutable zlib-compressed parts on disk, merged
/// and expired in the background.
///
/// - Ingest: a batch gets its seqs and a WAL record under one lock (so WAL
///   order is seq order), joins the memory segment, and is acknowledged once
///   the WAL record is durable. Queries see it from then on (`visibleSeq`).
/// - Flush: a full (or old) memory segment is sealed — the WAL rotates at the
///   same moment, so the sealed rows are exactly those of the older WAL
///   segments — written as one part per UTC day, recorded in MANIFEST, and
///   only then are those WAL segments deleted.
/// - Every change to the set of parts (flush, merge, retention) is one atomic
///   MANIFEST replacement plus one swap of the in-memory list under the lock,
///   so a query sees every event exactly once.
///
/// - Tamper evidence: a flush hashes its events into the chain (in seq order)
///   and records the range's anchor in `chain/<n>.chain`; parts store each
///   event's truncated leaf. Retention keeps what verification of the rest needs.
///
/// Directory layout: `MANIFEST`, `LOCK`, `wal/<n>.wal`, `parts/<day>/<n>.part`,
/// `keys/<n>-<t>.keys`, `chain/<n>.chain`, `chain/<n>.expired`. See the
/// VigilStorage documentation for the formats.
public final class ColumnarEventStore: EventStore {
    static let manifestMagic = "VMAN"
    static let keysMagic = "VKEY"
    /// Retention as it is now: the flags, changed by `SetRetention`.
    public let retentionSettings: RetentionSettings

    public var retentionInForce: RetentionSettings.Values? { retentionSettings.current }

    struct LivePart: Sendable {
        let entry: Vigil_V1_ManifestPart
        let reader: PartReader
        var day: String { String(entry.path.split(separator: "/").dropFirst().first ?? "") }
    }

    struct SealedSegment: Sendable {
        let chunks: [MemoryChunk]
        /// Every record of these chunks is in a WAL segment numbered below this.
        let walBoundary: UInt64
        let lastLocation: WALLocation?
        let bytes: Int
        /// Whether its flush may yield to ingest, queries and deliveries
        /// (`StorageOptions.backgroundFlushFillTime`).
        var flushesInBackground = false
        var lastSeq: UInt64 { chunks.last?.lastSeq ?? 0 }

        /// Whether a segment of `rows` rows that took `filledIn` to fill (nil:
        /// not known) is flushed in the background: it filled in at least
        /// `minimum`, and a background flush of it, at the wall time per row
        /// the last one took (`nanosPerRow`, or an assumed one), would end within half the time
        /// the next segment takes to fill at the same rate. A flush that yields
        /// to an ingest that outruns it falls behind, and ingest then waits for it.
        static func flushesInBackground(filledIn: Duration?, rows: Int, nanosPerRow: Int64, minimum: Duration) -> Bool {
            guard let filledIn, filledIn >= minimum else { return false }
            let expected = Duration.nanoseconds(Int64(rows) * nanosPerRow)
            return expected * 2 <= filledIn
        }
    }

    struct State {
        var nextSeq: UInt64
        var visibleSeq: UInt64
        var active: [MemoryChunk] = []
        /// Batches written but not yet durable, in seq order: published to
        /// `feed` once `visibleSeq` and `syncedSeq` cover them.
        var unpublished: [MemoryChunk] = []
        /// Every event through this seq is covered by an fsync (or the
        /// policy is `.never`): a subscriber never gets an event a machine
        /// crash could take back. Under `.always` it moves with `visibleSeq`;
        /// under `.interval`, after the next periodic fsync.
        var syncedSeq: UInt64 = 0
        var activeBytes = 0
        var activeRows = 0
        /// The wall time per row of the last background flush: whether the
        /// next segment's flush can yield and still keep up.
        var backgroundFlushNanosPerRow: Int64?
        var activeSince: ContinuousClock.Instant?
        var sealed: [SealedSegment] = []
        var sealedBytes = 0
        var parts: [LivePart]
        var idempotency: IdempotencyWindow
        var lastWrite: WALLocation?
        var memoryWaiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextWaiterID: UInt64 = 0
        /// Waiters whose time ran out before they registered.
        var expiredWaiters: Set<UInt64> = []
        /// What the batches waiting for memory hold (see `waitForMemory`).
        var waitingBytes = 0
        var closed = false
        /// Paths of the parts a merge is reading (other merges leave them alone).
        var merging: Set<String> = []
        /// When the last batch was appended (Unix nanoseconds; 0: none since the start).
        var lastAppendAt: Int64 = 0
    }

    /// The chain's files, owned by maintenance work like the manifest.
    struct ChainState: Sendable {
        var ledger = ChainLedger()
        /// Relative path of the live chain file.
        var ledgerPath: String?
        /// Live expired-leaves files and the highest seq in each.
        var expiredFiles: [(path: String, maxSeq: UInt64)] = []
    }

    /// A query's view: what existed when it started.
    struct Snapshot: Sendable {
        var chunks: [MemoryChunk]
        var parts: [LivePart]
        var visibleSeq: UInt64
    }

    public let options: StorageOptions
    let wal: WriteAheadLog
    let state: Mutex<State>
    /// The manifest, owned by maintenance work (flush, merge, retention, close), one at a time.
    let manifest: Mutex<Vigil_V1_Manifest>
    let maintenanceLock = AsyncLock()
    /// Called after each window a merge writes, before it flushes sealed
    /// segments and lets waiting work in (tests: to seal a segment, ask for a
    /// backup or close the store in the middle of a merge).
    let afterMergeWindow = Mutex<(@Sendable () async -> Void)?>(nil)
    /// The most decoded blocks one merge window has held (tests: a merge's
    /// memory is bounded by blocks, whose rows may all have expired).
    let mergeWindowBlocksPeak = Mutex(0)
    /// Blocks merges copied as they were stored, since the store opened.
    private let mergeCopiedBlocks = Mutex(0)
    /// Parts a merge could not read (damaged): merges leave them alone.
    private let unmergeable = Mutex<Set<String>>([])
    /// Each live part's oldest event by tenant, by part path (see `oldestEvents`).
    private let oldestByTenant = Mutex<[String: [String: Int64]]>([:])
    /// The chain's ledger and files, owned by maintenance work.
    let chain: Mutex<ChainState>
    /// The chain's head through batches in memory (receipts, checkpoints).
    let chainTracker: ChainTracker
    /// Work off the cooperative pool at normal priority: merges, retention,
    /// flushes that ingest is waiting for, closing, and the calls that ask
    /// for it (`flushNow`, `mergeNow`, …).
    private let blockingWork: BlockingWorkExecutor
    /// The maintenance loop runs here, at a low priority (nice 10), and so
    /// do the flushes that have time (`StorageOptions.backgroundFlushFillTime`),
    /// so that acknowledgements, live deliveries and queries take the cores
    /// first.
    private let backgroundWork: BlockingWorkExecutor
    /// Queries decode blocks here, one thread per core, off the cooperative pool.
    private let queryWork: BlockingWorkExecutor
    private let wake: AsyncStream<Void>.Continuation
    private let wakeups: AsyncStream<Void>
    private let lockFile: Int32
    /// Threads of `queryWork`: how many lanes one large aggregate is split into.
    let queryThreads: Int
    /// Cores online when the store opened.
    private let cores: Int
    /// Decoded part columns shared by all queries.
    let columnCache: ColumnCache
    /// Committed batches as they become durable, for live subscribers.
    public let feed: CommitFeed
    /// What opening found, for the server's log.
    public let recovery: RecoveryReport
    /// Whether writes are refused (disk full, I/O failure), and why.
    let availability: Mutex<WriteAvailability>

    public struct RecoveryReport: Sendable, CustomStringConvertible {
        public var parts = 0
        public var partRows: UInt64 = 0
        public var walRecordsReplayed = 0
        public var walEventsReplayed = 0
        public var walReport: WALReplayReport?
        public var garbageRemoved: [String] = []
        /// The chain's last anchored seq when the store opened.
        public var chainSeq: UInt64 = 0
        /// Set when the directory had events but no chain yet (stored by an
        /// earlier version): the chain starts after them.
        public var chainStartedAfter: UInt64?
        /// Removals found without a valid signed retention statement, now attested
        /// as found (`RetentionStatement.Reason.adopted`).
        public var retentionAdopted: [String] = []
        /// Why a removal found without a statement, or the beginning of
        /// statements, could not be signed.
        public var retentionAdoptionFailure: String?
        /// Removals found without a valid statement once statements had
        /// begun: not adopted (verify reports them); the server logs them.
        public var retentionUnattested: [String] = []
        /// Statements of removals that never committed (a failed or
        /// interrupted operation, or a restore's lost future), set aside.
        public var retentionStatementsSetAside = 0
        /// What the check of `RETENTION` against the signed settings found and did.
        public var retentionSettings = RetentionSettings.Reconciliation()
        public var description: String {
            var text = "\(parts) parts (\(partRows) events), replayed \(walEventsReplayed) events from \(walRecordsReplayed) WAL records"
            if let tail = walReport?.truncatedTail { text += "; cut a torn WAL tail: \(tail)" }
            if !garbageRemoved.isEmpty { text += "; removed \(garbageRemoved.count) unfinished files" }
            if let seq = chainStartedAfter { text += "; the hash chain starts after seq \(seq) (older events predate tamper evidence)" }
            if !retentionAdopted.isEmpty {
                text += "; signed \(retentionAdopted.count) retention statement(s) marked ADOPTED for removals found without a valid one ("
                    + retentionAdopted.joined(separator: "; ") + ")"
            }
            if let failure = retentionAdoptionFailure { text += "; " + failure }
            if !retentionUnattested.isEmpty {
                text += "; \(retentionUnattested.count) removal(s) without a valid signed retention statement ("
                    + retentionUnattested.joined(separator: "; ") + ")"
            }
            if let restored = retentionSettings.restored { text += "; " + restored }
            if let suspended = retentionSettings.suspended { text += "; " + suspended }
            if let signed = retentionSettings.signed { text += "; " + signed }
            if let failure = retentionSettings.failure { text += "; " + failure }
            if retentionStatementsSetAside > 0 {
                text += "; set aside \(retentionStatementsSetAside) retention statement(s) of removals that never committed"
            }
            return text
        }
    }

    public init(options: StorageOptions) throws(VigilError) {
        self.options = options
        retentionSettings = try RetentionSettings(options: options)
        columnCache = ColumnCache(capacityBytes: options.queryCacheBytes)
        let directory = options.directory
        // Checked before anything is added, so that the restore can be run again into it.
        guard !FileIO.exists(directory + "/" + BackupRestore.inProgressName) else {
            throw VigilError(
                .failedPrecondition,
                "\(directory) holds a restore that did not finish (\(BackupRestore.inProgressName)); run vigil restore into it again (or delete it and restore elsewhere)")
        }
        try FileIO.makeDirectory(directory)
        try? FileIO.remove(directory + "/" + Self.spaceProbeName)
        if let archive = options.archiveDirectory {
            // Checked now, not when the first part expires months from now:
            // parts go to the archive by hard link, within one file system.
            try FileIO.makeDirectory(archive)
            guard try FileIO.device(ofDirectory: archive) == FileIO.device(ofDirectory: directory) else {
                throw VigilError(
                    .failedPrecondition,
                    "the archive directory \(archive) is on another file system than the data directory \(directory); expired parts are moved there by hard link, so give an archive directory on the same file system")
            }
        }
        try FileIO.makeDirectory(directory + "/parts")
        try FileIO.makeDirectory(directory + "/keys")

        // One server per directory: two would corrupt each other's WAL.
        lockFile = Glibc.open(directory + "/LOCK", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lockFile >= 0 else { throw FileIO.error("open", directory + "/LOCK") }
        guard flock(lockFile, LOCK_EX | LOCK_NB) == 0 else {
            Glibc.close(lockFile)
            throw VigilError(.failedPrecondition, "\(directory) is in use by another Vigil process (its LOCK is held); stop it or use another --data-dir")
        }

        var report = RecoveryReport()
        var manifest = Vigil_V1_Manifest()
        manifest.formatVersion = 1
        manifest.nextPartNumber = 1
        let manifestPath = directory + "/MANIFEST"
        do throws(VigilError) {
            if FileIO.exists(manifestPath) {
                manifest = try ChecksummedFile.read(Vigil_V1_Manifest.self, magic: Self.manifestMagic, from: manifestPath)
            } else {
                try Self.refuseLostManifest(directory)
            }
            // Parts.
            var parts: [LivePart] = []
            var listed = Set<String>()
            for entry in manifest.parts {
                let reader = try PartReader(path: directory + "/" + entry.path)
                // Queries skip parts and retention deletes them by their
                // entry: one edited to look old was deleted by the next pass.
                // The footer is read already, so this costs nothing.
                if let mismatch = Self.entryMismatch(entry, reader.metadata) {
                    throw VigilError(
                        .dataLoss,
                        "\(manifestPath): the entry of \(entry.path) disagrees with the part's footer (\(mismatch)); the engine writes both from the same rows, so one of them was changed. Restore the data directory from a backup; vigil verify --data-dir \(directory) reports what it can still check")
                }
                parts.append(LivePart(entry: entry, reader: reader))
                listed.insert(entry.path)
                report.parts += 1
                report.partRows += entry.rows
            }
            // Files no MANIFEST lists are from an interrupted flush or merge.
            for day in try FileIO.list(directory + "/parts") {
                for name in try FileIO.list(directory + "/parts/" + day) where !listed.contains("parts/\(day)/\(name)") {
                    try FileIO.remove(directory + "/parts/\(day)/\(name)")
                    report.garbageRemoved.append("parts/\(day)/\(name)")
                }
            }
            // Pins of backups the process died in the middle of.
            report.garbageRemoved += try BackupPin.removeLeftovers(in: directory)
            // Idempotency keys of flushed batches.
            var idempotency = IdempotencyWindow(maxKeys: options.idempotencyMaxKeys, maxAge: options.idempotencyWindowNanos)
            let now = currentUnixNanos()
            for file in manifest.idempotencyFiles {
                let keys = try ChecksummedFile.read(Vigil_V1_IdempotencyKeys.self, magic: Self.keysMagic, from: directory + "/keys/" + file)
                for entry in keys.entries {
                    idempotency.remember(
                        AppendResult(firstSeq: entry.firstSeq, lastSeq: entry.lastSeq, count: Int(entry.count), receivedAt: entry.receivedAtNanos, replayed: true),
                        for: entry.key, now: min(now, entry.receivedAtNanos))
                }
            }
            for name in try FileIO.list(directory + "/keys") where !manifest.idempotencyFiles.contains(name) {
                try FileIO.remove(directory + "/keys/" + name)
                report.garbageRemoved.append("keys/" + name)
            }
            // The chain: its live files, and the garbage of operations that never committed.
            let chainListing = try ChainFiles.list(directory, nextPartNumber: manifest.nextPartNumber)
            for path in chainListing.garbage {
                try FileIO.remove(directory + "/" + path)
                report.garbageRemoved.append(path)
            }
            var chainState = ChainState()
            if let path = chainListing.ledger {
                chainState.ledger = try ChainLedger.read(from: directory + "/" + path)
                chainState.ledgerPath = path
                if let problem = chainState.ledger.startProblem {
                    throw VigilError(
                        .dataLoss,
                        "\(directory)/\(path): \(problem). Restore the data directory from a backup; vigil verify --data-dir \(directory) reports what it can still check")
                }
            } else if manifest.flushedThroughSeq > 0 {
                // Parts written with leaf hashes were written with a chain: its
                // file is gone, not "not yet made". Starting anyway would write
                // a new chain that begins after them, and their tampering would
                // go unseen from then on.
                if parts.contains(where: { $0.reader.hasLeaves }) {
                    throw VigilError(
                        .dataLoss,
                        "\(directory)/chain/ has no chain file, but the parts were written with leaf hashes: the hash chain's anchors were removed. Restore chain/ from a backup; vigil verify --data-dir \(directory) reports what it can still check")
                }
                chainState.ledger.startSeq = manifest.flushedThroughSeq
                chainState.ledger.startReason = .predatesChain
                report.chainStartedAfter = manifest.flushedThroughSeq
            }
            var liveFacts = [RetentionStatements.Fact.start(of: chainState.ledger)].compactMap { $0 }
            for path in chainListing.expired {
                let file = try ExpiredLeaves.read(from: directory + "/" + path)
                // The chain's start passed it: a retention pass deletes such a
                // file after its commit, and one whose delete failed is garbage.
                guard file.maxSeq > chainState.ledger.startSeq else {
                    try FileIO.remove(directory + "/" + path)
                    report.garbageRemoved.append(path)
                    continue
                }
                chainState.expiredFiles.append((path, file.maxSeq))
                liveFacts.append(.expired(file, path: path))
            }
            // Equal in every directory the engine wrote: a flush's MANIFEST
            // sets `flushed_through_seq` to the seq its new chain file ends
            // at, retention never moves the chain's end, and a directory from
            // before the chain starts it there. A chain file that ends past
            // it (edited) had every flush fail with INTERNAL, wedging ingest,
            // and the checkpoints sign its head.
            guard chainState.ledger.endSeq == manifest.flushedThroughSeq else {
                throw VigilError(
                    .dataLoss,
                    "\(directory)/\(chainState.ledgerPath ?? "chain/"): the hash chain ends at seq \(chainState.ledger.endSeq), but the MANIFEST says the parts hold the events through seq \(manifest.flushedThroughSeq), and every flush writes both at once: one of them was changed. Restore the data directory from a backup; vigil verify --data-dir \(directory) reports what it can still check")
            }
            report.chainSeq = chainState.ledger.endSeq

            // The WAL: everything not yet in a part.
            var walOptions = WALOptions(directory: directory + "/wal")
            walOptions.segmentBytes = options.walSegmentBytes
            walOptions.sync = options.sync
            walOptions.metrics = options.metrics
            let wal = try WriteAheadLog(options: walOptions)
            var chunks: [MemoryChunk] = []
            var lastSeq = manifest.flushedThroughSeq
            for part in parts { lastSeq = max(lastSeq, part.entry.maxSeq) }
            let flushed = manifest.flushedThroughSeq
            let walReport = try wal.replay(repair: options.repair) { (payload, _) throws(VigilError) in
                // Corruption like any other (DATA_LOSS, or cut by --repair-wal),
                // not an error that even the repair cannot get past.
                let batch: Vigil_V1_WalBatch
                do { batch = try Vigil_V1_WalBatch(serializedBytes: payload) } catch {
                    return .doesNotFollow("its checksum is valid but it does not decode as a batch (\(error))")
                }
                guard batch.firstSeq > flushed, !batch.events.isEmpty else {
                    report.walRecordsReplayed += 1
                    return .replayed
                }
                // Seqs are assigned in WAL order, without gaps: a record that
                // does not start right after the one before (or after the
                // parts) means records are missing, such as a segment lost
                // from the middle of the log. Replaying past it would serve
                // the log with a hole that nothing reports.
                let expected = (chunks.last?.lastSeq ?? flushed) + 1
                guard batch.firstSeq == expected else {
                    let problem =
                        batch.firstSeq > expected
                        ? "its batch starts at seq \(batch.firstSeq), but the log before it ends at seq \(expected - 1): the events of seqs \(expected)…\(batch.firstSeq - 1) are missing"
                        : "its batch starts at seq \(batch.firstSeq), but the log before it already holds events through seq \(expected - 1)"
                    return .doesNotFollow(problem)
                }
                report.walRecordsReplayed += 1
                let chunk = MemoryChunk(
                    columns: .init(batch.events), firstSeq: batch.firstSeq, receivedAt: batch.receivedAtNanos,
                    idempotencyKey: batch.idempotencyKey)
                chunks.append(chunk)
                report.walEventsReplayed += chunk.count
                lastSeq = max(lastSeq, chunk.lastSeq)
                if !batch.idempotencyKey.isEmpty {
                    idempotency.remember(
                        AppendResult(firstSeq: chunk.firstSeq, lastSeq: chunk.lastSeq, count: chunk.count, receivedAt: chunk.receivedAt, replayed: true),
                        for: batch.idempotencyKey, now: min(now, chunk.receivedAt))
                }
                return .replayed
            }
            report.walReport = walReport
            // Only once the directory has passed every check above: a start
            // that refuses it must not have signed what it found.
            report.retentionSettings = try retentionSettings.reconcile()
            if let signer = options.retentionSigner {
                Self.attestAtStart(
                    liveFacts, startSeq: chainState.ledger.startSeq, signer: signer,
                    retention: RetentionSettings.text(retentionSettings.current), report: &report)
            }
            self.wal = wal
            chain = Mutex(chainState)
            chainTracker = ChainTracker(seq: chainState.ledger.endSeq, head: chainState.ledger.endHead)
            var initial = State(nextSeq: lastSeq + 1, visibleSeq: lastSeq, parts: parts, idempotency: idempotency)
            initial.syncedSeq = lastSeq
            initial.active = chunks
            initial.activeBytes = chunks.reduce(0) { $0 + $1.estimatedBytes }
            initial.activeRows = chunks.reduce(0) { $0 + $1.count }
            initial.activeSince = chunks.isEmpty ? nil : .now
            state = Mutex(initial)
        } catch {
            Glibc.close(lockFile)
            throw error
        }
        self.manifest = Mutex(manifest)
        recovery = report
        availability = Mutex(WriteAvailability(directory: directory, reserveBytes: max(0, options.minFreeDiskBytes)))
        feed = CommitFeed(head: state.withLock { $0.visibleSeq }, capacityBytes: options.liveFeedBytes)
        let cores = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        blockingWork = try BlockingWorkExecutor()
        // A thread per core, for a background flush's parts (one per day) side by side.
        backgroundWork = try BlockingWorkExecutor(threads: cores, niceness: 10)
        self.cores = cores
        queryThreads = cores
        queryWork = try BlockingWorkExecutor(threads: queryThreads)
        (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    deinit {
        blockingWork.shutdown()
        backgroundWork.shutdown()
        queryWork.shutdown()
        Glibc.close(lockFile)
    }

    // MARK: Ingest

    public func append(_ events: [AuditEvent], idempotencyKey: String?, wantReceipts: Bool) async throws(VigilError) -> AppendResult {
        try await append(events, encoded: nil, idempotencyKey: idempotencyKey, wantReceipts: wantReceipts)
    }

    public func append(
        _ events: [AuditEvent], encoded: EncodedEvents?, idempotencyKey: String?, wantReceipts: Bool
    ) async throws(VigilError) -> AppendResult {
        let key = IdempotencyWindow.scoped(idempotencyKey ?? "", tenants: events.lazy.map(\.tenant))
        if !key.isEmpty, let earlier = try await earlierAnswer(for: key) { return earlier }
        // A full disk refuses at once, before the batch waits for memory a flush cannot free.
        try admitWrite()
        // The costly work happens before the lock: columns, and the WAL record's events.
        let encoded = encoded ?? EncodedEvents(encoding: events)
        try await waitForMemory(batchBytes: encoded.bytes.count)
        assert(
            (try? Vigil_V1_WalBatch(serializedBytes: encoded.bytes))?.events == events,
            "the encoded events given to append are not the events")
        return try await append(columns: MemoryChunk.Columns(events), encoded: encoded, key: key, wantReceipts: wantReceipts)
    }

    public func append(_ batch: WireIngestBatch) async throws(VigilError) -> AppendResult {
        let key = IdempotencyWindow.scoped(batch.idempotencyKey, tenants: batch.tenantCounts.lazy.map(\.tenant))
        if !key.isEmpty, let earlier = try await earlierAnswer(for: key) { return earlier }
        try admitWrite()
        try await waitForMemory(batchBytes: batch.encoded.bytes.count)
        return try await append(columns: batch.columns, encoded: batch.encoded, key: key, wantReceipts: batch.wantReceipts)
    }

    /// Logs and publishes a batch whose columns are built; the caller has
    /// checked the idempotency key and waited for memory.
    private func append(
        columns: MemoryChunk.Columns, encoded: EncodedEvents, key: String, wantReceipts: Bool
    ) async throws(VigilError) -> AppendResult {
        // The record's body: the events (as the client sent them, when given), then the key.
        var keyField = Vigil_V1_WalBatch()
        keyField.idempotencyKey = key
        let keyBytes: [UInt8] = (try? keyField.serializedBytes()) ?? []

        let written = state.withLock { state -> Result<LockedAppend, VigilError> in
            do throws(VigilError) {
                return .success(try appendLocked(&state, columns: columns, events: encoded, keyBytes: keyBytes, key: key))
            } catch {
                return .failure(error)
            }
        }
        let (result, location, chunk): (AppendResult, WALLocation?, MemoryChunk?)
        switch written {
        case .success(let value):
            let sealFailure: VigilError?
            (result, location, chunk, sealFailure) = value
            if chunk != nil { noteWriteSucceeded() }
            if let sealFailure { noteFailure(sealFailure) }
        case .failure(let error):
            throw refusalAfter(walWriteFailure: error)
        }
        if let location {
            do throws(VigilError) { try await wal.waitDurable(location) } catch {
                // The WAL is poisoned by a failed fsync: this batch is not acknowledged.
                if FileIO.isIOError(error) { report(availability.withLock { $0.failed(error) }) }
                throw error
            }
        }
        if !result.replayed {
            // Under an fsync interval the batch is acknowledged (and shown to
            // queries) now, and given to subscribers after the fsync that
            // covers it: a live consumer acts on what it gets, and must never
            // see an event that a machine crash would take back (and whose
            // seq a different event would then take).
            let waitsForSync = if case .interval = options.sync { location != nil } else { false }
            publish(visibleThrough: result.lastSeq, synced: !waitsForSync)
            if waitsForSync, let location {
                let wal = wal
                let lastSeq = result.lastSeq
                Task {
                    // A failed fsync poisons the log: nothing after it is published.
                    guard (try? await wal.waitSynced(location)) != nil else { return }
                    self.publish(visibleThrough: lastSeq, synced: true)
                }
            }
        }
        if wantReceipts, let chunk {
            var withReceipt = result
            withReceipt.receipt = try await receipt(for: chunk)
            return withReceipt
        }
        return result
    }

    /// Events through `lastSeq` are durable per the policy (`visibleSeq`)
    /// and, with `synced`, covered by an fsync: publishes the batches both
    /// cover to subscribers, in seq order under the lock (a batch made
    /// durable by a later batch's fsync is published before it).
    private func publish(visibleThrough lastSeq: UInt64, synced: Bool) {
        let feed = feed
        let wakeups = state.withLock { state -> CommitFeed.Wakeups? in
            state.visibleSeq = max(state.visibleSeq, lastSeq)
            if synced { state.syncedSeq = max(state.syncedSeq, lastSeq) }
            let limit = min(state.visibleSeq, state.syncedSeq)
            let durable = state.unpublished.prefix { $0.lastSeq <= limit }
            guard !durable.isEmpty else { return nil }
            defer { state.unpublished.removeFirst(durable.count) }
            return feed.publishWakingLater(Array(durable))
        }
        // Outside the lock every ingest takes: there may be thousands of subscribers.
        wakeups?.resume()
    }

    // MARK: Write availability

    /// Why ingest is refused now (the data disk is full, or an I/O error
    /// stopped writes until restart); nil while the store takes writes.
    public var writeUnavailableReason: String? {
        availability.withLock { $0.reason }
    }

    /// Throws the refusal while writes are refused (unless this call is the
    /// probe that tries again); looks at the free space first when due.
    private func admitWrite() throws(VigilError) {
        let now = ContinuousClock.now
        if availability.withLock({ $0.spaceCheckDue(now: now) }) {
            // statvfs outside the lock. A check that fails decides nothing: the write will tell.
            if let free = try? FileIO.freeBytes(options.directory) {
                report(availability.withLock { $0.spaceChecked(freeBytes: free, now: now) })
            }
        }
        try availability.withLock { (value: inout WriteAvailability) throws(VigilError) in try value.admit(now: now) }
    }

    private func noteWriteSucceeded() {
        report(availability.withLock { $0.writeSucceeded(now: .now) })
    }

    /// Records a failed write of maintenance or sealing: a full disk refuses
    /// ingest until space returns; a poisoned WAL refuses it until restart.
    /// Other failures are retried by maintenance and refuse nothing.
    func noteFailure(_ error: VigilError) {
        if let poison = wal.failure {
            report(availability.withLock { $0.failed(poison) })
        } else if FileIO.isDiskFull(error) {
            report(availability.withLock { $0.diskFull(error, now: .now) })
        }
    }

    /// The error a batch whose WAL write failed gets: a full disk or an I/O
    /// error becomes the store's refusal (its reason says what to do); any
    /// other error is the batch's own.
    private func refusalAfter(walWriteFailure error: VigilError) -> VigilError {
        switch WriteAvailability.Failure(walWriteFailure: error, poison: wal.failure) {
        case .batchOwn:
            return error
        case .shortage:
            // The WAL could not open its next segment for want of a
            // descriptor: nothing was written, nothing is in doubt, and the
            // next batch opens it. No refusal: the shortage passes by itself.
            return VigilError(
                .unavailable, "the server is short of file descriptors or memory (\(error.message)); retry shortly",
                metadata: ["vigil.retry-after-ms": "1000"])
        case .poisoned(let poison):
            // A failed fsync (whatever its errno) poisoned the log: only a restart helps.
            report(availability.withLock { $0.failed(poison) })
        case .diskFull:
            report(availability.withLock { $0.diskFull(error, now: .now) })
        case .failing:
            // EIO and the like: the WAL cut the partial record, but the disk is failing.
            report(availability.withLock { $0.failed(error) })
        }
        return availability.withLock { $0.refusal } ?? error
    }

    private func report(_ change: WriteAvailability.Change?) {
        guard let change, let handler = options.eventHandler else { return }
        switch change {
        case .refused(let reason): handler(.writesRefused(reason: reason))
        case .resumed(let after): handler(.writesResumed(after: after))
        }
    }

    /// What `appendLocked` did: the answer, the WAL record to wait for, the
    /// new chunk (nil for a remembered answer), and a seal that failed.
    typealias LockedAppend = (AppendResult, WALLocation?, MemoryChunk?, VigilError?)

    /// Assigns the batch its seqs and writes its WAL record, under the state
    /// lock (so WAL order is seq order). Throws when the WAL write fails;
    /// then nothing changed.
    private func appendLocked(
        _ state: inout State, columns: MemoryChunk.Columns, events: EncodedEvents, keyBytes: [UInt8], key: String
    ) throws(VigilError) -> LockedAppend {
        guard !state.closed else { throw VigilError(.unavailable, "the store is shutting down") }
        let now = currentUnixNanos()
        if !key.isEmpty, var earlier = state.idempotency.answer(for: key, now: now) {
            earlier.replayed = true
            return (earlier, state.lastWrite, nil, nil)
        }
        let firstSeq = state.nextSeq
        // Protobuf messages concatenate: the tail adds the fields known only now.
        var tail = Vigil_V1_WalBatch()
        tail.firstSeq = firstSeq
        tail.receivedAtNanos = now
        // A failed write leaves the WAL as it was (the partial record is cut away).
        let tailBytes: [UInt8] = (try? tail.serializedBytes()) ?? []
        // The events are the request's own bytes, read in place.
        let written = events.withUnsafeBytes { events in
            keyBytes.withUnsafeBytes { key in
                tailBytes.withUnsafeBytes { tail -> Result<WALLocation, VigilError> in
                    do throws(VigilError) { return .success(try wal.write(pieces: [events, key, tail])) } catch { return .failure(error) }
                }
            }
        }
        let location = try written.get()
        state.lastWrite = location
        state.nextSeq += UInt64(columns.count)
        let chunk = MemoryChunk(columns: columns, firstSeq: firstSeq, receivedAt: now, idempotencyKey: key)
        state.active.append(chunk)
        state.unpublished.append(chunk)
        state.activeBytes += chunk.estimatedBytes
        state.activeRows += chunk.count
        if state.activeSince == nil { state.activeSince = .now }
        state.lastAppendAt = now
        let result = AppendResult(firstSeq: firstSeq, lastSeq: chunk.lastSeq, count: chunk.count, receivedAt: now, replayed: false)
        if !key.isEmpty { state.idempotency.remember(result, for: key, now: now) }
        // Half the budget at most, so that one segment can fill while another flushes.
        var sealFailure: VigilError?
        if state.activeRows >= options.segmentMaxRows || state.activeBytes >= min(options.segmentMaxBytes, options.memoryBudgetBytes / 2) {
            // The batch is written: a seal that fails (no room for the next
            // WAL segment) does not fail it. Maintenance seals by age later.
            do throws(VigilError) { try sealActive(&state) } catch { sealFailure = error }
        }
        return (result, location, chunk, sealFailure)
    }

    /// The leaves of a durable batch and the chain head after it.
    private func receipt(for chunk: MemoryChunk) async throws(VigilError) -> ChainReceipt {
        let leaves = chunk.leaves()
        let tracker = chainTracker
        try await tracker.lock.withLock { () async throws(VigilError) in
            let before = state.withLock { state in
                (state.sealed.flatMap(\.chunks) + state.active).filter { $0.lastSeq <= chunk.lastSeq }
            }
            _ = try tracker.advance(through: before, known: [chunk.firstSeq: leaves])
        }
        guard let head = chunk.chainMark.withLock({ $0?.headAfter }) else {
            throw VigilError(.internal, "the hash chain did not reach seq \(chunk.lastSeq)")
        }
        return ChainReceipt(leaves: leaves, head: head)
    }

    /// The chain head through every durable event: what a checkpoint signs.
    /// Hashes the batches in memory that no flush or receipt hashed yet.
    public func chainHead() async throws(VigilError) -> (seq: UInt64, head: ChainDigest) {
        let tracker = chainTracker
        return try await withTaskExecutorPreference(queryWork) { () async throws(VigilError) -> (seq: UInt64, head: ChainDigest) in
            try await tracker.lock.withLock { () async throws(VigilError) -> (seq: UInt64, head: ChainDigest) in
                // Only what an fsync covers (under `--fsync interval` an
                // acknowledged batch may not be yet): a checkpoint signed over
                // events a machine crash then takes back, their seqs given to
                // others, would call the store tampered with for ever after.
                let chunks = state.withLock { state in
                    let durable = min(state.visibleSeq, state.syncedSeq)
                    return (state.sealed.flatMap(\.chunks) + state.active).filter { $0.lastSeq <= durable }
                }
                let position = try tracker.advance(through: chunks)
                return (position.seq, position.head)
            }
        }
    }

    /// Where retention cut the chain: every event at or below `seq` was
    /// removed, and `head` is the head after them.
    public func chainCut() -> (seq: UInt64, head: ChainDigest)? {
        chain.withLock { state in
            state.ledger.startSeq > 0 && state.ledger.startReason == .retention ? (state.ledger.startSeq, state.ledger.startHead) : nil
        }
    }

    public func earlierAnswer(idempotencyKey: String, tenants: some Sequence<String>) async throws(VigilError) -> AppendResult? {
        let key = IdempotencyWindow.scoped(idempotencyKey, tenants: tenants)
        return key.isEmpty ? nil : try await earlierAnswer(for: key)
    }

    /// The remembered answer for `key`, once the batch it answers is durable.
    private func earlierAnswer(for key: String) async throws(VigilError) -> AppendResult? {
        let found = state.withLock { state -> (AppendResult, WALLocation?)? in
            guard var earlier = state.idempotency.answer(for: key, now: currentUnixNanos()) else { return nil }
            earlier.replayed = true
            return (earlier, state.lastWrite)
        }
        guard let (answer, location) = found else { return nil }
        if let location { try await wal.waitDurable(location) }
        return answer
    }

    /// Backpressure: waits while unflushed data is over the memory budget; after
    /// `backpressureTimeout`, RESOURCE_EXHAUSTED. A waiter woken by a flush
    /// checks again, since one flush may not bring memory under the budget.
    ///
    /// The batches that wait are decoded already, outside the budget: so that
    /// many agents' in-flight batches cannot pile up without bound behind a
    /// slow disk, those waiting may hold half the budget at most (counting a
    /// batch three times its WAL bytes: the request, its WAL encoding, its
    /// columns); past it a batch is refused at once.
    private func waitForMemory(batchBytes: Int) async throws(VigilError) {
        let budget = options.memoryBudgetBytes
        let over: @Sendable (State) -> Bool = { state in state.activeBytes + state.sealedBytes > budget && !state.sealed.isEmpty }
        guard state.withLock({ over($0) }) else { return }
        let held = batchBytes * 3
        let parked = state.withLock { state -> Bool in
            // One batch always may wait, however large: otherwise a batch
            // over half the budget could never be stored.
            guard state.waitingBytes == 0 || state.waitingBytes + held <= budget / 2 else { return false }
            state.waitingBytes += held
            return true
        }
        guard parked else {
            throw VigilError(
                .resourceExhausted,
                "ingest is ahead of flushing to disk (over the \(budget / 1_048_576) MiB memory budget, and batches waiting for it hold half as much again); retry shortly",
                metadata: ["vigil.retry-after-ms": "1000"])
        }
        defer { state.withLock { $0.waitingBytes -= held } }
        let deadline = ContinuousClock.now + options.backpressureTimeout
        while state.withLock({ over($0) }) {
            let remaining = deadline - .now
            guard remaining > .zero else {
                throw VigilError(
                    .resourceExhausted, "ingest is ahead of flushing to disk (over the \(budget / 1_048_576) MiB memory budget); retry shortly",
                    metadata: ["vigil.retry-after-ms": "1000"])
            }
            wake.yield()
            let waiterID = state.withLock { state -> UInt64 in
                state.nextWaiterID += 1
                return state.nextWaiterID
            }
            // Releases this waiter only (or stops it from registering).
            let release: @Sendable () -> Void = {
                self.state.withLock { state -> CheckedContinuation<Void, Never>? in
                    guard let waiter = state.memoryWaiters.removeValue(forKey: waiterID) else {
                        state.expiredWaiters.insert(waiterID)
                        return nil
                    }
                    return waiter
                }?.resume()
            }
            // The call's own cancellation (a CANCEL, its deadline, a lost
            // connection) ends the wait at once: otherwise only a flush
            // would, which may not come for hours on a failing disk.
            await withTaskCancellationHandler {
                await withTaskGroup(of: Void.self) { group in
                    group.addTask {
                        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                            let registered = self.state.withLock { state -> Bool in
                                guard state.expiredWaiters.remove(waiterID) == nil, over(state) else { return false }
                                state.memoryWaiters[waiterID] = continuation
                                return true
                            }
                            if !registered { continuation.resume() }
                        }
                    }
                    group.addTask {
                        try? await Task.sleep(for: remaining)
                        // The waiter finished first, or the call was cancelled
                        // (the handler released it): nothing to release.
                        if Task.isCancelled { return }
                        release()
                    }
                    await group.next()
                    group.cancelAll()
                }
            } onCancel: {
                release()
            }
            if Task.isCancelled { throw VigilError(.cancelled, "the call was cancelled while ingest waited for memory") }
        }
    }

    /// Seals the active segment: it becomes a sealed segment waiting for its
    /// flush, and the WAL rotates so that its records are exactly those of the
    /// older WAL segments.
    private func sealActive(_ state: inout State) throws(VigilError) {
        guard !state.active.isEmpty else { return }
        let boundary = try wal.rotate()
        state.sealed.append(SealedSegment(
            chunks: state.active, walBoundary: boundary, lastLocation: state.lastWrite, bytes: state.activeBytes,
            flushesInBackground: SealedSegment.flushesInBackground(
                filledIn: state.activeSince.map { ContinuousClock.now - $0 }, rows: state.activeRows,
                nanosPerRow: state.backgroundFlushNanosPerRow ?? options.backgroundFlushAssumedNanosPerRow,
                minimum: options.backgroundFlushFillTime)))
        state.sealedBytes += state.activeBytes
        state.active = []
        state.activeBytes = 0
        state.activeRows = 0
        state.activeSince = nil
        wake.yield()
    }

    // MARK: Maintenance

    /// Runs flushes, merges and retention until cancelled. The server runs it
    /// beside its listener.
    public func runMaintenance() async throws {
        try await withTaskExecutorPreference(backgroundWork) {
            try await maintenanceLoop()
        }
    }

    private func maintenanceLoop() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            let wake = wake
            group.addTask {
                // A periodic tick for age-based sealing and retention.
                while !Task.isCancelled {
                    try await Task.sleep(for: .seconds(1))
                    wake.yield()
                }
            }
            var lastRetention = ContinuousClock.now - .seconds(3600)
            var backoff = MaintenanceBackoff()
            // Merges and retention keep backoffs of their own: a merge or a
            // pass that keeps failing (a damaged part, a merge larger than
            // the free space, an archive that refuses links) must not hold
            // back the flushes that ingest waits for.
            var mergeBackoff = MaintenanceBackoff()
            var retentionBackoff = MaintenanceBackoff()
            for await _ in wakeups {
                if Task.isCancelled { break }
                recheckWriteAvailability()
                if backoff.isDue(now: .now) {
                    do throws(VigilError) {
                        try await flushRound()
                        backoff.succeeded()
                    } catch {
                        // A full disk or a failing one must not stop maintenance for
                        // good: what failed stays in memory and the WAL, and is retried.
                        let delay = backoff.failed(now: .now)
                        options.metrics.flushFailures.increment()
                        options.eventHandler?(.maintenanceFailed(error, retryIn: delay))
                    }
                }
                if mergeBackoff.isDue(now: .now) {
                    do throws(VigilError) {
                        try await mergeNow()
                        mergeBackoff.succeeded()
                    } catch {
                        let delay = mergeBackoff.failed(now: .now)
                        options.metrics.mergeFailures.increment()
                        options.eventHandler?(.maintenanceFailed(error, retryIn: delay))
                    }
                }
                guard ContinuousClock.now - lastRetention >= .seconds(60), retentionBackoff.isDue(now: .now) else { continue }
                do throws(VigilError) {
                    try await retainNow(now: currentUnixNanos())
                    retentionBackoff.succeeded()
                    lastRetention = .now
                } catch {
                    let delay = retentionBackoff.failed(now: .now)
                    options.metrics.retentionFailures.increment()
                    options.eventHandler?(.maintenanceFailed(error, retryIn: delay))
                }
            }
            group.cancelAll()
        }
    }

    /// One round of maintenance: seal by age, flush, merge, and (when asked) retention.
    public func maintain(retention: Bool = true) async throws(VigilError) {
        try await flushRound()
        try await mergeNow()
        if retention { try await retainNow(now: currentUnixNanos()) }
    }

    /// Seals the active segment when it is old enough, and flushes what is sealed.
    private func flushRound() async throws(VigilError) {
        try await maintenanceLock.withLock { () async throws(VigilError) in
            try await writing { () async throws(VigilError) in
                try state.withLock { state throws(VigilError) in
                    if let since = state.activeSince, ContinuousClock.now - since >= options.segmentMaxAge {
                        try sealActive(&state)
                    }
                }
                try await flushSealed()
            }
        }
    }

    /// While ingest is refused for a full disk, looks again at every tick of
    /// maintenance, not only when an ingest call comes: behind a load
    /// balancer that follows `/readyz`, none may come, and the refusal (and
    /// the readiness answer) would last until a restart. Below the reserve,
    /// a free-space check decides; after a failed write, a probe write.
    private func recheckWriteAvailability() {
        let now = ContinuousClock.now
        let (checkSpace, probe) = availability.withLock { value in
            (value.full != nil && value.spaceCheckDue(now: now), value.maintenanceProbeDue(now: now))
        }
        if checkSpace, let free = try? FileIO.freeBytes(options.directory) {
            report(availability.withLock { $0.spaceChecked(freeBytes: free, now: now) })
        }
        guard probe else { return }
        if (try? FileIO.probeWrite(options.directory + "/" + Self.spaceProbeName, bytes: Self.spaceProbeBytes)) != nil {
            noteWriteSucceeded()
        }
    }

    /// The file a probe write makes and removes (one left by a crash is
    /// removed at the next start).
    static let spaceProbeName = "space-probe.tmp"
    /// A WAL record of a large batch: space for less is not space to resume with.
    static let spaceProbeBytes = 1 << 20

    /// Flushes the segments sealed so far, oldest first.
    private func flushSealed() async throws(VigilError) {
        // Only the segments sealed before this round: under an ingest that
        // seals faster than flushes finish, the loop would never end, and
        // a backup or verification waiting for the lock would never get it.
        let sealed = state.withLock { $0.sealed.count }
        for _ in 0..<sealed {
            guard let segment = state.withLock({ $0.sealed.first }) else { break }
            // In the background only while ingest is not waiting for it:
            // no segment sealed behind this one, nobody waiting for memory.
            let background = segment.flushesInBackground && state.withLock { $0.sealed.count == 1 && $0.memoryWaiters.isEmpty }
            try await withTaskExecutorPreference(background ? backgroundWork : blockingWork) { () async throws(VigilError) in
                try await flush(segment, background: background)
            }
        }
    }

    /// Seals whatever is in memory and flushes it now.
    public func flushNow() async throws(VigilError) {
        try await maintenanceLock.withLock { () async throws(VigilError) in
            try await writing { () async throws(VigilError) in
                try state.withLock { state throws(VigilError) in try sealActive(&state) }
                while let segment = state.withLock({ $0.sealed.first }) {
                    try await flush(segment)
                }
            }
        }
    }

    /// Merges what is due (the maintenance loop, tests and `vigil` tools).
    /// A merge that runs out of space does not refuse ingest: merges need
    /// room for their output before they free their inputs, more than the
    /// reserve a flush needs, and ingest is refused by the reserve check or
    /// by a WAL write that fails itself.
    public func mergeNow() async throws(VigilError) {
        try await maintenanceLock.withLock { () async throws(VigilError) in
            try await writing(diskFullRefusesIngest: false) { () async throws(VigilError) in
                // At normal priority: in the background, on a busy machine,
                // resident memory rose by 30 MiB (MemoryBoundTests beside the
                // other CLI tests: peaks of 116–123 MiB, not 83–93).
                try await withTaskExecutorPreference(blockingWork) { () async throws(VigilError) in try await mergeIfNeeded() }
            }
        }
    }

    /// Applies retention now as of `now`: removes (or archives) the parts
    /// whose every event expired, then rewrites those that still hold some
    /// expired events among others kept longer.
    public func retainNow(now: Int64) async throws(VigilError) {
        // The parts' rows and chain are checked first, outside the lock:
        // reading every event a cut removes takes long, and flushes wait for
        // the lock (and ingest, once memory is full, for the flushes).
        let checked = try await withTaskExecutorPreference(blockingWork) { () async throws(VigilError) -> Set<String> in
            try removableForRetention(now: now)
        }
        try await maintenanceLock.withLock { () async throws(VigilError) in
            try await writing { () async throws(VigilError) in
                // At normal priority, as merges (see `mergeNow`).
                try await withTaskExecutorPreference(blockingWork) { () async throws(VigilError) in
                    try applyRetention(now: now, checked: checked)
                    try await rewriteForRetention(now: now)
                }
            }
        }
    }

    /// Parts rewritten without their expired events in one retention pass at
    /// most: the rest wait for the next pass (a minute later), so that one
    /// pass after a retention cut does not hold maintenance for long.
    static let retentionRewritesPerPass = 16

    /// Rewrites, as a merge of one part, each part that holds events past
    /// their tenant's retention while events of tenants kept longer keep the
    /// part: parts are cut by day, not by tenant, so a tenant with a shorter
    /// retention than the others (`acme=30d` beside a default of 90 days, or
    /// `forever`) would keep its events on disk and in backups for as long as
    /// the longest. The merge drops them and keeps their leaves for the
    /// chain, as any merge does. With an archive, parts go there whole when
    /// every event in them expired, and a tenant's retention only hides its
    /// events before that: rewriting would delete them without archiving.
    private func rewriteForRetention(now: Int64) async throws(VigilError) {
        guard options.archiveDirectory == nil else { return }
        let retention = retentionSettings.current
        let unmergeable = self.unmergeable.withLock { $0 }
        let parts = state.withLock { state in state.parts.filter { !state.merging.contains($0.entry.path) } }
        let live = Set(parts.map(\.entry.path))
        oldestByTenant.withLock { known in known = known.filter { live.contains($0.key) } }
        var rewritten = 0
        var noRoom = false
        // Not those retention removes whole (kept only if unreadable, and reported then).
        // The smallest first: on a full disk (where lowering retention is
        // the way out), those that fit are rewritten and free their space.
        for part in parts.sorted(by: { $0.entry.bytes < $1.entry.bytes })
        where rewritten < Self.retentionRewritesPerPass && !unmergeable.contains(part.entry.path)
            && !Self.isWhollyExpired(part, retention: retention, now: now)
        {
            // From the entry alone, most parts hold nothing past any of their
            // tenants' retention: their columns are never read.
            let shortest = part.reader.metadata.tenants.compactMap { retention.of($0) }.min()
            guard let shortest, part.entry.minOccurredAt < now &- shortest else { continue }
            do throws(VigilError) {
                let holdsExpired = try oldestEvents(of: part).contains { tenant, oldest in
                    retention.of(tenant).map { oldest < now &- $0 } ?? false
                }
                guard holdsExpired else { continue }
                guard try await merge([part], day: part.day, now: now, reason: .retention) else { return }
                rewritten += 1
            } catch {
                if FileIO.isDiskFull(error) {
                    // No room for what it keeps: the larger ones wait for the next pass,
                    // and a rewrite, like a merge, refuses no ingest (the reserve does).
                    noRoom = true
                    break
                }
                // A part that cannot be read stays as it is (and merges leave it alone); the others go on.
                guard Self.isUnreadablePart(error) else { throw error }
                self.unmergeable.withLock { _ = $0.insert(part.entry.path) }
                reportUnreadable(part, error)
            }
        }
        if noRoom { options.metrics.retentionFailures.increment() }
    }

    /// Whether every event of `part` is past its tenant's retention: the
    /// part goes whole (to the archive, or away).
    static func isWhollyExpired(_ part: LivePart, retention: RetentionSettings.Values, now: Int64) -> Bool {
        part.reader.metadata.tenants.allSatisfy { tenant in
            guard let retention = retention.of(tenant) else { return false }
            return part.entry.maxOccurredAt < now &- retention
        }
    }

    /// Whether `error`, met reading a part, means the part's bytes cannot
    /// be read (damaged, or a failing sector), not that the store cannot work.
    static func isUnreadablePart(_ error: VigilError) -> Bool {
        error.code == .dataLoss || error.metadata[FileIO.errnoKey] == "EIO"
    }

    /// Tells the host (the log, the metrics) that retention left `part`
    /// in place because it cannot be read.
    func reportUnreadable(_ part: LivePart, _ error: VigilError) {
        options.metrics.retentionFailures.increment()
        options.eventHandler?(.partUnreadable(path: options.directory + "/" + part.entry.path, error))
    }

    /// The time of each tenant's oldest event in `part`: from the block
    /// statistics where a block holds one tenant, from its tenant and time
    /// columns where it holds several (the block's oldest may be another
    /// tenant's). Parts never change, so each is read once.
    private func oldestEvents(of part: LivePart) throws(VigilError) -> [String: Int64] {
        if let known = oldestByTenant.withLock({ $0[part.entry.path] }) { return known }
        var oldest: [String: Int64] = [:]
        for block in part.reader.blocks {
            if block.tenants.count == 1 {
                oldest[block.tenants[0]] = min(oldest[block.tenants[0]] ?? .max, block.minOccurredAt)
                continue
            }
            let columns = try part.reader.readColumns(block: block.index, [.tenant, .occurredAt, .presence])
            let tenants = columns.tenant ?? []
            for row in 0..<min(tenants.count, block.rowCount) {
                oldest[tenants[row]] = min(oldest[tenants[row]] ?? .max, columns.occurredAtIfPresent(row))
            }
        }
        oldestByTenant.withLock { $0[part.entry.path] = oldest }
        return oldest
    }

    /// Runs maintenance work that writes: not at all after an I/O failure
    /// (the page cache is not to be trusted, and a MANIFEST whose commit is
    /// uncertain must not be built on); a failure is recorded (a full disk
    /// refuses ingest) and thrown. Whatever failed before its MANIFEST commit
    /// left no file behind and is retried.
    private func writing(diskFullRefusesIngest: Bool = true, _ body: () async throws(VigilError) -> Void) async throws(VigilError) {
        if let refusal = availability.withLock({ $0.failure == nil ? nil : $0.refusal }) { throw refusal }
        do throws(VigilError) {
            try await body()
        } catch {
            if diskFullRefusesIngest || !FileIO.isDiskFull(error) { noteFailure(error) }
            throw error
        }
    }

    /// Writes `segment` to parts. `background`: the flush runs on
    /// `backgroundWork`, and its parts are written there too.
    private func flush(_ segment: SealedSegment, background: Bool = false) async throws(VigilError) {
        let started = ContinuousClock.now
        if let location = segment.lastLocation { try await wal.waitDurable(location) }
        // Parts are written from the chunks' columns: no event is rebuilt.
        var byDay: [String: MemoryChunkRows] = [:]
        var leavesByDay: [String: [UInt32]] = [:]
        var maxReceived: Int64 = 0
        var keys = Vigil_V1_IdempotencyKeys()
        // The chain, in seq order: from the last anchor through this segment.
        var ledger = chain.withLock { $0.ledger }
        var head = ledger.endHead
        var scratch = LeafScratch()
        var day: (number: Int64, name: String) = (.min, "")
        var dayRows = MemoryChunkRows()
        var dayLeaves: [UInt32] = []
        if let first = segment.chunks.first, first.firstSeq != ledger.endSeq + 1 {
            throw VigilError(.internal, "the hash chain ends at seq \(ledger.endSeq) but the segment to flush starts at \(first.firstSeq)")
        }
        for chunk in segment.chunks {
            // Hashed already for a receipt or a checkpoint?
            let mark = chunk.chainMark.withLock { $0 }
            // Canonical bytes live subscribers have written already.
            let kept = mark == nil ? chunk.deliveryCache.withLock { $0.rows } : []
            var truncated: [UInt32] = []
            if mark == nil {
                truncated.reserveCapacity(chunk.count)
                chunk.forEachLeaf(kept: kept, scratch: &scratch) { leaf in
                    head = HashChain.next(head, leaf)
                    truncated.append(leaf.truncated)
                }
            }
            for row in 0..<chunk.count {
                let time = chunk.columns.occurredAt[row]
                if dayNumber(of: time) != day.number {
                    // The day's rows and leaves are taken out of the dictionaries
                    // while its rows last (no lookup per row), and put back after.
                    if day.number != .min {
                        byDay[day.name] = dayRows
                        leavesByDay[day.name] = dayLeaves
                    }
                    day = (dayNumber(of: time), dayName(of: time))
                    dayRows = byDay.removeValue(forKey: day.name) ?? MemoryChunkRows()
                    dayLeaves = leavesByDay.removeValue(forKey: day.name) ?? []
                }
                dayRows.add(chunk, row: row)
                dayLeaves.append(mark?.truncated[row] ?? truncated[row])
            }
            if let mark {
                head = mark.headAfter
            } else {
                let after = head
                chunk.chainMark.withLock { $0 = ChainMark(truncated: truncated, headAfter: after) }
            }
            maxReceived = max(maxReceived, chunk.receivedAt)
            if !chunk.idempotencyKey.isEmpty {
                var entry = Vigil_V1_IdempotencyEntry()
                entry.key = chunk.idempotencyKey
                entry.firstSeq = chunk.firstSeq
                entry.lastSeq = chunk.lastSeq
                entry.count = UInt32(chunk.count)
                entry.receivedAtNanos = chunk.receivedAt
                keys.entries.append(entry)
            }
        }
        if day.number != .min {
            byDay[day.name] = dayRows
            leavesByDay[day.name] = dayLeaves
        }
        var next = manifest.withLock { $0 }
        var files = UncommittedFiles(directory: options.directory)
        var written: [LivePart] = []
        let ledgerPath: String
        // On a failure before the commit (a full disk), the segment stays in
        // memory and its WAL segments stay on disk: nothing is lost, and the
        // next maintenance round tries again from scratch.
        do throws(VigilError) {
            // One part per day, written side by side: the flush is what ingest
            // waits on once the memory budget is full.
            let days = byDay.sorted(by: { $0.key < $1.key })
            let reserved = try days.map { (day, _) throws(VigilError) in try reservePart(day: day, manifest: &next, files: &files) }
            let leavesByDay = leavesByDay
            // Fewer days than cores (a live agent's events all fall on today):
            // each part is encoded on every core instead, unless in the
            // background, where a part is written by one low-priority thread.
            let parallel = !background && days.count < cores
            let write = { @Sendable (index: Int) -> Result<LivePart, VigilError> in
                let (day, events) = days[index]
                do throws(VigilError) {
                    return .success(try self.writeReservedPart(events, leaves: leavesByDay[day], at: reserved[index], level: 0, parallel: parallel))
                } catch {
                    return .failure(error)
                }
            }
            var results = [Result<LivePart, VigilError>?](repeating: nil, count: days.count)
            if background {
                // As child tasks on the background executor's threads (they keep
                // the flush's executor preference), so that every part keeps its
                // low priority.
                await withTaskGroup(of: (Int, Result<LivePart, VigilError>).self) { group in
                    for index in days.indices { group.addTask { (index, write(index)) } }
                    for await (index, result) in group { results[index] = result }
                }
            } else {
                // On every core at once. (Child tasks on a thread per core kept
                // ingest's ack p99 at 0.5 s under vigil-bench ingest, against
                // 0.2 s this way: the flush fell behind.)
                let shared = Mutex(results)
                DispatchQueue.concurrentPerform(iterations: days.count) { index in
                    let result = write(index)
                    shared.withLock { $0[index] = result }
                }
                results = shared.withLock { $0 }
            }
            for result in results {
                guard let result else { throw VigilError(.internal, "a part of the flush was not written") }
                written.append(try result.get())
            }
            if !keys.entries.isEmpty {
                let name = "\(hex16(next.nextPartNumber))-\(hex16(UInt64(max(0, maxReceived)))).keys"
                next.nextPartNumber += 1
                files.add("keys/" + name)
                try ChecksummedFile.write(keys, magic: Self.keysMagic, to: options.directory + "/keys/" + name)
                next.idempotencyFiles.append(name)
            }
            next.parts += written.map(\.entry)
            next.flushedThroughSeq = max(next.flushedThroughSeq, segment.lastSeq)
            ledger.append(lastSeq: segment.lastSeq, head: head)
            ledgerPath = try writeLedger(ledger, manifest: &next, files: &files)
            try commit(next, files: &files)
        } catch {
            files.discard()
            throw error
        }
        noteWriteSucceeded()
        replaceLedger(ledger, at: ledgerPath)
        chainTracker.flushed(through: .init(seq: segment.lastSeq, head: head))
        let rows = segment.chunks.reduce(0) { $0 + $1.count }
        let backgroundNanosPerRow = background && rows > 0 ? (ContinuousClock.now - started).wholeNanoseconds / Int64(rows) : nil
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.sealed.removeFirst()
            if let backgroundNanosPerRow { state.backgroundFlushNanosPerRow = backgroundNanosPerRow }
            state.sealedBytes -= segment.bytes
            state.parts += written
            defer { state.memoryWaiters.removeAll() }
            return Array(state.memoryWaiters.values)
        }
        waiters.forEach { $0.resume() }
        try wal.removeSegments(before: segment.walBoundary)
    }

    private func writePart<Rows: PartRowSource>(
        _ events: Rows, leaves: [UInt32]?, day: String, level: UInt8, manifest: inout Vigil_V1_Manifest,
        files: inout UncommittedFiles
    ) throws(VigilError) -> LivePart {
        let reserved = try reservePart(day: day, manifest: &manifest, files: &files)
        return try writeReservedPart(events, leaves: leaves, at: reserved, level: level)
    }

    /// A new part's number and path (relative to the data directory), its
    /// day's directory made, and the file registered in `files`.
    private func reservePart(
        day: String, manifest: inout Vigil_V1_Manifest, files: inout UncommittedFiles
    ) throws(VigilError) -> (number: UInt64, relative: String) {
        let number = manifest.nextPartNumber
        manifest.nextPartNumber += 1
        let relative = "parts/\(day)/\(hex16(number)).part"
        files.add(relative)
        try FileIO.makeDirectory(options.directory + "/parts/" + day)
        return (number, relative)
    }

    /// zlib's level for parts a flush writes. Flushes are what ingest waits
    /// on once memory is full; at level 4 zlib took about a third less time
    /// than at 6 (vigil-bench ingest: 9% less server CPU per event) for 0.5%
    /// more bytes. A day's parts are merged at the default 6 once it has
    /// several.
    static let flushCompressionLevel: Int32 = 4

    /// `parallel`: the part's blocks are encoded on every core
    /// (`PartWriter.Options.parallelTasks`).
    private func writeReservedPart<Rows: PartRowSource>(
        _ events: Rows, leaves: [UInt32]?, at reserved: (number: UInt64, relative: String), level: UInt8,
        parallel: Bool = false
    ) throws(VigilError) -> LivePart {
        var writerOptions = partWriterOptions(level: level, generation: reserved.number)
        writerOptions.parallelTasks = parallel
        let metadata = try PartWriter.write(rows: events, leaves: leaves, to: options.directory + "/" + reserved.relative, options: writerOptions)
        return try livePart(reserved.relative, metadata: metadata, level: level)
    }

    /// How a part of `level` numbered `generation` is written.
    private func partWriterOptions(level: UInt8, generation: UInt64) -> PartWriter.Options {
        var writerOptions = PartWriter.Options()
        writerOptions.rowsPerBlock = options.rowsPerBlock
        writerOptions.level = level
        writerOptions.generation = generation
        if level == 0 { writerOptions.compressionLevel = Self.flushCompressionLevel }
        return writerOptions
    }

    /// The part just written at `relative` (under the data directory), opened.
    private func livePart(_ relative: String, metadata: PartMetadata, level: UInt8) throws(VigilError) -> LivePart {
        options.metrics.partBytesWritten.increment(by: metadata.fileBytes)
        var entry = Vigil_V1_ManifestPart()
        entry.path = relative
        entry.rows = UInt64(metadata.rowCount)
        entry.minSeq = metadata.minSeq
        entry.maxSeq = metadata.maxSeq
        entry.minOccurredAt = metadata.minOccurredAt
        entry.maxOccurredAt = metadata.maxOccurredAt
        entry.level = UInt32(level)
        entry.bytes = UInt64(metadata.fileBytes)
        return LivePart(entry: entry, reader: try PartReader(path: options.directory + "/" + relative))
    }

    /// Replaces MANIFEST with `next`. A failure to write it (a full disk)
    /// changes nothing, and `files` are removed. Once the rename is done the
    /// new MANIFEST is the one a reader sees, and owns `files`; if the
    /// directory fsync after it fails, whether it survives a crash is
    /// unknown, so the store stops writing until restart (nothing may build
    /// on it, such as deleting the WAL segments it replaces) and throws.
    private func commit(_ next: Vigil_V1_Manifest, files: inout UncommittedFiles) throws(VigilError) {
        do throws(VigilError) {
            try ChecksummedFile.write(next, magic: Self.manifestMagic, to: options.directory + "/MANIFEST", syncDirectory: false)
        } catch {
            files.discard()
            throw error
        }
        manifest.withLock { $0 = next }
        files.committed()
        // A failed fsync leaves the commit in doubt until restart; an open
        // that found no descriptor free left nothing in doubt yet: waited for.
        do throws(VigilError) { try FileIO.syncDirectory(options.directory, shortageRetries: 50) } catch {
            report(availability.withLock { $0.failed(error) })
            throw error
        }
    }

    /// Writes `ledger` as a new chain file numbered from the manifest (which
    /// must then be committed for the file to count). Returns its path.
    private func writeLedger(
        _ ledger: ChainLedger, manifest: inout Vigil_V1_Manifest, files: inout UncommittedFiles
    ) throws(VigilError) -> String {
        let path = ChainFiles.name(manifest.nextPartNumber, ChainFiles.chainExtension)
        manifest.nextPartNumber += 1
        files.add(path)
        try FileIO.makeDirectory(options.directory + "/" + ChainFiles.directoryName)
        try ledger.write(to: options.directory + "/" + path)
        return path
    }

    /// After the commit: the new chain file is live, the one before is not.
    private func replaceLedger(_ ledger: ChainLedger, at path: String) {
        let old = chain.withLock { state -> String? in
            defer {
                state.ledger = ledger
                state.ledgerPath = path
            }
            return state.ledgerPath
        }
        if let old { removeAfterCommit(old) }
    }

    /// Removes a file that a commit made unneeded. Its failure is reported,
    /// not thrown: the commit stands, and a flush or retention pass that
    /// threw here stopped before it let go of what it committed (a flush's
    /// segment stayed in memory, refused by every later flush).
    private func removeAfterCommit(_ relative: String) {
        do throws(VigilError) {
            try FileIO.remove(options.directory + "/" + relative)
        } catch {
            options.eventHandler?(.cleanupFailed(error))
        }
    }

    /// Writes the leaves of events that retention removed while others of
    /// their anchored range remain, numbered from the manifest, and its
    /// signed statement (before the commit: a removal that cannot be
    /// attested does not happen, and is tried again later).
    private func writeExpired(
        _ entries: [ExpiredLeaves.Entry], reason: Vigil_V1_RetentionStatement.Reason,
        manifest: inout Vigil_V1_Manifest, files: inout UncommittedFiles, statements: inout [String]
    ) throws(VigilError) -> (path: String, maxSeq: UInt64)? {
        guard !entries.isEmpty else { return nil }
        let path = ChainFiles.name(manifest.nextPartNumber, ChainFiles.expiredExtension)
        manifest.nextPartNumber += 1
        files.add(path)
        try FileIO.makeDirectory(options.directory + "/" + ChainFiles.directoryName)
        let file = ExpiredLeaves(entries: entries)
        try file.write(to: options.directory + "/" + path)
        try attest(.expired(file, path: path), reason: reason, statements: &statements)
        return (path, file.maxSeq)
    }

    /// Signs `fact` into the checkpoint directory, when there is a signer;
    /// adds the statement's path to `statements` when it wrote one.
    private func attest(
        _ fact: RetentionStatements.Fact, reason: Vigil_V1_RetentionStatement.Reason, statements: inout [String]
    ) throws(VigilError) {
        guard let signer = options.retentionSigner else { return }
        do throws(VigilError) {
            if let path = try RetentionStatements.attest(fact, reason: reason, retention: RetentionSettings.text(retentionSettings.current), signer: signer) {
                statements.append(path)
            }
        } catch {
            throw VigilError(
                error.code,
                "cannot write the signed retention statement of \(fact.description) into \(signer.directory): \(error.message). Nothing is removed until it can be written")
        }
    }

    /// After an operation that failed before its commit: the statements it
    /// signed attest removals that did not happen, and must not stand for
    /// them later (a file of the same name and contents recreated by hand).
    /// Kept when the MANIFEST was replaced (a commit whose directory fsync
    /// failed is in doubt, not undone). Best effort: the next start sets
    /// aside what is left (`RetentionStatements.setAsideUnused`).
    private func withdraw(_ statements: [String], committedPast number: UInt64) {
        guard !statements.isEmpty, manifest.withLock({ $0.nextPartNumber }) < number else { return }
        for path in statements { try? FileIO.remove(path) }
    }

    /// Merges the parts of a day once it has `mergeFanIn` of them, smallest
    /// first, up to `mergeMaxRows` rows; expired rows are dropped on the way.
    private func mergeIfNeeded() async throws(VigilError) {
        // Not the inputs of a merge paused for other work (see `merge`), nor
        // parts a merge found unreadable.
        let unmergeable = self.unmergeable.withLock { $0 }
        let parts = state.withLock { state in
            state.parts.filter { !state.merging.contains($0.entry.path) && !unmergeable.contains($0.entry.path) }
        }
        let byDay = Dictionary(grouping: parts, by: \.day)
        for (day, dayParts) in byDay.sorted(by: { $0.key < $1.key }) {
            let chosen = mergeInputs(dayParts)
            guard !chosen.isEmpty else { continue }
            do throws(VigilError) {
                guard try await merge(chosen, day: day) else { return }
            } catch {
                // A damaged part would fail every merge of its day, each after
                // reading up to millions of rows: it is left out from now on
                // (until a restart), and its day's other parts merge without it.
                let damaged = chosen.filter { error.message.contains($0.entry.path) }
                guard Self.isUnreadablePart(error), !damaged.isEmpty else { throw error }
                self.unmergeable.withLock { $0.formUnion(damaged.map(\.entry.path)) }
                for part in damaged {
                    options.metrics.mergeFailures.increment()
                    options.eventHandler?(.partUnreadable(path: options.directory + "/" + part.entry.path, error))
                }
            }
        }
    }

    /// The parts of one day a merge takes now: none below `mergeFanIn`
    /// parts; else the smallest first, up to `mergeMaxRows` rows and what
    /// half the memory budget holds, if that is at least two.
    private func mergeInputs(_ dayParts: [LivePart]) -> [LivePart] {
        guard dayParts.count >= options.mergeFanIn else { return [] }
        // A merge holds a decoded block of each input part and the window it
        // writes (`blocksPerTask` blocks): bound them by half the memory budget.
        let memoryLimit = max(8 << 20, options.memoryBudgetBytes / 2)
        let window = PartWriter.Options().blocksPerTask * (dayParts.map(Self.mergeMemoryEstimate).max() ?? 0)
        var chosen: [LivePart] = []
        var rows: UInt64 = 0
        var memory = window
        for part in dayParts.sorted(by: { $0.entry.rows < $1.entry.rows }) {
            let estimate = Self.mergeMemoryEstimate(part)
            guard rows + part.entry.rows <= UInt64(options.mergeMaxRows), memory + estimate <= memoryLimit else { continue }
            chosen.append(part)
            rows += part.entry.rows
            memory += estimate
        }
        return chosen.count >= 2 ? chosen : []
    }

    /// Merges `chosen` (parts of `day`) into one part, a window of rows at a
    /// time, in (tenant, occurredAt, seq) order. Between windows, segments
    /// sealed meanwhile are flushed first: a merge of millions of rows takes
    /// seconds, and ingest must not wait for it once memory is full. Returns
    /// false, changing nothing, when the store closes meanwhile.
    private func merge(
        _ chosen: [LivePart], day: String, now: Int64 = currentUnixNanos(), reason: Vigil_V1_RetentionStatement.Reason = .merge
    ) async throws(VigilError) -> Bool {
        let chainStart = chain.withLock { $0.ledger.startSeq }
        let level = UInt8(min(255, (chosen.map(\.entry.level).max() ?? 0) + 1))
        let removed = Set(chosen.map(\.entry.path))
        state.withLock { $0.merging.formUnion(removed) }
        defer { state.withLock { $0.merging.subtract(removed) } }
        // The number is taken from the manifest in memory at once: a flush
        // between windows commits it, and takes the next.
        let number = manifest.withLock { manifest in
            defer { manifest.nextPartNumber += 1 }
            return manifest.nextPartNumber
        }
        let relative = "parts/\(day)/\(hex16(number)).part"
        var files = UncommittedFiles(directory: options.directory)
        files.add(relative)
        let writerOptions = partWriterOptions(level: level, generation: number)
        let windowRows = PartFileWriter.windowRows(writerOptions)
        var merged: LivePart?
        var expired: [ExpiredLeaves.Entry] = []
        var statements: [String] = []
        var committedPast = UInt64.max
        // A merge that fails or stops before its commit leaves the input parts as they were.
        do throws(VigilError) {
            try FileIO.makeDirectory(options.directory + "/parts/" + day)
            let writer = try PartFileWriter(path: options.directory + "/" + relative, options: writerOptions)
            var runs = PartMergeRuns(chosen.map(\.reader))
            var rows = DecodedBlockRows()
            var leaves: [UInt32] = []
            var written = 0
            // Rows encoded and rows copied since the merge last looked up from its work.
            var sinceYield = 0
            var copiedSinceYield = 0
            // Without ingest (no batch for a second, no flush owed), a window
            // of a task per core, encoded on every core: the merges a burst
            // leaves behind finish sooner. Under ingest, one task on one core.
            func idle() -> Bool {
                let time = currentUnixNanos()
                return state.withLock { $0.sealed.isEmpty && time - $0.lastAppendAt >= options.mergeIdleNanos }
            }
            var parallel = cores > 1 && idle()
            // The rows stay in their decoded blocks; an event is built only
            // where one is needed (an expired row's full leaf, a part without
            // a stored leaf).
            func writeWindow() throws(VigilError) {
                mergeWindowBlocksPeak.withLock { $0 = max($0, rows.blocks.count) }
                try writer.append(rows, leaves: leaves, parallel: parallel)
                written += rows.rowCount
                sinceYield += rows.rowCount
                rows = DecodedBlockRows()
                leaves.removeAll(keepingCapacity: true)
            }
            // A block whose rows all come, in order, between the rows around
            // them is copied as it is stored (`PartFileWriter.appendStored`):
            // when none of its rows can have expired, it has its leaves, it
            // is at least half full (short blocks a merge leaves are decoded
            // and joined by the next), and the rows waiting before it fill at
            // least a quarter of a block (they are written first, as a block
            // of their own).
            let rowsPerBlock = writerOptions.rowsPerBlock
            func takesWhole(_ part: Int, _ block: BlockMetadata) -> Bool {
                guard options.mergeCopiesBlocks, block.rowCount <= rowsPerBlock, block.rowCount * 2 >= rowsPerBlock,
                    rows.rowCount == 0 || rows.rowCount * 4 >= rowsPerBlock,
                    block.columns[.leaf] != nil, block.storedSpan != nil
                else { return false }
                // With an archive, expired rows stay (see below).
                guard options.archiveDirectory == nil else { return true }
                return !block.tenants.contains { isExpired(tenant: $0, occurredAt: block.minOccurredAt, now: now) }
            }
            while let step = try runs.next(maxRows: (parallel ? cores : 1) * windowRows - rows.rowCount, takesWhole: takesWhole) {
                switch step {
                case .block(let part, let index, let first, let last):
                    if rows.rowCount > 0 { try writeWindow() }
                    let reader = chosen[part].reader
                    try writer.appendStored(reader.blocks[index], bytes: try reader.storedBytes(block: index), first: first, last: last)
                    written += reader.blocks[index].rowCount
                    copiedSinceYield += reader.blocks[index].rowCount
                    mergeCopiedBlocks.withLock { $0 += 1 }
                case .rows(let run):
                    let block = run.block
                    // The reader refuses a block without one of these columns.
                    guard DecodedBlockRows.canWrite(from: block) else {
                        throw VigilError(.internal, "a block of \(chosen[run.part].entry.path) was decoded without a column every part has")
                    }
                    // Added with its first kept row: a block whose rows all
                    // expired must not stay in memory until the window fills
                    // (with most rows expired, that was every block of the merge).
                    var blockAdded = false
                    let tenants = block.tenant ?? []
                    for row in run.rows {
                        let tenant = row < tenants.count ? tenants[row] : ""
                        // With an archive, expired rows stay (queries do not see
                        // them) so that they reach it with their part: a merge
                        // must not delete what retention would have archived.
                        if options.archiveDirectory == nil, isExpired(tenant: tenant, occurredAt: block.occurredAtIfPresent(row), now: now) {
                            // Its range stays verifiable through its full leaf.
                            let event = block.event(at: row)
                            if event.seq > chainStart { expired.append(.init(seq: event.seq, leaf: HashChain.leaf(of: event))) }
                            continue
                        }
                        if !blockAdded {
                            rows.add(block)
                            blockAdded = true
                        }
                        rows.add(row: row)
                        // The stored leaf moves with its event (recomputing it
                        // would hide a change made to the input part).
                        leaves.append(block.leaf?[row] ?? HashChain.leaf(of: block.event(at: row)).truncated)
                    }
                    if rows.rowCount >= (parallel ? cores : 1) * windowRows { try writeWindow() }
                }
                // Under ingest a merge works a window between flushes: copied
                // rows, many times cheaper, fill it as fewer.
                guard sinceYield + copiedSinceYield / Self.copiedRowsPerEncodedRow >= (parallel ? cores : 1) * windowRows else { continue }
                sinceYield = 0
                copiedSinceYield = 0
                if let hook = afterMergeWindow.withLock({ $0 }) { await hook() }
                if state.withLock({ !$0.sealed.isEmpty }) { try await flushSealed() }
                // A backup, verification or flush asked for meanwhile goes first
                // (a retention pass too, checked for at the commit); not `close`,
                // which must not find a merge paused in the middle once it has flushed.
                guard await maintenanceLock.yieldToWaiters(unless: { isClosed }) else {
                    writer.discard()
                    files.discard()
                    return false
                }
                parallel = cores > 1 && idle()
            }
            if rows.rowCount > 0 { try writeWindow() }
            if written > 0 {
                let metadata = try writer.finish()
                merged = try livePart(relative, metadata: metadata, level: level)
            } else {
                writer.discard()
            }
            var next = manifest.withLock { $0 }
            // Retention asked for between windows (`retainNow`) may have
            // removed an input: its rows must not come back through the merge.
            guard next.parts.filter({ removed.contains($0.path) }).count == removed.count else {
                files.discard()
                return true
            }
            next.parts.removeAll { removed.contains($0.path) }
            if let merged { next.parts.append(merged.entry) }
            let expiredFile = try writeExpired(expired, reason: reason, manifest: &next, files: &files, statements: &statements)
            committedPast = next.nextPartNumber
            try commit(next, files: &files)
            if let expiredFile { chain.withLock { $0.expiredFiles.append(expiredFile) } }
            if !expired.isEmpty {
                options.eventHandler?(.eventsExpired(events: UInt64(expired.count), parts: 0, statements: statements.count))
            }
        } catch {
            files.discard()
            withdraw(statements, committedPast: committedPast)
            throw error
        }
        state.withLock { state in
            state.parts.removeAll { removed.contains($0.entry.path) }
            if let merged { state.parts.append(merged) }
        }
        // Queries that still hold the old readers keep their open files.
        for path in removed { removeAfterCommit(path) }
        return true
    }

    /// How many rows a merge copies as stored (`PartFileWriter.appendStored`)
    /// in the time it decodes and encodes one, for counting a window's worth
    /// of work (a merge under ingest yields to flushes after each). An
    /// estimate on the low side: copying is a read, a checksum and a write
    /// of bytes already compressed, plus decoding four small key columns,
    /// where `vigil-bench merge --no-copy-blocks` takes 7–8 µs per row.
    static let copiedRowsPerEncodedRow = 8

    /// Memory a merge holds for a part: one decoded block at a time, its
    /// per-event object overhead plus its column bytes.
    static func mergeMemoryEstimate(_ part: LivePart) -> Int {
        let blocks = max(1, part.reader.blocks.count)
        let rowsPerBlock = (Int(part.entry.rows) + blocks - 1) / blocks
        return rowsPerBlock * 512 + part.reader.rawColumnBytes * 2 / blocks
    }

    /// Removes (or archives) every part whose events have all expired, and
    /// forgets idempotency keys past their window.
    /// `checked`: the parts `removableForRetention` found removable; others
    /// that expired since wait for the next pass.
    private func applyRetention(now: Int64, checked: Set<String>) throws(VigilError) {
        let parts = state.withLock { $0.parts }
        let retention = retentionSettings.current
        let expired = parts.filter { Self.isWhollyExpired($0, retention: retention, now: now) && checked.contains($0.entry.path) }
        var next = manifest.withLock { $0 }
        let oldKeys = next.idempotencyFiles.filter { name in
            guard let time = name.split(separator: "-").last.flatMap({ UInt64($0.prefix(16), radix: 16) }) else { return true }
            return Int64(time) < now - options.idempotencyWindowNanos
        }
        guard !expired.isEmpty || !oldKeys.isEmpty else { return }

        // The chain: when every event up to an anchor's end is gone, that
        // anchor's head becomes the start. Removed events above the start
        // keep their full leaves, so that their ranges still verify. A part
        // whose events cannot be read for their leaves (a damaged block, a
        // failing sector) stays, and the pass goes on without it: one bad
        // block must not stop retention for every part and every keys file.
        var ledger = chain.withLock { $0.ledger }
        var expiring = expired
        var removed: Set<String>
        var cut: UInt64
        var leaves: [ExpiredLeaves.Entry] = []
        while true {
            removed = Set(expiring.map(\.entry.path))
            let kept = parts.filter { !removed.contains($0.entry.path) && $0.entry.rows > 0 }
            let lowestKept = min(kept.map(\.entry.minSeq).min() ?? .max, next.flushedThroughSeq + 1)
            cut = ledger.anchors.last { $0.lastSeq < lowestKept }?.lastSeq ?? ledger.startSeq
            leaves = []
            var unreadable: String?
            for part in expiring where part.entry.maxSeq > max(cut, ledger.startSeq) {
                do throws(VigilError) {
                    for block in part.reader.blocks where block.maxSeq > cut {
                        for event in try part.reader.events(block: block.index) where event.seq > max(cut, ledger.startSeq) {
                            leaves.append(.init(seq: event.seq, leaf: HashChain.leaf(of: event)))
                        }
                    }
                } catch {
                    guard Self.isUnreadablePart(error) else { throw error }
                    reportUnreadable(part, error)
                    unreadable = part.entry.path
                    break
                }
            }
            guard let unreadable else { break }
            expiring.removeAll { $0.entry.path == unreadable }
        }
        guard !expiring.isEmpty || !oldKeys.isEmpty else { return }
        next.parts.removeAll { removed.contains($0.path) }
        next.idempotencyFiles.removeAll { oldKeys.contains($0) }
        var files = UncommittedFiles(directory: options.directory)
        let expiredFile: (path: String, maxSeq: UInt64)?
        var ledgerPath: String?
        var statements: [String] = []
        var committedPast = UInt64.max
        // Retention that fails before its commit removes nothing; it runs again later.
        do throws(VigilError) {
            // Archived parts are in the archive, durably, before the commit
            // drops them: moved after it, a crash in between left them
            // unlisted, and the next start's sweep deleted them. A link to
            // the same part, left by a pass that failed later, is taken as
            // done; another file at that path stops the pass (`FileIO.link`).
            if let archive = options.archiveDirectory {
                var directories = Set<String>()
                for path in removed {
                    let destination = archive + "/" + path
                    let directory = FileIO.directoryName(of: destination)
                    if directories.insert(directory).inserted { try FileIO.makeDirectory(directory) }
                    try FileIO.link(options.directory + "/" + path, to: destination)
                }
                for directory in directories { try FileIO.syncDirectory(directory) }
            }
            expiredFile = try writeExpired(leaves, reason: .retention, manifest: &next, files: &files, statements: &statements)
            if cut > ledger.startSeq {
                ledger.cut(at: cut, expired: cut - ledger.startSeq)
                ledgerPath = try writeLedger(ledger, manifest: &next, files: &files)
                if let start = RetentionStatements.Fact.start(of: ledger) { try attest(start, reason: .retention, statements: &statements) }
            }
            committedPast = next.nextPartNumber
            try commit(next, files: &files)
        } catch {
            files.discard()
            withdraw(statements, committedPast: committedPast)
            throw error
        }
        if let ledgerPath { replaceLedger(ledger, at: ledgerPath) }
        let unneeded = chain.withLock { state -> [String] in
            if let expiredFile { state.expiredFiles.append(expiredFile) }
            let start = state.ledger.startSeq
            defer { state.expiredFiles.removeAll { $0.maxSeq <= start } }
            return state.expiredFiles.filter { $0.maxSeq <= start }.map(\.path)
        }
        for path in unneeded { removeAfterCommit(path) }
        state.withLock { $0.parts.removeAll { removed.contains($0.entry.path) } }
        // Archived or not, the data directory's name goes (a crash first
        // leaves it unlisted, for the next start's sweep).
        for path in removed { removeAfterCommit(path) }
        for name in oldKeys { removeAfterCommit("keys/" + name) }
        if !expiring.isEmpty {
            options.eventHandler?(.eventsExpired(events: expiring.reduce(0) { $0 + $1.entry.rows }, parts: expiring.count, statements: statements.count))
        }
    }

    /// How a MANIFEST entry differs from its part's footer (rows, seq and
    /// time ranges), or nil when they agree.
    static func entryMismatch(_ entry: Vigil_V1_ManifestPart, _ metadata: PartMetadata) -> String? {
        var differences: [String] = []
        if entry.rows != UInt64(metadata.rowCount) {
            differences.append("\(entry.rows) rows, the footer \(metadata.rowCount)")
        }
        if entry.minSeq != metadata.minSeq || entry.maxSeq != metadata.maxSeq {
            differences.append("seqs \(entry.minSeq)…\(entry.maxSeq), the footer \(metadata.minSeq)…\(metadata.maxSeq)")
        }
        if entry.minOccurredAt != metadata.minOccurredAt || entry.maxOccurredAt != metadata.maxOccurredAt {
            differences.append(
                "occurred_at \(entry.minOccurredAt)…\(entry.maxOccurredAt), the footer \(metadata.minOccurredAt)…\(metadata.maxOccurredAt)")
        }
        return differences.isEmpty ? nil : "the entry says " + differences.joined(separator: "; ")
    }

    /// A directory without MANIFEST is new, or its first flush never
    /// committed: then the WAL still starts at its first segment and holds
    /// every event, and the part files are leftovers to remove. Anything
    /// else (the WAL cut after a flush, or part files and no WAL) means the
    /// MANIFEST was lost: opening would delete every part as garbage and
    /// start the seqs again, so it is refused (DATA_LOSS) before anything
    /// is touched.
    static func refuseLostManifest(_ directory: String) throws(VigilError) {
        let segments = try FileIO.list(directory + "/wal").compactMap(WALFormat.segmentNumber(ofFileName:))
        var partFiles = 0
        for day in try FileIO.list(directory + "/parts") {
            partFiles += try FileIO.list(directory + "/parts/" + day).count { !$0.hasSuffix(".tmp") }
        }
        let walCut = segments.min().map { $0 > WALFormat.firstSegment } ?? false
        guard walCut || (partFiles > 0 && segments.isEmpty) else { return }
        throw VigilError(
            .dataLoss,
            "\(directory)/MANIFEST is missing, yet "
                + (walCut ? "the WAL starts after its first segment (events were flushed to parts a MANIFEST listed)" : "\(partFiles) part files are there and no WAL")
                + ": the store would open without its parts. Restore the directory from a backup (vigil restore); nothing was changed")
    }

    func isExpired(_ event: AuditEvent, now: Int64) -> Bool {
        isExpired(tenant: event.tenant, occurredAt: event.occurredAt.unixNanos, now: now)
    }

    func isExpired(tenant: String, occurredAt: Int64, now: Int64) -> Bool {
        guard let retention = retentionSettings.current.of(tenant) else { return false }
        return occurredAt < now &- retention
    }

    /// Stops as a crash would (for tests): the WAL is closed and the
    /// directory lock released, nothing is flushed. Does not wait for the
    /// last reference to go, which another task may hold a moment longer.
    func abandon() throws(VigilError) {
        state.withLock { $0.closed = true }
        wake.finish()
        feed.close()
        try wal.close()
        blockingWork.shutdown()
        backgroundWork.shutdown()
        queryWork.shutdown()
        flock(lockFile, LOCK_UN)
    }

    public func close() async throws(VigilError) {
        let alreadyClosed = state.withLock { state in
            defer { state.closed = true }
            return state.closed
        }
        guard !alreadyClosed else { return }
        wake.finish()
        feed.close()
        defer {
            blockingWork.shutdown()
            backgroundWork.shutdown()
            queryWork.shutdown()
            flock(lockFile, LOCK_UN)
            // A test's hook usually captures the store: dropped, the closed store can be freed.
            afterMergeWindow.withLock { $0 = nil }
        }
        var flushFailure: VigilError?
        do throws(VigilError) {
            try await withTaskExecutorPreference(blockingWork) { () async throws(VigilError) in
                try await flushNow()
            }
        } catch {
            flushFailure = error
        }
        // The WAL closes either way: what did not reach a part is replayed from it at the next start.
        try wal.close()
        if let flushFailure {
            throw VigilError(
                flushFailure.code,
                "could not flush the events in memory to parts (\(flushFailure.message)); they are safe in the WAL and are replayed at the next start",
                metadata: flushFailure.metadata)
        }
    }

    // MARK: Reading

    func snapshot() -> Snapshot {
        state.withLock { state in
            Snapshot(chunks: state.sealed.flatMap(\.chunks) + state.active, parts: state.parts, visibleSeq: state.visibleSeq)
        }
    }

    public func scan(filter: EventFilter, order: Vigil_V1_Order, after cursor: QueryCursor?, limit: Int) async throws(VigilError) -> ScanPage {
        try await scan(filter: filter, order: order, after: cursor, limit: limit, encoded: false)
    }

    public func scanEncoded(
        filter: EventFilter, order: Vigil_V1_Order, after cursor: QueryCursor?, limit: Int
    ) async throws(VigilError) -> ScanPage {
        try await scan(filter: filter, order: order, after: cursor, limit: limit, encoded: true)
    }

    private func scan(
        filter: EventFilter, order: Vigil_V1_Order, after cursor: QueryCursor?, limit: Int, encoded: Bool
    ) async throws(VigilError) -> ScanPage {
        var snapshot = snapshot()
        if let cursor { snapshot.visibleSeq = min(snapshot.visibleSeq, cursor.visibleSeq) }
        var execution = QueryExecution(
            snapshot: snapshot, evaluation: evaluation(of: filter), cache: columnCache,
            ordering: .time(newestFirst: order != .oldestFirst, cursor: cursor), limit: limit, isCancelled: { Task.isCancelled },
            threads: queryThreads)
        execution.encoded = encoded
        return try await withTaskExecutorPreference(queryWork) { () async throws(VigilError) in try await execution.run() }
    }

    /// Up to `limit` matching events with `after < seq <= through` (and not
    /// above what is visible), in seq order: how a subscriber that is behind
    /// the live feed catches up. `exhausted` when none follow up to `through`.
    public func scanBySeq(filter: EventFilter, after: UInt64, through: UInt64, limit: Int) async throws(VigilError) -> ScanPage {
        try await scanBySeq(filter: filter, after: after, through: through, limit: limit, encoded: false)
    }

    public func scanBySeqEncoded(filter: EventFilter, after: UInt64, through: UInt64, limit: Int) async throws(VigilError) -> ScanPage {
        try await scanBySeq(filter: filter, after: after, through: through, limit: limit, encoded: true)
    }

    private func scanBySeq(
        filter: EventFilter, after: UInt64, through: UInt64, limit: Int, encoded: Bool
    ) async throws(VigilError) -> ScanPage {
        var snapshot = snapshot()
        snapshot.visibleSeq = min(snapshot.visibleSeq, through)
        var execution = QueryExecution(
            snapshot: snapshot, evaluation: evaluation(of: filter), cache: columnCache, ordering: .seq(after: after),
            limit: limit, isCancelled: { Task.isCancelled }, threads: queryThreads)
        execution.encoded = encoded
        return try await withTaskExecutorPreference(queryWork) { () async throws(VigilError) in try await execution.run() }
    }

    public func aggregate(_ query: AggregateQuery) async throws(VigilError) -> AggregateResult {
        let execution = AggregateExecution(
            snapshot: snapshot(), evaluation: evaluation(of: query.filter), cache: columnCache, query: query,
            isCancelled: { Task.isCancelled })
        let threads = queryThreads
        return try await withTaskExecutorPreference(queryWork) { () async throws(VigilError) in try await execution.run(threads: threads) }
    }

    /// The filter with the retention cutoffs as of now.
    func evaluation(of filter: EventFilter) -> FilterEvaluation {
        let now = currentUnixNanos()
        let retention = retentionSettings.current
        guard !retention.keepsEverything else {
            return FilterEvaluation(filter: filter, expiryCutoff: nil)
        }
        return FilterEvaluation(filter: filter, expiryCutoff: { tenant in retention.of(tenant).map { now &- $0 } })
    }

    public func get(id: EventID) async throws(VigilError) -> AuditEvent? {
        try await get(id: id, tenantAllowed: { _ in true })
    }

    public func get(id: EventID, tenantAllowed: @Sendable (String) -> Bool) async throws(VigilError) -> AuditEvent? {
        try await withTaskExecutorPreference(queryWork) { () async throws(VigilError) in try find(id: id, tenantAllowed: tenantAllowed) }
    }

    /// The first event with `id` (visible, of an allowed tenant): a match of
    /// another tenant is passed over, as the id may be taken there too.
    private func find(id: EventID, tenantAllowed: (String) -> Bool) throws(VigilError) -> AuditEvent? {
        let snapshot = snapshot()
        let now = currentUnixNanos()
        let text = id.description
        // Server-assigned ids carry their seq: look there first.
        let seq = id.low & 0x3FFF_FFFF_FFFF_FFFF
        for chunk in snapshot.chunks where chunk.firstSeq <= seq && seq <= chunk.lastSeq && seq <= snapshot.visibleSeq {
            let row = Int(seq - chunk.firstSeq)
            if chunk.id(at: row) == id, tenantAllowed(chunk.columns.tenant.value(at: row)) { return visible(chunk.event(at: row), now: now) }
        }
        // Parts: a block is read only when its statistics allow the id (a
        // derived id's seq in its seq range, or its bloom of explicit ids).
        for part in snapshot.parts {
            for block in part.reader.blocks where block.mayContain(.id, text) {
                let source = PartBlockSource(reader: part.reader, block: block, cache: columnCache)
                let ids = try source.text(.id)
                for row in 0..<block.rowCount where ids.value(at: row) == text {
                    let event = try source.event(at: row)
                    if tenantAllowed(event.tenant) { return visible(event, now: now) }
                }
            }
        }
        // A client-supplied id still in memory.
        for chunk in snapshot.chunks {
            for row in 0..<chunk.count
            where chunk.seq(at: row) <= snapshot.visibleSeq && chunk.id(at: row) == id && tenantAllowed(chunk.columns.tenant.value(at: row)) {
                return visible(chunk.event(at: row), now: now)
            }
        }
        return nil
    }

    private func visible(_ event: AuditEvent, now: Int64) -> AuditEvent? {
        isExpired(event, now: now) ? nil : event
    }

    /// The WAL cut of a backup: the last seq assigned and the size of each
    /// WAL segment, taken under the lock that assigns seqs and writes WAL
    /// records, so that the segments hold exactly the records through that seq.
    func walCut() throws(VigilError) -> WALCutPosition {
        let walDirectory = options.directory + "/wal"
        return try state.withLock { state throws(VigilError) -> WALCutPosition in
            var segments: [WALCutPosition.Segment] = []
            for number in wal.segmentNumbers {
                let name = WALFormat.fileName(of: number)
                // A segment with no record yet adds nothing.
                guard let bytes = try BackupFileOperations.size(of: walDirectory + "/" + name), bytes > WALFormat.headerSize else { continue }
                segments.append(.init(name: name, bytes: bytes))
            }
            return WALCutPosition(seq: state.nextSeq - 1, lastWrite: state.lastWrite, segments: segments)
        }
    }

    // MARK: Introspection

    public struct Statistics: Sendable {
        public var memoryEvents: Int
        public var memoryBytes: Int
        public var sealedSegments: Int
        public var parts: Int
        public var partEvents: UInt64
        public var partBytes: UInt64
        public var walBytes: Int
        public var lastSeq: UInt64
        /// Blocks merges copied as they were stored since the store opened,
        /// rather than decoding and encoding them again.
        public var mergeCopiedBlocks: Int
    }

    /// Whether `close` (or `abandon`) ran.
    var isClosed: Bool { state.withLock { $0.closed } }

    /// Ingest calls parked until memory is flushed (tests).
    var memoryWaiterCount: Int { state.withLock { $0.memoryWaiters.count } }

    public var statistics: Statistics {
        let walBytes = wal.totalBytes
        return state.withLock { state in
            Statistics(
                memoryEvents: state.activeRows + state.sealed.reduce(0) { $0 + $1.chunks.reduce(0) { $0 + $1.count } },
                memoryBytes: state.activeBytes + state.sealedBytes,
                sealedSegments: state.sealed.count,
                parts: state.parts.count,
                partEvents: state.parts.reduce(0) { $0 + $1.entry.rows },
                partBytes: state.parts.reduce(0) { $0 + $1.entry.bytes },
                walBytes: walBytes,
                lastSeq: state.nextSeq - 1,
                mergeCopiedBlocks: mergeCopiedBlocks.withLock { $0 })
        }
    }
}
