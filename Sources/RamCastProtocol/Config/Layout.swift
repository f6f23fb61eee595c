import RamCastFabric

/// Where everything lives in each process's registered memory. Derived from a ``ProtocolConfig``,
/// identical at every process, so a writer computes remote offsets locally.
///
/// A group member registers:
/// - ``Layout/ringRegion`` (any peer may write): one ring of `slotsPerRing` slots per sender. A slot is
///   `[header | payload | crc32c]` written by the sender in one write, then the ack area at the end of
///   the slot, one 16-byte ``AckCell`` per group member (server index), written by that member.
/// - ``Layout/logRegion`` (only granted peers may write): one log per group. `log[g]` is written
///   only by g's current leader: at a follower of g it carries g's timestamps and the other groups'
///   timestamps the leader forwards, each with a dense sequence number (spec §10.1); at the leader of
///   another group h it carries g's timestamps for messages addressed to both.
/// - ``Layout/cellsRegion``: the outbox cells, sources of small writes.
/// A sender registers its ``Layout/senderRegion``: one slot-release cell per group member, then the
/// staging buffers its message bodies are written from.
public struct Layout: Sendable, Hashable {
    public static let ringRegion = RegionID(0)
    public static let logRegion = RegionID(1)
    public static let senderRegion = RegionID(0)
    /// Outbox cells, at group members and senders alike: sources of small non-inline writes.
    public static let cellsRegion = RegionID(2)

    public let config: ProtocolConfig
    public let groupCount: Int
    public let maxGroupSize: Int
    public let maxDestinations: Int
    public let slots: Int
    public let slotSize: Int
    /// `[msgID:u64 | length:u32 | dstCount:u8 | pad:3 | dst:u8 × maxDst | slot:u16 × maxDst]`, 8-aligned.
    public let headerSize: Int
    public let ackAreaSize: Int
    public let ackOffset: Int
    public let maxPayload: Int
    public let logCapacity: Int
    public static let logEntrySize = 48
    /// Bytes of each outbox cell (the source of one small write).
    public static let cellSize = 64

    /// Dense indices: member → (group, index in group), node → server index / sender index. These
    /// hash a NodeID: for setup and failure handling. The hot path uses ``serverIndex(group:member:)``
    /// and ``servers(of:)`` instead.
    public let groupOf: [NodeID: GroupID]
    public let memberIndexOf: [NodeID: Int]
    public let serverIndexOf: [NodeID: Int]
    public let senderIndexOf: [NodeID: Int]
    public let servers: [NodeID]
    /// Servers are numbered group by group: group g's members are the server indices
    /// `firstServer[g] ..< firstServer[g + 1]` (member m is `firstServer[g] + m`). `groupCount + 1` entries.
    public let firstServer: [Int]

    public init(_ config: ProtocolConfig) throws(ConfigError) {
        try config.validate()
        self.init(unchecked: config)
    }

    init(unchecked config: ProtocolConfig) {
        self.config = config
        groupCount = config.groups.count
        maxGroupSize = config.groups.map(\.count).max() ?? 1
        maxDestinations = config.maxDestinations
        slots = config.slotsPerRing
        slotSize = config.slotSize
        headerSize = (16 + 3 * maxDestinations + 7) & ~7
        ackAreaSize = config.groups.reduce(0) { $0 + $1.count } * AckCell.size
        ackOffset = slotSize - ackAreaSize
        maxPayload = ackOffset - headerSize - 4
        // Entries a follower has not consumed all concern messages that still hold a slot: at most
        // one proposal and maxDst − 1 forwards each in normal operation. A new leader's first burst
        // re-proposes every held message (pending or delivered, one per slot), forwards the pending
        // ones' other timestamps and proposes the rest afresh: at most (maxDst + 1) per slot. Twice
        // that leaves room for new messages arriving meanwhile.
        logCapacity = max(1, config.senders.count * slots * (maxDestinations + 1) * 2)
        var groupOf: [NodeID: GroupID] = [:], memberIndexOf: [NodeID: Int] = [:], serverIndexOf: [NodeID: Int] = [:]
        var servers: [NodeID] = [], firstServer: [Int] = []
        for (g, members) in config.groups.enumerated() {
            firstServer.append(servers.count)
            for (i, m) in members.enumerated() {
                groupOf[m] = GroupID(UInt8(g))
                memberIndexOf[m] = i
                serverIndexOf[m] = servers.count
                servers.append(m)
            }
        }
        self.groupOf = groupOf
        self.memberIndexOf = memberIndexOf
        self.serverIndexOf = serverIndexOf
        firstServer.append(servers.count)
        self.servers = servers
        self.firstServer = firstServer
        senderIndexOf = Dictionary(uniqueKeysWithValues: config.senders.enumerated().map { ($1, $0) })
    }

