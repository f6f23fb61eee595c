import ArgumentParser
import RamCastSimulation

/// Replays or explores seeded simulations from the command line: `ramcast-sim --seed 42` reproduces
/// exactly the run a failing test printed.
struct RamCastSim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ramcast-sim",
        abstract: "Run seeded, randomized RamCast cluster simulations and check every run.")

    @Option(help: "Run this one seed and print its outcome.")
    var seed: UInt64?

    @Option(help: "First seed of an exploration.")
    var from: UInt64 = 1

    @Option(help: "Seeds to explore (ignored with --seed).")
    var count: Int = 1000

    @Option(help: "Explore for this many seconds instead of a fixed count.")
    var seconds: Double?

    @Flag(help: "Print every run, not only failures.")
    var verbose = false

    @Flag(help: "Also crash group members (at most f per group, leaders included) at random moments.")
    var crashes = false
    @Flag(help: "With --crashes: half of the crashed members restart with empty memory and rejoin.")
    var restarts = false
    @Flag(help: "Start every counter (message sequences, log positions, ballots, clocks) just below the limit it used to wrap at.")
    var nearLimits = false

    @Flag(help: "Implies --crashes --restarts: members also crash again after they rejoined, and groups lose more than f members over a run (never more than f at once).")
    var cycles = false

    @Flag(help: "With --crashes: do not land writes inside processes' rounds (replays crash schedules found before driver races existed).")
    var noRaces = false

    func validate() throws {
        guard count >= 0 else { throw ValidationError("--count must not be negative, got \(count)") }
        if let seconds, !(seconds.isFinite && seconds > 0 && seconds <= 365 * 86_400) {
            throw ValidationError("--seconds must be a number of seconds in (0, 31536000], got \(seconds)")
        }
        guard seed != nil || seconds != nil || UInt64.max - from >= UInt64(count) else {
            throw ValidationError("--from \(from) with --count \(count) runs past the last seed, \(UInt64.max)")
        }
    }

    mutating func run() throws {
        if cycles {
            crashes = true
            restarts = true
        }
        if let seed {
            let outcome = try Simulation.run(seed: seed, crashes: crashes, restarts: restarts, nearLimits: nearLimits,
                                             cycles: cycles, races: (crashes || cycles) && !noRaces)
            print(outcome)
            print("writes per message per role: \(outcome.writesPerRole.sorted { $0.key < $1.key }.map { "\($0.key) \(String(format: "%.2f", $0.value))" }.joined(separator: ", "))")
            if !outcome.passed { throw ExitCode(1) }
            return
        }
        var failed: [UInt64] = []
        let clock = ContinuousClock()
        let start = clock.now
        var s = from
        var runs = 0
        var deliveries = 0
        let flags = (cycles ? " --cycles" : (crashes ? " --crashes" : "") + (restarts ? " --restarts" : ""))
            + (nearLimits ? " --near-limits" : "") + (noRaces ? " --no-races" : "")
        // With --cycles: seeds in which a member crashed more than once, and in which a group lost
        // more than f members, so that a report shows the schedules really did that.
        var repeated = 0
        var beyondF = 0
        // `s < .max`: an exploration from near the last seed stops there rather than wrapping.
        while s < .max, seconds.map({ clock.now - start < .seconds($0) }) ?? (runs < count) {
            defer {
                runs += 1
                s += 1
            }
            // An error out of a run (a driver's, say) fails that seed; the exploration goes on.
            let outcome: Simulation.Outcome
            do {
                outcome = try Simulation.run(seed: s, crashes: crashes, restarts: restarts, nearLimits: nearLimits,
                                             cycles: cycles, races: (crashes || cycles) && !noRaces)
            } catch {
                print("seed \(s): error: \(error)")
                failed.append(s)
                print("replay: ramcast-sim --seed \(s)\(flags)")
                continue
            }
            if verbose || !outcome.passed { print(outcome) }
            if !outcome.passed {
                failed.append(s)
                print("replay: ramcast-sim --seed \(s)\(flags)")
            }
            deliveries += outcome.delivered
            if outcome.crashesPerMember.values.contains(where: { $0 > 1 }) { repeated += 1 }
            let shape = outcome.shape
            if (0..<shape.groups).contains(where: { g in
                (0..<shape.groupSize).reduce(0) { $0 + outcome.crashesPerMember[g * shape.groupSize + $1, default: 0] } > (shape.groupSize - 1) / 2
            }) { beyondF += 1 }
        }
        print("simulation: seeds \(from)..<\(s), \(deliveries) deliveries checked, in \(clock.now - start)")
        if cycles { print("cycles: \(repeated) seeds crashed a member more than once, \(beyondF) crashed more than f members of a group") }
        print("\(runs - failed.count) passed, \(failed.count) failed")
        if !failed.isEmpty {
            print("failing seeds: \(failed.map(String.init).joined(separator: " "))")
            throw ExitCode(1)
        }
    }
}

RamCastSim.main()
