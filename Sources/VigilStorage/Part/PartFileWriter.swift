#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import VigilCore

/// Writes one part file from rows that come a window at a time, each window
/// sorted within itself and after every row of the windows before: a merge
/// reads its input parts block by block and writes what it has merged so
/// far, so that it holds a window of rows, not all of them.
///
/// The file is built as `path + ".tmp"` and becomes `path` in `finish()`
/// (fsync, rename, fsync of the directory). A writer that is not finished
/// removes its temporary file when it goes away, whatever stopped it.
///
/// Windows of whole tasks (`rowsPerBlock × blocksPerTask` rows) give the
/// bytes `PartWriter.write` gives for all the rows at once: every window
/// starts a block, and the other text encodings are tried in the first block
/// of each task either way.
final class PartFileWriter {
    private let path: String
    private let options: PartWriter.Options
    private var file: FileHandleDescriptor?
    private var sink: ChunkSink
    /// The part's tenants so far, in byte order: each window's, joined.
    private var tenants: [String] = []
    private var blocks: [BlockMetadata] = []
    private var rowCount = 0
    /// Whether the part has a leaf column; set by the first window with rows.
    private var hasLeaves: Bool?
    /// The sort key of the last row written, which the next window's first must not precede.
    private var lastKey: (tenant: String, occurredAt: Int64, seq: UInt64)?

    /// Opens `path + ".tmp"` and writes the header.
    ///
    /// Throws INVALID_ARGUMENT for options out of range; UNAVAILABLE or
    /// RESOURCE_EXHAUSTED when the disk fails.
    init(path: String, options: PartWriter.Options) throws(VigilError) {
        guard (1...ColumnEncoding.maxRows).contains(options.rowsPerBlock) else {
            throw VigilError(.invalidArgument, "rowsPerBlock is \(options.rowsPerBlock); it must be 1...\(ColumnEncoding.maxRows)")
        }
        guard (-1...9).contains(options.compressionLevel) else {
            throw VigilError(.invalidArgument, "compressionLevel is \(options.compressionLevel); it must be -1...9")
        }
        guard options.maxBlockBytes > 0 else {
            throw VigilError(.invalidArgument, "maxBlockBytes must be positive")
        }
        self.path = path
        self.options = options
        let deflater = options.compressionLevel == 0 ? nil : try ZlibDeflater()
        let file = try FileHandleDescriptor.open(path + ".tmp", flags: O_WRONLY | O_CREAT | O_TRUNC)
        self.file = file
        sink = ChunkSink(output: PartOutput(file: file), level: options.compressionLevel, deflater: deflater)
        do throws(VigilError) {
            try sink.output.write(PartFormat.header())
        } catch {
            discard()
            throw error
        }
    }

    deinit {
        discard()
    }

    /// Rows a window should hold for the part's bytes not to depend on how
    /// its rows were cut into windows (see the type's documentation).
    static func windowRows(_ options: PartWriter.Options) -> Int {
        let (rows, overflow) = options.rowsPerBlock.multipliedReportingOverflow(by: max(1, options.blocksPerTask))
        return overflow ? Int.max : rows
    }

    /// Appends `rows` (sorted here by (tenant, occurredAt, seq) if they are
    /// not) as whole blocks. `leaves`, when given, holds each row's
    /// truncated leaf hash in `rows`' order; every window of a part gives
    /// them or none does. `parallel`: the window's tasks are encoded on
    /// every core (`PartWriter.Options.parallelTasks`; the same bytes).
    ///
    /// Throws INVALID_ARGUMENT for a row the format cannot hold or leaves
    /// that do not match the rows; INTERNAL for rows that sort before rows
    /// already written; UNAVAILABLE or RESOURCE_EXHAUSTED when the disk
    /// fails. After an error the writer takes nothing more.
    func append<Rows: PartRowSource>(_ rows: Rows, leaves: [UInt32]?, parallel: Bool = false) throws(VigilError) {
        guard file != nil else { throw VigilError(.internal, "the part \(path) is finished or abandoned") }
        do throws(VigilError) {
            try appendWindow(rows, leaves: leaves, parallel: parallel)
        } catch {
            discard()
            throw error
        }
    }

