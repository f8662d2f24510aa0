import Foundation
import SwiftProtobuf
import Testing
import VigilClient
import VigilCore
import VigilProto

/// `vigil query`, `count` and `export` against a real `vigil serve` process,
/// with events stored through the client.
@Suite("vigil query, count and export against a real server", .serialized)
struct QueryEngineCLITests {
    static let nanosPerDay: Int64 = 86_400 * 1_000_000_000
    static let nanosPerHour: Int64 = 3_600 * 1_000_000_000

    /// UTC midnight ten days ago: the fixture's day (so every event is in the past).
    let day: UnixNanos = {
        let now = currentUnixNanos()
        return now / QueryEngineCLITests.nanosPerDay * QueryEngineCLITests.nanosPerDay - 10 * QueryEngineCLITests.nanosPerDay
    }()

    static func id(_ number: Int) -> String {
        "00000000-0000-7000-8000-" + String(repeating: "0", count: 12 - String(number).count) + String(number)
    }

    /// Seven events that between them exercise every filter field.
    func fixture() -> [AuditEvent] {
        func event(_ number: Int, at time: UnixNanos, _ build: (inout AuditEvent) -> Void) -> AuditEvent {
            var event = AuditEvent()
            event.id = Self.id(number)
            event.occurredAt = .init(unixNanos: time)
            build(&event)
            return event
        }
        let hour = Self.nanosPerHour
        let minute = hour / 60
        return [
            event(1, at: day + 10 * hour + 15 * minute) {
                $0.tenant = "acme"
                $0.actor = .with { $0.id = "u-42"; $0.type = .user; $0.name = "Bob"; $0.email = "bob@acme.test" }
                $0.action = "user.update"
                $0.category = .update
                $0.resource = .with { $0.type = "user"; $0.id = "u-77"; $0.name = "alice" }
                $0.targets = [.with { $0.type = "group"; $0.id = "g-1"; $0.name = "Admins" }]
                $0.outcome = .success
                $0.sourceIp = "203.0.113.9"
                $0.userAgent = "console/2.1"
                $0.traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
                $0.requestID = "req-981"
                $0.changes = [.with { $0.field = "role"; $0.old = "viewer"; $0.new = "admin" }]
                $0.metadata = ["project": "alpha", "env": "prod"]
                $0.description_p = "Bob made Alice an admin"
            },
            event(2, at: day + 10 * hour + 16 * minute) {
                $0.tenant = "acme"
                $0.actor = .with { $0.id = "u-42"; $0.type = .user; $0.email = "Bob@Acme.Test" }
                $0.action = "auth.login"
                $0.category = .login
                $0.outcome = .failure
                $0.reason = "bad password"
                $0.sourceIp = "10.1.2.3"
                $0.metadata = ["project": "beta", "env": "prod"]
            },
            event(3, at: day + 10 * hour + 17 * minute) {
                $0.tenant = "acme"
                $0.actor = .with { $0.id = "svc-1"; $0.type = .service; $0.name = "deployer" }
                $0.action = "auth.mfa.verify"
                $0.category = .execute
                $0.outcome = .denied
                $0.sourceIp = "10.200.0.1"
                $0.metadata = ["project": "alpha", "env": "staging"]
            },
            event(4, at: day + 11 * hour) {
                $0.tenant = "globex"
                $0.actor = .with { $0.id = "scheduler"; $0.type = .system }
                $0.action = "credential.token_refresh"
                $0.sourceIp = "2001:db8::5"
                $0.traceID = "trace-two"
            },
            event(5, at: day + 12 * hour) {
                $0.tenant = "globex"
                $0.actor = .with { $0.id = "tok-1"; $0.type = .apiToken }
                $0.action = "authz.check"
                $0.category = .read
                $0.resource = .with { $0.type = "document"; $0.id = "doc-7"; $0.name = "Plan" }
                $0.outcome = .success
                $0.sourceIp = "192.168.1.1"
                $0.requestID = "req-2"
            },
            event(6, at: day + 13 * hour) {
                $0.tenant = "initech"
                $0.actor = .with { $0.type = .anonymous }
                $0.action = "auth.login"
                $0.category = .login
                $0.outcome = .failure
                $0.sourceIp = "203.0.113.10"
                $0.description_p = "invoice lookup failed"
            },
            event(7, at: currentUnixNanos() - Self.nanosPerHour) {
                $0.tenant = "acme"
                $0.actor = .with { $0.id = "u-9"; $0.type = .user; $0.name = "Carol" }
                $0.action = "document.delete"
                $0.category = .delete
                $0.resource = .with { $0.type = "document"; $0.id = "doc-9"; $0.name = "Invoice 2026" }
                $0.outcome = .success
            },
        ]
    }

