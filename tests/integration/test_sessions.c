/*
 * Streaming sessions and the Open Inference Protocol against a live daemon
 * on 127.0.0.1 (the harness's; the PyTorch-made models of tests/ref/models
 * as wave, steps, kind and chars): a window fed in pieces equals /predict on
 * the whole window, 32 sessions streaming at once all do, a session finishes
 * on its version across a hot swap, limits and expiry hold; KServe v2 infer
 * equals /predict, its sequence extension equals a session, and its errors
 * take the protocol's shape.
 */
#include "harness.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Step t of a series for sequence i: X features as JSON ("0.1" or
 * "[0.1, 0.2, 0.3]"), appended to b. */
static void step_json(char *b, size_t cap, int i, int t, int X)
{
    size_t n = strlen(b);
    n += (size_t)snprintf(b + n, cap - n, "%s", X > 1 ? "[" : "");
    for (int k = 0; k < X; k++)
        n += (size_t)snprintf(b + n, cap - n, "%s%.4f", k ? ", " : "", sin(0.37 * i + 0.61 * t + 1.3 * k));
    snprintf(b + n, cap - n, "%s", X > 1 ? "]" : "");
}

/* Steps t0 .. t1-1 of sequence i as a JSON array. */
static char *steps_json(int i, int t0, int t1, int X)
{
    size_t cap = 64 + (size_t)(t1 - t0) * (size_t)X * 12;
    char *b = calloc(1, cap);
    strcat(b, "[");
    for (int t = t0; t < t1; t++) {
        if (t > t0) strcat(b, ", ");
        step_json(b, cap, i, t, X);
    }
    strcat(b, "]");
    return b;
}

/* The /predict reply for sequence i's steps 0 .. T-1, without model and
 * version (extra: more keys, or ""). */
static cJSON *predict_whole(const char *model, int i, int T, int X, const char *extra)
{
    char *seq = steps_json(i, 0, T, X);
    char *body = malloc(strlen(seq) + 200);
    sprintf(body, "{\"model\": \"%s\", \"sequence\": %s%s}", model, seq, extra);
    resp r = post("/predict", body);
    ck_assert_msg(r.status == 200, "%s: %ld %s", model, r.status, r.body);
    cJSON *o = json_of(&r);
    cJSON_DeleteItemFromObject(o, "model");
    cJSON_DeleteItemFromObject(o, "version");
    free(r.body);
    free(body);
    free(seq);
    return o;
}

/* POST /sessions for model: its id (malloc'd). */
static char *open_session(const char *model)
{
    char body[128];
    snprintf(body, sizeof body, "{\"model\": \"%s\"}", model);
    resp r = post("/sessions", body);
    ck_assert_msg(r.status == 201, "open %s: %ld %s", model, r.status, r.body);
    cJSON *o = json_of(&r);
    char *id = strdup(cJSON_GetObjectItem(o, "session")->valuestring);
    char loc[128];
    snprintf(loc, sizeof loc, "/sessions/%s", id);
    ck_assert_str_eq(r.location, loc);
    cJSON_Delete(o);
    free(r.body);
    return id;
}

/* POST /sessions/ID with body: the reply (status 200 asserted). */
static cJSON *feed(const char *id, const char *body)
{
    char path[128];
    snprintf(path, sizeof path, "/sessions/%s", id);
    resp r = post(path, body);
    ck_assert_msg(r.status == 200, "feed %s: %ld %s", id, r.status, r.body);
    cJSON *o = json_of(&r);
    free(r.body);
    return o;
}

static cJSON *feed_steps(const char *id, int i, int t0, int t1, int X, const char *extra)
{
    char *seq = steps_json(i, t0, t1, X);
    char *body = malloc(strlen(seq) + 100);
    sprintf(body, "{\"sequence\": %s%s}", seq, extra);
    cJSON *o = feed(id, body);
    free(body);
    free(seq);
    return o;
}

/* The reply fields of a session that /predict has too. */
static void strip_session(cJSON *o)
{
    static const char *const keys[] = {"model", "version", "session", "position"};
    for (int k = 0; k < 4; k++) cJSON_DeleteItemFromObject(o, keys[k]);
}

static const struct { const char *name; int X; } numeric[] = {{"wave", 1}, {"steps", 3}, {"kind", 3}};

/* ------------------------------------------------------------------ sessions */

