import ArgumentParser
import Foundation
import SwiftProtobuf
import VigilClient
import VigilCore
import VigilProto
import VigilServer
import VigilStorage

struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Create, list and revoke API tokens (needs an admin token).",
        discussion: """
            Scopes: ingest (write events), read (query, count, export, tail, get), admin \
            (tokens, retention, stats, verify; includes ingest and read). A token bound \
            to tenants (--tenant, repeatable) works only in those; without --tenant it \
            works in every tenant, including the server's own _system and _alerts. \
            The server keeps only a hash of each token: a token's secret is shown once, \
            when it is created. Creating and revoking tokens is recorded in _system. \
            Examples:
              vigil token create --name web-agent --scope ingest --tenant acme
              vigil token create --name soc --scope read
              vigil token list
              vigil token revoke tok_3f2a9c0d1e2b4a5f
            """,
        subcommands: [CreateTokenCommand.self, ListTokensCommand.self, RevokeTokenCommand.self, GenerateTokenCommand.self]
    )
}

extension AccessScope: ExpressibleByArgument {}

struct CreateTokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "Create a token and print its secret (shown only this once).")

    @OptionGroup var client: ClientOptions

    @Option(name: .long, help: "A name saying who uses the token (1-64 bytes).")
    var name: String

    @Option(name: .long, help: ArgumentHelp("ingest, read or admin (repeatable).", valueName: "scope"))
    var scope: [AccessScope]

    @Option(name: .long, help: ArgumentHelp("A tenant the token is bound to (repeatable); none: every tenant.", valueName: "tenant"))
    var tenant: [String] = []

    @Option(name: .long, help: "Events per second the token may ingest (0: the server's default).")
    var ingestRate: UInt64 = 0

    @Flag(name: .long, help: "Print the secret alone (for scripts).")
    var quiet = false

    func run() async throws {
        var request = Vigil_V1_CreateTokenRequest()
        request.name = name
        request.scopes = scope.map(\.proto)
        request.tenants = tenant
        request.ingestEventsPerSecond = ingestRate
        let response = try await client.withClient { connection in
            try await connection.createToken(request, timeout: client.callTimeout)
        }
        if quiet {
            print(response.token)
            return
        }
        print("Created \(describe(response.info)).")
        print("Its secret, shown only this once:\n\n    \(response.token)\n")
    }
}

struct ListTokensCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List tokens (never their secrets).")

    @OptionGroup var client: ClientOptions

    @Flag(name: .long, help: "Also list revoked tokens.")
    var all = false

    @Option(name: .long, help: "table or json.")
    var format = "table"

    func validate() throws {
        guard ["table", "json"].contains(format) else { throw ValidationError("--format must be table or json") }
    }

    func run() async throws {
        let tokens = try await client.withClient { connection in
            try await connection.listTokens(timeout: client.callTimeout)
        }.filter { all || !$0.hasRevokedAt }
        if format == "json" {
            for token in tokens { print(try token.jsonString()) }
            return
        }
        let rows = [["ID", "NAME", "SCOPES", "TENANTS", "CREATED", "STATE"]] + tokens.map { token in
            [
                token.id, token.name, scopes(token), token.tenants.isEmpty ? "*" : token.tenants.joined(separator: ","),
                formatTime(token.createdAt),
                token.hasRevokedAt ? "revoked \(formatTime(token.revokedAt))" : "active",
            ]
        }
        let widths = (0..<6).map { column in rows.map { $0[column].count }.max() ?? 0 }
        for row in rows {
            print(zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  "))
        }
    }
}

struct RevokeTokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke", abstract: "Revoke a token; connections using it are closed at once.")

    @OptionGroup var client: ClientOptions

    @Argument(help: "The token's id (tok_…), as `vigil token list` shows it.")
    var id: String

    func run() async throws {
        let info = try await client.withClient { connection in
            try await connection.revokeToken(id: id, timeout: client.callTimeout)
        }
        print("Revoked \(describe(info)).")
    }
}

struct GenerateTokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Print a new random secret in the token format, for --admin-token-file or $VIGIL_ADMIN_TOKEN.",
        discussion: "Makes no call: the server learns the secret when it starts with it.")

    func run() throws {
        print(TokenRegistry.generateSecret())
    }
}

private func scopes(_ token: Vigil_V1_TokenInfo) -> String {
    token.scopes.compactMap(AccessScope.init).map(\.rawValue).joined(separator: ",")
}

private func describe(_ token: Vigil_V1_TokenInfo) -> String {
    let tenants = token.tenants.isEmpty ? "every tenant" : "tenants " + token.tenants.joined(separator: ", ")
    return "token \(token.name) (\(token.id)): \(scopes(token)) in \(tenants)"
}

private func formatTime(_ timestamp: Google_Protobuf_Timestamp) -> String {
    Date(timeIntervalSince1970: TimeInterval(timestamp.seconds)).ISO8601Format()
}

struct RetentionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retention",
        abstract: "Change how long events are kept (needs an admin token).",
        discussion: """
            Examples:
              vigil retention 30d --tenant acme     acme's events are kept 30 days
              vigil retention default --tenant acme acme follows the default again
              vigil retention 365d                  the default for every other tenant
              vigil retention forever --tenant acme acme's events are kept for ever
              vigil retention forever               keep everything by default
            Events older than the retention stop being returned at once and are deleted \
            with their parts later. The change survives restarts and is recorded in _system.
            """)

    @OptionGroup var client: ClientOptions

    @Argument(help: ArgumentHelp("A duration (at least 1d: 30d, 36h, 2w, 1y), 'forever' or 'default'.", valueName: "duration"))
    var retention: String

    @Option(name: .long, help: "The tenant; without it, the default for tenants without their own.")
    var tenant: String?

    func validate() throws {
        _ = try request()
    }

    func request() throws -> Vigil_V1_SetRetentionRequest {
        var request = Vigil_V1_SetRetentionRequest()
        request.tenant = tenant ?? ""
        switch retention {
        case "forever":
            request.forever = true
        case "default":
            guard tenant != nil else { throw ValidationError("'default' removes a tenant's own retention: give --tenant") }
        default:
            guard case .success(let seconds) = DurationText.seconds(retention) else {
                throw ValidationError("'\(retention)' is not a duration of at most 100 years such as 30d or 36h, 'forever' or 'default'")
            }
            request.retention = .init(seconds: seconds, nanos: 0)
        }
        return request
    }

    func run() async throws {
        let request = try request()
        let response = try await client.withClient { connection in
            try await connection.setRetention(request, timeout: client.callTimeout)
        }
        print("Retention of \(tenant ?? "tenants without their own") is now \(Self.effect(of: response, asked: request, given: retention)).")
    }

    /// The retention now in force, exactly (as _system records it: `90d`,
    /// `129600s`, `forever`), with the duration as given when that is what it is.
    static func effect(of response: Vigil_V1_SetRetentionResponse, asked request: Vigil_V1_SetRetentionRequest, given: String) -> String {
        guard response.hasRetention else { return RetentionSettings.Values.text(nil) }
        let (nanos, overflow) = response.retention.seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return "\(response.retention.seconds)s" }
        let text = RetentionSettings.Values.text(nanos + Int64(response.retention.nanos))
        let asGiven = request.hasRetention && request.retention == response.retention && given != text
        return asGiven ? "\(text) (\(given))" : text
    }
}
