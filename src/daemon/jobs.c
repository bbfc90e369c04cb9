/*
 * DESIGN: the training job pool. `train_workers` threads take jobs from a
 * bounded FIFO queue (`train_queue`; submit fails when it is full, which the
 * HTTP layer turns into 429). Every job's status lives in a table guarded by
 * the pool lock; the trainer's progress callback updates it after each step
 * and reads the cancel flag, so DELETE stops a job at its next step. A
 * finished job publishes a new version (kept, saved, served); a failed or
 * cancelled one publishes nothing.
 *
 * Jobs are durable (jobrec.c keeps their records): a running job writes a
 * checkpoint at every epoch end, every checkpoint_s seconds and when the
 * daemon stops (SIGTERM suspends it rather than cancelling it); queued and
 * running jobs of an earlier run are queued again when the pool starts and
 * resume from their checkpoints. Training is deterministic for a seed and a
 * thread count, so a resumed job ends with the weights it would have had.
 * Each job builds its data on the worker that runs it, not on an HTTP thread,
 * and holds it only while it runs.
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
    pthread_mutex_t rec;        /* one record write at a time; taken before lock */
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
    rnn_job_free(&j->spec);
    served_release(j->base);
    j->base = NULL;
}

static void job_free(train_job *j)
{
    job_release_inputs(NULL, j);
    free(j->points);
    free(j->body);
    free(j);
}

/* Writes j's record as it stands now. The text is made under the record
 * lock, so the last write is the latest state whatever the order of the
 * threads. j must not be forgotten meanwhile: only settled jobs are. */
static void record(job_pool *p, train_job *j)
{
    pthread_mutex_lock(&p->rec);
    pthread_mutex_lock(&p->lock);
    char *text = jobrec_text(j);
    const long id = j->id;
    pthread_mutex_unlock(&p->lock);
    jobrec_write(id, text);
    pthread_mutex_unlock(&p->rec);
}

int job_prepare(train_job *j, const char *data_dir, rnn_dataset *d, rnn_err *err)
{
    j->spec.base_series = j->base ? &j->base->meta.series : NULL;
    j->spec.base_words = j->base && j->base->meta.words.n ? &j->base->meta.words : NULL;
    if (rnn_job_dataset(&j->spec, j->base ? j->base->meta.vocab : NULL, data_dir, d, err))
        return -1;
    const rnn_config *c = &j->spec.cfg;
    if (j->base && (c->input_size != j->base->m.cfg.input_size ||
                    c->output_size != j->base->m.cfg.output_size)) {
        snprintf(err->msg, sizeof err->msg, "data: %d inputs and %d outputs per step, model \"%s\" "
                 "takes %d and %d (use \"from_scratch\": true to replace it)", c->input_size,
                 c->output_size, j->model, j->base->m.cfg.input_size, j->base->m.cfg.output_size);
        rnn_dataset_free(d);
        return -1;
    }
    rnn_config probe = *c;
    if (!j->base && rnn_config_check(&probe, err)) {
        rnn_dataset_free(d);
        return -1;
    }
    return 0;
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
    j->lr = p->lr;
    j->best_epoch = p->best_epoch;
    if (p->epoch_end) {
        j->val_loss = p->val_loss;
        j->accuracy = p->accuracy;
        j->val_accuracy = p->val_accuracy;
        job_point pt = {p->epoch, p->step, p->epoch_loss, p->val_loss, rnnd_now(), p->accuracy,
                        p->val_accuracy};
        add_point(j, &pt, c->pool->cfg->loss_history_max);
    }
    const int stop = c->pool->stopping;
    pthread_mutex_unlock(&c->pool->lock);
    if (p->epoch_end)
        record(c->pool, j);     /* its loss point survives a crash */
    if (atomic_load(&j->cancel))
        return RNN_TRAIN_CANCEL;
    if (stop)
        return RNN_TRAIN_SUSPEND;
    if (!p->epoch_end && rnnd_clock() - j->last_checkpoint >= c->pool->cfg->checkpoint_s)
        return RNN_TRAIN_CHECKPOINT;
    return RNN_TRAIN_GO;
}

