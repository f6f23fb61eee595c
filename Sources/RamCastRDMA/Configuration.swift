import RamCastFabric

/// Where a node's endpoint listens for rdma_cm connections: a numeric IP address of an RDMA-capable
/// interface (for RoCE, the IPv4 address behind the device's IPv4-mapped GID) and a port in the
/// rdma_cm TCP port space (`RDMA_PS_TCP`), which is separate from the kernel's TCP ports.
public struct RDMAAddress: Hashable, Sendable, CustomStringConvertible {
    /// Numeric IPv4 or IPv6 address; host names are not resolved.
    public var host: String
    public var port: UInt16

    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// How an ``RDMAEndpoint`` opens its device and sizes its queues.
public struct RDMAConfiguration: Sendable {
    /// Device name (`rxe0`, `mlx5_0`); nil takes the first device that ibv_get_device_list reports.
    public var device: String?
    /// Port number on the device, from 1.
    public var port: Int
    /// GID index to report and check; nil looks for the IPv4-mapped RoCE v2 GID. rdma_cm picks the
    /// GID from the bound IP address by itself, so this only validates the setup.
    public var gidIndex: Int?
    /// Every node's listening address, this node's included. Connections are accepted only from
    /// nodes listed here.
    public var directory: [NodeID: RDMAAddress]
    /// Writes that may be outstanding per connection (``FabricLimits/sendQueueDepth``).
    public var sendQueueDepth: Int
    /// Connections (accepted and initiated) open at once. Sizes the completion queue.
    public var maxConnections: Int
    /// Completion queue entries; nil computes a size that cannot overflow (see ``RDMAEndpoint``).
    /// A smaller explicit value is refused.
    public var completionQueueDepth: Int?
    /// Timeout used by ``RDMAEndpoint/connect(to:)``.
    public var connectTimeout: Duration
    /// Caps the inline limit below what the device accepts (nil: use the probed maximum).
    public var maxInlineBytes: Int?
    /// RC transport retries before a write to a silent peer fails with `IBV_WC_RETRY_EXC_ERR` (0-7).
    public var retryCount: UInt8
    /// Receiver-not-ready retries for control messages (7 = retry forever).
    public var rnrRetryCount: UInt8

    public init(
        device: String? = nil,
        port: Int = 1,
        gidIndex: Int? = nil,
        directory: [NodeID: RDMAAddress],
        sendQueueDepth: Int = 128,
        maxConnections: Int = 16,
        completionQueueDepth: Int? = nil,
        connectTimeout: Duration = .seconds(5),
        maxInlineBytes: Int? = nil,
        retryCount: UInt8 = 7,
        rnrRetryCount: UInt8 = 7
    ) {
        self.device = device
        self.port = port
        self.gidIndex = gidIndex
        self.directory = directory
        self.sendQueueDepth = sendQueueDepth
        self.maxConnections = maxConnections
        self.completionQueueDepth = completionQueueDepth
        self.connectTimeout = connectTimeout
        self.maxInlineBytes = maxInlineBytes
        self.retryCount = retryCount
        self.rnrRetryCount = rnrRetryCount
    }
}
