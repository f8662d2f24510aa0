import Synchronization
import VigilCore

/// The tenants a call's request names, for its log line. Kept as the
/// request gave them and described only when the line is written: a call
/// logged at a level that is off (OK calls at info) costs no string work.
final class CallTenants: Sendable {
    enum Named: Sendable {
        case list([String])
        case events([AuditEvent])
    }

    private let named = Mutex<Named?>(nil)

    func record(_ tenants: Named) { named.withLock { $0 = tenants } }

    /// "acme", or "acme,globex" (at most `limit`, then "+N more"); nil when none.
    func describe(limit: Int = 5) -> String? {
        let tenants: [String]
        switch named.withLock({ $0 }) {
        case .list(let list)?: tenants = list
        case .events(let events)?:
            var seen: [String] = []
            for event in events where !seen.contains(event.tenant) {
                seen.append(event.tenant)
                if seen.count > limit { break }
            }
            tenants = seen
        case nil: return nil
        }
        guard !tenants.isEmpty else { return nil }
        let shown = tenants.prefix(limit).map { String($0.prefix(128)) }.joined(separator: ",")
        return tenants.count > limit ? shown + ",+more" : shown
    }
}
