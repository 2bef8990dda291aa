/*
 * Timeline buffers and the trace file. Each thread appends to its own
 * chunk list; the writer at rh_finalize reads a chunk's `used` count with
 * acquire, so a thread still recording (the progress thread) is read up
 * to the last event it finished.
 */
#include "obs/timeline.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/log.h"

#define RH_TL_CHUNK      4096         /* events in a thread's first chunk */
#define RH_TL_BIG        (2u << 20)   /* bytes of each later one: a huge
                                       * page where the kernel has one */
#define RH_TL_NAME       24
#define RH_TL_MAX_EVENTS (1u << 22)   /* per thread: 224 MiB at most */
#define RH_TL_PATH       512

typedef struct rh_tl_event {
    uint64_t ts;          /* timeline clock ticks: rh_tlclock_ns at write */
    uint64_t dur;         /* ticks */
    uint64_t bytes;
    int32_t  peer;
    uint8_t  kind;
    char     name[RH_TL_NAME];
} rh_tl_event_t;

typedef struct rh_tl_chunk {
    /* Written by the owner, read by the writer of the part meanwhile. */
    _Atomic(struct rh_tl_chunk *) next;
    _Atomic uint32_t    used;
    uint32_t            cap;     /* events it holds */
    int                 mapped;  /* mmap'd (big), else malloc'd */
    rh_tl_event_t       ev[];
} rh_tl_chunk_t;

#define RH_TL_BIG_EVENTS \
    ((RH_TL_BIG - sizeof(rh_tl_chunk_t)) / sizeof(rh_tl_event_t))

typedef struct rh_tl_buf {
    struct rh_tl_buf *next;
    _Atomic(rh_tl_chunk_t *) head;
    rh_tl_chunk_t    *cur;       /* the owner's only */
    uint64_t          count;
    _Atomic uint64_t  dropped;
    int               tid;
    char              track[32];
} rh_tl_buf_t;

int rh_tl_on;

static struct {
    pthread_mutex_t  lock;       /* the list of buffers: new threads only */
    rh_tl_buf_t     *bufs;
    int              ntracks;
    unsigned         gen;        /* a new one each rh_init */
    int              rank;
    char             path[RH_TL_PATH];
} rh_tl = { .lock = PTHREAD_MUTEX_INITIALIZER };

static __thread rh_tl_buf_t *rh_tl_mine;
static __thread unsigned rh_tl_mine_gen;

static const char *const rh_tl_cat[RH_TL_KINDS] = {
    "task", "actor", "wait", "pull", "forward", "sched_spill", "spill",
    "restore"
};

/* A thread's next chunk. Its first is small (most threads record a few
 * events); the later ones are 2 MiB, aligned and advised as a huge page:
 * a busy thread otherwise takes a page fault every 73 events (4 KiB
 * pages), which cost more than the rest of recording them on a VM. */
