import CRamCastVerbs
import Logging
import RamCastFabric

#if canImport(Glibc)
import Glibc
#endif

/// A ``FabricEndpoint`` over RDMA verbs: RC queue pairs set up with rdma_cm, one-sided RDMA WRITEs,
/// and memory-region keys as write permissions.
///
/// Resources: one protection domain, one send completion queue shared by all connections (polled by
/// ``pollCompletions(into:)``), one receive completion queue for control messages (polled by
/// ``pollEvent()``), one rdma_cm listener on this node's directory address, and a control thread
/// that services the listener (accepts, rejects, disconnects).
///
/// Threads: the endpoint is driven by one thread at a time. The control thread shares state with it
/// only through a small lock-protected queue on the control path; ``post(_:on:)`` and
/// ``pollCompletions(into:)`` take no locks and allocate nothing.
///
/// Completion queue sizing: every connection can have `sendQueueDepth` writes plus 4 control sends
/// in flight, and a connection being torn down can still flush that many. The default size,
/// `(maxConnections + 2) × (sendQueueDepth + 4)`, therefore cannot overflow.
public final class RDMAEndpoint: FabricEndpoint {
    public let node: NodeID
    public let limits: FabricLimits
    public let configuration: RDMAConfiguration
    /// See ``FabricEndpoint/announcesRestart``. While set, ``connect(to:timeout:)`` flags its
    /// rdma_cm REQ (bit 7 of the private data's count byte), so the peer reports
    /// ``FabricEvent/restarted(_:peer:)``, and the control thread rejects every connection request
    /// with a reason saying this process restarted and is still announcing itself (the connector
    /// gets ``FabricError/rejected(peer:address:reason:)``). Lives in the control context, behind
    /// its lock, because the control thread reads it.
    public var announcesRestart: Bool {
        get { control.announcesRestart }
        set { control.announcesRestart = newValue }
    }
    /// The device in use and the port, GID index and address the endpoint listens on.
    public let deviceName: String
    public let gidIndex: Int?
    public let listenAddress: RDMAAddress

    let logger: Logger
    let control: ControlContext
    let context: UnsafeMutablePointer<ibv_context>
    let pd: UnsafeMutablePointer<ibv_pd>
    let sendCQ: UnsafeMutablePointer<ibv_cq>
    let recvCQ: UnsafeMutablePointer<ibv_cq>
    let listener: UnsafeMutablePointer<rdma_cm_id>
    let controlMR: UnsafeMutablePointer<ibv_mr>
    let memlock: MemlockStatus
    private var controlThread: pthread_t?
    var closed = false
    /// Skips the RLIMIT_MEMLOCK pre-check so tests can observe ibv_reg_mr failing in the kernel.
    var skipMemlockCheckForTesting = false
    /// The next this many MRs a grant registers report the key last revoked on the region (as if
    /// the device had handed it out again), so tests can make the collision
    /// ``RegionRecord/revokedKeys`` guards against.
    var keyCollisionsForTesting = 0

    /// Slot `i` of `connections`; `qpNums[i]` is its QP number, scanned by pollCompletions.
    var connections: [Connection]
    let qpNums: UnsafeMutablePointer<UInt32>

    // Preallocated scratch for the hot path.
    let writeScratch: UnsafeMutablePointer<CRamCastVerbs_Write>
    let completionScratch: UnsafeMutablePointer<CRamCastVerbs_Completion>
    static let completionScratchCount = 64
    let recvScratch: UnsafeMutablePointer<CRamCastVerbs_Completion>
    static let recvScratchCount = 16

    /// Registered regions, and flat copies of their bounds and lkeys for the write path.
    var regions: [RegionRecord] = []
    var localStarts: [UInt] = []
    var localEnds: [UInt] = []
    var localKeys: [UInt32] = []

    var events: [FabricEvent] = []
    var eventHead = 0
    /// Connections failed by pollCompletions whose disconnect is still to be reported.
    var pendingNotices = 0
    /// Connections with keys still to send (control send slots were busy).
    var pendingKeySyncs = false

