// Microbenchmarks of the engine's hot paths on the in-process fabric, with ordo-one/benchmark's
// malloc counters: after warm-up, the steady state of a LocalCluster over InProcessFabric(.immediate)
// driven by one thread, as `ramcast-bench local` drives it.
//
//   swift package --package-path Benchmarks benchmark --target EngineHotPath
//
// One benchmark iteration = one message multicast and delivered by every destination process (k·p
// deliveries for k destination groups of p processes), with 8 messages kept in flight. With
// `scalingFactor: .kilo` the tool reports each metric per iteration, so `Malloc (total)` is
// heap allocations per delivered message; the goal is 0.
import Benchmark
import RamCast
import RamCastFabric
import RamCastInProcess
import RamCastProtocol

/// A cluster of `groups` × `processes` and one sender, with a preallocated payload and destination
/// set, pumped by the caller's thread.
final class HotPathHarness {
    let fabric = InProcessFabric(schedule: .immediate)
    let cluster: LocalCluster
    let sender: SenderEngine
    let destinations: UnsafeMutableBufferPointer<RamCastProtocol.GroupID>
    let payload: UnsafeMutableRawBufferPointer
    let deliveriesPerMessage: Int
    let window: Int
    var sent = 0
    var deliveries = 0

    init(groups: Int, processes: Int, destinations count: Int, steps: Int, payload size: Int = 64) throws {
        var next: UInt32 = 0
        let members = (0..<groups).map { _ in (0..<processes).map { _ in defer { next += 1 }; return NodeID(next) } }
        var config = ProtocolConfig(groups: members, senders: [NodeID(next)], slotsPerRing: 16, slotSize: 512,
                                    maxDestinations: count)
        config.steps = steps
        let layout = try Layout(config)
        let fabric = fabric
        cluster = try LocalCluster(layout: layout) { (id: NodeID) throws(FabricError) -> any FabricEndpoint in
            try fabric.makeEndpoint(id)
        }
        sender = cluster.senders[0].sender!
        destinations = .allocate(capacity: count)
        for j in 0..<count { destinations[j] = RamCastProtocol.GroupID(UInt8(j)) }
        payload = .allocate(byteCount: size, alignment: 8)
        payload.initializeMemory(as: UInt8.self, repeating: 7)
        deliveriesPerMessage = count * processes
        window = min(8, layout.senderStagingCount)
    }

    deinit {
        cluster.close()
        destinations.deallocate()
        payload.deallocate()
    }

    var completed: Int { deliveries / deliveriesPerMessage }

    /// Runs until `messages` more messages were delivered everywhere, keeping `window` in flight.
    @inline(never)
    func run(messages: Int) throws {
        let target = completed + messages
        while completed < target {
            while sent - completed < window,
                  try sender.multicast(UnsafeRawBufferPointer(payload), to: UnsafeBufferPointer(destinations)) != nil {
                sent += 1
            }
            try cluster.pumpAll { _ in self.deliveries &+= 1 }
        }
    }
}

/// Set up once per benchmark (outside the measurement), warmed up, torn down after.
nonisolated(unsafe) var harness: HotPathHarness?

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal, .memoryLeaked],
        warmupIterations: 1,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 20
    )

    let shapes: [(name: String, groups: Int, processes: Int, destinations: Int, steps: Int)] = [
        ("1 group x 3, steps 1-3", 1, 3, 1, 3),
        ("2 groups x 3, 2 destinations, steps 1-3", 2, 3, 2, 3),
        ("1 group x 3, step 1", 1, 3, 1, 1),
        ("1 group x 3, steps 1-2", 1, 3, 1, 2),
        ("2 groups x 3, 2 destinations, step 1", 2, 3, 2, 1),
    ]
    for shape in shapes {
        Benchmark("Delivered message, \(shape.name)") { benchmark in
            guard let h = harness else { return }
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                try! h.run(messages: 1)
            }
            benchmark.stopMeasurement()
        } setup: {
            let h = try HotPathHarness(groups: shape.groups, processes: shape.processes,
                                       destinations: shape.destinations, steps: shape.steps)
            try h.run(messages: 5_000)   // warm-up: every ring lapped, every table touched
            harness = h
        } teardown: {
            harness = nil
        }
    }
}
