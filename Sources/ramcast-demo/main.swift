import ArgumentParser
import Logging
import RamCast
import RamCastChecker
import RamCastFabric
import RamCastInProcess
import RamCastProtocol
import RamCastRDMA
import RamCastSimulation

#if canImport(Glibc)
import Glibc
#endif

/// A whole RamCast cluster in one process: groups of replicas, a few senders, a stream of messages
/// to one group or to several, every delivery checked for agreement and order at the end.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ramcast-demo",
        abstract: "Run a local RamCast cluster over the in-process fabric or RDMA, and check every delivery.")

    enum FabricKind: String, ExpressibleByArgument, CaseIterable { case memory, rdma }

    @Option(help: "memory (in-process, no NIC needed) or rdma.")
    var fabric: FabricKind = .memory
    @Option(help: "RDMA device (rdma only); default: the first one.")
    var device: String?
    @Option(help: "IP address of the RDMA device (rdma only); default: from its IPv4-mapped GID.")
    var address: String?
    @Option(help: "First rdma_cm port; node i listens on port + i.")
    var port: UInt16 = 18_515
    @Option(help: "Number of groups.")
    var groups: Int = 2
    @Option(help: "Processes per group (2f+1).")
    var processes: Int = 3
    @Option(help: "Number of senders.")
    var senders: Int = 2
    @Option(help: "Messages to multicast, in total.")
    var messages: Int = 2_000
    @Option(help: "Payload bytes per message.")
    var payload: Int = 64
    @Option(help: "Write one JSON line per delivery (and per multicast) to files in this directory, for ramcast-check.")
    var deliveryLog: String?

    func validate() throws {
        guard groups >= 1, groups <= 255 else { throw ValidationError("--groups must be in 1...255, got \(groups)") }
        guard processes >= 1, processes % 2 == 1 else { throw ValidationError("--processes must be odd (2f+1), got \(processes)") }
        guard senders >= 1 else { throw ValidationError("--senders must be at least 1, got \(senders)") }
        guard messages >= 1 else { throw ValidationError("--messages must be at least 1, got \(messages)") }
        guard payload >= 0, payload <= Self.maxPayload else {
            throw ValidationError("--payload must be in 0...\(Self.maxPayload), got \(payload)")
        }
        let nodes = groups * processes + senders
        guard processes <= 255, senders <= 0xFFFF, nodes <= 1 << 16 else {
            throw ValidationError("--groups \(groups) × --processes \(processes) + --senders \(senders) is too large a cluster (at most 255 processes per group and 65535 senders)")
        }
        guard fabric == .memory || Int(port) + nodes - 1 <= Int(UInt16.max) else {
            throw ValidationError("--port \(port): node i listens on port + i, and \(nodes) nodes need ports up to \(Int(port) + nodes - 1) > 65535")
        }
        if let deliveryLog {
            // Before the run, not after it: a bad path must not cost the run.
            do { try DeliveryLogWriter.prepareDirectory(deliveryLog) } catch { throw ValidationError("--delivery-log: \(error)") }
        }
    }

    /// Payloads must leave a slot within ``ProtocolConfig/maxSlotSize`` for the header and acks.
    static let maxPayload = ProtocolConfig.maxSlotSize / 2

    mutating func run() throws {
        var logger = Logger(label: "ramcast.demo")
        logger.logLevel = .info
        var next: UInt32 = 0
        let groupMembers = (0..<groups).map { _ in (0..<processes).map { _ in defer { next += 1 }; return NodeID(next) } }
        let senderIDs = (0..<senders).map { _ in defer { next += 1 }; return NodeID(next) }
        let slotSize = max(256, (payload + 64 + groups * (3 + 8 * processes) + 63) & ~63)
        let layout = try Layout(ProtocolConfig(groups: groupMembers, senders: senderIDs, slotsPerRing: 16, slotSize: slotSize))
        if fabric == .memory, let memory = ProcessNode.physicalMemory {
            let needed = ProcessNode.registeredBytes(layout.servers + senderIDs, layout: layout, sendQueueDepth: 128)
            guard needed <= memory / 2 else {
                throw ValidationError("--groups \(groups) × --processes \(processes), --senders \(senders) and --payload \(payload) need \(needed) bytes of fabric memory; this machine has \(memory)")
            }
        }

        let memory = InProcessFabric(schedule: .immediate)
        let makeEndpoint: (NodeID) throws(FabricError) -> any FabricEndpoint
        var fabricName = "in-process"
        switch fabric {
        case .memory:
            makeEndpoint = { (id: NodeID) throws(FabricError) -> any FabricEndpoint in try memory.makeEndpoint(id) }
        case .rdma:
            let info = RDMAEndpoint.devices()
            guard let dev = device.flatMap({ d in info.first { $0.name == d } }) ?? (device == nil ? info.first : nil) else {
                throw FabricError.noDevice(requested: device, available: info.map(\.name))
            }
            guard let ip = address ?? dev.ports.first?.gids.first(where: { $0.ipv4 != nil })?.ipv4 else {
                throw ValidationError("device \(dev.name) has no IPv4-mapped GID; pass --address")
            }
            var directory: [NodeID: RDMAAddress] = [:]
            for id in layout.servers + senderIDs { directory[id] = RDMAAddress(host: ip, port: port + UInt16(id.rawValue)) }
            let config = RDMAConfiguration(device: dev.name, directory: directory, sendQueueDepth: 128,
                                           maxConnections: layout.servers.count + senderIDs.count)
            fabricName = "rdma \(dev.name) at \(ip)"
            let log = logger
            makeEndpoint = { (id: NodeID) throws(FabricError) -> any FabricEndpoint in
                try RDMAEndpoint(node: id, configuration: config, logger: log)
            }
        }
        logger.info("starting \(groups) groups × \(processes) processes and \(senders) senders over \(fabricName)")
        let cluster = try LocalCluster(layout: layout, makeEndpoint: makeEndpoint)
        let recorder = HistoryRecorder(layout: layout)
        let log = try deliveryLog.map { try DeliveryLogWriter(directory: $0, layout: layout, local: layout.servers + senderIDs) }

        var body = [UInt8](repeating: 0, count: payload)
        var sent = 0, expected = 0, delivered = 0
        var deliveredBy: [NodeID: Int] = [:]
        var sentBy: [NodeID: Int] = [:]
        var rng = SplitMix64(seed: 1)
        let clock = ContinuousClock()
        let start = clock.now
        var lastProgress = start
        let deliver: (borrowing Delivery) -> Void = { d in
            recorder.delivered(d)
            log?.delivered(d)
            deliveredBy[d.process, default: 0] += 1
            delivered += 1
        }
        while sent < messages || delivered < expected {
            for s in cluster.senders where sent < messages {
                // Two in three messages go to one group, the rest to two (when there are two).
                var dst = [RamCastProtocol.GroupID(UInt8(rng.next() % UInt64(groups)))]
                if groups > 1, rng.next() % 3 == 0 {
                    dst.append(RamCastProtocol.GroupID(UInt8((Int(dst[0].rawValue) + 1) % groups)))
                }
                for i in 0..<min(8, payload) { body[i] = UInt8(truncatingIfNeeded: sent >> (i * 8)) }
                let id = try body.withUnsafeBytes { p in try dst.withUnsafeBufferPointer { try s.sender!.multicast(p, to: $0) } }
                if let id {
                    recorder.multicast(id, destinations: dst)
                    log?.multicast(id, destinations: dst)
                    sent += 1
                    sentBy[s.id, default: 0] += 1
                    expected += dst.count * processes
                }
            }
            if try cluster.pumpAll(deliver) { lastProgress = clock.now }
            if clock.now - lastProgress > .seconds(30) {
                print("ramcast-demo: no progress for 30 s: \(sent) sent, \(delivered) of \(expected) deliveries")
                throw ExitCode(1)
            }
        }
        let elapsed = clock.now - start
        log?.close()
        cluster.close()
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let report = check(recorder.history, membership: recorder.membership, quiescent: true)
        print("fabric:      \(fabricName)")
        print("cluster:     \(groups) groups × \(processes), \(senders) senders, \(payload)-byte payloads")
        print("multicasts:  \(sent) (\(String(format: "%.0f", Double(sent) / seconds)) msgs/s, one polling thread)")
        print("deliveries:  \(delivered) in \(String(format: "%.3f", seconds)) s")
        // Writes per message a process took part in (sent, or delivered), averaged over the role.
        var perRole: [String: (writes: UInt64, messages: Int)] = [:]
        for n in cluster.nodes {
            let role = n.sender != nil ? "sender" : (n.server!.isLeader ? "leader" : "follower")
            perRole[role, default: (0, 0)].writes += n.driver.writesPosted
            perRole[role, default: (0, 0)].messages += n.sender != nil ? sentBy[n.id, default: 0] : deliveredBy[n.id, default: 0]
        }
        let roles = perRole.sorted(by: { $0.key > $1.key }).map { "\($0.key) \(String(format: "%.2f", Double($0.value.writes) / Double(max(1, $0.value.messages))))" }
        print("writes/msg:  \(roles.joined(separator: ", ")) (RDMA writes per message a process sent or delivered)")
        print("checker:     \(report.isClean ? "all properties hold" : "VIOLATIONS")")
        if !report.isClean {
            print(report)
            throw ExitCode(1)
        }
    }
}

Demo.main()
