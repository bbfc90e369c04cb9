#!/bin/sh
# Makes the built-in demo models in DIR if they are not there: `sine`
# (examples/sine.json: 50 values of sin(x) predict the next) and `chars`
# (examples/chars.json: a character model of examples/corpus.txt, which is the
# project's own docs/engine.md). rnnd trains both, in a few seconds; an
# existing model is never overwritten, so retrained versions survive.
# Usage: scripts/demo-models.sh RNND DIR
set -eu
rnnd=$1
out=$2
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
for name in sine chars; do
  [ -f "$out/$name.safetensors" ] && continue
  echo "demo: training $out/$name.safetensors (examples/$name.json)" >&2
  "$rnnd" train --job "$here/examples/$name.json" --out "$out/$name.safetensors" --quiet >/dev/null
done
