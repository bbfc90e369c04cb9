/*
 * Forward and backward passes through time for stacked RNN, LSTM and GRU
 * layers with a dense head, on a preallocated workspace, and the
 * step-by-step path of inference.
 *
 * Two kernels compute a layer over a sequence. The own kernel runs the cells
 * of cells.c step by step: the input projection of all T steps is one GEMM
 * (a loop, step by step, for narrow inputs), each step adds h_{t-1} W_hh^T,
 * and after the backward sweep each weight gradient is one GEMM over all
 * steps, all through dnnl_sgemm with the weights transposed (gemm.c). The
 * oneDNN kernel (dnn.c) runs each layer as oneDNN RNN primitives. Which
 * kernel runs a pass is measured, not assumed (docs/benchmarks.md, one core):
 * the own kernel trains faster for every cell and runs B = 1 faster; oneDNN's
 * forward_inference primitive, fusing the gate math into its GEMM, runs
 * batched LSTM inference faster from H = 128 on. kernel_for() is that table;
 * RNN_KERNEL=own or RNN_KERNEL=onednn in the environment forces one kernel
 * (a oneDNN refusal falls back to the own kernel). Both are held to the same
 * PyTorch references.
 *
 * Token input is looked up in the embedding or, without one, written as
 * one-hot rows, so that every layer sees numeric input (T, B, X_l).
 *
 * A bidirectional layer is two units of one kernel: the forward one reads
 * x_0 .. x_{T-1}, the reverse one the same steps reversed (a copy, so both
 * run the same code), and the layer's output at step t is their states
 * side by side, [h_f(t), h_r(t)], where h_r(t) has read x_{T-1} .. x_t.
 * Backward splits the output's gradient the same way and adds the reverse
 * unit's input gradient back in time order. Such models run on the own
 * kernel only.
 *
 * Dropout (training) multiplies each input of layers 1..L-1 by a mask m/(1-p),
 * m ~ Bernoulli(1-p), and its gradient by the same: the mask is a hash of
 * (seed, sequence, layer, step, unit), recomputed by the backward pass
 * rather than stored.
 * Nothing is allocated between rnn_ws_new and rnn_ws_free but the kernels'
 * buffers on the first pass of a new shape.
 */
#include "cells.h"
#include "dnn.h"
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { KERNEL_AUTO, KERNEL_OWN, KERNEL_ONEDNN };

struct rnn_ws {
    rnn_config cfg;
    int maxT, maxB;
    int T, B;                   /* of the last forward */
    int has_targets;
    int train;                  /* made by rnn_ws_new: backward possible */
    int kernel;                 /* KERNEL_*: RNN_KERNEL in the environment, or AUTO */
    int used_dnn;               /* the last forward ran on oneDNN */
    int chunk;                  /* its chunk length on oneDNN (truncated BPTT) */
    dnn_seq *dnn;               /* NULL: own kernel only */
    uint64_t dnn_of;            /* inference: serial of the model oneDNN holds weights of */
    float *x0;                  /* (T, B, E or V) embedded or one-hot tokens */
    /* per unit u = l D + d (layer l, direction d) */
    float *h[RNN_MAX_UNITS];    /* (T+1, B, H); h[0] is the zero initial state */
    float *c[RNN_MAX_UNITS];    /* (T+1, B, H) LSTM cell state */
    /* bidirectional */
    float *cat[RNN_MAX_LAYERS]; /* (T, B, 2H) the layer's outputs [h_f(t), h_r(t)] */
    float *xr[RNN_MAX_LAYERS];  /* (T, B, X_l) its input, steps reversed */
    float *last;                /* (B, 2H) many_to_one head input [h_f(T-1), h_r(0)] */
    float *dlast;               /* (B, 2H) its gradient */
    float *dF, *dR;             /* (T, B, H) the gradient of each direction's states */
    float *dxr;                 /* (T, B, max(X0, 2H)) the reverse unit's input gradient */
    /* dropout (training) */
    double drop_p;              /* 0: none */
    uint64_t drop_seed;
    const int *drop_ids;        /* (B) sequence ids of the rows, or NULL */
    float *xd[RNN_MAX_LAYERS];  /* (T, B, X_l) layer l's input after dropout, l >= 1 */
    float *out;                 /* (B, O) or (T, B, O) head outputs */
    float *dout;                /* same shape: dloss/dout */
    float *dA, *dB;             /* (T, B, max(D H, X0)) gradients w.r.t. layer outputs/inputs */
    /* the own kernel's, allocated on its first use */
    int own_ready;
    float *gates[RNN_MAX_UNITS]; /* (T, B, G*H) activated gates (RNN: h) */
    float *tc[RNN_MAX_UNITS];   /* (T, B, H) LSTM tanh(c) */
    float *hn[RNN_MAX_UNITS];   /* (T, B, H) GRU W_hn h + b_hn */
    float *dg;                  /* (T, B, G*H) dloss/d(pre-activation), input side */
    float *dgh;                 /* (T, B, G*H) GRU: the recurrent side */
    float *dc;                  /* (B, H) LSTM cell gradient carried back */
    float *hp;                  /* (B, G*H) GRU step scratch */
    int ldw;                    /* row stride of the transposed weights */
    int whh_t;                  /* the last forward multiplied by W_hh^T */
    float *wt_ih[RNN_MAX_UNITS]; /* (X_l, ldw) W_ih^T of the last forward */
    float *wt_hh[RNN_MAX_UNITS]; /* (H, ldw) W_hh^T */
    float *dwt;                 /* (max(X0, H), G*H) a weight gradient, transposed */
};

