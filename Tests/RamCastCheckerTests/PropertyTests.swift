import RamCastChecker
import Testing

@Suite("Specification properties")
struct PropertyTests {
    /// m1 → {0,1}, m2 → {0}, m3 → {1}, m4 → {0,1}, delivered everywhere in (ts, id) order.
    static let cleanMessages: [(String, [GroupID], Timestamp)] = [
        ("100.1", [0, 1], 5), ("101.1", [0], 6), ("100.2", [1], 6), ("101.2", [0, 1], 9),
    ]

    func cleanHistory() -> History {
        var h = History()
        for (m, dst, _) in Self.cleanMessages { h.mcast(m, dst) }
        h.deliverEverywhere(Self.cleanMessages, membership: twoGroups())
        return h
    }

    @Test func cleanHistoryPasses() {
        let report = check(cleanHistory(), membership: twoGroups(), quiescent: true)
        #expect(report.isClean, "\(report)")
        #expect(report.messageCount == 4)
        #expect(report.deliveryCount == 18)  // 6 + 3 + 3 + 6
        #expect(report.processCount == 6)
        #expect(report.status(of: .validity) == .passed)
        #expect(report.status(of: .leaderSequence) == .skipped(reason: "no leader write events"))
        #expect(report.description.contains("CLEAN"))
    }

    @Test func livenessIsSkippedWithoutQuiescence() {
        var h = History()
        h.mcast("100.1", [0])  // nobody delivers: a validity violation only if the run ended quiescent
        let report = check(h, membership: twoGroups(), quiescent: false)
        #expect(report.isClean)
        #expect(report.status(of: .validity) == .skipped(reason: "run did not end quiescent"))
        #expect(check(h, membership: twoGroups(), quiescent: true).failedProperties == [.validity])
    }

    // MARK: Integrity

    @Test func duplicateDelivery() {
        var h = cleanHistory()
        h.deliver(1, "100.1", 5)  // process 1 already delivered 100.1 first
        let report = check(h, membership: twoGroups(), quiescent: true)
        #expect(report.failedProperties == [.integrity], "\(report)")
        let v = report.violations(of: .integrity)
        #expect(v.count == 1)
        #expect(v[0].message.contains("process 1 delivered 100.1 twice (#1 and #4)"), "\(v[0])")
    }

    @Test func deliveryAtNonMember() {
        var h = History()
        h.mcast("100.1", [0])
        for p: ProcessID in [0, 1, 2, 3] { h.deliver(p, "100.1", 1) }  // 3 is in group 1
        let report = check(h, membership: twoGroups(), quiescent: true)
        #expect(report.failedProperties == [.integrity], "\(report)")
        #expect(report.violations[0].processes == [3])
        #expect(report.violations[0].message.contains("process 3 (group 1) delivered 100.1"))
    }

    @Test func deliveryAtProcessOutsideEveryGroup() {
        var h = History()
        h.mcast("100.1", [0])
        for p: ProcessID in [0, 1, 2, 42] { h.deliver(p, "100.1", 1) }
        let report = check(h, membership: twoGroups(), quiescent: true)
        #expect(report.failedProperties == [.integrity])
        #expect(report.violations[0].message.contains("process 42 is not a member of any group"))
    }

