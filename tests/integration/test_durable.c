/*
 * Nothing lost: kept versions (listed, asked for by number, rolled back,
 * pruned past keep_versions, numbered on across restarts) and durable jobs
 * (records that outlive the daemon, checkpoints, resumption). The kill -9
 * trials kill a daemon at random moments while it trains a new model and
 * fine-tunes another, start it again and check that both jobs finish with
 * the weights of a run never killed, that no version is lost, that every
 * file loads and that no temp file is left. RNND_KILL_TRIALS sets their
 * number (make test: 8; the figure: 200).
 */
#include "harness.h"

#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DURABLE_ARGS "--train-threads 1 --checkpoint-s 1 --train-workers 1"
#define NEW_JOB "{\"model\": \"fresh\", \"cell\": \"gru\", \"hidden\": 48, \"data\": {\"generator\": \"sine\"," \
                " \"samples\": 3000, \"window\": 30}, \"epochs\": 8, \"batch\": 16, \"shuffle\": true,"       \
                " \"validation\": 0.1, \"optimizer\": {\"name\": \"adam\", \"lr\": 0.01}}"
#define TUNE_JOB "{\"model\": \"wave\", \"data\": {\"generator\": \"sine\", \"samples\": 3000, \"window\": 25}," \
                 " \"epochs\": 8, \"batch\": 8, \"shuffle\": true, \"optimizer\": {\"name\": \"sgd\","       \
                 " \"lr\": 0.01, \"momentum\": 0.9}}"

static void durable_teardown(void)
{
    if (pid > 0)
        stop_daemon();
    sh("rm -rf '%s'", dir);
}

static void kill9(void)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    pid = 0;
}

/* Files under d whose name has ".tmp." (a save that did not finish). */
static int temps_under(const char *d)
{
    char cmd[512], line[512];
    snprintf(cmd, sizeof cmd, "find '%s' -name '*.tmp.*' | wc -l", d);
    FILE *p = popen(cmd, "r");
    ck_assert(p && fgets(line, sizeof line, p));
    pclose(p);
    return atoi(line);
}

/* The versions GET /models/NAME/versions lists, and the served one. */
static int versions_of(const char *name, long *v, int max, long *served)
{
    char path[128];
    snprintf(path, sizeof path, "/models/%s/versions", name);
    resp r = get(path);
    ck_assert_msg(r.status == 200, "%s: %ld %s", path, r.status, r.body);
    cJSON *o = json_of(&r);
    free(r.body);
    *served = (long)num(o, "served");
    int n = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, cJSON_GetObjectItem(o, "versions"))
        if (n < max) v[n++] = (long)num(x, "version");
    cJSON_Delete(o);
    return n;
}

