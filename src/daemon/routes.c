/*
 * The routes of the HTTP API (docs/http-api.md) and the table that maps
 * them: path pattern, method, who may call it, handler. Predictions take a
 * reference to the current model version and never wait for training;
 * training jobs go to the job pool.
 */
#include "http.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const char rnnd_admin_html[];

/* ------------------------------------------------------------------ predictions */

/* Each HTTP thread's prediction buffers (rnn_predictor), made on its first
 * prediction and freed when the thread ends. */
static pthread_key_t predictor_key;
static pthread_once_t predictor_once = PTHREAD_ONCE_INIT;

static void predictor_destroy(void *p) { rnn_predictor_free(p); }
static void predictor_key_make(void) { pthread_key_create(&predictor_key, predictor_destroy); }

rnn_predictor *thread_predictor(void)
{
    pthread_once(&predictor_once, predictor_key_make);
    rnn_predictor *p = pthread_getspecific(predictor_key);
    if (!p && (p = rnn_predictor_new()))
        pthread_setspecific(predictor_key, p);
    return p;
}

rnn_limits predict_limits(void)
{
    rnn_limits lim = {S.cfg.max_sequence_length, S.cfg.max_batch, S.cfg.max_sequence_length,
                      (double)S.cfg.max_predict_work};
    return lim;
}

/* The body is parsed once: the model named in it here, the prediction by a
 * worker (batcher.c), with whatever else waits for the same model. */
static answer do_predict(struct MHD_Connection *c, req *r)
{
    answer ret;
    cJSON *o = parse_body(c, r, &ret);
    if (!o)
        return ret;
    served_model *s = model_of_request(c, r, o, &ret);
    if (!s) {
        cJSON_Delete(o);
        return ret;
    }
    return batch_submit(c, r, o, s);
}

/* Frees a job that never reached the pool (its fields may be empty). */
static void discard_job(train_job *j)
{
    served_release(j->base);
    rnn_job_free(&j->spec);
    free(j->body);
    free(j);
}

/* Data in the request itself ("sequences", "series", "text"), which costs
 * what the client sent to build; a generator or a file may cost far more. */
static int data_inline(const rnn_job *spec)
{
    const cJSON *d = spec->data;
    return d && !cJSON_GetObjectItemCaseSensitive(d, "generator") &&
           !cJSON_GetObjectItemCaseSensitive(d, "file");
}

/* POST /train: checked and bounded here, built and trained by a worker. */
static answer do_train_post(struct MHD_Connection *c, req *r)
{
    answer ret;
    if (atomic_load(&S.draining))
        return send_error(c, r, 503, "the server is shutting down");
    if (!body_checks(c, r, &ret))
        return ret;
    train_job *j = calloc(1, sizeof *j);
    if (!j)
        return send_error(c, r, 503, "out of memory");
    rnn_err err;
    if (rnn_job_parse(&j->spec, r->body ? r->body : "", r->len, &err)) {
        free(j);
        return send_error(c, r, strstr(err.msg, "not valid JSON") ? 400 : 422, "%s", err.msg);
    }
    if (!j->spec.model[0]) {
        discard_job(j);
        return send_error(c, r, 422, "model: missing (the name to train and serve the result under)");
    }
    snprintf(j->model, sizeof j->model, "%s", j->spec.model);
    if (!j->spec.from_scratch)
        j->base = registry_get(S.reg, j->model);
    if (j->base && rnn_job_fits(&j->spec, &j->base->m.cfg, &err)) {
        discard_job(j);
        return send_error(c, r, 409, "%s", err.msg);
    }
    if (j->base) {
        j->spec.cfg = j->base->m.cfg;   /* fine-tuning: the model's architecture */
        j->base_version = j->base->version;
    }
    /* bounded before anything is built */
    j->data_bytes = rnn_job_data_bytes(&j->spec, S.cfg.data_dir);
    if (j->data_bytes > (double)S.cfg.max_job_bytes) {
        ret = send_error(c, r, 413, "data: this job would build about %.3g bytes of training data, over "
                                    "max_job_bytes (%ld); use fewer samples, a shorter window or less data",
                         j->data_bytes, S.cfg.max_job_bytes);
        discard_job(j);
        return ret;
    }
    /* data in the request is checked now, so its errors answer this request;
     * the worker builds it again (a queued job holds no data) */
    rnn_dataset d;
    if (data_inline(&j->spec)) {
        if (job_prepare(j, S.cfg.data_dir, &d, &err)) {
            discard_job(j);
            return send_error(c, r, 422, "%s", err.msg);
        }
        rnn_dataset_free(&d);
    }
    if (!(j->body = malloc(r->len + 1))) {
        discard_job(j);
        return send_error(c, r, 503, "out of memory");
    }
    memcpy(j->body, r->body, r->len);
    j->body[r->len] = 0;
    const int full = pool_submit(S.pool, j);
    if (full == -2) {
        ret = send_error(c, r, 429, "data: the jobs queued or running hold training data near max_job_bytes "
                                    "(%ld); this one's %.3g bytes must wait: try again later",
                         S.cfg.max_job_bytes, j->data_bytes);
        discard_job(j);
        return ret;
    }
    if (full) {
        discard_job(j);
        return send_error(c, r, 429, "the training queue is full (%d jobs waiting); try again later",
                          S.cfg.train_queue);
    }
    long id = j->id; /* j now belongs to the pool */
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "job", (double)id);
    cJSON_AddStringToObject(o, "status", "queued");
    char loc[64];
    snprintf(loc, sizeof loc, "/train/%ld", id);
    return send_json_header(c, r, 202, o, MHD_HTTP_HEADER_LOCATION, loc);
}

