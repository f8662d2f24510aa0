#if canImport(Glibc)
import Glibc
#endif
import VigilCore
import VigilProto

/// Events that are not in parts yet (WAL records, or the memory segment of a
/// running server), with their leaf hashes, in seq order.
struct UnflushedBatch: Sendable {
    var firstSeq: UInt64
    var leaves: [ChainDigest]
    /// "wal/<segment>.wal offset N", or "memory" for a running server's segment.
    var location: String
    var lastSeq: UInt64 { firstSeq + UInt64(leaves.count) - 1 }
}

/// Everything verification reads, gathered from a data directory (offline)
/// or from a running store's snapshot (online).
struct VerificationInput: Sendable {
    struct Part: Sendable {
        /// Relative to the data directory.
        var path: String
        var reader: PartReader
    }

    var ledger = ChainLedger()
    /// Relative path of the chain file read, if any.
    var ledgerLocation: String?
    /// The chain file could not be read: anchors are unknown.
    var ledgerDamaged = false
    /// Leaves of events retention removed, by seq (sorted, one per seq).
    var expired: [ExpiredLeaves.Entry] = []
    var parts: [Part] = []
    var unflushed: [UnflushedBatch] = []
    var flushedThroughSeq: UInt64 = 0
    /// Problems found while gathering (unreadable files, bad WAL records).
    var problems: [IntegrityProblem] = []
    var notes: [String] = []
    var walRecords: UInt64 = 0
    var checkpoints: [Checkpoints.Stored] = []
    /// Checkpoints a restore set aside, and retention statements a start set
    /// aside (`Checkpoints.supersededSets(in:)`): noted, not checked.
    var superseded: [(name: String, checkpoints: Int, statements: Int)] = []
    /// How checkpoint files are named in problems ("checkpoints/" or the directory).
    var checkpointPrefix = "checkpoints/"
    /// The checkpoint directory, where retention statements are looked up.
    var checkpointDirectory: String?
    /// The live expired-leaves files (relative path, contents), for their statements.
    var expiredFiles: [(path: String, file: ExpiredLeaves)] = []
    /// The data directory's `RETENTION` (nil: none), for the signed settings.
    var retentionFile: [UInt8]?
    /// Online: the settings generation in force when `retentionFile` was
    /// read, which it is compared with (nil: the highest there is).
    var retentionGeneration: UInt64?
    /// `RETENTION.unsigned-*` files: changed without the server, set aside at a start.
    var unsignedRetentionFiles: [String] = []

    /// The removals that must each have a signed retention statement: the
    /// chain's start when retention moved it, and every live expired-leaves file.
    var retentionFacts: [(fact: RetentionStatements.Fact, location: String)] {
        var facts: [(RetentionStatements.Fact, String)] = []
        if !ledgerDamaged, let start = RetentionStatements.Fact.start(of: ledger) { facts.append((start, ledgerLocation ?? "chain/")) }
        for (path, file) in expiredFiles { facts.append((.expired(file, path: path), path)) }
        return facts
    }

    /// Reads `RETENTION` and the names of the files a start set aside in its place.
    mutating func readRetentionFiles(_ directory: String) throws(VigilError) {
        retentionFile = try RetentionSettings.readBytes(directory + "/" + RetentionSettings.fileName)
        unsignedRetentionFiles = try FileIO.list(directory).filter { $0.hasPrefix(RetentionSettings.fileName + ".unsigned-") }
    }

