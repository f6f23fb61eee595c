import RamCastChecker
import Testing

@Suite("Protocol invariants I3–I6")
struct InvariantTests {
    let membership = twoGroups()

    /// A clean ballot-1 run of group 0's leader (process 0): proposals seq 1…3, one propagation, acks, in-order
    /// processing by both followers.
    func cleanProtocolEvents() -> History {
        var h = History()
        h.recordLeaderChange(group: 0, ballot: 1, leader: 0)
        h.recordProposal(group: 0, ballot: 1, sequence: 1, message: mid("100.1"), timestamp: 10)
        h.recordProposal(group: 0, ballot: 1, sequence: 2, message: mid("100.2"), timestamp: 20)
        h.recordPropagation(group: 0, ballot: 1, sequence: 3, message: mid("100.2"), sourceGroup: 1, timestamp: 31)
        h.recordProposal(group: 0, ballot: 1, sequence: 4, message: mid("100.3"), timestamp: 40)
        for m in ["100.1", "100.2", "100.3"] {
            h.recordAck(
                process: 1, group: 0, ballot: 1, message: mid(m), timestamp: m == "100.1" ? 10 : m == "100.2" ? 20 : 40)
        }
        for p: ProcessID in [1, 2] {
            for s: UInt64 in 1...4 { h.recordProcessedSequence(process: p, group: 0, ballot: 1, sequence: s) }
        }
        return h
    }

    @Test func cleanProtocolEventsPass() {
        let report = check(cleanProtocolEvents(), membership: membership, quiescent: false)
        #expect(report.isClean, "\(report)")
        for p: Property in [.leaderSequence, .quorumTimestampStable, .skeenMonotonicity, .followerSequence] {
            #expect(report.status(of: p) == .passed)
        }
    }

    @Test func gapInLeaderSequence() {
        var h = History()
        h.recordProposal(group: 0, ballot: 1, sequence: 1, message: mid("100.1"), timestamp: 10)
        h.recordProposal(group: 0, ballot: 1, sequence: 2, message: mid("100.2"), timestamp: 20)
        h.recordProposal(group: 0, ballot: 1, sequence: 4, message: mid("100.3"), timestamp: 40)
        h.recordProposal(group: 0, ballot: 2, sequence: 1, message: mid("100.4"), timestamp: 50)  // new ballot restarts
        let report = check(h, membership: membership, quiescent: false)
        #expect(report.failedProperties == [.leaderSequence], "\(report)")
        #expect(report.violations.count == 1)
        #expect(report.violations[0].message.contains("group 0, ballot 1: leader write seq skips seq 3"), "\(report)")
    }

    @Test func leaderTimestampsMustIncreaseWithSequence() {
        var h = History()
        h.recordProposal(group: 1, ballot: 3, sequence: 7, message: mid("100.1"), timestamp: 10)
        h.recordProposal(group: 1, ballot: 3, sequence: 8, message: mid("100.2"), timestamp: 10)
        let report = check(h, membership: membership, quiescent: false)
        #expect(report.failedProperties == [.leaderSequence])
        #expect(report.violations[0].message.contains("proposal ts must strictly increase"))
    }

    /// A recovery section may re-propose two older ballots' values that are equal (a value of ballot
    /// 3 known to a minority, the same counter given to another message in ballot 4): I3 accepts the
    /// tie there, and only there.
    @Test func reproposedValuesMayTie() {
        var h = History()
        h.recordProposal(group: 0, ballot: 3, sequence: 1, message: mid("100.1"), timestamp: 10)
        h.recordProposal(group: 0, ballot: 4, sequence: 1, message: mid("101.1"), timestamp: 10)
        h.recordProposal(group: 0, ballot: 5, sequence: 1, message: mid("100.1"), timestamp: 10)
        h.recordProposal(group: 0, ballot: 5, sequence: 2, message: mid("101.1"), timestamp: 10)
        h.recordProposal(group: 0, ballot: 5, sequence: 3, message: mid("100.2"), timestamp: 20)
        let clean = check(h, membership: membership, quiescent: false)
        #expect(clean.status(of: .leaderSequence) == .passed, "\(clean)")
        // A fresh value equal to the re-proposal before it is still a violation.
        h.recordProposal(group: 0, ballot: 6, sequence: 1, message: mid("101.1"), timestamp: 10)
        h.recordProposal(group: 0, ballot: 6, sequence: 2, message: mid("100.3"), timestamp: 10)
        let bad = check(h, membership: membership, quiescent: false)
        #expect(bad.failedProperties == [.leaderSequence], "\(bad)")
        #expect(bad.violations.count == 1 && bad.violations[0].message.contains("group 0, ballot 6"), "\(bad)")
    }

