import RamCast
import RamCastChecker
import RamCastFabric
@testable import RamCastProtocol
import Testing

private typealias GroupID = RamCastProtocol.GroupID
private typealias MessageID = RamCastProtocol.MessageID
private typealias Timestamp = RamCastProtocol.Timestamp
private typealias Ballot = RamCastProtocol.Ballot

/// Every counter of the protocol at the limit where it used to wrap, alias or trap (issue 13,
/// "Counters and id spaces"): log positions at 2³², message sequences at 2⁴⁰, ballots at 2¹⁶ (acks,
/// clock cells, stream epochs), clocks at 2⁴⁰ and 2⁴⁸, fast-path table indices at 2²⁴.
@Suite("Counters at their limits")
struct CounterLimitTests {
    /// 2 senders × 3 slots × (2 destinations + 1) × 2 = 36 cells per log: not a power of two, and
    /// 2³² mod 36 = 4, so 32-bit positions reused a cell 4 entries after the wrap instead of 36.
    static func smallLayout(_ start: CounterStart = CounterStart()) throws -> Layout {
        var config = ProtocolConfig(groups: [[NodeID(0), NodeID(1), NodeID(2)], [NodeID(3), NodeID(4), NodeID(5)]],
                                    senders: [NodeID(100), NodeID(101)], slotsPerRing: 3, slotSize: 256)
        config.counterStart = start
        return try Layout(config)
    }

    @Test("any logCapacity consecutive log positions, across 2³², fall in distinct cells")
    func logPositionsAcrossTheWrap() throws {
        let layout = try Self.smallLayout()
        #expect(layout.logCapacity == 36)
        let g = GroupID(1)
        for first in ((1 << 32) - 80 as UInt64)...((1 << 32) + 8) {
            let cells = Set((first..<first + UInt64(layout.logCapacity)).map { layout.logOffset(group: g, seq: $0) })
            #expect(cells.count == layout.logCapacity, "positions \(first)..<\(first + UInt64(layout.logCapacity)) share a cell")
        }
    }

    /// Follower 2 of group 0 misses the leader's writes while six messages are ordered by the leader
    /// and follower 1 across the 2³² position wrap; then they land. With 32-bit positions the entry
    /// it waits for was overwritten 4 entries after the wrap, and it never delivered again.
    @Test("a follower six entries behind at the 2³² log-position wrap catches up")
    func laggingFollowerAcrossThePositionWrap() throws {
        var start = CounterStart.nearLimits()
        start.logPosition = (1 << 32) - 3
        start.messageCounter = MessageID.sequenceCount - 1   // each sender's ids wrap on its second message
        let c = try ScriptedCluster(slotsPerRing: 3, counterStart: start)
        var ids: [RamCastProtocol.MessageID] = []
        for _ in 0..<3 {
            ids.append(try c.send(100, to: [0]))
            ids.append(try c.send(101, to: [0]))
        }
        #expect(ids.contains { $0.sequence == 1 } && ids.contains { $0.sequence == MessageID.sequenceCount })
        try c.settle(holding: [(0, 2)], until: { [0, 1].allSatisfy { c.delivered[NodeID($0), default: []].count == 6 } })
        #expect(c.delivered[NodeID(0), default: []].count == 6 && c.delivered[NodeID(1), default: []].count == 6)
        #expect(c.server(0).followerSeq > 1 << 32, "the leader's stream did not cross 2³²")
        #expect(c.delivered[NodeID(2), default: []].isEmpty)
        try c.settle()
        #expect(c.delivered[NodeID(2), default: []].count == 6, "follower 2 stalled: \(c.server(2).debugDescription)")
        #expect(c.delivered[NodeID(2), default: []] == c.delivered[NodeID(0), default: []])
        let report = c.check()
        #expect(report.isClean, "\(report)")
    }

    @Test("message sequences wrap past 2⁴⁰ − 1 to 1, never 0, and stay ordered across the wrap")
    func messageSequencesWrap() {
        let m = MessageID.sequenceCount
        #expect(MessageID.sequence(ofCounter: m) == m)
        #expect(MessageID.sequence(ofCounter: m + 1) == 1)
        #expect(MessageID.sequence(ofCounter: 2 * m) == m)
        // Used to trap: `precondition(sequence < 1 << 40)`.
        let id = MessageID(sender: NodeID(7), sequence: m + 5)
        #expect(id.sender == NodeID(7) && id.sequence == 5 && id.description == "7.5")
        #expect(MessageID.isNewer(1, than: m) && !MessageID.isNewer(m, than: 1))
        #expect(MessageID.isNewer(3, than: m - 10) && !MessageID.isNewer(m - 10, than: 3))
        #expect(MessageID.isNewer(1, than: 0) && MessageID.isNewer(m, than: 0) && !MessageID.isNewer(5, than: 5))
        #expect(MessageID.newest(m, 2) == 2 && MessageID.newest(0, m) == m)
    }

