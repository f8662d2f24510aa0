import Foundation
import NIOCore
import Testing
import VigilClient
import VigilCore
import VigilProto
@testable import VigilServer
import VigilWire

/// What one subscription may make the server hold, read from the server's
/// `SubscriptionProbe` while real subscribers grant credit sparingly.
@Suite("What a subscription holds")
struct SubscribeMemoryTests {
    /// `count` events of about 5 KB each: 256 of them are more than a MiB.
    static func largeEvents(_ tag: String, count: Int) -> [AuditEvent] {
        (0..<count).map { index in
            var event = makeEvent(tenant: "acme", actor: "\(tag)-\(index)")
            event.description_p = String(repeating: "d", count: 4_000)
            event.changes = [Vigil_V1_Change.with { $0.field = "f"; $0.old = String(repeating: "o", count: 500); $0.new = String(repeating: "n", count: 500) }]
            return event
        }
    }

    /// Subscribes on stream 1 from an hour ago with one unit of credit,
    /// which the first event ingested takes: from then on the subscription
    /// reads the live feed, with no credit.
    static func subscribeUsingItsCredit(_ raw: RawConnection, writer: VigilClient) async throws {
        _ = try await raw.handshake()
        var request = Vigil_V1_SubscribeRequest()
        request.since = .init(unixNanos: currentUnixNanos() - 3_600_000_000_000)
        try await raw.startCall(streamID: 1, method: .subscribe, request: request, initialWindow: 1)
        _ = try await writer.ingest(Self.largeEvents("first", count: 1))
        _ = try await raw.readUntil(.message, streamID: 1)
    }

