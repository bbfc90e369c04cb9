/*
 * DESIGN: the model registry. Each name maps to its current version, an
 * immutable served_model. Readers take a reference under the lock and use
 * the model without it; a new version replaces the pointer under the lock
 * and drops the registry's reference to the old one, which is freed when
 * the last prediction using it finishes. So a prediction never waits for
 * training, and predictions in flight finish on the version they began with.
 *
 * Older versions (versions.c keeps them on disk) are loaded on request into
 * a small cache, least recently used out, so that "version": N in a request
 * costs one load and not one per request.
 */
#include "daemon.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_MODELS 1024
#define KEPT_CACHE 8
#define FAILED_MAX 64

struct registry {
    pthread_mutex_t lock;
    pthread_mutex_t publish;    /* a job's number, save and put; a reload; a rollback */
    int n;
    served_model *slot[MAX_MODELS];
    served_model *kept[KEPT_CACHE];     /* versions not served, loaded on request */
    unsigned long used[KEPT_CACHE], clock;
    /* files that did not load, by name and mtime: a watcher's scan leaves
     * them until they change (a copy still being written, a broken file) */
    struct { char name[65]; long long mtime_ns; } failed[FAILED_MAX];
    int nfailed;
};

/* Did name fail to load at this mtime? With remember, note that it did. */
static int failed_before(registry *r, const char *name, long long mt, int remember)
{
    for (int i = 0; i < r->nfailed; i++)
        if (!strcmp(r->failed[i].name, name)) {
            const int same = r->failed[i].mtime_ns == mt;
            if (remember)
                r->failed[i].mtime_ns = mt;
            return same;
        }
    if (remember) {
        const int i = r->nfailed < FAILED_MAX ? r->nfailed++ : (int)(mt % FAILED_MAX);
        snprintf(r->failed[i].name, sizeof r->failed[i].name, "%s", name);
        r->failed[i].mtime_ns = mt;
    }
    return 0;
}

registry *registry_new(void)
{
    registry *r = calloc(1, sizeof *r);
    if (r) {
        pthread_mutex_init(&r->lock, NULL);
        pthread_mutex_init(&r->publish, NULL);
    }
    return r;
}

void served_release(served_model *s)
{
    if (s && atomic_fetch_sub(&s->refs, 1) == 1) {
        rnn_model_free(&s->m);
        rnn_meta_free(&s->meta);
        free(s);
    }
}

void registry_free(registry *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n; i++)
        served_release(r->slot[i]);
    for (int i = 0; i < KEPT_CACHE; i++)
        served_release(r->kept[i]);
    pthread_mutex_destroy(&r->lock);
    pthread_mutex_destroy(&r->publish);
    free(r);
}

static int find(registry *r, const char *name)
{
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->slot[i]->name, name))
            return i;
    return -1;
}

served_model *registry_get(registry *r, const char *name)
{
    pthread_mutex_lock(&r->lock);
    int i = find(r, name);
    served_model *s = i >= 0 ? r->slot[i] : NULL;
    if (s)
        atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&r->lock);
    return s;
}

served_model *registry_only(registry *r)
{
    pthread_mutex_lock(&r->lock);
    served_model *s = r->n == 1 ? r->slot[0] : NULL;
    if (s)
        atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&r->lock);
    return s;
}

void registry_publish_lock(registry *r) { pthread_mutex_lock(&r->publish); }
void registry_publish_unlock(registry *r) { pthread_mutex_unlock(&r->publish); }

long registry_next_version(registry *r, const char *name)
{
    pthread_mutex_lock(&r->lock);
    const int i = find(r, name);
    const long served = i >= 0 ? r->slot[i]->version : 0;
    pthread_mutex_unlock(&r->lock);
    /* past the served one and past every one kept (a rollback serves an
     * older number; the next job's must still be new) */
    const long kept = versions_max(name);
    return (served > kept ? served : kept) + 1;
}

static served_model *wrap(const char *name, rnn_model *m, rnn_meta *meta, long long mtime_ns,
                          long version)
{
    served_model *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    snprintf(s->name, sizeof s->name, "%s", name);
    s->m = *m;
    s->meta = *meta;
    memset(m, 0, sizeof *m);
    rnn_meta_init(meta);
    s->file_stamp = mtime_ns;
    atomic_init(&s->refs, 1);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(s->loaded_at, sizeof s->loaded_at, "%Y-%m-%dT%H:%M:%SZ", &tm);
    s->version = version;
    return s;
}

