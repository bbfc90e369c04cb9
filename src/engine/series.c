/*
 * Multivariate series: the table a job's series comes from (rows of numbers
 * inline, or a CSV file with or without a header row), the columns it reads
 * (`columns`) and predicts (`target`), and z-score normalization
 * (`normalize`), whose statistics travel in the model (rnn_series) so that
 * requests and replies stay in the data's own units. A cell that is not a
 * number is an error naming its line and column, unless the job leaves that
 * column out.
 */
#include "internal.h"

#include <cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rnn_series_free(rnn_series *s)
{
    for (int i = 0; s->columns && i < s->ncolumns; i++)
        free(s->columns[i]);
    free(s->columns);
    free(s->target);
    free(s->mean);
    free(s->std);
    memset(s, 0, sizeof *s);
}

int rnn_series_copy(rnn_series *dst, const rnn_series *src)
{
    memset(dst, 0, sizeof *dst);
    if (!src->ncolumns)
        return 0;
    dst->ncolumns = src->ncolumns;
    dst->ntarget = src->ntarget;
    const size_t C = (size_t)src->ncolumns;
    int ok = (dst->target = malloc((size_t)src->ntarget * sizeof(int))) != NULL;
    if (ok) memcpy(dst->target, src->target, (size_t)src->ntarget * sizeof(int));
    if (ok && src->mean) {
        ok = (dst->mean = malloc(C * sizeof(double))) && (dst->std = malloc(C * sizeof(double)));
        if (ok) {
            memcpy(dst->mean, src->mean, C * sizeof(double));
            memcpy(dst->std, src->std, C * sizeof(double));
        }
    }
    if (ok && src->columns) {
        ok = (dst->columns = calloc(C, sizeof(char *))) != NULL;
        for (size_t i = 0; ok && i < C; i++)
            ok = (dst->columns[i] = strdup(src->columns[i])) != NULL;
    }
    if (!ok)
        rnn_series_free(dst);
    return ok ? 0 : -1;
}

/* x_j = (x_j - mean_j) / std_j for each input column j */
void rnn_series_scale(const rnn_series *s, float *x, size_t n)
{
    if (!s->mean)
        return;
    const int C = s->ncolumns;
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < C; j++)
            x[i * C + j] = (float)((x[i * C + j] - s->mean[j]) / s->std[j]);
}

/* y_k = y_k std_c + mean_c for each target k, of column c = target[k] */
void rnn_series_unscale(const rnn_series *s, float *y, size_t n)
{
    if (!s->mean)
        return;
    const int O = s->ntarget;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < O; k++)
            y[i * O + k] = (float)(y[i * O + k] * s->std[s->target[k]] + s->mean[s->target[k]]);
}

/* ------------------------------------------------------------------ tables */

/* n rows of C cells; a cell that is not a number is NaN, and the first such
 * cell of each column is remembered for the error its use would be. */
typedef struct table {
    size_t n, cap;
    int C;
    float *v;
    char **names;           /* (C) from a header row, or NULL */
    long *bad_line;         /* (C) line of the first cell that is no number, 0: none */
    char (*bad_text)[24];   /* (C) what it held */
} table;

static void table_free(table *t)
{
    for (int j = 0; t->names && j < t->C; j++)
        free(t->names[j]);
    free(t->names);
    free(t->v);
    free(t->bad_line);
    free(t->bad_text);
    memset(t, 0, sizeof *t);
}

static int table_row(table *t, rnn_err *err)
{
    if (t->n == t->cap) {
        const size_t cap = t->cap ? t->cap * 2 : 256;
        float *v = realloc(t->v, cap * (size_t)t->C * sizeof(float));
        if (!v)
            return rnn_fail(err, "data: out of memory for %zu rows", t->n);
        t->v = v;
        t->cap = cap;
    }
    t->n++;
    return 0;
}

/* Splits the line [p, e) at commas into cells, trimmed; returns the count
 * (at most max) and fills start/end of each. */
