import ArgumentParser
import Foundation
import Logging
import RamCast
import RamCastChecker
import RamCastFabric
import RamCastInProcess
import RamCastProtocol
import RamCastRDMA

/// A failure said plainly (no stack). The exit status follows README "Exit status": 64 for an input
/// the user must fix (``input(_:)``: a flag, the cluster file, a size that does not fit), 1 for a run
/// that failed.
struct BenchError: Error, CustomStringConvertible {
    var description: String
    var exitCode: Int32 = 1
    init(_ description: String) { self.description = description }

    static func input(_ description: String) -> BenchError {
        var e = BenchError(description)
        e.exitCode = 64
        return e
    }
}

/// `--crash-leader-after N`: group 0's first leader is crashed after it delivered N messages (see
/// ``CrashPlan``), the survivors elect a new leader and the run goes on. A message the crashed
/// process had not delivered is no longer required of it (``RunState/crashTarget(at:)``).
enum LeaderCrash {
    static func validate(_ crashAfter: Int?) throws {
        guard let n = crashAfter else { return }
        guard n >= 1 else { throw ValidationError("--crash-leader-after must be at least 1, got \(n)") }
    }

    /// Leader recovery is part of the full protocol, and group 0 must keep a majority after losing
    /// its leader.
    static func check(_ crashAfter: Int?, groupSize: Int, steps: Int) throws {
        guard crashAfter != nil else { return }
        guard steps == 3 else {
            throw BenchError.input("--crash-leader-after needs --steps 3 (got \(steps)): leader recovery belongs to the full protocol; a --steps 2 run stalls after the crash, and --steps 1 has no leader work to take over")
        }
        guard groupSize >= 3 else {
            throw BenchError.input("--crash-leader-after needs at least 3 processes in group 0 (it has \(groupSize)): a group of \(groupSize) has no majority left once its leader crashed")
        }
    }

    /// After the run: say so if the crash never happened, and list the crashed process in the
    /// delivery log's cluster.json, so that the checker does not require of it what it missed.
    static func finish(_ r: BenchResult, after n: Int, target: NodeID, layout: Layout, deliveryLog: String?) throws {
        if r.crashedProcesses.isEmpty {
            writeStderr("ramcast-bench: note: node \(target.rawValue) (group 0's leader) delivered fewer than \(n) messages, so it was never crashed; lower --crash-leader-after\n")
        }
        guard let dir = deliveryLog, !r.crashedProcesses.isEmpty else { return }
        try markCrashed(r.crashedProcesses, in: dir, layout: layout)
    }

    /// Rewrites `DIR/cluster.json` (written by ``DeliveryLogWriter``) with `crashed` filled in.
    static func markCrashed(_ crashed: [UInt32], in dir: String, layout: Layout) throws {
        var membership: [RamCastChecker.GroupID: [ProcessID]] = [:]
        for (g, members) in layout.config.groups.enumerated() {
            membership[RamCastChecker.GroupID(UInt32(g))] = members.map { ProcessID($0.rawValue) }
        }
        let text = DeliveryLog.clusterFile(membership: try Membership(groups: membership), crashed: crashed.map(ProcessID.init(rawValue:)))
        let path = dir + "/" + DeliveryLog.clusterFileName
        do {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            throw BenchError("cannot record the crash in \(path): \(error)")
        }
    }
}

/// How a run's endpoints are made: one factory per polling thread.
enum Fabrics {
    /// Refuses a run whose regions, all of `nodes` together, exceed the memlock limit, before any is
    /// registered: otherwise the first registrations succeed and a later one fails half-way through
    /// set-up. `CAP_IPC_LOCK` or an unlimited limit passes.
    static func checkMemlock(nodes: [NodeID], layout: Layout, sendQueueDepth: Int) throws {
        let needed = ProcessNode.registeredBytes(nodes, layout: layout, sendQueueDepth: sendQueueDepth)
        do {
            try MemlockStatus.current().check(requested: needed, alreadyLocked: 0)
        } catch {
            throw BenchError.input("\(error) (\(nodes.count) process\(nodes.count == 1 ? "" : "es"): ring slots × slot size per sender and member, plus logs and outboxes; lower --slots or the slot size)")
        }
    }

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