static rh_tl_chunk_t *rh_tl_chunk_new(int first)
{
    rh_tl_chunk_t *c;

    if (first) {
        c = malloc(sizeof(*c) + RH_TL_CHUNK * sizeof(rh_tl_event_t));
        if (c == NULL) {
            return NULL;
        }
        c->cap = RH_TL_CHUNK;
        c->mapped = 0;
    } else {
        /* twice the size, to cut an aligned 2 MiB out of it */
        size_t span = 2 * (size_t)RH_TL_BIG;
        char *p = mmap(NULL, span, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        uintptr_t a;

        if (p == MAP_FAILED) {
            return NULL;
        }
        a = ((uintptr_t)p + RH_TL_BIG - 1) & ~((uintptr_t)RH_TL_BIG - 1);
        if (a > (uintptr_t)p) {
            munmap(p, a - (uintptr_t)p);
        }
        munmap((char *)a + RH_TL_BIG,
               (uintptr_t)p + span - (a + RH_TL_BIG));
        c = (rh_tl_chunk_t *)a;
#ifdef MADV_HUGEPAGE
        (void)madvise(c, RH_TL_BIG, MADV_HUGEPAGE);   /* a hint only */
#endif
        c->cap = (uint32_t)RH_TL_BIG_EVENTS;
        c->mapped = 1;
    }
    atomic_store_explicit(&c->next, NULL, memory_order_relaxed);
    atomic_store_explicit(&c->used, 0, memory_order_relaxed);
    return c;
}

static void rh_tl_chunk_free(rh_tl_chunk_t *c)
{
    if (c->mapped) {
        munmap(c, RH_TL_BIG);
    } else {
        free(c);
    }
}

/* First event of a thread in this job: its buffer and track name. */
static rh_tl_buf_t *rh_tl_attach(void)
{
    rh_tl_buf_t *b = calloc(1, sizeof(*b));
    char name[16] = "";

    if (b == NULL) {
        return NULL;
    }
    if ((pid_t)syscall(SYS_gettid) == getpid()) {
        snprintf(b->track, sizeof(b->track), "main");
    } else if (pthread_getname_np(pthread_self(), name, sizeof(name)) == 0 &&
               name[0] != '\0') {
        /* "rayhpc-worker-3" reads as "worker-3" */
        snprintf(b->track, sizeof(b->track), "%s",
                 strncmp(name, "rayhpc-", 7) == 0 ? name + 7 : name);
    } else {
        snprintf(b->track, sizeof(b->track), "thread");
    }
    pthread_mutex_lock(&rh_tl.lock);
    b->tid = ++rh_tl.ntracks;
    b->next = rh_tl.bufs;
    rh_tl.bufs = b;
    pthread_mutex_unlock(&rh_tl.lock);
    rh_tl_mine = b;
    rh_tl_mine_gen = rh_tl.gen;
    return b;
}

void rh_tl_record(rh_tl_kind_t kind, const char *name, uint64_t t0,
                  int peer, uint64_t bytes)
{
    uint64_t now = rh_tlclock_now();
    rh_tl_buf_t *b = rh_tl_mine;
    rh_tl_chunk_t *c;
    rh_tl_event_t *e;
    uint32_t used;
    size_t n;

    if (rh_unlikely(b == NULL || rh_tl_mine_gen != rh_tl.gen)) {
        b = rh_tl_attach();
        if (b == NULL) {
            return;
        }
    }
    c = b->cur;
    used = c != NULL ? atomic_load_explicit(&c->used, memory_order_relaxed)
                     : 0;
    if (rh_unlikely(c == NULL || used == c->cap)) {
        if (b->count >= RH_TL_MAX_EVENTS ||
            (c = rh_tl_chunk_new(b->cur == NULL)) == NULL) {
            atomic_fetch_add_explicit(&b->dropped, 1, memory_order_relaxed);
            return;
        }
        if (b->cur == NULL) {
            atomic_store_explicit(&b->head, c, memory_order_release);
        } else {
            atomic_store_explicit(&b->cur->next, c, memory_order_release);
        }
        b->cur = c;
        used = 0;
    }
    e = &c->ev[used];
    e->ts = t0 != 0 && t0 <= now ? t0 : now;
    e->dur = now - e->ts;
    e->bytes = bytes;
    e->peer = peer;
    e->kind = (uint8_t)kind;
    n = name != NULL ? strnlen(name, RH_TL_NAME - 1) : 0;
    memcpy(e->name, name != NULL ? name : "", n);
    e->name[n] = '\0';
    b->count++;
    atomic_store_explicit(&c->used, used + 1, memory_order_release);
}

rh_status_t rh_timeline_open(const char *path, int rank)
{
    if (path == NULL || path[0] == '\0') {
        rh_tl_on = 0;
        return RH_OK;
    }
    if (strlen(path) + 16 > sizeof(rh_tl.path)) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "RAYHPC_TIMELINE: the "
                            "path is longer than %zu characters",
                            sizeof(rh_tl.path) - 16);
    }
    rh_timeline_close();
    snprintf(rh_tl.path, sizeof(rh_tl.path), "%s", path);
    {
        /* A path that cannot be written fails rh_init, not the end of a
         * long job. */
        char probe[RH_TL_PATH + 24];
        FILE *f;

        struct stat st;

        /* The parts go beside it (the probe), the merged file in its
         * place: a directory there, or a file not ours to write, would
         * fail only at the end. */
        if (stat(path, &st) == 0 &&
            (S_ISDIR(st.st_mode) || access(path, W_OK) != 0)) {
            return rh_error_set(RH_ERR_CONFIG, "RAYHPC_TIMELINE: cannot "
                                "write %s: %s", path, S_ISDIR(st.st_mode) ?
                                "it is a directory" : strerror(errno));
        }
        snprintf(probe, sizeof(probe), "%s.rank%d.tmp", path, rank);
        f = fopen(probe, "w");
        if (f == NULL) {
            return rh_error_set(RH_ERR_CONFIG, "RAYHPC_TIMELINE: cannot "
                                "write %s: %s", probe, strerror(errno));
        }
        fclose(f);
        unlink(probe);
    }
    rh_tl.rank = rank;
    rh_tl.gen++;
    rh_tlclock_start(0);
    rh_info("timeline: clock %s", rh_tlclock_name());
    rh_tl_on = 1;
    return RH_OK;
}

