/// The columns an event's canonical bytes are written from, row by row,
/// without building the event: a memory chunk's (`MemoryChunk.Columns`: a
/// flush's leaves, subscribers' deliveries) and a part block's
/// (`EncodedColumns`: query pages).
protocol CanonicalRowColumns {
    var tenant: TextColumn { get }
    var actorID: TextColumn { get }
    var actorType: [Int32] { get }
    var actorName: TextColumn { get }
    var actorEmail: TextColumn { get }
    var action: TextColumn { get }
    var category: [Int32] { get }
    var resourceType: TextColumn { get }
    var resourceID: TextColumn { get }
    var resourceName: TextColumn { get }
    var outcome: [Int32] { get }
    var reason: TextColumn { get }
    var sourceIP: TextColumn { get }
    var userAgent: TextColumn { get }
    var traceID: TextColumn { get }
    var requestID: TextColumn { get }
    var descriptionText: TextColumn { get }
}

extension MemoryChunk.Columns: CanonicalRowColumns {}
extension EncodedColumns: CanonicalRowColumns {}

/// Where a row's extras (targets, changes and metadata) come from, ready
/// to write: `canonical` bytes are copied in two pieces around fields 11–16
/// (the targets end at `targetsEnd`); others were parsed into `layout`.
struct CanonicalRowExtras {
    var bytes: UnsafeBufferPointer<UInt8>
    var canonical: Bool
    var targetsEnd: Int

    /// The extras of a row, checked and located; nil when they hold anything
    /// but plain targets, changes and metadata entries (the event path then
    /// writes the row). `layout` is reused from row to row.
    init?(_ bytes: UnsafeBufferPointer<UInt8>, canonical: Bool, layout: inout ExtrasLayout) {
        self.bytes = bytes
        self.canonical = canonical
        targetsEnd = 0
        if bytes.isEmpty {
            layout.removeAll()
            self.canonical = false
        } else if canonical {
            guard let end = leadingTargetsEnd(bytes) else { return nil }
            targetsEnd = end
        } else {
            guard layout.parse(bytes) else { return nil }
        }
    }
}

extension CanonicalEvent.ScratchWriter {
    /// Fields 5 to 19 of row `row` of `c`, in the order and form
    /// `CanonicalEvent.write(_:into:)` gives them: the one place the two
    /// column paths share, so that they cannot drift apart. The actor (6)
    /// and the resource (9) are written when `hasActor` / `hasResource`
    /// say so, nil meaning "when any of their fields is set" (memory chunks,
    /// whose `event(at:)` decides so).
    mutating func rowFields(
        _ row: Int, of c: some CanonicalRowColumns, hasActor: Bool?, hasResource: Bool?, extras: CanonicalRowExtras,
        layout: ExtrasLayout
    ) {
        c.tenant.withBytes(at: row) { string(5, bytes: $0) }
        let actorType = Int64(c.actorType[row])
        // In place: a column of stored rows makes no `String`.
        c.actorID.withBytes(at: row) { actorID in
            c.actorName.withBytes(at: row) { actorName in
                c.actorEmail.withBytes(at: row) { actorEmail in
                    guard hasActor ?? (actorType != 0 || !actorID.isEmpty || !actorName.isEmpty || !actorEmail.isEmpty) else { return }
                    messageHeader(
                        6,
                        size: CanonicalEvent.Writer.bytesStringSize(1, actorID.count) + CanonicalEvent.Writer.enumSize(2, actorType)
                            + CanonicalEvent.Writer.bytesStringSize(3, actorName.count)
                            + CanonicalEvent.Writer.bytesStringSize(4, actorEmail.count))
                    string(1, bytes: actorID)
                    enumeration(2, actorType)
                    string(3, bytes: actorName)
                    string(4, bytes: actorEmail)
                }
            }
        }
        c.action.withBytes(at: row) { string(7, bytes: $0) }
        enumeration(8, Int64(c.category[row]))
        c.resourceType.withBytes(at: row) { resourceType in
            c.resourceID.withBytes(at: row) { resourceID in
                c.resourceName.withBytes(at: row) { resourceName in
                    guard hasResource ?? (!resourceType.isEmpty || !resourceID.isEmpty || !resourceName.isEmpty) else { return }
                    messageHeader(
                        9,
                        size: CanonicalEvent.Writer.bytesStringSize(1, resourceType.count)
                            + CanonicalEvent.Writer.bytesStringSize(2, resourceID.count)
                            + CanonicalEvent.Writer.bytesStringSize(3, resourceName.count))
                    string(1, bytes: resourceType)
                    string(2, bytes: resourceID)
                    string(3, bytes: resourceName)
                }
            }
        }
        let bytes = extras.bytes
        if extras.canonical {
            verbatim(bytes[0..<extras.targetsEnd])
        } else {
            for range in layout.targets { embedded(10, bytes[range]) }
        }
        enumeration(11, Int64(c.outcome[row]))
        c.reason.withBytes(at: row) { string(12, bytes: $0) }
        c.sourceIP.withBytes(at: row) { string(13, bytes: $0) }
        c.userAgent.withBytes(at: row) { string(14, bytes: $0) }
        c.traceID.withBytes(at: row) { string(15, bytes: $0) }
        c.requestID.withBytes(at: row) { string(16, bytes: $0) }
        if extras.canonical {
            verbatim(bytes[extras.targetsEnd...])
        } else {
            for range in layout.changes { embedded(17, bytes[range]) }
            for entry in layout.metadata {
                let key = bytes[entry.key], value = bytes[entry.value]
                messageHeader(
                    18, size: CanonicalEvent.Writer.bytesSize(1, key.count) + CanonicalEvent.Writer.bytesSize(2, value.count))
                self.bytes(1, key)
                self.bytes(2, value)
            }
        }
        c.descriptionText.withBytes(at: row) { string(19, bytes: $0) }
    }
}
