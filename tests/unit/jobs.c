/* train_json (jobs.h): a job spec from JSON through parse, data, init and train. */
#include "jobs.h"

#include <check.h>
#include <string.h>

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
