import RamCastFabric

/// The RamCast state machine of one group member, with no I/O of its own.
///
/// Memory observations go in: ``poll(_:)`` reads this process's own registered memory (message
/// bodies in the rings, leader writes in the logs, acks in the slots), which remote writes change
/// behind its back. Writes to post come out: the engine appends them to its ``outbox``, and the
/// driver posts them and reports completions with ``completed(peer:id:status:)``. Given the same
/// memory contents and completions, it does the same thing: tests step it deterministically.
///
/// The steps of the protocol, each in its own file:
/// - Step 1 (`Step1Receive.swift`): take message bodies from the rings, in slot order per sender.
/// - Step 2 (`Step2Propose.swift`): a leader timestamps each new message and writes
///   `(seq, ballot, ts)` to its followers' log and to the other destination leaders.
/// - Step 3 (`Step3Logs.swift`): followers apply their leader's log strictly in `seq` order (§10.1)
///   and ack to every destination process; leaders forward other groups' timestamps to their
///   followers.
/// - Ordering and delivery (`Ordering.swift`): a message is ordered once every destination group's
///   timestamp is present and acked by f+1 of its members (§10.2), and delivered in
///   `(final ts, message id)` order once nothing pending can end below it and the group's clock
///   has provably passed it (the watermark, which keeps that true across leader changes).
/// - Slot release (`Release.swift`): after delivery the slot is cleared and handed back to the sender.
///
/// The hot path allocates nothing: all tables are sized from the ``Layout`` at init. Those it touches
/// per message are ``FixedTable``s and ``FixedList``s in `let`s, and the scalars and collections it
/// touches that the optimizer would otherwise check for exclusivity on each access (public ones, and
/// ones accessed across a call) live in ``FixedCell``s, exposed under their usual names.
public final class ServerEngine {
    public let layout: Layout
    public let me: NodeID
    public let group: GroupID
    public let member: Int
    public let serverIndex: Int
    public let outbox: Outbox
    let ring: UnsafeMutableRawPointer
    let log: UnsafeMutableRawPointer
    /// Registered memory for phase-1B images: one mailbox-sized buffer per group.
    let recoveryScratch: UnsafeMutableRawPointer

    /// The driver's clock, in nanoseconds: heartbeats and failure detection read it. Set before each
    /// `poll`; the simulation sets virtual time, which keeps runs reproducible.
    public var now: UInt64 { unsafeAddress { nowCell.readAddress } unsafeMutableAddress { nowCell.address } }
    let nowCell = FixedCell<UInt64>(0)

    // Cluster view.
    /// Per group: the ballot this process accepts writes under, and the member index of its leader.
    let groupBallots: FixedTable<Ballot>
    let groupLeaders: FixedTable<Int>
    /// Per group: the ballot this process accepts writes under (a copy).
    public var ballots: [Ballot] { groupBallots.array }
    /// Per group: the member index of its leader (a copy).
    public var leaders: [Int] { groupLeaders.array }
    /// Skeen clock (the counter part of timestamps).
    public internal(set) var clock: UInt64 { unsafeAddress { clockCell.readAddress } unsafeMutableAddress { clockCell.address } }
    let clockCell = FixedCell<UInt64>(0)
    /// Whether this process acts as its group's leader: the current ballot's leader, done
    /// recovering, and not deposed (a write of it was refused by a revoked permission).
    public var isLeader: Bool {
        groupLeaders[Int(group.rawValue)] == member && (recovery?.finished ?? true) && !deposed && !rejoining
    }
    /// The recovery this process runs as its group's candidate, until it finishes: its ballot, and
    /// whether it gave up waiting for bodies it cannot get and stopped heartbeating, so that the
    /// next member takes over (`Recovery.swift`). Nil while it leads or follows.
    public var candidacy: (ballot: Ballot, abdicated: Bool)? {
        guard let r = recovery, !r.finished else { return nil }
        return (r.ballot, r.abdicated)
    }

