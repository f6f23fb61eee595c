/// A run's history, built incrementally: an in-process simulation calls one `record…` method per event.
///
/// Recording is cheap: an append plus at most one dictionary lookup (the delivering process's slot). All
/// analysis happens in `check(_:membership:quiescent:)`. Every event gets a global event index in recording
/// order, which is how "an mcast of m precedes its delivery" is checked; a log reader records all multicasts
/// before any delivery, since files carry no global order.
public struct History: Sendable {
    public struct Multicast: Sendable, Equatable {
        public var message: MessageID
        public var sender: ProcessID
        /// Sorted, without duplicates.
        public var destinations: [GroupID]
        public var eventIndex: Int
    }

    public struct Delivery: Sendable, Equatable {
        public var message: MessageID
        public var finalTimestamp: Timestamp
        /// Per-group timestamps, when the runtime reports them.
        public var groupTimestamps: [GroupTimestamp]?
        /// Destinations as the delivering process saw them, when reported (cross-checked with the mcast).
        public var destinations: [GroupID]?
        public var eventIndex: Int
    }

    /// A leader write into its group's timestamp log. Every leader write carries a dense per-ballot `sequence`
    /// (spec §10.1): either the leader's own proposal of ts_g(m) (`sourceGroup == nil`), or a propagation of
    /// another group's ts_h(m) to its followers (`sourceGroup == h`).
    public struct LeaderWrite: Sendable, Equatable {
        public var group: GroupID
        public var ballot: Ballot
        public var sequence: UInt64
        public var message: MessageID
        public var timestamp: Timestamp
        public var sourceGroup: GroupID?
        public var eventIndex: Int
        /// The end of a new leader's recovery section: `timestamp` is its clock then (no message).
        public var isRecoveryMarker = false
        /// In a recovery section: a message the new leader had delivered (a restarted member releases
        /// it undelivered). No timestamp is proposed or propagated by it.
        public var isSettled = false
        public var isProposal: Bool { sourceGroup == nil && !isRecoveryMarker && !isSettled }
    }

    public struct Ack: Sendable, Equatable {
        public var process: ProcessID
        public var group: GroupID
        public var ballot: Ballot
        public var message: MessageID
        public var timestamp: Timestamp
        public var eventIndex: Int
    }

    public struct ProcessedSequence: Sendable, Equatable {
        public var process: ProcessID
        public var group: GroupID
        public var ballot: Ballot
        public var sequence: UInt64
        public var eventIndex: Int
    }

    public struct LeaderChange: Sendable, Equatable {
        public var group: GroupID
        public var ballot: Ballot
        public var leader: ProcessID
        public var eventIndex: Int
    }

    public private(set) var multicasts: [Multicast] = []
    /// Processes that delivered at least once, in order of their first delivery.
    public private(set) var deliveringProcesses: [ProcessID] = []
    /// Delivery sequences, parallel to `deliveringProcesses`, each in delivery order.
    public private(set) var deliverySequences: [[Delivery]] = []
    public private(set) var crashed: Set<ProcessID> = []
    /// New incarnations (restarted members, each under a fresh process id) → their cut: the last message their
    /// group's leader delivered before the incarnation's first delivery, nil if the leader had delivered
    /// nothing. A joined process owes exactly its group's delivery order after the cut (see `recordJoin`).
    public private(set) var joined: [ProcessID: MessageID?] = [:]
    public private(set) var leaderWrites: [LeaderWrite] = []
    public private(set) var acks: [Ack] = []
    public private(set) var processedSequences: [ProcessedSequence] = []
    public private(set) var leaderChanges: [LeaderChange] = []
    /// Free-form notes about the input (e.g. a tolerated truncated log line); printed with the report.
    public private(set) var notes: [String] = []
    public private(set) var eventCount = 0
    public private(set) var deliveryCount = 0

    private var processSlot: [ProcessID: Int] = [:]

    public init() {}

    private mutating func nextEvent() -> Int {
        defer { eventCount += 1 }
        return eventCount
    }

    /// `mcast(message, sender, destinations)`. The sender defaults to the message id's sender.
    public mutating func recordMulticast(_ message: MessageID, sender: ProcessID? = nil, destinations: [GroupID]) {
        multicasts.append(
            Multicast(
                message: message, sender: sender ?? ProcessID(message.sender),
                destinations: History.normalized(destinations), eventIndex: nextEvent()))
    }

    /// `deliver(process, message, finalTimestamp, groupTimestamps?)`, in the process's delivery order.
    public mutating func recordDelivery(
        process: ProcessID, message: MessageID, finalTimestamp: Timestamp,
        groupTimestamps: [GroupTimestamp]? = nil, destinations: [GroupID]? = nil
    ) {
        let delivery = Delivery(
            message: message, finalTimestamp: finalTimestamp, groupTimestamps: groupTimestamps,
            destinations: destinations.map(History.normalized), eventIndex: nextEvent())
        deliveryCount += 1
        if let slot = processSlot[process] {
            deliverySequences[slot].append(delivery)
        } else {
            processSlot[process] = deliverySequences.count
            deliveringProcesses.append(process)
            deliverySequences.append([delivery])
        }
    }

    /// `crash(process)`, for group members and senders alike.
    public mutating func recordCrash(_ process: ProcessID) {
        _ = nextEvent()
        crashed.insert(process)
    }

