/*
 * The oneDNN kernel (see dnn.h): each recurrent layer runs as one oneDNN RNN
 * primitive per chunk of steps, L = 1, left to right, f32.
 *
 * Activations need no conversion: oneDNN's tnc layout is rnnd's time-major
 * (T, B, X), and its ldnc state (1, 1, B, H) is one row block of h. Weights
 * do: PyTorch's W_ih (G*H, X) is oneDNN's ldgoi; the primitive picks its own
 * layout (format `any`), so each weight goes PyTorch -> ldgoi in oneDNN's
 * gate order (the stage) -> the primitive's layout (a reorder), once per
 * change of the weights; gradients come back the same way. Gate orders:
 * LSTM i f g o in both; GRU is oneDNN's linear-before-reset GRU with gates
 * (u, r, o) = PyTorch's (z, r, n) and a 4-part bias [b_iz + b_hz,
 * b_ir + b_hr, b_in, b_hn]. RNN and LSTM take one bias, b_ih + b_hh.
 *
 * Primitives are cached per (layer, T, B, direction) in the dnn_seq, with
 * their memory objects, a user-managed scratchpad (so two workspaces never
 * share one) and the weights in their layout. oneDNN's workspace of every
 * chunk of the forward stays until the backward. A zero src_iter is always
 * passed: oneDNN 2.6 computes a wrong W_hh gradient for RNN and LSTM without
 * one.
 */
#include "dnn.h"

#include "internal.h"

#include <dnnl.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ gate maps */

/* oneDNN weight gate k holds PyTorch gate wperm[cell][k]. */
static const int wperm[3][4] = {
    [RNN_CELL_RNN] = {0},
    [RNN_CELL_LSTM] = {0, 1, 2, 3},
    [RNN_CELL_GRU] = {1, 0, 2},
};

/* oneDNN bias part k = b_ih[gate bmap[k][0]] + b_hh[gate bmap[k][1]]; -1: none. */
static const int bmap[3][4][2] = {
    [RNN_CELL_RNN] = {{0, 0}},
    [RNN_CELL_LSTM] = {{0, 0}, {1, 1}, {2, 2}, {3, 3}},
    [RNN_CELL_GRU] = {{1, 1}, {0, 0}, {2, -1}, {-1, 2}},
};

static int bias_parts(rnn_cell_type c) { return c == RNN_CELL_GRU ? 4 : rnn_gates(c); }

/* ------------------------------------------------------------------ arguments */

/* The execution arguments a plan may have, as slots. */
enum {
    A_SRC_L, A_SRC_I, A_SRC_IC, A_W_L, A_W_I, A_BIAS, A_DST_L, A_DST_I, A_DST_IC, A_WS,
    A_SCRATCH, A_DSRC_L, A_DSRC_I, A_DSRC_IC, A_DW_L, A_DW_I, A_DBIAS, A_DDST_L, A_DDST_I,
    A_DDST_IC, A_N
};
static const int arg_id[A_N] = {
    DNNL_ARG_SRC_LAYER, DNNL_ARG_SRC_ITER, DNNL_ARG_SRC_ITER_C, DNNL_ARG_WEIGHTS_LAYER,
    DNNL_ARG_WEIGHTS_ITER, DNNL_ARG_BIAS, DNNL_ARG_DST_LAYER, DNNL_ARG_DST_ITER,
    DNNL_ARG_DST_ITER_C, DNNL_ARG_WORKSPACE, DNNL_ARG_SCRATCHPAD, DNNL_ARG_DIFF_SRC_LAYER,
    DNNL_ARG_DIFF_SRC_ITER, DNNL_ARG_DIFF_SRC_ITER_C, DNNL_ARG_DIFF_WEIGHTS_LAYER,
    DNNL_ARG_DIFF_WEIGHTS_ITER, DNNL_ARG_DIFF_BIAS, DNNL_ARG_DIFF_DST_LAYER,
    DNNL_ARG_DIFF_DST_ITER, DNNL_ARG_DIFF_DST_ITER_C,
};

/* A weight (or weight gradient) between the stage's plain ldgoi layout and
 * the primitive's: `buf` in the primitive's layout, with a reorder, unless
 * the two layouts are the same (then the stage is used as it is). */
