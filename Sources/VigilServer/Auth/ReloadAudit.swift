import Logging
import VigilCore
import VigilProto
import VigilStorage

/// Records in `_system` what a SIGHUP reload changed: retention and tokens
/// change there as they do through the API, and whoever can edit the
/// configuration and signal the server must leave the same trace as an
/// admin token would (a retention cut to a day deletes history).
public struct ReloadAudit: Sendable {
    private let log: SystemAuditLog
    /// The server itself, acting on its operator's files.
    private static let actor = Principal(tokenID: nil, name: "vigil serve (SIGHUP)", scopes: [], tenants: .all)

    public init(store: any EventStore, logger: Logger) {
        log = SystemAuditLog(store: store, logger: logger)
    }

    /// A retention a reload set (`tenant` nil: the default), read from `source`.
    public func retentionChanged(tenant: String?, before: Int64?, after: Int64?, source: String) async {
        let before = RetentionSettings.Values.text(before), after = RetentionSettings.Values.text(after)
        await log.record(
            .init(
                action: "retention.update", category: .update, resourceType: "retention", resourceID: tenant ?? "*",
                resourceName: tenant.map { "retention of \($0)" } ?? "default retention",
                metadata: ["before": before, "after": after, "via": "SIGHUP", "source": source],
                description: "a SIGHUP reload of \(source) set the retention of \(tenant ?? "every tenant without its own") from \(before) to \(after)"),
            by: Self.actor, peerIP: nil, actorType: .system)
    }

    /// At start: `RETENTION` was not the file signed last, and the signed
    /// settings were put back (`RetentionSettings.reconcile`). Whoever can
    /// query `_system` sees that someone changed the retention outside the
    /// server, not only whoever reads the server's log.
    public func retentionSettingsRestored(_ description: String, setAside: String?) async {
        var metadata = ["via": "start"]
        if let setAside { metadata["set_aside"] = setAside }
        await log.record(
            .init(
                action: "retention.restore", category: .update, resourceType: "retention", resourceID: RetentionSettings.fileName,
                resourceName: "retention settings", metadata: metadata, description: description),
            by: Self.starter, peerIP: nil, actorType: .system)
    }

    /// The server itself, checking its data directory as it starts.
    private static let starter = Principal(tokenID: nil, name: "vigil serve (start)", scopes: [], tenants: .all)

    /// Tokens a reload of the tokens file made valid, invalid or changed.
    public func tokensReloaded(_ reload: TokenRegistry.Reload, path: String) async {
        for (ids, action, category, verb) in [
            (reload.activated, "token.create", Vigil_V1_Category.create, "made valid"),
            (reload.deactivated, "token.revoke", .delete, "made invalid"),
            (reload.changed, "token.update", .update, "changed the permissions or secret of"),
        ] {
            for id in ids.sorted() {
                await log.record(
                    .init(
                        action: action, category: category, resourceType: "api_token", resourceID: id,
                        metadata: ["via": "SIGHUP", "source": path],
                        description: "a SIGHUP reload of \(path) \(verb) token \(id)"),
                    by: Self.actor, peerIP: nil, actorType: .system)
            }
        }
    }
}
