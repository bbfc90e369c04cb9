/*
 * The README cannot rot: its quickstart block and its endpoint block are read
 * out of README.md and run with /bin/sh, command by command, against a live
 * daemon on the demo models (`make demo`) started with config/rnnd.conf, as
 * `make run` does. The one change is the address: localhost:8080 becomes the
 * test daemon's port. Each reply is checked for what the README says it shows.
 */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define MAX_CMDS 64

/* The ```sh block after the line starting with `marker`, split into shell
 * commands: a command goes on while a quote is open or a line ends in a
 * backslash; comment lines between commands are dropped. */
static int readme_block(const char *marker, char **cmds, int max)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/README.md", project_root);
    char *t = read_text(path);
    char *m = strstr(t, marker);
    ck_assert_msg(m, "README.md has no \"%s\" block", marker);
    char *b = strstr(m, "```sh\n");
    ck_assert_msg(b, "README.md: no ```sh block after \"%s\"", marker);
    b += 6;
    char *e = strstr(b, "\n```");
    ck_assert(e);
    *e = 0;
    int n = 0;
    char cur[8192];
    size_t cl = 0;
    int sq = 0, dq = 0;
    for (char *line = strtok(b, "\n"); line; line = strtok(NULL, "\n")) {
        if (cl == 0 && (line[0] == '#' || line[0] == 0))
            continue;
        size_t ll = strlen(line);
        ck_assert(cl + ll + 2 < sizeof cur);
        memcpy(cur + cl, line, ll);
        cl += ll;
        cur[cl++] = '\n';
        for (size_t i = 0; i < ll; i++) {
            if (line[i] == '\'' && !dq) sq = !sq;
            else if (line[i] == '"' && !sq && (i == 0 || line[i - 1] != '\\')) dq = !dq;
        }
        if (sq || dq || (ll && line[ll - 1] == '\\'))
            continue;
        cur[cl - 1] = 0; /* the last newline */
        ck_assert(n < max);
        cmds[n++] = strdup(cur);
        cl = 0;
    }
    ck_assert_msg(cl == 0, "README block \"%s\" ends inside a command", marker);
    free(t);
    return n;
}

/* Runs one README command with localhost:8080 pointed at the test daemon;
 * returns its stdout and fails the test unless it exits 0. */
static char *run_cmd(const char *cmd)
{
    char real[16384], *o = real;
    const char *p = cmd, *q;
    while ((q = strstr(p, "localhost:8080"))) {
        o += snprintf(o, sizeof real - (size_t)(o - real), "%.*s127.0.0.1:%d", (int)(q - p), p, port);
        p = q + strlen("localhost:8080");
    }
    snprintf(o, sizeof real - (size_t)(o - real), "%s", p);
    FILE *f = popen(real, "r");
    ck_assert(f);
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    for (size_t r; (r = fread(out + len, 1, cap - len - 1, f)) > 0;) {
        len += r;
        if (len + 1 == cap) out = realloc(out, cap *= 2);
    }
    out[len] = 0;
    int st = pclose(f);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "README command failed (%d):\n%s\noutput: %s", st, real, out);
    printf("  $ %.100s%s\n    %.160s%s\n", cmd, strlen(cmd) > 100 ? "..." : "", out, strlen(out) > 160 ? "..." : "");
    return out;
}

/* The reply as JSON; fails on an error reply. */
static cJSON *reply(const char *cmd, const char *out)
{
    cJSON *o = cJSON_Parse(out);
    ck_assert_msg(o, "not JSON from\n%s\n%s", cmd, out);
    ck_assert_msg(!cJSON_IsObject(cJSON_GetObjectItem(o, "error")), "error reply from\n%s\n%s", cmd, out);
    return o;
}

static void readme_setup(void)
{
    setup_demo_dir();
    char args[3072];
    snprintf(args, sizeof args, "--config '%s/config/rnnd.conf' --port 0 --model-dir '%s/models' --data-dir '%s'",
             project_root, dir, dir);
    start_daemon_args(args);
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* kB of a /proc/PID/status line such as "VmHWM:  23016 kB" */
static long status_kb(const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f, "cannot read %s", path);
    long kb = -1;
    while (kb < 0 && fgets(line, sizeof line, f))
        if (!strncmp(line, key, strlen(key)))
            kb = atol(line + strlen(key) + 1);
    fclose(f);
    ck_assert_msg(kb > 0, "%s: no %s line", path, key);
    return kb;
}

/* The daemon on the demo models, after predictions, generation and a
 * training job, has never held more than 25 MiB (sanitizer builds hold far
 * more by design, and are not measured). */
