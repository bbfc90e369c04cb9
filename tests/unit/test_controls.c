/* Training controls: the learning-rate schedules against PyTorch's
 * (tests/ref/sched.ref, written by tests/ref/gen_sched.py), read from job
 * specs as users write them; the trainer taking each epoch's rate from the
 * schedule; early stopping stopping early with the best epoch's weights;
 * and the job spec's errors for both keys. */
#include "suites.h"
#include "jobs.h"
#include "rnn/job.h"
#include "rnn/rnn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXE 64

static const char *sched_ref(void)
{
    const char *d = getenv("RNN_SCHED_REF");
    return d && *d ? d : "tests/ref/sched.ref";
}

/* Reads a line "WORD v0 v1 ..." into v; returns the count. */
static int read_values(FILE *f, const char *word, double *v)
{
    char tag[16];
    ck_assert_msg(fscanf(f, "%15s", tag) == 1 && !strcmp(tag, word), "sched.ref: expected %s", word);
    int n = 0;
    while (n < MAXE && fscanf(f, "%lf", &v[n]) == 1)
        n++;
    return n;
}

/* Parses a job spec carrying the case's schedule and returns its config. */
static rnn_train_cfg train_cfg_of(const char *kind, int epochs, double base, const char *settings)
{
    char json[1024], keys[512] = "";
    /* key=value pairs become JSON members */
    char buf[512];
    snprintf(buf, sizeof buf, "%s", settings);
    for (char *tok = strtok(buf, " \n"); tok; tok = strtok(NULL, " \n")) {
        char *eq = strchr(tok, '=');
        ck_assert(eq);
        *eq = 0;
        size_t l = strlen(keys);
        snprintf(keys + l, sizeof keys - l, ", \"%s\": %s", tok, eq + 1);
    }
    snprintf(json, sizeof json,
             "{\"epochs\": %d, \"optimizer\": {\"name\": \"sgd\", \"lr\": %.17g},"
             " \"lr_schedule\": {\"name\": \"%s\"%s}, \"data\": {\"generator\": \"sine\", \"window\": 5}}",
             epochs, base, kind, keys);
    rnn_job job;
    rnn_err err;
    ck_assert_msg(rnn_job_parse(&job, json, strlen(json), &err) == 0, "%s: %s", json, err.msg);
    rnn_train_cfg t = job.train;
    rnn_job_free(&job);
    return t;
}

START_TEST(test_schedules_match_pytorch)
{
    FILE *f = fopen(sched_ref(), "r");
    ck_assert_msg(f, "cannot open %s", sched_ref());
    int cases = 0;
    double worst = 0;
    char word[16];
    while (fscanf(f, "%15s", word) == 1) {
        ck_assert_str_eq(word, "case");
        char name[64], kind[16], settings[512];
        int epochs;
        double base, metric[MAXE], lr[MAXE];
        ck_assert(fscanf(f, "%63s %15s %d %lf", name, kind, &epochs, &base) == 4);
        ck_assert(fgets(settings, sizeof settings, f));
        ck_assert_int_eq(read_values(f, "metric", metric), epochs);
        ck_assert_int_eq(read_values(f, "lr", lr), epochs);
        const rnn_train_cfg t = train_cfg_of(kind, epochs, base, settings);
        ck_assert_msg(t.sched.kind != RNN_SCHED_NONE, "%s: no schedule parsed", name);
        for (int e = 0; e < epochs; e++) {
            const double got = rnn_sched_lr(&t.sched, t.optim.lr, e, metric);
            const double rel = fabs(got - lr[e]) / fmax(fabs(lr[e]), 1e-12);
            if (rel > worst) worst = rel;
            ck_assert_msg(rel <= 1e-6, "%s epoch %d: lr %.17g, PyTorch %.17g", name, e, got, lr[e]);
        }
        cases++;
    }
    fclose(f);
    printf("  lr schedules: %d PyTorch cases, worst relative difference %.2g\n", cases, worst);
    ck_assert_int_ge(cases, 10);
}
END_TEST

typedef struct rates { int n; double lr[MAXE]; } rates;

static int record_rate(void *ud, const rnn_progress *p)
{
    rates *r = ud;
    if (p->epoch_end && r->n < MAXE)
        r->lr[r->n++] = p->lr;
    return RNN_TRAIN_GO;
}

