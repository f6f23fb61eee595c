import RamCastFabric
import RamCastInProcess
import Testing

/// Behaviour specific to the in-process fabric's scheduler: what the conformance suite cannot ask
/// of real hardware (deterministic replay, forced tearing, crash-stop).
@Suite("In-process fabric")
struct InProcessFabricTests {
    /// Two endpoints, regions registered, a connects to b.
    func pair(_ schedule: InProcessFabric.Schedule) throws -> (InProcessFabric, InProcessEndpoint, InProcessEndpoint, LocalRegion, LocalRegion, ConnectionID) {
        let f = InProcessFabric(schedule: schedule)
        let a = try f.makeEndpoint(NodeID(1))
        let b = try f.makeEndpoint(NodeID(2))
        let src = try a.register(RegionID(0), length: 4096, remoteAccess: .anyPeer)
        let dst = try b.register(RegionID(0), length: 4096, remoteAccess: .anyPeer)
        let c = try a.connect(to: b.node, timeout: .seconds(1))
        return (f, a, b, src, dst, c)
    }

    @Test("a torn multi-word write is observable half-landed, and completes whole")
    func tornWrite() throws {
        let (f, a, _, src, dst, c) = try pair(.seeded(7, tearProbability: 1.0))
        for i in 0..<256 { src.base.storeBytes(of: UInt8(1 + i % 255), toByteOffset: i, as: UInt8.self) }
        try a.post(WriteRequest(id: 1, source: src.base, length: 256, remoteRegion: RegionID(0), remoteOffset: 0, flags: .signaled), on: c)
        var sawPartial = false
        while f.step() {
            let landed = (0..<256).filter { dst.base.load(fromByteOffset: $0, as: UInt8.self) != 0 }.count
            if landed > 0 && landed < 256 {
                sawPartial = true
                // Pieces are whole aligned 8-byte words: a NIC never splits those.
                #expect(landed % 8 == 0)
            }
        }
        #expect(sawPartial, "with tear probability 1 a 256-byte write must be seen partially landed")
        #expect(memcmp(src.base, dst.base, 256) == 0)
        var buf = [Completion](repeating: Completion(id: 0, connection: c, status: .flushed), count: 4)
        let n = buf.withUnsafeMutableBufferPointer { a.pollCompletions(into: $0) }
        #expect(n == 1 && buf[0].status == .success)
    }

    @Test("8-byte writes are never torn")
    func wordWritesAtomic() throws {
        let (f, a, _, src, dst, c) = try pair(.seeded(9, tearProbability: 1.0))
        src.base.storeBytes(of: UInt64.max, as: UInt64.self)
        try a.post(WriteRequest(id: 1, source: src.base, length: 8, remoteRegion: RegionID(0), remoteOffset: 0), on: c)
        #expect(dst.base.load(as: UInt64.self) == 0)
        #expect(f.step())
        #expect(dst.base.load(as: UInt64.self) == UInt64.max)
        #expect(!f.step())
    }

    /// Replays: the order in which writes from two connections land is a function of the seed.
    func landingOrder(seed: UInt64) throws -> [UInt64] {
        let f = InProcessFabric(schedule: .seeded(seed))
        let t = try f.makeEndpoint(NodeID(0))
        let region = try t.register(RegionID(0), length: 64, remoteAccess: .anyPeer)
        var senders: [(InProcessEndpoint, ConnectionID)] = []
        for n in 1...3 {
            let e = try f.makeEndpoint(NodeID(UInt32(n)))
            senders.append((e, try e.connect(to: t.node, timeout: .seconds(1))))
        }
        for i in 0..<20 {
            for (k, (e, c)) in senders.enumerated() {
                let v = UInt64(k * 100 + i)
                try withUnsafeBytes(of: v) {
                    try e.post(WriteRequest(id: v, source: $0.baseAddress!, length: 8, remoteRegion: RegionID(0), remoteOffset: 0, flags: .inline), on: c)
                }
            }
        }
        var order: [UInt64] = []
        while f.step() { order.append(region.base.load(as: UInt64.self)) }
        return order
    }

    @Test("a seed reproduces the schedule; different seeds reorder connections, never one connection")
    func determinism() throws {
        let a = try landingOrder(seed: 42)
        let b = try landingOrder(seed: 42)
        let c = try landingOrder(seed: 43)
        #expect(a == b)
        #expect(a != c)
        #expect(a.count == 60)
        for k in 0..<3 {
            let mine = a.filter { $0 / 100 == UInt64(k) }
            #expect(mine == mine.sorted(), "connection \(k) reordered: \(mine)")
        }
        // Interleaved, not one connection after another.
        #expect(a.prefix(20).contains { $0 / 100 != a[0] / 100 })
    }