static int split_cells(const char *p, const char *e, const char **cs, const char **ce, int max)
{
    int k = 0;
    for (;;) {
        const char *q = p;
        while (q < e && *q != ',') q++;
        const char *a = p, *b = q;
        while (a < b && isspace((unsigned char)*a)) a++;
        while (b > a && isspace((unsigned char)b[-1])) b--;
        if (k < max) { cs[k] = a; ce[k] = b; }
        k++;
        if (q == e) return k;
        p = q + 1;
    }
}

/* A cell as a finite float, or NaN. */
static float cell_number(const char *a, const char *b)
{
    char buf[64];
    const size_t l = (size_t)(b - a);
    if (l == 0 || l >= sizeof buf)
        return NAN;
    memcpy(buf, a, l);
    buf[l] = 0;
    char *end;
    const double x = strtod(buf, &end);
    return *end || !isfinite(x) || fabs(x) > 3.4e38 ? NAN : (float)x;
}

#define MAX_COLUMNS 4096

/* A CSV text: blank lines and lines starting with '#' are skipped; a first
 * line with a cell that is not a number is the header. */
static int csv_table(const char *text, table *t, rnn_err *err)
{
    memset(t, 0, sizeof *t);
    const char **cs = malloc(2 * MAX_COLUMNS * sizeof(char *)), **ce = cs + MAX_COLUMNS;
    long line = 0;
    int rc = -1;
    if (!cs)
        return rnn_fail(err, "data.file: out of memory");
    for (const char *p = text; *p;) {
        const char *eol = strchr(p, '\n'), *e = eol ? eol : p + strlen(p);
        line++;
        const char *q = p;
        while (q < e && isspace((unsigned char)*q)) q++;
        if (q == e || *q == '#') {
            p = eol ? eol + 1 : e;
            continue;
        }
        const int k = split_cells(p, e, cs, ce, MAX_COLUMNS);
        if (!t->C) {
            if (k > MAX_COLUMNS) {
                rnn_fail(err, "data.file: line %ld has %d columns, at most %d are read", line, k, MAX_COLUMNS);
                goto out;
            }
            t->C = k;
            t->bad_line = calloc((size_t)k, sizeof(long));
            t->bad_text = calloc((size_t)k, sizeof *t->bad_text);
            if (!t->bad_line || !t->bad_text) {
                rnn_fail(err, "data.file: out of memory");
                goto out;
            }
            int header = 0;
            for (int j = 0; j < k && !header; j++)
                header = isnan(cell_number(cs[j], ce[j]));
            if (header) {
                if (!(t->names = calloc((size_t)k, sizeof(char *)))) {
                    rnn_fail(err, "data.file: out of memory");
                    goto out;
                }
                for (int j = 0; j < k; j++)
                    if (!(t->names[j] = strndup(cs[j], (size_t)(ce[j] - cs[j])))) {
                        rnn_fail(err, "data.file: out of memory");
                        goto out;
                    }
                p = eol ? eol + 1 : e;
                continue;
            }
        }
        if (k != t->C) {
            rnn_fail(err, "data.file: line %ld has %d columns, the %s %d", line, k,
                     t->names ? "header has" : "first line has", t->C);
            goto out;
        }
        if (table_row(t, err))
            goto out;
        float *row = t->v + (t->n - 1) * (size_t)t->C;
        for (int j = 0; j < k; j++) {
            row[j] = cell_number(cs[j], ce[j]);
            if (isnan(row[j]) && !t->bad_line[j]) {
                t->bad_line[j] = line;
                snprintf(t->bad_text[j], sizeof t->bad_text[j], "%.*s", (int)(ce[j] - cs[j]), cs[j]);
            }
        }
        p = eol ? eol + 1 : e;
    }
    rc = 0;
out:
    free(cs);
    if (rc)
        table_free(t);
    return rc;
}

/* "series": numbers (one column) or rows, each an array of as many numbers
 * as the first. */
