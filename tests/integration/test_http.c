/*
 * rnnd serve against real HTTP: each test case starts the daemon as a child
 * process on 127.0.0.1 and an ephemeral port (port 0; the port is read from
 * its log), talks to it with libcurl, and stops it with SIGTERM, which must
 * end it with status 0.
 */
#include "harness.h"

#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

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
        /* the same answer as PyTorch, over HTTP: every field, arrays
         * (predictions, forecasts, outputs, probabilities) element by element */
        cJSON_DeleteItemFromObject(want, "model");
        cJSON_DeleteItemFromObject(want, "version");
        ASSERT_JSON_CLOSE(got, want, 1e-5, pairs[k][1]);
        ck_assert_msg(r.len > 0 && r.body[r.len - 1] == '\n', "%s: reply does not end its line",
                      pairs[k][1]);
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


/* The daemon's log so far (a static buffer). */
static const char *read_text_tail(void)
{
    static char buf[1 << 16];
    FILE *f = fopen(log_path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = 0;
    if (f) fclose(f);
    return buf;
}

/* A "sequences" body for model name: n sequences of X features, sequence i
 * of T(i) steps, values from a fixed formula; extra is more keys or "". */
static char *sequences_body(const char *name, int X, int n, int (*T)(int), const char *extra)
{
    size_t cap = 1 << 20, len = 0;
    char *b = malloc(cap);
    len += (size_t)snprintf(b + len, cap - len, "{\"model\": \"%s\"%s, \"sequences\": [", name, extra);
    for (int i = 0; i < n; i++) {
        len += (size_t)snprintf(b + len, cap - len, "%s[", i ? ", " : "");
        for (int t = 0; t < T(i); t++) {
            len += (size_t)snprintf(b + len, cap - len, "%s%s", t ? ", " : "", X > 1 ? "[" : "");
            for (int k = 0; k < X; k++)
                len += (size_t)snprintf(b + len, cap - len, "%s%.4f", k ? ", " : "",
                                        sin(0.37 * i + 0.91 * t + 1.3 * k));
            len += (size_t)snprintf(b + len, cap - len, "%s", X > 1 ? "]" : "");
        }
        len += (size_t)snprintf(b + len, cap - len, "]");
    }
    snprintf(b + len, cap - len, "]}");
    return b;
}

static int twelve(int i) { (void)i; return 12; }
static int mixed(int i) { return 5 + 4 * (i % 2); }

/* Equal-length "sequences" run as one batched pass (rows of one rnn_step),
 * others one by one: either way each reply equals the sequence sent alone. */
START_TEST(test_predict_batched)
{
    static const struct { const char *name, *extra; int X; } ms[] = {
        {"wave", ", \"steps\": 4, \"return_sequences\": true", 1},
        {"steps", ", \"return_sequences\": true", 3},
        {"kind", "", 3},
    };
    int (*const shapes[])(int) = {twelve, mixed};
    for (size_t k = 0; k < sizeof ms / sizeof ms[0]; k++)
        for (int sh_ = 0; sh_ < 2; sh_++) {
            const int n = 8; /* the test daemon's max_batch */
            char *body = sequences_body(ms[k].name, ms[k].X, n, shapes[sh_], ms[k].extra);
            resp r = post("/predict", body);
            ck_assert_msg(r.status == 200, "%s: %ld %s", ms[k].name, r.status, r.body);
            ck_assert(r.body[r.len - 1] == '\n');
            cJSON *all = json_of(&r);
            cJSON *preds = cJSON_GetObjectItem(all, "predictions");
            ck_assert_int_eq(cJSON_GetArraySize(preds), n);
            /* each sequence alone: the request with only it */
            cJSON *req = cJSON_Parse(body);
            cJSON *seqs = cJSON_DetachItemFromObject(req, "sequences");
            for (int i = 0; i < n; i++) {
                cJSON_AddItemToObject(req, "sequence", cJSON_Duplicate(cJSON_GetArrayItem(seqs, i), 1));
                char *one = cJSON_PrintUnformatted(req);
                resp r1 = post("/predict", one);
                ck_assert_int_eq(r1.status, 200);
                cJSON *want = json_of(&r1);
                cJSON_DeleteItemFromObject(want, "model");
                cJSON_DeleteItemFromObject(want, "version");
                char what[64];
                snprintf(what, sizeof what, "%s %s sequences[%d]", ms[k].name,
                         sh_ ? "mixed lengths" : "batched", i);
                ASSERT_JSON_CLOSE(cJSON_GetArrayItem(preds, i), want, 1e-6, what);
                cJSON_Delete(want);
                free(r1.body);
                free(one);
                cJSON_DeleteItemFromObject(req, "sequence");
            }
            cJSON_Delete(seqs);
            cJSON_Delete(req);
            cJSON_Delete(all);
            free(r.body);
            free(body);
        }
}
END_TEST

typedef struct batch_client {
    int k;                  /* its windows: k, k + 8, ... */
    int n, mismatches, failures;
    const double *want;     /* (64) the reply to each window sent alone */
    double worst;
} batch_client;

static char *window_body(int w)
{
    static const int T = 30;
    char *b = malloc(64 + T * 12);
    int n = sprintf(b, "{\"model\": \"wave\", \"sequence\": [");
    for (int t = 0; t < T; t++) n += sprintf(b + n, "%s%.4f", t ? ", " : "", sin(0.29 * w + 0.77 * t));
    sprintf(b + n, "]}");
    return b;
}

static void *batch_loop(void *arg)
{
    batch_client *bc = arg;
    for (int w = bc->k; w < 64; w += 8) {
        char *b = window_body(w);
        resp r = post("/predict", b);
        cJSON *o = r.status == 200 ? cJSON_Parse(r.body) : NULL;
        if (!o) {
            bc->failures++;
        } else {
            const double got = cJSON_GetObjectItem(o, "prediction")->valuedouble, d = fabs(got - bc->want[w]);
            bc->worst = d > bc->worst ? d : bc->worst;
            bc->mismatches += d > 1e-6 * fmax(1, fabs(bc->want[w]));
        }
        bc->n++;
        cJSON_Delete(o);
        free(r.body);
        free(b);
    }
    return NULL;
}

/* Concurrent predictions of one model run as batched passes (dynamic
 * batching); every reply equals the one the window gets alone. */
START_TEST(test_dynamic_batching)
{
    stop_daemon();
    start_daemon("--batch-delay-us 3000 --predict-workers 1");
    double want[64];
    for (int w = 0; w < 64; w++) {
        char *b = window_body(w);
        resp r = post("/predict", b);
        cJSON *o = json_of(&r);
        want[w] = num(o, "prediction");
        cJSON_Delete(o);
        free(r.body);
        free(b);
    }
    const double inf0 = metric_value("rnnd_model_inference_count{model=\"wave\"}");
    const double exe0 = metric_value("rnnd_model_execution_count{model=\"wave\"}");
    ck_assert(inf0 == 64 && exe0 == 64); /* alone: one pass each */
    batch_client bc[8];
    pthread_t th[8];
    memset(bc, 0, sizeof bc);
    for (int k = 0; k < 8; k++) {
        bc[k].k = k;
        bc[k].want = want;
        pthread_create(&th[k], NULL, batch_loop, &bc[k]);
    }
    double worst = 0;
    for (int k = 0; k < 8; k++) {
        pthread_join(th[k], NULL);
        ck_assert_int_eq(bc[k].failures, 0);
        ck_assert_msg(bc[k].mismatches == 0, "client %d: %d batched replies differ from unbatched",
                      k, bc[k].mismatches);
        worst = fmax(worst, bc[k].worst);
    }
    const double inf = metric_value("rnnd_model_inference_count{model=\"wave\"}") - inf0;
    const double exe = metric_value("rnnd_model_execution_count{model=\"wave\"}") - exe0;
    printf("  dynamic batching: 64 concurrent predictions in %.0f passes (mean batch %.1f), "
           "worst difference from unbatched %.2g\n", exe, inf / exe, worst);
    ck_assert(inf == 64);
    ck_assert_msg(exe < inf / 2, "%.0f passes for %.0f predictions: not batched", exe, inf);
}
END_TEST

/* The work of one prediction is bounded before it runs: 413 naming
 * max_predict_work, and the server answers the next request at once. */
START_TEST(test_predict_work_bound)
{
    stop_daemon();
    start_daemon("--max-predict-work 200000");
    resp m = get("/models/wave");
    cJSON *mo = json_of(&m);
    const double params = num(mo, "parameters");
    cJSON_Delete(mo);
    free(m.body);
    /* just under the bound runs; steps x sequences over it is refused */
    const int fit = (int)(200000 / params);
    char *body = sequences_body("wave", 1, 1, twelve, "");
    resp r = post("/predict", body);
    ck_assert_int_eq(r.status, 200);
    free(r.body);
    free(body);
    char req[200];
    snprintf(req, sizeof req, "{\"model\": \"wave\", \"sequence\": [0.5], \"steps\": %d}", fit + 1);
    expect_error(post("/predict", req), 413, "max_predict_work");
    snprintf(req, sizeof req, "{\"model\": \"wave\", \"sequence\": [0.5], \"steps\": %d}", fit - 1);
    r = post("/predict", req);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    free(r.body);
    body = sequences_body("wave", 1, 8, twelve, ", \"steps\": 1500");
    expect_error(post("/predict", body), 413, "max_predict_work");
    free(body);
    expect_error(post("/predict", "{\"model\": \"chars\", \"text\": \"a\", \"length\": 1900}"), 413,
                 "max_predict_work");
}
END_TEST

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
    /* a reload leaves the files the jobs saved alone: no new version */
    kill(pid, SIGHUP);
    for (int i = 0; i < 100 && !strstr(read_text_tail(), "SIGHUP"); i++) msleep(10);
    r = get("/models/fresh");
    o = json_of(&r);
    ck_assert_int_eq((int)num(o, "version"), 2);
    cJSON_Delete(o); free(r.body);
    /* version numbers survive a restart (they are in the files), and the
     * next job goes on from them */
    stop_daemon();
    start_daemon("");
    r = get("/models/fresh");
    o = json_of(&r);
    ck_assert_msg((int)num(o, "version") == 2, "after a restart: %s", r.body);
    cJSON_Delete(o); free(r.body);
    long c = submit(SINE_JOB("fresh", 1, 40), 202);
    o = wait_job(c, 30);
    ck_assert_str_eq(status_of(o), "succeeded");
    ck_assert_int_eq((int)num(o, "version"), 3);
    cJSON_Delete(o);
    r = post("/predict", "{\"model\": \"fresh\", \"sequence\": [0.1, 0.2]}");
    o = json_of(&r);
    ck_assert_int_eq((int)num(o, "version"), 3);
    cJSON_Delete(o); free(r.body);
}
END_TEST

