/*
 * Asking a running job for its state from outside it, over UCX.
 *
 * One call makes its own context and worker (nothing of the library's
 * transport: this process is no rank), connects to the rank's address with
 * peer error handling, sends the request with its own worker's address,
 * and drives the worker, sleeping on its event fd, until the answer is in,
 * the endpoint failed, or the deadline. The answer is checked as the ranks
 * check theirs: framing, id, lengths, and the request's seq, so that a
 * late answer to an earlier asker is not taken for this one.
 */
#include "obs/jobremote.h"

#include <dirent.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <ucp/api/ucp.h>
#include <ucs/config/global_opts.h>

#include "base/completion.h"
#include "obs/jobcontact.h"
#include "obs/jobgather.h"
#include "obs/jobstate.h"
#include "transport/am.h"
#include "transport/transport.h"
#include "rayhpc.h"

typedef struct rh_jr {
    ucp_context_h context;
    ucp_worker_h  worker;
    ucp_ep_h      ep;
    uint64_t      seq;
    int           failed;      /* the endpoint failed */
    ucs_status_t  fail_status;
    int           sent;        /* 1 sent, -1 failed */
    int           done;        /* 1 the answer is in, -1 it failed */
    int           receiving;   /* a rendezvous answer on its way */
    char         *text;
    size_t        len;
    ucp_address_t *mine;       /* this worker's address, sent along */
    size_t        mine_len;
} rh_jr_t;

static void rh_jr_ep_error(void *arg, ucp_ep_h ep, ucs_status_t status)
{
    rh_jr_t *jr = arg;

    (void)ep;
    jr->failed = 1;
    jr->fail_status = status;
}

static void rh_jr_sent(void *request, ucs_status_t status, void *user_data)
{
    rh_jr_t *jr = user_data;

    jr->sent = status == UCS_OK ? 1 : -1;
    if (status != UCS_OK && !jr->failed) {
        jr->failed = 1;
        jr->fail_status = status;
    }
    ucp_request_free(request);
}

static void rh_jr_received(void *request, ucs_status_t status, size_t length,
                           void *user_data)
{
    rh_jr_t *jr = user_data;

    (void)length;
    jr->receiving = 0;
    jr->done = status == UCS_OK ? 1 : -1;
    ucp_request_free(request);
}

static ucs_status_t rh_jr_on_message(void *arg, const void *header,
                                     size_t header_length, void *data,
                                     size_t length,
                                     const ucp_am_recv_param_t *param)
{
    rh_jr_t *jr = arg;
    rh_am_wire_hdr_t w;
    rh_jg_part_hdr_t h;

    if (header_length != sizeof(w) + sizeof(h) || jr->done != 0 ||
        jr->receiving || length > RH_JG_MAX_PART) {
        return UCS_OK;   /* not the answer, or one too many */
    }
    memcpy(&w, header, sizeof(w));
    memcpy(&h, (const char *)header + sizeof(w), sizeof(h));
    if (w.magic != RH_AM_MAGIC || w.version != RH_AM_VERSION ||
        w.id != RH_JG_ID_PART || w.hdr_len != sizeof(h) ||
        w.data_len != (uint32_t)length || h.seq != jr->seq ||
        h.node != RH_JG_NODE_JOB) {
        return UCS_OK;
    }
    jr->text = malloc(length + 1);
    if (jr->text == NULL) {
        jr->done = -1;
        return UCS_OK;
    }
    jr->text[length] = '\0';
    jr->len = length;
    if (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) {
        ucp_request_param_t rp;
        void *req;

        memset(&rp, 0, sizeof(rp));
        rp.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK |
                          UCP_OP_ATTR_FIELD_USER_DATA;
        rp.cb.recv_am = rh_jr_received;
        rp.user_data = jr;
        jr->receiving = 1;
        req = ucp_am_recv_data_nbx(jr->worker, data, jr->text, length, &rp);
        if (req == NULL) {
            jr->receiving = 0;
            jr->done = 1;
        } else if (UCS_PTR_IS_ERR(req)) {
            jr->receiving = 0;
            jr->done = -1;
        }
        return UCS_OK;
    }
    if (length != 0) {
        memcpy(jr->text, data, length);
    }
    jr->done = 1;
    return UCS_OK;
}

