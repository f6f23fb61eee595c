import RamCast
import RamCastChecker
import RamCastFabric
import RamCastInProcess
@testable import RamCastProtocol
import RamCastSimulation

/// A cluster on a fabric where no write lands until the test says so: scripted interleavings for
/// named regression tests. Nodes 0-2 form group 0, 3-5 group 1, senders are 100 and 101.
final class ScriptedCluster {
    let fabric = InProcessFabric(schedule: .seeded(0, tearProbability: 0))
    let layout: Layout
    let cluster: LocalCluster
    let recorder: HistoryRecorder
    var delivered: [NodeID: [RamCastProtocol.MessageID]] = [:]
    var finals: [NodeID: [RamCastProtocol.Timestamp]] = [:]
    /// Virtual time in nanoseconds: `settle` advances it, so heartbeats and failure timeouts run.
    var now: UInt64 = 1
    var dead: Set<NodeID> = []
    var sent: [(RamCastProtocol.MessageID, [RamCastProtocol.GroupID])] = []

    #if DEBUG
    /// With `fixes`, some spec §10 fixes turned off (a debug-only engine hook, `RegressionTests`).
    convenience init(fixes: SafetyFixes, fastPath: Bool = false, slotsPerRing: Int = 16) throws {
        try self.init(fastPath: fastPath, slotsPerRing: slotsPerRing)
        for node in cluster.servers { node.server!.fixes = fixes }
    }
    #endif

    /// `wrap` may replace a node's endpoint with a test double around it (a fabric that fails).
    init(fastPath: Bool = false, slotsPerRing: Int = 16, counterStart: CounterStart = CounterStart(),
         wrap: @escaping (InProcessEndpoint) -> any FabricEndpoint = { $0 }) throws {
        var config = ProtocolConfig(groups: [[NodeID(0), NodeID(1), NodeID(2)], [NodeID(3), NodeID(4), NodeID(5)]],
                                    senders: [NodeID(100), NodeID(101)], slotsPerRing: slotsPerRing, slotSize: 256)
        config.heartbeatInterval = 100_000
        config.failureTimeout = 5_000_000
        config.singleGroupFastPath = fastPath
        config.counterStart = counterStart
        layout = try Layout(config)
        let fabric = self.fabric
        cluster = try LocalCluster(layout: layout) { (id: NodeID) throws(FabricError) -> any FabricEndpoint in
            wrap(try fabric.makeEndpoint(id))
        }
        recorder = HistoryRecorder(layout: layout)
        for node in cluster.servers {
            node.server!.tracer = recorder
        }
        for node in cluster.nodes { node.clock = { [unowned self] in self.now } }
    }

    /// Crash-stops a process: its writes still in flight are lost, it never runs again.
    func crash(_ id: Int, landing: Int? = 0) {
        let node = NodeID(UInt32(id))
        fabric.crash(node, landing: landing)
        dead.insert(node)
        recorder.crashed(node)
    }

    /// Deliveries of incarnations that crashed and were restarted since, per node, oldest first.
    var earlierDeliveries: [NodeID: [[RamCastProtocol.MessageID]]] = [:]

    /// Restarts a crashed process as a new incarnation with empty memory: it connects to everyone
    /// announcing the restart and waits to be taken back in by its group.
    func restart(_ id: Int) throws {
        let node = NodeID(UInt32(id))
        let fabric = self.fabric
        let fresh = try cluster.restart(node) { (id: NodeID) throws(FabricError) -> any FabricEndpoint in
            try fabric.makeEndpoint(id)
        }
        fresh.server!.tracer = recorder
        fresh.clock = { [unowned self] in self.now }
        recorder.restarted(node)
        earlierDeliveries[node, default: []].append(delivered[node] ?? [])
        delivered[node] = []
        finals[node] = []
        dead.remove(node)
    }

    func server(_ id: Int) -> ServerEngine { cluster.nodeByID[NodeID(UInt32(id))]!.server! }

    /// Runs one engine step of `id` without posting its writes (they die with it if it crashes next).
    func pollOnly(_ id: Int) {
        cluster.nodeByID[NodeID(UInt32(id))]!.server!.poll { d in
            recorder.delivered(d)
            delivered[d.process, default: []].append(d.id)
            finals[d.process, default: []].append(d.finalTimestamp)
        }
    }

    /// Whether every surviving member of every destination delivered every message sent (a
    /// restarted one, every message after its cut in another member's order).
    var everyoneDelivered: Bool {
        sent.allSatisfy { id, dst in
            dst.allSatisfy { g in layout.members(of: g).allSatisfy { dead.contains($0) || delivered[$0, default: []].contains(id) || beforeCut($0, id) } }
        }
    }

    /// Whether restarted process `q` is excused from `id`: another member delivered it at or before
    /// `q`'s cut.
    func beforeCut(_ q: NodeID, _ id: RamCastProtocol.MessageID) -> Bool {
        guard earlierDeliveries[q] != nil, let engine = cluster.nodeByID[q]?.server, !engine.rejoining else { return false }
        guard let cut = engine.joinedAfter else { return false }
        for p in layout.members(of: layout.groupOf[q]!) where p != q {
            let order = (earlierDeliveries[p]?.flatMap { $0 } ?? []) + (delivered[p] ?? [])
            if let end = order.firstIndex(of: cut) { return order[...end].contains(id) }
        }
        return false
    }

    func pump(_ ids: Int...) throws {
        for id in ids {
            try cluster.nodeByID[NodeID(UInt32(id))]!.pump { d in
                recorder.delivered(d)
                delivered[d.process, default: []].append(d.id)
                finals[d.process, default: []].append(d.finalTimestamp)
            }
        }
    }

    func deliver(_ from: Int, _ to: Int...) {
        for t in to { fabric.deliver(from: NodeID(UInt32(from)), to: NodeID(UInt32(t))) }
    }

    /// Pumps every node and lands every write, except writes `from → to` listed in `holding`, until
    /// nothing moves (and `done` holds). With `quiet: false`, it stops at the first round after which
    /// `done` holds, moving or not.
    func settle(holding: [(Int, Int)] = [], quiet: Bool = true, until done: (() -> Bool)? = nil) throws {
        let ids = cluster.nodes.map(\.id)
        for _ in 0..<10_000 {
            now += 50_000
            var moved = 0
            for n in cluster.nodes where !dead.contains(n.id) {
                if try n.pump({ d in
                    recorder.delivered(d)
                    delivered[d.process, default: []].append(d.id)
                    finals[d.process, default: []].append(d.finalTimestamp)
                }) { moved += 1 }
            }
            for a in ids {
                for b in ids where a != b && !holding.contains(where: { NodeID(UInt32($0.0)) == a && NodeID(UInt32($0.1)) == b }) {
                    moved += fabric.deliver(from: a, to: b)
                }
            }
            if let done {
                if done() && (moved == 0 || !quiet) { return }
            } else if moved == 0 {
                return
            }
        }
    }

    func send(_ sender: Int, to groups: [UInt8], payload: [UInt8] = [1, 2, 3]) throws -> RamCastProtocol.MessageID {
        let s = cluster.nodeByID[NodeID(UInt32(sender))]!.sender!
        let dst = groups.map { RamCastProtocol.GroupID($0) }
        let id = try payload.withUnsafeBytes { p in try dst.withUnsafeBufferPointer { try s.multicast(p, to: $0) } }!
        recorder.multicast(id, destinations: dst)
        sent.append((id, dst))
        try pump(sender)
        return id
    }

    func check() -> CheckReport {
        RamCastChecker.check(recorder.history, membership: recorder.membership, quiescent: true)
    }
}
