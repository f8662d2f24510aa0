import VigilCore

extension ColumnarEventStore {
    /// At start, with a signer, once the directory has passed its checks: the
    /// live removals (`live`: the chain's start, the live expired-leaves
    /// files) each need a statement.
    ///
    /// - Before statements have begun in the checkpoint directory (no
    ///   `begin.retention`: a new key, or a store from before statements),
    ///   each removal without one is signed as found (ADOPTED), and then
    ///   `begin.retention` is written.
    /// - After, none is adopted: a removal without a valid statement was made
    ///   without the key (a deletion passed off as retention, or a server run
    ///   without `--checkpoint-key`), and adopting it at every restart would
    ///   launder it. It is reported (`retentionUnattested`), and verify
    ///   reports it too.
    ///
    /// Then the statements of removals that never committed are set aside.
    /// A failure is reported, not thrown: the store starts, and verify says
    /// what is not attested.
    static func attestAtStart(
        _ live: [RetentionStatements.Fact], startSeq: UInt64, signer: RetentionStatements.Signer, retention: String,
        report: inout RecoveryReport
    ) {
        var began = false
        switch RetentionStatements.began(in: signer.directory, trusted: signer.key.publicKey) {
        case nil:
            break
        case .success?:
            began = true
        case .failure(let error)?:
            // Another key's, or damaged: not a licence to adopt.
            began = true
            report.retentionAdoptionFailure = "\(signer.directory)/\(RetentionStatements.beginFileName) cannot be trusted (\(error.message)); no removal is signed as found"
        }
        for fact in live {
            if case .success = RetentionStatements.check(fact, in: signer.directory, trusted: signer.key.publicKey) { continue }
            if began {
                report.retentionUnattested.append(fact.description)
                continue
            }
            do throws(VigilError) {
                try RetentionStatements.attest(fact, reason: .adopted, retention: retention, signer: signer)
                report.retentionAdopted.append(fact.description)
            } catch {
                report.retentionAdoptionFailure = "cannot sign \(fact.description) into \(signer.directory): \(error.message)"
                return
            }
        }
        do throws(VigilError) {
            if !began { try RetentionStatements.begin(signer: signer, retention: retention) }
        } catch {
            report.retentionAdoptionFailure = "cannot sign the beginning of retention statements into \(signer.directory): \(error.message)"
            return
        }
        do throws(VigilError) {
            report.retentionStatementsSetAside = try RetentionStatements.setAsideUnused(in: signer.directory, live: live, startSeq: startSeq)
        } catch {
            report.retentionAdoptionFailure = "cannot set aside the retention statements of removals that never committed in \(signer.directory): \(error.message)"
        }
    }
}
