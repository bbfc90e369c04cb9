/*
 * Shared by the integration tests: a real `rnnd serve` child process on
 * 127.0.0.1 and an ephemeral port, and libcurl requests to it. Every helper
 * fails the current Check test with a message on anything unexpected.
 */
#ifndef RNND_TEST_HARNESS_H
#define RNND_TEST_HARNESS_H

#include <check.h>
#include <cJSON.h>
#include <curl/curl.h>
#include <stddef.h>
#include <sys/types.h>

extern char dir[64];             /* the test's temp folder; models in dir/models */
extern char rnnd_bin[1024];      /* absolute path of the rnnd under test */
extern char models_src[1024];    /* tests/ref/models */
extern char project_root[512];  /* where make test runs */
extern pid_t pid;                /* the daemon, 0 when stopped */
extern int port;                 /* its port, read from its log */
extern char log_path[256];       /* its log (stderr) */

void msleep(int ms);
double mono_s(void); /* CLOCK_MONOTONIC seconds */
/* Runs a shell command; fails the test unless it exits 0. */
void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Starts rnnd serve on port 0 with the test defaults and the extra flags. */
void start_daemon(const char *extra);
/* Starts `rnnd serve ARGS`, ARGS having --port 0; waits for the "listening" line. */
void start_daemon_args(const char *args);
/* SIGTERM and wait; returns the exit status (-2 if it had to be killed). */
int stop_daemon(void);

/* Fixtures: a temp dir with four tests/ref models, and a daemon on it. */
void setup_dir(void);
/* A temp dir with the demo models (sine, chars) of $RNND_DEMO_MODELS. */
void setup_demo_dir(void);
void setup(void);
void teardown(void);

typedef struct resp {
    long status;  /* HTTP status, or -CURLcode when the request failed */
    char *body;   /* malloc'd, NUL-terminated; the caller frees */
    size_t len;
    char allow[128];
    char location[128];
} resp;

/* One request; body may be NULL; type NULL means application/json; token NULL:
 * none, "Basic xyz": that Authorization header, else a bearer token. */
resp http(const char *method, const char *path, const char *body, size_t len, const char *type,
          const char *token);
/* The same from a local address of the client's choice (127.0.0.2, ...). */
resp http_from(const char *iface, const char *method, const char *path, const char *body,
               size_t len, const char *type, const char *token);
/* The same to another daemon's port (thread-safe: reads no globals). */
resp http_at(int port, const char *iface, const char *method, const char *path, const char *body,
             size_t len, const char *type, const char *token);
resp post(const char *path, const char *body);
resp get(const char *path);
cJSON *json_of(resp *r);                         /* parses or fails the test */
void expect_error(resp r, long status, const char *needle); /* frees r.body */
char *read_text(const char *path);               /* up to 1 MiB; the caller frees */
char *case_request(const char *cas, const char *name);
double num(const cJSON *o, const char *k);
/* Do two safetensors files hold the same tensor bytes (headers aside)? */
int same_weights(const char *a, const char *b);

cJSON *job_status(long id);
const char *status_of(cJSON *o);
cJSON *wait_job(long id, double seconds);        /* polls until a final state */
cJSON *wait_job_token(long id, double seconds, const char *token); /* the same, with a bearer token */
long submit(const char *job, long want_status);  /* POST /train; returns the job id */

/* Does got match want: strings equal, numbers within rel (relative, at
 * least 1 absolute), arrays and objects element by element? where gets the
 * first difference. */
int json_close(const cJSON *got, const cJSON *want, double rel, char *where, size_t n);
#define ASSERT_JSON_CLOSE(got, want, rel, what)                                  \
    do {                                                                         \
        char where_[400] = "";                                                   \
        ck_assert_msg(json_close((got), (want), (rel), where_, sizeof where_),   \
                      "%s: reply%s", (what), where_);                            \
    } while (0)

Suite *sessions_suite(void);
Suite *abuse_suite(void);
/* The value of one series of GET /metrics, such as
 * `rnnd_model_inference_count{model="wave"}`; -1 if absent. */
double metric_value(const char *series);
Suite *http_suite(void);
Suite *readme_suite(void);
Suite *admin_suite(void);
Suite *durable_suite(void);
Suite *replicas_suite(void);
Suite *launch_suite(void);

#endif
