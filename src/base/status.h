/* Internal side of rh_status_t: setting the per-thread error message. */
#ifndef RH_BASE_STATUS_H
#define RH_BASE_STATUS_H

#include "rayhpc.h"

/* Records a printf-style message for rh_last_error() and returns status,
 * so that error paths read `return rh_error_set(RH_ERR_X, "...", ...);`. */
rh_status_t rh_error_set(rh_status_t status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void rh_error_clear(void);

/* Counts the messages rh_error_set recorded on this thread: a caller that
 * reads it before and after a call knows whether rh_last_error() is that
 * call's, without clearing what its own caller may still read. */
extern _Thread_local unsigned rh_error_sets;

#define rh_likely(x)   __builtin_expect(!!(x), 1)
#define rh_unlikely(x) __builtin_expect(!!(x), 0)

#endif
