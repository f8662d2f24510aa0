#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import CVigilSystem
import VigilCore

/// Thin, throwing wrappers over the POSIX calls the storage engine needs, so
/// every failure carries the path and errno text. Storage I/O errors are
/// UNAVAILABLE (the disk, not the caller, is at fault).
public struct FileHandleDescriptor: Sendable {
    public let fd: Int32
    public let path: String

    public static func open(_ path: String, flags: Int32, mode: mode_t = 0o600) throws(VigilError) -> FileHandleDescriptor {
        let fd = Glibc.open(path, flags | O_CLOEXEC, mode)
        guard fd >= 0 else { throw FileIO.error("open", path) }
        return FileHandleDescriptor(fd: fd, path: path)
    }

    public func close() {
        _ = Glibc.close(fd)
    }

    public func size() throws(VigilError) -> Int {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw FileIO.error("stat", path) }
        return Int(info.st_size)
    }

    /// Writes all of `bytes` at `offset`.
    public func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(VigilError) {
        var done = 0
        while done < bytes.count {
            let count = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw FileIO.error("write", path) }
            done += count
        }
    }

    /// Writes `pieces` one after another from `offset`, in one pwritev()
    /// when the kernel takes them all (it may stop short; the rest follows).
    public func write(_ pieces: [UnsafeRawBufferPointer], at offset: Int) throws(VigilError) {
        var vectors = pieces.compactMap { piece in
            piece.isEmpty ? nil : iovec(iov_base: UnsafeMutableRawPointer(mutating: piece.baseAddress!), iov_len: piece.count)
        }
        var first = 0
        var position = offset
        while first < vectors.count {
            let count = vectors.withUnsafeMutableBufferPointer { all in
                pwritev(fd, all.baseAddress! + first, Int32(min(all.count - first, Self.maximumVectors)), off_t(position))
            }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw FileIO.error("write", path) }
            position += count
            // Step past what was written: whole pieces, then into a partial one.
            var left = count
            while first < vectors.count, left >= vectors[first].iov_len {
                left -= vectors[first].iov_len
                first += 1
            }
            if left > 0 {
                vectors[first].iov_base += left
                vectors[first].iov_len -= left
            }
        }
    }

    /// IOV_MAX on Linux (a macro Swift does not import): the most pieces one pwritev() takes.
    static let maximumVectors = 1024

    /// Appends all of `bytes` (for files opened with O_APPEND).
    public func append(_ bytes: UnsafeRawBufferPointer) throws(VigilError) {
        var done = 0
        while done < bytes.count {
            let count = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw FileIO.error("write", path) }
            done += count
        }
    }

    /// Reads exactly `count` bytes at `offset`, or throws DATA_LOSS when the file is shorter.
    public func read(count: Int, at offset: Int) throws(VigilError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let got = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset + done)) }
            if got < 0 && errno == EINTR { continue }
            if got < 0 { throw FileIO.error("read", path) }
            if got == 0 { throw VigilError(.dataLoss, "\(path) ends at \(offset + done) bytes, before the \(count) bytes expected at offset \(offset)") }
            done += got
        }
        return bytes
    }

    /// Starts writing `count` bytes from `offset` to the disk without waiting
    /// (Linux: `sync_file_range(SYNC_FILE_RANGE_WRITE)`; elsewhere nothing),
    /// so that a later `sync()` has less left to wait for. Advisory: false
    /// when the kernel refused (not a regular file, say); a disk failure is
    /// left for `sync()` to report.
    @discardableResult
    public func startWriteback(offset: Int, count: Int) -> Bool {
        vigil_start_writeback(fd, Int64(offset), Int64(count)) == 0
    }

    public func sync() throws(VigilError) {
        guard fsync(fd) == 0 else { throw FileIO.error("fsync", path) }
    }

    public func truncate(to size: Int) throws(VigilError) {
        guard ftruncate(fd, off_t(size)) == 0 else { throw FileIO.error("truncate", path) }
    }
}

