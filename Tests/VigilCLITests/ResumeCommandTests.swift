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
