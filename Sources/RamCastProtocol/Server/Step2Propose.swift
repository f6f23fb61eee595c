import RamCastFabric

extension ServerEngine {
    func hasRoomToPropose(_ base: UnsafeRawPointer, destinationCount: Int) -> Bool {
        for (i, follower) in layout.members(of: group).enumerated() where i != member {
            if !outbox.hasRoom(peer(server: follower)) { return false }
        }
        for j in 0..<destinationCount {
            let h = MessageSlot.destination(base, j)
            if h != group, !outbox.hasRoom(peer(server: leader(of: h))) { return false }
        }
        return true
    }

    /// Step 2: the leader assigns the next timestamp ⟨clock+1, g⟩ and writes `(seq, ballot, ts)` into
    /// log[g] of each follower (one dense sequence for all of them) and of each other destination
    /// leader (one sequence per leader). Clock bump, sequence assignment and enqueueing happen in one
    /// step of this single-threaded engine, which is what §10.1 asks of the leader.
    ///
    /// A single-group message takes the fast path: the follower writes are signaled, and once f of
    /// them completed the timestamp is chosen (only this leader can write those logs).
    func propose(_ index: Int) {
        let maxDst = layout.maxDestinations
        let sender = UInt16(index / layout.slots)
        clock += 1
        let ts = Timestamp(clock: clock, group: group)
        let ballot = ballots[Int(group.rawValue)]
        let j = destinationIndex(index, group)!
        timestamps[index * maxDst + j] = ts
        tsBallots[index * maxDst + j] = ballot
        let single = dstCount[index] == 1
        let id = ids[index]
        let mySlot = UInt16(slotNumbers[index * maxDst + j])

        followerSeq &+= 1
        let entry = LogEntry(seq: followerSeq, ballot: ballot, tsBallot: ballot, timestamp: ts, message: id, sender: sender,
                             slot: mySlot, group: group, kind: .proposal)
        for (i, follower) in layout.members(of: group).enumerated() where i != member {
            outbox.enqueue(peer(server: follower), region: Layout.logRegion,
                           offset: layout.logOffset(group: group, seq: followerSeq), length: LogEntry.wireSize,
                           id: single ? WriteTag.fastPath(index) : 0, signal: single) { entry.encode(into: $0) }
        }
        for k in 0..<Int(dstCount[index]) where k != j {
            let h = dsts[index * maxDst + k]
            let hi = Int(h.rawValue)
            leaderSeq[hi] &+= 1
            var e = entry
            e.seq = leaderSeq[hi]
            e.slot = slotNumbers[index * maxDst + k]
            outbox.enqueue(peer(server: leader(of: h)), region: Layout.logRegion,
                           offset: layout.logOffset(group: group, seq: e.seq), length: LogEntry.wireSize) { e.encode(into: $0) }
        }
        tracer?.proposed(entry, by: me)
        stats.proposals += 1
    }
}
