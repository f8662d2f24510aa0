import Testing
import VigilCore
import VigilProto
@testable import VigilStorage

/// Client-chosen ids are unique only within a batch: two tenants may use the
/// same one, and a lookup restricted to one tenant must find that tenant's.
@Suite("Get by an id two tenants share")
struct SharedIDTests {
    @Test("each tenant's lookup finds its own event, from memory and from parts, whichever is stored first")
    func sharedClientID() async throws {
        try await QueryReference.withStore { store in
            let id = "0191f6e4-8a3b-7c2d-9e1f-0a1b2c3d4e5f"
            var stored: [String: AuditEvent] = [:]
            for (index, tenant) in ["acme", "globex"].enumerated() {
                var event = AggregateLimitTests.event(actor: index, at: Int64(index))
                event.tenant = tenant
                event.id = id
                stored[tenant] = try await QueryReference.append([event], to: store)[0]
            }
            let eventID = try #require(EventID(id))
            for place in ["memory", "parts"] {
                if place == "parts" { try await store.flushNow() }
                for tenant in ["acme", "globex"] {
                    let found = try await store.get(id: eventID, tenantAllowed: { $0 == tenant })
                    #expect(found == stored[tenant], "\(tenant) from \(place): \(String(describing: found?.tenant))")
                }
                #expect(try await store.get(id: eventID, tenantAllowed: { $0 == "initech" }) == nil, "\(place)")
            }
        }
    }
}
