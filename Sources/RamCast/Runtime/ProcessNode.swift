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

    /// Outbox ring size per peer: the send queue plus the largest burst the engine queues at once
    /// without asking for room. That is a new leader's recovery section, which fits a follower's log
    /// ring (`Layout.logCapacity` entries), or a sender's resume of a restarted member (its resume
    /// word and up to a ring of bodies, `SenderEngine.peerRestarted`), which is smaller.
    static func outboxCapacity(_ limits: FabricLimits, layout: Layout) -> Int {
        max(256, limits.sendQueueDepth * 2 + layout.logCapacity, layout.slots + 1)
    }

    /// Registers `id`'s regions on `endpoint` and builds its engine. Grants are made here too: a group
    /// member lets its own group's leader and every other group's leader write its log region.
    ///
    /// With `rejoining`, the process restarted after a crash: its engine starts empty and waits to be
    /// taken back in by its group (see ``ServerEngine/rejoining``), and its log grants nobody of its
    /// own group (the ballot that takes it in grants its leader).
    public init(_ id: NodeID, layout: Layout, endpoint: any FabricEndpoint, rejoining: Bool = false) throws(FabricError) {
        self.id = id
        self.layout = layout
        let peers = layout.servers.count + layout.config.senders.count
        let capacity = Self.outboxCapacity(endpoint.limits, layout: layout)
        let inline = min(layout.config.inlineThreshold, endpoint.limits.maxInlineBytes)
        // Nobody writes the cells remotely: `.grantedPeers` with no grant makes a stray write fail loudly.
        let cellBytes = Outbox.cellBytes(peers: peers, capacity: capacity)
        let cells = try endpoint.register(Layout.cellsRegion, length: cellBytes + ServerEngine.recoveryScratchSize(layout),
                                          remoteAccess: .grantedPeers)
        let outbox = Outbox(peers: peers, capacity: capacity, cells: cells.base, inlineThreshold: inline,
                            sendQueueDepth: endpoint.limits.sendQueueDepth, signalInterval: layout.config.signalInterval)
        let engine: any DrivenEngine
        if layout.groupOf[id] != nil {
            let ring = try endpoint.register(Layout.ringRegion, length: layout.ringRegionSize, remoteAccess: .anyPeer)
            let log = try endpoint.register(Layout.logRegion, length: layout.logRegionSize, remoteAccess: .grantedPeers)
            let server = ServerEngine(layout: layout, me: id, ring: ring.base, log: log.base,
                                      recoveryScratch: cells.base + cellBytes, outbox: outbox, rejoining: rejoining)
            for (g, members) in layout.config.groups.enumerated() {
                if rejoining, members.contains(id) { continue }
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
    public var flushForWaiters: Bool { unsafeAddress { flushForWaitersCell.readAddress } unsafeMutableAddress { flushForWaitersCell.address } }

    /// The clock the engine's failure detection reads, in nanoseconds. The simulation replaces it
    /// with virtual time.
    public var clock: () -> UInt64 {
        get { clockCell.address.pointee.read }
        set { clockCell.address.pointee.read = newValue }
    }

    // Read on every pump: in FixedCells (see RamCastProtocol's FixedCell) rather than stored vars,
    // which would pay a dynamic exclusivity check on each access. The clock is wrapped in a struct:
    // a FixedCell cannot hold a function value directly.
    let flushForWaitersCell = FixedCell(false)
    struct ClockSource { var read: () -> UInt64 }
    let clockCell = FixedCell(ClockSource(read: { DispatchTimeLite.nanoseconds() }))

    deinit {
        flushForWaitersCell.deallocate()
        clockCell.deallocate()
    }

    /// How long re-establishing a dropped connection may take before its peer is declared gone.
    public var reconnectTimeout: Duration = .milliseconds(200)

    /// One round: connection events, the engine's work, posting and completions. Deliveries go to
    /// `deliver`. Returns whether anything happened.
    @discardableResult
    public func pump(_ deliver: (borrowing Delivery) -> Void) throws(FabricError) -> Bool {
        driver.pollEvents { event in
            switch event {
            case .disconnected(let conn, let peer, _): connectionLost(conn, peer: peer)
            case .restarted(_, let peer): peerRestarted(peer)
            default: break
            }
        }
        var progress = false
        if case .server(let engine) = role {
            engine.now = clock()
            progress = engine.poll(deliver)
            if let race = driver.racePointCell.readAddress.pointee { race(.afterPoll) }
            applyPermissions(engine)
            if let race = driver.racePointCell.readAddress.pointee { race(.afterPermissions) }
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

extension ProcessNode {
    /// A connection died. If it was the current one to that peer, try once to connect again: a peer
    /// that answers lost only the writes in flight (the engine re-sends what it must); a peer that
    /// does not is gone, and the engine stops waiting for it.
    func connectionLost(_ conn: ConnectionID, peer node: NodeID) {
        guard let p = driver.peerIndex(of: node), driver.connectionOfPeer[p] == conn else { return }
        driver.connectionOfPeer[p] = nil
        let outbox = server?.outbox ?? sender!.outbox
        do {
            let fresh = try driver.endpoint.connect(to: node, timeout: reconnectTimeout)
            driver.attach(fresh, to: node)
            outbox.reset(p)
            server?.resync(peer: p)
        } catch {
            outbox.markDead(p)
            server?.peerCrashed(node)
        }
    }

    /// A peer restarted (its new incarnation connected, and the driver attached the connection):
    /// what was queued for the old one is void, and the engine takes the newcomer back.
    func peerRestarted(_ node: NodeID) {
        guard let p = driver.peerIndex(of: node), layout.serverIndexOf[node] != nil else { return }
        switch role {
        case .server(let engine):
            engine.outbox.revive(p)
            engine.peerRestarted(node)
            engine.resync(peer: p, restarted: true)
        case .sender(let engine):
            engine.peerRestarted(server: p)
        }
    }

    /// Opens this restarted process's connections to every peer, announcing the restart (see
    /// ``FabricEndpoint/announcesRestart``). A peer that does not answer is gone: the engine stops
    /// waiting for it. Nobody connects to it meanwhile, so no peer takes it for its old incarnation.
    public func announceRestart(timeout: Duration) {
        driver.endpoint.announcesRestart = true
        defer { driver.endpoint.announcesRestart = false }
        for peer in peers {
            guard let p = driver.peerIndex(of: peer) else { continue }
            do {
                let conn = try driver.endpoint.connect(to: peer, timeout: timeout)
                driver.attach(conn, to: peer)
            } catch {
                let outbox = server?.outbox ?? sender!.outbox
                outbox.markDead(p)
                server?.peerCrashed(peer)
            }
        }
    }

    /// Grants and revocations of write access to the log region that the engine decided (phase 1A),
    /// reported back to it: it answers a 1A only once they succeeded. A failure is kept in
    /// ``FabricDriver/problems`` and the engine's ``ServerEngine/permissionFaults``, and that 1A
    /// stays unanswered (fail closed: the old leader may still be able to write here).
    func applyPermissions(_ engine: ServerEngine) {
        guard !engine.permissionRequests.isEmpty else { return }
        var failures: [(request: PermissionRequest, reason: String)] = []
        for request in engine.permissionRequests {
            do {
                if request.grant {
                    try driver.endpoint.grantWrite(Layout.logRegion, to: request.node)
                } else {
                    try driver.endpoint.revokeWrite(Layout.logRegion, from: request.node)
                }
            } catch {
                let reason = "\(request.grant ? "grant to" : "revoke from") \(request.node) failed: \(error); the 1A of group \(request.group.rawValue) ballot \(request.ballot.rawValue) stays unanswered"
                driver.recordError(peer: request.node, reason)
                failures.append((request, reason))
            }
        }
        engine.permissionsApplied(failures: failures)
    }
}

/// Monotonic nanoseconds without Foundation.
enum DispatchTimeLite {
    static func nanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

#if canImport(Glibc)
import Glibc
#endif
