/// Who may write a region remotely.
public enum RemoteAccess: Sendable, Equatable {
    /// Any connected peer may write (message rings, ack areas, slot-release cells).
    case anyPeer
    /// Only peers granted with ``FabricEndpoint/grantWrite(_:to:)`` may write; everyone else gets a
    /// remote access error and a dead connection. RamCast's timestamp region is protected, so that
    /// a deposed leader cannot write timestamps.
    case grantedPeers
}

/// A region of this endpoint's memory that peers can write with one-sided writes.
///
/// The memory is owned by the endpoint, page aligned, zero filled, and stays valid until the
/// endpoint is closed. Remote writes land in it without any action by this process, so a reader
/// must load "ready" words with acquire ordering before reading what they guard.
public struct LocalRegion: @unchecked Sendable {
    public let id: RegionID
    public let base: UnsafeMutableRawPointer
    public let length: Int
    public let remoteAccess: RemoteAccess

    public init(id: RegionID, base: UnsafeMutableRawPointer, length: Int, remoteAccess: RemoteAccess) {
        self.id = id
        self.base = base
        self.length = length
        self.remoteAccess = remoteAccess
    }

    @inlinable public var bytes: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base, count: length)
    }

    @inlinable public func contains(_ pointer: UnsafeRawPointer, length: Int) -> Bool {
        let start = UnsafeRawPointer(base)
        return pointer >= start && pointer + length <= start + self.length
    }
}
