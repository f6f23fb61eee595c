/// Checks a run against the atomic multicast specification (spec §2) and the protocol invariants (spec §11).
///
/// - Parameters:
///   - quiescent: the run ended with a fault-free quiescent phase. Only then are the liveness properties
///     (validity, uniform agreement) checked; otherwise they are reported as skipped.
public func check(
    _ history: History, membership: Membership, quiescent: Bool, options: CheckOptions = CheckOptions()
) -> CheckReport {
    var run = CheckRun(history: history, membership: membership, options: options)
    run.checkIntegrity()
    run.checkJoinCuts()
    if quiescent {
        run.checkValidityAndAgreement()
    } else {
        run.skip(.validity, "run did not end quiescent")
        run.skip(.uniformAgreement, "run did not end quiescent")
    }
    run.checkPrefixOrder()
    run.checkAcyclicOrder()
    run.checkSameTimestamps()
    run.checkDeliveryOrder()
    run.checkLeaderInvariants()
    return run.report(quiescent: quiescent)
}

struct CheckRun {
    let history: History
    let membership: Membership
    let options: CheckOptions
    let ix: IndexedHistory
    /// The cut of every new incarnation (`History.recordJoin`), placed in its group's order.
    let joinCuts: [ProcessID: JoinCut]
    var kept: [Property: [Violation]] = [:]
    var counts: [Property: Int] = [:]
    var skipped: [Property: String] = [:]
    var notes: [String]

    init(history: History, membership: Membership, options: CheckOptions) {
        self.history = history
        self.membership = membership
        self.options = options
        self.ix = IndexedHistory(history, membership: membership)
        self.joinCuts = ix.joinCuts()
        self.notes = history.notes
    }

    mutating func add(_ property: Property, _ text: String, messages: [MessageID] = [], processes: [ProcessID] = []) {
        counts[property, default: 0] += 1
        if kept[property, default: []].count < options.maxViolationsPerProperty {
            kept[property, default: []].append(
                Violation(property: property, message: text, messages: messages, processes: processes))
        }
    }

    mutating func add(_ violation: Violation) {
        add(violation.property, violation.message, messages: violation.messages, processes: violation.processes)
    }

    mutating func skip(_ property: Property, _ reason: String) { skipped[property] = reason }

    func report(quiescent: Bool) -> CheckReport {
        var violations: [Violation] = []
        var statuses: [Property: PropertyStatus] = [:]
        var allCounts: [Property: Int] = [:]
        for property in Property.allCases {
            let n = counts[property] ?? 0
            allCounts[property] = n
            violations += kept[property] ?? []
            if n > 0 {
                statuses[property] = .failed(violations: n)
            } else if let reason = skipped[property] {
                statuses[property] = .skipped(reason: reason)
            } else {
                statuses[property] = .passed
            }
        }
        var processes = Set(membership.processes)
        processes.formUnion(history.deliveringProcesses)
        return CheckReport(
            violations: violations, violationCounts: allCounts, statuses: statuses, notes: notes,
            messageCount: ix.messageCount, multicastCount: history.multicasts.count,
            deliveryCount: history.deliveryCount, processCount: processes.count,
            groupCount: membership.groups.count, crashedCount: history.crashed.count, quiescent: quiescent,
            violationsInDescription: options.violationsInDescription)
    }

    // MARK: - Integrity

