import VigilProto

/// The error every public Vigil API throws: a status code that is never `ok`,
/// a message that says what went wrong (and, where it helps, what to do), and
/// the details a call's trailers carry.
public struct VigilError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A non-OK status code. `Code` has no `ok` case, so an error cannot claim success.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        public let status: StatusCode

        /// Returns nil for `.ok`.
        public init?(_ status: StatusCode) {
            guard status != .ok else { return nil }
            self.status = status
        }

        public static let cancelled = Code(unchecked: .cancelled)
        public static let unknown = Code(unchecked: .unknown)
        public static let invalidArgument = Code(unchecked: .invalidArgument)
        public static let deadlineExceeded = Code(unchecked: .deadlineExceeded)
        public static let notFound = Code(unchecked: .notFound)
        public static let alreadyExists = Code(unchecked: .alreadyExists)
        public static let permissionDenied = Code(unchecked: .permissionDenied)
        public static let resourceExhausted = Code(unchecked: .resourceExhausted)
        public static let failedPrecondition = Code(unchecked: .failedPrecondition)
        public static let aborted = Code(unchecked: .aborted)
        public static let outOfRange = Code(unchecked: .outOfRange)
        public static let unimplemented = Code(unchecked: .unimplemented)
        public static let `internal` = Code(unchecked: .internal)
        public static let unavailable = Code(unchecked: .unavailable)
        public static let dataLoss = Code(unchecked: .dataLoss)
        public static let unauthenticated = Code(unchecked: .unauthenticated)

        private init(unchecked status: StatusCode) { self.status = status }

        public var description: String { status.name }
    }

    public var code: Code
    public var message: String
    /// For a refused ingest batch: each bad event with its reason.
    public var eventErrors: [Vigil_V1_EventError]
    /// Method-specific facts (`vigil.cursor`, `vigil.retry-after-ms`, …).
    public var metadata: [String: String]

    public init(
        _ code: Code,
        _ message: String,
        eventErrors: [Vigil_V1_EventError] = [],
        metadata: [String: String] = [:]
    ) {
        self.code = code
        self.message = message
        self.eventErrors = eventErrors
        self.metadata = metadata
    }

    /// Rebuilds the error a TRAILERS frame describes; nil when its code is OK.
    public init?(status: Vigil_V1_Status) {
        guard let code = Code(StatusCode(wireValue: status.code)) else { return nil }
        self.init(code, status.message, eventErrors: status.eventErrors, metadata: status.metadata)
    }

    /// The TRAILERS payload that reports this error.
    public var status: Vigil_V1_Status {
        var status = Vigil_V1_Status()
        status.code = code.status.rawValue
        status.message = message
        status.eventErrors = eventErrors
        status.metadata = metadata
        return status
    }

    public var description: String {
        var text = "\(code.status.name): \(message)"
        for error in eventErrors.prefix(10) {
            text += "\n  event \(error.index): \(error.field): \(error.reason)"
        }
        if eventErrors.count > 10 { text += "\n  … and \(eventErrors.count - 10) more" }
        return text
    }
}
