import VigilCore
import VigilProto

/// The admin calls (an admin token is needed for each).
extension VigilClient {
    /// Creates a token; the response holds its secret, shown this once.
    public func createToken(_ request: Vigil_V1_CreateTokenRequest, timeout: Duration? = nil) async throws -> Vigil_V1_CreateTokenResponse {
        try await unary(.createToken, request, timeout: timeout)
    }

    public func listTokens(timeout: Duration? = nil) async throws -> [Vigil_V1_TokenInfo] {
        let response: Vigil_V1_ListTokensResponse = try await unary(.listTokens, Vigil_V1_ListTokensRequest(), timeout: timeout)
        return response.tokens
    }

    /// Revokes a token; connections using it are closed.
    public func revokeToken(id: String, timeout: Duration? = nil) async throws -> Vigil_V1_TokenInfo {
        var request = Vigil_V1_RevokeTokenRequest()
        request.id = id
        let response: Vigil_V1_RevokeTokenResponse = try await unary(.revokeToken, request, timeout: timeout)
        return response.info
    }

    public func setRetention(_ request: Vigil_V1_SetRetentionRequest, timeout: Duration? = nil) async throws -> Vigil_V1_SetRetentionResponse {
        try await unary(.setRetention, request, timeout: timeout)
    }

    public func stats(timeout: Duration? = nil) async throws -> Vigil_V1_GetStatsResponse {
        try await unary(.getStats, Vigil_V1_GetStatsRequest(), timeout: timeout)
    }
}
