import VigilCore
import VigilProto

extension VigilClient {
    /// Whether the server is serving, and if not, why. Any token may ask.
    public func health(timeout: Duration? = nil) async throws -> Vigil_V1_HealthResponse {
        try await unary(.health, Vigil_V1_HealthRequest(), timeout: timeout)
    }
}
