import Foundation
import NIOCore
import Testing
import VigilClient
import VigilCore
import VigilProto
import VigilServer
import VigilWire

#if canImport(Glibc)
import Glibc
#endif

/// A plain TCP socket to 127.0.0.1:`port` that the test controls byte by byte
/// and never reads: a silent peer, a garbage sender, a slow reader.
final class PlainSocket {
    let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw VigilError(.internal, "socket() failed: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            close(fd)
            throw VigilError(.unavailable, "connect() failed: errno \(errno)")
        }
    }

    func send(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if written <= 0 { return }
            offset += written
        }
    }

    func send(_ frame: Frame) {
        var buffer = ByteBuffer()
        frame.write(to: &buffer)
        send(Array(buffer.readableBytesView))
    }

    /// Whether the peer closed the connection (or reset it) within
    /// `timeout`; what it sent meanwhile is read and dropped. Polls without
    /// blocking a thread of the cooperative pool (bounded polling of a
    /// condition, not ordering).
    func closed(within timeout: Duration) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&descriptor, 1, 0) > 0 {
                var buffer = [UInt8](repeating: 0, count: 4096)
                let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if count == 0 || (count < 0 && errno != EAGAIN && errno != EWOULDBLOCK) { return true }
                continue
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    deinit { close(fd) }
}

