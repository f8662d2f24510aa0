import Foundation
import NIOCore
import NIOPosix

/// A minimal HTTP/1.1 client for the metrics listener: one request per
/// connection (`Connection: close`), the whole response read to EOF.
enum HTTPProbe {
    struct Response: Sendable {
        var status: Int
        /// Header names lowercased.
        var headers: [String: String]
        var body: String
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func request(_ method: String = "GET", _ path: String, port: Int, host: String = "127.0.0.1") async throws -> Response {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        let raw = try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: "\(method) \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nConnection: close\r\n\r\n"))
            var received = ByteBuffer()
            for try await var chunk in inbound {
                received.writeBuffer(&chunk)
                // Far more than any answer here: a runaway server fails the test instead of filling memory.
                guard received.readableBytes < 16 << 20 else { throw Failure(description: "response over 16 MiB") }
            }
            return String(buffer: received)
        }
        guard let split = raw.range(of: "\r\n\r\n") else { throw Failure(description: "no end of headers in: \(raw.prefix(200))") }
        let headLines = raw[..<split.lowerBound].components(separatedBy: "\r\n")
        let statusParts = headLines[0].split(separator: " ", maxSplits: 2)
        guard statusParts.count >= 2, statusParts[0] == "HTTP/1.1", let status = Int(statusParts[1]) else {
            throw Failure(description: "bad status line: \(headLines[0])")
        }
        var headers: [String: String] = [:]
        for line in headLines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { throw Failure(description: "bad header line: \(line)") }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let body = String(raw[split.upperBound...])
        // A HEAD answer has the headers of the GET answer and no body.
        if method != "HEAD", let length = headers["content-length"].flatMap(Int.init), length != body.utf8.count {
            throw Failure(description: "Content-Length \(length) but \(body.utf8.count) body bytes")
        }
        return Response(status: status, headers: headers, body: body)
    }
}
