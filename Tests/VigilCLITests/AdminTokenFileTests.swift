import Foundation
import Testing

@Suite("vigil serve --admin-token-file: created private, checked, rotation leaves a notice")
struct AdminTokenFileTests {
    @Test("a missing file is created 0600; an open one warns; an earlier admin still active is named until revoked")
    func rotation() throws {
        let directory = try ConfigFileTests.temporaryDirectory("admin-token-file")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let tokenFile = directory + "/admin.token"
        let arguments = ["--data-dir", directory + "/data", "--listen", "127.0.0.1:0", "--admin-token-file", tokenFile]
        var server = try LoggedServer(arguments: arguments, directory: directory)
        #expect(try fileMode(tokenFile) == 0o600)
        #expect(server.log.contains("wrote a new admin token to \(tokenFile)"), "\(server.log)")
        #expect(!server.log.contains("still active"), "\(server.log)")
        #expect(server.stop() == 0)

        // Rotation: a new secret in the file, readable by others by mistake.
        try FileManager.default.removeItem(atPath: tokenFile)
        let generated = try VigilBinary.run(["token", "generate"]).stdout
        try generated.write(toFile: tokenFile, atomically: false, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: tokenFile)
        try FileManager.default.removeItem(atPath: directory + "/server.log")
        server = try LoggedServer(arguments: arguments, directory: directory)
        let log = server.log
        #expect(log.contains("--admin-token-file \(tokenFile) may be read by group or others (mode 644); it holds an admin secret: chmod 600 \(tokenFile)"), "\(log)")
        let notice = try #require(log.split(separator: "\n").first { $0.contains("made by an earlier vigil serve is still active") }, "\(log)")
        let old = try #require(notice.split(separator: " ").first { $0.hasPrefix("tok_") }.map(String.init))
        #expect(notice.contains("revoke it: vigil token revoke \(old)"), "\(notice)")
        let revoked = try VigilBinary.run(["token", "revoke", old, "--token-file", tokenFile, "--server", server.address])
        #expect(revoked.status == 0, "\(revoked.stderr)")
        #expect(server.stop() == 0)

        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: tokenFile)
        try FileManager.default.removeItem(atPath: directory + "/server.log")
        server = try LoggedServer(arguments: arguments, directory: directory)
        #expect(!server.log.contains("still active") && !server.log.contains("may be read by group"), "\(server.log)")
        #expect(server.stop() == 0)
    }

    @Test("the file is created with O_EXCL: a dangling symbolic link in its place is refused (78), not followed or replaced")
    func createdExclusively() throws {
        let directory = try ConfigFileTests.temporaryDirectory("admin-token-symlink")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let tokenFile = directory + "/admin.token"
        try FileManager.default.createSymbolicLink(atPath: tokenFile, withDestinationPath: directory + "/elsewhere")
        let result = try VigilBinary.run(["serve", "--data-dir", directory + "/data", "--listen", "127.0.0.1:0", "--admin-token-file", tokenFile])
        #expect(result.status == 78, "\(result.stderr)")
        #expect(result.stderr.contains("Error: --admin-token-file \(tokenFile) does not exist and cannot be created"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory + "/elsewhere"))
    }
}
