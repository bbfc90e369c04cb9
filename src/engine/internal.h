/* Engine-private helpers shared by the src/engine files; not installed. */
#ifndef RNN_INTERNAL_H
#define RNN_INTERNAL_H

#include "rnn/rnn.h"

#include <stdarg.h>
#include <stddef.h>

/* Formats into err (if not NULL) and returns -1, so a failure reads
 * `return rnn_fail(err, "hidden: must be > 0");`. */
int rnn_fail(rnn_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* calloc of n floats / bytes with overflow checks; NULL on failure. */
float *rnn_falloc(size_t n);
void *rnn_xcalloc(size_t n, size_t size);

/* Input width of layer l: the layer below's D H outputs, or the model's. */
static inline int rnn_layer_in(const rnn_config *c, int l)
{
    return l > 0 ? rnn_dirs(c) * c->hidden : (c->embedding ? c->embedding : c->input_size);
}



/* Allocates a dataset of n sequences with `steps` steps in all; X > 0 for
 * numeric input, 0 for tokens. */
int rnn_dataset_alloc(rnn_dataset *d, int n, size_t steps, int X, int O, rnn_task task,
                      rnn_mode mode, rnn_err *err);
/* The windows of a job's series (series.c): "data.series" (numbers, or
 * rows of numbers) or csv (the text of "data.file"), the columns it names
 * (data.columns) read, data.target predicted, normalized as data.normalize
 * says or, fine-tuning, with the base model's statistics (base, or NULL).
 * Fills d->series. scope is "data.series" or "data.file". */
struct cJSON;
int rnn_series_dataset(const struct cJSON *dj, const char *scope, const char *csv,
                       const rnn_series *base, int window, rnn_mode mode, rnn_dataset *d,
                       rnn_err *err);

/* Words (words.c): the tokens of s (strdup'ed, *n of them); the
 * vocabulary of n tokens (those seen min_count times, the max_vocab most
 * frequent with "<unk>" and "<eos>", indexed); a lookup (-1: absent);
 * free and copy; and a generated token appended to the text in buf. */
extern const char *const rnn_word_unk, *const rnn_word_eos;
int rnn_words_split(const char *s, int lowercase, char ***out, int *n);
int rnn_words_vocab(char *const *toks, size_t n, int min_count, int max_vocab, int lowercase,
                    rnn_words *w, rnn_err *err);
int rnn_words_index(rnn_words *w);
int rnn_words_find(const rnn_words *w, const char *s);
void rnn_words_free(rnn_words *w);
int rnn_words_copy(rnn_words *dst, const rnn_words *src);
size_t rnn_words_append(char *buf, size_t len, const char *prev, const char *tok);

/* The dataset of a job's text (texts.c): data.texts, or the one text
 * (data.text or a file's), for an lm (windows of T tokens) or a classifier
 * (data.labels), over characters (vocab: the base model's, or NULL) or
 * words (job->words, job->base_words). Fills the job's sizes. */
struct rnn_job;
int rnn_texts_dataset(struct rnn_job *job, const struct cJSON *dj, const char *text, const char *vocab,
                      int T, rnn_dataset *d, rnn_err *err);

/* A series as the "rnnd.series" metadata of a model file (NULL when a
 * plain series of numbers needs none; caller frees), and back, checked
 * against the model's X inputs and O outputs. */
char *rnn_series_json(const rnn_series *s);
int rnn_series_parse(const char *json, int X, int O, rnn_series *s, rnn_err *err);

/* ------------------------------------------------------------------ batches (batch.c) */

/* Time-major buffers for one batch of up to maxT steps x maxB sequences. */
typedef struct batch_buf {
    float *x, *y;
    int32_t *tok, *cls;
} batch_buf;

int batch_buf_init(batch_buf *bb, const rnn_dataset *d, int maxT, int maxB);
void batch_buf_free(batch_buf *bb);
/* Fills b from the sequences idx[0..B), which all have one length. */
void gather(const rnn_dataset *d, const int *idx, int B, batch_buf *bb, rnn_batch *b);
/* Predicted elements in a batch: the weight of its mean loss in an epoch mean. */
double batch_weight(const rnn_dataset *d, int T, int B);

typedef struct keyed { int len, pos, id; } keyed;
/* Orders idx by length, keeping the given order within a length, and cuts it
 * into batches of at most `batch` sequences that never mix lengths: batch k
 * is idx[start[k] .. start[k] + count[k]). Returns the number of batches. */
int make_batches(const rnn_dataset *d, int *idx, int n, int batch, keyed *tmp, int *start,
                 int *count);

/* ------------------------------------------------------------------ threads (team.c) */

/* A team of threads, the caller being the first, that share the forward and
 * backward pass of each batch: every thread takes a contiguous part of the
 * batch's sequences, and the gradients are summed in thread order, so a
 * given thread count always gives the same bits. */
typedef struct rnn_team rnn_team;

rnn_team *rnn_team_new(const rnn_model *m, const rnn_dataset *d, int threads, int maxT,
                       int maxB, rnn_err *err);
void rnn_team_free(rnn_team *t);
/* Forward and backward of the batch of sequences idx[0..B), all of one
 * length, on m as it is now, with dropout p drawn from seed
 * (rnn_ws_dropout). Returns the batch's mean loss (non-finite: the
 * gradient is not computed) and leaves the gradient of that mean in the
 * team's buffer, returned by rnn_team_grads. */
double rnn_team_step(rnn_team *t, const int *idx, int B, int bptt, double dropout, uint64_t seed);
float *rnn_team_grads(rnn_team *t);

#endif