START_TEST(test_session_pieces)
{
    static const int cuts[] = {0, 1, 6, 8, 15, 24};
    for (int m = 0; m < 3; m++) {
        const int X = numeric[m].X, T = 24;
        cJSON *want = predict_whole(numeric[m].name, m, T, X, "");
        char *id = open_session(numeric[m].name);
        cJSON *got = NULL;
        for (int k = 0; k + 1 < 6; k++) {
            cJSON_Delete(got);
            got = feed_steps(id, m, cuts[k], cuts[k + 1], X, "");
            ck_assert_int_eq((int)num(got, "position"), cuts[k + 1]);
        }
        strip_session(got);
        char what[96];
        snprintf(what, sizeof what, "%s fed in 5 pieces vs /predict", numeric[m].name);
        ASSERT_JSON_CLOSE(got, want, 1e-5, what);
        cJSON_Delete(got);
        cJSON_Delete(want);
        free(id);
    }
    /* forecasts: from the state after the steps, without moving the session */
    cJSON *want = predict_whole("wave", 7, 30, 1, ", \"steps\": 4");
    char *id = open_session("wave");
    cJSON_Delete(feed_steps(id, 7, 0, 10, 1, ""));
    cJSON *got = feed_steps(id, 7, 10, 30, 1, ", \"steps\": 4");
    ck_assert_int_eq((int)num(got, "position"), 30);
    strip_session(got);
    ASSERT_JSON_CLOSE(got, want, 1e-5, "a forecast with the last piece");
    cJSON_Delete(got);
    got = feed(id, "{\"steps\": 4}");
    ck_assert_int_eq((int)num(got, "position"), 30);
    strip_session(got);
    ASSERT_JSON_CLOSE(got, want, 1e-5, "a forecast alone");
    cJSON_Delete(got);
    cJSON_Delete(want);
    /* a bad step is refused before any step runs: the state is unchanged */
    char path[128];
    snprintf(path, sizeof path, "/sessions/%s", id);
    expect_error(post(path, "{\"sequence\": [0.5, \"x\"]}"), 400, "sequence[1]");
    expect_error(post(path, "{\"sequences\": [[0.5]]}"), 400, "\"sequence\"");
    expect_error(post(path, "{}"), 400, "sequence: missing");
    got = feed(id, "{\"steps\": 1}");
    ck_assert_int_eq((int)num(got, "position"), 30);
    cJSON_Delete(got);
    free(id);
    expect_error(post("/sessions/nope", "{\"sequence\": [1]}"), 404, "no session");
    expect_error(post("/sessions", "{\"model\": \"chars\"}"), 422, "generates text");
    expect_error(post("/sessions", "{\"model\": \"none\"}"), 404, "not loaded");
    id = open_session("wave");
    snprintf(path, sizeof path, "/sessions/%s", id);
    expect_error(post(path, "{\"steps\": 2}"), 422, "no steps yet");
    free(id);
}
END_TEST

typedef struct streamer {
    int i;                  /* its series */
    char id[80];
    double got, want;
    long position;
    int failures;
} streamer;

#define STREAM_T 20

static void *stream_loop(void *arg)
{
    streamer *s = arg;
    for (int t = 0; t < STREAM_T; t++) {
        char body[96] = "{\"sequence\": [";
        step_json(body, sizeof body, s->i, t, 1);
        strcat(body, "]}");
        char path[128];
        snprintf(path, sizeof path, "/sessions/%s", s->id);
        resp r = post(path, body);
        cJSON *o = r.status == 200 ? cJSON_Parse(r.body) : NULL;
        if (!o) {
            s->failures++;
        } else {
            s->got = cJSON_GetObjectItem(o, "prediction")->valuedouble;
            s->position = (long)cJSON_GetObjectItem(o, "position")->valuedouble;
        }
        cJSON_Delete(o);
        free(r.body);
    }
    return NULL;
}

