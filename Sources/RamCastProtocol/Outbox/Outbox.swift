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
/// here allocates after init.
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
    var entries: [Entry]
    public private(set) var enqueued: [UInt64]
    public private(set) var posted: [UInt64]
    public private(set) var credits: [SendCredits]
    /// Peers with unposted entries (a count, so an idle outbox is checked in O(1)).
    public private(set) var backlog = 0
    /// Peers known to be gone: writes to them are dropped, and they always have room, so a crashed
    /// peer never blocks the engine.
    public private(set) var dead: [Bool]

    /// - Parameters:
    ///   - cells: `peers × capacity × Layout.cellSize` bytes of registered memory.
    public init(peers: Int, capacity: Int, cells: UnsafeMutableRawPointer, inlineThreshold: Int,
                sendQueueDepth: Int, signalInterval: Int) {
        precondition(capacity >= sendQueueDepth, "outbox capacity must cover the send queue")
        self.peers = peers
        self.capacity = capacity
        self.cells = cells
        self.inlineThreshold = inlineThreshold
        entries = Array(repeating: Entry(region: RegionID(0), offset: 0, length: 0, id: 0, external: nil, signal: false),
                        count: peers * capacity)
        enqueued = Array(repeating: 0, count: peers)
        posted = Array(repeating: 0, count: peers)
        credits = Array(repeating: SendCredits(depth: sendQueueDepth, signalInterval: signalInterval), count: peers)
        dead = Array(repeating: false, count: peers)
    }

    /// Drops everything queued for `peer` and every later write to it.
    public func markDead(_ peer: Int) {
        reset(peer)
        dead[peer] = true
    }

    public static func cellBytes(peers: Int, capacity: Int) -> Int { peers * capacity * Layout.cellSize }

    @inlinable public func retired(_ peer: Int) -> UInt64 { credits[peer].retired }

    /// Whether `count` more writes to `peer` fit.
    @inline(__always)
    public func hasRoom(_ peer: Int, _ count: Int = 1) -> Bool {
        dead[peer] || Int(enqueued[peer] &- credits[peer].retired) + count <= capacity
    }

    /// Appends a small write whose bytes `encode` puts in the entry's cell (at most 64 bytes).
    /// Returns the entry's enqueue counter. The caller checked ``hasRoom(_:_:)``.
    @inline(__always) @discardableResult
    public func enqueue(_ peer: Int, region: RegionID, offset: Int, length: Int, id: UInt64 = 0, signal: Bool = false,
                        _ encode: (UnsafeMutableRawPointer) -> Void) -> UInt64 {
        precondition(length <= Layout.cellSize)
        if dead[peer] { return enqueued[peer] }
        let pos = Int(enqueued[peer] % UInt64(capacity))
        encode(cells + (peer * capacity + pos) * Layout.cellSize)
        entries[peer * capacity + pos] = Entry(region: region, offset: offset, length: length, id: id, external: nil, signal: signal)
        return push(peer)
    }

    /// Appends a write from memory the caller keeps unchanged until the write is retired.
    @inline(__always) @discardableResult
    public func enqueue(_ peer: Int, region: RegionID, offset: Int, source: UnsafeRawPointer, length: Int,
                        id: UInt64 = 0, signal: Bool = false) -> UInt64 {
        if dead[peer] { return enqueued[peer] }
        let pos = Int(enqueued[peer] % UInt64(capacity))
        entries[peer * capacity + pos] = Entry(region: region, offset: offset, length: length, id: id, external: source, signal: signal)
        return push(peer)
    }

    @inline(__always)
    private func push(_ peer: Int) -> UInt64 {
        if enqueued[peer] == posted[peer] { backlog += 1 }
        enqueued[peer] &+= 1
        return enqueued[peer]
    }

    /// Unposted writes for `peer`.
    @inline(__always) public func pending(_ peer: Int) -> Int { Int(enqueued[peer] &- posted[peer]) }

    /// Moves as many unposted writes of `peer` as credits allow into `chain`, flags set (inline,
    /// signaled), and marks them posted. Post the returned prefix of `chain` on the peer's connection.
    public func drain(peer: Int, into chain: UnsafeMutableBufferPointer<WriteRequest>) -> Int {
        var n = 0
        while n < chain.count, posted[peer] < enqueued[peer], credits[peer].canPost() {
            let pos = Int(posted[peer] % UInt64(capacity))
            let e = entries[peer * capacity + pos]
            var flags: WriteFlags = e.length <= inlineThreshold ? .inline : []
            if e.signal { flags.insert(.signaled) }
            flags = credits[peer].next(flags)
            let source = e.external ?? UnsafeRawPointer(cells + (peer * capacity + pos) * Layout.cellSize)
            chain[n] = WriteRequest(id: e.id, source: source, length: e.length, remoteRegion: e.region,
                                    remoteOffset: e.offset, flags: flags)
            posted[peer] &+= 1
            n += 1
        }
        if n > 0, posted[peer] == enqueued[peer] { backlog -= 1 }
        return n
    }

    /// Call for every successful signaled completion on `peer`'s connection.
    @inline(__always) public func completed(_ peer: Int) { credits[peer].signaledCompletion() }

    /// Whether posted writes to `peer` wait for a signaled completion that will never come, because
    /// every posted write after the last signaled one was unsignaled. ``flush(_:region:offset:)``
    /// fixes that with one signaled write.
    public func needsFlush(_ peer: Int) -> Bool {
        posted[peer] == enqueued[peer] && credits[peer].retired < posted[peer] && !credits[peer].lastPostedSignaled
    }

    /// Appends a signaled 8-byte write of zero to a scratch word at `peer`, which retires every
    /// earlier write once it completes.
    public func flush(_ peer: Int, region: RegionID, offset: Int) {
        guard hasRoom(peer) else { return }
        enqueue(peer, region: region, offset: offset, length: 8, id: 0, signal: true) {
            $0.storeBytes(of: UInt64(0), as: UInt64.self)
        }
    }

    /// Forgets the peer's queue (its connection died; what was not retired is lost with it).
    public func reset(_ peer: Int) {
        if posted[peer] != enqueued[peer] { backlog -= 1 }
        enqueued[peer] = 0
        posted[peer] = 0
        credits[peer].reset()
    }
}
