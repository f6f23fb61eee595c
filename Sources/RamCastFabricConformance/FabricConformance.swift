import RamCastFabric

/// The behaviour every fabric must show, as runnable scenarios. The test targets run each scenario
/// against the in-process fabric (several seeds) and against the RDMA fabric (over rxe or a NIC), so
/// the test double cannot drift away from the hardware it stands in for.
public enum FabricConformance {
    public enum Scenario: String, CaseIterable, Sendable, CustomStringConvertible {
        case orderingPerConnection
        case inlineAndNonInline
        case selectiveSignalingLongRun
        case sendQueueRefusesOverflow
        case revokeThenWrite
        case revokeWhileWriting
        case grantThenProceed
        case reconnectAndGrant
        case crcChecked100k
        case connectionErrors
        public var description: String { rawValue }
    }

    /// Region ids the scenarios register on every endpoint (at most three: the RDMA fabric's
    /// connect-time private data carries three region descriptors).
    static let data = RegionID(0)
    static let protected = RegionID(1)
    static let staging = RegionID(2)
    static let regionBytes = 1 << 18
    /// Room for ``revokeWhileWriting(_:)``'s 16 KiB writes, which span several packets at any MTU.
    static let protectedBytes = 1 << 16

    public static func run(_ scenario: Scenario, on harness: any FabricHarness) throws {
        defer { harness.tearDown() }
        switch scenario {
        case .orderingPerConnection: try orderingPerConnection(harness)
        case .inlineAndNonInline: try inlineAndNonInline(harness)
        case .selectiveSignalingLongRun: try selectiveSignalingLongRun(harness)
        case .sendQueueRefusesOverflow: try sendQueueRefusesOverflow(harness)
        case .revokeThenWrite: try revokeThenWrite(harness)
        case .revokeWhileWriting: try revokeWhileWriting(harness)
        case .grantThenProceed: try grantThenProceed(harness)
        case .reconnectAndGrant: try reconnectAndGrant(harness)
        case .crcChecked100k: try crcChecked100k(harness)
        case .connectionErrors: try connectionErrors(harness)
        }
    }

    struct Node {
        let endpoint: any FabricEndpoint
        let data: LocalRegion
        let protected: LocalRegion
        let staging: LocalRegion
    }

    static func makeNodes(_ harness: any FabricHarness, _ ids: [UInt32]) throws -> [Node] {
        try harness.makeEndpoints(ids.map(NodeID.init)).map { e in
            Node(endpoint: e,
                 data: try e.register(data, length: regionBytes, remoteAccess: .anyPeer),
                 protected: try e.register(protected, length: protectedBytes, remoteAccess: .grantedPeers),
                 staging: try e.register(staging, length: regionBytes, remoteAccess: .anyPeer))
        }
    }

    static func acceptedConnection(_ harness: any FabricHarness, at node: Node, from peer: NodeID) throws -> ConnectionID {
        let e = try node.endpoint.waitEvent(harness, "accepted from \(peer)") {
            if case .accepted(_, let p) = $0 { return p == peer }
            return false
        }
        guard case .accepted(let conn, _) = e else { throw fail("unreachable") }
        return conn
    }

    static func word(_ region: LocalRegion, _ offset: Int) -> UInt64 {
        RemoteMemory.loadAcquiring(region.base + offset)
    }

    // MARK: - Ordering

