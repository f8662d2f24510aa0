/// The limits every ingested event and batch must respect. Each exists so that
/// one client cannot make the server spend unbounded memory, disk or CPU on a
/// single call, and each violation is reported precisely (field and reason).
public struct EventLimits: Sendable, Hashable {
    /// Events in one `Ingest` batch. 10,000 events of typical size (~400 bytes)
    /// fit a 4 MiB frame; more would only make one call hold more memory.
    public var maxBatchEvents = 10_000
    /// UTF-8 bytes of all text of one event together. Bounds the memory and disk
    /// of one row whatever its per-field lengths.
    public var maxEventBytes = 65_536
    /// How far `occurred_at` may lie in the future of the server's clock: clocks
    /// drift, but an event from next week is a bug that would poison time-range
    /// queries and retention.
    public var maxClockSkewNanos: Int64 = 5 * 60 * 1_000_000_000
    public var maxTenantBytes = 128
    public var maxActionBytes = 128
    public var maxActorFieldBytes = 256
    public var maxResourceTypeBytes = 64
    public var maxResourceFieldBytes = 256
    public var maxTargets = 16
    public var maxReasonBytes = 1_024
    public var maxUserAgentBytes = 512
    public var maxCorrelationIDBytes = 128
    public var maxChanges = 64
    public var maxChangeFieldBytes = 128
    public var maxChangeValueBytes = 4_096
    public var maxMetadataEntries = 32
    public var maxMetadataKeyBytes = 64
    public var maxMetadataValueBytes = 1_024
    public var maxDescriptionBytes = 4_096
    /// Idempotency keys are remembered, so their size is bounded too.
    public var maxIdempotencyKeyBytes = 128

    public init() {}

    public static let `default` = EventLimits()
}