/// Retries `body` until it succeeds or `timeout` passes (then rethrows):
/// waiting for the server to free something it frees asynchronously.
func eventually<R>(timeout: Duration = .seconds(30), _ body: () async throws -> R) async throws -> R {
    let deadline = ContinuousClock.now + timeout
    while true {
        do {
            return try await body()
        } catch {
            if ContinuousClock.now > deadline { throw error }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}

@Suite("Abuse limits")
struct AbuseLimitTests {
    @Test("one connection over max_connections: the server's preface, GOAWAY RESOURCE_EXHAUSTED (8), close; freed slots are reused")
    func maxConnections() async throws {
        try await withTestServer(configure: { $0.maxConnections = 2 }) { server in
            try await RawConnection.with(port: server.port) { first in
                try await first.handshake()
                try await RawConnection.with(port: server.port) { second in
                    try await second.handshake()
                    try await RawConnection.with(port: server.port) { third in
                        // The server refuses it at once, not waiting for this: the
                        // send may find the connection closed already.
                        try? await third.sendPreface()
                        #expect(try await third.read() == .preface(.vigil(.current)))
                        try await ConnectionTests.expectFatalGoAway(on: third, code: .resourceExhausted, lastStreamID: 0)
                    }
                    // The refused client's error says why.
                    let refused = await statusOf { _ = try await server.connect() }
                    #expect(refused == .resourceExhausted)
                }
            }
            // Both hung up: a client gets in once the server has noticed.
            let client = try await eventually { try await server.connect() }
            _ = try await client.ingest([makeTestEvent()])
            await client.close()
        }
    }

    @Test("a connection without calls for the idle timeout: GOAWAY UNAVAILABLE (14), then close")
    func idleTimeout() async throws {
        try await withTestServer(configure: { $0.idleTimeout = .milliseconds(300) }) { server in
            try await RawConnection.with(port: server.port) { connection in
                // Preface, HELLO and a call in one flight: no idle gap before the call.
                try await connection.sendPreface()
                try await connection.send(Frame(type: .hello, streamID: 0, message: Vigil_V1_Hello.with { $0.majorVersion = 1 }))
                try await connection.startCall(
                    streamID: 1, method: .ingest, request: Vigil_V1_IngestRequest.with { $0.events = [makeTestEvent()] })
                #expect(try await connection.read() == .preface(.vigil(.current)))
                #expect(try await connection.readFrame().type == .hello)
                // A call resets the clock; the timeout counts from its end.
                let (status, _) = try await connection.readCall(streamID: 1)
                #expect(status.statusCode == .ok)
                try await ConnectionTests.expectFatalGoAway(on: connection, code: .unavailable, lastStreamID: 1)
            }
        }
    }

    @Test("PINGs do not keep a connection without calls open: GOAWAY UNAVAILABLE (14) after the idle timeout")
    func pingsAreNotActivity() async throws {
        try await withTestServer(configure: { $0.idleTimeout = .milliseconds(300) }) { server in
            try await RawConnection.with(port: server.port) { connection in
                _ = try await connection.handshake()
                // PING after PING, each answered, until the server gives up on
                // the connection; before, every PING reset its idle clock.
                let giveUp = ContinuousClock.now + .seconds(20)
                var opaque: UInt64 = 1
                while ContinuousClock.now < giveUp {
                    var payload = ByteBuffer()
                    payload.writeInteger(opaque)
                    // The server may have sent its GOAWAY and closed already:
                    // then the PING cannot go out, and the GOAWAY is read below.
                    do { try await connection.send(Frame(type: .ping, streamID: 0, payload: payload)) } catch {}
                    let frame = try await connection.readFrame()
                    if frame.type == .pong {
                        opaque += 1
                        continue
                    }
                    try ConnectionTests.expectGoAway(frame, code: .unavailable, lastStreamID: 0)
                    return
                }
                Issue.record("no GOAWAY in 20 s of PINGs (\(opaque) answered)")
            }
        }
    }

    @Test("HEADERS over 16 KiB: TRAILERS RESOURCE_EXHAUSTED (8), and the connection serves the next call")
    func oversizedHeaders() async throws {
        try await withTestServer { server in
            try await RawConnection.with(port: server.port) { connection in
                _ = try await connection.handshake()
                var headers = Vigil_V1_CallHeaders()
                headers.method = AuditMethod.ingest.rawValue
                for key in 0..<4_000 { headers.metadata["key-\(key)"] = String(repeating: "v", count: 16) }
                try await connection.send(Frame(type: .headers, streamID: 1, message: headers))
                let (status, _) = try await connection.readCall(streamID: 1)
                #expect(status.statusCode == .resourceExhausted, "\(status.message)")
                #expect(status.message.contains("16384"), "\(status.message)")
                let response = try await connection.ingest([makeTestEvent()], streamID: 3)
                #expect(response.firstSeq > 0)
            }
        }
    }

    @Test("an open subscription keeps a quiet connection from being idle")
    func subscriptionIsNotIdle() async throws {
        try await withTestServer(configure: {
            $0.idleTimeout = .milliseconds(200)
            $0.heartbeatInterval = .seconds(1)
        }) { server in
            try await RawConnection.with(port: server.port) { connection in
                var request = Vigil_V1_SubscribeRequest()
                request.fromNow = true
                // Preface, HELLO and the subscription in one flight: no idle gap before it.
                try await connection.sendPreface()
                try await connection.send(Frame(type: .hello, streamID: 0, message: Vigil_V1_Hello.with { $0.majorVersion = 1 }))
                try await connection.startCall(streamID: 1, method: .subscribe, request: request)
                #expect(try await connection.read() == .preface(.vigil(.current)))
                #expect(try await connection.readFrame().type == .hello)
                // The first thing to arrive must be the heartbeat (after 1 s), not a GOAWAY (after 0.2 s).
                let frame = try await connection.readFrame()
                #expect(frame.type == .message && frame.streamID == 1, "\(frame)")
                let message = try frame.decode(Vigil_V1_SubscribeResponse.self)
                guard case .heartbeat = message.item else {
                    Issue.record("expected a heartbeat, got \(message)")
                    return
                }
                #expect(!message.cursor.isEmpty)
            }
        }
    }

    @Test("a flood of silent and garbage connections: well-behaved clients keep being served")
    func connectionFlood() async throws {
        try await withTestServer(configure: {
            $0.maxConnections = 64
            // Long enough that the silent peers still hold their slots when the
            // newcomer arrives, even on a loaded machine.
            $0.handshakeTimeout = .seconds(8)
        }) { server in
            // The whole suite runs beside this test: a HELLO may wait longer than the client's
            // default 10 s for an answer, which would fail a connect this test expects to succeed.
            @Sendable func patientConnect() async throws -> VigilClient {
                var configuration = server.clientConfiguration
                configuration.connectTimeout = .seconds(90)
                return try await VigilClient.connect(configuration)
            }
            // Garbage is refused at once; silent peers hold a slot until the handshake timeout.
            var garbage: [PlainSocket] = []
            var silent: [PlainSocket] = []
            for index in 0..<100 {
                let socket = try PlainSocket(port: server.port)
                socket.send(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n\(index)".utf8))
                garbage.append(socket)
            }
            for _ in 0..<40 { silent.append(try PlainSocket(port: server.port)) }
            // 24 slots remain for the well-behaved.
            let client = try await eventually { try await patientConnect() }
            let response = try await client.ingest((0..<100).map { makeTestEvent(index: $0) })
            #expect(response.count == 100)
            #expect(try await client.aggregate(Vigil_V1_AggregateRequest()).count == 100)

            // Fill every slot (200 silent peers for 64 slots: the server takes
            // connections from its accept queue asynchronously): a newcomer is
            // refused, with a reason...
            for _ in 0..<200 { silent.append(try PlainSocket(port: server.port)) }
            let refused = await statusOf { _ = try await patientConnect() }
            #expect(refused == .resourceExhausted, "\(refused.name)")
            // ...until the handshake timeout cuts the silent ones; the established client never noticed.
            let late = try await eventually(timeout: .seconds(120)) { try await patientConnect() }
            _ = try await late.ingest([makeTestEvent()])
            _ = try await client.ingest([makeTestEvent()])
            await late.close()
            await client.close()
            withExtendedLifetime(garbage) {}
            withExtendedLifetime(silent) {}
        }
    }
}
