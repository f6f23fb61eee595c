import CRamCastVerbs
import RamCastFabric

#if canImport(Glibc)
import Glibc
#endif

/// Turns the shim's `-errno` results and verbs completion statuses into ``FabricError`` values and
/// user-facing text. Kept in one place so every failure names the C call that produced it.
enum VerbsError {
    /// `strerror` text for a positive errno value.
    static func message(_ errnoValue: Int32) -> String {
        guard let s = strerror(errnoValue) else { return "errno \(errnoValue)" }
        return String(cString: s)
    }

    /// `.systemCall` for a shim result `rc` (a negative errno) or a positive errno.
    static func systemCall(_ call: String, _ rc: Int32) -> FabricError {
        let e = rc < 0 ? -rc : rc
        return .systemCall(call: call, errno: e, message: message(e))
    }

    /// Errno values the kernel returns when pinning memory hits RLIMIT_MEMLOCK: ib_umem_get fails
    /// with ENOMEM, and some providers or older kernels report EPERM.
    static func isMemlockErrno(_ e: Int32) -> Bool { e == ENOMEM || e == EPERM }
}

/// Raw `ibv_wc_status` values the fabric distinguishes (verbs.h, enum ibv_wc_status).
enum WCStatus {
    static let success: UInt32 = IBV_WC_SUCCESS.rawValue
    static let flushError: UInt32 = IBV_WC_WR_FLUSH_ERR.rawValue
    static let remoteInvalidRequest: UInt32 = IBV_WC_REM_INV_REQ_ERR.rawValue   // 9
    static let remoteAccessError: UInt32 = IBV_WC_REM_ACCESS_ERR.rawValue       // 10
    static let retryExceeded: UInt32 = IBV_WC_RETRY_EXC_ERR.rawValue

    /// Maps a work completion status to the fabric's status.
    ///
    /// `IBV_WC_REM_INV_REQ_ERR` counts as an access error because that is what a writer sees when the
    /// target QP lost its remote-write access flag (spec section 6, "Measured on rxe").
    @inline(__always)
    static func completionStatus(_ raw: UInt32) -> CompletionStatus {
        switch raw {
        case success: return .success
        case remoteAccessError, remoteInvalidRequest: return .remoteAccessError
        case flushError: return .flushed
        case retryExceeded: return .retryExceeded
        default: return .other(Int32(bitPattern: raw))
        }
    }

    /// Why a connection died, for ``FabricError/connectionInErrorState(_:peer:cause:)`` and
    /// ``FabricEvent/disconnected(_:peer:reason:)``: the fabric's words plus the verbs name.
    static func cause(_ raw: UInt32) -> String {
        switch raw {
        case remoteAccessError: return "remote access error (IBV_WC_REM_ACCESS_ERR)"
        case remoteInvalidRequest: return "remote access error (IBV_WC_REM_INV_REQ_ERR: the peer's queue pair refused the write)"
        case flushError: return "work request flushed (IBV_WC_WR_FLUSH_ERR)"
        case retryExceeded: return "peer unreachable: transport retry counter exceeded (IBV_WC_RETRY_EXC_ERR)"
        default: return "completion error: \(String(cString: CRamCastVerbs_wc_status_str(Int32(bitPattern: raw)))) (ibv_wc_status \(raw))"
        }
    }
}

/// rdma_cm event names and statuses in words.
enum CMText {
    static func event(_ type: Int32) -> String {
        String(cString: CRamCastVerbs_cm_event_str(type))
    }

    /// IB CM reject reasons (IBTA table 112) that a RoCE/IB connector can see in a REJECTED event.
    static func rejectReason(_ status: Int32) -> String {
        switch status {
        case 1: return "no QP available at the remote CM"
        case 2: return "no EEC available"
        case 3: return "no remote resources"
        case 4: return "connection timeout"
        case 5: return "unsupported request"
        case 6: return "invalid communication ID"
        case 7: return "invalid communication instance"
        case 8: return "invalid service ID: nothing listens on that rdma_cm port"
        case 9: return "invalid transport type"
        case 10: return "stale connection"
        case 11: return "RDC does not exist"
        case 12: return "invalid GID"
        case 13: return "invalid LID"
        case 14: return "invalid service level"
        case 15: return "invalid traffic class"
        case 16: return "invalid hop limit"
        case 17: return "invalid packet rate"
        case 18: return "invalid alternate GID"
        case 26: return "invalid MTU"
        case 28: return "rejected by the remote application"
        case 32: return "invalid flow label"
        default: return "IB CM reject reason \(status)"
        }
    }

    /// Event statuses other than REJECTED are 0 or a negative errno.
    static func status(_ status: Int32) -> String {
        status < 0 ? "\(VerbsError.message(-status)) (status \(status))" : "status \(status)"
    }

    /// `IB_CM_REJ_CONSUMER_DEFINED`: the peer's application called rdma_reject.
    static let consumerReject: Int32 = 28
}