/* A job with a schedule and early stopping reports its rate, its best
 * epoch and that it stopped; a schedule of the wrong shape is a 422 naming
 * the key. */
START_TEST(test_job_controls)
{
    const char *job = "{\"model\": \"es\", \"cell\": \"gru\", \"hidden\": 8, \"data\": {\"generator\": \"sine\","
                      " \"samples\": 48, \"window\": 8}, \"epochs\": 200, \"validation\": 0.25, \"shuffle\": false,"
                      " \"optimizer\": {\"name\": \"adam\", \"lr\": 0.05},"
                      " \"lr_schedule\": {\"name\": \"plateau\", \"patience\": 1, \"factor\": 0.5},"
                      " \"early_stopping\": {\"patience\": 3, \"min_delta\": 1e-5}}";
    cJSON *o = wait_job(submit(job, 202), 60);
    ck_assert_msg(!strcmp(status_of(o), "succeeded"), "%s", cJSON_PrintUnformatted(o));
    const int epoch = (int)num(o, "epoch"), best = (int)num(o, "best_epoch");
    const cJSON *stopped = cJSON_GetObjectItem(o, "stopped_early");
    printf("  job with plateau and early stopping: stopped at epoch %d of 200, best %d, lr %g\n", epoch,
           best, num(o, "lr"));
    ck_assert_msg(epoch < 200 && best == epoch - 3 && cJSON_IsTrue(stopped), "epoch %d best %d", epoch, best);
    ck_assert_msg(num(o, "lr") < 0.05, "the plateau schedule never lowered the rate: %g", num(o, "lr"));
    cJSON_Delete(o);
    resp r = post("/train", "{\"model\": \"es\", \"data\": {\"generator\": \"sine\", \"window\": 5},"
                  " \"lr_schedule\": {\"name\": \"cosine\", \"step_size\": 3}}");
    expect_error(r, 422, "lr_schedule.step_size: not a key of the cosine schedule");
    /* a fine-tune keeps the architecture: asking for another one is a conflict */
    r = post("/train", "{\"model\": \"es\", \"cell\": \"lstm\", \"hidden\": 8, \"data\": {\"generator\": \"sine\", \"window\": 5}}");
    expect_error(r, 409, "cell: the model is gru, this job asks for lstm");
    r = post("/train", "{\"model\": \"es\", \"hidden\": 16, \"cell\": \"gru\", \"data\": {\"generator\": \"sine\", \"window\": 5}}");
    expect_error(r, 409, "hidden: the model is 8, this job asks for 16");
    cJSON_Delete(wait_job(submit("{\"model\": \"es\", \"cell\": \"gru\", \"hidden\": 8, \"epochs\": 1,"
                                 " \"data\": {\"generator\": \"sine\", \"window\": 5}}", 202), 60));
    o = wait_job(submit("{\"model\": \"es\", \"cell\": \"lstm\", \"from_scratch\": true, \"epochs\": 1,"
                        " \"data\": {\"generator\": \"sine\", \"window\": 5}}", 202), 60);
    ck_assert_str_eq(status_of(o), "succeeded");
    cJSON_Delete(o);
    r = get("/models/es");
    ck_assert_msg(strstr(r.body, "\"cell\":\"lstm\""), "%s", r.body);
    free(r.body);
}
END_TEST