START_TEST(test_sessions_concurrent)
{
    enum { N = 32 };
    streamer ss[N];
    pthread_t th[N];
    memset(ss, 0, sizeof ss);
    for (int k = 0; k < N; k++) {
        ss[k].i = 100 + k;
        char *id = open_session("wave");
        snprintf(ss[k].id, sizeof ss[k].id, "%s", id);
        free(id);
        cJSON *w = predict_whole("wave", ss[k].i, STREAM_T, 1, "");
        ss[k].want = num(w, "prediction");
        cJSON_Delete(w);
    }
    const double inf0 = metric_value("rnnd_model_inference_count{model=\"wave\"}");
    const double exe0 = metric_value("rnnd_model_execution_count{model=\"wave\"}");
    for (int k = 0; k < N; k++) pthread_create(&th[k], NULL, stream_loop, &ss[k]);
    for (int k = 0; k < N; k++) pthread_join(th[k], NULL);
    const double inf = metric_value("rnnd_model_inference_count{model=\"wave\"}") - inf0;
    const double exe = metric_value("rnnd_model_execution_count{model=\"wave\"}") - exe0;
    int ok = 0;
    for (int k = 0; k < N; k++) {
        ck_assert_msg(ss[k].failures == 0, "session %d: %d failed requests", k, ss[k].failures);
        ck_assert_int_eq(ss[k].position, STREAM_T);
        ck_assert_msg(fabs(ss[k].got - ss[k].want) <= 1e-5 * fmax(1, fabs(ss[k].want)),
                      "session %d: %g streamed, %g from /predict", k, ss[k].got, ss[k].want);
        ok++;
    }
    printf("  %d sessions streamed %d values each, one per request, at once: all equal /predict; "
           "%.0f steps in %.0f passes (mean batch %.1f)\n", ok, STREAM_T, inf, exe, inf / exe);
    ck_assert(inf == N * STREAM_T);
    ck_assert_msg(exe < inf, "sessions were not batched: %.0f passes for %.0f steps", exe, inf);
    resp r = get("/sessions");
    cJSON *o = json_of(&r);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "sessions")), N);
    cJSON_Delete(o);
    free(r.body);
    r = get("/metrics");
    ck_assert_msg(strstr(r.body, "rnnd_sessions_active 32"), "%s", r.body);
    free(r.body);
}
END_TEST

#define FRESH_JOB(epochs)                                                                         \
    "{\"model\": \"fresh\", \"cell\": \"gru\", \"hidden\": 8, \"data\": {\"generator\": \"sine\", " \
    "\"samples\": 40, \"window\": 20}, \"epochs\": " #epochs ", \"batch\": 8}"

START_TEST(test_session_hot_swap)
{
    cJSON *o = wait_job(submit(FRESH_JOB(1), 202), 60);
    ck_assert_str_eq(status_of(o), "succeeded");
    cJSON_Delete(o);
    cJSON *v1 = predict_whole("fresh", 3, 20, 1, "");
    char *id = open_session("fresh");
    cJSON_Delete(feed_steps(id, 3, 0, 10, 1, ""));
    /* a new version is published while the session is half way */
    o = wait_job(submit(FRESH_JOB(3), 202), 60);
    ck_assert_str_eq(status_of(o), "succeeded");
    cJSON_Delete(o);
    cJSON *got = feed_steps(id, 3, 10, 20, 1, "");
    ck_assert_int_eq((int)num(got, "version"), 1);
    strip_session(got);
    ASSERT_JSON_CLOSE(got, v1, 1e-5, "a session across a hot swap");
    cJSON_Delete(got);
    /* /predict and new sessions get the new version */
    resp r = post("/sessions", "{\"model\": \"fresh\"}");
    o = json_of(&r);
    ck_assert_int_eq((int)num(o, "version"), 2);
    cJSON_Delete(o);
    free(r.body);
    cJSON *v2 = predict_whole("fresh", 3, 20, 1, "");
    ck_assert(fabs(num(v2, "prediction") - num(v1, "prediction")) > 1e-7);
    cJSON_Delete(v1);
    cJSON_Delete(v2);
    free(id);
}
END_TEST

START_TEST(test_session_limits)
{
    stop_daemon();
    start_daemon("--max-sessions 2 --session-idle-s 1");
    char *a = open_session("wave"), *b = open_session("wave");
    expect_error(post("/sessions", "{\"model\": \"wave\"}"), 429, "max_sessions");
    char path[128];
    snprintf(path, sizeof path, "/sessions/%s", a);
    resp r = http("DELETE", path, NULL, 0, NULL, NULL);
    ck_assert_int_eq(r.status, 204);
    free(r.body);
    expect_error(get(path), 404, "no session");
    char *c = open_session("wave"); /* the room DELETE made */
    /* idle sessions end by themselves: b, then c (opened a little later,
     * so it may expire one sweep after b) */
    const char *idle[] = {b, c};
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "/sessions/%s", idle[k]);
        for (int i = 0; i < 40; i++) {
            r = get(path);
            long st = r.status;
            free(r.body);
            if (st == 404) break;
            msleep(100);
        }
        expect_error(get(path), 404, "no session");
    }
    free(c);
    r = get("/metrics");
    ck_assert_msg(strstr(r.body, "rnnd_sessions_active 0"), "%s", r.body);
    free(r.body);
    free(a);
    free(b);
}
END_TEST

