import Atomics
import Foundation
import RamCastProtocol

/// Phases of a run, driven by the controller thread and observed by every poller.
enum Phase: Int, Sendable {
    case setup = 0
    /// Load flows, nothing is recorded.
    case warmup = 1
    /// Load flows, latencies and counters are recorded.
    case measure = 2
    /// No new load; in-flight messages finish (so delivery logs end quiescent).
    case drain = 3
    /// Multi-process senders: tell the servers to stop (stop messages), wait for them to be delivered.
    case stopping = 4
    case exit = 5
}

/// State shared by the pollers of one OS process and the controller: the phase, per-sender
/// counters, and the per-message table (send time, deliveries still due) that lets a delivery on
/// any polling thread find its multicast. Everything is preallocated; the hot path uses atomics
/// only (uncontended with one poller).
final class RunState: @unchecked Sendable {
    // @unchecked: all mutable shared state is atomics; the error box takes a lock.
    let phase = ManagedAtomic<Int>(Phase.setup.rawValue)
    let ready = ManagedAtomic<Int>(0)
    let failed = ManagedAtomic<Bool>(false)
    /// Messages completed (delivered by every destination process), over all senders of this process.
    let completedTotal = ManagedAtomic<Int>(0)
    /// With --messages: the completed total that ends the measured phase, and when it was reached (ns).
    let targetTotal = ManagedAtomic<Int>(Int.max)
    let finishedAt = ManagedAtomic<UInt64>(0)
    /// Multi-process servers: stop messages delivered (one per sender ends the run), and senders:
    /// whether their stop messages were delivered everywhere.
    let stopsDelivered = ManagedAtomic<Int>(0)
    let stopsDone = ManagedAtomic<Int>(0)
    /// Multi-process servers: deliveries of load messages (for the progress line), and whether the
    /// run is over and the process only lingers while its peers finish.
    let deliveredTotal = ManagedAtomic<Int>(0)
    let lingering = ManagedAtomic<Bool>(false)

    let senders: Int
    let capacity: Int
    let mask: Int
    private static let stride = 8   // Ints per padded counter (64 bytes): no false sharing
    private let sentCounts: UnsafeMutablePointer<UnsafeAtomic<Int>.Storage>
    private let completedCounts: UnsafeMutablePointer<UnsafeAtomic<Int>.Storage>
    private let sendTimes: UnsafeMutablePointer<UnsafeAtomic<UInt64>.Storage>
    private let remaining: UnsafeMutablePointer<UnsafeAtomic<Int>.Storage>

    /// `--crash-leader-after`: the destination group of the process that will be crashed. A message
    /// to that group counts the process among its `deliveries`; once it crashed, each message it had
    /// not delivered is credited in its place, exactly once (see ``creditCrashed(sender:sequence:)``).
    let crashGroup: Int?
    /// Per message: 1 while the crash target's delivery is still due (neither delivered nor credited).
    private let targetDue: UnsafeMutablePointer<UnsafeAtomic<Int>.Storage>
    /// Set once the crash target is down; when it went down and when group 0's new leader first
    /// delivered (ns, 0 until then).
    let targetCrashed = ManagedAtomic<Bool>(false)
    let crashedAt = ManagedAtomic<UInt64>(0)
    /// ``completedTotal`` when the target crashed (before the crash completed anything).
    let completedAtCrash = ManagedAtomic<Int>(0)
    let failoverAt = ManagedAtomic<UInt64>(0)

    /// Live figures for the progress line, published by each poller about twice a second.
    let livePollers: Int
    private let live: UnsafeMutablePointer<UnsafeAtomic<UInt64>.Storage>   // [poller × 4]: p50 ns, p99 ns, samples

    private let errorLock = NSLock()
    private var firstError: (any Error)?