long registry_put(registry *r, const char *name, rnn_model *m, rnn_meta *meta, long long mtime_ns,
                  long version)
{
    served_model *s = wrap(name, m, meta, mtime_ns, version), *old = NULL;
    if (!s)
        return -1;
    pthread_mutex_lock(&r->lock);
    int i = find(r, name);
    if (i >= 0) {
        old = r->slot[i];
        r->slot[i] = s;
    } else if (r->n < MAX_MODELS) {
        r->slot[r->n++] = s;
    } else {
        pthread_mutex_unlock(&r->lock);
        rnn_model_free(&s->m);
        rnn_meta_free(&s->meta);
        free(s);
        return -1;
    }
    long v = s->version;
    pthread_mutex_unlock(&r->lock);
    served_release(old);
    return v;
}

served_model *registry_get_version(registry *r, const char *name, long version)
{
    pthread_mutex_lock(&r->lock);
    const int i = find(r, name);
    served_model *s = i >= 0 && r->slot[i]->version == version ? r->slot[i] : NULL;
    for (int k = 0; !s && k < KEPT_CACHE; k++)
        if (r->kept[k] && r->kept[k]->version == version && !strcmp(r->kept[k]->name, name)) {
            s = r->kept[k];
            r->used[k] = ++r->clock;
        }
    if (s)
        atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&r->lock);
    if (s || i < 0)
        return s;
    /* not in memory: load it from its kept file, outside the lock */
    char path[1300];
    versions_path(name, version, path, sizeof path);
    rnn_model m;
    rnn_meta meta;
    rnn_err err;
    if (rnn_model_load(path, &m, &meta, &err))
        return NULL;
    if (!(s = wrap(name, &m, &meta, 0, version))) {
        rnn_model_free(&m);
        rnn_meta_free(&meta);
        return NULL;
    }
    served_model *out = NULL;
    pthread_mutex_lock(&r->lock);
    int k = 0;      /* an empty slot, else the least recently used */
    for (int j = 0; j < KEPT_CACHE; j++) {
        if (!r->kept[j]) {
            k = j;
            break;
        }
        if (r->used[j] < r->used[k])
            k = j;
    }
    out = r->kept[k];
    r->kept[k] = s;
    r->used[k] = ++r->clock;
    atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&r->lock);
    served_release(out);
    return s;
}

void registry_forget(registry *r, const char *name, const long *versions, int n)
{
    served_model *drop[KEPT_CACHE] = {0};
    pthread_mutex_lock(&r->lock);
    for (int k = 0; k < KEPT_CACHE; k++)
        for (int j = 0; r->kept[k] && j < n; j++)
            if (r->kept[k]->version == versions[j] && !strcmp(r->kept[k]->name, name)) {
                drop[k] = r->kept[k];
                r->kept[k] = NULL;
                break;
            }
    pthread_mutex_unlock(&r->lock);
    for (int k = 0; k < KEPT_CACHE; k++)
        served_release(drop[k]);
}

int registry_list(registry *r, served_model ***out)
{
    pthread_mutex_lock(&r->lock);
    int n = r->n;
    served_model **a = calloc((size_t)n + 1, sizeof *a);
    for (int i = 0; a && i < n; i++) {
        a[i] = r->slot[i];
        atomic_fetch_add(&a[i]->refs, 1);
    }
    pthread_mutex_unlock(&r->lock);
    *out = a;
    return a ? n : 0;
}

long long file_stamp_of(unsigned long long mtime_ns, unsigned long long ino)
{
    /* mixed, not added: two files differ in one or the other */
    return (long long)((mtime_ns ^ (ino * 0x9e3779b97f4a7c15ULL)) & 0x7fffffffffffffffULL);
}

long long file_stamp(const char *path)
{
    struct stat st;
    if (stat(path, &st))
        return -1;
    return file_stamp_of((unsigned long long)st.st_mtim.tv_sec * 1000000000ULL + (unsigned long long)st.st_mtim.tv_nsec,
                         (unsigned long long)st.st_ino);
}