#define SINE_JOB(extra)                                                                            \
    "{\"cell\": \"gru\", \"hidden\": 8, \"init\": {\"seed\": 3}, \"data\": {\"generator\": \"sine\","   \
    " \"samples\": 48, \"window\": 8}, \"batch\": 8, \"shuffle\": false, " extra "}"

/* A step schedule that drops the rate to 1e-12 after the first epoch: the
 * later epochs must leave the weights where the first one put them, which
 * they do only if the optimizer takes the schedule's rate. */
START_TEST(test_trainer_takes_the_rate)
{
    const char *one = SINE_JOB("\"epochs\": 1, \"optimizer\": {\"name\": \"sgd\", \"lr\": 0.1}");
    const char *four = SINE_JOB("\"epochs\": 4, \"optimizer\": {\"name\": \"sgd\", \"lr\": 0.1},"
                                " \"lr_schedule\": {\"name\": \"step\", \"step_size\": 1, \"gamma\": 1e-12}");
    const char *plain = SINE_JOB("\"epochs\": 4, \"optimizer\": {\"name\": \"sgd\", \"lr\": 0.1}");
    rnn_model a, b, c;
    rnn_train_result ra, rb, rc;
    rnn_err err;
    rates r = {0};
    ck_assert_msg(train_json(one, NULL, &a, NULL, &ra, NULL, NULL, &err) == 0, "%s", err.msg);
    ck_assert_msg(train_json(four, NULL, &b, NULL, &rb, record_rate, &r, &err) == 0, "%s", err.msg);
    ck_assert_msg(train_json(plain, NULL, &c, NULL, &rc, NULL, NULL, &err) == 0, "%s", err.msg);
    double moved = 0, unscheduled = 0;
    for (size_t i = 0; i < a.nparams; i++) {
        moved = fmax(moved, fabs(b.params[i] - a.params[i]));
        unscheduled = fmax(unscheduled, fabs(c.params[i] - a.params[i]));
    }
    printf("  step schedule: weights moved %.3g after epoch 1 (%.3g without the schedule)\n", moved,
           unscheduled);
    ck_assert_msg(moved < 1e-6 && unscheduled > 1e-3, "moved %.3g, unscheduled %.3g", moved, unscheduled);
    ck_assert_int_eq(r.n, 4);
    ck_assert(r.lr[0] == 0.1);
    ck_assert_msg(fabs(r.lr[1] - 1e-13) < 1e-20, "epoch 2 ran at %.17g", r.lr[1]);
    rnn_train_result_free(&ra); rnn_train_result_free(&rb); rnn_train_result_free(&rc);
    rnn_model_free(&a); rnn_model_free(&b); rnn_model_free(&c);
}
END_TEST

/* A learning rate too high for the data makes the validation loss wander:
 * early stopping ends the run, and its weights are bitwise those of a run
 * that trains just the best epoch's count of epochs. */
START_TEST(test_early_stopping)
{
    const char *job = SINE_JOB("\"epochs\": 200, \"validation\": 0.25,"
                               " \"optimizer\": {\"name\": \"adam\", \"lr\": 0.05},"
                               " \"early_stopping\": {\"patience\": 3, \"min_delta\": 1e-5}");
    rnn_model m, ref;
    rnn_train_result r, rr;
    rnn_err err;
    ck_assert_msg(train_json(job, NULL, &m, NULL, &r, NULL, NULL, &err) == 0, "%s", err.msg);
    printf("  early stopping: stopped after %d of 200 epochs, best epoch %d (val %.4g, last %.4g)\n",
           r.epochs_done, r.best_epoch, r.final_val_loss, r.val_loss[r.epochs_done - 1]);
    ck_assert_msg(r.stopped_early && r.epochs_done < 200, "ran %d epochs", r.epochs_done);
    ck_assert_int_eq(r.best_epoch, r.epochs_done - 3);
    ck_assert(r.final_val_loss == r.val_loss[r.best_epoch - 1]);
    for (int e = r.best_epoch; e < r.epochs_done; e++)
        ck_assert_msg(r.val_loss[e] >= r.final_val_loss - 1e-5, "epoch %d improved", e + 1);
    char upto[1024];
    snprintf(upto, sizeof upto, SINE_JOB("\"epochs\": %d, \"validation\": 0.25,"
                                         " \"optimizer\": {\"name\": \"adam\", \"lr\": 0.05}"),
             r.best_epoch);
    ck_assert_msg(train_json(upto, NULL, &ref, NULL, &rr, NULL, NULL, &err) == 0, "%s", err.msg);
    ck_assert_msg(memcmp(m.params, ref.params, m.nparams * sizeof(float)) == 0,
                  "the kept weights are not the best epoch's");
    rnn_train_result_free(&r); rnn_train_result_free(&rr);
    rnn_model_free(&m); rnn_model_free(&ref);
}
END_TEST

