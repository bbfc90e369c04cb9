/*
 * The table of every key a user writes into a job spec, a prediction
 * request or a model's "rnnd.config" (rnn/fields.h), and the readers that
 * check a JSON value against its row: type first, then range, with the
 * key's full path in the message ("optimizer.lr: must be between 1e-12 and
 * 100, got 500"). A limit changed here changes every parser and the docs.
 */
#include "rnn/fields.h"
#include "internal.h"

#include <cJSON.h>
#include <math.h>
#include <string.h>

#define SEED_MAX 9007199254740991.0     /* 2^53 - 1: exact in a JSON number */
#define DIM_MAX 65536.0
#define HIDDEN_MAX 16384.0
#define SERVER NAN                      /* an upper bound the server sets */

static const rnn_field fields[] = {
    /* the job spec, top level */
    {"job", "model", RNN_F_STR, 0, 0, "(none)", "name to save and serve the model under: 1-64 of A-Z a-z 0-9 _ . - (POST /train needs it)"},
    {"job", "task", RNN_F_STR, 0, 0, "regression", "regression, classify, or lm (a language model; charlm is lm over characters)"},
    {"job", "mode", RNN_F_STR, 0, 0, "many_to_one", "many_to_one or many_to_many (lm: many_to_many)"},
    {"job", "cell", RNN_F_STR, 0, 0, "lstm", "rnn, lstm or gru"},
    {"job", "activation", RNN_F_STR, 0, 0, "tanh", "tanh, relu or sigmoid (vanilla rnn only)"},
    {"job", "hidden", RNN_F_INT, 1, HIDDEN_MAX, "64", "hidden units per layer"},
    {"job", "layers", RNN_F_INT, 1, RNN_MAX_LAYERS, "1", "stacked layers"},
    {"job", "embedding", RNN_F_INT, 0, HIDDEN_MAX, "16", "embedding size of token input (lm, text classify); 0: one-hot"},
    {"job", "bidirectional", RNN_F_BOOL, 0, 0, "false", "every layer also reads each sequence backwards, as PyTorch's bidirectional=True (not lm; bptt 0)"},
    {"job", "dropout", RNN_F_NUM, 0, 0.99, "0", "training: drop each input of the layers above the first with this probability (layers >= 2), as PyTorch's dropout"},
    {"job", "tokens", RNN_F_STR, 0, 0, "chars", "text as chars or words (lm, text classify)"},
    {"job", "lowercase", RNN_F_BOOL, 0, 0, "true", "words: lowercase ASCII letters first"},
    {"job", "min_count", RNN_F_INT, 1, 1e9, "1", "words: seen fewer times, a word is <unk>"},
    {"job", "max_vocab", RNN_F_INT, 3, 1000000, "20000", "words: the vocabulary's size at most, <unk> and <eos> included"},
    {"job", "init", RNN_F_OBJ, 0, 0, "", "weight initialisation (below)"},
    {"job", "data", RNN_F_OBJ, 0, 0, "(required)", "the training data: sequences, series, text, file or generator"},
    {"job", "validation", RNN_F_NUM, 0, 0.9, "0", "fraction of sequences held out for the validation loss"},
    {"job", "validation_split", RNN_F_STR, 0, 0, "last (series), random", "which: the last windows in time, or sequences at random"},
    {"job", "epochs", RNN_F_INT, 0, 1000000, "10", "passes over the training data"},
    {"job", "batch", RNN_F_INT, 1, 65536, "32", "sequences per optimizer step"},
    {"job", "shuffle", RNN_F_BOOL, 0, 0, "true", "shuffle the sequences (and batches) every epoch"},
    {"job", "optimizer", RNN_F_OBJ, 0, 0, "adam", "the optimizer (below)"},
    {"job", "clip", RNN_F_NUM, 0, 1e9, "0", "largest global L2 norm of the gradient; 0: no clipping"},
    {"job", "bptt", RNN_F_INT, 0, 1000000, "0", "truncated backpropagation every k steps; 0: through the whole sequence"},
    {"job", "from_scratch", RNN_F_BOOL, 0, 0, "false", "POST /train: train a new model even when one of that name is served"},
    {"job", "lr_schedule", RNN_F_OBJ, 0, 0, "(none)", "the learning rate per epoch: step, cosine or plateau (below)"},
    {"job", "early_stopping", RNN_F_OBJ, 0, 0, "(none)", "stop when the loss stops improving, keeping the best epoch's weights (below)"},
    {"init", "seed", RNN_F_LONG, 0, SEED_MAX, "1", "seed of the initial weights, the shuffles and the validation split"},
    {"init", "recurrent", RNN_F_STR, 0, 0, "default", "default, identity or orthogonal recurrent weights"},
    {"optimizer", "name", RNN_F_STR, 0, 0, "adam", "sgd, or adam (adamw: the same, decoupled weight decay)"},
    {"optimizer", "lr", RNN_F_NUM, 1e-12, 100, "0.001 (sgd 0.01)", "learning rate"},
    {"optimizer", "weight_decay", RNN_F_NUM, 0, 10, "0", "L2 penalty (sgd), decoupled decay (adam)"},
    {"optimizer", "momentum", RNN_F_NUM, 0, 0.9999, "0", "sgd only"},
    {"optimizer", "nesterov", RNN_F_BOOL, 0, 0, "false", "sgd only; needs momentum > 0"},
    {"optimizer", "beta1", RNN_F_NUM, 0, 0.9999999, "0.9", "adam only"},
    {"optimizer", "beta2", RNN_F_NUM, 0, 0.9999999, "0.999", "adam only"},
    {"optimizer", "eps", RNN_F_NUM, 1e-30, 1, "1e-8", "adam only"},
    /* schedules and early stopping watch the validation loss, or the training loss without validation */
    {"lr_schedule", "name", RNN_F_STR, 0, 0, "(required)", "step (StepLR), cosine (CosineAnnealingLR) or plateau (ReduceLROnPlateau)"},
    {"lr_schedule", "step_size", RNN_F_INT, 1, 1000000, "(required)", "step: epochs between two decays"},
    {"lr_schedule", "gamma", RNN_F_NUM, 1e-12, 10, "0.1", "step: factor of each decay"},
    {"lr_schedule", "t_max", RNN_F_INT, 1, 1000000, "epochs", "cosine: epochs from the base rate down to eta_min"},
    {"lr_schedule", "eta_min", RNN_F_NUM, 0, 100, "0", "cosine: the lowest rate"},
    {"lr_schedule", "factor", RNN_F_NUM, 1e-12, 0.999999, "0.1", "plateau: factor of each reduction"},
    {"lr_schedule", "patience", RNN_F_INT, 0, 1000000, "10", "plateau: epochs without improvement before a reduction"},
    {"lr_schedule", "threshold", RNN_F_NUM, 0, 1, "1e-4", "plateau: an improvement beats the best loss by this fraction"},
    {"lr_schedule", "cooldown", RNN_F_INT, 0, 1000000, "0", "plateau: epochs after a reduction before counting again"},
    {"lr_schedule", "min_lr", RNN_F_NUM, 0, 100, "0", "plateau: the lowest rate"},
    {"early_stopping", "patience", RNN_F_INT, 1, 1000000, "(required)", "epochs without improvement before training stops"},
    {"early_stopping", "min_delta", RNN_F_NUM, 0, 1e30, "0", "an improvement lowers the best loss by more than this"},
    /* the shapes of "data" */
    {"data.sequences", "sequences", RNN_F_ANY, 0, 0, "(required)", "sequences: arrays of steps, each a number or input_size numbers (or a string for text)"},
    {"data.sequences", "targets", RNN_F_ANY, 0, 0, "(required)", "one target per sequence (many_to_many: per step)"},
    {"data.sequences", "labels", RNN_F_ANY, 0, 0, "(none)", "classify: names of the classes"},
    {"data.series", "series", RNN_F_ANY, 0, 0, "(required)", "numbers, or rows of numbers (one per column), cut into windows"},
    {"data.series", "window", RNN_F_INT, 1, 100000, "(required)", "steps per training sequence"},
    {"data.series", "target", RNN_F_ANY, 0, 0, "every column", "the column (number from 0) or columns predicted"},
    {"data.series", "normalize", RNN_F_STR, 0, 0, "none", "zscore: train on z-scores, the statistics kept in the model; requests and replies stay in the data's units"},
    {"data.text", "text", RNN_F_STR, 0, 0, "(required)", "a corpus (lm)"},
    {"data.text", "window", RNN_F_INT, 1, 100000, "(required)", "tokens (characters or words) per training sequence"},
    {"data.texts", "texts", RNN_F_ANY, 0, 0, "(required)", "sentences or documents: an lm learns where each ends; a classifier takes each as a sequence"},
    {"data.texts", "labels", RNN_F_ANY, 0, 0, "(classify: required)", "classify: the label of each text (strings or class numbers)"},
    {"data.texts", "window", RNN_F_INT, 1, 100000, "(lm: required)", "lm: tokens per training sequence"},
    {"data.file", "file", RNN_F_STR, 0, 0, "(required)", "a file in data_dir: CSV of numbers, with or without a header row (regression), or text (lm)"},
    {"data.file", "window", RNN_F_INT, 1, 100000, "(required)", "steps per training sequence"},
    {"data.file", "columns", RNN_F_ANY, 0, 0, "every column", "CSV: the columns read, by header name (or number from 0), in this order"},
    {"data.file", "target", RNN_F_ANY, 0, 0, "every column read", "CSV: the column or columns predicted, among those read"},
    {"data.file", "normalize", RNN_F_STR, 0, 0, "none", "CSV: zscore, as for data.series"},
    {"data.generator", "generator", RNN_F_STR, 0, 0, "(required)", "\"sine\": the sine wave of the project's notes"},
    {"data.generator", "samples", RNN_F_INT, 1, 1000000, "200", "windows generated"},
    {"data.generator", "window", RNN_F_INT, 1, 100000, "(required)", "steps per window"},
    /* POST /predict and rnnd predict */
    {"predict", "model", RNN_F_STR, 0, 0, "the only model", "the model to ask (may be left out when one is loaded)"},
    {"predict", "version", RNN_F_LONG, 1, SEED_MAX, "the served one", "a kept version to answer instead"},
    {"predict", "sequence", RNN_F_ANY, 0, 0, "", "one sequence: numbers, or arrays of input_size numbers (a string for text)"},
    {"predict", "sequences", RNN_F_ANY, 0, 0, "", "several sequences, answered in one batched pass"},
    {"predict", "steps", RNN_F_INT, 0, SERVER, "0", "regression: forecast this many steps, each fed back (at most max_sequence_length)"},
    {"predict", "return_sequences", RNN_F_BOOL, 0, 0, "false", "add the output of every step"},
    {"predict", "text", RNN_F_STR, 0, 0, "", "lm: the prefix to continue; classify over text: the text"},
    {"predict", "texts", RNN_F_ANY, 0, 0, "", "classify over text: several texts, answered as \"predictions\""},
    {"predict", "top", RNN_F_INT, 1, 1000, "", "lm: the K likeliest next tokens after text, with their probabilities"},
    {"predict", "top_k", RNN_F_INT, 0, 1000000, "0", "lm: sample among the k likeliest tokens only (0: all)"},
    {"predict", "top_p", RNN_F_NUM, 0, 1, "1", "lm: sample among the likeliest tokens whose probabilities add up to p"},
    {"predict", "beam", RNN_F_INT, 1, 16, "", "lm: beam search with this many hypotheses instead of sampling; the reply adds its log-probability, \"score\""},
    {"predict", "length", RNN_F_INT, 0, 1e9, "100", "lm: tokens to generate (at most max_sequence_length)"},
    {"predict", "temperature", RNN_F_NUM, 0, 100, "1", "lm: sampling temperature; 0 picks the likeliest"},
    {"predict", "seed", RNN_F_LONG, 0, SEED_MAX, "random", "lm: seed of the sampling"},
    /* a model file's "rnnd.config" */
    {"rnnd.config", "task", RNN_F_STR, 0, 0, "(required)", "regression, classify, charlm (an lm over characters) or lm (over words)"},
    {"rnnd.config", "mode", RNN_F_STR, 0, 0, "(required)", "many_to_one or many_to_many"},
    {"rnnd.config", "cell", RNN_F_STR, 0, 0, "(required)", "rnn, lstm or gru"},
    {"rnnd.config", "activation", RNN_F_STR, 0, 0, "(required)", "tanh, relu or sigmoid"},
    {"rnnd.config", "input_size", RNN_F_INT, 1, DIM_MAX, "(required)", "features per step, or the vocabulary size of token input"},
    {"rnnd.config", "hidden", RNN_F_INT, 1, HIDDEN_MAX, "(required)", "hidden units per layer"},
    {"rnnd.config", "layers", RNN_F_INT, 1, RNN_MAX_LAYERS, "(required)", "stacked layers"},
    {"rnnd.config", "output_size", RNN_F_INT, 1, DIM_MAX, "(required)", "outputs, classes, or the vocabulary size"},
    {"rnnd.config", "embedding", RNN_F_INT, 0, HIDDEN_MAX, "(required)", "embedding size; 0: none"},
    {"rnnd.config", "bidirectional", RNN_F_BOOL, 0, 0, "false", "every layer also reads the sequence backwards (PyTorch's _reverse tensors; head.weight is [O, 2 hidden])"},
    {"rnnd.config", "dropout", RNN_F_NUM, 0, 0.99, "0", "the dropout between stacked layers it was trained with (none at inference)"},
    {"rnnd.config", "vocab", RNN_F_ANY, 0, 0, "(required)", "the characters of a token model (a string, \"\" for numeric input), or its words (an array: \"<unk>\", \"<eos>\", then the words)"},
    {"rnnd.config", "tokens", RNN_F_STR, 0, 0, "chars", "words, with a vocab array"},
    {"rnnd.config", "lowercase", RNN_F_BOOL, 0, 0, "true", "words: ASCII letters lowercased before lookup"},
    {"rnnd.config", "labels", RNN_F_ANY, 0, 0, "(none)", "classify: the class names"},
};
#define NFIELDS (sizeof fields / sizeof fields[0])

