/*
 * The matrix products of the engine, all through oneDNN's dnnl_sgemm
 * (row-major). Measured on one core against OpenBLAS (docs/benchmarks.md),
 * dnnl_sgemm is as fast or faster on every shape the engine multiplies, and
 * its speed does not depend on OPENBLAS_CORETYPE: it picks its AVX-512 or
 * AVX2 kernels itself (ONEDNN_MAX_CPU_ISA caps them).
 *
 * Two habits of that GEMM shape the callers (layers.c): with B (K, N) not
 * transposed it runs about 1.5x faster than with B^T, and a leading dimension
 * that is a multiple of 1024 floats makes it several times slower (the rows
 * of a panel fall into the same cache sets). So the own kernel multiplies by
 * transposed copies of the weights, padded by rnn_gemm_ld, and computes
 * weight gradients transposed.
 *
 * oneDNN runs each call on the calling thread only: rnnd parallelises over
 * the batch itself (team.c), and HTTP threads must not start OpenMP teams.
 */
#include "cells.h"

#include "act.h"
#include "dnn.h"

#include <dnnl.h>

/* y (N) = a (K) b (K, N) + beta y: one axpy per row of b, vectorised
 * along N; for a few columns (a head with one output), a dot product each,
 * vectorised along K in 16 partial sums. */
RNN_VECTOR_KERNEL static void gemv_nn(int N, int K, const float *restrict a,
                                      const float *restrict b, int ldb, float beta,
                                      float *restrict y)
{
    if (N < 16) {
        for (int n = 0; n < N; n++) {
            float acc[16] = {0}, s = beta == 0.0f ? 0.0f : beta * y[n];
            int k = 0;
            for (; k + 16 <= K; k += 16)
                for (int l = 0; l < 16; l++)
                    acc[l] += a[k + l] * b[(size_t)(k + l) * ldb + n];
            for (; k < K; k++)
                s += a[k] * b[(size_t)k * ldb + n];
            for (int l = 0; l < 16; l++)
                s += acc[l];
            y[n] = s;
        }
        return;
    }
    for (int n = 0; n < N; n++)
        y[n] = beta == 0.0f ? 0.0f : beta * y[n];
    for (int k = 0; k < K; k++) {
        const float ak = a[k];
        const float *restrict r = b + (size_t)k * ldb;
        for (int n = 0; n < N; n++)
            y[n] += ak * r[n];
    }
}

void rnn_gemm(char ta, char tb, int M, int N, int K, const float *a, int lda, const float *b,
              int ldb, float beta, float *c, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    if (M == 1 && ta == 'N' && tb == 'N' && (long)N * K <= RNN_SMALL_GEMV) {
        gemv_nn(N, K, a, b, ldb, beta, c);
        return;
    }
    dnn_thread_init();
    dnnl_sgemm(ta, tb, M, N, K, 1.0f, a, lda, b, ldb, beta, c, ldc);
}

int rnn_gemm_ld(int n)
{
    return (n + 15) / 16 * 16 + 16;
}

void rnn_gemm_nt(int M, int N, int K, const float *a, const float *w, float beta, float *y)
{
    rnn_gemm('N', 'T', M, N, K, a, K, w, K, beta, y, N);
}

void rnn_gemm_nn(int M, int N, int K, const float *a, const float *w, float beta, float *y)
{
    rnn_gemm('N', 'N', M, N, K, a, K, w, N, beta, y, N);
}

void rnn_gemm_tn_acc(int M, int N, int K, const float *d, const float *a, float *dw)
{
    if (M > 0)
        rnn_gemm('T', 'N', N, K, M, d, N, a, K, 1.0f, dw, K);
}

void rnn_transpose(int rows, int cols, const float *a, int lda, int acc, float *t, int ldt)
{
    /* in tiles of 16 x 16, so both sides are read and written a cache line
     * at a time */
    for (int i0 = 0; i0 < rows; i0 += 16)
        for (int j0 = 0; j0 < cols; j0 += 16) {
            const int i1 = i0 + 16 < rows ? i0 + 16 : rows, j1 = j0 + 16 < cols ? j0 + 16 : cols;
            for (int i = i0; i < i1; i++)
                for (int j = j0; j < j1; j++) {
                    float *o = t + (size_t)j * ldt + i;
                    *o = (acc ? *o : 0.0f) + a[(size_t)i * lda + j];
                }
        }
}