    @Test("a live subscriber granting little credit while MiBs are ingested gets every event in order, and no turn builds more than its cap")
    func liveTurnsBounded() async throws {
        let probe = SubscriptionProbe()
        try await withTestServer(configure: { $0.subscriptionProbe = probe }) { server in
            let writer = try await server.connect()
            try await RawConnection.with(port: server.port) { raw in
                try await Self.subscribeUsingItsCredit(raw, writer: writer)
                // About 6 MB while the subscriber has no credit, all of it in the live feed's ring.
                var acks: [Vigil_V1_IngestResponse] = []
                for round in 0..<6 { acks.append(try await writer.ingest(Self.largeEvents("r\(round)", count: 200))) }
                let expected = Array(try #require(acks.first).firstSeq...(try #require(acks.last).lastSeq))
                // Credit 50 messages at a time, as they are read; for the last
                // half all at once, so that a turn's bytes, not the credit, bound it.
                var seqs: [UInt64] = []
                var granted = 0
                while seqs.count < expected.count {
                    if seqs.count == granted {
                        let more = granted < expected.count / 2 ? min(50, expected.count - granted) : expected.count - granted
                        granted += more
                        try await raw.sendWindow(streamID: 1, messages: UInt32(more))
                    }
                    let frame = try await raw.readFrame()
                    guard frame.streamID == 1 else { continue }
                    #expect(frame.type == .message, "\(frame)")
                    guard case .event(let event) = try frame.decode(Vigil_V1_SubscribeResponse.self).item else { continue }
                    seqs.append(event.seq)
                }
                let inOrder = seqs == expected
                #expect(inOrder, "\(seqs.count) events received of \(expected.count); every one once, in seq order")
            }
            await writer.close()
        }
        // With credit to spare, a turn fills up to its cap (256 of these messages are over a MiB), and no further.
        #expect(probe.largestLiveTurnBytes > AuditService.liveTurnBytes / 2, "the largest live turn: \(probe.largestLiveTurnBytes) bytes")
        #expect(probe.largestLiveTurnBytes <= AuditService.liveTurnBytes, "a live turn built \(probe.largestLiveTurnBytes) bytes")
    }

    @Test("a live subscription without credit builds nothing for the MiBs ingested meanwhile; granted one message, it builds one")
    func noTurnWithoutCredit() async throws {
        let probe = SubscriptionProbe()
        try await withTestServer(configure: { $0.subscriptionProbe = probe }) { server in
            let writer = try await server.connect()
            try await RawConnection.with(port: server.port) { raw in
                try await Self.subscribeUsingItsCredit(raw, writer: writer)
                // About 2 MB of matches, all in the live feed's ring.
                let acks = [try await writer.ingest(Self.largeEvents("a", count: 200)), try await writer.ingest(Self.largeEvents("b", count: 200))]
                // One unit of credit: the next event, and nothing more.
                try await raw.sendWindow(streamID: 1, messages: 1)
                let (frame, _) = try await raw.readUntil(.message, streamID: 1)
                guard case .event(let event) = try frame.decode(Vigil_V1_SubscribeResponse.self).item else {
                    Issue.record("not an event: \(frame)")
                    return
                }
                #expect(event.seq == acks[0].firstSeq)
                let after = try await raw.pingBarrier()
                #expect(!after.contains { $0.streamID == 1 && $0.type == .message }, "a message beyond the credit")
                // Each turn was built for the credit it had, one message (about 5 KB); a turn of the
                // batches ingested meanwhile would have been 256 messages or 1 MiB, held until credit came.
                #expect(probe.largestLiveTurnBytes < 2 * frame.payload.readableBytes, "the largest live turn: \(probe.largestLiveTurnBytes) bytes")
            }
            await writer.close()
        }
    }

    @Test("catch-up pages go through the connection's page gate: subscriptions that stop granting credit pin at most its pages")
    func catchUpPagesGated() async throws {
        let probe = SubscriptionProbe()
        let permits = ServerConfiguration().pagesInFlightPerConnection
        try await withTestServer(configure: { $0.subscriptionProbe = probe }) { server in
            let writer = try await server.connect()
            let ack = try await writer.ingest((0..<1_000).map { makeEvent(tenant: "acme", actor: "u-\($0)") })
            try await RawConnection.with(port: server.port) { raw in
                _ = try await raw.handshake()
                // Twice as many subscriptions as the connection has pages, each
                // catching up from the start with credit for one message.
                let streams = (0..<(2 * permits)).map { UInt32(2 * $0 + 1) }
                var request = Vigil_V1_SubscribeRequest()
                request.since = .init(unixNanos: 0)
                for stream in streams { try await raw.startCall(streamID: stream, method: .subscribe, request: request, initialWindow: 1) }
                var seqs: [UInt32: [UInt64]] = [:]
                func read(until done: ([UInt32: [UInt64]]) -> Bool) async throws {
                    while !done(seqs) {
                        let frame = try await raw.readFrame()
                        #expect(frame.type == .message && streams.contains(frame.streamID), "\(frame)")
                        let response = try frame.decode(Vigil_V1_SubscribeResponse.self)
                        guard case .event(let event) = response.item else { continue }
                        seqs[frame.streamID, default: []].append(event.seq)
                    }
                }
                try await read { $0.values.reduce(0) { $0 + $1.count } == streams.count }
                #expect(streams.allSatisfy { seqs[$0]?.count == 1 }, "one message each, for one unit of credit each")
                // Every subscription is now waiting for credit.
                #expect(probe.mostCatchUpPagesHeld <= permits, "\(probe.mostCatchUpPagesHeld) catch-up pages held at once")
                // The rest, with credit: every event once, in seq order, on each.
                for stream in streams { try await raw.sendWindow(streamID: stream, messages: 1_000) }
                try await read { seqs in streams.allSatisfy { seqs[$0]?.count == 1_000 } }
                for stream in streams {
                    let inOrder = seqs[stream] == Array(ack.firstSeq...ack.lastSeq)
                    #expect(inOrder, "stream \(stream): \(seqs[stream]?.count ?? 0) events; every one once, in seq order")
                }
                #expect(probe.mostCatchUpPagesHeld <= permits, "\(probe.mostCatchUpPagesHeld) catch-up pages held at once")
            }
            await writer.close()
        }
    }
}