const char *const rnn_field_scopes[] = {"job", "init", "optimizer", "lr_schedule", "early_stopping",
                                        "data.sequences", "data.series", "data.texts",
                                        "data.text", "data.file", "data.generator", "predict",
                                        "rnnd.config", NULL};

const rnn_field *rnn_field_find(const char *scope, const char *key)
{
    for (size_t i = 0; i < NFIELDS; i++)
        if (!strcmp(fields[i].scope, scope) && !strcmp(fields[i].key, key))
            return &fields[i];
    return NULL;
}

/* The key path of a scope's keys in messages: "" (top level), "init",
 * "data" (every data shape), "rnnd.config". */
static void path_of(const char *scope, const char *key, char *buf, size_t n)
{
    if (!strcmp(scope, "job") || !strcmp(scope, "predict"))
        snprintf(buf, n, "%s", key);
    else if (!strncmp(scope, "data.", 5))
        snprintf(buf, n, "data.%s", key);
    else
        snprintf(buf, n, "%s.%s", scope, key);
}

int rnn_fields_only(const cJSON *obj, const char *scope, rnn_err *err)
{
    for (const cJSON *it = obj->child; it; it = it->next)
        if (!rnn_field_find(scope, it->string)) {
            char p[160];
            path_of(scope, it->string, p, sizeof p);
            return rnn_fail(err, "%s: unknown key", p);
        }
    return 0;
}

