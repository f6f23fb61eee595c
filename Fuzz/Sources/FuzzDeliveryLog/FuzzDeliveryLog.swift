import CFuzzerDriver
import Foundation
import RamCastChecker

/// The files of a log directory, in this order, separated by NUL bytes in one input: the fuzzer
/// mutates cluster.json and the logs together. Missing trailing parts are absent files.
let fileNames = ["cluster.json", "deliveries-0.jsonl", "multicasts-100.jsonl", "deliveries-1.jsonl",
                 "deliveries-1000002.jsonl", "multicasts-101.jsonl"]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDeliveryLog(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let bytes, count > 0 else { return 0 }
    let input = UnsafeBufferPointer(start: bytes, count: count)
    var files: [String: Data] = [:]
    for (i, part) in input.split(separator: 0, maxSplits: fileNames.count - 1, omittingEmptySubsequences: false).enumerated() {
        files[fileNames[i]] = Data(part)
    }
    let loaded: (history: History, membership: Membership, quiescent: Bool)
    do {
        loaded = try DeliveryLog.load(fileNames: Array(files.keys), directory: "fuzz") { files[$0] }
    } catch let error as DeliveryLogError {
        precondition(!error.reason.isEmpty)
        return 0
    } catch {
        fatalError("load threw something other than a DeliveryLogError: \(error)")
    }
    // Whatever loads, the checker must judge without trapping.
    var options = CheckOptions()
    options.maxViolationsPerProperty = 10
    _ = check(loaded.history, membership: loaded.membership, quiescent: loaded.quiescent, options: options).description
    return 0
}

/// SwiftPM calls an executable target's entry point `FuzzDeliveryLog_main` (see CFuzzerDriver.h).
@_cdecl("FuzzDeliveryLog_main")
public func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzDeliveryLog(data, size) }
}
