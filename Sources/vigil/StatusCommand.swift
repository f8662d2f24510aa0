import ArgumentParser
import Foundation
import VigilCore
import VigilProto

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "One screen about a running server: version, uptime, events, ingest rate, disk, parts, connections, health.",
        discussion: """
            Asks the server (GetStats; needs an admin token that is not bound to tenants):
              vigil status
              vigil status --server 10.0.0.5:7700 --format json
            The ingest rate is computed by the server: events acknowledged per second \
            over the last minute. For probes without a token, use --metrics-listen's \
            /readyz (see `vigil serve --help`).
            """)

    @OptionGroup var client: ClientOptions

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text, json
    }

    @Option(name: .long, help: "text (one screen for people) or json (one object for scripts).")
    var format: Format = .text

    func run() async throws {
        let stats = try await client.withClient { connection in
            try await connection.stats(timeout: client.callTimeout)
        }
        let report = StatusReport(stats, server: client.server)
        switch format {
        case .text:
            print(report.text, terminator: "")
        case .json:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        }
    }
}

/// What `vigil status` shows, in the shape its JSON takes.
struct StatusReport: Encodable {
    struct PartLevel: Encodable {
        var level: UInt32
        var parts: UInt64
        var events: UInt64
        var bytes: UInt64
    }
    struct Checkpoint: Encodable {
        var seq: UInt64
        var createdAt: String
        enum CodingKeys: String, CodingKey {
            case seq
            case createdAt = "created_at"
        }
    }

    var server: String
    var version: String
    var startedAt: String
    var uptimeSeconds: Int64
    var eventsStored: UInt64
    var lastSeq: UInt64
    var ingestEventsPerSecond: Double
    var diskBytes: UInt64
    var memoryEvents: UInt64
    var memoryBytes: UInt64
    var parts: [PartLevel]
    var mergeBacklogParts: UInt64
    var connections: UInt32
    var callsInFlight: UInt32
    var subscribers: UInt32
    /// nil (JSON null) when the server wrote none.
    var lastCheckpoint: Checkpoint?
    var serving: Bool
    var healthReasons: [String]

    enum CodingKeys: String, CodingKey {
        case server, version, parts, connections, subscribers, serving
        case startedAt = "started_at"
        case uptimeSeconds = "uptime_seconds"
        case eventsStored = "events_stored"
        case lastSeq = "last_seq"
        case ingestEventsPerSecond = "ingest_events_per_second"
        case diskBytes = "disk_bytes"
        case memoryEvents = "memory_events"
        case memoryBytes = "memory_bytes"
        case mergeBacklogParts = "merge_backlog_parts"
        case callsInFlight = "calls_in_flight"
        case lastCheckpoint = "last_checkpoint"
        case healthReasons = "health_reasons"
    }

    init(_ stats: Vigil_V1_GetStatsResponse, server: String) {
        self.server = server
        version = stats.serverVersion.isEmpty ? "unknown" : stats.serverVersion
        startedAt = Self.time(stats.startedAt.unixNanos)
        let now = stats.hasNow ? stats.now.unixNanos : currentUnixNanos()
        uptimeSeconds = max(0, (now - stats.startedAt.unixNanos) / 1_000_000_000)
        eventsStored = stats.eventsStored
        lastSeq = stats.lastSeq
        ingestEventsPerSecond = stats.ingestEventsPerSecond
        diskBytes = stats.bytesOnDisk
        memoryEvents = stats.memoryEvents
        memoryBytes = stats.memoryBytes
        parts = stats.parts.map { PartLevel(level: $0.level, parts: $0.parts, events: $0.events, bytes: $0.bytes) }
        mergeBacklogParts = stats.mergeBacklogParts
        connections = stats.connections
        callsInFlight = stats.callsInFlight
        subscribers = stats.subscribers
        lastCheckpoint = stats.hasLastCheckpoint
            ? Checkpoint(seq: stats.lastCheckpoint.seq, createdAt: Self.time(stats.lastCheckpoint.createdAt.unixNanos)) : nil
        serving = stats.health.status == .serving
        healthReasons = stats.health.reasons
    }

    var text: String {
        let totalParts = parts.reduce(0) { $0 + $1.parts }
        let levels = parts.map { "level \($0.level): \($0.parts)" }.joined(separator: ", ")
        let rows: [(String, String)] = [
            ("version", version),
            ("uptime", "\(Self.duration(uptimeSeconds)) (since \(startedAt))"),
            ("events stored", "\(grouped(eventsStored)) (last seq \(lastSeq))"),
            ("ingest rate", "\(String(format: "%.1f", ingestEventsPerSecond)) events/s (last minute)"),
            ("disk use", TransferProgress.size(diskBytes)),
            ("in memory", "\(grouped(memoryEvents)) events (\(TransferProgress.size(memoryBytes)))"),
            ("parts", totalParts == 0 ? "0" : "\(totalParts) (\(levels)), merge backlog \(mergeBacklogParts)"),
            ("connections", "\(connections) (\(callsInFlight) \(callsInFlight == 1 ? "call" : "calls") in flight)"),
            ("subscribers", "\(subscribers)"),
            ("last checkpoint", lastCheckpoint.map { "seq \($0.seq) at \($0.createdAt)" } ?? "none"),
            ("health", serving ? "serving" : "NOT SERVING: " + healthReasons.joined(separator: "; ")),
        ]
        return "Vigil at \(server)\n" + rows.map { "  " + $0.0.padding(toLength: 16, withPad: " ", startingAt: 0) + $0.1 + "\n" }.joined()
    }

    static func time(_ nanos: UnixNanos) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: Date(timeIntervalSince1970: TimeInterval(nanos / 1_000_000_000)))
    }

    /// 3d 4h 5m 6s, leading zero units left out.
    static func duration(_ seconds: Int64) -> String {
        let units: [(Int64, String)] = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")]
        var left = seconds
        var parts: [String] = []
        for (size, name) in units where left >= size || (size == 1 && parts.isEmpty) || !parts.isEmpty {
            parts.append("\(left / size)\(name)")
            left %= size
        }
        return parts.joined(separator: " ")
    }
}