static int rh_jr_open(rh_jr_t *jr, char *why, size_t why_len)
{
    ucp_config_t *config;
    ucp_params_t params;
    ucp_worker_params_t wp;
    ucp_am_handler_param_t hp;
    ucs_status_t status;

    /* A rank that died refuses the connection, and UCX would print its
     * own error lines (on stdout) beside the line that says so; a user's
     * UCX_LOG_LEVEL wins. */
    if (getenv("UCX_LOG_LEVEL") == NULL) {
        (void)ucs_global_opts_set_value("LOG_LEVEL", "fatal");
    }
    status = ucp_config_read(NULL, NULL, &config);
    if (status != UCS_OK) {
        snprintf(why, why_len, "UCX's configuration: %s",
                 ucs_status_string(status));
        return -1;
    }
    rh_tp_config_shm_errors(config);
    memset(&params, 0, sizeof(params));
    params.field_mask = UCP_PARAM_FIELD_FEATURES;
    params.features = UCP_FEATURE_AM | UCP_FEATURE_WAKEUP;
    status = ucp_init(&params, config, &jr->context);
    ucp_config_release(config);
    if (status != UCS_OK) {
        jr->context = NULL;
        snprintf(why, why_len, "ucp_init: %s", ucs_status_string(status));
        return -1;
    }
    memset(&wp, 0, sizeof(wp));
    wp.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
    wp.thread_mode = UCS_THREAD_MODE_SINGLE;
    status = ucp_worker_create(jr->context, &wp, &jr->worker);
    if (status != UCS_OK) {
        jr->worker = NULL;
        snprintf(why, why_len, "ucp_worker_create: %s",
                 ucs_status_string(status));
        return -1;
    }
    memset(&hp, 0, sizeof(hp));
    hp.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID |
                    UCP_AM_HANDLER_PARAM_FIELD_FLAGS |
                    UCP_AM_HANDLER_PARAM_FIELD_CB |
                    UCP_AM_HANDLER_PARAM_FIELD_ARG;
    hp.id = RH_UCX_AM_ID;
    hp.flags = UCP_AM_FLAG_WHOLE_MSG;
    hp.cb = rh_jr_on_message;
    hp.arg = jr;
    status = ucp_worker_set_am_recv_handler(jr->worker, &hp);
    if (status != UCS_OK) {
        snprintf(why, why_len, "ucp_worker_set_am_recv_handler: %s",
                 ucs_status_string(status));
        return -1;
    }
    return 0;
}

/* Drives the worker until the request is over or deadline; sleeps on the
 * worker's event fd when nothing happens. */
static void rh_jr_drive(rh_jr_t *jr, uint64_t deadline, int until_sent)
{
    int efd = -1;

    (void)ucp_worker_get_efd(jr->worker, &efd);
    for (;;) {
        uint64_t now = rh_time_ns();
        struct pollfd p = { efd, POLLIN, 0 };
        int ms;

        if (until_sent ? jr->sent != 0 :
            (jr->done != 0 || (jr->failed && !jr->receiving))) {
            return;
        }
        if (now >= deadline) {
            return;
        }
        if (ucp_worker_progress(jr->worker) != 0) {
            continue;
        }
        if (efd < 0 || ucp_worker_arm(jr->worker) == UCS_ERR_BUSY) {
            continue;
        }
        ms = (int)((deadline - now) / 1000000ull) + 1;
        (void)poll(&p, 1, ms < 100 ? ms : 100);
    }
}

