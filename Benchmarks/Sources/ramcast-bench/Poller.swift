import Histogram
import RamCast
import RamCastFabric
import RamCastProtocol

/// A sender process driven by a poller, and its load generator.
final class SenderState {
    let node: ProcessNode
    let engine: SenderEngine
    /// Index in the layout's senders (and in ``RunState``'s per-sender tables).
    let index: Int
    var rng: SplitMix64
    /// Messages to send in the measured phase (--messages), else Int.max.
    let quota: Int
    var sent = 0
    var sentAtStart = 0
    var sentAtEnd = 0
    // Completion seen through slot releases (multi-process senders): per ring position, flags and
    // the designated process of the message's first destination group.
    var oldest: UInt64 = 0
    var flags: [UInt8]
    var designated: [NodeID]
    var stopGroups: [[RamCastProtocol.GroupID]] = []
    var stopsSent = 0
    var stopsOutstanding = 0

    static let seen: UInt8 = 1, done: UInt8 = 2, stop: UInt8 = 4, live: UInt8 = 8

    init(node: ProcessNode, index: Int, seed: UInt64, quota: Int, capacity: Int) {
        self.node = node
        engine = node.sender!
        self.index = index
        rng = SplitMix64(seed: seed &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15)
        self.quota = quota
        flags = Array(repeating: 0, count: capacity)
        designated = Array(repeating: NodeID(0), count: capacity)
    }
}

/// `--crash-leader-after`: crash group 0's first leader once it delivered `after` messages. The
/// poller that hosts the target carries out the plan; every poller watches for the failover.
struct CrashPlan {
    var target: NodeID
    var after: Int
    /// Ends the target as a crash would: its peers see its connections die and cannot reconnect.
    var crash: (ProcessNode) -> Void
}

/// One polling thread: it drives a set of local nodes (group members and senders) in turn, generates
/// the senders' load, and records what it sees. Confined to its thread; the controller reads its
/// results after joining it.
final class Poller {
    let index: Int
    let state: RunState
    let spec: RunSpec
    let layout: Layout
    let table: DestinationTable
    /// Completion is seen through slot releases at the sender (multi-process): no local deliveries.
    let byReleases: Bool
    /// Multi-process servers count stop messages.
    let countStops: Bool
    let publishLive: Bool
    var log: DeliveryLogWriter?
    /// Set on the poller that hosts the crash target (it crashes it).
    var crashPlan: CrashPlan?
    /// `--crash-leader-after`: the process to be crashed, set on every poller (its deliveries are
    /// tracked, and group 0's deliveries are watched for the failover).
    var crashTarget: NodeID?
    /// Multi-process runs: the target is in another OS process; this one learns of the crash when
    /// its connection to the target dies for good (see ``watchTarget()``).
    var crashIsRemote = false
    /// Multi-process senders: messages each local sender sends in the measured phase (--messages is
    /// then per sender), instead of splitting --messages over all senders.
    var quotaPerSender: Int?

    private(set) var cluster: LocalCluster?
    private(set) var nodes: [ProcessNode] = []
    private(set) var senders: [SenderState] = []
    private var slotOfNode: [Int32] = []
    private var senderOfNode: [Int32] = []
    private var isDesignated: [Bool] = []
    /// Local nodes no longer pumped: crashed on purpose (`crashed`), or failed while lingering.
    private var stopped: [Bool] = []
    private var crashed: [Bool] = []
    private var remoteCrashSeen = false
    /// Per local node: consecutive rounds whose posts hit a dead connection.
    private var deadPosts: [Int] = []
    /// Posts that hit a dead connection, over the run (see ``run()``).
    private(set) var connectionErrors = 0
    private var backoff: IdleBackoff
    private let payload: PayloadBuffer
    private let stopPayload: PayloadBuffer

