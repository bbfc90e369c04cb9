/* Scalar activations shared by the forward and backward passes. Kept inline
 * and branch-free where possible so the elementwise loops vectorise. */
#ifndef RNN_ACT_H
#define RNN_ACT_H

#include <math.h>

static inline float rnn_sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

#endif
