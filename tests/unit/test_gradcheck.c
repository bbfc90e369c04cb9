/* Finite-difference gradient checks: for every cell and activation, through
 * several steps and two layers, the analytic gradient along a random
 * direction of each parameter tensor (and of the input) must match the
 * central difference of the loss. */
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
    int embedding;
    int bptt;
} gc_case;

static const gc_case cases[] = {
    {"rnn_tanh_m2m", RNN_TASK_REGRESSION, RNN_MODE_MANY_TO_MANY, RNN_CELL_RNN, RNN_ACT_TANH, 0, 0},
    {"rnn_relu_m2m", RNN_TASK_REGRESSION, RNN_MODE_MANY_TO_MANY, RNN_CELL_RNN, RNN_ACT_RELU, 0, 0},
    {"rnn_sigmoid_m2o", RNN_TASK_REGRESSION, RNN_MODE_MANY_TO_ONE, RNN_CELL_RNN, RNN_ACT_SIGMOID, 0, 0},
    {"rnn_tanh_m2o", RNN_TASK_REGRESSION, RNN_MODE_MANY_TO_ONE, RNN_CELL_RNN, RNN_ACT_TANH, 0, 0},
    {"lstm_m2m", RNN_TASK_REGRESSION, RNN_MODE_MANY_TO_MANY, RNN_CELL_LSTM, RNN_ACT_TANH, 0, 0},
    {"lstm_m2o", RNN_TASK_REGRESSION, RNN_MODE_MANY_TO_ONE, RNN_CELL_LSTM, RNN_ACT_TANH, 0, 0},
    {"gru_m2m", RNN_TASK_REGRESSION, RNN_MODE_MANY_TO_MANY, RNN_CELL_GRU, RNN_ACT_TANH, 0, 0},
    {"gru_m2o", RNN_TASK_REGRESSION, RNN_MODE_MANY_TO_ONE, RNN_CELL_GRU, RNN_ACT_TANH, 0, 0},
    {"gru_classify", RNN_TASK_CLASSIFY, RNN_MODE_MANY_TO_ONE, RNN_CELL_GRU, RNN_ACT_TANH, 0, 0},
    {"lstm_charlm", RNN_TASK_CHARLM, RNN_MODE_MANY_TO_MANY, RNN_CELL_LSTM, RNN_ACT_TANH, 5, 0},
    {"rnn_relu_classify_tokens", RNN_TASK_CLASSIFY, RNN_MODE_MANY_TO_ONE, RNN_CELL_RNN, RNN_ACT_RELU, 4, 0},
    {"lstm_tbptt", RNN_TASK_REGRESSION, RNN_MODE_MANY_TO_MANY, RNN_CELL_LSTM, RNN_ACT_TANH, 0, 3},
    {"gru_tbptt", RNN_TASK_REGRESSION, RNN_MODE_MANY_TO_MANY, RNN_CELL_GRU, RNN_ACT_TANH, 0, 3},
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

enum { T = 7, B = 3, X = 3, H = 5, V = 6 };

/* With truncated BPTT the gradient is not that of the loss as a function of
 * the weights (the state entering each chunk counts as fixed), so finite
 * differences check full BPTT and test_tbptt_blocks_gradient the truncation. */

START_TEST(test_gradcheck)
{
    const gc_case *gc = &cases[_i];
    if (gc->bptt)
        return; /* covered by the truncation test below */
    rnn_config cfg = {gc->task, gc->mode, gc->cell, gc->act,
                      gc->embedding ? V : X, H, 2,
                      gc->task == RNN_TASK_REGRESSION ? 2 : (gc->task == RNN_TASK_CHARLM ? V : 4),
                      gc->embedding};
    rnn_model m;
    rnn_err err;
    ck_assert_msg(rnn_model_init(&m, &cfg, &err) == 0, "%s", err.msg);
    rnn_rng rng;
    rnn_rng_seed(&rng, 42 + (uint64_t)_i);
    rnn_model_randomize(&m, &rng, RNN_INIT_DEFAULT);
    /* keep the sigmoid/relu pre-activations away from zero-gradient regions */
    float x[T * B * X], y[T * B * 2], dx[T * B * X];
    int32_t tok[T * B], cls[T * B];
    for (int i = 0; i < T * B * X; i++) x[i] = (float)rnn_rng_normal(&rng);
    for (int i = 0; i < T * B * 2; i++) y[i] = (float)rnn_rng_normal(&rng);
    for (int i = 0; i < T * B; i++) tok[i] = (int32_t)rnn_rng_below(&rng, V);
    for (int i = 0; i < T * B; i++) cls[i] = (int32_t)rnn_rng_below(&rng, (uint64_t)cfg.output_size);
    rnn_batch b = {T, B, gc->embedding ? NULL : x, gc->embedding ? tok : NULL,
                   gc->task == RNN_TASK_REGRESSION ? y : NULL,
                   gc->task == RNN_TASK_REGRESSION ? NULL : cls};
    rnn_ws *ws = rnn_ws_new(&cfg, T, B);
    float *g = calloc(m.nparams, sizeof(float));
    rnn_forward(&m, ws, &b);
    rnn_backward(&m, ws, &b, 0, g, gc->embedding ? NULL : dx);

    /* relu is piecewise linear: a small step avoids crossing its kink */
    const double eps = gc->act == RNN_ACT_RELU && gc->cell == RNN_CELL_RNN ? 1e-3 : 1e-2;
    double worst = 0;
    /* each parameter tensor, then the input */
    for (int k = 0; k <= m.ntensors; k++) {
        const int is_input = k == m.ntensors;
        if (is_input && gc->embedding)
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
        for (size_t i = 0; i < n; i++) p[i] = (float)(save[i] + eps * d[i]);
        double lp = rnn_forward(&m, ws, &b);
        for (size_t i = 0; i < n; i++) p[i] = (float)(save[i] - eps * d[i]);
        double lm = rnn_forward(&m, ws, &b);
        memcpy(p, save, n * sizeof(float));
        double numeric = (lp - lm) / (2 * eps);
        double rel = fabs(numeric - analytic) / fmax(fmax(fabs(numeric), fabs(analytic)), 1e-3);
        printf("  gradcheck %-26s %-20s analytic % .6e numeric % .6e rel %.1e\n", gc->name,
               is_input ? "input" : m.tensors[k].name, analytic, numeric, rel);
        ck_assert_msg(rel < 1e-2, "%s: %s: analytic %.6e vs numeric %.6e (rel %.2e)", gc->name,
                      is_input ? "input" : m.tensors[k].name, analytic, numeric, rel);
        if (rel > worst) worst = rel;
        free(d);
        free(save);
    }
    free(g);
    rnn_ws_free(ws);
    rnn_model_free(&m);
}
END_TEST

/* Truncated BPTT: a chunk's gradient stops at its first step, so with one
 * target at the last step (many_to_one) the input gradient is zero before
 * the last chunk and unchanged from full BPTT inside it; and backward
 * accumulates (+=) into the gradient buffer. */
START_TEST(test_tbptt_blocks_gradient)
{
    rnn_config cfg = {RNN_TASK_REGRESSION, RNN_MODE_MANY_TO_ONE, cases[_i].cell, RNN_ACT_TANH, X, H, 1, 1, 0};
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
                ck_assert_msg(a == 0.0f, "step %d: gradient crossed the chunk border (%g)", t, a);
            else
                ck_assert_msg(fabsf(a - f) <= 1e-6f * (1 + fabsf(f)), "step %d: %g vs %g", t, a, f);
        }
    ck_assert_msg(fabsf(dfull[0]) > 0, "full BPTT should reach step 0");
    /* accumulation: a second backward doubles the gradient */
    memcpy(g2, g, m.nparams * sizeof(float));
    rnn_backward(&m, ws, &b, 0, g2, NULL);
    for (size_t i = 0; i < m.nparams; i++)
        ck_assert_msg(fabsf(g2[i] - 2 * g[i]) <= 1e-6f * (1 + fabsf(g[i])), "backward must accumulate");
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
    tcase_add_loop_test(tc, test_gradcheck, 0, NCASES);
    tcase_add_loop_test(tc, test_tbptt_blocks_gradient, 4, 8); /* lstm and gru cases */
    suite_add_tcase(s, tc);
    return s;
}
