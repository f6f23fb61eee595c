import Atomics
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Set by SIGINT/SIGTERM: a run then ends its measured phase early and reports what it has.
let interrupted = ManagedAtomic<Bool>(false)

/// `node --stop-file PATH`: the file's appearance acts like SIGINT. Checked at most 10 times a second.
nonisolated(unsafe) var stopFile: String?
nonisolated(unsafe) private var stopFileCheckedAt: UInt64 = 0

/// Whether the user asked the run to end early (controller thread only).
func stopRequested() -> Bool {
    if interrupted.load(ordering: .relaxed) { return true }
    guard let path = stopFile else { return false }
    let now = nowNanos()
    guard now &- stopFileCheckedAt > 100_000_000 else { return false }
    stopFileCheckedAt = now
    if access(path, F_OK) == 0 {
        interrupted.store(true, ordering: .relaxed)
        return true
    }
    return false
}

func installInterruptHandlers() {
    signal(SIGINT) { _ in interrupted.store(true, ordering: .relaxed) }
    signal(SIGTERM) { _ in interrupted.store(true, ordering: .relaxed) }
}

/// The measured window of a run, as the controller saw it.
struct MeasuredWindow {
    var start: UInt64
    var end: UInt64
    var cpu: CPUUse
    var messages: Int
    /// ``RunState/completedTotal`` at `start`.
    var completedAtStart = 0
    var seconds: Double { Double(end &- start) / 1e9 }

    /// `--crash-leader-after`, when the crash fell inside the window: messages per second completed
    /// before it and after it.
    func throughputAroundCrash(_ state: RunState) -> (before: Double, after: Double)? {
        let at = state.crashedAt.load(ordering: .relaxed)
        guard at > start, at < end else { return nil }
        let before = state.completedAtCrash.load(ordering: .relaxed) - completedAtStart
        return (Double(before) / (Double(at - start) / 1e9), Double(messages - before) / (Double(end - at) / 1e9))
    }
}

/// The live progress line on standard error: rewritten in place on a terminal, one line a second
/// otherwise (`--progress` into a file).
final class ProgressLine {
    let enabled: Bool
    private let tty = stderrIsTTY
    private var lastAt: UInt64 = 0
    private var lastCompleted = 0
    private var shown = false

    init(enabled: Bool) { self.enabled = enabled }

    func update(_ state: RunState, phase: String, elapsed: Double, total: Double?, force: Bool = false) {
        guard enabled else { return }
        let now = nowNanos()
        let interval: UInt64 = tty ? 250_000_000 : 1_000_000_000
        guard force || now &- lastAt >= interval else { return }
        let sent = state.sentTotal
        let completed = state.completedTotal.load(ordering: .relaxed)
        let rate = lastAt == 0 ? 0 : Double(completed - lastCompleted) / (Double(now &- lastAt) / 1e9)
        lastAt = now
        lastCompleted = completed
        var text = "[\(pad(elapsed.fixed(1), 5))"
        if let total { text += " / \(total.fixed(0))" }
        text += " s  \(phase)]  \(pad(rate.grouped, 11)) msgs/s"
        if let (p50, p99) = state.liveLatency() {
            text += "   p50 \((Double(p50) / 1000).short) µs   p99 \((Double(p99) / 1000).short) µs"
        }
        text += "   in flight \(max(0, sent - completed))   completed \(completed.grouped)"
        if tty {
            writeStderr("\r\u{1B}[2K" + text)
            shown = true
        } else {
            writeStderr(text + "\n")
        }
    }

    func clear() {
        if shown { writeStderr("\r\u{1B}[2K") }
        shown = false
    }
}

/// Drives the phases of a run from the main thread while the pollers work.
struct Controller {
    let state: RunState
    let pollers: Int
    let progress: ProgressLine

    /// Waits until every poller connected its nodes (or one failed).
    func waitReady(timeout: Double) throws {
        let deadline = nowNanos() + UInt64(timeout * 1e9)
        while state.ready.load(ordering: .acquiring) < pollers {
            if let e = state.error { throw e }
            if stopRequested() { throw BenchError("interrupted while connecting") }
            guard nowNanos() < deadline else { throw BenchError("the cluster did not connect within \(Int(timeout)) s") }
            usleep(5_000)
        }
    }