    // MARK: group-member regions

    public var ringRegionSize: Int { relayStagingOffset + slots * slotSize }
    /// A scratch word after the rings: the target of flush writes, read by nobody.
    public var flushOffset: Int { config.senders.count * slots * slotSize }

    // Control area (after the rings and the flush word): failure detection and leader recovery.
    // Any peer may write it; what it carries is checked (ballots, CRCs) before use.
    public var controlOffset: Int { flushOffset + 64 }
    /// Group g's heartbeat cell: `ballot << 32 | counter`, written by g's leader.
    @inlinable public func heartbeatOffset(_ g: GroupID) -> Int { controlOffset + Int(g.rawValue) * 8 }
    /// Group g's phase-1A cell: the ballot a would-be leader of g asks for.
    @inlinable public func phase1aOffset(_ g: GroupID) -> Int { controlOffset + groupCount * 8 + Int(g.rawValue) * 8 }
    /// One phase-1B entry: `[msgID:u64 | ts:u64 | tsBallot:u32 | sender:u16 | slot:u16 | flags:u8 | pad:7]`.
    public static let recoveryEntrySize = 32
    /// `[entries | crc32c:u32 | recovered:u32 | clock:u64 | ballot:u32 | count:u32]`: entries first,
    /// the 24-byte header last (same connection, so it lands last), the CRC covering entries, clock
    /// and `recovered` (the highest ballot whose recovery section the replier has, see `Recovery.swift`).
    public var phase1bMailboxSize: Int { config.senders.count * slots * Layout.recoveryEntrySize + 24 }
    /// The phase-1B mailbox, at a candidate, for the reply of `server`.
    @inlinable public func phase1bOffset(server: Int) -> Int { controlOffset + groupCount * 16 + server * phase1bMailboxSize }
    /// Relay requests for crashed senders (Task 10): at every group member, one cell per (sender,
    /// requesting member, slot), where the requester says which message it last took in that slot of
    /// the sender's ring: its sequence number + 1.
    public var relayRequestsOffset: Int { controlOffset + groupCount * 16 + servers.count * phase1bMailboxSize }
    @inlinable public func relayRequestOffset(sender: Int, server: Int, slot: Int) -> Int {
        relayRequestsOffset + ((sender * servers.count + server) * slots + slot) * 8
    }
    /// Clock cells: at every group member, one ``AckCell`` per server of its group, where that follower
    /// publishes (ballot, clock), "in this ballot, past its recovery, my clock reached this".
    /// f of them plus the leader bound every later leader's fresh timestamps (see `Ordering.swift`).
    public var clockCellsOffset: Int { relayRequestsOffset + config.senders.count * servers.count * slots * 8 }
    @inlinable public func clockCellOffset(server: Int) -> Int { clockCellsOffset + server * AckCell.size }
    /// Resume cells, at a member that restarted: one word per sender, `counter + 1`, the slot counter
    /// of this member's group from which that sender writes to it again (earlier messages of the
    /// sender it never gets, see `Rejoin.swift`).
    public var resumeCellsOffset: Int { clockCellsOffset + servers.count * AckCell.size }
    @inlinable public func resumeCellOffset(sender: Int) -> Int { resumeCellsOffset + sender * 8 }
    /// Rejoin requests, at a group's leader: one word per server, the ballot under which a restarted
    /// member asks the leader to start a ballot that takes it in.
    public var rejoinRequestsOffset: Int { resumeCellsOffset + config.senders.count * 8 }
    @inlinable public func rejoinRequestOffset(server: Int) -> Int { rejoinRequestsOffset + server * 8 }
    /// Relay staging, one body per slot number: a crashed sender's body is relayed from a copy here,
    /// never from its ring slot, which another relay may overwrite before the write is carried out
    /// (see `CrashedSenderRelay.swift`). Nobody writes here remotely.
    public var relayStagingOffset: Int { (rejoinRequestsOffset + servers.count * 8 + 63) & ~63 }
    @inlinable public func relayStagingOffset(slot: Int) -> Int { relayStagingOffset + slot * slotSize }
    public var logRegionSize: Int { groupCount * logCapacity * Layout.logEntrySize }

