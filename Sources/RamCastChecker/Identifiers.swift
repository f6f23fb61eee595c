// Identifiers used by the checker. This module is self-contained: it does not import the protocol modules,
// so a history produced by any runtime (in-process simulation, RDMA cluster logs) can be checked.

/// A final or group timestamp, as an opaque totally ordered integer (the runtime encodes ⟨clock, group⟩).
public typealias Timestamp = UInt64

/// A Paxos ballot (round) of one group. Larger is later.
public typealias Ballot = UInt64

/// A server group (shard). Groups are disjoint.
public struct GroupID: RawRepresentable, Hashable, Comparable, Sendable, ExpressibleByIntegerLiteral,
    CustomStringConvertible
{
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    public init(integerLiteral value: UInt32) { self.rawValue = value }
    public static func < (a: GroupID, b: GroupID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { String(rawValue) }
}

/// A process: a group member, or a client (sender). One global id space.
public struct ProcessID: RawRepresentable, Hashable, Comparable, Sendable, ExpressibleByIntegerLiteral,
    CustomStringConvertible
{
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    public init(integerLiteral value: UInt32) { self.rawValue = value }
    public static func < (a: ProcessID, b: ProcessID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { String(rawValue) }
}

/// A multicast message id: the sender's id and the sender's own sequence number.
/// Ordered as the pair (sender, sequence), which is the tie-break for equal final timestamps (spec §10.3).
/// String form: "sender.sequence", e.g. "7.42".
public struct MessageID: Hashable, Comparable, Sendable, CustomStringConvertible, LosslessStringConvertible {
    public var sender: UInt32
    public var sequence: UInt64

    public init(sender: UInt32, sequence: UInt64) {
        self.sender = sender
        self.sequence = sequence
    }

    /// Parses "sender.sequence" (decimal, no sign, no spaces). Returns nil on anything else or on overflow.
    public init?(_ text: String) {
        var sender: UInt64 = 0
        var sequence: UInt64 = 0
        var sawDot = false
        var senderDigits = 0
        var sequenceDigits = 0
        for byte in text.utf8 {
            if byte == UInt8(ascii: ".") {
                if sawDot { return nil }
                sawDot = true
                continue
            }
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            let digit = UInt64(byte &- UInt8(ascii: "0"))
            if sawDot {
                let (times10, o1) = sequence.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times10.addingReportingOverflow(digit)
                if o1 || o2 { return nil }
                sequence = sum
                sequenceDigits += 1
            } else {
                sender = sender &* 10 &+ digit
                senderDigits += 1
                if sender > UInt64(UInt32.max) || senderDigits > 10 { return nil }
            }
        }
        guard sawDot, senderDigits > 0, sequenceDigits > 0 else { return nil }
        self.sender = UInt32(sender)
        self.sequence = sequence
    }

    public static func < (a: MessageID, b: MessageID) -> Bool {
        a.sender != b.sender ? a.sender < b.sender : a.sequence < b.sequence
    }

    public var description: String { "\(sender).\(sequence)" }
}

/// A group's timestamp for a message, as carried in a delivery (optional per-group detail).
public struct GroupTimestamp: Hashable, Sendable {
    public var group: GroupID
    public var timestamp: Timestamp
    public init(group: GroupID, timestamp: Timestamp) {
        self.group = group
        self.timestamp = timestamp
    }
}
