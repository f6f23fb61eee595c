import RamCastFabric

/// The writes an engine wants posted, one FIFO per peer, in registered memory.
///
/// The engine is sans-I/O: it never calls the fabric. It appends writes here and whoever drives it (the
/// runtime, or a test) drains them into the fabric with ``drain(peer:into:)``. Small writes (log
/// entries, acks, slot releases) are encoded straight into a 64-byte cell of the ring, which lives in
/// a registered region, so the same cell can be posted inline or not. A cell is reused only after its
/// write is retired by a signaled completion: the NIC may read a non-inline source until then.
///
/// Per peer, positions advance through three counters: `retired ≤ posted ≤ enqueued`, with
/// `enqueued − retired ≤ capacity`. Credits (``SendCredits``) decide which posts are signaled. Nothing
/// here allocates after init, and the per-peer tables are ``FixedTable``s, unchecked for exclusivity.
public final class Outbox {
    public struct Entry {
        public var region: RegionID
        public var offset: Int
        public var length: Int
        public var id: UInt64
        /// A source outside the cells (a sender's staging buffer), or nil to use the entry's cell.
        public var external: UnsafeRawPointer?
        public var signal: Bool
    }

    public let peers: Int
    public let capacity: Int
    public let inlineThreshold: Int
    let cells: UnsafeMutableRawPointer
    let entries: FixedTable<Entry>
    /// Per peer: writes enqueued and posted since its connection was (re)established, and its credits.
    let enqueuedCount: FixedTable<UInt64>
    let postedCount: FixedTable<UInt64>
    let peerCredits: FixedTable<SendCredits>
    /// Peers with unposted entries (a count, so an idle outbox is checked in O(1)). In a one-element
    /// table rather than a `var`, for the same reason as the others.
    let backlogCell: FixedTable<Int>
    /// Peers known to be gone: writes to them are dropped, and they always have room, so a crashed
    /// peer never blocks the engine.
    let deadPeers: FixedTable<Bool>

    /// Peers with unposted entries (a count, so an idle outbox is checked in O(1)).
    @inline(__always) public var backlog: Int { backlogCell[0] }
    /// Writes enqueued for `peer` since its connection was (re)established.
    @inline(__always) public func enqueued(_ peer: Int) -> UInt64 { enqueuedCount[peer] }
    /// Writes posted to `peer` since its connection was (re)established.
    @inline(__always) public func posted(_ peer: Int) -> UInt64 { postedCount[peer] }
    /// Whether `peer` is known to be gone (see ``markDead(_:)``).
    @inline(__always) public func isDead(_ peer: Int) -> Bool { deadPeers[peer] }
    /// Per peer: writes enqueued (a copy, for diagnostics).
    public var enqueued: [UInt64] { enqueuedCount.array }
    /// Per peer: writes posted (a copy, for diagnostics).
    public var posted: [UInt64] { postedCount.array }
    /// Per peer: send credits (a copy, for diagnostics).
    public var credits: [SendCredits] { peerCredits.array }
    /// Per peer: known to be gone (a copy, for diagnostics).
    public var dead: [Bool] { deadPeers.array }

    /// - Parameters:
    ///   - cells: `peers × capacity × Layout.cellSize` bytes of registered memory.
    public init(peers: Int, capacity: Int, cells: UnsafeMutableRawPointer, inlineThreshold: Int,
                sendQueueDepth: Int, signalInterval: Int) {
        precondition(capacity >= sendQueueDepth, "outbox capacity must cover the send queue")
        self.peers = peers
        self.capacity = capacity
        self.cells = cells
        self.inlineThreshold = inlineThreshold
        entries = FixedTable(repeating: Entry(region: RegionID(0), offset: 0, length: 0, id: 0, external: nil, signal: false),
                             count: peers * capacity)
        enqueuedCount = FixedTable(repeating: 0, count: peers)
        postedCount = FixedTable(repeating: 0, count: peers)
        // Each peer's credits own a ring of their own (not one shared copy-on-write buffer).
        peerCredits = FixedTable((0..<peers).map { _ in SendCredits(depth: sendQueueDepth, signalInterval: signalInterval) })
        backlogCell = FixedTable(repeating: 0, count: 1)
        deadPeers = FixedTable(repeating: false, count: peers)
    }

    deinit {
        entries.deallocate()
        enqueuedCount.deallocate()
        postedCount.deallocate()
        peerCredits.deallocate()
        backlogCell.deallocate()
        deadPeers.deallocate()
    }

    /// Drops everything queued for `peer` and every later write to it.
    public func markDead(_ peer: Int) {
        reset(peer)
        deadPeers[peer] = true
    }

    public static func cellBytes(peers: Int, capacity: Int) -> Int { peers * capacity * Layout.cellSize }

    @inline(__always) public func retired(_ peer: Int) -> UInt64 { peerCredits[peer].retired }

