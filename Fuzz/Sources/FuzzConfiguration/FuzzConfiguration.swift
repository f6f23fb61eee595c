import CFuzzerDriver
import Foundation
import RamCast
import RamCastProtocol

/// One input: the cluster file's bytes, optionally followed by a NUL and `VARIABLE=value` lines that
/// become the environment (so the overrides are fuzzed with the file).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfiguration(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let bytes, count > 0 else { return 0 }
    let input = UnsafeBufferPointer(start: bytes, count: count)
    let split = input.firstIndex(of: 0) ?? count
    let file = Data(input[..<split])
    var environment: [String: String] = [:]
    if split < count {
        for line in String(decoding: input[(split + 1)...], as: UTF8.self).split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            environment[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
    }
    let config: ClusterConfiguration
    do {
        config = try ClusterConfiguration.parse(file, source: "fuzz.json", environment: environment)
    } catch {
        // Every refusal names a key; an empty one would be a message nobody can act on.
        precondition(!error.key.isEmpty && !error.reason.isEmpty, "an error without a key or reason: \(error)")
        return 0
    }
    // Accepted means usable: the layout exists and its sizes are computed without overflow.
    let layout: Layout
    do {
        layout = try Layout(config.protocolConfig)
    } catch {
        fatalError("accepted a configuration the layout refuses: \(error)")
    }
    let ids = layout.servers + layout.config.senders
    _ = ProcessNode.registeredBytes(ids, layout: layout, sendQueueDepth: 128)
    precondition(config.failureTimeout > config.heartbeatInterval)
    return 0
}

/// SwiftPM calls an executable target's entry point `FuzzConfiguration_main` (see CFuzzerDriver.h).
@_cdecl("FuzzConfiguration_main")
public func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzConfiguration(data, size) }
}
