import Logging
import RamCastFabric
import Testing
@testable import RamCastRDMA

/// ``FabricEndpoint/announcesRestart`` over rdma_cm: the flag in the REQ's private data turns the
/// acceptor's event into `.restarted`, and an announcing endpoint refuses connection requests.
@Suite("RDMA restart announcement", .serialized)
struct RDMARestartTests {
    @Test("an announcing connector reaches the peer as .restarted, carries writes, and reconnects as .accepted once cleared",
          .enabled(if: RDMATestSetup.hasDevice, RDMATestSetup.needsDevice))
    func restartedThenAccepted() throws {
        let (a, b) = try RDMATestSetup.pair()
        defer { a.close(); b.close() }
        let atA = try a.register(RegionID(0), length: 4096, remoteAccess: .anyPeer)
        let atB = try b.register(RegionID(0), length: 4096, remoteAccess: .anyPeer)

        a.announcesRestart = true
        #expect(a.announcesRestart)
        let conn = try a.connect(to: NodeID(2), timeout: .seconds(10))
        let first = try b.waitEvent("the restarted peer's connection") {
            switch $0 {
            case .restarted(_, NodeID(1)), .accepted(_, NodeID(1)): return true
            default: return false
            }
        }
        guard case .restarted(let back, let peer) = first else {
            Issue.record("expected .restarted from node 1, got \(first)")
            return
        }
        #expect(peer == NodeID(1))
        #expect(b.peer(of: back) == NodeID(1))

        // The connection is an ordinary one in both directions.
        try a.writeWord(0xA1, id: 1, region: RegionID(0), offset: 0, flags: .signaled, on: conn)
        #expect(try a.completion(of: 1).status == .success)
        #expect(word(atB, 0) == 0xA1)
        try b.writeWord(0xB1, id: 2, region: RegionID(0), offset: 8, flags: .signaled, on: back)
        #expect(try b.completion(of: 2).status == .success)
        #expect(word(atA, 8) == 0xB1)

        // Every connection open: the announcement ends, and later reconnections are ordinary.
        a.announcesRestart = false
        a.disconnect(conn)
        _ = try b.waitEvent("the first connection's disconnect") {
            if case .disconnected(back, NodeID(1), _) = $0 { return true }
            return false
        }
        let again = try a.connect(to: NodeID(2), timeout: .seconds(10))
        let second = try b.waitEvent("the reconnection") {
            switch $0 {
            case .restarted(_, NodeID(1)), .accepted(_, NodeID(1)): return true
            default: return false
            }
        }
        guard case .accepted(let back2, NodeID(1)) = second else {
            Issue.record("expected .accepted from node 1 after the announcement ended, got \(second)")
            return
        }
        try a.writeWord(0xA2, id: 3, region: RegionID(0), offset: 16, flags: .signaled, on: again)
        #expect(try a.completion(of: 3).status == .success)
        #expect(word(atB, 16) == 0xA2)
        #expect(back2 != back)
    }

    @Test("an announcing endpoint rejects connection requests with a reason naming the restart, and accepts once cleared",
          .enabled(if: RDMATestSetup.hasDevice, RDMATestSetup.needsDevice))
    func announcingRefusesIncoming() throws {
        let (a, b) = try RDMATestSetup.pair()
        defer { a.close(); b.close() }
        _ = try a.register(RegionID(0), length: 4096, remoteAccess: .anyPeer)

        a.announcesRestart = true
        let error = caught { _ = try b.connect(to: NodeID(1), timeout: .seconds(10)) }
        guard case .rejected(let peer, let address, let reason)? = error else {
            Issue.record("expected .rejected, got \(String(describing: error))")
            return
        }
        #expect(peer == NodeID(1))
        #expect(address == a.listenAddress.description)
        #expect(reason.contains("node 1 restarted and is still announcing itself"))
        print("RDMA-INFO refused while announcing: \(error!)")
        #expect(a.pollEvent() == nil, "a refused request must not surface at the announcing endpoint")

        a.announcesRestart = false
        let conn = try b.connect(to: NodeID(1), timeout: .seconds(10))
        let back = try a.acceptedConnection(from: NodeID(2))
        try b.writeWord(0xB0, id: 1, region: RegionID(0), offset: 0, flags: .signaled, on: conn)
        #expect(try b.completion(of: 1).status == .success)
        #expect(a.peer(of: back) == NodeID(2))
    }
}
