import Foundation
import Logging
import RamCastFabric
import Testing
@testable import RamCastRDMA

#if canImport(Glibc)
import Glibc
#endif

/// Environment of the RDMA tests. Tests that need a device run only when `RAMCAST_RDMA_DEVICE`
/// names one (e.g. `rxe0` inside `shared/rxe/rxe-vm.sh`); `RAMCAST_RDMA_ADDRESS` overrides the
/// listening IP, which otherwise comes from the device's IPv4-mapped RoCE v2 GID.
enum RDMATestSetup {
    static let environment = ProcessInfo.processInfo.environment
    static let device = environment["RAMCAST_RDMA_DEVICE"]
    static let hasDevice = device != nil
    static let needsDevice: Comment = "set RAMCAST_RDMA_DEVICE to run RDMA tests"

    static let address: String = {
        if let a = environment["RAMCAST_RDMA_ADDRESS"] { return a }
        let info = RDMAEndpoint.devices().first { $0.name == device }
        let gid = info?.ports.first?.gids.first { $0.type == "RoCE v2" && $0.ipv4 != nil }
        return gid?.ipv4 ?? "127.0.0.1"
    }()

    /// An address in the device's subnet where no host answers (inside rxe-vm.sh: 10.211.0.77).
    static var silentAddress: String {
        if let a = environment["RAMCAST_RDMA_SILENT_ADDRESS"] { return a }
        var parts = address.split(separator: ".").map(String.init)
        guard parts.count == 4 else { return "10.211.0.77" }
        parts[3] = parts[3] == "77" ? "78" : "77"
        return parts.joined(separator: ".")
    }

    private static let portLock = NSLock()
    nonisolated(unsafe) private static var port = UInt16(20_000 + Int(getpid()) % 2_000 * 8)

    /// A fresh rdma_cm port per endpoint, so tests never collide with a listener still in TIME_WAIT.
    static func nextPort() -> UInt16 {
        portLock.lock()
        defer { portLock.unlock() }
        port &+= 1
        return port
    }

    static func logger(_ label: String) -> Logger {
        var l = Logger(label: label)
        l.logLevel = environment["RAMCAST_RDMA_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        return l
    }

    static func configuration(_ directory: [NodeID: RDMAAddress], device: String? = RDMATestSetup.device) -> RDMAConfiguration {
        RDMAConfiguration(device: device, directory: directory, sendQueueDepth: 64, maxConnections: 8,
                          connectTimeout: .seconds(10))
    }

    /// Nodes 1 and 2 on this device, each listening on a fresh port.
    static func pair() throws -> (RDMAEndpoint, RDMAEndpoint) {
        let dir = [NodeID(1): RDMAAddress(host: address, port: nextPort()),
                   NodeID(2): RDMAAddress(host: address, port: nextPort())]
        return (try endpoint(1, dir), try endpoint(2, dir))
    }

    static func endpoint(_ node: UInt32, _ directory: [NodeID: RDMAAddress]) throws -> RDMAEndpoint {
        try RDMAEndpoint(node: NodeID(node), configuration: configuration(directory), logger: logger("rdma.\(node)"))
    }
}

struct Timeout: Error, CustomStringConvertible {
    var description: String
}

/// Polls until `done` holds, failing after `timeout`.
func waitUntil(_ what: String, timeout: Duration = .seconds(20), _ done: () throws -> Bool) throws {
    let clock = ContinuousClock()
    let start = clock.now
    while try !done() {
        if clock.now - start > timeout { throw Timeout(description: "timed out after \(timeout) waiting for \(what)") }
        sched_yield()
    }
}

extension RDMAEndpoint {
    func waitEvent(_ what: String, timeout: Duration = .seconds(20), _ match: (FabricEvent) -> Bool) throws -> FabricEvent {
        var found: FabricEvent?
        try waitUntil(what, timeout: timeout) {
            while let e = pollEvent() {
                if match(e) { found = e; return true }
            }
            return false
        }
        return found!
    }