    /// Per connection, writes land in posting order: each writer stores value i into its own cell i
    /// and then i into a tail word, so a reader that sees tail = t must also see cell t = t. Two
    /// writers share the target (writes across connections are not ordered, and nothing assumes
    /// they are), and the target writes back on the connection it accepted.
    static func orderingPerConnection(_ h: any FabricHarness) throws {
        let n = try makeNodes(h, [1, 2, 3])
        let (a, b, c) = (n[0], n[1], n[2])
        let count = 3000
        let ab = try a.endpoint.connect(to: b.endpoint.node, timeout: .seconds(10))
        let cb = try c.endpoint.connect(to: b.endpoint.node, timeout: .seconds(10))
        let ba = try acceptedConnection(h, at: b, from: a.endpoint.node)

        // Area of each writer in the target's data region: count cells, then the tail word.
        let area = (count + 2) * 8
        struct Stream {
            var sender: Sender
            var next = 1
            let base: Int
            let target: LocalRegion
            var lastTail: UInt64 = 0
        }
        var streams = [
            Stream(sender: Sender(a.endpoint, ab, signalInterval: 8, harnessName: h.name), base: 0, target: b.data),
            Stream(sender: Sender(c.endpoint, cb, signalInterval: 8, harnessName: h.name), base: area, target: b.data),
            Stream(sender: Sender(b.endpoint, ba, signalInterval: 8, harnessName: h.name), base: 0, target: a.data),
        ]
        var driver = Driver(h)
        try driver.wait("\(count) ordered writes on 3 streams", until: { streams.allSatisfy { $0.lastTail == UInt64(count) } }) { d in
            for i in streams.indices {
                // Post (cell, tail) pairs while credits allow.
                while streams[i].next <= count, streams[i].sender.credits.canPost(2) {
                    let v = UInt64(streams[i].next)
                    let value = v
                    try withUnsafeBytes(of: v) { raw in
                        let cell = WriteRequest(id: value, source: raw.baseAddress!, length: 8, remoteRegion: data,
                                                remoteOffset: streams[i].base + 8 * Int(value), flags: .inline)
                        let tail = WriteRequest(id: value, source: raw.baseAddress!, length: 8, remoteRegion: data,
                                                remoteOffset: streams[i].base + 8 * (count + 1), flags: .inline)
                        _ = try streams[i].sender.tryPost(cell)
                        _ = try streams[i].sender.tryPost(tail)
                    }
                    streams[i].next += 1
                }
                try streams[i].sender.poll(&d)
                // Check what the reader sees right now.
                let s = streams[i]
                let tail = word(s.target, s.base + 8 * (count + 1))
                try expect(tail >= s.lastTail, "[\(h.name)] stream \(i): tail went back from \(s.lastTail) to \(tail)")
                if tail > 0 {
                    let cell = word(s.target, s.base + 8 * Int(tail))
                    try expect(cell == tail, "[\(h.name)] stream \(i): tail is \(tail) but cell \(tail) holds \(cell): a later write overtook an earlier one")
                }
                streams[i].lastTail = tail
            }
        }
        for s in streams {
            for i in 1...count {
                let v = word(s.target, s.base + 8 * i)
                try expect(v == UInt64(i), "[\(h.name)] cell \(i) holds \(v) after the run")
            }
        }
    }

    // MARK: - Inline and non-inline

