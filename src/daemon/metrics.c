/* Prometheus metrics: requests by route and status, a latency histogram,
 * jobs by state, models and their versions. Counters sit behind one mutex;
 * they are touched once per request. */
#include "daemon.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SERIES 128
static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                 0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NB ((int)(sizeof buckets / sizeof buckets[0]))

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct { char route[32]; int status; unsigned long long n; } series[MAX_SERIES];
static int nseries;
static unsigned long long hist[NB + 1], hist_count;
static double hist_sum;
#define MAX_MODELS_SEEN 64
static struct { char model[65]; unsigned long long requests, inferences, executions; } per_model[MAX_MODELS_SEEN];
static int nmodels;
static double queue_sum;
static unsigned long long queue_count;

void metrics_queue(double seconds)
{
    pthread_mutex_lock(&lock);
    queue_sum += seconds;
    queue_count++;
    pthread_mutex_unlock(&lock);
}

void metrics_inference(const char *model, int sequences, int passes)
{
    pthread_mutex_lock(&lock);
    int i = 0;
    while (i < nmodels && strcmp(per_model[i].model, model)) i++;
    if (i == nmodels && nmodels < MAX_MODELS_SEEN)
        snprintf(per_model[nmodels++].model, sizeof per_model[0].model, "%s", model);
    if (i < nmodels) {
        per_model[i].requests++;
        per_model[i].inferences += (unsigned long long)sequences;
        per_model[i].executions += (unsigned long long)passes;
    }
    pthread_mutex_unlock(&lock);
}

void metrics_request(const char *route, int status, double seconds)
{
    pthread_mutex_lock(&lock);
    int i = 0;
    while (i < nseries && (series[i].status != status || strcmp(series[i].route, route))) i++;
    if (i == nseries && nseries < MAX_SERIES) {
        snprintf(series[i].route, sizeof series[i].route, "%s", route);
        series[i].status = status;
        nseries++;
    }
    if (i < nseries) series[i].n++;
    int b = 0;
    while (b < NB && seconds > buckets[b]) b++;
    hist[b]++;
    hist_count++;
    hist_sum += seconds;
    pthread_mutex_unlock(&lock);
}

typedef struct buf { char *p; size_t n, cap; } buf;

static void put(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(buf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int w = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (w < 0) return;
        if (b->p && b->n + (size_t)w < b->cap) { b->n += (size_t)w; return; }
        size_t nc = (b->cap ? b->cap * 2 : 4096) + (size_t)w;
        char *np = realloc(b->p, nc);
        if (!np) return;
        b->p = np;
        b->cap = nc;
    }
}

char *metrics_render(registry *r, job_pool *p, int sessions)
{
    buf b = {0};
    put(&b, "# HELP rnnd_http_requests_total HTTP requests by route and status.\n"
            "# TYPE rnnd_http_requests_total counter\n");
    pthread_mutex_lock(&lock);
    for (int i = 0; i < nseries; i++)
        put(&b, "rnnd_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n", series[i].route,
            series[i].status, series[i].n);
    put(&b, "# HELP rnnd_http_request_duration_seconds Time to answer a request.\n"
            "# TYPE rnnd_http_request_duration_seconds histogram\n");
    unsigned long long cum = 0;
    for (int i = 0; i < NB; i++) {
        cum += hist[i];
        put(&b, "rnnd_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n", buckets[i], cum);
    }
    put(&b, "rnnd_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n", hist_count);
    put(&b, "rnnd_http_request_duration_seconds_sum %.6f\n", hist_sum);
    put(&b, "rnnd_http_request_duration_seconds_count %llu\n", hist_count);
    /* as Triton names them: requests, sequences (inference count) and passes
     * through the model (execution count); their ratio is the batch size */
    static const struct { const char *name, *help; } pm[] = {
        {"rnnd_model_requests_total", "Prediction requests answered, by model."},
        {"rnnd_model_inference_count", "Sequences predicted, by model."},
        {"rnnd_model_execution_count", "Passes through the model (a batch is one), by model."},
    };
    for (int k = 0; k < 3; k++) {
        put(&b, "# HELP %s %s\n# TYPE %s counter\n", pm[k].name, pm[k].help, pm[k].name);
        for (int i = 0; i < nmodels; i++)
            put(&b, "%s{model=\"%s\"} %llu\n", pm[k].name, per_model[i].model,
                k == 0 ? per_model[i].requests : k == 1 ? per_model[i].inferences : per_model[i].executions);
    }
    put(&b, "# HELP rnnd_predict_queue_seconds Time predictions waited for a worker.\n"
            "# TYPE rnnd_predict_queue_seconds summary\nrnnd_predict_queue_seconds_sum %.6f\n"
            "rnnd_predict_queue_seconds_count %llu\n", queue_sum, queue_count);
    pthread_mutex_unlock(&lock);
    put(&b, "# HELP rnnd_sessions_active Streaming sessions open.\n# TYPE rnnd_sessions_active gauge\n"
            "rnnd_sessions_active %d\n", sessions);
    int counts[5];
    pool_counts(p, counts);
    put(&b, "# HELP rnnd_jobs Training jobs by state.\n# TYPE rnnd_jobs gauge\n");
    for (int s = 0; s < 5; s++)
        put(&b, "rnnd_jobs{state=\"%s\"} %d\n", job_state_name((job_state)s), counts[s]);
    served_model **ms;
    int n = registry_list(r, &ms);
    put(&b, "# HELP rnnd_models Models loaded.\n# TYPE rnnd_models gauge\nrnnd_models %d\n", n);
    put(&b, "# HELP rnnd_model_version Version served for each model.\n# TYPE rnnd_model_version gauge\n");
    for (int i = 0; i < n; i++) {
        put(&b, "rnnd_model_version{model=\"%s\"} %ld\n", ms[i]->name, ms[i]->version);
        served_release(ms[i]);
    }
    free(ms);
    return b.p;
}
