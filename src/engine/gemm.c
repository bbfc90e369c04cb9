/*
 * The matrix products of the own kernel (cells.c, layers.c): row-major
 * single-precision GEMM through CBLAS, a GEMV when one operand is a single
 * row (B = 1 stepping). The batched sequence passes of training run on
 * oneDNN's RNN primitives instead (dnn.c).
 */
#include "cells.h"

#include <cblas.h>

void rnn_gemm_nt(int M, int N, int K, const float *a, const float *w, float beta, float *y)
{
    if (M == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, 1.0f, w, K, a, 1, beta, y, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a, K, w, K, beta, y, N);
}

void rnn_gemm_nn(int M, int N, int K, const float *a, const float *w, float beta, float *y)
{
    if (M == 1)
        cblas_sgemv(CblasRowMajor, CblasTrans, K, N, 1.0f, w, N, a, 1, beta, y, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a, K, w, N, beta, y, N);
}

void rnn_gemm_tn_acc(int M, int N, int K, const float *d, const float *a, float *dw)
{
    if (M > 0)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, K, M, 1.0f, d, N, a, K, 1.0f, dw, K);
}
