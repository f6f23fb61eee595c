import Foundation
import RamCastFabric
import RamCastProtocol

extension ClusterConfiguration {
    /// Environment variables that override the file, and the keys they set.
    public static let environmentOverrides: [(variable: String, key: String)] = [
        ("RAMCAST_RING_SLOTS", "ring.slots"),
        ("RAMCAST_SLOT_SIZE", "ring.slotSize"),
        ("RAMCAST_INLINE_THRESHOLD", "inlineThreshold"),
        ("RAMCAST_SIGNAL_INTERVAL", "signalInterval"),
        ("RAMCAST_MAX_DESTINATIONS", "maxDestinations"),
        ("RAMCAST_HEARTBEAT_US", "failureDetection.heartbeatMicros"),
        ("RAMCAST_FAILURE_TIMEOUT_MS", "failureDetection.timeoutMillis"),
        ("RAMCAST_RDMA_DEVICE", "rdma.device"),
        ("RAMCAST_RDMA_PORT", "rdma.port"),
        ("RAMCAST_GID_INDEX", "rdma.gidIndex"),
    ]

    /// The values each integer key accepts. Bounds keep every accepted value usable: the timeouts
    /// fit in nanoseconds with room to spare, and a ring of the largest slots stays addressable
    /// (see ``ProtocolConfig/maxSlotSize``).
    public static let integerRanges: [String: ClosedRange<Int>] = [
        "ring.slots": 1...0x8000,
        "ring.slotSize": 8...ProtocolConfig.maxSlotSize,
        "inlineThreshold": 0...Int(Int32.max),
        "signalInterval": 1...Int(Int32.max),
        "maxDestinations": 1...255,
        "failureDetection.heartbeatMicros": 1...3_600_000_000,  // an hour
        "failureDetection.timeoutMillis": 1...86_400_000,  // a day
        "rdma.port": 1...255,  // ibverbs port numbers are a byte, from 1
        "rdma.gidIndex": 0...255,  // a byte in the address handle
    ]

    /// The keys a cluster file may hold, at each level; anything else is a typo and rejected.
    static let topLevelKeys: Set<String> = ["groups", "senders", "ring", "inlineThreshold", "signalInterval",
                                            "maxDestinations", "singleGroupFastPath", "failureDetection", "rdma"]

