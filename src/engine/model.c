/* A model's parameters: one flat float buffer laid out tensor by tensor in
 * PyTorch state_dict order, with named views into it, and PyTorch's default
 * initialisation (plus identity and orthogonal recurrent weights). */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

int rnn_fail(rnn_err *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void *rnn_xcalloc(size_t n, size_t size)
{
    if (n == 0)
        n = 1;
    if (size && n > (size_t)-1 / size)
        return NULL;
    return calloc(n, size);
}

/* Buffers from this size on (a training workspace's gates, say) are asked
 * for in 2 MiB pages: a job then takes hundreds of page faults where it took
 * tens of thousands, which was a quarter of a short job's time. */
#define HUGE_BUFFER (1u << 20)
#define HUGE_PAGE (2u << 20)

float *rnn_falloc(size_t n)
{
    if (n > (size_t)-1 / sizeof(float) - HUGE_PAGE)
        return NULL;
    const size_t bytes = n * sizeof(float);
    if (bytes < HUGE_BUFFER)
        return rnn_xcalloc(n, sizeof(float));
    const size_t size = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    float *p = aligned_alloc(HUGE_PAGE, size);
    if (p) {
        madvise(p, size, MADV_HUGEPAGE); /* a hint: without it, 4 KiB pages */
        memset(p, 0, bytes);
    }
    return p;
}

static void add_tensor(rnn_model *m, size_t *off, const char *name, int d0, int d1)
{
    rnn_tensor *t = &m->tensors[m->ntensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = d1 > 0 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1 > 0 ? d1 : 0;
    t->offset = *off;
    t->size = (size_t)d0 * (size_t)(d1 > 0 ? d1 : 1);
    *off += t->size;
}

int rnn_model_init(rnn_model *m, const rnn_config *cfg, rnn_err *err)
{
    static _Atomic uint64_t serials;
    memset(m, 0, sizeof *m);
    m->serial = atomic_fetch_add(&serials, 1) + 1;
    if (rnn_config_check(cfg, err))
        return -1;
    m->cfg = *cfg;
    const int G = rnn_gates(cfg->cell), H = cfg->hidden;
    size_t off = 0;
    char name[48];
    if (cfg->embedding)
        add_tensor(m, &off, "embedding.weight", cfg->input_size, cfg->embedding);
    /* PyTorch's state_dict order: per layer, the forward direction, then
     * the reverse one (suffix "_reverse") */
    const int D = rnn_dirs(cfg);
    for (int u = 0; u < cfg->layers * D; u++) {
        const int l = u / D;
        const char *rev = u % D ? "_reverse" : "";
        snprintf(name, sizeof name, "rnn.weight_ih_l%d%s", l, rev);
        add_tensor(m, &off, name, G * H, rnn_layer_in(cfg, l));
        snprintf(name, sizeof name, "rnn.weight_hh_l%d%s", l, rev);
        add_tensor(m, &off, name, G * H, H);
        snprintf(name, sizeof name, "rnn.bias_ih_l%d%s", l, rev);
        add_tensor(m, &off, name, G * H, 0);
        snprintf(name, sizeof name, "rnn.bias_hh_l%d%s", l, rev);
        add_tensor(m, &off, name, G * H, 0);
    }
    add_tensor(m, &off, "head.weight", cfg->output_size, D * H);
    add_tensor(m, &off, "head.bias", cfg->output_size, 0);
    m->nparams = off;
    m->params = rnn_falloc(off);
    if (!m->params)
        return rnn_fail(err, "out of memory for %zu parameters", off);
    rnn_view v;
    rnn_model_view(m, m->params, &v);
    m->emb = v.emb;
    memcpy(m->layer, v.layer, sizeof m->layer);
    m->head_w = v.head_w;
    m->head_b = v.head_b;
    return 0;
}

void rnn_model_view(const rnn_model *m, float *buf, rnn_view *v)
{
    memset(v, 0, sizeof *v);
    int k = 0;
    if (m->cfg.embedding)
        v->emb = buf + m->tensors[k++].offset;
    for (int l = 0; l < m->cfg.layers * rnn_dirs(&m->cfg); l++) {
        v->layer[l].w_ih = buf + m->tensors[k++].offset;
        v->layer[l].w_hh = buf + m->tensors[k++].offset;
        v->layer[l].b_ih = buf + m->tensors[k++].offset;
        v->layer[l].b_hh = buf + m->tensors[k++].offset;
    }
    v->head_w = buf + m->tensors[k++].offset;
    v->head_b = buf + m->tensors[k++].offset;
}

void rnn_model_free(rnn_model *m)
{
    if (!m)
        return;
    free(m->params);
    memset(m, 0, sizeof *m);
}

int rnn_model_copy(rnn_model *dst, const rnn_model *src, rnn_err *err)
{
    if (rnn_model_init(dst, &src->cfg, err))
        return -1;
    memcpy(dst->params, src->params, src->nparams * sizeof(float));
    return 0;
}

const rnn_tensor *rnn_model_tensor(const rnn_model *m, const char *name)
{
    for (int i = 0; i < m->ntensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0)
            return &m->tensors[i];
    return NULL;
}

static void fill_uniform(float *p, size_t n, double bound, rnn_rng *rng)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (float)((2.0 * rnn_rng_uniform(rng) - 1.0) * bound);
}

/* A random H x H orthogonal matrix: modified Gram-Schmidt on the rows of a
 * Gaussian matrix, in double, with a re-draw for the (measure-zero) case of a
 * degenerate row. */
static void fill_orthogonal(float *w, int H, rnn_rng *rng, double *tmp)
{
    for (int i = 0; i < H; i++) {
        double *r = tmp + (size_t)i * H;
        for (;;) {
            for (int j = 0; j < H; j++)
                r[j] = rnn_rng_normal(rng);
            for (int pass = 0; pass < 2; pass++)
                for (int k = 0; k < i; k++) {
                    const double *q = tmp + (size_t)k * H;
                    double d = 0;
                    for (int j = 0; j < H; j++) d += r[j] * q[j];
                    for (int j = 0; j < H; j++) r[j] -= d * q[j];
                }
            double nrm = 0;
            for (int j = 0; j < H; j++) nrm += r[j] * r[j];
            nrm = sqrt(nrm);
            if (nrm > 1e-6) {
                for (int j = 0; j < H; j++) r[j] /= nrm;
                break;
            }
        }
    }
    for (size_t i = 0; i < (size_t)H * H; i++)
        w[i] = (float)tmp[i];
}

void rnn_model_randomize(rnn_model *m, rnn_rng *rng, rnn_recurrent_init rinit)
{
    const rnn_config *c = &m->cfg;
    const int G = rnn_gates(c->cell), H = c->hidden;
    const double k = 1.0 / sqrt((double)H);
    const size_t gh = (size_t)G * H;
    double *tmp = NULL;
    if (rinit == RNN_INIT_ORTHOGONAL)
        tmp = malloc((size_t)H * H * sizeof(double));
    if (m->emb)
        for (size_t i = 0; i < (size_t)c->input_size * c->embedding; i++)
            m->emb[i] = (float)rnn_rng_normal(rng);
    for (int u = 0; u < c->layers * rnn_dirs(c); u++) {
        rnn_layer_params *p = &m->layer[u];
        fill_uniform(p->w_ih, gh * rnn_layer_in(c, u / rnn_dirs(c)), k, rng);
        fill_uniform(p->w_hh, gh * H, k, rng);
        fill_uniform(p->b_ih, gh, k, rng);
        fill_uniform(p->b_hh, gh, k, rng);
        if (rinit == RNN_INIT_IDENTITY) {
            memset(p->w_hh, 0, gh * H * sizeof(float));
            for (int g = 0; g < G; g++)
                for (int i = 0; i < H; i++)
                    p->w_hh[((size_t)g * H + i) * H + i] = 1.0f;
            memset(p->b_ih, 0, gh * sizeof(float));
            memset(p->b_hh, 0, gh * sizeof(float));
        } else if (rinit == RNN_INIT_ORTHOGONAL && tmp) {
            for (int g = 0; g < G; g++)
                fill_orthogonal(p->w_hh + (size_t)g * H * H, H, rng, tmp);
        }
    }
    /* nn.Linear(D H, O): fan_in D H */
    const double kh = 1.0 / sqrt((double)rnn_dirs(c) * H);
    fill_uniform(m->head_w, (size_t)c->output_size * rnn_dirs(c) * H, kh, rng);
    fill_uniform(m->head_b, (size_t)c->output_size, kh, rng);
    free(tmp);
}
