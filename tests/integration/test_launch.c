/*
 * Jobs handed to a launcher: a daemon whose train_command is `mpirun -np 2
 * rnnd train` (real mpirun, two ranks) streams each job's progress into
 * /train/ID and /admin/loss, publishes a finished one as the next version,
 * stops a cancelled one's processes, and fails only the job whose launched
 * process is killed with SIGKILL, while /healthz and /predict answer
 * throughout; one stopped with the daemon resumes from its checkpoint when
 * the daemon starts again, to the weights of a run never stopped.
 */
#include "harness.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct prober {
    int port;
    atomic_int *stop;
    long ok, failed;
} prober;

static void *probe(void *arg)
{
    prober *p = arg;
    const char *body = "{\"model\": \"wave\", \"sequence\": [0.1, 0.2, 0.3]}";
    for (int k = 0; !atomic_load(p->stop); k++) {
        resp r = k % 2 ? http_at(p->port, NULL, "GET", "/healthz", NULL, 0, NULL, NULL)
                       : http_at(p->port, NULL, "POST", "/predict", body, strlen(body), NULL, NULL);
        if (r.status == 200) p->ok++; else p->failed++;
        free(r.body);
        msleep(5);
    }
    return NULL;
}

/* Polls job id until its status has a pid and at least `epochs` epochs. */
static long running_pid(long id, int epochs)
{
    for (int i = 0; i < 600; i++) {
        cJSON *o = job_status(id);
        const cJSON *pidv = cJSON_GetObjectItem(o, "pid");
        const long pidn = cJSON_IsNumber(pidv) ? (long)pidv->valuedouble : 0;
        const int ep = (int)num(o, "epoch");
        const int done = strcmp(status_of(o), "running") && strcmp(status_of(o), "queued");
        cJSON_Delete(o);
        ck_assert_msg(!done, "job %ld ended before it could be stopped", id);
        if (pidn > 0 && ep >= epochs)
            return pidn;
        msleep(50);
    }
    ck_abort_msg("job %ld shows no launched pid and progress", id);
    return 0;
}

/* Are processes of job id's rnnd train (its spec path in their command
 * line) still running? */
static int ranks_left(long id)
{
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "pgrep -f '%s/models/.rnnd/jobs/%ld[.]spec' > /dev/null", dir, id);
    return system(cmd) == 0;
}

static int wait_ranks_gone(long id)
{
    for (int i = 0; i < 100 && ranks_left(id); i++) msleep(50);
    return !ranks_left(id);
}

#define LONG_JOB "{\"model\": \"wave\", \"cell\": \"lstm\", \"hidden\": 12, \"layers\": 2, \"epochs\": 400," \
                 " \"data\": {\"generator\": \"sine\", \"samples\": 2048, \"window\": 24}}"

