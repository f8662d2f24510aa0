import SwiftProtobuf

/// Nanoseconds since the Unix epoch, UTC: how Vigil holds every time internally.
public typealias UnixNanos = Int64

extension Google_Protobuf_Timestamp {
    /// The time as nanoseconds since the epoch, saturating at Int64's range
    /// (years 1678 to 2262), which covers every time an audit log can hold.
    public var unixNanos: UnixNanos {
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        let (sum, overflow2) = product.addingReportingOverflow(Int64(nanos))
        if overflow2 { return seconds < 0 ? .min : .max }
        return sum
    }

    public init(unixNanos: UnixNanos) {
        var seconds = unixNanos / 1_000_000_000
        var nanos = unixNanos % 1_000_000_000
        if nanos < 0 {
            nanos += 1_000_000_000
            seconds -= 1
        }
        self.init(seconds: seconds, nanos: Int32(nanos))
    }
}

extension Duration {
    /// Whole nanoseconds, saturating at Int64's range (what timers,
    /// swift-metrics and NIO's TimeAmount take).
    public var wholeNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? (seconds < 0 ? .min : .max) : whole &+ attoseconds / 1_000_000_000
    }
}

/// The current time as nanoseconds since the epoch.
public func currentUnixNanos() -> UnixNanos {
    var spec = timespec()
    clock_gettime(CLOCK_REALTIME, &spec)
    return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
