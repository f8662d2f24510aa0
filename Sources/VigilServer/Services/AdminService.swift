import NIOCore
import SwiftProtobuf
import VigilCore
import VigilProto
import VigilStorage

/// The admin calls: tokens, retention and statistics. Every change, and
/// every refused attempt, is recorded in the `_system` tenant.
extension AuditService {
    func admin(_ method: AuditMethod, request: ByteBuffer, sender: some ResponseSender, caller: Caller) async throws -> [String: String] {
        // The scope first, before the request is decoded or checked: a caller
        // without it is told PERMISSION_DENIED (and `_system` records the
        // attempt) whatever it sent, not INVALID_ARGUMENT for a bad request.
        // Each call then checks what its request asks (tenants, server-wide).
        let principal = caller.principal
        try await authorizeAdmin(method, caller: caller) { () throws(VigilError) in try principal.require(.admin, for: method) }
        switch method {
        case .createToken: try await createToken(request.decodeMessage(), sender: sender, caller: caller)
        case .listTokens: try await listTokens(request.decodeMessage(), sender: sender, caller: caller)
        case .revokeToken: try await revokeToken(request.decodeMessage(), sender: sender, caller: caller)
        case .setRetention: try await setRetention(request.decodeMessage(), sender: sender, caller: caller)
        case .getStats: try await getStats(request.decodeMessage(), sender: sender, caller: caller)
        default: preconditionFailure("\(method) is not an admin call")
        }
        return [:]
    }

    /// The `_system` action recorded for a method.
    static func systemAction(of method: AuditMethod) -> String {
        switch method {
        case .createToken: "token.create"
        case .listTokens: "token.list"
        case .revokeToken: "token.revoke"
        case .setRetention: "retention.update"
        case .getStats: "stats.read"
        case .verify: "integrity.verify"
        case .backup: "backup.create"
        default: method.shortName
        }
    }

    /// Runs `check`; a refusal is recorded in `_system` (outcome DENIED)
    /// before it is thrown.
    func authorizeAdmin(_ method: AuditMethod, caller: Caller, _ check: () throws(VigilError) -> Void) async throws(VigilError) {
        do {
            try check()
        } catch {
            if error.code == .permissionDenied {
                var entry = SystemAuditLog.Entry(
                    action: Self.systemAction(of: method), category: .other, outcome: .denied,
                    resourceType: "server", resourceID: configuration.serverName,
                    description: "\(caller.principal.displayName) was refused \(method.shortName)")
                entry.reason = error.message
                await access.systemLog.record(entry, by: caller.principal, peerIP: caller.peerIP)
            }
            throw error
        }
    }

    private func tokenRegistry(for method: AuditMethod) throws(VigilError) -> TokenRegistry {
        guard let registry = access.registry else {
            throw VigilError(
                .failedPrecondition,
                "this server runs without authentication (--no-auth), so it keeps no tokens; restart it without --no-auth to use \(method.shortName)")
        }
        return registry
    }

