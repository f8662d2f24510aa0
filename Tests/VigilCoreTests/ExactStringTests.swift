import Testing
import VigilCore

@Suite("ExactString: byte-exact equality and hashing")
struct ExactStringTests {
    @Test("canonically equivalent but different bytes are different; equal bytes are equal, whatever their storage")
    func equality() {
        let precomposed = "Caf\u{E9}"
        let decomposed = "Cafe\u{301}"
        #expect(precomposed == decomposed, "Swift's String equality: canonical equivalence")
        #expect(ExactString(precomposed) != ExactString(decomposed))
        #expect(ExactString("") == ExactString(""))
        #expect(ExactString("") != ExactString("a"))
        #expect(ExactString("abc") != ExactString("abd"))
        #expect(ExactString("abc") != ExactString("abcd"))
        // A long (heap) string and a small one built from the same bytes.
        let long = String(repeating: "x", count: 40)
        #expect(ExactString(long) == ExactString(String(decoding: Array(long.utf8), as: UTF8.self)))
        #expect(ExactString("short") == ExactString(String("a short".dropFirst(2))))
        let set = ExactStringSet([precomposed, "x"])
        #expect(set.contains(precomposed) && !set.contains(decomposed) && set.count == 2)
    }

    @Test("sets answer byte-exactly below and above the size kept as an array, and compare by members only")
    func sets() {
        let precomposed = "Caf\u{E9}"
        let decomposed = "Cafe\u{301}"
        // Grown one insert at a time past the array's limit, and built at once: the same answers.
        var grown = ExactStringSet()
        var names: [String] = []
        for index in 0..<(ExactStringSetLimits.few + 3) {
            let name = index == 0 ? precomposed : "tenant-\(index)"
            names.append(name)
            grown.insert(name)
            grown.insert(name)
            let built = ExactStringSet(names)
            for set in [grown, built] {
                #expect(set.count == names.count)
                #expect(names.allSatisfy(set.contains))
                #expect(!set.contains(decomposed), "canonically equal, other bytes")
                #expect(!set.contains("tenant-") && !set.contains("tenant-\(index + 1)") && !set.contains(""))
            }
            #expect(grown == built && grown.hashValue == built.hashValue)
        }
        // The order of insertion does not matter.
        #expect(ExactStringSet(["a", "b", "c"]) == ExactStringSet(["c", "a", "b"]))
        #expect(Set([ExactStringSet(["a", "b"]), ExactStringSet(["b", "a"])]).count == 1)
        #expect(ExactStringSet(["a", "b"]) != ExactStringSet(["a", "c"]))
        #expect(ExactStringSet([""]).contains("") && !ExactStringSet().contains(""))
    }
}