    /// Lists the RDMA devices with their ports, GIDs and probed inline limit
    /// (`ibv_get_device_list`, `ibv_query_device`, `ibv_query_port`, `ibv_query_gid_ex`,
    /// `ibv_create_qp`). Returns [] on a machine without RDMA devices.
    public static func devices() -> [RDMADeviceInfo] {
        DeviceQuery.names().compactMap { DeviceQuery.info(name: $0) }
    }

    /// Opens the device, creates the protection domain and completion queues, probes the inline
    /// limit, and starts listening on this node's directory address: `rdma_get_devices`,
    /// `ibv_query_device`, `ibv_query_port`, `ibv_alloc_pd`, `ibv_create_cq` (twice),
    /// `ibv_create_qp` (probe), `ibv_reg_mr` (control buffers), `rdma_create_event_channel`,
    /// `rdma_bind_addr` + `rdma_listen`, then a control thread for the listener's events.
    ///
    /// Throws ``FabricError/noDevice(requested:available:)`` if there is no RDMA device (or none
    /// with the requested name), ``FabricError/portUnusable(device:port:reason:)`` if the port is not
    /// active, the GID index is empty, or this node has no directory entry, and
    /// ``FabricError/systemCall(call:errno:message:)`` for anything the verbs or rdma_cm refuse.
    public init(node: NodeID, configuration: RDMAConfiguration, logger: Logger) throws(FabricError) {
        precondition(configuration.sendQueueDepth >= 1, "sendQueueDepth must be at least 1")
        precondition((1...4096).contains(configuration.maxConnections), "maxConnections must be in 1...4096")
        let names = DeviceQuery.names()
        guard !names.isEmpty else { throw .noDevice(requested: configuration.device, available: []) }
        let deviceName = configuration.device ?? names[0]
        guard names.contains(deviceName) else { throw .noDevice(requested: deviceName, available: names) }
        let portNumber = configuration.port
        func unusable(_ reason: String) -> FabricError {
            .portUnusable(device: deviceName, port: portNumber, reason: reason)
        }
        guard let listenAddress = configuration.directory[node] else {
            throw unusable("\(node) has no address in RDMAConfiguration.directory, so it cannot listen")
        }

        // Undo stack: whatever was created is released in reverse order if a later step throws.
        var undo: [() -> Void] = []
        var succeeded = false
        defer { if !succeeded { for u in undo.reversed() { u() } } }

        var err: Int32 = 0
        // The context librdmacm uses: QPs created on rdma_cm ids need a PD from this very context.
        guard let context = CRamCastVerbs_cm_device_context(deviceName, &err) else {
            throw .systemCall(call: "rdma_get_devices", errno: err,
                              message: "\(VerbsError.message(err)): librdmacm does not see \(deviceName) (is the rdma_ucm kernel module loaded?)")
        }
        var dattr = CRamCastVerbs_DeviceAttr()
        var rc = CRamCastVerbs_query_device(context, &dattr)
        guard rc == 0 else { throw VerbsError.systemCall("ibv_query_device", rc) }
        guard (1...Int(dattr.phys_port_cnt)).contains(portNumber) else {
            throw unusable("the device has \(dattr.phys_port_cnt) port(s)")
        }
        var pattr = CRamCastVerbs_PortAttr()
        rc = CRamCastVerbs_query_port(context, UInt8(portNumber), &pattr)
        guard rc == 0 else { throw VerbsError.systemCall("ibv_query_port", rc) }
        guard pattr.state == Int32(IBV_PORT_ACTIVE.rawValue) else {
            throw unusable("port state is \(String(cString: CRamCastVerbs_port_state_str(pattr.state))), not PORT_ACTIVE")
        }
        var gidIndex = configuration.gidIndex
        var gidText = "none"
        if let g = gidIndex {
            guard let info = DeviceQuery.gid(context, port: portNumber, index: g) else {
                throw unusable("GID index \(g) is empty or invalid")
            }
            gidText = "\(info.gid) (\(info.type))"
        } else {
            var found: Int32 = -1
            var ip = [CChar](repeating: 0, count: 64)
            if CRamCastVerbs_find_ipv4_roce_v2_gid(context, UInt8(portNumber), &found, &ip, ip.count) == 0 {
                gidIndex = Int(found)
                gidText = "::ffff:\(string(ip)) (RoCE v2)"
            }
        }

        let controlSlots = ControlBuffers.sendSlots
        let qpSendDepth = configuration.sendQueueDepth + controlSlots
        guard qpSendDepth <= Int(dattr.max_qp_wr) else {
            throw unusable("sendQueueDepth \(configuration.sendQueueDepth) + \(controlSlots) control slots exceeds the device's max_qp_wr \(dattr.max_qp_wr)")
        }
        let neededCQ = (configuration.maxConnections + 2) * qpSendDepth
        let cqDepth = configuration.completionQueueDepth ?? neededCQ
        guard cqDepth >= configuration.maxConnections * qpSendDepth else {
            throw unusable("completionQueueDepth \(cqDepth) could overflow: \(configuration.maxConnections) connections × (\(configuration.sendQueueDepth) + \(controlSlots)) writes in flight need \(neededCQ)")
        }
        guard cqDepth <= Int(dattr.max_cqe) else {
            throw unusable("a completion queue of \(cqDepth) entries exceeds the device's max_cqe \(dattr.max_cqe); lower maxConnections or sendQueueDepth")
        }

        guard let pd = CRamCastVerbs_alloc_pd(context, &err) else { throw VerbsError.systemCall("ibv_alloc_pd", err) }
        undo.append { _ = CRamCastVerbs_dealloc_pd(pd) }
        guard let sendCQ = CRamCastVerbs_create_cq(context, Int32(cqDepth), &err) else {
            throw VerbsError.systemCall("ibv_create_cq", err)
        }
        undo.append { _ = CRamCastVerbs_destroy_cq(sendCQ) }
        let recvDepth = (configuration.maxConnections + 2) * ControlBuffers.recvSlots
        guard let recvCQ = CRamCastVerbs_create_cq(context, Int32(recvDepth), &err) else {
            throw VerbsError.systemCall("ibv_create_cq", err)
        }
        undo.append { _ = CRamCastVerbs_destroy_cq(recvCQ) }

        var granted: Int32 = 0
        rc = CRamCastVerbs_probe_max_inline(pd, sendCQ, UInt32(qpSendDepth), &granted)
        guard rc >= 0 else { throw VerbsError.systemCall("ibv_create_qp", rc) }
        let probedInline = Int(rc)
        let maxInline = min(probedInline, configuration.maxInlineBytes ?? probedInline)

        // Control buffers: fixed per slot, registered once.
        let memlock = MemlockStatus.current()
        let page = Int(CRamCastVerbs_page_size())
        let controlLength = (configuration.maxConnections * ControlBuffers.bytesPerConnection + page - 1) / page * page
        _ = try PinnedMemoryAccount.shared.reserve(controlLength, status: memlock)
        undo.append { PinnedMemoryAccount.shared.release(controlLength) }
        guard let controlBase = CRamCastVerbs_map_memory(controlLength, &err) else { throw VerbsError.systemCall("mmap", err) }
        undo.append { _ = CRamCastVerbs_unmap_memory(controlBase, controlLength) }
        guard let controlMR = CRamCastVerbs_reg_mr(pd, controlBase, controlLength, Int32(IBV_ACCESS_LOCAL_WRITE.rawValue), &err) else {
            if VerbsError.isMemlockErrno(err) {
                throw .memlockLimitTooLow(requested: controlLength, limit: memlock.limit,
                                          alreadyLocked: PinnedMemoryAccount.shared.current - controlLength)
            }
            throw VerbsError.systemCall("ibv_reg_mr", err)
        }
        undo.append { _ = CRamCastVerbs_dereg_mr(controlMR) }

        // rdma_cm: the shared channel (listener + established connections) and its wake-up fd.
        guard let channel = CRamCastVerbs_cm_create_channel(&err) else { throw VerbsError.systemCall("rdma_create_event_channel", err) }
        undo.append { CRamCastVerbs_cm_destroy_channel(channel) }
        let wakeFd = CRamCastVerbs_wake_fd_create()
        guard wakeFd >= 0 else { throw VerbsError.systemCall("eventfd", wakeFd) }
        undo.append { _ = CRamCastVerbs_close_fd(wakeFd) }
        guard let listener = CRamCastVerbs_cm_create_id(channel, nil, &err) else { throw VerbsError.systemCall("rdma_create_id", err) }
        undo.append { _ = CRamCastVerbs_cm_destroy_id(listener) }
        rc = CRamCastVerbs_cm_bind_listen(listener, listenAddress.host, listenAddress.port, 64)
        guard rc == 0 else {
            throw .systemCall(call: "rdma_bind_addr/rdma_listen", errno: -rc,
                              message: "cannot listen on \(listenAddress): \(VerbsError.message(-rc))")
        }
        if let bound = CRamCastVerbs_cm_verbs(listener), bound != context {
            throw unusable("\(listenAddress.host) belongs to device \(String(cString: CRamCastVerbs_context_device_name(bound))), not \(deviceName)")
        }

        let caps = CRamCastVerbs_QPCaps(
            max_send_wr: UInt32(qpSendDepth), max_recv_wr: UInt32(ControlBuffers.recvSlots),
            max_send_sge: 1, max_recv_sge: 1, max_inline_data: UInt32(maxInline))
        let buffers = ControlBuffers(base: controlBase, length: controlLength, lkey: controlMR.pointee.lkey)
        let control = ControlContext(
            node: node, directory: configuration.directory, logger: logger, channel: channel, wakeFd: wakeFd,
            pd: pd, sendCQ: sendCQ, recvCQ: recvCQ, caps: caps, buffers: buffers, maxConnections: configuration.maxConnections)

        self.node = node
        self.configuration = configuration
        self.logger = logger
        self.deviceName = deviceName
        self.gidIndex = gidIndex
        self.listenAddress = listenAddress
        self.context = context
        self.pd = pd
        self.sendCQ = sendCQ
        self.recvCQ = recvCQ
        self.listener = listener
        self.controlMR = controlMR
        self.memlock = memlock
        self.control = control
        self.limits = FabricLimits(
            maxInlineBytes: maxInline, sendQueueDepth: configuration.sendQueueDepth,
            completionQueueDepth: Int(CRamCastVerbs_cq_depth(sendCQ)),
            maxWriteBytes: Int(min(pattr.max_msg_sz, UInt32(Int32.max))))
        self.connections = (0..<configuration.maxConnections).map { Connection(index: $0, ringCapacity: qpSendDepth) }
        qpNums = .allocate(capacity: configuration.maxConnections)
        qpNums.initialize(repeating: 0, count: configuration.maxConnections)
        writeScratch = .allocate(capacity: configuration.sendQueueDepth)
        completionScratch = .allocate(capacity: Self.completionScratchCount)
        recvScratch = .allocate(capacity: Self.recvScratchCount)
        events.reserveCapacity(64)

        controlThread = try control.start()
        succeeded = true

        logger.info("opened RDMA device", metadata: [
            "node": "\(node)", "device": "\(deviceName)", "port": "\(portNumber)",
            "gidIndex": "\(gidIndex.map(String.init) ?? "none")", "gid": "\(gidText)",
            "mtu": "\(pattr.active_mtu_bytes)", "listen": "\(listenAddress)"])
        logger.debug("RDMA endpoint limits", metadata: [
            "node": "\(node)", "maxInlineProbed": "\(probedInline)", "maxInlineGranted": "\(granted)",
            "maxInline": "\(maxInline)", "sendQueueDepth": "\(configuration.sendQueueDepth)",
            "completionQueueDepth": "\(limits.completionQueueDepth)",
            "memlockLimit": "\(memlock.limit.map(String.init) ?? "unlimited")", "capIPCLock": "\(memlock.hasIPCLock)"])
    }

