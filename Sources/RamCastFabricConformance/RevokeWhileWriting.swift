import RamCastFabric

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension FabricConformance {
    /// What ``revokeWhileWriting(_:)`` saw over all its rounds. Printed at the end of the scenario:
    /// on a real fabric these are the measured guarantees of its revocation.
    public struct RevocationFigures: CustomStringConvertible, Sendable {
        public var rounds = 0
        /// How long each `revokeWrite` call took.
        public var revokeTimes: [Duration] = []
        /// Writes posted and not yet completed (as polled) when `revokeWrite` was called.
        public var inFlightAtRevoke = 0
        /// Of those, writes whose bytes were not in the region when the revoke was called.
        public var notLandedAtCall = 0
        /// Writes that landed while `revokeWrite` ran (in the region when it returned, not when it
        /// was called).
        public var landedDuringRevoke = 0
        /// Successful completions polled after `revokeWrite` returned, for writes that had landed by
        /// then: their acknowledgement was simply still on its way. Allowed.
        public var lateSuccesses = 0
        /// The latest such completion, after `revokeWrite` returned.
        public var latestLateSuccess: Duration = .zero
        /// Writes posted while `revokeWrite` ran on another thread (until the writer saw it
        /// return), and after that.
        public var postedDuringRevoke = 0
        public var postedAfterRevoke = 0
        /// Writes that completed with ``CompletionStatus/remoteAccessError`` / were flushed.
        public var accessErrors = 0
        public var flushed = 0
        /// From `revokeWrite` returning to the access error being polled (negative: polled while
        /// the revoke ran on another thread).
        public var accessErrorDelays: [Duration] = []
        /// Fabric failures: successful completions of writes that were not in the region when
        /// `revokeWrite` returned, and bytes of the region changed after it returned.
        public var successesAfterRevoke = 0
        public var bytesChangedAfterRevoke = 0

        public var description: String {
            func stats(_ d: [Duration]) -> String {
                guard !d.isEmpty else { return "-" }
                let us = d.map { Double($0.components.seconds) * 1e6 + Double($0.components.attoseconds) / 1e12 }.sorted()
                func f(_ x: Double) -> String { String(Int(x.rounded())) }
                return "min \(f(us[0])) median \(f(us[us.count / 2])) max \(f(us[us.count - 1])) µs"
            }
            let late = Double(latestLateSuccess.components.seconds) * 1e6 + Double(latestLateSuccess.components.attoseconds) / 1e12
            return "\(rounds) rounds; revokeWrite \(stats(revokeTimes)); in flight at the call \(inFlightAtRevoke) "
                + "(not landed \(notLandedAtCall), landed during the call \(landedDuringRevoke)); "
                + "successes polled after the return \(lateSuccesses) (all landed before it; latest \(Int(late.rounded())) µs after); "
                + "posted during the call \(postedDuringRevoke), after the return \(postedAfterRevoke); access errors \(accessErrors) (\(stats(accessErrorDelays)) after the return), "
                + "flushed \(flushed); FABRIC FAILURES: successes not landed at the return \(successesAfterRevoke), "
                + "bytes changed after the return \(bytesChangedAfterRevoke)"
        }
    }

    /// Bytes of the protected region in ``revokeWhileWriting(_:)``'s layout: 64-byte cells in the
    /// first half, 16 KiB slots (several packets at any RDMA MTU) in the second.
    static let cellBytes = 64
    static let bigBytes = 16 * 1024

    /// The owner revokes a writer's permission while the writer streams signaled writes into the
    /// protected region, in rounds (grant, connect, stream, revoke at a seeded point).
    ///
    /// Every write fills its whole range with its own id, and ids only grow, so a copy of the region
    /// says exactly which writes had landed: write `w` had if every word of its range holds `w` or
    /// more (writes on one connection land in order). The region is copied just before and just
    /// after `revokeWrite`. Then, as an RC queue pair must:
    /// - a write that completes successfully must have been in the copy taken when `revokeWrite`
    ///   returned: anything else completed successfully after the revoke, a failure of the fabric;
    /// - the region keeps that copy's bytes to the end (the revoked writer changes nothing more);
    /// - the writer's first failed write fails with a remote access error, later ones are flushed
    ///   (no success after a failure), a post after it is refused with
    ///   ``FabricError/connectionInErrorState(_:peer:cause:)`` and a disconnect is reported.
    /// Writes of 64 bytes (inline and not) and of 16 KiB (several packets, or torn pieces on the
    /// in-process fabric) are mixed, so a write that was partly placed when the revoke came is
    /// covered too. The figures are printed: they are what the fabric guarantees.
    @discardableResult
    static func revokeWhileWriting(_ h: any FabricHarness, rounds: Int = 24) throws -> RevocationFigures {
        let n = try makeNodes(h, [1, 2])
        let (a, b) = (n[0], n[1])
        let depth = a.endpoint.limits.sendQueueDepth
        let maxInline = a.endpoint.limits.maxInlineBytes
        let region = b.protected
        let cells = (region.length / 2) / cellBytes
        let bigSlots = (region.length / 2) / bigBytes
        // Non-inline sources live in the writer's staging region until their write completes: one
        // 64-byte source per small write in flight, one 16 KiB source per big one.
        let smallSources = 1024
        let bigSources = (regionBytes - smallSources * cellBytes) / bigBytes
        // At most `bigSources` big writes among any `depth` consecutive writes.
        let bigEvery = max(16, (depth + bigSources - 1) / bigSources)
        try expect(depth <= smallSources && bigSlots >= 2 && cells >= 64, "[\(h.name)] scenario layout does not fit")

        let clock = ContinuousClock()
        var rng = SplitMix64(seed: 0x2E70_CA7E)
        var figures = RevocationFigures()
        var nextID: UInt64 = 1
        var bigCount = 0
        let before = UnsafeMutableRawPointer.allocate(byteCount: region.length, alignment: 64)
        let after = UnsafeMutableRawPointer.allocate(byteCount: region.length, alignment: 64)
        defer { before.deallocate(); after.deallocate() }
        var buffer = [Completion](repeating: Completion(id: 0, connection: ConnectionID(0), status: .success), count: 256)
        var driver = Driver(h)

        /// Where write `id` goes: (offset in the region, length).
        func range(_ id: UInt64) -> (offset: Int, length: Int) {
            if id % UInt64(bigEvery) == 0 {
                let k = Int(id / UInt64(bigEvery))
                return (region.length / 2 + (k % bigSlots) * bigBytes, bigBytes)
            }
            return (Int(id % UInt64(cells)) * cellBytes, cellBytes)
        }
        /// Whether write `id` had landed in full in `copy`.
        func landed(_ id: UInt64, in copy: UnsafeRawPointer) -> Bool {
            let (offset, length) = range(id)
            var i = 0
            while i < length {
                if (copy + offset + i).load(as: UInt64.self) < id { return false }
                i += 8
            }
            return true
        }

        for round in 1...rounds {
            while b.endpoint.pollEvent() != nil {}
            while a.endpoint.pollEvent() != nil {}
            try b.endpoint.grantWrite(protected, to: a.endpoint.node)
            let conn = try a.endpoint.connect(to: b.endpoint.node, timeout: .seconds(10))
            let at = "[\(h.name)] round \(round)"
            let firstID = nextID
            var completed = 0, successes = 0
            var firstFailure: CompletionStatus?
            var failedAt: ContinuousClock.Instant?
            let call = RevokeCall(b.endpoint, from: a.endpoint.node, region: region, before: before, after: after)
            defer { call.join() }
            var revokeCalled = false
            /// When the writer saw that `revokeWrite` had returned (its return instant, at once
            /// when the revoke runs on this thread).
            var revokedAt: ContinuousClock.Instant?
            var postedBeforeRevoke = 0, postedAtReturn = 0
            var refused = false

            /// Posts one write; false once the fabric refuses the connection.
            func post() throws -> Bool {
                let id = nextID
                let (offset, length) = range(id)
                do {
                    if length == cellBytes && id % 2 == 0 && length <= maxInline {
                        // Inline, from memory that is gone after the post.
                        var words = (id, id, id, id, id, id, id, id)
                        try withUnsafeBytes(of: &words) { raw in
                            try a.endpoint.post(WriteRequest(id: id, source: raw.baseAddress!, length: length, remoteRegion: protected,
                                                             remoteOffset: offset, flags: [.inline, .signaled]), on: conn)
                        }
                    } else {
                        let source = length == cellBytes
                            ? a.staging.base + Int(id % UInt64(smallSources)) * cellBytes
                            : a.staging.base + smallSources * cellBytes + (bigCount % bigSources) * bigBytes
                        source.initializeMemory(as: UInt64.self, repeating: id, count: length / 8)
                        try a.endpoint.post(WriteRequest(id: id, source: source, length: length, remoteRegion: protected,
                                                         remoteOffset: offset, flags: .signaled), on: conn)
                        if length != cellBytes { bigCount += 1 }
                    }
                } catch FabricError.connectionInErrorState(let c, _, _) where c == conn && revokeCalled {
                    return false
                }
                nextID += 1
                return true
            }

            /// Polls the writer's completions and holds each to the rules above.
            func poll() throws {
                if revokeCalled, revokedAt == nil, call.isDone {
                    revokedAt = call.end
                    postedAtReturn = Int(nextID - firstID)
                }
                // Read before polling: every completion this poll returns came after that return.
                let returned = revokedAt
                let got = buffer.withUnsafeMutableBufferPointer { a.endpoint.pollCompletions(into: $0) }
                let now = clock.now
                for c in buffer[0..<got] {
                    try expect(c.connection == conn, "\(at): completion for \(c.connection), expected \(conn)")
                    try expect(c.id >= firstID && c.id < nextID, "\(at): completion for write \(c.id), never posted in this round")
                    completed += 1
                    if c.status == .success {
                        successes += 1
                        try expect(firstFailure == nil, "\(at): write \(c.id) completed successfully after a write failed with \(firstFailure!): an RC connection in the error state completes nothing")
                        guard let returned else { continue }
                        if landed(c.id, in: after) {
                            figures.lateSuccesses += 1
                            figures.latestLateSuccess = max(figures.latestLateSuccess, now - returned)
                        } else {
                            figures.successesAfterRevoke += 1
                        }
                        continue
                    }
                    try expect(revokeCalled, "\(at): write \(c.id) failed with \(c.status) before the revoke")
                    if firstFailure == nil {
                        firstFailure = c.status
                        failedAt = now
                        try expect(c.status == .remoteAccessError, "\(at): the first write to fail after the revoke (\(c.id)) failed with \(c.status), expected a remote access error")
                    }
                    if c.status == .remoteAccessError { figures.accessErrors += 1 } else { figures.flushed += 1 }
                }
            }

            // Stream until a seeded number of writes succeeded, then revoke with half the send queue
            // in flight. The writer goes on posting at once: while the revoke runs when the fabric
            // lets the owner run on a thread of its own (a deposed leader is another process), and
            // right after it returns otherwise, behind writes still in flight.
            let revokeAfter = 1 + Int(rng.next() % UInt64(2 * depth))
            try driver.wait("\(at): \(revokeAfter) successful writes", until: { successes >= revokeAfter }) { _ in
                while Int(nextID - firstID) - completed < depth / 2 { _ = try post() }
                try poll()
            }
            while Int(nextID - firstID) - completed < depth / 2 { _ = try post() }
            postedBeforeRevoke = Int(nextID - firstID)
            figures.inFlightAtRevoke += postedBeforeRevoke - completed
            revokeCalled = true
            if h.endpointsOnSeparateThreads {
                call.spawn()
            } else {
                call.run()
                revokedAt = call.end
                postedAtReturn = postedBeforeRevoke
            }

            // The fabric must fail the writes and then the connection.
            let cap = 4 * depth
            try driver.wait("\(at): the revoked writer's writes failing (\(Int(nextID - firstID) - postedBeforeRevoke) posted since the revoke)",
                            until: { (refused || Int(nextID - firstID) - postedBeforeRevoke >= cap) && completed == Int(nextID - firstID) && revokedAt != nil }) { _ in
                while !refused, Int(nextID - firstID) - postedBeforeRevoke < cap, Int(nextID - firstID) - completed < depth {
                    if try !post() { refused = true }
                }
                try poll()
            }
            if let error = call.error { throw error }
            figures.revokeTimes.append(call.end - call.start)
            if let failedAt { figures.accessErrorDelays.append(failedAt - call.end) }
            figures.postedDuringRevoke += postedAtReturn - postedBeforeRevoke
            figures.postedAfterRevoke += Int(nextID - firstID) - postedAtReturn
            for id in firstID..<nextID {
                let l0 = landed(id, in: before), l1 = landed(id, in: after)
                if !l0 && Int(id - firstID) < postedBeforeRevoke { figures.notLandedAtCall += 1 }
                if !l0 && l1 { figures.landedDuringRevoke += 1 }
            }
            try expect(figures.successesAfterRevoke == 0,
                       "\(at): FABRIC FAILURE: \(figures.successesAfterRevoke) writes completed successfully that were not in the region when revokeWrite returned; \(figures)")
            try expect(refused, "\(at): \(cap) writes posted after the revoke and the connection never entered the error state (\(figures.accessErrors) access errors)")
            try expect(firstFailure == .remoteAccessError, "\(at): no write failed with a remote access error after the revoke")
            _ = try a.endpoint.waitEvent(h, "\(at): disconnected after the access error") {
                if case .disconnected(let c, _, _) = $0 { return c == conn }
                return false
            }
            for _ in 0..<100 { h.progress() }
            var changed = 0
            if memcmp(region.base, after, region.length) != 0 {
                for i in 0..<region.length where region.base.load(fromByteOffset: i, as: UInt8.self) != after.load(fromByteOffset: i, as: UInt8.self) {
                    changed += 1
                }
            }
            figures.bytesChangedAfterRevoke += changed
            try expect(changed == 0, "\(at): FABRIC FAILURE: \(changed) bytes of the region changed after revokeWrite returned; \(figures)")
            figures.rounds += 1
        }
        print("[\(h.name)] revokeWhileWriting: \(figures)")
        return figures
    }
}

