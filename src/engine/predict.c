/*
 * Predictions as JSON: the one implementation behind `rnnd predict` and
 * `POST /predict`. Regression returns the output after the last step, with
 * optional multi-step forecasts (each output fed back as the next input) and
 * per-step outputs; classify returns a label and probabilities; charlm
 * generates text from a prefix with a temperature and a seed. Sequences
 * step through rnn_step, except a bidirectional model's, which run whole
 * through rnn_forward (run_whole). Every input is checked, and limits
 * applied, before any computation.
 */
#include "rnn/io.h"
#include "rnn/fields.h"
#include "internal.h"
#include "cells.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void rnn_limits_default(rnn_limits *l)
{
    l->max_sequence_length = 10000;
    l->max_batch = 256;
    l->max_steps = 10000;
    l->max_work = 0;
}

/* A thread's buffers for predictions, kept from request to request: the
 * states of the last models it served (their transposed weights made once),
 * the input and output rows, and each row's cursor. */
#define SLOTS 4
typedef struct slot {
    uint64_t serial;        /* the model; 0: empty */
    unsigned long used;     /* when last used, for eviction */
    rnn_state one, many;    /* B = 1; B > 1 rows, up to many_cap */
    int many_cap;           /* rows many was made for (0: not made yet) */
    rnn_ws *ws;             /* bidirectional models: a whole-sequence workspace */
    int ws_T, ws_B;         /* the steps and rows ws was made for */
} slot;

struct rnn_predictor {
    slot slots[SLOTS];
    unsigned long clock;
    float *x, *out;         /* (rows, X), (rows, O) */
    const cJSON **cur;      /* (rows) the next step of each sequence */
    int32_t *tok;           /* (rows) the tokens of a step */
    size_t rows, xw, ow;    /* rows of x and out, X and O they were made for */
    int last_rows, last_passes; /* of the last prediction: sequences, batched passes */
};

typedef struct pctx {
    const rnn_model *m;
    const rnn_meta *meta;
    const rnn_limits *lim;
    int status;
    rnn_err *err;
    rnn_predictor *p;
    int unknown;            /* tokens of the request the vocabulary lacks */
    slot *sl;               /* of m */
    rnn_state *st;          /* the state of the pass running */
    float *x, *out;         /* (B, X), (B, O) */
} pctx;

static int bad(pctx *c, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(pctx *c, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err->msg, sizeof c->err->msg, fmt, ap);
    va_end(ap);
    c->status = status;
    return -1;
}

/* The work of a request, bounded before it starts: every step of every
 * sequence (given, forecast or generated) touches every parameter once. */
static int check_work(pctx *c, double steps)
{
    const double work = steps * (double)c->m->nparams;
    if (c->lim->max_work > 0 && work > c->lim->max_work)
        return bad(c, 413, "this prediction needs %.3g multiply-adds (%.0f steps x %zu parameters), "
                           "the limit is %.3g (max_predict_work)",
                   work, steps, c->m->nparams, c->lim->max_work);
    return 0;
}

static int forecast_steps(const cJSON *req)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(req, "steps");
    return s ? (int)s->valuedouble : 0;
}

static int return_sequences(const cJSON *req)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "return_sequences"));
}

static cJSON *floats_json(const float *v, int n, int scalar)
{
    if (scalar && n == 1)
        return cJSON_CreateNumber(v[0]);
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

/* A regression output row (O floats) in the data's units. */
static cJSON *output_json(const pctx *c, const float *o)
{
    const int O = c->m->cfg.output_size;
    const rnn_series *sr = &c->meta->series;
    if (!sr->mean)
        return floats_json(o, O, 1);
    float *y = rnn_falloc((size_t)O);
    if (!y)
        return NULL;
    memcpy(y, o, (size_t)O * sizeof(float));
    rnn_series_unscale(sr, y, 1);
    cJSON *j = floats_json(y, O, 1);
    free(y);
    return j;
}

/* Is every number in o finite? cJSON prints NaN and infinities as null, so
 * a reply with one is refused instead (inputs too large for the weights
 * overflow single precision). */
static int json_finite(const cJSON *o)
{
    if (cJSON_IsNumber(o))
        return isfinite(o->valuedouble);
    for (const cJSON *e = o->child; e; e = e->next)
        if (!json_finite(e)) return 0;
    return 1;
}

static int nonfinite(pctx *c, const char *model)
{
    return bad(c, 422, "model %s gave a non-finite output (it overflowed single precision): "
                       "inputs this large are beyond its weights", model);
}

/* A session reply names its model ("model"), as the daemon writes it. */
static const char *reply_model(const cJSON *reply)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(reply, "model");
    return cJSON_IsString(n) ? n->valuestring : "(unnamed)";
}

static int read_step_raw(pctx *c, const cJSON *s, const char *path, int t, float *x);

/* A step of a numeric sequence into x (X floats), in the units the model
 * computes in: z-scores for a model trained on normalized series. */
static int read_step(pctx *c, const cJSON *s, const char *path, int t, float *x)
{
    if (read_step_raw(c, s, path, t, x))
        return -1;
    rnn_series_scale(&c->meta->series, x, 1);
    return 0;
}

/* ... as the request gives it. */
static int read_step_raw(pctx *c, const cJSON *s, const char *path, int t, float *x)
{
    const int X = c->m->cfg.input_size;
    if (cJSON_IsNumber(s)) {
        if (X != 1)
            return bad(c, 422, "%s[%d]: the model takes %d features per step, got a number", path, t, X);
        if (!isfinite(s->valuedouble) || fabs(s->valuedouble) > 3.4e38)
            return bad(c, 422, "%s[%d]: not a finite number", path, t);
        x[0] = (float)s->valuedouble;
        return 0;
    }
    if (!cJSON_IsArray(s))
        return bad(c, 400, "%s[%d]: must be a number or an array of numbers", path, t);
    if (cJSON_GetArraySize(s) != X)
        return bad(c, 422, "%s[%d]: the model takes %d feature%s per step, got %d", path, t, X,
                   X == 1 ? "" : "s", cJSON_GetArraySize(s));
    int k = 0;
    for (const cJSON *f = s->child; f; f = f->next, k++) {
        if (!cJSON_IsNumber(f))
            return bad(c, 400, "%s[%d][%d]: must be a number", path, t, k);
        if (!isfinite(f->valuedouble) || fabs(f->valuedouble) > 3.4e38)
            return bad(c, 422, "%s[%d][%d]: not a finite number", path, t, k);
        x[k] = (float)f->valuedouble;
    }
    return 0;
}

/* Token ids of a string in the model's vocabulary; *n gets the count. A
 * word the vocabulary lacks is "<unk>"; a character it lacks is left out.
 * Both are counted in c->unknown, which the reply reports. */
static int32_t *read_words(pctx *c, const char *s, const char *path, int *n)
{
    const rnn_words *w = &c->meta->words;
    char **toks;
    int len;
    if (rnn_words_split(s, w->lowercase, &toks, &len)) {
        bad(c, 500, "out of memory");
        return NULL;
    }
    int32_t *tok = len <= c->lim->max_sequence_length ? rnn_xcalloc((size_t)len + 1, sizeof(int32_t)) : NULL;
    for (int i = 0; tok && i < len; i++) {
        const int id = rnn_words_find(w, toks[i]);
        tok[i] = id < 0 ? 0 : id;
        c->unknown += id < 0;
    }
    for (int i = 0; i < len; i++) free(toks[i]);
    free(toks);
    if (!tok) {
        if (len > c->lim->max_sequence_length)
            bad(c, 413, "%s: %d words, the limit is %d (max_sequence_length)", path, len,
                c->lim->max_sequence_length);
        else
            bad(c, 500, "out of memory");
        return NULL;
    }
    *n = len;
    return tok;
}

