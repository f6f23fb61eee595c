import RamCast
import RamCastChecker
import RamCastFabric
import RamCastInProcess
import RamCastProtocol

/// A randomized, reproducible run of a whole cluster on the in-process fabric, checked by the
/// property checker.
///
/// Everything random (the cluster's shape, the workload, the fabric's schedule, which process runs
/// next) is drawn from one seed, so `Simulation.run(seed:)` with a printed seed replays a failing run
/// exactly. The fabric reorders writes across connections (never within one), tears multi-word
/// writes, and holds senders' writes back so that bodies arrive after the timestamps naming them.
public enum Simulation {
    public struct Shape: Sendable, CustomStringConvertible {
        public var groups: Int
        public var groupSize: Int
        public var senders: Int
        public var slots: Int
        public var slotSize: Int
        public var maxDestinations: Int
        public var inlineThreshold: Int
        public var signalInterval: Int
        public var sendQueueDepth: Int
        public var messages: Int
        public var tearProbability: Double
        public var bodyDelay: Double
        /// Group members to crash during the run (at most f per group), and when (in steps).
        public var crashes: [(member: Int, atStep: Int)] = []
        /// Senders to crash, and when.
        public var senderCrashes: [(sender: Int, atStep: Int)] = []
        /// Crashed group members that restart with empty memory, and how many steps after their crash.
        /// A member listed more than once (``cycles``) restarts after each of its crashes in turn.
        public var restarts: [(member: Int, afterSteps: Int)] = []
        /// Repeated crash–restart cycles (``Simulation/run(seed:crashes:restarts:nearLimits:cycles:races:)``): a member
        /// may be listed in `crashes` more than once, and a group more than f times. A crash that
        /// would leave more than f members of its group down at once (crashed, or restarted and not
        /// yet taken back in) waits until one is back.
        public var cycles = false
        /// Whether leaders use the single-group fast path, drawn for half of the seeds, sender
        /// crashes included.
        public var fastPath = false
        /// Every counter starts just below the limit it used to wrap at (``CounterStart/nearLimits(variant:)``,
        /// the variant from the seed), so that each wrap happens within the run.
        public var nearLimits = false
        /// Whether the scheduler also lands writes inside a process's round, at the driver's
        /// ``DriverPoint``s (between the engine's poll, permission changes, posting and completions).
        public var driverRaces = false
        /// With driver races: group members cut off from the network for a while, alive (drawn
        /// from the races' generator): a leader is then suspected and replaced while it still acts.
        public var isolations: [(member: Int, atStep: Int, forSteps: Int)] = []

        public var description: String {
            "\(groups) groups × \(groupSize), \(senders) senders, \(messages) messages, \(slots) slots of \(slotSize) B, " +
            "≤\(maxDestinations) destinations, inline ≤\(inlineThreshold), signal 1/\(signalInterval), SQ \(sendQueueDepth), " +
            "tear \(tearProbability), body delay \(bodyDelay)" + (fastPath ? ", fast path" : "") + (driverRaces ? ", driver races" : "") + (crashes.isEmpty ? "" : ", crashes \(crashes.map { "\($0.member)@\($0.atStep)" })")
                + (senderCrashes.isEmpty ? "" : ", sender crashes \(senderCrashes.map { "s\($0.sender)@\($0.atStep)" })")
                + (restarts.isEmpty ? "" : ", restarts \(restarts.map { "\($0.member)+\($0.afterSteps)" })")
                + (nearLimits ? ", counters near their limits" : "")
                + (cycles ? ", cycles" : "")
                + (isolations.isEmpty ? "" : ", isolations \(isolations.map { "\($0.member)@\($0.atStep)+\($0.forSteps)" })")
        }

