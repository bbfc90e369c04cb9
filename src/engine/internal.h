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

/* Input width of layer l. */
static inline int rnn_layer_in(const rnn_config *c, int l)
{
    return l > 0 ? c->hidden : (c->embedding ? c->embedding : c->input_size);
}



/* Allocates a dataset of n sequences with `steps` steps in all; X > 0 for
 * numeric input, 0 for tokens. */
int rnn_dataset_alloc(rnn_dataset *d, int n, size_t steps, int X, int O, rnn_task task,
                      rnn_mode mode, rnn_err *err);
#endif
