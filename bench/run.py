#!/usr/bin/env python3
"""make bench: rnnd, PyTorch and the bare oneDNN primitives, side by side.

For every configuration of bench/configs.txt it measures, in rounds (every
side once per round, so the machine's noise falls on all sides alike):
  - rnnd train: the whole process (start, JSON job with the data inline,
    dataset, training, save) of `rnnd train --threads 1`, and on 2 threads,
    the median of three runs each round;
  - rnnd loop: one epoch of the training loop in process (bench_engine),
    head, loss and Adam included; inference at batch B and at batch 1;
  - PyTorch: the training loop a PyTorch user writes, inference (1 thread);
  - oneDNN: forward_training + backward of its RNN primitive per batch, and
    forward_inference (bench_dnnl), 1 and 2 threads.
It prints the table of medians over the rounds, the ratios and the targets of
the engine (docs/benchmarks.md), and keeps raw results in build/bench/.

Usage: bench/run.py BENCH_ENGINE BENCH_DNNL RNND [--rounds N] [--quick]
"""

import json
import os
import random
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = "build/bench"
# The job files the whole-process runs read stay below rnnd's 64 MiB limit
# for a job file; larger configurations are timed in process only.
MAX_JOB_VALUES = 2_000_000


def read_configs(path):
    rows = []
    with open(path) as f:
        for line in f:
            words = line.split("#", 1)[0].split()
            if words:
                rows.append((words[0], *map(int, words[1:])))
    return rows


def key(cell, H, X, T, B, N):
    return "%s H=%d X=%d T=%d B=%d N=%d" % (cell, H, X, T, B, N)


def write_job(cfg, path):
    """A job spec with N random sequences inline, as a user would POST it."""
    cell, H, X, T, B, N = cfg
    rng = random.Random(1)
    step = (lambda: round(rng.uniform(-1, 1), 6)) if X == 1 else \
        (lambda: [round(rng.uniform(-1, 1), 6) for _ in range(X)])
    job = {"model": "bench", "task": "regression", "mode": "many_to_one", "cell": cell,
           "hidden": H, "layers": 1, "init": {"seed": 1},
           "data": {"sequences": [[step() for _ in range(T)] for _ in range(N)],
                    "targets": [round(rng.uniform(-1, 1), 6) for _ in range(N)]},
           "validation": 0, "epochs": 1, "batch": B, "shuffle": True,
           "optimizer": {"name": "adam", "lr": 0.001}, "clip": 0, "bptt": 0}
    with open(path, "w") as f:
        json.dump(job, f, separators=(",", ":"))


def results(text, impl):
    """{config key: {field: value}} from RESULT lines of one side."""
    out = {}
    for line in text.splitlines():
        if not line.startswith("RESULT impl=" + impl + " "):
            continue
        kv = dict(re.findall(r"(\w+)=(\S+)", line))
        k = key(kv["cell"], *(int(kv[n]) for n in ("H", "X", "T", "B", "N")))
        out[k] = {n: float(v) for n, v in kv.items() if re.match(r"^[\d.]+$", v)}
    return out


def run(cmd, log):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    with open(log, "a") as f:
        f.write("$ %s\n%s" % (" ".join(cmd), p.stdout))
    if p.returncode != 0:
        sys.exit("bench: %s failed (status %d)" % (cmd[0], p.returncode))
    return p.stdout


def whole_process(rnnd, job, threads, log):
    """Wall seconds of one `rnnd train` and the loop seconds it reports."""
    t0 = time.perf_counter()
    out = run([rnnd, "train", "--job", job, "--out", OUT + "/bench.safetensors", "--quiet",
               "--threads", str(threads)], log)
    wall = time.perf_counter() - t0
    return wall, json.loads(out)["seconds"]


def main():
    args = sys.argv[1:]
    if len(args) < 3:
        sys.exit(__doc__.strip().splitlines()[-1])
    engine, dnnl, rnnd = args[:3]
    rounds = int(args[args.index("--rounds") + 1]) if "--rounds" in args else 5
    quick = "--quick" in args
    configs = read_configs(os.path.join(HERE, "configs.txt"))
    if quick:
        configs = configs[:2]
        rounds = min(rounds, 2)
    os.makedirs(OUT + "/jobs", exist_ok=True)
    cfgfile = OUT + "/configs.txt"
    with open(cfgfile, "w") as f:
        f.writelines(" ".join(map(str, c)) + "\n" for c in configs)
    jobs = {}
    for c in configs:
        if c[5] * c[3] * c[2] <= MAX_JOB_VALUES:
            jobs[key(*c)] = "%s/jobs/%s_h%d_x%d_t%d.json" % (OUT, c[0], c[1], c[2], c[3])
            if not os.path.exists(jobs[key(*c)]):
                write_job(c, jobs[key(*c)])
    log = OUT + "/raw.txt"
    open(log, "w").close()
    env_torch = os.path.exists("/usr/bin/python3") and subprocess.run(
        ["/usr/bin/python3", "-c", "import torch"], capture_output=True).returncode == 0
    big = [c for c in configs if c[1] >= 256]
    cfgfiles = {1: cfgfile, 2: OUT + "/configs-2threads.txt"}
    with open(cfgfiles[2], "w") as f:
        f.writelines(" ".join(map(str, c)) + "\n" for c in big)
    samples = {}  # (side, key, field) -> [values over rounds]

    def add(side, res):
        for k, fields in res.items():
            for n, v in fields.items():
                samples.setdefault((side, k, n), []).append(v)

    for r in range(1, rounds + 1):
        print("bench: round %d of %d" % (r, rounds), file=sys.stderr, flush=True)
        # whole processes first in the round, three of each (their median),
        # so they do not run in the wake of PyTorch's exit
        for c in configs:
            k = key(*c)
            if k not in jobs:
                continue
            for th in (1, 2) if c in big else (1,):
                runs = sorted(whole_process(rnnd, jobs[k], th, log) for _ in range(3))
                wall, loop = runs[1]
                samples.setdefault(("proc%d" % th, k, "wall_ms"), []).append(wall * 1e3)
                samples.setdefault(("proc%d" % th, k, "loop_ms"), []).append(loop * 1e3)
        for th in (1, 2):
            cs = configs if th == 1 else big
            if not cs:
                continue
            add("rnnd%d" % th, results(run([engine, "--reps", "3", "--min-time", "0.1",
                                             "--threads", str(th), "--configs", cfgfiles[th]],
                                            log), "rnnd"))
            add("onednn%d" % th, results(run([dnnl, "--reps", "3", "--min-time", "0.1",
                                              "--threads", str(th)] +
                                             [str(v) for c in cs for v in c], log), "onednn"))
        if env_torch:
            add("torch", results(run(["/usr/bin/python3", os.path.join(HERE, "bench_torch.py"),
                                      "--reps", "3", "--min-time", "0.1", "--configs", cfgfile],
                                     log), "torch"))

    def med(side, k, n):
        v = samples.get((side, k, n))
        return statistics.median(v) if v else None

    print(report(configs, med, rounds, env_torch))


