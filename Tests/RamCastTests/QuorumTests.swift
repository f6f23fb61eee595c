import RamCastChecker
import RamCastFabric
@testable import RamCastProtocol
import Testing

/// The quorum, f+1 of a group with its leader (`Layout.quorum(of:)`), guards two things, each with a
/// scripted schedule in which a value known to only f members (a minority) would decide wrongly.
/// Group 0 = {0, 1, 2}, f = 1; group 1's clocks run ahead, so that a fresh timestamp a new leader
/// picks differs from the one that was lost. Both tests fail when the quorum is f.
@Suite("Quorums (f+1 with the leader)")
struct QuorumTests {
    /// Group 1 runs five timestamps ahead of group 0: a recovery that picks a fresh value for a
    /// group-0 message picks at least ⟨6,0⟩, never the ⟨1,0⟩ its old leader chose.
    func clusterWithGroup1Ahead() throws -> ScriptedCluster {
        let c = try ScriptedCluster()
        for _ in 0..<5 { _ = try c.send(101, to: [1]) }
        try c.settle()
        return c
    }

    /// Leader 0 proposes m, but its writes reach neither follower: its timestamp is known to it
    /// alone (f = 1 member). With votes counted against f, its own proposal orders m and it delivers
    /// m at ⟨1,0⟩; it crashes, and the survivors, who never saw that value, deliver m at the fresh
    /// ⟨6,0⟩ (I1 broken). With f+1, m waits for an ack and the survivors decide alone.
    @Test("a timestamp known to the leader alone does not order a message")
    func minorityProposalDoesNotOrder() throws {
        let c = try clusterWithGroup1Ahead()
        let m = try c.send(100, to: [0])
        c.deliver(100, 0, 1, 2)
        for _ in 0..<3 { try c.pump(0) }        // proposes ⟨1,0⟩; its writes to 1 and 2 stay in flight
        #expect(c.server(0).stats.proposals > 0, "the leader should have proposed m")
        #expect(!c.delivered[NodeID(0), default: []].contains(m), "the leader delivered m on its own vote alone")
        c.crash(0)                               // its proposal dies with it
        try c.settle(until: { c.everyoneDelivered })
        #expect(c.everyoneDelivered, "\(c.delivered)")
        #expect(c.finals[NodeID(1)]?.last == c.finals[NodeID(2)]?.last)
        let report = c.check()
        #expect(report.isClean, "\(report)")
    }

    /// Leader 0's timestamp for m reaches follower 2, whose ack (with 0's own vote: f+1) decides
    /// it, and 0 delivers m at ⟨1,0⟩ before it crashes. Node 1, which never saw that value, becomes
    /// the candidate while 2's 1B is slow: deciding on its own 1B (f replies of group 0) it would
    /// give m the fresh ⟨6,0⟩, below nothing 0 delivered but different from it (I1, I4). With f+1
    /// replies it waits for 2, whose 1B carries the decided ⟨1,0⟩, and re-proposes it.
    @Test("a candidate does not decide before f+1 members of each group replied")
    func candidateWaitsForQuorum() throws {
        let c = try clusterWithGroup1Ahead()
        let m = try c.send(100, to: [0])
        c.deliver(100, 0, 1, 2)
        try c.pump(0)                            // proposes ⟨1,0⟩
        c.deliver(0, 2)                          // reaches follower 2 only
        try c.pump(2)                            // 2 acks to 0, 1 and 2
        c.deliver(2, 0)
        for _ in 0..<2 { try c.pump(0) }
        #expect(c.delivered[NodeID(0), default: []] == [m], "the leader should have delivered m with f+1 votes")
        let decided = c.finals[NodeID(0)]?.last
        #expect(decided == RamCastProtocol.Timestamp(clock: 1, group: GroupID(0)))
        c.crash(0)                               // its write to 1 is lost
        let one = c.server(1)
        // 2's 1B (and everything else from 2) is held back from the candidate for a while.
        let deadline = c.now + 20_000_000
        try c.settle(holding: [(2, 1)], until: { one.isLeader || c.now > deadline })
        #expect(!one.isLeader, "node 1 decided its recovery with a single reply of group 0")
        try c.settle(until: { c.everyoneDelivered })
        #expect(c.everyoneDelivered, "\(c.delivered)")
        for p in [1, 2] {
            #expect(c.finals[NodeID(UInt32(p))]?.last == decided, "process \(p) delivered m at another timestamp than its old leader")
        }
        let report = c.check()
        #expect(report.isClean, "\(report)")
    }
}
