// Protocol invariants over the optional internal events (spec §11): I3, I4, I5, I6.
// Each is skipped (not passed) when the history has no events for it.

struct GroupBallot: Hashable, Comparable {
    var group: GroupID
    var ballot: Ballot
    static func < (a: GroupBallot, b: GroupBallot) -> Bool {
        a.group != b.group ? a.group < b.group : a.ballot < b.ballot
    }
}

struct GroupMessage: Hashable {
    var group: GroupID
    var message: MessageID
}

extension CheckRun {
    mutating func checkLeaderInvariants() {
        let writes = history.leaderWrites
        // Leader writes per (group, ballot), in recording order.
        var byBallot: [GroupBallot: [Int]] = [:]
        for (i, w) in writes.enumerated() {
            byBallot[GroupBallot(group: w.group, ballot: w.ballot), default: []].append(i)
        }
        let ballots = byBallot.keys.sorted()

        if writes.isEmpty {
            skip(.leaderSequence, "no leader write events")
            skip(.skeenMonotonicity, "no leader write events")
        } else {
            checkLeaderSequences(ballots: ballots, byBallot: byBallot)
            if writes.contains(where: { !$0.isProposal }) {
                checkSkeenMonotonicity(ballots: ballots, byBallot: byBallot)
            } else {
                skip(.skeenMonotonicity, "no propagation events")
            }
        }
        if writes.contains(where: \.isProposal) {
            checkQuorumTimestampStable()
        } else {
            skip(.quorumTimestampStable, "no proposal events")
        }
        if history.processedSequences.isEmpty {
            skip(.followerSequence, "no processed-seq events")
        } else {
            checkFollowerSequences(byBallot: byBallot)
        }
    }

    /// Leader writes of one (group, ballot), sorted by seq (stable).
    private func sortedBySequence(_ indices: [Int]) -> [History.LeaderWrite] {
        indices.map { history.leaderWrites[$0] }.enumerated()
            .sorted {
                $0.element.sequence != $1.element.sequence
                    ? $0.element.sequence < $1.element.sequence : $0.offset < $1.offset
            }
            .map(\.element)
    }

    private func writeText(_ w: History.LeaderWrite) -> String {
        if w.isRecoveryMarker { return "recovery marker (clock \(w.timestamp)) at seq \(w.sequence)" }
        if w.isSettled { return "settled \(w.message) at seq \(w.sequence)" }
        if let h = w.sourceGroup { return "propagation of ts_\(h)(\(w.message)) = \(w.timestamp) at seq \(w.sequence)" }
        return "proposal of \(w.message) with ts \(w.timestamp) at seq \(w.sequence)"
    }

