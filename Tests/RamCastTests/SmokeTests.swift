import RamCast
import RamCastFabric
import RamCastInProcess
import RamCastProtocol
import Testing

@Suite("Normal case smoke")
struct SmokeTests {
    @Test("2 groups × 3, 2 senders, immediate fabric: every message delivered once at every destination")
    func smoke() throws {
        let config = ProtocolConfig(groups: [[NodeID(0), NodeID(1), NodeID(2)], [NodeID(3), NodeID(4), NodeID(5)]],
                                    senders: [NodeID(10), NodeID(11)], slotsPerRing: 8, slotSize: 256)
        let layout = try Layout(config)
        let fabric = InProcessFabric(schedule: .seeded(1, tearProbability: 0.3))
        let cluster = try LocalCluster(layout: layout) { (id: NodeID) throws(FabricError) -> any FabricEndpoint in
            try fabric.makeEndpoint(id)
        }
        var delivered: [NodeID: [MessageID]] = [:]
        var sent: [MessageID: [GroupID]] = [:]
        let total = 200
        var rng = SplitMix64(seed: 5)
        var k = 0
        var steps = 0
        while delivered.values.reduce(0, { $0 + $1.count }) < sent.values.reduce(0, { $0 + $1.count * 3 }) || k < total {
            if k < total {
                let s = cluster.senders[Int(rng.next() % 2)].sender!
                let dst: [GroupID] = switch rng.next() % 3 { case 0: [GroupID(0)]; case 1: [GroupID(1)]; default: [GroupID(0), GroupID(1)] }
                let payload = [UInt8](repeating: UInt8(k & 0xFF), count: 1 + Int(rng.next() % 100))
                let id = try payload.withUnsafeBytes { p in try dst.withUnsafeBufferPointer { try s.multicast(p, to: $0) } }
                if let id { sent[id] = dst; k += 1 }
            }
            try cluster.pumpAll { d in delivered[d.process, default: []].append(d.id) }
            for _ in 0..<Int(rng.next() % 20) { fabric.step() }
            steps += 1
            if steps > 2_000_000 { break }
        }
        #expect(k == total)
        for node in cluster.servers {
            let g = layout.groupOf[node.id]!
            let want = sent.filter { $0.value.contains(g) }.count
            #expect(delivered[node.id, default: []].count == want, "\(node.id) delivered \(delivered[node.id, default: []].count) of \(want)")
            #expect(Set(delivered[node.id, default: []]).count == delivered[node.id, default: []].count)
        }
        // Same order within a group.
        for g in 0..<2 {
            let members = layout.config.groups[g]
            let first = delivered[members[0], default: []]
            for m in members.dropFirst() { #expect(delivered[m, default: []] == first) }
        }
    }
}
