import RamCastChecker
import RamCastFabric
@testable import RamCastProtocol
import Testing

/// Two messages can end with the same final timestamp ⟨c, g⟩ (docs/failure-handling.md, "Equal
/// final timestamps"), and then every process delivers them by message id.
@Suite("Equal final timestamps")
struct TieBreakTests {
    /// Group 0 = {0, 1, 2}, every clock at 0.
    /// - Ballot 3: leader 0 holds m1's body alone and proposes ⟨1,0⟩ for it; nobody else sees it.
    /// - Ballot 4: node 1 takes over without 0 (cut off) and without m1's body, and gives m2 the fresh
    ///   ⟨1,0⟩ (its quorum's clocks are 0). Node 2 applies that proposal, but node 1 crashes before
    ///   2 gets its section's marker.
    /// - Ballot 5: node 2 hears 0 and itself. Neither has ballot 4's section, so values of ballot 3
    ///   still count: m1's ⟨1,0⟩ (0 may have had it chosen, for all 2 knows) and m2's ⟨1,0⟩ (chosen
    ///   by 1 and 2) are both re-proposed unchanged.
    /// Both end at ⟨1,0⟩; 0 and 2 deliver m1 (sender 100) before m2 (sender 101), the checker's I2
    /// asserts that order, and I3 accepts the two equal re-proposals.
    @Test("two messages re-proposed with the same timestamp are delivered by message id everywhere")
    func equalFinalTimestamps() throws {
        let c = try ScriptedCluster()
        let m1 = try c.send(100, to: [0])
        c.deliver(100, 0)                        // m1's body reaches the leader only
        try c.pump(0)                            // ⟨1,0⟩ for m1 in ballot 3, its writes in flight
        let m2 = try c.send(101, to: [0])
        c.deliver(101, 1, 2)                     // m2's body reaches the followers only
        let others = [1, 2, 3, 4, 5, 100, 101]
        let cutOff = others.map { (0, $0) } + others.map { ($0, 0) } + [(100, 1), (100, 2)]
        let one = c.server(1)
        let two = c.server(2)
        try c.settle(holding: cutOff, quiet: false, until: { two.ballots[0] == Ballot(4) })
        // Node 1 decides ballot 4 with node 2's 1B; its section (m2 at seq 1, the marker at seq 2)
        // waits on the connection to 2, of which only the first write lands when it crashes.
        try c.settle(holding: cutOff + [(1, 2)], quiet: false, until: { one.isLeader })
        #expect(one.isLeader && one.ballots[0] == Ballot(4))
        c.crash(1, landing: 1)
        try c.settle(holding: cutOff, until: { two.stats.acks > 0 })
        #expect(two.stats.acks == 1, "node 2 should have acked m2's ⟨1,0⟩ of ballot 4")
        #expect(two.recoveredBallot == Ballot(3), "node 2 must not have ballot 4's recovery marker")
        try c.settle(until: { c.everyoneDelivered })
        #expect(c.everyoneDelivered, "\(c.delivered)")
        #expect(two.isLeader && two.ballots[0] == Ballot(5))
        let tie = RamCastProtocol.Timestamp(clock: 1, group: GroupID(0))
        #expect(m1 < m2)
        for p in [0, 2] {
            let q = NodeID(UInt32(p))
            #expect(c.delivered[q] == [m1, m2], "process \(p) delivered \(c.delivered[q] ?? []), not by message id")
            #expect(c.finals[q] == [tie, tie], "process \(p): final timestamps \(c.finals[q] ?? [])")
        }
        let report = c.check()
        #expect(report.isClean, "\(report)")
    }
}
