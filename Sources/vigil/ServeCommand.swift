import ArgumentParser
import CVigilSystem
import Logging
import ServiceLifecycle
import VigilCore
import VigilServer
import VigilStorage

#if canImport(Glibc)
import Glibc
#endif

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the Vigil server.",
        discussion: """
            Listens for the Vigil protocol and keeps events under --data-dir. Every
            acknowledged batch is on disk (fsynced) before the acknowledgement is sent.
            Stops gracefully on SIGINT or SIGTERM: no new calls, calls in flight finish.
            """
    )

    @Option(name: .long, help: ArgumentHelp("Address to listen on, HOST:PORT.", valueName: "host:port"))
    var listen = "127.0.0.1:7700"

    @Option(name: .long, help: ArgumentHelp("Directory for the server's data; created if missing.", valueName: "path"))
    var dataDir = "./vigil-data"

    @Option(name: .long, help: "Largest frame payload accepted, in bytes; larger frames are refused with RESOURCE_EXHAUSTED before they are read.")
    var maxFrameSize = ServerConfiguration().maxFrameSize

    @Option(name: .long, help: "Largest message after inflating a compressed payload, in bytes.")
    var maxMessageSize = ServerConfiguration().maxMessageSize

    @Option(name: .long, help: "Calls that may be in flight on one connection.")
    var maxConcurrentCalls = ServerConfiguration().maxConcurrentCalls

    @Option(name: .long, help: "Most events in one Ingest batch.")
    var maxBatchEvents = EventLimits().maxBatchEvents

    @Option(name: .long, help: "Most bytes of text in one event.")
    var maxEventBytes = EventLimits().maxEventBytes

    @Option(name: .long, help: "How far in the future an event's occurredAt may lie, in seconds (clock skew).")
    var maxClockSkew = Int(EventLimits().maxClockSkewNanos / 1_000_000_000)

    @Option(name: .long, help: "Seconds a new connection has to send its preface and HELLO.")
    var handshakeTimeout = 10

    @Option(name: .long, help: "Seconds calls in flight get to finish after SIGINT/SIGTERM before they are cut off.")
    var shutdownTimeout = 30

    @Option(name: .long, help: ArgumentHelp("When an ingest is acknowledged: always (after an fsync; concurrent batches share one), interval:<ms> (fsync every <ms> milliseconds, ack after the write) or never (the OS decides).", valueName: "policy"))
    var fsync = "always"

    @Option(name: .long, help: ArgumentHelp("How long events are kept, by occurredAt: 90d, 12h, or 'forever'.", valueName: "duration"))
    var retention = "90d"

    @Option(name: .long, help: ArgumentHelp("Retention of one tenant, TENANT=DURATION (repeatable), e.g. acme=30d.", valueName: "tenant=duration"))
    var tenantRetention: [String] = []

    @Option(name: .long, help: ArgumentHelp("Move expired parts here instead of deleting them (same file system as --data-dir).", valueName: "path"))
    var archiveDir: String?

    @Option(name: .long, help: "Memory for events not yet flushed to disk, in MiB; past it ingest is slowed, then refused with RESOURCE_EXHAUSTED.")
    var memoryBudgetMb = StorageOptions(directory: "").memoryBudgetBytes / 1_048_576

    @Option(name: .long, help: ArgumentHelp(
        "Alert rules (JSON): a rule that fires stores an event in the _alerts tenant. See the README for the format.",
        valueName: "file"))
    var rules: String?

    @Option(name: .long, help: "Memory for recent batches kept for live subscribers, in MiB; a subscriber further behind reads the disk, one that stops reading is cut off with a cursor.")
    var liveFeedMb = StorageOptions(directory: "").liveFeedBytes / 1_048_576

    @Option(name: .long, help: "Seconds a subscription may go without a matching event before it gets a heartbeat carrying its position.")
    var heartbeatInterval = 15

    @Option(name: .long, help: "Memory for decoded part columns that repeated and paged queries reuse, in MiB (0 turns the cache off).")
    var queryCacheMb = StorageOptions(directory: "").queryCacheBytes / 1_048_576

    @Option(name: .long, help: "Events in memory before they are flushed to a part.")
    var segmentMaxEvents = StorageOptions(directory: "").segmentMaxRows

    @OptionGroup var checkpoints: CheckpointOptions

    @Flag(name: .long, help: "Start even if the write-ahead log is corrupt in the middle: cut it at the last good record (the cut-off records are lost; the files are kept as *.corrupt).")
    var repairWal = false

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        guard (try? parseHostPort(listen)) != nil else {
            throw ValidationError("--listen '\(listen)' is not HOST:PORT, for example 127.0.0.1:7700 or 0.0.0.0:7700")
        }
        guard maxFrameSize >= 131_072 else { throw ValidationError("--max-frame-size must be at least 131072 bytes") }
        guard maxMessageSize >= maxFrameSize else { throw ValidationError("--max-message-size must be at least --max-frame-size") }
        guard (1...65_536).contains(liveFeedMb) else { throw ValidationError("--live-feed-mb must be 1 to 65536 (MiB)") }
        guard (1...3_600).contains(heartbeatInterval) else { throw ValidationError("--heartbeat-interval must be 1 to 3600 seconds") }
        guard (0...1_048_576).contains(queryCacheMb) else { throw ValidationError("--query-cache-mb must be 0 to 1048576 (MiB)") }
        guard maxConcurrentCalls >= 1 else { throw ValidationError("--max-concurrent-calls must be at least 1") }
        guard maxBatchEvents >= 1 else { throw ValidationError("--max-batch-events must be at least 1") }
    }

    func run() async throws {
        // Fewer malloc arenas: glibc's default (8 per core) lets freed memory of
        // busy threads pile up, and resident memory must track the budget.
        _ = mallopt(M_ARENA_MAX, 2)
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = logLevel
            return handler
        }
        let logger = Logger(label: "vigil")
        let (host, port) = try parseHostPort(listen)

        var configuration = ServerConfiguration()
        configuration.host = host
        configuration.port = port
        configuration.maxFrameSize = maxFrameSize
        configuration.maxMessageSize = maxMessageSize
        configuration.maxConcurrentCalls = maxConcurrentCalls
        configuration.eventLimits.maxBatchEvents = maxBatchEvents
        configuration.eventLimits.maxEventBytes = maxEventBytes
        configuration.eventLimits.maxClockSkewNanos = Int64(maxClockSkew) * 1_000_000_000
        configuration.handshakeTimeout = .seconds(handshakeTimeout)
        configuration.heartbeatInterval = .seconds(heartbeatInterval)

        var storage = StorageOptions(directory: dataDir)
        guard let policy = SyncPolicy(parsing: fsync) else {
            throw ValidationError("--fsync '\(fsync)' is not always, never or interval:<milliseconds>")
        }
        storage.sync = policy
        storage.retentionNanos = try parseRetention(retention, flag: "--retention")
        for entry in tenantRetention {
            let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty else {
                throw ValidationError("--tenant-retention '\(entry)' is not TENANT=DURATION, e.g. acme=30d")
            }
            storage.tenantRetentionNanos[parts[0]] = try parseRetention(parts[1], flag: "--tenant-retention") ?? Int64.max
        }
        storage.archiveDirectory = archiveDir
        storage.memoryBudgetBytes = memoryBudgetMb * 1_048_576
        storage.queryCacheBytes = queryCacheMb * 1_048_576
        storage.liveFeedBytes = liveFeedMb * 1_048_576
        storage.segmentMaxRows = segmentMaxEvents
        storage.repair = repairWal
        var alertRules: [AlertRule] = []
        if let rules {
            do {
                alertRules = try AlertRule.load(path: rules)
            } catch {
                throw ValidationError("--rules: \(error)")
            }
        }
        configuration.checkpoints = try checkpoints.configuration(dataDirectory: dataDir, logger: logger)
        let store: ColumnarEventStore
        do {
            store = try ColumnarEventStore(options: storage)
        } catch {
            logger.critical("cannot open the data directory", metadata: ["vigil.error": "\(error)"])
            throw CLIError(error)
        }
        logger.info("opened \(dataDir): \(store.recovery)")
        let server = VigilServer(configuration: configuration, store: store, logger: logger)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: server)]
        if !alertRules.isEmpty {
            // Listed after the server, so it stops first on shutdown (services stop in reverse order).
            services.append(.init(service: AlertEngine(rules: alertRules, store: store, logger: logger)))
            logger.info("loaded \(alertRules.count) alert rules from \(rules ?? "")")
        }
        var groupConfiguration = ServiceGroupConfiguration(
            services: services,
            gracefulShutdownSignals: [.sigterm, .sigint],
            cancellationSignals: [],
            logger: logger)
        groupConfiguration.maximumGracefulShutdownDuration = .seconds(shutdownTimeout)
        let group = ServiceGroup(configuration: groupConfiguration)
        try await group.run()
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// "90d", "12h", "forever" → nanoseconds (nil for forever).
func parseRetention(_ text: String, flag: String) throws -> Int64? {
    if text == "forever" { return nil }
    guard let nanos = parseDuration(text) else {
        throw ValidationError("\(flag) '\(text)' is not a duration such as 90d or 12h, or 'forever'")
    }
    return nanos
}
