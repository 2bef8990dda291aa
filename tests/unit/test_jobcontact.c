/*
 * The job's contact record: its text both ways, hostile texts refused,
 * its file written whole and removed, and servers known gone.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "obs/jobcontact.h"
#include "rayhpc.h"

#define K "000102030405060708090a0b0c0d0e0f"   /* a server's key */

static uint8_t addr0[] = { 0x20, 0x59, 0x00, 0xff, 0x7a };
static uint8_t addr1[] = { 0x01, 0x02 };

static void two_nodes(rh_jc_t *c, const char *host)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->job, sizeof(c->job), "4242-node17");
    c->ranks = 4;
    c->nodes = 2;
    c->created = 1796048276;
    c->n = 2;
    c->servers = calloc(2, sizeof(*c->servers));
    cr_assert_not_null(c->servers);
    c->servers[0] = (rh_jc_server_t){ .node = 0, .rank = 0, .pid = 4242,
                                      .addr_len = sizeof(addr0) };
    c->servers[1] = (rh_jc_server_t){ .node = 1, .rank = 2, .pid = 977,
                                      .addr_len = sizeof(addr1) };
    snprintf(c->servers[0].host, sizeof(c->servers[0].host), "%s", host);
    snprintf(c->servers[1].host, sizeof(c->servers[1].host), "node18/x");
    for (int i = 0; i < 16; i++) {
        c->servers[0].key[i] = (uint8_t)i;
    }
    c->servers[0].addr = malloc(sizeof(addr0));
    c->servers[1].addr = malloc(sizeof(addr1));
    memcpy(c->servers[0].addr, addr0, sizeof(addr0));
    memcpy(c->servers[1].addr, addr1, sizeof(addr1));
}

Test(jobcontact, text_both_ways)
{
    rh_jc_t c, back;
    size_t len = 0;
    char *text;

    two_nodes(&c, "node17/pid:[1]");
    text = rh_jc_format(&c, &len);
    cr_assert_not_null(text);
    cr_expect(strstr(text, "server node 0 rank 0 pid 4242 host node17/pid:[1] "
                     "key " K " addr 205900ff7a\n") != NULL, "%s", text);
    cr_assert_eq(rh_jc_parse(text, len, &back), RH_OK, "%s", rh_last_error());
    cr_expect_str_eq(back.job, "4242-node17");
    cr_expect_eq(back.ranks, 4);
    cr_expect_eq(back.nodes, 2);
    cr_expect_eq(back.created, 1796048276);
    cr_assert_eq(back.n, 2);
    cr_expect_eq(back.servers[1].rank, 2);
    cr_expect_eq(back.servers[1].pid, 977);
    cr_expect_str_eq(back.servers[1].host, "node18/x");
    cr_assert_eq(back.servers[0].addr_len, sizeof(addr0));
    cr_expect_eq(memcmp(back.servers[0].addr, addr0, sizeof(addr0)), 0);
    for (int i = 0; i < 16; i++) {
        cr_expect_eq(back.servers[0].key[i], i);
    }
    free(text);
    rh_jc_free(&back);
    rh_jc_free(&c);
    cr_expect_null(c.servers);
}

