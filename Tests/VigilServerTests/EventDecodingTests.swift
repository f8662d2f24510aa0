import Foundation
import NIOCore
import SwiftProtobuf
import Testing
import VigilCore
import VigilProto

@testable import VigilClient

/// The Swift client decodes query pages field by field; these hold it to
/// swift-protobuf's decoding of the same bytes.
@Suite("Client decoding of query pages")
struct EventDecodingTests {
    /// A deterministic generator of events with every field, awkward values included.
    struct Events {
        var state: UInt64

        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }

        mutating func chance(_ percent: UInt64) -> Bool { next() % 100 < percent }

        mutating func text() -> String {
            let pool = ["", "a", "alice@example.com", "Café", "Cafe\u{301}", "日本語", "🦆🦆", "nul\u{0}inside", String(repeating: "x", count: 300), "auth.login"]
            return pool[Int(next() % UInt64(pool.count))]
        }

        mutating func enumValue() -> Int {
            [0, 1, 2, 3, 7, 99, -1, Int(Int32.min)][Int(next() % 8)]
        }

        mutating func resource() -> Vigil_V1_Resource {
            var resource = Vigil_V1_Resource()
            if chance(70) { resource.type = text() }
            if chance(70) { resource.id = text() }
            if chance(50) { resource.name = text() }
            return resource
        }

