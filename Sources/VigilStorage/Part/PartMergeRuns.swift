import VigilCore

/// The rows of several parts in part order — tenant (UTF-8 bytes), then
/// occurred-at, then seq — read one decoded block per part at a time, so that
/// a merge holds a block of each input and the window it is writing, however
/// many rows the parts hold.
///
/// Rows come as runs: consecutive rows of one block that precede every other
/// part's next row. Parts of one day, flushed one after another, hold each
/// tenant's events of successive stretches of time, so runs are long and the
/// per-run work (a heap step, a block handed over) is spread over many rows.
/// Rows with equal keys (never two events: seqs are unique) come in part order.
///
/// A block is decoded only when its rows are needed one by one. Until then a
/// part's next rows are known by the block's ranges in the footer (a lower
/// bound of its first row's key); a block whose every possible key precedes
/// every other part's next row can come whole (`Step.block`), for the writer
/// to copy as it is stored: only its tenant, time, seq and presence columns
/// are decoded, to check its rows' keys as a decoded block's are. Parts flushed one after another hold
/// each tenant's later stretch of time, so most of their blocks come whole.
struct PartMergeRuns {
    struct Run {
        /// The input part's position in the readers given.
        var part: Int
        /// The block the rows are in, decoded with extras as bytes.
        var block: DecodedBlock
        var rows: Range<Int>
    }

    /// What comes next: rows of a decoded block, or a whole block (its key columns checked, the rest left as stored).
    enum Step {
        case rows(Run)
        /// Every row of block `index` of part `part`, all before every other
        /// part's next row and after every row that came before; its first
        /// and last rows' keys.
        case block(part: Int, index: Int, first: RowKey, last: RowKey)
    }

    /// A row's sort key with its tenant's name.
    typealias RowKey = (tenant: String, occurredAt: Int64, seq: UInt64)

    /// A sort key: tenant rank, occurred-at, seq.
    typealias Key = (Int32, Int64, UInt64)

    private struct Cursor {
        let reader: PartReader
        /// Per tenant of the part's list: its position in the merged list.
        let ranks: [Int32]
        var nextBlock = 0
        /// False once every block has come.
        var hasRows = false
        /// The current block while it is not decoded: its rows are known only
        /// by its ranges in the footer, and the arrays below are empty.
        var undecoded: Int?
        // The current block's sort keys, per row.
        var tenantRank: [Int32] = []
        var occurredAt: [Int64] = []
        var seq: [UInt64] = []
        var row = 0
        /// The last row's key of the block before (rows must not go back).
        var lastKey: (Int32, Int64, UInt64)?
    }

    private var cursors: [Cursor]
    /// Each cursor's current block (apart, so that reading a cursor's keys copies none of its arrays).
    private var blocks: [DecodedBlock?]
    /// Positions in `cursors` of the parts with rows left: a binary min-heap by next row.
    private var heap: [Int] = []

    /// A merge of `readers`' rows. Reads no block yet.
    init(_ readers: [PartReader]) {
        // Tenants by their bytes, as the part format orders them (String
        // equality would take canonically equivalent names for one).
        var all = Set<ExactString>()
        for reader in readers { all.formUnion(reader.metadata.tenants.map(ExactString.init)) }
        let merged = all.sorted { $0.value.utf8.lexicographicallyPrecedes($1.value.utf8) }
        let rankOf = Dictionary(uniqueKeysWithValues: merged.enumerated().map { ($1, Int32($0)) })
        cursors = readers.map { reader in
            Cursor(reader: reader, ranks: reader.metadata.tenants.map { rankOf[ExactString($0)]! })
        }
        blocks = Array(repeating: nil, count: readers.count)
        for index in cursors.indices {
            advance(index)
            if cursors[index].hasRows { push(index) }
        }
    }

