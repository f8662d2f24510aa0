import Foundation
import Testing
import VigilServer

@Suite("Alert rule sets replaced by a reload")
struct AlertRuleSetTests {
    static func rules(_ json: String) throws -> [AlertRule] {
        try AlertRule.load(path: AlertRuleTests.writeRules(json))
    }

    @Test("a reload reports rules added, changed, removed and unchanged, by name")
    func changesByName() throws {
        let set = AlertRuleSet(try Self.rules("""
            {"rules": [
              {"name": "logins", "filter": {"actions": ["auth.login"]}, "threshold": 3, "window": "1h"},
              {"name": "deletes", "filter": {"actions": ["*.delete"]}, "threshold": 50, "window": "1m"},
              {"name": "roles", "filter": {"actions": ["user_role.assign"]}}
            ]}
            """))
        let changes = set.replace(with: try Self.rules("""
            {"rules": [
              {"name": "logins", "filter": {"actions": ["auth.login"]}, "threshold": 3, "window": "1h"},
              {"name": "deletes", "filter": {"actions": ["*.delete", "*.purge"]}, "threshold": 50, "window": "1m"},
              {"name": "exports", "filter": {"actions": ["data.export"]}}
            ]}
            """))
        #expect(changes.unchanged == ["logins"])
        #expect(changes.changed == ["deletes"], "a different filter is a different rule")
        #expect(changes.added == ["exports"])
        #expect(changes.removed == ["roles"])
        #expect(changes.description == "added exports; changed deletes; removed roles; 1 unchanged")
        #expect(set.rules.map(\.name) == ["logins", "deletes", "exports"])

        let same = set.replace(with: set.rules)
        #expect(same.isEmpty && same.unchanged.count == 3, "the same rules again change nothing")
    }
}
