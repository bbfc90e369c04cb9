#!/usr/bin/python3
"""PyTorch side of `make bench`: the same configurations as rnnd and oneDNN.

For every line of bench/configs.txt (cell H X T B N) it times, on one thread:
  - train_ms: one training epoch of the loop a PyTorch user writes: N
    sequences in batches of B, the recurrent layer (nn.RNN tanh / nn.LSTM /
    nn.GRU, batch_first=False), nn.Linear(H, 1) on the last step, MSE,
    backward, Adam step, zero_grad;
  - infer_seq_s / infer1_seq_s: inference (torch.inference_mode) of a batch of
    B, and of one sequence, in sequences per second.
Each figure is the median of --reps timed blocks of at least --min-time
seconds, after two warm-up runs. Output lines:
    RESULT impl=torch cell=lstm H=256 X=1 T=100 B=32 N=512 train_ms=... infer_seq_s=... infer1_seq_s=...
Prints "SKIP: reason" and exits 0 when torch cannot be imported.
"""

import argparse
import os
import statistics
import sys
import time

# One thread, set before torch and the BLAS it loads are imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import read_configs  # noqa: E402  (the one reader of configs.txt)


def median_seconds(fn, reps, min_time):
    for _ in range(2):
        fn()
    per = []
    for _ in range(reps):
        n, start = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            el = time.perf_counter() - start
            if el >= min_time:
                break
        per.append(el / n)
    return statistics.median(per)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default=os.path.join(os.path.dirname(__file__), "configs.txt"))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.2)
    args = ap.parse_args()
    try:
        import torch
        import torch.nn as nn
    except Exception as e:
        print("SKIP: cannot import torch (%s)" % e)
        return 0
    torch.set_num_threads(1)
    print("INFO impl=torch torch_version=%s threads=%d OPENBLAS_CORETYPE=%s"
          % (torch.__version__, torch.get_num_threads(), os.environ.get("OPENBLAS_CORETYPE", "unset")))
    layer = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
    for cell, H, X, T, B, N in read_configs(args.configs):
        print("torch %s H=%d X=%d T=%d B=%d N=%d" % (cell, H, X, T, B, N), file=sys.stderr)
        torch.manual_seed(1)
        rnn = layer[cell](input_size=X, hidden_size=H)
        head = nn.Linear(H, 1)
        opt = torch.optim.Adam(list(rnn.parameters()) + list(head.parameters()), lr=1e-3)
        loss_fn = nn.MSELoss()
        xs = torch.randn(T, N, X)
        ys = torch.randn(N, 1)

        def epoch():
            for s in range(0, N, B):
                opt.zero_grad()
                out, _ = rnn(xs[:, s:s + B])
                loss = loss_fn(head(out[-1]), ys[s:s + B])
                loss.backward()
                opt.step()

        def infer(b):
            x = xs[:, :b].contiguous()

            def run():
                with torch.inference_mode():
                    out, _ = rnn(x)
                    return head(out[-1])
            return run

        t_train = median_seconds(epoch, args.reps, args.min_time)
        t_inf = median_seconds(infer(B), args.reps, args.min_time)
        t_inf1 = median_seconds(infer(1), args.reps, args.min_time)
        print("RESULT impl=torch cell=%s H=%d X=%d T=%d B=%d N=%d train_ms=%.1f "
              "infer_seq_s=%.1f infer1_seq_s=%.1f"
              % (cell, H, X, T, B, N, t_train * 1e3, B / t_inf, 1 / t_inf1), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