    @Test func reproposalWithDifferentTimestampAfterQuorumAck() {
        var h = History()
        h.recordLeaderChange(group: 0, ballot: 1, leader: 0)
        h.recordProposal(group: 0, ballot: 1, sequence: 1, message: mid("100.1"), timestamp: 10)
        h.recordAck(process: 1, group: 0, ballot: 1, message: mid("100.1"), timestamp: 10)  // leader + 1 = f+1
        h.recordLeaderChange(group: 0, ballot: 2, leader: 1)
        h.recordProposal(group: 0, ballot: 2, sequence: 1, message: mid("100.1"), timestamp: 12)
        let report = check(h, membership: membership, quiescent: false)
        #expect(report.failedProperties == [.quorumTimestampStable], "\(report)")
        let v = report.violations[0]
        #expect(v.messages == [mid("100.1")])
        #expect(v.message.contains("ts_0(100.1) = 10 was acknowledged by a quorum in ballot 1"), "\(v)")
        #expect(v.message.contains("ballot 2 re-proposed it with ts 12"))
    }

    @Test func reproposalIsFreeWithoutQuorum() {
        var h = History()
        h.recordLeaderChange(group: 0, ballot: 1, leader: 0)
        h.recordProposal(group: 0, ballot: 1, sequence: 1, message: mid("100.1"), timestamp: 10)
        h.recordAck(process: 0, group: 0, ballot: 1, message: mid("100.1"), timestamp: 10)  // the leader itself
        h.recordAck(process: 3, group: 0, ballot: 1, message: mid("100.1"), timestamp: 10)  // not a member of 0
        h.recordAck(process: 1, group: 0, ballot: 1, message: mid("100.1"), timestamp: 9)  // a different value
        h.recordProposal(group: 0, ballot: 2, sequence: 1, message: mid("100.1"), timestamp: 12)
        #expect(check(h, membership: membership, quiescent: false).isClean)
    }

    @Test func quorumWithUnknownLeaderCountsTheProposal() {
        var h = History()
        h.recordProposal(group: 1, ballot: 1, sequence: 1, message: mid("100.1"), timestamp: 10)
        h.recordAck(process: 4, group: 1, ballot: 1, message: mid("100.1"), timestamp: 10)
        h.recordProposal(group: 1, ballot: 5, sequence: 1, message: mid("100.1"), timestamp: 10)  // same: fine
        #expect(check(h, membership: membership, quiescent: false).isClean)
        h.recordProposal(group: 1, ballot: 6, sequence: 1, message: mid("100.1"), timestamp: 11)
        #expect(check(h, membership: membership, quiescent: false).failedProperties == [.quorumTimestampStable])
    }

    @Test func skeenMonotonicity() {
        var h = History()
        h.recordPropagation(group: 0, ballot: 1, sequence: 1, message: mid("100.1"), sourceGroup: 1, timestamp: 31)
        h.recordProposal(group: 0, ballot: 1, sequence: 2, message: mid("100.2"), timestamp: 30)
        let report = check(h, membership: membership, quiescent: false)
        #expect(report.failedProperties == [.skeenMonotonicity], "\(report)")
        #expect(report.violations[0].message.contains("is not larger than the earlier propagation of ts_1(100.1) = 31"))
    }

    @Test func followerProcessesOutOfOrder() {
        var h = cleanProtocolEvents()
        h.recordProcessedSequence(process: 4, group: 1, ballot: 2, sequence: 1)
        h.recordProcessedSequence(process: 4, group: 1, ballot: 2, sequence: 3)  // skipped 2
        h.recordProcessedSequence(process: 4, group: 1, ballot: 2, sequence: 2)
        let report = check(h, membership: membership, quiescent: false)
        #expect(report.failedProperties == [.followerSequence], "\(report)")
        #expect(report.violations.count == 2)
        #expect(
            report.violations[0].message.contains("process 4 acted on seq 3 of group 1, ballot 2 right after seq 1"))
    }

    @Test func followerMustStartAtTheLeadersFirstWrite() {
        var h = cleanProtocolEvents()
        h.recordProcessedSequence(process: 1, group: 0, ballot: 1, sequence: 5)  // fine: continues 4
        h.recordProcessedSequence(process: 3, group: 0, ballot: 1, sequence: 2)  // starts at 2, leader started at 1
        let report = check(h, membership: membership, quiescent: false)
        #expect(report.failedProperties == [.followerSequence])
        #expect(report.violations.count == 1 && report.violations[0].processes == [3])
    }
}