static size_t ws_width(const rnn_config *c)
{
    const int x0 = rnn_layer_in(c, 0), dh = rnn_dirs(c) * c->hidden;
    return (size_t)(x0 > dh ? x0 : dh);
}

static int kernel_from_env(void)
{
    const char *k = getenv("RNN_KERNEL");
    if (k && strcmp(k, "onednn") == 0)
        return KERNEL_ONEDNN;
    return k && strcmp(k, "own") == 0 ? KERNEL_OWN : KERNEL_AUTO;
}

/* The kernel of a pass over B sequences, as measured: oneDNN for batched
 * inference of LSTMs from H = 128 on (below, the two are even, and a oneDNN
 * primitive costs a daemon memory for nothing), the own kernel for the rest. */
static int kernel_for(const rnn_ws *ws, int B)
{
    if (ws->cfg.bidirectional)
        return KERNEL_OWN;
    if (ws->kernel != KERNEL_AUTO)
        return ws->kernel;
    return !ws->train && B > 1 && ws->cfg.cell == RNN_CELL_LSTM && ws->cfg.hidden >= 128
               ? KERNEL_ONEDNN
               : KERNEL_OWN;
}

static rnn_ws *ws_new(const rnn_config *cfg, int maxT, int maxB, int train)
{
    if (maxT < 1 || maxB < 1 || rnn_config_check(cfg, NULL))
        return NULL;
    rnn_ws *ws = rnn_xcalloc(1, sizeof *ws);
    if (!ws)
        return NULL;
    ws->cfg = *cfg;
    ws->maxT = maxT;
    ws->maxB = maxB;
    ws->train = train;
    ws->kernel = kernel_from_env();
    const size_t T = (size_t)maxT, B = (size_t)maxB, H = (size_t)cfg->hidden;
    const size_t O = (size_t)cfg->output_size;
    int ok = 1;
#define ALLOC(p, n) do { (p) = rnn_falloc(n); ok = ok && (p); } while (0)
    const int D = rnn_dirs(cfg);
    if (rnn_token_input(cfg))
        ALLOC(ws->x0, T * B * (size_t)rnn_layer_in(cfg, 0));
    for (int u = 0; u < cfg->layers * D; u++) {
        ALLOC(ws->h[u], (T + 1) * B * H);
        if (cfg->cell == RNN_CELL_LSTM)
            ALLOC(ws->c[u], (T + 1) * B * H);
    }
    for (int l = 0; D == 2 && l < cfg->layers; l++) {
        ALLOC(ws->cat[l], T * B * 2 * H);
        ALLOC(ws->xr[l], T * B * (size_t)rnn_layer_in(cfg, l));
    }
    if (D == 2 && cfg->mode == RNN_MODE_MANY_TO_ONE)
        ALLOC(ws->last, B * 2 * H);
    ALLOC(ws->out, T * B * O);
    if (train) {
        ALLOC(ws->dout, T * B * O);
        ALLOC(ws->dA, T * B * ws_width(cfg));
        ALLOC(ws->dB, T * B * ws_width(cfg));
        if (D == 2) {
            ALLOC(ws->dF, T * B * H);
            ALLOC(ws->dR, T * B * H);
            ALLOC(ws->dxr, T * B * ws_width(cfg));
            ALLOC(ws->dlast, B * 2 * H);
        }
    }
#undef ALLOC
    if (ok && kernel_for(ws, maxB) == KERNEL_ONEDNN)
        ws->dnn = dnn_seq_new(cfg, train);
    if (!ok) {
        rnn_ws_free(ws);
        return NULL;
    }
    return ws;
}

rnn_ws *rnn_ws_new(const rnn_config *cfg, int maxT, int maxB) { return ws_new(cfg, maxT, maxB, 1); }

rnn_ws *rnn_ws_new_inference(const rnn_config *cfg, int maxT, int maxB)
{
    return ws_new(cfg, maxT, maxB, 0);
}

