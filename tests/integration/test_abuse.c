/*
 * Nobody starves the server, tried as a hostile client would, on 127.0.0.1
 * and bounded in time: while two heavy predictions run (from 127.0.0.3) and
 * 2000 connections trickle one header line at a time (from 127.0.0.1), a
 * health checker on another address (127.0.0.2, as a kubelet would be) gets /healthz, /readyz and /metrics
 * answered within 100 ms every time. The heavy predictions run on the
 * prediction workers, not the HTTP threads; the trickling connections are
 * held to per_ip_limit and cut after request_timeout.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct prober {
    atomic_int stop;
    int probes, failures;
    double worst;               /* seconds */
    char worst_path[32];
} prober;

/* GET the health endpoints in turn from 127.0.0.2 every 20 ms. */
static void *probe_loop(void *arg)
{
    prober *pr = arg;
    static const char *const paths[] = {"/healthz", "/readyz", "/metrics"};
    for (int k = 0; !atomic_load(&pr->stop); k++) {
        const double t0 = mono_s();
        resp r = http_from("127.0.0.2", "GET", paths[k % 3], NULL, 0, NULL, NULL);
        const long st = r.status;
        free(r.body);
        const double dt = mono_s() - t0;
        pr->probes++;
        pr->failures += st != 200;
        if (dt > pr->worst) {
            pr->worst = dt;
            snprintf(pr->worst_path, sizeof pr->worst_path, "%s", paths[k % 3]);
        }
        msleep(20);
    }
    return NULL;
}

typedef struct heavy {
    long status;
    double seconds;
} heavy;

/* One heavy prediction, from 127.0.0.3: a client of its own, whom the
 * trickling connections' address limit does not concern. */
static void *heavy_loop(void *arg)
{
    heavy *h = arg;
    static const char body[] = "{\"model\": \"big\", \"sequence\": [0.5], \"steps\": 20000}";
    const double t0 = mono_s();
    resp r = http_from("127.0.0.3", "POST", "/predict", body, strlen(body), NULL, NULL);
    h->status = r.status;
    h->seconds = mono_s() - t0;
    free(r.body);
    return NULL;
}

#define TRICKLERS 2000

START_TEST(test_no_starvation)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    ck_assert_msg(rl.rlim_cur > TRICKLERS + 100, "open files limit %ld", (long)rl.rlim_cur);
    stop_daemon();
    start_daemon("--request-timeout 2 --per-ip-limit 100 --max-predict-work 100000000000 "
                 "--max-sequence-length 100000 --predict-workers 2");
    /* a model big enough that a long forecast takes seconds */
    long id = submit("{\"model\": \"big\", \"cell\": \"lstm\", \"hidden\": 512, \"data\": {\"generator\": "
                     "\"sine\", \"samples\": 24, \"window\": 4}, \"epochs\": 1, \"batch\": 8}", 202);
    cJSON *o = wait_job(id, 60);
    ck_assert_str_eq(status_of(o), "succeeded");
    cJSON_Delete(o);

    prober pr;
    memset(&pr, 0, sizeof pr);
    pthread_t pt, ht[2];
    pthread_create(&pt, NULL, probe_loop, &pr);
    heavy hv[2] = {{0}};
    for (int i = 0; i < 2; i++) pthread_create(&ht[i], NULL, heavy_loop, &hv[i]);

    /* 2000 connections that send a request line and then one header line
     * every 500 ms, never finishing */
    int fds[TRICKLERS], open_now = 0, refused = 0;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    for (int i = 0; i < TRICKLERS; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&sa, sizeof sa)) {
            if (fds[i] >= 0) close(fds[i]);
            fds[i] = -1;
            refused++;
            continue;
        }
        fcntl(fds[i], F_SETFL, O_NONBLOCK);
        const char *line = "POST /predict HTTP/1.1\r\nHost: x\r\n";
        if (send(fds[i], line, strlen(line), MSG_NOSIGNAL) < 0) {
            close(fds[i]);
            fds[i] = -1;
            refused++;
        }
    }
    const double t0 = mono_s();
    int cut = 0;
    while (mono_s() - t0 < 6) {
        open_now = 0;
        for (int i = 0; i < TRICKLERS; i++) {
            if (fds[i] < 0)
                continue;
            char b[256];
            ssize_t n = recv(fds[i], b, sizeof b, 0);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) ||
                send(fds[i], "X-Slow: 1\r\n", 11, MSG_NOSIGNAL) < 0) {
                close(fds[i]);
                fds[i] = -1;
                cut++;
                continue;
            }
            open_now++;
        }
        msleep(500);
    }
    for (int i = 0; i < TRICKLERS; i++)
        if (fds[i] >= 0) close(fds[i]);
    for (int i = 0; i < 2; i++) pthread_join(ht[i], NULL);
    atomic_store(&pr.stop, 1);
    pthread_join(pt, NULL);
    printf("  abuse: %d trickling connections: %d refused at connect, %d closed by the server, %d "
           "still open after 6 s; heavy predictions: %ld in %.1f s, %ld in %.1f s; %d health probes "
           "from 127.0.0.2, %d failed, slowest %.1f ms (%s)\n",
           TRICKLERS, refused, cut, open_now, hv[0].status, hv[0].seconds, hv[1].status,
           hv[1].seconds, pr.probes, pr.failures, pr.worst * 1e3, pr.worst_path);
    ck_assert_int_eq(hv[0].status, 200);
    ck_assert_int_eq(hv[1].status, 200);
    ck_assert_msg(open_now == 0, "%d trickling connections outlived request_timeout", open_now);
    ck_assert(pr.probes > 50);
    ck_assert_int_eq(pr.failures, 0);
    ck_assert_msg(pr.worst < 0.1, "a health probe took %.1f ms (%s)", pr.worst * 1e3, pr.worst_path);
}
END_TEST

Suite *abuse_suite(void)
{
    Suite *s = suite_create("abuse");
    TCase *tc = tcase_create("abuse");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_no_starvation);
    suite_add_tcase(s, tc);
    return s;
}
