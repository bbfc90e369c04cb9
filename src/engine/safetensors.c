/*
 * safetensors model files: an 8-byte little-endian header length, a JSON
 * header naming each tensor's dtype, shape and [begin, end) byte offsets into
 * the data that follows, and "__metadata__" (string values only) carrying
 * rnnd's config and provenance. Loading checks everything before building a
 * model; saving goes through a temp file and a rename.
 */
#include "rnn/io.h"
#include "rnn/fields.h"
#include "internal.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void rnn_meta_init(rnn_meta *meta)
{
    memset(meta, 0, sizeof *meta);
    meta->final_loss = NAN;
    meta->final_val_loss = NAN;
}

void rnn_meta_free(rnn_meta *meta)
{
    if (!meta)
        return;
    free(meta->vocab);
    for (int i = 0; i < meta->nlabels; i++)
        free(meta->labels[i]);
    free(meta->labels);
    free(meta->loss);
    free(meta->val_loss);
    rnn_series_free(&meta->series);
    rnn_words_free(&meta->words);
    rnn_meta_init(meta);
}

int rnn_meta_copy(rnn_meta *dst, const rnn_meta *src)
{
    *dst = *src;
    dst->vocab = NULL;
    dst->labels = NULL;
    dst->loss = dst->val_loss = NULL;
    dst->nlabels = dst->nhistory = 0;
    memset(&dst->series, 0, sizeof dst->series);
    memset(&dst->words, 0, sizeof dst->words);
    if (rnn_series_copy(&dst->series, &src->series) || rnn_words_copy(&dst->words, &src->words))
        goto fail;
    if (src->vocab && !(dst->vocab = strdup(src->vocab)))
        goto fail;
    if (src->nlabels) {
        if (!(dst->labels = rnn_xcalloc((size_t)src->nlabels, sizeof(char *))))
            goto fail;
        for (; dst->nlabels < src->nlabels; dst->nlabels++)
            if (!(dst->labels[dst->nlabels] = strdup(src->labels[dst->nlabels])))
                goto fail;
    }
    if (rnn_meta_append(dst, src->loss, src->val_loss, src->nhistory, src->nhistory + 1))
        goto fail;
    return 0;
fail:
    rnn_meta_free(dst);
    return -1;
}

int rnn_meta_take_data(rnn_meta *meta, rnn_dataset *d)
{
    if (!meta->vocab && d->vocab && !(meta->vocab = strdup(d->vocab)))
        return -1;
    if (!meta->nlabels && d->nlabels) {
        meta->labels = d->labels;
        meta->nlabels = d->nlabels;
        d->labels = NULL;
        d->nlabels = 0;
    }
    if (!meta->words.n && d->words.n) {
        meta->words = d->words;
        memset(&d->words, 0, sizeof d->words);
    }
    if (!meta->series.ncolumns && d->series.ncolumns) {
        meta->series = d->series;
        memset(&d->series, 0, sizeof d->series);
    }
    return 0;
}

int rnn_meta_append(rnn_meta *meta, const double *loss, const double *val, int n, int max_points)
{
    if (n <= 0)
        return 0;
    size_t total = (size_t)meta->nhistory + (size_t)n;
    double *l = realloc(meta->loss, total * sizeof(double));
    if (!l)
        return -1;
    meta->loss = l;
    double *v = realloc(meta->val_loss, total * sizeof(double));
    if (!v)
        return -1;
    meta->val_loss = v;
    for (int i = 0; i < n; i++) {
        meta->loss[meta->nhistory + i] = loss[i];
        meta->val_loss[meta->nhistory + i] = val ? val[i] : NAN;
    }
    meta->nhistory += n;
    if (max_points < 2)
        max_points = 2;
    while (meta->nhistory > max_points) {
        /* keep the last point, drop every other one before it */
        int k = 0;
        for (int i = meta->nhistory - 1; i >= 0; i -= 2) k++;
        int w = k;
        for (int i = meta->nhistory - 1; i >= 0; i -= 2) {
            --w;
            meta->loss[w] = meta->loss[i];
            meta->val_loss[w] = meta->val_loss[i];
        }
        meta->nhistory = k;
    }
    return 0;
}

/* ------------------------------------------------------------------ config JSON */

