import VigilCore
import VigilProto

/// The fixed vocabulary the generator draws from: tenants, actors, actions,
/// resource pools, addresses, user agents. Built once from a seed and then
/// read-only, so one instance can feed any number of generators.
///
/// The shapes follow real audit logs: a few large tenants and a long tail of
/// small ones, a handful of actions (logins, token refreshes, reads) making up
/// most of the volume, resource types that follow from the action, failures
/// clustered on logins.
public final class EventVocabulary: Sendable {
    // MARK: Tunables (the documented shape of the data)

    /// Tenants, Zipf-distributed by event volume (exponent 1.0: the largest has
    /// about 22% of the events, the smallest about 0.4%).
    public static let tenantNames: [String] = [
        "acme", "globex", "initech", "umbrella", "hooli", "stark-industries", "wayne-enterprises", "cyberdyne",
        "soylent", "tyrell", "wonka", "aperture", "black-mesa", "massive-dynamic", "oscorp", "vandelay",
        "pied-piper", "dunder-mifflin", "gringotts", "monarch", "nakatomi", "prestige-worldwide", "virtucon",
        "weyland-yutani", "zorg", "gekko-co", "bluth-company", "sterling-cooper", "los-pollos", "kramerica",
        "contoso", "fabrikam", "northwind", "tailspin", "woodgrove", "litware", "proseware", "adventure-works",
        "fourth-coffee", "wingtip", "lucerne", "margies-travel", "alpine-ski", "coho-vineyard", "datum",
        "humongous", "trey-research", "southridge", "blue-yonder", "graphic-design",
    ]
    public static let tenantZipfExponent = 1.0
    /// Users across all tenants (each belongs to one tenant, in proportion to its volume, at least 5).
    public static let targetUserCount = 5_000
    /// Resource ids across all pooled types (pods, objects, nodes, ...).
    public static let targetResourceCount = 200_000
    public static let ipPoolSize = 20_000
    /// The share of events whose outcome is not SUCCESS.
    public static let failureShare = 0.05

    // MARK: Types

    public enum ActorKind: Int, Sendable, CaseIterable {
        case user, token, system
    }

    /// What an action is about.
    public enum Target: Sendable, Equatable {
        /// The acting user itself (logins, logouts, password resets).
        case actorSelf
        /// Another user of the same tenant.
        case user
        /// One of the tenant's API tokens.
        case token
        /// A pooled resource of this type.
        case pooled(String)
    }

    public struct Action: Sendable {
        public let name: String
        public let category: Vigil_V1_Category
        public let target: Target
        /// Relative frequency.
        public let weight: Double
        /// Probability of a user, a token, the system as the actor (normalized).
        public let actorMix: [Double]
        /// Failure probability: fixed for logins, a multiplier of the calibrated base otherwise.
        public let loginFailureRate: Double?
        public let failureFactor: Double
        public let failureReasons: [String]
        /// Fields a change record may name (updates only).
        public let changeFields: [String]

        public var resourceType: String {
            switch target {
            case .actorSelf, .user: "user"
            case .token: "token"
            case .pooled(let type): type
            }
        }
    }

    public struct User: Sendable {
        public let id: String
        public let name: String
        public let email: String
        public let tenant: Int
    }

    public struct Token: Sendable {
        public let id: String
        public let name: String
        public let tenant: Int
    }

    /// A resource type's slice of the pool: ids `prefix-<n>` for n in `base ..< base + count`,
    /// split among tenants in proportion to their volume.
    public struct ResourcePool: Sendable {
        public let type: String
        public let prefix: String
        /// Per tenant: (first index, count).
        public let slices: [(start: Int, count: Int)]
        public var total: Int { slices.reduce(0) { $0 + $1.count } }
    }

    // MARK: Data