    /// Reads a JSON cluster file, then applies environment overrides (``environmentOverrides``), then
    /// `overrides` (from command-line flags, keyed like the file: `"ring.slotSize"`), then validates
    /// the result. Every error names its source and key: a value that fails validation is reported
    /// against whoever set it last (the file, the environment variable, or the flag, named by
    /// `flagNames[key]` when given).
    public static func load(path: String, environment: [String: String] = ProcessInfo.processInfo.environment,
                            overrides: [String: String] = [:],
                            flagNames: [String: String] = [:]) throws(ConfigurationError) -> ClusterConfiguration {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ConfigurationError(source: path, key: "(file)", reason: "cannot read: \(describeFileError(error, path: path))")
        }
        return try parse(data, source: path, environment: environment, overrides: overrides, flagNames: flagNames)
    }

    /// Parses JSON text; `source` names it in errors.
    public static func parse(_ data: Data, source: String, environment: [String: String] = [:],
                             overrides: [String: String] = [:],
                             flagNames: [String: String] = [:]) throws(ConfigurationError) -> ClusterConfiguration {
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw ConfigurationError(source: source, key: "(file)", reason: "not valid JSON: \(describeJSONError(error, in: data))")
        }
        let r = Reader(source: source)
        guard let top = root as? [String: Any] else { throw r.error("(top level)", "expected a JSON object") }
        try r.onlyKeys(top, topLevelKeys, at: nil)
        guard let groupsValue = top["groups"] else { throw r.error("groups", "missing: list the replica groups") }
        guard let groupList = groupsValue as? [Any], !groupList.isEmpty else { throw r.error("groups", "expected a non-empty array") }
        var groups: [[Process]] = []
        for (g, value) in groupList.enumerated() {
            let key = "groups[\(g)]"
            guard let object = value as? [String: Any] else { throw r.error(key, "expected an object with \"members\"") }
            try r.onlyKeys(object, ["members"], at: key)
            guard let members = object["members"] as? [Any] else { throw r.error("\(key).members", "missing or not an array") }
            groups.append(try members.enumerated().map { (i, m) throws(ConfigurationError) in
                try r.process(m, key: "\(key).members[\(i)]")
            })
        }
        guard let senderList = top["senders"] as? [Any] else { throw r.error("senders", "missing or not an array") }
        let senders = try senderList.enumerated().map { (i, m) throws(ConfigurationError) in try r.process(m, key: "senders[\(i)]") }
        var config = ClusterConfiguration(groups: groups, senders: senders)
        if let ring = top["ring"] {
            guard let ring = ring as? [String: Any] else { throw r.error("ring", "expected an object with slots and slotSize") }
            try r.onlyKeys(ring, ["slots", "slotSize"], at: "ring")
            if let v = ring["slots"] { config.slotsPerRing = try r.int(v, key: "ring.slots") }
            if let v = ring["slotSize"] { config.slotSize = try r.int(v, key: "ring.slotSize") }
        }
        if let v = top["inlineThreshold"] { config.inlineThreshold = try r.int(v, key: "inlineThreshold") }
        if let v = top["signalInterval"] { config.signalInterval = try r.int(v, key: "signalInterval") }
        if let v = top["maxDestinations"] { config.maxDestinations = try r.int(v, key: "maxDestinations") }
        if let v = top["singleGroupFastPath"] {
            guard let b = v as? Bool, r.isBoolean(v) else { throw r.error("singleGroupFastPath", "expected true or false, got \(r.describe(v))") }
            config.singleGroupFastPath = b
        }
        if let fd = top["failureDetection"] {
            guard let fd = fd as? [String: Any] else { throw r.error("failureDetection", "expected an object") }
            try r.onlyKeys(fd, ["heartbeatMicros", "timeoutMillis"], at: "failureDetection")
            if let v = fd["heartbeatMicros"] {
                config.heartbeatInterval = UInt64(try r.int(v, key: "failureDetection.heartbeatMicros")) * 1_000
            }
            if let v = fd["timeoutMillis"] {
                config.failureTimeout = UInt64(try r.int(v, key: "failureDetection.timeoutMillis")) * 1_000_000
            }
        }
        if let rdma = top["rdma"] {
            guard let rdma = rdma as? [String: Any] else { throw r.error("rdma", "expected an object") }
            try r.onlyKeys(rdma, ["device", "port", "gidIndex"], at: "rdma")
            if let v = rdma["device"] {
                guard let s = v as? String, !s.isEmpty else { throw r.error("rdma.device", "expected a device name, got \(r.describe(v))") }
                config.rdmaDevice = s
            }
            if let v = rdma["port"] { config.rdmaPort = try r.int(v, key: "rdma.port") }
            if let v = rdma["gidIndex"] { config.gidIndex = try r.int(v, key: "rdma.gidIndex") }
        }
        var origins: [String: String] = [:]
        for (variable, key) in environmentOverrides {
            guard let value = environment[variable] else { continue }
            let origin = "environment variable \(variable)"
            try config.set(key, value, source: origin)
            origins[key] = origin
        }
        for (key, value) in overrides.sorted(by: { $0.key < $1.key }) {
            let origin = flagNames[key].map { "flag \($0)" } ?? "flags"
            try config.set(key, value, source: origin)
            origins[key] = origin
        }
        try config.validate(source: source, origins: origins)
        return config
    }

    /// Sets one key from a string (environment or flag), refusing values outside ``integerRanges``.
    public mutating func set(_ key: String, _ value: String, source: String) throws(ConfigurationError) {
        func int() throws(ConfigurationError) -> Int {
            let range = Self.integerRanges[key] ?? Int.min...Int.max
            guard let v = Int(value.trimmingCharacters(in: .whitespaces)), range.contains(v) else {
                throw ConfigurationError(source: source, key: key,
                                         reason: "expected an integer in \(range.lowerBound)...\(range.upperBound), got '\(value)'")
            }
            return v
        }
        switch key {
        case "ring.slots": slotsPerRing = try int()
        case "ring.slotSize": slotSize = try int()
        case "inlineThreshold": inlineThreshold = try int()
        case "signalInterval": signalInterval = try int()
        case "maxDestinations": maxDestinations = try int()
        case "singleGroupFastPath":
            guard let b = Bool(value) else { throw ConfigurationError(source: source, key: key, reason: "expected true or false, got '\(value)'") }
            singleGroupFastPath = b
        // The ranges make these products fit: at most 3.6e12 and 8.64e13 ns.
        case "failureDetection.heartbeatMicros": heartbeatInterval = UInt64(try int()) * 1_000
        case "failureDetection.timeoutMillis": failureTimeout = UInt64(try int()) * 1_000_000
        case "rdma.device":
            guard !value.isEmpty else { throw ConfigurationError(source: source, key: key, reason: "expected a device name, got ''") }
            rdmaDevice = value
        case "rdma.port": rdmaPort = try int()
        case "rdma.gidIndex": gidIndex = try int()
        default: throw ConfigurationError(source: source, key: key, reason: "not a key that can be overridden")
        }
    }

    /// Checks the rules a file cannot express: unique ids and addresses, 2f+1 group sizes, and
    /// everything ``ProtocolConfig/validate()`` checks.
    public func validate(source: String) throws(ConfigurationError) {
        try validate(source: source, origins: [:])
    }

    /// As ``validate(source:)``, reporting a bad value against `origins[key]` (the environment
    /// variable or flag that set it) when there is one, else against the file.
    func validate(source: String, origins: [String: String]) throws(ConfigurationError) {
        func fail(_ key: String, _ reason: String) -> ConfigurationError {
            ConfigurationError(source: origins[key] ?? source, key: key, reason: reason)
        }
        // Values set in code (not through the file or `set`) get the same bounds.
        let values: [(String, Int?)] = [("ring.slots", slotsPerRing), ("ring.slotSize", slotSize), ("inlineThreshold", inlineThreshold),
                                        ("signalInterval", signalInterval), ("maxDestinations", maxDestinations),
                                        ("rdma.port", rdmaPort), ("rdma.gidIndex", gidIndex)]
        for case (let key, let value?) in values {
            let range = Self.integerRanges[key]!
            guard range.contains(value) else { throw fail(key, "must be in \(range.lowerBound)...\(range.upperBound), got \(value)") }
        }
        var ids: [NodeID: String] = [:]
        var addresses: [String: String] = [:]
        let keyed = groups.enumerated().flatMap { g, members in
            members.enumerated().map { ("groups[\(g)].members[\($0)]", $1) }
        } + senders.enumerated().map { ("senders[\($0)]", $1) }
        for (key, p) in keyed {
            if let other = ids[p.id] {
                throw ConfigurationError(source: source, key: "\(key).id", reason: "duplicate id \(p.id.rawValue) (also at \(other))")
            }
            ids[p.id] = key
            let address = "\(p.host):\(p.port)"
            if let other = addresses[address] {
                throw ConfigurationError(source: source, key: "\(key).address", reason: "duplicate address \(address) (also at \(other))")
            }
            addresses[address] = key
        }
        for (g, members) in groups.enumerated() where members.count % 2 == 0 {
            throw ConfigurationError(source: source, key: "groups[\(g)].members",
                                     reason: "a group needs 2f+1 members (1, 3, 5, ...), got \(members.count)")
        }
        do {
            try protocolConfig.validate()
        } catch {
            let key: String = switch error {
            case .invalid(let k, _):
                ["slotsPerRing": "ring.slots", "slotSize": "ring.slotSize", "failureTimeout": "failureDetection.timeoutMillis"][k] ?? k
            }
            let reason: String = switch error { case .invalid(_, let why): why }
            throw fail(key, reason)
        }
    }
}

