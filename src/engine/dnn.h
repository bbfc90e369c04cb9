/*
 * The oneDNN kernel: one recurrent layer over a whole sequence (or over the
 * chunks of truncated BPTT) through oneDNN's RNN primitives, forward and
 * backward, with PyTorch's weights, gate order and gradients on both sides.
 * layers.c calls it for batched passes and falls back to its own kernel
 * (cells.c) when a primitive cannot be made.
 */
#ifndef RNN_DNN_H
#define RNN_DNN_H

#include "rnn/rnn.h"

typedef struct dnn_seq dnn_seq;

/* The oneDNN state of one workspace: primitives cached by shape, their
 * weights in the primitives' layouts, oneDNN workspaces per chunk. `train`
 * selects forward_training (and backward) over forward_inference. NULL when
 * oneDNN has no CPU engine here. Not to be shared between threads. */
dnn_seq *dnn_seq_new(const rnn_config *c, int train);
void dnn_seq_free(dnn_seq *d);

/* Marks the model's weights as possibly changed since the last pass: the
 * next pass copies them into the primitives' layouts again. */
void dnn_seq_weights_changed(dnn_seq *d);

/* Forward of layer l over T steps of B rows, in chunks of `chunk` steps (0:
 * one chunk). x (T, B, X_l). h (T+1, B, H): h[0] is the initial state (zero),
 * h[1..T] are written. c (T+1, B, H), LSTM only: c[0] is the initial cell
 * state; the cell state at every chunk border is written at its step.
 * Returns 0, or -1 when oneDNN could not build or run the primitive. */
int dnn_layer_forward(dnn_seq *d, const rnn_layer_params *p, int l, int T, int B, int chunk,
                      const float *x, float *h, float *c);

/* Backward of layer l for the last forward_training (same T, B, chunk), the
 * gradient stopped at every chunk border. dh (T, B, H) is dloss/dh_t of the
 * layer's outputs; dx (T, B, X_l), if not NULL, receives dloss/dx. Adds the
 * weight and bias gradients into g (the gradient buffer's view of layer l). */
int dnn_layer_backward(dnn_seq *d, const rnn_layer_params *p, const rnn_layer_params *g, int l,
                       int T, int B, int chunk, const float *x, const float *h, const float *c,
                       const float *dh, float *dx);

/* Makes oneDNN (its primitives and dnnl_sgemm) run single-threaded in the
 * calling thread: rnnd parallelises over the batch itself (team.c), and HTTP
 * threads must not spawn teams. */
void dnn_thread_init(void);

#endif