    // A new incarnation is a process of its own (a fresh id), so these per-process checks need no change for
    // it: a message its crashed predecessor delivered is no duplicate of its own delivery, and one at or
    // before its cut, which its state already includes, is reported by `checkJoinCuts`.
    mutating func checkIntegrity() {
        for i in ix.conflictingMulticasts {
            let mc = history.multicasts[i]
            let first = history.multicasts[ix.firstMulticast[ix.messageIndex[mc.message]!]]
            add(
                .integrity,
                "message \(mc.message) was multicast twice with different destinations: "
                    + "\(groupsText(first.destinations)) and \(groupsText(mc.destinations))",
                messages: [mc.message], processes: [mc.sender])
        }
        var unknownGroups = Set<GroupID>()
        for mc in history.multicasts {
            for g in mc.destinations where membership.groups[g] == nil { unknownGroups.insert(g) }
        }
        if !unknownGroups.isEmpty {
            notes.append("multicasts name groups absent from the membership: \(groupsText(unknownGroups.sorted()))")
        }

        for (slot, p) in ix.processes.enumerated() {
            let raw = history.deliverySequences[slot]
            let group = ix.processGroup[slot]
            if group == nil {
                add(
                    .integrity,
                    "process \(p) is not a member of any group but delivered \(raw.count) message"
                        + "\(raw.count == 1 ? "" : "s") (first: \(raw[0].message) at #1)",
                    messages: [raw[0].message], processes: [p])
            }
            for (entry, m) in ix.sequence[slot].enumerated() {
                let r = ix.rawIndex[slot][entry]
                let d = raw[r]
                let id = ix.messageIDs[m]
                let mcIndex = ix.firstMulticast[m]
                if mcIndex < 0 {
                    add(
                        .integrity, "process \(p) delivered \(id) (\(positionText(r))) but \(id) was never multicast",
                        messages: [id], processes: [p])
                } else {
                    let mc = history.multicasts[mcIndex]
                    if mc.eventIndex > d.eventIndex {
                        add(
                            .integrity,
                            "process \(p) delivered \(id) (\(positionText(r))) before it was multicast "
                                + "(delivery is event \(d.eventIndex), mcast is event \(mc.eventIndex))",
                            messages: [id], processes: [p])
                    }
                    if let reported = d.destinations, reported != mc.destinations {
                        add(
                            .integrity,
                            "process \(p) delivered \(id) (\(positionText(r))) with destinations "
                                + "\(groupsText(reported)) but it was multicast to \(groupsText(mc.destinations))",
                            messages: [id], processes: [p])
                    }
                }
                if let g = group, let dst = ix.destinations[m], !dst.contains(g) {
                    add(
                        .integrity,
                        "process \(p) (group \(g)) delivered \(id) (\(positionText(r))), which is addressed to "
                            + "groups \(groupsText(dst)) only",
                        messages: [id], processes: [p])
                }
            }
        }
        for dup in ix.duplicates {
            let p = ix.processes[dup.slot]
            let id = history.deliverySequences[dup.slot][dup.raw].message
            add(
                .integrity,
                "process \(p) delivered \(id) twice (\(positionText(dup.firstRaw)) and \(positionText(dup.raw)))",
                messages: [id], processes: [p])
        }
    }

    // MARK: - New incarnations

