/*
 * The daemon's configuration: one table of keys with type, default, range
 * and a comment. A config file is `key = value` lines with `#` comments; a
 * bad line stops start-up with FILE:LINE, the message and the line itself.
 * Environment variables (RNND_KEY) and command-line flags (--key value) use the
 * same table; flags win over the environment, which wins over the file.
 */
#include "daemon.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* T_ADDR: a string that must be an IPv4 or IPv6 address */
typedef enum { T_STR, T_ADDR, T_INT, T_LOG } ktype;

typedef struct key {
    const char *name;
    ktype type;
    size_t off, size;
    long lo, hi;
    const char *comment;
} key;

#define S(f) offsetof(rnnd_config, f), sizeof(((rnnd_config *)0)->f)
static const key keys[] = {
    {"listen", T_ADDR, S(listen), 0, 0, "address to bind, IPv4 or IPv6 (0.0.0.0 or :: listens on every interface)"},
    {"port", T_INT, S(port), 0, 65535, "TCP port (0 picks a free one and logs it)"},
    {"model_dir", T_STR, S(model_dir), 0, 0, "folder of NAME.safetensors files; trained models are saved here"},
    {"data_dir", T_STR, S(data_dir), 0, 0, "folder that {\"file\": NAME} training data is read from"},
    {"state_dir", T_STR, S(state_dir), 0, 0, "folder of kept model versions, job records and checkpoints (empty: model_dir/.rnnd)"},
    {"keep_versions", T_INT, S(keep_versions), 0, 1000000, "versions of each model kept on disk, the newest (0 keeps all); the served one is always kept"},
    {"train_command", T_STR, S(train_command), 0, 0, "run each job as this command plus rnnd train's arguments, e.g. \"mpirun -np 4 rnnd train\", in a process group of its own (\"\": on the daemon's own threads)"},
    {"watch_s", T_INT, S(watch_s), 0, 3600, "seconds within which a version another replica wrote into model_dir is served (inotify, and a scan this often for network file systems); 0: only on SIGHUP"},
    {"checkpoint_s", T_INT, S(checkpoint_s), 1, 86400, "seconds between a running job's checkpoints; it also writes one at every epoch end and on SIGTERM"},
    {"http_threads", T_INT, S(http_threads), 1, 256, "HTTP worker threads (default: number of cores)"},
    {"train_workers", T_INT, S(train_workers), 1, 64, "training jobs that run at once"},
    {"train_threads", T_INT, S(train_threads), 0, 1024, "threads that share one job's batches (0: every core)"},
    {"train_nice", T_INT, S(train_nice), 0, 19, "nice value of training threads, so HTTP threads come first"},
    {"train_queue", T_INT, S(train_queue), 0, 100000, "training jobs that may wait; more get 429"},
    {"max_body_bytes", T_INT, S(max_body_bytes), 1024, 1L << 30, "largest request body; larger gets 413"},
    {"max_upload_bytes", T_INT, S(max_upload_bytes), 1024, 1L << 36, "largest data file PUT /data/NAME takes; larger gets 413"},
    {"max_sequence_length", T_INT, S(max_sequence_length), 1, 10000000, "most steps in one sequence"},
    {"max_batch", T_INT, S(max_batch), 1, 1000000, "most sequences in one predict request"},
    {"predict_workers", T_INT, S(predict_workers), 1, 256, "threads that run predictions (default: number of cores)"},
    {"batch_max", T_INT, S(batch_max), 1, 4096, "most concurrent predictions of one model run as one batched pass"},
    {"batch_delay_us", T_INT, S(batch_delay_us), 0, 1000000, "microseconds a prediction may wait for others to batch with (0: only those already waiting)"},
    {"max_job_bytes", T_INT, S(max_job_bytes), 1L << 20, 1L << 50, "most bytes of training data one job builds, and all queued or running jobs together (default: a quarter of the memory); more gets 413 (one job) or 429 (the queue)"},
    {"max_predict_work", T_INT, S(max_predict_work), 1000, 1L << 50, "most steps x sequences x parameters in one prediction; more gets 413"},
    {"loss_history_max", T_INT, S(loss_history_max), 2, 10000000, "loss points kept per job and per model"},
    {"auth_token", T_STR, S(auth_token), 0, 0, "if set, /train, /data, /admin and model changes need Authorization: Bearer TOKEN"},
    {"log_level", T_LOG, S(log_level), 0, 0, "error, warn, info or debug"},
    {"connection_limit", T_INT, S(connection_limit), 1, 1000000, "open connections at most"},
    {"per_ip_limit", T_INT, S(per_ip_limit), 0, 1000000, "open connections per client address (0: no limit)"},
    {"connection_timeout", T_INT, S(connection_timeout), 1, 86400, "seconds an idle connection is kept"},
    {"request_timeout", T_INT, S(request_timeout), 1, 86400, "seconds a client has to send a whole request (headers and body), from connecting or from its last reply"},
    {"drain_timeout", T_INT, S(drain_timeout), 0, 3600, "seconds SIGTERM waits for requests in flight"},
    {"max_sessions", T_INT, S(max_sessions), 1, 10000000, "streaming sessions open at once; more gets 429"},
    {"session_idle_s", T_INT, S(session_idle_s), 1, 604800, "seconds a session may sit idle before it ends"},
};
#undef S
#define NKEYS (sizeof keys / sizeof keys[0])