/// The owner's side of a revoke in ``FabricConformance/revokeWhileWriting(_:rounds:)``: copies the
/// region, revokes, copies it again. Run on a thread of its own when the harness allows, so the
/// writer's posts race with the revoke as they would from another process.
final class RevokeCall: @unchecked Sendable {
    let endpoint: any FabricEndpoint
    let peer: NodeID
    let region: LocalRegion
    let before: UnsafeMutableRawPointer
    let after: UnsafeMutableRawPointer
    private(set) var start = ContinuousClock.now
    private(set) var end = ContinuousClock.now
    private(set) var error: (any Error)?
    private let done = UnsafeMutableRawPointer.allocate(byteCount: 8, alignment: 8)
    private var thread: pthread_t?

    init(_ endpoint: any FabricEndpoint, from peer: NodeID, region: LocalRegion,
         before: UnsafeMutableRawPointer, after: UnsafeMutableRawPointer) {
        self.endpoint = endpoint
        self.peer = peer
        self.region = region
        self.before = before
        self.after = after
        done.storeBytes(of: 0, as: UInt64.self)
    }

    deinit { done.deallocate() }

    /// Waits for the thread ``spawn()`` started, if any.
    func join() {
        if let t = thread { pthread_join(t, nil) }
        thread = nil
    }

    /// Whether ``run()`` finished; its results are visible once this is true.
    var isDone: Bool { RemoteMemory.loadAcquiring(done) == 1 }

    func run() {
        before.copyMemory(from: region.base, byteCount: region.length)
        start = .now
        do { try endpoint.revokeWrite(region.id, from: peer) } catch { self.error = error }
        end = .now
        after.copyMemory(from: region.base, byteCount: region.length)
        RemoteMemory.storeReleasing(1, at: done)
    }

    /// Runs ``run()`` on a new thread; falls back to this one if none can be made.
    func spawn() {
        var t = pthread_t()
        let rc = pthread_create(&t, nil, { arg in
            Unmanaged<RevokeCall>.fromOpaque(arg!).takeRetainedValue().run()
            return nil
        }, Unmanaged.passRetained(self).toOpaque())
        if rc == 0 { thread = t } else { run() }
    }
}
