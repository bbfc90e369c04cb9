#!/usr/bin/python3
"""Compare rnnd and PyTorch benchmark results as a markdown table.

Usage: report.py [--strict] [FILE ...]     (no FILE, or "-", reads stdin)

Input lines (anything else is ignored):

    INFO key=value ...
    RESULT impl=rnnd cell=lstm H=64 X=64 T=50 B=32 train_seq_s=1234.5 infer_seq_s=5678.9
    SKIP: <reason>                      (as printed by bench_torch.py)

Prints the INFO lines, one table row per configuration (in the order first
seen) with ratio = rnnd / torch, and a PASS/FAIL summary of the targets:

  * training at B=32:  ratio >= 1.5 for every H <= 256, ratio >= 1.0 at H = 512
  * inference at B=1:  ratio >= 5 for every H <= 256

With --strict the exit status is 1 when a target fails (or has no data).
Standard library only.
"""

import sys

CFG_KEYS = ("cell", "H", "X", "T", "B")
IMPLS = ("rnnd", "torch")


def parse_kv(text):
    """Split "a=1 b=x y c=3" into [(a, '1'), (b, 'x y'), (c, '3')].

    A token without '=' is glued to the previous value, so values containing
    spaces (e.g. a CPU model name) survive.
    """
    pairs = []
    for tok in text.split():
        if "=" in tok and not tok.startswith("="):
            k, v = tok.split("=", 1)
            pairs.append([k, v])
        elif pairs:
            pairs[-1][1] += " " + tok
        else:
            pairs.append([tok, ""])
    return [tuple(p) for p in pairs]


def to_float(s):
    try:
        v = float(s)
    except (TypeError, ValueError):
        return None
    return v if v == v else None  # drop NaN


class Results:
    def __init__(self):
        self.info = []        # INFO lines (text after "INFO "), deduplicated
        self.skips = []       # SKIP reasons
        self.order = []       # configuration keys, first-seen order
        self.data = {}        # cfg -> impl -> {"train": float, "infer": float}
        self.warnings = []

    def feed(self, line, where):
        s = line.strip()
        if s.startswith("INFO ") or s == "INFO":
            text = s[4:].strip()
            if text and text not in self.info:
                self.info.append(text)
        elif s.startswith("SKIP:"):
            reason = s[5:].strip()
            if reason not in self.skips:
                self.skips.append(reason)
        elif s.startswith("RESULT "):
            kv = dict(parse_kv(s[7:]))
            impl = kv.get("impl", "").lower()
            if impl not in IMPLS:
                self.warnings.append("%s: unknown impl %r ignored" % (where, impl))
                return
            try:
                cfg = (kv["cell"].lower(),) + tuple(int(kv[k]) for k in CFG_KEYS[1:])
            except (KeyError, ValueError):
                self.warnings.append("%s: malformed RESULT line ignored" % where)
                return
            if cfg not in self.data:
                self.data[cfg] = {}
                self.order.append(cfg)
            if impl in self.data[cfg]:
                self.warnings.append("%s: duplicate %s result for %s; last one kept"
                                     % (where, impl, cfg_name(cfg)))
            self.data[cfg][impl] = {"train": to_float(kv.get("train_seq_s")),
                                    "infer": to_float(kv.get("infer_seq_s"))}

    def get(self, cfg, impl, what):
        return self.data[cfg].get(impl, {}).get(what)

    def ratio(self, cfg, what):
        r, t = self.get(cfg, "rnnd", what), self.get(cfg, "torch", what)
        if r is None or t is None or t <= 0:
            return None
        return r / t

    def has(self, impl):
        return any(impl in d for d in self.data.values())


def cfg_name(cfg):
    return "%s H=%d X=%d T=%d B=%d" % cfg


def fmt_num(v):
    return "n/a" if v is None else "%.1f" % v


def fmt_ratio(v):
    return "n/a" if v is None else "%.2f" % v


