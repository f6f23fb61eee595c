import CRamCastVerbs
import Logging
import RamCastFabric

#if canImport(Glibc)
import Glibc
#endif

/// One registered region and its memory regions (MRs).
///
/// An MR's rkey is the write permission: a peer can write exactly where it holds an rkey of an MR
/// with `IBV_ACCESS_REMOTE_WRITE`. So `.anyPeer` regions have one writable MR that every peer
/// gets, while `.grantedPeers` regions have one shared MR *without* remote write (what non-granted
/// peers get) plus a writable MR per granted peer. Revoking deregisters that peer's MR: its rkey
/// then fails at the NIC with `IBV_WC_REM_ACCESS_ERR`, while every other peer's key keeps working.
final class RegionRecord {
    let region: LocalRegion
    let mappedLength: Int
    let sharedMR: UnsafeMutablePointer<ibv_mr>
    var peerMRs: [NodeID: UnsafeMutablePointer<ibv_mr>] = [:]
    /// rkeys revoked from a peer that had a connection open then, which still holds the key. A
    /// deregistered rkey is dead only until the device hands the same number out again (rxe: once
    /// its MR index space wraps, with a 1-in-256 random key byte; other NICs cycle an 8-bit key), so
    /// a grant to another peer must never get one of these: the revoked peer's writes would land.
    /// Dropped once the peer has no open connection (a new one is given the current key).
    var revokedKeys: [(rkey: UInt32, peer: NodeID)] = []

    init(region: LocalRegion, mappedLength: Int, sharedMR: UnsafeMutablePointer<ibv_mr>) {
        self.region = region
        self.mappedLength = mappedLength
        self.sharedMR = sharedMR
    }

    /// Deregisters every MR and unmaps the memory (at close, after all QPs are gone).
    func release() {
        for (_, mr) in peerMRs { _ = CRamCastVerbs_dereg_mr(mr) }
        _ = CRamCastVerbs_dereg_mr(sharedMR)
        PinnedMemoryAccount.shared.release(mappedLength * (1 + peerMRs.count))
        peerMRs.removeAll()
        _ = CRamCastVerbs_unmap_memory(region.base, mappedLength)
    }
}

enum Access {
    static let localWrite = Int32(IBV_ACCESS_LOCAL_WRITE.rawValue)
    static let remoteWrite = Int32(IBV_ACCESS_REMOTE_WRITE.rawValue)
    static let remoteRead = Int32(IBV_ACCESS_REMOTE_READ.rawValue)
    static let writable = localWrite | remoteWrite | remoteRead
    static let readOnly = localWrite | remoteRead
}

extension RDMAEndpoint {
    // MARK: - Registration

    /// Maps `length` bytes of page-aligned zeroed memory (`mmap`) and registers it (`ibv_reg_mr`).
    ///
    /// RLIMIT_MEMLOCK is checked first (unless the process has CAP_IPC_LOCK), against everything
    /// RDMA endpoints in this process have pinned, and an ENOMEM/EPERM from `ibv_reg_mr` is
    /// reported the same way: ``FabricError/memlockLimitTooLow(requested:limit:alreadyLocked:)``.
    /// At most 3 regions: that is what fits in the 56 bytes of an rdma_cm connect request.
    public func register(_ id: RegionID, length: Int, remoteAccess: RemoteAccess) throws(FabricError) -> LocalRegion {
        guard !closed else { throw .closed }
        guard !regions.contains(where: { $0.region.id == id }) else {
            throw .invalidRegion(id, reason: "already registered at \(node)")
        }
        guard id.rawValue & Wire.guardedFlag == 0 else {
            throw .invalidRegion(id, reason: "region ids must be below 128 (bit 7 of the id byte is a flag on the wire)")
        }
        guard length > 0, length <= Int(UInt32.max) else {
            throw .invalidRegion(id, reason: "length must be in 1...\(UInt32.max), got \(length)")
        }
        guard regions.count < Wire.maxConnectRegions else {
            throw .invalidRegion(id, reason: "an RDMA endpoint holds at most \(Wire.maxConnectRegions) regions (their keys travel in the 56 bytes of rdma_cm connect private data)")
        }
        let page = Int(CRamCastVerbs_page_size())
        let mapped = (length + page - 1) / page * page
        var err: Int32 = 0
        guard let base = CRamCastVerbs_map_memory(mapped, &err) else { throw VerbsError.systemCall("mmap", err) }
        guard UInt64(UInt(bitPattern: base)) + UInt64(mapped) < Wire.addressLimit else {
            _ = CRamCastVerbs_unmap_memory(base, mapped)
            throw .invalidRegion(id, reason: "address \(base) does not fit the 56-bit wire format")
        }
        let mr: UnsafeMutablePointer<ibv_mr>
        do {
            mr = try registerMR(base, mapped, access: remoteAccess == .anyPeer ? Access.writable : Access.readOnly)
        } catch {
            _ = CRamCastVerbs_unmap_memory(base, mapped)
            throw error
        }
        let region = LocalRegion(id: id, base: base, length: length, remoteAccess: remoteAccess)
        regions.append(RegionRecord(region: region, mappedLength: mapped, sharedMR: mr))
        localStarts.append(UInt(bitPattern: base))
        localEnds.append(UInt(bitPattern: base) + UInt(length))
        localKeys.append(mr.pointee.lkey)
        control.advertise(AdvertisedRegion(id: id, address: UInt64(UInt(bitPattern: base)), length: UInt32(length),
                                           access: remoteAccess, sharedRkey: mr.pointee.rkey))
        logger.debug("registered region", metadata: [
            "node": "\(node)", "region": "\(id)", "bytes": "\(length)", "access": "\(remoteAccess)",
            "rkey": "\(mr.pointee.rkey)", "pinnedInProcess": "\(PinnedMemoryAccount.shared.current)"])
        return region
    }

