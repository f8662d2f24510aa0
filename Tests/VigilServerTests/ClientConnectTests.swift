import Foundation
import Synchronization
import Testing
import VigilClient
import VigilCore
import VigilProto
import VigilWire
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// How the Swift client connects: its timeouts as given, and a server that
/// never answers.
@Suite("The Swift client's connect and timeouts")
struct ClientConnectTests {
    @Test("a connect timeout under a second is used as given, not cut to zero")
    func subSecondConnectTimeout() async throws {
        // A server on a thread of its own that answers HELLO at once: the
        // test server, with the whole suite running beside it, can take
        // most of a second to answer.
        let server = try ScriptedServer()
        var configuration = VigilClient.Configuration(host: "127.0.0.1", port: server.port)
        configuration.connectTimeout = .milliseconds(999)
        let client = try await VigilClient.connect(configuration)
        #expect(client.welcome.maxConcurrentCalls == 8, "the scripted server's Welcome")
        await client.close()
        server.finish()
    }

    // Without the timeout the connect never returns: the time limit is the
    // bound. Not an elapsed-time check: under the whole suite on 2 cores, each
    // hop of the connect waits behind the other tests' jobs, and a 300 ms
    // timeout has been seen to end after 62 s.
    @Test("a server that accepts the connection but never answers HELLO fails the connect with UNAVAILABLE after the timeout", .timeLimit(.minutes(5)))
    func silentServer() async throws {
        // A listening socket nobody accepts from: the kernel completes the
        // TCP handshake, and nothing ever answers.
        let listener = try ScriptedServer.listenOnLoopback(backlog: 8)
        defer { close(listener.descriptor) }
        var configuration = VigilClient.Configuration(host: "127.0.0.1", port: listener.port)
        configuration.connectTimeout = .milliseconds(300)
        do {
            _ = try await VigilClient.connect(configuration)
            Issue.record("connected to a server that never answered")
        } catch let error as VigilError {
            #expect(error.code == .unavailable, "\(error)")
            // Only the client's handshake timer says this.
            #expect(error.message.contains("no answer to HELLO"), "\(error.message)")
        }
    }

    @Test("a port that answers with something other than the Vigil preface (an HTTP server) fails the connect with FAILED_PRECONDITION: not worth a retry")
    func notAVigilPort() async throws {
        let listener = try ScriptedServer.listenOnLoopback(backlog: 8)
        defer { close(listener.descriptor) }
        Thread.detachNewThread {
            let connection = accept(listener.descriptor, nil, nil)
            guard connection >= 0 else { return }
            let answer = Array("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".utf8)
            _ = answer.withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            var buffer = [UInt8](repeating: 0, count: 1_024)
            while recv(connection, &buffer, buffer.count, 0) > 0 {}
            close(connection)
        }
        var configuration = VigilClient.Configuration(host: "127.0.0.1", port: listener.port)
        configuration.connectTimeout = .seconds(30)
        do {
            let client = try await VigilClient.connect(configuration)
            await client.close()
            Issue.record("connected to an HTTP server")
        } catch let error as VigilError {
            #expect(error.code == .failedPrecondition, "\(error)")
            #expect(error.message.contains("Vigil preface"), "\(error.message)")
        }
    }

    // Without the client's timer the call never returns: the time limit is the bound.
    @Test("a call whose server never answers (a write stuck in fsync) fails with DEADLINE_EXCEEDED after its timeout, not never", .timeLimit(.minutes(5)))
    func deadlineEnforcedByTheClient() async throws {
        let server = try ScriptedServer(holdOpen: true)
        var configuration = VigilClient.Configuration(host: "127.0.0.1", port: server.port)
        configuration.connectTimeout = .seconds(30)
        let client = try await VigilClient.connect(configuration)
        do {
            _ = try await client.ingest([makeTestEvent()], timeout: .milliseconds(200))
            Issue.record("an unanswered ingest succeeded")
        } catch let error as VigilError {
            #expect(error.code == .deadlineExceeded, "\(error)")
            #expect(error.message.contains("may have done it"), "\(error.message)")
        }
        await client.close()
        server.finish()
    }