static int json_table(const cJSON *a, table *t, rnn_err *err)
{
    memset(t, 0, sizeof *t);
    if (!cJSON_IsArray(a) || !a->child)
        return rnn_fail(err, "data.series: must be a non-empty array of numbers or of rows of numbers");
    t->C = cJSON_IsArray(a->child) ? cJSON_GetArraySize(a->child) : 1;
    if (t->C < 1 || t->C > MAX_COLUMNS)
        return rnn_fail(err, "data.series[0]: a row must hold 1 to %d numbers", MAX_COLUMNS);
    size_t i = 0;
    for (const cJSON *r = a->child; r; r = r->next, i++) {
        if (table_row(t, err))
            goto fail;
        float *row = t->v + i * (size_t)t->C;
        if (cJSON_IsArray(a->child) != cJSON_IsArray(r) ||
            (cJSON_IsArray(r) && cJSON_GetArraySize(r) != t->C)) {
            rnn_fail(err, "data.series[%zu]: must be %s, like the first", i,
                     t->C == 1 && !cJSON_IsArray(a->child) ? "a number" : "a row of as many numbers");
            goto fail;
        }
        int j = 0;
        for (const cJSON *v = cJSON_IsArray(r) ? r->child : r; v; v = cJSON_IsArray(r) ? v->next : NULL, j++) {
            if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || fabs(v->valuedouble) > 3.4e38) {
                if (cJSON_IsArray(r))
                    rnn_fail(err, "data.series[%zu][%d]: must be a finite number", i, j);
                else
                    rnn_fail(err, "data.series[%zu]: must be a finite number", i);
                goto fail;
            }
            row[j] = (float)v->valuedouble;
        }
    }
    return 0;
fail:
    table_free(t);
    return -1;
}

/* ------------------------------------------------------------------ columns */

/* The column a "columns"/"target" entry names: a header name, or a
 * number (an index into the table's columns). */
static int column_of(const table *t, const cJSON *v, const char *key, rnn_err *err)
{
    if (cJSON_IsString(v)) {
        for (int j = 0; t->names && j < t->C; j++)
            if (!strcmp(t->names[j], v->valuestring))
                return j;
        if (!t->names)
            return rnn_fail(err, "data.%s: \"%.40s\": the data has no header row naming its columns; "
                                 "give column numbers (from 0)", key, v->valuestring);
        char list[256] = "";
        for (int j = 0; j < t->C && strlen(list) < 200; j++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", j ? ", " : "", t->names[j]);
        return rnn_fail(err, "data.%s: \"%.40s\" is not a column of the data (it has %s)", key,
                        v->valuestring, list);
    }
    if (cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) && v->valuedouble >= 0 &&
        v->valuedouble < t->C)
        return (int)v->valuedouble;
    return rnn_fail(err, "data.%s: must name columns of the data: header names or numbers from 0 to %d",
                    key, t->C - 1);
}

/* "key": one entry or a list of them, into table columns; all when absent. */
static int columns_of(const table *t, const cJSON *dj, const char *key, int *out, int *n, rnn_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(dj, key);
    *n = 0;
    if (!v) {
        for (int j = 0; j < t->C; j++) out[(*n)++] = j;
        return 0;
    }
    if (cJSON_IsArray(v) && !v->child)
        return rnn_fail(err, "data.%s: names no column", key);
    for (const cJSON *e = cJSON_IsArray(v) ? v->child : v; e; e = cJSON_IsArray(v) ? e->next : NULL) {
        const int j = column_of(t, e, key, err);
        if (j < 0)
            return -1;
        for (int k = 0; k < *n; k++)
            if (out[k] == j)
                return rnn_fail(err, "data.%s: names column %d twice", key, j);
        out[(*n)++] = j;
    }
    return 0;
}

/* z-score statistics of column j of n rows: the mean and the population
 * deviation, sqrt(sum (x - mean)^2 / n); 1 for a constant column. */
static void column_stats(const float *rows, size_t n, int C, int j, double *mean, double *std)
{
    double m = 0, ss = 0;
    for (size_t i = 0; i < n; i++) m += rows[i * C + j];
    m /= (double)n;
    for (size_t i = 0; i < n; i++) ss += (rows[i * C + j] - m) * (rows[i * C + j] - m);
    *mean = m;
    *std = ss > 0 ? sqrt(ss / (double)n) : 1;
}