    /// Writes of many sizes, inline (from unregistered memory that is overwritten right after the
    /// post) and non-inline (from registered memory), each verified byte for byte. Requests a fabric
    /// cannot carry are refused at post time, and the connection still works afterwards.
    static func inlineAndNonInline(_ h: any FabricHarness) throws {
        let n = try makeNodes(h, [1, 2])
        let (a, b) = (n[0], n[1])
        let conn = try a.endpoint.connect(to: b.endpoint.node, timeout: .seconds(10))
        let maxInline = a.endpoint.limits.maxInlineBytes
        var sender = Sender(a.endpoint, conn, signalInterval: 1, harnessName: h.name)
        var driver = Driver(h)
        var sizes = [1, 7, 8, 13, 64, 100, 4096, 65_536]
        if maxInline > 0 { sizes += [maxInline, maxInline + 1] }
        var offset = 0
        var seed: UInt64 = 1000
        for size in sizes {
            for useInline in [true, false] where !useInline || size <= maxInline {
                seed += 1
                try expect(offset + size <= regionBytes, "scenario layout overflow")
                if useInline {
                    let scratch = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
                    defer { scratch.deallocate() }
                    fillPattern(scratch, count: size, seed: seed)
                    _ = try sender.tryPost(WriteRequest(id: seed, source: scratch, length: size, remoteRegion: data,
                                                        remoteOffset: offset, flags: .inline))
                    // Inline data was copied at post time: scribbling over the source must not matter.
                    scratch.initializeMemory(as: UInt8.self, repeating: 0xEE, count: size)
                } else {
                    fillPattern(a.staging.base + offset, count: size, seed: seed)
                    _ = try sender.tryPost(WriteRequest(id: seed, source: a.staging.base + offset, length: size,
                                                        remoteRegion: data, remoteOffset: offset))
                }
                let want = sender.signaledCompletions + 1
                try driver.wait("completion of a \(size)-byte \(useInline ? "inline" : "non-inline") write",
                                until: { sender.signaledCompletions >= want }) { d in try sender.poll(&d) }
                try expect(patternMatches(b.data.base + offset, count: size, seed: seed),
                           "[\(h.name)] \(size)-byte \(useInline ? "inline" : "non-inline") write landed wrong bytes")
                offset += (size + 63) & ~63
            }
        }
        // Refused before posting: inline too large, and a non-inline source outside registered memory.
        let big = UnsafeMutableRawPointer.allocate(byteCount: maxInline + 64, alignment: 8)
        defer { big.deallocate() }
        do {
            try a.endpoint.post(WriteRequest(id: 1, source: big, length: maxInline + 1, remoteRegion: data,
                                             remoteOffset: 0, flags: [.inline, .signaled]), on: conn)
            throw fail("[\(h.name)] an inline write of \(maxInline + 1) bytes (max \(maxInline)) was accepted")
        } catch let e as FabricError {
            guard case .invalidWrite = e else { throw fail("[\(h.name)] wrong error for oversized inline write: \(e)") }
        }
        do {
            try a.endpoint.post(WriteRequest(id: 2, source: big, length: 64, remoteRegion: data,
                                             remoteOffset: 0, flags: .signaled), on: conn)
            throw fail("[\(h.name)] a non-inline write from unregistered memory was accepted")
        } catch let e as FabricError {
            guard case .invalidWrite = e else { throw fail("[\(h.name)] wrong error for unregistered source: \(e)") }
        }
        // The refused requests cost nothing: the connection still carries writes.
        let v: UInt64 = 0xC0FFEE
        try withUnsafeBytes(of: v) { raw in
            _ = try sender.tryPost(WriteRequest(id: 3, source: raw.baseAddress!, length: 8, remoteRegion: data,
                                                remoteOffset: regionBytes - 8, flags: .inline))
        }
        let want = sender.signaledCompletions + 1
        try driver.wait("completion after refused posts", until: { sender.signaledCompletions >= want }) { d in try sender.poll(&d) }
        try expect(word(b.data, regionBytes - 8) == 0xC0FFEE, "[\(h.name)] write after refused posts did not land")
    }

    // MARK: - Selective signaling

    /// 50,000 writes with one in 16 signaled, on a send queue much smaller than the run: credits
    /// from signaled completions must keep it flowing without ever overflowing the send queue or the
    /// completion queue.
    static func selectiveSignalingLongRun(_ h: any FabricHarness) throws {
        let n = try makeNodes(h, [1, 2])
        let (a, b) = (n[0], n[1])
        let conn = try a.endpoint.connect(to: b.endpoint.node, timeout: .seconds(10))
        var sender = Sender(a.endpoint, conn, signalInterval: 16, harnessName: h.name)
        let total = 50_000
        var posted = 0
        var maxOutstanding = 0
        var driver = Driver(h, deadline: .seconds(120))
        try driver.wait("\(total) selectively signaled writes", until: {
            posted == total && sender.signaledCompletions == sender.signaledPosted
        }) { d in
            while posted < total {
                let v = UInt64(posted + 1)
                let ok = try withUnsafeBytes(of: v) { raw in
                    try sender.tryPost(WriteRequest(id: v, source: raw.baseAddress!, length: 8, remoteRegion: data,
                                                    remoteOffset: 8 * (posted % 4096), flags: .inline))
                }
                if !ok { break }
                posted += 1
                maxOutstanding = max(maxOutstanding, sender.credits.outstanding)
            }
            try sender.poll(&d)
        }
        try expect(sender.signaledPosted <= total / 16 + total / sender.credits.depth + 2,
                   "[\(h.name)] \(sender.signaledPosted) of \(total) writes were signaled with interval 16")
        try expect(maxOutstanding <= sender.credits.depth, "outstanding \(maxOutstanding) exceeded depth")
        let last = word(b.data, 8 * ((total - 1) % 4096))
        try expect(last == UInt64(total), "[\(h.name)] last write holds \(last), expected \(total)")
    }

