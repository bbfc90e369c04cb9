/* Training data: sequences with targets, built from a series cut into
 * windows (one column or several: rows), from text for a character model,
 * or from the built-in sine wave. (Sequences given one by one in a job spec
 * are built in job.c; the tables a series comes from, in series.c.) */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void rnn_dataset_free(rnn_dataset *d)
{
    if (!d)
        return;
    free(d->len);
    free(d->off);
    free(d->x);
    free(d->tok);
    free(d->y);
    free(d->cls);
    free(d->vocab);
    for (int i = 0; i < d->nlabels; i++)
        free(d->labels[i]);
    free(d->labels);
    rnn_series_free(&d->series);
    rnn_words_free(&d->words);
    memset(d, 0, sizeof *d);
}

double rnn_dataset_bytes(double n, double steps, int X, int O, rnn_task task, rnn_mode mode)
{
    /* len and off per sequence; inputs (or tokens) per step; targets per
     * sequence or per step: what rnn_dataset_alloc allocates */
    const double targets = mode == RNN_MODE_MANY_TO_MANY ? steps : n;
    return n * (sizeof(int) + sizeof(size_t)) + steps * (X > 0 ? X : 1) * 4.0 +
           targets * (task == RNN_TASK_REGRESSION ? (O > 0 ? O : 1) : 1) * 4.0;
}

int rnn_dataset_alloc(rnn_dataset *d, int n, size_t steps, int X, int O, rnn_task task,
                      rnn_mode mode, rnn_err *err)
{
    memset(d, 0, sizeof *d);
    d->n = n;
    d->X = X;
    d->O = O;
    d->task = task;
    d->mode = mode;
    d->len = rnn_xcalloc((size_t)n, sizeof(int));
    d->off = rnn_xcalloc((size_t)n, sizeof(size_t));
    int ok = d->len && d->off;
    if (X > 0)
        ok = ok && (d->x = rnn_xcalloc(steps, (size_t)X * sizeof(float)));
    else
        ok = ok && (d->tok = rnn_xcalloc(steps, sizeof(int32_t)));
    const size_t targets = mode == RNN_MODE_MANY_TO_MANY ? steps : (size_t)n;
    if (task == RNN_TASK_REGRESSION)
        ok = ok && (d->y = rnn_xcalloc(targets, (size_t)O * sizeof(float)));
    else
        ok = ok && (d->cls = rnn_xcalloc(targets, sizeof(int32_t)));
    if (!ok) {
        rnn_dataset_free(d);
        return rnn_fail(err, "data: out of memory for %d sequences", n);
    }
    return 0;
}

int rnn_dataset_from_rows(rnn_dataset *d, const float *rows, size_t n, int C, const int *target,
                          int O, int window, rnn_mode mode, rnn_err *err)
{
    if (window < 1)
        return rnn_fail(err, "data.window: must be at least 1, got %d", window);
    if (n < (size_t)window + 1)
        return rnn_fail(err, "data.series: needs more than window (%d) rows, got %zu", window, n);
    if (n - window > (size_t)1 << 30 || (n - window) * (double)window * C > (double)((size_t)1 << 34))
        return rnn_fail(err, "data.series: too long (%zu rows in windows of %d)", n, window);
    for (size_t i = 0; i < n * (size_t)C; i++)
        if (!isfinite(rows[i]))
            return rnn_fail(err, "data.series[%zu]: not a finite number", i / (size_t)C);
    const int count = (int)(n - window);
    if (rnn_dataset_alloc(d, count, (size_t)count * window, C, O, RNN_TASK_REGRESSION, mode, err))
        return -1;
    d->in_time = 1;
    /* window i: x_t = row i+t (t < T); many_to_one: y = row i+T's targets;
     * many_to_many: y_t = row i+t+1's targets */
    for (int i = 0; i < count; i++) {
        d->len[i] = window;
        d->off[i] = (size_t)i * window;
        memcpy(d->x + d->off[i] * C, rows + (size_t)i * C, (size_t)window * C * sizeof(float));
        const int ysteps = mode == RNN_MODE_MANY_TO_ONE ? 1 : window;
        float *y = d->y + (mode == RNN_MODE_MANY_TO_ONE ? (size_t)i : d->off[i]) * O;
        for (int t = 0; t < ysteps; t++) {
            const float *next = rows + (size_t)(i + t + (mode == RNN_MODE_MANY_TO_ONE ? window : 1)) * C;
            for (int k = 0; k < O; k++)
                y[(size_t)t * O + k] = next[target[k]];
        }
    }
    return 0;
}

