/*
 * rnnd serve against real HTTP: each test case starts the daemon as a child
 * process on 127.0.0.1 and an ephemeral port (port 0; the port is read from
 * its log), talks to it with libcurl, and stops it with SIGTERM, which must
 * end it with status 0.
 */
#include <check.h>
#include <cJSON.h>
#include <curl/curl.h>
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

static char dir[64];
static char rnnd_bin[1024], models_src[1024];
static pid_t pid;
static int port;

static void msleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "command failed: %s", cmd);
}

/* Starts rnnd serve with extra flags; waits for its "listening" line. */
static int starts;

static void start_daemon(const char *extra)
{
    char cmd[4096], path[256], line[512];
    /* a fresh log per start, so a stopped daemon's "listening" line is not read */
    snprintf(path, sizeof path, "%s/serve%d.log", dir, ++starts);
    snprintf(cmd, sizeof cmd,
             "exec '%s' serve --listen 127.0.0.1 --port 0 --model-dir '%s/models' --data-dir '%s'"
             " --http-threads 4 --max-body-bytes 65536 --max-sequence-length 2000 --max-batch 8 %s"
             " 2> '%s'",
             rnnd_bin, dir, dir, extra, path);
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
static int stop_daemon(void)
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

static void setup_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/rnnd-http-XXXXXX");
    ck_assert(mkdtemp(dir));
    sh("mkdir -p '%s/models' && cp '%s/lstm.safetensors' '%s/models/wave.safetensors'"
       " && cp '%s/rnn_relu.safetensors' '%s/models/steps.safetensors'"
       " && cp '%s/lstm_classify.safetensors' '%s/models/kind.safetensors'"
       " && cp '%s/lstm_charlm.safetensors' '%s/models/chars.safetensors'",
       dir, models_src, dir, models_src, dir, models_src, dir, models_src, dir);
}

static void setup(void)
{
    setup_dir();
    start_daemon("");
}

static void teardown(void)
{
    int st = stop_daemon();
    ck_assert_msg(st == 0, "rnnd serve exited with %d after SIGTERM", st);
    sh("rm -rf '%s'", dir);
}

/* ------------------------------------------------------------------ http */

