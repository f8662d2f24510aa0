import Testing
import VigilCore
import VigilProto

@Suite("QueryCursor")
struct QueryCursorTests {
    static let keys: [(UnixNanos, UInt64)] = [
        (0, 0), (1_780_000_000_123_456_789, 42), (-1, 1), (.min, .max), (.max, 0x0123_4567_89ab_cdef),
    ]

    @Test("encode/decode round trip", arguments: Vigil_V1_Order.allCases)
    func roundTrip(order: Vigil_V1_Order) throws {
        for (occurredAt, seq) in Self.keys {
            let fingerprint: UInt64 = 0xdead_beef_cafe_f00d
            let cursor = QueryCursor(
                order: order, occurredAt: occurredAt, seq: seq, filterFingerprint: fingerprint,
                anchor: occurredAt &+ 5, visibleSeq: seq &+ 9)
            let text = cursor.encoded
            #expect(text.utf8.count == 84)
            #expect(text.utf8.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) })
            let decoded = try QueryCursor(decoding: text, order: order, filterFingerprint: fingerprint)
            #expect(decoded == cursor)
        }
    }

    @Test("the encoding is version, order, occurred_at, seq, fingerprint, anchor, visible seq, big-endian hex")
    func layout() {
        let cursor = QueryCursor(
            order: .oldestFirst, occurredAt: 0x0102_0304_0506_0708, seq: 0x1112_1314_1516_1718, filterFingerprint: 0x2122_2324_2526_2728,
            anchor: 0x3132_3334_3536_3738, visibleSeq: 0x4142_4344_4546_4748)
        #expect(
            cursor.encoded
                == "02" + "01" + "0102030405060708" + "1112131415161718" + "2122232425262728" + "3132333435363738" + "4142434445464748")
        let newest = QueryCursor(order: .newestFirst, occurredAt: -1, seq: 0, filterFingerprint: 0, anchor: 0, visibleSeq: 0)
        #expect(newest.encoded == "02" + "00" + "ffffffffffffffff" + String(repeating: "0", count: 64))
    }

    static let garbageCursors: [String] = {
        let valid = QueryCursorTests.valid
        var texts: [String] = ["", "garbage", String(repeating: "g", count: 84), String(repeating: "0", count: 84)]
        texts += [valid.uppercased(), valid + "0", String(valid.dropLast()), String(valid.dropLast(2))]
        texts += ["01" + valid.dropFirst(2), "03" + valid.dropFirst(2), "00" + valid.dropFirst(2), " " + valid.dropFirst()]
        texts.append(String(repeating: "é", count: 42))
        return texts
    }()

    static let valid = QueryCursor(order: .newestFirst, occurredAt: 1_780_000_000_000_000_000, seq: 7, filterFingerprint: 99).encoded

    @Test(
        "garbage is refused with INVALID_ARGUMENT",
        arguments: garbageCursors)
    func garbage(text: String) {
        let error = #expect(throws: VigilError.self) {
            try QueryCursor(decoding: text, order: .newestFirst, filterFingerprint: 99)
        }
        #expect(error?.code == .invalidArgument)
    }

    @Test("a cursor of the other order is refused", arguments: Vigil_V1_Order.allCases)
    func wrongOrder(order: Vigil_V1_Order) {
        let other: Vigil_V1_Order = order == .newestFirst ? .oldestFirst : .newestFirst
        let text = QueryCursor(order: order, occurredAt: 5, seq: 6, filterFingerprint: 7).encoded
        let error = #expect(throws: VigilError.self) {
            try QueryCursor(decoding: text, order: other, filterFingerprint: 7)
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("order") == true)
    }

    @Test("an unknown order byte is refused")
    func unknownOrder() {
        let text = "01" + "07" + QueryCursor(order: .newestFirst, occurredAt: 5, seq: 6, filterFingerprint: 7).encoded.dropFirst(4)
        for order in Vigil_V1_Order.allCases {
            let error = #expect(throws: VigilError.self) {
                try QueryCursor(decoding: text, order: order, filterFingerprint: 7)
            }
            #expect(error?.code == .invalidArgument)
        }
    }

    @Test("a cursor of another filter is refused")
    func wrongFingerprint() throws {
        var filterA = Vigil_V1_Filter()
        filterA.tenants = ["acme"]
        var filterB = filterA
        filterB.actions = ["auth.*"]
        let fingerprintA = try EventFilter(filterA).fingerprint
        let fingerprintB = try EventFilter(filterB).fingerprint
        #expect(fingerprintA != fingerprintB)
        #expect(try EventFilter(filterA).fingerprint == fingerprintA, "the fingerprint is stable")

        let text = QueryCursor(order: .oldestFirst, occurredAt: 5, seq: 6, filterFingerprint: fingerprintA).encoded
        #expect(try QueryCursor(decoding: text, order: .oldestFirst, filterFingerprint: fingerprintA).seq == 6)
        let error = #expect(throws: VigilError.self) {
            try QueryCursor(decoding: text, order: .oldestFirst, filterFingerprint: fingerprintB)
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("filter") == true)
    }

    @Test("encoding a cursor for an order this version does not know does not crash")
    func unrecognizedOrderEncoding() async {
        await #expect(processExitsWith: .success) {
            _ = QueryCursor(order: .UNRECOGNIZED(300), occurredAt: 0, seq: 0, filterFingerprint: 0).encoded
        }
    }

    @Test("isBefore: whether an event comes after the cursor in the cursor's order")
    func isBefore() {
        let oldest = QueryCursor(order: .oldestFirst, occurredAt: 100, seq: 5, filterFingerprint: 0)
        #expect(oldest.isBefore(occurredAt: 100, seq: 6))
        #expect(oldest.isBefore(occurredAt: 101, seq: 0))
        #expect(!oldest.isBefore(occurredAt: 100, seq: 5))
        #expect(!oldest.isBefore(occurredAt: 99, seq: 9))

        let newest = QueryCursor(order: .newestFirst, occurredAt: 100, seq: 5, filterFingerprint: 0)
        #expect(newest.isBefore(occurredAt: 100, seq: 4))
        #expect(newest.isBefore(occurredAt: 99, seq: 9))
        #expect(!newest.isBefore(occurredAt: 100, seq: 5))
        #expect(!newest.isBefore(occurredAt: 101, seq: 0))
    }
}

