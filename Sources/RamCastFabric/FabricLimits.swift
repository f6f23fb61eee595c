/// What an endpoint can do, as obtained from the device (or chosen by the in-process fabric).
public struct FabricLimits: Sendable, Hashable {
    /// Largest write that may carry ``WriteFlags/inline``. Devices don't report it, so the RDMA fabric
    /// probes it by creating queue pairs with decreasing `max_inline_data`.
    public var maxInlineBytes: Int
    /// Writes that may be outstanding (posted, not yet retired by a signaled completion) per connection.
    public var sendQueueDepth: Int
    /// Entries the completion queue holds. Overflowing it is fatal on real hardware.
    public var completionQueueDepth: Int
    /// Largest single write.
    public var maxWriteBytes: Int

    public init(maxInlineBytes: Int, sendQueueDepth: Int, completionQueueDepth: Int, maxWriteBytes: Int) {
        self.maxInlineBytes = maxInlineBytes
        self.sendQueueDepth = sendQueueDepth
        self.completionQueueDepth = completionQueueDepth
        self.maxWriteBytes = maxWriteBytes
    }
}