void rnn_field_range(const char *scope, const char *key, double *lo, double *hi)
{
    const rnn_field *f = rnn_field_find(scope, key);
    *lo = f ? f->lo : 0;
    *hi = f ? f->hi : 0;
}

int rnn_field_get_upto(const cJSON *obj, const char *scope, const char *key, double hi_set,
                       void *out, rnn_err *err)
{
    const rnn_field *f = rnn_field_find(scope, key);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!f || !v)
        return 0;
    char p[160];
    path_of(scope, key, p, sizeof p);
    const double lo = f->lo, hi = isnan(hi_set) ? f->hi : hi_set;
    switch (f->type) {
    case RNN_F_BOOL:
        if (!cJSON_IsBool(v))
            return rnn_fail(err, "%s: must be true or false", p);
        *(int *)out = cJSON_IsTrue(v);
        return 1;
    case RNN_F_STR:
        if (!cJSON_IsString(v))
            return rnn_fail(err, "%s: must be a string", p);
        *(const char **)out = v->valuestring;
        return 1;
    case RNN_F_OBJ:
        if (!cJSON_IsObject(v))
            return rnn_fail(err, "%s: must be an object", p);
        *(const cJSON **)out = v;
        return 1;
    case RNN_F_ANY:
        *(const cJSON **)out = v;
        return 1;
    case RNN_F_NUM:
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
            return rnn_fail(err, "%s: must be a number", p);
        if (v->valuedouble < lo || v->valuedouble > hi)
            return rnn_fail(err, "%s: must be between %g and %g, got %g", p, lo, hi, v->valuedouble) - 1;
        *(double *)out = v->valuedouble;
        return 1;
    case RNN_F_INT:
    case RNN_F_LONG:
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble != floor(v->valuedouble))
            return rnn_fail(err, "%s: must be a whole number", p);
        if (v->valuedouble < lo || v->valuedouble > hi)
            return rnn_fail(err, "%s: must be between %.0f and %.0f, got %.0f", p, lo, hi,
                            v->valuedouble) - 1;
        if (f->type == RNN_F_INT)
            *(int *)out = (int)v->valuedouble;
        else
            *(long *)out = (long)v->valuedouble;
        return 1;
    }
    return 0;
}

int rnn_field_get(const cJSON *obj, const char *scope, const char *key, void *out, rnn_err *err)
{
    return rnn_field_get_upto(obj, scope, key, NAN, out, err);
}

static const char *type_name(const rnn_field *f)
{
    static const char *const names[] = {"whole number", "whole number", "number", "true/false",
                                        "string", "object", "see below"};
    return names[f->type];
}

int rnn_fields_markdown(const char *scope, FILE *f)
{
    int n = 0;
    for (size_t i = 0; i < NFIELDS; i++) {
        const rnn_field *x = &fields[i];
        if (strcmp(x->scope, scope))
            continue;
        if (n++ == 0)
            fputs("| key | type | range | default | meaning |\n|---|---|---|---|---|\n", f);
        char range[64] = "";
        if (x->type == RNN_F_INT || x->type == RNN_F_LONG || x->type == RNN_F_NUM) {
            if (isnan(x->hi))
                snprintf(range, sizeof range, "%g .. server limit", x->lo);
            else
                snprintf(range, sizeof range, "%.16g .. %.16g", x->lo, x->hi);
        }
        fprintf(f, "| `%s` | %s | %s | %s | %s |\n", x->key, type_name(x), range, x->def, x->doc);
    }
    return n ? 0 : -1;
}
