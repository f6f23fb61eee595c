import ArgumentParser
import Foundation
import RamCast
import RamCastProtocol

enum FabricKind: String, ExpressibleByArgument, CaseIterable, Sendable {
    case memory, rdma
}

/// How many destination groups each message has: one number (`2`), or a weighted mix
/// (`1:3,2:1` = three in four messages to one group, one in four to two groups). The groups of a
/// message are consecutive (mod the group count) from a first group drawn uniformly at random.
struct DestinationMix: ExpressibleByArgument, CustomStringConvertible, Sendable, Hashable {
    struct Entry: Sendable, Hashable {
        var count: Int
        var weight: Int
    }

    var entries: [Entry]

    init(count: Int) { entries = [Entry(count: count, weight: 1)] }

    init?(argument: String) {
        var entries: [Entry] = []
        for part in argument.split(separator: ",") {
            let kv = part.split(separator: ":", omittingEmptySubsequences: false)
            // Bounded so that the weighted sums in `mean` and the destination table cannot overflow.
            guard let count = Int(kv[0].trimmingCharacters(in: .whitespaces)), (1...255).contains(count) else { return nil }
            var weight = 1
            if kv.count == 2 {
                guard let w = Int(kv[1].trimmingCharacters(in: .whitespaces)), (1...1_000_000).contains(w) else { return nil }
                weight = w
            } else if kv.count > 2 {
                return nil
            }
            entries.append(Entry(count: count, weight: weight))
        }
        guard !entries.isEmpty else { return nil }
        self.entries = entries
    }

    var maxCount: Int { entries.map(\.count).max() ?? 1 }
    /// Expected destination groups per message.
    var mean: Double {
        let total = entries.reduce(0) { $0 + $1.weight }
        return Double(entries.reduce(0) { $0 + $1.count * $1.weight }) / Double(total)
    }

    var description: String {
        entries.count == 1 && entries[0].weight == 1 ? "\(entries[0].count)"
            : entries.map { "\($0.count):\($0.weight)" }.joined(separator: ",")
    }

}

/// The cluster shape and protocol knobs (every process of a run must agree on these).
struct ClusterOptions: ParsableArguments {
    @Option(help: "Replica groups (shards).")
    var groups: Int = 1

    @Option(help: "Processes per group, 2f+1: 1, 3, 5, ...")
    var processes: Int = 3

    @Option(help: ArgumentHelp("Destination groups per message: a number, or a weighted mix such as 1:3,2:1.",
                               valueName: "n|n:w,..."))
    var destinations: DestinationMix = DestinationMix(count: 1)

    @Option(help: "Sender processes (clients); each multicasts its share of the load.")
    var senders: Int = 1

    @Option(help: "How much of the protocol runs: 1 = message bodies only, 2 = plus leader timestamps, 3 = full protocol (atomic multicast).")
    var steps: Int = 3

    @Option(help: "Slots per (sender, process) ring.")
    var slots: Int = 16

    @Option(help: "Bytes per slot; default: the smallest that fits the payload, header, checksum and acks, rounded to 64.")
    var slotSize: Int?

    @Option(help: "Writes up to this many bytes are posted inline (capped by the device's limit).")
    var inlineThreshold: Int = 64

    @Flag(help: "Post no write inline (same as --inline-threshold 0).")
    var noInline: Bool = false

    @Option(help: "Signal one write in this many (selective signaling).")
    var signalInterval: Int = 8

    @Flag(help: "Single-group fast path: a leader orders a single-group message once its timestamp writes completed at f followers, before their acks. Off unless asked, as in the library.")
    var fastPath: Bool = false

    @Option(help: "Leader heartbeat period, microseconds (local runs; node runs take the cluster file's failureDetection).")
    var heartbeatUs: Int = 1_000

    @Option(help: "A leader silent this long is replaced, milliseconds (local runs). Raise it under valgrind or a loaded machine, where a slow first poll would look like a crash.")
    var failureTimeoutMs: Int = 100

