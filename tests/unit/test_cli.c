/* The rnnd command line, run as a user would: real processes, real files.
 * Also the PyTorch interop vectors of tests/ref/models: `rnnd predict`
 * must reproduce PyTorch's replies, and `rnnd train --init` one SGD step. */
#include "suites.h"
#include "rnn/fields.h"
#include "refcase.h"
#include "rnn/io.h"

#include <cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];

static const char *rnnd(void)
{
    const char *b = getenv("RNND_BIN");
    return b && *b ? b : "build/rnnd";
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/rnnd-cli-XXXXXX");
    ck_assert(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert(system(cmd) == 0);
}

/* Runs `rnnd ARGS` in the temp folder; stdout and stderr are kept in
 * out.txt and err.txt there. Returns the exit status. */
static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
    char args[4096], cmd[8192], bin[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    const char *b = rnnd();
    if (b[0] != '/') {
        char cwd[512];
        ck_assert(getcwd(cwd, sizeof cwd));
        snprintf(bin, sizeof bin, "%s/%s", cwd, b);
    } else {
        snprintf(bin, sizeof bin, "%s", b);
    }
    /* a group, so that args may be a script of several commands on $RNND */
    snprintf(cmd, sizeof cmd, "cd '%s' && { RNND='%s'; \"$RNND\" %s; } > out.txt 2> err.txt", dir,
             bin, args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static char *slurp(const char *name)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "rb");
    if (!f) return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *s = calloc((size_t)n + 1, 1);
    ck_assert(fread(s, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    return s;
}

static void put(const char *name, const char *text)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    ck_assert(f);
    fputs(text, f);
    fclose(f);
}

START_TEST(test_usage_and_exit_codes)
{
    ck_assert_int_eq(run("--help"), 0);
    ck_assert_int_eq(run("frobnicate"), 2);
    ck_assert_int_eq(run("train"), 2);
    char *e = slurp("err.txt");
    ck_assert_msg(strstr(e, "--job is required"), "%s", e);
    free(e);
    ck_assert_int_eq(run("train --help"), 0);
    ck_assert_int_eq(run("predict --model nosuch.safetensors --input -  < /dev/null"), 2);
    e = slurp("err.txt");
    ck_assert_msg(strstr(e, "nosuch.safetensors"), "%s", e);
    free(e);
    put("bad.json", "{\"data\": {\"generator\": \"sine\"}, \"optimizer\": {\"name\": \"adam\", \"lr\": \"fast\"}}");
    ck_assert_int_eq(run("train --job bad.json --out m.safetensors"), 2);
    e = slurp("err.txt");
    ck_assert_msg(strstr(e, "optimizer.lr"), "%s", e);
    free(e);
    /* run() works in dir: that is where a model would have been written */
    char out[128];
    snprintf(out, sizeof out, "%s/m.safetensors", dir);
    ck_assert_msg(access(out, F_OK) != 0, "no model may be written for a bad job");
}
END_TEST

/* rnnd train --checkpoint, stopped by SIGTERM once a checkpoint is on
 * disk, exits 75; --resume then writes the weights of a run never stopped,
 * and the checkpoint is gone. */
static void load_params(const char *name, rnn_model *m)
{
    char p[256];
    rnn_meta meta;
    rnn_err err;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    ck_assert_msg(rnn_model_load(p, m, &meta, &err) == 0, "%s", err.msg);
    rnn_meta_free(&meta);
}

/* Runs job.json into part.safetensors with --checkpoint c.bin, stops it
 * with SIGTERM at its first checkpoint (0.05 s in, well before the end),
 * checks it said how to resume and wrote no model, and resumes it.
 * launcher "" runs rnnd itself (want: its status, 75), MPIRUN two ranks
 * (want -1: any failing status). */
static void suspend_resume(const char *launcher, int want)
{
    const int st = run("%strain --job job.json --out part.safetensors --threads 1 --quiet --checkpoint c.bin"
                       " --checkpoint-s 0.05 & P=$!; while [ ! -f c.bin ]; do sleep 0.01; done;"
                       " kill -TERM $P; wait $P", launcher);
    ck_assert_msg(want < 0 ? st != 0 : st == want, "the stopped run exited %d", st);
    char *e = slurp("err.txt");
    ck_assert_msg(strstr(e, "--resume c.bin"), "%s", e);
    free(e);
    char p[256];
    snprintf(p, sizeof p, "%s/part.safetensors", dir);
    ck_assert_msg(access(p, F_OK) != 0, "a suspended run wrote its model");
    ck_assert_msg(run("%strain --job job.json --out part.safetensors --threads 1 --quiet --resume c.bin"
                      " --checkpoint c.bin", launcher) == 0, "%s", slurp("err.txt"));
}

START_TEST(test_checkpoint_resume)
{
    put("job.json", "{\"cell\": \"lstm\", \"hidden\": 48, \"data\": {\"generator\": \"sine\","
                    " \"samples\": 3000, \"window\": 40}, \"epochs\": 4, \"batch\": 16,"
                    " \"shuffle\": true, \"optimizer\": {\"name\": \"adam\"}}");
    ck_assert_int_eq(run("train --job job.json --out whole.safetensors --threads 1 --quiet"), 0);
    suspend_resume("", 75);
    char p[256];
    rnn_model a, b;
    load_params("whole.safetensors", &a);
    load_params("part.safetensors", &b);
    ck_assert_msg(a.nparams == b.nparams && !memcmp(a.params, b.params, a.nparams * sizeof(float)),
                  "resumed weights differ from the uninterrupted run's");
    rnn_model_free(&a);
    rnn_model_free(&b);
    snprintf(p, sizeof p, "%s/c.bin", dir);
    ck_assert_msg(access(p, F_OK) != 0, "the checkpoint outlived the model");
    /* a checkpoint of another job is refused by name */
    ck_assert_int_eq(run("train --job job.json --out x.safetensors --quiet --checkpoint c2.bin"
                         " --checkpoint-s 0.05 & P=$!; while [ ! -f c2.bin ]; do sleep 0.01; done;"
                         " kill -TERM $P; wait $P"), 75);
    put("job2.json", "{\"cell\": \"lstm\", \"hidden\": 48, \"data\": {\"generator\": \"sine\","
                     " \"samples\": 3000, \"window\": 40}, \"epochs\": 4, \"batch\": 15,"
                     " \"shuffle\": true, \"optimizer\": {\"name\": \"adam\"}}");
    ck_assert_int_eq(run("train --job job2.json --out x.safetensors --quiet --resume c2.bin"), 1);
    char *e = slurp("err.txt");
    ck_assert_msg(strstr(e, "another run"), "%s", e);
    free(e);
}
END_TEST

/* The docs' key tables are the field table: each block between
 * <!-- keys SCOPE --> and <!-- /keys --> is what `rnnd keys SCOPE` prints
 * (make docs writes them), and every scope is in the docs. */
START_TEST(test_docs_hold_the_field_table)
{
    const char *docs[] = {"README.md", "docs/engine.md", "docs/http-api.md", "docs/model-format.md"};
    int blocks = 0;
    char seen[1024] = " ";
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        FILE *f = fopen(docs[i], "rb");
        ck_assert_msg(f, "%s: missing (run from the project root)", docs[i]);
        static char text[1 << 18];
        const size_t n = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[n] = 0;
        for (char *p = strstr(text, "<!-- keys "); p; p = strstr(p + 1, "<!-- keys ")) {
            char scope[64];
            ck_assert(sscanf(p, "<!-- keys %63[a-z._] -->", scope) == 1);
            strncat(seen, scope, sizeof seen - strlen(seen) - 2);
            strcat(seen, " ");
            char *body = strchr(p, '\n') + 1, *end = strstr(body, "<!-- /keys -->");
            ck_assert_msg(end, "%s: <!-- keys %s --> has no end", docs[i], scope);
            ck_assert_int_eq(run("keys %s", scope), 0);
            char *want = slurp("out.txt");
            ck_assert_msg(strlen(want) == (size_t)(end - body) && !strncmp(want, body, strlen(want)),
                          "%s: the table of %s is not the field table's; run make docs", docs[i], scope);
            free(want);
            blocks++;
        }
    }
    /* every scope of the table, and the daemon's settings, have theirs */
    for (const char *const *sc = rnn_field_scopes; *sc; sc++) {
        char word[80];
        snprintf(word, sizeof word, " %s ", *sc);
        ck_assert_msg(strstr(seen, word), "no document holds the table of %s", *sc);
    }
    ck_assert_msg(strstr(seen, " serve "), "no document holds the daemon's settings");
    ck_assert_int_eq(blocks, 14);
    ck_assert_int_eq(run("keys nosuch"), 2);
}
END_TEST

/* The README's sine example: train, then predict the next value and a
 * 10-step forecast of the wave. */
START_TEST(test_sine_train_predict)
{
    put("sine.json", "{\"model\": \"sine\", \"cell\": \"lstm\", \"hidden\": 32, \"init\": {\"seed\": 1},"
                     " \"data\": {\"generator\": \"sine\", \"samples\": 200, \"window\": 50},"
                     " \"validation\": 0.1, \"epochs\": 30, \"batch\": 16,"
                     " \"optimizer\": {\"name\": \"adam\", \"lr\": 0.01}, \"clip\": 5}");
    ck_assert_int_eq(run("train --job sine.json --out sine.safetensors"), 0);
    char *out = slurp("out.txt");
    cJSON *s = cJSON_Parse(out);
    ck_assert_msg(s, "summary is not JSON: %s", out);
    double val = cJSON_GetObjectItem(s, "final_val_loss")->valuedouble;
    ck_assert_msg(val < 1e-3, "validation MSE %g", val);
    ck_assert_int_eq(cJSON_GetObjectItem(s, "epochs")->valueint, 30);
    cJSON_Delete(s);
    free(out);
    char req[4096];
    int p = snprintf(req, sizeof req, "{\"sequence\": [");
    for (int i = 0; i < 50; i++) p += snprintf(req + p, sizeof req - (size_t)p, "%s%.6f", i ? "," : "", sin(300 + i));
    snprintf(req + p, sizeof req - (size_t)p, "], \"steps\": 10}");
    put("req.json", req);
    ck_assert_int_eq(run("predict --model sine.safetensors --input req.json"), 0);
    out = slurp("out.txt");
    cJSON *r = cJSON_Parse(out);
    ck_assert_msg(r, "%s", out);
    ck_assert_str_eq(cJSON_GetObjectItem(r, "model")->valuestring, "sine");
    double pred = cJSON_GetObjectItem(r, "prediction")->valuedouble;
    ck_assert_msg(fabs(pred - sin(350)) < 0.05, "prediction %g, sin(350) = %g", pred, sin(350));
    cJSON *fc = cJSON_GetObjectItem(r, "forecast");
    ck_assert_int_eq(cJSON_GetArraySize(fc), 10);
    for (int k = 0; k < 10; k++) {
        double v = cJSON_GetArrayItem(fc, k)->valuedouble;
        ck_assert_msg(fabs(v - sin(350 + k)) < 0.1, "forecast[%d] %g, want %g", k, v, sin(350 + k));
    }
    cJSON_Delete(r);
    free(out);
    /* fine-tuning adds epochs to the model's history */
    put("more.json", "{\"data\": {\"generator\": \"sine\", \"samples\": 50, \"window\": 50}, \"epochs\": 2}");
    ck_assert_int_eq(run("train --job more.json --init sine.safetensors --out sine2.safetensors"), 0);
    ck_assert_int_eq(run("info --model sine2.safetensors --json"), 0);
    out = slurp("out.txt");
    r = cJSON_Parse(out);
    ck_assert_msg(r, "%s", out);
    ck_assert_int_eq(cJSON_GetObjectItem(r, "epochs")->valueint, 32);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "loss_history")), 32);
    cJSON_Delete(r);
    free(out);
    /* bad requests: status 2 and a message naming the field */
    put("bad.json", "{\"sequence\": [1, 2, 1e999]}");
    ck_assert_int_eq(run("predict --model sine.safetensors --input bad.json"), 2);
    out = slurp("err.txt");
    ck_assert_msg(strstr(out, "sequence[2]"), "%s", out);
    free(out);
}
END_TEST

