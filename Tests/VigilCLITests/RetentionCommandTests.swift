import Foundation
import Testing

@Suite("vigil retention prints the retention it set, exactly")
struct RetentionCommandTests {
    @Test("36h is reported as 129600s (36h), not 1d; 30d as 30d; 100000000s exactly; 'default' as what the tenant follows")
    func printsTheExactValue() throws {
        let directory = try ConfigFileTests.temporaryDirectory("retention-command")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try ServerProcess(dataDir: directory + "/data")
        func retention(_ arguments: [String]) throws -> String {
            let result = try VigilBinary.run(["retention"] + arguments + ["--server", server.address])
            #expect(result.status == 0, "\(arguments): \(result.stderr)")
            return result.stdout
        }
        #expect(try retention(["36h", "--tenant", "acme"]) == "Retention of acme is now 129600s (36h).\n")
        #expect(try retention(["30d", "--tenant", "acme"]) == "Retention of acme is now 30d.\n")
        #expect(try retention(["100000000s"]) == "Retention of tenants without their own is now 100000000s.\n")
        #expect(try retention(["default", "--tenant", "acme"]) == "Retention of acme is now 100000000s.\n")
        #expect(try retention(["forever"]) == "Retention of tenants without their own is now forever.\n")
        // A tenant's own "forever" outlasts a default set afterwards (a legal hold).
        #expect(try retention(["forever", "--tenant", "globex"]) == "Retention of globex is now forever.\n")
        #expect(try retention(["30d"]) == "Retention of tenants without their own is now 30d.\n")
        let file = try String(contentsOfFile: directory + "/data/RETENTION", encoding: .utf8)
        #expect(file == "*\t2592000000000000\nglobex\tforever\n", "\(file)")
        #expect(try retention(["default", "--tenant", "globex"]) == "Retention of globex is now 30d.\n")
    }

    @Test("vigil retention forever --tenant keeps that tenant's old events when a shorter default expires everyone else's")
    func foreverForOneTenant() async throws {
        let directory = try ConfigFileTests.temporaryDirectory("retention-hold")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try ServerProcess(dataDir: directory + "/data")
        let old = ISO8601DateFormatter().string(from: Date().addingTimeInterval(-40 * 86_400))
        let lines = ["acme", "globex"].map { tenant in
            #"{"occurredAt":"\#(old)","tenant":"\#(tenant)","actor":{"id":"u-\#(tenant)","type":"USER"},"action":"user.update","resource":{"type":"doc","id":"d"},"outcome":"SUCCESS"}"#
        }.joined(separator: "\n") + "\n"
        let input = directory + "/old.jsonl"
        try lines.write(toFile: input, atomically: true, encoding: .utf8)
        let ingest = try VigilBinary.run(["ingest", input, "--server", server.address])
        #expect(ingest.status == 0, "\(ingest.stderr)")
        let hold = try VigilBinary.run(["retention", "forever", "--tenant", "globex", "--server", server.address])
        #expect(hold.stdout == "Retention of globex is now forever.\n", "\(hold.stderr)")
        let cut = try VigilBinary.run(["retention", "30d", "--server", server.address])
        #expect(cut.status == 0, "\(cut.stderr)")
        for (tenant, left) in [("acme", 0), ("globex", 1)] {
            let count = try VigilBinary.run(["count", "--tenant", tenant, "--format", "json", "--server", server.address])
            #expect(count.status == 0, "\(count.stderr)")
            #expect(count.stdout.hasPrefix(#"{"count":\#(left),"#), "\(tenant): \(count.stdout)")
        }
    }
}
