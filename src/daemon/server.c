/*
 * DESIGN: the HTTP server. libmicrohttpd runs its polling thread and a pool
 * of `http_threads` threads (poll); every request gets a `req` in *req_cls
 * on its first call, its body is appended there up to `max_body_bytes`
 * (beyond that the rest is read and dropped, and the answer is 413), and the
 * completion callback logs one line, counts metrics and frees it.
 * Predictions take a reference to the current model version and never wait
 * for training; training jobs go to the job pool. The main thread only
 * waits for signals: SIGTERM drains (stop accepting, finish requests in
 * flight, stop jobs at their next step, exit 0), SIGHUP reloads model_dir.
 */
#include "daemon.h"

#include <arpa/inet.h>
#include <cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

typedef struct server {
    rnnd_config cfg;
    registry *reg;
    job_pool *pool;
    struct MHD_Daemon *d;
    atomic_int inflight;        /* requests begun and not completed */
    atomic_int fresh;           /* connections that have not sent a request yet */
    atomic_int draining;
    atomic_int ready;
} server;

static server S;
static volatile sig_atomic_t got_term, got_hup;

static void on_term(int sig) { (void)sig; got_term = 1; }
static void on_hup(int sig) { (void)sig; got_hup = 1; }

typedef struct req {
    double t0;
    char method[8];
    char path[128];
    char route[24];
    int status;
    char *body;
    size_t len, cap;
    int too_big;
} req;

extern const char rnnd_admin_html[];

/* ------------------------------------------------------------------ responses */

/* While draining, every answer closes its connection, so keep-alive
 * clients do not hold the server open. */
static enum MHD_Result queue(struct MHD_Connection *c, req *r, int status, struct MHD_Response *resp)
{
    if (atomic_load(&S.draining))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    r->status = status;
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result send_text(struct MHD_Connection *c, req *r, int status, const char *type,
                                 char *body, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    return queue(c, r, status, resp);
}

/* The reply text of o, which it deletes: compact JSON and a newline, so that
 * curl's output ends its line. NULL when out of memory. */
static char *json_text(cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s)
        return NULL;
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (!t) {
        free(s);
        return NULL;
    }
    t[n] = '\n';
    t[n + 1] = 0;
    return t;
}

static enum MHD_Result send_json(struct MHD_Connection *c, req *r, int status, cJSON *o)
{
    char *s = json_text(o);
    if (!s)
        return MHD_NO;
    return send_text(c, r, status, "application/json", s, strlen(s));
}

static const char *code_of(int status)
{
    switch (status) {
    case 400: return "bad_request";
    case 401: return "unauthorized";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 409: return "conflict";
    case 413: return "too_large";
    case 415: return "unsupported_media_type";
    case 422: return "invalid";
    case 429: return "queue_full";
    case 503: return "unavailable";
    default: return "internal";
    }
}

static enum MHD_Result send_error(struct MHD_Connection *c, req *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static enum MHD_Result send_error(struct MHD_Connection *c, req *r, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "code", code_of(status));
    cJSON_AddStringToObject(e, "message", msg);
    return send_json(c, r, status, o);
}

/* An error reply with one extra header (Allow, WWW-Authenticate). */
static enum MHD_Result send_error_header(struct MHD_Connection *c, req *r, int status, const char *hname,
                                         const char *hvalue, const char *msg)
{
    cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "code", code_of(status));
    cJSON_AddStringToObject(e, "message", msg);
    char *s = json_text(o);
    if (!s)
        return MHD_NO;
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(s);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(resp, hname, hvalue);
    return queue(c, r, status, resp);
}

static enum MHD_Result send_405(struct MHD_Connection *c, req *r, const char *allow)
{
    char msg[320];
    snprintf(msg, sizeof msg, "%s %s is not allowed; allowed: %s", r->method, r->path, allow);
    return send_error_header(c, r, 405, MHD_HTTP_HEADER_ALLOW, allow, msg);
}

/* The admin page asks for HTTP Basic credentials, the one way a browser can
 * send the token when it opens a page; the API asks for a bearer token. */
static enum MHD_Result send_401(struct MHD_Connection *c, req *r, int page)
{
    return send_error_header(c, r, 401, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                             page ? "Basic realm=\"rnnd\", charset=\"UTF-8\"" : "Bearer realm=\"rnnd\"",
                             page ? "the admin page needs the token: any user name, the token as password"
                                  : "missing or wrong bearer token");
}