    public let tenantWeights: [Double]
    let tenantTable: WeightedTable
    public let users: [User]
    /// Indexes into `users`, per tenant.
    public let usersByTenant: [[Int]]
    public let tokens: [Token]
    public let tokensByTenant: [[Int]]
    public let actions: [Action]
    let actionTable: WeightedTable
    /// Failure probability of each action, calibrated so the total is `failureShare`.
    public let failureRates: [Double]
    public let resourcePools: [String: ResourcePool]
    public let ipAddresses: [String]
    public let userAgents: [String]
    public let systemUserAgents: [String]

    public init(seed: UInt64) {
        var random = BenchRandom(seed: seed ^ 0x766f_6361_6275_6c61)  // "vocabula"

        // Tenants.
        let weights = Self.tenantNames.indices.map { 1.0 / Double($0 + 1) }
        tenantWeights = weights
        tenantTable = WeightedTable(weights)
        let weightSum = weights.reduce(0, +)

        // Users, tenant by tenant.
        var users: [User] = []
        var usersByTenant: [[Int]] = []
        var number = 100_000
        for (tenant, weight) in weights.enumerated() {
            let count = max(5, Int((Double(Self.targetUserCount) * weight / weightSum).rounded()))
            var members: [Int] = []
            var emails = Set<String>()
            for _ in 0..<count {
                number += 1
                let first = Self.firstNames[random.below(Self.firstNames.count)]
                let last = Self.lastNames[random.below(Self.lastNames.count)]
                var local = "\(first.lowercased()).\(last.lowercased())"
                if emails.contains(local) { local += String(number % 1000) }
                emails.insert(local)
                members.append(users.count)
                users.append(User(
                    id: "u-\(number)", name: "\(first) \(last)",
                    email: "\(local)@\(Self.tenantNames[tenant]).example", tenant: tenant))
            }
            usersByTenant.append(members)
        }
        self.users = users
        self.usersByTenant = usersByTenant

        // API tokens: about one per 25 users, at least one per tenant.
        var tokens: [Token] = []
        var tokensByTenant: [[Int]] = []
        for (tenant, members) in usersByTenant.enumerated() {
            var owned: [Int] = []
            for index in 0..<max(1, members.count / 25) {
                owned.append(tokens.count)
                tokens.append(Token(
                    id: "tok_" + random.hex(bytes: 8),
                    name: Self.tokenNames[(index + tenant) % Self.tokenNames.count], tenant: tenant))
            }
            tokensByTenant.append(owned)
        }
        self.tokens = tokens
        self.tokensByTenant = tokensByTenant

        // Actions, and failure rates calibrated to `failureShare` overall.
        actions = Self.actionList
        actionTable = WeightedTable(actions.map(\.weight))
        let totalWeight = actions.reduce(0) { $0 + $1.weight }
        let fixedFailures = actions.reduce(0) { $0 + $1.weight * ($1.loginFailureRate ?? 0) }
        let scaled = actions.reduce(0) { $0 + ($1.loginFailureRate == nil ? $1.weight * $1.failureFactor : 0) }
        let base = max(0, (Self.failureShare * totalWeight - fixedFailures) / scaled)
        failureRates = actions.map { $0.loginFailureRate ?? min(0.5, base * $0.failureFactor) }

        // Resource pools: every pooled type gets a share of `targetResourceCount`.
        var pools: [String: ResourcePool] = [:]
        let shareSum = Self.poolShares.reduce(0) { $0 + $1.share }
        for entry in Self.poolShares {
            let total = Int(Double(Self.targetResourceCount) * entry.share / shareSum)
            var slices: [(Int, Int)] = []
            var start = 0
            for weight in weights {
                let count = max(3, Int(Double(total) * weight / weightSum))
                slices.append((start, count))
                start += count
            }
            pools[entry.type] = ResourcePool(type: entry.type, prefix: entry.prefix, slices: slices)
        }
        resourcePools = pools

        // Addresses: 85% IPv4, 15% IPv6, in canonical text form.
        var addresses: [String] = []
        addresses.reserveCapacity(Self.ipPoolSize)
        for _ in 0..<Self.ipPoolSize {
            let text: String
            if random.unit() < 0.85 {
                let first = Self.ipv4FirstOctets[random.below(Self.ipv4FirstOctets.count)]
                text = "\(first).\(random.below(256)).\(random.below(256)).\(1 + random.below(254))"
            } else {
                let first = Self.ipv6Prefixes[random.below(Self.ipv6Prefixes.count)]
                let groups = (0..<7).map { _ in String(1 + random.below(0xFFFF), radix: 16) }
                text = ([String(first, radix: 16)] + groups).joined(separator: ":")
            }
            addresses.append(IPAddress(text)?.description ?? text)
        }
        ipAddresses = addresses
        userAgents = Self.browserAgents
        systemUserAgents = Self.systemAgents
    }