typedef struct resp {
    long status;
    char *body;
    size_t len;
    char allow[128];
    char location[128];
} resp;

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
static resp http(const char *method, const char *path, const char *body, size_t len, const char *type,
                 const char *token)
{
    resp r = {0};
    CURL *c = curl_easy_init();
    char url[512], auth[300], ct[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    struct curl_slist *h = NULL;
    snprintf(ct, sizeof ct, "Content-Type: %s", type ? type : "application/json");
    h = curl_slist_append(h, ct);
    if (token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        h = curl_slist_append(h, auth);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
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

static resp post(const char *path, const char *body) { return http("POST", path, body, strlen(body), NULL, NULL); }
static resp get(const char *path) { return http("GET", path, NULL, 0, NULL, NULL); }

static cJSON *json_of(resp *r)
{
    cJSON *o = cJSON_Parse(r->body ? r->body : "");
    ck_assert_msg(o, "status %ld, body not JSON: %s", r->status, r->body ? r->body : "(none)");
    return o;
}

/* Asserts the status and that the error body names `needle`. */
static void expect_error(resp r, long status, const char *needle)
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

static char *read_text(const char *path)
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
static char *case_request(const char *cas, const char *name)
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

static double num(const cJSON *o, const char *k) { return cJSON_GetObjectItem(o, k)->valuedouble; }

/* ------------------------------------------------------------------ tests */

START_TEST(test_predict_each_task)
{
    static const char *const pairs[][2] = {
        {"lstm", "wave"}, {"rnn_relu", "steps"}, {"lstm_classify", "kind"}, {"lstm_charlm", "chars"}};
    for (int k = 0; k < 4; k++) {
        char *req = case_request(pairs[k][0], pairs[k][1]);
        resp r = post("/predict", req);
        ck_assert_msg(r.status == 200, "%s: %ld %s", pairs[k][1], r.status, r.body);
        cJSON *got = json_of(&r);
        char p[1200];
        snprintf(p, sizeof p, "%s/%s.expected.json", models_src, pairs[k][0]);
        char *t = read_text(p);
        cJSON *want = cJSON_Parse(t);
        ck_assert_str_eq(cJSON_GetObjectItem(got, "model")->valuestring, pairs[k][1]);
        ck_assert_int_eq((int)num(got, "version"), 1);
        /* the same answer as PyTorch, over HTTP */
        for (const cJSON *f = want->child; f; f = f->next) {
            if (!strcmp(f->string, "model")) continue;
            const cJSON *g = cJSON_GetObjectItem(got, f->string);
            ck_assert_msg(g, "%s: reply has no %s", pairs[k][1], f->string);
            char *a = cJSON_PrintUnformatted(g), *b = cJSON_PrintUnformatted(f);
            if (cJSON_IsString(f)) {
                ck_assert_str_eq(a, b);
            } else if (cJSON_IsNumber(f)) {
                ck_assert_msg(fabs(g->valuedouble - f->valuedouble) <= 1e-5 * fmax(1, fabs(f->valuedouble)),
                              "%s %s: %s vs %s", pairs[k][1], f->string, a, b);
            }
            free(a); free(b);
        }
        printf("  predict %-6s -> %.120s\n", pairs[k][1], r.body);
        cJSON_Delete(got); cJSON_Delete(want);
        free(t); free(req); free(r.body);
    }
    /* forecast length and return_sequences shape */
    resp r = post("/predict", "{\"model\": \"wave\", \"sequence\": [0.1, 0.2, 0.3], \"steps\": 5, \"return_sequences\": true}");
    ck_assert_int_eq(r.status, 200);
    cJSON *o = json_of(&r);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "forecast")), 5);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "outputs")), 3);
    cJSON_Delete(o); free(r.body);
    r = get("/models/kind");
    ck_assert_int_eq(r.status, 200);
    o = json_of(&r);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "config"), "task")->valuestring, "classify");
    cJSON_Delete(o); free(r.body);
}
END_TEST

static cJSON *job_status(long id)
{
    char p[64];
    snprintf(p, sizeof p, "/train/%ld", id);
    resp r = get(p);
    ck_assert_msg(r.status == 200, "%s: %ld %s", p, r.status, r.body);
    cJSON *o = json_of(&r);
    free(r.body);
    return o;
}

static const char *status_of(cJSON *o) { return cJSON_GetObjectItem(o, "status")->valuestring; }

/* Polls until the job reaches one of the final states; returns it. */
static cJSON *wait_job(long id, double seconds)
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

static long submit(const char *job, long want_status)
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

#define SINE_JOB(name, epochs, samples) \
    "{\"model\": \"" name "\", \"cell\": \"gru\", \"hidden\": 8, \"data\": {\"generator\": \"sine\", " \
    "\"samples\": " #samples ", \"window\": 20}, \"epochs\": " #epochs ", \"batch\": 8, \"validation\": 0.2}"