def fmt(v, digits=0):
    return "—" if v is None else ("%.*f" % (digits, v))


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def report(configs, med, rounds, have_torch):
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    lines = ["## Engine: rnnd, PyTorch and oneDNN side by side", "",
             "Medians of %d rounds (each side once per round, each figure itself the median of "
             "3 timed blocks); one thread unless a column says 2; OPENBLAS_CORETYPE=%s; CPU %s."
             % (rounds, os.environ.get("OPENBLAS_CORETYPE", "unset"), cpu), "",
             "Training, one epoch (ms):", "",
             "| config | rnnd train (process) | rnnd loop | PyTorch loop | oneDNN fwd+bwd "
             "| process / PyTorch | loop / oneDNN |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    checks = []  # (target, passed, detail)
    for c in configs:
        k = key(*c)
        proc, loop = med("proc1", k, "wall_ms"), med("rnnd1", k, "train_ms")
        torch, dnn = med("torch", k, "train_ms"), med("onednn1", k, "train_ms")
        speedup = ratio(torch, proc)
        lo = ratio(loop, dnn)
        lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            k, fmt(proc), fmt(loop), fmt(torch), fmt(dnn),
            fmt(speedup, 2) + "x faster" if speedup else "—", fmt(lo, 2)))
        if speedup is not None:
            checks.append(("rnnd train (process) >= 2x PyTorch's loop", speedup >= 2.0,
                           "%s: %.2fx" % (k, speedup)))
        if lo is not None:
            checks.append(("rnnd loop within 1.3x of oneDNN fwd+bwd", lo <= 1.3,
                           "%s: %.2f" % (k, lo)))
    lines += ["", "Inference (sequences/s):", "",
              "| config | rnnd B | oneDNN B | PyTorch B | rnnd / oneDNN | rnnd B=1 | oneDNN B=1 "
              "| PyTorch B=1 |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for c in configs:
        k = key(*c)
        ri, di, ti = (med(s, k, "infer_seq_s") for s in ("rnnd1", "onednn1", "torch"))
        r1, d1, t1 = (med(s, k, "infer1_seq_s") for s in ("rnnd1", "onednn1", "torch"))
        q = ratio(ri, di)
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            k, fmt(ri), fmt(di), fmt(ti), fmt(q, 2), fmt(r1), fmt(d1), fmt(t1)))
        if q is not None:
            checks.append(("batched inference >= oneDNN forward_inference", q >= 1.0,
                           "%s: %.2f" % (k, q)))
    lines += ["", "Two threads, one job (epoch ms; speed-up over one thread):", "",
              "| config | rnnd loop 2 threads | speed-up | rnnd train (process) 2 threads "
              "| speed-up | oneDNN 2 threads | speed-up |", "|---|---:|---:|---:|---:|---:|---:|"]
    for c in configs:
        if c[1] < 256:
            continue
        k = key(*c)
        l2, p2, d2 = med("rnnd2", k, "train_ms"), med("proc2", k, "wall_ms"), med("onednn2", k, "train_ms")
        s_loop = ratio(med("rnnd1", k, "train_ms"), l2)
        s_proc = ratio(med("proc1", k, "wall_ms"), p2)
        s_dnn = ratio(med("onednn1", k, "train_ms"), d2)
        lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            k, fmt(l2), fmt(s_loop, 2), fmt(p2), fmt(s_proc, 2), fmt(d2), fmt(s_dnn, 2)))
        if s_loop is not None:
            checks.append(("one job on 2 threads >= 1.6x one thread (H >= 256)", s_loop >= 1.6,
                           "%s: %.2fx" % (k, s_loop)))
    if not have_torch:
        lines += ["", "SKIP: PyTorch (/usr/bin/python3 with torch) not found; its columns are empty"]
    lines += ["", "Targets:", ""]
    for target in dict.fromkeys(t for t, _, _ in checks):
        rows = [(ok, d) for t, ok, d in checks if t == target]
        bad = [d for ok, d in rows if not ok]
        lines.append("- %s: %s — %s" % ("PASS" if not bad else "FAIL", target,
                                       "; ".join(bad) if bad else "all %d rows" % len(rows)))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
