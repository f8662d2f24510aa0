import ArgumentParser
import Logging
import VigilServer
import VigilStorage

/// `vigil serve`'s flags for signed checkpoints of the hash chain.
struct CheckpointOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "Ed25519 key that signs checkpoints of the hash chain, every removal of events and every change of retention (PEM from `vigil keygen`, or 32 raw bytes); outside --data-dir, mode 600. Without it nothing is signed.",
        valueName: "file"))
    var checkpointKey: String?

    @Option(name: .long, help: ArgumentHelp("Where signed checkpoints go (default: <data-dir>/checkpoints).", valueName: "path"))
    var checkpointDir: String?

    @Option(name: .long, help: ArgumentHelp("How often a checkpoint is signed when new events were stored: 30s, 5m, 1h (s, m, h, d, w or y).", valueName: "duration"))
    var checkpointInterval = "5m"

    func validate() throws {
        _ = try DurationText.seconds(checkpointInterval, flag: "--checkpoint-interval")
    }

    /// Loads the key (refusing one inside the data directory or readable by
    /// others) before anything is opened; warns when there is none.
    func configuration(dataDirectory: String, logger: Logger) throws -> CheckpointConfiguration {
        var key: CheckpointKey?
        if let checkpointKey {
            do {
                key = try CheckpointKey.load(path: checkpointKey, dataDirectory: dataDirectory)
            } catch {
                throw CLIFailure.configuration(error.message)
            }
        } else {
            logger.warning("no --checkpoint-key: no signed checkpoints are written, so vigil verify can only show that the stored events and their hash chain agree with each other, not that they are what this server stored")
        }
        let directory = checkpointDir ?? dataDirectory + "/checkpoints"
        if let key {
            logger.info("signing checkpoints into \(directory) every \(checkpointInterval) with public key \(key.publicKey.hex)")
        }
        return CheckpointConfiguration(key: key, directory: directory, interval: .seconds(try DurationText.seconds(checkpointInterval, flag: "--checkpoint-interval")))
    }
}
