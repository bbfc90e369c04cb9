/*
 * Dynamic batching (DESIGN.md, "Serving at speed"): predictions run on
 * `predict_workers` threads of their own, and concurrent ones for the same
 * model version run together as one batched pass.
 *
 * An HTTP thread parses a /predict body, finds the model, queues a job and
 * suspends the connection (libmicrohttpd keeps serving its other
 * connections meanwhile, /healthz included). A worker takes the oldest job
 * and every other queued job for the same model version, up to
 * `batch_max`; with `batch_delay_us` > 0 it first waits that long for
 * company while the batch is not full (by default it takes only what is
 * already waiting, so a lone request never waits). rnn_predict_many runs
 * the batch (requests asking for the same pass share it) and each job gets
 * its own reply, equal to the unbatched one. The worker then resumes the
 * connections, whose next callback sends the reply (batch_answer).
 *
 * Predictions that cannot share a pass ("sequences", text generation) go
 * through the same queue as batches of one, so no prediction holds an HTTP
 * thread. Steps of streaming sessions go through it too: requests to
 * different sessions of one model version run together (rnn_stream_many
 * gathers their states into the rows of one pass and scatters them back),
 * each session locked meanwhile, in address order. A job belongs to its request; the worker writes its reply and
 * resumes the connection, after which it does not touch the job again.
 */
#include "http.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct pjob {
    struct MHD_Connection *c;
    cJSON *body;
    served_model *model;    /* a reference, but for a session's (which holds one) */
    session *sess;          /* a session step: a reference */
    double queued;          /* rnnd_clock() */
    atomic_int done;
    rnn_reply out;
    pjob *next;
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t more;
    pjob *head, **tail;
    int quit;
    int nthreads;
    pthread_t *threads;
} B = {.mu = PTHREAD_MUTEX_INITIALIZER, .more = PTHREAD_COND_INITIALIZER};

static int same_model(const pjob *a, const pjob *b) { return a->model == b->model; }

enum { ALONE, PREDICTION, SESSION };

static int kind_of(const pjob *j)
{
    return j->sess ? SESSION : rnn_predict_batchable(&j->model->m, j->body) ? PREDICTION : ALONE;
}

/* Is j's session already in the batch? Its steps wait for the next one. */
static int in_batch(pjob *const *batch, int n, const pjob *j)
{
    for (int i = 0; j->sess && i < n; i++)
        if (batch[i]->sess == j->sess) return 1;
    return 0;
}

/* Takes the oldest job and up to batch_max - 1 more of its kind and model
 * version off the queue (B.mu held), keeping the others in order. */
static int take(pjob **batch, int max)
{
    int n = 0;
    pjob *first = B.head;
    const int kind = kind_of(first), alone = kind == ALONE;
    for (pjob **p = &B.head; *p && n < max;) {
        pjob *j = *p;
        if (j == first || (!alone && same_model(j, first) && kind_of(j) == kind &&
                           !in_batch(batch, n, j))) {
            *p = j->next;
            batch[n++] = j;
            if (alone)
                break;
        } else {
            p = &j->next;
        }
    }
    B.tail = &B.head;
    while (*B.tail) B.tail = &(*B.tail)->next;
    return n;
}

static int by_address(const void *a, const void *b)
{
    const uintptr_t x = (uintptr_t)(*(pjob *const *)a)->sess, y = (uintptr_t)(*(pjob *const *)b)->sess;
    return (x > y) - (x < y);
}

