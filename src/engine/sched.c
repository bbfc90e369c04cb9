/*
 * Training controls read off a run's loss history: the learning rate of
 * each epoch (PyTorch's StepLR, CosineAnnealingLR and ReduceLROnPlateau,
 * each stepped once per epoch) and early stopping's best epoch. Both are
 * pure functions of the base rate and the monitored loss of the epochs
 * before, so the trainer keeps no schedule state of its own and a run
 * resumed from a checkpoint (which holds the losses) takes the same rates.
 */
#include "internal.h"

#include <math.h>

void rnn_sched_defaults(rnn_sched_cfg *s, rnn_sched_kind kind)
{
    *s = (rnn_sched_cfg){.kind = kind, .step_size = 1, .gamma = 0.1, .t_max = 1, .eta_min = 0,
                         .factor = 0.1, .patience = 10, .threshold = 1e-4, .cooldown = 0,
                         .min_lr = 0};
}

/* step: lr_e = base * gamma^floor(e / step_size), multiplied out one decay
 * at a time as PyTorch does. */
static double step_lr(const rnn_sched_cfg *s, double base, int e)
{
    double lr = base;
    for (int k = e / s->step_size; k > 0; k--)
        lr *= s->gamma;
    return lr;
}

/* cosine: lr_e = eta_min + (base - eta_min) (1 + cos(pi e / t_max)) / 2,
 * the closed form of PyTorch's recursion (periodic past t_max like it). */
static double cosine_lr(const rnn_sched_cfg *s, double base, int e)
{
    return s->eta_min + (base - s->eta_min) * (1 + cos(M_PI * e / s->t_max)) / 2;
}

/* plateau, replayed over the epochs before e: an epoch is better when its
 * loss m < best (1 - threshold); after more than `patience` epochs that are
 * not, lr = max(lr factor, min_lr) (when that lowers it by more than 1e-8)
 * and the next `cooldown` epochs count as good. */
static double plateau_lr(const rnn_sched_cfg *s, double base, int e, const double *metric)
{
    double lr = base, best = INFINITY;
    int bad = 0, cool = 0;
    for (int i = 0; i < e; i++) {
        if (metric[i] < best * (1 - s->threshold)) {
            best = metric[i];
            bad = 0;
        } else {
            bad++;
        }
        if (cool > 0) {
            cool--;
            bad = 0;
        }
        if (bad > s->patience) {
            const double next = fmax(lr * s->factor, s->min_lr);
            if (lr - next > 1e-8)
                lr = next;
            cool = s->cooldown;
            bad = 0;
        }
    }
    return lr;
}

double rnn_sched_lr(const rnn_sched_cfg *s, double base, int e, const double *metric)
{
    switch (s->kind) {
    case RNN_SCHED_STEP: return step_lr(s, base, e);
    case RNN_SCHED_COSINE: return cosine_lr(s, base, e);
    case RNN_SCHED_PLATEAU: return plateau_lr(s, base, e, metric);
    case RNN_SCHED_NONE: break;
    }
    return base;
}

/* The best epoch is the last one whose loss beat the best before it by
 * more than min_delta: m_i < m_best - min_delta. */
int rnn_early_best(const rnn_early_cfg *cfg, const double *metric, int n, int *waited)
{
    int best = -1;
    for (int i = 0; i < n; i++)
        if (best < 0 || metric[i] < metric[best] - cfg->min_delta)
            best = i;
    if (waited)
        *waited = best < 0 ? 0 : n - 1 - best;
    return best;
}
