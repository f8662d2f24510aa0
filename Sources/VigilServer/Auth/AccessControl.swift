import VigilCore
import VigilProto

/// Authentication and authorization state shared by every connection.
struct AccessControl: Sendable {
    /// nil: authentication is disabled and everyone is `anonymous`.
    let registry: TokenRegistry?
    let rateLimiter: IngestRateLimiter
    let connections: LiveConnections
    let systemLog: SystemAuditLog

    /// The principal of a HELLO's token.
    func authenticate(_ token: String) -> Result<Principal, VigilError> {
        guard let registry else { return .success(.anonymous) }
        guard !token.isEmpty else {
            return .failure(VigilError(.unauthenticated, "this server requires an API token in HELLO (the CLI's --token or $VIGIL_TOKEN)"))
        }
        guard let principal = registry.authenticate(token) else {
            return .failure(VigilError(.unauthenticated, "the API token is not valid: unknown or revoked"))
        }
        return .success(principal)
    }

    /// Refuses a call of a principal whose token was revoked or changed
    /// (secret, scopes, tenants, rate) since HELLO.
    func checkActive(_ principal: Principal) throws(VigilError) {
        guard let registry, principal.tokenID != nil else { return }
        guard registry.isCurrent(principal) else {
            throw VigilError(.unauthenticated, "the connection's token was revoked, or its permissions changed; connect again with a valid token")
        }
    }
}

extension Principal {
    /// `filter` limited to the principal's tenants: a filter without tenants
    /// gets them; one naming a tenant the principal may not read is refused.
    func scoped(_ filter: Vigil_V1_Filter, for method: AuditMethod) throws(VigilError) -> Vigil_V1_Filter {
        guard case .only(let allowed) = tenants else { return filter }
        var filter = filter
        if filter.tenants.isEmpty {
            filter.tenants = allowed.sorted()
        } else {
            for tenant in filter.tenants { try require(tenant: tenant, for: method) }
        }
        return filter
    }

    /// Throws PERMISSION_DENIED unless the principal is an admin of every
    /// tenant: server-wide calls (Verify, GetStats, the default retention).
    func requireServerAdmin(for method: AuditMethod) throws(VigilError) {
        try require(.admin, for: method)
        guard tenants == .all else {
            throw VigilError(
                .permissionDenied,
                "\(method.shortName) concerns every tenant; it needs an admin token that is not bound to tenants (this one (\(displayName)) is bound to \(tenants.list.joined(separator: ", ")))")
        }
    }
}
