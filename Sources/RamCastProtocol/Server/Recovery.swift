import RamCastFabric

/// A would-be leader's progress through phase 1 (spec §8).
struct Recovery {
    var ballot: Ballot
    /// Per server: its phase-1B reply arrived.
    var responded: [Bool]
    var maxClock: UInt64
    /// Per table index: the message and the timestamp with the highest ballot any reply holds.
    var bag: [Int: (id: MessageID, ts: Timestamp, tsBallot: Ballot)] = [:]
    /// Per table index: whether some reply came from a member holding the bag message's body. A
    /// timestamp chosen in this group was acked by f+1 members, which ack only with the body, and any
    /// quorum meets them: so a value that no replier holds the body of was never chosen.
    var bodyHeld: [Int: Bool] = [:]
    /// The highest ballot whose recovery section a replier of this group has: values of older
    /// ballots that this section did not re-propose were never chosen, and must not come back (a
    /// process may have delivered past them, see `Ordering.swift`).
    var maxRecovered = Ballot.none
    /// Per server: a 1B came from a restarted member of this group not yet taken back in
    /// (`recovered = 0`). It counts in no quorum; the member gets this ballot's stream.
    var amnesiac: [Bool]
    /// Restarted members whose (uncounted) 1B this ballot waits for before deciding, unless they
    /// crash: the leader started it to take them in (`Rejoin.swift`).
    var awaiting: [Int] = []
    var finished = false
    /// When phase 1 started, in the driver's clock.
    var startedAt: UInt64 = 0
    /// The candidate gave up waiting for bodies it cannot get, and stopped heartbeating, so that the
    /// next member in line takes over (see `collect1B`).
    var abdicated = false
}

extension ServerEngine {
    // MARK: - Candidate: phase 1A

    /// Starts recovery with ballot `b`: fresh streams from the other leaders, empty mailboxes, and a
    /// 1A into every process of every group (including itself, handled like any other 1A).
    func startRecovery(_ b: Ballot, awaiting: [Int] = []) -> Bool {
        let others = layout.servers.filter { $0 != me }
        guard others.allSatisfy({ crashed.contains($0) || outbox.hasRoom(peer(server: $0)) }) else { return false }
        recovery = Recovery(ballot: b, responded: Array(repeating: false, count: layout.servers.count), maxClock: clock,
                            amnesiac: Array(repeating: false, count: layout.servers.count), awaiting: awaiting,
                            startedAt: now)
        for h in 0..<layout.groupCount where h != Int(group.rawValue) { resetLog(GroupID(UInt8(h))) }
        (ring + layout.phase1bOffset(server: 0)).initializeMemory(as: UInt8.self, repeating: 0,
                                                                  count: layout.servers.count * layout.phase1bMailboxSize)
        let value = UInt64(b.rawValue)
        for q in others where !crashed.contains(q) {
            outbox.enqueue(peer(server: q), region: Layout.ringRegion, offset: layout.phase1aOffset(group), length: 8) {
                $0.storeBytes(of: value, as: UInt64.self)
            }
        }
        RemoteMemory.storeReleasing(value, at: ring + layout.phase1aOffset(group))
        return true
    }

    func resetLog(_ h: GroupID) {
        let size = layout.logCapacity * Layout.logEntrySize
        (log + Int(h.rawValue) * size).initializeMemory(as: UInt8.self, repeating: 0, count: size)
        logNext[Int(h.rawValue)] = layout.firstLogPosition
    }

    // MARK: - Everyone: accepting a 1A

    func process1A() -> Bool {
        var progress = false
        for h in 0..<layout.groupCount {
            let b = UInt32(truncatingIfNeeded: RemoteMemory.loadAcquiring(ring + layout.phase1aOffset(GroupID(UInt8(h)))))
            if b > accepted1A[h] {
                if accept1A(GroupID(UInt8(h)), Ballot(b)) { progress = true }
            } else if b < accepted1A[h], b != lowerAnswered[h], answerLower1A(GroupID(UInt8(h)), b) {
                progress = true
            }
        }
        return progress
    }

