import Atomics
import Foundation
import Logging
import RamCastFabric
import RamCastProtocol

/// A message as delivered to the ``RamCastRuntime/deliveries`` sequence: a copy that outlives its
/// slot. The hot path uses the callback instead, which borrows the slot and copies nothing.
public struct DeliveredMessage: Sendable, Hashable {
    public var id: MessageID
    public var process: NodeID
    public var group: GroupID
    public var destinations: [GroupID]
    public var finalTimestamp: Timestamp
    public var payload: [UInt8]
}

/// When ``RamCastRuntime/multicast(_:to:from:waitFor:)`` returns.
public enum MulticastCompletion: Sendable, Hashable {
    /// The body is in place at every destination process (step 1 complete). The default.
    case bodiesInPlace
    /// Every destination process delivered the message (each has released its slot).
    case deliveredEverywhere
    /// These destination processes delivered it (for a sender that runs next to a group member,
    /// pass that member: "delivered locally").
    case delivered(at: [NodeID])
}

/// Errors of the runtime API.
public enum RamCastError: Error, Sendable, CustomStringConvertible {
    case multicast(MulticastError)
    case notASender(NodeID, localSenders: [NodeID])
    case notRunning
    case fabric(FabricError)

    public var description: String {
        switch self {
        case .multicast(let e): "multicast refused: \(e)"
        case .notASender(let id, let local): "\(id) is not a sender of this runtime (local senders: \(local.map { "\($0.rawValue)" }.joined(separator: ", ")))"
        case .notRunning: "the runtime is not running"
        case .fabric(let e): "fabric error: \(e)"
        }
    }
}

/// Runs the processes of a cluster that live in this OS process, on one polling thread.
///
/// The polling thread drives every local process in turn: it takes message bodies, timestamps,
/// acks and forwards, posts writes, polls completions, and delivers. Deliveries reach the
/// `onDelivery` callback on that thread (no copy, no allocation, no lock, no task: the hot path), and
/// also the ``deliveries`` async sequence when someone iterates it (a copy per message).
///
/// ```swift
/// let runtime = try RamCastRuntime(configuration: config, local: [NodeID(100)], logger: logger) { id in
///     try RDMAEndpoint(node: id, configuration: rdmaConfig, logger: logger)
/// }
/// runtime.start()
/// let id = try await runtime.multicast(Array("put k v".utf8), to: [GroupID(0), GroupID(1)])
/// ```
public final class RamCastRuntime: @unchecked Sendable {
    // @unchecked: `cluster` and everything under it is touched only by the polling thread once
    // `start()` ran; callers talk to it through `submissions` (a lock) and atomics.
    public let layout: Layout
    public let logger: Logger
    let cluster: LocalCluster
    let onDelivery: ((borrowing Delivery) -> Void)?
    private let logWriter: DeliveryLogWriter?

    private struct Request {
        var payload: [UInt8]
        var destinations: [GroupID]
        var sender: NodeID
        var waitFor: MulticastCompletion
        var continuation: CheckedContinuation<MessageID, any Error>
    }

    private let submissions = NSLock()
    private var submitted: [Request] = []
    private let submittedCount = ManagedAtomic<Int>(0)
    private let running = ManagedAtomic<Bool>(false)
    private var thread: Thread?
    private let stopped = DispatchSemaphore(value: 0)
    private var streamContinuation: AsyncStream<DeliveredMessage>.Continuation?

    /// Copies of every delivery, for callers that prefer `for await`. Buffers without bound if
    /// nobody iterates: use it only when you consume it.
    public let deliveries: AsyncStream<DeliveredMessage>

