/*
 * Engine benchmark: for RNN (tanh), LSTM and GRU x H x X x T x B, the
 * throughput (sequences/s) of a training step (forward, linear head and MSE
 * at every step, backward, Adam) and of inference (forward, head on the last
 * step). Prints one RESULT line per configuration in the format that
 * bench/report.py joins with bench_torch.py's. Single-threaded BLAS.
 *
 * Timing: 2 warm-up iterations, then `reps` measurements each at least
 * `min_time` seconds long; the median per-iteration time is reported.
 */
#include "rnn/rnn.h"

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

typedef struct ctx {
    rnn_model m;
    rnn_ws *ws;
    rnn_batch b;
    float *grads;
    rnn_optim opt;
    int train;
} ctx;

static void iterate(ctx *c)
{
    if (c->train) {
        memset(c->grads, 0, c->m.nparams * sizeof(float));
        rnn_forward(&c->m, c->ws, &c->b);
        rnn_backward(&c->m, c->ws, &c->b, 0, c->grads, NULL);
        rnn_optim_step(&c->opt, c->m.params, c->grads);
    } else {
        rnn_forward(&c->m, c->ws, &c->b);
    }
}

static double time_it(ctx *c, int reps, double min_time)
{
    double *t = malloc((size_t)reps * sizeof(double));
    for (int i = 0; i < 2; i++) iterate(c);
    for (int r = 0; r < reps; r++) {
        long n = 0;
        double t0 = now(), el;
        do {
            iterate(c);
            n++;
            el = now() - t0;
        } while (el < min_time);
        t[r] = el / (double)n;
    }
    qsort(t, (size_t)reps, sizeof(double), cmp_double);
    double med = t[reps / 2];
    free(t);
    return med;
}

static double run(rnn_cell_type cell, int H, int X, int T, int B, int train, int reps, double min_time)
{
    rnn_config cfg = {RNN_TASK_REGRESSION, train ? RNN_MODE_MANY_TO_MANY : RNN_MODE_MANY_TO_ONE,
                      cell, RNN_ACT_TANH, X, H, 1, 1, 0, 0};
    ctx c;
    memset(&c, 0, sizeof c);
    rnn_err err;
    if (rnn_model_init(&c.m, &cfg, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    rnn_rng rng;
    rnn_rng_seed(&rng, 1);
    rnn_model_randomize(&c.m, &rng, RNN_INIT_DEFAULT);
    c.ws = rnn_ws_new(&cfg, T, B);
    float *x = malloc((size_t)T * B * X * sizeof(float));
    float *y = malloc((size_t)T * B * sizeof(float));
    for (size_t i = 0; i < (size_t)T * B * X; i++) x[i] = (float)rnn_rng_normal(&rng);
    for (size_t i = 0; i < (size_t)T * B; i++) y[i] = (float)rnn_rng_normal(&rng);
    c.b = (rnn_batch){T, B, x, NULL, train ? y : NULL, NULL};
    c.train = train;
    c.grads = calloc(c.m.nparams, sizeof(float));
    rnn_optim_cfg oc;
    rnn_optim_defaults(&oc, RNN_OPT_ADAM);
    rnn_optim_init(&c.opt, &oc, c.m.nparams, &err);
    double s = time_it(&c, reps, min_time);
    rnn_optim_free(&c.opt);
    free(c.grads);
    free(x);
    free(y);
    rnn_ws_free(c.ws);
    rnn_model_free(&c.m);
    return (double)B / s;
}

int main(int argc, char **argv)
{
    int quick = 0, reps = 5;
    double min_time = 0.05;
    const char *only_cell = NULL;
    int only_h = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--min-time") && i + 1 < argc) min_time = atof(argv[++i]);
        else if (!strcmp(argv[i], "--cell") && i + 1 < argc) only_cell = argv[++i];
        else if (!strcmp(argv[i], "--H") && i + 1 < argc) only_h = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--quick] [--reps N] [--min-time S] [--cell C] [--H N]\n", argv[0]);
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    rnn_blas_threads(1);
    const rnn_cell_type cells[] = {RNN_CELL_RNN, RNN_CELL_LSTM, RNN_CELL_GRU};
    const int hs[] = {64, 128, 256, 512}, ts[] = {50, 200}, bs[] = {1, 32};
    for (int ci = 0; ci < 3; ci++) {
        if (only_cell && strcmp(only_cell, rnn_cell_name(cells[ci]))) continue;
        for (int hi = 0; hi < 4; hi++) {
            const int H = hs[hi];
            if (only_h && H != only_h) continue;
            if (quick && H != 64 && H != 256) continue;
            for (int xi = 0; xi < 2; xi++) {
                const int X = xi == 0 ? H : 1;
                for (int ti = 0; ti < 2; ti++) {
                    if (quick && ti > 0) continue;
                    for (int bi = 0; bi < 2; bi++) {
                        const int T = ts[ti], B = bs[bi];
                        fprintf(stderr, "rnnd %s H=%d X=%d T=%d B=%d\n", rnn_cell_name(cells[ci]), H, X, T, B);
                        double tr = run(cells[ci], H, X, T, B, 1, reps, min_time);
                        double in = run(cells[ci], H, X, T, B, 0, reps, min_time);
                        printf("RESULT impl=rnnd cell=%s H=%d X=%d T=%d B=%d train_seq_s=%.1f infer_seq_s=%.1f\n",
                               rnn_cell_name(cells[ci]), H, X, T, B, tr, in);
                        fflush(stdout);
                    }
                }
            }
        }
    }
    return 0;
}