START_TEST(test_job_life_and_swap)
{
    long id = submit(SINE_JOB("fresh", 4, 64), 202);
    cJSON *o = wait_job(id, 60);
    ck_assert_msg(!strcmp(status_of(o), "succeeded"), "%s", cJSON_PrintUnformatted(o));
    ck_assert_int_eq((int)num(o, "epoch"), 4);
    ck_assert(num(o, "loss") > 0);
    cJSON_Delete(o);
    char p[128];
    snprintf(p, sizeof p, "%s/models/fresh.safetensors", dir);
    struct stat st;
    ck_assert_msg(stat(p, &st) == 0, "the trained model was not saved to model_dir");
    resp r = post("/predict", "{\"model\": \"fresh\", \"sequence\": [0, 0.84, 0.9, 0.14, -0.75]}");
    ck_assert_int_eq(r.status, 200);
    o = json_of(&r);
    ck_assert_int_eq((int)num(o, "version"), 1);
    double before = num(o, "prediction");
    cJSON_Delete(o); free(r.body);
    /* fine-tune: same name, new version, different prediction */
    id = submit(SINE_JOB("fresh", 3, 64), 202);
    o = wait_job(id, 60);
    ck_assert_str_eq(status_of(o), "succeeded");
    ck_assert_int_eq((int)num(o, "version"), 2);
    cJSON_Delete(o);
    r = post("/predict", "{\"model\": \"fresh\", \"sequence\": [0, 0.84, 0.9, 0.14, -0.75]}");
    o = json_of(&r);
    ck_assert_int_eq((int)num(o, "version"), 2);
    ck_assert(num(o, "prediction") != before);
    cJSON_Delete(o); free(r.body);
    /* loss history per job and per model */
    snprintf(p, sizeof p, "/admin/loss?job=%ld", id);
    r = get(p);
    o = json_of(&r);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "points")), 3);
    cJSON_Delete(o); free(r.body);
    r = get("/admin/loss?model=fresh");
    o = json_of(&r);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "points")), 7);
    cJSON_Delete(o); free(r.body);
    r = get("/metrics");
    ck_assert_msg(strstr(r.body, "rnnd_model_version{model=\"fresh\"} 2"), "%s", r.body);
    ck_assert(strstr(r.body, "rnnd_jobs{state=\"succeeded\"} 2"));
    free(r.body);
    r = get("/admin");
    ck_assert_int_eq(r.status, 200);
    ck_assert(strstr(r.body, "<svg id=\"chart\""));
    free(r.body);
}
END_TEST

START_TEST(test_cancel_queue_and_429)
{
    /* one worker (default) and a queue of 1 (this daemon's flag) */
    stop_daemon();
    start_daemon("--train-queue 1");
    long a = submit(SINE_JOB("slow", 100000, 400), 202);
    for (int i = 0; i < 500; i++) {
        cJSON *o = job_status(a);
        int running = !strcmp(status_of(o), "running");
        cJSON_Delete(o);
        if (running) break;
        msleep(10);
    }
    long b = submit(SINE_JOB("second", 1, 40), 202);
    cJSON *o = job_status(b);
    ck_assert_str_eq(status_of(o), "queued");   /* one worker: the second waits */
    cJSON_Delete(o);
    resp r = post("/train", SINE_JOB("third", 1, 40));
    expect_error(r, 429, "queue is full");
    /* cancel the running job: it stops at its next step, the queued one runs */
    char p[64];
    snprintf(p, sizeof p, "/train/%ld", a);
    r = http("DELETE", p, NULL, 0, NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    free(r.body);
    o = wait_job(a, 30);
    ck_assert_str_eq(status_of(o), "cancelled");
    cJSON_Delete(o);
    o = wait_job(b, 30);
    ck_assert_str_eq(status_of(o), "succeeded");
    cJSON_Delete(o);
    /* a cancelled job published nothing */
    r = get("/models/slow");
    expect_error(r, 404, "not loaded");
    r = get("/train");
    o = json_of(&r);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "jobs")), 2);
    cJSON_Delete(o); free(r.body);
}
END_TEST

typedef struct loader { atomic_int stop; int requests, failures, regressions; long last_version; } loader;

static void *predict_loop(void *arg)
{
    loader *l = arg;
    while (!atomic_load(&l->stop)) {
        resp r = post("/predict", "{\"model\": \"fresh\", \"sequence\": [0.1, 0.5, 0.9, 0.3]}");
        l->requests++;
        cJSON *o = r.status == 200 ? cJSON_Parse(r.body) : NULL;
        if (!o) {
            l->failures++;
        } else {
            long v = (long)cJSON_GetObjectItem(o, "version")->valuedouble;
            if (v < l->last_version) l->regressions++;
            l->last_version = v;
            cJSON_Delete(o);
        }
        free(r.body);
    }
    return NULL;
}