/* The statistics to normalize with: the base model's, fresh ones, or none. */
static int choose_stats(const cJSON *dj, const rnn_series *base, rnn_series *s, const float *rows,
                        size_t n, rnn_err *err)
{
    const cJSON *nv = cJSON_GetObjectItemCaseSensitive(dj, "normalize");
    if (nv && (!cJSON_IsString(nv) || (strcmp(nv->valuestring, "zscore") && strcmp(nv->valuestring, "none"))))
        return rnn_fail(err, "data.normalize: must be \"zscore\" or \"none\"");
    const int want = nv ? !strcmp(nv->valuestring, "zscore") : -1;
    const int C = s->ncolumns;
    if (base && base->ncolumns) {
        if (base->ncolumns != C || base->ntarget != s->ntarget)
            return rnn_fail(err, "data: the model reads %d columns and predicts %d, this data %d and %d",
                            base->ncolumns, base->ntarget, C, s->ntarget);
        for (int j = 0; base->columns && s->columns && j < C; j++)
            if (strcmp(base->columns[j], s->columns[j]))
                return rnn_fail(err, "data.columns: the model's column %d is \"%s\", this data's \"%s\"",
                                j, base->columns[j], s->columns[j]);
        if (want >= 0 && want != (base->mean != NULL))
            return rnn_fail(err, "data.normalize: the model was trained %s; a fine-tune keeps that",
                            base->mean ? "on z-scores (zscore)" : "in raw units (none)");
        if (!base->mean)
            return 0;
        s->mean = malloc((size_t)C * sizeof(double));
        s->std = malloc((size_t)C * sizeof(double));
        if (!s->mean || !s->std)
            return rnn_fail(err, "data: out of memory");
        memcpy(s->mean, base->mean, (size_t)C * sizeof(double));
        memcpy(s->std, base->std, (size_t)C * sizeof(double));
        return 0;
    }
    if (want <= 0)
        return 0;
    s->mean = malloc((size_t)C * sizeof(double));
    s->std = malloc((size_t)C * sizeof(double));
    if (!s->mean || !s->std)
        return rnn_fail(err, "data: out of memory");
    for (int j = 0; j < C; j++)
        column_stats(rows, n, C, j, &s->mean[j], &s->std[j]);
    return 0;
}

