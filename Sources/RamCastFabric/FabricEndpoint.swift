/// One process's attachment to the network: the only way the protocol touches it.
///
/// An endpoint is driven by one thread at a time (the runtime's polling thread, or a test). Nothing
/// here blocks except ``connect(to:timeout:)``; writes are posted and their outcome is later found by
/// ``pollCompletions(into:)``. The hot-path calls, ``post(_:on:)`` and ``pollCompletions(into:)``,
/// allocate nothing and take no locks.
///
/// Semantics every conformer keeps (the conformance suite checks them on every fabric):
/// - Writes posted on one connection become visible at the peer in posting order. Writes on
///   different connections are unordered.
/// - A write larger than 8 bytes may become visible piecewise (torn); readers use a checksum.
/// - A write to a ``RemoteAccess/grantedPeers`` region without a grant fails with
///   ``CompletionStatus/remoteAccessError``, lands no byte, and puts the connection in the error
///   state: later writes on it complete as ``CompletionStatus/flushed``.
/// - A signaled completion means this and every earlier write on the connection are done.
public protocol FabricEndpoint: AnyObject {
    /// This endpoint's node.
    var node: NodeID { get }
    var limits: FabricLimits { get }

    /// Registers `length` bytes of zeroed memory under `id`, writable by peers per `remoteAccess`.
    /// Register regions before connecting: a connection learns the peer's regions when it is set up.
    func register(_ id: RegionID, length: Int, remoteAccess: RemoteAccess) throws(FabricError) -> LocalRegion

    /// Opens a connection to `peer`, waiting at most `timeout`. Throws ``FabricError/unreachable``,
    /// ``FabricError/rejected`` or ``FabricError/timedOut``; never blocks longer than the timeout.
    func connect(to peer: NodeID, timeout: Duration) throws(FabricError) -> ConnectionID

    /// The peer at the other end of an open connection.
    func peer(of connection: ConnectionID) -> NodeID?

    /// Posts a chain of writes on one connection, in order. Either the whole chain is accepted or
    /// none of it is (an error is thrown and nothing was sent).
    func post(_ writes: UnsafeBufferPointer<WriteRequest>, on connection: ConnectionID) throws(FabricError)

    /// Moves finished completions into `buffer` and returns how many were written.
    func pollCompletions(into buffer: UnsafeMutableBufferPointer<Completion>) -> Int

    /// Returns the next connection event, if any.
    func pollEvent() -> FabricEvent?

    /// Lets `peer` write region `id` (a ``RemoteAccess/grantedPeers`` region).
    func grantWrite(_ id: RegionID, to peer: NodeID) throws(FabricError)

    /// Stops `peer` from writing region `id`. A write from `peer` that arrives afterwards fails at
    /// the peer with a remote access error and never lands.
    func revokeWrite(_ id: RegionID, from peer: NodeID) throws(FabricError)

    /// Tears a connection down on purpose. The peer sees ``FabricEvent/disconnected``.
    func disconnect(_ connection: ConnectionID)

    /// Releases every connection and region. Later calls throw ``FabricError/closed``.
    func close()

    /// Set by a process that restarted (a new incarnation with none of its old memory) while it
    /// opens its connections: each connection it initiates meanwhile reaches the peer as
    /// ``FabricEvent/restarted(_:peer:)`` rather than ``FabricEvent/accepted(_:peer:)``, and it refuses
    /// incoming connections, so that no peer mistakes it for the incarnation it replaces. Cleared once
    /// every connection is open; later reconnections are ordinary.
    var announcesRestart: Bool { get set }
}

extension FabricEndpoint {
    /// Posts a single write.
    @inlinable
    public func post(_ write: WriteRequest, on connection: ConnectionID) throws(FabricError) {
        var w = write
        try withUnsafePointer(to: &w) { (p) throws(FabricError) in
            try post(UnsafeBufferPointer(start: p, count: 1), on: connection)
        }
    }
}