    /// A server holding `events`.
    static func server(with events: [AuditEvent]) async throws -> (ServerProcess, String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-qe-\(UUID().uuidString)").path
        let server = try ServerProcess(dataDir: directory)
        let client = try await VigilClient.connect(VigilClient.Configuration(server: server.address))
        for start in stride(from: 0, to: events.count, by: 10_000) {
            _ = try await client.ingest(Array(events[start..<min(events.count, start + 10_000)]))
        }
        await client.close()
        return (server, directory)
    }

    /// Every stored event matching `filter`, through the client.
    static func stored(_ server: ServerProcess, filter: Vigil_V1_Filter = .init(), order: Vigil_V1_Order = .oldestFirst) async throws -> [AuditEvent] {
        let client = try await VigilClient.connect(VigilClient.Configuration(server: server.address))
        var request = Vigil_V1_QueryRequest()
        request.filter = filter
        request.order = order
        request.pageSize = 5_000
        var events: [AuditEvent] = []
        for try await event in client.query(request) { events.append(event) }
        await client.close()
        return events
    }

    static func time(_ nanos: UnixNanos) -> String {
        ((try? Google_Protobuf_Timestamp(unixNanos: nanos).jsonString()) ?? "").trimmingCharacters(in: CharacterSet(charactersIn: "\""))
    }

    static func date(_ nanos: UnixNanos) -> String {
        String(time(nanos).prefix(10))
    }

    /// The ids of the events `vigil query ARGS --format json` prints, in order.
    static func queriedIDs(_ server: ServerProcess, _ arguments: [String]) throws -> [String] {
        let output = try VigilBinary.run(["query", "--server", server.address, "--format", "json", "--limit", "0"] + arguments)
        guard output.status == 0 else { throw CLITestError("query \(arguments) failed: \(output.stderr)") }
        return try output.stdout.split(separator: "\n").map { line in
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            return object?["id"] as? String ?? "?"
        }
    }

    @Test("every filter flag selects exactly the events it should, in query and in count")
    func everyFilterFlag() async throws {
        let (server, directory) = try await Self.server(with: fixture())
        defer {
            _ = server.stop()
            try? FileManager.default.removeItem(atPath: directory)
        }
        let hour = Self.nanosPerHour
        let cases: [([String], [Int])] = [
            ([], [1, 2, 3, 4, 5, 6, 7]),
            (["--since", Self.time(day + 10 * hour + 16 * 60_000_000_000)], [2, 3, 4, 5, 6, 7]),
            (["--until", Self.time(day + 11 * hour)], [1, 2, 3]),
            (["--since", Self.date(day + Self.nanosPerDay)], [7]),
            (["--since", Self.date(day), "--until", Self.date(day + Self.nanosPerDay)], [1, 2, 3, 4, 5, 6]),
            (["--since", Self.time(day + 11 * hour).replacingOccurrences(of: "T11:00:00Z", with: "T12:00:00+01:00")], [4, 5, 6, 7]),
            (["--last", "2h"], [7]),
            (["--last", "1w"], [7]),
            (["--last", "30d"], [1, 2, 3, 4, 5, 6, 7]),
            (["--last", "7200s", "--tenant", "acme"], [7]),
            (["--tenant", "acme"], [1, 2, 3, 7]),
            (["--tenant", "acme", "--tenant", "initech"], [1, 2, 3, 6, 7]),
            (["--actor", "u-42"], [1, 2]),
            (["--email", "BOB@acme.test"], [1, 2]),
            (["--actor-name", "deployer"], [3]),
            (["--actor-type", "service"], [3]),
            (["--actor-type", "api-token"], [5]),
            (["--actor-type", "anonymous"], [6]),
            (["--actor-type", "system", "--actor-type", "USER"], [1, 2, 4, 7]),
            (["--action", "auth.*"], [2, 3, 6]),
            (["--action", "auth.login"], [2, 6]),
            (["--action", "auth.login", "--action", "user.*"], [1, 2, 6]),
            (["--category", "login"], [2, 6]),
            (["--category", "delete", "--category", "read"], [5, 7]),
            (["--resource-type", "document"], [5, 7]),
            (["--resource", "doc-7"], [5]),
            (["--resource-id", "doc-9"], [7]),
            (["--resource-name", "Plan"], [5]),
            (["--outcome", "failure"], [2, 6]),
            (["--outcome", "failure", "--outcome", "denied"], [2, 3, 6]),
            (["--outcome", "!success"], [2, 3, 4, 6]),
            (["--outcome", "!success", "--outcome", "!failure"], [3, 4]),
            (["--outcome", "unspecified"], [4]),
            (["--ip", "10.0.0.0/8"], [2, 3]),
            (["--ip", "203.0.113.9"], [1]),
            (["--ip", "2001:db8::/32"], [4]),
            (["--ip", "203.0.113.0/24", "--ip", "192.168.0.0/16"], [1, 5, 6]),
            (["--trace", "4bf92f3577b34da6a3ce929d0e0e4736"], [1]),
            (["--trace", "trace-two"], [4]),
            (["--request", "req-2"], [5]),
            (["--meta", "project=alpha"], [1, 3]),
            (["--meta", "project=alpha", "--meta", "env=prod"], [1]),
            (["--meta", "env=prod", "--meta", "env=staging"], [1, 2, 3]),
            (["--search", "invoice"], [6, 7]),
            (["--search", "bob@"], [1, 2]),
            (["--search", "Admin"], [1]),
            (["--tenant", "acme", "--action", "auth.*", "--outcome", "!denied"], [2]),
        ]
        for (index, (arguments, expected)) in cases.enumerated() {
            let ids = try Self.queriedIDs(server, arguments)
            #expect(Set(ids) == Set(expected.map(Self.id)), "vigil query \(arguments.joined(separator: " "))")
            #expect(ids.count == expected.count, "vigil query \(arguments.joined(separator: " ")): no event twice")
            // The same filter through Aggregate, for every third case (each process costs time).
            guard index % 3 == 0 else { continue }
            let count = try VigilBinary.run(["count", "--server", server.address, "--format", "json"] + arguments)
            let object = try JSONSerialization.jsonObject(with: Data(count.stdout.utf8)) as? [String: Any]
            #expect(object?["count"] as? Int == expected.count, "vigil count \(arguments.joined(separator: " ")): \(count.stderr)")
        }
    }