        /// Draws a shape: mostly groups of 3, sometimes 1 or 5; small rings and send queues, so that
        /// back-pressure, ring wrap-around and credit exhaustion happen often.
        public static func random(_ rng: inout SplitMix64, crashes: Bool = false) -> Shape {
            let groups = 1 + Int(rng.next() % 3)
            let sizes = [1, 3, 3, 3, 5]
            var shape = Shape(
                groups: groups,
                groupSize: sizes[Int(rng.next() % UInt64(sizes.count))],
                senders: 1 + Int(rng.next() % 3),
                slots: 1 + Int(rng.next() % 6),
                slotSize: [192, 256, 512][Int(rng.next() % 3)],
                maxDestinations: 1 + Int(rng.next() % UInt64(groups)),
                inlineThreshold: [0, 40, 64, 256][Int(rng.next() % 4)],
                signalInterval: 1 + Int(rng.next() % 16),
                sendQueueDepth: [4, 16, 128][Int(rng.next() % 3)],
                messages: 20 + Int(rng.next() % 100),
                tearProbability: [0, 0.2, 0.5][Int(rng.next() % 3)],
                bodyDelay: [0, 0.5, 0.9][Int(rng.next() % 3)])
            // Acks grew from 8 to 16 bytes per group member: each shape keeps the payload room it had.
            shape.slotSize += shape.groups * shape.groupSize * 8
            if crashes {
                // Up to f members of each group, leaders included, at random moments.
                for g in 0..<shape.groups {
                    let f = (shape.groupSize - 1) / 2
                    let count = Int(rng.next() % UInt64(f + 1))
                    var members = Array(0..<shape.groupSize)
                    members.shuffle(using: &rng)
                    for m in members.prefix(count) {
                        shape.crashes.append((g * shape.groupSize + m, 1 + Int(rng.next() % 6000)))
                    }
                }
                // Senders too, a third of them on average, part way through their fan-outs: of the
                // writes in flight at the crash a random prefix per connection lands (Task 10).
                for s in 0..<shape.senders where rng.next() % 3 == 0 {
                    shape.senderCrashes.append((s, 1 + Int(rng.next() % 6000)))
                }
            }
            if rng.next() % 2 == 0 { shape.fastPath = true }
            return shape
        }
    }

    public struct Outcome: Sendable, CustomStringConvertible {
        public var seed: UInt64
        public var shape: Shape
        public var report: CheckReport
        public var delivered: Int
        public var steps: Int
        /// Set when the run did not reach quiescence within its step budget (a liveness failure).
        public var stalled: String?
        public var writesPerRole: [String: Double]
        /// Crashes and restarts that happened, per group member (index into the members, group by
        /// group): with cycles, one member can crash several times, a group more than f times.
        public var crashesPerMember: [Int: Int] = [:]
        public var restartsDone = 0

        public var passed: Bool { report.isClean && stalled == nil }

        public var description: String {
            var s = "seed \(seed) (\(shape)): \(delivered) deliveries in \(steps) steps"
            if let stalled { s += "\n  STALLED: \(stalled)" }
            if !report.isClean { s += "\n" + report.description }
            return s
        }
    }

    /// Runs one seed with a random shape; with `crashes`, group members (at most f per group) and
    /// senders also crash.
    /// With `restarts` (and `crashes`), half of the crashed members restart with empty memory.
    /// With `nearLimits`, every counter starts just below the limit it used to wrap at.
    /// With `cycles` (and `restarts`), members crash again after they came back, and other members of
    /// their group after them: over the run a member can go through several crash–restart cycles
    /// and a group can lose more than f members, never more than f at once.
    /// With `races` (by default, with `crashes`), writes also land inside processes' rounds
    /// (``Shape/driverRaces``); `false` replays a crash schedule found before that existed.
    public static func run(seed: UInt64, crashes: Bool = false, restarts: Bool = false, nearLimits: Bool = false,
                           cycles: Bool = false, races: Bool? = nil) throws -> Outcome {
        var rng = SplitMix64(seed: seed)
        var shape = Shape.random(&rng, crashes: crashes)
        shape.nearLimits = nearLimits
        shape.driverRaces = races ?? crashes
        if shape.driverRaces {
            // Half of the runs isolate one member (a leader, mostly, member 0 of a group) for
            // longer than the failure timeout (5,000 steps).
            var isolationRNG = SplitMix64(seed: seed ^ 0x150_1A7E)
            if isolationRNG.next() % 2 == 0 {
                let g = Int(isolationRNG.next() % UInt64(shape.groups))
                let m = isolationRNG.next() % 4 == 0 ? Int(isolationRNG.next() % UInt64(shape.groupSize)) : 0
                shape.isolations.append((g * shape.groupSize + m, 1 + Int(isolationRNG.next() % 4000),
                                         5_000 + Int(isolationRNG.next() % 5_000)))
            }
        }
        // Half of the crashed members restart. Drawn from a generator of their own, so that the
        // seeds found before restarts existed still draw the same shape and schedule up to then.
        var restartRNG = SplitMix64(seed: seed ^ 0x5EED_0F_4E57A7)
        for (member, _) in shape.crashes where restarts && restartRNG.next() % 2 == 0 {
            shape.restarts.append((member, 1 + Int(restartRNG.next() % 4000)))
        }
        if cycles && restarts && crashes { drawCycles(&shape, seed: seed) }
        return try run(seed: seed, shape: shape, rng: &rng)
    }

