import RamCastChecker

/// "7.42" → MessageID; traps on a typo in a test.
func mid(_ text: String) -> MessageID {
    guard let id = MessageID(text) else { fatalError("bad message id literal \(text)") }
    return id
}

/// Two groups of three: group 0 = {0, 1, 2}, group 1 = {3, 4, 5}. Clients are 100+.
func twoGroups() -> Membership {
    try! Membership(groups: [0: [0, 1, 2], 1: [3, 4, 5]])
}

func threeGroups() -> Membership {
    try! Membership(groups: [0: [0, 1, 2], 1: [3, 4, 5], 2: [6, 7, 8]])
}

extension History {
    mutating func mcast(_ message: String, _ destinations: [GroupID]) {
        recordMulticast(mid(message), destinations: destinations)
    }

    mutating func deliver(_ process: ProcessID, _ message: String, _ ts: Timestamp) {
        recordDelivery(process: process, message: mid(message), finalTimestamp: ts)
    }

    /// Every member of every destination group delivers each message, in the given (already sorted) order.
    mutating func deliverEverywhere(_ messages: [(String, [GroupID], Timestamp)], membership: Membership) {
        for p in membership.processes {
            let g = membership.group(of: p)!
            for (m, dst, ts) in messages where dst.contains(g) { deliver(p, m, ts) }
        }
    }
}

/// A small, deterministic generator (SplitMix64), so randomized tests are reproducible from their seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A random run that satisfies every property, as in an ideal execution: messages are totally ordered by
/// (finalTs, id); each correct member delivers exactly the messages addressed to its group in that order;
/// a crashed member delivers a prefix of that sequence.
struct RandomRun {
    var membership: Membership
    var messages: [(id: MessageID, dst: [GroupID], ts: Timestamp)]  // in delivery order
    var sequences: [ProcessID: [Int]]  // indices into `messages`
    var crashed: Set<ProcessID>
    var withGroupTimestamps: Bool

    init(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let groupCount = Int.random(in: 1...3, using: &rng)
        var groups: [GroupID: [ProcessID]] = [:]
        var next: UInt32 = 0
        for g in 0..<groupCount {
            let size = Bool.random(using: &rng) ? 3 : Int.random(in: 1...3, using: &rng)
            groups[GroupID(UInt32(g))] = (0..<size).map { _ in
                defer { next += 1 }
                return ProcessID(next)
            }
        }
        membership = try! Membership(groups: groups)
        let messageCount = Int.random(in: 2...24, using: &rng)
        var sequenceOf: [UInt32: UInt64] = [:]
        var list: [(id: MessageID, dst: [GroupID], ts: Timestamp)] = []
        for _ in 0..<messageCount {
            let sender = UInt32.random(in: 100...102, using: &rng)
            sequenceOf[sender, default: 0] += 1
            var dst = membership.groupIDs.filter { _ in Bool.random(using: &rng) }
            if dst.isEmpty { dst = [membership.groupIDs.randomElement(using: &rng)!] }
            let ts = Timestamp.random(in: 1...UInt64(messageCount), using: &rng)  // ties on purpose
            list.append((MessageID(sender: sender, sequence: sequenceOf[sender]!), dst, ts))
        }
        list.sort { $0.ts != $1.ts ? $0.ts < $1.ts : $0.id < $1.id }
        messages = list
        crashed = Set(membership.processes.filter { _ in Int.random(in: 0..<4, using: &rng) == 0 })
        sequences = [:]
        for p in membership.processes {
            let g = membership.group(of: p)!
            var seq = list.indices.filter { list[$0].dst.contains(g) }
            if crashed.contains(p) { seq = Array(seq.prefix(Int.random(in: 0...seq.count, using: &rng))) }
            sequences[p] = seq
        }
        withGroupTimestamps = Bool.random(using: &rng)
    }

    /// Records the run, interleaving the processes' deliveries randomly (per-process order is kept).
    func history(seed: UInt64, sequences override: [ProcessID: [Int]]? = nil) -> History {
        var rng = SplitMix64(seed: seed ^ 0xABCD)
        var h = History()
        for m in messages.shuffled(using: &rng) { h.recordMulticast(m.id, destinations: m.dst) }
        let seqs = override ?? sequences
        var cursors = seqs.mapValues { _ in 0 }
        var pending = seqs.keys.filter { !seqs[$0]!.isEmpty }.sorted()
        while !pending.isEmpty {
            let k = Int.random(in: 0..<pending.count, using: &rng)
            let p = pending[k]
            let m = messages[seqs[p]![cursors[p]!]]
            var gts: [GroupTimestamp]? = nil
            if withGroupTimestamps {
                // Deterministic per message so that every deliverer agrees; the max is the final ts.
                gts = m.dst.enumerated().map { i, g in
                    GroupTimestamp(group: g, timestamp: i == m.dst.count - 1 ? m.ts : m.ts / 2)
                }
            }
            h.recordDelivery(process: p, message: m.id, finalTimestamp: m.ts, groupTimestamps: gts)
            cursors[p]! += 1
            if cursors[p]! == seqs[p]!.count { pending.remove(at: k) }
        }
        for p in crashed.sorted() { h.recordCrash(p) }
        return h
    }
}

/// 1–3 groups of 1–3 members, numbered from 0: the cluster of a randomized checker test.
func randomMembership(using rng: inout SplitMix64) -> Membership {
    let groupCount = Int.random(in: 1...3, using: &rng)
    var groups: [GroupID: [ProcessID]] = [:]
    var next: UInt32 = 0
    for g in 0..<groupCount {
        let size = Int.random(in: 1...3, using: &rng)
        groups[GroupID(UInt32(g))] = (0..<size).map { _ in
            defer { next += 1 }
            return ProcessID(next)
        }
    }
    return try! Membership(groups: groups)
}
