/*
 * Bare oneDNN benchmark: times oneDNN's own RNN primitives (vanilla RNN with
 * tanh, LSTM, linear-before-reset GRU; one layer, left to right, f32) on the
 * shapes we benchmark, with nothing of rnnd around them. This is the anchor
 * rnnd's training loop is compared with: one training epoch of N sequences
 * in batches of B (forward_training + backward per batch, as train_ms and
 * GFLOP/s), and forward_inference throughput at batch B and at batch 1.
 * Primitive creation and the weight reorders are outside the timed regions;
 * every batch reuses the same random inputs. Timing: 2 warm-up iterations,
 * then `reps` measurements each running whole iterations for at least
 * `min_time` seconds; the median per-iteration time is reported.
 * Build: cc -std=c11 -O2 bench/bench_dnnl.c -o bench_dnnl -ldnnl -lgomp -lm
 */
#include <dnnl.h>
#include <dnnl_debug.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHECK(call) check((call), #call, __LINE__)

static void check(dnnl_status_t s, const char *what, int line)
{
    if (s == dnnl_success)
        return;
    fprintf(stderr, "bench_dnnl: line %d: %s failed: %s\n", line, what, dnnl_status2str(s));
    exit(1);
}

enum { RNN, LSTM, GRU };
static const char *const cell_name[] = {"rnn", "lstm", "gru"};
static const int gates[] = {1, 4, 3};

typedef struct conf { int cell, H, X, T, B, N; } conf;

static dnnl_engine_t eng;
static dnnl_stream_t strm;

/* Every argument an RNN primitive may take; each primitive uses a subset. */
static const int all_args[] = {
    DNNL_ARG_SRC_LAYER, DNNL_ARG_SRC_ITER, DNNL_ARG_SRC_ITER_C, DNNL_ARG_WEIGHTS_LAYER,
    DNNL_ARG_WEIGHTS_ITER, DNNL_ARG_BIAS, DNNL_ARG_DST_LAYER, DNNL_ARG_DST_ITER,
    DNNL_ARG_DST_ITER_C, DNNL_ARG_WORKSPACE, DNNL_ARG_DIFF_SRC_LAYER, DNNL_ARG_DIFF_SRC_ITER,
    DNNL_ARG_DIFF_SRC_ITER_C, DNNL_ARG_DIFF_WEIGHTS_LAYER, DNNL_ARG_DIFF_WEIGHTS_ITER,
    DNNL_ARG_DIFF_BIAS, DNNL_ARG_DIFF_DST_LAYER, DNNL_ARG_DIFF_DST_ITER, DNNL_ARG_DIFF_DST_ITER_C,
};
#define NARGS ((int)(sizeof all_args / sizeof *all_args))

/* Memories shared by the primitives of one configuration, by argument and
 * descriptor: the forward's dst_layer and workspace are the backward's. */
typedef struct pool { int n; int arg[4 * NARGS]; dnnl_memory_t mem[4 * NARGS]; } pool;

typedef struct prim {
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim;
    int nargs;
    dnnl_exec_arg_t args[NARGS];
    dnnl_memory_t w[2]; /* weights layer, iter in this primitive's layout */
} prim;

static unsigned long long rng_state; /* reset per configuration: same data in any order */

static void fill(float *p, size_t n, int random)
{
    for (size_t i = 0; i < n; i++) {
        rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
        p[i] = random ? (float)((rng_state >> 40) / 16777216.0 * 0.2 - 0.1) : 0.0f;
    }
}

static float *mem_data(dnnl_memory_t m, size_t *n)
{
    const dnnl_memory_desc_t *md;
    void *p;
    CHECK(dnnl_memory_get_memory_desc(m, &md));
    CHECK(dnnl_memory_get_data_handle(m, &p));
    *n = dnnl_memory_desc_get_size(md) / sizeof(float);
    return p;
}

static dnnl_memory_t new_mem(const dnnl_memory_desc_t *md, int random)
{
    dnnl_memory_t m;
    size_t n;
    CHECK(dnnl_memory_create(&m, md, eng, DNNL_MEMORY_ALLOCATE));
    float *p = mem_data(m, &n);
    fill(p, n, random);
    return m;
}

static dnnl_memory_t pool_get(pool *pl, int arg, const dnnl_memory_desc_t *md)
{
    for (int i = 0; i < pl->n; i++) {
        const dnnl_memory_desc_t *have;
        CHECK(dnnl_memory_get_memory_desc(pl->mem[i], &have));
        if (pl->arg[i] == arg && dnnl_memory_desc_equal(have, md))
            return pl->mem[i];
    }
    /* inputs are random, initial states and incoming state gradients zero */
    const int random = arg == DNNL_ARG_SRC_LAYER || arg == DNNL_ARG_BIAS ||
                       arg == DNNL_ARG_DIFF_DST_LAYER;
    pl->arg[pl->n] = arg;
    return pl->mem[pl->n++] = new_mem(md, random);
}