/* Each text is refused with RH_ERR_MALFORMED, and nothing is left. */
Test(jobcontact, hostile_texts_refused)
{
    static const char *const bad[] = {
        "",
        "rayhpc-job-contact 2\njob j\nranks 1 nodes 1\nserver node 0 rank 0 "
        "pid 1 host h key " K " addr 00\nend\n",
        "rayhpc-job-contact 1\njob j\nserver node 0 rank 0 pid 1 host h key " K " addr 00"
        "\nranks 1 nodes 1\nend\n",
        "rayhpc-job-contact 1\njob j\nranks 1 nodes 1\nserver node 1 rank 0 "
        "pid 1 host h key " K " addr 00\nend\n",
        "rayhpc-job-contact 1\njob j\nranks 1 nodes 1\nserver node 0 rank 5 "
        "pid 1 host h key " K " addr 00\nend\n",
        "rayhpc-job-contact 1\njob j\nranks 1 nodes 1\nserver node 0 rank 0 "
        "pid 1 host h key " K " addr 0\nend\n",
        "rayhpc-job-contact 1\njob j\nranks 1 nodes 1\nserver node 0 rank 0 "
        "pid 1 host h key " K " addr zz\nend\n",
        "rayhpc-job-contact 1\njob j\nranks 1 nodes 1\nserver node 0 rank 0 "
        "pid 1 host h key " K " addr \nend\n",
        "rayhpc-job-contact 1\njob j\nranks 1 nodes 1\nserver node 0 rank 0 "
        "pid 1 host h key " K " addr 00\n",
        "rayhpc-job-contact 1\njob j\nranks 1 nodes 1\nserver node 0 rank 0 "
        "pid 1 host h key " K " addr 00\nserver node 0 rank 0 pid 1 host h key " K " addr 00\n"
        "end\n",
        "rayhpc-job-contact 1\njob j\nranks 2 nodes 3\nend\n",
        "rayhpc-job-contact 1\njob j\nranks 1 nodes 1\nranks 1 nodes 1\n"
        "end\n",
        "rayhpc-job-contact 1\nranks 1 nodes 1\nserver node 0 rank 0 pid 1 "
        "host h key " K " addr 00\nend\n",
        "rayhpc-job-contact 1\njob j\nranks 1 nodes 1\nserver node 0 rank 0 "
        "pid 0 host h key " K " addr 00\nend\n",
        "rayhpc-job-contact 1\njob j\nranks 1 nodes 1\nwhat is this\nend\n",
        "rayhpc-job-contact 1\njob j\nranks 1 nodes 1\nserver node 0 rank 0 "
        "pid 1 host h key 0011 addr 00\nend\n",
        "rayhpc-job-contact 1\njob j\nranks 1 nodes 1\nserver node 0 rank 0 "
        "pid 1 host h key " K "00 addr 00\nend\n",
        "rayhpc-job-contact 1\njob j\nranks 1 nodes 1\nserver node 0 rank 0 "
        "pid 1 host h key 0g0102030405060708090a0b0c0d0e0f addr 00\nend\n",
        "rayhpc-job-contact 1\njob j\nranks 1 nodes 1\nserver node 0 rank 0 "
        "pid 1 host h addr 00\nend\n",
    };
    rh_jc_t c;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_expect_eq(rh_jc_parse(bad[i], strlen(bad[i]), &c),
                     RH_ERR_MALFORMED, "text %zu taken", i);
        cr_expect_null(c.servers, "text %zu", i);
        cr_expect_eq(c.n, 0, "text %zu", i);
    }
    {
        /* a NUL inside, and an address over the limit */
        static const char nul[] = "rayhpc-job-contact 1\njob j\0\n";
        size_t n = 200 + 2 * (RH_JC_MAX_ADDR + 1);
        char *big = malloc(n);
        int k;

        cr_expect_eq(rh_jc_parse(nul, sizeof(nul) - 1, &c), RH_ERR_MALFORMED);
        cr_assert_not_null(big);
        k = snprintf(big, n, "rayhpc-job-contact 1\njob j\nranks 1 nodes 1\n"
                     "server node 0 rank 0 pid 1 host h key " K " addr ");
        memset(big + k, 'a', 2 * (RH_JC_MAX_ADDR + 1));
        k += 2 * (RH_JC_MAX_ADDR + 1);
        cr_expect_eq(rh_jc_parse(big, (size_t)k, &c), RH_ERR_MALFORMED);
        free(big);
    }
}

