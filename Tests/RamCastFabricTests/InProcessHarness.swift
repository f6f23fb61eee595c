import RamCastFabric
import RamCastFabricConformance
import RamCastInProcess

/// Runs the conformance scenarios on the in-process fabric, either immediate or seeded.
final class InProcessHarness: FabricHarness {
    let fabric: InProcessFabric
    let name: String
    private var members: Set<NodeID> = []
    /// Scheduler steps per `progress()` call: a few, so that the scenarios observe intermediate states.
    private let stepsPerProgress: Int

    init(schedule: InProcessFabric.Schedule, stepsPerProgress: Int = 3) {
        fabric = InProcessFabric(schedule: schedule)
        self.stepsPerProgress = stepsPerProgress
        switch schedule {
        case .immediate: name = "in-process immediate"
        case .seeded(let seed, let tear): name = "in-process seed \(seed) tear \(tear)"
        }
    }

    func makeEndpoints(_ nodes: [NodeID]) throws -> [any FabricEndpoint] {
        members.formUnion(nodes)
        return try nodes.map { try fabric.makeEndpoint($0, acceptsFrom: Set(nodes)) }
    }

    func makeOutsider(_ node: NodeID) throws -> any FabricEndpoint {
        try fabric.makeEndpoint(node, acceptsFrom: [])
    }

    var unreachablePeer: NodeID { NodeID(77) }

    func progress() {
        for _ in 0..<stepsPerProgress where fabric.step() {}
    }

    func tearDown() {}
}
