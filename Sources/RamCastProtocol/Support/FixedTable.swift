/// A table of `count` elements allocated once, by its owner's init, and freed by its owner's deinit.
///
/// Why it exists: the engines (`ServerEngine`, `SenderEngine`, `Outbox`) are classes, and Swift
/// checks every access to a class's stored `var` dynamically for exclusivity: an array property read
/// or written on the hot path costs a `swift_beginAccess`/`swift_endAccess` pair (plus a uniqueness
/// check before each write), which callgrind showed to be more work than the protocol itself. A
/// `FixedTable` is stored in a `let` and writes through its pointer (`nonmutating`), so no access is
/// checked; it never grows, so nothing allocates after init. Indices are still bounds-checked.
///
/// It is a view, like `UnsafeMutableBufferPointer`: copies share the elements, the owner calls
/// ``deallocate()`` exactly once in its deinit, and no copy may outlive the owner. Never hand one out
/// through public API (public properties return ``array``, a snapshot).
struct FixedTable<Element>: RandomAccessCollection {
    private let base: UnsafeMutablePointer<Element>
    let count: Int

    /// Allocates `count` elements, each set to `value`.
    init(repeating value: Element, count: Int) {
        precondition(count >= 0, "negative table size")
        self.count = count
        base = .allocate(capacity: Swift.max(1, count))
        base.initialize(repeating: value, count: count)
    }

    /// Allocates a table holding `elements`.
    init(_ elements: some Collection<Element>) {
        count = elements.count
        base = .allocate(capacity: Swift.max(1, count))
        _ = UnsafeMutableBufferPointer(start: base, count: count).initialize(from: elements)
    }

    /// Frees the elements. Call once, from the owner's deinit.
    func deallocate() {
        base.deinitialize(count: count)
        base.deallocate()
    }

    @inline(__always) var startIndex: Int { 0 }
    @inline(__always) var endIndex: Int { count }

    /// The element at `i`, read and written in place (addressors: a `table[i].mutate()` neither
    /// copies the element nor checks exclusivity).
    @inline(__always)
    subscript(i: Int) -> Element {
        unsafeAddress {
            precondition(UInt(bitPattern: i) < UInt(bitPattern: count), "FixedTable index out of range")
            return UnsafePointer(base + i)
        }
        nonmutating unsafeMutableAddress {
            precondition(UInt(bitPattern: i) < UInt(bitPattern: count), "FixedTable index out of range")
            return base + i
        }
    }

    /// Sets every element to `value`.
    func fill(with value: Element) {
        base.update(repeating: value, count: count)
    }

    /// The first `n` elements, as a buffer valid while the owner lives.
    func prefix(upTo n: Int) -> UnsafeBufferPointer<Element> {
        precondition(n >= 0 && n <= count, "FixedTable prefix out of range")
        return UnsafeBufferPointer(start: base, count: n)
    }

    /// A copy of the elements: for public read-only properties and diagnostics, never the hot path.
    var array: [Element] { Array(prefix(upTo: count)) }

    #if DEBUG
    func _checkInvariants() { precondition(count >= 0) }
    #else
    @inline(__always) func _checkInvariants() {}
    #endif
}

/// A list of at most `capacity` elements, allocated once by its owner's init and freed by its
/// owner's deinit: ``FixedTable``'s growable sibling, for lists on the hot path (pending messages,
/// the order heap). Its count lives in the allocation too, so appending or removing through a `let`
/// checks no exclusivity and allocates nothing. The same ownership rules as ``FixedTable`` apply.
struct FixedList<Element>: RandomAccessCollection {
    /// The count, in an allocation of its own beside the elements'.
    private let countCell: UnsafeMutablePointer<Int>
    private let base: UnsafeMutablePointer<Element>
    let capacity: Int

    init(capacity: Int) {
        precondition(capacity >= 0, "negative list capacity")
        self.capacity = capacity
        countCell = .allocate(capacity: 1)
        countCell.initialize(to: 0)
        base = .allocate(capacity: Swift.max(1, capacity))
    }

    /// Frees the list. Call once, from the owner's deinit.
    func deallocate() {
        base.deinitialize(count: count)
        base.deallocate()
        countCell.deallocate()
    }

    @inline(__always) var count: Int { countCell.pointee }
    @inline(__always) var startIndex: Int { 0 }
    @inline(__always) var endIndex: Int { countCell.pointee }

    @inline(__always)
    subscript(i: Int) -> Element {
        unsafeAddress {
            precondition(UInt(bitPattern: i) < UInt(bitPattern: count), "FixedList index out of range")
            return UnsafePointer(base + i)
        }
        nonmutating unsafeMutableAddress {
            precondition(UInt(bitPattern: i) < UInt(bitPattern: count), "FixedList index out of range")
            return base + i
        }
    }

    /// Appends `element`; the list must not be full (its capacity is sized from the ``Layout``).
    @inline(__always)
    func append(_ element: Element) {
        let n = count
        precondition(n < capacity, "FixedList overflow")
        (base + n).initialize(to: element)
        countCell.pointee = n + 1
    }

    @inline(__always) @discardableResult
    func removeLast() -> Element {
        let n = count
        precondition(n > 0, "removeLast on an empty FixedList")
        countCell.pointee = n - 1
        return (base + n - 1).move()
    }

    @inline(__always)
    func swapAt(_ i: Int, _ j: Int) {
        guard i != j else { return }
        let t = self[i]
        self[i] = self[j]
        self[j] = t
    }

    func removeAll() {
        base.deinitialize(count: count)
        countCell.pointee = 0
    }

    /// A copy of the elements, for diagnostics.
    var array: [Element] { Array(UnsafeBufferPointer(start: base, count: count)) }

    #if DEBUG
    func _checkInvariants() { precondition(count >= 0 && count <= capacity, "FixedList count \(count) outside 0...\(capacity)") }
    #else
    @inline(__always) func _checkInvariants() {}
    #endif
}

/// One value allocated once by its owner's init and freed by its owner's deinit: for the engines'
/// scalars and small collections that the hot path reads or writes (clock, counters, the recovery
/// state, ...). A stored `var` of a class is checked for exclusivity on every access unless the
/// optimizer proves it needs no check, which it cannot for public properties or for one ever
/// accessed across a call. The owner keeps the cell in a `let` and exposes the value under the
/// property's usual name through addressors, so it is read and written in place, like a stored
/// property, without a check:
///
///     let clockCell = FixedCell<UInt64>(0)
///     var clock: UInt64 { unsafeAddress { clockCell.readAddress } unsafeMutableAddress { clockCell.address } }
///
/// The same ownership rules as ``FixedTable`` apply. Package-visible: the runtime's driver uses it too.
///
/// Not for function types (nor tables of them): generic storage holds a function in its most general
/// representation, and an addressor hands out the address without converting it back, so calling
/// the value read through it crashes.
package struct FixedCell<Value> {
    package let address: UnsafeMutablePointer<Value>

    package init(_ value: Value) {
        address = .allocate(capacity: 1)
        address.initialize(to: value)
    }

    @inline(__always) package var readAddress: UnsafePointer<Value> { UnsafePointer(address) }

    /// Frees the value. Call once, from the owner's deinit.
    package func deallocate() {
        address.deinitialize(count: 1)
        address.deallocate()
    }
}
