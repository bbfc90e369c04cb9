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

char *metrics_render(registry *r, job_pool *p)
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
    pthread_mutex_unlock(&lock);
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
