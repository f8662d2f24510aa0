import VigilProto

/// The protobuf names of enum values (as JSON and group keys spell them),
/// with unknown raw values shown as their number.
public enum EnumNames {
    public static func outcome(_ raw: Int32) -> String {
        switch raw {
        case 0: "OUTCOME_UNSPECIFIED"
        case 1: "SUCCESS"
        case 2: "FAILURE"
        case 3: "DENIED"
        default: String(raw)
        }
    }

    public static func category(_ raw: Int32) -> String {
        switch raw {
        case 0: "CATEGORY_UNSPECIFIED"
        case 1: "CREATE"
        case 2: "READ"
        case 3: "UPDATE"
        case 4: "DELETE"
        case 5: "LOGIN"
        case 6: "LOGOUT"
        case 7: "EXECUTE"
        case 8: "APPROVE"
        case 9: "REJECT"
        case 10: "OTHER"
        default: String(raw)
        }
    }

    public static func actorType(_ raw: Int32) -> String {
        switch raw {
        case 0: "ACTOR_TYPE_UNSPECIFIED"
        case 1: "USER"
        case 2: "SERVICE"
        case 3: "API_TOKEN"
        case 4: "SYSTEM"
        case 5: "ANONYMOUS"
        default: String(raw)
        }
    }
}
