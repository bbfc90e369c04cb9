/* The engine against PyTorch: for every case written by tests/ref/gen.py,
 * outputs, loss, every parameter gradient, the input gradient, and the
 * weights after three SGD (momentum) and three AdamW steps must agree to
 * 1e-5 of each tensor's scale. Cases with `steps 0` (the big ones) have no
 * optimizer reference; their SGD/AdamW tests pass without checking. Prints
 * the worst error per case and test (per tensor with RNN_REF_VERBOSE=1). */
#include "refcase.h"
#include "suites.h"

#include <dnnl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-5
#define MAXCASES 64
/* tests/ref/gen.py writes this many cases */
#define NCASES 35

static char names[MAXCASES][128];
static int ncases;

typedef struct fixture {
    ref_case rc;
    rnn_model m;
    rnn_ws *ws;
    rnn_batch b;
    int32_t *tok, *cls;
    float *grads;
    double worst;           /* largest error so far, and its tensor */
    char worst_name[64];
} fixture;

static int32_t *to_ints(const ref_tensor *t)
{
    int32_t *v = malloc(t->n * sizeof(int32_t));
    for (size_t i = 0; i < t->n; i++) v[i] = (int32_t)lrintf(t->v[i]);
    return v;
}

static void load_weights(fixture *fx, const char *prefix)
{
    char name[128];
    for (int i = 0; i < fx->m.ntensors; i++) {
        const rnn_tensor *t = &fx->m.tensors[i];
        snprintf(name, sizeof name, "%s%s", prefix, t->name);
        const ref_tensor *r = ref_get(&fx->rc, name);
        ck_assert_msg(r, "%s: reference has no %s", fx->rc.name, name);
        ck_assert_msg(r->n == t->size, "%s: %s has %zu values, model %zu", fx->rc.name, name, r->n, t->size);
        memcpy(fx->m.params + t->offset, r->v, t->size * sizeof(float));
    }
}

static void fixture_open(fixture *fx, const char *file)
{
    char path[512], err[512];
    memset(fx, 0, sizeof *fx);
    snprintf(path, sizeof path, "%s/%s", ref_dir(), file);
    ck_assert_msg(ref_load(path, &fx->rc, err, sizeof err) == 0, "%s", err);
    rnn_err e;
    ck_assert_msg(rnn_model_init(&fx->m, &fx->rc.cfg, &e) == 0, "%s: %s", fx->rc.name, e.msg);
    load_weights(fx, "");
    fx->ws = rnn_ws_new(&fx->rc.cfg, fx->rc.T, fx->rc.B);
    ck_assert(fx->ws);
    fx->b.T = fx->rc.T;
    fx->b.B = fx->rc.B;
    const ref_tensor *t;
    if ((t = ref_get(&fx->rc, "input"))) fx->b.x = t->v;
    if ((t = ref_get(&fx->rc, "tokens"))) {
        fx->b.tok = fx->tok = to_ints(t);
        for (size_t i = 0; i < t->n; i++)
            ck_assert_msg(fx->tok[i] >= 0 && fx->tok[i] < fx->rc.cfg.input_size,
                          "%s: token %d out of range", fx->rc.name, (int)fx->tok[i]);
    }
    ck_assert_msg(!fx->b.tok == !rnn_token_input(&fx->rc.cfg),
                  "%s: tokens tensor and token input (embedding %d, tokens %d) disagree",
                  fx->rc.name, fx->rc.cfg.embedding, fx->rc.cfg.tokens);
    if ((t = ref_get(&fx->rc, "target"))) fx->b.y = t->v;
    if ((t = ref_get(&fx->rc, "target_class"))) fx->b.cls = fx->cls = to_ints(t);
    fx->grads = calloc(fx->m.nparams, sizeof(float));
}

static void fixture_close(fixture *fx)
{
    free(fx->grads);
    free(fx->tok);
    free(fx->cls);
    rnn_ws_free(fx->ws);
    rnn_model_free(&fx->m);
    ref_free(&fx->rc);
}

static int verbose(void)
{
    const char *v = getenv("RNN_REF_VERBOSE");
    return v && *v && strcmp(v, "0") != 0;
}

static double check_tensor(fixture *fx, const char *refname, const float *got, size_t n)
{
    const ref_tensor *r = ref_get(&fx->rc, refname);
    ck_assert_msg(r, "%s: reference has no %s", fx->rc.name, refname);
    ck_assert_msg(r->n == n, "%s: %s: %zu values, reference %zu", fx->rc.name, refname, n, r->n);
    double e = ref_relerr(got, r->v, n);
    if (verbose())
        printf("  %-24s %-30s max rel err %.2e\n", fx->rc.name, refname, e);
    if (!(e <= fx->worst) || !fx->worst_name[0]) {
        fx->worst = e;
        snprintf(fx->worst_name, sizeof fx->worst_name, "%s", refname);
    }
    ck_assert_msg(e <= TOL, "%s: %s differs from PyTorch: max rel err %.3e > %.0e", fx->rc.name,
                  refname, e, TOL);
    return e;
}