    private func appendWindow<Rows: PartRowSource>(_ rows: Rows, leaves: [UInt32]?, parallel: Bool) throws(VigilError) {
        let count = rows.rowCount
        if let leaves, leaves.count != count {
            throw VigilError(.invalidArgument, "\(leaves.count) leaves for \(count) events")
        }
        guard count > 0 else { return }
        if let hasLeaves, hasLeaves != (leaves != nil) {
            throw VigilError(.internal, "a window of the part \(path) \(hasLeaves ? "lacks" : "has") the leaves the windows before \(hasLeaves ? "had" : "lacked")")
        }
        hasLeaves = leaves != nil
        let plan = try SortPlan(rows)
        let first = (tenant: plan.tenants[Int(plan.tenantRank[0])], occurredAt: plan.occurredAt[0], seq: plan.seq[0])
        if let lastKey, Self.precedes(first, lastKey) {
            throw VigilError(
                .internal,
                "rows given to the part \(path) out of order: (\(first.tenant), \(first.occurredAt), \(first.seq)) after (\(lastKey.tenant), \(lastKey.occurredAt), \(lastKey.seq))")
        }
        var options = options
        options.parallelTasks = options.parallelTasks || parallel
        let footer = try PartWriter.encodeBlocks(rows, leaves: leaves, plan: plan, options: options, sink: &sink)
        // The window's tenant list joins the part's; the tenant both hold (the
        // last written and the first here) is listed once.
        let shared = tenants.last.map(ExactString.init) == plan.tenants.first.map(ExactString.init) ? 1 : 0
        let tenantBase = tenants.count - shared
        tenants += plan.tenants.dropFirst(shared)
        for block in footer.blocks {
            blocks.append(block.moved(toIndex: blocks.count, offsetBy: 0, tenantsFrom: tenantBase))
        }
        rowCount += count
        let last = count - 1
        lastKey = (plan.tenants[Int(plan.tenantRank[last])], plan.occurredAt[last], plan.seq[last])
    }

    /// Appends a block of another part as it is stored: `bytes`, the chunks
    /// `PartReader.storedBytes(block:)` read, and `block`'s footer entry,
    /// statistics included, moved to this part's offset and tenant list. A
    /// merge takes a block this way when its rows come whole and in order
    /// between the rows around them: it writes the same rows, and saves the
    /// inflating, decoding, encoding and deflating that are nearly all of a
    /// merge's work. The block keeps the compression it was written with
    /// (a flush's level 4, not a merge's 6: `vigil-bench merge` gives 0.7%
    /// more bytes per event).
    ///
    /// `first` and `last` are the keys of its first and last rows (the
    /// caller read them, `PartMergeRuns`): their tenants must be the first
    /// and last the block lists, and the first must not precede the last row
    /// written. Throws INTERNAL for a block out of order or whose
    /// leaf column disagrees with the part's; UNAVAILABLE or
    /// RESOURCE_EXHAUSTED when the disk fails. After an error the writer
    /// takes nothing more.
    func appendStored(
        _ block: BlockMetadata, bytes: [UInt8],
        first: (tenant: String, occurredAt: Int64, seq: UInt64), last: (tenant: String, occurredAt: Int64, seq: UInt64)
    ) throws(VigilError) {
        guard file != nil else { throw VigilError(.internal, "the part \(path) is finished or abandoned") }
        do throws(VigilError) {
            guard let span = block.storedSpan, span.count == bytes.count, let firstTenant = block.tenants.first,
                ExactString(firstTenant) == ExactString(first.tenant), ExactString(block.tenants.last ?? "") == ExactString(last.tenant)
            else {
                throw VigilError(
                    .internal,
                    "block \(block.index) given to the part \(path) is not a stored block with its bytes, or its first and last keys are not of the tenants it lists")
            }
            let leaves = block.columns[.leaf] != nil
            if let hasLeaves, hasLeaves != leaves {
                throw VigilError(.internal, "a copied block of the part \(path) \(hasLeaves ? "lacks" : "has") the leaves the blocks before \(hasLeaves ? "had" : "lacked")")
            }
            hasLeaves = leaves
            if let lastKey, Self.precedes(first, lastKey) {
                throw VigilError(
                    .internal,
                    "a copied block given to the part \(path) out of order: (\(first.tenant), \(first.occurredAt), \(first.seq)) after (\(lastKey.tenant), \(lastKey.occurredAt), \(lastKey.seq))")
            }
            let shared = tenants.last.map(ExactString.init) == ExactString(firstTenant) ? 1 : 0
            let tenantBase = tenants.count - shared - block.tenantIndexes.lowerBound
            tenants += block.tenants.dropFirst(shared)
            let offset = sink.output.offset
            try sink.output.write(bytes)
            blocks.append(block.moved(toIndex: blocks.count, offsetBy: offset - span.lowerBound, tenantsFrom: tenantBase))
            rowCount += block.rowCount
            lastKey = last
        } catch {
            discard()
            throw error
        }
    }