static int32_t *read_tokens(pctx *c, const char *s, const char *path, int *n)
{
    if (c->meta->words.n)
        return read_words(c, s, path, n);
    int len = rnn_utf8_decode(s, strlen(s), NULL, 0);
    if (len < 0) {
        bad(c, 422, "%s: not valid UTF-8", path);
        return NULL;
    }
    if (len > c->lim->max_sequence_length) {
        bad(c, 413, "%s: %d characters, the limit is %d (max_sequence_length)", path, len,
            c->lim->max_sequence_length);
        return NULL;
    }
    uint32_t *cps = rnn_xcalloc((size_t)len + 1, sizeof(uint32_t));
    int32_t *tok = rnn_xcalloc((size_t)len + 1, sizeof(int32_t));
    if (!cps || !tok) {
        free(cps);
        free(tok);
        bad(c, 500, "out of memory");
        return NULL;
    }
    rnn_utf8_decode(s, strlen(s), cps, (size_t)len);
    int k = 0;
    for (int i = 0; i < len; i++) {
        const int id = rnn_vocab_index(c->meta->vocab ? c->meta->vocab : "", cps[i]);
        if (id >= 0)
            tok[k++] = id;
        c->unknown += id < 0;
    }
    free(cps);
    *n = k;
    return tok;
}

/* How the next token is drawn: temperature (0: the likeliest), and the
 * candidates cut to the top_k likeliest (0: all) and then to the fewest
 * whose probabilities add up to top_p. */
typedef struct sampling {
    double temperature, top_p;
    int top_k;
} sampling;

static _Thread_local const float *rank_logits;
static int by_logit(const void *a, const void *b)
{
    const float x = rank_logits[*(const int *)a], y = rank_logits[*(const int *)b];
    return x > y ? -1 : x < y ? 1 : *(const int *)a - *(const int *)b;
}

/* p_k = exp((l_k - max) / T) / sum_j exp((l_j - max) / T) over the
 * candidates, then u ~ U(0, sum) picks the first k with cumsum > u. */
static int sample(const float *logits, int V, const sampling *sp, rnn_rng *rng)
{
    int best = 0;
    for (int k = 1; k < V; k++)
        if (logits[k] > logits[best]) best = k;
    if (sp->temperature <= 0)
        return best;
    double *p = malloc((size_t)V * sizeof(double));
    int *ids = malloc((size_t)V * sizeof(int));
    if (!p || !ids) {
        free(p);
        free(ids);
        return best;
    }
    for (int k = 0; k < V; k++) ids[k] = k;
    int n = V;
    if ((sp->top_k > 0 && sp->top_k < V) || sp->top_p < 1) {
        rank_logits = logits;
        qsort(ids, (size_t)V, sizeof(int), by_logit);
        if (sp->top_k > 0 && sp->top_k < n) n = sp->top_k;
    }
    double s = 0;
    const double mx = logits[best];
    for (int k = 0; k < n; k++) s += p[k] = exp((logits[ids[k]] - mx) / sp->temperature);
    if (sp->top_p < 1) {
        double acc = 0;
        int keep = 0;
        while (keep < n && acc < sp->top_p * s) acc += p[keep++];
        n = keep > 0 ? keep : 1;
        s = acc > 0 ? acc : p[0];
    }
    double u = rnn_rng_uniform(rng) * s, acc = 0;
    int pick = ids[n - 1];
    for (int k = 0; k < n; k++) {
        acc += p[k];
        if (u < acc) {
            pick = ids[k];
            break;
        }
    }
    free(p);
    free(ids);
    return pick;
}

/* A sequence of the request, measured and checked before anything runs. */
typedef struct row {
    const cJSON *seq;
    char path[24];
    int T;
    int32_t *tok;           /* token models: (T) */
} row;

static int read_row(pctx *c, row *r)
{
    if (rnn_token_input(&c->m->cfg)) {
        if (!cJSON_IsString(r->seq))
            return bad(c, 400, "%s: this model takes text (a string)", r->path);
        if (!(r->tok = read_tokens(c, r->seq->valuestring, r->path, &r->T)))
            return -1;
    } else {
        if (!cJSON_IsArray(r->seq))
            return bad(c, 400, "%s: must be an array of steps", r->path);
        r->T = cJSON_GetArraySize(r->seq);
        if (r->T > c->lim->max_sequence_length)
            return bad(c, 413, "%s: %d steps, the limit is %d (max_sequence_length)", r->path,
                       r->T, c->lim->max_sequence_length);
    }
    if (r->T < 1)
        return bad(c, 422, "%s: empty sequence", r->path);
    return 0;
}

/* The state for B rows of c->m, made on first use and kept in its slot. A
 * state made for more rows runs fewer: its layout (L, B, H) follows B, and
 * every pass sets all B rows before its first step; its transposed weights
 * are the same for every B > 1. So batches of changing size reuse one. */
static int use_state(pctx *c, int B)
{
    slot *sl = c->sl;
    if (B == 1 && !sl->one.h && rnn_state_init(&sl->one, &c->m->cfg, 1))
        return bad(c, 500, "out of memory");
    if (B > 1 && B > sl->many_cap) {
        if (sl->many.h)
            rnn_state_free(&sl->many);
        sl->many_cap = 0;
        if (rnn_state_init(&sl->many, &c->m->cfg, B))
            return bad(c, 500, "out of memory");
        sl->many_cap = B;
    }
    c->st = B == 1 ? &sl->one : &sl->many;
    c->st->B = B;
    return 0;
}

/* The reply fields of the output row o (O floats). */
static void reply_output(pctx *c, const float *o, cJSON *obj)
{
    const int O = c->m->cfg.output_size;
    if (c->m->cfg.task != RNN_TASK_CLASSIFY) {
        cJSON_AddItemToObject(obj, "prediction", output_json(c, o));
        return;
    }
    /* softmax over the logits, from the largest */
    int best = 0;
    for (int k = 1; k < O; k++)
        if (o[k] > o[best]) best = k;
    double sum = 0;
    for (int k = 0; k < O; k++) sum += exp(o[k] - o[best]);
    /* with label names, the probabilities are keyed by them */
    const int named = c->meta->nlabels == O;
    if (named)
        cJSON_AddStringToObject(obj, "label", c->meta->labels[best]);
    else
        cJSON_AddNumberToObject(obj, "label", best);
    cJSON *pr = named ? cJSON_AddObjectToObject(obj, "probabilities") : cJSON_AddArrayToObject(obj, "probabilities");
    for (int k = 0; k < O; k++) {
        cJSON *v = cJSON_CreateNumber(exp(o[k] - o[best]) / sum);
        if (named)
            cJSON_AddItemToObject(pr, c->meta->labels[k], v);
        else
            cJSON_AddItemToArray(pr, v);
    }
}

