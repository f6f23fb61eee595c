import RamCastFabric

/// What the conformance suite needs from a fabric: a way to make endpoints and to let the network
/// make progress. One conformer per fabric; the scenarios themselves are shared, so both fabrics are
/// held to exactly the same behaviour.
public protocol FabricHarness: AnyObject {
    /// Shown in failure messages ("in-process seed 42", "rdma rxe0").
    var name: String { get }
    /// Creates one endpoint per node. The nodes form one cluster: they accept connections from each
    /// other and from nobody else.
    func makeEndpoints(_ nodes: [NodeID]) throws -> [any FabricEndpoint]
    /// Creates an endpoint for a node that is *not* a member of the cluster made by
    /// ``makeEndpoints(_:)``. It knows the members' addresses, but they must refuse it.
    func makeOutsider(_ node: NodeID) throws -> any FabricEndpoint
    /// A node that has an address in the directory but where nothing answers.
    var unreachablePeer: NodeID { get }
    /// Lets the network move: the in-process fabric makes some pending writes visible; a real NIC
    /// needs nothing.
    func progress()
    /// Releases every endpoint made so far.
    func tearDown()
    /// Whether each endpoint may be driven by a thread of its own at the same time as the others,
    /// as separate processes would drive them. False (the default) for a fabric confined to one
    /// thread, such as the in-process one.
    var endpointsOnSeparateThreads: Bool { get }
}

extension FabricHarness {
    public var endpointsOnSeparateThreads: Bool { false }
}

/// A scenario failed: what was expected, what happened, and where.
public struct ConformanceFailure: Error, CustomStringConvertible {
    public var message: String
    public var file: StaticString
    public var line: UInt
    public var description: String { "\(file):\(line): \(message)" }
}

@inline(__always)
func expect(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
            file: StaticString = #fileID, line: UInt = #line) throws {
    if !condition() { throw ConformanceFailure(message: message(), file: file, line: line) }
}

func fail(_ message: String, file: StaticString = #fileID, line: UInt = #line) -> ConformanceFailure {
    ConformanceFailure(message: message, file: file, line: line)
}

/// Drives the network and a set of endpoints' completion queues until `condition` holds.
struct Driver {
    let harness: any FabricHarness
    var deadline: Duration = .seconds(30)
    private var buffer = [Completion](repeating: Completion(id: 0, connection: ConnectionID(0), status: .success), count: 256)

    init(_ harness: any FabricHarness, deadline: Duration = .seconds(30)) {
        self.harness = harness
        self.deadline = deadline
    }

    /// Polls `endpoint`'s completions into `sink` (in order), stepping the network when idle.
    mutating func poll(_ endpoint: any FabricEndpoint, _ sink: (Completion) throws -> Void) rethrows {
        let n = buffer.withUnsafeMutableBufferPointer { endpoint.pollCompletions(into: $0) }
        for i in 0..<n { try sink(buffer[i]) }
    }

    /// Repeats `body` (which should poll) and `progress()` until `done()` or the deadline.
    mutating func wait(_ what: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line,
                       until done: () throws -> Bool, body: (inout Driver) throws -> Void = { _ in }) throws {
        let clock = ContinuousClock()
        let start = clock.now
        while try !done() {
            try body(&self)
            harness.progress()
            if clock.now - start > deadline {
                throw ConformanceFailure(message: "[\(harness.name)] timed out after \(deadline) waiting for \(what())", file: file, line: line)
            }
        }
    }
}

extension FabricEndpoint {
    /// Waits for the first event matching `match`, discarding the others.
    func waitEvent(_ harness: any FabricHarness, _ what: String, timeout: Duration = .seconds(20),
                   file: StaticString = #fileID, line: UInt = #line,
                   _ match: (FabricEvent) -> Bool) throws -> FabricEvent {
        let clock = ContinuousClock()
        let start = clock.now
        while true {
            while let e = pollEvent() { if match(e) { return e } }
            harness.progress()
            if clock.now - start > timeout {
                throw ConformanceFailure(message: "[\(harness.name)] no \(what) event within \(timeout)", file: file, line: line)
            }
        }
    }
}