/* Session steps: each reply as /sessions/ID gives it. */
static void run_sessions(pjob **batch, int n, rnn_predictor *p, const rnn_limits *lim)
{
    served_model *s = batch[0]->model;
    qsort(batch, (size_t)n, sizeof *batch, by_address);
    rnn_stream **st = malloc((size_t)n * sizeof *st);
    const cJSON **reqs = malloc((size_t)n * sizeof *reqs);
    cJSON **replies = malloc((size_t)n * sizeof *replies);
    int *status = malloc((size_t)n * sizeof *status);
    rnn_err *errs = malloc((size_t)n * sizeof *errs);
    if (!st || !reqs || !replies || !status || !errs) {
        for (int i = 0; i < n; i++) {
            batch[i]->out = (rnn_reply){.status = 503};
            snprintf(batch[i]->out.msg, sizeof batch[i]->out.msg, "out of memory");
        }
        goto done;
    }
    for (int i = 0; i < n; i++) {
        session_lock(batch[i]->sess);
        st[i] = session_stream(batch[i]->sess);
        reqs[i] = batch[i]->body;
        replies[i] = cJSON_CreateObject();
        cJSON_AddStringToObject(replies[i], "model", s->name);
        cJSON_AddNumberToObject(replies[i], "version", (double)s->version);
    }
    rnn_stream_many(p, st, &s->m, &s->meta, reqs, n, lim, replies, status, errs);
    for (int i = 0; i < n; i++) {
        session_unlock(batch[i]->sess);
        rnn_reply *o = &batch[i]->out;
        o->status = status[i];
        if (status[i] == 200) {
            cJSON_AddStringToObject(replies[i], "session", session_id(batch[i]->sess));
            cJSON_AddNumberToObject(replies[i], "position", (double)session_position(batch[i]->sess));
            if ((o->text = json_text(replies[i])))
                o->len = strlen(o->text);
            else
                o->status = 503, snprintf(o->msg, sizeof o->msg, "out of memory");
        } else {
            cJSON_Delete(replies[i]);
            snprintf(o->msg, sizeof o->msg, "%s", errs[i].msg);
        }
    }
done:
    free(st);
    free(reqs);
    free(replies);
    free(status);
    free(errs);
}

static void run(pjob **batch, int n)
{
    served_model *s = batch[0]->model;
    rnn_predictor *p = thread_predictor();
    const rnn_limits lim = predict_limits();
    const double now = rnnd_clock();
    for (int i = 0; i < n; i++) metrics_queue(now - batch[i]->queued);
    if (!p) {
        for (int i = 0; i < n; i++) {
            batch[i]->out = (rnn_reply){.status = 503};
            snprintf(batch[i]->out.msg, sizeof batch[i]->out.msg, "out of memory");
        }
    } else if (batch[0]->sess) {
        run_sessions(batch, n, p, &lim);
    } else if (n == 1 && !rnn_predict_batchable(&s->m, batch[0]->body)) {
        rnn_reply *o = &batch[0]->out;
        rnn_err err;
        if (rnn_predict_json(p, &s->m, &s->meta, s->name, s->version, batch[0]->body, &lim,
                             &o->text, &o->len, &o->status, &err))
            snprintf(o->msg, sizeof o->msg, "%s", err.msg);
    } else {
        const cJSON **reqs = malloc((size_t)n * sizeof *reqs);
        rnn_reply *outs = malloc((size_t)n * sizeof *outs);
        if (reqs && outs) {
            for (int i = 0; i < n; i++) reqs[i] = batch[i]->body;
            rnn_predict_many(p, &s->m, &s->meta, s->name, s->version, reqs, n, &lim, outs);
            for (int i = 0; i < n; i++) batch[i]->out = outs[i];
        } else {
            for (int i = 0; i < n; i++) {
                batch[i]->out = (rnn_reply){.status = 503};
                snprintf(batch[i]->out.msg, sizeof batch[i]->out.msg, "out of memory");
            }
        }
        free(reqs);
        free(outs);
    }
    int rows, passes;
    if (p) {
        rnn_predictor_last(p, &rows, &passes);
        metrics_inference(s->name, rows, passes);
    }
    for (int i = 0; i < n; i++) {
        atomic_store(&batch[i]->done, 1);
        MHD_resume_connection(batch[i]->c);
    }
}

