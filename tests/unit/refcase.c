/* Parses the format of tests/ref/gen.py: `key value` header lines, then
 * `tensor NAME NDIM D0 [D1 [D2]]` each followed by one line of values, or
 * `tensor NAME NDIM D0 [D1 [D2]] @OFFSET` with the values at float OFFSET of
 * the sidecar <case>.bin (raw little-endian float32). */
#include "refcase.h"

#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *ref_dir(void)
{
    const char *d = getenv("RNN_REF_DIR");
    return d && *d ? d : "tests/ref/engine";
}

static int cmp_names(const void *a, const void *b) { return strcmp(a, b); }

int ref_list(char names[][128], int max)
{
    DIR *d = opendir(ref_dir());
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        size_t len = strlen(e->d_name);
        if (len > 4 && len < 120 && strcmp(e->d_name + len - 4, ".ref") == 0)
            memcpy(names[n++], e->d_name, len + 1); /* len < 120 */
    }
    closedir(d);
    qsort(names, (size_t)n, 128, cmp_names);
    return n;
}

void ref_free(ref_case *rc)
{
    for (int i = 0; i < rc->ntensors; i++)
        free(rc->t[i].v);
    rc->ntensors = 0;
}

const ref_tensor *ref_get(const ref_case *rc, const char *name)
{
    for (int i = 0; i < rc->ntensors; i++)
        if (strcmp(rc->t[i].name, name) == 0)
            return &rc->t[i];
    return NULL;
}

double ref_relerr(const float *a, const float *b, size_t n)
{
    double md = 0, mb = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= md)) md = d; /* NaN propagates as a failure */
        if (fabs(b[i]) > mb) mb = fabs(b[i]);
    }
    return md / mb;
}

/* Decodes n raw little-endian float32 values, on any host byte order. */
static void decode_le_f32(const unsigned char *b, float *v, size_t n)
{
    for (size_t i = 0; i < n; i++, b += 4) {
        uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        memcpy(&v[i], &u, sizeof u);
    }
}

/* Fills the tensors whose line carried `@offset` (offs[i] >= 0) from the
 * sidecar: path with ".ref" replaced by ".bin". */
static int load_bin(const char *path, ref_case *rc, const long *offs, char *err, size_t errlen)
{
    char bpath[1024];
    size_t len = strlen(path);
    if (len < 4 || len + 1 > sizeof bpath || strcmp(path + len - 4, ".ref") != 0) {
        snprintf(err, errlen, "%s: binary tensors, but the name does not end in .ref", path);
        return -1;
    }
    memcpy(bpath, path, len - 4);
    memcpy(bpath + len - 4, ".bin", 5);
    FILE *f = fopen(bpath, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open", bpath);
        return -1;
    }
    int rcode = -1;
    unsigned char *buf = NULL;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        size = ftell(f);
    if (size < 0 || size % 4 != 0 || (rc->bin_floats > 0 && size / 4 != rc->bin_floats)) {
        snprintf(err, errlen, "%s: %ld bytes, header says %ld floats", bpath, size, rc->bin_floats);
        goto out;
    }
    for (int i = 0; i < rc->ntensors; i++) {
        ref_tensor *t = &rc->t[i];
        if (offs[i] < 0)
            continue;
        if (offs[i] > size / 4 || t->n > (size_t)(size / 4 - offs[i])) {
            snprintf(err, errlen, "%s: %s: floats %ld..%ld past the end (%ld)", bpath, t->name, offs[i],
                     offs[i] + (long)t->n, size / 4);
            goto out;
        }
        unsigned char *nb = realloc(buf, t->n * 4);
        if (!nb) {
            snprintf(err, errlen, "%s: out of memory", bpath);
            goto out;
        }
        buf = nb;
        if (fseek(f, offs[i] * 4, SEEK_SET) != 0 || fread(buf, 4, t->n, f) != t->n) {
            snprintf(err, errlen, "%s: %s: read failed", bpath, t->name);
            goto out;
        }
        decode_le_f32(buf, t->v, t->n);
    }
    rcode = 0;
out:
    free(buf);
    fclose(f);
    return rcode;
}

