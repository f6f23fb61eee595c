// Uniform prefix order and uniform acyclic order.
//
// ## Prefix order: the reduction
//
// Definition (spec §2): for m ≠ m' and p ∈ g, q ∈ h with g, h ∈ dst(m) ∩ dst(m'): if p delivered m and
// q delivered m', then p delivered m' before m, or q delivered m before m'.
//
// Fix p ∈ g and q ∈ h (groups are disjoint, so g = G(p), h = G(q)). Only messages addressed to both g and h
// matter; call that set S(g,h). Let P and Q be the delivery sequences of p and q restricted to S(g,h)
// (first occurrences). Claim: (p, q) has no violation iff one of P, Q is a prefix of the other.
//  * If P is a prefix of Q, take m = P[i], m' = Q[j]. If j < i then m' = P[j] precedes m at p; if j > i
//    then m = Q[i] precedes m' at q (i ≠ j since m ≠ m'). Symmetrically when Q is a prefix of P.
//  * Otherwise let k be the first index with P[k] ≠ Q[k] (both exist). With m = P[k], m' = Q[k]: P and Q
//    agree before k and have no duplicates, so m' is not before m at p and m is not before m' at q: a
//    violation, and (m, m', k) is its witness.
// A crashed process that delivered only a prefix is thus fine; a process that delivered m but not m'
// while the other delivered m' before m is caught, as the definition demands (uniformity).
// p = q never violates. So the check is: for every pair of member processes p ≠ q, compare their
// restrictions to S(G(p), G(q)) element by element up to the shorter length.
//
// Cost: building the restrictions is O(Σ_p Σ_{m delivered by p} |dst(m)|); each pair is compared in
// O(min(|P|, |Q|)), so O(N² · D) overall for N processes that deliver D messages each
// (6 processes × 10,000 messages: 15 pairs × ≤10,000 integer comparisons). One witness per pair.
//
// ## Acyclic order
//
// Nodes are messages; each process (crashed prefixes and non-members included) adds an edge between
// consecutive first-occurrence deliveries; that graph has the same transitive closure as "<". Strongly
// connected components are found with an iterative Tarjan (no recursion), and every non-trivial component
// is reported with a shortest cycle through its root (BFS inside the component). O(M + D).

/// Where two processes' restricted sequences first diverge.
struct PrefixOrderWitness {
    var slotP: Int
    var slotQ: Int
    /// 0-based index in the restricted sequences where they differ.
    var commonIndex: Int
    /// Indices into `sequence[slotP]` / `sequence[slotQ]`.
    var entryP: Int
    var entryQ: Int
}

extension IndexedHistory {
    /// For each slot (member processes only): group h → indices into `sequence[slot]` of the deliveries of
    /// messages addressed to both the slot's group and h.
    func prefixRestrictions() -> [[GroupID: [Int]]] {
        var result: [[GroupID: [Int]]] = []
        result.reserveCapacity(processes.count)
        for slot in processes.indices {
            var perGroup: [GroupID: [Int]] = [:]
            if let own = processGroup[slot] {
                for (entry, m) in sequence[slot].enumerated() {
                    guard let dst = destinations[m], dst.contains(own) else { continue }
                    for h in dst { perGroup[h, default: []].append(entry) }
                }
            }
            result.append(perGroup)
        }
        return result
    }

    func prefixOrderWitnesses() -> [PrefixOrderWitness] {
        let restrictions = prefixRestrictions()
        var witnesses: [PrefixOrderWitness] = []
        let empty: [Int] = []
        for p in processes.indices {
            guard let g = processGroup[p] else { continue }
            for q in (p + 1)..<processes.count {
                guard let h = processGroup[q] else { continue }
                let a = restrictions[p][h] ?? empty
                let b = restrictions[q][g] ?? empty
                let n = min(a.count, b.count)
                let seqP = sequence[p]
                let seqQ = sequence[q]
                var i = 0
                while i < n, seqP[a[i]] == seqQ[b[i]] { i += 1 }
                if i < n {
                    witnesses.append(
                        PrefixOrderWitness(slotP: p, slotQ: q, commonIndex: i, entryP: a[i], entryQ: b[i]))
                }
            }
        }
        return witnesses
    }