    // Rejoining after a restart (Rejoin.swift).
    /// This process restarted and has not yet processed a recovery section of its group: it
    /// delivers nothing, counts in no quorum, and never leads.
    public internal(set) var rejoining = false
    /// This incarnation started empty after a crash (it stays so after it rejoined).
    public let isRestartedIncarnation: Bool
    /// After rejoining: the last message its group's leader had delivered before the section that
    /// took this process in (nil: none). This process delivers the group's order after it; the
    /// application's state up to it comes from a peer.
    public internal(set) var joinedAfter: MessageID?
    /// Per sender: its resume cell has not been read yet (rejoining only).
    let awaitingResume: FixedTable<Bool>
    var resumesOutstanding = 0
    /// Per table entry: the id of a message the leader said it had delivered before this process
    /// rejoined, whose body has not arrived (0: none). It is released on arrival, not delivered.
    let dropIDs: FixedTable<UInt64>
    var dropCount = 0
    /// A 1B to its own group's candidate, held back until every sender resumed.
    var owed1B: Ballot?
    /// The ballot under which this process last asked its leader to be taken in.
    var rejoinRequested = Ballot.none
    var rejoinRequestedAt: UInt64 = 0
    /// The last message this process delivered (a leader reports it with its recovery marker).
    var lastDelivered: MessageID { unsafeAddress { lastDeliveredCell.readAddress } unsafeMutableAddress { lastDeliveredCell.address } }
    let lastDeliveredCell = FixedCell<MessageID>(MessageID(rawValue: 0))

    // Step 1: per sender, the next slot counter expected in its ring here.
    let expected: FixedTable<Int>
    // Message table, indexed by `sender * slots + slot`.
    let present: FixedTable<Bool>
    let ids: FixedTable<MessageID>
    let dstCount: FixedTable<UInt8>
    let dsts: FixedTable<GroupID>           // [index * maxDst + j]
    let slotNumbers: FixedTable<UInt16>     // [index * maxDst + j]
    let timestamps: FixedTable<Timestamp>   // [index * maxDst + j]
    let tsBallots: FixedTable<Ballot>       // [index * maxDst + j]
    let fastPathAcks: FixedTable<UInt8>
    /// Per (table entry, member of this group): the outbox counter of the body write this process
    /// put ahead of its fast-path timestamp write to that member (0: none unretired). The slot is
    /// the write's source: it is not released before the write is retired (`Release.swift`).
    let fastPathBodyWrites: FixedTable<UInt64>
    let ordered: FixedTable<Bool>
    let pendingList: FixedList<Int32>       // present, not yet ordered
    let heap: OrderHeap

    // Step 2 (leader): the last log position written to its followers, and to each other group's
    // leader (64 bits, never wrapping: see ``Layout/logOffset(group:seq:)``).
    var followerSeq: UInt64 = 0
    let leaderSeq: FixedTable<UInt64>
    // Step 3: per group, the next log position expected in log[g].
    let logNext: FixedTable<UInt64>

    // The delivery watermark (Ordering.swift), all about this process's own group and the ballot it
    // accepts writes under, all clock counters.
    /// The largest value processed from the own group's stream in this ballot (proposals, forwards,
    /// the recovery marker): the leader's later values exceed it.
    var streamMax: UInt64 = 0
    /// The largest own-group proposal processed in this ballot.
    var ownProposalMax: UInt64 = 0
    /// The highest own-group ballot whose recovery section this process processed (or, as its
    /// leader, wrote), and the clock of that section's marker.
    var recoveredBallot = Ballot.none
    var recoveryTop: UInt64 = 0
    /// The largest own-group value proposed after the recovery section and decided (f+1 votes) in
    /// this ballot, as seen here.
    var decidedClock: UInt64 = 0
    /// The clock last published in this process's clock cells (follower), in this ballot.
    var publishedClock: UInt64 = 0

    /// Delivered here; the message's metadata (id, destinations, timestamps) stays until its slot is
    /// reused, so a recovering leader can still learn its timestamps.
    let delivered: FixedTable<Bool>
    /// Per sender, the sequence number of the last body taken: a body whose sequence is not larger
    /// (a late relay of a message already handled) is ignored.
    let lastSequence: FixedTable<UInt64>

