// CRamCastVerbs: a thin C shim over libibverbs and librdmacm for the RamCastRDMA module.
//
// Why a shim instead of importing the headers into Swift directly:
// - Several verbs are macros or static inline wrappers around versioned symbols (ibv_reg_mr,
//   ibv_query_port, ibv_query_gid_ex, rdma_get_peer_addr ...). Swift cannot call a function-like
//   macro, and whether it can see a given inline wrapper depends on the rdma-core version.
// - errno must be read right after the failing call. Between a C call and Swift reading `errno`,
//   the Swift runtime may allocate, release or log, any of which can overwrite it. So every shim
//   returns 0 or -errno (or NULL with the error in an out parameter); Swift never reads errno.
// - Posting a chain of writes needs an array of linked ibv_send_wr + ibv_sge. Built here on the C
//   stack, the hot path does no Swift allocation and no ARC traffic.
// - ibv_poll_cq fills struct ibv_wc, a large struct with unions; the shim copies the four fields the
//   fabric needs into a flat array the caller preallocated.
// - rdma_cm events are copied (type, status, ids, private data) and acknowledged inside one call, so
//   no event stays unacknowledged: rdma_destroy_id blocks until every event of its id is acked.
//
// Every function is prefixed CRamCastVerbs_. Error convention: `int` results are >= 0 on success
// and -errno on failure; pointer results are NULL on failure with errno stored in `*err`.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#ifdef __cplusplus
extern "C" {
#endif

// MARK: - Devices

/// IBV_SYSFS_NAME_MAX is 64; a device name never exceeds it.
typedef struct {
    char name[64];
} CRamCastVerbs_DeviceName;

/// Fills up to `max` names from ibv_get_device_list. Returns the number of devices (which may exceed
/// `max`), 0 when there is none, or -errno (ENOSYS: the kernel has no RDMA support).
int CRamCastVerbs_list_devices(CRamCastVerbs_DeviceName *out, int max);

/// ibv_open_device on the device called `name`. Used for inspection (devices()), not for traffic:
/// connections must use the context that rdma_cm opened (CRamCastVerbs_cm_device_context).
struct ibv_context *CRamCastVerbs_open_device(const char *name, int *err);
int CRamCastVerbs_close_device(struct ibv_context *context);

/// The ibv_context that librdmacm uses for the device `name` (from rdma_get_devices). A cm_id bound
/// to this device has `verbs` equal to it, and rdma_create_qp requires the PD to belong to it.
struct ibv_context *CRamCastVerbs_cm_device_context(const char *name, int *err);

/// Name of the device a context belongs to (ibv_get_device_name).
const char *CRamCastVerbs_context_device_name(struct ibv_context *context);

typedef struct {
    uint64_t max_mr_size;
    uint64_t node_guid;
    uint32_t vendor_id;
    uint32_t vendor_part_id;
    int32_t max_qp;
    int32_t max_qp_wr;
    int32_t max_sge;
    int32_t max_cq;
    int32_t max_cqe;
    int32_t max_mr;
    int32_t max_pd;
    uint8_t phys_port_cnt;
    char fw_ver[64];
} CRamCastVerbs_DeviceAttr;

/// ibv_query_device.
int CRamCastVerbs_query_device(struct ibv_context *context, CRamCastVerbs_DeviceAttr *out);

typedef struct {
    int32_t state;             // enum ibv_port_state
    int32_t active_mtu_bytes;  // enum ibv_mtu converted to bytes (256..4096), 0 if unknown
    int32_t max_mtu_bytes;
    int32_t link_layer;        // IBV_LINK_LAYER_*
    int32_t gid_tbl_len;
    uint32_t max_msg_sz;
    uint16_t lid;
} CRamCastVerbs_PortAttr;

/// ibv_query_port (a macro in verbs.h).
int CRamCastVerbs_query_port(struct ibv_context *context, uint8_t port, CRamCastVerbs_PortAttr *out);
const char *CRamCastVerbs_port_state_str(int state);

typedef struct {
    uint8_t raw[16];
    int32_t type;   // enum ibv_gid_type (IB / RoCE v1 / RoCE v2), -1 if the provider cannot say
} CRamCastVerbs_GID;

/// ibv_query_gid_ex when available (gives the GID type), else ibv_query_gid with type -1.
int CRamCastVerbs_query_gid(struct ibv_context *context, uint8_t port, int index, CRamCastVerbs_GID *out);

/// Scans the GID table of `port` for an IPv4-mapped (::ffff:a.b.c.d) RoCE v2 GID. On success stores
/// its index and the dotted IPv4 address (at least 16 bytes of `ipv4`) and returns 0; -ENOENT if none.
int CRamCastVerbs_find_ipv4_roce_v2_gid(struct ibv_context *context, uint8_t port, int *index,
                                        char *ipv4, size_t ipv4_len);

/// Formats a raw GID as an IPv6-style string (inet_ntop). `out` needs 46 bytes.
void CRamCastVerbs_format_gid(const uint8_t raw[16], char *out, size_t len);

// MARK: - Protection domain, memory

struct ibv_pd *CRamCastVerbs_alloc_pd(struct ibv_context *context, int *err);
int CRamCastVerbs_dealloc_pd(struct ibv_pd *pd);

/// ibv_reg_mr (a macro) with IBV_ACCESS_* flags. ENOMEM/EPERM here usually mean RLIMIT_MEMLOCK.
struct ibv_mr *CRamCastVerbs_reg_mr(struct ibv_pd *pd, void *addr, size_t length, int access, int *err);
int CRamCastVerbs_dereg_mr(struct ibv_mr *mr);

/// Page-aligned, zero-filled anonymous memory (mmap), so registration pins whole pages we own.
void *CRamCastVerbs_map_memory(size_t length, int *err);
int CRamCastVerbs_unmap_memory(void *addr, size_t length);
size_t CRamCastVerbs_page_size(void);

/// getrlimit(RLIMIT_MEMLOCK). `*unlimited` is set when the soft limit is RLIM_INFINITY.
int CRamCastVerbs_memlock_limit(uint64_t *soft, int *unlimited);
/// Whether CAP_IPC_LOCK is in the effective set (capget): the kernel then ignores RLIMIT_MEMLOCK
/// for pinned memory. Returns 1 or 0, or -errno.
int CRamCastVerbs_has_cap_ipc_lock(void);

// MARK: - Completion queues

struct ibv_cq *CRamCastVerbs_create_cq(struct ibv_context *context, int cqe, int *err);
int CRamCastVerbs_destroy_cq(struct ibv_cq *cq);
/// The depth the provider actually granted (cq->cqe), which may be larger than requested.
int CRamCastVerbs_cq_depth(struct ibv_cq *cq);

typedef struct {
    uint64_t wr_id;
    uint32_t status;    // enum ibv_wc_status
    uint32_t qp_num;
    uint32_t opcode;    // enum ibv_wc_opcode (valid only when status is IBV_WC_SUCCESS)
    uint32_t byte_len;
} CRamCastVerbs_Completion;

/// ibv_poll_cq for up to `max` entries, copied into `out`. Returns the count or -errno.
int CRamCastVerbs_poll_cq(struct ibv_cq *cq, CRamCastVerbs_Completion *out, int max);
const char *CRamCastVerbs_wc_status_str(int status);

// MARK: - Queue pairs and posting

enum {
    CRamCastVerbs_WRITE_INLINE = 1 << 0,    // IBV_SEND_INLINE
    CRamCastVerbs_WRITE_SIGNALED = 1 << 1,  // IBV_SEND_SIGNALED
};

/// One RDMA WRITE of a chain. `flags` uses CRamCastVerbs_WRITE_* (the same bits as WriteFlags).
typedef struct {
    uint64_t local_addr;
    uint64_t remote_addr;
    uint64_t wr_id;
    uint32_t length;
    uint32_t lkey;
    uint32_t rkey;
    uint32_t flags;
} CRamCastVerbs_Write;

/// The largest chain posted with one ibv_post_send; longer chains are posted in pieces of this size.
#define CRamCastVerbs_MAX_CHAIN 256

/// Links `count` RDMA WRITEs (ibv_send_wr + ibv_sge on the C stack) and posts them with one
/// ibv_post_send. Returns 0 or -errno; on failure `*bad_index` is the index of the first request
/// that was not posted (requests before it were).
int CRamCastVerbs_post_writes(struct ibv_qp *qp, const CRamCastVerbs_Write *writes, int count, int *bad_index);

/// One two-sided SEND (control messages). `flags` as for writes.
int CRamCastVerbs_post_send(struct ibv_qp *qp, uint64_t addr, uint32_t length, uint32_t lkey,
                            uint64_t wr_id, uint32_t flags);
/// One RECV buffer.
int CRamCastVerbs_post_recv(struct ibv_qp *qp, uint64_t addr, uint32_t length, uint32_t lkey, uint64_t wr_id);

typedef struct {
    uint32_t max_send_wr;
    uint32_t max_recv_wr;
    uint32_t max_send_sge;
    uint32_t max_recv_sge;
    uint32_t max_inline_data;
} CRamCastVerbs_QPCaps;

/// Devices do not report their inline limit, so this creates throwaway RC QPs with decreasing
/// cap.max_inline_data (1024, 512, 256, 128, 64, 32, 0) and returns the largest accepted request,
/// or -errno if not even 0 works. `*granted` receives what the provider wrote back into cap.
int CRamCastVerbs_probe_max_inline(struct ibv_pd *pd, struct ibv_cq *cq, uint32_t max_send_wr, int *granted);

/// ibv_modify_qp(IBV_QP_ACCESS_FLAGS): the fast revocation method (spec section 6); kept as a fallback.
int CRamCastVerbs_qp_set_access(struct ibv_qp *qp, int access);
/// ibv_query_qp(IBV_QP_STATE): stores the enum ibv_qp_state value.
int CRamCastVerbs_qp_state(struct ibv_qp *qp, int *state);
uint32_t CRamCastVerbs_qp_num(struct ibv_qp *qp);

// MARK: - rdma_cm

/// rdma_create_event_channel with its fd set O_NONBLOCK, so waiting is done with poll() and a timeout.
struct rdma_event_channel *CRamCastVerbs_cm_create_channel(int *err);
void CRamCastVerbs_cm_destroy_channel(struct rdma_event_channel *channel);
int CRamCastVerbs_cm_channel_fd(struct rdma_event_channel *channel);

/// rdma_create_id in RDMA_PS_TCP (reliable connected) with `context` as the id's context.
struct rdma_cm_id *CRamCastVerbs_cm_create_id(struct rdma_event_channel *channel, void *context, int *err);
int CRamCastVerbs_cm_destroy_id(struct rdma_cm_id *id);
void CRamCastVerbs_cm_set_context(struct rdma_cm_id *id, void *context);
void *CRamCastVerbs_cm_context(struct rdma_cm_id *id);
struct ibv_context *CRamCastVerbs_cm_verbs(struct rdma_cm_id *id);
struct ibv_qp *CRamCastVerbs_cm_qp(struct rdma_cm_id *id);
/// rdma_migrate_id: moves an id (and its pending events) to another channel.
int CRamCastVerbs_cm_migrate_id(struct rdma_cm_id *id, struct rdma_event_channel *channel);

/// rdma_bind_addr on the numeric address `host`:`port`, then rdma_listen.
int CRamCastVerbs_cm_bind_listen(struct rdma_cm_id *id, const char *host, uint16_t port, int backlog);
/// rdma_resolve_addr to the numeric address `host`:`port` (source chosen by routing).
int CRamCastVerbs_cm_resolve_addr(struct rdma_cm_id *id, const char *host, uint16_t port, int timeout_ms);
int CRamCastVerbs_cm_resolve_route(struct rdma_cm_id *id, int timeout_ms);

/// rdma_create_qp: an RC QP on `id` with the given CQs; `caps` in: requested, out: granted.
struct ibv_qp *CRamCastVerbs_cm_create_qp(struct rdma_cm_id *id, struct ibv_pd *pd, struct ibv_cq *send_cq,
                                          struct ibv_cq *recv_cq, CRamCastVerbs_QPCaps *caps, int *err);
void CRamCastVerbs_cm_destroy_qp(struct rdma_cm_id *id);

/// rdma_connect with private data (at most 56 bytes for an IB/RoCE REQ).
int CRamCastVerbs_cm_connect(struct rdma_cm_id *id, const void *private_data, uint8_t length,
                             uint8_t retry_count, uint8_t rnr_retry_count);
/// rdma_accept with private data (at most 196 bytes for an IB/RoCE REP).
int CRamCastVerbs_cm_accept(struct rdma_cm_id *id, const void *private_data, uint8_t length);
/// rdma_reject with private data (at most 148 bytes for an IB/RoCE REJ).
int CRamCastVerbs_cm_reject(struct rdma_cm_id *id, const void *private_data, uint8_t length);
int CRamCastVerbs_cm_disconnect(struct rdma_cm_id *id);

/// The largest private data copied out of an event (REP: 196, REJ: 148, REQ: 56).
#define CRamCastVerbs_MAX_PRIVATE_DATA 256

typedef struct {
    int32_t event;                 // enum rdma_cm_event_type
    int32_t status;                // event status: -errno, or the IB CM reject reason for REJECTED
    struct rdma_cm_id *id;         // for CONNECT_REQUEST: the new id of the incoming connection
    struct rdma_cm_id *listen_id;  // for CONNECT_REQUEST: the listening id
    void *context;                 // id->context at the time of the event
    uint32_t private_data_len;
    uint8_t private_data[CRamCastVerbs_MAX_PRIVATE_DATA];
    char peer_address[64];         // numeric peer address of `id`, "" if unknown
} CRamCastVerbs_CMEvent;

/// Waits up to `timeout_ms` (-1: forever) for the next event on `channel` (poll() on its fd, then
/// rdma_get_cm_event), copies it into `out` and acknowledges it. If `wake_fd` >= 0 it is polled too
/// and a readable wake_fd ends the wait. Returns 1 for an event, 0 on timeout, 2 when woken, -errno.
int CRamCastVerbs_cm_wait_event(struct rdma_event_channel *channel, int wake_fd, int timeout_ms,
                                CRamCastVerbs_CMEvent *out);
const char *CRamCastVerbs_cm_event_str(int event);

// MARK: - Wake-up fd for the control thread

/// eventfd(EFD_NONBLOCK | EFD_CLOEXEC).
int CRamCastVerbs_wake_fd_create(void);
int CRamCastVerbs_wake_fd_signal(int fd);
int CRamCastVerbs_wake_fd_drain(int fd);
int CRamCastVerbs_close_fd(int fd);

/// pthread_setname_np on the calling thread (needs _GNU_SOURCE, which Swift's Glibc import lacks).
void CRamCastVerbs_set_thread_name(const char *name);

#ifdef __cplusplus
}
#endif
