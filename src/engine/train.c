/*
 * The trainer: minibatches of equal-length sequences, optional shuffling and
 * a validation split, gradient clipping, an optimizer step per batch, and a
 * progress callback after every step (the daemon streams loss and cancels
 * jobs through it). Each epoch takes its learning rate from the schedule
 * and, with early stopping, the run ends once the monitored loss has not
 * improved for `patience` epochs, keeping the best epoch's weights (both
 * read the loss history: sched.c). A non-finite loss or gradient stops
 * training with the epoch and step named, and the weights of the last good
 * step restored.
 */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void rnn_train_result_free(rnn_train_result *r)
{
    free(r->loss);
    free(r->val_loss);
    free(r->accuracy);
    free(r->val_accuracy);
    r->loss = r->val_loss = r->accuracy = r->val_accuracy = NULL;
}

/* Does the data fit the model? Names the first mismatch. */
static int dataset_check(const rnn_dataset *d, const rnn_config *c, rnn_err *err)
{
    if (d->n < 1)
        return rnn_fail(err, "data: no sequences");
    if (d->task != c->task)
        return rnn_fail(err, "task: the data is for %s, the model is %s",
                        rnn_task_name(d->task), rnn_task_name(c->task));
    if (d->mode != c->mode)
        return rnn_fail(err, "mode: the data is %s, the model is %s",
                        rnn_mode_name(d->mode), rnn_mode_name(c->mode));
    if (rnn_token_input(c)) {
        if (!d->tok)
            return rnn_fail(err, "data: the model takes tokens, the data is numeric");
    } else if (!d->x || d->X != c->input_size) {
        return rnn_fail(err, "input_size: the model takes %d features per step, the data has %d",
                        c->input_size, d->X);
    }
    if (c->task == RNN_TASK_REGRESSION && d->O != c->output_size)
        return rnn_fail(err, "output_size: the model predicts %d values, the targets have %d",
                        c->output_size, d->O);
    size_t steps = 0;
    for (int i = 0; i < d->n; i++) {
        if (d->len[i] < 1)
            return rnn_fail(err, "data.sequences[%d]: empty sequence", i);
        steps += (size_t)d->len[i];
    }
    if (d->tok)
        for (size_t i = 0; i < steps; i++)
            if (d->tok[i] < 0 || d->tok[i] >= c->input_size)
                return rnn_fail(err, "data: token %d out of range [0, %d)", d->tok[i], c->input_size);
    if (d->cls) {
        size_t nt = c->mode == RNN_MODE_MANY_TO_MANY ? steps : (size_t)d->n;
        for (size_t i = 0; i < nt; i++)
            if (d->cls[i] < 0 || d->cls[i] >= c->output_size)
                return rnn_fail(err, "data.targets: class %d out of range [0, %d)", d->cls[i],
                                c->output_size);
    }
    return 0;
}

static void shuffle_ints(int *a, int n, rnn_rng *rng)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rnn_rng_below(rng, (uint64_t)i + 1);
        int t = a[i]; a[i] = a[j]; a[j] = t;
    }
}

static int max_len(const rnn_dataset *d, const int *idx, int n)
{
    int m = 1;
    for (int i = 0; i < n; i++)
        if (d->len[idx[i]] > m) m = d->len[idx[i]];
    return m;
}

/* Mean loss of the sequences (all if idx_in is NULL) and, for a
 * classifier, into *acc (if not NULL) the fraction whose likeliest class is
 * their target. */
