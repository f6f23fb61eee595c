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
        ("RAMCAST_FAILURE_TIMEOUT_MS", "failureDetection.timeoutMillis"),
        ("RAMCAST_RDMA_DEVICE", "rdma.device"),
        ("RAMCAST_RDMA_PORT", "rdma.port"),
        ("RAMCAST_GID_INDEX", "rdma.gidIndex"),
    ]

    /// Reads a JSON cluster file, then applies environment overrides (``environmentOverrides``), then
    /// `overrides` (from command-line flags, keyed like the file: `"ring.slotSize"`), then validates
    /// the result. Every error names its source and key.
    public static func load(path: String, environment: [String: String] = ProcessInfo.processInfo.environment,
                            overrides: [String: String] = [:]) throws(ConfigurationError) -> ClusterConfiguration {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ConfigurationError(source: path, key: "(file)", reason: "cannot read: \(error.localizedDescription)")
        }
        return try parse(data, source: path, environment: environment, overrides: overrides)
    }

    /// Parses JSON text; `source` names it in errors.
    public static func parse(_ data: Data, source: String, environment: [String: String] = [:],
                             overrides: [String: String] = [:]) throws(ConfigurationError) -> ClusterConfiguration {
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw ConfigurationError(source: source, key: "(file)", reason: "not valid JSON: \((error as NSError).localizedDescription)")
        }
        let r = Reader(source: source)
        guard let top = root as? [String: Any] else { throw r.error("(top level)", "expected a JSON object") }
        let known: Set<String> = ["groups", "senders", "ring", "inlineThreshold", "signalInterval", "maxDestinations",
                                  "singleGroupFastPath", "failureDetection", "rdma"]
        for key in top.keys where !known.contains(key) {
            throw r.error(key, "unknown key (expected one of: \(known.sorted().joined(separator: ", ")))")
        }
        guard let groupsValue = top["groups"] else { throw r.error("groups", "missing: list the replica groups") }
        guard let groupList = groupsValue as? [Any], !groupList.isEmpty else { throw r.error("groups", "expected a non-empty array") }
        var groups: [[Process]] = []
        for (g, value) in groupList.enumerated() {
            let key = "groups[\(g)]"
            guard let object = value as? [String: Any] else { throw r.error(key, "expected an object with \"members\"") }
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
            if let v = ring["slots"] { config.slotsPerRing = try r.int(v, key: "ring.slots") }
            if let v = ring["slotSize"] { config.slotSize = try r.int(v, key: "ring.slotSize") }
        }
        if let v = top["inlineThreshold"] { config.inlineThreshold = try r.int(v, key: "inlineThreshold") }
        if let v = top["signalInterval"] { config.signalInterval = try r.int(v, key: "signalInterval") }
        if let v = top["maxDestinations"] { config.maxDestinations = try r.int(v, key: "maxDestinations") }
        if let v = top["singleGroupFastPath"] {
            guard let b = v as? Bool else { throw r.error("singleGroupFastPath", "expected true or false") }
            config.singleGroupFastPath = b
        }
        if let fd = top["failureDetection"] {
            guard let fd = fd as? [String: Any] else { throw r.error("failureDetection", "expected an object") }
            if let v = fd["heartbeatMicros"] { config.heartbeatInterval = UInt64(max(0, try r.int(v, key: "failureDetection.heartbeatMicros"))) * 1_000 }
            if let v = fd["timeoutMillis"] { config.failureTimeout = UInt64(max(0, try r.int(v, key: "failureDetection.timeoutMillis"))) * 1_000_000 }
        }
        if let rdma = top["rdma"] {
            guard let rdma = rdma as? [String: Any] else { throw r.error("rdma", "expected an object") }
            if let v = rdma["device"] {
                guard let s = v as? String else { throw r.error("rdma.device", "expected a string") }
                config.rdmaDevice = s
            }
            if let v = rdma["port"] { config.rdmaPort = try r.int(v, key: "rdma.port") }
            if let v = rdma["gidIndex"] { config.gidIndex = try r.int(v, key: "rdma.gidIndex") }
        }
        for (variable, key) in environmentOverrides {
            if let value = environment[variable] { try config.set(key, value, source: "environment variable \(variable)") }
        }
        for (key, value) in overrides.sorted(by: { $0.key < $1.key }) { try config.set(key, value, source: "flags") }
        try config.validate(source: source)
        return config
    }

    /// Sets one key from a string (environment or flag).
    public mutating func set(_ key: String, _ value: String, source: String) throws(ConfigurationError) {
        func int() throws(ConfigurationError) -> Int {
            guard let v = Int(value) else { throw ConfigurationError(source: source, key: key, reason: "expected an integer, got '\(value)'") }
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
        case "failureDetection.heartbeatMicros": heartbeatInterval = UInt64(max(0, try int())) * 1_000
        case "failureDetection.timeoutMillis": failureTimeout = UInt64(max(0, try int())) * 1_000_000
        case "rdma.device": rdmaDevice = value
        case "rdma.port": rdmaPort = try int()
        case "rdma.gidIndex": gidIndex = try int()
        default: throw ConfigurationError(source: source, key: key, reason: "not a key that can be overridden")
        }
    }

    /// Checks the rules a file cannot express: unique ids and addresses, 2f+1 group sizes, and
    /// everything ``ProtocolConfig/validate()`` checks.
    public func validate(source: String) throws(ConfigurationError) {
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
            throw ConfigurationError(source: source, key: key, reason: reason)
        }
    }
}

/// Typed reads from parsed JSON, with key paths in errors.
private struct Reader {
    let source: String

    func error(_ key: String, _ reason: String) -> ConfigurationError {
        ConfigurationError(source: source, key: key, reason: reason)
    }

    func int(_ value: Any, key: String) throws(ConfigurationError) -> Int {
        // JSON booleans arrive as a boolean NSNumber that also converts to Int: refuse them.
        if let n = value as? NSNumber, String(describing: type(of: n)) != "__NSCFBoolean",
           let i = value as? Int { return i }
        throw error(key, "expected an integer, got \(describe(value))")
    }

    func process(_ value: Any, key: String) throws(ConfigurationError) -> ClusterConfiguration.Process {
        guard let o = value as? [String: Any] else { throw error(key, "expected an object with id and address") }
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
        if let n = value as? NSNumber, String(describing: type(of: n)) == "__NSCFBoolean" { return n.boolValue ? "true" : "false" }
        return "\(value)"
    }
}
