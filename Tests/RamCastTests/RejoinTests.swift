import RamCastChecker
import RamCastFabric
@testable import RamCastProtocol
import Testing

/// A group member that crashed comes back as a new incarnation with empty memory (`Rejoin.swift`).
/// Group 0 = {0, 1, 2} (leader 0), group 1 = {3, 4, 5} (leader 3); senders 100 and 101.
@Suite("Restart and rejoin")
struct RejoinTests {
    /// Sends `count` messages from alternating senders, to group 0 alone and to both groups.
    func traffic(_ c: ScriptedCluster, _ count: Int) throws -> [RamCastProtocol.MessageID] {
        var sent: [RamCastProtocol.MessageID] = []
        for i in 0..<count {
            let sender = i % 2 == 0 ? 100 : 101
            let groups: [UInt8] = i % 3 == 0 ? [0, 1] : [0]
            sent.append(try c.send(sender, to: groups, payload: [UInt8(i)]))
        }
        return sent
    }

    /// The restarted process's deliveries are exactly another member's order after the cut.
    func expectSuffix(_ c: ScriptedCluster, restarted id: Int, reference: Int) {
        let cut = c.server(id).joinedAfter
        let order = c.delivered[NodeID(UInt32(reference))] ?? []
        let start = cut.map { m in (order.firstIndex(of: m) ?? -2) + 1 } ?? 0
        #expect(start >= 0, "the cut \(String(describing: cut)) is not in \(reference)'s deliveries")
        guard start >= 0 else { return }
        #expect(c.delivered[NodeID(UInt32(id))] == Array(order[start...]))
    }

    /// Every survivor delivered what it owes (a restarted one, what follows its cut), and the
    /// checker finds the run clean.
    func expectCompleteAndClean(_ c: ScriptedCluster, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(c.everyoneDelivered, sourceLocation: sourceLocation)
        let report = c.check()
        #expect(report.isClean, "\(report)", sourceLocation: sourceLocation)
    }