/* The own kernel's buffers, on its first use. */
static int own_alloc(rnn_ws *ws)
{
    if (ws->own_ready)
        return 0;
    const rnn_config *cfg = &ws->cfg;
    const size_t T = (size_t)ws->maxT, B = (size_t)ws->maxB, H = (size_t)cfg->hidden;
    const size_t GH = (size_t)rnn_gates(cfg->cell) * H;
    int ok = 1;
    ws->ldw = rnn_gemm_ld((int)GH);
#define ALLOC(p, n) do { (p) = rnn_falloc(n); ok = ok && (p); } while (0)
    for (int u = 0; u < cfg->layers * rnn_dirs(cfg); u++) {
        ALLOC(ws->wt_ih[u], (size_t)rnn_layer_in(cfg, u / rnn_dirs(cfg)) * ws->ldw);
        ALLOC(ws->wt_hh[u], H * ws->ldw);
        ALLOC(ws->gates[u], T * B * GH);
        if (cfg->cell == RNN_CELL_LSTM)
            ALLOC(ws->tc[u], T * B * H);
        if (cfg->cell == RNN_CELL_GRU)
            ALLOC(ws->hn[u], T * B * H);
    }
    ALLOC(ws->hp, B * GH);
    if (ws->train) {
        ALLOC(ws->dg, T * B * GH);
        ALLOC(ws->dc, B * H);
        ALLOC(ws->dwt, ws_width(cfg) * GH);
        if (cfg->cell == RNN_CELL_GRU)
            ALLOC(ws->dgh, T * B * GH);
    }
#undef ALLOC
    ws->own_ready = ok;
    return ok ? 0 : -1;
}

void rnn_ws_free(rnn_ws *ws)
{
    if (!ws)
        return;
    dnn_seq_free(ws->dnn);
    free(ws->x0);
    for (int u = 0; u < RNN_MAX_UNITS; u++) {
        free(ws->gates[u]);
        free(ws->h[u]);
        free(ws->c[u]);
        free(ws->tc[u]);
        free(ws->hn[u]);
        free(ws->wt_ih[u]);
        free(ws->wt_hh[u]);
    }
    for (int l = 0; l < RNN_MAX_LAYERS; l++) {
        free(ws->cat[l]);
        free(ws->xr[l]);
        free(ws->xd[l]);
    }
    free(ws->last);
    free(ws->dlast);
    free(ws->dF);
    free(ws->dR);
    free(ws->dxr);
    free(ws->out);
    free(ws->dout);
    free(ws->dg);
    free(ws->dgh);
    free(ws->dA);
    free(ws->dB);
    free(ws->dc);
    free(ws->hp);
    free(ws->dwt);
    free(ws);
}

const float *rnn_ws_outputs(const rnn_ws *ws) { return ws->out; }

/* Layer l's outputs of the last forward, (T, B, D H). */
static float *layer_out(const rnn_ws *ws, int l)
{
    return ws->cat[l] ? ws->cat[l] : ws->h[l] + (size_t)ws->B * ws->cfg.hidden;
}

const float *rnn_ws_hidden(const rnn_ws *ws) { return layer_out(ws, ws->cfg.layers - 1); }

/* dst[t] = src[T-1-t] for rows of `row` floats; add: dst[t] += src[T-1-t]. */
static void reverse_steps(const float *src, float *dst, int T, size_t row, int add)
{
    for (int t = 0; t < T; t++) {
        const float *a = src + (size_t)(T - 1 - t) * row;
        float *b = dst + (size_t)t * row;
        if (!add) {
            memcpy(b, a, row * sizeof(float));
            continue;
        }
        for (size_t j = 0; j < row; j++) b[j] += a[j];
    }
}

/* ------------------------------------------------------------------ dropout */

void rnn_ws_dropout(rnn_ws *ws, double p, uint64_t seed, const int *ids)
{
    ws->drop_p = 0;
    if (!(p > 0 && p < 1) || !ws->train || ws->cfg.layers < 2)
        return;
    for (int l = 1; l < ws->cfg.layers; l++)
        if (!ws->xd[l] &&
            !(ws->xd[l] = rnn_falloc((size_t)ws->maxT * ws->maxB * rnn_layer_in(&ws->cfg, l))))
            return; /* out of memory: no dropout rather than a crash */
    ws->drop_p = p;
    ws->drop_seed = seed;
    ws->drop_ids = ids;
}

/* splitmix64's finaliser: a well-mixed 64-bit hash of z. */
static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* y = x m / (1 - p) over layer l's input (T, B, X_l), m_j = 1 where the
 * hash of (seed, sequence, l, t, j) lands at or above p, else 0. In place
 * (x == y) this is also the backward: dloss/dx = m / (1 - p) dloss/dy. */
static void dropout_apply(const rnn_ws *ws, int l, const float *x, float *y)
{
    const int X = rnn_layer_in(&ws->cfg, l);
    const uint64_t cut = (uint64_t)(ws->drop_p * 9007199254740992.0); /* p 2^53 */
    const float scale = (float)(1.0 / (1.0 - ws->drop_p));
    for (int t = 0; t < ws->T; t++)
        for (int b = 0; b < ws->B; b++) {
            const uint64_t id = (uint64_t)(ws->drop_ids ? ws->drop_ids[b] : b);
            const uint64_t key = mix64(ws->drop_seed ^ mix64(id * 0x9e3779b97f4a7c15ULL +
                                                              ((uint64_t)l << 48) + (uint64_t)t));
            const size_t r = ((size_t)t * ws->B + b) * X;
            for (int j = 0; j < X; j++) {
                const int keep = mix64(key + (uint64_t)j * 0x9e3779b97f4a7c15ULL) >> 11 >= cut;
                y[r + j] = keep ? x[r + j] * scale : 0.0f;
            }
        }
}