    /// - Parameter window: most messages a sender can have in flight (its staging buffers).
    init(senders: Int, window: Int, pollers: Int, crashGroup: Int? = nil) {
        self.senders = senders
        self.crashGroup = crashGroup
        var cap = 1
        while cap < window { cap <<= 1 }
        capacity = cap
        mask = cap - 1
        sentCounts = .allocate(capacity: senders * Self.stride)
        sentCounts.initialize(repeating: UnsafeAtomic<Int>.Storage(0), count: senders * Self.stride)
        completedCounts = .allocate(capacity: senders * Self.stride)
        completedCounts.initialize(repeating: UnsafeAtomic<Int>.Storage(0), count: senders * Self.stride)
        sendTimes = .allocate(capacity: senders * cap)
        sendTimes.initialize(repeating: UnsafeAtomic<UInt64>.Storage(0), count: senders * cap)
        remaining = .allocate(capacity: senders * cap)
        remaining.initialize(repeating: UnsafeAtomic<Int>.Storage(0), count: senders * cap)
        targetDue = .allocate(capacity: senders * cap)
        targetDue.initialize(repeating: UnsafeAtomic<Int>.Storage(0), count: senders * cap)
        livePollers = pollers
        live = .allocate(capacity: pollers * 4)
        live.initialize(repeating: UnsafeAtomic<UInt64>.Storage(0), count: pollers * 4)
    }

    deinit {
        sentCounts.deallocate()
        completedCounts.deallocate()
        sendTimes.deallocate()
        remaining.deallocate()
        targetDue.deallocate()
        live.deallocate()
    }

    var currentPhase: Phase { Phase(rawValue: phase.load(ordering: .acquiring))! }
    func set(_ p: Phase) { phase.store(p.rawValue, ordering: .releasing) }

    // MARK: per sender

    @inline(__always) func sent(_ s: Int) -> Int { UnsafeAtomic<Int>(at: sentCounts + s * Self.stride).load(ordering: .relaxed) }
    @inline(__always) func setSent(_ s: Int, _ n: Int) { UnsafeAtomic<Int>(at: sentCounts + s * Self.stride).store(n, ordering: .relaxed) }
    @inline(__always) func completed(_ s: Int) -> Int { UnsafeAtomic<Int>(at: completedCounts + s * Self.stride).load(ordering: .acquiring) }

    var sentTotal: Int { (0..<senders).reduce(0) { $0 + sent($1) } }

    // MARK: per message

    /// Called by the sending poller right after `multicast` returned `sequence`, before its writes
    /// are posted: `deliveries` destination processes will deliver it. `toCrashGroup`: one of them
    /// is the crash target (the message goes to ``crashGroup``); the caller then calls
    /// ``published(sender:sequence:)`` once the send is published (``setSent(_:_:)``).
    @inline(__always)
    func sending(sender s: Int, sequence: UInt64, at time: UInt64, deliveries: Int, toCrashGroup: Bool = false) {
        let i = s * capacity + Int(sequence) & mask
        UnsafeAtomic<UInt64>(at: sendTimes + i).store(time, ordering: .relaxed)
        UnsafeAtomic<Int>(at: remaining + i).store(deliveries, ordering: .releasing)
        if crashGroup != nil {
            UnsafeAtomic<Int>(at: targetDue + i).store(toCrashGroup ? 1 : 0, ordering: .sequentiallyConsistent)
        }
    }

    /// After sending a message to ``crashGroup``: if the target crashed meanwhile, it will never
    /// deliver the message, so it is credited now. Returns true if that completed the message.
    ///
    /// Why nothing is missed when another poller crashes the target concurrently: this thread stores
    /// `targetDue` and then loads `targetCrashed`; ``crashTarget()`` stores `targetCrashed` and then
    /// loads every `targetDue` (all sequentially consistent). One of the two sees the other's store,
    /// and the exchange on `targetDue` lets only one of them credit.
    @inline(__always)
    func published(sender s: Int, sequence: UInt64) -> Bool {
        guard targetCrashed.load(ordering: .sequentiallyConsistent) else { return false }
        return creditCrashed(index: s * capacity + Int(sequence) & mask, sender: s)
    }

    /// The crash target delivered the message itself (before it crashed, on its own poller).
    @inline(__always)
    func targetDelivered(sender s: Int, sequence: UInt64) {
        UnsafeAtomic<Int>(at: targetDue + s * capacity + Int(sequence) & mask).store(0, ordering: .sequentiallyConsistent)
    }

    /// The target is down (called by its poller right after crashing it, so after its last
    /// delivery): every message still due there is credited. Returns the send times of the messages
    /// that this completed.
    func crashTarget(at time: UInt64) -> [UInt64] {
        completedAtCrash.store(completedTotal.load(ordering: .acquiring), ordering: .relaxed)
        crashedAt.store(time, ordering: .relaxed)
        targetCrashed.store(true, ordering: .sequentiallyConsistent)
        var completed: [UInt64] = []
        for s in 0..<senders {
            for k in 0..<capacity where creditCrashed(index: s * capacity + k, sender: s) {
                completed.append(UnsafeAtomic<UInt64>(at: sendTimes + s * capacity + k).load(ordering: .relaxed))
            }
        }
        return completed
    }

