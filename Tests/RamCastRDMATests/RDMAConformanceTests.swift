import RamCastFabric
import RamCastFabricConformance
import Testing
@testable import RamCastRDMA

/// Runs the shared conformance scenarios over real verbs: every endpoint in this process on one
/// device, each listening on its own rdma_cm port.
final class RDMAHarness: FabricHarness {
    let name = "rdma \(RDMATestSetup.device ?? "?")"
    private var endpoints: [RDMAEndpoint] = []
    private var directory: [NodeID: RDMAAddress] = [:]
    let unreachablePeer = NodeID(77)

    func makeEndpoints(_ nodes: [NodeID]) throws -> [any FabricEndpoint] {
        directory = [unreachablePeer: RDMAAddress(host: RDMATestSetup.silentAddress, port: RDMATestSetup.nextPort())]
        for n in nodes { directory[n] = RDMAAddress(host: RDMATestSetup.address, port: RDMATestSetup.nextPort()) }
        let made = try nodes.map { try RDMATestSetup.endpoint($0.rawValue, directory) }
        endpoints += made
        return made
    }

    func makeOutsider(_ node: NodeID) throws -> any FabricEndpoint {
        var d = directory
        d[node] = RDMAAddress(host: RDMATestSetup.address, port: RDMATestSetup.nextPort())
        let e = try RDMATestSetup.endpoint(node.rawValue, d)
        endpoints.append(e)
        return e
    }

    func progress() {}

    /// Each RDMAEndpoint is confined to the thread that drives it, not to one thread for all.
    var endpointsOnSeparateThreads: Bool { true }

    func tearDown() {
        for e in endpoints { e.close() }
        endpoints.removeAll()
    }
}

@Suite("Fabric conformance: RDMA", .serialized)
struct RDMAConformanceTests {
    @Test("RDMA fabric", .enabled(if: RDMATestSetup.hasDevice, RDMATestSetup.needsDevice),
          arguments: FabricConformance.Scenario.allCases)
    func conformance(_ scenario: FabricConformance.Scenario) throws {
        try FabricConformance.run(scenario, on: RDMAHarness())
    }
}
