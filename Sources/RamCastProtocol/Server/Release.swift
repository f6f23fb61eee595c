import RamCastFabric

extension ServerEngine {
    /// Clears a delivered message's slot and records it freed. Slots free out of order (delivery is
    /// by timestamp, not by slot), so the sender is told only the contiguous count.
    func release(_ index: Int, base: UnsafeMutableRawPointer) {
        present[index] = false
        delivered[index] = true
        ordered[index] = false
        if (!relaysInFlight.isEmpty && relaysInFlight[index] != nil) || bodyWritesInFlight(index) {
            // The slot is the source of relays still in flight: clear it once they are done.
            deferredReleases.append(index)
            return
        }
        clear(index, base: base)
    }

    /// Releases the slots whose relays have all been retired (or whose target is gone).
    func releaseDeferred() {
        guard !deferredReleases.isEmpty else { return }
        deferredReleases.removeAll { index in
            if var relays = relaysInFlight[index] {
                relays.removeAll { outbox.isDead($0.peer) || outbox.retired($0.peer) >= $0.counter }
                relaysInFlight[index] = relays.isEmpty ? nil : relays
                if !relays.isEmpty { return false }
            }
            if bodyWritesInFlight(index) { return false }
            clear(index, base: ring + layout.slotOffset(sender: index / layout.slots, slot: index % layout.slots))
            return true
        }
    }

    /// Whether a fast-path body write from this slot (`Step2Propose.swift`) is not retired yet: the
    /// NIC reads its source until then, and a released slot takes the sender's next message.
    func bodyWritesInFlight(_ index: Int) -> Bool {
        guard layout.config.singleGroupFastPath else { return false }
        let n = layout.groupSize(group)
        let first = layout.serverIndex(group: group, member: 0)
        var inFlight = false
        for m in 0..<n {
            let k = index * n + m
            let counter = fastPathBodyWrites[k]
            guard counter != 0 else { continue }
            if outbox.isDead(first + m) || outbox.retired(first + m) >= counter {
                fastPathBodyWrites[k] = 0
            } else {
                inFlight = true
            }
        }
        return inFlight
    }

    /// Body writes to outbox peer `p` whose connection was replaced: carried out or dropped with it
    /// (the new connection's counters start over).
    func forgetBodyWrites(to p: Int) {
        guard layout.config.singleGroupFastPath, layout.groupOf[layout.servers[p]] == group else { return }
        let n = layout.groupSize(group)
        let m = p - layout.serverIndex(group: group, member: 0)
        for index in 0..<(fastPathBodyWrites.count / n) { fastPathBodyWrites[index * n + m] = 0 }
    }

    private func clear(_ index: Int, base: UnsafeMutableRawPointer) {
        freed[index] = true
        // Clear the ack area, so no ack of this message meets the next one in the slot unchecked.
        // The body stays: a relay may still need it if its sender crashes (Task 10); the slot's next
        // message overwrites it, and `lastSequence` keeps the old one from being taken twice.
        (base + layout.ackOffset).initializeMemory(as: UInt8.self, repeating: 0, count: layout.ackAreaSize)
        advanceReleased(index / layout.slots)
    }

    /// Moves the sender's released count over the freed slots that follow it.
    func advanceReleased(_ sender: Int) {
        while released[sender] < expected[sender] {
            let i = sender * layout.slots + released[sender] % layout.slots
            guard freed[i] else { break }
            freed[i] = false
            released[sender] += 1
            releasePending[sender] = true
        }
    }

    /// Writes each sender's released count into its release cell for this process (an 8-byte inline
    /// write, the "+1 reset" of the spec's write counts).
    func sendReleases() -> Bool {
        var progress = false
        releaseDeferred()
        for sender in 0..<releasePending.count where releasePending[sender] {
            let p = peer(sender: sender)
            guard outbox.hasRoom(p) else { continue }
            let value = UInt64(released[sender])
            outbox.enqueue(p, region: Layout.senderRegion, offset: layout.releaseCellOffset(server: serverIndex), length: 8) {
                $0.storeBytes(of: value, as: UInt64.self)
            }
            releasePending[sender] = false
            stats.releases += 1
            progress = true
        }
        return progress
    }
}
