import ArgumentParser
import Foundation
import VigilBenchKit
import VigilCore
import VigilProto
import VigilStorage

/// What tamper evidence costs per event, in this process: the work a flush
/// adds for each event it writes (canonical bytes, leaf hash, chain step).
struct ChainWorkload: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chain",
        abstract: "CPU per event of the hash chain: canonical bytes, leaf hash, chain step.",
        discussion: """
            Generates --events events, turns them into the form the store returns (seq, \
            received_at and id set, via the memory segment's columns, as a flush does), and \
            times what a flush adds for each: the canonical (deterministic protobuf) bytes, \
            SHA-256 of them (the leaf), and the chain step. No server; the best of \
            --repetitions runs is reported.
            """
    )

    @OptionGroup var common: CommonOptions

    @Option(name: .long, help: "Events to hash.")
    var events = 200_000

    @Option(name: .long, help: "Runs; the fastest is reported.")
    var repetitions = 3

    func run() async throws {
        let started = Date()
        var generator = EventGenerator(seed: common.seed, count: events, end: currentUnixNanos())
        var stored: [AuditEvent] = []
        stored.reserveCapacity(events)
        var seq: UInt64 = 1
        while generator.remaining > 0 {
            let batch = generator.nextBatch(1_000)
            let chunk = MemoryChunk(columns: .init(batch), firstSeq: seq, receivedAt: currentUnixNanos(), idempotencyKey: "")
            for row in 0..<chunk.count { stored.append(chunk.event(at: row)) }
            seq += UInt64(chunk.count)
        }
        var best = (canonical: Double.infinity, leaf: Double.infinity, pair: Double.infinity, step: Double.infinity)
        var bytes = 0
        var head = ChainDigest.zero
        for _ in 0..<max(1, repetitions) {
            let clock = ContinuousClock()
            var canonical: [[UInt8]] = []
            canonical.reserveCapacity(stored.count)
            let t0 = clock.now
            for event in stored { canonical.append(CanonicalEvent.bytes(of: event)) }
            let t1 = clock.now
            var leaves: [ChainDigest] = []
            leaves.reserveCapacity(stored.count)
            for bytes in canonical { leaves.append(HashChain.leaf(canonical: bytes)) }
            let t2 = clock.now
            // Two at a time, as a flush hashes a chunk's rows.
            var paired: [ChainDigest] = []
            paired.reserveCapacity(stored.count)
            var index = 0
            while index + 1 < canonical.count {
                let pair = canonical[index].withUnsafeBytes { a in canonical[index + 1].withUnsafeBytes { b in HashChain.leaves(canonical: a, b) } }
                paired.append(pair.0)
                paired.append(pair.1)
                index += 2
            }
            if index < canonical.count { paired.append(HashChain.leaf(canonical: canonical[index])) }
            let t2b = clock.now
            guard paired == leaves else { throw BenchError("leaves hashed in pairs differ from leaves hashed one at a time") }
            let t2c = clock.now
            head = HashChain.extend(.zero, with: leaves)
            let t3 = clock.now
            bytes = canonical.reduce(0) { $0 + $1.count }
            func micros(_ duration: Duration) -> Double {
                Double(duration.components.seconds) * 1e6 / Double(stored.count) + Double(duration.components.attoseconds) / 1e12 / Double(stored.count)
            }
            best = (
                min(best.canonical, micros(t1 - t0)), min(best.leaf, micros(t2 - t1)), min(best.pair, micros(t2b - t2)),
                min(best.step, micros(t3 - t2c))
            )
        }
        func fixed(_ value: Double) -> String { String(format: "%.3f", value) }
        var table = TextTable(title: "Hash chain, \(stored.count) events (best of \(repetitions))", header: ["what", "µs/event"])
        table.rows.append(["canonical bytes (deterministic protobuf, \(bytes / max(1, stored.count)) B/event)", fixed(best.canonical)])
        table.rows.append(["leaf: SHA-256(0x00 || canonical)", fixed(best.leaf)])
        table.rows.append(["the same, two leaves side by side (as a flush hashes)", fixed(best.pair)])
        table.rows.append(["chain step: SHA-256(0x01 || head || leaf)", fixed(best.step)])
        table.rows.append(["total added per flushed event", fixed(best.canonical + best.pair + best.step)])
        var result = WorkloadResult(workload: "chain")
        result.parameters = ["events": .int(events), "repetitions": .int(repetitions), "seed": .int(Int(common.seed))]
        result.results = [
            "canonicalMicros": .double(best.canonical), "leafMicros": .double(best.leaf), "leafPairMicros": .double(best.pair),
            "stepMicros": .double(best.step), "totalMicros": .double(best.canonical + best.pair + best.step), "canonicalBytesPerEvent": .int(bytes / max(1, stored.count)),
            "head": .string(head.hex),
        ]
        result.tables = [table]
        try Report.emit(result, jsonPath: common.json, startedAt: started)
    }
}