    /// A joined process must be a group member, its cut must name a message its group delivered, and it
    /// must not deliver anything at or before its cut: the state it got up to the cut already includes
    /// those messages, so delivering one again is a second delivery across incarnations.
    mutating func checkJoinCuts() {
        guard !joinCuts.isEmpty else {
            skip(.joinCut, "no join events")
            return
        }
        for p in joinCuts.keys.sorted() {
            let jc = joinCuts[p]!
            switch jc.problem {
            case .notAMember:
                add(
                    .joinCut,
                    "process \(p) joined (cut \(jc.cut.map(\.description) ?? "none")) but is not a member of any "
                        + "group: there is no group order for it to deliver",
                    messages: jc.cut.map { [$0] } ?? [], processes: [p])
                continue
            case .cutNotDelivered:
                let c = jc.cut!
                let g = jc.group!
                var why = ""
                if let m = ix.messageIndex[c] {
                    if let dst = ix.destinations[m], !dst.contains(g) {
                        why = " (it is addressed to groups \(groupsText(dst)) only)"
                    }
                } else {
                    why = " (it was never multicast or delivered)"
                }
                add(
                    .joinCut,
                    "process \(p) joined group \(g) after \(c), but no member of group \(g) delivered \(c)\(why): "
                        + "the cut does not place it in its group's order",
                    messages: [c], processes: [p])
            case nil:
                break
            }
            guard let slot = ix.slotOf[p], !jc.excused.isEmpty, let ref = jc.referenceSlot else { continue }
            let seq = ix.sequence[slot]
            let early = seq.indices.filter { jc.excused.contains(seq[$0]) }
            guard let first = early.first else { continue }
            let m = seq[first]
            let id = ix.messageIDs[m]
            let c = jc.cut!
            let q = ix.processes[ref]
            let cutPosition = positionText(ix.rawIndex[ref][jc.cutEntry])
            let place =
                ix.sequence[ref][...jc.cutEntry].firstIndex(of: m).map {
                    "process \(q) delivered it at \(positionText(ix.rawIndex[ref][$0])), \(c) at \(cutPosition)"
                } ?? "it precedes the cut of process \(q), which delivered \(c) at \(cutPosition)"
            add(
                .joinCut,
                "process \(p) joined group \(jc.group!) after \(c) but delivered \(early.count) message"
                    + "\(early.count == 1 ? "" : "s") at or before its cut, which its state already includes: first "
                    + "\(id) (\(positionText(ix.rawIndex[slot][first]))); \(place)",
                messages: [id, c], processes: [p, q])
        }
    }

    // MARK: - Validity and uniform agreement

