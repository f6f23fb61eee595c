import RamCastFabric

extension ServerEngine {
    /// Leader side: every `heartbeatInterval`, write `ballot << 32 | counter` into each follower's
    /// heartbeat cell (one 8-byte inline write per follower).
    func sendHeartbeats() {
        // A candidate heartbeats too (with its new ballot), so that a long recovery is not suspected.
        guard groupLeaders[Int(group.rawValue)] == member, !deposed, !rejoining, recovery.map({ $0.finished || !$0.abdicated }) ?? true,
              now &- lastHeartbeatSent >= layout.config.heartbeatInterval else { return }
        for (i, f) in layout.members(of: group).enumerated() where i != member && !crashed.contains(f) {
            if !outbox.hasRoom(peer(server: f)) { return }
        }
        lastHeartbeatSent = now
        heartbeatCounter &+= 1
        let word = UInt64(groupBallots[Int(group.rawValue)].rawValue) << 32 | UInt64(heartbeatCounter)
        for (i, f) in layout.members(of: group).enumerated() where i != member && !crashed.contains(f) {
            outbox.enqueue(peer(server: f), region: Layout.ringRegion, offset: layout.heartbeatOffset(group), length: 8) {
                $0.storeBytes(of: word, as: UInt64.self)
            }
        }
    }

    /// Follower side: a heartbeat of the current ballot that moved resets the timer. When it has not
    /// moved for `failureTimeout`, or the leader is known to be gone, the leader of the next ballot is
    /// expected instead (skipping members known to be gone); if that is this process, it starts
    /// recovery. Leadership thus moves deterministically: ballot b is led by member b mod n.
    func detectFailures() -> Bool {
        if rejoining { return rejoinDuties() }
        let g = Int(group.rawValue)
        if heartbeatChangedAt == 0 { heartbeatChangedAt = now }
        let word = RemoteMemory.loadAcquiring(ring + layout.heartbeatOffset(group))
        if word != heartbeatSeen {
            heartbeatSeen = word
            if UInt32(truncatingIfNeeded: word >> 32) == groupBallots[g].rawValue { heartbeatChangedAt = now }
        }
        if groupLeaders[g] == member {
            // Rejoin requests are rare: looked at once per heartbeat interval, not per poll.
            guard now &- lastHeartbeatSent >= layout.config.heartbeatInterval else { return false }
            return serveRejoinRequests()
        }
        let expected = max(groupBallots[g], expectedBallot)
        let members = layout.members(of: group)
        let awaited = members[layout.leaderMember(of: group, ballot: expected)]
        let gone = crashed.contains(awaited)
        guard gone || now &- heartbeatChangedAt > layout.config.failureTimeout else { return false }
        guard hasBallotsLeft(after: expected) else { return false }
        var next = Ballot(expected.rawValue + 1)
        var tries = 0
        while crashed.contains(members[layout.leaderMember(of: group, ballot: next)]), tries < members.count {
            next = Ballot(next.rawValue + 1)
            tries += 1
        }
        expectedBallot = next
        heartbeatChangedAt = now
        if layout.leaderMember(of: group, ballot: next) == member { return startRecovery(next) }
        return false
    }

    /// Whether the ballots after `b` that a candidate may pick (up to two group sizes on) fit in 32
    /// bits. If not, this process starts no ballot and says so in ``ballotsExhausted``: its group
    /// then stops changing leaders instead of wrapping to ballots that read as stale.
    func hasBallotsLeft(after b: Ballot) -> Bool {
        guard b.rawValue <= UInt32.max - 2 * UInt32(layout.groupSize(group)) else {
            ballotsExhausted = true
            return false
        }
        return true
    }

    /// The driver reports that `node` is gone (its connection died and cannot be re-established).
    public func peerCrashed(_ node: NodeID) {
        crashed.insert(node)
        if let s = layout.senderIndexOf[node] { stopAwaitingResume(s) }
        if let s = layout.senderIndexOf[node], !senderCrashed[s] {
            senderCrashed[s] = true
            crashedSenders.append(s)
            crashedSenders.sort()
            relayPassDue = true
        }
    }
}
