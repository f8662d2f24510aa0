import Foundation
import Testing

/// A TCP port that accepts connections (the kernel completes the handshake
/// into the backlog) and never says anything: a hung server.
final class SilentListener {
    let descriptor: Int32
    let port: Int

    init() throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.descriptor = descriptor
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                bind(descriptor, raw, length) == 0 && listen(descriptor, 16) == 0 && getsockname(descriptor, raw, &length) == 0
            }
        }
        guard bound else { throw CLITestError("cannot listen: errno \(errno)") }
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(descriptor) }
}

@Suite("--timeout bounds connecting and the handshake, for every client command")
struct TimeoutTests {
    @Test("query, export and backup against a server that never answers give up after --timeout, not after 10 s")
    func timeoutBoundsTheHandshake() throws {
        let silent = try SilentListener()
        let server = ["--server", "127.0.0.1:\(silent.port)", "--timeout", "2"]
        for arguments in [["query"], ["export"], ["backup", "/tmp/never-written"]] {
            let result = try VigilBinary.run(arguments + server)
            #expect(result.status == 1, "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains("no answer to HELLO from 127.0.0.1:\(silent.port) within 2.0 seconds"), "\(arguments): \(result.stderr)")
        }
        let zero = try VigilBinary.run(["query", "--timeout", "0"] + ["--server", "127.0.0.1:\(silent.port)"])
        #expect(zero.status == 64)
        #expect(zero.stderr.contains("--timeout must be 1 to 86400 seconds, not 0"), "\(zero.stderr)")
    }

    @Test("export's and backup's help say what --timeout bounds for them")
    func helpSaysWhatItBounds() throws {
        for command in ["export", "backup"] {
            let help = try VigilBinary.run([command, "--help"]).stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
            #expect(help.contains("export and backup: no limit unless given"), "\(help)")
            #expect(help.contains("bounds connecting and the handshake"), "\(help)")
        }
    }
}
