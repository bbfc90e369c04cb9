/*
 * DESIGN: the training job pool. `train_workers` threads take jobs from a
 * bounded FIFO queue (`train_queue`; submit fails when it is full, which the
 * HTTP layer turns into 429). Every job's status lives in a table guarded by
 * the pool lock; the trainer's progress callback updates it after each step
 * and reads the cancel flag, so DELETE and shutdown stop a job at its next
 * step. A finished job saves NAME.safetensors atomically and publishes the
 * new version in the registry; a failed or cancelled one publishes nothing.
 */
#include "daemon.h"

#include <cJSON.h>
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_JOBS_KEPT 1000

struct job_pool {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    const rnnd_config *cfg;
    registry *reg;
    int stopping;
    long next_id;
    train_job *head, *tail;     /* queue */
    int queued;
    int njobs;
    train_job *jobs[MAX_JOBS_KEPT];
    double held;                /* data bytes of the jobs queued or running */
    int nthreads;
    pthread_t *threads;
};

const char *job_state_name(job_state s)
{
    static const char *const n[] = {"queued", "running", "succeeded", "failed", "cancelled"};
    return (unsigned)s < 5 ? n[s] : "?";
}

double rnnd_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

double rnnd_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Frees what a job trains on; with its pool (lock held), gives back its
 * share of the pool's data bytes. */
static void job_release_inputs(job_pool *p, train_job *j)
{
    if (p)
        p->held -= j->data_bytes;
    j->data_bytes = 0;
    rnn_dataset_free(&j->data);
    rnn_job_free(&j->spec);
    served_release(j->base);
    j->base = NULL;
}

static void job_free(train_job *j)
{
    job_release_inputs(NULL, j);
    free(j->points);
    free(j);
}

/* Keeps at most cap points: when full, every other one goes. */
static void add_point(train_job *j, const job_point *p, int cap)
{
    if (j->npoints == j->cap_points) {
        int nc = j->cap_points ? j->cap_points * 2 : 64;
        if (nc > cap) nc = cap;
        if (nc > j->cap_points) {
            job_point *np = realloc(j->points, (size_t)nc * sizeof *np);
            if (np) { j->points = np; j->cap_points = nc; }
        }
    }
    if (j->npoints >= j->cap_points) {
        int k = 0;
        for (int i = 1; i < j->npoints; i += 2) j->points[k++] = j->points[i];
        j->npoints = k;
    }
    if (j->npoints < j->cap_points)
        j->points[j->npoints++] = *p;
}

typedef struct run_ctx {
    job_pool *pool;
    train_job *job;
} run_ctx;

static int on_progress(void *ud, const rnn_progress *p)
{
    run_ctx *c = ud;
    train_job *j = c->job;
    pthread_mutex_lock(&c->pool->lock);
    j->epoch = p->epoch;
    j->step = p->step;
    j->steps = p->steps;
    j->loss = p->epoch_end ? p->epoch_loss : p->loss;
    if (p->epoch_end) {
        j->val_loss = p->val_loss;
        job_point pt = {p->epoch, p->step, p->epoch_loss, p->val_loss, rnnd_now()};
        add_point(j, &pt, c->pool->cfg->loss_history_max);
    }
    int stop = c->pool->stopping;
    pthread_mutex_unlock(&c->pool->lock);
    return stop || atomic_load(&j->cancel);
}

