import CRamCastVerbs
import RamCastFabric

/// One RDMA device as seen by ``RDMAEndpoint/devices()``.
public struct RDMADeviceInfo: Sendable, Hashable {
    /// Kernel device name (`ibv_get_device_name`), e.g. `rxe0`.
    public var name: String
    /// Firmware version string from `ibv_query_device`.
    public var firmware: String
    /// Work requests per queue (`max_qp_wr`) and entries per completion queue (`max_cqe`).
    public var maxQueuePairWorkRequests: Int
    public var maxCompletionQueueEntries: Int
    public var maxMemoryRegionSize: UInt64
    public var ports: [RDMAPortInfo]
    /// The largest `max_inline_data` an RC queue pair could be created with (probed with
    /// `ibv_create_qp`, since devices do not report it), and what the provider granted for that
    /// request. nil if probing failed.
    public var maxInlineBytes: Int?
    public var maxInlineGranted: Int?
}

/// One port of a device (`ibv_query_port`).
public struct RDMAPortInfo: Sendable, Hashable {
    public var number: Int
    /// `ibv_port_state_str`, e.g. `PORT_ACTIVE`.
    public var state: String
    public var isActive: Bool
    /// Active path MTU in bytes.
    public var activeMTU: Int
    /// `Ethernet` (RoCE) or `InfiniBand`.
    public var linkLayer: String
    /// Non-empty entries of the GID table.
    public var gids: [RDMAGIDInfo]
}

/// One GID table entry (`ibv_query_gid_ex`).
public struct RDMAGIDInfo: Sendable, Hashable {
    public var index: Int
    /// The GID in IPv6 notation, e.g. `::ffff:10.211.0.1`.
    public var gid: String
    /// `IB`, `RoCE v1`, `RoCE v2`, or `unknown`.
    public var type: String
    /// The IPv4 address of an IPv4-mapped GID.
    public var ipv4: String?
}

enum DeviceQuery {
    /// Device names from `ibv_get_device_list`; [] when there is no device or no kernel support.
    static func names() -> [String] {
        var buffer = [CRamCastVerbs_DeviceName](repeating: CRamCastVerbs_DeviceName(), count: 32)
        let n = buffer.withUnsafeMutableBufferPointer { CRamCastVerbs_list_devices($0.baseAddress, Int32($0.count)) }
        guard n > 0 else { return [] }
        return (0..<min(Int(n), buffer.count)).map { cString(&buffer[$0].name) }
    }

    static func info(name: String) -> RDMADeviceInfo? {
        var err: Int32 = 0
        guard let ctx = CRamCastVerbs_open_device(name, &err) else { return nil }
        defer { _ = CRamCastVerbs_close_device(ctx) }
        var attr = CRamCastVerbs_DeviceAttr()
        guard CRamCastVerbs_query_device(ctx, &attr) == 0 else { return nil }
        var ports: [RDMAPortInfo] = []
        for p in 1...max(1, Int(attr.phys_port_cnt)) {
            if let port = portInfo(ctx, port: p) { ports.append(port) }
        }
        let (inline, granted) = probeInline(ctx, sendDepth: 64)
        return RDMADeviceInfo(
            name: name, firmware: cString(&attr.fw_ver),
            maxQueuePairWorkRequests: Int(attr.max_qp_wr), maxCompletionQueueEntries: Int(attr.max_cqe),
            maxMemoryRegionSize: attr.max_mr_size, ports: ports,
            maxInlineBytes: inline, maxInlineGranted: granted)
    }

    static func portInfo(_ ctx: UnsafeMutablePointer<ibv_context>, port: Int) -> RDMAPortInfo? {
        var pa = CRamCastVerbs_PortAttr()
        guard CRamCastVerbs_query_port(ctx, UInt8(port), &pa) == 0 else { return nil }
        var gids: [RDMAGIDInfo] = []
        for i in 0..<Int(min(pa.gid_tbl_len, 256)) {
            if let g = gid(ctx, port: port, index: i) { gids.append(g) }
        }
        return RDMAPortInfo(
            number: port, state: String(cString: CRamCastVerbs_port_state_str(pa.state)),
            isActive: pa.state == Int32(IBV_PORT_ACTIVE.rawValue), activeMTU: Int(pa.active_mtu_bytes),
            linkLayer: linkLayerName(pa.link_layer), gids: gids)
    }

    /// One GID entry, or nil for an empty (all-zero) or unreadable slot.
    static func gid(_ ctx: UnsafeMutablePointer<ibv_context>, port: Int, index: Int) -> RDMAGIDInfo? {
        var g = CRamCastVerbs_GID()
        guard CRamCastVerbs_query_gid(ctx, UInt8(port), Int32(index), &g) == 0 else { return nil }
        let raw = withUnsafeBytes(of: g.raw) { Array($0) }
        guard raw.contains(where: { $0 != 0 }) else { return nil }
        var text = [CChar](repeating: 0, count: 64)
        text.withUnsafeMutableBufferPointer { buf in
            withUnsafeBytes(of: g.raw) { CRamCastVerbs_format_gid($0.baseAddress!.assumingMemoryBound(to: UInt8.self), buf.baseAddress, buf.count) }
        }
        let isMapped = raw[0..<10].allSatisfy { $0 == 0 } && raw[10] == 0xff && raw[11] == 0xff
        let ipv4 = isMapped ? "\(raw[12]).\(raw[13]).\(raw[14]).\(raw[15])" : nil
        return RDMAGIDInfo(index: index, gid: string(text), type: gidTypeName(g.type), ipv4: ipv4)
    }

    /// Probes the inline limit on a scratch PD and CQ of `ctx`.
    static func probeInline(_ ctx: UnsafeMutablePointer<ibv_context>, sendDepth: Int) -> (Int?, Int?) {
        var err: Int32 = 0
        guard let pd = CRamCastVerbs_alloc_pd(ctx, &err) else { return (nil, nil) }
        defer { _ = CRamCastVerbs_dealloc_pd(pd) }
        guard let cq = CRamCastVerbs_create_cq(ctx, 16, &err) else { return (nil, nil) }
        defer { _ = CRamCastVerbs_destroy_cq(cq) }
        var granted: Int32 = 0
        let rc = CRamCastVerbs_probe_max_inline(pd, cq, UInt32(sendDepth), &granted)
        return rc >= 0 ? (Int(rc), Int(granted)) : (nil, nil)
    }

    static func linkLayerName(_ v: Int32) -> String {
        switch UInt32(bitPattern: v) {
        case UInt32(IBV_LINK_LAYER_ETHERNET): return "Ethernet"
        case UInt32(IBV_LINK_LAYER_INFINIBAND): return "InfiniBand"
        default: return "unspecified"
        }
    }

    static func gidTypeName(_ v: Int32) -> String {
        switch v {
        case Int32(IBV_GID_TYPE_IB.rawValue): return "IB"
        case Int32(IBV_GID_TYPE_ROCE_V1.rawValue): return "RoCE v1"
        case Int32(IBV_GID_TYPE_ROCE_V2.rawValue): return "RoCE v2"
        default: return "unknown"
        }
    }
}

/// A C `char[N]` array (imported as a tuple) as a String.
func cString<T>(_ tuple: inout T) -> String {
    withUnsafeBytes(of: &tuple) { raw in
        let bytes = raw.bindMemory(to: UInt8.self)
        let end = bytes.firstIndex(of: 0) ?? bytes.count
        return String(decoding: bytes[..<end], as: UTF8.self)
    }
}

/// A NUL-terminated `[CChar]` buffer as a String.
func string(_ chars: [CChar]) -> String {
    String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
