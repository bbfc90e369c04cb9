/*
 * The integration tests' harness: a real rnnd serve started as a child process on
 * 127.0.0.1 and an ephemeral port (port 0; the port is read from its log), requests
 * over libcurl, and a SIGTERM stop that must end the daemon with status 0.
 */
#include "harness.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

char dir[64];
char rnnd_bin[1024], models_src[1024];
pid_t pid;
int port;
char log_path[256];
char project_root[512];

double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void msleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "command failed: %s", cmd);
}

static int starts;

void start_daemon(const char *extra)
{
    char args[3072];
    snprintf(args, sizeof args,
             "--listen 127.0.0.1 --port 0 --model-dir '%s/models' --data-dir '%s'"
             " --http-threads 4 --max-body-bytes 65536 --max-sequence-length 2000 --max-batch 8 %s",
             dir, dir, extra);
    start_daemon_args(args);
}

void start_daemon_args(const char *args)
{
    char cmd[4096], path[256], line[512];
    /* a fresh log per start, so a stopped daemon's "listening" line is not read */
    snprintf(path, sizeof path, "%s/serve%d.log", dir, ++starts);
    snprintf(log_path, sizeof log_path, "%s", path);
    snprintf(cmd, sizeof cmd, "exec '%s' serve %s 2> '%s'", rnnd_bin, args, path);
    pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) {
        FILE *f = fopen(path, "r");
        while (f && fgets(line, sizeof line, f)) {
            char *p = strstr(line, "listening on http://127.0.0.1:");
            if (p) {
                port = atoi(p + strlen("listening on http://127.0.0.1:"));
                fclose(f);
                return;
            }
        }
        if (f) fclose(f);
        msleep(10);
    }
    ck_abort_msg("rnnd serve did not start; see %s", path);
}

/* SIGTERM and wait; returns the exit status. */
int stop_daemon(void)
{
    if (pid <= 0)
        return -1;
    kill(pid, SIGTERM);
    int st = 0;
    for (int i = 0; i < 1000; i++) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        msleep(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    pid = 0;
    return -2;
}

void setup_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/rnnd-http-XXXXXX");
    ck_assert(mkdtemp(dir));
    sh("mkdir -p '%s/models' && cp '%s/lstm.safetensors' '%s/models/wave.safetensors'"
       " && cp '%s/rnn_relu.safetensors' '%s/models/steps.safetensors'"
       " && cp '%s/lstm_classify.safetensors' '%s/models/kind.safetensors'"
       " && cp '%s/lstm_charlm.safetensors' '%s/models/chars.safetensors'",
       dir, models_src, dir, models_src, dir, models_src, dir, models_src, dir);
}

void setup_demo_dir(void)
{
    const char *demo = getenv("RNND_DEMO_MODELS");
    ck_assert_msg(demo && *demo, "RNND_DEMO_MODELS is not set (make integration sets it)");
    snprintf(dir, sizeof dir, "/tmp/rnnd-demo-XXXXXX");
    ck_assert(mkdtemp(dir));
    sh("mkdir -p '%s/models' && cp '%s/sine.safetensors' '%s/chars.safetensors' '%s/models/'", dir, demo, demo, dir);
}

void setup(void)
{
    setup_dir();
    start_daemon("");
}

void teardown(void)
{
    int st = stop_daemon();
    ck_assert_msg(st == 0, "rnnd serve exited with %d after SIGTERM", st);
    sh("rm -rf '%s'", dir);
}

/* ------------------------------------------------------------------ http */


static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    resp *r = ud;
    char *nb = realloc(r->body, r->len + sz * n + 1);
    if (!nb) return 0;
    r->body = nb;
    memcpy(r->body + r->len, p, sz * n);
    r->len += sz * n;
    r->body[r->len] = 0;
    return sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    resp *r = ud;
    size_t l = sz * n;
    if (l > 7 && !strncasecmp(p, "Allow: ", 7))
        snprintf(r->allow, sizeof r->allow, "%.*s", (int)(l - 9), p + 7);
    if (l > 10 && !strncasecmp(p, "Location: ", 10))
        snprintf(r->location, sizeof r->location, "%.*s", (int)(l - 12), p + 10);
    return l;
}

