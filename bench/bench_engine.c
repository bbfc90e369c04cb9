/*
 * rnnd's side of `make bench`, in process: for every configuration of
 * bench/configs.txt (cell H X T B N, one layer, many_to_one regression) it
 * times
 *   - train_ms: one epoch of rnn_train, the training loop `rnnd train` runs
 *     (gather, forward, head, MSE, backward, Adam, shuffling), on N random
 *     sequences in batches of B, with --threads threads: the median epoch of
 *     a run of 2 + reps epochs, the first two left out (they allocate and
 *     first touch the workspaces, which a job does once);
 *   - infer_seq_s / infer1_seq_s: rnn_forward on an inference workspace for a
 *     batch of B and for one sequence, in sequences per second;
 *   - step_seq_s: one sequence step by step through rnn_step, as the daemon
 *     answers a /predict, in sequences per second.
 * The inference figures are the median of --reps timed blocks of at least
 * --min-time seconds after two warm-up runs. The whole-process time of `rnnd train` is
 * measured by bench/run.sh around the binary itself.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return t[n / 2];
}

/* Seconds per inference pass: the median of reps blocks. */
static double infer_seconds(const rnn_model *m, rnn_ws *ws, const rnn_batch *b, int reps,
                            double min_time)
{
    double t[64];
    reps = reps < 64 ? reps : 64;
    for (int i = 0; i < 2; i++)
        rnn_forward(m, ws, b);
    for (int r = 0; r < reps; r++) {
        long n = 0;
        double t0 = now(), el;
        do {
            rnn_forward(m, ws, b);
            n++;
            el = now() - t0;
        } while (el < min_time);
        t[r] = el / (double)n;
    }
    return median(t, reps);
}

/* Seconds per sequence stepped through rnn_step: the median of reps blocks. */
static double step_seconds(const rnn_model *m, const float *x, int T, int reps, double min_time)
{
    double t[64];
    reps = reps < 64 ? reps : 64;
    rnn_state st;
    float out[1];
    if (rnn_state_init(&st, &m->cfg, 1))
        exit(1);
    for (int r = -2; r < reps; r++) {
        long n = 0;
        double t0 = now(), el;
        do {
            rnn_state_reset(&st, &m->cfg);
            for (int s = 0; s < T; s++)
                rnn_step(m, &st, x + (size_t)s * m->cfg.input_size, NULL, out);
            n++;
            el = now() - t0;
        } while (el < min_time);
        if (r >= 0)
            t[r] = el / (double)n;
    }
    rnn_state_free(&st);
    return median(t, reps);
}

/* The length of every epoch, from the trainer's progress callback. */
typedef struct epochs { double last, t[66]; int n; } epochs;

static int on_progress(void *ud, const rnn_progress *p)
{
    epochs *e = ud;
    if (p->epoch_end && e->n < 66) {
        e->t[e->n++] = p->elapsed - e->last;
        e->last = p->elapsed;
    }
    return 0;
}

