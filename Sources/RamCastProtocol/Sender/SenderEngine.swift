import RamCastFabric

/// Why a multicast was refused. Nothing was written when one of these is thrown.
public enum MulticastError: Error, Sendable, Hashable, CustomStringConvertible {
    case payloadTooLarge(size: Int, maximum: Int)
    case noDestinations
    case tooManyDestinations(count: Int, maximum: Int)
    case unknownGroup(GroupID, groupCount: Int)
    case duplicateDestination(GroupID)

    public var description: String {
        switch self {
        case .payloadTooLarge(let size, let maximum):
            "payload of \(size) bytes does not fit in a slot: at most \(maximum) bytes with this slot size"
        case .noDestinations: "the destination set is empty"
        case .tooManyDestinations(let count, let maximum): "\(count) destination groups, at most \(maximum) allowed"
        case .unknownGroup(let g, let count): "\(g) does not exist: the cluster has groups 0..<\(count)"
        case .duplicateDestination(let g): "\(g) is listed twice in the destinations"
        }
    }
}

/// The sender's side of the protocol (step 1), with no I/O of its own.
///
/// For each destination group it keeps the next slot number; a message takes the next slot in each
/// of its groups and its body is written, in one write per destination process, from a staging
/// buffer that stays untouched until every destination has released the slot. A group's ring is
/// full when the next slot was not yet released by *every* member: the sender then waits
/// (back-pressure, ``multicast(_:to:)`` returns nil) and never overwrites an undelivered slot.
///
/// Its tables are sized from the ``Layout`` at init and kept in ``FixedTable``s (unchecked for
/// exclusivity, never reallocated); `tracksInPlace`, public and read per multicast, in a ``FixedCell``.
public final class SenderEngine {
    public let layout: Layout
    public let me: NodeID
    public let senderIndex: Int
    public let outbox: Outbox
    let region: UnsafeMutableRawPointer
    /// Per group: slot counter the next message takes.
    let tails: FixedTable<Int>
    /// The counter of the next message (64 bits, never wrapping); its id carries
    /// ``MessageID/sequence(ofCounter:)`` of it, which wraps.
    var nextSequence: UInt64 = 1
    /// Per staging buffer: the message's (group, slot counter) pairs, to know when it is free again.
    let stagingGroups: FixedTable<GroupID>
    let stagingCounters: FixedTable<Int>
    let stagingCount: FixedTable<UInt8>
    // Step-1 completion: per in-flight message (ring of staging size), the outbox counter of its last
    // write to each destination server.
    let inPlaceTargets: FixedTable<(peer: Int32, counter: UInt64)>
    let inPlaceIDs: FixedTable<UInt64>
    var inPlaceHead: UInt64 = 1
    let scratchGroups: FixedTable<GroupID>
    let scratchSlots: FixedTable<UInt16>
    /// Per (group, slot): the sequence number of the message that took it last (0: none).
    let occupant: FixedTable<UInt64>

    public init(layout: Layout, me: NodeID, region: UnsafeMutableRawPointer, outbox: Outbox) {
        guard let index = layout.senderIndexOf[me] else { preconditionFailure("\(me) is not a sender") }
        self.layout = layout
        self.me = me
        senderIndex = index
        self.outbox = outbox
        self.region = region
        tails = FixedTable(repeating: 0, count: layout.groupCount)
        let buffers = layout.senderStagingCount
        stagingGroups = FixedTable(repeating: GroupID(0), count: buffers * layout.maxDestinations)
        stagingCounters = FixedTable(repeating: 0, count: buffers * layout.maxDestinations)
        stagingCount = FixedTable(repeating: 0, count: buffers)
        inPlaceTargets = FixedTable(repeating: (0, 0), count: buffers * layout.maxDestinations * layout.maxGroupSize)
        inPlaceIDs = FixedTable(repeating: 0, count: buffers)
        scratchGroups = FixedTable(repeating: GroupID(0), count: layout.maxDestinations)
        scratchSlots = FixedTable(repeating: 0, count: layout.maxDestinations)
        occupant = FixedTable(repeating: 0, count: layout.groupCount * layout.slots)
        nextSequence = layout.config.counterStart.messageCounter
        inPlaceHead = nextSequence
    }