    @Test("query: --order, --oldest-first, --limit and --cursor (also with --last), table and csv")
    func orderLimitCursor() async throws {
        let (server, directory) = try await Self.server(with: fixture())
        defer {
            _ = server.stop()
            try? FileManager.default.removeItem(atPath: directory)
        }
        #expect(try Self.queriedIDs(server, ["--tenant", "acme"]) == [7, 3, 2, 1].map(Self.id), "newest first by default")
        #expect(try Self.queriedIDs(server, ["--tenant", "acme", "--order", "oldest"]) == [1, 2, 3, 7].map(Self.id))
        #expect(try Self.queriedIDs(server, ["--tenant", "acme", "--oldest-first"]) == [1, 2, 3, 7].map(Self.id))

        // Page through with --limit and the cursor printed on stderr.
        var seen: [String] = []
        var cursorArguments: [String] = []
        for _ in 0..<4 {
            let page = try VigilBinary.run(
                ["query", "--server", server.address, "--format", "json", "--last", "30d", "--limit", "3"] + cursorArguments)
            #expect(page.status == 0, "\(page.stderr)")
            seen += page.stdout.split(separator: "\n").compactMap { line in
                (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["id"] as? String
            }
            guard let range = page.stderr.range(of: "--cursor ") else { break }
            cursorArguments = ["--cursor", String(page.stderr[range.upperBound...].prefix { !$0.isWhitespace })]
        }
        #expect(seen == [7, 6, 5, 4, 3, 2, 1].map(Self.id), "pages continue exactly where the last one stopped")

        let table = try VigilBinary.run(["query", "--server", server.address, "--tenant", "globex"])
        #expect(table.stdout.split(separator: "\n").first?.hasPrefix("TIME") == true)
        #expect(table.stdout.contains("authz.check"))
        #expect(table.stderr.contains("2 events"))

        let csv = try VigilBinary.run(["query", "--server", server.address, "--format", "csv", "--trace", "4bf92f3577b34da6a3ce929d0e0e4736"])
        let rows = CSV.parse(csv.stdout)
        #expect(rows.first == EventCSV.columns)
        #expect(rows.count == 2)

        let mismatch = try VigilBinary.run(["query", "--server", server.address, "--tenant", "acme"] + cursorArguments)
        #expect(mismatch.status != 0, "a cursor is refused for another filter")
        #expect(mismatch.stderr.contains("INVALID_ARGUMENT"))
    }

    @Test("count: total, --by with --top and (other), --histogram, table and json")
    func countByAndHistogram() async throws {
        let (server, directory) = try await Self.server(with: fixture())
        defer {
            _ = server.stop()
            try? FileManager.default.removeItem(atPath: directory)
        }
        let base = ["count", "--server", server.address]

        let total = try VigilBinary.run(base)
        #expect(total.status == 0, "\(total.stderr)")
        #expect(total.stdout.hasPrefix("7 events"))

        let byAction = try VigilBinary.run(base + ["--by", "action", "--format", "json"])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(byAction.stdout.utf8)) as? [String: Any])
        #expect(json["count"] as? Int == 7)
        #expect(json["groupTotal"] as? Int == 6)
        #expect(json["otherCount"] as? Int == 0)
        let groups = try #require(json["groups"] as? [[String: Any]])
        #expect(groups.first?["key"] as? String == "auth.login")
        #expect(groups.first?["count"] as? Int == 2)
        #expect(groups.count == 6)