void rnnd_config_defaults(rnnd_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->listen, sizeof c->listen, "127.0.0.1");
    c->port = 8080;
    snprintf(c->model_dir, sizeof c->model_dir, "models");
    snprintf(c->data_dir, sizeof c->data_dir, "data");
    c->keep_versions = 5;
    c->watch_s = 2;
    c->checkpoint_s = 30;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    c->http_threads = n > 0 && n < 256 ? (int)n : 2;
    c->train_workers = 1;
    c->train_threads = 0;
    c->train_nice = 10;
    c->train_queue = 16;
    c->max_body_bytes = 8388608;
    c->max_upload_bytes = 268435456;
    c->max_sequence_length = 10000;
    c->max_batch = 256;
    c->max_predict_work = 2000000000L;
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    c->max_job_bytes = pages > 0 && page > 0 ? pages / 4 * page : 1L << 30;
    c->predict_workers = c->http_threads;
    c->batch_max = 64;
    c->batch_delay_us = 0;
    c->loss_history_max = 1000;
    c->log_level = LOG_INFO;
    c->connection_limit = 1024;
    c->per_ip_limit = 256;
    c->connection_timeout = 30;
    c->drain_timeout = 30;
    c->request_timeout = 10;
    c->max_sessions = 10000;
    c->session_idle_s = 300;
}

int rnnd_config_set(rnnd_config *c, const char *name, const char *value, char *err, size_t errlen)
{
    for (size_t i = 0; i < NKEYS; i++) {
        const key *k = &keys[i];
        if (strcmp(k->name, name))
            continue;
        char *p = (char *)c + k->off;
        if (k->type == T_STR || k->type == T_ADDR) {
            if (strlen(value) >= k->size) {
                snprintf(err, errlen, "%s: longer than %zu characters", name, k->size - 1);
                return -1;
            }
            unsigned char a[16];
            if (k->type == T_ADDR && inet_pton(strchr(value, ':') ? AF_INET6 : AF_INET, value, a) != 1) {
                snprintf(err, errlen, "%s: must be an IPv4 or IPv6 address such as 127.0.0.1 or ::1, got \"%.80s\"",
                         name, value);
                return -1;
            }
            snprintf(p, k->size, "%s", value);
            return 0;
        }
        if (k->type == T_LOG) {
            int lv = rnnd_log_parse(value);
            if (lv < 0) {
                snprintf(err, errlen, "%s: must be error, warn, info or debug, got \"%s\"", name, value);
                return -1;
            }
            *(int *)p = lv;
            return 0;
        }
        char *end;
        errno = 0;
        long v = strtol(value, &end, 10);
        if (!*value || *end || errno) {
            snprintf(err, errlen, "%s: must be a whole number, got \"%s\"", name, value);
            return -1;
        }
        if (v < k->lo || v > k->hi) {
            snprintf(err, errlen, "%s: must be between %ld and %ld, got %ld", name, k->lo, k->hi, v);
            return -1;
        }
        if (k->size == sizeof(long))
            *(long *)p = v;
        else
            *(int *)p = (int)v;
        return 0;
    }
    snprintf(err, errlen, "unknown key \"%s\"", name);
    return -1;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
    return s;
}