/* "steps": the forecast asked for, if the model can make one; -1 if not. */
static int forecast_request(pctx *c, const cJSON *req)
{
    const rnn_config *cfg = &c->m->cfg;
    const int steps = forecast_steps(req);
    if (steps > 0 && cfg->task != RNN_TASK_REGRESSION)
        return bad(c, 422, "steps: forecasting needs a regression model");
    if (steps > 0 && cfg->bidirectional)
        return bad(c, 422, "steps: a bidirectional model reads each sequence whole (its backward "
                           "direction starts at the last step), so it cannot feed forecasts back");
    if (steps > 0 && cfg->output_size != cfg->input_size)
        return bad(c, 422, "steps: forecasting feeds each output back as input, but the model "
                           "has %d outputs and %d inputs", cfg->output_size, cfg->input_size);
    for (int k = 0; steps > 0 && k < c->meta->series.ntarget; k++)
        if (c->meta->series.target[k] != k)
            return bad(c, 422, "steps: forecasting feeds each output back as input, but the model "
                               "predicts its columns in another order");
    return steps;
}

/* The T steps of B rows of equal length through c->st from where it is
 * (rows of one rnn_step); with retseq, obj[b] gets "outputs". */
static int run_rows(pctx *c, row *rows, int B, int retseq, cJSON *const *obj)
{
    const int O = c->m->cfg.output_size, X = c->m->cfg.input_size, T = rows[0].T;
    int32_t *tok = c->p->tok;
    const cJSON **cur = c->p->cur;
    for (int b = 0; b < B; b++) {
        cur[b] = rows[b].tok ? NULL : rows[b].seq->child;
        if (retseq)
            cJSON_AddArrayToObject(obj[b], "outputs");
    }
    for (int t = 0; t < T; t++) {
        for (int b = 0; b < B; b++) {
            if (rows[b].tok) {
                tok[b] = rows[b].tok[t];
            } else {
                if (read_step(c, cur[b], rows[b].path, t, c->x + (size_t)b * X))
                    return -1;
                cur[b] = cur[b]->next;
            }
        }
        rnn_step(c->m, c->st, rows[0].tok ? NULL : c->x, rows[0].tok ? tok : NULL, c->out);
        for (int b = 0; retseq && b < B; b++)
            cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(obj[b], "outputs"),
                                 output_json(c, c->out + (size_t)b * O));
    }
    return 0;
}

/* The replies for the B output rows in c->out, then a forecast of steps
 * from c->st, each output the next input (this moves the state on). */
static void finish_rows(pctx *c, int B, int steps, cJSON *const *obj)
{
    const int O = c->m->cfg.output_size, X = c->m->cfg.input_size;
    for (int b = 0; b < B; b++) {
        /* outputs, if asked for, go last, as they always have */
        cJSON *outs = cJSON_DetachItemFromObjectCaseSensitive(obj[b], "outputs");
        reply_output(c, c->out + (size_t)b * O, obj[b]);
        if (steps > 0)
            cJSON_AddArrayToObject(obj[b], "forecast");
        if (outs)
            cJSON_AddItemToObject(obj[b], "outputs", outs);
    }
    for (int k = 0; k < steps; k++) {
        for (int b = 0; b < B; b++)
            cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(obj[b], "forecast"),
                                 output_json(c, c->out + (size_t)b * O));
        if (k + 1 < steps) {
            memcpy(c->x, c->out, (size_t)B * X * sizeof(float));
            rnn_step(c->m, c->st, c->x, NULL, c->out);
        }
    }
}

/* A bidirectional model's B rows of equal length T: one rnn_forward over
 * the whole sequences (its backward direction starts at step T-1, so there
 * is no state to step), in a workspace kept in the model's slot. The head
 * outputs go to c->out as a stepped pass leaves them: the reply's output
 * (many_to_one: of [h_f(T-1), h_r(0)]; many_to_many: of step T-1), and with
 * retseq, "outputs" per step, the head over the top layer's step t
 * [h_f(t), h_r(t)], as PyTorch's head(output) gives. */
static int run_whole(pctx *c, row *rows, int B, int retseq, cJSON *const *obj)
{
    const rnn_config *cfg = &c->m->cfg;
    const int T = rows[0].T, X = cfg->input_size, O = cfg->output_size;
    const int DH = rnn_dirs(cfg) * cfg->hidden;
    slot *sl = c->sl;
    if (!sl->ws || T > sl->ws_T || B > sl->ws_B) {
        rnn_ws_free(sl->ws);
        sl->ws_T = T > sl->ws_T ? T : sl->ws_T;
        sl->ws_B = B > sl->ws_B ? B : sl->ws_B;
        if (!(sl->ws = rnn_ws_new_inference(cfg, sl->ws_T, sl->ws_B))) {
            sl->ws_T = sl->ws_B = 0;
            return bad(c, 500, "out of memory");
        }
    }
    const int tokens = rows[0].tok != NULL;
    float *x = tokens ? NULL : rnn_falloc((size_t)T * B * X);
    int32_t *tok = tokens ? rnn_xcalloc((size_t)T * B, sizeof *tok) : NULL;
    float *steps = retseq ? rnn_falloc((size_t)T * B * O) : NULL;
    int rc = (tokens ? !tok : !x) || (retseq && !steps) ? bad(c, 500, "out of memory") : 0;
    /* the input, time-major: step t of row b at t B + b */
    for (int b = 0; !rc && b < B; b++) {
        const cJSON *cur = tokens ? NULL : rows[b].seq->child;
        for (int t = 0; !rc && t < T; t++) {
            if (tokens) {
                tok[(size_t)t * B + b] = rows[b].tok[t];
                continue;
            }
            rc = read_step(c, cur, rows[b].path, t, x + ((size_t)t * B + b) * X);
            cur = cur->next;
        }
    }
    const rnn_batch batch = {.T = T, .B = B, .x = x, .tok = tok};
    if (!rc && isnan(rnn_forward(c->m, sl->ws, &batch)))
        rc = bad(c, 500, "the forward pass did not fit its workspace");
    if (!rc) {
        const float *y = rnn_ws_outputs(sl->ws);
        const int m2m = cfg->mode == RNN_MODE_MANY_TO_MANY;
        memcpy(c->out, y + (m2m ? (size_t)(T - 1) * B * O : 0), (size_t)B * O * sizeof(float));
        /* per step: y(t) = [h_f(t), h_r(t)] W^T + b, which many_to_many has */
        if (retseq && m2m) {
            memcpy(steps, y, (size_t)T * B * O * sizeof(float));
        } else if (retseq) {
            for (size_t r = 0; r < (size_t)T * B; r++)
                memcpy(steps + r * O, c->m->head_b, (size_t)O * sizeof(float));
            rnn_gemm_nt(T * B, O, DH, rnn_ws_hidden(sl->ws), c->m->head_w, 1.0f, steps);
        }
        for (int b = 0; retseq && b < B; b++) {
            cJSON *outs = cJSON_AddArrayToObject(obj[b], "outputs");
            for (int t = 0; t < T; t++)
                cJSON_AddItemToArray(outs, output_json(c, steps + ((size_t)t * B + b) * O));
        }
    }
    free(x);
    free(tok);
    free(steps);
    return rc;
}

/* B sequences of equal length through the model as one batched pass (B
 * rows of rnn_step, or of one whole-sequence forward for a bidirectional
 * model); fills one reply object per row. */
static int predict_rows(pctx *c, row *rows, int B, const cJSON *req, cJSON *const *obj)
{
    const int steps = forecast_request(c, req);
    const int retseq = return_sequences(req);
    if (steps < 0)
        return -1;
    if (c->m->cfg.bidirectional) {
        if (run_whole(c, rows, B, retseq, obj))
            return -1;
        finish_rows(c, B, 0, obj);
        return 0;
    }
    if (use_state(c, B))
        return -1;
    rnn_state_reset(c->st, &c->m->cfg);
    if (run_rows(c, rows, B, retseq, obj))
        return -1;
    finish_rows(c, B, steps, obj);
    return 0;
}

