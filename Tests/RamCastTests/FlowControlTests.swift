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
}