/* Writes s as the body of a JSON string. */
static void rh_tl_json_str(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch == '"' || ch == '\\') {
            fprintf(f, "\\%c", ch);
        } else if (ch < 0x20 || ch >= 0x7f) {
            /* bytes past ASCII are escaped one by one: a name cut in the
             * middle of a UTF-8 sequence still makes valid JSON */
            fprintf(f, "\\u%04x", ch);
        } else {
            fputc(ch, f);
        }
    }
}

static void rh_tl_write_event(FILE *f, const rh_tl_buf_t *b,
                              const rh_tl_event_t *e)
{
    uint64_t ts = rh_tlclock_ns(e->ts);
    uint64_t end = rh_tlclock_ns(e->ts + e->dur);
    uint64_t dur = end > ts ? end - ts : 0;

    fprintf(f, "{\"name\":\"");
    rh_tl_json_str(f, e->name);
    fprintf(f, "\",\"cat\":\"%s\",\"ph\":\"X\",\"pid\":%d,\"tid\":%d,"
            "\"ts\":%llu.%03u,\"dur\":%llu.%03u,\"args\":{",
            rh_tl_cat[e->kind], rh_tl.rank, b->tid,
            (unsigned long long)(ts / 1000), (unsigned)(ts % 1000),
            (unsigned long long)(dur / 1000), (unsigned)(dur % 1000));
    if (e->peer >= 0) {
        fprintf(f, "\"peer\":%d%s", e->peer, e->bytes != 0 ||
                e->kind == RH_TL_PULL ? "," : "");
    }
    if (e->bytes != 0 || e->kind == RH_TL_PULL) {
        fprintf(f, "\"bytes\":%llu", (unsigned long long)e->bytes);
    }
    fprintf(f, "}},\n");
}

rh_status_t rh_timeline_write_part(int node)
{
    char part[RH_TL_PATH + 16], tmp[RH_TL_PATH + 24];
    uint64_t dropped = 0;
    FILE *f;

    if (!rh_tl_on) {
        return RH_OK;
    }
    snprintf(part, sizeof(part), "%s.rank%d", rh_tl.path, rh_tl.rank);
    snprintf(tmp, sizeof(tmp), "%s.tmp", part);
    f = fopen(tmp, "w");
    if (f == NULL) {
        return rh_error_set(RH_ERR_CONFIG, "timeline: cannot write %s: %s", tmp,
                            strerror(errno));
    }
    fprintf(f, "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,"
            "\"args\":{\"name\":\"rank %d (node %d)\"}},\n"
            "{\"name\":\"process_sort_index\",\"ph\":\"M\",\"pid\":%d,"
            "\"args\":{\"sort_index\":%d}},\n", rh_tl.rank, rh_tl.rank,
            node, rh_tl.rank, rh_tl.rank);
    pthread_mutex_lock(&rh_tl.lock);
    for (const rh_tl_buf_t *b = rh_tl.bufs; b != NULL; b = b->next) {
        fprintf(f, "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,"
                "\"tid\":%d,\"args\":{\"name\":\"", rh_tl.rank, b->tid);
        rh_tl_json_str(f, b->track);
        fprintf(f, "\"}},\n");
        for (rh_tl_chunk_t *c = atomic_load_explicit(&b->head,
                                                     memory_order_acquire);
             c != NULL;
             c = atomic_load_explicit(&c->next, memory_order_acquire)) {
            uint32_t used = atomic_load_explicit(&c->used,
                                                 memory_order_acquire);

            for (uint32_t i = 0; i < used; i++) {
                rh_tl_write_event(f, b, &c->ev[i]);
            }
        }
        dropped += atomic_load(&b->dropped);
    }
    pthread_mutex_unlock(&rh_tl.lock);
    if (dropped != 0) {
        rh_warn("timeline: %llu events past the cap of %u per thread were "
                "left out", (unsigned long long)dropped, RH_TL_MAX_EVENTS);
    }
    if (ferror(f) || fclose(f) != 0 || rename(tmp, part) != 0) {
        rh_status_t s = rh_error_set(RH_ERR_CONFIG, "timeline: cannot write %s: "
                                     "%s", part, strerror(errno));

        unlink(tmp);
        return s;
    }
    return RH_OK;
}

