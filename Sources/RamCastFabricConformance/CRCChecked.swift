import RamCastFabric

extension FabricConformance {
    /// 100,000 writes of random sizes through a 64-slot ring, checked end to end by CRC-32C.
    ///
    /// The writer frames each message as `[length:u32 | seq:u32 | payload | crc:u32]` in a staging
    /// slot and writes it (inline when small enough) into the reader's ring. The reader accepts a
    /// slot only when the sequence is the next one and the CRC matches, which also rejects torn
    /// writes, then clears the slot and writes its consumed count back (the slot-release write), so
    /// the writer never overwrites an unread slot. Both sides fold every payload into a running CRC,
    /// and the two must agree at the end.
    static func crcChecked100k(_ h: any FabricHarness) throws {
        let n = try makeNodes(h, [1, 2])
        let (a, b) = (n[0], n[1])
        let total = 100_000
        let slots = 64
        let slotBytes = 1024
        let releaseOffset = regionBytes - 64
        let ab = try a.endpoint.connect(to: b.endpoint.node, timeout: .seconds(10))
        let ba = try acceptedConnection(h, at: b, from: a.endpoint.node)
        var writer = Sender(a.endpoint, ab, signalInterval: 16, harnessName: h.name)
        var releaser = Sender(b.endpoint, ba, signalInterval: 16, harnessName: h.name)
        var rng = SplitMix64(seed: 0x5EED_CAFE)
        var sent = 0, received = 0
        var sentCRC: UInt32 = 0, receivedCRC: UInt32 = 0
        var pendingRelease = false
        let maxInline = a.endpoint.limits.maxInlineBytes
        var driver = Driver(h, deadline: .seconds(300))

        try driver.wait("\(total) CRC-checked writes", until: { received == total }) { d in
            // Writer: fill free slots (consumed count is written back by the reader).
            let consumed = Int(word(a.data, releaseOffset))
            while sent < total, sent - consumed < slots, writer.credits.canPost() {
                let seq = UInt32(sent + 1)
                let length = 1 + Int(rng.next() % 1000)
                let frame = a.staging.base + (sent % slots) * slotBytes
                frame.storeBytes(of: UInt32(length).littleEndian, as: UInt32.self)
                (frame + 4).storeBytes(of: seq.littleEndian, as: UInt32.self)
                fillPattern(frame + 8, count: length, seed: UInt64(seq))
                sentCRC = CRC32C.checksum(frame + 8, count: length, seed: sentCRC)
                let crc = CRC32C.checksum(frame, count: 8 + length)
                (frame + 8 + length).storeBytes(of: crc.littleEndian, as: UInt32.self)
                let frameLength = 12 + length
                _ = try writer.tryPost(WriteRequest(
                    id: UInt64(seq), source: frame, length: frameLength, remoteRegion: data,
                    remoteOffset: (sent % slots) * slotBytes, flags: frameLength <= maxInline ? .inline : []))
                sent += 1
            }
            try writer.poll(&d)

            // Reader: consume in order while the next slot holds a complete, intact frame.
            while received < total {
                let slot = b.data.base + (received % slots) * slotBytes
                let header = RemoteMemory.loadAcquiring(slot)
                let length = Int(UInt32(truncatingIfNeeded: header))
                let seq = UInt32(truncatingIfNeeded: header >> 32)
                guard seq == UInt32(received + 1), length >= 1, length <= 1000 else { break }
                let stored = (slot + 8 + length).loadUnaligned(as: UInt32.self).littleEndian
                guard stored == CRC32C.checksum(slot, count: 8 + length) else { break }   // torn or still landing
                try expect(patternMatches(slot + 8, count: length, seed: UInt64(seq)),
                           "[\(h.name)] message \(seq) passed its CRC but holds the wrong bytes")
                receivedCRC = CRC32C.checksum(slot + 8, count: length, seed: receivedCRC)
                RemoteMemory.storeReleasing(0, at: slot)   // clear before releasing the slot
                received += 1
                pendingRelease = true
            }
            if pendingRelease {
                let count = UInt64(received)
                let posted = try withUnsafeBytes(of: count) { raw in
                    try releaser.tryPost(WriteRequest(id: count, source: raw.baseAddress!, length: 8, remoteRegion: data,
                                                      remoteOffset: releaseOffset, flags: .inline))
                }
                if posted { pendingRelease = false }
            }
            try releaser.poll(&d)
        }
        try expect(sent == total && received == total, "[\(h.name)] sent \(sent), received \(received)")
        try expect(sentCRC == receivedCRC, "[\(h.name)] running CRC differs: sent \(sentCRC), received \(receivedCRC)")
    }
}
