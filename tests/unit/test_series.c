/* Multivariate series: a 3-column CSV in raw units (values around 1000)
 * trains on z-scores and predicts the next value within a few percent, in
 * its own units, also after a save and load; rows inline, forecasts of
 * every column; the last windows are the validation set; bad tables get
 * errors that name the line and the column. */
#include "suites.h"
#include "jobs.h"
#include "rnn/io.h"
#include "rnn/job.h"
#include "rnn/rnn.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static double temp_at(int t) { return 1000 + 100 * sin(t / 8.0); }
static double load_at(int t) { return 1000 + 80 * cos(t / 8.0) + 20 * sin(t / 3.0); }

/* data_dir/plant.csv: time, temp, load; 600 rows */
static void write_plant(const char *dir)
{
    char path[256];
    snprintf(path, sizeof path, "%s/plant.csv", dir);
    FILE *f = fopen(path, "w");
    ck_assert(f);
    fprintf(f, "# a plant's sensors\ntime, temp, load\n");
    for (int t = 0; t < 600; t++)
        fprintf(f, "%d,%.3f,%.3f\n", t, temp_at(t), load_at(t));
    fclose(f);
}

/* The reply to a request, parsed. */
static cJSON *ask(const rnn_model *m, const rnn_meta *meta, const char *req)
{
    rnn_predictor *p = rnn_predictor_new();
    cJSON *rq = cJSON_Parse(req);
    char *reply = NULL;
    size_t len;
    int status;
    rnn_err err;
    const int rc = rnn_predict_json(p, m, meta, "plant", 1, rq, NULL, &reply, &len, &status, &err);
    ck_assert_msg(rc == 0, "%d %s", status, err.msg);
    cJSON *o = cJSON_Parse(reply);
    free(reply);
    cJSON_Delete(rq);
    rnn_predictor_free(p);
    return o;
}

/* {"sequence": [[temp, load], ...]} of the 20 rows before t */
static void window_request(char *buf, size_t n, int t)
{
    size_t k = (size_t)snprintf(buf, n, "{\"sequence\": [");
    for (int s = t - 20; s < t; s++)
        k += (size_t)snprintf(buf + k, n - k, "%s[%.3f, %.3f]", s > t - 20 ? ", " : "", temp_at(s), load_at(s));
    snprintf(buf + k, n - k, "]}");
}

