import RamCastFabric

/// One node's endpoint on an ``InProcessFabric``.
public final class InProcessEndpoint: FabricEndpoint {
    public let node: NodeID
    public var limits: FabricLimits { fabric.limits }
    /// Strong: the fabric is the network, and must outlive every endpoint on it. The fabric holds its
    /// endpoints too; ``close()`` (or ``InProcessFabric/shutdown()``) breaks that cycle.
    let fabric: InProcessFabric
    let acceptsFrom: Set<NodeID>?
    var isClosed = false
    var crashed = false
    public var announcesRestart = false

    /// Indexed by `RegionID.rawValue`, so the write path does no hashing.
    var regions: [LocalRegion?] = Array(repeating: nil, count: 256)
    /// For `.grantedPeers` regions: who may write.
    var writers: [Set<NodeID>] = Array(repeating: [], count: 256)
    private var ownedMemory: [UnsafeMutableRawPointer] = []

    // Completion queue: a fixed ring, like a CQ. `seq` is the post counter of signaled successes.
    private var cq: [(completion: Completion, link: Link?, side: Int, seq: UInt64)]
    private var cqHead = 0
    private var cqCount = 0
    /// Set when a completion found the queue full: on hardware the CQ is then unusable.
    public private(set) var completionQueueOverflowed = false

    private var events: [FabricEvent] = []
    private var eventHead = 0

    /// Writes this endpoint posted, and payload bytes it posted and received (for per-role counts).
    public private(set) var writesPosted: UInt64 = 0
    public private(set) var bytesPosted: UInt64 = 0
    /// Bytes of all regions registered so far (what an RDMA endpoint would pin).
    public private(set) var bytesRegistered = 0
    public internal(set) var bytesReceived: Int = 0

    init(fabric: InProcessFabric, node: NodeID, acceptsFrom: Set<NodeID>?) {
        self.fabric = fabric
        self.node = node
        self.acceptsFrom = acceptsFrom
        cq = Array(repeating: (Completion(id: 0, connection: ConnectionID(0), status: .success), nil, 0, 0),
                   count: fabric.limits.completionQueueDepth)
    }

    deinit {
        for p in ownedMemory { p.deallocate() }
    }