    // I3
    mutating func checkLeaderSequences(ballots: [GroupBallot], byBallot: [GroupBallot: [Int]]) {
        // Per (group, message, ts): the first ballot that proposed it. A recovery section re-proposes
        // values of older ballots unchanged, and two of them can be equal: a value proposed to a
        // minority in ballot b, and the same counter given afresh to another message in b+1 by a
        // leader whose quorum never saw the first (docs/failure-handling.md, "Equal final
        // timestamps"). Ties are broken by message id (I2), so only such re-proposals may tie.
        struct Value: Hashable {
            var group: GroupID
            var message: MessageID
            var timestamp: Timestamp
        }
        var firstBallot: [Value: Ballot] = [:]
        for w in history.leaderWrites where w.isProposal {
            let v = Value(group: w.group, message: w.message, timestamp: w.timestamp)
            if firstBallot[v].map({ w.ballot < $0 }) ?? true { firstBallot[v] = w.ballot }
        }
        func reproposes(_ w: History.LeaderWrite) -> Bool {
            firstBallot[Value(group: w.group, message: w.message, timestamp: w.timestamp)].map { $0 < w.ballot } ?? false
        }
        for key in ballots {
            let indices = byBallot[key]!
            let location = "group \(key.group), ballot \(key.ballot)"
            // Dense and increasing, in write order.
            for k in 1..<max(1, indices.count) {
                let prev = history.leaderWrites[indices[k - 1]]
                let cur = history.leaderWrites[indices[k]]
                if cur.sequence == prev.sequence &+ 1 { continue }
                let problem =
                    cur.sequence <= prev.sequence
                    ? "does not increase"
                    : "skips seq \(prev.sequence + 1)\(cur.sequence - prev.sequence > 2 ? "…\(cur.sequence - 1)" : "")"
                add(
                    .leaderSequence,
                    "\(location): leader write seq \(problem): \(writeText(cur)) follows \(writeText(prev))",
                    messages: [prev.message, cur.message])
            }
            // Own proposals: ts strictly increasing in seq order (equal only between re-proposals of
            // older ballots' values); one ts per message.
            let proposals = sortedBySequence(indices).filter(\.isProposal)
            var firstProposal: [MessageID: History.LeaderWrite] = [:]
            for (k, w) in proposals.enumerated() {
                if k > 0, proposals[k - 1].timestamp > w.timestamp
                    || (proposals[k - 1].timestamp == w.timestamp && !(reproposes(w) && reproposes(proposals[k - 1])))
                {
                    let prev = proposals[k - 1]
                    add(
                        .leaderSequence,
                        "\(location): proposal ts must strictly increase with seq, but \(writeText(w)) "
                            + "comes after \(writeText(prev))",
                        messages: [prev.message, w.message])
                }
                if let earlier = firstProposal[w.message] {
                    if earlier.timestamp != w.timestamp {
                        add(
                            .leaderSequence,
                            "\(location): \(w.message) proposed twice with different timestamps: \(writeText(earlier)) "
                                + "and \(writeText(w))",
                            messages: [w.message])
                    }
                } else {
                    firstProposal[w.message] = w
                }
            }
        }
    }

    // I5
    mutating func checkSkeenMonotonicity(ballots: [GroupBallot], byBallot: [GroupBallot: [Int]]) {
        for key in ballots {
            var maxPropagated: History.LeaderWrite? = nil
            for w in sortedBySequence(byBallot[key]!) {
                if !w.isProposal {
                    if maxPropagated.map({ w.timestamp > $0.timestamp }) ?? true { maxPropagated = w }
                } else if let prop = maxPropagated, prop.sequence < w.sequence, w.timestamp <= prop.timestamp {
                    add(
                        .skeenMonotonicity,
                        "group \(key.group), ballot \(key.ballot): \(writeText(w)) is not larger than the earlier "
                            + "\(writeText(prop))",
                        messages: [prop.message, w.message])
                }
            }
        }
    }