/* One line per case and test: the worst error of the tensors it checked. */
static void print_worst(const fixture *fx, const char *what)
{
    printf("  %-24s %-8s worst rel err %.2e (%s)\n", fx->rc.name, what, fx->worst, fx->worst_name);
    fflush(stdout);
}

static void check_params(fixture *fx, const char *prefix, const float *buf)
{
    char name[128];
    for (int i = 0; i < fx->m.ntensors; i++) {
        const rnn_tensor *t = &fx->m.tensors[i];
        snprintf(name, sizeof name, "%s%s", prefix, t->name);
        check_tensor(fx, name, buf + t->offset, t->size);
    }
}

START_TEST(test_ref_case_present)
{
    ck_assert_msg(ncases >= NCASES, "expected at least %d reference cases in %s, found %d", NCASES,
                  ref_dir(), ncases);
}
END_TEST

START_TEST(test_forward_backward)
{
    ck_assert_int_lt(_i, ncases);
    fixture fx;
    fixture_open(&fx, names[_i]);
    double loss = rnn_forward(&fx.m, fx.ws, &fx.b);
    const ref_tensor *o = ref_get(&fx.rc, "output");
    check_tensor(&fx, "output", rnn_ws_outputs(fx.ws), o->n);
    float lf = (float)loss;
    check_tensor(&fx, "loss", &lf, 1);
    float *dx = NULL;
    if (fx.b.x) dx = calloc((size_t)fx.rc.T * fx.rc.B * fx.rc.cfg.input_size, sizeof(float));
    rnn_backward(&fx.m, fx.ws, &fx.b, fx.rc.bptt, fx.grads, dx);
    check_params(&fx, "grad.", fx.grads);
    if (dx) check_tensor(&fx, "grad.input", dx, (size_t)fx.rc.T * fx.rc.B * fx.rc.cfg.input_size);
    float norm = (float)rnn_grad_norm(fx.grads, fx.m.nparams);
    check_tensor(&fx, "grad_norm", &norm, 1);
    print_worst(&fx, "fwd+bwd");
    free(dx);
    fixture_close(&fx);
}
END_TEST

/* An inference workspace (whose batched LSTM passes run on oneDNN's
 * forward_inference) gives PyTorch's outputs too, and keeps giving each
 * model's own when it alternates between two (the weights oneDNN holds
 * follow rnn_model.serial). */
START_TEST(test_inference_forward)
{
    fixture fx;
    fixture_open(&fx, names[_i]);
    rnn_ws *ws = rnn_ws_new_inference(&fx.rc.cfg, fx.rc.T, fx.rc.B);
    rnn_ws *fresh = rnn_ws_new_inference(&fx.rc.cfg, fx.rc.T, fx.rc.B);
    ck_assert(ws && fresh);
    const rnn_batch b = {.T = fx.b.T, .B = fx.b.B, .x = fx.b.x, .tok = fx.b.tok};
    const size_t n = ref_get(&fx.rc, "output")->n;
    rnn_forward(&fx.m, ws, &b);
    check_tensor(&fx, "output", rnn_ws_outputs(ws), n);
    print_worst(&fx, "infer");

    rnn_model other;
    rnn_err e;
    rnn_rng rng;
    rnn_rng_seed(&rng, 7);
    ck_assert(rnn_model_init(&other, &fx.m.cfg, &e) == 0);
    rnn_model_randomize(&other, &rng, RNN_INIT_DEFAULT);
    rnn_forward(&other, ws, &b);
    rnn_forward(&other, fresh, &b);
    const float *got = rnn_ws_outputs(ws), *want = rnn_ws_outputs(fresh);
    float differs = 0;
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(fabsf(got[i] - want[i]) <= 1e-6f, "other model, output %zu: %g, fresh %g", i,
                      got[i], want[i]);
        differs = fmaxf(differs, fabsf(got[i] - ref_get(&fx.rc, "output")->v[i]));
    }
    ck_assert_msg(differs > 1e-4f, "the other model's outputs equal the case's");
    rnn_forward(&fx.m, ws, &b);
    check_tensor(&fx, "output", rnn_ws_outputs(ws), n);
    rnn_model_free(&other);
    rnn_ws_free(fresh);
    rnn_ws_free(ws);
    fixture_close(&fx);
}
END_TEST

/* Three optimizer steps on the same batch, clipping as the case says. */
static void run_steps(fixture *fx, const rnn_optim_cfg *oc)
{
    rnn_optim opt;
    rnn_err e;
    ck_assert(rnn_optim_init(&opt, oc, fx->m.nparams, &e) == 0);
    for (int s = 0; s < fx->rc.steps; s++) {
        memset(fx->grads, 0, fx->m.nparams * sizeof(float));
        rnn_forward(&fx->m, fx->ws, &fx->b);
        rnn_backward(&fx->m, fx->ws, &fx->b, fx->rc.bptt, fx->grads, NULL);
        if (fx->rc.clip > 0) rnn_clip_grad(fx->grads, fx->m.nparams, fx->rc.clip);
        rnn_optim_step(&opt, fx->m.params, fx->grads);
    }
    rnn_optim_free(&opt);
}