    /// Adds crash–restart cycles to a crash schedule, from a generator of their own (the rest of the
    /// seed's schedule stays as without them): the first crashes that did not restart do so with
    /// probability 1/2, and every group that tolerates a crash gets 1 to 3 more crashes of random
    /// members (the same one again, often), each followed by a restart with probability 3/4. The
    /// run loop holds a crash back while its group has f members down.
    static func drawCycles(_ shape: inout Shape, seed: UInt64) {
        var rng = SplitMix64(seed: seed ^ 0xC1C1_E5_C4A5)
        shape.cycles = true
        for (member, _) in shape.crashes where !shape.restarts.contains(where: { $0.member == member }) && rng.next() % 2 == 0 {
            shape.restarts.append((member, 1 + Int(rng.next() % 4000)))
        }
        let f = (shape.groupSize - 1) / 2
        guard f > 0 else { return }
        for g in 0..<shape.groups {
            for _ in 0..<(1 + Int(rng.next() % 3)) {
                let member = g * shape.groupSize + Int(rng.next() % UInt64(shape.groupSize))
                shape.crashes.append((member, 1 + Int(rng.next() % 12_000)))
                if rng.next() % 4 != 0 { shape.restarts.append((member, 1 + Int(rng.next() % 4000))) }
            }
        }
    }

    public static func run(seed: UInt64, shape: Shape) throws -> Outcome {
        var rng = SplitMix64(seed: seed ^ 0x9E37_79B9)
        return try run(seed: seed, shape: shape, rng: &rng)
    }

