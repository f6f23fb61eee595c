import Histogram

/// Percentiles of an HDR histogram of nanoseconds, in microseconds.
struct LatencySummary: Sendable {
    var p50: Double
    var p90: Double
    var p99: Double
    var p999: Double
    var max: Double
    var mean: Double
    var samples: UInt64

    init(_ h: Histogram<UInt64>) {
        samples = h.totalCount
        guard samples > 0 else {
            p50 = .nan; p90 = .nan; p99 = .nan; p999 = .nan; max = .nan; mean = .nan
            return
        }
        func us(_ ns: UInt64) -> Double { Double(ns) / 1000 }
        p50 = us(h.valueAtPercentile(50))
        p90 = us(h.valueAtPercentile(90))
        p99 = us(h.valueAtPercentile(99))
        p999 = us(h.valueAtPercentile(99.9))
        max = us(h.max)
        mean = h.mean / 1000
    }

    var json: JSON {
        .object([("p50", .number(p50)), ("p90", .number(p90)), ("p99", .number(p99)), ("p99_9", .number(p999)),
                 ("max", .number(max)), ("mean", .number(mean)), ("samples", .int(Int(samples)))])
    }
}

/// One process's share of the measured phase.
struct ProcessResult: Sendable {
    var id: UInt32
    var role: String          // sender, leader, follower
    var group: Int?
    var writes: UInt64
    /// Messages it sent (sender) or delivered (group member).
    var messages: Int
    var writesPerMessage: Double { messages > 0 ? Double(writes) / Double(messages) : .nan }

    var json: JSON {
        .object([("id", .int(Int(id))), ("role", .string(role)), ("group", group.map { .int($0) } ?? .null),
                 ("writes", .int(Int(writes))), ("messages", .int(messages)), ("writes_per_message", .number(writesPerMessage))])
    }
}

/// The outcome of one run (or one process of a multi-process run).
struct BenchResult: Sendable {
    var spec: RunSpec
    /// For multi-process runs: this process's id and role.
    var process: (id: UInt32, role: String)?
    var seconds: Double
    /// Messages completed (delivered by every destination process) during the measured phase.
    var messages: Int
    var latency: LatencySummary
    var completion: LatencySummary
    var latencyPoint: String
    var processes: [ProcessResult]
    var cpu: CPUUse
    var crashedProcesses: [UInt32] = []
    var failoverMs: Double?
    /// Messages per second completed in the measured phase before and after the crash (when it fell
    /// inside the measured phase).
    var messagesPerSecondAroundCrash: (before: Double, after: Double)?
    /// Group members of multi-process runs: deliveries per second while messages flowed.
    var deliveriesPerSecond: Double?

    var messagesPerSecond: Double { seconds > 0 ? Double(messages) / seconds : 0 }
    var megabytesPerSecond: Double { messagesPerSecond * Double(spec.payload) / 1e6 }

    /// Writes per message a process took part in, averaged over each role (writes summed over the
    /// role's processes ÷ messages they sent or delivered).
    var writesPerRole: [(role: String, value: Double)] {
        ["sender", "leader", "follower"].compactMap { role in
            let ps = processes.filter { $0.role == role }
            let messages = ps.reduce(0) { $0 + $1.messages }
            guard !ps.isEmpty, messages > 0 else { return nil }
            return (role, Double(ps.reduce(0) { $0 + $1.writes }) / Double(messages))
        }
    }

    /// Writes per second posted by all the processes of the run together (in a local run they share
    /// one NIC, or one soft-RoCE device, and the polling threads).
    var totalWritesPerSecond: Double {
        seconds > 0 ? Double(processes.reduce(0) { $0 + $1.writes }) / seconds : 0
    }

    /// The process that posted the most writes, with its writes per second and per message of the
    /// whole run (msgs/s × that = its write rate, what a NIC port must sustain).
    var busiest: (process: ProcessResult, writesPerSecond: Double, writesPerRunMessage: Double)? {
        guard let p = processes.max(by: { $0.writes < $1.writes }), seconds > 0 else { return nil }
        return (p, Double(p.writes) / seconds, messages > 0 ? Double(p.writes) / Double(messages) : .nan)
    }
}