    func describe(_ w: PrefixOrderWitness, positionOf: (Int, Int) -> Int?) -> Violation {
        let p = processes[w.slotP]
        let q = processes[w.slotQ]
        let g = processGroup[w.slotP]!
        let h = processGroup[w.slotQ]!
        let m = sequence[w.slotP][w.entryP]
        let m2 = sequence[w.slotQ][w.entryQ]
        let idM = messageIDs[m]
        let idM2 = messageIDs[m2]
        let scope = g == h ? "group \(g)" : "groups \(g) and \(h)"
        func later(_ slot: Int, _ msg: Int) -> String {
            if let r = positionOf(slot, msg) { return "only later, at \(positionText(r))" }
            return "never"
        }
        var text = "process \(p) (group \(g)) and process \(q) (group \(h)) diverge on the messages addressed to "
        text += "\(scope): after \(w.commonIndex) common message\(w.commonIndex == 1 ? "" : "s"), "
        text += "process \(p) delivered \(idM) (\(positionText(rawIndex[w.slotP][w.entryP]))) and process \(q) "
        text += "delivered \(idM2) (\(positionText(rawIndex[w.slotQ][w.entryQ]))); process \(p) delivered \(idM2) "
        text += "\(later(w.slotP, m2)), process \(q) delivered \(idM) \(later(w.slotQ, m))"
        return Violation(property: .uniformPrefixOrder, message: text, messages: [idM, idM2], processes: [p, q])
    }

    // MARK: Acyclic order

    struct Cycle {
        /// Message indices m0, m1, …, m(k-1); the cycle closes m(k-1) → m0.
        var messages: [Int]
        /// For each edge m(i) → m(i+1 mod k): (slot, entry index of m(i) in that slot's sequence).
        var edges: [(slot: Int, entry: Int)]
        var componentSize: Int
    }

    func cycles() -> [Cycle] {
        let n = messageCount
        // CSR adjacency with edge labels.
        var outDegree = [Int](repeating: 0, count: n + 1)
        for seq in sequence where seq.count > 1 {
            for i in 0..<(seq.count - 1) { outDegree[seq[i]] += 1 }
        }
        var start = [Int](repeating: 0, count: n + 1)
        for v in 0..<n { start[v + 1] = start[v] + outDegree[v] }
        var fill = start
        var target = [Int](repeating: 0, count: start[n])
        var source = [Int](repeating: 0, count: start[n])
        var labelSlot = [Int](repeating: 0, count: start[n])
        var labelEntry = [Int](repeating: 0, count: start[n])
        for (slot, seq) in sequence.enumerated() where seq.count > 1 {
            for i in 0..<(seq.count - 1) {
                let v = seq[i]
                target[fill[v]] = seq[i + 1]
                source[fill[v]] = v
                labelSlot[fill[v]] = slot
                labelEntry[fill[v]] = i
                fill[v] += 1
            }
        }

        // Iterative Tarjan.
        var index = [Int](repeating: -1, count: n)
        var low = [Int](repeating: 0, count: n)
        var onStack = [Bool](repeating: false, count: n)
        var component = [Int](repeating: -1, count: n)
        var stack: [Int] = []
        var call: [(v: Int, next: Int)] = []
        var counter = 0
        var components: [[Int]] = []
        for root in 0..<n where index[root] < 0 && start[root] < start[root + 1] {
            index[root] = counter
            low[root] = counter
            counter += 1
            stack.append(root)
            onStack[root] = true
            call.append((root, start[root]))
            while let top = call.last {
                let v = top.v
                if top.next < start[v + 1] {
                    call[call.count - 1].next += 1
                    let w = target[top.next]
                    if index[w] < 0 {
                        index[w] = counter
                        low[w] = counter
                        counter += 1
                        stack.append(w)
                        onStack[w] = true
                        call.append((w, start[w]))
                    } else if onStack[w] {
                        low[v] = min(low[v], index[w])
                    }
                    continue
                }
                call.removeLast()
                if let parent = call.last { low[parent.v] = min(low[parent.v], low[v]) }
                if low[v] == index[v] {
                    var members: [Int] = []
                    while true {
                        let w = stack.removeLast()
                        onStack[w] = false
                        members.append(w)
                        if w == v { break }
                    }
                    if members.count > 1 {
                        for w in members { component[w] = components.count }
                        components.append(members)
                    }
                }
            }
        }

        // A shortest cycle through the smallest-id message of each non-trivial component (BFS inside it).
        var result: [Cycle] = []
        var parentEdge = [Int](repeating: -1, count: n)
        var visited = [Bool](repeating: false, count: n)
        for (c, members) in components.enumerated() {
            let origin = members.min { messageIDs[$0] < messageIDs[$1] }!
            var queue = [origin]
            visited[origin] = true
            var head = 0
            var closing = -1
            search: while head < queue.count {
                let v = queue[head]
                head += 1
                for e in start[v]..<start[v + 1] {
                    let w = target[e]
                    guard component[w] == c else { continue }
                    if w == origin {
                        closing = e
                        break search
                    }
                    if !visited[w] {
                        visited[w] = true
                        parentEdge[w] = e
                        queue.append(w)
                    }
                }
            }
            for v in queue { visited[v] = false }
            guard closing >= 0 else { continue }  // unreachable for a strongly connected component
            // Walk back from the closing edge's source to the origin.
            var edgesReversed = [closing]
            var v = source[closing]
            while v != origin {
                let e = parentEdge[v]
                edgesReversed.append(e)
                v = source[e]
            }
            let edges = edgesReversed.reversed().map { $0 }
            result.append(
                Cycle(
                    messages: edges.map { source[$0] },
                    edges: edges.map { (labelSlot[$0], labelEntry[$0]) }, componentSize: members.count))
        }
        return result
    }