char *rnn_config_json(const rnn_config *c, const rnn_meta *meta)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    const int words = meta && meta->words.n > 0;
    cJSON_AddStringToObject(o, "task", words && c->task == RNN_TASK_CHARLM ? "lm" : rnn_task_name(c->task));
    cJSON_AddStringToObject(o, "mode", rnn_mode_name(c->mode));
    cJSON_AddStringToObject(o, "cell", rnn_cell_name(c->cell));
    cJSON_AddStringToObject(o, "activation", rnn_activation_name(c->act));
    cJSON_AddNumberToObject(o, "input_size", c->input_size);
    cJSON_AddNumberToObject(o, "hidden", c->hidden);
    cJSON_AddNumberToObject(o, "layers", c->layers);
    cJSON_AddNumberToObject(o, "output_size", c->output_size);
    cJSON_AddNumberToObject(o, "embedding", c->embedding);
    if (c->bidirectional)
        cJSON_AddBoolToObject(o, "bidirectional", 1);
    if (c->dropout > 0)
        cJSON_AddNumberToObject(o, "dropout", c->dropout);
    if (words) {
        cJSON *a = cJSON_AddArrayToObject(o, "vocab");
        for (int i = 0; a && i < meta->words.n; i++)
            cJSON_AddItemToArray(a, cJSON_CreateString(meta->words.tok[i]));
        cJSON_AddStringToObject(o, "tokens", "words");
        cJSON_AddBoolToObject(o, "lowercase", meta->words.lowercase);
    } else {
        cJSON_AddStringToObject(o, "vocab", meta && meta->vocab ? meta->vocab : "");
    }
    if (meta && meta->nlabels > 0) {
        cJSON *a = cJSON_AddArrayToObject(o, "labels");
        for (int i = 0; a && i < meta->nlabels; i++)
            cJSON_AddItemToArray(a, cJSON_CreateString(meta->labels[i]));
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* A required key of "rnnd.config", read through the field table. */
static int json_req(const cJSON *o, const char *key, void *out, rnn_err *err)
{
    const int r = rnn_field_get(o, "rnnd.config", key, out, err);
    return r == 0 ? rnn_fail(err, "rnnd.config: missing \"%s\"", key) : r < 0 ? -1 : 0;
}

/* An enum key: each parser has its own pointer type, so it is called
 * directly, never through a cast. */
#define JSON_ENUM(o, key, parse, out, err)                                                  \
    (json_req(o, key, &s, err) ? -1                                                         \
     : parse(s, out) ? rnn_fail(err, "rnnd.config: \"%s\" has an unknown value", key) : 0)

/* A word vocabulary: input_size strings, "<unk>" and "<eos>" first. */
static int parse_words(const cJSON *o, const cJSON *v, const rnn_config *cfg, rnn_words *w, rnn_err *err)
{
    const cJSON *tk = cJSON_GetObjectItemCaseSensitive(o, "tokens");
    const cJSON *lc = cJSON_GetObjectItemCaseSensitive(o, "lowercase");
    if (!cJSON_IsString(tk) || strcmp(tk->valuestring, "words"))
        return rnn_fail(err, "rnnd.config: a \"vocab\" array needs \"tokens\": \"words\"");
    if (lc && !cJSON_IsBool(lc))
        return rnn_fail(err, "rnnd.config: \"lowercase\" must be true or false");
    if (cJSON_GetArraySize(v) != cfg->input_size || cfg->input_size < 2)
        return rnn_fail(err, "rnnd.config: \"vocab\" has %d words, input_size is %d",
                        cJSON_GetArraySize(v), cfg->input_size);
    memset(w, 0, sizeof *w);
    w->lowercase = !lc || cJSON_IsTrue(lc);
    if (!(w->tok = calloc((size_t)cfg->input_size, sizeof(char *))))
        return rnn_fail(err, "out of memory");
    for (const cJSON *e = v->child; e; e = e->next, w->n++)
        if (!cJSON_IsString(e) || !e->valuestring[0] || strlen(e->valuestring) > 256 ||
            !(w->tok[w->n] = strdup(e->valuestring))) {
            rnn_words_free(w);
            return rnn_fail(err, "rnnd.config: \"vocab\"[%d] must be a word", w->n);
        }
    if (strcmp(w->tok[0], rnn_word_unk) || strcmp(w->tok[1], rnn_word_eos) || rnn_words_index(w)) {
        rnn_words_free(w);
        return rnn_fail(err, "rnnd.config: a word \"vocab\" starts with \"<unk>\", \"<eos>\"");
    }
    for (int i = 1; i < w->n; i++)
        if (!strcmp(w->tok[w->order[i]], w->tok[w->order[i - 1]])) {
            rnn_fail(err, "rnnd.config: \"vocab\" holds \"%.40s\" twice", w->tok[w->order[i]]);
            rnn_words_free(w);
            return -1;
        }
    return 0;
}

/* Parses "rnnd.config" into cfg and the vocabulary/labels of meta. */
static int parse_config(const char *json, rnn_config *cfg, rnn_meta *meta, rnn_err *err)
{
    cJSON *o = cJSON_Parse(json);
    int rc = -1;
    if (!o || !cJSON_IsObject(o)) {
        rnn_fail(err, "rnnd.config: not a JSON object");
        goto out;
    }
    memset(cfg, 0, sizeof *cfg);
    const char *s = NULL;
    if (JSON_ENUM(o, "task", rnn_task_parse, &cfg->task, err) ||
        JSON_ENUM(o, "mode", rnn_mode_parse, &cfg->mode, err) ||
        JSON_ENUM(o, "cell", rnn_cell_parse, &cfg->cell, err) ||
        JSON_ENUM(o, "activation", rnn_activation_parse, &cfg->act, err) ||
        json_req(o, "input_size", &cfg->input_size, err) ||
        json_req(o, "hidden", &cfg->hidden, err) ||
        json_req(o, "layers", &cfg->layers, err) ||
        json_req(o, "output_size", &cfg->output_size, err) ||
        json_req(o, "embedding", &cfg->embedding, err) ||
        rnn_field_get(o, "rnnd.config", "bidirectional", &cfg->bidirectional, err) < 0 ||
        rnn_field_get(o, "rnnd.config", "dropout", &cfg->dropout, err) < 0)
        goto out;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "vocab");
    if (!v || !(cJSON_IsString(v) || cJSON_IsArray(v))) {
        rnn_fail(err, "rnnd.config: missing \"vocab\" (a string of characters, \"\" for numeric "
                      "input, or an array of words)");
        goto out;
    }
    /* token input: an embedding, or a vocabulary without one (one-hot) */
    cfg->tokens = cJSON_IsArray(v) || v->valuestring[0] != 0;
    rnn_err cerr;
    if (rnn_config_check(cfg, &cerr)) {
        rnn_fail(err, "rnnd.config: %s", cerr.msg);
        goto out;
    }
    if (cJSON_IsArray(v)) {
        if (parse_words(o, v, cfg, &meta->words, err))
            goto out;
    } else if (rnn_token_input(cfg)) {
        int n = rnn_utf8_decode(v->valuestring, strlen(v->valuestring), NULL, 0);
        if (n != cfg->input_size) {
            rnn_fail(err, "rnnd.config: \"vocab\" has %d characters, input_size is %d", n, cfg->input_size);
            goto out;
        }
        if (!(meta->vocab = strdup(v->valuestring))) {
            rnn_fail(err, "out of memory");
            goto out;
        }
    }
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(o, "labels");
    if (labels) {
        if (!cJSON_IsArray(labels) || cJSON_GetArraySize(labels) != cfg->output_size ||
            cfg->task != RNN_TASK_CLASSIFY) {
            rnn_fail(err, "rnnd.config: \"labels\" must be output_size (%d) strings of a classify model",
                     cfg->output_size);
            goto out;
        }
        meta->labels = rnn_xcalloc((size_t)cfg->output_size, sizeof(char *));
        if (!meta->labels) {
            rnn_fail(err, "out of memory");
            goto out;
        }
        for (const cJSON *l = labels->child; l; l = l->next) {
            if (!cJSON_IsString(l)) {
                rnn_fail(err, "rnnd.config: \"labels\" must be strings");
                goto out;
            }
            meta->labels[meta->nlabels++] = strdup(l->valuestring);
        }
    }
    rc = 0;
out:
    cJSON_Delete(o);
    return rc;
}

