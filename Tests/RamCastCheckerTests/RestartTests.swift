import RamCastChecker
import Testing

/// A crashed member that came back as a new incarnation: a fresh process id added to its group, delivering
/// from a cut on (`History.recordJoin`).
@Suite("New incarnations")
struct RestartTests {
    /// Group 0's order is 100.1, 101.1, 101.2, 100.3, 101.3; group 1's is 100.1, 100.2, 101.2, 101.3.
    static let messages: [(String, [GroupID], Timestamp)] = [
        ("100.1", [0, 1], 5), ("101.1", [0], 6), ("100.2", [1], 6), ("101.2", [0, 1], 9), ("100.3", [0], 12),
        ("101.3", [0, 1], 15),
    ]

    /// Group 0's delivery order.
    static let group0 = messages.filter { $0.1.contains(0) }.map(\.0)

    /// `twoGroups()` plus process 9, the new incarnation of process 2, in group 0.
    func restartedMembership() -> Membership {
        var membership = twoGroups()
        try! membership.addMember(9, to: 0)
        return membership
    }

    /// Everyone but 2 and 9 delivers its group's whole order. Process 2 delivers 100.1 and 101.1 and crashes;
    /// process 9 joins after `cut` and delivers `incarnation` (each with its true timestamp).
    func restartHistory(cut: String?, incarnation: [String], join: Bool = true) -> History {
        var h = History()
        for (m, dst, _) in Self.messages { h.mcast(m, dst) }
        for p: ProcessID in [0, 1, 3, 4, 5] {
            let g: GroupID = p < 3 ? 0 : 1
            for (m, dst, ts) in Self.messages where dst.contains(g) { h.deliver(p, m, ts) }
        }
        h.deliver(2, "100.1", 5)
        h.deliver(2, "101.1", 6)
        h.recordCrash(2)
        if join { h.recordJoin(9, after: cut.map(mid)) }
        let ts = Dictionary(uniqueKeysWithValues: Self.messages.map { ($0.0, $0.2) })
        for m in incarnation { h.deliver(9, m, ts[m]!) }
        return h
    }

    // MARK: API

    @Test func addMemberKeepsGroupsSortedAndDisjoint() throws {
        var membership = try Membership(groups: [0: [0, 4, 8], 1: [1, 2, 3]])
        try membership.addMember(5, to: 0)
        #expect(membership.members(of: 0) == [0, 4, 5, 8])
        #expect(membership.group(of: 5) == 0)
        #expect(membership.processes == [0, 1, 2, 3, 4, 5, 8])
        // The newcomer takes a crashed member's seat: n and the quorum stay as configured.
        #expect(membership.size(of: 0) == 3 && membership.quorumSize(of: 0) == 2)
        #expect(throws: Membership.Error.duplicateMember(5, 0)) { try membership.addMember(5, to: 0) }
        #expect(throws: Membership.Error.processInTwoGroups(2, 1, 0)) { try membership.addMember(2, to: 0) }
        #expect(throws: Membership.Error.unknownGroup(7)) { try membership.addMember(9, to: 7) }
        #expect(membership.members(of: 0) == [0, 4, 5, 8])  // unchanged by the failed calls
    }

    @Test func recordJoinIsAnEvent() {
        var h = History()
        h.recordJoin(9, after: mid("100.1"))
        h.recordJoin(10, after: nil)
        #expect(h.eventCount == 2)
        #expect(h.joined[9] == .some(mid("100.1")))
        #expect(h.joined[10] == .some(nil))
        #expect(h.joined[11] == nil)
        h.recordJoin(9, after: mid("100.2"))
        #expect(h.joined[9] == .some(mid("100.2")))
        #expect(h.notes.contains { $0.contains("join of process 9 recorded twice") })
    }

    @Test func joinCutIsSkippedWithoutJoins() {
        var h = History()
        h.mcast("100.1", [0])
        for p: ProcessID in [0, 1, 2] { h.deliver(p, "100.1", 1) }
        let report = check(h, membership: twoGroups(), quiescent: true)
        #expect(report.isClean)
        #expect(report.status(of: .joinCut) == .skipped(reason: "no join events"))
    }

    // MARK: Clean restarts

