/*
 * The job's contact record: its text, its file, and whether its servers
 * are gone.
 */
#include "obs/jobcontact.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "rayhpc.h"

#define RH_JC_MAGIC "rayhpc-job-contact 1"

void rh_jc_host_key(char *buf, size_t len)
{
    char host[256] = "", ns[64] = "";
    ssize_t n;

    gethostname(host, sizeof(host) - 1);
    n = readlink("/proc/self/ns/pid", ns, sizeof(ns) - 1);
    ns[n > 0 ? n : 0] = '\0';
    snprintf(buf, len, "%s/%s", host, ns);
}

int rh_jc_dir(const char *setting, char *buf, size_t len)
{
    const char *home;

    if (setting != NULL && strcmp(setting, "off") == 0) {
        snprintf(buf, len, "RAYHPC_JOB_CONTACT_DIR=off");
        return 0;
    }
    if (setting != NULL && setting[0] != '\0') {
        snprintf(buf, len, "%s", setting);
        return 1;
    }
    home = getenv("HOME");
    if (home == NULL || home[0] != '/') {
        snprintf(buf, len, "no $HOME, and RAYHPC_JOB_CONTACT_DIR is not set");
        return 0;
    }
    snprintf(buf, len, "%s/.rayhpc/jobs", home);
    return 1;
}

void rh_jc_path(const char *dir, const char *job, char *buf, size_t len)
{
    size_t k = (size_t)snprintf(buf, len, "%s/", dir);

    for (const char *p = job; *p != '\0' && k + 1 < len; p++) {
        char c = *p;

        buf[k++] = (c == '/' || c < 0x21 || c > 0x7e) ? '_' : c;
    }
    if (k < len) {
        buf[k] = '\0';
    }
}

char *rh_jc_format(const rh_jc_t *c, size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);

    if (f == NULL) {
        return NULL;
    }
    fprintf(f, RH_JC_MAGIC "\njob %s\nranks %d nodes %d\ncreated %lld\n",
            c->job, c->ranks, c->nodes, (long long)c->created);
    for (int i = 0; i < c->n; i++) {
        const rh_jc_server_t *s = &c->servers[i];

        fprintf(f, "server node %d rank %d pid %d host %s key ", s->node,
                s->rank, s->pid, s->host);
        for (size_t b = 0; b < sizeof(s->key); b++) {
            fprintf(f, "%02x", s->key[b]);
        }
        fputs(" addr ", f);
        for (size_t b = 0; b < s->addr_len; b++) {
            fprintf(f, "%02x", s->addr[b]);
        }
        fputc('\n', f);
    }
    fputs("end\n", f);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

void rh_jc_free(rh_jc_t *c)
{
    for (int i = 0; c->servers != NULL && i < c->n; i++) {
        free(c->servers[i].addr);
    }
    free(c->servers);
    memset(c, 0, sizeof(*c));
}

static int rh_jc_hex(char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    return -1;
}

