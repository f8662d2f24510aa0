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
    /// A dictionary-coded string column.
    struct StringColumn: Sendable {
        var values: [String] = []
        var codes: [UInt32] = []

        init(_ strings: some Sequence<String>) {
            var index: [String: UInt32] = [:]
            for string in strings {
                if let code = index[string] {
                    codes.append(code)
                } else {
                    let code = UInt32(values.count)
                    index[string] = code
                    values.append(string)
                    codes.append(code)
                }
            }
        }

        subscript(row: Int) -> String { values[Int(codes[row])] }

        var bytes: Int { values.reduce(0) { $0 + $1.utf8.count + 16 } + codes.count * 4 }
    }

    /// A batch's columns, built before the engine takes its lock (the costly part).
    public struct Columns: Sendable {
        let count: Int
        let occurredAt: [Int64]
        /// nil for rows whose id the server assigns (derived); otherwise the client's.
        let explicitIDs: [EventID?]?
        let tenant: StringColumn
        let actorID: StringColumn
        let actorType: [UInt8]
        let actorName: StringColumn
        let actorEmail: StringColumn
        let action: StringColumn
        let category: [UInt8]
        let resourceType: StringColumn
        let resourceID: StringColumn
        let resourceName: StringColumn
        let outcome: [UInt8]
        let reason: StringColumn
        let sourceIP: StringColumn
        let userAgent: StringColumn
        let traceID: [String]
        let requestID: [String]
        let descriptionText: [String]
        /// targets, changes and metadata as the protobuf bytes of an event holding only them; empty when none.
        let extras: [[UInt8]]
        let minOccurredAt: Int64
        let maxOccurredAt: Int64
        let estimatedBytes: Int

        public init(_ events: [AuditEvent]) {
            count = events.count
            occurredAt = events.map { $0.occurredAt.unixNanos }
            let ids = events.map { $0.id.isEmpty ? nil : EventID($0.id) }
            explicitIDs = ids.contains { $0 != nil } ? ids : nil
            tenant = StringColumn(events.lazy.map(\.tenant))
            actorID = StringColumn(events.lazy.map(\.actor.id))
            actorType = events.map { UInt8(truncatingIfNeeded: $0.actor.type.rawValue) }
            actorName = StringColumn(events.lazy.map(\.actor.name))
            actorEmail = StringColumn(events.lazy.map(\.actor.email))
            action = StringColumn(events.lazy.map(\.action))
            category = events.map { UInt8(truncatingIfNeeded: $0.category.rawValue) }
            resourceType = StringColumn(events.lazy.map(\.resource.type))
            resourceID = StringColumn(events.lazy.map(\.resource.id))
            resourceName = StringColumn(events.lazy.map(\.resource.name))
            outcome = events.map { UInt8(truncatingIfNeeded: $0.outcome.rawValue) }
            reason = StringColumn(events.lazy.map(\.reason))
            sourceIP = StringColumn(events.lazy.map(\.sourceIp))
            userAgent = StringColumn(events.lazy.map(\.userAgent))
            traceID = events.map(\.traceID)
            requestID = events.map(\.requestID)
            descriptionText = events.map(\.description_p)
            extras = events.map { event in
                guard !event.targets.isEmpty || !event.changes.isEmpty || !event.metadata.isEmpty else { return [] }
                var holder = AuditEvent()
                holder.targets = event.targets
                holder.changes = event.changes
                holder.metadata = event.metadata
                return (try? holder.serializedBytes()) ?? []
            }
            minOccurredAt = occurredAt.min() ?? 0
            maxOccurredAt = occurredAt.max() ?? 0
            let strings = [tenant, actorID, actorName, actorEmail, action, resourceType, resourceID, resourceName, reason, sourceIP, userAgent]
                .reduce(0) { $0 + $1.bytes }
            let plain = (traceID + requestID + descriptionText).reduce(0) { $0 + $1.utf8.count + 16 }
            estimatedBytes = 256 + strings + plain + extras.reduce(0) { $0 + $1.count + 24 } + count * (8 + 3 + 9)
        }
    }

    let columns: Columns
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
        let extra = c.extras[row]
        if !extra.isEmpty, let holder = try? AuditEvent(serializedBytes: extra) {
            event.targets = holder.targets
            event.changes = holder.changes
            event.metadata = holder.metadata
        }
        event.id = id(at: row).description
        event.seq = seq(at: row)
        event.occurredAt = .init(unixNanos: c.occurredAt[row])
        event.receivedAt = .init(unixNanos: receivedAt)
        event.tenant = c.tenant[row]
        var actor = Vigil_V1_Actor()
        actor.id = c.actorID[row]
        actor.type = Vigil_V1_ActorType(rawValue: Int(c.actorType[row])) ?? .unspecified
        actor.name = c.actorName[row]
        actor.email = c.actorEmail[row]
        if actor != Vigil_V1_Actor() { event.actor = actor }
        event.action = c.action[row]
        event.category = Vigil_V1_Category(rawValue: Int(c.category[row])) ?? .unspecified
        var resource = Vigil_V1_Resource()
        resource.type = c.resourceType[row]
        resource.id = c.resourceID[row]
        resource.name = c.resourceName[row]
        if resource != Vigil_V1_Resource() { event.resource = resource }
        event.outcome = Vigil_V1_Outcome(rawValue: Int(c.outcome[row])) ?? .unspecified
        event.reason = c.reason[row]
        event.sourceIp = c.sourceIP[row]
        event.userAgent = c.userAgent[row]
        event.traceID = c.traceID[row]
        event.requestID = c.requestID[row]
        event.description_p = c.descriptionText[row]
        return event
    }

    /// The rows that match `filter` (and lie in `rows`), evaluated on the
    /// columns: each string condition is decided once per distinct value of
    /// the chunk's dictionary, not once per row.
    func matchingRows(_ filter: EventFilter, visibleThrough visibleSeq: UInt64) -> [Int] {
        let c = columns
        guard filter.since <= c.maxOccurredAt, filter.until > c.minOccurredAt, firstSeq <= visibleSeq else { return [] }
        func allowed(_ column: StringColumn, _ test: (String) -> Bool) -> [Bool] {
            column.values.map(test)
        }
        let tenants = filter.tenants.isEmpty ? nil : allowed(c.tenant) { filter.tenants.contains($0) }
        if let tenants, !tenants.contains(true) { return [] }
        let actors = filter.actorIDs.isEmpty ? nil : allowed(c.actorID) { filter.actorIDs.contains($0) }
        let actions = filter.exactActions.isEmpty && filter.actionPrefixes.isEmpty ? nil : allowed(c.action, filter.matchesAction)
        let types = filter.resourceTypes.isEmpty ? nil : allowed(c.resourceType) { filter.resourceTypes.contains($0) }
        let resources = filter.resourceIDs.isEmpty ? nil : allowed(c.resourceID) { filter.resourceIDs.contains($0) }
        let outcomes = filter.outcomes.isEmpty ? nil : (0...255).map { filter.outcomes.contains(Int32($0)) }
        let visibleRows = visibleSeq >= lastSeq ? c.count : Int(visibleSeq - firstSeq + 1)
        var rows: [Int] = []
        for row in 0..<visibleRows {
            let time = c.occurredAt[row]
            if time < filter.since || time >= filter.until { continue }
            if let tenants, !tenants[Int(c.tenant.codes[row])] { continue }
            if let actors, !actors[Int(c.actorID.codes[row])] { continue }
            if let actions, !actions[Int(c.action.codes[row])] { continue }
            if let types, !types[Int(c.resourceType.codes[row])] { continue }
            if let resources, !resources[Int(c.resourceID.codes[row])] { continue }
            if let outcomes, !outcomes[Int(c.outcome[row])] { continue }
            rows.append(row)
        }
        return rows
    }

    /// Whether any row could match the filter's tenant condition.
    func mayContainTenant(of filter: EventFilter) -> Bool {
        filter.tenants.isEmpty || columns.tenant.values.contains { filter.tenants.contains($0) }
    }

    func occurredAt(at row: Int) -> Int64 { columns.occurredAt[row] }
    func tenant(at row: Int) -> String { columns.tenant[row] }
}
