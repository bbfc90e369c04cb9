/* The engine's one source of randomness: xoshiro256** (Blackman and Vigna),
 * seeded by splitmix64 so any 64-bit seed gives a well-mixed state. */
#include "rnn/rnn.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void rnn_rng_seed(rnn_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rnn_rng_next(rnn_rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double rnn_rng_uniform(rnn_rng *r)
{
    return (double)(rnn_rng_next(r) >> 11) * 0x1.0p-53;
}

/* Box-Muller; the second value is dropped so the stream position depends only
 * on how many normals were drawn. */
double rnn_rng_normal(rnn_rng *r)
{
    double u1 = rnn_rng_uniform(r), u2 = rnn_rng_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* Lemire's rejection method keeps the result unbiased for any n. */
uint64_t rnn_rng_below(rnn_rng *r, uint64_t n)
{
    if (n <= 1)
        return 0;
    uint64_t limit = -n % n;
    for (;;) {
        uint64_t x = rnn_rng_next(r);
        unsigned __int128 m = (unsigned __int128)x * n;
        if ((uint64_t)m >= limit)
            return (uint64_t)(m >> 64);
    }
}