/* ------------------------------------------------------------------ checks */

/* Decodes standard base64 into out (NUL-terminated); -1 if malformed or too long. */
static int base64_decode(const char *in, char *out, size_t cap)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = 0;
    unsigned acc = 0;
    int bits = 0;
    for (; *in && *in != '='; in++) {
        const char *p = strchr(al, *in);
        if (!p)
            return -1;
        acc = (acc << 6) | (unsigned)(p - al);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n + 1 >= cap)
                return -1;
            out[n++] = (char)((acc >> bits) & 0xff);
        }
    }
    out[n] = 0;
    return 0;
}

/* Constant time in the token's length: no early exit on a mismatch. */
static int token_equal(const char *tok, const char *h)
{
    size_t lt = strlen(tok), lh = strlen(h);
    unsigned diff = (unsigned)(lt ^ lh);
    for (size_t i = 0; i < lt; i++)
        diff |= (unsigned char)tok[i] ^ (unsigned char)(i < lh ? h[i] : 0);
    return diff == 0;
}

/* `Authorization: Bearer TOKEN`, or `Basic base64(user:TOKEN)` (any user)
 * from a browser. */
static int authorized(struct MHD_Connection *c)
{
    const char *tok = S.cfg.auth_token;
    if (!tok[0])
        return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h)
        return 0;
    if (!strncmp(h, "Bearer ", 7))
        return token_equal(tok, h + 7);
    if (!strncmp(h, "Basic ", 6)) {
        char cred[600];
        const char *colon;
        if (base64_decode(h + 6, cred, sizeof cred) || !(colon = strchr(cred, ':')))
            return 0;
        int ok = token_equal(tok, colon + 1);
        memset(cred, 0, sizeof cred);
        return ok;
    }
    return 0;
}

static int json_content(struct MHD_Connection *c)
{
    const char *t = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!t)
        return 0;
    while (*t == ' ') t++;
    return strncasecmp(t, "application/json", 16) == 0 && (t[16] == 0 || t[16] == ';' || t[16] == ' ');
}

/* Depth of JSON nesting, scanned before parsing so a 10 000-deep body is
 * refused without recursion. */
static int json_depth(const char *s, size_t n)
{
    int d = 0, mx = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (in_str) {
            if (ch == '\\') i++;
            else if (ch == '"') in_str = 0;
        } else if (ch == '"') {
            in_str = 1;
        } else if (ch == '[' || ch == '{') {
            if (++d > mx) mx = d;
        } else if (ch == ']' || ch == '}') {
            d--;
        }
    }
    return mx;
}

#define MAX_DEPTH 32

/* Parses a JSON body, answering 400/415 itself; NULL when it has. */
static cJSON *parse_body(struct MHD_Connection *c, req *r, enum MHD_Result *ret)
{
    if (!json_content(c)) {
        *ret = send_error(c, r, 415, "Content-Type must be application/json");
        return NULL;
    }
    if (json_depth(r->body ? r->body : "", r->len) > MAX_DEPTH) {
        *ret = send_error(c, r, 400, "JSON nested deeper than %d levels", MAX_DEPTH);
        return NULL;
    }
    cJSON *o = cJSON_ParseWithLength(r->body ? r->body : "", r->len);
    if (!o) {
        *ret = send_error(c, r, 400, "request body is not valid JSON");
        return NULL;
    }
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        *ret = send_error(c, r, 400, "request body must be a JSON object");
        return NULL;
    }
    return o;
}

/* ------------------------------------------------------------------ routes */

/* Each HTTP thread's prediction buffers (rnn_predictor), made on its first
 * prediction and freed when the thread ends. */
static pthread_key_t predictor_key;
static pthread_once_t predictor_once = PTHREAD_ONCE_INIT;

static void predictor_destroy(void *p) { rnn_predictor_free(p); }
static void predictor_key_make(void) { pthread_key_create(&predictor_key, predictor_destroy); }

static rnn_predictor *thread_predictor(void)
{
    pthread_once(&predictor_once, predictor_key_make);
    rnn_predictor *p = pthread_getspecific(predictor_key);
    if (!p && (p = rnn_predictor_new()))
        pthread_setspecific(predictor_key, p);
    return p;
}

