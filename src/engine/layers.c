/*
 * Forward and backward passes through time for stacked RNN, LSTM and GRU
 * layers with a dense head, on a preallocated workspace.
 *
 * The fast path of DESIGN.md: for each layer the input projection of all T
 * steps is one GEMM, each step adds only h_{t-1} W_hh^T (a GEMV when B = 1),
 * and after the backward sweep each weight gradient is one GEMM over all
 * steps. Nothing is allocated between rnn_ws_new and rnn_ws_free.
 *
 * Gate layout of a (G*H) row is PyTorch's: LSTM i|f|g|o, GRU r|z|n.
 */
#include "act.h"
#include "internal.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct rnn_ws {
    rnn_config cfg;
    int maxT, maxB;
    int T, B;                   /* of the last forward */
    int has_targets;
    float *x0;                  /* (T, B, E) embedded tokens */
    float *gates[RNN_MAX_LAYERS]; /* (T, B, G*H) activated gates (RNN: h) */
    float *h[RNN_MAX_LAYERS];   /* (T+1, B, H); h[0] is the zero initial state */
    float *c[RNN_MAX_LAYERS];   /* (T+1, B, H) LSTM cell state */
    float *tc[RNN_MAX_LAYERS];  /* (T, B, H) LSTM tanh(c) */
    float *hn[RNN_MAX_LAYERS];  /* (T, B, H) GRU W_hn h + b_hn */
    float *out;                 /* (B, O) or (T, B, O) head outputs */
    float *dout;                /* same shape: dloss/dout */
    float *dg;                  /* (T, B, G*H) dloss/d(pre-activation), input side */
    float *dgh;                 /* (T, B, G*H) GRU: the recurrent side */
    float *dA, *dB;             /* (T, B, max(H, X0)) gradients w.r.t. layer outputs/inputs */
    float *dc;                  /* (B, H) LSTM cell gradient carried back */
    float *hp;                  /* (B, G*H) GRU step scratch */
};

static size_t ws_width(const rnn_config *c)
{
    int x0 = rnn_layer_in(c, 0);
    return (size_t)(x0 > c->hidden ? x0 : c->hidden);
}

rnn_ws *rnn_ws_new(const rnn_config *cfg, int maxT, int maxB)
{
    if (maxT < 1 || maxB < 1 || rnn_config_check(cfg, NULL))
        return NULL;
    rnn_ws *ws = rnn_xcalloc(1, sizeof *ws);
    if (!ws)
        return NULL;
    ws->cfg = *cfg;
    ws->maxT = maxT;
    ws->maxB = maxB;
    const size_t T = (size_t)maxT, B = (size_t)maxB, H = (size_t)cfg->hidden;
    const size_t GH = (size_t)rnn_gates(cfg->cell) * H, O = (size_t)cfg->output_size;
    int ok = 1;
#define ALLOC(p, n) do { (p) = rnn_falloc(n); ok = ok && (p); } while (0)
    if (cfg->embedding)
        ALLOC(ws->x0, T * B * (size_t)cfg->embedding);
    for (int l = 0; l < cfg->layers; l++) {
        ALLOC(ws->gates[l], T * B * GH);
        ALLOC(ws->h[l], (T + 1) * B * H);
        if (cfg->cell == RNN_CELL_LSTM) {
            ALLOC(ws->c[l], (T + 1) * B * H);
            ALLOC(ws->tc[l], T * B * H);
        }
        if (cfg->cell == RNN_CELL_GRU)
            ALLOC(ws->hn[l], T * B * H);
    }
    ALLOC(ws->out, T * B * O);
    ALLOC(ws->dout, T * B * O);
    ALLOC(ws->dg, T * B * GH);
    if (cfg->cell == RNN_CELL_GRU) {
        ALLOC(ws->dgh, T * B * GH);
        ALLOC(ws->hp, B * GH);
    }
    ALLOC(ws->dA, T * B * ws_width(cfg));
    ALLOC(ws->dB, T * B * ws_width(cfg));
    ALLOC(ws->dc, B * H);
#undef ALLOC
    if (!ok) {
        rnn_ws_free(ws);
        return NULL;
    }
    return ws;
}

