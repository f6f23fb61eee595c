import RamCastChecker
import RamCastFabric
@testable import RamCastProtocol
import Testing

/// The 13 points at which a leader can crash (spec §8.2), each with partial fan-outs, replayed
/// step by step. Group 0 = {0, 1, 2} (leader 0), group 1 = {3, 4, 5} (leader 3); m goes to both
/// groups. After the crash the survivors' failure detector elects node 1 (ballot 4), recovery runs,
/// and the run must end with every survivor having delivered m, and the checker clean.
@Suite("Leader crash points (spec §8.2)")
struct CrashPointTests {
    enum Point: Int, CaseIterable, CustomStringConvertible {
        case beforeReceiving = 1, afterReceiving, beforeSendingTs, whileSendingTs, afterSendingTs
        case beforeOtherLeadersTs, afterOtherLeadersTs, beforePropagating, whilePropagating, afterPropagating
        case beforeAcks, whileAcks, afterAcks
        var description: String {
            let names = ["before receiving m", "after receiving m", "before sending its ts", "while sending its ts",
                         "after sending its ts", "before receiving another leader's ts", "after receiving another leader's ts",
                         "before propagating", "while propagating", "after propagating", "before acks arrive",
                         "while acks arrive", "after acks arrive"]
            return "\(rawValue): \(names[rawValue - 1])"
        }
    }

    /// Drives the cluster up to `point` and crashes leader 0 there. Returns the cluster.
    func run(_ point: Point) throws -> ScriptedCluster {
        let c = try ScriptedCluster()
        _ = try c.send(100, to: [0])           // some history first
        try c.settle()
        _ = try c.send(100, to: [0, 1])        // m
        c.deliver(100, 1, 2, 3, 4, 5)
        if point == .beforeReceiving { c.crash(0); return c }
        c.deliver(100, 0)
        if point == .afterReceiving { c.crash(0); return c }
        if point == .beforeSendingTs { c.pollOnly(0); c.crash(0); return c }
        try c.pump(0)                          // L0 proposes ts_0(m) to 1, 2 and to L1 = 3
        c.deliver(0, 1)
        if point == .whileSendingTs { c.crash(0); return c }
        c.deliver(0, 2, 3)
        if point == .afterSendingTs { c.crash(0); return c }
        try c.pump(3)                          // L1 proposes ts_1(m) to 4, 5 and to 0; forwards ts_0(m)
        if point == .beforeOtherLeadersTs { c.crash(0); return c }
        c.deliver(3, 0)
        if point == .afterOtherLeadersTs { c.crash(0); return c }
        if point == .beforePropagating { c.pollOnly(0); c.crash(0); return c }
        try c.pump(0)                          // L0 forwards ts_1(m) to 1, 2
        c.deliver(0, 1)
        if point == .whilePropagating { c.crash(0); return c }
        c.deliver(0, 2)
        if point == .afterPropagating { c.crash(0); return c }
        c.deliver(3, 4, 5)
        try c.pump(1, 2, 4, 5)                 // followers ack to every destination
        for f in [1, 2, 4, 5] { c.deliver(f, 1, 2, 3, 4, 5) }
        if point == .beforeAcks { c.crash(0); return c }
        c.deliver(1, 0)
        if point == .whileAcks { c.crash(0); return c }
        for f in [2, 4, 5] { c.deliver(f, 0) }
        try c.pump(0)                          // L0 may deliver m now
        c.crash(0)
        return c
    }

    @Test("a leader crash at each point: survivors elect a new leader and deliver everything, checked",
          arguments: Point.allCases)
    func crashPoint(_ point: Point) throws {
        let c = try run(point)
        try c.settle(until: { c.everyoneDelivered })
        #expect(c.everyoneDelivered, "after crash point \(point) not every survivor delivered everything: \(c.delivered)")
        let report = c.check()
        #expect(report.isClean, "\(report)")
        // Node 1 leads group 0 now, under ballot 4.
        let engine = c.cluster.nodeByID[NodeID(1)]!.server!
        #expect(engine.isLeader && engine.ballots[0] == Ballot(4))
    }

