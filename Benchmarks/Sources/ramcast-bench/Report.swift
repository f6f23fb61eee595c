/// The human-readable results: a banner naming the run, then one table.
enum Report {
    static func banner(_ spec: RunSpec) -> String {
        var lines: [String] = []
        lines.append("ramcast-bench \(spec.mode) · \(spec.fabricDescription.isEmpty ? spec.fabric.rawValue : spec.fabricDescription) · \(spec.stepsDescription)")
        let dst = spec.destinations.entries.count == 1
            ? "\(spec.destinations.entries[0].count) destination group\(spec.destinations.entries[0].count == 1 ? "" : "s") per message"
            : "destination groups per message \(spec.destinations) (count:weight)"
        lines.append("cluster  \(spec.groups) group\(spec.groups == 1 ? "" : "s") × \(spec.processes), \(dst), \(spec.senders) sender\(spec.senders == 1 ? "" : "s") × \(spec.outstanding) outstanding, \(spec.payload) B payloads")
        let amount = spec.messages.map { "\($0.grouped) messages" } ?? "\(spec.duration.trim) s"
        let warm = spec.warmup > 0 ? " after \(spec.warmup.trim) s warm-up" : ""
        lines.append("run      \(amount)\(warm), \(spec.pollers) polling thread\(spec.pollers == 1 ? "" : "s"), inline ≤ \(spec.inlineThreshold) B, signal 1/\(spec.signalInterval), \(spec.slots) slots × \(spec.slotSize) B\(spec.fastPath ? ", single-group fast path" : "")")
        return lines.joined(separator: "\n")
    }

    static func table(_ r: BenchResult) -> String {
        var rows: [(String, String)] = []
        if let p = r.process {
            rows.append(("process", "node \(p.id) (\(p.role))"))
        }
        if r.process?.role ?? "sender" == "sender" {
            rows.append(("throughput", "\(r.messagesPerSecond.grouped) msgs/s   \(r.megabytesPerSecond.short) MB/s   (\(r.messages.grouped) messages in \(r.seconds.fixed(2)) s)"))
            rows.append(("latency µs", percentiles(r.latency)))
            rows.append(("", "at: \(r.latencyPoint)"))
            rows.append(("all dst µs", percentiles(r.completion)))
            rows.append(("", "at: \(LatencyPoint.completionDescription)"))
        } else if let d = r.deliveriesPerSecond {
            rows.append(("delivered", "\(r.processes.first?.messages.grouped ?? "0") messages, \(d.grouped) per second while they flowed"))
        }
        let roles = r.writesPerRole.map { "\($0.role) \($0.value.fixed(2))" }
        rows.append(("writes/msg", roles.isEmpty ? "-" : roles.joined(separator: "   ") + "   (RDMA writes per message the process sent or delivered)"))
        if let b = r.busiest, r.process == nil {
            rows.append(("busiest", "node \(b.process.id) (\(b.process.role)): \(b.writesPerRunMessage.fixed(2)) writes per message, \(b.writesPerSecond.metric)writes/s; all processes \(r.totalWritesPerSecond.metric)writes/s"))
        }
        if r.spec.fabric == .rdma {
            rows.append(("setup", "\(r.spec.setupSeconds.fixed(2)) s to register memory and connect"))
        }
        rows.append(("CPU", "\(r.cpu.percent.fixed(1))% of wall (user \(r.cpu.userPercent.fixed(1))%, sys \(r.cpu.systemPercent.fixed(1))%)"))
        if !r.crashedProcesses.isEmpty {
            rows.append(("crashed", r.crashedProcesses.map { "node \($0)" }.joined(separator: ", ")
                         + (r.failoverMs.map { ", failover \($0.short) ms" } ?? failoverMissing(r))
                         + (r.messagesPerSecondAroundCrash.map { "   (msgs/s before the crash \($0.before.grouped), after \($0.after.grouped))" } ?? "")))
        }
        let width = rows.map(\.0.count).max() ?? 0
        return rows.map { "  " + pad($0.0, width, right: true) + "  " + $0.1 }.joined(separator: "\n")
    }

    /// Why a run with a crash shows no failover time.
    static func failoverMissing(_ r: BenchResult) -> String {
        guard let p = r.process else { return ", no delivery under a new leader seen" }
        if p.role == "crashed" { return " (this process)" }
        return ", failover time: see group 0's new leader"
    }

    static func percentiles(_ l: LatencySummary) -> String {
        guard l.samples > 0 else { return "no samples" }
        return "p50 \(l.p50.short)   p90 \(l.p90.short)   p99 \(l.p99.short)   p99.9 \(l.p999.short)   max \(l.max.short)   (\(l.samples.grouped) samples)"
    }
}