static int parse_id(const char *s, long *id)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < 1)
        return -1;
    *id = v;
    return 0;
}

static void model_json(const served_model *s, cJSON *o, int detail)
{
    cJSON_AddStringToObject(o, "name", s->name);
    cJSON_AddNumberToObject(o, "version", (double)s->version);
    char *cj = rnn_config_json(&s->m.cfg, &s->meta);
    cJSON_AddItemToObject(o, "config", cJSON_Parse(cj ? cj : "{}"));
    free(cj);
    cJSON_AddNumberToObject(o, "parameters", (double)s->m.nparams);
    cJSON_AddStringToObject(o, "loaded", s->loaded_at);
    cJSON *p = cJSON_AddObjectToObject(o, "provenance");
    cJSON_AddStringToObject(p, "created", s->meta.created);
    cJSON_AddNumberToObject(p, "epochs", s->meta.epochs);
    if (isfinite(s->meta.final_loss)) cJSON_AddNumberToObject(p, "final_loss", s->meta.final_loss);
    else cJSON_AddNullToObject(p, "final_loss");
    if (isfinite(s->meta.final_val_loss)) cJSON_AddNumberToObject(p, "final_val_loss", s->meta.final_val_loss);
    else cJSON_AddNullToObject(p, "final_val_loss");
    if (detail) {
        cJSON *t = cJSON_AddArrayToObject(o, "tensors");
        for (int i = 0; i < s->m.ntensors; i++) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "name", s->m.tensors[i].name);
            cJSON *sh = cJSON_AddArrayToObject(x, "shape");
            for (int d = 0; d < s->m.tensors[i].ndim; d++)
                cJSON_AddItemToArray(sh, cJSON_CreateNumber(s->m.tensors[i].shape[d]));
            cJSON_AddItemToArray(t, x);
        }
    }
}

static cJSON *model_points(const served_model *s)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < s->meta.nhistory; i++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "epoch", i + 1);
        cJSON_AddNullToObject(x, "step");
        cJSON_AddNumberToObject(x, "loss", s->meta.loss[i]);
        if (isfinite(s->meta.val_loss[i])) cJSON_AddNumberToObject(x, "val_loss", s->meta.val_loss[i]);
        else cJSON_AddNullToObject(x, "val_loss");
        cJSON_AddNullToObject(x, "time");
        cJSON_AddItemToArray(a, x);
    }
    return a;
}


/* ------------------------------------------------------------------ handlers */

static answer do_healthz(struct MHD_Connection *c, req *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    return send_json(c, r, 200, o);
}

static answer do_readyz(struct MHD_Connection *c, req *r)
{
    const int draining = atomic_load(&S.draining), ready = atomic_load(&S.ready) && !draining;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", ready ? "ready" : draining ? "draining" : "loading");
    return send_json(c, r, ready ? 200 : 503, o);
}

static answer do_metrics(struct MHD_Connection *c, req *r)
{
    char *s = metrics_render(S.reg, S.pool, sessions_count(S.sess));
    if (!s)
        return send_error(c, r, 503, "out of memory");
    return send_text(c, r, 200, "text/plain; version=0.0.4", s, strlen(s));
}

