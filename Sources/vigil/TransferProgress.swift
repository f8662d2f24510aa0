import Synchronization
import VigilStorage

#if canImport(Glibc)
import Glibc
#endif

/// The progress line of `vigil backup` and `vigil restore` on stderr: redrawn
/// in place on a terminal, a line per update otherwise (with --progress), at
/// most a few times a second either way.
final class TransferProgress: Sendable {
    private let verb: String
    private let enabled: Bool
    private let terminal: Bool
    private let lastShown = Mutex<ContinuousClock.Instant?>(nil)

    init(verb: String, forced: Bool) {
        self.verb = verb
        terminal = isatty(STDERR_FILENO) == 1
        enabled = forced || terminal
    }

    func show(filesDone: UInt64, filesTotal: UInt64, bytesDone: UInt64, bytesTotal: UInt64, force: Bool = false) {
        guard enabled else { return }
        let due = lastShown.withLock { last -> Bool in
            guard force || last.map({ ContinuousClock.now - $0 >= .milliseconds(200) }) ?? true else { return false }
            last = .now
            return true
        }
        guard due else { return }
        let percent = bytesTotal > 0 ? Int(bytesDone * 100 / bytesTotal) : 100
        let text = "\(verb): \(filesDone) of \(filesTotal) files, \(Self.size(bytesDone)) of \(Self.size(bytesTotal)) (\(percent)%)"
        writeStandardError(terminal ? "\r\u{1B}[K" + text : text + "\n")
    }

    /// Clears the line on a terminal before the result is printed.
    func finish() {
        if enabled && terminal { writeStandardError("\r\u{1B}[K") }
    }

    /// 512 B, 12.3 KiB, 4.0 MiB, 1.2 GiB, 3.4 TiB.
    static func size(_ bytes: UInt64) -> String {
        guard bytes >= 1024 else { return "\(bytes) B" }
        var unit = 1024 as UInt64
        for name in ["KiB", "MiB", "GiB", "TiB"] {
            if bytes < unit * 1024 || name == "TiB" {
                let tenths = (bytes * 10 + unit / 2) / unit
                return "\(tenths / 10).\(tenths % 10) \(name)"
            }
            unit *= 1024
        }
        return "\(bytes) B"
    }
}
