import NIOCore

/// The 8 bytes each side sends first: ASCII `VGIL`, `u8` major version,
/// `u8` minor version, `u16` reserved (0).
public struct Preface: Sendable, Hashable {
    public static let size = 8
    public static let magic: [UInt8] = Array("VGIL".utf8)
    /// The protocol version this implementation speaks.
    public static let current = Preface(major: 1, minor: 0)

    public var major: UInt8
    public var minor: UInt8

    public init(major: UInt8, minor: UInt8) {
        self.major = major
        self.minor = minor
    }

    public func write(to buffer: inout ByteBuffer) {
        buffer.writeBytes(Self.magic)
        buffer.writeInteger(major)
        buffer.writeInteger(minor)
        buffer.writeInteger(UInt16(0))
    }

    public var bytes: ByteBuffer {
        var buffer = ByteBuffer()
        write(to: &buffer)
        return buffer
    }

    /// What the first bytes a peer sent turned out to be.
    public enum Classification: Sendable, Hashable {
        case vigil(Preface)
        /// An HTTP/1.x request line or the HTTP/2 connection preface.
        case http
        /// A TLS record (a ClientHello sent to a plain-text port).
        case tls
        case garbage
    }

    /// Classifies the first 8 bytes of a connection.
    public static func classify(_ bytes: [UInt8]) -> Classification {
        precondition(bytes.count >= size)
        if Array(bytes[0..<4]) == magic {
            return bytes[6] == 0 && bytes[7] == 0 ? .vigil(Preface(major: bytes[4], minor: bytes[5])) : .garbage
        }
        // TLS handshake record: content type 22, version 3.x.
        if bytes[0] == 0x16 && bytes[1] == 0x03 { return .tls }
        let start = String(decoding: bytes, as: UTF8.self)
        for method in ["GET ", "POST ", "PUT ", "HEAD ", "DELETE ", "OPTIONS ", "PATCH ", "CONNECT ", "TRACE ", "PRI * HT"]
        where start.hasPrefix(method) {
            return .http
        }
        return .garbage
    }

    /// The answer to an HTTP request on the protocol port: a short text that says
    /// what the port speaks, then the server closes.
    public static let httpRefusal: String = {
        let body = "This port speaks the Vigil audit-log protocol (a binary, length-prefixed protocol starting with the 8-byte preface \"VGIL\" 1 0 0 0), not HTTP. Use a Vigil client or `vigil query --server HOST:PORT`.\n"
        return "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
    }()
}
