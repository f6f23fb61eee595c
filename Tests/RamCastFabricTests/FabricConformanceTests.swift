import RamCastFabric
import RamCastFabricConformance
import RamCastInProcess
import Testing

/// The shared fabric conformance suite on the in-process fabric: once with immediate delivery, and
/// under seeded schedules that reorder connections and tear multi-word writes.
@Suite("Fabric conformance: in-process")
struct InProcessConformanceTests {
    @Test("immediate schedule", arguments: FabricConformance.Scenario.allCases)
    func immediate(_ scenario: FabricConformance.Scenario) throws {
        try FabricConformance.run(scenario, on: InProcessHarness(schedule: .immediate))
    }

    @Test("seeded schedules", arguments: FabricConformance.Scenario.allCases, [UInt64(1), 2, 0xBAD5EED])
    func seeded(_ scenario: FabricConformance.Scenario, seed: UInt64) throws {
        try FabricConformance.run(scenario, on: InProcessHarness(schedule: .seeded(seed, tearProbability: 0.5)))
    }
}
