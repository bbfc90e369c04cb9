/*
 * GET /admin in a real browser: Debian's chromium, headless, opens the page
 * while a job trains, and the test waits until the page's loss chart has
 * points, then checks that they grow as training goes, and saves a
 * screenshot to $RNND_BUILD/admin.png. The page is read back with
 * --dump-dom after a few seconds of the page's own clock, so its fetch()
 * polling has run. Then the same with a token, which the browser sends as
 * the password of the URL. A classify job's chart must also draw its
 * training and validation accuracy per epoch on a right-hand 0-100% axis; a
 * regression job's must draw none. Without chromium the tests fail, unless
 * RNND_SKIP_BROWSER=1 asks to skip them.
 */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *chromium(void)
{
    const char *env = getenv("RNND_CHROMIUM");
    if (env && *env) return env;
    static const char *const paths[] = {"/usr/bin/chromium", "/usr/bin/chromium-browser"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        if (access(paths[i], X_OK) == 0) return paths[i];
    return NULL;
}

/* Runs chromium on url with `what` (--dump-dom or --screenshot=FILE);
 * returns its stdout. A fresh profile each time: no cache, no state. */
static char *browse(const char *browser, const char *url, const char *what)
{
    static int n;
    char cmd[4096], prof[128], out[128];
    snprintf(prof, sizeof prof, "%s/chromium-profile-%d", dir, ++n);
    snprintf(out, sizeof out, "%s/browser-%d.html", dir, n);
    snprintf(cmd, sizeof cmd,
             "timeout 90 '%s' --headless --no-sandbox --disable-gpu --disable-quic --no-first-run"
             " --disable-background-networking --disable-component-update --disable-sync"
             " --disable-dev-shm-usage --user-data-dir='%s' --window-size=1000,1100"
             " --virtual-time-budget=3000 %s '%s' > '%s' 2>> '%s/chromium.log'",
             browser, prof, what, url, out, dir);
    int st = system(cmd);
    ck_assert_msg(st == 0, "chromium failed (%d); see %s/chromium.log", st, dir);
    return read_text(out);
}

/* The number in the chart's attribute attr: <svg id="chart" ... attr="N">. */
static int chart_number(const char *dom, const char *attr)
{
    const char *s = strstr(dom, "<svg id=\"chart\"");
    ck_assert_msg(s, "no chart in the page:\n%.2000s", dom);
    const char *end = strchr(s, '>');
    char key[64];
    snprintf(key, sizeof key, " %s=\"", attr);
    const char *p = strstr(s, key);
    ck_assert_msg(p && p < end, "the chart has no %s:\n%.300s", attr, s);
    return atoi(p + strlen(key));
}

static int chart_points(const char *dom) { return chart_number(dom, "data-points"); }

/* How many <tag> elements of class cls the chart has; the start tags of the
 * first max of them, in the order drawn, go to at[]. */
static int chart_elements(const char *dom, const char *tag, const char *cls, const char **at, int max)
{
    const char *s = strstr(dom, "<svg id=\"chart\"");
    ck_assert_msg(s, "no chart in the page:\n%.2000s", dom);
    const char *end = strstr(s, "</svg>");
    ck_assert(end);
    char open[32], want[64];
    snprintf(open, sizeof open, "<%s ", tag);
    snprintf(want, sizeof want, " class=\"%s\"", cls);
    int n = 0;
    for (const char *e = strstr(s, open); e && e < end; e = strstr(e + 1, open)) {
        const char *close = strchr(e, '>'), *c = strstr(e, want);
        if (!c || c > close) continue;
        if (n < max) at[n] = e;
        n++;
    }
    return n;
}

/* The y of each vertex of the polyline whose start tag is at e. */
static int polyline_ys(const char *e, double *y, int max)
{
    const char *p = strstr(e, " points=\"");
    ck_assert_msg(p && p < strchr(e, '>'), "a polyline without points: %.200s", e);
    p += strlen(" points=\"");
    int n = 0;
    while (*p && *p != '"') {
        char *q;
        strtod(p, &q);
        ck_assert_msg(*q == ',', "polyline points: %.200s", e);
        double v = strtod(q + 1, &q);
        if (n < max) y[n] = v;
        n++;
        p = q;
        while (*p == ' ') p++;
    }
    return n;
}

#define LONG_JOB "{\"model\": \"wave\", \"cell\": \"gru\", \"hidden\": 32, \"data\": {\"generator\": \"sine\"," \
                 " \"samples\": 1000, \"window\": 50}, \"epochs\": 2000, \"batch\": 16, \"validation\": 0.1}"

/* Opens the page until the chart has points; returns the last DOM. */
static char *wait_for_points(const char *browser, const char *url, int *points)
{
    for (int tries = 0; tries < 30; tries++) {
        char *dom = browse(browser, url, "--dump-dom");
        *points = chart_points(dom);
        if (*points > 0) return dom;
        free(dom);
        msleep(500);
    }
    ck_abort_msg("the admin chart shows no points after 30 page loads");
    return NULL;
}

START_TEST(test_admin_page_in_chromium)
{
    const char *browser = chromium();
    if (!browser) {
        /* a missing browser is a failure, not a pass: skipping takes asking */
        const char *skip = getenv("RNND_SKIP_BROWSER");
        ck_assert_msg(skip && !strcmp(skip, "1"),
                      "chromium is not installed (apt-get install chromium, or set RNND_CHROMIUM "
                      "to a browser; RNND_SKIP_BROWSER=1 skips this test)");
        printf("  SKIP admin page browser test: RNND_SKIP_BROWSER=1 and no chromium\n");
        return;
    }
    setup_demo_dir();
    char args[2048];
    snprintf(args, sizeof args, "--listen 127.0.0.1 --port 0 --model-dir '%s/models' --data-dir '%s' --http-threads 4",
             dir, dir);
    start_daemon_args(args);
    long id = submit(LONG_JOB, 202);
    /* a streaming session 7 steps in */
    resp sr = post("/sessions", "{\"model\": \"sine\"}");
    cJSON *so = json_of(&sr);
    char spath[128];
    snprintf(spath, sizeof spath, "/sessions/%s", cJSON_GetObjectItem(so, "session")->valuestring);
    cJSON_Delete(so);
    free(sr.body);
    sr = post(spath, "{\"sequence\": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]}");
    ck_assert_int_eq(sr.status, 200);
    free(sr.body);
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/admin", port);

    int p1, p2 = 0;
    char *dom = wait_for_points(browser, url, &p1);
    /* the page lists the models with their versions and the job */
    ck_assert_msg(strstr(dom, "<td>sine</td><td>1</td>") && strstr(dom, "<td>chars</td><td>1</td>"),
                  "models table:\n%.3000s", dom);
    ck_assert_msg(strstr(dom, "<td>wave</td><td>running</td>"), "jobs table:\n%.3000s", dom);
    ck_assert_msg(strstr(dom, "<td>sine</td><td>1</td><td>7</td>"), "sessions table:\n%.3000s", dom);
    ck_assert_msg(strstr(dom, "class=\"train\"") && strstr(dom, "class=\"val\""),
                  "the chart has no training and validation lines");
    /* a regression job has no accuracy: no series, no right-hand axis, and
     * the legend does not name it */
    const char *at[1];
    ck_assert_int_eq(chart_number(dom, "data-accuracy-points"), 0);
    ck_assert_int_eq(chart_elements(dom, "polyline", "acc", at, 1), 0);
    ck_assert_int_eq(chart_elements(dom, "polyline", "val-acc", at, 1), 0);
    ck_assert_int_eq(chart_elements(dom, "line", "acc-axis", at, 1), 0);
    ck_assert_msg(strstr(dom, "<span class=\"acc\" hidden=\"\">") && strstr(dom, "<span class=\"val-acc\" hidden=\"\">"),
                  "the legend shows accuracy for a regression job:\n%.3000s", dom);
    free(dom);
    /* live: more points on a later load while the job runs */
    for (int tries = 0; tries < 20 && p2 <= p1; tries++) {
        msleep(1000);
        dom = browse(browser, url, "--dump-dom");
        p2 = chart_points(dom);
        free(dom);
    }
    ck_assert_msg(p2 > p1, "the chart did not grow: %d then %d points", p1, p2);

    char shot[1200], what[1300];
    const char *b = getenv("RNND_BUILD");
    snprintf(shot, sizeof shot, "%s/%s/admin.png", project_root, b && *b ? b : "build");
    unlink(shot);
    snprintf(what, sizeof what, "--screenshot='%s'", shot);
    free(browse(browser, url, what));
    struct stat st;
    ck_assert_msg(stat(shot, &st) == 0 && st.st_size > 10000, "no screenshot at %s", shot);
    FILE *f = fopen(shot, "rb");
    unsigned char sig[8] = {0};
    ck_assert(f && fread(sig, 1, 8, f) == 8);
    fclose(f);
    ck_assert_msg(!memcmp(sig, "\x89PNG\r\n\x1a\n", 8), "%s is not a PNG", shot);
    printf("  admin page: %d then %d chart points; screenshot %s (%ld bytes)\n", p1, p2, shot, (long)st.st_size);
    resp r = http("DELETE", "/train/1", NULL, 0, NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    free(r.body);
    cJSON_Delete(wait_job(id, 60));
    ck_assert_int_eq(stop_daemon(), 0);

    /* with a token: 401 and a Basic challenge without it; the page works
     * when the browser sends it */
    snprintf(args, sizeof args,
             "--listen 127.0.0.1 --port 0 --model-dir '%s/models' --data-dir '%s' --auth-token 'pa55-w0rd'", dir, dir);
    start_daemon_args(args);
    r = get("/admin");
    ck_assert_int_eq(r.status, 401);
    free(r.body);
    r = http("POST", "/train", LONG_JOB, strlen(LONG_JOB), NULL, "pa55-w0rd");
    ck_assert_int_eq(r.status, 202);
    free(r.body);
    snprintf(url, sizeof url, "http://admin:pa55-w0rd@127.0.0.1:%d/admin", port);
    dom = wait_for_points(browser, url, &p1);
    ck_assert_msg(strstr(dom, "<td>wave</td>"), "jobs table with a token:\n%.3000s", dom);
    free(dom);
    r = http("DELETE", "/train/1", NULL, 0, NULL, "pa55-w0rd");
    ck_assert_int_eq(r.status, 200);
    free(r.body);
}
END_TEST

/* A sentiment classifier on 12 short texts: 4 epochs (CLASSIFY_EPOCHS) in
 * well under a second, with 3 texts held out so that every point has
 * val_accuracy. */
#define CLASSIFY_EPOCHS 4
#define CLASSIFY_JOB                                                                                    \
    "{\"model\": \"mood\", \"task\": \"classify\", \"tokens\": \"words\", \"cell\": \"gru\", \"hidden\": 16,"        \
    " \"embedding\": 8, \"data\": {\"texts\": [\"the movie was great\", \"i loved this film\","                 \
    " \"what a wonderful story\", \"great acting and a great plot\", \"i really enjoyed it\","                 \
    " \"a delightful and moving film\", \"the movie was terrible\", \"i hated this film\","                    \
    " \"what a boring story\", \"awful acting and a dull plot\", \"i really disliked it\","                    \
    " \"a tedious and painful film\"], \"labels\": [\"pos\", \"pos\", \"pos\", \"pos\", \"pos\", \"pos\", \"neg\","   \
    " \"neg\", \"neg\", \"neg\", \"neg\", \"neg\"]}, \"epochs\": 4, \"batch\": 4, \"validation\": 0.25,"         \
    " \"optimizer\": {\"name\": \"adam\", \"lr\": 0.02}}"

/* The plot area of the page's chart (draw() in admin_page.html): accuracy 1
 * at the top, 0 at the bottom. */
#define CHART_TOP 10.0
#define CHART_BOTTOM 290.0

/* One polyline of class cls, drawn with one vertex per point at the height
 * of the point's key against the 0-1 axis. */
static void expect_accuracy_line(const char *dom, const char *cls, const cJSON *points, const char *key)
{
    const char *at[2];
    int n = chart_elements(dom, "polyline", cls, at, 2);
    ck_assert_msg(n == 1, "%d polylines of class %s in the chart:\n%.4000s", n, cls, strstr(dom, "<svg"));
    double y[64];
    int nv = polyline_ys(at[0], y, 64), np = cJSON_GetArraySize(points);
    ck_assert_msg(nv == np, "the %s line has %d vertices for %d points", cls, nv, np);
    for (int i = 0; i < np && i < 64; i++) {
        double a = num(cJSON_GetArrayItem(points, i), key);
        ck_assert_msg(a >= 0 && a <= 1, "point %d: %s %g", i, key, a);
        double want = CHART_TOP + (1 - a) * (CHART_BOTTOM - CHART_TOP);
        ck_assert_msg(fabs(y[i] - want) < 0.5, "the %s line, point %d: %s %g drawn at y %g, want %g", cls, i,
                      key, a, y[i], want);
    }
    char marker[32];
    snprintf(marker, sizeof marker, "%s-point", cls);
    int circles = chart_elements(dom, "circle", marker, at, 2);
    ck_assert_msg(circles == np, "%d %s markers for %d points", circles, marker, np);
}

/* A classify job's chart: its training and validation accuracy per epoch
 * next to the loss, against a right-hand axis from 0% to 100%. */
START_TEST(test_admin_chart_accuracy)
{
    const char *browser = chromium();
    if (!browser) {
        const char *skip = getenv("RNND_SKIP_BROWSER");
        ck_assert_msg(skip && !strcmp(skip, "1"), "chromium is not installed (RNND_SKIP_BROWSER=1 skips this test)");
        printf("  SKIP admin accuracy browser test: RNND_SKIP_BROWSER=1 and no chromium\n");
        return;
    }
    setup_demo_dir();
    char args[2048];
    snprintf(args, sizeof args, "--listen 127.0.0.1 --port 0 --model-dir '%s/models' --data-dir '%s'", dir, dir);
    start_daemon_args(args);
    long id = submit(CLASSIFY_JOB, 202);
    cJSON *job = wait_job(id, 60);
    ck_assert_str_eq(status_of(job), "succeeded");
    cJSON_Delete(job);
    char path[64];
    snprintf(path, sizeof path, "/admin/loss?job=%ld", id);
    resp r = get(path);
    ck_assert_int_eq(r.status, 200);
    cJSON *loss = json_of(&r);
    free(r.body);
    const cJSON *points = cJSON_GetObjectItem(loss, "points");
    ck_assert_int_eq(cJSON_GetArraySize(points), CLASSIFY_EPOCHS);

    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/admin", port);
    char *dom = browse(browser, url, "--dump-dom");
    ck_assert_msg(strstr(dom, "<td>mood</td><td>succeeded</td>"), "jobs table:\n%.3000s", dom);
    ck_assert_int_eq(chart_points(dom), CLASSIFY_EPOCHS);
    ck_assert_int_eq(chart_number(dom, "data-accuracy-points"), CLASSIFY_EPOCHS);
    /* the loss is still drawn, on its own left axis */
    const char *at[1];
    ck_assert_int_eq(chart_elements(dom, "polyline", "train", at, 1), 1);
    ck_assert_int_eq(chart_elements(dom, "polyline", "val", at, 1), 1);
    expect_accuracy_line(dom, "acc", points, "accuracy");
    expect_accuracy_line(dom, "val-acc", points, "val_accuracy");
    ck_assert_int_eq(chart_elements(dom, "line", "acc-axis", at, 1), 1);
    const char *ticks[8];
    int nt = chart_elements(dom, "text", "acc-tick", ticks, 8);
    ck_assert_msg(nt == 5 && !strncmp(strchr(ticks[0], '>'), ">0%<", 4) && !strncmp(strchr(ticks[4], '>'), ">100%<", 6),
                  "the accuracy axis is not labelled 0%% to 100%%:\n%.4000s", strstr(dom, "<svg"));
    /* the legend names both, shown */
    ck_assert_msg(strstr(dom, "<span class=\"acc\">") && strstr(dom, "training accuracy</span>") &&
                      strstr(dom, "<span class=\"val-acc\">") && strstr(dom, "validation accuracy</span>"),
                  "the legend does not show the accuracy:\n%.3000s", dom);
    printf("  admin page: %d loss and %d accuracy points for a classify job\n", chart_points(dom),
           chart_number(dom, "data-accuracy-points"));
    free(dom);
    cJSON_Delete(loss);
}
END_TEST

static void admin_teardown(void)
{
    if (pid > 0) {
        int st = stop_daemon();
        ck_assert_msg(st == 0, "rnnd serve exited with %d after SIGTERM", st);
    }
    if (dir[0]) sh("rm -rf '%s'", dir);
    dir[0] = 0;
}

Suite *admin_suite(void)
{
    Suite *s = suite_create("admin");
    TCase *tc = tcase_create("browser");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, NULL, admin_teardown);
    tcase_add_test(tc, test_admin_page_in_chromium);
    suite_add_tcase(s, tc);
    tc = tcase_create("accuracy");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, NULL, admin_teardown);
    tcase_add_test(tc, test_admin_chart_accuracy);
    suite_add_tcase(s, tc);
    return s;
}
