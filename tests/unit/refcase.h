/* Reader for the PyTorch reference vectors written by tests/ref/gen.py:
 * <case>.ref (text) and, for the tensors it marks `@offset`, the raw
 * little-endian float32 sidecar <case>.bin (see tests/ref/README.md). */
#ifndef TEST_REFCASE_H
#define TEST_REFCASE_H

#include "rnn/rnn.h"

#include <stddef.h>

typedef struct ref_tensor {
    char name[64];
    int ndim;
    int shape[3];
    size_t n;
    float *v;
} ref_tensor;

typedef struct ref_case {
    char name[64];
    rnn_config cfg;         /* cfg.tokens from the `tokens` line, or inferred */
    /* steps: optimizer steps in the reference, 0 when it has no sgd./adam.
     * tensors (the big cases) */
    int T, B, bptt, steps, nesterov;
    double clip, sgd_lr, sgd_momentum, adam_lr, adam_wd;
    long bin_floats;        /* floats in the sidecar, 0 without one */
    int ntensors;
    ref_tensor t[160];
} ref_case;

/* Loads path (a .ref file) and its .bin sidecar when the file has one.
 * 0 on success; on failure -1 with a message in err. */
int ref_load(const char *path, ref_case *rc, char *err, size_t errlen);
void ref_free(ref_case *rc);
const ref_tensor *ref_get(const ref_case *rc, const char *name);
/* max |a - b| / max(max |b|, 1e-30): the error relative to the tensor's scale */
double ref_relerr(const float *a, const float *b, size_t n);
/* Directory of the reference vectors: $RNN_REF_DIR or tests/ref/engine. */
const char *ref_dir(void);
/* Sorted list of the *.ref files in ref_dir(); returns the count. */
int ref_list(char names[][128], int max);

#endif
