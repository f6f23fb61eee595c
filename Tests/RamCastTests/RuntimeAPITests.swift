import Foundation
import Logging
import RamCast
import RamCastChecker
import RamCastFabric
import RamCastInProcess
import RamCastProtocol
import Testing

/// The public API end to end over the in-process fabric: one runtime hosts the whole cluster.
@Suite("Runtime API")
struct RuntimeAPITests {
    static func configuration(groups: Int = 2, senders: Int = 2) -> ClusterConfiguration {
        var next: UInt32 = 0
        let g = (0..<groups).map { _ in
            (0..<3).map { _ in defer { next += 1 }; return ClusterConfiguration.Process(id: NodeID(next), host: "inproc", port: UInt16(next)) }
        }
        let s = (0..<senders).map { i in ClusterConfiguration.Process(id: NodeID(100 + UInt32(i)), host: "inproc", port: UInt16(100 + i)) }
        var c = ClusterConfiguration(groups: g, senders: s)
        c.slotSize = 256
        c.slotsPerRing = 4
        return c
    }

    final class Counter: @unchecked Sendable {
        let lock = NSLock()
        var byProcess: [NodeID: [RamCastProtocol.MessageID]] = [:]
        func add(_ p: NodeID, _ id: RamCastProtocol.MessageID) { lock.lock(); byProcess[p, default: []].append(id); lock.unlock() }
        func snapshot() -> [NodeID: [RamCastProtocol.MessageID]] { lock.lock(); defer { lock.unlock() }; return byProcess }
    }

    static func runtime(_ config: ClusterConfiguration, counter: Counter, logDirectory: String? = nil) throws -> RamCastRuntime {
        let fabric = InProcessFabric(schedule: .immediate)
        let all = config.allProcesses.map(\.id)
        return try RamCastRuntime(configuration: config, local: all, logger: Logger(label: "test"),
                                  deliveryLogDirectory: logDirectory,
                                  onDelivery: { d in counter.add(d.process, d.id) }) { (id: NodeID) throws(FabricError) -> any FabricEndpoint in
            try fabric.makeEndpoint(id)
        }
    }

    @Test("multicast returns once delivered everywhere; every member delivers, in one order per group")
    func multicastAndDeliver() async throws {
        let config = Self.configuration()
        let counter = Counter()
        let rt = try Self.runtime(config, counter: counter)
        rt.start()
        defer { rt.shutdown() }
        var sent: [RamCastProtocol.MessageID: [RamCastProtocol.GroupID]] = [:]
        for i in 0..<60 {
            let dst: [RamCastProtocol.GroupID] = i % 3 == 0 ? [GroupID(0), GroupID(1)] : [GroupID(UInt8(i % 2))]
            let id = try await rt.multicast(Array("msg \(i)".utf8), to: dst, from: NodeID(100 + UInt32(i % 2)), waitFor: .deliveredEverywhere)
            sent[id] = dst
            // Delivered everywhere means every member's callback already ran.
            let seen = counter.snapshot()
            for g in dst {
                for p in config.groups[Int(g.rawValue)] { #expect(seen[p.id, default: []].contains(id), "\(p.id) has not delivered \(id)") }
            }
        }
        let seen = counter.snapshot()
        for group in config.groups {
            let first = seen[group[0].id, default: []]
            #expect(first.count == sent.values.filter { $0.contains(GroupID(UInt8(config.groups.firstIndex(of: group)!))) }.count)
            for p in group.dropFirst() { #expect(seen[p.id, default: []] == first) }
        }
    }

    @Test("bad input is refused before anything is written, and nothing accepted is lost")
    func badInput() async throws {
        let config = Self.configuration()
        let counter = Counter()
        let rt = try Self.runtime(config, counter: counter)
        rt.start()
        defer { rt.shutdown() }
        var good: [RamCastProtocol.MessageID] = []
        for i in 0..<5 { good.append(try await rt.multicast([UInt8(i)], to: [GroupID(0)])) }
        await #expect(throws: RamCastError.self) { try await rt.multicast(Array(repeating: 0, count: 10_000), to: [GroupID(0)]) }
        do {
            _ = try await rt.multicast([1], to: [GroupID(7)])
            Issue.record("an unknown group was accepted")
        } catch let RamCastError.multicast(e) {
            #expect(e == .unknownGroup(GroupID(7), groupCount: 2))
            #expect("\(e)".contains("group 7 does not exist"))
        }
        do {
            _ = try await rt.multicast([1], to: [])
            Issue.record("an empty destination set was accepted")
        } catch let RamCastError.multicast(e) {
            #expect(e == .noDestinations)
        }
        await #expect(throws: RamCastError.self) { try await rt.multicast([1], to: [GroupID(0)], from: NodeID(3)) }
        for i in 0..<5 { good.append(try await rt.multicast([UInt8(i)], to: [GroupID(0)], waitFor: .deliveredEverywhere)) }
        let seen = counter.snapshot()
        for p in config.groups[0] { #expect(seen[p.id, default: []] == good, "\(p.id)") }
    }

    @Test("deliveries as an AsyncSequence")
    func asyncSequence() async throws {
        let config = Self.configuration(groups: 1, senders: 1)
        let rt = try Self.runtime(config, counter: Counter())
        rt.start()
        defer { rt.shutdown() }
        let id = try await rt.multicast(Array("hello".utf8), to: [GroupID(0)])
        var got: [DeliveredMessage] = []
        for await d in rt.deliveries {
            got.append(d)
            if got.count == 3 { break }
        }
        #expect(Set(got.map(\.process)) == Set(config.groups[0].map(\.id)))
        #expect(got.allSatisfy { $0.id == id && $0.payload == Array("hello".utf8) && $0.destinations == [GroupID(0)] })
    }

    @Test("delivery logs written by the runtime pass ramcast-check's loader and checker")
    func deliveryLogs() async throws {
        let dir = NSTemporaryDirectory() + "ramcast-log-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = Self.configuration()
        let rt = try Self.runtime(config, counter: Counter(), logDirectory: dir)
        rt.start()
        for i in 0..<40 {
            let dst: [RamCastProtocol.GroupID] = i % 4 == 0 ? [GroupID(1), GroupID(0)] : [GroupID(UInt8(i % 2))]
            try await rt.multicast([UInt8(i)], to: dst, from: NodeID(100 + UInt32(i % 2)), waitFor: .deliveredEverywhere)
        }
        rt.shutdown()
        let (history, membership, quiescent) = try DeliveryLog.load(directory: dir)
        let report = check(history, membership: membership, quiescent: quiescent)
        #expect(report.isClean, "\(report)")
        #expect(report.multicastCount == 40)
        #expect(report.deliveryCount == 40 / 4 * 6 + 30 * 3)
        let line = try String(contentsOfFile: dir + "/deliveries-3.jsonl", encoding: .utf8).split(separator: "\n").first.map(String.init) ?? ""
        for key in ["\"process\":3", "\"group\":1", "\"message\":\"", "\"destinations\":[", "\"timestamp\":"] {
            #expect(line.contains(key), "\(line) lacks \(key)")
        }
    }
}
