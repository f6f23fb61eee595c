import Foundation
import RamCastChecker
import Testing

@Suite("Delivery logs and identifiers")
struct DeliveryLogTests {
    // MARK: MessageID

    @Test func messageIDStringForm() {
        let id = MessageID(sender: 7, sequence: 42)
        #expect(id.description == "7.42")
        #expect(MessageID("7.42") == id)
        #expect(MessageID("4294967295.18446744073709551615") == MessageID(sender: .max, sequence: .max))
        for bad in [
            "", "7", "7.", ".42", "7.42.1", "a.1", "-1.2", " 1.2", "1.2 ", "4294967296.1", "1.18446744073709551616",
            "1,2",
        ] {
            #expect(MessageID(bad) == nil, "\(bad)")
        }
        #expect(MessageID(sender: 1, sequence: 9) < MessageID(sender: 2, sequence: 1))
        #expect(MessageID(sender: 2, sequence: 1) < MessageID(sender: 2, sequence: 10))
    }

    @Test func membershipRejectsOverlappingGroups() throws {
        #expect(throws: Membership.Error.processInTwoGroups(2, 0, 1)) {
            try Membership(groups: [0: [0, 1, 2], 1: [2, 3, 4]])
        }
        #expect(throws: Membership.Error.emptyGroup(1)) { try Membership(groups: [0: [0], 1: []]) }
        #expect(try Membership(groups: [0: [0, 1, 2, 3, 4]]).quorumSize(of: 0) == 3)
    }

    // MARK: Formatter

    @Test func formatterProducesExactLines() {
        let line = DeliveryLog.deliveryLine(
            process: 3, group: 1, message: MessageID(sender: 7, sequence: 42), destinations: [0, 1], timestamp: 1234)
        #expect(line == #"{"process":3,"group":1,"message":"7.42","destinations":[0,1],"timestamp":1234}"# + "\n")
        let withGroups = DeliveryLog.deliveryLine(
            process: 0, group: 0, message: MessageID(sender: 0, sequence: 0), destinations: [0],
            timestamp: .max, groupTimestamps: [GroupTimestamp(group: 0, timestamp: 10)])
        #expect(
            withGroups
                == #"{"process":0,"group":0,"message":"0.0","destinations":[0],"timestamp":18446744073709551615,"#
                + #""groupTimestamps":{"0":10}}"# + "\n")
        #expect(
            DeliveryLog.multicastLine(message: MessageID(sender: 9, sequence: 1), destinations: [2], sender: 9)
                == #"{"message":"9.1","destinations":[2],"sender":9}"# + "\n")
        var buffer: [UInt8] = []
        DeliveryLog.appendMulticastLine(to: &buffer, message: MessageID(sender: 1, sequence: 2), destinations: [])
        DeliveryLog.appendMulticastLine(to: &buffer, message: MessageID(sender: 1, sequence: 3), destinations: [0])
        #expect(String(decoding: buffer, as: UTF8.self).split(separator: "\n").count == 2)
    }

    // MARK: Reader

    func makeDirectory() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ramcast-check-\(UUID().uuidString)")
            .path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    func write(_ text: String, to dir: String, _ name: String) throws {
        try text.write(toFile: dir + "/" + name, atomically: true, encoding: .utf8)
    }

    /// Writes a random valid run with the formatter, reads it back, and compares event by event.
    @Test(arguments: [1, 2, 3, 4, 5])
    func roundTrip(seed: Int) throws {
        let run = RandomRun(seed: UInt64(seed) &* 31)
        let original = run.history(seed: UInt64(seed))
        let dir = try makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }

        var perSender: [ProcessID: [UInt8]] = [:]
        for mc in original.multicasts {
            DeliveryLog.appendMulticastLine(
                to: &perSender[mc.sender, default: []], message: mc.message, destinations: mc.destinations)
        }
        for (sender, bytes) in perSender {
            try Data(bytes).write(to: URL(fileURLWithPath: dir + "/" + DeliveryLog.multicastsFileName(sender: sender)))
        }
        for p in original.deliveringProcesses {
            var buffer: [UInt8] = []
            for d in original.deliveries(of: p) {
                let dst = original.multicasts.first { $0.message == d.message }!.destinations
                DeliveryLog.appendDeliveryLine(
                    to: &buffer, process: p, group: run.membership.group(of: p)!, message: d.message,
                    destinations: dst, timestamp: d.finalTimestamp, groupTimestamps: d.groupTimestamps)
            }
            try Data(buffer).write(to: URL(fileURLWithPath: dir + "/" + DeliveryLog.deliveriesFileName(process: p)))
        }
        try write(
            DeliveryLog.clusterFile(membership: run.membership, crashed: Array(run.crashed), quiescent: true), to: dir,
            DeliveryLog.clusterFileName)

        let loaded = try DeliveryLog.load(directory: dir)
        #expect(loaded.membership == run.membership)
        #expect(loaded.quiescent)
        #expect(loaded.history.crashed == original.crashed)
        #expect(
            Set(loaded.history.multicasts.map { "\($0.message)>\($0.destinations)" })
                == Set(original.multicasts.map { "\($0.message)>\($0.destinations)" }))
        #expect(Set(loaded.history.deliveringProcesses) == Set(original.deliveringProcesses))
        for p in original.deliveringProcesses {
            let a = loaded.history.deliveries(of: p)
            let b = original.deliveries(of: p)
            #expect(a.map(\.message) == b.map(\.message))
            #expect(a.map(\.finalTimestamp) == b.map(\.finalTimestamp))
            #expect(a.map(\.groupTimestamps) == b.map(\.groupTimestamps))
        }
        #expect(check(loaded.history, membership: loaded.membership, quiescent: loaded.quiescent).isClean)
    }

    func smallDirectory(crashed: [Int] = []) throws -> String {
        let dir = try makeDirectory()
        try write(#"{"groups": {"0": [0, 1, 2]}, "crashed": \#(crashed), "quiescent": false}"#, to: dir, "cluster.json")
        try write(
            #"{"message": "100.1", "destinations": [0]}"# + "\n" + #"{"message":"100.2","destinations":[0]}"# + "\n",
            to: dir, "multicasts-100.jsonl")
        return dir
    }

    func expectLoadError(_ dir: String, file: String, line: Int?, containing text: String) {
        do {
            _ = try DeliveryLog.load(directory: dir)
            Issue.record("expected an error in \(file)")
        } catch let error as DeliveryLogError {
            #expect(error.file == file)
            #expect(error.line == line)
            #expect(error.reason.contains(text), "\(error)")
            #expect(error.description.hasPrefix(line.map { "\(file):\($0): " } ?? "\(file): "))
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test func malformedLineNamesFileAndLine() throws {
        let dir = try smallDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let good = DeliveryLog.deliveryLine(
            process: 1, group: 0, message: mid("100.1"), destinations: [0], timestamp: 1)
        try write(
            good + "{\"process\": 1, \"group\": 0, \"message\": \"100.2\"\n" + good, to: dir, "deliveries-1.jsonl")
        expectLoadError(dir, file: "deliveries-1.jsonl", line: 2, containing: "not valid JSON")
    }

    @Test func missingFieldAndBadValues() throws {
        let dir = try smallDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try write(#"{"process":1,"group":0,"message":"100.1","timestamp":1}"# + "\n", to: dir, "deliveries-1.jsonl")
        expectLoadError(dir, file: "deliveries-1.jsonl", line: 1, containing: #"missing field "destinations""#)

        try write(
            "\n" + #"{"process":1,"group":0,"message":"100-1","destinations":[0],"timestamp":1}"# + "\n", to: dir,
            "deliveries-1.jsonl")
        expectLoadError(dir, file: "deliveries-1.jsonl", line: 2, containing: "not of the form sender.sequence")

        try write(
            #"{"process":1,"group":0,"message":"100.1","destinations":[0],"timestamp":"x"}"# + "\n", to: dir,
            "deliveries-1.jsonl")
        expectLoadError(
            dir, file: "deliveries-1.jsonl", line: 1, containing: #"field "timestamp": expected a non-negative integer"#
        )

        try write(
            #"{"process":2,"group":0,"message":"100.1","destinations":[0],"timestamp":1}"# + "\n", to: dir,
            "deliveries-1.jsonl")
        expectLoadError(dir, file: "deliveries-1.jsonl", line: 1, containing: "line says process 2")

        try write(
            #"{"process":1,"group":3,"message":"100.1","destinations":[0],"timestamp":1}"# + "\n", to: dir,
            "deliveries-1.jsonl")
        expectLoadError(dir, file: "deliveries-1.jsonl", line: 1, containing: "puts process 1 in group 0")
    }

    @Test func outOfRangeNumberNamesTheField() throws {
        let dir = try smallDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (value, shown) in [("-5", "-5"), ("1.5", "1.5"), ("1e30", "1e+30")] {
            try write(#"{"process":1,"group":0,"message":"100.1","destinations":[0],"timestamp":\#(value)}"# + "\n", to: dir, "deliveries-1.jsonl")
            expectLoadError(dir, file: "deliveries-1.jsonl", line: 1, containing: #"field "timestamp": expected a non-negative integer, got \#(shown)"#)
        }
        try write(#"{"process":1,"group":0,"message":"100.1","destinations":[0, -1],"timestamp":1}"# + "\n", to: dir, "deliveries-1.jsonl")
        expectLoadError(dir, file: "deliveries-1.jsonl", line: 1, containing: #"field "destinations[1]""#)
    }

    @Test func directoryWithoutDeliveryLogsIsAnError() throws {
        // It used to load as an empty history, which the checker reported CLEAN.
        let dir = try smallDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        expectLoadError(dir, file: dir, line: nil, containing: "no delivery logs")
    }

    @Test func loadsFromMemoryAsFromADirectory() throws {
        let cluster = #"{"groups": {"0": [0]}}"#
        let files = ["cluster.json": cluster, "multicasts-100.jsonl": #"{"message":"100.1","destinations":[0]}"# + "\n",
                     "deliveries-0.jsonl": DeliveryLog.deliveryLine(process: 0, group: 0, message: mid("100.1"), destinations: [0], timestamp: 1)]
        let loaded = try DeliveryLog.load(fileNames: Array(files.keys), directory: "memory") { files[$0].map { Data($0.utf8) } }
        #expect(loaded.history.multicasts.count == 1 && loaded.history.deliveryCount == 1)
    }

    @Test func clusterFileErrors() throws {
        let dir = try makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        expectLoadError(dir, file: "cluster.json", line: nil, containing: "missing")
        try write(#"{"groups": {"0": [0, 1], "1": [1, 2]}}"#, to: dir, "cluster.json")
        expectLoadError(dir, file: "cluster.json", line: nil, containing: "groups must be disjoint")
        try write(#"{"groups": {"a": [0]}}"#, to: dir, "cluster.json")
        expectLoadError(dir, file: "cluster.json", line: nil, containing: "not an integer")
        expectLoadError(dir + "/nope", file: dir + "/nope", line: nil, containing: "no such directory")
    }

    @Test func tornLastLineOfCrashedProcessIsANote() throws {
        let dir = try smallDirectory(crashed: [2])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let line1 = DeliveryLog.deliveryLine(
            process: 2, group: 0, message: mid("100.1"), destinations: [0], timestamp: 1)
        let line2 = DeliveryLog.deliveryLine(
            process: 2, group: 0, message: mid("100.2"), destinations: [0], timestamp: 2)
        try write(line1 + line2.prefix(25), to: dir, "deliveries-2.jsonl")
        let loaded = try DeliveryLog.load(directory: dir)
        #expect(loaded.quiescent == false)
        #expect(loaded.history.deliveries(of: 2).map(\.message) == [mid("100.1")])
        #expect(loaded.history.notes.count == 1)
        #expect(
            loaded.history.notes.first?.hasPrefix("deliveries-2.jsonl:2: skipped the unterminated last line") == true)
        let report = check(loaded.history, membership: loaded.membership, quiescent: loaded.quiescent)
        #expect(report.notes == loaded.history.notes)
        #expect(report.description.contains("note: deliveries-2.jsonl:2"))

        // The same torn line at a process that did not crash is an error.
        let other1 = DeliveryLog.deliveryLine(
            process: 1, group: 0, message: mid("100.1"), destinations: [0], timestamp: 1)
        let other2 = DeliveryLog.deliveryLine(
            process: 1, group: 0, message: mid("100.2"), destinations: [0], timestamp: 2)
        try write(other1 + other2.prefix(25), to: dir, "deliveries-1.jsonl")
        expectLoadError(dir, file: "deliveries-1.jsonl", line: 2, containing: "not valid JSON")
    }

    @Test func loadedViolationsAreFound() throws {
        // Process 0 delivers 100.2 before 100.1, process 1 the other way: the reader feeds the checker.
        let dir = try smallDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func line(_ p: ProcessID, _ m: String, _ ts: Timestamp) -> String {
            DeliveryLog.deliveryLine(process: p, group: 0, message: mid(m), destinations: [0], timestamp: ts)
        }
        try write(line(0, "100.2", 2) + line(0, "100.1", 1), to: dir, "deliveries-0.jsonl")
        try write(line(1, "100.1", 1) + line(1, "100.2", 2), to: dir, "deliveries-1.jsonl")
        try write("", to: dir, "deliveries-2.jsonl")
        let loaded = try DeliveryLog.load(directory: dir)
        let report = check(loaded.history, membership: loaded.membership, quiescent: loaded.quiescent)
        #expect(report.failedProperties == [.uniformPrefixOrder, .uniformAcyclicOrder, .deliveryOrder])
        #expect(report.status(of: .validity) == .skipped(reason: "run did not end quiescent"))
    }
}