    mutating func validate() throws {
        guard (1...255).contains(groups) else { throw ValidationError("--groups must be in 1...255, got \(groups)") }
        guard processes >= 1, processes <= 255, processes % 2 == 1 else { throw ValidationError("--processes must be odd (2f+1) and at most 255, got \(processes)") }
        guard (1...0xFFFF).contains(senders) else { throw ValidationError("--senders must be in 1...65535, got \(senders)") }
        guard (1...3).contains(steps) else { throw ValidationError("--steps must be 1, 2 or 3, got \(steps)") }
        guard destinations.maxCount <= groups else {
            throw ValidationError("--destinations \(destinations): a message cannot have more destination groups than the \(groups) group(s)")
        }
        guard slots >= 1, slots <= 0x8000 else { throw ValidationError("--slots must be in 1...32768, got \(slots)") }
        guard (0...Int(Int32.max)).contains(inlineThreshold) else { throw ValidationError("--inline-threshold must be in 0...\(Int32.max), got \(inlineThreshold)") }
        guard (1...Int(Int32.max)).contains(signalInterval) else { throw ValidationError("--signal-interval must be in 1...\(Int32.max), got \(signalInterval)") }
        // The cluster file's bounds (ClusterConfiguration.integerRanges): both fit in nanoseconds.
        let heartbeatRange = ClusterConfiguration.integerRanges["failureDetection.heartbeatMicros"]!
        let timeoutRange = ClusterConfiguration.integerRanges["failureDetection.timeoutMillis"]!
        guard heartbeatRange.contains(heartbeatUs) else {
            throw ValidationError("--heartbeat-us must be in \(heartbeatRange.lowerBound)...\(heartbeatRange.upperBound), got \(heartbeatUs)")
        }
        guard timeoutRange.contains(failureTimeoutMs) else {
            throw ValidationError("--failure-timeout-ms must be in \(timeoutRange.lowerBound)...\(timeoutRange.upperBound), got \(failureTimeoutMs)")
        }
        guard failureTimeoutMs * 1_000 > heartbeatUs else {
            throw ValidationError("--failure-timeout-ms \(failureTimeoutMs) must exceed the heartbeat period (\(heartbeatUs) µs)")
        }
        if let s = slotSize, s < 64 || s > ProtocolConfig.maxSlotSize || s % 8 != 0 {
            throw ValidationError("--slot-size must be a multiple of 8 in 64...\(ProtocolConfig.maxSlotSize), got \(s)")
        }
    }

    var effectiveInlineThreshold: Int { noInline ? 0 : inlineThreshold }
}

/// What the senders do.
struct LoadOptions: ParsableArguments {
    @Option(help: "Payload bytes per message.")
    var payload: Int = 64

    @Option(help: "Messages each sender keeps in flight (multicast, not yet delivered by every destination process). 1 measures unloaded latency.")
    var outstanding: Int = 8

    @Option(help: "Measured seconds (after the warm-up). Ignored with --messages.")
    var duration: Double = 5

    @Option(help: "Warm-up seconds, not measured. Default: 1, or 0 with --messages.")
    var warmup: Double?

    @Option(help: "Send exactly this many messages in all (split over the senders) and measure them all, instead of --duration.")
    var messages: Int?

    @Option(help: "Seed of the destination choice.")
    var seed: UInt64 = 1

    mutating func validate() throws {
        // Payloads beyond half the largest slot leave no room for the header and acks.
        guard (0...ProtocolConfig.maxSlotSize / 2).contains(payload) else {
            throw ValidationError("--payload must be in 0...\(ProtocolConfig.maxSlotSize / 2), got \(payload)")
        }
        guard (1...1 << 20).contains(outstanding) else { throw ValidationError("--outstanding must be in 1...\(1 << 20), got \(outstanding)") }
        try checkSeconds(duration, "--duration")
        if let w = warmup { try checkSeconds(w, "--warmup", allowZero: true) }
        // Far more than any run sends, and small enough that the per-sender split and the completion
        // target cannot overflow.
        if let m = messages, !(1...1 << 40).contains(m) { throw ValidationError("--messages must be in 1...\(1 << 40), got \(m)") }
    }

    var effectiveWarmup: Double { warmup ?? (messages == nil ? 1 : 0) }
}

/// Which network, and how the polling threads run.
struct FabricOptions: ParsableArguments {
    @Option(help: "memory (in-process, no NIC needed) or rdma (verbs over a NIC, or soft-RoCE).")
    var fabric: FabricKind = .memory

    @Option(help: "RDMA device (ibv_devices name, e.g. mlx5_0); default: the first one.")
    var device: String?

    @Option(help: "Port number on the RDMA device (default 1, or the cluster file's rdma.port).")
    var port: Int?

    @Option(help: "GID index to check (RoCE); default: the IPv4-mapped RoCE v2 GID. rdma_cm picks the GID from the address.")
    var gidIndex: Int?

    @Option(help: "IP address of the RDMA device for a local run; default: from its IPv4-mapped GID.")
    var address: String?

    @Option(help: "First rdma_cm port of a local run; node i listens on cm-port + i.")
    var cmPort: UInt16 = 18_515