    public func register(_ id: RegionID, length: Int, remoteAccess: RemoteAccess) throws(FabricError) -> LocalRegion {
        guard !isClosed else { throw .closed }
        guard regions[Int(id.rawValue)] == nil else { throw .invalidRegion(id, reason: "already registered at \(node)") }
        guard length > 0 else { throw .invalidRegion(id, reason: "length must be positive, got \(length)") }
        bytesRegistered += length
        let base = UnsafeMutableRawPointer.allocate(byteCount: length, alignment: 4096)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: length)
        ownedMemory.append(base)
        let region = LocalRegion(id: id, base: base, length: length, remoteAccess: remoteAccess)
        regions[Int(id.rawValue)] = region
        return region
    }

    public func connect(to peer: NodeID, timeout: Duration) throws(FabricError) -> ConnectionID {
        guard !isClosed else { throw .closed }
        return try fabric.connect(from: self, to: peer)
    }

    public func peer(of connection: ConnectionID) -> NodeID? {
        guard let link = link(connection), let side = link.side(of: self) else { return nil }
        return link.target(side).node
    }

    public func post(_ writes: UnsafeBufferPointer<WriteRequest>, on connection: ConnectionID) throws(FabricError) {
        guard !isClosed else { throw .closed }
        guard let link = link(connection), let side = link.side(of: self) else { throw .unknownConnection(connection) }
        if let cause = link.errorCause {
            throw .connectionInErrorState(connection, peer: link.target(side).node, cause: cause)
        }
        let d = link.direction(side)
        guard d.outstanding + writes.count <= d.depth else {
            throw .sendQueueFull(connection, outstanding: d.outstanding, requested: writes.count, depth: d.depth)
        }
        // Validate the whole chain first: a rejected chain posts nothing (as ibv_post_send's bad_wr
        // does for the first bad request; we are stricter, which callers can rely on).
        for w in writes {
            if w.length <= 0 || w.length > limits.maxWriteBytes {
                throw .invalidWrite(id: w.id, reason: "length \(w.length) is outside 1...\(limits.maxWriteBytes)")
            }
            if w.flags.contains(.inline) {
                if w.length > limits.maxInlineBytes {
                    throw .invalidWrite(id: w.id, reason: "inline length \(w.length) exceeds the maximum inline size \(limits.maxInlineBytes)")
                }
            } else if !isRegistered(w.source, length: w.length) {
                throw .invalidWrite(id: w.id, reason: "non-inline source is not inside a registered region of \(node)")
            }
        }
        for w in writes {
            writesPosted &+= 1
            bytesPosted &+= UInt64(w.length)
            link.enqueue(side, w, fabric: fabric)
            if fabric.isImmediate {
                link.applyWholeHead(side, fabric: fabric)
                if !link.isOpen { return }
            }
        }
    }

    public func pollCompletions(into buffer: UnsafeMutableBufferPointer<Completion>) -> Int {
        var n = 0
        while n < buffer.count, cqCount > 0 {
            let e = cq[cqHead]
            cq[cqHead].link = nil   // a retained link would keep both endpoints (and the fabric) alive
            cqHead = (cqHead + 1) % cq.count
            cqCount -= 1
            if e.completion.status == .success, let link = e.link {
                // Polling a signaled completion retires it and every earlier write of that direction.
                let d = link.direction(e.side)
                if e.seq > d.retired { d.retired = e.seq }
            }
            buffer[n] = e.completion
            n += 1
        }
        return n
    }

    public func pollEvent() -> FabricEvent? {
        guard eventHead < events.count else {
            if eventHead > 0 { events.removeAll(keepingCapacity: true); eventHead = 0 }
            return nil
        }
        defer { eventHead += 1 }
        return events[eventHead]
    }

    public func grantWrite(_ id: RegionID, to peer: NodeID) throws(FabricError) {
        try checkProtected(id)
        writers[Int(id.rawValue)].insert(peer)
        // As with a fresh key delivered over the connection: the peer learns it may write.
        for case let link? in fabric.links where link.isOpen {
            guard let side = link.side(of: self), link.target(side).node == peer else { continue }
            link.target(side).enqueue(.permissionChanged(link.id, peer: node, region: id, writable: true))
        }
    }

    public func revokeWrite(_ id: RegionID, from peer: NodeID) throws(FabricError) {
        try checkProtected(id)
        // A write of the peer's that has started landing passed its access check already (a NIC
        // checks the key at a write's first packet). On RDMA, deregistering waits for such a write
        // to finish, so nothing of the revoked writer lands after the revoke returns; do the same,
        // rather than let the rest of it land (and complete successfully) afterwards.
        for case let link? in fabric.links where link.isOpen {
            guard let mine = link.side(of: self), link.poster(1 - mine).node == peer else { continue }
            link.finishLandingHead(1 - mine, into: id, fabric: fabric)
        }
        writers[Int(id.rawValue)].remove(peer)
    }

    public func disconnect(_ connection: ConnectionID) {
        guard let link = link(connection), link.side(of: self) != nil else { return }
        fabric.fail(link, cause: "disconnected by \(node)")
    }

    public func close() {
        guard !isClosed else { return }
        for case let link? in fabric.links where link.isOpen && link.side(of: self) != nil {
            fabric.fail(link, cause: "\(node) closed its endpoint")
        }
        isClosed = true
        // Drop what refers back to links, so that closing every endpoint frees the whole network.
        for i in cq.indices { cq[i].link = nil }
        cqCount = 0
        events.removeAll()
        fabric.reap()
    }

    // MARK: internals

    func link(_ id: ConnectionID) -> Link? {
        let i = Int(id.rawValue)
        return i < fabric.links.count ? fabric.links[i] : nil
    }

    func enqueue(_ event: FabricEvent) {
        guard !isClosed else { return }
        events.append(event)
    }

    func complete(_ c: Completion, link: Link, side: Int, seq: UInt64?) {
        guard !isClosed else { return }
        guard cqCount < cq.count else {
            completionQueueOverflowed = true
            return
        }
        cq[(cqHead + cqCount) % cq.count] = (c, seq == nil ? nil : link, side, seq ?? 0)
        cqCount += 1
    }

    func accessViolation(by writer: NodeID, region id: RegionID, offset: Int, length: Int) -> String? {
        guard !isClosed else { return "endpoint closed" }
        guard let region = regions[Int(id.rawValue)] else { return "\(id) is not registered" }
        guard offset >= 0, offset + length <= region.length else {
            return "write of \(length) bytes at offset \(offset) exceeds \(id) (\(region.length) bytes)"
        }
        if region.remoteAccess == .grantedPeers, !writers[Int(id.rawValue)].contains(writer) {
            return "\(writer) has no write permission on \(id)"
        }
        return nil
    }

    private func isRegistered(_ p: UnsafeRawPointer, length: Int) -> Bool {
        for case let r? in regions where r.contains(p, length: length) { return true }
        return false
    }

    private func checkProtected(_ id: RegionID) throws(FabricError) {
        guard !isClosed else { throw .closed }
        guard let r = regions[Int(id.rawValue)] else { throw .invalidRegion(id, reason: "not registered at \(node)") }
        guard r.remoteAccess == .grantedPeers else {
            throw .invalidRegion(id, reason: "is writable by any peer; only .grantedPeers regions take grants")
        }
    }
}