void rnn_ws_free(rnn_ws *ws)
{
    if (!ws)
        return;
    free(ws->x0);
    for (int l = 0; l < RNN_MAX_LAYERS; l++) {
        free(ws->gates[l]);
        free(ws->h[l]);
        free(ws->c[l]);
        free(ws->tc[l]);
        free(ws->hn[l]);
    }
    free(ws->out);
    free(ws->dout);
    free(ws->dg);
    free(ws->dgh);
    free(ws->dA);
    free(ws->dB);
    free(ws->dc);
    free(ws->hp);
    free(ws);
}

const float *rnn_ws_outputs(const rnn_ws *ws) { return ws->out; }

const float *rnn_ws_hidden(const rnn_ws *ws)
{
    return ws->h[ws->cfg.layers - 1] + (size_t)ws->B * ws->cfg.hidden;
}

/* y (M, N) (+)= a (M, K) · w(N, K)^T: the shape of every projection here. */
static void gemm_nt(int M, int N, int K, const float *a, const float *w, float beta, float *y)
{
    if (M == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, 1.0f, w, K, a, 1, beta, y, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a, K, w, K, beta, y, N);
}

/* y (M, N) (+)= a (M, K) · w (K, N). */
static void gemm_nn(int M, int N, int K, const float *a, const float *w, float beta, float *y)
{
    if (M == 1)
        cblas_sgemv(CblasRowMajor, CblasTrans, K, N, 1.0f, w, N, a, 1, beta, y, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a, K, w, N, beta, y, N);
}

/* dw (N, K) += d (M, N)^T · a (M, K): a weight gradient summed over M rows. */
static void gemm_tn_acc(int M, int N, int K, const float *d, const float *a, float *dw)
{
    if (M > 0)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, K, M, 1.0f, d, N, a, K, 1.0f, dw, K);
}

static void colsum_acc(int M, int N, const float *d, float *db)
{
    for (int i = 0; i < M; i++) {
        const float *r = d + (size_t)i * N;
        for (int j = 0; j < N; j++)
            db[j] += r[j];
    }
}

/* ------------------------------------------------------------------ cell steps */

/* Elementwise part of one step for B rows. On entry g holds the full
 * pre-activation x W_ih^T + b_ih + h W_hh^T (+ b_hh for RNN and LSTM, which
 * the input projection already added); on exit the activated gates. */

/* RNN: h' = act(W_ih x + b_ih + W_hh h + b_hh) */
RNN_VECTOR_KERNEL static void rnn_cell_fwd(int n, rnn_activation act, float *restrict g, float *restrict h)
{
    switch (act) {
    case RNN_ACT_TANH:
        for (int i = 0; i < n; i++) h[i] = g[i] = rnn_tanhf(g[i]);
        break;
    case RNN_ACT_RELU:
        for (int i = 0; i < n; i++) h[i] = g[i] = g[i] > 0.0f ? g[i] : 0.0f;
        break;
    case RNN_ACT_SIGMOID:
        for (int i = 0; i < n; i++) h[i] = g[i] = rnn_sigmoidf(g[i]);
        break;
    }
}

/* LSTM: i, f, o = sigmoid(.), g = tanh(.); c' = f*c + i*g; h' = o*tanh(c') */
RNN_VECTOR_KERNEL static void lstm_cell_fwd(int B, int H, float *restrict g, const float *cprev,
                          float *c, float *restrict tc, float *restrict h)
{
    for (int b = 0; b < B; b++) {
        float *gi = g + (size_t)b * 4 * H, *gf = gi + H, *gg = gf + H, *go = gg + H;
        const size_t r = (size_t)b * H;
        for (int j = 0; j < H; j++) {
            float i = rnn_sigmoidf(gi[j]), f = rnn_sigmoidf(gf[j]);
            float gc = rnn_tanhf(gg[j]), o = rnn_sigmoidf(go[j]);
            float cn = f * cprev[r + j] + i * gc;
            float t = rnn_tanhf(cn);
            gi[j] = i; gf[j] = f; gg[j] = gc; go[j] = o;
            c[r + j] = cn;
            tc[r + j] = t;
            h[r + j] = o * t;
        }
    }
}

/* GRU: r, z = sigmoid(W_i x + b_i + W_h h + b_h);
 *      n = tanh(W_in x + b_in + r*(W_hn h + b_hn)); h' = (1-z)*n + z*h
 * hp holds h W_hh^T without bias (zero at t = 0). */