    @Test("crash: a prefix of the crashed node's in-flight writes lands, peers get errors and a disconnect")
    func crash() throws {
        let (f, a, b, src, dst, c) = try pair(.seeded(3))
        let back = try b.connect(to: a.node, timeout: .seconds(1))
        for i in 1...10 {
            src.base.storeBytes(of: UInt64(i), toByteOffset: 8 * i, as: UInt64.self)
            try a.post(WriteRequest(id: UInt64(i), source: src.base + 8 * i, length: 8, remoteRegion: RegionID(0), remoteOffset: 8 * i), on: c)
        }
        try withUnsafeBytes(of: UInt64(5)) {
            try b.post(WriteRequest(id: 99, source: $0.baseAddress!, length: 8, remoteRegion: RegionID(0), remoteOffset: 0, flags: [.inline, .signaled]), on: back)
        }
        f.crash(a.node)
        let landed = (1...10).filter { dst.base.load(fromByteOffset: 8 * $0, as: UInt64.self) == UInt64($0) }
        #expect(landed == Array(1...landed.count), "what lands is a prefix: \(landed)")
        #expect(f.pendingWrites == 0)
        var buf = [Completion](repeating: Completion(id: 0, connection: c, status: .success), count: 4)
        let n = buf.withUnsafeMutableBufferPointer { b.pollCompletions(into: $0) }
        #expect(n == 1 && buf[0].id == 99 && buf[0].status == .retryExceeded)
        var events: [FabricEvent] = []
        while let e = b.pollEvent() { events.append(e) }
        #expect(events.contains { if case .disconnected(back, NodeID(1), _) = $0 { true } else { false } })
        #expect(throws: FabricError.self) { try a.connect(to: b.node, timeout: .seconds(1)) }
        #expect(throws: FabricError.self) { try b.connect(to: a.node, timeout: .seconds(1)) }
    }

    @Test("a write outside the target region is a remote access error, not a crash")
    func outOfRange() throws {
        let (f, a, _, src, _, c) = try pair(.immediate)
        try a.post(WriteRequest(id: 5, source: src.base, length: 64, remoteRegion: RegionID(0), remoteOffset: 4090), on: c)
        var buf = [Completion](repeating: Completion(id: 0, connection: c, status: .success), count: 4)
        let n = buf.withUnsafeMutableBufferPointer { a.pollCompletions(into: $0) }
        #expect(n == 1 && buf[0].id == 5 && buf[0].status == .remoteAccessError)
        #expect(f.pendingWrites == 0)
    }
}

@Suite("Fabric utilities")
struct FabricUtilityTests {
    @Test("CRC-32C matches the standard check values")
    func crc() {
        let s = Array("123456789".utf8)
        #expect(s.withUnsafeBytes { CRC32C.checksum($0) } == 0xE306_9283)
        #expect([UInt8](repeating: 0, count: 32).withUnsafeBytes { CRC32C.checksum($0) } == 0x8A91_36AA)
        // Chaining equals one pass.
        let whole = s.withUnsafeBytes { CRC32C.checksum($0) }
        let first = s.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<4])) }
        let chained = s.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[4...]), seed: first) }
        #expect(whole == chained)
    }

    @Test("send credits: one in N signaled, the last free slot always signaled, credits return in order")
    func credits() {
        var c = SendCredits(depth: 8, signalInterval: 4)
        var flags: [WriteFlags] = []
        for _ in 0..<8 { #expect(c.canPost()); flags.append(c.next()) }
        #expect(!c.canPost())
        #expect(flags.map { $0.contains(.signaled) } == [false, false, false, true, false, false, false, true])
        c.signaledCompletion()
        #expect(c.outstanding == 4)
        #expect(c.canPost(4) && !c.canPost(5))
        c.signaledCompletion()
        #expect(c.outstanding == 0)
        // Depth smaller than the interval: the last slot forces a signal, so credits always return.
        var d = SendCredits(depth: 3, signalInterval: 16)
        let f = (0..<3).map { _ in d.next() }
        #expect(f.map { $0.contains(.signaled) } == [false, false, true])
    }
}

#if canImport(Glibc)
import Glibc
#endif