    /// The index of `name` among the tenants (0 is the largest).
    public func tenantIndex(_ name: String) -> Int? {
        Self.tenantNames.firstIndex(of: name)
    }

    // MARK: Pools of words

    static let firstNames = [
        "Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Mallory", "Niaj",
        "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter", "Yara", "Zoe", "Aisha", "Bruno",
        "Chen", "Dmitri", "Elena", "Farah", "Goran", "Hiro", "Ines", "Jonas", "Kavya", "Lars", "Mei", "Nadia",
        "Omar", "Priya", "Quentin", "Rosa", "Sven",
    ]
    static let lastNames = [
        "Smith", "Johnson", "Garcia", "Miller", "Davis", "Martinez", "Lopez", "Wilson", "Anderson", "Thomas",
        "Taylor", "Moore", "Jackson", "Martin", "Lee", "Thompson", "White", "Harris", "Clark", "Lewis", "Walker",
        "Young", "Allen", "King", "Wright", "Scott", "Nguyen", "Hill", "Adams", "Baker", "Mueller", "Schmidt",
        "Rossi", "Tanaka", "Kowalski", "Novak", "Dubois", "Silva", "Ivanova", "Okafor",
    ]
    static let tokenNames = [
        "ci-deploy", "terraform", "backup-job", "monitoring", "billing-sync", "data-export", "github-actions",
        "argo-cd", "siem-forwarder", "scim-provisioner",
    ]
    static let ipv4FirstOctets = [3, 13, 18, 23, 34, 35, 44, 52, 54, 64, 66, 73, 81, 91, 98, 104, 142, 151, 185, 188, 203, 212]
    static let ipv6Prefixes: [Int] = [0x2001, 0x2400, 0x2600, 0x2604, 0x2a00, 0x2a02, 0x2a01, 0x2c0f]
    static let browserAgents = [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
        "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36 Edg/123.0.2420.97",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
        "kubectl/v1.29.2 (linux/amd64) kubernetes/4b8e819",
        "kubectl/v1.30.0 (darwin/arm64) kubernetes/7c48c2b",
        "terraform/1.7.4 (+https://www.terraform.io) terraform-provider-vigil/0.3.1",
        "python-requests/2.31.0",
        "Go-http-client/1.1",
        "curl/8.5.0",
        "vigil-cli/0.1.0",
        "aws-cli/2.15.30 Python/3.11.8 Linux/6.1.0 exe/x86_64.debian.12",
        "okhttp/4.12.0",
        "PostmanRuntime/7.37.0",
        "Slackbot 1.0 (+https://api.slack.com/robots)",
        "GitHub-Hookshot/7b3f1a2",
        "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
    ]
    static let systemAgents = ["vigil-scheduler/1.4.2", "kube-controller-manager/v1.29.2", "cluster-autoscaler/1.29.0"]

    static let poolShares: [(type: String, prefix: String, share: Double)] = [
        ("pod", "pod", 60), ("object", "obj", 50), ("resource", "res", 40), ("deployment", "deploy", 10),
        ("node", "node", 8), ("secret", "secret", 10), ("acl", "acl", 6), ("policy", "pol", 3), ("group", "grp", 3),
        ("role", "role", 1), ("bucket", "bkt", 2), ("webhook", "hook", 1), ("approval", "apr", 4),
        ("invoice", "inv", 1), ("settings", "settings", 0.2), ("plan", "plan", 0.2), ("export", "exp", 0.6),
    ]

