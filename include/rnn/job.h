/*
 * The job spec: one JSON shape for `rnnd train` and `POST /train` (see
 * DESIGN.md, "Job spec"). Parsing checks every key, type and range and
 * names the offending key in its error; building the dataset happens in a
 * second step because a fine-tuned charlm must use its base model's
 * vocabulary.
 */
#ifndef RNN_JOB_H
#define RNN_JOB_H

#include "rnn/rnn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rnn_job {
    char model[65];             /* "model": name, [A-Za-z0-9_.-], or "" */
    rnn_config cfg;             /* task, mode, cell, activation, hidden, layers, embedding,
                                   bidirectional;
                                   input/output sizes are filled by rnn_job_dataset */
    int has[8];                 /* which architecture keys the spec gave (RNN_JOB_HAS_*) */
    uint64_t seed;              /* init.seed */
    rnn_recurrent_init rinit;   /* init.recurrent */
    rnn_train_cfg train;        /* epochs, batch, shuffle, validation, optimizer, clip, bptt */
    int from_scratch;
    char *labels_json;          /* classify labels as a JSON array, or NULL */
    void *data;                 /* the "data" object (cJSON), owned */
    const rnn_series *base_series; /* fine-tuning a series model: its columns and
                                    * statistics, set before rnn_job_dataset (not owned) */
    const rnn_words *base_words;   /* fine-tuning a word model: its vocabulary (not owned) */
    int words;                  /* "tokens": "words" (else characters) */
    int lowercase;              /* words: ASCII letters lowercased */
    int min_count, max_vocab;   /* words: the vocabulary's bounds */
} rnn_job;

enum { RNN_JOB_HAS_TASK, RNN_JOB_HAS_MODE, RNN_JOB_HAS_CELL, RNN_JOB_HAS_ACT,
       RNN_JOB_HAS_HIDDEN, RNN_JOB_HAS_LAYERS, RNN_JOB_HAS_EMBEDDING, RNN_JOB_HAS_BIDIR };

/* Parses and checks a job spec. On failure returns -1 and err names the key,
 * e.g. "optimizer.lr: must be a number > 0". Free with rnn_job_free. */
int rnn_job_parse(rnn_job *job, const char *json, size_t len, rnn_err *err);
void rnn_job_free(rnn_job *job);

/* Builds the training data of the job. `vocab` (a charlm or token model's
 * vocabulary, or NULL to derive it from the data) and `data_dir` (where
 * {"file": name} is looked up; NULL forbids files). Fills the input and
 * output sizes of job->cfg. */
int rnn_job_dataset(rnn_job *job, const char *vocab, const char *data_dir, rnn_dataset *d,
                    rnn_err *err);
/* What rnn_job_dataset would allocate (bytes), estimated from the spec
 * without building anything, so a daemon can refuse a job before it
 * costs memory; 0 for data carried inline in "sequences". */
double rnn_job_data_bytes(const rnn_job *job, const char *data_dir);

/* Does the architecture the job asks for (the keys it gives: task, mode,
 * cell, activation, hidden, layers, embedding, bidirectional) match base, the model it
 * would fine-tune? -1 naming the first difference. */
int rnn_job_fits(const rnn_job *job, const rnn_config *base, rnn_err *err);

/* A name usable as a model name and file name: 1-64 of [A-Za-z0-9_.-],
 * not starting with '.'. */
int rnn_name_ok(const char *name);

#ifdef __cplusplus
}
#endif
#endif