    /// (a) The incarnation delivers exactly its group's order after the cut.
    @Test func suffixAfterCutIsClean() {
        let h = restartHistory(cut: "101.1", incarnation: ["101.2", "100.3", "101.3"])
        let membership = restartedMembership()
        let report = check(h, membership: membership, quiescent: true)
        #expect(report.isClean, "\(report)")
        #expect(report.status(of: .joinCut) == .passed)
        #expect(report.status(of: .uniformPrefixOrder) == .passed)
        #expect(PrefixOrder.violatingPairs(h, membership: membership).isEmpty)
        #expect(PrefixOrder.bruteForceViolatingPairs(h, membership: membership).isEmpty)

        // Without the join record, process 9 is an ordinary member whose sequence starts mid-way.
        let plain = restartHistory(cut: nil, incarnation: ["101.2", "100.3", "101.3"], join: false)
        let failed = check(plain, membership: membership, quiescent: false).failedProperties
        #expect(failed == [.uniformPrefixOrder], "\(failed)")
    }

    /// (f) The messages at or before the cut are excused: a quiescent check owes 9 none of them.
    @Test func prefixBeforeCutIsExcused() {
        let membership = restartedMembership()
        let h = restartHistory(cut: "101.2", incarnation: ["100.3", "101.3"])
        let report = check(h, membership: membership, quiescent: true)
        #expect(report.isClean, "\(report)")
        #expect(report.status(of: .validity) == .passed && report.status(of: .uniformAgreement) == .passed)

        // Without the join record, 9 owes the three messages before 100.3.
        let plain = restartHistory(cut: nil, incarnation: ["100.3", "101.3"], join: false)
        let unexcused = check(plain, membership: membership, quiescent: true)
        let missed = unexcused.violations(of: .uniformAgreement)
        #expect(missed.count == 3 && missed.allSatisfy { $0.processes == [9] }, "\(unexcused)")
        #expect(Set(missed.flatMap(\.messages)) == [mid("100.1"), mid("101.1"), mid("101.2")])
    }

    @Test func nilCutOwesEverything() {
        let membership = restartedMembership()
        let clean = restartHistory(cut: nil, incarnation: Self.group0)
        #expect(check(clean, membership: membership, quiescent: true).isClean)
        let late = restartHistory(cut: nil, incarnation: Array(Self.group0.dropFirst()))
        let report = check(late, membership: membership, quiescent: true)
        #expect(report.failedProperties == [.validity, .uniformAgreement], "\(report)")
        #expect(report.violations(of: .uniformAgreement).map(\.messages) == [[mid("100.1")]])
        #expect(report.violations(of: .uniformAgreement)[0].message.contains("9 joined before its group delivered"))
    }

    @Test func crashedIncarnationOwesNothing() {
        var h = restartHistory(cut: "101.1", incarnation: ["101.2"])
        h.recordCrash(9)
        #expect(check(h, membership: restartedMembership(), quiescent: true).isClean)
    }

    /// The cut's only deliverer is itself a new incarnation: its own excused prefix carries over.
    @Test func cutPlacedByAnotherIncarnation() {
        // Group 0: 1 and 2 crash early; 9 replaces 2 after 101.1; 0 crashes after 101.2; 10 replaces 0 after
        // 100.3, which only 9 delivered.
        var membership = restartedMembership()
        try! membership.addMember(10, to: 0)
        var h = History()
        for (m, dst, _) in Self.messages { h.mcast(m, dst) }
        for p: ProcessID in [3, 4, 5] {
            for (m, dst, ts) in Self.messages where dst.contains(1) { h.deliver(p, m, ts) }
        }
        h.deliver(1, "100.1", 5)
        h.recordCrash(1)
        h.deliver(2, "100.1", 5)
        h.deliver(2, "101.1", 6)
        h.recordCrash(2)
        h.deliver(0, "100.1", 5)
        h.deliver(0, "101.1", 6)
        h.recordJoin(9, after: mid("101.1"))
        h.deliver(0, "101.2", 9)
        h.recordCrash(0)
        h.deliver(9, "101.2", 9)
        h.deliver(9, "100.3", 12)
        h.recordJoin(10, after: mid("100.3"))
        h.deliver(9, "101.3", 15)
        h.deliver(10, "101.3", 15)
        let report = check(h, membership: membership, quiescent: true)
        #expect(report.isClean, "\(report)")
    }

    // MARK: Violations