    /// Multi-process runs: the target, in another OS process, was seen gone at `time`.
    func observedCrash(at time: UInt64) {
        completedAtCrash.store(completedTotal.load(ordering: .acquiring), ordering: .relaxed)
        crashedAt.store(time, ordering: .relaxed)
        targetCrashed.store(true, ordering: .sequentiallyConsistent)
    }

    /// Stands in for the crashed target's delivery of message `i`, if still due there.
    @inline(__always)
    private func creditCrashed(index i: Int, sender s: Int) -> Bool {
        let due = UnsafeAtomic<Int>(at: targetDue + i)
        guard due.load(ordering: .sequentiallyConsistent) == 1,
              due.exchange(0, ordering: .sequentiallyConsistent) == 1 else { return false }
        let left = UnsafeAtomic<Int>(at: remaining + i).loadThenWrappingDecrement(ordering: .acquiringAndReleasing)
        guard left == 1 else { return false }
        complete(sender: s)
        return true
    }

    /// Records the first delivery under group 0's new leader (the first call wins).
    func failedOver(at time: UInt64) {
        _ = failoverAt.compareExchange(expected: 0, desired: time, ordering: .relaxed)
    }

    /// Milliseconds from the crash to the first delivery under group 0's new leader.
    var failoverMilliseconds: Double? {
        let c = crashedAt.load(ordering: .relaxed), f = failoverAt.load(ordering: .relaxed)
        guard c != 0, f >= c else { return nil }
        return Double(f - c) / 1e6
    }

    @inline(__always)
    func sendTime(sender s: Int, sequence: UInt64) -> UInt64 {
        UnsafeAtomic<UInt64>(at: sendTimes + s * capacity + Int(sequence) & mask).load(ordering: .relaxed)
    }

    /// One destination process delivered the message. Returns true for the last one.
    @inline(__always)
    func delivered(sender s: Int, sequence: UInt64) -> Bool {
        let left = UnsafeAtomic<Int>(at: remaining + s * capacity + Int(sequence) & mask)
            .loadThenWrappingDecrement(ordering: .acquiringAndReleasing)
        guard left == 1 else { return false }
        complete(sender: s)
        return true
    }

    /// A message of sender `s` is complete (delivered by every destination process).
    @inline(__always)
    func complete(sender s: Int) {
        UnsafeAtomic<Int>(at: completedCounts + s * Self.stride).wrappingIncrement(ordering: .releasing)
        let total = completedTotal.wrappingIncrementThenLoad(ordering: .acquiringAndReleasing)
        if total == targetTotal.load(ordering: .relaxed) { finishedAt.store(nowNanos(), ordering: .releasing) }
    }

    // MARK: live figures

    func publishLive(poller: Int, p50: UInt64, p99: UInt64, samples: UInt64) {
        UnsafeAtomic<UInt64>(at: live + poller * 4).store(p50, ordering: .relaxed)
        UnsafeAtomic<UInt64>(at: live + poller * 4 + 1).store(p99, ordering: .relaxed)
        UnsafeAtomic<UInt64>(at: live + poller * 4 + 2).store(samples, ordering: .relaxed)
    }

    /// The live p50 and p99 (ns) of the poller that recorded the most samples in its last window.
    func liveLatency() -> (p50: UInt64, p99: UInt64)? {
        var best: (UInt64, UInt64, UInt64)?
        for p in 0..<livePollers {
            let n = UnsafeAtomic<UInt64>(at: live + p * 4 + 2).load(ordering: .relaxed)
            if n > 0, best == nil || n > best!.2 {
                best = (UnsafeAtomic<UInt64>(at: live + p * 4).load(ordering: .relaxed),
                        UnsafeAtomic<UInt64>(at: live + p * 4 + 1).load(ordering: .relaxed), n)
            }
        }
        return best.map { ($0.0, $0.1) }
    }

    // MARK: errors

    func fail(_ error: any Error) {
        errorLock.lock()
        if firstError == nil { firstError = error }
        errorLock.unlock()
        failed.store(true, ordering: .releasing)
        set(.exit)
    }

    var error: (any Error)? {
        errorLock.lock()
        defer { errorLock.unlock() }
        return firstError
    }
}
