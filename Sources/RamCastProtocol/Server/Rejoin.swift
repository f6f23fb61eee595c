import RamCastFabric

/// A group member that crashed and restarted comes back as a new incarnation with empty memory.
///
/// **What it recovers.** No delivered history: it delivers its group's order from a cut on, the
/// last message its leader had delivered before the ballot that took it in (``ServerEngine/joinedAfter``).
/// The application brings its own state up to that cut from a peer (a snapshot), as with any
/// replicated state machine. Everything after the cut it delivers, in the group's order.
///
/// **It must not vote before it knows what it forgot.** Having lost its memory, it may have acked a
/// value that a later quorum must find, or promised a ballot. So until it has processed a recovery
/// section of its group (a `.recovered` marker), it delivers nothing, never leads, and its 1Bs carry
/// `recovered = 0`, which no candidate counts towards a quorum or uses for its clock bound. The
/// section re-proposes, under the new ballot, every value any earlier ballot may have chosen; its
/// acks of that ballot's values are then as good as anyone's. (A candidate whose 1B quorum excludes
/// it intersects every earlier quorum in a member that kept its promises.)
///
/// **Rings.** Each sender, on the restarted connection (``FabricEvent/restarted(_:peer:)``),
/// resumes writing to it from `lo`, the lowest slot counter of its group that another live member has
/// not released (``SenderEngine/peerRestarted(server:)``): it writes `lo` into the member's resume
/// cell, then the bodies of `lo ..< tail` again, then new ones. Messages below `lo` were delivered by
/// every live member, so they are below the cut. The member polls each ring from its resume counter;
/// its release counts start there.
///
/// **Being taken in.** Once every live sender resumed, it writes a rejoin request into its leader's
/// memory. The leader starts a ballot of its own (b + n, same leader) that waits for the newcomer's
/// (uncounted) 1B, which comes only after every resume: so every message the leader still holds at
/// its decision has its body at the newcomer or on its way. The section also lists, as `.settled`
/// entries, the messages the leader had already delivered: the newcomer releases them without
/// delivering them. Any other recovery that hears from it before deciding takes it in the same way.
extension ServerEngine {
    // MARK: - The restarted process

    /// Reads sender `s`'s resume cell: once written, its ring is polled from that slot counter.
    func takeResume(_ s: Int) -> Bool {
        let word = RemoteMemory.loadAcquiring(ring + layout.resumeCellOffset(sender: s))
        guard word != 0 else { return false }
        expected[s] = Int(word - 1)
        released[s] = Int(word - 1)
        stopAwaitingResume(s)
        return true
    }

    func stopAwaitingResume(_ s: Int) {
        guard awaitingResume[s] else { return }
        awaitingResume[s] = false
        resumesOutstanding -= 1
    }

    /// Per poll while rejoining (from failure detection, which it replaces): the 1B held back for
    /// the current candidate, and the request to the leader, once every sender resumed.
    func rejoinDuties() -> Bool {
        heartbeatChangedAt = now   // not suspecting anyone while it cannot lead
        guard resumesOutstanding == 0 else { return false }
        let g = Int(group.rawValue)
        let b = groupBallots[g]
        let leaderNode = leader(of: group)
        guard leaderNode != me, !crashed.contains(leaderNode) else { return false }
        let p = peer(server: leaderNode)
        var progress = false
        if let owed = owed1B, owed == b, outbox.hasRoom(p, 2) {
            send1B(to: leaderNode, h: group, recovered: .none, entries: [])
            owed1B = nil
            progress = true
        }
        // Asked again after a failure timeout: a request can be lost with a connection.
        if rejoinRequested != b || now &- rejoinRequestedAt > layout.config.failureTimeout, outbox.hasRoom(p) {
            let value = UInt64(b.rawValue)
            outbox.enqueue(p, region: Layout.ringRegion, offset: layout.rejoinRequestOffset(server: serverIndex), length: 8) {
                $0.storeBytes(of: value, as: UInt64.self)
            }
            rejoinRequested = b
            rejoinRequestedAt = now
            progress = true
        }
        return progress
    }

    /// A `.settled` entry: the leader delivered this message before the section. Only noted here:
    /// the section's marker settles it (with the cut it belongs to), or a newer ballot's section
    /// replaces the note, since another leader's cut may lie before it.
    func noteSettled(_ e: LogEntry) {
        let index = Int(e.sender) * layout.slots + Int(e.slot)
        guard index < present.count,
              !((present[index] || delivered[index]) && ids[index].sender == e.message.sender
                && MessageID.isNewer(ids[index].sequence, than: e.message.sequence)) else { return }
        if dropIDs[index] == 0 { dropCount += 1 }
        dropIDs[index] = e.message.rawValue
    }

    /// A new ballot's section starts: the notes of an unfinished one no longer hold.
    func forgetSettled() {
        guard dropCount > 0 else { return }
        dropIDs.fill(with: 0)
        dropCount = 0
    }

    /// An entry about a message this process will release without delivering, whose body it lacks:
    /// it does not wait for the body (§10.1), which may never come.
    func isSettledElsewhere(_ e: LogEntry) -> Bool {
        let index = Int(e.sender) * layout.slots + Int(e.slot)
        return index < dropIDs.count && dropIDs[index] == e.message.rawValue
    }