    /// The single-group fast path: the leader delivers once one follower's copy of its timestamp
    /// completed, then crashes before the other follower saw it. That follower had not even applied
    /// it (its copy of the body was late), yet the new leader must keep the timestamp: it is in the
    /// follower's log, landed, and goes into its 1B.
    @Test("a fast-path decision survives its leader's crash")
    func fastPathSurvives() throws {
        let c = try ScriptedCluster(fastPath: true)
        for _ in 0..<3 { _ = try c.send(100, to: [0]) }
        // Group 1's clocks run ahead: a recovery that forgot the decided timestamp would pick a
        // fresh, larger one (it bumps its clock past a quorum of every group).
        for _ in 0..<5 { _ = try c.send(101, to: [1]) }
        try c.settle()
        let m = try c.send(100, to: [0])
        c.deliver(100, 0, 2)                   // follower 1 gets the body late: it cannot apply ts yet
        try c.pump(0)                          // proposes, signaled
        c.deliver(0, 1)                        // lands at follower 1 only, unapplied there
        try c.pump(0)                          // polls the completion: the fast path counts it
        try c.pump(0)                          // ordered and delivered at 0
        #expect(c.delivered[NodeID(0)]?.last == m, "the leader should have delivered m on the fast path")
        let decided = c.finals[NodeID(0)]!.last!
        c.crash(0)
        try c.settle(until: { c.everyoneDelivered })
        #expect(c.finals[NodeID(1)]?.last == decided && c.finals[NodeID(2)]?.last == decided)
        #expect(c.check().isClean, "\(c.check())")
    }

    /// A leader that is alive but cut off (its writes stall, so its heartbeats stop) is replaced.
    /// It learns nothing of the new ballot for a while and keeps proposing: its timestamp writes are
    /// refused by the revoked permissions (an access error at the fabric), it stops leading, later
    /// rejoins as a follower, and nothing is delivered wrongly.
    @Test("a deposed leader's writes are refused and it rejoins as a follower")
    func deposedLeader() throws {
        let c = try ScriptedCluster()
        _ = try c.send(100, to: [0])
        try c.settle()
        let out = [1, 2, 3, 4, 5, 100, 101].map { (0, $0) }
        try c.settle(holding: out + [(1, 0)], until: { c.cluster.nodeByID[NodeID(1)]!.server!.isLeader })
        let newLeader = c.cluster.nodeByID[NodeID(1)]!.server!
        #expect(newLeader.isLeader && newLeader.ballots[0] == Ballot(4))
        let old = c.cluster.nodeByID[NodeID(0)]!.server!
        // 0 has not heard of ballot 4 yet and proposes the next message as if it still led.
        _ = try c.send(101, to: [0])
        c.deliver(101, 0, 1, 2)
        try c.pump(0)
        #expect(old.ballots[0] == Ballot(3) && old.stats.proposals > 0)
        // Its writes reach the followers, which revoked it: refused.
        try c.settle(holding: [(1, 0)], until: { old.stats.refusedWrites > 0 })
        #expect(old.stats.refusedWrites > 0, "the deposed leader's writes should have been refused at the followers")
        #expect(!old.isLeader, "the deposed leader still acts as leader")
        try c.settle(until: { c.everyoneDelivered })
        #expect(old.ballots[0] == Ballot(4) && !old.isLeader)
        #expect(c.everyoneDelivered)
        #expect(c.check().isClean, "\(c.check())")
    }
}

@Suite("Concurrent would-be leaders")
struct ConcurrentCandidateTests {
    /// Leader 0 crashes. Node 1 starts recovery with ballot 4, but its writes to node 2 stall, so
    /// node 2 gives up on ballot 4 and starts its own with ballot 5 while node 1 is still collecting.
    /// Both candidates run at once; the higher ballot wins, the checker passes, and everyone left
    /// delivers everything.
    @Test("two candidates with different ballots")
    func twoCandidates() throws {
        let c = try ScriptedCluster()
        _ = try c.send(100, to: [0, 1])
        try c.settle()
        _ = try c.send(100, to: [0])
        _ = try c.send(101, to: [0, 1])
        c.deliver(100, 0, 1, 2)
        try c.pump(0)
        c.deliver(0, 1)
        c.crash(0)
        let one = c.cluster.nodeByID[NodeID(1)]!.server!
        let two = c.cluster.nodeByID[NodeID(2)]!.server!
        // Node 2 hears nothing from node 1 until it has started its own recovery.
        try c.settle(holding: [(1, 2)], until: { two.ballots[0] == Ballot(5) })
        #expect(one.ballots[0] >= Ballot(4) && two.ballots[0] == Ballot(5))
        try c.settle(until: { c.everyoneDelivered })
        #expect(two.isLeader && !one.isLeader, "ballot 5's candidate should lead")
        #expect(one.ballots[0] == Ballot(5))
        #expect(c.everyoneDelivered)
        #expect(c.check().isClean, "\(c.check())")
    }
}