    /// Reads the chain files of `directory` live under `nextPartNumber`.
    mutating func readChain(_ directory: String, nextPartNumber: UInt64, hasEvents: Bool) throws(VigilError) {
        let listing = try ChainFiles.list(directory, nextPartNumber: nextPartNumber)
        if let path = listing.ledger {
            ledgerLocation = path
            do {
                ledger = try ChainLedger.read(from: directory + "/" + path)
            } catch {
                ledgerDamaged = true
                problems.append(IntegrityProblem(.checksum, location: path, "the chain file cannot be read (\(error.message)); anchors are unknown"))
            }
            // Past the MANIFEST's (when it was read): no flush writes that, a
            // store refuses it, and the walk would hold a table of its last
            // range, whatever its length (an anchor at seq 2⁴⁰ trapped).
            if !ledgerDamaged && nextPartNumber != .max && ledger.endSeq > flushedThroughSeq {
                ledgerDamaged = true
                problems.append(IntegrityProblem(
                    .checksum, location: path,
                    "the chain ends at seq \(ledger.endSeq), past seq \(flushedThroughSeq), through which MANIFEST says the parts hold the events (a flush writes both at once): the file was changed, and its anchors are not used"))
            }
        } else if hasEvents {
            // Stored before this directory had a chain.
            ledger.startSeq = flushedThroughSeq
            ledger.startReason = .predatesChain
        }
        var merged: [UInt64: ExpiredLeaves.Entry] = [:]
        for path in listing.expired {
            do {
                let file = try ExpiredLeaves.read(from: directory + "/" + path)
                // One the chain's start passed is garbage (a start deletes it), as online.
                if file.maxSeq > ledger.startSeq { expiredFiles.append((path, file)) }
                for entry in file.entries where entry.seq > ledger.startSeq {
                    if let earlier = merged[entry.seq], earlier.leaf != entry.leaf {
                        problems.append(IntegrityProblem(.checksum, seq: entry.seq, location: path, "two expired-leaf records of this seq disagree"))
                    }
                    merged[entry.seq] = entry
                }
            } catch {
                problems.append(IntegrityProblem(.checksum, location: path, "the expired-leaves file cannot be read (\(error.message))"))
            }
        }
        expired = merged.values.sorted { $0.seq < $1.seq }
    }

    /// Reads `directory` without changing anything in it.
    static func gather(directory: String, checkpointDirectory: String?) throws(VigilError) -> VerificationInput {
        var input = VerificationInput()
        var manifest = Vigil_V1_Manifest()
        manifest.nextPartNumber = .max
        let manifestPath = directory + "/MANIFEST"
        if FileIO.exists(manifestPath) {
            do {
                manifest = try ChecksummedFile.read(Vigil_V1_Manifest.self, magic: ColumnarEventStore.manifestMagic, from: manifestPath)
            } catch {
                input.problems.append(IntegrityProblem(.checksum, location: "MANIFEST", "\(error.message); every part file found is read instead"))
                manifest.nextPartNumber = .max
                for day in try FileIO.list(directory + "/parts") {
                    for name in try FileIO.list(directory + "/parts/" + day) where name.hasSuffix(".part") {
                        var entry = Vigil_V1_ManifestPart()
                        entry.path = "parts/\(day)/\(name)"
                        manifest.parts.append(entry)
                    }
                }
            }
        } else if !(try FileIO.list(directory + "/parts")).isEmpty {
            input.problems.append(IntegrityProblem(.checksum, location: "MANIFEST", "the MANIFEST is missing but parts exist"))
        }
        input.flushedThroughSeq = manifest.flushedThroughSeq
        for entry in manifest.parts {
            do {
                let reader = try PartReader(path: directory + "/" + entry.path)
                // As at start (a store refuses it): not with entries made up from a damaged MANIFEST.
                if manifest.nextPartNumber != .max, let mismatch = ColumnarEventStore.entryMismatch(entry, reader.metadata) {
                    input.problems.append(IntegrityProblem(
                        .checksum, location: "MANIFEST",
                        "the entry of \(entry.path) disagrees with the part's footer (\(mismatch)): queries skip parts and retention deletes them by their entry"))
                }
                input.parts.append(Part(path: entry.path, reader: reader))
                input.flushedThroughSeq = max(input.flushedThroughSeq, manifest.nextPartNumber == .max ? reader.metadata.maxSeq : 0)
            } catch {
                input.problems.append(IntegrityProblem(.checksum, location: entry.path, "the part cannot be read: \(error.message)"))
            }
        }
        try input.readChain(directory, nextPartNumber: manifest.nextPartNumber, hasEvents: manifest.flushedThroughSeq > 0 || !manifest.parts.isEmpty)
        try input.readWAL(directory + "/wal", prefix: "wal/", compareWith: nil)
        try input.readRetentionFiles(directory)
        if let checkpointDirectory {
            input.checkpoints = try Checkpoints.list(checkpointDirectory)
            input.superseded = Checkpoints.supersededSets(in: checkpointDirectory)
            input.checkpointPrefix = checkpointDirectory == directory + "/checkpoints" ? "checkpoints/" : checkpointDirectory + "/"
            input.checkpointDirectory = checkpointDirectory
        }
        return input
    }