    func createToken(_ request: Vigil_V1_CreateTokenRequest, sender: some ResponseSender, caller: Caller) async throws {
        let principal = caller.principal
        var scopes = Set<AccessScope>()
        for scope in request.scopes {
            guard let known = AccessScope(scope) else {
                throw VigilError(.invalidArgument, "scopes: \(scope) is not INGEST, READ or ADMIN")
            }
            scopes.insert(known)
        }
        try await authorizeAdmin(.createToken, caller: caller) { () throws(VigilError) in
            try principal.require(.admin, for: .createToken)
            // A token bound to tenants can make tokens for those tenants only.
            guard principal.tenants.covers(TenantAccess(request.tenants)) else {
                throw VigilError(
                    .permissionDenied,
                    request.tenants.isEmpty
                        ? "this token (\(principal.displayName)) is bound to tenants, so the tokens it creates must list tenants among \(principal.tenants.list.joined(separator: ", "))"
                        : "this token (\(principal.displayName)) may create tokens only for \(principal.tenants.list.joined(separator: ", "))")
            }
            // The server's rate limit protects every tenant: an admin of some
            // tenants may lower it for its tokens, not raise it.
            if principal.tenants != .all, let limit = access.rateLimiter.defaultEventsPerSecond,
                request.ingestEventsPerSecond > limit
            {
                throw VigilError(
                    .permissionDenied,
                    "this token (\(principal.displayName)) is bound to tenants, so the tokens it creates may not ingest faster than the server's limit of \(limit) events/s (asked: \(request.ingestEventsPerSecond)); an admin of every tenant can")
            }
        }
        let registry = try tokenRegistry(for: .createToken)
        let (token, secret) = try registry.create(
            name: request.name, scopes: scopes, tenants: request.tenants,
            ingestEventsPerSecond: request.ingestEventsPerSecond, createdBy: principal.displayName)
        await access.systemLog.record(
            .init(
                action: "token.create", category: .create, resourceType: "api_token", resourceID: token.id, resourceName: token.name,
                metadata: Self.tokenMetadata(token),
                description: "\(principal.displayName) created token \(token.name) (\(token.id))"),
            by: principal, peerIP: caller.peerIP)
        var response = Vigil_V1_CreateTokenResponse()
        response.info = token.info
        response.token = secret
        try await sender.send(response)
    }

    static func tokenMetadata(_ token: Vigil_V1_StoredToken) -> [String: String] {
        var metadata = [
            "scopes": token.scopes.compactMap(AccessScope.init).map(\.rawValue).joined(separator: ","),
            "tenants": token.tenants.isEmpty ? "*" : token.tenants.joined(separator: ","),
        ]
        if token.ingestEventsPerSecond > 0 { metadata["ingest_events_per_second"] = String(token.ingestEventsPerSecond) }
        return metadata
    }

    func listTokens(_ request: Vigil_V1_ListTokensRequest, sender: some ResponseSender, caller: Caller) async throws {
        let principal = caller.principal
        try await authorizeAdmin(.listTokens, caller: caller) { () throws(VigilError) in try principal.require(.admin, for: .listTokens) }
        let registry = try tokenRegistry(for: .listTokens)
        var response = Vigil_V1_ListTokensResponse()
        // A tenant-bound admin sees the tokens of its tenants only.
        response.tokens = registry.tokens
            .filter { principal.tenants.covers(TenantAccess($0.tenants)) }
            .map(\.info)
        try await sender.send(response)
    }

    func revokeToken(_ request: Vigil_V1_RevokeTokenRequest, sender: some ResponseSender, caller: Caller) async throws {
        let principal = caller.principal
        try await authorizeAdmin(.revokeToken, caller: caller) { () throws(VigilError) in try principal.require(.admin, for: .revokeToken) }
        let registry = try tokenRegistry(for: .revokeToken)
        guard let existing = registry.tokens.first(where: { $0.id == request.id }),
            principal.tenants.covers(TenantAccess(existing.tenants))
        else {
            // Tokens of other tenants are not the caller's to see.
            throw VigilError(.notFound, "no token has id '\(request.id.prefix(64))'; `vigil token list` shows them")
        }
        let wasActive = existing.revokedAtNanos == 0
        let token = try registry.revoke(id: request.id)
        if wasActive {
            let closed = access.connections.revoke(tokenID: token.id)
            var metadata = Self.tokenMetadata(token)
            metadata["connections_closed"] = String(closed)
            await access.systemLog.record(
                .init(
                    action: "token.revoke", category: .delete, resourceType: "api_token", resourceID: token.id, resourceName: token.name,
                    metadata: metadata,
                    description: "\(principal.displayName) revoked token \(token.name) (\(token.id))"),
                by: principal, peerIP: caller.peerIP)
        }
        var response = Vigil_V1_RevokeTokenResponse()
        response.info = token.info
        try await sender.send(response)
    }

    /// The shortest retention `SetRetention` accepts: anything shorter is
    /// more likely a unit mistake than a wish to delete today's events.
    static let minimumRetentionNanos = RetentionSettings.minimumNanos