    // Failure detection and recovery (FailureDetector.swift, Recovery.swift).
    var heartbeatSeen: UInt64 = 0
    var heartbeatChangedAt: UInt64 = 0
    var heartbeatCounter: UInt32 = 0
    var lastHeartbeatSent: UInt64 = 0
    var expectedBallot = Ballot.none
    /// Processes known to be gone: their connection died and could not be re-established.
    public internal(set) var crashed: Set<NodeID> { unsafeAddress { crashedCell.readAddress } unsafeMutableAddress { crashedCell.address } }
    let crashedCell = FixedCell<Set<NodeID>>([])
    /// Per group, the highest phase-1A ballot accepted.
    let accepted1A: FixedTable<UInt32>
    /// Per group, the last lower 1A ballot answered with the accepted one (`Recovery.swift`).
    let lowerAnswered: FixedTable<UInt32>
    /// A write of this process as leader was refused (its permission revoked by a newer ballot):
    /// it stopped leading, and follows once the newer 1A is in its memory.
    public internal(set) var deposed = false
    /// This group's ballots reached the end of their 32 bits (more than 13 leader changes per second
    /// for 10 years): this process starts no further ballot. A driver reports it as a fault.
    public internal(set) var ballotsExhausted = false
    var recovery: Recovery? { unsafeAddress { recoveryCell.readAddress } unsafeMutableAddress { recoveryCell.address } }
    let recoveryCell = FixedCell<Recovery?>(nil)
    /// Per member of this group (leader side): whether it is ready for this leader's stream.
    let followerReady: FixedTable<Bool>
    /// Per group (leader side): whether that group's leader is ready for this leader's writes.
    let leaderReady: FixedTable<Bool>
    /// Values accepted for messages (per table index) learned from the log or from a superseded
    /// recovery, kept across log resets and reported in every later 1B.
    var acceptedElsewhere: [Int: (id: MessageID, ts: Timestamp, tsBallot: Ballot)] = [:]
    /// Senders known to have crashed (by sender index), and the relay bookkeeping for them
    /// (`CrashedSenderRelay.swift`): per table entry, the request word this process last sent about
    /// that slot; per (sender, requesting server, slot), the sequence number of the body last relayed.
    /// Iterated in sender order, never as a `Set`: a run must replay identically from its seed.
    var crashedSenders: [Int] { unsafeAddress { crashedSendersCell.readAddress } unsafeMutableAddress { crashedSendersCell.address } }
    let crashedSendersCell = FixedCell<[Int]>([])
    let senderCrashed: FixedTable<Bool>
    let relayRequested: FixedTable<UInt64>
    let relayHandled: FixedTable<UInt64>
    var lastRelayPass: UInt64 = 0
    var relayPassDue = false
    /// Relays of a slot's body still in flight, as (outbox peer, enqueue counter): the slot is not
    /// cleared and released before they are retired, since the NIC reads their source until then.
    var relaysInFlight: [Int: [(peer: Int, counter: UInt64)]] { unsafeAddress { relaysInFlightCell.readAddress } unsafeMutableAddress { relaysInFlightCell.address } }
    let relaysInFlightCell = FixedCell<[Int: [(peer: Int, counter: UInt64)]]>([:])
    /// Per relay staging buffer (slot number): the message staged there (0: none), and its relays
    /// not yet retired, which keep it from being overwritten (CrashedSenderRelay.swift).
    let relayStaged: FixedTable<UInt64>
    var relayStagingInFlight: [Int: [(peer: Int, counter: UInt64)]] = [:]
    /// Restarted process, per table entry of a crashed sender: the message a leader's entry named
    /// there whose body it asks for (0: none yet).
    let relayWanted: FixedTable<UInt64>
    /// Delivered messages whose slot release waits for relays.
    var deferredReleases: [Int] { unsafeAddress { deferredReleasesCell.readAddress } unsafeMutableAddress { deferredReleasesCell.address } }
    let deferredReleasesCell = FixedCell<[Int]>([])
    /// Write-permission changes on the log region that the driver must apply, then report with
    /// ``permissionsApplied(failed:)``: a 1A is answered only after they succeeded (`Recovery.swift`).
    public var permissionRequests: [PermissionRequest] { unsafeAddress { permissionRequestsCell.readAddress } unsafeMutableAddress { permissionRequestsCell.address } }
    let permissionRequestsCell = FixedCell<[PermissionRequest]>([])
    /// Per group: the 1A ballot whose permission changes were requested, and the one whose changes
    /// the driver reported done. A 1A is answered only when the two match it.
    let permissionsRequested: FixedTable<UInt32>
    let permissionsDone: FixedTable<UInt32>
    /// Per group: the candidate granted write for a 1A not answered yet (`permissionsRequested`),
    /// revoked again if a higher 1A of another candidate comes first.
    var pendingGrantee: [NodeID?]
    /// 1As left unanswered because a permission change failed: the old leader may still write this
    /// process's log, so a 1B could miss a value it decides (`Recovery.swift`). Most recent last.
    public internal(set) var permissionFaults: [(group: GroupID, ballot: Ballot, reason: String)] = []