static void rh_jr_close(rh_jr_t *jr)
{
    if (jr->ep != NULL) {
        ucp_request_param_t param;
        void *req;

        memset(&param, 0, sizeof(param));
        param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
        param.flags = UCP_EP_CLOSE_FLAG_FORCE;
        req = ucp_ep_close_nbx(jr->ep, &param);
        if (UCS_PTR_IS_PTR(req)) {
            for (int i = 0; i < 1000000 &&
                 ucp_request_check_status(req) == UCS_INPROGRESS; i++) {
                ucp_worker_progress(jr->worker);
            }
            ucp_request_free(req);
        }
        jr->ep = NULL;
    }
    /* A rendezvous answer cut off by the close ends with it. */
    for (int i = 0; i < 100000 && jr->receiving; i++) {
        ucp_worker_progress(jr->worker);
    }
    if (jr->mine != NULL) {
        ucp_worker_release_address(jr->worker, jr->mine);
    }
    if (jr->worker != NULL) {
        ucp_worker_destroy(jr->worker);
    }
    if (jr->context != NULL) {
        ucp_cleanup(jr->context);
    }
}

char *rh_jobremote_ask(const void *addr, size_t addr_len, const uint8_t *key,
                       int gather_ms, int wait_ms, size_t *len, char *why,
                       size_t why_len)
{
    rh_jr_t jr;
    ucp_ep_params_t ep_params;
    ucp_request_param_t param;
    uint8_t hdr[sizeof(rh_am_wire_hdr_t) + sizeof(rh_jg_ask_t)];
    uint8_t *body = NULL;
    size_t body_len;
    rh_jg_guest_t who;
    char host[384];
    rh_am_wire_hdr_t w;
    rh_jg_ask_t a;
    struct timespec ts;
    uint64_t deadline = rh_time_ns() + (uint64_t)wait_ms * 1000000ull;
    ucs_status_t status;
    void *req;
    char *text = NULL;

    memset(&jr, 0, sizeof(jr));
    clock_gettime(CLOCK_REALTIME, &ts);
    /* Unique enough between askers of one rank: pid and time. */
    jr.seq = ((uint64_t)getpid() << 40) ^ (uint64_t)ts.tv_sec << 20 ^
             (uint64_t)ts.tv_nsec;
    if (rh_jr_open(&jr, why, why_len) != 0) {
        goto out;
    }
    status = ucp_worker_get_address(jr.worker, &jr.mine, &jr.mine_len);
    if (status != UCS_OK) {
        snprintf(why, why_len, "ucp_worker_get_address: %s",
                 ucs_status_string(status));
        goto out;
    }
    memset(&ep_params, 0, sizeof(ep_params));
    ep_params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS |
                           UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                           UCP_EP_PARAM_FIELD_ERR_HANDLER;
    ep_params.address = addr;
    ep_params.err_mode = UCP_ERR_HANDLING_MODE_PEER;
    ep_params.err_handler.cb = rh_jr_ep_error;
    ep_params.err_handler.arg = &jr;
    status = ucp_ep_create(jr.worker, &ep_params, &jr.ep);
    if (status != UCS_OK) {
        jr.ep = NULL;
        snprintf(why, why_len, "cannot connect: %s",
                 ucs_status_string(status));
        goto out;
    }
    /* who asks (pid, host key), then where to answer */
    rh_jc_host_key(host, sizeof(host));
    memcpy(who.key, key, sizeof(who.key));
    who.pid = (int32_t)getpid();
    who.host_len = (uint32_t)strlen(host);
    body_len = sizeof(who) + who.host_len + jr.mine_len;
    body = malloc(body_len);
    if (body == NULL) {
        snprintf(why, why_len, "no memory for the request");
        goto out;
    }
    memcpy(body, &who, sizeof(who));
    memcpy(body + sizeof(who), host, who.host_len);
    memcpy(body + sizeof(who) + who.host_len, jr.mine, jr.mine_len);
    memset(&w, 0, sizeof(w));
    w.magic = RH_AM_MAGIC;
    w.version = RH_AM_VERSION;
    w.flags = RH_AM_FLAG_GUEST;
    w.id = RH_JG_ID_GUEST;
    w.hdr_len = sizeof(a);
    w.src = RH_AM_SRC_GUEST;
    w.data_len = (uint32_t)body_len;
    memset(&a, 0, sizeof(a));
    a.seq = jr.seq;
    a.timeout_ms = (uint32_t)gather_ms;
    memcpy(hdr, &w, sizeof(w));
    memcpy(hdr + sizeof(w), &a, sizeof(a));
    memset(&param, 0, sizeof(param));
    param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK |
                         UCP_OP_ATTR_FIELD_USER_DATA |
                         UCP_OP_ATTR_FIELD_FLAGS;
    param.cb.send = rh_jr_sent;
    param.user_data = &jr;
    param.flags = UCP_AM_SEND_FLAG_EAGER;
    req = ucp_am_send_nbx(jr.ep, RH_UCX_AM_ID, hdr, sizeof(hdr), body,
                          body_len, &param);
    if (req == NULL) {
        jr.sent = 1;
    } else if (UCS_PTR_IS_ERR(req)) {
        snprintf(why, why_len, "the request failed: %s",
                 ucs_status_string(UCS_PTR_STATUS(req)));
        goto out;
    } else {
        /* Its buffers (body, hdr) stay until it ends. */
        rh_jr_drive(&jr, deadline, 1);
        if (jr.sent == 0) {
            ucp_request_cancel(jr.worker, req);
            rh_jr_drive(&jr, rh_time_ns() + 1000000000ull, 1);
        }
    }
    if (jr.sent == 1) {
        rh_jr_drive(&jr, deadline, 0);
    }
    if (jr.done == 1) {
        text = jr.text;
        *len = jr.len;
        jr.text = NULL;
    } else if (rh_time_ns() >= deadline) {
        snprintf(why, why_len, "it did not answer within %d ms", wait_ms);
    } else if (jr.failed) {
        snprintf(why, why_len, "UCX reported %s",
                 ucs_status_string(jr.fail_status));
    } else if (jr.done == -1) {
        snprintf(why, why_len, "its answer could not be received");
    } else {
        snprintf(why, why_len, "it did not answer within %d ms", wait_ms);
    }
out:
    rh_jr_close(&jr);   /* ends the request, if still on its way */
    free(body);
    free(jr.text);
    return text;
}

