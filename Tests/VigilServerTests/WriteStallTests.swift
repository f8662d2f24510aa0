import Foundation
import NIOCore
import Testing
import VigilClient
import VigilCore
import VigilProto
@testable import VigilServer
import VigilWire

/// A peer that asks for a lot and never reads it.
@Suite("Connections whose peer stops reading")
struct WriteStallTests {
    @Test("a connection the server cannot write to for the stall timeout is closed: its blocked call ends, its slots are free")
    func stalledReaderIsClosed() async throws {
        try await withTestServer(configure: { $0.writeStallTimeout = .seconds(1) }) { server in
            // About 40 MB to read, random (responses may be compressed): far more
            // than the socket buffers hold.
            let writer = try await server.connect()
            let alphabet = Array("0123456789abcdefghijklmnopqrstuvwxyz".utf8)
            var state: UInt64 = 0x9E37_79B9_7F4A_7C15
            for _ in 0..<20 {
                let batch = (0..<500).map { index in
                    var event = makeTestEvent(index: index)
                    let bytes = (0..<4_000).map { _ in
                        state ^= state << 13
                        state ^= state >> 7
                        state ^= state << 17
                        return alphabet[Int(state % UInt64(alphabet.count))]
                    }
                    event.description_p = String(decoding: bytes, as: UTF8.self)
                    return event
                }
                _ = try await writer.ingest(batch)
            }
            await writer.close()
            var request = Vigil_V1_QueryRequest()
            request.pageSize = 500
            var bytes = ByteBuffer()
            Preface.current.write(to: &bytes)
            Frame(type: .hello, streamID: 0, message: Vigil_V1_Hello.with { $0.majorVersion = 1 }).write(to: &bytes)
            for frame in RawConnection.call(streamID: 1, method: .query, request: request, initialWindow: 100) { frame.write(to: &bytes) }
            // A plain socket that never reads (a NIO client would read ahead into its buffers).
            let peer = try PlainSocket(port: server.port)
            peer.send(Array(bytes.readableBytesView))
            // Bounded polling of a condition, the peer reading nothing meanwhile:
            // the query starts, blocks in its writes, and ends when the server
            // gives up on the connection. Before, it stayed blocked for good.
            let vitals = server.server.vitals
            let deadline = ContinuousClock.now + .seconds(30)
            while vitals.callsInFlight == 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
            #expect(vitals.callsInFlight == 1, "the query is running")
            while vitals.callsInFlight > 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
            #expect(vitals.callsInFlight == 0, "the stalled connection was not closed within 30 s")
            // The server serves others.
            let client = try await server.connect()
            _ = try await client.health()
            await client.close()
            withExtendedLifetime(peer) {}
        }
    }
}
