import CRamCastVerbs
import Logging
import RamCastFabric

#if canImport(Glibc)
import Glibc
#endif

/// The peer's key for one of its regions, as this side writes it.
struct RemoteKey {
    var address: UInt64 = 0
    /// 0: the peer has no such region (regions are never empty).
    var length: UInt32 = 0
    var rkey: UInt32 = 0
    /// The peer guards the region with per-peer keys: see `RDMAEndpoint.post`.
    var guarded = false
}

/// A signaled work request not yet seen completed: the counts of user writes and control sends
/// posted up to and including it. Its completion retires everything up to those counts.
struct SignalMark {
    var userCount: UInt64
    var controlCount: UInt64
    var isControl: Bool
}

/// One connection slot, owned by the polling thread. Slots are allocated once, at init, with their
/// key table and signal ring, so installing a connection and posting on it allocate nothing.
final class Connection {
    enum Phase: UInt8 {
        case free
        /// Accepted by the control thread, not yet established.
        case pending
        case open
        /// An error completion, a failed post or the peer's disconnect killed it.
        case failed
        /// ``RDMAEndpoint/disconnect(_:)`` was called.
        case closedByUser
    }

    let index: Int
    var id = ConnectionID(0)
    var phase = Phase.free
    var peer = NodeID(0)
    var address = ""
    var cmId: UnsafeMutablePointer<rdma_cm_id>?
    var qp: UnsafeMutablePointer<ibv_qp>?
    /// Known to the user: at once for connections we initiated, at ESTABLISHED for accepted ones.
    var userVisible = false
    var disconnectReported = false
    /// Set by pollCompletions (which must not allocate or make syscalls): pollEvent then reports
    /// the disconnect and calls rdma_disconnect so the peer learns too.
    var noticePending = false
    /// The completion status that failed the connection, or nil if something else did.
    var failureStatus: UInt32?
    var failureText: String?
    /// Accepted connections only: the connector announced a restart, so ESTABLISHED is reported as
    /// ``FabricEvent/restarted(_:peer:)``.
    var peerRestarted = false
    /// Regions whose current key still has to be sent to the peer in a control SEND.
    var dirtyRegions: [RegionID] = []

    /// Indexed by `RegionID.rawValue`, so the write path does no hashing.
    let remote: UnsafeMutablePointer<RemoteKey>

    // Send-queue accounting (see `SignalMark`).
    var userPosted: UInt64 = 0
    var userRetired: UInt64 = 0
    var controlPosted: UInt64 = 0
    var controlRetired: UInt64 = 0
    let ring: UnsafeMutablePointer<SignalMark>
    let ringCapacity: Int
    var ringHead = 0
    var ringCount = 0

    init(index: Int, ringCapacity: Int) {
        self.index = index
        self.ringCapacity = ringCapacity
        remote = .allocate(capacity: 256)
        remote.initialize(repeating: RemoteKey(), count: 256)
        ring = .allocate(capacity: ringCapacity)
        ring.initialize(repeating: SignalMark(userCount: 0, controlCount: 0, isControl: false), count: ringCapacity)
        dirtyRegions.reserveCapacity(8)
    }

    deinit {
        remote.deallocate()
        ring.deallocate()
    }

    var isLive: Bool { phase == .pending || phase == .open }

    var cause: String {
        if let failureStatus { return WCStatus.cause(failureStatus) }
        return failureText ?? "connection closed"
    }

    func install(id: ConnectionID, peer: NodeID, address: String, cmId: UnsafeMutablePointer<rdma_cm_id>,
                 qp: UnsafeMutablePointer<ibv_qp>, phase: Phase, remote descriptors: [Wire.Descriptor],
                 peerRestarted: Bool = false) {
        self.id = id
        self.peer = peer
        self.address = address
        self.cmId = cmId
        self.qp = qp
        self.phase = phase
        userVisible = phase == .open
        self.peerRestarted = peerRestarted
        disconnectReported = false
        noticePending = false
        failureStatus = nil
        failureText = nil
        dirtyRegions.removeAll(keepingCapacity: true)
        remote.update(repeating: RemoteKey(), count: 256)
        for d in descriptors { setRemote(d) }
        userPosted = 0
        userRetired = 0
        controlPosted = 0
        controlRetired = 0
        ringHead = 0
        ringCount = 0
    }

