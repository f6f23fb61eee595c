import ArgumentParser
import Histogram
import RamCast
import RamCastFabric
import RamCastProtocol

/// A whole cluster in this OS process: every group member and sender, driven by `--pollers`
/// threads (nodes split round-robin), over the in-process fabric or RDMA.
enum LocalRunner {
    static func run(cluster: ClusterOptions, load: LoadOptions, fabric: FabricOptions, output: OutputOptions,
                    printBanner: Bool = true) throws -> BenchResult {
        try LeaderCrash.check(output.crashLeaderAfter, groupSize: cluster.processes, steps: cluster.steps)
        var spec = RunSpec(mode: "local", cluster: cluster, load: load, fabric: fabric, output: output)
        let layout: Layout
        do {
            layout = try Layout(spec.localProtocolConfig())
        } catch {
            throw BenchError.input("invalid configuration: \(error)")
        }
        guard spec.payload <= layout.maxPayload else {
            throw BenchError.input("--payload \(spec.payload) does not fit a \(spec.slotSize)-byte slot (at most \(layout.maxPayload) bytes); raise --slot-size")
        }
        // The whole cluster's memory, before any of it is allocated: pinned (RDMA) or plain (in-process).
        let everyone0 = layout.servers + layout.config.senders
        if fabric.fabric == .rdma {
            try Fabrics.checkMemlock(nodes: everyone0, layout: layout, sendQueueDepth: spec.sendQueueDepth)
        } else if let memory = ProcessNode.physicalMemory {
            let needed = ProcessNode.registeredBytes(everyone0, layout: layout, sendQueueDepth: spec.sendQueueDepth)
            guard needed <= memory / 2 else {
                throw BenchError.input("the cluster's regions take \(needed.grouped) bytes (--slots \(spec.slots) × --slot-size \(spec.slotSize) per sender and member, and the logs); this machine has \(memory.grouped): lower --slots, --slot-size, --senders or --groups")
            }
        }
        let (factory, crash) = try Fabrics.local(fabric, layout: layout, spec: &spec)
        let leader = layout.config.groups[0][0]
        let state = RunState(senders: spec.senders, window: layout.senderStagingCount, pollers: spec.pollers,
                             crashGroup: output.crashLeaderAfter == nil ? nil : 0)
        let table = DestinationTable(groups: spec.groups, mix: spec.destinations)
        let progress = ProgressLine(enabled: output.showProgress)
        let everyone = layout.servers + layout.config.senders
        var pollers: [Poller] = []
        var assignments: [[NodeID]] = []
        for p in 0..<spec.pollers {
            let poller = Poller(index: p, state: state, spec: spec, layout: layout, table: table, publishLive: progress.enabled)
            let local = everyone.enumerated().filter { $0.offset % spec.pollers == p }.map(\.element)
            if let dir = output.deliveryLog {
                poller.log = try DeliveryLogWriter(directory: dir, layout: layout, local: local)
            }
            if let n = output.crashLeaderAfter {
                poller.crashTarget = leader
                if local.contains(leader) { poller.crashPlan = CrashPlan(target: leader, after: n, crash: crash) }
            }
            pollers.append(poller)
            assignments.append(local)
        }
        if printBanner, !output.quiet { print(Report.banner(spec)) }

        let threads = pollers.map { poller in
            let local = assignments[poller.index]
            let makeEndpoint = factory(poller.index)
            return JoinableThread(name: "ramcast-poller-\(poller.index)") {
                do {
                    try poller.setUp(local: local, connectTimeout: .seconds(30), makeEndpoint: makeEndpoint)
                    state.ready.wrappingIncrement(ordering: .releasing)
                    try poller.run()
                } catch {
                    state.fail(error)
                }
            }
        }
        let controller = Controller(state: state, pollers: spec.pollers, progress: progress)
        var window: MeasuredWindow?
        var failure: (any Error)?
        do {
            try controller.waitReady(timeout: 60)
            window = try controller.runLoad(warmup: spec.warmup, duration: spec.duration, messages: spec.messages)
        } catch {
            failure = error
        }
        state.set(.exit)
        for t in threads { t.join() }
        progress.clear()
        for p in pollers { p.close() }
        if let e = state.error ?? failure { throw e }
        spec.setupSeconds = pollers.map(\.setupSeconds).max() ?? 0
        var r = result(spec: spec, pollers: pollers, window: window!, latencyPoint: LatencyPoint.description)
        r.failoverMs = state.failoverMilliseconds
        r.messagesPerSecondAroundCrash = window!.throughputAroundCrash(state)
        if let n = output.crashLeaderAfter {
            try LeaderCrash.finish(r, after: n, target: leader, layout: layout, deliveryLog: output.deliveryLog)
        }
        return r
    }

    static func result(spec: RunSpec, pollers: [Poller], window: MeasuredWindow, latencyPoint: String,
                       process: (id: UInt32, role: String)? = nil) -> BenchResult {
        var latency = pollers[0].latency
        var completion = pollers[0].completion
        for p in pollers.dropFirst() {
            latency.add(p.latency)
            completion.add(p.completion)
        }
        var processes: [ProcessResult] = []
        for p in pollers {
            for (node, writes, messages) in p.measuredCounts() {
                let role = p.isCrashed(node) ? "crashed"
                    : node.sender != nil ? "sender" : (node.server!.isLeader ? "leader" : "follower")
                processes.append(ProcessResult(id: node.id.rawValue, role: role,
                                               group: node.server.map { Int($0.group.rawValue) },
                                               writes: writes, messages: messages))
            }
        }
        processes.sort { $0.id < $1.id }
        var r = BenchResult(spec: spec, process: process, seconds: window.seconds, messages: window.messages,
                            latency: LatencySummary(latency), completion: LatencySummary(completion),
                            latencyPoint: latencyPoint, processes: processes, cpu: window.cpu)
        r.crashedProcesses = pollers.flatMap(\.crashedNodes).map(\.rawValue)
        return r
    }
}
