import RamCastFabric
import RamCastProtocol

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension ProcessNode {
    /// Bytes that ``init(_:layout:endpoint:rejoining:)`` registers for `id` on an endpoint with a send
    /// queue of `sendQueueDepth`: the outbox cells and recovery scratch, then the ring and log of a
    /// group member or the staging region of a sender. A tool compares the sum over the processes it
    /// hosts with the memlock limit (RDMA) or the machine's memory (in-process fabric) before it
    /// allocates anything, so a configuration too large to run is refused up front, with the numbers,
    /// rather than failing half-way through registration or aborting in the allocator.
    public static func registeredBytes(_ id: NodeID, layout: Layout, sendQueueDepth: Int) -> Int {
        let peers = layout.servers.count + layout.config.senders.count
        let limits = FabricLimits(maxInlineBytes: 0, sendQueueDepth: sendQueueDepth, completionQueueDepth: 0, maxWriteBytes: 0)
        // Every process's cells region carries the recovery scratch, senders' too (see init).
        let cells = Outbox.cellBytes(peers: peers, capacity: outboxCapacity(limits, layout: layout)) + ServerEngine.recoveryScratchSize(layout)
        if layout.groupOf[id] != nil { return cells + layout.ringRegionSize + layout.logRegionSize }
        return cells + layout.senderRegionSize
    }

    /// The sum of ``registeredBytes(_:layout:sendQueueDepth:)`` over `nodes`, saturating at `Int.max`.
    public static func registeredBytes(_ nodes: [NodeID], layout: Layout, sendQueueDepth: Int) -> Int {
        var total = 0
        for id in nodes {
            let (sum, overflow) = total.addingReportingOverflow(registeredBytes(id, layout: layout, sendQueueDepth: sendQueueDepth))
            if overflow { return .max }
            total = sum
        }
        return total
    }

    /// The machine's physical memory in bytes (nil if unknown): the in-process fabric's regions are
    /// ordinary allocations, and asking for more than this aborts in the allocator.
    public static var physicalMemory: Int? {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), size = sysconf(Int32(_SC_PAGESIZE))
        guard pages > 0, size > 0 else { return nil }
        return pages.multipliedReportingOverflow(by: size).overflow ? nil : pages * size
    }
}
