import VigilCore

extension ColumnarEventStore {
    /// Verifies what this store holds while it runs: the parts and chain
    /// files as of one moment (taken between flushes, merges and retention
    /// passes, which wait only for that moment), the batches in memory that
    /// are not in parts yet, and the WAL records that hold them (checksums,
    /// and the same bytes as in memory). Runs on a thread of its own, so that
    /// ingest, flushes and queries go on; stops with CANCELLED between blocks
    /// once `options.isCancelled` says so.
    public func verify(_ options: VerificationOptions) async throws(VigilError) -> IntegrityReport {
        let directory = self.options.directory
        let executor = try BlockingWorkExecutor(threads: 1)
        defer { executor.shutdown() }
        return try await withTaskExecutorPreference(executor) { () async throws(VigilError) -> IntegrityReport in
            // Checkpoints before the snapshot, as a backup lists them before
            // its cut: each signs a seq the snapshot holds. Listed after it,
            // one the server signed while the memory segment and the WAL were
            // read lay past the snapshot's events, reported MISSING.
            var checkpoints: [Checkpoints.Stored] = []
            if let folder = options.checkpointDirectory { checkpoints = try Checkpoints.list(folder) }
            let (view, chainState, flushed, expired) = try await maintenanceLock.withLock {
                () async throws(VigilError) -> (Snapshot, ChainState, UInt64, [(path: String, file: ExpiredLeaves)]) in
                let chainState = chain.withLock { $0 }
                var expired: [(path: String, file: ExpiredLeaves)] = []
                for file in chainState.expiredFiles where file.maxSeq > chainState.ledger.startSeq {
                    expired.append((file.path, try ExpiredLeaves.read(from: directory + "/" + file.path)))
                }
                return (snapshot(), chainState, manifest.withLock { $0.flushedThroughSeq }, expired)
            }
            var input = VerificationInput()
            input.ledger = chainState.ledger
            input.ledgerLocation = chainState.ledgerPath
            input.flushedThroughSeq = flushed
            input.parts = view.parts.map { .init(path: $0.entry.path, reader: $0.reader) }
            input.expiredFiles = expired
            var merged: [UInt64: ExpiredLeaves.Entry] = [:]
            for (_, file) in expired {
                for entry in file.entries where entry.seq > chainState.ledger.startSeq { merged[entry.seq] = entry }
            }
            input.expired = merged.values.sorted { $0.seq < $1.seq }
            for chunk in view.chunks where chunk.firstSeq > flushed && chunk.lastSeq <= view.visibleSeq {
                if options.isCancelled() { throw VigilError(.cancelled, "verification was cancelled") }
                input.unflushed.append(UnflushedBatch(firstSeq: chunk.firstSeq, leaves: chunk.leaves(), location: "memory (not yet flushed)"))
            }
            try input.readWAL(directory + "/wal", prefix: "wal/", compareWith: input.unflushed)
            // Between changes, with the generation in force: a change made
            // meanwhile would pair one generation's file with the next's statement.
            try retentionSettings.writer.withLock { _ throws(VigilError) in
                try input.readRetentionFiles(directory)
                input.retentionGeneration = retentionSettings.state.withLock { $0.generation }
            }
            if let folder = options.checkpointDirectory {
                input.checkpoints = checkpoints
                input.superseded = Checkpoints.supersededSets(in: folder)
                input.checkpointPrefix = folder == directory + "/checkpoints" ? "checkpoints/" : folder + "/"
                input.checkpointDirectory = folder
            }
            return try IntegrityVerifier.run(input, options: options)
        }
    }
}

/// Verification of a data directory that no server has open.
public enum DirectoryVerification {
    /// Verifies `directory` without changing it. Holds its LOCK meanwhile,
    /// so that no server starts on it; refuses (FAILED_PRECONDITION) when a
    /// server holds it already: a running server changes the files under a
    /// reader's feet — ask it instead (`Verify`).
    public static func verify(directory: String, options: VerificationOptions) throws(VigilError) -> IntegrityReport {
        guard FileIO.exists(directory + "/MANIFEST") || FileIO.exists(directory + "/wal") else {
            throw VigilError(.notFound, "\(directory) is not a Vigil data directory (it has no MANIFEST and no wal/)")
        }
        let lock = Glibc.open(directory + "/LOCK", O_RDONLY | O_CLOEXEC)
        defer { if lock >= 0 { Glibc.close(lock) } }
        if lock >= 0 && flock(lock, LOCK_EX | LOCK_NB) != 0 {
            throw VigilError(
                .failedPrecondition,
                "\(directory) is in use by a running server (its LOCK is held); verify through the server instead: vigil verify --server HOST:PORT")
        }
        let input = try VerificationInput.gather(directory: directory, checkpointDirectory: options.checkpointDirectory)
        return try IntegrityVerifier.run(input, options: options)
    }
}

#if canImport(Glibc)
import Glibc
#endif
