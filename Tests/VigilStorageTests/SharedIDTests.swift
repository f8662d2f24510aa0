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

@Suite("Filters of many ids")
struct ManyIDFilterTests {
    @Test("a list of many trace or request ids (hashed, not compared one by one) selects exactly their events, from memory and from parts")
    func manyIDs() async throws {
        try await QueryReference.withStore { store in
            var events: [AuditEvent] = []
            for index in 0..<300 {
                var event = AggregateLimitTests.event(actor: index % 7, at: Int64(index))
                // Hex trace ids (stored as raw bytes), text request ids, some of each empty.
                if index % 10 != 0 { event.traceID = String(format: "%032x", index * 7_919) }
                if index % 11 != 0 { event.requestID = "req-\(index)" }
                events.append(event)
            }
            let stored = try await QueryReference.append(events, to: store)
            var message = Vigil_V1_Filter()
            message.traceIds = stride(from: 1, to: 300, by: 13).map { String(format: "%032x", $0 * 7_919) } + ["0123456789abcdef0123456789abcdef", "not-hex"]
            var requests = Vigil_V1_Filter()
            requests.requestIds = stride(from: 0, to: 300, by: 17).map { "req-\($0)" } + ["req-none"]
            for place in ["memory", "parts"] {
                if place == "parts" { try await store.flushNow() }
                for (name, filterMessage) in [("trace ids", message), ("request ids", requests)] {
                    let filter = try EventFilter(filterMessage)
                    let reference = QueryReference.expected(stored, filter, order: .newestFirst)
                    #expect(reference.count > 10, "\(name): the test selects something")
                    let page = try await store.scan(filter: filter, order: .newestFirst, after: nil, limit: 1_000)
                    #expect(page.events.map(\.seq) == reference.map(\.seq), "\(name) from \(place)")
                }
            }
        }
    }
}
