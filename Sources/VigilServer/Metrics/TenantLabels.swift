import Synchronization
import VigilCore

/// The values the `tenant` label may take, bounded.
///
/// Every label value is a time series that Prometheus keeps (and a set of
/// counters this process keeps) for as long as it exists, and tenants are
/// chosen by clients: a server with a hundred thousand tenants, or a client
/// making up names, would otherwise grow both without limit. So the first
/// `limit` distinct tenants of *stored* batches get their own value and every
/// later one is counted under `_other`. A refused batch admits nothing (a
/// client sending junk cannot use up the slots): its tenants count under
/// their own value only if already admitted, else `_other`, and names that
/// are not valid client tenants (reserved ones included) under `_invalid`.
/// Both start with '_', which client tenants cannot, so they never collide
/// with a real tenant. A restart re-admits.
final class TenantLabels: Sendable {
    static let other = "_other"
    static let invalid = "_invalid"
    /// Longer names are counted as `_invalid`: the validator refuses them too.
    static let maxBytes = 128

    let limit: Int
    private let admitted = Mutex<Set<String>>([])

    init(limit: Int) {
        self.limit = max(0, limit)
    }

    /// The label value for `tenant`: itself once admitted; a tenant of a
    /// stored batch (`admit`) is admitted while there is room; else `_other`.
    func label(for tenant: String, admit: Bool) -> String {
        guard tenant.utf8.count <= Self.maxBytes, EventValidator.tenantProblem(tenant) == nil else {
            return Self.invalid
        }
        return admitted.withLock { admitted in
            if admitted.contains(tenant) { return tenant }
            guard admit, admitted.count < limit else { return Self.other }
            admitted.insert(tenant)
            return tenant
        }
    }
}
