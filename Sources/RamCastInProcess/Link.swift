import RamCastFabric

/// A write posted on one direction of a link and not yet (fully) visible.
struct PendingWrite {
    var id: UInt64
    var seq: UInt64
    /// Source of the bytes: the inline arena (copied at post time) or the caller's registered memory
    /// (read when each piece becomes visible, as a NIC's DMA read would).
    var source: UnsafeRawPointer
    var length: Int
    var remoteRegion: RegionID
    var remoteOffset: Int
    var signaled: Bool
    /// Torn writes: pieces still to land (bit i = piece i). Zero until the write starts landing.
    var remainingPieces: UInt64 = 0
    var pieceSize: Int = 0
    var started = false
}

/// One direction of a link: the poster's send queue.
final class Direction {
    let depth: Int
    /// Ring of pending writes, capacity = send queue depth (the poster can't have more outstanding).
    var ring: [PendingWrite?]
    var head = 0
    var count = 0
    /// Inline payloads are copied here at post time: one `maxInline` cell per ring slot.
    let inlineArena: UnsafeMutableRawPointer
    let inlineCell: Int
    var posted: UInt64 = 0
    var retired: UInt64 = 0

    init(depth: Int, maxInline: Int) {
        self.depth = depth
        ring = Array(repeating: nil, count: depth)
        inlineCell = max(8, (maxInline + 7) & ~7)
        inlineArena = .allocate(byteCount: depth * inlineCell, alignment: 64)
    }

    deinit { inlineArena.deallocate() }

    var isEmpty: Bool { count == 0 }
    var outstanding: Int { Int(posted &- retired) }
}

/// A connection: two endpoints, two independent in-order directions (like an RC queue pair's two
/// send queues).
final class Link {
    let id: ConnectionID
    let a: InProcessEndpoint
    let b: InProcessEndpoint
    let directions: (Direction, Direction)
    var errorCause: String?

    init(id: ConnectionID, a: InProcessEndpoint, b: InProcessEndpoint, limits: FabricLimits) {
        self.id = id
        self.a = a
        self.b = b
        directions = (Direction(depth: limits.sendQueueDepth, maxInline: limits.maxInlineBytes),
                      Direction(depth: limits.sendQueueDepth, maxInline: limits.maxInlineBytes))
    }

    var isOpen: Bool { errorCause == nil }

    @inline(__always) func direction(_ side: Int) -> Direction { side == 0 ? directions.0 : directions.1 }
    @inline(__always) func poster(_ side: Int) -> InProcessEndpoint { side == 0 ? a : b }
    @inline(__always) func target(_ side: Int) -> InProcessEndpoint { side == 0 ? b : a }
    func side(of e: InProcessEndpoint) -> Int? { e === a ? 0 : (e === b ? 1 : nil) }
    func queueCount(_ side: Int) -> Int { direction(side).count }

    /// Queues a write; copies inline payloads now. The caller checked capacity.
    func enqueue(_ side: Int, _ w: WriteRequest, fabric: InProcessFabric) {
        let d = direction(side)
        let slot = (d.head + d.count) % d.depth
        d.posted &+= 1
        var source = w.source
        if w.flags.contains(.inline) {
            let cell = d.inlineArena + slot * d.inlineCell
            cell.copyMemory(from: w.source, byteCount: w.length)
            source = UnsafeRawPointer(cell)
        }
        d.ring[slot] = PendingWrite(
            id: w.id, seq: d.posted, source: source, length: w.length, remoteRegion: w.remoteRegion,
            remoteOffset: w.remoteOffset, signaled: w.flags.contains(.signaled))
        d.count += 1
        fabric.pendingWriteCount += 1
    }

    func popHead(_ side: Int, fabric: InProcessFabric) -> PendingWrite? {
        let d = direction(side)
        guard d.count > 0, let w = d.ring[d.head] else { return nil }
        d.ring[d.head] = nil
        d.head = (d.head + 1) % d.depth
        d.count -= 1
        fabric.pendingWriteCount -= 1
        return w
    }

    /// Drops every pending write of `side` without completions (its poster crashed).
    func discardAll(_ side: Int, fabric: InProcessFabric) {
        while popHead(side, fabric: fabric) != nil {}
    }

