import Testing
import VigilCore
import VigilProto

@Suite("StatusCode and VigilError")
struct StatusTests {
    /// gRPC's status codes (grpc/grpc doc/statuscodes.md), in number order.
    static let grpcCodes: [(name: String, number: UInt32)] = [
        ("OK", 0), ("CANCELLED", 1), ("UNKNOWN", 2), ("INVALID_ARGUMENT", 3), ("DEADLINE_EXCEEDED", 4),
        ("NOT_FOUND", 5), ("ALREADY_EXISTS", 6), ("PERMISSION_DENIED", 7), ("RESOURCE_EXHAUSTED", 8),
        ("FAILED_PRECONDITION", 9), ("ABORTED", 10), ("OUT_OF_RANGE", 11), ("UNIMPLEMENTED", 12),
        ("INTERNAL", 13), ("UNAVAILABLE", 14), ("DATA_LOSS", 15), ("UNAUTHENTICATED", 16),
    ]

    @Test("status code numbers and names are gRPC's")
    func numbersAreGRPCs() {
        #expect(StatusCode.allCases.count == Self.grpcCodes.count)
        for (code, grpc) in zip(StatusCode.allCases, Self.grpcCodes) {
            #expect(code.rawValue == grpc.number)
            #expect(code.name == grpc.name)
            #expect(StatusCode(wireValue: grpc.number) == code)
            #expect(code.description == "\(grpc.name) (\(grpc.number))")
        }
        #expect(StatusCode.invalidArgument.rawValue == 3)
        #expect(StatusCode.resourceExhausted.rawValue == 8)
        #expect(StatusCode.unauthenticated.rawValue == 16)
    }

    @Test("numbers this version does not know map to UNKNOWN", arguments: [UInt32(17), 99, .max])
    func unknownWireValue(number: UInt32) {
        #expect(StatusCode(wireValue: number) == .unknown)
    }

    @Test("an error code can be anything but OK")
    func codeIsNeverOK() {
        #expect(VigilError.Code(.ok) == nil)
        for status in StatusCode.allCases where status != .ok {
            #expect(VigilError.Code(status)?.status == status)
        }
        let constants: [VigilError.Code] = [
            .cancelled, .unknown, .invalidArgument, .deadlineExceeded, .notFound, .alreadyExists,
            .permissionDenied, .resourceExhausted, .failedPrecondition, .aborted, .outOfRange,
            .unimplemented, .internal, .unavailable, .dataLoss, .unauthenticated,
        ]
        #expect(constants.map(\.status) == Array(StatusCode.allCases.dropFirst()))
        #expect(VigilError.Code.invalidArgument.description == "INVALID_ARGUMENT")
    }

    @Test("VigilError -> Status -> VigilError round trip", arguments: StatusCode.allCases.dropFirst())
    func roundTrip(status: StatusCode) throws {
        let code = try #require(VigilError.Code(status))
        let error = VigilError(
            code, "something went wrong: ünïcode",
            eventErrors: [.init(index: 3, field: "actor.id", reason: "is required"), .init(index: 9, field: "", reason: "too big")],
            metadata: ["vigil.cursor": "0100ab", "vigil.retry-after-ms": "250"])
        let wire = error.status
        #expect(wire.code == status.rawValue)
        #expect(wire.message == error.message)
        #expect(wire.eventErrors == error.eventErrors)
        #expect(wire.metadata == error.metadata)
        #expect(VigilError(status: wire) == error)

        // And through the protobuf binary form the TRAILERS frame carries.
        let bytes: [UInt8] = try wire.serializedBytes()
        let decoded = try Vigil_V1_Status(serializedBytes: bytes)
        #expect(VigilError(status: decoded) == error)
    }

    @Test("a Status with code OK is no error; an unknown code becomes UNKNOWN")
    func statusCodes() {
        var ok = Vigil_V1_Status()
        ok.message = "fine"
        #expect(VigilError(status: ok) == nil)

        var future = Vigil_V1_Status()
        future.code = 42
        future.message = "from a newer server"
        let error = VigilError(status: future)
        #expect(error?.code == .unknown)
        #expect(error?.message == "from a newer server")
    }

    @Test("description names the code and lists the event errors")
    func description() {
        let errors = (0..<12).map { EventError(index: UInt32($0), field: "tenant", reason: "is required") }
        let error = VigilError(.invalidArgument, "batch refused", eventErrors: errors)
        let lines = error.description.split(separator: "\n")
        #expect(lines.first == "INVALID_ARGUMENT: batch refused")
        #expect(lines.count == 12)
        #expect(lines[1] == "  event 0: tenant: is required")
        #expect(lines.last == "  … and 2 more")
    }
}
