import RamCastFabric

/// The protocol's view of a cluster: who is in which group, who sends, and the sizes that fix the
/// memory layout. Every process must use the same configuration.
public struct ProtocolConfig: Sendable, Hashable {
    /// Members of each group, indexed by group id. Member 0 is the first leader.
    public var groups: [[NodeID]]
    /// Processes that multicast. They are not group members.
    public var senders: [NodeID]
    /// Slots in each (sender → process) ring.
    public var slotsPerRing: Int
    /// Bytes per slot: header, payload, checksum and the ack area.
    public var slotSize: Int
    /// Writes up to this many bytes are posted inline (timestamps, acks, slot releases, small bodies).
    public var inlineThreshold: Int
    /// One write in this many is signaled (selective signaling).
    public var signalInterval: Int
    /// Most destination groups one message may have. Defaults to every group.
    public var maxDestinations: Int
    /// How much of the protocol runs, for benchmarks that price each step: 1 = bodies only (a
    /// destination "delivers" a body as soon as it lands), 2 = plus leader timestamps (a process
    /// delivers once it holds its own group's timestamp), 3 = the full protocol. Only 3 is atomic
    /// multicast.
    public var steps: Int = 3
    /// The single-group fast path (spec §5.2): a leader orders a message addressed to its group alone
    /// once its timestamp writes completed at f followers, one write delay before their acks.
    ///
    /// Safe in every schedule the simulation draws, sender crashes and driver races included: the
    /// leader writes the body into each follower's ring ahead of the timestamp on the same
    /// connection, so a completed timestamp write means the follower holds the body; a 1A is
    /// answered only after the old leader's write permission was revoked; and a sender frees a
    /// staging buffer only once its writes were carried out (docs/failure-handling.md, "Single-group
    /// fast path"). Costs one body write per follower per single-group message.
    ///
    /// Off by default: it saves a write delay only on a real NIC (on the in-process fabric it is
    /// slower), and it is new. Turn it on where single-group latency matters.
    public var singleGroupFastPath: Bool = false
    /// How often a leader writes its heartbeat to its followers, in nanoseconds of the driver's clock.
    public var heartbeatInterval: UInt64 = 1_000_000
    /// A leader whose heartbeat has not moved for this long is suspected, in nanoseconds.
    public var failureTimeout: UInt64 = 100_000_000
    /// Where the counters start. The defaults are what a real cluster uses; tests start them near
    /// their limits so that every wrap happens within a short run (`ramcast-sim --near-limits`).
    public var counterStart = CounterStart()

    /// The largest ``slotSize`` (16 MiB). A slot's payload length travels in 32 bits, and with at
    /// most 65,535 senders and 32,768 slots a ring of such slots (2⁵⁵ bytes) still has an offset
    /// that fits an `Int`; whether the memory is there is the fabric's check when registering.
    public static let maxSlotSize = 1 << 24

    public init(groups: [[NodeID]], senders: [NodeID], slotsPerRing: Int = 16, slotSize: Int = 512,
                inlineThreshold: Int = 64, signalInterval: Int = 8, maxDestinations: Int? = nil) {
        self.groups = groups
        self.senders = senders
        self.slotsPerRing = slotsPerRing
        self.slotSize = slotSize
        self.inlineThreshold = inlineThreshold
        self.signalInterval = signalInterval
        self.maxDestinations = maxDestinations ?? groups.count
    }
}

/// The first values of the protocol's counters, identical at every process. Only tests change them:
/// a counter started just below a limit (a width of a wire field, of a table index, of a slot
/// position) crosses it after a few messages instead of after days.
public struct CounterStart: Sendable, Hashable {
    /// The counter of each sender's first message: its id has sequence
    /// ``MessageID/sequence(ofCounter:)`` of it, and ids wrap ``MessageID/sequenceCount`` messages on.
    public var messageCounter: UInt64 = 1
    /// The log position before each stream's first entry (a leader's stream to its followers and to
    /// another group's leader, from each new ballot): entries are numbered from this + 1. Positions
    /// are 64 bits; log entries carry their low 32 bits.
    public var logPosition: UInt64 = 0
    /// Every group's first ballot is the smallest multiple of its size (so that member 0 leads it)
    /// that is at least this and at least the size.
    public var ballot: UInt32 = 0
    /// Every process's Skeen clock before its first timestamp.
    public var clock: UInt64 = 0

    public init() {}

    /// Every counter a few steps below the limit its value used to wrap at, so that even a short run
    /// crosses it: message sequences 5 below 2⁴⁰ (a sender's sixth message wraps), log positions 8
    /// below 2³², ballots one or two below 2¹⁶ (the first leader change crosses it), clocks 8 below
    /// 2⁴⁰ or 2⁴⁸ (odd or even `variant`: the widths of the clock in the old ack words and clock cells).
    public static func nearLimits(variant: UInt64 = 0) -> CounterStart {
        var c = CounterStart()
        c.messageCounter = MessageID.sequenceCount - 4
        c.logPosition = (1 << 32) - 8
        c.ballot = (1 << 16) - 2
        c.clock = (variant & 1 == 1 ? 1 << 40 : 1 << 48) - 8
        return c
    }
}