    deinit {
        close()
        qpNums.deallocate()
        writeScratch.deallocate()
        completionScratch.deallocate()
        recvScratch.deallocate()
    }

    public func peer(of connection: ConnectionID) -> NodeID? {
        guard let c = slot(connection), c.phase != .free, c.phase != .closedByUser, c.userVisible else { return nil }
        return c.peer
    }

    // MARK: - Writes

    /// Posts a chain of RDMA WRITEs with one `ibv_post_send` (through `CRamCastVerbs_post_writes`).
    ///
    /// The whole chain is validated first (connection open, region known at the peer, bounds, inline
    /// length, source registered) so that a refused chain posts nothing. Send-queue room is tracked
    /// per connection: a successful signaled completion retires that write and all earlier ones.
    public func post(_ writes: UnsafeBufferPointer<WriteRequest>, on connection: ConnectionID) throws(FabricError) {
        guard !closed else { throw .closed }
        guard let c = slot(connection) else { throw .unknownConnection(connection) }
        guard c.phase == .open else { throw postRefusal(c) }
        let n = writes.count
        if n == 0 { return }
        let outstanding = c.outstandingUserWrites
        guard outstanding + n <= limits.sendQueueDepth else {
            throw .sendQueueFull(connection, outstanding: outstanding, requested: n, depth: limits.sendQueueDepth)
        }
        var keysChecked = false
        for i in 0..<n {
            let w = writes[i]
            var key = c.remote[Int(w.remoteRegion.rawValue)]
            if key.guarded, !keysChecked {
                // A write with a stale key is refused, and breaks the connection. The peer may have
                // granted access a moment ago: its key update is a SEND on this connection, ahead of
                // the write that told this process to go on (a 1B after the grant), and may still
                // wait in the receive queue if events were last polled before both arrived. Take it
                // first (a failover over rxe lost its new leader so). One empty ibv_poll_cq per
                // chain to a guarded region: a leader's log writes.
                keysChecked = true
                pollControlMessages()
                guard c.phase == .open else { throw postRefusal(c) }
                key = c.remote[Int(w.remoteRegion.rawValue)]
            }
            guard w.length > 0, w.length <= limits.maxWriteBytes else {
                throw .invalidWrite(id: w.id, reason: "length \(w.length) is outside 1...\(limits.maxWriteBytes)")
            }
            guard key.length != 0 else {
                throw .invalidWrite(id: w.id, reason: "\(c.peer) had no \(w.remoteRegion) when \(connection) was set up")
            }
            guard w.remoteOffset >= 0, w.remoteOffset + w.length <= Int(key.length) else {
                throw .invalidWrite(id: w.id, reason: "offset \(w.remoteOffset) + length \(w.length) is outside \(w.remoteRegion) (\(key.length) bytes) at \(c.peer)")
            }
            var lkey: UInt32 = 0
            if w.flags.contains(.inline) {
                guard w.length <= limits.maxInlineBytes else {
                    throw .invalidWrite(id: w.id, reason: "inline length \(w.length) exceeds the inline limit \(limits.maxInlineBytes)")
                }
            } else {
                guard let k = localKey(w.source, w.length) else {
                    throw .invalidWrite(id: w.id, reason: "a non-inline source must lie inside a region registered on \(node)")
                }
                lkey = k
            }
            writeScratch[i] = CRamCastVerbs_Write(
                local_addr: UInt64(UInt(bitPattern: w.source)), remote_addr: key.address &+ UInt64(w.remoteOffset),
                wr_id: w.id, length: UInt32(w.length), lkey: lkey, rkey: key.rkey,
                flags: UInt32(w.flags.rawValue) & UInt32(CRamCastVerbs_WRITE_INLINE | CRamCastVerbs_WRITE_SIGNALED))
        }
        var bad: Int32 = 0
        let rc = CRamCastVerbs_post_writes(c.qp, writeScratch, Int32(n), &bad)
        if rc != 0 {
            let accepted = Int(bad)
            account(c, writes, count: accepted)
            throw postFailure(c, rc: rc, accepted: accepted, requested: n)
        }
        account(c, writes, count: n)
    }