    /// A caller that ignores credits is refused with `.sendQueueFull` rather than overflowing.
    static func sendQueueRefusesOverflow(_ h: any FabricHarness) throws {
        let n = try makeNodes(h, [1, 2])
        let (a, b) = (n[0], n[1])
        let conn = try a.endpoint.connect(to: b.endpoint.node, timeout: .seconds(10))
        let depth = a.endpoint.limits.sendQueueDepth
        let v: UInt64 = 7
        try withUnsafeBytes(of: v) { raw in
            let w = WriteRequest(id: 1, source: raw.baseAddress!, length: 8, remoteRegion: data, remoteOffset: 0, flags: .inline)
            for _ in 0..<depth { try a.endpoint.post(w, on: conn) }
            do {
                try a.endpoint.post(w, on: conn)
                throw fail("[\(h.name)] write \(depth + 1) on a send queue of depth \(depth) with no signaled completion was accepted")
            } catch let e as FabricError {
                guard case .sendQueueFull(_, let outstanding, _, let d) = e, outstanding == depth, d == depth else {
                    throw fail("[\(h.name)] expected sendQueueFull, got \(e)")
                }
            }
        }
        _ = b
    }

    // MARK: - Permissions

    static func protectedWrite(_ sender: inout Sender, value: UInt64, flags: WriteFlags = [.inline, .signaled]) throws {
        let v = value
        try withUnsafeBytes(of: v) { raw in
            try sender.endpoint.post(WriteRequest(id: value, source: raw.baseAddress!, length: 8, remoteRegion: protected,
                                                  remoteOffset: 64, flags: flags), on: sender.connection)
        }
    }

    /// Waits for the completion of write `id` and returns its status.
    static func status(of id: UInt64, _ e: any FabricEndpoint, _ driver: inout Driver) throws -> CompletionStatus {
        var found: CompletionStatus?
        try driver.wait("completion of write \(id)", until: { found != nil }) { d in
            d.poll(e) { c in if c.id == id { found = c.status } }
        }
        return found!
    }

    /// A peer that grants write access and then says so with a write on the same connection (as a
    /// follower's 1B follows its grant to a new leader) can be written to at once by the grantee,
    /// which saw that write in its memory and polled no event since. Over RDMA the grant is a key
    /// update (a SEND) ahead of that write: the grantee must take it before posting, or its write
    /// goes out with a stale key and is refused. Rounds of grant and revoke, so that a stale key
    /// that was writable once is covered too.
    static func grantThenProceed(_ h: any FabricHarness) throws {
        let n = try makeNodes(h, [1, 2])
        let (a, b) = (n[0], n[1])
        let ab = try a.endpoint.connect(to: b.endpoint.node, timeout: .seconds(10))
        let ba = try acceptedConnection(h, at: b, from: a.endpoint.node)
        var writer = Sender(a.endpoint, ab, signalInterval: 1, harnessName: h.name)
        var granter = Sender(b.endpoint, ba, signalInterval: 1, harnessName: h.name)
        var driver = Driver(h)
        for round in 1...20 {
            try b.endpoint.grantWrite(protected, to: a.endpoint.node)
            let go = UInt64(round)
            try withUnsafeBytes(of: go) { raw in
                _ = try granter.tryPost(WriteRequest(id: go, source: raw.baseAddress!, length: 8, remoteRegion: data,
                                                     remoteOffset: 0, flags: .inline))
            }
            try driver.wait("go-ahead \(round) at \(a.endpoint.node)", until: { word(a.data, 0) == go })
            let value = 0x5000 + go
            try protectedWrite(&writer, value: value)
            let st = try status(of: value, a.endpoint, &driver)
            try expect(st == .success, "[\(h.name)] round \(round): a write right after the grant completed with \(st)")
            try driver.wait("write \(round) landing", until: { word(b.protected, 64) == value })
            // The go-ahead's completion retires the key update posted before it (a granter has a
            // few control sends in flight per connection).
            try driver.wait("go-ahead \(round) completed", until: { granter.signaledCompletions == round }) { d in try granter.poll(&d) }
            try b.endpoint.revokeWrite(protected, from: a.endpoint.node)
        }
    }

