import CRamCastVerbs
import Logging
import RamCastFabric

#if canImport(Glibc)
import Glibc
#endif

/// Fixed layout of the small registered area that carries control SENDs and RECVs: per connection
/// slot, `sendSlots` send buffers then `recvSlots` receive buffers, `bufferSize` bytes each. Fixed
/// addresses per slot mean neither thread allocates or registers anything per message.
struct ControlBuffers {
    static let bufferSize = 64
    static let sendSlots = 4
    static let recvSlots = 8
    static var bytesPerConnection: Int { (sendSlots + recvSlots) * bufferSize }

    let base: UnsafeMutableRawPointer
    let length: Int
    let lkey: UInt32

    func send(_ slot: Int, _ i: Int) -> UnsafeMutableRawPointer {
        base + slot * Self.bytesPerConnection + i * Self.bufferSize
    }

    func recv(_ slot: Int, _ i: Int) -> UnsafeMutableRawPointer {
        base + slot * Self.bytesPerConnection + (Self.sendSlots + i) * Self.bufferSize
    }
}

/// Work request ids of control traffic. Receives have their own CQ, so their ids only need to find
/// the connection. Control SENDs share the send CQ with user writes: successful ones are recognised
/// by their position in the connection's signaled-write ring, failed ones by this tag (a failed
/// completion's opcode is undefined), which also carries the connection id to keep collisions with
/// user ids practically impossible.
enum ControlWorkRequest {
    static let sendTag: UInt64 = 0x5243 << 48

    static func recv(_ conn: ConnectionID, _ buffer: Int) -> UInt64 { UInt64(conn.rawValue) << 32 | UInt64(buffer) }
    static func send(_ conn: ConnectionID, _ buffer: Int) -> UInt64 { sendTag | UInt64(conn.rawValue) << 16 | UInt64(buffer) }

    @inline(__always)
    static func isSend(_ wrId: UInt64, of conn: ConnectionID) -> Bool {
        wrId & 0xFFFF_0000_0000_0000 == sendTag && UInt32(truncatingIfNeeded: wrId >> 16) == conn.rawValue
    }

    /// `rdma_cm_id.context` of a connection's id; 0 (nil) is the listener.
    static func context(_ conn: ConnectionID) -> UnsafeMutableRawPointer? {
        UnsafeMutableRawPointer(bitPattern: UInt(conn.rawValue))
    }

    static func connection(fromContext p: UnsafeMutableRawPointer?) -> ConnectionID? {
        guard let p else { return nil }
        return ConnectionID(UInt32(truncatingIfNeeded: UInt(bitPattern: p)))
    }
}

/// What this endpoint tells peers about one of its regions.
struct AdvertisedRegion {
    let id: RegionID
    let address: UInt64
    let length: UInt32
    let access: RemoteAccess
    /// The MR every peer uses unless it holds a grant: writable for `.anyPeer`, read-only for
    /// `.grantedPeers`.
    let sharedRkey: UInt32
    /// `.grantedPeers` only: the writable MR registered for each granted peer.
    var peerRkeys: [NodeID: UInt32] = [:]

    func descriptor(for peer: NodeID) -> Wire.Descriptor {
        Wire.Descriptor(region: id, address: address, length: length, rkey: peerRkeys[peer] ?? sharedRkey, guarded: access == .grantedPeers)
    }

    func writable(by peer: NodeID) -> Bool { access == .anyPeer || peerRkeys[peer] != nil }
}

/// A connection the control thread accepted, handed to the polling thread to own.
struct AcceptedConnection {
    let slot: Int
    let id: ConnectionID
    let peer: NodeID
    let address: String
    let cmId: UnsafeMutablePointer<rdma_cm_id>
    let qp: UnsafeMutablePointer<ibv_qp>
    let remote: [Wire.Descriptor]
    /// The connector announced a restart: reported as ``FabricEvent/restarted(_:peer:)``.
    let restarted: Bool
    /// What the accept private data told the peer about our regions, to notice a grant or revoke
    /// that raced with the accept.
    let advertised: [Wire.Descriptor]
}

