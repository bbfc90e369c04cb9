/*
 * Fuzz target: a model file's bytes through the safetensors loader
 * (rnn_model_load_mem). Whatever the bytes, it loads finite, bounded weights
 * or fails with a message; a loaded model then answers a prediction.
 */
#include "fuzz.h"
#include "rnn/io.h"
#include "rnn/rnn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rnn_model m;
    rnn_meta meta;
    rnn_err err;
    if (rnn_model_load_mem(data, size, &m, &meta, &err))
        return 0;
    for (size_t i = 0; i < m.nparams; i++)
        if (!isfinite(m.params[i]) || fabsf(m.params[i]) > RNN_MAX_WEIGHT)
            abort();
    /* a small request of the model's kind: it must not crash, whatever it says */
    const char *req = m.cfg.task == RNN_TASK_CHARLM ? "{\"text\": \"a\", \"length\": 3}"
                                                     : "{\"sequence\": [0.5, -0.5]}";
    rnn_limits lim;
    rnn_limits_default(&lim);
    lim.max_work = 1e7;
    char *reply = NULL;
    int status = 0;
    rnn_predict(&m, &meta, "fuzz", 1, req, strlen(req), &lim, &reply, &status, &err);
    if (status == 200 && (!reply || strstr(reply, "null")))
        abort(); /* a 200 always has finite numbers */
    free(reply);
    rnn_model_free(&m);
    rnn_meta_free(&meta);
    return 0;
}