static dnnl_memory_t find_arg(const prim *p, int arg)
{
    for (int i = 0; i < p->nargs; i++)
        if (p->args[i].arg == arg)
            return p->args[i].memory;
    return NULL;
}

static void reorder(dnnl_memory_t from, dnnl_memory_t to)
{
    const dnnl_memory_desc_t *fmd, *tmd;
    dnnl_primitive_desc_t rpd;
    dnnl_primitive_t r;
    CHECK(dnnl_memory_get_memory_desc(from, &fmd));
    CHECK(dnnl_memory_get_memory_desc(to, &tmd));
    CHECK(dnnl_reorder_primitive_desc_create(&rpd, fmd, eng, tmd, eng, NULL));
    CHECK(dnnl_primitive_create(&r, rpd));
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    CHECK(dnnl_primitive_execute(r, strm, 2, a));
    CHECK(dnnl_stream_wait(strm));
    CHECK(dnnl_primitive_destroy(r));
    CHECK(dnnl_primitive_desc_destroy(rpd));
}

static void md_init(dnnl_memory_desc_t *md, int nd, const dnnl_dims_t dims, dnnl_format_tag_t t)
{
    CHECK(dnnl_memory_desc_init_by_tag(md, nd, dims, dnnl_f32, t));
}

/* Builds the primitive of configuration c for `prop` at batch B (the
 * backward against the forward_training `hint`), binding its arguments to
 * the pool's memories and its weights to reorders of the plain ones. */
static void make_prim(const conf *c, dnnl_prop_kind_t prop, int B, const prim *hint, pool *pl,
                      dnnl_memory_t plain[2], prim *p)
{
    const int G = gates[c->cell];
    const dnnl_dims_t src_d = {c->T, B, c->X}, dst_d = {c->T, B, c->H}, st_d = {1, 1, B, c->H};
    const dnnl_dims_t wl_d = {1, 1, c->X, G, c->H}, wi_d = {1, 1, c->H, G, c->H};
    const dnnl_dims_t b_d = {1, 1, c->cell == GRU ? 4 : G, c->H};
    dnnl_memory_desc_t src, dst, st, wl, wi, b;
    md_init(&src, 3, src_d, dnnl_tnc);
    md_init(&dst, 3, dst_d, dnnl_tnc);
    md_init(&st, 4, st_d, dnnl_ldnc);
    md_init(&wl, 5, wl_d, dnnl_format_tag_any);
    md_init(&wi, 5, wi_d, dnnl_format_tag_any);
    md_init(&b, 4, b_d, dnnl_ldgo);
    const dnnl_rnn_direction_t lr = dnnl_unidirectional_left2right;
    dnnl_rnn_desc_t od;
    if (prop != dnnl_backward) {
        switch (c->cell) {
        case RNN:
            CHECK(dnnl_vanilla_rnn_forward_desc_init(&od, prop, dnnl_eltwise_tanh, lr, &src, &st,
                                                     &wl, &wi, &b, &dst, &st, 0, 0.0f, 0.0f));
            break;
        case LSTM:
            CHECK(dnnl_lstm_forward_desc_init(&od, prop, lr, &src, &st, &st, &wl, &wi, &b, &dst,
                                              &st, &st, 0));
            break;
        default:
            CHECK(dnnl_lbr_gru_forward_desc_init(&od, prop, lr, &src, &st, &wl, &wi, &b, &dst,
                                                 &st, 0));
        }
    } else {
        switch (c->cell) { /* gradients have their values' descriptors */
        case RNN:
            CHECK(dnnl_vanilla_rnn_backward_desc_init(&od, prop, dnnl_eltwise_tanh, lr, &src, &st,
                                                      &wl, &wi, &b, &dst, &st, &src, &st, &wl,
                                                      &wi, &b, &dst, &st, 0, 0.0f, 0.0f));
            break;
        case LSTM:
            CHECK(dnnl_lstm_backward_desc_init(&od, prop, lr, &src, &st, &st, &wl, &wi, &b, &dst,
                                               &st, &st, &src, &st, &st, &wl, &wi, &b, &dst, &st,
                                               &st, 0));
            break;
        default:
            CHECK(dnnl_lbr_gru_backward_desc_init(&od, prop, lr, &src, &st, &wl, &wi, &b, &dst,
                                                  &st, &src, &st, &wl, &wi, &b, &dst, &st, 0));
        }
    }
    memset(p, 0, sizeof *p);
    CHECK(dnnl_primitive_desc_create(&p->pd, &od, NULL, eng, hint ? hint->pd : NULL));
    CHECK(dnnl_primitive_create(&p->prim, p->pd));
    for (int i = 0; i < NARGS; i++) {
        const int arg = all_args[i];
        const dnnl_memory_desc_t *md =
            dnnl_primitive_desc_query_md(p->pd, dnnl_query_exec_arg_md, arg);
        if (!md || md->ndims == 0)
            continue;
        dnnl_memory_t m;
        if (arg == DNNL_ARG_WEIGHTS_LAYER || arg == DNNL_ARG_WEIGHTS_ITER) {
            const int k = arg == DNNL_ARG_WEIGHTS_ITER;
            CHECK(dnnl_memory_create(&m, md, eng, DNNL_MEMORY_ALLOCATE));
            reorder(plain[k], m);
            p->w[k] = m;
        } else {
            m = pool_get(pl, arg, md);
        }
        p->args[p->nargs++] = (dnnl_exec_arg_t){arg, m};
    }
}