typedef struct wconv {
    int same;
    dnnl_memory_t plain;
    dnnl_primitive_t reorder;
    void *buf;
} wconv;

enum { FWD, BWD };

typedef struct plan {
    int l, T, B, dir;           /* the key; T = 0: free slot */
    unsigned long used;         /* for eviction, least recently used first */
    unsigned long stamp;        /* weights version its buffers hold */
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim;
    dnnl_memory_t mem[A_N];     /* NULL: not an argument of this primitive */
    wconv w[2];                 /* weights layer, iter (BWD: also their gradients in dw) */
    wconv dw[2];
    float *bias, *dbias;        /* (parts, H) ldgo */
    void *scratch;
    size_t ws_bytes;            /* oneDNN workspace of one pass */
} plan;

#define NPLANS 24

struct dnn_seq {
    rnn_config cfg;
    int train;
    dnnl_stream_t stream;
    unsigned long clock, stamp;
    plan plans[NPLANS];
    float *stage;               /* max(G*H*X_l) floats: one weight in ldgoi */
    size_t stage_n;
    float *bh;                  /* (B, H) scratch for states oneDNN writes and rnnd ignores */
    float *zero;                /* (B, H) zeros: no gradient enters at a chunk's end */
    size_t bh_n;
    float *dxs;                 /* (T, B, X) scratch for a dx nobody asked for */
    size_t dxs_n;
    void *wsp[RNN_MAX_LAYERS];  /* oneDNN workspaces of every chunk, per layer */
    size_t wsp_n[RNN_MAX_LAYERS];
};

/* ------------------------------------------------------------------ engine */

static dnnl_engine_t engine;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;

static void engine_create(void)
{
    /* every dnn_seq caches its own primitives; oneDNN's cache (1024 by
     * default) would keep every shape a daemon ever trained alive */
    dnnl_set_primitive_cache_capacity(16);
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success)
        engine = NULL;
}

void dnn_thread_init(void)
{
    static _Thread_local int done;
    if (!done) {
        omp_set_num_threads(1);
        done = 1;
    }
}

static void *alloc64(size_t bytes)
{
    size_t n = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, n ? n : 64);
    if (p) memset(p, 0, n ? n : 64);
    return p;
}

/* Grows *p to at least `bytes`, keeping nothing. */
static int grow(void **p, size_t *have, size_t bytes)
{
    if (*have >= bytes)
        return 0;
    free(*p);
    *p = alloc64(bytes);
    *have = *p ? bytes : 0;
    return *p ? 0 : -1;
}

dnn_seq *dnn_seq_new(const rnn_config *c, int train)
{
    pthread_once(&engine_once, engine_create);
    if (!engine)
        return NULL;
    dnn_seq *d = rnn_xcalloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->cfg = *c;
    d->train = train;
    d->stamp = 1;
    if (dnnl_stream_create(&d->stream, engine, dnnl_stream_default_flags) != dnnl_success) {
        free(d);
        return NULL;
    }
    return d;
}

static void wconv_free(wconv *w)
{
    if (w->plain) dnnl_memory_destroy(w->plain);
    if (w->reorder) dnnl_primitive_destroy(w->reorder);
    free(w->buf);
    memset(w, 0, sizeof *w);
}

static void plan_free(plan *p)
{
    for (int i = 0; i < A_N; i++)
        if (p->mem[i]) dnnl_memory_destroy(p->mem[i]);
    for (int i = 0; i < 2; i++) {
        wconv_free(&p->w[i]);
        wconv_free(&p->dw[i]);
    }
    if (p->prim) dnnl_primitive_destroy(p->prim);
    if (p->pd) dnnl_primitive_desc_destroy(p->pd);
    free(p->bias);
    free(p->dbias);
    free(p->scratch);
    memset(p, 0, sizeof *p);
}

void dnn_seq_free(dnn_seq *d)
{
    if (!d)
        return;
    for (int i = 0; i < NPLANS; i++)
        plan_free(&d->plans[i]);
    for (int l = 0; l < RNN_MAX_LAYERS; l++)
        free(d->wsp[l]);
    free(d->stage);
    free(d->bh);
    free(d->zero);
    free(d->dxs);
    dnnl_stream_destroy(d->stream);
    free(d);
}

