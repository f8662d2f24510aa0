import Foundation
import Testing

/// `Protos/generate.sh` records the sha256 of every .proto and every generated
/// file in `Sources/VigilProto/Generated/FINGERPRINT`. A .proto changed without
/// regenerating, or a generated file edited by hand, fails here.
@Suite("Generated protobuf code")
struct GeneratedCodeTests {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test("is current with Protos/ (run Protos/generate.sh when this fails)")
    func fingerprintMatches() throws {
        let fingerprint = try String(
            contentsOf: Self.root.appendingPathComponent("Sources/VigilProto/Generated/FINGERPRINT"), encoding: .utf8)
        var recorded: [String: String] = [:]
        for line in fingerprint.split(separator: "\n") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            try #require(parts.count == 2)
            recorded[String(parts[1])] = String(parts[0])
        }
        let protos = try FileManager.default.contentsOfDirectory(atPath: Self.root.appendingPathComponent("Protos/vigil/v1").path)
            .filter { $0.hasSuffix(".proto") }.map { "vigil/v1/" + $0 }
        let generated = try FileManager.default.contentsOfDirectory(atPath: Self.root.appendingPathComponent("Sources/VigilProto/Generated").path)
            .filter { $0.hasSuffix(".pb.swift") }
        #expect(Set(recorded.keys) == Set(protos + generated), "a .proto or generated file was added or removed")
        for proto in protos {
            #expect(try sha256(Self.root.appendingPathComponent("Protos/" + proto)) == recorded[proto], "\(proto) changed: run Protos/generate.sh")
        }
        for file in generated {
            #expect(try sha256(Self.root.appendingPathComponent("Sources/VigilProto/Generated/" + file)) == recorded[file], "\(file) was edited by hand: run Protos/generate.sh")
        }
    }

    private func sha256(_ url: URL) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        process.arguments = [url.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(String(decoding: output, as: UTF8.self).prefix { $0 != " " })
    }
}
