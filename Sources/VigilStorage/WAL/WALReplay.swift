#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import VigilCore

extension WriteAheadLog {
    /// Reads every record of every segment, oldest first, calling `body` with
    /// each payload and its location. Must come before the first write.
    ///
    /// A torn or corrupt record at the end of the LAST segment (a crash
    /// mid-write) is truncated away and reported in `truncatedTail`; so is a
    /// last segment whose header never made it to disk (the file is deleted).
    /// A bad record counts as the end only when no valid record follows it in
    /// the file. Corruption anywhere else — an earlier segment, a bad header,
    /// or a bad record followed by good ones — throws DATA_LOSS naming the file
    /// and offset, unless `repair` is true: then that segment is cut at its
    /// last good record (the cut bytes are saved as `<name>.<offset>.corrupt`),
    /// later segments are renamed `<name>.corrupt`, and `repaired` lists it all.
    /// Records before the corruption have been delivered to `body` either way.
    /// A record that `body` finds does not follow the ones before it
    /// (`WALRecordVerdict.doesNotFollow`) is corruption found there, wherever it is.
    ///
    /// The last segment is fsynced, since after a process crash its pages may
    /// be in the page cache only.
    public func replay(
        repair: Bool, _ body: (_ payload: [UInt8], _ location: WALLocation) throws(VigilError) -> WALRecordVerdict
    ) throws(VigilError) -> WALReplayReport {
        try core.state.withLock { (state: inout WALState) throws(VigilError) in
            if state.closed || state.closing { throw state.closedError() }
            if state.replaying { throw VigilError(.failedPrecondition, "the WAL in \(state.directory) is already being replayed") }
            if state.current != nil {
                throw VigilError(.failedPrecondition, "the WAL in \(state.directory) is replayed before the first write, not after")
            }
            state.replaying = true
        }
        var finished = false
        defer { if !finished { core.state.withLock { $0.replaying = false } } }

        let directory = core.directory
        let numbers = try FileIO.list(directory).compactMap(WALFormat.segmentNumber(ofFileName:)).sorted()
        var report = WALReplayReport()
        var syncs = 0
        for (index, number) in numbers.enumerated() {
            let file = try FileHandleDescriptor.open(core.path(of: number), flags: O_RDWR)
            defer { file.close() }
            let size = try file.size()
            let bytes = size == 0 ? [] : try file.read(count: size, at: 0)
            let segment = SegmentReplay(
                directory: directory, number: number, file: file, later: Array(numbers[(index + 1)...]), repair: repair)
            let result: Result<Bool, VigilError> = bytes.withUnsafeBytes { raw in
                do throws(VigilError) {
                    return .success(try segment.replay(raw, report: &report, syncs: &syncs, body))
                } catch {
                    return .failure(error)
                }
            }
            guard try result.get() else { break }
        }

        let listing = try WALDirectory.scan(directory)
        core.state.withLock { state in
            state.segments = listing.segments
            state.nextNumber = listing.nextNumber
            state.durable = WALLocation(segment: listing.nextNumber, offset: 0)
            state.needsReplay = false
            state.replaying = false
            state.syncCount += syncs
        }
        finished = true
        return report
    }
}

/// The replay of one segment file.
private struct SegmentReplay {
    let directory: String
    let number: UInt64
    let file: FileHandleDescriptor
    /// The segments after this one.
    let later: [UInt64]
    let repair: Bool

    var name: String { WALFormat.fileName(of: number) }
    var isLast: Bool { later.isEmpty }

