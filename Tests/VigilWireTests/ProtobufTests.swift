import NIOCore
import Testing
import VigilCore
import VigilProto
import VigilWire

@Suite("Protobuf payloads")
struct ProtobufTests {
    static func fullEvent() -> Vigil_V1_AuditEvent {
        var event = Vigil_V1_AuditEvent()
        event.id = "0190f3c2-5b1e-7c3a-9f00-1a2b3c4d5e6f"
        event.seq = 123_456
        event.occurredAt = .init(seconds: 1_780_000_000, nanos: 123_456_789)
        event.receivedAt = .init(seconds: 1_780_000_001, nanos: 1)
        event.tenant = "acme"
        event.actor.id = "u-42"
        event.actor.type = .user
        event.actor.name = "Bob Ünïcode"
        event.actor.email = "bob@acme.test"
        event.action = "user.create"
        event.category = .create
        event.resource.type = "user"
        event.resource.id = "u-77"
        event.resource.name = "alice"
        var target = Vigil_V1_Resource()
        target.type = "group"
        target.id = "g-1"
        event.targets = [target, target]
        event.outcome = .denied
        event.reason = "policy.denied"
        event.sourceIp = "2001:db8::1"
        event.userAgent = "vigil-tests/1.0"
        event.traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
        event.requestID = "req-1"
        var change = Vigil_V1_Change()
        change.field = "role"
        change.old = "viewer"
        change.new = "admin"
        event.changes = [change]
        event.metadata = ["region": "eu-west-1", "project": "p1"]
        event.description_p = "Bob created alice"
        return event
    }

    @Test("serializedBuffer / decodeMessage round trip of an AuditEvent")
    func auditEventRoundTrip() throws {
        let event = Self.fullEvent()
        let buffer = event.serializedBuffer()
        let expectedBytes: [UInt8] = try event.serializedBytes()
        #expect(Array(buffer.readableBytesView) == expectedBytes)
        #expect(try buffer.decodeMessage(Vigil_V1_AuditEvent.self) == event)
        #expect(try Vigil_V1_AuditEvent(serializedBytes: ProtobufBytes(buffer)) == event)
    }

    @Test("an empty message serializes to an empty buffer")
    func emptyMessage() throws {
        #expect(Vigil_V1_AuditEvent().serializedBuffer().readableBytes == 0)
        #expect(try ByteBuffer().decodeMessage(Vigil_V1_AuditEvent.self) == Vigil_V1_AuditEvent())
    }

    @Test("decoding reads only the readable bytes of a slice")
    func decodeFromSlice() throws {
        let event = Self.fullEvent()
        var buffer = ByteBuffer(bytes: [0xFF, 0xFF, 0xFF])
        var payload = event.serializedBuffer()
        buffer.writeBuffer(&payload)
        buffer.writeBytes([0xFF])
        let slice = try #require(buffer.getSlice(at: 3, length: buffer.readableBytes - 4))
        #expect(try slice.decodeMessage(Vigil_V1_AuditEvent.self) == event)
    }

    @Test("ProtobufBytes conforms as swift-protobuf expects")
    func protobufBytes() {
        var bytes = ProtobufBytes(repeating: 7, count: 5)
        #expect(bytes.count == 5)
        bytes.withUnsafeMutableBytes { $0[4] = 9 }
        #expect(bytes.withUnsafeBytes { Array($0) } == [7, 7, 7, 7, 9])
        let fromSequence = ProtobufBytes([1, 2, 3] as [UInt8])
        #expect(Array(fromSequence.buffer.readableBytesView) == [1, 2, 3])
        #expect(ProtobufBytes(ByteBuffer()).count == 0)
    }

    @Test("a frame carries a message and decodes it back, through the frame decoder")
    func frameMessage() throws {
        let event = Self.fullEvent()
        var request = Vigil_V1_IngestRequest()
        request.events = [event, event]
        request.idempotencyKey = "batch-1"
        let frame = Frame(type: .message, flags: .endStream, streamID: 1, message: request)
        var driver = DecoderDriver()
        let decoded = try driver.feed(try encode([.preface(.current), .frame(frame)]))
        #expect(decoded.count == 2)
        guard case .frame(let received) = decoded.last else {
            Issue.record("no frame decoded")
            return
        }
        #expect(try received.decode(Vigil_V1_IngestRequest.self) == request)
    }

    @Test("trailers and goAway helpers")
    func helpers() throws {
        let error = VigilError(.invalidArgument, "bad batch", eventErrors: [.init(index: 0, field: "tenant", reason: "is required")])
        let trailers = Frame.trailers(streamID: 5, status: error.status)
        #expect(trailers.type == .trailers)
        #expect(trailers.streamID == 5)
        #expect(VigilError(status: try trailers.decode(Vigil_V1_Status.self)) == error)

        let goAway = Frame.goAway(lastStreamID: 9, code: .unavailable, message: "draining")
        #expect(goAway.type == .goAway)
        #expect(goAway.streamID == 0)
        let message = try goAway.decode(Vigil_V1_GoAway.self)
        #expect(message.lastStreamID == 9)
        #expect(message.code == 14)
        #expect(message.message == "draining")
    }

    @Test(
        "malformed protobuf payloads throw INVALID_ARGUMENT",
        arguments: [
            [0x0A, 0x05, 0x61],  // field 1, length 5, one byte
            [0x08],  // field 1 varint, no value
            [0x00, 0x00],  // field number 0
            [0x0F],  // wire type 7
            [0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],  // 11-byte varint
            [0x0A, 0x02, 0xC3, 0x28],  // string id with invalid UTF-8
        ] as [[UInt8]])
    func malformed(bytes: [UInt8]) {
        let frame = Frame(type: .message, streamID: 1, payload: ByteBuffer(bytes: bytes))
        let error = #expect(throws: VigilError.self) {
            try frame.decode(Vigil_V1_AuditEvent.self)
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("vigil.v1.AuditEvent") == true)

        let bufferError = #expect(throws: VigilError.self) {
            try ByteBuffer(bytes: bytes).decodeMessage(Vigil_V1_AuditEvent.self)
        }
        #expect(bufferError?.code == .invalidArgument)
    }
}
