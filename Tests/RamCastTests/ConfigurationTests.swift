import Foundation
import RamCast
import RamCastFabric
import Testing

@Suite("Cluster configuration files")
struct ConfigurationTests {
    static let valid = """
    {
      "groups": [
        { "members": [ { "id": 0, "address": "10.0.0.1:7000" }, { "id": 1, "address": "10.0.0.2:7000" }, { "id": 2, "address": "10.0.0.3:7000" } ] },
        { "members": [ { "id": 3, "address": "10.0.0.4:7000" }, { "id": 4, "address": "10.0.0.5:7000" }, { "id": 5, "address": "10.0.0.6:7000" } ] }
      ],
      "senders": [ { "id": 100, "address": "10.0.0.9:7000" } ],
      "ring": { "slots": 32, "slotSize": 1024 },
      "inlineThreshold": 128,
      "signalInterval": 4,
      "rdma": { "device": "mlx5_0", "gidIndex": 3 }
    }
    """

    func parse(_ text: String, env: [String: String] = [:], flags: [String: String] = [:],
               flagNames: [String: String] = [:]) throws(ConfigurationError) -> ClusterConfiguration {
        try ClusterConfiguration.parse(Data(text.utf8), source: "cluster.json", environment: env, overrides: flags, flagNames: flagNames)
    }

    func error(_ text: String, env: [String: String] = [:], flags: [String: String] = [:],
               flagNames: [String: String] = [:]) -> ConfigurationError? {
        do { _ = try parse(text, env: env, flags: flags, flagNames: flagNames); return nil } catch { return error }
    }

    @Test("a valid file, with environment and flag overrides in that order")
    func valid() throws {
        let c = try parse(Self.valid)
        #expect(c.groups.count == 2 && c.groups[1][2].id == NodeID(5) && c.groups[1][2].host == "10.0.0.6" && c.groups[1][2].port == 7000)
        #expect(c.slotsPerRing == 32 && c.slotSize == 1024 && c.inlineThreshold == 128 && c.signalInterval == 4)
        #expect(c.rdmaDevice == "mlx5_0" && c.gidIndex == 3)
        let o = try parse(Self.valid, env: ["RAMCAST_SLOT_SIZE": "512", "RAMCAST_SIGNAL_INTERVAL": "16"], flags: ["ring.slotSize": "2048"])
        #expect(o.slotSize == 2048 && o.signalInterval == 16)
    }

