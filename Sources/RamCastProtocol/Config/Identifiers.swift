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

/// A globally unique message id: the sender's node id and its own sequence number, packed as
/// `sender << 40 | sequence`. Ordered by (sender, sequence), the tie-break of equal final timestamps.
public struct MessageID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }
    @inlinable public init(sender: NodeID, sequence: UInt64) {
        precondition(sender.rawValue < 1 << 24 && sequence < 1 << 40, "message id out of range")
        rawValue = UInt64(sender.rawValue) << 40 | sequence
    }
    @inlinable public var sender: NodeID { NodeID(UInt32(truncatingIfNeeded: rawValue >> 40)) }
    @inlinable public var sequence: UInt64 { rawValue & ((1 << 40) - 1) }
    @inlinable public static func < (a: MessageID, b: MessageID) -> Bool { a.rawValue < b.rawValue }
    /// "sender.sequence", the form used in delivery logs.
    public var description: String { "\(sender.rawValue).\(sequence)" }
}

/// A leader's ballot (round) in its group. Leadership rotates deterministically: the leader of
/// ballot b is member `b % groupSize`. Ballot 0 is "none"; the first leader (member 0) uses the
/// group size itself, so that ballots always identify their leader.
public struct Ballot: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    @inlinable public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    @inlinable public static func < (a: Ballot, b: Ballot) -> Bool { a.rawValue < b.rawValue }
    public static let none = Ballot(0)
    public var description: String { "ballot \(rawValue)" }
}
