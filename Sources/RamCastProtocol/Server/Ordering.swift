import RamCastFabric

extension ServerEngine {
    /// Marks ORDERED every pending message whose every destination group h has (§10.2) a timestamp
    /// present here *and* f_h + 1 votes for exactly that `(ballot, ts)`: h's leader's proposal plus
    /// f_h matching follower acks in this slot's ack area. A single-group message at its leader is
    /// also ordered once f of its signaled follower writes completed (the fast path). Own-group
    /// decisions on the way raise the delivery watermark (`watermark(needing:)`).
    func detectOrdered() -> Bool {
        var progress = false
        var i = 0
        let watermarkOpen = layout.config.steps >= 3 && hasOwnRecoverySection
        while i < pendingList.count {
            let index = Int(pendingList[i])
            if watermarkOpen { noteOwnDecision(index) }
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
                #if DEBUG
                guard !fixes.contains(.timestampsPresent), acksAlone(index, j, h) else { return nil }
                continue
                #else
                return nil
                #endif
            }
            if count == 1, h == group, isLeader, layout.config.singleGroupFastPath, Int(fastPathAcks[index]) >= layout.quorum(of: h) - 1 {
                stats.fastPathOrders += 1
                // f followers have the write landed, and report it (and the recovery marker before
                // it) in any later 1B: as good as f acks for the watermark.
                if watermarkWouldRise(to: ts.clock) { decidedClock = ts.clock }
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
        let want = AckCell(tsBallots[k], ts.rawValue)
        let slotBase = layout.slotOffset(sender: index / layout.slots, slot: index % layout.slots)
        let leader = leaderPeer(of: h)
        var votes = 1   // the leader's proposal
        for q in layout.servers(of: h) where q != leader {
            if AckCell.load(ring + layout.ackOffset(slotOffset: slotBase, server: q)) == want {
                votes += 1
            }
        }
        return votes >= layout.quorum(of: h)
    }

    #if DEBUG
    /// Without the §10.2 fix only (the paper's Task 5): f+1 votes under h's current ballot, whatever
    /// timestamp they ack. Debug builds only: it exists to show the failure the fix prevents.
    private func acksAlone(_ index: Int, _ j: Int, _ h: GroupID) -> Bool {
        let slotBase = layout.slotOffset(sender: index / layout.slots, slot: index % layout.slots)
        var votes = 1
        let ballot = groupBallots[Int(h.rawValue)]
        let leader = leaderPeer(of: h)
        for q in layout.servers(of: h) where q != leader {
            if AckCell.load(ring + layout.ackOffset(slotOffset: slotBase, server: q)).isUnder(ballot) { votes += 1 }
        }
        return votes >= layout.quorum(of: h)
    }
    #endif

    /// This process has the recovery section of the own-group ballot it follows (the initial
    /// ballot has none to have).
    var hasOwnRecoverySection: Bool { recoveredBallot == groupBallots[Int(group.rawValue)] }

    /// Whether an own-group decision at clock `c` in this ballot is new evidence for the watermark:
    /// above it, and proposed after the recovery section.
    @inline(__always)
    private func watermarkWouldRise(to c: UInt64) -> Bool {
        hasOwnRecoverySection && c > recoveryTop && c > decidedClock
    }

    /// Raises the watermark with the message's own-group timestamp if it was proposed in this ballot
    /// after the recovery section and has f+1 votes.
    @inline(__always)
    private func noteOwnDecision(_ index: Int) {
        guard let j = destinationIndex(index, group) else { return }
        let k = index * layout.maxDestinations + j
        let c = timestamps[k].clock
        guard watermarkWouldRise(to: c), tsBallots[k] == groupBallots[Int(group.rawValue)], isDecided(index, j) else { return }
        decidedClock = c
    }

    /// The clock that member `q` published in its clock cell under this ballot, if any.
    @inline(__always)
    private func publishedClock(of q: Int) -> UInt64? {
        let cell = AckCell.load(ring + layout.clockCellOffset(server: q))
        return cell.isUnder(groupBallots[Int(group.rawValue)]) ? cell.value : nil
    }

    /// The delivery watermark W (a clock value): this group's future timestamps, under this ballot or
    /// any later one, for messages this process has not seen a timestamp of in this ballot, all exceed
    /// W; and values of ballots older than this one's recovery section cannot come back.
    ///
    /// Why: a value counts only when f+1 members of this group had their clock past it and had this
    /// ballot's recovery section, *before* they accepted any later 1A. Any later candidate hears one of
    /// them (quorums meet), so its fresh timestamps pass W and it ignores older ballots' values (see
    /// `Recovery.maxRecovered`); and under this ballot, the leader's values only grow along its
    /// stream, which this process has processed past W. Evidence for "f+1 members": a value of this
    /// ballot's stream after the recovery marker decided by f+1 votes (followers ack only in stream
    /// order), or f followers' clock cells (see ``Layout/clockCellOffset(server:)``) plus the leader.
    ///
    /// Undecided timestamps of *other* groups are no evidence of anything here: this process may not
    /// have heard yet of a recovery in that group, which can choose a smaller value (that was the
    /// stale-view bug, `StaleViewTests`).
    private func watermark(needing target: UInt64) -> UInt64 {
        guard target > decidedClock else { return decidedClock }
        // A message ordered before this ballot's timestamp for it was recorded (by its decided value
        // of an older ballot) may be the one whose decision in this ballot is awaited.
        for i in 0..<heap.count { noteOwnDecision(Int(heap.key(at: i).index)) }
        let w = decidedClock
        guard target > w else { return w }
        let leader = leaderPeer(of: group)
        let cap = isLeader ? clock : streamMax
        let need = layout.quorum(of: group) - 1   // followers; the leader's vote is implied
        guard need > 0 else { return max(w, cap) }
        // The largest value v that at least f followers' cells reach (the groups are small).
        var best: UInt64 = 0
        for q in layout.servers(of: group) where q != leader {
            guard let v = publishedClock(of: q), v > best else { continue }
            var reach = 0
            for r in layout.servers(of: group) where r != leader {
                if let other = publishedClock(of: r), other >= v { reach += 1 }
            }
            if reach >= need { best = v }
        }
        return max(w, min(best, cap))
    }

    /// Publish this process's clock to its group's clock cells, when a delivery waits on the
    /// watermark and no proposal of this ballot that could raise it by votes is in sight. The
    /// leader's cell counts for nothing (its vote is implied), but the followers answer it.
    private func publishClock(for target: UInt64) {
        guard hasNewClockToPublish, clock >= target, ownProposalMax < target || ownProposalMax <= recoveryTop else { return }
        publishClock()
    }

    /// Follower: answer another follower's publication. The process that waits needs f cells, and
    /// the others may have delivered already (by votes, or by cells of a follower that crashed
    /// since), so they would not publish on their own.
    func echoClockCells() -> Bool {
        guard layout.config.steps >= 3, groupLeaders[Int(group.rawValue)] != member, hasNewClockToPublish else { return false }
        for q in layout.servers(of: group) where q != serverIndex {
            if let v = publishedClock(of: q), v > publishedClock { return publishClock() }
        }
        return false
    }

    /// This process's clock moved since it last published, and it has this ballot's recovery
    /// section (a published clock promises both).
    private var hasNewClockToPublish: Bool { hasOwnRecoverySection && clock > publishedClock }

    @discardableResult
    private func publishClock() -> Bool {
        guard hasRoom(inGroup: group) else { return false }
        storeCell(AckCell(groupBallots[Int(group.rawValue)], clock), at: layout.clockCellOffset(server: serverIndex), inGroup: group)
        publishedClock = clock
        stats.clockPublications += 1
        return true
    }

    /// The smallest final timestamp a pending (unordered) message here can still end with, or
    /// `.none` when nothing bounds it (it then holds every delivery back).
    ///
    /// Bounds: its decided timestamps, of any group (Paxos: they stay); its own group's timestamp
    /// from this ballot's stream, decided or not (the stream only grows, and any later ballot
    /// re-proposes it or picks one above the watermark); and, without one, anything above the
    /// watermark `w` (see `watermark(needing:)`).
    private func pendingFloor(watermark w: UInt64) -> Timestamp? {
        var floor: Timestamp?
        let maxDst = layout.maxDestinations
        let ballot = groupBallots[Int(group.rawValue)]
        let above = Timestamp(clock: w + 1, group: GroupID(0))
        for raw in pendingList {
            let index = Int(raw)
            var lb = Timestamp.none
            var ownInBallot = false
            for j in 0..<Int(dstCount[index]) {
                let k = index * maxDst + j
                let ts = timestamps[k]
                guard !ts.isNone else { continue }
                if dsts[k] == group, tsBallots[k] == ballot {
                    ownInBallot = true
                    if ts > lb { lb = ts }
                } else if ts > lb, isDecided(index, j) {
                    lb = ts
                }
            }
            if !ownInBallot, above > lb { lb = above }
            if floor == nil || lb < floor! { floor = lb }
        }
        return floor
    }

    /// Delivers ordered messages in `(final ts, id)` order while nothing pending can come before
    /// them and the watermark covers them.
    func deliverReady(_ deliver: (borrowing Delivery) -> Void) -> Bool {
        var progress = false
        // Steps 1 and 2 (benchmark modes) deliver as soon as a message is "ordered".
        let full = layout.config.steps >= 3
        var w: UInt64 = 0
        var floor: Timestamp?
        if full, let top = heap.top {
            let target = Timestamp(rawValue: top.ts).clock
            w = watermark(needing: target)
            if target > w {
                publishClock(for: target)
                return false
            }
            floor = pendingFloor(watermark: w)
        }
        while let top = heap.top {
            if full {
                if Timestamp(rawValue: top.ts).clock > w { break }
                if let floor, top.ts >= floor.rawValue { break }
            }
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
            lastDelivered = ids[index]
            release(index, base: base)
            progress = true
        }
        return progress
    }
}