    /// A candidate of group `h` wrote ballot `b` here after this process accepted a higher one,
    /// whose 1A may never reach that candidate: its sender can crash with the write in flight. The
    /// candidate would wait for this process's 1B forever (seed 5000374: the rest of the cluster
    /// had group 0's rejoin ballot 10, its members 6). So it gets the higher 1A, written into its
    /// 1A cell as if it had come from its candidate: it accepts it, and moves past it when that
    /// ballot's leader is gone. Learning of a higher ballot is always safe in Paxos.
    private func answerLower1A(_ h: GroupID, _ b: UInt32) -> Bool {
        let candidate = layout.members(of: h)[layout.leaderMember(of: h, ballot: Ballot(b))]
        if candidate != me, !crashed.contains(candidate) {
            let p = peer(server: candidate)
            guard outbox.hasRoom(p) else { return false }
            let value = UInt64(accepted1A[Int(h.rawValue)])
            outbox.enqueue(p, region: Layout.ringRegion, offset: layout.phase1aOffset(h), length: 8) {
                $0.storeBytes(of: value, as: UInt64.self)
            }
        }
        lowerAnswered[Int(h.rawValue)] = b
        return true
    }

    /// Messages this process holds (pending or delivered, not yet recycled).
    private func heldIndices() -> [Int] {
        (0..<present.count).filter { present[$0] || delivered[$0] }
    }

    /// Accepts ballot `b` for group `h` (spec §8.2, 1A → 1B): the candidate becomes `h`'s leader here,
    /// the old leader loses write access to this process's log region and the candidate gains it,
    /// `log[h]` restarts at sequence 1, and the candidate gets this process's state: for a member
    /// of `h` its messages' timestamps (and the bodies of its pending messages, relayed into the
    /// candidate's ring); for every process its clock; and from the leader of another group, that
    /// group's timestamps for messages addressed to `h`, which the old leader may not have forwarded.
    /// Returns false, changing nothing, when the outbox has no room yet.
    func accept1A(_ h: GroupID, _ b: Ballot) -> Bool {
        let hi = Int(h.rawValue)
        let members = layout.members(of: h)
        let newLeader = layout.leaderMember(of: h, ballot: b)
        let candidate = members[newLeader]
        let old = leader(of: h)
        if let waiting = awaitPermissions(h, b, old: old, candidate: candidate) { return waiting }
        let held = heldIndices()
        let amLeader = isLeader && h != group
        // A restarted process not yet taken back in reports 0: no candidate counts its 1B.
        let recovered = rejoining ? .none : (h == group ? recoveredIncludingLanded() : recoveredBallot)
        // Proposals that landed in this follower's log but were not applied yet (their body may be
        // missing) are accepted values all the same: the old leader may have counted them for its
        // fast path. They go into the 1B before the log is cleared.
        var landed = h == group && groupLeaders[hi] != member ? unappliedProposals() : []
        if h == group, let r = recovery {
            // A candidate superseded: what its quorum reported stays reported (values accepted by
            // someone, with their ballots), so a later candidate cannot miss them.
            landed += r.bag.filter { !$0.value.ts.isNone }.sorted { $0.key < $1.key }.map { ($0.key, $0.value.id, $0.value.ts, $0.value.tsBallot, false) }
        }
        if h == group {
            // Keep what the log shows until the messages' slots move on: the log is cleared below.
            for e in landed { rememberAccepted(e) }
            landed = acceptedValues()
        }
        if candidate != me {
            let p = peer(server: candidate)
            let needed = 2 + (h == group ? held.count : 0) + (amLeader ? held.count : 0)
            guard outbox.hasRoom(p, needed) else { return false }
        }
        accepted1A[hi] = b.rawValue
        groupBallots[hi] = b
        groupLeaders[hi] = newLeader
        tracer?.leaderChanged(group: h, ballot: b, leader: candidate, at: me)
        pendingGrantee[hi] = nil
        resetLog(h)
        if h == group {
            streamMax = 0
            ownProposalMax = 0
            decidedClock = 0
            publishedClock = 0
            deposed = false
            if candidate != me { recovery = nil }
            expectedBallot = b
            heartbeatChangedAt = now
            for i in followerReady.indices { followerReady[i] = false }
            if rejoining {
                // Its 1B waits until every sender resumed (`Rejoin.swift`).
                owed1B = b
                forgetSettled()
            } else if candidate == me {
                respond(to: &recovery!, from: serverIndex, clock: clock, recovered: recovered,
                        entries: (ownEntries(held) + landed).map { ($0, hasBody($0.index, $0.id)) })
            } else {
                relayBodies(held, to: candidate)
                send1B(to: candidate, h: h, recovered: recovered, entries: ownEntries(held) + landed)
            }
        } else if candidate != me {
            send1B(to: candidate, h: h, recovered: recovered, entries: [])
            if amLeader {
                leaderSeq[hi] = layout.firstLogPosition &- 1
                leaderReady[hi] = true
                resendProposals(to: h)
            }
        }
        return true
    }