static answer do_models(struct MHD_Connection *c, req *r)
{
    served_model **ms;
    int n = registry_list(S.reg, &ms);
    cJSON *o = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(o, "models");
    for (int i = 0; i < n; i++) {
        cJSON *x = cJSON_CreateObject();
        model_json(ms[i], x, 0);
        cJSON_AddItemToArray(a, x);
        served_release(ms[i]);
    }
    free(ms);
    return send_json(c, r, 200, o);
}

static answer do_model(struct MHD_Connection *c, req *r)
{
    served_model *s = registry_get(S.reg, r->arg[0]);
    if (!s)
        return send_error(c, r, 404, "model \"%.64s\" is not loaded", r->arg[0]);
    cJSON *o = cJSON_CreateObject();
    model_json(s, o, 1);
    cJSON_AddItemToObject(o, "loss_history", model_points(s));
    served_release(s);
    return send_json(c, r, 200, o);
}

/* GET /models/{name}/versions: the kept versions, oldest first, each with
 * its provenance (read from its file). */
static answer do_model_versions(struct MHD_Connection *c, req *r)
{
    served_model *s = registry_get(S.reg, r->arg[0]);
    if (!s)
        return send_error(c, r, 404, "model \"%.64s\" is not loaded", r->arg[0]);
    long *v;
    const int n = versions_list(s->name, &v);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", s->name);
    cJSON_AddNumberToObject(o, "served", (double)s->version);
    cJSON *a = cJSON_AddArrayToObject(o, "versions");
    for (int i = 0; i < n; i++) {
        served_model *k = registry_get_version(S.reg, s->name, v[i]);
        if (!k)
            continue;   /* pruned meanwhile, or unreadable */
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "version", (double)v[i]);
        cJSON_AddStringToObject(x, "created", k->meta.created);
        cJSON_AddNumberToObject(x, "epochs", k->meta.epochs);
        if (isfinite(k->meta.final_loss)) cJSON_AddNumberToObject(x, "final_loss", k->meta.final_loss);
        else cJSON_AddNullToObject(x, "final_loss");
        if (isfinite(k->meta.final_val_loss)) cJSON_AddNumberToObject(x, "final_val_loss", k->meta.final_val_loss);
        else cJSON_AddNullToObject(x, "final_val_loss");
        if (k->meta.job > 0) cJSON_AddNumberToObject(x, "job", (double)k->meta.job);
        else cJSON_AddNullToObject(x, "job");
        cJSON_AddItemToArray(a, x);
        served_release(k);
    }
    free(v);
    served_release(s);
    return send_json(c, r, 200, o);
}

/* PUT /models/{name}/served {"version": N}: rollback (or forward) to a kept version. */
static answer do_model_serve(struct MHD_Connection *c, req *r)
{
    answer ret;
    cJSON *o = parse_body(c, r, &ret);
    if (!o)
        return ret;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "version");
    int bad = !v || !cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > 9007199254740991.0 ||
              v->valuedouble != floor(v->valuedouble);
    for (const cJSON *it = o->child; it && !bad; it = it->next)
        bad = strcmp(it->string, "version") != 0;
    const long want = bad ? 0 : (long)v->valuedouble;
    cJSON_Delete(o);
    if (bad)
        return send_error(c, r, 400, "give {\"version\": N}, N a whole number from 1 (and no other key)");
    served_model *s = registry_get(S.reg, r->arg[0]);
    if (!s)
        return send_error(c, r, 404, "model \"%.64s\" is not loaded", r->arg[0]);
    char name[65];
    snprintf(name, sizeof name, "%s", s->name);
    served_release(s);
    rnn_err err;
    if (registry_serve(S.reg, name, want, S.cfg.model_dir, &err))
        return send_error(c, r, strstr(err.msg, "has no version") ? 404 : 500, "%s", err.msg);
    rnnd_log(LOG_INFO, "model %s: version %ld served (PUT /models/%s/served)", name, want, name);
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "model", name);
    cJSON_AddNumberToObject(out, "served", (double)want);
    return send_json(c, r, 200, out);
}

static answer do_train_list(struct MHD_Connection *c, req *r)
{
    cJSON *o = cJSON_CreateObject();
    pool_list_json(S.pool, cJSON_AddArrayToObject(o, "jobs"));
    return send_json(c, r, 200, o);
}

