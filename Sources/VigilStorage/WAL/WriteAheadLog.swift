#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization
import VigilCore

/// The write-ahead log: every ingested batch is a record here before it is
/// acknowledged, so that a crash loses no acknowledged event. Records go to
/// numbered segment files; a flushed segment is deleted whole.
///
/// - `write` appends a record with one `pwrite` while holding the log's lock,
///   so records are in call order. It is called by the engine under its own
///   lock, which makes record order equal seq order.
/// - `waitDurable` returns when the record is durable per the `SyncPolicy`.
///   With `.always`, one dedicated thread (a pthread, not the cooperative
///   pool: fsync blocks for milliseconds) loops: wait until someone waits,
///   note the end of the written data, fsync, release every waiter at or
///   below it. Waiters that arrive during an fsync share the next one (group
///   commit).
/// - A failed fsync poisons the log: on Linux the kernel may have dropped the
///   dirty pages, so nothing written since the last good fsync can be trusted.
///   Every pending and later waiter, and every later write, gets the error
///   until the log is reopened (and replayed).
/// - After opening a directory that holds segments, `replay` must run before
///   the first write: it is what cuts a torn tail, and writing after an
///   unchecked tail would turn that tail into corruption in the middle of
///   the log. Writing always starts a fresh segment, numbered above every
///   existing one, so the segments of earlier runs are never appended to.
public final class WriteAheadLog: Sendable {
    let core: WALCore

    /// Creates the directory if missing. Lists the segments but does not read them.
    public init(options: WALOptions) throws(VigilError) {
        guard options.segmentBytes > 0 else {
            throw VigilError(.invalidArgument, "WAL segmentBytes must be positive, not \(options.segmentBytes)")
        }
        if case .interval(let milliseconds) = options.sync,
            !(1...SyncPolicy.maximumIntervalMilliseconds).contains(milliseconds)
        {
            throw VigilError(.invalidArgument, "WAL sync interval must be 1...\(SyncPolicy.maximumIntervalMilliseconds) ms, not \(milliseconds)")
        }
        var directory = options.directory
        while directory.count > 1 && directory.hasSuffix("/") { directory.removeLast() }
        guard !directory.isEmpty else { throw VigilError(.invalidArgument, "the WAL directory is empty") }
        let existed = FileIO.exists(directory)
        try FileIO.makeDirectory(directory)
        if !existed { try FileIO.syncDirectory(FileIO.directoryName(of: directory)) }
        let listing = try WALDirectory.scan(directory)
        let state = WALState(
            directory: directory, segmentBytes: options.segmentBytes, policy: options.sync,
            segments: listing.segments, nextNumber: listing.nextNumber, metrics: options.metrics)
        core = WALCore(state: state, policy: options.sync, metrics: options.metrics)
        if options.sync != .never {
            let core = self.core
            let thread = try WALThread.start { core.runSyncThread() }
            core.state.withLock { $0.thread = thread }
        }
    }

    deinit {
        core.stopThread()
    }

    // MARK: Writing

