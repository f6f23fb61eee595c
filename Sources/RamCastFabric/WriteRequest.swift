/// Flags of one posted write.
public struct WriteFlags: OptionSet, Sendable, Hashable {
    public var rawValue: UInt8
    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Copy the source bytes into the work request at post time (`IBV_SEND_INLINE`). The source may
    /// be reused as soon as `post` returns and need not be registered; the length must not exceed
    /// ``FabricLimits/maxInlineBytes``.
    public static let inline = WriteFlags(rawValue: 1 << 0)
    /// Produce a completion when the write is done (`IBV_SEND_SIGNALED`). An unsignaled write only
    /// produces a completion if it fails. A signaled completion also retires every earlier write on
    /// the same connection, which is what frees send-queue slots (see ``SendCredits``).
    public static let signaled = WriteFlags(rawValue: 1 << 1)
}

/// One one-sided RDMA WRITE: `length` bytes from local `source` to `remoteRegion` at
/// `remoteOffset` in the peer's memory.
///
/// A non-inline source must lie inside a region registered on the same endpoint and must not change
/// until the write completes: the NIC reads it at some unspecified moment after the post.
public struct WriteRequest: @unchecked Sendable {
    /// Returned unchanged in this write's completion (`wr_id`).
    public var id: UInt64
    public var source: UnsafeRawPointer
    public var length: Int
    public var remoteRegion: RegionID
    public var remoteOffset: Int
    public var flags: WriteFlags

    @inlinable
    public init(
        id: UInt64, source: UnsafeRawPointer, length: Int,
        remoteRegion: RegionID, remoteOffset: Int, flags: WriteFlags = []
    ) {
        self.id = id
        self.source = source
        self.length = length
        self.remoteRegion = remoteRegion
        self.remoteOffset = remoteOffset
        self.flags = flags
    }
}

/// The outcome of a write, as reported by the completion queue.
public enum CompletionStatus: Sendable, Hashable {
    case success
    /// The peer refused the write: no permission on the region, or a bad key or range
    /// (`IBV_WC_REM_ACCESS_ERR`, or `IBV_WC_REM_INV_REQ_ERR` when the peer's queue pair lost its
    /// remote-write access). The connection is in the error state afterwards.
    case remoteAccessError
    /// The write was discarded because the connection had already failed (`IBV_WC_WR_FLUSH_ERR`).
    case flushed
    /// The peer did not answer within the transport's retries (`IBV_WC_RETRY_EXC_ERR`): it is gone.
    case retryExceeded
    /// Any other verbs status, with its raw value.
    case other(Int32)

    public var isSuccess: Bool { self == .success }
}

/// One completion queue entry.
public struct Completion: Sendable, Hashable {
    public var id: UInt64
    public var connection: ConnectionID
    public var status: CompletionStatus

    @inlinable public init(id: UInt64, connection: ConnectionID, status: CompletionStatus) {
        self.id = id
        self.connection = connection
        self.status = status
    }
}

extension CompletionStatus: CustomStringConvertible {
    public var description: String {
        switch self {
        case .success: "success"
        case .remoteAccessError: "remote access error"
        case .flushed: "work request flushed (connection in error state)"
        case .retryExceeded: "transport retry counter exceeded (peer unreachable)"
        case .other(let raw): "completion status \(raw)"
        }
    }
}
