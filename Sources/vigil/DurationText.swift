import ArgumentParser

/// Durations as the command line writes them: a whole number and a unit
/// (`90s`, `30m`, `24h`, `7d`, `2w`, `1y`). One parser for every flag and key that
/// takes one, so that a unit means the same everywhere and no value can
/// overflow into a trap.
enum DurationText {
    /// Seconds per unit; a year is 365 days.
    static let units: [Character: Int64] = ["s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800, "y": 31_536_000]

    /// The longest duration any flag takes. Longer is a typo (a retention
    /// "for ever" is `forever`), and the bound keeps nanoseconds within Int64.
    static let maxSeconds: Int64 = 100 * 365 * 86_400

    /// What the flags' messages list as the accepted form.
    static let form = "a whole number and a unit s, m, h, d, w or y (365 days), such as 90s, 30m, 24h, 7d, 2w or 1y"

    enum Problem: Error, Equatable {
        case notADuration
        case tooLong
    }

    /// Seconds, or why `text` is not a duration this parser takes.
    static func seconds(_ text: String) -> Result<Int64, Problem> {
        guard let unit = text.last, let perUnit = units[unit] else { return .failure(.notADuration) }
        let digits = text.dropLast()
        // ASCII digits only: no sign, no spaces, no other scripts' digits.
        guard !digits.isEmpty, digits.utf8.allSatisfy({ (0x30...0x39).contains($0) }) else { return .failure(.notADuration) }
        guard let value = Int64(digits) else { return .failure(.tooLong) }
        guard value > 0 else { return .failure(.notADuration) }
        let (seconds, overflow) = value.multipliedReportingOverflow(by: perUnit)
        guard !overflow, seconds <= maxSeconds else { return .failure(.tooLong) }
        return .success(seconds)
    }

    /// Seconds of `text` for `flag`, or a `ValidationError` naming it.
    static func seconds(_ text: String, flag: String) throws -> Int64 {
        switch seconds(text) {
        case .success(let seconds): return seconds
        case .failure(.tooLong): throw ValidationError("\(flag) '\(text)' is longer than 100 years")
        case .failure(.notADuration): throw ValidationError("\(flag) '\(text)' is not a duration: give \(form)")
        }
    }

    /// Nanoseconds of `text` for `flag` (at most 100 years: no overflow).
    static func nanoseconds(_ text: String, flag: String) throws -> Int64 {
        try seconds(text, flag: flag) * 1_000_000_000
    }
}
