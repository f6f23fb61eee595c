import RamCastFabric

extension ServerEngine {
    /// Step 1, receiving side: a sender's bodies arrive in its ring in slot order (one RC connection,
    /// in-order writes), so each ring is polled at the next expected slot only. A body counts once its
    /// CRC matches. A leader timestamps it at once (step 2).
    func receiveBodies() -> Bool {
        var progress = false
        let slots = layout.slots
        for sender in 0..<expected.count {
            // A crashed sender's ring is taken in any slot order (CrashedSenderRelay.swift).
            if senderCrashed[sender] { continue }
            // After a restart, a ring is polled only from the counter its sender resumed at.
            if resumesOutstanding > 0, awaitingResume[sender], !takeResume(sender) { continue }
            while true {
                let slot = expected[sender] % slots
                let index = sender * slots + slot
                guard !present[index], !freed[index] else { break }   // still held from a lap ago
                let base = ring + layout.slotOffset(sender: sender, slot: slot)
                // Bodies stay in their slots after release, so an idle ring shows the last message
                // taken: its id says so without checksumming it again on every poll.
                let id = MessageID(rawValue: UInt64(littleEndian: RemoteMemory.loadAcquiring(base)))
                guard MessageID.isNewer(id.sequence, than: lastSequence[sender]) else { break }
                guard let header = MessageSlot.read(base, layout: layout) else { break }
                // A relay of a message already taken (and perhaps delivered) is not a new message.
                guard header.id.sender == layout.config.senders[sender], MessageID.isNewer(header.id.sequence, than: lastSequence[sender]),
                      holdsOwnSlot(base, header, slot: slot) else { break }
                guard take(index, base: base, header: header) else { return progress }
                lastSequence[sender] = header.id.sequence
                expected[sender] += 1
                // Settled on arrival (`take`): its release could not count before the counter moved
                // past it (seed 35091: the sender then waited for that slot forever).
                if freed[index] { advanceReleased(sender) }
                progress = true
            }
        }
        return progress
    }

    /// Takes a complete body into table entry `index`; a leader timestamps it at once (step 2).
    /// Returns false, taking nothing, while a leader lacks outbox room for its step-2 writes.
    func take(_ index: Int, base: UnsafeRawPointer, header: MessageSlot.Header) -> Bool {
        if isLeader, !hasRoomToPropose(base, destinationCount: header.destinationCount) { return false }
        accept(index, base: base, header: header)
        if dropCount > 0, !rejoining, dropIDs[index] == header.id.rawValue {
            settle(index)   // delivered by the group before this process rejoined (Rejoin.swift)
            return true
        }
        if isLeader, layout.config.steps >= 2 { propose(index, fast: true) }
        return true
    }

    private func accept(_ index: Int, base: UnsafeRawPointer, header: MessageSlot.Header) {
        let maxDst = layout.maxDestinations
        present[index] = true
        delivered[index] = false
        ordered[index] = false
        fastPathAcks[index] = 0
        ids[index] = header.id
        dstCount[index] = UInt8(header.destinationCount)
        for j in 0..<maxDst {
            let k = index * maxDst + j
            timestamps[k] = .none
            tsBallots[k] = .none
            if j < header.destinationCount {
                dsts[k] = MessageSlot.destination(base, j)
                slotNumbers[k] = UInt16(MessageSlot.slotNumber(base, j, layout: layout))
            }
        }
        pendingList.append(Int32(index))
        stats.bodies += 1
    }

    /// Whether the intact body at `base` is addressed to this process's group, in `slot` of its
    /// ring. A sender and a relay only ever write such bodies; this keeps a stray one (a fabric's or
    /// a peer's mistake) from being taken and delivered as if it were the slot's message.
    @inline(__always)
    func holdsOwnSlot(_ base: UnsafeRawPointer, _ header: MessageSlot.Header, slot: Int) -> Bool {
        for j in 0..<header.destinationCount where MessageSlot.destination(base, j) == group {
            return MessageSlot.slotNumber(base, j, layout: layout) == slot
        }
        return false
    }

    /// Index of `g` among the message's destinations, if it is one.
    @inline(__always)
    func destinationIndex(_ index: Int, _ g: GroupID) -> Int? {
        let maxDst = layout.maxDestinations
        for j in 0..<Int(dstCount[index]) where dsts[index * maxDst + j] == g { return j }
        return nil
    }

    /// The message's slot number in group `g`'s rings.
    @inline(__always)
    func slotNumber(_ index: Int, in g: GroupID) -> Int? {
        destinationIndex(index, g).map { Int(slotNumbers[index * layout.maxDestinations + $0]) }
    }
}