/* Provenance keys are informative: a bad one is ignored, never fatal. */
static void parse_provenance(const cJSON *md, rnn_meta *meta)
{
    const cJSON *v;
    if ((v = cJSON_GetObjectItemCaseSensitive(md, "rnnd.created")) && cJSON_IsString(v))
        snprintf(meta->created, sizeof meta->created, "%s", v->valuestring);
    if ((v = cJSON_GetObjectItemCaseSensitive(md, "rnnd.epochs")) && cJSON_IsString(v))
        meta->epochs = atoi(v->valuestring);
    /* the daemon's numbers: a version, the job that trained it */
    const struct { const char *key; long *to; } whole[] = {
        {"rnnd.version", &meta->version}, {"rnnd.job", &meta->job}};
    for (size_t i = 0; i < sizeof whole / sizeof whole[0]; i++)
        if ((v = cJSON_GetObjectItemCaseSensitive(md, whole[i].key)) && cJSON_IsString(v)) {
            char *end;
            const long n = strtol(v->valuestring, &end, 10);
            *whole[i].to = !*end && n > 0 && n < (1L << 53) ? n : 0;
        }
    if ((v = cJSON_GetObjectItemCaseSensitive(md, "rnnd.final_loss")) && cJSON_IsString(v))
        meta->final_loss = strtod(v->valuestring, NULL);
    if ((v = cJSON_GetObjectItemCaseSensitive(md, "rnnd.final_val_loss")) && cJSON_IsString(v))
        meta->final_val_loss = strtod(v->valuestring, NULL);
    if ((v = cJSON_GetObjectItemCaseSensitive(md, "rnnd.loss_history")) && cJSON_IsString(v)) {
        cJSON *h = cJSON_Parse(v->valuestring);
        if (cJSON_IsArray(h)) {
            int n = cJSON_GetArraySize(h);
            double *l = calloc((size_t)n + 1, sizeof(double)), *vl = calloc((size_t)n + 1, sizeof(double));
            int k = 0;
            for (const cJSON *p = h->child; l && vl && p; p = p->next) {
                const cJSON *a = cJSON_GetObjectItemCaseSensitive(p, "loss");
                const cJSON *b = cJSON_GetObjectItemCaseSensitive(p, "val_loss");
                if (!cJSON_IsNumber(a))
                    continue;
                l[k] = a->valuedouble;
                vl[k] = cJSON_IsNumber(b) ? b->valuedouble : NAN;
                k++;
            }
            if (l && vl)
                rnn_meta_append(meta, l, vl, k, k + 1);
            free(l);
            free(vl);
        }
        cJSON_Delete(h);
    }
}

