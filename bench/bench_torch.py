#!/usr/bin/python3
"""PyTorch reference benchmark for rnnd.

Times, single threaded, a training step and an inference pass of a one-layer
recurrent network (nn.RNN tanh / nn.LSTM / nn.GRU) for every configuration
cell x H x X x T x B and prints one line per configuration on stdout:

    RESULT impl=torch cell=lstm H=64 X=64 T=50 B=32 train_seq_s=... infer_seq_s=...

preceded by a few "INFO key=value ..." header lines.  Progress goes to stderr.
Feed the output (together with the rnnd benchmark output) to bench/report.py.

Training step: recurrent layer over [T,B,X] (batch_first=False), nn.Linear(H,1)
on every step's output, MSE loss against a random [T,B,1] target, backward,
Adam step (zero_grad every step).
Inference: under torch.inference_mode(), the recurrent layer over [T,B,X] and
the linear head on the last step's output.

Timing: 2 warm-up iterations, then `--reps` measurements, each running the
operation repeatedly until at least `--min-time` seconds have elapsed (at
least one iteration); the median per-iteration time is reported as
throughput in sequences per second (B / seconds per iteration).

Run with /usr/bin/python3.  Prints "SKIP: <reason>" and exits 0 when torch
cannot be imported.
"""

import argparse
import os
import platform
import statistics
import sys
import time

# Single-threaded comparison: keep OpenBLAS / OpenMP / MKL pools at one thread.
# These must be set before torch (and the BLAS it loads) is imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

CELLS = ("rnn", "lstm", "gru")
HIDDEN_FULL = (64, 128, 256, 512)
HIDDEN_QUICK = (64, 256)
SEQ_FULL = (50, 200)
SEQ_QUICK = (50,)
BATCHES = (1, 32)
SEED = 1234
WARMUP = 2


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def parse_filter(text):
    """Parse "cell=lstm,H=64" into {key: set(values)}.

    Repeating a key ORs its values ("cell=lstm,cell=gru"); a value may also
    list alternatives separated by '|' or '/' ("H=64|128").  Different keys
    are ANDed.
    """
    flt = {}
    if not text:
        return flt
    valid = {"cell", "H", "X", "T", "B"}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            raise ValueError("bad filter item %r (expected key=value)" % item)
        key, val = item.split("=", 1)
        key = key.strip()
        if key.lower() == "cell":
            key = "cell"
        elif key.upper() in ("H", "X", "T", "B"):
            key = key.upper()
        if key not in valid:
            raise ValueError("bad filter key %r (use cell, H, X, T, B)" % key)
        for v in val.replace("/", "|").split("|"):
            v = v.strip()
            if v:
                flt.setdefault(key, set()).add(v.lower() if key == "cell" else v)
    return flt


def matches(flt, cfg):
    for key, vals in flt.items():
        if str(cfg[key]) not in vals:
            return False
    return True


def configurations(quick):
    hs = HIDDEN_QUICK if quick else HIDDEN_FULL
    ts = SEQ_QUICK if quick else SEQ_FULL
    for cell in CELLS:
        for h in hs:
            for x in (h, 1):
                for t in ts:
                    for b in BATCHES:
                        yield {"cell": cell, "H": h, "X": x, "T": t, "B": b}


def time_op(fn, reps, min_time):
    """Median seconds per call of fn() over `reps` timed blocks."""
    for _ in range(WARMUP):
        fn()
    per_iter = []
    clock = time.perf_counter
    for _ in range(reps):
        n = 0
        start = clock()
        while True:
            fn()
            n += 1
            elapsed = clock() - start
            if elapsed >= min_time:
                break
        per_iter.append(elapsed / n)
    return statistics.median(per_iter)