    @inlinable public func slotOffset(sender: Int, slot: Int) -> Int { (sender * slots + slot) * slotSize }

    /// Offset of the ack cell of group member `server` (its dense server index) in the slot at
    /// `slotOffset`. Each cell has one writer, so a late ack for a slot's previous message can only
    /// land *before* that writer's ack for the current one (same connection, in order) and never
    /// overwrites it; a cell indexed by destination position would be shared by members of different
    /// groups across messages.
    @inlinable public func ackOffset(slotOffset: Int, server: Int) -> Int {
        slotOffset + ackOffset + server * AckCell.size
    }

    /// Where the entry at log position `position` of group `group`'s log lies. Positions are 64 bits
    /// and never wrap (10M entries/s take 58,000 years): with 32-bit positions and a capacity that is
    /// not a power of two, `(seq − 1) % capacity` jumped at the wrap and reused a cell early, and a
    /// follower that far behind found its next entry overwritten and stalled for good.
    @inlinable public func logOffset(group: GroupID, seq position: UInt64) -> Int {
        (Int(group.rawValue) * logCapacity + Int((position &- 1) % UInt64(logCapacity))) * Layout.logEntrySize
    }

    /// The position of every stream's first entry (``CounterStart/logPosition`` + 1).
    @inlinable public var firstLogPosition: UInt64 { config.counterStart.logPosition &+ 1 }

    /// Group `g`'s first ballot: the first multiple of its size (so member 0 leads it) from
    /// ``CounterStart/ballot``.
    public func initialBallot(_ g: GroupID) -> Ballot {
        let n = UInt32(groupSize(g))
        return Ballot((max(config.counterStart.ballot, n) + n - 1) / n * n)
    }

    // MARK: sender regions

    /// Staging buffers per sender: enough for every slot of every group to be in flight.
    public var senderStagingCount: Int { slots * groupCount }
    public var releaseCellsSize: Int { (servers.count * 8 + 63) & ~63 }
    public var senderRegionSize: Int { releaseCellsSize + senderStagingCount * slotSize }
    @inlinable public func releaseCellOffset(server: Int) -> Int { server * 8 }
    @inlinable public func stagingOffset(_ buffer: Int) -> Int { releaseCellsSize + buffer * slotSize }

    public func members(of group: GroupID) -> [NodeID] { config.groups[Int(group.rawValue)] }
    public func f(of group: GroupID) -> Int { (groupSize(group) - 1) / 2 }
    /// Votes that decide a value, and 1B replies that a candidate needs, in `group`: f+1, the leader
    /// included (spec §10.3). Any two such sets of a group meet, so a value known to fewer members
    /// (a proposal that reached only f of them, say) never decides and is never missed by a later
    /// candidate once it has. The one place that says so: `QuorumTests` fail if it shrinks to f.
    public func quorum(of group: GroupID) -> Int { f(of: group) + 1 }
    /// The member index that leads `group` under ballot `b` (ballot b is led by member b mod n).
    public func leaderMember(of group: GroupID, ballot b: Ballot) -> Int { Int(b.rawValue % UInt32(groupSize(group))) }

    // MARK: dense lookups (no hashing, no allocation)

    /// Members in group `g`.
    @inlinable public func groupSize(_ g: GroupID) -> Int {
        firstServer[Int(g.rawValue) + 1] - firstServer[Int(g.rawValue)]
    }
    /// The server indices of group `g`'s members, member 0 first.
    @inlinable public func servers(of g: GroupID) -> Range<Int> {
        firstServer[Int(g.rawValue)]..<firstServer[Int(g.rawValue) + 1]
    }
    /// The server index of member `m` of group `g` (also its outbox peer index).
    @inlinable public func serverIndex(group g: GroupID, member m: Int) -> Int { firstServer[Int(g.rawValue)] + m }
}
