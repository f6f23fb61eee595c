import RamCast
import RamCastFabric
import RamCastInProcess
@testable import RamCastProtocol
import Testing

/// The single-group fast path in the schedules that once broke it, and a revocation that fails.
@Suite("Fast path and revocation")
struct FastPathTests {
    /// Leader 0 proposes m on the fast path; its writes stall, so node 1 runs for ballot 4. Follower
    /// 2 accepts that 1A, and 0's timestamp write for m lands in 2's log between the engine's poll
    /// and the driver's revocation (a driver race point). The write completes, 0 (which has not seen
    /// the 1A) counts it and delivers m. Accepting in one step, 2 had already built its 1B and
    /// cleared its log: m's timestamp was in no 1B, and the new leader gave m another (I1). Accepted
    /// in two steps, the 1B is built after the revocation and reports it.
    @Test("a fast-path write that lands between a follower's poll and its revocation is in its 1B")
    func writeBetweenPollAndRevocation() throws {
        let c = try ScriptedCluster(fastPath: true)
        _ = try c.send(100, to: [0])
        // Group 1's clocks run ahead: a recovery that missed m's timestamp picks a larger one.
        for _ in 0..<5 { _ = try c.send(101, to: [1]) }
        try c.settle()
        let m = try c.send(100, to: [0])
        c.deliver(100, 0, 1, 2)
        try c.pump(0)                          // proposes m: body and timestamp writes to 1 and 2, held
        // 0 is cut off (nothing it posts lands, nothing reaches it) until node 1 runs for ballot 4;
        // 1's 1A to node 2 is held too, to be landed by hand.
        let everyone = [1, 2, 3, 4, 5, 100, 101]
        let cut = everyone.map { (0, $0) } + everyone.map { ($0, 0) } + [(1, 2)]
        try rounds(c, holding: cut, until: { c.server(1).candidacy != nil })
        #expect(c.server(1).candidacy?.ballot == Ballot(4))
        #expect(c.delivered[NodeID(0)]?.contains(m) != true)
        // Node 2 takes the 1A; at its first race point, 0's writes to it land.
        var landed = 0
        c.cluster.nodeByID[NodeID(2)]!.driver.racePoint = { point in
            if point == .afterPoll, landed == 0 { landed = c.fabric.deliver(from: NodeID(0), to: NodeID(2)) }
        }
        c.deliver(1, 2)
        try c.pump(2)
        c.cluster.nodeByID[NodeID(2)]!.driver.racePoint = nil
        #expect(landed > 0, "0's writes to 2 should have landed at the race point")
        try c.pump(0)                          // polls the completion from 2: the fast path counts it
        try c.pump(0)
        #expect(c.delivered[NodeID(0)]?.contains(m) == true, "the old leader should have delivered m on the fast path")
        let decided = c.finals[NodeID(0)]![c.delivered[NodeID(0)]!.firstIndex(of: m)!]
        c.crash(0)
        try c.settle(until: { c.everyoneDelivered })
        for q in [1, 2] {
            let order = c.delivered[NodeID(UInt32(q))] ?? []
            #expect(order.firstIndex(of: m).map { c.finals[NodeID(UInt32(q))]![$0] } == decided,
                    "node \(q) delivered m at another timestamp than the old leader's \(decided)")
        }
        #expect(c.check().isClean, "\(c.check())")
    }

    /// The sender writes m to leader 0 alone and crashes. 0 proposes it on the fast path, its
    /// write to follower 1 completes and 0 delivers m, then 0 crashes. A completed log write alone
    /// left 1 without m's body: nobody could deliver m, and the new leader waited for the body
    /// for good. The leader writes the body ahead of the timestamp, so 1 has it and delivers m.
    @Test("a fast-path delivery survives its sender's crash and its leader's")
    func fastPathWithCrashedSender() throws {
        let c = try ScriptedCluster(fastPath: true)
        _ = try c.send(100, to: [0])
        try c.settle()
        let m = try c.send(100, to: [0])
        c.deliver(100, 0)                      // the body reaches the leader only
        c.crash(100)
        try c.pump(0)                          // proposes m
        c.deliver(0, 1)                        // lands at follower 1 (and completes)
        try c.pump(0)
        try c.pump(0)
        #expect(c.delivered[NodeID(0)]?.contains(m) == true, "the leader should have delivered m on the fast path")
        c.crash(0)
        try c.settle(until: { c.everyoneDelivered })
        #expect(c.delivered[NodeID(1)]?.contains(m) == true && c.delivered[NodeID(2)]?.contains(m) == true,
                "the survivors should deliver m: \(c.delivered)")
        #expect(c.check().isClean, "\(c.check())")
    }

    /// Node 2 cannot revoke the crashed leader's write access (its fabric fails the call). It must
    /// not answer ballot 4's 1A: the old leader could still write its log, and a 1B would miss that.
    /// So candidate 1 hears no 1B from 2, and the fault is reported.
    @Test("a member whose revocation fails withholds its 1B and reports it")
    func failedRevocationWithholds1B() throws {
        let c = try ScriptedCluster(wrap: { $0.node == NodeID(2) ? FailingRevoke($0) as any FabricEndpoint : $0 })
        _ = try c.send(100, to: [0])
        try c.settle()
        c.crash(0)
        // Group 0 has two members left, so a candidate needs both 1Bs: none can finish now. Node 2
        // runs for ballots of its own in turn, and cannot answer those either.
        for _ in 0..<400 {
            c.now += 50_000
            try c.pump(1, 2, 3, 4, 5, 100, 101)
            c.fabric.drain()
        }
        let node2 = c.cluster.nodeByID[NodeID(2)]!
        #expect(node2.driver.problems.contains { $0.contains("revoke from node 0") }, "\(node2.driver.problems)")
        #expect(c.server(2).permissionFaults.contains { $0.group == GroupID(0) && $0.ballot == Ballot(4) })
        // It accepted no 1A of group 0 (its own candidacies' included), so it answered none.
        #expect(c.server(2).ballots[0] == Ballot(3), "node 2 accepted ballot \(c.server(2).ballots[0]) of group 0")
        #expect(!c.server(1).isLeader && !c.server(2).isLeader, "a candidate finished with a 1B that should have been withheld")
    }
}

