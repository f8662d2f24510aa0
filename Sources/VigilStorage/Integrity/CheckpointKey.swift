#if canImport(Glibc)
import Glibc
#endif
import Crypto
import Foundation
import VigilCore

/// The Ed25519 key that signs checkpoints. Its file holds the key as PEM
/// (PKCS#8, `-----BEGIN PRIVATE KEY-----`, what `vigil keygen` and
/// `openssl genpkey -algorithm ed25519` write) or as the 32 raw bytes of its
/// seed. It must live outside the data directory and be readable by its
/// owner only: whoever can change the data must not also be able to sign.
public struct CheckpointKey: Sendable {
    public let privateKey: Curve25519.Signing.PrivateKey

    public init(privateKey: Curve25519.Signing.PrivateKey) {
        self.privateKey = privateKey
    }

    public static func generate() -> CheckpointKey {
        CheckpointKey(privateKey: Curve25519.Signing.PrivateKey())
    }

    public var publicKey: CheckpointPublicKey {
        CheckpointPublicKey(raw: Array(privateKey.publicKey.rawRepresentation))!
    }

    /// PKCS#8 PEM, as OpenSSL writes Ed25519 private keys.
    public var pem: String {
        pemText(label: "PRIVATE KEY", der: Self.pkcs8Prefix + Array(privateKey.rawRepresentation))
    }

    /// DER of PKCS#8 for Ed25519 (RFC 8410) before the 32-byte seed.
    static let pkcs8Prefix: [UInt8] = [0x30, 0x2E, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]

    /// Parses a key file's bytes (PEM or the raw 32-byte seed).
    public init?(fileContents bytes: [UInt8]) {
        let seed: [UInt8]
        if bytes.count == 32 {
            seed = bytes
        } else if let der = pemBody(String(decoding: bytes, as: UTF8.self), label: "PRIVATE KEY"),
            der.count == Self.pkcs8Prefix.count + 32, der.starts(with: Self.pkcs8Prefix)
        {
            seed = Array(der.suffix(32))
        } else {
            return nil
        }
        guard let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: seed) else { return nil }
        privateKey = key
    }

    /// Loads the key of `vigil serve --checkpoint-key`, refusing a file
    /// inside `dataDirectory` or one that group or others may read or write.
    public static func load(path: String, dataDirectory: String?) throws(VigilError) -> CheckpointKey {
        var status = stat()
        guard stat(path, &status) == 0 else {
            throw VigilError(.failedPrecondition, "--checkpoint-key \(path): \(String(cString: strerror(errno)))")
        }
        guard status.st_mode & S_IFMT == S_IFREG else {
            throw VigilError(.failedPrecondition, "--checkpoint-key \(path) is not a regular file")
        }
        if let dataDirectory, isInside(path, dataDirectory) {
            throw VigilError(
                .failedPrecondition,
                "--checkpoint-key \(path) is inside the data directory \(dataDirectory); keep the signing key outside it, so that whoever can change the data cannot also sign checkpoints")
        }
        let mode = status.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            throw VigilError(
                .failedPrecondition,
                "--checkpoint-key \(path) may be read or written by group or others (mode \(String(mode, radix: 8))); make it private: chmod 600 \(path)")
        }
        let bytes: [UInt8]
        do {
            let file = try FileHandleDescriptor.open(path, flags: O_RDONLY)
            defer { file.close() }
            bytes = try file.read(count: min(try file.size(), 1 << 16), at: 0)
        } catch {
            throw VigilError(.failedPrecondition, "--checkpoint-key \(path): \(error.message)")
        }
        guard let key = CheckpointKey(fileContents: bytes) else {
            throw VigilError(
                .failedPrecondition,
                "--checkpoint-key \(path) is not an Ed25519 private key (PEM from `vigil keygen` or `openssl genpkey -algorithm ed25519`, or 32 raw bytes)")
        }
        return key
    }

    /// Writes a new key to `path` (mode 0600; refuses to overwrite).
    public func write(to path: String) throws(VigilError) {
        // Written whole to a temporary file, then linked to its name: link
        // fails if the name exists (a key is never overwritten), and a write
        // cut short leaves no partial key there to refuse the next attempt.
        if FileIO.exists(path) {
            throw VigilError(.failedPrecondition, "cannot create \(path): it already exists (a key is never overwritten)")
        }
        let temporary = path + ".tmp-\(UInt32.random(in: 0 ... .max))"
        let fd = Glibc.open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw VigilError(.failedPrecondition, "cannot create \(path): \(String(cString: strerror(errno)))")
        }
        defer { unlink(temporary) }
        let file = FileHandleDescriptor(fd: fd, path: temporary)
        defer { file.close() }
        let bytes = Array(pem.utf8)
        try withBytes(bytes) { (raw) throws(VigilError) in try file.write(raw, at: 0) }
        try file.sync()
        guard link(temporary, path) == 0 else {
            let reason = errno == EEXIST ? "it already exists (a key is never overwritten)" : String(cString: strerror(errno))
            throw VigilError(.failedPrecondition, "cannot create \(path): \(reason)")
        }
        try FileIO.syncDirectory(FileIO.directoryName(of: path))
    }

    /// Whether `path` lies inside `directory` (both resolved as far as they exist).
    static func isInside(_ path: String, _ directory: String) -> Bool {
        let file = resolved(path)
        let folder = resolved(directory)
        return file.hasPrefix(folder.hasSuffix("/") ? folder : folder + "/")
    }

    /// The absolute path with symbolic links resolved for the part that exists.
    static func resolved(_ path: String) -> String {
        if let real = realpath(path, nil) {
            defer { free(real) }
            return String(cString: real)
        }
        let parent = FileIO.directoryName(of: path)
        let name = String(path.split(separator: "/").last ?? "")
        if parent == path || parent.isEmpty { return path }
        return resolved(parent.hasPrefix("/") || parent == "." ? parent : "./" + parent) + "/" + name
    }
}