int rnn_dataset_from_series(rnn_dataset *d, const float *s, size_t n, int window,
                            rnn_mode mode, rnn_err *err)
{
    static const int first = 0;
    return rnn_dataset_from_rows(d, s, n, 1, &first, 1, window, mode, err);
}

int rnn_dataset_sine(rnn_dataset *d, int samples, int window, rnn_mode mode, rnn_err *err)
{
    if (samples < 1 || samples > 10000000)
        return rnn_fail(err, "data.samples: must be between 1 and 10000000, got %d", samples);
    if (window < 1 || window > 100000)
        return rnn_fail(err, "data.window: must be between 1 and 100000, got %d", window);
    size_t n = (size_t)samples + window;
    float *s = rnn_falloc(n);
    if (!s)
        return rnn_fail(err, "data: out of memory");
    /* the notes' series: sin(x) for x = 0, 1, 2, ... */
    for (size_t i = 0; i < n; i++)
        s[i] = (float)sin((double)i);
    int rc = rnn_dataset_from_series(d, s, n, window, mode, err);
    free(s);
    return rc;
}

/* ------------------------------------------------------------------ UTF-8 */

static int utf8_one(const unsigned char *s, size_t len, uint32_t *cp)
{
    unsigned c = s[0];
    int n;
    uint32_t v;
    if (c < 0x80) { *cp = c; return 1; }
    else if ((c & 0xe0) == 0xc0) { n = 2; v = c & 0x1f; }
    else if ((c & 0xf0) == 0xe0) { n = 3; v = c & 0x0f; }
    else if ((c & 0xf8) == 0xf0) { n = 4; v = c & 0x07; }
    else return -1;
    if ((size_t)n > len)
        return -1;
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return -1;
        v = (v << 6) | (s[i] & 0x3f);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min[n] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return -1;
    *cp = v;
    return n;
}

int rnn_utf8_decode(const char *s, size_t len, uint32_t *out, size_t max)
{
    size_t i = 0, k = 0;
    while (i < len) {
        uint32_t cp;
        int n = utf8_one((const unsigned char *)s + i, len - i, &cp);
        if (n < 0)
            return -1;
        if (out && k < max)
            out[k] = cp;
        k++;
        i += (size_t)n;
        if (k > (size_t)0x7fffffff)
            return -1;
    }
    return (int)k;
}

