#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Monotonic nanoseconds (`CLOCK_MONOTONIC`, a vDSO call: no syscall, no allocation).
@inline(__always)
func nowNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// User and system CPU time of the whole process (all threads), from `getrusage(RUSAGE_SELF)`.
struct CPUTimes {
    var user: Double
    var system: Double

    static func now() -> CPUTimes {
        var u = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &u)
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return CPUTimes(user: seconds(u.ru_utime), system: seconds(u.ru_stime))
    }

    static func - (a: CPUTimes, b: CPUTimes) -> CPUTimes { CPUTimes(user: a.user - b.user, system: a.system - b.system) }
}

/// CPU use over a wall-clock interval, as a percentage of that interval (100% = one core busy).
struct CPUUse {
    var user: Double
    var system: Double
    var wall: Double
    var percent: Double { wall > 0 ? (user + system) / wall * 100 : 0 }
    var userPercent: Double { wall > 0 ? user / wall * 100 : 0 }
    var systemPercent: Double { wall > 0 ? system / wall * 100 : 0 }
}

/// Waits while there is nothing to do, without giving up latency while traffic flows.
///
/// Busy-polling processes share small machines (2 cores here, 2 vCPUs in the soft-RoCE VM, several
/// nodes per OS process or several OS processes per machine). So: spin for a few rounds, then
/// `sched_yield` for up to a millisecond of idleness (another runnable poller, or the kernel's
/// soft-RoCE work, gets the core), then nap 50 µs, and 1 ms once idle for 100 ms. Any progress
/// resets it. `enabled = false` (`--busy-poll`) spins forever; `napAfter` (`--nap-after-us`) moves
/// the first nap earlier when many pollers share few cores.
struct IdleBackoff {
    let enabled: Bool
    let napAfter: UInt64
    private var spins = 0
    private var idleSince: UInt64 = 0

    init(enabled: Bool, napAfter: UInt64 = 1_000_000) {
        self.enabled = enabled
        self.napAfter = napAfter
    }

    @inline(__always) mutating func progress() { spins = 0 }

    @inline(__always) mutating func idle() {
        guard enabled else { return }
        spins += 1
        if spins < 64 { return }
        if spins == 64 { idleSince = nowNanos(); return }
        let idle = nowNanos() &- idleSince
        if idle < napAfter {
            sched_yield()
        } else if idle < 100_000_000 {
            usleep(50)
        } else {
            usleep(1000)
        }
    }
}

/// Starts a joinable thread (a pthread, so the caller can wait for it deterministically).
final class JoinableThread: @unchecked Sendable {
    // @unchecked: `body` is only read by the new thread, once; `handle` only by the creating thread.
    private var handle: pthread_t?
    private let body: () -> Void
    let name: String

    init(name: String, _ body: @escaping () -> Void) {
        self.body = body
        self.name = name
        let unmanaged = Unmanaged.passRetained(self)
        var t = pthread_t()
        let rc = pthread_create(&t, nil, { raw in
            let me = Unmanaged<JoinableThread>.fromOpaque(raw!).takeRetainedValue()
            me.body()
            return nil
        }, unmanaged.toOpaque())
        precondition(rc == 0, "pthread_create failed: \(rc)")
        handle = t
    }

    func join() {
        if let h = handle { pthread_join(h, nil) }
        handle = nil
    }
}

/// Whether standard error is a terminal (the progress line is shown there by default).
var stderrIsTTY: Bool { isatty(2) == 1 }

func writeStderr(_ s: String) {
    FileHandle.standardError.write(Data(s.utf8))
}

// MARK: - number formatting

extension Double {
    /// `1234567.8` → `1,234,568`.
    var grouped: String { Int(self.rounded()).grouped }

    /// Fixed decimals.
    func fixed(_ digits: Int) -> String { String(format: "%.\(digits)f", self) }

    /// 3 significant digits for latencies and ratios: 0.123, 1.23, 12.3, 123, 1,234.
    var short: String {
        if !isFinite { return "-" }
        let a = abs(self)
        if a >= 1000 { return grouped }
        if a >= 100 { return fixed(0) }
        if a >= 10 { return fixed(1) }
        if a >= 1 { return fixed(2) }
        return fixed(3)
    }

    /// Seconds and other plain figures without trailing zeros: 5, 0.5, 2.25.
    var trim: String { String(format: "%g", self) }

    /// `1.23 M`, `456 K`: for axes and progress.
    var metric: String {
        let a = abs(self)
        if a >= 1e9 { return (self / 1e9).short + " G" }
        if a >= 1e6 { return (self / 1e6).short + " M" }
        if a >= 1e3 { return (self / 1e3).short + " K" }
        return short
    }
}

extension Int {
    var grouped: String {
        let digits = String(Swift.abs(self))
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0, (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return self < 0 ? "-" + out : out
    }
}

extension UInt64 {
    var grouped: String { Int(clamping: self).grouped }
}

/// Pads `s` on the left (numbers) or right (labels) to `width` characters.
func pad(_ s: String, _ width: Int, right: Bool = false) -> String {
    let n = s.count
    guard n < width else { return s }
    let fill = String(repeating: " ", count: width - n)
    return right ? s + fill : fill + s
}
