import ArgumentParser
import SwiftProtobuf
import VigilClient
import VigilCore

struct GetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get",
        abstract: "Print one event by id, as JSON.",
        discussion: "Exits with status 1 and NOT_FOUND when no event has the id."
    )

    @OptionGroup var client: ClientOptions

    @Argument(help: "The event's id (a UUID).")
    var id: String

    func run() async throws {
        let event = try await client.withClient { connection in
            try await connection.get(id: id, timeout: client.callTimeout)
        }
        print(try event.jsonString())
    }
}

/// A `VigilError` as the CLI reports it: the code, the message, exit status 1.
struct CLIError: Error, CustomStringConvertible {
    let error: VigilError
    init(_ error: VigilError) { self.error = error }
    var description: String { error.description }
}
