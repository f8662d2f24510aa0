#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Testing
import VigilCore
@testable import VigilStorage

/// Helpers of the WAL tests (a namespace, so as not to clash with other tests in the target).
enum WALTest {
    /// A fresh directory under /tmp for one test, removed (with everything in it) afterwards.
    static func withDirectory<Result>(_ body: (_ walDirectory: String) async throws -> Result) async throws -> Result {
        var template = Array("/tmp/vigil-wal-test-XXXXXX".utf8CString)
        let root = template.withUnsafeMutableBufferPointer { buffer -> String? in
            guard let path = mkdtemp(buffer.baseAddress!) else { return nil }
            return String(cString: path)
        }
        let directory = try #require(root, "mkdtemp failed")
        defer { removeTree(directory) }
        // A directory that does not exist yet: the WAL creates it.
        return try await body(directory + "/wal")
    }

    static func removeTree(_ path: String) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        if info.st_mode & S_IFMT == S_IFDIR {
            for name in (try? FileIO.list(path)) ?? [] { removeTree(path + "/" + name) }
            _ = rmdir(path)
        } else {
            _ = unlink(path)
        }
    }

    static func readFile(_ path: String) throws -> [UInt8] {
        let file = try FileHandleDescriptor.open(path, flags: O_RDONLY)
        defer { file.close() }
        let size = try file.size()
        return size == 0 ? [] : try file.read(count: size, at: 0)
    }

    static func writeFile(_ path: String, _ bytes: [UInt8]) throws {
        let file = try FileHandleDescriptor.open(path, flags: O_WRONLY | O_CREAT | O_TRUNC)
        defer { file.close() }
        try bytes.withUnsafeBytes { raw throws in try file.write(raw, at: 0) }
    }

    static func fileSize(_ path: String) throws -> Int {
        let file = try FileHandleDescriptor.open(path, flags: O_RDONLY)
        defer { file.close() }
        return try file.size()
    }

    static func segmentPath(_ directory: String, _ segment: UInt64) -> String {
        directory + "/" + WALFormat.fileName(of: segment)
    }

    static func open(_ directory: String, segmentBytes: Int = 64 * 1024 * 1024, sync: SyncPolicy = .never) throws -> WriteAheadLog {
        var options = WALOptions(directory: directory)
        options.segmentBytes = segmentBytes
        options.sync = sync
        return try WriteAheadLog(options: options)
    }

    /// Opens the log in `directory`, replays it, and closes it.
    static func replay(_ directory: String, repair: Bool = false) throws -> WALReplayed {
        let wal = try open(directory)
        defer { try? wal.close() }
        return try replay(wal, repair: repair)
    }

    static func replay(_ wal: WriteAheadLog, repair: Bool = false) throws -> WALReplayed {
        var replayed = WALReplayed()
        replayed.report = try wal.replay(repair: repair) { (payload, location) throws(VigilError) in
            replayed.records.append((payload, location))
            return .replayed
        }
        return replayed
    }

    /// The error `body` throws, as a VigilError.
    /// `pieces` as raw buffers, each in memory of its own (so that a write
    /// that ran past one piece into the next could not pass by accident).
    static func withRawPieces<Result>(_ pieces: [[UInt8]], _ body: ([UnsafeRawBufferPointer]) throws -> Result) rethrows -> Result {
        let buffers = pieces.map { piece in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: piece.count + 1, alignment: 1)
            buffer.copyBytes(from: piece)
            buffer[piece.count] = 0xEE
            return buffer
        }
        defer { for buffer in buffers { buffer.deallocate() } }
        return try body(zip(buffers, pieces).map { UnsafeRawBufferPointer(rebasing: $0[..<$1.count]) })
    }

    static func vigilError(_ body: () throws -> Void) -> VigilError? {
        do {
            try body()
            return nil
        } catch let error as VigilError {
            return error
        } catch {
            Issue.record("not a VigilError: \(error)")
            return nil
        }
    }

    static func asyncVigilError(_ body: () async throws -> Void) async -> VigilError? {
        do {
            try await body()
            return nil
        } catch let error as VigilError {
            return error
        } catch {
            Issue.record("not a VigilError: \(error)")
            return nil
        }
    }
}

/// Deterministic bytes (SplitMix64), so that a failure reproduces.
struct WALTestBytes {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func bytes(_ count: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count + 8)
        while bytes.count < count {
            withUnsafeBytes(of: next()) { bytes.append(contentsOf: $0) }
        }
        return Array(bytes.prefix(count))
    }

    mutating func size(in range: Range<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.count))
    }
}

struct WALReplayed {
    var records: [(payload: [UInt8], location: WALLocation)] = []
    var report = WALReplayReport()
    var payloads: [[UInt8]] { records.map(\.payload) }
    var locations: [WALLocation] { records.map(\.location) }
}