@Suite("Crashed sender (Task 10)")
struct CrashedSenderTests {
    /// The sender crashes after writing m's body to the two leaders only. Destinations that hold m
    /// relay it to the others, so every destination delivers m (uniform agreement), and the checker
    /// passes with the sender recorded as crashed.
    @Test("a message written to some destinations only is relayed to all of them")
    func partialFanOut() throws {
        let c = try ScriptedCluster()
        _ = try c.send(100, to: [0, 1])
        try c.settle()
        let m = try c.send(100, to: [0, 1])
        c.deliver(100, 0, 3)
        c.crash(100)
        try c.settle(until: { [1, 2, 4, 5].allSatisfy { c.delivered[NodeID($0), default: []].contains(m) } })
        for p in [0, 1, 2, 3, 4, 5] {
            #expect(c.delivered[NodeID(UInt32(p)), default: []].contains(m), "process \(p) did not deliver \(m)")
        }
        let relays = [0, 3].map { c.cluster.nodeByID[NodeID(UInt32($0))]!.server!.stats.relays }.reduce(0, +)
        #expect(relays > 0, "the holders should have relayed m")
        #expect(c.check().isClean, "\(c.check())")
    }

    /// The body reaches the leader and one follower of group 0, which deliver m before anyone
    /// suspects the sender; the third member never got it. Once the sender's crash is known, that
    /// member asks for what it lacks and a holder relays the delivered message (uniform agreement).
    @Test("a message its holders already delivered still reaches the member that lacked it")
    func deliveredBeforeSuspicion() throws {
        let c = try ScriptedCluster()
        _ = try c.send(100, to: [0])
        try c.settle()
        let m = try c.send(100, to: [0])
        c.deliver(100, 0, 1)
        try c.settle(holding: [(100, 2)], until: { [0, 1].allSatisfy { c.delivered[NodeID($0), default: []].contains(m) } })
        #expect(c.delivered[NodeID(2), default: []].contains(m) == false, "member 2 cannot have m yet")
        c.crash(100)
        try c.settle(until: { c.delivered[NodeID(2), default: []].contains(m) })
        #expect(c.delivered[NodeID(2), default: []].contains(m), "member 2 never got m")
        let relays = [0, 1].map { c.cluster.nodeByID[NodeID(UInt32($0))]!.server!.stats.relays }.reduce(0, +)
        #expect(relays > 0, "a holder should have relayed m")
        #expect(c.check().isClean, "\(c.check())")
    }

    /// m1 (to group 0) reached nobody; m2 (to both groups, next in the sender's stream) reached group
    /// 1 only. Group 0's rings wait at m1's slot, which nobody can fill, while group 1 orders m2 and
    /// needs group 0's timestamp. With the sender known to have crashed, group 0 takes m2 out of slot
    /// order from a relay, so both groups deliver m2.
    @Test("a message lost everywhere does not block the crashed sender's later ones")
    func lostMessageDoesNotBlock() throws {
        let c = try ScriptedCluster()
        _ = try c.send(100, to: [0, 1])
        try c.settle()
        let m1 = try c.send(100, to: [0])
        let m2 = try c.send(100, to: [0, 1])
        c.deliver(100, 3, 4, 5)
        c.crash(100)
        try c.settle(until: { (0...5).allSatisfy { c.delivered[NodeID(UInt32($0)), default: []].contains(m2) } })
        for p in 0...5 {
            #expect(c.delivered[NodeID(UInt32(p)), default: []].contains(m2), "process \(p) did not deliver \(m2)")
            #expect(!c.delivered[NodeID(UInt32(p)), default: []].contains(m1), "nobody holds \(m1), nobody may deliver it")
        }
        #expect(c.check().isClean, "\(c.check())")
    }
}

