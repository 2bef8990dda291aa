/*
 * The one table of RAYHPC_* settings: name, default, type, one-line doc and
 * parser. rh_config_load_env() fills an rh_config_t from the environment;
 * rayhpc-info prints the table. Unknown RAYHPC_* variables get a warning
 * that names the closest real setting.
 */
#ifndef RH_BASE_CONFIG_H
#define RH_BASE_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rayhpc.h"

#define RH_CONFIG_PREFIX "RAYHPC_"

typedef enum rh_bootstrap_kind {
    RH_BOOTSTRAP_AUTO = 0,
    RH_BOOTSTRAP_PMIX,
    RH_BOOTSTRAP_MPI,
    RH_BOOTSTRAP_LOCAL,
    RH_BOOTSTRAP_SINGLETON
} rh_bootstrap_kind_t;

typedef struct rh_config {
    int      log_level;        /* rh_log_level_t */
    int      bootstrap;        /* rh_bootstrap_kind_t */
    char     node_id[128];     /* empty: the host name */
    int      progress;         /* rh_progress_mode_t */
    uint64_t progress_spin;    /* idle polls before the adaptive mode sleeps */
    uint64_t peer_check_ms;    /* liveness check of same-host peers */
    uint64_t keepalive_ms;     /* UCX keepalive for remote peers */
    uint64_t rndv_thresh;      /* payloads from this size go zero copy */
    uint64_t finalize_timeout_ms;
    uint64_t store_size;       /* bytes of the node's object store */
    int      hugepages;        /* 0 auto, 1 on, 2 off */
    uint64_t num_workers;      /* 0: the node's cores shared by its ranks */
    uint64_t help_depth;       /* nested tasks on a waiting worker's stack */
    char     resources[512];   /* custom resources: "name=amount,..." */
    uint64_t inline_max;       /* objects below this travel in messages */
    uint64_t pull_chunk;       /* bytes per RDMA read of a pull */
    uint64_t spillback_threshold;  /* waiting tasks per worker */
    uint64_t heartbeat_ms;     /* load reports to the global scheduler */
    uint64_t send_queue_max;   /* sends from other threads not yet done */
    uint64_t remote_tasks_max; /* tasks out on other ranks or spilled */
    uint64_t fault_sends;      /* tests: every Nth send fails (0: none) */
    char     timeline[512];    /* trace file written at finalize ("": off) */
    uint64_t summary;          /* 1: rank 0 prints the job's state at
                                * finalize */
    uint64_t gpu_chunk;        /* device objects' staging chunk, bytes */
    char     spill_dir[512];   /* where objects spill; "": the temp dir */
    double   spill_threshold;  /* fraction of the store that starts it */
    uint64_t spill_max;        /* bytes spill files may take; 0: any */
    int      spill_direct;     /* 0 auto (O_DIRECT where taken), 1 off */
    uint64_t put_timeout_ms;   /* how long a put waits for room */
    uint64_t gcs_shards;       /* GCS shards; 0: one per node */
    uint64_t gcs_replicas;     /* ranks in each GCS chain */
    uint64_t gcs_dump;         /* print the GCS at rh_finalize */
    uint64_t failure_timeout_ms;  /* silence after which a rank is dead */
    uint64_t rx_watch;         /* end a rank whose receive queue stalled */
    uint64_t drive_us;         /* a waiter drives the network this long */
    uint64_t coalesce;         /* 1: queued small sends go as batches */
    uint64_t shm_ring;         /* 1: same-host messages through rings */
    uint64_t shm_ring_bytes;   /* bytes of each same-host ring */
    int      connect_all;      /* 0 auto, 1 on, 2 off: rh_init connects */
    uint64_t lineage_max_bytes;/* task specs kept to rebuild lost objects */
    uint64_t retry_backoff_ms; /* first wait before a task runs again */
    int      pmix_leave;       /* rh_pmix_leave_t */
    char     job_contact_dir[512];  /* the jobs' contact records; "": in
                                     * $HOME/.rayhpc/jobs, "off": none */
} rh_config_t;

/* When a rank of the pmix bootstrap leaves PMIx (RAYHPC_PMIX_LEAVE). */
typedef enum rh_pmix_leave {
    RH_PMIX_LEAVE_AUTO = 0,    /* START under Slurm, END elsewhere */
    RH_PMIX_LEAVE_START,       /* right after the start-up exchange */
    RH_PMIX_LEAVE_END          /* in rh_finalize */
} rh_pmix_leave_t;

typedef struct rh_config_field rh_config_field_t;

typedef struct rh_config_type {
    const char *name;          /* shown by rayhpc-info: "size", "enum" ... */
    /* Parses `value` into `dst`; on error returns non-zero and writes a
     * sentence saying what is accepted into err. */
    int (*parse)(const rh_config_field_t *f, const char *value, void *dst,
                 char *err, size_t errlen);
    void (*print)(const rh_config_field_t *f, const void *src, char *buf,
                  size_t len);
} rh_config_type_t;

struct rh_config_field {
    const char             *name;     /* without the RAYHPC_ prefix */
    const char             *dflt;
    const char             *doc;
    size_t                  offset;   /* into rh_config_t */
    const rh_config_type_t *type;
    const char *const      *choices;  /* enum names, NULL-terminated */
    uint64_t                min, max; /* numeric range, inclusive */
};

extern const rh_config_field_t rh_config_table[];
extern rh_config_t rh_cfg;           /* the process's settings */

void rh_config_defaults(rh_config_t *cfg);

/* Sets one setting by name (without prefix) from a string. */
rh_status_t rh_config_set(rh_config_t *cfg, const char *name,
                          const char *value);

/* Applies every RAYHPC_* variable that is set; the first bad value fails
 * with RH_ERR_CONFIG and a message naming the variable. */
rh_status_t rh_config_load_env(rh_config_t *cfg);

/* Warns about each RAYHPC_* variable in the environment that is not a
 * setting; returns how many there were. */
int rh_config_warn_unknown_env(void);

/* The setting name closest to `name` (both without prefix), or NULL when
 * none is close enough to be a likely misspelling. */
const char *rh_config_closest(const char *name);

/* Value of one field as text. */
void rh_config_format(const rh_config_t *cfg, const rh_config_field_t *f,
                      char *buf, size_t len);

/* "NAME=value\n" for each setting every rank of a job needs the same
 * (ring layout, GCS chains), into buf; returns the length it needs. */
size_t rh_config_job_wide(const rh_config_t *cfg, char *buf, size_t len);

/* The first job-wide setting whose value differs between two texts of
 * rh_config_job_wide: 0 when none does, else 1 with the setting's name and
 * both values (a value missing from a text reads "unset"). */
int rh_config_job_wide_diff(const char *mine, const char *theirs,
                            char *name, size_t name_len, char *my_value,
                            char *their_value, size_t value_len);

/* Prints every setting, its value and doc (for rayhpc-info). */
void rh_config_print(const rh_config_t *cfg, FILE *out);

#endif