    /// Releases a held message without delivering it.
    func settle(_ index: Int) {
        dropUndelivered(index)
        release(index, base: ring + layout.slotOffset(sender: index / layout.slots, slot: index % layout.slots))
    }

    /// Takes a held message off the pending list and out of the notes, counted as settled.
    private func dropUndelivered(_ index: Int) {
        for i in 0..<pendingList.count where Int(pendingList[i]) == index {
            pendingList.swapAt(i, pendingList.count - 1)
            _ = pendingList.removeLast()
            break
        }
        if dropIDs[index] != 0 {
            dropIDs[index] = 0
            dropCount -= 1
        }
        stats.settled += 1
    }

    /// A crashed sender's ring shows a newer body in the slot of pending message `index`: that one
    /// came by relay from a member that had delivered it, and lies below every cut this process can
    /// get. The sender wrote the newer body into the slot only once every destination it still
    /// counted had released the older message; a member it counted that still held it would have
    /// asked for nothing newer. Only a process the sender had written off, this incarnation, can
    /// hold it (seed 16816). Every leader released it before taking the newer one, or joined after
    /// it, so no section can name it again.
    ///
    /// Released undelivered, without clearing the slot's ack area, where the newer message's acks
    /// may have landed already; it never acked the old one.
    func supersede(_ index: Int) {
        dropUndelivered(index)
        present[index] = false
        delivered[index] = true
        ordered[index] = false
    }

    /// The group's recovery section has been processed: this process is a member again.
    func finishRejoin(after cut: MessageID) {
        // What the section listed is released now, held or not: a body that arrives later is
        // released on arrival (it may never come: it was below its sender's resume point).
        for index in 0..<dropIDs.count where dropIDs[index] != 0 && present[index] && ids[index].rawValue == dropIDs[index] {
            settle(index)
        }
        rejoining = false
        joinedAfter = cut.rawValue == 0 ? nil : cut
        answerOtherCandidatesAgain()
        // Delivered nothing yet: if it leads before it delivers, its own section must name this cut,
        // not "nothing", or the member it takes in owes the group's whole history (seed 5013506).
        if cut.rawValue != 0 { lastDelivered = cut }
        heartbeatChangedAt = now
        tracer?.rejoined(me, after: joinedAfter)
    }

    /// The 1Bs this process wrote to other groups' candidates while it rejoined said `recovered = 0`,
    /// which no candidate counts (its clock bounded nothing then). Now that it has its group's
    /// section, it answers the current ballot of every other group again, this time counted: with
    /// the other members of its group restarted too, or gone, a candidate could otherwise wait
    /// for a quorum of this group forever (seed 746 of `ramcast-sim --cycles`). A leader that
    /// decided already takes the late 1B as it takes any.
    private func answerOtherCandidatesAgain() {
        for h in 0..<layout.groupCount where h != Int(group.rawValue) {
            let hg = GroupID(UInt8(h))
            let candidate = leader(of: hg)
            // The initial ballot has no candidate, and a process known to be gone reads nothing.
            guard groupBallots[h] != Ballot(UInt32(layout.groupSize(hg))), candidate != me, !crashed.contains(candidate),
                  outbox.hasRoom(peer(server: candidate), 2) else { continue }
            send1B(to: candidate, h: hg, recovered: recoveredBallot, entries: [])
        }
    }

    // MARK: - Its peers

    /// The driver reports that `node` restarted (a connection from its new incarnation): it is no
    /// longer counted as gone, relays to it start over, and a leader stops streaming to it until a
    /// ballot takes it in (its log grants no one yet). Call ``resync(peer:)`` afterwards.
    public func peerRestarted(_ node: NodeID) {
        crashed.remove(node)
        guard let s = layout.serverIndexOf[node], let h = layout.groupOf[node] else { return }
        let servers = layout.servers.count
        for sender in 0..<layout.config.senders.count {
            for slot in 0..<layout.slots {
                relayHandled[(sender * servers + s) * layout.slots + slot] = 0
                // The old incarnation's requests: the new one asks afresh, for what it needs only.
                RemoteMemory.storeReleasing(0, at: ring + layout.relayRequestOffset(sender: sender, server: s, slot: slot))
            }
        }
        forgetRelays(to: s)
        if h == group, let m = layout.memberIndexOf[node] {
            followerReady[m] = false
        } else if h != group, leader(of: h) == node {
            // It led its group: its log grants nobody now. Its successor's 1A makes this ready again.
            leaderReady[Int(h.rawValue)] = false
        }
    }

    /// Leader, once per heartbeat interval: a restarted member that asks under the current ballot,
    /// and is not being streamed to, gets a ballot of its own (b + n keeps this leader).
    func serveRejoinRequests() -> Bool {
        guard isLeader else { return false }
        let g = Int(group.rawValue)
        let b = groupBallots[g]
        for (m, q) in layout.members(of: group).enumerated() where m != member && !followerReady[m] && !crashed.contains(q) {
            let s = layout.serverIndex(group: group, member: m)
            let word = RemoteMemory.loadAcquiring(ring + layout.rejoinRequestOffset(server: s))
            guard UInt32(truncatingIfNeeded: word) == b.rawValue else { continue }
            guard hasBallotsLeft(after: b) else { return false }
            return startRecovery(Ballot(b.rawValue + UInt32(layout.groupSize(group))), awaiting: [s])
        }
        return false
    }
}