    /// Builds the local processes' endpoints and connects them to the whole cluster.
    /// - Parameters:
    ///   - local: the processes (group members and senders) this runtime hosts.
    ///   - deliveryLogDirectory: if set, each local process appends one JSON line per delivery to
    ///     `deliveries-<id>.jsonl` there, and each local sender one line per multicast to
    ///     `multicasts-<id>.jsonl`, for `ramcast-check`.
    ///   - onDelivery: called on the polling thread for each delivery, in delivery order per process.
    ///   - incarnation: 0 for a first start. A group member that crashed and runs again passes a
    ///     larger number: it comes back with empty memory, is taken back in by its group, and
    ///     delivers the group's order after a cut (logged as "rejoined", with the cut); the
    ///     application brings its state up to that cut from a peer. Its delivery log is
    ///     `deliveries-<id + incarnation × 1,000,000>.jsonl`, whose first line records the cut.
    public init(configuration: ClusterConfiguration, local: [NodeID], logger: Logger,
                deliveryLogDirectory: String? = nil, connectTimeout: Duration = .seconds(30), incarnation: UInt32 = 0,
                onDelivery: ((borrowing Delivery) -> Void)? = nil,
                makeEndpoint: (NodeID) throws -> any FabricEndpoint) throws {
        let layout = try Layout(configuration.protocolConfig)
        self.layout = layout
        self.logger = logger
        self.onDelivery = onDelivery
        logWriter = try deliveryLogDirectory.map {
            try DeliveryLogWriter(directory: $0, layout: layout, local: local, incarnation: incarnation)
        }
        var cont: AsyncStream<DeliveredMessage>.Continuation?
        deliveries = AsyncStream { cont = $0 }
        streamContinuation = cont
        logger.info("connecting \(local.count) local process(es) to a cluster of \(layout.servers.count) members and \(layout.config.senders.count) senders")
        cluster = try LocalCluster(layout: layout, local: local, connectTimeout: connectTimeout, restarted: incarnation > 0,
                                   makeEndpoint: makeEndpoint)
        for node in cluster.senders { node.sender!.tracksInPlace = true }
        logger.info("connected")
    }

    /// Starts the polling thread.
    public func start() {
        guard running.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else { return }
        let t = Thread { [self] in self.pollLoop() }
        t.name = "ramcast-poller"
        thread = t
        t.start()
    }

    /// Stops the polling thread and waits for it. Pending multicasts fail with ``RamCastError/notRunning``.
    public func shutdown() {
        guard running.compareExchange(expected: true, desired: false, ordering: .acquiringAndReleasing).exchanged else { return }
        stopped.wait()
        streamContinuation?.finish()
        logWriter?.close()
        cluster.close()
    }

    /// Multicasts `payload` to `groups` from local sender `sender` (default: the first local sender).
    /// Throws at once, before anything is written, for bad input (payload larger than a slot, empty or
    /// unknown destinations). Waits while a destination ring is full (back-pressure).
    @discardableResult
    public func multicast(_ payload: [UInt8], to groups: [GroupID], from sender: NodeID? = nil,
                          waitFor: MulticastCompletion = .bodiesInPlace) async throws -> MessageID {
        let localSenders = cluster.senders.map(\.id)
        guard let sender = sender ?? localSenders.first, let node = cluster.nodeByID[sender], let engine = node.sender else {
            throw RamCastError.notASender(sender ?? NodeID(UInt32.max), localSenders: localSenders)
        }
        do {
            try groups.withUnsafeBufferPointer { dst throws(MulticastError) in try engine.validate(payloadCount: payload.count, destinations: dst) }
        } catch {
            throw RamCastError.multicast(error)
        }
        guard running.load(ordering: .acquiring) else { throw RamCastError.notRunning }
        return try await withCheckedThrowingContinuation { c in
            submissions.lock()
            submitted.append(Request(payload: payload, destinations: groups, sender: sender, waitFor: waitFor, continuation: c))
            submissions.unlock()
            submittedCount.wrappingIncrement(ordering: .releasing)
        }
    }

    // MARK: - the polling thread

    private struct Waiter {
        var id: MessageID
        var request: Request
    }

