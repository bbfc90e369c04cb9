/* Parses the text format of tests/ref/gen.py: `key value` header lines, then
 * `tensor NAME NDIM D0 [D1 [D2]]` each followed by one line of values. */
#include "refcase.h"

#include <dirent.h>
#include <math.h>
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
            snprintf(names[n++], 128, "%s", e->d_name);
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

int ref_load(const char *path, ref_case *rc, char *err, size_t errlen)
{
    memset(rc, 0, sizeof *rc);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open", path);
        return -1;
    }
    size_t cap = 1 << 20;
    char *line = malloc(cap);
    char key[64], val[64];
    int rcode = -1;
    while (fgets(line, (int)cap, f)) {
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
            int got = sscanf(line + 7, "%63s %d %d %d %d", t->name, &t->ndim, &t->shape[0],
                             &t->shape[1], &t->shape[2]);
            if (got < 3 || got != 2 + t->ndim) {
                snprintf(err, errlen, "%s: bad tensor line: %s", path, line);
                goto out;
            }
            t->n = 1;
            for (int k = 0; k < t->ndim; k++) t->n *= (size_t)t->shape[k];
            t->v = malloc(t->n * sizeof(float));
            rc->ntensors++;
            if (!fgets(line, (int)cap, f)) {
                snprintf(err, errlen, "%s: %s: missing values", path, t->name);
                goto out;
            }
            char *p = line, *q;
            for (size_t i = 0; i < t->n; i++) {
                t->v[i] = strtof(p, &q);
                if (q == p) {
                    snprintf(err, errlen, "%s: %s: %zu values, expected %zu", path, t->name, i, t->n);
                    goto out;
                }
                p = q;
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
    }
    if (rcode)
        snprintf(err, errlen, "%s: no 'end' line", path);
out:
    free(line);
    fclose(f);
    if (rcode)
        ref_free(rc);
    return rcode;
}