    // I4
    mutating func checkQuorumTimestampStable() {
        var leaders: [GroupBallot: ProcessID] = [:]
        for lc in history.leaderChanges { leaders[GroupBallot(group: lc.group, ballot: lc.ballot)] = lc.leader }

        struct Key: Hashable {
            var group: GroupID
            var ballot: Ballot
            var message: MessageID
            var timestamp: Timestamp
        }
        // Distinct ackers per (g, b, m, ts): members of g only. The proposal is the leader's ack; when the
        // leader of (g, b) is unknown it counts as one more acker (record leaderChange to be exact).
        // A new incarnation is a member with its own id but takes its predecessor's seat, so the quorum is a
        // majority of the configured n (`Membership.quorumSize`), not of the members listed. Counting both
        // incarnations as ackers cannot inflate one ballot's count: the newcomer acks nothing before it has
        // processed a recovery marker of a ballot started after it came back, in which its predecessor,
        // crashed by then, never acked.
        var ackers: [Key: Set<ProcessID>] = [:]
        var anonymous: Set<Key> = []
        for a in history.acks where membership.group(of: a.process) == a.group {
            ackers[Key(group: a.group, ballot: a.ballot, message: a.message, timestamp: a.timestamp), default: []]
                .insert(a.process)
        }
        var proposals: [GroupMessage: [History.LeaderWrite]] = [:]
        for w in history.leaderWrites where w.isProposal {
            let key = Key(group: w.group, ballot: w.ballot, message: w.message, timestamp: w.timestamp)
            if let leader = leaders[GroupBallot(group: w.group, ballot: w.ballot)] {
                ackers[key, default: []].insert(leader)
            } else {
                anonymous.insert(key)
                if ackers[key] == nil { ackers[key] = [] }
            }
            proposals[GroupMessage(group: w.group, message: w.message), default: []].append(w)
        }
        // Chosen values per (g, m), sorted by ballot.
        var chosen: [GroupMessage: [(ballot: Ballot, ts: Timestamp, by: [ProcessID], plusLeader: Bool)]] = [:]
        for (key, set) in ackers {
            let count = set.count + (anonymous.contains(key) ? 1 : 0)
            if count >= membership.quorumSize(of: key.group) {
                chosen[GroupMessage(group: key.group, message: key.message), default: []]
                    .append((key.ballot, key.timestamp, set.sorted(), anonymous.contains(key)))
            }
        }
        let keys = chosen.keys.sorted { $0.group != $1.group ? $0.group < $1.group : $0.message < $1.message }
        for gm in keys {
            let list = chosen[gm]!.sorted { $0.ballot != $1.ballot ? $0.ballot < $1.ballot : $0.ts < $1.ts }
            let first = list[0]
            let quorumText =
                "ts_\(gm.group)(\(gm.message)) = \(first.ts) was acknowledged by a quorum in ballot \(first.ballot)"
                + (first.by.isEmpty
                    ? ""
                    : " (processes \(processesText(first.by))\(first.plusLeader ? " plus the leader's proposal" : ""))")
            var reportedBallots = Set<Ballot>()
            for w in proposals[gm] ?? [] where w.ballot > first.ballot && w.timestamp != first.ts {
                guard reportedBallots.insert(w.ballot).inserted else { continue }
                add(
                    .quorumTimestampStable,
                    "\(quorumText), but ballot \(w.ballot) re-proposed it with ts \(w.timestamp) (seq \(w.sequence))",
                    messages: [gm.message])
            }
            for other in list.dropFirst() where other.ts != first.ts && !reportedBallots.contains(other.ballot) {
                reportedBallots.insert(other.ballot)
                add(
                    .quorumTimestampStable,
                    "\(quorumText), but a quorum acknowledged ts \(other.ts) in ballot \(other.ballot)",
                    messages: [gm.message])
            }
        }
    }

    // I6. Unchanged for a new incarnation: it acts on no write of the ballots before its return (its rings
    // and logs are new), and its group's leader streams it a new ballot from that ballot's first write.
    mutating func checkFollowerSequences(byBallot: [GroupBallot: [Int]]) {
        var firstSequence: [GroupBallot: UInt64] = [:]
        for (key, indices) in byBallot {
            firstSequence[key] = indices.map { history.leaderWrites[$0].sequence }.min()
        }
        struct Key: Hashable {
            var process: ProcessID
            var group: GroupID
            var ballot: Ballot
        }
        var last: [Key: UInt64] = [:]
        for e in history.processedSequences {
            let key = Key(process: e.process, group: e.group, ballot: e.ballot)
            let location = "process \(e.process) acted on seq \(e.sequence) of group \(e.group), ballot \(e.ballot)"
            if let prev = last[key] {
                if e.sequence != prev &+ 1 {
                    add(
                        .followerSequence, "\(location) right after seq \(prev) (expected seq \(prev &+ 1))",
                        processes: [e.process])
                }
            } else if let first = firstSequence[GroupBallot(group: e.group, ballot: e.ballot)], e.sequence != first {
                add(
                    .followerSequence,
                    "\(location) as its first write of that ballot (the leader's first write is seq \(first))",
                    processes: [e.process])
            }
            last[key] = e.sequence
        }
    }
}