        // Top 2 of 6 groups: auth.login (2), then the first of the ties by key; the rest is "(other)".
        let top = try VigilBinary.run(base + ["--by", "action", "--top", "2"])
        let lines = top.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        #expect(lines.contains(["ACTION", "COUNT", "%"]), "\(top.stdout)")
        #expect(lines.contains(["auth.login", "2", "28.6%"]), "\(top.stdout)")
        #expect(lines.contains(["auth.mfa.verify", "1", "14.3%"]), "\(top.stdout)")
        #expect(lines.contains(["(other)", "4", "57.1%"]), "\(top.stdout)")

        let byOutcome = try VigilBinary.run(base + ["--by", "outcome", "--tenant", "acme"])
        #expect(byOutcome.stdout.contains("SUCCESS"))
        #expect(byOutcome.stdout.contains("4 events"))

        let byIP = try VigilBinary.run(base + ["--by", "ip", "--ip", "10.0.0.0/8", "--format", "json"])
        let ipGroups = (try JSONSerialization.jsonObject(with: Data(byIP.stdout.utf8)) as? [String: Any])?["groups"] as? [[String: Any]]
        #expect(Set(ipGroups?.compactMap { $0["key"] as? String } ?? []) == ["10.1.2.3", "10.200.0.1"])

        // One bucket per hour of the fixture's day, empty hours included.
        let dayArguments = ["--since", Self.date(day), "--until", Self.date(day + Self.nanosPerDay)]
        let histogram = try VigilBinary.run(base + dayArguments + ["--histogram", "1h", "--format", "json"])
        let buckets = try #require((try JSONSerialization.jsonObject(with: Data(histogram.stdout.utf8)) as? [String: Any])?["histogram"] as? [[String: Any]])
        #expect(buckets.map { $0["count"] as? Int ?? -1 } == [3, 1, 1, 1])
        #expect(buckets.first?["start"] as? String == Self.time(day + 10 * Self.nanosPerHour))

        let quarter = try VigilBinary.run(base + dayArguments + ["--histogram", "15m", "--tenant", "acme"])
        let bars = quarter.stdout.split(separator: "\n").filter { $0.hasPrefix(Self.date(day)) }
        #expect(bars.count == 1, "\(quarter.stdout)")
        #expect(bars.first?.contains("3  ██████") == true, "\(quarter.stdout)")

