/*
 * Datasets of text for a language model or a classifier (DESIGN.md,
 * "Language tasks"): a corpus ("text", or a text file) or several texts
 * ("texts") as one stream of tokens cut into windows for an lm, or texts
 * with their labels, each one sequence, for a classifier. Tokens are words
 * (words.c; "<eos>" closes each of several texts, so a model learns where
 * sentences end) or characters (the sorted set a corpus holds; several
 * texts are joined by a newline).
 */
#include "rnn/job.h"
#include "internal.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

/* The texts of data: "texts" (an array of strings) or the one "text". */
static int texts_of(const cJSON *dj, const char *text, const char ***out, int *n, rnn_err *err)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(dj, "texts");
    *out = NULL;
    *n = 0;
    if (!a) {
        if (!(*out = malloc(sizeof(char *))))
            return rnn_fail(err, "data: out of memory");
        (*out)[(*n)++] = text;
        return 0;
    }
    if (!cJSON_IsArray(a) || !a->child)
        return rnn_fail(err, "data.texts: must be a non-empty array of strings");
    if (!(*out = malloc((size_t)cJSON_GetArraySize(a) * sizeof(char *))))
        return rnn_fail(err, "data: out of memory");
    for (const cJSON *t = a->child; t; t = t->next, (*n)++) {
        if (!cJSON_IsString(t) || !t->valuestring[0]) {
            free(*out);
            *out = NULL;
            return rnn_fail(err, "data.texts[%d]: must be a non-empty string", *n);
        }
        (*out)[*n] = t->valuestring;
    }
    return 0;
}

/* Every text as words, and the vocabulary (the base model's, or built
 * from them): ids[t] (lens[t] of them) per text. */
static int word_ids(const rnn_job *job, const char **texts, int n, rnn_words *w, int32_t ***ids,
                    int **lens, rnn_err *err)
{
    char ***toks = calloc((size_t)n, sizeof(char **));
    *ids = calloc((size_t)n, sizeof(int32_t *));
    *lens = calloc((size_t)n, sizeof(int));
    size_t total = 0;
    int rc = -1;
    char **all = NULL;
    const int lower = job->base_words ? job->base_words->lowercase : job->lowercase;
    if (!toks || !*ids || !*lens) {
        rnn_fail(err, "data: out of memory");
        goto out;
    }
    for (int t = 0; t < n; t++) {
        if (rnn_words_split(texts[t], lower, &toks[t], &(*lens)[t])) {
            rnn_fail(err, "data: out of memory");
            goto out;
        }
        total += (size_t)(*lens)[t];
    }
    if (job->base_words) {
        if (rnn_words_copy(w, job->base_words)) {
            rnn_fail(err, "data: out of memory");
            goto out;
        }
    } else {
        if (!(all = calloc(total ? total : 1, sizeof(char *)))) {
            rnn_fail(err, "data: out of memory");
            goto out;
        }
        size_t k = 0;
        for (int t = 0; t < n; t++)
            for (int i = 0; i < (*lens)[t]; i++) all[k++] = toks[t][i];
        if (rnn_words_vocab(all, total, job->min_count, job->max_vocab, lower, w, err))
            goto out;
    }
    for (int t = 0; t < n; t++) {
        if (!((*ids)[t] = malloc(((size_t)(*lens)[t] + 1) * sizeof(int32_t)))) {
            rnn_fail(err, "data: out of memory");
            goto out;
        }
        for (int i = 0; i < (*lens)[t]; i++) {
            const int id = rnn_words_find(w, toks[t][i]);
            (*ids)[t][i] = id < 0 ? 0 : id;
        }
    }
    rc = 0;
out:
    for (int t = 0; toks && t < n; t++) {
        for (int i = 0; toks[t] && i < (*lens)[t]; i++) free(toks[t][i]);
        free(toks[t]);
    }
    free(toks);
    free(all);
    return rc;
}

static void free_ids(int32_t **ids, int *lens, int n)
{
    for (int t = 0; ids && t < n; t++) free(ids[t]);
    free(ids);
    free(lens);
}

/* lm over words: the texts' tokens, each of several texts closed by
 * "<eos>", in windows of T at stride T, each token predicting the next. */