    func setRemote(_ d: Wire.Descriptor) {
        remote[Int(d.region.rawValue)] = RemoteKey(address: d.address, length: d.length, rkey: d.rkey, guarded: d.guarded)
    }

    @inline(__always) var outstandingUserWrites: Int { Int(truncatingIfNeeded: userPosted &- userRetired) }
    @inline(__always) var outstandingControlSends: Int { Int(truncatingIfNeeded: controlPosted &- controlRetired) }

    @inline(__always)
    func pushMark(_ m: SignalMark) {
        // Cannot overflow: signaled requests in flight never exceed the queue pair's send depth,
        // which is the ring's capacity.
        ring[(ringHead + ringCount) % ringCapacity] = m
        ringCount += 1
    }

    /// A successful signaled completion: the oldest signaled request finished, and with it every
    /// request posted before it. Returns whether it was a control SEND (not reported to the user).
    @inline(__always)
    func retireOldestSignaled() -> Bool {
        guard ringCount > 0 else { return false }
        let m = ring[ringHead]
        ringHead = ringHead + 1 == ringCapacity ? 0 : ringHead + 1
        ringCount -= 1
        userRetired = m.userCount
        controlRetired = m.controlCount
        return m.isControl
    }
}

extension RDMAEndpoint {
    /// Opens a connection with the configured ``RDMAConfiguration/connectTimeout``.
    public func connect(to peer: NodeID) throws(FabricError) -> ConnectionID {
        try connect(to: peer, timeout: configuration.connectTimeout)
    }

