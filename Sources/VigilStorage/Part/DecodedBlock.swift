import SwiftProtobuf
import VigilCore
import VigilProto

/// The decoded columns of one block: each requested column as an array with
/// one element per row (nil for columns not decoded).
public struct DecodedBlock: Sendable {
    public var rowCount: Int
    public var occurredAt: [Int64]?
    public var seq: [UInt64]?
    public var receivedAt: [Int64]?
    /// Canonical id text (derived ids rebuilt from receivedAt and seq).
    public var id: [String]?
    public var tenant: [String]?
    public var actorID: [String]?
    /// Enum columns hold protobuf raw values (`Int32`, not a byte: unknown
    /// values such as `.UNRECOGNIZED(1000)` round trip too).
    public var actorType: [Int32]?
    public var actorName: [String]?
    public var actorEmail: [String]?
    public var action: [String]?
    public var category: [Int32]?
    public var resourceType: [String]?
    public var resourceID: [String]?
    public var resourceName: [String]?
    public var outcome: [Int32]?
    public var reason: [String]?
    public var sourceIP: [String]?
    public var userAgent: [String]?
    public var traceID: [String]?
    public var requestID: [String]?
    /// The `description` column (named so as not to read as the block's own description).
    public var descriptionText: [String]?
    /// Per row, an event holding only `targets`, `changes` and `metadata`.
    public var extras: [AuditEvent]?
    /// Per row, the bytes `ColumnEncoding.extrasBytes(of:)` gives for the
    /// row's extras (a list chunk stores exactly these), instead of `extras`
    /// when the block was read with `extrasAsBytes`: a merge copies them
    /// rather than parse and encode them again.
    var extrasBytes: [[UInt8]]?
    /// Whether the extras column decodes to `extrasBytes` (set by `PartReader.readColumns`).
    var wantsExtrasBytes = false
    /// Per row, the `PartPresence` bits.
    public var presence: [UInt8]?
    /// Per row, the first 4 bytes of the event's leaf hash (nil for parts
    /// written before tamper evidence).
    public var leaf: [UInt32]?

    /// Key columns (`PartColumn.keyColumns`) as decoded, in dictionary form,
    /// for decoding the columns keyed to them without hashing every row.
    var keyTexts: [PartColumn: TextColumn] = [:]

    public init(rowCount: Int) {
        self.rowCount = rowCount
    }

    /// A key column's values, in dictionary form when it was decoded here.
    func keyText(_ column: PartColumn) -> TextColumn? {
        keyTexts[column] ?? strings(column).map { TextColumn(identity: $0) }
    }

    /// The decoded values of a text column, by column.
    public func strings(_ column: PartColumn) -> [String]? {
        switch column {
        case .id: id
        case .tenant: tenant
        case .actorID: actorID
        case .actorName: actorName
        case .actorEmail: actorEmail
        case .action: action
        case .resourceType: resourceType
        case .resourceID: resourceID
        case .resourceName: resourceName
        case .reason: reason
        case .sourceIP: sourceIP
        case .userAgent: userAgent
        case .traceID: traceID
        case .requestID: requestID
        case .description: descriptionText
        default: nil
        }
    }

    mutating func setStrings(_ column: PartColumn, _ values: [String]) {
        switch column {
        case .id: id = values
        case .tenant: tenant = values
        case .actorID: actorID = values
        case .actorName: actorName = values
        case .actorEmail: actorEmail = values
        case .action: action = values
        case .resourceType: resourceType = values
        case .resourceID: resourceID = values
        case .resourceName: resourceName = values
        case .reason: reason = values
        case .sourceIP: sourceIP = values
        case .userAgent: userAgent = values
        case .traceID: traceID = values
        case .requestID: requestID = values
        case .description: descriptionText = values
        default: preconditionFailure("\(column.name) is not a text column")
        }
    }

    /// The decoded values of an enum column, by column.
    public func enumValues(_ column: PartColumn) -> [Int32]? {
        switch column {
        case .actorType: actorType
        case .category: category
        case .outcome: outcome
        case .presence: presence.map { $0.map { Int32($0) } }
        default: nil
        }
    }

    /// The event of `row`, built from whichever columns were decoded (the
    /// others keep their defaults). With every column decoded it equals the
    /// event that was written, except for unknown fields, which parts do not keep.
    public func event(at row: Int) -> AuditEvent {
        var event = AuditEvent()
        let bits: UInt8
        if let presence {
            bits = presence[row]
        } else {
            // Without the presence column: times when decoded, sub-messages
            // when any of their columns was decoded.
            var guess: UInt8 = 0
            if occurredAt != nil { guess |= PartPresence.occurredAt }
            if receivedAt != nil { guess |= PartPresence.receivedAt }
            if actorID != nil || actorType != nil || actorName != nil || actorEmail != nil { guess |= PartPresence.actor }
            if resourceType != nil || resourceID != nil || resourceName != nil { guess |= PartPresence.resource }
            bits = guess
        }
        if let id { event.id = id[row] }
        if let seq { event.seq = seq[row] }
        if let occurredAt, bits & PartPresence.occurredAt != 0 {
            event.occurredAt = Google_Protobuf_Timestamp(unixNanos: occurredAt[row])
        }
        if let receivedAt, bits & PartPresence.receivedAt != 0 {
            event.receivedAt = Google_Protobuf_Timestamp(unixNanos: receivedAt[row])
        }
        if let tenant { event.tenant = tenant[row] }
        if bits & PartPresence.actor != 0 {
            var actor = Vigil_V1_Actor()
            if let actorID { actor.id = actorID[row] }
            if let actorType { actor.type = Vigil_V1_ActorType(rawValue: Int(actorType[row])) ?? .UNRECOGNIZED(Int(actorType[row])) }
            if let actorName { actor.name = actorName[row] }
            if let actorEmail { actor.email = actorEmail[row] }
            event.actor = actor
        }
        if let action { event.action = action[row] }
        if let category { event.category = Vigil_V1_Category(rawValue: Int(category[row])) ?? .UNRECOGNIZED(Int(category[row])) }
        if bits & PartPresence.resource != 0 {
            var resource = Vigil_V1_Resource()
            if let resourceType { resource.type = resourceType[row] }
            if let resourceID { resource.id = resourceID[row] }
            if let resourceName { resource.name = resourceName[row] }
            event.resource = resource
        }
        if let outcome { event.outcome = Vigil_V1_Outcome(rawValue: Int(outcome[row])) ?? .UNRECOGNIZED(Int(outcome[row])) }
        if let reason { event.reason = reason[row] }
        if let sourceIP { event.sourceIp = sourceIP[row] }
        if let userAgent { event.userAgent = userAgent[row] }
        if let traceID { event.traceID = traceID[row] }
        if let requestID { event.requestID = requestID[row] }
        if let descriptionText { event.description_p = descriptionText[row] }
        if let partial = extras?[row] ?? extrasBytes.flatMap({ try? AuditEvent(serializedBytes: $0[row]) }) {
            if !partial.targets.isEmpty { event.targets = partial.targets }
            if !partial.changes.isEmpty { event.changes = partial.changes }
            if !partial.metadata.isEmpty { event.metadata = partial.metadata }
        }
        return event
    }

    /// Every row's event, in stored order.
    public func events() -> [AuditEvent] {
        (0..<rowCount).map { event(at: $0) }
    }
}
