import NIOCore
import Testing
import VigilWire

@Suite("Preface")
struct PrefaceTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var bytes: [UInt8]
        var expected: Preface.Classification
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "Vigil 1.0", bytes: Array("VGIL".utf8) + [1, 0, 0, 0], expected: .vigil(Preface(major: 1, minor: 0))),
        Case(name: "Vigil 2.7", bytes: Array("VGIL".utf8) + [2, 7, 0, 0], expected: .vigil(Preface(major: 2, minor: 7))),
        Case(name: "HTTP GET", bytes: Array("GET / HTTP/1.1\r\nHost: vigil\r\n\r\n".utf8), expected: .http),
        Case(name: "HTTP POST", bytes: Array("POST /x HTTP/1.1\r\n".utf8), expected: .http),
        Case(name: "HTTP HEAD", bytes: Array("HEAD / HTTP/1.0\r\n".utf8), expected: .http),
        Case(name: "HTTP OPTIONS", bytes: Array("OPTIONS * HTTP/1.1\r\n".utf8), expected: .http),
        Case(name: "HTTP CONNECT", bytes: Array("CONNECT vigil:7070 HTTP/1.1\r\n".utf8), expected: .http),
        Case(name: "HTTP/2 preface", bytes: Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8), expected: .http),
        Case(name: "TLS 1.0 ClientHello", bytes: [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03], expected: .tls),
        Case(name: "TLS 1.2 record", bytes: [0x16, 0x03, 0x03, 0x00, 0x7A, 0x01, 0x00, 0x00], expected: .tls),
        Case(name: "garbage", bytes: [0xDE, 0xAD, 0xBE, 0xEF, 0x00, 0x01, 0x02, 0x03], expected: .garbage),
        Case(name: "zeros", bytes: [UInt8](repeating: 0, count: 8), expected: .garbage),
        Case(name: "lower-case get", bytes: Array("get / HTTP/1.1\r\n".utf8), expected: .garbage),
        Case(name: "GETX", bytes: Array("GETX / HTTP/1.1".utf8), expected: .garbage),
        Case(name: "vgil lower case", bytes: Array("vgil".utf8) + [1, 0, 0, 0], expected: .garbage),
        Case(name: "VGIL reserved low byte", bytes: Array("VGIL".utf8) + [1, 0, 0, 1], expected: .garbage),
        Case(name: "VGIL reserved high byte", bytes: Array("VGIL".utf8) + [1, 0, 0x80, 0], expected: .garbage),
        Case(name: "VGIL reserved both", bytes: Array("VGIL".utf8) + [1, 0, 0xFF, 0xFF], expected: .garbage),
        Case(name: "TLS type, not version 3", bytes: [0x16, 0x02, 0x01, 0, 0, 0, 0, 0], expected: .garbage),
    ]

    @Test("classify", arguments: cases)
    func classify(_ testCase: Case) {
        #expect(Preface.classify(testCase.bytes) == testCase.expected)
    }

    @Test("the decoder classifies the first 8 bytes, whatever follows", arguments: cases)
    func decoderClassifies(_ testCase: Case) throws {
        var driver = DecoderDriver()
        #expect(try driver.feed(testCase.bytes.prefix(7)).isEmpty, "7 bytes are not yet a preface")
        let out = try driver.feed(testCase.bytes.dropFirst(7))
        #expect(out == [.preface(testCase.expected)])
    }

    @Test("Preface.current is VGIL 1 0 0 0")
    func currentBytes() {
        #expect(Preface.size == 8)
        #expect(Preface.current == Preface(major: 1, minor: 0))
        #expect(Array(Preface.current.bytes.readableBytesView) == [0x56, 0x47, 0x49, 0x4C, 1, 0, 0, 0])
        var buffer = ByteBuffer()
        Preface(major: 3, minor: 9).write(to: &buffer)
        #expect(Array(buffer.readableBytesView) == [0x56, 0x47, 0x49, 0x4C, 3, 9, 0, 0])
        #expect(Preface.classify(Array(buffer.readableBytesView)) == .vigil(Preface(major: 3, minor: 9)))
    }

    @Test(
        "after a preface that is not Vigil's the decoder ignores everything",
        arguments: [
            Array("GET / HTTP/1.1\r\n".utf8), Array("PRI * HTTP/2.0\r\n".utf8), [0x16, 0x03, 0x01, 0x00, 0xA5, 0x01, 0x00, 0x00],
            Array("VGIL".utf8) + [1, 0, 0, 1],
        ])
    func rejectedPrefaceIgnoresRest(preface: [UInt8]) throws {
        var driver = DecoderDriver()
        let first = try driver.feed(preface.prefix(8))
        #expect(first.count == 1)
        #expect(first.first != .preface(.vigil(.current)))

        // A well-formed frame, then a frame that would be a protocol error:
        // neither is decoded, nothing throws, and nothing is kept.
        let frame = try encode([.frame(Frame(type: .ping, streamID: 0))])
        #expect(try driver.feed(preface.dropFirst(8)).isEmpty)
        #expect(try driver.feed(frame).isEmpty)
        #expect(try driver.feed(rawFrame(length: 0, type: 0x7F, stream: 0)).isEmpty)
        #expect(try driver.feed(vigilPreface + frame).isEmpty)
        #expect(try driver.feed(randomBytes(10_000, seed: 3)).isEmpty)
        #expect(driver.buffer.readableBytes == 0)
        var rest = ByteBuffer(bytes: frame)
        #expect(try driver.decoder.decodeLast(buffer: &rest, seenEOF: true) == nil)
        #expect(rest.readableBytes == 0)
    }
}
