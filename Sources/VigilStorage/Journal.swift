#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import CZlib
import SwiftProtobuf
import VigilCore
import VigilProto

/// The interim store's journal: one record per stored batch, appended and
/// fsynced before the batch is acknowledged.
///
/// Record layout (big-endian): `u32 length` of the payload, `u32 CRC-32`
/// (zlib's) of the payload, then the payload: an `IngestRequest` whose events
/// carry their server-assigned seq, id and received_at. On open, records are
/// replayed until the first incomplete or corrupt one; a torn tail is cut off.
final class Journal: @unchecked Sendable {  // used only under MemoryEventStore's lock
    private var descriptor: Int32
    let path: String

    init(path: String) throws(VigilError) {
        self.path = path
        descriptor = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw VigilError(.unavailable, "cannot open journal \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Reads every intact record; truncates the file after the last one.
    func replay() throws(VigilError) -> [Vigil_V1_IngestRequest] {
        var batches: [Vigil_V1_IngestRequest] = []
        let size = Int(lseek(descriptor, 0, SEEK_END))
        var bytes = [UInt8](repeating: 0, count: size)
        var offset = 0
        while offset < size {
            let count = bytes.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress! + offset, size - offset, off_t(offset)) }
            guard count > 0 else { throw VigilError(.unavailable, "cannot read journal \(path)") }
            offset += count
        }
        var position = 0
        while position + 8 <= size {
            let length = Int(bytes[position..<position + 4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
            let checksum = bytes[position + 4..<position + 8].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            guard position + 8 + length <= size else { break }
            let payload = bytes[position + 8..<position + 8 + length]
            guard Self.crc(payload) == checksum,
                let batch = try? Vigil_V1_IngestRequest(serializedBytes: Array(payload))
            else { break }
            batches.append(batch)
            position += 8 + length
        }
        if position < size {
            // A torn or corrupt tail: the batch was never acknowledged.
            _ = ftruncate(descriptor, off_t(position))
        }
        return batches
    }

    func append(_ record: Vigil_V1_IngestRequest) throws(VigilError) {
        let payload: [UInt8] = (try? record.serializedBytes()) ?? []
        var bytes: [UInt8] = []
        bytes.reserveCapacity(payload.count + 8)
        for value in [UInt32(payload.count), Self.crc(payload[...])] {
            for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
        }
        bytes += payload
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress! + written, bytes.count - written) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else {
                throw VigilError(.unavailable, "cannot write journal \(path): \(String(cString: strerror(errno)))")
            }
            written += count
        }
        guard fsync(descriptor) == 0 else {
            throw VigilError(.unavailable, "cannot sync journal \(path): \(String(cString: strerror(errno)))")
        }
    }

    func close() {
        if descriptor >= 0 {
            _ = Glibc.close(descriptor)
            descriptor = -1
        }
    }

    static func crc(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        bytes.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, uInt($0.count))) }
    }
}