    /// Sleeps `seconds` (or until interrupted or a poller failed), updating the progress line.
    func hold(_ seconds: Double, phase: String, from start: UInt64, total: Double?) throws {
        let end = nowNanos() + UInt64(seconds * 1e9)
        while nowNanos() < end {
            if let e = state.error { throw e }
            if stopRequested() { return }
            progress.update(state, phase: phase, elapsed: Double(nowNanos() - start) / 1e9, total: total)
            usleep(20_000)
        }
    }

    /// Waits until `done()`, failing if nothing completes for `stall` seconds.
    func wait(phase: String, from start: UInt64, total: Double?, stall: Double = 30, _ done: () -> Bool) throws {
        var lastCompleted = state.completedTotal.load(ordering: .relaxed)
        var lastChange = nowNanos()
        while !done() {
            if let e = state.error { throw e }
            if phase == "measuring", stopRequested() { return }
            let c = state.completedTotal.load(ordering: .relaxed)
            if c != lastCompleted {
                lastCompleted = c
                lastChange = nowNanos()
            } else if Double(nowNanos() - lastChange) / 1e9 > stall {
                throw BenchError("no message completed for \(Int(stall)) s while \(phase): \(state.sentTotal.grouped) sent, \(c.grouped) completed")
            }
            progress.update(state, phase: phase, elapsed: Double(nowNanos() - start) / 1e9, total: total)
            usleep(1_000)
        }
    }

    /// Warm-up, measured phase, drain (local runs and multi-process senders).
    func runLoad(warmup: Double, duration: Double, messages: Int?) throws -> MeasuredWindow {
        let begin = nowNanos()
        if warmup > 0 {
            state.set(.warmup)
            try hold(warmup, phase: "warm-up", from: begin, total: nil)
        }
        var window: MeasuredWindow
        if let messages {
            if warmup > 0 {
                state.set(.drain)
                try wait(phase: "settling", from: begin, total: nil) { state.completedTotal.load(ordering: .acquiring) == state.sentTotal }
            }
            let first = state.completedTotal.load(ordering: .acquiring)
            state.targetTotal.store(first + messages, ordering: .releasing)
            let cpu0 = CPUTimes.now()
            let t0 = nowNanos()
            state.set(.measure)
            try wait(phase: "measuring", from: t0, total: nil) { state.completedTotal.load(ordering: .acquiring) >= first + messages }
            var t1 = state.finishedAt.load(ordering: .acquiring)
            if t1 == 0 { t1 = nowNanos() }   // interrupted
            let cpu1 = CPUTimes.now()
            let done = state.completedTotal.load(ordering: .acquiring) - first
            state.set(.drain)
            window = MeasuredWindow(start: t0, end: t1, cpu: use(cpu0, cpu1, t0, nowNanos()), messages: done, completedAtStart: first)
        } else {
            let first = state.completedTotal.load(ordering: .acquiring)
            let cpu0 = CPUTimes.now()
            let t0 = nowNanos()
            state.set(.measure)
            try hold(duration, phase: "measuring", from: t0, total: duration)
            let t1 = nowNanos()
            let done = state.completedTotal.load(ordering: .acquiring) - first
            let cpu1 = CPUTimes.now()
            state.set(.drain)
            window = MeasuredWindow(start: t0, end: t1, cpu: use(cpu0, cpu1, t0, t1), messages: done, completedAtStart: first)
        }
        try wait(phase: "draining", from: window.start, total: nil) { state.completedTotal.load(ordering: .acquiring) >= state.sentTotal }
        return window
    }

    func use(_ a: CPUTimes, _ b: CPUTimes, _ t0: UInt64, _ t1: UInt64) -> CPUUse {
        let d = b - a
        return CPUUse(user: d.user, system: d.system, wall: Double(t1 &- t0) / 1e9)
    }
}