START_TEST(test_csv_in_raw_units)
{
    char dir[] = "/tmp/rnnd-series-XXXXXX";
    ck_assert(mkdtemp(dir));
    write_plant(dir);
    const char *job = "{\"cell\": \"gru\", \"hidden\": 32, \"data\": {\"file\": \"plant.csv\", \"window\": 20,"
                      " \"columns\": [\"temp\", \"load\"], \"target\": \"temp\", \"normalize\": \"zscore\"},"
                      " \"epochs\": 30, \"batch\": 16, \"validation\": 0.1, \"optimizer\": {\"name\": \"adam\", \"lr\": 0.01}}";
    rnn_model m;
    rnn_meta meta;
    rnn_train_result r;
    rnn_err err;
    ck_assert_msg(train_json(job, dir, &m, &meta, &r, NULL, NULL, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(m.cfg.input_size, 2);
    ck_assert_int_eq(m.cfg.output_size, 1);
    ck_assert_int_eq(meta.series.ncolumns, 2);
    ck_assert_str_eq(meta.series.columns[1], "load");
    ck_assert(meta.series.mean && fabs(meta.series.mean[0] - 1000) < 20 && meta.series.std[0] > 50);
    /* the next temperature after the end of the file, and inside it */
    char req[4096];
    double worst = 0;
    for (int t = 300; t <= 600; t += 100) {
        window_request(req, sizeof req, t);
        cJSON *o = ask(&m, &meta, req);
        const double got = cJSON_GetObjectItem(o, "prediction")->valuedouble, want = temp_at(t);
        worst = fmax(worst, fabs(got - want) / want);
        cJSON_Delete(o);
    }
    printf("  3-column CSV around 1000: validation MSE %.3g (z-scores), worst relative error %.2g%%\n",
           r.final_val_loss, 100 * worst);
    ck_assert_msg(worst < 0.03, "predictions %.1f%% off", 100 * worst);
    /* a save and a load keep the columns and the statistics */
    char path[256];
    snprintf(path, sizeof path, "%s/plant.safetensors", dir);
    ck_assert_msg(rnn_model_save(path, &m, &meta, &err) == 0, "%s", err.msg);
    rnn_model m2;
    rnn_meta meta2;
    ck_assert_msg(rnn_model_load(path, &m2, &meta2, &err) == 0, "%s", err.msg);
    ck_assert(meta2.series.mean && meta2.series.mean[1] == meta.series.mean[1] &&
              meta2.series.std[0] == meta.series.std[0] && meta2.series.target[0] == 0);
    window_request(req, sizeof req, 600);
    cJSON *a = ask(&m, &meta, req), *b = ask(&m2, &meta2, req);
    ck_assert(cJSON_GetObjectItem(a, "prediction")->valuedouble == cJSON_GetObjectItem(b, "prediction")->valuedouble);
    cJSON_Delete(a);
    cJSON_Delete(b);
    /* a forecast needs every column predicted */
    cJSON *rq = cJSON_Parse("{\"sequence\": [[1000, 1000]], \"steps\": 3}");
    rnn_predictor *p = rnn_predictor_new();
    char *reply = NULL;
    size_t len;
    int status;
    ck_assert(rnn_predict_json(p, &m2, &meta2, "plant", 1, rq, NULL, &reply, &len, &status, &err) == -1);
    ck_assert_msg(status == 422 && strstr(err.msg, "steps:"), "%d %s", status, err.msg);
    free(reply);
    rnn_predictor_free(p);
    cJSON_Delete(rq);
    rnn_train_result_free(&r);
    rnn_model_free(&m); rnn_meta_free(&meta);
    rnn_model_free(&m2); rnn_meta_free(&meta2);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert(system(cmd) == 0);
}
END_TEST

/* Inline rows, every column predicted: forecasts come back as rows in the
 * data's units. Without normalization the same model is far worse. */
START_TEST(test_rows_forecast)
{
    char job[1 << 16];
    size_t k = (size_t)snprintf(job, sizeof job, "{\"hidden\": 24, \"data\": {\"window\": 12, \"normalize\": \"zscore\", \"series\": [");
    for (int t = 0; t < 300; t++)
        k += (size_t)snprintf(job + k, sizeof job - k, "%s[%.3f, %.3f]", t ? ", " : "", temp_at(t), load_at(t));
    snprintf(job + k, sizeof job - k, "]}, \"epochs\": 40, \"batch\": 16, \"optimizer\": {\"name\": \"adam\", \"lr\": 0.01}}");
    rnn_model m;
    rnn_meta meta;
    rnn_train_result r;
    rnn_err err;
    ck_assert_msg(train_json(job, NULL, &m, &meta, &r, NULL, NULL, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(m.cfg.output_size, 2);
    ck_assert(!meta.series.columns);
    char req[4096];
    k = (size_t)snprintf(req, sizeof req, "{\"steps\": 3, \"sequence\": [");
    for (int s = 288; s < 300; s++)
        k += (size_t)snprintf(req + k, sizeof req - k, "%s[%.3f, %.3f]", s > 288 ? ", " : "", temp_at(s), load_at(s));
    snprintf(req + k, sizeof req - k, "]}");
    cJSON *o = ask(&m, &meta, req);
    const cJSON *fc = cJSON_GetObjectItem(o, "forecast");
    ck_assert_int_eq(cJSON_GetArraySize(fc), 3);
    double worst = 0;
    for (int s = 0; s < 3; s++) {
        const cJSON *row = cJSON_GetArrayItem(fc, s);
        ck_assert_int_eq(cJSON_GetArraySize(row), 2);
        worst = fmax(worst, fabs(cJSON_GetArrayItem(row, 0)->valuedouble - temp_at(300 + s)) / 1000);
        worst = fmax(worst, fabs(cJSON_GetArrayItem(row, 1)->valuedouble - load_at(300 + s)) / 1000);
    }
    printf("  2 columns inline, 3-step forecast of both: worst relative error %.2g%%\n", 100 * worst);
    ck_assert_msg(worst < 0.03, "forecast %.1f%% off", 100 * worst);
    cJSON_Delete(o);
    rnn_train_result_free(&r);
    rnn_model_free(&m);
    rnn_meta_free(&meta);
}
END_TEST

/* The validation loss of a series is the loss of its last windows. */
START_TEST(test_validation_takes_the_last_windows)
{
    static const char *const splits[] = {"", ", \"validation_split\": \"random\""};
    for (int s = 0; s < 2; s++) {
        char job[512];
        snprintf(job, sizeof job, "{\"hidden\": 8, \"data\": {\"generator\": \"sine\", \"samples\": 100, \"window\": 10},"
                                  " \"epochs\": 2, \"batch\": 10, \"validation\": 0.2%s}", splits[s]);
        rnn_model m;
        rnn_meta meta;
        rnn_train_result r;
        rnn_err err;
        ck_assert_msg(train_json(job, NULL, &m, &meta, &r, NULL, NULL, &err) == 0, "%s", err.msg);
        rnn_dataset d;
        ck_assert(rnn_dataset_sine(&d, 100, 10, RNN_MODE_MANY_TO_ONE, &err) == 0);
        int last[20];
        for (int i = 0; i < 20; i++) last[i] = 80 + i;
        const double v = rnn_evaluate(&m, &d, last, 20, 10);
        printf("  validation_split %s: reported %.9g, last 20 windows %.9g\n", s ? "random" : "(series: last)",
               r.final_val_loss, v);
        if (s == 0)
            ck_assert_msg(v == r.final_val_loss, "%.17g vs %.17g", v, r.final_val_loss);
        else
            ck_assert(v != r.final_val_loss);
        rnn_dataset_free(&d);
        rnn_train_result_free(&r);
        rnn_model_free(&m);
        rnn_meta_free(&meta);
    }
}
END_TEST

START_TEST(test_table_errors)
{
    char dir[] = "/tmp/rnnd-series-XXXXXX";
    ck_assert(mkdtemp(dir));
    write_plant(dir);
    char path[256];
    snprintf(path, sizeof path, "%s/bad.csv", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "a,b\n1,2\n3,4\n5,n/a\n7,8\n");
    fclose(f);
    snprintf(path, sizeof path, "%s/short.csv", dir);
    f = fopen(path, "w");
    fprintf(f, "a,b\n1,2\n3,4\n5,6\n7,8\n9\n");
    fclose(f);
    static const struct { const char *data, *want; } bad[] = {
        {"\"file\": \"bad.csv\", \"window\": 1", "line 4, column 1 (\"b\"): \"n/a\" is not a number"},
        {"\"file\": \"short.csv\", \"window\": 1, \"columns\": [\"a\"]", "line 6 has 1 columns, the header has 2"},
        {"\"file\": \"plant.csv\", \"window\": 5, \"columns\": [\"temp\", \"pressure\"]", "\"pressure\" is not a column of the data (it has time, temp, load)"},
        {"\"file\": \"plant.csv\", \"window\": 5, \"columns\": [\"temp\"], \"target\": \"load\"", "column 2 (\"load\") is not among the columns read"},
        {"\"file\": \"plant.csv\", \"window\": 5, \"columns\": [\"temp\", \"temp\"]", "data.columns: names column 1 twice"},
        {"\"file\": \"plant.csv\", \"window\": 5, \"columns\": []", "data.columns: names no column"},
        {"\"file\": \"plant.csv\", \"window\": 5, \"normalize\": \"minmax\"", "data.normalize: must be \"zscore\" or \"none\""},
        {"\"series\": [[1, 2], [3], [5, 6]], \"window\": 1", "data.series[1]: must be a row of as many numbers"},
        {"\"series\": [[1, 2], [3, \"x\"], [5, 6]], \"window\": 1", "data.series[1][1]: must be a finite number"},
        {"\"series\": [[1, 2], [3, 4], [5, 6]], \"window\": 1, \"target\": 2", "data.target: must name columns of the data"},
        {"\"series\": [[1, 2], [3, 4], [5, 6]], \"window\": 1, \"target\": \"b\"", "the data has no header row"},
        {"\"series\": [[1, 2], [3, 4]], \"window\": 2", "needs more than window (2) rows, got 2"},
        {"\"series\": [], \"window\": 2", "data.series: must be a non-empty array"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char json[512];
        snprintf(json, sizeof json, "{\"data\": {%s}}", bad[i].data);
        expect_refused(json, dir, 0, bad[i].want);
    }
    /* data left in large raw units gets a warning; z-scores do not */
    for (int z = 0; z < 2; z++) {
        char json[256];
        snprintf(json, sizeof json, "{\"data\": {\"file\": \"plant.csv\", \"window\": 5, \"columns\": [\"temp\"]%s}}",
                 z ? ", \"normalize\": \"zscore\"" : "");
        rnn_job job;
        rnn_dataset d;
        rnn_err err;
        ck_assert(rnn_job_parse(&job, json, strlen(json), &err) == 0);
        ck_assert_msg(rnn_job_dataset(&job, NULL, dir, &d, &err) == 0, "%s", err.msg);
        if (z)
            ck_assert_msg(!d.warning[0], "%s", d.warning);
        else
            ck_assert_msg(strstr(d.warning, "column 1 (\"temp\") has mean 1000") && strstr(d.warning, "zscore"),
                          "\"%s\"", d.warning);
        rnn_dataset_free(&d);
        rnn_job_free(&job);
    }
    /* a fine-tune keeps the base's normalization */
    const char *job = "{\"hidden\": 4, \"epochs\": 1, \"data\": {\"file\": \"plant.csv\", \"window\": 5, \"columns\": [\"temp\"], \"normalize\": \"zscore\"}}";
    rnn_model m;
    rnn_meta meta;
    rnn_train_result r;
    rnn_err err;
    ck_assert_msg(train_json(job, dir, &m, &meta, &r, NULL, NULL, &err) == 0, "%s", err.msg);
    const char *tune = "{\"data\": {\"file\": \"plant.csv\", \"window\": 5, \"columns\": [\"temp\"], \"normalize\": \"none\"}}";
    rnn_job tj;
    rnn_dataset d;
    ck_assert(rnn_job_parse(&tj, tune, strlen(tune), &err) == 0);
    tj.base_series = &meta.series;
    ck_assert(rnn_job_dataset(&tj, NULL, dir, &d, &err) == -1);
    ck_assert_msg(strstr(err.msg, "trained on z-scores"), "%s", err.msg);
    rnn_job_free(&tj);
    const char *same = "{\"data\": {\"file\": \"plant.csv\", \"window\": 5, \"columns\": [\"temp\"]}}";
    ck_assert(rnn_job_parse(&tj, same, strlen(same), &err) == 0);
    tj.base_series = &meta.series;
    ck_assert_msg(rnn_job_dataset(&tj, NULL, dir, &d, &err) == 0, "%s", err.msg);
    ck_assert(d.series.mean && d.series.mean[0] == meta.series.mean[0]);
    /* the windows are the base's z-scores */
    ck_assert(fabs(d.x[0] - (temp_at(0) - meta.series.mean[0]) / meta.series.std[0]) < 1e-4);
    rnn_dataset_free(&d);
    rnn_job_free(&tj);
    rnn_train_result_free(&r);
    rnn_model_free(&m);
    rnn_meta_free(&meta);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert(system(cmd) == 0);
}
END_TEST

Suite *series_suite(void)
{
    Suite *s = suite_create("series");
    TCase *tc = tcase_create("series");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_csv_in_raw_units);
    tcase_add_test(tc, test_rows_forecast);
    tcase_add_test(tc, test_validation_takes_the_last_windows);
    tcase_add_test(tc, test_table_errors);
    suite_add_tcase(s, tc);
    return s;
}
