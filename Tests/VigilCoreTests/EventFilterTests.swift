import Testing
import VigilCore
import VigilProto

@Suite("EventFilter")
struct EventFilterTests {
    static let t0: UnixNanos = 1_780_000_000_000_000_000

    func event(
        at time: UnixNanos = EventFilterTests.t0, tenant: String = "acme", actor: String = "u-1", action: String = "auth.login",
        resourceType: String = "user", resourceID: String = "u-2", outcome: Vigil_V1_Outcome = .success
    ) -> AuditEvent {
        var event = AuditEvent()
        event.occurredAt = .init(unixNanos: time)
        event.tenant = tenant
        event.actor.id = actor
        event.action = action
        event.resource.type = resourceType
        event.resource.id = resourceID
        event.outcome = outcome
        return event
    }

    func compile(_ configure: (inout Vigil_V1_Filter) -> Void) throws -> EventFilter {
        var message = Vigil_V1_Filter()
        configure(&message)
        return try EventFilter(message)
    }

    /// Expects compiling to fail with INVALID_ARGUMENT mentioning `field`.
    func expectInvalid(
        _ field: String, sourceLocation: SourceLocation = #_sourceLocation, _ configure: (inout Vigil_V1_Filter) -> Void
    ) {
        var message = Vigil_V1_Filter()
        configure(&message)
        let error = #expect(throws: VigilError.self, sourceLocation: sourceLocation) {
            try EventFilter(message)
        }
        #expect(error?.code == .invalidArgument, sourceLocation: sourceLocation)
        #expect(error?.message.hasPrefix("filter.\(field) ") == true, "\(String(describing: error))", sourceLocation: sourceLocation)
    }

    // MARK: - Compile errors

    @Test("until must be later than since")
    func untilNotAfterSince() {
        expectInvalid("until") {
            $0.since = .init(unixNanos: Self.t0)
            $0.until = .init(unixNanos: Self.t0)
        }
        expectInvalid("until") {
            $0.since = .init(unixNanos: Self.t0)
            $0.until = .init(unixNanos: Self.t0 - 1)
        }
    }

    @Test("one-sided and 1 ns time ranges compile")
    func oneSidedRanges() throws {
        _ = try compile { $0.since = .init(unixNanos: Self.t0) }
        _ = try compile { $0.until = .init(unixNanos: Self.t0) }
        _ = try compile {
            $0.since = .init(unixNanos: Self.t0)
            $0.until = .init(unixNanos: Self.t0 + 1)
        }
    }

    @Test("bad action patterns are refused", arguments: ["", "*", ".*", "auth*", "auth.", "auth..*", "auth.*.login", "auth.**", "auth .*", "auth/login"])
    func badActionPattern(pattern: String) {
        expectInvalid("actions") { $0.actions = ["user.create", pattern] }
    }

    @Test("bad tenants are refused; reserved tenants may be queried")
    func badTenant() throws {
        expectInvalid("tenants") { $0.tenants = ["acme corp"] }
        expectInvalid("tenants") { $0.tenants = [""] }
        expectInvalid("tenants") { $0.tenants = ["acme", "a/b"] }
        let filter = try compile { $0.tenants = ["_system", "acme"] }
        #expect(filter.tenants == ["_system", "acme"])
    }

    @Test("lists hold at most maxListEntries entries")
    func tooManyEntries() throws {
        let many = (0...EventFilter.maxListEntries).map { "t\($0)" }
        expectInvalid("tenants") { $0.tenants = many }
        expectInvalid("actorIds") { $0.actorIds = many }
        expectInvalid("resourceIds") { $0.resourceIds = many }
        _ = try compile { $0.tenants = Array(many.dropLast()) }
    }

    @Test("unknown outcomes are refused")
    func unknownOutcome() {
        expectInvalid("outcomes") { $0.outcomes = [.success, .UNRECOGNIZED(42)] }
    }

    // MARK: - Matching

    @Test("an empty filter matches every event")
    func emptyFilter() throws {
        let filter = try compile { _ in }
        #expect(filter.matches(event()))
        #expect(filter.matches(event(at: 0, tenant: "_system", action: "x")))
        #expect(filter.matches(event(at: .min)))
        #expect(filter.matchesAction("anything"))
    }

    @Test("exact actions match only themselves")
    func exactAction() throws {
        let filter = try compile { $0.actions = ["user.create"] }
        #expect(filter.matches(event(action: "user.create")))
        #expect(!filter.matches(event(action: "user.created")))
        #expect(!filter.matches(event(action: "user")))
        #expect(!filter.matches(event(action: "user.create.bulk")))
    }

    @Test("auth.* matches auth.login and auth.mfa.verify, not authz.check nor auth")
    func prefixAction() throws {
        let filter = try compile { $0.actions = ["auth.*"] }
        #expect(filter.actionPrefixes == ["auth."])
        #expect(filter.matchesAction("auth.login"))
        #expect(filter.matchesAction("auth.mfa.verify"))
        #expect(!filter.matchesAction("authz.check"))
        #expect(!filter.matchesAction("auth"))
        #expect(!filter.matchesAction("user.auth.login"))
        #expect(filter.matches(event(action: "auth.login")))
        #expect(!filter.matches(event(action: "authz.check")))
    }

    @Test("exact actions and prefixes combine with OR")
    func mixedActions() throws {
        let filter = try compile { $0.actions = ["user.create", "auth.mfa.*"] }
        #expect(filter.matchesAction("user.create"))
        #expect(filter.matchesAction("auth.mfa.verify"))
        #expect(!filter.matchesAction("auth.login"))
        #expect(!filter.matchesAction("user.delete"))
    }

    @Test("outcomes")
    func outcomes() throws {
        let filter = try compile { $0.outcomes = [.failure, .denied] }
        #expect(filter.matches(event(outcome: .failure)))
        #expect(filter.matches(event(outcome: .denied)))
        #expect(!filter.matches(event(outcome: .success)))
        #expect(!filter.matches(event(outcome: .unspecified)))
    }

    @Test("tenants, actors, resource types and ids")
    func lists() throws {
        let tenants = try compile { $0.tenants = ["acme", "globex"] }
        #expect(tenants.matches(event(tenant: "acme")))
        #expect(tenants.matches(event(tenant: "globex")))
        #expect(!tenants.matches(event(tenant: "initech")))
        #expect(!tenants.matches(event(tenant: "ACME")))

        let actors = try compile { $0.actorIds = ["u-1"] }
        #expect(actors.matches(event(actor: "u-1")))
        #expect(!actors.matches(event(actor: "u-10")))

        let resources = try compile {
            $0.resourceTypes = ["user"]
            $0.resourceIds = ["u-2", "u-3"]
        }
        #expect(resources.matches(event(resourceType: "user", resourceID: "u-3")))
        #expect(!resources.matches(event(resourceType: "group", resourceID: "u-3")))
        #expect(!resources.matches(event(resourceType: "user", resourceID: "u-4")))
    }

    @Test("since is inclusive, until exclusive")
    func timeBounds() throws {
        let filter = try compile {
            $0.since = .init(unixNanos: Self.t0)
            $0.until = .init(unixNanos: Self.t0 + 1_000)
        }
        #expect(!filter.matches(event(at: Self.t0 - 1)))
        #expect(filter.matches(event(at: Self.t0)))
        #expect(filter.matches(event(at: Self.t0 + 999)))
        #expect(!filter.matches(event(at: Self.t0 + 1_000)))

        let sinceOnly = try compile { $0.since = .init(unixNanos: Self.t0) }
        #expect(sinceOnly.matches(event(at: Self.t0 + 1_000_000_000_000_000_000)))
        #expect(!sinceOnly.matches(event(at: Self.t0 - 1)))

        let untilOnly = try compile { $0.until = .init(unixNanos: Self.t0) }
        #expect(untilOnly.matches(event(at: 0)))
        #expect(!untilOnly.matches(event(at: Self.t0)))
    }

    @Test("every condition must hold")
    func conjunction() throws {
        let filter = try compile {
            $0.tenants = ["acme"]
            $0.actions = ["auth.*"]
            $0.outcomes = [.failure]
        }
        #expect(filter.matches(event(tenant: "acme", action: "auth.login", outcome: .failure)))
        #expect(!filter.matches(event(tenant: "globex", action: "auth.login", outcome: .failure)))
        #expect(!filter.matches(event(tenant: "acme", action: "user.create", outcome: .failure)))
        #expect(!filter.matches(event(tenant: "acme", action: "auth.login", outcome: .success)))
    }

    @Test("equal filters share a fingerprint; different ones do not")
    func fingerprint() throws {
        let a = try compile { $0.tenants = ["acme"]; $0.actions = ["auth.*"] }
        let b = try compile { $0.tenants = ["acme"]; $0.actions = ["auth.*"] }
        let c = try compile { $0.tenants = ["acme"]; $0.actions = ["auth.login"] }
        let d = try compile { $0.tenants = ["acme"]; $0.actions = ["auth.*"]; $0.since = .init(unixNanos: 0) }
        #expect(a.fingerprint == b.fingerprint)
        #expect(a.fingerprint != c.fingerprint)
        #expect(a.fingerprint != d.fingerprint)
    }
}
