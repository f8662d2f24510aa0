import VigilCore
import VigilProto

/// Recomputes the hash chain from the stored events and reports every
/// difference (see the README's "Tamper evidence" and the DataDirectory
/// article).
///
/// The seqs are walked in *windows*: consecutive anchored ranges holding at
/// most `VerificationOptions.windowSeqs` seqs (a larger range is a window of
/// its own), then the unanchored tail (WAL records) in pieces of that size.
/// For each window every part block whose seq range overlaps it is decoded
/// (checking its CRCs) and the leaf hash of each of its events in the window
/// recomputed and compared with the part's stored truncated leaf; WAL and
/// expired leaves fill in the rest; then the window's seqs are chained in
/// order, checking each range against its anchor and the chain against the
/// signed checkpoints.
///
/// Memory: one window's table (42 bytes per seq: the leaf, its source, a
/// flag and where its row is), one decoded block, the leaves of events not yet in
/// parts (32 bytes each) and of expired events still inside anchored
/// ranges (40 bytes each). A block whose seqs span several windows is
/// decoded once per window.
struct IntegrityVerifier {
    let input: VerificationInput
    let options: VerificationOptions
    var report = IntegrityReport()

    static func run(_ input: VerificationInput, options: VerificationOptions) throws(VigilError) -> IntegrityReport {
        var verifier = IntegrityVerifier(input: input, options: options)
        try verifier.run()
        return verifier.report
    }

    private init(input: VerificationInput, options: VerificationOptions) {
        self.input = input
        self.options = options
    }

    // MARK: State of a run

    private struct Checkpoint {
        var seq: UInt64
        var head: ChainDigest
        var location: String
    }

    /// A seq range walked as a unit: an anchored range, or a piece of the tail.
    private struct Span {
        var first: UInt64
        var last: UInt64
        var anchor: ChainLedger.Range?
    }

    /// An event in a part: where it is.
    private struct RowRef {
        var part: Int
        var block: Int
        var row: Int

        /// Packed into 8 bytes for the window's table: part (20 bits), block (28), row (16; rows < 65,536).
        var packed: UInt64 { UInt64(part) << 44 | UInt64(block) << 16 | UInt64(row) }

        init(part: Int, block: Int, row: Int) {
            self.part = part
            self.block = block
            self.row = row
        }

        /// nil for `RowRef.none`.
        init?(packed: UInt64) {
            guard packed != RowRef.none else { return nil }
            self.init(part: Int(packed >> 44), block: Int(packed >> 16 & 0xFFF_FFFF), row: Int(packed & 0xFFFF))
        }

        static let none = UInt64.max
    }

    /// A stored event whose leaf does not match the truncated leaf stored with it.
    private struct Mismatch {
        var seq: UInt64
        var event: AuditEvent
        var stored: UInt32
        var location: String
    }

    /// A second (or later) event holding a seq.
    private struct Candidate {
        var leaf: ChainDigest
        var eventID: String
        var location: String
        /// Its stored truncated leaf matches its bytes (or it has none stored).
        var consistent: Bool
    }

    private enum Source: UInt8 {
        case none = 0
        case part = 1
        case unflushed = 2
        case expired = 3
    }

    /// Seqs the chain covers: (start, anchorsEnd] in parts, and WAL records.
    private var start: UInt64 = 0
    private var anchorsEnd: UInt64 = 0
    private var knownEnd: UInt64 = 0
    /// The last seq a stored event can hold (an anchor's, a WAL record's,
    /// or a part's when the anchors are unknown): the walk stops there.
    private var storedEnd: UInt64 = 0
    private var checkpoints: [UInt64: [Checkpoint]] = [:]
    private var pureHead = ChainDigest.zero
    /// The first missing seq since the last resynchronisation: the recomputed
    /// head is unknown from there until the next anchor.
    private var pureBrokenAt: UInt64?
    private var localHead = ChainDigest.zero
    /// Blocks (part << 32 | block) whose order and statistics were checked, or
    /// that were reported unreadable: each is checked once, whatever the windows.
    private var orderChecked = Set<Int>()
    private var unflushedIndex = 0
    private var expiredIndex = 0
    /// The head is reported at this seq (the range asked for may end inside an anchored range).
    private var reportThrough: UInt64 = .max

    private mutating func add(_ problem: IntegrityProblem) {
        report.add(problem, limit: options.maxProblems)
    }

    private func location(_ ref: RowRef) -> String {
        "\(input.parts[ref.part].path) block \(ref.block) row \(ref.row)"
    }

    private func checkCancelled() throws(VigilError) {
        if options.isCancelled() { throw VigilError(.cancelled, "verification was cancelled") }
    }

    // MARK: The run

