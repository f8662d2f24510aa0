/// The methods of the `vigil.v1.Audit` service, by their names on the wire.
public enum AuditMethod: String, Sendable, CaseIterable {
    case ingest = "vigil.v1.Audit/Ingest"
    case query = "vigil.v1.Audit/Query"
    case aggregate = "vigil.v1.Audit/Aggregate"
    case subscribe = "vigil.v1.Audit/Subscribe"
    case get = "vigil.v1.Audit/Get"
    case verify = "vigil.v1.Audit/Verify"
    case createToken = "vigil.v1.Audit/CreateToken"
    case listTokens = "vigil.v1.Audit/ListTokens"
    case revokeToken = "vigil.v1.Audit/RevokeToken"
    case setRetention = "vigil.v1.Audit/SetRetention"
    case getStats = "vigil.v1.Audit/GetStats"
    case health = "vigil.v1.Audit/Health"
    case backup = "vigil.v1.Audit/Backup"

    /// Whether the server answers with a stream of messages (under WINDOW credit)
    /// rather than exactly one.
    public var isServerStreaming: Bool {
        switch self {
        case .query, .subscribe, .backup: true
        default: false
        }
    }
}