        let table = try VigilBinary.run(base + dayArguments + ["--histogram", "1h", "--by", "tenant"])
        let histogramLines = table.stdout.split(separator: "\n").filter { $0.hasPrefix(Self.date(day)) }
        #expect(histogramLines.count == 4, "\(table.stdout)")
        #expect(histogramLines.first?.hasSuffix(String(repeating: "█", count: 50)) == true, "the largest bucket has the longest bar")
        #expect(table.stdout.contains("PER 1h"))
        #expect(table.stdout.contains("acme"))
    }

    @Test("query --show prints every field of one event")
    func show() async throws {
        let (server, directory) = try await Self.server(with: fixture())
        defer {
            _ = server.stop()
            try? FileManager.default.removeItem(atPath: directory)
        }
        let shown = try VigilBinary.run(["query", "--server", server.address, "--show", Self.id(1)])
        #expect(shown.status == 0, "\(shown.stderr)")
        let lines = shown.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ") }
        for expected in [
            "id \(Self.id(1))", "seq 1", "occurred at \(Self.time(day + 10 * Self.nanosPerHour + 15 * 60_000_000_000))",
            "tenant acme", "actor id u-42", "actor type USER", "actor name Bob", "actor email bob@acme.test",
            "action user.update", "category UPDATE", "resource user u-77 (alice)", "targets group g-1 (Admins)",
            "outcome SUCCESS", "source ip 203.0.113.9", "user agent console/2.1",
            "trace id 4bf92f3577b34da6a3ce929d0e0e4736", "request id req-981", "description Bob made Alice an admin",
            "changes role: viewer → admin", "metadata env=prod", "project=alpha",
        ] {
            #expect(lines.contains(expected), "missing line '\(expected)' in:\n\(shown.stdout)")
        }
        #expect(lines.contains { $0.hasPrefix("received at 20") })

        let json = try VigilBinary.run(["query", "--server", server.address, "--show", Self.id(2), "--format", "json"])
        let event = try AuditEvent(jsonString: json.stdout)
        #expect(event.reason == "bad password")

        let missing = try VigilBinary.run(["query", "--server", server.address, "--show", Self.id(99)])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("NOT_FOUND"))
    }

    @Test("bad flag values: a non-zero exit and a message that says what is accepted")
    func badFlagValues() throws {
        // Refused before any connection is made: no server needed (port 1 would refuse it).
        let server = ["--server", "127.0.0.1:1"]
        let cases: [([String], [String])] = [
            (["query", "--last", "yesterday"], ["--last 'yesterday'", "s, m, h, d, w or y"]),
            (["query", "--last", "0h"], ["--last '0h'", "90s, 30m, 24h, 7d"]),
            (["query", "--last", "600w"], ["--last", "between 1 second and 10 years"]),
            (["query", "--last", "1h", "--since", "2026-11-20"], ["--last or --since"]),
            (["query", "--since", "2026-13-01"], ["--since '2026-13-01'", "RFC 3339", "2026-11-20"]),
            (["query", "--until", "last tuesday"], ["--until 'last tuesday'", "RFC 3339"]),
            (["query", "--since", "30d"], ["--since '30d' is a duration", "use --last 30d"]),
            (["count", "--since", "12h"], ["--since '12h' is a duration", "use --last 12h"]),
            (["query", "--since", "2026-11-02", "--until", "2026-11-01"], ["--until must be later than --since"]),
            (["query", "--actor-type", "robot"], ["--actor-type 'robot'", "user, service, api-token, system or anonymous"]),
            (["query", "--category", "explode"], ["--category 'explode'", "create, read, update"]),
            (["query", "--outcome", "maybe"], ["--outcome 'maybe'", "success, failure, denied or unspecified", "'!success'"]),
            (["query", "--outcome", "!great"], ["--outcome '!great'"]),
            (["query", "--ip", "10.0.0.0/33"], ["--ip '10.0.0.0/33'", "CIDR block such as 10.0.0.0/8"]),
            (["query", "--ip", "not-an-ip"], ["--ip 'not-an-ip'", "IP address"]),
            (["query", "--meta", "project"], ["--meta 'project' is not key=value"]),
            (["query", "--meta", "bad key=1"], ["--meta 'bad key=1' has a bad key"]),
            (["query", "--action", "auth.*.*"], ["--action 'auth.*.*'", "such as auth.*"]),
            (["query", "--action", "Bad Action"], ["--action 'Bad Action'"]),
            (["query", "--tenant", "bad tenant"], ["--tenant 'bad tenant'"]),
            (["query", "--trace", String(repeating: "a", count: 129)], ["--trace entries must be 1-128 bytes"]),
            (["query", "--search", String(repeating: "x", count: 300)], ["--search is 300 bytes; the limit is 256"]),
            (["query", "--order", "sideways"], ["--order", "newest", "oldest"]),
            (["query", "--format", "xml"], ["--format", "table", "json", "csv"]),
            (["query", "--show", Self.id(1), "--tenant", "acme"], ["--show", "no filter flags"]),
            (["count", "--by", "color"], ["--by", "action", "resource-type", "ip"]),
            (["count", "--histogram", "hourly"], ["--histogram 'hourly'", "s, m, h, d, w or y"]),
            (["count", "--histogram", "400d"], ["--histogram '400d'", "366 days"]),
            (["count", "--top", "0"], ["--top must be 1 to 1000"]),
            (["count", "--format", "csv"], ["--format", "table", "json"]),
            (["count", "--outcome", "win"], ["--outcome 'win'"]),
            (["export", "--format", "xml"], ["--format", "csv", "jsonl"]),
            (["export", "--format", "jsonl", "--no-header"], ["--header and --no-header are for --format csv"]),
            (["export", "--email", "a@b", "--last", "2x"], ["--last '2x'"]),
            (["export", "--output", "/nonexistent-dir/x.csv"], ["cannot open '/nonexistent-dir/x.csv'"]),
        ]
        for (arguments, fragments) in cases {
            let output = try VigilBinary.run(Array(arguments.prefix(1)) + server + Array(arguments.dropFirst()))
            #expect(output.status != 0, "vigil \(arguments.joined(separator: " ")) should fail")
            #expect(!output.stderr.contains("UNAVAILABLE"), "vigil \(arguments.joined(separator: " ")) is refused before connecting: \(output.stderr)")
            for fragment in fragments {
                #expect(output.stderr.contains(fragment), "vigil \(arguments.joined(separator: " ")): '\(fragment)' not in: \(output.stderr)")
            }
        }
    }

    @Test("--help teaches: every filter flag, the accepted values, examples")
    func help() throws {
        let query = try VigilBinary.run(["query", "--help"]).stdout
        for flag in [
            "--since", "--until", "--last", "--tenant", "--actor ", "--email", "--actor-name", "--actor-type", "--action",
            "--category", "--resource-type", "--resource, --resource-id", "--resource-name", "--outcome", "--ip", "--trace", "--request",
            "--meta", "--search", "--show", "--cursor", "--order", "--limit", "--format",
            "api-token", "'!success'", "10.0.0.0/8", "vigil query --action 'auth.*'",
        ] {
            #expect(query.contains(flag), "query --help lacks \(flag)")
        }
        let count = try VigilBinary.run(["count", "--help"]).stdout
        for text in ["--by", "--top", "--histogram", "resource-type", "vigil count --last 7d --tenant acme --by action", "--outcome"] {
            #expect(count.contains(text), "count --help lacks \(text)")
        }
        let export = try VigilBinary.run(["export", "--help"]).stdout
        for text in ["Oldest first by default", "--output", "--cursor", "--progress", "RFC 4180", "jsonl", "--meta", "Resuming"] {
            #expect(export.contains(text), "export --help lacks \(text)")
        }
        let top = try VigilBinary.run(["--help"]).stdout
        #expect(top.contains("count"))
        #expect(top.contains("export"))
    }

    // MARK: Export

    /// Events whose text has every character CSV must quote, and more.
    func awkwardEvents() -> [AuditEvent] {
        let base = day + 9 * Self.nanosPerHour
        var first = AuditEvent()
        first.occurredAt = .init(unixNanos: base + 123_456_789)
        first.tenant = "acme"
        first.actor = .with { $0.id = "u,1"; $0.type = .user; $0.name = "Ålesund, Bob \"the builder\""; $0.email = "bob@ex.test" }
        first.action = "doc.update"
        first.category = .update
        first.resource = .with { $0.type = "doc"; $0.id = "d-1"; $0.name = " spaces around " }
        first.targets = [
            .with { $0.type = "doc"; $0.id = "d,2"; $0.name = "Ünïcode \"name\"" },
            .with { $0.type = "folder"; $0.id = "f-1" },
        ]
        first.outcome = .failure
        first.reason = "quote \" only"
        first.sourceIp = "2001:db8::1"
        first.userAgent = "Mozilla/5.0 (X11; Linux x86_64), \"quoted\""
        first.traceID = "t-1"
        first.requestID = "r-1"
        first.changes = [
            .with { $0.field = "title"; $0.old = "Hello, \"World\""; $0.new = "Multi\nline\r\nvalue" },
            .with { $0.field = "owner"; $0.new = "日本語" },
        ]
        first.metadata = ["note": "a,b\n\"c\"", "empty": "", "city": "Zürich 🚀"]
        first.description_p = "Line one,\r\nline \"two\"\nthird\rend — ünïcödé 日本語 🚀"

        var second = AuditEvent()
        second.occurredAt = .init(unixNanos: base + Self.nanosPerHour)
        second.tenant = "acme"
        second.actor = .with { $0.type = .anonymous }
        second.action = "auth.login"

        var third = AuditEvent()
        third.occurredAt = .init(unixNanos: base + 2 * Self.nanosPerHour + 500_000)
        third.tenant = "acme"
        third.actor = .with { $0.id = "svc"; $0.type = .service }
        third.action = "job.run"
        third.description_p = "\"starts with a quote"
        third.reason = "ends with a comma,"
        third.metadata = ["k": "\r"]
        return [first, second, third]
    }

    @Test("export --format csv: a header and every field; commas, quotes, CR/LF and non-ASCII survive a parse")
    func exportCSVRoundTrip() async throws {
        let (server, directory) = try await Self.server(with: awkwardEvents())
        defer {
            _ = server.stop()
            try? FileManager.default.removeItem(atPath: directory)
        }
        let stored = try await Self.stored(server)
        #expect(stored.count == 3)
        for lineEnding in [[], ["--crlf"]] {
            let output = try VigilBinary.run(["export", "--server", server.address, "--format", "csv"] + lineEnding)
            #expect(output.status == 0, "\(output.stderr)")
            let ending = Array(output.stdout.utf8.suffix(2))
            #expect(ending.last == 0x0A && (ending.first == 0x0D) == !lineEnding.isEmpty, "rows end with LF, or CRLF with --crlf")
            let rows = CSV.parse(output.stdout)
            #expect(rows.first == EventCSV.columns)
            #expect(rows.count == 1 + stored.count)
            for (row, event) in zip(rows.dropFirst(), stored) {
                try EventCSV.check(row, against: event)
            }
            #expect(output.stderr.contains("export complete: 3 events written"), "\(output.stderr)")
            #expect(output.stderr.contains("cursor: "))
        }
    }

    @Test("export --format jsonl: every event, parsed back, equals the stored one")
    func exportJSONLRoundTrip() async throws {
        let (server, directory) = try await Self.server(with: awkwardEvents() + fixture())
        defer {
            _ = server.stop()
            try? FileManager.default.removeItem(atPath: directory)
        }
        let stored = try await Self.stored(server)
        let output = try VigilBinary.run(["export", "--server", server.address, "--format", "jsonl"])
        #expect(output.status == 0, "\(output.stderr)")
        let lines = output.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.last == "", "every line ends with a newline")
        let events = try lines.dropLast().map { try AuditEvent(jsonString: String($0)) }
        #expect(events == stored, "oldest first, every field")

        let newest = try VigilBinary.run(["export", "--server", server.address, "--format", "jsonl", "--order", "newest", "--tenant", "acme"])
        let newestIDs = try newest.stdout.split(separator: "\n").map { try AuditEvent(jsonString: String($0)).id }
        #expect(newestIDs == stored.filter { $0.tenant == "acme" }.reversed().map(\.id))
    }

    /// Runs a command line through the shell (as a person would paste it).
    static func shell(_ command: String) throws -> VigilBinary.Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let errData = ReadAll(err.fileHandleForReading)
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return .init(
            status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData.wait(), as: UTF8.self))
    }

    static func resumeCommand(in stderr: String) -> String? {
        stderr.split(separator: "\n").first { $0.hasPrefix("resume with: ") }.map { String($0.dropFirst("resume with: ".count)) }
    }

    /// `count` events of tenant `bulk`, a millisecond apart.
    static func bulkEvents(_ count: Int, tenant: String = "bulk") -> [AuditEvent] {
        let start = currentUnixNanos() - Int64(count) * 1_000_000 - nanosPerHour
        return (0..<count).map { index in
            var event = AuditEvent()
            event.occurredAt = .init(unixNanos: start + Int64(index) * 1_000_000)
            event.tenant = tenant
            event.actor.id = "user-\(index % 97)"
            event.actor.type = .user
            event.action = index % 3 == 0 ? "auth.login" : "document.read"
            event.resource = .with { $0.type = "document"; $0.id = "doc-\(index)" }
            event.outcome = index % 10 == 0 ? .failure : .success
            event.description_p = "event number \(index), \"quoted\""
            return event
        }
    }

    @Test("export resumes with --cursor: the printed command continues with exactly the remaining events")
    func exportResume() async throws {
        let (server, directory) = try await Self.server(with: Self.bulkEvents(2_500) + fixture())
        defer {
            _ = server.stop()
            try? FileManager.default.removeItem(atPath: directory)
        }
        var filter = Vigil_V1_Filter()
        filter.tenants = ["bulk"]
        let expected = try await Self.stored(server, filter: filter).map(\.id)
        #expect(expected.count == 2_500)

        // To a file: stopped by --limit, resumed by the printed command, which appends without a second header.
        let file = directory + "/export.csv"
        let first = try VigilBinary.run([
            "export", "--server", server.address, "--tenant", "bulk", "--format", "csv", "--output", file, "--limit", "1000",
            "--page-size", "300",
        ])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stderr.contains("1,000 events written to \(file)"), "\(first.stderr)")
        let command = try #require(Self.resumeCommand(in: first.stderr), "\(first.stderr)")
        #expect(command.contains("--tenant bulk"))
        #expect(command.contains("--limit 1000"))
        var resumed = try Self.shell(command)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        var rounds = 1
        while let next = Self.resumeCommand(in: resumed.stderr), rounds < 5 {
            resumed = try Self.shell(next)
            rounds += 1
        }
        #expect(rounds == 2, "1,000 + 1,000 + 500: the third run finishes (\(resumed.stderr))")
        #expect(resumed.stderr.contains("export complete: 500 events written"), "\(resumed.stderr)")
        let rows = CSV.parse(try String(contentsOfFile: file, encoding: .utf8))
        #expect(rows.first == EventCSV.columns)
        #expect(rows.dropFirst().map { $0.first ?? "" } == expected, "header once, then every event once, in order")

        // To stdout, JSON lines, with a filter that uses --last (the cursor keeps its anchor).
        let head = try VigilBinary.run([
            "export", "--server", server.address, "--format", "jsonl", "--last", "7d", "--action", "auth.*", "--tenant", "bulk",
            "--limit", "333",
        ])
        #expect(head.stderr.contains("'auth.*'"), "arguments are shell-quoted")
        var output = head.stdout
        var next = Self.resumeCommand(in: head.stderr)
        while let command = next {
            let tail = try Self.shell(command)
            #expect(tail.status == 0, "\(tail.stderr)")
            output += tail.stdout
            next = Self.resumeCommand(in: tail.stderr)
        }
        let ids = try output.split(separator: "\n").map { try AuditEvent(jsonString: String($0)).id }
        var loginFilter = filter
        loginFilter.actions = ["auth.*"]
        #expect(ids == (try await Self.stored(server, filter: loginFilter)).map(\.id))
    }

    @Test("export stops cleanly on SIGINT: whole pages, the cursor, the command; resuming gives the rest")
    func exportInterrupted() async throws {
        let total = 20_000
        let (server, directory) = try await Self.server(with: Self.bulkEvents(total))
        defer {
            _ = server.stop()
            try? FileManager.default.removeItem(atPath: directory)
        }
        let process = Process()
        process.executableURL = VigilBinary.url
        process.arguments = ["export", "--server", server.address, "--format", "jsonl", "--page-size", "500"]
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let errors = ReadAll(err.fileHandleForReading)
        // Read until 1,000 events arrived; the export then blocks on the full pipe, far from done.
        var data = Data()
        var interrupted = false
        while true {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            data.append(chunk)
            if !interrupted && data.reduce(0, { $0 + ($1 == 0x0A ? 1 : 0) }) >= 1_000 {
                process.interrupt()
                interrupted = true
            }
        }
        process.waitUntilExit()
        let stderr = String(decoding: errors.wait(), as: UTF8.self)
        #expect(process.terminationStatus == 130, "\(stderr)")
        #expect(stderr.contains("interrupted by SIGINT"), "\(stderr)")
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.hasSuffix("\n"), "only whole events are written")
        let firstPart = try text.split(separator: "\n").map { try AuditEvent(jsonString: String($0)).id }
        #expect(firstPart.count < total, "stopped early")

        let command = try #require(Self.resumeCommand(in: stderr), "\(stderr)")
        let rest = try Self.shell(command)
        #expect(rest.status == 0, "\(rest.stderr)")
        let secondPart = try rest.stdout.split(separator: "\n").map { try AuditEvent(jsonString: String($0)).id }
        let all = try await Self.stored(server).map(\.id)
        #expect(firstPart + secondPart == all, "nothing lost, nothing twice")
    }
}

