/// A strict reader of the Prometheus text exposition format (0.0.4), for
/// checking what `/metrics` serves: every line is a `# HELP`, a `# TYPE`, a
/// sample `name{label="value",...} value`, or empty; anything else, a
/// malformed name, label or value, a sample before its family's TYPE, a
/// family declared twice or a histogram sample of the wrong shape is an error.
struct PrometheusText {
    struct Sample: Hashable {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    struct ParseError: Error, CustomStringConvertible {
        var line: Int
        var reason: String
        var text: String
        var description: String { "line \(line): \(reason): \(text)" }
    }

    private(set) var types: [String: String] = [:]
    private(set) var help: [String: String] = [:]
    private(set) var samples: [Sample] = []

    init(_ text: String) throws {
        guard text.isEmpty || text.hasSuffix("\n") else {
            throw ParseError(line: 0, reason: "the exposition must end with a newline", text: String(text.suffix(40)))
        }
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().enumerated() {
            let number = index + 1
            func fail(_ reason: String) -> ParseError { ParseError(line: number, reason: reason, text: String(line)) }
            if line.isEmpty { continue }
            if line.hasPrefix("# HELP ") {
                let rest = line.dropFirst("# HELP ".count)
                let name = String(rest.prefix { $0 != " " })
                guard Self.isMetricName(name) else { throw fail("bad metric name in HELP") }
                guard help[name] == nil else { throw fail("second HELP for \(name)") }
                help[name] = String(rest.dropFirst(name.count + 1))
            } else if line.hasPrefix("# TYPE ") {
                let parts = line.dropFirst("# TYPE ".count).split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2, Self.isMetricName(String(parts[0])) else { throw fail("TYPE is not '# TYPE name type'") }
                guard ["counter", "gauge", "histogram", "summary", "untyped"].contains(parts[1]) else { throw fail("unknown type") }
                guard types[String(parts[0])] == nil else { throw fail("second TYPE for \(parts[0])") }
                guard !samples.contains(where: { Self.family(of: $0.name, types: [String(parts[0]): String(parts[1])]) == String(parts[0]) }) else {
                    throw fail("TYPE after samples of its family")
                }
                types[String(parts[0])] = String(parts[1])
            } else if line.hasPrefix("#") {
                continue  // A comment.
            } else {
                let sample = try Self.sample(line, fail: fail)
                guard let family = Self.family(of: sample.name, types: types) else { throw fail("sample without a TYPE for its family") }
                if types[family] == "histogram" {
                    let suffix = sample.name.dropFirst(family.count)
                    guard ["_bucket", "_sum", "_count"].contains(suffix) else { throw fail("histogram sample is not _bucket, _sum or _count") }
                    guard (suffix == "_bucket") == (sample.labels["le"] != nil) else { throw fail("le label on a non-bucket or missing on a bucket") }
                }
                if types[family] == "counter" && sample.value < 0 { throw fail("negative counter") }
                samples.append(sample)
            }
        }
    }

    /// The family a sample name belongs to: itself, or for histograms and
    /// summaries the name without `_bucket`/`_sum`/`_count`.
    static func family(of name: String, types: [String: String]) -> String? {
        if types[name] != nil { return name }
        for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
            let base = String(name.dropLast(suffix.count))
            if let type = types[base], type == "histogram" || type == "summary" { return base }
        }
        return nil
    }

    static func isMetricName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first.properties.isAlphabetic && first.isASCII || first == "_" || first == ":" else { return false }
        return name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_" || $0 == ":") }
    }

    static func isLabelName(_ name: String) -> Bool {
        isMetricName(name) && !name.contains(":")
    }

    private static func sample(_ line: Substring, fail: (String) -> ParseError) throws -> Sample {
        var rest = line[...]
        let name = String(rest.prefix { $0 != "{" && $0 != " " })
        guard isMetricName(name) else { throw fail("bad metric name") }
        rest = rest.dropFirst(name.count)
        var labels: [String: String] = [:]
        if rest.first == "{" {
            rest = rest.dropFirst()
            while rest.first != "}" {
                let label = String(rest.prefix { $0 != "=" })
                guard isLabelName(label) else { throw fail("bad label name '\(label)'") }
                rest = rest.dropFirst(label.count)
                guard rest.hasPrefix("=\"") else { throw fail("label \(label) has no =\"value\"") }
                rest = rest.dropFirst(2)
                var value = ""
                while true {
                    guard let character = rest.first else { throw fail("unterminated label value") }
                    rest = rest.dropFirst()
                    if character == "\"" { break }
                    if character == "\\" {
                        switch rest.first {
                        case "\\": value.append("\\")
                        case "\"": value.append("\"")
                        case "n": value.append("\n")
                        default: throw fail("bad escape in a label value")
                        }
                        rest = rest.dropFirst()
                    } else {
                        value.append(character)
                    }
                }
                guard labels[label] == nil else { throw fail("label \(label) twice") }
                labels[label] = value
                if rest.first == "," { rest = rest.dropFirst() } else if rest.first != "}" { throw fail("expected , or } after a label") }
            }
            rest = rest.dropFirst()
        }
        guard rest.first == " " else { throw fail("no space before the value") }
        let fields = rest.dropFirst().split(separator: " ", omittingEmptySubsequences: false)
        guard (1...2).contains(fields.count), let value = parseValue(fields[0]) else { throw fail("bad value") }
        if fields.count == 2, Int64(fields[1]) == nil { throw fail("bad timestamp") }
        return Sample(name: name, labels: labels, value: value)
    }

    private static func parseValue(_ text: Substring) -> Double? {
        switch text {
        case "+Inf": .infinity
        case "-Inf": -.infinity
        case "NaN": .nan
        default: Double(text)
        }
    }

    /// The value of the sample with exactly these labels; nil when absent.
    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first { $0.name == name && $0.labels == labels }?.value
    }

    /// The sample's value, 0 when it does not exist yet (a counter that never moved).
    func count(_ name: String, _ labels: [String: String] = [:]) -> Double {
        value(name, labels) ?? 0
    }

    /// Every label set a metric has.
    func labelSets(_ name: String) -> [[String: String]] {
        samples.filter { $0.name == name }.map(\.labels)
    }
}
