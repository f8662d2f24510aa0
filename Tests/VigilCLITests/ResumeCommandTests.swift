import ArgumentParser
import Testing

@testable import vigil

@Suite("The resume command printed by tail and export")
struct ResumeCommandTests {
    @Test("a --token value never appears in the resume command; the other options stay, the cursor is replaced")
    func tokenLeftOut() {
        let tail = TailCommand.resumeCommand(
            cursor: "c2", arguments: ["vigil", "tail", "--token", "s3cr3t", "--since", "1h", "--action", "auth.*", "--cursor=c1"])
        #expect(tail == "vigil tail --action 'auth.*' --cursor c2")
        let export = ExportCommand.resumeCommand(
            cursor: "c2", arguments: ["vigil", "export", "--token=s3cr3t", "--tenant", "acme", "--cursor", "c1"])
        #expect(export == "vigil export --tenant acme --cursor c2")
        #expect(ResumeCommand.tokenNote(arguments: ["vigil", "export", "--token=s3cr3t"]) != nil)
        #expect(ResumeCommand.tokenNote(arguments: ["vigil", "tail", "--tenant", "acme"]) == nil)
    }
}

@Suite("vigil serve --tenant-retention")
struct TenantRetentionFlagTests {
    @Test("a tenant name SetRetention would refuse is refused, '*' (RETENTION's line for the default) above all", arguments: ["*=7d", " acme=1d", "a/b=1d"])
    func badTenantNames(_ entry: String) throws {
        let error = #expect(throws: (any Error).self) { _ = try ServeCommand.parse(["--tenant-retention", entry]) }
        #expect(ServeCommand.message(for: error!).contains("the default is --retention"), "\(error!)")
    }

    @Test("tenants, system tenants included, take their own retention")
    func goodTenantNames() throws {
        let command = try ServeCommand.parse(["--tenant-retention", "acme=30d", "--tenant-retention", "_alerts=forever"])
        let settings = try command.retentionSettings()
        #expect(settings.tenantNanos == ["acme": 30 * 86_400 * 1_000_000_000, "_alerts": .max])
    }
}