/// A small RFC 4180 reader: fields split by commas, records by CRLF or LF,
/// quoted fields may hold commas, line breaks and doubled quotes.
enum CSV {
    static func parse(_ text: String) -> [[String]] {
        var records: [[String]] = []
        var record: [String] = []
        var field = String.UnicodeScalarView()
        var quoted = false
        var scalars = Array(text.unicodeScalars)[...]
        var fieldStarted = false
        while let scalar = scalars.popFirst() {
            if quoted {
                if scalar == "\"" {
                    if scalars.first == "\"" {
                        scalars.removeFirst()
                        field.append("\"")
                    } else {
                        quoted = false
                    }
                } else {
                    field.append(scalar)
                }
                continue
            }
            switch scalar {
            case "\"" where field.isEmpty:
                quoted = true
                fieldStarted = true
            case ",":
                record.append(String(field))
                field = .init()
                fieldStarted = true
            case "\r" where scalars.first == "\n":
                break
            case "\n":
                record.append(String(field))
                records.append(record)
                record = []
                field = .init()
                fieldStarted = false
            default:
                field.append(scalar)
                fieldStarted = true
            }
        }
        if fieldStarted || !record.isEmpty {
            record.append(String(field))
            records.append(record)
        }
        return records
    }
}

/// What `vigil export --format csv` must hold for each event.
enum EventCSV {
    static let columns = [
        "id", "seq", "occurred_at", "received_at", "tenant", "actor_id", "actor_type", "actor_name", "actor_email",
        "action", "category", "resource_type", "resource_id", "resource_name", "outcome", "reason", "source_ip",
        "user_agent", "trace_id", "request_id", "description", "targets", "changes", "metadata",
    ]