static void on_checkpoint(void *ud, const rnn_train_state *st)
{
    run_ctx *c = ud;
    char path[1200];
    jobrec_path(c->job->id, "ckpt", path, sizeof path);
    rnn_err err;
    if (rnn_train_state_save(path, st, &err))
        rnnd_log(LOG_WARN, "job %ld: checkpoint not written: %s", c->job->id, err.msg);
    c->job->last_checkpoint = rnnd_clock();
}

/* A job's weights become the next version: kept first (a crash after that
 * finds them: the job is done), then the file in model_dir, then served;
 * versions past keep_versions go. One job of this daemon publishes at a
 * time, and versions_keep creates the kept file only where none is, so a
 * number is in one file only, even with replicas publishing into the same
 * state_dir. Returns the version, or 0 with err set. */
static long publish(job_pool *pool, const char *name, rnn_model *m, rnn_meta *meta, rnn_err *err)
{
    registry_publish_lock(pool->reg);
    long v = versions_keep(name, registry_next_version(pool->reg, name), m, meta, err);
    long long stamp;
    if (v <= 0 || versions_serve_file(name, v, pool->cfg->model_dir, &stamp, err)) {
        v = 0;
    } else if ((v = registry_put(pool->reg, name, m, meta, stamp, v)) <= 0) {
        snprintf(err->msg, sizeof err->msg, "could not publish the model");
        v = 0;
    }
    if (v > 0) {
        long gone[64];
        const int n = versions_prune(name, pool->cfg->keep_versions, v, gone, 64);
        registry_forget(pool->reg, name, gone, n);
    }
    registry_publish_unlock(pool->reg);
    return v;
}

/* The weights a job starts from: its base's, or a new model's initialised
 * from its seed (a resumed job then takes its checkpoint's). */
static int start_weights(train_job *j, rnn_dataset *d, rnn_model *m, rnn_meta *meta, rnn_err *err)
{
    rnn_meta_init(meta);
    if (j->base) {
        if (rnn_model_copy(m, &j->base->m, err))
            return -1;
        if (rnn_meta_copy(meta, &j->base->meta) == 0)
            return 0;
        rnn_model_free(m);
        snprintf(err->msg, sizeof err->msg, "out of memory copying the base model");
        return -1;
    }
    if (rnn_model_init(m, &j->spec.cfg, err))
        return -1;
    rnn_rng rng;
    rnn_rng_seed(&rng, j->spec.seed);
    rnn_model_randomize(m, &rng, j->spec.rinit);
    if (rnn_meta_take_data(meta, d)) {
        rnn_model_free(m);
        snprintf(err->msg, sizeof err->msg, "out of memory copying the vocabulary");
        return -1;
    }
    return 0;
}

/* Trains j from its checkpoint if it has one (a checkpoint of another run,
 * say after train_threads changed, is dropped and the job starts over:
 * training is deterministic, so the result is the same). Returns
 * rnn_train's code. */
static int train(job_pool *pool, train_job *j, rnn_dataset *d, rnn_model *m,
                 rnn_train_result *res, rnn_err *err)
{
    char ckpt[1200];
    jobrec_path(j->id, "ckpt", ckpt, sizeof ckpt);
    rnn_train_state from;
    const int exists = access(ckpt, F_OK) == 0;
    const int have = exists && rnn_train_state_load(ckpt, &from, err) == 0;
    if (exists && !have)
        rnnd_log(LOG_WARN, "job %ld: %s; it starts over", j->id, err->msg);
    run_ctx ctx = {pool, j};
    j->spec.train.progress = on_progress;
    j->spec.train.checkpoint = on_checkpoint;
    j->spec.train.progress_ud = &ctx;
    j->spec.train.threads = pool->cfg->train_threads;
    j->spec.train.resume = have ? &from : NULL;
    j->last_checkpoint = rnnd_clock();
    int rc = rnn_train(m, d, &j->spec.train, res, err);
    if (have) {
        if (rc == 0 || rc == 1)
            rnnd_log(LOG_INFO, "job %ld resumed at epoch %d, step %ld", j->id, from.epoch, from.step);
        if (rc == -1 && !strncmp(err->msg, "resume:", 7)) {
            rnnd_log(LOG_WARN, "job %ld: %s; it starts over", j->id, err->msg);
            rnn_train_result_free(res);
            j->spec.train.resume = NULL;
            rc = rnn_train(m, d, &j->spec.train, res, err);
        }
        rnn_train_state_free(&from);
    }
    return rc;
}