static void colsum_acc(int M, int N, const float *d, float *db)
{
    for (int i = 0; i < M; i++) {
        const float *r = d + (size_t)i * N;
        for (int j = 0; j < N; j++)
            db[j] += r[j];
    }
}

/* Token rows of layer 0's input: x0[r] = emb[tok[r]] with an embedding, else
 * the one-hot row e_{tok[r]} of V features. */
static void token_input(const rnn_model *m, const int32_t *tok, size_t rows, float *x0)
{
    const int X = rnn_layer_in(&m->cfg, 0);
    if (m->cfg.embedding) {
        for (size_t r = 0; r < rows; r++)
            memcpy(x0 + r * X, m->emb + (size_t)tok[r] * X, (size_t)X * sizeof(float));
        return;
    }
    memset(x0, 0, rows * X * sizeof(float));
    for (size_t r = 0; r < rows; r++)
        x0[r * X + tok[r]] = 1.0f;
}

/* Below this input width the input projection is a loop over the inputs,
 * run step by step while the step's gates are in cache; from it on, one GEMM
 * over all steps. */
#define PROJ_GEMM_MIN_X 16

/* a (rows, G*H) = x W_ih^T + b_ih (+ b_hh except GRU, whose b_hn sits inside
 * the reset product): the input side of steps. wt, if not NULL, is W_ih^T
 * (X, ldw), the faster operand. */
static void input_projection(const rnn_config *c, const rnn_layer_params *p, int l,
                             const float *wt, int ldw, const float *x, int rows, float *a)
{
    const int GH = rnn_gates(c->cell) * c->hidden, X = rnn_layer_in(c, l);
    const float *b_hh = c->cell == RNN_CELL_GRU ? NULL : p->b_hh;
    if (wt && X < PROJ_GEMM_MIN_X) {
        /* a_r = b + sum_k x_rk W_ih^T_k, one pass over the row per input */
        for (int r = 0; r < rows; r++) {
            float *restrict row = a + (size_t)r * GH;
            const float *xr = x + (size_t)r * X;
            for (int j = 0; j < GH; j++)
                row[j] = p->b_ih[j] + (b_hh ? b_hh[j] : 0.0f) + xr[0] * wt[j];
            for (int k = 1; k < X; k++) {
                const float *restrict w = wt + (size_t)k * ldw;
                for (int j = 0; j < GH; j++) row[j] += xr[k] * w[j];
            }
        }
        return;
    }
    for (int r = 0; r < rows; r++) {
        float *row = a + (size_t)r * GH;
        for (int j = 0; j < GH; j++) row[j] = p->b_ih[j] + (b_hh ? b_hh[j] : 0.0f);
    }
    if (wt)
        rnn_gemm('N', 'N', rows, GH, X, x, X, wt, ldw, 1.0f, a, GH);
    else
        rnn_gemm_nt(rows, GH, X, x, p->w_ih, 1.0f, a);
}

/* Is the (N, K) weight of a product over B rows multiplied as its transposed
 * copy? Always for B > 1, where that is the faster operand (gemm.c); for one
 * row only where the product is rnn_gemm's own small loop, as dnnl_sgemm
 * reads either layout as fast, or for a narrow W_ih, which the projection's
 * loop reads so. */
static int transposed(int B, int N, int K, int narrow)
{
    return B > 1 || narrow || (long)N * K <= RNN_SMALL_GEMV;
}

/* ------------------------------------------------------------------ own kernel */

/* Step t of unit l in the workspace: what the cell reads and writes. */
static cell_step own_step(rnn_ws *ws, int l, int t)
{
    const size_t BH = (size_t)ws->B * ws->cfg.hidden;
    const size_t BGH = BH * rnn_gates(ws->cfg.cell);
    cell_step s = {
        .a = ws->gates[l] + t * BGH,
        .hprev = ws->h[l] + t * BH,
        .h = ws->h[l] + (t + 1) * BH,
        .cprev = ws->c[l] ? ws->c[l] + t * BH : NULL,
        .c = ws->c[l] ? ws->c[l] + (t + 1) * BH : NULL,
        .tc = ws->tc[l] ? ws->tc[l] + t * BH : NULL,
        .hn = ws->hn[l] ? ws->hn[l] + t * BH : NULL,
        .hp = ws->hp,
        .whh_t = ws->whh_t ? ws->wt_hh[l] : NULL,
        .ldw = ws->ldw,
    };
    return s;
}

/* Unit l (a layer, or one direction of it) over its input xin, (T, B, X_l). */
static void own_layer_forward(const rnn_model *m, rnn_ws *ws, int l, const float *xin)
{
    const rnn_config *c = &m->cfg;
    const rnn_layer_params *p = &m->layer[l];
    const int H = c->hidden, GH = rnn_gates(c->cell) * H, B = ws->B;
    const int X = rnn_layer_in(c, l / rnn_dirs(c));
    const int narrow = X < PROJ_GEMM_MIN_X;
    const float *wt = NULL;
    if (transposed(B, GH, X, narrow)) {
        rnn_transpose(GH, X, p->w_ih, X, 0, ws->wt_ih[l], ws->ldw);
        wt = ws->wt_ih[l];
    }
    ws->whh_t = transposed(B, GH, H, 0);
    if (ws->whh_t)
        rnn_transpose(GH, H, p->w_hh, H, 0, ws->wt_hh[l], ws->ldw);
    /* narrow inputs step by step, so each step's gates are made and used
     * while in cache; wide ones as one GEMM over all steps */
    if (!narrow)
        input_projection(c, p, l / rnn_dirs(c), wt, ws->ldw, xin, ws->T * B, ws->gates[l]);
    for (int t = 0; t < ws->T; t++) {
        cell_step s = own_step(ws, l, t);
        if (narrow)
            input_projection(c, p, l / rnn_dirs(c), wt, ws->ldw, xin + (size_t)t * B * X, B, s.a);
        cell_forward(c, p, &s, t == 0, B);
    }
}

