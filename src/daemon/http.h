/*
 * What the parts of the HTTP server share (http.c, auth.c, routes.c,
 * sessions.c, kserve.c, server.c): the server's state, a request, the reply
 * helpers and the route table. Internal to the daemon.
 */
#ifndef RNND_HTTP_H
#define RNND_HTTP_H

#include "daemon.h"

#include <cJSON.h>
#include <microhttpd.h>

typedef struct sessions sessions;
typedef struct pjob pjob;
typedef struct conn conn;

typedef struct server {
    rnnd_config cfg;
    registry *reg;
    job_pool *pool;
    sessions *sess;
    struct MHD_Daemon *d;
    atomic_int inflight;        /* requests begun and not completed */
    atomic_int fresh;           /* connections that have not sent a request yet */
    atomic_int draining;
    atomic_int ready;
} server;

extern server S;

#define MAX_ARGS 3

typedef struct req {
    double t0;                  /* rnnd_clock() at the first byte */
    char method[8];
    char path[128];
    const char *route;          /* the pattern that matched, for logs and metrics */
    int status;
    char *body;
    size_t len, cap;
    int too_big;
    long limit;                 /* the body it may send (body_limit) */
    char *arg[MAX_ARGS];        /* the {segments} of the pattern, in order */
    char args[128];             /* their text */
    pjob *job;                  /* a prediction queued for the workers (batcher.c) */
} req;

/* ------------------------------------------------------------------ replies (http.c) */

typedef enum MHD_Result answer;

answer send_text(struct MHD_Connection *c, req *r, int status, const char *type, char *body,
                size_t len);
/* Deletes o. */
answer send_json(struct MHD_Connection *c, req *r, int status, cJSON *o);
/* {"error": {"code", "message"}}, the code named after the status. */
answer send_error(struct MHD_Connection *c, req *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The same with one extra header (Allow, WWW-Authenticate, Location). */
answer send_error_header(struct MHD_Connection *c, req *r, int status, const char *hname,
                        const char *hvalue, const char *msg);
/* Deletes o; adds a header unless hname is NULL. */
answer send_json_header(struct MHD_Connection *c, req *r, int status, cJSON *o, const char *hname,
                       const char *hvalue);
/* The reply text of o, which it deletes: compact JSON and a newline. */
char *json_text(cJSON *o);
/* Parses a JSON object body, answering 400/415 itself; NULL when it has. */
cJSON *parse_body(struct MHD_Connection *c, req *r, answer *ret);
/* Content-Type is application/json, and the body is not nested too deep;
 * answers 415/400 itself and returns 0 when not. */
int body_checks(struct MHD_Connection *c, req *r, answer *ret);

/* ------------------------------------------------------------------ auth (auth.c) */

/* `Authorization: Bearer TOKEN`, or Basic with the token as password. */
int authorized(struct MHD_Connection *c);
/* page: the browser's Basic challenge, else Bearer. */
answer send_401(struct MHD_Connection *c, req *r, int page);

/* ------------------------------------------------------------------ routes */

typedef answer (*handler)(struct MHD_Connection *c, req *r);

/* who may call a route: anyone, the token (API), the token (browser), the
 * token with a body up to max_upload_bytes (instead of max_body_bytes) */
enum { OPEN, TOKEN, PAGE, UPLOAD };

typedef struct route {
    const char *pattern;        /* segments, "{name}" capturing one */
    const char *method;         /* GET answers HEAD too */
    int access;
    handler fn;
} route;

/* Every route of the server (routes.c); from it follow 404, and 405 with
 * Allow listing the methods a path has. */
extern const route routes[];
extern const int nroutes;

/* ------------------------------------------------------------------ sessions (sessions.c) */

typedef struct session session;
sessions *sessions_new(void);
void sessions_free(sessions *t);
/* A new session on model version m (which it references) under id, or a
 * random id when NULL; NULL with *status 429 (max sessions open), 409 (id
 * taken) or 503, and err. The caller holds a reference. */
session *session_open(sessions *t, const char *id, served_model *m, int max, int *status,
                      char *err, size_t errlen);
session *session_get(sessions *t, const char *id);     /* a reference, or NULL */
void session_release(session *s);
int session_end(sessions *t, const char *id);          /* -1: no such session */
/* Ends sessions idle for more than idle_s; returns how many. */
int sessions_expire(sessions *t, double idle_s);
int sessions_count(sessions *t);
const char *session_id(const session *s);
served_model *session_model(const session *s);
long session_position(session *s);
rnn_stream *session_stream(session *s);
/* Held while a request steps the session; unlock records its use. */
void session_lock(session *s);
void session_unlock(session *s);
/* One request's steps through the session (rnn_stream_json) into reply. */
int session_run(session *s, const cJSON *body, cJSON *reply, int *status, rnn_err *err);
/* The model a request body names, or the only one loaded; else answers
 * the error itself and returns NULL. A reference. */
served_model *model_of_request(struct MHD_Connection *c, req *r, const cJSON *o, answer *ret);

/* Routes of sessions and of the Open Inference Protocol (sessions.c, kserve.c). */
/* training data files (uploads.c) */
answer do_data_put(struct MHD_Connection *c, req *r);
answer do_data_list(struct MHD_Connection *c, req *r);
answer do_data_delete(struct MHD_Connection *c, req *r);
answer do_session_open(struct MHD_Connection *c, req *r);
answer do_session_step(struct MHD_Connection *c, req *r);
answer do_session_get(struct MHD_Connection *c, req *r);
answer do_session_list(struct MHD_Connection *c, req *r);
answer do_session_delete(struct MHD_Connection *c, req *r);
answer do_v2_server(struct MHD_Connection *c, req *r);
answer do_v2_live(struct MHD_Connection *c, req *r);
answer do_v2_ready(struct MHD_Connection *c, req *r);
answer do_v2_model(struct MHD_Connection *c, req *r);
answer do_v2_model_ready(struct MHD_Connection *c, req *r);
answer do_v2_infer(struct MHD_Connection *c, req *r);

/* The calling thread's prediction buffers (routes.c). */
rnn_predictor *thread_predictor(void);
rnn_limits predict_limits(void);

/* ------------------------------------------------------------------ batching (batcher.c) */

int batcher_start(int threads);
/* Runs what is queued, then stops the workers. */
void batcher_stop(void);
/* Queues a prediction of model s (a reference, which it takes, as it takes
 * body) and suspends the connection until a worker has answered it. */
answer batch_submit(struct MHD_Connection *c, req *r, cJSON *body, served_model *s);
/* The same for a request to a session (a reference, which it takes). */
answer batch_submit_session(struct MHD_Connection *c, req *r, cJSON *body, session *s);
/* The callback after a worker resumed the connection: sends the reply. */
answer batch_answer(struct MHD_Connection *c, req *r);
void batch_free(pjob *j);

/* ------------------------------------------------------------------ libmicrohttpd (http.c) */

enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                           const char *method, const char *version, const char *upload,
                           size_t *upload_size, void **req_cls);
void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                  enum MHD_RequestTerminationCode toe);
void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                   enum MHD_ConnectionNotificationCode code);
void mhd_log(void *cls, const char *fmt, va_list ap);
/* Shuts connections that have waited more than timeout seconds for a whole
 * request (headers and body) since they opened or were last answered;
 * returns how many. */
int http_sweep(double timeout);

#endif
