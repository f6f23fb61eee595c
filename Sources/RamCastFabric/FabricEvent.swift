/// Connection-level news that an endpoint reports through ``FabricEndpoint/pollEvent()``.
public enum FabricEvent: Sendable, Hashable {
    /// A peer connected to us (we accepted). The connection is ready for writes in both directions.
    case accepted(ConnectionID, peer: NodeID)
    /// A peer that restarted connected to us (it had ``FabricEndpoint/announcesRestart`` set): the
    /// connection is ready like an accepted one, and whatever this side knew of the peer's memory
    /// (its rings, logs, permissions it granted) is gone with the old incarnation.
    case restarted(ConnectionID, peer: NodeID)
    /// The connection is gone: the peer disconnected or crashed (`RDMA_CM_EVENT_DISCONNECTED`), or
    /// the connection entered the error state. Posts on it fail from now on.
    case disconnected(ConnectionID, peer: NodeID, reason: String)
    /// The peer changed our write permission on one of its regions (a grant delivered a new key).
    case permissionChanged(ConnectionID, peer: NodeID, region: RegionID, writable: Bool)
}
