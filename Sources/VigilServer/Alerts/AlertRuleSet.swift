import Synchronization

/// The alert rules an `AlertEngine` runs, replaceable while it runs (SIGHUP
/// reloads the rules file). The engine picks up a new set before its next
/// batch; a rule that is the same as before keeps its open windows.
public final class AlertRuleSet: Sendable {
    private let state: Mutex<(generation: UInt64, rules: [AlertRule])>

    public init(_ rules: [AlertRule]) {
        state = Mutex((0, rules))
    }

    public var rules: [AlertRule] { state.withLock { $0.rules } }

    var snapshot: (generation: UInt64, rules: [AlertRule]) { state.withLock { $0 } }

    /// Replaces the rules; returns what changed, by rule name.
    @discardableResult
    public func replace(with rules: [AlertRule]) -> Changes {
        state.withLock { state in
            let changes = Changes(old: state.rules, new: rules)
            if !changes.isEmpty {
                state.generation += 1
                state.rules = rules
            }
            return changes
        }
    }

    /// The difference between two rule lists, by name.
    public struct Changes: Sendable, CustomStringConvertible {
        public var added: [String] = []
        public var removed: [String] = []
        public var changed: [String] = []
        public var unchanged: [String] = []

        init(old: [AlertRule], new: [AlertRule]) {
            for rule in new {
                if let before = old.first(where: { $0.name == rule.name }) {
                    if before.sameDefinition(as: rule) { unchanged.append(rule.name) } else { changed.append(rule.name) }
                } else {
                    added.append(rule.name)
                }
            }
            removed = old.map(\.name).filter { name in !new.contains { $0.name == name } }
        }

        public var isEmpty: Bool { added.isEmpty && removed.isEmpty && changed.isEmpty }

        public var description: String {
            var parts: [String] = []
            if !added.isEmpty { parts.append("added \(added.joined(separator: ","))") }
            if !changed.isEmpty { parts.append("changed \(changed.joined(separator: ","))") }
            if !removed.isEmpty { parts.append("removed \(removed.joined(separator: ","))") }
            parts.append("\(unchanged.count) unchanged")
            return parts.joined(separator: "; ")
        }
    }
}

extension AlertRule {
    /// Whether `other` counts and fires exactly as this rule does (so its
    /// open windows carry over a reload).
    func sameDefinition(as other: AlertRule) -> Bool {
        name == other.name && threshold == other.threshold && window == other.window && groupBy == other.groupBy
            && filter.fingerprint == other.filter.fingerprint
    }
}