    @Test("each mistake is reported with the file and the key")
    func mistakes() {
        let dupID = Self.valid.replacingOccurrences(of: #"{ "id": 4, "#, with: #"{ "id": 1, "#)
        #expect(error(dupID)?.description == "cluster.json: groups[1].members[1].id: duplicate id 1 (also at groups[0].members[1])")
        let dupAddr = Self.valid.replacingOccurrences(of: "10.0.0.9:7000", with: "10.0.0.1:7000")
        #expect(error(dupAddr)?.description == "cluster.json: senders[0].address: duplicate address 10.0.0.1:7000 (also at groups[0].members[0])")
        let even = Self.valid.replacingOccurrences(of: #", { "id": 5, "address": "10.0.0.6:7000" }"#, with: "")
        #expect(error(even)?.description == "cluster.json: groups[1].members: a group needs 2f+1 members (1, 3, 5, ...), got 2")
        let missing = Self.valid.replacingOccurrences(of: #""senders": [ { "id": 100, "address": "10.0.0.9:7000" } ],"#, with: "")
        #expect(error(missing)?.description == "cluster.json: senders: missing or not an array")
        let noAddress = Self.valid.replacingOccurrences(of: #"{ "id": 2, "address": "10.0.0.3:7000" }"#, with: #"{ "id": 2 }"#)
        #expect(error(noAddress)?.description == "cluster.json: groups[0].members[2].address: missing")
        let badValue = Self.valid.replacingOccurrences(of: #""slotSize": 1024"#, with: #""slotSize": "big""#)
        #expect(error(badValue)?.description == #"cluster.json: ring.slotSize: expected an integer, got "big""#)
        let boolean = Self.valid.replacingOccurrences(of: #""signalInterval": 4"#, with: #""signalInterval": true"#)
        #expect(error(boolean)?.description == "cluster.json: signalInterval: expected an integer, got true")
        let badPort = Self.valid.replacingOccurrences(of: "10.0.0.9:7000", with: "10.0.0.9")
        #expect(error(badPort)?.description == #"cluster.json: senders[0].address: expected "host:port", got "10.0.0.9""#)
        let tiny = Self.valid.replacingOccurrences(of: #""slotSize": 1024"#, with: #""slotSize": 64"#)
        #expect(error(tiny)?.key == "ring.slotSize")
        #expect(error(Self.valid.replacingOccurrences(of: #""signalInterval": 4"#, with: #""signalIntervall": 4"#))?.key == "signalIntervall")
        #expect(error("[1, 2]")?.description == "cluster.json: (top level): expected a JSON object")
        #expect(error("{ not json")?.key == "(file)")
        #expect(error(Self.valid, env: ["RAMCAST_RING_SLOTS": "many"])?.description == "environment variable RAMCAST_RING_SLOTS: ring.slots: expected an integer in 1...32768, got 'many'")
        #expect(error(Self.valid, flags: ["ring.slots": "0"])?.description == "flags: ring.slots: expected an integer in 1...32768, got '0'")
        #expect(error(Self.valid, flags: ["colour": "blue"])?.description == "flags: colour: not a key that can be overridden")
    }

    @Test("a typo at any depth is rejected with its full key path")
    func nestedUnknownKeys() {
        let cases: [(String, String, String)] = [
            (#""slots": 32"#, #""slotz": 32"#, "ring.slotz"),
            (#"{ "id": 100, "address": "10.0.0.9:7000" }"#, #"{ "id": 100, "address": "10.0.0.9:7000", "adress": "x" }"#, "senders[0].adress"),
            (#"{ "id": 4, "address": "10.0.0.5:7000" }"#, #"{ "id": 4, "address": "10.0.0.5:7000", "role": "leader" }"#, "groups[1].members[1].role"),
            (#"{ "members": [ { "id": 3"#, #"{ "name": "b", "members": [ { "id": 3"#, "groups[1].name"),
            (#""gidIndex": 3"#, #""gidIndex": 3, "gid": 3"#, "rdma.gid"),
        ]
        for (from, to, key) in cases {
            let text = Self.valid.replacingOccurrences(of: from, with: to)
            #expect(text != Self.valid)
            let e = error(text)
            #expect(e?.key == key && e?.source == "cluster.json" && e?.reason.hasPrefix("unknown key") == true, "\(key): \(String(describing: e))")
        }
        // Found by the fuzzer: an empty key gave an error with a blank key path.
        #expect(error(Self.valid.replacingOccurrences(of: #""signalInterval": 4,"#, with: #""signalInterval": 4, "": 1,"#))?.key == #""""#)
        #expect(error(Self.valid.replacingOccurrences(of: #""slots": 32"#, with: #""slots": 32, "slot size": 1"#))?.key == #"ring."slot size""#)
        let fd = Self.valid.replacingOccurrences(of: #""signalInterval": 4,"#, with: #""signalInterval": 4, "failureDetection": { "timeoutMilis": 5 },"#)
        #expect(error(fd)?.key == "failureDetection.timeoutMilis")
    }

    @Test("invalid JSON is reported with its line and column")
    func jsonPosition() {
        let broken = Self.valid.replacingOccurrences(of: #""inlineThreshold": 128,"#, with: #""inlineThreshold": 128,,"#)
        #expect(error(broken)?.description == "cluster.json: (file): not valid JSON: line 8, column 26: Invalid value")
        #expect(error("{\n  \"groups\": [")?.reason == "not valid JSON: line 2, column 14: Unexpected end of file during JSON parse")
    }

    @Test("an override is reported against its variable or flag, and out-of-range values are refused, not clamped")
    func rangesAndOrigins() {
        // Validation after the overrides names who set the value last.
        #expect(error(Self.valid, env: ["RAMCAST_SLOT_SIZE": "100"])?.description
            == "environment variable RAMCAST_SLOT_SIZE: ring.slotSize: must be a multiple of 8, got 100")
        #expect(error(Self.valid, flags: ["ring.slotSize": "100"], flagNames: ["ring.slotSize": "--slot-size"])?.source == "flag --slot-size")
        #expect(error(Self.valid, env: ["RAMCAST_MAX_DESTINATIONS": "3"])?.source == "environment variable RAMCAST_MAX_DESTINATIONS")
        // Values that used to overflow into a trap once in nanoseconds, or were clamped to 0.
        let huge = "99999999999999"
        let fileCases: [(String, String)] = [
            (#""failureDetection": { "timeoutMillis": \#(huge) }"#, "failureDetection.timeoutMillis"),
            (#""failureDetection": { "heartbeatMicros": \#(huge) }"#, "failureDetection.heartbeatMicros"),
            (#""failureDetection": { "timeoutMillis": -5 }"#, "failureDetection.timeoutMillis"),
            (#""failureDetection": { "heartbeatMicros": -1 }"#, "failureDetection.heartbeatMicros"),
            (#""failureDetection": { "timeoutMillis": 1e300 }"#, "failureDetection.timeoutMillis"),
            (#""failureDetection": { "timeoutMillis": 99999999999999999999999 }"#, "failureDetection.timeoutMillis"),
            (#""inlineThreshold": -1"#, "inlineThreshold"),
            (#""ring": { "slotSize": 1099511627776 }"#, "ring.slotSize"),
            (#""ring": { "slotSize": 9223372036854775800 }"#, "ring.slotSize"),
            (#""ring": { "slotSize": -8 }"#, "ring.slotSize"),
            (#""rdma": { "port": -1 }"#, "rdma.port"),
            (#""rdma": { "port": 256 }"#, "rdma.port"),
            (#""rdma": { "gidIndex": -3 }"#, "rdma.gidIndex"),
            (#""maxDestinations": 0"#, "maxDestinations"),
        ]
        for (json, key) in fileCases {
            let text = #"{ "groups": [ { "members": [ { "id": 0, "address": "10.0.0.1:7000" } ] } ], "#
                + #""senders": [ { "id": 100, "address": "10.0.0.9:7000" } ], \#(json) }"#
            let e = error(text)
            #expect(e?.key == key && e?.source == "cluster.json", "\(json): \(String(describing: e))")
        }
        let envCases: [(String, String, String)] = [
            ("RAMCAST_FAILURE_TIMEOUT_MS", huge, "failureDetection.timeoutMillis"),
            ("RAMCAST_FAILURE_TIMEOUT_MS", "-1", "failureDetection.timeoutMillis"),
            ("RAMCAST_HEARTBEAT_US", huge, "failureDetection.heartbeatMicros"),
            ("RAMCAST_RDMA_PORT", "-1", "rdma.port"),
            ("RAMCAST_GID_INDEX", "-1", "rdma.gidIndex"),
            ("RAMCAST_SLOT_SIZE", "1099511627776", "ring.slotSize"),
            ("RAMCAST_RING_SLOTS", "0", "ring.slots"),
            ("RAMCAST_INLINE_THRESHOLD", "-64", "inlineThreshold"),
        ]
        for (variable, value, key) in envCases {
            let e = error(Self.valid, env: [variable: value])
            #expect(e?.key == key && e?.source == "environment variable \(variable)", "\(variable)=\(value): \(String(describing: e))")
        }
        let flag = error(Self.valid, flags: ["failureDetection.timeoutMillis": huge], flagNames: ["failureDetection.timeoutMillis": "--failure-timeout-ms"])
        #expect(flag?.source == "flag --failure-timeout-ms" && flag?.key == "failureDetection.timeoutMillis")
        // The largest accepted values are kept exactly, not truncated.
        let most = try? parse(Self.valid, env: ["RAMCAST_FAILURE_TIMEOUT_MS": "86400000", "RAMCAST_HEARTBEAT_US": "3600000000"])
        #expect(most?.failureTimeout == 86_400_000_000_000 && most?.heartbeatInterval == 3_600_000_000_000)
    }

    @Test("a missing file names the path")
    func missingFile() {
        do {
            _ = try ClusterConfiguration.load(path: "/nonexistent/cluster.json", environment: [:])
            Issue.record("loaded a file that does not exist")
        } catch {
            #expect(error.source == "/nonexistent/cluster.json" && error.key == "(file)")
            #expect(error.reason == "cannot read: No such file or directory")
        }
    }
}
