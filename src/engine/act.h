/*
 * Activations for the elementwise loops of the cells. libm's expf and tanhf
 * are scalar calls that dominated training time (about half of it); these
 * are branch-free, so the loops that use them vectorise, and accurate to a
 * few float ulps (the PyTorch reference tests hold them to 1e-5 relative).
 *
 * exp: x = n ln2 + r with |r| <= ln2/2, e^r by its degree-6 Taylor
 * polynomial (truncation below 3e-8 relative), scaled by 2^n through the
 * exponent bits. tanh: (1 - e)/(1 + e) with e = exp(-2|x|), and an odd
 * series for |x| < 0.3 where 1 - e would cancel.
 */
#ifndef RNN_ACT_H
#define RNN_ACT_H

#include <stdint.h>
#include <string.h>

static inline float rnn_expf(float x)
{
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float n = (x * 1.44269504089f + shifter) - shifter;
    float r = x - n * 0.693145751953125f;   /* ln2, high part (exact product) */
    r = r - n * 1.42860682030941723e-6f;    /* ln2, low part */
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    /* NaN stays NaN through p; n (NaN too) must not reach the int conversion */
    int32_t bits = ((int32_t)(n == n ? n : 0.0f) + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float rnn_sigmoidf(float x) { return 1.0f / (1.0f + rnn_expf(-x)); }

static inline float rnn_tanhf(float x)
{
    float a = x < 0.0f ? -x : x;
    float e = rnn_expf(-2.0f * a);
    float big = (1.0f - e) / (1.0f + e);
    float x2 = a * a;
    /* tanh a = a - a^3/3 + 2a^5/15 - 17a^7/315 + 62a^9/2835 - 1382a^11/155925 */
    float s = -1382.0f / 155925.0f;
    s = s * x2 + 62.0f / 2835.0f;
    s = s * x2 - 17.0f / 315.0f;
    s = s * x2 + 2.0f / 15.0f;
    s = s * x2 - 1.0f / 3.0f;
    float small = a + a * x2 * s;
    float t = a < 0.3f ? small : big;
    return x < 0.0f ? -t : t;
}

/* Elementwise kernels are compiled for AVX-512, AVX2 and baseline x86-64,
 * chosen at load time. RNN_ISA_AVX2 (make ISA=avx2) builds the AVX2 ones
 * only: `make test` runs the PyTorch references so, as a CPU without
 * AVX-512 would. */
#if defined(RNN_ISA_AVX2)
#define RNN_VECTOR_KERNEL __attribute__((target("avx2,fma")))
#elif defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define RNN_VECTOR_KERNEL __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define RNN_VECTOR_KERNEL
#endif

#endif