    static func run(seed: UInt64, shape: Shape, rng: inout SplitMix64) throws -> Outcome {
        var next: UInt32 = 0
        let groups: [[NodeID]] = (0..<shape.groups).map { _ in
            (0..<shape.groupSize).map { _ in defer { next += 1 }; return NodeID(next) }
        }
        let senders = (0..<shape.senders).map { NodeID(100 + UInt32($0)) }
        var config = ProtocolConfig(groups: groups, senders: senders, slotsPerRing: shape.slots, slotSize: shape.slotSize,
                                    inlineThreshold: shape.inlineThreshold, signalInterval: shape.signalInterval,
                                    maxDestinations: shape.maxDestinations)
        // Virtual time: one step is one microsecond.
        config.heartbeatInterval = 200_000
        config.failureTimeout = 5_000_000
        config.singleGroupFastPath = shape.fastPath
        if shape.nearLimits { config.counterStart = .nearLimits(variant: seed) }
        let layout = try Layout(config)
        var limits = FabricLimits.inProcessDefault
        limits.sendQueueDepth = shape.sendQueueDepth
        let fabric = InProcessFabric(schedule: .seeded(rng.next(), tearProbability: shape.tearProbability), limits: limits)
        fabric.slowPosters = Set(senders)
        fabric.slowdown = shape.bodyDelay
        let cluster = try LocalCluster(layout: layout) { (id: NodeID) throws(FabricError) -> any FabricEndpoint in
            try fabric.makeEndpoint(id)
        }
        let recorder = HistoryRecorder(layout: layout)
        for node in cluster.servers { node.server!.tracer = recorder }
        let time = VirtualTime()
        for node in cluster.nodes { node.clock = { time.now } }
        // Where to land is drawn from a generator of its own, so the run's loop draws the same
        // actions as without races (what lands there, from the fabric's, shifts).
        let races = shape.driverRaces ? DriverRaces(fabric: fabric, nodes: cluster.nodes.map(\.id), seed: seed ^ 0xD41_7E4_2ACE) : nil
        for node in cluster.nodes { node.driver.racePoint = races?.point(at: node.id) }
        let members = groups.flatMap { $0 }
        var crashPlan = shape.crashes.map { (node: members[$0.member], step: $0.atStep) }
            + shape.senderCrashes.map { (node: senders[$0.sender], step: $0.atStep) }
        var restartPlan: [(node: NodeID, step: Int)] = []
        /// Restarts not yet scheduled, taken in order by their member's crashes.
        var restartsLeft = shape.restarts
        var crashesPerMember: [Int: Int] = [:]
        var restartsDone = 0
        var dead: Set<NodeID> = []
        /// Members of `node`'s group that are down: crashed, or restarted and not yet taken back in.
        func down(inGroupOf node: NodeID) -> Int {
            guard let g = layout.groupOf[node] else { return 0 }
            return layout.members(of: g).filter { dead.contains($0) || cluster.nodeByID[$0]?.server?.rejoining == true }.count
        }
        /// A planned crash may happen now: senders always; a member that is up (or rejoining, which
        /// counts as down already) if its group keeps at least f+1 members up.
        func mayCrash(_ node: NodeID) -> Bool {
            guard let g = layout.groupOf[node] else { return true }
            if dead.contains(node) { return false }
            if cluster.nodeByID[node]?.server?.rejoining == true { return true }
            return down(inGroupOf: node) < layout.f(of: g)
        }
        /// With cycles: a planned member crash that still can happen (its member or another of its
        /// group comes back), so the run goes on until it has.
        func crashStillDue() -> Bool {
            crashPlan.contains { c in
                guard let g = layout.groupOf[c.node] else { return false }
                let gone = layout.members(of: g).filter { q in dead.contains(q) && !restartPlan.contains { $0.node == q } }
                return !gone.contains(c.node) && gone.count < layout.f(of: g)
            }
        }
        /// Per node, what its current incarnation delivered, in order.
        var deliveredBy: [NodeID: Set<RamCastProtocol.MessageID>] = [:]
        var everDelivered: Set<RamCastProtocol.MessageID> = []
        /// Per checker process (each incarnation), its delivery order: to find a rejoined one's cut.
        var sequences: [ProcessID: [RamCastProtocol.MessageID]] = [:]
        /// Per rejoined node: the messages before its cut, which it is excused from delivering.
        var excused: [NodeID: Set<RamCastProtocol.MessageID>] = [:]
        func owes(_ q: NodeID, _ id: RamCastProtocol.MessageID) -> Bool {
            guard let engine = cluster.nodeByID[q]?.server, engine.me == q, recorder.pid(q).rawValue >= HistoryRecorder.incarnationStride else { return true }
            if engine.rejoining { return true }
            if excused[q] == nil {
                excused[q] = engine.joinedAfter.map { before($0, in: layout.groupOf[q]!) } ?? []
            }
            return !excused[q]!.contains(id)
        }
        /// The messages at or before `cut` in group `g`'s order: every member's order up to it, and,
        /// for a member that itself joined after a cut, what lies before that one. With cycles, the
        /// first member found may be a restarted one whose order starts at its own cut.
        func before(_ cut: RamCastProtocol.MessageID, in g: RamCastProtocol.GroupID, depth: Int = 0) -> Set<RamCastProtocol.MessageID> {
            var out: Set<RamCastProtocol.MessageID> = []
            for p in recorder.membership.members(of: HistoryRecorder.group(g)) {
                guard let order = sequences[p], let end = order.firstIndex(of: cut) else { continue }
                out.formUnion(order[...end])
                if depth < 16, let joined = recorder.history.joined[p], let c = joined {
                    out.formUnion(before(RamCastProtocol.MessageID(sender: NodeID(c.sender), sequence: c.sequence), in: g, depth: depth + 1))
                }
            }
            return out
        }
        var sent: [(RamCastProtocol.MessageID, [RamCastProtocol.GroupID])] = []
        func complete() -> Bool {
            for (id, dst) in sent {
                // A crashed sender's message is owed to everyone only if someone delivered it.
                if dead.contains(id.sender), !everDelivered.contains(id) { continue }
                for g in dst {
                    for q in layout.members(of: g) where !dead.contains(q) {
                        if deliveredBy[q]?.contains(id) != true, owes(q, id) { return false }
                    }
                }
            }
            return true
        }

        var remaining = Array(repeating: shape.messages / shape.senders, count: shape.senders)
        remaining[0] += shape.messages % shape.senders
        var expectedDeliveries = 0
        var delivered = 0
        var steps = 0
        let budget = 2_000_000
        var payload = [UInt8](repeating: 0, count: layout.maxPayload)
        var dst: [RamCastProtocol.GroupID] = []
        let deliver: (borrowing Delivery) -> Void = { d in
            recorder.delivered(d)
            deliveredBy[d.process, default: []].insert(d.id)
            everDelivered.insert(d.id)
            sequences[recorder.pid(d.process), default: []].append(d.id)
            delivered += 1
        }
        while steps < budget {
            steps += 1
            time.now += 1_000
            if let i = crashPlan.firstIndex(where: { $0.step <= steps && mayCrash($0.node) }) {
                let victim = crashPlan.remove(at: i).node
                fabric.crash(victim)
                dead.insert(victim)
                recorder.crashed(victim)
                if let m = members.firstIndex(of: victim) { crashesPerMember[m, default: 0] += 1 }
                if let r = restartsLeft.firstIndex(where: { members.indices.contains($0.member) && members[$0.member] == victim }) {
                    restartPlan.append((victim, steps + restartsLeft.remove(at: r).afterSteps))
                }
            }
            for cut in shape.isolations {
                if steps == cut.atStep { fabric.isolated.insert(members[cut.member]) }
                if steps == cut.atStep + cut.forSteps { fabric.isolated.remove(members[cut.member]) }
            }
            if let i = restartPlan.firstIndex(where: { $0.step <= steps }) {
                let node = restartPlan.remove(at: i).node
                let fresh = try cluster.restart(node) { (id: NodeID) throws(FabricError) -> any FabricEndpoint in
                    try fabric.makeEndpoint(id)
                }
                fresh.clock = { time.now }
                fresh.driver.racePoint = races?.point(at: node)
                fresh.server!.tracer = recorder
                recorder.restarted(node)
                dead.remove(node)
                deliveredBy[node] = []
                excused[node] = nil   // the new incarnation has a cut of its own
                restartsDone += 1
            }
            let action = rng.next() % 10
            if action < 2, let s = remaining.indices.filter({ remaining[$0] > 0 && !dead.contains(senders[$0]) }).randomElement(using: &rng) {
                // A multicast: random destinations and size (empty payloads included).
                let sender = cluster.senders[s].sender!
                dst.removeAll(keepingCapacity: true)
                let count = 1 + Int(rng.next() % UInt64(shape.maxDestinations))
                var all = (0..<shape.groups).map { RamCastProtocol.GroupID(UInt8($0)) }
                all.shuffle(using: &rng)
                dst.append(contentsOf: all.prefix(count))
                let size = Int(rng.next() % UInt64(layout.maxPayload + 1))
                for i in 0..<size { payload[i] = UInt8(truncatingIfNeeded: rng.next()) }
                let id = try payload.withUnsafeBytes { p in
                    try dst.withUnsafeBufferPointer { try sender.multicast(UnsafeRawBufferPointer(rebasing: p[0..<size]), to: $0) }
                }
                if let id {
                    recorder.multicast(id, destinations: dst)
                    sent.append((id, dst))
                    expectedDeliveries += dst.reduce(0) { $0 + layout.members(of: $1).count }
                    remaining[s] -= 1
                }
            } else if action < 6 {
                let node = cluster.nodes[Int(rng.next() % UInt64(cluster.nodes.count))]
                if !dead.contains(node.id) { try node.pump(deliver) }
            } else {
                for _ in 0..<(1 + Int(rng.next() % 8)) { fabric.step() }
            }
            if remaining.indices.allSatisfy({ remaining[$0] == 0 || dead.contains(senders[$0]) }), restartPlan.isEmpty,
               fabric.pendingWrites == 0, !(shape.cycles && crashStillDue()), complete() { break }
        }
        fabric.isolated.removeAll()   // the run's loop may end with a quiet member still cut off
        // Let outstanding releases, flushes and relays settle, then a quiescent check. Quiet means
        // no engine did protocol work for three heartbeat intervals (heartbeats never stop): crashed senders' bodies are relayed once per
        // interval, and a message nobody had delivered at the loop's end may still be owed after.
        var quietSince = time.now
        var lastWork = 0
        for _ in 0..<200_000 {
            time.now += 1_000
            for node in cluster.nodes where !dead.contains(node.id) { try node.pump(deliver) }
            fabric.drain()
            let work = cluster.servers.filter { !dead.contains($0.id) }.reduce(0) { sum, node in
                let s = node.server!.stats
                return sum + s.bodies + s.proposals + s.acks + s.delivered + s.releases + s.relays + s.settled
            }
            if work != lastWork { quietSince = time.now; lastWork = work }
            if time.now - quietSince > 3 * config.heartbeatInterval, complete() { break }
        }
        var stalled: String?
        let unsent = remaining.indices.filter { remaining[$0] > 0 && !dead.contains(senders[$0]) }.reduce(0) { $0 + remaining[$1] }
        if !complete() || unsent > 0 {
            stalled = "after \(steps) steps: \(delivered) of \(expectedDeliveries) deliveries, \(remaining.reduce(0, +)) multicasts not accepted, \(fabric.pendingWrites) writes in flight\n"
                + cluster.servers.filter { !dead.contains($0.id) }.map { $0.server!.debugDescription }.joined()
        }
        cluster.close()
        let report = check(recorder.history, membership: recorder.membership, quiescent: true)
        var perRole: [String: Double] = [:]
        let messages = Double(max(1, shape.messages))
        for node in cluster.nodes {
            let role = node.sender != nil ? "sender" : (node.server!.isLeader ? "leader" : "follower")
            perRole[role, default: 0] += Double(node.driver.writesPosted) / messages
        }
        return Outcome(seed: seed, shape: shape, report: report, delivered: delivered, steps: steps, stalled: stalled,
                       writesPerRole: perRole, crashesPerMember: crashesPerMember, restartsDone: restartsDone)
    }
}

/// The simulation's clock, shared by every node: advanced by the run loop, one step at a time.
final class VirtualTime {
    var now: UInt64 = 1
}

/// Lands queued writes at a driver's race points (``Shape/driverRaces``): at half of them, one to
/// three writes of a random peer into the process at that point (what a NIC would land between its
/// poll and its revocation, say), else sometimes a step of the whole fabric.
final class DriverRaces {
    let fabric: InProcessFabric
    let nodes: [NodeID]
    var rng: SplitMix64

    init(fabric: InProcessFabric, nodes: [NodeID], seed: UInt64) {
        self.fabric = fabric
        self.nodes = nodes
        rng = SplitMix64(seed: seed)
    }

    func point(at node: NodeID) -> (DriverPoint) -> Void { { self.land(into: node, at: $0) } }

    func land(into node: NodeID, at point: DriverPoint) {
        switch rng.next() % 4 {
        case 0, 1:
            let peer = nodes[Int(rng.next() % UInt64(nodes.count))]
            if peer != node { fabric.deliver(from: peer, to: node, count: 1 + Int(rng.next() % 3)) }
        case 2:
            fabric.step()
        default:
            break
        }
    }
}
