/// The properties and invariants the checker verifies (spec §2 and §11).
public enum Property: String, CaseIterable, Sendable, CustomStringConvertible {
    case integrity = "integrity"
    case validity = "validity"
    case uniformAgreement = "uniform-agreement"
    case uniformPrefixOrder = "uniform-prefix-order"
    case uniformAcyclicOrder = "uniform-acyclic-order"
    /// A new incarnation (`History.recordJoin`) joins consistently: it is a member of a group, its cut names a
    /// message that a member of its group delivered, and it delivers nothing at or before its cut (the state
    /// it got up to the cut already includes those messages). Skipped when the history records no join.
    case joinCut = "join-cut"
    /// I1: every deliverer of m reports the same final ts (and the same per-group timestamps).
    case sameTimestamps = "I1-same-timestamps"
    /// I2: each process delivers in strictly increasing (finalTs, messageId) order.
    case deliveryOrder = "I2-delivery-order"
    /// I3: per (group, ballot), leader write seq is dense and increasing; proposal ts strictly increases.
    case leaderSequence = "I3-leader-sequence"
    /// I4: a quorum-acked ts_g(m) is re-proposed unchanged by every later ballot (Paxos safety).
    case quorumTimestampStable = "I4-quorum-ts-stable"
    /// I5: Skeen monotonicity: after propagating ts_h(m) at seq s, every own proposal at seq > s is larger.
    case skeenMonotonicity = "I5-skeen-monotonicity"
    /// I6: a follower acts on seq s of a (group, ballot) only right after s−1.
    case followerSequence = "I6-follower-sequence"

    public var description: String { rawValue }

    /// Liveness properties: only meaningful after a fault-free quiescent phase.
    public var isLiveness: Bool { self == .validity || self == .uniformAgreement }
}

/// One violation of one property, with a human-readable explanation naming messages, processes, positions.
public struct Violation: Sendable, CustomStringConvertible, Equatable {
    public var property: Property
    public var message: String
    /// The message ids involved (for programmatic inspection; the text names them too).
    public var messages: [MessageID]
    /// The processes involved.
    public var processes: [ProcessID]

    public init(property: Property, message: String, messages: [MessageID] = [], processes: [ProcessID] = []) {
        self.property = property
        self.message = message
        self.messages = messages
        self.processes = processes
    }

    public var description: String { "[\(property)] \(message)" }
}

public enum PropertyStatus: Sendable, Equatable, CustomStringConvertible {
    case passed
    case failed(violations: Int)
    case skipped(reason: String)

    public var description: String {
        switch self {
        case .passed: return "PASS"
        case .failed(let n): return "FAIL (\(n) violation\(n == 1 ? "" : "s"))"
        case .skipped(let reason): return "SKIPPED (\(reason))"
        }
    }
}

public struct CheckOptions: Sendable {
    /// Violations kept per property (the count is always exact). Bounds memory on badly broken runs.
    public var maxViolationsPerProperty: Int = 1000
    /// Violations listed by `CheckReport.description`.
    public var violationsInDescription: Int = 20
    public init() {}
}

public struct CheckReport: Sendable, CustomStringConvertible {
    /// Kept violations, grouped by property in `Property.allCases` order.
    public var violations: [Violation]
    /// Exact number of violations per property (may exceed the kept ones).
    public var violationCounts: [Property: Int]
    public var statuses: [Property: PropertyStatus]
    public var notes: [String]
    /// Distinct message ids multicast or delivered.
    public var messageCount: Int
    public var multicastCount: Int
    public var deliveryCount: Int
    /// Group members plus any other process that delivered.
    public var processCount: Int
    public var groupCount: Int
    public var crashedCount: Int
    public var quiescent: Bool
    var violationsInDescription: Int

    public var isClean: Bool { violationCounts.values.allSatisfy { $0 == 0 } }

    public var totalViolations: Int { violationCounts.values.reduce(0, +) }

    public func violations(of property: Property) -> [Violation] { violations.filter { $0.property == property } }

    public func status(of property: Property) -> PropertyStatus { statuses[property] ?? .passed }

    /// The properties that have at least one violation.
    public var failedProperties: Set<Property> { Set(violationCounts.filter { $0.value > 0 }.keys) }

    public var summary: String {
        var out = "processes: \(processCount) in \(groupCount) group\(groupCount == 1 ? "" : "s"), "
        out += "messages: \(messageCount) (\(multicastCount) multicasts), deliveries: \(deliveryCount), "
        out += "crashed: \(crashedCount), quiescent: \(quiescent ? "yes" : "no")\n"
        let width = Property.allCases.map(\.rawValue.count).max()!
        for property in Property.allCases {
            let name = property.rawValue
            out += "  " + name + String(repeating: " ", count: width - name.count + 2) + "\(status(of: property))\n"
        }
        return out
    }

    /// Up to `limit` violations, spread over the failing properties so one noisy property does not hide
    /// the others, in `Property.allCases` order.
    public func sampleViolations(limit: Int) -> [Violation] {
        let failing = Property.allCases.filter { p in violations.contains { $0.property == p } }
        guard !failing.isEmpty, limit > 0 else { return [] }
        let quota = max(1, limit / failing.count)
        var taken: [Property: Int] = [:]
        var chosen = [Bool](repeating: false, count: violations.count)
        var count = 0
        for (i, v) in violations.enumerated() where count < limit && taken[v.property, default: 0] < quota {
            taken[v.property, default: 0] += 1
            chosen[i] = true
            count += 1
        }
        for i in violations.indices where count < limit && !chosen[i] {
            chosen[i] = true
            count += 1
        }
        return violations.indices.filter { chosen[$0] }.map { violations[$0] }
    }

    public var description: String {
        var out = summary
        for note in notes { out += "note: \(note)\n" }
        let total = totalViolations
        if total == 0 {
            out += "CLEAN: no violations\n"
        } else {
            let shown = sampleViolations(limit: violationsInDescription)
            out += "\(total) violation\(total == 1 ? "" : "s")"
            out += shown.count < total ? " (\(shown.count) shown):\n" : ":\n"
            for v in shown { out += "  \(v)\n" }
        }
        return out
    }
}