    private mutating func run() throws(VigilError) {
        let ledger = input.ledger
        report.partsChecked = UInt64(input.parts.count + input.problems.filter { $0.location?.hasPrefix("parts/") == true }.count)
        report.walRecordsChecked = input.walRecords
        report.notes = input.notes
        for problem in input.problems { add(problem) }
        if input.ledgerLocation == nil, input.parts.contains(where: { $0.reader.hasLeaves }) {
            add(IntegrityProblem(.checksum, location: ChainFiles.directoryName + "/", "there is no chain file, but parts were written with leaf hashes: the chain's anchors were removed"))
        }
        start = input.ledgerDamaged ? 0 : ledger.startSeq
        anchorsEnd = input.ledgerDamaged ? 0 : ledger.endSeq
        report.eventsExpired = input.ledgerDamaged ? 0 : ledger.expiredBeforeStart

        let keys = readCheckpoints()
        let statementKey = checkRetentionStatements(signedBy: keys)
        checkRetentionSettings(trusted: statementKey)
        if !input.ledgerDamaged { checkPredatingStart() }
        let partsMax = input.parts.map(\.reader.metadata.maxSeq).max() ?? 0
        let checkpointMax = checkpoints.keys.max() ?? 0
        storedEnd = max(anchorsEnd, input.unflushed.last?.lastSeq ?? 0, input.ledgerDamaged ? partsMax : 0)
        knownEnd = max(storedEnd, checkpointMax)
        // Events past the chain's end are found by a pass of their own (their
        // seqs may be anything: the walk stops at the chain's end).
        let end = knownEnd

        // The seqs to walk, widened to whole anchored ranges.
        let ranges = input.ledgerDamaged ? [] : ledger.ranges
        let requestedFrom = max(options.fromSeq, start + 1)
        let requestedTo = options.toSeq == 0 ? end : min(options.toSeq, end)
        var low = start + 1
        var headBefore = input.ledgerDamaged ? .zero : ledger.startHead
        if requestedFrom > start + 1 {
            if let range = ranges.first(where: { $0.last >= requestedFrom }) {
                low = range.first
                headBefore = range.headBefore
            } else {
                low = anchorsEnd + 1
                headBefore = ledger.endHead
            }
        }
        reportThrough = requestedTo
        // Seqs past `storedEnd` (up to a checkpoint's) are all missing: they
        // are counted below, not walked one by one (a checkpoint at seq 2⁵⁰
        // had the walk run out of memory).
        var high = min(requestedTo, storedEnd)
        if let range = ranges.first(where: { $0.last >= high }), range.first <= high { high = range.last }
        pureHead = headBefore
        localHead = headBefore
        report.headSeq = low - 1
        report.headHash = headBefore

        if start > 0 && low == start + 1 { try checkBeforeStart() }
        // Checkpoints at the seq before the walk (the start, or a range's end).
        for checkpoint in checkpoints[low - 1] ?? [] { compare(checkpoint, with: headBefore) }
        let skipped = checkpoints.keys.filter { $0 < low - 1 }.count
        // Below a start that predates the chain they are a problem (`checkPredatingStart`), not a note.
        if skipped > 0 && !(low == start + 1 && ledger.startReason == .predatesChain) {
            report.notes.append(low == start + 1
                ? "\(skipped) checkpoint(s) lie at or below the chain's start (seq \(start)), which retention moved past them: they cannot be checked"
                : "\(skipped) checkpoint(s) lie before the range checked")
        }
        if ledger.startReason == .predatesChain && start > 0 && !input.ledgerDamaged {
            report.notes.append("events up to seq \(start) were stored before this data directory had a hash chain: they are not verified")
        }
        if high >= low { try walk(ranges, low: low, high: high) }
        if requestedTo > storedEnd { missingPastStoredEnd(from: max(storedEnd + 1, low), through: requestedTo) }
        if partsMax > storedEnd && requestedTo == end { try checkBeyondEnd() }
        if let broken = pureBrokenAt {
            report.notes.append("the head after seq \(report.headSeq) could not be recomputed from the events: events are missing from seq \(broken)")
        }
    }

    /// Walks the seqs `low…high`, window by window.
    private mutating func walk(_ ranges: [ChainLedger.Range], low: UInt64, high: UInt64) throws(VigilError) {
        var spans: [Span] = ranges.filter { $0.last >= low && $0.first <= high }.map { Span(first: $0.first, last: $0.last, anchor: $0) }
        var tail = max(low, anchorsEnd + 1)
        let window = UInt64(max(1, options.windowSeqs))
        while tail <= high {
            let last = min(high, tail + window - 1)
            spans.append(Span(first: tail, last: last, anchor: nil))
            tail = last + 1
        }
        var group: [Span] = []
        for span in spans {
            if let first = group.first, span.last - first.first + 1 > window {
                try verify(group)
                group = []
            }
            group.append(span)
        }
        if !group.isEmpty { try verify(group) }
    }

    /// Seqs `first…last`, past every stored event and covered by checkpoints:
    /// one MISSING run, whatever its length, and a note per checkpoint in it.
    private mutating func missingPastStoredEnd(from first: UInt64, through last: UInt64) {
        guard first <= last else { return }
        add(IntegrityProblem(
            .missing, seq: first, lastSeq: last,
            first == last
                ? "the chain covers this seq (a signed checkpoint is at it), but no event holds it"
                : "the chain covers these seqs (\(last - first + 1) events, up to a signed checkpoint), but no event holds them"))
        if pureBrokenAt == nil { pureBrokenAt = first }
        for (seq, list) in checkpoints.sorted(by: { $0.key < $1.key }) where seq >= first && seq <= last {
            for checkpoint in list {
                report.notes.append("checkpoint \(checkpoint.location) (seq \(seq)) cannot be confirmed: events are missing from seq \(pureBrokenAt ?? first)")
            }
        }
    }

