#!/bin/sh
# make bench: rnnd's engine and PyTorch on the same shapes, one after the
# other in one run, then the table of ratios. Extra arguments (e.g. --quick,
# --reps 7) go to both sides. Results are kept in build/bench/.
set -eu
bin=$1; shift
out=build/bench
mkdir -p "$out"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
{
  echo "INFO OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset(auto-detected)}"
  echo "INFO cpu=\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')\""
  "$bin" "$@"
} > "$out/rnnd.txt"
if [ -x /usr/bin/python3 ]; then
  /usr/bin/python3 bench/bench_torch.py "$@" > "$out/torch.txt" || echo "SKIP: bench_torch.py failed" > "$out/torch.txt"
else
  echo "SKIP: /usr/bin/python3 not found" > "$out/torch.txt"
fi
python3 bench/report.py "$out/rnnd.txt" "$out/torch.txt" | tee "$out/report.md"