RNN_VECTOR_KERNEL static void gru_cell_fwd(int B, int H, float *restrict g, const float *restrict hp,
                         const float *restrict b_hh, const float *hprev,
                         float *restrict hn, float *h)
{
    for (int b = 0; b < B; b++) {
        float *gr = g + (size_t)b * 3 * H, *gz = gr + H, *gn = gz + H;
        const float *pr = hp + (size_t)b * 3 * H, *pz = pr + H, *pn = pz + H;
        const size_t r0 = (size_t)b * H;
        for (int j = 0; j < H; j++) {
            float r = rnn_sigmoidf(gr[j] + pr[j] + b_hh[j]);
            float z = rnn_sigmoidf(gz[j] + pz[j] + b_hh[H + j]);
            float hnj = pn[j] + b_hh[2 * H + j];
            float n = rnn_tanhf(gn[j] + r * hnj);
            gr[j] = r; gz[j] = z; gn[j] = n;
            hn[r0 + j] = hnj;
            h[r0 + j] = (1.0f - z) * n + z * hprev[r0 + j];
        }
    }
}

/* ------------------------------------------------------------------ forward */

static void layer_forward(const rnn_model *m, rnn_ws *ws, int l, const float *xin)
{
    const rnn_config *c = &m->cfg;
    const rnn_layer_params *p = &m->layer[l];
    const int T = ws->T, B = ws->B, H = c->hidden, G = rnn_gates(c->cell), GH = G * H;
    const int X = rnn_layer_in(c, l);
    float *gates = ws->gates[l], *h = ws->h[l];
    const size_t BH = (size_t)B * H, BGH = (size_t)B * GH;

    /* gates = x W_ih^T + b_ih (+ b_hh except GRU), all T steps in one GEMM */
    for (size_t r = 0; r < (size_t)T * B; r++) {
        float *row = gates + r * GH;
        if (c->cell == RNN_CELL_GRU)
            memcpy(row, p->b_ih, (size_t)GH * sizeof(float));
        else
            for (int j = 0; j < GH; j++) row[j] = p->b_ih[j] + p->b_hh[j];
    }
    gemm_nt(T * B, GH, X, xin, p->w_ih, 1.0f, gates);

    memset(h, 0, BH * sizeof(float));
    if (ws->c[l])
        memset(ws->c[l], 0, BH * sizeof(float));
    for (int t = 0; t < T; t++) {
        float *g = gates + t * BGH;
        const float *hprev = h + t * BH;
        float *hcur = h + (t + 1) * BH;
        switch (c->cell) {
        case RNN_CELL_RNN:
            if (t > 0) gemm_nt(B, GH, H, hprev, p->w_hh, 1.0f, g);
            rnn_cell_fwd((int)BH, c->act, g, hcur);
            break;
        case RNN_CELL_LSTM:
            if (t > 0) gemm_nt(B, GH, H, hprev, p->w_hh, 1.0f, g);
            lstm_cell_fwd(B, H, g, ws->c[l] + t * BH, ws->c[l] + (t + 1) * BH,
                          ws->tc[l] + t * BH, hcur);
            break;
        case RNN_CELL_GRU:
            if (t > 0)
                gemm_nt(B, GH, H, hprev, p->w_hh, 0.0f, ws->hp);
            else
                memset(ws->hp, 0, BGH * sizeof(float));
            gru_cell_fwd(B, H, g, ws->hp, p->b_hh, hprev, ws->hn[l] + t * BH, hcur);
            break;
        }
    }
}

static double loss_forward(const rnn_model *m, rnn_ws *ws, const rnn_batch *b, int rows)
{
    const int O = m->cfg.output_size;
    double loss = 0;
    if (m->cfg.task == RNN_TASK_REGRESSION) {
        const size_t n = (size_t)rows * O;
        const float scale = 2.0f / (float)n;
        for (size_t i = 0; i < n; i++) {
            float d = ws->out[i] - b->y[i];
            loss += (double)d * d;
            ws->dout[i] = scale * d;
        }
        return loss / (double)n;
    }
    /* softmax cross-entropy per row, mean over rows */
    const float inv = 1.0f / (float)rows;
    for (int r = 0; r < rows; r++) {
        const float *z = ws->out + (size_t)r * O;
        float *dz = ws->dout + (size_t)r * O;
        float mx = z[0];
        for (int k = 1; k < O; k++) mx = z[k] > mx ? z[k] : mx;
        double s = 0;
        for (int k = 0; k < O; k++) {
            dz[k] = expf(z[k] - mx);
            s += dz[k];
        }
        const int y = b->cls[r];
        loss += log(s) + mx - z[y];
        const float is = (float)(1.0 / s);
        for (int k = 0; k < O; k++) dz[k] *= is * inv;
        dz[y] -= inv;
    }
    return loss / rows;
}

