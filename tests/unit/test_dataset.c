/* Datasets and the job spec: windows of a series, character vocabularies,
 * sequences with features, labels, and the errors that name the key. */
#include "suites.h"
#include "rnn/job.h"
#include "rnn/rnn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

START_TEST(test_series_windows)
{
    const float s[6] = {0, 1, 2, 3, 4, 5};
    rnn_dataset d;
    rnn_err err;
    ck_assert(rnn_dataset_from_series(&d, s, 6, 4, RNN_MODE_MANY_TO_ONE, &err) == 0);
    ck_assert_int_eq(d.n, 2);
    ck_assert_float_eq(d.x[d.off[1] + 3], 4.0f);
    ck_assert_float_eq(d.y[1], 5.0f);
    rnn_dataset_free(&d);
    ck_assert(rnn_dataset_from_series(&d, s, 6, 4, RNN_MODE_MANY_TO_MANY, &err) == 0);
    ck_assert_float_eq(d.y[d.off[1] + 0], 2.0f);
    ck_assert_float_eq(d.y[d.off[1] + 3], 5.0f);
    rnn_dataset_free(&d);
    ck_assert(rnn_dataset_from_series(&d, s, 4, 4, RNN_MODE_MANY_TO_ONE, &err) == -1);
    ck_assert_msg(strstr(err.msg, "data.series"), "%s", err.msg);
}
END_TEST