    /// The counter of this sender's message `id`, if it issued it among its last 2⁴⁰ − 1 messages.
    func counter(of id: MessageID) -> UInt64? {
        guard id.sender == me, id.sequence != 0 else { return nil }
        let back = MessageID.distance(from: id.sequence, to: MessageID.sequence(ofCounter: nextSequence))
        guard back != 0, back <= nextSequence - layout.config.counterStart.messageCounter else { return nil }
        return nextSequence - back
    }

    deinit {
        tracksInPlaceCell.deallocate()
        tails.deallocate()
        stagingGroups.deallocate()
        stagingCounters.deallocate()
        stagingCount.deallocate()
        inPlaceTargets.deallocate()
        inPlaceIDs.deallocate()
        scratchGroups.deallocate()
        scratchSlots.deallocate()
        occupant.deallocate()
    }

    /// A slot of group `g` may take a new message only once the message in it was released by every
    /// destination process of *every* one of its groups (spec §10.3): until then, members of `g`
    /// keep its timestamps, which a recovering leader of another group may still need, and a relay
    /// of it can never land on a newer message.
    func slotReusable(_ g: GroupID, _ slot: Int) -> Bool {
        let seq = occupant[Int(g.rawValue) * layout.slots + slot]
        guard seq != 0, nextSequence - seq <= UInt64(layout.senderStagingCount) else { return true }
        return stagingFree(Int((seq - 1) % UInt64(layout.senderStagingCount)))
    }

    /// Slots released by every member of `g`, as a slot counter.
    public func releasedEverywhere(_ g: GroupID) -> Int {
        var low = Int.max
        for server in layout.servers(of: g) {
            if outbox.isDead(server) { continue }   // a crashed member never releases: don't wait for it
            let v = Int(RemoteMemory.loadAcquiring(region + layout.releaseCellOffset(server: server)))
            low = min(low, v)
        }
        return low
    }

    /// Checks a multicast without sending it: the errors ``multicast(_:to:)`` would throw.
    public func validate(payloadCount: Int, destinations: UnsafeBufferPointer<GroupID>) throws(MulticastError) {
        guard payloadCount <= layout.maxPayload else { throw .payloadTooLarge(size: payloadCount, maximum: layout.maxPayload) }
        guard !destinations.isEmpty else { throw .noDestinations }
        guard destinations.count <= layout.maxDestinations else {
            throw .tooManyDestinations(count: destinations.count, maximum: layout.maxDestinations)
        }
        for (i, g) in destinations.enumerated() {
            guard Int(g.rawValue) < layout.groupCount else { throw .unknownGroup(g, groupCount: layout.groupCount) }
            for k in 0..<i where destinations[k] == g { throw .duplicateDestination(g) }
        }
    }

