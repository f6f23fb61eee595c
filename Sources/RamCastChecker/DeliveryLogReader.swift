// Delivery log reader: the only file in this module that uses Foundation (file access and JSON parsing).
import Foundation

/// An input error, naming the file (and the 1-based line, when there is one).
public struct DeliveryLogError: Error, CustomStringConvertible, Equatable {
    public var file: String
    public var line: Int?
    public var reason: String

    public init(file: String, line: Int? = nil, reason: String) {
        self.file = file
        self.line = line
        self.reason = reason
    }

    public var description: String { line.map { "\(file):\($0): \(reason)" } ?? "\(file): \(reason)" }
}

extension DeliveryLog {
    /// Loads a log directory (see the layout in DeliveryLogFormat.swift): multicasts are recorded first, then each
    /// process's deliveries, so "mcast precedes delivery" reduces to "an mcast exists". A malformed line is an
    /// error naming file and line, except an unterminated last line of a process or sender that `cluster.json`
    /// lists as crashed: that is a torn final write, skipped with a note in `history.notes`.
    ///
    /// - Throws: `DeliveryLogError`.
    public static func load(directory: String) throws -> (history: History, membership: Membership, quiescent: Bool) {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DeliveryLogError(file: directory, reason: "no such directory")
        }
        let names: [String]
        do {
            names = try fm.contentsOfDirectory(atPath: directory)
        } catch {
            throw DeliveryLogError(file: directory, reason: "cannot list directory: \(error.localizedDescription)")
        }
        return try load(fileNames: names, directory: directory) { name in fm.contents(atPath: directory + "/" + name) }
    }

    /// As ``load(directory:)``, over files that `contents` returns by name (nil: unreadable):
    /// `fileNames` lists the directory, `directory` names it in errors. The fuzzer feeds it from memory.
    ///
    /// - Throws: `DeliveryLogError`, also when no `deliveries-<id>.jsonl` file is there: a directory
    ///   with nothing to check is a mistake (a wrong path, a run that wrote nothing), not a clean run.
    public static func load(fileNames names: [String], directory: String, contents: (String) -> Data?) throws
        -> (history: History, membership: Membership, quiescent: Bool)
    {
        guard let clusterData = contents(clusterFileName) else {
            throw DeliveryLogError(file: clusterFileName, reason: "missing or unreadable")
        }
        var (membership, crashed, quiescent) = try loadCluster(clusterData)

        var deliveryFiles: [(ProcessID, String)] = []
        var multicastFiles: [(ProcessID, String)] = []
        for name in names {
            if let id = try fileID(name, prefix: "deliveries-") {
                deliveryFiles.append((id, name))
            } else if let id = try fileID(name, prefix: "multicasts-") {
                multicastFiles.append((id, name))
            }
        }
        guard !deliveryFiles.isEmpty else {
            throw DeliveryLogError(file: directory, reason: "no delivery logs (deliveries-<process>.jsonl) to check")
        }
        deliveryFiles.sort { $0.0 < $1.0 }
        multicastFiles.sort { $0.0 < $1.0 }

        var history = History()
        let decoder = JSONDecoder()
        for (sender, name) in multicastFiles {
            let note = try forEachLine(
                contents(name), name: name, tolerateTornLastLine: crashed.contains(sender)
            ) {
                lineNumber, data in
                let line = try decode(MulticastLine.self, from: data, decoder: decoder, file: name, line: lineNumber)
                guard let id = MessageID(line.message) else {
                    throw DeliveryLogError(
                        file: name, line: lineNumber,
                        reason: "message \"\(line.message)\" is not of the form sender.sequence")
                }
                if let s = line.sender, s != sender.rawValue {
                    throw DeliveryLogError(
                        file: name, line: lineNumber,
                        reason: "line says sender \(s) but the file is for sender \(sender)")
                }
                history.recordMulticast(
                    id, sender: sender, destinations: line.destinations.map(GroupID.init(rawValue:)))
            }
            if let note { history.addNote(note) }
        }
        for (process, name) in deliveryFiles {
            var expectedGroup = membership.group(of: process)
            let note = try forEachLine(
                contents(name), name: name, tolerateTornLastLine: crashed.contains(process)
            ) {
                lineNumber, data in
                if lineNumber == 1, let join = try? decoder.decode(JoinLine.self, from: data) {
                    // A restarted incarnation: a member of its group from its cut on.
                    guard join.process == process.rawValue else {
                        throw DeliveryLogError(file: name, line: lineNumber,
                                               reason: "join line says process \(join.process) but the file is for process \(process)")
                    }
                    var cut: MessageID?
                    if !join.joinedAfter.isEmpty {
                        guard let id = MessageID(join.joinedAfter) else {
                            throw DeliveryLogError(file: name, line: lineNumber,
                                                   reason: "joinedAfter \"\(join.joinedAfter)\" is not of the form sender.sequence")
                        }
                        cut = id
                    }
                    if expectedGroup == nil {
                        do {
                            try membership.addMember(process, to: GroupID(join.group))
                        } catch {
                            throw DeliveryLogError(file: name, line: lineNumber, reason: "\(error)")
                        }
                        expectedGroup = GroupID(join.group)
                    }
                    history.recordJoin(process, after: cut)
                    return
                }
                let line = try decode(DeliveryLine.self, from: data, decoder: decoder, file: name, line: lineNumber)
                guard line.process == process.rawValue else {
                    throw DeliveryLogError(
                        file: name, line: lineNumber,
                        reason: "line says process \(line.process) but the file is for process \(process)")
                }
                if let g = expectedGroup, g.rawValue != line.group {
                    throw DeliveryLogError(
                        file: name, line: lineNumber,
                        reason:
                            "line says group \(line.group) but \(clusterFileName) puts process \(process) in group \(g)"
                    )
                }
                guard let id = MessageID(line.message) else {
                    throw DeliveryLogError(
                        file: name, line: lineNumber,
                        reason: "message \"\(line.message)\" is not of the form sender.sequence")
                }
                var groupTimestamps: [GroupTimestamp]? = nil
                if let raw = line.groupTimestamps {
                    var list: [GroupTimestamp] = []
                    for (key, ts) in raw {
                        guard let g = UInt32(key) else {
                            throw DeliveryLogError(
                                file: name, line: lineNumber, reason: "groupTimestamps key \"\(key)\" is not a group id"
                            )
                        }
                        list.append(GroupTimestamp(group: GroupID(g), timestamp: ts))
                    }
                    groupTimestamps = list.sorted { $0.group < $1.group }
                }
                history.recordDelivery(
                    process: process, message: id, finalTimestamp: line.timestamp, groupTimestamps: groupTimestamps,
                    destinations: line.destinations.map(GroupID.init(rawValue:)))
            }
            if let note { history.addNote(note) }
        }
        for p in crashed.sorted() { history.recordCrash(p) }
        return (history, membership, quiescent)
    }

    // MARK: - Internals

    private struct ClusterFile: Decodable {
        var groups: [String: [UInt32]]
        var crashed: [UInt32]?
        var quiescent: Bool?
    }

    private struct DeliveryLine: Decodable {
        var process: UInt32
        var group: UInt32
        var message: String
        var destinations: [UInt32]
        var timestamp: UInt64
        var groupTimestamps: [String: UInt64]?
    }

    private struct JoinLine: Decodable {
        var process: UInt32
        var group: UInt32
        var joinedAfter: String
    }

    private struct MulticastLine: Decodable {
        var message: String
        var destinations: [UInt32]
        var sender: UInt32?
    }

    private static func loadCluster(_ data: Data) throws -> (Membership, Set<ProcessID>, Bool) {
        let cluster = try decode(ClusterFile.self, from: data, decoder: JSONDecoder(), file: clusterFileName, line: nil)
        var groups: [GroupID: [ProcessID]] = [:]
        for (key, members) in cluster.groups {
            guard let g = UInt32(key) else {
                throw DeliveryLogError(file: clusterFileName, reason: "group id \"\(key)\" is not an integer")
            }
            groups[GroupID(g)] = members.map(ProcessID.init(rawValue:))
        }
        let membership: Membership
        do {
            membership = try Membership(groups: groups)
        } catch {
            throw DeliveryLogError(file: clusterFileName, reason: error.description)
        }
        return (membership, Set((cluster.crashed ?? []).map(ProcessID.init(rawValue:))), cluster.quiescent ?? true)
    }

    /// The id in "<prefix><id>.jsonl"; nil for unrelated names; an error for "<prefix>junk.jsonl".
    private static func fileID(_ name: String, prefix: String) throws -> ProcessID? {
        guard name.hasPrefix(prefix), name.hasSuffix(".jsonl") else { return nil }
        let middle = name.dropFirst(prefix.count).dropLast(".jsonl".count)
        guard let id = UInt32(middle) else {
            throw DeliveryLogError(file: name, reason: "file name must be \(prefix)<integer id>.jsonl")
        }
        return ProcessID(id)
    }

    /// Calls `body` with (1-based line number, line bytes) for each non-blank line. Returns a note when a torn
    /// last line was skipped.
    private static func forEachLine(
        _ contents: Data?, name: String, tolerateTornLastLine: Bool, _ body: (Int, Data) throws -> Void
    ) throws -> String? {
        guard let data = contents else {
            throw DeliveryLogError(file: name, reason: "unreadable")
        }
        let newline = UInt8(ascii: "\n")
        var lineStart = data.startIndex
        var lineNumber = 0
        while lineStart < data.endIndex {
            lineNumber += 1
            let lineEnd = data[lineStart...].firstIndex(of: newline) ?? data.endIndex
            var slice = data[lineStart..<lineEnd]
            let unterminatedLast = lineEnd == data.endIndex
            lineStart = lineEnd == data.endIndex ? lineEnd : lineEnd + 1
            if slice.last == UInt8(ascii: "\r") { slice = slice.dropLast() }
            if slice.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            do {
                try body(lineNumber, Data(slice))
            } catch let error as DeliveryLogError {
                if unterminatedLast, tolerateTornLastLine {
                    return "\(name):\(lineNumber): skipped the unterminated last line of a crashed process "
                        + "(\(error.reason))"
                }
                throw error
            }
        }
        return nil
    }

    private static func decode<T: Decodable>(
        _ type: T.Type, from data: Data, decoder: JSONDecoder, file: String, line: Int?
    ) throws -> T {
        do {
            return try decoder.decode(type, from: data)
        } catch let error as DecodingError {
            // Foundation's decoder calls a number out of range (-5 for a UInt64) "not valid JSON",
            // without the field: find it, so the message points at the value.
            if case .dataCorrupted(let context) = error, context.codingPath.isEmpty, let field = numberOutOfRange(in: data) {
                throw DeliveryLogError(file: file, line: line, reason: field)
            }
            throw DeliveryLogError(file: file, line: line, reason: explain(error))
        } catch {
            throw DeliveryLogError(file: file, line: line, reason: "invalid JSON: \(error)")
        }
    }

    /// "field "x": expected a non-negative integer, got -5" for the first number of a JSON object
    /// (or of an array in it) that is not an integer in 0...UInt64.max; nil if the data is not an
    /// object or has no such number.
    private static func numberOutOfRange(in data: Data) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
        func bad(_ value: Any) -> Bool {
            guard let n = value as? NSNumber, String(describing: type(of: n)) != "__NSCFBoolean" else { return false }
            return (value as? UInt64) == nil
        }
        for key in object.keys.sorted() {
            let value = object[key]!
            if bad(value) { return "field \"\(key)\": expected a non-negative integer, got \(value)" }
            if let list = value as? [Any], let i = list.firstIndex(where: bad) {
                return "field \"\(key)[\(i)]\": expected a non-negative integer, got \(list[i])"
            }
            if let map = value as? [String: Any], let k = map.keys.sorted().first(where: { bad(map[$0]!) }) {
                return "field \"\(key).\(k)\": expected a non-negative integer, got \(map[k]!)"
            }
        }
        return nil
    }

    private static func explain(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        func typeName(_ type: Any.Type) -> String {
            switch type {
            case is String.Type: return "a string"
            case is Bool.Type: return "a boolean"
            case is UInt32.Type, is UInt64.Type: return "a non-negative integer"
            case is [UInt32].Type: return "an array of integers"
            default: return "\(type)"
            }
        }
        switch error {
        case .keyNotFound(let key, _):
            return "missing field \"\(key.stringValue)\""
        case .typeMismatch(let type, let context):
            return "field \"\(path(context))\": expected \(typeName(type))"
        case .valueNotFound(let type, let context):
            return "field \"\(path(context))\": null where \(typeName(type)) was expected"
        case .dataCorrupted(let context):
            let location = path(context)
            if location.isEmpty {
                if let underlying = context.underlyingError { return "not valid JSON (\(underlying))" }
                return "not valid JSON"
            }
            return "field \"\(location)\": \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }
}
