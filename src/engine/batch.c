/*
 * From a sample-major dataset to time-major batches: equal-length batches of
 * a list of sequences (make_batches), and the gathering of one batch into
 * buffers laid out as rnn_batch wants them (gather).
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* Time-major buffers for one batch, gathered from the sample-major dataset. */
int batch_buf_init(batch_buf *bb, const rnn_dataset *d, int maxT, int maxB)
{
    memset(bb, 0, sizeof *bb);
    const size_t tb = (size_t)maxT * maxB;
    int ok = 1;
    if (d->x) ok = ok && (bb->x = rnn_falloc(tb * d->X));
    if (d->tok) ok = ok && (bb->tok = rnn_xcalloc(tb, sizeof(int32_t)));
    if (d->y) ok = ok && (bb->y = rnn_falloc(tb * (d->O > 0 ? d->O : 1)));
    if (d->cls) ok = ok && (bb->cls = rnn_xcalloc(tb, sizeof(int32_t)));
    return ok ? 0 : -1;
}

void batch_buf_free(batch_buf *bb)
{
    free(bb->x);
    free(bb->y);
    free(bb->tok);
    free(bb->cls);
}

/* Fills b from the sequences idx[0..B), which all have length T. */
void gather(const rnn_dataset *d, const int *idx, int B, batch_buf *bb, rnn_batch *b)
{
    const int T = d->len[idx[0]], X = d->X, O = d->O;
    const int m2m = d->mode == RNN_MODE_MANY_TO_MANY;
    for (int j = 0; j < B; j++) {
        const int s = idx[j];
        const size_t off = d->off[s];
        for (int t = 0; t < T; t++) {
            const size_t dst = (size_t)t * B + j;
            if (bb->x) memcpy(bb->x + dst * X, d->x + (off + t) * X, (size_t)X * sizeof(float));
            if (bb->tok) bb->tok[dst] = d->tok[off + t];
            if (m2m && bb->y) memcpy(bb->y + dst * O, d->y + (off + t) * O, (size_t)O * sizeof(float));
            if (m2m && bb->cls) bb->cls[dst] = d->cls[off + t];
        }
        if (!m2m && bb->y) memcpy(bb->y + (size_t)j * O, d->y + (size_t)s * O, (size_t)O * sizeof(float));
        if (!m2m && bb->cls) bb->cls[j] = d->cls[s];
    }
    b->T = T;
    b->B = B;
    b->x = bb->x;
    b->tok = bb->tok;
    b->y = bb->y;
    b->cls = bb->cls;
}

/* Predicted elements in a batch: the weight of its mean loss in an epoch mean. */
double batch_weight(const rnn_dataset *d, int T, int B)
{
    return d->mode == RNN_MODE_MANY_TO_MANY ? (double)T * B : (double)B;
}

static int cmp_keyed(const void *a, const void *b)
{
    const keyed *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Orders idx by length, keeping the given order within a length, and cuts it
 * into batches of at most `batch` sequences that never mix lengths: batch k
 * is idx[start[k] .. start[k] + count[k]). Returns the number of batches. */
int make_batches(const rnn_dataset *d, int *idx, int n, int batch, keyed *tmp,
                        int *start, int *count)
{
    for (int i = 0; i < n; i++) {
        tmp[i].len = d->len[idx[i]];
        tmp[i].pos = i;
        tmp[i].id = idx[i];
    }
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_keyed);
    int nb = 0;
    for (int i = 0; i < n;) {
        int j = i;
        while (j < n && tmp[j].len == tmp[i].len && j - i < batch) j++;
        start[nb] = i;
        count[nb] = j - i;
        nb++;
        i = j;
    }
    for (int i = 0; i < n; i++)
        idx[i] = tmp[i].id;
    return nb;
}