    // Slot release: per sender, the contiguous count of released slots, and slots freed out of order.
    let released: FixedTable<Int>
    let freed: FixedTable<Bool>
    let releasePending: FixedTable<Bool>

    public internal(set) var stats: Stats { unsafeAddress { statsCell.readAddress } unsafeMutableAddress { statsCell.address } }
    let statsCell = FixedCell<Stats>(Stats())
    #if DEBUG
    /// The spec §10 fixes this engine applies: all of them. Turning one off exists only so that the
    /// regression tests can show the failure it prevents; a release build has no such switch, and
    /// none of the unfixed paths.
    var fixes: SafetyFixes = .all
    /// Without the §10.1 fix: log entries skipped because their body was missing, applied later.
    var deferredEntries: [LogEntry] = []
    #endif
    /// Sees every leader write, ack and applied log entry, for checkers. Nil on the hot path.
    public var tracer: (any EngineTracer)? { unsafeAddress { tracerCell.readAddress } unsafeMutableAddress { tracerCell.address } }
    let tracerCell = FixedCell<(any EngineTracer)?>(nil)

    public struct Stats: Sendable, Hashable {
        public var bodies = 0
        public var proposals = 0
        public var forwards = 0
        public var acks = 0
        public var delivered = 0
        public var releases = 0
        public var fastPathOrders = 0
        /// Clock-cell publications of a follower (a delivery waited on the watermark, `Ordering.swift`).
        public var clockPublications = 0
        /// Bodies of crashed senders' messages relayed to the other destinations (Task 10).
        public var relays = 0
        /// Writes of this process refused by a revoked permission (it was deposed).
        public var refusedWrites = 0
        /// Messages released without delivery after a restart: delivered by the group before this
        /// process rejoined (`Rejoin.swift`).
        public var settled = 0
        /// Body writes a leader put ahead of its fast-path timestamp writes (`Step2Propose.swift`).
        public var fastPathBodies = 0
    }

