/*
 * Training checkpoints: the rnn_train_state of a run, in a file that can be
 * trusted after a crash. The layout is little-endian, fixed-width:
 *
 *   "RNNDCKP2"  fingerprint  epoch batch step  rng[4]  sum weight
 *   epochs_done has_v optim_step nparams has_best
 *   loss[epochs_done] val_loss[epochs_done]  (f64)
 *   params[nparams] m[nparams] v[nparams if has_v] best[nparams if has_best]  (f32)
 *   checksum  (FNV-1a 64 of every byte before it)
 *
 * Doubles and floats are stored as their bits, so a resumed run starts from
 * exactly the numbers the interrupted one had. Files are replaced through
 * rnn_file_replace, so a checkpoint is the old one or the new one, whole.
 */
#include "rnn/io.h"
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char MAGIC[8] = {'R', 'N', 'N', 'D', 'C', 'K', 'P', '2'};

/* FNV-1a 64: h = (h ^ byte) * 0x100000001b3, from 0xcbf29ce484222325 */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ c[i]) * 0x100000001b3ULL;
    return h;
}
#define FNV0 0xcbf29ce484222325ULL

uint64_t rnn_train_fingerprint(const rnn_dataset *d, const rnn_train_cfg *c, int threads)
{
    size_t steps = 0;
    for (int i = 0; i < d->n; i++)
        steps += (size_t)d->len[i];
    const size_t targets = d->mode == RNN_MODE_MANY_TO_MANY ? steps : (size_t)d->n;
    const int32_t shape[] = {d->n, d->X, d->O, (int32_t)d->task, (int32_t)d->mode, threads,
                             c->batch, c->shuffle, c->bptt, (int32_t)c->optim.kind,
                             c->optim.nesterov};
    const double knobs[] = {c->validation, c->clip, c->optim.lr, c->optim.momentum,
                            c->optim.weight_decay, c->optim.beta1, c->optim.beta2, c->optim.eps,
                            c->sched.kind, c->sched.step_size, c->sched.gamma, c->sched.t_max,
                            c->sched.eta_min, c->sched.factor, c->sched.patience,
                            c->sched.threshold, c->sched.cooldown, c->sched.min_lr,
                            c->early.patience, c->early.min_delta, c->val_split, d->in_time};
    uint64_t h = fnv(FNV0, shape, sizeof shape);
    h = fnv(h, knobs, sizeof knobs);
    h = fnv(h, &c->seed, sizeof c->seed);
    if (c->dropout > 0) /* so checkpoints of runs without it keep their fingerprint */
        h = fnv(h, &c->dropout, sizeof c->dropout);
    if (c->ranks > 1) /* the same: a process's checkpoint fits one process */
        h = fnv(h, &c->ranks, sizeof c->ranks);
    h = fnv(h, d->len, (size_t)d->n * sizeof *d->len);
    if (d->x) h = fnv(h, d->x, steps * (size_t)d->X * sizeof *d->x);
    if (d->tok) h = fnv(h, d->tok, steps * sizeof *d->tok);
    if (d->y) h = fnv(h, d->y, targets * (size_t)d->O * sizeof *d->y);
    if (d->cls) h = fnv(h, d->cls, targets * sizeof *d->cls);
    return h;
}

/* The fixed-width head of the file, after the magic. */
typedef struct head {
    uint64_t fingerprint;
    int64_t epoch, batch, step;
    uint64_t rng[4];
    double sum, weight;
    int64_t epochs_done, has_v, optim_step;
    uint64_t nparams;
    int64_t has_best;
} head;

int rnn_train_state_save(const char *path, const rnn_train_state *st, rnn_err *err)
{
    head h = {st->fingerprint, st->epoch, st->batch, st->step,
              {st->rng.s[0], st->rng.s[1], st->rng.s[2], st->rng.s[3]},
              st->sum, st->weight, st->epochs_done, st->v != NULL, st->optim_step, st->nparams,
              st->best != NULL};
    const size_t nl = (size_t)st->epochs_done * sizeof(double), np = st->nparams * sizeof(float);
    rnn_span parts[9] = {{MAGIC, sizeof MAGIC}, {&h, sizeof h}, {st->loss, nl},
                         {st->val_loss, nl}, {st->params, np}, {st->m, np}, {st->v, st->v ? np : 0},
                         {st->best, st->best ? np : 0}};
    uint64_t sum = FNV0;
    for (int i = 0; i < 8; i++)
        if (parts[i].n) sum = fnv(sum, parts[i].p, parts[i].n);
    parts[8] = (rnn_span){&sum, sizeof sum};
    return rnn_file_replace(path, parts, 9, err);
}

