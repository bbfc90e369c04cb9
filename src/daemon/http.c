/*
 * The HTTP layer: replies and their error shape, body checks, the route
 * table's dispatch, and the libmicrohttpd callbacks. libmicrohttpd runs its
 * polling thread and a pool of `http_threads` threads (poll); every request
 * gets a `req` in *req_cls on its first call, its body is appended there up
 * to `max_body_bytes` (beyond that the rest is read and dropped, and the
 * answer is 413), and the completion callback logs one line, counts metrics
 * and frees it.
 */
#include "http.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* ------------------------------------------------------------------ responses */

/* While draining, every answer closes its connection, so keep-alive
 * clients do not hold the server open. */
static answer queue(struct MHD_Connection *c, req *r, int status, struct MHD_Response *resp)
{
    if (atomic_load(&S.draining))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    r->status = status;
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

answer send_text(struct MHD_Connection *c, req *r, int status, const char *type,
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
char *json_text(cJSON *o)
{
    size_t n;
    char *t = rnn_json_line(o, &n);
    cJSON_Delete(o);
    return t;
}

answer send_json(struct MHD_Connection *c, req *r, int status, cJSON *o)
{
    return send_json_header(c, r, status, o, NULL, NULL);
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

answer send_json_header(struct MHD_Connection *c, req *r, int status, cJSON *o, const char *hname,
                       const char *hvalue)
{
    char *s = json_text(o);
    struct MHD_Response *resp = s ? MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE) : NULL;
    if (!resp) {
        free(s);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (hname)
        MHD_add_response_header(resp, hname, hvalue);
    return queue(c, r, status, resp);
}

static cJSON *error_json(int status, const char *msg)
{
    cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "code", code_of(status));
    cJSON_AddStringToObject(e, "message", msg);
    return o;
}

answer send_error_header(struct MHD_Connection *c, req *r, int status, const char *hname,
                        const char *hvalue, const char *msg)
{
    return send_json_header(c, r, status, error_json(status, msg), hname, hvalue);
}

answer send_error(struct MHD_Connection *c, req *r, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return send_json(c, r, status, error_json(status, msg));
}

static answer send_405(struct MHD_Connection *c, req *r, const char *allow)
{
    char msg[320];
    snprintf(msg, sizeof msg, "%s %s is not allowed; allowed: %s", r->method, r->path, allow);
    return send_error_header(c, r, 405, MHD_HTTP_HEADER_ALLOW, allow, msg);
}

/* ------------------------------------------------------------------ bodies */


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

int body_checks(struct MHD_Connection *c, req *r, answer *ret)
{
    if (!json_content(c)) {
        *ret = send_error(c, r, 415, "Content-Type must be application/json");
        return 0;
    }
    if (json_depth(r->body ? r->body : "", r->len) > MAX_DEPTH) {
        *ret = send_error(c, r, 400, "JSON nested deeper than %d levels", MAX_DEPTH);
        return 0;
    }
    return 1;
}

cJSON *parse_body(struct MHD_Connection *c, req *r, answer *ret)
{
    if (!body_checks(c, r, ret))
        return NULL;
    const long nul = rnn_json_nul_at(r->body ? r->body : "", r->len);
    if (nul >= 0) {
        *ret = send_error(c, r, 400,
                          "request body: a string holds \\u0000 (a NUL character) at byte %ld; "
                          "no name, text or path may contain one", nul);
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

/* ------------------------------------------------------------------ routing */

/* Does path match pattern, segment by segment? "{x}" takes one non-empty
 * segment, copied into r->args and pointed at by the next r->arg. */
static int match(const char *pat, const char *path, req *r)
{
    int na = 0;
    size_t used = 0;
    memset(r->arg, 0, sizeof r->arg);
    while (*pat && *path) {
        if (*pat != '/' || *path != '/')
            return 0;
        pat++, path++;
        const size_t pl = strcspn(pat, "/"), sl = strcspn(path, "/");
        if (pat[0] == '{') {
            if (sl == 0 || na == MAX_ARGS || used + sl + 1 > sizeof r->args)
                return 0;
            r->arg[na++] = memcpy(r->args + used, path, sl);
            r->args[used + sl] = 0;
            used += sl + 1;
        } else if (pl != sl || strncmp(pat, path, sl)) {
            return 0;
        }
        pat += pl, path += sl;
    }
    return !*pat && !*path;
}

static int method_is(const char *want, const char *m)
{
    return !strcmp(want, m) || (!strcmp(want, "GET") && !strcmp(m, "HEAD"));
}

/* The route for the request's path and method: 404 when no pattern matches
 * the path, 405 listing the methods of those that do, then who may call it
 * and the body limit. */
static answer dispatch(struct MHD_Connection *c, req *r)
{
    char allow[64] = "";
    const route *hit = NULL;
    for (int i = 0; i < nroutes && !hit; i++) {
        if (!match(routes[i].pattern, r->path, r))
            continue;
        r->route = routes[i].pattern;
        if (method_is(routes[i].method, r->method))
            hit = &routes[i];
        else if (!strstr(allow, routes[i].method))
            snprintf(allow + strlen(allow), sizeof allow - strlen(allow), "%s%s",
                     allow[0] ? ", " : "", routes[i].method);
    }
    if (!hit && !allow[0])
        return send_error(c, r, 404, "no such endpoint: %.100s", r->path);
    if (!hit)
        return send_405(c, r, allow);
    if (hit->access != OPEN && !authorized(c))
        return send_401(c, r, hit->access == PAGE);
    if (r->too_big)
        return send_error(c, r, 413, "request body over %ld bytes (%s)", r->limit,
                          hit->access == UPLOAD ? "max_upload_bytes" : "max_body_bytes");
    return hit->fn(c, r);
}

/* The body a request may send: max_upload_bytes to an upload route for a
 * caller with the token (others may send none: their body is dropped as it
 * comes, and dispatch answers 401), else max_body_bytes. */
static long body_limit(struct MHD_Connection *c, req *r)
{
    for (int i = 0; i < nroutes; i++)
        if (routes[i].access == UPLOAD && method_is(routes[i].method, r->method) && match(routes[i].pattern, r->path, r))
            return authorized(c) ? S.cfg.max_upload_bytes : 0;
    return S.cfg.max_body_bytes;
}

/* ------------------------------------------------------------------ libmicrohttpd glue */

/* Every open connection, for request_timeout: the time it began waiting
 * for a request (its start, or its last reply), and whether one has been
 * received in full and is being answered. */
struct conn {
    int fd;
    atomic_int served;      /* requests begun on it */
    atomic_int busy;
    double since;           /* rnnd_clock(), under conns_mu */
    int cut;                /* shut down by http_sweep */
    conn *prev, *next;
};

static pthread_mutex_t conns_mu = PTHREAD_MUTEX_INITIALIZER;
static conn *conns;

static conn *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* The next request's deadline runs from the reply to this one. */
static void conn_idle(struct MHD_Connection *c)
{
    conn *cn = conn_of(c);
    if (!cn)
        return;
    pthread_mutex_lock(&conns_mu);
    cn->since = rnnd_clock();
    atomic_store(&cn->busy, 0);
    pthread_mutex_unlock(&conns_mu);
}

/* Tracks connections for http_sweep, and counts those that have not yet
 * sent a request: a drain waits for them too, or a client that connected
 * just before SIGTERM would get an empty reply. libmicrohttpd reports a
 * connection closed before it closes its socket, so a socket http_sweep
 * finds in the list under the lock is still the connection's. */
void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                   enum MHD_ConnectionNotificationCode code)
{
    (void)cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        conn *cn = calloc(1, sizeof *cn);
        *socket_context = cn;
        if (!cn)
            return;
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        cn->fd = ci ? ci->connect_fd : -1;
        atomic_fetch_add(&S.fresh, 1);
        pthread_mutex_lock(&conns_mu);
        cn->since = rnnd_clock();
        cn->next = conns;
        if (conns)
            conns->prev = cn;
        conns = cn;
        pthread_mutex_unlock(&conns_mu);
    } else {
        conn *cn = *socket_context;
        if (!cn)
            return;
        if (atomic_load(&cn->served) == 0)
            atomic_fetch_sub(&S.fresh, 1);
        pthread_mutex_lock(&conns_mu);
        if (cn->prev)
            cn->prev->next = cn->next;
        else
            conns = cn->next;
        if (cn->next)
            cn->next->prev = cn->prev;
        pthread_mutex_unlock(&conns_mu);
        free(cn);
        *socket_context = NULL;
    }
}

int http_sweep(double timeout)
{
    const double now = rnnd_clock();
    int n = 0;
    pthread_mutex_lock(&conns_mu);
    for (conn *cn = conns; cn; cn = cn->next)
        if (!cn->cut && cn->fd >= 0 && !atomic_load(&cn->busy) && now - cn->since > timeout) {
            /* libmicrohttpd sees the end of the stream and closes it */
            shutdown(cn->fd, SHUT_RDWR);
            cn->cut = 1;
            n++;
        }
    pthread_mutex_unlock(&conns_mu);
    return n;
}

enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
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
        r->route = "other";
        r->limit = body_limit(c, r);
        *req_cls = r;
        atomic_fetch_add(&S.inflight, 1);
        conn *cn = conn_of(c);
        if (cn && atomic_fetch_add(&cn->served, 1) == 0)
            atomic_fetch_sub(&S.fresh, 1);
        return MHD_YES;
    }
    if (r->job)
        return batch_answer(c, r);
    if (*upload_size) {
        if (!r->too_big) {
            size_t need = r->len + *upload_size;
            if (need > (size_t)r->limit) {
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
    conn *cn = conn_of(c);
    if (cn)
        atomic_store(&cn->busy, 1); /* received in full: request_timeout no longer runs */
    return dispatch(c, r);
}

void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
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
    conn_idle(c);
    batch_free(r->job);
    free(r->body);
    free(r);
    *req_cls = NULL;
    atomic_fetch_sub(&S.inflight, 1);
}

void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = 0;
    rnnd_log(LOG_DEBUG, "libmicrohttpd: %s", msg);
}

