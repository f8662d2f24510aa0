import SwiftProtobuf
import VigilCore

/// Small metadata files (MANIFEST, keys/*.keys): a 4-byte magic, a u8 format
/// version, 3 reserved bytes, a u32 length and a u32 CRC32C of the payload
/// (big-endian), then the payload — a protobuf message from `storage.proto`.
/// Written atomically (temporary file, fsync, rename, directory fsync), so a
/// reader sees the old file or the new one, never a mix. Public for the
/// server's own small files (the alert engine's progress).
public enum ChecksummedFile {
    static let headerSize = 16
    static let formatVersion: UInt8 = 1

    static func write(_ message: some SwiftProtobuf.Message, magic: String, to path: String, syncDirectory: Bool = true) throws(VigilError) {
        let payload: [UInt8] = (try? message.serializedBytes()) ?? []
        try write(payload: payload, magic: magic, to: path, syncDirectory: syncDirectory)
    }

    /// The envelope around any payload (the chain files use their own binary payloads).
    public static func write(payload: [UInt8], magic: String, to path: String, syncDirectory: Bool = true) throws(VigilError) {
        var bytes = Array(magic.utf8)
        precondition(bytes.count == 4)
        bytes += [formatVersion, 0, 0, 0]
        for value in [UInt32(payload.count), CRC32C.checksum(payload)] {
            bytes += [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
        }
        bytes += payload
        try FileIO.writeAtomically(bytes, to: path, syncDirectory: syncDirectory)
    }

    static func read<M: SwiftProtobuf.Message>(_ type: M.Type, magic: String, from path: String) throws(VigilError) -> M {
        let payload = try readPayload(magic: magic, from: path)
        do {
            return try M(serializedBytes: payload)
        } catch {
            throw VigilError(.dataLoss, "\(path): not a valid \(M.protoMessageName)")
        }
    }

    /// The checked payload of an envelope.
    public static func readPayload(magic: String, from path: String) throws(VigilError) -> [UInt8] {
        let file = try FileHandleDescriptor.open(path, flags: O_RDONLY)
        defer { file.close() }
        let size = try file.size()
        guard size >= headerSize else { throw VigilError(.dataLoss, "\(path) is \(size) bytes, shorter than its header") }
        let bytes = try file.read(count: size, at: 0)
        guard Array(bytes[0..<4]) == Array(magic.utf8) else { throw VigilError(.dataLoss, "\(path) does not start with \(magic)") }
        guard bytes[4] == formatVersion else {
            throw VigilError(.failedPrecondition, "\(path) has format version \(bytes[4]); this build reads \(formatVersion)")
        }
        func word(_ at: Int) -> UInt32 { bytes[at..<at + 4].reduce(0) { $0 << 8 | UInt32($1) } }
        let length = Int(word(8))
        guard headerSize + length == size else { throw VigilError(.dataLoss, "\(path): length \(length) does not match the file size \(size)") }
        let payload = bytes[headerSize...]
        guard CRC32C.checksum(payload) == word(12) else { throw VigilError(.dataLoss, "\(path): checksum mismatch") }
        return Array(payload)
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// Days since 1970-01-01 UTC of a time (floor: before 1970 is negative).
func dayNumber(of nanos: Int64) -> Int64 {
    let dayNanos: Int64 = 86_400_000_000_000
    return nanos >= 0 ? nanos / dayNanos : (nanos + 1) / dayNanos - 1
}

/// The UTC calendar day of a time, as "YYYY-MM-DD" (parts are grouped by day,
/// so that retention removes whole parts).
func dayName(of nanos: Int64) -> String {
    let days = dayNumber(of: nanos)
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let doe = z - era * 146_097
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
    let mp = (5 * doy + 2) / 153
    let day = doy - (153 * mp + 2) / 5 + 1
    let month = mp < 10 ? mp + 3 : mp - 9
    let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
    func pad(_ value: Int64, _ width: Int) -> String {
        let text = String(value)
        return String(repeating: "0", count: max(0, width - text.count)) + text
    }
    return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))"
}

func hex16(_ value: UInt64) -> String {
    let text = String(value, radix: 16)
    return String(repeating: "0", count: 16 - text.count) + text
}
