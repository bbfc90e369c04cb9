/* Model files: a save/load round trip, atomic saves, and hostile files —
 * each malformed variant must be refused with a message naming the problem,
 * never a crash (this suite also runs under AddressSanitizer). */
#include "suites.h"
#include "rnn/io.h"
#include "rnn/rnn.h"
#include "act.h"

#include <cJSON.h>
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/rnnd-io-XXXXXX");
    ck_assert(mkdtemp(dir));
}

static void teardown(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    if (d) closedir(d);
    rmdir(dir);
}

static int count_files(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)))
        n += e->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

static void make_model(rnn_model *m, rnn_meta *meta, rnn_cell_type cell, int tokens)
{
    rnn_config cfg = {tokens ? RNN_TASK_CHARLM : RNN_TASK_REGRESSION,
                      tokens ? RNN_MODE_MANY_TO_MANY : RNN_MODE_MANY_TO_ONE, cell, RNN_ACT_TANH,
                      tokens ? 5 : 2, 6, 2, tokens ? 5 : 1, tokens ? 3 : 0, tokens, 0, 0};
    rnn_err err;
    ck_assert(rnn_model_init(m, &cfg, &err) == 0);
    rnn_rng r;
    rnn_rng_seed(&r, 11);
    rnn_model_randomize(m, &r, RNN_INIT_DEFAULT);
    rnn_meta_init(meta);
    if (tokens) meta->vocab = strdup("abcdé");
    meta->epochs = 3;
    meta->final_loss = 0.25;
    double l[3] = {1.0, 0.5, 0.25}, v[3] = {1.1, NAN, 0.3};
    rnn_meta_append(meta, l, v, 3, 100);
}

START_TEST(test_roundtrip)
{
    rnn_model m, back;
    rnn_meta meta, mb;
    rnn_err err;
    make_model(&m, &meta, (rnn_cell_type)_i, _i == 1);
    char path[128];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    ck_assert_msg(rnn_model_save(path, &m, &meta, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(count_files(), 1);
    ck_assert_msg(rnn_model_load(path, &back, &mb, &err) == 0, "%s", err.msg);
    ck_assert(memcmp(&m.cfg, &back.cfg, sizeof m.cfg) == 0);
    ck_assert(memcmp(m.params, back.params, m.nparams * sizeof(float)) == 0);
    ck_assert_int_eq(mb.epochs, 3);
    ck_assert_int_eq(mb.nhistory, 3);
    ck_assert(isnan(mb.val_loss[1]) && mb.val_loss[2] == 0.3);
    if (_i == 1) ck_assert_str_eq(mb.vocab, "abcdé");
    rnn_model_free(&m); rnn_model_free(&back);
    rnn_meta_free(&meta); rnn_meta_free(&mb);
}
END_TEST

START_TEST(test_failed_save_keeps_old_file)
{
    rnn_model m;
    rnn_meta meta;
    rnn_err err;
    make_model(&m, &meta, RNN_CELL_LSTM, 0);
    char path[128];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    ck_assert(rnn_model_save(path, &m, &meta, &err) == 0);
    const float keep = m.params[0];
    m.params[0] = NAN;
    ck_assert(rnn_model_save(path, &m, &meta, &err) == -1);
    ck_assert_msg(strstr(err.msg, "not finite"), "%s", err.msg);
    ck_assert_int_eq(count_files(), 1);
    /* a folder that does not exist: a clean error, nothing left behind */
    char bad[160];
    snprintf(bad, sizeof bad, "%s/missing/m.safetensors", dir);
    m.params[0] = keep;
    ck_assert(rnn_model_save(bad, &m, &meta, &err) == -1);
    ck_assert_msg(strstr(err.msg, "temp file"), "%s", err.msg);
    ck_assert_int_eq(count_files(), 1);
    rnn_model loaded;
    rnn_meta lm;
    ck_assert(rnn_model_load(path, &loaded, &lm, &err) == 0);
    ck_assert(loaded.params[0] == keep);
    rnn_model_free(&loaded); rnn_meta_free(&lm);
    rnn_model_free(&m); rnn_meta_free(&meta);
}
END_TEST

/* rnn_model_save_new, as two replicas claiming one version number at the
 * same moment: of two savers released together exactly one creates the
 * file, the other gets 1, the file is the winner's whole, no temp is left. */
typedef struct claimer {
    const char *path;
    rnn_model *m;
    rnn_meta *meta;
    pthread_barrier_t *go;
    int rc;
} claimer;

static void *claim(void *arg)
{
    claimer *c = arg;
    rnn_err err;
    pthread_barrier_wait(c->go);
    c->rc = rnn_model_save_new(c->path, c->m, c->meta, &err);
    return NULL;
}

START_TEST(test_save_new_is_exclusive)
{
    rnn_model m[2];
    rnn_meta meta[2];
    make_model(&m[0], &meta[0], RNN_CELL_GRU, 0);
    make_model(&m[1], &meta[1], RNN_CELL_GRU, 0);
    m[1].params[0] = m[0].params[0] + 1.0f;
    for (int round = 0; round < 50; round++) {
        char path[128];
        snprintf(path, sizeof path, "%s/v%d.safetensors", dir, round);
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, 2);
        claimer c[2] = {{path, &m[0], &meta[0], &go, -9}, {path, &m[1], &meta[1], &go, -9}};
        pthread_t t[2];
        for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, claim, &c[i]);
        for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
        pthread_barrier_destroy(&go);
        ck_assert_msg((c[0].rc == 0) + (c[1].rc == 0) == 1 && (c[0].rc == 1 || c[1].rc == 1),
                      "round %d: rc %d and %d", round, c[0].rc, c[1].rc);
        const int won = c[0].rc == 0 ? 0 : 1;
        rnn_model back;
        rnn_meta mb;
        rnn_err err;
        ck_assert_msg(rnn_model_load(path, &back, &mb, &err) == 0, "%s", err.msg);
        ck_assert_msg(back.params[0] == m[won].params[0], "round %d: the file is not the winner's", round);
        rnn_model_free(&back);
        rnn_meta_free(&mb);
    }
    ck_assert_int_eq(count_files(), 50); /* no temp left behind */
    for (int i = 0; i < 2; i++) {
        rnn_model_free(&m[i]);
        rnn_meta_free(&meta[i]);
    }
}
END_TEST