/// News from the control thread to the polling thread.
enum ControlItem {
    case install(AcceptedConnection)
    case acceptFailed(ConnectionID, reason: String)
    case established(ConnectionID)
    case disconnected(ConnectionID, reason: String)
    case deviceRemoved
}

/// State shared by the polling thread and the control thread.
///
/// `@unchecked Sendable` is sound because: the stored `let`s are immutable after init, and the
/// libibverbs/librdmacm calls made through them from both threads are thread-safe (the libraries
/// lock internally); every `var` is read and written only inside `lock.withLock`. The control
/// thread never touches the polling thread's connection table: it hands over whole connections
/// through `items`.
final class ControlContext: @unchecked Sendable {
    let node: NodeID
    let directory: [NodeID: RDMAAddress]
    let logger: Logger
    let channel: UnsafeMutablePointer<rdma_event_channel>
    let wakeFd: Int32
    let pd: UnsafeMutablePointer<ibv_pd>
    let sendCQ: UnsafeMutablePointer<ibv_cq>
    let recvCQ: UnsafeMutablePointer<ibv_cq>
    let caps: CRamCastVerbs_QPCaps
    let buffers: ControlBuffers
    let maxConnections: Int

    let lock = Lock()
    // Under `lock`:
    private var items: [ControlItem] = []
    private var stopping = false
    private var slotInUse: [Bool]
    private var slotGeneration: [UInt16]
    private var nextSlot = 0
    private var advertised: [AdvertisedRegion] = []
    private var restarting = false

    init(node: NodeID, directory: [NodeID: RDMAAddress], logger: Logger,
         channel: UnsafeMutablePointer<rdma_event_channel>, wakeFd: Int32,
         pd: UnsafeMutablePointer<ibv_pd>, sendCQ: UnsafeMutablePointer<ibv_cq>, recvCQ: UnsafeMutablePointer<ibv_cq>,
         caps: CRamCastVerbs_QPCaps, buffers: ControlBuffers, maxConnections: Int) {
        self.node = node
        self.directory = directory
        self.logger = logger
        self.channel = channel
        self.wakeFd = wakeFd
        self.pd = pd
        self.sendCQ = sendCQ
        self.recvCQ = recvCQ
        self.caps = caps
        self.buffers = buffers
        self.maxConnections = maxConnections
        self.slotInUse = Array(repeating: false, count: maxConnections)
        self.slotGeneration = Array(repeating: 0, count: maxConnections)
    }

    // MARK: Shared-state accessors (control path only)

    func push(_ item: ControlItem) {
        lock.withLock { items.append(item) }
    }

    func takeItems() -> [ControlItem] {
        lock.withLock {
            if items.isEmpty { return [] }
            let out = items
            items = []
            return out
        }
    }

    var hasItems: Bool { lock.withLock { !items.isEmpty } }

    /// Picks a free slot, round robin so that a just-freed slot (and its dead connection id, which
    /// posts still recognise) is reused as late as possible. Ids are `generation << 16 | slot`.
    func allocateSlot() -> (Int, ConnectionID)? {
        lock.withLock {
            for k in 0..<maxConnections {
                let i = (nextSlot + k) % maxConnections
                if !slotInUse[i] {
                    slotInUse[i] = true
                    nextSlot = (i + 1) % maxConnections
                    slotGeneration[i] &+= 1
                    if slotGeneration[i] == 0 { slotGeneration[i] = 1 }
                    return (i, ConnectionID(UInt32(slotGeneration[i]) << 16 | UInt32(i)))
                }
            }
            return nil
        }
    }

    func freeSlot(_ i: Int) {
        lock.withLock { slotInUse[i] = false }
    }

    func descriptors(for peer: NodeID) -> [Wire.Descriptor] {
        lock.withLock { advertised.map { $0.descriptor(for: peer) } }
    }

