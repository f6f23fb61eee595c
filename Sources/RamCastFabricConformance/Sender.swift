import RamCastFabric

/// One side of a connection that posts with ``SendCredits`` and checks every completion.
struct Sender {
    let endpoint: any FabricEndpoint
    var connection: ConnectionID
    var credits: SendCredits
    var signaledCompletions = 0
    var signaledPosted = 0
    let harnessName: String

    init(_ endpoint: any FabricEndpoint, _ connection: ConnectionID, signalInterval: Int, harnessName: String) {
        self.endpoint = endpoint
        self.connection = connection
        self.credits = SendCredits(depth: endpoint.limits.sendQueueDepth, signalInterval: signalInterval)
        self.harnessName = harnessName
    }

    /// Posts `write` if a send-queue slot is free; returns false (posting nothing) otherwise.
    mutating func tryPost(_ write: WriteRequest) throws -> Bool {
        guard credits.canPost() else { return false }
        var w = write
        w.flags = credits.next(w.flags)
        if w.flags.contains(.signaled) { signaledPosted += 1 }
        try endpoint.post(w, on: connection)
        credits._checkInvariants()
        return true
    }

    /// Drains completions; every one must be a success on this sender's connection.
    mutating func poll(_ driver: inout Driver) throws {
        var failure: ConformanceFailure?
        let conn = connection
        let name = harnessName
        driver.poll(endpoint) { c in
            if failure == nil, c.connection != conn || c.status != .success {
                failure = fail("[\(name)] unexpected completion \(c.status) for write \(c.id) on \(c.connection)")
            }
            credits.signaledCompletion()
            signaledCompletions += 1
        }
        if let failure { throw failure }
    }
}

/// Deterministic bytes for a (seed, index) pair, so writer and checker agree without sharing memory.
func fillPattern(_ p: UnsafeMutableRawPointer, count: Int, seed: UInt64) {
    var rng = SplitMix64(seed: seed)
    var i = 0
    while i < count {
        let word = rng.next()
        let n = min(8, count - i)
        withUnsafeBytes(of: word) { (p + i).copyMemory(from: $0.baseAddress!, byteCount: n) }
        i += n
    }
}

func patternMatches(_ p: UnsafeRawPointer, count: Int, seed: UInt64) -> Bool {
    let expected = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 8)
    defer { expected.deallocate() }
    fillPattern(expected, count: count, seed: seed)
    return memcmp(expected, p, count) == 0
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
