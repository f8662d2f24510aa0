import VigilCore
import VigilProto

/// What `vigil inspect` prints: a data directory's parts, blocks, row counts,
/// time ranges and sizes, and the compression of each column. Reads the files
/// directly, verifying their checksums.
public struct StorageInspection: Sendable {
    public struct Part: Sendable {
        public var path: String
        public var metadata: PartMetadata
        public var blocks: [BlockMetadata]
        public var columns: [(column: PartColumn, compressed: Int, raw: Int)]
    }

    public var directory: String
    public var manifest: Vigil_V1_Manifest
    public var parts: [Part]
    public var walSegments: [(name: String, bytes: Int)]

    public init(directory: String) throws(VigilError) {
        self.directory = directory
        let manifestPath = directory + "/MANIFEST"
        guard FileIO.exists(manifestPath) || FileIO.exists(directory + "/wal") else {
            throw VigilError(.notFound, "\(directory) is not a Vigil data directory (no MANIFEST or wal/)")
        }
        manifest = FileIO.exists(manifestPath)
            ? try ChecksummedFile.read(Vigil_V1_Manifest.self, magic: ColumnarEventStore.manifestMagic, from: manifestPath)
            : Vigil_V1_Manifest()
        var parts: [Part] = []
        for entry in manifest.parts {
            let reader = try PartReader(path: directory + "/" + entry.path)
            let sizes = reader.columnSizes()
            parts.append(Part(
                path: entry.path, metadata: reader.metadata, blocks: reader.blocks,
                columns: PartColumn.allCases.compactMap { column in
                    sizes[column].map { (column, $0.compressed, $0.raw) }
                }))
        }
        self.parts = parts
        var segments: [(String, Int)] = []
        for name in try FileIO.list(directory + "/wal") where name.hasSuffix(".wal") {
            let file = try FileHandleDescriptor.open(directory + "/wal/" + name, flags: O_RDONLY)
            segments.append((name, try file.size()))
            file.close()
        }
        walSegments = segments
    }

    public func render(blocks showBlocks: Bool) -> String {
        var lines: [String] = []
        let rows = parts.reduce(0) { $0 + $1.metadata.rowCount }
        let bytes = parts.reduce(0) { $0 + $1.metadata.fileBytes }
        lines.append("\(directory): \(parts.count) parts, \(rows) events, \(formatBytes(bytes)) on disk"
            + (rows > 0 ? ", " + format1(Double(bytes) / Double(rows)) + " bytes/event" : "")
            + "; flushed through seq \(manifest.flushedThroughSeq)")
        let walBytes = walSegments.reduce(0) { $0 + $1.bytes }
        lines.append("WAL: \(walSegments.count) segments, \(formatBytes(walBytes)) (events not yet in parts are replayed from here on start)")
        lines.append("")
        lines.append(pad(["PART", "LEVEL", "EVENTS", "BLOCKS", "BYTES", "FIRST", "LAST", "SEQS"]))
        for part in parts {
            let m = part.metadata
            lines.append(pad([
                part.path, String(m.level), String(m.rowCount), String(part.blocks.count), formatBytes(m.fileBytes),
                formatTime(m.minOccurredAt), formatTime(m.maxOccurredAt), "\(m.minSeq)-\(m.maxSeq)",
            ]))
            if showBlocks {
                for (index, block) in part.blocks.enumerated() {
                    lines.append(pad([
                        "  block \(index)", "", String(block.rowCount), "", "", formatTime(block.minOccurredAt),
                        formatTime(block.maxOccurredAt), "\(block.minSeq)-\(block.maxSeq)",
                    ]))
                }
            }
        }
        var totals: [PartColumn: (compressed: Int, raw: Int)] = [:]
        for part in parts {
            for entry in part.columns {
                totals[entry.column, default: (0, 0)].compressed += entry.compressed
                totals[entry.column, default: (0, 0)].raw += entry.raw
            }
        }
        if !totals.isEmpty {
            lines.append("")
            lines.append(pad(["COLUMN", "COMPRESSED", "ENCODED", "RATIO", "BYTES/EVENT"]))
            for column in PartColumn.allCases {
                guard let total = totals[column] else { continue }
                lines.append(pad([
                    "\(column)", formatBytes(total.compressed), formatBytes(total.raw),
                    total.compressed > 0 ? format1(Double(total.raw) / Double(total.compressed)) + "x" : "-",
                    rows > 0 ? format1(Double(total.compressed) / Double(rows)) : "-",
                ]))
            }
        }
        return lines.joined(separator: "\n")
    }

    private func pad(_ cells: [String]) -> String {
        let widths = [42, 7, 10, 8, 11, 23, 23, 20]
        return cells.enumerated().map { index, cell in
            index == cells.count - 1 ? cell : cell + String(repeating: " ", count: max(1, widths[min(index, widths.count - 1)] - cell.count))
        }.joined()
    }
}

func formatBytes(_ bytes: Int) -> String {
    if bytes < 1024 { return "\(bytes) B" }
    if bytes < 1_048_576 { return format1(Double(bytes) / 1024) + " KiB" }
    if bytes < 1_073_741_824 { return format1(Double(bytes) / 1_048_576) + " MiB" }
    return format1(Double(bytes) / 1_073_741_824) + " GiB"
}

func format1(_ value: Double) -> String {
    let tenths = Int((value * 10).rounded())
    return "\(tenths / 10).\(abs(tenths % 10))"
}

func formatTime(_ nanos: Int64) -> String {
    let json = (try? Google_Protobuf_Timestamp(unixNanos: nanos).jsonString()) ?? "\"?\""
    return String(json.dropFirst().dropLast())
}

#if canImport(Glibc)
import Glibc
#endif
import SwiftProtobuf