static void check_footprint(void)
{
    const long rss = status_kb("VmRSS"), peak = status_kb("VmHWM");
    printf("  footprint on the demo models: RSS %.1f MiB, peak %.1f MiB (limit 25 MiB)\n",
           rss / 1024.0, peak / 1024.0);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    printf("  not held to the limit: a sanitizer build\n");
#else
    ck_assert_msg(peak < 25 * 1024, "the daemon's peak RSS is %.1f MiB, over 25 MiB", peak / 1024.0);
#endif
}

START_TEST(test_readme_quickstart_and_endpoints)
{
    char *cmds[MAX_CMDS];
    int n = readme_block("<!-- quickstart", cmds, MAX_CMDS);
    enum { PREDICT, FORECAST, GENERATE, SUBMIT, WATCH, STATUS, LOSS, MODEL, NKIND };
    static const char *const kind_name[] = {"predict", "forecast", "generate", "train", "watch", "job status",
                                            "loss history", "model version"};
    int seen[NKIND] = {0};
    resp r0 = get("/models/sine");
    cJSON *m0 = json_of(&r0);
    const int epochs0 = (int)num(cJSON_GetObjectItem(m0, "provenance"), "epochs");
    cJSON_Delete(m0);
    free(r0.body);
    for (int i = 0; i < n; i++) {
        const char *c = cmds[i];
        char *out = run_cmd(c);
        int k = !strncmp(c, "while", 5)            ? WATCH
                : strstr(c, "/predict") && strstr(c, "\"steps\": 10") ? FORECAST
                : strstr(c, "/predict") && strstr(c, "\"text\"")      ? GENERATE
                : strstr(c, "/predict")                                ? PREDICT
                : strstr(c, "--json") && strstr(c, "/train")           ? SUBMIT
                : strstr(c, "/admin/loss?job=1")                       ? LOSS
                : strstr(c, "/train/1")                                ? STATUS
                : strstr(c, "/models/sine")                            ? MODEL
                                                                       : -1;
        ck_assert_msg(k >= 0, "README quickstart command the test does not know: %s", c);
        seen[k]++;
        if (k == WATCH) {
            /* one status line per second while the job runs (none if it was quick) */
            for (char *l = strtok(out, "\n"); l; l = strtok(NULL, "\n")) {
                cJSON *o = reply(c, l);
                ck_assert_int_eq((int)num(o, "job"), 1);
                const char *s = status_of(o);
                ck_assert_msg(!strcmp(s, "queued") || !strcmp(s, "running"), "watch printed status %s", s);
                cJSON_Delete(o);
            }
            free(out);
            continue;
        }
        cJSON *o = reply(c, out);
        if (k == PREDICT || k == FORECAST) {
            ck_assert_str_eq(cJSON_GetObjectItem(o, "model")->valuestring, "sine");
            /* the demo model knows its sine wave: the README says sin(50) = -0.262 */
            double pred = num(o, "prediction");
            ck_assert_msg(fabs(pred - sin(50.0)) < 0.05, "prediction %g, sin(50) = %g", pred, sin(50.0));
            if (k == FORECAST) {
                cJSON *f = cJSON_GetObjectItem(o, "forecast");
                ck_assert_int_eq(cJSON_GetArraySize(f), 10);
                for (int s = 0; s < 10; s++) {
                    double v = cJSON_GetArrayItem(f, s)->valuedouble;
                    ck_assert_msg(fabs(v - sin(50.0 + s)) < 0.1, "forecast[%d] %g, sin(%d) = %g", s, v, 50 + s,
                                  sin(50.0 + s));
                }
            }
        } else if (k == GENERATE) {
            const cJSON *t = cJSON_GetObjectItem(o, "text");
            ck_assert(cJSON_IsString(t));
            ck_assert_int_eq((int)utf8_chars(t->valuestring), 200);
            ck_assert_int_eq((int)num(o, "seed"), 1);
        } else if (k == SUBMIT) {
            ck_assert_int_eq((int)num(o, "job"), 1);
        } else if (k == STATUS) {
            /* the watch loop ended, so the job has */
            ck_assert_str_eq(status_of(o), "succeeded");
            ck_assert_int_eq((int)num(o, "epoch"), 20);
            ck_assert_int_eq((int)num(o, "version"), 2);
        } else if (k == LOSS) {
            cJSON *pts = cJSON_GetObjectItem(o, "points");
            ck_assert_int_eq(cJSON_GetArraySize(pts), 20);
            for (cJSON *p = pts->child; p; p = p->next) {
                ck_assert(isfinite(num(p, "loss")) && num(p, "loss") < 1e-2);
                ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(p, "val_loss")));
            }
        } else if (k == MODEL) {
            ck_assert_int_eq((int)num(o, "version"), 2);
            ck_assert_int_eq((int)num(cJSON_GetObjectItem(o, "provenance"), "epochs"), epochs0 + 20);
        }
        cJSON_Delete(o);
        free(out);
    }
    for (int k = 0; k < NKIND; k++)
        ck_assert_msg(seen[k] == (k == PREDICT || k == FORECAST || k == GENERATE || k == SUBMIT || k == WATCH ||
                                  k == STATUS || k == LOSS || k == MODEL),
                      "README quickstart: %d \"%s\" commands, want 1", seen[k], kind_name[k]);
    for (int i = 0; i < n; i++) free(cmds[i]);
    check_footprint();

    /* the endpoint block, against the same daemon (job 1 is done) */
    n = readme_block("<!-- endpoints", cmds, MAX_CMDS);
    ck_assert_msg(n >= 15, "README endpoint block has %d commands", n);
    int metrics = 0, page = 0, posted = 0;
    for (int i = 0; i < n; i++) {
        const char *c = cmds[i];
        char *out = run_cmd(c);
        if (!strncmp(out, "HTTP/", 5)) {
            int st = atoi(out + 9);
            ck_assert_msg(st >= 200 && st < 300, "status %d from %s", st, c);
            char *body = strstr(out, "\r\n\r\n");
            ck_assert(body);
            cJSON_Delete(reply(c, body + 4));
            posted += st == 202 && strstr(out, "Location: /train/2");
        } else if (strstr(c, "/metrics")) {
            ck_assert_msg(strstr(out, "rnnd_http_requests_total{"), "metrics: %.200s", out);
            metrics = 1;
        } else if (strstr(c, "http_code")) {
            ck_assert_str_eq(out, "200\n");
            page = 1;
        } else {
            cJSON *o = reply(c, out);
            if (strstr(c, "/models/chars")) ck_assert(cJSON_GetObjectItem(o, "tensors"));
            if (strstr(c, "-X DELETE")) {
                const char *s = status_of(o);
                /* a running job stops at its next step */
                ck_assert_msg(strcmp(s, "queued") && strcmp(s, "failed"), "after DELETE: %s", s);
            }
            cJSON_Delete(o);
        }
        free(out);
    }
    ck_assert(metrics && page && posted == 1);
    for (int i = 0; i < n; i++) free(cmds[i]);
}
END_TEST