/* The body is parsed once: the model named in it, then the prediction. */
static enum MHD_Result do_predict(struct MHD_Connection *c, req *r)
{
    enum MHD_Result ret;
    cJSON *o = parse_body(c, r, &ret);
    if (!o)
        return ret;
    const cJSON *mn = cJSON_GetObjectItemCaseSensitive(o, "model");
    served_model *s = NULL;
    if (mn && !cJSON_IsString(mn))
        ret = send_error(c, r, 400, "model: must be a string");
    else if (mn && !(s = registry_get(S.reg, mn->valuestring)))
        ret = send_error(c, r, 404, "model \"%.64s\" is not loaded", mn->valuestring);
    else if (!mn && !(s = registry_only(S.reg)))
        ret = send_error(c, r, 400, "model: missing (more than one model is loaded)");
    rnn_predictor *p = s ? thread_predictor() : NULL;
    if (s && !p)
        ret = send_error(c, r, 503, "out of memory");
    if (p) {
        rnn_limits lim = {S.cfg.max_sequence_length, S.cfg.max_batch, S.cfg.max_sequence_length,
                          (double)S.cfg.max_predict_work};
        char *reply = NULL;
        size_t len = 0;
        int status;
        rnn_err err;
        if (rnn_predict_json(p, &s->m, &s->meta, s->name, s->version, o, &lim, &reply, &len,
                             &status, &err))
            ret = send_error(c, r, status, "%s", err.msg);
        else
            ret = send_text(c, r, 200, "application/json", reply, len);
    }
    served_release(s);
    cJSON_Delete(o);
    return ret;
}

/* Frees a job that never reached the pool (its fields may be empty). */
static void discard_job(train_job *j)
{
    rnn_dataset_free(&j->data);
    served_release(j->base);
    rnn_job_free(&j->spec);
    free(j);
}

static enum MHD_Result do_train_post(struct MHD_Connection *c, req *r)
{
    enum MHD_Result ret;
    if (!json_content(c))
        return send_error(c, r, 415, "Content-Type must be application/json");
    if (json_depth(r->body ? r->body : "", r->len) > MAX_DEPTH)
        return send_error(c, r, 400, "JSON nested deeper than %d levels", MAX_DEPTH);
    train_job *j = calloc(1, sizeof *j);
    if (!j)
        return send_error(c, r, 503, "out of memory");
    rnn_err err;
    if (rnn_job_parse(&j->spec, r->body ? r->body : "", r->len, &err)) {
        free(j);
        return send_error(c, r, strstr(err.msg, "not valid JSON") ? 400 : 422, "%s", err.msg);
    }
    if (!j->spec.model[0]) {
        rnn_job_free(&j->spec);
        free(j);
        return send_error(c, r, 422, "model: missing (the name to train and serve the result under)");
    }
    snprintf(j->model, sizeof j->model, "%s", j->spec.model);
    if (!j->spec.from_scratch)
        j->base = registry_get(S.reg, j->model);
    if (j->base)
        j->spec.cfg = j->base->m.cfg;   /* fine-tuning: the model's architecture */
    if (rnn_job_dataset(&j->spec, j->base ? j->base->meta.vocab : NULL, S.cfg.data_dir, &j->data, &err)) {
        discard_job(j);
        return send_error(c, r, 422, "%s", err.msg);
    }
    if (j->base && (j->spec.cfg.input_size != j->base->m.cfg.input_size ||
                    j->spec.cfg.output_size != j->base->m.cfg.output_size)) {
        ret = send_error(c, r, 422, "data: %d inputs and %d outputs per step, model \"%s\" takes %d and %d "
                                    "(use \"from_scratch\": true to replace it)",
                         j->spec.cfg.input_size, j->spec.cfg.output_size, j->model,
                         j->base->m.cfg.input_size, j->base->m.cfg.output_size);
        discard_job(j);
        return ret;
    }
    rnn_config probe = j->spec.cfg;
    if (!j->base && rnn_config_check(&probe, &err)) {
        discard_job(j);
        return send_error(c, r, 422, "%s", err.msg);
    }
    if (pool_submit(S.pool, j)) {
        discard_job(j);
        return send_error(c, r, 429, "the training queue is full (%d jobs waiting); try again later",
                          S.cfg.train_queue);
    }
    long id = j->id; /* j now belongs to the pool */
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "job", (double)id);
    cJSON_AddStringToObject(o, "status", "queued");
    char *s = json_text(o);
    struct MHD_Response *resp = s ? MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE) : NULL;
    if (!resp) {
        free(s);
        return MHD_NO;
    }
    char loc[64];
    snprintf(loc, sizeof loc, "/train/%ld", id);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, loc);
    return queue(c, r, 202, resp);
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

