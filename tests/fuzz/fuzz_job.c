/*
 * Fuzz target: a job spec (the body of POST /train, the file of rnnd train)
 * through rnn_job_parse, the data estimate, and, when the estimate is small
 * (as the daemon's max_job_bytes would allow), rnn_job_dataset. Files are
 * not allowed (no data_dir), as for a job over HTTP without one.
 */
#include "fuzz.h"
#include "rnn/job.h"
#include "rnn/rnn.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rnn_job job;
    rnn_err err;
    if (rnn_job_parse(&job, (const char *)data, size, &err) == 0) {
        const double bytes = rnn_job_data_bytes(&job, NULL);
        rnn_dataset d;
        if (bytes >= 0 && bytes < (64 << 20) && rnn_job_dataset(&job, NULL, NULL, &d, &err) == 0)
            rnn_dataset_free(&d);
    }
    rnn_job_free(&job);
    return 0;
}