void rnn_train_state_free(rnn_train_state *st)
{
    free(st->loss);
    free(st->val_loss);
    free(st->params);
    free(st->m);
    free(st->v);
    free(st->best);
    memset(st, 0, sizeof *st);
}

/* Copies n bytes from the file into a new buffer, NULL when n is 0. */
static void *take(const unsigned char **p, size_t n, int *oom)
{
    if (!n)
        return NULL;
    void *q = malloc(n);
    if (q) memcpy(q, *p, n);
    else *oom = 1;
    *p += n;
    return q;
}

int rnn_train_state_load(const char *path, rnn_train_state *st, rnn_err *err)
{
    memset(st, 0, sizeof *st);
    size_t len;
    unsigned char *buf = rnn_file_read(path, (size_t)1 << 40, &len, err);
    if (!buf)
        return -1;
    int rc = -1;
    head h;
    const size_t fixed = sizeof MAGIC + sizeof h + sizeof(uint64_t);
    if (len >= sizeof MAGIC && !memcmp(buf, MAGIC, sizeof MAGIC - 1) && buf[sizeof MAGIC - 1] != MAGIC[7]) {
        rnn_fail(err, "%s: a checkpoint of another rnnd version (format %c, this one reads %c)",
                 path, buf[sizeof MAGIC - 1], MAGIC[7]);
        goto out;
    }
    if (len < fixed || memcmp(buf, MAGIC, sizeof MAGIC)) {
        rnn_fail(err, "%s: not an rnnd checkpoint", path);
        goto out;
    }
    memcpy(&h, buf + sizeof MAGIC, sizeof h);
    /* the sizes the head promises must be what the file holds */
    const double want = fixed + 2.0 * (double)h.epochs_done * sizeof(double) +
                        (2.0 + (h.has_v != 0) + (h.has_best != 0)) * (double)h.nparams * sizeof(float);
    if (h.epochs_done < 0 || h.epochs_done > INT32_MAX || h.nparams > ((uint64_t)1 << 40) ||
        want != (double)len) {
        rnn_fail(err, "%s: truncated or corrupt checkpoint (%zu bytes)", path, len);
        goto out;
    }
    uint64_t sum;
    memcpy(&sum, buf + len - sizeof sum, sizeof sum);
    if (fnv(FNV0, buf, len - sizeof sum) != sum) {
        rnn_fail(err, "%s: checkpoint checksum does not match: the file is corrupt", path);
        goto out;
    }
    st->fingerprint = h.fingerprint;
    st->epoch = (int)h.epoch;
    st->batch = (int)h.batch;
    st->step = (long)h.step;
    memcpy(st->rng.s, h.rng, sizeof h.rng);
    st->sum = h.sum;
    st->weight = h.weight;
    st->epochs_done = (int)h.epochs_done;
    st->optim_step = (long)h.optim_step;
    st->nparams = (size_t)h.nparams;
    const unsigned char *p = buf + sizeof MAGIC + sizeof h;
    const size_t nl = (size_t)h.epochs_done * sizeof(double), np = st->nparams * sizeof(float);
    int oom = 0;
    st->loss = take(&p, nl, &oom);
    st->val_loss = take(&p, nl, &oom);
    st->params = take(&p, np, &oom);
    st->m = take(&p, np, &oom);
    st->v = h.has_v ? take(&p, np, &oom) : NULL;
    st->best = h.has_best ? take(&p, np, &oom) : NULL;
    if (oom) {
        rnn_train_state_free(st);
        rnn_fail(err, "%s: out of memory", path);
        goto out;
    }
    rc = 0;
out:
    free(buf);
    return rc;
}
