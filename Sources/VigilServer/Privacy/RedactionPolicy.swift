import Crypto
import Foundation
import VigilCore
import VigilProto

/// Privacy controls applied at ingest, before an event is stored (and so
/// before it is hash-chained): what a rule removes or rewrites never reaches
/// the disk. Loaded from `--redaction-rules FILE` (JSON):
///
/// ```json
/// {"hashKeyFile": "/etc/vigil/redaction.key",
///  "rules": [
///    {"tenants": ["acme"], "dropMetadata": ["password", "ssn"]},
///    {"hash": ["actor.email", "sourceIp"]},
///    {"mask": ["actor.name", "metadata.card", "changes.password"]}]}
/// ```
///
/// A rule without `tenants` applies to every tenant. Fields: `actor.id`,
/// `actor.name`, `actor.email`, `resource.id`, `resource.name`, `sourceIp`,
/// `userAgent`, `description`, `reason`, `metadata.<key>`, `changes.<field>`
/// (its old and new values).
/// - `hash`: a keyed hash (HMAC-SHA256, the key from `hashKeyFile` or
///   `$VIGIL_REDACTION_KEY`), so equal values stay equal and still group and
///   filter, but cannot be read back: `hmac:` and 32 hex digits; an IP becomes
///   an IPv6 address in fd00::/8 (it stays an address).
/// - `mask`: e-mails keep their domain (`b***@acme.test`), IPs keep their
///   network (IPv4 /24, IPv6 /48), other text keeps its first character.
public struct RedactionPolicy: Sendable {
    public enum Field: Sendable, Hashable {
        case actorID, actorName, actorEmail, resourceID, resourceName, sourceIP, userAgent, description, reason
        case metadata(String)
        case changes(String)

        init?(_ text: String) {
            switch text {
            case "actor.id": self = .actorID
            case "actor.name": self = .actorName
            case "actor.email": self = .actorEmail
            case "resource.id": self = .resourceID
            case "resource.name": self = .resourceName
            case "sourceIp": self = .sourceIP
            case "userAgent": self = .userAgent
            case "description": self = .description
            case "reason": self = .reason
            default:
                if text.hasPrefix("metadata."), text.count > 9 { self = .metadata(String(text.dropFirst(9))) }
                else if text.hasPrefix("changes."), text.count > 8 { self = .changes(String(text.dropFirst(8))) }
                else { return nil }
            }
        }
    }

    public struct Rule: Sendable {
        /// nil: every tenant.
        public var tenants: Set<String>?
        public var dropMetadata: Set<String> = []
        public var hash: [Field] = []
        public var mask: [Field] = []
    }

    public var rules: [Rule]
    let key: SymmetricKey?

    public init(rules: [Rule], hashKey: [UInt8]?) {
        self.rules = rules
        self.key = hashKey.map { SymmetricKey(data: $0) }
    }

    public struct LoadError: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    static let fieldNames = "actor.id, actor.name, actor.email, resource.id, resource.name, sourceIp, userAgent, description, reason, metadata.<key>, changes.<field>"
    /// A shorter key would make the hashes guessable by brute force over small value sets.
    public static let minimumKeyBytes = 32