Test(jobcontact, paths_and_the_directory_setting)
{
    char buf[512], home[512];

    rh_jc_path("/d", "12-a/b c", buf, sizeof(buf));
    cr_expect_str_eq(buf, "/d/12-a_b_c");
    cr_expect_eq(rh_jc_dir("off", buf, sizeof(buf)), 0);
    cr_expect_eq(rh_jc_dir("/x/y", buf, sizeof(buf)), 1);
    cr_expect_str_eq(buf, "/x/y");
    setenv("HOME", "/home/u", 1);
    cr_expect_eq(rh_jc_dir("", buf, sizeof(buf)), 1);
    cr_expect_str_eq(buf, "/home/u/.rayhpc/jobs");
    unsetenv("HOME");
    cr_expect_eq(rh_jc_dir("", buf, sizeof(buf)), 0, "no $HOME: none");
    snprintf(home, sizeof(home), "%s", buf);
    cr_expect(strstr(home, "HOME") != NULL, "%s", home);
}

static pid_t dead_pid(void)
{
    pid_t p = fork();

    cr_assert_geq(p, 0);
    if (p == 0) {
        _exit(0);
    }
    cr_assert_eq(waitpid(p, NULL, 0), p);
    return p;
}

Test(jobcontact, servers_known_gone)
{
    char me[384];
    rh_jc_t c;

    rh_jc_host_key(me, sizeof(me));
    two_nodes(&c, me);
    c.servers[0].pid = (int)getpid();
    c.created = (int64_t)time(NULL);
    cr_expect_eq(rh_jc_server_gone(&c.servers[0], c.created, me), 0,
                 "this process lives");
    cr_expect_eq(rh_jc_server_gone(&c.servers[1], c.created, me), 0,
                 "another host: not known");
    c.servers[0].pid = (int)dead_pid();
    cr_expect_eq(rh_jc_server_gone(&c.servers[0], c.created, me), 1,
                 "its pid ended");
    c.servers[0].pid = (int)getpid();
    cr_expect_eq(rh_jc_server_gone(&c.servers[0], 1000, me), 1,
                 "its pid belongs to a process started after the record");
    cr_expect_eq(rh_jc_process_gone(me, (int)dead_pid(), 0, me), 1);
    cr_expect_eq(rh_jc_process_gone(me, (int)getpid(), 0, me), 0);
    rh_jc_free(&c);
}

Test(jobcontact, written_whole_swept_when_stale_and_withdrawn)
{
    char dir[256], sub[300], path[400], stale[400], me[384];
    rh_jc_t c, back, old;
    struct stat st;

    snprintf(dir, sizeof(dir), "/tmp/rh-test-jobcontact.%d", (int)getpid());
    snprintf(sub, sizeof(sub), "%s/a/b", dir);
    rh_jc_host_key(me, sizeof(me));

    /* a record whose only server ran here and ended: swept */
    two_nodes(&old, me);
    old.nodes = 1;
    old.n = 1;
    snprintf(old.job, sizeof(old.job), "1-old");
    old.servers[0].pid = (int)dead_pid();
    rh_jc_path(sub, old.job, stale, sizeof(stale));
    cr_assert_eq(rh_jc_write(stale, &old), RH_OK, "%s", rh_last_error());
    cr_assert_eq(stat(stale, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0600);

    two_nodes(&c, me);
    c.servers[0].pid = (int)getpid();
    c.created = (int64_t)time(NULL);
    rh_jc_publish(&c, sub);
    rh_jc_path(sub, c.job, path, sizeof(path));
    cr_assert_eq(rh_jc_read(path, &back), RH_OK, "%s", rh_last_error());
    cr_expect_str_eq(back.job, c.job);
    cr_expect_eq(back.n, 2);
    rh_jc_free(&back);
    cr_expect_neq(stat(stale, &st), 0, "the stale record is still there");
    rh_jc_withdraw();
    cr_expect_neq(stat(path, &st), 0, "the record is left after withdraw");
    cr_expect_eq(rh_jc_read(path, &back), RH_ERR_NOT_FOUND);
    rh_jc_free(&c);
    rh_jc_free(&old);
    rmdir(sub);
    snprintf(sub, sizeof(sub), "%s/a", dir);
    rmdir(sub);
    cr_expect_eq(rmdir(dir), 0, "something is left in %s", dir);
}