    /// - Parameters:
    ///   - ring, log: this process's ring and log regions (``Layout/ringRegionSize``,
    ///     ``Layout/logRegionSize`` bytes).
    ///   - outbox: where the engine's writes go; one peer per server, then one per sender.
    ///   - rejoining: this process restarted with empty memory and must be taken back in by its
    ///     group (`Rejoin.swift`) before it delivers.
    public init(layout: Layout, me: NodeID, ring: UnsafeMutableRawPointer, log: UnsafeMutableRawPointer,
                recoveryScratch: UnsafeMutableRawPointer, outbox: Outbox, rejoining: Bool = false) {
        guard let g = layout.groupOf[me], let m = layout.memberIndexOf[me], let s = layout.serverIndexOf[me] else {
            preconditionFailure("\(me) is not a group member")
        }
        self.layout = layout
        self.me = me
        group = g
        member = m
        serverIndex = s
        self.outbox = outbox
        self.ring = ring
        self.log = log
        self.recoveryScratch = recoveryScratch
        let groups = layout.groupCount
        groupBallots = FixedTable((0..<layout.groupCount).map { layout.initialBallot(GroupID(UInt8($0))) })
        groupLeaders = FixedTable(repeating: 0, count: groups)
        let senders = layout.config.senders.count
        let entries = senders * layout.slots
        let wide = entries * layout.maxDestinations
        expected = FixedTable(repeating: 0, count: senders)
        present = FixedTable(repeating: false, count: entries)
        ids = FixedTable(repeating: MessageID(rawValue: 0), count: entries)
        dstCount = FixedTable(repeating: 0, count: entries)
        dsts = FixedTable(repeating: GroupID(0), count: wide)
        slotNumbers = FixedTable(repeating: 0, count: wide)
        timestamps = FixedTable(repeating: .none, count: wide)
        tsBallots = FixedTable(repeating: .none, count: wide)
        fastPathAcks = FixedTable(repeating: 0, count: entries)
        ordered = FixedTable(repeating: false, count: entries)
        pendingList = FixedList(capacity: entries)
        heap = OrderHeap(capacity: entries)
        leaderSeq = FixedTable(repeating: layout.firstLogPosition &- 1, count: groups)
        logNext = FixedTable(repeating: layout.firstLogPosition, count: groups)
        followerSeq = layout.firstLogPosition &- 1
        clockCell.address.pointee = layout.config.counterStart.clock
        released = FixedTable(repeating: 0, count: senders)
        freed = FixedTable(repeating: false, count: entries)
        releasePending = FixedTable(repeating: false, count: senders)
        delivered = FixedTable(repeating: false, count: entries)
        senderCrashed = FixedTable(repeating: false, count: senders)
        relayRequested = FixedTable(repeating: 0, count: entries)
        relayStaged = FixedTable(repeating: 0, count: layout.slots)
        relayWanted = FixedTable(repeating: 0, count: entries)
        relayHandled = FixedTable(repeating: 0, count: entries * layout.servers.count)
        lastSequence = FixedTable(repeating: 0, count: senders)
        accepted1A = FixedTable(groupBallots.map(\.rawValue))
        lowerAnswered = FixedTable(repeating: 0, count: groups)
        permissionsRequested = FixedTable(repeating: 0, count: groups)
        permissionsDone = FixedTable(repeating: 0, count: groups)
        pendingGrantee = Array(repeating: nil, count: groups)
        fastPathBodyWrites = FixedTable(repeating: 0, count: entries * layout.groupSize(g))
        recoveredBallot = groupBallots[Int(g.rawValue)]   // the initial ballot has nothing to recover
        followerReady = FixedTable(repeating: true, count: layout.groupSize(g))
        leaderReady = FixedTable(repeating: true, count: groups)
        awaitingResume = FixedTable(repeating: rejoining, count: senders)
        dropIDs = FixedTable(repeating: 0, count: entries)
        isRestartedIncarnation = rejoining
        if rejoining {
            self.rejoining = true
            resumesOutstanding = senders
            recoveredBallot = .none
        }
    }

    deinit {
        nowCell.deallocate()
        clockCell.deallocate()
        crashedCell.deallocate()
        recoveryCell.deallocate()
        crashedSendersCell.deallocate()
        relaysInFlightCell.deallocate()
        deferredReleasesCell.deallocate()
        permissionRequestsCell.deallocate()
        statsCell.deallocate()
        tracerCell.deallocate()
        groupBallots.deallocate()
        groupLeaders.deallocate()
        expected.deallocate()
        present.deallocate()
        ids.deallocate()
        dstCount.deallocate()
        dsts.deallocate()
        slotNumbers.deallocate()
        timestamps.deallocate()
        tsBallots.deallocate()
        fastPathAcks.deallocate()
        ordered.deallocate()
        pendingList.deallocate()
        heap.deallocate()
        leaderSeq.deallocate()
        logNext.deallocate()
        released.deallocate()
        freed.deallocate()
        releasePending.deallocate()
        delivered.deallocate()
        senderCrashed.deallocate()
        relayRequested.deallocate()
        relayStaged.deallocate()
        relayWanted.deallocate()
        relayHandled.deallocate()
        lastSequence.deallocate()
        accepted1A.deallocate()
        lowerAnswered.deallocate()
        permissionsRequested.deallocate()
        permissionsDone.deallocate()
        fastPathBodyWrites.deallocate()
        followerReady.deallocate()
        leaderReady.deallocate()
        awaitingResume.deallocate()
        dropIDs.deallocate()
        lastDeliveredCell.deallocate()
    }

