import ArgumentParser
import Foundation

/// A parameter a sweep varies.
enum SweepParameter: String, ExpressibleByArgument, CaseIterable {
    case groups, processes, destinations, senders, payload, outstanding, steps, slots
    case inlineThreshold = "inline-threshold"
    case signalInterval = "signal-interval"
    case pollers

    var label: String {
        switch self {
        case .groups: "groups"
        case .processes: "processes per group"
        case .destinations: "destination groups per message"
        case .senders: "senders"
        case .payload: "payload (bytes)"
        case .outstanding: "outstanding messages per sender"
        case .steps: "steps"
        case .slots: "ring slots"
        case .inlineThreshold: "inline threshold (bytes)"
        case .signalInterval: "signal interval"
        case .pollers: "polling threads"
        }
    }

    func seriesName(_ v: Int) -> String {
        switch self {
        case .steps: v == 1 ? "step 1" : (v == 2 ? "steps 1-2" : "steps 1-3")
        default: "\(rawValue) \(v)"
        }
    }

    func apply(_ v: Int, cluster: inout ClusterOptions, load: inout LoadOptions, fabric: inout FabricOptions) {
        switch self {
        case .groups: cluster.groups = v
        case .processes: cluster.processes = v
        case .destinations: cluster.destinations = DestinationMix(count: v)
        case .senders: cluster.senders = v
        case .payload: load.payload = v
        case .outstanding: load.outstanding = v
        case .steps: cluster.steps = v
        case .slots: cluster.slots = v
        case .inlineThreshold: cluster.inlineThreshold = v
        case .signalInterval: cluster.signalInterval = v
        case .pollers: fabric.pollers = v
        }
    }
}

