import RamCastFabric
import RamCastProtocol

/// One process of a cluster, wired to its fabric endpoint: its registered regions, its engine and
/// the driver that carries the engine's writes.
public final class ProcessNode {
    public enum Role {
        case server(ServerEngine)
        case sender(SenderEngine)
    }

    public let id: NodeID
    public let role: Role
    public let driver: FabricDriver
    public let layout: Layout

    public var server: ServerEngine? { if case .server(let e) = role { e } else { nil } }
    public var sender: SenderEngine? { if case .sender(let e) = role { e } else { nil } }

    /// Outbox ring size per peer: the send queue plus room for a burst the engine queues at once.
    static func outboxCapacity(_ limits: FabricLimits) -> Int { max(256, limits.sendQueueDepth * 2) }

    /// Registers `id`'s regions on `endpoint` and builds its engine. Grants are made here too: a group
    /// member lets its own group's leader and every other group's leader write its log region.
    public init(_ id: NodeID, layout: Layout, endpoint: any FabricEndpoint) throws(FabricError) {
        self.id = id
        self.layout = layout
        let peers = layout.servers.count + layout.config.senders.count
        let capacity = Self.outboxCapacity(endpoint.limits)
        let inline = min(layout.config.inlineThreshold, endpoint.limits.maxInlineBytes)
        // Nobody writes the cells remotely: `.grantedPeers` with no grant makes a stray write fail loudly.
        let cells = try endpoint.register(Layout.cellsRegion, length: Outbox.cellBytes(peers: peers, capacity: capacity), remoteAccess: .grantedPeers)
        let outbox = Outbox(peers: peers, capacity: capacity, cells: cells.base, inlineThreshold: inline,
                            sendQueueDepth: endpoint.limits.sendQueueDepth, signalInterval: layout.config.signalInterval)
        let engine: any DrivenEngine
        if layout.groupOf[id] != nil {
            let ring = try endpoint.register(Layout.ringRegion, length: layout.ringRegionSize, remoteAccess: .anyPeer)
            let log = try endpoint.register(Layout.logRegion, length: layout.logRegionSize, remoteAccess: .grantedPeers)
            let server = ServerEngine(layout: layout, me: id, ring: ring.base, log: log.base, outbox: outbox)
            for (g, members) in layout.config.groups.enumerated() {
                let leader = members[server.leaders[g]]
                if leader != id { try endpoint.grantWrite(Layout.logRegion, to: leader) }
            }
            role = .server(server)
            engine = server
        } else if layout.senderIndexOf[id] != nil {
            let region = try endpoint.register(Layout.senderRegion, length: layout.senderRegionSize, remoteAccess: .anyPeer)
            let sender = SenderEngine(layout: layout, me: id, region: region.base, outbox: outbox)
            role = .sender(sender)
            engine = sender
        } else {
            throw .invalidRegion(Layout.ringRegion, reason: "\(id) is neither a group member nor a sender in the configuration")
        }
        driver = FabricDriver(endpoint: endpoint, layout: layout, engine: engine)
    }

    /// The peers this process talks to: servers talk to everyone, senders to servers.
    public var peers: [NodeID] {
        switch role {
        case .server: layout.servers.filter { $0 != id } + layout.config.senders
        case .sender: layout.servers
        }
    }

    /// Set while a caller waits for a multicast's bodies to be in place (step 1 complete).
    public var flushForWaiters = false

    /// One round: connection events, the engine's work, posting and completions. Deliveries go to
    /// `deliver`. Returns whether anything happened.
    @discardableResult
    public func pump(_ deliver: (borrowing Delivery) -> Void) throws(FabricError) -> Bool {
        driver.pollEvents()
        var progress = false
        if case .server(let engine) = role {
            progress = engine.poll(deliver)
        } else if flushForWaiters, case .sender(let engine) = role, engine.awaitingInPlace {
            // Selective signaling can leave the last writes unretired: one signaled write retires
            // them, so a waiting multicast learns that its body is in place.
            for peer in 0..<layout.servers.count where engine.outbox.needsFlush(peer) {
                engine.outbox.flush(peer, region: Layout.ringRegion, offset: layout.flushOffset)
            }
        }
        return try driver.pump() || progress
    }
}