    /// The actions: name, category, target, weight, actor mix (user, token, system),
    /// failure behaviour, change fields.
    static let actionList: [Action] = {
        let people = [0.86, 0.12, 0.02]
        let machines = [0.25, 0.35, 0.40]
        func action(
            _ name: String, _ category: Vigil_V1_Category, _ target: Target, _ weight: Double,
            actors: [Double] = people, login: Double? = nil, factor: Double = 1, reasons: [String] = [],
            changes: [String] = []
        ) -> Action {
            Action(
                name: name, category: category, target: target, weight: weight, actorMix: actors,
                loginFailureRate: login, failureFactor: factor,
                failureReasons: reasons.isEmpty ? ["permission denied", "quota exceeded", "conflict: resource was modified"] : reasons,
                changeFields: changes)
        }
        let loginReasons = ["invalid password", "invalid password", "unknown user", "account locked", "mfa required", "ip not allowed"]
        let userFields = ["role", "status", "email", "display_name", "mfa_enabled"]
        return [
            action("auth.login", .login, .actorSelf, 180, actors: [1, 0, 0], login: 0.13, reasons: loginReasons),
            action("credential.token_refresh", .login, .token, 140, actors: [0.3, 0.7, 0], login: 0.025,
                   reasons: ["refresh token expired", "token revoked"]),
            action("resource.read", .read, .pooled("resource"), 90, factor: 0.5),
            action("object.read", .read, .pooled("object"), 70, actors: [0.5, 0.5, 0], factor: 0.5),
            action("pod.restart", .execute, .pooled("pod"), 45, actors: [0.2, 0.2, 0.6]),
            action("resource.execute", .execute, .pooled("resource"), 40, actors: [0.35, 0.6, 0.05], factor: 1.5),
            action("auth.logout", .logout, .actorSelf, 40, actors: [1, 0, 0], factor: 0),
            action("object.write", .create, .pooled("object"), 35, actors: [0.4, 0.6, 0]),
            action("node.update", .update, .pooled("node"), 30, actors: [0.2, 0.3, 0.5],
                   changes: ["labels.env", "schedulable", "taints", "kernel_version"]),
            action("deployment.update", .update, .pooled("deployment"), 25, actors: machines,
                   changes: ["image", "replicas", "strategy"]),
            action("pod.create", .create, .pooled("pod"), 22, actors: machines),
            action("pod.delete", .delete, .pooled("pod"), 20, actors: machines),
            action("secret.read", .read, .pooled("secret"), 18, actors: [0.4, 0.55, 0.05], factor: 2),
            action("auth.mfa.verify", .login, .actorSelf, 18, actors: [1, 0, 0], login: 0.08,
                   reasons: ["mfa code expired", "mfa code invalid"]),
            action("resource.update", .update, .pooled("resource"), 16, changes: ["visibility", "owner", "tags"]),
            action("user.read", .read, .user, 14, factor: 0.5),
            action("acl.update", .update, .pooled("acl"), 12, factor: 3, changes: ["permissions", "principal"]),
            action("pod.exec", .execute, .pooled("pod"), 10, factor: 3),
            action("resource.create", .create, .pooled("resource"), 10),
            action("deployment.scale", .update, .pooled("deployment"), 9, actors: machines, changes: ["replicas"]),
            action("auth.sso.login", .login, .actorSelf, 9, actors: [1, 0, 0], login: 0.05,
                   reasons: ["saml assertion expired", "idp rejected the login"]),
            action("user.update", .update, .user, 8, changes: userFields),
            action("node.drain", .execute, .pooled("node"), 7, actors: machines),
            action("pod.logs.read", .read, .pooled("pod"), 7, factor: 0.5),
            action("resource.delete", .delete, .pooled("resource"), 6, factor: 2),
            action("object.delete", .delete, .pooled("object"), 6, actors: [0.5, 0.5, 0]),
            action("webhook.deliver", .execute, .pooled("webhook"), 6, actors: [0, 0, 1],
                   reasons: ["endpoint returned 500", "endpoint timed out"]),
            action("acl.read", .read, .pooled("acl"), 5),
            action("policy.update", .update, .pooled("policy"), 5, factor: 3, changes: ["rules", "effect"]),
            action("deployment.create", .create, .pooled("deployment"), 4, actors: machines),
            action("resource.export", .other, .pooled("resource"), 4, factor: 2),
            action("resource.share", .update, .pooled("resource"), 4, factor: 2, changes: ["visibility", "shared_with"]),
            action("secret.update", .update, .pooled("secret"), 3, factor: 3, changes: ["version", "rotation_policy"]),
            action("user.create", .create, .user, 3),
            action("group.member.add", .update, .pooled("group"), 3, changes: ["members"]),
            action("role.assign", .update, .pooled("role"), 3, factor: 3, changes: ["role"]),
            action("node.create", .create, .pooled("node"), 2, actors: machines),
            action("node.reboot", .execute, .pooled("node"), 2, actors: machines),
            action("deployment.rollback", .execute, .pooled("deployment"), 2, actors: machines),
            action("auth.password.reset", .update, .actorSelf, 2, actors: [1, 0, 0], factor: 2,
                   reasons: ["reset link expired", "password too weak"], changes: ["password_changed_at"]),
            action("credential.create", .create, .token, 2, actors: [1, 0, 0]),
            action("credential.rotate", .update, .token, 2, actors: [0.5, 0.3, 0.2], changes: ["expires_at", "scopes"]),
            action("settings.update", .update, .pooled("settings"), 2, factor: 3, changes: ["sso_enforced", "session_timeout"]),
            action("bucket.policy.update", .update, .pooled("bucket"), 1.5, factor: 3, changes: ["public_access", "versioning"]),
            action("approval.request", .create, .pooled("approval"), 1.5),
            action("approval.approve", .approve, .pooled("approval"), 1.2),
            action("approval.reject", .reject, .pooled("approval"), 0.4),
            action("secret.create", .create, .pooled("secret"), 1.2),
            action("group.member.remove", .update, .pooled("group"), 1.2, changes: ["members"]),
            action("user.invite", .create, .user, 1),
            action("role.revoke", .update, .pooled("role"), 0.8, factor: 3, changes: ["role"]),
            action("policy.create", .create, .pooled("policy"), 0.8, factor: 2),
            action("billing.invoice.read", .read, .pooled("invoice"), 0.8),
            action("audit.export", .other, .pooled("export"), 0.6, factor: 2),
            action("user.suspend", .update, .user, 0.5, factor: 2, changes: ["status"]),
            action("credential.revoke", .delete, .token, 0.5),
            action("node.delete", .delete, .pooled("node"), 0.5, actors: machines),
            action("bucket.create", .create, .pooled("bucket"), 0.4),
            action("webhook.create", .create, .pooled("webhook"), 0.3),
            action("group.create", .create, .pooled("group"), 0.3),
            action("secret.delete", .delete, .pooled("secret"), 0.3, factor: 3),
            action("policy.delete", .delete, .pooled("policy"), 0.2, factor: 3),
            action("user.delete", .delete, .user, 0.2, factor: 2),
            action("billing.plan.update", .update, .pooled("plan"), 0.1, factor: 2, changes: ["plan", "seats"]),
        ]
    }()

