/* Checkpoints: a run suspended anywhere (mid-epoch or at an epoch end),
 * written to a file, loaded and resumed ends with the bits of a run that
 * never stopped, for Adam and for SGD with momentum, on one thread and on
 * two, and with a plateau schedule and early stopping (whose best weights
 * the checkpoint carries); a checkpoint of another run, a truncated one, a
 * corrupt one and one of the older format are refused by name. */
#include "suites.h"
#include "rnn/io.h"
#include "rnn/rnn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct stopper {
    long at;            /* suspend after this step (0: never) */
    int at_epoch_end;   /* ... at the epoch end that follows it instead */
    const char *path;   /* where checkpoints go */
    int written;
} stopper;

static int stop_at(void *ud, const rnn_progress *p)
{
    const stopper *s = ud;
    if (s->at <= 0 || p->step < s->at)
        return RNN_TRAIN_GO;
    if (s->at_epoch_end && !p->epoch_end)
        return RNN_TRAIN_GO;
    return RNN_TRAIN_SUSPEND;
}

static void save_state(void *ud, const rnn_train_state *st)
{
    stopper *s = ud;
    rnn_err err;
    ck_assert_msg(rnn_train_state_save(s->path, st, &err) == 0, "%s", err.msg);
    s->written++;
}

enum { SGD, ADAM, ADAM_CONTROLLED };

/* A GRU on the sine wave with a validation split and shuffling; the
 * controlled run halves its rate on every epoch that does not improve and
 * stops two epochs after its first (min_delta is out of reach), keeping
 * epoch 1's weights. */
static void setup(rnn_model *m, rnn_dataset *d, rnn_train_cfg *tc, int kind, int threads)
{
    const int adam = kind != SGD;
    rnn_config cfg = {RNN_TASK_REGRESSION, RNN_MODE_MANY_TO_ONE, RNN_CELL_GRU, RNN_ACT_TANH, 1, 16, 2, 1, 0, 0, 0, 0};
    rnn_err err;
    ck_assert(rnn_model_init(m, &cfg, &err) == 0);
    rnn_rng rng;
    rnn_rng_seed(&rng, 5);
    rnn_model_randomize(m, &rng, RNN_INIT_DEFAULT);
    ck_assert(rnn_dataset_sine(d, 90, 12, RNN_MODE_MANY_TO_ONE, &err) == 0);
    memset(tc, 0, sizeof *tc);
    tc->epochs = 4;
    tc->batch = 8;
    tc->shuffle = 1;
    tc->validation = 0.2;
    tc->seed = 9;
    tc->threads = threads;
    tc->clip = 1.0;
    rnn_optim_defaults(&tc->optim, adam ? RNN_OPT_ADAM : RNN_OPT_SGD);
    if (!adam)
        tc->optim.momentum = 0.9;
    if (kind == ADAM_CONTROLLED) {
        tc->epochs = 6;
        rnn_sched_defaults(&tc->sched, RNN_SCHED_PLATEAU);
        tc->sched.patience = 0;
        tc->sched.factor = 0.5;
        tc->early = (rnn_early_cfg){2, 1e9};
    }
}

/* Trains to the end, or until the stopper suspends it; returns rnn_train's code. */
static int run(rnn_model *m, int adam, int threads, stopper *s, const rnn_train_state *resume,
               rnn_train_result *res)
{
    rnn_dataset d;
    rnn_train_cfg tc;
    rnn_err err;
    setup(m, &d, &tc, adam, threads);
    tc.progress = stop_at;
    tc.progress_ud = s;
    tc.checkpoint = save_state;
    tc.resume = resume;
    const int rc = rnn_train(m, &d, &tc, res, &err);
    if (adam == ADAM_CONTROLLED && rc == 0)
        ck_assert_msg(res->stopped_early && res->best_epoch == 1 && res->epochs_done == 3,
                      "stopped early %d, best epoch %d of %d", res->stopped_early, res->best_epoch,
                      res->epochs_done);
    ck_assert_msg(rc >= 0, "%s", err.msg);
    rnn_dataset_free(&d);
    return rc;
}

