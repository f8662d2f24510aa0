import Foundation
import Logging
import Synchronization
import Testing
import VigilClient
import VigilCore
import VigilProto
import VigilServer
import VigilStorage

/// The server's metrics as a scraper sees them: scraped over HTTP from the
/// metrics listener and read with a strict parser.
struct MetricsScraper {
    let port: Int

    func scrape() async throws -> PrometheusText {
        let response = try await HTTPProbe.request("GET", "/metrics", port: port)
        #expect(response.status == 200)
        #expect(response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8")
        return try PrometheusText(response.body)
    }
}

/// Runs `body` against a test server with its own metrics registry and a
/// metrics listener on a free port.
func withMetricsServer<R: Sendable>(
    maxTenantLabels: Int = VigilMetrics.defaultMaxTenantLabels,
    store: (any EventStore)? = nil,
    _ body: (TestServer, MetricsScraper) async throws -> R
) async throws -> R {
    try await withTestServer(
        configure: {
            $0.metrics = VigilMetrics(maxTenantLabels: maxTenantLabels)
            $0.metricsListen = ListenAddress(host: "127.0.0.1", port: 0)
        },
        store: store
    ) { server in
        let address = try #require(try await server.server.metricsListeningAddress)
        return try await body(server, MetricsScraper(port: try #require(address.port)))
    }
}

@Suite("Metrics and health")
struct MetricsTests {
    @Test("/metrics parses as Prometheus text; ingest, rejection and query counters move by exactly the workload")
    func countersFollowTheWorkload() async throws {
        try await withMetricsServer { server, scraper in
            let client = try await server.connect()
            let before = try await scraper.scrape()
            // Every catalogued family with fixed labels is there from the start, with HELP and TYPE.
            for name in ["vigil_rejected_calls_total", "vigil_query_duration_seconds", "vigil_connections", "vigil_build_info"] {
                #expect(before.types[name] != nil, "\(name) has no TYPE")
                #expect(before.help[name]?.isEmpty == false, "\(name) has no HELP")
            }
            #expect(before.value("vigil_build_info", ["version": vigilVersion]) == 1)

            // acme: 3 batches of 2, 3, 4 events; globex: 2 batches of 5; one batch of 1 acme + 2 globex.
            for size in [2, 3, 4] { _ = try await client.ingest((0..<size).map { makeTestEvent(index: $0, tenant: "acme") }) }
            for _ in 0..<2 { _ = try await client.ingest((0..<5).map { makeTestEvent(index: $0, tenant: "globex") }) }
            _ = try await client.ingest([makeTestEvent(tenant: "acme"), makeTestEvent(index: 1, tenant: "globex"), makeTestEvent(index: 2, tenant: "globex")])
            // A refused batch: one acme event without an action.
            var bad = makeTestEvent(tenant: "acme")
            bad.action = ""
            await #expect(throws: VigilError.self) { _ = try await client.ingest([bad]) }
            // A refused read: an unknown id.
            await #expect(throws: VigilError.self) { _ = try await client.get(id: randomEventID()) }
            // Two successful reads.
            var query = Vigil_V1_QueryRequest()
            query.filter.tenants = ["acme"]
            var returned = 0
            for try await _ in client.query(query) { returned += 1 }
            #expect(returned == 10)
            let (_, trailers) = try await client.aggregateWithStatistics(Vigil_V1_AggregateRequest())

            let after = try await scraper.scrape()
            func delta(_ name: String, _ labels: [String: String] = [:]) -> Double {
                after.count(name, labels) - before.count(name, labels)
            }
            #expect(delta("vigil_ingest_events_total", ["tenant": "acme", "status": "OK"]) == 10)
            #expect(delta("vigil_ingest_batches_total", ["tenant": "acme", "status": "OK"]) == 4)
            #expect(delta("vigil_ingest_events_total", ["tenant": "globex", "status": "OK"]) == 12)
            #expect(delta("vigil_ingest_batches_total", ["tenant": "globex", "status": "OK"]) == 3)
            #expect(delta("vigil_ingest_events_total", ["tenant": "acme", "status": "INVALID_ARGUMENT"]) == 1)
            #expect(delta("vigil_ingest_batches_total", ["tenant": "acme", "status": "INVALID_ARGUMENT"]) == 1)
            #expect(delta("vigil_ingest_ack_duration_seconds_count") == 6, "successful batches only")
            #expect(delta("vigil_rejected_calls_total", ["code": "INVALID_ARGUMENT"]) == 1)
            #expect(delta("vigil_rejected_calls_total", ["code": "NOT_FOUND"]) == 1)
            #expect(delta("vigil_rejected_calls_total", ["code": "PERMISSION_DENIED"]) == 0)
            #expect(delta("vigil_query_duration_seconds_count", ["method": "Query"]) == 1)
            #expect(delta("vigil_query_duration_seconds_count", ["method": "Aggregate"]) == 1)
            #expect(delta("vigil_query_duration_seconds_count", ["method": "Get"]) == 0, "the failed Get is not timed")
            let scanned = try #require(trailers["vigil.blocks-scanned"].flatMap(Double.init))
            #expect(delta("vigil_query_blocks_scanned_total", ["method": "Aggregate"]) == scanned)
            #expect(delta("vigil_query_blocks_scanned_total", ["method": "Query"]) >= 1)
            // Each histogram's +Inf bucket is its count.
            #expect(after.value("vigil_query_duration_seconds_bucket", ["method": "Query", "le": "+Inf"])
                == after.value("vigil_query_duration_seconds_count", ["method": "Query"]))
            // The store's measurements, through the same registry.
            #expect(delta("vigil_wal_fsync_duration_seconds_count") >= 1)
            #expect(delta("vigil_wal_fsync_batches_sum") >= 6, "every acknowledged batch waited for an fsync")
            #expect(delta("vigil_written_bytes_total", ["file": "wal"]) > 0)
            // Sampled at scrape time.
            #expect(after.value("vigil_stored_events") == 22)
            #expect(after.value("vigil_connections") == 1)
            #expect(after.value("vigil_calls_in_flight") == 0)
            #expect(after.value("vigil_serving") == 1)

            // A flush writes a part: part bytes and parts by level follow. (Compared with
            // the scrape before the workload: maintenance may have flushed already.)
            try await (server.store as! ColumnarEventStore).flushNow()
            let flushed = try await scraper.scrape()
            #expect(flushed.count("vigil_written_bytes_total", ["file": "part"]) > before.count("vigil_written_bytes_total", ["file": "part"]))
            #expect(flushed.count("vigil_parts", ["level": "0"]) >= 1)
            #expect(flushed.value("vigil_memory_events") == 0)
            await client.close()
        }
    }

    @Test("tenant labels are bounded: with room for 3, five more tenants count as tenant=\"_other\"; refused batches take no slot")
    func tenantLabelsAreBounded() async throws {
        try await withMetricsServer(maxTenantLabels: 3) { server, scraper in
            let client = try await server.connect()
            // Refused batches first: their tenants take no slot (a reserved name counts as _invalid).
            for tenant in ["junk-1", "junk-2", "junk-3", "junk-4", "_other"] {
                var bad = makeTestEvent(tenant: tenant)
                bad.action = "not dot notation!"
                await #expect(throws: VigilError.self) { _ = try await client.ingest([bad]) }
            }
            for index in 0..<8 {
                _ = try await client.ingest([makeTestEvent(tenant: "tenant-\(index)")])
            }
            // A refused batch of an admitted tenant keeps its label.
            var bad = makeTestEvent(tenant: "tenant-0")
            bad.action = "not dot notation!"
            await #expect(throws: VigilError.self) { _ = try await client.ingest([bad]) }
            let text = try await scraper.scrape()
            #expect(text.value("vigil_ingest_events_total", ["tenant": "_other", "status": "INVALID_ARGUMENT"]) == 4)
            #expect(text.value("vigil_ingest_events_total", ["tenant": "_invalid", "status": "INVALID_ARGUMENT"]) == 1)
            #expect(text.value("vigil_ingest_events_total", ["tenant": "tenant-0", "status": "INVALID_ARGUMENT"]) == 1)
            for index in 0..<3 {
                #expect(text.value("vigil_ingest_events_total", ["tenant": "tenant-\(index)", "status": "OK"]) == 1)
            }
            #expect(text.value("vigil_ingest_events_total", ["tenant": "_other", "status": "OK"]) == 5)
            #expect(text.value("vigil_ingest_batches_total", ["tenant": "_other", "status": "OK"]) == 5)
            let tenants = Set(text.labelSets("vigil_ingest_events_total").compactMap { $0["tenant"] })
            #expect(tenants == ["tenant-0", "tenant-1", "tenant-2", "_other", "_invalid"])
            await client.close()
        }
    }

    @Test("subscribers and their lag: a subscriber that stops reading 20 events in stays behind; closing it clears both")
    func subscriberLag() async throws {
        try await withMetricsServer { server, scraper in
            let writer = try await server.connect()
            _ = try await writer.ingest((0..<20).map { makeTestEvent(index: $0) })
            let reader = try await server.connect()
            var request = Vigil_V1_SubscribeRequest()
            request.since = .init(unixNanos: 0)
            // A window of 1: the server may send one or two events past what was read, then waits.
            var subscription = reader.subscribe(request, window: 1).makeAsyncIterator()
            _ = try await subscription.next()
            let behind = try await eventually {
                let text = try await scraper.scrape()
                guard text.value("vigil_subscribers") == 1, let lag = text.value("vigil_subscriber_lag_max_events"), lag < 20 else {
                    throw HTTPProbe.Failure(description: "not yet: \(text.value("vigil_subscriber_lag_max_events") ?? -1)")
                }
                return lag
            }
            #expect((18...19).contains(behind), "seq 1 or 2 delivered of 20")
            await reader.close()
            let cleared = try await eventually {
                let text = try await scraper.scrape()
                guard text.value("vigil_subscribers") == 0 else { throw HTTPProbe.Failure(description: "still subscribed") }
                return text
            }
            #expect(cleared.value("vigil_subscriber_lag_max_events") == 0)
            await writer.close()
        }
    }

    @Test(
        "the test's Prometheus parser refuses what a scraper would",
        arguments: [
            "vigil_x 1\n",  // no TYPE
            "# TYPE vigil_x counter\nvigil_x{a=\"b\" 1\n",  // unterminated labels
            "# TYPE vigil_x counter\nvigil_x one\n",  // bad value
            "# TYPE vigil_x counter\nvigil_x -1\n",  // negative counter
            "# TYPE vigil_x counter\n# TYPE vigil_x gauge\n",  // two TYPEs
            "# TYPE vigil_h histogram\nvigil_h_bucket 1\n",  // bucket without le
            "# TYPE vigil_x counter\nvigil_x{1a=\"b\"} 1\n",  // bad label name
            "# TYPE vigil_x counter\nvigil_x 1",  // no final newline
        ])
    func parserIsStrict(_ text: String) {
        #expect(throws: PrometheusText.ParseError.self) { try PrometheusText(text) }
    }

    @Test("/healthz, /readyz, 404 for other paths, 405 for other methods")
    func endpoints() async throws {
        try await withMetricsServer { _, scraper in
            let health = try await HTTPProbe.request("GET", "/healthz", port: scraper.port)
            #expect(health.status == 200)
            #expect(health.body == "ok\n")
            let ready = try await HTTPProbe.request("GET", "/readyz", port: scraper.port)
            #expect(ready.status == 200)
            #expect(ready.body == "ready\n")
            let query = try await HTTPProbe.request("GET", "/metrics?name=x", port: scraper.port)
            #expect(query.status == 200, "a query string does not change the path")
            let head = try await HTTPProbe.request("HEAD", "/metrics", port: scraper.port)
            #expect(head.status == 200)
            #expect(head.body.isEmpty)
            #expect(head.headers["content-length"].flatMap(Int.init).map { $0 > 0 } == true)
            let missing = try await HTTPProbe.request("GET", "/nope", port: scraper.port)
            #expect(missing.status == 404)
            #expect(missing.body == "not found: this listener serves /metrics, /healthz, /readyz\n")
            let post = try await HTTPProbe.request("POST", "/metrics", port: scraper.port)
            #expect(post.status == 405)
            #expect(post.headers["allow"] == "GET, HEAD")
            #expect(post.body == "method POST not allowed: /metrics answers GET and HEAD\n")
        }
    }

    @Test("Health: SERVING with no reasons from a healthy server")
    func healthServing() async throws {
        try await withMetricsServer { server, _ in
            let client = try await server.connect()
            let health = try await client.health()
            #expect(health.status == .serving)
            #expect(health.reasons.isEmpty)
            await client.close()
        }
    }

    @Test("Health: NOT_SERVING with the store's reason; /readyz 503 with it; vigil_serving 0")
    func healthNotServing() async throws {
        let store = try WrappedStore()
        defer { store.removeDirectory() }
        store.problems.withLock { $0 = ["the data disk is full"] }
        try await withMetricsServer(store: store) { server, scraper in
            let client = try await server.connect()
            let health = try await client.health()
            #expect(health.status == .notServing)
            #expect(health.reasons == ["the data disk is full"])
            let ready = try await HTTPProbe.request("GET", "/readyz", port: scraper.port)
            #expect(ready.status == 503)
            #expect(ready.body == "not ready:\n- the data disk is full\n")
            #expect(try await scraper.scrape().value("vigil_serving") == 0)
            // The process is alive all the same.
            #expect(try await HTTPProbe.request("GET", "/healthz", port: scraper.port).status == 200)
            // GetStats carries the same health.
            let stats = try await client.stats()
            #expect(stats.health.status == .notServing)
            #expect(stats.health.reasons == ["the data disk is full"])

            store.problems.withLock { $0 = [] }
            #expect(try await client.health().status == .serving)
            #expect(try await HTTPProbe.request("GET", "/readyz", port: scraper.port).status == 200)
            await client.close()
        }
    }

    @Test("graceful shutdown: /readyz 503 'shutting down' while a call drains, then the metrics listener closes")
    func readinessDuringShutdown() async throws {
        let store = try WrappedStore()
        defer { store.removeDirectory() }
        store.holdAppends()
        let port = try await withMetricsServer(store: store) { server, scraper in
            let client = try await server.connect()
            // Calls in flight hold the drain open: an ingest held inside the store.
            async let ingest = client.ingest([makeTestEvent()])
            try await store.waitForHeldAppend()
            let inFlight = try await scraper.scrape()
            #expect(inFlight.value("vigil_calls_in_flight") == 1)
            await server.shutDown()
            let draining = try await eventually {
                let response = try await HTTPProbe.request("GET", "/readyz", port: scraper.port)
                guard response.status == 503 else { throw HTTPProbe.Failure(description: "still \(response.status)") }
                return response
            }
            #expect(draining.body == "not ready:\n- shutting down: draining connections, no new calls are accepted\n")
            store.releaseAppends()
            let response = try await ingest
            #expect(response.count == 1, "the call in flight finished")
            await client.close()
            return scraper.port
        }
        // After shutdown the listener is gone.
        await #expect(throws: (any Error).self) { _ = try await HTTPProbe.request("GET", "/healthz", port: port) }
    }

    @Test("vigil_checkpoint_last_seconds shows the newest signed checkpoint; a checkpoint that cannot be written counts in vigil_checkpoint_failures_total")
    func checkpointMetrics() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-checkpoint-metrics-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // A regular file where the second server's checkpoint directory should be.
        try Data("not a directory".utf8).write(to: URL(fileURLWithPath: directory + "/blocked"))
        for (checkpoints, works) in [(directory + "/checkpoints", true), (directory + "/blocked/checkpoints", false)] {
            try await withTestServer(configure: {
                $0.metrics = VigilMetrics()
                $0.metricsListen = ListenAddress(host: "127.0.0.1", port: 0)
                $0.checkpoints = CheckpointConfiguration(key: CheckpointKey.generate(), directory: checkpoints, interval: .milliseconds(50))
            }) { server in
                let address = try #require(try await server.server.metricsListeningAddress)
                let scraper = MetricsScraper(port: try #require(address.port))
                #expect(try await scraper.scrape().value("vigil_checkpoint_last_seconds") == 0, "no checkpoint before the first event")
                let client = try await server.connect()
                let before = Double(currentUnixNanos()) / 1e9
                _ = try await client.ingest([makeTestEvent()])
                if works {
                    let last = try await eventually {
                        let value = try #require(try await scraper.scrape().value("vigil_checkpoint_last_seconds"))
                        guard value > 0 else { throw VigilError(.unavailable, "no checkpoint yet") }
                        return value
                    }
                    #expect(last >= before - 1 && last <= Double(currentUnixNanos()) / 1e9 + 1)
                    #expect(try await scraper.scrape().value("vigil_checkpoint_failures_total") == 0)
                } else {
                    try await eventually {
                        let failures = try #require(try await scraper.scrape().value("vigil_checkpoint_failures_total"))
                        guard failures >= 2 else { throw VigilError(.unavailable, "\(failures) failures so far") }
                    }
                    #expect(try await scraper.scrape().value("vigil_checkpoint_last_seconds") == 0)
                }
                await client.close()
            }
        }
    }

    @Test("a retention pass that fails is counted in vigil_maintenance_failures_total{task=\"retention\"}, not as a failed flush or merge")
    func retentionFailureMetric() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-retention-metrics-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let metrics = VigilMetrics()
        var options = StorageOptions(directory: directory + "/data")
        options.retentionNanos = 10 * 86_400_000_000_000
        options.archiveDirectory = directory + "/archive"
        options.metrics = metrics.storage
        let store = try ColumnarEventStore(options: options)
        // A part of events 20 days old (the store takes them: the server is
        // what refuses events past retention), which the first retention
        // pass must move to the archive, where another file already has its
        // name: the pass fails, and keeps failing.
        var old = makeTestEvent()
        old.occurredAt = .init(unixNanos: currentUnixNanos() - 20 * 86_400_000_000_000)
        _ = try await store.append([old], idempotencyKey: nil, wantReceipts: false)
        try await store.flushNow()
        let parts = try #require(FileManager.default.enumerator(atPath: directory + "/data/parts")?.allObjects as? [String])
        let part = try #require(parts.first { $0.hasSuffix(".part") }, "\(parts)")
        let blocker = directory + "/archive/parts/" + part
        try FileManager.default.createDirectory(atPath: (blocker as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data("another file".utf8).write(to: URL(fileURLWithPath: blocker))

        try await withTestServer(configure: {
            $0.metrics = metrics
            $0.metricsListen = ListenAddress(host: "127.0.0.1", port: 0)
        }, store: store) { server in
            let address = try #require(try await server.server.metricsListeningAddress)
            let scraper = MetricsScraper(port: try #require(address.port))
            try await eventually {
                let failures = try #require(try await scraper.scrape().value("vigil_maintenance_failures_total", ["task": "retention"]))
                guard failures >= 1 else { throw VigilError(.unavailable, "no failure yet") }
            }
            #expect(try await scraper.scrape().value("vigil_maintenance_failures_total", ["task": "flush"]) == 0)
            #expect(try await scraper.scrape().value("vigil_maintenance_failures_total", ["task": "merge"]) == 0)
            let stats = try await store.statistics()
            #expect(stats.eventsStored == 1, "the expired event stays while its pass fails")
        }
    }

    @Test("64 connections that never ask anything (every slot) do not lock probes out: each new connection makes room by closing the one idle longest")
    func silentConnectionsDoNotLockOutProbes() async throws {
        try await withMetricsServer { _, scraper in
            // More than the limit: whenever the server has taken them all
            // (a loaded machine accepts late), every slot was full.
            var silent: [PlainSocket] = []
            for _ in 0..<70 { silent.append(try PlainSocket(port: scraper.port)) }
            for _ in 0..<3 {
                let answer = try await HTTPProbe.request("GET", "/healthz", port: scraper.port)
                #expect(answer.status == 200)
                #expect(answer.body == "ok\n")
            }
            withExtendedLifetime(silent) {}
        }
    }

    @Test(
        "at its limit the listener closes a connection that has waited longest for a request, not the one opened first (a scraper's keep-alive connection)",
        .timeLimit(.minutes(3)))
    func evictionSparesTheConnectionJustAnswered() async throws {
        try await withMetricsServer { _, scraper in
            // Opened first, as a Prometheus server's connection is.
            let first = try PlainSocket(port: scraper.port)
            #expect(try await first.healthz())
            // The rest of the slots, each asked once: they wait for a request
            // from their answer on, in this order.
            var others: [PlainSocket] = []
            for index in 1..<64 {
                let socket = try PlainSocket(port: scraper.port)
                #expect(try await socket.healthz())
                others.append(socket)
                // Asked again every few, so that on a loaded machine (a second
                // per request) its wait never reaches the 10 s request deadline.
                if index % 4 == 0 { #expect(try await first.healthz()) }
            }
            // The first is asked again: it now waits the least.
            #expect(try await first.healthz())
            let newcomer = try PlainSocket(port: scraper.port)
            #expect(try await newcomer.healthz(), "the 65th connection is answered")
            // The one evicted is the first of the others (or, on a machine slow
            // enough for this to take 10 s, the request deadline closed it).
            #expect(try await others[0].closed(within: .seconds(10)))
            #expect(try await first.healthz(), "the connection opened first and answered last stays")
        }
    }

    @Test("a request sent a byte at a time is closed 10 s after the connection opened, however often bytes come", .timeLimit(.minutes(3)))
    func dribbledRequestIsClosed() async throws {
        try await withMetricsServer { _, scraper in
            let socket = try PlainSocket(port: scraper.port)
            let opened = ContinuousClock.now
            var closed = false
            for byte in Array("GET /metrics HTTP/1.1\r\nX-Slow: ".utf8) + Array(repeating: UInt8(ascii: "a"), count: 40) {
                socket.send([byte])
                if try await socket.closed(within: .milliseconds(500)) {
                    closed = true
                    break
                }
            }
            let elapsed = ContinuousClock.now - opened
            #expect(closed, "still open after \(elapsed)")
            // Not before its 10 s. After, by how late this test sees the close: under
            // the whole suite that can be many seconds. The bytes above go on for
            // 36 s at least, so a timer that restarted with each byte never closes it.
            #expect(elapsed >= .seconds(9) && elapsed <= .seconds(35), "closed after \(elapsed)")
        }
    }

    @Test("a metrics port already in use: the server does not start, and says which address", .timeLimit(.minutes(2)))
    func metricsPortInUse() async throws {
        try await withMetricsServer { _, scraper in
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-metrics-\(UUID().uuidString)").path
            defer { try? FileManager.default.removeItem(atPath: directory) }
            var configuration = ServerConfiguration()
            configuration.port = 0
            configuration.metricsListen = ListenAddress(host: "127.0.0.1", port: scraper.port)
            var logger = Logger(label: "vigil.test")
            logger.logLevel = .critical
            let second = VigilServer(
                configuration: configuration, store: try ColumnarEventStore(options: StorageOptions(directory: directory)), logger: logger)
            do {
                try await second.run()
                Issue.record("the second server started on a port in use")
            } catch let error as VigilError {
                #expect(error.code == .unavailable)
                #expect(error.message.hasPrefix("cannot listen for metrics on 127.0.0.1:\(scraper.port):"), "\(error.message)")
            }
        }
    }
}

/// A real store behind the `EventStore` protocol, with health problems a
/// test sets and appends it can hold inside the store.
final class WrappedStore: EventStore {
    let inner: ColumnarEventStore
    let directory: String
    let problems = Mutex<[String]>([])
    private let hold = Mutex(false)
    /// Appends still to refuse with UNAVAILABLE, as a failing disk would.
    private let refusals = Mutex(0)
    private let held: AsyncStream<Void>
    private let heldSignal: AsyncStream<Void>.Continuation
    private let release: AsyncStream<Void>
    private let releaseSignal: AsyncStream<Void>.Continuation

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-wrapped-\(UUID().uuidString)").path
        var options = StorageOptions(directory: directory)
        options.retentionNanos = nil
        inner = try ColumnarEventStore(options: options)
        (held, heldSignal) = AsyncStream.makeStream()
        (release, releaseSignal) = AsyncStream.makeStream()
    }

    func removeDirectory() { try? FileManager.default.removeItem(atPath: directory) }

    func holdAppends() { hold.withLock { $0 = true } }
    func refuseAppends(_ count: Int) { refusals.withLock { $0 = count } }
    func releaseAppends() { releaseSignal.finish() }

    /// Returns once an append is being held.
    func waitForHeldAppend() async throws {
        for await _ in held { return }
        throw HTTPProbe.Failure(description: "no append arrived")
    }

    var healthProblems: [String] { problems.withLock { $0 } }

    func append(_ events: [AuditEvent], idempotencyKey: String?, wantReceipts: Bool) async throws(VigilError) -> AppendResult {
        let refuse = refusals.withLock { count in
            defer { count = max(0, count - 1) }
            return count > 0
        }
        if refuse { throw VigilError(.unavailable, "the test's store refuses this append (a failing disk)") }
        if hold.withLock({ $0 }) {
            heldSignal.yield()
            for await _ in release {}
        }
        return try await inner.append(events, idempotencyKey: idempotencyKey, wantReceipts: wantReceipts)
    }

    func scan(filter: EventFilter, order: Vigil_V1_Order, after cursor: QueryCursor?, limit: Int) async throws(VigilError) -> ScanPage {
        try await inner.scan(filter: filter, order: order, after: cursor, limit: limit)
    }

    func aggregate(_ query: AggregateQuery) async throws(VigilError) -> AggregateResult { try await inner.aggregate(query) }

    func scanBySeq(filter: EventFilter, after: UInt64, through: UInt64, limit: Int) async throws(VigilError) -> ScanPage {
        try await inner.scanBySeq(filter: filter, after: after, through: through, limit: limit)
    }

    var feed: CommitFeed { inner.feed }
    func get(id: EventID) async throws(VigilError) -> AuditEvent? { try await inner.get(id: id) }
    func runMaintenance() async throws { try await inner.runMaintenance() }
    func close() async throws(VigilError) { try await inner.close() }
    func chainHead() async throws(VigilError) -> (seq: UInt64, head: ChainDigest) { try await inner.chainHead() }
    func chainCut() -> (seq: UInt64, head: ChainDigest)? { inner.chainCut() }
    func verify(_ options: VerificationOptions) async throws(VigilError) -> IntegrityReport { try await inner.verify(options) }
    func statistics() async throws(VigilError) -> StoreStatistics { try await inner.statistics() }
}

extension PlainSocket {
    /// Asks `/healthz` on this (kept-alive) connection; true once the whole
    /// answer came, false if the server closed the connection first.
    func healthz(within timeout: Duration = .seconds(30)) async throws -> Bool {
        send(Array("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8))
        let deadline = ContinuousClock.now + timeout
        var received: [UInt8] = []
        let end = Array("\r\n\r\nok\n".utf8)
        while ContinuousClock.now < deadline {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if count == 0 || (count < 0 && errno != EAGAIN && errno != EWOULDBLOCK) { return false }
            if count > 0 {
                received += buffer[..<count]
                if received.count >= end.count && Array(received.suffix(end.count)) == end { return true }
                continue
            }
            // Bounded polling of a condition: the answer to arrive.
            try await Task.sleep(for: .milliseconds(5))
        }
        return false
    }
}