/* One request; body may be NULL. type NULL means application/json. */
resp http(const char *method, const char *path, const char *body, size_t len, const char *type,
                 const char *token)
{
    return http_from(NULL, method, path, body, len, type, token);
}

resp http_from(const char *iface, const char *method, const char *path, const char *body,
               size_t len, const char *type, const char *token)
{
    return http_at(port, iface, method, path, body, len, type, token);
}

resp http_at(int to, const char *iface, const char *method, const char *path, const char *body,
             size_t len, const char *type, const char *token)
{
    resp r = {0};
    CURL *c = curl_easy_init();
    char url[512], auth[300], ct[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", to, path);
    struct curl_slist *h = NULL;
    snprintf(ct, sizeof ct, "Content-Type: %s", type ? type : "application/json");
    h = curl_slist_append(h, ct);
    if (token) {
        /* "Basic ..." (a scheme and credentials) as it is; a bare token as Bearer */
        snprintf(auth, sizeof auth, "Authorization: %s%s", strchr(token, ' ') ? "" : "Bearer ", token);
        h = curl_slist_append(h, auth);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    if (iface)
        curl_easy_setopt(c, CURLOPT_INTERFACE, iface);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    else
        r.status = -(long)rc;
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return r;
}

resp post(const char *path, const char *body) { return http("POST", path, body, strlen(body), NULL, NULL); }
resp get(const char *path) { return http("GET", path, NULL, 0, NULL, NULL); }

cJSON *json_of(resp *r)
{
    cJSON *o = cJSON_Parse(r->body ? r->body : "");
    ck_assert_msg(o, "status %ld, body not JSON: %s", r->status, r->body ? r->body : "(none)");
    return o;
}

/* Asserts the status and that the error body names `needle`. */
void expect_error(resp r, long status, const char *needle)
{
    ck_assert_msg(r.status == status, "want %ld, got %ld: %s", status, r.status, r.body ? r.body : "");
    cJSON *o = json_of(&r);
    cJSON *e = cJSON_GetObjectItem(o, "error");
    ck_assert_msg(e && cJSON_IsString(cJSON_GetObjectItem(e, "code")), "no error object: %s", r.body);
    const char *m = cJSON_GetObjectItem(e, "message")->valuestring;
    ck_assert_msg(strstr(m, needle), "error \"%s\" should mention \"%s\"", m, needle);
    cJSON_Delete(o);
    free(r.body);
}

char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    ck_assert_msg(f, "%s", path);
    char *b = calloc(1 << 20, 1);
    size_t n = fread(b, 1, (1 << 20) - 1, f);
    b[n] = 0;
    fclose(f);
    return b;
}

/* The request of a tests/ref/models case with "model" set to name. */
char *case_request(const char *cas, const char *name)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/%s.request.json", models_src, cas);
    char *t = read_text(p);
    cJSON *o = cJSON_Parse(t);
    free(t);
    cJSON_DeleteItemFromObject(o, "model");
    cJSON_AddStringToObject(o, "model", name);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

double num(const cJSON *o, const char *k) { return cJSON_GetObjectItem(o, k)->valuedouble; }

cJSON *job_status(long id)
{
    char p[64];
    snprintf(p, sizeof p, "/train/%ld", id);
    resp r = get(p);
    ck_assert_msg(r.status == 200, "%s: %ld %s", p, r.status, r.body);
    cJSON *o = json_of(&r);
    free(r.body);
    return o;
}

const char *status_of(cJSON *o) { return cJSON_GetObjectItem(o, "status")->valuestring; }

/* Polls until the job reaches one of the final states; returns it. */
cJSON *wait_job(long id, double seconds)
{
    double t = 0;
    for (;;) {
        cJSON *o = job_status(id);
        const char *s = status_of(o);
        if (!strcmp(s, "succeeded") || !strcmp(s, "failed") || !strcmp(s, "cancelled")) return o;
        cJSON_Delete(o);
        ck_assert_msg(t < seconds, "job %ld did not finish in %.0fs", id, seconds);
        msleep(20);
        t += 0.02;
    }
}

/* wait_job with a bearer token */
cJSON *wait_job_token(long id, double seconds, const char *token)
{
    char p[64];
    snprintf(p, sizeof p, "/train/%ld", id);
    const double t0 = mono_s();
    for (;;) {
        resp r = http("GET", p, NULL, 0, NULL, token);
        ck_assert_msg(r.status == 200, "%s: %ld %s", p, r.status, r.body);
        cJSON *o = json_of(&r);
        free(r.body);
        const char *s = status_of(o);
        if (!strcmp(s, "succeeded") || !strcmp(s, "failed") || !strcmp(s, "cancelled"))
            return o;
        cJSON_Delete(o);
        ck_assert_msg(mono_s() - t0 < seconds, "job %ld did not finish in %.0fs", id, seconds);
        msleep(20);
    }
}

long submit(const char *job, long want_status)
{
    resp r = post("/train", job);
    ck_assert_msg(r.status == want_status, "POST /train: want %ld, got %ld: %s", want_status, r.status, r.body);
    long id = 0;
    if (r.status == 202) {
        cJSON *o = json_of(&r);
        id = (long)num(o, "job");
        ck_assert_str_eq(status_of(o), "queued");
        char loc[64];
        snprintf(loc, sizeof loc, "/train/%ld", id);
        ck_assert_str_eq(r.location, loc);
        cJSON_Delete(o);
    }
    free(r.body);
    return id;
}

/* Does got match want: strings equal, numbers within rel (relative, at least
 * 1 absolute), arrays and objects element by element? where names the first
 * difference. */
int json_close(const cJSON *got, const cJSON *want, double rel, char *where, size_t n)
{
    if (cJSON_IsNumber(want)) {
        if (cJSON_IsNumber(got) &&
            fabs(got->valuedouble - want->valuedouble) <= rel * fmax(1, fabs(want->valuedouble)))
            return 1;
    } else if (cJSON_IsString(want)) {
        if (cJSON_IsString(got) && !strcmp(got->valuestring, want->valuestring))
            return 1;
    } else if (cJSON_IsArray(want) || cJSON_IsObject(want)) {
        if (cJSON_IsArray(want) ? !cJSON_IsArray(got) : !cJSON_IsObject(got))
            goto differ;
        if (cJSON_IsArray(want) && cJSON_GetArraySize(got) != cJSON_GetArraySize(want))
            goto differ;
        int i = 0;
        for (const cJSON *w = want->child, *g = got->child; w; w = w->next, i++) {
            const cJSON *gi = cJSON_IsArray(want) ? g : cJSON_GetObjectItemCaseSensitive(got, w->string);
            char sub[64];
            if (cJSON_IsArray(want)) {
                snprintf(sub, sizeof sub, "[%d]", i);
                g = g->next;
            } else {
                snprintf(sub, sizeof sub, ".%s", w->string);
            }
            if (!gi || !json_close(gi, w, rel, where, n)) {
                size_t k = strlen(sub);
                memmove(where + k, where, strnlen(where, n - k - 1) + 1);
                memcpy(where, sub, k);
                return 0;
            }
        }
        return 1;
    } else if (cJSON_Compare(got, want, 1)) {
        return 1;
    }
differ:;
    char *a = cJSON_PrintUnformatted(got), *b = cJSON_PrintUnformatted(want);
    snprintf(where, n, ": %.80s, want %.80s", a ? a : "(none)", b ? b : "?");
    free(a);
    free(b);
    return 0;
}


double metric_value(const char *series)
{
    resp r = get("/metrics");
    char key[256];
    snprintf(key, sizeof key, "\n%s ", series);
    const char *at = r.body ? strstr(r.body, key) : NULL;
    const double v = at ? atof(at + strlen(key)) : -1;
    free(r.body);
    return v;
}

/* The tensor bytes of a safetensors file (after its header), malloc'd. */
static unsigned char *weights_of(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f, "%s: missing", path);
    uint64_t hl = 0;
    ck_assert(fread(&hl, 8, 1, f) == 1);
    fseek(f, 0, SEEK_END);
    const long len = ftell(f);
    ck_assert((long)hl + 8 <= len);
    *n = (size_t)(len - 8 - (long)hl);
    unsigned char *b = malloc(*n + 1);
    fseek(f, 8 + (long)hl, SEEK_SET);
    ck_assert(fread(b, 1, *n, f) == *n);
    fclose(f);
    return b;
}

int same_weights(const char *a, const char *b)
{
    size_t na, nb;
    unsigned char *x = weights_of(a, &na), *y = weights_of(b, &nb);
    const int same = na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}