    /// Bytes of registered scratch memory the engine needs for recovery images.
    public static func recoveryScratchSize(_ layout: Layout) -> Int { layout.groupCount * layout.phase1bMailboxSize }

    /// Outbox peer index of a server (its dense server index) and of a sender. `peer(server:)` hashes
    /// the node id: the hot path uses ``Layout/servers(of:)`` and ``leaderPeer(of:)`` instead.
    @inline(__always) func peer(server node: NodeID) -> Int { layout.serverIndexOf[node]! }
    @inline(__always) func peer(sender index: Int) -> Int { layout.servers.count + index }
    @inline(__always) func leader(of g: GroupID) -> NodeID { layout.config.groups[Int(g.rawValue)][groupLeaders[Int(g.rawValue)]] }
    /// Outbox peer (server index) of group `g`'s current leader.
    @inline(__always) func leaderPeer(of g: GroupID) -> Int { layout.serverIndex(group: g, member: groupLeaders[Int(g.rawValue)]) }

    /// One round of work: take new bodies, apply log entries, detect ordered messages, deliver what
    /// can be delivered (calling `deliver` for each, in order; the payload is valid only during the
    /// call) and release their slots. Returns whether anything happened.
    @discardableResult
    public func poll(_ deliver: (borrowing Delivery) -> Void) -> Bool {
        var progress = process1A()
        if recovery != nil { progress = collect1B() || progress }
        progress = detectFailures() || progress
        progress = relayForCrashedSenders() || progress
        progress = receiveBodies() || progress
        progress = processLogs() || progress
        if !rejoining {
            progress = detectOrdered() || progress
            progress = echoClockCells() || progress
            progress = deliverReady(deliver) || progress
        }
        progress = sendReleases() || progress
        sendHeartbeats()
        _checkInvariants()
        return progress
    }

    /// The driver reports each completion of a write this engine queued for `peer`.
    public func completed(peer: Int, id: UInt64, status: CompletionStatus) {
        guard status == .success else {
            // A refused write: a leader's writes go to protected logs only, so it was revoked there
            // by a newer ballot. Stop acting as leader now; the 1A in this memory says who leads.
            if status == .remoteAccessError {
                stats.refusedWrites += 1
                if groupLeaders[Int(group.rawValue)] == member { deposed = true }
            }
            return
        }
        outbox.completed(peer)
        if id >> 56 == WriteTag.fastPath {
            // The id names the message, not just its slot: a completion polled after the slot took a
            // newer message must not count for it.
            let index = Int((id >> 32) & 0xFF_FFFF)
            if index < fastPathAcks.count, present[index], UInt32(truncatingIfNeeded: ids[index].sequence) == UInt32(truncatingIfNeeded: id),
               fastPathAcks[index] < 255 {
                fastPathAcks[index] += 1
            }
        }
    }

    #if DEBUG
    func _checkInvariants() {
        pendingList._checkInvariants()
        for i in pendingList { precondition(present[Int(i)] && !ordered[Int(i)], "pending list holds a settled message") }
        heap._checkInvariants()
        precondition(heap.count <= present.count)
    }
    #else
    @inline(__always) func _checkInvariants() {}
    #endif
}

