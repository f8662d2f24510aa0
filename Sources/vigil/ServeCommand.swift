import ArgumentParser
import Foundation
import CVigilSystem
import Logging
import ServiceLifecycle
import UnixSignals
import VigilCore
import VigilProto
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
            Listens for the Vigil protocol and keeps events under --data-dir. Every \
            acknowledged batch is on disk (fsynced) before the acknowledgement is sent. \
            Stops gracefully on SIGINT or SIGTERM: no new calls, calls in flight finish.

            TLS: --tls-cert and --tls-key serve TLS on the --listen port (plain-text \
            clients are refused with a message saying so); --tls-client-ca adds mutual \
            TLS, where every client must present a certificate signed by that CA:
              vigil serve --listen 0.0.0.0:7700 --tls-cert server.pem \\
                  --tls-key server-key.pem
              vigil serve --listen 0.0.0.0:7700 --tls-cert server.pem \\
                  --tls-key server-key.pem --tls-client-ca clients-ca.pem
            Clients then connect with --tls (system CAs) or --tls-ca ca.pem, and for \
            mutual TLS --tls-cert client.pem --tls-key client-key.pem.

            Configuration file: --config vigil.toml sets any of these flags, named without \
            their -- (`vigil config example` prints a documented file; flags on the \
            command line win over it):
              vigil config check /etc/vigil/vigil.toml
              vigil serve --config /etc/vigil/vigil.toml --log-level debug
            SIGHUP reloads the tokens file, retention, alert rules and the log level; \
            other changed settings are logged as needing a restart.

            Metrics and probes: --metrics-listen opens a second, plain-HTTP port with \
            /metrics (Prometheus), /healthz (the process runs) and /readyz (503 with the \
            reasons while the server is not serving). It has no authentication: keep it \
            on a loopback or internal address.
              vigil serve --metrics-listen 127.0.0.1:7701
              curl -s http://127.0.0.1:7701/metrics | grep vigil_ingest_events_total
            """
    )

    @Option(name: .long, help: ArgumentHelp("Address to listen on, HOST:PORT.", valueName: "host:port"))
    var listen = "127.0.0.1:7700"

    @Option(name: .long, help: ArgumentHelp("Directory for the server's data; created if missing.", valueName: "path"))
    var dataDir = "./vigil-data"

    @Option(name: .long, help: ArgumentHelp("Largest frame payload accepted, in bytes; larger frames are refused with RESOURCE_EXHAUSTED before they are read.", valueName: "bytes"))
    var maxFrameSize = ServerConfiguration().maxFrameSize

    @Option(name: .long, help: ArgumentHelp("Largest message after inflating a compressed payload, in bytes.", valueName: "bytes"))
    var maxMessageSize = ServerConfiguration().maxMessageSize

    @Option(name: .long, help: ArgumentHelp("Calls that may be in flight on one connection.", valueName: "n"))
    var maxConcurrentCalls = ServerConfiguration().maxConcurrentCalls

    @Option(name: .long, help: ArgumentHelp("Most events in one Ingest batch.", valueName: "n"))
    var maxBatchEvents = EventLimits().maxBatchEvents

    @Option(name: .long, help: ArgumentHelp("Most bytes of text in one event.", valueName: "bytes"))
    var maxEventBytes = EventLimits().maxEventBytes

    @Option(name: .long, help: ArgumentHelp("How far in the future an event's occurredAt may lie, in seconds (clock skew).", valueName: "seconds"))
    var maxClockSkew = Int(EventLimits().maxClockSkewNanos / 1_000_000_000)

    @Option(name: .long, help: ArgumentHelp("Seconds a new connection has to send its preface and HELLO.", valueName: "seconds"))
    var handshakeTimeout = 10

    @Option(name: .long, help: ArgumentHelp("Seconds calls in flight get to finish after SIGINT/SIGTERM before they are cut off.", valueName: "seconds"))
    var shutdownTimeout = 30

    @Option(name: .long, help: ArgumentHelp("When an ingest is acknowledged: always (after an fsync; concurrent batches share one), interval:<ms> (fsync every <ms> milliseconds, ack after the write, live subscribers get a batch after its fsync) or never (the OS decides).", valueName: "policy"))
    var fsync = "always"

    @Option(name: .long, help: ArgumentHelp("How long events are kept, by occurredAt: at least 1d, such as 90d, 36h, 2w or 1y (365d), or 'forever'.", valueName: "duration"))
    var retention = "90d"

    @Option(name: .long, help: ArgumentHelp("Retention of one tenant, TENANT=DURATION (repeatable; at least 1d, or forever), e.g. acme=30d.", valueName: "tenant=duration"))
    var tenantRetention: [String] = []

    @Option(name: .long, help: ArgumentHelp("Move expired parts here instead of deleting them (same file system as --data-dir).", valueName: "path"))
    var archiveDir: String?

    @Option(name: .long, help: ArgumentHelp("Memory for events not yet flushed to disk, in MiB; past it ingest is slowed, then refused with RESOURCE_EXHAUSTED.", valueName: "MiB"))
    var memoryBudgetMb = StorageOptions(directory: "").memoryBudgetBytes / 1_048_576

    @Option(name: .long, help: ArgumentHelp(
        "Alert rules (JSON): a rule that fires stores an event in the _alerts tenant. See the README for the format.",
        valueName: "file"))
    var rules: String?

    @Option(name: .long, help: ArgumentHelp("Memory for recent batches kept for live subscribers, in MiB; a subscriber further behind reads the disk, one that stops reading is cut off with a cursor.", valueName: "MiB"))
    var liveFeedMb = StorageOptions(directory: "").liveFeedBytes / 1_048_576

    @Option(name: .long, help: ArgumentHelp("Seconds a subscription may go without a matching event before it gets a heartbeat carrying its position.", valueName: "seconds"))
    var heartbeatInterval = 15

    @Option(name: .long, help: ArgumentHelp("Memory for decoded part columns that repeated and paged queries reuse, in MiB (0 turns the cache off).", valueName: "MiB"))
    var queryCacheMb = StorageOptions(directory: "").queryCacheBytes / 1_048_576

    @Option(name: .long, help: ArgumentHelp("Events in memory before they are flushed to a part.", valueName: "n"))
    var segmentMaxEvents = StorageOptions(directory: "").segmentMaxRows

    @Option(name: .long, help: ArgumentHelp(
        "Free space, in MiB, that ingest leaves on the data directory's disk: below it, Ingest is refused with UNAVAILABLE (\"the data disk is full\") while flushes, merges and retention still have room; ingest resumes by itself once space is free again. 0: refuse only when a write fails. Example: --min-free-disk-mb 1024.",
        valueName: "MiB"))
    var minFreeDiskMb = StorageOptions(directory: "").minFreeDiskBytes / 1_048_576

    @Flag(name: .long, help: "Run without authentication: every connection may do everything, in every tenant. Only for a server nothing untrusted can reach (tests, a laptop).")
    var noAuth = false

    @Option(name: .long, help: ArgumentHelp(
        "File holding the admin token (also $VIGIL_ADMIN_TOKEN). Created with a new token (mode 0600) if missing. Without either, the first start prints a new admin token once. A new secret here adds an admin: revoke the old one (vigil token revoke).",
        valueName: "file"))
    var adminTokenFile: String?

    @Option(name: .long, help: ArgumentHelp("Connections open at once; one more is refused with RESOURCE_EXHAUSTED.", valueName: "n"))
    var maxConnections = ServerConfiguration().maxConnections

    @Option(name: .long, help: ArgumentHelp("Seconds a connection may go without a call before it is closed (0: never). Open subscriptions are calls.", valueName: "seconds"))
    var idleTimeout = 600

    @Option(name: .long, help: ArgumentHelp("Seconds the server may be unable to write to a connection (its client stopped reading) before it closes it (0: never). Frees the calls and slots a stuck client holds.", valueName: "seconds"))
    var writeStallTimeout = 120

    @Option(name: .long, help: ArgumentHelp("Events per second each token may ingest unless the token has its own rate (0: no limit); over it, RESOURCE_EXHAUSTED with vigil.retry-after-ms.", valueName: "events/s"))
    var ingestRateLimit: UInt64 = 0

    @Option(name: .long, help: ArgumentHelp(
        "Privacy rules (JSON) applied to every event before it is stored: drop metadata keys, hash or mask fields, per tenant or for all. See the README.",
        valueName: "file"))
    var redactionRules: String?

    @OptionGroup var checkpoints: CheckpointOptions

    @Flag(name: .long, help: "Start even if the write-ahead log is corrupt in the middle: cut it at the last good record (the cut-off records are lost; the files are kept as *.corrupt).")
    var repairWal = false

    @OptionGroup(title: "TLS") var tls: ServerTLSOptions

    @Option(name: .long, help: ArgumentHelp(
        "Serve /metrics (Prometheus), /healthz and /readyz over HTTP on HOST:PORT, e.g. 127.0.0.1:7701. Off unless given.",
        valueName: "host:port"))
    var metricsListen: String?

    @Option(name: .long, help: ArgumentHelp("Distinct tenants that get their own tenant label in metrics; later ones are counted as tenant=\"_other\".", valueName: "n"))
    var metricsTenantLabels = VigilMetrics.defaultMaxTenantLabels

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    @Option(name: .long, help: "Log format: text (for people) or json (one object per line, for log collectors).")
    var logFormat: LogFormat = .text

    @Option(name: .long, help: ArgumentHelp(
        "Read settings from this TOML file: the flags without --, e.g. data-dir = \"/var/lib/vigil\". Flags given here win over it.",
        valueName: "file"))
    var config: String?

    func validate() throws {
        // The file may set any of these: they are checked with its settings (`resolve`).
        if config != nil && !Self.resolving { return }
        _ = try checkedHostPort(listen, flag: "--listen", example: "127.0.0.1:7700")
        guard (0...(1 << 30)).contains(minFreeDiskMb) else {
            throw ValidationError("--min-free-disk-mb must be 0...\(1 << 30) (MiB), not \(minFreeDiskMb)")
        }
        guard maxFrameSize >= 131_072 else { throw ValidationError("--max-frame-size must be at least 131072 bytes") }
        guard maxMessageSize >= maxFrameSize else { throw ValidationError("--max-message-size must be at least --max-frame-size") }
        // Welcome carries both as u32; beyond 1 GiB one message would be a memory hazard anyway.
        guard maxMessageSize <= 1 << 30 else { throw ValidationError("--max-message-size must be at most 1073741824 bytes (1 GiB)") }
        guard (1...65_536).contains(liveFeedMb) else { throw ValidationError("--live-feed-mb must be 1 to 65536 (MiB)") }
        guard (1...3_600).contains(heartbeatInterval) else { throw ValidationError("--heartbeat-interval must be 1 to 3600 seconds") }
        guard (0...1_048_576).contains(queryCacheMb) else { throw ValidationError("--query-cache-mb must be 0 to 1048576 (MiB)") }
        // HELLO's Welcome carries these as u32.
        guard (1...Int(UInt32.max)).contains(maxConcurrentCalls) else {
            throw ValidationError("--max-concurrent-calls must be 1 to \(UInt32.max), not \(maxConcurrentCalls)")
        }
        guard (1...Int(UInt32.max)).contains(maxBatchEvents) else {
            throw ValidationError("--max-batch-events must be 1 to \(UInt32.max), not \(maxBatchEvents)")
        }
        // An event is sent inside one frame; below 1 KiB hardly any real event fits.
        guard maxEventBytes >= 1_024 else { throw ValidationError("--max-event-bytes must be at least 1024, not \(maxEventBytes)") }
        guard maxEventBytes <= maxFrameSize else {
            throw ValidationError("--max-event-bytes (\(maxEventBytes)) must be at most --max-frame-size (\(maxFrameSize)): an event travels in one frame")
        }
        // Negative would refuse every event as lying in the future; a day is plenty of skew.
        guard (0...86_400).contains(maxClockSkew) else { throw ValidationError("--max-clock-skew must be 0 to 86400 seconds, not \(maxClockSkew)") }
        // 0 would close every connection before its HELLO, or cut calls off at once on shutdown.
        guard (1...86_400).contains(handshakeTimeout) else { throw ValidationError("--handshake-timeout must be 1 to 86400 seconds, not \(handshakeTimeout)") }
        guard (1...86_400).contains(shutdownTimeout) else { throw ValidationError("--shutdown-timeout must be 1 to 86400 seconds, not \(shutdownTimeout)") }
        guard (1...1_048_576).contains(memoryBudgetMb) else { throw ValidationError("--memory-budget-mb must be 1 to 1048576 (MiB), not \(memoryBudgetMb)") }
        guard (1...1_000_000_000).contains(segmentMaxEvents) else {
            throw ValidationError("--segment-max-events must be 1 to 1000000000, not \(segmentMaxEvents)")
        }
        guard maxConnections >= 1 else { throw ValidationError("--max-connections must be at least 1") }
        guard idleTimeout >= 0 else { throw ValidationError("--idle-timeout must be 0 (never) or a number of seconds") }
        guard (0...86_400).contains(writeStallTimeout) else {
            throw ValidationError("--write-stall-timeout must be 0 (never) or 1 to 86400 seconds, not \(writeStallTimeout)")
        }
        if let metricsListen {
            // The port is required: the protocol's default (7700) would be the wrong one.
            let metricsAddress = try checkedHostPort(metricsListen, flag: "--metrics-listen", example: "127.0.0.1:7701")
            guard metricsListen.contains(":"), !metricsListen.hasSuffix("]") else {
                throw ValidationError("--metrics-listen '\(metricsListen)' is not HOST:PORT, for example 127.0.0.1:7701")
            }
            if let protocolAddress = try? parseHostPort(listen), metricsAddress.port != 0, metricsAddress.port == protocolAddress.port {
                throw ValidationError("--metrics-listen must use another port than --listen (\(protocolAddress.port)), for example 7701")
            }
        }
        guard (0...10_000).contains(metricsTenantLabels) else {
            throw ValidationError("--metrics-tenant-labels must be 0 to 10000")
        }
        if noAuth && adminTokenFile != nil {
            throw ValidationError("--admin-token-file has no use with --no-auth; give one or the other")
        }
        guard SyncPolicy(parsing: fsync) != nil else {
            throw ValidationError("--fsync '\(fsync)' is not always, never or interval:<milliseconds>")
        }
        _ = try retentionSettings()
    }

    /// --retention and --tenant-retention in nanoseconds (nil: forever; a
    /// tenant's forever is `Int64.max`).
    func retentionSettings() throws -> (defaultNanos: Int64?, tenantNanos: [String: Int64]) {
        var tenants: [String: Int64] = [:]
        for entry in tenantRetention {
            let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty else {
                throw ValidationError("--tenant-retention '\(entry)' is not TENANT=DURATION, e.g. acme=30d")
            }
            // As SetRetention checks it. `*` in particular: RETENTION's line for the default.
            if let problem = EventValidator.tenantProblem(parts[0], allowReserved: true) {
                throw ValidationError("--tenant-retention '\(entry)': tenant '\(parts[0])' \(problem); the default is --retention")
            }
            tenants[parts[0]] = try parseRetention(parts[1], flag: "--tenant-retention", entry: entry) ?? Int64.max
        }
        return (try parseRetention(retention, flag: "--retention"), tenants)
    }

    /// `RETENTION` (changes made through SetRetention or a SIGHUP) wins over
    /// the flags and the configuration file: say so where they differ, or
    /// an operator who raised --retention for compliance would go on losing
    /// events without a word.
    static func warnOfRetentionOverrides(
        configured: StorageOptions, inForce: RetentionSettings.Values, dataDir: String, signed: Bool, logger: Logger
    ) {
        let text = RetentionSettings.Values.text
        var overridden: [String] = []
        if inForce.defaultNanos != configured.retentionNanos {
            overridden.append("--retention \(text(configured.retentionNanos)) (in force: \(text(inForce.defaultNanos)))")
        }
        for (tenant, nanos) in configured.tenantRetentionNanos.sorted(by: { $0.key < $1.key }) where inForce.tenantNanos[tenant] != nanos {
            overridden.append("--tenant-retention \(tenant)=\(text(nanos)) (in force: \(text(inForce.of(tenant))))")
        }
        guard !overridden.isEmpty else { return }
        let advice =
            signed
            ? " (with --checkpoint-key the file is signed: one removed or edited by hand is put back at start)" : ", or remove the file to go back to the flags"
        logger.warning(
            "\(dataDir)/RETENTION overrides the configured retention: \(overridden.joined(separator: "; ")); change it with vigil retention (SetRetention)\(advice)",
            metadata: ["vigil.overridden": "\(overridden.count)"])
    }

    func run() async throws {
        let arguments = Self.commandLineArguments
        let resolved: (command: ServeCommand, settings: EffectiveSettings)
        do {
            resolved = try config == nil
                ? (self, EffectiveSettings(file: nil, commandLine: EffectiveSettings.values(in: arguments)))
                : Self.resolve(arguments)
        } catch let error as ConfigFileError {
            throw CLIFailure.configuration(error.description)
        }
        // The files the file names, each problem with its key, as `vigil config check` lists them.
        if let config = resolved.command.config {
            let problems = resolved.command.problemsInNamedFiles()
            if !problems.isEmpty { throw CLIFailure.configuration(ConfigFileError(path: config, problems: problems).description) }
        }
        try await resolved.command.serve(settings: resolved.settings, arguments: arguments)
    }

    /// Runs the server with these (resolved) settings; `arguments` are
    /// resolved again on SIGHUP.
    func serve(settings: EffectiveSettings, arguments: [String]) async throws {
        // Fewer malloc arenas: glibc's default (8 per core) lets freed memory of
        // busy threads pile up, and resident memory must track the budget.
        _ = mallopt(M_ARENA_MAX, 2)
        let levelControl = LogLevelControl(logLevel)
        LoggingSystem.bootstrap { [logFormat] label in
            VigilLogHandler(label: label, format: logFormat, control: levelControl)
        }
        let logger = Logger(label: "vigil")
        // Trapped before anything listens: an early SIGHUP must not end the process.
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        if let config { logger.info("read the configuration from \(config)") }
        OpenFileLimit.raiseAndReport(logger)
        let (host, port) = try parseHostPort(listen)
        if let problem = ListenProbe.problem(host: host, port: port, flag: "--listen") { throw problem }
        if let metricsListen, let (metricsHost, metricsPort) = try? parseHostPort(metricsListen),
            let problem = ListenProbe.problem(host: metricsHost, port: metricsPort, flag: "--metrics-listen")
        {
            throw problem
        }

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
        configuration.maxConnections = maxConnections
        configuration.idleTimeout = idleTimeout == 0 ? nil : .seconds(idleTimeout)
        configuration.writeStallTimeout = writeStallTimeout == 0 ? nil : .seconds(writeStallTimeout)
        configuration.defaultIngestEventsPerSecond = ingestRateLimit == 0 ? nil : ingestRateLimit
        // A file a setting names that cannot be used is a configuration problem (78), whether flag or key named it.
        do {
            configuration.tls = try tls.serverTLS()
        } catch {
            throw CLIFailure.configuration(Self.message(for: error))
        }
        // One registry for the server and its store: the store records WAL
        // fsyncs and bytes written into it.
        let metrics = VigilMetrics(maxTenantLabels: metricsTenantLabels)
        configuration.metrics = metrics
        if let metricsListen {
            let (metricsHost, metricsPort) = try parseHostPort(metricsListen)
            configuration.metricsListen = ListenAddress(host: metricsHost, port: metricsPort)
        }

        var storage = StorageOptions(directory: dataDir)
        guard let policy = SyncPolicy(parsing: fsync) else {
            throw ValidationError("--fsync '\(fsync)' is not always, never or interval:<milliseconds>")
        }
        storage.sync = policy
        (storage.retentionNanos, storage.tenantRetentionNanos) = try retentionSettings()
        storage.archiveDirectory = archiveDir
        storage.memoryBudgetBytes = memoryBudgetMb * 1_048_576
        storage.queryCacheBytes = queryCacheMb * 1_048_576
        storage.liveFeedBytes = liveFeedMb * 1_048_576
        storage.segmentMaxRows = segmentMaxEvents
        storage.repair = repairWal
        storage.minFreeDiskBytes = minFreeDiskMb * 1_048_576
        storage.eventHandler = StorageEventLog.handler(logger)

        storage.metrics = metrics.storage
        if let redactionRules {
            do {
                configuration.redaction = try RedactionPolicy.load(path: redactionRules)
            } catch {
                throw CLIFailure.configuration("--redaction-rules: \(error)")
            }
        }
        var alertRules: [AlertRule] = []
        if let rules {
            do {
                alertRules = try AlertRule.load(path: rules)
            } catch {
                throw CLIFailure.configuration("--rules: \(error)")
            }
        }
        let checkpointConfiguration = try checkpoints.configuration(dataDirectory: dataDir, logger: logger)
        configuration.checkpoints = checkpointConfiguration
        // The key that signs checkpoints also signs every removal of events and every change of retention.
        storage.retentionSigner = checkpointConfiguration.key.map { .init(key: $0, directory: checkpointConfiguration.directory) }
        let signedSettings = (try? RetentionStatements.settingsNames(in: checkpointConfiguration.directory).count) ?? 0
        // RETENTION wins over the flags: one the store refuses (under the
        // 1-day floor, malformed) is a configuration problem, 78 like the
        // others. Not when signed settings will replace it at start.
        if signedSettings == 0 {
            do {
                _ = try RetentionSettings.readFile(dataDir + "/" + RetentionSettings.fileName)
            } catch {
                throw CLIFailure.configuration(error.message)
            }
        }
        if storage.retentionSigner == nil && signedSettings > 0 {
            let reason =
                "the retention settings are signed in \(checkpointConfiguration.directory), and this server runs without --checkpoint-key: the next start with the key would put the signed settings back over a change made now. Restart the server with --checkpoint-key to change the retention"
            storage.retentionChangesRefused = reason
            // Still checked against them, and put back, as with the key.
            storage.retentionSettingsDirectory = checkpointConfiguration.directory
            logger.warning("retention changes are refused: \(reason)")
        }
        let store: ColumnarEventStore
        do {
            store = try ColumnarEventStore(options: storage)
        } catch {
            logger.critical("cannot open the data directory", metadata: ["vigil.error": "\(error)"])
            throw CLIError(error)
        }
        logger.info("opened \(dataDir): \(store.recovery)")
        if !store.recovery.retentionAdopted.isEmpty {
            logger.warning(
                "found \(store.recovery.retentionAdopted.count) removal(s) of events without a valid signed retention statement in a checkpoint directory where statements had not begun, and signed them as found (ADOPTED), which vigil verify notes: expected once, after enabling --checkpoint-key or upgrading. From now on a removal without a statement is reported, not adopted",
                metadata: ["vigil.removals": "\(store.recovery.retentionAdopted.joined(separator: "; "))"])
        }
        if !store.recovery.retentionUnattested.isEmpty {
            logger.error(
                "found \(store.recovery.retentionUnattested.count) removal(s) of events without a valid signed retention statement, although statements have begun in \(checkpointConfiguration.directory): they were made without this key (events deleted while the server was stopped, or a server run without --checkpoint-key). They are not signed; vigil verify reports them",
                metadata: ["vigil.removals": "\(store.recovery.retentionUnattested.joined(separator: "; "))"])
        }
        if let failure = store.recovery.retentionAdoptionFailure {
            logger.error(
                "the retention statements could not be brought up to date at start, so vigil verify may report removals as unattested; make --checkpoint-dir writable and restart",
                metadata: ["vigil.error": "\(failure)"])
        }
        let retentionCheck = store.recovery.retentionSettings
        if let restored = retentionCheck.restored {
            logger.error(
                "\(restored). Find out who changed it; change the retention only through the server (vigil retention), which signs it",
                metadata: retentionCheck.setAside.map { ["vigil.set-aside": "\($0)"] } ?? [:])
            await ReloadAudit(store: store, logger: logger).retentionSettingsRestored(restored, setAside: retentionCheck.setAside)
        }
        if let suspended = retentionCheck.suspended { logger.error("\(suspended)") }
        if let signed = retentionCheck.signed { logger.notice("\(signed)") }
        if let failure = retentionCheck.failure {
            logger.error("the retention settings could not be wholly checked, put back or signed at start", metadata: ["vigil.error": "\(failure)"])
        }
        if store.recovery.retentionStatementsSetAside > 0 {
            logger.notice(
                "set aside \(store.recovery.retentionStatementsSetAside) retention statement(s) of removals that never committed (an interrupted retention pass or merge, or a restore) into \(checkpointConfiguration.directory)/superseded/")
        }
        if retentionCheck.suspended == nil {
            Self.warnOfRetentionOverrides(
                configured: storage, inForce: store.retentionSettings.current, dataDir: dataDir, signed: signedSettings > 0 || storage.retentionSigner != nil,
                logger: logger)
        }
        var registry: TokenRegistry?
        if noAuth {
            logger.warning("authentication is off (--no-auth): every connection may read and write every tenant")
        } else {
            let tokens = try bootstrapTokens(logger: logger)
            registry = tokens
            configuration.authentication = .tokens(tokens)
        }
        let server = VigilServer(configuration: configuration, store: store, logger: logger)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: server)]
        var ruleSet: AlertRuleSet?
        if let rules {
            // Runs even with no rules, so a reload can add some. Listed after
            // the server, so it stops first on shutdown (services stop in reverse order).
            let loaded = AlertRuleSet(alertRules)
            ruleSet = loaded
            // It retries its own failures; should it end anyway, the server
            // shuts down gracefully rather than going on without alerts.
            services.append(
                .init(
                    service: AlertEngine(
                        ruleSet: loaded, store: store, logger: logger, progressPath: dataDir + "/alerts.progress", metrics: metrics),
                    failureTerminationBehavior: .gracefullyShutdownGroup))
            logger.info("loaded \(alertRules.count) alert rules from \(rules)")
        }
        services.append(.init(service: ConfigurationReloader(
            hangups: hangups, arguments: arguments, initial: (self, settings),
            targets: .init(
                levelControl: levelControl, registry: registry, store: store, ruleSet: ruleSet,
                audit: ReloadAudit(store: store, logger: logger)),
            logger: logger)))
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

extension ServeCommand {
    /// Opens the token registry and makes sure an admin can get in: the
    /// token from --admin-token-file or $VIGIL_ADMIN_TOKEN, or on the very
    /// first start a new one, printed once on standard output.
    func bootstrapTokens(logger: Logger) throws -> TokenRegistry {
        let registry: TokenRegistry
        do {
            registry = try TokenRegistry(directory: dataDir)
        } catch {
            throw CLIError(error)
        }
        var secret = environment("VIGIL_ADMIN_TOKEN")
        if let adminTokenFile {
            if let text = try? String(contentsOfFile: adminTokenFile, encoding: .utf8) {
                secret = text.trimmingCharacters(in: .whitespacesAndNewlines)
                var status = stat()
                if stat(adminTokenFile, &status) == 0, status.st_mode & 0o077 != 0 {
                    logger.warning(
                        "--admin-token-file \(adminTokenFile) may be read by group or others (mode \(String(status.st_mode & 0o777, radix: 8))); it holds an admin secret: chmod 600 \(adminTokenFile)")
                }
            } else if FileManager.default.fileExists(atPath: adminTokenFile) {
                throw CLIFailure.configuration("--admin-token-file \(adminTokenFile) cannot be read; check its permissions")
            } else {
                let made = TokenRegistry.generateSecret()
                try Self.createSecretFile(adminTokenFile, contents: made + "\n")
                logger.notice("wrote a new admin token to \(adminTokenFile)")
                secret = made
            }
        }
        if let secret {
            do {
                if try registry.ensureAdmin(secret: secret, createdBy: "vigil serve") {
                    logger.notice("added the given admin token to the token registry")
                }
            } catch {
                throw CLIFailure.configuration("\(adminTokenFile.map { "--admin-token-file \($0)" } ?? "$VIGIL_ADMIN_TOKEN"): \(error.message)")
            }
            Self.warnOfEarlierAdmins(registry, current: registry.authenticate(secret)?.tokenID, logger: logger)
        } else if !registry.hasActiveAdmin {
            let (token, made) = try registry.create(name: "admin", scopes: [.admin], tenants: [], createdBy: "vigil serve")
            print("""
                Vigil created the first admin token (\(token.id)). It is shown only this once; keep it safe:

                    \(made)

                Use it with --token or $VIGIL_TOKEN, for example to give an agent its own token:
                    vigil token create --name my-agent --scope ingest --tenant acme

                """)
            fflush(nil)
        }
        return registry
    }
}

extension ServeCommand {
    /// Creates `path` holding `contents`, mode 0600 from the start (never
    /// readable by others, not even for a moment), refusing to replace a file.
    static func createSecretFile(_ path: String, contents: String) throws {
        do throws(VigilError) {
            let file = try FileHandleDescriptor.open(path, flags: O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode: 0o600)
            defer { file.close() }
            let failure: VigilError? = Array(contents.utf8).withUnsafeBytes { raw in
                do throws(VigilError) { try file.write(raw, at: 0) } catch { return error }
                return nil
            }
            if let failure { throw failure }
            try file.sync()
        } catch {
            throw CLIFailure.configuration("--admin-token-file \(path) does not exist and cannot be created: \(error.message)")
        }
    }

    /// Replacing the admin token file adds a new admin and leaves the old one
    /// valid: say so, or a "rotated" leaked token would go on working.
    static func warnOfEarlierAdmins(_ registry: TokenRegistry, current: String?, logger: Logger) {
        let earlier = registry.tokens.filter { token in
            token.id != current && token.createdBy == "vigil serve" && token.revokedAtNanos == 0
                && token.scopes.contains(.admin) && token.tenants.isEmpty
        }
        for token in earlier {
            logger.notice(
                "the admin token \(token.id) made by an earlier vigil serve is still active; if the admin token file replaced it, revoke it: vigil token revoke \(token.id)",
                metadata: ["vigil.token": "\(token.id)"])
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// The shortest retention: SetRetention's floor and `RETENTION`'s
/// (`RetentionSettings.minimumNanos`), so that the flags, the configuration
/// file and SIGHUP cannot set what the API refuses.
let minimumRetentionNanos = RetentionSettings.minimumNanos

/// "90d", "36h", "forever" → nanoseconds (nil for forever); at least 1d.
/// `entry`: the whole TENANT=DURATION, named in the message.
func parseRetention(_ text: String, flag: String, entry: String? = nil) throws -> Int64? {
    if text == "forever" { return nil }
    let nanos: Int64
    switch DurationText.seconds(text) {
    case .success(let seconds): nanos = seconds * 1_000_000_000
    case .failure(.tooLong):
        throw ValidationError("\(entry.map { "\(flag) \($0)" } ?? flag): '\(text)' is longer than 100 years; keeping events for ever is 'forever'")
    case .failure(.notADuration):
        throw ValidationError("\(flag) '\(text)' is not a duration such as 90d or 36h, or 'forever'")
    }
    guard nanos >= minimumRetentionNanos else {
        // `12m` meant as months is the likely slip: it would hide nearly every event at once.
        let minutes = text.hasSuffix("m") ? "; 'm' is minutes" : ""
        throw ValidationError("\(entry.map { "\(flag) \($0)" } ?? flag): retention must be at least 1d (was \(text)\(minutes))")
    }
    return nanos
}
