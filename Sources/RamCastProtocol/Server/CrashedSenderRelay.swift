import RamCastFabric

/// Task 10: a sender that crashes part way through step 1 leaves some destinations with a message and
/// others without. Uniform agreement needs every correct destination to get it once anyone delivers
/// it: a deliverer saw f+1 acks from every destination group, and acks come only from members holding
/// the body, so each group keeps a live holder. Those holders hand the body on.
///
/// Two things change once a sender is known to have crashed (crash-stop: it never writes again):
/// - **Bodies are pulled, slot by slot.** Every member writes, into every other member's memory, one
///   request word per slot of that sender's ring: the sequence number of the last message it took in
///   that slot, plus one. A member holding a message newer than that for the requester's slot (in
///   the requester's group's slot numbering) writes the body there, once. Pushing bodies blindly is
///   not safe: a delivered message's slot may since hold a newer message at the target. A pulled
///   relay cannot overwrite anything the requester still needs: a newer message in that slot would
///   mean the sender recycled it, which it does only after every destination released the older one
///   (`SenderEngine.slotReusable`), the requester included, which then took it, and its request says so.
/// - **Bodies are taken in any slot order.** In-order polling of the ring would wait forever for a
///   message the sender wrote to nobody, or to processes that crashed since, while later ones exist.
///   A slot's body is taken when it is newer than the last one taken in that slot.
/// Relays go out from a staged copy (`answerRelayRequests`), and a body is taken only if it names
/// the slot of this group it sits in (`holdsOwnSlot`).
///
/// Work here runs once per heartbeat interval, or at once when a sender's crash was just reported: it
/// is off the hot path and its cost does not grow with the message rate.
extension ServerEngine {
    func relayForCrashedSenders() -> Bool {
        guard !crashedSenders.isEmpty,
              relayPassDue || now &- lastRelayPass >= layout.config.heartbeatInterval else { return false }
        relayPassDue = false
        lastRelayPass = now
        var progress = false
        for s in crashedSenders {
            progress = takeBodies(from: s) || progress
            requestRelays(from: s)
            answerRelayRequests(for: s)
        }
        return progress
    }

    /// The sequence number of the last message taken in this table entry from sender `s` (0: none).
    @inline(__always)
    private func lastTaken(_ index: Int, sender s: Int) -> UInt64 {
        ids[index].sender == layout.config.senders[s] ? ids[index].sequence : 0
    }

    /// Takes every body in sender `s`'s ring that is newer than the last one taken in its slot.
    private func takeBodies(from s: Int) -> Bool {
        var progress = false
        for slot in 0..<layout.slots {
            let index = s * layout.slots + slot
            guard !present[index] || isRestartedIncarnation else { continue }
            let base = ring + layout.slotOffset(sender: s, slot: slot)
            guard let header = MessageSlot.read(base, layout: layout), header.id.sender == layout.config.senders[s],
                  MessageID.isNewer(header.id.sequence, than: lastTaken(index, sender: s)), holdsOwnSlot(base, header, slot: slot) else { continue }
            if present[index] {
                supersede(index)   // a restarted process's stale relay (Rejoin.swift)
            }
            guard take(index, base: base, header: header) else {
                relayPassDue = true
                return progress
            }
            freed[index] = false   // the dead sender reads no more releases
            lastSequence[s] = MessageID.newest(lastSequence[s], header.id.sequence)
            progress = true
        }
        return progress
    }

    /// Tells every other live member, per slot, what this process last took there (when it changed).
    ///
    /// A restarted process asks only for what a leader's entry named (`relayWanted`): having taken
    /// nothing, "anything newer than nothing" would draw every holder's body for the slot, old
    /// delivered ones and newer ones alike, and the last to land would overwrite the one it took
    /// (seed 23743 delivered a message with another one's body so).
    private func requestRelays(from s: Int) {
        let targets = layout.servers.filter { $0 != me && !crashed.contains($0) }
        for slot in 0..<layout.slots {
            let index = s * layout.slots + slot
            let word = isRestartedIncarnation ? relayWanted[index] : lastTaken(index, sender: s) + 1
            guard word != 0, relayRequested[index] != word else { continue }
            guard targets.allSatisfy({ outbox.hasRoom(peer(server: $0)) }) else {
                relayPassDue = true
                return
            }
            let offset = layout.relayRequestOffset(sender: s, server: serverIndex, slot: slot)
            for q in targets {
                outbox.enqueue(peer(server: q), region: Layout.ringRegion, offset: offset, length: 8) {
                    $0.storeBytes(of: word, as: UInt64.self)
                }
            }
            relayRequested[index] = word
        }
    }

