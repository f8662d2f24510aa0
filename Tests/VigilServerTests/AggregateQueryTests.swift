import Foundation
import SwiftProtobuf
import Testing
import VigilClient
import VigilCore
import VigilProto
import VigilStorage

/// Aggregate, query statistics and deadlines over a real connection, against
/// a store whose events are partly in parts (small blocks) and partly in memory.
@Suite("Aggregate, statistics and deadlines over a real connection")
struct AggregateQueryTests {
    static let hour: Int64 = 3_600_000_000_000

    /// 6,000 events over 3 tenants and 10 hours, the first 5,000 flushed to parts of 256-row blocks.
    static func withLoadedServer(_ body: (TestServer, [AuditEvent]) async throws -> Void) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-agg-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var options = StorageOptions(directory: directory)
        options.retentionNanos = nil
        options.rowsPerBlock = 256
        let store = try ColumnarEventStore(options: options)
        let base = (currentUnixNanos() / hour - 12) * hour
        let actions = ["auth.login", "auth.logout", "user.create", "user.delete", "acl.update"]
        let outcomes: [Vigil_V1_Outcome] = [.success, .success, .success, .failure, .denied, .unspecified]
        var events: [AuditEvent] = []
        for index in 0..<6_000 {
            var event = makeEvent(
                tenant: ["acme", "globex", "initech"][index % 3], actor: "u-\(index % 37)", action: actions[index % 5],
                at: base + Int64(index) * (10 * hour / 6_000), outcome: outcomes[index % 6],
                resourceType: ["user", "node"][index % 2], resourceID: "r-\(index % 101)")
            event.category = Vigil_V1_Category(rawValue: index % 4) ?? .unspecified
            event.sourceIp = index % 7 == 0 ? "" : "10.0.\(index % 5).\(index % 200)"
            events.append(event)
        }
        var stored: [AuditEvent] = []
        for start in stride(from: 0, to: events.count, by: 1_000) {
            let batch = Array(events[start..<start + 1_000])
            let result = try await store.append(batch, idempotencyKey: nil)
            for (offset, var event) in batch.enumerated() {
                event.seq = result.firstSeq + UInt64(offset)
                stored.append(event)
            }
            if start < 5_000 { try await store.flushNow() }
        }
        try await withTestServer(store: store) { server in try await body(server, stored) }
    }

    func aggregate(_ client: VigilClient, _ configure: (inout Vigil_V1_AggregateRequest) -> Void) async throws -> Vigil_V1_AggregateResponse {
        var request = Vigil_V1_AggregateRequest()
        configure(&request)
        return try await client.unary(.aggregate, request)
    }

    static func key(_ event: AuditEvent, _ field: Vigil_V1_GroupBy) -> String {
        switch field {
        case .action: event.action
        case .actor: event.actor.id
        case .resourceType: event.resource.type
        case .outcome: EnumNames.outcome(Int32(event.outcome.rawValue))
        case .tenant: event.tenant
        case .category: EnumNames.category(Int32(event.category.rawValue))
        case .sourceIp: event.sourceIp
        default: ""
        }
    }

    @Test("counts, top-N groups of every field and histograms equal a brute-force count")
    func aggregates() async throws {
        try await Self.withLoadedServer { server, events in
            let client = try await server.connect()
            defer { Task { await client.close() } }
            let filters: [(String, (inout Vigil_V1_Filter) -> Void)] = [
                ("everything", { _ in }),
                ("one tenant", { $0.tenants = ["globex"] }),
                ("not success", { $0.excludeOutcomes = [.success] }),
                ("auth.* in a window", {
                    $0.actions = ["auth.*"]
                    $0.since = .init(unixNanos: events[1_000].occurredAt.unixNanos)
                    $0.until = .init(unixNanos: events[4_321].occurredAt.unixNanos)
                }),
                ("a network", { $0.sourceIps = ["10.0.3.0/24"] }),
            ]
            for (name, configure) in filters {
                var message = Vigil_V1_Filter()
                configure(&message)
                let reference = try EventFilter(message)
                let matching = events.filter(reference.matches)
                for field in [Vigil_V1_GroupBy.action, .actor, .resourceType, .outcome, .tenant, .category, .sourceIp] {
                    let response = try await aggregate(client) {
                        $0.filter = message
                        $0.groupBy = field
                        $0.top = 3
                    }
                    var expected: [String: UInt64] = [:]
                    for event in matching { expected[Self.key(event, field), default: 0] += 1 }
                    let sorted = expected.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
                    #expect(response.count == UInt64(matching.count), "\(name) by \(field)")
                    #expect(response.groups.map(\.key) == sorted.prefix(3).map(\.key), "\(name) by \(field)")
                    #expect(response.groups.map(\.count) == sorted.prefix(3).map(\.value), "\(name) by \(field)")
                    #expect(response.groupTotal == UInt64(sorted.count), "\(name) by \(field)")
                    #expect(response.otherCount == sorted.dropFirst(3).reduce(0) { $0 + $1.value }, "\(name) by \(field)")
                }
                let histogram = try await aggregate(client) {
                    $0.filter = message
                    $0.histogramInterval = .init(seconds: 1_800)
                }
                var buckets: [Int64: UInt64] = [:]
                let width = Self.hour / 2
                for event in matching { buckets[event.occurredAt.unixNanos / width * width, default: 0] += 1 }
                if let first = buckets.keys.min(), let last = buckets.keys.max() {
                    let expected = stride(from: first, through: last, by: Int(width)).map { buckets[$0] ?? 0 }
                    #expect(histogram.histogram.map(\.count) == expected, "\(name)")
                    #expect(histogram.histogram.first?.start.unixNanos == first, "\(name)")
                } else {
                    #expect(histogram.histogram.isEmpty)
                }
            }
        }
    }

    @Test("whole blocks are counted from their statistics, and the trailers say so")
    func countsFromStatistics() async throws {
        try await Self.withLoadedServer { server, events in
            let client = try await server.connect()
            defer { Task { await client.close() } }
            var request = Vigil_V1_AggregateRequest()
            request.groupBy = .outcome
            let (response, trailers) = try await client.aggregateWithStatistics(request)
            #expect(response.count == UInt64(events.count))
            let fromStatistics = Int(trailers["vigil.blocks-from-statistics"] ?? "") ?? 0
            #expect(fromStatistics > 10, "\(trailers)")
        }
    }

    @Test("a selective query skips blocks by their statistics and finds every match; trailers report the work")
    func blockSkipping() async throws {
        try await Self.withLoadedServer { server, events in
            let client = try await server.connect()
            defer { Task { await client.close() } }
            let wanted = events.filter { $0.resource.id == "r-7" && $0.tenant == "acme" }
            var request = Vigil_V1_QueryRequest()
            request.filter.tenants = ["acme"]
            request.filter.resourceIds = ["r-7"]
            request.order = .oldestFirst
            var pages = client.queryPages(request).makeAsyncIterator()
            var found: [AuditEvent] = []
            while let page = try await pages.next() { found += page.events }
            #expect(found.map(\.seq) == wanted.map(\.seq))
            let trailers = pages.trailers
            #expect((Int(trailers["vigil.blocks-skipped"] ?? "") ?? 0) > 0, "\(trailers)")
            #expect((Int(trailers["vigil.blocks-scanned"] ?? "") ?? 0) > 0, "\(trailers)")
            #expect(trailers["vigil.rows-examined"] != nil && trailers["vigil.bytes-decompressed"] != nil)
        }
    }

    @Test(
        "bad aggregate requests are refused with INVALID_ARGUMENT",
        arguments: [
            "group_by", "top", "short interval", "long interval", "too many buckets", "filter", "filter.last", "filter.until",
        ])
    func badAggregates(_ problem: String) async throws {
        try await Self.withLoadedServer { server, _ in
            let client = try await server.connect()
            defer { Task { await client.close() } }
            if problem == "too many buckets" {
                // Two events two days apart: 172,800 one-second buckets.
                let now = currentUnixNanos()
                _ = try await client.ingest([makeEvent(tenant: "far", at: now - 2 * 86_400_000_000_000), makeEvent(tenant: "far", at: now)])
            }
            let error = await expectVigilError(.invalidArgument) {
                _ = try await aggregate(client) { request in
                    switch problem {
                    case "group_by": request.groupBy = .UNRECOGNIZED(99)
                    case "top": request.top = 1_001
                    case "short interval": request.histogramInterval = .init(seconds: 0, nanos: 999_999_999)
                    case "long interval": request.histogramInterval = .init(seconds: 367 * 86_400)
                    case "too many buckets":
                        request.histogramInterval = .init(seconds: 1)
                        request.filter.tenants = ["far"]
                    case "filter.last":
                        request.filter.last = .init(seconds: 3_600)
                        request.filter.since = .init(unixNanos: 0)
                    case "filter.until":
                        // Far below what nanoseconds since 1970 can hold: it must be refused, not overflow.
                        request.filter.until = .init(seconds: -10_000_000_000, nanos: 0)
                    default: request.filter.sourceIps = ["10.0.0.0/33"]
                    }
                }
            }
            switch problem {
            case "group_by": #expect(error?.message.contains("group_by") == true)
            case "top": #expect(error?.message.contains("top") == true)
            case "filter": #expect(error?.message.hasPrefix("filter.sourceIps") == true)
            case "filter.last": #expect(error?.message.hasPrefix("filter.last") == true)
            case "filter.until": #expect(error?.message.hasPrefix("filter.until") == true)
            case "too many buckets": #expect(error?.message.contains("buckets") == true)
            default: #expect(error?.message.contains("histogram_interval") == true)
            }
        }
    }

    @Test("a histogram's bucket limit counts the matching events' span, not that of the blocks they share with others")
    func histogramOfNarrowFilter() async throws {
        try await withTestServer { server in
            let client = try await server.connect()
            defer { Task { await client.close() } }
            // One batch, three days apart: in one chunk, then in one block.
            let now = currentUnixNanos()
            var login = makeEvent(tenant: "acme", at: now - 3 * 86_400_000_000_000)
            login.action = "auth.login"
            var create = makeEvent(tenant: "acme", at: now)
            create.action = "user.create"
            _ = try await client.ingest([login, create])
            for flushed in [false, true] {
                if flushed { try await #require(server.store as? ColumnarEventStore).flushNow() }
                let answer = try await aggregate(client) {
                    $0.filter.tenants = ["acme"]
                    $0.filter.actions = ["auth.login"]
                    $0.histogramInterval = .init(seconds: 1)
                }
                #expect(answer.count == 1, "flushed: \(flushed)")
                #expect(answer.histogram.map(\.count) == [1], "flushed: \(flushed)")
            }
            // Both events in one-second buckets are over the limit: refused, as before.
            let error = await expectVigilError(.invalidArgument) {
                _ = try await aggregate(client) {
                    $0.filter.tenants = ["acme"]
                    $0.histogramInterval = .init(seconds: 1)
                }
            }
            #expect(error?.message.contains("buckets") == true)
        }
    }

    @Test("a deadline on a long scan ends it with DEADLINE_EXCEEDED promptly, and the server serves the next call")
    func deadline() async throws {
        try await Self.withLoadedServer { server, events in
            let client = try await server.connect()
            defer { Task { await client.close() } }
            // A search that matches nothing reads every searched column of every block.
            var request = Vigil_V1_QueryRequest()
            request.filter.search = "no-such-text-anywhere"
            let started = ContinuousClock.now
            _ = await expectVigilError(.deadlineExceeded) {
                for _ in 0..<20 {
                    for try await _ in client.query(request, timeout: .milliseconds(1)) {}
                }
            }
            // Generous: it only has to be far below a full scan's time on a loaded 2-core machine.
            #expect(ContinuousClock.now - started < .seconds(20))
            let count = try await aggregate(client) { _ in }
            #expect(count.count == UInt64(events.count))
        }
    }

    @Test("an Aggregate answer larger than the client's frame limit is refused with RESOURCE_EXHAUSTED, not sent")
    func answerOverFrameLimit() async throws {
        try await withTestServer { server in
            var configuration = server.clientConfiguration
            configuration.maxFrameSize = 131_072
            let client = try await VigilClient.connect(configuration)
            defer { Task { await client.close() } }
            // 1,000 actors with 250-byte ids: the top 1,000 groups are about 260 KB.
            let padding = String(repeating: "x", count: 245)
            for start in stride(from: 0, to: 1_000, by: 250) {
                _ = try await client.ingest((start..<start + 250).map { makeEvent(actor: "\(padding)-\($0)") })
            }
            var request = Vigil_V1_AggregateRequest()
            request.groupBy = .actor
            request.top = 1_000
            let error = await expectVigilError(.resourceExhausted) { _ = try await client.aggregate(request) }
            #expect(error?.message.contains("frame limit") == true, "\(String(describing: error))")
            request.top = 100
            let fits = try await client.aggregate(request)
            #expect(fits.groups.count == 100 && fits.groupTotal == 1_000)
        }
    }
}
