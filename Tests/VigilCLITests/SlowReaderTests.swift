import Foundation
import SwiftProtobuf
import Testing
import VigilClient
import VigilCore
import VigilProto

#if canImport(Glibc)
import Glibc
#endif

/// Frames by hand (this target does not link the codec): the README's layout.
enum HandFrames {
    static let preface: [UInt8] = Array("VGIL".utf8) + [1, 0, 0, 0]

    static func frame(type: UInt8, flags: UInt8 = 0, stream: UInt32, _ message: some SwiftProtobuf.Message) throws -> [UInt8] {
        let payload: [UInt8] = try message.serializedBytes()
        var bytes: [UInt8] = []
        bytes += withUnsafeBytes(of: UInt32(payload.count).bigEndian, Array.init)
        bytes += [type, flags]
        bytes += withUnsafeBytes(of: stream.bigEndian, Array.init)
        return bytes + payload
    }

    static let hello: UInt8 = 0x01, headers: UInt8 = 0x02, message: UInt8 = 0x03, endStream: UInt8 = 0x01
}

@Suite("A client that stops reading")
struct SlowReaderTests {
    /// Ingests `batches` × 1,000 events of about 1 KB each.
    static func ingestLargeEvents(_ client: VigilClient, batches: Int) async throws {
        for batch in 0..<batches {
            let events = (0..<1_000).map { index in
                var event = AuditEvent()
                event.occurredAt = .init(unixNanos: currentUnixNanos() - Int64(batch * 1_000 + index) * 1_000_000)
                event.tenant = "acme"
                event.actor.id = "user-\(index % 100)"
                event.action = "document.read"
                event.description_p = String(repeating: "d", count: 1_000) + "\(batch)-\(index)"
                return event
            }
            _ = try await client.ingest(events)
        }
    }

    /// A socket connected to `address` with a small receive buffer, so
    /// that the server's writes back up soon once it stops reading; its
    /// first bytes (the preface and HELLO) are `opening`.
    static func slowReaderSocket(_ address: String, clientName: String) throws -> (fd: Int32, opening: [UInt8]) {
        let port = Int(address.split(separator: ":").last!)!
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var small: Int32 = 16_384
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        var socketAddress = sockaddr_in()
        socketAddress.sin_family = sa_family_t(AF_INET)
        socketAddress.sin_port = in_port_t(UInt16(port).bigEndian)
        socketAddress.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            throw CLITestError("cannot connect to \(address)")
        }
        var hello = Vigil_V1_Hello()
        hello.majorVersion = 1
        hello.clientName = clientName
        return (fd, HandFrames.preface + (try HandFrames.frame(type: HandFrames.hello, stream: 0, hello)))
    }

    @Test("a client that opens 100 queries and never reads pins a bounded amount of server memory; others are served")
    func slowReader() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-slow-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try ServerProcess(dataDir: directory)
        let client = try await VigilClient.connect(VigilClient.Configuration(server: server.address))
        // 20,000 events of about 1 KB: every query below would send 20 MB.
        try await Self.ingestLargeEvents(client, batches: 20)
        let baseline = try #require(server.peakResidentBytes)

        // The slow reader: 100 queries with plenty of credit, then silence.
        let (fd, opening) = try Self.slowReaderSocket(server.address, clientName: "slow-reader")
        defer { close(fd) }
        var bytes = opening
        for call in 0..<100 {
            let stream = UInt32(2 * call + 1)
            var headers = Vigil_V1_CallHeaders()
            headers.method = AuditMethod.query.rawValue
            headers.initialWindow = 100_000
            var query = Vigil_V1_QueryRequest()
            query.pageSize = 2_000
            bytes += try HandFrames.frame(type: HandFrames.headers, stream: stream, headers)
            bytes += try HandFrames.frame(type: HandFrames.message, flags: HandFrames.endStream, stream: stream, query)
        }
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            try #require(written > 0)
            offset += written
        }

        // Meanwhile the server keeps serving others, several times over.
        var peak = baseline
        for round in 0..<10 {
            var request = Vigil_V1_AggregateRequest()
            request.filter.tenants = ["acme"]
            #expect(try await client.aggregate(request).count == 20_000 + UInt64(round))
            var extra = AuditEvent()
            extra.occurredAt = .init(unixNanos: currentUnixNanos())
            extra.tenant = "acme"
            extra.actor.id = "other-client"
            extra.action = "document.read"
            _ = try await client.ingest([extra])
            var query = Vigil_V1_QueryRequest()
            query.limit = 3_000
            var seen = 0
            for try await _ in client.query(query) { seen += 1 }
            #expect(seen == 3_000)
            peak = max(peak, try #require(server.peakResidentBytes))
        }
        await client.close()
        let grown = peak - baseline
        // 4 pages of 2,000 events (about 2 MB each, twice over while encoded)
        // plus socket buffers; 100 pages would be hundreds of MiB.
        #expect(grown < 64 << 20, "resident memory grew by \(grown >> 20) MiB over \(baseline >> 20) MiB")
    }

    @Test("--write-stall-timeout: a client that stops reading is closed once the server could not write to it for that long")
    func writeStallTimeoutFlag() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-stall-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try ServerProcess(dataDir: directory, extraArguments: ["--write-stall-timeout", "1"])
        let client = try await VigilClient.connect(VigilClient.Configuration(server: server.address))
        // 4,000 events of about 1 KB: the query below sends 4 MB.
        try await Self.ingestLargeEvents(client, batches: 4)
        let (fd, opening) = try Self.slowReaderSocket(server.address, clientName: "stalled-reader")
        defer { close(fd) }
        var bytes = opening
        var headers = Vigil_V1_CallHeaders()
        headers.method = AuditMethod.query.rawValue
        headers.initialWindow = 100_000
        var query = Vigil_V1_QueryRequest()
        query.pageSize = 1_000
        bytes += try HandFrames.frame(type: HandFrames.headers, stream: 1, headers)
        bytes += try HandFrames.frame(type: HandFrames.message, flags: HandFrames.endStream, stream: 1, query)
        let written = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        try #require(written == bytes.count)

        // Never read: the server's writes back up, and after a second of
        // that it closes the connection (the default would wait 120 s).
        let started = ContinuousClock.now
        var connections = try await client.stats().connections
        while connections > 1 && ContinuousClock.now - started < .seconds(60) {
            try await Task.sleep(for: .milliseconds(100))
            connections = try await client.stats().connections
        }
        #expect(connections == 1, "the stalled connection is still open after 60 s")
        await client.close()
    }
}