    /// The next step: a whole block, when `takesWhole` accepts one that may
    /// come whole (given its part and footer entry), or else a run of at most
    /// `maxRows` rows (at least 1). nil when every part's rows have come.
    ///
    /// Throws what reading a block throws (DATA_LOSS for a damaged part), and
    /// DATA_LOSS when a block's tenant column disagrees with its part's tenant
    /// list or its footer entry, its rows go back, or they lie outside its
    /// footer ranges.
    mutating func next(maxRows: Int, takesWhole: (Int, BlockMetadata) -> Bool = { _, _ in false }) throws(VigilError) -> Step? {
        guard maxRows > 0 else { return nil }
        while let top = heap.first {
            // The earliest next row of the other parts: the smaller of the root's children.
            var rival: Int?
            if heap.count > 1 { rival = heap[1] }
            if heap.count > 2, precedes(heap[2], before: heap[1]) { rival = heap[2] }
            guard let number = cursors[top].undecoded else { return .rows(run(top, rival: rival, maxRows: maxRows)) }
            let block = cursors[top].reader.blocks[number]
            if rival.map({ upperBound(top, block) < headKey($0) }) ?? true, takesWhole(top, block) {
                // Its keys are checked as a decoded block's are (order, tenant
                // list, the ranges it was placed by): a damaged or edited part
                // must not pass into the merged one by being copied.
                let keys = try cursors[top].reader.readColumns(block: number, [.tenant, .occurredAt, .seq, .presence])
                let (_, occurredAt, seqs) = try checkedKeys(top, keys, number: number)
                let tenants = keys.tenant ?? []
                let last = keys.rowCount - 1
                advance(top)
                settle(top)
                return .block(
                    part: top, index: number, first: (tenants.first ?? "", occurredAt[0], seqs[0]),
                    last: (tenants.last ?? "", occurredAt[last], seqs[last]))
            }
            // Decoded, its first row's key is known, and may no longer be the smallest.
            try decode(top, block: number)
            siftDown(0)
        }
        return nil
    }

    /// Rows of the decoded block of cursor `top`, from its current row to
    /// the first that does not precede `rival`'s next row.
    private mutating func run(_ top: Int, rival: Int?, maxRows: Int) -> Run {
        let start = cursors[top].row
        let count = cursors[top].tenantRank.count
        var end = start + 1
        // The rival's next row stays where it is while this run lasts.
        let rivalKey = rival.map(headKey)
        while end < count, end - start < maxRows {
            if let rival, let rivalKey, !rowPrecedes(top, row: end, rival, rivalKey) { break }
            end += 1
        }
        let run = Run(part: top, block: blocks[top]!, rows: start..<end)
        cursors[top].row = end
        if end == count { advance(top) }
        settle(top)
        return run
    }

    /// Restores the heap after the root, cursor `top`, moved on.
    private mutating func settle(_ top: Int) {
        if !cursors[top].hasRows {
            let last = heap.removeLast()
            if !heap.isEmpty {
                heap[0] = last
                siftDown(0)
            }
        } else {
            siftDown(0)
        }
    }

    /// Moves cursor `index` to its next non-empty block, undecoded, or marks it exhausted.
    private mutating func advance(_ index: Int) {
        blocks[index] = nil
        cursors[index].hasRows = false
        cursors[index].undecoded = nil
        cursors[index].row = 0
        cursors[index].tenantRank = []
        cursors[index].occurredAt = []
        cursors[index].seq = []
        let reader = cursors[index].reader
        while cursors[index].nextBlock < reader.blocks.count {
            let number = cursors[index].nextBlock
            cursors[index].nextBlock += 1
            guard reader.blocks[number].rowCount > 0 else { continue }
            cursors[index].undecoded = number
            cursors[index].hasRows = true
            return
        }
    }

    /// Decodes block `number`, cursor `index`'s current one.
    private mutating func decode(_ index: Int, block number: Int) throws(VigilError) {
        let block = try cursors[index].reader.allColumns(block: number, extrasAsBytes: true)
        let (ranks, occurredAt, seqs) = try checkedKeys(index, block, number: number)
        cursors[index].tenantRank = ranks
        cursors[index].occurredAt = occurredAt
        cursors[index].seq = seqs
        cursors[index].undecoded = nil
        blocks[index] = block
    }

