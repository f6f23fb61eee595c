import CRamCastVerbs
import RamCastFabric

#if canImport(Glibc)
import Glibc
#endif

/// The process's allowance for pinned (registered) memory.
///
/// `ibv_reg_mr` pins pages, and the kernel charges every registration against `RLIMIT_MEMLOCK`
/// (several registrations of the same pages are charged several times), unless the process has
/// `CAP_IPC_LOCK`. Failing that check late, inside `ibv_reg_mr`, yields a bare ENOMEM; checking
/// first lets ``RDMAEndpoint`` say which limit to raise.
public struct MemlockStatus: Sendable, Hashable {
    /// Soft `RLIMIT_MEMLOCK` in bytes (`getrlimit`); nil means unlimited.
    public var limit: Int?
    /// Whether `CAP_IPC_LOCK` is effective (`capget`): the kernel then ignores the limit.
    public var hasIPCLock: Bool

    public init(limit: Int?, hasIPCLock: Bool) {
        self.limit = limit
        self.hasIPCLock = hasIPCLock
    }

    /// The calling process's current status.
    public static func current() -> MemlockStatus {
        var soft: UInt64 = 0
        var unlimited: Int32 = 0
        let rc = CRamCastVerbs_memlock_limit(&soft, &unlimited)
        let limit: Int? = rc != 0 || unlimited != 0 ? nil : Int(clamping: soft)
        return MemlockStatus(limit: limit, hasIPCLock: CRamCastVerbs_has_cap_ipc_lock() == 1)
    }

    /// Throws ``FabricError/memlockLimitTooLow(requested:limit:alreadyLocked:)`` if pinning
    /// `requested` more bytes, on top of `alreadyLocked`, would exceed the limit.
    public func check(requested: Int, alreadyLocked: Int) throws(FabricError) {
        guard !hasIPCLock, let limit else { return }
        if alreadyLocked + requested > limit {
            throw .memlockLimitTooLow(requested: requested, limit: limit, alreadyLocked: alreadyLocked)
        }
    }
}

/// Bytes this process has registered through any ``RDMAEndpoint``: the limit is per process, so
/// two endpoints in one process (as in tests) share it.
final class PinnedMemoryAccount: @unchecked Sendable {
    // @unchecked: `bytes` is only touched under `lock`.
    static let shared = PinnedMemoryAccount()
    private let lock = Lock()
    private var bytes = 0

    var current: Int { lock.withLock { bytes } }

    /// Checks `length` against `status` and, if it fits, charges it. Returns what was pinned before.
    func reserve(_ length: Int, status: MemlockStatus) throws(FabricError) -> Int {
        try lock.withLock { () throws(FabricError) -> Int in
            let before = bytes
            try status.check(requested: length, alreadyLocked: before)
            bytes += length
            return before
        }
    }

    func release(_ length: Int) {
        lock.withLock { bytes = max(0, bytes - length) }
    }
}

/// A pthread mutex. The control path (event queue, slot allocation, advertised keys) uses it; the
/// write path never does.
final class Lock: @unchecked Sendable {
    // @unchecked: the mutex itself is the synchronization; the pointer never changes.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}