    public static func load(path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> RedactionPolicy {
        guard let data = FileManager.default.contents(atPath: path) else { throw LoadError("\(path) cannot be read") }
        guard let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw LoadError("\(path) is not a JSON object")
        }
        for key in root.keys where !["rules", "hashKeyFile"].contains(key) {
            throw LoadError("\(path): unknown key '\(key)' (known: rules, hashKeyFile)")
        }
        guard let list = root["rules"] as? [Any] else { throw LoadError("\(path): \"rules\" must be a list") }
        var rules: [Rule] = []
        for (index, item) in list.enumerated() {
            let at = "\(path): rules[\(index)]"
            guard let object = item as? [String: Any] else { throw LoadError("\(at) is not an object") }
            for key in object.keys where !["tenants", "dropMetadata", "hash", "mask"].contains(key) {
                throw LoadError("\(at): unknown key '\(key)' (known: tenants, dropMetadata, hash, mask)")
            }
            var rule = Rule()
            if let tenants = object["tenants"] {
                guard let list = tenants as? [String], !list.isEmpty else { throw LoadError("\(at).tenants must be a non-empty list of tenants") }
                rule.tenants = Set(list)
            }
            if let keys = object["dropMetadata"] {
                guard let list = keys as? [String] else { throw LoadError("\(at).dropMetadata must be a list of metadata keys") }
                rule.dropMetadata = Set(list)
            }
            for (name, target) in [("hash", \Rule.hash), ("mask", \Rule.mask)] {
                guard let value = object[name] else { continue }
                guard let list = value as? [String] else { throw LoadError("\(at).\(name) must be a list of fields") }
                rule[keyPath: target] = try list.map { text in
                    guard let field = Field(text) else {
                        throw LoadError("\(at).\(name): '\(text)' is not a field (known: \(fieldNames))")
                    }
                    return field
                }
            }
            guard !rule.dropMetadata.isEmpty || !rule.hash.isEmpty || !rule.mask.isEmpty else {
                throw LoadError("\(at) does nothing: give dropMetadata, hash or mask")
            }
            rules.append(rule)
        }
        var key: [UInt8]?
        if let file = root["hashKeyFile"] {
            guard let file = file as? String, let bytes = FileManager.default.contents(atPath: file) else {
                throw LoadError("\(path): hashKeyFile must name a readable file")
            }
            key = Array(bytes)
        } else if let text = environment["VIGIL_REDACTION_KEY"] {
            key = Array(text.utf8)
        }
        if rules.contains(where: { !$0.hash.isEmpty }) {
            guard let key else {
                throw LoadError("\(path): rules hash fields, so a key is needed: set hashKeyFile or $VIGIL_REDACTION_KEY (at least \(minimumKeyBytes) bytes, e.g. `head -c 32 /dev/urandom > redaction.key`)")
            }
            guard key.count >= minimumKeyBytes else {
                throw LoadError("\(path): the hash key has \(key.count) bytes; it needs at least \(minimumKeyBytes)")
            }
        }
        return RedactionPolicy(rules: rules, hashKey: key)
    }

    /// Applies every rule that concerns the event's tenant.
    public func apply(to event: inout AuditEvent) {
        for rule in rules where rule.tenants?.contains(event.tenant) ?? true {
            if !rule.dropMetadata.isEmpty {
                event.metadata = event.metadata.filter { !rule.dropMetadata.contains($0.key) }
            }
            for field in rule.hash { rewrite(field, of: &event, with: hashed) }
            for field in rule.mask { rewrite(field, of: &event, with: masked) }
        }
    }

    private func rewrite(_ field: Field, of event: inout AuditEvent, with transform: (String, Field) -> String) {
        func apply(_ value: inout String) {
            if !value.isEmpty { value = transform(value, field) }
        }
        switch field {
        case .actorID: apply(&event.actor.id)
        case .actorName: apply(&event.actor.name)
        case .actorEmail: apply(&event.actor.email)
        case .resourceID: apply(&event.resource.id)
        case .resourceName: apply(&event.resource.name)
        case .sourceIP: apply(&event.sourceIp)
        case .userAgent: apply(&event.userAgent)
        case .description: apply(&event.description_p)
        case .reason: apply(&event.reason)
        case .metadata(let key):
            if var value = event.metadata[key] {
                apply(&value)
                event.metadata[key] = value
            }
        case .changes(let name):
            for index in event.changes.indices where event.changes[index].field == name {
                apply(&event.changes[index].old)
                apply(&event.changes[index].new)
            }
        }
    }

    private func hashed(_ value: String, _ field: Field) -> String {
        guard let key else { return value }
        let digest = Array(HMAC<SHA256>.authenticationCode(for: Data(value.utf8), using: key))
        if field == .sourceIP {
            // fd00::/8 (unique local): the result is still an address.
            return IPAddress(bytes: [UInt8(0xfd)] + digest.prefix(15)).description
        }
        return "hmac:" + digest.prefix(16).map { String(format: "%02x", $0) }.joined()
    }

    private func masked(_ value: String, _ field: Field) -> String {
        switch field {
        case .sourceIP:
            guard let address = IPAddress(value) else { return value }
            // IPv4 keeps its /24, IPv6 its /48: the network, not the host.
            let kept = address.isIPv4 ? 3 : 6
            return IPAddress(bytes: Array(address.bytes.prefix(kept)) + Array(repeating: 0, count: address.bytes.count - kept)).description
        case .actorEmail:
            if let at = value.lastIndex(of: "@") {
                return String(value.prefix(1)) + "***" + value[at...]
            }
            return String(value.prefix(1)) + "***"
        default:
            return String(value.prefix(1)) + "***"
        }
    }
}