/// A write-permission change on this process's log region, decided by accepting group `group`'s
/// 1A of `ballot`: the driver applies it, then reports with ``ServerEngine/permissionsApplied(failed:)``.
public struct PermissionRequest: Sendable, Hashable {
    /// Grant write (true) or revoke it (false).
    public var grant: Bool
    public var node: NodeID
    public var group: GroupID
    public var ballot: Ballot
}

/// The top byte of a write id says why the engine posted it.
enum WriteTag {
    static let fastPath: UInt64 = 1
    /// Table indices a fast-path id can name (24 bits); ``ProtocolConfig/validate()`` keeps
    /// senders × slotsPerRing within it, so no two messages' ids alias.
    static let tableIndexLimit = 1 << 24
    /// `tag:8 | table index:24 | low 32 bits of the message's sequence number`.
    static func fastPath(_ index: Int, _ message: MessageID) -> UInt64 {
        fastPath << 56 | UInt64(index & 0xFF_FFFF) << 32 | (message.sequence & 0xFFFF_FFFF)
    }
}

/// Observes the engine's protocol-internal events (spec §11's `propose`, `ack` and the follower's
/// processing of each sequence number), so a checker can verify invariants I3–I6.
public protocol EngineTracer: AnyObject {
    /// A leader wrote its own group's timestamp (step 2).
    func proposed(_ entry: LogEntry, by leader: NodeID)
    /// A leader forwarded another group's timestamp to its followers (step 3).
    func forwarded(_ entry: LogEntry, by leader: NodeID)
    /// A follower acked its group's timestamp (step 3).
    func acked(_ entry: LogEntry, by follower: NodeID)
    /// A follower acted on its leader's write `entry.seq`.
    func applied(_ entry: LogEntry, by follower: NodeID)
    /// `leader` became the leader of `group` under `ballot` (this process accepted its phase 1A).
    func leaderChanged(group: GroupID, ballot: Ballot, leader: NodeID, at process: NodeID)
    /// A new leader wrote the marker that ends its recovery section (a `.recovered` entry).
    func recoveryEnded(_ entry: LogEntry, by leader: NodeID)
    /// A restarted process was taken back in: it delivers its group's order after `cut` (nil: from
    /// the start).
    func rejoined(_ process: NodeID, after cut: MessageID?)
    /// A new leader's recovery section listed a message it had delivered (a `.settled` entry).
    func settled(_ entry: LogEntry, by leader: NodeID)
}

extension EngineTracer {
    public func recoveryEnded(_ entry: LogEntry, by leader: NodeID) {}
    public func rejoined(_ process: NodeID, after cut: MessageID?) {}
    public func settled(_ entry: LogEntry, by leader: NodeID) {}
}

#if DEBUG
/// The corrections of spec §10 that the paper's final pseudo-code lacks. A test hook (debug builds
/// only): `RegressionTests` turn one off to show the failure it prevents.
struct SafetyFixes: OptionSet {
    var rawValue: UInt8
    /// §10.1: a follower applies its leader's writes strictly in sequence order, waiting for a missing
    /// body instead of skipping ahead.
    static let sequenceOrder = SafetyFixes(rawValue: 1)
    /// §10.2: ORDERED requires every group's timestamp to be present, not just a quorum of acks.
    static let timestampsPresent = SafetyFixes(rawValue: 2)
    static let all: SafetyFixes = [.sequenceOrder, .timestampsPresent]
}
#endif

