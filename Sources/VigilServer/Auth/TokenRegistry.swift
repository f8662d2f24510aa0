import Crypto
import Foundation
import Synchronization
import VigilCore
import VigilProto
import VigilStorage

/// The API tokens: kept in `<data-dir>/tokens` (a `Vigil_V1_TokenFile`,
/// replaced atomically on every change), looked up by the SHA-256 of the
/// secret. Secrets themselves are never stored: one is shown once, when it is
/// created.
public final class TokenRegistry: Sendable {
    /// Secrets look like `vgl_<16 hex: the id>_<43 base64url: 256 random bits>`.
    static let secretPrefix = "vgl_"
    /// A secret given from outside (`--admin-token-file`) must be at least this
    /// long: shorter ones could be guessed.
    public static let minimumSecretLength = 24
    public static let maxNameBytes = 64
    public static let maxTenants = 1_000

    private struct State {
        var tokens: [Vigil_V1_StoredToken]
        /// SHA-256 of a secret → index in `tokens`.
        var byHash: [Data: Int]
        /// Tokens that are not revoked, by id, as the principals they stand
        /// for now: every call's principal is compared with its token's.
        var active: [String: Principal]
    }

    /// `<data-dir>/tokens`.
    public let path: String
    private let state: Mutex<State>
    /// Called with the ids of tokens a reload made inactive (to close their connections).
    private let deactivationHandlers = Mutex<[@Sendable (String) -> Void]>([])

    /// Loads the token file in `directory` (none yet: no tokens).
    public init(directory: String) throws(VigilError) {
        path = directory + "/tokens"
        let tokens = try Self.read(path)
        state = Mutex(State(tokens: tokens, byHash: Self.index(tokens), active: Self.activeIDs(tokens)))
    }

    /// What a reload of the token file changed.
    public struct Reload: Sendable, CustomStringConvertible {
        /// Tokens that are active now and were not before (created elsewhere, or restored).
        public var activated: [String]
        /// Tokens that were active and are not now (revoked, or missing from the file).
        public var deactivated: [String]
        /// Tokens active before and after whose scopes, tenants, rate or secret
        /// changed: their open connections are closed too (they were
        /// authorized at HELLO with what the token was then).
        public var changed: [String] = []
        public var active: Int

        public var description: String {
            var text = "\(active) active"
            if !activated.isEmpty { text += ", newly active: \(activated.sorted().joined(separator: ","))" }
            if !deactivated.isEmpty { text += ", no longer active: \(deactivated.sorted().joined(separator: ","))" }
            if !changed.isEmpty { text += ", changed: \(changed.sorted().joined(separator: ","))" }
            return text
        }
    }

