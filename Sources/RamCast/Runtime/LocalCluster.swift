import RamCastFabric
import RamCastProtocol

/// A whole cluster in one process, driven by one thread: every group member and sender, each with its
/// own fabric endpoint. Used by the tests, the simulation, the demo and the local benchmark.
///
/// One polling thread drives all nodes in turn, so busy-polling nodes never starve each other on a
/// small machine, and over the in-process fabric a run is a deterministic function of its seed.
public final class LocalCluster {
    public let layout: Layout
    public private(set) var nodes: [ProcessNode] = []
    public private(set) var nodeByID: [NodeID: ProcessNode] = [:]

    /// Registers every node's regions on the endpoint `makeEndpoint` returns for it, then connects
    /// every pair that talks (a group member with every other process, a sender with every member),
    /// the lower node id initiating.
    public init(layout: Layout, connectTimeout: Duration = .seconds(10),
                makeEndpoint: (NodeID) throws(FabricError) -> any FabricEndpoint) throws(FabricError) {
        self.layout = layout
        for id in layout.servers + layout.config.senders {
            let node = try ProcessNode(id, layout: layout, endpoint: try makeEndpoint(id))
            nodes.append(node)
            nodeByID[id] = node
        }
        for node in nodes {
            for peer in node.peers where node.id < peer {
                let conn = try node.driver.endpoint.connect(to: peer, timeout: connectTimeout)
                node.driver.attach(conn, to: peer)
            }
        }
        // Acceptors learn their side of each connection from `.accepted` events.
        let clock = ContinuousClock()
        let start = clock.now
        while !nodes.allSatisfy({ n in n.peers.allSatisfy { n.driver.isConnected(to: $0) } }) {
            for n in nodes { n.driver.pollEvents() }
            if clock.now - start > connectTimeout {
                throw .timedOut(operation: "waiting for every connection to be accepted", seconds: Double(connectTimeout.components.seconds))
            }
        }
    }

    public var servers: [ProcessNode] { nodes.filter { $0.server != nil } }
    public var senders: [ProcessNode] { nodes.filter { $0.sender != nil } }

    /// Pumps every node once. `deliver` receives each delivery with the delivering node.
    @discardableResult
    public func pumpAll(_ deliver: (borrowing Delivery) -> Void) throws(FabricError) -> Bool {
        var progress = false
        for node in nodes { progress = try node.pump(deliver) || progress }
        return progress
    }
}