    /// Polls completions until the one for write `id` shows up and returns it.
    func completion(of id: UInt64, timeout: Duration = .seconds(20)) throws -> Completion {
        var buffer = [Completion](repeating: Completion(id: 0, connection: ConnectionID(0), status: .success), count: 32)
        var found: Completion?
        try waitUntil("completion of write \(id)", timeout: timeout) {
            let n = buffer.withUnsafeMutableBufferPointer { pollCompletions(into: $0) }
            for c in buffer[0..<n] where c.id == id { found = c }
            return found != nil
        }
        return found!
    }

    func acceptedConnection(from peer: NodeID) throws -> ConnectionID {
        let e = try waitEvent("accepted from \(peer)") {
            if case .accepted(_, let p) = $0 { return p == peer }
            return false
        }
        guard case .accepted(let c, _) = e else { fatalError() }
        return c
    }

    func writeWord(_ value: UInt64, id: UInt64, region: RegionID, offset: Int, flags: WriteFlags, on conn: ConnectionID) throws {
        try withUnsafeBytes(of: value) { raw in
            try post(WriteRequest(id: id, source: raw.baseAddress!, length: 8, remoteRegion: region,
                                  remoteOffset: offset, flags: flags.union(.inline)), on: conn)
        }
    }
}

/// The FabricError `body` threw, nil if it threw nothing; any other error is recorded as an issue.
func caught(_ body: () throws -> Void) -> FabricError? {
    do {
        try body()
        return nil
    } catch let e as FabricError {
        return e
    } catch {
        Issue.record("unexpected error \(error)")
        return nil
    }
}

func word(_ region: LocalRegion, _ offset: Int) -> UInt64 {
    RemoteMemory.loadAcquiring(region.base + offset)
}

@Suite("RDMA fabric errors", .serialized)
struct RDMAErrorTests {
    // MARK: - Runs everywhere

    @Test("no device: init throws .noDevice naming what exists")
    func noDevice() throws {
        let dir = [NodeID(1): RDMAAddress(host: "127.0.0.1", port: RDMATestSetup.nextPort())]
        if RDMATestSetup.hasDevice || !RDMAEndpoint.devices().isEmpty {
            let real = RDMAEndpoint.devices().map(\.name)
            let error = caught {
                _ = try RDMAEndpoint(node: NodeID(1), configuration: RDMATestSetup.configuration(dir, device: "nosuch0"),
                                     logger: RDMATestSetup.logger("rdma.nodevice"))
            }
            #expect(error == .noDevice(requested: "nosuch0", available: real))
            #expect(real.contains(RDMATestSetup.device ?? real.first ?? ""))
            #expect(error?.description.contains("nosuch0") == true)
        } else {
            #expect(RDMAEndpoint.devices().isEmpty)
            let error = caught {
                _ = try RDMAEndpoint(node: NodeID(1), configuration: RDMATestSetup.configuration(dir, device: nil),
                                     logger: RDMATestSetup.logger("rdma.nodevice"))
            }
            #expect(error == .noDevice(requested: nil, available: []))
            #expect(error?.description.contains("no RDMA device") == true)
        }
    }

