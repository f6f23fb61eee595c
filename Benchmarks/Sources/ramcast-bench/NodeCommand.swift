import ArgumentParser
import Foundation
import Logging
import RamCast
import RamCastFabric
import RamCastProtocol
import RamCastRDMA

/// One process of a multi-process run: `ramcast-bench node --config cluster.json --id N`.
///
/// Every process of the cluster file runs this with its own id (start order does not matter:
/// connecting retries for --connect-timeout). Senders generate the load (--duration or --messages,
/// which is per sender here), wait until everything they sent was delivered everywhere, then
/// multicast a stop message to every group and report. Group members run until they delivered a stop
/// message from every sender of the file, linger --linger seconds so that peers finish, and report
/// what they did. --stop-file, SIGINT or --max-seconds end any process early.
struct Node: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one process of a multi-process cluster (one per node, a shared cluster file).",
        discussion: """
            Start every process of the cluster file, on its machine, with the same flags:
              ramcast-bench node --config cluster.json --id 0 --steps 3      (group members)
              ramcast-bench node --config cluster.json --id 100 --steps 3 --duration 10 --json s100.json
            Senders print the throughput and latency table; group members print their own writes and
            CPU. Latency at a sender: until it sees the slot released by the last follower of the first
            destination group (delivery plus one write back), so no clock is shared between machines.
            The cluster shape, ring, inline and signaling settings come from the file; --steps,
            --payload and --destinations must be the same in every process.
            --crash-leader-after N, given to every process: group 0's first leader closes its
            endpoint once it delivered N messages (its peers see its connections die, as after
            kill -9) and exits with its report; the others list it in crashed_processes, and group
            0's new leader reports failover_ms, measured there from the moment its connection to
            the old leader died (machines share no clock) to its first delivery as leader.
            """)

    @Option(help: "Cluster file (ClusterConfiguration JSON: groups with member ids and host:port, senders, ring, rdma).")
    var config: String

    @Option(help: "This process's id in the cluster file.")
    var id: UInt32

    @Option(help: "How much of the protocol runs: 1, 2 or 3 (the same in every process).")
    var steps: Int = 3

    @Flag(help: "Single-group fast path (same in every process), as if the file said \"singleGroupFastPath\": true.")
    var fastPath: Bool = false

    @Option(help: ArgumentHelp("Destination groups per message: a number, or a weighted mix such as 1:3,2:1.", valueName: "n|n:w,..."))
    var destinations: DestinationMix = DestinationMix(count: 1)

    @OptionGroup(title: "Load (senders)") var load: LoadOptions

    @Option(help: "RDMA device (overrides the file's rdma.device).")
    var device: String?
    @Option(help: "Port number on the RDMA device (overrides the file's rdma.port).")
    var port: Int?
    @Option(help: "GID index (overrides the file's rdma.gidIndex).")
    var gidIndex: Int?
    @Option(help: "Writes outstanding per connection.")
    var sendQueueDepth: Int = 128
    @Flag(help: "Spin even when idle (default: yield, then nap, after a millisecond without work).")
    var busyPoll: Bool = false
    @Option(help: "Idle microseconds (yielding the core) before the poller starts to nap 50 µs at a time; lower it when many processes share few cores.")
    var napAfterUs: Int = 1000

    @Option(help: "Seconds to wait for every peer to come up.")
    var connectTimeout: Double = 60
    @Option(help: "Group members: seconds to keep polling after the last stop message, while peers finish.")
    var linger: Double = 2
    @Option(help: "End this process (gracefully, with its report) when this file exists.")
    var stopFile: String?
    @Option(help: "End this process after this many seconds whatever happens.")
    var maxSeconds: Double?

    @Flag(help: "Log each phase of this process, with timestamps, on standard error.")
    var verbose: Bool = false

    @OptionGroup(title: "Output") var output: OutputOptions

    func validate() throws {
        guard (1...3).contains(steps) else { throw ValidationError("--steps must be 1, 2 or 3, got \(steps)") }
        try checkSeconds(linger, "--linger", allowZero: true)
        try checkSeconds(connectTimeout, "--connect-timeout")
        if let maxSeconds { try checkSeconds(maxSeconds, "--max-seconds") }
        try checkNapAfter(napAfterUs)
        try checkSendQueueDepth(sendQueueDepth)
    }

    func run() throws {
        installInterruptHandlers()
        RamCastBenchGlobals.setStopFile(stopFile)
        do {
            let r = try NodeRunner(command: self).run()
            try emit(r, output: output)
        } catch let e as BenchError {
            writeStderr("ramcast-bench node \(id): \(e.description)\n")
            throw ExitCode(e.exitCode)
        }
    }
}

