/// Selective signaling with send-queue credits, for one connection.
///
/// A queue pair's send-queue slots are only freed when the caller polls a *signaled* completion,
/// which retires that write and every earlier one. Signaling every write costs a completion per
/// write; signaling none fills the queue. `SendCredits` signals one write in `signalInterval`, and
/// also the write that takes the last free slot, so a caller that respects ``canPost(_:)`` can never
/// overflow the send queue and never waits for a completion that will not come.
///
/// Storage is allocated once, at init: using it on the hot path allocates nothing.
public struct SendCredits: Sendable {
    public let depth: Int
    public let signalInterval: Int
    /// Writes posted since the connection was (re)established.
    public private(set) var posted: UInt64 = 0
    /// Writes known to be done: everything up to the last polled signaled completion.
    public private(set) var retired: UInt64 = 0
    private var sinceSignal = 0
    /// Whether the most recent write was signaled (so its completion will retire everything).
    public private(set) var lastPostedSignaled = false
    /// Post counters of signaled writes whose completion has not been seen yet, oldest first.
    private var signaledRing: [UInt64]
    private var ringHead = 0
    private var ringCount = 0

    public init(depth: Int, signalInterval: Int) {
        precondition(depth >= 1, "send queue depth must be at least 1")
        precondition(signalInterval >= 1, "signal interval must be at least 1")
        self.depth = depth
        self.signalInterval = min(signalInterval, depth)
        // At most one signaled write per interval is outstanding, plus the forced last-slot ones.
        self.signaledRing = Array(repeating: 0, count: depth + 1)
    }

    /// Writes posted and not yet retired.
    @inlinable public var outstanding: Int { Int(truncatingIfNeeded: posted &- retired) }

    /// Whether `count` more writes fit in the send queue now.
    @inlinable public func canPost(_ count: Int = 1) -> Bool { outstanding + count <= depth }

    /// Accounts for one more write and returns its flags: `base` plus ``WriteFlags/signaled`` when
    /// this write must be signaled. Call only after ``canPost(_:)`` said yes.
    public mutating func next(_ base: WriteFlags = []) -> WriteFlags {
        posted &+= 1
        sinceSignal += 1
        var flags = base
        if base.contains(.signaled) || sinceSignal >= signalInterval || outstanding >= depth {
            flags.insert(.signaled)
            sinceSignal = 0
            signaledRing[(ringHead + ringCount) % signaledRing.count] = posted
            ringCount += 1
        }
        lastPostedSignaled = flags.contains(.signaled)
        return flags
    }

    /// Call for each successful completion of a signaled write on this connection. Completions of
    /// one connection arrive in posting order, so the oldest signaled write is the one completed.
    public mutating func signaledCompletion() {
        guard ringCount > 0 else { return }
        retired = signaledRing[ringHead]
        ringHead = (ringHead + 1) % signaledRing.count
        ringCount -= 1
    }

    /// Forgets everything: call when the connection is re-established.
    public mutating func reset() {
        posted = 0
        retired = 0
        sinceSignal = 0
        lastPostedSignaled = false
        ringHead = 0
        ringCount = 0
    }

    #if DEBUG
    public func _checkInvariants() {
        precondition(retired <= posted, "retired \(retired) > posted \(posted)")
        precondition(outstanding <= depth, "outstanding \(outstanding) > depth \(depth)")
        precondition(ringCount <= signaledRing.count)
    }
    #else
    @inline(__always) public func _checkInvariants() {}
    #endif
}
