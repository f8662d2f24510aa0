import Crypto
import VigilCore

#if canImport(Glibc)
import Glibc
#endif

/// Hard links, copies and SHA-256 digests of whole files: what backups and
/// restores are made of.
enum BackupFileOperations {
    /// Bytes read or written per system call.
    static let chunkBytes = 1 << 20

    /// Hard-links `source` as `destination`. False when they are on different
    /// file systems (or the file system has no hard links): copy instead.
    static func link(_ source: String, to destination: String) throws(VigilError) -> Bool {
        if Glibc.link(source, destination) == 0 { return true }
        switch errno {
        case EXDEV, EPERM, EMLINK, EOPNOTSUPP: return false
        default: throw FileIO.error("link \(source) to", destination)
        }
    }

    /// Copies the first `length` bytes of `source` (all of it when nil) to
    /// the new file `destination`, with the same permissions (the tokens file
    /// stays private), and fsyncs it. Returns the bytes copied and their
    /// SHA-256; `progress` gets the bytes of each chunk.
    static func copy(
        _ source: String, to destination: String, length: Int? = nil, progress: (Int) -> Void = { _ in }
    ) throws(VigilError) -> (size: Int, sha256: String) {
        let input = try FileHandleDescriptor.open(source, flags: O_RDONLY)
        defer { input.close() }
        var info = stat()
        guard fstat(input.fd, &info) == 0 else { throw FileIO.error("stat", source) }
        let total = length ?? Int(info.st_size)
        let output = try FileHandleDescriptor.open(destination, flags: O_WRONLY | O_CREAT | O_EXCL, mode: info.st_mode & 0o777)
        defer { output.close() }
        var hasher = SHA256()
        var offset = 0
        while offset < total {
            let chunk = try input.read(count: min(chunkBytes, total - offset), at: offset)
            let failure: VigilError? = chunk.withUnsafeBytes { raw in
                hasher.update(bufferPointer: raw)
                do throws(VigilError) { try output.write(raw, at: offset) } catch { return error }
                return nil
            }
            if let failure { throw failure }
            offset += chunk.count
            progress(chunk.count)
        }
        try output.sync()
        return (total, ChainDigest(hasher.finalize()).description)
    }

    /// The size and SHA-256 of a file's bytes; `progress` gets the bytes of each chunk.
    static func digest(_ path: String, progress: (Int) -> Void = { _ in }) throws(VigilError) -> (size: Int, sha256: String) {
        let input = try FileHandleDescriptor.open(path, flags: O_RDONLY)
        defer { input.close() }
        let total = try input.size()
        var hasher = SHA256()
        var offset = 0
        while offset < total {
            let chunk = try input.read(count: min(chunkBytes, total - offset), at: offset)
            chunk.withUnsafeBytes { hasher.update(bufferPointer: $0) }
            offset += chunk.count
            progress(chunk.count)
        }
        return (total, ChainDigest(hasher.finalize()).description)
    }

    /// The file's size, or nil when it does not exist.
    static func size(of path: String) throws(VigilError) -> Int? {
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == ENOENT { return nil }
            throw FileIO.error("stat", path)
        }
        return Int(info.st_size)
    }

    static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// The canonical absolute form of an existing path (symbolic links resolved).
    static func realPath(_ path: String) -> String? {
        guard let resolved = Glibc.realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Every regular file under `directory`, as paths relative to it, sorted.
    static func listFiles(under directory: String, prefix: String = "") throws(VigilError) -> [String] {
        var files: [String] = []
        for name in try FileIO.list(directory) {
            let path = directory + "/" + name
            if isDirectory(path) {
                files += try listFiles(under: path, prefix: prefix + name + "/")
            } else {
                files.append(prefix + name)
            }
        }
        return files
    }

    /// Removes everything inside `directory` but the names in `kept` (best
    /// effort), keeping the directory.
    static func removeContents(of directory: String, keeping kept: Set<String> = []) {
        for name in (try? FileIO.list(directory)) ?? [] where !kept.contains(name) {
            let path = directory + "/" + name
            if isDirectory(path) {
                removeContents(of: path)
                try? FileIO.removeDirectory(path)
            } else {
                try? FileIO.remove(path)
            }
        }
    }

    /// Refuses a `path` that exists and is a file or a directory with
    /// anything in it (ALREADY_EXISTS). `what` names it in errors.
    static func requireAbsentOrEmpty(_ path: String, what: String) throws(VigilError) {
        guard FileIO.exists(path) else { return }
        guard isDirectory(path) else {
            throw VigilError(.alreadyExists, "\(what) \(path) exists and is not a directory; give a new or empty directory")
        }
        guard try FileIO.list(path).isEmpty else {
            throw VigilError(.alreadyExists, "\(what) \(path) exists and is not empty; give a new or empty directory")
        }
    }

    /// Makes `path` a new, empty directory: refuses one that exists with
    /// anything in it (ALREADY_EXISTS), or a file. `what` names it in errors.
    /// A file error that retrying will not cure (no permission, a
    /// read-only file system, a file where a directory should be) as
    /// FAILED_PRECONDITION: as UNAVAILABLE, clients retried it forever.
    static func permanentProblem(_ error: VigilError) -> VigilError {
        guard error.code == .unavailable, let name = error.metadata[FileIO.errnoKey],
            ["EACCES", "EPERM", "EROFS", "ENOTDIR", "EISDIR"].contains(name)
        else { return error }
        var problem = error
        problem.code = .failedPrecondition
        problem.message += " (the server's user must be able to write there; retrying will not help)"
        return problem
    }

    static func makeEmptyDirectory(_ path: String, what: String) throws(VigilError) {
        try requireAbsentOrEmpty(path, what: what)
        guard !FileIO.exists(path) else { return }
        try FileIO.makeDirectory(path)
        try FileIO.syncDirectory(FileIO.directoryName(of: path))
    }

    /// Creates the directory `file` goes in, under `root` (which exists), and
    /// adds it and every directory created on the way to `created`: each of
    /// them must be fsynced for the files below to survive a crash.
    static func makeParent(of file: String, under root: String, recordingIn created: inout Set<String>) throws(VigilError) {
        var directory = FileIO.directoryName(of: file)
        guard directory != root, !created.contains(directory) else { return }
        try FileIO.makeDirectory(directory)
        while directory.count > root.count, created.insert(directory).inserted {
            directory = FileIO.directoryName(of: directory)
        }
    }
}
