/*
 * Words as tokens (DESIGN.md, "Language tasks"): the tokenizer, the
 * vocabulary a word model carries in its file, lookups into it, and the
 * text of generated tokens.
 *
 * A word is a run of letters and digits (any byte of a multi-byte UTF-8
 * character counts as a letter), with apostrophes inside it ("don't"); any
 * other character that is not white space is a token of its own, so
 * punctuation is split from words. ASCII letters are lowercased unless the
 * model was trained with "lowercase": false. Token 0 is "<unk>" (every word
 * the vocabulary lacks) and token 1 is "<eos>" (the end of a text: a
 * language model learns where sentences end).
 */
#include "internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

const char *const rnn_word_unk = "<unk>", *const rnn_word_eos = "<eos>";

void rnn_words_free(rnn_words *w)
{
    for (int i = 0; w->tok && i < w->n; i++)
        free(w->tok[i]);
    free(w->tok);
    free(w->order);
    memset(w, 0, sizeof *w);
}

static int word_byte(unsigned char c) { return isalnum(c) || c >= 0x80; }

int rnn_words_split(const char *s, int lowercase, char ***out, int *n)
{
    *out = NULL;
    *n = 0;
    int cap = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        if (isspace(*p)) {
            p++;
            continue;
        }
        const unsigned char *b = p;
        if (word_byte(*p)) {
            while (*p && (word_byte(*p) || (*p == '\'' && word_byte(p[1]) && p > b)))
                p++;
        } else {
            p++;
        }
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            char **t = realloc(*out, (size_t)cap * sizeof(char *));
            if (!t)
                goto oom;
            *out = t;
        }
        char *w = strndup((const char *)b, (size_t)(p - b));
        if (!w)
            goto oom;
        for (char *q = w; lowercase && *q; q++)
            *q = (char)tolower((unsigned char)*q);
        (*out)[(*n)++] = w;
    }
    return 0;
oom:
    for (int i = 0; i < *n; i++)
        free((*out)[i]);
    free(*out);
    *out = NULL;
    *n = 0;
    return -1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The lookup order: token ids sorted by their text (qsort takes no
 * context in C11: the table sorted is this thread's). */
static _Thread_local const rnn_words *sort_words;
static int cmp_ids(const void *a, const void *b)
{
    return strcmp(sort_words->tok[*(const int *)a], sort_words->tok[*(const int *)b]);
}

int rnn_words_index(rnn_words *w)
{
    free(w->order);
    if (!(w->order = malloc((size_t)w->n * sizeof(int))))
        return -1;
    for (int i = 0; i < w->n; i++) w->order[i] = i;
    sort_words = w;
    qsort(w->order, (size_t)w->n, sizeof(int), cmp_ids);
    return 0;
}

int rnn_words_find(const rnn_words *w, const char *s)
{
    int lo = 0, hi = w->n - 1;
    while (lo <= hi) {
        const int mid = (lo + hi) / 2, c = strcmp(w->tok[w->order[mid]], s);
        if (c == 0) return w->order[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

/* Counted words, for the vocabulary: the most frequent first, then by text. */
typedef struct counted { const char *s; int count; } counted;
static int by_count(const void *a, const void *b)
{
    const counted *x = a, *y = b;
    return x->count != y->count ? (y->count > x->count ? 1 : -1) : strcmp(x->s, y->s);
}

int rnn_words_vocab(char *const *toks, size_t n, int min_count, int max_vocab, int lowercase,
                    rnn_words *w, rnn_err *err)
{
    memset(w, 0, sizeof *w);
    w->lowercase = lowercase;
    char **sorted = malloc((n ? n : 1) * sizeof(char *));
    counted *cs = malloc((n ? n : 1) * sizeof(counted));
    int rc = -1, nc = 0;
    if (!sorted || !cs) {
        rnn_fail(err, "data: out of memory for the vocabulary");
        goto out;
    }
    memcpy(sorted, toks, n * sizeof(char *));
    qsort(sorted, n, sizeof(char *), cmp_str);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && !strcmp(sorted[j], sorted[i])) j++;
        if ((int)(j - i) >= min_count && strcmp(sorted[i], rnn_word_unk) && strcmp(sorted[i], rnn_word_eos))
            cs[nc++] = (counted){sorted[i], (int)(j - i)};
        i = j;
    }
    qsort(cs, (size_t)nc, sizeof(counted), by_count);
    if (nc > max_vocab - 2)
        nc = max_vocab - 2;
    w->n = nc + 2;
    if (!(w->tok = calloc((size_t)w->n, sizeof(char *)))) {
        rnn_fail(err, "data: out of memory for the vocabulary");
        goto out;
    }
    w->tok[0] = strdup(rnn_word_unk);
    w->tok[1] = strdup(rnn_word_eos);
    for (int i = 0; i < nc; i++)
        w->tok[i + 2] = strdup(cs[i].s);
    for (int i = 0; i < w->n; i++)
        if (!w->tok[i]) {
            rnn_fail(err, "data: out of memory for the vocabulary");
            goto out;
        }
    if (rnn_words_index(w)) {
        rnn_fail(err, "data: out of memory for the vocabulary");
        goto out;
    }
    rc = 0;
out:
    free(sorted);
    free(cs);
    if (rc)
        rnn_words_free(w);
    return rc;
}

int rnn_words_copy(rnn_words *dst, const rnn_words *src)
{
    memset(dst, 0, sizeof *dst);
    if (!src->n)
        return 0;
    dst->lowercase = src->lowercase;
    dst->n = src->n;
    if (!(dst->tok = calloc((size_t)src->n, sizeof(char *))))
        return -1;
    for (int i = 0; i < src->n; i++)
        if (!(dst->tok[i] = strdup(src->tok[i]))) {
            rnn_words_free(dst);
            return -1;
        }
    if (rnn_words_index(dst)) {
        rnn_words_free(dst);
        return -1;
    }
    return 0;
}

/* Generated words as text: a space between two tokens (prev, the one
 * before, may be a prefix's: then the text starts with the space), but none
 * before closing punctuation or after an opening bracket. */
size_t rnn_words_append(char *buf, size_t len, const char *prev, const char *tok)
{
    const int closing = strchr(",.!?;:)]}%'", tok[0]) && tok[1] == 0;
    const int opening = prev && strchr("([{", prev[0]) && prev[1] == 0;
    if ((len > 0 || prev) && !closing && !opening)
        buf[len++] = ' ';
    const size_t l = strlen(tok);
    memcpy(buf + len, tok, l);
    buf[len + l] = 0;
    return len + l;
}
