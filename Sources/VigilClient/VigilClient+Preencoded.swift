import NIOCore
import VigilCore
import VigilProto
import VigilWire

extension VigilClient {
    /// Stores a batch that is already serialized: `request` holds the protobuf
    /// binary form of a `Vigil_V1_IngestRequest`, sent as is. For senders that
    /// keep batches encoded (replaying a log, load generators), this skips the
    /// per-call encoding of `ingest(_:idempotencyKey:timeout:)`. The server
    /// validates the bytes like any other request: a malformed one ends the call
    /// with INVALID_ARGUMENT.
    public func ingest(preencoded request: ByteBuffer, timeout: Duration? = nil) async throws -> Vigil_V1_IngestResponse {
        let (_, events) = try await openCall(.ingest, payload: request, timeout: timeout, initialWindow: nil)
        return try await unaryAnswer(.ingest, events, as: Vigil_V1_IngestResponse.self).response
    }
}
