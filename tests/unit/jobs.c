/* train_json (jobs.h): a job spec from JSON through parse, data, init and train. */
#include "jobs.h"

#include <check.h>
#include <string.h>

void expect_refused(const char *json, const char *data_dir, int at_parse, const char *want)
{
    rnn_job job;
    rnn_dataset d;
    rnn_err err;
    const int parsed = rnn_job_parse(&job, json, strlen(json), &err) == 0;
    ck_assert_msg(parsed != at_parse, "%s: %s", json, parsed ? "parsed" : err.msg);
    if (parsed) {
        ck_assert_msg(rnn_job_dataset(&job, NULL, data_dir, &d, &err) == -1, "accepted %s", json);
        rnn_job_free(&job);
    }
    ck_assert_msg(strstr(err.msg, want), "%s: got \"%s\"", json, err.msg);
}

int train_json(const char *json, const char *data_dir, rnn_model *m, rnn_meta *meta,
               rnn_train_result *res, rnn_progress_fn progress, void *ud, rnn_err *err)
{
    rnn_job job;
    rnn_dataset d;
    if (meta)
        rnn_meta_init(meta);
    if (rnn_job_parse(&job, json, strlen(json), err))
        return -1;
    if (rnn_job_dataset(&job, NULL, data_dir, &d, err)) {
        rnn_job_free(&job);
        return -1;
    }
    int rc = rnn_model_init(m, &job.cfg, err);
    if (rc == 0) {
        rnn_rng rng;
        rnn_rng_seed(&rng, job.seed);
        rnn_model_randomize(m, &rng, job.rinit);
        job.train.progress = progress;
        job.train.progress_ud = ud;
        rc = rnn_train(m, &d, &job.train, res, err);
        if (meta)
            ck_assert(rnn_meta_take_data(meta, &d) == 0);
    }
    rnn_dataset_free(&d);
    rnn_job_free(&job);
    return rc;
}