START_TEST(test_swap_under_load)
{
    long id = submit(SINE_JOB("fresh", 1, 40), 202);
    cJSON *o = wait_job(id, 30);
    cJSON_Delete(o);
    loader ls[3];
    pthread_t th[3];
    memset(ls, 0, sizeof ls);
    for (int i = 0; i < 3; i++) pthread_create(&th[i], NULL, predict_loop, &ls[i]);
    for (int k = 0; k < 4; k++) {
        id = submit(SINE_JOB("fresh", 2, 40), 202);
        o = wait_job(id, 60);
        ck_assert_str_eq(status_of(o), "succeeded");
        cJSON_Delete(o);
    }
    msleep(100);
    int total = 0, failed = 0;
    for (int i = 0; i < 3; i++) {
        atomic_store(&ls[i].stop, 1);
        pthread_join(th[i], NULL);
        total += ls[i].requests;
        failed += ls[i].failures;
        ck_assert_msg(ls[i].regressions == 0, "a client saw the version go backwards");
        ck_assert_msg(ls[i].last_version == 5, "client ended on version %ld, want 5", ls[i].last_version);
    }
    printf("  swap under load: %d predictions during 4 swaps, %d failed\n", total, failed);
    ck_assert_int_eq(failed, 0);
    ck_assert(total > 20);
}
END_TEST

START_TEST(test_error_paths)
{
    expect_error(post("/predict", "{\"model\": \"wave\", \"sequence\": [1, 2"), 400, "not valid JSON");
    char *deep = malloc(20010);
    memset(deep, '[', 10000);
    memset(deep + 10000, ']', 10000);
    deep[20000] = 0;
    expect_error(post("/predict", deep), 400, "nested deeper");
    free(deep);
    expect_error(post("/predict", "{\"model\": \"wave\", \"sequence\": \"abc\"}"), 400, "sequence");
    expect_error(post("/predict", "{\"model\": \"wave\", \"sequence\": [1, true]}"), 400, "sequence[1]");
    expect_error(post("/predict", "{\"model\": \"wave\", \"sequence\": []}"), 422, "empty");
    expect_error(post("/predict", "{\"model\": \"wave\", \"sequence\": [1, 1e999]}"), 422, "sequence[1]: not a finite");
    expect_error(post("/predict", "{\"model\": \"wave\", \"sequence\": [1], \"steps\": \"5\"}"), 400, "steps");
    expect_error(post("/predict", "{\"model\": \"wave\", \"sequence\": [1], \"colour\": 1}"), 400, "colour: unknown key");
    expect_error(post("/predict", "{\"model\": \"nope\", \"sequence\": [1]}"), 404, "nope");
    expect_error(post("/predict", "{\"sequence\": [1]}"), 400, "model: missing");
    expect_error(post("/predict", "{\"model\": \"kind\", \"sequences\": [[[1,2,3]],[[1,2,3]],[[1,2,3]],[[1,2,3]],"
                                  "[[1,2,3]],[[1,2,3]],[[1,2,3]],[[1,2,3]],[[1,2,3]]]}"), 413, "max_batch");
    /* a sequence over max_sequence_length (2000 here) */
    char *longseq = malloc(20000);
    int p = sprintf(longseq, "{\"model\": \"wave\", \"sequence\": [");
    for (int i = 0; i < 2500; i++) p += sprintf(longseq + p, "%s0", i ? "," : "");
    sprintf(longseq + p, "]}");
    expect_error(post("/predict", longseq), 413, "max_sequence_length");
    free(longseq);
    /* a body over max_body_bytes (64 KiB here) */
    size_t big = 100000;
    char *body = malloc(big + 1);
    memset(body, ' ', big);
    memcpy(body, "{\"model\": \"wave\"", 16);
    body[big - 1] = '}';
    body[big] = 0;
    expect_error(http("POST", "/predict", body, big, NULL, NULL), 413, "max_body_bytes");
    free(body);
    expect_error(http("POST", "/predict", "{}", 2, "text/plain", NULL), 415, "application/json");
    resp r = http("PUT", "/predict", NULL, 0, NULL, NULL);
    ck_assert_str_eq(r.allow, "POST");
    expect_error(r, 405, "not allowed");
    r = http("POST", "/healthz", "{}", 2, NULL, NULL);
    ck_assert_str_eq(r.allow, "GET");
    expect_error(r, 405, "not allowed");
    expect_error(get("/nowhere"), 404, "no such endpoint");
    expect_error(get("/train/999"), 404, "no job");
    expect_error(post("/train", "{\"model\": \"x\", \"data\": {\"generator\": \"sine\"}, \"hidden\": -1}"), 422, "hidden");
    expect_error(post("/train", "{\"data\": {\"generator\": \"sine\"}}"), 422, "model: missing");
    expect_error(post("/train", "{\"model\": \"wave\", \"data\": {\"sequences\": [[[1,2]]], \"targets\": [1]}}"), 422, "from_scratch");
    /* the served models are untouched by all of this */
    r = post("/predict", "{\"model\": \"wave\", \"sequence\": [0.5]}");
    ck_assert_int_eq(r.status, 200);
    free(r.body);
    r = get("/readyz");
    ck_assert_int_eq(r.status, 200);
    free(r.body);
}
END_TEST

