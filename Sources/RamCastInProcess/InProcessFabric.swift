import RamCastFabric

/// The in-process network: a test double for RDMA that keeps its semantics.
///
/// Regions are byte buffers in this process. Each connection has two directions, each a FIFO of
/// posted writes, and a *schedule* decides when the writes become visible:
/// - ``Schedule/immediate``: a write lands during `post`, in full. Deterministic and fast; the
///   no-NIC default for demos and benchmarks.
/// - ``Schedule/seeded(_:tearProbability:)``: writes wait until ``step()`` picks them. Each step
///   chooses, with a seeded generator, one connection direction that has a pending write and makes
///   its oldest write (or one 8-byte-aligned piece of it, when the write is torn) visible. So writes
///   on different connections are reordered freely, writes on one connection never are, and a
///   multi-word write can be observed half-written. Re-running with the same seed and the same calls
///   replays the run exactly.
///
/// Access errors, error states, flushed completions, send-queue accounting and completion-queue
/// overflow behave as on an RC queue pair (see ``FabricEndpoint``).
///
/// The fabric and its endpoints are confined to one thread: the whole simulated cluster is driven
/// by one loop, which is what makes runs reproducible. They are not `Sendable`.
public final class InProcessFabric {
    public enum Schedule: Sendable, Hashable {
        case immediate
        case seeded(UInt64, tearProbability: Double = 0.25)
    }

    public let schedule: Schedule
    public let limits: FabricLimits
    var rng: SplitMix64
    var endpoints: [NodeID: InProcessEndpoint] = [:]
    var links: [Link?] = []
    /// Writes posted and not yet visible, over all connections.
    var pendingWriteCount = 0
    /// Writes posted by these nodes are held back: a step that picks one of them picks again with
    /// probability ``slowdown``. Simulations slow senders down to make message bodies arrive after
    /// the timestamps that refer to them (spec §10.1).
    public var slowPosters: Set<NodeID> = []
    public var slowdown: Double = 0
    /// Nodes cut off from the network: ``step()`` lands no write from or to them (they stay queued,
    /// in order), while ``deliver(from:to:count:)`` still can. Simulations isolate a live leader so
    /// that it is suspected and replaced while it still acts.
    public var isolated: Set<NodeID> = []

    public init(schedule: Schedule = .immediate, limits: FabricLimits = .inProcessDefault) {
        self.schedule = schedule
        self.limits = limits
        if case .seeded(let seed, _) = schedule {
            rng = SplitMix64(seed: seed)
        } else {
            rng = SplitMix64(seed: 0)
        }
    }

    var isImmediate: Bool { if case .immediate = schedule { true } else { false } }

    var tearProbability: Double {
        if case .seeded(_, let p) = schedule { p } else { 0 }
    }

    /// Creates the endpoint of `node`. `acceptsFrom` lists the nodes allowed to connect to it (the
    /// cluster membership); others are rejected. `nil` accepts everyone.
    public func makeEndpoint(_ node: NodeID, acceptsFrom: Set<NodeID>? = nil) throws(FabricError) -> InProcessEndpoint {
        if let existing = endpoints[node], !existing.isClosed {
            throw .invalidRegion(RegionID(0), reason: "\(node) already has an open in-process endpoint")
        }
        let e = InProcessEndpoint(fabric: self, node: node, acceptsFrom: acceptsFrom)
        endpoints[node] = e
        return e
    }

    /// Writes posted and not yet visible, over all connections.
    public var pendingWrites: Int { pendingWriteCount }

    /// Makes one pending write (or one piece of a torn write) visible. Returns false when nothing
    /// is pending.
    @discardableResult
    public func step() -> Bool {
        guard pendingWriteCount > 0 else { return false }
        // Pick uniformly among the directions that have work, without allocating.
        var busy = 0
        for case let link? in links where link.isOpen {
            if !link.directions.0.isEmpty, !cutOff(link, 0) { busy += 1 }
            if !link.directions.1.isEmpty, !cutOff(link, 1) { busy += 1 }
        }
        guard busy > 0 else { return false }
        for attempt in 0..<4 {
            guard let (link, side) = pick(Int(rng.next() % UInt64(busy))) else { return false }
            if attempt < 3, !slowPosters.isEmpty, slowPosters.contains(link.poster(side).node),
               Double(rng.next() >> 11) / Double(1 << 53) < slowdown {
                continue
            }
            advance(link, side)
            return true
        }
        return false
    }

    /// The `k`-th busy direction, in link order.
    private func pick(_ k: Int) -> (Link, Int)? {
        var k = k
        for case let link? in links where link.isOpen {
            if !link.directions.0.isEmpty, !cutOff(link, 0) {
                if k == 0 { return (link, 0) }
                k -= 1
            }
            if !link.directions.1.isEmpty, !cutOff(link, 1) {
                if k == 0 { return (link, 1) }
                k -= 1
            }
        }
        return nil
    }

    @inline(__always)
    private func cutOff(_ link: Link, _ side: Int) -> Bool {
        !isolated.isEmpty && (isolated.contains(link.poster(side).node) || isolated.contains(link.target(side).node))
    }

    /// Steps until no write is pending, or `maxSteps` steps were taken. Returns the steps taken.
    @discardableResult
    public func drain(maxSteps: Int = .max) -> Int {
        var n = 0
        while n < maxSteps, step() { n += 1 }
        return n
    }

