import ArgumentParser
import Logging
import RamCast
import RamCastFabric
import RamCastInProcess
import RamCastProtocol
import RamCastRDMA

/// A failure the user can fix, said plainly (no stack, exit status 2).
struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// `--crash-leader-after`: the flag is parsed and plumbed through the poller (see ``CrashPlan``), and
/// the library recovers leaders (see Scripts/failover-rxe.sh), but this benchmark's run loop does
/// not get past the crash yet: a local run stalls after it. Flip this once it does.
enum LeaderRecovery {
    static let isAvailable = false

    static func check(_ crashAfter: Int?) throws {
        guard let n = crashAfter else { return }
        guard n >= 1 else { throw ValidationError("--crash-leader-after must be at least 1") }
        guard isAvailable else {
            throw BenchError("--crash-leader-after is not supported by ramcast-bench yet: its run loop stalls after the crash. Leader recovery itself works: Scripts/failover-rxe.sh kills a leader process mid-stream and reports the failover time.")
        }
    }
}

/// How a run's endpoints are made: one factory per polling thread.
enum Fabrics {
    static func logger() -> Logger {
        var l = Logger(label: "ramcast.bench")
        l.logLevel = .warning
        return l
    }

    /// The RDMA device to use, and the IPv4 address behind it.
    static func device(named name: String?, address: String?, port: Int) throws -> (RDMADeviceInfo, String) {
        let devices = RDMAEndpoint.devices()
        guard !devices.isEmpty else {
            throw BenchError("no RDMA device found (ibv_get_device_list lists none). Use --fabric memory, or load a driver (soft-RoCE: `modprobe rdma_rxe && rdma link add rxe0 type rxe netdev eth0`). `ramcast-bench config` shows what is visible.")
        }
        let dev: RDMADeviceInfo
        if let name {
            guard let d = devices.first(where: { $0.name == name }) else {
                throw BenchError("no RDMA device named \(name); found: \(devices.map(\.name).joined(separator: ", "))")
            }
            dev = d
        } else {
            dev = devices[0]
        }
        guard let p = dev.ports.first(where: { $0.number == port }) else {
            throw BenchError("device \(dev.name) has no port \(port)")
        }
        guard p.isActive else { throw BenchError("device \(dev.name) port \(port) is \(p.state), not active") }
        if let address { return (dev, address) }
        guard let ip = p.gids.first(where: { $0.ipv4 != nil && $0.type == "RoCE v2" })?.ipv4 ?? p.gids.first(where: { $0.ipv4 != nil })?.ipv4 else {
            throw BenchError("device \(dev.name) port \(port) has no IPv4-mapped GID; pass --address with the IP of its interface")
        }
        return (dev, ip)
    }

    /// Endpoint factories for a local run. Memory: one in-process fabric, which the one poller uses.
    /// RDMA: every node listens on `address:cm-port+id`.
    static func local(_ options: FabricOptions, layout: Layout, spec: inout RunSpec)
        throws -> (factory: (Int) -> (NodeID) throws(FabricError) -> any FabricEndpoint, crash: (ProcessNode) -> Void) {
        switch options.fabric {
        case .memory:
            let fabric = InProcessFabric(schedule: .immediate)
            spec.fabricDescription = "memory (in-process fabric)"
            let factory: (Int) -> (NodeID) throws(FabricError) -> any FabricEndpoint = { _ in
                { (id: NodeID) throws(FabricError) -> any FabricEndpoint in try fabric.makeEndpoint(id) }
            }
            return (factory, { node in fabric.crash(node.id) })
        case .rdma:
            let port = options.port ?? 1
            let (dev, ip) = try device(named: options.device, address: options.address, port: port)
            let all = layout.servers + layout.config.senders
            guard Int(options.cmPort) + Int(all.map(\.rawValue).max() ?? 0) <= 65_535 else {
                throw ValidationError("--cm-port \(options.cmPort) + node ids exceed 65535")
            }
            var directory: [NodeID: RDMAAddress] = [:]
            for id in all { directory[id] = RDMAAddress(host: ip, port: options.cmPort + UInt16(id.rawValue)) }
            let config = RDMAConfiguration(device: dev.name, port: port, gidIndex: options.gidIndex, directory: directory,
                                           sendQueueDepth: options.sendQueueDepth, maxConnections: all.count + 1,
                                           connectTimeout: .seconds(5))
            spec.fabricDescription = "rdma \(dev.name) port \(port) at \(ip)"
            let log = logger()
            let factory: (Int) -> (NodeID) throws(FabricError) -> any FabricEndpoint = { _ in
                { (id: NodeID) throws(FabricError) -> any FabricEndpoint in try RDMAEndpoint(node: id, configuration: config, logger: log) }
            }
            return (factory, { node in node.driver.endpoint.close() })
        }
    }
}
