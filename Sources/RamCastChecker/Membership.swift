/// The cluster: k disjoint groups, each a list of member processes. Clients are not members.
public struct Membership: Sendable, Equatable {
    public enum Error: Swift.Error, Equatable, CustomStringConvertible {
        case processInTwoGroups(ProcessID, GroupID, GroupID)
        case duplicateMember(ProcessID, GroupID)
        case emptyGroup(GroupID)

        public var description: String {
            switch self {
            case .processInTwoGroups(let p, let g, let h):
                return "process \(p) is listed in group \(g) and in group \(h); groups must be disjoint"
            case .duplicateMember(let p, let g): return "process \(p) is listed twice in group \(g)"
            case .emptyGroup(let g): return "group \(g) has no members"
            }
        }
    }

    /// Group id → members, sorted by process id.
    public private(set) var groups: [GroupID: [ProcessID]]
    private var groupOfProcess: [ProcessID: GroupID]

    public init(groups: [GroupID: [ProcessID]]) throws(Membership.Error) {
        var sorted: [GroupID: [ProcessID]] = [:]
        var owner: [ProcessID: GroupID] = [:]
        for g in groups.keys.sorted() {
            let members = groups[g]!.sorted()
            if members.isEmpty { throw .emptyGroup(g) }
            for (i, p) in members.enumerated() {
                if i > 0, members[i - 1] == p { throw .duplicateMember(p, g) }
                if let other = owner[p] { throw .processInTwoGroups(p, other, g) }
                owner[p] = g
            }
            sorted[g] = members
        }
        self.groups = sorted
        self.groupOfProcess = owner
    }

    /// Group ids in increasing order.
    public var groupIDs: [GroupID] { groups.keys.sorted() }

    /// All member processes, in increasing order.
    public var processes: [ProcessID] { groupOfProcess.keys.sorted() }

    public func members(of group: GroupID) -> [ProcessID] { groups[group] ?? [] }

    /// The group of a member process, nil for a client or unknown process.
    public func group(of process: ProcessID) -> GroupID? { groupOfProcess[process] }

    /// Quorum size of a group: f+1 for n = 2f+1 (a strict majority in general).
    public func quorumSize(of group: GroupID) -> Int { members(of: group).count / 2 + 1 }
}