/* PUT /data/NAME, then a job on it: a 3-column CSV in raw units (around
 * 1000) trains on z-scores and /predict answers in those units within a few
 * percent; uploads need the token and fit max_upload_bytes, and a CSV with
 * a stray text cell fails its job naming the line and the column. */
START_TEST(test_data_upload_and_series)
{
    stop_daemon();
    start_daemon("--auth-token tok --max-upload-bytes 40000");
    char csv[40000];
    size_t k = (size_t)snprintf(csv, sizeof csv, "time,temp,load\n");
    for (int t = 0; t < 400; t++)
        k += (size_t)snprintf(csv + k, sizeof csv - k, "%d,%.3f,%.3f\n", t, 1000 + 100 * sin(t / 8.0),
                              1000 + 80 * cos(t / 8.0) + 20 * sin(t / 3.0));
    expect_error(http("PUT", "/data/plant.csv", csv, k, "text/csv", NULL), 401, "bearer");
    resp r = http("PUT", "/data/plant.csv", csv, k, "text/csv", "tok");
    ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
    free(r.body);
    char big[50000];
    memset(big, '1', sizeof big);
    expect_error(http("PUT", "/data/big.csv", big, sizeof big, "text/csv", "tok"), 413, "max_upload_bytes");
    expect_error(http("PUT", "/data/..x", "1", 1, "text/csv", "tok"), 400, "data name");
    expect_error(http("PUT", "/data/empty.csv", "", 0, "text/csv", "tok"), 422, "empty");
    r = http("GET", "/data", NULL, 0, NULL, "tok");
    ck_assert_msg(r.status == 200 && strstr(r.body, "\"name\":\"plant.csv\"") && !strstr(r.body, "big.csv"),
                  "%s", r.body);
    free(r.body);
    const char *job = "{\"model\": \"plant\", \"cell\": \"gru\", \"hidden\": 32, \"data\": {\"file\": \"plant.csv\","
                      " \"window\": 20, \"columns\": [\"temp\", \"load\"], \"target\": \"temp\", \"normalize\": \"zscore\"},"
                      " \"epochs\": 30, \"batch\": 16, \"optimizer\": {\"name\": \"adam\", \"lr\": 0.01}}";
    r = http("POST", "/train", job, strlen(job), NULL, "tok");
    ck_assert_msg(r.status == 202, "%s", r.body);
    cJSON *o = json_of(&r);
    free(r.body);
    cJSON *st = wait_job_token((long)num(o, "job"), 60, "tok");
    ck_assert_msg(!strcmp(status_of(st), "succeeded"), "%s", cJSON_PrintUnformatted(st));
    cJSON_Delete(st);
    cJSON_Delete(o);
    /* the 20 rows before t = 400 predict the temperature at 400 */
    char req[4096];
    k = (size_t)snprintf(req, sizeof req, "{\"model\": \"plant\", \"sequence\": [");
    for (int t = 380; t < 400; t++)
        k += (size_t)snprintf(req + k, sizeof req - k, "%s[%.3f, %.3f]", t > 380 ? ", " : "",
                              1000 + 100 * sin(t / 8.0), 1000 + 80 * cos(t / 8.0) + 20 * sin(t / 3.0));
    snprintf(req + k, sizeof req - k, "]}");
    r = post("/predict", req);
    ck_assert_msg(r.status == 200, "%s", r.body);
    o = json_of(&r);
    free(r.body);
    const double want = 1000 + 100 * sin(400 / 8.0), got = num(o, "prediction");
    printf("  CSV series over HTTP: predicted %.2f for %.2f (%.3f%% off)\n", got, want,
           100 * fabs(got - want) / want);
    ck_assert_msg(fabs(got - want) / want < 0.03, "predicted %.2f for %.2f", got, want);
    cJSON_Delete(o);
    /* the same data in raw units trains, with a warning in the job's status */
    const char *raw = "{\"model\": \"plantraw\", \"hidden\": 8, \"epochs\": 1, \"data\": {\"file\": \"plant.csv\","
                      " \"window\": 20, \"columns\": [\"temp\"]}}";
    r = http("POST", "/train", raw, strlen(raw), NULL, "tok");
    o = json_of(&r);
    free(r.body);
    st = wait_job_token((long)num(o, "job"), 60, "tok");
    const cJSON *w = cJSON_GetObjectItem(st, "warning");
    ck_assert_msg(!strcmp(status_of(st), "succeeded") && cJSON_IsString(w) && strstr(w->valuestring, "zscore"),
                  "%s", cJSON_PrintUnformatted(st));
    cJSON_Delete(st);
    cJSON_Delete(o);
    /* a stray text cell: the job fails naming it, nothing is served */
    memcpy(strstr(csv, "\n17,") + 4, "x", 1);
    r = http("PUT", "/data/plant.csv", csv, strlen(csv), "text/csv", "tok");
    ck_assert_int_eq(r.status, 200);
    free(r.body);
    const char *again = "{\"model\": \"plant2\", \"data\": {\"file\": \"plant.csv\", \"window\": 20}}";
    r = http("POST", "/train", again, strlen(again), NULL, "tok");
    o = json_of(&r);
    free(r.body);
    st = wait_job_token((long)num(o, "job"), 60, "tok");
    const cJSON *e = cJSON_GetObjectItem(st, "error");
    ck_assert_msg(!strcmp(status_of(st), "failed") && cJSON_IsString(e) &&
                      strstr(e->valuestring, "line 19, column 1 (\"temp\"): \"x085.032\" is not a number"),
                  "%s", cJSON_PrintUnformatted(st));
    cJSON_Delete(st);
    cJSON_Delete(o);
    expect_error(get("/models/plant2"), 404, "plant2");
    r = http("DELETE", "/data/plant.csv", NULL, 0, NULL, "tok");
    ck_assert_int_eq(r.status, 200);
    free(r.body);
    expect_error(http("DELETE", "/data/plant.csv", NULL, 0, NULL, "tok"), 404, "no data file");
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
    /* cancel the queued job: it never ran, so it ran for 0 s; that frees
     * the queue's place */
    char p[64];
    snprintf(p, sizeof p, "/train/%ld", b);
    r = http("DELETE", p, NULL, 0, NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    free(r.body);
    o = wait_job(b, 30);
    ck_assert_str_eq(status_of(o), "cancelled");
    ck_assert_msg(cJSON_GetObjectItem(o, "elapsed")->valuedouble == 0, "elapsed %g",
                  cJSON_GetObjectItem(o, "elapsed")->valuedouble);
    cJSON_Delete(o);
    long c = submit(SINE_JOB("third", 1, 40), 202);
    /* cancel the running job: it stops at its next step, the queued one runs */
    snprintf(p, sizeof p, "/train/%ld", a);
    r = http("DELETE", p, NULL, 0, NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    free(r.body);
    o = wait_job(a, 30);
    ck_assert_str_eq(status_of(o), "cancelled");
    const double ea = cJSON_GetObjectItem(o, "elapsed")->valuedouble;
    ck_assert_msg(ea > 0 && ea < 60, "elapsed %g", ea);
    cJSON_Delete(o);
    o = wait_job(c, 30);
    ck_assert_str_eq(status_of(o), "succeeded");
    cJSON_Delete(o);
    /* a cancelled job published nothing */
    r = get("/models/slow");
    expect_error(r, 404, "not loaded");
    r = get("/models/second");
    expect_error(r, 404, "not loaded");
    r = get("/train");
    o = json_of(&r);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "jobs")), 3);
    cJSON_Delete(o); free(r.body);
}
END_TEST

