/*
 * The job spec (DESIGN.md, "Job spec"): parsing with cJSON, checking every
 * key against the field table (rnn/fields.h), and building the dataset of its
 * "data" object. Every error names the key path ("optimizer.lr",
 * "data.sequences[3][7]") and what was expected.
 */
#include "rnn/io.h"
#include "rnn/fields.h"
#include "rnn/job.h"
#include "internal.h"

#include <cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int rnn_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 64 || s[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-' && s[i] != '.')
            return 0;
    return 1;
}

/* ------------------------------------------------------------------ parse */

void rnn_job_free(rnn_job *job)
{
    if (!job)
        return;
    cJSON_Delete(job->data);
    free(job->labels_json);
    memset(job, 0, sizeof *job);
}

/* An enum field: absent (0), parsed by its own typed parser fn into *out
 * with *has set (0), or an error naming the choices (-1). A macro, so that
 * each parser is called with its own pointer type. */
#define PARSE_ENUM(key, fn, out, choices, has)                                              \
    ((r = rnn_field_get(root, "job", key, &s, err)) < 0 ? -1                                          \
     : r == 0                                  ? 0                                           \
     : fn(s, out) ? rnn_fail(err, "%s: must be one of %s, got \"%s\"", key, choices, s)     \
                  : (*(has) = 1, 0))

/* Which lr_schedule keys each schedule takes; the others are refused. */
static const struct {
    const char *name;
    rnn_sched_kind kind;
    const char *keys[6];
} schedules[] = {
    {"step", RNN_SCHED_STEP, {"step_size", "gamma"}},
    {"cosine", RNN_SCHED_COSINE, {"t_max", "eta_min"}},
    {"plateau", RNN_SCHED_PLATEAU, {"factor", "patience", "threshold", "cooldown", "min_lr"}},
};
#define NSCHED (int)(sizeof schedules / sizeof schedules[0])

static int sched_takes(int k, const char *key)
{
    if (!strcmp(key, "name"))
        return 1;
    for (int i = 0; i < 6 && schedules[k].keys[i]; i++)
        if (!strcmp(schedules[k].keys[i], key))
            return 1;
    return 0;
}

/* "lr_schedule": {"name": ..., its keys}; t_max defaults to the epochs. */
static int parse_sched(const cJSON *o, int epochs, rnn_sched_cfg *sc, rnn_err *err)
{
    const char *name = NULL;
    if (rnn_fields_only(o, "lr_schedule", err) || rnn_field_get(o, "lr_schedule", "name", &name, err) < 0)
        return -1;
    if (!name)
        return rnn_fail(err, "lr_schedule.name: missing (step, cosine or plateau)");
    int k = 0;
    while (k < NSCHED && strcmp(schedules[k].name, name))
        k++;
    if (k == NSCHED)
        return rnn_fail(err, "lr_schedule.name: must be one of step, cosine, plateau, got \"%.40s\"", name);
    for (const cJSON *it = o->child; it; it = it->next)
        if (!sched_takes(k, it->string))
            return rnn_fail(err, "lr_schedule.%s: not a key of the %s schedule", it->string, name);
    rnn_sched_defaults(sc, schedules[k].kind);
    sc->t_max = epochs > 0 ? epochs : 1;
    int r;
    if ((r = rnn_field_get(o, "lr_schedule", "step_size", &sc->step_size, err)) < 0)
        return -1;
    if (sc->kind == RNN_SCHED_STEP && r == 0)
        return rnn_fail(err, "lr_schedule.step_size: missing (epochs between two decays)");
    if (rnn_field_get(o, "lr_schedule", "gamma", &sc->gamma, err) < 0 ||
        rnn_field_get(o, "lr_schedule", "t_max", &sc->t_max, err) < 0 ||
        rnn_field_get(o, "lr_schedule", "eta_min", &sc->eta_min, err) < 0 ||
        rnn_field_get(o, "lr_schedule", "factor", &sc->factor, err) < 0 ||
        rnn_field_get(o, "lr_schedule", "patience", &sc->patience, err) < 0 ||
        rnn_field_get(o, "lr_schedule", "threshold", &sc->threshold, err) < 0 ||
        rnn_field_get(o, "lr_schedule", "cooldown", &sc->cooldown, err) < 0 ||
        rnn_field_get(o, "lr_schedule", "min_lr", &sc->min_lr, err) < 0)
        return -1;
    return 0;
}

/* "early_stopping": {"patience": P, "min_delta": D}. */
static int parse_early(const cJSON *o, rnn_early_cfg *ec, rnn_err *err)
{
    int r;
    if (rnn_fields_only(o, "early_stopping", err) ||
        (r = rnn_field_get(o, "early_stopping", "patience", &ec->patience, err)) < 0 ||
        rnn_field_get(o, "early_stopping", "min_delta", &ec->min_delta, err) < 0)
        return -1;
    if (r == 0)
        return rnn_fail(err, "early_stopping.patience: missing (epochs without improvement before stopping)");
    return 0;
}

