/// XXH64 (https://xxhash.com, seed 0) of byte strings: the hash of bloom
/// filters in part footers, so it must never change for format version 1. It
/// is also the hash of the writer's dictionary tables (which is not part of
/// the format). Reads are little-endian, as the XXH64 specification says.
enum XXHash64 {
    static let prime1: UInt64 = 0x9E37_79B1_85EB_CA87
    static let prime2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    static let prime3: UInt64 = 0x1656_67B1_9E37_79F9
    static let prime4: UInt64 = 0x85EB_CA77_C2B2_AE63
    static let prime5: UInt64 = 0x27D4_EB2F_1656_67C5

    @inline(__always)
    private static func rotl(_ value: UInt64, _ amount: UInt64) -> UInt64 {
        (value &<< amount) | (value &>> (64 &- amount))
    }

    @inline(__always)
    private static func round(_ accumulator: UInt64, _ input: UInt64) -> UInt64 {
        rotl(accumulator &+ input &* prime2, 31) &* prime1
    }

    @inline(__always)
    private static func merge(_ accumulator: UInt64, _ value: UInt64) -> UInt64 {
        (accumulator ^ round(0, value)) &* prime1 &+ prime4
    }

    @inline(__always)
    private static func load64(_ base: UnsafeRawPointer, _ offset: Int) -> UInt64 {
        UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    @inline(__always)
    private static func load32(_ base: UnsafeRawPointer, _ offset: Int) -> UInt64 {
        UInt64(UInt32(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
    }

    static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        let length = bytes.count
        guard let base = bytes.baseAddress else { return hashEmpty(seed) }
        var offset = 0
        var hash: UInt64
        if length >= 32 {
            var v1 = seed &+ prime1 &+ prime2
            var v2 = seed &+ prime2
            var v3 = seed
            var v4 = seed &- prime1
            while offset &+ 32 <= length {
                v1 = round(v1, load64(base, offset))
                v2 = round(v2, load64(base, offset &+ 8))
                v3 = round(v3, load64(base, offset &+ 16))
                v4 = round(v4, load64(base, offset &+ 24))
                offset &+= 32
            }
            hash = rotl(v1, 1) &+ rotl(v2, 7) &+ rotl(v3, 12) &+ rotl(v4, 18)
            hash = merge(hash, v1)
            hash = merge(hash, v2)
            hash = merge(hash, v3)
            hash = merge(hash, v4)
        } else {
            hash = seed &+ prime5
        }
        hash &+= UInt64(length)
        while offset &+ 8 <= length {
            hash ^= round(0, load64(base, offset))
            hash = rotl(hash, 27) &* prime1 &+ prime4
            offset &+= 8
        }
        if offset &+ 4 <= length {
            hash ^= load32(base, offset) &* prime1
            hash = rotl(hash, 23) &* prime2 &+ prime3
            offset &+= 4
        }
        while offset < length {
            hash ^= UInt64(base.load(fromByteOffset: offset, as: UInt8.self)) &* prime5
            hash = rotl(hash, 11) &* prime1
            offset &+= 1
        }
        return avalanche(hash)
    }

    @inline(__always)
    private static func avalanche(_ value: UInt64) -> UInt64 {
        var hash = value
        hash ^= hash >> 33
        hash &*= prime2
        hash ^= hash >> 29
        hash &*= prime3
        hash ^= hash >> 32
        return hash
    }

    private static func hashEmpty(_ seed: UInt64) -> UInt64 {
        avalanche(seed &+ prime5)
    }

    /// XXH64 of the UTF-8 bytes of `text`.
    static func hash(_ text: String) -> UInt64 {
        withUTF8Bytes(text) { hash($0) }
    }
}