    /// Checks the signatures of the checkpoints; keeps the good ones by seq.
    /// Returns the keys that signed them.
    private mutating func readCheckpoints() -> Set<CheckpointPublicKey> {
        var keys = Set<CheckpointPublicKey>()
        for stored in input.checkpoints {
            let location = input.checkpointPrefix + stored.name
            switch stored.checkpoint {
            case .failure(let error):
                report.checkpointsChecked += 1
                add(IntegrityProblem(.checkpoint, location: location, "the checkpoint cannot be read: \(error.message)"))
            case .success(let checkpoint):
                report.checkpointsChecked += 1
                if let problem = Checkpoints.problem(with: checkpoint, trusted: options.trustedKey) {
                    add(IntegrityProblem(.checkpoint, seq: checkpoint.seq, location: location, problem))
                    continue
                }
                keys.insert(CheckpointPublicKey(raw: Array(checkpoint.publicKey))!)
                checkpoints[checkpoint.seq, default: []].append(
                    Checkpoint(seq: checkpoint.seq, head: ChainDigest(bytes: Array(checkpoint.head))!, location: location))
            }
        }
        for set in input.superseded {
            // The record of a restore: what these signed was lost with it.
            if set.checkpoints > 0 {
                report.notes.append(
                    "\(set.checkpoints) checkpoint(s) in \(input.checkpointPrefix)\(Checkpoints.supersededDirectory)/\(set.name) were set aside by vigil restore: signed for events stored after the restored backup, which the restore did not bring back")
            }
            // The record of removals that never committed (`RetentionStatements.setAsideUnused`).
            if set.statements > 0 {
                report.notes.append(
                    "\(set.statements) retention statement(s) in \(input.checkpointPrefix)\(Checkpoints.supersededDirectory)/\(set.name) were set aside at a start: signed for removals that never committed (a retention pass or merge interrupted or failed, or a restore's lost future), so they attest nothing")
            }
        }
        if input.checkpoints.isEmpty {
            report.notes.append("no signed checkpoints: this proves the stored events and the chain agree with each other, not that they are what the server signed")
        } else if options.trustedKey == nil {
            if keys.count > 1 {
                add(IntegrityProblem(.checkpoint, location: input.checkpointPrefix, "the checkpoints are signed with \(keys.count) different keys (\(keys.map(\.hex).sorted().joined(separator: ", "))); pass the server's public key to tell which are genuine"))
            } else if let key = keys.first {
                report.notes.append("checkpoints were checked with the key they carry, \(key.hex); pass the server's public key (--public-key) to pin it")
            }
        }
        return keys
    }

    /// Every removal of events (the chain's start, when retention moved it,
    /// and each live expired-leaves file) must have a statement signed by the
    /// checkpoints' key (`RetentionStatements`) once statements have begun in
    /// the checkpoint directory (`begin.retention`). Without one, the events
    /// may have been deleted and the file written to pass them off as
    /// expired. Before they have begun (a store from before statements, not
    /// yet served with its key), removals without one are noted.
    /// Returns the key statements are checked with (nil: each with its own).
    private mutating func checkRetentionStatements(signedBy keys: Set<CheckpointPublicKey>) -> CheckpointPublicKey? {
        guard let directory = input.checkpointDirectory else { return nil }
        var trusted = options.trustedKey ?? (keys.count == 1 ? keys.first : nil)
        let began = RetentionStatements.began(in: directory, trusted: trusted)
        var beganAt: Int64?
        switch began {
        case nil:
            // Nothing signed at all: the note on checkpoints says what that proves.
            guard !input.checkpoints.isEmpty else { return trusted }
        case .success(let checked)?:
            beganAt = checked.createdAt
            if trusted == nil { trusted = checked.publicKey }
        case .failure(let error)?:
            add(IntegrityProblem(
                .checkpoint, location: input.checkpointPrefix + RetentionStatements.beginFileName,
                "the statement that retention statements began cannot be trusted: \(error.message)"))
        }
        let required = began != nil
        var attested = 0
        var unattested = 0
        for (fact, location) in input.retentionFacts {
            let statement = input.checkpointPrefix + fact.fileName
            let seqs: (UInt64?, UInt64?) = switch fact {
            case .chainStart(let seq, _, _): (seq, nil)
            case .expired(_, _, _, let first, let last): (first, last)
            }
            switch RetentionStatements.check(fact, in: directory, trusted: trusted) {
            case nil where !required:
                unattested += 1
            case nil:
                add(IntegrityProblem(
                    .checkpoint, seq: seqs.0, lastSeq: seqs.1, location: location,
                    "\(fact.removal), but no signed retention statement attests it (\(statement) is missing), though statements began (\(input.checkpointPrefix)\(RetentionStatements.beginFileName)): the events may have been deleted rather than expired"))
            case .failure(let error)?:
                add(IntegrityProblem(.checkpoint, seq: seqs.0, lastSeq: seqs.1, location: statement, "the retention statement of \(fact.description) cannot be trusted: \(error.message)"))
            case .success(let checked)?:
                attested += 1
                guard checked.reason == .adopted else { continue }
                if let beganAt, checked.createdAt > beganAt {
                    // A server adopts only before statements begin.
                    add(IntegrityProblem(
                        .checkpoint, seq: seqs.0, lastSeq: seqs.1, location: statement,
                        "\(fact.description) was signed as found (ADOPTED) on \(formatTime(checked.createdAt)), after statements began on \(formatTime(beganAt)): a removal made without the key was signed afterwards"))
                } else {
                    report.notes.append(
                        "\(fact.description) was found without a retention statement by a server that started on \(formatTime(checked.createdAt)), which signed it as found (ADOPTED) before statements began: it predates statements or the checkpoint key")
                }
            }
        }
        if unattested > 0 {
            report.notes.append(
                "\(unattested) removal(s) of events (the chain's start, expired-leaves files) are not attested: signed retention statements have not begun in \(input.checkpointPrefix) (no \(RetentionStatements.beginFileName)); a server started with its --checkpoint-key signs them as found and begins them")
        }
        if attested > 0 {
            report.notes.append("\(attested) removal(s) of events (the chain's start, expired-leaves files) attested by signed retention statements")
        }
        return trusted
    }