int rnn_job_parse(rnn_job *job, const char *json, size_t len, rnn_err *err)
{
    memset(job, 0, sizeof *job);
    const long nul = rnn_json_nul_at(json, len);
    if (nul >= 0)
        return rnn_fail(err, "job: a string holds \\u0000 (a NUL character) at byte %ld; no name, "
                             "text or path may contain one", nul);
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root)
        return rnn_fail(err, "job: not valid JSON");
    int rc = -1;
    if (!cJSON_IsObject(root)) {
        rnn_fail(err, "job: must be a JSON object");
        goto out;
    }
    if (rnn_fields_only(root, "job", err))
        goto out;

    rnn_config *c = &job->cfg;
    c->task = RNN_TASK_REGRESSION;
    c->mode = RNN_MODE_MANY_TO_ONE;
    c->cell = RNN_CELL_LSTM;
    c->act = RNN_ACT_TANH;
    c->hidden = 64;
    c->layers = 1;
    c->embedding = 16;
    job->seed = 1;
    job->rinit = RNN_INIT_DEFAULT;
    rnn_train_cfg *t = &job->train;
    t->epochs = 10;
    t->batch = 32;
    t->shuffle = 1;
    rnn_optim_defaults(&t->optim, RNN_OPT_ADAM);

    const char *s = NULL;
    int r = rnn_field_get(root, "job", "model", &s, err);
    if (r < 0)
        goto out;
    if (r > 0) {
        if (!rnn_name_ok(s)) {
            rnn_fail(err, "model: must be 1-64 characters of A-Z a-z 0-9 _ . - (not starting with '.'), got \"%.80s\"", s);
            goto out;
        }
        snprintf(job->model, sizeof job->model, "%s", s);
    }
    if (PARSE_ENUM("task", rnn_task_parse, &c->task, "regression, classify, charlm", &job->has[RNN_JOB_HAS_TASK]) ||
        PARSE_ENUM("mode", rnn_mode_parse, &c->mode, "many_to_one, many_to_many", &job->has[RNN_JOB_HAS_MODE]) ||
        PARSE_ENUM("cell", rnn_cell_parse, &c->cell, "rnn, lstm, gru", &job->has[RNN_JOB_HAS_CELL]) ||
        PARSE_ENUM("activation", rnn_activation_parse, &c->act, "tanh, relu, sigmoid", &job->has[RNN_JOB_HAS_ACT]))
        goto out;
    if (!job->has[RNN_JOB_HAS_MODE])
        c->mode = c->task == RNN_TASK_CHARLM ? RNN_MODE_MANY_TO_MANY : RNN_MODE_MANY_TO_ONE;
    if (c->task == RNN_TASK_CHARLM && c->mode != RNN_MODE_MANY_TO_MANY) {
        rnn_fail(err, "mode: a charlm job is many_to_many");
        goto out;
    }
    if (c->task == RNN_TASK_CLASSIFY && c->mode != RNN_MODE_MANY_TO_ONE) {
        rnn_fail(err, "mode: a classify job is many_to_one");
        goto out;
    }
    if ((r = rnn_field_get(root, "job", "hidden", &c->hidden, err)) < 0) goto out;
    job->has[RNN_JOB_HAS_HIDDEN] = r;
    if ((r = rnn_field_get(root, "job", "layers", &c->layers, err)) < 0) goto out;
    job->has[RNN_JOB_HAS_LAYERS] = r;
    if ((r = rnn_field_get(root, "job", "embedding", &c->embedding, err)) < 0) goto out;
    job->has[RNN_JOB_HAS_EMBEDDING] = r;
    if ((r = rnn_field_get(root, "job", "bidirectional", &c->bidirectional, err)) < 0) goto out;
    job->has[RNN_JOB_HAS_BIDIR] = r;
    if (c->bidirectional && c->task == RNN_TASK_CHARLM) {
        rnn_fail(err, "bidirectional: a language model predicts from the past only; it cannot "
                      "read the text backwards");
        goto out;
    }
    job->lowercase = 1;
    job->min_count = 1;
    job->max_vocab = 20000;
    if ((r = rnn_field_get(root, "job", "tokens", &s, err)) < 0) goto out;
    if (r > 0 && strcmp(s, "chars") && strcmp(s, "words")) {
        rnn_fail(err, "tokens: must be chars or words, got \"%.40s\"", s);
        goto out;
    }
    job->words = r > 0 && !strcmp(s, "words");
    if (rnn_field_get(root, "job", "lowercase", &job->lowercase, err) < 0 ||
        rnn_field_get(root, "job", "min_count", &job->min_count, err) < 0 ||
        rnn_field_get(root, "job", "max_vocab", &job->max_vocab, err) < 0)
        goto out;
    if (job->words && c->task == RNN_TASK_REGRESSION) {
        rnn_fail(err, "tokens: words are for lm and classify jobs");
        goto out;
    }

    const cJSON *o = NULL;
    if ((r = rnn_field_get(root, "job", "init", &o, err)) < 0) goto out;
    if (r > 0) {
        long seed = 1;
        if (rnn_fields_only(o, "init", err)) goto out;
        if (rnn_field_get(o, "init", "seed", &seed, err) < 0) goto out;
        job->seed = (uint64_t)seed;
        if ((r = rnn_field_get(o, "init", "recurrent", &s, err)) < 0) goto out;
        if (r > 0) {
            if (!strcmp(s, "default")) job->rinit = RNN_INIT_DEFAULT;
            else if (!strcmp(s, "identity")) job->rinit = RNN_INIT_IDENTITY;
            else if (!strcmp(s, "orthogonal")) job->rinit = RNN_INIT_ORTHOGONAL;
            else {
                rnn_fail(err, "init.recurrent: must be one of default, identity, orthogonal, got \"%s\"", s);
                goto out;
            }
        }
    }
    t->seed = job->seed;

    if (rnn_field_get(root, "job", "validation", &t->validation, err) < 0) goto out;
    if ((r = rnn_field_get(root, "job", "validation_split", &s, err)) < 0) goto out;
    if (r > 0) {
        if (!strcmp(s, "last")) t->val_split = RNN_VAL_LAST;
        else if (!strcmp(s, "random")) t->val_split = RNN_VAL_RANDOM;
        else {
            rnn_fail(err, "validation_split: must be last or random, got \"%.40s\"", s);
            goto out;
        }
    }
    if (rnn_field_get(root, "job", "epochs", &t->epochs, err) < 0) goto out;
    if (rnn_field_get(root, "job", "batch", &t->batch, err) < 0) goto out;
    if (rnn_field_get(root, "job", "shuffle", &t->shuffle, err) < 0) goto out;
    if (rnn_field_get(root, "job", "clip", &t->clip, err) < 0) goto out;
    if (rnn_field_get(root, "job", "bptt", &t->bptt, err) < 0) goto out;
    if (rnn_field_get(root, "job", "dropout", &t->dropout, err) < 0) goto out;
    if (rnn_field_get(root, "job", "from_scratch", &job->from_scratch, err) < 0) goto out;

    if ((r = rnn_field_get(root, "job", "optimizer", &o, err)) < 0) goto out;
    if (r > 0) {
        if (rnn_fields_only(o, "optimizer", err)) goto out;
        const char *name = "adam";
        if (rnn_field_get(o, "optimizer", "name", &name, err) < 0) goto out;
        if (!strcmp(name, "adam") || !strcmp(name, "adamw")) rnn_optim_defaults(&t->optim, RNN_OPT_ADAM);
        else if (!strcmp(name, "sgd")) rnn_optim_defaults(&t->optim, RNN_OPT_SGD);
        else {
            rnn_fail(err, "optimizer.name: must be sgd or adam, got \"%s\"", name);
            goto out;
        }
        rnn_optim_cfg *oc = &t->optim;
        if (rnn_field_get(o, "optimizer", "lr", &oc->lr, err) < 0) goto out;
        if (rnn_field_get(o, "optimizer", "weight_decay", &oc->weight_decay, err) < 0) goto out;
        if (oc->kind == RNN_OPT_SGD) {
            if (rnn_field_get(o, "optimizer", "momentum", &oc->momentum, err) < 0) goto out;
            if (rnn_field_get(o, "optimizer", "nesterov", &oc->nesterov, err) < 0) goto out;
            if (oc->nesterov && oc->momentum <= 0) {
                rnn_fail(err, "optimizer.nesterov: needs momentum > 0");
                goto out;
            }
            for (const char *const *k = (const char *const[]){"beta1", "beta2", "eps", NULL}; *k; k++)
                if (cJSON_GetObjectItemCaseSensitive(o, *k)) {
                    rnn_fail(err, "optimizer.%s: only for adam", *k);
                    goto out;
                }
        } else {
            if (rnn_field_get(o, "optimizer", "beta1", &oc->beta1, err) < 0) goto out;
            if (rnn_field_get(o, "optimizer", "beta2", &oc->beta2, err) < 0) goto out;
            if (rnn_field_get(o, "optimizer", "eps", &oc->eps, err) < 0) goto out;
            for (const char *const *k = (const char *const[]){"momentum", "nesterov", NULL}; *k; k++)
                if (cJSON_GetObjectItemCaseSensitive(o, *k)) {
                    rnn_fail(err, "optimizer.%s: only for sgd", *k);
                    goto out;
                }
        }
    }

    if ((r = rnn_field_get(root, "job", "lr_schedule", &o, err)) < 0 ||
        (r > 0 && parse_sched(o, t->epochs, &t->sched, err)))
        goto out;
    if ((r = rnn_field_get(root, "job", "early_stopping", &o, err)) < 0 ||
        (r > 0 && parse_early(o, &t->early, err)))
        goto out;

    cJSON *data = cJSON_DetachItemFromObjectCaseSensitive(root, "data");
    if (!data) {
        rnn_fail(err, "data: missing (sequences, series, text, file or generator)");
        goto out;
    }
    job->data = data;
    if (!cJSON_IsObject(data)) {
        rnn_fail(err, "data: must be an object");
        goto out;
    }
    rc = 0;
