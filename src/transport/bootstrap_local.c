/*
 * The `local` backend: ranks started by rayhpc-run talk to it over the
 * socket whose descriptor is in RAYHPC_LOCAL_FD (protocol: local_proto.h).
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/status.h"
#include "transport/bootstrap.h"
#include "transport/local_proto.h"

static int rh_local_fd(rh_bootstrap_t *bs)
{
    return (int)(intptr_t)bs->priv;
}

static int rh_local_env_int(const char *name, long min, long max, long *out)
{
    const char *s = getenv(name);
    char *end;

    if (s == NULL) {
        return -1;
    }
    errno = 0;
    *out = strtol(s, &end, 10);
    return (errno || *end || end == s || *out < min || *out > max) ? -1 : 0;
}

/* Set once rh_finalize closed the launcher's socket: its descriptor may
 * name another file since, and rayhpc-run exchanges addresses once. */
static int rh_local_left;

static rh_status_t rh_local_init(rh_bootstrap_t *bs)
{
    long fd, rank, size;

    if (rh_local_left) {
        return rh_error_set(RH_ERR_BOOTSTRAP, "rayhpc-run joins a process "
                            "to its job once: rh_init after rh_finalize "
                            "cannot join it again (bootstrap \"singleton\" "
                            "starts a one-rank job instead)");
    }
    if (rh_local_env_int(RH_LOCAL_ENV_FD, 0, INT_MAX, &fd) ||
        rh_local_env_int(RH_LOCAL_ENV_SIZE, 1, INT_MAX, &size) ||
        rh_local_env_int(RH_LOCAL_ENV_RANK, 0, size - 1, &rank)) {
        return rh_error_set(RH_ERR_BOOTSTRAP, "the local bootstrap needs "
                            RH_LOCAL_ENV_FD ", " RH_LOCAL_ENV_RANK " and "
                            RH_LOCAL_ENV_SIZE " as set by rayhpc-run");
    }
    bs->rank = (int)rank;
    bs->size = (int)size;
    bs->local_size = (int)size;   /* rayhpc-run forks them all here */
    bs->priv = (void *)(intptr_t)fd;
    return RH_OK;
}

/* Moves exactly len bytes through the socket (reading or writing), across
 * short transfers and signals; -1 when the launcher went away. */
static int rh_local_io(int fd, void *buf, size_t len, int writing)
{
    char *p = buf;

    while (len > 0) {
        ssize_t n = writing ? write(fd, p, len) : read(fd, p, len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int rh_local_write(int fd, const void *buf, size_t len)
{
    return rh_local_io(fd, (void *)buf, len, 1);
}

static int rh_local_read(int fd, void *buf, size_t len)
{
    return rh_local_io(fd, buf, len, 0);
}

static rh_status_t rh_local_allgather(rh_bootstrap_t *bs, const void *blob,
                                      size_t len, rh_blob_set_t *out)
{
    int fd = rh_local_fd(bs);
    rh_local_frame_t frame = { RH_LOCAL_FENCE, (uint32_t)len };
    uint8_t *data;

    if (len > RH_LOCAL_MAX_BODY) {
        return rh_error_set(RH_ERR_BOOTSTRAP, "bootstrap blob too large");
    }
    if (rh_local_write(fd, &frame, sizeof(frame)) ||
        rh_local_write(fd, blob, len)) {
        return rh_error_set(RH_ERR_BOOTSTRAP, "lost the connection to "
                            "rayhpc-run: %s", strerror(errno));
    }
    if (rh_local_read(fd, &frame, sizeof(frame))) {
        return rh_error_set(RH_ERR_BOOTSTRAP, "rayhpc-run closed the "
                            "connection during the exchange");
    }
    if (frame.type != RH_LOCAL_FENCE_DONE || frame.len > RH_LOCAL_MAX_BODY) {
        return rh_error_set(RH_ERR_BOOTSTRAP, "unexpected answer from "
                            "rayhpc-run (type %u, %u bytes)", frame.type,
                            frame.len);
    }
    data = malloc(frame.len ? frame.len : 1);
    if (data == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "exchange answer");
    }
    if (rh_local_read(fd, data, frame.len)) {
        free(data);
        return rh_error_set(RH_ERR_BOOTSTRAP, "exchange answer truncated");
    }
    return rh_blob_set_parse(out, data, frame.len, bs->size);
}

static void rh_local_finalize(rh_bootstrap_t *bs)
{
    close(rh_local_fd(bs));
    rh_local_left = 1;
}

static void rh_local_abort(rh_bootstrap_t *bs, int code, const char *msg)
{
    size_t mlen = strlen(msg);
    rh_local_frame_t frame = { RH_LOCAL_ABORT,
                               (uint32_t)(sizeof(int32_t) + mlen) };
    int32_t c = code;
    int fd = rh_local_fd(bs);

    if (rh_local_write(fd, &frame, sizeof(frame)) == 0 &&
        rh_local_write(fd, &c, sizeof(c)) == 0) {
        (void)rh_local_write(fd, msg, mlen);
    }
    _exit(code ? code : 1);
}

static void rh_local_unfinished(rh_bootstrap_t *bs)
{
    rh_local_frame_t frame = { RH_LOCAL_UNFINISHED, 0 };

    (void)rh_local_write(rh_local_fd(bs), &frame, sizeof(frame));
}

const rh_bootstrap_ops_t rh_bootstrap_local_ops = {
    "local", rh_local_init, rh_local_allgather, rh_local_finalize,
    rh_local_abort, rh_local_unfinished
};