/// A configuration the protocol cannot run with. Each case says which value is wrong and why.
public enum ConfigError: Error, Sendable, Hashable, CustomStringConvertible {
    case invalid(key: String, reason: String)

    public var description: String {
        switch self {
        case .invalid(let key, let reason): "\(key): \(reason)"
        }
    }
}

extension ProtocolConfig {
    /// Checks every rule the layout and the protocol rely on, naming the offending key.
    public func validate() throws(ConfigError) {
        guard !groups.isEmpty else { throw .invalid(key: "groups", reason: "at least one group is required") }
        guard groups.count <= 255 else { throw .invalid(key: "groups", reason: "at most 255 groups, got \(groups.count)") }
        var seen: [NodeID: String] = [:]
        for (g, members) in groups.enumerated() {
            guard !members.isEmpty, members.count % 2 == 1 else {
                throw .invalid(key: "groups[\(g)]", reason: "a group needs 2f+1 members (an odd number), got \(members.count)")
            }
            for m in members {
                if let other = seen[m] { throw .invalid(key: "groups[\(g)]", reason: "\(m) is already in \(other)") }
                seen[m] = "groups[\(g)]"
            }
        }
        guard !senders.isEmpty else { throw .invalid(key: "senders", reason: "at least one sender is required") }
        for s in senders {
            if let other = seen[s] { throw .invalid(key: "senders", reason: "\(s) is already in \(other)") }
            seen[s] = "senders"
        }
        guard senders.count <= 0xFFFF else { throw .invalid(key: "senders", reason: "at most 65535 senders") }
        if let s = senders.first(where: { $0.rawValue >= MessageID.senderLimit }) {
            throw .invalid(key: "senders", reason: "a sender's node id must be below \(MessageID.senderLimit) (message ids keep 24 bits of it), got \(s.rawValue)")
        }
        guard slotsPerRing >= 1, slotsPerRing <= 0x8000 else {
            throw .invalid(key: "slotsPerRing", reason: "must be in 1...32768, got \(slotsPerRing)")
        }
        // A fast-path write id keeps the message's table index (sender × slots + slot) in 24 bits.
        guard senders.count * slotsPerRing <= WriteTag.tableIndexLimit else {
            throw .invalid(key: "slotsPerRing", reason: "senders × slotsPerRing must be at most \(WriteTag.tableIndexLimit), got \(senders.count) × \(slotsPerRing) = \(senders.count * slotsPerRing)")
        }
        guard maxDestinations >= 1, maxDestinations <= groups.count else {
            throw .invalid(key: "maxDestinations", reason: "must be in 1...\(groups.count), got \(maxDestinations)")
        }
        // Before anything multiplies by it: a huge slot size would overflow the layout's offsets.
        guard slotSize >= 8, slotSize <= Self.maxSlotSize else {
            throw .invalid(key: "slotSize", reason: "must be in 8...\(Self.maxSlotSize), got \(slotSize)")
        }
        guard slotSize % 8 == 0 else { throw .invalid(key: "slotSize", reason: "must be a multiple of 8, got \(slotSize)") }
        let layout = Layout(unchecked: self)
        guard layout.maxPayload >= 1 else {
            throw .invalid(key: "slotSize", reason: "\(slotSize) bytes leave no room for a payload: the header takes \(layout.headerSize), the checksum 4 and the ack area \(layout.ackAreaSize)")
        }
        guard inlineThreshold >= 0 else { throw .invalid(key: "inlineThreshold", reason: "must not be negative") }
        guard signalInterval >= 1 else { throw .invalid(key: "signalInterval", reason: "must be at least 1, got \(signalInterval)") }
        guard (1...3).contains(steps) else { throw .invalid(key: "steps", reason: "must be 1, 2 or 3, got \(steps)") }
        guard counterStart.messageCounter >= 1, counterStart.messageCounter <= UInt64.max / 2 else {
            throw .invalid(key: "counterStart.messageCounter", reason: "must be in 1...\(UInt64.max / 2), got \(counterStart.messageCounter)")
        }
        guard counterStart.logPosition <= UInt64.max / 2 else {
            throw .invalid(key: "counterStart.logPosition", reason: "must be at most \(UInt64.max / 2), got \(counterStart.logPosition)")
        }
        guard counterStart.ballot <= UInt32.max / 2 else {
            throw .invalid(key: "counterStart.ballot", reason: "must be at most \(UInt32.max / 2), got \(counterStart.ballot)")
        }
        guard heartbeatInterval > 0, failureTimeout > heartbeatInterval else {
            throw .invalid(key: "failureTimeout", reason: "must exceed the heartbeat interval (\(heartbeatInterval) ns), got \(failureTimeout) ns")
        }
    }
}