    /// Phase one of accepting group `h`'s 1A of ballot `b`: the permission changes it implies (the
    /// old leader revoked, the candidate granted) go to the driver, and the 1A is answered only
    /// once the driver reported them done (``permissionsApplied(failures:)``), in a later poll. A 1B
    /// built before the revocation took effect could miss a write of the old leader that lands in
    /// between and completes: the old leader counts it for its fast path, yet no 1B reports it
    /// (over rxe, a message delivered at ⟨4,0⟩ by its old leader and at ⟨6,0⟩ by the others;
    /// `FastPathTests`). A change that failed leaves the 1A unanswered.
    ///
    /// Returns nil when the 1A can be answered now, else whether anything was requested.
    private func awaitPermissions(_ h: GroupID, _ b: Ballot, old: NodeID, candidate: NodeID) -> Bool? {
        let hi = Int(h.rawValue)
        let revokeOld = old != me && old != candidate
        // A candidate granted for a 1A this process never answered, superseded by another one.
        let stale = pendingGrantee[hi].flatMap { $0 != candidate && $0 != me && $0 != old ? $0 : nil }
        guard revokeOld || stale != nil || candidate != me else { return nil }
        if permissionsDone[hi] == b.rawValue { return nil }
        if permissionsRequested[hi] == b.rawValue { return false }
        if revokeOld { permissionRequests.append(PermissionRequest(grant: false, node: old, group: h, ballot: b)) }
        if let stale { permissionRequests.append(PermissionRequest(grant: false, node: stale, group: h, ballot: b)) }
        if candidate != me { permissionRequests.append(PermissionRequest(grant: true, node: candidate, group: h, ballot: b)) }
        permissionsRequested[hi] = b.rawValue
        pendingGrantee[hi] = candidate != me ? candidate : nil
        return true
    }

    /// The driver applied ``permissionRequests`` (or tried to), in order; `failures` lists those
    /// that failed, with why. A 1A whose changes all succeeded is answered in the next poll; one
    /// with a failure stays unanswered (a higher 1A tries again), and is recorded in
    /// ``permissionFaults``: its old leader may still write here, so a 1B could miss what it decides.
    public func permissionsApplied(failures: [(request: PermissionRequest, reason: String)] = []) {
        for r in permissionRequests {
            let hi = Int(r.group.rawValue)
            guard permissionsRequested[hi] == r.ballot.rawValue else { continue }
            if failures.contains(where: { $0.request.group == r.group && $0.request.ballot == r.ballot }) { continue }
            permissionsDone[hi] = r.ballot.rawValue
        }
        for f in failures where permissionFaults.count < 64 {
            permissionFaults.append((f.request.group, f.request.ballot, f.reason))
        }
        permissionRequests.removeAll(keepingCapacity: true)
    }

    typealias Entry = (index: Int, id: MessageID, ts: Timestamp, tsBallot: Ballot, delivered: Bool)
    /// Flags of a phase-1B entry.
    private enum EntryFlag {
        static let delivered: UInt8 = 1
        /// The replier holds the message's body (it took it from its ring).
        static let bodyHeld: UInt8 = 2
    }

    /// Records a value accepted for a message this process may not hold (yet), kept across log resets.
    private func rememberAccepted(_ e: Entry) {
        if let have = acceptedElsewhere[e.index] {
            if MessageID.isNewer(have.id.sequence, than: e.id.sequence) { return }
            if e.id == have.id, have.tsBallot >= e.tsBallot { return }
        }
        acceptedElsewhere[e.index] = (e.id, e.ts, e.tsBallot)
    }

    /// The remembered accepted values still about the newest message of their slot.
    private func acceptedValues() -> [Entry] {
        acceptedElsewhere = acceptedElsewhere.filter { index, v in
            !((present[index] || delivered[index]) && MessageID.isNewer(ids[index].sequence, than: v.id.sequence))
        }
        return acceptedElsewhere.sorted { $0.key < $1.key }.map { ($0.key, $0.value.id, $0.value.ts, $0.value.tsBallot, false) }
    }

