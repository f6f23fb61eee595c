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
// ## Prefix order with new incarnations
//
// A new incarnation p (`History.recordJoin`) recovered no delivered history and delivers from a cut on. It
// behaves as if it had delivered, before its first delivery, a virtual prefix X of messages it did not
// deliver itself (X ∩ P = ∅), and the definition applies to X + P. Where its cut lies is not used here (that
// p delivers exactly its group's order after the cut is for agreement and the join-cut check); X is whatever
// makes the pair consistent, if anything does. By the claim above, applied to X + P: (p, q) has no
// violation iff some such X makes X + P and Q prefix-related. Let P and Q be non-empty (else there is
// nothing to violate).
//  * P[0] = Q[i]. In two prefix-related sequences without duplicates, P[0] sits at the same index in both,
//    so |X| = i and X = Q[0..<i]: p behaves as if it had delivered q's prefix before its cut. So there is
//    no violation iff P agrees with Q[i...] up to the shorter length and no message of P is in Q[0..<i].
//    As P[0..<n] = Q[i..<i+n] once they agree, only P's tail beyond Q's end can be in Q[0..<i]. Witnesses:
//    the first mismatch k, (P[k], Q[i+k]) as above; or P[k] = Q[j] with j < i, (P[0], Q[j]): p delivered
//    Q[j] only after P[0], and q delivered P[0] only after Q[j].
//  * P[0] ∉ Q. If P and Q are disjoint, X = Q works (Q is a prefix of Q + P). If some Q[j] is in P (as P[k],
//    k > 0), the pair (P[0], Q[j]) violates for every X: p delivered Q[j] after P[0], and q never delivered
//    P[0], so q delivered a later message of p but never p's first. So: a violation iff they intersect.
// Both joined (q has a virtual prefix Y too, Y ∩ Q = ∅). If P[0] = Q[i], the same argument on X + P and
// Y + Q forces X = Y + Q[0..<i]; Y = ∅ works whenever any Y does, so the first case applies unchanged.
// Else, if Q[0] ∈ P, symmetrically. Else, if they share a message e: say X + P is a prefix of Y + Q (or
// the other way round, symmetrically). P[0] ∉ Q, so P[0] is in Y, at index |X| < |Y|; e sits at
// |X| + k = |Y| + j with k, j > 0, so Q[0], at index |Y|, falls inside P: a contradiction. So again: a
// violation iff they intersect, witnessed by (P[0], e).
// A pair of which neither is joined is compared from the start, as before. A joined pair builds a position
// map of one restriction, O(|P| + |Q|), so the total stays O(N² · D).
//
// ## Acyclic order
//
// Nodes are messages; each process (crashed prefixes and non-members included) adds an edge between
// consecutive first-occurrence deliveries; that graph has the same transitive closure as "<". A new
// incarnation adds the edges of what it delivered; the order before its cut is asserted by the members that
// delivered it, not by it, so it needs no virtual edges here. Strongly connected components are found with
// an iterative Tarjan (no recursion), and every non-trivial component is reported with a shortest cycle
// through its root (BFS inside the component). O(M + D).

/// Where two processes' restricted sequences first diverge: the messages m (`entryP`) and m' (`entryQ`) with
/// neither "p delivered m' before m" nor "q delivered m before m'".
struct PrefixOrderWitness {
    enum Kind {
        /// Neither is joined: compared from the start; `commonIndex` messages agree before m and m'.
        case fromStart
        /// `slotP` is joined and its first restricted message is `slotQ`'s entry `firstEntryQ`; from there,
        /// `commonIndex` messages agree before m and m'.
        case aligned(firstEntryQ: Int)
        /// `slotP` is joined, m is its first restricted message, and `slotQ` delivered m' (which p delivered
        /// later) without m or before it.
        case skipped
    }

    var slotP: Int
    var slotQ: Int
    /// 0-based index in the restricted sequences where they differ (from the alignment point if `.aligned`).
    var commonIndex: Int
    /// Indices into `sequence[slotP]` / `sequence[slotQ]`.
    var entryP: Int
    var entryQ: Int
    var kind = Kind.fromStart
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
                if isJoined[p] || isJoined[q] {
                    if let w = joinedPairWitness(p, a, q, b) { witnesses.append(w) }
                    continue
                }
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

    /// The prefix-order check of a pair of which at least one process is joined, on restrictions `a` (of
    /// slot `p`) and `b` (of slot `q`); see "Prefix order with new incarnations" in the header.
    func joinedPairWitness(_ p: Int, _ a: [Int], _ q: Int, _ b: [Int]) -> PrefixOrderWitness? {
        guard !a.isEmpty, !b.isEmpty else { return nil }
        // Message → index in the restriction.
        func positions(_ slot: Int, _ entries: [Int]) -> [Int: Int] {
            var map: [Int: Int] = [:]
            map.reserveCapacity(entries.count)
            for (j, e) in entries.enumerated() { map[sequence[slot][e]] = j }
            return map
        }
        let inB = positions(q, b)
        if isJoined[p], let i = inB[sequence[p][a[0]]] { return aligned(p, a, q, b, at: i, positionsInY: inB) }
        let inA = positions(p, a)
        if isJoined[q], let j = inA[sequence[q][b[0]]] { return aligned(q, b, p, a, at: j, positionsInY: inA) }
        // The joined one's first message is not in the other sequence: a violation iff they intersect.
        let (x, xs, y, ys, inX) = isJoined[p] ? (p, a, q, b, inA) : (q, b, p, a, inB)
        guard let e = ys.first(where: { inX[sequence[y][$0]] != nil }) else { return nil }
        return PrefixOrderWitness(slotP: x, slotQ: y, commonIndex: 0, entryP: xs[0], entryQ: e, kind: .skipped)
    }