START_TEST(test_auth_token)
{
    stop_daemon();
    start_daemon("--auth-token s3cret");
    expect_error(post("/train", SINE_JOB("t", 1, 40)), 401, "bearer token");
    expect_error(http("POST", "/train", SINE_JOB("t", 1, 40), strlen(SINE_JOB("t", 1, 40)), NULL, "wrong"), 401, "bearer token");
    expect_error(get("/admin/loss?model=wave"), 401, "bearer token");
    expect_error(get("/admin"), 401, "bearer token");
    resp r = http("POST", "/train", SINE_JOB("t", 1, 40), strlen(SINE_JOB("t", 1, 40)), NULL, "s3cret");
    ck_assert_int_eq(r.status, 202);
    free(r.body);
    r = http("GET", "/admin/loss?model=wave", NULL, 0, NULL, "s3cret");
    ck_assert_int_eq(r.status, 200);
    free(r.body);
    /* predictions and health stay open */
    r = post("/predict", "{\"model\": \"wave\", \"sequence\": [0.5]}");
    ck_assert_int_eq(r.status, 200);
    free(r.body);
}
END_TEST

typedef struct burst { int answered, failed; long why; } burst;

static void *burst_loop(void *arg)
{
    burst *b = arg;
    for (int i = 0; i < 400; i++) {
        resp r = post("/predict", "{\"model\": \"wave\", \"sequence\": [0.1, 0.2, 0.3, 0.4, 0.5]}");
        if (r.status == 200) b->answered++;
        else if (r.status == -7 /* CURLE_COULDNT_CONNECT: the listener is closed */) { free(r.body); break; }
        else { b->failed++; b->why = r.status; }
        free(r.body);
    }
    return NULL;
}

START_TEST(test_sigterm_during_burst)
{
    burst bs[4];
    pthread_t th[4];
    memset(bs, 0, sizeof bs);
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, burst_loop, &bs[i]);
    msleep(150);
    int st = stop_daemon();
    int answered = 0, failed = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        answered += bs[i].answered;
        failed += bs[i].failed;
        if (bs[i].failed) printf("  client %d: %d failed, last with %ld (negative: a curl error)\n", i, bs[i].failed, bs[i].why);
    }
    printf("  SIGTERM during a burst: %d answered, %d failed, exit %d\n", answered, failed, st);
    fflush(stdout);
    ck_assert_int_eq(st, 0);
    ck_assert_int_eq(failed, 0);
    ck_assert(answered > 10);
    start_daemon(""); /* for teardown */
}
END_TEST

