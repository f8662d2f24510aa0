import NIOCore
import SwiftProtobuf
import Testing
import VigilCore
import VigilProto
import VigilServer
import VigilWire

/// The server's connection handling over real TCP, frame by frame: what it
/// answers to every kind of peer and every protocol mistake, flow control,
/// deadlines, cancellation and graceful shutdown.
@Suite("Connections over TCP")
struct ConnectionTests {
    // MARK: Helpers

    static func getRequest(id: String = randomEventID()) -> Vigil_V1_GetRequest {
        Vigil_V1_GetRequest.with { $0.id = id }
    }

    /// A Get call for an id nobody stored: proves the connection still serves calls.
    static func expectGetNotFound(on connection: RawConnection, streamID: UInt32, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        try await connection.startCall(streamID: streamID, method: .get, request: getRequest())
        let (status, messages) = try await connection.readCall(streamID: streamID, sourceLocation: sourceLocation)
        #expect(status.statusCode == .notFound, "\(status)", sourceLocation: sourceLocation)
        #expect(messages.isEmpty, sourceLocation: sourceLocation)
    }

    static func expectGoAway(
        _ frame: Frame, code: StatusCode, lastStreamID: UInt32, sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        #expect(frame.type == .goAway, "\(frame)", sourceLocation: sourceLocation)
        #expect(frame.streamID == 0, sourceLocation: sourceLocation)
        let goAway = try frame.decode(Vigil_V1_GoAway.self)
        #expect(goAway.code == code.rawValue, "GOAWAY \(StatusCode(wireValue: goAway.code)): \(goAway.message)", sourceLocation: sourceLocation)
        #expect(goAway.lastStreamID == lastStreamID, sourceLocation: sourceLocation)
        #expect(!goAway.message.isEmpty, "a GOAWAY must say why", sourceLocation: sourceLocation)
    }

    /// Reads the fatal GOAWAY and then expects the server to close with nothing more.
    static func expectFatalGoAway(
        on connection: RawConnection, code: StatusCode, lastStreamID: UInt32, sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let frame = try await connection.readFrame(sourceLocation: sourceLocation)
        try expectGoAway(frame, code: code, lastStreamID: lastStreamID, sourceLocation: sourceLocation)
        let rest = try await connection.readUntilClosed(sourceLocation: sourceLocation)
        #expect(rest.isEmpty, "nothing may follow a fatal GOAWAY: \(rest)", sourceLocation: sourceLocation)
    }

    /// Splits bytes into frames (no preface).
    static func frames(in bytes: [UInt8]) throws -> (frames: [Frame], leftover: Int) {
        var decoder = FrameDecoder(maxFrameSize: 1 << 24, expectPreface: false)
        var buffer = ByteBuffer(bytes: bytes)
        var frames: [Frame] = []
        while let item = try decoder.decode(buffer: &buffer) {
            guard case .frame(let frame) = item else {
                throw RawConnectionError(description: "unexpected \(item)")
            }
            frames.append(frame)
        }
        return (frames, buffer.readableBytes)
    }

    static func seed(_ count: Int, on connection: RawConnection, streamID: UInt32) async throws {
        let response = try await connection.ingest((0..<count).map { makeTestEvent(index: $0) }, streamID: streamID)
        #expect(response.count == UInt32(count))
    }

    // MARK: Peers that do not speak Vigil

    @Test("a garbage preface: the server closes without answering")
    func garbagePreface() async throws {
        try await withTestServer { server in
            try await RawByteConnection.with(port: server.port) { connection in
                try await connection.send(bytes: Array("XXXXXXXX".utf8))
                let reply = try await connection.readUntilClosed()
                #expect(!reply.starts(with: Preface.magic), "the server must not answer garbage with a Vigil preface")
                #expect(reply.isEmpty, "the server must close without a word, got \(reply)")
            }
        }
    }

