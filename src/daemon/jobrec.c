/*
 * DESIGN: job records. Each job is a file STATE/jobs/ID.json, replaced
 * crash-safe at every change that matters (queued, running, each epoch end
 * with its loss point, finished): its status as GET /train/ID shows it and
 * the version its fine-tune started from. The request it came from is
 * ID.spec, written once when it is queued (a request may carry megabytes of
 * data, which the record rewritten every epoch must not). A running job's
 * checkpoint is STATE/jobs/ID.ckpt (rnn_train_state_save).
 * When the daemon starts, the records come back: finished jobs answer as
 * before, queued and running ones go back in the queue in ID order and
 * resume from their checkpoint, and new IDs continue after the highest.
 */
#include "daemon.h"

#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void jobrec_path(long id, const char *ext, char *buf, size_t n)
{
    snprintf(buf, n, "%s/jobs/%ld.%s", state_dir(), id, ext);
}

int jobrec_init(void)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/jobs", state_dir());
    if (mkdir(p, 0755) && errno != EEXIST) {
        rnnd_log(LOG_ERROR, "%s: %s; jobs will not survive a restart", p, strerror(errno));
        return -1;
    }
    return 0;
}

static void num_or_null(cJSON *o, const char *k, double v)
{
    if (isfinite(v)) cJSON_AddNumberToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

/* The fields of a job that are kept, as one table: name, offset, kind. */
typedef enum { F_LONG, F_INT, F_DBL } fkind;
static const struct { const char *key; size_t off; fkind kind; } fields[] = {
    {"epoch", offsetof(train_job, epoch), F_INT},
    {"epochs", offsetof(train_job, epochs), F_INT},
    {"step", offsetof(train_job, step), F_LONG},
    {"steps", offsetof(train_job, steps), F_LONG},
    {"loss", offsetof(train_job, loss), F_DBL},
    {"val_loss", offsetof(train_job, val_loss), F_DBL},
    {"lr", offsetof(train_job, lr), F_DBL},
    {"accuracy", offsetof(train_job, accuracy), F_DBL},
    {"val_accuracy", offsetof(train_job, val_accuracy), F_DBL},
    {"best_epoch", offsetof(train_job, best_epoch), F_INT},
    {"stopped_early", offsetof(train_job, stopped_early), F_INT},
    {"submitted", offsetof(train_job, submitted), F_DBL},
    {"started", offsetof(train_job, started), F_DBL},
    {"finished", offsetof(train_job, finished), F_DBL},
    {"version", offsetof(train_job, version), F_LONG},
    {"base_version", offsetof(train_job, base_version), F_LONG},
};
#define NFIELDS (sizeof fields / sizeof fields[0])

char *jobrec_text(const train_job *j)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "job", (double)j->id);
    cJSON_AddStringToObject(o, "model", j->model);
    cJSON_AddStringToObject(o, "status", job_state_name(j->state));
    for (size_t i = 0; i < NFIELDS; i++) {
        const char *p = (const char *)j + fields[i].off;
        switch (fields[i].kind) {
        case F_LONG: cJSON_AddNumberToObject(o, fields[i].key, (double)*(const long *)p); break;
        case F_INT: cJSON_AddNumberToObject(o, fields[i].key, *(const int *)p); break;
        case F_DBL: num_or_null(o, fields[i].key, *(const double *)p); break;
        }
    }
    cJSON_AddStringToObject(o, "error", j->error);
    cJSON *a = cJSON_AddArrayToObject(o, "points");
    for (int i = 0; i < j->npoints; i++) {
        const job_point *p = &j->points[i];
        cJSON *x = cJSON_CreateArray();
        cJSON_AddItemToArray(x, cJSON_CreateNumber(p->epoch));
        cJSON_AddItemToArray(x, cJSON_CreateNumber((double)p->step));
        cJSON_AddItemToArray(x, isfinite(p->loss) ? cJSON_CreateNumber(p->loss) : cJSON_CreateNull());
        cJSON_AddItemToArray(x, isfinite(p->val_loss) ? cJSON_CreateNumber(p->val_loss) : cJSON_CreateNull());
        cJSON_AddItemToArray(x, cJSON_CreateNumber(p->time));
        cJSON_AddItemToArray(x, isfinite(p->accuracy) ? cJSON_CreateNumber(p->accuracy) : cJSON_CreateNull());
        cJSON_AddItemToArray(x, isfinite(p->val_accuracy) ? cJSON_CreateNumber(p->val_accuracy) : cJSON_CreateNull());
        cJSON_AddItemToArray(a, x);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

void jobrec_write(long id, char *text)
{
    if (!text)
        return;
    char p[1200];
    jobrec_path(id, "json", p, sizeof p);
    rnn_err err;
    const rnn_span part = {text, strlen(text)};
    if (rnn_file_replace(p, &part, 1, &err))
        rnnd_log(LOG_WARN, "job %ld: record not written: %s", id, err.msg);
    free(text);
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* One record back into a job (not yet in the pool); NULL if unreadable. */
static train_job *parse_record(const char *text)
{
    cJSON *o = cJSON_Parse(text);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(o, "model");
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(o, "status");
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(o, "error");
    train_job *j = NULL;
    const double id = num(o, "job");
    if (!cJSON_IsString(model) || !rnn_name_ok(model->valuestring) || !cJSON_IsString(status) ||
        !(id >= 1 && id < 9e15) || !(j = calloc(1, sizeof *j)))
        goto out;
    j->id = (long)id;
    snprintf(j->model, sizeof j->model, "%s", model->valuestring);
    j->state = JOB_FAILED;
    for (int s = JOB_QUEUED; s <= JOB_CANCELLED; s++)
        if (!strcmp(status->valuestring, job_state_name((job_state)s)))
            j->state = (job_state)s;
    for (size_t i = 0; i < NFIELDS; i++) {
        char *p = (char *)j + fields[i].off;
        const double v = num(o, fields[i].key);
        switch (fields[i].kind) {
        case F_LONG: *(long *)p = isfinite(v) ? (long)v : 0; break;
        case F_INT: *(int *)p = isfinite(v) ? (int)v : 0; break;
        case F_DBL: *(double *)p = v; break;
        }
    }
    if (cJSON_IsString(error))
        snprintf(j->error, sizeof j->error, "%s", error->valuestring);
    const cJSON *pts = cJSON_GetObjectItemCaseSensitive(o, "points");
    const int np = cJSON_GetArraySize(pts);
    j->points = np > 0 ? calloc((size_t)np, sizeof *j->points) : NULL;
    j->cap_points = j->points ? np : 0;
    for (const cJSON *x = pts ? pts->child : NULL; x && j->npoints < j->cap_points; x = x->next) {
        /* [epoch, step, loss, val_loss, time, accuracy, val_accuracy]; records
         * of before accuracy have the first five */
        const int len = cJSON_GetArraySize(x);
        if (len != 5 && len != 7)
            continue;
        double v[7] = {0, 0, 0, 0, 0, NAN, NAN};
        for (int k = 0; k < len; k++) {
            const cJSON *e = cJSON_GetArrayItem(x, k);
            v[k] = cJSON_IsNumber(e) ? e->valuedouble : NAN;
        }
        j->points[j->npoints++] = (job_point){(int)v[0], (long)v[1], v[2], v[3], v[4], v[5], v[6]};
    }
out:
    cJSON_Delete(o);
    return j;
}

static int cmp_id(const void *a, const void *b)
{
    const long x = (*(train_job *const *)a)->id, y = (*(train_job *const *)b)->id;
    return (x > y) - (x < y);
}

int jobrec_load_all(train_job ***out)
{
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/jobs", state_dir());
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0, cap = 0;
    train_job **a = NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        const long id = strtol(e->d_name, &end, 10);
        if (id < 1 || strcmp(end, ".json"))
            continue;
        char p[1500];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        size_t len;
        rnn_err err;
        char *text = (char *)rnn_file_read(p, 64u << 20, &len, &err);
        train_job *j = text ? parse_record(text) : NULL;
        free(text);
        /* the request, needed only by a job that has yet to finish */
        char sp[1200];
        jobrec_path(id, "spec", sp, sizeof sp);
        const int unfinished = j && (j->state == JOB_QUEUED || j->state == JOB_RUNNING);
        if (j && !(unfinished && (j->body = (char *)rnn_file_read(sp, (size_t)1 << 31, &len, &err))))
            j->body = strdup("");
        if (!j || j->id != id) {
            rnnd_log(LOG_WARN, "%s: not a job record, skipped", p);
            if (j) { free(j->body); free(j->points); free(j); }
            continue;
        }
        if (n == cap) {
            train_job **b = realloc(a, (size_t)(cap = cap ? 2 * cap : 64) * sizeof *a);
            if (!b) { free(j->body); free(j->points); free(j); break; }
            a = b;
        }
        a[n++] = j;
    }
    closedir(d);
    if (n)
        qsort(a, (size_t)n, sizeof *a, cmp_id);
    *out = a;
    return n;
}

int jobrec_write_spec(long id, const char *body)
{
    char p[1200];
    jobrec_path(id, "spec", p, sizeof p);
    rnn_err err;
    const rnn_span part = {body, strlen(body)};
    if (rnn_file_replace(p, &part, 1, &err)) {
        rnnd_log(LOG_WARN, "job %ld: its request is not kept: %s; it cannot resume after a restart",
                 id, err.msg);
        return -1;
    }
    return 0;
}

void jobrec_remove(long id)
{
    char p[1200];
    jobrec_path(id, "json", p, sizeof p);
    unlink(p);
    jobrec_path(id, "spec", p, sizeof p);
    unlink(p);
    jobrec_path(id, "ckpt", p, sizeof p);
    unlink(p);
    jobrec_path(id, "log", p, sizeof p); /* a launched job's stderr */
    unlink(p);
}