/* The text of token k: a word, or a character into ch. */
static const char *token_text(const pctx *c, int k, char *ch)
{
    if (c->meta->words.n)
        return c->meta->words.tok[k];
    rnn_vocab_char(c->meta->vocab, k, ch);
    return ch;
}

/* "top": the K likeliest next tokens after the prefix (whose last step's
 * logits are in c->out), with their softmax probabilities. */
static void next_tokens(pctx *c, int K, cJSON *reply)
{
    const int V = c->m->cfg.output_size;
    int *ids = malloc((size_t)V * sizeof(int));
    if (!ids)
        return;
    for (int k = 0; k < V; k++) ids[k] = k;
    rank_logits = c->out;
    qsort(ids, (size_t)V, sizeof(int), by_logit);
    double sum = 0;
    for (int k = 0; k < V; k++) sum += exp(c->out[k] - c->out[ids[0]]);
    cJSON *a = cJSON_AddArrayToObject(reply, "next");
    char ch[8];
    for (int k = 0; k < K && k < V; k++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "token", token_text(c, ids[k], ch));
        cJSON_AddNumberToObject(x, "p", exp(c->out[ids[k]] - c->out[ids[0]]) / sum);
        cJSON_AddItemToArray(a, x);
    }
    free(ids);
}

/* Rows of a batched state taken from their parents: row i gets row
 * from[i]'s h (and c), layer by layer ((L, B, H) layout). */
static int reorder_rows(rnn_state *st, const rnn_config *cfg, const int *from, int n)
{
    const size_t H = (size_t)cfg->hidden, L = (size_t)cfg->layers, B = (size_t)st->B;
    float *tmp = rnn_falloc(L * B * H);
    if (!tmp)
        return -1;
    for (int pass = 0; pass < 2; pass++) {
        float *v = pass ? st->c : st->h;
        if (!v)
            continue;
        memcpy(tmp, v, L * B * H * sizeof(float));
        for (size_t l = 0; l < L; l++)
            for (int i = 0; i < n; i++)
                memcpy(v + (l * B + (size_t)i) * H, tmp + (l * B + (size_t)from[i]) * H, H * sizeof(float));
    }
    free(tmp);
    return 0;
}

static int predictor_fit(pctx *c, int B);

typedef struct cand { double score; int parent; int32_t tok; } cand;
static int by_score(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    return x->score > y->score ? -1 : x->score < y->score ? 1 : (x->parent - y->parent) * 65536 + (x->tok - y->tok);
}

/* Beam search: W hypotheses, each a row of one batched state. Every step
 * extends each by its W likeliest tokens, scores them by the sum of
 * log-probabilities log p(t | prefix) and keeps the W best; a word
 * hypothesis that reaches <eos> is finished. The best one, finished or
 * not, after `length` tokens (or once no live one can beat a finished one,
 * scores only falling) is the reply, with its "score". */
static int beam_search(pctx *c, const int32_t *tok, int n, int W, int length, cJSON *reply)
{
    const rnn_config *cfg = &c->m->cfg;
    const int V = cfg->output_size, words = c->meta->words.n > 0;
    if (predictor_fit(c, W) || use_state(c, W))
        return -1;
    rnn_state *st = c->st;
    rnn_state_reset(st, cfg);
    int32_t *cur = c->p->tok;
    for (int i = 0; i + 1 < n; i++) {
        for (int b = 0; b < W; b++) cur[b] = tok[i];
        rnn_step(c->m, st, NULL, cur, NULL);
    }
    for (int b = 0; b < W; b++) cur[b] = tok[n - 1];
    const size_t cap = (size_t)(length > 0 ? length : 1);
    int32_t *seq = rnn_xcalloc((size_t)W * cap, sizeof(int32_t)), *nseq = rnn_xcalloc((size_t)W * cap, sizeof(int32_t));
    int32_t *done = rnn_xcalloc(cap, sizeof(int32_t));
    double *score = rnn_xcalloc((size_t)W, sizeof(double));
    cand *cs = malloc((size_t)W * W * sizeof(cand));
    int *from = malloc((size_t)W * sizeof(int));
    int rc = -1, live = 1, steps = 0, done_len = -1;
    double done_score = -INFINITY;
    if (!seq || !nseq || !done || !score || !cs || !from) {
        bad(c, 500, "out of memory");
        goto out;
    }
    for (int k = 0; k < length && live > 0; k++) {
        rnn_step(c->m, st, NULL, cur, c->out);
        int nc = 0;
        for (int b = 0; b < live; b++) {
            /* log p = l - max - log sum exp(l - max), for row b's W likeliest */
            const float *o = c->out + (size_t)b * V;
            float mx = o[0];
            for (int v = 1; v < V; v++) if (o[v] > mx) mx = o[v];
            double lse = 0;
            for (int v = 0; v < V; v++) lse += exp(o[v] - mx);
            lse = log(lse) + mx;
            for (int w = 0; w < W && w < V; w++) {
                int best = -1;
                for (int v = 0; v < V; v++) {
                    int taken = 0;
                    for (int q = nc - w; q < nc && !taken; q++) taken = cs[q].tok == v;
                    if (!taken && (best < 0 || o[v] > o[best])) best = v;
                }
                cs[nc++] = (cand){score[b] + o[best] - lse, b, best};
            }
        }
        qsort(cs, (size_t)nc, sizeof(cand), by_score);
        int kept = 0;
        for (int q = 0; q < nc && kept < W; q++) {
            if (words && cs[q].tok == 1) { /* <eos>: finished */
                if (cs[q].score > done_score) {
                    done_score = cs[q].score;
                    done_len = k;
                    memcpy(done, seq + (size_t)cs[q].parent * cap, (size_t)k * sizeof(int32_t));
                }
                continue;
            }
            memcpy(nseq + (size_t)kept * cap, seq + (size_t)cs[q].parent * cap, (size_t)k * sizeof(int32_t));
            nseq[(size_t)kept * cap + k] = cs[q].tok;
            score[kept] = cs[q].score;
            from[kept] = cs[q].parent;
            cur[kept] = cs[q].tok;
            kept++;
        }
        int32_t *t = seq; seq = nseq; nseq = t;
        if (reorder_rows(st, cfg, from, kept)) {
            bad(c, 500, "out of memory");
            goto out;
        }
        live = kept;
        steps = k + 1;
        if (live == 0 || score[0] <= done_score)
            break;
    }
    const int use_done = done_len >= 0 && (live == 0 || done_score >= score[0]);
    const int32_t *best = use_done ? done : seq;
    const int blen = use_done ? done_len : steps;
    size_t longest = 4;
    for (int k = 0; words && k < c->meta->words.n; k++)
        if (strlen(c->meta->words.tok[k]) > longest) longest = strlen(c->meta->words.tok[k]);
    char *buf = malloc((size_t)(blen + 1) * (longest + 1) + 1), ch[8];
    if (!buf) {
        bad(c, 500, "out of memory");
        goto out;
    }
    size_t p = 0;
    buf[0] = 0;
    for (int k = 0; k < blen; k++) {
        const char *w = token_text(c, best[k], ch);
        if (words) {
            p = rnn_words_append(buf, p, c->meta->words.tok[k ? best[k - 1] : tok[n - 1]], w);
        } else {
            memcpy(buf + p, w, strlen(w));
            p += strlen(w);
            buf[p] = 0;
        }
    }
    cJSON_AddStringToObject(reply, "text", buf);
    cJSON_AddNumberToObject(reply, "score", use_done ? done_score : score[0]);
    free(buf);
    rc = 0;
out:
    free(seq); free(nseq); free(done); free(score); free(cs); free(from);
    return rc;
}