    /// `RETENTION` must be what the highest generation of settings
    /// statements signed (`RetentionStatements.SignedSettings`), and every
    /// settings statement must verify. Otherwise the retention was changed
    /// without the server: removals made under it, though signed, were not
    /// the ones its operators chose.
    private mutating func checkRetentionSettings(trusted: CheckpointPublicKey?) {
        guard let directory = input.checkpointDirectory else { return }
        for name in input.unsignedRetentionFiles {
            report.notes.append(
                "\(name) is a RETENTION file that was changed without the server; a start set it aside and put the signed settings back")
        }
        let names = (try? RetentionStatements.settingsNames(in: directory)) ?? []
        guard !names.isEmpty else {
            if RetentionStatements.began(in: directory, trusted: nil) != nil {
                report.notes.append(
                    "the retention settings are not signed (no settings statement in \(input.checkpointPrefix)); a server started with its --checkpoint-key signs them")
            }
            return
        }
        // The generation to compare with: the one in force when a running
        // server's file was read, else the highest.
        let compared = input.retentionGeneration.flatMap { generation in names.contains { $0.generation == generation } ? generation : nil }
            ?? names[0].generation
        var latest: RetentionStatements.SignedSettings?
        for (name, generation) in names {
            switch RetentionStatements.readSettings(directory + "/" + name, trusted: trusted) {
            case .success(let settings):
                if generation == compared { latest = settings }
            case .failure(let error):
                add(IntegrityProblem(
                    .checkpoint, location: input.checkpointPrefix + name, "the retention settings statement cannot be trusted: \(error.message)"))
            }
        }
        guard let latest else { return }
        let signed = "generation \(latest.generation), signed on \(formatTime(latest.createdAt))"
        if latest.accepts(input.retentionFile) {
            report.notes.append("the retention settings are the ones signed as \(signed) (\(RetentionSettings.describe(latest.inForce)))")
        } else {
            add(IntegrityProblem(
                .checkpoint, location: RetentionSettings.fileName,
                "it holds \(input.retentionFile.map(RetentionSettings.describe) ?? "nothing (there is no file)"), not the settings \(signed) (\(latest.file.map(RetentionSettings.describe) ?? "no file")): the retention was changed without the server. A start with the checkpoint key puts the signed settings back and sets this file aside"))
        }
    }

    /// A start that predates the chain is not verified, so it must be one
    /// the engine can have made: with the zero head, and with no signed
    /// checkpoint below it (checkpoints came with the chain, and the first
    /// one can be at the start itself, where it is compared with the head).
    private mutating func checkPredatingStart() {
        let ledger = input.ledger
        guard ledger.startReason == .predatesChain else { return }
        let location = input.ledgerLocation ?? ChainFiles.directoryName + "/"
        if let problem = ledger.startProblem {
            add(IntegrityProblem(.checksum, seq: ledger.startSeq, location: location, problem))
        }
        let below = checkpoints.filter { $0.key < ledger.startSeq }.sorted { $0.key < $1.key }
        if let (seq, lowest) = below.first, let first = lowest.first {
            add(IntegrityProblem(
                .checksum, seq: ledger.startSeq, location: location,
                "it says the events up to seq \(ledger.startSeq) predate the hash chain, yet \(below.count) signed checkpoint(s) lie below that seq (the lowest, \(first.location), at seq \(seq)): checkpoints came with the chain, so its start was moved, and the events up to seq \(ledger.startSeq) would go unverified"))
        }
    }

    private mutating func compare(_ checkpoint: Checkpoint, with head: ChainDigest) {
        guard head != checkpoint.head else { return }
        add(IntegrityProblem(
            .checkpoint, seq: checkpoint.seq, location: checkpoint.location,
            "the chain recomputed from the stored events reaches head \(head.hex) at this seq, but the signed checkpoint says \(checkpoint.head.hex)"))
    }

    /// Events in parts past every seq an anchor or WAL record covers (the
    /// walk stops there).
    private mutating func checkBeyondEnd() throws(VigilError) {
        for (index, part) in input.parts.enumerated() where part.reader.metadata.maxSeq > storedEnd {
            for block in part.reader.blocks where block.maxSeq > storedEnd {
                try checkCancelled()
                let decoded: DecodedBlock
                do {
                    decoded = try part.reader.readColumns(block: block.index, [.seq, .id])
                } catch {
                    add(IntegrityProblem(.checksum, location: "\(part.path) block \(block.index)", error.message))
                    continue
                }
                for row in 0..<decoded.rowCount where decoded.seq![row] > storedEnd {
                    let seq = decoded.seq![row]
                    add(IntegrityProblem(
                        .inserted, seq: seq, eventID: decoded.id![row],
                        location: location(RowRef(part: index, block: block.index, row: row)),
                        seq > knownEnd
                            ? "the chain ends at seq \(knownEnd) (no anchor, WAL record or checkpoint covers this seq): the event was added"
                            : "no anchor covers this seq (the flushed chain ends at seq \(anchorsEnd)): the event was added to the part"))
                }
            }
        }
    }

