/*
 * GET /admin in a real browser: Debian's chromium, headless, opens the page
 * while a job trains, and the test waits until the page's loss chart has
 * points, then checks that they grow as training goes, and saves a
 * screenshot to $RNND_BUILD/admin.png. The page is read back with
 * --dump-dom after a few seconds of the page's own clock, so its fetch()
 * polling has run. Then the same with a token, which the browser sends as
 * the password of the URL. Without chromium the test fails, unless
 * RNND_SKIP_BROWSER=1 asks to skip it.
 */
#include "harness.h"

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

/* The chart's point count, from <svg id="chart" ... data-points="N">. */
static int chart_points(const char *dom)
{
    const char *s = strstr(dom, "<svg id=\"chart\"");
    ck_assert_msg(s, "no chart in the page:\n%.2000s", dom);
    const char *p = strstr(s, "data-points=\"");
    ck_assert(p);
    return atoi(p + strlen("data-points=\""));
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
    return s;
}