/* ---- the report through the contact records ------------------------------ */

static struct {
    int         remote_only;
    const char *contact_file;
    const char *dir_setting;
    int         timeout_ms;
} rh_jrc = { .timeout_ms = RH_JOBGATHER_TIMEOUT_MS };

void rh_jobremote_configure(int remote_only, const char *contact_file,
                            const char *dir_setting, int timeout_ms)
{
    rh_jrc.remote_only = remote_only || contact_file != NULL;
    rh_jrc.contact_file = contact_file;
    rh_jrc.dir_setting = dir_setting;
    rh_jrc.timeout_ms = timeout_ms > 0 ? timeout_ms : RH_JOBGATHER_TIMEOUT_MS;
}

int rh_jobremote_local_allowed(void)
{
    return !rh_jrc.remote_only;
}

enum { RH_JRC_ANSWERED, RH_JRC_FAILED, RH_JRC_NONE, RH_JRC_STALE };

/* The job of the record at path, asked at each of its servers in turn
 * until one answers. */
static int rh_jrc_print_record(const char *path, const char *job, FILE *out,
                               FILE *err, int gcs_only)
{
    rh_jc_t c;
    rh_status_t s = rh_jc_read(path, &c);
    char host[384], why[256];
    int *gone, ngone = 0, result = RH_JRC_FAILED;
    int wait_ms = rh_jrc.timeout_ms +
                  (rh_jrc.timeout_ms / 2 > 1000 ? rh_jrc.timeout_ms / 2 :
                   1000);

    if (s == RH_ERR_NOT_FOUND) {
        return RH_JRC_NONE;
    }
    if (s != RH_OK) {
        fprintf(err, "rayhpc-info: not a contact record: %s\n",
                rh_last_error());
        return RH_JRC_FAILED;
    }
    if (job != NULL && strcmp(job, c.job) != 0) {
        fprintf(err, "rayhpc-info: %s is the contact record of job %s, not "
                "of job %s\n", path, c.job, job);
        rh_jc_free(&c);
        return RH_JRC_FAILED;
    }
    gone = calloc((size_t)c.n, sizeof(int));
    if (gone == NULL) {
        fprintf(err, "rayhpc-info: no memory to read %s\n", path);
        rh_jc_free(&c);
        return RH_JRC_FAILED;
    }
    rh_jc_host_key(host, sizeof(host));
    for (int i = 0; i < c.n; i++) {
        gone[i] = rh_jc_server_gone(&c.servers[i], c.created, host);
        ngone += gone[i];
    }
    if (ngone == c.n) {
        /* Every server ran here and is gone: a job that never reached
         * rh_finalize. Nobody else will remove its record. */
        fprintf(err, "rayhpc-info: the contact record %s of job %s is "
                "stale: its serving ranks ran on this host and are gone "
                "(removed)\n", path, c.job);
        unlink(path);
        free(gone);
        rh_jc_free(&c);
        return RH_JRC_STALE;
    }
    for (int i = 0; i < c.n && result != RH_JRC_ANSWERED; i++) {
        const rh_jc_server_t *sv = &c.servers[i];
        size_t len = 0;
        char *text;

        if (gone[i]) {
            fprintf(err, "rayhpc-info: job %s: rank %d (node %d) is gone "
                    "(pid %d on this host ended); asking the next\n", c.job,
                    sv->rank, sv->node, sv->pid);
            continue;
        }
        text = rh_jobremote_ask(sv->addr, sv->addr_len, sv->key,
                                rh_jrc.timeout_ms, wait_ms, &len, why,
                                sizeof(why));
        if (text != NULL && rh_jobstate_print_text(text, out, gcs_only) > 0) {
            result = RH_JRC_ANSWERED;
        } else {
            if (text != NULL) {
                snprintf(why, sizeof(why), "its answer holds no rank");
            }
            fprintf(err, "rayhpc-info: job %s: rank %d (node %d) did not "
                    "answer: %s\n", c.job, sv->rank, sv->node, why);
        }
        free(text);
    }
    if (result != RH_JRC_ANSWERED) {
        fprintf(err, "rayhpc-info: no serving rank of job %s answered "
                "(contact record %s)\n", c.job, path);
    }
    free(gone);
    rh_jc_free(&c);
    return result;
}

