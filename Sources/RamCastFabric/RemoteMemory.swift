import Atomics

/// Loads and stores on memory that a NIC (or the in-process fabric) writes behind the compiler's back.
///
/// A plain load of a polled word could be hoisted out of a spin loop, and a plain read of a body could
/// be reordered before the load of the word that says the body is ready. Every access to remotely
/// written memory therefore goes through here, with its ordering named at the call site.
public enum RemoteMemory {
    /// Loads the aligned 8-byte word at `pointer` with acquire ordering: reads that follow see at least
    /// what was visible when the word was written.
    @inlinable
    public static func loadAcquiring(_ pointer: UnsafeRawPointer) -> UInt64 {
        UnsafeAtomic<UInt64>(at: UnsafeMutablePointer(mutating: pointer.assumingMemoryBound(to: UInt64.AtomicRepresentation.self)))
            .load(ordering: .acquiring)
    }

    /// Loads the aligned 8-byte word at `pointer` without ordering, but never cached in a register.
    @inlinable
    public static func loadRelaxed(_ pointer: UnsafeRawPointer) -> UInt64 {
        UnsafeAtomic<UInt64>(at: UnsafeMutablePointer(mutating: pointer.assumingMemoryBound(to: UInt64.AtomicRepresentation.self)))
            .load(ordering: .relaxed)
    }

    /// Stores `value` at the aligned 8-byte word at `pointer` with release ordering: earlier stores
    /// are visible to whoever acquires this word.
    @inlinable
    public static func storeReleasing(_ value: UInt64, at pointer: UnsafeMutableRawPointer) {
        UnsafeAtomic<UInt64>(at: pointer.assumingMemoryBound(to: UInt64.AtomicRepresentation.self))
            .store(value, ordering: .releasing)
    }
}
