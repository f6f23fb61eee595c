// See include/CRamCastVerbs.h for why each function exists. Convention: capture errno immediately
// after the call that set it, and return it negated; never let the caller read errno.
#define _GNU_SOURCE
#include "CRamCastVerbs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

// Some verbs return a positive errno, some return -1 and set errno, some return -errno: normalize.
static int neg_errno_from(int rc) {
    if (rc == 0) return 0;
    if (rc > 0) return -rc;
    if (rc == -1) return errno ? -errno : -EIO;
    return rc;
}

static void set_err(int *err, int value) {
    if (err) *err = value;
}

// MARK: - Devices

int CRamCastVerbs_list_devices(CRamCastVerbs_DeviceName *out, int max) {
    int n = 0;
    errno = 0;
    struct ibv_device **list = ibv_get_device_list(&n);
    if (!list) return errno ? -errno : -ENODEV;
    for (int i = 0; i < n && i < max; i++) {
        snprintf(out[i].name, sizeof out[i].name, "%s", ibv_get_device_name(list[i]));
    }
    ibv_free_device_list(list);
    return n;
}

struct ibv_context *CRamCastVerbs_open_device(const char *name, int *err) {
    int n = 0;
    errno = 0;
    struct ibv_device **list = ibv_get_device_list(&n);
    if (!list) {
        set_err(err, errno ? errno : ENODEV);
        return NULL;
    }
    struct ibv_context *ctx = NULL;
    int e = ENODEV;
    for (int i = 0; i < n; i++) {
        if (strcmp(ibv_get_device_name(list[i]), name) == 0) {
            errno = 0;
            ctx = ibv_open_device(list[i]);
            e = ctx ? 0 : (errno ? errno : EIO);
            break;
        }
    }
    ibv_free_device_list(list);
    set_err(err, e);
    return ctx;
}

int CRamCastVerbs_close_device(struct ibv_context *context) {
    return neg_errno_from(ibv_close_device(context));
}

struct ibv_context *CRamCastVerbs_cm_device_context(const char *name, int *err) {
    int n = 0;
    errno = 0;
    struct ibv_context **list = rdma_get_devices(&n);
    if (!list) {
        set_err(err, errno ? errno : ENODEV);
        return NULL;
    }
    struct ibv_context *found = NULL;
    for (int i = 0; i < n; i++) {
        if (list[i] && strcmp(ibv_get_device_name(list[i]->device), name) == 0) {
            found = list[i];
            break;
        }
    }
    // Only the array is freed: librdmacm keeps the contexts open for the life of the process.
    rdma_free_devices(list);
    set_err(err, found ? 0 : ENODEV);
    return found;
}

const char *CRamCastVerbs_context_device_name(struct ibv_context *context) {
    return ibv_get_device_name(context->device);
}

int CRamCastVerbs_query_device(struct ibv_context *context, CRamCastVerbs_DeviceAttr *out) {
    struct ibv_device_attr a;
    memset(&a, 0, sizeof a);
    int rc = neg_errno_from(ibv_query_device(context, &a));
    if (rc) return rc;
    memset(out, 0, sizeof *out);
    out->max_mr_size = a.max_mr_size;
    out->node_guid = a.node_guid;
    out->vendor_id = a.vendor_id;
    out->vendor_part_id = a.vendor_part_id;
    out->max_qp = a.max_qp;
    out->max_qp_wr = a.max_qp_wr;
    out->max_sge = a.max_sge;
    out->max_cq = a.max_cq;
    out->max_cqe = a.max_cqe;
    out->max_mr = a.max_mr;
    out->max_pd = a.max_pd;
    out->phys_port_cnt = a.phys_port_cnt;
    snprintf(out->fw_ver, sizeof out->fw_ver, "%s", a.fw_ver);
    return 0;
}

static int mtu_bytes(enum ibv_mtu mtu) {
    switch (mtu) {
    case IBV_MTU_256: return 256;
    case IBV_MTU_512: return 512;
    case IBV_MTU_1024: return 1024;
    case IBV_MTU_2048: return 2048;
    case IBV_MTU_4096: return 4096;
    default: return 0;
    }
}