    private func pollLoop() {
        var queue: [Request] = []          // accepted from callers, not yet taken by the engine
        var inPlace: [Waiter] = []         // waiting for step 1
        var delivery: [Waiter] = []        // waiting for delivery
        var idle = 0
        // Leadership changes of local processes, logged with wall-clock times (failover figures).
        var leading = Dictionary(uniqueKeysWithValues: cluster.servers.map { ($0.id, $0.server!.isLeader) })
        var firstDeliveryPending: Set<NodeID> = []
        var candidacies: [NodeID: (ballot: Ballot, abdicated: Bool)] = [:]
        var deposed = Dictionary(uniqueKeysWithValues: cluster.servers.map { ($0.id, false) })
        var exhausted: Set<NodeID> = []
        var faultsLogged = Dictionary(uniqueKeysWithValues: cluster.servers.map { ($0.id, 0) })
        var rejoining = Set(cluster.servers.filter { $0.server!.rejoining }.map(\.id))
        let log = logger
        // A restarted process's cut goes first in its log: noted at its first delivery at the latest.
        let noteRejoined: (ProcessNode) -> Void = { [logWriter] node in
            let engine = node.server!
            guard !rejoining.isEmpty, rejoining.contains(node.id), !engine.rejoining else { return }
            rejoining.remove(node.id)
            logWriter?.joined(node.id, group: engine.group, after: engine.joinedAfter)
            log.notice("rejoined", metadata: [
                "process": "\(node.id.rawValue)", "group": "\(engine.group.rawValue)",
                "after": "\(engine.joinedAfter.map { "\($0)" } ?? "none")", "unix_ns": "\(Self.unixNanoseconds())"])
        }
        let deliver: (borrowing Delivery) -> Void = { [onDelivery, logWriter, streamContinuation, cluster] d in
            if !rejoining.isEmpty, let node = cluster.nodeByID[d.process] { noteRejoined(node) }
            if firstDeliveryPending.contains(d.process) {
                firstDeliveryPending.remove(d.process)
                log.notice("first delivery under the new leader", metadata: [
                    "process": "\(d.process.rawValue)", "message": "\(d.id)", "unix_ns": "\(Self.unixNanoseconds())"])
            }
            onDelivery?(d)
            logWriter?.delivered(d)
            if let streamContinuation {
                streamContinuation.yield(DeliveredMessage(id: d.id, process: d.process, group: d.group, destinations: d.destinations,
                                                          finalTimestamp: d.finalTimestamp, payload: Array(d.payload)))
            }
        }
        while running.load(ordering: .relaxed) {
            var progress = false
            if submittedCount.load(ordering: .acquiring) > 0 {
                submissions.lock()
                queue.append(contentsOf: submitted)
                submittedCount.wrappingDecrement(by: submitted.count, ordering: .relaxed)
                submitted.removeAll(keepingCapacity: true)
                submissions.unlock()
            }
            // Hand queued multicasts to their senders, in order, until one hits back-pressure.
            while let r = queue.first, let engine = cluster.nodeByID[r.sender]?.sender {
                let id: MessageID?
                do {
                    id = try r.payload.withUnsafeBytes { p in try r.destinations.withUnsafeBufferPointer { try engine.multicast(p, to: $0) } }
                } catch {
                    queue.removeFirst()
                    r.continuation.resume(throwing: (error as? MulticastError).map(RamCastError.multicast) ?? error)
                    continue
                }
                guard let id else { break }
                queue.removeFirst()
                logWriter?.multicast(id, destinations: r.destinations)
                inPlace.append(Waiter(id: id, request: r))
                progress = true
            }
            for node in cluster.servers {
                let engine = node.server!
                noteRejoined(node)
                let candidacy = engine.candidacy
                if candidacy?.ballot != candidacies[node.id]?.ballot || candidacy?.abdicated != candidacies[node.id]?.abdicated {
                    candidacies[node.id] = candidacy
                    if let candidacy {
                        let metadata = Self.leadershipMetadata(node.id, engine, ballot: candidacy.ballot)
                        if candidacy.abdicated {
                            log.warning("handing over: bodies it must re-propose did not come", metadata: metadata)
                            log.debug("candidate state: \(engine.debugDescription)")
                        } else {
                            log.notice("recovering as candidate", metadata: metadata)
                        }
                    }
                }
                if engine.deposed != deposed[node.id] {
                    deposed[node.id] = engine.deposed
                    if engine.deposed {
                        log.warning("deposed: a write as leader was refused", metadata: Self.leadershipMetadata(node.id, engine))
                    }
                }
                if engine.ballotsExhausted, exhausted.insert(node.id).inserted {
                    log.critical("ballots exhausted: 32-bit ballots of this group are used up, no leader change is possible any more",
                                 metadata: Self.leadershipMetadata(node.id, engine))
                }
                if engine.permissionFaults.count != faultsLogged[node.id] {
                    for fault in engine.permissionFaults.dropFirst(faultsLogged[node.id] ?? 0) {
                        log.error("1A left unanswered: a permission change failed", metadata: [
                            "process": "\(node.id.rawValue)", "group": "\(fault.group.rawValue)",
                            "ballot": "\(fault.ballot.rawValue)", "reason": "\(fault.reason)"])
                    }
                    faultsLogged[node.id] = engine.permissionFaults.count
                }
                if engine.isLeader != leading[node.id] {
                    leading[node.id] = engine.isLeader
                    if engine.isLeader {
                        firstDeliveryPending.insert(node.id)
                        log.notice("now leading", metadata: Self.leadershipMetadata(node.id, engine))
                    }
                }
            }
            for node in cluster.senders { node.flushForWaiters = !inPlace.isEmpty }
            do {
                progress = try cluster.pumpAll(deliver) || progress
            } catch {
                logger.error("polling failed: \(error)")
            }
            for node in cluster.senders {
                node.sender!.pollInPlace { id in
                    guard let i = inPlace.firstIndex(where: { $0.id == id }) else { return }
                    let w = inPlace.remove(at: i)
                    if w.request.waitFor == .bodiesInPlace {
                        w.request.continuation.resume(returning: id)
                    } else {
                        delivery.append(w)
                    }
                }
            }
            if !delivery.isEmpty {
                delivery.removeAll { w in
                    guard isDelivered(w) else { return false }
                    w.request.continuation.resume(returning: w.id)
                    return true
                }
            }
            if progress { idle = 0 } else {
                idle += 1
                // Busy-poll while traffic flows; yield the CPU when it stops (every poller shares a
                // core with others on small machines and in the soft-RoCE VM).
                if idle > 2_000 { usleep(idle > 100_000 ? 1000 : 50) } else if idle > 200 { sched_yield() }
            }
        }
        for r in queue { r.continuation.resume(throwing: RamCastError.notRunning) }
        for w in inPlace + delivery { w.request.continuation.resume(throwing: RamCastError.notRunning) }
        stopped.signal()
    }

    /// Who, in which group, under which ballot (its group's current one by default), and the
    /// wall-clock time: failover figures are read from these lines across processes.
    static func leadershipMetadata(_ node: NodeID, _ engine: ServerEngine, ballot: Ballot? = nil) -> Logger.Metadata {
        ["process": "\(node.rawValue)", "group": "\(engine.group.rawValue)",
         "ballot": "\((ballot ?? engine.ballots[Int(engine.group.rawValue)]).rawValue)", "unix_ns": "\(unixNanoseconds())"]
    }

    static func unixNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    private func isDelivered(_ w: Waiter) -> Bool {
        guard let engine = cluster.nodeByID[w.request.sender]?.sender else { return false }
        switch w.request.waitFor {
        case .bodiesInPlace: return true
        case .deliveredEverywhere: return engine.isDeliveredEverywhere(w.id)
        case .delivered(let at): return at.allSatisfy { engine.isDelivered(w.id, at: $0) }
        }
    }
}