    /// A writer whose permission was revoked gets a remote access error (even for an unsignaled
    /// write), nothing lands, and the connection is dead: later posts fail and a disconnect event is
    /// reported.
    static func revokeThenWrite(_ h: any FabricHarness) throws {
        let n = try makeNodes(h, [1, 2])
        let (a, b) = (n[0], n[1])
        try b.endpoint.grantWrite(protected, to: a.endpoint.node)
        let conn = try a.endpoint.connect(to: b.endpoint.node, timeout: .seconds(10))
        var sender = Sender(a.endpoint, conn, signalInterval: 1, harnessName: h.name)
        var driver = Driver(h)

        try protectedWrite(&sender, value: 0x1111)
        let s1111 = try status(of: 0x1111, a.endpoint, &driver)
        try expect(s1111 == .success, "[\(h.name)] granted write failed")
        try expect(word(b.protected, 64) == 0x1111, "[\(h.name)] granted write did not land")

        try b.endpoint.revokeWrite(protected, from: a.endpoint.node)
        try protectedWrite(&sender, value: 0x2222, flags: .inline)   // unsignaled on purpose
        let st = try status(of: 0x2222, a.endpoint, &driver)
        try expect(st == .remoteAccessError, "[\(h.name)] write after revoke completed with \(st), expected a remote access error")
        for _ in 0..<100 { h.progress() }
        try expect(word(b.protected, 64) == 0x1111, "[\(h.name)] a revoked writer's data landed: \(String(word(b.protected, 64), radix: 16))")

        do {
            try protectedWrite(&sender, value: 0x3333)
            throw fail("[\(h.name)] posting on a connection in the error state was accepted")
        } catch let e as FabricError {
            guard case .connectionInErrorState(let c, _, _) = e, c == conn else {
                throw fail("[\(h.name)] expected connectionInErrorState, got \(e)")
            }
        }
        _ = try a.endpoint.waitEvent(h, "disconnected after access error") {
            if case .disconnected(let c, _, _) = $0 { return c == conn }
            return false
        }
    }

