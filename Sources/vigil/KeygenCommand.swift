import ArgumentParser
import VigilCore
import VigilStorage

struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Create the Ed25519 key that signs checkpoints of the hash chain.",
        discussion: """
            Writes the private key to --out (PEM, PKCS#8, mode 600; an existing file is \
            never overwritten) and its public half to --out.pub, and prints the public key. \
            Keep the private key outside the data directory, and the public key wherever \
            you verify:
              vigil keygen --out /etc/vigil/checkpoint.key
              vigil serve --checkpoint-key /etc/vigil/checkpoint.key
              vigil verify --data-dir ./vigil-data \\
                  --public-key /etc/vigil/checkpoint.key.pub
            """
    )

    @Option(name: .long, help: ArgumentHelp("Where to write the private key.", valueName: "file"))
    var out: String

    func run() throws {
        let key = CheckpointKey.generate()
        do {
            try key.write(to: out)
            try FileIO.writeAtomically(Array(key.publicKey.pem.utf8), to: out + ".pub", mode: 0o644)  // public: auditors read it
        } catch {
            throw CLIError(error)
        }
        print("public key \(key.publicKey.hex)")
        printError("wrote \(out) (private, mode 600) and \(out).pub")
    }
}
