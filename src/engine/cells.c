/*
 * One step of each recurrent cell, forward and backward side by side, for B
 * rows at once. The sequence pass of the own kernel (layers.c) and the
 * step-by-step path (rnn_step) both run the forward through cell_forward, so
 * the equations are written once; the oneDNN kernel (dnn.c) computes the same
 * equations inside its primitives and is held to these by the tests.
 *
 * The elementwise loops use the branch-free activations of act.h and are
 * compiled for AVX-512, AVX2 and baseline x86-64 (RNN_VECTOR_KERNEL).
 */
#include "cells.h"

#include "act.h"

#include <string.h>

/* ------------------------------------------------------------------ vanilla RNN */

/* h' = act(W_ih x + b_ih + W_hh h + b_hh), act one of tanh, relu, sigmoid */
RNN_VECTOR_KERNEL static void rnn_forward_act(float *restrict h, float *restrict a, int n,
                                              rnn_activation act)
{
    switch (act) {
    case RNN_ACT_TANH:
        for (int i = 0; i < n; i++) h[i] = a[i] = rnn_tanhf(a[i]);
        break;
    case RNN_ACT_RELU:
        for (int i = 0; i < n; i++) h[i] = a[i] = a[i] > 0.0f ? a[i] : 0.0f;
        break;
    case RNN_ACT_SIGMOID:
        for (int i = 0; i < n; i++) h[i] = a[i] = rnn_sigmoidf(a[i]);
        break;
    }
}

/* da = dh * act'(.) in terms of the output y: tanh 1 - y^2, relu [y > 0],
 * sigmoid y (1 - y) */
RNN_VECTOR_KERNEL static void rnn_backward_act(float *restrict da, const float *restrict dh,
                                               const float *restrict y, int n, rnn_activation act)
{
    switch (act) {
    case RNN_ACT_TANH:
        for (int i = 0; i < n; i++) da[i] = dh[i] * (1.0f - y[i] * y[i]);
        break;
    case RNN_ACT_RELU:
        for (int i = 0; i < n; i++) da[i] = y[i] > 0.0f ? dh[i] : 0.0f;
        break;
    case RNN_ACT_SIGMOID:
        for (int i = 0; i < n; i++) da[i] = dh[i] * y[i] * (1.0f - y[i]);
        break;
    }
}

/* ------------------------------------------------------------------ LSTM */

/* i = σ(a_i), f = σ(a_f), g = tanh(a_g), o = σ(a_o)
 * c' = f c + i g,  h' = o tanh(c') */
RNN_VECTOR_KERNEL static void lstm_forward(float *h, float *c, float *restrict tc, float *restrict a,
                                           const float *cprev, int B, int H)
{
    for (int b = 0; b < B; b++) {
        float *ai = a + (size_t)b * 4 * H, *af = ai + H, *ag = af + H, *ao = ag + H;
        const size_t r = (size_t)b * H;
        for (int j = 0; j < H; j++) {
            float i = rnn_sigmoidf(ai[j]), f = rnn_sigmoidf(af[j]);
            float g = rnn_tanhf(ag[j]), o = rnn_sigmoidf(ao[j]);
            float cn = f * cprev[r + j] + i * g;
            float t = rnn_tanhf(cn);
            ai[j] = i; af[j] = f; ag[j] = g; ao[j] = o;
            c[r + j] = cn;
            tc[r + j] = t;
            h[r + j] = o * t;
        }
    }
}

/* dc_t = dc_{t+1} f_{t+1} + dh o (1 - tanh²c)        (dc holds dc_{t+1} f_{t+1})
 * da_o = dh tanh(c) o (1 - o),  da_i = dc g i (1 - i)
 * da_g = dc i (1 - g²),         da_f = dc c_{t-1} f (1 - f) */
RNN_VECTOR_KERNEL static void lstm_backward(float *restrict da, float *restrict dc,
                                            const float *restrict dh, const float *restrict a,
                                            const float *restrict cprev, const float *restrict tc,
                                            int carry, int B, int H)
{
    for (int b = 0; b < B; b++) {
        const float *ai = a + (size_t)b * 4 * H, *af = ai + H, *ag = af + H, *ao = ag + H;
        float *di = da + (size_t)b * 4 * H, *df = di + H, *dg = df + H, *dout = dg + H;
        const size_t r = (size_t)b * H;
        for (int j = 0; j < H; j++) {
            float i = ai[j], f = af[j], g = ag[j], o = ao[j], t = tc[r + j], dhj = dh[r + j];
            float dcj = dc[r + j] + dhj * o * (1.0f - t * t);
            dout[j] = dhj * t * o * (1.0f - o);
            di[j] = dcj * g * i * (1.0f - i);
            dg[j] = dcj * i * (1.0f - g * g);
            df[j] = dcj * cprev[r + j] * f * (1.0f - f);
            dc[r + j] = carry ? dcj * f : 0.0f;
        }
    }
}

/* ------------------------------------------------------------------ GRU */

/* r = σ(a_r + hp_r + b_hr),  z = σ(a_z + hp_z + b_hz)
 * n = tanh(a_n + r (hp_n + b_hn)),  h' = (1 - z) n + z h
 * hp = h W_hh^T without bias (zero at the first step) */