int CRamCastVerbs_query_port(struct ibv_context *context, uint8_t port, CRamCastVerbs_PortAttr *out) {
    struct ibv_port_attr a;
    memset(&a, 0, sizeof a);
    int rc = neg_errno_from(ibv_query_port(context, port, &a));
    if (rc) return rc;
    memset(out, 0, sizeof *out);
    out->state = a.state;
    out->active_mtu_bytes = mtu_bytes(a.active_mtu);
    out->max_mtu_bytes = mtu_bytes(a.max_mtu);
    out->link_layer = a.link_layer;
    out->gid_tbl_len = a.gid_tbl_len;
    out->max_msg_sz = a.max_msg_sz;
    out->lid = a.lid;
    return 0;
}

const char *CRamCastVerbs_port_state_str(int state) {
    return ibv_port_state_str((enum ibv_port_state)state);
}

int CRamCastVerbs_query_gid(struct ibv_context *context, uint8_t port, int index, CRamCastVerbs_GID *out) {
    struct ibv_gid_entry entry;
    memset(&entry, 0, sizeof entry);
    int rc = neg_errno_from(ibv_query_gid_ex(context, port, (uint32_t)index, &entry, 0));
    if (rc == 0) {
        memcpy(out->raw, entry.gid.raw, 16);
        out->type = (int32_t)entry.gid_type;
        return 0;
    }
    if (rc != -EOPNOTSUPP && rc != -ENOSYS) return rc;
    // Older kernels: the GID without its type.
    union ibv_gid gid;
    rc = neg_errno_from(ibv_query_gid(context, port, index, &gid));
    if (rc) return rc;
    memcpy(out->raw, gid.raw, 16);
    out->type = -1;
    return 0;
}

static int is_ipv4_mapped(const uint8_t raw[16]) {
    static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(raw, prefix, 12) == 0;
}

int CRamCastVerbs_find_ipv4_roce_v2_gid(struct ibv_context *context, uint8_t port, int *index,
                                        char *ipv4, size_t ipv4_len) {
    struct ibv_port_attr pa;
    memset(&pa, 0, sizeof pa);
    int rc = neg_errno_from(ibv_query_port(context, port, &pa));
    if (rc) return rc;
    for (int i = 0; i < pa.gid_tbl_len; i++) {
        CRamCastVerbs_GID g;
        if (CRamCastVerbs_query_gid(context, port, i, &g) != 0) continue;  // empty slots fail with EINVAL/ENODATA
        if (!is_ipv4_mapped(g.raw)) continue;
        if (g.type != IBV_GID_TYPE_ROCE_V2) continue;
        if (index) *index = i;
        if (ipv4 && ipv4_len > 0 && !inet_ntop(AF_INET, g.raw + 12, ipv4, (socklen_t)ipv4_len)) return -errno;
        return 0;
    }
    return -ENOENT;
}

void CRamCastVerbs_format_gid(const uint8_t raw[16], char *out, size_t len) {
    if (!inet_ntop(AF_INET6, raw, out, (socklen_t)len) && len > 0) out[0] = 0;
}

// MARK: - Protection domain, memory

struct ibv_pd *CRamCastVerbs_alloc_pd(struct ibv_context *context, int *err) {
    errno = 0;
    struct ibv_pd *pd = ibv_alloc_pd(context);
    set_err(err, pd ? 0 : (errno ? errno : ENOMEM));
    return pd;
}

int CRamCastVerbs_dealloc_pd(struct ibv_pd *pd) {
    return neg_errno_from(ibv_dealloc_pd(pd));
}

struct ibv_mr *CRamCastVerbs_reg_mr(struct ibv_pd *pd, void *addr, size_t length, int access, int *err) {
    errno = 0;
    struct ibv_mr *mr = ibv_reg_mr(pd, addr, length, access);
    set_err(err, mr ? 0 : (errno ? errno : ENOMEM));
    return mr;
}

int CRamCastVerbs_dereg_mr(struct ibv_mr *mr) {
    return neg_errno_from(ibv_dereg_mr(mr));
}

void *CRamCastVerbs_map_memory(size_t length, int *err) {
    void *p = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        set_err(err, errno);
        return NULL;
    }
    set_err(err, 0);
    return p;
}

int CRamCastVerbs_unmap_memory(void *addr, size_t length) {
    return munmap(addr, length) == 0 ? 0 : -errno;
}

size_t CRamCastVerbs_page_size(void) {
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (size_t)p : 4096;
}

int CRamCastVerbs_memlock_limit(uint64_t *soft, int *unlimited) {
    struct rlimit r;
    if (getrlimit(RLIMIT_MEMLOCK, &r) != 0) return -errno;
    *unlimited = r.rlim_cur == RLIM_INFINITY;
    *soft = r.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)r.rlim_cur;
    return 0;
}

