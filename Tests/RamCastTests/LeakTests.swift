import RamCast
import RamCastFabric
import RamCastInProcess
import RamCastProtocol
import Testing

@Suite("Resource lifetimes")
struct LeakTests {
    @Test("closing a cluster frees its in-process fabric, endpoints and engines")
    func clusterFreed() throws {
        weak var weakFabric: InProcessFabric?
        weak var weakEngine: ServerEngine?
        weak var weakEndpoint: InProcessEndpoint?
        do {
            let layout = try Layout(ProtocolConfig(groups: [[NodeID(0), NodeID(1), NodeID(2)]], senders: [NodeID(100)], slotsPerRing: 4, slotSize: 256))
            let fabric = InProcessFabric(schedule: .immediate)
            weakFabric = fabric
            let cluster = try LocalCluster(layout: layout) { (id: NodeID) throws(FabricError) -> any FabricEndpoint in
                let e = try fabric.makeEndpoint(id)
                if id == NodeID(1) { weakEndpoint = e }
                return e
            }
            weakEngine = cluster.servers[0].server
            let id = try [UInt8(1)].withUnsafeBytes { b in try [GroupID(0)].withUnsafeBufferPointer { try cluster.senders[0].sender!.multicast(b, to: $0) } }
            #expect(id != nil)
            for _ in 0..<20 { try cluster.pumpAll { _ in } }
            cluster.close()
        }
        #expect(weakEngine == nil, "engine leaked")
        #expect(weakEndpoint == nil, "endpoint leaked")
        #expect(weakFabric == nil, "fabric leaked")
    }
}
