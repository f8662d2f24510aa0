import CVigilSystem
import VigilCore
import VigilProto

/// The rows a part is written from, in input order: events (tests, and
/// merges of parts without presence bits), rows of decoded blocks (merges)
/// or rows of memory chunks (flushes); the last two never rebuild their
/// events as protobuf messages. `PartWriter` sorts them by (tenant,
/// occurredAt, seq) and asks each row into a block's columns; every source
/// must give a row the same column values, which the tests hold them to by
/// writing one part two ways and comparing the files.
protocol PartRowSource: Sendable {
    var rowCount: Int { get }
    /// Row `index`'s tenant, occurred-at (nanoseconds) and seq: the sort key.
    func sortKey(at index: Int) -> (tenant: String, occurredAt: Int64, seq: UInt64)
    /// Appends every column of row `index` but the leaf.
    func appendRow(_ index: Int, to columns: inout BlockColumns, tenant: String, occurredAt: Int64, seq: UInt64) throws(VigilError)
    /// Asks memory for what `appendRow(index, …)` will read, a few rows
    /// before it is called, in three stages that each need the one before
    /// in the caches: 0 where the row is, 1 its codes and fixed-size values,
    /// 2 the values the codes point to. Changes nothing else.
    func prefetch(_ index: Int, stage: Int)
}

extension PartRowSource {
    func prefetch(_ index: Int, stage: Int) {}
}

extension Array: PartRowSource where Element == AuditEvent {
    var rowCount: Int { count }

    func sortKey(at index: Int) -> (tenant: String, occurredAt: Int64, seq: UInt64) {
        let event = self[index]
        return (event.tenant, event.occurredAt.unixNanos, event.seq)
    }

    func appendRow(_ index: Int, to columns: inout BlockColumns, tenant: String, occurredAt: Int64, seq: UInt64) throws(VigilError) {
        try columns.append(self[index], tenant: tenant, occurredAt: occurredAt, seq: seq)
    }
}

/// Rows of memory chunks, by (chunk, row), in the order a flush met them.
struct MemoryChunkRows: PartRowSource {
    private(set) var chunks: [MemoryChunk] = []
    /// Per row: its chunk's index in `chunks` and its row in that chunk.
    private var chunkIndexes: [Int32] = []
    private var rows: [Int32] = []

    var rowCount: Int { rows.count }

    /// Adds row `row` of `chunk`; a chunk's rows are added together, in order.
    mutating func add(_ chunk: MemoryChunk, row: Int) {
        if chunks.last !== chunk { chunks.append(chunk) }
        chunkIndexes.append(Int32(chunks.count - 1))
        rows.append(Int32(row))
    }

    func sortKey(at index: Int) -> (tenant: String, occurredAt: Int64, seq: UInt64) {
        let chunk = chunks[Int(chunkIndexes[index])]
        let row = Int(rows[index])
        return (chunk.columns.tenant.value(at: row), chunk.columns.occurredAt[row], chunk.seq(at: row))
    }

    func appendRow(_ index: Int, to columns: inout BlockColumns, tenant: String, occurredAt: Int64, seq: UInt64) throws(VigilError) {
        let chunk = chunks[Int(chunkIndexes[index])]
        try columns.append(row: Int(rows[index]), of: chunk, tenant: tenant, occurredAt: occurredAt, seq: seq)
    }

    /// A flush's rows, sorted by tenant, come a few at a time from each of
    /// hundreds of chunks, so nearly every value `appendRow` reads misses the
    /// caches, and each miss waits for the one before it (row, then code,
    /// then value). Asked for rows ahead, these loads overlap.
    func prefetch(_ index: Int, stage: Int) {
        if stage == 0 {
            prefetchElement(of: chunkIndexes, at: index)
            prefetchElement(of: rows, at: index)
            return
        }
        let c = chunks[Int(chunkIndexes[index])].columns
        let row = Int(rows[index])
        // Each text column by name: through `MemoryChunk.text(_:)` every
        // call would retain and release the column's arrays.
        if stage == 1 {
            c.actorID.prefetchCode(at: row)
            c.actorName.prefetchCode(at: row)
            c.actorEmail.prefetchCode(at: row)
            c.action.prefetchCode(at: row)
            c.resourceType.prefetchCode(at: row)
            c.resourceID.prefetchCode(at: row)
            c.resourceName.prefetchCode(at: row)
            c.reason.prefetchCode(at: row)
            c.sourceIP.prefetchCode(at: row)
            c.userAgent.prefetchCode(at: row)
            c.descriptionText.prefetchCode(at: row)
            c.traceID.prefetchCode(at: row)
            c.requestID.prefetchCode(at: row)
            prefetchElement(of: c.actorType, at: row)
            prefetchElement(of: c.category, at: row)
            prefetchElement(of: c.outcome, at: row)
            prefetchElement(of: c.extras.ends, at: row)
        } else {
            c.actorID.prefetchValue(at: row)
            c.actorName.prefetchValue(at: row)
            c.actorEmail.prefetchValue(at: row)
            c.action.prefetchValue(at: row)
            c.resourceType.prefetchValue(at: row)
            c.resourceID.prefetchValue(at: row)
            c.resourceName.prefetchValue(at: row)
            c.reason.prefetchValue(at: row)
            c.sourceIP.prefetchValue(at: row)
            c.userAgent.prefetchValue(at: row)
            c.descriptionText.prefetchValue(at: row)
            c.traceID.prefetchValue(at: row)
            c.requestID.prefetchValue(at: row)
            let start = row == 0 ? 0 : c.extras.ends[row - 1]
            if start < c.extras.bytes.count { prefetchElement(of: c.extras.bytes, at: start) }
        }
    }
}

