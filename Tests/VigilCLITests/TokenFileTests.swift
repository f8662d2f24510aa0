import Foundation
import Testing

/// A token from a file or the environment stays out of `ps` and shell history.
@Suite("client commands read the token from --token-file or $VIGIL_TOKEN_FILE")
struct TokenFileTests {
    @Test("--token-file and $VIGIL_TOKEN_FILE authenticate (trailing newline ignored); a readable-by-others file warns; missing, empty or with --token refused")
    func tokenFile() throws {
        let directory = try ConfigFileTests.temporaryDirectory("token-file")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let admin = try VigilBinary.run(["token", "generate"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let server = try ServerProcess(
            dataDir: directory + "/data", authenticated: true, environment: ProcessInfo.processInfo.environment.merging(["VIGIL_ADMIN_TOKEN": admin]) { $1 })
        let file = directory + "/admin-token"
        #expect(FileManager.default.createFile(atPath: file, contents: Data((admin + "\n").utf8), attributes: [.posixPermissions: 0o600]))
        let server_ = ["--server", server.address]

        let fromFlag = try VigilBinary.run(["token", "list", "--token-file", file] + server_)
        #expect(fromFlag.status == 0, "\(fromFlag.stderr)")
        #expect(!fromFlag.stderr.contains("warning"), "\(fromFlag.stderr)")
        let fromEnvironment = try VigilBinary.run(["token", "list"] + server_, environment: ["VIGIL_TOKEN_FILE": file, "VIGIL_TOKEN": ""])
        #expect(fromEnvironment.status == 0, "\(fromEnvironment.stderr)")

        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: file)
        let open = try VigilBinary.run(["token", "list", "--token-file", file] + server_)
        #expect(open.status == 0, "\(open.stderr)")
        #expect(open.stderr.contains("warning: --token-file \(file) may be read by group or others (mode 644); make it private: chmod 600 \(file)"), "\(open.stderr)")

        let missing = try VigilBinary.run(["count", "--token-file", directory + "/none"] + server_)
        #expect(missing.status == 66, "\(missing.stderr)")
        #expect(missing.stderr.contains("Error: --token-file \(directory)/none does not exist"), "\(missing.stderr)")
        #expect(FileManager.default.createFile(atPath: directory + "/empty", contents: Data("\n".utf8), attributes: [.posixPermissions: 0o600]))
        let empty = try VigilBinary.run(["count", "--token-file", directory + "/empty"] + server_)
        #expect(empty.status == 66, "\(empty.stderr)")
        #expect(empty.stderr.contains("is empty; it should hold the token"), "\(empty.stderr)")
        let both = try VigilBinary.run(["count", "--token", admin, "--token-file", file] + server_)
        #expect(both.status == 64, "\(both.stderr)")
        #expect(both.stderr.contains("give --token or --token-file, not both"), "\(both.stderr)")
    }

    @Test("--token's help says it is visible in ps")
    func tokenHelpWarns() throws {
        let help = try VigilBinary.run(["count", "--help"]).stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(help.contains("--token-file <file>"), "\(help)")
        #expect(help.contains("Visible to other users in `ps`"), "\(help)")
    }
}