/* ------------------------------------------------------------------ KServe v2 */

/* The v2 infer body for sequences i0 .. i0+B-1 of T steps, X features;
 * params: "" or a "parameters" member. */
static char *infer_body(int i0, int B, int T, int X, const char *params)
{
    size_t cap = 256 + (size_t)B * T * X * 12;
    char *b = calloc(1, cap);
    size_t n = (size_t)snprintf(b, cap, "{\"id\": \"r1\"%s, \"inputs\": [{\"name\": \"input\", "
                                        "\"datatype\": \"FP32\", \"shape\": [%d, %d, %d], \"data\": [",
                                params, B, T, X);
    for (int i = 0; i < B; i++) {
        char *s = steps_json(i0 + i, 0, T, X);
        n += (size_t)snprintf(b + n, cap - n, "%s%s", i ? ", " : "", s);
        free(s);
    }
    snprintf(b + n, cap - n, "]}]}");
    return b;
}

static const cJSON *output_tensor(const cJSON *o)
{
    return cJSON_GetArrayItem(cJSON_GetObjectItem(o, "outputs"), 0);
}

START_TEST(test_kserve_infer)
{
    for (int m = 0; m < 3; m++) {
        const int X = numeric[m].X, B = 3, T = 12;
        char path[128];
        snprintf(path, sizeof path, "/v2/models/%s/infer", numeric[m].name);
        char *body = infer_body(m * 10, B, T, X, "");
        resp r = post(path, body);
        ck_assert_msg(r.status == 200, "%s: %ld %s", numeric[m].name, r.status, r.body);
        cJSON *o = json_of(&r);
        ck_assert_str_eq(cJSON_GetObjectItem(o, "model_name")->valuestring, numeric[m].name);
        ck_assert_str_eq(cJSON_GetObjectItem(o, "id")->valuestring, "r1");
        const cJSON *out = output_tensor(o);
        const cJSON *data = cJSON_GetObjectItem(out, "data");
        const int per = cJSON_GetArraySize(data) / B;
        ck_assert_int_eq(per * B, cJSON_GetArraySize(data));
        for (int i = 0; i < B; i++) {
            const int many = !strcmp(numeric[m].name, "steps"); /* many_to_many regression */
            cJSON *want = predict_whole(numeric[m].name, m * 10 + i, T, X,
                                        many ? ", \"return_sequences\": true" : "");
            const cJSON *w = cJSON_GetObjectItem(want, "probabilities");
            if (!w) w = cJSON_GetObjectItem(want, many ? "outputs" : "prediction");
            /* the row's numbers, flat, against the reply of /predict */
            cJSON *flat = cJSON_CreateArray();
            if (cJSON_IsNumber(w)) {
                cJSON_AddItemToArray(flat, cJSON_CreateNumber(w->valuedouble));
            } else {
                for (const cJSON *e = w->child; e; e = e->next) {
                    if (cJSON_IsNumber(e)) cJSON_AddItemToArray(flat, cJSON_CreateNumber(e->valuedouble));
                    else for (const cJSON *f = e->child; f; f = f->next)
                        cJSON_AddItemToArray(flat, cJSON_CreateNumber(f->valuedouble));
                }
            }
            ck_assert_int_eq(cJSON_GetArraySize(flat), per);
            cJSON *row = cJSON_CreateArray();
            for (int k = 0; k < per; k++)
                cJSON_AddItemToArray(row, cJSON_CreateNumber(cJSON_GetArrayItem(data, i * per + k)->valuedouble));
            char what[64];
            snprintf(what, sizeof what, "%s infer row %d vs /predict", numeric[m].name, i);
            ASSERT_JSON_CLOSE(row, flat, 1e-5, what);
            cJSON_Delete(row);
            cJSON_Delete(flat);
            cJSON_Delete(want);
        }
        cJSON_Delete(o);
        free(r.body);
        free(body);
    }
    /* metadata and health */
    resp r = get("/v2/models/steps");
    cJSON *o = json_of(&r);
    const cJSON *shape = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "outputs"), 0), "shape");
    ck_assert_int_eq(cJSON_GetArraySize(shape), 3); /* many_to_many: [B, T, O] */
    cJSON_Delete(o);
    free(r.body);
    r = get("/v2/models/wave/versions/1/ready");
    ck_assert_int_eq(r.status, 200);
    free(r.body);
    r = get("/v2/health/ready");
    ck_assert_int_eq(r.status, 200);
    free(r.body);
    r = get("/v2");
    o = json_of(&r);
    ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "extensions"), 0)->valuestring, "sequence");
    cJSON_Delete(o);
    free(r.body);
}
END_TEST

