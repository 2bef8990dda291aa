/*
 * rayhpc-info's side of asking a job from outside it: its own UCX context
 * and worker, an endpoint to a serving rank's worker address (from the
 * job's contact record, jobcontact.h), the request of jobgather.h, and the
 * wait for the answer, bounded: an endpoint that fails or a rank that does
 * not answer in time ends the wait with a sentence saying so.
 */
#ifndef RH_OBS_JOBREMOTE_H
#define RH_OBS_JOBREMOTE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Asks the rank at addr (addr_len bytes), showing its guest key (16
 * bytes, from the contact record), for the whole job, gathered within
 * gather_ms, and waits at most wait_ms. Returns the gathered text
 * (malloc'd, *len bytes, NUL ended), or NULL with why filled. */
char *rh_jobremote_ask(const void *addr, size_t addr_len, const uint8_t *key,
                       int gather_ms, int wait_ms, size_t *len, char *why,
                       size_t why_len);

/* rayhpc-info's choices: remote_only (--remote: this host's sockets are
 * not used, as on a host with none of the job's ranks), contact_file
 * (--contact FILE: that record alone, implies remote_only), dir_setting
 * (RAYHPC_JOB_CONTACT_DIR), timeout_ms (--timeout: the gather's; the
 * answer is waited for half as long again, a second at least). */
void rh_jobremote_configure(int remote_only, const char *contact_file,
                            const char *dir_setting, int timeout_ms);

/* Whether this host's job sockets may be read first (no --remote). */
int rh_jobremote_local_allowed(void);

/* The report of JOB (NULL: of every job with a contact record, or of the
 * --contact record) through the contact records, to out; on err a line
 * for each server that did not answer, and one line when no job answered
 * (prefixed by local_why, what the local sockets said, when set): no
 * record, a stale record (its servers ran on this host and are gone: the
 * record is removed), or no server answered. Returns 0 when a job
 * answered, else 1. */
int rh_jobremote_print_jobs(const char *job, const char *local_why,
                            FILE *out, FILE *err, int gcs_only);

#endif