int CRamCastVerbs_has_cap_ipc_lock(void) {
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capget, &hdr, data) != 0) return -errno;
    return (data[CAP_TO_INDEX(CAP_IPC_LOCK)].effective & CAP_TO_MASK(CAP_IPC_LOCK)) ? 1 : 0;
}

// MARK: - Completion queues

struct ibv_cq *CRamCastVerbs_create_cq(struct ibv_context *context, int cqe, int *err) {
    errno = 0;
    struct ibv_cq *cq = ibv_create_cq(context, cqe, NULL, NULL, 0);
    set_err(err, cq ? 0 : (errno ? errno : ENOMEM));
    return cq;
}

int CRamCastVerbs_destroy_cq(struct ibv_cq *cq) {
    return neg_errno_from(ibv_destroy_cq(cq));
}

int CRamCastVerbs_cq_depth(struct ibv_cq *cq) {
    return cq->cqe;
}

int CRamCastVerbs_poll_cq(struct ibv_cq *cq, CRamCastVerbs_Completion *out, int max) {
    enum { BATCH = 32 };
    struct ibv_wc wc[BATCH];
    int total = 0;
    while (total < max) {
        int want = max - total < BATCH ? max - total : BATCH;
        int n = ibv_poll_cq(cq, want, wc);
        if (n < 0) return total > 0 ? total : (n == -1 ? -EIO : n);
        for (int i = 0; i < n; i++) {
            CRamCastVerbs_Completion *c = &out[total + i];
            c->wr_id = wc[i].wr_id;
            c->status = wc[i].status;
            c->qp_num = wc[i].qp_num;
            c->opcode = wc[i].opcode;
            c->byte_len = wc[i].byte_len;
        }
        total += n;
        if (n < want) break;
    }
    return total;
}

const char *CRamCastVerbs_wc_status_str(int status) {
    return ibv_wc_status_str((enum ibv_wc_status)status);
}

// MARK: - Queue pairs and posting

static unsigned int send_flags(uint32_t flags) {
    unsigned int f = 0;
    if (flags & CRamCastVerbs_WRITE_INLINE) f |= IBV_SEND_INLINE;
    if (flags & CRamCastVerbs_WRITE_SIGNALED) f |= IBV_SEND_SIGNALED;
    return f;
}

static int post_write_piece(struct ibv_qp *qp, const CRamCastVerbs_Write *w, int count, int *bad_index) {
    struct ibv_send_wr wr[CRamCastVerbs_MAX_CHAIN];
    struct ibv_sge sge[CRamCastVerbs_MAX_CHAIN];
    for (int i = 0; i < count; i++) {
        sge[i].addr = w[i].local_addr;
        sge[i].length = w[i].length;
        sge[i].lkey = w[i].lkey;
        memset(&wr[i], 0, sizeof wr[i]);
        wr[i].wr_id = w[i].wr_id;
        wr[i].next = i + 1 < count ? &wr[i + 1] : NULL;
        wr[i].sg_list = &sge[i];
        wr[i].num_sge = 1;
        wr[i].opcode = IBV_WR_RDMA_WRITE;
        wr[i].send_flags = send_flags(w[i].flags);
        wr[i].wr.rdma.remote_addr = w[i].remote_addr;
        wr[i].wr.rdma.rkey = w[i].rkey;
    }
    struct ibv_send_wr *bad = NULL;
    errno = 0;
    int rc = ibv_post_send(qp, wr, &bad);
    if (rc == 0) return 0;
    int e = rc > 0 ? rc : (errno ? errno : EIO);
    *bad_index = bad ? (int)(bad - wr) : 0;
    return -e;
}

int CRamCastVerbs_post_writes(struct ibv_qp *qp, const CRamCastVerbs_Write *writes, int count, int *bad_index) {
    *bad_index = 0;
    int done = 0;
    while (done < count) {
        int n = count - done < CRamCastVerbs_MAX_CHAIN ? count - done : CRamCastVerbs_MAX_CHAIN;
        int bad = 0;
        int rc = post_write_piece(qp, writes + done, n, &bad);
        if (rc) {
            *bad_index = done + bad;
            return rc;
        }
        done += n;
    }
    return 0;
}

