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

/// Min-heap of ordered messages by `(final timestamp, message id)`, preallocated: its keys are a
/// ``FixedList`` (mutated through a `let`, so unchecked for exclusivity), freed by ``deallocate()``.
struct OrderHeap {
    typealias Key = (ts: UInt64, id: UInt64, index: Int32)
    private let keys: FixedList<Key>

    init(capacity: Int) { keys = FixedList(capacity: max(1, capacity)) }

    func deallocate() { keys.deallocate() }

    var count: Int { keys.count }

    var top: Key? { keys.isEmpty ? nil : keys[0] }
    /// The key at heap position `i` (any order), for scans.
    @inline(__always) func key(at i: Int) -> Key { keys[i] }

    @inline(__always) private static func less(_ a: Key, _ b: Key) -> Bool {
        a.ts != b.ts ? a.ts < b.ts : a.id < b.id
    }

    func push(ts: UInt64, id: UInt64, index: Int32) {
        precondition(keys.count < keys.capacity, "order heap overflow")
        var i = keys.count
        keys.append((ts, id, index))
        while i > 0 {
            let parent = (i - 1) / 2
            guard Self.less(keys[i], keys[parent]) else { break }
            keys.swapAt(i, parent)
            i = parent
        }
    }

    func pop() {
        let last = keys.removeLast()
        let count = keys.count
        guard count > 0 else { return }
        keys[0] = last
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

    #if DEBUG
    func _checkInvariants() {
        keys._checkInvariants()
        for i in 1..<max(1, keys.count) { precondition(!Self.less(keys[i], keys[(i - 1) / 2]), "order heap out of order") }
    }
    #else
    @inline(__always) func _checkInvariants() {}
    #endif
}