    /// Joined `x`'s first restricted message is `y`'s restricted index `i`: compare `xs` with `ys[i...]`, and
    /// no message of `xs` may be in `ys[..<i]` (x behaves as if it had delivered those before its cut).
    private func aligned(
        _ x: Int, _ xs: [Int], _ y: Int, _ ys: [Int], at i: Int, positionsInY: [Int: Int]
    ) -> PrefixOrderWitness? {
        let n = min(xs.count, ys.count - i)
        for k in xs.indices {
            let m = sequence[x][xs[k]]
            if let j = positionsInY[m], j < i {
                return PrefixOrderWitness(
                    slotP: x, slotQ: y, commonIndex: 0, entryP: xs[0], entryQ: ys[j], kind: .skipped)
            }
            if k < n, m != sequence[y][ys[i + k]] {
                return PrefixOrderWitness(
                    slotP: x, slotQ: y, commonIndex: k, entryP: xs[k], entryQ: ys[i + k],
                    kind: .aligned(firstEntryQ: ys[i]))
            }
        }
        return nil
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
        text += "\(scope): "
        let common = "\(w.commonIndex) common message\(w.commonIndex == 1 ? "" : "s")"
        let incarnation = "process \(p) is a new incarnation (cut \(joined[p]??.description ?? "none"))"
        switch w.kind {
        case .fromStart:
            text += "after \(common), "
        case .aligned(let firstEntryQ):
            let first = sequence[w.slotQ][firstEntryQ]
            text += "\(incarnation) whose first of them, \(messageIDs[first]), process \(q) delivered at "
            text += "\(positionText(rawIndex[w.slotQ][firstEntryQ])); after \(common) from there, "
        case .skipped:
            text += "\(incarnation), and process \(q) delivered one of its later messages without its first one or "
            text += "before it: "
        }
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
    /// first delivery reporting destinations) and for duplicates (first delivery counts). For a joined process
    /// (`History.joined`) the definition applies to its sequence behind a virtual prefix: the other process's
    /// messages before its first one, built explicitly here rather than by the reduction's index comparisons.
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

        var delivered: [ProcessID: [MessageID]] = [:]
        for (slot, p) in history.deliveringProcesses.enumerated() {
            var seen = Set<MessageID>()
            delivered[p] = history.deliverySequences[slot].map(\.message).filter { seen.insert($0).inserted }
        }

        var pairs = Set<Pair>()
        let members = membership.processes
        for p in members {
            let g = membership.group(of: p)!
            for q in members where q >= p {
                let h = membership.group(of: q)!
                // Only messages addressed to both groups matter.
                func restricted(_ x: ProcessID) -> [MessageID] {
                    (delivered[x] ?? []).filter { dst[$0].map { $0.contains(g) && $0.contains(h) } ?? false }
                }
                var sequenceP = restricted(p)
                var sequenceQ = restricted(q)
                // A joined process is taken to have delivered, before its first delivery, the other's messages
                // that precede it there (all of them if the other never delivered it), minus its own: see
                // "Prefix order with new incarnations" for why this choice is as good as any.
                let pJoined = history.joined[p] != nil
                let qJoined = history.joined[q] != nil
                let ownP = Set(sequenceP)
                let ownQ = Set(sequenceQ)
                if pJoined, let first = sequenceP.first, let i = sequenceQ.firstIndex(of: first) {
                    sequenceP = sequenceQ[..<i].filter { !ownP.contains($0) } + sequenceP
                } else if qJoined, let first = sequenceQ.first, let j = sequenceP.firstIndex(of: first) {
                    sequenceQ = sequenceP[..<j].filter { !ownQ.contains($0) } + sequenceQ
                } else if pJoined {
                    sequenceP = sequenceQ.filter { !ownP.contains($0) } + sequenceP
                } else if qJoined {
                    sequenceQ = sequenceP.filter { !ownQ.contains($0) } + sequenceQ
                }
                // The definition, both ways round: x delivered m, y delivered m2 ⇒ x delivered m2 before m, or
                // y delivered m before m2.
                for (x, y) in [(sequenceP, sequenceQ), (sequenceQ, sequenceP)] {
                    var posX: [MessageID: Int] = [:]
                    var posY: [MessageID: Int] = [:]
                    for (i, m) in x.enumerated() { posX[m] = i }
                    for (i, m) in y.enumerated() { posY[m] = i }
                    for m in x {
                        for m2 in y where m2 != m {
                            let xDeliveredM2BeforeM = posX[m2].map { $0 < posX[m]! } ?? false
                            let yDeliveredMBeforeM2 = posY[m].map { $0 < posY[m2]! } ?? false
                            if !xDeliveredM2BeforeM && !yDeliveredMBeforeM2 { pairs.insert(Pair(p, q)) }
                        }
                    }
                }
            }
        }
        return pairs
    }
}
