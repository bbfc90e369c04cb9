/*
 * DESIGN: rnnd serve's main thread. It loads the models, starts the job pool
 * and libmicrohttpd (http.c, whose routes are in routes.c), tells systemd it
 * is ready, and then only waits for signals: SIGTERM drains (stop accepting,
 * finish requests in flight, stop jobs at their next step, exit 0), SIGHUP
 * reloads model_dir. The signals are blocked in every thread and taken here
 * with sigtimedwait: a handler would run on whichever thread the kernel
 * picked, on top of a training kernel's stack, and a SIGTERM landing in a
 * oneDNN kernel corrupted the heap (found with rnnd train, 1 run in 10).
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

server S;

/* Waits up to ms for SIGTERM, SIGINT or SIGHUP; returns it, or 0. */
static int wait_signal(const sigset_t *set, long ms)
{
    const struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    const int sig = sigtimedwait(set, NULL, &ts);
    return sig > 0 ? sig : 0;
}

/* sd_notify without libsystemd: one datagram to $NOTIFY_SOCKET. */
static void notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !path[0] || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path));
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = 0;
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
    if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, len) < 0)
        rnnd_log(LOG_WARN, "sd_notify: %s", strerror(errno));
    close(fd);
}

int rnnd_serve_main(const rnnd_config *cfg)
{
    memset(&S, 0, sizeof S);
    S.cfg = *cfg;
    rnnd_log_level = cfg->log_level;
    /* before any thread starts, so that every thread inherits the mask */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (!(S.reg = registry_new())) {
        rnnd_log(LOG_ERROR, "out of memory for the model registry");
        return 1;
    }
    struct stat st;
    if (stat(cfg->model_dir, &st) != 0 && mkdir(cfg->model_dir, 0755) != 0)
        rnnd_log(LOG_WARN, "model_dir %s: %s", cfg->model_dir, strerror(errno));
    versions_init(cfg);
    const int stale = rnn_remove_stale_temps(cfg->model_dir) + versions_remove_stale_temps();
    if (stale > 0)
        rnnd_log(LOG_INFO, "model_dir %s: removed %d temp file%s of saves that did not finish",
                 cfg->model_dir, stale, stale == 1 ? "" : "s");
    int n = registry_load_dir(S.reg, cfg->model_dir);
    watcher *watch = watch_start(cfg->model_dir, cfg->watch_s);
    S.pool = pool_new(&S.cfg, S.reg);
    S.sess = sessions_new();
    if (!S.pool || !S.sess || batcher_start(cfg->predict_workers)) {
        rnnd_log(LOG_ERROR, "cannot start the training workers");
        watch_free(watch);
        return 1;
    }

    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    /* poll(), not epoll: libmicrohttpd 0.9.75's MHD_quiesce_daemon races with
     * its own epoll workers, which remove the same listen FD from their epoll
     * sets, and aborts the process when it loses (a SIGTERM under load hit
     * that in CI). Poll workers are quiesced through their ITC instead. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG |
                     MHD_ALLOW_SUSPEND_RESUME;
    if (strchr(cfg->listen, ':')) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)cfg->port);
        if (inet_pton(AF_INET6, cfg->listen, &a6->sin6_addr) != 1) {
            rnnd_log(LOG_ERROR, "listen: \"%s\" is not an IP address", cfg->listen);
            return 2;
        }
        flags |= MHD_USE_IPv6;
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)cfg->port);
        if (inet_pton(AF_INET, cfg->listen, &a4->sin_addr) != 1) {
            rnnd_log(LOG_ERROR, "listen: \"%s\" is not an IP address", cfg->listen);
            return 2;
        }
    }
    S.d = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_request, NULL,
                           MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                           MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->http_threads,
                           MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->connection_limit,
                           MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->per_ip_limit,
                           MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->connection_timeout,
                           MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(16 * 1024),
                           MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                           MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
                           MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                           MHD_OPTION_END);
    if (!S.d) {
        rnnd_log(LOG_ERROR, "cannot listen on %s:%d: %s", cfg->listen, cfg->port, strerror(errno));
        batcher_stop();
        pool_free(S.pool);
        registry_free(S.reg);
        watch_free(watch);
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(S.d, MHD_DAEMON_INFO_BIND_PORT);
    int port = info ? info->port : cfg->port;
    atomic_store(&S.ready, 1);
    rnnd_log(LOG_INFO, "rnnd listening on http://%s%s%s:%d with %d model%s, %d http threads, %d train workers",
             strchr(cfg->listen, ':') ? "[" : "", cfg->listen, strchr(cfg->listen, ':') ? "]" : "", port,
             n, n == 1 ? "" : "s", cfg->http_threads, cfg->train_workers);
    notify("READY=1");

    double last_tick = rnnd_clock();
    for (int tick = 1;;) {
        const int sig = wait_signal(&sigs, 50);
        if (sig == SIGTERM || sig == SIGINT)
            break;
        const int got_hup = sig == SIGHUP;
        if (rnnd_clock() - last_tick < 0.05 && !got_hup)
            continue;
        last_tick = rnnd_clock();
        tick++;
        int cut = http_sweep(cfg->request_timeout);
        if (cut)
            rnnd_log(LOG_INFO, "%d connection%s closed: no whole request within %d s (request_timeout)",
                     cut, cut == 1 ? "" : "s", cfg->request_timeout);
        if (tick % 20 == 0) {
            int k = sessions_expire(S.sess, cfg->session_idle_s);
            if (k)
                rnnd_log(LOG_INFO, "%d idle session%s ended (session_idle_s)", k, k == 1 ? "" : "s");
        }
        if (!got_hup && watch_due(watch, last_tick)) {
            /* what other replicas published into the shared model_dir */
            int fresh;
            const int k = registry_scan(S.reg, cfg->model_dir, watch_settle_s(), &fresh);
            if (k)
                rnnd_log(LOG_INFO, "model_dir: %d model%s (re)loaded (watch_s)", k, k == 1 ? "" : "s");
            rnnd_log(LOG_DEBUG, "model_dir scanned: %d loaded, %d left to settle", k, fresh);
            watch_scanned(watch, rnnd_clock(), fresh);
        }
        if (got_hup) {
            notify("RELOADING=1");
            int k = registry_load_dir(S.reg, cfg->model_dir);
            rnnd_log(LOG_INFO, "SIGHUP: %d model%s (re)loaded from %s", k, k == 1 ? "" : "s", cfg->model_dir);
            notify("READY=1");
        }
    }
    rnnd_log(LOG_INFO, "shutting down: finishing requests in flight, stopping jobs");
    notify("STOPPING=1");
    atomic_store(&S.draining, 1);
    /* stop accepting: take the listening socket back from libmicrohttpd,
     * hand it the connections already waiting in the backlog (closing the
     * socket would reset them), then close it so new ones are refused */
    MHD_socket lfd = MHD_quiesce_daemon(S.d);
    if (lfd != MHD_INVALID_SOCKET) {
        /* the workers drop the listen FD from their poll sets when they see
         * the quiesce signal, which libmicrohttpd does not confirm; closing it
         * before then leaves its number in a set, where a connection accepted
         * next can reuse it (measured: 50 ms still lost a request in 1 run of
         * 10 under a burst, 200 ms none in 22). New connections wait in the
         * backlog meanwhile and are handed over below. */
        struct timespec settle = {0, 200 * 1000 * 1000};
        nanosleep(&settle, NULL);
        fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK);
        for (;;) {
            struct sockaddr_storage peer;
            socklen_t pl = sizeof peer;
            int fd = accept4(lfd, (struct sockaddr *)&peer, &pl, SOCK_CLOEXEC);
            if (fd < 0)
                break;
            if (MHD_add_connection(S.d, fd, (struct sockaddr *)&peer, pl) != MHD_YES)
                close(fd);
        }
        close(lfd);
    }
    pool_stop_all(S.pool);
    double t0 = rnnd_clock();
    /* connections handed over above are registered by libmicrohttpd's
     * threads a moment later: the server is idle only when nothing is in
     * flight on several checks in a row */
    int quiet = 0;
    while (quiet < 5 && rnnd_clock() - t0 < cfg->drain_timeout) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
        quiet = atomic_load(&S.inflight) > 0 || atomic_load(&S.fresh) > 0 ? 0 : quiet + 1;
    }
    /* every queued prediction is answered and its connection resumed before
     * libmicrohttpd stops */
    batcher_stop();
    MHD_stop_daemon(S.d);
    watch_free(watch);
    sessions_free(S.sess);
    pool_free(S.pool);
    registry_free(S.reg);
    rnnd_log(LOG_INFO, "stopped");
    return 0;
}