    /// Old/new values a change of `field` may show.
    static func changeValues(_ field: String) -> [String] {
        switch field {
        case "role": ["viewer", "editor", "admin", "owner", "billing"]
        case "status": ["active", "suspended", "invited", "deactivated"]
        case "mfa_enabled", "schedulable", "sso_enforced", "public_access", "versioning": ["true", "false"]
        case "labels.env": ["dev", "staging", "prod"]
        case "taints": ["", "dedicated=gpu:NoSchedule", "node.kubernetes.io/unreachable:NoExecute"]
        case "kernel_version": ["6.1.0-18-amd64", "6.1.0-20-amd64", "6.6.15-cloud"]
        case "image": ["registry.example/app:v1.41.2", "registry.example/app:v1.42.0", "registry.example/app:v1.42.1"]
        case "replicas", "seats": ["1", "2", "3", "4", "6", "8", "12", "24"]
        case "strategy": ["RollingUpdate", "Recreate"]
        case "visibility": ["private", "team", "organization", "public"]
        case "permissions": ["read", "read,write", "read,write,admin", "none"]
        case "effect": ["allow", "deny"]
        case "rotation_policy": ["30d", "90d", "never"]
        case "session_timeout": ["15m", "1h", "8h", "24h"]
        case "plan": ["free", "team", "business", "enterprise"]
        case "scopes": ["ingest", "read", "ingest,read", "admin"]
        default: []
        }
    }