    /// Reads `<data-dir>/tokens` again (an operator restored or edited it) and
    /// makes it the registry's tokens; connections of tokens no longer active,
    /// or whose permissions changed, are closed. A damaged or missing file
    /// changes nothing.
    public func reload() throws(VigilError) -> Reload {
        // At the first start a missing file means "no tokens yet"; on a reload it is a mistake.
        guard FileIO.exists(path) else {
            throw VigilError(.failedPrecondition, "\(path) is missing; restore it (the tokens stay as they were until then)")
        }
        // Read under the lock: a token created meanwhile is in the file, not lost.
        let (before, after, changed) = try state.withLock { (state: inout State) throws(VigilError) in
            let tokens = try Self.read(path)
            let before = Set(state.active.keys)
            let old = Dictionary(state.tokens.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
            state = State(tokens: tokens, byHash: Self.index(tokens), active: Self.activeIDs(tokens))
            let changed = tokens.filter { token in
                guard token.revokedAtNanos == 0, before.contains(token.id), let earlier = old[token.id] else { return false }
                return !Self.samePermissions(earlier, token)
            }.map(\.id)
            return (before, Set(state.active.keys), changed)
        }
        let deactivated = before.subtracting(after)
        let handlers = deactivationHandlers.withLock { $0 }
        for id in deactivated.union(changed) { for handler in handlers { handler(id) } }
        var reload = Reload(activated: Array(after.subtracting(before)), deactivated: Array(deactivated), active: after.count)
        reload.changed = changed
        return reload
    }

    /// Whether a connection authorized with `old` may go on as `new`: the same
    /// secret, scopes, tenants and ingest rate.
    private static func samePermissions(_ old: Vigil_V1_StoredToken, _ new: Vigil_V1_StoredToken) -> Bool {
        old.secretSha256 == new.secretSha256 && Set(old.scopes) == Set(new.scopes) && Set(old.tenants) == Set(new.tenants)
            && old.ingestEventsPerSecond == new.ingestEventsPerSecond
    }

    /// Registers `handler` to be called with each token id a reload deactivates.
    func onDeactivation(_ handler: @escaping @Sendable (String) -> Void) {
        deactivationHandlers.withLock { $0.append(handler) }
    }

    /// The envelope's magic (`ChecksummedFile`) of `<data-dir>/tokens`.
    public static let fileMagic = "VTOK"

    private static func read(_ path: String) throws(VigilError) -> [Vigil_V1_StoredToken] {
        var tokens: [Vigil_V1_StoredToken] = []
        if FileIO.exists(path) {
            var bytes: [UInt8]
            do {
                let file = try FileHandleDescriptor.open(path, flags: O_RDONLY)
                defer { file.close() }
                bytes = try file.read(count: file.size(), at: 0)
            }
            // Checksummed since this version: a flipped bit in a plain
            // protobuf could change a token's scopes or tenants and still
            // parse. A file without the envelope is an earlier version's,
            // read as it is and rewritten checksummed at the next change.
            if bytes.starts(with: Self.fileMagic.utf8) {
                do {
                    bytes = try ChecksummedFile.readPayload(magic: Self.fileMagic, from: path)
                } catch {
                    throw VigilError(.dataLoss, "\(path) is damaged (\(error.message)); restore it from a backup or remove it to start with no tokens")
                }
            }
            do {
                let stored = try Vigil_V1_TokenFile(serializedBytes: bytes)
                guard stored.formatVersion == 1 else {
                    throw VigilError(.failedPrecondition, "\(path) has format version \(stored.formatVersion); this server reads version 1")
                }
                tokens = stored.tokens
            } catch let error as VigilError {
                throw error
            } catch {
                throw VigilError(.dataLoss, "\(path) is damaged (\(error)); restore it from a backup or remove it to start with no tokens")
            }
        }
        return tokens
    }

    private static func index(_ tokens: [Vigil_V1_StoredToken]) -> [Data: Int] {
        var byHash: [Data: Int] = [:]
        for (index, token) in tokens.enumerated() { byHash[token.secretSha256] = index }
        return byHash
    }

    private static func activeIDs(_ tokens: [Vigil_V1_StoredToken]) -> [String: Principal] {
        Dictionary(tokens.filter { $0.revokedAtNanos == 0 }.map { ($0.id, principal(of: $0)) }, uniquingKeysWith: { _, last in last })
    }

    static func hash(_ secret: String) -> Data {
        Data(SHA256.hash(data: Data(secret.utf8)))
    }

    /// The principal a secret stands for; nil when it is unknown or revoked.
    public func authenticate(_ secret: String) -> Principal? {
        let digest = Self.hash(secret)
        return state.withLock { state in
            guard let index = state.byHash[digest] else { return nil }
            let token = state.tokens[index]
            guard token.revokedAtNanos == 0 else { return nil }
            return Self.principal(of: token)
        }
    }

    /// Whether the token `id` exists and is not revoked.
    public func isActive(_ id: String) -> Bool {
        state.withLock { $0.active[id] != nil }
    }

    /// Whether `principal` is still what its token stands for: not revoked,
    /// and with the same secret, scopes, tenants and rate. Checked on every
    /// call, so a revocation or a reload that changed the token stops
    /// connections authorized before it, even one whose HELLO raced the
    /// reload (its connection was not yet known to be closed).
    public func isCurrent(_ principal: Principal) -> Bool {
        guard let id = principal.tokenID else { return false }
        return state.withLock { $0.active[id] == principal }
    }

    static func principal(of token: Vigil_V1_StoredToken) -> Principal {
        Principal(
            tokenID: token.id, name: token.name,
            scopes: Set(token.scopes.compactMap(AccessScope.init)),
            tenants: TenantAccess(token.tenants),
            ingestEventsPerSecond: token.ingestEventsPerSecond == 0 ? nil : token.ingestEventsPerSecond,
            secretDigest: token.secretSha256)
    }

    public var tokens: [Vigil_V1_StoredToken] { state.withLock { $0.tokens } }

    /// Whether some valid token has the admin scope for every tenant.
    public var hasActiveAdmin: Bool {
        state.withLock { state in
            state.tokens.contains { $0.revokedAtNanos == 0 && $0.tenants.isEmpty && $0.scopes.contains(.admin) }
        }
    }

    /// Creates a token and returns it with its secret (made here unless given:
    /// a secret from `--admin-token-file`).
    public func create(
        name: String, scopes: Set<AccessScope>, tenants: [String], ingestEventsPerSecond: UInt64 = 0,
        createdBy: String, secret givenSecret: String? = nil, now: UnixNanos = currentUnixNanos()
    ) throws(VigilError) -> (token: Vigil_V1_StoredToken, secret: String) {
        try Self.check(name: name, scopes: scopes, tenants: tenants)
        let id = Self.randomHex(bytes: 8)
        let secret = givenSecret ?? "\(Self.secretPrefix)\(id)_\(Self.randomBase64URL(bytes: 32))"
        var token = Vigil_V1_StoredToken()
        token.id = "tok_\(id)"
        token.name = name
        token.scopes = scopes.sorted().map(\.proto)
        token.tenants = Array(Set(tenants)).sorted()
        token.createdAtNanos = now
        token.secretSha256 = Self.hash(secret)
        token.ingestEventsPerSecond = ingestEventsPerSecond
        token.createdBy = createdBy
        try state.withLock { (state: inout State) throws(VigilError) in
            guard state.byHash[token.secretSha256] == nil else {
                throw VigilError(.alreadyExists, "a token with this secret already exists")
            }
            var next = state.tokens
            next.append(token)
            try save(next)
            state.tokens = next
            state.byHash[token.secretSha256] = next.count - 1
            state.active[token.id] = Self.principal(of: token)
        }
        return (token, secret)
    }

    /// Revokes `id`. Revoking a revoked token is not an error: it answers the
    /// token as it is (revocation is idempotent for retries).
    public func revoke(id: String, now: UnixNanos = currentUnixNanos()) throws(VigilError) -> Vigil_V1_StoredToken {
        try state.withLock { (state: inout State) throws(VigilError) -> Vigil_V1_StoredToken in
            guard let index = state.tokens.firstIndex(where: { $0.id == id }) else {
                throw VigilError(.notFound, "no token has id '\(id.prefix(64))'; `vigil token list` shows them")
            }
            if state.tokens[index].revokedAtNanos != 0 { return state.tokens[index] }
            var next = state.tokens
            next[index].revokedAtNanos = now
            try save(next)
            state.tokens = next
            state.active[id] = nil
            return next[index]
        }
    }

    /// Makes sure `secret` is a valid admin token for every tenant (the
    /// operator's bootstrap token). Returns whether it had to be added.
    public func ensureAdmin(secret: String, createdBy: String) throws(VigilError) -> Bool {
        guard secret.utf8.count >= Self.minimumSecretLength else {
            throw VigilError(.invalidArgument, "the admin token must be at least \(Self.minimumSecretLength) characters; `vigil token generate` makes a good one")
        }
        guard !secret.contains(where: { $0.isWhitespace }) else {
            throw VigilError(.invalidArgument, "the admin token must not contain white space")
        }
        if let principal = authenticate(secret) {
            guard principal.scopes.contains(.admin), principal.tenants == .all else {
                throw VigilError(.failedPrecondition, "the given admin token is a token without the admin scope for every tenant (\(principal.displayName))")
            }
            return false
        }
        let known = state.withLock { $0.byHash[Self.hash(secret)] != nil }
        if known {
            throw VigilError(.failedPrecondition, "the given admin token was revoked; give another one")
        }
        _ = try create(name: "admin", scopes: [.admin], tenants: [], createdBy: createdBy, secret: secret)
        return true
    }

    static func check(name: String, scopes: Set<AccessScope>, tenants: [String]) throws(VigilError) {
        guard !name.isEmpty, name.utf8.count <= maxNameBytes else {
            throw VigilError(.invalidArgument, "name must be 1 to \(maxNameBytes) bytes")
        }
        guard !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw VigilError(.invalidArgument, "name must not contain control characters")
        }
        guard !scopes.isEmpty else {
            throw VigilError(.invalidArgument, "scopes must name at least one of ingest, read, admin")
        }
        guard tenants.count <= maxTenants else {
            throw VigilError(.invalidArgument, "tenants holds \(tenants.count) entries; the limit is \(maxTenants)")
        }
        for tenant in tenants {
            if let problem = EventValidator.tenantProblem(tenant, allowReserved: true) {
                throw VigilError(.invalidArgument, "tenant '\(tenant.prefix(128))' \(problem)")
            }
        }
    }

