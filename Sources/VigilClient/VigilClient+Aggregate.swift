import SwiftProtobuf
import VigilCore
import VigilProto
import VigilWire

extension VigilClient {
    /// Counts the events that match `request.filter`: the total, the `top`
    /// largest groups by `group_by` (with the rest in `other_count`) and a time
    /// histogram when `histogram_interval` is set.
    public func aggregate(_ request: Vigil_V1_AggregateRequest, timeout: Duration? = nil) async throws -> Vigil_V1_AggregateResponse {
        try await unaryWithTrailers(.aggregate, request, timeout: timeout).response
    }

    /// `aggregate(_:timeout:)`, with the OK trailers' metadata: scan statistics
    /// such as `vigil.rows-examined`, `vigil.blocks-scanned`, `vigil.blocks-skipped`
    /// and `vigil.bytes-decompressed`.
    public func aggregateWithStatistics(
        _ request: Vigil_V1_AggregateRequest, timeout: Duration? = nil
    ) async throws -> (response: Vigil_V1_AggregateResponse, trailers: [String: String]) {
        try await unaryWithTrailers(.aggregate, request, timeout: timeout)
    }

    /// A call with one request and one response, returning the response and
    /// the metadata of its OK trailers.
    public func unaryWithTrailers<Response: SwiftProtobuf.Message>(
        _ method: AuditMethod, _ request: some SwiftProtobuf.Message, timeout: Duration? = nil,
        as: Response.Type = Response.self
    ) async throws -> (response: Response, trailers: [String: String]) {
        let (_, events) = try await openCall(method, request: request, timeout: timeout, initialWindow: nil)
        return try await unaryAnswer(method, events, as: Response.self)
    }
}