START_TEST(test_versions_kept_and_rolled_back)
{
    setup_dir();
    start_daemon("--keep-versions 3 --auth-token tok " DURABLE_ARGS);
    const char *job = "{\"model\": \"wave\", \"data\": {\"generator\": \"sine\", \"samples\": 60, \"window\": 20},"
                      " \"epochs\": 1, \"batch\": 8}";
    for (int i = 0; i < 4; i++) {
        resp r = http("POST", "/train", job, strlen(job), NULL, "tok");
        ck_assert_msg(r.status == 202, "%s", r.body);
        cJSON *o = json_of(&r);
        free(r.body);
        cJSON_Delete(wait_job_token((long)num(o, "job"), 60, "tok"));
        cJSON_Delete(o);
    }
    long v[16], served;
    int n = versions_of("wave", v, 16, &served);
    /* the file in model_dir was version 1, then four jobs: 2..5; three kept */
    ck_assert_int_eq(served, 5);
    ck_assert_int_eq(n, 3);
    ck_assert_msg(v[0] == 3 && v[1] == 4 && v[2] == 5, "kept %ld %ld %ld", v[0], v[1], v[2]);
    /* an older version answers when asked for */
    const char *q3 = "{\"model\": \"wave\", \"version\": 3, \"sequence\": [0.1, 0.2, 0.3]}";
    const char *q5 = "{\"model\": \"wave\", \"sequence\": [0.1, 0.2, 0.3]}";
    resp a = post("/predict", q3), b = post("/predict", q5);
    ck_assert_msg(a.status == 200 && b.status == 200, "%s %s", a.body, b.body);
    cJSON *oa = json_of(&a), *ob = json_of(&b);
    free(a.body);
    free(b.body);
    ck_assert_int_eq((long)num(oa, "version"), 3);
    ck_assert_int_eq((long)num(ob, "version"), 5);
    ck_assert_msg(num(oa, "prediction") != num(ob, "prediction"), "versions 3 and 5 answer alike");
    const double p3 = num(oa, "prediction");
    cJSON_Delete(oa);
    cJSON_Delete(ob);
    expect_error(post("/predict", "{\"model\": \"wave\", \"version\": 1, \"sequence\": [0.1]}"), 404, "no version 1");
    expect_error(post("/predict", "{\"model\": \"wave\", \"version\": \"3\", \"sequence\": [0.1]}"), 400, "version");
    /* rollback needs the token, a kept number and nothing else */
    const char *put3 = "{\"version\": 3}";
    expect_error(http("PUT", "/models/wave/served", put3, strlen(put3), NULL, NULL), 401, "bearer");
    expect_error(http("PUT", "/models/wave/served", "{\"version\": 2}", 14, NULL, "tok"), 404, "no version 2");
    expect_error(http("PUT", "/models/wave/served", "{\"version\": 3, \"x\": 1}", 22, NULL, "tok"), 400, "version");
    resp pr = http("PUT", "/models/wave/served", put3, strlen(put3), NULL, "tok");
    ck_assert_msg(pr.status == 200, "%s", pr.body);
    free(pr.body);
    b = post("/predict", q5);
    ob = json_of(&b);
    free(b.body);
    ck_assert_int_eq((long)num(ob, "version"), 3);
    ck_assert_msg(num(ob, "prediction") == p3, "the rollback serves other weights");
    cJSON_Delete(ob);
    /* a restart serves the version rolled back to, and the next job is 6 */
    ck_assert_int_eq(stop_daemon(), 0);
    start_daemon("--keep-versions 3 --auth-token tok " DURABLE_ARGS);
    n = versions_of("wave", v, 16, &served);
    ck_assert_int_eq(served, 3);
    resp r = http("POST", "/train", job, strlen(job), NULL, "tok");
    ck_assert_int_eq(r.status, 202);
    cJSON *o = json_of(&r);
    free(r.body);
    const long id = (long)num(o, "job");
    ck_assert_msg(id == 5, "job IDs restarted: %ld after 4 jobs", id);
    cJSON_Delete(o);
    o = wait_job_token(id, 60, "tok");
    ck_assert_int_eq((long)num(o, "version"), 6);
    cJSON_Delete(o);
    n = versions_of("wave", v, 16, &served);
    ck_assert_int_eq(served, 6);
    /* the newest three and no more */
    ck_assert_msg(n == 3 && v[0] == 4 && v[1] == 5 && v[2] == 6, "kept %d: %ld %ld %ld", n, v[0], v[1], v[2]);
    /* the jobs of the first run still answer */
    resp old = http("GET", "/train/1", NULL, 0, NULL, "tok");
    ck_assert_msg(old.status == 200 && strstr(old.body, "succeeded"), "%ld %s", old.status, old.body);
    free(old.body);
    /* a file dropped into model_dir is a new version */
    ck_assert_int_eq(stop_daemon(), 0);
    sh("cp '%s/lstm.safetensors' '%s/models/wave.safetensors'", models_src, dir);
    start_daemon("--keep-versions 3 --auth-token tok " DURABLE_ARGS);
    n = versions_of("wave", v, 16, &served);
    ck_assert_int_eq(served, 7);
    resp v2 = get("/v2/models/wave");
    ck_assert_msg(strstr(v2.body, "\"7\""), "%s", v2.body);
    free(v2.body);
    resp v2old = get("/v2/models/wave/versions/5");
    ck_assert_msg(v2old.status == 200, "%s", v2old.body);
    free(v2old.body);
    ck_assert_int_eq(stop_daemon(), 0);
    ck_assert_int_eq(temps_under(dir), 0);
}
END_TEST

/* One uninterrupted run of both jobs: the weights every trial must reach. */
static void reference(char *fresh, char *wave, size_t n, double *seconds)
{
    start_daemon(DURABLE_ARGS);
    const double t0 = mono_s();
    const long a = submit(NEW_JOB, 202), b = submit(TUNE_JOB, 202);
    cJSON_Delete(wait_job(a, 120));
    cJSON_Delete(wait_job(b, 120));
    *seconds = mono_s() - t0;
    ck_assert_int_eq(stop_daemon(), 0);
    snprintf(fresh, n, "%s/ref-fresh.safetensors", dir);
    snprintf(wave, n, "%s/ref-wave.safetensors", dir);
    sh("cp '%s/models/fresh.safetensors' '%s' && cp '%s/models/wave.safetensors' '%s'", dir, fresh, dir, wave);
}

