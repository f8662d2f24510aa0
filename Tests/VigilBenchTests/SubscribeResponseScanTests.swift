import SwiftProtobuf
import Testing
import VigilBenchKit
import VigilCore
import VigilProto

@Suite("vigil-bench's subscription message reader")
struct SubscribeResponseScanTests {
    static func scan(_ bytes: [UInt8]) -> SubscribeResponseScan? {
        bytes.withUnsafeBytes { SubscribeResponseScan($0) }
    }

    @Test("seq, tenant and action come out of generated events as swift-protobuf decodes them; heartbeats have no seq")
    func matchesSwiftProtobuf() throws {
        var generator = EventGenerator(seed: 5, count: 500, end: GeneratorTests.end)
        var index = 0
        while var event = generator.next() {
            index += 1
            event.seq = UInt64(index) * 1_000_003 + 1
            var response = Vigil_V1_SubscribeResponse()
            response.event = event
            response.cursor = "cursor-\(index)"
            let bytes: [UInt8] = try response.serializedBytes()
            let scanned = try #require(Self.scan(bytes))
            #expect(scanned.seq == event.seq && scanned.tenant == event.tenant && scanned.action == event.action)
        }
        var heartbeat = Vigil_V1_SubscribeResponse()
        heartbeat.heartbeat = .init()
        heartbeat.cursor = "c"
        let scanned = try #require(Self.scan(try heartbeat.serializedBytes()))
        #expect(scanned.seq == nil)
    }

    @Test("cut or malformed bytes are refused")
    func refusesMalformed() throws {
        var response = Vigil_V1_SubscribeResponse()
        var event = AuditEvent()
        event.seq = 7
        event.tenant = "acme"
        response.event = event
        let bytes: [UInt8] = try response.serializedBytes()
        #expect(Self.scan(bytes)?.seq == 7)
        #expect(Self.scan(Array(bytes.dropLast())) == nil)
        #expect(Self.scan([0x0F]) == nil)  // wire type 7
    }
}