/* ------------------------------------------------------------------ load */

typedef struct span {
    size_t begin, end;
    int tensor;
} span;

static int cmp_span(const void *a, const void *b)
{
    const span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

static uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* A JSON number that is a whole number in [0, max]. */
static int whole(const cJSON *v, double max, size_t *out)
{
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 ||
        v->valuedouble > max)
        return -1;
    *out = (size_t)v->valuedouble;
    return 0;
}

int rnn_model_load_mem(const unsigned char *buf, size_t len, rnn_model *m, rnn_meta *meta,
                       rnn_err *err)
{
    memset(m, 0, sizeof *m);
    rnn_meta_init(meta);
    if (len < 8)
        return rnn_fail(err, "not a safetensors file: %zu bytes, shorter than the 8-byte header length", len);
    const uint64_t hlen = le64(buf);
    if (hlen > RNN_MAX_HEADER)
        return rnn_fail(err, "header length %llu is larger than the limit of %u bytes",
                        (unsigned long long)hlen, RNN_MAX_HEADER);
    if (hlen > len - 8)
        return rnn_fail(err, "header length %llu is larger than the file (%zu bytes after the length)",
                        (unsigned long long)hlen, len - 8);
    if (hlen < 2)
        return rnn_fail(err, "header length %llu is too small for a JSON header", (unsigned long long)hlen);
    const char *hdr = (const char *)buf + 8;
    const unsigned char *data = buf + 8 + hlen;
    const size_t dlen = len - 8 - (size_t)hlen;
    if (rnn_json_nul_at(hdr, (size_t)hlen) >= 0)
        return rnn_fail(err, "header: a string holds \\u0000 (a NUL character)");
    cJSON *root = cJSON_ParseWithLength(hdr, (size_t)hlen);
    span *spans = NULL;
    int rc = -1;
    if (!root || !cJSON_IsObject(root)) {
        rnn_fail(err, "header is not a JSON object");
        goto out;
    }
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(root, "__metadata__");
    if (!md || !cJSON_IsObject(md)) {
        rnn_fail(err, "no __metadata__ in the header: not an rnnd model (rnnd.config missing)");
        goto out;
    }
    for (const cJSON *it = md->child; it; it = it->next)
        if (!cJSON_IsString(it)) {
            rnn_fail(err, "__metadata__.%s: values must be strings", it->string);
            goto out;
        }
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(md, "rnnd.format");
    if (fmt && strcmp(fmt->valuestring, "1") != 0) {
        rnn_fail(err, "rnnd.format \"%s\" is not supported (this rnnd reads format 1)", fmt->valuestring);
        goto out;
    }
    const cJSON *cj = cJSON_GetObjectItemCaseSensitive(md, "rnnd.config");
    if (!cj) {
        rnn_fail(err, "__metadata__ has no rnnd.config (the model's architecture)");
        goto out;
    }
    rnn_config cfg;
    if (parse_config(cj->valuestring, &cfg, meta, err))
        goto out;
    if (rnn_model_init(m, &cfg, err))
        goto out;

    /* every tensor entry: known name, F32, the expected shape, in-range offsets */
    int ntensors = 0;
    for (const cJSON *it = root->child; it; it = it->next)
        ntensors += strcmp(it->string, "__metadata__") != 0;
    spans = rnn_xcalloc((size_t)ntensors, sizeof(span));
    if (!spans) {
        rnn_fail(err, "out of memory");
        goto out;
    }
    int k = 0;
    for (const cJSON *it = root->child; it; it = it->next) {
        if (!strcmp(it->string, "__metadata__"))
            continue;
        const char *name = it->string;
        const rnn_tensor *t = rnn_model_tensor(m, name);
        if (!t) {
            rnn_fail(err, "tensor \"%.60s\" is not part of a %s model with %d layer(s)", name,
                     rnn_cell_name(cfg.cell), cfg.layers);
            goto out;
        }
        for (int j = 0; j < k; j++)
            if (spans[j].tensor == (int)(t - m->tensors)) {
                rnn_fail(err, "tensor \"%s\" appears twice", name);
                goto out;
            }
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(it, "shape");
        const cJSON *of = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
        if (!cJSON_IsObject(it) || !cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(of)) {
            rnn_fail(err, "tensor \"%s\": needs dtype, shape and data_offsets", name);
            goto out;
        }
        if (strcmp(dt->valuestring, "F32")) {
            rnn_fail(err, "tensor \"%s\": dtype %.20s, rnnd reads only F32", name, dt->valuestring);
            goto out;
        }
        int nd = cJSON_GetArraySize(sh);
        size_t dims[2] = {0, 0};
        int shape_ok = nd == t->ndim;
        int d = 0;
        for (const cJSON *x = sh->child; shape_ok && x; x = x->next, d++)
            shape_ok = whole(x, 1e15, &dims[d]) == 0 && dims[d] == (size_t)t->shape[d];
        if (!shape_ok) {
            char want[48];
            if (t->ndim == 2) snprintf(want, sizeof want, "[%d, %d]", t->shape[0], t->shape[1]);
            else snprintf(want, sizeof want, "[%d]", t->shape[0]);
            char *got = cJSON_PrintUnformatted(sh);
            rnn_fail(err, "tensor \"%s\": shape %.40s does not match the config, which needs %s", name,
                     got ? got : "?", want);
            free(got);
            goto out;
        }
        size_t b, e;
        if (cJSON_GetArraySize(of) != 2 || whole(of->child, 1e18, &b) || whole(of->child->next, 1e18, &e) || b > e) {
            rnn_fail(err, "tensor \"%s\": data_offsets must be [begin, end] with begin <= end", name);
            goto out;
        }
        if (e > dlen) {
            rnn_fail(err, "tensor \"%s\": data_offsets [%zu, %zu] run past the data (%zu bytes)", name, b, e, dlen);
            goto out;
        }
        if (e - b != t->size * sizeof(float)) {
            rnn_fail(err, "tensor \"%s\": %zu bytes of data, its shape needs %zu", name, e - b,
                     t->size * sizeof(float));
            goto out;
        }
        spans[k].begin = b;
        spans[k].end = e;
        spans[k].tensor = (int)(t - m->tensors);
        k++;
    }
    if (k != m->ntensors) {
        for (int i = 0; i < m->ntensors; i++) {
            int found = 0;
            for (int j = 0; j < k && !found; j++) found = spans[j].tensor == i;
            if (!found) {
                rnn_fail(err, "tensor \"%s\" is missing", m->tensors[i].name);
                goto out;
            }
        }
    }
    /* the tensors must tile the data exactly: no gap, no overlap, nothing after */
    qsort(spans, (size_t)k, sizeof(span), cmp_span);
    size_t pos = 0;
    for (int j = 0; j < k; j++) {
        if (spans[j].begin < pos) {
            rnn_fail(err, "tensor \"%s\" overlaps the one before it", m->tensors[spans[j].tensor].name);
            goto out;
        }
        if (spans[j].begin > pos) {
            rnn_fail(err, "gap of %zu bytes before tensor \"%s\"", spans[j].begin - pos,
                     m->tensors[spans[j].tensor].name);
            goto out;
        }
        pos = spans[j].end;
    }
    if (pos != dlen) {
        rnn_fail(err, "%zu bytes of data after the last tensor", dlen - pos);
        goto out;
    }
    for (int j = 0; j < k; j++) {
        const rnn_tensor *t = &m->tensors[spans[j].tensor];
        float *dst = m->params + t->offset;
        const unsigned char *src = data + spans[j].begin;
        for (size_t i = 0; i < t->size; i++) {
            uint32_t u = (uint32_t)src[4 * i] | (uint32_t)src[4 * i + 1] << 8 |
                         (uint32_t)src[4 * i + 2] << 16 | (uint32_t)src[4 * i + 3] << 24;
            memcpy(&dst[i], &u, sizeof u);
            if (!isfinite(dst[i])) {
                rnn_fail(err, "tensor \"%s\": value %zu is not finite", t->name, i);
                goto out;
            }
            if (fabsf(dst[i]) > RNN_MAX_WEIGHT) {
                rnn_fail(err, "tensor \"%s\": value %zu is %g, beyond the bound of %g on a weight's "
                              "magnitude (a network with it overflows single precision)",
                         t->name, i, (double)dst[i], RNN_MAX_WEIGHT);
                goto out;
            }
        }
    }
    const cJSON *sj = cJSON_GetObjectItemCaseSensitive(md, "rnnd.series");
    if (sj) {
        if (!cJSON_IsString(sj) || m->cfg.task != RNN_TASK_REGRESSION || rnn_token_input(&m->cfg)) {
            rnn_fail(err, "rnnd.series: only a regression model over numbers has series columns");
            goto out;
        }
        if (rnn_series_parse(sj->valuestring, m->cfg.input_size, m->cfg.output_size, &meta->series, err))
            goto out;
    }
    parse_provenance(md, meta);
    rc = 0;
out:
    free(spans);
    cJSON_Delete(root);
    if (rc) {
        rnn_model_free(m);
        rnn_meta_free(meta);
    }
    return rc;
}

