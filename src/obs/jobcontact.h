/*
 * The job's contact record: how a process on a host with none of the job's
 * ranks (a login node, another node of the allocation) finds the job and
 * reaches it over UCX, for rayhpc-info --job.
 *
 * Rank 0 writes it at rh_init, once the ranks serve their state, to
 * RAYHPC_JOB_CONTACT_DIR/JOB ($HOME/.rayhpc/jobs/JOB by default: a home
 * directory is shared across the nodes of HPC sites), and removes it at
 * rh_finalize. Text, one record a line:
 *   rayhpc-job-contact 1
 *   job JOB
 *   ranks N nodes M
 *   created SECONDS                      (since the epoch)
 *   server node K rank R pid P host HOSTKEY key HEX addr HEX
 *                                  (one per node: its first rank; key: the
 *                                   16 bytes it asks of a guest)
 *   end
 * HOSTKEY is the host name and pid namespace (the start-up blob's), so a
 * reader on the same host can tell that a server is gone: its pid ended,
 * or belongs to a process started after the record (pid reused). The
 * file is its user's alone (0600): whoever reads it can ask the job. A record
 * whose servers are all gone so is stale: a job killed before rh_finalize.
 */
#ifndef RH_OBS_JOBCONTACT_H
#define RH_OBS_JOBCONTACT_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

#define RH_JC_MAX_ADDR   65536        /* a worker address, bytes */
#define RH_JC_MAX_TEXT   (16u << 20)  /* a record, bytes */

typedef struct rh_jc_server {
    int      node, rank, pid;
    char     host[384];
    uint8_t  key[16];     /* its guest key (obs/jobgather.h) */
    uint8_t *addr;        /* malloc'd */
    size_t   addr_len;
} rh_jc_server_t;

typedef struct rh_jc {
    char            job[160];
    int             ranks, nodes;
    int64_t         created;
    int             n;          /* servers */
    rh_jc_server_t *servers;    /* malloc'd, by node */
} rh_jc_t;

/* This process's host key: host name and pid namespace. */
void rh_jc_host_key(char *buf, size_t len);

/* The directory of the records for setting (RAYHPC_JOB_CONTACT_DIR):
 * 1 with its path in buf, 0 when records are off (or there is no $HOME):
 * buf then says why. */
int rh_jc_dir(const char *setting, char *buf, size_t len);

/* The record's path for job in dir (the id kept to characters a file name
 * takes). */
void rh_jc_path(const char *dir, const char *job, char *buf, size_t len);

/* The record as text (malloc'd, *len bytes, NUL ended); NULL: no memory. */
char *rh_jc_format(const rh_jc_t *c, size_t *len);

/* Parses a record (untrusted: bounded, every field checked); on an error
 * c is left empty and the message says what is wrong. */
rh_status_t rh_jc_parse(const char *text, size_t len, rh_jc_t *c);

/* Reads and parses the record at path (RH_ERR_NOT_FOUND: none there). */
rh_status_t rh_jc_read(const char *path, rh_jc_t *c);

/* Writes c to path whole or not at all (a temporary file renamed), making
 * its directory (0700) when missing. */
rh_status_t rh_jc_write(const char *path, const rh_jc_t *c);

/* Whether server s of a record made at `created` is known gone: it ran on
 * this host (host_key) and its pid ended or was reused. A server on
 * another host is never known gone here. */
int rh_jc_server_gone(const rh_jc_server_t *s, int64_t created,
                      const char *host_key);

/* The same for any process: pid on host (a host key); since > 0 also
 * takes a process started after since for another one. */
int rh_jc_process_gone(const char *host, int pid, int64_t since,
                       const char *host_key);

void rh_jc_free(rh_jc_t *c);

/* Rank 0 at rh_init, once its node serves its state: writes c where
 * setting (RAYHPC_JOB_CONTACT_DIR) says, after removing the stale records
 * there; a failure is only logged (a warning when the user named the
 * directory, info for $HOME): the job runs without it. */
void rh_jc_publish(const rh_jc_t *c, const char *setting);

/* Rank 0 at rh_finalize: removes the record it wrote, if it is still
 * that one. */
void rh_jc_withdraw(void);

#endif