    /// Opens an RC connection to `peer` through rdma_cm: `rdma_resolve_addr`, `rdma_resolve_route`,
    /// `rdma_create_qp`, then `rdma_connect` with this node's id and region keys as private data
    /// (flagged as a restart while ``announcesRestart`` is set).
    ///
    /// Every step waits on a private event channel with the time left, so the call returns within
    /// `timeout` (plus the time to destroy the half-open id). Once established, the id moves to the
    /// endpoint's shared channel (`rdma_migrate_id`), where the control thread sees its disconnect.
    public func connect(to peer: NodeID, timeout: Duration) throws(FabricError) -> ConnectionID {
        guard !closed else { throw .closed }
        guard let address = configuration.directory[peer] else {
            throw .unreachable(peer: peer, address: "none", reason: "\(peer) has no address in the directory of \(node)")
        }
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        guard let (slotIndex, conn) = control.allocateSlot() else {
            throw .systemCall(call: "rdma_create_id", errno: ENOSPC,
                              message: "all \(configuration.maxConnections) connection slots are in use (RDMAConfiguration.maxConnections)")
        }
        var err: Int32 = 0
        guard let channel = CRamCastVerbs_cm_create_channel(&err) else {
            control.freeSlot(slotIndex)
            throw VerbsError.systemCall("rdma_create_event_channel", err)
        }
        guard let id = CRamCastVerbs_cm_create_id(channel, ControlWorkRequest.context(conn), &err) else {
            CRamCastVerbs_cm_destroy_channel(channel)
            control.freeSlot(slotIndex)
            throw VerbsError.systemCall("rdma_create_id", err)
        }
        var established = false
        defer {
            if !established {
                CRamCastVerbs_cm_destroy_qp(id)
                _ = CRamCastVerbs_cm_destroy_id(id)
                CRamCastVerbs_cm_destroy_channel(channel)
                control.freeSlot(slotIndex)
            }
        }
        func unreachable(_ reason: String) -> FabricError {
            .unreachable(peer: peer, address: address.description, reason: reason)
        }
        func remainingMilliseconds() -> Int32 {
            let left = deadline - clock.now
            let ms = left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000
            return Int32(clamping: max(ms, 0))
        }
        /// Waits for the next event on the private channel, throwing `.timedOut` at the deadline.
        func next(_ waitingFor: String, _ ev: inout CRamCastVerbs_CMEvent) throws(FabricError) {
            while true {
                let ms = remainingMilliseconds()
                if ms <= 0 {
                    throw .timedOut(operation: "connect to \(peer) at \(address) (\(waitingFor))", seconds: seconds)
                }
                let rc = CRamCastVerbs_cm_wait_event(channel, -1, ms, &ev)
                if rc == 1 { return }
                if rc < 0 { throw VerbsError.systemCall("rdma_get_cm_event", rc) }
            }
        }

        var ev = CRamCastVerbs_CMEvent()
        var rc = CRamCastVerbs_cm_resolve_addr(id, address.host, address.port, max(1, remainingMilliseconds()))
        guard rc == 0 else { throw unreachable("rdma_resolve_addr: \(VerbsError.message(-rc))") }
        try next("RDMA_CM_EVENT_ADDR_RESOLVED", &ev)
        guard UInt32(bitPattern: ev.event) == RDMA_CM_EVENT_ADDR_RESOLVED.rawValue else {
            throw unreachable("address resolution failed: \(CMText.event(ev.event)), \(CMText.status(ev.status))")
        }
        rc = CRamCastVerbs_cm_resolve_route(id, max(1, remainingMilliseconds()))
        guard rc == 0 else { throw unreachable("rdma_resolve_route: \(VerbsError.message(-rc))") }
        try next("RDMA_CM_EVENT_ROUTE_RESOLVED", &ev)
        guard UInt32(bitPattern: ev.event) == RDMA_CM_EVENT_ROUTE_RESOLVED.rawValue else {
            throw unreachable("route resolution failed: \(CMText.event(ev.event)), \(CMText.status(ev.status))")
        }
        guard let verbs = CRamCastVerbs_cm_verbs(id), verbs == context else {
            let other = CRamCastVerbs_cm_verbs(id).map { String(cString: CRamCastVerbs_context_device_name($0)) } ?? "none"
            throw unreachable("the route to \(address.host) leaves through device \(other), not \(deviceName)")
        }
        var caps = control.caps
        guard let qp = CRamCastVerbs_cm_create_qp(id, pd, sendCQ, recvCQ, &caps, &err) else {
            throw VerbsError.systemCall("rdma_create_qp", err)
        }
        for i in 0..<ControlBuffers.recvSlots {
            rc = CRamCastVerbs_post_recv(qp, UInt64(UInt(bitPattern: control.buffers.recv(slotIndex, i))),
                                         UInt32(ControlBuffers.bufferSize), control.buffers.lkey, ControlWorkRequest.recv(conn, i))
            guard rc == 0 else { throw VerbsError.systemCall("ibv_post_recv", rc) }
        }
        let hello = Wire.encodeHello(Wire.Hello(node: node, regions: Array(control.descriptors(for: peer).prefix(Wire.maxConnectRegions)),
                                                restarted: announcesRestart))
        rc = hello.withUnsafeBytes {
            CRamCastVerbs_cm_connect(id, $0.baseAddress, UInt8($0.count), configuration.retryCount, configuration.rnrRetryCount)
        }
        guard rc == 0 else { throw VerbsError.systemCall("rdma_connect", rc) }
        try next("RDMA_CM_EVENT_ESTABLISHED", &ev)
        switch UInt32(bitPattern: ev.event) {
        case RDMA_CM_EVENT_ESTABLISHED.rawValue:
            break
        case RDMA_CM_EVENT_REJECTED.rawValue:
            if ev.status == CMText.consumerReject {
                let reason = withPrivateData(&ev) { Wire.decodeReject($0)?.reason }
                throw .rejected(peer: peer, address: address.description,
                                reason: reason ?? "rejected by the remote application (no RamCast reason attached)")
            }
            // Not the application: the remote CM refused, typically because nothing listens there.
            throw unreachable("connection refused by the remote CM: \(CMText.rejectReason(ev.status))")
        default:
            throw unreachable("connection failed: \(CMText.event(ev.event)), \(CMText.status(ev.status))")
        }
        let accepted: Wire.Hello
        do {
            accepted = try withPrivateData(&ev) { (b) throws(Wire.DecodeError) in try Wire.decodeHello(b) }
        } catch {
            _ = CRamCastVerbs_cm_disconnect(id)
            throw .rejected(peer: peer, address: address.description, reason: "the accept carried invalid private data: \(error)")
        }
        // Only a connector announces a restart (an announcing acceptor rejects): a flagged REP is a
        // peer speaking some other protocol, not one to write into.
        guard !accepted.restarted else {
            _ = CRamCastVerbs_cm_disconnect(id)
            throw .rejected(peer: peer, address: address.description,
                            reason: "the accept carried invalid private data: the restart flag, which only a connection request may carry")
        }
        guard accepted.node == peer else {
            _ = CRamCastVerbs_cm_disconnect(id)
            throw .rejected(peer: peer, address: address.description,
                            reason: "\(address) is \(accepted.node), not \(peer): check the directory")
        }
        rc = CRamCastVerbs_cm_migrate_id(id, control.channel)
        guard rc == 0 else {
            _ = CRamCastVerbs_cm_disconnect(id)
            throw VerbsError.systemCall("rdma_migrate_id", rc)
        }
        established = true
        CRamCastVerbs_cm_destroy_channel(channel)
        let c = connections[slotIndex]
        c.install(id: conn, peer: peer, address: address.description, cmId: id, qp: qp, phase: .open, remote: accepted.regions)
        qpNums[slotIndex] = CRamCastVerbs_qp_num(qp)
        logger.debug("connected", metadata: [
            "node": "\(node)", "peer": "\(peer)", "address": "\(address)", "connection": "\(conn)",
            "qp": "\(qpNums[slotIndex])", "peerRegions": "\(accepted.regions.count)"])
        return conn
    }