/* The protocol's error shape: {"error": "message"}. */
static void expect_v2_error(resp r, long status, const char *needle)
{
    ck_assert_msg(r.status == status, "status %ld, want %ld: %s", r.status, status, r.body);
    cJSON *o = cJSON_Parse(r.body);
    ck_assert_msg(o && cJSON_IsString(cJSON_GetObjectItem(o, "error")), "not a v2 error: %s", r.body);
    ck_assert_msg(strstr(cJSON_GetObjectItem(o, "error")->valuestring, needle), "%s lacks \"%s\"",
                  r.body, needle);
    cJSON_Delete(o);
    free(r.body);
}

START_TEST(test_kserve_errors_and_sequences)
{
    expect_v2_error(post("/v2/models/none/infer", "{\"inputs\": []}"), 404, "not loaded");
    expect_v2_error(get("/v2/models/wave/versions/9"), 404, "no version");
    expect_v2_error(post("/v2/models/wave/infer", "{\"inputs\": []}"), 400, "one tensor");
    expect_v2_error(post("/v2/models/wave/infer", "{\"inputs\": [{\"name\": \"input\", \"datatype\": \"FP64\", "
                                                  "\"shape\": [1, 1, 1], \"data\": [1]}]}"), 400, "FP32");
    expect_v2_error(post("/v2/models/wave/infer", "{\"inputs\": [{\"name\": \"input\", \"datatype\": \"FP32\", "
                                                  "\"shape\": [1, 2, 1], \"data\": [1]}]}"), 400, "2 numbers");
    expect_v2_error(post("/v2/models/wave/infer", "{\"inputs\": [{\"name\": \"input\", \"datatype\": \"FP32\", "
                                                  "\"shape\": [1, 2, 3], \"data\": [1, 2, 3, 4, 5, 6]}]}"), 400,
                    "1 features");
    expect_v2_error(post("/v2/models/chars/infer", "{\"inputs\": []}"), 400, "text");
    /* the sequence extension: start, go on, end; the same as one /predict */
    cJSON *want = predict_whole("wave", 42, 16, 1, "");
    char *s1 = steps_json(42, 0, 6, 1), *s2 = steps_json(42, 6, 16, 1);
    char body[2048];
    snprintf(body, sizeof body, "{\"parameters\": {\"sequence_id\": 9, \"sequence_start\": true}, "
             "\"inputs\": [{\"name\": \"input\", \"datatype\": \"FP32\", \"shape\": [1, 6, 1], \"data\": %s}]}", s1);
    resp r = post("/v2/models/wave/infer", body);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    free(r.body);
    snprintf(body, sizeof body, "{\"parameters\": {\"sequence_id\": 9, \"sequence_end\": true}, "
             "\"inputs\": [{\"name\": \"input\", \"datatype\": \"FP32\", \"shape\": [1, 10, 1], \"data\": %s}]}", s2);
    r = post("/v2/models/wave/infer", body);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    cJSON *o = json_of(&r);
    const double got = cJSON_GetArrayItem(cJSON_GetObjectItem(output_tensor(o), "data"), 0)->valuedouble;
    ck_assert_msg(fabs(got - num(want, "prediction")) <= 1e-5, "sequence %g, /predict %g", got,
                  num(want, "prediction"));
    cJSON_Delete(o);
    free(r.body);
    /* ended: going on is refused */
    expect_v2_error(post("/v2/models/wave/infer", body), 400, "not started");
    cJSON_Delete(want);
    free(s1);
    free(s2);
}
END_TEST