static void run_job(job_pool *pool, train_job *j)
{
    rnn_model m;
    rnn_meta meta;
    rnn_err err;
    rnn_train_result res;
    memset(&res, 0, sizeof res);
    rnn_meta_init(&meta);
    int ok = 0;
    if (j->base) {
        ok = rnn_model_copy(&m, &j->base->m, &err) == 0 && rnn_meta_copy(&meta, &j->base->meta) == 0;
        if (!ok) snprintf(err.msg, sizeof err.msg, "out of memory copying the base model");
    } else {
        ok = rnn_model_init(&m, &j->spec.cfg, &err) == 0;
        if (ok) {
            rnn_rng rng;
            rnn_rng_seed(&rng, j->spec.seed);
            rnn_model_randomize(&m, &rng, j->spec.rinit);
            if (j->data.vocab && !(meta.vocab = strdup(j->data.vocab))) {
                ok = 0;
                snprintf(err.msg, sizeof err.msg, "out of memory copying the vocabulary");
            }
            if (j->data.nlabels) {
                meta.labels = j->data.labels;
                meta.nlabels = j->data.nlabels;
                j->data.labels = NULL;
                j->data.nlabels = 0;
            }
        }
    }
    job_state final = JOB_FAILED;
    long version = 0;
    if (ok) {
        run_ctx ctx = {pool, j};
        j->spec.train.progress = on_progress;
        j->spec.train.progress_ud = &ctx;
        j->spec.train.threads = pool->cfg->train_threads;
        int rc = rnn_train(&m, &j->data, &j->spec.train, &res, &err);
        if (rc == 1) {
            final = JOB_CANCELLED;
            snprintf(err.msg, sizeof err.msg, "cancelled at step %ld", res.steps_done);
        } else if (rc == 0) {
            /* the save time, in the file and in the version served */
            time_t now = time(NULL);
            struct tm tm;
            gmtime_r(&now, &tm);
            strftime(meta.created, sizeof meta.created, "%Y-%m-%dT%H:%M:%SZ", &tm);
            meta.epochs += res.epochs_done;
            meta.final_loss = res.final_loss;
            meta.final_val_loss = res.final_val_loss;
            rnn_meta_append(&meta, res.loss, res.val_loss, res.epochs_done, pool->cfg->loss_history_max);
            char path[2200];
            snprintf(path, sizeof path, "%s/%s.safetensors", pool->cfg->model_dir, j->model);
            /* the number goes into the file, so a restart serves it as the
             * same version; one job publishes at a time */
            registry_publish_lock(pool->reg);
            meta.version = registry_next_version(pool->reg, j->model);
            if (rnn_model_save(path, &m, &meta, &err) == 0) {
                /* the saved file's time, so a reload knows it is this version */
                version = registry_put(pool->reg, j->model, &m, &meta, file_mtime_ns(path));
                if (version > 0) {
                    final = JOB_SUCCEEDED;
                    rnnd_log(LOG_INFO, "job %ld: model %s version %ld saved to %s", j->id, j->model, version, path);
                } else {
                    snprintf(err.msg, sizeof err.msg, "could not publish the model");
                }
            }
            registry_publish_unlock(pool->reg);
        }
    }
    if (final != JOB_SUCCEEDED)
        rnnd_log(LOG_WARN, "job %ld (%s) %s: %s", j->id, j->model, job_state_name(final), err.msg);
    rnn_model_free(&m);
    rnn_meta_free(&meta);
    rnn_train_result_free(&res);
    pthread_mutex_lock(&pool->lock);
    j->state = final;
    j->version = version;
    j->finished = rnnd_now();
    if (final != JOB_SUCCEEDED)
        snprintf(j->error, sizeof j->error, "%s", err.msg);
    job_release_inputs(pool, j);
    pthread_mutex_unlock(&pool->lock);
    /* a job's workspaces were freed in its threads' malloc arenas: give the
     * memory back, so an idle daemon stays small */
    malloc_trim(0);
}

static void *worker(void *arg)
{
    job_pool *p = arg;
    /* training runs below the HTTP threads; the threads a job starts inherit
     * this (Linux keeps the nice value per thread) */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), p->cfg->train_nice))
        rnnd_log(LOG_WARN, "train_nice: %s; training threads keep the default priority",
                 strerror(errno));
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->stopping && !p->head)
            pthread_cond_wait(&p->wake, &p->lock);
        if (p->stopping)
            break;
        train_job *j = p->head;
        p->head = j->next_queued;
        if (!p->head) p->tail = NULL;
        p->queued--;
        if (atomic_load(&j->cancel))
            continue; /* cancelled while queued: already marked */
        j->state = JOB_RUNNING;
        j->started = rnnd_now();
        pthread_mutex_unlock(&p->lock);
        run_job(p, j);
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

job_pool *pool_new(const rnnd_config *cfg, registry *reg)
{
    job_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    p->cfg = cfg;
    p->reg = reg;
    p->next_id = 1;
    p->threads = calloc((size_t)cfg->train_workers, sizeof(pthread_t));
    for (int i = 0; p->threads && i < cfg->train_workers; i++)
        if (pthread_create(&p->threads[p->nthreads], NULL, worker, p) == 0)
            p->nthreads++;
    if (p->nthreads == 0) {
        free(p->threads);
        free(p);
        return NULL;
    }
    return p;
}

void pool_stop_all(job_pool *p)
{
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    for (train_job *j = p->head; j; j = j->next_queued) {
        j->state = JOB_CANCELLED;
        snprintf(j->error, sizeof j->error, "cancelled: the server is shutting down");
        atomic_store(&j->cancel, 1);
    }
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
}