extension BlockColumns {
    /// Row `row` of a memory chunk, with exactly the values `append(_:…)`
    /// takes from `chunk.event(at: row)`: that event always has occurred-at
    /// and received-at set, and an actor or resource only when one of its
    /// fields is set; its extras are already in the part's form.
    mutating func append(row: Int, of chunk: MemoryChunk, tenant: String, occurredAt time: Int64, seq number: UInt64) throws(VigilError) {
        let before = totalBytes
        let c = chunk.columns
        occurredAt.append(time)
        receivedAt.append(chunk.receivedAt)
        seq.append(number)
        seqBits.append(Int64(bitPattern: number))
        category.append(c.category[row])
        outcome.append(c.outcome[row])
        var bits = PartPresence.occurredAt | PartPresence.receivedAt
        let actorTypeValue = c.actorType[row]
        actorType.append(actorTypeValue)
        // Every column is appended: no short-circuit.
        let actorID = appendText(1, c.actorID, row), actorName = appendText(2, c.actorName, row)
        let actorEmail = appendText(3, c.actorEmail, row)
        if actorTypeValue != 0 || actorID || actorName || actorEmail { bits |= PartPresence.actor }
        let resourceType = appendText(5, c.resourceType, row), resourceID = appendText(6, c.resourceID, row)
        let resourceName = appendText(7, c.resourceName, row)
        if resourceType || resourceID || resourceName { bits |= PartPresence.resource }
        presence.append(Int32(bits))
        text[0].append(tenant)
        c.action.withBytes(at: row) { text[4].append(raw: $0) }
        c.reason.withBytes(at: row) { text[8].append(raw: $0) }
        c.sourceIP.withBytes(at: row) { text[9].append(raw: $0) }
        c.userAgent.withBytes(at: row) { text[10].append(raw: $0) }
        c.descriptionText.withBytes(at: row) { text[11].append(raw: $0) }
        // A derived id is marked, not formatted (the encoder would parse it
        // back), but counts its text's bytes toward the block's size as
        // the same event's would.
        var idBytes = 0
        if let id = c.explicitIDs?[row] {
            CanonicalEventID.withFormatted(id) { text[12].append(raw: $0) }
            derivedID.append(false)
        } else {
            text[12].append(raw: UnsafeRawBufferPointer(start: nil, count: 0))
            derivedID.append(true)
            idBytes = CanonicalEventID.textLength
        }
        c.traceID.withBytes(at: row) { text[13].append(raw: $0) }
        c.requestID.withBytes(at: row) { text[14].append(raw: $0) }
        c.extras.withRow(row) { extras.append(raw: UnsafeRawBufferPointer($0)) }
        if !c.extrasCanonical { extrasCanonical = false }
        try noteRow(bytesSince: before - idBytes)
    }

    /// Appends row `row` of `column` to text column `index`, from its bytes in
    /// place (`TextColumn.withBytes`). Whether the value is not empty.
    @inline(__always)
    private mutating func appendText(_ index: Int, _ column: TextColumn, _ row: Int) -> Bool {
        column.withBytes(at: row) { bytes in
            text[index].append(raw: bytes)
            return !bytes.isEmpty
        }
    }
}

