import RamCastFabric

extension ServerEngine {
    /// Step 3: apply leader writes from the logs, each log strictly in sequence order.
    ///
    /// A follower reads only log[own group], written by its leader: proposals (its group's
    /// timestamps, which it acks to every destination process) and forwards (other groups'
    /// timestamps). A leader reads log[h] of every other group h, written by h's leader, and forwards
    /// each timestamp to its followers. An entry whose message body has not arrived yet blocks its
    /// log (§10.1): the body will come, from the sender or, after a sender crash, from a relay.
    func processLogs() -> Bool {
        var progress = false
        if layout.config.steps < 3 {
            return isLeader ? false : applyProposalsOnly()
        }
        if isLeader {
            for h in 0..<layout.groupCount where h != Int(group.rawValue) {
                while let entry = nextEntry(GroupID(UInt8(h))) {
                    if isObsolete(entry) {
                        logNext[h] &+= 1
                        progress = true
                        continue
                    }
                    guard let index = messageIndex(entry) else {
                        wantRelay(entry)
                        break
                    }
                    guard hasRoom(inGroup: group) else { return progress }
                    record(entry, index)
                    forward(entry, index)
                    logNext[h] &+= 1
                    progress = true
                }
            }
        } else {
            let g = Int(group.rawValue)
            #if DEBUG
            if !fixes.contains(.sequenceOrder) { progress = applyDeferred() }
            #endif
            while let entry = nextEntry(group) {
                if entry.kind == .settled {
                    if rejoining { noteSettled(entry) }
                    tracer?.applied(entry, by: me)
                    logNext[g] &+= 1
                    progress = true
                    continue
                }
                if entry.kind == .recovered {
                    applyRecoveryMarker(entry)
                    tracer?.applied(entry, by: me)
                    logNext[g] &+= 1
                    progress = true
                    continue
                }
                if isObsolete(entry) {
                    // About a message whose slot was reused since: every member delivered it.
                    tracer?.applied(entry, by: me)
                    logNext[g] &+= 1
                    progress = true
                    continue
                }
                guard let index = messageIndex(entry) else {
                    if dropCount > 0, isSettledElsewhere(entry) {
                        tracer?.applied(entry, by: me)
                        logNext[g] &+= 1
                        progress = true
                        continue
                    }
                    wantRelay(entry)
                    #if DEBUG
                    if !fixes.contains(.sequenceOrder) {
                        // The paper's final version: skip an entry whose body is missing, come back later.
                        deferredEntries.append(entry)
                        logNext[g] &+= 1
                        continue
                    }
                    #endif
                    break
                }
                if entry.kind == .proposal {
                    guard hasRoomToAck(index) else { break }
                    record(entry, index)
                    ack(entry, index)
                } else {
                    record(entry, index)
                }
                noteStreamValue(entry)
                tracer?.applied(entry, by: me)
                logNext[g] &+= 1
                progress = true
            }
        }
        return progress
    }

    #if DEBUG
    /// Without the §10.1 fix only (debug builds): applies skipped entries whose body has arrived since.
    private func applyDeferred() -> Bool {
        var progress = false
        var i = 0
        while i < deferredEntries.count {
            let entry = deferredEntries[i]
            if let index = messageIndex(entry), entry.kind != .proposal || hasRoomToAck(index) {
                record(entry, index)
                if entry.kind == .proposal { ack(entry, index) }
                noteStreamValue(entry)
                deferredEntries.remove(at: i)
                progress = true
            } else {
                i += 1
            }
        }
        return progress
    }
    #endif

    /// The leader's values only grow along its stream: what was processed here bounds what comes.
    @inline(__always)
    private func noteStreamValue(_ e: LogEntry) {
        let c = e.timestamp.clock
        if c > streamMax { streamMax = c }
        if e.kind == .proposal, c > ownProposalMax { ownProposalMax = c }
    }

    /// The new leader's recovery section ends here: every value it re-proposed (so every value any
    /// earlier ballot may have chosen) is now recorded, and this process says so in later 1Bs.
    private func applyRecoveryMarker(_ e: LogEntry) {
        recoveredBallot = e.ballot
        recoveryTop = e.timestamp.clock
        if e.timestamp.clock > streamMax { streamMax = e.timestamp.clock }
        if e.timestamp.clock > clock { clock = e.timestamp.clock }
        if rejoining { finishRejoin(after: e.message) }
    }

    /// Step-2 benchmark mode: followers record their leader's timestamps, and neither ack nor read
    /// forwards (leaders write none).
    private func applyProposalsOnly() -> Bool {
        var progress = false
        while let entry = nextEntry(group), let index = messageIndex(entry) {
            record(entry, index)
            logNext[Int(group.rawValue)] &+= 1
            progress = true
        }
        return progress
    }