    /// A joined, non-crashed member is a correct member of its group like any other, except that it owes
    /// nothing at or before its cut (`JoinCut.excused`): those messages are neither expected from it nor
    /// counted when it delivers them (that is a join-cut violation), so it cannot stand in for a member that
    /// missed one. Everything else is owed to it as to any correct member.
    mutating func checkValidityAndAgreement() {
        let crashed = history.crashed
        var correctMembers: [GroupID: Int] = [:]
        for (g, members) in membership.groups { correctMembers[g] = members.filter { !crashed.contains($0) }.count }
        func excused(_ p: ProcessID, _ m: Int) -> Bool { joinCuts[p]?.excused.contains(m) ?? false }

        // Per message: deliveries by correct members of its destination groups, and by anyone.
        var correctDeliveries = [Int](repeating: 0, count: ix.messageCount)
        var anyDeliverer = [Int](repeating: -1, count: ix.messageCount)  // slot of some deliverer
        for (slot, seq) in ix.sequence.enumerated() {
            let p = ix.processes[slot]
            let group = ix.processGroup[slot]
            let correct = !crashed.contains(p)
            let excusedSet = joinCuts[p]?.excused ?? []
            for m in seq {
                if anyDeliverer[m] < 0 { anyDeliverer[m] = slot }
                if correct, let g = group, ix.addressed(m, to: g), !excusedSet.contains(m) { correctDeliveries[m] += 1 }
            }
        }
        var expected = [Int](repeating: 0, count: ix.messageCount)
        var unknownDst = 0
        for m in 0..<ix.messageCount {
            if let dst = ix.destinations[m] {
                expected[m] = dst.reduce(0) { $0 + (correctMembers[$1] ?? 0) }
            } else {
                unknownDst += 1
            }
        }
        // A correct joined member is counted in `correctMembers`; take it back out for what it is excused.
        for (p, jc) in joinCuts where !crashed.contains(p) {
            guard let g = jc.group else { continue }
            for m in jc.excused where ix.addressed(m, to: g) { expected[m] -= 1 }
        }
        if unknownDst > 0 {
            notes.append(
                "\(unknownDst) delivered message\(unknownDst == 1 ? " has" : "s have") no mcast and no reported "
                    + "destinations: agreement and order checks skip \(unknownDst == 1 ? "it" : "them")")
        }

        // Messages that some correct destination member missed, with whether validity/agreement applies.
        var flagged: [Int] = []
        for m in 0..<ix.messageCount where ix.destinations[m] != nil && correctDeliveries[m] < expected[m] {
            let mc = ix.firstMulticast[m]
            let validityApplies = mc >= 0 && !crashed.contains(history.multicasts[mc].sender)
            if validityApplies || anyDeliverer[m] >= 0 { flagged.append(m) }
        }
        guard !flagged.isEmpty else { return }
        var deliveredBy: [Int: Set<ProcessID>] = [:]
        for m in flagged { deliveredBy[m] = [] }
        for (slot, seq) in ix.sequence.enumerated() {
            for m in seq where deliveredBy[m] != nil { deliveredBy[m]!.insert(ix.processes[slot]) }
        }
        for m in flagged {
            let id = ix.messageIDs[m]
            let dst = ix.destinations[m]!
            let got = deliveredBy[m]!
            var missing: [ProcessID] = []
            for g in dst {
                for p in membership.members(of: g) where !crashed.contains(p) && !got.contains(p) && !excused(p, m) {
                    missing.append(p)
                }
            }
            var missingText = "process\(missing.count == 1 ? "" : "es") \(processesText(missing))"
            let joinedMissing = missing.filter { joinCuts[$0] != nil }
            if !joinedMissing.isEmpty {
                let cuts = joinedMissing.map { p in
                    joinCuts[p]!.cut.map { "\(p) joined after \($0)" } ?? "\(p) joined before its group delivered"
                }
                missingText += " (a new incarnation owes all after its cut: \(cuts.joined(separator: ", ")))"
            }
            let mc = ix.firstMulticast[m]
            if mc >= 0, !crashed.contains(history.multicasts[mc].sender) {
                add(
                    .validity,
                    "\(id) was multicast by correct sender \(history.multicasts[mc].sender) to groups "
                        + "\(groupsText(dst)) but correct \(missingText) never delivered it",
                    messages: [id], processes: missing)
            }
            if anyDeliverer[m] >= 0 {
                let deliverers = got.sorted()
                let shown = deliverers.prefix(5).map { String($0.rawValue) }.joined(separator: ", ")
                let more = deliverers.count > 5 ? " and \(deliverers.count - 5) more" : ""
                add(
                    .uniformAgreement,
                    "\(id) (to groups \(groupsText(dst))) was delivered by process\(deliverers.count == 1 ? "" : "es") "
                        + "\(shown)\(more) but correct \(missingText) never delivered it",
                    messages: [id], processes: missing)
            }
        }
    }

    // MARK: - Order

    mutating func checkPrefixOrder() {
        let witnesses = ix.prefixOrderWitnesses()
        let ix = self.ix
        for w in witnesses {
            add(
                ix.describe(w) { slot, m in
                    ix.sequence[slot].firstIndex(of: m).map { ix.rawIndex[slot][$0] }
                })
        }
    }

    mutating func checkAcyclicOrder() {
        for cycle in ix.cycles() { add(ix.describe(cycle)) }
    }

    // MARK: - I1, I2

