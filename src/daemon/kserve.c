/*
 * The Open Inference Protocol (KServe v2) over HTTP/JSON, so that clients
 * and tools made for Triton and KServe work unchanged (DESIGN.md, "Open
 * Inference Protocol"): server and model metadata, health, and infer.
 *
 * An infer request is one tensor "input" of shape [B, T, X], FP32, row-major
 * (flat or nested). It is answered by the same code as /predict: the tensor
 * becomes B sequences (one batched pass when, as here, they are all as long)
 * and each reply row becomes a row of the tensor "output": [B, O] for
 * many_to_one models, [B, T, O] for many_to_many ones, the class
 * probabilities for classify models.
 *
 * The sequence extension maps onto sessions: "parameters": {"sequence_id",
 * "sequence_start", "sequence_end"} with B = 1 steps the session named
 * "v2/MODEL/ID", opened by sequence_start (anew if it was open) and ended
 * after the request that carries sequence_end.
 *
 * Errors take the protocol's shape, {"error": "message"}, with 400 or 404
 * (429 and 503 where the server is full or short of memory).
 */
#include "http.h"

#include "rnn/version.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static answer v2_error(struct MHD_Connection *c, req *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static answer v2_error(struct MHD_Connection *c, req *r, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    return send_json(c, r, status, o);
}

/* The model of the path (and its version, when the path names one); answers
 * 404 itself and returns NULL when there is none. */
static served_model *path_model(struct MHD_Connection *c, req *r, answer *ret)
{
    served_model *s = registry_get(S.reg, r->arg[0]);
    if (!s) {
        *ret = v2_error(c, r, 404, "model \"%.64s\" is not loaded", r->arg[0]);
        return NULL;
    }
    if (!r->arg[1])
        return s;
    /* a version in the path: the served one or one kept on disk */
    char *end;
    const long want = strtol(r->arg[1], &end, 10);
    served_model *k = *r->arg[1] && !*end && want > 0 ? registry_get_version(S.reg, s->name, want) : NULL;
    if (!k)
        *ret = v2_error(c, r, 404, "model \"%s\" has no version \"%.24s\" (it serves version %ld)",
                        s->name, r->arg[1], s->version);
    served_release(s);
    return k;
}

static int sequence_outputs(const served_model *s)
{
    return s->m.cfg.mode == RNN_MODE_MANY_TO_MANY && s->m.cfg.task == RNN_TASK_REGRESSION;
}

static cJSON *int_array(const int *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

/* ------------------------------------------------------------------ metadata and health */

answer do_v2_server(struct MHD_Connection *c, req *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", "rnnd");
    cJSON_AddStringToObject(o, "version", RNND_VERSION);
    cJSON *e = cJSON_AddArrayToObject(o, "extensions");
    cJSON_AddItemToArray(e, cJSON_CreateString("sequence"));
    return send_json(c, r, 200, o);
}

answer do_v2_live(struct MHD_Connection *c, req *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "live", 1);
    return send_json(c, r, 200, o);
}

answer do_v2_ready(struct MHD_Connection *c, req *r)
{
    const int ready = atomic_load(&S.ready) && !atomic_load(&S.draining);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ready", ready);
    return send_json(c, r, ready ? 200 : 503, o);
}