    func advertisedRegion(_ id: RegionID) -> AdvertisedRegion? {
        lock.withLock { advertised.first { $0.id == id } }
    }

    func advertise(_ region: AdvertisedRegion) {
        lock.withLock { advertised.append(region) }
    }

    func setPeerKey(_ id: RegionID, peer: NodeID, rkey: UInt32?) {
        lock.withLock {
            guard let i = advertised.firstIndex(where: { $0.id == id }) else { return }
            advertised[i].peerRkeys[peer] = rkey
        }
    }

    /// ``RDMAEndpoint/announcesRestart``: the polling thread sets it and reads it to build a REQ;
    /// the control thread reads it to refuse connection requests meanwhile.
    var announcesRestart: Bool {
        get { lock.withLock { restarting } }
        set { lock.withLock { restarting = newValue } }
    }

    func requestStop() {
        lock.withLock { stopping = true }
        _ = CRamCastVerbs_wake_fd_signal(wakeFd)
    }

    private var isStopping: Bool { lock.withLock { stopping } }

    // MARK: The control thread

    /// Starts the thread that services the listener's event channel. It holds a strong reference to
    /// this context (not to the endpoint) until it exits.
    func start() throws(FabricError) -> pthread_t {
        var thread = pthread_t()
        let arg = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { arg in
            let ctx = Unmanaged<ControlContext>.fromOpaque(arg!).takeRetainedValue()
            CRamCastVerbs_set_thread_name("ramcast-cm")
            ctx.run()
            return nil
        }, arg)
        guard rc == 0 else {
            Unmanaged<ControlContext>.fromOpaque(arg).release()
            throw VerbsError.systemCall("pthread_create", rc)
        }
        return thread
    }

    private func run() {
        var ev = CRamCastVerbs_CMEvent()
        while !isStopping {
            // No timeout: stop() wakes us through wakeFd.
            let rc = CRamCastVerbs_cm_wait_event(channel, wakeFd, -1, &ev)
            switch rc {
            case 1: handle(&ev)
            case 2: _ = CRamCastVerbs_wake_fd_drain(wakeFd)
            case 0: continue
            default:
                logger.error("rdma_get_cm_event failed; the control thread stops", metadata: [
                    "node": "\(node)", "error": "\(VerbsError.message(-rc))"])
                return
            }
        }
    }

    private func handle(_ ev: inout CRamCastVerbs_CMEvent) {
        let type = UInt32(bitPattern: ev.event)
        let conn = ControlWorkRequest.connection(fromContext: ev.context)
        switch type {
        case RDMA_CM_EVENT_CONNECT_REQUEST.rawValue:
            handleConnectRequest(&ev)
        case RDMA_CM_EVENT_ESTABLISHED.rawValue:
            if let conn { push(.established(conn)) }
        case RDMA_CM_EVENT_DISCONNECTED.rawValue:
            if let conn { push(.disconnected(conn, reason: "disconnected (RDMA_CM_EVENT_DISCONNECTED)")) }
        case RDMA_CM_EVENT_REJECTED.rawValue, RDMA_CM_EVENT_CONNECT_ERROR.rawValue, RDMA_CM_EVENT_UNREACHABLE.rawValue:
            if let conn {
                push(.acceptFailed(conn, reason: "\(CMText.event(ev.event)) (\(CMText.status(ev.status)))"))
            }
        case RDMA_CM_EVENT_DEVICE_REMOVAL.rawValue:
            logger.critical("RDMA device removed", metadata: ["node": "\(node)"])
            push(.deviceRemoved)
        default:
            logger.trace("rdma_cm event", metadata: ["node": "\(node)", "event": "\(CMText.event(ev.event))"])
        }
    }

    /// Validates the connector's private data, then creates the QP and accepts, or rejects with a
    /// reason the connector can show.
    private func handleConnectRequest(_ ev: inout CRamCastVerbs_CMEvent) {
        guard let id = ev.id else { return }
        let from = cString(&ev.peer_address)
        let hello: Wire.Hello
        do {
            hello = try withPrivateData(&ev) { (b) throws(Wire.DecodeError) in try Wire.decodeHello(b) }
        } catch {
            reject(id, from: from, reason: "\(node) refused the connection: \(error)")
            return
        }
        guard directory[hello.node] != nil else {
            reject(id, from: from, reason: "\(hello.node) is not in the directory of \(node)")
            return
        }
        // A new incarnation still opening its own connections must not be taken for the one it
        // replaces: the peer retries once this process has announced itself everywhere.
        guard !announcesRestart else {
            reject(id, from: from, reason: "\(node) restarted and is still announcing itself")
            return
        }
        guard let (slot, conn) = allocateSlot() else {
            reject(id, from: from, reason: "\(node) has no free connection slot (maxConnections \(maxConnections))")
            return
        }
        CRamCastVerbs_cm_set_context(id, ControlWorkRequest.context(conn))
        var caps = self.caps
        var err: Int32 = 0
        guard let qp = CRamCastVerbs_cm_create_qp(id, pd, sendCQ, recvCQ, &caps, &err) else {
            freeSlot(slot)
            reject(id, from: from, reason: "\(node) could not create a queue pair: \(VerbsError.message(err))")
            return
        }
        for i in 0..<ControlBuffers.recvSlots {
            let rc = CRamCastVerbs_post_recv(qp, UInt64(UInt(bitPattern: buffers.recv(slot, i))),
                                             UInt32(ControlBuffers.bufferSize), buffers.lkey, ControlWorkRequest.recv(conn, i))
            if rc != 0 {
                CRamCastVerbs_cm_destroy_qp(id)
                freeSlot(slot)
                reject(id, from: from, reason: "\(node) could not post receives: \(VerbsError.message(-rc))")
                return
            }
        }
        let ours = Array(descriptors(for: hello.node).prefix(Wire.maxAcceptRegions))
        let data = Wire.encodeHello(Wire.Hello(node: node, regions: ours))
        // Handed over before rdma_accept: once accepted, the peer may send at once, and the polling
        // thread must already know the slot when that receive completes.
        push(.install(AcceptedConnection(slot: slot, id: conn, peer: hello.node, address: from, cmId: id, qp: qp,
                                         remote: hello.regions, restarted: hello.restarted, advertised: ours)))
        let rc = data.withUnsafeBytes { CRamCastVerbs_cm_accept(id, $0.baseAddress, UInt8($0.count)) }
        if rc != 0 {
            push(.acceptFailed(conn, reason: "rdma_accept failed: \(VerbsError.message(-rc))"))
            return
        }
        logger.debug("accepted connection", metadata: [
            "node": "\(node)", "peer": "\(hello.node)", "from": "\(from)", "connection": "\(conn)",
            "qp": "\(CRamCastVerbs_qp_num(qp))", "peerRegions": "\(hello.regions.count)",
            "peerRestarted": "\(hello.restarted)"])
    }

    private func reject(_ id: UnsafeMutablePointer<rdma_cm_id>, from: String, reason: String) {
        logger.notice("rejecting connection", metadata: ["node": "\(node)", "from": "\(from)", "reason": "\(reason)"])
        let data = Wire.encodeReject(node: node, reason: reason)
        _ = data.withUnsafeBytes { CRamCastVerbs_cm_reject(id, $0.baseAddress, UInt8($0.count)) }
        _ = CRamCastVerbs_cm_destroy_id(id)
    }
}

/// The private data of an event, as bytes.
func withPrivateData<R, E: Error>(_ ev: inout CRamCastVerbs_CMEvent,
                                   _ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
    let n = Int(min(ev.private_data_len, UInt32(CRamCastVerbs_MAX_PRIVATE_DATA)))
    return try withUnsafeBytes(of: &ev.private_data) { (raw) throws(E) -> R in
        try body(UnsafeRawBufferPointer(rebasing: raw[0..<n]))
    }
}
