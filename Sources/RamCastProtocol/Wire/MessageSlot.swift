import RamCastFabric

/// The body of a message as the sender writes it into a ring slot (step 1):
/// `[msgID:u64 | length:u32 | dstCount:u8 | pad:3 | dst:u8 × maxDst | slot:u16 × maxDst | payload | crc32c]`.
///
/// `slot[i]` is the message's slot number in group `dst[i]`'s rings: every member of a group holds the
/// message in the same slot, so any process can address any other destination's copy (its ack area).
/// The CRC covers header and payload: a reader takes the slot only when it matches, which also
/// rejects a torn or half-landed write.
public enum MessageSlot {
    /// Encodes a message into `buffer` (the sender's staging memory) and returns the bytes to write.
    @inlinable
    public static func encode(into buffer: UnsafeMutableRawPointer, layout: Layout, id: MessageID,
                              destinations: UnsafeBufferPointer<GroupID>, slots: UnsafeBufferPointer<UInt16>,
                              payload: UnsafeRawBufferPointer) -> Int {
        let h = layout.headerSize
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: h)
        buffer.storeBytes(of: id.rawValue.littleEndian, as: UInt64.self)
        (buffer + 8).storeBytes(of: UInt32(payload.count).littleEndian, as: UInt32.self)
        (buffer + 12).storeBytes(of: UInt8(destinations.count), as: UInt8.self)
        for i in 0..<destinations.count {
            (buffer + 16 + i).storeBytes(of: destinations[i].rawValue, as: UInt8.self)
            (buffer + 16 + layout.maxDestinations + 2 * i).storeBytes(of: slots[i].littleEndian, as: UInt16.self)
        }
        if let base = payload.baseAddress, payload.count > 0 {
            (buffer + h).copyMemory(from: base, byteCount: payload.count)
        }
        let crc = CRC32C.checksum(buffer, count: h + payload.count)
        (buffer + h + payload.count).storeBytes(of: crc.littleEndian, as: UInt32.self)
        return h + payload.count + 4
    }

    /// A decoded header, valid only after ``read(_:layout:)`` returned it.
    public struct Header {
        public var id: MessageID
        public var length: Int
        public var destinationCount: Int
        @inlinable public init(id: MessageID, length: Int, destinationCount: Int) {
            self.id = id
            self.length = length
            self.destinationCount = destinationCount
        }
    }

    /// Reads the slot at `slot` if it holds a complete message: nonzero id, sane length, matching CRC.
    /// The id is loaded with acquire ordering before anything else is read.
    @inlinable
    public static func read(_ slot: UnsafeRawPointer, layout: Layout) -> Header? {
        let raw = RemoteMemory.loadAcquiring(slot)
        guard raw != 0 else { return nil }
        let word = RemoteMemory.loadAcquiring(slot + 8)
        let length = Int(UInt32(truncatingIfNeeded: word))
        let count = Int(UInt8(truncatingIfNeeded: word >> 32))
        guard length <= layout.maxPayload, count >= 1, count <= layout.maxDestinations else { return nil }
        let stored = UInt32(littleEndian: (slot + layout.headerSize + length).loadUnaligned(as: UInt32.self))
        guard stored == CRC32C.checksum(slot, count: layout.headerSize + length) else { return nil }
        return Header(id: MessageID(rawValue: UInt64(littleEndian: raw)), length: length, destinationCount: count)
    }

    /// The payload length recorded in the header of the message held at `slot`.
    @inlinable
    public static func payloadLength(_ slot: UnsafeRawPointer) -> Int {
        Int(UInt32(littleEndian: slot.load(fromByteOffset: 8, as: UInt32.self)))
    }

    /// Bytes of the body (header, payload, checksum) of the message held at `slot`: what a relay copies.
    @inlinable
    public static func bodyLength(_ slot: UnsafeRawPointer, layout: Layout) -> Int {
        layout.headerSize + payloadLength(slot) + 4
    }

    @inlinable
    public static func destination(_ slot: UnsafeRawPointer, _ i: Int) -> GroupID {
        GroupID(slot.load(fromByteOffset: 16 + i, as: UInt8.self))
    }

    @inlinable
    public static func slotNumber(_ slot: UnsafeRawPointer, _ i: Int, layout: Layout) -> Int {
        Int(UInt16(littleEndian: slot.loadUnaligned(fromByteOffset: 16 + layout.maxDestinations + 2 * i, as: UInt16.self)))
    }

    @inlinable
    public static func payload(_ slot: UnsafeRawPointer, layout: Layout, length: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: slot + layout.headerSize, count: length)
    }
}

/// An ack or a clock cell: a (ballot, value) pair that one group member writes in one 16-byte write,
/// `[value:u64 | ballot:u32 | check:u32]`. In an ack the value is the timestamp the follower accepted
/// and the ballot the one it was proposed under; in a clock cell, the member's clock and its ballot.
///
/// Full widths: with `ballot:16 | timestamp:48` in one word, a cell 65,536 ballots stale passed for
/// the current ballot, acks compared only 40 bits of clock, and a clock cell's clock wrapped at 2⁴⁸
/// (326 days at 10M timestamps/s) and stalled delivery. `check` binds the two words: a write torn
/// between them, or a zeroed cell, fails it, so a reader never pairs one write's ballot with
/// another's value.
public struct AckCell: Hashable, Sendable {
    public static let size = 16
    public var value: UInt64
    /// `ballot | check << 32`.
    public var tail: UInt64

    @inlinable public init(_ ballot: Ballot, _ value: UInt64) {
        self.value = value
        tail = UInt64(ballot.rawValue) | UInt64(Self.check(ballot.rawValue, value)) << 32
    }

    @inlinable @inline(__always) public init(value: UInt64, tail: UInt64) {
        self.value = value
        self.tail = tail
    }

    @inlinable public var ballot: Ballot { Ballot(UInt32(truncatingIfNeeded: tail)) }
    /// Both words come from one write of a pair (not a zeroed cell, not torn).
    @inlinable public var isIntact: Bool { UInt32(truncatingIfNeeded: tail >> 32) == Self.check(ballot.rawValue, value) }
    /// Whether the cell holds an intact pair of ballot `b`.
    @inlinable public func isUnder(_ b: Ballot) -> Bool { isIntact && ballot == b }

    /// A mix of both fields (the SplitMix64 finalizer), never 0 for the zeroed cell.
    @inlinable public static func check(_ ballot: UInt32, _ value: UInt64) -> UInt32 {
        var z = value &+ (UInt64(ballot) &+ 1) &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return UInt32(truncatingIfNeeded: (z ^ (z >> 31)) >> 16) | 1
    }

    /// Reads the cell at `p` (remote memory: acquiring loads).
    @inlinable public static func load(_ p: UnsafeRawPointer) -> AckCell {
        AckCell(value: UInt64(littleEndian: RemoteMemory.loadAcquiring(p)),
                tail: UInt64(littleEndian: RemoteMemory.loadAcquiring(p + 8)))
    }

    /// Writes the cell into a write's source (an outbox cell).
    @inlinable public func encode(into p: UnsafeMutableRawPointer) {
        p.storeBytes(of: value.littleEndian, as: UInt64.self)
        (p + 8).storeBytes(of: tail.littleEndian, as: UInt64.self)
    }

    /// Stores the cell into this process's own memory, where its poller reads it.
    @inlinable public func storeReleasing(at p: UnsafeMutableRawPointer) {
        RemoteMemory.storeReleasing(value.littleEndian, at: p)
        RemoteMemory.storeReleasing(tail.littleEndian, at: p + 8)
    }
}
