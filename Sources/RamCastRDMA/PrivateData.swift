import RamCastFabric

/// The bytes RamCast endpoints exchange while connecting (rdma_cm private data) and afterwards in
/// control SENDs. All fields are little-endian at fixed offsets, so both ends agree regardless of
/// the compiler's struct layout.
///
/// Header, 8 bytes, in every message:
///
///     0  u16  magic 0x4352 ("RC")
///     2  u8   version (3)
///     3  u8   count: region descriptors that follow (REQ/REP), reason bytes (REJ), or message type (SEND)
///     4  u32  sender's node id
///
/// In a REQ or REP, count holds the descriptors in its low 7 bits (never more than 11 fit) and bit 7
/// says "the connecting process restarted" (``FabricEndpoint/announcesRestart``); an acceptor
/// announcing a restart refuses connections instead, so bit 7 of a REP is always clear.
///
/// The version names the protocol spoken over the connection, not only these bytes. Version 2:
/// log entries carry the reader group's ballot epoch in bytes 30-31 (version 1 wrote zero there, and
/// a version-2 leader ignores such entries), and the ring region holds relay staging buffers.
/// Version 3: counters at full width (issue 13): acks and clock cells are 16 bytes
/// (`[value:u64 | ballot:u32 | check:u32]`, so slots and the control area are laid out anew), and
/// a log entry is 44 bytes with a 32-bit epoch in bytes 36-39 and its CRC in bytes 40-43. A
/// mixed cluster would stall rather than fail, so a peer of another version is refused at connect.
///
/// Region descriptor, 16 bytes:
///
///     0  u64  (virtual address << 8) | guarded << 7 | region id    -- user-space addresses fit in 56 bits
///
/// The guarded bit marks a region written only with a per-peer key (`.grantedPeers`): its keys
/// change at run time, so a writer takes pending key updates before it posts to it (see
/// `RDMAEndpoint.post`). Region ids stay below 128.
///     8  u32  length in bytes
///    12  u32  rkey: for a grantedPeers region, the key of the MR for the receiving peer
///
/// An IB/RoCE REQ carries 56 bytes of rdma_cm private data: header + 3 descriptors, exactly. A REP
/// carries 196 (up to 11 descriptors), a REJ 148 (header + up to 140 bytes of UTF-8 reason). A control
/// SEND is 32 bytes: header (count = type 1, "region key") + descriptor + u8 writable + 7 zero bytes.
enum Wire {
    static let magic: UInt16 = 0x4352
    static let version: UInt8 = 3
    static let headerSize = 8
    static let descriptorSize = 16
    static let connectCapacity = 56
    static let acceptCapacity = 196
    static let rejectCapacity = 148
    static let maxConnectRegions = (connectCapacity - headerSize) / descriptorSize   // 3
    static let maxAcceptRegions = (acceptCapacity - headerSize) / descriptorSize     // 11
    static let maxReasonBytes = rejectCapacity - headerSize                         // 140
    static let controlMessageSize = 32
    static let controlTypeRegionKey: UInt8 = 1
    static let addressLimit: UInt64 = 1 << 56
    /// Bit 7 of a descriptor's region byte: the region is guarded by per-peer keys.
    static let guardedFlag: UInt8 = 0x80
    /// Bit 7 of a REQ's count byte: the connecting process restarted.
    static let restartedFlag: UInt8 = 0x80
    static let countMask: UInt8 = 0x7F

    struct Descriptor: Hashable {
        var region: RegionID
        var address: UInt64
        var length: UInt32
        var rkey: UInt32
        /// Writes need a per-peer key (`.grantedPeers`), which a grant or revocation changes.
        var guarded = false
    }

    /// A connect (REQ) or accept (REP) payload.
    struct Hello: Hashable {
        var node: NodeID
        var regions: [Descriptor]
        /// REQ only: the connector is a new incarnation announcing itself (bit 7 of the count byte),
        /// so the acceptor reports ``FabricEvent/restarted(_:peer:)`` rather than `accepted`.
        var restarted = false
    }

    struct KeyUpdate: Hashable {
        var node: NodeID
        var descriptor: Descriptor
        var writable: Bool
    }

    // MARK: Encoding

    static func header(count: UInt8, node: NodeID) -> [UInt8] {
        var b: [UInt8] = []
        b.reserveCapacity(headerSize)
        append(&b, magic)
        b.append(version)
        b.append(count)
        append(&b, node.rawValue)
        return b
    }

    static func encode(_ d: Descriptor, into b: inout [UInt8]) {
        append(&b, (d.address << 8) | UInt64(d.region.rawValue | (d.guarded ? guardedFlag : 0)))
        append(&b, d.length)
        append(&b, d.rkey)
    }

