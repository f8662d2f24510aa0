import Foundation
import Testing

@Suite("Tokens from the command line, against a real server")
struct AuthCLITests {
    static func temporaryDirectory(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("vigil-\(name)-\(UUID().uuidString)").path
    }

    static let event = #"{"occurredAt":"2026-11-20T10:15:00Z","tenant":"TENANT","actor":{"id":"u-1"},"action":"user.update"}"#

    @Test("the first start prints an admin token once; it works, and a restart prints none")
    func firstStartPrintsAdminToken() throws {
        let directory = Self.temporaryDirectory("bootstrap")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let firstOut = directory + ".first.out"
        defer { try? FileManager.default.removeItem(atPath: firstOut) }
        var server = try ServerProcess(dataDir: directory + "/data", authenticated: true, stdoutPath: firstOut)
        let printed = try String(contentsOfFile: firstOut, encoding: .utf8)
        let token = try #require(printed.split(whereSeparator: \.isWhitespace).first { $0.hasPrefix("vgl_") }.map(String.init), "\(printed)")
        #expect(printed.contains("shown only this once"))
        let list = try VigilBinary.run(["token", "list", "--server", server.address, "--token", token])
        #expect(list.status == 0, "\(list.stderr)")
        #expect(list.stdout.contains("admin"))
        _ = server.stop()

        let secondOut = directory + ".second.out"
        defer { try? FileManager.default.removeItem(atPath: secondOut) }
        server = try ServerProcess(dataDir: directory + "/data", authenticated: true, stdoutPath: secondOut)
        #expect(try String(contentsOfFile: secondOut, encoding: .utf8).contains("vgl_") == false)
        let again = try VigilBinary.run(["token", "list", "--server", server.address, "--token", token])
        #expect(again.status == 0, "the token survives the restart: \(again.stderr)")
        _ = server.stop()
    }

    @Test("vigil token create / list / revoke and vigil retention, end to end with scopes and tenants")
    func tokenLifecycle() throws {
        let directory = Self.temporaryDirectory("tokens")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let tokenFile = directory + "/admin.token"
        let server = try ServerProcess(dataDir: directory + "/data", extraArguments: ["--admin-token-file", tokenFile], authenticated: true)
        defer { _ = server.stop() }
        // The missing file was created, private, with a working token.
        let attributes = try FileManager.default.attributesOfItem(atPath: tokenFile)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let admin = try String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        func vigil(_ arguments: [String], token: String?, input: String? = nil) throws -> VigilBinary.Output {
            try VigilBinary.run(arguments + ["--server", server.address] + (token.map { ["--token", $0] } ?? []), input: input)
        }

        let noToken = try vigil(["count"], token: nil)
        #expect(noToken.status != 0)
        #expect(noToken.stderr.contains("UNAUTHENTICATED") && noToken.stderr.contains("--token"), "\(noToken.stderr)")

        let created = try vigil(["token", "create", "--name", "web-agent", "--scope", "ingest", "--tenant", "acme", "--quiet"], token: admin)
        #expect(created.status == 0, "\(created.stderr)")
        let agent = created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(agent.hasPrefix("vgl_"))

        let own = try vigil(["ingest", "-"], token: agent, input: Self.event.replacingOccurrences(of: "TENANT", with: "acme") + "\n")
        #expect(own.status == 0, "\(own.stderr)")
        let other = try vigil(["ingest", "-"], token: agent, input: Self.event.replacingOccurrences(of: "TENANT", with: "globex") + "\n")
        #expect(other.status != 0)
        #expect(other.stderr.contains("PERMISSION_DENIED") && other.stderr.contains("globex"), "\(other.stderr)")
        let read = try vigil(["query"], token: agent)
        #expect(read.status != 0)
        #expect(read.stderr.contains("PERMISSION_DENIED") && read.stderr.contains("read scope"), "\(read.stderr)")

        let listed = try vigil(["token", "list", "--format", "json"], token: admin)
        let line = try #require(listed.stdout.split(separator: "\n").first { $0.contains("web-agent") })
        let info = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let id = try #require(info["id"] as? String)
        #expect(!listed.stdout.contains(agent), "secrets are never listed")

        let revoked = try vigil(["token", "revoke", id], token: admin)
        #expect(revoked.status == 0, "\(revoked.stderr)")
        let afterRevoke = try vigil(["ingest", "-"], token: agent, input: Self.event.replacingOccurrences(of: "TENANT", with: "acme") + "\n")
        #expect(afterRevoke.status != 0)
        #expect(afterRevoke.stderr.contains("UNAUTHENTICATED"), "\(afterRevoke.stderr)")

        let retention = try vigil(["retention", "400d", "--tenant", "acme"], token: admin)
        #expect(retention.status == 0, "\(retention.stderr)")
        #expect(retention.stdout.contains("400d"))

        let system = try vigil(["query", "--tenant", "_system", "--format", "json"], token: admin)
        #expect(system.status == 0, "\(system.stderr)")
        for action in ["token.create", "token.revoke", "retention.update"] {
            #expect(system.stdout.contains("\"\(action)\""), "\(action) in _system: \(system.stdout)")
        }
    }

    @Test("a short --admin-token-file token stops the start, naming the flag")
    func shortAdminToken() throws {
        let directory = Self.temporaryDirectory("short-token")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try "short".write(toFile: directory + "/admin.token", atomically: true, encoding: .utf8)
        let result = try VigilBinary.run(["serve", "--listen", "127.0.0.1:0", "--data-dir", directory + "/data", "--admin-token-file", directory + "/admin.token"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("--admin-token-file") && result.stderr.contains("at least 24"), "\(result.stderr)")
    }
}
