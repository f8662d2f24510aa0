import Crypto
import SwiftProtobuf
import VigilCore
import VigilProto

/// `backup.json`: a backup's table of contents (`Vigil_V1_BackupManifest`
/// in protobuf's JSON form), with a checksum over its own contents.
public enum BackupManifestFile {
    public static let name = "backup.json"
    public static let formatVersion: UInt32 = 1
    /// A manifest larger than this is not one Vigil wrote (a million files would be ~150 MB).
    static let maximumBytes = 256 << 20

    /// The manifest's checksum: SHA-256 of its binary form with `checksum` empty.
    static func checksum(of manifest: Vigil_V1_BackupManifest) -> String {
        var unsigned = manifest
        unsigned.checksum = ""
        let bytes: [UInt8] = (try? unsigned.serializedBytes()) ?? []
        var hasher = SHA256()
        bytes.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        return ChainDigest(hasher.finalize()).description
    }

    /// Writes the manifest (with its checksum) into `directory`, durably.
    static func write(_ manifest: Vigil_V1_BackupManifest, to directory: String) throws(VigilError) {
        var signed = manifest
        signed.checksum = checksum(of: manifest)
        var options = JSONEncodingOptions()
        options.alwaysPrintInt64sAsNumbers = true
        options.preserveProtoFieldNames = true
        let text: String
        do { text = try signed.jsonString(options: options) } catch {
            throw VigilError(.internal, "cannot encode the backup manifest: \(error)")
        }
        try FileIO.writeAtomically(Array((text + "\n").utf8), to: directory + "/" + name)
    }

    /// Reads and checks the manifest of the backup in `directory`: NOT_FOUND
    /// when there is none, DATA_LOSS when it does not parse, its checksum
    /// does not match, or its format is unknown.
    public static func read(from directory: String) throws(VigilError) -> Vigil_V1_BackupManifest {
        let path = directory + "/" + name
        guard FileIO.exists(path) else {
            throw VigilError(
                .notFound,
                "\(directory) is not a Vigil backup: it has no \(name) (an unfinished backup has none either; take it again)")
        }
        let file = try FileHandleDescriptor.open(path, flags: O_RDONLY)
        defer { file.close() }
        let size = try file.size()
        guard size <= maximumBytes else {
            throw VigilError(.dataLoss, "\(path) is \(size) bytes, too large for a backup manifest")
        }
        let text = String(decoding: try file.read(count: size, at: 0), as: UTF8.self)
        let manifest: Vigil_V1_BackupManifest
        do { manifest = try Vigil_V1_BackupManifest(jsonString: text) } catch {
            throw VigilError(.dataLoss, "\(path) is damaged: it does not parse as a backup manifest (\(error))")
        }
        guard manifest.checksum == checksum(of: manifest) else {
            throw VigilError(.dataLoss, "\(path) was changed after the backup was written: its checksum does not match its contents")
        }
        guard manifest.formatVersion == formatVersion else {
            throw VigilError(
                .failedPrecondition,
                "\(path) has backup format version \(manifest.formatVersion); this vigil reads version \(formatVersion)")
        }
        for file in manifest.files where !isSafeRelativePath(file.path) {
            throw VigilError(.dataLoss, "\(path) lists the file '\(file.path.prefix(200))', which is not a plain path inside the backup")
        }
        return manifest
    }

    /// A path that stays inside the backup: relative, no `.` or `..` components.
    static func isSafeRelativePath(_ path: String) -> Bool {
        !path.isEmpty && !path.hasPrefix("/")
            && path.split(separator: "/", omittingEmptySubsequences: false).allSatisfy { !$0.isEmpty && $0 != "." && $0 != ".." }
    }
}

#if canImport(Glibc)
import Glibc
#endif