void dnn_seq_weights_changed(dnn_seq *d) { d->stamp++; }

/* ------------------------------------------------------------------ plans */

static int layer_in(const rnn_config *c, int l) { return rnn_layer_in(c, l); }

static void md_tag(dnnl_memory_desc_t *md, int nd, const dnnl_dim_t *dims, dnnl_format_tag_t tag)
{
    dnnl_dims_t full = {0}; /* the API reads a whole dnnl_dims_t */
    memcpy(full, dims, (size_t)nd * sizeof *dims);
    dnnl_memory_desc_init_by_tag(md, nd, full, dnnl_f32, tag);
}

/* The operation descriptor of layer l's primitive for T steps of B rows. */
static int op_desc(const dnn_seq *d, int l, int T, int B, int dir, dnnl_rnn_desc_t *od)
{
    const rnn_config *c = &d->cfg;
    const dnnl_dim_t X = layer_in(c, l), H = c->hidden, G = rnn_gates(c->cell);
    const dnnl_dim_t src_d[3] = {T, B, X}, dst_d[3] = {T, B, H}, it_d[4] = {1, 1, B, H};
    const dnnl_dim_t wl_d[5] = {1, 1, X, G, H}, wi_d[5] = {1, 1, H, G, H};
    const dnnl_dim_t b_d[4] = {1, 1, bias_parts(c->cell), H};
    dnnl_memory_desc_t src, dst, it, wl, wi, bias;
    md_tag(&src, 3, src_d, dnnl_tnc);
    md_tag(&dst, 3, dst_d, dnnl_tnc);
    md_tag(&it, 4, it_d, dnnl_ldnc);
    md_tag(&wl, 5, wl_d, dnnl_format_tag_any);
    md_tag(&wi, 5, wi_d, dnnl_format_tag_any);
    md_tag(&bias, 4, b_d, dnnl_ldgo);
    const dnnl_rnn_direction_t lr = dnnl_unidirectional_left2right;
    const dnnl_prop_kind_t fp = d->train ? dnnl_forward_training : dnnl_forward_inference;
    static const dnnl_alg_kind_t act_alg[] = {
        [RNN_ACT_TANH] = dnnl_eltwise_tanh, [RNN_ACT_RELU] = dnnl_eltwise_relu,
        [RNN_ACT_SIGMOID] = dnnl_eltwise_logistic,
    };
    dnnl_status_t s = dnnl_unimplemented;
    if (dir == FWD) {
        switch (c->cell) {
        case RNN_CELL_RNN:
            s = dnnl_vanilla_rnn_forward_desc_init(od, fp, act_alg[c->act], lr, &src, &it, &wl, &wi,
                                                   &bias, &dst, &it, 0, 0.0f, 0.0f);
            break;
        case RNN_CELL_LSTM:
            s = dnnl_lstm_forward_desc_init(od, fp, lr, &src, &it, &it, &wl, &wi, &bias, &dst, &it,
                                            &it, 0);
            break;
        case RNN_CELL_GRU:
            s = dnnl_lbr_gru_forward_desc_init(od, fp, lr, &src, &it, &wl, &wi, &bias, &dst, &it, 0);
            break;
        }
        return s == dnnl_success ? 0 : -1;
    }
    /* gradients in the same shapes, weights' in the primitive's choice */
    dnnl_memory_desc_t dsrc = src, ddst = dst, dit = it, dwl = wl, dwi = wi, dbias = bias;
    switch (c->cell) {
    case RNN_CELL_RNN:
        s = dnnl_vanilla_rnn_backward_desc_init(od, dnnl_backward, act_alg[c->act], lr, &src, &it,
                                                &wl, &wi, &bias, &dst, &it, &dsrc, &dit, &dwl, &dwi,
                                                &dbias, &ddst, &dit, 0, 0.0f, 0.0f);
        break;
    case RNN_CELL_LSTM:
        s = dnnl_lstm_backward_desc_init(od, dnnl_backward, lr, &src, &it, &it, &wl, &wi, &bias,
                                         &dst, &it, &it, &dsrc, &dit, &dit, &dwl, &dwi, &dbias,
                                         &ddst, &dit, &dit, 0);
        break;
    case RNN_CELL_GRU:
        s = dnnl_lbr_gru_backward_desc_init(od, dnnl_backward, lr, &src, &it, &wl, &wi, &bias,
                                            &dst, &it, &dsrc, &dit, &dwl, &dwi, &dbias, &ddst,
                                            &dit, 0);
        break;
    }
    return s == dnnl_success ? 0 : -1;
}

