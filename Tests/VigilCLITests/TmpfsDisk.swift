#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// A size-limited tmpfs mounted for one test: a disk that really fills up.
/// Mounting needs root (or CAP_SYS_ADMIN); without it the test fails with a
/// message that says so rather than passing without having tested anything.
/// (The same helper is in VigilStorageTests.)
final class TmpfsDisk {
    let path: String
    private var mounted = false

    init(megabytes: Int) throws {
        path = "/tmp/vigil-tmpfs-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let (status, output) = try Self.run(["mount", "-t", "tmpfs", "-o", "size=\(megabytes)m", "tmpfs", path])
        guard status == 0 else {
            try? FileManager.default.removeItem(atPath: path)
            throw TmpfsError(
                "cannot mount a \(megabytes) MiB tmpfs at \(path) (mount exit status \(status): \(output)); "
                    + "the disk-full tests need root or CAP_SYS_ADMIN to mount a size-limited file system")
        }
        mounted = true
    }

    deinit { unmount() }

    /// Unmounts and removes the mount point (also done when the disk is dropped).
    func unmount() {
        guard mounted else { return }
        mounted = false
        _ = try? Self.run(["umount", "-l", path])
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Bytes free on the tmpfs.
    var freeBytes: Int {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return -1 }
        return Int(info.f_bavail) * Int(info.f_frsize)
    }

    /// Writes `name` until the file system has no byte left (ENOSPC), or
    /// until only `leaving` bytes are free. Returns the filler's path.
    @discardableResult
    func fill(_ name: String = "filler", leaving: Int = 0) throws -> String {
        let filler = path + "/" + name
        let fd = open(filler, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        guard fd >= 0 else { throw TmpfsError("cannot create \(filler): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0xAB, count: 1 << 20)
        for size in [1 << 20, 4096, 1] {
            while true {
                let room = freeBytes - leaving
                if leaving > 0 && room < size { break }
                let written = chunk.withUnsafeBytes { write(fd, $0.baseAddress!, size) }
                if written < 0 && errno == EINTR { continue }
                if written < size { break }
            }
        }
        return filler
    }

    private static func run(_ arguments: [String]) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output.trimmingCharacters(in: .whitespacesAndNewlines))
    }
}

struct TmpfsError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
