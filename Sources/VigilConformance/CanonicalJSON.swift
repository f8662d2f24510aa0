/// A JSON value printed exactly as Python prints it with
/// `json.dumps(value, sort_keys=True, separators=(",", ":"))`, which is how
/// every client prints the scenario's lines (`run.sh` compares them byte for byte):
///
/// - no whitespace; object keys sorted by Unicode code point (Python's `str` order,
///   not Swift's `String` order, which compares canonical equivalents);
/// - `ensure_ascii` (Python's default): every scalar outside `' '`…`'~'` is escaped,
///   as `\n`, `\r`, `\t`, `\b`, `\f` where there is a short escape, else as
///   `\u` and four lowercase hex digits (a UTF-16 surrogate pair above U+FFFF);
///   `"` and `\` are escaped, `/` is not.
///
/// An object keeps its members as pairs, not in a `Dictionary`: Swift's `String`
/// equality would merge keys that Python keeps apart ("é" and "e\u{301}").
enum CanonicalJSON: Sendable {
    case string(String)
    case integer(Int)
    case bool(Bool)
    case array([CanonicalJSON])
    case object([(key: String, value: CanonicalJSON)])

    /// An array of strings.
    static func strings(_ values: [String]) -> CanonicalJSON {
        .array(values.map(CanonicalJSON.string))
    }

    /// The one-line text.
    var text: String {
        var out = ""
        write(to: &out)
        return out
    }

    func write(to out: inout String) {
        switch self {
        case .string(let value):
            Self.write(string: value, to: &out)
        case .integer(let value):
            out += String(value)
        case .bool(let value):
            out += value ? "true" : "false"
        case .array(let items):
            out += "["
            for (index, item) in items.enumerated() {
                if index > 0 { out += "," }
                item.write(to: &out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            let sorted = members.sorted {
                $0.key.unicodeScalars.lexicographicallyPrecedes($1.key.unicodeScalars) { $0.value < $1.value }
            }
            for (index, member) in sorted.enumerated() {
                if index > 0 { out += "," }
                Self.write(string: member.key, to: &out)
                out += ":"
                member.value.write(to: &out)
            }
            out += "}"
        }
    }

    private static func write(string: String, to out: inout String) {
        out += "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case " "..."~": out.unicodeScalars.append(scalar)
            default:
                for unit in String(scalar).utf16 { out += "\\u" + hex4(unit) }
            }
        }
        out += "\""
    }

    private static func hex4(_ unit: UInt16) -> String {
        let digits = String(unit, radix: 16)  // lowercase, like Python's
        return String(repeating: "0", count: 4 - digits.count) + digits
    }
}

extension CanonicalJSON: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    init(stringLiteral value: String) { self = .string(value) }
    init(integerLiteral value: Int) { self = .integer(value) }
    init(booleanLiteral value: Bool) { self = .bool(value) }
    init(arrayLiteral elements: CanonicalJSON...) { self = .array(elements) }
    init(dictionaryLiteral elements: (String, CanonicalJSON)...) {
        self = .object(elements.map { (key: $0.0, value: $0.1) })
    }
}
