import VigilCore

/// Whether the store takes writes, and if not, why. A value the store keeps
/// under a lock; every method that can start or end a refusal returns the
/// change, so that the store reports each once, not once per call.
///
/// - **Disk full** (a write failed with ENOSPC or EDQUOT, or the free space
///   fell under the reserve): ingest is refused with UNAVAILABLE and ends by
///   itself. A refusal caused by a failed write ends with the next write that
///   succeeds: after `probeInterval`, one ingest is let through to try its WAL
///   write (a flush that succeeds ends it too, and so does the probe write
///   maintenance makes each second when no ingest comes). A refusal caused
///   by the reserve ends when a free-space check (at most every
///   `spaceCheckInterval`, by ingest or by maintenance) finds the reserve
///   free again.
/// - **I/O failure** (an fsync or a write failed for another reason): refused
///   until restart. After a failed fsync, Linux may have dropped the dirty
///   pages and marked them clean, so what the page cache shows is no longer
///   what the disk holds ("fsyncgate"); only a restart, which replays the WAL
///   from the disk, knows again what is stored.
struct WriteAvailability: Sendable {
    /// How often a refused store lets one write through to see whether space returned.
    static let probeInterval: Duration = .seconds(1)
    /// How often ingest looks at the free space (statvfs) when there is a reserve.
    static let spaceCheckInterval: Duration = .milliseconds(100)

    enum Cause: Sendable, Equatable {
        case writeFailed
        case belowReserve
    }

    struct Full: Sendable {
        var detail: String
        var cause: Cause
        var since: ContinuousClock.Instant
    }

    enum Change: Sendable, Equatable {
        case refused(reason: String)
        case resumed(after: Duration)
    }

    let directory: String
    let reserveBytes: Int
    private(set) var full: Full?
    /// The I/O failure that stops writes until restart.
    private(set) var failure: String?
    private var nextProbe: ContinuousClock.Instant?
    private var nextSpaceCheck: ContinuousClock.Instant?

    init(directory: String, reserveBytes: Int) {
        self.directory = directory
        self.reserveBytes = reserveBytes
    }

    /// Why writes are refused now; nil when they are not.
    var reason: String? {
        if let failure {
            return "writes are refused after an I/O error on the data disk (\(failure)): after a failed write or fsync "
                + "it is uncertain what the disk holds; check the disk (dmesg, SMART), then restart vigil serve, "
                + "which replays the WAL from the disk"
        }
        if let full {
            return "the data disk is full: \(full.detail); free space under \(directory) or lower retention; ingest resumes by itself"
        }
        return nil
    }

    /// The error a refused write gets.
    var refusal: VigilError? {
        guard let reason else { return nil }
        if failure != nil { return VigilError(.unavailable, reason) }
        return VigilError(.unavailable, reason, metadata: ["vigil.retry-after-ms": "1000"])
    }

    /// What a failed WAL write means for the store.
    enum Failure: Equatable {
        /// Not an I/O error: the batch's own (a closed store, say).
        case batchOwn
        /// Out of descriptors or kernel memory (an open failed): nothing
        /// written, nothing in doubt; the batch is refused, the store is not.
        case shortage
        /// A failed fsync poisoned the WAL: refused until restart.
        case poisoned(VigilError)
        /// ENOSPC or EDQUOT: refused until space returns.
        case diskFull
        /// EIO and the like: the disk is failing; refused until restart.
        case failing

        init(walWriteFailure error: VigilError, poison: VigilError?) {
            if !FileIO.isIOError(error) {
                self = .batchOwn
            } else if let poison {
                self = .poisoned(poison)
            } else if FileIO.isDiskFull(error) {
                self = .diskFull
            } else if FileIO.isResourceShortage(error) {
                self = .shortage
            } else {
                self = .failing
            }
        }
    }

    // MARK: Admission

    /// Whether it is time to look at the free space; if so, the next check is
    /// scheduled (so concurrent callers do not all look).
    mutating func spaceCheckDue(now: ContinuousClock.Instant) -> Bool {
        guard reserveBytes > 0 else { return false }
        if let nextSpaceCheck, now < nextSpaceCheck { return false }
        nextSpaceCheck = now + Self.spaceCheckInterval
        return true
    }

    /// Records what a free-space check found.
    mutating func spaceChecked(freeBytes: Int, now: ContinuousClock.Instant) -> Change? {
        guard freeBytes < reserveBytes else {
            guard let full, full.cause == .belowReserve else { return nil }
            self.full = nil
            return failure == nil ? .resumed(after: now - full.since) : nil
        }
        let detail = "\(freeBytes / 1_048_576) MiB free, under the \(reserveBytes / 1_048_576) MiB kept free "
            + "for flushes, merges and retention (--min-free-disk-mb)"
        if var full {
            // Already refused: from now on the reserve, not a probe, decides when it ends.
            full.cause = .belowReserve
            full.detail = detail
            self.full = full
            return nil
        }
        full = Full(detail: detail, cause: .belowReserve, since: now)
        return failure == nil ? .refused(reason: reason ?? detail) : nil
    }

    /// Whether maintenance should try a probe write now: writes are refused
    /// after a failed write, and no ingest call probed within `probeInterval`.
    mutating func maintenanceProbeDue(now: ContinuousClock.Instant) -> Bool {
        guard failure == nil, let full, full.cause == .writeFailed else { return false }
        if let nextProbe, now < nextProbe { return false }
        nextProbe = now + Self.probeInterval
        return true
    }

    /// Throws the refusal, unless writes are open or this caller is the probe.
    mutating func admit(now: ContinuousClock.Instant) throws(VigilError) {
        if failure != nil, let refusal { throw refusal }
        guard let full, let refusal else { return }
        if full.cause == .writeFailed, let nextProbe, now >= nextProbe {
            // This caller tries the write; the others wait for its outcome.
            self.nextProbe = now + Self.probeInterval
            return
        }
        throw refusal
    }

    // MARK: Outcomes

    /// A write succeeded: a refusal caused by a failed write ends.
    mutating func writeSucceeded(now: ContinuousClock.Instant) -> Change? {
        guard let full, full.cause == .writeFailed else { return nil }
        self.full = nil
        return failure == nil ? .resumed(after: now - full.since) : nil
    }

    /// A write failed for want of space or quota.
    mutating func diskFull(_ error: VigilError, now: ContinuousClock.Instant) -> Change? {
        nextProbe = now + Self.probeInterval
        guard full == nil else { return nil }
        full = Full(detail: error.message, cause: .writeFailed, since: now)
        return failure == nil ? .refused(reason: reason ?? error.message) : nil
    }

    /// An I/O failure after which the store cannot trust the page cache: refused until restart.
    mutating func failed(_ error: VigilError) -> Change? {
        guard failure == nil else { return nil }
        failure = error.message
        return .refused(reason: reason ?? error.message)
    }
}