    /// Events at or below the chain's start: retention removed everything up
    /// to there, so such an event was put back (or the start moved).
    private mutating func checkBeforeStart() throws(VigilError) {
        var unchained: UInt64 = 0
        for (index, part) in input.parts.enumerated() where part.reader.metadata.minSeq <= start && part.reader.metadata.rowCount > 0 {
            for block in part.reader.blocks where block.minSeq <= start {
                try checkCancelled()
                if input.ledger.startReason == .predatesChain && block.maxSeq <= start {
                    unchained += UInt64(block.rowCount)
                    continue
                }
                let decoded: DecodedBlock
                do {
                    decoded = try part.reader.readColumns(block: block.index, [.seq, .id])
                } catch {
                    add(IntegrityProblem(.checksum, location: "\(part.path) block \(block.index)", error.message))
                    continue
                }
                for row in 0..<decoded.rowCount where decoded.seq![row] <= start {
                    if input.ledger.startReason == .predatesChain {
                        unchained += 1
                        continue
                    }
                    add(IntegrityProblem(
                        .inserted, seq: decoded.seq![row], eventID: decoded.id![row],
                        location: location(RowRef(part: index, block: block.index, row: row)),
                        "the chain starts after seq \(start) (retention removed every event up to there), yet this event is stored"))
                }
            }
        }
        if unchained > 0 {
            report.notes.append("\(unchained) stored events predate the hash chain (stored before tamper evidence)")
        }
    }

    // MARK: One window

