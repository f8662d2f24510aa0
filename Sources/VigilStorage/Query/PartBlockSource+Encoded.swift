import VigilCore
import VigilProto

extension PartBlockSource {
    /// The protobuf encoding of `event(at:)` for each of `rows`, written from
    /// the block's columns into the event's canonical bytes without building
    /// the event: a query page of 100 events spent about half of the
    /// server's time building `AuditEvent`s (their extras decoded by
    /// swift-protobuf) and serializing them again (`perf`, vigil-bench query Q1).
    /// A row whose extras hold anything but plain targets, changes and
    /// metadata entries (unknown fields) takes the event path.
    func pageEvents(rows: [Int32]) throws(VigilError) -> [[UInt8]] {
        guard !rows.isEmpty else { return [] }
        let columns = try EncodedColumns(self)
        var layout = ExtrasLayout()
        var extrasScratch: [UInt8] = []
        let scratch = CanonicalScratch()
        var encoded: [[UInt8]] = []
        encoded.reserveCapacity(rows.count)
        for row in rows {
            let row = Int(row)
            if CanonicalEvent.write(row: row, of: columns, layout: &layout, extrasScratch: &extrasScratch, into: scratch) {
                encoded.append(scratch.array)
            } else {
                let event = try event(at: row)
                do {
                    encoded.append(try event.serializedBytes())
                } catch {
                    throw VigilError(.internal, "a stored event does not encode: \(error)")
                }
            }
        }
        return encoded
    }
}

/// Every column of a part block that an event is written from, read once
/// for all the rows of a page that come from the block.
struct EncodedColumns {
    let presence: [Int32]
    let id: TextColumn
    let seq: [Int64]
    let occurredAt: [Int64]
    let receivedAt: [Int64]
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
    let extras: StoredExtras

    init(_ source: PartBlockSource) throws(VigilError) {
        presence = try source.enums(.presence)
        id = try source.text(.id)
        seq = try source.integers(.seq)
        occurredAt = try source.integers(.occurredAt)
        receivedAt = try source.integers(.receivedAt)
        tenant = try source.text(.tenant)
        actorID = try source.text(.actorID)
        actorType = try source.enums(.actorType)
        actorName = try source.text(.actorName)
        actorEmail = try source.text(.actorEmail)
        action = try source.text(.action)
        category = try source.enums(.category)
        resourceType = try source.text(.resourceType)
        resourceID = try source.text(.resourceID)
        resourceName = try source.text(.resourceName)
        outcome = try source.enums(.outcome)
        reason = try source.text(.reason)
        sourceIP = try source.text(.sourceIP)
        userAgent = try source.text(.userAgent)
        traceID = try source.text(.traceID)
        requestID = try source.text(.requestID)
        descriptionText = try source.text(.description)
        extras = try source.extras()
    }
}

extension CanonicalEvent {
    /// Writes the canonical bytes of `PartBlockSource.event(at: row)` into
    /// `scratch` from the block's columns, field for field as
    /// `write(_:into:)` writes that event: both times, the actor and the
    /// resource only when their presence bits say the event had them (then
    /// even when empty). Returns false, with `scratch` undefined, when the
    /// row's extras hold anything but plain targets, changes and metadata
    /// entries; the caller then takes the event path.
    static func write(
        row: Int, of c: EncodedColumns, layout: inout ExtrasLayout, extrasScratch: inout [UInt8], into scratch: CanonicalScratch
    ) -> Bool {
        c.extras.withBytes(at: row, scratch: &extrasScratch) { bytes, canonical in
            guard let extras = CanonicalRowExtras(bytes, canonical: canonical, layout: &layout) else { return false }
            let bits = UInt8(truncatingIfNeeded: c.presence[row])
            var writer = ScratchWriter(scratch)
            c.id.withBytes(at: row) { writer.string(1, bytes: $0) }
            writer.uint64(2, UInt64(bitPattern: c.seq[row]))
            if bits & PartPresence.occurredAt != 0 { writer.timestamp(3, unixNanos: c.occurredAt[row]) }
            if bits & PartPresence.receivedAt != 0 { writer.timestamp(4, unixNanos: c.receivedAt[row]) }
            writer.rowFields(
                row, of: c, hasActor: bits & PartPresence.actor != 0, hasResource: bits & PartPresence.resource != 0, extras: extras,
                layout: layout)
            writer.finish()
            return true
        }
    }
}