/* ------------------------------------------------------------------ hostile files */

typedef struct blob { unsigned char *p; size_t n; } blob;

/* A valid file's bytes, split into header JSON and data. */
static void valid_parts(cJSON **hdr, blob *data)
{
    rnn_model m;
    rnn_meta meta;
    rnn_err err;
    make_model(&m, &meta, RNN_CELL_GRU, 0);
    char path[128];
    snprintf(path, sizeof path, "%s/v.safetensors", dir);
    ck_assert(rnn_model_save(path, &m, &meta, &err) == 0);
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    size_t n = (size_t)ftell(f);
    rewind(f);
    unsigned char *b = malloc(n);
    ck_assert(fread(b, 1, n, f) == n);
    fclose(f);
    size_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | b[i];
    *hdr = cJSON_ParseWithLength((const char *)b + 8, hl);
    data->n = n - 8 - hl;
    data->p = malloc(data->n);
    memcpy(data->p, b + 8 + hl, data->n);
    free(b);
    unlink(path);
    rnn_model_free(&m);
    rnn_meta_free(&meta);
}

static blob assemble(const cJSON *hdr, const blob *data)
{
    char *h = cJSON_PrintUnformatted(hdr);
    size_t hl = strlen(h);
    blob b = {malloc(8 + hl + data->n), 8 + hl + data->n};
    for (int i = 0; i < 8; i++) b.p[i] = (unsigned char)(hl >> (8 * i));
    memcpy(b.p + 8, h, hl);
    memcpy(b.p + 8 + hl, data->p, data->n);
    free(h);
    return b;
}

static void set_offsets(cJSON *hdr, const char *name, double b, double e)
{
    cJSON *t = cJSON_GetObjectItem(hdr, name);
    cJSON *o = cJSON_CreateArray();
    cJSON_AddItemToArray(o, cJSON_CreateNumber(b));
    cJSON_AddItemToArray(o, cJSON_CreateNumber(e));
    cJSON_ReplaceItemInObject(t, "data_offsets", o);
}

static double off_of(cJSON *hdr, const char *name, int k)
{
    cJSON *o = cJSON_GetObjectItem(cJSON_GetObjectItem(hdr, name), "data_offsets");
    return cJSON_GetArrayItem(o, k)->valuedouble;
}