START_TEST(test_control_errors)
{
    static const struct { const char *extra, *want; } bad[] = {
        {"\"lr_schedule\": {\"name\": \"exp\"}", "lr_schedule.name: must be one of step, cosine, plateau"},
        {"\"lr_schedule\": {\"step_size\": 2}", "lr_schedule.name: missing"},
        {"\"lr_schedule\": {\"name\": \"step\"}", "lr_schedule.step_size: missing"},
        {"\"lr_schedule\": {\"name\": \"cosine\", \"gamma\": 0.5}", "lr_schedule.gamma: not a key of the cosine"},
        {"\"lr_schedule\": {\"name\": \"plateau\", \"factor\": 1}", "lr_schedule.factor: must be between"},
        {"\"lr_schedule\": {\"name\": \"step\", \"step_size\": 0}", "lr_schedule.step_size: must be between 1"},
        {"\"lr_schedule\": {\"name\": \"step\", \"step_size\": 1, \"warmup\": 3}", "lr_schedule.warmup: unknown key"},
        {"\"lr_schedule\": \"cosine\"", "lr_schedule: must be an object"},
        {"\"early_stopping\": {}", "early_stopping.patience: missing"},
        {"\"early_stopping\": {\"patience\": 0}", "early_stopping.patience: must be between 1"},
        {"\"early_stopping\": {\"patience\": 2, \"min_delta\": -1}", "early_stopping.min_delta: must be between 0"},
        {"\"early_stopping\": {\"patience\": 2, \"monitor\": \"loss\"}", "early_stopping.monitor: unknown key"},
        {"\"dropout\": 1", "dropout: must be between 0 and 0.99"},
        {"\"dropout\": \"0.5\"", "dropout: must be a number"},
        {"\"bidirectional\": 1", "bidirectional: must be true or false"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char json[512];
        snprintf(json, sizeof json, "{\"data\": {\"generator\": \"sine\", \"window\": 5}, %s}", bad[i].extra);
        expect_refused(json, NULL, 1, bad[i].want);
    }
    /* parsed, but refused with the data, where the model meets the training */
    expect_refused("{\"layers\": 1, \"dropout\": 0.3, \"data\": {\"generator\": \"sine\", \"window\": 5}}",
                   NULL, 0, "dropout: acts between stacked layers, and the model has 1 layer");
    expect_refused("{\"bidirectional\": true, \"bptt\": 2, \"data\": {\"generator\": \"sine\", \"window\": 5}}",
                   NULL, 0, "bptt: a bidirectional model reads each sequence whole");
    expect_refused("{\"task\": \"lm\", \"bidirectional\": true, \"data\": {\"text\": \"abcabcabc\", \"window\": 3}}",
                   NULL, 1, "bidirectional: a language model predicts from the past only");
    /* cosine's t_max defaults to the epochs */
    const char *ok = "{\"epochs\": 7, \"lr_schedule\": {\"name\": \"cosine\"}, \"data\": {\"generator\": \"sine\", \"window\": 5}}";
    rnn_job job;
    rnn_err err;
    ck_assert_msg(rnn_job_parse(&job, ok, strlen(ok), &err) == 0, "%s", err.msg);
    ck_assert_int_eq(job.train.sched.t_max, 7);
    ck_assert(rnn_sched_lr(&job.train.sched, 1.0, 7, NULL) == 0);
    rnn_job_free(&job);
}
END_TEST

Suite *controls_suite(void)
{
    Suite *s = suite_create("controls");
    TCase *tc = tcase_create("controls");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_schedules_match_pytorch);
    tcase_add_test(tc, test_trainer_takes_the_rate);
    tcase_add_test(tc, test_early_stopping);
    tcase_add_test(tc, test_control_errors);
    suite_add_tcase(s, tc);
    return s;
}