START_TEST(test_kill9_trials)
{
    setup_dir();
    const char *t = getenv("RNND_KILL_TRIALS");
    const int trials = t && atoi(t) > 0 ? atoi(t) : 8;
    char ref_fresh[256], ref_wave[256];
    double both;
    reference(ref_fresh, ref_wave, sizeof ref_fresh, &both);
    srand((unsigned)time(NULL));
    int resumed = 0, done_before = 0;
    double longest = 0;
    for (int k = 0; k < trials; k++) {
        /* a fresh state each trial: wave version 1 from the file */
        sh("rm -rf '%s/models' && mkdir -p '%s/models' && cp '%s/lstm.safetensors' '%s/models/wave.safetensors'",
           dir, dir, models_src, dir);
        start_daemon(DURABLE_ARGS);
        const long a = submit(NEW_JOB, 202), b = submit(TUNE_JOB, 202);
        /* kill anywhere from the submission to a little past the jobs' end */
        const int ms = rand() % (int)(both * 1100 + 1);
        msleep(ms);
        cJSON *sa = job_status(a), *sb = job_status(b);
        done_before += !strcmp(status_of(sb), "succeeded");
        cJSON_Delete(sa);
        cJSON_Delete(sb);
        kill9();
        const double t0 = mono_s();
        start_daemon(DURABLE_ARGS);
        cJSON *oa = wait_job(a, 120), *ob = wait_job(b, 120);
        ck_assert_msg(!strcmp(status_of(oa), "succeeded") && !strcmp(status_of(ob), "succeeded"),
                      "trial %d (kill at %d ms): jobs %s and %s", k, ms, status_of(oa), status_of(ob));
        ck_assert_int_eq((long)num(oa, "version"), 1);
        ck_assert_int_eq((long)num(ob, "version"), 2);
        cJSON_Delete(oa);
        cJSON_Delete(ob);
        if (mono_s() - t0 > longest) longest = mono_s() - t0;
        char *log = read_text(log_path);
        resumed += strstr(log, "resumed at") != NULL;
        free(log);
        long v[8], served;
        ck_assert_int_eq(versions_of("fresh", v, 8, &served), 1);
        ck_assert_int_eq(served, 1);
        ck_assert_msg(versions_of("wave", v, 8, &served) == 2 && v[0] == 1 && v[1] == 2 && served == 2,
                      "trial %d: wave versions lost", k);
        ck_assert_int_eq(stop_daemon(), 0);
        char p[256];
        snprintf(p, sizeof p, "%s/models/fresh.safetensors", dir);
        ck_assert_msg(same_weights(p, ref_fresh), "trial %d (kill at %d ms): new model's weights differ", k, ms);
        snprintf(p, sizeof p, "%s/models/wave.safetensors", dir);
        ck_assert_msg(same_weights(p, ref_wave), "trial %d (kill at %d ms): fine-tune's weights differ", k, ms);
        /* every file loads, and no temp file is left */
        sh("for f in '%s'/models/*.safetensors '%s'/models/.rnnd/versions/*/*.safetensors; do"
           " '%s' info --model \"$f\" > /dev/null || exit 1; done", dir, dir, rnnd_bin);
        ck_assert_msg(temps_under(dir) == 0, "trial %d: temp files left", k);
    }
    printf("  kill -9 trials: %d (jobs %.2f s uninterrupted), jobs resumed from a checkpoint in %d,"
           " both done before the kill in %d; slowest recovery %.2f s\n", trials, both, resumed,
           done_before, longest);
}
END_TEST

Suite *durable_suite(void)
{
    Suite *s = suite_create("durable");
    TCase *tc = tcase_create("durable");
    tcase_add_checked_fixture(tc, NULL, durable_teardown);
    tcase_set_timeout(tc, 1800);
    tcase_add_test(tc, test_versions_kept_and_rolled_back);
    tcase_add_test(tc, test_kill9_trials);
    suite_add_tcase(s, tc);
    return s;
}
