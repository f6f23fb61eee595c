import RamCastFabric

extension ServerEngine {
    /// Marks ORDERED every pending message whose every destination group h has (§10.2) a timestamp
    /// present here *and* f_h + 1 votes for exactly that `(ballot, ts)`: h's leader's proposal plus
    /// f_h matching follower acks in this slot's ack area. A single-group message at its leader is
    /// also ordered once f of its signaled follower writes completed (the fast path).
    func detectOrdered() -> Bool {
        var progress = false
        var i = 0
        while i < pendingList.count {
            let index = Int(pendingList[i])
            if let final = finalTimestamp(index) {
                ordered[index] = true
                heap.push(ts: final.rawValue, id: ids[index].rawValue, index: Int32(index))
                pendingList.swapAt(i, pendingList.count - 1)
                pendingList.removeLast()
                progress = true
            } else {
                i += 1
            }
        }
        return progress
    }

    /// The final timestamp if the message is ordered, else nil.
    private func finalTimestamp(_ index: Int) -> Timestamp? {
        let maxDst = layout.maxDestinations
        switch layout.config.steps {
        case 1: return Timestamp(rawValue: 1)
        case 2:
            let ts = timestamps[index * maxDst + destinationIndex(index, group)!]
            return ts.isNone ? nil : ts
        default: break
        }
        let count = Int(dstCount[index])
        var final = Timestamp.none
        for j in 0..<count {
            let k = index * maxDst + j
            let ts = timestamps[k]
            let h = dsts[k]
            if ts.isNone {
                // §10.2: without the timestamp, acks alone must not order the message.
                guard !fixes.contains(.timestampsPresent), acksAlone(index, j, h) else { return nil }
                continue
            }
            if count == 1, h == group, isLeader, layout.config.singleGroupFastPath, Int(fastPathAcks[index]) >= layout.f(of: h) {
                stats.fastPathOrders += 1
            } else {
                guard isDecided(index, j) else { return nil }
            }
            if ts > final { final = ts }
        }
        return final
    }

    /// Whether destination `j`'s timestamp has f+1 votes here: its leader's proposal and f
    /// matching follower acks for exactly `(ballot, ts)`.
    func isDecided(_ index: Int, _ j: Int) -> Bool {
        let k = index * layout.maxDestinations + j
        let ts = timestamps[k]
        guard !ts.isNone else { return false }
        let h = dsts[k]
        let want = AckWord.pack(tsBallots[k], ts)
        let slotBase = layout.slotOffset(sender: index / layout.slots, slot: index % layout.slots)
        let leader = leaderPeer(of: h)
        var votes = 1   // the leader's proposal
        for q in layout.servers(of: h) where q != leader {
            if RemoteMemory.loadAcquiring(ring + layout.ackOffset(slotOffset: slotBase, server: q)) == want {
                votes += 1
            }
        }
        return votes >= layout.f(of: h) + 1
    }

    /// Without the §10.2 fix only (the paper's Task 5): f+1 votes under h's current ballot, whatever
    /// timestamp they ack.
    private func acksAlone(_ index: Int, _ j: Int, _ h: GroupID) -> Bool {
        let slotBase = layout.slotOffset(sender: index / layout.slots, slot: index % layout.slots)
        var votes = 1
        let ballot = UInt64(groupBallots[Int(h.rawValue)].rawValue & 0xFFFF)
        let leader = leaderPeer(of: h)
        for q in layout.servers(of: h) where q != leader {
            let word = RemoteMemory.loadAcquiring(ring + layout.ackOffset(slotOffset: slotBase, server: q))
            if word != 0, word >> 48 == ballot { votes += 1 }
        }
        return votes >= layout.f(of: h) + 1
    }

    /// The smallest final timestamp a pending (unordered) message here can still end with, or
    /// `.none` when nothing bounds it (it then holds every delivery back).
    ///
    /// Bounds are its known group timestamps, and, while its own group's timestamp is unknown, anything
    /// above what this process's own group log has shown (a leader's later timestamps exceed its
    /// earlier ones). Messages not here yet get their own group's timestamp later still, so they never
    /// hold delivery back. After a group changed leaders, its *undecided* timestamps are no bound: a
    /// later recovery may re-propose an older, smaller value (see docs/failure-handling.md); only
    /// decided ones, and what the initial ballot's log showed, still bound.
    private func pendingFloor() -> Timestamp? {
        var floor: Timestamp?
        let maxDst = layout.maxDestinations
        let g = Int(group.rawValue)
        for raw in pendingList {
            let index = Int(raw)
            var lb = Timestamp.none
            var ownKnown = false
            for j in 0..<Int(dstCount[index]) {
                let k = index * maxDst + j
                let ts = timestamps[k]
                guard !ts.isNone else { continue }
                let h = dsts[k]
                if h == group { ownKnown = true }
                if !changed[Int(h.rawValue)] || isDecided(index, j), ts > lb { lb = ts }
            }
            if !ownKnown {
                let above = Timestamp(rawValue: (changed[g] ? initialOwnMax : maxOwnLogTs).rawValue + 1)
                if above > lb { lb = above }
            }
            if floor == nil || lb < floor! { floor = lb }
        }
        return floor
    }

    /// Delivers ordered messages in `(final ts, id)` order while nothing pending can come before them.
    func deliverReady(_ deliver: (borrowing Delivery) -> Void) -> Bool {
        var progress = false
        // Steps 1 and 2 (benchmark modes) deliver as soon as a message is "ordered".
        let floor = layout.config.steps < 3 ? nil : pendingFloor()
        while let top = heap.top {
            if let floor, top.ts >= floor.rawValue { break }
            heap.pop()
            let index = Int(top.index)
            let sender = index / layout.slots
            let slot = index % layout.slots
            let base = ring + layout.slotOffset(sender: sender, slot: slot)
            let length = MessageSlot.payloadLength(base)
            deliver(Delivery(id: ids[index], finalTimestamp: Timestamp(rawValue: top.ts),
                             payload: MessageSlot.payload(base, layout: layout, length: length),
                             process: me, group: group, slot: base, destinationCount: Int(dstCount[index])))
            stats.delivered += 1
            release(index, base: base)
            progress = true
        }
        return progress
    }
}