static enum MHD_Result route(struct MHD_Connection *c, req *r)
{
    const char *p = r->path, *m = r->method;
    const int get = !strcmp(m, "GET") || !strcmp(m, "HEAD"), post = !strcmp(m, "POST"),
              del = !strcmp(m, "DELETE");
    if (!strcmp(p, "/healthz")) {
        snprintf(r->route, sizeof r->route, "/healthz");
        if (!get) return send_405(c, r, "GET");
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "status", "ok");
        return send_json(c, r, 200, o);
    }
    if (!strcmp(p, "/readyz")) {
        snprintf(r->route, sizeof r->route, "/readyz");
        if (!get) return send_405(c, r, "GET");
        int ready = atomic_load(&S.ready) && !atomic_load(&S.draining);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "status", ready ? "ready" : atomic_load(&S.draining) ? "draining" : "loading");
        return send_json(c, r, ready ? 200 : 503, o);
    }
    if (!strcmp(p, "/metrics")) {
        snprintf(r->route, sizeof r->route, "/metrics");
        if (!get) return send_405(c, r, "GET");
        char *s = metrics_render(S.reg, S.pool);
        if (!s) return send_error(c, r, 503, "out of memory");
        return send_text(c, r, 200, "text/plain; version=0.0.4", s, strlen(s));
    }
    if (!strcmp(p, "/predict")) {
        snprintf(r->route, sizeof r->route, "/predict");
        if (!post) return send_405(c, r, "POST");
        if (r->too_big) return send_error(c, r, 413, "request body over %ld bytes (max_body_bytes)", S.cfg.max_body_bytes);
        return do_predict(c, r);
    }
    if (!strcmp(p, "/models") || !strncmp(p, "/models/", 8)) {
        snprintf(r->route, sizeof r->route, p[7] ? "/models/{name}" : "/models");
        if (!get) return send_405(c, r, "GET");
        if (!p[7]) {
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
        served_model *s = registry_get(S.reg, p + 8);
        if (!s) return send_error(c, r, 404, "model \"%.64s\" is not loaded", p + 8);
        cJSON *o = cJSON_CreateObject();
        model_json(s, o, 1);
        cJSON_AddItemToObject(o, "loss_history", model_points(s));
        served_release(s);
        return send_json(c, r, 200, o);
    }
    if (!strcmp(p, "/train") || !strncmp(p, "/train/", 7)) {
        const int one = p[6] == '/';
        snprintf(r->route, sizeof r->route, one ? "/train/{id}" : "/train");
        if (one ? !(get || del) : !(get || post))
            return send_405(c, r, one ? "GET, DELETE" : "GET, POST");
        if (!authorized(c)) return send_401(c, r, 0);
        if (!one) {
            if (post) {
                if (r->too_big) return send_error(c, r, 413, "request body over %ld bytes (max_body_bytes)", S.cfg.max_body_bytes);
                if (atomic_load(&S.draining)) return send_error(c, r, 503, "the server is shutting down");
                return do_train_post(c, r);
            }
            cJSON *o = cJSON_CreateObject();
            pool_list_json(S.pool, cJSON_AddArrayToObject(o, "jobs"));
            return send_json(c, r, 200, o);
        }
        long id;
        if (parse_id(p + 7, &id)) return send_error(c, r, 404, "no job \"%.32s\"", p + 7);
        if (del) {
            job_state st;
            if (pool_cancel(S.pool, id, &st)) return send_error(c, r, 404, "no job %ld", id);
            cJSON *o = cJSON_CreateObject();
            if (pool_job_json(S.pool, id, o, 0)) { cJSON_Delete(o); return send_error(c, r, 404, "no job %ld", id); }
            return send_json(c, r, 200, o);
        }
        cJSON *o = cJSON_CreateObject();
        if (pool_job_json(S.pool, id, o, 0)) { cJSON_Delete(o); return send_error(c, r, 404, "no job %ld", id); }
        return send_json(c, r, 200, o);
    }
    if (!strcmp(p, "/admin") || !strcmp(p, "/admin/") || !strcmp(p, "/admin/loss")) {
        const int loss = !strcmp(p, "/admin/loss");
        snprintf(r->route, sizeof r->route, loss ? "/admin/loss" : "/admin");
        if (!get) return send_405(c, r, "GET");
        if (!authorized(c)) return send_401(c, r, !loss);
        if (!loss) {
            char *page = strdup(rnnd_admin_html);
            return send_text(c, r, 200, "text/html; charset=utf-8", page, strlen(page));
        }
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
        if (mq) {
            served_model *s = registry_get(S.reg, mq);
            if (!s) return send_error(c, r, 404, "model \"%.64s\" is not loaded", mq);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "model", s->name);
            cJSON_AddNumberToObject(o, "version", (double)s->version);
            cJSON_AddItemToObject(o, "points", model_points(s));
            served_release(s);
            return send_json(c, r, 200, o);
        }
        return send_error(c, r, 400, "give ?job=ID or ?model=NAME");
    }
    snprintf(r->route, sizeof r->route, "other");
    return send_error(c, r, 404, "no such endpoint: %.100s", p);
}