/* One server line, after "server ". */
static rh_status_t rh_jc_parse_server(const char *line, size_t n,
                                      const rh_jc_t *c, rh_jc_server_t *s)
{
    char fmt[80], key[2 * sizeof(s->key) + 2];
    int k = 0;
    size_t hex;
    const char *h;

    snprintf(fmt, sizeof(fmt), "node %%d rank %%d pid %%d host %%%zus key "
             "%%%zus addr %%n", sizeof(s->host) - 1, sizeof(key) - 1);
    if (sscanf(line, fmt, &s->node, &s->rank, &s->pid, s->host, key,
               &k) != 5 || k == 0 || (size_t)k > n) {
        return rh_error_set(RH_ERR_MALFORMED, "a server line does not read "
                            "'server node K rank R pid P host H key HEX addr "
                            "HEX'");
    }
    if (strlen(key) != 2 * sizeof(s->key)) {
        return rh_error_set(RH_ERR_MALFORMED, "server of node %d: its key is "
                            "not %zu bytes in hex", s->node, sizeof(s->key));
    }
    for (size_t b = 0; b < sizeof(s->key); b++) {
        int hi = rh_jc_hex(key[2 * b]), lo = rh_jc_hex(key[2 * b + 1]);

        if (hi < 0 || lo < 0) {
            return rh_error_set(RH_ERR_MALFORMED, "server of node %d: its "
                                "key is not hex", s->node);
        }
        s->key[b] = (uint8_t)(hi << 4 | lo);
    }
    if (s->node < 0 || s->node >= c->nodes || s->rank < 0 ||
        s->rank >= c->ranks || s->pid <= 0) {
        return rh_error_set(RH_ERR_MALFORMED, "a server names node %d rank "
                            "%d pid %d, outside the job's %d nodes and %d "
                            "ranks", s->node, s->rank, s->pid, c->nodes,
                            c->ranks);
    }
    h = line + k;
    hex = n - (size_t)k;
    if (hex == 0 || hex % 2 != 0 || hex / 2 > RH_JC_MAX_ADDR) {
        return rh_error_set(RH_ERR_MALFORMED, "server of node %d: its "
                            "address is not 1 to %d bytes in hex", s->node,
                            RH_JC_MAX_ADDR);
    }
    s->addr = malloc(hex / 2);
    if (s->addr == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "a server's address");
    }
    for (size_t b = 0; b < hex / 2; b++) {
        int hi = rh_jc_hex(h[2 * b]), lo = rh_jc_hex(h[2 * b + 1]);

        if (hi < 0 || lo < 0) {
            return rh_error_set(RH_ERR_MALFORMED, "server of node %d: its "
                                "address is not hex", s->node);
        }
        s->addr[b] = (uint8_t)(hi << 4 | lo);
    }
    s->addr_len = hex / 2;
    return RH_OK;
}

rh_status_t rh_jc_parse(const char *text, size_t len, rh_jc_t *c)
{
    const char *p = text, *end = text + len;
    int line_no = 0, ended = 0;
    rh_status_t status = RH_OK;

    memset(c, 0, sizeof(*c));
    if (text == NULL || len > RH_JC_MAX_TEXT || memchr(text, '\0', len)) {
        return rh_error_set(RH_ERR_MALFORMED, "not a contact record (empty, "
                            "over %u bytes, or binary)", RH_JC_MAX_TEXT);
    }
    while (p < end && status == RH_OK && !ended) {
        const char *e = memchr(p, '\n', (size_t)(end - p));
        size_t n = e != NULL ? (size_t)(e - p) : (size_t)(end - p);
        char *line = strndup(p, n);
        long long created;
        char fmt[32];

        if (line == NULL) {
            status = rh_error_set(RH_ERR_NO_MEMORY, "a record's line");
            break;
        }
        line_no++;
        snprintf(fmt, sizeof(fmt), "job %%%zus", sizeof(c->job) - 1);
        if (line_no == 1) {
            if (strcmp(line, RH_JC_MAGIC) != 0) {
                status = rh_error_set(RH_ERR_MALFORMED, "not a contact "
                                      "record: its first line is not '"
                                      RH_JC_MAGIC "'");
            }
        } else if (strncmp(line, "job ", 4) == 0) {
            if (sscanf(line, fmt, c->job) != 1) {
                status = rh_error_set(RH_ERR_MALFORMED, "bad job line");
            }
        } else if (strncmp(line, "ranks ", 6) == 0) {
            if (sscanf(line, "ranks %d nodes %d", &c->ranks, &c->nodes) != 2 ||
                c->ranks < 1 || c->nodes < 1 || c->nodes > c->ranks ||
                c->ranks > (1 << 24) || c->servers != NULL) {
                status = rh_error_set(RH_ERR_MALFORMED, "bad ranks line "
                                      "(1..2^24 ranks, 1..ranks nodes, "
                                      "once)");
            } else if ((c->servers = calloc((size_t)c->nodes,
                                            sizeof(*c->servers))) == NULL) {
                status = rh_error_set(RH_ERR_NO_MEMORY, "a record's servers");
            }
        } else if (strncmp(line, "created ", 8) == 0) {
            if (sscanf(line, "created %lld", &created) != 1 || created < 0) {
                status = rh_error_set(RH_ERR_MALFORMED, "bad created line");
            }
            c->created = (int64_t)created;
        } else if (strncmp(line, "server ", 7) == 0) {
            if (c->servers == NULL || c->n >= c->nodes) {
                status = rh_error_set(RH_ERR_MALFORMED, "a server line before "
                                      "the ranks line, or more servers than "
                                      "nodes");
            } else {
                status = rh_jc_parse_server(line + 7, n - 7, c,
                                            &c->servers[c->n]);
                c->n++;   /* freed with the others if it failed */
            }
        } else if (strcmp(line, "end") == 0) {
            ended = 1;
        } else {
            status = rh_error_set(RH_ERR_MALFORMED, "line %d is not part of "
                                  "a contact record", line_no);
        }
        free(line);
        p += n + (e != NULL);
    }
    if (status == RH_OK && (!ended || c->job[0] == '\0' || c->n == 0)) {
        status = rh_error_set(RH_ERR_MALFORMED, "the record is incomplete "
                              "(no job, no server, or no end line)");
    }
    if (status != RH_OK) {
        rh_jc_free(c);
    }
    return status;
}