int CRamCastVerbs_post_send(struct ibv_qp *qp, uint64_t addr, uint32_t length, uint32_t lkey,
                            uint64_t wr_id, uint32_t flags) {
    struct ibv_sge sge = {.addr = addr, .length = length, .lkey = lkey};
    struct ibv_send_wr wr;
    memset(&wr, 0, sizeof wr);
    wr.wr_id = wr_id;
    wr.sg_list = &sge;
    wr.num_sge = 1;
    wr.opcode = IBV_WR_SEND;
    wr.send_flags = send_flags(flags);
    struct ibv_send_wr *bad = NULL;
    errno = 0;
    int rc = ibv_post_send(qp, &wr, &bad);
    return rc == 0 ? 0 : -(rc > 0 ? rc : (errno ? errno : EIO));
}

int CRamCastVerbs_post_recv(struct ibv_qp *qp, uint64_t addr, uint32_t length, uint32_t lkey, uint64_t wr_id) {
    struct ibv_sge sge = {.addr = addr, .length = length, .lkey = lkey};
    struct ibv_recv_wr wr;
    memset(&wr, 0, sizeof wr);
    wr.wr_id = wr_id;
    wr.sg_list = &sge;
    wr.num_sge = 1;
    struct ibv_recv_wr *bad = NULL;
    errno = 0;
    int rc = ibv_post_recv(qp, &wr, &bad);
    return rc == 0 ? 0 : -(rc > 0 ? rc : (errno ? errno : EIO));
}

int CRamCastVerbs_probe_max_inline(struct ibv_pd *pd, struct ibv_cq *cq, uint32_t max_send_wr, int *granted) {
    static const uint32_t candidates[] = {1024, 512, 256, 128, 64, 32, 0};
    int last_err = -EINVAL;
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        struct ibv_qp_init_attr attr;
        memset(&attr, 0, sizeof attr);
        attr.send_cq = cq;
        attr.recv_cq = cq;
        attr.qp_type = IBV_QPT_RC;
        attr.cap.max_send_wr = max_send_wr;
        attr.cap.max_recv_wr = 1;
        attr.cap.max_send_sge = 1;
        attr.cap.max_recv_sge = 1;
        attr.cap.max_inline_data = candidates[i];
        errno = 0;
        struct ibv_qp *qp = ibv_create_qp(pd, &attr);
        if (!qp) {
            last_err = -(errno ? errno : EINVAL);
            continue;
        }
        if (granted) *granted = (int)attr.cap.max_inline_data;
        ibv_destroy_qp(qp);
        return (int)candidates[i];
    }
    return last_err;
}

int CRamCastVerbs_qp_set_access(struct ibv_qp *qp, int access) {
    struct ibv_qp_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.qp_access_flags = (unsigned int)access;
    errno = 0;
    return neg_errno_from(ibv_modify_qp(qp, &attr, IBV_QP_ACCESS_FLAGS));
}

int CRamCastVerbs_qp_state(struct ibv_qp *qp, int *state) {
    struct ibv_qp_attr attr;
    struct ibv_qp_init_attr init;
    memset(&attr, 0, sizeof attr);
    memset(&init, 0, sizeof init);
    errno = 0;
    int rc = neg_errno_from(ibv_query_qp(qp, &attr, IBV_QP_STATE, &init));
    if (rc == 0) *state = attr.qp_state;
    return rc;
}

uint32_t CRamCastVerbs_qp_num(struct ibv_qp *qp) {
    return qp->qp_num;
}

// MARK: - rdma_cm

