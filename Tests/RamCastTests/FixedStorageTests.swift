import RamCastFabric
@testable import RamCastProtocol
import Testing

/// The engines' fixed-size storage (FixedTable, FixedList, FixedCell), the order heap built on it,
/// and Layout's dense server lookups, checked against plain arrays and dictionaries.
@Suite("Fixed storage")
struct FixedStorageTests {
    @Test("FixedTable reads and writes in place like an array")
    func table() {
        let t = FixedTable(repeating: 0, count: 5)
        defer { t.deallocate() }
        #expect(t.count == 5 && t.array == [0, 0, 0, 0, 0])
        for i in t.indices { t[i] = i * i }
        t[4] += 1
        #expect(t.array == [0, 1, 4, 9, 17])
        #expect(Array(t.prefix(upTo: 2)) == [0, 1])
        t.fill(with: 7)
        #expect(t.allSatisfy { $0 == 7 })
        let u = FixedTable(["a", "b"])
        defer { u.deallocate() }
        u[1] += "c"
        #expect(u.array == ["a", "bc"])
    }

    @Test("FixedList appends, removes and swaps like an array, within its capacity")
    func list() {
        let l = FixedList<Int>(capacity: 4)
        defer { l.deallocate() }
        var reference: [Int] = []
        for v in [3, 1, 4, 1] { l.append(v); reference.append(v) }
        #expect(l.array == reference && l.count == l.capacity)
        l.swapAt(0, 3); reference.swapAt(0, 3)
        #expect(l.removeLast() == reference.removeLast())
        #expect(l.array == reference)
        l.removeAll()
        #expect(l.isEmpty)
        l.append(9)
        #expect(l.array == [9])
    }

    @Test("FixedCell holds a value in place")
    func cell() {
        let c = FixedCell<Set<Int>>([])
        defer { c.deallocate() }
        c.address.pointee.insert(3)
        #expect(c.readAddress.pointee == [3])
    }

    @Test("OrderHeap pops by (timestamp, id), whatever the push order")
    func heap() {
        let h = OrderHeap(capacity: 64)
        defer { h.deallocate() }
        var rng = SplitMix64(seed: 7)
        var live: [(ts: UInt64, id: UInt64)] = []   // what the heap holds, unordered
        func popAndCompare() {
            let top = h.top!
            let min = live.indices.min { live[$0].ts != live[$1].ts ? live[$0].ts < live[$1].ts : live[$0].id < live[$1].id }!
            #expect(top.ts == live[min].ts && top.id == live[min].id)
            live.remove(at: min)
            h.pop()
            h._checkInvariants()
        }
        for round in 0..<2_000 {
            if live.count < 64, round % 3 != 2 || live.isEmpty {
                let ts = rng.next() % 16, id = rng.next() % 16
                h.push(ts: ts, id: id, index: Int32(round))
                live.append((ts, id))
            } else {
                popAndCompare()
            }
        }
        while !live.isEmpty { popAndCompare() }
        #expect(h.top == nil && h.count == 0)
    }

    @Test("Layout's dense server lookups agree with its dictionaries")
    func layoutLookups() throws {
        let groups = [[NodeID(7), NodeID(3), NodeID(11)], [NodeID(0)], [NodeID(20), NodeID(21), NodeID(22), NodeID(23), NodeID(24)]]
        let layout = try Layout(ProtocolConfig(groups: groups, senders: [NodeID(100), NodeID(5)]))
        for (g, members) in groups.enumerated() {
            let gid = RamCastProtocol.GroupID(UInt8(g))
            #expect(layout.groupSize(gid) == members.count)
            #expect(layout.f(of: gid) == (members.count - 1) / 2)
            #expect(layout.servers(of: gid).map { layout.servers[$0] } == members)
            for (m, node) in members.enumerated() {
                #expect(layout.serverIndex(group: gid, member: m) == layout.serverIndexOf[node])
            }
        }
    }
}
