// ramcast-check DIR: checks a directory of delivery logs (see RamCastChecker/DeliveryLogFormat.swift).
// Exit status: 0 clean, 1 violations, 2 input errors (64 for command-line usage errors, ArgumentParser's default).
import ArgumentParser
import RamCastChecker

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

@main
struct RamCastCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ramcast-check",
        abstract: "Check RamCast delivery logs against the atomic multicast specification.",
        discussion: """
            DIR holds cluster.json, deliveries-<process>.jsonl and multicasts-<sender>.jsonl. \
            Exit status: 0 if clean, 1 if any property is violated, 2 on input errors.
            """)

    @Argument(help: "Directory with cluster.json and the .jsonl logs.")
    var directory: String

    @Option(name: .long, help: "How many violations to print.")
    var show: Int = 20

    @Option(name: .long, help: "How many violations to keep per property (counts stay exact).")
    var keep: Int = 1000

    func run() throws {
        let loaded: (history: History, membership: Membership, quiescent: Bool)
        do {
            loaded = try DeliveryLog.load(directory: directory)
        } catch {
            printError("ramcast-check: input error: \(error)")
            throw ExitCode(2)
        }
        var options = CheckOptions()
        options.violationsInDescription = max(0, show)
        options.maxViolationsPerProperty = max(1, keep)
        let report = check(loaded.history, membership: loaded.membership, quiescent: loaded.quiescent, options: options)
        print("ramcast-check: \(directory)")
        print(report.description, terminator: "")
        if !report.isClean { throw ExitCode(1) }
    }
}

private func printError(_ text: String) {
    let bytes = Array((text + "\n").utf8)
    bytes.withUnsafeBytes { buffer in
        var offset = 0
        while offset < buffer.count {
            let written = write(2, buffer.baseAddress! + offset, buffer.count - offset)
            if written <= 0 { break }
            offset += written
        }
    }
}
