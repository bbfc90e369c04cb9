#!/usr/bin/env python3
"""Data-parallel training over MPI, measured: `rnnd train` as one process of
one thread, as one process of two threads, and as `mpirun -np 2` of one
thread each, side by side per round (medians of ROUNDS); then the time of one
gradient allreduce against the parameter count, with the ring-allreduce
estimate for more ranks on a network (docs/engine.md, "Processes").

    python3 bench/mpi.py build/rnnd [ROUNDS]
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile

RNND = os.path.abspath(sys.argv[1])
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
MPIRUN = ["mpirun", "--oversubscribe", "-np", "2"] + (["--allow-run-as-root"] if os.getuid() == 0 else [])

# cell, hidden, window T, sequences N (batch 32, 2 epochs, one layer)
CONFIGS = [("gru", 256, 100, 512), ("lstm", 256, 100, 512), ("gru", 512, 50, 256), ("lstm", 512, 50, 256)]


def train(tmp, job, how):
    path = os.path.join(tmp, "job.json")
    with open(path, "w") as f:
        json.dump(job, f)
    cmd = [RNND, "train", "--job", path, "--out", os.path.join(tmp, "m.safetensors"), "--quiet"]
    if how == "mpi":
        cmd = MPIRUN + cmd + ["--threads", "1"]
    else:
        cmd += ["--threads", how]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def job_of(cell, H, T, N, epochs=2):
    return {"cell": cell, "hidden": H, "epochs": epochs, "batch": 32, "shuffle": False,
            "data": {"generator": "sine", "samples": N, "window": T},
            "optimizer": {"name": "adam", "lr": 0.001}}


def main():
    print("OPENBLAS_CORETYPE=%s (rnnd does not use OpenBLAS)" % os.environ.get("OPENBLAS_CORETYPE", "unset"))
    print("\n| config (B = 32) | 1 process, 1 thread (seq/s) | 1 process, 2 threads | 2 ranks x 1 thread | "
          "2 ranks / 1 | allreduce share |")
    print("|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for cell, H, T, N in CONFIGS:
            job = job_of(cell, H, T, N)
            rate = {"1": [], "2": [], "mpi": []}
            share = []
            for _ in range(ROUNDS):
                for how in ("1", "2", "mpi"):
                    s = train(tmp, job, how)
                    rate[how].append(s["sequences"] * s["epochs"] / s["seconds"])
                    if how == "mpi":
                        share.append(s["allreduce_seconds"] / s["seconds"])
            med = {k: statistics.median(v) for k, v in rate.items()}
            print("| %s H=%d T=%d N=%d | %.0f | %.0f (%.2fx) | %.0f | **%.2fx** | %.1f %% |" % (
                cell, H, T, N, med["1"], med["2"], med["2"] / med["1"], med["mpi"],
                med["mpi"] / med["1"], 100 * statistics.median(share)))

        print("\n| parameters | allreduce per step, 2 ranks on one host (us) | GB/s (2 n 4 bytes / t) "
              "| ring estimate, 8 ranks at 25 Gbit/s (ms) | 64 ranks (ms) |")
        print("|---:|---:|---:|---:|---:|")
        for H in (32, 128, 512, 1024, 2048):
            job = job_of("lstm", H, 4, 64 * 32, epochs=1)
            per = []
            for _ in range(ROUNDS):
                s = train(tmp, job, "mpi")
                per.append(s["allreduce_seconds"] / s["steps"])
            t, n = statistics.median(per), s["parameters"]
            # ring allreduce: each rank sends and receives 2 (p-1)/p of the
            # buffer; 25 Gbit/s = 3.125e9 B/s, plus 2 (p-1) latencies of 5 us
            ring = lambda p: (2 * (p - 1) / p * 4 * n / 3.125e9 + 2 * (p - 1) * 5e-6) * 1e3  # noqa: E731
            print("| %d | %.0f | %.1f | %.2f | %.2f |" % (n, t * 1e6, 2 * n * 4 / t / 1e9, ring(8), ring(64)))


main()