    private mutating func verify(_ spans: [Span]) throws(VigilError) {
        let low = spans.first!.first
        let high = spans.last!.last
        let size = Int(high - low + 1)
        var leaves = [ChainDigest](repeating: .zero, count: size)
        var sources = [Source](repeating: .none, count: size)
        /// Per seq: whether its stored truncated leaf matched (part rows).
        var consistent = [Bool](repeating: true, count: size)
        var refs = [UInt64](repeating: RowRef.none, count: size)
        var mismatches: [Mismatch] = []
        var duplicates: [UInt64: [Candidate]] = [:]
        var scratch: [UInt8] = []

        // Parts.
        for (partIndex, part) in input.parts.enumerated() {
            for block in part.reader.blocks where block.maxSeq >= low && block.minSeq <= high {
                try checkCancelled()
                let decoded: DecodedBlock
                do {
                    decoded = try part.reader.allColumns(block: block.index)
                } catch {
                    let key = partIndex << 32 | block.index
                    if orderChecked.insert(key).inserted {
                        add(IntegrityProblem(
                            .checksum, seq: block.minSeq, lastSeq: block.maxSeq, location: "\(part.path) block \(block.index)",
                            "the block cannot be read (\(error.message)); its events count as missing"))
                    }
                    continue
                }
                if orderChecked.insert(partIndex << 32 | block.index).inserted {
                    checkOrder(decoded, part: partIndex, block: block.index)
                    checkStatistics(decoded, block, part: partIndex)
                }
                let seqs = decoded.seq!
                for row in 0..<decoded.rowCount {
                    let seq = seqs[row]
                    guard seq >= low && seq <= high && seq > start else { continue }
                    let ref = RowRef(part: partIndex, block: block.index, row: row)
                    let event = decoded.event(at: row)
                    let leaf = HashChain.leaf(of: event, scratch: &scratch)
                    report.eventsChecked += 1
                    let stored = decoded.leaf?[row]
                    let matches = stored == nil || stored == leaf.truncated
                    guard input.ledgerDamaged || seq <= anchorsEnd else {
                        add(IntegrityProblem(
                            .inserted, seq: seq, eventID: event.id, location: location(ref),
                            "no anchor covers this seq (the flushed chain ends at seq \(anchorsEnd)): the event was added to the part"))
                        continue
                    }
                    let index = Int(seq - low)
                    if sources[index] != .none {
                        duplicates[seq, default: []].append(
                            Candidate(leaf: leaf, eventID: event.id, location: location(ref), consistent: matches))
                        continue
                    }
                    if !matches, let stored {
                        mismatches.append(Mismatch(seq: seq, event: event, stored: stored, location: location(ref)))
                    }
                    leaves[index] = leaf
                    sources[index] = .part
                    consistent[index] = matches
                    refs[index] = ref.packed
                }
            }
        }

        // Events not yet in parts.
        while unflushedIndex < input.unflushed.count, input.unflushed[unflushedIndex].lastSeq < low { unflushedIndex += 1 }
        var batchIndex = unflushedIndex
        while batchIndex < input.unflushed.count, input.unflushed[batchIndex].firstSeq <= high {
            let batch = input.unflushed[batchIndex]
            batchIndex += 1
            for seq in max(batch.firstSeq, low)...min(batch.lastSeq, high) where seq > start {
                let index = Int(seq - low)
                let leaf = batch.leaves[Int(seq - batch.firstSeq)]
                report.eventsChecked += 1
                switch sources[index] {
                case .none:
                    leaves[index] = leaf
                    sources[index] = .unflushed
                case .part:
                    // A seq not yet flushed cannot be in a part: the part's copy was added.
                    add(IntegrityProblem(
                        .inserted, seq: seq, location: RowRef(packed: refs[index]).map(location),
                        "this seq belongs to a batch not yet flushed (\(batch.location)), yet a part holds an event with it"))
                    leaves[index] = leaf
                    sources[index] = .unflushed
                    mismatches.removeAll { $0.seq == seq }
                    consistent[index] = true
                default:
                    add(IntegrityProblem(.inserted, seq: seq, location: batch.location, "a second WAL record holds this seq"))
                }
            }
        }

        // Leaves of events retention removed.
        while expiredIndex < input.expired.count, input.expired[expiredIndex].seq < low { expiredIndex += 1 }
        var entryIndex = expiredIndex
        while entryIndex < input.expired.count, input.expired[entryIndex].seq <= high {
            let entry = input.expired[entryIndex]
            entryIndex += 1
            let index = Int(entry.seq - low)
            switch sources[index] {
            case .none:
                leaves[index] = entry.leaf
                sources[index] = .expired
                report.eventsExpired += 1
            default:
                // Removed by retention yet still stored: harmless when it is the same event
                // (a retention pass interrupted before its MANIFEST).
                if leaves[index] != entry.leaf {
                    add(IntegrityProblem(
                        .altered, seq: entry.seq, location: RowRef(packed: refs[index]).map(location),
                        "the event differs from the leaf recorded when retention removed it"))
                }
            }
        }

        // Several events holding one seq: the one whose stored leaf matches
        // belongs; when that does not decide, the span's anchor does (below).
        var unresolved: [UInt64: [Candidate]] = [:]
        for (seq, others) in duplicates.sorted(by: { $0.key < $1.key }) {
            let index = Int(seq - low)
            let first = Candidate(
                leaf: leaves[index], eventID: RowRef(packed: refs[index]).flatMap { eventID(at: $0) } ?? "",
                location: RowRef(packed: refs[index]).map(location) ?? "", consistent: consistent[index])
            let candidates = [first] + others
            mismatches.removeAll { $0.seq == seq }
            let matching = candidates.indices.filter { candidates[$0].consistent }
            if matching.count == 1 {
                settle(seq, candidates, chosen: matching[0], low: low, leaves: &leaves, consistent: &consistent)
            } else {
                unresolved[seq] = candidates
            }
        }

        // Exchanged seqs: each event's stored leaf matches it at the other's seq.
        var reordered = Set<UInt64>()
        if mismatches.count >= 2 && mismatches.count <= 64 {
            for a in mismatches.indices where !reordered.contains(mismatches[a].seq) {
                for b in mismatches.indices where b != a && !reordered.contains(mismatches[b].seq) {
                    let (x, y) = (mismatches[a], mismatches[b])
                    if Self.leaf(of: x.event, atSeq: y.seq).truncated == x.stored && Self.leaf(of: y.event, atSeq: x.seq).truncated == y.stored {
                        reordered.insert(x.seq)
                        reordered.insert(y.seq)
                        add(IntegrityProblem(
                            .reordered, seq: x.seq, eventID: x.event.id, location: x.location,
                            "this event was chained at seq \(y.seq), and the event at seq \(y.seq) (\(y.location)) at seq \(x.seq): the two were swapped"))
                        break
                    }
                }
            }
        }
        for mismatch in mismatches where !reordered.contains(mismatch.seq) {
            add(IntegrityProblem(
                .altered, seq: mismatch.seq, eventID: mismatch.event.id, location: mismatch.location,
                "the event's bytes hash to a leaf (\(Self.hex8(HashChain.leaf(of: mismatch.event).truncated))…) other than the one stored with it (\(Self.hex8(mismatch.stored))…)"))
        }

        // Chain the window, span by span.
        var missingRun: (first: UInt64, last: UInt64)?
        func endMissingRun(_ verifier: inout IntegrityVerifier) {
            guard let run = missingRun else { return }
            verifier.add(IntegrityProblem(
                .missing, seq: run.first, lastSeq: run.last,
                run.first == run.last ? "the chain covers this seq, but no event holds it" : "the chain covers these seqs (\(run.last - run.first + 1) events), but no event holds them"))
            missingRun = nil
        }
        for span in spans {
            try checkCancelled()
            var spanProblems = false
            // Duplicates the stored leaves could not decide: the candidate that
            // makes the span reach its anchor belongs.
            for (seq, candidates) in unresolved.sorted(by: { $0.key < $1.key }) where seq >= span.first && seq <= span.last {
                spanProblems = true
                var chosen = 0
                if let anchor = span.anchor {
                    for (candidateIndex, candidate) in candidates.enumerated() {
                        var head = anchor.headBefore
                        for other in span.first...span.last where sources[Int(other - low)] != .none {
                            head = HashChain.next(head, other == seq ? candidate.leaf : leaves[Int(other - low)])
                        }
                        if head == anchor.headAfter {
                            chosen = candidateIndex
                            break
                        }
                    }
                }
                settle(seq, candidates, chosen: chosen, low: low, leaves: &leaves, consistent: &consistent)
            }
            for seq in span.first...span.last {
                let index = Int(seq - low)
                if !consistent[index] || reordered.contains(seq) || duplicates[seq] != nil { spanProblems = true }
                if sources[index] == .none {
                    if seq > start && seq <= knownEnd {
                        if let run = missingRun, run.last == seq - 1 { missingRun!.last = seq } else {
                            endMissingRun(&self)
                            missingRun = (seq, seq)
                        }
                        if pureBrokenAt == nil { pureBrokenAt = seq }
                        spanProblems = true
                    }
                    continue
                }
                endMissingRun(&self)
                pureHead = HashChain.next(pureHead, leaves[index])
                localHead = HashChain.next(localHead, leaves[index])
                if seq <= reportThrough {
                    report.headSeq = seq
                    report.headHash = pureHead
                }
                for checkpoint in checkpoints[seq] ?? [] {
                    if let broken = pureBrokenAt {
                        report.notes.append("checkpoint \(checkpoint.location) (seq \(seq)) cannot be confirmed: events are missing from seq \(broken)")
                    } else {
                        compare(checkpoint, with: pureHead)
                    }
                }
            }
            guard let anchor = span.anchor else { continue }
            if localHead != anchor.headAfter && !spanProblems {
                add(IntegrityProblem(
                    .altered, seq: span.first, lastSeq: span.last, location: input.ledgerLocation,
                    "the chain over these seqs does not reach the head its anchor records (\(anchor.headAfter.hex)): an event in the range was changed along with its stored leaf"))
            }
            localHead = anchor.headAfter
            if pureBrokenAt != nil {
                // Later checkpoints are checked from the anchor's (unsigned) head.
                pureHead = anchor.headAfter
                pureBrokenAt = nil
                if anchor.last <= reportThrough { report.headHash = pureHead }
            }
        }
        endMissingRun(&self)
        options.progress?(report.eventsChecked, storedEnd > start ? storedEnd - start : 0)
    }

