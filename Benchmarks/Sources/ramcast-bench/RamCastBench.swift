import ArgumentParser
import Foundation
import RamCastChecker

@main
struct RamCastBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ramcast-bench",
        abstract: "Throughput and latency of RamCast atomic multicast: steps 1, 1-2 and 1-3, over the in-process fabric or RDMA.",
        discussion: """
            Subcommands:
              local   a whole cluster in this process (--fabric memory or rdma)
              node    one process of a multi-process run (--config FILE --id N)
              sweep   local runs over one parameter: table, JSON, SVG plot
              config  effective configuration and the RDMA devices found
              check   check a --delivery-log directory (as ramcast-check DIR)

            Latency: from the multicast call to the delivery at the last follower \
            of the message's first destination group (as in the RamCast paper); \
            "all dst": until every destination process delivered. Throughput: \
            messages delivered by every destination process, per second.
            """,
        subcommands: [Local.self, Node.self, Sweep.self, Config.self, Check.self],
        defaultSubcommand: Local.self)
}

/// Prints the table (and JSON) of a finished run.
func emit(_ result: BenchResult, output: OutputOptions) throws {
    print(Report.table(result))
    if let path = output.json {
        do {
            try result.json.write(to: path)
        } catch {
            throw BenchError("--json \(path): cannot write the results: \(describeWriteError(error))")
        }
        if path != "-", !output.quiet { print("  json        \(path)") }
    }
    if let dir = output.deliveryLog, !output.quiet {
        print("  check with  ramcast-check \(dir)")
    }
}

struct Local: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a whole cluster (groups and senders) in this process and measure it.",
        discussion: """
            Examples:
              ramcast-bench local --groups 2 --steps 3 --duration 5
              ramcast-bench local --fabric rdma --device mlx5_0 --groups 2 --outstanding 1 --json out.json
              ramcast-bench local --messages 10000 --delivery-log logs && ramcast-check logs
            """)

    @OptionGroup(title: "Cluster") var cluster: ClusterOptions
    @OptionGroup(title: "Load") var load: LoadOptions
    @OptionGroup(title: "Fabric") var fabric: FabricOptions
    @OptionGroup(title: "Output") var output: OutputOptions

    func run() throws {
        installInterruptHandlers()
        do {
            let r = try LocalRunner.run(cluster: cluster, load: load, fabric: fabric, output: output)
            try emit(r, output: output)
        } catch let e as BenchError {
            writeStderr("ramcast-bench: \(e.description)\n")
            throw ExitCode(e.exitCode)
        }
    }
}

/// `ramcast-bench check DIR`: the same check as `ramcast-check DIR`, for machines that only have this
/// binary (the soft-RoCE VM script uses it).
struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a --delivery-log directory against the atomic multicast properties (as ramcast-check DIR).")

    @Argument(help: "Directory with cluster.json and the .jsonl logs.")
    var directory: String

    func run() throws {
        let loaded: (history: History, membership: Membership, quiescent: Bool)
        do {
            loaded = try DeliveryLog.load(directory: directory)
        } catch {
            writeStderr("ramcast-bench check: input error: \(error)\n")
            throw ExitCode(65)  // EX_DATAERR, as ramcast-check
        }
        let report = RamCastChecker.check(loaded.history, membership: loaded.membership, quiescent: loaded.quiescent)
        print("check: \(directory)")
        print(report.description, terminator: "")
        if !report.isClean { throw ExitCode(1) }
    }
}

/// strerror's words for a failed write, not Foundation's error domain and code.
func describeWriteError(_ error: any Error) -> String {
    let ns = error as NSError
    if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
        return String(cString: strerror(Int32(underlying.code)))
    }
    if ns.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(ns.code))) }
    return ns.localizedDescription
}