    /// Entries of the current ballot that landed in log[own group] beyond what was applied, in
    /// sequence order.
    private func landedEntries() -> [LogEntry] {
        var out: [LogEntry] = []
        var seq = logNext[Int(group.rawValue)]
        let ballot = groupBallots[Int(group.rawValue)]
        for _ in 0..<layout.logCapacity {
            guard let e = LogEntry.read(log + layout.logOffset(group: group, seq: seq), expected: seq), e.ballot == ballot else { break }
            out.append(e)
            seq &+= 1
        }
        return out
    }

    /// Proposals among the landed, unapplied entries.
    private func unappliedProposals() -> [Entry] {
        landedEntries().filter { $0.kind == .proposal && $0.group == group }
            .map { (Int($0.sender) * layout.slots + Int($0.slot), $0.message, $0.timestamp, $0.tsBallot, false) }
    }

    /// The recovery section this process has: the one it processed, or a later one whose marker
    /// landed in its log (with the whole section before it, same connection) but was not applied yet.
    private func recoveredIncludingLanded() -> Ballot {
        landedEntries().first { $0.kind == .recovered }.map { max(recoveredBallot, $0.ballot) } ?? recoveredBallot
    }

    private func ownEntries(_ held: [Int]) -> [Entry] {
        held.compactMap { i in
            guard let j = destinationIndex(i, group) else { return nil }
            let k = i * layout.maxDestinations + j
            return (i, ids[i], timestamps[k], tsBallots[k], delivered[i])
        }
    }

    /// The bodies of pending messages, written into the candidate's ring at the same slot (slot
    /// numbers are shared within a group), so it can propose them even if their sender crashed
    /// before reaching it. A relay of a message the candidate already took is ignored there (its
    /// sequence number is not newer).
    private func relayBodies(_ held: [Int], to candidate: NodeID) {
        let p = peer(server: candidate)
        for i in held where present[i] {
            let offset = layout.slotOffset(sender: i / layout.slots, slot: i % layout.slots)
            let counter = outbox.enqueue(p, region: Layout.ringRegion, offset: offset, source: ring + offset,
                                         length: MessageSlot.bodyLength(ring + offset, layout: layout), signal: true)
            relaysInFlight[i, default: []].append((p, counter))
        }
    }

    func send1B(to candidate: NodeID, h: GroupID, recovered: Ballot, entries all: [Entry]) {
        let p = peer(server: candidate)
        // One entry per slot fits the mailbox: for a slot named twice, keep the newer message, or the
        // higher ballot of the same one (what the candidate would keep anyway).
        var bySlot: [Int: Entry] = [:]
        for e in all {
            if let have = bySlot[e.index] {
                if MessageID.isNewer(have.id.sequence, than: e.id.sequence) { continue }
                if e.id == have.id, e.ts.isNone || (!have.ts.isNone && have.tsBallot >= e.tsBallot) { continue }
            }
            bySlot[e.index] = e
        }
        let entries = bySlot.values.sorted { $0.index < $1.index }
        let scratch = recoveryScratch + Int(h.rawValue) * layout.phase1bMailboxSize
        let size = Layout.recoveryEntrySize
        for (n, e) in entries.enumerated() {
            let q = scratch + n * size
            q.storeBytes(of: e.id.rawValue.littleEndian, as: UInt64.self)
            (q + 8).storeBytes(of: e.ts.rawValue.littleEndian, as: UInt64.self)
            (q + 16).storeBytes(of: e.tsBallot.rawValue.littleEndian, as: UInt32.self)
            (q + 20).storeBytes(of: UInt16(e.index / layout.slots).littleEndian, as: UInt16.self)
            (q + 22).storeBytes(of: UInt16(e.index % layout.slots).littleEndian, as: UInt16.self)
            let flags = (e.delivered ? EntryFlag.delivered : 0) | (hasBody(e.index, e.id) ? EntryFlag.bodyHeld : 0)
            (q + 24).storeBytes(of: UInt64(flags), as: UInt64.self)
        }
        let header = scratch + layout.phase1bMailboxSize - 24
        var crc = CRC32C.checksum(scratch, count: entries.count * size)
        var c = clock.littleEndian
        crc = withUnsafeBytes(of: &c) { CRC32C.checksum($0, seed: crc) }
        var rb = recovered.rawValue.littleEndian
        crc = withUnsafeBytes(of: &rb) { CRC32C.checksum($0, seed: crc) }
        header.storeBytes(of: crc.littleEndian, as: UInt32.self)
        (header + 4).storeBytes(of: recovered.rawValue.littleEndian, as: UInt32.self)
        (header + 8).storeBytes(of: clock.littleEndian, as: UInt64.self)
        (header + 16).storeBytes(of: groupBallots[Int(h.rawValue)].rawValue.littleEndian, as: UInt32.self)
        (header + 20).storeBytes(of: UInt32(entries.count).littleEndian, as: UInt32.self)
        let mailbox = layout.phase1bOffset(server: serverIndex)
        if !entries.isEmpty {
            outbox.enqueue(p, region: Layout.ringRegion, offset: mailbox, source: scratch, length: entries.count * size)
        }
        outbox.enqueue(p, region: Layout.ringRegion, offset: mailbox + layout.phase1bMailboxSize - 24, source: header, length: 24)
    }