static void prim_free(prim *p)
{
    for (int k = 0; k < 2; k++)
        if (p->w[k]) CHECK(dnnl_memory_destroy(p->w[k]));
    CHECK(dnnl_primitive_destroy(p->prim));
    CHECK(dnnl_primitive_desc_destroy(p->pd));
}

static void run(const prim *p) { CHECK(dnnl_primitive_execute(p->prim, strm, p->nargs, p->args)); }

/* What one timed iteration does: an epoch, or one inference call. */
typedef struct job {
    const prim *fwd, *bwd;
    int batches, zero_dw;
} job;

static const int dw_args[] = {DNNL_ARG_DIFF_WEIGHTS_LAYER, DNNL_ARG_DIFF_WEIGHTS_ITER,
                              DNNL_ARG_DIFF_BIAS};

static void iterate(const job *j)
{
    for (int b = 0; b < j->batches; b++) {
        run(j->fwd);
        if (!j->bwd)
            continue;
        for (int k = 0; j->zero_dw && k < 3; k++) {
            size_t n;
            float *d = mem_data(find_arg(j->bwd, dw_args[k]), &n);
            memset(d, 0, n * sizeof *d);
        }
        run(j->bwd);
    }
    CHECK(dnnl_stream_wait(strm));
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median over reps of the seconds per iteration. */
static double time_it(const job *j, int reps, double min_time)
{
    double *t = malloc((size_t)reps * sizeof *t);
    if (!t) { fprintf(stderr, "bench_dnnl: out of memory\n"); exit(1); }
    for (int i = 0; i < 2; i++) iterate(j);
    for (int r = 0; r < reps; r++) {
        long n = 0;
        double t0 = now(), el;
        do {
            iterate(j);
            n++;
        } while ((el = now() - t0) < min_time);
        t[r] = el / (double)n;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    const double med = t[reps / 2];
    free(t);
    return med;
}

/* Sum of |x| of an argument's memory; -1 if anything is not finite. */
static double abs_sum(const prim *p, int arg)
{
    size_t n;
    const float *d = mem_data(find_arg(p, arg), &n);
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(d[i])) return -1;
        s += fabs(d[i]);
    }
    return s;
}

