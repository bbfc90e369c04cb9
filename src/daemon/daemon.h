/*
 * rnnd serve: configuration, logging, the model registry, the training job
 * pool, metrics and the HTTP server. Only the engine's public headers are
 * used here (rnn/rnn.h, rnn/io.h, rnn/job.h).
 */
#ifndef RNND_DAEMON_H
#define RNND_DAEMON_H

#include "rnn/io.h"
#include "rnn/job.h"
#include "rnn/rnn.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ------------------------------------------------------------------ config */

typedef struct rnnd_config {
    char listen[64];
    int port;
    char model_dir[1024];
    char data_dir[1024];
    char state_dir[1024];       /* "": model_dir/.rnnd */
    int keep_versions;          /* kept per model; 0: all */
    int watch_s;                /* model_dir checked for other replicas' versions; 0: never */
    char train_command[512];    /* "": jobs train on the pool's threads; else the launcher
                                 * (launch.c) that runs `rnnd train` for each */
    int checkpoint_s;           /* seconds between a running job's checkpoints */
    int http_threads;
    int train_workers;
    int train_threads;          /* threads per job; 0: every core */
    int train_nice;             /* nice value of training threads */
    int train_queue;
    long max_body_bytes;
    long max_upload_bytes;
    int max_sequence_length;
    int max_batch;
    long max_job_bytes;         /* data bytes of one job, and of all queued or running */
    long max_predict_work;      /* steps x sequences x parameters of one prediction */
    int predict_workers;        /* threads that run predictions */
    int batch_max;              /* largest batch of concurrent predictions */
    int batch_delay_us;         /* how long a prediction may wait for company */
    int loss_history_max;
    char auth_token[256];
    int log_level;              /* LOG_ERROR .. LOG_DEBUG */
    int connection_limit;
    int per_ip_limit;
    int connection_timeout;     /* seconds */
    int request_timeout;        /* seconds to send a whole request */
    int drain_timeout;          /* seconds to wait for requests in flight on SIGTERM */
    int max_sessions;           /* streaming sessions open at once */
    int session_idle_s;         /* seconds an idle session lives */
} rnnd_config;

void rnnd_config_defaults(rnnd_config *c);
/* Reads `key = value` lines; on error writes "FILE:LINE: message" into err
 * and returns -1. */
int rnnd_config_load(rnnd_config *c, const char *path, char *err, size_t errlen);
/* One setting by key (config file or --key value); -1 with a message. */
int rnnd_config_set(rnnd_config *c, const char *key, const char *value, char *err, size_t errlen);
/* Applies RNND_KEY environment variables (RNND_AUTH_TOKEN, RNND_PORT, ...);
 * -1 with "environment RNND_KEY: message". */
int rnnd_config_env(rnnd_config *c, char *err, size_t errlen);
/* Writes every key with its value and comment, as config/rnnd.conf. */
void rnnd_config_print(const rnnd_config *c, FILE *f);
/* The keys as the Markdown reference table of the README (rnnd keys serve). */
void rnnd_config_markdown(FILE *f);

/* ------------------------------------------------------------------ log */