answer do_v2_model(struct MHD_Connection *c, req *r)
{
    answer ret;
    served_model *s = path_model(c, r, &ret);
    if (!s)
        return ret;
    const rnn_config *cfg = &s->m.cfg;
    char v[24];
    snprintf(v, sizeof v, "%ld", s->version);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", s->name);
    /* every version kept, the served one among them */
    cJSON *vs = cJSON_AddArrayToObject(o, "versions");
    long *kept;
    const int nk = versions_list(s->name, &kept);
    int listed = 0;
    for (int i = 0; i < nk; i++) {
        char k[24];
        snprintf(k, sizeof k, "%ld", kept[i]);
        cJSON_AddItemToArray(vs, cJSON_CreateString(k));
        listed |= kept[i] == s->version;
    }
    free(kept);
    if (!listed)
        cJSON_AddItemToArray(vs, cJSON_CreateString(v));
    cJSON_AddStringToObject(o, "platform", "rnnd");
    cJSON *in = cJSON_CreateObject(), *out = cJSON_CreateObject();
    cJSON_AddStringToObject(in, "name", "input");
    cJSON_AddStringToObject(in, "datatype", "FP32");
    const int ishape[] = {-1, -1, cfg->input_size};
    cJSON_AddItemToObject(in, "shape", int_array(ishape, 3));
    cJSON_AddStringToObject(out, "name", "output");
    cJSON_AddStringToObject(out, "datatype", "FP32");
    const int oshape[] = {-1, -1, cfg->output_size};
    cJSON_AddItemToObject(out, "shape", sequence_outputs(s) ? int_array(oshape, 3)
                                                             : int_array(oshape + 1, 2));
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "inputs"), in);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "outputs"), out);
    served_release(s);
    return send_json(c, r, 200, o);
}

answer do_v2_model_ready(struct MHD_Connection *c, req *r)
{
    answer ret;
    served_model *s = path_model(c, r, &ret);
    if (!s)
        return ret;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", s->name);
    cJSON_AddBoolToObject(o, "ready", 1);
    served_release(s);
    return send_json(c, r, 200, o);
}

/* ------------------------------------------------------------------ infer */

/* Appends the numbers of data, flat or nested, to out (n so far, at most
 * cap); -1 at the first item that is not a number. */
static int flatten(const cJSON *data, cJSON *out, long *n, long cap)
{
    for (const cJSON *d = data->child; d; d = d->next) {
        if (cJSON_IsArray(d)) {
            if (flatten(d, out, n, cap))
                return -1;
        } else if (!cJSON_IsNumber(d) || ++*n > cap) {
            return -1;
        } else {
            cJSON_AddItemToArray(out, cJSON_CreateNumber(d->valuedouble));
        }
    }
    return 0;
}

/* The input tensor as /predict's "sequences": B sequences of T steps of X
 * (a number each when X = 1). NULL with the message in err. */