/* The plain ldgoi layout of weight k (0: layer, 1: iter) of layer l. */
static void plain_md(const dnn_seq *d, int l, int k, dnnl_memory_desc_t *md)
{
    const rnn_config *c = &d->cfg;
    const dnnl_dim_t dims[5] = {1, 1, k ? c->hidden : layer_in(c, l), rnn_gates(c->cell),
                                c->hidden};
    md_tag(md, 5, dims, dnnl_ldgoi);
}

/* Connects the plain layout with the primitive's `chosen` one; to_plain
 * selects the direction of the reorder (gradients come out of the primitive). */
static int wconv_init(wconv *w, const dnnl_memory_desc_t *plain, const dnnl_memory_desc_t *chosen,
                      int to_plain)
{
    if (dnnl_memory_desc_equal(plain, chosen)) {
        w->same = 1;
        return 0;
    }
    dnnl_primitive_desc_t rpd;
    const dnnl_memory_desc_t *from = to_plain ? chosen : plain, *to = to_plain ? plain : chosen;
    if (dnnl_reorder_primitive_desc_create(&rpd, from, engine, to, engine, NULL) != dnnl_success)
        return -1;
    dnnl_status_t s = dnnl_primitive_create(&w->reorder, rpd);
    dnnl_primitive_desc_destroy(rpd);
    if (s != dnnl_success)
        return -1;
    if (dnnl_memory_create(&w->plain, plain, engine, DNNL_MEMORY_NONE) != dnnl_success)
        return -1;
    w->buf = alloc64(dnnl_memory_desc_get_size(chosen));
    return w->buf ? 0 : -1;
}

static int plan_create(dnn_seq *d, plan *p, int l, int T, int B, int dir, const plan *hint)
{
    const rnn_config *c = &d->cfg;
    dnnl_rnn_desc_t od;
    dnnl_primitive_attr_t attr = NULL;
    memset(p, 0, sizeof *p);
    if (op_desc(d, l, T, B, dir, &od) || dnnl_primitive_attr_create(&attr) != dnnl_success)
        goto fail;
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    dnnl_status_t s = dnnl_primitive_desc_create(&p->pd, &od, attr, engine, hint ? hint->pd : NULL);
    dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success || dnnl_primitive_create(&p->prim, p->pd) != dnnl_success)
        goto fail;
    for (int i = 0; i < A_N; i++) {
        const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(p->pd, dnnl_query_exec_arg_md,
                                                                     arg_id[i]);
        if (!md || md->ndims == 0)
            continue;
        if (dnnl_memory_create(&p->mem[i], md, engine, DNNL_MEMORY_NONE) != dnnl_success)
            goto fail;
        if (i == A_SCRATCH && !(p->scratch = alloc64(dnnl_memory_desc_get_size(md))))
            goto fail;
        if (i == A_WS)
            p->ws_bytes = dnnl_memory_desc_get_size(md);
    }
    for (int k = 0; k < 2; k++) {
        dnnl_memory_desc_t plain;
        plain_md(d, l, k, &plain);
        const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(p->pd, dnnl_query_exec_arg_md,
                                                                      arg_id[A_W_L + k]);
        if (wconv_init(&p->w[k], &plain, wmd, 0))
            goto fail;
        if (dir == BWD) {
            const dnnl_memory_desc_t *dmd = dnnl_primitive_desc_query_md(
                p->pd, dnnl_query_exec_arg_md, arg_id[A_DW_L + k]);
            if (wconv_init(&p->dw[k], &plain, dmd, 1))
                goto fail;
            /* the gradient needs a buffer of its own even in the plain layout */
            if (p->dw[k].same &&
                !(p->dw[k].buf = alloc64(dnnl_memory_desc_get_size(dmd))))
                goto fail;
        }
    }
    const size_t nb = (size_t)bias_parts(c->cell) * c->hidden;
    if (!(p->bias = alloc64(nb * sizeof(float))) ||
        (dir == BWD && !(p->dbias = alloc64(nb * sizeof(float)))))
        goto fail;
    p->l = l;
    p->T = T;
    p->B = B;
    p->dir = dir;
    return 0;