int rnn_model_load(const char *path, rnn_model *m, rnn_meta *meta, rnn_err *err)
{
    memset(m, 0, sizeof *m);
    rnn_meta_init(meta);
    size_t len;
    unsigned char *buf = rnn_file_read(path, 4ULL << 30, &len, err);
    if (!buf)
        return -1;
    rnn_err e;
    int rc = rnn_model_load_mem(buf, len, m, meta, &e);
    free(buf);
    if (rc)
        rnn_fail(err, "%s: %s", path, e.msg);
    return rc;
}

/* ------------------------------------------------------------------ save */

static char *history_json(const rnn_meta *meta)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < meta->nhistory; i++) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddNumberToObject(p, "epoch", i + 1);
        cJSON_AddNumberToObject(p, "loss", meta->loss[i]);
        if (isfinite(meta->val_loss[i]))
            cJSON_AddNumberToObject(p, "val_loss", meta->val_loss[i]);
        else
            cJSON_AddNullToObject(p, "val_loss");
        cJSON_AddItemToArray(a, p);
    }
    char *s = a ? cJSON_PrintUnformatted(a) : NULL;
    cJSON_Delete(a);
    return s;
}

static int model_write(const char *path, const rnn_model *m, const rnn_meta *meta_in, int exclusive,
                       rnn_err *err)
{
    rnn_meta empty;
    rnn_meta_init(&empty);
    const rnn_meta *meta = meta_in ? meta_in : &empty;
    for (size_t i = 0; i < m->nparams; i++)
        if (!isfinite(m->params[i]))
            return rnn_fail(err, "%s: not saved: weight %zu is not finite", path, i);

    cJSON *root = cJSON_CreateObject();
    cJSON *md = cJSON_AddObjectToObject(root, "__metadata__");
    char num[64], *cfg = rnn_config_json(&m->cfg, meta), *hist = history_json(meta);
    cJSON_AddStringToObject(md, "rnnd.format", "1");
    cJSON_AddStringToObject(md, "rnnd.config", cfg ? cfg : "{}");
    char created[40];
    if (meta->created[0]) {
        snprintf(created, sizeof created, "%s", meta->created);
    } else {
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    cJSON_AddStringToObject(md, "rnnd.created", created);
    snprintf(num, sizeof num, "%d", meta->epochs);
    cJSON_AddStringToObject(md, "rnnd.epochs", num);
    if (isfinite(meta->final_loss)) {
        snprintf(num, sizeof num, "%.9g", meta->final_loss);
        cJSON_AddStringToObject(md, "rnnd.final_loss", num);
    }
    if (isfinite(meta->final_val_loss)) {
        snprintf(num, sizeof num, "%.9g", meta->final_val_loss);
        cJSON_AddStringToObject(md, "rnnd.final_val_loss", num);
    }
    if (meta->version > 0) {
        snprintf(num, sizeof num, "%ld", meta->version);
        cJSON_AddStringToObject(md, "rnnd.version", num);
    }
    if (meta->job > 0) {
        snprintf(num, sizeof num, "%ld", meta->job);
        cJSON_AddStringToObject(md, "rnnd.job", num);
    }
    cJSON_AddStringToObject(md, "rnnd.loss_history", hist ? hist : "[]");
    char *series = rnn_series_json(&meta->series);
    if (series)
        cJSON_AddStringToObject(md, "rnnd.series", series);
    free(series);
    free(cfg);
    free(hist);
    size_t off = 0;
    for (int i = 0; i < m->ntensors; i++) {
        const rnn_tensor *t = &m->tensors[i];
        cJSON *e = cJSON_AddObjectToObject(root, t->name);
        cJSON_AddStringToObject(e, "dtype", "F32");
        cJSON *sh = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < t->ndim; d++)
            cJSON_AddItemToArray(sh, cJSON_CreateNumber(t->shape[d]));
        cJSON *of = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
        off += t->size * sizeof(float);
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
    }
    char *hdr = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!hdr)
        return rnn_fail(err, "%s: out of memory", path);
    /* pad the header with spaces so the data starts 8-byte aligned */
    size_t hl = strlen(hdr), padded = (hl + 7) & ~(size_t)7;
    char *h2 = realloc(hdr, padded + 1);
    if (!h2) {
        free(hdr);
        return rnn_fail(err, "%s: out of memory", path);
    }
    hdr = h2;
    memset(hdr + hl, ' ', padded - hl);
    unsigned char lenb[8];
    for (int i = 0; i < 8; i++)
        lenb[i] = (unsigned char)((uint64_t)padded >> (8 * i));

    /* the data is little-endian F32, as the machine's floats on x86-64 */
    const rnn_span parts[] = {{lenb, 8}, {hdr, padded}, {m->params, m->nparams * sizeof(float)}};
    const int rc = exclusive ? rnn_file_create(path, parts, 3, err) : rnn_file_replace(path, parts, 3, err);
    free(hdr);
    return rc;
}

int rnn_model_save(const char *path, const rnn_model *m, const rnn_meta *meta, rnn_err *err)
{
    return model_write(path, m, meta, 0, err);
}

int rnn_model_save_new(const char *path, const rnn_model *m, const rnn_meta *meta, rnn_err *err)
{
    return model_write(path, m, meta, 1, err);
}