START_TEST(test_charlm_generate)
{
    put("corpus.txt", "the cat sat on the mat. the dog sat on the log. the cat and the dog sat. "
                      "a cat, a dog, a mat, a log: the cat sat and the dog sat on the mat and the log. ");
    put("chars.json", "{\"task\": \"charlm\", \"hidden\": 48, \"embedding\": 8, \"init\": {\"seed\": 2},"
                      " \"data\": {\"file\": \"corpus.txt\", \"window\": 24}, \"epochs\": 80, \"batch\": 4,"
                      " \"optimizer\": {\"name\": \"adam\", \"lr\": 0.01}, \"clip\": 5}");
    ck_assert_int_eq(run("train --job chars.json --out chars.safetensors"), 0);
    ck_assert_int_eq(run("generate --model chars.safetensors --prefix 'the ' --length 40 --seed 7"), 0);
    char *a = slurp("out.txt");
    ck_assert_int_eq(run("generate --model chars.safetensors --prefix 'the ' --length 40 --seed 7"), 0);
    char *b = slurp("out.txt");
    ck_assert_str_eq(a, b);
    ck_assert_msg(strncmp(a, "the ", 4) == 0 && strlen(a) == 45, "\"%s\"", a);
    printf("  generated: %s", a);
    ck_assert_int_eq(run("generate --model chars.safetensors --prefix 'the ' --length 40 --temperature 0"), 0);
    free(b);
    b = slurp("out.txt");
    ck_assert_msg(strstr(b, "cat") || strstr(b, "dog") || strstr(b, "sat"), "greedy text learned nothing: %s", b);
    free(a);
    free(b);
    /* characters it never saw are left out, and counted in the reply */
    put("unseen.json", "{\"text\": \"xyz the \", \"length\": 5, \"temperature\": 0}");
    ck_assert_int_eq(run("predict --model chars.safetensors --input unseen.json"), 0);
    a = slurp("out.txt");
    ck_assert_msg(strstr(a, "\"unknown\":3") && !strstr(a, "\"seed\""), "%s", a);
    free(a);
}
END_TEST

