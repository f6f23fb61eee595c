import RamCastChecker
import RamCastFabric
@testable import RamCastProtocol
import Testing

#if DEBUG   // the unfixed paths exist in debug builds only
/// The two counter-examples of spec §10, replayed step by step. Each runs with the fix (the checker
/// must pass and the order must be the correct one) and without it (the checker must catch the bug),
/// so the test shows both that the fix works and that the scenario really exercises it.
@Suite("Spec §10 regressions")
struct RegressionTests {
    /// §10.1: m to {g, h}, m2 to {h}. h's leader timestamps m, then m2, then forwards g's larger
    /// timestamp of m. A follower of h whose copy of m2's body is late must not act on the forward
    /// before m2's timestamp, or it delivers m before m2 while its leader delivers m2 before m.
    func section10_1(fixes: SafetyFixes) throws -> (ScriptedCluster, m: RamCastProtocol.MessageID, m2: RamCastProtocol.MessageID) {
        let c = try ScriptedCluster(fixes: fixes)
        // Push g's clock ahead of h's with a few g-only messages.
        for _ in 0..<5 { _ = try c.send(100, to: [0]) }
        try c.settle()
        let m = try c.send(100, to: [0, 1])
        c.deliver(100, 0, 1, 2, 3, 4, 5)
        try c.pump(3)                      // L_h: ts_h(m) = ⟨1,1⟩, seq 1
        c.deliver(3, 4, 5)
        let m2 = try c.send(101, to: [1])
        c.deliver(101, 3)                  // m2's body reaches only h's leader
        try c.pump(3)                      // L_h: ts_h(m2) = ⟨2,1⟩, seq 2
        c.deliver(3, 4, 5)
        try c.pump(0)                      // L_g: ts_g(m) = ⟨6,0⟩, to L_h
        c.deliver(0, 3)
        try c.pump(3)                      // L_h forwards ts_g(m), seq 3
        c.deliver(3, 4, 5)
        // Everything else moves, but m2's body stays away from h's followers for a while.
        try c.settle(holding: [(101, 4), (101, 5)])
        try c.settle()
        return (c, m, m2)
    }

    @Test("§10.1: followers apply leader writes in sequence order")
    func followerSequenceOrder() throws {
        let (fixed, m, m2) = try section10_1(fixes: .all)
        let report = fixed.check()
        #expect(report.isClean, "\(report)")
        for p in [3, 4, 5] {
            #expect(fixed.delivered[NodeID(UInt32(p)), default: []].suffix(2) == [m2, m], "process \(p) order")
        }
        let (broken, _, _) = try section10_1(fixes: .timestampsPresent)
        let bad = broken.check()
        #expect(!bad.isClean, "without the §10.1 fix the scenario must produce a violation")
        #expect(bad.failedProperties.contains(.uniformPrefixOrder) || bad.failedProperties.contains(.uniformAcyclicOrder), "\(bad)")
    }

    /// §10.2: a follower q of g sees h's followers' acks for ts_h(m) before its own leader forwarded
    /// ts_h(m). Ordering m on acks alone computes the final timestamp without ts_h(m).
    func section10_2(fixes: SafetyFixes) throws -> ScriptedCluster {
        let c = try ScriptedCluster(fixes: fixes)
        for _ in 0..<5 { _ = try c.send(100, to: [1]) }   // h's clock ahead
        try c.settle()
        _ = try c.send(100, to: [0, 1])
        c.deliver(100, 0, 1, 2, 3, 4, 5)
        try c.pump(3)                      // L_h: ts_h(m) = ⟨6,1⟩, to 4, 5 and to L_g (held)
        c.deliver(3, 4, 5)
        try c.pump(4, 5)                   // h's followers ack to every destination
        c.deliver(4, 1, 2)
        c.deliver(5, 1, 2)
        try c.pump(0)                      // L_g: ts_g(m) = ⟨1,0⟩
        c.deliver(0, 1, 2)
        try c.pump(1, 2)                   // g's followers ack
        c.deliver(2, 1)
        try c.pump(1)                      // q = 1: ts_g present, h acked, ts_h missing
        try c.settle()
        return c
    }

    @Test("§10.2: ORDERED requires every group's timestamp to be present")
    func timestampsPresent() throws {
        let fixed = try section10_2(fixes: .all)
        let report = fixed.check()
        #expect(report.isClean, "\(report)")
        #expect(fixed.finals[NodeID(1)]?.last == RamCastProtocol.Timestamp(clock: 6, group: RamCastProtocol.GroupID(1)))
        let broken = try section10_2(fixes: .sequenceOrder)
        let bad = broken.check()
        #expect(!bad.isClean, "without the §10.2 fix the scenario must produce a violation")
        #expect(bad.failedProperties.contains(.sameTimestamps), "\(bad)")
        #expect(broken.finals[NodeID(1)]?.last == RamCastProtocol.Timestamp(clock: 1, group: RamCastProtocol.GroupID(0)))
    }
}
#endif