enum RamCastBenchGlobals {
    static func setStopFile(_ path: String?) { stopFile = path }
}

struct NodeRunner {
    let command: Node

    func run() throws -> BenchResult {
        let c = command
        let file: ClusterConfiguration
        do {
            // The flags that override the file go through its checks, named as flags.
            var overrides: [String: String] = [:]
            if let d = c.device { overrides["rdma.device"] = d }
            if let p = c.port { overrides["rdma.port"] = String(p) }
            if let g = c.gidIndex { overrides["rdma.gidIndex"] = String(g) }
            file = try ClusterConfiguration.load(path: c.config, overrides: overrides,
                                                 flagNames: ["rdma.device": "--device", "rdma.port": "--port", "rdma.gidIndex": "--gid-index"])
        } catch {
            throw BenchError.input("\(error)")
        }
        var pc = file.protocolConfig
        pc.steps = c.steps
        if c.fastPath { pc.singleGroupFastPath = true }
        let layout: Layout
        do {
            layout = try Layout(pc)
        } catch {
            throw BenchError.input("\(c.config): \(error)")
        }
        try LeaderCrash.check(c.output.crashLeaderAfter, groupSize: layout.config.groups[0].count, steps: c.steps)
        let me = NodeID(c.id)
        let isSender = layout.senderIndexOf[me] != nil
        guard isSender || layout.groupOf[me] != nil else {
            throw BenchError.input("--id \(c.id) is not in \(c.config) (members: \(layout.servers.map { "\($0.rawValue)" }.joined(separator: ", ")); senders: \(layout.config.senders.map { "\($0.rawValue)" }.joined(separator: ", ")))")
        }
        guard c.destinations.maxCount <= layout.maxDestinations else {
            throw BenchError.input("--destinations \(c.destinations): the file allows at most \(layout.maxDestinations) destination groups per message")
        }
        guard c.load.payload <= layout.maxPayload else {
            throw BenchError.input("--payload \(c.load.payload) does not fit the file's \(layout.slotSize)-byte slots (at most \(layout.maxPayload) bytes); raise ring.slotSize")
        }

        // The run as this process sees it.
        var spec = RunSpec(mode: "node", fabric: .rdma, groups: layout.groupCount, processes: layout.maxGroupSize,
                           destinations: c.destinations, senders: layout.config.senders.count, steps: c.steps,
                           slots: layout.slots, slotSize: layout.slotSize, inlineThreshold: layout.config.inlineThreshold,
                           signalInterval: layout.config.signalInterval, payload: c.load.payload,
                           outstanding: c.load.outstanding, duration: c.load.duration, warmup: c.load.effectiveWarmup,
                           messages: c.load.messages, pollers: 1, busyPoll: c.busyPoll, napAfterMicros: c.napAfterUs, seed: c.load.seed,
                           sendQueueDepth: c.sendQueueDepth, deliveryLog: c.output.deliveryLog)
        spec.fastPath = layout.config.singleGroupFastPath

        // RDMA endpoint from the file's addresses.
        var directory: [NodeID: RDMAAddress] = [:]
        for p in file.allProcesses { directory[p.id] = RDMAAddress(host: p.host, port: p.port) }
        let device = file.rdmaDevice
        let port = file.rdmaPort
        try Fabrics.checkMemlock(nodes: [me], layout: layout, sendQueueDepth: c.sendQueueDepth)
        let rdma = RDMAConfiguration(device: device, port: port, gidIndex: file.gidIndex, directory: directory,
                                     sendQueueDepth: c.sendQueueDepth, maxConnections: file.allProcesses.count + 1,
                                     connectTimeout: .seconds(5))
        let role = isSender ? "sender" : (layout.config.groups[Int(layout.groupOf[me]!.rawValue)][0] == me ? "leader" : "follower")
        spec.fabricDescription = "rdma \(device ?? "(first device)") port \(port), node \(c.id) (\(role)) at \(directory[me]!)"
        if !c.output.quiet {
            print(Report.banner(spec))
        }

        let state = RunState(senders: layout.config.senders.count, window: layout.senderStagingCount, pollers: 1)
        let table = DestinationTable(groups: layout.groupCount, mix: c.destinations)
        let progress = ProgressLine(enabled: c.output.showProgress)
        let poller = Poller(index: 0, state: state, spec: spec, layout: layout, table: table,
                            byReleases: isSender, countStops: !isSender, publishLive: progress.enabled)
        poller.quotaPerSender = c.load.messages
        if let dir = c.output.deliveryLog { poller.log = try DeliveryLogWriter(directory: dir, layout: layout, local: [me]) }
        // --crash-leader-after (given to every process): group 0's first leader crashes itself (closes
        // its endpoint: its peers see its connections die, as after kill -9, and cannot reconnect);
        // the others learn of it when their connection to it is gone for good.
        let crashTarget = layout.config.groups[0][0]
        let crashesItself = c.output.crashLeaderAfter != nil && me == crashTarget
        if let n = c.output.crashLeaderAfter {
            poller.crashTarget = crashTarget
            if crashesItself {
                poller.crashPlan = CrashPlan(target: me, after: n) { node in node.driver.endpoint.close() }
            } else {
                poller.crashIsRemote = true
            }
        }
        let log = Fabrics.logger()
        let thread = JoinableThread(name: "ramcast-poller") {
            do {
                try poller.setUp(local: [me], connectTimeout: .seconds(c.connectTimeout)) { (id: NodeID) throws(FabricError) -> any FabricEndpoint in
                    try RDMAEndpoint(node: id, configuration: rdma, logger: log)
                }
                state.ready.wrappingIncrement(ordering: .releasing)
                try poller.run()
            } catch {
                state.fail(error)
            }
        }
        let controller = Controller(state: state, pollers: 1, progress: progress)
        let start = nowNanos()
        let verbose = c.verbose
        func note(_ what: String) {
            if verbose { writeStderr("ramcast-bench node \(c.id): \((Double(nowNanos() - start) / 1e9).fixed(3)) s: \(what)\n") }
        }
        var window: MeasuredWindow?
        var failure: (any Error)?
        var watchdog: JoinableThread?
        if let limit = c.maxSeconds {
            watchdog = JoinableThread(name: "watchdog") {
                while Double(nowNanos() - start) / 1e9 < limit, state.currentPhase != .exit { usleep(50_000) }
                interrupted.store(true, ordering: .relaxed)
            }
        }
        do {
            try controller.waitReady(timeout: c.connectTimeout + 10)
            note("connected to \(poller.nodes.first.map { $0.peers.count } ?? 0) peers")
            if isSender {
                window = try controller.runLoad(warmup: spec.warmup, duration: spec.duration, messages: c.load.messages)
                note("load done, everything delivered everywhere; sending stop messages")
                state.set(.stopping)
                try controller.wait(phase: "stopping", from: start, total: nil) { state.stopsDone.load(ordering: .acquiring) >= 1 }
                note("stop messages delivered everywhere")
            } else {
                window = try serve(controller: controller, state: state, senders: layout.config.senders.count, progress: progress,
                                   crashesItself: crashesItself)
                if crashesItself, state.targetCrashed.load(ordering: .acquiring) {
                    note("crashed itself (--crash-leader-after) after \(poller.delivered.first ?? 0) deliveries")
                } else {
                    note("stop messages from every sender delivered; lingered \(c.linger.trim) s")
                }
            }
        } catch {
            failure = error
        }
        state.set(.exit)
        thread.join()
        interrupted.store(true, ordering: .relaxed)
        watchdog?.join()
        progress.clear()
        if poller.connectionErrors > 0 { note("\(poller.connectionErrors) post(s) hit a connection that had just died (recovered)") }
        note("closing the endpoint")
        poller.close()
        note("closed")
        if let e = state.error ?? failure { throw e }

        spec.setupSeconds = poller.setupSeconds
        let crashedHere = crashesItself && state.targetCrashed.load(ordering: .acquiring)
        var r = LocalRunner.result(spec: spec, pollers: [poller], window: window!,
                                   latencyPoint: isSender ? LatencyPoint.nodeDescription : "-",
                                   process: (c.id, crashedHere ? "crashed" : role))
        r.processes = r.processes.filter { $0.id == c.id }
        if let n = c.output.crashLeaderAfter {
            if state.targetCrashed.load(ordering: .acquiring) { r.crashedProcesses = [crashTarget.rawValue] }
            r.failoverMs = state.failoverMilliseconds
            if isSender { r.messagesPerSecondAroundCrash = window!.throughputAroundCrash(state) }
            if crashesItself {
                try LeaderCrash.finish(r, after: n, target: crashTarget, layout: layout, deliveryLog: c.output.deliveryLog)
            } else if let dir = c.output.deliveryLog, !r.crashedProcesses.isEmpty {
                try LeaderCrash.markCrashed(r.crashedProcesses, in: dir, layout: layout)
            }
        }
        if !isSender {
            let delivered = r.processes.first?.messages ?? 0
            let active = Double(poller.lastDeliveryAt &- poller.firstDeliveryAt) / 1e9
            r.messages = delivered
            r.seconds = active > 0 ? active : window!.seconds
            r.deliveriesPerSecond = active > 0 ? Double(delivered) / active : 0
        }
        return r
    }