int rh_jobremote_print_jobs(const char *job, const char *local_why,
                            FILE *out, FILE *err, int gcs_only)
{
    char dir[512], path[1024], lead[600];
    DIR *d;
    struct dirent *de;
    int found = 0, any = 0, r;

    snprintf(lead, sizeof(lead), "%s%s", local_why != NULL ? local_why : "",
             local_why != NULL ? ", and " : "");
    if (rh_jrc.contact_file != NULL) {
        r = rh_jrc_print_record(rh_jrc.contact_file, job, out, err,
                                gcs_only);
        if (r == RH_JRC_NONE) {
            fprintf(err, "rayhpc-info: no contact record at %s\n",
                    rh_jrc.contact_file);
        }
        return r == RH_JRC_ANSWERED ? 0 : 1;
    }
    if (!rh_jc_dir(rh_jrc.dir_setting, dir, sizeof(dir))) {
        fprintf(err, "rayhpc-info: %sno contact record is looked for (%s)\n",
                lead, dir);
        return 1;
    }
    if (job != NULL) {
        rh_jc_path(dir, job, path, sizeof(path));
        r = rh_jrc_print_record(path, job, out, err, gcs_only);
        if (r == RH_JRC_NONE) {
            fprintf(err, "rayhpc-info: %sjob %s has no contact record (%s)\n",
                    lead, job, path);
        }
        return r == RH_JRC_ANSWERED ? 0 : 1;
    }
    d = opendir(dir);
    while (d != NULL && (de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);

        if (de->d_name[0] == '.' ||
            (n > 4 && strcmp(de->d_name + n - 4, ".tmp") == 0)) {
            continue;   /* a record being written */
        }
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        any++;
        if (found > 0) {
            fprintf(out, "\n");
        }
        found += rh_jrc_print_record(path, NULL, out, err, gcs_only) ==
                 RH_JRC_ANSWERED;
    }
    if (d != NULL) {
        closedir(d);
    }
    if (found == 0) {
        fprintf(err, "rayhpc-info: %s%s holds no contact record of a running "
                "job%s\n", lead, dir, any > 0 ? " (see above)" : "");
        return 1;
    }
    return 0;
}