rh_status_t rh_jc_read(const char *path, rh_jc_t *c)
{
    FILE *f = fopen(path, "re");
    char *text;
    size_t n;
    rh_status_t status;

    memset(c, 0, sizeof(*c));
    if (f == NULL) {
        return rh_error_set(errno == ENOENT ? RH_ERR_NOT_FOUND :
                            RH_ERR_INVALID_PARAM, "cannot read %s: %s", path,
                            strerror(errno));
    }
    text = malloc(RH_JC_MAX_TEXT + 1);
    if (text == NULL) {
        fclose(f);
        return rh_error_set(RH_ERR_NO_MEMORY, "reading %s", path);
    }
    n = fread(text, 1, RH_JC_MAX_TEXT + 1, f);
    fclose(f);
    status = rh_jc_parse(text, n, c);
    free(text);
    if (status != RH_OK) {
        char why[256];

        snprintf(why, sizeof(why), "%s", rh_last_error());
        return rh_error_set(status, "%s: %s", path, why);
    }
    return RH_OK;
}

/* Makes dir and its parents (0700) where missing. */
static int rh_jc_mkdirs(const char *dir)
{
    char buf[PATH_MAX];

    if (snprintf(buf, sizeof(buf), "%s", dir) >= (int)sizeof(buf)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *q = buf + 1; *q != '\0'; q++) {
        if (*q == '/') {
            *q = '\0';
            if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
                return -1;
            }
            *q = '/';
        }
    }
    return mkdir(buf, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

rh_status_t rh_jc_write(const char *path, const rh_jc_t *c)
{
    char tmp[PATH_MAX], dir[PATH_MAX], *slash, *text;
    size_t len = 0;
    int fd;
    ssize_t w = -1;

    snprintf(dir, sizeof(dir), "%s", path);
    slash = strrchr(dir, '/');
    if (slash != NULL && slash != dir) {
        *slash = '\0';
        if (rh_jc_mkdirs(dir) != 0) {
            return rh_error_set(RH_ERR_INVALID_PARAM, "cannot make %s: %s",
                                dir, strerror(errno));
        }
    }
    if (snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid()) >=
        (int)sizeof(tmp)) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "%s: path too long", path);
    }
    text = rh_jc_format(c, &len);
    if (text == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "the contact record");
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
        w = write(fd, text, len);
        if (close(fd) != 0) {
            w = -1;
        }
    }
    free(text);
    if (fd < 0 || w != (ssize_t)len || rename(tmp, path) != 0) {
        int e = errno;

        unlink(tmp);
        return rh_error_set(RH_ERR_INVALID_PARAM, "cannot write %s: %s", path,
                            fd < 0 || w < 0 || e != 0 ? strerror(e) :
                            "short write");
    }
    return RH_OK;
}