static int lm_words(rnn_job *job, const char **texts, int n, int several, int T, rnn_dataset *d,
                    rnn_err *err)
{
    rnn_words w = {0};
    int32_t **ids = NULL;
    int *lens = NULL, rc = -1;
    int32_t *stream = NULL;
    if (word_ids(job, texts, n, &w, &ids, &lens, err))
        goto out;
    size_t total = 0;
    for (int t = 0; t < n; t++) total += (size_t)lens[t] + (several ? 1 : 0);
    if (!(stream = malloc((total ? total : 1) * sizeof(int32_t)))) {
        rnn_fail(err, "data: out of memory");
        goto out;
    }
    size_t k = 0;
    for (int t = 0; t < n; t++) {
        memcpy(stream + k, ids[t], (size_t)lens[t] * sizeof(int32_t));
        k += (size_t)lens[t];
        if (several) stream[k++] = 1; /* <eos> */
    }
    if (total < (size_t)T + 1) {
        rnn_fail(err, "data: needs more than window (%d) words, got %zu", T, total);
        goto out;
    }
    const int count = (int)((total - 1) / (size_t)T);
    if (rnn_dataset_alloc(d, count, (size_t)count * T, 0, 0, RNN_TASK_CHARLM, RNN_MODE_MANY_TO_MANY, err))
        goto out;
    for (int i = 0; i < count; i++) {
        d->len[i] = T;
        d->off[i] = (size_t)i * T;
        memcpy(d->tok + d->off[i], stream + (size_t)i * T, (size_t)T * sizeof(int32_t));
        memcpy(d->cls + d->off[i], stream + (size_t)i * T + 1, (size_t)T * sizeof(int32_t));
    }
    d->words = w;
    memset(&w, 0, sizeof w);
    rc = 0;
out:
    rnn_words_free(&w);
    free_ids(ids, lens, n);
    free(stream);
    return rc;
}

/* lm over characters from several texts: one corpus, a newline between. */
static int lm_chars(const char **texts, int n, int T, const char *vocab, rnn_dataset *d, rnn_err *err)
{
    size_t total = 0;
    for (int t = 0; t < n; t++) total += strlen(texts[t]) + 1;
    char *all = malloc(total + 1);
    if (!all)
        return rnn_fail(err, "data: out of memory");
    size_t k = 0;
    for (int t = 0; t < n; t++) {
        const size_t l = strlen(texts[t]);
        memcpy(all + k, texts[t], l);
        k += l;
        if (t + 1 < n) all[k++] = '\n';
    }
    all[k] = 0;
    const int rc = rnn_dataset_from_text(d, all, k, T, vocab, err);
    free(all);
    return rc;
}

/* The class of each text: label strings (classes in sorted order) or
 * class numbers. */
static int label_classes(const cJSON *labels, int n, rnn_dataset *d, rnn_err *err)
{
    if (!cJSON_IsArray(labels))
        return rnn_fail(err, "data.labels: missing (the label of each text)");
    if (cJSON_GetArraySize(labels) != n)
        return rnn_fail(err, "data.labels: %d labels for %d texts", cJSON_GetArraySize(labels), n);
    const int strings = cJSON_IsString(labels->child);
    char **names = strings ? calloc((size_t)n, sizeof(char *)) : NULL;
    int nn = 0, i = 0, top = 0;
    if (strings && !names)
        return rnn_fail(err, "data: out of memory");
    for (const cJSON *l = labels->child; l; l = l->next, i++) {
        if (strings ? !cJSON_IsString(l) || !l->valuestring[0]
                    : !cJSON_IsNumber(l) || l->valuedouble < 0 || l->valuedouble >= 65536 ||
                          l->valuedouble != (int)l->valuedouble) {
            free(names);
            return rnn_fail(err, "data.labels[%d]: must be %s, like the first", i,
                            strings ? "a non-empty string" : "a class number from 0");
        }
        if (!strings && (int)l->valuedouble + 1 > top) top = (int)l->valuedouble + 1;
        int seen = 0;
        for (int k = 0; strings && k < nn && !seen; k++) seen = !strcmp(names[k], l->valuestring);
        if (strings && !seen) names[nn++] = l->valuestring;
    }
    if (strings) {
        /* the classes, sorted */
        for (int a = 1; a < nn; a++)
            for (int b = a; b > 0 && strcmp(names[b - 1], names[b]) > 0; b--) {
                char *t = names[b]; names[b] = names[b - 1]; names[b - 1] = t;
            }
        if (!(d->labels = calloc((size_t)nn, sizeof(char *)))) {
            free(names);
            return rnn_fail(err, "data: out of memory");
        }
        for (int k = 0; k < nn; k++)
            if (!(d->labels[d->nlabels++] = strdup(names[k]))) {
                free(names);
                return rnn_fail(err, "data: out of memory");
            }
        top = nn;
    }
    i = 0;
    for (const cJSON *l = labels->child; l; l = l->next, i++) {
        int k = strings ? 0 : (int)l->valuedouble;
        while (strings && strcmp(names[k], l->valuestring)) k++;
        d->cls[i] = k;
    }
    free(names);
    if (top < 2)
        return rnn_fail(err, "data.labels: a classifier needs at least two classes, got %d", top);
    return top;
}