    /// `ibv_reg_mr` behind the memlock check, charging the process-wide account.
    func registerMR(_ base: UnsafeMutableRawPointer, _ length: Int, access: Int32) throws(FabricError) -> UnsafeMutablePointer<ibv_mr> {
        // Tests bypass the check to see what ibv_reg_mr itself does at the limit.
        let status = skipMemlockCheckForTesting ? MemlockStatus(limit: nil, hasIPCLock: true) : memlock
        let before = try PinnedMemoryAccount.shared.reserve(length, status: status)
        var err: Int32 = 0
        guard let mr = CRamCastVerbs_reg_mr(pd, base, length, access, &err) else {
            PinnedMemoryAccount.shared.release(length)
            if VerbsError.isMemlockErrno(err) {
                throw .memlockLimitTooLow(requested: length, limit: MemlockStatus.current().limit, alreadyLocked: before)
            }
            throw VerbsError.systemCall("ibv_reg_mr", err)
        }
        return mr
    }

    func deregisterMR(_ mr: UnsafeMutablePointer<ibv_mr>, length: Int) throws(FabricError) {
        let rc = CRamCastVerbs_dereg_mr(mr)
        guard rc == 0 else { throw VerbsError.systemCall("ibv_dereg_mr", rc) }
        PinnedMemoryAccount.shared.release(length)
    }

    private func grantedRegion(_ id: RegionID) throws(FabricError) -> RegionRecord {
        guard !closed else { throw .closed }
        guard let r = regions.first(where: { $0.region.id == id }) else {
            throw .invalidRegion(id, reason: "not registered at \(node)")
        }
        guard r.region.remoteAccess == .grantedPeers else {
            throw .invalidRegion(id, reason: "every peer may write an .anyPeer region; grants apply to .grantedPeers regions")
        }
        return r
    }

    // MARK: - Grant and revoke

    /// Lets `peer` write region `id` by registering a fresh writable MR for it (`ibv_reg_mr`).
    ///
    /// The peer learns the new rkey from a control SEND on each open connection to it, and reports
    /// ``FabricEvent/permissionChanged(_:peer:region:writable:)``; a connection opened later gets it
    /// in the rdma_cm private data. Granting a peer that already holds a grant does nothing.
    public func grantWrite(_ id: RegionID, to peer: NodeID) throws(FabricError) {
        let r = try grantedRegion(id)
        guard r.peerMRs[peer] == nil else { return }
        // A connection the control thread accepted but pollEvent() has not taken over yet must get
        // the new key too: take it over now.
        drainControlQueue()
        let clock = ContinuousClock()
        let start = clock.now
        let mr = try registerFreshKey(r, for: peer)
        r.peerMRs[peer] = mr
        control.setPeerKey(id, peer: peer, rkey: mr.pointee.rkey)
        for c in connections where c.isLive && c.peer == peer && !c.dirtyRegions.contains(id) {
            c.dirtyRegions.append(id)
            pendingKeySyncs = true
        }
        if pendingKeySyncs { sendPendingKeys() }
        logger.debug("granted write", metadata: [
            "node": "\(node)", "region": "\(id)", "peer": "\(peer)", "rkey": "\(mr.pointee.rkey)",
            "micros": "\((clock.now - start).microseconds)"])
    }

