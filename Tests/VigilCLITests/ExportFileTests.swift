import Foundation
import Testing

@Suite("vigil export --output: a private file, and none left by a refused export")
struct ExportFileTests {
    @Test("a new file is 0600, an existing one keeps its mode; a bad cursor leaves no header-only file")
    func outputFile() throws {
        let directory = try ConfigFileTests.temporaryDirectory("export-file")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try ServerProcess(dataDir: directory + "/data")
        let made = directory + "/made.csv"
        let export = try VigilBinary.run(["export", "-o", made, "--server", server.address])
        #expect(export.status == 0, "\(export.stderr)")
        #expect(try fileMode(made) == 0o600)

        let refused = directory + "/refused.csv"
        let bad = try VigilBinary.run(["export", "-o", refused, "--cursor", "bogus", "--server", server.address])
        #expect(bad.status == 1, "\(bad.stderr)")
        #expect(bad.stderr.contains("INVALID_ARGUMENT"), "\(bad.stderr)")
        #expect(!FileManager.default.fileExists(atPath: refused), "no header-only file is left")

        let existing = directory + "/existing.csv"
        #expect(FileManager.default.createFile(atPath: existing, contents: Data("kept\n".utf8), attributes: [.posixPermissions: 0o640]))
        let again = try VigilBinary.run(["export", "-o", existing, "--cursor", "bogus", "--server", server.address])
        #expect(again.status == 1, "\(again.stderr)")
        #expect(try String(contentsOfFile: existing, encoding: .utf8) == "kept\n", "a file that was there stays")
        #expect(try fileMode(existing) == 0o640)
    }
}
