/*
 * Streaming sessions (DESIGN.md, "Streaming sessions"): the server keeps a
 * series' hidden state, and a client sends only the steps that are new.
 *
 * A session holds a reference to the model version it was opened on, so it
 * finishes on that version across a hot swap, and an rnn_stream, the
 * engine's state after `position` steps. The store is a hash table of
 * sessions by id under one mutex, taken only to find, add or remove; a
 * session has its own mutex, held while one request steps it, so requests
 * to one session run one at a time and others run in parallel. Requests and
 * the store hold references; the last one frees the session, so a session
 * deleted or expired while a request steps it ends when that request does.
 * The main loop calls sessions_expire every second for idle sessions.
 */
#include "http.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define BUCKETS 4096

struct session {
    char id[72];
    served_model *model;    /* the version it started on (a reference) */
    rnn_stream *stream;
    double created;         /* rnnd_now() */
    double last;            /* rnnd_clock() of its last request */
    atomic_int refs;
    atomic_long position;   /* steps consumed, read without the lock */
    pthread_mutex_t lock;   /* held while a request steps it */
    session *next;          /* in its bucket */
};

struct sessions {
    pthread_mutex_t lock;
    session *bucket[BUCKETS];
    int n;
};

sessions *sessions_new(void)
{
    sessions *t = calloc(1, sizeof *t);
    if (t)
        pthread_mutex_init(&t->lock, NULL);
    return t;
}

static void session_free(session *s)
{
    rnn_stream_free(s->stream);
    served_release(s->model);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

void session_release(session *s)
{
    if (s && atomic_fetch_sub(&s->refs, 1) == 1)
        session_free(s);
}

void sessions_free(sessions *t)
{
    if (!t)
        return;
    for (int b = 0; b < BUCKETS; b++)
        for (session *s = t->bucket[b], *nx; s; s = nx) {
            nx = s->next;
            session_release(s);
        }
    pthread_mutex_destroy(&t->lock);
    free(t);
}

/* FNV-1a */
static unsigned bucket_of(const char *id)
{
    unsigned h = 2166136261u;
    for (; *id; id++) h = (h ^ (unsigned char)*id) * 16777619u;
    return h % BUCKETS;
}

/* The session before s in its bucket's chain, or where to link a new one. */
static session **link_of(sessions *t, const char *id)
{
    session **p = &t->bucket[bucket_of(id)];
    while (*p && strcmp((*p)->id, id)) p = &(*p)->next;
    return p;
}

session *session_open(sessions *t, const char *id, served_model *m, int max, int *status,
                      char *err, size_t errlen)
{
    if (m->m.cfg.bidirectional) {
        *status = 422;
        snprintf(err, errlen, "model %s is bidirectional: it reads each sequence whole, so it "
                 "has no state to stream (send whole sequences to /predict)", m->name);
        return NULL;
    }
    session *s = calloc(1, sizeof *s);
    if (!s || !(s->stream = rnn_stream_new(&m->m))) {
        free(s);
        *status = 503;
        snprintf(err, errlen, "out of memory for a session");
        return NULL;
    }
    if (id) {
        snprintf(s->id, sizeof s->id, "%s", id);
    } else {
        unsigned char rnd[16];
        if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
            /* never seen; a clock-based id is still unique in this process */
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            memcpy(rnd, &ts, sizeof rnd < sizeof ts ? sizeof rnd : sizeof ts);
        }
        for (int i = 0; i < 16; i++) snprintf(s->id + 2 * i, 3, "%02x", rnd[i]);
    }
    atomic_fetch_add(&m->refs, 1);
    s->model = m;
    s->created = rnnd_now();
    s->last = rnnd_clock();
    pthread_mutex_init(&s->lock, NULL);
    atomic_store(&s->refs, 2); /* the store's and the caller's */
    pthread_mutex_lock(&t->lock);
    session **p = link_of(t, s->id);
    const int full = t->n >= max, taken = *p != NULL;
    if (!full && !taken) {
        *p = s;
        t->n++;
    }
    pthread_mutex_unlock(&t->lock);
    if (full || taken) {
        *status = full ? 429 : 409;
        if (full)
            snprintf(err, errlen, "%d sessions are open, the limit (max_sessions); end one first", max);
        else
            snprintf(err, errlen, "session \"%.64s\" is already open", s->id);
        session_free(s);
        return NULL;
    }
    return s;
}