enum { H_TRUNC, H_LEN_SMALL, H_LEN_HUGE, H_LEN_PAST_FILE, H_OVERLAP, H_GAP, H_DTYPE, H_SHAPE, H_NAN,
       H_MISSING, H_NOCONFIG, H_EXTRA_TENSOR, H_TRAILING, H_BADCONFIG, H_META_NUMBER, H_TINY, H_NOT_JSON,
       H_HUGE, H_NUL, H_COUNT };

static const char *const expect[H_COUNT] = {
    [H_TRUNC] = "run past the data",
    [H_LEN_SMALL] = "not a JSON object",
    [H_LEN_HUGE] = "larger than the limit",
    [H_LEN_PAST_FILE] = "larger than the file",
    [H_OVERLAP] = "overlaps",
    [H_GAP] = "gap of",
    [H_DTYPE] = "only F32",
    [H_SHAPE] = "does not match the config",
    [H_NAN] = "not finite",
    [H_MISSING] = "is missing",
    [H_NOCONFIG] = "rnnd.config",
    [H_EXTRA_TENSOR] = "not part of",
    [H_TRAILING] = "after the last tensor",
    [H_BADCONFIG] = "rnnd.config",
    [H_META_NUMBER] = "must be strings",
    [H_TINY] = "shorter than the 8-byte",
    [H_NOT_JSON] = "not a JSON object",
    [H_HUGE] = "beyond the bound",
    [H_NUL] = "NUL character",
};

START_TEST(test_hostile)
{
    cJSON *hdr;
    blob data;
    valid_parts(&hdr, &data);
    blob b = {0, 0};
    const char *w = "rnn.weight_hh_l1", *bh = "rnn.bias_hh_l0";
    switch (_i) {
    case H_TRUNC:
        b = assemble(hdr, &data);
        b.n -= 10;
        break;
    case H_LEN_SMALL:
        b = assemble(hdr, &data);
        b.p[0] = 20; b.p[1] = b.p[2] = 0;
        break;
    case H_LEN_HUGE:
        b = assemble(hdr, &data);
        b.p[7] = 0x7f;
        break;
    case H_LEN_PAST_FILE:
        b = assemble(hdr, &data);
        b.p[3] = 0x01; /* 16 MiB + header: past this small file */
        b.p[2] = 0x00;
        b.p[3] = 0x00; b.p[2] = 0xf0; b.p[1] = 0xff; /* about 15.9 MiB, under the limit */
        break;
    case H_OVERLAP:
        set_offsets(hdr, w, off_of(hdr, w, 0) - 4, off_of(hdr, w, 1) - 4);
        b = assemble(hdr, &data);
        break;
    case H_GAP: {
        /* shift the last tensor (head.bias) by 4 bytes and add 4 bytes of data */
        double s = off_of(hdr, "head.bias", 0), e = off_of(hdr, "head.bias", 1);
        set_offsets(hdr, "head.bias", s + 4, e + 4);
        data.p = realloc(data.p, data.n + 4);
        memset(data.p + data.n, 0, 4);
        data.n += 4;
        b = assemble(hdr, &data);
        break;
    }
    case H_DTYPE:
        cJSON_ReplaceItemInObject(cJSON_GetObjectItem(hdr, bh), "dtype", cJSON_CreateString("F16"));
        b = assemble(hdr, &data);
        break;
    case H_SHAPE: {
        cJSON *sh = cJSON_GetObjectItem(cJSON_GetObjectItem(hdr, w), "shape");
        cJSON_ReplaceItemInArray(sh, 0, cJSON_CreateNumber(9));
        cJSON_ReplaceItemInArray(sh, 1, cJSON_CreateNumber(12));
        b = assemble(hdr, &data);
        break;
    }
    case H_NAN: {
        float nan = NAN;
        memcpy(data.p + (size_t)off_of(hdr, bh, 0) + 8, &nan, 4);
        b = assemble(hdr, &data);
        break;
    }
    case H_MISSING: {
        /* drop head.bias and its bytes at the end */
        data.n -= (size_t)(off_of(hdr, "head.bias", 1) - off_of(hdr, "head.bias", 0));
        cJSON_DeleteItemFromObject(hdr, "head.bias");
        b = assemble(hdr, &data);
        break;
    }
    case H_NOCONFIG:
        cJSON_DeleteItemFromObject(cJSON_GetObjectItem(hdr, "__metadata__"), "rnnd.config");
        b = assemble(hdr, &data);
        break;
    case H_EXTRA_TENSOR: {
        cJSON *t = cJSON_Duplicate(cJSON_GetObjectItem(hdr, "head.bias"), 1);
        cJSON_AddItemToObject(hdr, "rnn.weight_ih_l7", t);
        b = assemble(hdr, &data);
        break;
    }
    case H_TRAILING:
        data.p = realloc(data.p, data.n + 16);
        memset(data.p + data.n, 0, 16);
        data.n += 16;
        b = assemble(hdr, &data);
        break;
    case H_BADCONFIG:
        cJSON_ReplaceItemInObject(cJSON_GetObjectItem(hdr, "__metadata__"), "rnnd.config",
                                  cJSON_CreateString("{\"task\": \"regression\", \"hidden\": -3}"));
        b = assemble(hdr, &data);
        break;
    case H_META_NUMBER:
        cJSON_AddNumberToObject(cJSON_GetObjectItem(hdr, "__metadata__"), "rnnd.epochs2", 3);
        b = assemble(hdr, &data);
        break;
    case H_TINY:
        b.p = malloc(5);
        b.n = 5;
        memset(b.p, 0, 5);
        break;
    case H_NOT_JSON: {
        b = assemble(hdr, &data);
        b.p[8] = '[';
        break;
    }
    case H_HUGE: { /* finite, but a pass with it overflows (found by libFuzzer) */
        float huge = 1e35f;
        memcpy(data.p + (size_t)off_of(hdr, w, 0) + 4, &huge, 4);
        b = assemble(hdr, &data);
        break;
    }
    case H_NUL: { /* a metadata string with an escaped NUL, written over six X's */
        cJSON_AddStringToObject(cJSON_GetObjectItem(hdr, "__metadata__"), "rnnd.note", "okXXXXXXx");
        b = assemble(hdr, &data);
        unsigned char *x = memmem(b.p, b.n, "XXXXXX", 6);
        ck_assert(x);
        memcpy(x, "\\u0000", 6);
        break;
    }
    }
    rnn_model m;
    rnn_meta meta;
    rnn_err err;
    memset(&err, 0, sizeof err);
    int rc = rnn_model_load_mem(b.p, b.n, &m, &meta, &err);
    if (rc == 0) { rnn_model_free(&m); rnn_meta_free(&meta); }
    printf("  hostile %-2d -> %s\n", _i, err.msg);
    ck_assert_msg(rc == -1, "hostile variant %d was accepted", _i);
    ck_assert_msg(strstr(err.msg, expect[_i]), "variant %d: \"%s\" should mention \"%s\"", _i, err.msg, expect[_i]);
    ck_assert(m.params == NULL && meta.vocab == NULL);
    free(b.p);
    free(data.p);
    cJSON_Delete(hdr);
}
END_TEST

