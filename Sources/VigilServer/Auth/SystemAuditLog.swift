import Logging
import VigilCore
import VigilProto
import VigilStorage

/// The audit log audits itself: admin actions (tokens created and revoked,
/// retention changed, admin calls refused) become events in the `_system`
/// tenant, readable by tokens for every tenant.
struct SystemAuditLog: Sendable {
    static let tenant = "_system"

    let store: any EventStore
    let logger: Logger

    struct Entry {
        var action: String
        var category: Vigil_V1_Category
        var outcome: Vigil_V1_Outcome = .success
        var resourceType: String
        var resourceID: String
        var resourceName = ""
        var metadata: [String: String] = [:]
        var description: String
        var reason = ""
    }

    /// Stores `entry` as done by `principal` from `peerIP`. A failure to store
    /// is logged, not thrown: the admin action itself already happened.
    /// `actorType` nil: the token's, or anonymous without one.
    func record(_ entry: Entry, by principal: Principal, peerIP: String?, actorType: Vigil_V1_ActorType? = nil) async {
        var event = AuditEvent()
        event.occurredAt = .init(unixNanos: currentUnixNanos())
        event.tenant = Self.tenant
        event.actor.type = actorType ?? (principal.tokenID == nil ? .anonymous : .apiToken)
        event.actor.id = principal.tokenID ?? (event.actor.type == .system ? "vigil" : "anonymous")
        event.actor.name = String(principal.name.prefix(256))
        event.action = entry.action
        event.category = entry.category
        event.resource.type = entry.resourceType
        event.resource.id = String(entry.resourceID.prefix(256))
        event.resource.name = String(entry.resourceName.prefix(256))
        event.outcome = entry.outcome
        event.reason = String(entry.reason.prefix(1_024))
        if let peerIP { event.sourceIp = peerIP }
        event.metadata = entry.metadata.mapValues { String($0.prefix(1_024)) }
        event.description_p = String(entry.description.prefix(4_096))
        do {
            _ = try await store.append([event], idempotencyKey: nil)
        } catch {
            logger.error("could not record an admin action in _system", metadata: [
                "vigil.action": "\(entry.action)", "vigil.error": "\(error)",
            ])
        }
    }
}