    static func encodeHello(_ hello: Hello) -> [UInt8] {
        // Callers cap regions at maxConnectRegions / maxAcceptRegions; more would spill into the flag.
        precondition(hello.regions.count <= maxAcceptRegions, "a hello carries at most \(maxAcceptRegions) regions")
        let count = UInt8(hello.regions.count) | (hello.restarted ? restartedFlag : 0)
        var b = header(count: count, node: hello.node)
        for d in hello.regions { encode(d, into: &b) }
        return b
    }

    static func encodeReject(node: NodeID, reason: String) -> [UInt8] {
        var text = Array(reason.utf8.prefix(maxReasonBytes))
        // Cutting inside a multi-byte character would make the far end's decoding lossy: back off.
        while !text.isEmpty, String(validating: text, as: UTF8.self) == nil { text.removeLast() }
        return header(count: UInt8(text.count), node: node) + text
    }

    static func encodeKeyUpdate(_ u: KeyUpdate) -> [UInt8] {
        var b = header(count: controlTypeRegionKey, node: u.node)
        encode(u.descriptor, into: &b)
        b.append(u.writable ? 1 : 0)
        b += [UInt8](repeating: 0, count: controlMessageSize - b.count)
        return b
    }

    // MARK: Decoding

    enum DecodeError: Error, Equatable, CustomStringConvertible {
        case tooShort(Int)
        case badMagic(UInt16)
        case badVersion(UInt8)
        case badLength(expected: Int, got: Int)
        case tooManyRegions(Int)

        var description: String {
            switch self {
            case .tooShort(let n): return "private data too short (\(n) bytes)"
            case .badMagic(let m): return "not a RamCast message (magic 0x\(String(m, radix: 16)))"
            case .badVersion(let v): return "protocol version \(v) is not supported (expected \(Wire.version))"
            case .badLength(let e, let g): return "private data holds \(g) bytes, \(e) needed"
            case .tooManyRegions(let n): return "private data announces \(n) regions, at most \(Wire.maxAcceptRegions) fit"
            }
        }
    }

    /// Validates the header and returns (count, node).
    static func decodeHeader(_ b: UnsafeRawBufferPointer) throws(DecodeError) -> (UInt8, NodeID) {
        guard b.count >= headerSize else { throw .tooShort(b.count) }
        let m: UInt16 = load(b, 0)
        guard m == magic else { throw .badMagic(m) }
        guard b[2] == version else { throw .badVersion(b[2]) }
        return (b[3], NodeID(load(b, 4)))
    }

    static func decodeDescriptor(_ b: UnsafeRawBufferPointer, at offset: Int) -> Descriptor {
        let word: UInt64 = load(b, offset)
        let byte = UInt8(truncatingIfNeeded: word)
        return Descriptor(region: RegionID(byte & ~guardedFlag), address: word >> 8,
                          length: load(b, offset + 8), rkey: load(b, offset + 12), guarded: byte & guardedFlag != 0)
    }

    static func decodeHello(_ b: UnsafeRawBufferPointer) throws(DecodeError) -> Hello {
        let (byte, node) = try decodeHeader(b)
        let count = byte & countMask
        // No REQ or REP has room for more: a larger count is corruption, not a bigger message.
        guard Int(count) <= maxAcceptRegions else { throw .tooManyRegions(Int(count)) }
        let need = headerSize + Int(count) * descriptorSize
        // rdma_cm may pad private data with zeros up to the transport's size, never shorten it.
        guard b.count >= need else { throw .badLength(expected: need, got: b.count) }
        let regions = (0..<Int(count)).map { decodeDescriptor(b, at: headerSize + $0 * descriptorSize) }
        return Hello(node: node, regions: regions, restarted: byte & restartedFlag != 0)
    }

    /// The reason text of a RamCast REJ, or nil if `b` is not one.
    static func decodeReject(_ b: UnsafeRawBufferPointer) -> (node: NodeID, reason: String)? {
        guard let (count, node) = try? decodeHeader(b), b.count >= headerSize + Int(count) else { return nil }
        let text = UnsafeRawBufferPointer(rebasing: b[headerSize..<(headerSize + Int(count))])
        return (node, String(decoding: text, as: UTF8.self))
    }

    static func decodeKeyUpdate(_ b: UnsafeRawBufferPointer) throws(DecodeError) -> KeyUpdate? {
        let (type, node) = try decodeHeader(b)
        guard type == controlTypeRegionKey else { return nil }
        guard b.count >= controlMessageSize else { throw .badLength(expected: controlMessageSize, got: b.count) }
        return KeyUpdate(node: node, descriptor: decodeDescriptor(b, at: headerSize), writable: b[headerSize + descriptorSize] != 0)
    }

    // MARK: Little-endian helpers

    static func append<T: FixedWidthInteger>(_ b: inout [UInt8], _ v: T) {
        withUnsafeBytes(of: v.littleEndian) { b.append(contentsOf: $0) }
    }

    static func load<T: FixedWidthInteger>(_ b: UnsafeRawBufferPointer, _ offset: Int) -> T {
        T(littleEndian: b.loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}
