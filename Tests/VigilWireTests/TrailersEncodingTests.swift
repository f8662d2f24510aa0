import NIOCore
import SwiftProtobuf
import Testing
import VigilCore
import VigilProto

@testable import VigilWire

@Suite("TRAILERS encoding")
struct TrailersEncodingTests {
    static func deterministic(_ status: Vigil_V1_Status) throws -> [UInt8] {
        var options = BinaryEncodingOptions()
        options.useDeterministicOrdering = true
        return try status.serializedBytes(options: options)
    }

    static func bytes(_ status: Vigil_V1_Status) -> [UInt8] {
        var buffer = Frame.trailersPayload(status)
        return buffer.readBytes(length: buffer.readableBytes) ?? []
    }

    @Test("a status written by hand is byte for byte swift-protobuf's deterministic encoding")
    func sameBytes() throws {
        var generator = SystemRandomNumberGenerator()
        let texts = ["", "a", "vigil.rows-examined", "12345", "ünïcödé ✓", String(repeating: "x", count: 200), String(repeating: "é", count: 70)]
        for _ in 0..<2_000 {
            var status = Vigil_V1_Status()
            status.code = [0, 1, 3, 16, 127, 128, 300, UInt32.max].randomElement(using: &generator)!
            status.message = texts.randomElement(using: &generator)!
            for _ in 0..<Int.random(in: 0...6, using: &generator) {
                status.metadata[texts.randomElement(using: &generator)! + String(Int.random(in: 0..<3, using: &generator))] =
                    texts.randomElement(using: &generator)!
            }
            #expect(Self.bytes(status) == (try Self.deterministic(status)), "\(status)")
            #expect(try Vigil_V1_Status(serializedBytes: Self.bytes(status)) == status)
        }
    }

    @Test("a status with event errors or unknown fields goes through swift-protobuf and decodes the same")
    func otherStatuses() throws {
        var refused = Vigil_V1_Status()
        refused.code = 3
        refused.message = "2 of 10 events are invalid"
        refused.eventErrors = [.with { $0.index = 3; $0.field = "action"; $0.reason = "empty" }]
        refused.metadata = ["b": "2", "a": "1"]
        #expect(try Vigil_V1_Status(serializedBytes: Self.bytes(refused)) == refused)
        var unknown = try Vigil_V1_Status(serializedBytes: [0x08, 0x05, 0xF8, 0x01, 0x07])  // code 5, field 31 = 7
        #expect(!unknown.unknownFields.data.isEmpty)
        #expect(try Vigil_V1_Status(serializedBytes: Self.bytes(unknown)) == unknown)
        unknown.metadata["k"] = "v"
        #expect(try Vigil_V1_Status(serializedBytes: Self.bytes(unknown)) == unknown)
    }
}

@Suite("TRAILERS decoding")
struct TrailersDecodingTests {
    static func decoded(_ bytes: [UInt8]) throws -> Vigil_V1_Status {
        try Frame(type: .trailers, streamID: 1, payload: ByteBuffer(bytes: bytes)).decodeTrailers()
    }

    @Test("statuses decode field by field exactly as swift-protobuf decodes them, whichever encoder wrote them")
    func sameAsSwiftProtobuf() throws {
        var generator = SystemRandomNumberGenerator()
        let texts = ["", "a", "vigil.cursor", "ünïcödé ✓", String(repeating: "x", count: 300)]
        for _ in 0..<2_000 {
            var status = Vigil_V1_Status()
            status.code = [0, 5, 16, 200, UInt32.max].randomElement(using: &generator)!
            status.message = texts.randomElement(using: &generator)!
            for _ in 0..<Int.random(in: 0...5, using: &generator) {
                status.metadata[texts.randomElement(using: &generator)! + String(Int.random(in: 0..<3, using: &generator))] =
                    texts.randomElement(using: &generator)!
            }
            let ours = TrailersEncodingTests.bytes(status)
            let theirs: [UInt8] = try status.serializedBytes()
            #expect(ours.withUnsafeBytes { Frame.statusFieldByField($0) } == status, "read field by field, no fallback")
            #expect(try Self.decoded(ours) == status)
            #expect(try Self.decoded(theirs) == status)
        }
    }

    @Test("repeated fields and map keys: the last wins, as in swift-protobuf")
    func lastWins() throws {
        // code 3, code 5, message "a", message "b", entry k=1, entry k=2, an entry with no value.
        let bytes: [UInt8] = [0x08, 0x03, 0x08, 0x05, 0x12, 0x01, 0x61, 0x12, 0x01, 0x62,
                              0x22, 0x06, 0x0A, 0x01, 0x6B, 0x12, 0x01, 0x31, 0x22, 0x06, 0x0A, 0x01, 0x6B, 0x12, 0x01, 0x32,
                              0x22, 0x03, 0x0A, 0x01, 0x6E]
        let status = try Self.decoded(bytes)
        #expect(status == (try Vigil_V1_Status(serializedBytes: bytes)))
        #expect(status.code == 5 && status.message == "b" && status.metadata == ["k": "2", "n": ""])
    }

    @Test("what the field-by-field reader leaves alone goes to swift-protobuf: event errors, unknown fields, invalid UTF-8, wrong wire types; garbage is INVALID_ARGUMENT")
    func fallbacks() throws {
        var refused = Vigil_V1_Status()
        refused.code = 3
        refused.eventErrors = [.with { $0.index = 2; $0.field = "tenant"; $0.reason = "empty" }]
        let refusedBytes: [UInt8] = try refused.serializedBytes()
        #expect(refusedBytes.withUnsafeBytes { Frame.statusFieldByField($0) } == nil)
        #expect(try Self.decoded(refusedBytes) == refused)
        let unknown: [UInt8] = [0x08, 0x05, 0xF8, 0x01, 0x07]
        #expect(unknown.withUnsafeBytes { Frame.statusFieldByField($0) } == nil)
        #expect(try Self.decoded(unknown) == (try Vigil_V1_Status(serializedBytes: unknown)))
        // Invalid UTF-8, code as a length-delimited field, a cut varint, a cut map entry: the
        // answer is swift-protobuf's (its error as INVALID_ARGUMENT).
        for bad: [UInt8] in [[0x12, 0x02, 0xC3, 0x28], [0x0A, 0x01, 0x01], [0x08], [0x22, 0x05, 0x0A]] {
            #expect(bad.withUnsafeBytes { Frame.statusFieldByField($0) } == nil, "\(bad)")
            if let expected = try? Vigil_V1_Status(serializedBytes: bad) {
                #expect(try Self.decoded(bad) == expected, "\(bad)")
            } else {
                let error = #expect(throws: VigilError.self) { try Self.decoded(bad) }
                #expect(error?.code == .invalidArgument, "\(bad)")
            }
        }
    }
}