/* ------------------------------------------------------------------ PyTorch interop */

static const char *models_dir(void)
{
    const char *d = getenv("RNN_MODELS_DIR");
    return d && *d ? d : "tests/ref/models";
}

static int ncases;
static char cases[32][128];

/* Compares reply fields: numbers to 1e-5 of the field's scale, strings exactly. */
static double max_abs(const cJSON *v)
{
    if (cJSON_IsNumber(v)) return fabs(v->valuedouble);
    double m = 0;
    for (const cJSON *c = v ? v->child : NULL; c; c = c->next) m = fmax(m, max_abs(c));
    return m;
}

static double diff(const cJSON *a, const cJSON *b, const char *path, char *why, size_t wl)
{
    if (cJSON_IsNumber(b)) {
        if (!cJSON_IsNumber(a)) { snprintf(why, wl, "%s: not a number", path); return INFINITY; }
        return fabs(a->valuedouble - b->valuedouble);
    }
    if (cJSON_IsString(b)) {
        if (!cJSON_IsString(a) || strcmp(a->valuestring, b->valuestring)) {
            snprintf(why, wl, "%s: \"%s\" vs \"%s\"", path, cJSON_IsString(a) ? a->valuestring : "?", b->valuestring);
            return INFINITY;
        }
        return 0;
    }
    if (cJSON_IsArray(b)) {
        if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != cJSON_GetArraySize(b)) {
            snprintf(why, wl, "%s: array sizes differ", path);
            return INFINITY;
        }
        double m = 0;
        const cJSON *x = a->child;
        for (const cJSON *y = b->child; y; y = y->next, x = x->next) m = fmax(m, diff(x, y, path, why, wl));
        return m;
    }
    if (cJSON_IsObject(b)) {
        double m = 0;
        for (const cJSON *y = b->child; y; y = y->next) {
            const cJSON *x = cJSON_GetObjectItemCaseSensitive(a, y->string);
            if (!x) { snprintf(why, wl, "%s.%s: missing", path, y->string); return INFINITY; }
            m = fmax(m, diff(x, y, y->string, why, wl));
        }
        return m;
    }
    return 0;
}