/* When pid started, in seconds since the epoch; -1: unknown. */
static int64_t rh_jc_started(int pid)
{
    char path[64], buf[1024], *p;
    unsigned long long ticks = 0, btime = 0;
    FILE *f;
    size_t n;
    int field = 2;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    f = fopen(path, "re");
    if (f == NULL) {
        return -1;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command may hold spaces and parentheses: fields count from the
     * last ')'. Field 22 is the start time, in ticks since boot. */
    p = strrchr(buf, ')');
    if (p == NULL) {
        return -1;
    }
    while (*p != '\0' && field < 22) {
        if (*p++ == ' ') {
            field++;
        }
    }
    if (field != 22 || sscanf(p, "%llu", &ticks) != 1) {
        return -1;
    }
    f = fopen("/proc/stat", "re");
    if (f == NULL) {
        return -1;
    }
    while (fgets(buf, sizeof(buf), f) != NULL &&
           sscanf(buf, "btime %llu", &btime) != 1) {
    }
    fclose(f);
    if (btime == 0) {
        return -1;
    }
    return (int64_t)(btime + ticks / (unsigned long long)sysconf(_SC_CLK_TCK));
}

int rh_jc_process_gone(const char *host, int pid, int64_t since,
                       const char *host_key)
{
    int64_t started;

    if (strcmp(host, host_key) != 0 || pid <= 0) {
        return 0;
    }
    if (kill(pid, 0) != 0 && errno == ESRCH) {
        return 1;
    }
    /* Alive: its own, unless the pid came back for a later process (a
     * second of slack: start times are rounded). */
    started = since > 0 ? rh_jc_started(pid) : -1;
    return started > 0 && started > since + 1;
}

int rh_jc_server_gone(const rh_jc_server_t *s, int64_t created,
                      const char *host_key)
{
    return rh_jc_process_gone(s->host, s->pid, created, host_key);
}

/* The record this process wrote (rank 0), removed at rh_finalize. */
static char rh_jc_mine[PATH_MAX];
static char rh_jc_mine_job[160];

/* Removes the records in dir whose servers all ran here and are gone:
 * jobs killed before rh_finalize, whose rank 0 could not. */
static void rh_jc_sweep(const char *dir, const char *host_key)
{
    DIR *d = opendir(dir);
    struct dirent *de;

    while (d != NULL && (de = readdir(d)) != NULL) {
        char path[PATH_MAX];
        rh_jc_t c;
        int gone = 0;

        if (de->d_name[0] == '.' || strstr(de->d_name, ".tmp") != NULL ||
            snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >=
            (int)sizeof(path) || rh_jc_read(path, &c) != RH_OK) {
            continue;
        }
        for (int i = 0; i < c.n; i++) {
            gone += rh_jc_server_gone(&c.servers[i], c.created, host_key);
        }
        if (gone == c.n) {
            unlink(path);
        }
        rh_jc_free(&c);
    }
    if (d != NULL) {
        closedir(d);
    }
}

void rh_jc_publish(const rh_jc_t *c, const char *setting)
{
    char dir[PATH_MAX - 200], host[384];

    if (!rh_jc_dir(setting, dir, sizeof(dir))) {
        rh_debug("job contact record: none written (%s)", dir);
        return;
    }
    rh_jc_host_key(host, sizeof(host));
    rh_jc_sweep(dir, host);
    rh_jc_path(dir, c->job, rh_jc_mine, sizeof(rh_jc_mine));
    if (rh_jc_write(rh_jc_mine, c) != RH_OK) {
        /* A directory the user named is worth a warning; a missing
         * $HOME on a compute node is not. */
        rh_log(setting != NULL && setting[0] != '\0' ? RH_LOG_WARN :
               RH_LOG_INFO, "job contact record: %s (RAYHPC_JOB_CONTACT_DIR; "
               "rayhpc-info --job will see this job only on its hosts)",
               rh_last_error());
        rh_jc_mine[0] = '\0';
        return;
    }
    snprintf(rh_jc_mine_job, sizeof(rh_jc_mine_job), "%s", c->job);
}

void rh_jc_withdraw(void)
{
    rh_jc_t c;

    if (rh_jc_mine[0] == '\0') {
        return;
    }
    /* Only our own: a later job of the same id may have replaced it. */
    if (rh_jc_read(rh_jc_mine, &c) == RH_OK) {
        if (strcmp(c.job, rh_jc_mine_job) == 0 && c.n > 0 &&
            c.servers[0].pid == (int)getpid()) {
            unlink(rh_jc_mine);
        }
        rh_jc_free(&c);
    }
    rh_jc_mine[0] = '\0';
}
