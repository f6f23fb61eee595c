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

    init(fixes: SafetyFixes = .all) throws {
        let config = ProtocolConfig(groups: [[NodeID(0), NodeID(1), NodeID(2)], [NodeID(3), NodeID(4), NodeID(5)]],
                                    senders: [NodeID(100), NodeID(101)], slotsPerRing: 16, slotSize: 256)
        layout = try Layout(config)
        let fabric = self.fabric
        cluster = try LocalCluster(layout: layout) { (id: NodeID) throws(FabricError) -> any FabricEndpoint in
            try fabric.makeEndpoint(id)
        }
        recorder = HistoryRecorder(layout: layout)
        for node in cluster.servers {
            node.server!.tracer = recorder
            node.server!.fixes = fixes
        }
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
    /// nothing moves.
    func settle(holding: [(Int, Int)] = []) throws {
        let ids = cluster.nodes.map(\.id)
        for _ in 0..<10_000 {
            var moved = 0
            for n in cluster.nodes {
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
            if moved == 0 { return }
        }
    }

    func send(_ sender: Int, to groups: [UInt8], payload: [UInt8] = [1, 2, 3]) throws -> RamCastProtocol.MessageID {
        let s = cluster.nodeByID[NodeID(UInt32(sender))]!.sender!
        let dst = groups.map { RamCastProtocol.GroupID($0) }
        let id = try payload.withUnsafeBytes { p in try dst.withUnsafeBufferPointer { try s.multicast(p, to: $0) } }!
        recorder.multicast(id, destinations: dst)
        try pump(sender)
        return id
    }

    func check() -> CheckReport {
        RamCastChecker.check(recorder.history, membership: recorder.membership, quiescent: true)
    }
}