int rnnd_config_load(rnnd_config *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char line[4096], msg[512];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        n++;
        char orig[4096];
        snprintf(orig, sizeof orig, "%s", line);
        orig[strcspn(orig, "\n")] = 0;
        /* a comment starts at the first '#' outside double quotes */
        int quoted = 0;
        char *hash = line;
        for (; *hash && (*hash != '#' || quoted); hash++)
            quoted ^= *hash == '"';
        if (quoted) {
            snprintf(err, errlen, "%s:%d: a quote is not closed: %s", path, n, orig);
            fclose(f);
            return -1;
        }
        *hash = 0;
        char *s = trim(line);
        if (!*s)
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, errlen, "%s:%d: expected key = value: %s", path, n, orig);
            fclose(f);
            return -1;
        }
        *eq = 0;
        char *k = trim(s), *v = trim(eq + 1);
        /* optional quotes around a value */
        size_t vl = strlen(v);
        if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') {
            v[vl - 1] = 0;
            v++;
        }
        if (rnnd_config_set(c, k, v, msg, sizeof msg)) {
            snprintf(err, errlen, "%s:%d: %s: %s", path, n, msg, orig);
            fclose(f);
            return -1;
        }
    }
    fclose(f);
    return 0;
}

int rnnd_config_env(rnnd_config *c, char *err, size_t errlen)
{
    for (size_t i = 0; i < NKEYS; i++) {
        char var[64] = "RNND_";
        size_t n = 5;
        for (const char *p = keys[i].name; *p && n + 1 < sizeof var; p++)
            var[n++] = (char)toupper((unsigned char)*p);
        var[n] = 0;
        const char *v = getenv(var);
        if (!v)
            continue;
        char msg[900];
        if (rnnd_config_set(c, keys[i].name, v, msg, sizeof msg)) {
            snprintf(err, errlen, "environment %s: %s", var, msg);
            return -1;
        }
    }
    return 0;
}

void rnnd_config_print(const rnnd_config *c, FILE *f)
{
    static const char *const lv[] = {"error", "warn", "info", "debug"};
    for (size_t i = 0; i < NKEYS; i++) {
        const key *k = &keys[i];
        const char *p = (const char *)c + k->off;
        fprintf(f, "# %s\n", k->comment);
        if (k->type == T_STR || k->type == T_ADDR)
            fprintf(f, "%s%s = %s\n\n", *p ? "" : "# ", k->name, p);
        else if (k->type == T_LOG)
            fprintf(f, "%s = %s\n\n", k->name, lv[*(const int *)p]);
        else
            fprintf(f, "%s = %ld\n\n", k->name,
                    k->size == sizeof(long) ? *(const long *)p : (long)*(const int *)p);
    }
}

/* The defaults that depend on the machine, as the docs state them. */
static const struct { const char *key, *text; } machine_defaults[] = {
    {"http_threads", "cores"}, {"predict_workers", "cores"}, {"max_job_bytes", "a quarter of the memory"},
};

void rnnd_config_markdown(FILE *f)
{
    static const char *const lv[] = {"error", "warn", "info", "debug"};
    rnnd_config d;
    rnnd_config_defaults(&d);
    fputs("| key | default | range | meaning |\n|---|---|---|---|\n", f);
    for (size_t i = 0; i < NKEYS; i++) {
        const key *k = &keys[i];
        const char *p = (const char *)&d + k->off;
        char def[64], range[64] = "";
        if (k->type == T_STR || k->type == T_ADDR)
            snprintf(def, sizeof def, "%s", *p ? p : "(empty)");
        else if (k->type == T_LOG)
            snprintf(def, sizeof def, "%s", lv[*(const int *)p]);
        else {
            snprintf(def, sizeof def, "%ld", k->size == sizeof(long) ? *(const long *)p : (long)*(const int *)p);
            snprintf(range, sizeof range, "%ld .. %ld", k->lo, k->hi);
        }
        for (size_t j = 0; j < sizeof machine_defaults / sizeof machine_defaults[0]; j++)
            if (!strcmp(machine_defaults[j].key, k->name))
                snprintf(def, sizeof def, "%s", machine_defaults[j].text);
        fprintf(f, "| `%s` | %s | %s | %s |\n", k->name, def, range, k->comment);
    }
}