double rnn_forward(const rnn_model *m, rnn_ws *ws, const rnn_batch *b)
{
    const rnn_config *c = &m->cfg;
    if (b->T < 1 || b->B < 1 || b->T > ws->maxT || b->B > ws->maxB)
        return NAN;
    ws->T = b->T;
    ws->B = b->B;
    const int T = b->T, B = b->B, H = c->hidden, O = c->output_size;
    const float *xin = b->x;
    if (c->embedding) {
        const int E = c->embedding;
        for (size_t r = 0; r < (size_t)T * B; r++)
            memcpy(ws->x0 + r * E, m->emb + (size_t)b->tok[r] * E, (size_t)E * sizeof(float));
        xin = ws->x0;
    }
    for (int l = 0; l < c->layers; l++) {
        layer_forward(m, ws, l, xin);
        xin = ws->h[l] + (size_t)B * H;
    }
    /* head: out = h W^T + b over the last step or every step */
    const int rows = c->mode == RNN_MODE_MANY_TO_ONE ? B : T * B;
    const float *top = c->mode == RNN_MODE_MANY_TO_ONE
                           ? ws->h[c->layers - 1] + (size_t)T * B * H
                           : xin;
    for (int r = 0; r < rows; r++)
        memcpy(ws->out + (size_t)r * O, m->head_b, (size_t)O * sizeof(float));
    gemm_nt(rows, O, H, top, m->head_w, 1.0f, ws->out);

    ws->has_targets = (c->task == RNN_TASK_REGRESSION) ? b->y != NULL : b->cls != NULL;
    if (!ws->has_targets)
        return 0.0;
    return loss_forward(m, ws, b, rows);
}

/* ------------------------------------------------------------------ backward */

/* d: dloss/dh of this layer's outputs, (T, B, H); the recurrent part is added
 * into d[t-1] as the sweep goes. On return ws->dg (and dgh) hold the gate
 * gradients of every step. */