struct Sweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Local runs over a range of one parameter (optionally one line per value of another), with a table, JSON and an SVG plot.",
        discussion: """
            Examples:
              ramcast-bench sweep --param groups --values 1,2,3,4 --series steps --series-values 1,2,3 --svg groups.svg
              ramcast-bench sweep --param payload --values 16,64,256,1024 --duration 2 --json payload.json --svg payload.svg
            Every other flag is that of `local` and applies to every run.
            """)

    @Option(help: "The parameter on the x axis: \(SweepParameter.allCases.map(\.rawValue).joined(separator: ", ")).")
    var param: SweepParameter
    @Option(help: "Its values, comma-separated integers.")
    var values: String
    @Option(help: "Draw one line per value of this parameter (same names as --param).")
    var series: SweepParameter?
    @Option(help: "Values of --series, comma-separated.")
    var seriesValues: String?
    @Option(help: "Write the plot (throughput and p50 latency against --param) to this SVG file.")
    var svg: String?

    @OptionGroup(title: "Cluster") var cluster: ClusterOptions
    @OptionGroup(title: "Load") var load: LoadOptions
    @OptionGroup(title: "Fabric") var fabric: FabricOptions
    @OptionGroup(title: "Output") var output: OutputOptions

    static func integers(_ s: String, flag: String) throws -> [Int] {
        let parts = s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let ints = parts.compactMap { Int($0) }
        guard !ints.isEmpty, ints.count == parts.count else { throw ValidationError("\(flag) expects comma-separated integers, got '\(s)'") }
        return ints
    }

    func validate() throws {
        _ = try Self.integers(values, flag: "--values")
        if series != nil {
            guard let sv = seriesValues else { throw ValidationError("--series needs --series-values") }
            _ = try Self.integers(sv, flag: "--series-values")
            guard series != param else { throw ValidationError("--series must differ from --param") }
        }
        if output.deliveryLog != nil { throw ValidationError("--delivery-log is per run: use `local` for checked runs") }
    }

    func run() throws {
        installInterruptHandlers()
        let xs = try Self.integers(values, flag: "--values")
        let lines: [Int?] = try series.map { _ in try Self.integers(seriesValues!, flag: "--series-values").map { Optional($0) } } ?? [nil]
        var results: [(series: Int?, x: Int, result: BenchResult)] = []
        var first = true
        let header = "  " + pad(param.rawValue, 12, right: true) + (series.map { pad($0.rawValue, 12, right: true) } ?? "")
            + pad("msgs/s", 13) + pad("MB/s", 9) + pad("p50 µs", 9) + pad("p99 µs", 9) + pad("busiest w/msg", 15) + pad("CPU %", 8)
        var run = 0
        for s in lines {
            for x in xs {
                if interrupted.load(ordering: .relaxed) { break }
                var c = cluster, l = load, f = fabric
                if let s, let series { series.apply(s, cluster: &c, load: &l, fabric: &f) }
                param.apply(x, cluster: &c, load: &l, fabric: &f)
                f.cmPort = fabric.cmPort &+ UInt16(run % 50) &* 100   // fresh rdma_cm ports per run
                run += 1
                do {
                    try c.validate()
                    try l.validate()
                    try f.validate()
                } catch {
                    throw ValidationError("\(param.rawValue)=\(x)\(s.map { ", \(series!.rawValue)=\($0)" } ?? ""): \(error)")
                }
                var o = output
                o.json = nil
                if first {
                    if !output.quiet {
                        print("ramcast-bench sweep · \(f.fabric == .memory ? "memory (in-process fabric)" : "rdma") · \(Int(l.messages ?? 0) > 0 ? "\(l.messages!) messages" : "\(l.duration.trim) s") per run")
                    }
                    print("  sweeping \(param.label)\(series.map { ", one line per \($0.rawValue)" } ?? "")")
                    print(header)
                    first = false
                }
                let r: BenchResult
                do {
                    r = try LocalRunner.run(cluster: c, load: l, fabric: f, output: o, printBanner: false)
                } catch let e as BenchError {
                    writeStderr("ramcast-bench: \(param.rawValue)=\(x): \(e.description)\n")
                    throw ExitCode(e.exitCode)
                }
                results.append((s, x, r))
                let busiest = r.busiest.map { $0.writesPerRunMessage.fixed(2) } ?? "-"
                print("  " + pad("\(x)", 12, right: true) + (s.map { pad("\($0)", 12, right: true) } ?? "")
                      + pad(r.messagesPerSecond.grouped, 13) + pad(r.megabytesPerSecond.short, 9) + pad(r.latency.p50.short, 9)
                      + pad(r.latency.p99.short, 9) + pad(busiest, 15) + pad(r.cpu.percent.fixed(0), 8))
            }
        }
        if let path = output.json {
            let json = JSON.object([
                ("tool", .string("ramcast-bench")),
                ("sweep", .string(param.rawValue)),
                ("series", series.map { .string($0.rawValue) } ?? .null),
                ("runs", .array(results.map { s, x, r in
                    .object([("value", .int(x)), ("series_value", s.map { .int($0) } ?? .null), ("result", r.json)])
                })),
            ])
            try json.write(to: path)
            if path != "-" { print("  json  \(path)") }
        }
        if let path = svg, let any = results.first?.result {
            let groupsBySeries = Dictionary(grouping: results, by: { $0.series ?? Int.min })
            let keys = lines.map { $0 ?? Int.min }
            func seriesOf(_ value: (BenchResult) -> Double) -> [SVGPlot.Series] {
                keys.map { k in
                    SVGPlot.Series(name: k == Int.min ? "measured" : series!.seriesName(k),
                                   points: (groupsBySeries[k] ?? []).map { (Double($0.x), value($0.result)) })
                }
            }
            let swept: Set<SweepParameter> = Set([param] + (series.map { [$0] } ?? []))
            let sp = any.spec
            var parts: [String] = []
            if !swept.contains(.groups) { parts.append("\(sp.groups) group\(sp.groups == 1 ? "" : "s")") }
            if !swept.contains(.processes) { parts.append("\(sp.processes) per group") }
            if !swept.contains(.destinations) { parts.append("\(sp.destinations) dst/message") }
            if !swept.contains(.senders) { parts.append("\(sp.senders) sender\(sp.senders == 1 ? "" : "s")") }
            if !swept.contains(.outstanding) { parts.append("\(sp.outstanding) outstanding/sender") }
            if !swept.contains(.payload) { parts.append("\(sp.payload) B") }
            if !swept.contains(.steps) { parts.append(sp.stepsDescription) }
            let shape = parts.joined(separator: ", ")
            let plot = SVGPlot(
                title: "RamCast: throughput and latency against \(param.label)",
                subtitle: "\(any.spec.fabricDescription) · \(shape)",
                xLabel: param.label,
                panels: [
                    .init(title: "Throughput (messages delivered by every destination, per second)", yLabel: "msgs/s",
                          series: seriesOf { $0.messagesPerSecond }),
                    .init(title: "Latency p50, multicast → delivery at a follower of the first destination group", yLabel: "µs",
                          series: seriesOf { $0.latency.p50 }),
                ])
            try Data(plot.render().utf8).write(to: URL(fileURLWithPath: path))
            print("  svg   \(path)")
        }
    }
}