static int utf8_put(uint32_t cp, char *b)
{
    if (cp < 0x80) { b[0] = (char)cp; return 1; }
    if (cp < 0x800) { b[0] = (char)(0xc0 | (cp >> 6)); b[1] = (char)(0x80 | (cp & 0x3f)); return 2; }
    if (cp < 0x10000) {
        b[0] = (char)(0xe0 | (cp >> 12)); b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    b[0] = (char)(0xf0 | (cp >> 18)); b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    b[2] = (char)(0x80 | ((cp >> 6) & 0x3f)); b[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

int rnn_vocab_index(const char *vocab, uint32_t cp)
{
    const unsigned char *s = (const unsigned char *)vocab;
    size_t len = strlen(vocab), i = 0;
    int k = 0;
    while (i < len) {
        uint32_t c;
        int n = utf8_one(s + i, len - i, &c);
        if (n < 0)
            return -1;
        if (c == cp)
            return k;
        i += (size_t)n;
        k++;
    }
    return -1;
}

int rnn_vocab_char(const char *vocab, int idx, char *buf)
{
    const unsigned char *s = (const unsigned char *)vocab;
    size_t len = strlen(vocab), i = 0;
    int k = 0;
    while (i < len) {
        uint32_t c;
        int n = utf8_one(s + i, len - i, &c);
        if (n < 0)
            break;
        if (k == idx) {
            int w = utf8_put(c, buf);
            buf[w] = 0;
            return w;
        }
        i += (size_t)n;
        k++;
    }
    buf[0] = 0;
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

char *rnn_vocab_of(const char *text, size_t len)
{
    int n = rnn_utf8_decode(text, len, NULL, 0);
    if (n < 0)
        return NULL;
    uint32_t *cps = rnn_xcalloc((size_t)n, sizeof(uint32_t));
    char *voc = cps ? rnn_xcalloc((size_t)n * 4 + 1, 1) : NULL;
    if (voc) {
        rnn_utf8_decode(text, len, cps, (size_t)n);
        qsort(cps, (size_t)n, sizeof(uint32_t), cmp_u32);
        size_t p = 0;
        for (int i = 0; i < n; i++)
            if (i == 0 || cps[i] != cps[i - 1])
                p += (size_t)utf8_put(cps[i], voc + p);
        voc[p] = 0;
    }
    free(cps);
    return voc;
}

static int vocab_find(const uint32_t *set, int V, uint32_t cp)
{
    const uint32_t *hit = bsearch(&cp, set, (size_t)V, sizeof(uint32_t), cmp_u32);
    return hit ? (int)(hit - set) : -1;
}

int rnn_dataset_from_text(rnn_dataset *d, const char *text, size_t len, int window,
                          const char *vocab, rnn_err *err)
{
    memset(d, 0, sizeof *d);
    if (window < 1)
        return rnn_fail(err, "data.window: must be at least 1, got %d", window);
    int n = rnn_utf8_decode(text, len, NULL, 0);
    if (n < 0)
        return rnn_fail(err, "data.text: not valid UTF-8");
    if (n < window + 1)
        return rnn_fail(err, "data.text: needs more than window (%d) characters, got %d", window, n);
    uint32_t *cps = rnn_xcalloc((size_t)n, sizeof(uint32_t));
    uint32_t *set = NULL;
    char *voc = NULL;
    int32_t *ids = rnn_xcalloc((size_t)n, sizeof(int32_t));
    int rc = -1;
    if (!cps || !ids) {
        rnn_fail(err, "data: out of memory");
        goto fail;
    }
    rnn_utf8_decode(text, len, cps, (size_t)n);
    voc = vocab ? strdup(vocab) : rnn_vocab_of(text, len);
    if (!voc) {
        rnn_fail(err, "data: out of memory");
        goto fail;
    }
    const int V = rnn_utf8_decode(voc, strlen(voc), NULL, 0);
    if (V < 1) {
        rnn_fail(err, "vocab: empty or not valid UTF-8");
        goto fail;
    }
    /* the derived vocabulary is sorted, so its code points can be searched */
    if (!vocab) {
        set = rnn_xcalloc((size_t)V, sizeof(uint32_t));
        if (!set) {
            rnn_fail(err, "data: out of memory");
            goto fail;
        }
        rnn_utf8_decode(voc, strlen(voc), set, (size_t)V);
    }
    for (int i = 0; i < n; i++) {
        int k = vocab ? rnn_vocab_index(voc, cps[i]) : vocab_find(set, V, cps[i]);
        if (k < 0) {
            char c[5] = {0};
            utf8_put(cps[i], c);
            rnn_fail(err, "data.text: character %d ('%s') is not in the model's vocabulary", i, c);
            goto fail;
        }
        ids[i] = k;
    }
    const int count = (n - 1) / window;
    if (rnn_dataset_alloc(d, count, (size_t)count * window, 0, 0, RNN_TASK_CHARLM,
                          RNN_MODE_MANY_TO_MANY, err))
        goto fail;
    for (int i = 0; i < count; i++) {
        d->len[i] = window;
        d->off[i] = (size_t)i * window;
        memcpy(d->tok + d->off[i], ids + (size_t)i * window, (size_t)window * sizeof(int32_t));
        memcpy(d->cls + d->off[i], ids + (size_t)i * window + 1, (size_t)window * sizeof(int32_t));
    }
    d->vocab = voc;
    d->vocab_n = V;
    voc = NULL;
    rc = 0;
fail:
    free(cps);
    free(set);
    free(ids);
    free(voc);
    return rc;
}