RNN_VECTOR_KERNEL static void layer_sweep(const rnn_model *m, rnn_ws *ws, int l, float *d, int bptt)
{
    const rnn_config *c = &m->cfg;
    const rnn_layer_params *p = &m->layer[l];
    const int T = ws->T, B = ws->B, H = c->hidden, GH = rnn_gates(c->cell) * H;
    const size_t BH = (size_t)B * H, BGH = (size_t)B * GH;
    const float *h = ws->h[l];

    if (c->cell == RNN_CELL_LSTM)
        memset(ws->dc, 0, BH * sizeof(float));
    for (int t = T - 1; t >= 0; t--) {
        const float *dh = d + t * BH;
        float *dg = ws->dg + t * BGH;
        const float *g = ws->gates[l] + t * BGH;
        /* the gradient reaches h_{t-1} unless t is a truncation border */
        const int carry = t > 0 && !(bptt > 0 && t % bptt == 0);
        switch (c->cell) {
        case RNN_CELL_RNN: {
            const int n = (int)BH;
            switch (c->act) {
            case RNN_ACT_TANH:
                for (int i = 0; i < n; i++) dg[i] = dh[i] * (1.0f - g[i] * g[i]);
                break;
            case RNN_ACT_RELU:
                for (int i = 0; i < n; i++) dg[i] = g[i] > 0.0f ? dh[i] : 0.0f;
                break;
            case RNN_ACT_SIGMOID:
                for (int i = 0; i < n; i++) dg[i] = dh[i] * g[i] * (1.0f - g[i]);
                break;
            }
            if (carry) gemm_nn(B, H, GH, dg, p->w_hh, 1.0f, d + (t - 1) * BH);
            break;
        }
        case RNN_CELL_LSTM: {
            const float *cprev = ws->c[l] + t * BH, *tc = ws->tc[l] + t * BH;
            for (int b = 0; b < B; b++) {
                const float *gi = g + (size_t)b * 4 * H, *gf = gi + H, *gg = gf + H, *go = gg + H;
                float *di = dg + (size_t)b * 4 * H, *df = di + H, *dgg = df + H, *dov = dgg + H;
                const size_t r = (size_t)b * H;
                for (int j = 0; j < H; j++) {
                    float i = gi[j], f = gf[j], gc = gg[j], o = go[j], t2 = tc[r + j];
                    float dhj = dh[r + j];
                    float dcj = ws->dc[r + j] + dhj * o * (1.0f - t2 * t2);
                    dov[j] = dhj * t2 * o * (1.0f - o);
                    di[j] = dcj * gc * i * (1.0f - i);
                    dgg[j] = dcj * i * (1.0f - gc * gc);
                    df[j] = dcj * cprev[r + j] * f * (1.0f - f);
                    ws->dc[r + j] = carry ? dcj * f : 0.0f;
                }
            }
            if (carry) gemm_nn(B, H, GH, dg, p->w_hh, 1.0f, d + (t - 1) * BH);
            break;
        }
        case RNN_CELL_GRU: {
            const float *hprev = h + t * BH, *hn = ws->hn[l] + t * BH;
            float *dgh = ws->dgh + t * BGH;
            float *dprev = carry ? d + (t - 1) * BH : NULL;
            for (int b = 0; b < B; b++) {
                const float *gr = g + (size_t)b * 3 * H, *gz = gr + H, *gn = gz + H;
                float *dr = dg + (size_t)b * 3 * H, *dz = dr + H, *dn = dz + H;
                float *hr = dgh + (size_t)b * 3 * H, *hz = hr + H, *hnn = hz + H;
                const size_t r0 = (size_t)b * H;
                for (int j = 0; j < H; j++) {
                    float r = gr[j], z = gz[j], n = gn[j], dhj = dh[r0 + j];
                    float dnp = dhj * (1.0f - z) * (1.0f - n * n);
                    float drp = dnp * hn[r0 + j] * r * (1.0f - r);
                    float dzp = dhj * (hprev[r0 + j] - n) * z * (1.0f - z);
                    dr[j] = hr[j] = drp;
                    dz[j] = hz[j] = dzp;
                    dn[j] = dnp;
                    hnn[j] = dnp * r;
                    if (dprev) dprev[r0 + j] += dhj * z;
                }
            }
            if (carry) gemm_nn(B, H, GH, dgh, p->w_hh, 1.0f, dprev);
            break;
        }
        }
    }
}

void rnn_backward(const rnn_model *m, rnn_ws *ws, const rnn_batch *b, int bptt,
                  float *grads, float *dx)
{
    const rnn_config *c = &m->cfg;
    const int T = ws->T, B = ws->B, H = c->hidden, O = c->output_size;
    const int GH = rnn_gates(c->cell) * H, L = c->layers;
    const size_t BH = (size_t)B * H;
    if (!ws->has_targets)
        return;
#define G_OF(ptr) (grads + ((ptr) - m->params))

    /* head */
    float *d = ws->dA, *dnext = ws->dB;
    const float *htop = ws->h[L - 1] + BH; /* (T, B, H) */
    if (c->mode == RNN_MODE_MANY_TO_ONE) {
        gemm_tn_acc(B, O, H, ws->dout, htop + (size_t)(T - 1) * BH, G_OF(m->head_w));
        colsum_acc(B, O, ws->dout, G_OF(m->head_b));
        memset(d, 0, (size_t)T * BH * sizeof(float));
        gemm_nn(B, H, O, ws->dout, m->head_w, 0.0f, d + (size_t)(T - 1) * BH);
    } else {
        gemm_tn_acc(T * B, O, H, ws->dout, htop, G_OF(m->head_w));
        colsum_acc(T * B, O, ws->dout, G_OF(m->head_b));
        gemm_nn(T * B, H, O, ws->dout, m->head_w, 0.0f, d);
    }

    for (int l = L - 1; l >= 0; l--) {
        const rnn_layer_params *p = &m->layer[l];
        const int X = rnn_layer_in(c, l);
        const float *xin = l > 0 ? ws->h[l - 1] + BH : (c->embedding ? ws->x0 : b->x);
        layer_sweep(m, ws, l, d, bptt);
        const float *dgh = c->cell == RNN_CELL_GRU ? ws->dgh : ws->dg;
        gemm_tn_acc(T * B, GH, X, ws->dg, xin, G_OF(p->w_ih));
        /* h_{t-1} for t >= 1: rows 1..T-1 of h (h_0 = 0 adds nothing) */
        gemm_tn_acc((T - 1) * B, GH, H, dgh + (size_t)B * GH, ws->h[l] + BH, G_OF(p->w_hh));
        colsum_acc(T * B, GH, ws->dg, G_OF(p->b_ih));
        colsum_acc(T * B, GH, dgh, G_OF(p->b_hh));
        if (l > 0) {
            gemm_nn(T * B, X, GH, ws->dg, p->w_ih, 0.0f, dnext);
            float *tmp = d; d = dnext; dnext = tmp;
        } else if (c->embedding) {
            gemm_nn(T * B, X, GH, ws->dg, p->w_ih, 0.0f, dnext);
            float *demb = G_OF(m->emb);
            for (size_t r = 0; r < (size_t)T * B; r++) {
                float *row = demb + (size_t)b->tok[r] * X;
                const float *src = dnext + r * X;
                for (int j = 0; j < X; j++) row[j] += src[j];
            }
        } else if (dx) {
            gemm_nn(T * B, X, GH, ws->dg, p->w_ih, 0.0f, dx);
        }
    }
#undef G_OF
}

