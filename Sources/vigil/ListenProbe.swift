#if canImport(Glibc)
import Glibc
#endif

/// Tries `vigil serve`'s listen addresses before anything is opened, so that
/// a port in use or a wrong address is said in a sentence, before the WAL is
/// replayed and before a first admin token is minted and printed. The
/// listener itself binds later; this only finds the common mistakes early.
enum ListenProbe {
    /// nil when HOST:PORT can be bound (or the port is 0: any port will do).
    static func problem(host: String, port: Int, flag: String) -> CLIFailure? {
        guard port != 0 else { return nil }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE
        var found: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &found) == 0, let first = found else {
            return .configuration("\(flag) \(host):\(port): unknown host '\(host)'; give an address of this host or a name that resolves to one")
        }
        defer { freeaddrinfo(first) }
        let descriptor = socket(first.pointee.ai_family, first.pointee.ai_socktype, first.pointee.ai_protocol)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        // As the listener binds: with SO_REUSEADDR, only a socket that listens refuses us.
        var on: Int32 = 1
        _ = setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        guard bind(descriptor, first.pointee.ai_addr, first.pointee.ai_addrlen) != 0 else { return nil }
        let address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        switch errno {
        case EADDRINUSE:
            return .runtime("\(flag) \(address): address already in use: another process listens on \(address) (`ss -ltnp 'sport = :\(port)'` shows which)")
        case EACCES:
            return .configuration("\(flag) \(address): permission denied: ports below 1024 need root or CAP_NET_BIND_SERVICE")
        case EADDRNOTAVAIL:
            return .configuration("\(flag) \(address): \(host) is not an address of this host")
        default:
            return nil  // the listener reports it
        }
    }
}