    /// The sort keys of block `number` of cursor `index`'s part (`block`
    /// holds at least its tenant, occurredAt, seq and presence columns),
    /// checked against the part's tenant list, the block's ranges and the
    /// rows before; the cursor's last key becomes the block's last row's.
    private mutating func checkedKeys(
        _ index: Int, _ block: DecodedBlock, number: Int
    ) throws(VigilError) -> (ranks: [Int32], occurredAt: [Int64], seqs: [UInt64]) {
        let reader = cursors[index].reader
        let metadata = reader.blocks[number]
        guard block.rowCount == metadata.rowCount, block.rowCount > 0 else {
            throw VigilError(.dataLoss, "block \(number) of part \(reader.path) decoded to \(block.rowCount) rows; its metadata says \(metadata.rowCount)")
        }
        var ranks = [Int32]()
        ranks.reserveCapacity(block.rowCount)
        var local = metadata.tenantIndexes.lowerBound
        let partTenants = reader.metadata.tenants
        for row in 0..<block.rowCount {
            let tenant = ExactString(block.tenant?[row] ?? "")
            while local < metadata.tenantIndexes.upperBound, ExactString(partTenants[local]) != tenant { local += 1 }
            guard local < metadata.tenantIndexes.upperBound else {
                throw VigilError(
                    .dataLoss,
                    "block \(number) of part \(reader.path) holds tenant '\(tenant.value.prefix(64))' at row \(row), out of its order or outside the tenants its metadata lists")
            }
            ranks.append(cursors[index].ranks[local])
        }
        let occurredAt = (0..<block.rowCount).map { block.occurredAtIfPresent($0) }
        let seqs = block.seq ?? [UInt64](repeating: 0, count: block.rowCount)
        // A part out of its own order (damaged, or edited by hand) would
        // come out of the merge out of order: stopped here, by name. So
        // would a block whose rows lie outside its footer's ranges, by which
        // the merge placed it before it was read.
        var previous = cursors[index].lastKey
        let times = metadata.minOccurredAt...metadata.maxOccurredAt
        let seqRange = metadata.minSeq...metadata.maxSeq
        for row in 0..<block.rowCount {
            let key = (ranks[row], occurredAt[row], seqs[row])
            if let previous, key < previous {
                throw VigilError(
                    .dataLoss,
                    "part \(reader.path) is out of its order at block \(number) row \(row) (tenant, occurred-at, seq go back); vigil verify reports what changed")
            }
            guard times.contains(key.1), seqRange.contains(key.2) else {
                throw VigilError(
                    .dataLoss,
                    "block \(number) of part \(reader.path) holds a row (\(row)) outside the time and seq ranges its metadata gives; vigil verify reports what changed")
            }
            previous = key
        }
        // The footer's tenants for the block are exactly its rows' (every
        // writer records them so): a merge that copies the block copies that
        // list, and placed the block by it.
        guard ranks.first == cursors[index].ranks[metadata.tenantIndexes.lowerBound],
            ranks.last == cursors[index].ranks[metadata.tenantIndexes.upperBound - 1]
        else {
            throw VigilError(
                .dataLoss,
                "block \(number) of part \(reader.path) lists tenants its rows do not begin and end with; vigil verify reports what changed")
        }
        cursors[index].lastKey = previous
        return (ranks, occurredAt, seqs)
    }

    /// The key of cursor `index`'s next row; for a block not decoded, a key
    /// no row of it precedes (its first tenant, least time and least seq).
    @inline(__always)
    private func headKey(_ index: Int) -> Key {
        if let number = cursors[index].undecoded {
            let block = cursors[index].reader.blocks[number]
            return (cursors[index].ranks[block.tenantIndexes.lowerBound], block.minOccurredAt, block.minSeq)
        }
        let row = cursors[index].row
        return (cursors[index].tenantRank[row], cursors[index].occurredAt[row], cursors[index].seq[row])
    }

    /// A key that no row of `block` (of cursor `index`'s part) follows: its
    /// last tenant, greatest time and greatest seq.
    private func upperBound(_ index: Int, _ block: BlockMetadata) -> Key {
        (cursors[index].ranks[block.tenantIndexes.upperBound - 1], block.maxOccurredAt, block.maxSeq)
    }

    /// Whether row `row` of cursor `a` (decoded) comes before cursor `b`'s
    /// next row, whose key (`headKey(b)`) is `kb`.
    @inline(__always)
    private func rowPrecedes(_ a: Int, row: Int, _ b: Int, _ kb: Key) -> Bool {
        let ka = (cursors[a].tenantRank[row], cursors[a].occurredAt[row], cursors[a].seq[row])
        return ka < kb || (ka == kb && a < b)
    }

    @inline(__always)
    private func precedes(_ a: Int, before b: Int) -> Bool {
        let ka = headKey(a)
        let kb = headKey(b)
        return ka < kb || (ka == kb && a < b)
    }

    private mutating func push(_ index: Int) {
        heap.append(index)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard precedes(heap[child], before: heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        while true {
            var smallest = parent
            for child in (2 * parent + 1)...(2 * parent + 2) where child < heap.count {
                if precedes(heap[child], before: heap[smallest]) { smallest = child }
            }
            guard smallest != parent else { return }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
