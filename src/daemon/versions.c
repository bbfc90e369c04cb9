/*
 * DESIGN: kept model versions. Every version a daemon serves is also a file
 * STATE/versions/NAME/N.safetensors (STATE is state_dir, by default
 * model_dir/.rnnd), written before it is served, so that a rollback, a
 * request for an older version or a restart finds it. model_dir/NAME.safetensors
 * stays the served version, a byte copy of its kept file: a restart tells
 * "the version I served" (the same bytes as the kept file of its number)
 * from a file someone dropped in (a new version). The newest keep_versions
 * are kept, and always the served one.
 */
#include "daemon.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char state[1100];

/* mkdir -p of one more level; 0 if it exists afterwards */
static int mkdir_one(const char *path)
{
    return mkdir(path, 0755) == 0 || errno == EEXIST ? 0 : -1;
}

const char *state_dir(void) { return state; }

int versions_init(const rnnd_config *cfg)
{
    if (cfg->state_dir[0])
        snprintf(state, sizeof state, "%s", cfg->state_dir);
    else
        snprintf(state, sizeof state, "%s/.rnnd", cfg->model_dir);
    char p[1200];
    snprintf(p, sizeof p, "%s/versions", state);
    if (mkdir_one(state) || mkdir_one(p)) {
        rnnd_log(LOG_ERROR, "state_dir %s: %s", state, strerror(errno));
        return -1;
    }
    return 0;
}

static void name_dir(const char *name, char *buf, size_t n)
{
    snprintf(buf, n, "%s/versions/%s", state, name);
}

void versions_path(const char *name, long v, char *buf, size_t n)
{
    snprintf(buf, n, "%s/versions/%s/%ld.safetensors", state, name, v);
}

static int cmp_long(const void *a, const void *b)
{
    const long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

int versions_list(const char *name, long **out)
{
    char d[1200];
    name_dir(name, d, sizeof d);
    *out = NULL;
    DIR *dir = opendir(d);
    if (!dir)
        return 0;
    int n = 0, cap = 0;
    long *a = NULL;
    struct dirent *e;
    while ((e = readdir(dir))) {
        char *end;
        const long v = strtol(e->d_name, &end, 10);
        if (v < 1 || strcmp(end, ".safetensors") || e->d_name[0] == '0')
            continue;
        if (n == cap) {
            long *b = realloc(a, (size_t)(cap = cap ? 2 * cap : 16) * sizeof *a);
            if (!b)
                break;
            a = b;
        }
        a[n++] = v;
    }
    closedir(dir);
    if (n)
        qsort(a, (size_t)n, sizeof *a, cmp_long);
    *out = a;
    return n;
}

long versions_max(const char *name)
{
    long *a;
    const int n = versions_list(name, &a);
    const long v = n > 0 ? a[n - 1] : 0;
    free(a);
    return v;
}

/* Does the model file at path hold m's weights? */
static int same_weights(const char *path, const rnn_model *m)
{
    rnn_model k;
    rnn_meta km;
    rnn_err e;
    if (rnn_model_load(path, &k, &km, &e))
        return 0;
    const int same = k.nparams == m->nparams && !memcmp(k.params, m->params, m->nparams * sizeof(float));
    rnn_model_free(&k);
    rnn_meta_free(&km);
    return same;
}

long versions_keep(const char *name, long v, const rnn_model *m, rnn_meta *meta, rnn_err *err)
{
    char d[1200], p[1300];
    name_dir(name, d, sizeof d);
    if (mkdir_one(d)) {
        snprintf(err->msg, sizeof err->msg, "%.400s: %s", d, strerror(errno));
        return 0;
    }
    /* created only where no file is: a replica on the same state_dir that
     * took the number first keeps it, and this one takes the next, unless
     * that replica kept these very weights (both adopted one file dropped
     * into model_dir), whose number they then share */
    for (int tries = 0; tries < 1000; tries++, v++) {
        if (v <= versions_max(name))
            v = versions_max(name) + 1;
        meta->version = v;
        versions_path(name, v, p, sizeof p);
        const int rc = rnn_model_save_new(p, m, meta, err);
        if (rc == 0 || (rc == 1 && same_weights(p, m)))
            return v;
        if (rc < 0)
            return 0;
    }
    snprintf(err->msg, sizeof err->msg, "model %s: no free version number after %ld", name, v);
    return 0;
}

/* The whole file, or NULL. */
static unsigned char *slurp(const char *path, size_t *len)
{
    rnn_err err;
    return rnn_file_read(path, (size_t)1 << 40, len, &err);
}

int versions_same(const char *name, long v, const char *path)
{
    char p[1300];
    versions_path(name, v, p, sizeof p);
    size_t la, lb;
    unsigned char *a = slurp(p, &la), *b = slurp(path, &lb);
    const int same = a && b && la == lb && !memcmp(a, b, la);
    free(a);
    free(b);
    return same;
}

int versions_serve_file(const char *name, long v, const char *model_dir, long long *stamp, rnn_err *err)
{
    char p[1300], out[1200];
    versions_path(name, v, p, sizeof p);
    snprintf(out, sizeof out, "%s/%s.safetensors", model_dir, name);
    size_t len;
    unsigned char *b = rnn_file_read(p, (size_t)1 << 40, &len, err);
    if (!b)
        return -1;
    const rnn_span part = {b, len};
    unsigned long long id[2] = {0, 0};
    const int rc = rnn_file_replace_id(out, &part, 1, id, err);
    if (stamp)
        *stamp = file_stamp_of(id[0], id[1]);
    free(b);
    return rc;
}

int versions_prune(const char *name, int keep, long served, long *gone, int max_gone)
{
    if (keep <= 0)
        return 0;
    long *a;
    const int n = versions_list(name, &a);
    int k = 0;
    /* a[0..n) ascending: all but the newest `keep` go, the served one stays */
    for (int i = 0; i < n - keep; i++) {
        if (a[i] == served)
            continue;
        char p[1300];
        versions_path(name, a[i], p, sizeof p);
        if (unlink(p) == 0 && k < max_gone)
            gone[k++] = a[i];
    }
    free(a);
    return k;
}

int versions_remove_stale_temps(void)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/versions", state);
    DIR *d = opendir(p);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' && rnn_name_ok(e->d_name)) {
            char sub[1500];
            snprintf(sub, sizeof sub, "%s/%s", p, e->d_name);
            n += rnn_remove_stale_temps(sub);
        }
    closedir(d);
    snprintf(p, sizeof p, "%s/jobs", state);
    return n + rnn_remove_stale_temps(p);
}