    /// Whether key `a` sorts before key `b`: tenants by UTF-8 bytes, then time, then seq.
    private static func precedes(
        _ a: (tenant: String, occurredAt: Int64, seq: UInt64), _ b: (tenant: String, occurredAt: Int64, seq: UInt64)
    ) -> Bool {
        if ExactString(a.tenant) != ExactString(b.tenant) { return a.tenant.utf8.lexicographicallyPrecedes(b.tenant.utf8) }
        return (a.occurredAt, a.seq) < (b.occurredAt, b.seq)
    }

    /// Writes the footer and trailer and makes the part durable at `path`;
    /// returns its metadata. Throws INVALID_ARGUMENT for a footer over the
    /// format's limit (too many blocks); UNAVAILABLE or RESOURCE_EXHAUSTED
    /// when the disk fails. On any error no file is left at `path` or
    /// `path + ".tmp"`.
    func finish() throws(VigilError) -> PartMetadata {
        guard let file else { throw VigilError(.internal, "the part \(path) is finished or abandoned") }
        let temporary = path + ".tmp"
        let metadata: PartMetadata
        do throws(VigilError) {
            let footer = PartFooter(
                rowCount: rowCount,
                minOccurredAt: blocks.lazy.map(\.minOccurredAt).min() ?? 0,
                maxOccurredAt: blocks.lazy.map(\.maxOccurredAt).max() ?? 0,
                minSeq: blocks.lazy.map(\.minSeq).min() ?? 0,
                maxSeq: blocks.lazy.map(\.maxSeq).max() ?? 0,
                createdAt: options.createdAt ?? currentUnixNanos(), level: options.level, generation: options.generation,
                rowsPerBlock: options.rowsPerBlock, tenants: tenants, blocks: blocks)
            let footerBytes = footer.encode()
            guard footerBytes.count <= PartFormat.maxFooterBytes else {
                throw VigilError(.invalidArgument, "a part of \(rowCount) events needs a footer of \(footerBytes.count) bytes, over the limit of \(PartFormat.maxFooterBytes); write fewer events per part")
            }
            let footerOffset = sink.output.offset
            try sink.output.write(footerBytes)
            try sink.output.write(PartFormat.trailer(
                footerOffset: footerOffset, footerLength: footerBytes.count,
                footerChecksum: CRC32C.checksum(footerBytes)))
            try sink.output.flush()
            try file.sync()
            metadata = PartMetadata(
                formatVersion: Int(PartFormat.version), rowCount: footer.rowCount,
                minOccurredAt: footer.minOccurredAt, maxOccurredAt: footer.maxOccurredAt,
                minSeq: footer.minSeq, maxSeq: footer.maxSeq, tenants: footer.tenants,
                createdAt: footer.createdAt, level: footer.level, generation: footer.generation,
                rowsPerBlock: footer.rowsPerBlock, blockCount: footer.blocks.count,
                fileBytes: sink.output.offset, footerBytes: footerBytes.count)
            file.close()
            self.file = nil
            try FileIO.rename(temporary, to: path)
        } catch {
            discard()
            try? FileIO.remove(temporary)
            throw error
        }
        try FileIO.syncDirectory(FileIO.directoryName(of: path))
        return metadata
    }

    /// Stops: the temporary file is closed and removed (nothing if finished).
    func discard() {
        guard let file else { return }
        file.close()
        self.file = nil
        try? FileIO.remove(path + ".tmp")
    }
}