    /// Group members: measure until a stop message from every sender was delivered here, then linger.
    private func serve(controller: Controller, state: RunState, senders: Int, progress: ProgressLine,
                       crashesItself: Bool) throws -> MeasuredWindow {
        let cpu0 = CPUTimes.now()
        let t0 = nowNanos()
        state.set(.measure)
        var lastLine: UInt64 = 0
        while state.stopsDelivered.load(ordering: .acquiring) < senders {
            if let e = state.error { throw e }
            if stopRequested() { break }
            if crashesItself, state.targetCrashed.load(ordering: .acquiring) {
                // This process is the crashed leader: it is out of the run, nothing to linger for.
                let t1 = nowNanos()
                state.set(.drain)
                return MeasuredWindow(start: t0, end: t1, cpu: controller.use(cpu0, CPUTimes.now(), t0, t1), messages: 0)
            }
            if progress.enabled, nowNanos() - lastLine > 1_000_000_000 {
                lastLine = nowNanos()
                let line = "[\(pad((Double(lastLine - t0) / 1e9).fixed(1), 5)) s  serving]  delivered \(state.deliveredTotal.load(ordering: .relaxed).grouped), stop messages \(state.stopsDelivered.load(ordering: .relaxed)) of \(senders)"
                writeStderr(stderrIsTTY ? "\r\u{1B}[2K" + line : line + "\n")
            }
            usleep(2_000)
        }
        let t1 = nowNanos()
        let cpu1 = CPUTimes.now()
        state.set(.drain)
        state.lingering.store(true, ordering: .relaxed)
        let end = nowNanos() + UInt64(command.linger * 1e9)
        while nowNanos() < end, state.error == nil { usleep(10_000) }
        return MeasuredWindow(start: t0, end: t1, cpu: controller.use(cpu0, cpu1, t0, t1), messages: 0)
    }
}