START_TEST(test_launched_jobs)
{
    if (system("command -v mpirun > /dev/null 2>&1") != 0) {
        ck_assert_msg(getenv("RNND_SKIP_MPI"), "mpirun is not installed (apt-get install openmpi-bin; "
                                               "RNND_SKIP_MPI=1 skips)");
        return;
    }
    stop_daemon();
    char extra[2048];
    snprintf(extra, sizeof extra,
             "--train-command 'env ASAN_OPTIONS=detect_leaks=0 mpirun --allow-run-as-root --oversubscribe"
             " -np 2 %s train --threads 1'", rnnd_bin);
    start_daemon(extra);
    atomic_int stop = 0;
    prober pr = {.port = port, .stop = &stop};
    pthread_t t;
    pthread_create(&t, NULL, probe, &pr);

    /* one that finishes: its progress on the way, then the next version */
    cJSON *o = wait_job(submit("{\"model\": \"wave\", \"epochs\": 3, \"data\": {\"generator\": \"sine\","
                               " \"samples\": 64, \"window\": 4}}", 202), 120);
    ck_assert_msg(!strcmp(status_of(o), "succeeded"), "%s", cJSON_PrintUnformatted(o));
    ck_assert_int_eq((int)num(o, "epoch"), 3);
    ck_assert_int_eq((int)num(o, "version"), 2);
    const long first = (long)num(o, "job");
    cJSON_Delete(o);
    char path[64];
    snprintf(path, sizeof path, "/admin/loss?job=%ld", first);
    resp r = get(path);
    o = json_of(&r);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "points")), 3);
    cJSON_Delete(o);
    free(r.body);
    r = get("/models/wave");
    ck_assert_msg(strstr(r.body, "\"version\":2"), "%s", r.body);
    free(r.body);

    /* cancelled: the job ends cancelled and its ranks are gone */
    const long a = submit(LONG_JOB, 202);
    running_pid(a, 1);
    snprintf(path, sizeof path, "/train/%ld", a);
    r = http("DELETE", path, NULL, 0, NULL, NULL);
    ck_assert_msg(r.status == 200 || r.status == 202, "cancel: %ld %s", r.status, r.body);
    free(r.body);
    const double t0 = mono_s();
    o = wait_job(a, 30);
    ck_assert_msg(!strcmp(status_of(o), "cancelled"), "%s", cJSON_PrintUnformatted(o));
    cJSON_Delete(o);
    ck_assert_msg(wait_ranks_gone(a), "a cancelled job's processes still run");
    printf("  launched: cancelled job %ld stopped in %.2f s, its 2 ranks gone\n", a, mono_s() - t0);

    /* killed: only that job fails, naming the signal */
    const long b = submit(LONG_JOB, 202);
    const long bpid = running_pid(b, 1);
    kill((pid_t)bpid, SIGKILL);
    o = wait_job(b, 30);
    ck_assert_msg(!strcmp(status_of(o), "failed") &&
                  strstr(cJSON_GetObjectItem(o, "error")->valuestring, "signal 9"),
                  "%s", cJSON_PrintUnformatted(o));
    cJSON_Delete(o);
    ck_assert_msg(wait_ranks_gone(b), "the ranks of a killed launcher still run");
    r = get("/models/wave");
    ck_assert_msg(strstr(r.body, "\"version\":2"), "a failed job changed the model: %s", r.body);
    free(r.body);

    atomic_store(&stop, 1);
    pthread_join(t, NULL);
    printf("  launched: /healthz and /predict during them: %ld ok, %ld failed\n", pr.ok, pr.failed);
    ck_assert_msg(pr.failed == 0 && pr.ok > 0, "%ld requests failed", pr.failed);

    /* stopped with the daemon, it resumes when the daemon starts again and
     * ends with the weights of a run never stopped */
    /* about 5 s on two ranks: the stop, which mpirun passes on about a
     * second late, lands well before the end */
#define RESUMED_JOB(name) "{\"model\": \"" name "\", \"cell\": \"gru\", \"hidden\": 128, \"epochs\": 40," \
                          " \"init\": {\"seed\": 9}, \"data\": {\"generator\": \"sine\", \"samples\": 2048, \"window\": 40}}"
    o = wait_job(submit(RESUMED_JOB("whole"), 202), 120);
    ck_assert_msg(!strcmp(status_of(o), "succeeded"), "%s", cJSON_PrintUnformatted(o));
    cJSON_Delete(o);
    const long c = submit(RESUMED_JOB("resumed"), 202);
    running_pid(c, 2);
    ck_assert_int_eq(stop_daemon(), 0);
    ck_assert_msg(wait_ranks_gone(c), "a stopped daemon's launched job still runs");
    char ck[1200];
    snprintf(ck, sizeof ck, "%s/models/.rnnd/jobs/%ld.ckpt", dir, c);
    ck_assert_msg(access(ck, F_OK) == 0, "the stopped job left no checkpoint to resume from");
    start_daemon(extra);
    o = wait_job(c, 120);
    ck_assert_msg(!strcmp(status_of(o), "succeeded") && (int)num(o, "epoch") == 40, "%s",
                  cJSON_PrintUnformatted(o));
    cJSON_Delete(o);
    char wa[1200], wb[1200];
    snprintf(wa, sizeof wa, "%s/models/whole.safetensors", dir);
    snprintf(wb, sizeof wb, "%s/models/resumed.safetensors", dir);
    ck_assert_msg(same_weights(wa, wb), "the resumed launched job's weights differ from an unstopped run's");
    printf("  launched: job %ld stopped with the daemon, resumed after its restart, same weights\n", c);
}
END_TEST

Suite *launch_suite(void)
{
    Suite *s = suite_create("launch");
    TCase *tc = tcase_create("launch");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_launched_jobs);
    suite_add_tcase(s, tc);
    return s;
}
