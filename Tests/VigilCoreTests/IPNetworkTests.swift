import Testing
import VigilCore

/// `IPNetwork`: the CIDR blocks of `filter.sourceIps`.
@Suite("IPNetwork")
struct IPNetworkTests {
    func network(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> IPNetwork {
        try #require(IPNetwork(text), "'\(text)' should parse", sourceLocation: sourceLocation)
    }

    func address(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> IPAddress {
        try #require(IPAddress(text), "'\(text)' should parse", sourceLocation: sourceLocation)
    }

    func expectContains(_ block: String, _ candidates: [String], _ expected: Bool, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let network = try network(block, sourceLocation: sourceLocation)
        for candidate in candidates {
            #expect(
                network.contains(try address(candidate, sourceLocation: sourceLocation)) == expected,
                "\(candidate) in \(block) should be \(expected)", sourceLocation: sourceLocation)
        }
    }

    @Test("IPv4 blocks, byte-aligned and not")
    func ipv4() throws {
        try expectContains("10.0.0.0/8", ["10.0.0.0", "10.0.0.1", "10.255.255.255", "10.128.0.1"], true)
        try expectContains("10.0.0.0/8", ["11.0.0.0", "9.255.255.255", "0.0.0.0", "255.255.255.255"], false)
        try expectContains("192.168.1.0/24", ["192.168.1.0", "192.168.1.255"], true)
        try expectContains("192.168.1.0/24", ["192.168.0.255", "192.168.2.0"], false)
        try expectContains("10.0.0.128/25", ["10.0.0.128", "10.0.0.200", "10.0.0.255"], true)
        try expectContains("10.0.0.128/25", ["10.0.0.127", "10.0.0.0", "10.0.1.128"], false)
        try expectContains("172.16.0.0/12", ["172.16.0.1", "172.31.255.255"], true)
        try expectContains("172.16.0.0/12", ["172.15.255.255", "172.32.0.0"], false)
        try expectContains("203.0.113.8/31", ["203.0.113.8", "203.0.113.9"], true)
        try expectContains("203.0.113.8/31", ["203.0.113.7", "203.0.113.10"], false)
        try expectContains("128.0.0.0/1", ["128.0.0.0", "255.1.2.3"], true)
        try expectContains("128.0.0.0/1", ["127.255.255.255", "0.0.0.1"], false)
    }

    @Test("IPv6 blocks, byte-aligned and not")
    func ipv6() throws {
        try expectContains("2001:db8::/32", ["2001:db8::", "2001:db8::1", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"], true)
        try expectContains("2001:db8::/32", ["2001:db9::", "2001:db7:ffff::1", "::1"], false)
        try expectContains("2001:DB8::/32", ["2001:0db8:0000::1"], true)
        try expectContains("fe80::/10", ["fe80::1", "febf:ffff::1"], true)
        try expectContains("fe80::/10", ["fec0::1", "fe7f::1"], false)
        try expectContains("2001:db8::/33", ["2001:db8:7fff::1"], true)
        try expectContains("2001:db8::/33", ["2001:db8:8000::"], false)
        try expectContains("2001:db8::/127", ["2001:db8::", "2001:db8::1"], true)
        try expectContains("2001:db8::/127", ["2001:db8::2"], false)
    }

    @Test("/0 holds every address of its family and none of the other")
    func zeroPrefix() throws {
        try expectContains("0.0.0.0/0", ["0.0.0.0", "1.2.3.4", "255.255.255.255"], true)
        try expectContains("0.0.0.0/0", ["::", "::1", "::ffff:1.2.3.4", "2001:db8::1"], false)
        try expectContains("::/0", ["::", "::1", "::ffff:1.2.3.4", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"], true)
        try expectContains("::/0", ["0.0.0.0", "1.2.3.4"], false)
        let cleared = try network("1.2.3.4/0")
        #expect(cleared.address.description == "0.0.0.0")
        #expect(cleared.prefixLength == 0)
        #expect(!cleared.isSingleAddress)
        #expect(try network("2001:db8::1/0").description == "::/0")
    }

    @Test("/32, /128 and bare addresses are single addresses")
    func singleAddresses() throws {
        for text in ["10.0.0.1/32", "10.0.0.1"] {
            let single = try network(text)
            #expect(single.isSingleAddress)
            #expect(single.prefixLength == 32)
            #expect(single.description == "10.0.0.1/32")
            try expectContains(text, ["10.0.0.1"], true)
            try expectContains(text, ["10.0.0.0", "10.0.0.2", "10.0.0.129", "::ffff:10.0.0.1"], false)
        }
        for text in ["2001:db8::1/128", "2001:db8::1", "2001:DB8:0:0:0:0:0:1"] {
            let single = try network(text)
            #expect(single.isSingleAddress)
            #expect(single.prefixLength == 128)
            #expect(single.address.description == "2001:db8::1")
            try expectContains(text, ["2001:db8::1"], true)
            try expectContains(text, ["2001:db8::", "2001:db8::2", "2001:db8::1:1"], false)
        }
        #expect(try network("0.0.0.0/32").isSingleAddress)
        #expect(try network("::/128").isSingleAddress)
        #expect(!(try network("10.0.0.0/31").isSingleAddress))
        #expect(!(try network("::/127").isSingleAddress))
    }

    @Test("host bits below the prefix are cleared")
    func hostBitsCleared() throws {
        #expect(try network("10.1.2.3/8").description == "10.0.0.0/8")
        #expect(try network("10.0.0.255/25").description == "10.0.0.128/25")
        #expect(try network("192.168.1.77/30").description == "192.168.1.76/30")
        #expect(try network("2001:db8:ffff::1/32").description == "2001:db8::/32")
        #expect(try network("fe80::1/10").description == "fe80::/10")
        #expect(try network("febf:ffff::1/10").description == "fe80::/10")
        #expect(try network("10.1.2.3/8") == network("10.0.0.0/8"))
        #expect(try network("10.1.2.3/8") != network("10.0.0.0/9"))
        #expect(try network("10.0.0.0/8") != network("::a00:0/104"))
    }

    static let malformed: [String] = [
        "", "/", "/8", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/100", "10.0.0.0/1000", "1.2.3.4/8/9",
        "1.2.3.4//8", "10.0.0.0/8/", "10.0.0.0/ 8", "10.0.0.0/8 ", " 10.0.0.0/8", "10.0.0.0/+8", "10.0.0.0/0x8",
        "10.0.0.0/8a", "10.0.0.0/a", "10.0.0.0/٣", "10.0.0/8", "10.0.0.0.0/8", "256.0.0.0/8", "10.0.0.0\\8",
        "::/129", "::/-0", "2001:db8::/", "2001:db8::g/32", "2001:db8:::/32", "fe80::1%eth0/64", "fe80::1%eth0",
        "example.com", "example.com/8", "10.0.0.1\u{0}", "10.0.0.0/8\u{0}",
    ]

    @Test("malformed blocks are refused", arguments: malformed)
    func refusesMalformed(text: String) {
        #expect(IPNetwork(text) == nil, "'\(text)'")
    }

    @Test("an IPv4-mapped IPv6 address is an IPv6 address: it does not match IPv4 blocks, nor IPv4 addresses IPv6 blocks")
    func ipv4Mapped() throws {
        let mapped = try address("::ffff:10.1.2.3")
        #expect(!mapped.isIPv4)
        #expect(mapped.bytes.count == 16)
        try expectContains("10.0.0.0/8", ["::ffff:10.1.2.3", "::ffff:a01:203"], false)
        try expectContains("10.1.2.3", ["::ffff:10.1.2.3"], false)
        try expectContains("0.0.0.0/0", ["::ffff:10.1.2.3"], false)
        try expectContains("::ffff:0:0/96", ["::ffff:10.1.2.3", "::ffff:0.0.0.0"], true)
        try expectContains("::ffff:0:0/96", ["10.1.2.3", "0.0.0.0"], false)
        try expectContains("::ffff:10.0.0.0/104", ["::ffff:10.1.2.3"], true)
        try expectContains("::ffff:10.0.0.0/104", ["::ffff:11.1.2.3", "10.1.2.3"], false)
        try expectContains("::ffff:10.1.2.3", ["::ffff:10.1.2.3"], true)
    }
}
