import Testing
import VigilCore

/// `TextSearch`: the case-insensitive substring match behind `filter.search`.
@Suite("TextSearch")
struct TextSearchTests {
    func expectMatch(_ needle: String, _ haystack: String, _ expected: Bool, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(
            TextSearch(needle).matches(haystack) == expected,
            "'\(needle)' in '\(haystack)' should be \(expected)", sourceLocation: sourceLocation)
    }

    @Test("the needle is kept lowercased")
    func needleLowercased() {
        #expect(TextSearch("ALICE").needle == "alice")
        #expect(TextSearch("Ünïcode").needle == "ünïcode")
        #expect(TextSearch("MiXeD.Case@Example.COM").needle == "mixed.case@example.com")
    }

    @Test("ASCII letters match in either case, on both sides")
    func asciiFolding() {
        expectMatch("alice", "ALICE", true)
        expectMatch("ALICE", "alice", true)
        expectMatch("aLiCe", "AlIcE sMiTh", true)
        expectMatch("BOB@ACME.TEST", "bob@acme.test", true)
        expectMatch("Z", "z", true)
        expectMatch("a", "A", true)
        expectMatch("alicia", "ALICE", false)
        // Only letters fold: '@' (0x40) and '`' (0x60), '[' (0x5B) and '{' (0x7B) are different characters.
        expectMatch("@", "`", false)
        expectMatch("`", "@", false)
        expectMatch("[", "{", false)
        expectMatch("{", "[", false)
        expectMatch("^", "~", false)
        expectMatch("_", "\u{7F}", false)
        expectMatch("user.create", "USER.CREATE", true)
        expectMatch("user-create", "user.create", false)
        expectMatch("123", "a123b", true)
    }

    @Test("the needle may sit at the start, the end, the middle, or be the whole haystack")
    func positions() {
        expectMatch("doc", "document-7", true)
        expectMatch("ent-7", "document-7", true)
        expectMatch("-7", "document-7", true)
        expectMatch("7", "document-7", true)
        expectMatch("d", "document-7", true)
        expectMatch("cume", "document-7", true)
        expectMatch("document-7", "DOCUMENT-7", true)
        expectMatch("document-77", "document-7", false)
        expectMatch("xdocument-7", "document-7", false)
        // A near match just before the real one.
        expectMatch("aab", "aaab", true)
        expectMatch("abab", "abaabab", true)
        expectMatch("abac", "ababab", false)
    }

    @Test("an empty haystack matches no needle; a needle longer than the haystack never matches")
    func emptyAndShort() {
        expectMatch("a", "", false)
        expectMatch("ü", "", false)
        expectMatch("alice", "alic", false)
        expectMatch("ünï", "ün", false)
        expectMatch("ab", "a", false)
        // An empty needle (the filter never builds one) matches everything.
        expectMatch("", "", true)
        expectMatch("", "anything", true)
    }

    @Test("a non-ASCII needle matches whatever case either side is in")
    func unicode() {
        expectMatch("Ünïcode", "ünïcode", true)
        expectMatch("ünïcode", "ÜNÏCODE", true)
        expectMatch("ÜNÏ", "some Ünïcode text", true)
        expectMatch("ïcode", "ÜNÏCODE", true)
        expectMatch("ÄRGER", "ärger ü", true)
        expectMatch("日本", "日本語のテキスト", true)
        expectMatch("テキスト", "日本語のテキスト", true)
        expectMatch("語の", "日本語のテキスト", true)
        expectMatch("本日", "日本語のテキスト", false)
        expectMatch("ünï", "unicode", false)
        expectMatch("ünï", "UNÏ", false)
        expectMatch("🦤", "a 🦤 bird", true)
        expectMatch("résumé", "RÉSUMÉ.PDF", true)
        expectMatch("RÉSUMÉ", "resume.pdf", false)
    }

    @Test("an ASCII needle matches the ASCII parts of a non-ASCII haystack, case-insensitively")
    func asciiNeedleUnicodeHaystack() {
        expectMatch("code", "Ünïcode", true)
        expectMatch("CODE", "ÜNÏCODE", true)
        expectMatch("nicode", "Ünïcode", false)
        expectMatch("unicode", "Ünïcode", false)
        expectMatch("txt", "日本語.TXT", true)
        expectMatch("a", "日本語", false)
    }

    @Test("no match inside a multi-byte character")
    func noMatchInsideCharacters() {
        // Precomposed letters share no byte with their ASCII base letter.
        expectMatch("e", "é", false)
        expectMatch("E", "É", false)
        expectMatch("a", "äåàáâã", false)
        expectMatch("i", "ïİı", false)
        expectMatch("c", "ç©", false)
        // UTF-8 continuation bytes (0x80-0xBF) minus 0x20 fall on other
        // continuation bytes, never on ASCII: "©" is C2 A9, "‰" is E2 80 B0.
        expectMatch("©", "é", false)  // C3 A9 vs C2 A9
        expectMatch("é", "É", true)
        expectMatch("é", "©", false)
        expectMatch("\u{80}", "\u{A0}", false)  // C2 80 vs C2 A0
        expectMatch("€", "₂¬", false)  // E2 82 AC vs E2 82 82 C2 AC
        expectMatch("本", "朴", false)  // E6 9C AC vs E6 9C B4
        // A needle ending in a lead byte's character never matches a prefix of a longer character.
        expectMatch("日", "旦", false)
        expectMatch("🦤", "🦥", false)  // F0 9F A6 A4 vs F0 9F A6 A5
    }

    @Test("the same needle gives the same answers however it was spelled")
    func spellingOfNeedle() {
        let haystacks = ["Alice Smith", "ALICE", "alice@example.com", "Ünïcode Alice", "", "alic", "bob"]
        for haystack in haystacks {
            let answers = Set(["alice", "ALICE", "Alice", "aLIcE"].map { TextSearch($0).matches(haystack) })
            #expect(answers.count == 1, "'\(haystack)'")
        }
    }

    @Test("over every needle and haystack of a two-letter alphabet, the search agrees with a naive one (overlapping prefixes: the resumption table)")
    func agreesWithNaiveSearch() {
        // Every string of "a"/"B" up to length 9 as haystack, up to 5 as needle:
        // every kind of partial match and restart.
        func strings(upTo length: Int) -> [String] {
            var all = [""]
            var level = [""]
            for _ in 0..<length {
                level = level.flatMap { [$0 + "a", $0 + "B"] }
                all += level
            }
            return all
        }
        let haystacks = strings(upTo: 9)
        var checked = 0
        for needle in strings(upTo: 5) {
            let search = TextSearch(needle)
            for haystack in haystacks {
                let expected = needle.isEmpty || haystack.lowercased().contains(needle.lowercased())
                if search.matches(haystack) != expected {
                    Issue.record("'\(needle)' in '\(haystack)': expected \(expected)")
                    return
                }
                checked += 1
            }
        }
        #expect(checked == 63 * 1023)
    }

    @Test("a long repetitive needle against a long repetitive text: found at the end, or not at all")
    func repetitiveText() {
        let text = String(repeating: "a", count: 4_095)
        #expect(TextSearch(String(repeating: "a", count: 255) + "b").matches(text + "B"))
        #expect(!TextSearch(String(repeating: "a", count: 255) + "b").matches(text))
        #expect(TextSearch(String(repeating: "é", count: 40) + "x").matches(String(repeating: "É", count: 2_000) + "X"))
    }
}
