import VigilProto

// Short names for the generated protobuf types that make up Vigil's public API.
public typealias AuditEvent = Vigil_V1_AuditEvent
public typealias EventFilterMessage = Vigil_V1_Filter
public typealias EventError = Vigil_V1_EventError

extension Vigil_V1_EventError {
    public init(index: UInt32, field: String, reason: String) {
        self.init()
        self.index = index
        self.field = field
        self.reason = reason
    }
}