    /// The next entry of log[h], if it has landed and belongs to the ballot this process accepted
    /// for h (a deposed leader's late write, landed before its permission was revoked, is ignored
    /// and will be overwritten by the new leader's entry of the same sequence number).
    @inline(__always)
    private func nextEntry(_ h: GroupID) -> LogEntry? {
        let seq = logNext[Int(h.rawValue)]
        guard let e = LogEntry.read(log + layout.logOffset(group: h, seq: seq), expected: seq),
              e.ballot == groupBallots[Int(h.rawValue)] else { return nil }
        // Another group's leader: only its stream for this group's current ballot.
        if h != group, e.epoch != LogEntry.epoch(groupBallots[Int(group.rawValue)]) { return nil }
        return e
    }

    /// Whether the entry names an older message than the one its slot holds now, or than the one a
    /// recovery section listed as settled there (a restarted process that never got that body): the
    /// group delivered it before this process's cut. Another group's leader re-sends its timestamps
    /// of such a message to a new leader of this group; one that took it for new would fetch its
    /// body (a crashed sender's, by relay) and order it a second time at a fresh timestamp, once
    /// every member that had delivered it was gone (seed 409 of `ramcast-sim --cycles`).
    @inline(__always)
    private func isObsolete(_ e: LogEntry) -> Bool {
        let index = Int(e.sender) * layout.slots + Int(e.slot)
        guard index < present.count else { return false }
        if (present[index] || delivered[index]) && ids[index].sender == e.message.sender
            && MessageID.isNewer(ids[index].sequence, than: e.message.sequence) {
            return true
        }
        guard dropCount > 0, dropIDs[index] != 0 else { return false }
        let settled = MessageID(rawValue: dropIDs[index])
        return settled.sender == e.message.sender && MessageID.isNewer(settled.sequence, than: e.message.sequence)
    }

    /// The table index of the entry's message, if its body is here (or was: after a leader change,
    /// the new leader re-proposes messages some members already delivered, whose metadata is kept).
    @inline(__always)
    private func messageIndex(_ e: LogEntry) -> Int? {
        let index = Int(e.sender) * layout.slots + Int(e.slot)
        guard index < present.count, present[index] || delivered[index], ids[index] == e.message else { return nil }
        return index
    }

    private func record(_ e: LogEntry, _ index: Int) {
        guard let j = destinationIndex(index, e.group) else {
            preconditionFailure("log entry for \(e.message) names \(e.group), which is not a destination")
        }
        let k = index * layout.maxDestinations + j
        timestamps[k] = e.timestamp
        tsBallots[k] = e.tsBallot
        // Skeen: the clock moves past every timestamp seen (the paper's Task 3 and Task 4, with
        // Task 4's tmp[g] typo fixed to tmp[h]).
        if e.timestamp.clock > clock { clock = e.timestamp.clock }
    }

    /// Leader, step 3: forward another group's timestamp to the followers, in this leader's one
    /// sequence, so a follower sees every timestamp in the leader's causal order.
    private func forward(_ e: LogEntry, _ index: Int) {
        followerSeq &+= 1
        var f = e
        f.seq = followerSeq
        f.kind = .forward
        f.ballot = groupBallots[Int(group.rawValue)]
        f.slot = UInt16(slotNumber(index, in: group)!)
        emitToFollowers(f)
        tracer?.forwarded(f, by: me)
        stats.forwards += 1
    }

    private func hasRoomToAck(_ index: Int) -> Bool {
        let maxDst = layout.maxDestinations
        for j in 0..<Int(dstCount[index]) where !hasRoom(inGroup: dsts[index * maxDst + j]) { return false }
        return true
    }

    /// Follower, step 3: ack `(ballot, ts)` of its own group into the message's slot at every
    /// destination process, itself included (a local store).
    private func ack(_ e: LogEntry, _ index: Int) {
        let maxDst = layout.maxDestinations
        let sender = index / layout.slots
        let cell = AckCell(e.tsBallot, e.timestamp.rawValue)
        for j in 0..<Int(dstCount[index]) {
            let slot = Int(slotNumbers[index * maxDst + j])
            let offset = layout.ackOffset(slotOffset: layout.slotOffset(sender: sender, slot: slot), server: serverIndex)
            storeCell(cell, at: offset, inGroup: dsts[index * maxDst + j])
        }
        tracer?.acked(e, by: me)
        stats.acks += 1
    }
}