/* A job's data is bounded before anything is built: the 130-byte post that
 * once built 9.6 GB of windows gets 413 at once; the jobs queued or running
 * share the same bound, and a job that would pass it waits its turn (429). */
START_TEST(test_job_data_bounded)
{
    stop_daemon();
    start_daemon("--max-job-bytes 6291456");
    const double t0 = mono_s();
    resp r = post("/train", "{\"model\": \"huge\", \"data\": {\"generator\": \"sine\", \"samples\": 1000000, "
                            "\"window\": 2500}}");
    const double took = mono_s() - t0;
    expect_error(r, 413, "max_job_bytes (6291456)");
    ck_assert_msg(took < 1.0, "refusing took %.2f s", took);
    /* about 3.8 MB each (40000 windows of 20 floats and their targets) */
    long a = submit(SINE_JOB("big_a", 100000, 40000), 202);
    expect_error(post("/train", SINE_JOB("big_b", 1, 40000)), 429, "max_job_bytes");
    /* a small one still fits beside it */
    long s = submit(SINE_JOB("small", 1, 40), 202);
    char p[64];
    snprintf(p, sizeof p, "/train/%ld", a);
    r = http("DELETE", p, NULL, 0, NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    free(r.body);
    cJSON *o = wait_job(a, 30);
    ck_assert_str_eq(status_of(o), "cancelled");
    cJSON_Delete(o);
    o = wait_job(s, 30);
    ck_assert_str_eq(status_of(o), "succeeded");
    cJSON_Delete(o);
    /* what a finished job held is given back */
    long b = submit(SINE_JOB("big_b", 1, 40000), 202);
    o = wait_job(b, 60);
    ck_assert_str_eq(status_of(o), "succeeded");
    cJSON_Delete(o);
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
    /* the route table's Allow: every method a path has */
    r = http("PUT", "/train", NULL, 0, NULL, NULL);
    ck_assert_str_eq(r.allow, "GET, POST");
    expect_error(r, 405, "not allowed");
    r = http("POST", "/train/3", "{}", 2, NULL, NULL);
    ck_assert_str_eq(r.allow, "GET, DELETE");
    expect_error(r, 405, "not allowed");
    expect_error(get("/nowhere"), 404, "no such endpoint");
    expect_error(get("/models/"), 404, "no such endpoint");
    expect_error(get("/healthz/x"), 404, "no such endpoint");
    expect_error(get("/train/999"), 404, "no job");
    expect_error(post("/train", "{\"model\": \"x\", \"data\": {\"generator\": \"sine\"}, \"hidden\": -1}"), 422, "hidden");
    expect_error(post("/train", "{\"data\": {\"generator\": \"sine\"}}"), 422, "model: missing");
    expect_error(post("/train", "{\"model\": \"wave\", \"data\": {\"sequences\": [[[1,2]]], \"targets\": [1]}}"), 422, "from_scratch");
    /* an escaped NUL would cut the name to "ok" */
    expect_error(post("/train", "{\"model\": \"ok\\u0000/../x\", \"data\": {\"generator\": \"sine\"}}"), 422,
                 "\\u0000 (a NUL character) at byte 13");
    expect_error(post("/predict", "{\"model\": \"wave\\u0000x\", \"sequence\": [1]}"), 400, "NUL");
    expect_error(get("/models/ok"), 404, "not loaded");
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
    expect_error(get("/admin"), 401, "token as password");
    /* a browser's Basic credentials: any user, the token as password */
    expect_error(http("GET", "/admin", NULL, 0, NULL, "Basic eDpzM2NyZQ=="), 401, "token");
    expect_error(http("GET", "/admin", NULL, 0, NULL, "Basic !!!"), 401, "token");
    resp b = http("GET", "/admin", NULL, 0, NULL, "Basic eDpzM2NyZXQ=");
    ck_assert_int_eq(b.status, 200);
    ck_assert(strstr(b.body, "<svg id=\"chart\""));
    free(b.body);
    b = http("GET", "/train", NULL, 0, NULL, "Basic eDpzM2NyZXQ=");
    ck_assert_int_eq(b.status, 200);
    free(b.body);
    resp r = http("POST", "/train", SINE_JOB("t", 1, 40), strlen(SINE_JOB("t", 1, 40)), NULL, "s3cret");
    ck_assert_int_eq(r.status, 202);
    free(r.body);
    r = http("GET", "/admin/loss?model=wave", NULL, 0, NULL, "s3cret");
    ck_assert_int_eq(r.status, 200);
    free(r.body);
    /* the scheme is case-insensitive (RFC 9110) */
    r = http("GET", "/admin/loss?model=wave", NULL, 0, NULL, "bearer s3cret");
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

    /* listen must be an address; a '#' inside quotes is part of the value;
     * an unclosed quote is an error, not a silently cut value */
    static const struct { const char *text, *err; int status; } cases[] = {
        {"listen = localhost:80\n", "listen: must be an IPv4 or IPv6 address", 2},
        {"listen = \"nonsense\"\n", "listen: must be an IPv4 or IPv6 address", 2},
        {"auth_token = \"abc\n", "a quote is not closed", 2},
        {"listen = ::1\nauth_token = \"a#b\"  # the token\n", NULL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(p, sizeof p, "%s/case.conf", dir);
        f = fopen(p, "w");
        fputs(cases[i].text, f);
        fclose(f);
        snprintf(cmd, sizeof cmd, "'%s' serve --config '%s' --print-config > '%s/cfg.out' 2> '%s/cfg.err'",
                 rnnd_bin, p, dir, dir);
        st = system(cmd);
        ck_assert_msg(WEXITSTATUS(st) == cases[i].status, "%s: exit %d", cases[i].text, WEXITSTATUS(st));
        snprintf(p, sizeof p, "%s/%s", dir, cases[i].err ? "cfg.err" : "cfg.out");
        e = read_text(p);
        if (cases[i].err)
            ck_assert_msg(strstr(e, cases[i].err), "%s: %s", cases[i].text, e);
        else
            ck_assert_msg(strstr(e, "\nauth_token = a#b\n") && strstr(e, "\nlisten = ::1\n"), "%s", e);
        free(e);
    }
}
END_TEST

/* RNND_KEY variables set any key; flags win over them, they over the file. */
START_TEST(test_env_config_and_probe)
{
    char cmd[2048], p[256];
    snprintf(cmd, sizeof cmd, "RNND_PORT=abc '%s' serve --config config/rnnd.conf --check-config 2> '%s/env.err'",
             rnnd_bin, dir);
    ck_assert_int_eq(WEXITSTATUS(system(cmd)), 2);
    snprintf(p, sizeof p, "%s/env.err", dir);
    char *e = read_text(p);
    ck_assert_msg(strstr(e, "RNND_PORT") && strstr(e, "whole number"), "%s", e);
    free(e);
    snprintf(cmd, sizeof cmd,
             "RNND_TRAIN_QUEUE=7 RNND_PORT=1 '%s' serve --config config/rnnd.conf --port 9 --print-config > '%s/env.out'",
             rnnd_bin, dir);
    ck_assert_int_eq(WEXITSTATUS(system(cmd)), 0);
    snprintf(p, sizeof p, "%s/env.out", dir);
    e = read_text(p);
    ck_assert_msg(strstr(e, "\ntrain_queue = 7\n") && strstr(e, "\nport = 9\n"), "%s", e);
    free(e);

    /* rnnd probe: 0 on 200, 1 on another status or no server, 2 on a bad URL */
    snprintf(cmd, sizeof cmd, "'%s' probe --url http://127.0.0.1:%d/healthz", rnnd_bin, port);
    ck_assert_int_eq(WEXITSTATUS(system(cmd)), 0);
    snprintf(cmd, sizeof cmd, "'%s' probe --url http://127.0.0.1:%d/nothing 2> '%s/probe.err'", rnnd_bin, port, dir);
    ck_assert_int_eq(WEXITSTATUS(system(cmd)), 1);
    snprintf(p, sizeof p, "%s/probe.err", dir);
    e = read_text(p);
    ck_assert_msg(strstr(e, "404"), "%s", e);
    free(e);
    snprintf(cmd, sizeof cmd, "'%s' probe --url ftp://x 2>/dev/null", rnnd_bin);
    ck_assert_int_eq(WEXITSTATUS(system(cmd)), 2);
    /* the port of a config file, as the image's HEALTHCHECK reads it; the
     * environment wins over the file, as for rnnd serve */
    snprintf(p, sizeof p, "%s/probe.conf", dir);
    FILE *cf = fopen(p, "w");
    ck_assert(cf);
    fprintf(cf, "listen = 0.0.0.0\nport = %d\n", port);
    fclose(cf);
    snprintf(cmd, sizeof cmd, "env -u RNND_PORT '%s' probe --config '%s'", rnnd_bin, p);
    ck_assert_int_eq(WEXITSTATUS(system(cmd)), 0);
    snprintf(cmd, sizeof cmd, "RNND_PORT=1 '%s' probe --config '%s' 2>/dev/null", rnnd_bin, p);
    ck_assert_int_eq(WEXITSTATUS(system(cmd)), 1);
    int keep = port;
    ck_assert_int_eq(stop_daemon(), 0);
    snprintf(cmd, sizeof cmd, "'%s' probe --url http://127.0.0.1:%d/healthz 2>/dev/null", rnnd_bin, keep);
    ck_assert_int_eq(WEXITSTATUS(system(cmd)), 1);

    /* the token from the environment */
    setenv("RNND_AUTH_TOKEN", "from-env", 1);
    start_daemon("");
    unsetenv("RNND_AUTH_TOKEN");
    expect_error(get("/train"), 401, "token");
    resp r = http("GET", "/train", NULL, 0, NULL, "from-env");
    ck_assert_int_eq(r.status, 200);
    free(r.body);
}
END_TEST

/* Waits up to 10 s for one datagram on fd; returns it in buf. */
static void recv_notify(int fd, char *buf, size_t cap)
{
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssize_t n = recv(fd, buf, cap - 1, 0);
    ck_assert_msg(n > 0, "no sd_notify message within 10 s");
    buf[n] = 0;
}

/* Type=notify: READY=1 once the port answers, RELOADING=1 / READY=1 around
 * SIGHUP, STOPPING=1 on SIGTERM, each a datagram to $NOTIFY_SOCKET. */
START_TEST(test_sd_notify)
{
    ck_assert_int_eq(stop_daemon(), 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s/notify", dir);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    ck_assert(fd >= 0);
    ck_assert(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    setenv("NOTIFY_SOCKET", sa.sun_path, 1);
    start_daemon("");
    unsetenv("NOTIFY_SOCKET");
    char msg[256];
    recv_notify(fd, msg, sizeof msg);
    ck_assert_str_eq(msg, "READY=1");
    resp r = get("/readyz"); /* ready means the port answers */
    ck_assert_int_eq(r.status, 200);
    free(r.body);
    kill(pid, SIGHUP);
    recv_notify(fd, msg, sizeof msg);
    ck_assert_str_eq(msg, "RELOADING=1");
    recv_notify(fd, msg, sizeof msg);
    ck_assert_str_eq(msg, "READY=1");
    kill(pid, SIGTERM);
    recv_notify(fd, msg, sizeof msg);
    ck_assert_str_eq(msg, "STOPPING=1");
    ck_assert_int_eq(stop_daemon(), 0);
    close(fd);
    start_daemon(""); /* for the fixture's teardown */
}
END_TEST

/* A save that died leaves NAME.safetensors.tmp.XXXXXX: a restart removes
 * it, but not the temp file of a save still running (held locked), and
 * never a model. */
START_TEST(test_stale_temps_removed)
{
    stop_daemon();
    char dead[512], live[512];
    snprintf(dead, sizeof dead, "%s/models/wave.safetensors.tmp.Ab12Cd", dir);
    snprintf(live, sizeof live, "%s/models/wave.safetensors.tmp.Ef34Gh", dir);
    sh("head -c 100 '%s/models/wave.safetensors' > '%s' && cp '%s' '%s' && touch -d '-1 minute' '%s' '%s'",
       dir, dead, dead, live, dead, live);
    int fd = open(live, O_RDONLY);
    ck_assert(fd >= 0 && flock(fd, LOCK_EX) == 0); /* a save in flight, as rnn_model_save holds it */
    start_daemon("");
    ck_assert_msg(access(dead, F_OK) != 0, "the dead save's temp file is still there");
    ck_assert_msg(access(live, F_OK) == 0, "a running save's temp file was removed");
    close(fd);
    resp r = post("/predict", "{\"model\": \"wave\", \"sequence\": [0.5]}");
    ck_assert_int_eq(r.status, 200);
    free(r.body);
    /* once its writer is gone, the next start removes it too */
    stop_daemon();
    start_daemon("");
    ck_assert_msg(access(live, F_OK) != 0, "an abandoned temp file survived a restart");
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

Suite *http_suite(void)
{
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("daemon");
    tcase_set_timeout(tc, 180);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_predict_each_task);
    tcase_add_test(tc, test_predict_batched);
    tcase_add_test(tc, test_predict_work_bound);
    tcase_add_test(tc, test_dynamic_batching);
    tcase_add_test(tc, test_job_life_and_swap);
    tcase_add_test(tc, test_job_controls);
    tcase_add_test(tc, test_data_upload_and_series);
    tcase_add_test(tc, test_cancel_queue_and_429);
    tcase_add_test(tc, test_job_data_bounded);
    tcase_add_test(tc, test_swap_under_load);
    tcase_add_test(tc, test_error_paths);
    tcase_add_test(tc, test_auth_token);
    tcase_add_test(tc, test_sigterm_during_burst);
    tcase_add_test(tc, test_config_errors);
    tcase_add_test(tc, test_sighup_reload);
    tcase_add_test(tc, test_stale_temps_removed);
    tcase_add_test(tc, test_env_config_and_probe);
    tcase_add_test(tc, test_sd_notify);
    suite_add_tcase(s, tc);
    return s;
}