    @Test("timeouts too long to count in nanoseconds are taken as none, not a crash")
    func hugeTimeouts() async throws {
        var policy = ReconnectPolicy()
        policy.initialDelay = .seconds(Int64.max / 2)
        policy.maxDelay = .seconds(Int64.max / 2)
        var generator = SystemRandomNumberGenerator()
        #expect(policy.delay(afterFailures: 3, using: &generator) > .seconds(3_600))
        try await withTestServer { server in
            let client = try await server.connect()
            #expect(try await client.health(timeout: .seconds(Int64.max)).status == .serving)
            await client.close()
        }
    }
}

/// A server that follows a script over a blocking socket, one connection:
/// for what a real server does not do on purpose.
final class ScriptedServer: @unchecked Sendable {
    let port: Int
    private let listener: Int32
    private let done = DispatchSemaphore(value: 0)

    /// Accepts one connection, answers the preface and HELLO with a Welcome,
    /// then reads frames until `until` says stop, and sends `then` and closes
    /// — or, with `holdOpen`, goes on reading, answering nothing, until the
    /// client closes.
    /// `afterWelcome`, when given, takes over the connection's socket right
    /// after the Welcome instead.
    init(
        until: @escaping @Sendable (Frame) -> Bool = { _ in false }, then reply: [Frame] = [], holdOpen: Bool = false,
        afterWelcome: (@Sendable (Int32) -> Void)? = nil
    ) throws {
        (listener, port) = try Self.listenOnLoopback(backlog: 1)
        let listener = listener
        let done = done
        Thread.detachNewThread {
            defer { done.signal() }
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else { return }
            defer { close(connection) }
            var input = ByteBuffer()
            func frames() -> [Frame] {
                var found: [Frame] = []
                while true {
                    var peek = input
                    guard let header = FrameHeader.read(from: &peek), let type = header.type,
                        let payload = peek.readSlice(length: Int(header.length))
                    else { return found }
                    input = peek
                    found.append(Frame(type: type, flags: header.flags, streamID: header.streamID, payload: payload))
                }
            }
            var welcomed = false
            var replied = false
            var bytes = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = recv(connection, &bytes, bytes.count, 0)
                guard count > 0 else { return }
                input.writeBytes(bytes[..<count])
                if !welcomed {
                    guard input.readableBytes >= Preface.size else { continue }
                    input.moveReaderIndex(forwardBy: Preface.size)
                    welcomed = true
                    let welcome = Frame(type: .hello, streamID: 0, message: Vigil_V1_Welcome.with { $0.maxConcurrentCalls = 8 })
                    Self.send([welcome], to: connection, preface: true)
                    if let afterWelcome {
                        afterWelcome(connection)
                        return
                    }
                }
                for frame in frames() where !replied && frame.type != .hello && until(frame) {
                    replied = true
                    Self.send(reply, to: connection)
                    if !holdOpen { return }
                }
            }
        }
    }

    /// A TCP socket listening on 127.0.0.1, on a port the kernel picks.
    static func listenOnLoopback(backlog: Int32) throws -> (descriptor: Int32, port: Int) {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard descriptor >= 0, bound == 0, listen(descriptor, backlog) == 0 else {
            if descriptor >= 0 { close(descriptor) }
            throw VigilError(.internal, "cannot listen on 127.0.0.1")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        return (descriptor, Int(UInt16(bigEndian: address.sin_port)))
    }

    /// Writes `frames` (after this side's preface, with `preface`) whole,
    /// however many sends it takes; stops when the peer is gone.
    static func send(_ frames: [Frame], to connection: Int32, preface: Bool = false) {
        var out = preface ? Preface.current.bytes : ByteBuffer()
        for frame in frames { frame.write(to: &out) }
        var sent = 0
        while sent < out.readableBytes {
            let count = out.withUnsafeReadableBytes { Glibc.send(connection, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { return }
            sent += count
        }
    }

    /// Waits for the script to end, and stops listening.
    func finish() {
        done.wait()
        close(listener)
    }
}

extension ClientConnectTests {
    @Test("a call the server accepted (at or below GOAWAY's last stream id) and never answered fails as 'may have run', not as refused")
    func acceptedCallLostWithTheConnection() async throws {
        let server = try ScriptedServer(
            until: { $0.type == .message && $0.streamID == 1 },
            then: [.goAway(lastStreamID: 1, code: .unavailable, message: "the server is shutting down; calls in flight finish")])
        var configuration = VigilClient.Configuration(host: "127.0.0.1", port: server.port)
        configuration.connectTimeout = .seconds(30)
        let client = try await VigilClient.connect(configuration)
        do {
            _ = try await client.ingest([makeTestEvent()])
            Issue.record("an unanswered ingest succeeded")
        } catch let error as VigilError {
            #expect(error.code == .unavailable)
            #expect(error.message.contains("may have done it"), "\(error.message)")
        }
        await client.close()
        server.finish()
    }
}

extension ClientConnectTests {
    @Test("a server that stops answering while a call waits (a path that died silently) fails the call with UNAVAILABLE after the keepalive's PING goes unanswered")
    func keepaliveFailsSilentConnection() async throws {
        let server = try ScriptedServer(until: { $0.type == .message && $0.streamID == 1 }, then: [], holdOpen: true)
        var configuration = VigilClient.Configuration(host: "127.0.0.1", port: server.port)
        configuration.keepalive = .milliseconds(200)
        let client = try await VigilClient.connect(configuration)
        let request = Vigil_V1_SubscribeRequest.with { $0.fromNow = true }
        let outcome = await withTaskGroup(of: String.self) { group in
            group.addTask {
                var subscription = client.subscribe(request).makeAsyncIterator()
                do {
                    _ = try await subscription.next()
                    return "a message arrived"
                } catch let error as VigilError where error.code == .unavailable {
                    return "unavailable: \(error.message)"
                } catch {
                    return "\(error)"
                }
            }
            group.addTask {
                // A bound on the test, not its synchronization: without the keepalive the call waits forever.
                try? await Task.sleep(for: .seconds(60))
                return "still waiting after 60 s"
            }
            let first = await group.next()!
            group.cancelAll()
            return first
        }
        #expect(outcome.hasPrefix("unavailable") && outcome.contains("did not answer a PING"), "\(outcome)")
        await client.close()
        server.finish()
    }
}

extension ClientConnectTests {
    @Test("a server that PINGs while not reading gets one PONG for the PINGs it sent meanwhile, not one per PING")
    func pingFloodKeepsOnePong() async throws {
        let pings = 600
        let pongsBeforeLast = Mutex<Int?>(nil)
        let server = try ScriptedServer(afterWelcome: { connection in
            // 64 KiB PINGs without reading: once the sockets' buffers are
            // full, the client cannot write; then a last small PING.
            for index in 0..<pings {
                var payload = ByteBuffer()
                payload.writeInteger(UInt64(index))
                payload.writeRepeatingByte(0, count: 65_536)
                ScriptedServer.send([Frame(type: .ping, streamID: 0, payload: payload)], to: connection)
            }
            var last = ByteBuffer()
            last.writeInteger(UInt64.max)
            ScriptedServer.send([Frame(type: .ping, streamID: 0, payload: last)], to: connection)
            // Now read: count the PONGs before the last PING's.
            var input = ByteBuffer()
            var bytes = [UInt8](repeating: 0, count: 1 << 20)
            var pongs = 0
            while true {
                let count = recv(connection, &bytes, bytes.count, 0)
                guard count > 0 else { return }
                input.writeBytes(bytes[..<count])
                while true {
                    var peek = input
                    guard let header = FrameHeader.read(from: &peek), var payload = peek.readSlice(length: Int(header.length)) else { break }
                    input = peek
                    guard header.type == .pong else { continue }
                    if payload.readInteger(as: UInt64.self) == UInt64.max {
                        pongsBeforeLast.withLock { $0 = pongs }
                    }
                    pongs += 1
                }
            }
        })
        var configuration = VigilClient.Configuration(host: "127.0.0.1", port: server.port)
        configuration.keepalive = nil
        let client = try await VigilClient.connect(configuration)
        // Polling a condition with a bound, not ordering: the count comes once the last PING's PONG arrives.
        let started = ContinuousClock.now
        while pongsBeforeLast.withLock({ $0 }) == nil && ContinuousClock.now - started < .seconds(120) {
            try await Task.sleep(for: .milliseconds(20))
        }
        let counted = try #require(pongsBeforeLast.withLock { $0 }, "the last PING was never answered")
        #expect(counted < pings / 2, "\(counted) PONGs for \(pings) PINGs sent while the server did not read")
        await client.close()
        server.finish()
    }
}

extension ClientConnectTests {
    @Test("a server that closes right after its Welcome: the connect returns and the first call fails with UNAVAILABLE, saying the connection closed")
    func closedRightAfterWelcome() async throws {
        let server = try ScriptedServer(afterWelcome: { _ in })
        let client = try await VigilClient.connect(.init(host: "127.0.0.1", port: server.port))
        server.finish()
        do {
            _ = try await client.health()
            Issue.record("a call on a closed connection succeeded")
        } catch let error as VigilError {
            #expect(error.code == .unavailable)
            #expect(error.message.contains("closed"), "\(error.message)")
        }
        await client.close()
    }
}

extension ClientConnectTests {
    @Test("a connection that fails for its own reason (an oversized frame) fails the calls in flight as 'may have run' (UNAVAILABLE), not with the connection's code")
    func connectionFailureDuringCall() async throws {
        let server = try ScriptedServer(
            until: { $0.type == .message && $0.streamID == 1 },
            then: [Frame(type: .message, streamID: 1, payload: ByteBuffer(repeating: 0, count: 200_000))])
        var configuration = VigilClient.Configuration(host: "127.0.0.1", port: server.port)
        configuration.connectTimeout = .seconds(30)
        configuration.maxFrameSize = 131_072
        let client = try await VigilClient.connect(configuration)
        do {
            _ = try await client.ingest([makeTestEvent()])
            Issue.record("the ingest succeeded")
        } catch let error as VigilError {
            #expect(error.code == .unavailable, "\(error)")
            #expect(error.message.contains("may have done it") && error.message.contains("over this client's limit"), "\(error.message)")
        }
        await client.close()
        server.finish()
    }

    @Test("a client dropped without close() closes its connection: the server sees the end of it")
    func droppedClientCloses() async throws {
        let outcome = Mutex<String?>(nil)
        let server = try ScriptedServer(afterWelcome: { connection in
            // A bound on the test: without the close, recv times out.
            var bound = timeval(tv_sec: 20, tv_usec: 0)
            setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &bound, socklen_t(MemoryLayout<timeval>.size))
            var bytes = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = recv(connection, &bytes, bytes.count, 0)
                if count > 0 { continue }
                outcome.withLock { $0 = count == 0 ? "closed" : "still open after 20 s (errno \(errno))" }
                return
            }
        })
        var configuration = VigilClient.Configuration(host: "127.0.0.1", port: server.port)
        configuration.keepalive = nil
        var client: VigilClient? = try await VigilClient.connect(configuration)
        #expect(client?.welcome.maxConcurrentCalls == 8)
        client = nil
        server.finish()
        #expect(outcome.withLock { $0 } == "closed")
    }
}
