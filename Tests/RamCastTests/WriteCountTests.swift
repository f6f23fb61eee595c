import RamCast
import RamCastFabric
import RamCastInProcess
import RamCastProtocol
import Testing

/// Writes per message per role, as the fabric counts them, against spec §5.3. One message in flight
/// at a time, so each process releases each slot with exactly one write.
///
/// With g destination groups of p processes (V1 of the notes, without leader acks, as in V2):
/// - sender: g·p bodies;
/// - leader: (p−1) proposals to its followers + (g−1) to the other leaders + (g−1)(p−1) forwards + 1 release;
/// - follower: g·p − 1 acks (its own is a local store) + 1 release.
/// Heartbeats (one 8-byte write per follower per heartbeat interval) come on top, per unit of time.
@Suite("Writes per message (spec §5.3)")
struct WriteCountTests {
    @Test("fabric-counted writes match the formulas", arguments: [(1, 3), (2, 3), (3, 3), (2, 5), (1, 1)])
    func counts(_ shape: (groups: Int, size: Int)) throws {
        let (g, p) = shape
        var next: UInt32 = 0
        let groups = (0..<g).map { _ in (0..<p).map { _ in defer { next += 1 }; return NodeID(next) } }
        let layout = try Layout(ProtocolConfig(groups: groups, senders: [NodeID(100)], slotsPerRing: 4, slotSize: 512))
        let fabric = InProcessFabric(schedule: .immediate)
        var endpoints: [NodeID: InProcessEndpoint] = [:]
        let cluster = try LocalCluster(layout: layout) { (id: NodeID) throws(FabricError) -> any FabricEndpoint in
            let e = try fabric.makeEndpoint(id)
            endpoints[id] = e
            return e
        }
        // A clock that stands still: heartbeats are per unit of time, not per message, and stay out
        // of these counts.
        for node in cluster.nodes { node.clock = { 1 } }
        let dst = (0..<g).map { GroupID(UInt8($0)) }
        let messages = 40
        var delivered = 0
        for i in 0..<messages {
            let id = try [UInt8(i)].withUnsafeBytes { b in try dst.withUnsafeBufferPointer { try cluster.senders[0].sender!.multicast(b, to: $0) } }
            #expect(id != nil)
            let want = (i + 1) * g * p
            var rounds = 0
            while delivered < want || fabric.pendingWrites > 0 || rounds < 3 {
                if try !cluster.pumpAll({ _ in delivered += 1 }) { rounds += 1 } else { rounds = 0 }
            }
        }
        #expect(delivered == messages * g * p)
        let m = UInt64(messages)
        #expect(endpoints[NodeID(100)]!.writesPosted == m * UInt64(g * p), "sender")
        for members in groups {
            let leader = UInt64((p - 1) + (g - 1) + (g - 1) * (p - 1) + 1)
            #expect(endpoints[members[0]]!.writesPosted == m * leader, "leader of \(members)")
            for f in members.dropFirst() {
                #expect(endpoints[f]!.writesPosted == m * UInt64(g * p - 1 + 1), "follower \(f)")
            }
        }
    }
}
