/* The trainer end to end: the hand-worked backprop of the project's notes
 * (seed 002), determinism, learning the sine wave (seed 000) and a character
 * model, divergence and cancellation. */
#include "suites.h"
#include "jobs.h"
#include "rnn/job.h"
#include "rnn/rnn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Seed 002 works Matt Mazur's 2-2-2 sigmoid network by hand: inputs 0.05,
 * 0.1; hidden weights w1..w4 = .15 .2 .25 .3, bias .35; output weights
 * w5..w8 = .4 .45 .5 .55, bias .6; targets .01 .99; squared error / 2;
 * one gradient step with rate 0.5. As rnnd: two stacked sigmoid RNN layers
 * over one step (h0 = 0), an identity head, and MSE (the mean over two
 * outputs is the notes' half sum). */
START_TEST(test_seed002_hand_backprop)
{
    rnn_config cfg = {RNN_TASK_REGRESSION, RNN_MODE_MANY_TO_ONE, RNN_CELL_RNN, RNN_ACT_SIGMOID, 2, 2, 2, 2, 0, 0, 0, 0};
    rnn_model m;
    rnn_err err;
    ck_assert(rnn_model_init(&m, &cfg, &err) == 0);
    const float w_hidden[4] = {0.15f, 0.20f, 0.25f, 0.30f}, w_out[4] = {0.40f, 0.45f, 0.50f, 0.55f};
    memcpy(m.layer[0].w_ih, w_hidden, sizeof w_hidden);
    memcpy(m.layer[1].w_ih, w_out, sizeof w_out);
    m.layer[0].b_ih[0] = m.layer[0].b_ih[1] = 0.35f;
    m.layer[1].b_ih[0] = m.layer[1].b_ih[1] = 0.60f;
    m.head_w[0] = m.head_w[3] = 1.0f;
    const float x[2] = {0.05f, 0.10f}, y[2] = {0.01f, 0.99f};
    rnn_batch b = {1, 1, x, NULL, y, NULL};
    rnn_ws *ws = rnn_ws_new(&cfg, 1, 1);
    double loss = rnn_forward(&m, ws, &b);
    const float *out = rnn_ws_outputs(ws);
    ck_assert_msg(fabs(out[0] - 0.75136507) < 1e-6, "out_o1 %.8f, notes 0.75136507", out[0]);
    ck_assert_msg(fabs(out[1] - 0.772928465) < 1e-6, "out_o2 %.8f, notes 0.772928465", out[1]);
    ck_assert_msg(fabs(loss - 0.298371109) < 1e-7, "total error %.9f, notes 0.298371109", loss);
    float *g = calloc(m.nparams, sizeof(float));
    rnn_backward(&m, ws, &b, 0, g, NULL);
    ck_assert_msg(fabs(g[m.layer[1].w_ih - m.params] - 0.082167041) < 1e-7,
                  "dE/dw5 %.9f, notes 0.082167041", g[m.layer[1].w_ih - m.params]);
    rnn_optim_cfg oc;
    rnn_optim_defaults(&oc, RNN_OPT_SGD);
    oc.lr = 0.5;
    rnn_optim opt;
    rnn_optim_init(&opt, &oc, m.nparams, &err);
    rnn_optim_step(&opt, m.params, g);
    const double want_out[4] = {0.35891648, 0.408666186, 0.511301270, 0.561370121};
    const double want_hid[4] = {0.149780716, 0.19956143, 0.24975114, 0.29950229};
    for (int i = 0; i < 4; i++) {
        printf("  seed002 w%d %.9f (notes %.9f)  w%d %.9f (notes %.9f)\n", i + 1, m.layer[0].w_ih[i],
               want_hid[i], i + 5, m.layer[1].w_ih[i], want_out[i]);
        ck_assert_msg(fabs(m.layer[1].w_ih[i] - want_out[i]) < 1e-6, "w%d+ %.9f, notes %.9f", i + 5,
                      m.layer[1].w_ih[i], want_out[i]);
        ck_assert_msg(fabs(m.layer[0].w_ih[i] - want_hid[i]) < 1e-6, "w%d+ %.9f, notes %.9f", i + 1,
                      m.layer[0].w_ih[i], want_hid[i]);
    }
    rnn_optim_free(&opt);
    free(g);
    rnn_ws_free(ws);
    rnn_model_free(&m);
}
END_TEST

START_TEST(test_determinism)
{
    const char *job = "{\"cell\": \"gru\", \"hidden\": 12, \"init\": {\"seed\": 7, \"recurrent\": \"orthogonal\"},"
                      " \"data\": {\"generator\": \"sine\", \"samples\": 60, \"window\": 10},"
                      " \"validation\": 0.2, \"epochs\": 3, \"batch\": 8, \"shuffle\": true,"
                      " \"optimizer\": {\"name\": \"adam\", \"lr\": 0.01}, \"clip\": 1.0}";
    rnn_model a, b;
    rnn_train_result ra, rb;
    rnn_err err;
    ck_assert_msg(train_json(job, NULL, &a, NULL, &ra, NULL, NULL, &err) == 0, "%s", err.msg);
    ck_assert_msg(train_json(job, NULL, &b, NULL, &rb, NULL, NULL, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(a.nparams, b.nparams);
    ck_assert_msg(memcmp(a.params, b.params, a.nparams * sizeof(float)) == 0,
                  "two runs with one seed gave different weights");
    ck_assert_msg(ra.final_loss == rb.final_loss, "losses differ: %.17g vs %.17g", ra.final_loss, rb.final_loss);
    /* and a different seed gives different weights */
    char other[1024];
    snprintf(other, sizeof other, "%s", job);
    memcpy(strstr(other, "\"seed\": 7"), "\"seed\": 8", 9);
    rnn_model c;
    rnn_train_result rc;
    ck_assert(train_json(other, NULL, &c, NULL, &rc, NULL, NULL, &err) == 0);
    ck_assert_msg(memcmp(a.params, c.params, a.nparams * sizeof(float)) != 0, "seed had no effect");
    rnn_train_result_free(&ra); rnn_train_result_free(&rb); rnn_train_result_free(&rc);
    rnn_model_free(&a); rnn_model_free(&b); rnn_model_free(&c);
}
END_TEST

/* Seed 000: 50 values of a sine wave predict the 51st. */
START_TEST(test_learns_sine)
{
    const char *job = "{\"task\": \"regression\", \"mode\": \"many_to_one\", \"cell\": \"lstm\", \"hidden\": 32,"
                      " \"init\": {\"seed\": 1}, \"data\": {\"generator\": \"sine\", \"samples\": 200, \"window\": 50},"
                      " \"validation\": 0.1, \"epochs\": 40, \"batch\": 16, \"shuffle\": true,"
                      " \"optimizer\": {\"name\": \"adam\", \"lr\": 0.01}, \"clip\": 5.0}";
    rnn_model m;
    rnn_train_result r;
    rnn_err err;
    ck_assert_msg(train_json(job, NULL, &m, NULL, &r, NULL, NULL, &err) == 0, "%s", err.msg);
    printf("  sine: %d epochs in %.2fs, train MSE %.3g, validation MSE %.3g (first epoch %.3g)\n",
           r.epochs_done, r.seconds, r.final_loss, r.final_val_loss, r.loss[0]);
    ck_assert_msg(r.final_val_loss < 1e-3, "validation MSE %.4g, want < 1e-3", r.final_val_loss);
    ck_assert(r.loss[0] > 10 * r.final_loss);
    rnn_train_result_free(&r);
    rnn_model_free(&m);
}
END_TEST

static const char *corpus =
    "rnnd trains and serves recurrent neural networks. the engine runs vanilla rnn, lstm and gru "
    "cells with backpropagation through time, and the daemon answers predictions over http while "
    "training jobs run beside it. a model moves between rnnd and pytorch as a safetensors file. "
    "the sine wave is the first example: fifty values of a sine wave predict the next one. "
    "the second example is this text: a character model reads it and learns to write like it. ";

START_TEST(test_learns_text)
{
    char job[4096];
    snprintf(job, sizeof job,
             "{\"task\": \"charlm\", \"cell\": \"lstm\", \"hidden\": 64, \"embedding\": 16,"
             " \"init\": {\"seed\": 3}, \"data\": {\"text\": \"%s\", \"window\": 32},"
             " \"epochs\": 60, \"batch\": 8, \"optimizer\": {\"name\": \"adam\", \"lr\": 0.01}, \"clip\": 5}",
             corpus);
    rnn_model m;
    rnn_train_result r;
    rnn_err err;
    ck_assert_msg(train_json(job, NULL, &m, NULL, &r, NULL, NULL, &err) == 0, "%s", err.msg);
    const double uniform = log((double)m.cfg.input_size);
    printf("  charlm: V=%d, uniform log(V) %.3f, first epoch %.3f, last %.3f, %.2fs\n", m.cfg.input_size,
           uniform, r.loss[0], r.final_loss, r.seconds);
    ck_assert_msg(r.final_loss < 0.5 * uniform, "loss %.3f not well below log(V) = %.3f", r.final_loss, uniform);
    rnn_train_result_free(&r);
    rnn_model_free(&m);
}
END_TEST

START_TEST(test_divergence_named_and_weights_kept)
{
    /* relu RNN with identity recurrence and a huge learning rate blows up */
    const char *job = "{\"cell\": \"rnn\", \"activation\": \"relu\", \"hidden\": 16,"
                      " \"init\": {\"seed\": 1, \"recurrent\": \"identity\"},"
                      " \"data\": {\"series\": [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20], \"window\": 8},"
                      " \"epochs\": 50, \"batch\": 4, \"shuffle\": false, \"optimizer\": {\"name\": \"sgd\", \"lr\": 50}}";
    rnn_model m;
    rnn_train_result r;
    rnn_err err;
    int rc = train_json(job, NULL, &m, NULL, &r, NULL, NULL, &err);
    ck_assert_int_eq(rc, -1);
    printf("  divergence: %s\n", err.msg);
    ck_assert_msg(strstr(err.msg, "epoch") && strstr(err.msg, "step"), "error should name epoch and step: %s", err.msg);
    for (size_t i = 0; i < m.nparams; i++)
        ck_assert_msg(isfinite(m.params[i]), "weight %zu not finite after a failed job", i);
    rnn_train_result_free(&r);
    rnn_model_free(&m);
}
END_TEST

static int cancel_after(void *ud, const rnn_progress *p)
{
    int *calls = ud;
    ++*calls;
    return p->step >= 3;
}

START_TEST(test_cancel_via_callback)
{
    rnn_config cfg = {RNN_TASK_REGRESSION, RNN_MODE_MANY_TO_ONE, RNN_CELL_GRU, RNN_ACT_TANH, 1, 8, 1, 1, 0, 0, 0, 0};
    rnn_model m;
    rnn_err err;
    ck_assert(rnn_model_init(&m, &cfg, &err) == 0);
    rnn_rng rng;
    rnn_rng_seed(&rng, 1);
    rnn_model_randomize(&m, &rng, RNN_INIT_DEFAULT);
    rnn_dataset d;
    ck_assert(rnn_dataset_sine(&d, 100, 10, RNN_MODE_MANY_TO_ONE, &err) == 0);
    int calls = 0;
    rnn_train_cfg tc = {.epochs = 100, .batch = 10, .shuffle = 1, .progress = cancel_after, .progress_ud = &calls};
    rnn_optim_defaults(&tc.optim, RNN_OPT_ADAM);
    rnn_train_result r;
    ck_assert_int_eq(rnn_train(&m, &d, &tc, &r, &err), 1);
    ck_assert_int_eq(r.steps_done, 3);
    ck_assert_int_eq(calls, 3);
    rnn_train_result_free(&r);
    rnn_dataset_free(&d);
    rnn_model_free(&m);
}
END_TEST

/* One job on several threads: the batch is split, the gradients summed in
 * thread order. The same thread count gives the same bits; another count
 * the same weights up to float rounding; an uneven split (3 threads for 32
 * sequences) and the rnn_train_threads limits hold. */
static void train_with_threads(int threads, int layers, double dropout, rnn_model *m, int *used,
                               double loss[2])
{
    rnn_config cfg = {RNN_TASK_REGRESSION, RNN_MODE_MANY_TO_ONE, RNN_CELL_GRU, RNN_ACT_TANH, 1, 64, layers, 1, 0, 0, 0, 0};
    rnn_err err;
    ck_assert(rnn_model_init(m, &cfg, &err) == 0);
    rnn_rng rng;
    rnn_rng_seed(&rng, 11);
    rnn_model_randomize(m, &rng, RNN_INIT_DEFAULT);
    rnn_dataset d;
    ck_assert(rnn_dataset_sine(&d, 128, 50, RNN_MODE_MANY_TO_ONE, &err) == 0);
    rnn_train_cfg tc = {.epochs = 2, .batch = 32, .shuffle = 1, .seed = 3, .threads = threads,
                        .dropout = dropout};
    rnn_optim_defaults(&tc.optim, RNN_OPT_SGD);
    tc.optim.momentum = 0.9;
    rnn_train_result r;
    ck_assert_msg(rnn_train(m, &d, &tc, &r, &err) == 0, "%s", err.msg);
    *used = r.threads;
    if (loss) {
        loss[0] = r.loss[0];
        loss[1] = r.loss[1];
    }
    rnn_train_result_free(&r);
    rnn_dataset_free(&d);
}

START_TEST(test_threads)
{
    rnn_model m1, m2, m2b, m3;
    int u1, u2, u2b, u3;
    train_with_threads(1, 1, 0, &m1, &u1, NULL);
    train_with_threads(2, 1, 0, &m2, &u2, NULL);
    train_with_threads(2, 1, 0, &m2b, &u2b, NULL);
    train_with_threads(3, 1, 0, &m3, &u3, NULL);
    ck_assert_int_eq(u1, 1);
    ck_assert_int_eq(u2, 2);
    ck_assert_int_eq(u3, 3);
    ck_assert_msg(memcmp(m2.params, m2b.params, m2.nparams * sizeof(float)) == 0,
                  "two runs on 2 threads differ");
    double scale = 0, d2 = 0, d3 = 0;
    int differ = 0;
    for (size_t i = 0; i < m1.nparams; i++) {
        scale = fmax(scale, fabs(m1.params[i]));
        d2 = fmax(d2, fabs(m1.params[i] - m2.params[i]));
        d3 = fmax(d3, fabs(m1.params[i] - m3.params[i]));
        differ |= m1.params[i] != m2.params[i];
    }
    printf("  threads: 1 vs 2 max diff %.3g, 1 vs 3 %.3g (weights up to %.3g)\n", d2, d3, scale);
    ck_assert_msg(d2 <= 1e-5 * scale && d3 <= 1e-5 * scale, "threads change the result: %g %g", d2, d3);
    ck_assert_msg(differ, "2 threads gave 1 thread's exact bits: was the batch split at all?");
    rnn_model_free(&m1);
    rnn_model_free(&m2);
    rnn_model_free(&m2b);
    rnn_model_free(&m3);
    /* no more threads than sequences, and none for tiny work */
    rnn_config big = {RNN_TASK_REGRESSION, RNN_MODE_MANY_TO_ONE, RNN_CELL_LSTM, RNN_ACT_TANH, 1, 256, 1, 1, 0, 0, 0, 0};
    ck_assert_int_eq(rnn_train_threads(&big, 8, 100, 3), 3);
    ck_assert_int_eq(rnn_train_threads(&big, 0, 100, 32), rnn_cpu_count());
    rnn_config tiny = big;
    tiny.hidden = 4;
    ck_assert_int_eq(rnn_train_threads(&tiny, 8, 10, 32), 1);
}
END_TEST

/* The largest |a_i - b_i| over two models' weights, and the largest |a_i|. */
static double max_diff(const rnn_model *a, const rnn_model *b, double *scale)
{
    double d = 0;
    *scale = 0;
    for (size_t i = 0; i < a->nparams; i++) {
        *scale = fmax(*scale, fabs(a->params[i]));
        d = fmax(d, fabs(a->params[i] - b->params[i]));
    }
    return d;
}

/* Dropout between stacked layers. Column j of the gradient of layer 1's
 * W_ih is zero exactly where input j of layer 1 was dropped (one step, one
 * sequence), so counting such columns measures p. An evaluation drops
 * nothing; the masks follow the sequences, so 2 threads give 1 thread's
 * weights up to float rounding; the model records p and still learns. */
START_TEST(test_dropout)
{
    enum { HD = 256, SEEDS = 16 };
    const double p = 0.3;
    rnn_config cfg = {RNN_TASK_REGRESSION, RNN_MODE_MANY_TO_ONE, RNN_CELL_RNN, RNN_ACT_TANH, 2, HD, 2, 1, 0, 0, 0, 0};
    rnn_model m;
    rnn_err err;
    ck_assert(rnn_model_init(&m, &cfg, &err) == 0);
    rnn_rng rng;
    rnn_rng_seed(&rng, 5);
    rnn_model_randomize(&m, &rng, RNN_INIT_DEFAULT);
    int w1 = -1;
    for (int k = 0; k < m.ntensors; k++)
        if (!strcmp(m.tensors[k].name, "rnn.weight_ih_l1"))
            w1 = k;
    ck_assert(w1 >= 0);
    const float *gw = NULL;
    float x[2] = {0.5f, -0.3f}, y[1] = {1};
    rnn_batch b = {1, 1, x, NULL, y, NULL};
    rnn_ws *ws = rnn_ws_new(&cfg, 1, 1), *eval = rnn_ws_new_inference(&cfg, 1, 1);
    float *g = malloc(m.nparams * sizeof(float));
    gw = g + m.tensors[w1].offset;
    int dropped = 0;
    for (int seed = 0; seed <= SEEDS; seed++) {
        /* seed SEEDS: dropout off again */
        rnn_ws_dropout(ws, seed < SEEDS ? p : 0, (uint64_t)seed, NULL);
        memset(g, 0, m.nparams * sizeof(float));
        rnn_forward(&m, ws, &b);
        rnn_backward(&m, ws, &b, 0, g, NULL);
        int zero = 0;
        for (int j = 0; j < HD; j++) {
            int all = 1;
            for (int i = 0; i < HD && all; i++)
                all = gw[(size_t)i * HD + j] == 0;
            zero += all;
        }
        if (seed < SEEDS)
            dropped += zero;
        else
            ck_assert_msg(zero == 0, "dropout off, yet %d inputs dropped", zero);
    }
    const double frac = (double)dropped / (HD * SEEDS);
    printf("  dropout p=%.2f: dropped %.4f of %d inputs\n", p, frac, HD * SEEDS);
    ck_assert_msg(fabs(frac - p) < 0.03, "dropped %.4f of the inputs, p = %.2f", frac, p);
    /* evaluation drops nothing, whatever the training workspace did */
    rnn_ws_dropout(ws, p, 1, NULL);
    rnn_ws_dropout(eval, p, 1, NULL);
    const double l_drop = rnn_forward(&m, ws, &b), l_eval = rnn_forward(&m, eval, &b);
    rnn_ws_dropout(ws, 0, 1, NULL);
    ck_assert_msg(l_drop != l_eval, "the training forward dropped nothing");
    ck_assert_msg(rnn_forward(&m, ws, &b) == l_eval, "the evaluation forward dropped inputs");
    rnn_ws_free(ws);
    rnn_ws_free(eval);
    free(g);
    rnn_model_free(&m);

    rnn_model m1, m2, m0;
    int u1, u2, u0;
    double loss1[2], loss2[2], loss0[2], scale;
    train_with_threads(1, 2, p, &m1, &u1, loss1);
    train_with_threads(2, 2, p, &m2, &u2, loss2);
    train_with_threads(1, 2, 0, &m0, &u0, loss0);
    const double d12 = max_diff(&m1, &m2, &scale), d10 = max_diff(&m1, &m0, &scale);
    printf("  dropout training: 1 vs 2 threads max diff %.3g, vs no dropout %.3g (weights up to %.3g);"
           " loss %.4g -> %.4g\n", d12, d10, scale, loss1[0], loss1[1]);
    ck_assert_int_eq(u2, 2);
    ck_assert_msg(d12 <= 1e-5 * scale, "2 threads drew other masks: %g", d12);
    ck_assert_msg(d10 > 1e-3 * scale, "training with dropout gave the weights without it");
    ck_assert_msg(m1.cfg.dropout == p, "the model records dropout %g", m1.cfg.dropout);
    ck_assert_msg(loss1[1] < loss1[0], "no learning with dropout: %g -> %g", loss1[0], loss1[1]);
    rnn_model_free(&m1);
    rnn_model_free(&m2);
    rnn_model_free(&m0);
}
END_TEST

Suite *train_suite(void)
{
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("trainer");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_seed002_hand_backprop);
    tcase_add_test(tc, test_determinism);
    tcase_add_test(tc, test_learns_sine);
    tcase_add_test(tc, test_learns_text);
    tcase_add_test(tc, test_divergence_named_and_weights_kept);
    tcase_add_test(tc, test_cancel_via_callback);
    tcase_add_test(tc, test_threads);
    tcase_add_test(tc, test_dropout);
    suite_add_tcase(s, tc);
    return s;
}