/* ------------------------------------------------------------------ libmicrohttpd glue */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **req_cls)
{
    (void)cls;
    (void)version;
    req *r = *req_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        r->t0 = rnnd_clock();
        snprintf(r->method, sizeof r->method, "%s", method);
        snprintf(r->path, sizeof r->path, "%s", url);
        snprintf(r->route, sizeof r->route, "other");
        *req_cls = r;
        atomic_fetch_add(&S.inflight, 1);
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        int *served = ci ? ci->socket_context : NULL;
        if (served && (*served)++ == 0)
            atomic_fetch_sub(&S.fresh, 1);
        return MHD_YES;
    }
    if (*upload_size) {
        if (!r->too_big) {
            size_t need = r->len + *upload_size;
            if (need > (size_t)S.cfg.max_body_bytes) {
                r->too_big = 1;
                free(r->body);
                r->body = NULL;
                r->len = r->cap = 0;
            } else {
                if (need + 1 > r->cap) {
                    size_t nc = r->cap ? r->cap * 2 : 4096;
                    while (nc < need + 1) nc *= 2;
                    char *nb = realloc(r->body, nc);
                    if (!nb)
                        return MHD_NO;
                    r->body = nb;
                    r->cap = nc;
                }
                memcpy(r->body + r->len, upload, *upload_size);
                r->len = need;
                r->body[r->len] = 0;
            }
        }
        *upload_size = 0; /* consumed, or dropped once over the cap */
        return MHD_YES;
    }
    return route(c, r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    req *r = *req_cls;
    if (!r)
        return;
    double dt = rnnd_clock() - r->t0;
    int level = r->status >= 500 || r->status == 0 ? LOG_WARN : LOG_INFO;
    rnnd_log(level, "%s %s %d %.3fms%s", r->method, r->path, r->status, dt * 1e3,
             toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection closed early)");
    metrics_request(r->route, r->status, dt);
    free(r->body);
    free(r);
    *req_cls = NULL;
    atomic_fetch_sub(&S.inflight, 1);
}

/* Counts connections that have not yet sent a request: a drain waits for
 * them too, or a client that connected just before SIGTERM would get an
 * empty reply. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    (void)cls;
    (void)c;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        *socket_context = calloc(1, sizeof(int));
        if (*socket_context)
            atomic_fetch_add(&S.fresh, 1);
    } else {
        int *served = *socket_context;
        if (served && *served == 0)
            atomic_fetch_sub(&S.fresh, 1);
        free(served);
        *socket_context = NULL;
    }
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = 0;
    rnnd_log(LOG_DEBUG, "libmicrohttpd: %s", msg);
}

/* sd_notify without libsystemd: one datagram to $NOTIFY_SOCKET. */
static void notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !path[0] || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path));
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = 0;
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
    if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, len) < 0)
        rnnd_log(LOG_WARN, "sd_notify: %s", strerror(errno));
    close(fd);
}

