import RamCastFabric
import RamCastProtocol

/// A cluster as its operators describe it: groups of processes with their addresses, the senders,
/// and the tuning knobs. Load it from a JSON file with ``load(path:environment:overrides:)``; every
/// process of a deployment uses the same file.
///
/// ```json
/// {
///   "groups": [
///     { "members": [ { "id": 0, "address": "10.0.0.1:18515" }, { "id": 1, "address": "10.0.0.2:18515" },
///                    { "id": 2, "address": "10.0.0.3:18515" } ] }
///   ],
///   "senders": [ { "id": 100, "address": "10.0.0.9:18515" } ],
///   "ring": { "slots": 16, "slotSize": 512 },
///   "inlineThreshold": 64,
///   "signalInterval": 8,
///   "singleGroupFastPath": false,
///   "failureDetection": { "heartbeatMicros": 1000, "timeoutMillis": 100 },
///   "rdma": { "device": "mlx5_0", "port": 1, "gidIndex": 3 }
/// }
/// ```
public struct ClusterConfiguration: Sendable, Hashable {
    public struct Process: Sendable, Hashable {
        public var id: NodeID
        /// `host:port` where the process listens for rdma_cm connections.
        public var host: String
        public var port: UInt16
        public init(id: NodeID, host: String, port: UInt16) {
            self.id = id
            self.host = host
            self.port = port
        }
    }

    public var groups: [[Process]]
    public var senders: [Process]
    public var slotsPerRing: Int = 16
    public var slotSize: Int = 512
    public var inlineThreshold: Int = 64
    public var signalInterval: Int = 8
    public var maxDestinations: Int?
    /// See ``ProtocolConfig/singleGroupFastPath``: faster single-group delivery at leaders, with
    /// agreement no longer uniform if a sender and a leader crash together.
    public var singleGroupFastPath = false
    /// Leader heartbeat period and the silence after which a leader is replaced, in nanoseconds.
    public var heartbeatInterval: UInt64 = 1_000_000
    public var failureTimeout: UInt64 = 100_000_000
    public var rdmaDevice: String?
    public var rdmaPort: Int = 1
    public var gidIndex: Int?

    public init(groups: [[Process]], senders: [Process]) {
        self.groups = groups
        self.senders = senders
    }

    /// The protocol's view of this configuration.
    public var protocolConfig: ProtocolConfig {
        var c = ProtocolConfig(groups: groups.map { $0.map(\.id) }, senders: senders.map(\.id), slotsPerRing: slotsPerRing,
                               slotSize: slotSize, inlineThreshold: inlineThreshold, signalInterval: signalInterval,
                               maxDestinations: maxDestinations)
        c.heartbeatInterval = heartbeatInterval
        c.failureTimeout = failureTimeout
        c.singleGroupFastPath = singleGroupFastPath
        return c
    }

    public var allProcesses: [Process] { groups.flatMap { $0 } + senders }
}

/// A configuration that cannot be used, with where the problem is: the file (or "environment" or
/// "flags") and the key path inside it.
public struct ConfigurationError: Error, Sendable, Hashable, CustomStringConvertible {
    public var source: String
    public var key: String
    public var reason: String

    public init(source: String, key: String, reason: String) {
        self.source = source
        self.key = key
        self.reason = reason
    }

    public var description: String { "\(source): \(key): \(reason)" }
}