static void bench(const conf *c, int reps, double min_time, int threads)
{
    pool pl = {0};
    dnnl_memory_t plain[2];
    rng_state = 0x2545F4914F6CDD1DULL;
    for (int k = 0; k < 2; k++) {
        const dnnl_dims_t d = {1, 1, k ? c->H : c->X, gates[c->cell], c->H};
        dnnl_memory_desc_t md;
        md_init(&md, 5, d, dnnl_ldigo);
        plain[k] = new_mem(&md, 1);
    }
    prim ftr, bwd, inf, inf1;
    make_prim(c, dnnl_forward_training, c->B, NULL, &pl, plain, &ftr);
    make_prim(c, dnnl_backward, c->B, &ftr, &pl, plain, &bwd);
    make_prim(c, dnnl_forward_inference, c->B, NULL, &pl, plain, &inf);
    make_prim(c, dnnl_forward_inference, 1, NULL, &pl, plain, &inf1);

    /* light checks, and whether backward adds into diff weights: one batch
     * from zeroed gradients, then a second one without zeroing */
    job one = {&ftr, &bwd, 1, 1}, again = {&ftr, &bwd, 1, 0};
    iterate(&one);
    const double y = abs_sum(&ftr, DNNL_ARG_DST_LAYER), g1 = abs_sum(&bwd, DNNL_ARG_DIFF_WEIGHTS_ITER);
    const double gx = abs_sum(&bwd, DNNL_ARG_DIFF_WEIGHTS_LAYER);
    iterate(&again);
    const double g2 = abs_sum(&bwd, DNNL_ARG_DIFF_WEIGHTS_ITER);
    if (!(y > 0) || !(g1 > 0) || !(gx > 0) || !(g2 > 0)) {
        fprintf(stderr, "bench_dnnl: %s: output or gradients zero or not finite "
                "(|y| %g, |dW_hh| %g, |dW_ih| %g)\n", cell_name[c->cell], y, g1, gx);
        exit(1);
    }
    const int accum = fabs(g2 / g1 - 2.0) < 1e-3;
    fprintf(stderr, "%s H=%d X=%d T=%d B=%d: |y| %.4g |dW_ih| %.4g |dW_hh| %.4g; "
            "backward %s diff weights (x%.4f)\n", cell_name[c->cell], c->H, c->X, c->T, c->B, y,
            gx, g1, accum ? "accumulates into" : "overwrites", g2 / g1);

    job train = {&ftr, &bwd, c->N / c->B, accum}, ib = {&inf, NULL, 1, 0}, i1 = {&inf1, NULL, 1, 0};
    const double t_train = time_it(&train, reps, min_time);
    const double t_inf = time_it(&ib, reps, min_time), t_inf1 = time_it(&i1, reps, min_time);
    const double flops = 2.0 * gates[c->cell] * c->H * (double)(c->X + c->H) * c->T * c->B *
                         (c->N / c->B) * 3.0;
    printf("RESULT impl=onednn cell=%s H=%d X=%d T=%d B=%d N=%d threads=%d train_ms=%.1f "
           "train_gflops=%.1f infer_seq_s=%.1f infer1_seq_s=%.1f\n",
           cell_name[c->cell], c->H, c->X, c->T, c->B, c->N, threads, t_train * 1e3,
           flops / t_train * 1e-9, c->B / t_inf, 1.0 / t_inf1);
    fflush(stdout);

    prim *all[] = {&ftr, &bwd, &inf, &inf1};
    for (int i = 0; i < 4; i++) prim_free(all[i]);
    for (int i = 0; i < pl.n; i++) CHECK(dnnl_memory_destroy(pl.mem[i]));
    for (int k = 0; k < 2; k++) CHECK(dnnl_memory_destroy(plain[k]));
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_dnnl [--reps R] [--min-time S] [--threads N] "
            "CELL H X T B N [CELL H X T B N ...]\n  CELL: rnn|lstm|gru; N a multiple of B\n");
    exit(1);
}

int main(int argc, char **argv)
{
    int reps = 5, threads = 1, i = 1;
    double min_time = 0.2;
    for (; i + 1 < argc && !strncmp(argv[i], "--", 2); i += 2) {
        if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--min-time")) min_time = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else usage();
    }
    const int nconf = (argc - i) / 6;
    if (reps < 1 || threads < 1 || !(min_time >= 0) || nconf < 1 || (argc - i) % 6)
        usage();
    conf *cs = calloc((size_t)nconf, sizeof *cs);
    if (!cs) usage();
    for (int k = 0; k < nconf; k++, i += 6) {
        conf *c = &cs[k];
        c->cell = -1;
        for (int j = 0; j < 3; j++)
            if (!strcmp(argv[i], cell_name[j])) c->cell = j;
        int *v[] = {&c->H, &c->X, &c->T, &c->B, &c->N};
        for (int j = 0; j < 5; j++)
            *v[j] = atoi(argv[i + 1 + j]);
        if (c->cell < 0 || c->H < 1 || c->X < 1 || c->T < 1 || c->B < 1 || c->N < c->B ||
            c->N % c->B) {
            fprintf(stderr, "bench_dnnl: bad configuration %d (%s ...)\n", k + 1, argv[i]);
            usage();
        }
    }
    omp_set_num_threads(threads);
    const dnnl_version_t *ver = dnnl_version();
    const char *isa = dnnl_cpu_isa2str(dnnl_get_effective_cpu_isa());
    if (!strncmp(isa, "cpu_isa_", 8)) isa += 8;
    printf("INFO onednn_version=%d.%d.%d isa=%s\n", ver->major, ver->minor, ver->patch, isa);
    CHECK(dnnl_engine_create(&eng, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&strm, eng, dnnl_stream_default_flags));
    for (int k = 0; k < nconf; k++)
        bench(&cs[k], reps, min_time, threads);
    CHECK(dnnl_stream_destroy(strm));
    CHECK(dnnl_engine_destroy(eng));
    free(cs);
    return 0;
}