    /// Leader of another group: re-send this group's timestamps for every held message addressed to
    /// `h`, from sequence 1, to `h`'s (new) leader.
    func resendProposals(to h: GroupID) {
        let target = leader(of: h)
        guard target != me else { return }
        let hi = Int(h.rawValue)
        let maxDst = layout.maxDestinations
        var batch: [(ts: Timestamp, entry: LogEntry)] = []
        for i in heldIndices() {
            guard let jh = destinationIndex(i, h), let jg = destinationIndex(i, group) else { continue }
            let k = i * maxDst + jg
            guard !timestamps[k].isNone else { continue }
            batch.append((timestamps[k], LogEntry(seq: 0, ballot: groupBallots[Int(group.rawValue)], tsBallot: tsBallots[k],
                                                  timestamp: timestamps[k], message: ids[i], sender: UInt16(i / layout.slots),
                                                  slot: slotNumbers[i * maxDst + jh], group: group, kind: .proposal)))
        }
        for var b in batch.sorted(by: { $0.ts < $1.ts }).map(\.entry) {
            leaderSeq[hi] &+= 1
            b.seq = leaderSeq[hi]
            b.epoch = LogEntry.epoch(groupBallots[hi])
            let e = b
            outbox.enqueue(peer(server: target), region: Layout.logRegion,
                           offset: layout.logOffset(group: group, seq: e.seq), length: LogEntry.wireSize) { e.encode(into: $0) }
        }
    }

    // MARK: - Candidate: collecting 1B, deciding (2A)

    /// Merges one 1B reply. Per slot, the newest message wins (an older one in the same slot was
    /// released by every member of this group, so delivered by all of them); per message, the
    /// timestamp with the highest ballot wins (Paxos).
    private func respond(to r: inout Recovery, from server: Int, clock c: UInt64, recovered: Ballot, entries: [(Entry, held: Bool)]) {
        r.responded[server] = true
        r.maxClock = max(r.maxClock, c)
        if layout.servers(of: group).contains(server) { r.maxRecovered = max(r.maxRecovered, recovered) }
        for (e, held) in entries {
            if let have = r.bag[e.index], have.id == e.id {
                if held { r.bodyHeld[e.index] = true }
            } else if r.bag[e.index].map({ MessageID.isNewer(e.id.sequence, than: $0.id.sequence) }) ?? true {
                r.bodyHeld[e.index] = held
            }
            if let have = r.bag[e.index] {
                if MessageID.isNewer(have.id.sequence, than: e.id.sequence) { continue }
                if e.id == have.id && (e.ts.isNone || have.tsBallot >= e.tsBallot) { continue }
                if e.id != have.id || !e.ts.isNone { r.bag[e.index] = (e.id, e.ts, e.tsBallot) }
            } else {
                r.bag[e.index] = (e.id, e.ts, e.tsBallot)
            }
        }
    }

