import Foundation
import SwiftProtobuf
import Synchronization
import Testing
import VigilClient
import VigilCore
import VigilProto

/// A long-running `vigil` process (such as `vigil tail`) whose standard output
/// and error are collected line by line as they come.
final class StreamingProcess: Sendable {
    private struct Output {
        var stdout = Data()
        var stderr = Data()
        var stdoutClosed = false
        var stderrClosed = false
    }

    let process: Process
    private let output = Mutex(Output())

    init(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = VigilBinary.url
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        self.process = process
        for (handle, isStdout) in [(out.fileHandleForReading, true), (err.fileHandleForReading, false)] {
            Thread.detachNewThread { [self] in
                while true {
                    let chunk = handle.availableData
                    self.output.withLock { output in
                        if isStdout {
                            output.stdout.append(chunk)
                            if chunk.isEmpty { output.stdoutClosed = true }
                        } else {
                            output.stderr.append(chunk)
                            if chunk.isEmpty { output.stderrClosed = true }
                        }
                    }
                    if chunk.isEmpty { return }
                }
            }
        }
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// The complete lines written to standard output so far.
    var lines: [String] {
        output.withLock { output in
            let text = String(decoding: output.stdout, as: UTF8.self)
            var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            lines.removeLast()  // what follows the last newline: an incomplete line, or nothing
            return lines
        }
    }

    var stderr: String { output.withLock { String(decoding: $0.stderr, as: UTF8.self) } }

    /// The events printed so far with `--format json`.
    func events() throws -> [AuditEvent] {
        try lines.map { try AuditEvent(jsonString: $0) }
    }

    /// Waits until the output satisfies `condition` (or the process exits, or time runs out).
    func waitUntil(_ what: String, timeout: Duration = .seconds(60), _ condition: (StreamingProcess) async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while try await !condition(self) {
            guard process.isRunning else {
                throw CLITestError("vigil exited (status \(process.terminationStatus)) before \(what); stderr: \(stderr)")
            }
            guard ContinuousClock.now < deadline else {
                throw CLITestError("timed out waiting until \(what); stdout: \(lines.suffix(5)); stderr: \(stderr)")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Sends SIGINT and waits for the process and its output to end.
    func interrupt() async throws -> Int32 {
        process.interrupt()
        let deadline = ContinuousClock.now + .seconds(30)
        while process.isRunning || !output.withLock({ $0.stdoutClosed && $0.stderrClosed }) {
            guard ContinuousClock.now < deadline else { throw CLITestError("vigil did not stop on SIGINT; stderr: \(stderr)") }
            try await Task.sleep(for: .milliseconds(10))
        }
        process.waitUntilExit()
        return process.terminationStatus
    }
}

/// `vigil tail` and the client's resilient subscription against real server processes.
@Suite("vigil tail and resilient subscriptions against real server processes", .serialized)
struct TailTests {
    func temporaryDirectory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-tail-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func event(
        tenant: String, action: String, actor: String = "u-1", outcome: Vigil_V1_Outcome = .success,
        agoSeconds: Int64 = 1, ip: String = "203.0.113.9"
    ) -> AuditEvent {
        var event = AuditEvent()
        event.occurredAt = .init(unixNanos: currentUnixNanos() - agoSeconds * 1_000_000_000)
        event.tenant = tenant
        event.actor.id = actor
        event.actor.type = .user
        event.action = action
        event.resource.type = "document"
        event.resource.id = "doc-\(actor)"
        event.outcome = outcome
        event.sourceIp = ip
        return event
    }

    static func connect(_ server: ServerProcess) async throws -> VigilClient {
        try await VigilClient.connect(VigilClient.Configuration(server: server.address))
    }

    /// Every stored event matching `filter`, oldest (lowest seq) first.
    static func stored(_ server: ServerProcess, _ filter: Vigil_V1_Filter) async throws -> [AuditEvent] {
        let client = try await connect(server)
        var request = Vigil_V1_QueryRequest()
        request.filter = filter
        request.order = .oldestFirst
        request.pageSize = 10_000
        var events: [AuditEvent] = []
        for try await event in client.query(request) { events.append(event) }
        await client.close()
        return events.sorted { $0.seq < $1.seq }
    }

    static func tenant(_ name: String) -> Vigil_V1_Filter {
        var filter = Vigil_V1_Filter()
        filter.tenants = [name]
        return filter
    }

    static func cursor(in stderr: String) -> String? {
        stderr.split(separator: "\n").first { $0.hasPrefix("cursor: ") }.map { String($0.dropFirst("cursor: ".count)) }
    }

    @Test("vigil tail --format json prints each matching event as it is stored; Ctrl-C prints the cursor, which resumes with no repeat")
    func followsLiveEvents() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try ServerProcess(dataDir: directory + "/data")
        defer { _ = server.stop() }
        let client = try await Self.connect(server)

        let arguments = ["tail", "--server", server.address, "--format", "json", "--tenant", "acme"]
        let tail = try StreamingProcess(arguments)
        // From now: probes go by unseen until the subscription is in place.
        try await tail.waitUntil("a probe shows up") { tail in
            _ = try await client.ingest([Self.event(tenant: "acme", action: "probe.ping")])
            return !tail.lines.isEmpty
        }
        let probes = try tail.events().count
        var batch: [AuditEvent] = []
        for index in 0..<6 { batch.append(Self.event(tenant: index % 2 == 0 ? "acme" : "globex", action: "user.update", actor: "u-\(index)")) }
        _ = try await client.ingest(batch)
        try await tail.waitUntil("the three acme events show up") { try $0.events().count >= probes + 3 }
        let printed = try tail.events()
        let stored = try await Self.stored(server, Self.tenant("acme"))
        #expect(printed.map(\.id) == stored.suffix(printed.count).map(\.id), "the newest acme events, in seq order")
        #expect(printed.suffix(3).allSatisfy { $0.action == "user.update" && $0.tenant == "acme" })
        #expect(printed.map(\.seq) == printed.map(\.seq).sorted())

        let status = try await tail.interrupt()
        #expect(status == 130, "\(tail.stderr)")
        let cursor = try #require(Self.cursor(in: tail.stderr), "\(tail.stderr)")
        #expect(tail.stderr.contains("resume with: "), "\(tail.stderr)")
        #expect(tail.stderr.contains("--cursor \(cursor)"), "\(tail.stderr)")

        // Stored while nobody was following; the resumed tail prints them, and only them.
        let missed = [Self.event(tenant: "acme", action: "user.delete", actor: "m-1"), Self.event(tenant: "acme", action: "user.delete", actor: "m-2")]
        _ = try await client.ingest(missed)
        let resumed = try StreamingProcess(arguments + ["--cursor", cursor])
        try await resumed.waitUntil("the missed events show up") { try $0.events().count >= 2 }
        _ = try await client.ingest([Self.event(tenant: "acme", action: "marker.end")])
        try await resumed.waitUntil("the marker shows up") { try $0.events().contains { $0.action == "marker.end" } }
        #expect(try resumed.events().map(\.action) == ["user.delete", "user.delete", "marker.end"])
        #expect(try await resumed.interrupt() == 130)
        await client.close()
    }

    @Test("vigil tail --since catches up first (a duration back from now, or an RFC 3339 time), then follows")
    func sinceCatchesUp() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try ServerProcess(dataDir: directory + "/data")
        defer { _ = server.stop() }
        let client = try await Self.connect(server)
        _ = try await client.ingest([
            Self.event(tenant: "acme", action: "old.two-hours", agoSeconds: 7_200),
            Self.event(tenant: "acme", action: "recent.thirty-minutes", agoSeconds: 1_800),
            Self.event(tenant: "globex", action: "other.tenant", agoSeconds: 600),
            Self.event(tenant: "acme", action: "recent.ten-minutes", agoSeconds: 600),
        ])
        let fortyFiveMinutesAgo = try Google_Protobuf_Timestamp(unixNanos: currentUnixNanos() - 2_700_000_000_000).jsonString().trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        var live: [String] = []  // what each round adds (and later rounds catch up on)
        for since in ["1h", fortyFiveMinutesAgo] {
            let tail = try StreamingProcess(["tail", "--server", server.address, "--format", "json", "--tenant", "acme", "--since", since])
            try await tail.waitUntil("the catch-up shows") { try $0.events().count >= 2 + live.count }
            live.append("live.\(live.count)")
            _ = try await client.ingest([Self.event(tenant: "acme", action: live.last!)])
            try await tail.waitUntil("the live event shows") { try $0.events().count >= 2 + live.count }
            #expect(try tail.events().map(\.action) == ["recent.thirty-minutes", "recent.ten-minutes"] + live, "--since \(since)")
            #expect(try await tail.interrupt() == 130)
            // Resuming a --since tail: the command drops --since for --cursor.
            #expect(!tail.stderr.contains("--since"), "\(tail.stderr)")
        }
        await client.close()
    }

    @Test("vigil tail text output: a line per event with its fields; colour only when asked for or on a terminal")
    func textOutput() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try ServerProcess(dataDir: directory + "/data")
        defer { _ = server.stop() }
        let client = try await Self.connect(server)
        _ = try await client.ingest([
            Self.event(tenant: "acme", action: "auth.login", actor: "bob", outcome: .failure, agoSeconds: 60, ip: "10.1.2.3"),
            Self.event(tenant: "acme", action: "document.read", actor: "alice", outcome: .success, agoSeconds: 30),
        ])
        let plain = try StreamingProcess(["tail", "--server", server.address, "--since", "1h"])
        try await plain.waitUntil("two lines") { $0.lines.count >= 2 }
        #expect(try await plain.interrupt() == 130)
        let lines = plain.lines
        #expect(lines.count == 2)
        #expect(!lines.joined().contains("\u{1B}"), "no colour when stdout is not a terminal")
        let first = lines[0].split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        #expect(first.count == 7, "\(lines[0])")
        #expect(first.dropFirst() == ["acme", "bob", "auth.login", "document:doc-bob", "FAILURE", "10.1.2.3"], "\(lines[0])")
        #expect(first.first?.hasSuffix("Z") == true, "an RFC 3339 UTC time first: \(lines[0])")
        #expect(lines[1].contains("SUCCESS"))
        #expect(lines[0].range(of: "auth.login")?.lowerBound.utf16Offset(in: lines[0]) == lines[1].range(of: "document.read")?.lowerBound.utf16Offset(in: lines[1]), "columns line up")

        let coloured = try StreamingProcess(["tail", "--server", server.address, "--since", "1h", "--color"])
        try await coloured.waitUntil("two lines") { $0.lines.count >= 2 }
        #expect(try await coloured.interrupt() == 130)
        #expect(coloured.lines[0].contains("\u{1B}[31mFAILURE\u{1B}[0m"), "\(coloured.lines[0].debugDescription)")
        #expect(coloured.lines[1].contains("\u{1B}[32mSUCCESS\u{1B}[0m"), "\(coloured.lines[1].debugDescription)")
        #expect(coloured.lines[0].hasPrefix("\u{1B}[2m"), "a dim time")
        await client.close()
    }

    @Test(
        "vigil tail refuses bad flags with what they accept",
        arguments: [
            (["--since", "yesterday"], "--since 'yesterday' is neither a duration"),
            (["--since", "1h", "--cursor", "abc"], "give --since or --cursor, not both"),
            (["--until", "2026-11-20"], "--until"),
            (["--last", "1h"], "--last"),
            (["--format", "xml"], "--format"),
            (["--outcome", "maybe"], "--outcome 'maybe'"),
            (["--ip", "10.0.0.0/99"], "--ip"),
            (["--color", "--format", "json"], "--color is for --format text"),
            (["--server", "nowhere:port"], "is not HOST:PORT"),
        ])
    func badFlags(_ arguments: [String], _ message: String) throws {
        let result = try VigilBinary.run(["tail"] + arguments)
        #expect(result.status != 0)
        #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
    }

    @Test("vigil tail: a cursor the server refuses and an unreachable server are errors, not a hang")
    func serverErrors() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try ServerProcess(dataDir: directory + "/data")
        defer { _ = server.stop() }
        let badCursor = try VigilBinary.run(["tail", "--server", server.address, "--cursor", "nonsense"])
        #expect(badCursor.status != 0)
        #expect(badCursor.stderr.contains("INVALID_ARGUMENT"), "\(badCursor.stderr)")
        #expect(badCursor.stderr.contains("cursor"), "\(badCursor.stderr)")
        let noServer = try VigilBinary.run(["tail", "--server", "127.0.0.1:1"])
        #expect(noServer.status != 0)
        #expect(noServer.stderr.contains("UNAVAILABLE"), "\(noServer.stderr)")
    }

