/*
 * Fuzz target: the HTTP request path. A real rnnd serve runs in this
 * process (on 127.0.0.1 and a port of its choosing, with three small models:
 * regression, classify, character LM) and each input is sent to it as the
 * raw bytes of a connection: request line, headers, body, whatever they are.
 * The reply is read to the end and dropped; what is checked is that the
 * daemon neither crashes nor trips a sanitizer, and still answers /healthz.
 * /train and /admin need a token the corpus does not hold (the job parser
 * has its own target), so no input starts a training job.
 */
#include "fuzz.h"
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static int port;

static void save(const char *dir, const char *name, rnn_config cfg, const char *vocab)
{
    rnn_model m;
    rnn_meta meta;
    rnn_err err;
    rnn_rng rng;
    if (rnn_model_init(&m, &cfg, &err))
        abort();
    rnn_rng_seed(&rng, 3);
    rnn_model_randomize(&m, &rng, RNN_INIT_DEFAULT);
    rnn_meta_init(&meta);
    if (vocab) meta.vocab = strdup(vocab);
    char path[256];
    snprintf(path, sizeof path, "%s/%s.safetensors", dir, name);
    if (rnn_model_save(path, &m, &meta, &err))
        abort();
    rnn_meta_free(&meta);
    rnn_model_free(&m);
}

static void *serve(void *arg)
{
    rnnd_serve_main(arg);
    return NULL;
}

static char dir[64];

static void remove_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_http: could not remove %s\n", dir);
}

static void setup(void)
{
    static rnnd_config cfg;
    if (port)
        return;
    snprintf(dir, sizeof dir, "/tmp/rnnd-fuzz-http-XXXXXX");
    if (!mkdtemp(dir))
        abort();
    atexit(remove_dir);
    save(dir, "wave", (rnn_config){.task = RNN_TASK_REGRESSION, .mode = RNN_MODE_MANY_TO_ONE, .cell = RNN_CELL_LSTM, .act = RNN_ACT_TANH,
                   .input_size = 1, .hidden = 8, .layers = 1, .output_size = 1,
                   .embedding = 0, .tokens = 0}, NULL);
    save(dir, "kind", (rnn_config){.task = RNN_TASK_CLASSIFY, .mode = RNN_MODE_MANY_TO_ONE, .cell = RNN_CELL_GRU, .act = RNN_ACT_TANH,
                   .input_size = 1, .hidden = 6, .layers = 1, .output_size = 3,
                   .embedding = 0, .tokens = 0}, NULL);
    save(dir, "chars", (rnn_config){.task = RNN_TASK_CHARLM, .mode = RNN_MODE_MANY_TO_MANY, .cell = RNN_CELL_RNN, .act = RNN_ACT_TANH,
                   .input_size = 5, .hidden = 8, .layers = 1, .output_size = 5,
                   .embedding = 4, .tokens = 1}, "abcde");
    rnnd_config_defaults(&cfg);
    snprintf(cfg.model_dir, sizeof cfg.model_dir, "%s", dir);
    snprintf(cfg.auth_token, sizeof cfg.auth_token, "not-in-the-corpus");
    cfg.port = 0;
    cfg.http_threads = 2;
    cfg.predict_workers = 1;
    cfg.request_timeout = 1;
    cfg.connection_timeout = 2;
    cfg.max_sequence_length = 500;
    cfg.max_predict_work = 20000000;
    cfg.log_level = LOG_ERROR;
    pthread_t t;
    if (pthread_create(&t, NULL, serve, &cfg))
        abort();
    for (int i = 0; i < 5000 && !atomic_load(&S.ready); i++)
        usleep(1000);
    const union MHD_DaemonInfo *info = S.d ? MHD_get_daemon_info(S.d, MHD_DAEMON_INFO_BIND_PORT) : NULL;
    if (!atomic_load(&S.ready) || !info)
        abort();
    port = info->port;
}

/* Sends the bytes as one connection and reads the reply to its end; -2
 * when the connection cannot be made (the client's ports, not the daemon:
 * thousands of connections a second leave the ephemeral range short), -3
 * when nothing came back in 3 s or the connection was reset. libFuzzer's
 * timeout timer (SIGALRM, every second) interrupts send and recv, which
 * are then retried: an EINTR taken for silence was this target's only
 * failure. The socket is closed with a reset, leaving no TIME_WAIT. */
static long exchange(const uint8_t *data, size_t size, char *head, size_t headlen)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a)) {
        if (fd >= 0) close(fd);
        return -2;
    }
    size_t off = 0;
    while (off < size) {
        const ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    char buf[4096];
    long total = 0;
    ssize_t r;
    while ((r = recv(fd, buf, sizeof buf, 0)) > 0 || (r < 0 && errno == EINTR)) {
        if (r < 0)
            continue;
        if (head && total == 0) {
            const size_t n = (size_t)r < headlen - 1 ? (size_t)r : headlen - 1;
            memcpy(head, buf, n);
            head[n] = 0;
        }
        total += r;
    }
    if (r < 0 && total == 0)
        total = -3; /* nothing came in the 3 s of SO_RCVTIMEO */
    const struct linger reset = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    close(fd);
    return total;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    exchange(data, size, NULL, 0);
    /* and the daemon still answers */
    static const char health[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    char head[64] = "";
    long got = -2;
    for (int i = 0; i < 100 && got == -2; i++) {
        if (i) usleep(10000);
        got = exchange((const uint8_t *)health, sizeof health - 1, head, sizeof head);
    }
    if (strncmp(head, "HTTP/1.1 200", 12)) {
        /* say whether the daemon is gone or was only slow, then fail */
        char again[64] = "";
        usleep(500000);
        const long n = exchange((const uint8_t *)health, sizeof health - 1, again, sizeof again);
        fprintf(stderr, "fuzz_http: /healthz answered %ld bytes \"%.40s\" after the input; 0.5 s later "
                        "%ld bytes, \"%.20s\"\n", got, head, n, again);
        abort();
    }
    return 0;
}