    func collect1B() -> Bool {
        guard var r = recovery else { return false }
        var progress = false
        let size = Layout.recoveryEntrySize
        for s in 0..<layout.servers.count where !r.responded[s] && !r.amnesiac[s] {
            let base = ring + layout.phase1bOffset(server: s)
            let header = base + layout.phase1bMailboxSize - 24
            let word = RemoteMemory.loadAcquiring(header + 16)
            guard UInt32(truncatingIfNeeded: word) == r.ballot.rawValue else { continue }
            let count = Int(UInt32(truncatingIfNeeded: word >> 32))
            guard count * size <= layout.phase1bMailboxSize - 24 else { continue }
            var c = RemoteMemory.loadAcquiring(header + 8)
            var rb = (header + 4).load(as: UInt32.self)
            var crc = CRC32C.checksum(base, count: count * size)
            crc = withUnsafeBytes(of: &c) { CRC32C.checksum($0, seed: crc) }
            crc = withUnsafeBytes(of: &rb) { CRC32C.checksum($0, seed: crc) }
            guard crc == UInt32(littleEndian: header.load(as: UInt32.self)) else { continue }   // still landing
            if rb == 0 {
                // A restarted member not yet taken back in: it counts for nothing, and joins this
                // ballot's stream only if the stream has not started (a later ballot takes it in).
                if !r.finished, layout.servers(of: group).contains(s) { r.amnesiac[s] = true }
                continue
            }
            var entries: [(Entry, held: Bool)] = []
            for n in 0..<count {
                let q = base + n * size
                let sender = Int(UInt16(littleEndian: q.load(fromByteOffset: 20, as: UInt16.self)))
                let slot = Int(UInt16(littleEndian: q.load(fromByteOffset: 22, as: UInt16.self)))
                let flags = q.load(fromByteOffset: 24, as: UInt8.self)
                entries.append(((sender * layout.slots + slot,
                                 MessageID(rawValue: UInt64(littleEndian: q.load(as: UInt64.self))),
                                 Timestamp(rawValue: UInt64(littleEndian: q.load(fromByteOffset: 8, as: UInt64.self))),
                                 Ballot(UInt32(littleEndian: q.load(fromByteOffset: 16, as: UInt32.self))),
                                 flags & EntryFlag.delivered != 0), flags & EntryFlag.bodyHeld != 0))
            }
            respond(to: &r, from: s, clock: UInt64(littleEndian: c), recovered: Ballot(UInt32(littleEndian: rb)), entries: entries)
            progress = true
            if r.finished { recovery = r; lateResponder(s) }
        }
        recovery = r
        // Its own 1A answered first (after its permission changes): its ballot is the current one.
        guard !r.finished, accepted1A[Int(group.rawValue)] == r.ballot.rawValue, quorumsReplied(r), r.awaiting.allSatisfy({ r.amnesiac[$0] || crashed.contains(layout.servers[$0]) }) else {
            return progress
        }
        if bodiesKnown(r) {
            finishRecovery()
            progress = true
        } else if !r.abdicated, now &- r.startedAt > layout.config.failureTimeout {
            // A value some replier holds the body of, and this candidate cannot get: a restarted
            // candidate lacks what was delivered before its cut, and a live sender never writes that
            // again. Its heartbeats stop, the group suspects it, and the next member in line (which
            // may hold the body) takes over with a higher ballot. It still finishes if the body
            // comes first.
            recovery?.abdicated = true
            progress = true
        }
        return progress
    }

    private func quorumsReplied(_ r: Recovery) -> Bool {
        (0..<layout.groupCount).allSatisfy { h in
            let g = GroupID(UInt8(h))
            let n = layout.members(of: g).filter { r.responded[layout.serverIndexOf[$0]!] }.count
            return n >= layout.quorum(of: g)
        }
    }

    /// The candidate can re-propose a message only once it knows its destinations (from the body
    /// or from metadata it kept): relays arrive ahead of their 1B (or, for a crashed sender, are
    /// pulled), so this is a short wait. A value whose body no replier holds was never chosen: it is
    /// not waited for, and not re-proposed (if its body turns up later, it gets a fresh timestamp).
    /// The single-group fast path chooses on landed log writes, each behind a body write of its
    /// leader on the same connection, so its f followers have the body in their rings: a replier
    /// reports a body it holds *or* that landed in its ring (`hasBody`), and the rule holds for it too.
    ///
    /// A restarted candidate may lack a body that was delivered before its cut, yet re-proposed
    /// since (a section re-proposes what its leader still holds, delivered or not): it asks for a
    /// crashed sender's (`wantRelay`, seed 22227). A live sender's it cannot get: see `abdicated`.
    private func bodiesKnown(_ r: Recovery) -> Bool {
        var known = true
        for (index, v) in r.bag {
            guard !(v.ts.isNone || v.tsBallot < r.maxRecovered || holdsNewer(index, than: v.id) || holds(index, v.id)
                    || r.bodyHeld[index] != true) else { continue }
            wantRelay(index, v.id)
            known = false
        }
        return known
    }

    /// This process holds message `id` in table entry `index` (pending or delivered, body in the ring).
    @inline(__always)
    func holds(_ index: Int, _ id: MessageID) -> Bool { (present[index] || delivered[index]) && ids[index] == id }

