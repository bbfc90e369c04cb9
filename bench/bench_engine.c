/*
 * rnnd's side of `make bench`, in process: for every configuration of
 * bench/configs.txt (cell H X T B N, one layer, many_to_one regression) it
 * times
 *   - train_ms: one epoch of rnn_train, the training loop `rnnd train` runs
 *     (gather, forward, head, MSE, backward, Adam, shuffling), on N random
 *     sequences in batches of B, with --threads threads;
 *   - infer_seq_s / infer1_seq_s: rnn_forward on an inference workspace for a
 *     batch of B and for one sequence, in sequences per second.
 * Each figure is the median of --reps timed blocks of at least --min-time
 * seconds after two warm-up runs. The whole-process time of `rnnd train` is
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

typedef struct bench {
    rnn_model m;
    rnn_dataset d;
    rnn_train_cfg tc;
    rnn_ws *ws;
    rnn_batch b;
    int what;               /* 0: an epoch of training; else inference */
} bench;

static void once(bench *k)
{
    if (k->what == 0) {
        rnn_train_result r;
        rnn_err err;
        if (rnn_train(&k->m, &k->d, &k->tc, &r, &err) < 0) {
            fprintf(stderr, "bench_engine: %s\n", err.msg);
            exit(1);
        }
        rnn_train_result_free(&r);
    } else {
        rnn_forward(&k->m, k->ws, &k->b);
    }
}

/* Median seconds per call of once(). */
static double median_seconds(bench *k, int reps, double min_time)
{
    double *t = malloc((size_t)reps * sizeof *t);
    if (!t)
        exit(1);
    for (int i = 0; i < 2; i++)
        once(k);
    for (int r = 0; r < reps; r++) {
        long n = 0;
        double t0 = now(), el;
        do {
            once(k);
            n++;
            el = now() - t0;
        } while (el < min_time);
        t[r] = el / (double)n;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    double med = t[reps / 2];
    free(t);
    return med;
}

static void run(const char *cell, int H, int X, int T, int B, int N, int threads, int reps,
                double min_time)
{
    bench k;
    memset(&k, 0, sizeof k);
    rnn_config cfg = {RNN_TASK_REGRESSION, RNN_MODE_MANY_TO_ONE, RNN_CELL_RNN, RNN_ACT_TANH,
                      X, H, 1, 1, 0, 0};
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
    k.tc = (rnn_train_cfg){.epochs = 1, .batch = B, .shuffle = 1, .seed = 1, .threads = threads};
    rnn_optim_defaults(&k.tc.optim, RNN_OPT_ADAM);

    k.what = 0;
    const double train = median_seconds(&k, reps, min_time);
    double seq_s[2];
    const int batch[2] = {B, 1};
    for (int i = 0; i < 2; i++) {
        /* the first batch[i] sequences, time-major */
        float *x = malloc((size_t)T * batch[i] * X * sizeof *x);
        for (int t = 0; t < T; t++)
            for (int b = 0; b < batch[i]; b++)
                memcpy(x + ((size_t)t * batch[i] + b) * X, k.d.x + ((size_t)b * T + t) * X,
                       (size_t)X * sizeof *x);
        k.ws = rnn_ws_new_inference(&cfg, T, batch[i]);
        k.b = (rnn_batch){.T = T, .B = batch[i], .x = x};
        k.what = 1;
        seq_s[i] = batch[i] / median_seconds(&k, reps, min_time);
        rnn_ws_free(k.ws);
        free(x);
    }
    printf("RESULT impl=rnnd cell=%s H=%d X=%d T=%d B=%d N=%d threads=%d train_ms=%.1f "
           "infer_seq_s=%.1f infer1_seq_s=%.1f\n",
           cell, H, X, T, B, N, threads, train * 1e3, seq_s[0], seq_s[1]);
    fflush(stdout);
    rnn_dataset_free(&k.d);
    rnn_model_free(&k.m);
}

int main(int argc, char **argv)
{
    int reps = 5, threads = 1;
    double min_time = 0.2;
    const char *configs = "bench/configs.txt";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--min-time") && i + 1 < argc) min_time = atof(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--configs") && i + 1 < argc) configs = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--reps N] [--min-time S] [--threads N] [--configs FILE]\n",
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
            run(cell, H, X, T, B, N, threads, reps, min_time);
        }
    fclose(f);
    return 0;
}