START_TEST(test_config_errors)
{
    char p[256], cmd[2048];
    snprintf(p, sizeof p, "%s/bad.conf", dir);
    FILE *f = fopen(p, "w");
    fprintf(f, "# a comment\nport = 8080\nhttp_threads = lots\n");
    fclose(f);
    snprintf(cmd, sizeof cmd, "'%s' serve --config '%s' --check-config 2> '%s/cfg.err'", rnnd_bin, p, dir);
    int st = system(cmd);
    ck_assert_int_eq(WEXITSTATUS(st), 2);
    snprintf(p, sizeof p, "%s/cfg.err", dir);
    char *e = read_text(p);
    ck_assert_msg(strstr(e, "bad.conf:3:") && strstr(e, "http_threads"), "%s", e);
    free(e);
    snprintf(p, sizeof p, "%s/unknown.conf", dir);
    f = fopen(p, "w");
    fprintf(f, "prot = 1\n");
    fclose(f);
    snprintf(cmd, sizeof cmd, "'%s' serve --config '%s' --check-config 2>/dev/null", rnnd_bin, p);
    ck_assert_int_eq(WEXITSTATUS(system(cmd)), 2);
    snprintf(cmd, sizeof cmd, "'%s' serve --config config/rnnd.conf --check-config 2>/dev/null", rnnd_bin);
    ck_assert_int_eq(WEXITSTATUS(system(cmd)), 0);
}
END_TEST

START_TEST(test_sighup_reload)
{
    expect_error(get("/models/extra"), 404, "not loaded");
    sh("cp '%s/gru.safetensors' '%s/models/extra.safetensors'", models_src, dir);
    /* a corrupt file is logged and skipped, never served */
    sh("head -c 100 '%s/gru.safetensors' > '%s/models/broken.safetensors'", models_src, dir);
    kill(pid, SIGHUP);
    resp r = {0};
    for (int i = 0; i < 200; i++) {
        free(r.body);
        r = get("/models/extra");
        if (r.status == 200) break;
        msleep(10);
    }
    ck_assert_msg(r.status == 200, "SIGHUP did not load the new model: %ld", r.status);
    free(r.body);
    expect_error(get("/models/broken"), 404, "not loaded");
    r = post("/predict", "{\"model\": \"extra\", \"sequence\": [[0.1, 0.2], [0.3, 0.4]]}");
    ck_assert_int_eq(r.status, 200);
    free(r.body);
    r = post("/predict", "{\"model\": \"wave\", \"sequence\": [0.5]}");
    cJSON *o = json_of(&r);
    ck_assert_int_eq((int)num(o, "version"), 1); /* unchanged files keep their version */
    cJSON_Delete(o);
    free(r.body);
}
END_TEST

static Suite *http_suite(void)
{
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("daemon");
    tcase_set_timeout(tc, 180);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_predict_each_task);
    tcase_add_test(tc, test_job_life_and_swap);
    tcase_add_test(tc, test_cancel_queue_and_429);
    tcase_add_test(tc, test_swap_under_load);
    tcase_add_test(tc, test_error_paths);
    tcase_add_test(tc, test_auth_token);
    tcase_add_test(tc, test_sigterm_during_burst);
    tcase_add_test(tc, test_config_errors);
    tcase_add_test(tc, test_sighup_reload);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    const char *b = getenv("RNND_BIN");
    char cwd[512];
    if (!getcwd(cwd, sizeof cwd)) return 1;
    snprintf(rnnd_bin, sizeof rnnd_bin, "%s%s%s", b && b[0] == '/' ? "" : cwd, b && b[0] == '/' ? "" : "/",
             b && *b ? b : "build/rnnd");
    snprintf(models_src, sizeof models_src, "%s/tests/ref/models", cwd);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    SRunner *sr = srunner_create(http_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