    /// Closes `connection` on purpose with `rdma_disconnect`; the peer gets
    /// ``FabricEvent/disconnected(_:peer:reason:)``. Later posts on it throw
    /// ``FabricError/unknownConnection(_:)``. Resources are released when the local
    /// `RDMA_CM_EVENT_DISCONNECTED` arrives.
    public func disconnect(_ connection: ConnectionID) {
        guard let c = slot(connection), c.phase != .free, c.phase != .closedByUser else { return }
        c.phase = .closedByUser
        c.disconnectReported = true
        if let cm = c.cmId { _ = CRamCastVerbs_cm_disconnect(cm) }
    }

    /// The slot whose current or last connection is `connection`.
    @inline(__always)
    func slot(_ connection: ConnectionID) -> Connection? {
        let i = Int(connection.rawValue & 0xFFFF)
        guard i < connections.count else { return nil }
        let c = connections[i]
        return c.id == connection ? c : nil
    }

    /// The connection is gone (the peer disconnected, or it failed before it was established):
    /// report it once to the user, remember why, and release its resources.
    func connectionLost(_ c: Connection, _ conn: ConnectionID, reason: String) {
        if c.userVisible && !c.disconnectReported {
            c.disconnectReported = true
            events.append(.disconnected(conn, peer: c.peer, reason: reason))
        }
        if c.isLive {
            c.phase = .failed
            c.failureText = reason
        }
        teardown(c)
    }

    /// Destroys the QP and the cm id and frees the slot. The slot keeps the id, phase and QP number,
    /// so late completions still map to the dead connection and posts still name its cause.
    func teardown(_ c: Connection) {
        guard let cm = c.cmId else { return }
        CRamCastVerbs_cm_destroy_qp(cm)
        _ = CRamCastVerbs_cm_destroy_id(cm)
        c.cmId = nil
        c.qp = nil
        control.freeSlot(c.index)
    }

    /// Takes over a connection the control thread accepted.
    func installAccepted(_ a: AcceptedConnection) {
        let c = connections[a.slot]
        c.install(id: a.id, peer: a.peer, address: a.address, cmId: a.cmId, qp: a.qp, phase: .pending, remote: a.remote,
                  peerRestarted: a.restarted)
        qpNums[a.slot] = CRamCastVerbs_qp_num(a.qp)
        // A grant or revoke between building the accept and now: send the peer the current keys.
        let now = control.descriptors(for: a.peer)
        for d in now where !a.advertised.contains(d) {
            c.dirtyRegions.append(d.region)
        }
    }
}
