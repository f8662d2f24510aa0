import Glibc
import Testing
import VigilCore
@testable import VigilStorage

/// The disk-full state machine as a value: each change is reported once, a
/// refusal after a failed write lets one probe through a second, the reserve
/// decides by itself, and an I/O failure lasts until restart.
@Suite("Write availability")
struct WriteAvailabilityTests {
    let start = ContinuousClock.now
    let enospc = VigilError(.resourceExhausted, "write /data/wal/0000000000000002.wal: No space left on device", metadata: [FileIO.errnoKey: "ENOSPC"])
    let fullReason = "the data disk is full: write /data/wal/0000000000000002.wal: No space left on device; free space under /data or lower retention; ingest resumes by itself"

    func refusal(_ availability: inout WriteAvailability, at instant: ContinuousClock.Instant) -> VigilError? {
        do throws(VigilError) {
            try availability.admit(now: instant)
            return nil
        } catch {
            return error
        }
    }

    @Test("what a failed WAL write means: out of descriptors is the batch's refusal only, ENOSPC a disk-full refusal, EIO and a poisoned log a refusal until restart")
    func failureKinds() {
        func ioError(_ code: Int32) -> VigilError {
            errno = code
            return FileIO.error("open", "/data/wal/0000000000000002.wal")
        }
        #expect(WriteAvailability.Failure(walWriteFailure: ioError(EMFILE), poison: nil) == .shortage)
        #expect(WriteAvailability.Failure(walWriteFailure: ioError(ENFILE), poison: nil) == .shortage)
        #expect(WriteAvailability.Failure(walWriteFailure: ioError(ENOSPC), poison: nil) == .diskFull)
        #expect(WriteAvailability.Failure(walWriteFailure: ioError(EDQUOT), poison: nil) == .diskFull)
        #expect(WriteAvailability.Failure(walWriteFailure: ioError(EIO), poison: nil) == .failing)
        let poison = ioError(EIO)
        #expect(WriteAvailability.Failure(walWriteFailure: ioError(EMFILE), poison: poison) == .poisoned(poison))
        #expect(WriteAvailability.Failure(walWriteFailure: VigilError(.unavailable, "the store is shutting down"), poison: poison) == .batchOwn)
    }

    @Test("a failed write refuses until a probe succeeds; entering and leaving are reported once each")
    func failedWriteThenProbe() {
        var availability = WriteAvailability(directory: "/data", reserveBytes: 0)
        #expect(refusal(&availability, at: start) == nil)
        var change = availability.diskFull(enospc, now: start)
        #expect(change == .refused(reason: fullReason))
        change = availability.diskFull(enospc, now: start + .milliseconds(10))
        #expect(change == nil, "already refused: not reported again")
        let expected = VigilError(.unavailable, fullReason, metadata: ["vigil.retry-after-ms": "1000"])
        #expect(refusal(&availability, at: start + .milliseconds(500)) == expected)
        // A second after the last failure one caller is the probe; the others are still refused.
        #expect(refusal(&availability, at: start + .milliseconds(1_010)) == nil)
        #expect(refusal(&availability, at: start + .milliseconds(1_020)) == expected)
        change = availability.writeSucceeded(now: start + .seconds(2))
        #expect(change == .resumed(after: .seconds(2)))
        change = availability.writeSucceeded(now: start + .seconds(3))
        #expect(change == nil)
        #expect(availability.reason == nil)
        #expect(refusal(&availability, at: start + .seconds(3)) == nil)
    }

    @Test("under the reserve: refused until a free-space check finds it free again, whatever writes succeed meanwhile")
    func reserve() {
        var availability = WriteAvailability(directory: "/data", reserveBytes: 64 << 20)
        var due = availability.spaceCheckDue(now: start)
        #expect(due)
        due = availability.spaceCheckDue(now: start + .milliseconds(50))
        #expect(!due, "at most every 100 ms")
        let reason = "the data disk is full: 10 MiB free, under the 64 MiB kept free for flushes, merges and retention (--min-free-disk-mb); free space under /data or lower retention; ingest resumes by itself"
        var change = availability.spaceChecked(freeBytes: 10 << 20, now: start)
        #expect(change == .refused(reason: reason))
        change = availability.writeSucceeded(now: start + .seconds(1))
        #expect(change == nil, "a flush that succeeds does not end a reserve refusal")
        #expect(refusal(&availability, at: start + .seconds(5)) == VigilError(.unavailable, reason, metadata: ["vigil.retry-after-ms": "1000"]))
        due = availability.spaceCheckDue(now: start + .seconds(5))
        #expect(due)
        change = availability.spaceChecked(freeBytes: 100 << 20, now: start + .seconds(5))
        #expect(change == .resumed(after: .seconds(5)))
        #expect(refusal(&availability, at: start + .seconds(5)) == nil)
    }

    @Test("a full disk found by a write, then under the reserve: the reserve decides when it ends, and it is reported once")
    func writeFailureThenReserve() {
        var availability = WriteAvailability(directory: "/data", reserveBytes: 64 << 20)
        var change = availability.diskFull(enospc, now: start)
        #expect(change == .refused(reason: fullReason))
        change = availability.spaceChecked(freeBytes: 1 << 20, now: start + .milliseconds(100))
        #expect(change == nil)
        change = availability.writeSucceeded(now: start + .seconds(2))
        #expect(change == nil)
        #expect(refusal(&availability, at: start + .seconds(2)) != nil, "no probe under the reserve")
        change = availability.spaceChecked(freeBytes: 65 << 20, now: start + .seconds(3))
        #expect(change == .resumed(after: .seconds(3)))
    }

    @Test("an I/O failure refuses until restart: no probe, no free-space check and no successful write ends it")
    func ioFailure() {
        var availability = WriteAvailability(directory: "/data", reserveBytes: 64 << 20)
        let eio = VigilError(.unavailable, "fsync /data/wal/0000000000000002.wal: Input/output error", metadata: [FileIO.errnoKey: "EIO"])
        let reason = """
            writes are refused after an I/O error on the data disk (fsync /data/wal/0000000000000002.wal: Input/output error): \
            after a failed write or fsync it is uncertain what the disk holds; check the disk (dmesg, SMART), then restart \
            vigil serve, which replays the WAL from the disk
            """
        var change = availability.failed(eio)
        #expect(change == .refused(reason: reason))
        change = availability.failed(eio)
        #expect(change == nil)
        change = availability.diskFull(enospc, now: start)
        #expect(change == nil)
        change = availability.writeSucceeded(now: start + .seconds(2))
        #expect(change == nil)
        change = availability.spaceChecked(freeBytes: 100 << 20, now: start + .seconds(2))
        #expect(change == nil)
        #expect(refusal(&availability, at: start + .seconds(60)) == VigilError(.unavailable, reason))
        #expect(availability.reason == reason)
    }
}
