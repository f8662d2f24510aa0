import struct Foundation.Data
import VigilCore
import VigilProto

/// What a token may do. `admin` includes `read` and `ingest`: an operator's
/// token should not need three.
public enum AccessScope: String, Sendable, CaseIterable, Comparable {
    case ingest, read, admin

    public init?(_ scope: Vigil_V1_Scope) {
        switch scope {
        case .ingest: self = .ingest
        case .read: self = .read
        case .admin: self = .admin
        case .unspecified, .UNRECOGNIZED: return nil
        }
    }

    public var proto: Vigil_V1_Scope {
        switch self {
        case .ingest: .ingest
        case .read: .read
        case .admin: .admin
        }
    }

    public static func < (lhs: AccessScope, rhs: AccessScope) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// The tenants a token is bound to: all of them, or a list.
public enum TenantAccess: Sendable, Equatable {
    case all
    case only(Set<String>)

    public init(_ tenants: [String]) {
        self = tenants.isEmpty ? .all : .only(Set(tenants))
    }

    public func allows(_ tenant: String) -> Bool {
        switch self {
        case .all: true
        case .only(let tenants): tenants.contains(tenant)
        }
    }

    /// Whether every tenant `other` allows, this allows too.
    public func covers(_ other: TenantAccess) -> Bool {
        switch (self, other) {
        case (.all, _): true
        case (.only, .all): false
        case (.only(let mine), .only(let theirs)): theirs.isSubset(of: mine)
        }
    }

    public var list: [String] {
        switch self {
        case .all: []
        case .only(let tenants): tenants.sorted()
        }
    }
}

/// Who a connection authenticated as: a token, or anonymous on a server run
/// without authentication (which may do everything).
public struct Principal: Sendable, Equatable {
    /// nil for anonymous.
    public var tokenID: String?
    public var name: String
    public var scopes: Set<AccessScope>
    public var tenants: TenantAccess
    /// Events per second this principal may ingest; nil for no limit.
    public var ingestEventsPerSecond: UInt64?
    /// SHA-256 of the secret it authenticated with: a connection whose
    /// token's secret was replaced since its HELLO may not go on.
    var secretDigest: Data?

    public static let anonymous = Principal(tokenID: nil, name: "anonymous", scopes: Set(AccessScope.allCases), tenants: .all)

    public init(
        tokenID: String?, name: String, scopes: Set<AccessScope>, tenants: TenantAccess, ingestEventsPerSecond: UInt64? = nil,
        secretDigest: Data? = nil
    ) {
        self.secretDigest = secretDigest
        self.tokenID = tokenID
        self.name = name
        self.scopes = scopes
        self.tenants = tenants
        self.ingestEventsPerSecond = ingestEventsPerSecond
    }

    /// `admin` includes the other scopes.
    public func has(_ scope: AccessScope) -> Bool {
        scopes.contains(scope) || scopes.contains(.admin)
    }

    /// How the server names this principal in logs, `Welcome.principal` and
    /// the actor of its `_system` events.
    public var displayName: String {
        tokenID.map { "\(name) (\($0))" } ?? name
    }

    /// Throws PERMISSION_DENIED unless the principal holds `scope`.
    public func require(_ scope: AccessScope, for method: AuditMethod) throws(VigilError) {
        guard has(scope) else {
            let held = scopes.sorted().map(\.rawValue).joined(separator: ", ")
            throw VigilError(
                .permissionDenied,
                "\(method.shortName) needs a token with the \(scope.rawValue) scope; this token (\(displayName)) has \(held.isEmpty ? "none" : held)")
        }
    }

    /// Throws PERMISSION_DENIED unless the principal may use `tenant`.
    public func require(tenant: String, for method: AuditMethod) throws(VigilError) {
        guard tenants.allows(tenant) else {
            throw VigilError(
                .permissionDenied,
                "this token (\(displayName)) may not use tenant '\(tenant.prefix(128))' (\(method.shortName)); it is bound to \(tenants.list.joined(separator: ", "))")
        }
    }
}

extension AuditMethod {
    /// "Ingest", for messages.
    public var shortName: String {
        String(rawValue.split(separator: "/").last ?? "")
    }
}