    @Test("an HTTP request: the server answers 400 naming the Vigil protocol, then closes")
    func httpRequest() async throws {
        try await withTestServer { server in
            try await RawByteConnection.with(port: server.port) { connection in
                try await connection.send(bytes: Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
                let reply = String(decoding: try await connection.readUntilClosed(), as: UTF8.self)
                #expect(reply.hasPrefix("HTTP/1.1 400"), "\(reply)")
                let parts = reply.split(separator: "\r\n\r\n", maxSplits: 1, omittingEmptySubsequences: false)
                try #require(parts.count == 2, "the answer needs headers and a body: \(reply)")
                let head = parts[0]
                let body = parts[1]
                #expect(body.contains("Vigil"), "the body must name the protocol: \(body)")
                #expect(head.contains("Content-Length: \(body.utf8.count)"), "\(head)")
                #expect(head.contains("Connection: close"))
            }
        }
    }

    @Test("a TLS ClientHello: the server closes with nothing sent")
    func tlsClientHello() async throws {
        try await withTestServer { server in
            try await RawByteConnection.with(port: server.port) { connection in
                // A TLS 1.0 record header (handshake, 0xa5 bytes) and the start of a ClientHello.
                var hello: [UInt8] = [0x16, 0x03, 0x01, 0x00, 0xA5, 0x01, 0x00, 0x00, 0xA1, 0x03, 0x03]
                hello += (0..<(5 + 0xA5 - hello.count)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
                try await connection.send(bytes: hello)
                let reply = try await connection.readUntilClosed()
                #expect(reply.isEmpty, "the server must close without a word, got \(reply.count) bytes")
            }
        }
    }

    @Test("an unsupported major version: the server's preface, GOAWAY FAILED_PRECONDITION (9), then a close")
    func unsupportedVersion() async throws {
        try await withTestServer { server in
            try await RawByteConnection.with(port: server.port) { connection in
                try await connection.send(bytes: Array("VGIL".utf8) + [2, 0, 0, 0])
                let reply = try await connection.readUntilClosed()
                // README, "Connection setup": "A different major version is answered with the
                // server's preface, a GOAWAY with FAILED_PRECONDITION, and a close."
                #expect(
                    Array(reply.prefix(Preface.size)) == Array(Preface.current.bytes.readableBytesView),
                    "the answer must start with the server's own preface (VGIL 1 0 0 0) so the client learns its version; got \(reply.prefix(Preface.size))")
                let afterPreface = reply.starts(with: Preface.magic) ? Array(reply.dropFirst(Preface.size)) : reply
                let (frames, leftover) = try Self.frames(in: afterPreface)
                #expect(leftover == 0)
                try #require(frames.count == 1, "expected exactly one GOAWAY, got \(frames)")
                try Self.expectGoAway(frames[0], code: .failedPrecondition, lastStreamID: 0)
            }
        }
    }

    // MARK: Protocol errors

    @Test("frames before HELLO: GOAWAY UNAUTHENTICATED (16), then the server closes")
    func framesBeforeHello() async throws {
        try await withTestServer { server in
            try await RawConnection.with(port: server.port) { connection in
                try await connection.sendPreface()
                let preface = try await connection.read()
                #expect(preface == .preface(.vigil(.current)))
                try await connection.startCall(streamID: 1, method: .get, request: Self.getRequest())
                try await Self.expectFatalGoAway(on: connection, code: .unauthenticated, lastStreamID: 0)
            }
        }
    }

    @Test("HELLO with a max_frame_size below 131,072: GOAWAY INVALID_ARGUMENT")
    func helloFrameSizeTooSmall() async throws {
        try await withTestServer { server in
            try await RawConnection.with(port: server.port) { connection in
                try await connection.sendPreface()
                #expect(try await connection.read() == .preface(.vigil(.current)))
                let hello = Vigil_V1_Hello.with {
                    $0.majorVersion = 1
                    $0.maxFrameSize = 4096
                }
                try await connection.send(Frame(type: .hello, streamID: 0, message: hello))
                try await Self.expectFatalGoAway(on: connection, code: .invalidArgument, lastStreamID: 0)
            }
        }
    }

    @Test("the handshake answers with the server's limits")
    func handshake() async throws {
        try await withTestServer(configure: { $0.maxFrameSize = 131_072 }) { server in
            try await RawConnection.with(port: server.port) { connection in
                let welcome = try await connection.handshake()
                #expect(welcome.majorVersion == 1)
                #expect(welcome.minorVersion == 0)
                #expect(welcome.maxFrameSize == 131_072)
                #expect(welcome.maxConcurrentCalls == UInt32(ServerConfiguration().maxConcurrentCalls))
                #expect(!welcome.serverVersion.isEmpty)
            }
        }
    }

    @Test("a WINDOW frame whose payload is not a Window message: GOAWAY INVALID_ARGUMENT")
    func malformedWindow() async throws {
        try await withTestServer { server in
            try await RawConnection.with(port: server.port) { connection in
                try await connection.handshake()
                // A subscription from now on an empty store: a call that stays open, sending nothing.
                try await connection.startCall(streamID: 1, method: .subscribe, request: Vigil_V1_SubscribeRequest())
                #expect(try await connection.pingBarrier().isEmpty)
                // Tag 0xFF: field 31 with wire type 7, which protobuf does not have.
                try await connection.send(Frame(type: .window, streamID: 1, payload: ByteBuffer(bytes: [0xFF, 0x01])))
                let (goAway, _) = try await connection.readUntil(.goAway, streamID: 0)
                try Self.expectGoAway(goAway, code: .invalidArgument, lastStreamID: 1)
                _ = try await connection.readUntilClosed()
            }
        }
    }

    @Test("a call on an even stream id: GOAWAY INVALID_ARGUMENT")
    func evenStreamID() async throws {
        try await withTestServer { server in
            try await RawConnection.with(port: server.port) { connection in
                try await connection.handshake()
                try await connection.startCall(streamID: 2, method: .get, request: Self.getRequest())
                try await Self.expectFatalGoAway(on: connection, code: .invalidArgument, lastStreamID: 0)
            }
        }
    }

    @Test("a reused or decreasing stream id: GOAWAY INVALID_ARGUMENT", arguments: [(UInt32(1), UInt32(1)), (5, 3)])
    func reusedStreamID(first: UInt32, second: UInt32) async throws {
        try await withTestServer { server in
            try await RawConnection.with(port: server.port) { connection in
                try await connection.handshake()
                try await Self.expectGetNotFound(on: connection, streamID: first)
                try await connection.startCall(streamID: second, method: .get, request: Self.getRequest())
                try await Self.expectFatalGoAway(on: connection, code: .invalidArgument, lastStreamID: first)
            }
        }
    }

    @Test(
        "a frame header that breaks the rules: GOAWAY INVALID_ARGUMENT",
        arguments: [
            ("unknown frame type 0x7f", FrameHeader(length: 0, typeByte: 0x7F, flags: [], streamID: 1)),
            ("HEADERS with END_STREAM", FrameHeader(length: 0, type: .headers, flags: .endStream, streamID: 1)),
            ("MESSAGE with flag 0x80", FrameHeader(length: 0, typeByte: FrameType.message.rawValue, flags: FrameFlags(rawValue: 0x80), streamID: 1)),
            ("HEADERS on stream 0", FrameHeader(length: 0, type: .headers, streamID: 0)),
            ("PING on stream 1", FrameHeader(length: 0, type: .ping, streamID: 1)),
        ])
    func badFrameHeader(_ name: String, _ header: FrameHeader) async throws {
        try await withTestServer { server in
            try await RawConnection.with(port: server.port) { connection in
                try await connection.handshake()
                var bytes = ByteBuffer()
                header.write(to: &bytes)
                try await connection.send(buffer: bytes)
                try await Self.expectFatalGoAway(on: connection, code: .invalidArgument, lastStreamID: 0)
            }
        }
    }

    // MARK: Call errors that leave the connection up

    @Test("an unknown method: TRAILERS UNIMPLEMENTED (12), and the connection keeps working")
    func unknownMethod() async throws {
        try await withTestServer { server in
            try await RawConnection.with(port: server.port) { connection in
                try await connection.handshake()
                try await connection.send([
                    RawConnection.headers(streamID: 1, method: "vigil.v1.Audit/DoesNotExist"),
                    Frame(type: .message, flags: .endStream, streamID: 1, message: Self.getRequest()),
                ])
                let (status, messages) = try await connection.readCall(streamID: 1)
                #expect(status.statusCode == .unimplemented, "\(status)")
                #expect(status.message.contains("DoesNotExist"), "\(status.message)")
                #expect(messages.isEmpty)
                try await Self.expectGetNotFound(on: connection, streamID: 3)
            }
        }
    }

    @Test("malformed protobuf in the request: TRAILERS INVALID_ARGUMENT (3)", arguments: [AuditMethod.ingest, .query, .get])
    func malformedRequest(method: AuditMethod) async throws {
        try await withTestServer { server in
            try await RawConnection.with(port: server.port) { connection in
                try await connection.handshake()
                try await connection.send([
                    RawConnection.headers(streamID: 1, method: method.rawValue),
                    Frame(type: .message, flags: .endStream, streamID: 1, payload: ByteBuffer(bytes: [0xFF, 0xFF, 0xFF])),
                ])
                let (status, messages) = try await connection.readCall(streamID: 1)
                #expect(status.statusCode == .invalidArgument, "\(status)")
                #expect(messages.isEmpty)
                try await Self.expectGetNotFound(on: connection, streamID: 3)
            }
        }
    }

    @Test("COMPRESSED on a payload that is not zlib: TRAILERS INVALID_ARGUMENT; a real zlib payload works")
    func compressedNotZlib() async throws {
        try await withTestServer { server in
            try await RawConnection.with(port: server.port) { connection in
                try await connection.handshake()
                try await connection.send([
                    RawConnection.headers(streamID: 1, method: AuditMethod.ingest.rawValue),
                    Frame(type: .message, flags: [.endStream, .compressed], streamID: 1,
                          payload: ByteBuffer(string: "this is certainly not a zlib stream")),
                ])
                let (status, messages) = try await connection.readCall(streamID: 1)
                #expect(status.statusCode == .invalidArgument, "\(status)")
                #expect(messages.isEmpty)

                let request = Vigil_V1_IngestRequest.with { $0.events = [makeTestEvent()] }
                try await connection.send([
                    RawConnection.headers(streamID: 3, method: AuditMethod.ingest.rawValue),
                    Frame(type: .message, flags: [.endStream, .compressed], streamID: 3,
                          payload: MessageCompression.compress(request.serializedBuffer())),
                ])
                let (okStatus, okMessages) = try await connection.readCall(streamID: 3)
                #expect(okStatus.statusCode == .ok, "\(okStatus)")
                try #require(okMessages.count == 1)
                #expect(try okMessages[0].payload.decodeMessage(Vigil_V1_IngestResponse.self).count == 1)
            }
        }
    }

    @Test("an oversized MESSAGE is refused with RESOURCE_EXHAUSTED before its payload is sent, and skipped")
    func oversizedMessage() async throws {
        try await withTestServer(configure: { $0.maxFrameSize = 131_072 }) { server in
            try await RawConnection.with(port: server.port) { connection in
                let welcome = try await connection.handshake()
                #expect(welcome.maxFrameSize == 131_072)
                try await connection.send(RawConnection.headers(streamID: 1, method: AuditMethod.ingest.rawValue))

                let declared = 10_000_000
                let sentFirst = 1_000
                var start = ByteBuffer()
                FrameHeader(length: UInt32(declared), type: .message, flags: .endStream, streamID: 1).write(to: &start)
                start.writeRepeatingByte(0xAB, count: sentFirst)
                try await connection.send(buffer: start)

                // The answer comes while 9,999,000 bytes are still unsent: the
                // server decided from the header alone.
                let refusal = try await connection.readFrame()
                #expect(refusal.type == .trailers, "\(refusal)")
                #expect(refusal.streamID == 1)
                let status = try refusal.decode(Vigil_V1_Status.self)
                #expect(status.statusCode == .resourceExhausted, "\(status)")

                // The rest is skipped; the connection carries on with the next frame.
                var rest = ByteBuffer()
                rest.writeRepeatingByte(0xAB, count: declared - sentFirst)
                try await connection.send(buffer: rest)
                let response = try await connection.ingest([makeTestEvent()], streamID: 3)
                #expect(response.count == 1)
                #expect(try await connection.pingBarrier().isEmpty)
            }
        }
    }

    @Test("PING is answered with a PONG carrying the identical payload")
    func pingPong() async throws {
        try await withTestServer { server in
            try await RawConnection.with(port: server.port) { connection in
                try await connection.handshake()
                let ping = Frame(type: .ping, streamID: 0, message: Vigil_V1_Ping.with { $0.opaque = 0x0123_4567_89AB_CDEF })
                try await connection.send(ping)
                let pong = try await connection.readFrame()
                #expect(pong.type == .pong)
                #expect(pong.streamID == 0)
                #expect(pong.flags == [])
                #expect(pong.payload == ping.payload)
                #expect(try pong.decode(Vigil_V1_Ping.self).opaque == 0x0123_4567_89AB_CDEF)
            }
        }
    }

    // MARK: Deadlines

    @Test("a Query blocked on flow control past its deadline: TRAILERS DEADLINE_EXCEEDED (4)")
    func deadlineWhileRunning() async throws {
        try await withTestServer { server in
            try await RawConnection.with(port: server.port) { connection in
                try await connection.handshake()
                try await Self.seed(5, on: connection, streamID: 1)
                try await connection.startCall(
                    streamID: 3, method: .query, request: Vigil_V1_QueryRequest(), timeoutMs: 200, initialWindow: 0)
                let (status, messages) = try await connection.readCall(streamID: 3)
                #expect(status.statusCode == .deadlineExceeded, "\(status)")
                #expect(messages.isEmpty, "no credit was granted, so no page may arrive")
                try await Self.expectGetNotFound(on: connection, streamID: 5)
            }
        }
    }

    @Test("a call whose request never comes: TRAILERS DEADLINE_EXCEEDED (4)")
    func deadlineBeforeRequest() async throws {
        try await withTestServer { server in
            try await RawConnection.with(port: server.port) { connection in
                try await connection.handshake()
                try await connection.send(RawConnection.headers(streamID: 1, method: AuditMethod.get.rawValue, timeoutMs: 100))
                let (status, messages) = try await connection.readCall(streamID: 1)
                #expect(status.statusCode == .deadlineExceeded, "\(status)")
                #expect(messages.isEmpty)
                // A request that arrives too late is ignored; the connection keeps working.
                try await connection.send(Frame(type: .message, flags: .endStream, streamID: 1, message: Self.getRequest()))
                try await Self.expectGetNotFound(on: connection, streamID: 3)
                #expect(try await connection.pingBarrier().isEmpty)
            }
        }
    }

    // MARK: Cancel and flow control

    @Test("CANCEL of a running Query: no TRAILERS for it, and the connection serves the next call")
    func cancelRunningCall() async throws {
        try await withTestServer { server in
            try await RawConnection.with(port: server.port) { connection in
                try await connection.handshake()
                try await Self.seed(5, on: connection, streamID: 1)
                try await connection.startCall(streamID: 3, method: .query, request: Vigil_V1_QueryRequest(), initialWindow: 0)
                // The call runs and waits for credit: nothing arrives for it.
                #expect(try await connection.pingBarrier().isEmpty)

                try await connection.send(Frame(type: .cancel, streamID: 3, message: Vigil_V1_Cancel.with { $0.reason = "test" }))
                // readCall fails on any frame of stream 3.
                try await Self.expectGetNotFound(on: connection, streamID: 5)
                // Credit for the cancelled call is ignored, and still nothing comes for it.
                try await connection.sendWindow(streamID: 3, messages: 10)
                #expect(try await connection.pingBarrier().isEmpty)
                try await Self.expectGetNotFound(on: connection, streamID: 7)
            }
        }
    }

    @Test("WINDOW flow control: exactly the granted number of pages arrives")
    func windowFlowControl() async throws {
        try await withTestServer { server in
            try await RawConnection.with(port: server.port) { connection in
                try await connection.handshake()
                try await Self.seed(50, on: connection, streamID: 1)
                let request = Vigil_V1_QueryRequest.with { $0.pageSize = 1 }
                try await connection.startCall(streamID: 3, method: .query, request: request, initialWindow: 2)

                var seen: [String] = []
                func readPages(_ count: Int) async throws {
                    for _ in 0..<count {
                        let frame = try await connection.readFrame()
                        try #require(frame.type == .message && frame.streamID == 3, "expected a page, got \(frame)")
                        let page = try frame.payload.decodeMessage(Vigil_V1_QueryResponse.self)
                        #expect(page.events.count == 1)
                        #expect(!page.cursor.isEmpty)
                        seen += page.events.map(\.id)
                    }
                }

                try await readPages(2)
                let afterTwo = try await connection.pingBarrier()
                #expect(afterTwo.isEmpty, "only 2 pages were granted, got more: \(afterTwo)")

                try await connection.sendWindow(streamID: 3, messages: 3)
                try await readPages(3)
                let afterFive = try await connection.pingBarrier()
                #expect(afterFive.isEmpty, "only 3 more pages were granted, got more: \(afterFive)")

                #expect(seen.count == 5)
                #expect(Set(seen).count == 5, "every page holds a different event")
            }
        }
    }

    @Test("100 Ingest calls pipelined on one connection: 100 OK TRAILERS with disjoint seq ranges")
    func pipelinedIngest() async throws {
        try await withTestServer { server in
            try await RawConnection.with(port: server.port) { connection in
                try await connection.handshake()
                var frames: [Frame] = []
                var sizes: [UInt32: Int] = [:]
                for call in 0..<100 {
                    let streamID = UInt32(2 * call + 1)
                    let size = call % 3 + 1
                    sizes[streamID] = size
                    let request = Vigil_V1_IngestRequest.with {
                        $0.events = (0..<size).map { makeTestEvent(index: call * 10 + $0) }
                    }
                    frames += RawConnection.call(streamID: streamID, method: .ingest, request: request)
                }
                try await connection.send(frames)

                var responses: [UInt32: Vigil_V1_IngestResponse] = [:]
                var statuses: [UInt32: Vigil_V1_Status] = [:]
                while statuses.count < 100 {
                    let frame = try await connection.readFrame()
                    try #require(sizes[frame.streamID] != nil, "a frame for a stream no call used: \(frame)")
                    #expect(statuses[frame.streamID] == nil, "a frame after the TRAILERS of its call: \(frame)")
                    switch frame.type {
                    case .message:
                        #expect(responses[frame.streamID] == nil, "two responses for one unary call")
                        responses[frame.streamID] = try frame.payload.decodeMessage(Vigil_V1_IngestResponse.self)
                    case .trailers:
                        statuses[frame.streamID] = try frame.decode(Vigil_V1_Status.self)
                    default:
                        Issue.record("unexpected \(frame)")
                    }
                }
                #expect(statuses.values.allSatisfy { $0.statusCode == .ok }, "\(statuses.values.filter { $0.code != 0 })")
                #expect(responses.count == 100)

                var ranges: [ClosedRange<UInt64>] = []
                for (streamID, response) in responses {
                    #expect(Int(response.count) == sizes[streamID])
                    #expect(response.lastSeq - response.firstSeq + 1 == UInt64(response.count))
                    ranges.append(response.firstSeq...response.lastSeq)
                }
                ranges.sort { $0.lowerBound < $1.lowerBound }
                for (earlier, later) in zip(ranges, ranges.dropFirst()) {
                    #expect(earlier.upperBound < later.lowerBound, "seq ranges overlap: \(earlier) and \(later)")
                }
                #expect(ranges.reduce(0) { $0 + $1.count } == sizes.values.reduce(0, +))
                #expect(try await connection.pingBarrier().isEmpty)
            }
        }
    }

    @Test("a request MESSAGE without END_STREAM: TRAILERS INVALID_ARGUMENT; the connection keeps working")
    func messageWithoutEndStream() async throws {
        try await withTestServer { server in
            try await RawConnection.with(port: server.port) { connection in
                try await connection.handshake()
                try await connection.send([
                    RawConnection.headers(streamID: 1, method: AuditMethod.get.rawValue),
                    Frame(type: .message, streamID: 1, message: Self.getRequest()),
                ])
                let (status, messages) = try await connection.readCall(streamID: 1)
                #expect(status.statusCode == .invalidArgument, "\(status)")
                #expect(messages.isEmpty)
                // The rest of that call is ignored.
                try await connection.send(Frame(type: .message, flags: .endStream, streamID: 1, message: Self.getRequest()))
                try await Self.expectGetNotFound(on: connection, streamID: 3)
                #expect(try await connection.pingBarrier().isEmpty)
            }
        }
    }

    @Test("one call more than max_concurrent_calls: TRAILERS RESOURCE_EXHAUSTED (8) for it, the others go on")
    func tooManyConcurrentCalls() async throws {
        try await withTestServer(configure: { $0.maxConcurrentCalls = 2 }) { server in
            try await RawConnection.with(port: server.port) { connection in
                let welcome = try await connection.handshake()
                #expect(welcome.maxConcurrentCalls == 2)
                try await Self.seed(3, on: connection, streamID: 1)
                // Two Queries that wait for credit fill the connection.
                try await connection.startCall(streamID: 3, method: .query, request: Vigil_V1_QueryRequest(), initialWindow: 0)
                try await connection.startCall(streamID: 5, method: .query, request: Vigil_V1_QueryRequest(), initialWindow: 0)
                try await connection.startCall(streamID: 7, method: .get, request: Self.getRequest())
                let (refused, refusedMessages) = try await connection.readCall(streamID: 7)
                #expect(refused.statusCode == .resourceExhausted, "\(refused)")
                #expect(refusedMessages.isEmpty)

                // Both calls in flight still complete.
                try await connection.sendWindow(streamID: 3, messages: 10)
                let (first, firstPages) = try await connection.readCall(streamID: 3)
                #expect(first.statusCode == .ok, "\(first)")
                #expect(firstPages.count == 1)
                try await connection.sendWindow(streamID: 5, messages: 10)
                let (second, secondPages) = try await connection.readCall(streamID: 5)
                #expect(second.statusCode == .ok, "\(second)")
                #expect(secondPages.count == 1)
            }
        }
    }

    @Test("an oversized HELLO: GOAWAY RESOURCE_EXHAUSTED (8) before its payload is sent")
    func oversizedHello() async throws {
        try await withTestServer(configure: { $0.maxFrameSize = 131_072 }) { server in
            try await RawConnection.with(port: server.port) { connection in
                try await connection.sendPreface()
                #expect(try await connection.read() == .preface(.vigil(.current)))
                var header = ByteBuffer()
                FrameHeader(length: 10_000_000, type: .hello, streamID: 0).write(to: &header)
                header.writeRepeatingByte(0, count: 100)
                try await connection.send(buffer: header)
                try await Self.expectFatalGoAway(on: connection, code: .resourceExhausted, lastStreamID: 0)
            }
        }
    }

    @Test("an oversized MESSAGE on a call that is already running ends it with RESOURCE_EXHAUSTED (8)")
    func oversizedMessageOnRunningCall() async throws {
        try await withTestServer(configure: { $0.maxFrameSize = 131_072 }) { server in
            try await RawConnection.with(port: server.port) { connection in
                try await connection.handshake()
                try await Self.seed(3, on: connection, streamID: 1)
                try await connection.startCall(streamID: 3, method: .query, request: Vigil_V1_QueryRequest(), initialWindow: 0)
                var frame = ByteBuffer()
                FrameHeader(length: 200_000, type: .message, flags: .endStream, streamID: 3).write(to: &frame)
                frame.writeRepeatingByte(0, count: 200_000)
                try await connection.send(buffer: frame)
                let (status, messages) = try await connection.readCall(streamID: 3)
                #expect(status.statusCode == .resourceExhausted, "\(status)")
                #expect(messages.isEmpty)
                try await Self.expectGetNotFound(on: connection, streamID: 5)
            }
        }
    }

    @Test("a client that sends the preface but no HELLO in time: GOAWAY DEADLINE_EXCEEDED (4)")
    func handshakeTimeoutNoHello() async throws {
        try await withTestServer(configure: { $0.handshakeTimeout = .milliseconds(200) }) { server in
            try await RawConnection.with(port: server.port) { connection in
                try await connection.sendPreface()
                #expect(try await connection.read() == .preface(.vigil(.current)))
                try await Self.expectFatalGoAway(on: connection, code: .deadlineExceeded, lastStreamID: 0)
            }
        }
    }

    @Test("a client that sends nothing in time: the server closes without a word")
    func handshakeTimeoutSilent() async throws {
        try await withTestServer(configure: { $0.handshakeTimeout = .milliseconds(200) }) { server in
            try await RawByteConnection.with(port: server.port) { connection in
                let reply = try await connection.readUntilClosed()
                #expect(reply.isEmpty, "\(reply)")
            }
        }
    }

    @Test("without initial_window a streaming call gets the default window of 8 messages")
    func defaultWindow() async throws {
        try await withTestServer { server in
            try await RawConnection.with(port: server.port) { connection in
                try await connection.handshake()
                try await Self.seed(20, on: connection, streamID: 1)
                let request = Vigil_V1_QueryRequest.with { $0.pageSize = 1 }
                try await connection.startCall(streamID: 3, method: .query, request: request)
                for _ in 0..<8 {
                    let frame = try await connection.readFrame()
                    #expect(frame.type == .message && frame.streamID == 3, "\(frame)")
                }
                let more = try await connection.pingBarrier()
                #expect(more.isEmpty, "only the default window of 8 may arrive before a WINDOW: \(more)")
            }
        }
    }

    @Test("pages are cut to the client's Hello.max_frame_size")
    func pagesFitClientFrameSize() async throws {
        try await withTestServer { server in
            try await RawConnection.with(port: server.port, maxFrameSize: 131_072) { connection in
                try await connection.handshake(maxFrameSize: 131_072)
                // Events of about 40 KB: three fit a frame of 128 KiB, a page of 20 does not.
                let events = (0..<20).map { index in
                    var event = makeTestEvent(index: index)
                    event.changes = (0..<10).map { change in
                        Vigil_V1_Change.with {
                            $0.field = "field\(change)"
                            $0.new = String(repeating: "x", count: 4_000)
                        }
                    }
                    return event
                }
                let response = try await connection.ingest(events, streamID: 1)
                #expect(response.count == 20)
                let request = Vigil_V1_QueryRequest.with { $0.pageSize = 20 }
                try await connection.startCall(streamID: 3, method: .query, request: request, initialWindow: 1_000)
                // The client's decoder refuses anything over 131,072 bytes (it would arrive as `.oversized`).
                let (status, messages) = try await connection.readCall(streamID: 3)
                #expect(status.statusCode == .ok, "\(status)")
                #expect(messages.count > 1)
                #expect(messages.allSatisfy { $0.payload.readableBytes <= 131_072 })
                let pages = try messages.map { try $0.payload.decodeMessage(Vigil_V1_QueryResponse.self) }
                let received = pages.flatMap(\.events)
                #expect(received.count == 20)
                #expect(Set(received.map(\.id)).count == 20)
                // Each part's cursor resumes after its own last event.
                for page in pages {
                    let cursor = try QueryCursor(
                        decoding: page.cursor, order: request.order, filterFingerprint: EventFilter.fingerprint(of: request.filter))
                    let last = try #require(page.events.last)
                    #expect(cursor.occurredAt == last.occurredAt.unixNanos && cursor.seq == last.seq)
                }
            }
        }
    }

    @Test("an event larger than the client's frame limit ends a Query (after the events before it) and a Get with FAILED_PRECONDITION")
    func eventLargerThanClientFrame() async throws {
        try await withTestServer(configure: { $0.eventLimits.maxEventBytes = 400_000 }) { server in
            try await RawConnection.with(port: server.port, maxFrameSize: 131_072) { connection in
                try await connection.handshake(maxFrameSize: 131_072)
                var small = makeTestEvent(index: 0)
                small.occurredAt = .init(unixNanos: currentUnixNanos() - 2_000_000_000)
                var large = makeTestEvent(index: 1)
                large.occurredAt = .init(unixNanos: currentUnixNanos() - 1_000_000_000)
                large.id = "0190f3c2-5b1e-7c3a-9f00-1a2b3c4d5e6f"
                // About 240 KB: within the raised event limit, over the client's 128 KiB frames.
                large.changes = (0..<30).map { change in
                    Vigil_V1_Change.with {
                        $0.field = "field\(change)"
                        $0.old = String(repeating: "o", count: 4_000)
                        $0.new = String(repeating: "n", count: 4_000)
                    }
                }
                _ = try await connection.ingest([small], streamID: 1)
                _ = try await connection.ingest([large], streamID: 3)
                // Oldest first with pages of one: the small event, then the large one.
                let request = Vigil_V1_QueryRequest.with {
                    $0.pageSize = 1
                    $0.order = .oldestFirst
                }
                try await connection.startCall(streamID: 5, method: .query, request: request, initialWindow: 10)
                let (status, messages) = try await connection.readCall(streamID: 5)
                #expect(status.statusCode == .failedPrecondition, "\(status)")
                #expect(status.message.contains("max frame size of 131072"), "\(status.message)")
                #expect(messages.count == 1)
                let page = try #require(messages.first).payload.decodeMessage(Vigil_V1_QueryResponse.self)
                #expect(page.events.map(\.seq) == [1])
                // Get of that event likewise; the connection stays up.
                try await connection.startCall(streamID: 7, method: .get, request: Vigil_V1_GetRequest.with { $0.id = large.id })
                let (getStatus, getMessages) = try await connection.readCall(streamID: 7)
                #expect(getStatus.statusCode == .failedPrecondition, "\(getStatus)")
                #expect(getMessages.isEmpty)
            }
        }
    }

    // MARK: Graceful shutdown

    @Test("shutdown with a call in flight: GOAWAY UNAVAILABLE, new calls refused, the call completes, then the server closes")
    func goAwayWithCallInFlight() async throws {
        try await withTestServer { server in
            try await RawConnection.with(port: server.port) { connection in
                try await connection.handshake()
                try await Self.seed(5, on: connection, streamID: 1)
                try await connection.startCall(streamID: 3, method: .query, request: Vigil_V1_QueryRequest(), initialWindow: 0)
                // The call is running (blocked on credit) once the PONG is back.
                #expect(try await connection.pingBarrier().isEmpty)

                await server.shutDown()
                let goAway = try await connection.readFrame()
                try Self.expectGoAway(goAway, code: .unavailable, lastStreamID: 3)

                // A call opened after the GOAWAY is refused.
                try await connection.startCall(streamID: 5, method: .get, request: Self.getRequest())
                let (refused, refusedMessages) = try await connection.readCall(streamID: 5)
                #expect(refused.statusCode == .unavailable, "\(refused)")
                #expect(refusedMessages.isEmpty)

                // The call in flight still completes.
                try await connection.sendWindow(streamID: 3, messages: 100)
                let (status, messages) = try await connection.readCall(streamID: 3)
                #expect(status.statusCode == .ok, "\(status)")
                let events = try messages.flatMap { try $0.payload.decodeMessage(Vigil_V1_QueryResponse.self).events }
                #expect(events.count == 5)

                // Then the server closes the connection.
                let rest = try await connection.readUntilClosed()
                #expect(rest.isEmpty, "nothing may follow the last call's TRAILERS: \(rest)")
            }
        }
    }

    @Test("shutdown while a call waits for its request: GOAWAY, then that call ends with UNAVAILABLE and the server closes, without waiting for the request")
    func goAwayEndsCallWaitingForRequest() async throws {
        try await withTestServer { server in
            try await RawConnection.with(port: server.port) { connection in
                try await connection.handshake()
                try await connection.send(RawConnection.headers(streamID: 1, method: AuditMethod.ingest.rawValue))
                #expect(try await connection.pingBarrier().isEmpty)
                await server.shutDown()
                try Self.expectGoAway(try await connection.readFrame(), code: .unavailable, lastStreamID: 1)
                // Nothing was done for the call: it can be retried elsewhere.
                let (status, messages) = try await connection.readCall(streamID: 1)
                #expect(status.statusCode == .unavailable, "\(status)")
                #expect(messages.isEmpty)
                // The drain does not wait for a request that may never come (it would for 30 s).
                let rest = try await connection.readUntilClosed(timeout: .seconds(10))
                #expect(rest.isEmpty, "\(rest)")
            }
        }
    }

    @Test("shutdown of an idle connection: GOAWAY UNAVAILABLE, then the server closes")
    func goAwayIdle() async throws {
        try await withTestServer { server in
            try await RawConnection.with(port: server.port) { connection in
                try await connection.handshake()
                try await Self.expectGetNotFound(on: connection, streamID: 1)
                await server.shutDown()
                let goAway = try await connection.readFrame()
                try Self.expectGoAway(goAway, code: .unavailable, lastStreamID: 1)
                let rest = try await connection.readUntilClosed()
                #expect(rest.isEmpty, "\(rest)")
            }
        }
    }
}
