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

    /// Live figures for the progress line, published by each poller about twice a second.
    let livePollers: Int
    private let live: UnsafeMutablePointer<UnsafeAtomic<UInt64>.Storage>   // [poller × 4]: p50 ns, p99 ns, samples

    private let errorLock = NSLock()
    private var firstError: (any Error)?

    /// - Parameter window: most messages a sender can have in flight (its staging buffers).
    init(senders: Int, window: Int, pollers: Int) {
        self.senders = senders
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
        livePollers = pollers
        live = .allocate(capacity: pollers * 4)
        live.initialize(repeating: UnsafeAtomic<UInt64>.Storage(0), count: pollers * 4)
    }

    deinit {
        sentCounts.deallocate()
        completedCounts.deallocate()
        sendTimes.deallocate()
        remaining.deallocate()
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
    /// are posted: `deliveries` destination processes will deliver it.
    @inline(__always)
    func sending(sender s: Int, sequence: UInt64, at time: UInt64, deliveries: Int) {
        let i = s * capacity + Int(sequence) & mask
        UnsafeAtomic<UInt64>(at: sendTimes + i).store(time, ordering: .relaxed)
        UnsafeAtomic<Int>(at: remaining + i).store(deliveries, ordering: .releasing)
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
