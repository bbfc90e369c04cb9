/*
 * Training data files in data_dir (DESIGN.md, "Data upload and limits"):
 * PUT /data/NAME stores the request body as data_dir/NAME, crash-safe (a
 * temp file, fsync, rename: a job never reads half a file), up to
 * max_upload_bytes; GET /data lists the files; DELETE /data/NAME removes
 * one. A job then reads it as {"file": "NAME", ...}. All three need the
 * token. Names are model-style names (1-64 of A-Z a-z 0-9 _ . -, not
 * starting with '.'), so no path leaves the folder.
 */
#include "http.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void data_path(const char *name, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", S.cfg.data_dir, name);
}

answer do_data_put(struct MHD_Connection *c, req *r)
{
    const char *name = r->arg[0];
    if (!rnn_name_ok(name))
        return send_error(c, r, 400, "data name: must be 1-64 characters of A-Z a-z 0-9 _ . - "
                                     "(not starting with '.'), got \"%.80s\"", name);
    if (r->len == 0)
        return send_error(c, r, 422, "data %s: the body is empty; send the file's bytes", name);
    if (mkdir(S.cfg.data_dir, 0755) && errno != EEXIST)
        return send_error(c, r, 500, "data_dir %s: cannot create it: %s", S.cfg.data_dir, strerror(errno));
    char path[1400];
    data_path(name, path, sizeof path);
    struct stat st;
    const int existed = stat(path, &st) == 0;
    rnn_span part = {r->body, r->len};
    rnn_err err;
    if (rnn_file_replace(path, &part, 1, &err))
        return send_error(c, r, 500, "data %s not stored: %s", name, err.msg);
    rnnd_log(LOG_INFO, "data %s: %zu bytes stored in %s", name, r->len, S.cfg.data_dir);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddNumberToObject(o, "bytes", (double)r->len);
    return send_json(c, r, existed ? 200 : 201, o);
}

answer do_data_list(struct MHD_Connection *c, req *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "data_dir", S.cfg.data_dir);
    cJSON *a = cJSON_AddArrayToObject(o, "files");
    DIR *d = opendir(S.cfg.data_dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        char path[1400];
        struct stat st;
        if (!rnn_name_ok(e->d_name) || strstr(e->d_name, ".tmp."))
            continue;
        data_path(e->d_name, path, sizeof path);
        if (stat(path, &st) || !S_ISREG(st.st_mode))
            continue;
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "name", e->d_name);
        cJSON_AddNumberToObject(x, "bytes", (double)st.st_size);
        char when[40];
        struct tm tm;
        gmtime_r(&st.st_mtime, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        cJSON_AddStringToObject(x, "modified", when);
        cJSON_AddItemToArray(a, x);
    }
    if (d)
        closedir(d);
    return send_json(c, r, 200, o);
}

answer do_data_delete(struct MHD_Connection *c, req *r)
{
    const char *name = r->arg[0];
    char path[1400];
    data_path(name, path, sizeof path);
    if (!rnn_name_ok(name) || unlink(path))
        return send_error(c, r, 404, "no data file \"%.64s\" in %s", name, S.cfg.data_dir);
    rnnd_log(LOG_INFO, "data %s removed from %s", name, S.cfg.data_dir);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddBoolToObject(o, "deleted", 1);
    return send_json(c, r, 200, o);
}
