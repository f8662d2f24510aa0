import SwiftProtobuf
import Testing
import VigilCore
import VigilProto
@testable import VigilStorage

@Suite("EncodedEvents: a request's events, copied into the WAL as they were sent")
struct EncodedEventsTests {
    static func events(_ count: Int, seed: UInt64 = 7) -> [AuditEvent] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { _ in PartEvents.random(&rng) }
    }

    /// The WAL body the store writes: the events' entries, then the key.
    static func walBatch(_ encoded: EncodedEvents, key: String) throws -> Vigil_V1_WalBatch {
        var keyField = Vigil_V1_WalBatch()
        keyField.idempotencyKey = key
        return try Vigil_V1_WalBatch(serializedBytes: encoded.bytes + keyField.serializedBytes())
    }

    @Test("an IngestRequest's events (key, want_receipts and unknown fields around them) decode as the WAL batch's events, byte for byte")
    func requestEventsBecomeTheBatch() throws {
        var request = Vigil_V1_IngestRequest()
        request.events = Self.events(50)
        request.idempotencyKey = "batch-1"
        request.wantReceipts = true
        // A field this server does not know (a newer client's) after the events (field 127,
        // varint 42), and an event with one of its own.
        var withUnknown = request.events[0]
        try withUnknown.merge(serializedBytes: [0xF8, 0x07, 0x01] as [UInt8])
        request.events[0] = withUnknown
        let bytes: [UInt8] = try request.serializedBytes() + [0xF8, 0x07, 0x2A]

        let encoded = try #require(EncodedEvents(eventsOf: bytes))
        let batch = try Self.walBatch(encoded, key: "batch-1")
        #expect(batch.events == request.events)
        #expect(batch.idempotencyKey == "batch-1")
        #expect(batch.firstSeq == 0, "want_receipts (field 3) is not carried over as first_seq")
        #expect(encoded.bytes == EncodedEvents(encoding: request.events).bytes, "the same bytes the store would encode")
    }

    @Test("a request with no events gives no bytes; malformed messages give nil")
    func malformed() throws {
        var empty = Vigil_V1_IngestRequest()
        empty.idempotencyKey = "k"
        let emptyBytes: [UInt8] = try empty.serializedBytes()
        let none = try #require(EncodedEvents(eventsOf: emptyBytes))
        #expect(none.bytes.isEmpty)

        let request: [UInt8] = try {
            var request = Vigil_V1_IngestRequest()
            request.events = Self.events(3)
            return try request.serializedBytes()
        }()
        for bad: [UInt8] in [
            Array(request.dropLast()),  // an event cut short
            [0x0A, 0x05, 0x01],  // a length past the end
            [0x0B, 0x0C],  // a group (wire type 3)
            [0x0E],  // wire type 6
            [0x08],  // a varint field with no value
            [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],  // a tag varint over 64 bits
        ] {
            #expect(EncodedEvents(eventsOf: bad) == nil, "\(bad.prefix(12))")
        }
    }

    @Test("events in one run are read in place from the request; events split by other fields are gathered in order")
    func inPlaceOrGathered() throws {
        var request = Vigil_V1_IngestRequest()
        request.events = IngestWireDecoderTests.validEvents(20, seed: 5)
        request.idempotencyKey = "k"
        let sorted: [UInt8] = try request.serializedBytes()
        let expected = EncodedEvents(encoding: request.events).bytes

        // Events first, then the key: the entries are the request's first bytes, not a copy of them.
        let inPlace = try #require(EncodedEvents(eventsOf: sorted))
        #expect(inPlace.bytes == expected)
        #expect(inPlace.withUnsafeBytes { $0.baseAddress } == sorted.withUnsafeBytes { $0.baseAddress })
        let decoded = try #require(IngestWireDecoder.decode(sorted, limits: .default, now: IngestWireDecoderTests.now))
        #expect(decoded.encoded.withUnsafeBytes { $0.baseAddress } == sorted.withUnsafeBytes { $0.baseAddress })
        #expect(decoded.encoded == inPlace)

        // The key first, and want_receipts between two events: the entries are gathered.
        var keyField = Vigil_V1_IngestRequest()
        keyField.idempotencyKey = "k"
        var receipts = Vigil_V1_IngestRequest()
        receipts.wantReceipts = true
        var first = Vigil_V1_IngestRequest()
        first.events = Array(request.events[..<7])
        var rest = Vigil_V1_IngestRequest()
        rest.events = Array(request.events[7...])
        let split: [UInt8] =
            try keyField.serializedBytes() + first.serializedBytes() + receipts.serializedBytes() + rest.serializedBytes()
        let gathered = try #require(EncodedEvents(eventsOf: split))
        #expect(gathered.bytes == expected)
        #expect(gathered == inPlace)
        let splitDecoded = try #require(IngestWireDecoder.decode(split, limits: .default, now: IngestWireDecoderTests.now))
        #expect(splitDecoded.encoded.bytes == expected)
        #expect(splitDecoded.wantReceipts && splitDecoded.idempotencyKey == "k")
    }
}
