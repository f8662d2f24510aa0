import ArgumentParser
import Foundation
import SwiftProtobuf
import VigilBenchKit
import VigilCore

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Write generated events: JSON lines (for `vigil ingest`) or encoded Ingest batches.",
        discussion: """
            The same --seed, --events and --end give the same output, byte for byte.
              vigil-bench generate --events 100000 --end 2026-11-20T00:00:00Z \\
                  > events.jsonl
              vigil ingest events.jsonl
            --format batches writes IngestRequest messages of --batch-size events in protobuf's \
            length-delimited form (a varint length, then the message), as SwiftProtobuf's \
            BinaryDelimited reads them.
            """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case jsonl, batches
    }

    @Option(name: .long, help: "Events to write.")
    var events = 100_000

    @Option(name: .long, help: "Seed of the generator.")
    var seed: UInt64 = 42

    @Option(name: .long, help: ArgumentHelp("The latest event time, RFC 3339 (default: now); events span the 30 days before it.", valueName: "time"))
    var end: String?

    @Option(name: .long, help: "jsonl (one event per line) or batches (length-delimited IngestRequests).")
    var format: Format = .jsonl

    @Option(name: .long, help: "Events per batch with --format batches.")
    var batchSize = 1_000

    @Option(name: [.short, .long], help: ArgumentHelp("Output file, or - for standard output.", valueName: "path"))
    var output = "-"

    func validate() throws {
        guard events >= 0 else { throw ValidationError("--events must not be negative") }
        guard (1...10_000).contains(batchSize) else { throw ValidationError("--batch-size must be 1 to 10000") }
    }

    func run() throws {
        var endNanos = nowRoundedToSeconds()
        if let end {
            guard let time = try? Google_Protobuf_Timestamp(jsonString: "\"\(end)\"") else {
                throw ValidationError("--end '\(end)' is not an RFC 3339 time such as 2026-11-20T00:00:00Z")
            }
            endNanos = time.unixNanos
        }
        let handle: FileHandle
        if output == "-" {
            handle = FileHandle.standardOutput
        } else {
            guard FileManager.default.createFile(atPath: output, contents: nil) else {
                throw ValidationError("cannot create \(output)")
            }
            handle = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        }
        defer { if output != "-" { try? handle.close() } }
        var generator = EventGenerator(seed: seed, count: events, end: endNanos)
        while generator.remaining > 0 {
            let batch = generator.nextBatch(format == .jsonl ? 2_000 : batchSize)
            var bytes: [UInt8] = []
            switch format {
            case .jsonl:
                for event in batch {
                    bytes += try EventGenerator.jsonLine(event).utf8
                    bytes.append(UInt8(ascii: "\n"))
                }
            case .batches:
                let encoded = try EventGenerator.encodeBatch(batch)
                var length = UInt64(encoded.count)
                while length >= 0x80 {
                    bytes.append(UInt8(length & 0x7F) | 0x80)
                    length >>= 7
                }
                bytes.append(UInt8(length))
                bytes += encoded
            }
            try handle.write(contentsOf: Data(bytes))
        }
    }
}
