import ArgumentParser
import VigilCore
import VigilStorage

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Describe a data directory: parts, blocks, rows, time ranges, sizes, compression per column.",
        discussion: """
            Reads the directory directly (no server needed; it may be running). Checks every \
            part's checksums as it reads them and reports corruption instead of data.
              vigil inspect ./vigil-data
              vigil inspect ./vigil-data --blocks        # one line per block too
            """
    )

    @Argument(help: "The data directory.")
    var dataDir = "./vigil-data"

    @Flag(name: .long, help: "List every block of every part.")
    var blocks = false

    func run() throws {
        let report: StorageInspection
        do {
            report = try StorageInspection(directory: dataDir)
        } catch {
            throw CLIError(error)
        }
        print(report.render(blocks: blocks))
    }
}