    static func time(_ timestamp: Google_Protobuf_Timestamp) -> String {
        ((try? timestamp.jsonString()) ?? "").trimmingCharacters(in: CharacterSet(charactersIn: "\""))
    }

    static func check(_ row: [String], against event: AuditEvent) throws {
        #expect(row.count == columns.count)
        guard row.count == columns.count else { return }
        var field: [String: String] = [:]
        for (name, value) in zip(columns, row) { field[name] = value }
        let json = try event.jsonString()
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let actor = object["actor"] as? [String: Any] ?? [:]
        let expected: [String: String] = [
            "id": event.id, "seq": String(event.seq), "occurred_at": time(event.occurredAt), "received_at": time(event.receivedAt),
            "tenant": event.tenant, "actor_id": event.actor.id, "actor_type": actor["type"] as? String ?? "",
            "actor_name": event.actor.name, "actor_email": event.actor.email, "action": event.action,
            "category": object["category"] as? String ?? "", "resource_type": event.resource.type,
            "resource_id": event.resource.id, "resource_name": event.resource.name, "outcome": object["outcome"] as? String ?? "",
            "reason": event.reason, "source_ip": event.sourceIp, "user_agent": event.userAgent, "trace_id": event.traceID,
            "request_id": event.requestID, "description": event.description_p,
        ]
        for (name, value) in expected {
            #expect(field[name] == value, "column \(name) of \(event.id)")
        }
        // Nested fields: JSON text, parsed and compared.
        func parsed(_ name: String) throws -> Any? {
            guard let text = field[name], !text.isEmpty else { return nil }
            return try JSONSerialization.jsonObject(with: Data(text.utf8))
        }
        let targets = try parsed("targets") as? [[String: String]] ?? []
        #expect(targets.map { [$0["type"] ?? "", $0["id"] ?? "", $0["name"] ?? ""] } == event.targets.map { [$0.type, $0.id, $0.name] })
        let changes = try parsed("changes") as? [[String: String]] ?? []
        #expect(changes.map { [$0["field"] ?? "", $0["old"] ?? "", $0["new"] ?? ""] } == event.changes.map { [$0.field, $0.old, $0.new] })
        let metadata = try parsed("metadata") as? [String: String] ?? [:]
        #expect(metadata == event.metadata)
        #expect((field["targets"] ?? "").isEmpty == event.targets.isEmpty)
        #expect((field["metadata"] ?? "").isEmpty == event.metadata.isEmpty)
    }
}