    @Option(help: "Writes outstanding per connection (send queue depth).")
    var sendQueueDepth: Int = 128

    @Option(help: "Polling threads for a local run; local nodes are split round-robin between them. The in-process fabric is confined to one thread: memory needs 1.")
    var pollers: Int = 1

    @Flag(help: "Spin even when idle (default: yield, then nap, after a millisecond without work).")
    var busyPoll: Bool = false

    @Option(help: "Idle microseconds (yielding the core) before a poller starts to nap 50 µs at a time.")
    var napAfterUs: Int = 1000

    mutating func validate() throws {
        try checkNapAfter(napAfterUs)
        guard (1...1024).contains(pollers) else { throw ValidationError("--pollers must be in 1...1024, got \(pollers)") }
        if fabric == .memory, pollers != 1 {
            throw ValidationError("--pollers \(pollers): the in-process fabric is confined to one thread, so --fabric memory runs on 1 poller")
        }
        try checkSendQueueDepth(sendQueueDepth)
    }
}

/// Where results go, and what is checked.
struct OutputOptions: ParsableArguments {
    @Option(help: "Also write the results as JSON to this file ('-' for standard output).")
    var json: String?

    @Flag(inversion: .prefixedNo, help: "Show a live progress line on standard error (default: only when it is a terminal).")
    var progress: Bool?

    @Option(help: "Write JSON-lines delivery logs to this directory; check them afterwards with `ramcast-check DIR`.")
    var deliveryLog: String?

    @Option(help: "Crash group 0's leader once it delivered N messages, keep the run going and report the failover time (to the first delivery under the new leader).")
    var crashLeaderAfter: Int?

    @Flag(help: "Print only the results table (no banner).")
    var quiet: Bool = false

    var showProgress: Bool { progress ?? stderrIsTTY }

    mutating func validate() throws {
        try LeaderCrash.validate(crashLeaderAfter)
        // Checked before the run rather than when writing its results: a bad path must not cost the run.
        if let json, json != "-" { try checkWritableFile(json, flag: "--json") }
        if let deliveryLog {
            do { try DeliveryLogWriter.prepareDirectory(deliveryLog) } catch { throw ValidationError("--delivery-log: \(error)") }
        }
    }
}

/// Seconds from the command line: finite and at most a year, so that turning them into nanoseconds
/// (`UInt64(seconds * 1e9)`) cannot trap.
func checkSeconds(_ value: Double, _ flag: String, allowZero: Bool = false) throws {
    let most = 365.0 * 86_400
    guard value.isFinite, allowZero ? value >= 0 : value > 0, value <= most else {
        throw ValidationError("\(flag) must be a number of seconds in \(allowZero ? "[0" : "(0"), \(Int(most))], got \(value)")
    }
}

/// `--nap-after-us`: at most a minute, so that it fits in nanoseconds.
func checkNapAfter(_ value: Int) throws {
    guard (0...60_000_000).contains(value) else { throw ValidationError("--nap-after-us must be in 0...60000000, got \(value)") }
}

/// `--send-queue-depth`: queue pairs hold at most a few thousand writes; the outbox allocates per entry.
func checkSendQueueDepth(_ value: Int) throws {
    guard (1...1 << 16).contains(value) else { throw ValidationError("--send-queue-depth must be in 1...65536, got \(value)") }
}

/// A file the run will write at its end: its directory must exist and be writable, and the path must
/// not be a directory. The reason is strerror's, with the path.
func checkWritableFile(_ path: String, flag: String) throws {
    var info = stat()
    if stat(path, &info) == 0 {
        guard info.st_mode & S_IFMT != S_IFDIR else {
            throw ValidationError("\(flag) \(path): \(String(cString: strerror(EISDIR)))")
        }
        guard access(path, W_OK) == 0 else { throw ValidationError("\(flag) \(path): \(String(cString: strerror(errno)))") }
        return
    }
    let parent = (path as NSString).deletingLastPathComponent
    let directory = parent.isEmpty ? "." : parent
    guard stat(directory, &info) == 0 else {
        throw ValidationError("\(flag) \(path): directory \(directory): \(String(cString: strerror(errno)))")
    }
    guard info.st_mode & S_IFMT == S_IFDIR else {
        throw ValidationError("\(flag) \(path): \(directory): \(String(cString: strerror(ENOTDIR)))")
    }
    guard access(directory, W_OK | X_OK) == 0 else {
        throw ValidationError("\(flag) \(path): directory \(directory): \(String(cString: strerror(errno)))")
    }
}