    /// Step 1: writes the message into the next slot at every process of every destination group.
    /// Returns its id, or nil when a destination ring or the outbox is full (nothing was written; try
    /// again after the driver made progress).
    public func multicast(_ payload: UnsafeRawBufferPointer, to destinations: UnsafeBufferPointer<GroupID>) throws(MulticastError) -> MessageID? {
        try validate(payloadCount: payload.count, destinations: destinations)
        let buffer = Int((nextSequence &- 1) % UInt64(layout.senderStagingCount))
        guard stagingFree(buffer) else { return nil }
        // The buffer's step-1 record must have been reported before it is reused.
        if tracksInPlace, nextSequence - inPlaceHead >= UInt64(layout.senderStagingCount) { return nil }
        for g in destinations {
            guard tails[Int(g.rawValue)] - releasedEverywhere(g) < layout.slots,
                  slotReusable(g, tails[Int(g.rawValue)] % layout.slots) else { return nil }
            for q in layout.servers(of: g) where !outbox.hasRoom(q) { return nil }
        }
        let id = MessageID(sender: me, sequence: nextSequence)
        let maxDst = layout.maxDestinations
        for (j, g) in destinations.enumerated() {
            scratchGroups[j] = g
            scratchSlots[j] = UInt16(tails[Int(g.rawValue)] % layout.slots)
            stagingGroups[buffer * maxDst + j] = g
            stagingCounters[buffer * maxDst + j] = tails[Int(g.rawValue)]
        }
        stagingCount[buffer] = UInt8(destinations.count)
        let staging = region + layout.stagingOffset(buffer)
        let length = MessageSlot.encode(into: staging, layout: layout, id: id,
                                        destinations: scratchGroups.prefix(upTo: destinations.count),
                                        slots: scratchSlots.prefix(upTo: destinations.count), payload: payload)
        var t = 0
        let targetBase = buffer * maxDst * layout.maxGroupSize
        for (j, g) in destinations.enumerated() {
            let offset = layout.slotOffset(sender: senderIndex, slot: Int(scratchSlots[j]))
            for p in layout.servers(of: g) {
                let counter = outbox.enqueue(p, region: Layout.ringRegion, offset: offset, source: staging, length: length)
                inPlaceTargets[targetBase + t] = (Int32(p), counter)
                t += 1
            }
            occupant[Int(g.rawValue) * layout.slots + Int(scratchSlots[j])] = nextSequence
            tails[Int(g.rawValue)] += 1
        }
        if t < maxDst * layout.maxGroupSize { inPlaceTargets[targetBase + t] = (-1, 0) }
        inPlaceIDs[buffer] = id.rawValue
        nextSequence += 1
        return id
    }

    func stagingFree(_ buffer: Int) -> Bool {
        let maxDst = layout.maxDestinations
        for j in 0..<Int(stagingCount[buffer]) {
            let g = stagingGroups[buffer * maxDst + j]
            if releasedEverywhere(g) <= stagingCounters[buffer * maxDst + j] { return false }
        }
        // Released everywhere is not enough with the fast path: a follower takes the body from its
        // leader's write and may release it before this sender's own write to it landed, and a
        // write reads its source when it is carried out (seeds 1403 and 1435 delivered a later
        // message's body so). Its writes must be retired too; unsignaled ones get a signaled flush.
        // Without the fast path a destination releases only what this sender's write brought, so
        // the release already says the write was carried out.
        guard layout.config.singleGroupFastPath else { return true }
        let width = maxDst * layout.maxGroupSize
        var retired = true
        for t in 0..<width {
            let target = inPlaceTargets[buffer * width + t]
            if target.peer < 0 { break }
            let p = Int(target.peer)
            if !outbox.isDead(p), outbox.retired(p) < target.counter {
                retired = false
                if outbox.needsFlush(p) { outbox.flush(p, region: Layout.ringRegion, offset: layout.flushOffset) }
            }
        }
        return retired
    }

    /// Messages whose bodies are in place at every destination (step 1 complete), oldest first:
    /// calls `body` for each newly completed one. A body is in place once its write was retired by a
    /// signaled completion on that connection.
    public func pollInPlace(_ body: (MessageID) -> Void) {
        let buffers = UInt64(layout.senderStagingCount)
        let width = layout.maxDestinations * layout.maxGroupSize
        while inPlaceHead < nextSequence {
            let buffer = Int((inPlaceHead - 1) % buffers)
            let base = buffer * width
            for t in 0..<width {
                let target = inPlaceTargets[base + t]
                if target.peer < 0 { break }
                if !outbox.isDead(Int(target.peer)), outbox.retired(Int(target.peer)) < target.counter { return }
            }
            body(MessageID(rawValue: inPlaceIDs[buffer]))
            inPlaceHead += 1
        }
    }

    /// Whether some multicast still waits for step 1 to complete.
    public var awaitingInPlace: Bool { tracksInPlace && inPlaceHead < nextSequence }

    /// Set by a driver that reports step-1 completions with ``pollInPlace(_:)``; the sender then
    /// never runs more than its staging buffers ahead of those reports.
    public var tracksInPlace: Bool { unsafeAddress { tracksInPlaceCell.readAddress } unsafeMutableAddress { tracksInPlaceCell.address } }
    let tracksInPlaceCell = FixedCell(false)

