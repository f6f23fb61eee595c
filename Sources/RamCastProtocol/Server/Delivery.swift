import RamCastFabric

/// A delivered message, handed to the delivery callback. Non-copyable: it points into the ring slot,
/// which is cleared and released to the sender right after the callback returns.
public struct Delivery: ~Copyable {
    public let id: MessageID
    public let finalTimestamp: Timestamp
    public let payload: UnsafeRawBufferPointer
    /// The process that delivered it, and its group.
    public let process: NodeID
    public let group: GroupID
    @usableFromInline let slot: UnsafeRawPointer
    @usableFromInline let destinationCount: Int

    @usableFromInline
    init(id: MessageID, finalTimestamp: Timestamp, payload: UnsafeRawBufferPointer, process: NodeID, group: GroupID,
         slot: UnsafeRawPointer, destinationCount: Int) {
        self.id = id
        self.finalTimestamp = finalTimestamp
        self.payload = payload
        self.process = process
        self.group = group
        self.slot = slot
        self.destinationCount = destinationCount
    }

    /// The message's destination groups, in the order the sender gave them.
    public var destinations: [GroupID] {
        (0..<destinationCount).map { MessageSlot.destination(slot, $0) }
    }

    /// Calls `body` with each destination group, without allocating.
    @inlinable
    public func forEachDestination(_ body: (GroupID) -> Void) {
        for i in 0..<destinationCount { body(MessageSlot.destination(slot, i)) }
    }
}

/// Min-heap of ordered messages by `(final timestamp, message id)`, preallocated.
struct OrderHeap {
    private var keys: [(ts: UInt64, id: UInt64, index: Int32)]
    private(set) var count = 0

    init(capacity: Int) { keys = Array(repeating: (0, 0, 0), count: max(1, capacity)) }

    var top: (ts: UInt64, id: UInt64, index: Int32)? { count > 0 ? keys[0] : nil }

    @inline(__always) private static func less(_ a: (ts: UInt64, id: UInt64, index: Int32), _ b: (ts: UInt64, id: UInt64, index: Int32)) -> Bool {
        a.ts != b.ts ? a.ts < b.ts : a.id < b.id
    }

    mutating func push(ts: UInt64, id: UInt64, index: Int32) {
        precondition(count < keys.count, "order heap overflow")
        var i = count
        keys[i] = (ts, id, index)
        count += 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard Self.less(keys[i], keys[parent]) else { break }
            keys.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() {
        count -= 1
        guard count > 0 else { return }
        keys[0] = keys[count]
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < count, Self.less(keys[l], keys[m]) { m = l }
            if r < count, Self.less(keys[r], keys[m]) { m = r }
            if m == i { break }
            keys.swapAt(i, m)
            i = m
        }
    }
}