    @inline(__always)
    private func account(_ c: Connection, _ writes: UnsafeBufferPointer<WriteRequest>, count: Int) {
        for i in 0..<count where writes[i].flags.contains(.signaled) {
            c.pushMark(SignalMark(userCount: c.userPosted &+ UInt64(i + 1), controlCount: c.controlPosted, isControl: false))
        }
        c.userPosted &+= UInt64(count)
    }

    /// The lkey of the registered region holding `[p, p + length)`.
    @inline(__always)
    func localKey(_ p: UnsafeRawPointer, _ length: Int) -> UInt32? {
        let start = UInt(bitPattern: p)
        let end = start &+ UInt(length)
        for i in 0..<localStarts.count where start >= localStarts[i] && end <= localEnds[i] && end >= start {
            return localKeys[i]
        }
        return nil
    }

    private func postRefusal(_ c: Connection) -> FabricError {
        switch c.phase {
        case .failed: return .connectionInErrorState(c.id, peer: c.peer, cause: c.cause)
        default: return .unknownConnection(c.id)
        }
    }

    /// A refused `ibv_post_send`. If the QP is in the error state the connection is dead; if a
    /// prefix of the chain went out, the chain can no longer be all-or-nothing, so the connection is
    /// failed as well rather than left half-posted.
    private func postFailure(_ c: Connection, rc: Int32, accepted: Int, requested: Int) -> FabricError {
        var state: Int32 = -1
        if let qp = c.qp, CRamCastVerbs_qp_state(qp, &state) == 0, state == Int32(IBV_QPS_ERR.rawValue) {
            fail(c, text: "the queue pair is in the error state (ibv_post_send: \(VerbsError.message(-rc)))")
            return .connectionInErrorState(c.id, peer: c.peer, cause: c.cause)
        }
        if accepted > 0 {
            fail(c, text: "ibv_post_send accepted only \(accepted) of \(requested) writes: \(VerbsError.message(-rc))")
        }
        return VerbsError.systemCall("ibv_post_send", rc)
    }