/* An lm's reply: "length" tokens after the prefix "text" (words stop at
 * "<eos>"), drawn as "temperature", "top_k" and "top_p" say; or, with
 * "top", the likeliest next tokens. */
static int generate(pctx *c, const cJSON *req, cJSON *reply)
{
    const rnn_config *cfg = &c->m->cfg;
    const int words = c->meta->words.n > 0;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(req, "text");
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(req, "length");
    const cJSON *tp = cJSON_GetObjectItemCaseSensitive(req, "temperature");
    const cJSON *sd = cJSON_GetObjectItemCaseSensitive(req, "seed");
    const cJSON *tk = cJSON_GetObjectItemCaseSensitive(req, "top_k");
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(req, "top_p");
    const cJSON *top = cJSON_GetObjectItemCaseSensitive(req, "top");
    const cJSON *beam = cJSON_GetObjectItemCaseSensitive(req, "beam");
    if (!t)
        return bad(c, 400, "text: missing (the prefix to continue; may be \"\")");
    if (!cJSON_IsString(t))
        return bad(c, 400, "text: must be a string");
    const int length = top ? 0 : l ? (int)l->valuedouble : 200;
    if (length > c->lim->max_steps)
        return bad(c, 413, "length: %d tokens, the limit is %d", length, c->lim->max_steps);
    const sampling sp = {tp ? tp->valuedouble : 1.0, pp ? pp->valuedouble : 1.0, tk ? (int)tk->valuedouble : 0};
    uint64_t seed = sd ? (uint64_t)sd->valuedouble : (uint64_t)time(NULL) ^ (uint64_t)clock();
    int n = 0;
    int32_t *tok = NULL;
    if (t->valuestring[0] && !(tok = read_tokens(c, t->valuestring, "text", &n)))
        return -1;
    if ((top || beam) && n == 0) {
        free(tok);
        return bad(c, 422, "%s: needs a text with at least one token the model knows", top ? "top" : "beam");
    }
    if (beam) {
        const int W = (int)beam->valuedouble;
        const int e = check_work(c, ((double)n + length) * W) || beam_search(c, tok, n, W, length, reply);
        free(tok);
        return e ? -1 : 0;
    }
    if (check_work(c, (double)n + length) || use_state(c, 1)) {
        free(tok);
        return -1;
    }
    rnn_rng rng;
    rnn_rng_seed(&rng, seed);
    rnn_state_reset(c->st, cfg);
    const int V = cfg->output_size;
    int32_t cur;
    /* no prefix: words start a sentence (after "<eos>"), characters from one
     * drawn from the vocabulary */
    const int drawn = n == 0 && !words;
    if (n == 0) {
        cur = words ? 1 : (int32_t)rnn_rng_below(&rng, (uint64_t)V);
    } else {
        for (int i = 0; i + 1 < n; i++)
            rnn_step(c->m, c->st, NULL, &tok[i], NULL);
        cur = tok[n - 1];
    }
    free(tok);
    if (top) {
        rnn_step(c->m, c->st, NULL, &cur, c->out);
        next_tokens(c, (int)top->valuedouble, reply);
        return 0;
    }
    size_t longest = 4;
    for (int k = 0; words && k < c->meta->words.n; k++)
        if (strlen(c->meta->words.tok[k]) > longest) longest = strlen(c->meta->words.tok[k]);
    char *buf = malloc((size_t)(length + 1) * (longest + 1) + 1), ch[8];
    if (!buf)
        return bad(c, 500, "out of memory");
    size_t p = 0;
    buf[0] = 0;
    if (drawn)
        p += (size_t)rnn_vocab_char(c->meta->vocab, cur, buf + p);
    /* a word continuation goes on from the prefix's last word */
    const char *prev = words && n > 0 ? c->meta->words.tok[cur] : NULL;
    for (int k = 0; k < length; k++) {
        rnn_step(c->m, c->st, NULL, &cur, c->out);
        cur = sample(c->out, V, &sp, &rng);
        if (words && cur == 1)
            break; /* <eos>: the sentence is over */
        const char *w = token_text(c, cur, ch);
        if (words) {
            p = rnn_words_append(buf, p, prev, w);
            prev = w;
        } else {
            memcpy(buf + p, w, strlen(w));
            p += strlen(w);
        }
    }
    buf[p] = 0;
    cJSON_AddStringToObject(reply, "text", buf);
    /* the seed, when one was used: to sample, or to pick a first character */
    if (sp.temperature > 0 || drawn)
        cJSON_AddNumberToObject(reply, "seed", (double)(seed & ((1ULL << 53) - 1)));
    free(buf);
    return 0;
}

/* Types and ranges of the keys (the "predict" rows of the field table),
 * before anything runs: a wrong type is 400, a value out of range 422, a
 * forecast past the server's limit 413. */
static int check_request(pctx *c, const cJSON *req)
{
    rnn_err e;
    if (rnn_fields_only(req, "predict", &e))
        return bad(c, 400, "%s", e.msg);
    for (const cJSON *it = req->child; it; it = it->next) {
        union { int i; long l; double d; int b; const char *s; const cJSON *o; } scratch;
        const int steps = !strcmp(it->string, "steps");
        const int r = rnn_field_get_upto(req, "predict", it->string, steps ? c->lim->max_steps : NAN,
                                         &scratch, &e);
        if (r == -1)
            return bad(c, 400, "%s", e.msg);
        if (r < -1)
            return bad(c, steps && it->valuedouble > 0 ? 413 : 422, "%s", e.msg);
    }
    return 0;
}

rnn_predictor *rnn_predictor_new(void) { return rnn_xcalloc(1, sizeof(rnn_predictor)); }

void rnn_predictor_last(const rnn_predictor *p, int *rows, int *passes)
{
    *rows = p->last_rows;
    *passes = p->last_passes;
}

static void slot_clear(slot *sl)
{
    if (sl->one.h) rnn_state_free(&sl->one);
    if (sl->many.h) rnn_state_free(&sl->many);
    rnn_ws_free(sl->ws);
    memset(sl, 0, sizeof *sl);
}

void rnn_predictor_free(rnn_predictor *p)
{
    if (!p)
        return;
    for (int i = 0; i < SLOTS; i++) slot_clear(&p->slots[i]);
    free(p->x);
    free(p->out);
    free(p->cur);
    free(p->tok);
    free(p);
}

/* Points c at m's slot (the least recently used one is given up for a new
 * model) and at rows of x and out for B sequences. */
