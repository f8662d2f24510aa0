import VigilCore

/// What a retention pass checks before it removes a part whole. It decides
/// from the index (the MANIFEST entry and the part's footer: its tenants and
/// newest time), which is checksummed, not signed; whoever could rewrite a
/// part's footer and entry could otherwise have the server delete events
/// that are not expired, and sign the removal.
extension ColumnarEventStore {
    /// The parts a retention pass at `now` may remove whole: those whose
    /// index says every event expired, once their rows agree
    /// (`unexpiredRow`) and the events the cut would summarise verify
    /// against the chain (`chainProblem`). A part that fails stays and is
    /// reported (as an unreadable part is); a problem no part explains (seqs
    /// missing) stops the pass. Parts never change, so what this found holds
    /// when the pass removes them: the cut can only be lower by then.
    func removableForRetention(now: Int64) throws(VigilError) -> Set<String> {
        let parts = state.withLock { $0.parts }
        let retention = retentionSettings.current
        var expiring: [LivePart] = []
        for part in parts where Self.isWhollyExpired(part, retention: retention, now: now) {
            do throws(VigilError) {
                if let row = try Self.unexpiredRow(of: part, retention: retention, now: now) {
                    reportUnreadable(part, VigilError(.dataLoss, row))
                    continue
                }
                expiring.append(part)
            } catch {
                guard Self.isUnreadablePart(error) else { throw error }
                reportUnreadable(part, error)
            }
        }
        let (ledger, ledgerPath) = chain.withLock { ($0.ledger, $0.ledgerPath) }
        let flushedThrough = manifest.withLock { $0.flushedThroughSeq }
        while !expiring.isEmpty {
            let removed = Set(expiring.map(\.entry.path))
            let kept = parts.filter { !removed.contains($0.entry.path) && $0.entry.rows > 0 }
            let lowestKept = min(kept.map(\.entry.minSeq).min() ?? .max, flushedThrough + 1)
            let cut = ledger.anchors.last { $0.lastSeq < lowestKept }?.lastSeq ?? ledger.startSeq
            guard let (path, problem) = try chainProblem(removing: expiring, ledger: ledger, ledgerPath: ledgerPath, through: cut) else { break }
            guard let path, let part = expiring.first(where: { $0.entry.path == path }) else {
                throw VigilError(
                    .dataLoss,
                    "retention stopped before removing events through seq \(cut): they do not verify against the hash chain (\(problem.line)); run vigil verify --data-dir and restore from a backup")
            }
            reportUnreadable(part, VigilError(.dataLoss, "its events do not verify against the hash chain, so retention keeps it: \(problem.line)"))
            expiring.removeAll { $0.entry.path == path }
        }
        return Set(expiring.map(\.entry.path))
    }

    /// The first row of `part` that is not expired under `retention` at
    /// `now`, described; nil when every row is. Reads the tenant and time
    /// columns of every block (not the events).
    static func unexpiredRow(of part: LivePart, retention: RetentionSettings.Values, now: Int64) throws(VigilError) -> String? {
        for block in part.reader.blocks {
            let columns = try part.reader.readColumns(block: block.index, [.tenant, .occurredAt, .presence])
            guard let tenants = columns.tenant, tenants.count == block.rowCount else {
                throw VigilError(.dataLoss, "block \(block.index) has no tenant for each of its \(block.rowCount) rows")
            }
            for row in 0..<block.rowCount {
                let occurredAt = columns.occurredAtIfPresent(row)
                guard retention.cutoff(of: tenants[row], now: now) <= occurredAt else { continue }
                return "block \(block.index) row \(row) (tenant \(tenants[row].prefix(64)), occurred_at \(formatTime(occurredAt))) is not expired, "
                    + "yet the part's index says every event in it is: the index was changed; run vigil verify --data-dir"
            }
        }
        return nil
    }

    /// Checks the chain through `cut` (retention's new start) over `parts`,
    /// which hold every stored event from the chain's start to it, and the
    /// expired leaves in that range: the events a cut summarises by one head
    /// are never read again, so they are checked against the anchors before
    /// they go. Returns the first problem found (the part it names, if any),
    /// or nil when they verify.
    func chainProblem(removing parts: [LivePart], ledger: ChainLedger, ledgerPath: String?, through cut: UInt64)
        throws(VigilError) -> (path: String?, problem: IntegrityProblem)?
    {
        guard cut > ledger.startSeq else { return nil }
        var input = VerificationInput()
        input.ledger = ledger
        input.ledgerLocation = ledgerPath
        input.flushedThroughSeq = manifest.withLock { $0.flushedThroughSeq }
        input.parts = parts.map { .init(path: $0.entry.path, reader: $0.reader) }
        var expired: [UInt64: ExpiredLeaves.Entry] = [:]
        for file in chain.withLock({ $0.expiredFiles }) where file.maxSeq > ledger.startSeq {
            for entry in try ExpiredLeaves.read(from: options.directory + "/" + file.path).entries
            where entry.seq > ledger.startSeq && entry.seq <= cut {
                expired[entry.seq] = entry
            }
        }
        input.expired = expired.values.sorted { $0.seq < $1.seq }
        var verification = VerificationOptions()
        verification.fromSeq = ledger.startSeq + 1
        verification.toSeq = cut
        verification.maxProblems = 1
        let report = try IntegrityVerifier.run(input, options: verification)
        guard let problem = report.problems.first else { return nil }
        let path = parts.map(\.entry.path).first { problem.location?.hasPrefix($0) == true }
        return (path, problem)
    }
}