static double evaluate(const rnn_model *m, const rnn_dataset *d, const int *idx_in, int n, int batch,
                       double *acc)
{
    long right = 0, seen = 0;
    if (!idx_in) n = d->n;
    if (n < 1 || batch < 1)
        return NAN;
    int *idx = malloc((size_t)n * sizeof(int));
    keyed *tmp = malloc((size_t)n * sizeof(keyed));
    int *start = malloc((size_t)n * sizeof(int)), *count = malloc((size_t)n * sizeof(int));
    double total = NAN, weight = 0;
    batch_buf bb;
    memset(&bb, 0, sizeof bb);
    rnn_ws *ws = NULL;
    if (!idx || !tmp || !start || !count)
        goto out;
    for (int i = 0; i < n; i++) idx[i] = idx_in ? idx_in[i] : i;
    const int maxT = max_len(d, idx, n);
    ws = rnn_ws_new_inference(&m->cfg, maxT, batch);
    if (!ws || batch_buf_init(&bb, d, maxT, batch))
        goto out;
    const int nb = make_batches(d, idx, n, batch, tmp, start, count);
    total = 0;
    for (int k = 0; k < nb; k++) {
        rnn_batch b;
        gather(d, idx + start[k], count[k], &bb, &b);
        double w = batch_weight(d, b.T, b.B);
        total += rnn_forward(m, ws, &b) * w;
        weight += w;
        if (acc && d->task == RNN_TASK_CLASSIFY) {
            const int O = m->cfg.output_size;
            const float *o = rnn_ws_outputs(ws);
            for (int i = 0; i < b.B; i++, seen++) {
                int best = 0;
                for (int j = 1; j < O; j++)
                    if (o[(size_t)i * O + j] > o[(size_t)i * O + best]) best = j;
                right += best == b.cls[i];
            }
        }
    }
    total /= weight;
    if (acc)
        *acc = seen ? (double)right / (double)seen : NAN;
out:
    rnn_ws_free(ws);
    batch_buf_free(&bb);
    free(idx); free(tmp); free(start); free(count);
    return total;
}

/* Takes a resume state into the run: the weights, the optimizer's moments
 * and step, the losses so far and where in which epoch to go on. */
double rnn_evaluate(const rnn_model *m, const rnn_dataset *d, const int *idx, int n, int batch)
{
    return evaluate(m, d, idx, n, batch, NULL);
}

static int resume_from(const rnn_train_state *r, rnn_train_state *st, rnn_optim *opt, int nb,
                       int epochs, rnn_err *err)
{
    if (r->fingerprint != st->fingerprint || r->nparams != st->nparams || !r->params || !r->m ||
        (r->v != NULL) != (opt->v != NULL) || (r->best != NULL) != (st->best != NULL))
        return rnn_fail(err, "resume: the checkpoint is of another run (its data, settings, "
                             "model or thread count differ)");
    if (r->epochs_done > epochs || r->epochs_done != r->epoch - 1 || r->batch < 0 ||
        r->batch > nb || (r->epoch > epochs && r->batch > 0))
        return rnn_fail(err, "resume: the checkpoint is at epoch %d, batch %d; this run has "
                             "%d epochs of %d batches", r->epoch, r->batch, epochs, nb);
    memcpy(st->params, r->params, r->nparams * sizeof(float));
    memcpy(opt->m, r->m, r->nparams * sizeof(float));
    if (opt->v)
        memcpy(opt->v, r->v, r->nparams * sizeof(float));
    if (st->best)
        memcpy(st->best, r->best, r->nparams * sizeof(float));
    opt->step = r->optim_step;
    for (int i = 0; i < r->epochs_done; i++) {
        st->loss[i] = r->loss[i];
        st->val_loss[i] = r->val_loss[i];
    }
    st->epoch = r->epoch;
    st->batch = r->batch;
    st->step = r->step;
    st->rng = r->rng;
    st->sum = r->sum;
    st->weight = r->weight;
    st->epochs_done = r->epochs_done;
    st->optim_step = r->optim_step;
    return 0;
}

int rnn_train_fits(const rnn_config *c, const rnn_train_cfg *t, rnn_err *err)
{
    if (!(t->dropout >= 0 && t->dropout < 1))
        return rnn_fail(err, "dropout: must be at least 0 and below 1, got %g", t->dropout);
    if (t->dropout > 0 && c->layers < 2)
        return rnn_fail(err, "dropout: acts between stacked layers, and the model has 1 layer "
                             "(set \"layers\": 2 or more)");
    if (c->bidirectional && t->bptt > 0)
        return rnn_fail(err, "bptt: a bidirectional model reads each sequence whole, so it "
                             "trains with full backpropagation (bptt 0), got %d", t->bptt);
    return 0;
}

/* Ranks a step is split over: cfg->ranks with a way to sum, else 1. */
static int ranks_of(const rnn_train_cfg *cfg) { return cfg->ranks > 1 && cfg->allreduce ? cfg->ranks : 1; }

/* One step of the global batch idx (n sequences) into grads, its mean loss
 * returned (NaN if any rank's is not finite). Over R ranks, rank r runs its
 * share n_r through the team (the first n % R ranks take one more, as the
 * team splits among threads), and the ranks sum
 *
 *     grad = sum_r (n_r / n) grad_r,   loss = sum_r (n_r / n) loss_r
 *
 * the mean over the whole batch, so R ranks of one thread give what one
 * process of R threads gives. */