static int predictor_fit(pctx *c, int B)
{
    rnn_predictor *p = c->p;
    slot *sl = &p->slots[0];
    for (int i = 0; i < SLOTS; i++) {
        if (p->slots[i].serial == c->m->serial) {
            sl = &p->slots[i];
            break;
        }
        if (p->slots[i].used < sl->used) sl = &p->slots[i];
    }
    if (sl->serial != c->m->serial) {
        slot_clear(sl);
        sl->serial = c->m->serial;
    }
    sl->used = ++p->clock;
    c->sl = sl;
    const size_t X = (size_t)c->m->cfg.input_size, O = (size_t)c->m->cfg.output_size;
    if ((size_t)B > p->rows || X > p->xw || O > p->ow) {
        const size_t n = (size_t)B > p->rows ? (size_t)B : p->rows;
        const size_t xw = X > p->xw ? X : p->xw, ow = O > p->ow ? O : p->ow;
        free(p->x);
        free(p->out);
        free(p->cur);
        free(p->tok);
        p->x = rnn_falloc(n * xw);
        p->out = rnn_falloc(n * ow);
        p->cur = rnn_xcalloc(n, sizeof *p->cur);
        p->tok = rnn_xcalloc(n, sizeof *p->tok);
        p->rows = p->x && p->out && p->cur && p->tok ? n : 0;
        p->xw = p->rows ? xw : 0;
        p->ow = p->rows ? ow : 0;
        if (!p->rows)
            return bad(c, 500, "out of memory");
    }
    c->x = p->x;
    c->out = p->out;
    return 0;
}

/* The sequences of the request as rows: one batched pass when they are all
 * as long, else one pass each. */
static int predict_sequences(pctx *c, const cJSON *rq, const cJSON *seqs, cJSON *out)
{
    if (!cJSON_IsArray(seqs))
        return bad(c, 400, "sequences: must be an array of sequences");
    const int n = cJSON_GetArraySize(seqs);
    if (n < 1)
        return bad(c, 422, "sequences: empty");
    if (n > c->lim->max_batch)
        return bad(c, 413, "sequences: %d sequences, the limit is %d (max_batch)", n,
                   c->lim->max_batch);
    row *rows = rnn_xcalloc((size_t)n, sizeof *rows);
    cJSON **objs = rnn_xcalloc((size_t)n, sizeof *objs);
    int rc = rows && objs ? 0 : bad(c, 500, "out of memory");
    cJSON *arr = cJSON_AddArrayToObject(out, "predictions");
    int i = 0, equal = 1;
    for (const cJSON *s = seqs->child; !rc && s; s = s->next, i++) {
        rows[i].seq = s;
        snprintf(rows[i].path, sizeof rows[i].path, "sequences[%d]", i);
        rc = read_row(c, &rows[i]);
        equal = equal && rows[i].T == rows[0].T;
        cJSON_AddItemToArray(arr, objs[i] = cJSON_CreateObject());
    }
    double steps = (double)n * forecast_steps(rq);
    for (i = 0; !rc && i < n; i++) steps += rows[i].T;
    if (!rc && (check_work(c, steps) || predictor_fit(c, equal ? n : 1)))
        rc = -1;
    c->p->last_rows = n;
    c->p->last_passes = equal ? 1 : n;
    if (!rc && equal)
        rc = predict_rows(c, rows, n, rq, objs);
    for (i = 0; !rc && !equal && i < n; i++)
        rc = predict_rows(c, &rows[i], 1, rq, &objs[i]);
    for (i = 0; rows && i < n; i++) free(rows[i].tok);
    free(rows);
    free(objs);
    return rc;
}

long rnn_json_nul_at(const char *text, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (text[i] != '\\')
            continue;
        if (text[i + 1] == 'u' && i + 6 <= len && !memcmp(text + i + 2, "0000", 4))
            return (long)i;
        i++; /* the escaped character, which may be a backslash */
    }
    return -1;
}

char *rnn_json_line(const cJSON *o, size_t *len)
{
    char *s = cJSON_PrintUnformatted(o);
    if (!s)
        return NULL;
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (!t) {
        free(s);
        return NULL;
    }
    t[n] = '\n';
    t[n + 1] = 0;
    *len = n + 1;
    return t;
}

int rnn_predict_json(rnn_predictor *p, const rnn_model *m, const rnn_meta *meta, const char *name,
                     long version, const cJSON *rq, const rnn_limits *lim_in, char **reply,
                     size_t *reply_len, int *status, rnn_err *err)
{
    rnn_limits dl;
    rnn_limits_default(&dl);
    pctx c = {.m = m, .meta = meta, .lim = lim_in ? lim_in : &dl, .status = 0, .err = err, .p = p};
    *reply = NULL;
    p->last_rows = p->last_passes = 1;
    cJSON *out = NULL;
    int rc = -1;
    if (!cJSON_IsObject(rq)) {
        bad(&c, 400, "request must be a JSON object");
        goto done;
    }
    if (check_request(&c, rq))
        goto done;
    if (!(out = cJSON_CreateObject())) {
        bad(&c, 500, "out of memory");
        goto done;
    }
    if (name)
        cJSON_AddStringToObject(out, "model", name);
    cJSON_AddNumberToObject(out, "version", (double)version);
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(rq, "sequence");
    const cJSON *seqs = cJSON_GetObjectItemCaseSensitive(rq, "sequences");
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(rq, "text");
    const cJSON *texts = cJSON_GetObjectItemCaseSensitive(rq, "texts");
    if (m->cfg.task == RNN_TASK_CLASSIFY && rnn_token_input(&m->cfg) && (text || texts)) {
        /* a classifier over text: "text" is its sequence, "texts" its sequences */
        if (seq || seqs || (text && texts)) {
            bad(&c, 400, "give one of text, texts, sequence or sequences");
            goto done;
        }
        seq = text;
        seqs = texts;
    } else if (texts) {
        bad(&c, 400, "texts: only for a classifier over text");
        goto done;
    }
    if (m->cfg.task == RNN_TASK_CHARLM) {
        if (seq || seqs) {
            bad(&c, 400, "a language model takes {\"text\": prefix, \"length\": N}, not sequences");
            goto done;
        }
        if (predictor_fit(&c, 1) || generate(&c, rq, out))
            goto done;
    } else if (seq && seqs) {
        bad(&c, 400, "give either sequence or sequences, not both");
        goto done;
    } else if (seq) {
        row r = {.seq = seq, .path = "sequence"};
        int e = read_row(&c, &r) || check_work(&c, (double)r.T + forecast_steps(rq)) ||
                predictor_fit(&c, 1) || predict_rows(&c, &r, 1, rq, &out);
        free(r.tok);
        if (e)
            goto done;
    } else if (seqs) {
        if (predict_sequences(&c, rq, seqs, out))
            goto done;
    } else {
        bad(&c, 400, "sequence: missing (or sequences for a batch)");
        goto done;
    }
    if (!json_finite(out)) {
        nonfinite(&c, name);
        goto done;
    }
    if (c.unknown > 0)
        cJSON_AddNumberToObject(out, "unknown", c.unknown);
    if (!(*reply = rnn_json_line(out, reply_len))) {
        bad(&c, 500, "out of memory");
        goto done;
    }
    rc = 0;
done:
    *status = rc ? (c.status ? c.status : 400) : 200;
    cJSON_Delete(out);
    return rc;
}

/* Do requests a and b ask for the same pass: as many steps, the same
 * forecast and per-step outputs? */
static int same_pass(const row *ra, const cJSON *a, const row *rb, const cJSON *b)
{
    return ra->T == rb->T && forecast_steps(a) == forecast_steps(b) &&
           return_sequences(a) == return_sequences(b);
}

/* ------------------------------------------------------------------ streams */

struct rnn_stream {
    rnn_state st;           /* B = 1, after `position` steps */
    float *x, *out;         /* (X); (O) the output of the last step */
    float *saved;           /* h, c and out, kept while a forecast runs */
    size_t nstate;          /* floats of h (and of c) */
    long position;
};

