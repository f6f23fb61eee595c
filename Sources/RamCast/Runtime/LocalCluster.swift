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

    /// Registers the regions of each node in `local` (default: every node of the layout) on the
    /// endpoint `makeEndpoint` returns for it, then connects every pair that talks (a group member
    /// with every other process, a sender with every member), the lower node id initiating. Peers in
    /// other OS processes may come up later: connecting retries until `connectTimeout`.
    ///
    /// With `restarted`, the local group members crashed before and run again with empty memory:
    /// each opens all of its connections itself, announcing the restart (see
    /// ``FabricEndpoint/announcesRestart``), and waits to be taken back in by its group.
    public init(layout: Layout, local: [NodeID]? = nil, connectTimeout: Duration = .seconds(10), restarted: Bool = false,
                makeEndpoint: (NodeID) throws -> any FabricEndpoint) throws {
        self.layout = layout
        for id in local ?? (layout.servers + layout.config.senders) {
            let node = restarted ? try Self.restartedNode(id, layout: layout, makeEndpoint: makeEndpoint)
                                 : try ProcessNode(id, layout: layout, endpoint: try makeEndpoint(id))
            nodes.append(node)
            nodeByID[id] = node
        }
        if restarted {
            for node in nodes { node.announceRestart(timeout: connectTimeout) }
            return
        }
        let clock = ContinuousClock()
        let deadline = clock.now + connectTimeout
        for node in nodes {
            for peer in node.peers where node.id < peer {
                while true {
                    do {
                        let conn = try node.driver.endpoint.connect(to: peer, timeout: max(.milliseconds(100), deadline - clock.now))
                        node.driver.attach(conn, to: peer)
                        break
                    } catch {
                        // A peer that is not listening yet refuses or does not answer: retry until the deadline.
                        guard clock.now < deadline else { throw error }
                        for n in nodes { n.driver.pollEvents() }
                        usleep(20_000)
                    }
                }
            }
        }
        // Acceptors learn their side of each connection from `.accepted` events.
        while !nodes.allSatisfy({ n in n.peers.allSatisfy { n.driver.isConnected(to: $0) } }) {
            for n in nodes { n.driver.pollEvents() }
            usleep(1000)   // accepts come from other threads or processes: don't starve them
            if clock.now > deadline {
                let missing = nodes.flatMap { n in n.peers.filter { !n.driver.isConnected(to: $0) }.map { "\(n.id)→\($0)" } }
                throw FabricError.timedOut(operation: "waiting for connections \(missing.prefix(8).joined(separator: ", "))",
                                seconds: Double(connectTimeout.components.seconds))
            }
        }
    }

    /// Brings back node `id`, which crashed (its endpoint is closed), as a new incarnation with empty
    /// memory on the endpoint `makeEndpoint` returns: it connects to every peer announcing its restart
    /// and waits to be taken back in by its group (``ServerEngine/rejoining``). Returns the new node,
    /// which replaces the old one in ``nodes``.
    @discardableResult
    public func restart(_ id: NodeID, connectTimeout: Duration = .milliseconds(200),
                        makeEndpoint: (NodeID) throws -> any FabricEndpoint) throws -> ProcessNode {
        guard let i = nodes.firstIndex(where: { $0.id == id }) else {
            throw FabricError.invalidRegion(Layout.ringRegion, reason: "\(id) is not a node of this cluster")
        }
        let node = try Self.restartedNode(id, layout: layout, makeEndpoint: makeEndpoint)
        node.clock = nodes[i].clock
        node.announceRestart(timeout: connectTimeout)
        nodes[i] = node
        nodeByID[id] = node
        return node
    }

    /// A group member's new incarnation, not yet connected (``ProcessNode/announceRestart(timeout:)``).
    private static func restartedNode(_ id: NodeID, layout: Layout,
                                      makeEndpoint: (NodeID) throws -> any FabricEndpoint) throws -> ProcessNode {
        guard layout.groupOf[id] != nil else {
            // A sender's message ids restart at 1 with it, which its destinations would take for
            // old messages: a restarted client joins under a new sender id instead.
            throw FabricError.invalidRegion(Layout.senderRegion, reason: "\(id) is a sender: only group members restart")
        }
        return try ProcessNode(id, layout: layout, endpoint: try makeEndpoint(id), rejoining: true)
    }

    /// Closes every node's endpoint: connections and registered memory are released.
    public func close() {
        for node in nodes { node.driver.endpoint.close() }
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

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
