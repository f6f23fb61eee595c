import RamCast
import RamCastFabric
import RamCastInProcess
import RamCastProtocol
import Testing

@Suite("Flow control")
struct FlowControlTests {
    /// A follower that stops polling keeps its slots: the sender fills exactly `slots` slots of that
    /// group, then waits; nothing is overwritten and no queue grows. When the follower resumes,
    /// everything is delivered and the ring wraps around.
    @Test("a slow destination back-pressures the sender without unbounded growth")
    func slowDestination() throws {
        let slots = 4
        let layout = try Layout(ProtocolConfig(groups: [[NodeID(0), NodeID(1), NodeID(2)]], senders: [NodeID(100)],
                                               slotsPerRing: slots, slotSize: 256))
        let fabric = InProcessFabric(schedule: .immediate)
        let cluster = try LocalCluster(layout: layout) { (id: NodeID) throws(FabricError) -> any FabricEndpoint in
            try fabric.makeEndpoint(id)
        }
        let slow = NodeID(2)
        let sender = cluster.senders[0].sender!
        var delivered: [NodeID: [MessageID]] = [:]
        var accepted: [MessageID] = []
        let dst = [GroupID(0)]
        func pumpAll(skipping: NodeID?) throws {
            for _ in 0..<50 {
                for n in cluster.nodes where n.id != skipping { try n.pump { d in delivered[d.process, default: []].append(d.id) } }
            }
        }
        for i in 0..<(slots * 3) {
            let id = try [UInt8(i)].withUnsafeBytes { b in try dst.withUnsafeBufferPointer { try sender.multicast(b, to: $0) } }
            if let id { accepted.append(id) }
            try pumpAll(skipping: slow)
        }
        // The quorum (leader and one follower) delivered what was accepted, but the slow member holds
        // every slot: exactly `slots` messages got in.
        #expect(accepted.count == slots)
        #expect(delivered[NodeID(0)] == accepted && delivered[NodeID(1)] == accepted)
        #expect(delivered[slow] == nil)
        for n in cluster.nodes {
            let outbox = n.server?.outbox ?? n.sender!.outbox
            for peer in 0..<outbox.peers { #expect(outbox.pending(peer) <= slots * 4) }
        }
        // The slow member catches up; the ring wraps around several times.
        try pumpAll(skipping: nil)
        #expect(delivered[slow] == accepted)
        for i in 0..<(slots * 5) {
            var id: MessageID?
            for _ in 0..<100 where id == nil {
                id = try [UInt8(i)].withUnsafeBytes { b in try dst.withUnsafeBufferPointer { try sender.multicast(b, to: $0) } }
                try pumpAll(skipping: nil)
            }
            accepted.append(try #require(id))
        }
        try pumpAll(skipping: nil)
        for p in [NodeID(0), NodeID(1), slow] { #expect(delivered[p] == accepted) }
    }

    /// An engine that only owns an outbox and counts what the driver reports.
    final class CountingEngine: DrivenEngine {
        let outbox: Outbox
        let cells: UnsafeMutableRawPointer
        var completions = 0
        init(peers: Int, depth: Int) {
            cells = .allocate(byteCount: Outbox.cellBytes(peers: peers, capacity: 16), alignment: 64)
            outbox = Outbox(peers: peers, capacity: 16, cells: cells, inlineThreshold: 64, sendQueueDepth: depth, signalInterval: depth)
        }
        deinit { cells.deallocate() }
        func completed(peer: Int, id: UInt64, status: CompletionStatus) {
            completions += 1
            if status == .success { outbox.completed(peer) }
        }
    }

    /// A connection replaced (its peer restarted, or it was re-established) leaves completions of its
    /// writes behind. They must not return the new connection's send-queue credits: that let seed
    /// 7863 post more writes than the queue holds.
    @Test("completions of a replaced connection do not return the new one's credits")
    func staleCompletions() throws {
        let layout = try Layout(ProtocolConfig(groups: [[NodeID(0), NodeID(1), NodeID(2)]], senders: [NodeID(100)],
                                               slotsPerRing: 4, slotSize: 256))
        var limits = FabricLimits.inProcessDefault
        limits.sendQueueDepth = 4
        let fabric = InProcessFabric(schedule: .seeded(1, tearProbability: 0), limits: limits)
        let a = try fabric.makeEndpoint(NodeID(0))
        let b = try fabric.makeEndpoint(NodeID(1))
        _ = try b.register(Layout.ringRegion, length: layout.ringRegionSize, remoteAccess: .anyPeer)
        let engine = CountingEngine(peers: layout.servers.count + 1, depth: 4)
        let driver = FabricDriver(endpoint: a, layout: layout, engine: engine)
        func enqueue(_ n: Int) {
            for i in 0..<n {
                _ = engine.outbox.enqueue(1, region: Layout.ringRegion, offset: layout.flushOffset, length: 8) {
                    $0.storeBytes(of: UInt64(i), as: UInt64.self)
                }
            }
        }
        driver.attach(try a.connect(to: NodeID(1), timeout: .seconds(1)), to: NodeID(1))
        enqueue(4)
        try driver.pump()
        #expect(engine.outbox.posted(1) == 4)
        _ = fabric.deliver(from: NodeID(0), to: NodeID(1))   // lands; its completion waits to be polled

        driver.attach(try a.connect(to: NodeID(1), timeout: .seconds(1)), to: NodeID(1))
        engine.outbox.reset(1)
        enqueue(4)
        try driver.pump()   // posts 4 on the new connection, then polls the old one's completion
        #expect(engine.completions == 0)
        #expect(engine.outbox.retired(1) == 0)
        enqueue(4)
        try driver.pump()   // the queue is full until the new connection's own completion
        #expect(engine.outbox.posted(1) == 4)
        _ = fabric.deliver(from: NodeID(0), to: NodeID(1))
        try driver.pump()   // polls it
        try driver.pump()   // and posts into the room it returned
        #expect(engine.completions == 1)
        #expect(engine.outbox.posted(1) == 8)
    }
}
