import Testing
import VigilCore
import VigilProto
@testable import VigilStorage

@Suite("Part size")
struct PartSizeTests {
    /// Writes the realistic data set, prints bytes per event (whole file and
    /// per column), and checks the target of about 60 bytes per event.
    @Test("realistic events take about 60 bytes each or less")
    func realisticBytesPerEvent() throws {
        let count = 100_000
        let events = PartEvents.realistic(count: count)
        try PartTestSupport.withDirectory { directory in
            let path = directory + "/realistic.vprt"
            let metadata = try PartWriter.write(events, to: path)
            let reader = try PartReader(path: path)
            defer { reader.close() }
            let perEvent = Double(metadata.fileBytes) / Double(count)
            var report = "realistic data set: \(count) events, \(metadata.blockCount) blocks, \(metadata.fileBytes) bytes, "
            report += "\(format(perEvent)) bytes/event (footer \(format(Double(metadata.footerBytes) / Double(count))))\n"
            let sizes = reader.columnSizes()
            for column in PartColumn.required {
                let size = sizes[column]!
                report += "  \(column.name + String(repeating: " ", count: max(0, 13 - column.name.count))) "
                report += "\(format(Double(size.compressed) / Double(count))) bytes/event stored, "
                report += "\(format(Double(size.raw) / Double(count))) raw\n"
            }
            var statistics: [String: Int] = [:]
            for block in reader.blocks {
                for (column, statistic) in block.statistics {
                    switch statistic {
                    case .bloom(let filter): statistics["bloom \(column.name)", default: 0] += filter.bitCount / 8
                    case .values(let values): statistics["values \(column.name)", default: 0] += values.reduce(0) { $0 + $1.utf8.count + 2 }
                    case .enumValues(let values): statistics["values \(column.name)", default: 0] += values.count * 4
                    case .valueCounts(let values, _): statistics["counts \(column.name)", default: 0] += values.reduce(0) { $0 + $1.utf8.count + 6 }
                    case .enumCounts(let values, _): statistics["counts \(column.name)", default: 0] += values.count * 8
                    }
                }
            }
            for (name, bytes) in statistics.sorted(by: { $0.key < $1.key }) {
                report += "  footer \(name): \(format(Double(bytes) / Double(count))) bytes/event\n"
            }
            print(report)
            #expect(perEvent <= 62)
            #expect(try PartTestSupport.readAll(path) == PartTestSupport.sortedLikePart(events))
        }
    }

    /// What tamper evidence adds to a part: the truncated leaf hashes, 4
    /// random bytes per event stored as they are, and one chunk entry per block.
    @Test("the leaf column costs 4 bytes per event, and nothing else changes")
    func leafColumnCost() throws {
        let count = 20_000
        let events = PartEvents.realistic(count: count)
        let leaves = events.map { HashChain.leaf(of: $0).truncated }
        try PartTestSupport.withDirectory { directory in
            let without = try PartWriter.write(events, to: directory + "/without.vprt")
            let with = try PartWriter.write(events, leaves: leaves, to: directory + "/with.vprt")
            let reader = try PartReader(path: directory + "/with.vprt")
            defer { reader.close() }
            let leafBytes = reader.columnSizes()[.leaf]!
            #expect(leafBytes.compressed >= count * 4 && leafBytes.compressed <= count * 4 + reader.blocks.count * 4, "4 bytes per row plus each chunk's 2-4 byte header")
            let added = Double(with.fileBytes - without.fileBytes) / Double(count)
            print("the leaf column adds \(format(added)) bytes/event (\(with.fileBytes - without.fileBytes) bytes for \(count) events)")
            #expect(added < 4.05)
            // Every stored leaf is the event's, row by row.
            var stored: [UInt64: UInt32] = [:]
            for block in reader.blocks.indices {
                let decoded = try reader.allColumns(block: block)
                for row in 0..<decoded.rowCount { stored[decoded.seq![row]] = decoded.leaf![row] }
            }
            #expect(events.allSatisfy { stored[$0.seq] == HashChain.leaf(of: $0).truncated })
        }
    }

    private func format(_ value: Double) -> String {
        let hundredths = Int((value * 100).rounded())
        let fraction = hundredths % 100
        return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }
}
