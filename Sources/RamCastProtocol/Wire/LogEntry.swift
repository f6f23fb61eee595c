import RamCastFabric

/// One write of a leader into a protected log (steps 2 and 3): a timestamp for one message, with the
/// writer's ballot and a dense sequence number (its log position). 44 bytes in a 48-byte cell:
/// `[seq:u32 | ballot:u32 | ts:u64 | msgID:u64 | sender:u16 | slot:u16 | group:u8 | kind:u8 | pad:u16 | tsBallot:u32 | epoch:u32 | crc32c:u32]`.
///
/// Positions are 64 bits at writer and reader; an entry carries the low 32 bits, which is enough:
/// the reader knows the position it expects, and the cell it reads last held the entry
/// ``Layout/logCapacity`` positions earlier (or one of an older ballot, which `ballot` rejects), so
/// the low 32 bits tell the two apart.
/// `ballot` is the writer's (the stream's) ballot; `tsBallot` the ballot the timestamp was proposed
/// under in its own group, which is what that group's followers ack.
///
/// `epoch` tells two streams into the same log apart when the *reader's* group changed ballot but
/// the writer's did not: another group's leader restarts its stream at sequence 1 for each new
/// ballot of the reader's group, and an entry of the old stream still in flight when the reader
/// cleared its log would otherwise pass for the new stream's entry of the same number (seed 21976
/// lost a timestamp that way). It is the reader's group's ballot as the writer knew it (all 32 bits:
/// with 16, a stream 65,536 ballots old would pass); 0 in a leader's stream to its own followers,
/// where `ballot` is already that ballot.
///
/// The reader expects sequence numbers 1, 2, 3, ... in order; an entry is ready when its `seq` is
/// the expected one and its CRC matches (larger than 8 bytes, it may land torn).
public struct LogEntry: Hashable, Sendable {
    public enum Kind: UInt8, Sendable {
        /// The writer's own group's timestamp for the message (step 2).
        case proposal = 1
        /// Another group's timestamp, forwarded by the leader to its followers (step 3).
        case forward = 2
        /// The end of a new leader's recovery section (its re-proposals, forwards and fresh
        /// proposals for what was pending); `timestamp` is the leader's clock at that point, above
        /// every value in the section. `message` is the last message the leader delivered before
        /// the section: a member that restarted delivers everything after it (see `Rejoin.swift`).
        case recovered = 3
        /// In a recovery section: the leader had already delivered this message. A member that
        /// restarted releases it without delivering it (it is part of the state the application
        /// copies from a peer); the others skip the entry.
        case settled = 4
    }

    /// The log position (see above: the wire keeps its low 32 bits).
    public var seq: UInt64
    public var ballot: Ballot
    public var tsBallot: Ballot
    public var timestamp: Timestamp
    public var message: MessageID
    public var sender: UInt16
    /// The message's slot number in the *reader's* group.
    public var slot: UInt16
    /// Whose timestamp this is.
    public var group: GroupID
    public var kind: Kind
    /// Leader-to-leader streams: the reader's group's ballot (see above); else 0.
    public var epoch: UInt32 = 0

    public static let wireSize = 44

    /// The `epoch` of a stream into a group under ballot `b`.
    @inlinable
    public static func epoch(_ b: Ballot) -> UInt32 { b.rawValue }

    @inlinable
    public init(seq: UInt64, ballot: Ballot, tsBallot: Ballot, timestamp: Timestamp, message: MessageID, sender: UInt16,
                slot: UInt16, group: GroupID, kind: Kind) {
        self.seq = seq
        self.ballot = ballot
        self.tsBallot = tsBallot
        self.timestamp = timestamp
        self.message = message
        self.sender = sender
        self.slot = slot
        self.group = group
        self.kind = kind
    }

    @inlinable
    public func encode(into p: UnsafeMutableRawPointer) {
        p.storeBytes(of: UInt32(truncatingIfNeeded: seq).littleEndian, as: UInt32.self)
        (p + 4).storeBytes(of: ballot.rawValue.littleEndian, as: UInt32.self)
        (p + 8).storeBytes(of: timestamp.rawValue.littleEndian, as: UInt64.self)
        (p + 16).storeBytes(of: message.rawValue.littleEndian, as: UInt64.self)
        (p + 24).storeBytes(of: sender.littleEndian, as: UInt16.self)
        (p + 26).storeBytes(of: slot.littleEndian, as: UInt16.self)
        (p + 28).storeBytes(of: group.rawValue, as: UInt8.self)
        (p + 29).storeBytes(of: kind.rawValue, as: UInt8.self)
        (p + 30).storeBytes(of: 0, as: UInt16.self)
        (p + 32).storeBytes(of: tsBallot.rawValue.littleEndian, as: UInt32.self)
        (p + 36).storeBytes(of: epoch.littleEndian, as: UInt32.self)
        (p + 40).storeBytes(of: CRC32C.checksum(p, count: 40).littleEndian, as: UInt32.self)
    }

    /// Decodes the entry at `p` if it carries (the low 32 bits of) position `expected` and is intact.
    @inlinable
    public static func read(_ p: UnsafeRawPointer, expected: UInt64) -> LogEntry? {
        let first = RemoteMemory.loadAcquiring(p)
        guard UInt32(truncatingIfNeeded: first) == UInt32(truncatingIfNeeded: expected) else { return nil }
        let stored = UInt32(littleEndian: p.load(fromByteOffset: 40, as: UInt32.self))
        guard stored == CRC32C.checksum(p, count: 40),
              let kind = Kind(rawValue: p.load(fromByteOffset: 29, as: UInt8.self)) else { return nil }
        var e = LogEntry(
            seq: expected,
            ballot: Ballot(UInt32(truncatingIfNeeded: first >> 32)),
            tsBallot: Ballot(UInt32(littleEndian: p.load(fromByteOffset: 32, as: UInt32.self))),
            timestamp: Timestamp(rawValue: UInt64(littleEndian: p.load(fromByteOffset: 8, as: UInt64.self))),
            message: MessageID(rawValue: UInt64(littleEndian: p.load(fromByteOffset: 16, as: UInt64.self))),
            sender: UInt16(littleEndian: p.load(fromByteOffset: 24, as: UInt16.self)),
            slot: UInt16(littleEndian: p.load(fromByteOffset: 26, as: UInt16.self)),
            group: GroupID(p.load(fromByteOffset: 28, as: UInt8.self)),
            kind: kind)
        e.epoch = UInt32(littleEndian: p.load(fromByteOffset: 36, as: UInt32.self))
        return e
    }
}