    /// Reads every record of every WAL segment in `walDirectory` (read-only).
    ///
    /// Offline (`compareWith` nil) the events of records after
    /// `flushedThroughSeq` become `unflushed`. Online, `compareWith` holds
    /// the running server's unflushed batches: records are checked against
    /// them instead, and segments that vanish (flushed meanwhile) are skipped.
    /// A bad record at the end of the last segment is a torn tail (a note,
    /// as after a crash: such a batch was never acknowledged); any other bad
    /// record is a CHECKSUM problem, and reading resumes at the next valid record.
    mutating func readWAL(_ walDirectory: String, prefix: String, compareWith memory: [UnflushedBatch]?) throws(VigilError) {
        let numbers = try FileIO.list(walDirectory).compactMap(WALFormat.segmentNumber(ofFileName:)).sorted()
        for (index, number) in numbers.enumerated() {
            let name = WALFormat.fileName(of: number)
            let isLast = index == numbers.count - 1
            let bytes: [UInt8]
            do {
                let file = try FileHandleDescriptor.open(walDirectory + "/" + name, flags: O_RDONLY)
                defer { file.close() }
                bytes = try file.read(count: try file.size(), at: 0)
            } catch {
                if memory != nil && !FileIO.exists(walDirectory + "/" + name) { continue }
                problems.append(IntegrityProblem(.checksum, location: prefix + name, "cannot be read: \(error.message)"))
                continue
            }
            var found: [(payload: [UInt8], offset: Int)] = []
            var problems: [IntegrityProblem] = []
            var notes: [String] = []
            bytes.withUnsafeBytes { raw in
                if isLast && (raw.count < WALFormat.headerSize || raw.allSatisfy({ $0 == 0 })) {
                    notes.append("\(prefix)\(name) holds no record (a crash while it was created)")
                    return
                }
                if let problem = WALFormat.headerProblem(raw, segment: number) {
                    problems.append(IntegrityProblem(.checksum, location: prefix + name + " offset 0", "its header is damaged: \(problem)"))
                    return
                }
                var offset = WALFormat.headerSize
                while true {
                    switch WALFormat.parseRecord(raw, at: offset) {
                    case .end:
                        return
                    case .record(let payload, let end):
                        found.append((Array(UnsafeRawBufferPointer(rebasing: raw[payload])), offset))
                        offset = end
                    case .bad(let problem):
                        let later = WALFormat.laterRecord(raw, after: offset)
                        if isLast && later == .none {
                            if memory == nil {
                                notes.append("\(prefix)\(name) ends with a torn record at offset \(offset) (\(raw.count - offset) bytes, never acknowledged: what a crash leaves)")
                            }
                            return
                        }
                        problems.append(IntegrityProblem(.checksum, location: "\(prefix)\(name) offset \(offset)", "the WAL record fails its check: \(problem)"))
                        guard case .at(let next) = later else { return }
                        offset = next
                    }
                }
            }
            self.problems += problems
            self.notes += notes
            for (payload, offset) in found {
                walRecords += 1
                let location = "\(prefix)\(name) offset \(offset)"
                guard let batch = try? Vigil_V1_WalBatch(serializedBytes: payload) else {
                    self.problems.append(IntegrityProblem(.checksum, location: location, "a WAL record with a valid checksum does not decode"))
                    continue
                }
                guard batch.firstSeq > flushedThroughSeq, !batch.events.isEmpty else { continue }
                let chunk = MemoryChunk(
                    columns: .init(batch.events), firstSeq: batch.firstSeq, receivedAt: batch.receivedAtNanos,
                    idempotencyKey: batch.idempotencyKey)
                let leaves = chunk.leaves()
                if let memory {
                    compare(UnflushedBatch(firstSeq: batch.firstSeq, leaves: leaves, location: location), with: memory)
                } else {
                    unflushed.append(UnflushedBatch(firstSeq: batch.firstSeq, leaves: leaves, location: location))
                }
            }
        }
        unflushed.sort { $0.firstSeq < $1.firstSeq }
    }

    /// Online: a WAL record's events must be what the server holds for their seqs.
    private mutating func compare(_ record: UnflushedBatch, with memory: [UnflushedBatch]) {
        for batch in memory where batch.firstSeq <= record.lastSeq && record.firstSeq <= batch.lastSeq {
            for seq in max(batch.firstSeq, record.firstSeq)...min(batch.lastSeq, record.lastSeq)
            where batch.leaves[Int(seq - batch.firstSeq)] != record.leaves[Int(seq - record.firstSeq)] {
                problems.append(IntegrityProblem(
                    .altered, seq: seq, location: record.location,
                    "the WAL holds other bytes for this event than the server acknowledged (a restart would replay them)"))
            }
        }
    }
}
