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

/// An ack: the (ballot, timestamp) a follower accepted, packed in one 8-byte word so it appears
/// atomically: `ballot:16 | timestamp:48`. Zero means "no ack".
public enum AckWord {
    @inlinable public static func pack(_ ballot: Ballot, _ ts: Timestamp) -> UInt64 {
        UInt64(ballot.rawValue & 0xFFFF) << 48 | (ts.rawValue & 0xFFFF_FFFF_FFFF)
    }
    /// Whether `word` was packed under `ballot` (its low 16 bits, all the word keeps).
    @inlinable public static func isUnder(_ ballot: Ballot, _ word: UInt64) -> Bool {
        word >> 48 == UInt64(ballot.rawValue & 0xFFFF)
    }
    /// The 48-bit value packed in `word`.
    @inlinable public static func value(_ word: UInt64) -> UInt64 { word & 0xFFFF_FFFF_FFFF }
}