fail:
    plan_free(p);
    return -1;
}

/* The cached plan for the key, made (evicting the least recently used) if
 * needed; NULL if oneDNN cannot make it. */
static plan *get_plan(dnn_seq *d, int l, int T, int B, int dir)
{
    plan *victim = &d->plans[0];
    for (int i = 0; i < NPLANS; i++) {
        plan *p = &d->plans[i];
        if (p->T == T && p->B == B && p->l == l && p->dir == dir) {
            p->used = ++d->clock;
            return p;
        }
        if (p->used < victim->used)
            victim = p;
    }
    const plan *hint = NULL;
    if (dir == BWD) {
        /* the backward is made against the forward it follows */
        const plan *f = get_plan(d, l, T, B, FWD);
        if (!f)
            return NULL;
        hint = f;
        if (victim == f) /* f was just used; the next oldest goes */
            for (int i = 0; i < NPLANS; i++)
                if (&d->plans[i] != f && (victim == f || d->plans[i].used < victim->used))
                    victim = &d->plans[i];
    }
    plan_free(victim);
    if (plan_create(d, victim, l, T, B, dir, hint))
        return NULL;
    victim->used = ++d->clock;
    return victim;
}

/* ------------------------------------------------------------------ weights */

static int stage_size(dnn_seq *d)
{
    const rnn_config *c = &d->cfg;
    int x = layer_in(c, 0) > c->hidden ? layer_in(c, 0) : c->hidden;
    size_t n = (size_t)rnn_gates(c->cell) * c->hidden * x * sizeof(float);
    size_t have = d->stage_n;
    int rc = grow((void **)&d->stage, &have, n);
    d->stage_n = have;
    return rc;
}

/* Copies the model's weights and biases of layer l into the plan's layouts. */
static int load_weights(dnn_seq *d, plan *p, const rnn_layer_params *w)
{
    const rnn_config *c = &d->cfg;
    const int H = c->hidden, G = rnn_gates(c->cell);
    for (int k = 0; k < 2; k++) {
        const size_t blk = (size_t)H * (k ? H : layer_in(c, p->l));
        const float *src = k ? w->w_hh : w->w_ih;
        for (int g = 0; g < G; g++)
            memcpy(d->stage + g * blk, src + wperm[c->cell][g] * blk, blk * sizeof(float));
        wconv *cv = &p->w[k];
        if (cv->same) {
            /* no layout change: the primitive reads a copy of the stage */
            if (!cv->buf && !(cv->buf = alloc64((size_t)G * blk * sizeof(float))))
                return -1;
            memcpy(cv->buf, d->stage, (size_t)G * blk * sizeof(float));
        } else {
            dnnl_memory_t to = p->mem[A_W_L + k];
            dnnl_memory_set_data_handle(cv->plain, d->stage);
            dnnl_memory_set_data_handle(to, cv->buf);
            dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, cv->plain}, {DNNL_ARG_TO, to}};
            if (dnnl_primitive_execute(cv->reorder, d->stream, 2, a) != dnnl_success)
                return -1;
        }
        dnnl_memory_set_data_handle(p->mem[A_W_L + k], cv->buf);
    }
    for (int k = 0; k < bias_parts(c->cell); k++) {
        const int gi = bmap[c->cell][k][0], gh = bmap[c->cell][k][1];
        float *b = p->bias + (size_t)k * H;
        for (int j = 0; j < H; j++)
            b[j] = (gi >= 0 ? w->b_ih[gi * H + j] : 0.0f) + (gh >= 0 ? w->b_hh[gh * H + j] : 0.0f);
    }
    p->stamp = d->stamp;
    return 0;
}