/* The ```sh block after `marker` as one script (set -e), and its output
 * lines, at most max. */
static int readme_script(const char *marker, char **lines, int max, char **out)
{
    char *cmds[MAX_CMDS];
    int n = readme_block(marker, cmds, MAX_CMDS);
    size_t cap = 16, len = 0;
    for (int i = 0; i < n; i++) cap += strlen(cmds[i]) + 1;
    char *script = malloc(cap);
    len += (size_t)snprintf(script, cap, "set -e\n");
    for (int i = 0; i < n; i++) {
        len += (size_t)snprintf(script + len, cap - len, "%s\n", cmds[i]);
        free(cmds[i]);
    }
    *out = run_cmd(script);
    free(script);
    int k = 0;
    for (char *l = strtok(*out, "\n"); l && k < max; l = strtok(NULL, "\n")) lines[k++] = l;
    return k;
}

/* The sessions block: the window fed in two pieces ends where /predict on
 * the whole window does; a forecast does not move the session on. */
START_TEST(test_readme_sessions)
{
    char *lines[8], *out;
    int n = readme_script("<!-- sessions", lines, 8, &out);
    ck_assert_msg(n == 5, "the sessions block printed %d lines:\n%s", n, out);
    cJSON *first = reply("session", lines[0]), *second = reply("session", lines[1]);
    cJSON *fc = reply("forecast", lines[2]), *info = reply("session info", lines[3]);
    cJSON *whole = reply("predict", lines[4]);
    ck_assert_int_eq((int)num(first, "position"), 5);
    ck_assert_int_eq((int)num(second, "position"), 10);
    ck_assert_msg(fabs(num(second, "prediction") - num(whole, "prediction")) <=
                      1e-5 * fmax(1, fabs(num(whole, "prediction"))),
                  "session %g, /predict %g", num(second, "prediction"), num(whole, "prediction"));
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(fc, "forecast")), 3);
    ck_assert_int_eq((int)num(info, "position"), 10);
    ck_assert_str_eq(cJSON_GetObjectItem(info, "model")->valuestring, "sine");
    /* DELETE ended it */
    char path[128];
    snprintf(path, sizeof path, "/sessions/%s", cJSON_GetObjectItem(info, "session")->valuestring);
    expect_error(get(path), 404, "no session");
    cJSON_Delete(first); cJSON_Delete(second); cJSON_Delete(fc); cJSON_Delete(info);
    cJSON_Delete(whole);
    free(out);
}
END_TEST

