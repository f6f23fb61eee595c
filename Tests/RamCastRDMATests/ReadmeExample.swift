import Logging
import RamCast
import RamCastFabric
import RamCastProtocol
import RamCastRDMA

/// The README's "Using the library" example, kept here so that it keeps compiling. It is never
/// run (it needs a real cluster).
func readmeExample(apply: @escaping (UnsafeRawBufferPointer) -> Void) async throws {
    let config = try ClusterConfiguration.load(path: "cluster.json")
    let directory = Dictionary(uniqueKeysWithValues: config.allProcesses.map {
        ($0.id, RDMAAddress(host: $0.host, port: $0.port)) })
    let logger = Logger(label: "kv.shard")
    let runtime = try RamCastRuntime(configuration: config, local: [NodeID(3)], logger: logger,
                                     deliveryLogDirectory: "logs",
                                     onDelivery: { d in apply(d.payload) }) { id in   // hot path: no copy
        try RDMAEndpoint(node: id, configuration: RDMAConfiguration(directory: directory), logger: logger)
    }
    runtime.start()

    // On a sender process:
    let id = try await runtime.multicast(Array("put k v".utf8), to: [GroupID(0), GroupID(1)],
                                         waitFor: .deliveredEverywhere)
    _ = id

    // Or consume copies of the deliveries:
    for await d in runtime.deliveries { print(d.id, d.finalTimestamp, d.payload.count) }
}