START_TEST(test_pytorch_models_predict)
{
    ck_assert_msg(ncases >= 7, "expected at least 7 interop cases in %s, found %d", models_dir(), ncases);
    ck_assert_int_lt(_i, ncases);
    char cwd[512], model[1024], reqp[1024], expp[1024];
    ck_assert(getcwd(cwd, sizeof cwd));
    snprintf(model, sizeof model, "%s/%s/%s.safetensors", cwd, models_dir(), cases[_i]);
    snprintf(reqp, sizeof reqp, "%s/%s/%s.request.json", cwd, models_dir(), cases[_i]);
    snprintf(expp, sizeof expp, "%s/%s/%s.expected.json", cwd, models_dir(), cases[_i]);
    ck_assert_msg(run("predict --model '%s' --input '%s'", model, reqp) == 0, "%s", slurp("err.txt"));
    char *out = slurp("out.txt");
    FILE *f = fopen(expp, "r");
    ck_assert(f);
    char *exp = calloc(1 << 20, 1);
    size_t n = fread(exp, 1, (1 << 20) - 1, f);
    fclose(f);
    exp[n] = 0;
    cJSON *got = cJSON_Parse(out), *want = cJSON_Parse(exp);
    ck_assert(got && want);
    char why[256] = "";
    for (const cJSON *field = want->child; field; field = field->next) {
        double d = diff(cJSON_GetObjectItemCaseSensitive(got, field->string), field, field->string, why, sizeof why);
        double scale = fmax(max_abs(field), 1e-30);
        double rel = cJSON_IsNumber(field) || cJSON_IsArray(field) || cJSON_IsObject(field) ? d / scale : d;
        printf("  interop %-24s %-16s max rel err %.2e\n", cases[_i], field->string, rel);
        ck_assert_msg(rel <= 1e-5, "%s: %s differs from PyTorch (rel %.3e) %s", cases[_i], field->string, rel, why);
    }
    cJSON_Delete(got);
    cJSON_Delete(want);
    free(out);
    free(exp);
}
END_TEST