    /// Relays each body of sender `s` held here to every destination member whose request shows it
    /// lacks it, once per (member, slot, message).
    ///
    /// The write goes out from a copy in the relay staging buffer of the slot number, not from the
    /// ring slot: a write reads its source when the fabric carries it out, and by then another
    /// relay may have landed in the slot (a restarted member asks for everything, and two holders
    /// can answer with different messages). The slot's new body, sent to the old one's slot
    /// numbers, was delivered under the old message's id (seed 12189). A staged copy stays until
    /// its relays are retired.
    private func answerRelayRequests(for s: Int) {
        let senderID = layout.config.senders[s]
        for slot in 0..<layout.slots {
            let source = ring + layout.slotOffset(sender: s, slot: slot)
            guard let header = MessageSlot.read(source, layout: layout), header.id.sender == senderID else { continue }
            // Staged once per message (the copy is cached), and read from the copy from here on.
            guard let staged = stage(source, header, slot: slot) else {
                relayPassDue = true
                continue
            }
            let seq = header.id.sequence
            let length = MessageSlot.bodyLength(staged, layout: layout)
            for j in 0..<header.destinationCount {
                let k = MessageSlot.slotNumber(staged, j, layout: layout)
                for q in layout.members(of: MessageSlot.destination(staged, j)) where q != me && !crashed.contains(q) {
                    let r = peer(server: q)
                    let cell = (s * layout.servers.count + r) * layout.slots + k
                    guard MessageID.isNewer(seq, than: relayHandled[cell]) else { continue }
                    let request = RemoteMemory.loadAcquiring(ring + layout.relayRequestOffset(sender: s, server: r, slot: k))
                    guard request != 0, MessageID.isNewer(seq, than: request - 1) else { continue }   // not asked yet, or it has it
                    guard outbox.hasRoom(r) else {
                        relayPassDue = true
                        continue
                    }
                    let counter = outbox.enqueue(r, region: Layout.ringRegion, offset: layout.slotOffset(sender: s, slot: k),
                                                 source: staged, length: length, signal: true)
                    relayStagingInFlight[slot, default: []].append((r, counter))
                    relayHandled[cell] = seq
                    stats.relays += 1
                }
            }
        }
    }

    /// A leader's entry names message `e` whose body this restarted process lacks, from a crashed
    /// sender: ask for exactly that one (see `requestRelays`).
    func wantRelay(_ e: LogEntry) {
        wantRelay(Int(e.sender) * layout.slots + Int(e.slot), e.message)
    }

    /// Asks for message `id`, in table entry `index`, if this is a restarted process and its sender
    /// crashed. A leader's entry names it, or, for a candidate, a 1B reply: a candidate that joined
    /// after the message was delivered needs its body all the same, to re-propose its value.
    func wantRelay(_ index: Int, _ id: MessageID) {
        guard isRestartedIncarnation, let s = layout.senderIndexOf[id.sender], senderCrashed[s] else { return }
        guard index < relayWanted.count, MessageID.isNewer(id.sequence, than: relayWanted[index]) else { return }
        relayWanted[index] = id.sequence
        relayPassDue = true
    }

    /// Relays to outbox peer `p` whose connection was replaced: they were carried out or dropped with
    /// the old one, and the new connection's counters start over, so they hold no source any longer.
    func forgetRelays(to p: Int) {
        for (index, relays) in relaysInFlight {
            let kept = relays.filter { $0.peer != p }
            relaysInFlight[index] = kept.isEmpty ? nil : kept
        }
        for (slot, relays) in relayStagingInFlight {
            let kept = relays.filter { $0.peer != p }
            relayStagingInFlight[slot] = kept.isEmpty ? nil : kept
        }
    }

    /// Copies the body of `header.id` from `source` into the relay staging buffer of `slot`, unless it is
    /// there already. Nil while the buffer's earlier relays are still in flight, or when the copy
    /// does not hold it intact (the slot changed under it): the next pass tries again.
    private func stage(_ source: UnsafeRawPointer, _ header: MessageSlot.Header, slot: Int) -> UnsafeMutableRawPointer? {
        let buffer = ring + layout.relayStagingOffset(slot: slot)
        if relayStaged[slot] == header.id.rawValue { return buffer }
        if var relays = relayStagingInFlight[slot] {
            relays.removeAll { outbox.isDead($0.peer) || outbox.retired($0.peer) >= $0.counter }
            relayStagingInFlight[slot] = relays.isEmpty ? nil : relays
            guard relays.isEmpty else { return nil }
        }
        relayStaged[slot] = 0
        // The length checked by the read, not the slot's current one: the slot may have changed.
        buffer.copyMemory(from: source, byteCount: layout.headerSize + header.length + 4)
        guard let copy = MessageSlot.read(buffer, layout: layout), copy.id == header.id else { return nil }
        relayStaged[slot] = header.id.rawValue
        return buffer
    }
}