    private func save(_ tokens: [Vigil_V1_StoredToken]) throws(VigilError) {
        var file = Vigil_V1_TokenFile()
        file.formatVersion = 1
        file.tokens = tokens
        let bytes: [UInt8]
        do { bytes = try file.serializedBytes() } catch {
            throw VigilError(.internal, "cannot encode the token file: \(error)")
        }
        // Only hashes, but still nobody else's business (owner-only, as every file Vigil writes).
        try ChecksummedFile.write(payload: bytes, magic: Self.fileMagic, to: path)
    }

    static func randomHex(bytes count: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in
            let byte = UInt8.random(in: 0...255, using: &generator)
            return String(byte, radix: 16).leftPadded(to: 2)
        }.joined()
    }

    static func randomBase64URL(bytes count: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// A new random secret in the token format, for `vigil token generate`.
    public static func generateSecret() -> String {
        "\(secretPrefix)\(randomHex(bytes: 8))_\(randomBase64URL(bytes: 32))"
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

extension Vigil_V1_StoredToken {
    /// The token as the admin calls show it (no hash).
    public var info: Vigil_V1_TokenInfo {
        var info = Vigil_V1_TokenInfo()
        info.id = id
        info.name = name
        info.scopes = scopes
        info.tenants = tenants
        info.createdAt = .init(unixNanos: createdAtNanos)
        if revokedAtNanos != 0 { info.revokedAt = .init(unixNanos: revokedAtNanos) }
        info.ingestEventsPerSecond = ingestEventsPerSecond
        info.createdBy = createdBy
        return info
    }
}