/* ------------------------------------------------------------------ stepping */

int rnn_state_init(rnn_state *s, const rnn_config *cfg, int B)
{
    memset(s, 0, sizeof *s);
    const size_t n = (size_t)cfg->layers * B * cfg->hidden;
    const size_t GH = (size_t)rnn_gates(cfg->cell) * cfg->hidden;
    s->B = B;
    s->h = rnn_falloc(n);
    s->c = rnn_falloc(n);
    s->scratch = rnn_falloc((size_t)B * (2 * GH + ws_width(cfg)));
    if (!s->h || !s->c || !s->scratch) {
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
    memset(s, 0, sizeof *s);
}

void rnn_step(const rnn_model *m, rnn_state *s, const float *x, const int32_t *tok, float *out)
{
    const rnn_config *c = &m->cfg;
    const int B = s->B, H = c->hidden, GH = rnn_gates(c->cell) * H;
    const size_t BH = (size_t)B * H;
    float *g = s->scratch, *hp = g + (size_t)B * GH, *emb = hp + (size_t)B * GH;
    const float *xin = x;
    if (c->embedding) {
        for (int b = 0; b < B; b++)
            memcpy(emb + (size_t)b * c->embedding, m->emb + (size_t)tok[b] * c->embedding,
                   (size_t)c->embedding * sizeof(float));
        xin = emb;
    }
    for (int l = 0; l < c->layers; l++) {
        const rnn_layer_params *p = &m->layer[l];
        float *h = s->h + l * BH;
        for (int b = 0; b < B; b++) {
            float *row = g + (size_t)b * GH;
            for (int j = 0; j < GH; j++)
                row[j] = p->b_ih[j] + (c->cell == RNN_CELL_GRU ? 0.0f : p->b_hh[j]);
        }
        gemm_nt(B, GH, rnn_layer_in(c, l), xin, p->w_ih, 1.0f, g);
        switch (c->cell) {
        case RNN_CELL_RNN:
            gemm_nt(B, GH, H, h, p->w_hh, 1.0f, g);
            rnn_cell_fwd((int)BH, c->act, g, h);
            break;
        case RNN_CELL_LSTM: {
            float *cs = s->c + l * BH;
            gemm_nt(B, GH, H, h, p->w_hh, 1.0f, g);
            /* c is updated in place; tanh(c) goes to hp, unused afterwards */
            lstm_cell_fwd(B, H, g, cs, cs, hp, h);
            break;
        }
        case RNN_CELL_GRU:
            gemm_nt(B, GH, H, h, p->w_hh, 0.0f, hp);
            /* W_hn h + b_hn is not needed after the step: emb (free once the
             * input projection is done) takes it */
            gru_cell_fwd(B, H, g, hp, p->b_hh, h, emb, h);
            break;
        }
        xin = h;
    }
    if (out) {
        for (int b = 0; b < B; b++)
            memcpy(out + (size_t)b * c->output_size, m->head_b, (size_t)c->output_size * sizeof(float));
        gemm_nt(B, c->output_size, H, s->h + (size_t)(c->layers - 1) * BH, m->head_w, 1.0f, out);
    }
}
