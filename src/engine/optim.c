/* Optimizers over the flat parameter buffer, following torch.optim.SGD and
 * torch.optim.AdamW step for step so that rnnd and PyTorch agree to float
 * rounding; gradient clipping by global L2 norm. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void rnn_optim_defaults(rnn_optim_cfg *c, rnn_opt_kind kind)
{
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->lr = kind == RNN_OPT_ADAM ? 0.001 : 0.01;
    c->beta1 = 0.9;
    c->beta2 = 0.999;
    c->eps = 1e-8;
}

int rnn_optim_init(rnn_optim *o, const rnn_optim_cfg *cfg, size_t n, rnn_err *err)
{
    memset(o, 0, sizeof *o);
    o->cfg = *cfg;
    o->n = n;
    o->m = rnn_falloc(n);
    if (cfg->kind == RNN_OPT_ADAM)
        o->v = rnn_falloc(n);
    if (!o->m || (cfg->kind == RNN_OPT_ADAM && !o->v)) {
        rnn_optim_free(o);
        return rnn_fail(err, "out of memory for optimizer state");
    }
    return 0;
}

void rnn_optim_free(rnn_optim *o)
{
    free(o->m);
    free(o->v);
    o->m = o->v = NULL;
}

/* SGD: d = g + wd*p; buf = d on the first step, else momentum*buf + d;
 * nesterov: d += momentum*buf, else d = buf; p -= lr*d. */
static void sgd_step(rnn_optim *o, float *p, const float *g)
{
    const float lr = (float)o->cfg.lr, mu = (float)o->cfg.momentum;
    const float wd = (float)o->cfg.weight_decay;
    const int first = o->step == 1, nesterov = o->cfg.nesterov;
    float *buf = o->m;
    for (size_t i = 0; i < o->n; i++) {
        float d = g[i];
        if (wd != 0.0f) d += wd * p[i];
        if (mu != 0.0f) {
            buf[i] = first ? d : mu * buf[i] + d;
            d = nesterov ? d + mu * buf[i] : buf[i];
        }
        p[i] -= lr * d;
    }
}

/* AdamW: p *= 1 - lr*wd; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
 * p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps). */
static void adam_step(rnn_optim *o, float *p, const float *g)
{
    const double b1 = o->cfg.beta1, b2 = o->cfg.beta2;
    const float decay = (float)(1.0 - o->cfg.lr * o->cfg.weight_decay);
    const float fb1 = (float)b1, fb2 = (float)b2, c1 = (float)(1.0 - b1), c2 = (float)(1.0 - b2);
    const float step_size = (float)(o->cfg.lr / (1.0 - pow(b1, (double)o->step)));
    const float bc2 = (float)sqrt(1.0 - pow(b2, (double)o->step));
    const float eps = (float)o->cfg.eps;
    float *m = o->m, *v = o->v;
    for (size_t i = 0; i < o->n; i++) {
        if (decay != 1.0f) p[i] *= decay;
        m[i] = fb1 * m[i] + c1 * g[i];
        v[i] = fb2 * v[i] + c2 * g[i] * g[i];
        p[i] -= step_size * m[i] / (sqrtf(v[i]) / bc2 + eps);
    }
}

void rnn_optim_step(rnn_optim *o, float *params, const float *grads)
{
    o->step++;
    if (o->cfg.kind == RNN_OPT_ADAM)
        adam_step(o, params, grads);
    else
        sgd_step(o, params, grads);
}

double rnn_grad_norm(const float *g, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)g[i] * g[i];
    return sqrt(s);
}

double rnn_clip_grad(float *g, size_t n, double max_norm)
{
    double norm = rnn_grad_norm(g, n);
    double coef = max_norm / (norm + 1e-6);
    if (max_norm > 0 && coef < 1.0) {
        const float fc = (float)coef;
        for (size_t i = 0; i < n; i++)
            g[i] *= fc;
    }
    return norm;
}
