import RamCastFabric

/// A replica group (a shard). Group ids are dense, from 0, and at most 255: a timestamp carries its
/// group in its low byte.
public struct GroupID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    @inlinable public init(_ rawValue: UInt8) { self.rawValue = rawValue }
    @inlinable public static func < (a: GroupID, b: GroupID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "group \(rawValue)" }
}

/// A Skeen timestamp ⟨clock, group⟩, ordered lexicographically, packed as `clock << 8 | group` so that
/// integer order is timestamp order. Zero means "no timestamp".
public struct Timestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }
    @inlinable public init(clock: UInt64, group: GroupID) { rawValue = clock << 8 | UInt64(group.rawValue) }
    @inlinable public var clock: UInt64 { rawValue >> 8 }
    @inlinable public var group: GroupID { GroupID(UInt8(truncatingIfNeeded: rawValue)) }
    @inlinable public var isNone: Bool { rawValue == 0 }
    public static let none = Timestamp(rawValue: 0)
    @inlinable public static func < (a: Timestamp, b: Timestamp) -> Bool { a.rawValue < b.rawValue }
    public var description: String { isNone ? "⊥" : "⟨\(clock),\(group.rawValue)⟩" }
}

/// A message id: the sender's node id and its own sequence number, packed as
/// `sender << 40 | sequence`. Ordered by (sender, sequence), the tie-break of equal final timestamps.
///
/// The sequence is 40 bits and wraps: a sender's n-th message (n from 1) has sequence
/// `(n − 1) mod (2⁴⁰ − 1) + 1`, so after 2⁴⁰ − 1 messages it starts again at 1 and never uses 0 (an id
/// of 0 means "no message", and a sender may be node 0). 10M messages/s wrap it every 30 hours.
/// Everything that asks which of two messages of one sender is newer does so with
/// ``isNewer(_:than:)``, serial-number arithmetic (RFC 1982) that holds while the two are fewer than
/// 2³⁹ messages apart; the protocol only ever compares messages that share a slot or were taken from
/// one ring in turn, at most slots × groups messages apart. What remains bounded:
/// - an id is unique among a sender's last 2⁴⁰ − 1 messages only, so a delivery log (and the
///   checker reading it) must span fewer messages per sender than that to tell them apart;
/// - the tie-break order of equal final timestamps is the order of the packed values: a total order,
///   the same at every process, but after a wrap not the order in which the sender sent them.
public struct MessageID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    /// Sequence numbers are 1 ... `sequenceCount`.
    public static let sequenceCount: UInt64 = (1 << 40) - 1
    /// Senders are node ids below this (``ProtocolConfig/validate()`` checks it).
    public static let senderLimit: UInt32 = 1 << 24
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }
    /// The id of `sender`'s message with `sequence` (in 1 ... ``sequenceCount``; larger values are
    /// reduced onto that range, as for a counter: see ``sequence(ofCounter:)``).
    @inlinable public init(sender: NodeID, sequence: UInt64) {
        rawValue = UInt64(sender.rawValue & (Self.senderLimit - 1)) << 40 | Self.sequence(ofCounter: sequence)
    }
    @inlinable public var sender: NodeID { NodeID(UInt32(truncatingIfNeeded: rawValue >> 40)) }
    @inlinable public var sequence: UInt64 { rawValue & ((1 << 40) - 1) }
    @inlinable public static func < (a: MessageID, b: MessageID) -> Bool { a.rawValue < b.rawValue }
    /// "sender.sequence", the form used in delivery logs.
    public var description: String { "\(sender.rawValue).\(sequence)" }

    /// The sequence number of a sender's `counter`-th message (counting from 1, never wrapping in
    /// 64 bits): 1 ... ``sequenceCount``, then 1 again.
    @inlinable public static func sequence(ofCounter counter: UInt64) -> UInt64 {
        counter == 0 ? 0 : (counter - 1) % sequenceCount + 1
    }

    /// How many messages of one sender `later` comes after `earlier` (both sequence numbers), modulo
    /// the wrap: 0 when they are equal.
    @inlinable public static func distance(from earlier: UInt64, to later: UInt64) -> UInt64 {
        (later &+ sequenceCount &- earlier) % sequenceCount
    }

    /// Whether sequence `a` of a sender is newer than its sequence `b`, where `b == 0` means "none
    /// yet": serial-number comparison across the wrap, valid for messages fewer than 2³⁹ apart.
    @inlinable public static func isNewer(_ a: UInt64, than b: UInt64) -> Bool {
        guard b != 0 else { return a != 0 }
        guard a != 0 else { return false }
        let d = distance(from: b, to: a)
        return d != 0 && d < sequenceCount / 2
    }

    /// The newer of two sequence numbers of one sender (0: none).
    @inlinable public static func newest(_ a: UInt64, _ b: UInt64) -> UInt64 { isNewer(a, than: b) ? a : b }
}

/// A leader's ballot (round) in its group. Leadership rotates deterministically: the leader of
/// ballot b is member `b % groupSize`. Ballot 0 is "none"; the first leader (member 0) uses the
/// group size itself, so that ballots always identify their leader.
///
/// 32 bits everywhere (log entries, acks, clock cells, stream epochs, 1A/1B): a group needs more than
/// 13 leader changes per second for 10 years to exhaust them; a candidate refuses a ballot that
/// would overflow (``ServerEngine/ballotsExhausted``) rather than wrap.
public struct Ballot: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    @inlinable public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    @inlinable public static func < (a: Ballot, b: Ballot) -> Bool { a.rawValue < b.rawValue }
    public static let none = Ballot(0)
    public var description: String { "ballot \(rawValue)" }
}