struct rdma_event_channel *CRamCastVerbs_cm_create_channel(int *err) {
    errno = 0;
    struct rdma_event_channel *ch = rdma_create_event_channel();
    if (!ch) {
        set_err(err, errno ? errno : ENODEV);
        return NULL;
    }
    int flags = fcntl(ch->fd, F_GETFL);
    if (flags < 0 || fcntl(ch->fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        int e = errno;
        rdma_destroy_event_channel(ch);
        set_err(err, e);
        return NULL;
    }
    set_err(err, 0);
    return ch;
}

void CRamCastVerbs_cm_destroy_channel(struct rdma_event_channel *channel) {
    rdma_destroy_event_channel(channel);
}

int CRamCastVerbs_cm_channel_fd(struct rdma_event_channel *channel) {
    return channel->fd;
}

struct rdma_cm_id *CRamCastVerbs_cm_create_id(struct rdma_event_channel *channel, void *context, int *err) {
    struct rdma_cm_id *id = NULL;
    errno = 0;
    if (rdma_create_id(channel, &id, context, RDMA_PS_TCP) != 0) {
        set_err(err, errno ? errno : EIO);
        return NULL;
    }
    set_err(err, 0);
    return id;
}

int CRamCastVerbs_cm_destroy_id(struct rdma_cm_id *id) {
    errno = 0;
    return neg_errno_from(rdma_destroy_id(id));
}

void CRamCastVerbs_cm_set_context(struct rdma_cm_id *id, void *context) {
    id->context = context;
}

void *CRamCastVerbs_cm_context(struct rdma_cm_id *id) {
    return id->context;
}

struct ibv_context *CRamCastVerbs_cm_verbs(struct rdma_cm_id *id) {
    return id->verbs;
}

struct ibv_qp *CRamCastVerbs_cm_qp(struct rdma_cm_id *id) {
    return id->qp;
}

int CRamCastVerbs_cm_migrate_id(struct rdma_cm_id *id, struct rdma_event_channel *channel) {
    errno = 0;
    return neg_errno_from(rdma_migrate_id(id, channel));
}

// Numeric host + port into a sockaddr (IPv4 or IPv6); never does a DNS lookup.
static int make_sockaddr(const char *host, uint16_t port, struct sockaddr_storage *ss) {
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        return 0;
    }
    return -EINVAL;
}

int CRamCastVerbs_cm_bind_listen(struct rdma_cm_id *id, const char *host, uint16_t port, int backlog) {
    struct sockaddr_storage ss;
    int rc = make_sockaddr(host, port, &ss);
    if (rc) return rc;
    errno = 0;
    if (rdma_bind_addr(id, (struct sockaddr *)&ss) != 0) return -(errno ? errno : EIO);
    errno = 0;
    if (rdma_listen(id, backlog) != 0) return -(errno ? errno : EIO);
    return 0;
}

int CRamCastVerbs_cm_resolve_addr(struct rdma_cm_id *id, const char *host, uint16_t port, int timeout_ms) {
    struct sockaddr_storage ss;
    int rc = make_sockaddr(host, port, &ss);
    if (rc) return rc;
    errno = 0;
    return rdma_resolve_addr(id, NULL, (struct sockaddr *)&ss, timeout_ms) == 0 ? 0 : -(errno ? errno : EIO);
}

int CRamCastVerbs_cm_resolve_route(struct rdma_cm_id *id, int timeout_ms) {
    errno = 0;
    return rdma_resolve_route(id, timeout_ms) == 0 ? 0 : -(errno ? errno : EIO);
}

struct ibv_qp *CRamCastVerbs_cm_create_qp(struct rdma_cm_id *id, struct ibv_pd *pd, struct ibv_cq *send_cq,
                                          struct ibv_cq *recv_cq, CRamCastVerbs_QPCaps *caps, int *err) {
    struct ibv_qp_init_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.send_cq = send_cq;
    attr.recv_cq = recv_cq;
    attr.qp_type = IBV_QPT_RC;
    attr.sq_sig_all = 0;
    attr.cap.max_send_wr = caps->max_send_wr;
    attr.cap.max_recv_wr = caps->max_recv_wr;
    attr.cap.max_send_sge = caps->max_send_sge;
    attr.cap.max_recv_sge = caps->max_recv_sge;
    attr.cap.max_inline_data = caps->max_inline_data;
    errno = 0;
    if (rdma_create_qp(id, pd, &attr) != 0) {
        set_err(err, errno ? errno : EIO);
        return NULL;
    }
    caps->max_send_wr = attr.cap.max_send_wr;
    caps->max_recv_wr = attr.cap.max_recv_wr;
    caps->max_send_sge = attr.cap.max_send_sge;
    caps->max_recv_sge = attr.cap.max_recv_sge;
    caps->max_inline_data = attr.cap.max_inline_data;
    set_err(err, 0);
    return id->qp;
}

void CRamCastVerbs_cm_destroy_qp(struct rdma_cm_id *id) {
    if (id->qp) rdma_destroy_qp(id);
}

int CRamCastVerbs_cm_connect(struct rdma_cm_id *id, const void *private_data, uint8_t length,
                             uint8_t retry_count, uint8_t rnr_retry_count) {
    struct rdma_conn_param p;
    memset(&p, 0, sizeof p);
    p.private_data = private_data;
    p.private_data_len = length;
    // Writes only: no RDMA READ or atomics are issued, but one read credit costs nothing and keeps
    // a later READ-based recovery path possible.
    p.responder_resources = 1;
    p.initiator_depth = 1;
    p.retry_count = retry_count;
    p.rnr_retry_count = rnr_retry_count;
    errno = 0;
    return rdma_connect(id, &p) == 0 ? 0 : -(errno ? errno : EIO);
}