/* d: dloss/dh of unit l's outputs, (T, B, H); the recurrent part is added
 * into d[t-1] as the sweep goes. Then the weight gradients, one GEMM each,
 * and dx (T, B, X_l) if asked for. */
static void own_layer_backward(const rnn_model *m, rnn_ws *ws, int l, const float *xin, float *d,
                               int bptt, const rnn_layer_params *g, float *dx)
{
    const rnn_config *c = &m->cfg;
    const rnn_layer_params *p = &m->layer[l];
    const int T = ws->T, B = ws->B, H = c->hidden, GH = rnn_gates(c->cell) * H;
    const size_t BH = (size_t)B * H, BGH = (size_t)B * GH;
    if (ws->dc)
        memset(ws->dc, 0, BH * sizeof(float));
    for (int t = T - 1; t >= 0; t--) {
        const cell_step s = own_step(ws, l, t);
        /* the gradient reaches h_{t-1} unless t is a truncation border */
        const int carry = t > 0 && !(bptt > 0 && t % bptt == 0);
        cell_backward(ws->dg + t * BGH, ws->dgh ? ws->dgh + t * BGH : NULL,
                      carry ? d + (t - 1) * BH : NULL, ws->dc, d + t * BH, &s, c, p, carry, B);
    }
    const float *dgh = c->cell == RNN_CELL_GRU ? ws->dgh : ws->dg;
    const int X = rnn_layer_in(c, l / rnn_dirs(c));
    /* dW_ih += dg^T x and dW_hh += dgh^T h_{t-1}, computed as their
     * transposes x^T dg, the faster product (gemm.c); h_{t-1} for t >= 1 are
     * rows 1..T-1 of h (h_0 = 0 adds nothing) */
    rnn_gemm('T', 'N', X, GH, T * B, xin, X, ws->dg, GH, 0.0f, ws->dwt, GH);
    rnn_transpose(X, GH, ws->dwt, GH, 1, g->w_ih, X);
    if (T > 1) {
        rnn_gemm('T', 'N', H, GH, (T - 1) * B, ws->h[l] + BH, H, dgh + BGH, GH, 0.0f, ws->dwt, GH);
        rnn_transpose(H, GH, ws->dwt, GH, 1, g->w_hh, H);
    }
    colsum_acc(T * B, GH, ws->dg, g->b_ih);
    colsum_acc(T * B, GH, dgh, g->b_hh);
    if (dx)
        rnn_gemm_nn(T * B, X, GH, ws->dg, p->w_ih, 0.0f, dx);
}

/* ------------------------------------------------------------------ forward */

/* What layer l reads: the model's input x0, or the outputs of the layer
 * below (after dropout, when training with it). */
static const float *layer_in(const rnn_ws *ws, int l, const float *x0)
{
    if (l == 0)
        return x0;
    return ws->drop_p > 0 ? ws->xd[l] : layer_out(ws, l - 1);
}

/* Every layer over the sequence, on oneDNN or the own kernel; 0 or -1. A
 * bidirectional layer runs its reverse unit over the steps reversed, then
 * sets the two side by side: cat[t] = [h_f(t), h_r(t)], h_r(t) being the
 * reverse unit's state after T - t steps. */
static int layers_forward(const rnn_model *m, rnn_ws *ws, const float *x0)
{
    const rnn_config *c = &m->cfg;
    const int D = rnn_dirs(c), T = ws->T, B = ws->B, H = c->hidden;
    const size_t BH = (size_t)B * H;
    for (int l = 0; l < c->layers; l++) {
        if (l > 0 && ws->drop_p > 0)
            dropout_apply(ws, l, layer_out(ws, l - 1), ws->xd[l]);
        const float *xin = layer_in(ws, l, x0);
        if (D == 2)
            reverse_steps(xin, ws->xr[l], T, (size_t)B * rnn_layer_in(c, l), 0);
        for (int u = l * D; u < (l + 1) * D; u++) {
            const float *src = u % D ? ws->xr[l] : xin;
            memset(ws->h[u], 0, BH * sizeof(float));
            if (ws->c[u])
                memset(ws->c[u], 0, BH * sizeof(float));
            if (ws->used_dnn) {
                if (dnn_layer_forward(ws->dnn, &m->layer[u], l, T, B, ws->chunk, src, ws->h[u],
                                      ws->c[u]))
                    return -1;
            } else {
                own_layer_forward(m, ws, u, src);
            }
        }
        for (int t = 0; D == 2 && t < T; t++)
            for (int b = 0; b < B; b++) {
                float *o = ws->cat[l] + ((size_t)t * B + b) * 2 * H;
                memcpy(o, ws->h[2 * l] + (size_t)(t + 1) * BH + (size_t)b * H, H * sizeof(float));
                memcpy(o + H, ws->h[2 * l + 1] + (size_t)(T - t) * BH + (size_t)b * H, H * sizeof(float));
            }
    }
    return 0;
}