RNN_VECTOR_KERNEL static void gru_forward(float *h, float *restrict hn, float *restrict a,
                                          const float *restrict hp, const float *restrict b_hh,
                                          const float *hprev, int B, int H)
{
    for (int b = 0; b < B; b++) {
        float *ar = a + (size_t)b * 3 * H, *az = ar + H, *an = az + H;
        const float *pr = hp + (size_t)b * 3 * H, *pz = pr + H, *pn = pz + H;
        const size_t r0 = (size_t)b * H;
        for (int j = 0; j < H; j++) {
            float r = rnn_sigmoidf(ar[j] + pr[j] + b_hh[j]);
            float z = rnn_sigmoidf(az[j] + pz[j] + b_hh[H + j]);
            float hnj = pn[j] + b_hh[2 * H + j];
            float n = rnn_tanhf(an[j] + r * hnj);
            ar[j] = r; az[j] = z; an[j] = n;
            hn[r0 + j] = hnj;
            h[r0 + j] = (1.0f - z) * n + z * hprev[r0 + j];
        }
    }
}

/* da_n = dh (1 - z)(1 - n²),  da_r = da_n hn r (1 - r),  da_z = dh (h - n) z (1 - z)
 * recurrent side: dah_r = da_r, dah_z = da_z, dah_n = da_n r;  dh_{t-1} += dh z */
RNN_VECTOR_KERNEL static void gru_backward(float *restrict da, float *restrict dah,
                                           float *restrict dhprev, const float *restrict dh,
                                           const float *restrict a, const float *restrict hn,
                                           const float *restrict hprev, int B, int H)
{
    for (int b = 0; b < B; b++) {
        const float *ar = a + (size_t)b * 3 * H, *az = ar + H, *an = az + H;
        float *dr = da + (size_t)b * 3 * H, *dz = dr + H, *dn = dz + H;
        float *hr = dah + (size_t)b * 3 * H, *hz = hr + H, *hnn = hz + H;
        const size_t r0 = (size_t)b * H;
        for (int j = 0; j < H; j++) {
            float r = ar[j], z = az[j], n = an[j], dhj = dh[r0 + j];
            float dnp = dhj * (1.0f - z) * (1.0f - n * n);
            float drp = dnp * hn[r0 + j] * r * (1.0f - r);
            float dzp = dhj * (hprev[r0 + j] - n) * z * (1.0f - z);
            dr[j] = hr[j] = drp;
            dz[j] = hz[j] = dzp;
            dn[j] = dnp;
            hnn[j] = dnp * r;
            if (dhprev) dhprev[r0 + j] += dhj * z;
        }
    }
}

/* ------------------------------------------------------------------ one step */

/* out (B, G*H) = h_{t-1} W_hh^T + beta out */
static void recurrent_product(const cell_step *s, const rnn_layer_params *p, int B, int GH, int H,
                              float beta, float *out)
{
    if (s->whh_t)
        rnn_gemm('N', 'N', B, GH, H, s->hprev, H, s->whh_t, s->ldw, beta, out, GH);
    else
        rnn_gemm_nt(B, GH, H, s->hprev, p->w_hh, beta, out);
}

void cell_forward(const rnn_config *c, const rnn_layer_params *p, const cell_step *s, int first,
                  int B)
{
    const int H = c->hidden, GH = rnn_gates(c->cell) * H;
    switch (c->cell) {
    case RNN_CELL_RNN:
        if (!first) recurrent_product(s, p, B, GH, H, 1.0f, s->a);
        rnn_forward_act(s->h, s->a, B * H, c->act);
        break;
    case RNN_CELL_LSTM:
        if (!first) recurrent_product(s, p, B, GH, H, 1.0f, s->a);
        lstm_forward(s->h, s->c, s->tc, s->a, s->cprev, B, H);
        break;
    case RNN_CELL_GRU:
        if (first)
            memset(s->hp, 0, (size_t)B * GH * sizeof(float));
        else
            recurrent_product(s, p, B, GH, H, 0.0f, s->hp);
        gru_forward(s->h, s->hn, s->a, s->hp, p->b_hh, s->hprev, B, H);
        break;
    }
}

void cell_backward(float *da, float *dah, float *dhprev, float *dc,
                   const float *dh, const cell_step *s,
                   const rnn_config *c, const rnn_layer_params *p, int carry, int B)
{
    const int H = c->hidden, GH = rnn_gates(c->cell) * H;
    const float *drec = da; /* the gate gradient that flows through W_hh */
    switch (c->cell) {
    case RNN_CELL_RNN:
        rnn_backward_act(da, dh, s->a, B * H, c->act);
        break;
    case RNN_CELL_LSTM:
        lstm_backward(da, dc, dh, s->a, s->cprev, s->tc, carry, B, H);
        break;
    case RNN_CELL_GRU:
        gru_backward(da, dah, carry ? dhprev : NULL, dh, s->a, s->hn, s->hprev, B, H);
        drec = dah;
        break;
    }
    if (carry)
        rnn_gemm_nn(B, H, GH, drec, p->w_hh, 1.0f, dhprev);
}
