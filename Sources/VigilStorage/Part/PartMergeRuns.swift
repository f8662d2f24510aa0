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
struct PartMergeRuns {
    struct Run {
        /// The input part's position in the readers given.
        var part: Int
        /// The block the rows are in, decoded with extras as bytes.
        var block: DecodedBlock
        var rows: Range<Int>
    }

    private struct Cursor {
        let reader: PartReader
        /// Per tenant of the part's list: its position in the merged list.
        let ranks: [Int32]
        var nextBlock = 0
        /// False once every block has come.
        var hasRows = false
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

    /// A merge of `readers`' rows; reads the first block of each.
    ///
    /// Throws what reading a block throws (DATA_LOSS for a damaged part), and
    /// DATA_LOSS when a block's tenant column disagrees with its part's tenant list.
    init(_ readers: [PartReader]) throws(VigilError) {
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
            try load(index)
            if cursors[index].hasRows { push(index) }
        }
    }

    /// The next run, of at most `maxRows` rows (at least 1); nil when every
    /// part's rows have come.
    mutating func next(maxRows: Int) throws(VigilError) -> Run? {
        guard let top = heap.first, maxRows > 0 else { return nil }
        // The earliest next row of the other parts: the smaller of the root's children.
        var rival: Int?
        if heap.count > 1 { rival = heap[1] }
        if heap.count > 2, precedes(heap[2], before: heap[1]) { rival = heap[2] }
        let start = cursors[top].row
        let count = cursors[top].tenantRank.count
        var end = start + 1
        while end < count, end - start < maxRows {
            if let rival, !rowPrecedes(top, row: end, rival) { break }
            end += 1
        }
        let run = Run(part: top, block: blocks[top]!, rows: start..<end)
        cursors[top].row = end
        if end == count { try load(top) }
        if !cursors[top].hasRows {
            let last = heap.removeLast()
            if !heap.isEmpty {
                heap[0] = last
                siftDown(0)
            }
        } else {
            siftDown(0)
        }
        return run
    }

    /// Reads cursor `index`'s next non-empty block, or marks it exhausted.
    private mutating func load(_ index: Int) throws(VigilError) {
        blocks[index] = nil
        cursors[index].hasRows = false
        cursors[index].row = 0
        let reader = cursors[index].reader
        while cursors[index].nextBlock < reader.blocks.count {
            let number = cursors[index].nextBlock
            cursors[index].nextBlock += 1
            let block = try reader.allColumns(block: number, extrasAsBytes: true)
            guard block.rowCount > 0 else { continue }
            let metadata = reader.blocks[number]
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
            let times = (0..<block.rowCount).map { block.occurredAtIfPresent($0) }
            let seqs = block.seq ?? [UInt64](repeating: 0, count: block.rowCount)
            // A part out of its own order (damaged, or edited by hand) would
            // come out of the merge out of order: stopped here, by name.
            var previous = cursors[index].lastKey
            for row in 0..<block.rowCount {
                let key = (ranks[row], times[row], seqs[row])
                if let previous, key < previous {
                    throw VigilError(
                        .dataLoss,
                        "part \(reader.path) is out of its order at block \(number) row \(row) (tenant, occurred-at, seq go back); vigil verify reports what changed")
                }
                previous = key
            }
            cursors[index].lastKey = previous
            cursors[index].tenantRank = ranks
            cursors[index].occurredAt = times
            cursors[index].seq = seqs
            cursors[index].hasRows = true
            blocks[index] = block
            return
        }
    }

    /// Whether row `row` of cursor `a` comes before cursor `b`'s next row.
    @inline(__always)
    private func rowPrecedes(_ a: Int, row: Int, _ b: Int) -> Bool {
        let other = cursors[b].row
        let ka = (cursors[a].tenantRank[row], cursors[a].occurredAt[row], cursors[a].seq[row])
        let kb = (cursors[b].tenantRank[other], cursors[b].occurredAt[other], cursors[b].seq[other])
        return ka < kb || (ka == kb && a < b)
    }

    @inline(__always)
    private func precedes(_ a: Int, before b: Int) -> Bool {
        rowPrecedes(a, row: cursors[a].row, b)
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