    /// (b) The incarnation stops short of its group's last message: agreement (and validity) fail in a
    /// quiescent check, for that message and process 9 only.
    @Test func skippedMessageAfterCut() {
        let membership = restartedMembership()
        let h = restartHistory(cut: "101.1", incarnation: ["101.2", "100.3"])
        let report = check(h, membership: membership, quiescent: true)
        #expect(report.failedProperties == [.validity, .uniformAgreement], "\(report)")
        let v = report.violations(of: .uniformAgreement)
        #expect(v.count == 1 && v[0].processes == [9] && v[0].messages == [mid("101.3")], "\(v)")
        #expect(
            v[0].message.contains("correct process 9 (a new incarnation owes all after its cut: 9 joined after 101.1)"))
        // Like a crashed prefix, that is fine without the quiescence promise.
        #expect(check(h, membership: membership, quiescent: false).isClean)
    }

    /// A gap in the middle is a prefix-order violation as well.
    @Test func gapAfterCut() {
        let membership = restartedMembership()
        let h = restartHistory(cut: "101.1", incarnation: ["101.2", "101.3"])
        let report = check(h, membership: membership, quiescent: true)
        #expect(report.failedProperties == [.validity, .uniformAgreement, .uniformPrefixOrder], "\(report)")
        #expect(report.violations(of: .uniformAgreement).map(\.messages) == [[mid("100.3")]])
        #expect(PrefixOrder.violatingPairs(h, membership: membership) == [.init(0, 9), .init(1, 9)])
    }

    /// (c) The suffix in another order: 9 delivers 101.3 before 100.3.
    @Test func suffixInAnotherOrder() {
        let membership = restartedMembership()
        let h = restartHistory(cut: "101.1", incarnation: ["101.2", "101.3", "100.3"])
        let report = check(h, membership: membership, quiescent: true)
        #expect(report.failedProperties.contains(.uniformPrefixOrder), "\(report)")
        #expect(!report.failedProperties.contains(.uniformAgreement))
        #expect(!report.failedProperties.contains(.joinCut))
        let pairs = PrefixOrder.violatingPairs(h, membership: membership)
        #expect(pairs == [.init(0, 9), .init(1, 9)])
        #expect(pairs == PrefixOrder.bruteForceViolatingPairs(h, membership: membership))
        let v = report.violations(of: .uniformPrefixOrder)
        #expect(v.count == 2)
        #expect(
            v.contains {
                $0.processes == [9, 0]
                    && $0.message.contains(
                        "process 9 is a new incarnation (cut 101.1) whose first of them, 101.2, process 0 delivered at "
                            + "#3; after 1 common message from there, process 9 delivered 101.3 (#2) and process 0 "
                            + "delivered 100.3 (#4); process 9 delivered 100.3 only later, at #3, process 0 delivered "
                            + "101.3 only later, at #5")
            }, "\(v)")
    }

    /// 9 delivers 100.3 first, then 101.2, which process 0 delivered before 100.3.
    @Test func laterMessageDeliveredBeforeTheFirst() {
        let membership = restartedMembership()
        let h = restartHistory(cut: "101.1", incarnation: ["100.3", "101.2", "101.3"])
        let report = check(h, membership: membership, quiescent: true)
        let pairs = PrefixOrder.violatingPairs(h, membership: membership)
        #expect(pairs == [.init(0, 9), .init(1, 9)])
        #expect(pairs == PrefixOrder.bruteForceViolatingPairs(h, membership: membership))
        #expect(
            report.violations(of: .uniformPrefixOrder).contains {
                $0.processes == [9, 0] && $0.messages == [mid("100.3"), mid("101.2")]
                    && $0.message.contains(
                        "process 9 is a new incarnation (cut 101.1), and process 0 delivered one of its later messages "
                            + "without its first one or before it: process 9 delivered 100.3 (#1) and process 0 "
                            + "delivered 101.2 (#3); process 9 delivered 101.2 only later, at #2, process 0 delivered "
                            + "100.3 only later, at #4")
            }, "\(report)")
    }

    /// (d) The incarnation's first message is one that process 0 never delivered, though 0 delivered a later
    /// one of 9's: 0 delivered 101.3 without 102.1, 9 delivered 102.1 before 101.3.
    @Test func firstDeliveryUnknownToAnotherMember() {
        let membership = restartedMembership()
        var h = restartHistory(cut: "100.3", incarnation: [])
        h.mcast("102.1", [0])
        h.deliver(9, "102.1", 14)
        h.deliver(9, "101.3", 15)
        let report = check(h, membership: membership, quiescent: false)
        #expect(report.failedProperties == [.uniformPrefixOrder], "\(report)")
        let pairs = PrefixOrder.violatingPairs(h, membership: membership)
        #expect(pairs == [.init(0, 9), .init(1, 9)])
        #expect(pairs == PrefixOrder.bruteForceViolatingPairs(h, membership: membership))
        let v = report.violations(of: .uniformPrefixOrder)
        #expect(
            v.contains {
                $0.processes == [9, 0] && $0.messages == [mid("102.1"), mid("101.3")]
                    && $0.message.contains(
                        "process 9 delivered 101.3 only later, at #2, process 0 delivered 102.1 never")
            }, "\(v)")

        // Crashed process 2 delivered nothing of 9's: no violation with it (9 had 2's prefix before its cut).
        #expect(!pairs.contains(.init(2, 9)))
    }

    /// The incarnation's first message lines up with a shorter sequence, but its later one precedes it there.
    @Test func laterMessageBeforeTheFirstInAShorterSequence() {
        let membership = restartedMembership()
        // 2 delivered 100.1, 101.1; 9 delivers 101.1 then 100.1.
        let h = restartHistory(cut: nil, incarnation: ["101.1", "100.1"])
        let pairs = PrefixOrder.violatingPairs(h, membership: membership)
        #expect(pairs.contains(.init(2, 9)), "\(pairs)")
        #expect(pairs == PrefixOrder.bruteForceViolatingPairs(h, membership: membership))
    }

    /// (e) A cut that names a message nobody in the incarnation's group delivered.
    @Test func cutNobodyDelivered() {
        let membership = restartedMembership()
        for (cut, why) in [("100.2", "it is addressed to groups {1} only"), ("105.5", "it was never multicast")] {
            let h = restartHistory(cut: cut, incarnation: Self.group0)
            let report = check(h, membership: membership, quiescent: true)
            #expect(report.failedProperties == [.joinCut], "\(report)")
            let v = report.violations(of: .joinCut)
            #expect(v.count == 1 && v[0].processes == [9] && v[0].messages == [mid(cut)])
            #expect(v[0].message.contains("no member of group 0 delivered \(cut) (\(why)"), "\(v[0])")
        }
    }

    @Test func deliveryAtOrBeforeCut() {
        let membership = restartedMembership()
        let h = restartHistory(cut: "101.1", incarnation: ["101.1", "101.2", "100.3", "101.3"])
        let report = check(h, membership: membership, quiescent: true)
        #expect(report.failedProperties == [.joinCut], "\(report)")
        let v = report.violations(of: .joinCut)
        #expect(v.count == 1 && v[0].messages == [mid("101.1"), mid("101.1")] && v[0].processes == [9, 0])
        #expect(v[0].message.contains("delivered 1 message at or before its cut"), "\(v[0])")
    }

    @Test func joinedNonMember() {
        var h = History()
        h.mcast("100.1", [0])
        for p: ProcessID in [0, 1, 2] { h.deliver(p, "100.1", 1) }
        h.recordJoin(42, after: nil)
        let report = check(h, membership: twoGroups(), quiescent: true)
        #expect(report.failedProperties == [.joinCut])
        #expect(report.violations[0].message.contains("process 42 joined (cut none) but is not a member of any group"))
    }

    // MARK: Randomized

    /// Valid runs plus one incarnation per run, joined at a random cut and delivering the rest of its group's
    /// order: clean. Dropping one of its messages fails validity for it alone; the fast and brute-force prefix
    /// checks agree.
    @Test(arguments: 0..<200)
    func randomRestartsAreClean(seed: Int) {
        var rng = SplitMix64(seed: UInt64(seed) &* 104_729)
        let run = RandomRun(seed: UInt64(seed))
        var membership = run.membership
        let g = membership.groupIDs.randomElement(using: &rng)!
        let incarnation: ProcessID = 50
        try! membership.addMember(incarnation, to: g)
        // Every member of g that delivers the whole order (or a crashed prefix) places the cut the same way.
        let order = run.messages.indices.filter { run.messages[$0].dst.contains(g) }
        let cutIndex = Int.random(in: -1..<order.count, using: &rng)
        let reference = run.sequences.filter { membership.group(of: $0.key) == g }
        // The cut must be delivered by some member of g; otherwise there is nothing to join after.
        guard cutIndex < 0 || reference.values.contains(where: { $0.count > cutIndex }) else { return }
        var sequences = run.sequences
        sequences[incarnation] = Array(order[(cutIndex + 1)...])
        var history = run.history(seed: UInt64(seed), sequences: sequences)
        history.recordJoin(incarnation, after: cutIndex < 0 ? nil : run.messages[order[cutIndex]].id)
        let report = check(history, membership: membership, quiescent: true)
        #expect(report.isClean, "seed \(seed): \(report)")
        #expect(PrefixOrder.bruteForceViolatingPairs(history, membership: membership).isEmpty, "seed \(seed)")

        guard let dropped = sequences[incarnation]!.indices.randomElement(using: &rng) else { return }
        sequences[incarnation]!.remove(at: dropped)
        var broken = run.history(seed: UInt64(seed), sequences: sequences)
        broken.recordJoin(incarnation, after: cutIndex < 0 ? nil : run.messages[order[cutIndex]].id)
        let brokenReport = check(broken, membership: membership, quiescent: true)
        // Senders never crash in a RandomRun, so validity always applies; agreement does when someone else
        // delivered the dropped message.
        #expect(brokenReport.failedProperties.contains(.validity), "seed \(seed): \(brokenReport)")
        #expect(
            (brokenReport.violations(of: .validity) + brokenReport.violations(of: .uniformAgreement))
                .allSatisfy { $0.processes == [incarnation] }, "seed \(seed): \(brokenReport)")
        #expect(
            PrefixOrder.violatingPairs(broken, membership: membership)
                == PrefixOrder.bruteForceViolatingPairs(broken, membership: membership), "seed \(seed)")
    }

    /// Arbitrary sequences (as in `prefixOrderReductionMatchesDefinition`) with random processes joined: the
    /// reduction must find exactly the pairs the definition does on the virtual sequences.
    @Test func joinedPrefixOrderReductionMatchesDefinition() {
        var rng = SplitMix64(seed: 4242)
        var disagreements: [String] = []
        var violatingRuns = 0
        var joinedRuns = 0
        for iteration in 0..<2000 {
            let membership = randomMembership(using: &rng)
            let messageCount = Int.random(in: 1...7, using: &rng)
            var history = History()
            var ids: [MessageID] = []
            var dst: [MessageID: [GroupID]] = [:]
            for k in 0..<messageCount {
                let id = MessageID(sender: 100, sequence: UInt64(k))
                var d = membership.groupIDs.filter { _ in Bool.random(using: &rng) }
                if d.isEmpty { d = [membership.groupIDs[0]] }
                ids.append(id)
                dst[id] = d
                history.recordMulticast(id, destinations: d)
            }
            // A common order that processes mostly follow, so that joined pairs often line up.
            let common = ids.shuffled(using: &rng)
            for p in membership.processes {
                let g = membership.group(of: p)!
                var mine = common.filter { dst[$0]!.contains(g) }
                if Bool.random(using: &rng) {
                    history.recordJoin(p, after: nil)
                    mine = Array(mine.dropFirst(Int.random(in: 0...mine.count, using: &rng)))
                }
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: mine.shuffle(using: &rng)
                case 1 where mine.count >= 2:
                    let i = Int.random(in: 0..<mine.count, using: &rng)
                    mine.swapAt(i, Int.random(in: 0..<mine.count, using: &rng))
                case 2 where !mine.isEmpty: mine.remove(at: Int.random(in: 0..<mine.count, using: &rng))
                default: break
                }
                mine = Array(mine.prefix(Int.random(in: 0...mine.count, using: &rng)))
                for m in mine { history.recordDelivery(process: p, message: m, finalTimestamp: 0) }
            }
            if !history.joined.isEmpty { joinedRuns += 1 }
            let fast = PrefixOrder.violatingPairs(history, membership: membership)
            let brute = PrefixOrder.bruteForceViolatingPairs(history, membership: membership)
            if fast != brute { disagreements.append("iteration \(iteration): fast \(fast), brute force \(brute)") }
            if !brute.isEmpty { violatingRuns += 1 }
        }
        #expect(disagreements.isEmpty, "\(disagreements.prefix(5))")
        #expect(joinedRuns > 1500 && violatingRuns > 300, "\(joinedRuns) runs with joins, \(violatingRuns) violating")
    }
}
