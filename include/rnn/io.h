/*
 * Model files: safetensors (https://github.com/huggingface/safetensors) with
 * PyTorch state_dict names, F32 only, and the architecture, vocabulary,
 * labels and provenance in "__metadata__" (DESIGN.md, "Model file").
 *
 * Loading treats the file as hostile: every length, offset, shape and value
 * is checked before a model is built, and any failure is an error message.
 * Saving is atomic: a temp file in the same folder, fsync, rename, fsync of
 * the folder; a failed save leaves the earlier file as it was.
 */
#ifndef RNN_IO_H
#define RNN_IO_H

#include "rnn/rnn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest header accepted, and largest file. */
#define RNN_MAX_HEADER (16u << 20)

/* Everything a model file says besides the weights. */
typedef struct rnn_meta {
    char *vocab;            /* UTF-8 characters of a token model, or NULL */
    int nlabels;
    char **labels;          /* classify label names, or NULL */
    char created[40];       /* ISO 8601 UTC, "" if unknown */
    int epochs;             /* epochs trained in all */
    double final_loss;      /* NaN if unknown */
    double final_val_loss;  /* NaN if unknown */
    long version;           /* the daemon's version number of these weights ("rnnd.version"), 0 if none */
    long job;               /* the daemon's job that trained them ("rnnd.job"), 0 if none */
    int nhistory;
    double *loss;           /* (nhistory) per-epoch train loss */
    double *val_loss;       /* (nhistory) per-epoch validation loss, NaN where none */
    rnn_words words;        /* a word model's vocabulary (in "rnnd.config", "vocab"
                             * as an array, "tokens": "words"); n 0 otherwise */
    rnn_series series;      /* a series model's columns and z-score statistics
                             * ("rnnd.series"); ncolumns 0 when none */
} rnn_meta;

void rnn_meta_init(rnn_meta *meta);
void rnn_meta_free(rnn_meta *meta);
/* Deep copy into an uninitialised dst; 0 or -1 (out of memory). */
int rnn_meta_copy(rnn_meta *dst, const rnn_meta *src);
/* What a model trained on d must carry that meta lacks: the vocabulary,
 * the labels and the series' columns and statistics (taken from d, which
 * keeps its data); 0 or -1 (out of memory). */
int rnn_meta_take_data(rnn_meta *meta, rnn_dataset *d);
/* Appends epochs to the history (fine-tuning keeps the earlier ones). The
 * history keeps at most max_points points: when full, every other point is
 * dropped, so the whole run stays visible at a coarser step. */
int rnn_meta_append(rnn_meta *meta, const double *loss, const double *val_loss, int n,
                    int max_points);

/* The "rnnd.config" JSON of m and meta (caller frees). */
char *rnn_config_json(const rnn_config *cfg, const rnn_meta *meta);

int rnn_model_save(const char *path, const rnn_model *m, const rnn_meta *meta, rnn_err *err);
/* The same, but only if path does not exist yet: 1 if it does (nothing
 * written), as when two processes claim one name at once. */
int rnn_model_save_new(const char *path, const rnn_model *m, const rnn_meta *meta, rnn_err *err);
/* Replaces path with the concatenated parts, crash-safe: a temp file beside
 * it, fsync, rename, fsync of the folder. 0, or -1 naming the failure. */
typedef struct rnn_span { const void *p; size_t n; } rnn_span;
int rnn_file_replace(const char *path, const rnn_span *parts, int nparts, rnn_err *err);
/* The same, made whole at path only if no file is there (link, not rename):
 * 0 created, 1 path exists (nothing changed), -1 a failure named in err. */
int rnn_file_create(const char *path, const rnn_span *parts, int nparts, rnn_err *err);
/* rnn_file_replace that also gives the new file's mtime (ns) and inode, as
 * stat(path) gives them until the next replace: id = {mtime_ns, ino}. */
int rnn_file_replace_id(const char *path, const rnn_span *parts, int nparts, unsigned long long id[2],
                        rnn_err *err);
/* A whole regular file of at most max bytes, NUL-terminated (caller frees),
 * or NULL with err naming the failure. */
unsigned char *rnn_file_read(const char *path, size_t max, size_t *len, rnn_err *err);
/* Removes the temp files (NAME.tmp.XXXXXX) that saves into dir left when
 * they died (each save holds a lock on its temp file until it renames it);
 * returns how many. */
int rnn_remove_stale_temps(const char *dir);
/* On failure m and meta are left empty (nothing to free). */
int rnn_model_load(const char *path, rnn_model *m, rnn_meta *meta, rnn_err *err);
int rnn_model_load_mem(const unsigned char *buf, size_t len, rnn_model *m, rnn_meta *meta,
                       rnn_err *err);

/* ------------------------------------------------------------------ predict */

/* Bounds on one prediction request, checked before any work. */
typedef struct rnn_limits {
    int max_sequence_length;    /* steps per sequence */
    int max_batch;              /* sequences per request */
    int max_steps;              /* forecast steps, generated characters */
    double max_work;            /* steps x sequences x parameters; 0: no bound */
} rnn_limits;

