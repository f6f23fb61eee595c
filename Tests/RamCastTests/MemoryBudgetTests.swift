import RamCast
import RamCastFabric
import RamCastInProcess
import RamCastProtocol
import Testing

@Suite("Memory a configuration needs, known before allocating")
struct MemoryBudgetTests {
    /// Tools check the memlock limit (RDMA) or the machine's memory (in-process) against
    /// `registeredBytes` before any region exists; it must be what `ProcessNode` then registers.
    @Test("registeredBytes is exactly what a process registers", arguments: [(1, 1, 1, 16, 256), (2, 3, 2, 8, 512), (3, 5, 3, 32, 1024)])
    func matchesRegistration(groups: Int, processes: Int, senders: Int, slots: Int, slotSize: Int) throws {
        var next: UInt32 = 0
        let members = (0..<groups).map { _ in (0..<processes).map { _ in defer { next += 1 }; return NodeID(next) } }
        let senderIDs = (0..<senders).map { _ in defer { next += 1 }; return NodeID(next) }
        let layout = try Layout(ProtocolConfig(groups: members, senders: senderIDs, slotsPerRing: slots, slotSize: slotSize))
        let fabric = InProcessFabric(schedule: .immediate)
        var total = 0
        for id in layout.servers + senderIDs {
            let endpoint = try fabric.makeEndpoint(id)
            let node = try ProcessNode(id, layout: layout, endpoint: endpoint)
            let predicted = ProcessNode.registeredBytes(id, layout: layout, sendQueueDepth: endpoint.limits.sendQueueDepth)
            #expect(endpoint.bytesRegistered == predicted, "node \(id)")
            total += endpoint.bytesRegistered
            _ = node
        }
        #expect(ProcessNode.registeredBytes(layout.servers + senderIDs, layout: layout, sendQueueDepth: fabric.limits.sendQueueDepth) == total)
    }

    @Test("the largest slots of the largest cluster still give a size, not an overflow")
    func largestLayoutHasASize() throws {
        let members = (0..<255).map { g in [NodeID(UInt32(g))] }
        let senders = (0..<0xFFFF).map { NodeID(UInt32(1000 + $0)) }
        // The most slots validation allows with the most senders: senders × slotsPerRing ≤ 2²⁴ (the
        // fast-path write tag's table index).
        let slots = (1 << 24) / senders.count
        var config = ProtocolConfig(groups: members, senders: senders, slotsPerRing: slots, slotSize: ProtocolConfig.maxSlotSize)
        config.maxDestinations = 1
        let layout = try Layout(config)
        let bytes = ProcessNode.registeredBytes(members[0][0], layout: layout, sendQueueDepth: 128)
        #expect(bytes > slots * 0xFFFF * ProtocolConfig.maxSlotSize)
        let total = ProcessNode.registeredBytes(layout.servers + senders, layout: layout, sendQueueDepth: 128)
        // Every server registers as much as the first, so a total below 255 of them has wrapped.
        #expect(total == .max || total >= 255 * bytes)
    }

    @Test("a slot size above the bound is refused by the protocol's validation, before any arithmetic")
    func slotSizeBound() {
        for size in [ProtocolConfig.maxSlotSize + 8, 1 << 40, Int.max - 7, -8] {
            let config = ProtocolConfig(groups: [[NodeID(0)]], senders: [NodeID(1)], slotSize: size)
            #expect(throws: ConfigError.self) { try config.validate() }
        }
    }
}