    /// `join(process, cut)`: `process` is a new incarnation of a crashed member (a fresh process id, added to
    /// its group with `Membership.addMember(_:to:)`) that recovered no delivered history and delivers from
    /// the cut on: exactly its group's delivery order after `cut`, gap-free, in everyone's order. Messages at
    /// or before the cut are already in the state it got from a peer, so it owes none of them.
    ///
    /// - Parameter cut: the message the group's leader delivered last before the incarnation's first
    ///   delivery, as the engine reports it; nil if the leader had delivered nothing yet.
    ///
    /// Recording a second join for the same process replaces the first (a process id names one incarnation,
    /// so that is a recorder bug) and leaves a note.
    public mutating func recordJoin(_ process: ProcessID, after cut: MessageID?) {
        _ = nextEvent()
        if let previous = joined.updateValue(cut, forKey: process) {
            notes.append(
                "join of process \(process) recorded twice (cuts \(previous.map(\.description) ?? "none") and "
                    + "\(cut.map(\.description) ?? "none")); the later one counts")
        }
    }

    /// `propose(group, ballot, seq, message, ts)`: the leader of `group` wrote its own ts_g(m) at `sequence`.
    public mutating func recordProposal(
        group: GroupID, ballot: Ballot, sequence: UInt64, message: MessageID, timestamp: Timestamp
    ) {
        leaderWrites.append(
            LeaderWrite(
                group: group, ballot: ballot, sequence: sequence, message: message, timestamp: timestamp,
                sourceGroup: nil, eventIndex: nextEvent()))
    }

    /// The leader of `group` propagated ts_`sourceGroup`(m) = `timestamp` to its followers at `sequence`.
    public mutating func recordPropagation(
        group: GroupID, ballot: Ballot, sequence: UInt64, message: MessageID, sourceGroup: GroupID,
        timestamp: Timestamp
    ) {
        leaderWrites.append(
            LeaderWrite(
                group: group, ballot: ballot, sequence: sequence, message: message, timestamp: timestamp,
                sourceGroup: sourceGroup, eventIndex: nextEvent()))
    }

    /// The new leader of `group` listed, at `sequence` of its recovery section, a message it had
    /// delivered: a leader write for sequence checks (I3, I6), with no timestamp (I5 ignores it).
    public mutating func recordSettled(group: GroupID, ballot: Ballot, sequence: UInt64, message: MessageID) {
        leaderWrites.append(
            LeaderWrite(
                group: group, ballot: ballot, sequence: sequence, message: message, timestamp: 0,
                sourceGroup: group, eventIndex: nextEvent(), isSettled: true))
    }

    /// The new leader of `group` ended its recovery section at `sequence`, its clock at `timestamp`:
    /// a leader write like any other for sequence checks (I3, I6), and a floor for the proposals
    /// after it (I5).
    public mutating func recordRecoveryMarker(group: GroupID, ballot: Ballot, sequence: UInt64, timestamp: Timestamp) {
        leaderWrites.append(
            LeaderWrite(
                group: group, ballot: ballot, sequence: sequence, message: MessageID(sender: 0, sequence: 0), timestamp: timestamp,
                sourceGroup: group, eventIndex: nextEvent(), isRecoveryMarker: true))
    }

    /// `ack(process, group, ballot, message, ts)`: a member of `group` acknowledged ts_g(m) in `ballot`.
    public mutating func recordAck(
        process: ProcessID, group: GroupID, ballot: Ballot, message: MessageID, timestamp: Timestamp
    ) {
        acks.append(
            Ack(
                process: process, group: group, ballot: ballot, message: message, timestamp: timestamp,
                eventIndex: nextEvent()))
    }

    /// A follower of `group` acted on its leader's write `sequence` of `ballot`.
    public mutating func recordProcessedSequence(process: ProcessID, group: GroupID, ballot: Ballot, sequence: UInt64) {
        processedSequences.append(
            ProcessedSequence(
                process: process, group: group, ballot: ballot, sequence: sequence, eventIndex: nextEvent()))
    }

    /// `leaderChange(group, ballot, leader)`: lets I4 count the leader's own proposal as its ack.
    public mutating func recordLeaderChange(group: GroupID, ballot: Ballot, leader: ProcessID) {
        leaderChanges.append(LeaderChange(group: group, ballot: ballot, leader: leader, eventIndex: nextEvent()))
    }

    public mutating func addNote(_ note: String) { notes.append(note) }

    /// The delivery sequence of `process` (empty if it delivered nothing).
    public func deliveries(of process: ProcessID) -> [Delivery] {
        processSlot[process].map { deliverySequences[$0] } ?? []
    }

    static func normalized(_ groups: [GroupID]) -> [GroupID] {
        if groups.count <= 1 { return groups }
        var strictlyIncreasing = true
        for i in 1..<groups.count where groups[i - 1] >= groups[i] {
            strictlyIncreasing = false
            break
        }
        if strictlyIncreasing { return groups }  // the common case: no copy
        var sorted = groups.sorted()
        var write = 1
        for read in 1..<sorted.count where sorted[read] != sorted[write - 1] {
            sorted[write] = sorted[read]
            write += 1
        }
        sorted.removeLast(sorted.count - write)
        return sorted
    }
}