    func setRetention(_ request: Vigil_V1_SetRetentionRequest, sender: some ResponseSender, caller: Caller) async throws {
        let principal = caller.principal
        let tenant = request.tenant.isEmpty ? nil : request.tenant
        if let tenant, let problem = EventValidator.tenantProblem(tenant, allowReserved: true) {
            throw VigilError(.invalidArgument, "tenant '\(tenant.prefix(128))' \(problem)")
        }
        try await authorizeAdmin(.setRetention, caller: caller) { () throws(VigilError) in
            if let tenant {
                try principal.require(.admin, for: .setRetention)
                try principal.require(tenant: tenant, for: .setRetention)
            } else {
                try principal.requireServerAdmin(for: .setRetention)
            }
        }
        var nanos: Int64?
        let hasDuration = request.hasRetention && (request.retention.seconds != 0 || request.retention.nanos != 0)
        if request.forever {
            guard !hasDuration else {
                throw VigilError(.invalidArgument, "forever and a retention duration were both given: send one of them")
            }
            // A tenant's own "forever" (`Int64.max`), which the default does not change.
            nanos = tenant == nil ? nil : .max
        } else if hasDuration {
            let (seconds, overflow) = request.retention.seconds.multipliedReportingOverflow(by: 1_000_000_000)
            guard request.retention.seconds > 0, request.retention.nanos >= 0, !overflow else {
                throw VigilError(.invalidArgument, "retention must be a positive duration (or unset)")
            }
            nanos = seconds &+ Int64(request.retention.nanos)
            guard nanos! >= Self.minimumRetentionNanos else {
                throw VigilError(.invalidArgument, "retention must be at least 1 day (86400 s); unset it to keep events forever")
            }
        }
        let (before, after) = try await store.setRetention(tenant: tenant, nanos: nanos)
        await access.systemLog.record(
            .init(
                action: "retention.update", category: .update, resourceType: "retention", resourceID: tenant ?? "*",
                resourceName: tenant.map { "retention of \($0)" } ?? "default retention",
                metadata: ["before": RetentionSettings.Values.text(before), "after": RetentionSettings.Values.text(after)],
                description: "\(principal.displayName) set the retention of \(tenant ?? "every tenant without its own") from \(RetentionSettings.Values.text(before)) to \(RetentionSettings.Values.text(after))"),
            by: principal, peerIP: caller.peerIP)
        var response = Vigil_V1_SetRetentionResponse()
        if let after { response.retention = .init(seconds: after / 1_000_000_000, nanos: Int32(after % 1_000_000_000)) }
        try await sender.send(response)
    }

    func getStats(_ request: Vigil_V1_GetStatsRequest, sender: some ResponseSender, caller: Caller) async throws {
        let principal = caller.principal
        try await authorizeAdmin(.getStats, caller: caller) { () throws(VigilError) in try principal.requireServerAdmin(for: .getStats) }
        let statistics = try await store.statistics()
        var response = Vigil_V1_GetStatsResponse()
        response.eventsStored = statistics.eventsStored
        response.lastSeq = statistics.lastSeq
        response.bytesOnDisk = statistics.bytesOnDisk
        response.startedAt = .init(unixNanos: startedAt)
        response.serverVersion = vigilVersion
        response.now = .init(unixNanos: currentUnixNanos())
        response.ingestEventsPerSecond = vitals.ingestRate.eventsPerSecond()
        response.memoryEvents = statistics.memoryEvents
        response.memoryBytes = statistics.memoryBytes
        response.parts = statistics.partLevels.map { level in
            var entry = Vigil_V1_PartLevelCount()
            entry.level = level.level
            entry.parts = level.parts
            entry.events = level.events
            entry.bytes = level.bytes
            return entry
        }
        response.mergeBacklogParts = statistics.mergeBacklogParts
        response.connections = UInt32(clamping: access.connections.count)
        response.callsInFlight = UInt32(clamping: vitals.callsInFlight)
        response.subscribers = UInt32(clamping: subscriptions.count)
        if let checkpoint = vitals.lastCheckpoint {
            response.lastCheckpoint.seq = checkpoint.seq
            response.lastCheckpoint.createdAt = .init(unixNanos: checkpoint.createdAt)
        }
        response.health = healthResponse()
        try await sender.send(response)
    }
}
