#!/bin/sh
# Two serving replicas on one host sharing one model_dir, as pods behind a
# load balancer share a volume: a job is submitted to the first, and the
# second serves the version it publishes (docs/http-api.md, "Replicas on
# one volume"). Ports 8091 and 8092 on 127.0.0.1; everything is stopped and
# removed at the end.
# Usage: scripts/cluster-demo.sh RNND DEMO_MODELS_DIR
set -eu
rnnd=$1
demo=$2
work=$(mktemp -d /tmp/rnnd-cluster-XXXXXX)
pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM
mkdir -p "$work/models"
cp "$demo/sine.safetensors" "$work/models/"
for port in 8091 8092; do
  "$rnnd" serve --listen 127.0.0.1 --port $port --model-dir "$work/models" --data-dir "$work" \
    --watch-s 2 2> "$work/serve-$port.log" &
  pids="$pids $!"
done
up() { curl -fsS "http://127.0.0.1:$1/healthz" >/dev/null 2>&1; }
for port in 8091 8092; do
  i=0; until up $port; do i=$((i + 1)); [ $i -lt 100 ] || { cat "$work/serve-$port.log"; exit 1; }; sleep 0.1; done
done
version() { curl -fsS "http://127.0.0.1:$1/models/sine" | sed 's/.*"version":\([0-9]*\).*/\1/'; }
echo "cluster-demo: replicas on :8091 and :8092 share $work/models; both serve sine version $(version 8091) / $(version 8092)"
job=$(curl -fsS -X POST http://127.0.0.1:8091/train -H 'Content-Type: application/json' \
  -d '{"model": "sine", "epochs": 2, "data": {"generator": "sine", "samples": 200, "window": 50}}')
id=$(echo "$job" | sed 's/.*"job":\([0-9]*\).*/\1/')
echo "cluster-demo: job $id submitted to :8091"
i=0
until curl -fsS "http://127.0.0.1:8091/train/$id" | grep -q '"status":"succeeded"'; do
  i=$((i + 1)); [ $i -lt 600 ] || { echo "cluster-demo: the job did not finish" >&2; exit 1; }; sleep 0.1
done
want=$(version 8091)
echo "cluster-demo: :8091 published sine version $want"
t0=$(date +%s.%N)
i=0
until [ "$(version 8092)" = "$want" ]; do
  i=$((i + 1)); [ $i -lt 100 ] || { echo "cluster-demo: :8092 still serves $(version 8092)" >&2; exit 1; }; sleep 0.05
done
echo "cluster-demo: :8092 serves version $want too, $(echo "$(date +%s.%N) - $t0" | bc | sed 's/^\./0./') s later"
seq=$(awk 'BEGIN { for (i = 0; i < 50; i++) printf "%s%.4f", i ? ", " : "", sin(i) }')
echo "cluster-demo: :8092 predicts the value after sin(0) .. sin(49), sin(50) = -0.2624:"
curl -fsS -X POST http://127.0.0.1:8092/predict -H 'Content-Type: application/json' \
  -d "{\"model\": \"sine\", \"sequence\": [$seq]}"