static double loss_forward(const rnn_model *m, rnn_ws *ws, const rnn_batch *b, int rows)
{
    const int O = m->cfg.output_size;
    float *dout = ws->dout; /* NULL on an inference workspace */
    double loss = 0;
    if (m->cfg.task == RNN_TASK_REGRESSION) {
        /* MSE = mean (out - y)^2, dMSE/dout = 2 (out - y) / n */
        const size_t n = (size_t)rows * O;
        const float scale = 2.0f / (float)n;
        for (size_t i = 0; i < n; i++) {
            float d = ws->out[i] - b->y[i];
            loss += (double)d * d;
            if (dout) dout[i] = scale * d;
        }
        return loss / (double)n;
    }
    /* softmax cross-entropy per row, mean over rows:
     * loss = log sum exp z - z_y, dloss/dz = (softmax(z) - e_y) / rows */
    const float inv = 1.0f / (float)rows;
    for (int r = 0; r < rows; r++) {
        const float *z = ws->out + (size_t)r * O;
        float mx = z[0];
        for (int k = 1; k < O; k++) mx = z[k] > mx ? z[k] : mx;
        double s = 0;
        for (int k = 0; k < O; k++)
            s += exp((double)(z[k] - mx));
        const int y = b->cls[r];
        loss += log(s) + mx - z[y];
        if (!dout)
            continue;
        float *dz = dout + (size_t)r * O;
        const float is = (float)(1.0 / s);
        for (int k = 0; k < O; k++) dz[k] = expf(z[k] - mx) * is * inv;
        dz[y] -= inv;
    }
    return loss / rows;
}

/* What the head reads, (rows, D H): the top layer's outputs at every step
 * (many_to_many) or its final states (many_to_one): h(T-1), or for a
 * bidirectional layer [h_f(T-1), h_r(0)], both directions' last steps,
 * gathered into ws->last. */
static const float *head_input(rnn_ws *ws)
{
    const rnn_config *c = &ws->cfg;
    const int T = ws->T, B = ws->B, H = c->hidden;
    const float *top = layer_out(ws, c->layers - 1);
    if (c->mode == RNN_MODE_MANY_TO_MANY)
        return top;
    if (!ws->last)
        return top + (size_t)(T - 1) * B * H;
    for (int b = 0; b < B; b++) {
        memcpy(ws->last + (size_t)b * 2 * H, top + ((size_t)(T - 1) * B + b) * 2 * H, H * sizeof(float));
        memcpy(ws->last + (size_t)b * 2 * H + H, top + (size_t)b * 2 * H + H, H * sizeof(float));
    }
    return ws->last;
}

double rnn_forward(const rnn_model *m, rnn_ws *ws, const rnn_batch *b)
{
    const rnn_config *c = &m->cfg;
    if (b->T < 1 || b->B < 1 || b->T > ws->maxT || b->B > ws->maxB)
        return NAN;
    ws->T = b->T;
    ws->B = b->B;
    const int T = b->T, B = b->B, H = c->hidden, O = c->output_size;
    const float *x0 = b->x;
    if (rnn_token_input(c)) {
        token_input(m, b->tok, (size_t)T * B, ws->x0);
        x0 = ws->x0;
    }
    ws->used_dnn = ws->dnn != NULL && kernel_for(ws, B) == KERNEL_ONEDNN;
    /* training changes the weights between passes; an inference workspace
     * reloads them only for other weights (rnn_model.serial) */
    if (ws->dnn && (ws->train || ws->dnn_of != m->serial)) {
        dnn_seq_weights_changed(ws->dnn);
        ws->dnn_of = m->serial;
    }
    if (ws->used_dnn && layers_forward(m, ws, x0))
        ws->used_dnn = 0; /* oneDNN refused the shape: the own kernel takes it */
    if (!ws->used_dnn && (own_alloc(ws) || layers_forward(m, ws, x0)))
        return NAN;

    /* head: out = h W^T + b over the last step or every step */
    const int rows = c->mode == RNN_MODE_MANY_TO_ONE ? B : T * B;
    const float *top = head_input(ws);
    for (int r = 0; r < rows; r++)
        memcpy(ws->out + (size_t)r * O, m->head_b, (size_t)O * sizeof(float));
    rnn_gemm_nt(rows, O, rnn_dirs(c) * H, top, m->head_w, 1.0f, ws->out);

    ws->has_targets = (c->task == RNN_TASK_REGRESSION) ? b->y != NULL : b->cls != NULL;
    if (!ws->has_targets)
        return 0.0;
    return loss_forward(m, ws, b, rows);
}

/* ------------------------------------------------------------------ backward */

