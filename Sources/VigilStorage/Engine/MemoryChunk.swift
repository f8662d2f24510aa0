import Synchronization
import SwiftProtobuf
import VigilCore
import VigilProto

/// One committed batch held in memory, column by column: the unit the memory
/// segment is made of. Immutable once built, so a query takes a snapshot of
/// the segment by copying the list of chunks, never the rows.
///
/// Repetitive strings are dictionary-coded within the chunk; times are Int64s;
/// seq is implicit (first_seq + row); received_at is one value for the batch;
/// ids assigned by the server are derived from (received_at, seq) and not stored.
public final class MemoryChunk: Sendable {
    /// A batch's columns, built before the engine takes its lock (the costly
    /// part). A class: a flush or a scan reads rows from many chunks, and
    /// copying a struct of two dozen arrays per row cost more than the reads.
    public final class Columns: Sendable {
        let count: Int
        let occurredAt: [Int64]
        /// nil for rows whose id the server assigns (derived); otherwise the client's.
        let explicitIDs: [EventID?]?
        let tenant: TextColumn
        let actorID: TextColumn
        let actorType: [Int32]
        let actorName: TextColumn
        let actorEmail: TextColumn
        let action: TextColumn
        let category: [Int32]
        let resourceType: TextColumn
        let resourceID: TextColumn
        let resourceName: TextColumn
        let outcome: [Int32]
        let reason: TextColumn
        let sourceIP: TextColumn
        let userAgent: TextColumn
        let traceID: TextColumn
        let requestID: TextColumn
        let descriptionText: TextColumn
        /// targets, changes and metadata as `ColumnEncoding.extrasBytes(of:)` writes them (the part's form).
        let extras: ByteColumn
        /// Whether every row's extras is known to be in the form the
        /// `extrasColumns` encoding rebuilds (valid UTF-8, targets and changes
        /// with only their non-empty strings, entries sorted by key): true
        /// for `IngestWireDecoder`'s columns, which it wrote that way. A
        /// flush then skips checking each row again (`ExtrasColumns.encode`).
        let extrasCanonical: Bool
        let minOccurredAt: Int64
        let maxOccurredAt: Int64
        let estimatedBytes: Int

        public convenience init(_ events: [AuditEvent]) {
            // One pass, with the nested messages read once per event: every
            // protobuf getter retains, and `actor` and `resource` copy theirs.
            let count = events.count
            var tenant = TextColumn.DictionaryBuilder(capacity: count)
            var actorID = tenant, actorName = tenant, actorEmail = tenant, action = tenant
            var resourceType = tenant, resourceID = tenant, resourceName = tenant
            var reason = tenant, sourceIP = tenant, userAgent = tenant
            var actorType: [Int32] = [], category: [Int32] = [], outcome: [Int32] = []
            actorType.reserveCapacity(count)
            category.reserveCapacity(count)
            outcome.reserveCapacity(count)
            for event in events {
                tenant.append(event.tenant)
                let actor = event.actor
                actorID.append(actor.id)
                actorType.append(Int32(truncatingIfNeeded: actor.type.rawValue))
                actorName.append(actor.name)
                actorEmail.append(actor.email)
                action.append(event.action)
                category.append(Int32(truncatingIfNeeded: event.category.rawValue))
                let resource = event.resource
                resourceType.append(resource.type)
                resourceID.append(resource.id)
                resourceName.append(resource.name)
                outcome.append(Int32(truncatingIfNeeded: event.outcome.rawValue))
                reason.append(event.reason)
                sourceIP.append(event.sourceIp)
                userAgent.append(event.userAgent)
            }
            let ids = events.map { $0.id.isEmpty ? nil : EventID($0.id) }
            self.init(
                occurredAt: events.map { $0.occurredAt.unixNanos },
                explicitIDs: ids.contains { $0 != nil } ? ids : nil,
                tenant: tenant.column, actorID: actorID.column, actorType: actorType, actorName: actorName.column,
                actorEmail: actorEmail.column, action: action.column, category: category,
                resourceType: resourceType.column, resourceID: resourceID.column, resourceName: resourceName.column,
                outcome: outcome, reason: reason.column, sourceIP: sourceIP.column, userAgent: userAgent.column,
                traceID: Self.perRow(events.map(\.traceID)),
                requestID: Self.perRow(events.map(\.requestID)),
                descriptionText: Self.perRow(events.map(\.description_p)),
                // In the part's form already, so that a flush copies them as they are.
                extras: ByteColumn(bytes: events.map(ColumnEncoding.extrasBytes(of:))))
        }

        /// A column with a value per row, kept as bytes (`StoredTextRows`).
        static func perRow(_ values: [String]) -> TextColumn {
            var builder = StoredTextRows.Builder(capacity: values.count)
            for value in values { withUTF8Bytes(value) { builder.append($0) } }
            return builder.column
        }