extension ServerEngine: CustomDebugStringConvertible {
    /// The engine's state in a few lines: for diagnosing a stalled simulation.
    public var debugDescription: String {
        var s = "\(me) (\(group), member \(member)\(isLeader ? ", leader" : "")) clock \(clock) ballots \(ballots.map(\.rawValue)) "
        s += "expected \(expected.array) released \(released.array) logNext \(logNext.array) followerSeq \(followerSeq) leaderSeq \(leaderSeq.array) streamMax \(streamMax) decidedClock \(decidedClock) recovered \(recoveredBallot)@\(recoveryTop)"
        s += " deposed \(deposed) recovery \(recovery.map(describe) ?? "none") crashed \(crashed.map(\.rawValue).sorted())"
        if rejoining {
            s += " rejoining: resumes outstanding \(resumesOutstanding) owed 1B \(owed1B.map { "\($0.rawValue)" } ?? "none") requested \(rejoinRequested.rawValue)"
            s += " wanted \((0..<relayWanted.count).filter { relayWanted[$0] != 0 }.map { "\($0):\(MessageID(rawValue: relayWanted[$0]))" })"
        }
        s += "\n"
        for h in 0..<layout.groupCount {
            let p = log + layout.logOffset(group: GroupID(UInt8(h)), seq: logNext[h])
            let w = RemoteMemory.loadAcquiring(p)
            if w != 0 { s += "  log[\(h)] at seq \(logNext[h]): seq \(UInt32(truncatingIfNeeded: w)) ballot \(w >> 32) msg \(MessageID(rawValue: p.load(fromByteOffset: 16, as: UInt64.self)))\n" }
        }
        for sender in 0..<expected.count where released[sender] < expected[sender] {
            // Slots taken but not released: each is pending, delivered with its release deferred, or stuck.
            let held = (released[sender]..<expected[sender]).map { counter -> String in
                let i = sender * layout.slots + counter % layout.slots
                return "\(counter):\(ids[i]) present \(present[i]) delivered \(delivered[i]) freed \(freed[i])"
            }
            s += "  unreleased from sender \(sender): \(held)\n"
        }
        let maxDst = layout.maxDestinations
        for raw in pendingList {
            let i = Int(raw)
            let ts = (0..<Int(dstCount[i])).map { "\(dsts[i * maxDst + $0].rawValue):\(timestamps[i * maxDst + $0])" }
            s += "  pending \(ids[i]) slot \(i) ts [\(ts.joined(separator: " "))] ballots \((0..<Int(dstCount[i])).map { tsBallots[i * maxDst + $0].rawValue })\n"
            let base = layout.slotOffset(sender: i / layout.slots, slot: i % layout.slots)
            for j in 0..<Int(dstCount[i]) {
                let words = layout.members(of: dsts[i * maxDst + j]).map { q in
                    let c = AckCell.load(ring + layout.ackOffset(slotOffset: base, server: layout.serverIndexOf[q]!))
                    return "\(c.ballot.rawValue):\(Timestamp(rawValue: c.value))\(c.isIntact ? "" : "?")"
                }
                s += "    acks[\(j)] \(words) want \(tsBallots[i * maxDst + j].rawValue):\(timestamps[i * maxDst + j])\n"
            }
        }
        s += "  ordered heap: \(heap.count)\(heap.top.map { " top \(Timestamp(rawValue: $0.ts))" } ?? "")"
        let cells = layout.servers(of: group).map { q -> String in
            let c = AckCell.load(ring + layout.clockCellOffset(server: q))
            return "\(c.ballot.rawValue):\(c.value)\(c.isIntact ? "" : "?")"
        }
        s += " clock cells \(cells)\n"
        for p in 0..<outbox.peers where outbox.pending(p) > 0 || outbox.enqueued(p) != outbox.retired(p) {
            s += "  outbox peer \(p): enqueued \(outbox.enqueued(p)) posted \(outbox.posted(p)) retired \(outbox.retired(p))\n"
        }
        return s
    }
    private func describe(_ r: Recovery) -> String {
        let unknown = r.bag.filter { !$0.value.ts.isNone && !holds($0.key, $0.value.id) }.map { index, v in
            "\(index):\(v.id)@\(v.ts)/b\(v.tsBallot.rawValue) held \(ids[index]) present \(present[index]) delivered \(delivered[index]) body reported \(r.bodyHeld[index] ?? false)"
        }
        var s = "ballot \(r.ballot.rawValue) finished \(r.finished) responded \(r.responded) bag \(r.bag.count) unknown \(unknown)"
        s += " maxRecovered \(r.maxRecovered.rawValue) awaiting \(r.awaiting) amnesiac \(r.amnesiac)"
        return s
    }
}
