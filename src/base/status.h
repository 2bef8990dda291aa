/* Internal side of rh_status_t: setting the per-thread error message. */
#ifndef RH_BASE_STATUS_H
#define RH_BASE_STATUS_H

#include "rayhpc.h"

/* Records a printf-style message for rh_last_error() and returns status,
 * so that error paths read `return rh_error_set(RH_ERR_X, "...", ...);`. */
rh_status_t rh_error_set(rh_status_t status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void rh_error_clear(void);

#define rh_likely(x)   __builtin_expect(!!(x), 1)
#define rh_unlikely(x) __builtin_expect(!!(x), 0)

#endif