static void check_resume(int adam, int threads, long at, int at_epoch_end)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/rnnd-ckpt-%d.bin", (int)getpid());
    rnn_model whole, part, resumed;
    rnn_train_result rw, rp, rr;
    stopper never = {0, 0, path, 0}, s = {at, at_epoch_end, path, 0};
    ck_assert_int_eq(run(&whole, adam, threads, &never, NULL, &rw), 0);
    ck_assert_int_eq(run(&part, adam, threads, &s, NULL, &rp), 2);
    ck_assert_msg(s.written > 0, "no checkpoint was written");
    rnn_train_state st;
    rnn_err err;
    ck_assert_msg(rnn_train_state_load(path, &st, &err) == 0, "%s", err.msg);
    ck_assert_msg(memcmp(st.params, part.params, part.nparams * sizeof(float)) == 0,
                  "the checkpoint's weights are not the run's at suspension");
    stopper go = {0, 0, path, 0};
    ck_assert_int_eq(run(&resumed, adam, threads, &go, &st, &rr), 0);
    printf("  resume %s threads=%d at step %ld%s (epoch %d batch %d): final loss %.9g vs %.9g\n",
           adam == ADAM_CONTROLLED ? "adam+plateau+early" : adam ? "adam" : "sgd", threads, at, at_epoch_end ? " epoch end" : "", st.epoch, st.batch,
           rr.final_loss, rw.final_loss);
    ck_assert_msg(memcmp(resumed.params, whole.params, whole.nparams * sizeof(float)) == 0,
                  "resumed weights differ from the uninterrupted run's");
    ck_assert_int_eq(rr.epochs_done, rw.epochs_done);
    ck_assert_int_eq(rr.steps_done, rw.steps_done);
    for (int e = 0; e < rw.epochs_done; e++) {
        ck_assert_msg(rr.loss[e] == rw.loss[e], "epoch %d loss %.17g vs %.17g", e + 1, rr.loss[e], rw.loss[e]);
        ck_assert_msg(rr.val_loss[e] == rw.val_loss[e], "epoch %d val_loss differs", e + 1);
    }
    rnn_train_state_free(&st);
    rnn_train_result_free(&rw); rnn_train_result_free(&rp); rnn_train_result_free(&rr);
    rnn_model_free(&whole); rnn_model_free(&part); rnn_model_free(&resumed);
    unlink(path);
}

/* 72 training sequences in batches of 8: 9 steps an epoch. */
START_TEST(test_resume_bitwise)
{
    check_resume(1, 1, 4, 0);     /* mid-epoch 1 */
    check_resume(1, 1, 13, 0);    /* mid-epoch 2 */
    check_resume(1, 1, 9, 1);     /* end of epoch 1 */
    check_resume(0, 1, 22, 0);    /* SGD with momentum, epoch 3 */
    check_resume(1, 2, 17, 0);    /* two threads */
    check_resume(ADAM_CONTROLLED, 1, 13, 0);  /* mid-epoch 2, the best weights in the checkpoint */
    check_resume(ADAM_CONTROLLED, 1, 27, 1);  /* end of epoch 3: only the stop is left */
}
END_TEST

START_TEST(test_checkpoint_refused)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/rnnd-ckpt-bad-%d.bin", (int)getpid());
    rnn_model m, other;
    rnn_train_result r;
    stopper s = {5, 0, path, 0};
    ck_assert_int_eq(run(&m, 1, 1, &s, NULL, &r), 2);
    rnn_train_result_free(&r);
    rnn_train_state st;
    rnn_err err;
    ck_assert(rnn_train_state_load(path, &st, &err) == 0);
    /* another run: another seed */
    rnn_dataset d;
    rnn_train_cfg tc;
    setup(&other, &d, &tc, 1, 1);
    tc.seed = 10;
    tc.resume = &st;
    ck_assert_int_eq(rnn_train(&other, &d, &tc, &r, &err), -1);
    ck_assert_msg(strstr(err.msg, "another run"), "%s", err.msg);
    rnn_train_result_free(&r);
    /* too few epochs for where it stands */
    tc.seed = 9;
    tc.epochs = 0;
    ck_assert_int_eq(rnn_train(&other, &d, &tc, &r, &err), -1);
    ck_assert_msg(strstr(err.msg, "epoch 1, batch 5"), "%s", err.msg);
    rnn_train_result_free(&r);
    rnn_dataset_free(&d);
    rnn_train_state_free(&st);
    /* truncated, then one flipped byte */
    FILE *f = fopen(path, "rb");
    ck_assert(f);
    unsigned char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    ck_assert(n > 100 && n < sizeof buf);
    f = fopen(path, "wb");
    fwrite(buf, 1, n - 3, f);
    fclose(f);
    ck_assert_int_eq(rnn_train_state_load(path, &st, &err), -1);
    ck_assert_msg(strstr(err.msg, "truncated"), "%s", err.msg);
    buf[n / 2] ^= 1;
    f = fopen(path, "wb");
    fwrite(buf, 1, n, f);
    fclose(f);
    ck_assert_int_eq(rnn_train_state_load(path, &st, &err), -1);
    ck_assert_msg(strstr(err.msg, "checksum"), "%s", err.msg);
    memcpy(buf, "NOTACKPT", 8);
    f = fopen(path, "wb");
    fwrite(buf, 1, n, f);
    fclose(f);
    ck_assert_int_eq(rnn_train_state_load(path, &st, &err), -1);
    ck_assert_msg(strstr(err.msg, "not an rnnd checkpoint"), "%s", err.msg);
    memcpy(buf, "RNNDCKP1", 8);
    f = fopen(path, "wb");
    fwrite(buf, 1, n, f);
    fclose(f);
    ck_assert_int_eq(rnn_train_state_load(path, &st, &err), -1);
    ck_assert_msg(strstr(err.msg, "another rnnd version"), "%s", err.msg);
    unlink(path);
    rnn_model_free(&m);
    rnn_model_free(&other);
}
END_TEST

Suite *checkpoint_suite(void)
{
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("resume");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_resume_bitwise);
    tcase_add_test(tc, test_checkpoint_refused);
    suite_add_tcase(s, tc);
    return s;
}