void rnn_limits_default(rnn_limits *l);   /* 10000, 256, 10000, no bound on work */

/* The request and reply of `POST /predict` and `rnnd predict` (DESIGN.md,
 * "HTTP API"): JSON in, JSON out. name and version go into the reply (name
 * may be NULL). On success returns 0 and *reply is a malloc'd JSON string;
 * on failure returns -1 with *status the HTTP status that fits (400 bad
 * JSON or types, 413 over a limit, 422 values the model cannot take) and
 * err naming what was wrong. */
int rnn_predict(const rnn_model *m, const rnn_meta *meta, const char *name, long version,
                const char *req, size_t len, const rnn_limits *lim, char **reply, int *status,
                rnn_err *err);

struct cJSON;
/* o as a reply: compact JSON and a newline, so that curl's output ends its
 * line (malloc'd; *len without the NUL). NULL when out of memory. */
char *rnn_json_line(const struct cJSON *o, size_t *len);

/* The byte offset in JSON text of the first \u0000 escape, or -1. cJSON
 * decodes it into a NUL that would silently cut a C string ("ok\u0000/x"
 * read as "ok"), so every parser of requests, jobs and model headers refuses
 * text that has one. */
long rnn_json_nul_at(const char *text, size_t len);

/* What the daemon's hot path keeps per thread: the states (and transposed
 * weights) of the last few models it served and the rows of a batch, so a
 * prediction allocates no engine buffers once warm. Not shared between
 * threads. Models are told apart by rnn_model.serial. */
typedef struct rnn_predictor rnn_predictor;
rnn_predictor *rnn_predictor_new(void);
void rnn_predictor_free(rnn_predictor *p);
/* Of p's last prediction: the sequences it answered, and the passes through
 * the model that took (1 when they were batched). */
void rnn_predictor_last(const rnn_predictor *p, int *rows, int *passes);
/* rnn_predict on a request already parsed (a cJSON object), with p's
 * buffers; *reply_len is the reply's length. Equal-length "sequences" run
 * as one batched pass. */
struct cJSON;
int rnn_predict_json(rnn_predictor *p, const rnn_model *m, const rnn_meta *meta, const char *name,
                     long version, const struct cJSON *req, const rnn_limits *lim, char **reply,
                     size_t *reply_len, int *status, rnn_err *err);

/* Dynamic batching: a "sequence" request (not "sequences", not text
 * generation) that rnn_predict_many may run with others. */
int rnn_predict_batchable(const rnn_model *m, const struct cJSON *req);
typedef struct rnn_reply {
    char *text;             /* 200: the reply (malloc'd), else NULL */
    size_t len;
    int status;
    char msg[RNN_ERR_LEN];  /* else what was wrong */
} rnn_reply;
/* n requests for one model at once: each is checked alone (a bad one gets
 * its own error), and those that ask for the same pass (as many steps, the
 * same "steps" and "return_sequences") run as the rows of one batched pass.
 * Each reply equals rnn_predict_json's for that request to 1e-6. */
void rnn_predict_many(rnn_predictor *p, const rnn_model *m, const rnn_meta *meta, const char *name,
                      long version, const struct cJSON *const *reqs, int n, const rnn_limits *lim,
                      rnn_reply *out);

/* A streaming session's model state (DESIGN.md, "Streaming sessions"): the
 * hidden state after `position` steps and the output of the last one. One
 * request at a time. */
typedef struct rnn_stream rnn_stream;
rnn_stream *rnn_stream_new(const rnn_model *m);
void rnn_stream_free(rnn_stream *s);
long rnn_stream_position(const rnn_stream *s);
/* One request of a session into reply (a cJSON object): "sequence", the new
 * steps, moves the stream on, and reply gets /predict's fields for the
 * state after them; "steps": N forecasts N ahead from there without moving
 * it (alone: from the current state). Every step is checked before the
 * first one runs, so a refused request leaves the stream as it was. m must
 * be the model the stream was made for. */
int rnn_stream_json(rnn_predictor *p, rnn_stream *s, const rnn_model *m, const rnn_meta *meta,
                    const struct cJSON *req, const rnn_limits *lim, struct cJSON *reply,
                    int *status, rnn_err *err);
/* n requests of n different streams of model m at once: each is checked
 * alone (a refused one gets status and errs, and its stream is untouched);
 * those that step alike (as many new steps, the same "steps" and
 * "return_sequences") run as the rows of one batched pass, the streams'
 * states gathered into it and scattered back. replies[i] gets request i's
 * fields as rnn_stream_json would write them, to 1e-6. */
void rnn_stream_many(rnn_predictor *p, rnn_stream *const *s, const rnn_model *m,
                     const rnn_meta *meta, const struct cJSON *const *reqs, int n,
                     const rnn_limits *lim, struct cJSON *const *replies, int *status,
                     rnn_err *errs);

#ifdef __cplusplus
}
#endif
#endif
