/// When the maintenance loop tries again after a failed round: 1 s after the
/// first failure, doubling up to 30 s, so that a full or failing disk is not
/// hammered (nor the log flooded) while the events wait in memory and the WAL.
struct MaintenanceBackoff: Sendable {
    static let first: Duration = .seconds(1)
    static let longest: Duration = .seconds(30)

    private var next: ContinuousClock.Instant?
    private var delay: Duration = .zero

    func isDue(now: ContinuousClock.Instant) -> Bool {
        guard let next else { return true }
        return now >= next
    }

    mutating func succeeded() {
        next = nil
        delay = .zero
    }

    /// Schedules the retry; returns how long until it.
    mutating func failed(now: ContinuousClock.Instant) -> Duration {
        delay = delay == .zero ? Self.first : min(Self.longest, delay * 2)
        next = now + delay
        return delay
    }
}
