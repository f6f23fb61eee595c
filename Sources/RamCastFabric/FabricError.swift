/// Everything a fabric can refuse or fail at. Each case names the operation (for RDMA, the verbs or
/// rdma_cm call) and carries what is needed to tell a user what went wrong and where.
public enum FabricError: Error, Sendable, Hashable {
    /// No RDMA device, or none with the requested name. `available` lists what was found.
    case noDevice(requested: String?, available: [String])
    /// A device exists but the requested port is not usable (down, or no such GID index).
    case portUnusable(device: String, port: Int, reason: String)
    /// Registering `requested` bytes would exceed `RLIMIT_MEMLOCK` (`limit` bytes; nil = unlimited).
    case memlockLimitTooLow(requested: Int, limit: Int?, alreadyLocked: Int)
    /// The peer could not be reached within the timeout (address or route resolution failed, or
    /// the transport gave up).
    case unreachable(peer: NodeID, address: String, reason: String)
    /// The peer answered and refused the connection.
    case rejected(peer: NodeID, address: String, reason: String)
    /// The operation took longer than its timeout.
    case timedOut(operation: String, seconds: Double)
    /// Posting on a connection that is in the error state (after a failed write, a revocation or a
    /// peer that disappeared). Reconnect to continue.
    case connectionInErrorState(ConnectionID, peer: NodeID, cause: String)
    /// A connection id that this endpoint does not know, or one that was closed.
    case unknownConnection(ConnectionID)
    /// The send queue has no room for the chain: the caller posted more unretired writes than
    /// ``FabricLimits/sendQueueDepth``. Use ``SendCredits``.
    case sendQueueFull(ConnectionID, outstanding: Int, requested: Int, depth: Int)
    /// A write that the endpoint rejected before posting it; nothing was sent.
    case invalidWrite(id: UInt64, reason: String)
    /// A region id that is already registered, or a size that cannot be registered.
    case invalidRegion(RegionID, reason: String)
    /// A verbs or rdma_cm call failed: `call` is the C function, `errno` its error number.
    case systemCall(call: String, errno: Int32, message: String)
    /// The endpoint was closed.
    case closed
}

extension FabricError: CustomStringConvertible {
    public var description: String {
        switch self {
        case .noDevice(let requested?, let available):
            return "no RDMA device named '\(requested)' (found: \(available.isEmpty ? "none" : available.joined(separator: ", ")))"
        case .noDevice(nil, let available):
            return available.isEmpty
                ? "no RDMA device found (ibv_get_device_list returned none; load a driver such as rdma_rxe, or use the in-process fabric)"
                : "no usable RDMA device among: \(available.joined(separator: ", "))"
        case .portUnusable(let device, let port, let reason):
            return "RDMA device \(device) port \(port) is not usable: \(reason)"
        case .memlockLimitTooLow(let requested, let limit, let already):
            let lim = limit.map { "\($0) bytes" } ?? "unlimited"
            return "cannot register \(requested) bytes of RDMA memory: the memlock limit (RLIMIT_MEMLOCK) is \(lim) and \(already) bytes are already registered; raise it with `ulimit -l unlimited` or in /etc/security/limits.conf"
        case .unreachable(let peer, let address, let reason):
            return "\(peer) at \(address) is unreachable: \(reason)"
        case .rejected(let peer, let address, let reason):
            return "\(peer) at \(address) rejected the connection: \(reason)"
        case .timedOut(let operation, let seconds):
            return "\(operation) timed out after \(seconds) s"
        case .connectionInErrorState(let conn, let peer, let cause):
            return "\(conn) to \(peer) is in the error state (\(cause)); reconnect to continue"
        case .unknownConnection(let conn):
            return "\(conn) is not open on this endpoint"
        case .sendQueueFull(let conn, let outstanding, let requested, let depth):
            return "send queue of \(conn) is full: \(outstanding) writes outstanding + \(requested) requested > depth \(depth)"
        case .invalidWrite(let id, let reason):
            return "write \(id) rejected: \(reason)"
        case .invalidRegion(let region, let reason):
            return "\(region): \(reason)"
        case .systemCall(let call, let errno, let message):
            return "\(call) failed: \(message) (errno \(errno))"
        case .closed:
            return "the fabric endpoint is closed"
        }
    }
}

extension FabricError {
    /// A post refused because its connection died since the caller last took the endpoint's events
    /// (a write of this process was refused, or the peer went away). The writes of that post are
    /// lost as if they had been in flight when the connection broke; the next events report the
    /// disconnect, and the driver reconnects or gives the peer up. A polling loop goes on.
    public var isDeadConnection: Bool {
        switch self {
        case .connectionInErrorState, .unknownConnection: true
        default: false
        }
    }
}
