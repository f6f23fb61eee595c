import RamCastFabric

extension ServerEngine {
    /// Room for a proposal's writes. Writes to peers known to be gone are dropped by the outbox,
    /// which always has room for them.
    func hasRoomToPropose(_ base: UnsafeRawPointer, destinationCount: Int) -> Bool {
        // A fast-path proposal writes the body ahead of the timestamp.
        guard hasRoom(inGroup: group, destinationCount == 1 && layout.config.singleGroupFastPath ? 2 : 1) else { return false }
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
    /// A single-group message proposed as it arrives (`fast`) takes the fast path: the follower
    /// writes are signaled, and once f of them completed the timestamp is chosen (only this leader
    /// can write those logs). Each goes behind a write of the message's body into that follower's
    /// ring, on the same connection, so a completed timestamp write means the follower has the body
    /// too: if the sender crashes having reached this leader alone and this leader crashes after
    /// delivering, its followers can still deliver (a completed log write alone, without the body,
    /// would leave the next leader a value nobody can deliver). Re-proposals of a recovery section
    /// take the normal path.
    func propose(_ index: Int, ts given: Timestamp? = nil, fast: Bool = false) {
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
        let single = fast && dstCount[index] == 1 && layout.config.singleGroupFastPath
        if single { writeBodyToFollowers(index) }
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

    /// Fast path: the body of the message in table entry `index`, from this leader's ring slot into
    /// the same slot of every ready follower (slot numbers are shared within a group). The sender
    /// writes the same bytes there, before or after. The slot is released only once these writes
    /// are retired (`bodyWritesInFlight`).
    private func writeBodyToFollowers(_ index: Int) {
        let offset = layout.slotOffset(sender: index / layout.slots, slot: index % layout.slots)
        let length = MessageSlot.bodyLength(ring + offset, layout: layout)
        let first = layout.serverIndex(group: group, member: 0)
        let n = layout.groupSize(group)
        for follower in layout.servers(of: group) where follower != serverIndex && followerReady[follower - first] {
            fastPathBodyWrites[index * n + follower - first] =
                outbox.enqueue(follower, region: Layout.ringRegion, offset: offset, source: ring + offset, length: length)
        }
        stats.fastPathBodies += 1
    }

    /// Room in the outbox for `count` writes to every member of `h` other than this process.
    func hasRoom(inGroup h: GroupID, _ count: Int = 1) -> Bool {
        for q in layout.servers(of: h) where q != serverIndex {
            if !outbox.hasRoom(q, count) { return false }
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