void pool_free(job_pool *p)
{
    if (!p)
        return;
    pool_stop_all(p);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    for (int i = 0; i < p->njobs; i++)
        job_free(p->jobs[i]);
    free(p->threads);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

int pool_submit(job_pool *p, train_job *j)
{
    pthread_mutex_lock(&p->lock);
    if (p->stopping || p->queued >= p->cfg->train_queue) {
        pthread_mutex_unlock(&p->lock);
        return -1;
    }
    if (p->held + j->data_bytes > (double)p->cfg->max_job_bytes) {
        pthread_mutex_unlock(&p->lock);
        return -2;
    }
    if (p->njobs == MAX_JOBS_KEPT) {
        /* forget the oldest finished job */
        int k = -1;
        for (int i = 0; i < p->njobs && k < 0; i++)
            if (p->jobs[i]->state >= JOB_SUCCEEDED) k = i;
        if (k < 0) {
            pthread_mutex_unlock(&p->lock);
            return -1;
        }
        job_free(p->jobs[k]);
        memmove(&p->jobs[k], &p->jobs[k + 1], (size_t)(p->njobs - k - 1) * sizeof(train_job *));
        p->njobs--;
    }
    j->id = p->next_id++;
    j->state = JOB_QUEUED;
    j->submitted = rnnd_now();
    j->epochs = j->spec.train.epochs;
    j->val_loss = NAN;
    j->loss = NAN;
    j->next_queued = NULL;
    p->jobs[p->njobs++] = j;
    if (p->tail) p->tail->next_queued = j;
    else p->head = j;
    p->tail = j;
    p->queued++;
    p->held += j->data_bytes;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
    return 0;
}

static train_job *find(job_pool *p, long id)
{
    for (int i = 0; i < p->njobs; i++)
        if (p->jobs[i]->id == id)
            return p->jobs[i];
    return NULL;
}

static void num_or_null(cJSON *o, const char *k, double v)
{
    if (isfinite(v)) cJSON_AddNumberToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

static void job_json(const train_job *j, cJSON *o, int with_points)
{
    double now = rnnd_now();
    cJSON_AddNumberToObject(o, "job", (double)j->id);
    cJSON_AddStringToObject(o, "model", j->model);
    cJSON_AddStringToObject(o, "status", job_state_name(j->state));
    cJSON_AddNumberToObject(o, "epoch", j->epoch);
    cJSON_AddNumberToObject(o, "epochs", j->epochs);
    cJSON_AddNumberToObject(o, "step", (double)j->step);
    cJSON_AddNumberToObject(o, "steps", (double)j->steps);
    num_or_null(o, "loss", j->loss);
    num_or_null(o, "val_loss", j->val_loss);
    /* a job cancelled while queued never started: it ran for 0 s */
    double elapsed = j->started > 0 ? (j->finished > 0 ? j->finished : now) - j->started : 0;
    cJSON_AddNumberToObject(o, "elapsed", elapsed);
    if (j->state == JOB_RUNNING && j->step > 0 && j->steps > 0)
        cJSON_AddNumberToObject(o, "eta", elapsed / (double)j->step * (double)(j->steps - j->step));
    else
        cJSON_AddNullToObject(o, "eta");
    if (j->version > 0) cJSON_AddNumberToObject(o, "version", (double)j->version);
    if (j->error[0]) cJSON_AddStringToObject(o, "error", j->error);
    else cJSON_AddNullToObject(o, "error");
    if (with_points) {
        cJSON *a = cJSON_AddArrayToObject(o, "points");
        for (int i = 0; i < j->npoints; i++) {
            const job_point *p = &j->points[i];
            cJSON *x = cJSON_CreateObject();
            cJSON_AddNumberToObject(x, "epoch", p->epoch);
            cJSON_AddNumberToObject(x, "step", (double)p->step);
            num_or_null(x, "loss", p->loss);
            num_or_null(x, "val_loss", p->val_loss);
            cJSON_AddNumberToObject(x, "time", p->time);
            cJSON_AddItemToArray(a, x);
        }
    }
}

int pool_job_json(job_pool *p, long id, cJSON *out, int with_points)
{
    pthread_mutex_lock(&p->lock);
    train_job *j = find(p, id);
    if (j) job_json(j, out, with_points);
    pthread_mutex_unlock(&p->lock);
    return j ? 0 : -1;
}

void pool_list_json(job_pool *p, cJSON *array)
{
    pthread_mutex_lock(&p->lock);
    for (int i = 0; i < p->njobs; i++) {
        cJSON *o = cJSON_CreateObject();
        job_json(p->jobs[i], o, 0);
        cJSON_AddItemToArray(array, o);
    }
    pthread_mutex_unlock(&p->lock);
}

int pool_cancel(job_pool *p, long id, job_state *after)
{
    pthread_mutex_lock(&p->lock);
    train_job *j = find(p, id);
    if (j) {
        atomic_store(&j->cancel, 1);
        if (j->state == JOB_QUEUED) {
            /* out of the queue now; the worker skips it */
            train_job **pp = &p->head, *prev = NULL;
            while (*pp && *pp != j) { prev = *pp; pp = &(*pp)->next_queued; }
            if (*pp) {
                *pp = j->next_queued;
                if (p->tail == j) p->tail = prev;
                p->queued--;
            }
            j->state = JOB_CANCELLED;
            j->finished = rnnd_now();
            snprintf(j->error, sizeof j->error, "cancelled before it started");
            job_release_inputs(p, j);
        }
        *after = j->state;
    }
    pthread_mutex_unlock(&p->lock);
    return j ? 0 : -1;
}

void pool_counts(job_pool *p, int counts[5])
{
    memset(counts, 0, 5 * sizeof(int));
    pthread_mutex_lock(&p->lock);
    for (int i = 0; i < p->njobs; i++)
        counts[p->jobs[i]->state]++;
    pthread_mutex_unlock(&p->lock);
}