enum { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };
extern int rnnd_log_level;
void rnnd_log_(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The level is checked before the arguments are formatted. */
#define rnnd_log(level, ...) \
    do { if ((level) <= rnnd_log_level) rnnd_log_((level), __VA_ARGS__); } while (0)
int rnnd_log_parse(const char *s);

/* ------------------------------------------------------------------ registry */

/* A loaded model version: immutable once published, freed when the last
 * reference goes. */
typedef struct served_model {
    char name[65];
    long version;
    rnn_model m;
    rnn_meta meta;
    atomic_int refs;
    char loaded_at[40];
    long long file_stamp;       /* of the file it came from (file_stamp), 0 if none */
} served_model;

typedef struct registry registry;

registry *registry_new(void);
void registry_free(registry *r);
/* Takes a reference; NULL if there is no such model. */
served_model *registry_get(registry *r, const char *name);
/* The only model, when exactly one is loaded (a reference), else NULL. */
served_model *registry_only(registry *r);
void served_release(served_model *s);
/* Held by a job from taking its number to publishing it, and by a reload,
 * so that a number is in one file only. */
void registry_publish_lock(registry *r);
void registry_publish_unlock(registry *r);
/* The version number a job publishing name now would get: past the served
 * one and every kept one. */
long registry_next_version(registry *r, const char *name);
/* Serves m as version `version` of name (taking ownership of m and meta);
 * returns the version, -1 if out of memory or room. */
long registry_put(registry *r, const char *name, rnn_model *m, rnn_meta *meta,
                  long long mtime_ns, long version);
/* Version `version` of name (a reference): the served one, or a kept one
 * loaded from its file. NULL if the model or the version is not there. */
served_model *registry_get_version(registry *r, const char *name, long version);
/* Drops kept versions of name from the cache (they were deleted). */
void registry_forget(registry *r, const char *name, const long *versions, int n);
/* Rollback: serves kept version `version` of name (and makes it the file in
 * model_dir); -1 with err naming what was wrong. */
int registry_serve(registry *r, const char *name, long version, const char *model_dir, rnn_err *err);
/* A file's modification time (ns) and inode in one number, -1 if it cannot
 * be read: how a reload tells a changed file from one it has loaded (or a
 * job has saved). A file renamed in gets another stamp even when written
 * within the same clock tick as the one it replaced. */
long long file_stamp(const char *path);
long long file_stamp_of(unsigned long long mtime_ns, unsigned long long ino);
/* Loads every NAME.safetensors in dir; files that fail are logged and the
 * model they would replace stays. Returns the count loaded. */
int registry_load_dir(registry *r, const char *dir);
/* The same for the watcher (watch.c): files changed less than settle_s ago
 * are left for a later scan (counted in *fresh), as are those that failed
 * to load and have not changed since. */
int registry_scan(registry *r, const char *dir, double settle_s, int *fresh);

/* ------------------------------------------------------------------ watch */

/* model_dir watched for the versions other replicas publish (watch.c):
 * NULL when watch_s is 0. */
typedef struct watcher watcher;
watcher *watch_start(const char *model_dir, int watch_s);
void watch_free(watcher *w);
/* Is a scan due (a change seen, or watch_s since the last)? */
int watch_due(watcher *w, double now);
/* After a scan that left `fresh` files for later. */
void watch_scanned(watcher *w, double now, int fresh);
/* How long a changed file must hold still before a scan loads it. */
double watch_settle_s(void);
/* Snapshot of all models (references); caller releases each and frees the array. */
int registry_list(registry *r, served_model ***out);

/* ------------------------------------------------------------------ versions */

/* Sets the state folder (state_dir, or model_dir/.rnnd) and makes it and
 * its versions/ folder; -1 (logged) if it cannot. */
int versions_init(const rnnd_config *cfg);
const char *state_dir(void);
/* STATE/versions/NAME/V.safetensors */
void versions_path(const char *name, long v, char *buf, size_t n);
/* The version numbers kept of name, ascending (caller frees); their count. */
int versions_list(const char *name, long **out);
/* The highest kept, 0 if none. */
long versions_max(const char *name);
/* Saves m as a kept version of name, whole or not at all: v, or the next
 * number no other process has taken (replicas share state_dir), written
 * into meta->version. Returns the version, or 0 with err set. */
long versions_keep(const char *name, long v, const rnn_model *m, rnn_meta *meta, rnn_err *err);
/* Is the file at path the same bytes as kept version v? */
int versions_same(const char *name, long v, const char *path);
/* Makes model_dir/NAME.safetensors a copy of kept version v (atomically);
 * stamp (may be NULL) gets the file_stamp of the file it wrote, which a
 * replica replacing it at once cannot change. */
int versions_serve_file(const char *name, long v, const char *model_dir, long long *stamp, rnn_err *err);
/* Deletes all but the newest keep versions (keep 0: none), never served;
 * the numbers deleted go into gone. Returns how many. */
int versions_prune(const char *name, int keep, long served, long *gone, int max_gone);
/* rnn_remove_stale_temps over every kept-version folder and the job records. */
int versions_remove_stale_temps(void);

/* ------------------------------------------------------------------ jobs */

typedef enum { JOB_QUEUED, JOB_RUNNING, JOB_SUCCEEDED, JOB_FAILED, JOB_CANCELLED } job_state;
const char *job_state_name(job_state s);

typedef struct job_point {
    int epoch;
    long step;
    double loss, val_loss, time;
    double accuracy, val_accuracy;          /* a classifier's, else NaN */
} job_point;

typedef struct train_job {
    long id;
    char model[65];
    job_state state;
    int epoch, epochs;
    long step, steps;
    double loss, val_loss;
    double lr;                              /* the learning rate of its epoch */
    double accuracy, val_accuracy;          /* a classifier's at its last epoch end, else NaN */
    int best_epoch;                         /* early stopping: its best epoch, else 0 */
    int stopped_early;                      /* early stopping ended it */
    double started, finished, submitted;    /* seconds since the epoch */
    long version;                           /* the version it produced */
    char error[RNN_ERR_LEN];
    char warning[256];                      /* what its data makes likely to go wrong, or "" */
    atomic_int cancel;
    int npoints, cap_points;
    job_point *points;
    char *body;                             /* the request (kept as ID.spec) */
    long base_version;                      /* the version it fine-tunes, 0: a new model */
    /* owned until the job ends; the data is built by the worker */
    rnn_job spec;
    double data_bytes;                      /* its estimate (rnn_job_data_bytes) */
    served_model *base;                     /* model fine-tuned, or NULL */
    double last_checkpoint;                 /* rnnd_clock() of its last one */
    long pid;                               /* its train_command process while it runs, else 0 */
    int settled;                            /* finished and its last record written:
                                             * the pool may forget it */
    struct train_job *next_queued;
} train_job;

/* A job through train_command (launch.c). progress gets each progress line
 * of rnn_train's and returns what the trainer's callback would (CANCEL or
 * SUSPEND stop the launched processes); stop is asked five times a second
 * between lines; started gets the process id. */
typedef struct launch_hooks {
    int (*progress)(void *ud, const rnn_progress *p);
    int (*stop)(void *ud);
    void (*started)(void *ud, long pid);
    void *ud;
} launch_hooks;
/* Runs `train_command ARGS...` in a process group of its own, its stderr in
 * log_path. Returns 0 when it exited 0, 1 cancelled, 2 suspended (it ended
 * after a stop of the daemon), -1 with err naming its exit status or signal
 * and its last log line. */
int launch_train(const char *command, const char *const *args, const char *log_path,
                 const launch_hooks *h, rnn_err *err);

/* Builds what a job trains on and checks it against the model it trains
 * (the base's inputs and outputs, or a new model's config); -1 with err. */
int job_prepare(train_job *j, const char *data_dir, rnn_dataset *d, rnn_err *err);

typedef struct job_pool job_pool;

job_pool *pool_new(const rnnd_config *cfg, registry *reg);
/* Stops workers after their current step: running jobs suspend at a
 * checkpoint, queued ones stay queued in their records (both go on at the
 * next start). Also restores, in pool_new, the jobs of an earlier run. */
void pool_free(job_pool *p);
/* Takes ownership of job on success (0); -1 when the queue is full, -2
 * when its data bytes and those of the jobs queued or running would pass
 * max_job_bytes. */
int pool_submit(job_pool *p, train_job *job);
/* Job records in STATE/jobs (jobrec.c): ID.json, ID.spec, and ID.ckpt while it runs. */
int jobrec_init(void);
void jobrec_path(long id, const char *ext, char *buf, size_t n);
/* The record's text (caller frees); then written crash-safe (and freed). */
char *jobrec_text(const train_job *j);
void jobrec_write(long id, char *text);
/* The request of a job (ID.spec), written once when it is queued. */
int jobrec_write_spec(long id, const char *body);
/* Every record, by ID (jobs with spec text but no parsed spec; caller frees). */
int jobrec_load_all(train_job ***out);
void jobrec_remove(long id);

/* Fills a JSON object with a job's status under the pool lock; -1 if unknown. */
struct cJSON;
int pool_job_json(job_pool *p, long id, struct cJSON *out, int with_points);
void pool_list_json(job_pool *p, struct cJSON *array);
/* 0 cancelled (or was already done), -1 unknown id. */
int pool_cancel(job_pool *p, long id, job_state *state_after);
void pool_counts(job_pool *p, int counts[5]);
void pool_stop_all(job_pool *p);

/* ------------------------------------------------------------------ metrics */

void metrics_request(const char *route, int status, double seconds);
/* One prediction of model: the sequences it answered and the passes
 * through the model they took (inference count vs executions). */
void metrics_inference(const char *model, int sequences, int passes);
/* The time a prediction waited for a worker. */
void metrics_queue(double seconds);
/* The Prometheus text of the metrics (caller frees); sessions: open now. */
char *metrics_render(registry *r, job_pool *p, int sessions);

/* ------------------------------------------------------------------ server */

int rnnd_serve_main(const rnnd_config *cfg);
/* Wall-clock seconds since the epoch: the times reported (job started,
 * finished, loss points). */
double rnnd_now(void);
/* Monotonic seconds: every duration (request latency, the drain deadline),
 * which a change of the wall clock must not stretch or shrink. */
double rnnd_clock(void);

#endif
