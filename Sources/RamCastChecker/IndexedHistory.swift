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

// MARK: - Text helpers shared by the checks

func groupsText(_ groups: [GroupID]) -> String {
    "{" + groups.map { String($0.rawValue) }.joined(separator: ",") + "}"
}

func processesText(_ processes: [ProcessID]) -> String {
    processes.map { String($0.rawValue) }.joined(separator: ", ")
}

/// "#k": 1-based position in a process's delivery sequence.
func positionText(_ rawIndex: Int) -> String { "#\(rawIndex + 1)" }