/// Rows of decoded blocks, by (block, row), in the order a merge met them:
/// a merge writes its part from these, column by column. Building each row
/// as an `AuditEvent` and reading it back took more of a merge's time than
/// encoding the part. Every block must hold every column but the leaf
/// (`canWrite(from:)`), as every block a part reader decodes does.
struct DecodedBlockRows: PartRowSource {
    private(set) var blocks: [DecodedBlock] = []
    /// Per row: its block's index in `blocks` and its row in that block.
    private var blockIndexes: [Int32] = []
    private var rows: [Int32] = []

    var rowCount: Int { rows.count }

    /// Whether `block` holds every column `appendRow` reads.
    static func canWrite(from block: DecodedBlock) -> Bool {
        block.presence != nil && block.occurredAt != nil && block.receivedAt != nil && block.seq != nil && block.id != nil
            && block.tenant != nil && block.actorID != nil && block.actorType != nil && block.actorName != nil
            && block.actorEmail != nil && block.action != nil && block.category != nil && block.resourceType != nil
            && block.resourceID != nil && block.resourceName != nil && block.outcome != nil && block.reason != nil
            && block.sourceIP != nil && block.userAgent != nil && block.traceID != nil && block.requestID != nil
            && block.descriptionText != nil && (block.extras != nil || block.extrasBytes != nil)
    }

    /// Adds `block`, whose rows are then added with `add(row:)`.
    mutating func add(_ block: DecodedBlock) {
        blocks.append(block)
    }

    /// Adds row `row` of the block added last.
    mutating func add(row: Int) {
        blockIndexes.append(Int32(blocks.count - 1))
        rows.append(Int32(row))
    }

    /// Row `index` as the event `DecodedBlock.event(at:)` builds (tests write
    /// a part from these and from the rows, and compare the files).
    func event(at index: Int) -> AuditEvent {
        blocks[Int(blockIndexes[index])].event(at: Int(rows[index]))
    }

    func sortKey(at index: Int) -> (tenant: String, occurredAt: Int64, seq: UInt64) {
        let block = blocks[Int(blockIndexes[index])]
        let row = Int(rows[index])
        return (block.tenant![row], block.occurredAtIfPresent(row), block.seq![row])
    }

    func appendRow(_ index: Int, to columns: inout BlockColumns, tenant: String, occurredAt: Int64, seq: UInt64) throws(VigilError) {
        try columns.append(row: Int(rows[index]), of: blocks[Int(blockIndexes[index])], tenant: tenant, occurredAt: occurredAt, seq: seq)
    }
}

extension DecodedBlock {
    /// Row `row`'s occurred-at, 0 when the event has none (as in `event(at:)`).
    @inline(__always)
    func occurredAtIfPresent(_ row: Int) -> Int64 {
        presence.map { $0[row] & PartPresence.occurredAt } == 0 ? 0 : occurredAt![row]
    }
}

extension BlockColumns {
    /// Row `row` of a decoded block, with exactly the values
    /// `append(_:…)` takes from `block.event(at: row)`: an actor's or a
    /// resource's values only where the presence bits say it is there.
    mutating func append(row: Int, of block: DecodedBlock, tenant: String, occurredAt time: Int64, seq number: UInt64) throws(VigilError) {
        let before = totalBytes
        let bits = block.presence![row]
        occurredAt.append(time)
        receivedAt.append(bits & PartPresence.receivedAt != 0 ? block.receivedAt![row] : 0)
        seq.append(number)
        seqBits.append(Int64(bitPattern: number))
        category.append(block.category![row])
        outcome.append(block.outcome![row])
        let hasActor = bits & PartPresence.actor != 0
        actorType.append(hasActor ? block.actorType![row] : 0)
        text[1].append(hasActor ? block.actorID![row] : "")
        text[2].append(hasActor ? block.actorName![row] : "")
        text[3].append(hasActor ? block.actorEmail![row] : "")
        let hasResource = bits & PartPresence.resource != 0
        text[5].append(hasResource ? block.resourceType![row] : "")
        text[6].append(hasResource ? block.resourceID![row] : "")
        text[7].append(hasResource ? block.resourceName![row] : "")
        presence.append(Int32(bits & PartPresence.all))
        text[0].append(tenant)
        text[4].append(block.action![row])
        text[8].append(block.reason![row])
        text[9].append(block.sourceIP![row])
        text[10].append(block.userAgent![row])
        text[11].append(block.descriptionText![row])
        text[12].append(block.id![row])
        text[13].append(block.traceID![row])
        text[14].append(block.requestID![row])
        extrasCanonical = false
        if let stored = block.extrasBytes {
            extras.append(bytes: stored[row])
        } else {
            extras.append(bytes: ColumnEncoding.extrasBytes(of: block.extras![row]))
        }
        try noteRow(bytesSince: before)
    }
}