START_TEST(test_sgd_step_matches_pytorch)
{
    char cwd[512];
    ck_assert(getcwd(cwd, sizeof cwd));
    char job[1024], init[1024], want[1024];
    snprintf(job, sizeof job, "%s/%s/sgd_step.job.json", cwd, models_dir());
    snprintf(init, sizeof init, "%s/%s/sgd_step.init.safetensors", cwd, models_dir());
    snprintf(want, sizeof want, "%s/%s/sgd_step.expected.safetensors", cwd, models_dir());
    ck_assert_msg(run("train --job '%s' --init '%s' --out stepped.safetensors", job, init) == 0, "%s", slurp("err.txt"));
    rnn_model a, b;
    rnn_meta ma, mb;
    rnn_err err;
    char got[256];
    snprintf(got, sizeof got, "%s/stepped.safetensors", dir);
    ck_assert_msg(rnn_model_load(got, &a, &ma, &err) == 0, "%s", err.msg);
    ck_assert_msg(rnn_model_load(want, &b, &mb, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(a.nparams, b.nparams);
    for (int i = 0; i < a.ntensors; i++) {
        const rnn_tensor *t = &a.tensors[i];
        double e = ref_relerr(a.params + t->offset, b.params + t->offset, t->size);
        printf("  sgd step %-20s max rel err %.2e\n", t->name, e);
        ck_assert_msg(e <= 1e-5, "%s after one SGD step differs from PyTorch: %.3e", t->name, e);
    }
    rnn_model_free(&a); rnn_model_free(&b);
    rnn_meta_free(&ma); rnn_meta_free(&mb);
}
END_TEST

/* ------------------------------------------------------------------ MPI */

/* `mpirun -np 2 rnnd train` as a user runs it (as root here, two ranks on
 * the machine's cores; leak checks off, as Open MPI keeps its allocations to
 * the end). run() puts "$RNND" first, so these follow a harmless --version. */
#define MPIRUN "--version > /dev/null; ASAN_OPTIONS=detect_leaks=0 mpirun --allow-run-as-root " \
               "--oversubscribe -np 2 \"$RNND\" "

/* The worst relative difference over the tensors of two model files. */
static double weights_relerr(const char *a, const char *b)
{
    rnn_model x, y;
    load_params(a, &x);
    load_params(b, &y);
    ck_assert_int_eq(x.nparams, y.nparams);
    double worst = 0;
    for (int i = 0; i < x.ntensors; i++) {
        const rnn_tensor *t = &x.tensors[i];
        worst = fmax(worst, ref_relerr(x.params + t->offset, y.params + t->offset, t->size));
    }
    rnn_model_free(&x);
    rnn_model_free(&y);
    return worst;
}

static int have_mpirun(void)
{
    if (getenv("RNND_SKIP_MPI")) {
        printf("  mpi: SKIPPED (RNND_SKIP_MPI is set)\n");
        return 0;
    }
    ck_assert_msg(system("command -v mpirun > /dev/null 2>&1") == 0,
                  "mpirun is not installed: apt-get install openmpi-bin libopenmpi-dev (make test "
                  "does; RNND_SKIP_MPI=1 skips these tests)");
    return 1;
}

/* Two ranks share each batch: the weights are those of one process that
 * splits its batches over two threads (the same split, summed in the same
 * order) and, to 1e-5, those of one thread; rank 0 alone reports. */
START_TEST(test_mpi_matches_one_process)
{
    if (!have_mpirun())
        return;
    put("job.json", "{\"cell\": \"lstm\", \"hidden\": 96, \"layers\": 2, \"dropout\": 0.2, \"epochs\": 2,"
                    " \"batch\": 32, \"validation\": 0.2, \"data\": {\"generator\": \"sine\", \"samples\": 256,"
                    " \"window\": 24}, \"optimizer\": {\"name\": \"sgd\", \"lr\": 0.1, \"momentum\": 0.9}}");
    ck_assert_int_eq(run("train --job job.json --out one.safetensors --threads 1 --quiet"), 0);
    ck_assert_int_eq(run("train --job job.json --out two.safetensors --threads 2 --quiet"), 0);
    ck_assert_msg(run(MPIRUN "train --job job.json --out mpi.safetensors --threads 1 --quiet") == 0,
                  "%s", slurp("err.txt"));
    char *out = slurp("out.txt");
    cJSON *o = cJSON_Parse(out);
    ck_assert_msg(o, "not one JSON summary (did every rank print?): %s", out);
    ck_assert_int_eq((int)cJSON_GetObjectItem(o, "ranks")->valuedouble, 2);
    const double reduce = cJSON_GetObjectItem(o, "allreduce_seconds")->valuedouble;
    cJSON_Delete(o);
    free(out);
    const double e2 = weights_relerr("two.safetensors", "mpi.safetensors");
    const double e1 = weights_relerr("one.safetensors", "mpi.safetensors");
    printf("  mpi: 2 ranks vs 1 process of 2 threads: rel %.2e; of 1 thread: rel %.2e (allreduce %.3f s)\n",
           e2, e1, reduce);
    ck_assert_msg(e2 == 0, "2 ranks differ from 2 threads: %.3e", e2);
    ck_assert_msg(e1 <= 1e-5, "2 ranks differ from one process: %.3e", e1);
}
END_TEST

/* SIGTERM to mpirun stops every rank after the same step with rank 0's
 * checkpoint; resumed under mpirun, the weights are bitwise those of an
 * uninterrupted run. */
START_TEST(test_mpi_checkpoint_resume)
{
    if (!have_mpirun())
        return;
    /* long enough (about 5 s) that the stop lands mid-run: mpirun passes
     * SIGTERM on about a second after it gets it */
    put("job.json", "{\"cell\": \"gru\", \"hidden\": 128, \"epochs\": 40, \"batch\": 16,"
                    " \"data\": {\"generator\": \"sine\", \"samples\": 2048, \"window\": 40},"
                    " \"optimizer\": {\"name\": \"adam\"}}");
    ck_assert_msg(run(MPIRUN "train --job job.json --out whole.safetensors --threads 1 --quiet") == 0,
                  "%s", slurp("err.txt"));
    suspend_resume(MPIRUN, -1); /* mpirun's own status: not 75 */
    const double d = weights_relerr("whole.safetensors", "part.safetensors");
    ck_assert_msg(d == 0, "resumed under mpirun, the weights differ: rel %.3e", d);
    /* a checkpoint of one process does not fit two ranks */
    ck_assert_int_eq(run("train --job job.json --out x.safetensors --quiet --threads 1 --checkpoint c.bin"
                         " --checkpoint-s 0.05 & P=$!; while [ ! -f c.bin ]; do sleep 0.01; done;"
                         " kill -TERM $P; wait $P"), 75);
    ck_assert_int_ne(run(MPIRUN "train --job job.json --out x.safetensors --quiet --threads 1"
                         " --resume c.bin"), 0);
}
END_TEST

/* A build without MPI (RNND_NOMPI_BIN, make's rnnd-nompi) refuses to run
 * under mpirun instead of training two copies alone. */
START_TEST(test_mpi_refused_without_mpi)
{
    const char *bin = getenv("RNND_NOMPI_BIN");
    if (!have_mpirun() || !bin || !*bin) {
        if (!bin || !*bin)
            printf("  mpi: no RNND_NOMPI_BIN (make unit sets it): the build without MPI is not checked\n");
        return;
    }
    char cwd[512];
    ck_assert(getcwd(cwd, sizeof cwd));
    put("job.json", "{\"hidden\": 4, \"epochs\": 1, \"data\": {\"generator\": \"sine\", \"samples\": 16, \"window\": 5}}");
    ck_assert_int_ne(run("--version > /dev/null; mpirun --allow-run-as-root --oversubscribe -np 2 '%s%s%s'"
                         " train --job job.json --out x.safetensors 2>&1", bin[0] == '/' ? "" : cwd,
                         bin[0] == '/' ? "" : "/", bin), 0);
    char *o = slurp("out.txt");
    ck_assert_msg(strstr(o, "built without MPI"), "%s", o);
    free(o);
    char p[256];
    snprintf(p, sizeof p, "%s/x.safetensors", dir);
    ck_assert_msg(access(p, F_OK) != 0, "a refused run wrote a model");
    /* without a launcher that build trains as usual */
    ck_assert_int_eq(run("--version > /dev/null; '%s%s%s' train --job job.json --out x.safetensors --quiet",
                         bin[0] == '/' ? "" : cwd, bin[0] == '/' ? "" : "/", bin), 0);
}
END_TEST

static int cmp_names(const void *a, const void *b) { return strcmp(a, b); }

Suite *cli_suite(void)
{
    DIR *d = opendir(models_dir());
    struct dirent *e;
    while (d && (e = readdir(d)) && ncases < 32) {
        const char *suffix = ".request.json";
        size_t l = strlen(e->d_name), sl = strlen(suffix);
        if (l > sl && l - sl < 120 && !strcmp(e->d_name + l - sl, suffix)) {
            memcpy(cases[ncases], e->d_name, l - sl);
            cases[ncases][l - sl] = 0;
            ncases++;
        }
    }
    if (d) closedir(d);
    qsort(cases, (size_t)ncases, sizeof cases[0], cmp_names);
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("commands");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_usage_and_exit_codes);
    tcase_add_test(tc, test_sine_train_predict);
    tcase_add_test(tc, test_checkpoint_resume);
    tcase_add_test(tc, test_docs_hold_the_field_table);
    tcase_add_test(tc, test_charlm_generate);
    tcase_add_loop_test(tc, test_pytorch_models_predict, 0, ncases > 0 ? ncases : 1);
    tcase_add_test(tc, test_sgd_step_matches_pytorch);
    tcase_add_test(tc, test_mpi_matches_one_process);
    tcase_add_test(tc, test_mpi_checkpoint_resume);
    tcase_add_test(tc, test_mpi_refused_without_mpi);
    suite_add_tcase(s, tc);
    return s;
}
