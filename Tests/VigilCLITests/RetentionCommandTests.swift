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
    }
}
