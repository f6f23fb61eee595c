import ArgumentParser
import Foundation
import RamCast
import RamCastFabric
import RamCastProtocol
import RamCastRDMA

/// `ramcast-bench config`: what a run with these flags would be, and what RDMA hardware is here.
struct Config: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the effective configuration and the RDMA devices found (ports, GIDs, MTU, max inline, memlock).")

    @Option(help: "Describe this cluster file instead of the local-run flags.")
    var config: String?

    @OptionGroup(title: "Cluster") var cluster: ClusterOptions
    @OptionGroup(title: "Load") var load: LoadOptions
    @OptionGroup(title: "Fabric") var fabric: FabricOptions

    @Option(help: "Also write the device list as JSON to this file ('-' for standard output).")
    var json: String?

    func validate() throws {
        if let json, json != "-" { try checkWritableFile(json, flag: "--json") }
    }

    func run() throws {
        do {
            try show()
        } catch let e as BenchErrorExit {
            writeStderr("ramcast-bench config: \(e.description)\n")
            throw ExitCode(64)
        }
    }

    private func show() throws {
        var rows: [(String, String)] = []
        let layout: Layout
        let steps = cluster.steps
        if let path = config {
            let file: ClusterConfiguration
            do { file = try ClusterConfiguration.load(path: path) } catch { throw BenchErrorExit("\(error)") }
            var pc = file.protocolConfig
            pc.steps = steps
            do { layout = try Layout(pc) } catch { throw BenchErrorExit("\(path): \(error)") }
            rows.append(("source", path))
            for (g, members) in file.groups.enumerated() {
                rows.append(("group \(g)", members.map { "\($0.id.rawValue)@\($0.host):\($0.port)" }.joined(separator: "  ")))
            }
            rows.append(("senders", file.senders.map { "\($0.id.rawValue)@\($0.host):\($0.port)" }.joined(separator: "  ")))
            rows.append(("rdma", "device \(file.rdmaDevice ?? "(first)"), port \(file.rdmaPort), GID index \(file.gidIndex.map(String.init) ?? "(IPv4-mapped RoCE v2)")"))
        } else {
            let spec = RunSpec(mode: "local", cluster: cluster, load: load, fabric: fabric, output: OutputOptionsDefaults.value)
            do { layout = try Layout(spec.localProtocolConfig()) } catch { throw BenchErrorExit("invalid configuration: \(error)") }
            rows.append(("fabric", fabric.fabric == .memory ? "memory (in-process fabric, one polling thread)"
                                                             : "rdma, device \(fabric.device ?? "(first)") port \(fabric.port ?? 1), rdma_cm ports \(fabric.cmPort)+id"))
            rows.append(("cluster", "\(layout.groupCount) group\(layout.groupCount == 1 ? "" : "s") × \(cluster.processes): members \(layout.servers.first!.rawValue)...\(layout.servers.last!.rawValue); senders \(layout.config.senders.map { "\($0.rawValue)" }.joined(separator: ", "))"))
            rows.append(("destinations", "\(cluster.destinations) group(s) per message (mean \(cluster.destinations.mean.short))"))
            rows.append(("load", "\(load.payload) B payloads, \(load.outstanding) outstanding per sender, " +
                         (load.messages.map { "\($0.grouped) messages" } ?? "\(load.duration.trim) s") +
                         (load.effectiveWarmup > 0 ? " after \(load.effectiveWarmup.trim) s warm-up" : "")))
            rows.append(("pollers", "\(fabric.pollers)\(fabric.busyPoll ? ", busy-polling" : ", idle backoff (yield, then nap)")"))
        }
        rows.append(("steps", steps == 1 ? "1 (message bodies only)" : steps == 2 ? "1-2 (bodies + leader timestamps)" : "1-3 (full protocol)"))
        rows.append(("ring", "\(layout.slots) slots × \(layout.slotSize) B per (sender, member); max payload \(layout.maxPayload) B; header \(layout.headerSize) B, ack area \(layout.ackAreaSize) B"))
        let capacity = max(256, fabric.sendQueueDepth * 2)
        let peers = layout.servers.count + layout.config.senders.count
        let cells = Outbox.cellBytes(peers: peers, capacity: capacity)
        rows.append(("registered", "member: ring \(layout.ringRegionSize.grouped) B + log \(layout.logRegionSize.grouped) B + outbox \(cells.grouped) B; sender: \(layout.senderRegionSize.grouped) B + outbox \(cells.grouped) B"))
        rows.append(("writes", "inline ≤ \(layout.config.inlineThreshold) B (capped by the device), 1 in \(layout.config.signalInterval) signaled, send queue depth \(fabric.sendQueueDepth)"))
        print("Effective configuration")
        printRows(rows)

        print("")
        print("RDMA devices")
        let devices = RDMAEndpoint.devices()
        if devices.isEmpty {
            print("  No RDMA device found: ibv_get_device_list lists none (no NIC, no driver loaded, or no kernel support).")
            print("  Use --fabric memory here, or load a driver (soft-RoCE: modprobe rdma_rxe && rdma link add rxe0 type rxe netdev eth0).")
        }
        for d in devices {
            let inline = d.maxInlineBytes.map { m in "\(m) B" + (d.maxInlineGranted.map { g in g != m ? " (granted \(g))" : "" } ?? "") } ?? "unknown (probe failed)"
            print("  \(d.name)  firmware \(d.firmware.isEmpty ? "-" : d.firmware)  max inline \(inline)  max_qp_wr \(d.maxQueuePairWorkRequests.grouped)  max_cqe \(d.maxCompletionQueueEntries.grouped)")
            for p in d.ports {
                print("    port \(p.number)  \(p.state)  \(p.linkLayer)  MTU \(p.activeMTU)")
                for g in p.gids {
                    print("      GID \(pad("\(g.index)", 2))  \(pad(g.gid, 40, right: true))  \(g.type)\(g.ipv4.map { "  IPv4 \($0)" } ?? "")")
                }
            }
        }
        let memlock = MemlockStatus.current()
        let limit = memlock.limit.map { "\(($0 / 1024).grouped) KiB" } ?? "unlimited"
        let need = layout.ringRegionSize + layout.logRegionSize + cells
        print("")
        print("memlock  RLIMIT_MEMLOCK \(limit), CAP_IPC_LOCK \(memlock.hasIPCLock ? "yes (limit ignored)" : "no"); a member registers about \((need / 1024 + 1).grouped) KiB\(memlock.hasIPCLock || memlock.limit.map { $0 >= need * 4 } ?? true ? "" : " — raise `ulimit -l` for local runs of several nodes")")

        if let path = json {
            let j = JSON.object([
                ("devices", .array(devices.map { d in
                    .object([("name", .string(d.name)), ("firmware", .string(d.firmware)),
                             ("max_inline", d.maxInlineBytes.map { .int($0) } ?? .null),
                             ("ports", .array(d.ports.map { p in
                                 .object([("number", .int(p.number)), ("state", .string(p.state)), ("active", .bool(p.isActive)),
                                          ("mtu", .int(p.activeMTU)), ("link_layer", .string(p.linkLayer)),
                                          ("gids", .array(p.gids.map { g in
                                              .object([("index", .int(g.index)), ("gid", .string(g.gid)), ("type", .string(g.type)),
                                                       ("ipv4", g.ipv4.map { .string($0) } ?? .null)])
                                          }))])
                             }))])
                })),
                ("memlock_limit", memlock.limit.map { .int($0) } ?? .null),
                ("cap_ipc_lock", .bool(memlock.hasIPCLock)),
            ])
            try j.write(to: path)
        }
    }

    private func printRows(_ rows: [(String, String)]) {
        let w = rows.map(\.0.count).max() ?? 0
        for (k, v) in rows { print("  " + pad(k, w, right: true) + "  " + v) }
    }
}

/// A configuration error for `config`: printed plainly, exit status 64 (EX_USAGE).
struct BenchErrorExit: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

enum OutputOptionsDefaults {
    static var value: OutputOptions {
        // Parsing no arguments yields every default.
        (try? OutputOptions.parse([])) ?? OutputOptions()
    }
}