rh_status_t rh_timeline_merge(int size)
{
    char part[RH_TL_PATH + 16], tmp[RH_TL_PATH + 8];
    char *line = NULL;
    size_t cap = 0;
    int first = 1, missing = 0;
    FILE *out;

    if (!rh_tl_on) {
        return RH_OK;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp", rh_tl.path);
    out = fopen(tmp, "w");
    if (out == NULL) {
        return rh_error_set(RH_ERR_CONFIG, "timeline: cannot write %s: %s", tmp,
                            strerror(errno));
    }
    fprintf(out, "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n");
    for (int r = 0; r < size; r++) {
        FILE *in;
        ssize_t n;

        snprintf(part, sizeof(part), "%s.rank%d", rh_tl.path, r);
        in = fopen(part, "r");
        if (in == NULL) {
            rh_warn("timeline: rank %d left no events (%s: %s)", r, part,
                    strerror(errno));
            missing++;
            continue;
        }
        /* Each line is one event ending in ",\n": the separator moves in
         * front so that the last one has none. */
        while ((n = getline(&line, &cap, in)) > 0) {
            if (n >= 2 && line[n - 2] == ',') {
                line[n - 2] = '\0';
            }
            fprintf(out, "%s%s", first ? "" : ",\n", line);
            first = 0;
        }
        fclose(in);
        unlink(part);
    }
    free(line);
    fprintf(out, "\n]}\n");
    if (ferror(out) || fclose(out) != 0 || rename(tmp, rh_tl.path) != 0) {
        rh_status_t s = rh_error_set(RH_ERR_CONFIG, "timeline: cannot write %s: "
                                     "%s", rh_tl.path, strerror(errno));

        unlink(tmp);
        return s;
    }
    rh_info("timeline: %s written (%d of %d ranks)", rh_tl.path,
            size - missing, size);
    return RH_OK;
}

void rh_timeline_close(void)
{
    rh_tl_buf_t *b;

    rh_tl_on = 0;
    pthread_mutex_lock(&rh_tl.lock);
    b = rh_tl.bufs;
    rh_tl.bufs = NULL;
    rh_tl.ntracks = 0;
    /* Threads that live on (the caller's) attach anew next time. */
    rh_tl.gen++;
    pthread_mutex_unlock(&rh_tl.lock);
    while (b != NULL) {
        rh_tl_buf_t *next = b->next;

        for (rh_tl_chunk_t *c = atomic_load(&b->head), *cn; c != NULL;
             c = cn) {
            cn = atomic_load(&c->next);
            rh_tl_chunk_free(c);
        }
        free(b);
        b = next;
    }
}

void rh_timeline_counts(uint64_t *recorded, uint64_t *dropped)
{
    uint64_t r = 0, d = 0;

    pthread_mutex_lock(&rh_tl.lock);
    for (const rh_tl_buf_t *b = rh_tl.bufs; b != NULL; b = b->next) {
        for (rh_tl_chunk_t *c = atomic_load_explicit(&b->head,
                                                     memory_order_acquire);
             c != NULL;
             c = atomic_load_explicit(&c->next, memory_order_acquire)) {
            r += atomic_load_explicit(&c->used, memory_order_acquire);
        }
        d += atomic_load(&b->dropped);
    }
    pthread_mutex_unlock(&rh_tl.lock);
    *recorded = r;
    *dropped = d;
}
