import VigilCore
import VigilProto

/// The rows a query reads from one place — a memory chunk, or one block of
/// a part — column by column, so that a filter decodes only the columns its
/// conditions name and materializes only the rows that match.
protocol RowSource: AnyObject {
    var rowCount: Int { get }
    var minOccurredAt: Int64 { get }
    var maxOccurredAt: Int64 { get }
    var minSeq: UInt64 { get }
    var maxSeq: UInt64 { get }
    /// Every distinct tenant of the rows.
    var tenantsPresent: [String] { get }
    /// Bytes inflated so far to read this source's columns.
    var inflatedBytes: Int { get }
    func times() throws(VigilError) -> [Int64]
    func seqs() throws(VigilError) -> [UInt64]
    func text(_ column: PartColumn) throws(VigilError) -> TextColumn
    func enums(_ column: PartColumn) throws(VigilError) -> [Int32]
    /// Reads the metadata of rows (decoding what it needs once).
    func metadataReader() throws(VigilError) -> (Int) -> [String: String]
    /// The whole event of `row`.
    func event(at row: Int) throws(VigilError) -> AuditEvent
    /// The protobuf encoding of `event(at:)` for each of `rows` (a query
    /// page's): its canonical bytes (`CanonicalEvent`), written from the columns.
    func pageEvents(rows: [Int32]) throws(VigilError) -> [[UInt8]]
}

extension MemoryChunk: RowSource {
    var rowCount: Int { count }
    var minSeq: UInt64 { firstSeq }
    var maxSeq: UInt64 { lastSeq }
    var tenantsPresent: [String] { columns.tenant.values }
    var inflatedBytes: Int { 0 }
    func times() -> [Int64] { columns.occurredAt }
    func seqs() -> [UInt64] { (0..<count).map { firstSeq + UInt64($0) } }
    func metadataReader() -> (Int) -> [String: String] { { self.metadata(at: $0) } }
    func pageEvents(rows: [Int32]) -> [[UInt8]] { encodedEvents(rows: rows, keep: false) }
}

/// One block of a part as a row source. Columns come from the shared
/// `ColumnCache` when another query decoded them recently, else from the
/// file (and go into the cache). Used by one thread at a time.
final class PartBlockSource: RowSource {
    let reader: PartReader
    let block: BlockMetadata
    private let cache: ColumnCache
    private var local: [PartColumn: ColumnValues] = [:]
    private(set) var inflatedBytes = 0

    init(reader: PartReader, block: BlockMetadata, cache: ColumnCache) {
        self.reader = reader
        self.block = block
        self.cache = cache
    }

    var rowCount: Int { block.rowCount }
    var minOccurredAt: Int64 { block.minOccurredAt }
    var maxOccurredAt: Int64 { block.maxOccurredAt }
    var minSeq: UInt64 { block.minSeq }
    var maxSeq: UInt64 { block.maxSeq }
    var tenantsPresent: [String] { block.tenants }

    func column(_ column: PartColumn) throws(VigilError) -> ColumnValues {
        if let values = local[column] { return values }
        let key = ColumnCache.Key(part: reader.cacheID, block: Int32(block.index), column: column)
        if let values = cache.get(key) {
            local[column] = values
            return values
        }
        let read: (ColumnValues, inflated: Int)
        if column == .id {
            guard case .integers(let receivedAt) = try self.column(.receivedAt),
                case .integers(let seq) = try self.column(.seq)
            else { preconditionFailure("integer columns decode as integers") }
            read = try reader.readColumn(block: block.index, .id, receivedAt: receivedAt, seq: seq)
        } else if let key = column.keyColumn, block.columns[column]?.encoding.readsKeyColumn == true {
            read = try reader.readColumn(block: block.index, column, key: try text(key))
        } else {
            read = try reader.readColumn(block: block.index, column)
        }
        inflatedBytes += read.inflated
        cache.put(key, read.0)
        local[column] = read.0
        return read.0
    }

    func integers(_ name: PartColumn) throws(VigilError) -> [Int64] {
        guard case .integers(let values) = try column(name) else { preconditionFailure("\(name.name) is an integer column") }
        return values
    }

    func times() throws(VigilError) -> [Int64] { try integers(.occurredAt) }

    func seqs() throws(VigilError) -> [UInt64] { try integers(.seq).map { UInt64(bitPattern: $0) } }

    func text(_ name: PartColumn) throws(VigilError) -> TextColumn {
        guard case .text(let values) = try column(name) else { preconditionFailure("\(name.name) is a text column") }
        return values
    }

    func enums(_ name: PartColumn) throws(VigilError) -> [Int32] {
        guard case .enums(let values) = try column(name) else { preconditionFailure("\(name.name) is an enum column") }
        return values
    }

    func extras() throws(VigilError) -> StoredExtras {
        guard case .extras(let values) = try column(.extras) else { preconditionFailure("extras is a bytes column") }
        return values
    }

    func metadataReader() throws(VigilError) -> (Int) -> [String: String] {
        let extras = try extras()
        return { extras.partial(at: $0).metadata }
    }

    /// Mirrors `DecodedBlock.event(at:)` with every column decoded.
    func event(at row: Int) throws(VigilError) -> AuditEvent {
        var event = AuditEvent()
        let bits = UInt8(truncatingIfNeeded: try enums(.presence)[row])
        event.id = try text(.id).value(at: row)
        event.seq = UInt64(bitPattern: try integers(.seq)[row])
        if bits & PartPresence.occurredAt != 0 { event.occurredAt = .init(unixNanos: try integers(.occurredAt)[row]) }
        if bits & PartPresence.receivedAt != 0 { event.receivedAt = .init(unixNanos: try integers(.receivedAt)[row]) }
        event.tenant = try text(.tenant).value(at: row)
        if bits & PartPresence.actor != 0 {
            var actor = Vigil_V1_Actor()
            actor.id = try text(.actorID).value(at: row)
            let type = Int(try enums(.actorType)[row])
            actor.type = Vigil_V1_ActorType(rawValue: type) ?? .UNRECOGNIZED(type)
            actor.name = try text(.actorName).value(at: row)
            actor.email = try text(.actorEmail).value(at: row)
            event.actor = actor
        }
        event.action = try text(.action).value(at: row)
        let category = Int(try enums(.category)[row])
        event.category = Vigil_V1_Category(rawValue: category) ?? .UNRECOGNIZED(category)
        if bits & PartPresence.resource != 0 {
            var resource = Vigil_V1_Resource()
            resource.type = try text(.resourceType).value(at: row)
            resource.id = try text(.resourceID).value(at: row)
            resource.name = try text(.resourceName).value(at: row)
            event.resource = resource
        }
        let outcome = Int(try enums(.outcome)[row])
        event.outcome = Vigil_V1_Outcome(rawValue: outcome) ?? .UNRECOGNIZED(outcome)
        event.reason = try text(.reason).value(at: row)
        event.sourceIp = try text(.sourceIP).value(at: row)
        event.userAgent = try text(.userAgent).value(at: row)
        event.traceID = try text(.traceID).value(at: row)
        event.requestID = try text(.requestID).value(at: row)
        event.description_p = try text(.description).value(at: row)
        let partial = try extras().partial(at: row)
        if !partial.targets.isEmpty { event.targets = partial.targets }
        if !partial.changes.isEmpty { event.changes = partial.changes }
        if !partial.metadata.isEmpty { event.metadata = partial.metadata }
        return event
    }
}
