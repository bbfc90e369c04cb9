/* Optimizer and clipping details beyond the PyTorch reference cases:
 * SGD weight decay and nesterov by hand, AdamW's decoupled decay, clipping
 * leaves small gradients alone, initialisers' shapes of randomness. */
#include "suites.h"
#include "rnn/rnn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

START_TEST(test_sgd_by_hand)
{
    rnn_optim_cfg c;
    rnn_optim_defaults(&c, RNN_OPT_SGD);
    c.lr = 0.1; c.momentum = 0.5; c.nesterov = 1; c.weight_decay = 0.01;
    rnn_optim o;
    rnn_err e;
    ck_assert(rnn_optim_init(&o, &c, 1, &e) == 0);
    float p = 1.0f, g = 2.0f;
    rnn_optim_step(&o, &p, &g);
    /* d = 2 + 0.01 = 2.01; buf = 2.01; nesterov d = 2.01 + 0.5*2.01 = 3.015 */
    ck_assert_msg(fabsf(p - (1.0f - 0.3015f)) < 1e-6f, "p = %.7f", p);
    rnn_optim_step(&o, &p, &g);
    float d = 2.0f + 0.01f * 0.6985f, buf = 0.5f * 2.01f + d;
    ck_assert_msg(fabsf(p - (0.6985f - 0.1f * (d + 0.5f * buf))) < 1e-6f, "p = %.7f", p);
    rnn_optim_free(&o);
}
END_TEST

START_TEST(test_adamw_decoupled_decay)
{
    rnn_optim_cfg c;
    rnn_optim_defaults(&c, RNN_OPT_ADAM);
    c.lr = 0.1; c.weight_decay = 0.5;
    rnn_optim o;
    rnn_err e;
    ck_assert(rnn_optim_init(&o, &c, 1, &e) == 0);
    float p = 2.0f, g = 0.0f;
    rnn_optim_step(&o, &p, &g);
    /* zero gradient: only the decay acts, p *= 1 - lr*wd */
    ck_assert_msg(fabsf(p - 2.0f * 0.95f) < 1e-6f, "p = %.7f", p);
    rnn_optim_free(&o);
}
END_TEST

START_TEST(test_clip)
{
    float g[2] = {3.0f, 4.0f};
    double n = rnn_clip_grad(g, 2, 10.0);
    ck_assert(fabs(n - 5.0) < 1e-9);
    ck_assert(g[0] == 3.0f && g[1] == 4.0f);
    n = rnn_clip_grad(g, 2, 1.0);
    ck_assert(fabs(n - 5.0) < 1e-9);
    ck_assert_msg(fabs(rnn_grad_norm(g, 2) - 1.0) < 1e-5, "norm after clip %g", rnn_grad_norm(g, 2));
}
END_TEST

START_TEST(test_init_schemes)
{
    rnn_config cfg = {RNN_TASK_REGRESSION, RNN_MODE_MANY_TO_ONE, RNN_CELL_LSTM, RNN_ACT_TANH, 3, 16, 1, 1, 0, 0, 0, 0};
    rnn_model m;
    rnn_err e;
    ck_assert(rnn_model_init(&m, &cfg, &e) == 0);
    rnn_rng r;
    rnn_rng_seed(&r, 5);
    rnn_model_randomize(&m, &r, RNN_INIT_DEFAULT);
    const float k = 1.0f / 4.0f;
    float mx = 0;
    for (size_t i = 0; i < m.nparams; i++) mx = fmaxf(mx, fabsf(m.params[i]));
    ck_assert_msg(mx <= k && mx > 0.9f * k, "default init bound %g, want U(-%g, %g)", mx, k, k);
    /* orthogonal: each 16x16 gate block of W_hh has W W^T = I */
    rnn_model_randomize(&m, &r, RNN_INIT_ORTHOGONAL);
    for (int gate = 0; gate < 4; gate++) {
        const float *w = m.layer[0].w_hh + gate * 256;
        for (int i = 0; i < 16; i++)
            for (int j = 0; j < 16; j++) {
                double s = 0;
                for (int q = 0; q < 16; q++) s += (double)w[i * 16 + q] * w[j * 16 + q];
                ck_assert_msg(fabs(s - (i == j)) < 1e-5, "gate %d: (W W^T)[%d][%d] = %g", gate, i, j, s);
            }
    }
    rnn_model_randomize(&m, &r, RNN_INIT_IDENTITY);
    for (int i = 0; i < 64; i++)
        for (int j = 0; j < 16; j++)
            ck_assert(m.layer[0].w_hh[i * 16 + j] == ((i % 16) == j ? 1.0f : 0.0f));
    rnn_model_free(&m);
}
END_TEST

START_TEST(test_config_errors)
{
    rnn_config cfg = {RNN_TASK_CHARLM, RNN_MODE_MANY_TO_MANY, RNN_CELL_LSTM, RNN_ACT_TANH, 10, 16, 1, 10, 0, 0, 0, 0};
    rnn_err e;
    ck_assert(rnn_config_check(&cfg, &e) == -1);
    ck_assert_msg(strstr(e.msg, "tokens"), "%s", e.msg);
    cfg.tokens = 1; /* one-hot */
    ck_assert_msg(rnn_config_check(&cfg, &e) == 0, "%s", e.msg);
    cfg.task = RNN_TASK_REGRESSION;
    cfg.mode = RNN_MODE_MANY_TO_ONE;
    ck_assert(rnn_config_check(&cfg, &e) == -1);
    ck_assert_msg(strstr(e.msg, "numeric"), "%s", e.msg);
    cfg.task = RNN_TASK_CHARLM;
    cfg.mode = RNN_MODE_MANY_TO_MANY;
    cfg.embedding = 4;
    cfg.layers = 0;
    ck_assert(rnn_config_check(&cfg, &e) == -1);
    ck_assert_msg(strstr(e.msg, "layers"), "%s", e.msg);
}
END_TEST

Suite *optim_suite(void)
{
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("optim");
    tcase_add_test(tc, test_sgd_by_hand);
    tcase_add_test(tc, test_adamw_decoupled_decay);
    tcase_add_test(tc, test_clip);
    tcase_add_test(tc, test_init_schemes);
    tcase_add_test(tc, test_config_errors);
    suite_add_tcase(s, tc);
    return s;
}