static double global_step(rnn_team *team, const rnn_train_cfg *cfg, const int *idx, int n,
                          uint64_t drop_seed, float *grads, size_t np)
{
    const int R = ranks_of(cfg), r = cfg->rank;
    if (R == 1)
        return rnn_team_step(team, idx, n, cfg->bptt, cfg->dropout, drop_seed);
    const int base = n / R, extra = n % R;
    const int off = r * base + (r < extra ? r : extra), mine = base + (r < extra);
    double loss = 0;
    if (mine > 0)
        loss = rnn_team_step(team, idx + off, mine, cfg->bptt, cfg->dropout, drop_seed);
    else
        memset(grads, 0, np * sizeof(float));
    const float w = (float)mine / (float)n;
    for (size_t j = 0; j < np; j++)
        grads[j] *= w;
    /* the weighted loss, and how many ranks had a non-finite one */
    double s[2] = {isfinite(loss) ? loss * mine / n : 0, isfinite(loss) ? 0 : 1};
    if (cfg->allreduce(cfg->allreduce_ud, grads, np, s, 2))
        return NAN;
    return s[1] > 0 ? NAN : s[0];
}

int rnn_train(rnn_model *m, const rnn_dataset *d, const rnn_train_cfg *cfg,
              rnn_train_result *res, rnn_err *err)
{
    memset(res, 0, sizeof *res);
    res->final_loss = res->final_val_loss = NAN;
    if (dataset_check(d, &m->cfg, err))
        return -1;
    if (cfg->epochs < 0 || cfg->batch < 1)
        return rnn_fail(err, "%s", cfg->batch < 1 ? "batch: must be at least 1" : "epochs: must be >= 0");
    if (!(cfg->validation >= 0 && cfg->validation < 1))
        return rnn_fail(err, "validation: must be in [0, 1), got %g", cfg->validation);
    if (rnn_train_fits(&m->cfg, cfg, err))
        return -1;
    m->cfg.dropout = cfg->dropout; /* the model file records it */

    const double t0 = now_seconds();
    int rc = -1;
    const int n = d->n;
    int nval = (int)floor(n * cfg->validation);
    if (cfg->validation > 0 && nval == 0 && n >= 2) nval = 1;
    const int ntrain = n - nval;
    if (ntrain < 1)
        return rnn_fail(err, "validation: leaves no sequences to train on (%d in all)", n);

    rnn_rng rng;
    rnn_rng_seed(&rng, cfg->seed ^ 0x5eed5a17c0ffee00ULL);
    int *all = malloc((size_t)n * sizeof(int));
    keyed *tmp = malloc((size_t)n * sizeof(keyed));
    int *start = malloc((size_t)n * sizeof(int)), *count = malloc((size_t)n * sizeof(int));
    int *order = malloc((size_t)n * sizeof(int));
    float *good = rnn_falloc(m->nparams);
    const int early = cfg->early.patience > 0;
    float *best = early ? rnn_falloc(m->nparams) : NULL;
    rnn_optim opt;
    memset(&opt, 0, sizeof opt);
    rnn_team *team = NULL;
    res->loss = rnn_xcalloc((size_t)cfg->epochs, sizeof(double));
    res->val_loss = rnn_xcalloc((size_t)cfg->epochs, sizeof(double));
    if (d->task == RNN_TASK_CLASSIFY) {
        res->accuracy = rnn_xcalloc((size_t)cfg->epochs, sizeof(double));
        res->val_accuracy = rnn_xcalloc((size_t)cfg->epochs, sizeof(double));
        for (int e = 0; res->accuracy && res->val_accuracy && e < cfg->epochs; e++)
            res->accuracy[e] = res->val_accuracy[e] = NAN; /* epochs done before a resume */
    }
    if (!all || !tmp || !start || !count || !order || !good || (early && !best) || !res->loss ||
        !res->val_loss) {
        rnn_fail(err, "out of memory for training");
        goto out;
    }
    for (int i = 0; i < n; i++) all[i] = i;
    /* a series' windows overlap: validation takes the last ones in time,
     * whose targets no training window has seen */
    const int last = cfg->val_split == RNN_VAL_LAST || (cfg->val_split == RNN_VAL_AUTO && d->in_time);
    if (nval > 0 && !last)
        shuffle_ints(all, n, &rng);
    /* all[0..ntrain) train, all[ntrain..n) validation, each in data order */
    const int *val = all + ntrain;
    const int maxT = max_len(d, all, ntrain);
    const int B = cfg->batch < ntrain ? cfg->batch : ntrain;
    /* this rank's share of a batch: at most ceil(B / ranks) */
    const int myB = (B + ranks_of(cfg) - 1) / ranks_of(cfg);
    res->threads = rnn_train_threads(&m->cfg, cfg->threads, maxT, myB);
    team = rnn_team_new(m, d, res->threads, maxT, myB, err);
    if (!team)
        goto out;
    float *grads = rnn_team_grads(team);
    if (rnn_optim_init(&opt, &cfg->optim, m->nparams, err))
        goto out;

    /* batches per epoch do not depend on the shuffle: count them once */
    memcpy(order, all, (size_t)ntrain * sizeof(int));
    const int nb = make_batches(d, order, ntrain, B, tmp, start, count);
    const long steps = (long)nb * cfg->epochs;
    int *border = malloc((size_t)nb * sizeof(int));
    if (!border) {
        rnn_fail(err, "out of memory");
        goto out;
    }

    rnn_progress pr;
    memset(&pr, 0, sizeof pr);
    pr.epochs = cfg->epochs;
    pr.steps = steps;
    pr.val_loss = NAN;
    /* the state a checkpoint is written from: the trainer's own buffers */
    rnn_train_state st = {.fingerprint = rnn_train_fingerprint(d, cfg, res->threads),
                          .epoch = 1, .nparams = m->nparams, .params = m->params,
                          .m = opt.m, .v = opt.v, .best = best, .loss = res->loss,
                          .val_loss = res->val_loss};
    /* the loss schedules and early stopping watch */
    const double *watched = nval > 0 ? res->val_loss : res->loss;
    if (cfg->resume && resume_from(cfg->resume, &st, &opt, nb, cfg->epochs, err))
        goto out_border;
    memcpy(good, m->params, m->nparams * sizeof(float));
    pr.step = st.step;
    pr.epoch = st.epochs_done;
    res->epochs_done = st.epochs_done;
    if (st.epochs_done > 0) {
        res->final_loss = res->loss[st.epochs_done - 1];
        res->final_val_loss = res->val_loss[st.epochs_done - 1];
    }
    if (!cfg->resume)
        st.rng = rng;
    rc = 0;
    for (int ep = st.epoch; ep <= cfg->epochs && rc == 0; ep++) {
        int waited = 0;
        if (early && rnn_early_best(&cfg->early, watched, ep - 1, &waited) >= 0 &&
            waited >= cfg->early.patience) {
            res->stopped_early = 1;
            break;
        }
        opt.cfg.lr = pr.lr = rnn_sched_lr(&cfg->sched, cfg->optim.lr, ep - 1, watched);
        /* st holds the generator at this epoch's start: a resumed epoch
         * replays the same shuffles, then skips the batches it has done */
        rng = st.rng;
        memcpy(order, all, (size_t)ntrain * sizeof(int));
        if (cfg->shuffle)
            shuffle_ints(order, ntrain, &rng);
        make_batches(d, order, ntrain, B, tmp, start, count);
        for (int k = 0; k < nb; k++) border[k] = k;
        if (cfg->shuffle)
            shuffle_ints(border, nb, &rng);
        double sum = st.sum, weight = st.weight;
        for (int kk = st.batch; kk < nb; kk++) {
            const int k = border[kk];
            /* every step's dropout masks from its own seed: the same on a resume */
            const uint64_t drop_seed = cfg->seed ^ (0xd50b0a7ULL * (uint64_t)(pr.step + 1));
            const double loss = global_step(team, cfg, order + start[k], count[k], drop_seed,
                                            grads, m->nparams);
            if (!isfinite(loss)) {
                rnn_fail(err, "training diverged: loss is %s at epoch %d, step %ld",
                         isnan(loss) ? "NaN" : "infinite", ep, pr.step + 1);
                rc = -1;
                break;
            }
            double norm = cfg->clip > 0 ? rnn_clip_grad(grads, m->nparams, cfg->clip)
                                        : rnn_grad_norm(grads, m->nparams);
            if (!isfinite(norm)) {
                rnn_fail(err, "training diverged: gradient is not finite at epoch %d, step %ld",
                         ep, pr.step + 1);
                rc = -1;
                break;
            }
            memcpy(good, m->params, m->nparams * sizeof(float));
            rnn_optim_step(&opt, m->params, grads);
            const double w = batch_weight(d, d->len[order[start[k]]], count[k]);
            sum += loss * w;
            weight += w;
            pr.epoch = ep;
            pr.step++;
            pr.loss = loss;
            pr.epoch_end = 0;
            pr.elapsed = now_seconds() - t0;
            const int next = cfg->progress ? cfg->progress(cfg->progress_ud, &pr) : RNN_TRAIN_GO;
            if (next == RNN_TRAIN_CHECKPOINT || next == RNN_TRAIN_SUSPEND) {
                st.batch = kk + 1;
                st.step = pr.step;
                st.sum = sum;
                st.weight = weight;
                st.optim_step = opt.step;
                if (cfg->checkpoint)
                    cfg->checkpoint(cfg->progress_ud, &st);
            }
            if (next == RNN_TRAIN_CANCEL || next == RNN_TRAIN_SUSPEND) {
                rc = next == RNN_TRAIN_CANCEL ? 1 : 2;
                break;
            }
        }
        if (rc != 0)
            break;
        /* an update may itself overflow: check the weights before the epoch counts */
        int finite = 1;
        for (size_t i = 0; i < m->nparams && finite; i++)
            finite = isfinite(m->params[i]);
        if (!finite) {
            rnn_fail(err, "training diverged: weights are not finite after epoch %d, step %ld",
                     ep, pr.step);
            memcpy(m->params, good, m->nparams * sizeof(float));
            rc = -1;
            break;
        }
        res->loss[ep - 1] = sum / weight;
        double val_acc = NAN, train_acc = NAN;
        res->val_loss[ep - 1] = nval > 0 ? evaluate(m, d, val, nval, B, &val_acc) : NAN;
        /* a classifier's accuracy: one more pass over the training set */
        if (d->task == RNN_TASK_CLASSIFY)
            evaluate(m, d, all, ntrain, B, &train_acc);
        if (res->accuracy) {
            res->accuracy[ep - 1] = train_acc;
            res->val_accuracy[ep - 1] = val_acc;
        }
        res->epochs_done = ep;
        res->final_loss = res->loss[ep - 1];
        res->final_val_loss = res->val_loss[ep - 1];
        pr.epoch = ep;
        pr.epoch_end = 1;
        pr.epoch_loss = res->loss[ep - 1];
        pr.val_loss = res->val_loss[ep - 1];
        pr.accuracy = train_acc;
        pr.val_accuracy = val_acc;
        pr.elapsed = now_seconds() - t0;
        if (early) {
            pr.best_epoch = rnn_early_best(&cfg->early, watched, ep, NULL) + 1;
            if (pr.best_epoch == ep)
                memcpy(best, m->params, m->nparams * sizeof(float));
        }
        /* every epoch end is a checkpoint: the next epoch from its start */
        st.epoch = ep + 1;
        st.batch = 0;
        st.step = pr.step;
        st.rng = rng;
        st.sum = st.weight = 0;
        st.epochs_done = ep;
        st.optim_step = opt.step;
        if (cfg->checkpoint)
            cfg->checkpoint(cfg->progress_ud, &st);
        const int next = cfg->progress ? cfg->progress(cfg->progress_ud, &pr) : RNN_TRAIN_GO;
        if (next == RNN_TRAIN_CANCEL || (next == RNN_TRAIN_SUSPEND && ep < cfg->epochs))
            rc = next == RNN_TRAIN_CANCEL ? 1 : 2;
    }
    if (rc == -1 && pr.step > 0) {
        /* the failing step's update never landed, but the previous one may
         * have produced the non-finite values: go back to the last good copy */
        int finite = 1;
        for (size_t i = 0; i < m->nparams && finite; i++)
            finite = isfinite(m->params[i]);
        if (!finite)
            memcpy(m->params, good, m->nparams * sizeof(float));
    }
    if (rc == 0 && early && res->epochs_done > 0) {
        /* the best epoch's weights are the result, with its losses */
        const int b = rnn_early_best(&cfg->early, watched, res->epochs_done, NULL);
        memcpy(m->params, best, m->nparams * sizeof(float));
        res->best_epoch = b + 1;
        res->final_loss = res->loss[b];
        res->final_val_loss = res->val_loss[b];
    }
    res->steps_done = pr.step;
out_border:
    free(border);
out:
    res->seconds = now_seconds() - t0;
    rnn_team_free(team);
    rnn_optim_free(&opt);
    free(all); free(tmp); free(start); free(count); free(order); free(good); free(best);
    return rc;
}
