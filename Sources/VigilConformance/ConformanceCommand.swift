import ArgumentParser
import Foundation
import SwiftProtobuf
import VigilClient
import VigilCore
import VigilProto

/// `vigil-conformance`: the conformance scenario (`Clients/conformance/SCENARIO.md`)
/// with the Swift client. `Clients/conformance/run.sh` runs it beside the other
/// clients and compares their outputs.
@main
struct ConformanceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vigil-conformance",
        abstract: "Runs the conformance scenario (Clients/conformance/SCENARIO.md) with the Swift client.",
        discussion: """
            Prints one JSON object per step (keys sorted, no spaces) on stdout. Exit status: \
            0 done, 1 a step failed, 2 the server could not be reached.
            """)

    @Option(help: "HOST:PORT of the server.")
    var address: String

    @Option(help: "The tenant replacing TENANT in the events.")
    var tenant: String

    @Option(help: "API token (default $VIGIL_TOKEN).")
    var token: String?

    @Option(help: "events.jsonl (default $VIGIL_CONFORMANCE_EVENTS, else Clients/conformance/events.jsonl of this repository).")
    var events: String?

    func run() async throws {
        guard let path = events ?? Self.defaultEventsPath() else {
            Self.complain("events.jsonl not found; pass --events PATH")
            throw ExitCode(1)
        }
        let loaded: [AuditEvent]
        do {
            loaded = try Self.loadEvents(path: path, tenant: tenant)
        } catch {
            Self.complain("\(error)")
            throw ExitCode(1)
        }
        guard loaded.count >= 260 else {
            Self.complain("\(path) holds \(loaded.count) events, the scenario needs 260")
            throw ExitCode(1)
        }

        let client: VigilClient
        do {
            var configuration = try VigilClient.Configuration(server: address)
            configuration.token = token ?? ProcessInfo.processInfo.environment["VIGIL_TOKEN"] ?? ""
            configuration.clientName = "vigil-swift-conformance/\(vigilClientVersion)"
            client = try await VigilClient.connect(configuration)
        } catch {
            Self.complain("cannot connect: \(error)")
            throw ExitCode(2)
        }
        do {
            try await Scenario(client: client, tenant: tenant, events: loaded, emit: Self.emit).run()
        } catch {
            await client.close()
            Self.complain("failed: \(error)")
            throw ExitCode(1)
        }
        await client.close()
    }

    /// Prints a step's line at once (each line is whole, even if a later step fails).
    static func emit(_ line: CanonicalJSON) throws {
        do {
            try FileHandle.standardOutput.write(contentsOf: Data((line.text + "\n").utf8))
        } catch {
            throw ScenarioFailure("cannot write to standard output: \(error.localizedDescription)")
        }
    }

    static func complain(_ message: String) {
        try? FileHandle.standardError.write(contentsOf: Data("conformance: \(message)\n".utf8))
    }

    /// The events of `events.jsonl` (protobuf JSON, one a line), with the
    /// placeholder tenant `TENANT` replaced by `tenant`.
    static func loadEvents(path: String, tenant: String) throws -> [AuditEvent] {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ScenarioFailure("cannot read \(path): \(error.localizedDescription)")
        }
        var events: [AuditEvent] = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
        where !line.allSatisfy(\.isWhitespace) {
            do {
                var event = try AuditEvent(jsonString: String(line))
                if event.tenant == "TENANT" { event.tenant = tenant }
                events.append(event)
            } catch {
                throw ScenarioFailure("\(path):\(number + 1): not an event: \(error)")
            }
        }
        return events
    }

    /// `$VIGIL_CONFORMANCE_EVENTS`, else `Clients/conformance/events.jsonl` of
    /// the repository this program sits in (`.build/debug/vigil-conformance`)
    /// or was built from, else of the working directory.
    static func defaultEventsPath() -> String? {
        if let path = ProcessInfo.processInfo.environment["VIGIL_CONFORMANCE_EVENTS"], !path.isEmpty { return path }
        let relative = "Clients/conformance/events.jsonl"
        var roots: [URL] = []
        if var directory = Bundle.main.executableURL?.resolvingSymlinksInPath().deletingLastPathComponent() {
            while directory.path != "/" && !directory.path.isEmpty {
                roots.append(directory)
                directory.deleteLastPathComponent()
            }
        }
        // Sources/VigilConformance/ConformanceCommand.swift → the repository.
        roots.append(URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent())
        roots.append(URL(fileURLWithPath: FileManager.default.currentDirectoryPath))
        return roots.map { $0.appendingPathComponent(relative).path }.first { FileManager.default.fileExists(atPath: $0) }
    }
}
