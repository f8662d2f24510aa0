import Foundation
import Testing

@testable import vigil_conformance

/// The conformance scenario (`Clients/conformance/SCENARIO.md`): `run.sh` runs
/// the Python and Swift clients (and the C one where it builds) against one
/// `vigil serve` and compares their outputs byte for byte.
@Suite("Conformance: the clients agree on one scenario", .serialized)
struct ConformanceTests {
    /// The repository (this file is Tests/VigilCLITests/ConformanceTests.swift).
    static let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The programs SwiftPM built next to the test bundle.
    static func binary(_ name: String) -> String {
        VigilBinary.url.deletingLastPathComponent().appendingPathComponent(name).path
    }

    static let installHint = """
        the conformance test needs python3 with the protobuf module (4.21 or later) to run the Python \
        client: apt-get install python3 python3-protobuf (Debian/Ubuntu), or pip install 'protobuf>=4.21'; \
        set PYTHON to pick an interpreter
        """

    /// The first interpreter that can import the Python client (`$PYTHON`, then
    /// `python3` on PATH, then Debian's `/usr/bin/python3`), or why none can.
    static func python() -> Result<String, CLITestError> {
        var candidates = ["python3", "/usr/bin/python3"]
        if let chosen = ProcessInfo.processInfo.environment["PYTHON"], !chosen.isEmpty { candidates.insert(chosen, at: 0) }
        var tried: [String] = []
        for candidate in candidates {
            let probe = run(
                ["/usr/bin/env", candidate, "-c", "import vigil_client.client"],
                environment: ["PYTHONPATH": repository.appendingPathComponent("Clients/python").path])
            if probe?.status == 0 { return .success(candidate) }
            let said = probe.map { $0.stderr.split(separator: "\n").last.map(String.init) ?? "exit \($0.status)" } ?? "cannot run"
            tried.append("\(candidate): \(said)")
        }
        return .failure(CLITestError("\(installHint) (tried \(tried.joined(separator: "; ")))"))
    }

    /// Runs a program to its end; nil when it cannot be started.
    static func run(_ arguments: [String], environment: [String: String] = [:]) -> VigilBinary.Output? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        // A pipe closed at once, not FileHandle.nullDevice: the shared
        // null-device handle must not be handed to Process from several tests.
        let input = Pipe()
        process.standardInput = input
        do { try process.run() } catch { return nil }
        try? input.fileHandleForWriting.close()
        let errData = ReadAll(err.fileHandleForReading)
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return VigilBinary.Output(
            status: process.terminationStatus,
            stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData.wait(), as: UTF8.self))
    }

    enum Mode: String, CustomTestStringConvertible, CaseIterable {
        /// run.sh's default: the server requires a token; the clients send its admin token.
        case adminToken
        case noAuth

        var testDescription: String { self == .adminToken ? "authenticated" : "--no-auth" }
    }

    @Test("run.sh: the Python and Swift clients run the scenario and print the same lines", arguments: Mode.allCases)
    func pythonAndSwiftAgree(mode: Mode) throws {
        let python = try Self.python().get()
        var environment = [
            "VIGIL_BIN": Self.binary("vigil"),
            "VIGIL_SWIFT_CONFORMANCE": Self.binary("vigil-conformance"),
            "PYTHON": python,
        ]
        if mode == .noAuth { environment["VIGIL_SERVER_ARGS"] = "--no-auth" }
        let script = Self.repository.appendingPathComponent("Clients/conformance/run.sh").path
        let result = try #require(Self.run(["/usr/bin/env", "bash", script], environment: environment), "cannot run \(script)")
        #expect(result.status == 0, "run.sh failed:\n\(result.stderr)")

        let lines = result.stderr.split(separator: "\n").map(String.init)
        for client in ["python", "swift"] {
            #expect(lines.contains("conformance: \(client): running (tenant conf-\(client))"), "\(client) did not run:\n\(result.stderr)")
        }
        // "conformance: OK: python swift agree on all 11 steps" (c too, where it builds).
        let agreed = lines.first { $0.hasPrefix("conformance: OK: ") && $0.hasSuffix(" agree on all 11 steps") }
        let names = agreed.map { $0.dropFirst("conformance: OK: ".count).dropLast(" agree on all 11 steps".count).split(separator: " ") }
        #expect(names?.contains("python") == true && names?.contains("swift") == true, "no agreement of python and swift:\n\(result.stderr)")
        if mode == .adminToken {
            #expect(result.stderr.contains("clients authenticate with its admin token"), "\(result.stderr)")
        }
    }

    @Test("the Swift client prints JSON as Python's json.dumps(sort_keys=True, separators=(',', ':')) does, escapes included")
    func jsonLikePython() throws {
        let value: CanonicalJSON = [
            "b": .strings(["é", "😀", "\u{7F}", "\u{01}", "\u{00}", "\u{1F}", " ~/", "\"", "\\", "\n\t\r\u{08}\u{0C}", "\u{2028}", "e\u{301}"]),
            "a": 1,
            "é": true,
            "Z": .integer(-5),
            "e\u{301}": false,
            "": [],
            "nested": ["y": [], "x": [:], "w": [["k", 0]]],
        ]
        let dump = #"""
            import json
            value = {
                "b": ["\u00e9", "\U0001F600", "\x7f", "\x01", "\x00", "\x1f", " ~/", "\"", "\\", "\n\t\r\b\f", "\u2028", "e\u0301"],
                "a": 1,
                "\u00e9": True,
                "Z": -5,
                "e\u0301": False,
                "": [],
                "nested": {"y": [], "x": {}, "w": [["k", 0]]},
            }
            print(json.dumps(value, sort_keys=True, separators=(",", ":")))
            """#
        let python = try #require(Self.run(["/usr/bin/env", "python3", "-c", dump]), "cannot run python3: \(Self.installHint)")
        try #require(python.status == 0, "python3 failed (\(Self.installHint)): \(python.stderr)")
        #expect(value.text + "\n" == python.stdout)
    }
}