/* How a run ended, whether here or launched. */
typedef struct outcome {
    job_state final;
    long version;
    int rc;                 /* rnn_train's: 0 done, 1 cancelled, 2 suspended, -1 failed */
    int best_epoch, stopped_early;
    rnn_err err;
} outcome;

/* The weights a run ended with, as the next version of the job's model. */
static void publish_run(job_pool *pool, train_job *j, rnn_model *m, rnn_meta *meta, outcome *o)
{
    /* the save time, in the file and in the version served */
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(meta->created, sizeof meta->created, "%Y-%m-%dT%H:%M:%SZ", &tm);
    meta->job = j->id;
    o->version = publish(pool, j->model, m, meta, &o->err);
    if (o->version > 0) {
        o->final = JOB_SUCCEEDED;
        rnnd_log(LOG_INFO, "job %ld: model %s version %ld saved", j->id, j->model, o->version);
    }
}

/* j on this daemon's threads. */
static void train_here(job_pool *pool, train_job *j, outcome *o)
{
    rnn_model m;
    rnn_meta meta;
    rnn_dataset d;
    rnn_train_result res;
    memset(&res, 0, sizeof res);
    memset(&m, 0, sizeof m);
    rnn_meta_init(&meta);
    rnn_err err;
    int ok = job_prepare(j, pool->cfg->data_dir, &d, &err) == 0;
    const int have_data = ok;
    if (ok && d.warning[0]) {
        rnnd_log(LOG_WARN, "job %ld (%s): %s", j->id, j->model, d.warning);
        pthread_mutex_lock(&pool->lock);
        snprintf(j->warning, sizeof j->warning, "%s", d.warning);
        pthread_mutex_unlock(&pool->lock);
    }
    ok = ok && start_weights(j, &d, &m, &meta, &err) == 0;
    o->err = err;
    if (ok && (o->rc = train(pool, j, &d, &m, &res, &o->err)) == 1) {
        o->final = JOB_CANCELLED;
        snprintf(o->err.msg, sizeof o->err.msg, "cancelled at step %ld", res.steps_done);
    } else if (ok && o->rc == 0) {
        meta.epochs += res.epochs_done;
        meta.final_loss = res.final_loss;
        meta.final_val_loss = res.final_val_loss;
        rnn_meta_append(&meta, res.loss, res.val_loss, res.epochs_done, pool->cfg->loss_history_max);
        o->best_epoch = res.best_epoch;
        o->stopped_early = res.stopped_early;
        publish_run(pool, j, &m, &meta, o);
    }
    if (o->rc == 2)
        rnnd_log(LOG_INFO, "job %ld (%s) suspended at step %ld: it resumes when the server starts again",
                 j->id, j->model, res.steps_done);
    rnn_model_free(&m);
    rnn_meta_free(&meta);
    rnn_train_result_free(&res);
    if (have_data)
        rnn_dataset_free(&d);
}

static int launched_stop(void *ud)
{
    run_ctx *c = ud;
    if (atomic_load(&c->job->cancel))
        return RNN_TRAIN_CANCEL;
    pthread_mutex_lock(&c->pool->lock);
    const int stop = c->pool->stopping;
    pthread_mutex_unlock(&c->pool->lock);
    return stop ? RNN_TRAIN_SUSPEND : RNN_TRAIN_GO;
}

static void launched_pid(void *ud, long pid)
{
    run_ctx *c = ud;
    pthread_mutex_lock(&c->pool->lock);
    c->job->pid = pid;
    pthread_mutex_unlock(&c->pool->lock);
    rnnd_log(LOG_INFO, "job %ld (%s): started %s (pid %ld)", c->job->id, c->job->model,
             c->pool->cfg->train_command, pid);
}

