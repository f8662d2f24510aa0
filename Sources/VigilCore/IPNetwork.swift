/// An IPv4 or IPv6 network written in CIDR notation (`10.0.0.0/8`,
/// `2001:db8::/32`), or a single address (a /32 or /128).
public struct IPNetwork: Sendable, Hashable, CustomStringConvertible {
    /// The network address, with the host bits cleared.
    public let address: IPAddress
    public let prefixLength: Int

    /// Parses `a.b.c.d/n`, `x::y/n` or a bare address. Host bits set below the
    /// prefix are cleared (`10.1.2.3/8` is `10.0.0.0/8`), as routers read it.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(String(parts[0])) else { return nil }
        let bits = address.bytes.count * 8
        var length = bits
        if parts.count == 2 {
            let digits = parts[1]
            guard !digits.isEmpty, digits.count <= 3, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                let value = Int(digits), value <= bits
            else { return nil }
            length = value
        }
        var masked = address.bytes
        for index in masked.indices {
            let keep = max(0, min(8, length - index * 8))
            masked[index] &= keep == 0 ? 0 : UInt8(truncatingIfNeeded: 0xFF << (8 - keep))
        }
        self.address = IPAddress(bytes: masked)
        prefixLength = length
    }

    /// Whether this is one address rather than a range.
    public var isSingleAddress: Bool { prefixLength == address.bytes.count * 8 }

    /// Whether `candidate` lies in the network (never across address families).
    public func contains(_ candidate: IPAddress) -> Bool {
        guard candidate.bytes.count == address.bytes.count else { return false }
        var remaining = prefixLength
        for index in address.bytes.indices where remaining > 0 {
            let take = min(8, remaining)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - take))
            if candidate.bytes[index] & mask != address.bytes[index] { return false }
            remaining -= take
        }
        return true
    }

    public var description: String { "\(address)/\(prefixLength)" }
}