        mutating func event() -> AuditEvent {
            var event = AuditEvent()
            if chance(90) { event.id = text() }
            event.seq = chance(10) ? UInt64.max : next() % 1_000_000
            if chance(95) { event.occurredAt = .init(seconds: Int64(bitPattern: next() % 4_000_000_000) - 1_000_000_000, nanos: Int32(next() % 1_000_000_000)) }
            if chance(90) { event.receivedAt = .init(seconds: 1_780_000_000, nanos: 0) }
            event.tenant = text()
            if chance(80) {
                var actor = Vigil_V1_Actor()
                if chance(80) { actor.id = text() }
                if chance(80) { actor.type = Vigil_V1_ActorType(rawValue: enumValue()) ?? .UNRECOGNIZED(enumValue()) }
                if chance(50) { actor.name = text() }
                if chance(50) { actor.email = text() }
                event.actor = actor
            }
            event.action = text()
            let category = enumValue()
            event.category = Vigil_V1_Category(rawValue: category) ?? .UNRECOGNIZED(category)
            if chance(80) { event.resource = resource() }
            event.targets = (0..<Int(next() % 3)).map { _ in resource() }
            let outcome = enumValue()
            event.outcome = Vigil_V1_Outcome(rawValue: outcome) ?? .UNRECOGNIZED(outcome)
            if chance(30) { event.reason = text() }
            if chance(80) { event.sourceIp = chance(50) ? "10.0.0.1" : "2001:db8::1" }
            if chance(50) { event.userAgent = text() }
            if chance(60) { event.traceID = "4bf92f3577b34da6a3ce929d0e0e4736" }
            if chance(60) { event.requestID = text() }
            event.changes = (0..<Int(next() % 3)).map { _ in
                Vigil_V1_Change.with {
                    $0.field = text()
                    $0.old = text()
                    $0.new = text()
                }
            }
            for _ in 0..<Int(next() % 5) { event.metadata[text()] = text() }
            if chance(40) { event.description_p = text() }
            return event
        }
    }

    static func decode(_ bytes: [UInt8]) -> Vigil_V1_QueryResponse? {
        var buffer = ByteBufferAllocator().buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        return EventDecoding.queryResponse(buffer)
    }

    @Test("pages of random events decode to what swift-protobuf decodes")
    func randomPages() throws {
        var events = Events(state: 7)
        for pageSize in [0, 1, 2, 17, 100, 100, 100, 1_000] {
            var page = Vigil_V1_QueryResponse()
            page.events = (0..<pageSize).map { _ in events.event() }
            if pageSize % 2 == 0 { page.cursor = "c1.abc" }
            let bytes: [UInt8] = try page.serializedBytes()
            let decoded = try #require(Self.decode(bytes))
            #expect(decoded == (try Vigil_V1_QueryResponse(serializedBytes: bytes)))
            #expect(decoded == page)
        }
    }

    @Test("fields in any order, repeated singular fields (the last wins) and repeated map keys decode as swift-protobuf decodes them")
    func unusualButValidEncodings() throws {
        var events = Events(state: 11)
        for _ in 0..<200 {
            let first = events.event(), second = events.event()
            // Two events' bytes back to back are one valid encoding of their merge.
            var onlyScalars = second
            onlyScalars.clearOccurredAt()
            onlyScalars.clearReceivedAt()
            onlyScalars.clearActor()
            onlyScalars.clearResource()
            let merged: [UInt8] = try first.serializedBytes() + onlyScalars.serializedBytes()
            var response: [UInt8] = [0x0A]
            var length = UInt64(merged.count)
            while length >= 0x80 {
                response.append(UInt8(truncatingIfNeeded: length) | 0x80)
                length >>= 7
            }
            response.append(UInt8(length))
            response += merged
            let decoded = try #require(Self.decode(response))
            #expect(decoded == (try Vigil_V1_QueryResponse(serializedBytes: response)))
        }
    }

    @Test("subscription messages carrying an event decode to what swift-protobuf decodes; a heartbeat or an event given twice is left to it")
    func subscribeResponses() throws {
        var events = Events(state: 13)
        func decode(_ bytes: [UInt8]) -> Vigil_V1_SubscribeResponse? {
            var buffer = ByteBufferAllocator().buffer(capacity: bytes.count)
            buffer.writeBytes(bytes)
            return EventDecoding.subscribeResponse(buffer)
        }
        for index in 0..<300 {
            var response = Vigil_V1_SubscribeResponse()
            response.event = events.event()
            if index % 3 != 0 { response.cursor = "s1.\(index)" }
            let bytes: [UInt8] = try response.serializedBytes()
            #expect(try #require(decode(bytes)) == response)
        }
        var heartbeat = Vigil_V1_SubscribeResponse()
        heartbeat.heartbeat = .init()
        heartbeat.cursor = "s1.x"
        #expect(decode(try heartbeat.serializedBytes()) == nil)
        var once = Vigil_V1_SubscribeResponse()
        once.event.id = "e"
        let event: [UInt8] = try once.serializedBytes()
        #expect(decode(event + event) == nil)
    }

    @Test("metadata entries without a key, a value or either decode as swift-protobuf decodes them")
    func partialMapEntries() throws {
        // Field 18 entries: key only, value only, neither, then key and value.
        let entries: [[UInt8]] = [[0x0A, 0x01, 0x6B], [0x12, 0x01, 0x76], [], [0x0A, 0x01, 0x61, 0x12, 0x01, 0x62]]
        var event: [UInt8] = [0x0A, 0x01, 0x65]
        for entry in entries { event += [0x92, 0x01, UInt8(entry.count)] + entry }
        let bytes: [UInt8] = [0x0A, UInt8(event.count)] + event
        let decoded = try #require(Self.decode(bytes))
        #expect(decoded == (try Vigil_V1_QueryResponse(serializedBytes: bytes)))
        #expect(decoded.events.first?.metadata == ["k": "", "": "", "a": "b"])
    }

    @Test("what this decoder leaves to swift-protobuf: unknown fields, a sub-message given twice, text that is not UTF-8, wrong wire types, truncated bytes")
    func refusals() throws {
        var event = AuditEvent()
        event.id = "e"
        event.actor.id = "a"
        let plain: [UInt8] = try event.serializedBytes()
        func page(_ eventBytes: [UInt8]) -> [UInt8] { [0x0A, UInt8(eventBytes.count)] + eventBytes }
        #expect(Self.decode(page(plain)) != nil)
        // Field 20 of the event (a newer server's): swift-protobuf keeps it as an unknown field.
        #expect(Self.decode(page(plain + [0xA2, 0x01, 0x01, 0x78])) == nil)
        // Field 9 of the actor.
        #expect(Self.decode(page([0x32, 0x02, 0x48, 0x01])) == nil)
        // Field 3 of the page.
        #expect(Self.decode(page(plain) + [0x18, 0x01]) == nil)
        // The actor twice (protobuf merges the two).
        #expect(Self.decode(page([0x32, 0x03, 0x0A, 0x01, 0x61, 0x32, 0x03, 0x1A, 0x01, 0x62])) == nil)
        // The tenant (field 5) as bytes that are not UTF-8.
        #expect(Self.decode(page([0x2A, 0x02, 0xC3, 0x28])) == nil)
        // seq (field 2) as a length-delimited field; the id (field 1) as a varint.
        #expect(Self.decode(page([0x12, 0x01, 0x01])) == nil)
        #expect(Self.decode(page([0x08, 0x01])) == nil)
        // The outcome (an enum) as a length-delimited field; a varint of 11 bytes; a Timestamp with field 3.
        #expect(Self.decode(page([0x5A, 0x01, 0x01])) == nil)
        #expect(Self.decode(page([0x10] + Array(repeating: 0xFF, count: 10) + [0x01])) == nil)
        #expect(Self.decode(page([0x1A, 0x04, 0x08, 0x01, 0x18, 0x01])) == nil)
        // Cut short: swift-protobuf reports the error.
        #expect(Self.decode(Array(page(plain).dropLast())) == nil)
        #expect(throws: (any Error).self) { try Vigil_V1_QueryResponse(serializedBytes: Array(page(plain).dropLast())) }
    }
}
