import RamCastFabric
import RamCastProtocol

/// Everything one run is, resolved from the flags (or a cluster file): echoed in the report and JSON.
struct RunSpec: Sendable {
    var mode: String                 // "local" or "node"
    var fabric: FabricKind
    var fabricDescription: String = ""
    var groups: Int
    var processes: Int
    var destinations: DestinationMix
    var senders: Int
    var steps: Int
    var slots: Int
    var slotSize: Int
    var inlineThreshold: Int
    var signalInterval: Int
    var fastPath: Bool = false
    var heartbeatInterval: UInt64 = 1_000_000
    var failureTimeout: UInt64 = 100_000_000
    var payload: Int
    var outstanding: Int
    var duration: Double
    var warmup: Double
    var messages: Int?
    var pollers: Int
    var busyPoll: Bool
    var napAfterMicros: Int = 1000
    var seed: UInt64
    var sendQueueDepth: Int
    var deliveryLog: String?
    /// Seconds to register and connect the local nodes (the slowest poller).
    var setupSeconds: Double = 0

    var stepsDescription: String {
        switch steps {
        case 1: "step 1 (message bodies only)"
        case 2: "steps 1-2 (bodies + leader timestamps)"
        default: "steps 1-3 (full protocol)"
        }
    }

    /// The smallest slot that holds `payload` bytes next to what the layout puts in a slot (header,
    /// checksum, ack area), rounded up to 64 bytes. Asks ``Layout`` rather than repeating its sums.
    static func slotSize(payload: Int, config: ProtocolConfig) -> Int {
        var probe = config
        probe.slotSize = 1 << 20
        guard let layout = try? Layout(probe) else { return 512 }
        let overhead = probe.slotSize - layout.maxPayload
        return max(64, (payload + overhead + 63) & ~63)
    }

    /// The protocol configuration of a local run: servers are nodes 0..<groups×processes, group by
    /// group (member 0 of each group is its first leader), then the senders.
    func localProtocolConfig() -> ProtocolConfig {
        var next: UInt32 = 0
        let members = (0..<groups).map { _ in (0..<processes).map { _ in defer { next += 1 }; return NodeID(next) } }
        let senderIDs = (0..<senders).map { _ in defer { next += 1 }; return NodeID(next) }
        var config = ProtocolConfig(groups: members, senders: senderIDs, slotsPerRing: slots, slotSize: slotSize,
                                    inlineThreshold: inlineThreshold, signalInterval: signalInterval,
                                    maxDestinations: destinations.maxCount)
        config.steps = steps
        config.singleGroupFastPath = fastPath
        config.heartbeatInterval = heartbeatInterval
        config.failureTimeout = failureTimeout
        return config
    }
}

extension RunSpec {
    init(mode: String, cluster: ClusterOptions, load: LoadOptions, fabric: FabricOptions, output: OutputOptions) {
        self.mode = mode
        self.fabric = fabric.fabric
        groups = cluster.groups
        processes = cluster.processes
        destinations = cluster.destinations
        senders = cluster.senders
        steps = cluster.steps
        slots = cluster.slots
        slotSize = cluster.slotSize ?? 0
        inlineThreshold = cluster.effectiveInlineThreshold
        signalInterval = cluster.signalInterval
        fastPath = cluster.fastPath
        heartbeatInterval = UInt64(cluster.heartbeatUs) * 1_000
        failureTimeout = UInt64(cluster.failureTimeoutMs) * 1_000_000
        payload = load.payload
        outstanding = load.outstanding
        duration = load.duration
        warmup = load.effectiveWarmup
        messages = load.messages
        pollers = fabric.pollers
        busyPoll = fabric.busyPoll
        napAfterMicros = fabric.napAfterUs
        seed = load.seed
        sendQueueDepth = fabric.sendQueueDepth
        deliveryLog = output.deliveryLog
        if cluster.slotSize == nil { slotSize = Self.slotSize(payload: payload, config: localProtocolConfig()) }
    }
}