int rnnd_serve_main(const rnnd_config *cfg)
{
    memset(&S, 0, sizeof S);
    S.cfg = *cfg;
    rnnd_log_level = cfg->log_level;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    S.reg = registry_new();
    struct stat st;
    if (stat(cfg->model_dir, &st) != 0 && mkdir(cfg->model_dir, 0755) != 0)
        rnnd_log(LOG_WARN, "model_dir %s: %s", cfg->model_dir, strerror(errno));
    int n = registry_load_dir(S.reg, cfg->model_dir);
    S.pool = pool_new(&S.cfg, S.reg);
    if (!S.reg || !S.pool) {
        rnnd_log(LOG_ERROR, "cannot start the training workers");
        return 1;
    }

    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    /* poll(), not epoll: libmicrohttpd 0.9.75's MHD_quiesce_daemon races with
     * its own epoll workers, which remove the same listen FD from their epoll
     * sets, and aborts the process when it loses (a SIGTERM under load hit
     * that in CI). Poll workers are quiesced through their ITC instead. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (strchr(cfg->listen, ':')) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)cfg->port);
        if (inet_pton(AF_INET6, cfg->listen, &a6->sin6_addr) != 1) {
            rnnd_log(LOG_ERROR, "listen: \"%s\" is not an IP address", cfg->listen);
            return 2;
        }
        flags |= MHD_USE_IPv6;
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)cfg->port);
        if (inet_pton(AF_INET, cfg->listen, &a4->sin_addr) != 1) {
            rnnd_log(LOG_ERROR, "listen: \"%s\" is not an IP address", cfg->listen);
            return 2;
        }
    }
    S.d = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_request, NULL,
                           MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                           MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->http_threads,
                           MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->connection_limit,
                           MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->per_ip_limit,
                           MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->connection_timeout,
                           MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
                           MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                           MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
                           MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                           MHD_OPTION_END);
    if (!S.d) {
        rnnd_log(LOG_ERROR, "cannot listen on %s:%d: %s", cfg->listen, cfg->port, strerror(errno));
        pool_free(S.pool);
        registry_free(S.reg);
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(S.d, MHD_DAEMON_INFO_BIND_PORT);
    int port = info ? info->port : cfg->port;
    atomic_store(&S.ready, 1);
    rnnd_log(LOG_INFO, "rnnd listening on http://%s%s%s:%d with %d model%s, %d http threads, %d train workers",
             strchr(cfg->listen, ':') ? "[" : "", cfg->listen, strchr(cfg->listen, ':') ? "]" : "", port,
             n, n == 1 ? "" : "s", cfg->http_threads, cfg->train_workers);
    notify("READY=1");

    while (!got_term) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
        if (got_hup) {
            got_hup = 0;
            notify("RELOADING=1");
            int k = registry_load_dir(S.reg, cfg->model_dir);
            rnnd_log(LOG_INFO, "SIGHUP: %d model%s (re)loaded from %s", k, k == 1 ? "" : "s", cfg->model_dir);
            notify("READY=1");
        }
    }
    rnnd_log(LOG_INFO, "shutting down: finishing requests in flight, stopping jobs");
    notify("STOPPING=1");
    atomic_store(&S.draining, 1);
    /* stop accepting: take the listening socket back from libmicrohttpd,
     * hand it the connections already waiting in the backlog (closing the
     * socket would reset them), then close it so new ones are refused */
    MHD_socket lfd = MHD_quiesce_daemon(S.d);
    if (lfd != MHD_INVALID_SOCKET) {
        /* the workers drop the listen FD from their poll sets when they see
         * the quiesce signal, which libmicrohttpd does not confirm; closing it
         * before then leaves its number in a set, where a connection accepted
         * next can reuse it (measured: 50 ms still lost a request in 1 run of
         * 10 under a burst, 200 ms none in 22). New connections wait in the
         * backlog meanwhile and are handed over below. */
        struct timespec settle = {0, 200 * 1000 * 1000};
        nanosleep(&settle, NULL);
        fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK);
        for (;;) {
            struct sockaddr_storage peer;
            socklen_t pl = sizeof peer;
            int fd = accept4(lfd, (struct sockaddr *)&peer, &pl, SOCK_CLOEXEC);
            if (fd < 0)
                break;
            if (MHD_add_connection(S.d, fd, (struct sockaddr *)&peer, pl) != MHD_YES)
                close(fd);
        }
        close(lfd);
    }
    pool_stop_all(S.pool);
    double t0 = rnnd_clock();
    /* connections handed over above are registered by libmicrohttpd's
     * threads a moment later: the server is idle only when nothing is in
     * flight on several checks in a row */
    int quiet = 0;
    while (quiet < 5 && rnnd_clock() - t0 < cfg->drain_timeout) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
        quiet = atomic_load(&S.inflight) > 0 || atomic_load(&S.fresh) > 0 ? 0 : quiet + 1;
    }
    MHD_stop_daemon(S.d);
    pool_free(S.pool);
    registry_free(S.reg);
    rnnd_log(LOG_INFO, "stopped");
    return 0;
}