    static let metadataKeys = [
        "region", "env", "cluster", "namespace", "client_version", "session_id", "geo_country", "auth_method",
        "http_status", "latency_ms",
    ]

    static func metadataValues(_ key: String) -> [String] {
        switch key {
        case "region": ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2", "ap-northeast-1"]
        case "env": ["prod", "staging", "dev"]
        case "cluster": ["prod-eu-1", "prod-us-1", "prod-us-2", "staging-1", "dev-shared"]
        case "namespace": ["default", "payments", "checkout", "search", "auth", "monitoring", "kube-system"]
        case "client_version": ["1.14.0", "1.14.2", "1.15.0", "2.0.0-beta.3"]
        case "geo_country": ["US", "DE", "GB", "FR", "JP", "BR", "IN", "NL", "CA", "AU"]
        case "auth_method": ["password", "sso", "webauthn", "api_token"]
        case "http_status": ["200", "201", "204", "400", "403", "404", "409", "500"]
        default: []
        }
    }
}

/// A deterministic pseudo-random generator: xoshiro256** seeded through
/// SplitMix64. Its own `below`/`unit` keep the streams identical across Swift
/// versions (the standard library's `random(in:using:)` algorithm may change).
public struct BenchRandom: RandomNumberGenerator, Sendable {
    private var s0, s1, s2, s3: UInt64

    public init(seed: UInt64) {
        var x = seed
        func splitMix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitMix()
        s1 = splitMix()
        s2 = splitMix()
        s3 = splitMix()
    }

    public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = s3 << 45 | s3 >> 19
        return result
    }

    /// Uniform in `0 ..< bound` (bound > 0).
    public mutating func below(_ bound: Int) -> Int {
        Int(UInt64(bound).multipliedFullWidth(by: next()).high)
    }

    /// Uniform in [0, 1).
    public mutating func unit() -> Double {
        Double(next() >> 11) * 0x1p-53
    }

    /// `bytes` random bytes as lowercase hex.
    public mutating func hex(bytes: Int) -> String {
        var text = ""
        text.reserveCapacity(bytes * 2)
        var remaining = bytes
        while remaining > 0 {
            var word = next()
            for _ in 0..<min(8, remaining) {
                text.append(Self.hexDigits[Int(word >> 4 & 0xF)])
                text.append(Self.hexDigits[Int(word & 0xF)])
                word >>= 8
            }
            remaining -= 8
        }
        return text
    }

    static let hexDigits: [Character] = Array("0123456789abcdef")
}

/// Samples an index with probability proportional to its weight.
struct WeightedTable: Sendable {
    let cumulative: [Double]

    init(_ weights: [Double]) {
        var sum = 0.0
        cumulative = weights.map { weight in
            sum += weight
            return sum
        }
    }

    func sample(_ random: inout BenchRandom) -> Int {
        let target = random.unit() * (cumulative.last ?? 0)
        var low = 0
        var high = cumulative.count - 1
        while low < high {
            let middle = (low + high) / 2
            if cumulative[middle] > target { high = middle } else { low = middle + 1 }
        }
        return low
    }
}