    @Test("acks and clock cells keep all 32 bits of the ballot and all 64 of the value")
    func ackCellsKeepFullWidths() throws {
        let cell = AckCell(Ballot(5), 1234)
        #expect(cell.isUnder(Ballot(5)))
        #expect(!cell.isUnder(Ballot(5 + 65_536)), "a cell 65,536 ballots old passes for current")
        #expect(AckCell(Ballot(5), 1234) != AckCell(Ballot(5 + 65_536), 1234))
        #expect(AckCell(Ballot(5), 1234) != AckCell(Ballot(5), 1234 + 1 << 48), "timestamps 2⁴⁸ apart ack alike")
        let clock: UInt64 = 1 << 48 + 17
        var bytes = [UInt8](repeating: 0, count: AckCell.size)
        bytes.withUnsafeMutableBytes { AckCell(Ballot(70_000), clock).encode(into: $0.baseAddress!) }
        let read = bytes.withUnsafeBytes { AckCell.load($0.baseAddress!) }
        #expect(read.isUnder(Ballot(70_000)) && read.value == clock)
        // A zeroed cell, or one torn between two writes, is no ack.
        #expect(!AckCell(value: 0, tail: 0).isIntact)
        let torn = AckCell(value: AckCell(Ballot(9), 100).value, tail: AckCell(Ballot(9), 101).tail)
        #expect(!torn.isIntact)
    }

    @Test("a log entry carries its position's low 32 bits and the full 32-bit stream epoch")
    func logEntryWidths() {
        var e = LogEntry(seq: (1 << 32) + 7, ballot: Ballot(70_001), tsBallot: Ballot(70_001),
                         timestamp: Timestamp(clock: 1 << 50, group: GroupID(1)), message: MessageID(sender: NodeID(100), sequence: 9),
                         sender: 0, slot: 2, group: GroupID(1), kind: .proposal)
        e.epoch = LogEntry.epoch(Ballot(65_536 + 4))
        #expect(e.epoch != LogEntry.epoch(Ballot(4)), "stream epochs 65,536 ballots apart are equal")
        var cell = [UInt8](repeating: 0, count: Layout.logEntrySize)
        cell.withUnsafeMutableBytes { e.encode(into: $0.baseAddress!) }
        let read = cell.withUnsafeBytes { LogEntry.read($0.baseAddress!, expected: (1 << 32) + 7) }
        #expect(read == e)
        #expect(cell.withUnsafeBytes { LogEntry.read($0.baseAddress!, expected: 7) }?.seq == 7, "the reader supplies the high bits")
        #expect(cell.withUnsafeBytes { LogEntry.read($0.baseAddress!, expected: (1 << 32) + 8) } == nil)
    }

    @Test("senders × slotsPerRing beyond the fast path's 24-bit table index is refused, naming slotsPerRing")
    func fastPathTableIndexIsValidated() throws {
        let senders = (0..<1024).map { NodeID(1000 + UInt32($0)) }
        var config = ProtocolConfig(groups: [[NodeID(0)]], senders: senders, slotsPerRing: 1 << 14 + 1, slotSize: 256)
        #expect(throws: ConfigError.self) { try config.validate() }
        do {
            try config.validate()
        } catch {
            #expect(error.description.hasPrefix("slotsPerRing: senders × slotsPerRing must be at most 16777216"), "\(error)")
        }
        config.slotsPerRing = 1 << 14
        try config.validate()   // exactly 2²⁴ entries
    }

    @Test("a candidate refuses a ballot past 32 bits, and says so, instead of wrapping")
    func ballotsDoNotWrap() throws {
        let layout = try Self.smallLayout()
        let c = try ScriptedCluster()
        let engine = c.server(1)
        #expect(engine.hasBallotsLeft(after: Ballot(UInt32.max - 6)))
        #expect(!engine.ballotsExhausted)
        #expect(!engine.hasBallotsLeft(after: Ballot(UInt32.max - 5)))
        #expect(engine.ballotsExhausted)
        #expect(layout.initialBallot(GroupID(0)) == Ballot(3))
        var near = CounterStart()
        near.ballot = (1 << 16) - 2
        #expect(try Self.smallLayout(near).initialBallot(GroupID(0)) == Ballot(65_535))
    }
}
