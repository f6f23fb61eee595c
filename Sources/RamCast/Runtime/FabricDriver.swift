import RamCastFabric
import RamCastProtocol

/// What a driver needs from an engine: its outbox, and where to report completions.
public protocol DrivenEngine: AnyObject {
    var outbox: Outbox { get }
    func completed(peer: Int, id: UInt64, status: CompletionStatus)
}

extension ServerEngine: DrivenEngine {}
extension SenderEngine: DrivenEngine {}

/// A point inside one round of a process where its driver acts on the fabric: after the engine's
/// poll, after permission changes, and between posting and handling completions. A real NIC lands
/// remote writes at any of them; the simulation's scheduler may land queued writes there
/// (``FabricDriver/racePoint``), so that interleavings of the engine with the driver's own actions
/// are explored too.
public enum DriverPoint: Sendable, Hashable {
    case afterPoll
    case afterPermissions
    case afterPost
}

/// Carries one engine's writes over a fabric endpoint: posts its outbox in chains as credits allow,
/// polls the completion queue and hands completions back. One driver per process; all of its calls
/// come from the one thread that polls that process.
///
/// Outbox peers are numbered as the ``Layout`` numbers processes: servers `0..<S`, then senders.
public final class FabricDriver {
    public let endpoint: any FabricEndpoint
    public let layout: Layout
    let engine: any DrivenEngine
    // The state `pump` touches on every call lives in FixedCells (see RamCastProtocol's FixedCell):
    // as stored vars of this class, each access would pay a dynamic exclusivity check.
    public internal(set) var connectionOfPeer: [ConnectionID?] {
        unsafeAddress { connectionOfPeerCell.readAddress } unsafeMutableAddress { connectionOfPeerCell.address }
    }
    let connectionOfPeerCell: FixedCell<[ConnectionID?]>
    /// Indexed by connection id (ids are small and dense on both fabrics).
    var peerOfConnection: [Int32] { unsafeAddress { peerOfConnectionCell.readAddress } unsafeMutableAddress { peerOfConnectionCell.address } }
    let peerOfConnectionCell = FixedCell<[Int32]>([])
    private let chain: UnsafeMutableBufferPointer<WriteRequest>
    private let completions: UnsafeMutableBufferPointer<Completion>
    public private(set) var writesPosted: UInt64 {
        unsafeAddress { writesPostedCell.readAddress } unsafeMutableAddress { writesPostedCell.address }
    }
    let writesPostedCell = FixedCell<UInt64>(0)
    /// Called at each ``DriverPoint`` of a round; nil (the default) outside simulations. In a
    /// FixedCell, like the other state `pump` reads: a stored var would pay an exclusivity check.
    public var racePoint: ((DriverPoint) -> Void)? {
        get { racePointCell.address.pointee }
        set { racePointCell.address.pointee = newValue }
    }
    let racePointCell = FixedCell<((DriverPoint) -> Void)?>(nil)
    /// Completions that reported an error, most recent last (bounded).
    public private(set) var errors: [(peer: NodeID, status: CompletionStatus)] = []

    public init(endpoint: any FabricEndpoint, layout: Layout, engine: any DrivenEngine) {
        self.endpoint = endpoint
        self.layout = layout
        self.engine = engine
        connectionOfPeerCell = FixedCell(Array(repeating: nil, count: layout.servers.count + layout.config.senders.count))
        chain = .allocate(capacity: 32)
        chain.initialize(repeating: WriteRequest(id: 0, source: UnsafeRawPointer(bitPattern: 8)!, length: 0, remoteRegion: RegionID(0), remoteOffset: 0))
        completions = .allocate(capacity: 64)
        completions.initialize(repeating: Completion(id: 0, connection: ConnectionID(0), status: .success))
    }

    deinit {
        connectionOfPeerCell.deallocate()
        peerOfConnectionCell.deallocate()
        writesPostedCell.deallocate()
        racePointCell.deallocate()
        chain.deallocate()
        completions.deallocate()
    }