rnn_stream *rnn_stream_new(const rnn_model *m)
{
    rnn_stream *s = rnn_xcalloc(1, sizeof *s);
    if (!s)
        return NULL;
    const rnn_config *cfg = &m->cfg;
    s->nstate = (size_t)cfg->layers * cfg->hidden;
    s->x = rnn_falloc((size_t)cfg->input_size);
    s->out = rnn_falloc((size_t)cfg->output_size);
    s->saved = rnn_falloc(2 * s->nstate + (size_t)cfg->output_size);
    if (rnn_state_init(&s->st, cfg, 1) || !s->x || !s->out || !s->saved) {
        rnn_stream_free(s);
        return NULL;
    }
    return s;
}

void rnn_stream_free(rnn_stream *s)
{
    if (!s)
        return;
    if (s->st.h)
        rnn_state_free(&s->st);
    free(s->x);
    free(s->out);
    free(s->saved);
    free(s);
}

long rnn_stream_position(const rnn_stream *s) { return s->position; }

/* h, c and the last output into saved (save) or back (!save) */
static void stream_keep(rnn_stream *s, int O, int save)
{
    float *h = s->saved, *cs = h + s->nstate, *o = cs + s->nstate;
    const size_t n = s->nstate * sizeof(float);
    if (save) {
        memcpy(h, s->st.h, n);
        memcpy(cs, s->st.c, n);
        memcpy(o, s->out, (size_t)O * sizeof(float));
    } else {
        memcpy(s->st.h, h, n);
        memcpy(s->st.c, cs, n);
        memcpy(s->out, o, (size_t)O * sizeof(float));
    }
}

/* Everything about a session request checked before any step runs: r gets
 * its steps, *steps the forecast; c points at p's buffers for one row. */
static int stream_check(pctx *c, const rnn_stream *s, const cJSON *rq, row *r, int *steps)
{
    *r = (row){.path = "sequence"};
    if (!cJSON_IsObject(rq))
        return bad(c, 400, "request must be a JSON object");
    if (check_request(c, rq))
        return -1;
    if (cJSON_HasObjectItem(rq, "sequences") || cJSON_HasObjectItem(rq, "text"))
        return bad(c, 400, "a session takes \"sequence\": the steps that are new since the last request");
    if ((*steps = forecast_request(c, rq)) < 0)
        return -1;
    r->seq = cJSON_GetObjectItemCaseSensitive(rq, "sequence");
    if (!r->seq && *steps == 0)
        return bad(c, 400, "sequence: missing (the new steps; or \"steps\": N alone to forecast)");
    if (r->seq ? read_row(c, r)
               : s->position == 0 ? bad(c, 422, "steps: the session has no steps yet to forecast from")
                                  : 0)
        return -1;
    if (check_work(c, (double)r->T + *steps) || predictor_fit(c, 1))
        return -1;
    int t = 0;
    for (const cJSON *st = r->seq && !r->tok ? r->seq->child : NULL; st; st = st->next, t++)
        if (read_step(c, st, r->path, t, c->x))
            return -1;
    return 0;
}

int rnn_stream_json(rnn_predictor *p, rnn_stream *s, const rnn_model *m, const rnn_meta *meta,
                    const cJSON *rq, const rnn_limits *lim_in, cJSON *reply, int *status,
                    rnn_err *err)
{
    rnn_limits dl;
    rnn_limits_default(&dl);
    pctx c = {.m = m, .meta = meta, .lim = lim_in ? lim_in : &dl, .status = 0, .err = err, .p = p};
    row r = {0};
    int rc = -1, steps = 0;
    if (stream_check(&c, s, rq, &r, &steps))
        goto done;
    c.st = &s->st;
    c.x = s->x;
    c.out = s->out;
    const int retseq = return_sequences(rq);
    if (r.seq && run_rows(&c, &r, 1, retseq, &reply))
        goto done;
    s->position += r.T;
    /* a forecast looks ahead without moving the session on */
    if (steps > 0)
        stream_keep(s, m->cfg.output_size, 1);
    finish_rows(&c, 1, steps, &reply);
    if (steps > 0)
        stream_keep(s, m->cfg.output_size, 0);
    rc = json_finite(reply) ? 0 : nonfinite(&c, reply_model(reply));
done:
    free(r.tok);
    *status = rc ? (c.status ? c.status : 400) : 200;
    return rc;
}

/* Row b of the batched state st (B rows) to or from stream s's state:
 * layer l's h and c are at (l B + b) H. */
static void stream_rows(rnn_state *st, int b, rnn_stream *s, const rnn_config *cfg, int gather)
{
    const size_t H = (size_t)cfg->hidden, n = H * sizeof(float);
    for (int l = 0; l < cfg->layers; l++) {
        float *bh = st->h + ((size_t)l * st->B + b) * H, *bc = st->c + ((size_t)l * st->B + b) * H;
        float *sh = s->st.h + (size_t)l * H, *sc = s->st.c + (size_t)l * H;
        if (gather) {
            memcpy(bh, sh, n);
            memcpy(bc, sc, n);
        } else {
            memcpy(sh, bh, n);
            memcpy(sc, bc, n);
        }
    }
}

void rnn_stream_many(rnn_predictor *p, rnn_stream *const *s, const rnn_model *m,
                     const rnn_meta *meta, const cJSON *const *reqs, int n, const rnn_limits *lim_in,
                     cJSON *const *replies, int *status, rnn_err *errs)
{
    rnn_limits dl;
    rnn_limits_default(&dl);
    const rnn_limits *lim = lim_in ? lim_in : &dl;
    row *rows = rnn_xcalloc((size_t)n, sizeof *rows);
    int *steps = rnn_xcalloc((size_t)n, sizeof *steps), *group = rnn_xcalloc((size_t)n, sizeof *group);
    row *g = rnn_xcalloc((size_t)n, sizeof *g);
    int *gi = rnn_xcalloc((size_t)n, sizeof *gi);
    cJSON **go = rnn_xcalloc((size_t)n, sizeof *go);
    const int O = m->cfg.output_size;
    int rows_done = 0, passes = 0;
    if (!rows || !steps || !group || !g || !gi || !go) {
        for (int i = 0; i < n; i++) {
            status[i] = 500;
            snprintf(errs[i].msg, sizeof errs[i].msg, "out of memory");
        }
        goto done;
    }
    /* each request checked alone; those that step alike go together */
    for (int i = 0; i < n; i++) {
        pctx c = {.m = m, .meta = meta, .lim = lim, .err = &errs[i], .p = p};
        const int bad_req = stream_check(&c, s[i], reqs[i], &rows[i], &steps[i]);
        status[i] = bad_req ? (c.status ? c.status : 400) : 200;
        group[i] = bad_req ? -2 : rows[i].seq ? -1 : -3; /* -3: a forecast alone */
    }
    for (int i = 0; i < n; i++) {
        if (group[i] == -3) {
            rnn_stream_json(p, s[i], m, meta, reqs[i], lim, replies[i], &status[i], &errs[i]);
            rows_done++, passes++;
        }
        if (group[i] != -1)
            continue;
        const int retseq = return_sequences(reqs[i]);
        int k = 0;
        for (int j = i; j < n; j++)
            if (group[j] == -1 && same_pass(&rows[i], reqs[i], &rows[j], reqs[j])) {
                group[j] = i;
                gi[k] = j;
                g[k] = rows[j];
                go[k++] = replies[j];
            }
        /* the sessions' states as the rows of one, stepped together */
        pctx c = {.m = m, .meta = meta, .lim = lim, .err = &errs[i], .p = p};
        int failed = predictor_fit(&c, k) || use_state(&c, k);
        for (int q = 0; !failed && q < k; q++) stream_rows(c.st, q, s[gi[q]], &m->cfg, 1);
        if (failed || run_rows(&c, g, k, retseq, go)) {
            for (int q = 0; q < k; q++) {
                status[gi[q]] = c.status ? c.status : 500;
                errs[gi[q]] = errs[i];
            }
            continue;
        }
        for (int q = 0; q < k; q++) {
            rnn_stream *sq = s[gi[q]];
            stream_rows(c.st, q, sq, &m->cfg, 0);
            memcpy(sq->out, c.out + (size_t)q * O, (size_t)O * sizeof(float));
            sq->position += g[q].T;
        }
        /* forecasts go on from the batch's copy: the sessions stay put */
        finish_rows(&c, k, steps[i], go);
        for (int q = 0; q < k; q++)
            if (!json_finite(go[q])) {
                pctx cq = {.m = m, .err = &errs[gi[q]]};
                status[gi[q]] = 422;
                nonfinite(&cq, reply_model(go[q]));
            }
        rows_done += k;
        passes++;
    }
done:
    if (p) {
        p->last_rows = rows_done;
        p->last_passes = passes;
    }
    for (int i = 0; rows && i < n; i++) free(rows[i].tok);
    free(rows);
    free(steps);
    free(group);
    free(g);
    free(gi);
    free(go);
}

