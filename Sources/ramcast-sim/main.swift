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
    @Flag(help: "With --crashes: do not land writes inside processes' rounds (replays crash schedules found before driver races existed).")
    var noRaces = false

    mutating func run() throws {
        if let seed {
            let outcome = try Simulation.run(seed: seed, crashes: crashes, restarts: restarts, races: crashes && !noRaces)
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
        let flags = (crashes ? " --crashes" : "") + (restarts ? " --restarts" : "") + (noRaces ? " --no-races" : "")
        while seconds.map({ clock.now - start < .seconds($0) }) ?? (runs < count) {
            defer {
                runs += 1
                s += 1
            }
            // An error out of a run (a driver's, say) fails that seed; the exploration goes on.
            let outcome: Simulation.Outcome
            do {
                outcome = try Simulation.run(seed: s, crashes: crashes, restarts: restarts, races: crashes && !noRaces)
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
        }
        print("simulation: seeds \(from)..<\(s), \(deliveries) deliveries checked, in \(clock.now - start)")
        print("\(runs - failed.count) passed, \(failed.count) failed")
        if !failed.isEmpty {
            print("failing seeds: \(failed.map(String.init).joined(separator: " "))")
            throw ExitCode(1)
        }
    }
}

RamCastSim.main()