    @Test("A restarted follower is taken back in and delivers the group's order after its cut")
    func followerRejoins() throws {
        let c = try ScriptedCluster()
        _ = try traffic(c, 6)
        try c.settle()
        c.crash(2)
        let whileDown = try traffic(c, 6)
        try c.settle()
        try c.restart(2)
        #expect(c.server(2).rejoining)
        let during = try traffic(c, 4)
        try c.settle(until: { !c.server(2).rejoining })
        // Sent once it is back: none of these can be below its cut.
        let after = try traffic(c, 4)
        try c.settle()

        let newcomer = c.server(2)
        #expect(!newcomer.rejoining)
        // The cut is what leader 0 had delivered when it took node 2 back: everything sent while
        // it was down, at least.
        #expect(newcomer.joinedAfter != nil)
        #expect(!(c.delivered[NodeID(2)] ?? []).contains(whileDown[0]))
        for m in after { #expect(c.delivered[NodeID(2)]?.contains(m) == true, "\(m) not delivered by the newcomer") }
        expectSuffix(c, restarted: 2, reference: 0)
        expectSuffix(c, restarted: 2, reference: 1)
        #expect(c.everyoneDelivered)
        #expect(during.allSatisfy { c.delivered[NodeID(0)]?.contains($0) == true })
        // It acks again: with node 1 down, group 0 still orders (leader 0 + newcomer 2).
        c.crash(1)
        let last = try traffic(c, 3)
        try c.settle()
        for m in last { #expect(c.delivered[NodeID(2)]?.contains(m) == true) }
        let report = c.check()
        #expect(report.isClean, "\(report)")
    }

    @Test("A restarted leader comes back as a follower of its successor")
    func leaderRejoins() throws {
        let c = try ScriptedCluster()
        _ = try traffic(c, 5)
        try c.settle()
        c.crash(0)
        _ = try traffic(c, 3)
        try c.settle(until: { c.server(1).isLeader })
        try c.settle()
        #expect(c.server(1).isLeader)
        try c.restart(0)
        _ = try traffic(c, 3)
        try c.settle(until: { !c.server(0).rejoining })
        let after = try traffic(c, 5)
        try c.settle()

        #expect(!c.server(0).rejoining)
        #expect(!c.server(0).isLeader)
        #expect(c.server(1).isLeader)
        for m in after { #expect(c.delivered[NodeID(0)]?.contains(m) == true) }
        expectSuffix(c, restarted: 0, reference: 1)
        expectCompleteAndClean(c)
    }

    @Test("A member not yet taken back in counts in no quorum")
    func amnesiacDoesNotVote() throws {
        let c = try ScriptedCluster()
        _ = try traffic(c, 4)
        try c.settle()
        c.crash(2)
        _ = try traffic(c, 2)
        try c.settle()
        // Node 2 restarts, but its leader dies before taking it in. Node 1 would need node 2's 1B
        // for a quorum; node 2 forgot what it acked before, so its 1B must not count.
        c.crash(0)
        try c.restart(2)
        try c.settle(until: { c.now > 40_000_000 })
        #expect(!c.server(1).isLeader, "node 1 decided a ballot on the 1B of a member that lost its memory")
        #expect(c.server(2).rejoining)
        #expect(c.server(2).stats.delivered == 0)
        // Group 0 is stuck (one member left that counts), so the newcomer owes deliveries it cannot
        // make: only liveness is violated, and nothing was delivered out of order.
        let report = c.check()
        #expect(report.violations.allSatisfy { $0.property.isLiveness }, "\(report)")
        #expect(!report.violations.isEmpty)
    }

    @Test("A leader's stream restarted for another group's new ballot is not mistaken for the old one")
    func leaderStreamEpoch() throws {
        let c = try ScriptedCluster()
        for i in 0..<40 { _ = try c.send(100, to: [0, 1], payload: [UInt8(i)]); try c.settle() }
        // Leader 0 has written 40 entries into leader 3's log[0]; two more are in flight.
        _ = try c.send(100, to: [0, 1])
        _ = try c.send(100, to: [0, 1])
        try c.settle(holding: [(0, 3)])
        // Group 1 takes a new ballot with the same leader (what a rejoin does: b + n). Leader 3 clears
        // its log[0] at once; leader 0 restarts its stream at 1 only when the 1A reaches it, so the
        // old stream's entries 41 and 42 land in the cleared log.
        let b = c.server(3).ballots[1]
        #expect(c.server(3).startRecovery(Ballot(b.rawValue + 3)))
        c.deliver(0, 3)
        try c.settle()
        #expect(c.server(3).isLeader)
        // The new stream passes 41: those entries must come from it, not from the old one.
        for i in 0..<30 { _ = try c.send(100, to: [0, 1], payload: [UInt8(i)]); try c.settle() }
        #expect(c.everyoneDelivered, "group 1 lost a timestamp of group 0: \(c.server(3).debugDescription)")
        let report = c.check()
        #expect(report.isClean, "\(report)")
    }

    @Test("A restarted member gets the ack of the newest message in each slot, not an older one's")
    func resyncNewestAckPerSlot() throws {
        let c = try ScriptedCluster()
        // Slot numbers in group 0's ring run ahead of group 1's (messages to group 0 alone), so X and Y
        // share slot 15 of group 0's rings but sit in slots 15 and 0 of group 1's: a follower of group
        // 1 that holds both meets Y first when it walks its table.
        for i in 0..<15 { _ = try c.send(100, to: [0, 1], payload: [UInt8(i)]); try c.settle() }
        _ = try c.send(100, to: [0, 1])   // X
        for i in 0..<15 { _ = try c.send(100, to: [0], payload: [UInt8(i)]); try c.settle() }
        try c.settle()
        c.crash(2)
        // Y: group 1 orders it and acks it to group 0 while node 2 is down; group 0 cannot order it
        // yet (leader 3's timestamp is held back).
        let y = try c.send(100, to: [0, 1])
        try c.settle(holding: [(3, 0)])
        #expect(c.delivered[NodeID(4)]?.contains(y) == true)
        #expect(c.delivered[NodeID(0)]?.contains(y) != true)
        // Node 2 comes back: group 1's followers re-send their acks of what they hold, X's and Y's,
        // into the same ack cell. Y is after its cut, so it needs Y's.
        try c.restart(2)
        try c.settle(holding: [(3, 0)])
        try c.settle()
        #expect(!c.server(2).rejoining)
        #expect(c.everyoneDelivered, "node 2: \(c.server(2).debugDescription)")
        #expect(c.delivered[NodeID(2)]?.contains(y) == true || c.beforeCut(NodeID(2), y))
        let report = c.check()
        #expect(report.isClean, "\(report)")
    }

    @Test("A body settled on arrival after the rejoin is released, and its release counted")
    func settledOnArrivalIsReleased() throws {
        let c = try ScriptedCluster()
        _ = try traffic(c, 4)
        try c.settle()
        c.crash(2)
        // Leader 0 and node 1 deliver m, but node 1's release stays in flight: sender 100 writes m
        // again to the restarted node 2.
        let m = try c.send(100, to: [0])
        try c.settle(holding: [(1, 100)])
        #expect(c.delivered[NodeID(0)]?.contains(m) == true)
        try c.restart(2)
        try c.pump(100)
        #expect(c.fabric.pendingWrites(from: NodeID(100), to: NodeID(2)) == 2)   // the resume word, then m
        c.fabric.deliver(from: NodeID(100), to: NodeID(2), count: 1)
        // Taken back in before m's body lands: leader 0's section lists m as settled.
        try c.settle(holding: [(1, 100), (100, 2)], until: { !c.server(2).rejoining })
        #expect(!c.server(2).rejoining)
        #expect(c.server(2).stats.settled == 0)
        try c.settle(holding: [(1, 100)])
        let newcomer = c.server(2)
        #expect(newcomer.stats.settled == 1)
        #expect(c.delivered[NodeID(2)]?.contains(m) != true)
        #expect(newcomer.released.array == newcomer.expected.array, "\(newcomer.debugDescription)")
        try c.settle()
        // A full lap of sender 100's ring reuses m's slot: it waits for node 2's release of m.
        var after: [RamCastProtocol.MessageID] = []
        for i in 0..<20 { after.append(try c.send(100, to: [0], payload: [UInt8(i)])); try c.settle() }
        for x in after { #expect(c.delivered[NodeID(2)]?.contains(x) == true) }
        expectCompleteAndClean(c)
    }

    /// Group 0 loses sender 101 and then node 1, which restarts and is taken in by leader 0. That
    /// section re-proposes what leader 0 still holds, delivered or not, under its ballot; node 1
    /// settles those messages at its cut, without their bodies. Then leader 0 dies and node 1 is
    /// next in line: node 2's 1B reports those values, so node 1 must re-propose them.
    func restartedNextInLine(_ c: ScriptedCluster, lapSender100: Bool) throws {
        _ = try traffic(c, 6)
        try c.settle()
        c.crash(101)
        try c.settle()
        c.crash(1)
        try c.settle()
        try c.restart(1)
        try c.settle(until: { !c.server(1).rejoining })
        try c.settle()
        #expect(!c.server(1).rejoining)
        if lapSender100 {
            // A lap of sender 100's ring: node 1 then holds a newer message in each of its slots.
            for i in 0..<16 { _ = try c.send(100, to: [0], payload: [UInt8(i)]); try c.settle() }
        }
        let senderSlots = 16..<32   // sender 101's table entries
        #expect(senderSlots.contains { c.server(2).delivered[$0] })
        #expect(senderSlots.allSatisfy { !c.server(1).present[$0] && !c.server(1).delivered[$0] })
        c.crash(0)
        try c.settle(until: { c.server(1).isLeader || c.server(2).isLeader })
    }

    func expectGroupZeroOrders(_ c: ScriptedCluster) throws {
        var after: [RamCastProtocol.MessageID] = []
        for _ in 0..<4 { after.append(try c.send(100, to: [0, 1])) }
        try c.settle()
        for m in after {
            #expect(c.delivered[NodeID(1)]?.contains(m) == true)
            #expect(c.delivered[NodeID(2)]?.contains(m) == true)
        }
        expectCompleteAndClean(c)
    }

    @Test("A restarted candidate pulls the body of a crashed sender's message it never had")
    func candidatePullsCrashedSendersBody() throws {
        let c = try ScriptedCluster()
        try restartedNextInLine(c, lapSender100: true)
        #expect(c.server(1).isLeader, "node 1: \(c.server(1).debugDescription)")
        #expect(c.server(1).stats.settled > 0)
        try expectGroupZeroOrders(c)
    }

    @Test("A restarted candidate that cannot get a live sender's old body hands over to the next member")
    func candidateAbdicates() throws {
        let c = try ScriptedCluster()
        // Sender 100's messages before the restart were written to node 1 by nobody, and sender 100
        // writes a slot again only when it laps its ring: node 1 cannot re-propose them.
        try restartedNextInLine(c, lapSender100: false)
        #expect(c.server(2).isLeader, "node 1: \(c.server(1).debugDescription)\nnode 2: \(c.server(2).debugDescription)")
        #expect(c.server(2).ballots[0].rawValue % 3 == 2)
        try expectGroupZeroOrders(c)
    }
    @Test("A sender resumes a restarted member with more unreleased bodies than the default outbox holds")
    func resumeLargerThanDefaultOutbox() throws {
        let c = try ScriptedCluster(slotsPerRing: 320)
        c.crash(2)
        // Node 1's releases stay in flight: sender 100 must write all 300 bodies again to node 2.
        for i in 0..<300 {
            _ = try c.send(100, to: [0], payload: [UInt8(i % 256)])
            if i % 50 == 49 { try c.settle(holding: [(1, 100)]) }
        }
        try c.restart(2)
        try c.settle(until: { !c.server(2).rejoining })
        try c.settle()
        #expect(!c.server(2).rejoining)
        // It took all 300 (a larger burst than the default 256-entry outbox), and the section that
        // took it in (300 settled entries, 300 re-proposals and the marker) came through whole.
        #expect(c.server(2).expected.array == [300, 0])
        #expect(c.server(2).stats.settled == 300)
        let after = try c.send(100, to: [0])
        try c.settle()
        #expect(c.delivered[NodeID(2)]?.contains(after) == true)
        expectCompleteAndClean(c)
    }
    @Test("A candidate whose peers accepted a higher ballot it never heard of is told of it, and moves past it")
    func lowerCandidateLearnsHigherBallot() throws {
        let c = try ScriptedCluster()
        _ = try traffic(c, 4)
        try c.settle()
        // Leader 0 starts a ballot of its own (what a rejoin does: b + n). Its 1A reaches group 1
        // only, then it crashes with the rest in flight.
        let b = c.server(0).ballots[0].rawValue
        #expect(c.server(0).startRecovery(Ballot(b + 3)))
        try c.pump(0)
        c.deliver(0, 3, 4, 5)
        c.crash(0)
        try c.pump(3, 4, 5)                     // the permission changes first,
        try c.pump(3, 4, 5)                     // then the 1A is accepted
        #expect(c.server(3).ballots[0].rawValue == b + 3)
        #expect(c.server(1).ballots[0].rawValue == b)
        // Node 1 suspects leader 0 and runs ballot b + 1, which group 1 has passed already.
        try c.settle(until: { c.server(1).isLeader })
        #expect(c.server(1).isLeader, "node 1: \(c.server(1).debugDescription)")
        #expect(c.server(1).ballots[0].rawValue > b + 3)
        let after = try traffic(c, 4)
        try c.settle()
        for m in after { #expect(c.delivered[NodeID(2)]?.contains(m) == true) }
        expectCompleteAndClean(c)
    }
}