    /// Appends a record in order (one pwritev() into the current segment;
    /// rotates first if the segment is full) and returns its location.
    /// Synchronous and fast: it never waits for an fsync, except the one that
    /// closes a full segment.
    public func write(_ payload: [UInt8]) throws(VigilError) -> WALLocation {
        let result = payload.withUnsafeBytes { raw -> Result<WALLocation, VigilError> in
            do throws(VigilError) { return .success(try write(pieces: [raw])) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// `write(_:)` of the payload `pieces` joined. The pieces go to the file
    /// as they are, header first, in one pwritev(): a batch's record is a
    /// few hundred kilobytes, and copying it into one buffer (a fresh
    /// mapping, faulted in page by page) cost more than the write itself.
    public func write(pieces: [UnsafeRawBufferPointer]) throws(VigilError) -> WALLocation {
        let size = pieces.reduce(0) { $0 + $1.count }
        guard size <= WALFormat.maximumPayload else {
            throw VigilError(.invalidArgument, "a WAL record of \(size) bytes is above the \(WALFormat.maximumPayload)-byte limit")
        }
        // The checksum happens before the lock.
        let header = WALFormat.recordHeader(pieces: pieces)
        let (result, releases) = core.state.withLock { state -> (Result<WALLocation, VigilError>, [WALRelease]) in
            var releases: [WALRelease] = []
            do throws(VigilError) {
                let location = try state.append(header: header, pieces: pieces, size: size, releases: &releases)
                return (.success(location), releases)
            } catch {
                return (.failure(error), releases)
            }
        }
        WALCore.resume(releases)
        let location = try result.get()
        core.metrics.walBytesWritten.increment(by: header.count + size)
        return location
    }

    /// Returns once the record at `location` is durable per the sync policy:
    /// with `.always`, after an fsync that covers it; otherwise at once.
    /// Throws the fsync error that poisoned the log, if any; FAILED_PRECONDITION
    /// after `close()`; INVALID_ARGUMENT for a location not yet written.
    /// Not cancellable: the wait is bounded by one fsync.
    public func waitDurable(_ location: WALLocation) async throws(VigilError) {
        try await waitForSync(location, underInterval: false)
    }

    /// Returns once an fsync covers the record at `location`: under
    /// `.always` as `waitDurable`, under `.interval` after the next periodic
    /// fsync (which it does not hasten), under `.never` at once. For what may
    /// be shown only once a crash cannot take it back (live subscriptions).
    public func waitSynced(_ location: WALLocation) async throws(VigilError) {
        try await waitForSync(location, underInterval: true)
    }

    private func waitForSync(_ location: WALLocation, underInterval: Bool) async throws(VigilError) {
        func waits(_ policy: SyncPolicy) -> Bool {
            switch policy {
            case .always: true
            case .interval: underInterval
            case .never: false
            }
        }
        // The common cases need no continuation: durable already, or a policy that does not wait.
        let settled = core.state.withLock { state -> VigilError?? in
            if let failure = state.failure { return .some(failure) }
            if state.closed { return .some(state.closedError()) }
            if !waits(state.policy) || location <= state.durable { return .some(nil) }
            return nil
        }
        if let settled {
            if let settled { throw settled }
            return
        }
        let error: VigilError? = await withCheckedContinuation { (continuation: CheckedContinuation<VigilError?, Never>) in
            let (immediate, ring) = core.state.withLock { state -> (VigilError??, Bool) in
                if let failure = state.failure { return (.some(failure), false) }
                if state.closed { return (.some(state.closedError()), false) }
                guard waits(state.policy), location > state.durable else { return (.some(nil), false) }
                guard location <= state.writtenEnd else {
                    return (.some(VigilError(.invalidArgument, "WAL location \(location) is past the end of the log (\(state.writtenEnd))")), false)
                }
                state.waiters.append(WALWaiter(location: location, continuation: continuation))
                // The sync thread rechecks the waiters after every fsync; it needs
                // a ring only when it may be asleep, that is when the first one
                // arrives. Under an interval it wakes by itself, and a ring
                // would fsync at once, turning the interval into `.always`.
                return (nil, state.policy == .always && state.waiters.count == 1)
            }
            if let immediate { continuation.resume(returning: immediate) }
            if ring { core.doorbell.ring() }
        }
        if let error { throw error }
    }

    /// `write` then `waitDurable`.
    public func append(_ payload: [UInt8]) async throws(VigilError) -> WALLocation {
        let location = try write(payload)
        try await waitDurable(location)
        return location
    }

    // MARK: Segments

    /// Closes the current segment (fsynced) and opens a new one; returns the
    /// new segment's number. Every record written before this call is in a
    /// segment numbered lower.
    @discardableResult
    public func rotate() throws(VigilError) -> UInt64 {
        let (result, releases) = core.state.withLock { state -> (Result<UInt64, VigilError>, [WALRelease]) in
            var releases: [WALRelease] = []
            do throws(VigilError) {
                try state.checkWritable()
                try state.closeCurrent(releases: &releases)
                try state.openSegment(releases: &releases)
                return (.success(state.currentNumber), releases)
            } catch {
                return (.failure(error), releases)
            }
        }
        WALCore.resume(releases)
        return try result.get()
    }

    /// Deletes every segment numbered below `segment` (their records are
    /// durable elsewhere), then fsyncs the directory. `segment` may not be
    /// above `currentSegment`.
    public func removeSegments(before segment: UInt64) throws(VigilError) {
        let doomed = try core.state.withLock { (state: inout WALState) throws(VigilError) -> [WALSegmentInfo] in
            if state.closed || state.closing { throw state.closedError() }
            if state.replaying { throw VigilError(.failedPrecondition, "cannot remove WAL segments during replay") }
            guard segment <= state.currentNumber else {
                throw VigilError(.invalidArgument, "cannot remove WAL segments before \(segment): segment \(state.currentNumber) is the current one")
            }
            let doomed = state.segments.filter { $0.number < segment }
            state.segments.removeAll { $0.number < segment }
            if state.segments.isEmpty { state.needsReplay = false }
            return doomed
        }
        guard !doomed.isEmpty else { return }
        var removed = 0
        do throws(VigilError) {
            for info in doomed {
                try FileIO.remove(core.path(of: info.number))
                removed += 1
            }
            try FileIO.syncDirectory(core.directory)
        } catch {
            let kept = doomed[removed...]
            core.state.withLock { state in
                state.segments = (Array(kept) + state.segments).sorted { $0.number < $1.number }
            }
            throw error
        }
    }

    /// The fsync (or cut) failure that poisoned the log, if any: writes fail until it is reopened.
    public var failure: VigilError? {
        core.state.withLock { $0.failure }
    }

    /// The numbers of the segment files, oldest first (including the current one once it exists).
    public var segmentNumbers: [UInt64] {
        core.state.withLock { $0.segments.map(\.number) }
    }

    /// The segment new records go to. Before the first write after opening,
    /// the number it will have (its file is created by that write).
    public var currentSegment: UInt64 {
        core.state.withLock { $0.currentNumber }
    }

    /// Total bytes of all segment files.
    public var totalBytes: Int {
        core.state.withLock { $0.segments.reduce(0) { $0 + $1.bytes } }
    }

    // MARK: Closing

    /// fsyncs the current segment, releases the waiters that fsync covers,
    /// stops the sync thread and closes the files. Throws the fsync's error,
    /// or the one that had already poisoned the log (then pending waiters get
    /// that error). A second call does nothing.
    public func close() throws(VigilError) {
        let start = core.state.withLock { state -> (file: WALSegmentFile?, end: WALLocation, failure: VigilError?, injected: VigilError?)? in
            guard !state.closing, !state.closed else { return nil }
            state.closing = true
            guard state.failure == nil, state.current != nil else { return (nil, state.writtenEnd, state.failure, nil) }
            state.syncCount += 1
            return (state.current, state.writtenEnd, nil, state.injectedSyncFailure)
        }
        guard let start else { return }
        var error = start.failure ?? start.injected
        if error == nil, let file = start.file {
            do { try file.sync() } catch let failure { error = failure }
        }
        let (releases, thread) = core.state.withLock { state -> ([WALRelease], pthread_t?) in
            var releases: [WALRelease] = []
            if let error {
                state.fail(error, releases: &releases)
            } else {
                state.markDurable(start.end, releases: &releases)
            }
            // Every waiter was at or below `start.end`: none is left. Belt and braces:
            let closed = state.closedError()
            releases += state.waiters.map { ($0.continuation, closed) }
            state.waiters.removeAll()
            state.closed = true
            state.current = nil
            state.stopThread = true
            defer { state.thread = nil }
            return (releases, state.thread)
        }
        WALCore.resume(releases)
        core.doorbell.ring()
        if let thread { WALThread.join(thread) }
        if let error { throw error }
    }

    // MARK: Testing

    /// fsyncs of segment files so far (records, rotations, headers, replay, close).
    var syncCount: Int {
        core.state.withLock { $0.syncCount }
    }

    /// Makes every later fsync of a segment file fail with `error` (nil: stop).
    func injectSyncFailure(_ error: VigilError?) {
        core.state.withLock { $0.injectedSyncFailure = error }
    }

    /// Holds the sync thread's fsyncs back (waiters stay pending) until called with false.
    func pauseSyncThread(_ paused: Bool) {
        core.state.withLock { $0.syncThreadPaused = paused }
        core.doorbell.ring()
    }

    /// `waitDurable` calls waiting for an fsync.
    var pendingWaiters: Int {
        core.state.withLock { $0.waiters.count }
    }
}

/// An open segment file. The descriptor closes with the last reference: the
/// sync thread may still be fsyncing a segment that was just rotated away.
final class WALSegmentFile: Sendable {
    let number: UInt64
    let descriptor: FileHandleDescriptor
    /// The first fsync error of this file. Linux reports a writeback error
    /// to one fsync of an open file only: the sync thread and a rotation (or
    /// close) fsync the same descriptor, and the second would see success
    /// over pages the kernel dropped, and mark the segment durable. So fsyncs
    /// of a file take turns, and once one failed, every later one fails too.
    private let syncFailure = Mutex<VigilError?>(nil)

    init(number: UInt64, descriptor: FileHandleDescriptor) {
        self.number = number
        self.descriptor = descriptor
    }

    /// fsyncs the file, or throws the error an earlier fsync of it got.
    func sync() throws(VigilError) {
        try syncFailure.withLock { (failure: inout VigilError?) throws(VigilError) in
            if let failure { throw failure }
            do throws(VigilError) { try descriptor.sync() } catch {
                failure = error
                throw error
            }
        }
    }

    deinit { descriptor.close() }
}

struct WALSegmentInfo: Sendable {
    var number: UInt64
    var bytes: Int
}

struct WALWaiter: Sendable {
    let location: WALLocation
    let continuation: CheckedContinuation<VigilError?, Never>
}

/// A waiter to resume (outside the lock) and what to resume it with: nil for durable.
typealias WALRelease = (continuation: CheckedContinuation<VigilError?, Never>, result: VigilError?)

/// Everything mutable about a log, guarded by `WALCore.state`.
struct WALState: Sendable {
    let directory: String
    let segmentBytes: Int
    let policy: SyncPolicy

    /// The segment files, oldest first; the last is `current` once that exists.
    var segments: [WALSegmentInfo]
    /// The segment being appended to; nil before the first write and after close.
    var current: WALSegmentFile?
    /// The end of `current`: where the next record goes.
    var end = 0
    /// The number the next segment gets: above every number any file in the directory claims.
    var nextNumber: UInt64
    /// Every record at or below this is durable (older segments were fsynced when they were closed).
    var durable: WALLocation
    var waiters: [WALWaiter] = []
    /// The fsync error that poisoned the log.
    var failure: VigilError?
    /// Segments existed at open and have not been replayed yet: writing would follow an unchecked tail.
    var needsReplay: Bool
    var replaying = false
    var closing = false
    var closed = false
    var stopThread = false
    var thread: pthread_t?
    var syncCount = 0
    var injectedSyncFailure: VigilError?
    var syncThreadPaused = false
    /// Where the fsyncs made under the lock (rotation, segment creation) are measured.
    let metrics: StorageMetrics

    init(
        directory: String, segmentBytes: Int, policy: SyncPolicy, segments: [WALSegmentInfo], nextNumber: UInt64,
        metrics: StorageMetrics = .disabled
    ) {
        self.metrics = metrics
        self.directory = directory
        self.segmentBytes = segmentBytes
        self.policy = policy
        self.segments = segments
        self.nextNumber = nextNumber
        durable = WALLocation(segment: nextNumber, offset: 0)
        needsReplay = !segments.isEmpty
    }

    var currentNumber: UInt64 { current?.number ?? nextNumber }

    /// Just past the last record written.
    var writtenEnd: WALLocation {
        guard let current else { return durable }
        return WALLocation(segment: current.number, offset: end)
    }

    func closedError() -> VigilError {
        VigilError(.failedPrecondition, "the WAL in \(directory) is closed")
    }

    func checkWritable() throws(VigilError) {
        if closed || closing { throw closedError() }
        if let failure { throw failure }
        if replaying { throw VigilError(.failedPrecondition, "cannot write to the WAL in \(directory) during its replay") }
        if needsReplay {
            throw VigilError(.failedPrecondition, "the WAL in \(directory) holds segments that have not been replayed: call replay(repair:) before writing")
        }
    }

    /// Writes one record at the end of the current segment (rotating or
    /// creating it first as needed): `header`, then `payloadSize` bytes in `pieces`.
    mutating func append(
        header: [UInt8], pieces: [UnsafeRawBufferPointer], size payloadSize: Int, releases: inout [WALRelease]
    ) throws(VigilError) -> WALLocation {
        try checkWritable()
        let size = WALFormat.recordHeaderSize + payloadSize
        if current != nil, end > WALFormat.headerSize, end + size > segmentBytes {
            try closeCurrent(releases: &releases)
        }
        if current == nil { try openSegment(releases: &releases) }
        guard let file = current else { throw VigilError(.internal, "no current WAL segment") }
        let start = end
        let written = header.withUnsafeBytes { header -> Result<Void, VigilError> in
            do throws(VigilError) { return .success(try file.descriptor.write([header] + pieces, at: start)) } catch { return .failure(error) }
        }
        if case .failure(let error) = written {
            // Cut a partial record so that the next one does not follow garbage.
            do throws(VigilError) { try file.descriptor.truncate(to: start) } catch { fail(error, releases: &releases) }
            throw error
        }
        end = start + size
        segments[segments.count - 1].bytes = end
        return WALLocation(segment: file.number, offset: end)
    }

    private static func write(_ bytes: [UInt8], to file: WALSegmentFile, at offset: Int) throws(VigilError) {
        let result: Result<Void, VigilError> = bytes.withUnsafeBytes { raw in
            do throws(VigilError) { return .success(try file.descriptor.write(raw, at: offset)) } catch { return .failure(error) }
        }
        try result.get()
    }

    /// fsyncs `file` here, under the lock (rotation and segment creation).
    mutating func sync(_ file: WALSegmentFile) throws(VigilError) {
        syncCount += 1
        if let injectedSyncFailure { throw injectedSyncFailure }
        let started = ContinuousClock.now
        try file.sync()
        metrics.walFsyncDuration.recordNanoseconds((ContinuousClock.now - started).wholeNanoseconds)
    }

    /// fsyncs and drops the current segment; its waiters are released. A
    /// failed fsync poisons the log.
    mutating func closeCurrent(releases: inout [WALRelease]) throws(VigilError) {
        guard let file = current else { return }
        do throws(VigilError) { try sync(file) } catch {
            fail(error, releases: &releases)
            throw error
        }
        let released = releases.count
        markDurable(WALLocation(segment: file.number, offset: end), releases: &releases)
        // A rotation's fsync acknowledges the batches waiting on the closed segment: a group too.
        if releases.count > released { metrics.walFsyncBatches.record(releases.count - released) }
        current = nil
        end = 0
    }

    /// Creates segment `nextNumber` with its header, fsynced along with the
    /// directory, and makes it current.
    mutating func openSegment(releases: inout [WALRelease]) throws(VigilError) {
        let number = nextNumber
        guard number < UInt64.max else { throw VigilError(.failedPrecondition, "WAL segment numbers are exhausted in \(directory)") }
        let path = directory + "/" + WALFormat.fileName(of: number)
        let file = WALSegmentFile(number: number, descriptor: try FileHandleDescriptor.open(path, flags: O_RDWR | O_CREAT | O_EXCL))
        do throws(VigilError) {
            try Self.write(WALFormat.header(segment: number), to: file, at: 0)
            try sync(file)
            try FileIO.syncDirectory(directory)
        } catch {
            try? FileIO.remove(path)
            throw error
        }
        segments.append(WALSegmentInfo(number: number, bytes: WALFormat.headerSize))
        current = file
        end = WALFormat.headerSize
        nextNumber = number + 1
        markDurable(WALLocation(segment: number, offset: WALFormat.headerSize), releases: &releases)
    }

    /// Everything up to `location` is durable: release the waiters it covers.
    mutating func markDurable(_ location: WALLocation, releases: inout [WALRelease]) {
        if location > durable { durable = location }
        guard !waiters.isEmpty else { return }
        var pending: [WALWaiter] = []
        for waiter in waiters {
            if waiter.location <= durable {
                releases.append((waiter.continuation, nil))
            } else {
                pending.append(waiter)
            }
        }
        waiters = pending
    }

    /// Poisons the log with `error`: every pending waiter gets it now, every later call too.
    mutating func fail(_ error: VigilError, releases: inout [WALRelease]) {
        if failure == nil { failure = error }
        releases += waiters.map { ($0.continuation, error) }
        waiters.removeAll()
    }
}

/// What the log and its sync thread share. The thread holds this, not the
/// `WriteAheadLog`, so that dropping the log stops the thread.
final class WALCore: Sendable {
    let state: Mutex<WALState>
    let doorbell = WALDoorbell()
    let directory: String
    let policy: SyncPolicy
    let metrics: StorageMetrics

    init(state: WALState, policy: SyncPolicy, metrics: StorageMetrics) {
        directory = state.directory
        self.policy = policy
        self.metrics = metrics
        self.state = Mutex(state)
    }

    func path(of segment: UInt64) -> String {
        directory + "/" + WALFormat.fileName(of: segment)
    }

    static func resume(_ releases: [WALRelease]) {
        for release in releases { release.continuation.resume(returning: release.result) }
    }

    func stopThread() {
        let thread = state.withLock { state -> pthread_t? in
            state.stopThread = true
            defer { state.thread = nil }
            return state.thread
        }
        doorbell.ring()
        if let thread { WALThread.join(thread) }
    }

    // MARK: The sync thread

    private enum Job {
        case exit
        case idle
        case sync(WALSegmentFile, WALLocation, injected: VigilError?)
    }

    func runSyncThread() {
        switch policy {
        case .never:
            return
        case .always:
            while true {
                let ticket = doorbell.ticket()
                switch nextJob(onlyForWaiters: true) {
                case .exit: return
                case .idle: doorbell.wait(after: ticket, milliseconds: nil)
                case .sync(let file, let end, let injected): sync(file, through: end, injected: injected)
                }
            }
        case .interval(let milliseconds):
            while true {
                let ticket = doorbell.ticket()
                if state.withLock({ $0.stopThread }) { return }
                doorbell.wait(after: ticket, milliseconds: milliseconds)
                switch nextJob(onlyForWaiters: false) {
                case .exit: return
                case .idle: continue
                case .sync(let file, let end, let injected): sync(file, through: end, injected: injected)
                }
            }
        }
    }

    /// Whether there is something to fsync: data written past `durable` (that someone waits for).
    private func nextJob(onlyForWaiters: Bool) -> Job {
        state.withLock { state -> Job in
            if state.stopThread { return .exit }
            guard state.failure == nil, !state.syncThreadPaused, let file = state.current else { return .idle }
            let end = state.writtenEnd
            guard state.durable < end, !onlyForWaiters || !state.waiters.isEmpty else { return .idle }
            state.syncCount += 1
            return .sync(file, end, injected: state.injectedSyncFailure)
        }
    }

    /// fsyncs `file`, which covers everything written up to `end`, and releases the waiters it covers.
    private func sync(_ file: WALSegmentFile, through end: WALLocation, injected: VigilError?) {
        var error = injected
        if error == nil {
            let started = ContinuousClock.now
            do { try file.sync() } catch let failure { error = failure }
            metrics.walFsyncDuration.recordNanoseconds((ContinuousClock.now - started).wholeNanoseconds)
        }
        let releases = state.withLock { state -> [WALRelease] in
            var releases: [WALRelease] = []
            if let error {
                state.fail(error, releases: &releases)
            } else {
                state.markDurable(end, releases: &releases)
            }
            return releases
        }
        // The group commit's size: every batch this one fsync acknowledged.
        if error == nil && !releases.isEmpty { metrics.walFsyncBatches.record(releases.count) }
        Self.resume(releases)
    }
}

/// What a WAL directory holds.
enum WALDirectory {
    struct Listing {
        var segments: [WALSegmentInfo]
        /// Above every number a file claims, `.corrupt` ones included.
        var nextNumber: UInt64
    }

    static func scan(_ directory: String) throws(VigilError) -> Listing {
        var segments: [WALSegmentInfo] = []
        var highest: UInt64?
        for name in try FileIO.list(directory) {
            guard let claimed = WALFormat.claimedNumber(ofFileName: name) else { continue }
            highest = max(highest ?? 0, claimed)
            if let number = WALFormat.segmentNumber(ofFileName: name) {
                let file = try FileHandleDescriptor.open(directory + "/" + name, flags: O_RDONLY)
                defer { file.close() }
                segments.append(WALSegmentInfo(number: number, bytes: try file.size()))
            }
        }
        segments.sort { $0.number < $1.number }
        let next = highest.map { $0 == .max ? $0 : $0 + 1 } ?? WALFormat.firstSegment
        return Listing(segments: segments, nextNumber: max(next, WALFormat.firstSegment))
    }
}