    @Test("vigil tail --help: its filter flags are query's but for --since, --until and --last; examples")
    func help() throws {
        func filterFlags(_ help: String) -> Set<String> {
            let section = help.components(separatedBy: "FILTERS:").last?.components(separatedBy: "OPTIONS:").first ?? ""
            return Set(section.split(separator: "\n").compactMap { line in
                let trimmed = line.drop { $0 == " " }
                guard trimmed.hasPrefix("--"), line.hasPrefix("  --") else { return nil }
                return String(trimmed.prefix { $0 != " " && $0 != "," })
            })
        }
        let tail = try VigilBinary.run(["tail", "--help"])
        let query = try VigilBinary.run(["query", "--help"])
        #expect(tail.status == 0)
        #expect(filterFlags(tail.stdout).count >= 15)
        #expect(filterFlags(tail.stdout) == filterFlags(query.stdout).subtracting(["--since", "--until", "--last"]))
        for text in ["Examples:", "vigil tail --since 1h", "--cursor", "--format", "--no-color", "NO_COLOR"] {
            #expect(tail.stdout.contains(text), "\(text)")
        }
        #expect(try VigilBinary.run(["--help"]).stdout.contains("tail"))
    }

    @Test("vigil tail survives kill -9 of the server: a note on stderr, then every match once after the restart")
    func tailAcrossKill() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var server = try ServerProcess(dataDir: directory + "/data")
        let port = server.port
        let tail = try StreamingProcess(["tail", "--server", server.address, "--format", "json", "--tenant", "acme", "--since", "1h"])
        var client = try await Self.connect(server)
        var batch: [AuditEvent] = []
        for index in 0..<10 { batch.append(Self.event(tenant: index % 2 == 0 ? "acme" : "globex", action: "before.kill", actor: "b-\(index)")) }
        _ = try await client.ingest(batch)
        try await tail.waitUntil("the first events show") { try $0.events().count >= 5 }
        await client.close()