session *session_get(sessions *t, const char *id)
{
    pthread_mutex_lock(&t->lock);
    session *s = *link_of(t, id);
    if (s)
        atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&t->lock);
    return s;
}

int session_end(sessions *t, const char *id)
{
    pthread_mutex_lock(&t->lock);
    session **p = link_of(t, id), *s = *p;
    if (s) {
        *p = s->next;
        t->n--;
    }
    pthread_mutex_unlock(&t->lock);
    session_release(s);
    return s ? 0 : -1;
}

int sessions_expire(sessions *t, double idle_s)
{
    const double now = rnnd_clock();
    session *gone = NULL;
    pthread_mutex_lock(&t->lock);
    for (int b = 0; b < BUCKETS; b++)
        for (session **p = &t->bucket[b]; *p;) {
            session *s = *p;
            /* a session a request is stepping is not idle */
            if (now - s->last > idle_s && pthread_mutex_trylock(&s->lock) == 0) {
                pthread_mutex_unlock(&s->lock);
                *p = s->next;
                t->n--;
                s->next = gone;
                gone = s;
            } else {
                p = &s->next;
            }
        }
    pthread_mutex_unlock(&t->lock);
    int n = 0;
    for (session *nx; gone; gone = nx, n++) {
        nx = gone->next;
        session_release(gone);
    }
    return n;
}

int sessions_count(sessions *t)
{
    pthread_mutex_lock(&t->lock);
    int n = t->n;
    pthread_mutex_unlock(&t->lock);
    return n;
}

const char *session_id(const session *s) { return s->id; }
served_model *session_model(const session *s) { return s->model; }

long session_position(session *s) { return atomic_load(&s->position); }

rnn_stream *session_stream(session *s) { return s->stream; }

void session_lock(session *s) { pthread_mutex_lock(&s->lock); }

void session_unlock(session *s)
{
    s->last = rnnd_clock();
    atomic_store(&s->position, rnn_stream_position(s->stream));
    pthread_mutex_unlock(&s->lock);
}