    /// Writes from `poster` to `target` posted and not yet visible.
    public func pendingWrites(from poster: NodeID, to target: NodeID) -> Int {
        var n = 0
        for case let link? in links where link.isOpen {
            for side in 0..<2 where link.poster(side).node == poster && link.target(side).node == target {
                n += link.queueCount(side)
            }
        }
        return n
    }

    /// Makes up to `count` pending writes from `poster` to `target` visible, whole and in order:
    /// scripted tests use it to build an exact interleaving (say, a timestamp that overtakes the
    /// body it refers to). Returns how many landed.
    @discardableResult
    public func deliver(from poster: NodeID, to target: NodeID, count: Int = .max) -> Int {
        var n = 0
        for case let link? in links where link.isOpen {
            for side in 0..<2 where link.poster(side).node == poster && link.target(side).node == target {
                while n < count, link.isOpen, link.queueCount(side) > 0 {
                    link.applyWholeHead(side, fabric: self)
                    n += 1
                }
            }
        }
        return n
    }

    /// Draws from the fabric's seeded generator, so that callers that randomize around the fabric
    /// (crash points, workloads) stay reproducible from the one seed.
    public func random(below bound: Int) -> Int {
        precondition(bound > 0)
        return Int(rng.next() % UInt64(bound))
    }

    /// Crash-stops `node`: its endpoint disappears. Of its writes still in flight, a random prefix
    /// per connection lands (the NIC had already sent them) and the rest are lost. Its peers see
    /// their writes to it fail and get a `.disconnected` event.
    /// `landing` fixes how many in-flight writes per connection land (scripted tests); nil draws it.
    public func crash(_ node: NodeID, landing: Int? = nil) {
        guard let e = endpoints[node], !e.isClosed else { return }
        for case let link? in links where link.isOpen && (link.a === e || link.b === e) {
            let side = link.a === e ? 0 : 1
            let keep = link.queueCount(side)
            let land = keep == 0 ? 0 : min(keep, landing ?? (isImmediate ? keep : random(below: keep + 1)))
            for _ in 0..<land { link.applyWholeHead(side, fabric: self) }
            link.discardAll(side, fabric: self)
            fail(link, cause: "peer \(node) crashed", peerFailure: .retryExceeded)
        }
        e.crashed = true
        e.close()
    }

    /// Closes every endpoint, which releases all regions and connections.
    public func shutdown() {
        for e in Array(endpoints.values) { e.close() }
        reap()
    }

    /// Drops links whose two ends are closed and closed endpoints, so nothing keeps their memory.
    func reap() {
        for i in links.indices {
            if let link = links[i], link.a.isClosed, link.b.isClosed { links[i] = nil }
        }
        for (id, e) in endpoints where e.isClosed && !links.contains(where: { $0?.a === e || $0?.b === e }) {
            endpoints[id] = nil
        }
    }

    // MARK: internals shared with the endpoint

    func advance(_ link: Link, _ side: Int) {
        link.advanceHead(side, fabric: self)
    }

    /// Puts `link` in the error state: the write at the head of `failingSide` (if any) completes with
    /// `status`; every other pending write is flushed; both ends are told.
    func fail(_ link: Link, cause: String, failingSide: Int? = nil, status: CompletionStatus? = nil,
              peerFailure: CompletionStatus? = nil) {
        guard link.isOpen else { return }
        link.errorCause = cause
        for side in 0..<2 {
            let poster = side == 0 ? link.a : link.b
            var first = true
            while let w = link.popHead(side, fabric: self) {
                var st: CompletionStatus = .flushed
                if first, side == failingSide, let status { st = status }
                else if first, let peerFailure, !poster.isClosed { st = peerFailure }
                first = false
                poster.complete(Completion(id: w.id, connection: link.id, status: st), link: link, side: side, seq: nil)
            }
        }
        link.a.enqueue(.disconnected(link.id, peer: link.b.node, reason: cause))
        link.b.enqueue(.disconnected(link.id, peer: link.a.node, reason: cause))
    }

    func connect(from e: InProcessEndpoint, to peer: NodeID) throws(FabricError) -> ConnectionID {
        let address = "inproc:\(peer.rawValue)"
        guard let target = endpoints[peer], !target.isClosed else {
            throw .unreachable(peer: peer, address: address, reason: "no endpoint is listening there")
        }
        if let members = target.acceptsFrom, !members.contains(e.node) {
            throw .rejected(peer: peer, address: address, reason: "\(e.node) is not a member of the cluster")
        }
        if target.announcesRestart {
            throw .rejected(peer: peer, address: address, reason: "\(peer) restarted and is still announcing itself")
        }
        let id = ConnectionID(UInt32(links.count))
        let link = Link(id: id, a: e, b: target, limits: limits)
        links.append(link)
        target.enqueue(e.announcesRestart ? .restarted(id, peer: e.node) : .accepted(id, peer: e.node))
        return id
    }
}

extension FabricLimits {
    /// Limits of the in-process fabric, chosen to resemble a ConnectX-class NIC.
    public static let inProcessDefault = FabricLimits(
        maxInlineBytes: 256, sendQueueDepth: 128, completionQueueDepth: 16_384, maxWriteBytes: 1 << 20)
}