    // Per local node: deliveries, and snapshots of writes and deliveries around the measured phase.
    private(set) var delivered: [Int] = []
    private(set) var writesAtStart: [UInt64] = []
    private(set) var writesAtEnd: [UInt64] = []
    private(set) var deliveredAtStart: [Int] = []
    private(set) var deliveredAtEnd: [Int] = []
    /// Seconds to register and connect this poller's nodes.
    private(set) var setupSeconds: Double = 0
    private(set) var firstDeliveryAt: UInt64 = 0
    private(set) var lastDeliveryAt: UInt64 = 0

    /// Latency (ns) at the designated process, and until every destination delivered.
    var latency: Histogram<UInt64>
    var completion: Histogram<UInt64>
    private var window: Histogram<UInt64>
    private var recording = false
    private var measured = false

    static func histogram() -> Histogram<UInt64> {
        Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000_000, numberOfSignificantValueDigits: .three)
    }

    init(index: Int, state: RunState, spec: RunSpec, layout: Layout, table: DestinationTable,
         byReleases: Bool = false, countStops: Bool = false, publishLive: Bool) {
        self.index = index
        self.state = state
        self.spec = spec
        self.layout = layout
        self.table = table
        self.byReleases = byReleases
        self.countStops = countStops
        self.publishLive = publishLive
        backoff = IdleBackoff(enabled: !spec.busyPoll, napAfter: UInt64(spec.napAfterMicros) * 1000)
        payload = PayloadBuffer(size: spec.payload)
        stopPayload = PayloadBuffer(size: 8)
        stopPayload.bytes.storeBytes(of: StopMessage.magic.littleEndian, as: UInt64.self)
        latency = Self.histogram()
        completion = Self.histogram()
        window = Self.histogram()
    }

    /// Builds this poller's nodes and connects them to the whole cluster (peers on other pollers or
    /// in other OS processes come up concurrently; connecting retries until `connectTimeout`).
    func setUp(local: [NodeID], connectTimeout: Duration,
               makeEndpoint: (NodeID) throws(FabricError) -> any FabricEndpoint) throws {
        let t0 = nowNanos()
        let cluster = try LocalCluster(layout: layout, local: local, connectTimeout: connectTimeout, makeEndpoint: makeEndpoint)
        setupSeconds = Double(nowNanos() - t0) / 1e9
        self.cluster = cluster
        nodes = cluster.nodes
        let maxID = Int((layout.servers + layout.config.senders).map(\.rawValue).max() ?? 0)
        slotOfNode = Array(repeating: -1, count: maxID + 1)
        senderOfNode = Array(repeating: -1, count: maxID + 1)
        for (i, id) in layout.config.senders.enumerated() { senderOfNode[Int(id.rawValue)] = Int32(i) }
        let perSender = spec.messages.map { ($0 + layout.config.senders.count - 1) / layout.config.senders.count }
        for (i, node) in nodes.enumerated() {
            slotOfNode[Int(node.id.rawValue)] = Int32(i)
            if let g = layout.groupOf[node.id] {
                isDesignated.append(LatencyPoint.designated(of: g, in: layout) == node.id)
            } else {
                isDesignated.append(false)
                let s = layout.senderIndexOf[node.id]!
                var quota = Int.max
                if let q = quotaPerSender {
                    quota = q
                } else if let total = spec.messages, let share = perSender {
                    quota = max(0, min(share, total - s * share))
                }
                let sender = SenderState(node: node, index: s, seed: spec.seed, quota: quota, capacity: state.capacity)
                var g = 0
                while g < layout.groupCount {
                    let n = min(layout.maxDestinations, layout.groupCount - g)
                    sender.stopGroups.append((g..<(g + n)).map { RamCastProtocol.GroupID(UInt8($0)) })
                    g += n
                }
                senders.append(sender)
            }
        }
        delivered = Array(repeating: 0, count: nodes.count)
        writesAtStart = Array(repeating: 0, count: nodes.count)
        writesAtEnd = Array(repeating: 0, count: nodes.count)
        deliveredAtStart = Array(repeating: 0, count: nodes.count)
        deliveredAtEnd = Array(repeating: 0, count: nodes.count)
        crashed = Array(repeating: false, count: nodes.count)
        stopped = Array(repeating: false, count: nodes.count)
        deadPosts = Array(repeating: 0, count: nodes.count)
    }

    func close() {
        cluster?.close()
        log?.close()
    }

    // MARK: - the loop

    func run() throws {
        var phase = Phase.setup
        var rounds = 0
        var nextLive = nowNanos() + 500_000_000
        while true {
            let p = state.currentPhase
            if p != phase {
                observe(p)
                phase = p
                if p == .exit { break }
            }
            var progress = false
            switch phase {
            case .warmup, .measure: progress = try sendLoad(phase)
            case .stopping: progress = try sendStops()
            default: break
            }
            for (i, node) in nodes.enumerated() where !stopped[i] {
                do {
                    progress = try node.pump { d in self.onDelivery(d) } || progress
                    deadPosts[i] = 0
                } catch where error.isDeadConnection && deadPosts[i] < 10_000 {
                    // A post on a connection that died after this round's events were taken (over
                    // RDMA, a permission change during a leader change takes over the endpoint's
                    // pending disconnects): the writes are lost as if in flight, the next round's
                    // events report the disconnect, and ProcessNode reconnects or gives the peer up.
                    // RamCastRuntime's polling loop goes on likewise. Only endless repeats are fatal.
                    deadPosts[i] += 1
                    connectionErrors += 1
                    progress = true
                } catch {
                    // Multi-process servers linger after the last stop message while peers exit:
                    // a connection to a process that is gone may fail then, harmlessly.
                    guard state.lingering.load(ordering: .relaxed) else { throw error }
                    stopped[i] = true
                }
            }
            if byReleases { progress = checkReleases() || progress }
            if crashPlan != nil { crashIfDue() }
            // Not while lingering: peers that finished close their endpoints then.
            if crashIsRemote, !remoteCrashSeen, !state.lingering.load(ordering: .relaxed) { watchTarget() }
            if progress { backoff.progress() } else { backoff.idle() }
            rounds &+= 1
            if publishLive, rounds & 1023 == 0 {
                let now = nowNanos()
                if now >= nextLive {
                    nextLive = now + 500_000_000
                    if window.totalCount > 0 {
                        state.publishLive(poller: index, p50: window.valueAtPercentile(50), p99: window.valueAtPercentile(99),
                                          samples: window.totalCount)
                        window.reset()
                    }
                }
            }
        }
    }

    private func observe(_ p: Phase) {
        switch p {
        case .measure:
            for (i, n) in nodes.enumerated() {
                writesAtStart[i] = n.driver.writesPosted
                deliveredAtStart[i] = delivered[i]
            }
            for s in senders { s.sentAtStart = s.sent }
            recording = true
            measured = true
        case .drain, .stopping, .exit:
            if recording {
                for (i, n) in nodes.enumerated() {
                    writesAtEnd[i] = n.driver.writesPosted
                    deliveredAtEnd[i] = delivered[i]
                }
                for s in senders { s.sentAtEnd = s.sent }
                recording = false
            }
        default: break
        }
    }

    /// Multicasts while each sender has fewer than `outstanding` messages in flight (and the rings
    /// have room: `multicast` returns nil under back-pressure).
    private func sendLoad(_ phase: Phase) throws -> Bool {
        var progress = false
        let window = min(spec.outstanding, state.capacity)
        for s in senders {
            if phase == .measure, s.quota != Int.max, s.sent - s.sentAtStart >= s.quota { continue }
            while s.sent - state.completed(s.index) < window {
                let set = table.pick(s.rng.next())
                let start = nowNanos()
                guard let id = try s.engine.multicast(payload.stamp(UInt64(s.sent + 1)), to: table.buffer(set)) else { break }
                track(s, id: id, set: set, at: start, stop: false)
                log?.multicast(id, destinations: table.arrays[set])
                progress = true
                if phase == .measure, s.quota != Int.max, s.sent - s.sentAtStart >= s.quota { break }
            }
        }
        return progress
    }

    @inline(__always)
    private func track(_ s: SenderState, id: MessageID, set: Int, at start: UInt64, stop: Bool) {
        var deliveries = 0
        var toCrashGroup = false
        for g in table.buffer(set) {
            deliveries += layout.config.groups[Int(g.rawValue)].count
            if Int(g.rawValue) == state.crashGroup { toCrashGroup = true }
        }
        state.sending(sender: s.index, sequence: id.sequence, at: start, deliveries: deliveries, toCrashGroup: toCrashGroup)
        s.sent += 1
        state.setSent(s.index, s.sent)
        if toCrashGroup, state.published(sender: s.index, sequence: id.sequence), recording {
            completion.record(nowNanos() &- start)
        }
        if byReleases {
            let pos = Int(id.sequence) & state.mask
            s.flags[pos] = SenderState.live | (stop ? SenderState.stop : 0)
            let first = table.buffer(set)[0]
            s.designated[pos] = LatencyPoint.designated(of: first, in: layout)
        }
    }

    /// Multi-process senders, once their load is done: one stop message to every group.
    private func sendStops() throws -> Bool {
        var progress = false
        for s in senders where s.stopsSent < s.stopGroups.count {
            while s.stopsSent < s.stopGroups.count {
                let groups = s.stopGroups[s.stopsSent]
                let start = nowNanos()
                let id = try groups.withUnsafeBufferPointer { try s.engine.multicast(stopPayload.raw, to: $0) }
                guard let id else { break }
                let deliveries = groups.reduce(0) { $0 + layout.config.groups[Int($1.rawValue)].count }
                state.sending(sender: s.index, sequence: id.sequence, at: start, deliveries: deliveries)
                s.sent += 1
                if byReleases {
                    let pos = Int(id.sequence) & state.mask
                    s.flags[pos] = SenderState.live | SenderState.stop
                    s.designated[pos] = LatencyPoint.designated(of: groups[0], in: layout)
                }
                log?.multicast(id, destinations: groups)
                s.stopsSent += 1
                s.stopsOutstanding += 1
                progress = true
            }
        }
        return progress
    }

    /// Multi-process senders: a message is delivered at a process once that process released its
    /// slot (the release is written back to the sender right after delivery).
    private func checkReleases() -> Bool {
        var progress = false
        for s in senders {
            var seq = s.oldest + 1
            let last = UInt64(s.sent)
            while seq <= last {
                let pos = Int(seq) & state.mask
                var f = s.flags[pos]
                if f & SenderState.done == 0 {
                    let id = MessageID(sender: s.node.id, sequence: seq)
                    if f & SenderState.seen == 0, s.engine.isDelivered(id, at: s.designated[pos]) {
                        f |= SenderState.seen
                        if recording, f & SenderState.stop == 0 {
                            let t = nowNanos() &- state.sendTime(sender: s.index, sequence: seq)
                            latency.record(t)
                            if publishLive { window.record(t) }
                        }
                        progress = true
                    }
                    if s.engine.isDeliveredEverywhere(id) {
                        f |= SenderState.done
                        if f & SenderState.stop != 0 {
                            s.stopsOutstanding -= 1
                            if s.stopsOutstanding == 0, s.stopsSent == s.stopGroups.count {
                                state.stopsDone.wrappingIncrement(ordering: .releasing)
                            }
                        } else {
                            if recording { completion.record(nowNanos() &- state.sendTime(sender: s.index, sequence: seq)) }
                            state.complete(sender: s.index)
                        }
                        progress = true
                    }
                    s.flags[pos] = f
                }
                seq += 1
            }
            while s.oldest < last, s.flags[Int(s.oldest + 1) & state.mask] & SenderState.done != 0 {
                s.flags[Int(s.oldest + 1) & state.mask] = 0
                s.oldest += 1
            }
        }
        return progress
    }

    @inline(__always)
    private func onDelivery(_ d: borrowing Delivery) {
        let li = Int(slotOfNode[Int(d.process.rawValue)])
        delivered[li] &+= 1
        log?.delivered(d)
        let now = nowNanos()
        if firstDeliveryAt == 0 { firstDeliveryAt = now }
        lastDeliveryAt = now
        if let target = crashTarget, d.group.rawValue == 0 {
            if d.process == target {
                let s = Int(senderOfNode[Int(d.id.sender.rawValue)])
                if state.crashGroup != nil, s >= 0 { state.targetDelivered(sender: s, sequence: d.id.sequence) }
            } else if state.targetCrashed.load(ordering: .relaxed), state.failoverAt.load(ordering: .relaxed) == 0,
                      let engine = nodes[li].server, engine.isLeader,
                      engine.ballots[0].rawValue > UInt32(layout.members(of: GroupID(0)).count) {
                // Failover: from the crash to the first delivery at group 0's new leader once it leads
                // (ballot n is the first leader's: member b mod n leads ballot b).
                state.failedOver(at: now)
            }
        }
        if countStops {
            if StopMessage.matches(d.payload) {
                state.stopsDelivered.wrappingIncrement(ordering: .releasing)
            } else {
                state.deliveredTotal.wrappingIncrement(ordering: .relaxed)
            }
            return
        }
        let s = Int(senderOfNode[Int(d.id.sender.rawValue)])
        guard s >= 0 else { return }
        let seq = d.id.sequence
        if isDesignated[li], recording {
            var first: RamCastProtocol.GroupID?
            d.forEachDestination { g in if first == nil { first = g } }
            if first == d.group {
                let t = now &- state.sendTime(sender: s, sequence: seq)
                latency.record(t)
                if publishLive { window.record(t) }
            }
        }
        if state.delivered(sender: s, sequence: seq), recording {
            completion.record(now &- state.sendTime(sender: s, sequence: seq))
        }
    }

    // MARK: - crash

    /// Crashes the target once it delivered `after` messages; messages it had not delivered are then
    /// no longer required of it (``RunState/crashTarget(at:)``).
    private func crashIfDue() {
        guard let plan = crashPlan, let li = nodes.firstIndex(where: { $0.id == plan.target }) else { return }
        guard !stopped[li], delivered[li] >= plan.after else { return }
        plan.crash(nodes[li])
        crashed[li] = true
        stopped[li] = true
        crashPlan = nil
        let now = nowNanos()
        // Messages that only waited for the target are complete as of now.
        for sentAt in state.crashTarget(at: now) where recording { completion.record(now &- sentAt) }
    }

    /// Multi-process runs: the crash target (another OS process) is down once the connection of a
    /// local node to it is gone after the pump (``ProcessNode`` tries to reconnect at once, and
    /// gives the peer up when that fails).
    private func watchTarget() {
        guard let target = crashTarget else { return }
        for node in nodes where node.id != target {
            if let p = node.driver.peerIndex(of: target), node.driver.connectionOfPeer[p] == nil {
                remoteCrashSeen = true
                state.observedCrash(at: nowNanos())
                return
            }
        }
    }

    // MARK: - results

    /// Per local node: (id, writes, messages) over the measured phase; messages are those it sent
    /// (senders) or delivered (group members).
    func measuredCounts() -> [(node: ProcessNode, writes: UInt64, messages: Int)] {
        nodes.enumerated().map { i, n in
            let writes = measured ? writesAtEnd[i] &- writesAtStart[i] : n.driver.writesPosted
            let messages: Int
            if let s = senders.first(where: { $0.node === n }) {
                messages = measured ? s.sentAtEnd - s.sentAtStart : s.sent
            } else {
                messages = measured ? deliveredAtEnd[i] - deliveredAtStart[i] : delivered[i]
            }
            return (n, writes, messages)
        }
    }

    /// Local nodes crashed by the plan.
    var crashedNodes: [NodeID] { nodes.enumerated().filter { crashed[$0.offset] }.map(\.element.id) }
    func isCrashed(_ node: ProcessNode) -> Bool { nodes.firstIndex { $0 === node }.map { crashed[$0] } ?? false }
}

