#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import SwiftProtobuf
import VigilCore
import VigilProto
import VigilWire
@testable import VigilStorage

/// Seed corpora, made with the project's own encoders so that they follow
/// the formats as they are today: frames as `WireEncoder` writes them,
/// requests as clients send them, parts as `PartWriter` writes them. Each
/// seed starts with the control bytes its target reads first.
enum Seeds {
    static func writeAll(to directory: String) {
        mkdir(directory, 0o755)
        write(frameSeeds(), to: directory + "/frame")
        write(eventSeeds(), to: directory + "/event")
        write(partSeeds(), to: directory + "/part")
    }

    static func write(_ seeds: [(String, [UInt8])], to directory: String) {
        mkdir(directory, 0o755)
        for (name, bytes) in seeds {
            let path = directory + "/seed-" + name
            guard let file = fopen(path, "wb") else { fatalError("cannot create \(path)") }
            _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
            fclose(file)
        }
        print("vigil-fuzz: \(seeds.count) seeds in \(directory)")
    }

    // MARK: - frame

    /// Control byte: preface expected, frame limit 1 MiB, message limit 1 MiB.
    static let frameControl: UInt8 = 4 << 1 | 4 << 4

    static func frameSeeds() -> [(String, [UInt8])] {
        var hello = Vigil_V1_Hello()
        hello.majorVersion = 1
        hello.clientName = "fuzz"
        hello.authToken = "vgl_token"
        hello.maxFrameSize = 1 << 20
        var headers = Vigil_V1_CallHeaders()
        headers.method = AuditMethod.ingest.rawValue
        headers.timeoutMs = 5_000
        headers.initialWindow = 8
        headers.metadata = ["vigil.trace": "abc"]
        var request = Vigil_V1_IngestRequest()
        request.events = Array(sampleEvents().prefix(3))
        request.idempotencyKey = "batch-1"
        var window = Vigil_V1_Window()
        window.messages = 16
        var ping = Vigil_V1_Ping()
        ping.opaque = 42
        var cancel = Vigil_V1_Cancel()
        cancel.reason = "bye"
        var status = Vigil_V1_Status()
        status.code = 3
        status.message = "bad"
        status.eventErrors = [EventError(index: 0, field: "tenant", reason: "is required")]

        let frames: [Frame] = [
            Frame(type: .hello, streamID: 0, message: hello),
            Frame(type: .headers, streamID: 1, message: headers),
            Frame(type: .message, flags: [.endStream], streamID: 1, message: request),
            Frame(type: .headers, streamID: 3, message: headers),
            Frame(type: .message, flags: [.endStream, .compressed], streamID: 3,
                  payload: MessageCompression.compress(request.serializedBuffer())),
            Frame(type: .window, streamID: 3, message: window),
            Frame(type: .ping, streamID: 0, message: ping),
            Frame(type: .pong, streamID: 0, message: ping),
            Frame(type: .cancel, streamID: 3, message: cancel),
            Frame.trailers(streamID: 1, status: status),
            Frame.goAway(lastStreamID: 3, code: .unavailable, message: "shutting down"),
        ]
        var conversation = ByteBuffer()
        Preface.current.write(to: &conversation)
        for frame in frames { frame.write(to: &conversation) }
        let bytes = Array(buffer: conversation)

        var seeds: [(String, [UInt8])] = [
            ("conversation", [frameControl, 0] + bytes),
            ("conversation-split", [frameControl, 4, 3, 9, 1, 40] + bytes),
            ("no-preface", [frameControl | 0x01, 1, 10] + bytes.dropFirst(Preface.size)),
            ("http", [frameControl, 0] + Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)),
            ("http2", [frameControl, 0] + Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)),
            ("tls", [frameControl, 0, 0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00]),
            ("compressed", [frameControl | 0x80, 0] + Array(buffer: MessageCompression.compress(request.serializedBuffer()))),
        ]
        // Frame limit 100: a frame of 150 bytes is skipped, then one more frame.
        var oversized = ByteBuffer()
        Preface.current.write(to: &oversized)
        Frame(type: .message, streamID: 5, payload: ByteBuffer(repeating: 0x61, count: 150)).write(to: &oversized)
        Frame(type: .cancel, streamID: 5, message: cancel).write(to: &oversized)
        seeds.append(("oversized", [2 << 1 | 4 << 4, 2, 20, 60] + Array(buffer: oversized)))
        return seeds
    }

    // MARK: - event

    static func eventSeeds() -> [(String, [UInt8])] {
        var request = Vigil_V1_IngestRequest()
        request.events = sampleEvents()
        request.idempotencyKey = "batch-7"
        let ingest = bytes(request)
        // Events the server's fast path (IngestWireDecoder) takes as they are:
        // canonical addresses, no client ids; so the fuzzer starts from both paths.
        var fast = Vigil_V1_IngestRequest()
        fast.events = sampleEvents().enumerated().filter { $0.offset % 2 == 0 && $0.offset != 2 && $0.offset < 6 }.map(\.element)
        fast.wantReceipts = true
        precondition(
            IngestWireDecoder.decode(bytes(fast), limits: .default, now: EventFuzz.now) != nil,
            "the ingest-fast seed does not take the fast path")

        var filter = Vigil_V1_Filter()
        filter.since = Google_Protobuf_Timestamp(unixNanos: EventFuzz.now - 86_400_000_000_000)
        filter.until = Google_Protobuf_Timestamp(unixNanos: EventFuzz.now)
        filter.tenants = ["acme", "_system"]
        filter.actorIds = ["u-1"]
        filter.actions = ["user.create", "auth.*", "*.delete"]
        filter.resourceTypes = ["user"]
        filter.outcomes = [.success, .failure]
        filter.excludeOutcomes = [.denied]
        filter.actorEmails = ["Alice@Example.com"]
        filter.actorNames = ["Alice"]
        filter.actorTypes = [.user, .service]
        filter.categories = [.create]
        filter.sourceIps = ["10.0.0.0/8", "2001:db8::/32", "192.168.1.1"]
        filter.traceIds = ["4bf92f3577b34da6a3ce929d0e0e4736"]
        filter.requestIds = ["req-1"]
        filter.metadata = ["region=eu-west-1"]
        filter.search = "alice"
        var query = Vigil_V1_QueryRequest()
        query.filter = filter
        query.order = .oldestFirst
        query.pageSize = 100
        query.cursor = QueryCursor(
            order: .oldestFirst, occurredAt: EventFuzz.now, seq: 7, filterFingerprint: EventFilter.fingerprint(of: filter),
            anchor: EventFuzz.now, visibleSeq: 99
        ).encoded
        var relative = Vigil_V1_QueryRequest()
        relative.filter.last = Google_Protobuf_Duration(seconds: 3_600)
        relative.filter.tenants = ["acme"]

        var subscribe = Vigil_V1_SubscribeRequest()
        subscribe.filter = filter
        subscribe.cursor = SubscriptionCursor(
            seq: 12, filterFingerprint: EventFilter.fingerprint(of: filter), floorTime: EventFuzz.now, floorThrough: 10
        ).encoded
        let subscriptionText = SubscriptionCursor(seq: 1, filterFingerprint: 0).encoded

        return [
            ("ingest", [0] + ingest),
            ("ingest-tight", [4] + ingest),
            ("ingest-fast", [0] + bytes(fast)),
            ("query", [2] + bytes(query)),
            ("query-last", [2] + bytes(relative)),
            ("subscribe", [3] + bytes(subscribe)),
            ("cursor-query", [7] + Array(query.cursor.utf8)),
            ("cursor-subscription", [7] + Array(subscriptionText.utf8)),
        ]
    }

    static func bytes(_ message: some SwiftProtobuf.Message) -> [UInt8] {
        Array(buffer: message.serializedBuffer())
    }

    /// Valid events with every field set, and a few invalid ones.
    static func sampleEvents() -> [AuditEvent] {
        var events: [AuditEvent] = []
        for index in 0..<6 {
            var event = AuditEvent()
            event.tenant = "tenant-\(index % 2)"
            event.occurredAt = Google_Protobuf_Timestamp(unixNanos: EventFuzz.now - Int64(index) * 1_000_000_007)
            event.actor.id = "u-\(index)"
            event.actor.type = index == 5 ? .system : .user
            event.actor.name = "User \(index)"
            event.actor.email = "user\(index)@example.com"
            event.action = ["user.create", "auth.login", "document.delete"][index % 3]
            event.category = [.create, .login, .delete][index % 3]
            event.resource.type = "user"
            event.resource.id = "res-\(index)"
            event.resource.name = "Resource \(index)"
            var target = Vigil_V1_Resource()
            target.type = "group"
            target.id = "g-\(index)"
            event.targets = [target]
            event.outcome = index == 4 ? .denied : .success
            event.reason = index == 4 ? "permission_denied" : ""
            event.sourceIp = index % 2 == 0 ? "10.0.0.\(index)" : "2001:DB8::\(index)"
            event.userAgent = "vigil-cli/1.0"
            event.traceID = "4bf92f3577b34da6a3ce929d0e0e47\(index)\(index)"
            event.requestID = "req-\(index)"
            var change = Vigil_V1_Change()
            change.field = "role"
            change.old = "viewer"
            change.new = "admin"
            event.changes = [change]
            event.metadata = ["region": "eu-west-1", "project": "p\(index)"]
            event.description_p = "event \(index): é 🦤"
            if index == 2 { event.id = EventID(high: 0x0190_0000_0000_7000 | UInt64(index), low: 0x8000_0000_0000_0001).description.uppercased() }
            events.append(event)
        }
        var invalid = AuditEvent()
        invalid.tenant = "-bad tenant"
        invalid.action = "no..dots"
        invalid.id = "not-a-uuid"
        invalid.sourceIp = "999.1.1.1"
        invalid.occurredAt = Google_Protobuf_Timestamp(seconds: 1, nanos: 1_000_000_000)
        events.append(invalid)
        return events
    }

    // MARK: - part

    static func partSeeds() -> [(String, [UInt8])] {
        let directory = PartFuzz.path.split(separator: "/").dropLast().joined(separator: "/")
        let path = "/" + directory + "/seed.vprt"
        defer { unlink(path) }
        var events = sampleEvents().dropLast().enumerated().map { index, event in
            var event = event
            event.seq = UInt64(index + 1)
            event.receivedAt = Google_Protobuf_Timestamp(unixNanos: EventFuzz.now)
            if event.id.isEmpty {
                event.id = derivedEventID(receivedAt: EventFuzz.now, seq: event.seq).description
            }
            return event
        }
        // Odd values the columns must keep: no occurred-at, unknown enums, empty strings.
        var odd = AuditEvent()
        odd.tenant = "tenant-1"
        odd.seq = 99
        odd.actor.type = .UNRECOGNIZED(1_000)
        odd.outcome = .UNRECOGNIZED(7)
        odd.traceID = "ABCD"
        events.append(odd)

        var seeds: [(String, [UInt8])] = []
        for (name, level, rowsPerBlock) in [("zlib", Int32(6), 4096), ("plain", Int32(0), 4096), ("plain-blocks", Int32(0), 3)] {
            var options = PartWriter.Options()
            options.compressionLevel = level
            options.rowsPerBlock = rowsPerBlock
            do {
                _ = try PartWriter.write(events, to: path, options: options)
            } catch {
                fatalError("PartWriter could not write a seed part: \(error)")
            }
            guard let file = fopen(path, "rb") else { fatalError("cannot read \(path)") }
            var bytes: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = fread(&buffer, 1, buffer.count, file)
                if count <= 0 { break }
                bytes += buffer[..<count]
            }
            fclose(file)
            for mode: UInt8 in 0...2 { seeds.append(("\(name)-\(mode)", [mode] + bytes)) }
            // The stored chunks of an uncompressed part are the decoded chunks.
            if level == 0 && rowsPerBlock > events.count, let reader = try? PartReader(path: path) {
                for (column, chunk) in reader.blocks[0].columns {
                    let position = PartColumn.allCases.firstIndex(of: column)!
                    let control = UInt8(position) << 2 | 3
                    seeds.append(("chunk-\(column.name)", [control] + bytes[chunk.offset..<chunk.offset + chunk.storedLength]))
                }
                reader.close()
            }
        }
        return seeds
    }
}
