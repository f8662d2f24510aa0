import Testing
import VigilCore

@testable import VigilStorage

/// `StoredTextRows.filter(_:in:)` decides set membership on the stored bytes
/// (a trace id query scans every row of the blocks its bloom filters let in):
/// it must agree with the rows' values whatever form they are stored in.
@Suite("Stored text rows: set membership on the bytes")
struct StoredTextRowsFilterTests {
    @Test("agrees with the rows' values for text, hex and empty rows and random sets, on any subset of rows")
    func agreesWithValues() {
        var random = SplitMix64(seed: 0x5EED_F11E)
        for _ in 0..<300 {
            // Small alphabets: forms, lengths and bytes collide often.
            let pool: [String] = (0..<6).map { _ in
                let length = Int.random(in: 0..<5, using: &random) * 2
                return String((0..<length).map { _ in Array("0a1bf")[Int.random(in: 0..<5, using: &random)] })
            } + (0..<6).map { _ in
                // Ids' lengths, sharing their first 8 (raw) or 16 (text) bytes, differing after.
                let suffix = (0..<2 * Int.random(in: 0..<9, using: &random)).map { _ in Array("0a")[Int.random(in: 0..<2, using: &random)] }
                return "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a" + String(suffix)
            } + ["q-1", "Q-1", "ab", "AB", "é"]
            var forms: [UInt8] = [], starts: [Int32] = [], lengths: [Int32] = [], bytes: [UInt8] = []
            var values: [String] = []
            for _ in 0..<Int.random(in: 0..<60, using: &random) {
                let value = pool[Int.random(in: 0..<pool.count, using: &random)]
                let utf8 = Array(value.utf8)
                var form = StoredTextRows.Form.text
                var stored = utf8
                if utf8.isEmpty {
                    form = Int.random(in: 0..<2, using: &random) == 0 ? .empty : .text
                } else if Int.random(in: 0..<2, using: &random) == 0, utf8.count % 2 == 0, let raw = StoredTextRows.hexBytes(utf8) {
                    form = .hex
                    stored = raw
                }
                // Other rows' bytes around this one's, as in a shared table.
                bytes += (0..<Int.random(in: 0..<3, using: &random)).map { _ in UInt8(ascii: "x") }
                forms.append(form.rawValue)
                starts.append(Int32(bytes.count))
                lengths.append(Int32(stored.count))
                bytes += stored
                values.append(value)
            }
            let rows = StoredTextRows(forms: forms, starts: starts, lengths: lengths, bytes: bytes)
            #expect((0..<values.count).allSatisfy { rows.value(at: $0) == values[$0] })
            let wanted = ExactStringSet((0..<Int.random(in: 0..<4, using: &random)).map { _ in pool[Int.random(in: 0..<pool.count, using: &random)] })
            let subset = (0..<Int32(values.count)).filter { _ in Int.random(in: 0..<4, using: &random) != 0 }
            let expected = subset.filter { wanted.contains(values[Int($0)]) }
            #expect(rows.filter(subset, in: wanted) == expected, "values \(values), wanted \(Array(wanted))")
        }
    }
}
