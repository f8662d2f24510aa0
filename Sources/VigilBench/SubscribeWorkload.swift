import ArgumentParser
import Foundation
import VigilClient
import VigilCore
import VigilProto

struct SubscribeWorkload: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "subscribe",
        abstract: "Subscribe delivery (not measured yet: reported as skipped).",
        discussion: """
            Calls vigil.v1.Audit/Subscribe to check that the server answers it, then reports
            'skipped' and exits 0, with no figures: the workload (subscribers while ingesting at a
            fixed rate, ack-to-delivery latency) is not written yet.
            """
    )

    @OptionGroup var common: CommonOptions

    @Option(name: .long, help: ArgumentHelp("Use a running server instead of starting one.", valueName: "host:port"))
    var server: String?

    func run() async throws {
        let started = Date()
        let result = try await execute()
        try Report.emit(result, jsonPath: common.json, startedAt: started)
        if result.status == "failed" { throw ExitCode(1) }
    }

    func execute() async throws -> WorkloadResult {
        var result = WorkloadResult(workload: "subscribe")
        result.parameters = ["server": server.map { .string($0) } ?? "started by vigil-bench"]
        let answer: Answer
        if let server {
            answer = try await Self.probe(try VigilClient.Configuration(server: server))
        } else {
            let directory = try temporaryDirectory("subscribe")
            defer { common.cleanUp(directory) }
            let launcher = try common.launcher([])
            answer = try await withServer(launcher, dataDirectory: directory + "/data") { process in
                try await Self.probe(process.clientConfiguration)
            }
        }
        let line: String
        switch answer {
        case .unimplemented(let message):
            result.status = "skipped"
            line = "skipped: server answers UNIMPLEMENTED (\(message))"
            result.results = ["outcome": "skipped", "serverAnswer": "UNIMPLEMENTED", "serverMessage": .string(message)]
        case .accepted(let detail):
            result.status = "skipped"
            line = "skipped: the server accepted Subscribe (\(detail)), but this version of vigil-bench does not measure it yet"
            result.results = ["outcome": "not measured", "serverAnswer": .string(detail)]
        case .failed(let error):
            result.status = "failed"
            line = "failed: \(error)"
            result.results = ["outcome": "failed", "error": .string("\(error)")]
        }
        print("subscribe: " + line)
        result.notes.append("no subscription figures: \(line)")
        return result
    }

    enum Answer: Sendable {
        case unimplemented(String)
        case accepted(String)
        case failed(VigilError)
    }

    /// Opens a Subscribe call and reports how the server answered.
    static func probe(_ configuration: VigilClient.Configuration) async throws -> Answer {
        var configuration = configuration
        configuration.clientName = "vigil-bench"
        return try await withClients(1, configuration) { clients in
            var request = Vigil_V1_SubscribeRequest()
            request.fromNow = true
            do {
                // A streaming call read as unary: an implementation that streams runs into the deadline.
                let _: Vigil_V1_SubscribeResponse = try await clients[0].unary(.subscribe, request, timeout: .seconds(5))
                return .accepted("it answered the call")
            } catch let error as VigilError {
                switch error.code {
                case .unimplemented: return .unimplemented(error.message)
                case .deadlineExceeded: return .accepted("the call stayed open, as a subscription does")
                default: return .failed(error)
                }
            }
        }
    }
}