    public func node(ofPeer peer: Int) -> NodeID {
        peer < layout.servers.count ? layout.servers[peer] : layout.config.senders[peer - layout.servers.count]
    }

    public func peerIndex(of node: NodeID) -> Int? {
        if let s = layout.serverIndexOf[node] { return s }
        if let c = layout.senderIndexOf[node] { return layout.servers.count + c }
        return nil
    }

    /// Records that `connection` leads to `node` (after connecting, or on an `.accepted` event).
    public func attach(_ connection: ConnectionID, to node: NodeID) {
        guard let peer = peerIndex(of: node) else { return }
        connectionOfPeer[peer] = connection
        let i = Int(connection.rawValue)
        if i >= peerOfConnection.count {
            peerOfConnection.append(contentsOf: repeatElement(-1, count: i + 1 - peerOfConnection.count))
        }
        peerOfConnection[i] = Int32(peer)
    }

    public func isConnected(to node: NodeID) -> Bool {
        peerIndex(of: node).map { connectionOfPeer[$0] != nil } ?? false
    }

    /// Posts what the outbox holds and feeds completions back. Returns whether anything happened.
    @discardableResult
    public func pump() throws(FabricError) -> Bool {
        var progress = false
        let outbox = engine.outbox
        if outbox.backlog > 0 {
            for peer in 0..<connectionOfPeer.count where outbox.pending(peer) > 0 {
                guard let conn = connectionOfPeer[peer] else { continue }
                let n = outbox.drain(peer: peer, into: chain)
                if n > 0 {
                    do {
                        try endpoint.post(UnsafeBufferPointer(rebasing: chain[0..<n]), on: conn)
                    } catch where error.isDeadConnection {
                        // The connection died since this round's events were taken (a write of
                        // this process was refused inside the round): these writes are lost as if
                        // in flight, and the next events report the disconnect. The other peers'
                        // posts and this round's completions must still go on; giving up the round
                        // here stalled the process for good (seed 1005112, a deposed leader that
                        // never polled a completion again).
                        deadConnectionPosts &+= 1
                        progress = true
                        continue
                    }
                    writesPosted &+= UInt64(n)
                    progress = true
                }
            }
        }
        if let race = racePointCell.readAddress.pointee { race(.afterPost) }
        while true {
            let n = endpoint.pollCompletions(into: completions)
            if n == 0 { break }
            progress = true
            for i in 0..<n {
                let c = completions[i]
                let ci = Int(c.connection.rawValue)
                let peer = ci < peerOfConnection.count ? Int(peerOfConnection[ci]) : -1
                guard peer >= 0 else { continue }
                if c.status != .success {
                    if errors.count < 64 { errors.append((node(ofPeer: peer), c.status)) }
                } else if connectionOfPeer[peer] != c.connection {
                    // A write of a connection replaced since (the peer restarted, or it was
                    // re-established): the outbox started over with the new one, whose send-queue
                    // credits this completion must not retire (seed 7863 overflowed its queue so).
                    continue
                }
                engine.completed(peer: peer, id: c.id, status: c.status)
            }
        }
        return progress
    }

    /// Posts refused because their connection had just died (their writes were lost as if in
    /// flight when it broke).
    public private(set) var deadConnectionPosts = 0

    /// Keeps a control-path failure for diagnostics (bounded).
    public func recordError(peer: NodeID, _ text: String) {
        if problems.count < 64 { problems.append(text) }
    }

    /// Control-path failures (permission changes that failed), most recent last.
    public private(set) var problems: [String] = []

    /// Handles connection events: attaches accepted connections and passes the others on (a
    /// restarted peer's connection is attached first).
    public func pollEvents(_ other: (FabricEvent) -> Void = { _ in }) {
        while let e = endpoint.pollEvent() {
            switch e {
            case .accepted(let conn, let peer): attach(conn, to: peer)
            case .restarted(let conn, let peer):
                attach(conn, to: peer)
                other(e)
            default: other(e)
            }
        }
    }
}