    /// Whether `count` more writes to `peer` fit.
    @inline(__always)
    public func hasRoom(_ peer: Int, _ count: Int = 1) -> Bool {
        deadPeers[peer] || Int(enqueuedCount[peer] &- peerCredits[peer].retired) + count <= capacity
    }

    /// Appends a small write whose bytes `encode` puts in the entry's cell (at most 64 bytes).
    /// Returns the entry's enqueue counter. The caller checked ``hasRoom(_:_:)``.
    @inline(__always) @discardableResult
    public func enqueue(_ peer: Int, region: RegionID, offset: Int, length: Int, id: UInt64 = 0, signal: Bool = false,
                        _ encode: (UnsafeMutableRawPointer) -> Void) -> UInt64 {
        precondition(length <= Layout.cellSize)
        if deadPeers[peer] { return enqueuedCount[peer] }
        let pos = Int(enqueuedCount[peer] % UInt64(capacity))
        encode(cells + (peer * capacity + pos) * Layout.cellSize)
        entries[peer * capacity + pos] = Entry(region: region, offset: offset, length: length, id: id, external: nil, signal: signal)
        return push(peer)
    }

    /// Appends a write from memory the caller keeps unchanged until the write is retired.
    @inline(__always) @discardableResult
    public func enqueue(_ peer: Int, region: RegionID, offset: Int, source: UnsafeRawPointer, length: Int,
                        id: UInt64 = 0, signal: Bool = false) -> UInt64 {
        if deadPeers[peer] { return enqueuedCount[peer] }
        let pos = Int(enqueuedCount[peer] % UInt64(capacity))
        entries[peer * capacity + pos] = Entry(region: region, offset: offset, length: length, id: id, external: source, signal: signal)
        return push(peer)
    }

    @inline(__always)
    private func push(_ peer: Int) -> UInt64 {
        // A full ring would overwrite a write not yet carried out, and lose it without a trace.
        precondition(hasRoom(peer), "the outbox for peer \(peer) overflowed its \(capacity) entries")
        if enqueuedCount[peer] == postedCount[peer] { backlogCell[0] += 1 }
        enqueuedCount[peer] &+= 1
        return enqueuedCount[peer]
    }

    /// Unposted writes for `peer`.
    @inline(__always) public func pending(_ peer: Int) -> Int { Int(enqueuedCount[peer] &- postedCount[peer]) }

    /// Moves as many unposted writes of `peer` as credits allow into `chain`, flags set (inline,
    /// signaled), and marks them posted. Post the returned prefix of `chain` on the peer's connection.
    public func drain(peer: Int, into chain: UnsafeMutableBufferPointer<WriteRequest>) -> Int {
        var n = 0
        while n < chain.count, postedCount[peer] < enqueuedCount[peer], peerCredits[peer].canPost() {
            let pos = Int(postedCount[peer] % UInt64(capacity))
            let e = entries[peer * capacity + pos]
            var flags: WriteFlags = e.length <= inlineThreshold ? .inline : []
            if e.signal { flags.insert(.signaled) }
            flags = peerCredits[peer].next(flags)
            let source = e.external ?? UnsafeRawPointer(cells + (peer * capacity + pos) * Layout.cellSize)
            chain[n] = WriteRequest(id: e.id, source: source, length: e.length, remoteRegion: e.region,
                                    remoteOffset: e.offset, flags: flags)
            postedCount[peer] &+= 1
            n += 1
        }
        if n > 0, postedCount[peer] == enqueuedCount[peer] { backlogCell[0] -= 1 }
        return n
    }

    /// Call for every successful signaled completion on `peer`'s connection.
    @inline(__always) public func completed(_ peer: Int) { peerCredits[peer].signaledCompletion() }

    /// Whether posted writes to `peer` wait for a signaled completion that will never come, because
    /// every posted write after the last signaled one was unsignaled. ``flush(_:region:offset:)``
    /// fixes that with one signaled write.
    public func needsFlush(_ peer: Int) -> Bool {
        postedCount[peer] == enqueuedCount[peer] && peerCredits[peer].retired < postedCount[peer] && !peerCredits[peer].lastPostedSignaled
    }

    /// Appends a signaled 8-byte write of zero to a scratch word at `peer`, which retires every
    /// earlier write once it completes.
    public func flush(_ peer: Int, region: RegionID, offset: Int) {
        guard hasRoom(peer) else { return }
        enqueue(peer, region: region, offset: offset, length: 8, id: 0, signal: true) {
            $0.storeBytes(of: UInt64(0), as: UInt64.self)
        }
    }

    /// A peer marked dead came back (restarted): its queue starts empty and writes to it are
    /// posted again.
    public func revive(_ peer: Int) {
        deadPeers[peer] = false
        reset(peer)
    }

    /// Forgets the peer's queue (its connection died; what was not retired is lost with it).
    public func reset(_ peer: Int) {
        if postedCount[peer] != enqueuedCount[peer] { backlogCell[0] -= 1 }
        enqueuedCount[peer] = 0
        postedCount[peer] = 0
        peerCredits[peer].reset()
    }
}
