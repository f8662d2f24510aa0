import ArgumentParser
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

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        guard (try? parseHostPort(listen)) != nil else {
            throw ValidationError("--listen '\(listen)' is not HOST:PORT, for example 127.0.0.1:7700 or 0.0.0.0:7700")
        }
        guard maxFrameSize >= 131_072 else { throw ValidationError("--max-frame-size must be at least 131072 bytes") }
        guard maxMessageSize >= maxFrameSize else { throw ValidationError("--max-message-size must be at least --max-frame-size") }
        guard maxConcurrentCalls >= 1 else { throw ValidationError("--max-concurrent-calls must be at least 1") }
        guard maxBatchEvents >= 1 else { throw ValidationError("--max-batch-events must be at least 1") }
    }

    func run() async throws {
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

        if mkdir(dataDir, 0o755) != 0 && errno != EEXIST {
            throw ValidationError("cannot create --data-dir '\(dataDir)': \(String(cString: strerror(errno)))")
        }
        let store = try MemoryEventStore(journalPath: dataDir + "/journal.log")
        let server = VigilServer(configuration: configuration, store: store, logger: logger)
        var groupConfiguration = ServiceGroupConfiguration(
            services: [.init(service: server)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            cancellationSignals: [],
            logger: logger)
        groupConfiguration.maximumGracefulShutdownDuration = .seconds(shutdownTimeout)
        let group = ServiceGroup(configuration: groupConfiguration)
        try await group.run()
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