/// The public half: what verification checks signatures with.
public struct CheckpointPublicKey: Sendable, Hashable, CustomStringConvertible {
    public let raw: [UInt8]

    public init?(raw: [UInt8]) {
        guard raw.count == 32, (try? Curve25519.Signing.PublicKey(rawRepresentation: raw)) != nil else { return nil }
        self.raw = raw
    }

    /// DER of SubjectPublicKeyInfo for Ed25519 (RFC 8410) before the 32 key bytes.
    static let spkiPrefix: [UInt8] = [0x30, 0x2A, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x03, 0x21, 0x00]

    /// 64 hex digits, a PEM public key, or a PEM private key (its public half).
    public init?(text: String) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if let digest = ChainDigest(hex: trimmed) {
            self.init(raw: digest.bytes)
        } else if let der = pemBody(trimmed, label: "PUBLIC KEY"), der.count == Self.spkiPrefix.count + 32,
            der.starts(with: Self.spkiPrefix)
        {
            self.init(raw: Array(der.suffix(32)))
        } else if let key = CheckpointKey(fileContents: Array(text.utf8)) {
            self = key.publicKey
        } else {
            return nil
        }
    }

    public var hex: String { ChainDigest(bytes: raw)!.hex }
    public var description: String { hex }

    public var pem: String { pemText(label: "PUBLIC KEY", der: Self.spkiPrefix + raw) }

    func isValid(signature: [UInt8], for message: [UInt8]) -> Bool {
        guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) else { return false }
        return key.isValidSignature(signature, for: message)
    }
}

/// The DER bytes of the PEM block with `label`, or nil.
func pemBody(_ text: String, label: String) -> [UInt8]? {
    let begin = "-----BEGIN \(label)-----"
    let end = "-----END \(label)-----"
    guard let start = text.range(of: begin), let stop = text.range(of: end, range: start.upperBound..<text.endIndex) else { return nil }
    let body = text[start.upperBound..<stop.lowerBound].filter { !$0.isWhitespace }
    return Data(base64Encoded: String(body)).map { Array($0) }
}

func pemText(label: String, der: [UInt8]) -> String {
    let encoded = Data(der).base64EncodedString()
    var lines = ["-----BEGIN \(label)-----"]
    var index = encoded.startIndex
    while index < encoded.endIndex {
        let next = encoded.index(index, offsetBy: 64, limitedBy: encoded.endIndex) ?? encoded.endIndex
        lines.append(String(encoded[index..<next]))
        index = next
    }
    lines.append("-----END \(label)-----")
    return lines.joined(separator: "\n") + "\n"
}