static void run(const char *cell, int H, int X, int T, int B, int N, int threads, int reps,
                double min_time, int train_too)
{
    struct { rnn_model m; rnn_dataset d; } k;
    memset(&k, 0, sizeof k);
    rnn_config cfg = {RNN_TASK_REGRESSION, RNN_MODE_MANY_TO_ONE, RNN_CELL_RNN, RNN_ACT_TANH,
                      X, H, 1, 1, 0, 0, 0, 0};
    rnn_err err;
    if (rnn_cell_parse(cell, &cfg.cell) || rnn_model_init(&k.m, &cfg, &err) ||
        rnn_dataset_alloc(&k.d, N, (size_t)N * T, X, 1, RNN_TASK_REGRESSION,
                          RNN_MODE_MANY_TO_ONE, &err)) {
        fprintf(stderr, "bench_engine: cannot set up %s H=%d X=%d\n", cell, H, X);
        exit(1);
    }
    rnn_rng rng;
    rnn_rng_seed(&rng, 1);
    rnn_model_randomize(&k.m, &rng, RNN_INIT_DEFAULT);
    for (int i = 0; i < N; i++) {
        k.d.len[i] = T;
        k.d.off[i] = (size_t)i * T;
        k.d.y[i] = (float)rnn_rng_normal(&rng);
    }
    for (size_t i = 0; i < (size_t)N * T * X; i++)
        k.d.x[i] = (float)rnn_rng_normal(&rng);
    reps = reps < 64 ? reps : 64;
    epochs ep = {0};
    rnn_train_cfg tc = {.epochs = 2 + reps, .batch = B, .shuffle = 1, .seed = 1,
                        .threads = threads, .progress = on_progress, .progress_ud = &ep};
    rnn_optim_defaults(&tc.optim, RNN_OPT_ADAM);
    rnn_train_result res;
    if (!train_too)
        tc.epochs = 0;
    if (rnn_train(&k.m, &k.d, &tc, &res, &err) < 0) {
        fprintf(stderr, "bench_engine: %s\n", err.msg);
        exit(1);
    }
    rnn_train_result_free(&res);
    const double train = train_too ? median(ep.t + 2, ep.n - 2) : 0;
    double seq_s[2], step_s = 0;
    const int batch[2] = {B, 1};
    for (int i = 0; i < 2; i++) {
        /* the first batch[i] sequences, time-major */
        float *x = malloc((size_t)T * batch[i] * X * sizeof *x);
        for (int t = 0; t < T; t++)
            for (int b = 0; b < batch[i]; b++)
                memcpy(x + ((size_t)t * batch[i] + b) * X, k.d.x + ((size_t)b * T + t) * X,
                       (size_t)X * sizeof *x);
        rnn_ws *ws = rnn_ws_new_inference(&cfg, T, batch[i]);
        const rnn_batch b = {.T = T, .B = batch[i], .x = x};
        seq_s[i] = batch[i] / infer_seconds(&k.m, ws, &b, reps, min_time);
        rnn_ws_free(ws);
        if (batch[i] == 1)
            step_s = 1.0 / step_seconds(&k.m, x, T, reps, min_time);
        free(x);
    }
    printf("RESULT impl=rnnd cell=%s H=%d X=%d T=%d B=%d N=%d threads=%d train_ms=%.1f "
           "infer_seq_s=%.1f infer1_seq_s=%.1f step_seq_s=%.1f\n",
           cell, H, X, T, B, N, threads, train * 1e3, seq_s[0], seq_s[1], step_s);
    fflush(stdout);
    rnn_dataset_free(&k.d);
    rnn_model_free(&k.m);
}

int main(int argc, char **argv)
{
    int reps = 5, threads = 1, train_too = 1;
    double min_time = 0.2;
    const char *configs = "bench/configs.txt";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--min-time") && i + 1 < argc) min_time = atof(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--configs") && i + 1 < argc) configs = argv[++i];
        else if (!strcmp(argv[i], "--inference-only")) train_too = 0;
        else {
            fprintf(stderr, "usage: %s [--reps N] [--min-time S] [--threads N] [--configs FILE] "
                    "[--inference-only]\n",
                    argv[0]);
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    FILE *f = fopen(configs, "r");
    if (!f) {
        fprintf(stderr, "bench_engine: cannot open %s\n", configs);
        return 1;
    }
    char line[256], cell[16];
    int H, X, T, B, N;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "%15s %d %d %d %d %d", cell, &H, &X, &T, &B, &N) == 6 && cell[0] != '#') {
            fprintf(stderr, "rnnd %s H=%d X=%d T=%d B=%d N=%d threads=%d\n", cell, H, X, T, B, N,
                    threads);
            run(cell, H, X, T, B, N, threads, reps, min_time, train_too);
        }
    fclose(f);
    return 0;
}
