import ArgumentParser
import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// How `vigil serve` writes its log to standard error.
enum LogFormat: String, CaseIterable, Sendable, ExpressibleByArgument {
    /// swift-log's `StreamLogHandler` lines, for people.
    case text
    /// One JSON object per line, for log collectors.
    case json
}

/// The server's log level, changeable while it runs (SIGHUP reload): every
/// logger's handler reads it here, so a change reaches loggers already made.
final class LogLevelControl: Sendable {
    private let level: Atomic<UInt8>

    init(_ level: Logger.Level) {
        self.level = Atomic(Self.code(level))
    }

    var current: Logger.Level {
        get { Self.levels[Int(level.load(ordering: .relaxed))] }
        set { level.store(Self.code(newValue), ordering: .relaxed) }
    }

    private static let levels = Logger.Level.allCases
    private static func code(_ level: Logger.Level) -> UInt8 { UInt8(levels.firstIndex(of: level) ?? 0) }
}

/// The `LogHandler` of `vigil serve`: text or JSON lines on standard error, at
/// the level of a shared `LogLevelControl`.
struct VigilLogHandler: LogHandler {
    let label: String
    let format: LogFormat
    let control: LogLevelControl
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?
    /// A level set on one logger (`logger.logLevel = …`) wins over the shared one.
    private var ownLevel: Logger.Level?
    private var text: StreamLogHandler

    init(label: String, format: LogFormat, control: LogLevelControl) {
        self.label = label
        self.format = format
        self.control = control
        text = StreamLogHandler.standardError(label: label)
        // The shared level filters; the wrapped text handler writes whatever it is given.
        text.logLevel = .trace
    }

    var logLevel: Logger.Level {
        get { ownLevel ?? control.current }
        set { ownLevel = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var event = event
        SecretMask.apply(to: &event)
        switch format {
        case .text:
            var text = text
            text.metadata = SecretMask.masked(metadata)
            text.metadataProvider = metadataProvider
            text.log(event: event)
        case .json:
            var fields = SecretMask.masked(metadata)
            if let provided = metadataProvider?.get() { fields.merge(provided) { $1 } }
            if let own = event.metadata { fields.merge(own) { $1 } }
            let line = JSONLogLine.render(
                timestamp: JSONLogLine.now(), level: event.level, label: label, message: "\(event.message)", metadata: fields)
            JSONLogLine.write(line)
        }
    }
}

/// One JSON log line: `timestamp` (RFC 3339, UTC, microseconds), `level`,
/// `label`, `message`, then the metadata flattened as fields.
enum JSONLogLine {
    /// Serializes writes so lines from several threads never interleave.
    private static let output = Mutex(())

    static func render(timestamp: String, level: Logger.Level, label: String, message: String, metadata: Logger.Metadata) -> String {
        var line = "{\"timestamp\":\"\(timestamp)\",\"level\":\"\(level.rawValue)\",\"label\":"
        appendQuoted(label, to: &line)
        line += ",\"message\":"
        appendQuoted(message, to: &line)
        var flat: [(String, Logger.Metadata.Value)] = []
        flatten(metadata, prefix: "", into: &flat)
        for (key, value) in flat.sorted(by: { $0.0 < $1.0 }) where !reserved.contains(key) {
            line += ","
            appendQuoted(key, to: &line)
            line += ":"
            append(value, to: &line)
        }
        line += "}"
        return line
    }

    /// Field names of the line itself; metadata cannot replace them.
    private static let reserved: Set<String> = ["timestamp", "level", "label", "message"]

    /// Nested dictionaries become dotted keys (`vigil.tls.client`).
    private static func flatten(_ metadata: Logger.Metadata, prefix: String, into fields: inout [(String, Logger.Metadata.Value)]) {
        for (key, value) in metadata {
            if case .dictionary(let nested) = value {
                flatten(nested, prefix: prefix + key + ".", into: &fields)
            } else {
                fields.append((prefix + key, value))
            }
        }
    }

    private static func append(_ value: Logger.Metadata.Value, to line: inout String) {
        switch value {
        case .string(let text): appendQuoted(text, to: &line)
        case .stringConvertible(let convertible): appendQuoted(convertible.description, to: &line)
        case .array(let values):
            line += "["
            for (index, element) in values.enumerated() {
                if index > 0 { line += "," }
                append(element, to: &line)
            }
            line += "]"
        case .dictionary(let nested):
            // Only inside arrays (top-level dictionaries are flattened).
            line += "{"
            for (index, (key, element)) in nested.sorted(by: { $0.key < $1.key }).enumerated() {
                if index > 0 { line += "," }
                appendQuoted(key, to: &line)
                line += ":"
                append(element, to: &line)
            }
            line += "}"
        }
    }

    /// A JSON string: quotes, backslashes and control characters escaped.
    static func appendQuoted(_ text: String, to line: inout String) {
        line += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": line += "\\\""
            case "\\": line += "\\\\"
            case "\n": line += "\\n"
            case "\r": line += "\\r"
            case "\t": line += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F || scalar == "\u{2028}" || scalar == "\u{2029}":
                let hex = String(scalar.value, radix: 16)
                line += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: line.unicodeScalars.append(scalar)
            }
        }
        line += "\""
    }

    /// Now as RFC 3339 in UTC with microseconds: 2026-12-03T22:15:31.123456Z.
    static func now() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        var time = spec.tv_sec
        var parts = tm()
        gmtime_r(&time, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(spec.tv_nsec / 1_000), 6))Z"
    }

    static func write(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        output.withLock { _ in
            bytes.withUnsafeBytes { buffer in
                var written = 0
                while written < buffer.count {
                    let result = Glibc.write(2, buffer.baseAddress! + written, buffer.count - written)
                    if result < 0 {
                        if errno == EINTR { continue }
                        return
                    }
                    written += result
                }
            }
        }
    }
}

/// A second line of defence: no code path logs a token secret (see the
/// README, "Logs"), and should one ever, text shaped like one
/// (`vgl_<16 hex>_<43 base64url>`) is masked before it is written.
enum SecretMask {
    static let marker = "vgl_"

    static func apply(to event: inout LogEvent) {
        let message = "\(event.message)"
        if message.contains(marker) { event.message = "\(mask(message))" }
        if let metadata = event.metadata { event.metadata = masked(metadata) }
    }

    static func masked(_ metadata: Logger.Metadata) -> Logger.Metadata {
        metadata.mapValues(masked)
    }

    private static func masked(_ value: Logger.Metadata.Value) -> Logger.Metadata.Value {
        switch value {
        case .string(let text): text.contains(marker) ? .string(mask(text)) : value
        case .stringConvertible(let convertible):
            convertible.description.contains(marker) ? .string(mask(convertible.description)) : value
        case .array(let values): .array(values.map(masked))
        case .dictionary(let nested): .dictionary(masked(nested))
        }
    }

    /// Replaces what follows each `vgl_` (letters, digits, `_`, `-`) with `<redacted>`.
    static func mask(_ text: String) -> String {
        var result = ""
        var rest = Substring(text)
        while let range = rest.range(of: marker) {
            result += rest[..<range.upperBound]
            rest = rest[range.upperBound...].drop { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }
            result += "<redacted>"
        }
        return result + rest
    }
}