/// Where latency is taken: the delivery at one designated process of the message's first
/// destination group, the group's last member (a follower whenever the group has more than one
/// member), as the RamCast paper measured it.
enum LatencyPoint {
    static let description = "multicast call → delivery at the last follower of the first destination group"
    static let nodeDescription = "multicast call → the sender sees the slot released by the last follower of the first destination group (delivery + one write back)"
    static let completionDescription = "multicast call → delivered by every destination process"

    static func designated(of group: GroupID, in layout: Layout) -> NodeID { layout.members(of: group).last! }
}

/// The destination sets senders draw from, preallocated so that choosing and passing one allocates
/// nothing: for each size k in the mix and each first group g, the groups g, g+1, ..., g+k-1 (mod the
/// group count).
final class DestinationTable {
    let groupCount: Int
    let maxDestinations: Int
    private let sets: UnsafeMutablePointer<RamCastProtocol.GroupID>
    /// The same sets as arrays, for the delivery log.
    let arrays: [[RamCastProtocol.GroupID]]
    /// 64 entries: a uniformly drawn entry gives the set size, per the mix's weights.
    private let sizes: [Int]

    init(groups: Int, mix: DestinationMix) {
        groupCount = groups
        maxDestinations = mix.maxCount
        sets = .allocate(capacity: groups * maxDestinations * maxDestinations)
        var arrays: [[RamCastProtocol.GroupID]] = []
        for k in 1...maxDestinations {
            for first in 0..<groups {
                var set: [RamCastProtocol.GroupID] = []
                for j in 0..<k { set.append(RamCastProtocol.GroupID(UInt8((first + j) % groups))) }
                let base = ((k - 1) * groups + first) * maxDestinations
                for j in 0..<maxDestinations { (sets + base + j).initialize(to: j < k ? set[j] : RamCastProtocol.GroupID(0)) }
                arrays.append(set)
            }
        }
        self.arrays = arrays
        let total = mix.entries.reduce(0) { $0 + $1.weight }
        var sizes: [Int] = []
        var acc = 0
        for e in mix.entries {
            acc += e.weight
            while sizes.count < acc * 64 / total { sizes.append(e.count) }
        }
        while sizes.count < 64 { sizes.append(mix.entries.last!.count) }
        self.sizes = sizes
    }

    deinit { sets.deallocate() }

    /// A set index from one random draw.
    @inline(__always)
    func pick(_ random: UInt64) -> Int {
        let k = sizes[Int(random & 63)]
        let first = Int((random >> 8) % UInt64(groupCount))
        return (k - 1) * groupCount + first
    }

    @inline(__always)
    func count(_ set: Int) -> Int { set / groupCount + 1 }

    @inline(__always)
    func buffer(_ set: Int) -> UnsafeBufferPointer<RamCastProtocol.GroupID> {
        UnsafeBufferPointer(start: sets + set * maxDestinations, count: count(set))
    }
}

/// The payload every sender sends: zeros, with the sender's sequence number in the first 8 bytes
/// (when there is room), so a stop message (``StopMessage``) is never mistaken for load.
final class PayloadBuffer {
    let bytes: UnsafeMutableRawBufferPointer

    init(size: Int) {
        bytes = .allocate(byteCount: max(size, 1), alignment: 8)
        bytes.initializeMemory(as: UInt8.self, repeating: 0)
        count = size
    }

    let count: Int

    deinit { bytes.deallocate() }

    /// The payload as it is (no stamp).
    var raw: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[0..<count]) }

    @inline(__always)
    func stamp(_ sequence: UInt64) -> UnsafeRawBufferPointer {
        if count >= 8 { bytes.storeBytes(of: sequence.littleEndian, toByteOffset: 0, as: UInt64.self) }
        return UnsafeRawBufferPointer(rebasing: bytes[0..<count])
    }
}

/// Multi-process runs: when a sender is done, it multicasts one stop message to every group (an
/// 8-byte payload holding this magic; load payloads carry a sequence number below 2^40 there, or
/// are of another length). A server stops once it delivered a stop message from every sender.
enum StopMessage {
    static let magic: UInt64 = 0x5241_4D43_5354_4F50   // "RAMCSTOP"

    @inline(__always)
    static func matches(_ payload: UnsafeRawBufferPointer) -> Bool {
        payload.count == 8 && payload.loadUnaligned(as: UInt64.self) == magic.littleEndian
    }
}