    func fail(_ c: Connection, text: String) {
        guard c.isLive else { return }
        c.phase = .failed
        c.failureText = text
        c.noticePending = true
        pendingNotices += 1
    }

    // MARK: - Completions

    /// Moves completions from the send CQ (`ibv_poll_cq`) into `buffer`.
    ///
    /// Statuses map as: `IBV_WC_SUCCESS` → success; `IBV_WC_REM_ACCESS_ERR` and
    /// `IBV_WC_REM_INV_REQ_ERR` → remoteAccessError; `IBV_WC_WR_FLUSH_ERR` → flushed;
    /// `IBV_WC_RETRY_EXC_ERR` → retryExceeded; anything else → other(raw). An error completion
    /// puts its connection in the error state; ``pollEvent()`` then reports it disconnected.
    /// Completions of control SENDs are consumed here and never reported.
    public func pollCompletions(into buffer: UnsafeMutableBufferPointer<Completion>) -> Int {
        guard !closed, buffer.count > 0 else { return 0 }
        var written = 0
        while written < buffer.count {
            let want = min(buffer.count - written, Self.completionScratchCount)
            let n = Int(CRamCastVerbs_poll_cq(sendCQ, completionScratch, Int32(want)))
            if n <= 0 { break }
            for k in 0..<n {
                let wc = completionScratch[k]
                guard let i = slotIndex(qpNum: wc.qp_num) else { continue }
                let c = connections[i]
                if wc.status == WCStatus.success {
                    if c.retireOldestSignaled() { continue }
                    buffer[written] = Completion(id: wc.wr_id, connection: c.id, status: .success)
                    written += 1
                } else {
                    if c.isLive {
                        c.phase = .failed
                        c.failureStatus = wc.status
                        c.noticePending = true
                        pendingNotices += 1
                    }
                    if ControlWorkRequest.isSend(wc.wr_id, of: c.id) { continue }
                    buffer[written] = Completion(id: wc.wr_id, connection: c.id, status: WCStatus.completionStatus(wc.status))
                    written += 1
                }
            }
            if n < want { break }
        }
        return written
    }