START_TEST(test_text_vocab_utf8)
{
    const char *text = "héllo wörld, héllo";
    rnn_dataset d;
    rnn_err err;
    ck_assert_msg(rnn_dataset_from_text(&d, text, strlen(text), 4, NULL, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(d.vocab, " ,dhlorwéö");
    ck_assert_int_eq(d.vocab_n, 10);
    ck_assert_int_eq(d.n, (18 - 1) / 4);
    /* window 0 is "héll", targets "éllo" */
    char c[5];
    rnn_vocab_char(d.vocab, d.tok[1], c);
    ck_assert_str_eq(c, "é");
    ck_assert_int_eq(d.cls[0], d.tok[1]);
    rnn_dataset_free(&d);
    /* a fixed vocabulary rejects a character it lacks, naming it */
    ck_assert(rnn_dataset_from_text(&d, "abcz", 4, 2, "abc", &err) == -1);
    ck_assert_msg(strstr(err.msg, "'z'"), "%s", err.msg);
    ck_assert(rnn_dataset_from_text(&d, "ab\xff\xfe", 4, 1, NULL, &err) == -1);
    ck_assert_msg(strstr(err.msg, "UTF-8"), "%s", err.msg);
}
END_TEST

static int parse_build(const char *json, rnn_job *job, rnn_dataset *d, rnn_err *err)
{
    if (rnn_job_parse(job, json, strlen(json), err))
        return -1;
    int rc = rnn_job_dataset(job, NULL, NULL, d, err);
    if (rc)
        rnn_job_free(job);
    return rc;
}

START_TEST(test_job_sequences_features_and_labels)
{
    rnn_job job;
    rnn_dataset d;
    rnn_err err;
    const char *j1 = "{\"task\": \"classify\", \"cell\": \"gru\", \"hidden\": 8,"
                     " \"data\": {\"sequences\": [[[1,2],[3,4]], [[5,6],[7,8],[9,10]]],"
                     " \"targets\": [\"up\", \"down\"]}}";
    ck_assert_msg(parse_build(j1, &job, &d, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(job.cfg.input_size, 2);
    ck_assert_int_eq(job.cfg.output_size, 2);
    ck_assert_int_eq(job.cfg.embedding, 0);
    ck_assert_int_eq(d.nlabels, 2);
    ck_assert_str_eq(d.labels[0], "down");
    ck_assert_int_eq(d.cls[0], 1);
    ck_assert_int_eq(d.len[1], 3);
    ck_assert_float_eq(d.x[(d.off[1] + 2) * 2 + 1], 10.0f);
    rnn_dataset_free(&d);
    rnn_job_free(&job);

    const char *j2 = "{\"task\": \"classify\", \"embedding\": 4, \"data\": {\"sequences\": [\"abba\", \"cab\"], \"targets\": [0, 1]}}";
    ck_assert_msg(parse_build(j2, &job, &d, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(job.cfg.input_size, 3);
    ck_assert_int_eq(job.cfg.embedding, 4);
    ck_assert_str_eq(d.vocab, "abc");
    ck_assert_int_eq(d.tok[d.off[1]], 2);
    rnn_dataset_free(&d);
    rnn_job_free(&job);

    const char *j3 = "{\"mode\": \"many_to_many\", \"data\": {\"sequences\": [[1,2,3]], \"targets\": [[2,3,4]]}}";
    ck_assert_msg(parse_build(j3, &job, &d, &err) == 0, "%s", err.msg);
    ck_assert_float_eq(d.y[2], 4.0f);
    rnn_dataset_free(&d);
    rnn_job_free(&job);
}
END_TEST

/* Each bad spec must fail with a message naming the key. */
static const struct { const char *json, *names; } bad[] = {
    {"{\"data\": {\"generator\": \"sine\"}, \"hiden\": 3}", "hiden: unknown key"},
    {"{\"data\": {\"generator\": \"sine\"}, \"hidden\": \"64\"}", "hidden: must be a whole number"},
    {"{\"data\": {\"generator\": \"sine\"}, \"hidden\": 0}", "hidden: must be between"},
    {"{\"data\": {\"generator\": \"sine\"}, \"hidden\": 2.5}", "hidden: must be a whole number"},
    {"{\"data\": {\"generator\": \"sine\"}, \"cell\": \"transformer\"}", "cell: must be one of"},
    {"{\"data\": {\"generator\": \"sine\"}, \"optimizer\": {\"name\": \"adam\", \"lr\": -1}}", "optimizer.lr"},
    {"{\"data\": {\"generator\": \"sine\"}, \"optimizer\": {\"name\": \"sgd\", \"beta1\": 0.9}}", "optimizer.beta1: only for adam"},
    {"{\"data\": {\"generator\": \"sine\"}, \"optimizer\": {\"name\": \"rmsprop\"}}", "optimizer.name"},
    {"{\"data\": {\"generator\": \"sine\"}, \"init\": {\"recurrent\": \"zeros\"}}", "init.recurrent"},
    {"{\"data\": {\"generator\": \"sine\"}, \"validation\": 1.5}", "validation: must be between"},
    {"{\"data\": {\"generator\": \"sine\"}, \"model\": \"../etc/passwd\"}", "model: must be"},
    {"{\"data\": {\"generator\": \"sine\"}, \"task\": \"classify\"}", "data: a classify job"},
    {"{\"data\": {\"generator\": \"sawtooth\"}}", "data.generator"},
    {"{\"epochs\": 3}", "data: missing"},
    {"[1, 2]", "job: must be a JSON object"},
    {"{\"data\": ", "job: not valid JSON"},
    {"{\"data\": {\"series\": [1, 2, \"x\", 4], \"window\": 2}}", "data.series[2]"},
    {"{\"data\": {\"series\": [1, 2, 3]}}", "data.window: missing"},
    {"{\"data\": {\"series\": [1, 2, 3], \"window\": 3}}", "data.series: needs more than window"},
    {"{\"data\": {\"sequences\": [[1, 2], [3]], \"targets\": [1]}}", "data.targets: must be an array with one target per sequence"},
    {"{\"data\": {\"sequences\": [[1, 2], []], \"targets\": [1, 2]}}", "data.sequences[1]: empty"},
    {"{\"data\": {\"sequences\": [[1, 2], [[3, 4]]], \"targets\": [1, 2]}}", "data.sequences[1][0]: 2 features"},
    {"{\"data\": {\"sequences\": [[1, 2], [3, null]], \"targets\": [1, 2]}}", "data.sequences[1][1]"},
    {"{\"data\": {\"sequences\": [[1, 2]], \"targets\": [1], \"extra\": 1}}", "data.extra: unknown key"},
    {"{\"mode\": \"many_to_many\", \"data\": {\"sequences\": [[1, 2]], \"targets\": [[1]]}}", "data.targets[0]: needs one target per step"},
    {"{\"task\": \"classify\", \"data\": {\"sequences\": [[1], [2]], \"targets\": [0, -1]}}", "data.targets[1]"},
    {"{\"task\": \"charlm\", \"data\": {\"text\": \"ab\", \"window\": 5}}", "data.text: needs more than window"},
    {"{\"task\": \"charlm\", \"data\": {\"file\": \"x.txt\", \"window\": 5}}", "data.file: files are not allowed"},
    {"{\"task\": \"charlm\", \"mode\": \"many_to_one\", \"data\": {\"text\": \"abc\", \"window\": 1}}", "mode: a charlm job"},
};

START_TEST(test_job_errors_name_the_key)
{
    rnn_job job;
    rnn_dataset d;
    rnn_err err;
    memset(&err, 0, sizeof err);
    int rc = parse_build(bad[_i].json, &job, &d, &err);
    if (rc == 0) {
        rnn_dataset_free(&d);
        rnn_job_free(&job);
    }
    ck_assert_msg(rc == -1, "accepted bad job: %s", bad[_i].json);
    ck_assert_msg(strstr(err.msg, bad[_i].names), "job %s\n  error \"%s\"\n  should contain \"%s\"",
                  bad[_i].json, err.msg, bad[_i].names);
}
END_TEST

START_TEST(test_job_file_inside_data_dir)
{
    char dir[] = "/tmp/rnnd-test-XXXXXX";
    ck_assert(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/wave.csv", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "value,note\n");
    for (int i = 0; i < 30; i++) fprintf(f, "%g,extra\n", sin(i * 0.3));
    fclose(f);
    rnn_job job;
    rnn_dataset d;
    rnn_err err;
    /* every column is read unless the job names them: the text column is an error */
    const char *all = "{\"data\": {\"file\": \"wave.csv\", \"window\": 5}}";
    ck_assert(rnn_job_parse(&job, all, strlen(all), &err) == 0);
    ck_assert(rnn_job_dataset(&job, NULL, dir, &d, &err) == -1);
    ck_assert_msg(strstr(err.msg, "line 2, column 1 (\"note\"): \"extra\" is not a number"), "%s", err.msg);
    rnn_job_free(&job);
    const char *j = "{\"data\": {\"file\": \"wave.csv\", \"window\": 5, \"columns\": [\"value\"]}}";
    ck_assert(rnn_job_parse(&job, j, strlen(j), &err) == 0);
    ck_assert_msg(rnn_job_dataset(&job, NULL, dir, &d, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(d.n, 25);
    ck_assert(fabsf(d.y[0] - (float)sin(5 * 0.3)) < 1e-6f);
    rnn_dataset_free(&d);
    rnn_job_free(&job);
    const char *esc = "{\"data\": {\"file\": \"../etc/passwd\", \"window\": 5}}";
    ck_assert(rnn_job_parse(&job, esc, strlen(esc), &err) == 0);
    ck_assert(rnn_job_dataset(&job, NULL, dir, &d, &err) == -1);
    ck_assert_msg(strstr(err.msg, "inside data_dir"), "%s", err.msg);
    rnn_job_free(&job);
    unlink(path);
    rmdir(dir);
}
END_TEST

/* rnn_job_data_bytes, from the spec alone, against what rnn_job_dataset
 * then builds: within a few percent for series, text and the generator;
 * an upper bound for a CSV file (one value per two bytes). */
START_TEST(test_job_data_bytes_estimate)
{
    char dir[] = "/tmp/rnnd-test-XXXXXX";
    ck_assert(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/s.csv", dir);
    FILE *f = fopen(path, "w");
    for (int i = 0; i < 3000; i++) fprintf(f, "%.6f\n", sin(i * 0.1));
    fclose(f);
    static const struct { const char *job; double lo, hi; } cases[] = {
        {"{\"data\": {\"generator\": \"sine\", \"samples\": 3000, \"window\": 40}}", 0.97, 1.03},
        {"{\"data\": {\"generator\": \"sine\"}}", 0.97, 1.03},
        {"{\"mode\": \"many_to_many\", \"data\": {\"generator\": \"sine\", \"samples\": 500, \"window\": 30}}", 0.97, 1.03},
        {"{\"data\": {\"series\": [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16], \"window\": 4}}", 0.97, 1.03},
        {"{\"task\": \"charlm\", \"data\": {\"text\": \"the quick brown fox jumps over the lazy dog, twice: "
         "the quick brown fox jumps over the lazy dog\", \"window\": 8}}", 0.9, 1.3},
        {"{\"data\": {\"file\": \"s.csv\", \"window\": 20}}", 1.0, 6.0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rnn_job job;
        rnn_dataset d;
        rnn_err err;
        ck_assert_msg(rnn_job_parse(&job, cases[i].job, strlen(cases[i].job), &err) == 0, "%s", err.msg);
        const double est = rnn_job_data_bytes(&job, dir);
        ck_assert_msg(rnn_job_dataset(&job, NULL, dir, &d, &err) == 0, "%s", err.msg);
        size_t steps = 0;
        for (int k = 0; k < d.n; k++) steps += (size_t)d.len[k];
        const double got = rnn_dataset_bytes(d.n, (double)steps, d.X, d.O, d.task, d.mode);
        printf("  data bytes: estimate %.0f, built %.0f (%s)\n", est, got, cases[i].job);
        ck_assert_msg(est >= cases[i].lo * got && est <= cases[i].hi * got, "%s: estimate %.0f, built %.0f",
                      cases[i].job, est, got);
        rnn_dataset_free(&d);
        rnn_job_free(&job);
    }
    unlink(path);
    rmdir(dir);
}
END_TEST

Suite *dataset_suite(void)
{
    Suite *s = suite_create("dataset");
    TCase *tc = tcase_create("data");
    tcase_add_test(tc, test_series_windows);
    tcase_add_test(tc, test_text_vocab_utf8);
    tcase_add_test(tc, test_job_sequences_features_and_labels);
    tcase_add_loop_test(tc, test_job_errors_name_the_key, 0, (int)(sizeof bad / sizeof bad[0]));
    tcase_add_test(tc, test_job_file_inside_data_dir);
    tcase_add_test(tc, test_job_data_bytes_estimate);
    suite_add_tcase(s, tc);
    return s;
}