/// "No such file or directory" rather than Foundation's domain and code.
func describeFileError(_ error: any Error, path: String) -> String {
    let ns = error as NSError
    if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
        return String(cString: strerror(Int32(underlying.code)))
    }
    if ns.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(ns.code))) }
    // Foundation's file-reading codes, as the errno they stand for.
    switch ns.code {
    case NSFileReadNoSuchFileError: return String(cString: strerror(ENOENT))
    case NSFileReadNoPermissionError: return String(cString: strerror(EACCES))
    default:
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            return String(cString: strerror(EISDIR))
        }
        return ns.localizedDescription
    }
}

/// Foundation's JSON error, with the offset it names turned into a line and column (1-based).
func describeJSONError(_ error: any Error, in data: Data) -> String {
    let detail = ((error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String) ?? "\(error)"
    var offset: Int?
    if let range = detail.range(of: "character ") {
        offset = Int(detail[range.upperBound...].prefix(while: \.isNumber))
    } else if detail.localizedCaseInsensitiveContains("end of file") || data.isEmpty {
        offset = data.count
    }
    guard let offset, offset >= 0, offset <= data.count else { return detail }
    var line = 1, column = 1
    for byte in data.prefix(offset) {
        if byte == UInt8(ascii: "\n") {
            line += 1
            column = 1
        } else if byte & 0xC0 != 0x80 {  // count characters, not UTF-8 continuation bytes
            column += 1
        }
    }
    let what = detail.range(of: " around character").map { String(detail[..<$0.lowerBound]) } ?? detail
    return "line \(line), column \(column): \(what.hasSuffix(".") ? String(what.dropLast()) : what)"
}

/// Typed reads from parsed JSON, with key paths in errors.
private struct Reader {
    let source: String

    func error(_ key: String, _ reason: String) -> ConfigurationError {
        ConfigurationError(source: source, key: key, reason: reason)
    }

    /// Rejects the first key not in `known`, with its full path: a typo must not be silently ignored.
    func onlyKeys(_ object: [String: Any], _ known: Set<String>, at path: String?) throws(ConfigurationError) {
        for key in object.keys.sorted() where !known.contains(key) {
            // Quoted when it would not read as a key: empty (the fuzzer's find: the path was blank),
            // or with spaces, dots, brackets or control characters.
            let plain = !key.isEmpty && key.unicodeScalars.allSatisfy { $0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_" }
            let shown = plain ? key : "\"\(key.unicodeScalars.map { $0.isASCII && $0.value >= 0x20 ? String($0) : $0.escaped(asASCII: true) }.joined())\""
            throw error(path.map { "\($0).\(shown)" } ?? shown,
                        "unknown key (expected one of: \(known.sorted().joined(separator: ", ")))")
        }
    }

    func isBoolean(_ value: Any) -> Bool {
        if let n = value as? NSNumber { return String(describing: type(of: n)) == "__NSCFBoolean" }
        return false
    }

    /// An integer within the key's range in ``ClusterConfiguration/integerRanges``.
    func int(_ value: Any, key: String) throws(ConfigurationError) -> Int {
        let range = ClusterConfiguration.integerRanges[key] ?? Int.min...Int.max
        // JSON booleans arrive as a boolean NSNumber that also converts to Int: refuse them.
        guard value is NSNumber, !isBoolean(value), let i = value as? Int else {
            if value is NSNumber, !isBoolean(value) {
                throw error(key, "expected an integer in \(range.lowerBound)...\(range.upperBound), got \(describe(value))")
            }
            throw error(key, "expected an integer, got \(describe(value))")
        }
        guard range.contains(i) else { throw error(key, "must be in \(range.lowerBound)...\(range.upperBound), got \(i)") }
        return i
    }

    func process(_ value: Any, key: String) throws(ConfigurationError) -> ClusterConfiguration.Process {
        guard let o = value as? [String: Any] else { throw error(key, "expected an object with id and address") }
        try onlyKeys(o, ["id", "address"], at: key)
        guard let rawID = o["id"] else { throw error("\(key).id", "missing") }
        let id = try int(rawID, key: "\(key).id")
        guard id >= 0, id < 1 << 24 else { throw error("\(key).id", "must be in 0..<16777216, got \(id)") }
        guard let address = o["address"] else { throw error("\(key).address", "missing") }
        guard let text = address as? String, let colon = text.lastIndex(of: ":"),
              let port = UInt16(text[text.index(after: colon)...]), colon > text.startIndex else {
            throw error("\(key).address", "expected \"host:port\", got \(describe(address))")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return .init(id: NodeID(UInt32(id)), host: host, port: port)
    }

    func describe(_ value: Any) -> String {
        if let s = value as? String { return "\"\(s)\"" }
        if value is NSNull { return "null" }
        if isBoolean(value) { return (value as! NSNumber).boolValue ? "true" : "false" }
        if value is [Any] { return "an array" }
        if value is [String: Any] { return "an object" }
        return "\(value)"
    }
}
