import RamCastChecker
import RamCastFabric
import RamCastProtocol

#if canImport(Glibc)
import Glibc
#endif

/// Appends JSON lines for `ramcast-check`: one file per local process (`deliveries-<id>.jsonl`) and per
/// local sender (`multicasts-<id>.jsonl`), plus `cluster.json`. Lines go through a reused buffer and
/// a stdio stream; each line is flushed to the file as a whole, so a `kill -9` leaves at most one
/// torn last line (which the reader tolerates for crashed processes).
public final class DeliveryLogWriter {
    private var files: [NodeID: UnsafeMutablePointer<FILE>] = [:]
    private var buffer: [UInt8] = []
    private var groups: [RamCastChecker.GroupID] = []
    /// Added to a group member's id in its file name and lines: a restarted incarnation is its own
    /// process for the checker.
    private let processOffset: UInt32

    /// The checker's process id of `node` in incarnation `incarnation`.
    public static func process(_ node: NodeID, incarnation: UInt32) -> ProcessID {
        ProcessID(node.rawValue + incarnation * 1_000_000)
    }

    /// Creates `directory` if needed, writes `cluster.json` and opens one file per process in `local`.
    /// A restarted incarnation (`incarnation` > 0) leaves `cluster.json` alone and writes its
    /// deliveries under its own process id, after a first line that records its cut (``joined(_:group:after:)``).
    public init(directory: String, layout: Layout, local: [NodeID], incarnation: UInt32 = 0) throws {
        processOffset = incarnation * 1_000_000
        try Self.prepareDirectory(directory)
        var membership: [RamCastChecker.GroupID: [ProcessID]] = [:]
        for (g, members) in layout.config.groups.enumerated() {
            membership[RamCastChecker.GroupID(UInt32(g))] = members.map { ProcessID($0.rawValue) }
        }
        if incarnation == 0 {
            let cluster = DeliveryLog.clusterFile(membership: try Membership(groups: membership))
            try Self.write(cluster, to: directory + "/" + DeliveryLog.clusterFileName)
        }
        for id in local {
            let name = layout.groupOf[id] != nil
                ? DeliveryLog.deliveriesFileName(process: Self.process(id, incarnation: incarnation))
                : DeliveryLog.multicastsFileName(sender: ProcessID(id.rawValue))
            guard let f = fopen(directory + "/" + name, "w") else {
                throw ConfigurationError(source: directory, key: name, reason: "cannot create the delivery log: \(String(cString: strerror(errno)))")
            }
            files[id] = f
        }
        buffer.reserveCapacity(256)
    }

    /// Creates `directory` if it does not exist and checks that it can hold the logs, so that a
    /// tool can refuse a bad `--delivery-log` before it runs rather than after. The error names the
    /// path and says why (strerror), with the key `(directory)`.
    public static func prepareDirectory(_ directory: String) throws(ConfigurationError) {
        func fail(_ what: String, _ code: Int32) -> ConfigurationError {
            ConfigurationError(source: directory, key: "(directory)", reason: "\(what): \(String(cString: strerror(code)))")
        }
        guard !directory.isEmpty else { throw ConfigurationError(source: "''", key: "(directory)", reason: "empty path") }
        if mkdir(directory, 0o755) != 0, errno != EEXIST { throw fail("cannot create the directory", errno) }
        var info = stat()
        guard stat(directory, &info) == 0 else { throw fail("cannot use the directory", errno) }
        guard info.st_mode & S_IFMT == S_IFDIR else { throw fail("cannot use the directory", ENOTDIR) }
        guard access(directory, W_OK | X_OK) == 0 else { throw fail("cannot write to the directory", errno) }
    }

    private static func write(_ text: String, to path: String) throws {
        guard let f = fopen(path, "w") else {
            throw ConfigurationError(source: path, key: "(file)", reason: "cannot create: \(String(cString: strerror(errno)))")
        }
        fputs(text, f)
        fclose(f)
    }

    /// Appends the delivery to its process's file.
    public func delivered(_ d: borrowing Delivery) {
        guard let f = files[d.process] else { return }
        groups.removeAll(keepingCapacity: true)
        d.forEachDestination { groups.append(RamCastChecker.GroupID(UInt32($0.rawValue))) }
        buffer.removeAll(keepingCapacity: true)
        DeliveryLog.appendDeliveryLine(to: &buffer, process: ProcessID(d.process.rawValue + processOffset), group: RamCastChecker.GroupID(UInt32(d.group.rawValue)),
                                       message: RamCastChecker.MessageID(sender: d.id.sender.rawValue, sequence: d.id.sequence),
                                       destinations: groups, timestamp: d.finalTimestamp.rawValue)
        emit(f)
    }

    /// A restarted process was taken back in: the first line of its file says from which cut on it
    /// delivers (see `DeliveryLogReader`).
    public func joined(_ node: NodeID, group: RamCastProtocol.GroupID, after cut: RamCastProtocol.MessageID?) {
        guard let f = files[node] else { return }
        buffer.removeAll(keepingCapacity: true)
        DeliveryLog.appendJoinLine(to: &buffer, process: ProcessID(node.rawValue + processOffset),
                                   group: RamCastChecker.GroupID(UInt32(group.rawValue)),
                                   after: cut.map { RamCastChecker.MessageID(sender: $0.sender.rawValue, sequence: $0.sequence) })
        emit(f)
    }

    /// Appends a multicast to its sender's file.
    public func multicast(_ id: RamCastProtocol.MessageID, destinations: [RamCastProtocol.GroupID]) {
        guard let f = files[id.sender] else { return }
        buffer.removeAll(keepingCapacity: true)
        DeliveryLog.appendMulticastLine(to: &buffer, message: RamCastChecker.MessageID(sender: id.sender.rawValue, sequence: id.sequence),
                                        destinations: destinations.map { RamCastChecker.GroupID(UInt32($0.rawValue)) },
                                        sender: ProcessID(id.sender.rawValue))
        emit(f)
    }

    private func emit(_ f: UnsafeMutablePointer<FILE>) {
        buffer.withUnsafeBytes { _ = fwrite($0.baseAddress, 1, $0.count, f) }
        fflush(f)
    }

    public func close() {
        for f in files.values { fclose(f) }
        files.removeAll()
    }
}