static cJSON *input_sequences(const cJSON *rq, const served_model *s, int *B, int *T, char *err,
                              size_t errlen)
{
    const int X = s->m.cfg.input_size;
    const cJSON *ins = cJSON_GetObjectItemCaseSensitive(rq, "inputs");
    if (!cJSON_IsArray(ins) || cJSON_GetArraySize(ins) != 1) {
        snprintf(err, errlen, "inputs: must hold one tensor, \"input\"");
        return NULL;
    }
    const cJSON *in = ins->child;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(in, "name");
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(in, "datatype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(in, "shape");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(in, "data");
    if (!cJSON_IsString(name) || strcmp(name->valuestring, "input")) {
        snprintf(err, errlen, "inputs[0].name: must be \"input\"");
        return NULL;
    }
    if (!cJSON_IsString(dt) || strcmp(dt->valuestring, "FP32")) {
        snprintf(err, errlen, "inputs[0].datatype: must be \"FP32\"");
        return NULL;
    }
    long dims[3];
    int nd = cJSON_IsArray(shape) ? cJSON_GetArraySize(shape) : 0, k = 0;
    for (const cJSON *d = nd == 3 ? shape->child : NULL; d; d = d->next, k++) {
        if (!cJSON_IsNumber(d) || d->valuedouble != floor(d->valuedouble) || d->valuedouble < 1 ||
            d->valuedouble > 1e7) {
            snprintf(err, errlen, "inputs[0].shape[%d]: must be a positive whole number", k);
            return NULL;
        }
        dims[k] = (long)d->valuedouble;
    }
    if (nd != 3) {
        snprintf(err, errlen, "inputs[0].shape: must be [batch, steps, %d]", X);
        return NULL;
    }
    if (dims[2] != X) {
        snprintf(err, errlen, "inputs[0].shape: model \"%s\" takes %d features per step, "
                              "the shape gives %ld", s->name, X, dims[2]);
        return NULL;
    }
    if (dims[0] > S.cfg.max_batch || dims[1] > S.cfg.max_sequence_length) {
        snprintf(err, errlen, "inputs[0].shape: [%ld, %ld, %ld] is over max_batch %d or "
                              "max_sequence_length %d", dims[0], dims[1], dims[2],
                 S.cfg.max_batch, S.cfg.max_sequence_length);
        return NULL;
    }
    const long count = dims[0] * dims[1] * dims[2];
    cJSON *flat = cJSON_CreateArray();
    long n = 0;
    if (!cJSON_IsArray(data) || flatten(data, flat, &n, count) || n != count) {
        snprintf(err, errlen, "inputs[0].data: must be %ld numbers (the shape's product), "
                              "flat or nested", count);
        cJSON_Delete(flat);
        return NULL;
    }
    cJSON *seqs = cJSON_CreateArray();
    const cJSON *v = flat->child;
    for (long b = 0; b < dims[0]; b++) {
        cJSON *seq = cJSON_CreateArray();
        for (long t = 0; t < dims[1]; t++) {
            cJSON *step = X == 1 ? NULL : cJSON_CreateArray();
            for (long x = 0; x < X; x++, v = v->next) {
                cJSON *num = cJSON_CreateNumber(v->valuedouble);
                if (step) cJSON_AddItemToArray(step, num);
                else step = num;
            }
            cJSON_AddItemToArray(seq, step);
        }
        cJSON_AddItemToArray(seqs, seq);
    }
    cJSON_Delete(flat);
    *B = (int)dims[0];
    *T = (int)dims[1];
    return seqs;
}

/* Appends one /predict reply row's output to data: the probabilities
 * (classify), every step's output (many_to_many regression) or the last. */
static void append_row(const served_model *s, const cJSON *row, cJSON *data)
{
    const cJSON *src = s->m.cfg.task == RNN_TASK_CLASSIFY ? cJSON_GetObjectItem(row, "probabilities")
                       : sequence_outputs(s)              ? cJSON_GetObjectItem(row, "outputs")
                                                          : cJSON_GetObjectItem(row, "prediction");
    long n = 0;
    if (cJSON_IsNumber(src))
        cJSON_AddItemToArray(data, cJSON_CreateNumber(src->valuedouble));
    else if (src)
        flatten(src, data, &n, 1L << 40);
}

/* The session of a sequence request, opened or ended as its flags say;
 * NULL when the request carries no sequence_id. */
static session *sequence_session(struct MHD_Connection *c, req *r, const cJSON *rq,
                                 served_model *s, int B, answer *ret, int *failed, int *end)
{
    const cJSON *par = cJSON_GetObjectItemCaseSensitive(rq, "parameters");
    const cJSON *id = par ? cJSON_GetObjectItemCaseSensitive(par, "sequence_id") : NULL;
    *failed = 0;
    if (!id)
        return NULL;
    char key[72];
    if (cJSON_IsString(id) && id->valuestring[0] && strlen(id->valuestring) <= 40)
        snprintf(key, sizeof key, "v2/%.24s/%s", s->name, id->valuestring);
    else if (cJSON_IsNumber(id) && id->valuedouble >= 0 && id->valuedouble < 9e15 &&
             id->valuedouble == floor(id->valuedouble))
        snprintf(key, sizeof key, "v2/%.24s/%.0f", s->name, id->valuedouble);
    else {
        *failed = 1;
        *ret = v2_error(c, r, 400, "parameters.sequence_id: must be a whole number or a string "
                                   "of 1 to 40 characters");
        return NULL;
    }
    if (B != 1) {
        *failed = 1;
        *ret = v2_error(c, r, 400, "inputs[0].shape: a sequence request carries one sequence "
                                   "(batch 1), got %d", B);
        return NULL;
    }
    const int start = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(par, "sequence_start"));
    *end = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(par, "sequence_end"));
    if (start) {
        session_end(S.sess, key);
        int status;
        char err[160];
        session *ss = session_open(S.sess, key, s, S.cfg.max_sessions, &status, err, sizeof err);
        if (!ss) {
            *failed = 1;
            *ret = v2_error(c, r, status, "%s", err);
        }
        return ss;
    }
    session *ss = session_get(S.sess, key);
    if (!ss) {
        *failed = 1;
        *ret = v2_error(c, r, 400, "sequence %s: not started (send sequence_start first) or ended",
                        key + strlen(s->name) + 4);
        return NULL;
    }
    return ss;
}

