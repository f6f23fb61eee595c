/// A dense, analysis-friendly view of a `History`: messages interned to 0..<M, each delivering process's
/// sequence reduced to first occurrences (duplicates are an integrity violation, reported once; every order
/// check and I1/I2 then look at first occurrences only, so one duplicate is not re-reported as a cycle).
struct IndexedHistory {
    let membership: Membership

    /// Message index → id.
    var messageIDs: [MessageID] = []
    var messageIndex: [MessageID: Int] = [:]
    /// dst(m): from the first mcast of m; if there is none, from the first delivery that reports destinations
    /// (slot order, then delivery order). nil if unknown.
    var destinations: [[GroupID]?] = []
    /// Index into `history.multicasts` of m's first mcast, or -1.
    var firstMulticast: [Int] = []

    /// Per delivering process (parallel to `history.deliveringProcesses`).
    var processes: [ProcessID] = []
    var processGroup: [GroupID?] = []
    /// Per slot: the process is a new incarnation that delivers from a cut on (`History.joined`).
    var isJoined: [Bool] = []
    /// `History.joined`: every new incarnation and its cut, including those that delivered nothing.
    let joined: [ProcessID: MessageID?]
    var slotOf: [ProcessID: Int] = [:]
    /// First-occurrence delivery sequence: message indices.
    var sequence: [[Int]] = []
    /// For each entry of `sequence`, the index of that delivery in the raw delivery sequence (0-based).
    var rawIndex: [[Int]] = []
    /// Duplicate deliveries: (slot, raw index of the duplicate, raw index of the first delivery).
    var duplicates: [(slot: Int, raw: Int, firstRaw: Int)] = []
    /// Multicasts (indices into `history.multicasts`) that repeat an id with different destinations.
    var conflictingMulticasts: [Int] = []

    init(_ history: History, membership: Membership) {
        self.membership = membership
        self.joined = history.joined
        let multicasts = history.multicasts
        for (i, mc) in multicasts.enumerated() {
            let m = intern(mc.message)
            if firstMulticast[m] < 0 {
                firstMulticast[m] = i
                destinations[m] = mc.destinations
            } else if multicasts[firstMulticast[m]].destinations != mc.destinations {
                conflictingMulticasts.append(i)
            }
        }
        processes = history.deliveringProcesses
        processGroup = processes.map { membership.group(of: $0) }
        isJoined = processes.map { history.joined[$0] != nil }
        for (slot, p) in processes.enumerated() { slotOf[p] = slot }
        sequence.reserveCapacity(processes.count)
        rawIndex.reserveCapacity(processes.count)
        for raw in history.deliverySequences {
            for d in raw {
                let m = intern(d.message)
                if destinations[m] == nil, let dst = d.destinations { destinations[m] = dst }
            }
        }
        // Dedupe with a per-message stamp (slot + 1) and the raw index of the first delivery at that slot.
        var stamp = [Int](repeating: 0, count: messageIDs.count)
        var firstAt = [Int](repeating: 0, count: messageIDs.count)
        for (slot, raw) in history.deliverySequences.enumerated() {
            var seq: [Int] = []
            var idx: [Int] = []
            seq.reserveCapacity(raw.count)
            idx.reserveCapacity(raw.count)
            for (r, d) in raw.enumerated() {
                let m = messageIndex[d.message]!
                if stamp[m] == slot + 1 {
                    duplicates.append((slot, r, firstAt[m]))
                    continue
                }
                stamp[m] = slot + 1
                firstAt[m] = r
                seq.append(m)
                idx.append(r)
            }
            sequence.append(seq)
            rawIndex.append(idx)
        }
    }

    private mutating func intern(_ id: MessageID) -> Int {
        if let m = messageIndex[id] { return m }
        let m = messageIDs.count
        messageIndex[id] = m
        messageIDs.append(id)
        destinations.append(nil)
        firstMulticast.append(-1)
        return m
    }

    var messageCount: Int { messageIDs.count }

    func addressed(_ m: Int, to group: GroupID) -> Bool {
        guard let dst = destinations[m] else { return false }
        return dst.contains(group)
    }
}

// MARK: - New incarnations

/// A new incarnation's cut, placed in its group's delivery order.
struct JoinCut {
    enum Problem {
        /// The joined process is in no group: it has no group order to join.
        case notAMember
        /// No member of the group delivered the cut message.
        case cutNotDelivered
    }

    var process: ProcessID
    var group: GroupID?
    var cut: MessageID?
    /// The member whose delivery sequence places the cut (nil when the cut is nil or unresolved).
    var referenceSlot: Int?
    /// Index of the cut in `sequence[referenceSlot]`.
    var cutEntry = -1
    /// Message indices the process does not owe: everything at or before the cut in the group's order. A
    /// message here that the process delivers anyway is a second delivery (its state already includes it).
    var excused: Set<Int> = []
    var problem: Problem?
}

extension IndexedHistory {
    /// The cut of every joined process, keyed by process.
    ///
    /// The excused set of p with cut c is the delivery sequence, up to and including c, of a member of p's
    /// group that delivered c: the first such member (in process id order) that is not itself joined, else
    /// the first joined one. A joined reference only delivered from its own cut on, so its excused set is
    /// added too (recursively; a cycle of joins referring to each other, impossible in a real run, stops the
    /// recursion with what was gathered). A nil cut excuses nothing; so does a cut that nobody in the group
    /// delivered, which `problem` reports.
    func joinCuts() -> [ProcessID: JoinCut] {
        var result: [ProcessID: JoinCut] = [:]
        var inProgress = Set<ProcessID>()
        func resolve(_ p: ProcessID) -> JoinCut {
            if let done = result[p] { return done }
            let cut = joined[p]!  // only called for joined processes
            var jc = JoinCut(process: p, group: membership.group(of: p), cut: cut)
            defer { result[p] = jc }
            guard let g = jc.group else {
                jc.problem = .notAMember
                return jc
            }
            guard let c = cut else { return jc }
            // Deliverers of c in g, by process id; a non-joined one is preferred.
            var reference: (slot: Int, entry: Int)? = nil
            if let m = messageIndex[c] {
                for q in membership.members(of: g) where q != p {
                    guard let slot = slotOf[q], let entry = sequence[slot].firstIndex(of: m) else { continue }
                    if !isJoined[slot] {
                        reference = (slot, entry)
                        break
                    }
                    if reference == nil { reference = (slot, entry) }
                }
            }
            guard let (slot, entry) = reference else {
                jc.problem = .cutNotDelivered
                return jc
            }
            jc.referenceSlot = slot
            jc.cutEntry = entry
            jc.excused = Set(sequence[slot][...entry])
            let q = processes[slot]
            if isJoined[slot], inProgress.insert(p).inserted {
                jc.excused.formUnion(resolve(q).excused)
                inProgress.remove(p)
            }
            return jc
        }
        for p in joined.keys.sorted() { _ = resolve(p) }
        return result
    }
}

// MARK: - Text helpers shared by the checks

func groupsText(_ groups: [GroupID]) -> String {
    "{" + groups.map { String($0.rawValue) }.joined(separator: ",") + "}"
}

func processesText(_ processes: [ProcessID]) -> String {
    processes.map { String($0.rawValue) }.joined(separator: ", ")
}

/// "#k": 1-based position in a process's delivery sequence.
func positionText(_ rawIndex: Int) -> String { "#\(rawIndex + 1)" }