    /// Keeps candidate `chosen` for `seq` and reports the others as inserted.
    private mutating func settle(
        _ seq: UInt64, _ candidates: [Candidate], chosen: Int, low: UInt64, leaves: inout [ChainDigest], consistent: inout [Bool]
    ) {
        let index = Int(seq - low)
        for (candidateIndex, candidate) in candidates.enumerated() where candidateIndex != chosen {
            add(IntegrityProblem(
                .inserted, seq: seq, eventID: candidate.eventID, location: candidate.location,
                "another event (\(candidates[chosen].location)) holds this seq and is the one the chain covers"))
        }
        leaves[index] = candidates[chosen].leaf
        consistent[index] = true
    }

    private func eventID(at ref: RowRef) -> String? {
        try? input.parts[ref.part].reader.readColumns(block: ref.block, [.id]).id?[ref.row]
    }

    /// A part's rows must be in (tenant bytes, occurred_at, seq) order.
    private mutating func checkOrder(_ decoded: DecodedBlock, part: Int, block: Int) {
        guard let tenants = decoded.tenant, let times = decoded.occurredAt,
            let seqs = decoded.seq
        else { return }
        for row in 1..<max(1, decoded.rowCount) {
            let before: Bool
            if !sameUTF8(tenants[row - 1], tenants[row]) {
                before = utf8Less(tenants[row - 1], tenants[row])
            } else if times[row - 1] != times[row] {
                before = times[row - 1] < times[row]
            } else {
                // Equal seqs are a duplicate, which the chain reports (INSERTED).
                before = seqs[row - 1] <= seqs[row]
            }
            if !before {
                add(IntegrityProblem(
                    .reordered, seq: seqs[row], eventID: decoded.id?[row],
                    location: location(RowRef(part: part, block: block, row: row)),
                    "rows \(row - 1) and \(row) (seqs \(seqs[row - 1]) and \(seqs[row])) break the part's (tenant, time, seq) order"))
                return
            }
        }
    }

    /// A block's entry in the footer must describe its rows: queries skip a
    /// block by its time and seq ranges, its tenants and its statistics
    /// (bloom filters, value sets) and answer counts from its value counts
    /// without reading it. A footer edited with its checksum recomputed could
    /// otherwise hide events from queries, or change counts, while every
    /// row still matches the chain. Reported as CHECKSUM on the block: the
    /// part's index is damaged, not the events.
    private mutating func checkStatistics(_ decoded: DecodedBlock, _ block: BlockMetadata, part: Int) {
        guard let problem = Self.statisticsProblem(decoded, block) else { return }
        // A row changed after its block was written no longer fits the block's
        // statistics either: it is reported as ALTERED, which says it all.
        if let stored = decoded.leaf {
            var scratch: [UInt8] = []
            for row in 0..<decoded.rowCount where HashChain.leaf(of: decoded.event(at: row), scratch: &scratch).truncated != stored[row] {
                return
            }
        }
        add(IntegrityProblem(
            .checksum, seq: block.minSeq, lastSeq: block.maxSeq, location: "\(input.parts[part].path) block \(block.index)",
            "the footer does not describe the block's rows: \(problem); queries would skip or miscount its events"))
    }