    /// A writable MR for `peer` whose rkey no revoked peer may still hold (see
    /// ``RegionRecord/revokedKeys``): a colliding MR is kept registered while the next one is
    /// made, so the device cannot hand the same key straight back, and then deregistered.
    private func registerFreshKey(_ r: RegionRecord, for peer: NodeID) throws(FabricError) -> UnsafeMutablePointer<ibv_mr> {
        r.revokedKeys.removeAll { stale in !connections.contains { $0.isLive && $0.peer == stale.peer } }
        var colliding: [UnsafeMutablePointer<ibv_mr>] = []
        defer {
            for mr in colliding {
                do { try deregisterMR(mr, length: r.mappedLength) } catch {
                    // Its key was never handed out: a leak of pinned memory, not a breach.
                    logger.warning("could not deregister an unused MR", metadata: ["node": "\(node)", "error": "\(error)"])
                }
            }
        }
        for _ in 0..<Self.freshKeyAttempts {
            let mr = try registerMR(r.region.base, r.mappedLength, access: Access.writable)
            if keyCollisionsForTesting > 0, let last = r.revokedKeys.last {
                keyCollisionsForTesting -= 1
                mr.pointee.rkey = last.rkey
            }
            let rkey = mr.pointee.rkey
            guard let stale = r.revokedKeys.first(where: { $0.rkey == rkey && $0.peer != peer }) else { return mr }
            logger.notice("ibv_reg_mr returned an rkey a revoked peer may still hold; registering another", metadata: [
                "node": "\(node)", "region": "\(r.region.id)", "rkey": "\(rkey)", "revokedFrom": "\(stale.peer)", "grantee": "\(peer)"])
            colliding.append(mr)
        }
        throw .invalidRegion(r.region.id, reason: "ibv_reg_mr returned \(Self.freshKeyAttempts) rkeys in a row that a revoked peer may still hold; not granting \(peer)")
    }

    static let freshKeyAttempts = 4

    /// Stops `peer` from writing region `id` by deregistering the MR whose rkey it holds
    /// (`ibv_dereg_mr`).
    ///
    /// The peer's next write to the region fails at its NIC with `IBV_WC_REM_ACCESS_ERR`, lands no
    /// byte, and its queue pair enters the error state. Its other regions' keys are unaffected until
    /// then. `ibv_rereg_mr` is not used: rxe does not support it, and where it is ignored writes
    /// would still land (spec section 6). Revoking a peer without a grant does nothing.
    public func revokeWrite(_ id: RegionID, from peer: NodeID) throws(FabricError) {
        let r = try grantedRegion(id)
        guard let mr = r.peerMRs[peer] else { return }
        let clock = ContinuousClock()
        let start = clock.now
        // Advertise the read-only key first, so a connection accepted from now on never gets the
        // key that is about to die.
        control.setPeerKey(id, peer: peer, rkey: nil)
        // Connections the control thread accepted before that carry the old key: take them over,
        // so the check below sees them.
        drainControlQueue()
        let rkey = mr.pointee.rkey
        r.peerMRs[peer] = nil
        do {
            try deregisterMR(mr, length: r.mappedLength)
        } catch {
            // The peer may still be able to write: keep the MR on record so close() retries, and
            // fail: the caller must not act as if the peer were fenced.
            r.peerMRs[peer] = mr
            throw error
        }
        if connections.contains(where: { $0.isLive && $0.peer == peer }) {
            r.revokedKeys.append((rkey, peer))
        }
        logger.debug("revoked write", metadata: [
            "node": "\(node)", "region": "\(id)", "peer": "\(peer)", "micros": "\((clock.now - start).microseconds)"])
    }

    // MARK: - Control messages