    @inline(__always)
    func slotIndex(qpNum: UInt32) -> Int? {
        for i in 0..<connections.count where qpNums[i] == qpNum { return i }
        return nil
    }

    // MARK: - Events

    /// Returns the next connection event. Also does the control-path work that the write path
    /// leaves for later (so call it regularly): reporting connections that failed in ``pollCompletions(into:)`` (and
    /// `rdma_disconnect`ing them so the peer learns), taking over connections the control thread
    /// accepted, and handling control messages (new keys after a grant) from the receive CQ
    /// (`ibv_poll_cq`, then `ibv_post_recv` to return the buffer).
    public func pollEvent() -> FabricEvent? {
        if eventHead < events.count { return nextEvent() }
        guard !closed else { return nil }
        if pendingNotices > 0 { reportFailures() }
        drainControlQueue()
        pollControlMessages()
        if pendingKeySyncs { sendPendingKeys() }
        return eventHead < events.count ? nextEvent() : nil
    }

    private func nextEvent() -> FabricEvent {
        let e = events[eventHead]
        eventHead += 1
        if eventHead == events.count {
            events.removeAll(keepingCapacity: true)
            eventHead = 0
        }
        return e
    }

    func reportFailures() {
        pendingNotices = 0
        for c in connections where c.noticePending {
            c.noticePending = false
            if c.userVisible && !c.disconnectReported {
                c.disconnectReported = true
                events.append(.disconnected(c.id, peer: c.peer, reason: c.cause))
            }
            logger.debug("connection failed", metadata: ["node": "\(node)", "connection": "\(c.id)", "peer": "\(c.peer)", "cause": "\(c.cause)"])
            if let cm = c.cmId { _ = CRamCastVerbs_cm_disconnect(cm) }
        }
    }