    /// How `block`'s footer entry disagrees with its decoded rows (every
    /// column decoded), or nil. The writer records exact extrema, exact
    /// tenants and exact counts, so any difference is a change.
    static func statisticsProblem(_ decoded: DecodedBlock, _ block: BlockMetadata) -> String? {
        guard let times = decoded.occurredAt, let seqs = decoded.seq, let tenants = decoded.tenant, !seqs.isEmpty else { return nil }
        if times.min() != block.minOccurredAt || times.max() != block.maxOccurredAt {
            return "occurred_at \(block.minOccurredAt)…\(block.maxOccurredAt) in the footer, \(times.min()!)…\(times.max()!) in the rows"
        }
        if seqs.min() != block.minSeq || seqs.max() != block.maxSeq {
            return "seqs \(block.minSeq)…\(block.maxSeq) in the footer, \(seqs.min()!)…\(seqs.max()!) in the rows"
        }
        // Rows are in tenant order (checked apart), so each tenant is one run.
        var rowTenants: [String] = []
        for tenant in tenants where !(rowTenants.last.map { sameUTF8($0, tenant) } ?? false) { rowTenants.append(tenant) }
        if rowTenants.count != block.tenants.count || !zip(rowTenants, block.tenants).allSatisfy({ sameUTF8($0, $1) }) {
            return "tenants \(block.tenants) in the footer, \(rowTenants) in the rows"
        }
        for (column, statistic) in block.statistics.sorted(by: { $0.key < $1.key }) {
            switch statistic {
            case .bloom(let filter):
                guard let values = decoded.strings(column) else { continue }
                // The probe a query makes (`BlockMetadata.mayContain`), the filter
                // taken once: derived event ids are not in it, their seq is checked
                // instead. A value repeated from the row before is not probed again.
                for (row, value) in values.enumerated()
                where (row == 0 || !sameUTF8(values[row - 1], value)) && !filter.mayContain(value)
                    && (column != .id || !block.mayContain(.id, value))
                {
                    return "the bloom filter of \(column.name) leaves out row \(row)'s value"
                }
            case .values(let kept):
                guard let values = decoded.strings(column) else { continue }
                if let counts = rowCounts(values, of: kept, same: sameUTF8), counts.allSatisfy({ $0 > 0 }) { continue }
                let rows = Self.counts(values.map(ExactString.init))
                return "the value set of \(column.name) is \(Self.describe(kept.map(ExactString.init))), the rows hold \(Self.describe(rows))"
            case .valueCounts(let kept, let keptCounts):
                guard let values = decoded.strings(column) else { continue }
                if rowCounts(values, of: kept, same: sameUTF8) == keptCounts.map(Int.init) { continue }
                let rows = Self.counts(values.map(ExactString.init))
                let footer = zip(kept, keptCounts).map { "\($0): \($1)" }.sorted().joined(separator: ", ")
                return "the value counts of \(column.name) are [\(footer)], the rows hold \(Self.describe(rows))"
            case .enumValues(let kept):
                guard let values = decoded.enumValues(column) else { continue }
                if let counts = rowCounts(values, of: kept, same: ==), counts.allSatisfy({ $0 > 0 }) { continue }
                return "the value set of \(column.name) is \(kept.sorted()), the rows hold \(Set(values).sorted())"
            case .enumCounts(let kept, let keptCounts):
                guard let values = decoded.enumValues(column) else { continue }
                if rowCounts(values, of: kept, same: ==) == keptCounts.map(Int.init) { continue }
                let footer = zip(kept, keptCounts).map { "\($0): \($1)" }.sorted().joined(separator: ", ")
                return "the value counts of \(column.name) are [\(footer)], the rows hold \(Self.describe(Self.counts(values)))"
            }
        }
        return nil
    }

    /// Rows per value of `kept`, or nil when a row holds a value `kept` lacks.
    /// A value kept twice gets its rows at its first place, so its second
    /// count is 0 (the writer keeps each once). No hashing and no allocation
    /// per row: a value set holds at most 64 values, and rows repeat the one
    /// before them often.
    private static func rowCounts<Value>(_ values: [Value], of kept: [Value], same: (Value, Value) -> Bool) -> [Int]? {
        var counts = [Int](repeating: 0, count: kept.count)
        var last = -1
        for value in values {
            if last >= 0 && same(kept[last], value) {
                counts[last] += 1
                continue
            }
            guard let at = kept.firstIndex(where: { same($0, value) }) else { return nil }
            counts[at] += 1
            last = at
        }
        return counts
    }

    private static func counts<Value: Hashable>(_ values: [Value]) -> [Value: Int] {
        var counts: [Value: Int] = [:]
        for value in values { counts[value, default: 0] += 1 }
        return counts
    }

    private static func describe(_ values: [ExactString]) -> String {
        "[" + values.map { "\"\($0.value)\"" }.sorted().joined(separator: ", ") + "]"
    }

    private static func describe<Value: CustomStringConvertible & Hashable>(_ counts: [Value: Int]) -> String {
        "[" + counts.map { "\($0.key): \($0.value)" }.sorted().joined(separator: ", ") + "]"
    }

    /// The leaf of `event` had it been stored at `seq` (its derived id moves with it).
    static func leaf(of event: AuditEvent, atSeq seq: UInt64) -> ChainDigest {
        var moved = event
        if event.id == derivedEventID(receivedAt: event.receivedAt.unixNanos, seq: event.seq).description {
            moved.id = derivedEventID(receivedAt: event.receivedAt.unixNanos, seq: seq).description
        }
        moved.seq = seq
        return HashChain.leaf(of: moved)
    }

    static func hex8(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }
}
