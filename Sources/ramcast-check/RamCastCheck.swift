// ramcast-check DIR: checks a directory of delivery logs (see RamCastChecker/DeliveryLogFormat.swift).
// Exit status (README, "Exit status"): 0 clean, 1 a property is violated or --expect-messages does not
// match, 64 a bad command line, 65 a log directory that cannot be read or parsed.
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
            Exit status: 0 if clean, 1 if any property is violated (or --expect-messages does not match), \
            64 on a bad command line, 65 if the logs cannot be read or parsed (or there are none).
            """)

    @Argument(help: "Directory with cluster.json and the .jsonl logs.")
    var directory: String

    @Option(name: .long, help: "How many violations to print.")
    var show: Int = 20

    @Option(name: .long, help: "How many violations to keep per property (counts stay exact).")
    var keep: Int = 1000

    @Option(name: .long, help: "Fail unless the logs hold exactly this many multicast messages, each delivered by at least one process (catches a run that lost or never sent messages, which the properties alone cannot see).")
    var expectMessages: Int?

    func validate() throws {
        guard show >= 0 else { throw ValidationError("--show must not be negative, got \(show)") }
        guard keep >= 1 else { throw ValidationError("--keep must be at least 1, got \(keep)") }
        if let n = expectMessages, n < 0 { throw ValidationError("--expect-messages must not be negative, got \(n)") }
    }

    func run() throws {
        let loaded: (history: History, membership: Membership, quiescent: Bool)
        do {
            loaded = try DeliveryLog.load(directory: directory)
        } catch {
            printError("ramcast-check: input error: \(error)")
            throw ExitCode(65)  // EX_DATAERR
        }
        var options = CheckOptions()
        options.violationsInDescription = show
        options.maxViolationsPerProperty = keep
        let report = check(loaded.history, membership: loaded.membership, quiescent: loaded.quiescent, options: options)
        print("ramcast-check: \(directory)")
        print(report.description, terminator: "")
        var countMismatch = false
        if let expected = expectMessages {
            let counts = MessageCounts(loaded.history)
            countMismatch = counts.multicast != expected || counts.delivered != expected
            print("messages: \(counts.multicast) multicast, \(counts.delivered) delivered by some process; expected \(expected)"
                  + (countMismatch ? " (MISMATCH)" : ""))
        }
        if !report.isClean || countMismatch { throw ExitCode(1) }
    }
}

/// Distinct messages in a history: multicast (in the senders' logs) and delivered somewhere.
struct MessageCounts {
    var multicast: Int
    var delivered: Int

    init(_ history: History) {
        multicast = Set(history.multicasts.map(\.message)).count
        delivered = Set(history.deliverySequences.joined().map(\.message)).count
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