def print_table(res, compare):
    if compare:
        head = ["cell", "H", "X", "T", "B",
                "rnnd train seq/s", "torch train seq/s", "train ratio",
                "rnnd infer seq/s", "torch infer seq/s", "infer ratio"]
        align = ["---"] + ["---:"] * 10
    else:
        head = ["cell", "H", "X", "T", "B", "rnnd train seq/s", "rnnd infer seq/s"]
        align = ["---"] + ["---:"] * 6
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join(align) + "|")
    for cfg in res.order:
        row = [cfg[0]] + [str(v) for v in cfg[1:]]
        if compare:
            for what in ("train", "infer"):
                row += [fmt_num(res.get(cfg, "rnnd", what)),
                        fmt_num(res.get(cfg, "torch", what)),
                        fmt_ratio(res.ratio(cfg, what))]
        else:
            row += [fmt_num(res.get(cfg, "rnnd", "train")),
                    fmt_num(res.get(cfg, "rnnd", "infer"))]
        print("| " + " | ".join(row) + " |")


# (label, metric, predicate on cfg, threshold)
TARGETS = (
    ("training at B=32, H <= 256: ratio >= 1.5", "train",
     lambda c: c[4] == 32 and c[1] <= 256, 1.5),
    ("training at B=32, H = 512: ratio >= 1.0", "train",
     lambda c: c[4] == 32 and c[1] == 512, 1.0),
    ("inference at B=1, H <= 256: ratio >= 5", "infer",
     lambda c: c[4] == 1 and c[1] <= 256, 5.0),
)


def print_summary(res):
    """Print PASS/FAIL per target; return True when all targets pass."""
    print("## Targets")
    print()
    all_ok = True
    for label, what, pred, thr in TARGETS:
        cfgs = [c for c in res.order if pred(c)]
        rated = [(res.ratio(c, what), c) for c in cfgs]
        missing = [c for r, c in rated if r is None]
        rated = [(r, c) for r, c in rated if r is not None]
        if not rated:
            all_ok = False
            print("- NO DATA: %s (no configuration with both rnnd and torch results)"
                  % label)
            continue
        worst, wcfg = min(rated)
        ok = worst >= thr
        all_ok = all_ok and ok and not missing
        status = "PASS" if ok else "FAIL"
        extra = ""
        if missing:
            extra = "; %d configuration(s) without both results not checked" % len(missing)
            if ok:
                status = "PASS (incomplete)"
        nfail = sum(1 for r, _ in rated if r < thr)
        fails = "" if ok else ", %d of %d below target" % (nfail, len(rated))
        print("- %s: %s — worst ratio %.2f (%s), %d configuration(s) checked%s%s"
              % (status, label, worst, cfg_name(wcfg), len(rated), fails, extra))
    return all_ok


def main(argv):
    strict = False
    files = []
    for a in argv:
        if a == "--strict":
            strict = True
        elif a in ("-h", "--help"):
            print(__doc__.strip())
            return 0
        else:
            files.append(a)
    if not files:
        files = ["-"]

    res = Results()
    for name in files:
        if name == "-":
            for i, line in enumerate(sys.stdin, 1):
                res.feed(line, "<stdin>:%d" % i)
            continue
        try:
            with open(name, encoding="utf-8", errors="replace") as f:
                for i, line in enumerate(f, 1):
                    res.feed(line, "%s:%d" % (name, i))
        except OSError as e:
            print("report.py: cannot read %s: %s" % (name, e), file=sys.stderr)
            return 2

    for w in res.warnings:
        print("report.py: warning: " + w, file=sys.stderr)

    print("# rnnd vs PyTorch benchmark")
    print()
    if res.info:
        for text in res.info:
            print("- " + "  ".join("%s=%s" % kv if kv[1] else kv[0]
                                   for kv in parse_kv(text)))
        print()
    if not res.order:
        print("No RESULT lines found.")
        for reason in res.skips:
            print("torch benchmark skipped: " + reason)
        return 1 if strict else 0

    have_rnnd, have_torch = res.has("rnnd"), res.has("torch")
    print_table(res, compare=have_torch)
    print()
    if not have_torch:
        why = "; ".join(res.skips) if res.skips else "no torch results in the input"
        print("Comparison with PyTorch skipped (%s); targets not checked." % why)
        return 0
    if not have_rnnd:
        print("No rnnd results in the input; targets not checked.")
        return 1 if strict else 0
    ok = print_summary(res)
    print()
    print("Overall: %s" % ("PASS" if ok else "FAIL"))
    return 0 if (ok or not strict) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
