/// The cluster: k disjoint groups, each a list of member processes. Clients are not members.
public struct Membership: Sendable, Equatable {
    public enum Error: Swift.Error, Equatable, CustomStringConvertible {
        case processInTwoGroups(ProcessID, GroupID, GroupID)
        case duplicateMember(ProcessID, GroupID)
        case emptyGroup(GroupID)
        /// `addMember(_:to:)` named a group the membership does not have.
        case unknownGroup(GroupID)

        public var description: String {
            switch self {
            case .processInTwoGroups(let p, let g, let h):
                return "process \(p) is listed in group \(g) and in group \(h); groups must be disjoint"
            case .duplicateMember(let p, let g): return "process \(p) is listed twice in group \(g)"
            case .emptyGroup(let g): return "group \(g) has no members"
            case .unknownGroup(let g): return "group \(g) is not in the membership"
            }
        }
    }

    /// Group id → members, sorted by process id.
    public private(set) var groups: [GroupID: [ProcessID]]
    private var groupOfProcess: [ProcessID: GroupID]
    /// Group id → n, the member count it was configured with. A new incarnation added by `addMember` takes
    /// the seat of a crashed member, so it does not change n (see `size(of:)`).
    private var seats: [GroupID: Int]

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
        self.seats = sorted.mapValues(\.count)
    }

    /// Adds `process` to the existing `group`: a restarted member that came back as a new incarnation, with a
    /// fresh process id (it recovers no delivered history; `History.recordJoin(_:after:)` records its cut).
    ///
    /// The new incarnation takes the seat of the crashed one, so the group's size n, and with it its quorum
    /// size, stay as configured: counting the crashed incarnation and its successor as two seats would raise
    /// the quorum and silently weaken I4.
    ///
    /// - Throws: `.duplicateMember` if `process` is already in `group`, `.processInTwoGroups` if it is in
    ///   another group, `.unknownGroup` if `group` does not exist (there is no member to restart).
    public mutating func addMember(_ process: ProcessID, to group: GroupID) throws(Membership.Error) {
        guard var members = groups[group] else { throw .unknownGroup(group) }
        if let other = groupOfProcess[process] {
            if other == group { throw .duplicateMember(process, group) }
            throw .processInTwoGroups(process, other, group)
        }
        // Keep the members sorted by process id: insert at the first larger one.
        members.insert(process, at: members.firstIndex { $0 > process } ?? members.endIndex)
        groups[group] = members
        groupOfProcess[process] = group
    }

    /// Group ids in increasing order.
    public var groupIDs: [GroupID] { groups.keys.sorted() }

    /// All member processes, in increasing order.
    public var processes: [ProcessID] { groupOfProcess.keys.sorted() }

    public func members(of group: GroupID) -> [ProcessID] { groups[group] ?? [] }

    /// The group of a member process, nil for a client or unknown process.
    public func group(of process: ProcessID) -> GroupID? { groupOfProcess[process] }

    /// n, the number of seats of a group: its configured member count. New incarnations added by
    /// `addMember(_:to:)` replace crashed members and do not add seats.
    public func size(of group: GroupID) -> Int { seats[group] ?? 0 }

    /// Quorum size of a group: f+1 for n = 2f+1 (a strict majority of `size(of:)` in general).
    public func quorumSize(of group: GroupID) -> Int { size(of: group) / 2 + 1 }
}