int ref_load(const char *path, ref_case *rc, char *err, size_t errlen)
{
    memset(rc, 0, sizeof *rc);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open", path);
        return -1;
    }
    /* Text lines hold fewer than 1024 values (larger tensors are binary). */
    size_t cap = 1 << 20;
    char *line = malloc(cap);
    long offs[sizeof rc->t / sizeof rc->t[0]];
    char key[64], val[64];
    int rcode = -1, have_tokens = 0, nbin = 0;
    if (!line) {
        snprintf(err, errlen, "%s: out of memory", path);
        fclose(f);
        return -1;
    }
    while (fgets(line, (int)cap, f)) {
        if (!strchr(line, '\n') && !feof(f)) {
            snprintf(err, errlen, "%s: line longer than %zu bytes", path, cap);
            goto out;
        }
        if (line[0] == '#' || line[0] == '\n')
            continue;
        if (strncmp(line, "end", 3) == 0) {
            rcode = 0;
            break;
        }
        if (strncmp(line, "tensor ", 7) == 0) {
            if (rc->ntensors >= (int)(sizeof rc->t / sizeof rc->t[0])) {
                snprintf(err, errlen, "%s: too many tensors", path);
                goto out;
            }
            ref_tensor *t = &rc->t[rc->ntensors];
            int pos = 0;
            const char *p = line + 7;
            if (sscanf(p, "%63s %d%n", t->name, &t->ndim, &pos) != 2 || t->ndim < 1 || t->ndim > 3) {
                snprintf(err, errlen, "%s: bad tensor line: %s", path, line);
                goto out;
            }
            p += pos;
            t->n = 1;
            for (int k = 0; k < t->ndim; k++, p += pos) {
                if (sscanf(p, "%d%n", &t->shape[k], &pos) != 1 || t->shape[k] < 1) {
                    snprintf(err, errlen, "%s: bad tensor line: %s", path, line);
                    goto out;
                }
                t->n *= (size_t)t->shape[k];
            }
            /* `@offset` (in floats) into the sidecar, or the values on the next line */
            long off = -1;
            char rest[64] = "";
            if (sscanf(p, "%63s", rest) == 1) {
                char *q;
                off = rest[0] == '@' ? strtol(rest + 1, &q, 10) : -1;
                if (rest[0] != '@' || q == rest + 1 || *q || off < 0) {
                    snprintf(err, errlen, "%s: bad tensor line: %s", path, line);
                    goto out;
                }
            }
            t->v = malloc(t->n * sizeof(float));
            if (!t->v) {
                snprintf(err, errlen, "%s: %s: out of memory", path, t->name);
                goto out;
            }
            offs[rc->ntensors++] = off;
            if (off >= 0) {
                nbin++;
                continue;
            }
            if (!fgets(line, (int)cap, f)) {
                snprintf(err, errlen, "%s: %s: missing values", path, t->name);
                goto out;
            }
            char *vp = line, *q;
            for (size_t i = 0; i < t->n; i++) {
                t->v[i] = strtof(vp, &q);
                if (q == vp) {
                    snprintf(err, errlen, "%s: %s: %zu values, expected %zu", path, t->name, i, t->n);
                    goto out;
                }
                vp = q;
            }
            continue;
        }
        if (sscanf(line, "%63s %63s", key, val) != 2)
            continue;
        rnn_config *c = &rc->cfg;
        if (!strcmp(key, "case")) snprintf(rc->name, sizeof rc->name, "%s", val);
        else if (!strcmp(key, "task")) rnn_task_parse(val, &c->task);
        else if (!strcmp(key, "mode")) rnn_mode_parse(val, &c->mode);
        else if (!strcmp(key, "cell")) rnn_cell_parse(val, &c->cell);
        else if (!strcmp(key, "activation")) rnn_activation_parse(val, &c->act);
        else if (!strcmp(key, "input_size")) c->input_size = atoi(val);
        else if (!strcmp(key, "hidden")) c->hidden = atoi(val);
        else if (!strcmp(key, "layers")) c->layers = atoi(val);
        else if (!strcmp(key, "output_size")) c->output_size = atoi(val);
        else if (!strcmp(key, "embedding")) c->embedding = atoi(val);
        else if (!strcmp(key, "tokens")) c->tokens = atoi(val), have_tokens = 1;
        else if (!strcmp(key, "bidirectional")) c->bidirectional = atoi(val);
        else if (!strcmp(key, "T")) rc->T = atoi(val);
        else if (!strcmp(key, "B")) rc->B = atoi(val);
        else if (!strcmp(key, "bptt")) rc->bptt = atoi(val);
        else if (!strcmp(key, "clip")) rc->clip = atof(val);
        else if (!strcmp(key, "sgd_lr")) rc->sgd_lr = atof(val);
        else if (!strcmp(key, "sgd_momentum")) rc->sgd_momentum = atof(val);
        else if (!strcmp(key, "sgd_nesterov")) rc->nesterov = atoi(val);
        else if (!strcmp(key, "adam_lr")) rc->adam_lr = atof(val);
        else if (!strcmp(key, "adam_weight_decay")) rc->adam_wd = atof(val);
        else if (!strcmp(key, "steps")) rc->steps = atoi(val);
        else if (!strcmp(key, "bin_floats")) rc->bin_floats = atol(val);
    }
    if (rcode) {
        snprintf(err, errlen, "%s: no 'end' line", path);
        goto out;
    }
    if (nbin && load_bin(path, rc, offs, err, errlen))
        rcode = -1;
    /* Files from before the `tokens` line: token input iff embedded or a
     * `tokens` tensor is present. */
    if (!have_tokens)
        rc->cfg.tokens = rc->cfg.embedding > 0 || ref_get(rc, "tokens") != NULL;
out:
    free(line);
    fclose(f);
    if (rcode)
        ref_free(rc);
    return rcode;
}