out:
    cJSON_Delete(root);
    if (rc)
        rnn_job_free(job);
    return rc;
}

/* The architecture keys a job may give, as the job spec names them, with
 * how each reads off a config: a value to compare, and its name. */
static int arch_value(const rnn_config *c, int key)
{
    switch (key) {
    case RNN_JOB_HAS_TASK: return (int)c->task;
    case RNN_JOB_HAS_MODE: return (int)c->mode;
    case RNN_JOB_HAS_CELL: return (int)c->cell;
    case RNN_JOB_HAS_ACT: return c->cell == RNN_CELL_RNN ? (int)c->act : -1;
    case RNN_JOB_HAS_HIDDEN: return c->hidden;
    case RNN_JOB_HAS_LAYERS: return c->layers;
    case RNN_JOB_HAS_BIDIR: return c->bidirectional;
    default: return c->embedding;
    }
}

static void arch_name(const rnn_config *c, int key, char *buf, size_t n)
{
    switch (key) {
    case RNN_JOB_HAS_TASK: snprintf(buf, n, "%s", rnn_task_name(c->task)); break;
    case RNN_JOB_HAS_MODE: snprintf(buf, n, "%s", rnn_mode_name(c->mode)); break;
    case RNN_JOB_HAS_CELL: snprintf(buf, n, "%s", rnn_cell_name(c->cell)); break;
    case RNN_JOB_HAS_ACT: snprintf(buf, n, "%s", rnn_activation_name(c->act)); break;
    case RNN_JOB_HAS_BIDIR: snprintf(buf, n, "%s", c->bidirectional ? "true" : "false"); break;
    default: snprintf(buf, n, "%d", arch_value(c, key)); break;
    }
}