    /// This process holds message `id`, or its intact body landed in the message's slot of its
    /// ring, taken or not (a fast-path leader writes it there ahead of its timestamp): what a 1B
    /// reports as "body held". A body in the ring is taken in time, or relayed if its sender crashed.
    func hasBody(_ index: Int, _ id: MessageID) -> Bool {
        if holds(index, id) { return true }
        guard let header = MessageSlot.read(ring + layout.slotOffset(sender: index / layout.slots, slot: index % layout.slots),
                                            layout: layout) else { return false }
        return header.id == id
    }

    /// The slot took a newer message since `id`: every member of this group delivered `id`.
    func holdsNewer(_ index: Int, than id: MessageID) -> Bool {
        (present[index] || delivered[index]) && ids[index].sender == id.sender && MessageID.isNewer(ids[index].sequence, than: id.sequence)
    }

    /// Phase 2: with a quorum of every group heard, the clock passes every timestamp and clock
    /// reported (so fresh timestamps exceed every decided one); each message keeps the timestamp of
    /// the highest ballot (Paxos) or gets a fresh one. The stream is: re-proposals in timestamp order,
    /// then forwards of other groups' timestamps, then fresh proposals, which keeps timestamps
    /// increasing along proposals (I3) and above every forward before them (I5).
    private func finishRecovery() {
        guard var r = recovery else { return }
        clock = max(clock, r.maxClock)
        for v in r.bag.values { clock = max(clock, v.ts.clock) }
        r.finished = true
        recovery = r
        let g = Int(group.rawValue)
        for (i, q) in layout.members(of: group).enumerated() {
            let s = layout.serverIndexOf[q]!
            followerReady[i] = i != member && (r.responded[s] || r.amnesiac[s])
        }
        for h in 0..<layout.groupCount where h != g {
            leaderReady[h] = r.responded[layout.serverIndexOf[leader(of: GroupID(UInt8(h)))]!]
            leaderSeq[h] = layout.firstLogPosition &- 1
        }
        followerSeq = layout.firstLogPosition &- 1
        let maxDst = layout.maxDestinations
        let b = groupBallots[g]
        // What this leader delivered already: a member that restarted releases it undelivered.
        for index in 0..<present.count where delivered[index] && !present[index] {
            guard let j = destinationIndex(index, group) else { continue }
            followerSeq &+= 1
            let entry = LogEntry(seq: followerSeq, ballot: b, tsBallot: tsBallots[index * maxDst + j],
                                 timestamp: timestamps[index * maxDst + j], message: ids[index],
                                 sender: UInt16(index / layout.slots), slot: UInt16(index % layout.slots),
                                 group: group, kind: .settled)
            emitToFollowers(entry)
            tracer?.settled(entry, by: me)
        }
        for (index, v) in r.bag.filter({ !$0.value.ts.isNone && $0.value.tsBallot >= r.maxRecovered
                                        && !holdsNewer($0.key, than: $0.value.id) && holds($0.key, $0.value.id) })
            .sorted(by: { ($0.value.ts, $0.key) < ($1.value.ts, $1.key) }) {
            guard destinationIndex(index, group) != nil else { continue }
            fastPathAcks[index] = 0
            propose(index, ts: v.ts)
        }
        for index in 0..<present.count where present[index] {
            for k in 0..<Int(dstCount[index]) where dsts[index * maxDst + k] != group {
                let ts = timestamps[index * maxDst + k]
                guard !ts.isNone else { continue }
                emitForward(index, k)
            }
        }
        // Everything else pending gets a fresh timestamp, including messages whose only value is from
        // a ballot older than a recovery section some replier has (never chosen, see `maxRecovered`).
        for index in 0..<present.count where present[index] {
            if let j = destinationIndex(index, group), tsBallots[index * maxDst + j] != b {
                fastPathAcks[index] = 0
                propose(index)
            }
        }
        // The section ends: followers report it from now on, and only decisions after it move the
        // delivery watermark.
        followerSeq &+= 1
        let marker = LogEntry(seq: followerSeq, ballot: b, tsBallot: b, timestamp: Timestamp(clock: clock, group: group),
                              message: lastDelivered, sender: 0, slot: 0, group: group, kind: .recovered)
        emitToFollowers(marker)
        tracer?.recoveryEnded(marker, by: me)
        recoveredBallot = b
        recoveryTop = clock
        streamMax = clock
        lastHeartbeatSent = 0
    }