START_TEST(test_sgd_steps)
{
    fixture fx;
    fixture_open(&fx, names[_i]);
    if (fx.rc.steps > 0) {
        rnn_optim_cfg oc;
        rnn_optim_defaults(&oc, RNN_OPT_SGD);
        oc.lr = fx.rc.sgd_lr;
        oc.momentum = fx.rc.sgd_momentum;
        oc.nesterov = fx.rc.nesterov;
        run_steps(&fx, &oc);
        check_params(&fx, "sgd.", fx.m.params);
        print_worst(&fx, "sgd");
    } else {
        printf("  %-24s %-8s no reference (steps 0)\n", fx.rc.name, "sgd");
    }
    fixture_close(&fx);
}
END_TEST

START_TEST(test_adam_steps)
{
    fixture fx;
    fixture_open(&fx, names[_i]);
    if (fx.rc.steps > 0) {
        rnn_optim_cfg oc;
        rnn_optim_defaults(&oc, RNN_OPT_ADAM);
        oc.lr = fx.rc.adam_lr;
        oc.weight_decay = fx.rc.adam_wd;
        run_steps(&fx, &oc);
        check_params(&fx, "adam.", fx.m.params);
        print_worst(&fx, "adamw");
    } else {
        printf("  %-24s %-8s no reference (steps 0)\n", fx.rc.name, "adamw");
    }
    fixture_close(&fx);
}
END_TEST

/* Stepping one step at a time (generation, forecasting) must give the
 * forward pass's outputs; a bidirectional model cannot step at all. */
START_TEST(test_step_matches_forward)
{
    fixture fx;
    fixture_open(&fx, names[_i]);
    const rnn_config *c = &fx.rc.cfg;
    rnn_state st;
    if (c->bidirectional) {
        /* The reverse direction needs the whole sequence: no stepping. */
        ck_assert_int_eq(rnn_state_init(&st, c, fx.rc.B), -1);
        printf("  %-24s %-8s refused (bidirectional)\n", fx.rc.name, "step");
        fixture_close(&fx);
        return;
    }
    rnn_forward(&fx.m, fx.ws, &fx.b);
    ck_assert(rnn_state_init(&st, c, fx.rc.B) == 0);
    const int O = c->output_size, B = fx.rc.B, X = c->input_size;
    float *out = malloc((size_t)B * O * sizeof(float));
    float *all = malloc((size_t)fx.rc.T * B * O * sizeof(float));
    for (int t = 0; t < fx.rc.T; t++) {
        rnn_step(&fx.m, &st, fx.b.x ? fx.b.x + (size_t)t * B * X : NULL,
                 fx.b.tok ? fx.b.tok + (size_t)t * B : NULL, out);
        memcpy(all + (size_t)t * B * O, out, (size_t)B * O * sizeof(float));
    }
    const float *want = rnn_ws_outputs(fx.ws);
    const float *got = c->mode == RNN_MODE_MANY_TO_ONE ? out : all;
    size_t n = c->mode == RNN_MODE_MANY_TO_ONE ? (size_t)B * O : (size_t)fx.rc.T * B * O;
    double e = ref_relerr(got, want, n);
    printf("  %-24s %-8s rel err %.2e vs the forward pass\n", fx.rc.name, "step", e);
    ck_assert_msg(e < 1e-5, "%s: stepping differs from the forward pass by %.3e", fx.rc.name, e);
    free(out);
    free(all);
    rnn_state_free(&st);
    fixture_close(&fx);
}
END_TEST

/* `make test` runs this suite again with ONEDNN_MAX_CPU_ISA=AVX2, as on a CPU
 * without AVX-512: make sure oneDNN really held to it. */
START_TEST(test_isa_limit_holds)
{
    const char *isa = getenv("ONEDNN_MAX_CPU_ISA");
    dnnl_cpu_isa_t eff = dnnl_get_effective_cpu_isa();
    printf("  oneDNN instruction set: %s (ONEDNN_MAX_CPU_ISA=%s)\n",
           eff == dnnl_cpu_isa_avx2 ? "AVX2" : (eff & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core ? "AVX-512" : "other",
           isa ? isa : "unset");
    if (isa && strcmp(isa, "AVX2") == 0)
        ck_assert_msg(eff == dnnl_cpu_isa_avx2, "oneDNN runs ISA %#x, not AVX2", (unsigned)eff);
}
END_TEST

Suite *ref_suite(void)
{
    ncases = ref_list(names, MAXCASES);
    Suite *s = suite_create("pytorch_ref");
    TCase *tc = tcase_create("cases");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_ref_case_present);
    tcase_add_test(tc, test_isa_limit_holds);
    int n = ncases > 0 ? ncases : 1;
    tcase_add_loop_test(tc, test_forward_backward, 0, n);
    tcase_add_loop_test(tc, test_inference_forward, 0, n);
    tcase_add_loop_test(tc, test_sgd_steps, 0, n);
    tcase_add_loop_test(tc, test_adam_steps, 0, n);
    tcase_add_loop_test(tc, test_step_matches_forward, 0, n);
    suite_add_tcase(s, tc);
    return s;
}