/* classify: each text one sequence of tokens, its label the target. */
static int classify_texts(rnn_job *job, const cJSON *dj, const char **texts, int n, const char *vocab,
                          rnn_dataset *d, rnn_err *err)
{
    int32_t **ids = NULL;
    int *lens = NULL, rc = -1;
    rnn_words w = {0};
    char *chars = NULL;
    if (job->words) {
        if (word_ids(job, texts, n, &w, &ids, &lens, err))
            goto out;
    } else {
        /* characters: the vocabulary given, or the sorted set of every text's */
        size_t total = 0;
        for (int t = 0; t < n; t++) total += strlen(texts[t]);
        char *all = malloc(total + 1);
        if (!all) { rnn_fail(err, "data: out of memory"); goto out; }
        size_t k = 0;
        for (int t = 0; t < n; t++) { memcpy(all + k, texts[t], strlen(texts[t])); k += strlen(texts[t]); }
        all[k] = 0;
        chars = vocab ? strdup(vocab) : rnn_vocab_of(all, k);
        free(all);
        ids = calloc((size_t)n, sizeof(int32_t *));
        lens = calloc((size_t)n, sizeof(int));
        if (!chars || !ids || !lens) { rnn_fail(err, "data: not valid UTF-8, or out of memory"); goto out; }
        for (int t = 0; t < n; t++) {
            const size_t l = strlen(texts[t]);
            const int m = rnn_utf8_decode(texts[t], l, NULL, 0);
            uint32_t *cps = m > 0 ? malloc((size_t)m * sizeof(uint32_t)) : NULL;
            if (!cps || !(ids[t] = malloc((size_t)m * sizeof(int32_t)))) {
                free(cps);
                rnn_fail(err, "data.texts[%d]: not valid UTF-8", t);
                goto out;
            }
            rnn_utf8_decode(texts[t], l, cps, (size_t)m);
            for (int i = 0; i < m; i++)
                if ((ids[t][i] = rnn_vocab_index(chars, cps[i])) < 0) {
                    free(cps);
                    rnn_fail(err, "data.texts[%d][%d]: a character not in the model's vocabulary", t, i);
                    goto out;
                }
            free(cps);
            lens[t] = m;
        }
    }
    size_t steps = 0;
    for (int t = 0; t < n; t++) {
        if (lens[t] < 1) {
            rnn_fail(err, "data.texts[%d]: no %s in it", t, job->words ? "words" : "characters");
            goto out;
        }
        steps += (size_t)lens[t];
    }
    if (rnn_dataset_alloc(d, n, steps, 0, 0, RNN_TASK_CLASSIFY, RNN_MODE_MANY_TO_ONE, err))
        goto out;
    size_t off = 0;
    for (int t = 0; t < n; t++) {
        d->len[t] = lens[t];
        d->off[t] = off;
        memcpy(d->tok + off, ids[t], (size_t)lens[t] * sizeof(int32_t));
        off += (size_t)lens[t];
    }
    const int classes = label_classes(cJSON_GetObjectItemCaseSensitive(dj, "labels"), n, d, err);
    if (classes < 0)
        goto out;
    job->cfg.output_size = classes;
    if (job->words) {
        d->words = w;
        d->vocab_n = w.n;
        memset(&w, 0, sizeof w);
    } else {
        d->vocab = chars;
        d->vocab_n = rnn_utf8_decode(chars, strlen(chars), NULL, 0);
        chars = NULL;
    }
    rc = 0;
out:
    if (rc)
        rnn_dataset_free(d);
    rnn_words_free(&w);
    free(chars);
    free_ids(ids, lens, n);
    return rc;
}

int rnn_texts_dataset(rnn_job *job, const cJSON *dj, const char *text, const char *vocab, int T,
                      rnn_dataset *d, rnn_err *err)
{
    memset(d, 0, sizeof *d);
    rnn_config *c = &job->cfg;
    const char **texts = NULL;
    int n = 0, rc;
    if (texts_of(dj, text, &texts, &n, err))
        return -1;
    const int several = cJSON_GetObjectItemCaseSensitive(dj, "texts") != NULL;
    if (c->task == RNN_TASK_CLASSIFY)
        rc = classify_texts(job, dj, texts, n, vocab, d, err);
    else if (T < 1)
        rc = rnn_fail(err, "data.window: missing (tokens per training sequence)");
    else if (job->words)
        rc = lm_words(job, texts, n, several, T, d, err);
    else
        rc = lm_chars(texts, n, T, vocab, d, err);
    free(texts);
    if (rc)
        return -1;
    const int V = d->words.n ? d->words.n : d->vocab_n;
    c->input_size = V;
    if (c->task != RNN_TASK_CLASSIFY) {
        c->output_size = V;
        c->mode = RNN_MODE_MANY_TO_MANY;
    }
    c->tokens = 1;
    return 0;
}