answer do_v2_infer(struct MHD_Connection *c, req *r)
{
    answer ret;
    cJSON *rq = parse_body(c, r, &ret);
    if (!rq)
        return ret;
    served_model *s = path_model(c, r, &ret);
    if (!s) {
        cJSON_Delete(rq);
        return ret;
    }
    session *ss = NULL;
    cJSON *pred = NULL, *reply = NULL;
    char err[400];
    int B = 0, T = 0, failed = 0, end = 0, status = 400;
    if (rnn_token_input(&s->m.cfg)) {
        ret = v2_error(c, r, 400, "model \"%s\" takes text: use POST /predict", s->name);
        goto done;
    }
    cJSON *seqs = input_sequences(rq, s, &B, &T, err, sizeof err);
    if (!seqs) {
        ret = v2_error(c, r, 400, "%s", err);
        goto done;
    }
    ss = sequence_session(c, r, rq, s, B, &ret, &failed, &end);
    if (failed) {
        cJSON_Delete(seqs);
        goto done;
    }
    /* the version that answers: a sequence's own, else the one of the path */
    const served_model *m = ss ? session_model(ss) : s;
    cJSON *preq = cJSON_CreateObject();
    if (sequence_outputs(m))
        cJSON_AddTrueToObject(preq, "return_sequences");
    rnn_err e;
    if (ss) {
        cJSON_AddItemToObject(preq, "sequence", cJSON_DetachItemFromArray(seqs, 0));
        pred = cJSON_CreateObject();
        if (session_run(ss, preq, pred, &status, &e)) {
            cJSON_Delete(pred);
            pred = NULL;
        }
    } else {
        cJSON_AddItemToObject(preq, "sequences", seqs);
        seqs = NULL;
        rnn_predictor *p = thread_predictor();
        const rnn_limits lim = predict_limits();
        char *text = NULL;
        size_t len;
        if (!p)
            snprintf(e.msg, sizeof e.msg, "out of memory"), status = 503;
        else if (!rnn_predict_json(p, &m->m, &m->meta, NULL, m->version, preq, &lim, &text, &len,
                                   &status, &e))
            pred = cJSON_Parse(text);
        free(text);
    }
    cJSON_Delete(seqs);
    cJSON_Delete(preq);
    if (!pred) {
        ret = v2_error(c, r, status == 413 || status == 422 ? 400 : status, "%s", e.msg);
        goto done;
    }
    const cJSON *rows = ss ? NULL : cJSON_GetObjectItem(pred, "predictions");
    reply = cJSON_CreateObject();
    char v[24];
    snprintf(v, sizeof v, "%ld", m->version);
    cJSON_AddStringToObject(reply, "model_name", m->name);
    cJSON_AddStringToObject(reply, "model_version", v);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(rq, "id");
    if (cJSON_IsString(id))
        cJSON_AddStringToObject(reply, "id", id->valuestring);
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "name", "output");
    cJSON_AddStringToObject(out, "datatype", "FP32");
    const int O = m->m.cfg.output_size, shape[] = {B, T, O};
    cJSON_AddItemToObject(out, "shape", sequence_outputs(m) ? int_array(shape, 3)
                                                             : int_array((int[]){B, O}, 2));
    cJSON *data = cJSON_AddArrayToObject(out, "data");
    if (ss)
        append_row(m, pred, data);
    for (const cJSON *row = rows ? rows->child : NULL; row; row = row->next)
        append_row(m, row, data);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(reply, "outputs"), out);
    if (ss && end)
        session_end(S.sess, session_id(ss));
    metrics_inference(m->name, B, 1); /* B rows of one length: one pass */
    ret = send_json(c, r, 200, reply);
done:
    cJSON_Delete(pred);
    session_release(ss);
    served_release(s);
    cJSON_Delete(rq);
    return ret;
}