    /// Whether `id`'s slots were released by every destination process (delivered everywhere).
    public func isDeliveredEverywhere(_ id: MessageID) -> Bool {
        guard let counter = counter(of: id) else { return false }
        if nextSequence - counter > UInt64(layout.senderStagingCount) { return true }
        let buffer = Int((counter - 1) % UInt64(layout.senderStagingCount))
        let maxDst = layout.maxDestinations
        for j in 0..<Int(stagingCount[buffer]) {
            if releasedEverywhere(stagingGroups[buffer * maxDst + j]) <= stagingCounters[buffer * maxDst + j] { return false }
        }
        return true
    }

    /// The driver reports each completion of a write this engine queued for `peer`.
    public func completed(peer: Int, id: UInt64, status: CompletionStatus) {
        guard status == .success else { return }
        outbox.completed(peer)
    }
}

extension SenderEngine {
    /// Whether destination process `process` released `id`'s slot (so delivered it).
    public func isDelivered(_ id: MessageID, at process: NodeID) -> Bool {
        guard let counter = counter(of: id), let g = layout.groupOf[process],
              let server = layout.serverIndexOf[process] else { return false }
        if nextSequence - counter > UInt64(layout.senderStagingCount) { return true }
        let buffer = Int((counter - 1) % UInt64(layout.senderStagingCount))
        let maxDst = layout.maxDestinations
        for j in 0..<Int(stagingCount[buffer]) where stagingGroups[buffer * maxDst + j] == g {
            let released = Int(RemoteMemory.loadAcquiring(region + layout.releaseCellOffset(server: server)))
            return released > stagingCounters[buffer * maxDst + j]
        }
        return false
    }
}

extension SenderEngine {
    /// Group member `server` (its server index, also its outbox peer) restarted with empty memory.
    /// The sender resumes writing to it from the lowest slot counter of its group that some other
    /// live member has not released yet, `lo`: it tells the member `lo` (its resume cell), then
    /// writes again, in counter order, the bodies of `lo ..< tail` from their staging buffers, which
    /// are intact since those messages are not released everywhere. Messages below `lo` were
    /// delivered by every live member of the group: the restarted member gets them with the state
    /// it copies from a peer, not from the rings. Its release cell here starts at `lo`, so slot
    /// reuse waits for its releases from then on.
    ///
    /// Off the hot path: once per restart. Every write goes on the fresh connection, in order, so
    /// the resume word lands before the bodies.
    public func peerRestarted(server p: Int) {
        outbox.revive(p)
        let g = layout.groupOf[layout.servers[p]]!
        var lo = Int.max
        for q in layout.servers(of: g) where q != p && !outbox.isDead(q) {
            lo = min(lo, Int(RemoteMemory.loadAcquiring(region + layout.releaseCellOffset(server: q))))
        }
        let tail = tails[Int(g.rawValue)]
        if lo == Int.max { lo = tail }
        // `revive` emptied the peer's queue, and the runtime sizes outboxes for this (`ProcessNode.outboxCapacity`).
        precondition(outbox.hasRoom(p, tail - lo + 1),
                     "a restart writes up to slotsPerRing (\(layout.slots)) bodies at once: the outbox must hold one more")
        RemoteMemory.storeReleasing(UInt64(lo), at: region + layout.releaseCellOffset(server: p))
        let word = UInt64(lo + 1)
        outbox.enqueue(p, region: Layout.ringRegion, offset: layout.resumeCellOffset(sender: senderIndex), length: 8) {
            $0.storeBytes(of: word, as: UInt64.self)
        }
        for counter in lo..<tail {
            let slot = counter % layout.slots
            let seq = occupant[Int(g.rawValue) * layout.slots + slot]
            let staging = region + layout.stagingOffset(Int((seq - 1) % UInt64(layout.senderStagingCount)))
            outbox.enqueue(p, region: Layout.ringRegion, offset: layout.slotOffset(sender: senderIndex, slot: slot),
                           source: staging, length: MessageSlot.bodyLength(staging, layout: layout))
        }
        // Step-1 records still name the old incarnation's queue, whose counters restarted: count
        // those writes as done (the bodies were just written again).
        for t in 0..<inPlaceTargets.count where inPlaceTargets[t].peer == Int32(p) { inPlaceTargets[t].counter = 0 }
    }
}
