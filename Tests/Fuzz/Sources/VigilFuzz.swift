#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import CLibFuzzer

/// `vigil-fuzz`: libFuzzer targets for the code that reads untrusted bytes.
/// Built by `Tests/Fuzz/run.sh` (never by a normal `swift build`).
///
/// `VIGIL_FUZZ_TARGET` picks the target; the arguments are libFuzzer's:
///
///     VIGIL_FUZZ_TARGET=frame vigil-fuzz -max_total_time=60 CORPUS_DIR
///     VIGIL_FUZZ_TARGET=part vigil-fuzz crash-1234     # reproduce one input
///
/// `VIGIL_FUZZ_SEEDS=DIR vigil-fuzz` writes each target's seed corpus into
/// DIR/TARGET and exits.
///
/// A harness reports a bug by trapping (`fatalError`, `precondition`): a thrown
/// error of the wrong kind or code, or a broken invariant, becomes a crash that
/// libFuzzer saves as an artifact, like a trap or a sanitizer report inside
/// the code under test.
@main
enum VigilFuzz {
    nonisolated(unsafe) static var target: FuzzTarget = .frame

    /// Hands the command line to libFuzzer's driver. (`-sanitize=fuzzer` links
    /// libFuzzer's own `main` as well, which does the same; which of the two
    /// the linker keeps does not matter.)
    static func main() {
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzerTestOneInput))
    }

    static func environment(_ name: String) -> String? {
        guard let value = getenv(name), value.pointee != 0 else { return nil }
        return String(cString: value)
    }
}

/// libFuzzer calls this once, before any input.
@_cdecl("LLVMFuzzerInitialize")
func fuzzerInitialize(
    _ argc: UnsafeMutablePointer<CInt>?, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?
) -> CInt {
    if let directory = VigilFuzz.environment("VIGIL_FUZZ_SEEDS") {
        Seeds.writeAll(to: directory)
        exit(0)
    }
    guard let name = VigilFuzz.environment("VIGIL_FUZZ_TARGET"), let target = FuzzTarget(rawValue: name) else {
        let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")
        print("vigil-fuzz: set VIGIL_FUZZ_TARGET to one of: \(names)")
        exit(2)
    }
    VigilFuzz.target = target
    return 0
}

/// libFuzzer calls this with each input.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    VigilFuzz.target.run(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

enum FuzzTarget: String, CaseIterable {
    /// Preface and frame decoding over arbitrary splits; COMPRESSED payloads.
    case frame
    /// Protobuf → IngestRequest → EventValidator; Filter → EventFilter; cursors.
    case event
    /// Part files and column chunks → PartReader and the column decoders.
    case part

    func run(_ data: UnsafeRawBufferPointer) {
        switch self {
        case .frame: FrameFuzz.run(data)
        case .event: EventFuzz.run(data)
        case .part: PartFuzz.run(data)
        }
    }
}

/// Takes typed values off the front of a fuzz input; past the end it yields zeros.
struct FuzzInput {
    let bytes: UnsafeRawBufferPointer
    var position = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var remaining: Int { bytes.count - position }

    mutating func byte() -> UInt8 {
        guard position < bytes.count else { return 0 }
        defer { position += 1 }
        return bytes[position]
    }

    mutating func u64() -> UInt64 {
        (0..<8).reduce(0) { value, _ in value << 8 | UInt64(byte()) }
    }

    /// Everything not yet taken.
    mutating func rest() -> [UInt8] {
        defer { position = bytes.count }
        return Array(bytes[position...])
    }
}