/* Guards on what JSON and arithmetic can smuggle in: an escaped NUL is
 * found (and an escaped backslash before "u0000" is not one); a prediction
 * that overflows is a 422 naming the model, never null in a 200; exp of NaN
 * is NaN (without converting NaN to an integer on the way). */
START_TEST(test_json_and_overflow_guards)
{
    static const struct { const char *text; long at; } nul[] = {
        {"{\"a\": \"ok\\u0000x\"}", 9}, {"{\"a\": \"ok\\\\u0000x\"}", -1},
        {"{\"a\": \"\\\\\\u0000\"}", 9}, {"{\"a\": \"\\u00001\"}", 7}, {"\\u000", -1},
        {"{\"a\": \"\\u0001\"}", -1},
    };
    for (size_t i = 0; i < sizeof nul / sizeof nul[0]; i++)
        ck_assert_msg(rnn_json_nul_at(nul[i].text, strlen(nul[i].text)) == nul[i].at, "%s: %ld, not %ld",
                      nul[i].text, rnn_json_nul_at(nul[i].text, strlen(nul[i].text)), nul[i].at);

    rnn_config cfg = {RNN_TASK_REGRESSION, RNN_MODE_MANY_TO_ONE, RNN_CELL_RNN, RNN_ACT_RELU, 1, 4, 1, 1, 0, 0, 0, 0};
    rnn_model m;
    rnn_meta meta;
    rnn_err err;
    ck_assert(rnn_model_init(&m, &cfg, &err) == 0);
    rnn_meta_init(&meta);
    for (size_t i = 0; i < m.nparams; i++) m.params[i] = 1e14f; /* under RNN_MAX_WEIGHT */
    static const char *const reqs[] = {"{\"sequence\": [1e30, 1e30]}", "{\"sequence\": [1], \"steps\": 40}"};
    for (int k = 0; k < 2; k++) {
        char *reply = NULL;
        int status = 0;
        const int rc = rnn_predict(&m, &meta, "big", 1, reqs[k], strlen(reqs[k]), NULL, &reply, &status, &err);
        ck_assert_msg(rc == -1 && status == 422 && !reply, "%s: rc %d status %d reply %s", reqs[k], rc, status,
                      reply ? reply : "-");
        ck_assert_msg(strstr(err.msg, "model big") && strstr(err.msg, "non-finite"), "%s", err.msg);
    }
    /* the same model on small inputs answers */
    char *reply = NULL;
    int status = 0;
    for (size_t i = 0; i < m.nparams; i++) m.params[i] = 0.5f;
    const char *small = "{\"sequence\": [1, 2]}";
    ck_assert_msg(rnn_predict(&m, &meta, "big", 1, small, strlen(small), NULL, &reply, &status, &err) == 0,
                  "%s", err.msg);
    ck_assert_int_eq(status, 200);
    ck_assert_msg(strstr(reply, "\"prediction\":") && !strstr(reply, "null"), "%s", reply);
    free(reply);
    rnn_model_free(&m);
    rnn_meta_free(&meta);
    volatile float nan = NAN;
    ck_assert(isnan(rnn_expf(nan)) && isnan(rnn_sigmoidf(nan)));
    ck_assert(rnn_expf(-INFINITY) >= 0 && rnn_expf(-INFINITY) < 1e-37f);
}
END_TEST