    /// Polls the receive CQ for control messages (new region keys), applies them to the
    /// connection's key table, reposts the buffers, and reports
    /// ``FabricEvent/permissionChanged(_:peer:region:writable:)``.
    func pollControlMessages() {
        let n = Int(CRamCastVerbs_poll_cq(recvCQ, recvScratch, Int32(Self.recvScratchCount)))
        guard n > 0 else { return }
        for k in 0..<n {
            let wc = recvScratch[k]
            let conn = ConnectionID(UInt32(truncatingIfNeeded: wc.wr_id >> 32))
            let buffer = Int(wc.wr_id & 0xFFFF_FFFF)
            guard let c = slot(conn), c.isLive, buffer < ControlBuffers.recvSlots, let qp = c.qp else { continue }
            guard wc.status == WCStatus.success else {
                // A flushed receive means the QP entered the error state (e.g. after the peer's
                // write was refused here): the connection is dead even if no write of ours failed.
                fail(c, text: "queue pair entered the error state (\(WCStatus.cause(wc.status)) on a control receive)")
                continue
            }
            let p = control.buffers.recv(c.index, buffer)
            handleControlMessage(c, UnsafeRawBufferPointer(start: p, count: min(Int(wc.byte_len), ControlBuffers.bufferSize)))
            let rc = CRamCastVerbs_post_recv(qp, UInt64(UInt(bitPattern: p)), UInt32(ControlBuffers.bufferSize),
                                             control.buffers.lkey, wc.wr_id)
            if rc != 0 { fail(c, text: "ibv_post_recv failed: \(VerbsError.message(-rc))") }
        }
        if pendingNotices > 0 { reportFailures() }
    }

    private func handleControlMessage(_ c: Connection, _ bytes: UnsafeRawBufferPointer) {
        do {
            guard let u = try Wire.decodeKeyUpdate(bytes) else {
                logger.warning("ignoring an unknown control message", metadata: ["node": "\(node)", "connection": "\(c.id)"])
                return
            }
            guard u.node == c.peer else {
                logger.warning("ignoring a key update claiming to come from another node", metadata: [
                    "node": "\(node)", "connection": "\(c.id)", "claimed": "\(u.node)", "peer": "\(c.peer)"])
                return
            }
            c.setRemote(u.descriptor)
            logger.debug("received region key", metadata: [
                "node": "\(node)", "connection": "\(c.id)", "peer": "\(c.peer)", "region": "\(u.descriptor.region)",
                "rkey": "\(u.descriptor.rkey)", "writable": "\(u.writable)"])
            if c.userVisible {
                events.append(.permissionChanged(c.id, peer: c.peer, region: u.descriptor.region, writable: u.writable))
            }
        } catch {
            logger.warning("ignoring a malformed control message", metadata: ["node": "\(node)", "connection": "\(c.id)", "error": "\(error)"])
        }
    }

    /// Sends the current key of every dirty region to its peer (`ibv_post_send`, opcode SEND),
    /// as far as free control send slots allow; the rest waits for the next ``pollEvent()``.
    func sendPendingKeys() {
        pendingKeySyncs = false
        for c in connections where !c.dirtyRegions.isEmpty {
            guard c.isLive, let qp = c.qp else {
                c.dirtyRegions.removeAll(keepingCapacity: true)
                continue
            }
            while let region = c.dirtyRegions.first {
                guard c.outstandingControlSends < ControlBuffers.sendSlots else {
                    pendingKeySyncs = true
                    break
                }
                guard let ad = control.advertisedRegion(region) else {
                    c.dirtyRegions.removeFirst()
                    continue
                }
                let message = Wire.encodeKeyUpdate(Wire.KeyUpdate(node: node, descriptor: ad.descriptor(for: c.peer),
                                                                  writable: ad.writable(by: c.peer)))
                let index = Int(c.controlPosted % UInt64(ControlBuffers.sendSlots))
                let buffer = control.buffers.send(c.index, index)
                message.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                let rc = CRamCastVerbs_post_send(qp, UInt64(UInt(bitPattern: buffer)), UInt32(message.count), control.buffers.lkey,
                                                 ControlWorkRequest.send(c.id, index), UInt32(CRamCastVerbs_WRITE_SIGNALED))
                guard rc == 0 else {
                    fail(c, text: "sending a region key failed (ibv_post_send: \(VerbsError.message(-rc)))")
                    c.dirtyRegions.removeAll(keepingCapacity: true)
                    break
                }
                c.controlPosted &+= 1
                c.pushMark(SignalMark(userCount: c.userPosted, controlCount: c.controlPosted, isControl: true))
                c.dirtyRegions.removeFirst()
            }
        }
    }
}

extension Duration {
    var microseconds: Int64 {
        components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000
    }
}