int session_run(session *s, const cJSON *body, cJSON *reply, int *status, rnn_err *err)
{
    rnn_predictor *p = thread_predictor();
    if (!p) {
        *status = 503;
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return -1;
    }
    const rnn_limits lim = predict_limits();
    pthread_mutex_lock(&s->lock);
    int rc = rnn_stream_json(p, s->stream, &s->model->m, &s->model->meta, body, &lim, reply, status,
                             err);
    s->last = rnnd_clock();
    atomic_store(&s->position, rnn_stream_position(s->stream));
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* ------------------------------------------------------------------ routes */

/* The model a request names ("model"), or the only one loaded; answers the
 * error itself and returns NULL when there is none. */
served_model *model_of_request(struct MHD_Connection *c, req *r, const cJSON *o, answer *ret)
{
    const cJSON *mn = cJSON_GetObjectItemCaseSensitive(o, "model");
    const cJSON *vn = cJSON_GetObjectItemCaseSensitive(o, "version");
    served_model *s = NULL;
    if (mn && !cJSON_IsString(mn))
        *ret = send_error(c, r, 400, "model: must be a string");
    else if (vn && (!cJSON_IsNumber(vn) || vn->valuedouble < 1 || vn->valuedouble > 9007199254740991.0 ||
                    vn->valuedouble != floor(vn->valuedouble)))
        *ret = send_error(c, r, 400, "version: must be a whole number from 1");
    else if (mn && !(s = registry_get(S.reg, mn->valuestring)))
        *ret = send_error(c, r, 404, "model \"%.64s\" is not loaded", mn->valuestring);
    else if (!mn && !(s = registry_only(S.reg)))
        *ret = send_error(c, r, 400, "model: missing (more than one model is loaded)");
    if (s && vn && s->version != (long)vn->valuedouble) {
        /* an older (or newer, after a rollback) version, kept on disk */
        const long want = (long)vn->valuedouble;
        served_model *k = registry_get_version(S.reg, s->name, want);
        if (!k)
            *ret = send_error(c, r, 404, "model \"%s\" has no version %ld (GET /models/%s/versions "
                                         "lists those kept)", s->name, want, s->name);
        served_release(s);
        s = k;
    }
    return s;
}

static void session_json(session *s, cJSON *o)
{
    cJSON_AddStringToObject(o, "session", s->id);
    cJSON_AddStringToObject(o, "model", s->model->name);
    cJSON_AddNumberToObject(o, "version", (double)s->model->version);
    cJSON_AddNumberToObject(o, "position", (double)session_position(s));
    char when[40];
    const time_t t = (time_t)s->created;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    cJSON_AddStringToObject(o, "created", when);
    cJSON_AddNumberToObject(o, "idle", rnnd_clock() - s->last);
}

answer do_session_open(struct MHD_Connection *c, req *r)
{
    answer ret;
    cJSON *o = parse_body(c, r, &ret);
    if (!o)
        return ret;
    served_model *m = model_of_request(c, r, o, &ret);
    cJSON_Delete(o);
    if (!m)
        return ret;
    if (m->m.cfg.task == RNN_TASK_CHARLM) {
        ret = send_error(c, r, 422, "model \"%s\" generates text (POST /predict with \"text\"); "
                                    "sessions serve regression and classify models", m->name);
        served_release(m);
        return ret;
    }
    int status;
    char err[160];
    session *s = session_open(S.sess, NULL, m, S.cfg.max_sessions, &status, err, sizeof err);
    served_release(m);
    if (!s)
        return send_error(c, r, status, "%s", err);
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "session", s->id);
    cJSON_AddStringToObject(out, "model", s->model->name);
    cJSON_AddNumberToObject(out, "version", (double)s->model->version);
    char loc[96];
    snprintf(loc, sizeof loc, "/sessions/%s", s->id);
    session_release(s);
    return send_json_header(c, r, 201, out, MHD_HTTP_HEADER_LOCATION, loc);
}

/* Steps run on the prediction workers, batched with other sessions of the
 * same model version (batcher.c). */
answer do_session_step(struct MHD_Connection *c, req *r)
{
    answer ret;
    session *s = session_get(S.sess, r->arg[0]);
    if (!s)
        return send_error(c, r, 404, "no session \"%.64s\" (it may have expired)", r->arg[0]);
    cJSON *o = parse_body(c, r, &ret);
    if (!o) {
        session_release(s);
        return ret;
    }
    return batch_submit_session(c, r, o, s);
}

answer do_session_get(struct MHD_Connection *c, req *r)
{
    session *s = session_get(S.sess, r->arg[0]);
    if (!s)
        return send_error(c, r, 404, "no session \"%.64s\" (it may have expired)", r->arg[0]);
    cJSON *o = cJSON_CreateObject();
    session_json(s, o);
    session_release(s);
    return send_json(c, r, 200, o);
}

answer do_session_list(struct MHD_Connection *c, req *r)
{
    cJSON *o = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(o, "sessions");
    /* a snapshot of references, described outside the store's lock */
    pthread_mutex_lock(&S.sess->lock);
    session **all = malloc(((size_t)S.sess->n + 1) * sizeof *all);
    int n = 0;
    for (int b = 0; all && b < BUCKETS; b++)
        for (session *s = S.sess->bucket[b]; s; s = s->next) {
            atomic_fetch_add(&s->refs, 1);
            all[n++] = s;
        }
    pthread_mutex_unlock(&S.sess->lock);
    for (int i = 0; i < n; i++) {
        cJSON *x = cJSON_CreateObject();
        session_json(all[i], x);
        cJSON_AddItemToArray(a, x);
        session_release(all[i]);
    }
    free(all);
    return send_json(c, r, 200, o);
}

answer do_session_delete(struct MHD_Connection *c, req *r)
{
    if (session_end(S.sess, r->arg[0]))
        return send_error(c, r, 404, "no session \"%.64s\" (it may have expired)", r->arg[0]);
    char *none = strdup("");
    if (!none)
        return send_error(c, r, 503, "out of memory");
    return send_text(c, r, 204, "application/json", none, 0);
}