/* Adds the plan's weight and bias gradients, back in PyTorch's layout, into g. */
static int add_gradients(dnn_seq *d, plan *p, const rnn_layer_params *g)
{
    const rnn_config *c = &d->cfg;
    const int H = c->hidden, G = rnn_gates(c->cell);
    for (int k = 0; k < 2; k++) {
        const size_t blk = (size_t)H * (k ? H : layer_in(c, p->l));
        wconv *cv = &p->dw[k];
        const float *plain = cv->buf;
        if (!cv->same) {
            dnnl_memory_t from = p->mem[A_DW_L + k];
            dnnl_memory_set_data_handle(cv->plain, d->stage);
            dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, cv->plain}};
            if (dnnl_primitive_execute(cv->reorder, d->stream, 2, a) != dnnl_success)
                return -1;
            plain = d->stage;
        }
        float *dst = k ? g->w_hh : g->w_ih;
        for (int gg = 0; gg < G; gg++) {
            float *o = dst + wperm[c->cell][gg] * blk;
            const float *s = plain + gg * blk;
            for (size_t i = 0; i < blk; i++) o[i] += s[i];
        }
    }
    for (int k = 0; k < bias_parts(c->cell); k++) {
        const int gi = bmap[c->cell][k][0], gh = bmap[c->cell][k][1];
        const float *db = p->dbias + (size_t)k * H;
        for (int j = 0; j < H; j++) {
            if (gi >= 0) g->b_ih[gi * H + j] += db[j];
            if (gh >= 0) g->b_hh[gh * H + j] += db[j];
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ passes */

static int set(plan *p, int slot, const void *ptr)
{
    if (p->mem[slot])
        dnnl_memory_set_data_handle(p->mem[slot], (void *)ptr);
    return 0;
}

static int execute(dnn_seq *d, plan *p)
{
    dnnl_exec_arg_t a[A_N];
    int n = 0;
    set(p, A_SCRATCH, p->scratch);
    for (int i = 0; i < A_N; i++)
        if (p->mem[i]) {
            a[n].arg = arg_id[i];
            a[n].memory = p->mem[i];
            n++;
        }
    if (dnnl_primitive_execute(p->prim, d->stream, n, a) != dnnl_success)
        return -1;
    return dnnl_stream_wait(d->stream) == dnnl_success ? 0 : -1;
}

/* Scratch rows of (B, H): zeros, and a sink for outputs nobody reads. */
static int bh_scratch(dnn_seq *d, int B)
{
    const size_t n = (size_t)B * d->cfg.hidden * sizeof(float);
    if (d->bh_n >= n)
        return 0;
    free(d->bh);
    free(d->zero);
    d->bh = alloc64(n);
    d->zero = alloc64(n);
    d->bh_n = d->bh && d->zero ? n : 0;
    return d->bh_n ? 0 : -1;
}

/* Chunk j of a pass of T steps in chunks of `chunk`: first step and length. */
static int chunk_count(int T, int chunk) { return chunk > 0 ? (T + chunk - 1) / chunk : 1; }
static int chunk_len(int T, int chunk, int j)
{
    if (chunk <= 0) return T;
    const int t0 = j * chunk;
    return T - t0 < chunk ? T - t0 : chunk;
}

int dnn_layer_forward(dnn_seq *d, const rnn_layer_params *w, int l, int T, int B, int chunk,
                      const float *x, float *h, float *c)
{
    dnn_thread_init();
    const rnn_config *cf = &d->cfg;
    const size_t BH = (size_t)B * cf->hidden, BX = (size_t)B * layer_in(cf, l);
    if (!d->train)
        chunk = 0;
    const int nch = chunk_count(T, chunk);
    if (stage_size(d) || bh_scratch(d, B))
        return -1;
    size_t ws_full = 0;
    for (int j = 0; j < nch; j++) {
        const int t0 = j * (chunk > 0 ? chunk : 0), Tj = chunk_len(T, chunk, j);
        plan *p = get_plan(d, l, Tj, B, FWD);
        if (!p)
            return -1;
        if (j == 0) {
            /* every chunk but the last has the first one's workspace size */
            ws_full = p->ws_bytes;
            const size_t need = ws_full * (size_t)nch;
            if (d->train && grow(&d->wsp[l], &d->wsp_n[l], need))
                return -1;
        }
        if (p->stamp != d->stamp && load_weights(d, p, w))
            return -1;
        set(p, A_SRC_L, x + (size_t)t0 * BX);
        set(p, A_SRC_I, h + (size_t)t0 * BH);
        set(p, A_SRC_IC, c ? c + (size_t)t0 * BH : d->zero);
        set(p, A_W_L, p->w[0].buf);
        set(p, A_W_I, p->w[1].buf);
        set(p, A_BIAS, p->bias);
        set(p, A_DST_L, h + (size_t)(t0 + 1) * BH);
        set(p, A_DST_I, d->bh);
        set(p, A_DST_IC, c ? c + (size_t)(t0 + Tj) * BH : d->bh);
        set(p, A_WS, d->train ? (char *)d->wsp[l] + ws_full * (size_t)j : NULL);
        if (execute(d, p))
            return -1;
    }
    return 0;
}

int dnn_layer_backward(dnn_seq *d, const rnn_layer_params *w, const rnn_layer_params *g, int l,
                       int T, int B, int chunk, const float *x, const float *h, const float *c,
                       const float *dh, float *dx)
{
    dnn_thread_init();
    const rnn_config *cf = &d->cfg;
    const size_t BH = (size_t)B * cf->hidden, BX = (size_t)B * layer_in(cf, l);
    const int nch = chunk_count(T, chunk);
    if (!d->train || stage_size(d) || bh_scratch(d, B))
        return -1;
    if (!dx) {
        size_t have = d->dxs_n;
        if (grow((void **)&d->dxs, &have, (size_t)T * BX * sizeof(float)))
            return -1;
        d->dxs_n = have;
        dx = d->dxs;
    }
    const plan *first = get_plan(d, l, chunk_len(T, chunk, 0), B, FWD);
    if (!first)
        return -1;
    const size_t ws_full = first->ws_bytes;
    for (int j = nch - 1; j >= 0; j--) {
        const int t0 = j * (chunk > 0 ? chunk : 0), Tj = chunk_len(T, chunk, j);
        plan *p = get_plan(d, l, Tj, B, BWD);
        if (!p)
            return -1;
        if (p->stamp != d->stamp && load_weights(d, p, w))
            return -1;
        set(p, A_SRC_L, x + (size_t)t0 * BX);
        set(p, A_SRC_I, h + (size_t)t0 * BH);
        set(p, A_SRC_IC, c ? c + (size_t)t0 * BH : d->zero);
        set(p, A_W_L, p->w[0].buf);
        set(p, A_W_I, p->w[1].buf);
        set(p, A_BIAS, p->bias);
        set(p, A_DST_L, h + (size_t)(t0 + 1) * BH);
        set(p, A_DST_I, h + (size_t)(t0 + Tj) * BH);
        set(p, A_DST_IC, c ? c + (size_t)(t0 + Tj) * BH : d->zero);
        set(p, A_WS, (char *)d->wsp[l] + ws_full * (size_t)j);
        set(p, A_DSRC_L, dx + (size_t)t0 * BX);
        set(p, A_DSRC_I, d->bh);
        set(p, A_DSRC_IC, d->bh);
        for (int k = 0; k < 2; k++) {
            const dnnl_memory_desc_t *md;
            dnnl_memory_get_memory_desc(p->mem[A_DW_L + k], &md);
            memset(p->dw[k].buf, 0, dnnl_memory_desc_get_size(md));
            set(p, A_DW_L + k, p->dw[k].buf);
        }
        memset(p->dbias, 0, (size_t)bias_parts(cf->cell) * cf->hidden * sizeof(float));
        set(p, A_DBIAS, p->dbias);
        set(p, A_DDST_L, dh + (size_t)t0 * BH);
        set(p, A_DDST_I, d->zero);
        set(p, A_DDST_IC, d->zero);
        if (execute(d, p) || add_gradients(d, p, g))
            return -1;
    }
    return 0;
}
