/*
 * DESIGN: the model registry. Each name maps to its current version, an
 * immutable served_model. Readers take a reference under the lock and use
 * the model without it; a new version replaces the pointer under the lock
 * and drops the registry's reference to the old one, which is freed when
 * the last prediction using it finishes. So a prediction never waits for
 * training, and predictions in flight finish on the version they began with.
 */
#include "daemon.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define MAX_MODELS 1024

struct registry {
    pthread_mutex_t lock;
    pthread_mutex_t publish;    /* a job's number, save and put; a reload */
    int n;
    served_model *slot[MAX_MODELS];
};

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
    const long v = i >= 0 ? r->slot[i]->version + 1 : 1;
    pthread_mutex_unlock(&r->lock);
    return v;
}

long registry_put(registry *r, const char *name, rnn_model *m, rnn_meta *meta, long long mtime_ns)
{
    served_model *s = calloc(1, sizeof *s);
    if (!s)
        return -1;
    snprintf(s->name, sizeof s->name, "%s", name);
    s->m = *m;
    s->meta = *meta;
    memset(m, 0, sizeof *m);
    rnn_meta_init(meta);
    s->file_mtime_ns = mtime_ns;
    atomic_init(&s->refs, 1);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(s->loaded_at, sizeof s->loaded_at, "%Y-%m-%dT%H:%M:%SZ", &tm);
    served_model *old = NULL;
    pthread_mutex_lock(&r->lock);
    int i = find(r, name);
    /* the number the file carries (a job's, or one kept across a restart),
     * unless it would not move past the version served */
    const long next = i >= 0 ? r->slot[i]->version + 1 : 1;
    s->version = s->meta.version >= next ? s->meta.version : next;
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

long long file_mtime_ns(const char *path)
{
    struct stat st;
    if (stat(path, &st))
        return -1;
    return (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
}

int registry_load_dir(registry *r, const char *dir)
{
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
        long long mt = file_mtime_ns(path);
        if (mt < 0)
            continue;
        served_model *cur = registry_get(r, name);
        int same = cur && cur->file_mtime_ns == mt;
        served_release(cur);
        if (same)
            continue;
        rnn_model m;
        rnn_meta meta;
        rnn_err err;
        if (rnn_model_load(path, &m, &meta, &err)) {
            rnnd_log(LOG_ERROR, "model %s not loaded: %s", name, err.msg);
            continue;
        }
        long v = registry_put(r, name, &m, &meta, mt);
        rnnd_log(LOG_INFO, "model %s loaded from %s (version %ld)", name, path, v);
        loaded++;
    }
    registry_publish_unlock(r);
    closedir(d);
    return loaded;
}
