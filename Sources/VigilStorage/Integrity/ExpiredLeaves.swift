import VigilCore

/// The full leaf hashes of events that retention removed while other events
/// of their anchored range remain, so that the range still verifies: one file
/// per retention pass or merge that removed such events,
/// `chain/<16 hex>.expired`, immutable (see the DataDirectory article).
/// Entries at or below the chain's start are no longer needed; a file whose
/// entries all are is deleted.
public struct ExpiredLeaves: Sendable, Hashable {
    public struct Entry: Sendable, Hashable {
        public var seq: UInt64
        public var leaf: ChainDigest

        public init(seq: UInt64, leaf: ChainDigest) {
            self.seq = seq
            self.leaf = leaf
        }
    }

    static let magic = "VEXP"

    /// In strictly increasing seq order.
    public var entries: [Entry]

    public init(entries: [Entry]) {
        self.entries = entries.sorted { $0.seq < $1.seq }
    }

    public var maxSeq: UInt64 { entries.last?.seq ?? 0 }

    func encode() -> [UInt8] {
        var out = ByteWriter(capacity: 4 + entries.count * 40)
        out.u32(UInt32(entries.count))
        for entry in entries {
            out.u64(entry.seq)
            out.append(entry.leaf.bytes)
        }
        return out.bytes
    }

    static func decode(_ payload: [UInt8], path: String) throws(VigilError) -> ExpiredLeaves {
        do throws(PartFormatError) {
            return try withBytes(payload) { (raw) throws(PartFormatError) -> ExpiredLeaves in
                var reader = ByteReader(raw)
                let count = Int(try reader.u32("entry count"))
                guard count <= reader.remaining / 40 else { throw PartFormatError("entry count \(count) is impossible", at: 0) }
                var entries: [Entry] = []
                entries.reserveCapacity(count)
                for index in 0..<count {
                    let at = reader.offset
                    let seq = try reader.u64()
                    if let last = entries.last, seq <= last.seq {
                        throw PartFormatError("entry \(index) does not follow the one before", at: at)
                    }
                    entries.append(Entry(seq: seq, leaf: ChainDigest(bytes: Array(try reader.bytes(32)))!))
                }
                try reader.expectEnd("the expired-leaves file")
                var result = ExpiredLeaves(entries: [])
                result.entries = entries
                return result
            }
        } catch {
            throw VigilError(.dataLoss, "\(path): \(error.what) at offset \(error.offset + ChecksummedFile.headerSize)")
        }
    }

    func write(to path: String) throws(VigilError) {
        try ChecksummedFile.write(payload: encode(), magic: Self.magic, to: path)
    }

    static func read(from path: String) throws(VigilError) -> ExpiredLeaves {
        try decode(try ChecksummedFile.readPayload(magic: magic, from: path), path: path)
    }
}

/// The names of the chain's files in `chain/` and which of them are live.
///
/// Every chain file is numbered from the MANIFEST's `next_part_number` by
/// the operation that writes it, before that operation's MANIFEST: a file
/// whose number is not below the MANIFEST's `next_part_number` belongs to an
/// operation that never committed, and is garbage. The live chain file is
/// the highest-numbered `.chain` below it; `.expired` files below it are live.
enum ChainFiles {
    static let directoryName = "chain"
    static let chainExtension = ".chain"
    static let expiredExtension = ".expired"

    static func name(_ number: UInt64, _ fileExtension: String) -> String {
        directoryName + "/" + hex16(number) + fileExtension
    }

    /// The number and extension of a chain file's name, or nil.
    static func parse(_ name: String) -> (number: UInt64, fileExtension: String)? {
        for fileExtension in [chainExtension, expiredExtension] where name.hasSuffix(fileExtension) {
            let digits = name.dropLast(fileExtension.count)
            guard digits.count == 16, let number = UInt64(digits, radix: 16) else { return nil }
            return (number, fileExtension)
        }
        return nil
    }

    struct Listing {
        /// Relative path of the live ledger, if any.
        var ledger: String?
        /// Relative paths of the live expired-leaves files, oldest first.
        var expired: [String] = []
        /// Relative paths of files no committed MANIFEST covers, or superseded.
        var garbage: [String] = []
    }

    /// Sorts the files of `<directory>/chain` given the MANIFEST's next part number.
    static func list(_ directory: String, nextPartNumber: UInt64) throws(VigilError) -> Listing {
        var listing = Listing()
        let path = directory + "/" + directoryName
        guard FileIO.exists(path) else { return listing }
        var ledgers: [(UInt64, String)] = []
        for name in try FileIO.list(path).sorted() {
            let relative = directoryName + "/" + name
            guard let (number, fileExtension) = parse(name), number < nextPartNumber else {
                listing.garbage.append(relative)
                continue
            }
            if fileExtension == chainExtension {
                ledgers.append((number, relative))
            } else {
                listing.expired.append(relative)
            }
        }
        ledgers.sort { $0.0 < $1.0 }
        listing.ledger = ledgers.last?.1
        listing.garbage += ledgers.dropLast().map(\.1)
        return listing
    }
}