    // Neither I1 nor I2 assumes a process delivers from the start: I1 compares each delivery with the first
    // report of the same message, I2 compares consecutive deliveries of one process. A new incarnation's
    // first delivery has no predecessor of its own, and the cut between it and its group's earlier
    // deliveries is checked by `checkJoinCuts` and prefix order.
    mutating func checkSameTimestamps() {
        var refSlot = [Int](repeating: -1, count: ix.messageCount)
        var refTs = [Timestamp](repeating: 0, count: ix.messageCount)
        var finalMismatch: [Int: [(ProcessID, Timestamp)]] = [:]
        // Per-group timestamps: first report per (message, group).
        var refGroupTs: [Int: [GroupID: (ProcessID, Timestamp)]] = [:]
        var groupMismatch: [Int: [(GroupID, ProcessID, Timestamp, ProcessID, Timestamp)]] = [:]
        var order: [Int] = []  // messages with mismatches, in first-detection order

        for (slot, seq) in ix.sequence.enumerated() {
            let p = ix.processes[slot]
            let raw = history.deliverySequences[slot]
            for (entry, m) in seq.enumerated() {
                let d = raw[ix.rawIndex[slot][entry]]
                if refSlot[m] < 0 {
                    refSlot[m] = slot
                    refTs[m] = d.finalTimestamp
                } else if refTs[m] != d.finalTimestamp {
                    if finalMismatch[m] == nil, groupMismatch[m] == nil { order.append(m) }
                    finalMismatch[m, default: []].append((p, d.finalTimestamp))
                }
                guard let gts = d.groupTimestamps else { continue }
                for gt in gts {
                    if let ref = refGroupTs[m]?[gt.group] {
                        let (q, t) = ref
                        if t != gt.timestamp {
                            if finalMismatch[m] == nil, groupMismatch[m] == nil { order.append(m) }
                            groupMismatch[m, default: []].append((gt.group, q, t, p, gt.timestamp))
                        }
                    } else {
                        refGroupTs[m, default: [:]][gt.group] = (p, gt.timestamp)
                    }
                }
                // The final ts is the max of the group timestamps, once all destination groups are present.
                if let dst = ix.destinations[m], !gts.isEmpty,
                    dst.allSatisfy({ g in gts.contains { $0.group == g } })
                {
                    let maxTs = gts.filter { dst.contains($0.group) }.map(\.timestamp).max()!
                    if maxTs != d.finalTimestamp {
                        let id = ix.messageIDs[m]
                        let list = gts.map { "\($0.group): \($0.timestamp)" }.joined(separator: ", ")
                        add(
                            .sameTimestamps,
                            "process \(p) delivered \(id) (\(positionText(ix.rawIndex[slot][entry]))) with final ts "
                                + "\(d.finalTimestamp), but its group timestamps {\(list)} have maximum \(maxTs)",
                            messages: [id], processes: [p])
                    }
                }
            }
        }
        for m in order {
            let id = ix.messageIDs[m]
            let ref = ix.processes[refSlot[m]]
            var parts: [String] = []
            var procs = [ref]
            if let list = finalMismatch[m] {
                parts.append(
                    "final ts \(refTs[m]) at process \(ref) but "
                        + list.map { "\($0.1) at process \($0.0)" }.joined(separator: ", "))
                procs += list.map(\.0)
            }
            if let list = groupMismatch[m] {
                for (g, q, t, p, t2) in list {
                    parts.append("ts of group \(g) is \(t) at process \(q) but \(t2) at process \(p)")
                    procs.append(p)
                }
            }
            add(
                .sameTimestamps, "deliverers of \(id) disagree: " + parts.joined(separator: "; "), messages: [id],
                processes: Array(Set(procs)).sorted())
        }
    }

    mutating func checkDeliveryOrder() {
        for (slot, seq) in ix.sequence.enumerated() where seq.count > 1 {
            let p = ix.processes[slot]
            let raw = history.deliverySequences[slot]
            for entry in 1..<seq.count {
                let a = raw[ix.rawIndex[slot][entry - 1]]
                let b = raw[ix.rawIndex[slot][entry]]
                let increasing =
                    a.finalTimestamp != b.finalTimestamp ? a.finalTimestamp < b.finalTimestamp : a.message < b.message
                if !increasing {
                    add(
                        .deliveryOrder,
                        "process \(p) delivered \(b.message) (ts \(b.finalTimestamp), "
                            + "\(positionText(ix.rawIndex[slot][entry]))) right after \(a.message) "
                            + "(ts \(a.finalTimestamp), \(positionText(ix.rawIndex[slot][entry - 1]))): "
                            + "(finalTs, id) must strictly increase",
                        messages: [a.message, b.message], processes: [p])
                }
            }
        }
    }
}