@Suite("Stale view of a leader change")
struct StaleViewTests {
    /// docs/failure-handling.md, "Delivery bounds and the watermark": group 0's leader (node 0) holds
    /// a pending m' whose group-1 timestamp v is *undecided*, and m ordered below v. Group 1's leader
    /// crashes; its successor, whose quorums never saw v, gives m' a fresh timestamp below m's final
    /// one, and node 0 has not received that 1A yet. The engine before the watermark bounded m' by v
    /// and delivered m first at node 0, while everyone else delivered m' first (prefix order, acyclic
    /// order and I2 all broken). Now node 0 bounds m' only by decided timestamps and waits.
    @Test("a process that has not seen a leader change yet does not deliver past that group's undecided timestamp")
    func staleViewOfLeaderChange() throws {
        let c = try ScriptedCluster()
        // Group 0's leader runs 10 timestamps ahead of its followers (its writes to them held).
        for _ in 0..<10 {
            _ = try c.send(101, to: [0])
            c.deliver(101, 0, 1, 2)
            try c.pump(0)
        }
        // Group 1's leader runs 15 ahead of its followers.
        for _ in 0..<15 {
            _ = try c.send(101, to: [1])
            c.deliver(101, 3, 4, 5)
            try c.pump(3)
        }
        let m2 = try c.send(100, to: [0, 1])   // m'
        c.deliver(100, 0, 1, 2, 3, 4, 5)
        try c.pump(0, 3)                        // ts_0(m') = ⟨11,0⟩, v = ts_1(m') = ⟨16,1⟩
        let m = try c.send(101, to: [0])
        c.deliver(101, 0, 1, 2)
        try c.pump(0)                           // ts_0(m) = ⟨12,0⟩
        c.deliver(3, 0)
        c.deliver(0, 3)
        try c.pump(0)                           // node 0 learns v
        c.crash(3)
        try c.pump(4)                           // node 4 is group 1's candidate (ballot 4)
        c.deliver(4, 1, 2, 5)                   // its 1A reaches everyone but node 0
        try c.pump(1, 2, 5)                     // permission changes first,
        try c.pump(1, 2, 5)                     // then the 1Bs
        c.deliver(1, 4)
        c.deliver(2, 4)
        c.deliver(5, 4)
        try c.pump(4)                           // its own 1A: permission changes first,
        try c.pump(4)                           // quorums of both groups: fresh ⟨1,1⟩ for m'
        #expect(c.cluster.nodeByID[NodeID(4)]!.server!.isLeader, "node 4 should lead group 1 by now")
        c.deliver(0, 1, 2)
        try c.pump(1, 2)
        c.deliver(1, 0)
        c.deliver(2, 0)
        try c.pump(0)                           // m ordered at ⟨12,0⟩; m' undecided in group 1
        let node0 = c.cluster.nodeByID[NodeID(0)]!.server!
        #expect(node0.ballots[1] == Ballot(3), "node 0 must not have heard of group 1's new ballot yet")
        #expect(node0.stats.delivered == 10, "node 0 delivers the ten messages before m' and nothing more")
        #expect(!c.delivered[NodeID(0), default: []].contains(m), "node 0 delivered m past m''s undecided timestamp")
        try c.settle(until: { c.everyoneDelivered })
        #expect(c.everyoneDelivered)
        for p in 0...2 {
            let order = c.delivered[NodeID(UInt32(p)), default: []]
            #expect(order.firstIndex(of: m2)! < order.firstIndex(of: m)!, "process \(p) delivered m before m'")
        }
        #expect(c.check().isClean, "\(c.check())")
    }
}

@Suite("Delivery watermark")
struct WatermarkTests {
    /// m goes to both groups; group 1's leader is 5 timestamps ahead, so m's final timestamp is
    /// group 1's, above anything group 0 proposed. Group 0's members may deliver m only once f+1 of
    /// them have their clock past it (else a new leader of group 0 could give a later message a
    /// smaller timestamp). No later message comes to raise it by votes, so group 0's followers
    /// publish their clocks in the clock cells, and m is delivered everywhere.
    @Test("a quiet group delivers a message whose final timestamp is another group's, through clock cells")
    func quietGroupPublishesClocks() throws {
        let c = try ScriptedCluster()
        for _ in 0..<5 { _ = try c.send(101, to: [1]) }
        try c.settle()
        let m = try c.send(100, to: [0, 1])
        try c.settle(until: { c.everyoneDelivered })
        #expect(c.everyoneDelivered)
        #expect(c.finals[NodeID(1)]?.last == RamCastProtocol.Timestamp(clock: 6, group: GroupID(1)),
                "m's final timestamp should be group 1's ⟨6,1⟩")
        let published = (1...2).map { c.cluster.nodeByID[NodeID(UInt32($0))]!.server!.stats.clockPublications }
        #expect(published.allSatisfy { $0 > 0 }, "group 0's followers should have published their clocks: \(published)")
        #expect(c.delivered[NodeID(0), default: []].last == m)
        #expect(c.check().isClean, "\(c.check())")
    }
}