int rnn_series_dataset(const cJSON *dj, const char *scope, const char *csv, const rnn_series *base,
                       int window, rnn_mode mode, rnn_dataset *d, rnn_err *err)
{
    memset(d, 0, sizeof *d);
    table t;
    if (csv ? csv_table(csv, &t, err) : json_table(cJSON_GetObjectItemCaseSensitive(dj, "series"), &t, err))
        return -1;
    rnn_series s = {0};
    int *cols = malloc((size_t)t.C * sizeof(int)), *tg = malloc((size_t)t.C * sizeof(int));
    float *rows = NULL;
    int nc = 0, nt = 0, rc = -1;
    if (!cols || !tg) {
        rnn_fail(err, "data: out of memory");
        goto out;
    }
    if (!t.n) {
        rnn_fail(err, "%s: holds no rows of numbers", scope);
        goto out;
    }
    if (columns_of(&t, dj, "columns", cols, &nc, err))
        goto out;
    /* the target: every column read, unless named */
    if (!cJSON_GetObjectItemCaseSensitive(dj, "target")) {
        memcpy(tg, cols, (size_t)nc * sizeof(int));
        nt = nc;
    } else if (columns_of(&t, dj, "target", tg, &nt, err)) {
        goto out;
    }
    /* each column read must be numbers throughout; targets among them */
    for (int k = 0; k < nc; k++)
        if (t.bad_line && t.bad_line[cols[k]]) {
            const int j = cols[k];
            if (t.names)
                rnn_fail(err, "data.file: line %ld, column %d (\"%s\"): \"%s\" is not a number; name the "
                              "columns to read with data.columns to leave it out", t.bad_line[j], j,
                         t.names[j], t.bad_text[j]);
            else
                rnn_fail(err, "data.file: line %ld, column %d: \"%s\" is not a number", t.bad_line[j], j,
                         t.bad_text[j]);
            goto out;
        }
    for (int k = 0; k < nt; k++) {
        int at = -1;
        for (int i = 0; i < nc && at < 0; i++)
            if (cols[i] == tg[k]) at = i;
        if (at < 0) {
            rnn_fail(err, "data.target: column %d%s%s%s is not among the columns read (data.columns)",
                     tg[k], t.names ? " (\"" : "", t.names ? t.names[tg[k]] : "", t.names ? "\")" : "");
            goto out;
        }
        tg[k] = at;
    }
    /* the columns read, in their order */
    if (!(rows = malloc(t.n * (size_t)nc * sizeof(float)))) {
        rnn_fail(err, "data: out of memory for %zu rows", t.n);
        goto out;
    }
    for (size_t i = 0; i < t.n; i++)
        for (int k = 0; k < nc; k++)
            rows[i * nc + k] = t.v[i * t.C + cols[k]];
    s.ncolumns = nc;
    s.ntarget = nt;
    s.target = tg;
    tg = NULL;
    if (t.names) {
        if (!(s.columns = calloc((size_t)nc, sizeof(char *)))) {
            rnn_fail(err, "data: out of memory");
            goto out;
        }
        for (int k = 0; k < nc; k++)
            if (!(s.columns[k] = strdup(t.names[cols[k]]))) {
                rnn_fail(err, "data: out of memory");
                goto out;
            }
    }
    if (choose_stats(dj, base, &s, rows, t.n, err))
        goto out;
    /* tanh units saturate on inputs far from [-1, 1]: say so when the data
     * is left in such units */
    for (int k = 0; !s.mean && k < nc && !d->warning[0]; k++) {
        double mean, sd;
        column_stats(rows, t.n, nc, k, &mean, &sd);
        if (fabs(mean) > 10 || sd > 10)
            snprintf(d->warning, sizeof d->warning,
                     "data: column %d%s%s%s has mean %.4g and deviation %.4g; a network learns little "
                     "from values this large: \"normalize\": \"zscore\" trains on z-scores and still "
                     "answers in these units", cols[k], t.names ? " (\"" : "", t.names ? t.names[cols[k]] : "",
                     t.names ? "\")" : "", mean, sd);
    }
    char warning[sizeof d->warning];
    memcpy(warning, d->warning, sizeof warning);
    rnn_series_scale(&s, rows, t.n);
    if (rnn_dataset_from_rows(d, rows, t.n, nc, s.target, nt, window, mode, err))
        goto out;
    memcpy(d->warning, warning, sizeof warning); /* the windows are a new dataset */
    d->series = s;
    memset(&s, 0, sizeof s);
    rc = 0;
out:
    rnn_series_free(&s);
    table_free(&t);
    free(cols);
    free(tg);
    free(rows);
    return rc;
}

/* ------------------------------------------------------------------ in a model file */

/* Doubles as a JSON array, each printed to 17 digits: cJSON's own printing
 * may keep 15 when they come back within an epsilon, not exactly. */
static cJSON *exact_array(const double *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) {
        char num[32];
        snprintf(num, sizeof num, "%.17g", v[i]);
        cJSON_AddItemToArray(a, cJSON_CreateRaw(num));
    }
    return a;
}