public enum FileIO {
    static func error(_ operation: String, _ path: String) -> VigilError {
        let code = errno
        let reason = String(cString: strerror(code))
        let full = code == ENOSPC || code == EDQUOT
        return VigilError(
            full ? .resourceExhausted : .unavailable, "\(operation) \(path): \(reason)",
            metadata: [errnoKey: errnoName(code)])
    }

    /// The metadata key of a storage I/O error that names its errno (`ENOSPC`, `EIO`, …).
    public static let errnoKey = "vigil.errno"

    /// Whether `error` is a storage write that failed for want of space or
    /// quota: the one I/O failure that goes away by itself when space returns.
    public static func isDiskFull(_ error: VigilError) -> Bool {
        error.metadata[errnoKey] == "ENOSPC" || error.metadata[errnoKey] == "EDQUOT"
    }

    /// Whether `error` is a shortage of descriptors or kernel memory
    /// (EMFILE, ENFILE, ENOMEM, EAGAIN): a call that failed for it (an open,
    /// mostly) wrote nothing, and the shortage passes by itself.
    public static func isResourceShortage(_ error: VigilError) -> Bool {
        ["EMFILE", "ENFILE", "ENOMEM", "EAGAIN"].contains(error.metadata[errnoKey])
    }

    /// Whether `error` came from a system call on a storage file (and not,
    /// say, from a closed store or a bad argument).
    public static func isIOError(_ error: VigilError) -> Bool {
        error.metadata[errnoKey] != nil
    }

    static func errnoName(_ code: Int32) -> String {
        switch code {
        case ENOSPC: "ENOSPC"
        case EDQUOT: "EDQUOT"
        case EIO: "EIO"
        case EROFS: "EROFS"
        case EACCES: "EACCES"
        case EPERM: "EPERM"
        case ENOENT: "ENOENT"
        case EEXIST: "EEXIST"
        case ENOTDIR: "ENOTDIR"
        case EISDIR: "EISDIR"
        case EMFILE: "EMFILE"
        case ENFILE: "ENFILE"
        case ENOMEM: "ENOMEM"
        case EAGAIN: "EAGAIN"
        default: "errno \(code)"
        }
    }

    /// Bytes available to an unprivileged writer on the file system that holds `path`.
    public static func freeBytes(_ path: String) throws(VigilError) -> Int {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { throw error("statvfs", path) }
        let bytes = UInt64(info.f_bavail).multipliedReportingOverflow(by: UInt64(info.f_frsize))
        return bytes.overflow ? Int.max : Int(clamping: bytes.partialValue)
    }

    /// Creates `path` and its parents (like `mkdir -p`), each new directory
    /// durably: its parent is fsynced, or a file later made durable inside
    /// it (a flush's part in a new day's directory, whose WAL records are
    /// then deleted) could be lost with the directory's own entry. New
    /// directories are the owner's only (0700).
    public static func makeDirectory(_ path: String) throws(VigilError) {
        var prefix = path.hasPrefix("/") ? "/" : ""
        var parent = path.hasPrefix("/") ? "/" : "."
        for component in path.split(separator: "/") {
            prefix += component + "/"
            // Owner only: what lies below is audit events (addresses, e-mails,
            // who did what), and a data directory, backup or archive Vigil
            // makes itself must not be readable by every user of the host.
            if mkdir(prefix, 0o700) == 0 {
                try syncDirectory(parent)
            } else if errno != EEXIST {
                throw error("mkdir", prefix)
            }
            parent = prefix
        }
    }

    /// fsyncs a directory, so that a rename or a new file in it is durable.
    /// An open that fails for a shortage of descriptors is tried again up to
    /// `shortageRetries` times, 100 ms apart (nothing was synced yet: there
    /// is nothing in doubt to give up on).
    public static func syncDirectory(_ path: String, shortageRetries: Int = 0) throws(VigilError) {
        var fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        var retries = shortageRetries
        while fd < 0 && (errno == EMFILE || errno == ENFILE) && retries > 0 {
            retries -= 1
            usleep(100_000)
            fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        }
        guard fd >= 0 else { throw error("open", path) }
        defer { _ = Glibc.close(fd) }
        guard fsync(fd) == 0 else { throw error("fsync", path) }
    }