def openblas_info():
    """Return (corename, config) of the OpenBLAS torch loaded, if any."""
    try:
        import ctypes
        path = None
        with open("/proc/self/maps") as f:
            for line in f:
                p = line.split()[-1]
                if "openblas" in os.path.basename(p) and ".so" in p:
                    path = p
                    break
        if path is None:
            return None, None
        lib = ctypes.CDLL(path)
        core = cfg = None
        if hasattr(lib, "openblas_get_corename"):
            lib.openblas_get_corename.restype = ctypes.c_char_p
            core = lib.openblas_get_corename().decode()
        if hasattr(lib, "openblas_get_config"):
            lib.openblas_get_config.restype = ctypes.c_char_p
            cfg = lib.openblas_get_config().decode()
        if hasattr(lib, "openblas_set_num_threads"):
            lib.openblas_set_num_threads(1)
        return core, cfg
    except Exception:  # informational only
        return None, None


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="only H in {64,256} and T=50")
    ap.add_argument("--reps", type=int, default=5,
                    help="timed measurements per operation (default 5)")
    ap.add_argument("--min-time", type=float, default=0.05,
                    help="minimum seconds per measurement (default 0.05)")
    ap.add_argument("--filter", default="",
                    help="restrict configurations, e.g. cell=lstm,H=64|128")
    args = ap.parse_args()
    if args.reps < 1:
        ap.error("--reps must be >= 1")
    if args.min_time < 0:
        ap.error("--min-time must be >= 0")
    try:
        flt = parse_filter(args.filter)
    except ValueError as e:
        ap.error(str(e))

    try:
        import torch
        import torch.nn as nn
    except Exception as e:  # ImportError, or a broken install
        print("SKIP: cannot import torch (%s: %s)" % (type(e).__name__, e))
        return 0

    torch.set_num_threads(1)
    torch.backends.cudnn.enabled = False  # CPU only anyway
    device = torch.device("cpu")
    dtype = torch.float32

    core, _ = openblas_info()
    print("INFO impl=torch torch_version=%s torch_threads=%d python=%s"
          % (torch.__version__, torch.get_num_threads(),
             platform.python_version()))
    print("INFO torch_openblas_core=%s OPENBLAS_CORETYPE=%s"
          % (core or "n/a", os.environ.get("OPENBLAS_CORETYPE", "unset")))
    print("INFO cpu=%s" % cpu_model(), flush=True)

    cfgs = [c for c in configurations(args.quick) if matches(flt, c)]
    if not cfgs:
        log("no configuration matches the filter %r" % args.filter)
        return 1

    layer_cls = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
    t_start = time.perf_counter()
    for idx, cfg in enumerate(cfgs, 1):
        cell, H, X, T, B = cfg["cell"], cfg["H"], cfg["X"], cfg["T"], cfg["B"]
        log("[%d/%d] cell=%s H=%d X=%d T=%d B=%d ..."
            % (idx, len(cfgs), cell, H, X, T, B))
        torch.manual_seed(SEED)
        kw = {"nonlinearity": "tanh"} if cell == "rnn" else {}
        rnn = layer_cls[cell](input_size=X, hidden_size=H, num_layers=1,
                              batch_first=False, **kw).to(device, dtype)
        head = nn.Linear(H, 1).to(device, dtype)
        params = list(rnn.parameters()) + list(head.parameters())
        opt = torch.optim.Adam(params, lr=1e-3)
        loss_fn = nn.MSELoss()
        x = torch.randn(T, B, X, device=device, dtype=dtype)
        y = torch.randn(T, B, 1, device=device, dtype=dtype)

        def train_step():
            opt.zero_grad()
            out, _ = rnn(x)            # [T, B, H]
            pred = head(out)           # [T, B, 1], many-to-many
            loss = loss_fn(pred, y)
            loss.backward()
            opt.step()
            return loss

        def infer():
            with torch.inference_mode():
                out, _ = rnn(x)
                return head(out[-1])   # [B, 1]

        rnn.train()
        t_train = time_op(train_step, args.reps, args.min_time)
        rnn.eval()
        t_infer = time_op(infer, args.reps, args.min_time)
        train_sps = B / t_train
        infer_sps = B / t_infer
        print("RESULT impl=torch cell=%s H=%d X=%d T=%d B=%d "
              "train_seq_s=%.1f infer_seq_s=%.1f"
              % (cell, H, X, T, B, train_sps, infer_sps), flush=True)
        log("    train %.3f ms/iter (%.1f seq/s), infer %.3f ms/iter (%.1f seq/s)"
            % (t_train * 1e3, train_sps, t_infer * 1e3, infer_sps))
    log("done: %d configurations in %.1f s"
        % (len(cfgs), time.perf_counter() - t_start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