    @Test("memlock check: refuses past RLIMIT_MEMLOCK unless CAP_IPC_LOCK or unlimited")
    func memlockCheck() throws {
        let low = MemlockStatus(limit: 64 << 10, hasIPCLock: false)
        #expect(throws: FabricError.memlockLimitTooLow(requested: 1 << 20, limit: 64 << 10, alreadyLocked: 0)) {
            try low.check(requested: 1 << 20, alreadyLocked: 0)
        }
        #expect(throws: FabricError.memlockLimitTooLow(requested: 8192, limit: 64 << 10, alreadyLocked: 60 << 10)) {
            try low.check(requested: 8192, alreadyLocked: 60 << 10)
        }
        try low.check(requested: 32 << 10, alreadyLocked: 32 << 10)       // exactly at the limit fits
        try MemlockStatus(limit: 64 << 10, hasIPCLock: true).check(requested: 1 << 30, alreadyLocked: 1 << 30)
        try MemlockStatus(limit: nil, hasIPCLock: false).check(requested: 1 << 30, alreadyLocked: 0)
        let e = FabricError.memlockLimitTooLow(requested: 1 << 20, limit: 64 << 10, alreadyLocked: 0)
        #expect(e.description.contains("RLIMIT_MEMLOCK"))
        // The probe of this process's own status must not fail, whatever it says.
        _ = MemlockStatus.current()
    }

    @Test("private data: connect fits 3 regions in 56 bytes, reject reasons survive truncation")
    func wireFormat() throws {
        var regions: [Wire.Descriptor] = []
        for i in 0..<3 {
            let address: UInt64 = 0x7fff_1234_5000 + UInt64(i) << 20
            let length = UInt32(4096 * (i + 1))
            let rkey: UInt32 = 0xdead_0000 + UInt32(i)
            regions.append(Wire.Descriptor(region: RegionID(UInt8(i)), address: address, length: length, rkey: rkey, guarded: i == 1))
        }
        let bytes = Wire.encodeHello(Wire.Hello(node: NodeID(7), regions: regions))
        #expect(bytes.count == Wire.connectCapacity)
        // The guarded flag rides in bit 7 of the region byte of descriptor 1 only.
        #expect(bytes[Wire.headerSize] == 0 && bytes[Wire.headerSize + Wire.descriptorSize] == 0x81)
        // rdma_cm pads private data with zeros: decoding must ignore the padding.
        let padded = bytes + [UInt8](repeating: 0, count: 40)
        let hello = try padded.withUnsafeBytes { try Wire.decodeHello($0) }
        #expect(hello == Wire.Hello(node: NodeID(7), regions: regions))
        let reason = String(repeating: "é", count: 100)
        let rej = Wire.encodeReject(node: NodeID(2), reason: reason)
        #expect(rej.count <= Wire.rejectCapacity)
        let decoded = rej.withUnsafeBytes { Wire.decodeReject($0) }
        #expect(decoded?.node == NodeID(2))
        #expect(decoded.map { reason.hasPrefix($0.reason) && !$0.reason.isEmpty } == true)
        let key = Wire.KeyUpdate(node: NodeID(3), descriptor: regions[1], writable: true)
        let msg = Wire.encodeKeyUpdate(key)
        #expect(msg.count == Wire.controlMessageSize)
        #expect(try msg.withUnsafeBytes { try Wire.decodeKeyUpdate($0) } == key)
        #expect(throws: Wire.DecodeError.self) { try [UInt8](repeating: 1, count: 8).withUnsafeBytes { try Wire.decodeHello($0) } }
    }

    @Test("private data: a peer of protocol version 1 or 2 (8-byte acks, 16-bit epochs) is refused by name")
    func wireVersion() throws {
        var old = Wire.encodeHello(Wire.Hello(node: NodeID(4), regions: []))
        #expect(old[2] == 3)
        for v: UInt8 in [1, 2] {
            old[2] = v
            #expect(throws: Wire.DecodeError.badVersion(v)) { try old.withUnsafeBytes { try Wire.decodeHello($0) } }
        }
        #expect(Wire.DecodeError.badVersion(2).description == "protocol version 2 is not supported (expected 3)")
    }

    @Test("private data: the restart flag rides in bit 7 of the count byte, a full REQ still fits 56 bytes")
    func wireRestartFlag() throws {
        let regions = (0..<Wire.maxConnectRegions).map {
            Wire.Descriptor(region: RegionID(UInt8($0)), address: 0x7fff_0000_1000 + UInt64($0) << 16, length: 4096, rkey: 0xbeef + UInt32($0))
        }
        let plain = Wire.encodeHello(Wire.Hello(node: NodeID(5), regions: regions))
        let flagged = Wire.encodeHello(Wire.Hello(node: NodeID(5), regions: regions, restarted: true))
        #expect(flagged.count == Wire.connectCapacity)
        // Only bit 7 of byte 3 differs: a connector that never restarts sends the old bytes.
        #expect(plain[3] == UInt8(regions.count) && flagged[3] == 0x80 | UInt8(regions.count))
        #expect(Array(plain[0..<3]) + Array(plain[4...]) == Array(flagged[0..<3]) + Array(flagged[4...]))
        let padded = flagged + [UInt8](repeating: 0, count: 40)
        #expect(try padded.withUnsafeBytes { try Wire.decodeHello($0) } == Wire.Hello(node: NodeID(5), regions: regions, restarted: true))
        #expect(try plain.withUnsafeBytes { try Wire.decodeHello($0) }.restarted == false)
        let empty = Wire.encodeHello(Wire.Hello(node: NodeID(6), regions: [], restarted: true))
        #expect(empty.count == Wire.headerSize)
        #expect(try empty.withUnsafeBytes { try Wire.decodeHello($0) } == Wire.Hello(node: NodeID(6), regions: [], restarted: true))
        let full = (0..<Wire.maxAcceptRegions).map { Wire.Descriptor(region: RegionID(UInt8($0)), address: 4096, length: 1, rkey: 1) }
        let rep = Wire.encodeHello(Wire.Hello(node: NodeID(7), regions: full))
        #expect(rep.count == Wire.headerSize + Wire.maxAcceptRegions * Wire.descriptorSize && rep.count <= Wire.acceptCapacity)
        #expect(try rep.withUnsafeBytes { try Wire.decodeHello($0) }.regions == full)
        // Past 11 descriptors (with or without the flag) the count cannot be real.
        for byte: UInt8 in [UInt8(Wire.maxAcceptRegions + 1), 0x80 | UInt8(Wire.maxAcceptRegions + 1), 0xFF] {
            var bad = Wire.header(count: byte, node: NodeID(1))
            bad += [UInt8](repeating: 0, count: 2100)
            #expect(throws: Wire.DecodeError.tooManyRegions(Int(byte & 0x7F))) { try bad.withUnsafeBytes { try Wire.decodeHello($0) } }
        }
        // The flag's 3 descriptors still have to be there.
        #expect(throws: Wire.DecodeError.badLength(expected: Wire.connectCapacity, got: 40)) {
            try Array(flagged.prefix(40)).withUnsafeBytes { try Wire.decodeHello($0) }
        }
    }

    // MARK: - Need a device

    @Test("devices(): the configured device is listed with an active port, a RoCE v2 GID and a probed inline limit",
          .enabled(if: RDMATestSetup.hasDevice, RDMATestSetup.needsDevice))
    func devices() throws {
        let all = RDMAEndpoint.devices()
        let info = try #require(all.first { $0.name == RDMATestSetup.device })
        let port = try #require(info.ports.first)
        #expect(port.isActive)
        #expect(port.activeMTU >= 256)
        let hasMappedGID = port.gids.contains { $0.type == "RoCE v2" && $0.ipv4 == RDMATestSetup.address }
        #expect(hasMappedGID || RDMATestSetup.environment["RAMCAST_RDMA_ADDRESS"] != nil)
        let inline = try #require(info.maxInlineBytes)
        #expect(inline >= 0)
        print("RDMA-INFO device \(info.name): fw \(info.firmware), port 1 \(port.state) mtu \(port.activeMTU) \(port.linkLayer), max inline probed \(inline) (provider granted \(info.maxInlineGranted ?? -1)), gids \(port.gids.map { "\($0.index)=\($0.gid) \($0.type)" })")
    }

    @Test("writes land: inline, non-inline, chains; bad requests are refused before posting",
          .enabled(if: RDMATestSetup.hasDevice, RDMATestSetup.needsDevice))
    func writesLand() throws {
        let (a, b) = try RDMATestSetup.pair()
        defer { a.close(); b.close() }
        let staging = try a.register(RegionID(2), length: 1 << 16, remoteAccess: .anyPeer)
        let target = try b.register(RegionID(0), length: 1 << 16, remoteAccess: .anyPeer)
        _ = try a.register(RegionID(0), length: 4096, remoteAccess: .anyPeer)
        #expect(throws: FabricError.self) { try a.register(RegionID(0), length: 4096, remoteAccess: .anyPeer) }

        let conn = try a.connect(to: NodeID(2), timeout: .seconds(10))
        #expect(a.peer(of: conn) == NodeID(2))
        let back = try b.acceptedConnection(from: NodeID(1))
        #expect(b.peer(of: back) == NodeID(1))

        // A chain: non-inline 4 KiB from registered memory, then two inline words, one post.
        for i in 0..<4096 { staging.base.storeBytes(of: UInt8(truncatingIfNeeded: i * 7), toByteOffset: i, as: UInt8.self) }
        let one: UInt64 = 0x0101, two: UInt64 = 0x0202
        try withUnsafeBytes(of: one) { p1 in
            try withUnsafeBytes(of: two) { p2 in
                let chain = [
                    WriteRequest(id: 1, source: staging.base, length: 4096, remoteRegion: RegionID(0), remoteOffset: 8192),
                    WriteRequest(id: 2, source: p1.baseAddress!, length: 8, remoteRegion: RegionID(0), remoteOffset: 0, flags: .inline),
                    WriteRequest(id: 3, source: p2.baseAddress!, length: 8, remoteRegion: RegionID(0), remoteOffset: 8, flags: [.inline, .signaled]),
                ]
                try chain.withUnsafeBufferPointer { try a.post($0, on: conn) }
            }
        }
        #expect(try a.completion(of: 3).status == .success)
        #expect(word(target, 0) == one && word(target, 8) == two)
        #expect(memcmp(staging.base, target.base + 8192, 4096) == 0)

        // Back the other way, on the accepted connection.
        try b.writeWord(0xB0B, id: 9, region: RegionID(2), offset: 64, flags: .signaled, on: back)
        #expect(try b.completion(of: 9).status == .success)
        #expect(word(staging, 64) == 0xB0B)

        // Refused before posting.
        let junk = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 8)
        defer { junk.deallocate() }
        func refused(_ w: WriteRequest) -> FabricError? {
            caught { try a.post(w, on: conn) }
        }
        let tooLong = a.limits.maxInlineBytes + 1
        for (w, what) in [
            (WriteRequest(id: 10, source: junk, length: 8, remoteRegion: RegionID(0), remoteOffset: (1 << 16) - 4, flags: .inline), "past the end"),
            (WriteRequest(id: 11, source: junk, length: 8, remoteRegion: RegionID(5), remoteOffset: 0, flags: .inline), "unknown region"),
            (WriteRequest(id: 12, source: junk, length: 64, remoteRegion: RegionID(0), remoteOffset: 0), "unregistered source"),
            (WriteRequest(id: 13, source: junk, length: tooLong, remoteRegion: RegionID(0), remoteOffset: 0, flags: .inline), "inline too long"),
        ] {
            guard case .invalidWrite = refused(w) else { Issue.record("\(what) was not refused as invalidWrite"); continue }
        }
        #expect(throws: FabricError.unknownConnection(ConnectionID(4242))) {
            try a.writeWord(1, id: 14, region: RegionID(0), offset: 0, flags: [], on: ConnectionID(4242))
        }

        // Send queue accounting: depth writes fit (the last one signaled), one more does not, and
        // the signaled completion retires all of them.
        let depth = a.limits.sendQueueDepth
        for i in 0..<depth {
            try a.writeWord(UInt64(i), id: 100 + UInt64(i), region: RegionID(0), offset: 16, flags: i == depth - 1 ? .signaled : [], on: conn)
        }
        let full = caught { try a.writeWord(0, id: 999, region: RegionID(0), offset: 16, flags: [], on: conn) }
        #expect(full == .sendQueueFull(conn, outstanding: depth, requested: 1, depth: depth))
        #expect(try a.completion(of: 100 + UInt64(depth - 1)).status == .success)
        try a.writeWord(0xFEED, id: 1000, region: RegionID(0), offset: 16, flags: .signaled, on: conn)
        #expect(try a.completion(of: 1000).status == .success)
        #expect(word(target, 16) == 0xFEED)

        a.disconnect(conn)
        _ = try b.waitEvent("disconnect seen by the acceptor") {
            if case .disconnected(let c, let p, _) = $0 { return c == back && p == NodeID(1) }
            return false
        }
        #expect(throws: FabricError.unknownConnection(conn)) { try a.writeWord(1, id: 1, region: RegionID(0), offset: 0, flags: [], on: conn) }
    }

    @Test("rejected: a node missing from the acceptor's directory gets .rejected with the reason",
          .enabled(if: RDMATestSetup.hasDevice, RDMATestSetup.needsDevice))
    func rejected() throws {
        let ip = RDMATestSetup.address
        let addrB = RDMAAddress(host: ip, port: RDMATestSetup.nextPort())
        let b = try RDMATestSetup.endpoint(2, [NodeID(2): addrB, NodeID(1): RDMAAddress(host: ip, port: RDMATestSetup.nextPort())])
        let outsider = try RDMATestSetup.endpoint(9, [NodeID(9): RDMAAddress(host: ip, port: RDMATestSetup.nextPort()), NodeID(2): addrB])
        defer { outsider.close(); b.close() }
        let error = caught { _ = try outsider.connect(to: NodeID(2), timeout: .seconds(10)) }
        guard case .rejected(let peer, let address, let reason)? = error else {
            Issue.record("expected .rejected, got \(String(describing: error))")
            return
        }
        #expect(peer == NodeID(2))
        #expect(address == addrB.description)
        #expect(reason.contains("node 9 is not in the directory of node 2"))
        print("RDMA-INFO rejected: \(error!)")
        #expect(b.pollEvent() == nil)
    }

    @Test("unreachable: a silent address times out within the timeout; an address with no listener is unreachable",
          .enabled(if: RDMATestSetup.hasDevice, RDMATestSetup.needsDevice))
    func unreachable() throws {
        let ip = RDMATestSetup.address
        let dir = [NodeID(1): RDMAAddress(host: ip, port: RDMATestSetup.nextPort()),
                   NodeID(77): RDMAAddress(host: RDMATestSetup.silentAddress, port: 7471),
                   NodeID(78): RDMAAddress(host: ip, port: RDMATestSetup.nextPort())]
        let a = try RDMATestSetup.endpoint(1, dir)
        defer { a.close() }
        let clock = ContinuousClock()
        var start = clock.now
        let silent = caught { _ = try a.connect(to: NodeID(77), timeout: .seconds(2)) }
        switch silent {
        case .unreachable(NodeID(77), _, _)?, .timedOut?: break
        default: Issue.record("expected .unreachable or .timedOut, got \(String(describing: silent))")
        }
        print("RDMA-INFO silent peer after \(clock.now - start): \(String(describing: silent))")
        #expect(clock.now - start < .seconds(5))

        start = clock.now
        let noListener = caught { _ = try a.connect(to: NodeID(78), timeout: .seconds(5)) }
        guard case .unreachable(NodeID(78), _, let reason)? = noListener else {
            Issue.record("expected .unreachable, got \(String(describing: noListener))")
            return
        }
        #expect(reason.contains("nothing listens"))
        print("RDMA-INFO no listener after \(clock.now - start): \(noListener!)")
        #expect(clock.now - start < .seconds(5))
    }

    @Test("error state: revoke → REM_ACCESS_ERR, nothing lands, posts refused; reconnect works; grant reaches the writer",
          .enabled(if: RDMATestSetup.hasDevice, RDMATestSetup.needsDevice))
    func revokeReconnectGrant() throws {
        let (a, b) = try RDMATestSetup.pair()
        defer { a.close(); b.close() }
        _ = try a.register(RegionID(0), length: 4096, remoteAccess: .anyPeer)
        let data = try b.register(RegionID(0), length: 4096, remoteAccess: .anyPeer)
        let protected = try b.register(RegionID(1), length: 1 << 20, remoteAccess: .grantedPeers)
        let ts = RegionID(1)
        let clock = ContinuousClock()

        #expect(throws: FabricError.self) { try b.grantWrite(RegionID(0), to: NodeID(1)) }   // anyPeer: no grants
        try b.grantWrite(ts, to: NodeID(1))        // before connecting: the key travels in the accept data
        let first = try a.connect(to: NodeID(2), timeout: .seconds(10))
        let firstAtB = try b.acceptedConnection(from: NodeID(1))
        try a.writeWord(0x1111, id: 1, region: ts, offset: 64, flags: .signaled, on: first)
        #expect(try a.completion(of: 1).status == .success)
        #expect(word(protected, 64) == 0x1111)

        var t = clock.now
        try b.revokeWrite(ts, from: NodeID(1))
        let revokeTime = clock.now - t
        try a.writeWord(0x2222, id: 2, region: ts, offset: 64, flags: [], on: first)    // unsignaled on purpose
        #expect(try a.completion(of: 2).status == .remoteAccessError)
        #expect(word(protected, 64) == 0x1111, "a revoked writer's data landed")
        let dead = caught { try a.writeWord(0x3333, id: 3, region: RegionID(0), offset: 0, flags: .signaled, on: first) }
        guard case .connectionInErrorState(first, NodeID(2), let cause)? = dead else {
            Issue.record("expected connectionInErrorState, got \(String(describing: dead))")
            return
        }
        #expect(cause.contains("IBV_WC_REM_ACCESS_ERR"))
        _ = try a.waitEvent("disconnected at the writer") {
            if case .disconnected(first, NodeID(2), _) = $0 { return true }
            return false
        }
        _ = try b.waitEvent("disconnected at the owner") {
            if case .disconnected(firstAtB, NodeID(1), _) = $0 { return true }
            return false
        }

        // Reconnect: unprotected writes work, protected ones wait for a grant.
        let second = try a.connect(to: NodeID(2), timeout: .seconds(10))
        #expect(second != first)
        try a.writeWord(0xB2, id: 4, region: RegionID(0), offset: 0, flags: .signaled, on: second)
        #expect(try a.completion(of: 4).status == .success)
        #expect(word(data, 0) == 0xB2)

        t = clock.now
        try b.grantWrite(ts, to: NodeID(1))
        let grantTime = clock.now - t
        _ = try a.waitEvent("permissionChanged at the writer") {
            if case .permissionChanged(second, NodeID(2), ts, true) = $0 { return true }
            return false
        }
        let delivered = clock.now - t
        try a.writeWord(0xC3, id: 5, region: ts, offset: 64, flags: .signaled, on: second)
        #expect(try a.completion(of: 5).status == .success)
        #expect(word(protected, 64) == 0xC3)

        // The fast path again, to time a revoke on a region that just carried writes.
        t = clock.now
        try b.revokeWrite(ts, from: NodeID(1))
        let revokeTime2 = clock.now - t
        try a.writeWord(0xD4, id: 6, region: ts, offset: 64, flags: .signaled, on: second)
        #expect(try a.completion(of: 6).status == .remoteAccessError)
        #expect(word(protected, 64) == 0xC3)
        print("RDMA-INFO 1 MiB region: revoke (ibv_dereg_mr) \(revokeTime), \(revokeTime2); grant (ibv_reg_mr) \(grantTime), key delivered to the writer after \(delivered)")
    }

    @Test("grant: an rkey a revoked, still connected peer holds is never handed to another peer",
          .enabled(if: RDMATestSetup.hasDevice, RDMATestSetup.needsDevice))
    func grantSkipsRevokedKeys() throws {
        let ip = RDMATestSetup.address
        let dir = [NodeID(1): RDMAAddress(host: ip, port: RDMATestSetup.nextPort()),
                   NodeID(2): RDMAAddress(host: ip, port: RDMATestSetup.nextPort()),
                   NodeID(3): RDMAAddress(host: ip, port: RDMATestSetup.nextPort())]
        let (a, b, c) = (try RDMATestSetup.endpoint(1, dir), try RDMATestSetup.endpoint(2, dir), try RDMATestSetup.endpoint(3, dir))
        defer { a.close(); b.close(); c.close() }
        let ts = RegionID(1)
        let protected = try b.register(ts, length: 4096, remoteAccess: .grantedPeers)
        try b.grantWrite(ts, to: NodeID(1))
        let conn = try a.connect(to: NodeID(2), timeout: .seconds(10))
        try a.writeWord(0x1111, id: 1, region: ts, offset: 64, flags: .signaled, on: conn)
        #expect(try a.completion(of: 1).status == .success)
        let stale = try #require(b.regions.first { $0.region.id == ts }?.peerMRs[NodeID(1)]).pointee.rkey

        // Node 1 stays connected with the revoked key; the device hands that key out again.
        try b.revokeWrite(ts, from: NodeID(1))
        #expect(b.regions.first { $0.region.id == ts }?.revokedKeys.map(\.rkey) == [stale])
        b.keyCollisionsForTesting = 1
        try b.grantWrite(ts, to: NodeID(3))
        let granted = try #require(b.control.advertisedRegion(ts)?.peerRkeys[NodeID(3)])
        #expect(granted != stale, "node 3 was granted the rkey node 1 still holds after its revoke")

        // The grantee's key works; the revoked writer's does not, and nothing of it lands.
        let cb = try c.connect(to: NodeID(2), timeout: .seconds(10))
        try c.writeWord(0x3333, id: 3, region: ts, offset: 128, flags: .signaled, on: cb)
        #expect(try c.completion(of: 3).status == .success)
        #expect(word(protected, 128) == 0x3333)
        try a.writeWord(0x2222, id: 2, region: ts, offset: 64, flags: .signaled, on: conn)
        #expect(try a.completion(of: 2).status == .remoteAccessError)
        #expect(word(protected, 64) == 0x1111, "a revoked writer's data landed")
    }

    @Test("memlock: a registration past RLIMIT_MEMLOCK fails as .memlockLimitTooLow in a child without CAP_IPC_LOCK",
          .enabled(if: RDMATestSetup.hasDevice, RDMATestSetup.needsDevice))
    func memlockInLoweredChild() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv"),
              FileManager.default.isExecutableFile(atPath: "/usr/bin/prlimit") else {
            Issue.record("setpriv/prlimit (util-linux) not found: cannot drop CAP_IPC_LOCK for the child")
            return
        }
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        // Root keeps CAP_IPC_LOCK (which bypasses the limit) unless it leaves the bounding set;
        // prlimit then lowers the limit for the test binary it execs.
        child.arguments = ["--inh-caps=-ipc_lock", "--bounding-set=-ipc_lock", "--",
                           "/usr/bin/prlimit", "--memlock=262144:262144", "--",
                           CommandLine.arguments[0], "--testing-library", "swift-testing", "--filter", "memlockChildBody"]
        var env = ProcessInfo.processInfo.environment
        env["RAMCAST_MEMLOCK_CHILD"] = "1"
        child.environment = env
        let out = Pipe()
        child.standardOutput = out
        child.standardError = out
        try child.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        child.waitUntilExit()
        print(text.split(separator: "\n").filter { $0.contains("MEMLOCK-CHILD") }.joined(separator: "\n"))
        #expect(child.terminationStatus == 0, "child output:\n\(text)")
        #expect(text.contains("MEMLOCK-CHILD-OK"), "child output:\n\(text)")
    }

    /// Runs only as the child of ``memlockInLoweredChild()``.
    @Test(.enabled(if: RDMATestSetup.environment["RAMCAST_MEMLOCK_CHILD"] == "1", "runs only in the child process of memlockInLoweredChild"))
    func memlockChildBody() throws {
        let status = MemlockStatus.current()
        #expect(!status.hasIPCLock, "CAP_IPC_LOCK was not dropped")
        #expect(status.limit == 262_144)
        let ip = RDMATestSetup.address
        let a = try RDMATestSetup.endpoint(1, [NodeID(1): RDMAAddress(host: ip, port: RDMATestSetup.nextPort())])
        defer { a.close() }
        let already = PinnedMemoryAccount.shared.current
        // Our check refuses before the kernel is asked.
        #expect(throws: FabricError.memlockLimitTooLow(requested: 1 << 20, limit: 262_144, alreadyLocked: already)) {
            try a.register(RegionID(0), length: 1 << 20, remoteAccess: .anyPeer)
        }
        // Without it, the kernel refuses in ibv_reg_mr (ENOMEM), and that maps to the same error.
        a.skipMemlockCheckForTesting = true
        let kernelError = caught { _ = try a.register(RegionID(0), length: 1 << 20, remoteAccess: .anyPeer) }
        guard case .memlockLimitTooLow(1 << 20, 262_144, _)? = kernelError else {
            Issue.record("ibv_reg_mr past the limit gave \(String(describing: kernelError))")
            return
        }
        a.skipMemlockCheckForTesting = false
        // What fits still registers.
        _ = try a.register(RegionID(1), length: 64 << 10, remoteAccess: .anyPeer)
        print("MEMLOCK-CHILD-OK limit \(status.limit ?? -1), kernel refusal: \(kernelError!)")
    }
}