        /// The columns as built (by `init(_:)`, or straight from an Ingest
        /// request's bytes by `IngestWireDecoder`); every column has a row per event.
        init(
            occurredAt: [Int64], explicitIDs: [EventID?]?, tenant: TextColumn, actorID: TextColumn, actorType: [Int32],
            actorName: TextColumn, actorEmail: TextColumn, action: TextColumn, category: [Int32],
            resourceType: TextColumn, resourceID: TextColumn, resourceName: TextColumn, outcome: [Int32],
            reason: TextColumn, sourceIP: TextColumn, userAgent: TextColumn, traceID: TextColumn, requestID: TextColumn,
            descriptionText: TextColumn, extras: ByteColumn, extrasCanonical: Bool = false
        ) {
            count = occurredAt.count
            self.occurredAt = occurredAt
            self.explicitIDs = explicitIDs
            self.tenant = tenant
            self.actorID = actorID
            self.actorType = actorType
            self.actorName = actorName
            self.actorEmail = actorEmail
            self.action = action
            self.category = category
            self.resourceType = resourceType
            self.resourceID = resourceID
            self.resourceName = resourceName
            self.outcome = outcome
            self.reason = reason
            self.sourceIP = sourceIP
            self.userAgent = userAgent
            self.traceID = traceID
            self.requestID = requestID
            self.descriptionText = descriptionText
            self.extras = extras
            self.extrasCanonical = extrasCanonical
            minOccurredAt = occurredAt.min() ?? 0
            maxOccurredAt = occurredAt.max() ?? 0
            let text = [
                tenant, actorID, actorName, actorEmail, action, resourceType, resourceID,
                resourceName, reason, sourceIP, userAgent, traceID, requestID, descriptionText,
            ].reduce(0) { $0 + $1.estimatedBytes }
            estimatedBytes = 256 + text + extras.bytes.count + count * (8 + 12 + 9 + 8)
        }
    }

    let columns: Columns
    /// The chain through this batch, once computed ahead of the flush (for a
    /// receipt or a checkpoint), so that the flush does not hash it again.
    let chainMark = Mutex<ChainMark?>(nil)
    /// Encoded events shared by live subscribers (see `DeliveryCache`).
    let deliveryCache = Mutex(DeliveryCache())
    public let firstSeq: UInt64
    public let receivedAt: Int64
    public let idempotencyKey: String
    public var count: Int { columns.count }
    public var minOccurredAt: Int64 { columns.minOccurredAt }
    public var maxOccurredAt: Int64 { columns.maxOccurredAt }
    /// Approximate heap bytes, for the memory budget.
    public var estimatedBytes: Int { columns.estimatedBytes }

    public var lastSeq: UInt64 { firstSeq + UInt64(count) - 1 }

    /// `columns`' rows get seqs `firstSeq`, `firstSeq + 1`, ….
    public init(columns: Columns, firstSeq: UInt64, receivedAt: Int64, idempotencyKey: String) {
        self.columns = columns
        self.firstSeq = firstSeq
        self.receivedAt = receivedAt
        self.idempotencyKey = idempotencyKey
    }

    public func seq(at row: Int) -> UInt64 { firstSeq + UInt64(row) }

    public func id(at row: Int) -> EventID {
        columns.explicitIDs?[row] ?? derivedEventID(receivedAt: receivedAt, seq: seq(at: row))
    }

    /// The event at `row`, whole.
    public func event(at row: Int) -> AuditEvent {
        let c = columns
        var event = AuditEvent()
        let extra = c.extras.row(row)
        if !extra.isEmpty, let holder = try? AuditEvent(serializedBytes: extra) {
            event.targets = holder.targets
            event.changes = holder.changes
            event.metadata = holder.metadata
        }
        event.id = id(at: row).description
        event.seq = seq(at: row)
        event.occurredAt = .init(unixNanos: c.occurredAt[row])
        event.receivedAt = .init(unixNanos: receivedAt)
        event.tenant = c.tenant.value(at: row)
        var actor = Vigil_V1_Actor()
        actor.id = c.actorID.value(at: row)
        actor.type = Vigil_V1_ActorType(rawValue: Int(c.actorType[row])) ?? .UNRECOGNIZED(Int(c.actorType[row]))
        actor.name = c.actorName.value(at: row)
        actor.email = c.actorEmail.value(at: row)
        if actor != Vigil_V1_Actor() { event.actor = actor }
        event.action = c.action.value(at: row)
        event.category = Vigil_V1_Category(rawValue: Int(c.category[row])) ?? .UNRECOGNIZED(Int(c.category[row]))
        var resource = Vigil_V1_Resource()
        resource.type = c.resourceType.value(at: row)
        resource.id = c.resourceID.value(at: row)
        resource.name = c.resourceName.value(at: row)
        if resource != Vigil_V1_Resource() { event.resource = resource }
        event.outcome = Vigil_V1_Outcome(rawValue: Int(c.outcome[row])) ?? .UNRECOGNIZED(Int(c.outcome[row]))
        event.reason = c.reason.value(at: row)
        event.sourceIp = c.sourceIP.value(at: row)
        event.userAgent = c.userAgent.value(at: row)
        event.traceID = c.traceID.value(at: row)
        event.requestID = c.requestID.value(at: row)
        event.description_p = c.descriptionText.value(at: row)
        return event
    }