/* j through train_command (launch.c): rnnd train on its request, into a
 * model file in the job's records, resumed from its checkpoint when the
 * daemon stopped it before; then published as a job trained here is. */
static void train_launched(job_pool *pool, train_job *j, outcome *o)
{
    char spec[1200], out[1200], ckpt[1200], logp[1200], base[1300], threads[16], every[16];
    jobrec_path(j->id, "spec", spec, sizeof spec);
    jobrec_path(j->id, "model.safetensors", out, sizeof out);
    jobrec_path(j->id, "ckpt", ckpt, sizeof ckpt);
    jobrec_path(j->id, "log", logp, sizeof logp);
    jobrec_write_spec(j->id, j->body);
    snprintf(every, sizeof every, "%d", pool->cfg->checkpoint_s);
    snprintf(threads, sizeof threads, "%d", pool->cfg->train_threads);
    run_ctx ctx = {pool, j};
    const launch_hooks h = {on_progress, launched_stop, launched_pid, &ctx};
    for (int resume = access(ckpt, F_OK) == 0;; resume = 0) {
        const char *args[24];
        int n = 0;
        static const char *const fixed[] = {"--job", NULL, "--out", NULL, "--data-dir", NULL, "--checkpoint",
                                            NULL, "--checkpoint-s", NULL, "--progress-json", "--quiet"};
        const char *vals[] = {spec, out, pool->cfg->data_dir, ckpt, every};
        for (size_t i = 0, v = 0; i < sizeof fixed / sizeof fixed[0]; i++)
            args[n++] = fixed[i] ? fixed[i] : vals[v++];
        if (pool->cfg->train_threads > 0) {
            args[n++] = "--threads";
            args[n++] = threads;
        }
        if (j->base) {
            versions_path(j->model, j->base->version, base, sizeof base);
            args[n++] = "--init";
            args[n++] = base;
        }
        if (resume) {
            args[n++] = "--resume";
            args[n++] = ckpt;
        }
        args[n] = NULL;
        o->rc = launch_train(pool->cfg->train_command, args, logp, &h, &o->err);
        if (!(o->rc == -1 && resume))
            break;
        /* a checkpoint of another run (train_threads changed, say): over */
        rnnd_log(LOG_WARN, "job %ld: %s; it starts over", j->id, o->err.msg);
        unlink(ckpt);
    }
    if (o->rc == 1) {
        o->final = JOB_CANCELLED;
        snprintf(o->err.msg, sizeof o->err.msg, "cancelled at step %ld", j->step);
    } else if (o->rc == 0) {
        rnn_model m;
        rnn_meta meta;
        if (rnn_model_load(out, &m, &meta, &o->err) == 0) {
            pthread_mutex_lock(&pool->lock);
            o->best_epoch = j->best_epoch;
            pthread_mutex_unlock(&pool->lock);
            publish_run(pool, j, &m, &meta, o);
            rnn_model_free(&m);
            rnn_meta_free(&meta);
        }
    } else if (o->rc == 2) {
        rnnd_log(LOG_INFO, "job %ld (%s) suspended at step %ld: it resumes when the server starts again",
                 j->id, j->model, j->step);
    }
    unlink(out);
}

