import Foundation
import Logging
import VigilCore
import VigilStorage

/// Logs what the store reports: a refusal of writes when it starts and when
/// it ends (once each, not per refused call), failed maintenance, and what
/// retention removed.
enum StorageEventLog {
    static func handler(_ logger: Logger) -> @Sendable (StorageEvent) -> Void {
        { event in
            switch event {
            case .writesRefused(let reason):
                logger.error("ingest is refused: \(reason)")
            case .writesResumed(let after):
                logger.notice("ingest resumed: writes succeed again after \(seconds(after)) s of refusals")
            case .maintenanceFailed(let error, let retryIn):
                logger.error(
                    "a flush, merge or retention pass failed; its events stay in memory and the WAL, retrying in \(seconds(retryIn)) s",
                    metadata: ["vigil.error": "\(error)"])
            case .partUnreadable(let path, let error):
                logger.error(
                    "\(path) cannot be read: merges leave it out and retention leaves it in place (the other parts go on); check the disk, then run vigil verify --data-dir and restore from a backup",
                    metadata: ["vigil.error": "\(error)"])
            case .eventsExpired(let events, let parts, let statements):
                let how = parts > 0 ? "\(parts) whole part(s)" : "left out of a part written again by a merge or a rewrite"
                let signed = statements > 0 ? "; signed \(statements) retention statement(s)" : ""
                logger.notice("retention removed \(events) expired event(s) (\(how))\(signed)")
            case .cleanupFailed(let error):
                logger.warning(
                    "a file no longer needed could not be removed; the next start removes it", metadata: ["vigil.error": "\(error)"])
            }
        }
    }

    private static func seconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        return String(format: "%.1f", Double(seconds) + Double(attoseconds) / 1e18)
    }
}
