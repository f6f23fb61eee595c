import RamCastChecker
import RamCastFabric
import RamCastProtocol

/// Turns engine events into the checker's ``History``: multicasts, deliveries in order per process,
/// and the leader writes, acks and applied sequence numbers that invariants I3–I6 need.
public final class HistoryRecorder: EngineTracer {
    public private(set) var history = History()
    public private(set) var membership: Membership
    /// Per node: how many times it restarted. Each incarnation is its own process in the history:
    /// the new one delivers from a cut on (``History/recordJoin(_:after:)``).
    private var incarnations: [NodeID: UInt32] = [:]

    public init(layout: Layout) {
        var groups: [RamCastChecker.GroupID: [ProcessID]] = [:]
        for (g, members) in layout.config.groups.enumerated() {
            groups[RamCastChecker.GroupID(UInt32(g))] = members.map { ProcessID($0.rawValue) }
        }
        membership = try! Membership(groups: groups)
    }

    /// The checker's process for the current incarnation of `node`.
    func pid(_ node: NodeID) -> ProcessID {
        ProcessID(node.rawValue + (incarnations[node] ?? 0) * Self.incarnationStride)
    }

    /// Process ids of later incarnations: node id + incarnation × this.
    public static let incarnationStride: UInt32 = 1_000_000

    /// `node` crashed before and now runs again with empty memory: later events are its new
    /// incarnation's, a new member of the same group.
    public func restarted(_ node: NodeID) {
        incarnations[node, default: 0] += 1
        if let g = membership.group(of: ProcessID(node.rawValue)) {
            try! membership.addMember(pid(node), to: g)
        }
    }

    public func settled(_ e: LogEntry, by leader: NodeID) {
        history.recordSettled(group: Self.group(e.group), ballot: UInt64(e.ballot.rawValue), sequence: UInt64(e.seq),
                              message: Self.id(e.message))
    }

    public func rejoined(_ process: NodeID, after cut: RamCastProtocol.MessageID?) {
        history.recordJoin(pid(process), after: cut.map(Self.id))
    }

    static func id(_ m: RamCastProtocol.MessageID) -> RamCastChecker.MessageID {
        RamCastChecker.MessageID(sender: m.sender.rawValue, sequence: m.sequence)
    }

    static func group(_ g: RamCastProtocol.GroupID) -> RamCastChecker.GroupID { RamCastChecker.GroupID(UInt32(g.rawValue)) }

    public func multicast(_ m: RamCastProtocol.MessageID, destinations: [RamCastProtocol.GroupID]) {
        history.recordMulticast(Self.id(m), sender: ProcessID(m.sender.rawValue), destinations: destinations.map(Self.group))
    }

    public func delivered(_ d: borrowing Delivery) {
        history.recordDelivery(process: pid(d.process), message: Self.id(d.id),
                               finalTimestamp: d.finalTimestamp.rawValue, destinations: d.destinations.map(Self.group))
    }

    public func crashed(_ node: NodeID) { history.recordCrash(pid(node)) }

    public func proposed(_ e: LogEntry, by leader: NodeID) {
        history.recordProposal(group: Self.group(e.group), ballot: UInt64(e.ballot.rawValue), sequence: UInt64(e.seq),
                               message: Self.id(e.message), timestamp: e.timestamp.rawValue)
    }

    public func forwarded(_ e: LogEntry, by leader: NodeID) {
        history.recordPropagation(group: groupOf(leader),
                                  ballot: UInt64(e.ballot.rawValue), sequence: UInt64(e.seq), message: Self.id(e.message),
                                  sourceGroup: Self.group(e.group), timestamp: e.timestamp.rawValue)
    }

    public func recoveryEnded(_ e: LogEntry, by leader: NodeID) {
        history.recordRecoveryMarker(group: Self.group(e.group), ballot: UInt64(e.ballot.rawValue), sequence: UInt64(e.seq),
                                     timestamp: e.timestamp.rawValue)
    }

    public func acked(_ e: LogEntry, by follower: NodeID) {
        history.recordAck(process: pid(follower), group: Self.group(e.group), ballot: UInt64(e.tsBallot.rawValue),
                          message: Self.id(e.message), timestamp: e.timestamp.rawValue)
    }

    public func applied(_ e: LogEntry, by follower: NodeID) {
        history.recordProcessedSequence(process: pid(follower), group: groupOf(follower),
                                        ballot: UInt64(e.ballot.rawValue), sequence: UInt64(e.seq))
    }

    private var leaderChanges: Set<[UInt64]> = []

    public func leaderChanged(group: RamCastProtocol.GroupID, ballot: RamCastProtocol.Ballot, leader: NodeID, at process: NodeID) {
        let key = [UInt64(group.rawValue), UInt64(ballot.rawValue)]
        guard leaderChanges.insert(key).inserted else { return }
        history.recordLeaderChange(group: Self.group(group), ballot: UInt64(ballot.rawValue), leader: pid(leader))
    }

    private func groupOf(_ node: NodeID) -> RamCastChecker.GroupID {
        membership.group(of: ProcessID(node.rawValue)) ?? RamCastChecker.GroupID(UInt32.max)
    }
}