/* ------------------------------------------------------------------ many requests */

int rnn_predict_batchable(const rnn_model *m, const cJSON *req)
{
    /* text (whose unknown tokens the reply counts) goes alone, and so do
     * bidirectional models, which have no steps to interleave */
    return m->cfg.task != RNN_TASK_CHARLM && !rnn_token_input(&m->cfg) && !m->cfg.bidirectional &&
           cJSON_IsObject(req) &&
           cJSON_HasObjectItem(req, "sequence") && !cJSON_HasObjectItem(req, "sequences");
}

void rnn_predict_many(rnn_predictor *p, const rnn_model *m, const rnn_meta *meta, const char *name,
                      long version, const cJSON *const *reqs, int n, const rnn_limits *lim_in,
                      rnn_reply *out)
{
    rnn_limits dl;
    rnn_limits_default(&dl);
    const rnn_limits *lim = lim_in ? lim_in : &dl;
    row *rows = rnn_xcalloc((size_t)n, sizeof *rows);
    cJSON **objs = rnn_xcalloc((size_t)n, sizeof *objs);
    int *group = rnn_xcalloc((size_t)n, sizeof *group);
    rnn_err err;
    int rows_done = 0, passes = 0;
    for (int i = 0; i < n; i++) {
        out[i] = (rnn_reply){.status = 500};
        snprintf(out[i].msg, sizeof out[i].msg, "out of memory");
    }
    if (!rows || !objs || !group)
        goto done;
    /* each request checked alone, as rnn_predict_json would: a bad one gets
     * its error and the others go on */
    for (int i = 0; i < n; i++) {
        pctx c = {.m = m, .meta = meta, .lim = lim, .err = &err, .p = p};
        rows[i] = (row){.seq = cJSON_GetObjectItemCaseSensitive(reqs[i], "sequence"), .path = "sequence"};
        int ok = rnn_predict_batchable(m, reqs[i]) && !check_request(&c, reqs[i]) &&
                 forecast_request(&c, reqs[i]) >= 0 && !read_row(&c, &rows[i]) &&
                 !check_work(&c, (double)rows[i].T + forecast_steps(reqs[i])) &&
                 !predictor_fit(&c, 1);
        int t = 0;
        for (const cJSON *st = ok && !rows[i].tok ? rows[i].seq->child : NULL; ok && st; st = st->next)
            ok = !read_step(&c, st, rows[i].path, t++, c.x);
        group[i] = ok ? -1 : -2; /* -1: to run, -2: refused */
        if (!ok) {
            out[i].status = c.status ? c.status : 400;
            snprintf(out[i].msg, sizeof out[i].msg, "%s", err.msg);
        }
    }
    /* requests that ask for the same pass run as the rows of one */
    row *g = rnn_xcalloc((size_t)n, sizeof *g);
    cJSON **gobj = rnn_xcalloc((size_t)n, sizeof *gobj);
    int *gidx = rnn_xcalloc((size_t)n, sizeof *gidx);
    for (int i = 0; g && gobj && gidx && i < n; i++) {
        if (group[i] != -1)
            continue;
        int k = 0;
        for (int j = i; j < n; j++)
            if (group[j] == -1 && same_pass(&rows[i], reqs[i], &rows[j], reqs[j])) {
                group[j] = i;
                gidx[k] = j;
                g[k] = rows[j];
                objs[j] = cJSON_CreateObject();
                if (name)
                    cJSON_AddStringToObject(objs[j], "model", name);
                cJSON_AddNumberToObject(objs[j], "version", (double)version);
                gobj[k++] = objs[j];
            }
        pctx c = {.m = m, .meta = meta, .lim = lim, .err = &err, .p = p};
        const int bad_pass = predictor_fit(&c, k) || predict_rows(&c, g, k, reqs[i], gobj);
        rows_done += k;
        passes++;
        for (int q = 0; q < k; q++) {
            rnn_reply *o = &out[gidx[q]];
            if (!bad_pass && !json_finite(objs[gidx[q]])) {
                o->status = 422;
                nonfinite(&c, name);
                snprintf(o->msg, sizeof o->msg, "%s", err.msg);
            } else if (bad_pass) {
                o->status = c.status ? c.status : 500;
                snprintf(o->msg, sizeof o->msg, "%s", err.msg);
            } else if ((o->text = rnn_json_line(objs[gidx[q]], &o->len))) {
                o->status = 200;
                o->msg[0] = 0;
            }
        }
    }
    free(g);
    free(gobj);
    free(gidx);
done:
    if (p) {
        p->last_rows = rows_done;
        p->last_passes = passes;
    }
    for (int i = 0; rows && i < n; i++) free(rows[i].tok);
    for (int i = 0; objs && i < n; i++) cJSON_Delete(objs[i]);
    free(rows);
    free(objs);
    free(group);
}

int rnn_predict(const rnn_model *m, const rnn_meta *meta, const char *name, long version,
                const char *req, size_t len, const rnn_limits *lim, char **reply, int *status,
                rnn_err *err)
{
    const long nul = rnn_json_nul_at(req, len);
    cJSON *rq = nul < 0 ? cJSON_ParseWithLength(req, len) : NULL;
    if (!rq) {
        *reply = NULL;
        *status = 400;
        if (nul >= 0)
            snprintf(err->msg, sizeof err->msg,
                     "request: a string holds \\u0000 (a NUL character) at byte %ld", nul);
        else
            snprintf(err->msg, sizeof err->msg, "request is not valid JSON");
        return -1;
    }
    rnn_predictor *p = rnn_predictor_new();
    size_t n;
    int rc = p ? rnn_predict_json(p, m, meta, name, version, rq, lim, reply, &n, status, err) : -1;
    if (!p) {
        *reply = NULL;
        *status = 500;
        snprintf(err->msg, sizeof err->msg, "out of memory");
    }
    rnn_predictor_free(p);
    cJSON_Delete(rq);
    return rc;
}