    /// After an access error the writer reconnects: the new connection works for unprotected
    /// writes, protected writes still fail until the owner grants again, and a grant on an open
    /// connection reaches the writer (`.permissionChanged`) so its next write lands.
    static func reconnectAndGrant(_ h: any FabricHarness) throws {
        let n = try makeNodes(h, [1, 2])
        let (a, b) = (n[0], n[1])
        var driver = Driver(h)
        // Never granted: a protected write kills the first connection.
        let first = try a.endpoint.connect(to: b.endpoint.node, timeout: .seconds(10))
        var sender = Sender(a.endpoint, first, signalInterval: 1, harnessName: h.name)
        try protectedWrite(&sender, value: 0xA1)
        let sA1 = try status(of: 0xA1, a.endpoint, &driver)
        try expect(sA1 == .remoteAccessError, "[\(h.name)] ungranted write was not refused")

        // Reconnect: unprotected writes flow again.
        let second = try a.endpoint.connect(to: b.endpoint.node, timeout: .seconds(10))
        try expect(second != first, "[\(h.name)] reconnect returned the dead connection id")
        sender = Sender(a.endpoint, second, signalInterval: 1, harnessName: h.name)
        let v: UInt64 = 0xB2
        try withUnsafeBytes(of: v) { raw in
            try a.endpoint.post(WriteRequest(id: 0xB2, source: raw.baseAddress!, length: 8, remoteRegion: data,
                                             remoteOffset: 0, flags: [.inline, .signaled]), on: second)
        }
        let sB2 = try status(of: 0xB2, a.endpoint, &driver)
        try expect(sB2 == .success, "[\(h.name)] write on the new connection failed")
        try expect(word(b.data, 0) == 0xB2, "[\(h.name)] write on the new connection did not land")

        // Grant while connected: the writer is told, then its protected write lands.
        try b.endpoint.grantWrite(protected, to: a.endpoint.node)
        _ = try a.endpoint.waitEvent(h, "permissionChanged after grant") {
            if case .permissionChanged(let c, _, let r, let w) = $0 { return c == second && r == protected && w }
            return false
        }
        try protectedWrite(&sender, value: 0xC3)
        let sC3 = try status(of: 0xC3, a.endpoint, &driver)
        try expect(sC3 == .success, "[\(h.name)] write after grant failed")
        try expect(word(b.protected, 64) == 0xC3, "[\(h.name)] write after grant did not land")

        // A deliberate disconnect is seen by the other side, on its id of the second connection
        // (connection ids are local to each endpoint).
        var acceptedAtB: [ConnectionID] = []
        var disconnectedAtB: Set<ConnectionID> = []
        func drainB() {
            while let e = b.endpoint.pollEvent() {
                switch e {
                case .accepted(let c, let p) where p == a.endpoint.node: acceptedAtB.append(c)
                case .disconnected(let c, _, _): disconnectedAtB.insert(c)
                default: break
                }
            }
        }
        try driver.wait("both connections accepted at \(b.endpoint.node)", until: { acceptedAtB.count >= 2 }) { _ in drainB() }
        a.endpoint.disconnect(second)
        try driver.wait("disconnect of the second connection seen by the acceptor",
                        until: { disconnectedAtB.contains(acceptedAtB[1]) }) { _ in drainB() }
    }

    // MARK: - Errors

    /// A non-member is rejected with a reason, a dead address is reported unreachable within the
    /// timeout, and an unknown connection id is refused.
    static func connectionErrors(_ h: any FabricHarness) throws {
        let n = try makeNodes(h, [1, 2])
        let b = n[1]
        let outsider = try h.makeOutsider(NodeID(9))
        do {
            _ = try outsider.connect(to: b.endpoint.node, timeout: .seconds(10))
            throw fail("[\(h.name)] a non-member's connection was accepted")
        } catch let e as FabricError {
            guard case .rejected(let peer, _, let reason) = e, peer == b.endpoint.node, !reason.isEmpty else {
                throw fail("[\(h.name)] expected rejected, got \(e)")
            }
        }
        let clock = ContinuousClock()
        let start = clock.now
        do {
            _ = try n[0].endpoint.connect(to: h.unreachablePeer, timeout: .seconds(3))
            throw fail("[\(h.name)] connecting to \(h.unreachablePeer), where nothing listens, succeeded")
        } catch let e as FabricError {
            switch e {
            case .unreachable(let p, _, _) where p == h.unreachablePeer: break
            case .timedOut: break
            default: throw fail("[\(h.name)] expected unreachable or timedOut, got \(e)")
            }
        }
        try expect(clock.now - start < .seconds(10), "[\(h.name)] connect to an unreachable peer blocked \(clock.now - start) with a 3 s timeout")
        let v: UInt64 = 1
        do {
            try withUnsafeBytes(of: v) { raw in
                try n[0].endpoint.post(WriteRequest(id: 1, source: raw.baseAddress!, length: 8, remoteRegion: data,
                                                    remoteOffset: 0, flags: .inline), on: ConnectionID(4242))
            }
            throw fail("[\(h.name)] a post on an unknown connection was accepted")
        } catch let e as FabricError {
            guard case .unknownConnection = e else { throw fail("[\(h.name)] expected unknownConnection, got \(e)") }
        }
    }
}