/// Rounds of every live node's pump and every write landing (but those `from → to` in `holding`),
/// until `done` holds after one, not only once nothing moves (`ScriptedCluster.settle`): stops at
/// the first round where it does.
func rounds(_ c: ScriptedCluster, holding: [(Int, Int)], until done: () -> Bool) throws {
    let ids = c.cluster.nodes.map(\.id)
    for _ in 0..<10_000 where !done() {
        c.now += 50_000
        for n in c.cluster.nodes where !c.dead.contains(n.id) { try c.pump(Int(n.id.rawValue)) }
        for a in ids {
            for b in ids where a != b && !holding.contains(where: { NodeID(UInt32($0.0)) == a && NodeID(UInt32($0.1)) == b }) {
                c.fabric.deliver(from: a, to: b)
            }
        }
    }
}

/// An endpoint whose revocations fail, as a deregistration that the NIC refuses would.
final class FailingRevoke: FabricEndpoint {
    let inner: InProcessEndpoint
    init(_ inner: InProcessEndpoint) { self.inner = inner }
    var node: NodeID { inner.node }
    var limits: FabricLimits { inner.limits }
    var announcesRestart: Bool {
        get { inner.announcesRestart }
        set { inner.announcesRestart = newValue }
    }
    func register(_ id: RegionID, length: Int, remoteAccess: RemoteAccess) throws(FabricError) -> LocalRegion {
        try inner.register(id, length: length, remoteAccess: remoteAccess)
    }
    func connect(to peer: NodeID, timeout: Duration) throws(FabricError) -> ConnectionID { try inner.connect(to: peer, timeout: timeout) }
    func peer(of connection: ConnectionID) -> NodeID? { inner.peer(of: connection) }
    func post(_ writes: UnsafeBufferPointer<WriteRequest>, on connection: ConnectionID) throws(FabricError) {
        try inner.post(writes, on: connection)
    }
    func pollCompletions(into buffer: UnsafeMutableBufferPointer<Completion>) -> Int { inner.pollCompletions(into: buffer) }
    func pollEvent() -> FabricEvent? { inner.pollEvent() }
    func grantWrite(_ id: RegionID, to peer: NodeID) throws(FabricError) { try inner.grantWrite(id, to: peer) }
    func revokeWrite(_ id: RegionID, from peer: NodeID) throws(FabricError) {
        throw .systemCall(call: "ibv_dereg_mr", errno: 16, message: "Device or resource busy (test double)")
    }
    func disconnect(_ connection: ConnectionID) { inner.disconnect(connection) }
    func close() { inner.close() }
}
