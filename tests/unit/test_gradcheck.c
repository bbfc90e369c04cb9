/* Finite-difference gradient checks: for every cell and activation, through
 * several steps and two layers, the analytic gradient along a random
 * direction of each parameter tensor (and of the input) must match the
 * central difference of the loss. Bidirectional layers and dropout between
 * layers are checked the same way: a dropout mask depends only on its seed
 * and position, so every forward of a case drops the same inputs.
 *
 * With truncated BPTT the gradient is that of a different function: the
 * state entering each chunk counts as a constant. Those cases are checked
 * against that function, computed independently with rnn_step: each chunk
 * starts from the state the unperturbed weights reached, and only the steps
 * inside the chunk see the perturbed weights. */
#include "suites.h"
#include "rnn/rnn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct gc_case {
    const char *name;
    rnn_task task;
    rnn_mode mode;
    rnn_cell_type cell;
    rnn_activation act;
    int embedding;          /* E for looked-up tokens */
    int onehot;             /* tokens without an embedding */
    int bptt;
    int bidirectional;
    double dropout;         /* a fixed mask (one seed), so the loss is a function */
} gc_case;

static const gc_case cases[] = {
    {"rnn_tanh_m2m", RNN_TASK_REGRESSION, RNN_MODE_MANY_TO_MANY, RNN_CELL_RNN, RNN_ACT_TANH, 0, 0, 0, 0, 0},
    {"rnn_relu_m2m", RNN_TASK_REGRESSION, RNN_MODE_MANY_TO_MANY, RNN_CELL_RNN, RNN_ACT_RELU, 0, 0, 0, 0, 0},
    {"rnn_sigmoid_m2o", RNN_TASK_REGRESSION, RNN_MODE_MANY_TO_ONE, RNN_CELL_RNN, RNN_ACT_SIGMOID, 0, 0, 0, 0, 0},
    {"rnn_tanh_m2o", RNN_TASK_REGRESSION, RNN_MODE_MANY_TO_ONE, RNN_CELL_RNN, RNN_ACT_TANH, 0, 0, 0, 0, 0},
    {"lstm_m2m", RNN_TASK_REGRESSION, RNN_MODE_MANY_TO_MANY, RNN_CELL_LSTM, RNN_ACT_TANH, 0, 0, 0, 0, 0},
    {"lstm_m2o", RNN_TASK_REGRESSION, RNN_MODE_MANY_TO_ONE, RNN_CELL_LSTM, RNN_ACT_TANH, 0, 0, 0, 0, 0},
    {"gru_m2m", RNN_TASK_REGRESSION, RNN_MODE_MANY_TO_MANY, RNN_CELL_GRU, RNN_ACT_TANH, 0, 0, 0, 0, 0},
    {"gru_m2o", RNN_TASK_REGRESSION, RNN_MODE_MANY_TO_ONE, RNN_CELL_GRU, RNN_ACT_TANH, 0, 0, 0, 0, 0},
    {"gru_classify", RNN_TASK_CLASSIFY, RNN_MODE_MANY_TO_ONE, RNN_CELL_GRU, RNN_ACT_TANH, 0, 0, 0, 0, 0},
    {"lstm_charlm", RNN_TASK_CHARLM, RNN_MODE_MANY_TO_MANY, RNN_CELL_LSTM, RNN_ACT_TANH, 5, 0, 0, 0, 0},
    {"rnn_relu_classify_tokens", RNN_TASK_CLASSIFY, RNN_MODE_MANY_TO_ONE, RNN_CELL_RNN, RNN_ACT_RELU, 4, 0, 0, 0, 0},
    {"gru_charlm_onehot", RNN_TASK_CHARLM, RNN_MODE_MANY_TO_MANY, RNN_CELL_GRU, RNN_ACT_TANH, 0, 1, 0, 0, 0},
    {"rnn_tanh_classify_onehot", RNN_TASK_CLASSIFY, RNN_MODE_MANY_TO_ONE, RNN_CELL_RNN, RNN_ACT_TANH, 0, 1, 0, 0, 0},
    {"rnn_tanh_tbptt", RNN_TASK_REGRESSION, RNN_MODE_MANY_TO_MANY, RNN_CELL_RNN, RNN_ACT_TANH, 0, 0, 3, 0, 0},
    {"lstm_tbptt", RNN_TASK_REGRESSION, RNN_MODE_MANY_TO_MANY, RNN_CELL_LSTM, RNN_ACT_TANH, 0, 0, 3, 0, 0},
    {"gru_tbptt", RNN_TASK_REGRESSION, RNN_MODE_MANY_TO_MANY, RNN_CELL_GRU, RNN_ACT_TANH, 0, 0, 3, 0, 0},
    {"bi_lstm_m2o", RNN_TASK_REGRESSION, RNN_MODE_MANY_TO_ONE, RNN_CELL_LSTM, RNN_ACT_TANH, 0, 0, 0, 1, 0},
    {"bi_gru_m2m", RNN_TASK_REGRESSION, RNN_MODE_MANY_TO_MANY, RNN_CELL_GRU, RNN_ACT_TANH, 0, 0, 0, 1, 0},
    {"bi_rnn_tanh_classify_tokens", RNN_TASK_CLASSIFY, RNN_MODE_MANY_TO_ONE, RNN_CELL_RNN, RNN_ACT_TANH, 4, 0, 0, 1, 0},
    {"lstm_dropout_m2m", RNN_TASK_REGRESSION, RNN_MODE_MANY_TO_MANY, RNN_CELL_LSTM, RNN_ACT_TANH, 0, 0, 0, 0, 0.4},
    {"bi_gru_dropout_m2o", RNN_TASK_REGRESSION, RNN_MODE_MANY_TO_ONE, RNN_CELL_GRU, RNN_ACT_TANH, 0, 0, 0, 1, 0.4},
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

enum { T = 7, B = 3, X = 3, H = 5, V = 6, O = 2 };

/* The loss of many_to_many regression with the gradient stopped every k
 * steps, as a function of the weights: chunk j starts from state[j], the
 * state the reference weights reached at step j*k. */
static double truncated_loss(const rnn_model *m, const float *x, const float *y, int k,
                             rnn_state *const *state)
{
    rnn_state s;
    ck_assert(rnn_state_init(&s, &m->cfg, B) == 0);
    const size_t n = (size_t)m->cfg.layers * B * H;
    float out[B * O];
    double sum = 0;
    for (int t = 0; t < T; t++) {
        if (t % k == 0) {
            memcpy(s.h, state[t / k]->h, n * sizeof(float));
            memcpy(s.c, state[t / k]->c, n * sizeof(float));
        }
        rnn_step(m, &s, x + (size_t)t * B * X, NULL, out);
        for (int i = 0; i < B * O; i++) {
            double d = (double)out[i] - y[(size_t)t * B * O + i];
            sum += d * d;
        }
    }
    rnn_state_free(&s);
    return sum / ((double)T * B * O);
}

START_TEST(test_gradcheck)
{
    const gc_case *gc = &cases[_i];
    const int tokens = gc->embedding || gc->onehot;
    rnn_config cfg = {gc->task, gc->mode, gc->cell, gc->act, tokens ? V : X, H, 2,
                      gc->task == RNN_TASK_REGRESSION ? O : (gc->task == RNN_TASK_CHARLM ? V : 4),
                      gc->embedding, gc->onehot, gc->bidirectional, 0};
    rnn_model m;
    rnn_err err;
    ck_assert_msg(rnn_model_init(&m, &cfg, &err) == 0, "%s", err.msg);
    rnn_rng rng;
    rnn_rng_seed(&rng, 42 + (uint64_t)_i);
    rnn_model_randomize(&m, &rng, RNN_INIT_DEFAULT);
    float x[T * B * X], y[T * B * O], dx[T * B * X];
    int32_t tok[T * B], cls[T * B];
    for (int i = 0; i < T * B * X; i++) x[i] = (float)rnn_rng_normal(&rng);
    for (int i = 0; i < T * B * O; i++) y[i] = (float)rnn_rng_normal(&rng);
    for (int i = 0; i < T * B; i++) tok[i] = (int32_t)rnn_rng_below(&rng, V);
    for (int i = 0; i < T * B; i++) cls[i] = (int32_t)rnn_rng_below(&rng, (uint64_t)cfg.output_size);
    rnn_batch b = {T, B, tokens ? NULL : x, tokens ? tok : NULL,
                   gc->task == RNN_TASK_REGRESSION ? y : NULL,
                   gc->task == RNN_TASK_REGRESSION ? NULL : cls};
    rnn_ws *ws = rnn_ws_new(&cfg, T, B);
    ck_assert(ws);
    if (gc->dropout > 0)
        rnn_ws_dropout(ws, gc->dropout, 99, NULL);
    float *g = calloc(m.nparams, sizeof(float));
    rnn_forward(&m, ws, &b);
    rnn_backward(&m, ws, &b, gc->bptt, g, tokens ? NULL : dx);

    /* the states at the chunk borders, under the unperturbed weights */
    rnn_state *border[T] = {0};
    if (gc->bptt) {
        rnn_state run;
        ck_assert(rnn_state_init(&run, &cfg, B) == 0);
        const size_t n = (size_t)cfg.layers * B * H;
        for (int t = 0; t < T; t++) {
            if (t % gc->bptt == 0) {
                border[t / gc->bptt] = malloc(sizeof(rnn_state));
                ck_assert(rnn_state_init(border[t / gc->bptt], &cfg, B) == 0);
                memcpy(border[t / gc->bptt]->h, run.h, n * sizeof(float));
                memcpy(border[t / gc->bptt]->c, run.c, n * sizeof(float));
            }
            rnn_step(&m, &run, x + (size_t)t * B * X, NULL, NULL);
        }
        rnn_state_free(&run);
    }

    /* relu is piecewise linear: a small step avoids crossing its kink */
    const double eps = gc->act == RNN_ACT_RELU && gc->cell == RNN_CELL_RNN ? 1e-3 : 1e-2;
    /* each parameter tensor, then the input (numeric input, full BPTT) */
    for (int k = 0; k <= m.ntensors; k++) {
        const int is_input = k == m.ntensors;
        if (is_input && (tokens || gc->bptt))
            break;
        float *p = is_input ? x : m.params + m.tensors[k].offset;
        const float *gp = is_input ? dx : g + m.tensors[k].offset;
        size_t n = is_input ? (size_t)T * B * X : m.tensors[k].size;
        double *d = malloc(n * sizeof(double));
        float *save = malloc(n * sizeof(float));
        /* direction: a random unit vector plus the unit gradient, so the
         * derivative along it is well above float32 noise yet every
         * component is exercised */
        double nrm = 0, gn = 0, analytic = 0;
        for (size_t i = 0; i < n; i++) { d[i] = rnn_rng_normal(&rng); nrm += d[i] * d[i]; }
        for (size_t i = 0; i < n; i++) gn += (double)gp[i] * gp[i];
        nrm = sqrt(nrm);
        gn = sqrt(gn);
        ck_assert_msg(gn > 0, "%s: gradient of tensor %d is zero", gc->name, k);
        for (size_t i = 0; i < n; i++) d[i] = d[i] / nrm + gp[i] / gn;
        nrm = 0;
        for (size_t i = 0; i < n; i++) nrm += d[i] * d[i];
        nrm = sqrt(nrm);
        for (size_t i = 0; i < n; i++) { d[i] /= nrm; analytic += d[i] * gp[i]; }
        memcpy(save, p, n * sizeof(float));
        double lp, lm;
        for (size_t i = 0; i < n; i++) p[i] = (float)(save[i] + eps * d[i]);
        lp = gc->bptt ? truncated_loss(&m, x, y, gc->bptt, border) : rnn_forward(&m, ws, &b);
        for (size_t i = 0; i < n; i++) p[i] = (float)(save[i] - eps * d[i]);
        lm = gc->bptt ? truncated_loss(&m, x, y, gc->bptt, border) : rnn_forward(&m, ws, &b);
        memcpy(p, save, n * sizeof(float));
        double numeric = (lp - lm) / (2 * eps);
        double rel = fabs(numeric - analytic) / fmax(fmax(fabs(numeric), fabs(analytic)), 1e-3);
        printf("  gradcheck %-26s %-20s analytic % .6e numeric % .6e rel %.1e\n", gc->name,
               is_input ? "input" : m.tensors[k].name, analytic, numeric, rel);
        ck_assert_msg(rel < 1e-2, "%s: %s: analytic %.6e vs numeric %.6e (rel %.2e)", gc->name,
                      is_input ? "input" : m.tensors[k].name, analytic, numeric, rel);
        free(d);
        free(save);
    }
    for (int j = 0; j < T; j++)
        if (border[j]) {
            rnn_state_free(border[j]);
            free(border[j]);
        }
    free(g);
    rnn_ws_free(ws);
    rnn_model_free(&m);
}
END_TEST

/* Truncated BPTT, for each cell: a chunk's gradient stops at its first step,
 * so with one target at the last step (many_to_one) the input gradient is
 * zero before the last chunk and unchanged from full BPTT inside it; and
 * backward accumulates (+=) into the gradient buffer. */
static const rnn_cell_type tbptt_cells[] = {RNN_CELL_RNN, RNN_CELL_LSTM, RNN_CELL_GRU};

START_TEST(test_tbptt_blocks_gradient)
{
    rnn_config cfg = {RNN_TASK_REGRESSION, RNN_MODE_MANY_TO_ONE, tbptt_cells[_i], RNN_ACT_TANH,
                      X, H, 1, 1, 0, 0, 0, 0};
    rnn_model m;
    rnn_err err;
    ck_assert(rnn_model_init(&m, &cfg, &err) == 0);
    rnn_rng rng;
    rnn_rng_seed(&rng, 7);
    rnn_model_randomize(&m, &rng, RNN_INIT_DEFAULT);
    enum { TT = 10, K = 4 };
    float x[TT * B * X], y[B], dfull[TT * B * X], dtr[TT * B * X];
    for (int i = 0; i < TT * B * X; i++) x[i] = (float)rnn_rng_normal(&rng);
    for (int i = 0; i < B; i++) y[i] = (float)rnn_rng_normal(&rng);
    rnn_batch b = {TT, B, x, NULL, y, NULL};
    rnn_ws *ws = rnn_ws_new(&cfg, TT, B);
    float *g = calloc(m.nparams, sizeof(float)), *g2 = calloc(m.nparams, sizeof(float));
    rnn_forward(&m, ws, &b);
    rnn_backward(&m, ws, &b, 0, g, dfull);
    rnn_backward(&m, ws, &b, K, g2, dtr);
    /* last chunk starts at step 8 (chunks 0-3, 4-7, 8-9) */
    for (int t = 0; t < TT; t++)
        for (int i = 0; i < B * X; i++) {
            float a = dtr[t * B * X + i], f = dfull[t * B * X + i];
            if (t < 8)
                ck_assert_msg(a == 0.0f, "%s step %d: gradient crossed the chunk border (%g)",
                              rnn_cell_name(cfg.cell), t, a);
            else
                ck_assert_msg(fabsf(a - f) <= 1e-5f * (1 + fabsf(f)), "%s step %d: %g vs %g",
                              rnn_cell_name(cfg.cell), t, a, f);
        }
    ck_assert_msg(fabsf(dfull[0]) > 0, "full BPTT should reach step 0");
    /* accumulation: a second backward doubles the gradient */
    memcpy(g2, g, m.nparams * sizeof(float));
    rnn_backward(&m, ws, &b, 0, g2, NULL);
    for (size_t i = 0; i < m.nparams; i++)
        ck_assert_msg(fabsf(g2[i] - 2 * g[i]) <= 1e-5f * (1 + fabsf(g[i])), "backward must accumulate");
    free(g);
    free(g2);
    rnn_ws_free(ws);
    rnn_model_free(&m);
}
END_TEST

Suite *gradcheck_suite(void)
{
    Suite *s = suite_create("gradcheck");
    TCase *tc = tcase_create("finite_differences");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_gradcheck, 0, NCASES);
    tcase_add_loop_test(tc, test_tbptt_blocks_gradient, 0,
                        (int)(sizeof tbptt_cells / sizeof tbptt_cells[0]));
    suite_add_tcase(s, tc);
    return s;
}