static void run_job(job_pool *pool, train_job *j)
{
    outcome o = {.final = JOB_FAILED, .rc = -1};
    record(pool, j);
    if (pool->cfg->train_command[0])
        train_launched(pool, j, &o);
    else
        train_here(pool, j, &o);
    const int suspended = o.rc == 2;
    if (!suspended && o.final != JOB_SUCCEEDED)
        rnnd_log(LOG_WARN, "job %ld (%s) %s: %s", j->id, j->model, job_state_name(o.final), o.err.msg);
    pthread_mutex_lock(&pool->lock);
    j->pid = 0;
    if (!suspended) {
        j->state = o.final;
        j->version = o.version;
        if (o.rc == 0) {
            j->best_epoch = o.best_epoch;
            j->stopped_early = o.stopped_early;
        }
        j->finished = rnnd_now();
        if (o.final != JOB_SUCCEEDED)
            snprintf(j->error, sizeof j->error, "%s", o.err.msg);
    }
    job_release_inputs(pool, j);
    pthread_mutex_unlock(&pool->lock);
    record(pool, j);
    if (!suspended) {
        char ckpt[1200];
        jobrec_path(j->id, "ckpt", ckpt, sizeof ckpt);
        unlink(ckpt);
    }
    pthread_mutex_lock(&pool->lock);
    j->settled = !suspended;
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

static void enqueue(job_pool *p, train_job *j)
{
    j->state = JOB_QUEUED;
    j->next_queued = NULL;
    if (p->tail) p->tail->next_queued = j;
    else p->head = j;
    p->tail = j;
    p->queued++;
    p->held += j->data_bytes;
}

/* The version of j's model that j published, if a crash came after its
 * weights were kept and before its record said so; 0 if none. */
static long published_by(registry *reg, const train_job *j)
{
    long *v;
    const int n = versions_list(j->model, &v);
    long found = 0;
    for (int i = n - 1; i >= 0 && !found; i--) {
        served_model *k = registry_get_version(reg, j->model, v[i]);
        if (k && k->meta.job == j->id)
            found = v[i];
        served_release(k);
    }
    free(v);
    return found;
}

/* An unfinished job of an earlier run, back to the state it can run from:
 * its spec parsed again and its base version found. 0 to queue it. */
static int revive(job_pool *p, train_job *j)
{
    rnn_err err;
    const long done = published_by(p->reg, j);
    if (done > 0) {
        /* it had finished: serve its version if the crash came before that */
        served_model *cur = registry_get(p->reg, j->model);
        const long served = cur ? cur->version : 0;
        served_release(cur);
        if (served < done && registry_serve(p->reg, j->model, done, p->cfg->model_dir, &err))
            rnnd_log(LOG_WARN, "job %ld: version %ld not served: %s", j->id, done, err.msg);
        j->state = JOB_SUCCEEDED;
        j->version = done;
        if (!(j->finished > 0)) j->finished = rnnd_now();
        return -1;
    }
    if (rnn_job_parse(&j->spec, j->body, strlen(j->body), &err)) {
        j->state = JOB_FAILED;
        snprintf(j->error, sizeof j->error, "its record cannot be read again: %.400s", err.msg);
        return -1;
    }
    if (j->base_version > 0) {
        if (!(j->base = registry_get_version(p->reg, j->model, j->base_version))) {
            j->state = JOB_FAILED;
            snprintf(j->error, sizeof j->error, "its base, version %ld of model %s, is no longer kept",
                     j->base_version, j->model);
            rnn_job_free(&j->spec);
            return -1;
        }
        j->spec.cfg = j->base->m.cfg;
    }
    j->data_bytes = rnn_job_data_bytes(&j->spec, p->cfg->data_dir);
    return 0;
}

/* The jobs of an earlier run: all listed again, the unfinished queued. */
static void restore(job_pool *p)
{
    if (jobrec_init())
        return;
    train_job **a;
    const int n = jobrec_load_all(&a);
    int queued = 0;
    for (int i = 0; i < n; i++) {
        train_job *j = a[i];
        if (j->id >= p->next_id)
            p->next_id = j->id + 1;
        if (p->njobs == MAX_JOBS_KEPT) {
            job_free(j);
            continue;
        }
        const int unfinished = j->state == JOB_QUEUED || j->state == JOB_RUNNING;
        if (unfinished && revive(p, j) == 0) {
            enqueue(p, j);
            queued++;
        } else {
            if (unfinished)
                jobrec_write(j->id, jobrec_text(j));
            j->settled = 1;
        }
        p->jobs[p->njobs++] = j;
    }
    free(a);
    if (n)
        rnnd_log(LOG_INFO, "%d job%s of an earlier run restored, %d queued again", n,
                 n == 1 ? "" : "s", queued);
}

job_pool *pool_new(const rnnd_config *cfg, registry *reg)
{
    job_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    pthread_mutex_init(&p->lock, NULL);
    pthread_mutex_init(&p->rec, NULL);
    pthread_cond_init(&p->wake, NULL);
    p->cfg = cfg;
    p->reg = reg;
    p->next_id = 1;
    restore(p);
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

/* Running jobs suspend at their next step (a checkpoint); queued ones stay
 * queued in their records: both go on when the server starts again. */
void pool_stop_all(job_pool *p)
{
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
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
    pthread_mutex_destroy(&p->rec);
    free(p);
}

int pool_submit(job_pool *p, train_job *j)
{
    /* its number, and its request on disk before any record names it (a
     * refused job leaves a gap in the numbers, which only have to grow) */
    pthread_mutex_lock(&p->lock);
    const long id = p->next_id++;
    pthread_mutex_unlock(&p->lock);
    jobrec_write_spec(id, j->body ? j->body : "");
    pthread_mutex_lock(&p->lock);
    int refused = p->stopping || p->queued >= p->cfg->train_queue ? -1
                  : p->held + j->data_bytes > (double)p->cfg->max_job_bytes ? -2 : 0;
    if (!refused && p->njobs == MAX_JOBS_KEPT) {
        /* forget the oldest finished job, and its record */
        int k = -1;
        for (int i = 0; i < p->njobs && k < 0; i++)
            if (p->jobs[i]->settled) k = i;
        if (k < 0)
            refused = -1;
        else {
            jobrec_remove(p->jobs[k]->id);
            job_free(p->jobs[k]);
            memmove(&p->jobs[k], &p->jobs[k + 1], (size_t)(p->njobs - k - 1) * sizeof(train_job *));
            p->njobs--;
        }
    }
    if (refused) {
        pthread_mutex_unlock(&p->lock);
        jobrec_remove(id);
        return refused;
    }
    j->id = id;
    j->submitted = rnnd_now();
    j->epochs = j->spec.train.epochs;
    j->val_loss = j->lr = j->accuracy = j->val_accuracy = NAN;
    j->loss = NAN;
    p->jobs[p->njobs++] = j;
    enqueue(p, j);
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
    /* not settled, so not forgotten meanwhile */
    record(p, j);
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
    num_or_null(o, "lr", j->lr);
    if (j->pid > 0)
        cJSON_AddNumberToObject(o, "pid", (double)j->pid); /* a launched job's (train_command) */
    if (isfinite(j->accuracy) || isfinite(j->val_accuracy)) {
        num_or_null(o, "accuracy", j->accuracy);
        num_or_null(o, "val_accuracy", j->val_accuracy);
    }
    if (j->best_epoch > 0) {
        cJSON_AddNumberToObject(o, "best_epoch", j->best_epoch);
        cJSON_AddBoolToObject(o, "stopped_early", j->stopped_early);
    }
    /* a job cancelled while queued never started: it ran for 0 s */
    double elapsed = j->started > 0 ? (j->finished > 0 ? j->finished : now) - j->started : 0;
    cJSON_AddNumberToObject(o, "elapsed", elapsed);
    if (j->state == JOB_RUNNING && j->step > 0 && j->steps > 0)
        cJSON_AddNumberToObject(o, "eta", elapsed / (double)j->step * (double)(j->steps - j->step));
    else
        cJSON_AddNullToObject(o, "eta");
    if (j->version > 0) cJSON_AddNumberToObject(o, "version", (double)j->version);
    if (j->warning[0]) cJSON_AddStringToObject(o, "warning", j->warning);
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
            if (isfinite(p->accuracy)) {
                num_or_null(x, "accuracy", p->accuracy);
                num_or_null(x, "val_accuracy", p->val_accuracy);
            }
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
    int queued_cancel = 0;
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
            queued_cancel = 1;
        }
        *after = j->state;
    }
    pthread_mutex_unlock(&p->lock);
    if (queued_cancel) {
        record(p, j);
        pthread_mutex_lock(&p->lock);
        j->settled = 1;
        pthread_mutex_unlock(&p->lock);
    }
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
