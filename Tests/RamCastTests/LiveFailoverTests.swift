import RamCast
import RamCastFabric
import RamCastInProcess
import RamCastProtocol
import Testing

/// A leader crash under continuous load on the immediate in-process fabric (what the benchmark's
/// `--crash-leader-after` does), with the real clock driving failure detection.
@Suite("Failover under load")
struct LiveFailoverTests {
    @Test("the stream continues after group 0's leader crashes")
    func streamContinues() throws {
        var config = ProtocolConfig(groups: [[NodeID(0), NodeID(1), NodeID(2)], [NodeID(3), NodeID(4), NodeID(5)]],
                                    senders: [NodeID(100)], slotsPerRing: 16, slotSize: 256)
        config.failureTimeout = 20_000_000
        config.slotSize = 192
        let layout = try Layout(config)
        let fabric = InProcessFabric(schedule: .immediate)
        let cluster = try LocalCluster(layout: layout) { (id: NodeID) throws(FabricError) -> any FabricEndpoint in try fabric.makeEndpoint(id) }
        var delivered: [NodeID: Int] = [:]
        var sent = 0
        var ids: [MessageID] = []
        var crashed = false
        let clock = ContinuousClock()
        let start = clock.now
        let dst = [GroupID(0), GroupID(1)]
        // Until every survivor delivered all 600: stopping at one of them left the last releases
        // of the others unread when the machine was loaded.
        let survivors = (1...5).map { NodeID(UInt32($0)) }
        while survivors.contains(where: { (delivered[$0] ?? 0) < 600 }), clock.now - start < .seconds(20) {
            let payload = [UInt8](repeating: 7, count: 64)
            let engine = cluster.senders[0].sender!
            let done = ids.filter { engine.isDeliveredEverywhere($0) }.count
            if sent < 600, sent - done < 8,
               let id = try payload.withUnsafeBytes({ b in try dst.withUnsafeBufferPointer { try engine.multicast(b, to: $0) } }) {
                sent += 1
                ids.append(id)
            }
            if !crashed, (delivered[NodeID(0)] ?? 0) >= 200 {
                fabric.crash(NodeID(0))
                crashed = true
            }
            for n in cluster.nodes where !(crashed && n.id == NodeID(0)) {
                try n.pump { d in delivered[d.process, default: 0] += 1 }
            }
        }
        #expect(crashed)
        let engine = cluster.senders[0].sender!
        #expect(ids.allSatisfy { engine.isDeliveredEverywhere($0) }, "the sender still waits for \(ids.filter { !engine.isDeliveredEverywhere($0) })")
        for q in survivors {
            #expect(delivered[q] == 600, "\(q) delivered \(delivered[q] ?? 0) of 600; \(cluster.nodeByID[NodeID(1)]!.server!.debugDescription)")
        }
    }
}
