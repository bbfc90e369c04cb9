/*
 * Predictions as JSON: the one implementation behind `rnnd predict` and
 * `POST /predict`. Regression returns the output after the last step, with
 * optional multi-step forecasts (each output fed back as the next input) and
 * per-step outputs; classify returns a label and probabilities; charlm
 * generates text from a prefix with a temperature and a seed. Every input is
 * checked, and limits applied, before any computation.
 */
#include "rnn/io.h"
#include "internal.h"

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
}

typedef struct pctx {
    const rnn_model *m;
    const rnn_meta *meta;
    const rnn_limits *lim;
    int status;
    rnn_err *err;
    rnn_state st;
    float *x, *out;         /* (X), (O) */
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

static cJSON *floats_json(const float *v, int n, int scalar)
{
    if (scalar && n == 1)
        return cJSON_CreateNumber(v[0]);
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

/* Steps of a numeric sequence into x (X floats). */
static int read_step(pctx *c, const cJSON *s, const char *path, int t, float *x)
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

/* Token ids of a string in the model's vocabulary; *n gets the count. */
static int32_t *read_tokens(pctx *c, const char *s, const char *path, int *n)
{
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
    uint32_t *cps = rnn_xcalloc((size_t)len, sizeof(uint32_t));
    int32_t *tok = rnn_xcalloc((size_t)len, sizeof(int32_t));
    if (!cps || !tok) {
        free(cps);
        free(tok);
        bad(c, 500, "out of memory");
        return NULL;
    }
    rnn_utf8_decode(s, strlen(s), cps, (size_t)len);
    for (int i = 0; i < len; i++) {
        tok[i] = rnn_vocab_index(c->meta->vocab ? c->meta->vocab : "", cps[i]);
        if (tok[i] < 0) {
            const unsigned cp = (unsigned)cps[i];
            free(cps);
            free(tok);
            bad(c, 422, "%s: character %d (U+%04X) is not in the model's vocabulary", path, i, cp);
            return NULL;
        }
    }
    free(cps);
    *n = len;
    return tok;
}

static int sample(const float *logits, int V, double temperature, rnn_rng *rng)
{
    int best = 0;
    for (int k = 1; k < V; k++)
        if (logits[k] > logits[best]) best = k;
    if (temperature <= 0)
        return best;
    double s = 0, mx = logits[best];
    double *p = malloc((size_t)V * sizeof(double));
    if (!p)
        return best;
    for (int k = 0; k < V; k++) {
        p[k] = exp((logits[k] - mx) / temperature);
        s += p[k];
    }
    double u = rnn_rng_uniform(rng) * s, acc = 0;
    int pick = V - 1;
    for (int k = 0; k < V; k++) {
        acc += p[k];
        if (u < acc) {
            pick = k;
            break;
        }
    }
    free(p);
    return pick;
}

/* One numeric or token sequence through the model; fills one reply object. */
static int predict_one(pctx *c, const cJSON *seq, const char *path, const cJSON *req, cJSON *obj)
{
    const rnn_config *cfg = &c->m->cfg;
    const int O = cfg->output_size, X = cfg->input_size;
    const cJSON *steps_j = cJSON_GetObjectItemCaseSensitive(req, "steps");
    const cJSON *rs_j = cJSON_GetObjectItemCaseSensitive(req, "return_sequences");
    int steps = 0, retseq = cJSON_IsTrue(rs_j);
    if (steps_j) {
        steps = (int)steps_j->valuedouble;
        if (steps > 0 && cfg->task != RNN_TASK_REGRESSION)
            return bad(c, 422, "steps: forecasting needs a regression model");
        if (steps > 0 && O != X)
            return bad(c, 422, "steps: forecasting feeds each output back as input, but the model "
                               "has %d outputs and %d inputs", O, X);
    }
    int T = 0;
    int32_t *tok = NULL;
    if (rnn_token_input(cfg)) {
        if (!cJSON_IsString(seq))
            return bad(c, 400, "%s: this model takes text (a string)", path);
        if (!(tok = read_tokens(c, seq->valuestring, path, &T)))
            return -1;
    } else {
        if (!cJSON_IsArray(seq))
            return bad(c, 400, "%s: must be an array of steps", path);
        T = cJSON_GetArraySize(seq);
        if (T > c->lim->max_sequence_length)
            return bad(c, 413, "%s: %d steps, the limit is %d (max_sequence_length)", path, T,
                       c->lim->max_sequence_length);
    }
    if (T < 1) {
        free(tok);
        return bad(c, 422, "%s: empty sequence", path);
    }
    cJSON *outs = retseq ? cJSON_CreateArray() : NULL;
    rnn_state_reset(&c->st, cfg);
    const cJSON *s = cJSON_IsArray(seq) ? seq->child : NULL;
    for (int t = 0; t < T; t++, s = s ? s->next : NULL) {
        if (!tok && read_step(c, s, path, t, c->x)) {
            cJSON_Delete(outs);
            return -1;
        }
        rnn_step(c->m, &c->st, tok ? NULL : c->x, tok ? &tok[t] : NULL, c->out);
        if (outs)
            cJSON_AddItemToArray(outs, floats_json(c->out, O, 1));
    }
    free(tok);
    if (cfg->task == RNN_TASK_CLASSIFY) {
        double mx = c->out[0], sum = 0;
        int best = 0;
        for (int k = 1; k < O; k++)
            if (c->out[k] > c->out[best]) best = k;
        mx = c->out[best];
        for (int k = 0; k < O; k++) sum += exp(c->out[k] - mx);
        if (c->meta->nlabels == O)
            cJSON_AddStringToObject(obj, "label", c->meta->labels[best]);
        else
            cJSON_AddNumberToObject(obj, "label", best);
        cJSON *p = cJSON_AddArrayToObject(obj, "probabilities");
        for (int k = 0; k < O; k++)
            cJSON_AddItemToArray(p, cJSON_CreateNumber(exp(c->out[k] - mx) / sum));
    } else {
        cJSON_AddItemToObject(obj, "prediction", floats_json(c->out, O, 1));
    }
    if (steps > 0) {
        cJSON *fc = cJSON_AddArrayToObject(obj, "forecast");
        for (int k = 0; k < steps; k++) {
            memcpy(c->x, c->out, (size_t)X * sizeof(float));
            cJSON_AddItemToArray(fc, floats_json(c->out, O, 1));
            if (k + 1 < steps)
                rnn_step(c->m, &c->st, c->x, NULL, c->out);
        }
    }
    if (outs)
        cJSON_AddItemToObject(obj, "outputs", outs);
    return 0;
}

static int generate(pctx *c, const cJSON *req, cJSON *reply)
{
    const rnn_config *cfg = &c->m->cfg;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(req, "text");
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(req, "length");
    const cJSON *tp = cJSON_GetObjectItemCaseSensitive(req, "temperature");
    const cJSON *sd = cJSON_GetObjectItemCaseSensitive(req, "seed");
    if (!t)
        return bad(c, 400, "text: missing (the prefix to continue; may be \"\")");
    if (!cJSON_IsString(t))
        return bad(c, 400, "text: must be a string");
    int length = l ? (int)l->valuedouble : 200;
    if (length > c->lim->max_steps)
        return bad(c, 413, "length: %d characters, the limit is %d", length, c->lim->max_steps);
    double temperature = tp ? tp->valuedouble : 1.0;
    uint64_t seed = sd ? (uint64_t)sd->valuedouble : (uint64_t)time(NULL) ^ (uint64_t)clock();
    int n = 0;
    int32_t *tok = NULL;
    if (t->valuestring[0] && !(tok = read_tokens(c, t->valuestring, "text", &n)))
        return -1;
    rnn_rng rng;
    rnn_rng_seed(&rng, seed);
    rnn_state_reset(&c->st, cfg);
    const int V = cfg->output_size;
    int32_t cur;
    if (n == 0) {
        /* no prefix: start from a character drawn from the vocabulary */
        cur = (int32_t)rnn_rng_below(&rng, (uint64_t)V);
    } else {
        for (int i = 0; i + 1 < n; i++)
            rnn_step(c->m, &c->st, NULL, &tok[i], NULL);
        cur = tok[n - 1];
    }
    free(tok);
    char *buf = malloc((size_t)length * 4 + 5), ch[8];
    if (!buf)
        return bad(c, 500, "out of memory");
    size_t p = 0;
    if (n == 0)
        p += (size_t)rnn_vocab_char(c->meta->vocab, cur, buf + p);
    for (int k = 0; k < length; k++) {
        rnn_step(c->m, &c->st, NULL, &cur, c->out);
        cur = sample(c->out, V, temperature, &rng);
        int w = rnn_vocab_char(c->meta->vocab, cur, ch);
        memcpy(buf + p, ch, (size_t)w);
        p += (size_t)w;
    }
    buf[p] = 0;
    cJSON_AddStringToObject(reply, "text", buf);
    cJSON_AddNumberToObject(reply, "seed", (double)(seed & ((1ULL << 53) - 1)));
    free(buf);
    return 0;
}

/* Types and ranges of the optional keys, before anything runs. */
static int check_request(pctx *c, const cJSON *req)
{
    static const char *const keys[] = {"model", "sequence", "sequences", "steps", "return_sequences",
                                       "text", "length", "temperature", "seed", NULL};
    for (const cJSON *it = req->child; it; it = it->next) {
        int ok = 0;
        for (int i = 0; keys[i] && !ok; i++) ok = !strcmp(it->string, keys[i]);
        if (!ok)
            return bad(c, 400, "%s: unknown key", it->string);
    }
    const cJSON *v;
    if ((v = cJSON_GetObjectItemCaseSensitive(req, "model")) && !cJSON_IsString(v))
        return bad(c, 400, "model: must be a string");
    struct { const char *key; double lo, hi; int whole; } nums[] = {
        {"steps", 0, c->lim->max_steps, 1},
        {"length", 0, 1e9, 1},
        {"temperature", 0, 100, 0},
        {"seed", 0, 9007199254740991.0, 1},
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        if (!(v = cJSON_GetObjectItemCaseSensitive(req, nums[i].key)))
            continue;
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
            return bad(c, 400, "%s: must be a %snumber", nums[i].key, nums[i].whole ? "whole " : "finite ");
        if (nums[i].whole && v->valuedouble != floor(v->valuedouble))
            return bad(c, 400, "%s: must be a whole number", nums[i].key);
        if (v->valuedouble < nums[i].lo || v->valuedouble > nums[i].hi)
            return bad(c, v->valuedouble > nums[i].hi && !strcmp(nums[i].key, "steps") ? 413 : 422,
                       "%s: must be between %g and %g, got %g", nums[i].key, nums[i].lo, nums[i].hi,
                       v->valuedouble);
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(req, "return_sequences")) && !cJSON_IsBool(v))
        return bad(c, 400, "return_sequences: must be true or false");
    return 0;
}

int rnn_predict(const rnn_model *m, const rnn_meta *meta, const char *name, long version,
                const char *req, size_t len, const rnn_limits *lim_in, char **reply, int *status,
                rnn_err *err)
{
    rnn_limits dl;
    rnn_limits_default(&dl);
    pctx c = {.m = m, .meta = meta, .lim = lim_in ? lim_in : &dl, .status = 0, .err = err};
    *reply = NULL;
    cJSON *rq = cJSON_ParseWithLength(req, len);
    cJSON *out = NULL;
    int rc = -1;
    if (!rq) {
        bad(&c, 400, "request is not valid JSON");
        goto done;
    }
    if (!cJSON_IsObject(rq)) {
        bad(&c, 400, "request must be a JSON object");
        goto done;
    }
    if (check_request(&c, rq))
        goto done;
    if (rnn_state_init(&c.st, &m->cfg, 1)) {
        bad(&c, 500, "out of memory");
        goto done;
    }
    c.x = rnn_falloc((size_t)m->cfg.input_size);
    c.out = rnn_falloc((size_t)m->cfg.output_size);
    out = cJSON_CreateObject();
    if (!c.x || !c.out || !out) {
        bad(&c, 500, "out of memory");
        goto done;
    }
    if (name)
        cJSON_AddStringToObject(out, "model", name);
    cJSON_AddNumberToObject(out, "version", (double)version);
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(rq, "sequence");
    const cJSON *seqs = cJSON_GetObjectItemCaseSensitive(rq, "sequences");
    if (m->cfg.task == RNN_TASK_CHARLM) {
        if (seq || seqs) {
            bad(&c, 400, "a charlm model takes {\"text\": prefix, \"length\": N}, not sequences");
            goto done;
        }
        if (generate(&c, rq, out))
            goto done;
    } else if (seq && seqs) {
        bad(&c, 400, "give either sequence or sequences, not both");
        goto done;
    } else if (seq) {
        if (predict_one(&c, seq, "sequence", rq, out))
            goto done;
    } else if (seqs) {
        if (!cJSON_IsArray(seqs)) {
            bad(&c, 400, "sequences: must be an array of sequences");
            goto done;
        }
        int n = cJSON_GetArraySize(seqs);
        if (n < 1) {
            bad(&c, 422, "sequences: empty");
            goto done;
        }
        if (n > c.lim->max_batch) {
            bad(&c, 413, "sequences: %d sequences, the limit is %d (max_batch)", n, c.lim->max_batch);
            goto done;
        }
        cJSON *arr = cJSON_AddArrayToObject(out, "predictions");
        int i = 0;
        char path[32];
        for (const cJSON *s = seqs->child; s; s = s->next, i++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddItemToArray(arr, o);
            snprintf(path, sizeof path, "sequences[%d]", i);
            if (predict_one(&c, s, path, rq, o))
                goto done;
        }
    } else {
        bad(&c, 400, "sequence: missing (or sequences for a batch)");
        goto done;
    }
    *reply = cJSON_PrintUnformatted(out);
    if (!*reply) {
        bad(&c, 500, "out of memory");
        goto done;
    }
    rc = 0;
done:
    if (rc)
        *status = c.status ? c.status : 400;
    else
        *status = 200;
    cJSON_Delete(out);
    cJSON_Delete(rq);
    free(c.x);
    free(c.out);
    if (c.st.h)
        rnn_state_free(&c.st);
    return rc;
}
