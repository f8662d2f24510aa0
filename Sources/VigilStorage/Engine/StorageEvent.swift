import VigilCore

/// What the store tells its host (the server logs it): changes in whether it
/// takes writes, and background work that failed and will be retried. The
/// store reports a refusal once when it starts and once when it ends, not
/// once per refused call.
public enum StorageEvent: Sendable {
    /// Ingest is refused from now on, for `reason` (what `writeUnavailableReason` says).
    case writesRefused(reason: String)
    /// Ingest is accepted again, after having been refused for `after`.
    case writesResumed(after: Duration)
    /// A flush, merge or retention pass failed; it is tried again after
    /// `retryIn`. Unflushed events stay in memory and in the WAL meanwhile.
    case maintenanceFailed(VigilError, retryIn: Duration)
    /// A file that a committed flush, merge or retention pass no longer
    /// needs could not be removed. Nothing is lost and the store goes on; the
    /// next start removes every file its MANIFEST does not name.
    case cleanupFailed(VigilError)
    /// The part at `path` cannot be read (a damaged block, a failing
    /// sector): a merge leaves it out from now on (until a restart), and
    /// retention leaves it in place (it cannot keep its leaves for the chain
    /// or rewrite it) and tries again each pass. The rest goes on; queries of
    /// its blocks answer DATA_LOSS.
    case partUnreadable(path: String, VigilError)
    /// Retention removed `events` events: `parts` whole parts, or expired
    /// rows left out of a part written again (`parts` 0: a merge, or a
    /// retention rewrite of a part that keeps other events). `statements`: the signed retention
    /// statements written for it (0 without a checkpoint key).
    case eventsExpired(events: UInt64, parts: Int, statements: Int)
}
