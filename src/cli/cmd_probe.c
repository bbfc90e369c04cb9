/* rnnd probe: GET a URL and exit 0 on 200. A container's HEALTHCHECK or a
 * script can check a daemon with it, with no curl in the image. Plain HTTP
 * only; the whole exchange has a time limit. */
#include "cli.h"
#include "../daemon/daemon.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fputs("usage: rnnd probe [--url URL | --config FILE] [--timeout SECONDS]\n"
          "\n"
          "GETs URL (default: /healthz of the daemon rnnd serve --config FILE would run: its\n"
          "listen and port from FILE, then RNND_LISTEN and RNND_PORT, port 8080 without\n"
          "either; plain http only) and exits 0 if it answers 200, 1 otherwise, printing\n"
          "why on stderr. --timeout limits the whole exchange (default 5 s).\n",
          f);
}

/* Splits http://HOST[:PORT][/PATH]; HOST may be [IPv6]. */
static int parse_url(const char *url, char *host, size_t hl, char *port, size_t pl, const char **path)
{
    if (strncmp(url, "http://", 7))
        return -1;
    const char *h = url + 7, *end;
    if (*h == '[') {
        end = strchr(h, ']');
        if (!end)
            return -1;
        snprintf(host, hl, "%.*s", (int)(end - h - 1), h + 1);
        end++;
    } else {
        end = h + strcspn(h, ":/");
        snprintf(host, hl, "%.*s", (int)(end - h), h);
    }
    if (!host[0])
        return -1;
    snprintf(port, pl, "80");
    if (*end == ':') {
        size_t n = strcspn(end + 1, "/");
        if (n == 0 || n >= pl)
            return -1;
        snprintf(port, pl, "%.*s", (int)n, end + 1);
        end += 1 + n;
    }
    *path = *end ? end : "/";
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Waits for fd to be ready for ev until the deadline; 0 ready, -1 timed out. */
static int wait_fd(int fd, short ev, double deadline)
{
    for (;;) {
        int ms = (int)((deadline - now_s()) * 1000);
        if (ms <= 0)
            return -1;
        struct pollfd p = {fd, ev, 0};
        int r = poll(&p, 1, ms);
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

int cmd_probe(int argc, char **argv)
{
    const char *url = NULL, *file = NULL;
    double timeout = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return EXIT_OK;
        }
        if (!strcmp(argv[i], "--url") && i + 1 < argc) {
            url = argv[++i];
        } else if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            file = argv[++i];
        } else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
            char *e;
            timeout = strtod(argv[++i], &e);
            if (*e || !(timeout > 0 && timeout <= 3600)) {
                fprintf(stderr, "rnnd probe: --timeout: must be between 0 and 3600 seconds\n");
                return EXIT_USAGE;
            }
        } else {
            fprintf(stderr, "rnnd probe: unexpected argument \"%s\"\n", argv[i]);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    /* the daemon's own address as rnnd serve reads it: defaults, the
     * config file, then RNND_* (RNND_PORT in a container) */
    char def[300];
    if (!url) {
        rnnd_config cfg;
        char err[300];
        rnnd_config_defaults(&cfg);
        if ((file && rnnd_config_load(&cfg, file, err, sizeof err)) || rnnd_config_env(&cfg, err, sizeof err)) {
            fprintf(stderr, "rnnd probe: %s\n", err);
            return EXIT_USAGE;
        }
        const int any = !strcmp(cfg.listen, "0.0.0.0") || !strcmp(cfg.listen, "::") || !cfg.listen[0];
        const int v6 = strchr(cfg.listen, ':') != NULL;
        snprintf(def, sizeof def, "http://%s%s%s:%d/healthz", v6 && !any ? "[" : "",
                 any ? "127.0.0.1" : cfg.listen, v6 && !any ? "]" : "", cfg.port);
        url = def;
    }
    char host[256], port[16];
    const char *path;
    if (parse_url(url, host, sizeof host, port, sizeof port, &path)) {
        fprintf(stderr, "rnnd probe: --url: \"%s\" is not http://HOST[:PORT]/PATH\n", url);
        return EXIT_USAGE;
    }
    const double deadline = now_s() + timeout;
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_socktype = SOCK_STREAM;
    int gr = getaddrinfo(host, port, &hints, &ai);
    if (gr) {
        fprintf(stderr, "rnnd probe: %s: %s\n", host, gai_strerror(gr));
        return EXIT_FAIL;
    }
    int fd = -1, rc = EXIT_FAIL;
    const char *why = "cannot connect";
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0)
            continue;
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if ((connect(fd, a->ai_addr, a->ai_addrlen) && errno != EINPROGRESS) ||
            wait_fd(fd, POLLOUT, deadline) || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) || soerr) {
            if (soerr) errno = soerr;
            why = strerror(errno);
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        fprintf(stderr, "rnnd probe: %s: %s\n", url, why);
        return EXIT_FAIL;
    }
    char req[1200], buf[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, host);
    size_t got = 0;
    if (n <= 0 || (size_t)n >= sizeof req) {
        fprintf(stderr, "rnnd probe: --url: too long\n");
        close(fd);
        return EXIT_USAGE;
    }
    for (int off = 0; off < n;) {
        if (wait_fd(fd, POLLOUT, deadline)) goto timed_out;
        ssize_t w = send(fd, req + off, (size_t)(n - off), MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN && errno != EINTR) goto io_error;
        if (w > 0) off += (int)w;
    }
    /* the status line is all that is needed */
    while (got < sizeof buf - 1 && !memchr(buf, '\n', got)) {
        if (wait_fd(fd, POLLIN, deadline)) goto timed_out;
        ssize_t r = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (r == 0) break;
        if (r < 0 && errno != EAGAIN && errno != EINTR) goto io_error;
        if (r > 0) got += (size_t)r;
    }
    buf[got] = 0;
    buf[strcspn(buf, "\r\n")] = 0;
    int status = 0;
    if (sscanf(buf, "HTTP/%*d.%*d %d", &status) != 1) {
        fprintf(stderr, "rnnd probe: %s: not an HTTP reply: \"%.80s\"\n", url, buf);
    } else if (status != 200) {
        fprintf(stderr, "rnnd probe: %s: %s\n", url, buf);
    } else {
        rc = EXIT_OK;
    }
    close(fd);
    return rc;
timed_out:
    fprintf(stderr, "rnnd probe: %s: no answer within %g s\n", url, timeout);
    close(fd);
    return EXIT_FAIL;
io_error:
    fprintf(stderr, "rnnd probe: %s: %s\n", url, strerror(errno));
    close(fd);
    return EXIT_FAIL;
}