    /// A text column by its part column.
    func text(_ column: PartColumn) -> TextColumn {
        let c = columns
        switch column {
        case .tenant: return c.tenant
        case .actorID: return c.actorID
        case .actorName: return c.actorName
        case .actorEmail: return c.actorEmail
        case .action: return c.action
        case .resourceType: return c.resourceType
        case .resourceID: return c.resourceID
        case .resourceName: return c.resourceName
        case .reason: return c.reason
        case .sourceIP: return c.sourceIP
        case .userAgent: return c.userAgent
        case .traceID: return c.traceID
        case .requestID: return c.requestID
        case .description: return c.descriptionText
        default: preconditionFailure("\(column.name) is not a text column of a memory chunk")
        }
    }

    /// An enum column by its part column.
    func enums(_ column: PartColumn) -> [Int32] {
        switch column {
        case .actorType: columns.actorType
        case .category: columns.category
        case .outcome: columns.outcome
        default: preconditionFailure("\(column.name) is not an enum column of a memory chunk")
        }
    }

    /// The metadata of `row`.
    func metadata(at row: Int) -> [String: String] {
        let extra = columns.extras.row(row)
        guard !extra.isEmpty, let holder = try? AuditEvent(serializedBytes: extra) else { return [:] }
        return holder.metadata
    }

}

/// What the chain knows of a batch: its events' truncated leaves (for the
/// part's `leaf` column) and the head after its last event.
struct ChainMark: Sendable {
    var truncated: [UInt32]
    var headAfter: ChainDigest
}

extension MemoryChunk.Columns {
    /// The first row and column where `self` and `other` hold different
    /// values (text by bytes, extras byte for byte), or nil: how the tests
    /// and the fuzzer hold `IngestWireDecoder` to `init(_:)`.
    func firstDifference(from other: MemoryChunk.Columns) -> String? {
        guard count == other.count else { return "\(count) rows against \(other.count)" }
        if (explicitIDs == nil) != (other.explicitIDs == nil) { return "explicit ids" }
        let text: [(String, KeyPath<MemoryChunk.Columns, TextColumn>)] = [
            ("tenant", \.tenant), ("actorID", \.actorID), ("actorName", \.actorName), ("actorEmail", \.actorEmail),
            ("action", \.action), ("resourceType", \.resourceType), ("resourceID", \.resourceID),
            ("resourceName", \.resourceName), ("reason", \.reason), ("sourceIP", \.sourceIP), ("userAgent", \.userAgent),
            ("traceID", \.traceID), ("requestID", \.requestID), ("description", \.descriptionText),
        ]
        let numbers: [(String, KeyPath<MemoryChunk.Columns, [Int32]>)] = [
            ("actorType", \.actorType), ("category", \.category), ("outcome", \.outcome),
        ]
        for row in 0..<count {
            if occurredAt[row] != other.occurredAt[row] { return "row \(row): occurredAt" }
            if explicitIDs?[row] != other.explicitIDs?[row] { return "row \(row): id" }
            for (name, path) in text where !sameUTF8(self[keyPath: path].value(at: row), other[keyPath: path].value(at: row)) {
                return "row \(row): \(name)"
            }
            for (name, path) in numbers where self[keyPath: path][row] != other[keyPath: path][row] {
                return "row \(row): \(name)"
            }
            if extras.row(row) != other.extras.row(row) { return "row \(row): extras" }
        }
        return canonicalExtrasProblem() ?? other.canonicalExtrasProblem()
    }

    /// When these columns say their extras are canonical: nil if that is so,
    /// that is if the shortcuts it allows give what checking every row
    /// gives (the `extrasColumns` chunk, and every row's leaf); else what differs.
    func canonicalExtrasProblem() -> String? {
        guard extrasCanonical else { return nil }
        let checked = MemoryChunk.Columns(
            occurredAt: occurredAt, explicitIDs: explicitIDs, tenant: tenant, actorID: actorID, actorType: actorType,
            actorName: actorName, actorEmail: actorEmail, action: action, category: category, resourceType: resourceType,
            resourceID: resourceID, resourceName: resourceName, outcome: outcome, reason: reason, sourceIP: sourceIP,
            userAgent: userAgent, traceID: traceID, requestID: requestID, descriptionText: descriptionText, extras: extras)
        var trusted = ByteWriter(), full = ByteWriter()
        let encoded = extras.withRows { ExtrasColumns.encode($0, canonical: true, into: &trusted) }
        guard extras.withRows({ ExtrasColumns.encode($0, into: &full) }), encoded, trusted.bytes == full.bytes else {
            return "extras said canonical do not encode as checked extras do"
        }
        let leaves = MemoryChunk(columns: self, firstSeq: 1, receivedAt: 1, idempotencyKey: "").leaves()
        let expected = MemoryChunk(columns: checked, firstSeq: 1, receivedAt: 1, idempotencyKey: "").leaves()
        if let row = leaves.indices.first(where: { leaves[$0] != expected[$0] }) { return "row \(row): leaf" }
        return nil
    }
}
