/*
 * The three recurrent cells, one step for B rows: each cell's forward and
 * backward side by side (cells.c), shared by the sequence pass of the own
 * kernel (layers.c), the step-by-step path (rnn_step) and nothing else.
 *
 * Arguments go outputs first, then inputs, then sizes, in the same order in
 * forward and backward. Rows are B sequences of H units; a gate row is G*H
 * wide in PyTorch's gate order (LSTM i|f|g|o, GRU r|z|n).
 */
#ifndef RNN_CELLS_H
#define RNN_CELLS_H

#include "rnn/rnn.h"

/* Everything one step of one layer reads and writes. On entry a holds the
 * pre-activations of the input side, x W_ih^T + b_ih (+ b_hh for RNN and
 * LSTM); the step adds the recurrent side. */
typedef struct cell_step {
    float *a;               /* (B, G*H) in: pre-activations; out: activated gates (RNN: h) */
    const float *hprev;     /* (B, H) h_{t-1} */
    float *h;               /* (B, H) out: h_t (may alias hprev in stepping) */
    const float *cprev;     /* (B, H) LSTM c_{t-1} */
    float *c;               /* (B, H) LSTM out: c_t (may alias cprev) */
    float *tc;              /* (B, H) LSTM out: tanh(c_t) */
    float *hn;              /* (B, H) GRU out: W_hn h_{t-1} + b_hn */
    float *hp;              /* (B, G*H) GRU scratch: h_{t-1} W_hh^T */
    const float *whh_t;     /* (H, ldw) W_hh^T, the faster operand (gemm.c); NULL: the
                             * product reads W_hh itself */
    int ldw;
} cell_step;

/* One step of layer p: the recurrent product (skipped when `first`, h_{-1}
 * being zero) and the cell's elementwise forward. */
void cell_forward(const rnn_config *c, const rnn_layer_params *p, const cell_step *s, int first,
                  int B);

/* Gradients of one step. dh (B, H) is dloss/dh_t; dc (B, H), LSTM only, is
 * the cell gradient carried from step t+1, replaced by the one for step t-1
 * (zero when !carry). Writes da (B, G*H), dloss/d(pre-activation) of the
 * input side, and for GRU dah (B, G*H), of the recurrent side (r and z equal
 * da; n is r * da_n). With carry, adds dloss/dh_{t-1} into dhprev: the
 * recurrent product da W_hh and, GRU only, dh * z. */
void cell_backward(float *da, float *dah, float *dhprev, float *dc,
                   const float *dh, const cell_step *s,
                   const rnn_config *c, const rnn_layer_params *p, int carry, int B);

/* ------------------------------------------------------------------ products (gemm.c) */

/* c (M, N) = op(a) op(b) + beta c, row-major, op = transpose for 'T'. */
void rnn_gemm(char ta, char tb, int M, int N, int K, const float *a, int lda, const float *b,
              int ldb, float beta, float *c, int ldc);
/* The leading dimension to store rows of n floats with for rnn_gemm. */
int rnn_gemm_ld(int n);
/* Up to this many multiply-adds, a single row times a matrix (B = 1) is a
 * loop of rnn_gemm's own: dnnl_sgemm's fixed cost per call, about 0.3 us,
 * is more than such a product takes. Above it, the product reads a matrix
 * as fast in either layout, so B = 1 passes need no transposed copy. */
#define RNN_SMALL_GEMV 16384
/* y (M, N) = a (M, K) w(N, K)^T + beta y: the shape of every projection. */
void rnn_gemm_nt(int M, int N, int K, const float *a, const float *w, float beta, float *y);
/* y (M, N) = a (M, K) w (K, N) + beta y. */
void rnn_gemm_nn(int M, int N, int K, const float *a, const float *w, float beta, float *y);
/* dw (N, K) += d (M, N)^T a (M, K): a weight gradient summed over M rows. */
void rnn_gemm_tn_acc(int M, int N, int K, const float *d, const float *a, float *dw);
/* t (cols, rows) = a^T (a is (rows, cols)), or t += a^T with acc. */
void rnn_transpose(int rows, int cols, const float *a, int lda, int acc, float *t, int ldt);

#endif