/* The modification time of path in ns, -1 if it cannot be read. */
static long long mtime_ns_of(const char *path)
{
    struct stat st;
    if (stat(path, &st))
        return -1;
    return (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
}

int registry_load_dir(registry *r, const char *dir) { return registry_scan(r, dir, 0, NULL); }

int registry_scan(registry *r, const char *dir, double settle_s, int *fresh)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    const long long now_ns = (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
    if (fresh)
        *fresh = 0;
    DIR *d = opendir(dir);
    if (!d) {
        rnnd_log(LOG_WARN, "model_dir %s: cannot open it; no models loaded", dir);
        return 0;
    }
    int loaded = 0;
    struct dirent *e;
    const char *ext = ".safetensors";
    registry_publish_lock(r);
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name), el = strlen(ext);
        if (l <= el || strcmp(e->d_name + l - el, ext) || e->d_name[0] == '.')
            continue;
        char name[65], path[2048];
        if (l - el >= sizeof name) {
            rnnd_log(LOG_WARN, "%s/%s: name too long for a model, skipped", dir, e->d_name);
            continue;
        }
        memcpy(name, e->d_name, l - el);
        name[l - el] = 0;
        if (!rnn_name_ok(name)) {
            rnnd_log(LOG_WARN, "%s/%s: not a valid model name, skipped", dir, e->d_name);
            continue;
        }
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        long long mt = file_stamp(path), age = now_ns - mtime_ns_of(path);
        if (mt < 0)
            continue;
        served_model *cur = registry_get(r, name);
        int same = cur && cur->file_stamp == mt;
        served_release(cur);
        if (same)
            continue;
        const int young = age < (long long)(settle_s * 1e9);
        if (settle_s > 0 && (young || failed_before(r, name, mt, 0))) {
            /* changed a moment ago (perhaps still being copied in), or
             * broken and not changed since: a later scan looks again */
            rnnd_log(LOG_DEBUG, "model %s: %s, left for a later scan", name,
                     young ? "changed a moment ago" : "did not load and has not changed since");
            if (fresh && young)
                ++*fresh;
            continue;
        }
        rnn_model m;
        rnn_meta meta;
        rnn_err err;
        if (rnn_model_load(path, &m, &meta, &err)) {
            rnnd_log(LOG_ERROR, "model %s not loaded: %s", name, err.msg);
            failed_before(r, name, mt, 1);
            continue;
        }
        /* the version it was (the bytes of its kept file), or a new one */
        long v = meta.version;
        if (!(v > 0 && versions_same(name, v, path))) {
            const long next = registry_next_version(r, name);
            v = meta.version > next ? meta.version : next;
            meta.version = v;
            const long kept = versions_keep(name, v, &m, &meta, &err);
            if (kept > 0)
                v = kept;
            if (kept <= 0 || versions_serve_file(name, v, dir, &mt, &err))
                rnnd_log(LOG_WARN, "model %s version %ld is served but not kept: %s", name, v, err.msg);
        }
        v = registry_put(r, name, &m, &meta, mt, v);
        rnnd_log(LOG_INFO, "model %s loaded from %s (version %ld)", name, path, v);
        loaded++;
    }
    registry_publish_unlock(r);
    closedir(d);
    return loaded;
}

int registry_serve(registry *r, const char *name, long version, const char *model_dir, rnn_err *err)
{
    char kept[1300];
    versions_path(name, version, kept, sizeof kept);
    rnn_model m;
    rnn_meta meta;
    registry_publish_lock(r);
    int rc = -1;
    if (access(kept, F_OK) != 0) {
        snprintf(err->msg, sizeof err->msg, "model \"%s\" has no version %ld", name, version);
    } else if (rnn_model_load(kept, &m, &meta, err) == 0) {
        /* the file first: a restart serves what this call serves */
        long long stamp;
        if (versions_serve_file(name, version, model_dir, &stamp, err) == 0 &&
            registry_put(r, name, &m, &meta, stamp, version) > 0) {
            rc = 0;
        } else {
            rnn_model_free(&m);
            rnn_meta_free(&meta);
        }
    }
    registry_publish_unlock(r);
    return rc;
}