static void *worker(void *arg)
{
    (void)arg;
    const int max = S.cfg.batch_max;
    pjob **batch = malloc((size_t)max * sizeof *batch);
    pthread_mutex_lock(&B.mu);
    for (;;) {
        while (!B.head && !B.quit) pthread_cond_wait(&B.more, &B.mu);
        if (!B.head)
            break; /* quitting with nothing left */
        if (S.cfg.batch_delay_us > 0 && kind_of(B.head) != ALONE) {
            /* wait for company, up to batch_delay_us after the oldest job came */
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            const double left = B.head->queued + S.cfg.batch_delay_us * 1e-6 - rnnd_clock();
            if (left > 0) {
                long ns = until.tv_nsec + (long)(left * 1e9);
                until.tv_sec += ns / 1000000000L;
                until.tv_nsec = ns % 1000000000L;
                int same = 0;
                for (pjob *j = B.head; j; j = j->next) same += same_model(j, B.head);
                if (same < max && !B.quit)
                    pthread_cond_timedwait(&B.more, &B.mu, &until);
                if (!B.head)
                    continue;
            }
        }
        const int n = batch ? take(batch, max) : 0;
        pthread_mutex_unlock(&B.mu);
        run(batch, n);
        pthread_mutex_lock(&B.mu);
    }
    pthread_mutex_unlock(&B.mu);
    free(batch);
    return NULL;
}

int batcher_start(int threads)
{
    B.tail = &B.head;
    B.threads = calloc((size_t)threads, sizeof *B.threads);
    if (!B.threads)
        return -1;
    for (; B.nthreads < threads; B.nthreads++)
        if (pthread_create(&B.threads[B.nthreads], NULL, worker, NULL))
            return -1;
    return 0;
}

void batcher_stop(void)
{
    pthread_mutex_lock(&B.mu);
    B.quit = 1;
    pthread_cond_broadcast(&B.more);
    pthread_mutex_unlock(&B.mu);
    for (int i = 0; i < B.nthreads; i++) pthread_join(B.threads[i], NULL);
    free(B.threads);
    B.threads = NULL;
    B.nthreads = 0;
}

/* Queues job j of request r and suspends its connection. */
static answer queue_job(struct MHD_Connection *c, req *r, pjob *j, cJSON *body, served_model *s)
{
    j->c = c;
    j->body = body;
    j->model = s;
    j->queued = rnnd_clock();
    r->job = j;
    MHD_suspend_connection(c);
    pthread_mutex_lock(&B.mu);
    *B.tail = j;
    B.tail = &j->next;
    pthread_cond_signal(&B.more);
    pthread_mutex_unlock(&B.mu);
    return MHD_YES;
}

/* A job for body on model version s, or a step of session sess (NULL for
 * a prediction); takes the three. */
static answer submit(struct MHD_Connection *c, req *r, cJSON *body, served_model *s, session *sess)
{
    pjob *j = calloc(1, sizeof *j);
    if (!j) {
        served_release(s);
        session_release(sess);
        cJSON_Delete(body);
        return send_error(c, r, 503, "out of memory");
    }
    j->sess = sess;
    return queue_job(c, r, j, body, s);
}

answer batch_submit(struct MHD_Connection *c, req *r, cJSON *body, served_model *s)
{
    return submit(c, r, body, s, NULL);
}

answer batch_submit_session(struct MHD_Connection *c, req *r, cJSON *body, session *s)
{
    atomic_fetch_add(&session_model(s)->refs, 1);
    return submit(c, r, body, session_model(s), s);
}

answer batch_answer(struct MHD_Connection *c, req *r)
{
    pjob *j = r->job;
    if (!atomic_load(&j->done))
        return MHD_YES; /* not resumed by a worker: nothing to send yet */
    r->job = NULL;
    char *text = j->out.text; /* the reply takes it */
    j->out.text = NULL;
    answer ret = text ? send_text(c, r, 200, "application/json", text, j->out.len)
                      : send_error(c, r, j->out.status, "%s", j->out.msg);
    batch_free(j);
    return ret;
}

void batch_free(pjob *j)
{
    if (!j)
        return;
    free(j->out.text);
    cJSON_Delete(j->body);
    served_release(j->model);
    session_release(j->sess);
    free(j);
}