    /// A reply that came after the decision: a member of this group gets the stream so far, replayed
    /// from this leader's own copy; another group's leader gets this group's timestamps.
    private func lateResponder(_ s: Int) {
        let q = layout.servers[s]
        if layout.groupOf[q] == group, let m = layout.memberIndexOf[q], m != member {
            let first = layout.firstLogPosition
            let count = Int(followerSeq &- (first &- 1))
            if count > 0, count <= layout.logCapacity {
                // The stream so far is `count` cells from `first`'s, wrapping at the end of the log.
                let cell = Int((first &- 1) % UInt64(layout.logCapacity))
                let head = min(count, layout.logCapacity - cell)
                let offset = layout.logOffset(group: group, seq: first)
                outbox.enqueue(peer(server: q), region: Layout.logRegion, offset: offset, source: log + offset,
                               length: head * Layout.logEntrySize)
                if count > head {
                    let rest = layout.logOffset(group: group, seq: first &+ UInt64(head))
                    outbox.enqueue(peer(server: q), region: Layout.logRegion, offset: rest, source: log + rest,
                                   length: (count - head) * Layout.logEntrySize)
                }
            }
            followerReady[m] = true
        } else if let h = layout.groupOf[q], leader(of: h) == q {
            leaderSeq[Int(h.rawValue)] = layout.firstLogPosition &- 1
            leaderReady[Int(h.rawValue)] = true
            resendProposals(to: h)
        }
    }
}

extension ServerEngine {
    /// The connection to outbox peer `p` was re-established after an error: whatever was queued for it
    /// is lost, so re-send what it needs from this process: its acks (a follower's, for the messages
    /// addressed to that peer's group) or, for a sender, the released count. A leader's stream to a
    /// follower breaks only when the leader was deposed, so it is not replayed.
    ///
    /// For a peer that restarted (`restarted`), acks go out for the messages this process delivered
    /// too, as long as it holds their metadata: the newcomer may still need them to order a message
    /// its group's leader had not delivered yet.
    public func resync(peer p: Int, restarted: Bool = false) {
        if p < layout.servers.count {
            forgetRelays(to: p)
            forgetBodyWrites(to: p)
        }
        if p >= layout.servers.count {
            releasePending[p - layout.servers.count] = true
            return
        }
        let q = layout.servers[p]
        let g = Int(group.rawValue)
        // A candidate's 1A may not have reached a peer that restarted since (it was written to
        // the live processes only).
        let issued = recovery.map { $0.ballot } ?? groupBallots[g]
        if groupLeaders[g] == member || recovery != nil, issued != layout.initialBallot(group) {
            // A 1A lost with the connection: the peer must still learn who leads this group now
            // (a deposed leader in particular, whose refused write broke this very connection).
            let value = UInt64(issued.rawValue)
            outbox.enqueue(p, region: Layout.ringRegion, offset: layout.phase1aOffset(group), length: 8) {
                $0.storeBytes(of: value, as: UInt64.self)
            }
        }
        guard let qGroup = layout.groupOf[q], groupLeaders[g] != member else { return }
        let maxDst = layout.maxDestinations
        // Messages held here that share a slot of the peer's ring (a slot's laps there can fall in
        // different slots here): only the newest can be in it, and an older one's ack written after
        // it would hide its ack for good (seed 21608).
        var newest: [Int: Int] = [:]   // peer slot (sender × slots + slot) → table entry
        for index in 0..<present.count where present[index] || (restarted && delivered[index]) {
            guard destinationIndex(index, group) != nil, let jq = destinationIndex(index, qGroup) else { continue }
            let peerSlot = (index / layout.slots) * layout.slots + Int(slotNumbers[index * maxDst + jq])
            if let other = newest[peerSlot], MessageID.isNewer(ids[other].sequence, than: ids[index].sequence) { continue }
            newest[peerSlot] = index
        }
        for (peerSlot, index) in newest.sorted(by: { $0.key < $1.key }) {
            let k = index * maxDst + destinationIndex(index, group)!
            guard !timestamps[k].isNone, outbox.hasRoom(p) else { continue }
            let cell = AckCell(tsBallots[k], timestamps[k].rawValue)
            let offset = layout.ackOffset(slotOffset: layout.slotOffset(sender: peerSlot / layout.slots, slot: peerSlot % layout.slots),
                                          server: serverIndex)
            outbox.enqueue(p, region: Layout.ringRegion, offset: offset, length: AckCell.size) { cell.encode(into: $0) }
        }
    }
}
