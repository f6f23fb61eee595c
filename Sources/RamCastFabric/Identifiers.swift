/// A process in the cluster: a group member or a sender. Ids are global and dense enough to index
/// arrays, so the hot path never hashes them.
public struct NodeID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    @inlinable public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    @inlinable public static func < (a: NodeID, b: NodeID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "node \(rawValue)" }
}

/// Names a registered memory region. Every process registers its regions under the same ids, so a
/// writer addresses "region 2 at node 7, offset 64" without knowing the remote virtual address or key.
public struct RegionID: Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    @inlinable public init(_ rawValue: UInt8) { self.rawValue = rawValue }
    public var description: String { "region \(rawValue)" }
}

/// One reliable, in-order connection between two endpoints (an RC queue pair on RDMA). Both ends may
/// post writes on it. A connection that hit an error stays dead: reconnecting yields a new id.
public struct ConnectionID: Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    @inlinable public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    public var description: String { "connection \(rawValue)" }
}
