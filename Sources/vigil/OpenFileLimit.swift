#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Logging

/// The process's limit on open file descriptors. A server keeps one open
/// per live part file (a busy year of data is thousands), per WAL segment
/// and per connection, while shells and many service managers start
/// processes with a soft limit of 1,024; past it, opening a part or
/// accepting a connection fails with EMFILE. So `vigil serve` raises the soft
/// limit to the hard one at start, as database servers do, and says so when
/// even the hard limit is low.
enum OpenFileLimit {
    /// Below this after raising, the server warns: a few hundred connections
    /// and a few thousand parts do not fit.
    static let comfortable: rlim_t = 8_192

    /// Raises the soft limit to the hard one; returns both limits before and the soft one after.
    static func raise() -> (soft: rlim_t, hard: rlim_t, raised: rlim_t)? {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return nil }
        let before = limit.rlim_cur
        guard limit.rlim_cur < limit.rlim_max else { return (before, limit.rlim_max, before) }
        limit.rlim_cur = limit.rlim_max
        guard setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return (before, limit.rlim_max, before) }
        return (before, limit.rlim_max, limit.rlim_max)
    }

    /// Raises the limit and logs what it did: info when raised, a warning when the result is low.
    static func raiseAndReport(_ logger: Logger) {
        guard let (soft, hard, raised) = raise() else { return }
        if raised > soft {
            logger.info("raised the open file limit from \(soft) to \(raised) (the hard limit): one descriptor per part file, WAL segment and connection")
        }
        if raised < comfortable {
            logger.warning(
                "only \(raised) open files allowed (hard limit \(hard)): the server keeps one descriptor per part file, WAL segment and connection, and fails to open parts or accept connections past it; raise it (LimitNOFILE=65536 in the systemd unit, or ulimit -n)")
        }
    }
}