char *rnn_series_json(const rnn_series *s)
{
    if (s->ncolumns < 1 || (s->ncolumns == 1 && !s->columns && !s->mean))
        return NULL; /* a plain series of numbers needs nothing */
    cJSON *o = cJSON_CreateObject();
    if (s->columns) {
        cJSON *c = cJSON_AddArrayToObject(o, "columns");
        for (int j = 0; j < s->ncolumns; j++)
            cJSON_AddItemToArray(c, cJSON_CreateString(s->columns[j]));
    }
    cJSON_AddItemToObject(o, "target", cJSON_CreateIntArray(s->target, s->ntarget));
    cJSON_AddStringToObject(o, "normalize", s->mean ? "zscore" : "none");
    if (s->mean) {
        cJSON_AddItemToObject(o, "mean", exact_array(s->mean, s->ncolumns));
        cJSON_AddItemToObject(o, "std", exact_array(s->std, s->ncolumns));
    }
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return txt;
}

/* n finite numbers of a JSON array into v (doubles), each > 0 if positive. */
static int doubles_of(const cJSON *a, int n, double *v, int positive)
{
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n)
        return -1;
    int i = 0;
    for (const cJSON *e = a->child; e; e = e->next, i++) {
        if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble) || fabs(e->valuedouble) > 1e30 ||
            (positive && !(e->valuedouble > 1e-30)))
            return -1;
        v[i] = e->valuedouble;
    }
    return 0;
}

int rnn_series_parse(const char *json, int X, int O, rnn_series *s, rnn_err *err)
{
    memset(s, 0, sizeof *s);
    cJSON *o = cJSON_Parse(json);
    const cJSON *cols = cJSON_GetObjectItemCaseSensitive(o, "columns");
    const cJSON *tg = cJSON_GetObjectItemCaseSensitive(o, "target");
    const cJSON *nz = cJSON_GetObjectItemCaseSensitive(o, "normalize");
    int rc = -1;
    if (!cJSON_IsObject(o)) {
        rnn_fail(err, "rnnd.series: not a JSON object");
        goto out;
    }
    s->ncolumns = X;
    s->ntarget = O;
    s->target = calloc((size_t)O, sizeof(int));
    if (!s->target || !cJSON_IsArray(tg) || cJSON_GetArraySize(tg) != O) {
        rnn_fail(err, "rnnd.series: \"target\" must be output_size (%d) column numbers", O);
        goto out;
    }
    int k = 0;
    for (const cJSON *e = tg->child; e; e = e->next, k++) {
        if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) || e->valuedouble < 0 ||
            e->valuedouble >= X) {
            rnn_fail(err, "rnnd.series: \"target\"[%d] must be a column number below input_size (%d)", k, X);
            goto out;
        }
        s->target[k] = (int)e->valuedouble;
    }
    if (cols) {
        if (!cJSON_IsArray(cols) || cJSON_GetArraySize(cols) != X ||
            !(s->columns = calloc((size_t)X, sizeof(char *)))) {
            rnn_fail(err, "rnnd.series: \"columns\" must be input_size (%d) names", X);
            goto out;
        }
        int j = 0;
        for (const cJSON *e = cols->child; e; e = e->next, j++)
            if (!cJSON_IsString(e) || strlen(e->valuestring) > 200 || !(s->columns[j] = strdup(e->valuestring))) {
                rnn_fail(err, "rnnd.series: \"columns\"[%d] must be a name", j);
                goto out;
            }
    }
    if (cJSON_IsString(nz) && !strcmp(nz->valuestring, "zscore")) {
        s->mean = malloc((size_t)X * sizeof(double));
        s->std = malloc((size_t)X * sizeof(double));
        if (!s->mean || !s->std ||
            doubles_of(cJSON_GetObjectItemCaseSensitive(o, "mean"), X, s->mean, 0) ||
            doubles_of(cJSON_GetObjectItemCaseSensitive(o, "std"), X, s->std, 1)) {
            rnn_fail(err, "rnnd.series: \"mean\" and \"std\" must be input_size (%d) finite numbers, "
                          "each std above 0", X);
            goto out;
        }
    } else if (!cJSON_IsString(nz) || strcmp(nz->valuestring, "none")) {
        rnn_fail(err, "rnnd.series: \"normalize\" must be \"zscore\" or \"none\"");
        goto out;
    }
    rc = 0;
out:
    cJSON_Delete(o);
    if (rc)
        rnn_series_free(s);
    return rc;
}