    func describe(_ cycle: Cycle) -> Violation {
        let k = cycle.messages.count
        var parts: [String] = []
        let shown = min(k, 8)
        for i in 0..<shown {
            let (slot, entry) = cycle.edges[i]
            let from = messageIDs[cycle.messages[i]]
            let to = messageIDs[cycle.messages[(i + 1) % k]]
            parts.append(
                "\(from) before \(to) at process \(processes[slot]) (\(positionText(rawIndex[slot][entry])), "
                    + "\(positionText(rawIndex[slot][entry + 1])))")
        }
        var text = "delivery order has a cycle of \(k) messages "
        text += "(" + cycle.messages.prefix(shown).map { messageIDs[$0].description }.joined(separator: " → ")
        text += k > shown ? " → …)" : " → \(messageIDs[cycle.messages[0]]))"
        text += ": " + parts.joined(separator: "; ")
        if k > shown { text += "; …" }
        if cycle.componentSize > k {
            text += " [strongly connected component of \(cycle.componentSize) messages]"
        }
        let procs = Array(Set(cycle.edges.map { processes[$0.slot] })).sorted()
        return Violation(
            property: .uniformAcyclicOrder, message: text, messages: cycle.messages.map { messageIDs[$0] },
            processes: procs)
    }
}

/// Direct access to the prefix-order check, and a brute-force reference used to validate it.
public enum PrefixOrder {
    /// An unordered pair of processes (`first < second`).
    public struct Pair: Hashable, Sendable, CustomStringConvertible {
        public let first: ProcessID
        public let second: ProcessID
        public init(_ a: ProcessID, _ b: ProcessID) {
            first = min(a, b)
            second = max(a, b)
        }
        public var description: String { "(\(first), \(second))" }
    }

    /// The pairs of processes with at least one prefix-order violation, by the O(N²·D) reduction.
    public static func violatingPairs(_ history: History, membership: Membership) -> Set<Pair> {
        let ix = IndexedHistory(history, membership: membership)
        return Set(ix.prefixOrderWitnesses().map { Pair(ix.processes[$0.slotP], ix.processes[$0.slotQ]) })
    }

    /// The same set, straight from the definition: every p ∈ g, q ∈ h, m ≠ m' with g, h ∈ dst(m) ∩ dst(m').
    /// O(N² · D²). Independent of `IndexedHistory`; it shares only the rules for dst(m) (first mcast, else the
    /// first delivery reporting destinations) and for duplicates (first delivery counts).
    public static func bruteForceViolatingPairs(_ history: History, membership: Membership) -> Set<Pair> {
        var dst: [MessageID: [GroupID]] = [:]
        for mc in history.multicasts where dst[mc.message] == nil { dst[mc.message] = mc.destinations }
        var fromDeliveries: [MessageID: [GroupID]] = [:]
        for seq in history.deliverySequences {
            for d in seq where fromDeliveries[d.message] == nil {
                if let ds = d.destinations { fromDeliveries[d.message] = ds }
            }
        }
        for (m, ds) in fromDeliveries where dst[m] == nil { dst[m] = ds }

        var position: [ProcessID: [MessageID: Int]] = [:]
        var delivered: [ProcessID: [MessageID]] = [:]
        for (slot, p) in history.deliveringProcesses.enumerated() {
            var pos: [MessageID: Int] = [:]
            var list: [MessageID] = []
            for (i, d) in history.deliverySequences[slot].enumerated() where pos[d.message] == nil {
                pos[d.message] = i
                list.append(d.message)
            }
            position[p] = pos
            delivered[p] = list
        }

        var pairs = Set<Pair>()
        let members = membership.processes
        for p in members {
            let g = membership.group(of: p)!
            for q in members {
                let h = membership.group(of: q)!
                let posP = position[p] ?? [:]
                let posQ = position[q] ?? [:]
                for m in delivered[p] ?? [] {
                    guard let dm = dst[m], dm.contains(g), dm.contains(h) else { continue }
                    for m2 in delivered[q] ?? [] where m2 != m {
                        guard let dm2 = dst[m2], dm2.contains(g), dm2.contains(h) else { continue }
                        let pDeliveredM2BeforeM = posP[m2].map { $0 < posP[m]! } ?? false
                        let qDeliveredMBeforeM2 = posQ[m].map { $0 < posQ[m2]! } ?? false
                        if !pDeliveredM2BeforeM && !qDeliveredMBeforeM2 { pairs.insert(Pair(p, q)) }
                    }
                }
            }
        }
        return pairs
    }
}
