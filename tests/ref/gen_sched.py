#!/usr/bin/python3
"""Reference learning-rate sequences for rnnd's schedules, from PyTorch.

Writes tests/ref/sched.ref: for each case the schedule's settings, the loss
each epoch reported (ReduceLROnPlateau reads it; the others ignore it) and
the learning rate PyTorch's optimizer held during each epoch, with the
scheduler stepped once at every epoch end as rnnd does. One case per line
group, plain text, read by tests/unit/test_train.c:

    case NAME KIND EPOCHS BASE_LR key=value ...
    metric m_0 ... m_{EPOCHS-1}
    lr lr_0 ... lr_{EPOCHS-1}

    /usr/bin/python3 tests/ref/gen_sched.py

Needs Debian's python3-torch (1.13). Deterministic (the losses come from a
fixed formula, not from a random generator).
"""

import math
import os

import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "sched.ref")


def losses(n, kind):
    """A loss curve that falls, then stalls and wobbles, then falls again:
    the plateau schedule has both improvements and bad epochs to count."""
    out = []
    for e in range(n):
        if kind == "flat":
            v = 1.0 if e < 3 else 0.5
        else:
            v = 1.0 / (1 + 0.3 * e) if e < 8 else 0.27 + 0.01 * math.sin(e) + (0.1 / (e - 6) if e > 20 else 0)
        out.append(v)
    return out


CASES = [
    # name, kind, epochs, base lr, scheduler settings, metric shape
    ("step_3_half", "step", 20, 0.1, {"step_size": 3, "gamma": 0.5}, "curve"),
    ("step_1_default", "step", 12, 0.01, {"step_size": 1, "gamma": 0.1}, "curve"),
    ("step_7_grow", "step", 30, 0.001, {"step_size": 7, "gamma": 1.5}, "curve"),
    ("cosine_10", "cosine", 25, 0.1, {"t_max": 10, "eta_min": 0.0}, "curve"),
    ("cosine_7_min", "cosine", 30, 0.05, {"t_max": 7, "eta_min": 0.001}, "curve"),
    ("cosine_epochs", "cosine", 16, 0.003, {"t_max": 16, "eta_min": 1e-5}, "curve"),
    ("plateau_default", "plateau", 40, 0.1,
     {"factor": 0.1, "patience": 10, "threshold": 1e-4, "cooldown": 0, "min_lr": 0.0}, "curve"),
    ("plateau_quick", "plateau", 40, 0.1,
     {"factor": 0.5, "patience": 2, "threshold": 1e-4, "cooldown": 0, "min_lr": 0.0}, "curve"),
    ("plateau_cooldown_min", "plateau", 40, 0.1,
     {"factor": 0.3, "patience": 1, "threshold": 0.01, "cooldown": 2, "min_lr": 0.002}, "curve"),
    ("plateau_flat", "plateau", 20, 0.02,
     {"factor": 0.5, "patience": 0, "threshold": 1e-4, "cooldown": 1, "min_lr": 0.0}, "flat"),
]


def scheduler(kind, opt, kw):
    s = torch.optim.lr_scheduler
    if kind == "step":
        return s.StepLR(opt, step_size=kw["step_size"], gamma=kw["gamma"])
    if kind == "cosine":
        return s.CosineAnnealingLR(opt, T_max=kw["t_max"], eta_min=kw["eta_min"])
    return s.ReduceLROnPlateau(opt, mode="min", factor=kw["factor"], patience=kw["patience"],
                               threshold=kw["threshold"], threshold_mode="rel",
                               cooldown=kw["cooldown"], min_lr=kw["min_lr"])


def main():
    lines = []
    for name, kind, epochs, base, kw, shape in CASES:
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=base)
        sch = scheduler(kind, opt, kw)
        metric = losses(epochs, shape)
        lrs = []
        for e in range(epochs):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()  # an epoch's updates, then the scheduler's step
            if kind == "plateau":
                sch.step(metric[e])
            else:
                sch.step()
        settings = " ".join("%s=%r" % (k, v) for k, v in kw.items())
        lines.append("case %s %s %d %r %s" % (name, kind, epochs, base, settings))
        lines.append("metric " + " ".join("%.17g" % m for m in metric))
        lines.append("lr " + " ".join("%.17g" % x for x in lrs))
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %s (%d cases)" % (OUT, len(CASES)))


if __name__ == "__main__":
    main()
