import Foundation

/// A JSON value with ordered object keys (so files read top-down: figures first, then details).
indirect enum JSON: Sendable {
    case null
    case bool(Bool)
    case int(Int)
    /// Non-finite numbers are written as null.
    case number(Double)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    func rendered(indent: Int = 0) -> String {
        var out = ""
        render(into: &out, indent: indent)
        return out
    }

    private func render(into out: inout String, indent: Int) {
        let pad = String(repeating: "  ", count: indent)
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .number(let d):
            if !d.isFinite { out += "null" } else if d == d.rounded(), abs(d) < 1e15 { out += String(Int(d)) } else {
                out += String(format: "%.6g", d)
            }
        case .string(let s): out += Self.quote(s)
        case .array(let items):
            // Arrays of scalars stay on one line.
            if items.allSatisfy({ if case .object = $0 { false } else if case .array = $0 { false } else { true } }) {
                out += "[" + items.map { $0.rendered() }.joined(separator: ", ") + "]"
            } else {
                out += "[\n"
                for (i, item) in items.enumerated() {
                    out += pad + "  "
                    item.render(into: &out, indent: indent + 1)
                    out += i + 1 < items.count ? ",\n" : "\n"
                }
                out += pad + "]"
            }
        case .object(let fields):
            if fields.isEmpty { out += "{}"; return }
            out += "{\n"
            for (i, (k, v)) in fields.enumerated() {
                out += pad + "  " + Self.quote(k) + ": "
                v.render(into: &out, indent: indent + 1)
                out += i + 1 < fields.count ? ",\n" : "\n"
            }
            out += pad + "}"
        }
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }

    /// Writes to `path`, or standard output for "-".
    func write(to path: String) throws {
        let text = rendered() + "\n"
        if path == "-" {
            FileHandle.standardOutput.write(Data(text.utf8))
        } else {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        }
    }
}

extension RunSpec {
    var json: JSON {
        .object([
            ("mode", .string(mode)),
            ("fabric", .string(fabric.rawValue)),
            ("fabric_detail", .string(fabricDescription)),
            ("groups", .int(groups)),
            ("processes", .int(processes)),
            ("destinations", .string(destinations.description)),
            ("destinations_mean", .number(destinations.mean)),
            ("senders", .int(senders)),
            ("steps", .int(steps)),
            ("single_group_fast_path", .bool(fastPath)),
            ("payload", .int(payload)),
            ("outstanding", .int(outstanding)),
            ("duration", messages == nil ? .number(duration) : .null),
            ("warmup", .number(warmup)),
            ("messages", messages.map { .int($0) } ?? .null),
            ("slots", .int(slots)),
            ("slot_size", .int(slotSize)),
            ("inline_threshold", .int(inlineThreshold)),
            ("signal_interval", .int(signalInterval)),
            ("send_queue_depth", .int(sendQueueDepth)),
            ("pollers", .int(pollers)),
            ("busy_poll", .bool(busyPoll)),
            ("nap_after_us", .int(napAfterMicros)),
            ("setup_seconds", .number(setupSeconds)),
            ("seed", .int(Int(truncatingIfNeeded: seed))),
            ("delivery_log", deliveryLog.map { .string($0) } ?? .null),
        ])
    }
}

extension BenchResult {
    /// The scripting contract: `messages_per_second`, `crashed_processes`, `failover_ms` keep their
    /// names; the rest may grow.
    var json: JSON {
        var fields: [(String, JSON)] = [
            ("tool", .string("ramcast-bench")),
            ("format", .int(1)),
        ]
        if let p = process {
            fields.append(("process", .object([("id", .int(Int(p.id))), ("role", .string(p.role))])))
        }
        fields += [
            ("messages_per_second", .number(messagesPerSecond)),
            ("megabytes_per_second", .number(megabytesPerSecond)),
            ("messages", .int(messages)),
            ("seconds", .number(seconds)),
            ("latency_us", latency.json),
            ("latency_point", .string(latencyPoint)),
            ("completion_latency_us", completion.json),
            ("writes_per_message", .object(writesPerRole.map { ($0.role, .number($0.value)) })),
        ]
        if let b = busiest {
            fields.append(("busiest_process", .object([
                ("id", .int(Int(b.process.id))), ("role", .string(b.process.role)),
                ("writes_per_second", .number(b.writesPerSecond)),
                ("writes_per_message", .number(b.writesPerRunMessage)),
            ])))
        } else {
            fields.append(("busiest_process", .null))
        }
        fields.append(("total_writes_per_second", .number(totalWritesPerSecond)))
        if let d = deliveriesPerSecond { fields.append(("deliveries_per_second", .number(d))) }
        fields += [
            ("cpu", .object([("percent_of_wall", .number(cpu.percent)), ("user_seconds", .number(cpu.user)),
                             ("system_seconds", .number(cpu.system)), ("wall_seconds", .number(cpu.wall))])),
            ("crashed_processes", .array(crashedProcesses.map { .int(Int($0)) })),
            ("failover_ms", failoverMs.map { .number($0) } ?? .null),
            ("messages_per_second_before_crash", messagesPerSecondAroundCrash.map { .number($0.before) } ?? .null),
            ("messages_per_second_after_crash", messagesPerSecondAroundCrash.map { .number($0.after) } ?? .null),
            ("processes", .array(processes.map(\.json))),
            ("config", spec.json),
        ]
        return .object(fields)
    }
}
