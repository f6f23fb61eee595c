import RamCastChecker
import Testing

@Suite("Randomized histories")
struct RandomizedTests {
    @Test(arguments: 0..<200)
    func validRunsAreClean(seed: Int) {
        let run = RandomRun(seed: UInt64(seed))
        let history = run.history(seed: UInt64(seed))
        let report = check(history, membership: run.membership, quiescent: true)
        #expect(report.isClean, "seed \(seed): \(report)")
        #expect(PrefixOrder.violatingPairs(history, membership: run.membership).isEmpty)
        #expect(PrefixOrder.bruteForceViolatingPairs(history, membership: run.membership).isEmpty)
    }

    /// Swap two deliveries at one process. If another process delivered both messages, that process ordered
    /// them the other way: prefix order and acyclic order must both fail. The fast and brute-force prefix
    /// checks must always agree.
    @Test(arguments: 0..<300)
    func swappedDeliveriesAreCaught(seed: Int) {
        var rng = SplitMix64(seed: UInt64(seed) &* 7919)
        let run = RandomRun(seed: UInt64(seed))
        let candidates = run.sequences.filter { $0.value.count >= 2 }.keys.sorted()
        guard let p = candidates.randomElement(using: &rng) else { return }
        var sequences = run.sequences
        var seq = sequences[p]!
        let i = Int.random(in: 0..<(seq.count - 1), using: &rng)
        let j = Bool.random(using: &rng) ? i + 1 : Int.random(in: (i + 1)..<seq.count, using: &rng)
        seq.swapAt(i, j)
        sequences[p] = seq
        let history = run.history(seed: UInt64(seed), sequences: sequences)
        let report = check(history, membership: run.membership, quiescent: true)

        let a = seq[j]  // originally at i
        let b = seq[i]
        let otherOrderedBoth = run.sequences.contains { q, s in q != p && s.contains(a) && s.contains(b) }
        let fast = PrefixOrder.violatingPairs(history, membership: run.membership)
        let brute = PrefixOrder.bruteForceViolatingPairs(history, membership: run.membership)
        #expect(fast == brute, "seed \(seed): fast \(fast) vs brute force \(brute)")
        #expect(report.failedProperties.contains(.deliveryOrder), "seed \(seed)")  // (ts, id) was strict
        if otherOrderedBoth {
            #expect(report.failedProperties.contains(.uniformPrefixOrder), "seed \(seed): \(report)")
            #expect(report.failedProperties.contains(.uniformAcyclicOrder), "seed \(seed): \(report)")
            #expect(fast.contains { $0.first == p || $0.second == p })
        }
        #expect(!report.failedProperties.contains(.integrity))
        #expect(!report.failedProperties.contains(.sameTimestamps))
    }

    /// Arbitrary per-process sequences (random subsets in random orders, some duplicates, some deliveries of
    /// messages not addressed to the process's group, some never multicast): the O(N²·D) reduction must find
    /// exactly the violating pairs that the definition does.
    @Test func prefixOrderReductionMatchesDefinition() {
        var rng = SplitMix64(seed: 42)
        var disagreements: [String] = []
        var violatingRuns = 0
        for iteration in 0..<1500 {
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
                if Int.random(in: 0..<8, using: &rng) > 0 { history.recordMulticast(id, destinations: d) }
            }
            for p in membership.processes {
                let g = membership.group(of: p)!
                var mine = ids.filter { dst[$0]!.contains(g) || Int.random(in: 0..<10, using: &rng) == 0 }
                mine.shuffle(using: &rng)
                mine = Array(mine.prefix(Int.random(in: 0...mine.count, using: &rng)))
                if let dup = mine.randomElement(using: &rng), Int.random(in: 0..<6, using: &rng) == 0 {
                    mine.append(dup)
                }
                for m in mine {
                    // Deliveries of never-multicast messages carry their destinations half of the time.
                    let reported = Bool.random(using: &rng) ? dst[m] : nil
                    history.recordDelivery(process: p, message: m, finalTimestamp: 0, destinations: reported)
                }
            }
            let fast = PrefixOrder.violatingPairs(history, membership: membership)
            let brute = PrefixOrder.bruteForceViolatingPairs(history, membership: membership)
            if fast != brute { disagreements.append("iteration \(iteration): fast \(fast), brute force \(brute)") }
            if !brute.isEmpty { violatingRuns += 1 }
        }
        #expect(disagreements.isEmpty, "\(disagreements.prefix(5))")
        #expect(violatingRuns > 300)  // the generator does exercise violations
    }

    /// 10,000 messages × 6 processes, a mix of one- and two-group messages, then one adjacent swap.
    @Test func largeHistoryIsCheckedQuickly() {
        let membership = twoGroups()
        var rng = SplitMix64(seed: 7)
        var history = History()
        var messages: [(MessageID, [GroupID])] = []
        for k in 0..<10_000 {
            let dst: [GroupID] = [[0], [1], [0, 1]].randomElement(using: &rng)!
            let id = MessageID(sender: UInt32(100 + k % 4), sequence: UInt64(k))
            messages.append((id, dst))
            history.recordMulticast(id, destinations: dst)
        }
        func sequence(of p: ProcessID) -> [Int] {
            messages.indices.filter { messages[$0].1.contains(membership.group(of: p)!) }
        }
        for p in membership.processes {
            var seq = sequence(of: p)
            if p == 4 {  // swap two consecutive messages that are both addressed to {0, 1}
                let both = seq.indices.filter { messages[seq[$0]].1.count == 2 }
                let k = both.firstIndex { $0 > 5000 }!
                seq.swapAt(both[k], both[k + 1])
            }
            for m in seq { history.recordDelivery(process: p, message: messages[m].0, finalTimestamp: UInt64(m)) }
        }
        let clock = ContinuousClock()
        var report: CheckReport? = nil
        let elapsed = clock.measure { report = check(history, membership: membership, quiescent: true) }
        #expect(report!.deliveryCount > 35_000)  // ≈ 10,000 × 4 on average
        #expect(report!.violationCounts[.uniformPrefixOrder] == 5)  // process 4 against each other process
        #expect(report!.violationCounts[.uniformAcyclicOrder] == 1)
        #expect(report!.failedProperties == [.uniformPrefixOrder, .uniformAcyclicOrder, .deliveryOrder])
        #expect(elapsed < .seconds(20), "took \(elapsed)")
        print("check of \(report!.deliveryCount) deliveries took \(elapsed)")
    }
}