    /// Lands the head write of `side` in full.
    func applyWholeHead(_ side: Int, fabric: InProcessFabric) {
        let d = direction(side)
        guard d.count > 0, var w = d.ring[d.head] else { return }
        if w.started {
            // Finish the remaining pieces of a torn write.
            while w.remainingPieces != 0 {
                let bit = w.remainingPieces.trailingZeroBitCount
                landPiece(w, piece: bit, side: side)
                w.remainingPieces &= ~(1 << UInt64(bit))
            }
            finish(side, w, fabric: fabric)
            return
        }
        guard checkAccess(side, w, fabric: fabric) else { return }
        land(w, from: 0, count: w.length, side: side)
        finish(side, w, fabric: fabric)
    }

    /// Lands the rest of the head write of `side` if it has started landing and targets `region`.
    func finishLandingHead(_ side: Int, into region: RegionID, fabric: InProcessFabric) {
        let d = direction(side)
        guard d.count > 0, let w = d.ring[d.head], w.started, w.remoteRegion == region else { return }
        applyWholeHead(side, fabric: fabric)
    }

    /// One scheduler step on `side`: the head write lands whole, or it starts or continues landing
    /// piece by piece.
    func advanceHead(_ side: Int, fabric: InProcessFabric) {
        let d = direction(side)
        guard d.count > 0, var w = d.ring[d.head] else { return }
        if !w.started {
            guard checkAccess(side, w, fabric: fabric) else { return }
            let tear = w.length > 8 && fabric.tearProbability > 0
                && Double(fabric.rng.next() >> 11) / Double(1 << 53) < fabric.tearProbability
            if !tear {
                land(w, from: 0, count: w.length, side: side)
                finish(side, w, fabric: fabric)
                return
            }
            // At most 64 pieces, each a multiple of 8 bytes: the unit a NIC makes visible atomically.
            w.pieceSize = max(8, ((w.length + 63) / 64 + 7) & ~7)
            let pieces = (w.length + w.pieceSize - 1) / w.pieceSize
            w.remainingPieces = pieces == 64 ? ~0 : (1 << UInt64(pieces)) - 1
            w.started = true
        }
        // Land one remaining piece, chosen at random: placement order within a write is unspecified.
        let remaining = w.remainingPieces.nonzeroBitCount
        var k = Int(fabric.rng.next() % UInt64(remaining))
        var bits = w.remainingPieces
        var piece = 0
        while true {
            piece = bits.trailingZeroBitCount
            if k == 0 { break }
            bits &= ~(1 << UInt64(piece))
            k -= 1
        }
        landPiece(w, piece: piece, side: side)
        w.remainingPieces &= ~(1 << UInt64(piece))
        if w.remainingPieces == 0 {
            finish(side, w, fabric: fabric)
        } else {
            d.ring[d.head] = w
        }
    }

    private func landPiece(_ w: PendingWrite, piece: Int, side: Int) {
        let from = piece * w.pieceSize
        land(w, from: from, count: min(w.pieceSize, w.length - from), side: side)
    }

    /// The responder's checks, made when the write arrives (so a revocation that happens while a
    /// write is in flight stops it): region exists, range fits, writer holds permission.
    private func checkAccess(_ side: Int, _ w: PendingWrite, fabric: InProcessFabric) -> Bool {
        let t = target(side)
        if let reason = t.accessViolation(by: poster(side).node, region: w.remoteRegion,
                                          offset: w.remoteOffset, length: w.length) {
            fabric.fail(self, cause: "remote access error at \(t.node): \(reason)", failingSide: side,
                        status: .remoteAccessError)
            return false
        }
        return true
    }

    private func land(_ w: PendingWrite, from: Int, count: Int, side: Int) {
        guard count > 0, let region = target(side).regions[Int(w.remoteRegion.rawValue)] else { return }
        (region.base + w.remoteOffset + from).copyMemory(from: w.source + from, byteCount: count)
        target(side).bytesReceived &+= count
    }

    private func finish(_ side: Int, _ w: PendingWrite, fabric: InProcessFabric) {
        _ = popHead(side, fabric: fabric)
        if w.signaled {
            poster(side).complete(Completion(id: w.id, connection: id, status: .success), link: self, side: side, seq: w.seq)
        }
    }
}