void rnn_backward(const rnn_model *m, rnn_ws *ws, const rnn_batch *b, int bptt,
                  float *grads, float *dx)
{
    const rnn_config *c = &m->cfg;
    const int T = ws->T, B = ws->B, H = c->hidden, O = c->output_size, L = c->layers;
    const size_t BH = (size_t)B * H;
    if (!ws->train || !ws->has_targets)
        return;
    if (ws->used_dnn && ws->chunk != bptt) {
        /* oneDNN cuts the forward where the gradient stops: redo it so, and
         * keep that chunking for the next forward */
        ws->chunk = bptt;
        const float *x0 = rnn_token_input(c) ? ws->x0 : b->x;
        if (layers_forward(m, ws, x0))
            return;
    }
    rnn_view g;
    rnn_model_view(m, grads, &g);

    /* head: dW += dout^T h, db += sum dout, dh = dout W, where h is what
     * the head read (head_input); for many_to_one dh reaches the last step
     * of each direction: h_f(T-1) and h_r(0) */
    const int D = rnn_dirs(c), DH = D * H;
    const size_t BDH = (size_t)B * DH;
    float *d = ws->dA, *dnext = ws->dB;
    const float *top = c->mode == RNN_MODE_MANY_TO_ONE && ws->last
                           ? ws->last
                           : layer_out(ws, L - 1) + (c->mode == RNN_MODE_MANY_TO_ONE ? (size_t)(T - 1) * BH : 0);
    if (c->mode == RNN_MODE_MANY_TO_ONE) {
        rnn_gemm_tn_acc(B, O, DH, ws->dout, top, g.head_w);
        colsum_acc(B, O, ws->dout, g.head_b);
        memset(d, 0, (size_t)T * BDH * sizeof(float));
        float *dl = D == 2 ? ws->dlast : d + (size_t)(T - 1) * BH;
        rnn_gemm_nn(B, DH, O, ws->dout, m->head_w, 0.0f, dl);
        for (int bi = 0; D == 2 && bi < B; bi++) {
            memcpy(d + ((size_t)(T - 1) * B + bi) * DH, dl + (size_t)bi * DH, H * sizeof(float));
            memcpy(d + (size_t)bi * DH + H, dl + (size_t)bi * DH + H, H * sizeof(float));
        }
    } else {
        rnn_gemm_tn_acc(T * B, O, DH, ws->dout, top, g.head_w);
        colsum_acc(T * B, O, ws->dout, g.head_b);
        rnn_gemm_nn(T * B, DH, O, ws->dout, m->head_w, 0.0f, d);
    }

    const float *x0 = rnn_token_input(c) ? ws->x0 : b->x;
    for (int l = L - 1; l >= 0; l--) {
        const float *xin = layer_in(ws, l, x0);
        /* where dloss/dx of this layer goes: the layer below, the embedding,
         * the caller, or nowhere (one-hot input) */
        float *dxl = l > 0 || c->embedding ? dnext : (rnn_token_input(c) ? NULL : dx);
        if (ws->used_dnn) {
            if (dnn_layer_backward(ws->dnn, &m->layer[l], &g.layer[l], l, T, B, ws->chunk, xin,
                                   ws->h[l], ws->c[l], d, dxl))
                return;
        } else if (D == 1) {
            own_layer_backward(m, ws, l, xin, d, bptt, &g.layer[l], dxl);
        } else {
            /* d (T, B, 2H) = [d h_f(t), d h_r(t)]: the reverse unit's step s
             * is time T-1-s; its input gradient comes back the same way */
            for (int t = 0; t < T; t++)
                for (int bi = 0; bi < B; bi++) {
                    const float *src = d + ((size_t)t * B + bi) * DH;
                    memcpy(ws->dF + (size_t)t * BH + (size_t)bi * H, src, H * sizeof(float));
                    memcpy(ws->dR + (size_t)(T - 1 - t) * BH + (size_t)bi * H, src + H, H * sizeof(float));
                }
            own_layer_backward(m, ws, 2 * l, xin, ws->dF, 0, &g.layer[2 * l], dxl);
            own_layer_backward(m, ws, 2 * l + 1, ws->xr[l], ws->dR, 0, &g.layer[2 * l + 1],
                               dxl ? ws->dxr : NULL);
            if (dxl)
                reverse_steps(ws->dxr, dxl, T, (size_t)B * rnn_layer_in(c, l), 1);
        }
        if (l > 0 && ws->drop_p > 0)
            dropout_apply(ws, l, dxl, dxl);
        float *tmp = d; d = dnext; dnext = tmp;
    }
    if (c->embedding) {
        /* the rows of the embedding that were looked up: d holds dloss/dx0 */
        const int E = c->embedding;
        for (size_t r = 0; r < (size_t)T * B; r++) {
            float *row = g.emb + (size_t)b->tok[r] * E;
            const float *src = d + r * E;
            for (int j = 0; j < E; j++) row[j] += src[j];
        }
    }
}

/* ------------------------------------------------------------------ stepping */

