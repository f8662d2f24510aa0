import SwiftProtobuf
import Testing
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
