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

    func parse(_ text: String, env: [String: String] = [:], flags: [String: String] = [:]) throws(ConfigurationError) -> ClusterConfiguration {
        try ClusterConfiguration.parse(Data(text.utf8), source: "cluster.json", environment: env, overrides: flags)
    }

    func error(_ text: String, env: [String: String] = [:], flags: [String: String] = [:]) -> ConfigurationError? {
        do { _ = try parse(text, env: env, flags: flags); return nil } catch { return error }
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
        #expect(error(Self.valid, env: ["RAMCAST_RING_SLOTS": "many"])?.description == "environment variable RAMCAST_RING_SLOTS: ring.slots: expected an integer, got 'many'")
        #expect(error(Self.valid, flags: ["ring.slots": "0"])?.description == "cluster.json: ring.slots: must be in 1...32768, got 0")
        #expect(error(Self.valid, flags: ["colour": "blue"])?.description == "flags: colour: not a key that can be overridden")
    }

    @Test("a missing file names the path")
    func missingFile() {
        do {
            _ = try ClusterConfiguration.load(path: "/nonexistent/cluster.json", environment: [:])
            Issue.record("loaded a file that does not exist")
        } catch {
            #expect(error.source == "/nonexistent/cluster.json" && error.key == "(file)")
        }
    }
}