int rnn_job_fits(const rnn_job *job, const rnn_config *base, rnn_err *err)
{
    static const char *const keys[] = {"task", "mode", "cell", "activation", "hidden", "layers",
                                       "embedding", "bidirectional"};
    for (int k = RNN_JOB_HAS_TASK; k <= RNN_JOB_HAS_BIDIR; k++) {
        if (!job->has[k] || (k == RNN_JOB_HAS_ACT && base->cell != RNN_CELL_RNN) ||
            (k == RNN_JOB_HAS_EMBEDDING && !rnn_token_input(base)))
            continue;
        if (arch_value(&job->cfg, k) != arch_value(base, k)) {
            char want[32], have[32];
            arch_name(&job->cfg, k, want, sizeof want);
            arch_name(base, k, have, sizeof have);
            return rnn_fail(err, "%s: the model is %s, this job asks for %s; a fine-tune keeps the "
                                 "model's architecture (\"from_scratch\": true trains a new one)",
                            keys[k], have, want);
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ data */

/* The keys of one shape of "data" (scope "data.series", ...) and its window. */
static int shape_of(const cJSON *d, const char *scope, int *w, rnn_err *err)
{
    *w = 0;
    if (rnn_fields_only(d, scope, err))
        return -1;
    int r = rnn_field_get(d, scope, "window", w, err);
    if (r < 0)
        return -1;
    if (r == 0)
        return rnn_fail(err, "data.window: missing (steps per training sequence)");
    return 0;
}

static char *read_data_file(const char *dir, const char *name, size_t *len, rnn_err *err)
{
    if (!dir) {
        rnn_fail(err, "data.file: files are not allowed here (no data_dir)");
        return NULL;
    }
    if (!*name || name[0] == '/' || strstr(name, "..") || strlen(name) > 200) {
        rnn_fail(err, "data.file: must be a relative name inside data_dir, without '..'");
        return NULL;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        rnn_fail(err, "data.file: cannot open \"%s\" in %s: %s", name, dir, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode) || st.st_size > (256L << 20)) {
        fclose(f);
        rnn_fail(err, "data.file: \"%s\" is not a regular file of at most 256 MiB", name);
        return NULL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t got = buf ? fread(buf, 1, (size_t)st.st_size, f) : 0;
    fclose(f);
    if (!buf || got != (size_t)st.st_size) {
        free(buf);
        rnn_fail(err, "data.file: cannot read \"%s\"", name);
        return NULL;
    }
    buf[got] = 0;
    *len = got;
    return buf;
}

/* Number of features of one step: 1 for a number, n for an array of n numbers. */
static int step_width(const cJSON *s)
{
    if (cJSON_IsNumber(s)) return 1;
    if (cJSON_IsArray(s)) return cJSON_GetArraySize(s);
    return -1;
}

static int put_step(const cJSON *s, int w, float *dst, const char *path, int i, int t, rnn_err *err)
{
    if (cJSON_IsNumber(s)) {
        if (w != 1)
            return rnn_fail(err, "%s[%d][%d]: expected %d features, got a number", path, i, t, w);
        if (!isfinite(s->valuedouble) || fabs(s->valuedouble) > 3.4e38)
            return rnn_fail(err, "%s[%d][%d]: must be a finite number", path, i, t);
        dst[0] = (float)s->valuedouble;
        return 0;
    }
    if (!cJSON_IsArray(s) || cJSON_GetArraySize(s) != w)
        return rnn_fail(err, "%s[%d][%d]: expected %d feature%s", path, i, t, w, w == 1 ? "" : "s");
    int k = 0;
    for (const cJSON *f = s->child; f; f = f->next, k++) {
        if (!cJSON_IsNumber(f) || !isfinite(f->valuedouble) || fabs(f->valuedouble) > 3.4e38)
            return rnn_fail(err, "%s[%d][%d][%d]: must be a finite number", path, i, t, k);
        dst[k] = (float)f->valuedouble;
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* {"sequences": [...], "targets": [...], "labels": [...]} */
static int build_sequences(rnn_job *job, const cJSON *dj, const char *vocab_in, rnn_dataset *d,
                           rnn_err *err)
{
    rnn_config *c = &job->cfg;
    const cJSON *seqs = cJSON_GetObjectItemCaseSensitive(dj, "sequences");
    const cJSON *tg = cJSON_GetObjectItemCaseSensitive(dj, "targets");
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(dj, "labels");
    if (!cJSON_IsArray(seqs) || cJSON_GetArraySize(seqs) < 1)
        return rnn_fail(err, "data.sequences: must be a non-empty array of sequences");
    if (!tg)
        return rnn_fail(err, "data.targets: missing (one per sequence)");
    if (!cJSON_IsArray(tg) || cJSON_GetArraySize(tg) != cJSON_GetArraySize(seqs))
        return rnn_fail(err, "data.targets: must be an array with one target per sequence (%d)",
                        cJSON_GetArraySize(seqs));
    if (c->task == RNN_TASK_CHARLM)
        return rnn_fail(err, "data.sequences: a charlm job takes {\"text\": ...}");
    const int n = cJSON_GetArraySize(seqs);
    const int tokens = cJSON_IsString(seqs->child);
    int X = 0, O = 1;
    size_t steps = 0;
    int i = 0;
    for (const cJSON *s = seqs->child; s; s = s->next, i++) {
        int len;
        if (tokens) {
            if (!cJSON_IsString(s))
                return rnn_fail(err, "data.sequences[%d]: expected a string like the first sequence", i);
            len = rnn_utf8_decode(s->valuestring, strlen(s->valuestring), NULL, 0);
            if (len < 0)
                return rnn_fail(err, "data.sequences[%d]: not valid UTF-8", i);
        } else {
            if (!cJSON_IsArray(s))
                return rnn_fail(err, "data.sequences[%d]: must be an array of steps", i);
            len = cJSON_GetArraySize(s);
            if (len > 0) {
                int w = step_width(s->child);
                if (w < 1 || w > 65536)
                    return rnn_fail(err, "data.sequences[%d][0]: must be a number or an array of numbers", i);
                if (X == 0) X = w;
                else if (w != X)
                    return rnn_fail(err, "data.sequences[%d][0]: %d features, earlier sequences have %d", i, w, X);
            }
        }
        if (len < 1)
            return rnn_fail(err, "data.sequences[%d]: empty sequence", i);
        if (len > 1000000)
            return rnn_fail(err, "data.sequences[%d]: longer than 1000000 steps", i);
        steps += (size_t)len;
    }
    if (tokens && c->task == RNN_TASK_REGRESSION)
        return rnn_fail(err, "data.sequences: text sequences need task classify (or charlm with \"text\")");
    /* targets: shape check and output size */
    char **names = NULL;
    int nnames = 0, rc = -1;
    if (c->task == RNN_TASK_REGRESSION) {
        const cJSON *t0 = tg->child;
        const cJSON *probe = c->mode == RNN_MODE_MANY_TO_MANY ? (cJSON_IsArray(t0) ? t0->child : NULL) : t0;
        if (c->mode == RNN_MODE_MANY_TO_MANY && !cJSON_IsArray(t0))
            return rnn_fail(err, "data.targets[0]: many_to_many needs an array with a target per step");
        O = probe ? step_width(probe) : -1;
        if (O < 1 || O > 65536)
            return rnn_fail(err, "data.targets[0]: must be a number or an array of numbers");
    } else {
        /* classes: whole numbers, or strings named by "labels" (or sorted) */
        int strings = cJSON_IsString(tg->child);
        if (labels) {
            if (!cJSON_IsArray(labels) || cJSON_GetArraySize(labels) < 2)
                return rnn_fail(err, "data.labels: must be an array of at least 2 strings");
            nnames = cJSON_GetArraySize(labels);
            names = rnn_xcalloc((size_t)nnames, sizeof(char *));
            int k = 0;
            for (const cJSON *l = labels->child; l; l = l->next, k++) {
                if (!cJSON_IsString(l)) {
                    rnn_fail(err, "data.labels[%d]: must be a string", k);
                    goto fail;
                }
                names[k] = strdup(l->valuestring);
            }
        } else if (strings) {
            names = rnn_xcalloc((size_t)n, sizeof(char *));
            int k = 0;
            for (const cJSON *l = tg->child; l; l = l->next, k++) {
                if (!cJSON_IsString(l)) {
                    rnn_fail(err, "data.targets[%d]: must be a label string like the first target", k);
                    goto fail;
                }
                int seen = 0;
                for (int j = 0; j < nnames && !seen; j++) seen = !strcmp(names[j], l->valuestring);
                if (!seen) names[nnames++] = strdup(l->valuestring);
            }
            qsort(names, (size_t)nnames, sizeof(char *), cmp_str);
        }
        if (names) {
            O = nnames;
        } else {
            int mx = -1, k = 0;
            for (const cJSON *l = tg->child; l; l = l->next, k++) {
                if (!cJSON_IsNumber(l) || l->valuedouble != floor(l->valuedouble) ||
                    l->valuedouble < 0 || l->valuedouble > 65535)
                    return rnn_fail(err, "data.targets[%d]: must be a class number in [0, 65535] or a label", k);
                if ((int)l->valuedouble > mx) mx = (int)l->valuedouble;
            }
            O = mx + 1 < 2 ? 2 : mx + 1;
        }
    }
    if (rnn_dataset_alloc(d, n, steps, tokens ? 0 : X, O, c->task, c->mode, err))
        goto fail;
    /* vocabulary for text sequences: given, or the sorted characters */
    if (tokens) {
        size_t total = 0;
        for (const cJSON *s = seqs->child; s; s = s->next) total += strlen(s->valuestring);
        if (vocab_in) {
            d->vocab = strdup(vocab_in);
        } else {
            char *all = malloc(total + 1);
            if (!all) { rnn_fail(err, "data: out of memory"); goto fail; }
            size_t p = 0;
            for (const cJSON *s = seqs->child; s; s = s->next) {
                size_t l = strlen(s->valuestring);
                memcpy(all + p, s->valuestring, l);
                p += l;
            }
            d->vocab = rnn_vocab_of(all, p);
            free(all);
        }
        if (!d->vocab) { rnn_fail(err, "data: out of memory"); goto fail; }
        d->vocab_n = rnn_utf8_decode(d->vocab, strlen(d->vocab), NULL, 0);
        X = d->vocab_n;
    }
    size_t off = 0;
    i = 0;
    for (const cJSON *s = seqs->child; s; s = s->next, i++) {
        d->off[i] = off;
        if (tokens) {
            const char *str = s->valuestring;
            size_t sl = strlen(str);
            int len = rnn_utf8_decode(str, sl, NULL, 0);
            uint32_t *cps = malloc((size_t)len * sizeof(uint32_t));
            if (!cps) { rnn_fail(err, "data: out of memory"); goto fail; }
            rnn_utf8_decode(str, sl, cps, (size_t)len);
            for (int t = 0; t < len; t++) {
                int k = rnn_vocab_index(d->vocab, cps[t]);
                if (k < 0) {
                    free(cps);
                    rnn_fail(err, "data.sequences[%d][%d]: character not in the model's vocabulary", i, t);
                    goto fail;
                }
                d->tok[off + t] = k;
            }
            free(cps);
            d->len[i] = len;
        } else {
            int t = 0;
            for (const cJSON *st = s->child; st; st = st->next, t++)
                if (put_step(st, X, d->x + (off + t) * X, "data.sequences", i, t, err))
                    goto fail;
            d->len[i] = t;
        }
        off += (size_t)d->len[i];
    }
    i = 0;
    for (const cJSON *y = tg->child; y; y = y->next, i++) {
        if (c->task == RNN_TASK_REGRESSION) {
            if (c->mode == RNN_MODE_MANY_TO_ONE) {
                if (put_step(y, O, d->y + (size_t)i * O, "data.targets", i, 0, err))
                    goto fail;
            } else {
                if (!cJSON_IsArray(y) || cJSON_GetArraySize(y) != d->len[i]) {
                    rnn_fail(err, "data.targets[%d]: needs one target per step (%d)", i, d->len[i]);
                    goto fail;
                }
                int t = 0;
                for (const cJSON *st = y->child; st; st = st->next, t++)
                    if (put_step(st, O, d->y + (d->off[i] + t) * O, "data.targets", i, t, err))
                        goto fail;
            }
        } else if (names) {
            int k = -1;
            if (cJSON_IsString(y))
                for (int j = 0; j < nnames && k < 0; j++)
                    if (!strcmp(names[j], y->valuestring)) k = j;
            if (cJSON_IsNumber(y) && y->valuedouble == floor(y->valuedouble) && y->valuedouble >= 0 &&
                y->valuedouble < nnames)
                k = (int)y->valuedouble;
            if (k < 0) {
                rnn_fail(err, "data.targets[%d]: not one of the labels", i);
                goto fail;
            }
            d->cls[i] = k;
        } else {
            d->cls[i] = (int32_t)y->valuedouble;
        }
    }
    if (names) {
        d->labels = names;
        d->nlabels = nnames;
        names = NULL;
    }
    c->input_size = X;
    c->output_size = O;
    c->tokens = tokens;
    if (!tokens)
        c->embedding = 0;
    rc = 0;
fail:
    if (names) {
        for (int k = 0; k < nnames; k++) free(names[k]);
        free(names);
    }
    if (rc)
        rnn_dataset_free(d);
    return rc;
}


/* The bytes rnn_job_dataset would allocate, from the spec alone: windows
 * of a series (inline, generated, or a CSV file at one value per two
 * bytes, an upper bound) overlap, so N values in windows of W take about
 * N x W floats; text takes a few bytes per character. Inline "sequences"
 * are no larger than the request that carried them: 0. */
double rnn_job_data_bytes(const rnn_job *job, const char *data_dir)
{
    const cJSON *dj = job->data, *v;
    const rnn_config *c = &job->cfg;
    const cJSON *wj = cJSON_GetObjectItemCaseSensitive(dj, "window");
    double w = cJSON_IsNumber(wj) && wj->valuedouble >= 1 ? wj->valuedouble : 0, values = 0;
    if (!dj || cJSON_GetObjectItemCaseSensitive(dj, "sequences"))
        return 0;
    if ((v = cJSON_GetObjectItemCaseSensitive(dj, "series")))  /* rows count their columns */
        values = (double)cJSON_GetArraySize(v) *
                 (v->child && cJSON_IsArray(v->child) ? cJSON_GetArraySize(v->child) : 1);
    else if ((v = cJSON_GetObjectItemCaseSensitive(dj, "generator"))) {
        const cJSON *sj = cJSON_GetObjectItemCaseSensitive(dj, "samples");
        w = wj ? w : 50;
        values = (cJSON_IsNumber(sj) ? sj->valuedouble : 200) + w;
    } else {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(dj, "text");
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(dj, "file");
        double bytes = cJSON_IsString(t) ? (double)strlen(t->valuestring) : 0;
        struct stat st;
        char path[4096];
        if (cJSON_IsString(f) && data_dir) {
            snprintf(path, sizeof path, "%s/%s", data_dir, f->valuestring);
            bytes = stat(path, &st) == 0 ? (double)st.st_size : 0;
        }
        if (c->task == RNN_TASK_CHARLM) /* windows side by side: about a token per byte */
            return rnn_dataset_bytes(w > 0 ? bytes / w : 0, bytes, 0, 0, c->task, RNN_MODE_MANY_TO_MANY);
        values = bytes / 2 + 1;
    }
    if (values <= w || w <= 0)
        return 0;
    return rnn_dataset_bytes(values - w, (values - w) * w, 1, 1, RNN_TASK_REGRESSION, c->mode);
}

/* The windows of a series (inline rows or a CSV text) and the sizes they give the model. */
static int series_windows(rnn_job *job, const cJSON *dj, const char *scope, const char *csv, int w,
                          rnn_dataset *d, rnn_err *err)
{
    rnn_config *c = &job->cfg;
    if (rnn_series_dataset(dj, scope, csv, job->base_series, w, c->mode, d, err))
        return -1;
    c->input_size = d->X;
    c->output_size = d->O;
    c->embedding = 0;
    c->tokens = 0;
    return 0;
}

/* The training settings that depend on the architecture (the job's, or
 * the base model's when fine-tuning), checked before any data is read;
 * rnn_train checks the same (rnn_train_fits). */
static int job_data(rnn_job *job, const char *vocab, const char *data_dir, rnn_dataset *d,
                    rnn_err *err);

int rnn_job_dataset(rnn_job *job, const char *vocab, const char *data_dir, rnn_dataset *d,
                    rnn_err *err)
{
    memset(d, 0, sizeof *d);
    return rnn_train_fits(&job->cfg, &job->train, err) ? -1 : job_data(job, vocab, data_dir, d, err);
}

static int job_data(rnn_job *job, const char *vocab, const char *data_dir, rnn_dataset *d,
                    rnn_err *err)
{
    const cJSON *dj = job->data;
    rnn_config *c = &job->cfg;
    int w = 0;
    if (!dj)
        return rnn_fail(err, "data: missing");
    if (cJSON_GetObjectItemCaseSensitive(dj, "sequences")) {
        if (rnn_fields_only(dj, "data.sequences", err))
            return -1;
        if (job->words)
            return rnn_fail(err, "tokens: words come as data.texts (or text), not sequences");
        return build_sequences(job, dj, vocab, d, err);
    }
    if (cJSON_GetObjectItemCaseSensitive(dj, "texts")) {
        if (rnn_fields_only(dj, "data.texts", err) || rnn_field_get(dj, "data.texts", "window", &w, err) < 0)
            return -1;
        if (c->task == RNN_TASK_REGRESSION)
            return rnn_fail(err, "data.texts: needs task lm or classify");
        return rnn_texts_dataset(job, dj, NULL, vocab, w, d, err);
    }
    if (c->task == RNN_TASK_CLASSIFY)
        return rnn_fail(err, "data: a classify job takes {\"texts\": [...], \"labels\": [...]} or "
                             "{\"sequences\": [...], \"targets\": [...]}");
    if (cJSON_GetObjectItemCaseSensitive(dj, "series")) {
        if (shape_of(dj, "data.series", &w, err))
            return -1;
        if (c->task != RNN_TASK_REGRESSION)
            return rnn_fail(err, "data.series: needs task regression");
        return series_windows(job, dj, "data.series", NULL, w, d, err);
    }
    if (cJSON_GetObjectItemCaseSensitive(dj, "text") || cJSON_GetObjectItemCaseSensitive(dj, "file")) {
        const int is_file = cJSON_GetObjectItemCaseSensitive(dj, "file") != NULL;
        const char *scope = is_file ? "data.file" : "data.text";
        if (shape_of(dj, scope, &w, err))
            return -1;
        const char *name = NULL;
        if (rnn_field_get(dj, scope, is_file ? "file" : "text", &name, err) < 0)
            return -1;
        size_t len = strlen(name);
        char *buf = NULL;
        if (is_file && !(buf = read_data_file(data_dir, name, &len, err)))
            return -1;
        const char *text = is_file ? buf : name;
        int rc;
        if (c->task == RNN_TASK_CHARLM) {
            for (const char *const *k = (const char *const[]){"columns", "target", "normalize", NULL}; *k; k++)
                if (cJSON_GetObjectItemCaseSensitive(dj, *k)) {
                    free(buf);
                    return rnn_fail(err, "data.%s: only for a series (a CSV file of numbers), not text", *k);
                }
            if (strlen(text) != len) {
                free(buf);
                return rnn_fail(err, "data.%s: contains a NUL byte", is_file ? "file" : "text");
            }
            rc = rnn_texts_dataset(job, dj, text, vocab, w, d, err);
        } else if (is_file) {
            rc = strlen(text) != len ? rnn_fail(err, "data.file: contains a NUL byte")
                                     : series_windows(job, dj, "data.file", text, w, d, err);
        } else {
            rc = rnn_fail(err, "data.text: needs task lm");
        }
        free(buf);
        return rc;
    }
    if (cJSON_GetObjectItemCaseSensitive(dj, "generator")) {
        if (rnn_fields_only(dj, "data.generator", err))
            return -1;
        const char *g = NULL;
        if (rnn_field_get(dj, "data.generator", "generator", &g, err) < 0)
            return -1;
        if (strcmp(g, "sine"))
            return rnn_fail(err, "data.generator: must be \"sine\", got \"%s\"", g);
        if (c->task != RNN_TASK_REGRESSION)
            return rnn_fail(err, "data.generator: the sine generator needs task regression");
        int samples = 200;
        w = 50;
        if (rnn_field_get(dj, "data.generator", "samples", &samples, err) < 0 ||
            rnn_field_get(dj, "data.generator", "window", &w, err) < 0)
            return -1;
        int rc = rnn_dataset_sine(d, samples, w, c->mode, err);
        if (rc == 0) { c->input_size = 1; c->output_size = 1; c->embedding = 0; c->tokens = 0; }
        return rc;
    }
    return rnn_fail(err, "data: needs one of sequences, series, text, file, generator");
}