/* The series block: an upload, a job on it, and a prediction in degrees
 * within a few percent of the true temperature. */
START_TEST(test_readme_series)
{
    char *lines[4], *out;
    int n = readme_script("<!-- series", lines, 4, &out);
    ck_assert_msg(n == 2, "the series block printed %d lines:\n%s", n, out);
    cJSON *up = reply("upload", lines[0]), *pr = reply("predict", lines[1]);
    ck_assert_str_eq(cJSON_GetObjectItem(up, "name")->valuestring, "plant.csv");
    const double want = 1000 + 100 * sin(400 / 8.0), got = num(pr, "prediction");
    ck_assert_msg(fabs(got - want) / want < 0.03, "predicted %.2f, the temperature is %.2f", got, want);
    cJSON_Delete(up);
    cJSON_Delete(pr);
    free(out);
}
END_TEST

/* The words block: "networks" is the likeliest word after "I love
 * recurrent neural", the continuation ends the sentence, and the sentiment
 * of two unseen sentences. */
START_TEST(test_readme_words)
{
    char *lines[4], *out;
    int n = readme_script("<!-- words", lines, 4, &out);
    ck_assert_msg(n == 3, "the words block printed %d lines:\n%s", n, out);
    cJSON *top = reply("top", lines[0]), *cont = reply("continuation", lines[1]), *mood = reply("mood", lines[2]);
    const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItem(top, "next"), 0);
    ck_assert_str_eq(cJSON_GetObjectItem(first, "token")->valuestring, "networks");
    ck_assert(cJSON_GetObjectItem(first, "p")->valuedouble > 0.5);
    ck_assert_str_eq(cJSON_GetObjectItem(cont, "text")->valuestring, " neural networks.");
    const cJSON *pr = cJSON_GetObjectItem(mood, "predictions");
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(pr, 0), "label")->valuestring, "pos");
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(pr, 1), "label")->valuestring, "neg");
    ck_assert_int_eq((int)num(mood, "unknown"), 3);
    cJSON_Delete(top); cJSON_Delete(cont); cJSON_Delete(mood);
    free(out);
}
END_TEST

/* The KServe block: the model's tensors, and infer equal to /predict. */
START_TEST(test_readme_kserve)
{
    char *lines[4], *out;
    int n = readme_script("<!-- kserve", lines, 4, &out);
    ck_assert_msg(n == 2, "the kserve block printed %d lines:\n%s", n, out);
    cJSON *meta = cJSON_Parse(lines[0]), *inf = cJSON_Parse(lines[1]);
    ck_assert(meta && inf);
    ck_assert_str_eq(cJSON_GetObjectItem(meta, "name")->valuestring, "sine");
    const cJSON *in = cJSON_GetArrayItem(cJSON_GetObjectItem(meta, "inputs"), 0);
    ck_assert_str_eq(cJSON_GetObjectItem(in, "datatype")->valuestring, "FP32");
    const cJSON *o = cJSON_GetArrayItem(cJSON_GetObjectItem(inf, "outputs"), 0);
    const cJSON *shape = cJSON_GetObjectItem(o, "shape"), *data = cJSON_GetObjectItem(o, "data");
    ck_assert_int_eq(cJSON_GetArraySize(shape), 2);
    ck_assert_int_eq(cJSON_GetArrayItem(shape, 0)->valueint, 2);
    ck_assert_int_eq(cJSON_GetArraySize(data), 2);
    resp r = post("/predict", "{\"model\": \"sine\", \"sequences\": [[0.0, 0.84, 0.91], [0.14, -0.76, -0.96]]}");
    cJSON *p = json_of(&r);
    for (int b = 0; b < 2; b++) {
        const double want = num(cJSON_GetArrayItem(cJSON_GetObjectItem(p, "predictions"), b), "prediction");
        const double got = cJSON_GetArrayItem(data, b)->valuedouble;
        ck_assert_msg(fabs(got - want) <= 1e-6 * fmax(1, fabs(want)), "row %d: infer %g, /predict %g",
                      b, got, want);
    }
    cJSON_Delete(p); free(r.body);
    cJSON_Delete(meta); cJSON_Delete(inf);
    free(out);
}
END_TEST

Suite *readme_suite(void)
{
    Suite *s = suite_create("readme");
    TCase *tc = tcase_create("quickstart");
    tcase_set_timeout(tc, 180);
    tcase_add_checked_fixture(tc, readme_setup, teardown);
    tcase_add_test(tc, test_readme_quickstart_and_endpoints);
    tcase_add_test(tc, test_readme_sessions);
    tcase_add_test(tc, test_readme_kserve);
    tcase_add_test(tc, test_readme_series);
    tcase_add_test(tc, test_readme_words);
    suite_add_tcase(s, tc);
    return s;
}
