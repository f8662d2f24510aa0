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
}
