import RamCastFabric

extension ServerEngine {
    /// Room for a proposal's writes. Writes to peers known to be gone are dropped by the outbox,
    /// which always has room for them.
    func hasRoomToPropose(_ base: UnsafeRawPointer, destinationCount: Int) -> Bool {
        guard hasRoom(inGroup: group) else { return false }
        for j in 0..<destinationCount {
            let h = MessageSlot.destination(base, j)
            if h != group, !outbox.hasRoom(leaderPeer(of: h)) { return false }
        }
        return true
    }

    /// Step 2: the leader assigns the next timestamp ⟨clock+1, g⟩ (or, in recovery, re-proposes `ts`)
    /// and writes `(seq, ballot, ts)` into log[g] of each follower (one dense sequence for all of
    /// them) and of each other destination leader (one sequence per leader). Clock bump, sequence
    /// assignment and enqueueing happen in one step of this single-threaded engine, which is what
    /// §10.1 asks of the leader.
    ///
    /// A single-group message takes the fast path: the follower writes are signaled, and once f of
    /// them completed the timestamp is chosen (only this leader can write those logs).
    func propose(_ index: Int, ts given: Timestamp? = nil) {
        let maxDst = layout.maxDestinations
        let sender = UInt16(index / layout.slots)
        let ts: Timestamp
        if let given {
            ts = given
        } else {
            clock += 1
            ts = Timestamp(clock: clock, group: group)
        }
        if ts.clock > ownProposalMax { ownProposalMax = ts.clock }
        let ballot = groupBallots[Int(group.rawValue)]
        let j = destinationIndex(index, group)!
        timestamps[index * maxDst + j] = ts
        tsBallots[index * maxDst + j] = ballot
        let single = dstCount[index] == 1 && layout.config.singleGroupFastPath
        followerSeq &+= 1
        let entry = LogEntry(seq: followerSeq, ballot: ballot, tsBallot: ballot, timestamp: ts, message: ids[index],
                             sender: sender, slot: slotNumbers[index * maxDst + j], group: group, kind: .proposal)
        emitToFollowers(entry, id: single ? WriteTag.fastPath(index, ids[index]) : 0, signal: single)
        for k in 0..<Int(dstCount[index]) where k != j {
            var e = entry
            e.slot = slotNumbers[index * maxDst + k]
            emitToLeader(of: dsts[index * maxDst + k], e)
        }
        tracer?.proposed(entry, by: me)
        stats.proposals += 1
    }

    /// Room in the outbox for one write to every member of `h` other than this process.
    func hasRoom(inGroup h: GroupID) -> Bool {
        for q in layout.servers(of: h) where q != serverIndex {
            if !outbox.hasRoom(q) { return false }
        }
        return true
    }

    /// Writes `cell` at `offset` of the ring region of every member of `h`: release-stores here,
    /// a write to the others (acks, clock cells).
    func storeCell(_ cell: AckCell, at offset: Int, inGroup h: GroupID) {
        for q in layout.servers(of: h) {
            if q == serverIndex {
                cell.storeReleasing(at: ring + offset)
            } else {
                outbox.enqueue(q, region: Layout.ringRegion, offset: offset, length: AckCell.size) { cell.encode(into: $0) }
            }
        }
    }

    /// Appends `entry` (its `seq` already assigned) to this leader's stream: to every follower that
    /// is ready for it, and to the leader's own copy in its (otherwise unused) log[g], from which a
    /// follower that joins late is replayed.
    func emitToFollowers(_ entry: LogEntry, id: UInt64 = 0, signal: Bool = false) {
        entry.encode(into: log + layout.logOffset(group: group, seq: entry.seq))
        let first = layout.serverIndex(group: group, member: 0)
        for follower in layout.servers(of: group) where follower != serverIndex && followerReady[follower - first] {
            outbox.enqueue(follower, region: Layout.logRegion,
                           offset: layout.logOffset(group: group, seq: entry.seq), length: LogEntry.wireSize,
                           id: id, signal: signal) { entry.encode(into: $0) }
        }
    }

    /// Sends this group's timestamp to the leader of `h`, in the sequence of this leader's writes to it.
    func emitToLeader(of h: GroupID, _ entry: LogEntry) {
        let hi = Int(h.rawValue)
        guard leaderReady[hi] else { return }
        leaderSeq[hi] &+= 1
        var e = entry
        e.seq = leaderSeq[hi]
        e.epoch = LogEntry.epoch(groupBallots[hi])
        outbox.enqueue(leaderPeer(of: h), region: Layout.logRegion,
                       offset: layout.logOffset(group: group, seq: e.seq), length: LogEntry.wireSize) { e.encode(into: $0) }
    }

    /// Recovery: forwards the known timestamp of destination `k` to the followers.
    func emitForward(_ index: Int, _ k: Int) {
        let maxDst = layout.maxDestinations
        let j = destinationIndex(index, group)!
        followerSeq &+= 1
        let entry = LogEntry(seq: followerSeq, ballot: groupBallots[Int(group.rawValue)], tsBallot: tsBallots[index * maxDst + k],
                             timestamp: timestamps[index * maxDst + k], message: ids[index], sender: UInt16(index / layout.slots),
                             slot: slotNumbers[index * maxDst + j], group: dsts[index * maxDst + k], kind: .forward)
        emitToFollowers(entry)
        tracer?.forwarded(entry, by: me)
    }
}