        server.kill9()
        try await tail.waitUntil("tail notes the lost connection") { $0.stderr.contains("reconnecting") }
        server = try ServerProcess(dataDir: directory + "/data", extraArguments: ["--listen", "127.0.0.1:\(port)"])
        defer { _ = server.stop() }
        client = try await Self.connect(server)
        batch = []
        for index in 0..<10 { batch.append(Self.event(tenant: index % 2 == 0 ? "acme" : "globex", action: "after.restart", actor: "a-\(index)")) }
        _ = try await client.ingest(batch)
        let expected = try await Self.stored(server, Self.tenant("acme"))
        #expect(expected.count == 10)
        try await tail.waitUntil("every acme event shows") { try $0.events().count >= expected.count }
        #expect(try tail.events().map(\.id) == expected.map(\.id), "each once, in seq order")
        #expect(tail.stderr.contains("reconnected"), "\(tail.stderr)")
        #expect(try await tail.interrupt() == 130)
        #expect(try tail.events().count == expected.count)
        await client.close()
    }

    /// What the resilient subscription received, and which batches were acknowledged.
    final class Received: Sendable {
        let events = Mutex<[AuditEvent]>([])
        let interruptions = Mutex<[VigilError.Code]>([])
        let acked = Mutex<Set<String>>([])
        var count: Int { events.withLock { $0.count } }
    }

    /// Twenty acme events, half of them auth.login, tagged in their actor ids.
    static func batch(_ tag: String) -> [AuditEvent] {
        (0..<20).map { index in
            Self.event(tenant: "acme", action: index % 2 == 0 ? "auth.login" : "user.update", actor: "\(tag)-\(index)")
        }
    }

    @Test("the resilient subscription resumes across kill -9 and a restart on the same port: exactly the stored matches, once each, in seq order")
    func resilientSubscriptionAcrossKill() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // The first server binds port 0, so the port is free; the restart listens there again.
        var server = try ServerProcess(dataDir: directory + "/data")
        let port = server.port
        var filter = Vigil_V1_Filter()
        filter.actions = ["auth.*"]
        var request = Vigil_V1_SubscribeRequest()
        request.filter = filter
        request.since = .init(unixNanos: 0)
        var policy = ReconnectPolicy()
        policy.initialDelay = .milliseconds(20)
        policy.maxDelay = .milliseconds(500)

        let received = Received()
        let subscription = VigilClient.resilientSubscription(
            request, configuration: try VigilClient.Configuration(server: server.address), window: 16, reconnect: policy
        ) { event in
            if case .interrupted(let error, _, _, _) = event { received.interruptions.withLock { $0.append(error.code) } }
        }
        let consumer = Task {
            for try await item in subscription {
                if let event = item.event { received.events.withLock { $0.append(event) } }
            }
        }
        defer { consumer.cancel() }

        // Several connections ingest; the server dies with SIGKILL after 30 acknowledged batches.
        let address = server.address
        try await withThrowingTaskGroup(of: Void.self) { group in
            for connection in 0..<3 {
                group.addTask {
                    let client = try await VigilClient.connect(VigilClient.Configuration(server: address))
                    for number in 0..<10_000 {
                        let tag = "c\(connection)b\(number)"
                        do {
                            _ = try await client.ingest(Self.batch(tag), idempotencyKey: tag)
                        } catch {
                            break  // the server is gone
                        }
                        received.acked.withLock { _ = $0.insert(tag) }
                    }
                    await client.close()
                }
            }
            try await waitFor("30 acknowledged batches") { received.acked.withLock { $0.count } >= 30 }
            server.kill9()
            try await group.waitForAll()
        }
        try await waitFor("the subscription noticed") { !received.interruptions.withLock { $0.isEmpty } }

        server = try ServerProcess(dataDir: directory + "/data", extraArguments: ["--listen", "127.0.0.1:\(port)"])
        defer { _ = server.stop() }
        let client = try await Self.connect(server)
        for number in 0..<5 {
            let tag = "after\(number)"
            _ = try await client.ingest(Self.batch(tag), idempotencyKey: tag)
            received.acked.withLock { _ = $0.insert(tag) }
        }
        let expected = try await Self.stored(server, filter)
        try await waitFor("every stored match arrived") { received.count >= expected.count }
        // One more: nothing arrives between the expected events and it.
        let last = try await client.ingest([Self.event(tenant: "acme", action: "auth.logout", actor: "last")])
        try await waitFor("the last event arrived") { received.count >= expected.count + 1 }

        let events = received.events.withLock { $0 }
        #expect(events.map(\.seq) == expected.map(\.seq) + [last.firstSeq], "the stored matches, each once, in seq order")
        #expect(Array(events.dropLast()) == expected)
        let ackedTags = received.acked.withLock { $0 }
        let deliveredBatches = Set(events.map { String($0.actor.id.split(separator: "-")[0]) })
        #expect(ackedTags.isSubset(of: deliveredBatches), "every acknowledged batch was delivered: missing \(ackedTags.subtracting(deliveredBatches).sorted().prefix(5))")
        #expect(received.interruptions.withLock { $0.contains(.unavailable) })
        consumer.cancel()
        if case .failure(let error) = await consumer.result {
            #expect(error is CancellationError, "\(error)")
        }
        await client.close()
    }
}

/// Waits until `condition` holds, checking every few milliseconds, for at most `timeout`.
func waitFor(_ what: String, timeout: Duration = .seconds(60), _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while try await !condition() {
        guard ContinuousClock.now < deadline else { throw CLITestError("timed out waiting until \(what)") }
        try await Task.sleep(for: .milliseconds(10))
    }
}
