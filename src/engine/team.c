/*
 * DESIGN: data parallelism for one training job. A batch of B sequences is
 * split into contiguous parts, one per thread; each thread gathers its part,
 * runs forward and backward on its own workspace into its own gradient
 * buffer, and the caller (thread 0) sums the parts weighted by their share of
 * the batch:
 *
 *     loss = sum_i (B_i / B) loss_i,   grad = sum_i (B_i / B) grad_i
 *
 * which is the mean over the whole batch, as one thread would compute it, up
 * to float rounding. The split and the order of the sum depend only on B and
 * the thread count, so a given thread count always gives the same bits.
 *
 * Each step is one generation: the caller sets out the parts, bumps `gen`
 * and wakes the workers, runs part 0, and waits until `pending` is zero. oneDNN runs single-threaded in every thread of
 * the team (dnn_thread_init): parallelism over the batch scales better on
 * these shapes than oneDNN's own threads inside one primitive.
 */
#include "internal.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

typedef struct part {
    rnn_ws *ws;
    batch_buf bb;
    float *grads;           /* (nparams) */
    const int *idx;         /* this step's sequences */
    int n;
    double loss;
} part;

struct rnn_team {
    const rnn_model *m;
    const rnn_dataset *d;
    int n;                  /* threads, the caller included */
    int bptt;
    double dropout;         /* of this step, with its seed */
    uint64_t drop_seed;
    part *parts;
    pthread_t *threads;     /* n - 1 workers */
    int started;            /* of them running */
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    unsigned gen;           /* steps set out so far */
    int pending;            /* workers still busy with this step */
    int quit;
};

int rnn_cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    return 1;
}

/* Below this many multiply-adds per step and thread (the recurrent product
 * of every step, G*H*(X+H) per row) handing work out costs more than it saves. */
#define MIN_WORK_PER_THREAD 4000000.0

int rnn_train_threads(const rnn_config *c, int want, int T, int B)
{
    int n = want > 0 ? want : rnn_cpu_count();
    const double work = (double)T * B * rnn_gates(c->cell) * c->hidden * rnn_dirs(c) *
                        (rnn_layer_in(c, 0) + c->hidden + (c->layers - 1.0) * (rnn_layer_in(c, 1) + c->hidden));
    while (n > 1 && (n > B || work / n < MIN_WORK_PER_THREAD))
        n--;
    return n;
}

/* One thread's part of a step. */
static void part_run(const rnn_team *t, part *p)
{
    memset(p->grads, 0, t->m->nparams * sizeof(float));
    if (p->n == 0) {
        p->loss = 0;
        return;
    }
    rnn_batch b;
    gather(t->d, p->idx, p->n, &p->bb, &b);
    rnn_ws_dropout(p->ws, t->dropout, t->drop_seed, p->idx);
    p->loss = rnn_forward(t->m, p->ws, &b);
    if (isfinite(p->loss))
        rnn_backward(t->m, p->ws, &b, t->bptt, p->grads, NULL);
}

typedef struct worker_arg { rnn_team *t; int id; } worker_arg;

static void *worker(void *arg)
{
    rnn_team *t = ((worker_arg *)arg)->t;
    part *p = &t->parts[((worker_arg *)arg)->id];
    free(arg);
    unsigned seen = 0;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        while (t->gen == seen && !t->quit)
            pthread_cond_wait(&t->go, &t->mu);
        if (t->quit)
            break;
        seen = t->gen;
        pthread_mutex_unlock(&t->mu);
        part_run(t, p);
        pthread_mutex_lock(&t->mu);
        if (--t->pending == 0)
            pthread_cond_signal(&t->done);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

void rnn_team_free(rnn_team *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    t->quit = 1;
    pthread_cond_broadcast(&t->go);
    pthread_mutex_unlock(&t->mu);
    for (int i = 0; i < t->started; i++)
        pthread_join(t->threads[i], NULL);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->go);
    pthread_cond_destroy(&t->done);
    for (int i = 0; t->parts && i < t->n; i++) {
        rnn_ws_free(t->parts[i].ws);
        batch_buf_free(&t->parts[i].bb);
        free(t->parts[i].grads);
    }
    free(t->parts);
    free(t->threads);
    free(t);
}

rnn_team *rnn_team_new(const rnn_model *m, const rnn_dataset *d, int threads, int maxT, int maxB,
                       rnn_err *err)
{
    rnn_team *t = rnn_xcalloc(1, sizeof *t);
    if (!t) {
        rnn_fail(err, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->go, NULL);
    pthread_cond_init(&t->done, NULL);
    t->m = m;
    t->d = d;
    t->n = threads < 1 ? 1 : threads;
    const int partB = (maxB + t->n - 1) / t->n;
    t->parts = rnn_xcalloc((size_t)t->n, sizeof *t->parts);
    t->threads = rnn_xcalloc((size_t)t->n, sizeof *t->threads);
    if (!t->parts || !t->threads)
        goto oom;
    for (int i = 0; i < t->n; i++) {
        part *p = &t->parts[i];
        p->ws = rnn_ws_new(&m->cfg, maxT, partB);
        p->grads = rnn_falloc(m->nparams);
        if (!p->ws || !p->grads || batch_buf_init(&p->bb, d, maxT, partB))
            goto oom;
    }
    for (int i = 1; i < t->n; i++) {
        worker_arg *a = malloc(sizeof *a);
        if (!a)
            goto oom;
        a->t = t;
        a->id = i;
        if (pthread_create(&t->threads[t->started], NULL, worker, a)) {
            free(a);
            rnn_fail(err, "cannot start training thread %d of %d", i + 1, t->n);
            rnn_team_free(t);
            return NULL;
        }
        t->started++;
    }
    return t;
oom:
    rnn_fail(err, "out of memory for %d training threads of %d x %d", t->n, maxT, partB);
    rnn_team_free(t);
    return NULL;
}

float *rnn_team_grads(rnn_team *t) { return t->parts[0].grads; }

double rnn_team_step(rnn_team *t, const int *idx, int B, int bptt, double dropout, uint64_t seed)
{
    /* part i: B / n sequences, one more for the first B % n */
    const int base = B / t->n, extra = B % t->n;
    int off = 0;
    for (int i = 0; i < t->n; i++) {
        part *p = &t->parts[i];
        p->idx = idx + off;
        p->n = base + (i < extra);
        off += p->n;
    }
    t->bptt = bptt;
    t->dropout = dropout;
    t->drop_seed = seed;
    pthread_mutex_lock(&t->mu);
    t->gen++;
    t->pending = t->started;
    pthread_cond_broadcast(&t->go);
    pthread_mutex_unlock(&t->mu);
    part_run(t, &t->parts[0]);
    pthread_mutex_lock(&t->mu);
    while (t->pending > 0)
        pthread_cond_wait(&t->done, &t->mu);
    pthread_mutex_unlock(&t->mu);

    double loss = 0;
    int finite = 1;
    for (int i = 0; i < t->n; i++) {
        loss += t->parts[i].loss * t->parts[i].n / B;
        finite = finite && isfinite(t->parts[i].loss);
    }
    if (!finite || t->n == 1)
        return finite ? loss : NAN;
    const size_t np = t->m->nparams;
    float *g = t->parts[0].grads;
    const float w0 = (float)t->parts[0].n / (float)B;
    for (size_t j = 0; j < np; j++)
        g[j] *= w0;
    for (int i = 1; i < t->n; i++) {
        const float wi = (float)t->parts[i].n / (float)B;
        const float *gi = t->parts[i].grads;
        for (size_t j = 0; j < np; j++)
            g[j] += wi * gi[j];
    }
    return loss;
}
