import Testing
import VigilCore

@Suite("EventID and UUIDv7Generator")
struct EventIDTests {
    @Test("parses the canonical form into its two words and prints it back")
    func parseAndFormat() throws {
        let text = "0190f3c2-5b1e-7c3a-9f00-1a2b3c4d5e6f"
        let id = try #require(EventID(text))
        #expect(id.high == 0x0190_f3c2_5b1e_7c3a)
        #expect(id.low == 0x9f00_1a2b_3c4d_5e6f)
        #expect(id.description == text)
        #expect(EventID(id.description) == id)
    }

    @Test("upper case parses to the same id and prints in lower case")
    func upperCase() throws {
        let upper = try #require(EventID("0190F3C2-5B1E-7C3A-9F00-1A2B3C4D5E6F"))
        #expect(upper == EventID("0190f3c2-5b1e-7c3a-9f00-1a2b3c4d5e6f"))
        #expect(upper.description == "0190f3c2-5b1e-7c3a-9f00-1a2b3c4d5e6f")
    }

    @Test("extreme values round trip")
    func extremes() {
        let zero = EventID(high: 0, low: 0)
        #expect(zero.description == "00000000-0000-0000-0000-000000000000")
        let max = EventID(high: .max, low: .max)
        #expect(max.description == "ffffffff-ffff-ffff-ffff-ffffffffffff")
        #expect(EventID(zero.description) == zero)
        #expect(EventID(max.description) == max)
    }

    @Test("random ids round trip through text, and order like their text")
    func randomRoundTrip() throws {
        var random = SplitMix64(seed: 7)
        var previous: EventID?
        for _ in 0..<1_000 {
            let id = EventID(high: random.next(), low: random.next())
            let text = id.description
            #expect(text.utf8.count == 36)
            #expect(EventID(text) == id)
            #expect(EventID(text.uppercased()) == id)
            if let previous {
                #expect((previous < id) == (previous.description < text))
            }
            previous = id
        }
    }

    @Test(
        "anything but 8-4-4-4-12 hex is refused",
        arguments: [
            "", "0190f3c2", "0190f3c25b1e7c3a9f001a2b3c4d5e6f", "{0190f3c2-5b1e-7c3a-9f00-1a2b3c4d5e6f}",
            "0190f3c2-5b1e-7c3a-9f00-1a2b3c4d5e6", "0190f3c2-5b1e-7c3a-9f00-1a2b3c4d5e6f0",
            "0190f3c2-5b1e-7c3a-9f00-1a2b3c4d5e6g", "0190f3c2-5b1e-7c3a-9f001-a2b3c4d5e6f",
            "0190f3c2_5b1e_7c3a_9f00_1a2b3c4d5e6f", "0190f3c2-5b1e-7c3a-9f00-1a2b3c4d5e6f\n",
            "0190f3c2-5b1e-7c3a-9f00-1a2b3c4d5é6", "urn:uuid:0190f3c2-5b1e-7c3a-9f00-1a2b3c4d5e6f",
        ])
    func invalid(text: String) {
        #expect(EventID(text) == nil)
    }

    @Test("parses from a Substring too")
    func substring() {
        let line = "id=0190f3c2-5b1e-7c3a-9f00-1a2b3c4d5e6f;"
        let slice = line.dropFirst(3).dropLast()
        #expect(EventID(slice)?.description == "0190f3c2-5b1e-7c3a-9f00-1a2b3c4d5e6f")
    }

    // MARK: - UUIDv7

    @Test("10,000 ids from the same millisecond strictly increase and are valid UUIDv7")
    func sameMillisecondMonotonic() {
        var generator = UUIDv7Generator()
        let now: UnixNanos = 1_780_000_000_123_456_789
        let millis = UInt64(now / 1_000_000)
        var ids: [EventID] = []
        ids.reserveCapacity(10_000)
        for _ in 0..<10_000 {
            ids.append(generator.next(unixNanos: now))
        }
        var increasing = true
        for index in ids.indices.dropFirst() where !(ids[index - 1] < ids[index]) {
            increasing = false
        }
        #expect(increasing)
        #expect(Set(ids).count == ids.count)
        #expect(ids.allSatisfy { ($0.high >> 12) & 0xF == 7 }, "version nibble 7")
        #expect(ids.allSatisfy { $0.low >> 62 == 0b10 }, "variant bits 10")
        #expect(ids.allSatisfy { $0.description.dropFirst(14).first == "7" })
        #expect(ids.allSatisfy { "89ab".contains($0.description.dropFirst(19).first!) })
        // The first id carries the clock's millisecond; later ones may borrow
        // the following milliseconds once the 12-bit counter runs out.
        #expect(ids[0].high >> 16 == millis)
        #expect(ids.last!.high >> 16 <= millis + 3)
        // Strictly increasing text too, so ids sort as text.
        #expect(ids.map(\.description) == ids.map(\.description).sorted())
    }

    @Test("ids keep increasing when the clock steps back, and follow it forwards")
    func clockSteps() {
        var generator = UUIDv7Generator()
        let t: UnixNanos = 1_780_000_000_000_000_000
        let a = generator.next(unixNanos: t)
        let b = generator.next(unixNanos: t - 60_000_000_000)  // one minute back
        let c = generator.next(unixNanos: t + 5_000_000)  // 5 ms later
        #expect(a < b)
        #expect(b < c)
        #expect(c.high >> 16 == UInt64((t + 5_000_000) / 1_000_000))
        #expect(c.high & 0xFFF == 0, "a new millisecond restarts the counter")
    }

    @Test("two generators in the same millisecond give different ids")
    func randomBits() {
        var first = UUIDv7Generator()
        var second = UUIDv7Generator()
        let now: UnixNanos = 1_780_000_000_000_000_000
        #expect(first.next(unixNanos: now) != second.next(unixNanos: now))
    }
}
