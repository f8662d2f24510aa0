import Foundation
import Testing
@testable import vigil

@Suite("one duration syntax, s m h d w y, for every flag; units in --help")
struct DurationUnitTests {
    static let day: Int64 = 86_400 * 1_000_000_000

    @Test("--retention, --tenant-retention, --checkpoint-interval, --last, tail --since and --histogram all take w and y")
    func everyFlagTakesEveryUnit() throws {
        let serve = try ServeCommand.parse(["--retention", "2w", "--tenant-retention", "acme=1y", "--checkpoint-interval", "1w"])
        let retention = try serve.retentionSettings()
        #expect(retention.defaultNanos == 14 * Self.day)
        #expect(retention.tenantNanos["acme"] == 365 * Self.day)
        let query = try QueryCommand.parse(["--last", "1y"])
        #expect(try query.request().filter.last.seconds == 365 * 86_400)
        _ = try TailCommand.parse(["--since", "1y"])
        _ = try CountCommand.parse(["--histogram", "1y"])
        #expect(DurationText.seconds("1y") == .success(31_536_000))
        #expect(DurationText.seconds("100y") == .success(100 * 31_536_000))
        #expect(DurationText.seconds("101y") == .failure(.tooLong))
    }

    @Test("a refused duration lists every unit")
    func messageListsTheUnits() throws {
        let result = try VigilBinary.run(["query", "--last", "3fortnights"])
        #expect(result.status == 64)
        #expect(result.stderr.contains("--last '3fortnights' is not a duration: give a whole number and a unit s, m, h, d, w or y (365 days)"), "\(result.stderr)")
    }

    @Test("--help names the unit of numeric values: <seconds>, <bytes>, <MiB>")
    func valueNamesCarryUnits() {
        let serve = ServeCommand.helpMessage(columns: 200)
        for option in [
            "--max-frame-size <bytes>", "--max-event-bytes <bytes>", "--max-clock-skew <seconds>", "--handshake-timeout <seconds>",
            "--shutdown-timeout <seconds>", "--memory-budget-mb <MiB>", "--live-feed-mb <MiB>", "--query-cache-mb <MiB>",
            "--idle-timeout <seconds>", "--write-stall-timeout <seconds>", "--heartbeat-interval <seconds>",
        ] {
            #expect(serve.contains(option), "\(option)")
        }
        #expect(QueryCommand.helpMessage(columns: 200).contains("--timeout <seconds>"))
    }
}