/* Where rnn_step keeps the transposed weights in s->wt, in floats from its
 * start: per layer W_ih^T (X_l, ldw) and W_hh^T (H, ldw), then head^T (H, O),
 * each only where transposed() says so (NONE: the product reads the model's
 * own). Returns the floats used. */
#define NONE ((size_t)-1)
typedef struct step_weights { size_t ih[RNN_MAX_LAYERS], hh[RNN_MAX_LAYERS], head; } step_weights;

static size_t step_layout(const rnn_config *c, int B, step_weights *w)
{
    const int H = c->hidden, GH = rnn_gates(c->cell) * H, O = c->output_size;
    const size_t ldw = (size_t)rnn_gemm_ld(GH);
    size_t n = 0;
    for (int l = 0; l < c->layers; l++) {
        const int X = rnn_layer_in(c, l);
        w->ih[l] = transposed(B, GH, X, X < PROJ_GEMM_MIN_X) ? n : NONE;
        n += w->ih[l] == NONE ? 0 : X * ldw;
        w->hh[l] = transposed(B, GH, H, 0) ? n : NONE;
        n += w->hh[l] == NONE ? 0 : H * ldw;
    }
    w->head = transposed(B, O, H, 0) ? n : NONE;
    return n + (w->head == NONE ? 0 : (size_t)H * O);
}

int rnn_state_init(rnn_state *s, const rnn_config *cfg, int B)
{
    memset(s, 0, sizeof *s);
    if (cfg->bidirectional)
        return -1; /* it reads a sequence whole: no steps */
    const size_t n = (size_t)cfg->layers * B * cfg->hidden;
    const size_t GH = (size_t)rnn_gates(cfg->cell) * cfg->hidden;
    s->B = B;
    s->h = rnn_falloc(n);
    s->c = rnn_falloc(n);
    s->scratch = rnn_falloc((size_t)B * (2 * GH + ws_width(cfg)));
    step_weights w;
    s->wt = rnn_falloc(step_layout(cfg, B, &w));
    if (!s->h || !s->c || !s->scratch || !s->wt) {
        rnn_state_free(s);
        return -1;
    }
    return 0;
}

void rnn_state_reset(rnn_state *s, const rnn_config *cfg)
{
    const size_t n = (size_t)cfg->layers * s->B * cfg->hidden;
    memset(s->h, 0, n * sizeof(float));
    memset(s->c, 0, n * sizeof(float));
}

void rnn_state_free(rnn_state *s)
{
    free(s->h);
    free(s->c);
    free(s->scratch);
    free(s->wt);
    memset(s, 0, sizeof *s);
}

void rnn_step(const rnn_model *m, rnn_state *s, const float *x, const int32_t *tok, float *out)
{
    const rnn_config *c = &m->cfg;
    const int B = s->B, H = c->hidden, GH = rnn_gates(c->cell) * H, O = c->output_size;
    const int ldw = rnn_gemm_ld(GH);
    const size_t BH = (size_t)B * H;
    step_weights w;
    step_layout(c, B, &w);
#define WT(off) ((off) == NONE ? NULL : s->wt + (off))
    if (s->wt_of != m->serial) {
        for (int l = 0; l < c->layers; l++) {
            const int X = rnn_layer_in(c, l);
            if (w.ih[l] != NONE)
                rnn_transpose(GH, X, m->layer[l].w_ih, X, 0, WT(w.ih[l]), ldw);
            if (w.hh[l] != NONE)
                rnn_transpose(GH, H, m->layer[l].w_hh, H, 0, WT(w.hh[l]), ldw);
        }
        if (w.head != NONE)
            rnn_transpose(O, H, m->head_w, H, 0, WT(w.head), O);
        s->wt_of = m->serial;
    }
    /* scratch: gates (B, G*H) | hp (B, G*H) | x0 (B, X0), which after layer
     * 0's input projection holds GRU's hn */
    float *g = s->scratch, *hp = g + (size_t)B * GH, *x0 = hp + (size_t)B * GH;
    const float *xin = x;
    if (rnn_token_input(c)) {
        token_input(m, tok, (size_t)B, x0);
        xin = x0;
    }
    for (int l = 0; l < c->layers; l++) {
        float *h = s->h + l * BH, *cs = s->c + l * BH;
        input_projection(c, &m->layer[l], l, WT(w.ih[l]), ldw, xin, B, g);
        /* the state is updated in place; LSTM's tanh(c) goes to hp, unused */
        const cell_step st = {.a = g, .hprev = h, .h = h, .cprev = cs, .c = cs,
                              .tc = hp, .hn = x0, .hp = hp, .whh_t = WT(w.hh[l]), .ldw = ldw};
        cell_forward(c, &m->layer[l], &st, 0, B);
        xin = h;
    }
    if (out) {
        for (int b = 0; b < B; b++)
            memcpy(out + (size_t)b * O, m->head_b, (size_t)O * sizeof(float));
        const float *top = s->h + (size_t)(c->layers - 1) * BH;
        if (w.head != NONE)
            rnn_gemm('N', 'N', B, O, H, top, H, WT(w.head), O, 1.0f, out, O);
        else
            rnn_gemm_nt(B, O, H, top, m->head_w, 1.0f, out);
    }
#undef WT
}