int CRamCastVerbs_cm_accept(struct rdma_cm_id *id, const void *private_data, uint8_t length) {
    struct rdma_conn_param p;
    memset(&p, 0, sizeof p);
    p.private_data = private_data;
    p.private_data_len = length;
    p.responder_resources = 1;
    p.initiator_depth = 1;
    p.rnr_retry_count = 7;
    errno = 0;
    return rdma_accept(id, &p) == 0 ? 0 : -(errno ? errno : EIO);
}

int CRamCastVerbs_cm_reject(struct rdma_cm_id *id, const void *private_data, uint8_t length) {
    errno = 0;
    return rdma_reject(id, private_data, length) == 0 ? 0 : -(errno ? errno : EIO);
}

int CRamCastVerbs_cm_disconnect(struct rdma_cm_id *id) {
    errno = 0;
    return rdma_disconnect(id) == 0 ? 0 : -(errno ? errno : EIO);
}

static void format_sockaddr(const struct sockaddr *sa, char *out, size_t len) {
    out[0] = 0;
    if (!sa) return;
    char host[INET6_ADDRSTRLEN] = {0};
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        if (inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host))
            snprintf(out, len, "%s:%u", host, ntohs(sin->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        if (inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof host))
            snprintf(out, len, "[%s]:%u", host, ntohs(sin6->sin6_port));
    }
}

int CRamCastVerbs_cm_wait_event(struct rdma_event_channel *channel, int wake_fd, int timeout_ms,
                                CRamCastVerbs_CMEvent *out) {
    for (;;) {
        // Events may already be queued: try first, so a burst is drained without sleeping.
        struct rdma_cm_event *ev = NULL;
        errno = 0;
        if (rdma_get_cm_event(channel, &ev) == 0) {
            memset(out, 0, sizeof *out);
            out->event = ev->event;
            out->status = ev->status;
            out->id = ev->id;
            out->listen_id = ev->listen_id;
            out->context = ev->id ? ev->id->context : NULL;
            if (ev->param.conn.private_data && ev->param.conn.private_data_len > 0) {
                uint32_t n = ev->param.conn.private_data_len;
                if (n > CRamCastVerbs_MAX_PRIVATE_DATA) n = CRamCastVerbs_MAX_PRIVATE_DATA;
                memcpy(out->private_data, ev->param.conn.private_data, n);
                out->private_data_len = n;
            }
            if (ev->id) format_sockaddr(rdma_get_peer_addr(ev->id), out->peer_address, sizeof out->peer_address);
            rdma_ack_cm_event(ev);
            return 1;
        }
        int e = errno;
        if (e != EAGAIN && e != EWOULDBLOCK && e != EINTR) return -(e ? e : EIO);
        if (timeout_ms == 0) return 0;
        struct pollfd fds[2] = {{.fd = channel->fd, .events = POLLIN}, {.fd = wake_fd, .events = POLLIN}};
        int nfds = wake_fd >= 0 ? 2 : 1;
        int rc = poll(fds, (nfds_t)nfds, timeout_ms);
        if (rc < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (rc == 0) return 0;
        if (nfds == 2 && (fds[1].revents & POLLIN)) return 2;
        // Readable channel: loop to fetch. The caller recomputes the remaining timeout per call, so
        // looping here with the full timeout again is bounded by the event actually being there.
    }
}

const char *CRamCastVerbs_cm_event_str(int event) {
    return rdma_event_str((enum rdma_cm_event_type)event);
}

// MARK: - Wake-up fd

int CRamCastVerbs_wake_fd_create(void) {
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return fd >= 0 ? fd : -errno;
}

int CRamCastVerbs_wake_fd_signal(int fd) {
    uint64_t one = 1;
    return write(fd, &one, sizeof one) == (ssize_t)sizeof one ? 0 : -errno;
}

int CRamCastVerbs_wake_fd_drain(int fd) {
    uint64_t v;
    return read(fd, &v, sizeof v) == (ssize_t)sizeof v ? 0 : -errno;
}

int CRamCastVerbs_close_fd(int fd) {
    return close(fd) == 0 ? 0 : -errno;
}

void CRamCastVerbs_set_thread_name(const char *name) {
    pthread_setname_np(pthread_self(), name);
}