/* GET /train/{id}, and DELETE, which cancels first */
static answer job_reply(struct MHD_Connection *c, req *r, int cancel)
{
    long id;
    if (parse_id(r->arg[0], &id))
        return send_error(c, r, 404, "no job \"%.32s\"", r->arg[0]);
    job_state st;
    if (cancel && pool_cancel(S.pool, id, &st))
        return send_error(c, r, 404, "no job %ld", id);
    cJSON *o = cJSON_CreateObject();
    if (pool_job_json(S.pool, id, o, 0)) {
        cJSON_Delete(o);
        return send_error(c, r, 404, "no job %ld", id);
    }
    return send_json(c, r, 200, o);
}

static answer do_train_get(struct MHD_Connection *c, req *r) { return job_reply(c, r, 0); }
static answer do_train_delete(struct MHD_Connection *c, req *r) { return job_reply(c, r, 1); }

static answer do_admin(struct MHD_Connection *c, req *r)
{
    char *page = strdup(rnnd_admin_html);
    if (!page)
        return send_error(c, r, 503, "out of memory");
    return send_text(c, r, 200, "text/html; charset=utf-8", page, strlen(page));
}

static answer do_admin_loss(struct MHD_Connection *c, req *r)
{
    const char *jq = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "job");
    const char *mq = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "model");
    if (jq) {
        long id;
        cJSON *o = cJSON_CreateObject();
        if (parse_id(jq, &id) || pool_job_json(S.pool, id, o, 1)) {
            cJSON_Delete(o);
            return send_error(c, r, 404, "no job \"%.32s\"", jq);
        }
        return send_json(c, r, 200, o);
    }
    if (!mq)
        return send_error(c, r, 400, "give ?job=ID or ?model=NAME");
    served_model *s = registry_get(S.reg, mq);
    if (!s)
        return send_error(c, r, 404, "model \"%.64s\" is not loaded", mq);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", s->name);
    cJSON_AddNumberToObject(o, "version", (double)s->version);
    cJSON_AddItemToObject(o, "points", model_points(s));
    served_release(s);
    return send_json(c, r, 200, o);
}

/* ------------------------------------------------------------------ the table */

const route routes[] = {
    {"/healthz", "GET", OPEN, do_healthz},
    {"/readyz", "GET", OPEN, do_readyz},
    {"/metrics", "GET", OPEN, do_metrics},
    {"/predict", "POST", OPEN, do_predict},
    {"/models", "GET", OPEN, do_models},
    {"/models/{name}", "GET", OPEN, do_model},
    {"/models/{name}/versions", "GET", OPEN, do_model_versions},
    {"/models/{name}/served", "PUT", TOKEN, do_model_serve},
    {"/train", "GET", TOKEN, do_train_list},
    {"/train", "POST", TOKEN, do_train_post},
    {"/train/{id}", "GET", TOKEN, do_train_get},
    {"/train/{id}", "DELETE", TOKEN, do_train_delete},
    {"/admin", "GET", PAGE, do_admin},
    {"/admin/", "GET", PAGE, do_admin},
    {"/admin/loss", "GET", TOKEN, do_admin_loss},
    {"/data", "GET", TOKEN, do_data_list},
    {"/data/{name}", "PUT", UPLOAD, do_data_put},
    {"/data/{name}", "DELETE", TOKEN, do_data_delete},
    {"/sessions", "GET", OPEN, do_session_list},
    {"/sessions", "POST", OPEN, do_session_open},
    {"/sessions/{id}", "GET", OPEN, do_session_get},
    {"/sessions/{id}", "POST", OPEN, do_session_step},
    {"/sessions/{id}", "DELETE", OPEN, do_session_delete},
    {"/v2", "GET", OPEN, do_v2_server},
    {"/v2/health/live", "GET", OPEN, do_v2_live},
    {"/v2/health/ready", "GET", OPEN, do_v2_ready},
    {"/v2/models/{name}", "GET", OPEN, do_v2_model},
    {"/v2/models/{name}/ready", "GET", OPEN, do_v2_model_ready},
    {"/v2/models/{name}/infer", "POST", OPEN, do_v2_infer},
    {"/v2/models/{name}/versions/{version}", "GET", OPEN, do_v2_model},
    {"/v2/models/{name}/versions/{version}/ready", "GET", OPEN, do_v2_model_ready},
    {"/v2/models/{name}/versions/{version}/infer", "POST", OPEN, do_v2_infer},
};
const int nroutes = sizeof routes / sizeof routes[0];
