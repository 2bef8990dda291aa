/*
 * Status codes and the per-thread "last error" message: every error that
 * reaches a user carries a sentence saying what went wrong, readable with
 * rh_last_error() on the thread that got the error.
 */
#include "base/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char rh_last_error_buf[512];
_Thread_local unsigned rh_error_sets;

const char *rh_status_string(rh_status_t status)
{
    switch (status) {
    case RH_OK:                      return "success";
    case RH_ERR_INVALID_PARAM:       return "invalid parameter";
    case RH_ERR_NO_MEMORY:           return "out of memory";
    case RH_ERR_NOT_INITIALIZED:     return "librayhpc is not initialized";
    case RH_ERR_ALREADY_INITIALIZED: return "librayhpc is already initialized";
    case RH_ERR_BOOTSTRAP:           return "bootstrap failed";
    case RH_ERR_TRANSPORT:           return "transport error";
    case RH_ERR_PEER_FAILED:         return "peer rank failed";
    case RH_ERR_TIMEOUT:             return "timed out";
    case RH_ERR_MALFORMED:           return "malformed message";
    case RH_ERR_UNSUPPORTED:         return "not supported";
    case RH_ERR_TOO_LARGE:           return "object too large";
    case RH_ERR_STORE_FULL:          return "object store full";
    case RH_ERR_TASK_FAILED:         return "task failed";
    case RH_ERR_UNKNOWN_FUNCTION:    return "unknown function";
    case RH_ERR_BAD_ARG_COUNT:       return "wrong argument count";
    case RH_ERR_INVALID_REF:         return "invalid object reference";
    case RH_ERR_CONFIG:              return "invalid configuration";
    case RH_ERR_BUSY:                return "resource busy";
    case RH_ERR_SHUTDOWN:            return "runtime is shutting down";
    case RH_ERR_ACTOR_DEAD:          return "actor is dead";
    case RH_ERR_NAME_TAKEN:          return "actor name taken";
    case RH_ERR_NOT_FOUND:           return "not found";
    case RH_ERR_CONFLICT:            return "version conflict";
    case RH_ERR_NO_QUORUM:           return "no quorum";
    case RH_ERR_OBJECT_LOST:         return "object lost";
    case RH_ERR_OWNER_DIED:          return "object's owner died";
    }
    return "unknown status";
}

const char *rh_last_error(void)
{
    return rh_last_error_buf;
}

rh_status_t rh_error_set(rh_status_t status, const char *fmt, ...)
{
    char msg[sizeof(rh_last_error_buf)];
    va_list ap;

    /* Formatted apart first: callers add context to the error they got by
     * passing rh_last_error() itself, which vsnprintf may not read while
     * writing it. */
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    memcpy(rh_last_error_buf, msg, sizeof(msg));
    rh_error_sets++;
    return status;
}

void rh_error_clear(void)
{
    rh_last_error_buf[0] = '\0';
}