    @Test func deliveryOfMessageNeverMulticast() {
        var h = cleanHistory()
        h.deliver(4, "102.7", 20)
        let report = check(h, membership: twoGroups(), quiescent: true)
        #expect(report.failedProperties == [.integrity], "\(report)")
        #expect(
            report.violations[0].message.contains("102.7") && report.violations[0].message.contains("never multicast"))
    }

    @Test func deliveryBeforeMulticast() {
        var h = History()
        for p: ProcessID in [0, 1, 2] { h.deliver(p, "100.1", 1) }
        h.mcast("100.1", [0])
        let report = check(h, membership: twoGroups(), quiescent: true)
        #expect(report.failedProperties == [.integrity])
        #expect(report.violations(of: .integrity).count == 3)
        #expect(report.violations[0].message.contains("before it was multicast"))
    }

    @Test func deliveredDestinationsMustMatchTheMulticast() {
        var h = History()
        h.mcast("100.1", [0])
        h.deliver(0, "100.1", 1)
        h.deliver(1, "100.1", 1)
        h.recordDelivery(process: 2, message: mid("100.1"), finalTimestamp: 1, destinations: [0, 1])
        let report = check(h, membership: twoGroups(), quiescent: true)
        #expect(report.failedProperties == [.integrity])
        #expect(report.violations[0].message.contains("with destinations {0,1} but it was multicast to {0}"))
    }

    // MARK: Validity and agreement

    @Test func validityMissingAtCorrectMember() {
        var h = cleanHistory()
        h.mcast("100.3", [1])
        h.deliver(3, "100.3", 30)
        h.deliver(5, "100.3", 30)  // 4 never delivers; sender 100 is correct
        let report = check(h, membership: twoGroups(), quiescent: true)
        #expect(report.failedProperties == [.validity, .uniformAgreement], "\(report)")
        let v = report.violations(of: .validity)
        #expect(v.count == 1 && v[0].processes == [4] && v[0].messages == [mid("100.3")])
        #expect(v[0].message.contains("correct process 4 never delivered it"), "\(v[0])")
    }

    @Test func validityOnlyWhenNobodyDelivers() {
        var h = cleanHistory()
        h.mcast("100.3", [0, 1])
        let report = check(h, membership: twoGroups(), quiescent: true)
        #expect(report.failedProperties == [.validity])
        #expect(report.violations[0].processes == [0, 1, 2, 3, 4, 5])
    }

    @Test func missingAtCrashedMemberIsAllowed() {
        var h = cleanHistory()
        h.mcast("100.3", [1])
        h.deliver(3, "100.3", 30)
        h.deliver(5, "100.3", 30)
        h.recordCrash(4)
        #expect(check(h, membership: twoGroups(), quiescent: true).isClean)
    }

    @Test func crashedSenderNeedsNoValidity() {
        var h = cleanHistory()
        h.mcast("102.1", [0])
        h.recordCrash(102)
        #expect(check(h, membership: twoGroups(), quiescent: true).isClean)
    }

    @Test func uniformAgreementDeliveredByCrashedProcessOnly() {
        var h = cleanHistory()
        h.mcast("102.1", [0])
        h.recordCrash(102)  // validity does not apply
        h.deliver(0, "102.1", 40)
        h.recordCrash(0)  // the deliverer crashed too: agreement is uniform
        let report = check(h, membership: twoGroups(), quiescent: true)
        #expect(report.failedProperties == [.uniformAgreement], "\(report)")
        let v = report.violations[0]
        #expect(v.processes == [1, 2])
        #expect(v.message.contains("102.1") && v.message.contains("delivered by process 0"))
    }

    // MARK: Order

    /// Spec §10.1: m → {g, h}, m2 → {h}. Follower q (4) of h delivers m then m2; leader L_h (3) delivers m2 then m.
    @Test func section10_1CycleScenario() {
        var h = History()
        h.mcast("100.1", [0, 1])  // m
        h.mcast("101.1", [1])  // m2
        for p: ProcessID in [0, 1, 2] { h.deliver(p, "100.1", 10) }
        h.deliver(3, "101.1", 6)
        h.deliver(3, "100.1", 10)
        h.deliver(4, "100.1", 10)
        h.deliver(4, "101.1", 6)
        h.deliver(5, "101.1", 6)
        h.deliver(5, "100.1", 10)
        let report = check(h, membership: twoGroups(), quiescent: true)
        #expect(report.failedProperties.isSuperset(of: [.uniformPrefixOrder, .uniformAcyclicOrder]), "\(report)")
        #expect(!report.failedProperties.contains(.integrity))
        #expect(PrefixOrder.violatingPairs(h, membership: twoGroups()) == [.init(3, 4), .init(4, 5)])
        let cycle = report.violations(of: .uniformAcyclicOrder)
        #expect(cycle.count == 1)
        #expect(Set(cycle[0].messages) == [mid("100.1"), mid("101.1")])
        #expect(cycle[0].message.contains("cycle of 2 messages"), "\(cycle[0])")
        let prefix = report.violations(of: .uniformPrefixOrder)
        #expect(prefix.contains { $0.processes == [3, 4] && $0.message.contains("process 3 delivered 101.1 (#1)") })
    }

    @Test func prefixOrderOnlyCrashedProcessSkippedAMessage() {
        // Crashed process 2 delivered 100.2 without 100.1, which everyone else delivered first.
        var h = History()
        h.mcast("100.1", [0, 1])
        h.mcast("100.2", [0, 1])
        for p: ProcessID in [0, 1, 3, 4, 5] {
            h.deliver(p, "100.1", 1)
            h.deliver(p, "100.2", 2)
        }
        h.deliver(2, "100.2", 2)
        h.recordCrash(2)
        let report = check(h, membership: twoGroups(), quiescent: true)
        #expect(report.failedProperties == [.uniformPrefixOrder], "\(report)")
        #expect(report.violations.count == 5)  // 2 against each of the other five
        #expect(report.violations[0].message.contains("delivered 100.1 never"), "\(report.violations[0])")
    }

    @Test func crashedPrefixIsFine() {
        // Process 2 crashed after delivering a strict prefix of its group's sequence.
        var h = History()
        for (m, dst, _) in Self.cleanMessages { h.mcast(m, dst) }
        for p: ProcessID in [0, 1, 3, 4, 5] {
            let g: GroupID = p < 3 ? 0 : 1
            for (m, dst, ts) in Self.cleanMessages where dst.contains(g) { h.deliver(p, m, ts) }
        }
        h.deliver(2, "100.1", 5)
        h.recordCrash(2)
        #expect(check(h, membership: twoGroups(), quiescent: true).isClean)
    }

    @Test func acyclicOrderAcrossThreeGroupsWithoutPrefixViolation() {
        // m1 → {0,1}, m2 → {1,2}, m3 → {2,0}. Group 0 orders m1 < m3, group 1 m2 < m1, group 2 m3 < m2.
        // Every pair of groups shares one message only, so prefix order holds, but < has a cycle.
        var h = History()
        h.mcast("100.1", [0, 1])
        h.mcast("100.2", [1, 2])
        h.mcast("100.3", [0, 2])
        let orders: [GroupID: [String]] = [0: ["100.1", "100.3"], 1: ["100.2", "100.1"], 2: ["100.3", "100.2"]]
        let membership = threeGroups()
        for p in membership.processes {
            for (i, m) in orders[membership.group(of: p)!]!.enumerated() { h.deliver(p, m, UInt64(i + 1)) }
        }
        let report = check(h, membership: membership, quiescent: true)
        #expect(report.failedProperties.contains(.uniformAcyclicOrder), "\(report)")
        #expect(!report.failedProperties.contains(.uniformPrefixOrder))
        let v = report.violations(of: .uniformAcyclicOrder)
        #expect(v.count == 1 && v[0].messages.count == 3)
    }

    @Test func longCycleDoesNotRecurse() {
        // 60,000 messages to group 0: process 0 delivers them in order, process 1 delivers the last one first.
        let n = 60_000
        var h = History()
        for i in 1...n { h.mcast("100.\(i)", [0]) }
        for i in 1...n { h.deliver(0, "100.\(i)", UInt64(i)) }
        h.deliver(1, "100.\(n)", UInt64(n))
        h.deliver(1, "100.1", 1)
        let membership = try! Membership(groups: [0: [0, 1]])
        let report = check(h, membership: membership, quiescent: false)
        let v = report.violations(of: .uniformAcyclicOrder)
        #expect(v.count == 1)
        #expect(v.first?.message.contains("cycle of \(n) messages") == true)
        #expect(report.failedProperties.contains(.uniformPrefixOrder))
    }

    // MARK: I1, I2

    @Test func finalTimestampDisagreement() {
        var h = History()
        for (m, dst, _) in Self.cleanMessages { h.mcast(m, dst) }
        for p in twoGroups().processes {
            let g = twoGroups().group(of: p)!
            for (m, dst, ts) in Self.cleanMessages where dst.contains(g) {
                h.deliver(p, m, p == 4 && m == "101.2" ? 11 : ts)  // still last at 4: order unchanged
            }
        }
        let report = check(h, membership: twoGroups(), quiescent: true)
        #expect(report.failedProperties == [.sameTimestamps], "\(report)")
        let v = report.violations[0]
        #expect(v.messages == [mid("101.2")] && v.processes == [0, 4])
        #expect(v.message.contains("final ts 9 at process 0 but 11 at process 4"), "\(v)")
    }

    @Test func groupTimestampDisagreementAndMax() {
        var h = History()
        h.mcast("100.1", [0, 1])
        let good = [GroupTimestamp(group: 0, timestamp: 4), GroupTimestamp(group: 1, timestamp: 7)]
        let bad = [GroupTimestamp(group: 0, timestamp: 5), GroupTimestamp(group: 1, timestamp: 7)]
        for p: ProcessID in [0, 1, 2, 3, 4] {
            h.recordDelivery(process: p, message: mid("100.1"), finalTimestamp: 7, groupTimestamps: good)
        }
        h.recordDelivery(process: 5, message: mid("100.1"), finalTimestamp: 7, groupTimestamps: bad)
        var report = check(h, membership: twoGroups(), quiescent: true)
        #expect(report.failedProperties == [.sameTimestamps])
        #expect(report.violations[0].message.contains("ts of group 0 is 4 at process 0 but 5 at process 5"))

        h = History()
        h.mcast("100.1", [0, 1])
        for p in twoGroups().processes {
            h.recordDelivery(process: p, message: mid("100.1"), finalTimestamp: 6, groupTimestamps: good)
        }
        report = check(h, membership: twoGroups(), quiescent: true)
        #expect(report.failedProperties == [.sameTimestamps])
        #expect(report.violations(of: .sameTimestamps).count == 6)
        #expect(report.violations[0].message.contains("have maximum 7"))
    }

    @Test func outOfOrderFinalTimestamps() {
        // Everyone delivers 100.2 (ts 6) before 100.1 (ts 5): consistent order, but not by (ts, id).
        var h = History()
        h.mcast("100.1", [0])
        h.mcast("100.2", [0])
        for p: ProcessID in [0, 1, 2] {
            h.deliver(p, "100.2", 6)
            h.deliver(p, "100.1", 5)
        }
        let report = check(h, membership: twoGroups(), quiescent: true)
        #expect(report.failedProperties == [.deliveryOrder], "\(report)")
        #expect(report.violations.count == 3)
        #expect(report.violations[0].message.contains("delivered 100.1 (ts 5, #2) right after 100.2 (ts 6, #1)"))
    }

    @Test func tiesAreBrokenByMessageID() {
        var inOrder = History()
        var reversed = History()
        for m in ["101.1", "100.2"] {
            inOrder.mcast(m, [0])
            reversed.mcast(m, [0])
        }
        for p: ProcessID in [0, 1, 2] {
            inOrder.deliver(p, "100.2", 8)  // (8, 100.2) < (8, 101.1)
            inOrder.deliver(p, "101.1", 8)
            reversed.deliver(p, "101.1", 8)
            reversed.deliver(p, "100.2", 8)
        }
        #expect(check(inOrder, membership: twoGroups(), quiescent: true).isClean)
        #expect(check(reversed, membership: twoGroups(), quiescent: true).failedProperties == [.deliveryOrder])
    }

    // MARK: Report

    @Test func descriptionSpreadsViolationsOverProperties() {
        var h = History()
        for i in 1...50 { h.mcast("100.\(i)", [0]) }  // 50 validity violations
        h.deliver(0, "100.1", 1)
        h.deliver(0, "100.1", 1)  // and one integrity violation
        var options = CheckOptions()
        options.violationsInDescription = 5
        let report = check(h, membership: twoGroups(), quiescent: true, options: options)
        #expect(report.violationCounts[.validity] == 50)
        let text = report.description
        #expect(text.contains("[integrity]"))
        #expect(text.contains("[validity]"))
        #expect(text.contains("FAIL (50 violations)"))
        #expect(text.contains("52 violations (5 shown)"))  // 50 validity, 1 integrity, 1 agreement (100.1)
        #expect(text.contains("[uniform-agreement]"))
        #expect(!report.isClean)

        options.maxViolationsPerProperty = 10
        let capped = check(h, membership: twoGroups(), quiescent: true, options: options)
        #expect(capped.violations(of: .validity).count == 10 && capped.violationCounts[.validity] == 50)
    }
}
