import VigilCore
import VigilProto

extension VigilClient {
    /// Asks the server to write a backup of its data directory to
    /// `destination`, an absolute path on the server's host that does not
    /// exist or is empty (server admin only). `progress` gets each progress
    /// message; returns the summary once the backup is complete.
    public func backup(
        destination: String, timeout: Duration? = nil, progress: @Sendable (Vigil_V1_BackupProgress) -> Void = { _ in }
    ) async throws -> Vigil_V1_BackupSummary {
        var request = Vigil_V1_BackupRequest()
        request.destination = destination
        let (streamID, events) = try await openCall(.backup, request: request, timeout: timeout, initialWindow: 4)
        var summary: Vigil_V1_BackupSummary?
        for try await event in events {
            switch event {
            case .message(let frame):
                let message = try frame.messagePayload(maxMessageSize: maxMessageSize).decodeMessage(Vigil_V1_BackupProgress.self)
                grantWindow(streamID: streamID, messages: 1)
                if message.hasSummary { summary = message.summary }
                progress(message)
            case .trailers(let status):
                if let error = VigilError(status: status) { throw error }
            }
        }
        try Task.checkCancellation()
        guard let summary else { throw VigilError(.internal, "the server ended Backup without its summary") }
        return summary
    }
}