/* Random corruption of a valid file: whatever the bytes, a load either
 * succeeds with finite weights or fails with a message; never a crash. */
START_TEST(test_fuzz_mutations)
{
    cJSON *hdr;
    blob data;
    valid_parts(&hdr, &data);
    blob good = assemble(hdr, &data);
    rnn_rng r;
    rnn_rng_seed(&r, 99);
    unsigned char *b = malloc(good.n);
    int refused = 0;
    for (int it = 0; it < 3000; it++) {
        memcpy(b, good.p, good.n);
        size_t n = good.n;
        int edits = 1 + (int)rnn_rng_below(&r, 4);
        for (int k = 0; k < edits; k++) {
            /* mostly inside the header, where the parser is */
            size_t hl = good.n - data.n;
            size_t pos = rnn_rng_below(&r, 2) ? rnn_rng_below(&r, hl) : rnn_rng_below(&r, n);
            b[pos] = (unsigned char)rnn_rng_next(&r);
        }
        if (rnn_rng_below(&r, 8) == 0) n = rnn_rng_below(&r, n);
        rnn_model m;
        rnn_meta meta;
        rnn_err err;
        if (rnn_model_load_mem(b, n, &m, &meta, &err) == 0) {
            for (size_t i = 0; i < m.nparams; i++) ck_assert(isfinite(m.params[i]));
            rnn_model_free(&m);
            rnn_meta_free(&meta);
        } else {
            ck_assert(err.msg[0]);
            refused++;
        }
    }
    printf("  fuzz: %d of 3000 mutated files refused, the rest loaded clean\n", refused);
    ck_assert(refused > 100);
    free(b);
    free(good.p);
    free(data.p);
    cJSON_Delete(hdr);
}
END_TEST

START_TEST(test_history_bounded)
{
    rnn_meta meta;
    rnn_meta_init(&meta);
    double l[1];
    for (int i = 0; i < 5000; i++) {
        l[0] = i;
        ck_assert(rnn_meta_append(&meta, l, NULL, 1, 100) == 0);
        ck_assert(meta.nhistory <= 100);
    }
    ck_assert(meta.loss[meta.nhistory - 1] == 4999); /* the newest point is kept */
    ck_assert(meta.loss[0] < 100);                   /* and the start is still visible */
    rnn_meta_free(&meta);
}
END_TEST

Suite *io_suite(void)
{
    Suite *s = suite_create("io");
    TCase *tc = tcase_create("safetensors");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_roundtrip, 0, 3);
    tcase_add_test(tc, test_failed_save_keeps_old_file);
    tcase_add_test(tc, test_save_new_is_exclusive);
    tcase_add_loop_test(tc, test_hostile, 0, H_COUNT);
    tcase_add_test(tc, test_fuzz_mutations);
    tcase_add_test(tc, test_history_bounded);
    tcase_add_test(tc, test_json_and_overflow_guards);
    suite_add_tcase(s, tc);
    return s;
}