    /// Delivers the segment's records; returns false when replay stops here.
    func replay(
        _ bytes: UnsafeRawBufferPointer, report: inout WALReplayReport, syncs: inout Int,
        _ body: (_ payload: [UInt8], _ location: WALLocation) throws(VigilError) -> WALRecordVerdict
    ) throws(VigilError) -> Bool {
        if isLast && (bytes.count < WALFormat.headerSize || bytes.allSatisfy({ $0 == 0 })) {
            // A crash while the segment was being created: its header (fsynced
            // before any record was written) never reached the disk, so it holds no record.
            try FileIO.remove(file.path)
            try FileIO.syncDirectory(directory)
            report.truncatedTail = (number, 0, bytes.count)
            return false
        }
        if let problem = WALFormat.headerProblem(bytes, segment: number) {
            try corruption(at: 0, problem, because: isLast ? nil : "\(later.count) later segment(s) follow", bytes, report: &report)
            return false
        }
        report.segments += 1
        var offset = WALFormat.headerSize
        while true {
            switch WALFormat.parseRecord(bytes, at: offset) {
            case .end:
                if isLast {
                    try file.sync()
                    syncs += 1
                }
                return true
            case .record(let payload, let end):
                let verdict = try body(Array(UnsafeRawBufferPointer(rebasing: bytes[payload])), WALLocation(segment: number, offset: end))
                if case .doesNotFollow(let problem) = verdict {
                    try corruption(at: offset, problem, because: nil, bytes, report: &report)
                    return false
                }
                report.records += 1
                offset = end
            case .bad(let problem):
                let following = isLast ? WALFormat.laterRecord(bytes, after: offset) : .none
                if !isLast {
                    try corruption(at: offset, problem, because: "\(later.count) later segment(s) follow", bytes, report: &report)
                } else if case .at(let next) = following {
                    try corruption(at: offset, problem, because: "a valid record follows at offset \(next)", bytes, report: &report)
                } else if following == .undecided {
                    try corruption(
                        at: offset, problem,
                        because: "the \(bytes.count - offset) bytes after it are too many for the tail a crash tears (acknowledged records may lie behind a damaged length)",
                        bytes, report: &report)
                } else {
                    // A torn tail: the records in it were never acknowledged as durable.
                    try file.truncate(to: offset)
                    try file.sync()
                    syncs += 1
                    report.truncatedTail = (number, offset, bytes.count - offset)
                }
                return false
            }
        }
    }

    /// Throws DATA_LOSS, or with `repair` cuts the log at `offset` of this segment.
    private func corruption(
        at offset: Int, _ problem: String, because reason: String?, _ bytes: UnsafeRawBufferPointer, report: inout WALReplayReport
    ) throws(VigilError) {
        let whereText = offset == 0 ? "its header" : "offset \(offset)"
        guard repair else {
            var message = "WAL segment \(file.path) is corrupt at \(whereText): \(problem)"
            if let reason { message += ", and \(reason), so this is not a torn tail from a crash" }
            message += ". No record from there on can be replayed. To start anyway, run with the repair flag "
                + "(vigil serve --repair-wal; replay(repair: true)): it cuts the log at offset \(offset) of \(name), "
                + "after its last good record, and keeps the cut bytes and any later segments as .corrupt files"
            throw VigilError(.dataLoss, message, metadata: ["vigil.wal-segment": file.path, "vigil.wal-offset": String(offset)])
        }
        // The later segments go first, newest first, durably: cut first, this
        // segment would end cleanly and a crash before the renames left the
        // later ones to be replayed after a hole in the log at the next start.
        // Interrupted here, the later segments left still follow the
        // corruption, which the next start finds again.
        for number in later.reversed() {
            let laterName = WALFormat.fileName(of: number)
            try FileIO.rename(directory + "/" + laterName, to: directory + "/" + laterName + WALFormat.corruptSuffix)
            report.repaired.append("renamed \(laterName) to \(laterName)\(WALFormat.corruptSuffix): it follows the corruption")
        }
        if !later.isEmpty { try FileIO.syncDirectory(directory) }
        if offset == 0 {
            try FileIO.rename(file.path, to: file.path + WALFormat.corruptSuffix)
            report.repaired.append("renamed \(name) to \(name)\(WALFormat.corruptSuffix): \(problem)")
        } else {
            let saved = "\(name).\(offset)\(WALFormat.corruptSuffix)"
            try FileIO.writeAtomically(Array(UnsafeRawBufferPointer(rebasing: bytes[offset...])), to: directory + "/" + saved)
            try file.truncate(to: offset)
            try file.sync()
            report.repaired.append(
                "cut \(name) at offset \(offset) (\(problem)); the \(bytes.count - offset) bytes cut are kept in \(saved)")
        }
        try FileIO.syncDirectory(directory)
    }
}
