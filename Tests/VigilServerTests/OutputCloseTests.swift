import Foundation
import Logging
import NIOCore
import NIOPosix
import Testing
import VigilCore
@testable import VigilServer
import VigilStorage
import VigilWire

/// The end of a connection's output, against what its calls wrote before it.
@Suite("Closing a connection's output")
struct OutputCloseTests {
    @Test("a frame a call wrote from another thread goes out before the output ends, when the close is made on the event loop")
    func closeOnTheLoopAfterAWriteFromElsewhere() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-close-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try ColumnarEventStore(options: StorageOptions(directory: directory))
        let configuration = ServerConfiguration()
        let service = AuditService(store: store, configuration: configuration)
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(maxFrameSize: configuration.maxFrameSize)))
                    try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(WireEncoder()))
                    return try NIOAsyncChannel<WireInbound, WireOutbound>(
                        wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
                }
            }
        let port = try #require(listener.channel.localAddress?.port)
        let trailers = Frame.trailers(streamID: 1, status: VigilError(.unavailable, "the server is shutting down").status)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await listener.executeThenClose { connections in
                    for try await connection in connections {
                        try await connection.executeThenClose { inbound, outbound in
                            // Closed, as a draining connection is once its last call's TRAILERS are written.
                            let state = ConnectionState(ConnectionStateMachine(limits: .init(maxConcurrentCalls: 1, defaultWindow: 1)))
                            _ = state.with { $0.prefaceReceived(.garbage) }
                            let io = ConnectionHandler.IO(
                                channel: connection.channel, outbound: outbound, state: state, configuration: configuration,
                                logger: Logger(label: "vigil.test"), subscriptions: SubscriptionSlots(limit: 1),
                                identity: ConnectionIdentity(peerIP: nil), access: service.access, slot: 0,
                                pages: OutputGate(permits: 1), metrics: service.metrics)
                            // The event loop is held until the call's write (made
                            // here, off the loop, as a subscription's is) has
                            // returned; then, on the loop, the connection closes,
                            // as the GOAWAY's writer does when it finds the call done.
                            let written = DispatchSemaphore(value: 0)
                            let closed = connection.channel.eventLoop.submit {
                                written.wait()
                                io.closeIfNeeded()
                            }
                            await io.write(trailers)
                            written.signal()
                            try await closed.get()
                            // Until the peer hangs up.
                            do { for try await _ in inbound {} } catch {}
                        }
                        return
                    }
                }
            }
            try await RawConnection.with(port: port, expectPreface: false) { raw in
                let frame = try await raw.readFrame()
                #expect(frame.type == .trailers && frame.streamID == 1, "\(frame)")
                #expect(try await raw.read() == nil, "the output ended after the TRAILERS")
            }
            try await group.waitForAll()
        }
        try await store.close()
    }
}