/* A bidirectional model from PyTorch (gru_bi: two layers, dropout, the
 * _reverse tensors) over HTTP: /predict gives PyTorch's reply, KServe infer
 * rows equal /predict, and what needs steps (forecasts, sessions, the
 * sequence extension) is refused naming why; a fine-tune keeps it
 * bidirectional, and one asking for a unidirectional model is a conflict. */
START_TEST(test_bidirectional_served)
{
    stop_daemon();
    sh("cp '%s/gru_bi.safetensors' '%s/models/bi.safetensors'", models_src, dir);
    start_daemon("");
    char *req = case_request("gru_bi", "bi");
    resp r = post("/predict", req);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    cJSON *got = json_of(&r);
    char p[1200];
    snprintf(p, sizeof p, "%s/gru_bi.expected.json", models_src);
    char *t = read_text(p);
    cJSON *want = cJSON_Parse(t);
    cJSON_DeleteItemFromObject(want, "model");
    cJSON_DeleteItemFromObject(want, "version");
    ASSERT_JSON_CLOSE(got, want, 1e-5, "bi");
    cJSON_Delete(got); cJSON_Delete(want);
    free(t); free(req); free(r.body);

    const int B = 2, T = 12, X = 2;
    char *body = infer_body(70, B, T, X, "");
    r = post("/v2/models/bi/infer", body);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    cJSON *o = json_of(&r);
    const cJSON *data = cJSON_GetObjectItem(output_tensor(o), "data");
    ck_assert_int_eq(cJSON_GetArraySize(data), B);
    for (int i = 0; i < B; i++) {
        cJSON *w = predict_whole("bi", 70 + i, T, X, "");
        const double g = cJSON_GetArrayItem(data, i)->valuedouble, e = num(w, "prediction");
        ck_assert_msg(fabs(g - e) <= 1e-5 * fmax(1, fabs(e)), "infer row %d %g, /predict %g", i, g, e);
        cJSON_Delete(w);
    }
    cJSON_Delete(o); free(r.body); free(body);

    char *seq = steps_json(1, 0, 8, X);
    char b[1024];
    snprintf(b, sizeof b, "{\"model\": \"bi\", \"sequence\": %s, \"steps\": 3}", seq);
    expect_error(post("/predict", b), 422, "steps: a bidirectional model reads each sequence whole");
    expect_error(post("/sessions", "{\"model\": \"bi\"}"), 422, "model bi is bidirectional");
    body = infer_body(1, 1, 8, X, ", \"parameters\": {\"sequence_id\": 3, \"sequence_start\": true}");
    expect_v2_error(post("/v2/models/bi/infer", body), 422, "no state to stream");
    free(body); free(seq);

    expect_error(post("/train", "{\"model\": \"bi\", \"bidirectional\": false, \"data\": "
                                "{\"generator\": \"sine\", \"window\": 6}}"),
                 409, "bidirectional: the model is true, this job asks for false");
    o = wait_job(submit("{\"model\": \"bi\", \"epochs\": 1, \"data\": {\"sequences\": "
                        "[[[0.1, 0.2], [0.3, 0.4]], [[0.5, 0.6], [0.7, 0.8]]], \"targets\": [0.5, -0.5]}}",
                        202), 60);
    ck_assert_msg(!strcmp(status_of(o), "succeeded"), "%s", cJSON_PrintUnformatted(o));
    cJSON_Delete(o);
    r = get("/models/bi");
    ck_assert_msg(r.status == 200 && strstr(r.body, "\"bidirectional\":true") && strstr(r.body, "\"version\":2"),
                  "%s", r.body);
    free(r.body);
}
END_TEST

Suite *sessions_suite(void)
{
    Suite *s = suite_create("sessions");
    TCase *tc = tcase_create("sessions");
    tcase_set_timeout(tc, 180);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_session_pieces);
    tcase_add_test(tc, test_sessions_concurrent);
    tcase_add_test(tc, test_session_hot_swap);
    tcase_add_test(tc, test_session_limits);
    tcase_add_test(tc, test_kserve_infer);
    tcase_add_test(tc, test_kserve_errors_and_sequences);
    tcase_add_test(tc, test_bidirectional_served);
    suite_add_tcase(s, tc);
    return s;
}
