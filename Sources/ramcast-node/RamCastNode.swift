import ArgumentParser
import Foundation
import Logging
import RamCast
import RamCastFabric
import RamCastProtocol
import RamCastRDMA

/// One process of a RamCast cluster over RDMA, from a shared cluster file: the multi-process
/// deployment, and what the failover test kills. Group members run until `STOP` appears in the
/// delivery-log directory (or `--duration` passes); a sender multicasts `--messages` messages,
/// mixing one- and two-group destinations, then waits until every live destination delivered them.
@main
struct RamCastNode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ramcast-node",
        abstract: "Run one RamCast process (group member or sender) over RDMA from a cluster file.")

    @Option(help: "The cluster file (JSON).")
    var config: String
    @Option(help: "This process's id in the cluster file.")
    var id: UInt32
    @Option(help: "Directory for delivery logs (one JSON line per delivery / multicast).")
    var deliveryLog: String
    @Option(help: "Sender: messages to multicast.")
    var messages: Int = 1000
    @Option(help: "Group member: give up after this many seconds.")
    var duration: Double = 600
    @Option(help: "Failure timeout in milliseconds (a leader silent for this long is replaced), 1...86400000. Default: the file's failureDetection.timeoutMillis.")
    var failureTimeoutMs: Int?
    @Option(help: "Group member: 0 for a first start; N > 0 after a crash. The process comes back with empty memory, is taken back in by its group and delivers from a cut on (logged as 'rejoined'); its delivery log is deliveries-<id + N × 1,000,000>.jsonl.")
    var incarnation: UInt32 = 0

    func validate() throws {
        guard messages >= 0 else { throw ValidationError("--messages must not be negative, got \(messages)") }
        guard duration.isFinite, duration > 0, duration <= 365 * 86_400 else {
            throw ValidationError("--duration must be a number of seconds in (0, 31536000], got \(duration)")
        }
    }

    mutating func run() async throws {
        var logger = Logger(label: "ramcast.node.\(id)")
        logger.logLevel = .info
        let cluster: ClusterConfiguration
        do {
            // Through the file's checks, so a bad value is refused with the flag's name.
            cluster = try ClusterConfiguration.load(
                // Only when given: a default here would silently replace the file's value.
                path: config, overrides: failureTimeoutMs.map { ["failureDetection.timeoutMillis": String($0)] } ?? [:],
                flagNames: ["failureDetection.timeoutMillis": "--failure-timeout-ms"])
        } catch {
            printError("ramcast-node: \(error)")
            throw ExitCode(64)  // EX_USAGE: see README, "Exit status"
        }
        do {
            // Before connecting, not after the run: a bad path must not cost the run.
            try DeliveryLogWriter.prepareDirectory(deliveryLog)
        } catch {
            printError("ramcast-node: --delivery-log \(error)")
            throw ExitCode(64)
        }
        let me = NodeID(id)
        guard cluster.allProcesses.contains(where: { $0.id == me }) else {
            throw ValidationError("--id \(id): process \(id) is not in \(config)")
        }
        let directory = Dictionary(uniqueKeysWithValues: cluster.allProcesses.map { ($0.id, RDMAAddress(host: $0.host, port: $0.port)) })
        let rdma = RDMAConfiguration(device: cluster.rdmaDevice, directory: directory, sendQueueDepth: 128,
                                     maxConnections: cluster.allProcesses.count + 4, connectTimeout: .seconds(20))
        do {
            // All of this process's regions against the memlock limit, before the first is registered.
            let layout = try Layout(cluster.protocolConfig)
            try MemlockStatus.current().check(requested: ProcessNode.registeredBytes([me], layout: layout, sendQueueDepth: rdma.sendQueueDepth),
                                              alreadyLocked: 0)
        } catch {
            printError("ramcast-node: \(config): \(error)")
            throw ExitCode(64)
        }
        let log = logger
        if incarnation > 0, cluster.senders.contains(where: { $0.id == me }) {
            throw ValidationError("--incarnation \(incarnation): process \(id) is a sender; only group members restart (a restarted client takes a new sender id)")
        }
        let runtime = try RamCastRuntime(configuration: cluster, local: [me], logger: logger, deliveryLogDirectory: deliveryLog,
                                         connectTimeout: incarnation > 0 ? .seconds(2) : .seconds(60), incarnation: incarnation) { id in
            try RDMAEndpoint(node: id, configuration: rdma, logger: log)
        }
        runtime.start()
        let isSender = cluster.senders.contains { $0.id == me }
        if isSender {
            let groups = cluster.groups.count
            var last: MessageID?
            for i in 0..<messages {
                var dst = [GroupID(UInt8(i % groups))]
                if groups > 1, i % 3 == 0 { dst.append(GroupID(UInt8((i + 1) % groups))) }
                let payload = Array("message \(i) from \(id)".utf8)
                last = try await runtime.multicast(payload, to: dst)
                if i % 500 == 0 { logger.info("multicast \(i) of \(messages)") }
            }
            if let last { _ = last }
            // Wait until everything sent is delivered everywhere that is still alive.
            _ = try await runtime.multicast(Array("last from \(id)".utf8), to: (0..<groups).map { GroupID(UInt8($0)) },
                                            waitFor: .deliveredEverywhere)
            logger.info("sender \(id) done: \(messages + 1) multicasts delivered")
        } else {
            let stop = deliveryLog + "/STOP"
            let start = Date()
            while !FileManager.default.fileExists(atPath: stop), Date().timeIntervalSince(start) < duration {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        runtime.shutdown()
    }
}

/// Writes a line to standard error (the tool's own errors; logs go through swift-log).
func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