    /// Atomically replaces `destination` with `source` (same file system).
    public static func rename(_ source: String, to destination: String) throws(VigilError) {
        guard Glibc.rename(source, destination) == 0 else { throw error("rename", source) }
    }

    /// A second name for `source` (same file system). An existing
    /// `destination` that is already `source` (a link left by an earlier,
    /// interrupted attempt) is fine; any other file there is refused, not
    /// replaced or passed over.
    public static func link(_ source: String, to destination: String) throws(VigilError) {
        if Glibc.link(source, destination) == 0 { return }
        guard errno == EEXIST else { throw error("link", source) }
        var from = stat(), to = stat()
        guard lstat(source, &from) == 0, lstat(destination, &to) == 0 else { throw error("stat", destination) }
        guard from.st_dev == to.st_dev, from.st_ino == to.st_ino else {
            throw VigilError(.failedPrecondition, "\(destination) already exists and is another file; move it away")
        }
    }

    public static func remove(_ path: String) throws(VigilError) {
        guard unlink(path) == 0 || errno == ENOENT else { throw error("unlink", path) }
    }

    public static func removeDirectory(_ path: String) throws(VigilError) {
        guard rmdir(path) == 0 || errno == ENOENT else { throw error("rmdir", path) }
    }

    /// The device (file system) the directory `path` is on (through a symbolic link to it).
    public static func device(ofDirectory path: String) throws(VigilError) -> UInt64 {
        var info = stat()
        guard lstat(path + "/.", &info) == 0 else { throw error("stat", path) }
        return UInt64(info.st_dev)
    }

    public static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    /// The names in a directory (not "." or ".."), sorted; empty when it does not exist.
    public static func list(_ path: String) throws(VigilError) -> [String] {
        guard let directory = opendir(path) else {
            if errno == ENOENT { return [] }
            throw error("opendir", path)
        }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Writes `bytes` to `path` durably and atomically: a temporary file,
    /// fsync, rename over `path`, fsync of the directory. When it throws
    /// before the rename (a full disk, say), `path` is untouched and the
    /// temporary file is gone. With `syncDirectory: false` the caller fsyncs
    /// the directory itself, to tell a failed write (nothing changed) from a
    /// failed directory fsync (the new file is in place but maybe not durable).
    public static func writeAtomically(
        _ bytes: [UInt8], to path: String, mode: mode_t = 0o600, syncDirectory: Bool = true
    ) throws(VigilError) {
        let temporary = path + ".tmp"
        // A new file, never one found there: a symbolic link planted under
        // the predictable name would have the write land wherever it points
        // (another directory's signed files, say).
        try remove(temporary)
        let file = try FileHandleDescriptor.open(temporary, flags: O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode: mode)
        do throws(VigilError) {
            let written: VigilError? = bytes.withUnsafeBytes { raw in
                do throws(VigilError) { try file.write(raw, at: 0) } catch { return error }
                return nil
            }
            if let written { throw written }
            try file.sync()
        } catch {
            file.close()
            try? remove(temporary)
            throw error
        }
        file.close()
        do throws(VigilError) { try rename(temporary, to: path) } catch {
            try? remove(temporary)
            throw error
        }
        if syncDirectory { try Self.syncDirectory(directoryName(of: path)) }
    }

    /// Writes `count` zero bytes to `path`, fsyncs them and removes the
    /// file: whether the disk takes a write now.
    public static func probeWrite(_ path: String, bytes count: Int) throws(VigilError) {
        let file = try FileHandleDescriptor.open(path, flags: O_WRONLY | O_CREAT | O_TRUNC)
        defer {
            file.close()
            try? remove(path)
        }
        let written: VigilError? = [UInt8](repeating: 0, count: count).withUnsafeBytes { raw in
            do throws(VigilError) { try file.write(raw, at: 0) } catch { return error }
            return nil
        }
        if let written { throw written }
        try file.sync()
    }

    public static func directoryName(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}