    /// Takes over what the control thread queued (accepted connections, cm events). Events it
    /// produces wait in `events` for ``pollEvent()``.
    func drainControlQueue() {
        if control.hasItems { for item in control.takeItems() { apply(item) } }
    }

    private func apply(_ item: ControlItem) {
        switch item {
        case .install(let a):
            installAccepted(a)
            if !connections[a.slot].dirtyRegions.isEmpty { pendingKeySyncs = true }
        case .acceptFailed(let conn, let reason):
            guard let c = slot(conn), c.cmId != nil else { return }
            logger.debug("accepted connection failed before it was established", metadata: [
                "node": "\(node)", "connection": "\(conn)", "peer": "\(c.peer)", "reason": "\(reason)"])
            connectionLost(c, conn, reason: reason)
        case .established(let conn):
            guard let c = slot(conn), c.phase == .pending else { return }
            c.phase = .open
            c.userVisible = true
            events.append(c.peerRestarted ? .restarted(conn, peer: c.peer) : .accepted(conn, peer: c.peer))
        case .disconnected(let conn, let reason):
            guard let c = slot(conn), c.cmId != nil else { return }
            connectionLost(c, conn, reason: reason)
        case .deviceRemoved:
            for c in connections where c.isLive {
                c.phase = .failed
                c.failureText = "the RDMA device was removed"
                if c.userVisible && !c.disconnectReported {
                    c.disconnectReported = true
                    events.append(.disconnected(c.id, peer: c.peer, reason: c.cause))
                }
            }
        }
    }

    // MARK: - Teardown

    /// Releases everything in dependency order: the control thread (`pthread_join`), queue pairs
    /// and cm ids (`rdma_disconnect`, `rdma_destroy_qp`, `rdma_destroy_id`; peers see a disconnect),
    /// the listener and event channel, memory regions and their memory (`ibv_dereg_mr`, `munmap`:
    /// every ``LocalRegion`` becomes invalid), completion queues (`ibv_destroy_cq`), the protection
    /// domain (`ibv_dealloc_pd`). Later calls throw ``FabricError/closed``.
    public func close() {
        guard !closed else { return }
        closed = true
        if let t = controlThread {
            control.requestStop()
            _ = pthread_join(t, nil)
            controlThread = nil
        }
        for item in control.takeItems() {
            if case .install(let a) = item { installAccepted(a) }
        }
        for c in connections where c.cmId != nil {
            if c.isLive { _ = CRamCastVerbs_cm_disconnect(c.cmId!) }
            teardown(c)
        }
        _ = CRamCastVerbs_cm_destroy_id(listener)
        CRamCastVerbs_cm_destroy_channel(control.channel)
        _ = CRamCastVerbs_close_fd(control.wakeFd)
        for r in regions { r.release() }
        regions.removeAll()
        localStarts.removeAll()
        localEnds.removeAll()
        localKeys.removeAll()
        _ = CRamCastVerbs_dereg_mr(controlMR)
        _ = CRamCastVerbs_unmap_memory(control.buffers.base, control.buffers.length)
        PinnedMemoryAccount.shared.release(control.buffers.length)
        _ = CRamCastVerbs_destroy_cq(sendCQ)
        _ = CRamCastVerbs_destroy_cq(recvCQ)
        _ = CRamCastVerbs_dealloc_pd(pd)
        logger.debug("closed RDMA endpoint", metadata: ["node": "\(node)"])
    }
}
