import VigilCore
import VigilStorage

/// Everything a server needs to know, with the defaults `vigil serve` uses.
public struct ServerConfiguration: Sendable {
    public var host = "127.0.0.1"
    /// 0 picks a free port (tests); `listeningAddress` tells which.
    public var port = 7700
    /// The largest frame payload accepted. Checked from the header, before the
    /// payload is read: it bounds the memory one frame can take.
    public var maxFrameSize = 4 * 1024 * 1024
    /// The largest message after inflating a COMPRESSED payload (zip bombs).
    public var maxMessageSize = 16 * 1024 * 1024
    /// Calls open at once on one connection; each may hold a request of
    /// `maxMessageSize`, so this bounds a connection's memory.
    public var maxConcurrentCalls = 128
    /// Query pages and subscription catch-up pages one connection builds at
    /// once: a client that stops reading pins at most this many, whatever its calls.
    public var pagesInFlightPerConnection = 4
    /// Response messages a streaming call may send before the client's first WINDOW.
    public var defaultWindow = 8
    /// Events per query page when the client does not say; and the most it may ask for.
    public var defaultPageSize = 500
    public var maxPageSize = 10_000
    /// Time a new connection has to send its preface and HELLO.
    public var handshakeTimeout: Duration = .seconds(10)
    /// Time a connection that was sent GOAWAY-and-close gets to hang up before it is cut.
    public var closeGracePeriod: Duration = .seconds(5)
    public var eventLimits = EventLimits()
    public var serverName = "vigil"
    /// A subscription that has had nothing to deliver for this long gets a
    /// heartbeat carrying its position, so idle subscriptions stay alive
    /// and can resume without replaying what did not match.
    public var heartbeatInterval: Duration = .seconds(15)
    /// Subscriptions open at once on one connection, and on the server: each
    /// holds a call and a reader of the live feed.
    public var maxSubscriptionsPerConnection = 64
    public var maxSubscriptions = 10_000
    /// Most conditions (list entries, counted over every list) in a
    /// subscription's filter: a live filter runs against every committed batch.
    public var maxSubscriptionFilterEntries = 256
    /// TLS (and mutual TLS) on the protocol port; nil for plain TCP.
    public var tls: ServerTLS?

    /// Who may connect. `vigil serve` uses tokens unless told `--no-auth`;
    /// the library default (tests, embedding) is none.
    public var authentication: Authentication = .disabled
    /// Connections open at once; one more gets GOAWAY RESOURCE_EXHAUSTED. Each
    /// holds buffers and a task, so this bounds the server's memory.
    public var maxConnections = 4_096
    /// A connection with no call open for this long is closed (GOAWAY
    /// UNAVAILABLE); nil never closes idle connections. Open subscriptions
    /// are calls, so a quiet subscriber is not idle.
    public var idleTimeout: Duration? = .seconds(600)
    /// A connection the server cannot write to for this long (its peer stopped
    /// reading: the socket and the channel's buffers stay full) is closed;
    /// nil never. Credit bounds what a call may send, but a peer that grants
    /// it and never reads would otherwise hold its calls, subscription slots
    /// and connection slot for ever.
    public var writeStallTimeout: Duration? = .seconds(120)
    /// Events per second a token may ingest when it has no rate of its own;
    /// nil means no limit.
    public var defaultIngestEventsPerSecond: UInt64?
    /// Privacy rules applied to every event before it is stored.
    public var redaction: RedactionPolicy?
    /// Signed checkpoints of the hash chain: the key and where they go (nil:
    /// none are written or checked).
    public var checkpoints: CheckpointConfiguration?
    /// Where the HTTP listener for /metrics, /healthz and /readyz listens;
    /// nil (the default): nowhere.
    public var metricsListen: ListenAddress?
    /// The server's metrics registry (made with the tenant label bound you
    /// want, and passed to the store's `StorageOptions.metrics` too); nil:
    /// the server makes its own, without the storage engine's metrics.
    public var metrics: VigilMetrics?
    /// Records what subscriptions build and hold (tests); nil: nothing is recorded.
    var subscriptionProbe: SubscriptionProbe?

    public init() {}
}

/// A HOST:PORT to listen on (port 0: any free port).
public struct ListenAddress: Sendable, Hashable {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }
}

/// How connections authenticate.
public enum Authentication: Sendable {
    /// Every connection is `anonymous`, which may do everything: for tests
    /// and for a server reachable only by trusted processes.
    case disabled
    /// HELLO must carry a valid API token; calls are authorized by its scopes
    /// and tenants.
    case tokens(TokenRegistry)
}

/// The version this build reports in `Welcome.server_version` and `vigil --version`.
public let vigilVersion = "0.1.0"
