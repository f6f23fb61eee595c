// Delivery log format (JSON lines), writer side. Foundation-free and allocation-light: the runtime calls these
// on its delivery path, appending into a reusable byte buffer. The reader is in DeliveryLogReader.swift.
//
// Directory layout:
//   cluster.json                  {"groups": {"0": [0,1,2], "1": [3,4,5]}, "crashed": [4], "quiescent": true}
//                                 ("crashed" and "quiescent" optional; quiescent defaults to true)
//   deliveries-<process>.jsonl    one line per delivery, in delivery order:
//     {"process":3,"group":1,"message":"7.42","destinations":[0,1],"timestamp":1234}
//     optional "groupTimestamps":{"0":1200,"1":1234}; unknown fields are ignored
//     a restarted incarnation's file (its process id is node id + incarnation × 1,000,000) starts
//     with a join line: {"process":1000002,"group":0,"joinedAfter":"7.42"} ("" for no cut)
//   multicasts-<sender>.jsonl     one line per multicast: {"message":"7.42","destinations":[0,1]} (optional "sender")

public enum DeliveryLog {
    /// Appends one delivery line, newline included.
    public static func appendDeliveryLine(
        to buffer: inout [UInt8], process: ProcessID, group: GroupID, message: MessageID,
        destinations: [GroupID], timestamp: Timestamp, groupTimestamps: [GroupTimestamp]? = nil
    ) {
        buffer.append(contentsOf: #"{"process":"#.utf8)
        appendDecimal(UInt64(process.rawValue), to: &buffer)
        buffer.append(contentsOf: #","group":"#.utf8)
        appendDecimal(UInt64(group.rawValue), to: &buffer)
        buffer.append(contentsOf: #","message":""#.utf8)
        appendMessageID(message, to: &buffer)
        buffer.append(contentsOf: #"","destinations":["#.utf8)
        appendGroups(destinations, to: &buffer)
        buffer.append(contentsOf: #"],"timestamp":"#.utf8)
        appendDecimal(timestamp, to: &buffer)
        if let gts = groupTimestamps {
            buffer.append(contentsOf: #","groupTimestamps":{"#.utf8)
            for (i, gt) in gts.enumerated() {
                if i > 0 { buffer.append(UInt8(ascii: ",")) }
                buffer.append(UInt8(ascii: "\""))
                appendDecimal(UInt64(gt.group.rawValue), to: &buffer)
                buffer.append(contentsOf: #"":"#.utf8)
                appendDecimal(gt.timestamp, to: &buffer)
            }
            buffer.append(UInt8(ascii: "}"))
        }
        buffer.append(contentsOf: "}\n".utf8)
    }

    /// One delivery line as a String, newline included.
    public static func deliveryLine(
        process: ProcessID, group: GroupID, message: MessageID, destinations: [GroupID], timestamp: Timestamp,
        groupTimestamps: [GroupTimestamp]? = nil
    ) -> String {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(96)
        appendDeliveryLine(
            to: &buffer, process: process, group: group, message: message, destinations: destinations,
            timestamp: timestamp, groupTimestamps: groupTimestamps)
        return String(decoding: buffer, as: UTF8.self)
    }

    /// Appends the join line of a restarted incarnation, newline included: it delivers its group's
    /// order after `after` (nil: from the start).
    public static func appendJoinLine(to buffer: inout [UInt8], process: ProcessID, group: GroupID, after: MessageID?) {
        buffer.append(contentsOf: #"{"process":"#.utf8)
        appendDecimal(UInt64(process.rawValue), to: &buffer)
        buffer.append(contentsOf: #","group":"#.utf8)
        appendDecimal(UInt64(group.rawValue), to: &buffer)
        buffer.append(contentsOf: #","joinedAfter":""#.utf8)
        if let after { appendMessageID(after, to: &buffer) }
        buffer.append(contentsOf: "\"}\n".utf8)
    }

    /// Appends one multicast line (for `multicasts-<sender>.jsonl`), newline included.
    public static func appendMulticastLine(
        to buffer: inout [UInt8], message: MessageID, destinations: [GroupID], sender: ProcessID? = nil
    ) {
        buffer.append(contentsOf: #"{"message":""#.utf8)
        appendMessageID(message, to: &buffer)
        buffer.append(contentsOf: #"","destinations":["#.utf8)
        appendGroups(destinations, to: &buffer)
        buffer.append(UInt8(ascii: "]"))
        if let sender {
            buffer.append(contentsOf: #","sender":"#.utf8)
            appendDecimal(UInt64(sender.rawValue), to: &buffer)
        }
        buffer.append(contentsOf: "}\n".utf8)
    }

    public static func multicastLine(message: MessageID, destinations: [GroupID], sender: ProcessID? = nil) -> String {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(64)
        appendMulticastLine(to: &buffer, message: message, destinations: destinations, sender: sender)
        return String(decoding: buffer, as: UTF8.self)
    }

    /// `cluster.json` contents for a membership (a convenience for runtimes and tests; not on a hot path).
    public static func clusterFile(membership: Membership, crashed: [ProcessID] = [], quiescent: Bool = true) -> String
    {
        var out = #"{"groups":{"#
        out += membership.groupIDs.map { g in
            "\"\(g.rawValue)\":[" + membership.members(of: g).map { String($0.rawValue) }.joined(separator: ",") + "]"
        }.joined(separator: ",")
        out += #"},"crashed":["# + crashed.sorted().map { String($0.rawValue) }.joined(separator: ",")
        out += #"],"quiescent":"# + (quiescent ? "true" : "false") + "}\n"
        return out
    }

    public static func deliveriesFileName(process: ProcessID) -> String { "deliveries-\(process.rawValue).jsonl" }
    public static func multicastsFileName(sender: ProcessID) -> String { "multicasts-\(sender.rawValue).jsonl" }
    public static let clusterFileName = "cluster.json"

    // MARK: Byte helpers

    @inline(__always)
    static func appendMessageID(_ id: MessageID, to buffer: inout [UInt8]) {
        appendDecimal(UInt64(id.sender), to: &buffer)
        buffer.append(UInt8(ascii: "."))
        appendDecimal(id.sequence, to: &buffer)
    }

    @inline(__always)
    static func appendGroups(_ groups: [GroupID], to buffer: inout [UInt8]) {
        for (i, g) in groups.enumerated() {
            if i > 0 { buffer.append(UInt8(ascii: ",")) }
            appendDecimal(UInt64(g.rawValue), to: &buffer)
        }
    }

    /// Appends the decimal digits of `value` without an intermediate String.
    static func appendDecimal(_ value: UInt64, to buffer: inout [UInt8]) {
        var digits = 1
        var rest = value
        while rest >= 10 {
            rest /= 10
            digits += 1
        }
        let start = buffer.count
        buffer.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: digits))
        var x = value
        var i = start + digits - 1
        repeat {
            buffer[i] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: x % 10)
            x /= 10
            i -= 1
        } while x > 0
    }
}
