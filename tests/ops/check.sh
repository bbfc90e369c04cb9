#!/bin/sh
# Operations checks, run by `make test` on a staged `make install`:
#  1. the installed systemd unit passes `systemd-analyze verify` and rates at
#     most 2.0 in `systemd-analyze security` (skipped without systemd-analyze),
#     and its ExecStartPre copies the demo models without overwriting;
#  2. docker/Dockerfile: every shared library the rnnd binary loads comes from
#     a package the runtime stage installs (or one those depend on, or libc6,
#     which the base image has), the build stage installs what `make` needs,
#     and every COPY source exists. There is no Docker engine here, so the
#     image itself is not built.
#  3. tools/rnnd_torch.py both ways against rnnd, where /usr/bin/python3 has
#     torch (skipped otherwise; CI needs no torch).
#  4. deploy/kubernetes/ parses and fits what rnnd needs (check_k8s.py).
# Usage: tests/ops/check.sh RNND STAGE_DIR DEMO_MODELS_DIR
set -eu
rnnd=$1
stage=$(cd "$2" && pwd)
here=$(cd "$(dirname "$0")/../.." && pwd)
fails=0
fail() { echo "ops: FAIL: $*" >&2; fails=$((fails + 1)); }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ------------------------------------------------------------------ systemd
unit=$stage/usr/local/lib/systemd/system/rnnd.service
[ -f "$unit" ] || { echo "ops: no unit at $unit (make install)" >&2; exit 1; }
[ -x "$stage/usr/local/bin/rnnd" ] || fail "make install did not install the binary"
[ -f "$stage/etc/rnnd/rnnd.conf" ] || fail "make install did not install /etc/rnnd/rnnd.conf"
grep -q '^model_dir = /var/lib/rnnd/models$' "$stage/etc/rnnd/rnnd.conf" ||
  fail "the installed rnnd.conf does not point model_dir at /var/lib/rnnd/models"
"$rnnd" serve --config "$stage/etc/rnnd/rnnd.conf" --check-config 2>/dev/null ||
  fail "the installed rnnd.conf does not pass --check-config"
for m in sine chars; do
  [ -f "$stage/usr/local/share/rnnd/models/$m.safetensors" ] || fail "make install did not install the $m demo model"
done

# The unit as installed, with its paths pointed into the stage, so that
# verify finds the binary it names.
sed "s|/usr/local|$stage/usr/local|g" "$unit" > "$tmp/rnnd.service"
if command -v systemd-analyze >/dev/null 2>&1; then
  if systemd-analyze verify "$tmp/rnnd.service" > "$tmp/verify.out" 2>&1 && ! grep -q . "$tmp/verify.out"; then
    echo "ops: systemd-analyze verify: OK"
  else
    cat "$tmp/verify.out" >&2
    fail "systemd-analyze verify reports problems"
  fi
  if systemd-analyze security --offline=true --threshold=20 "$tmp/rnnd.service" > "$tmp/sec.out" 2>&1; then
    echo "ops: systemd-analyze security: $(grep 'Overall exposure' "$tmp/sec.out" | sed 's/.*: //')"
  else
    grep -v '^✓' "$tmp/sec.out" >&2 || true
    fail "systemd-analyze security rates the unit above 2.0"
  fi
else
  echo "ops: SKIP systemd checks: systemd-analyze is not installed (apt-get install systemd)"
fi
# ExecStartPre as systemd runs it ($$ is a literal $): copies the demo models
# into an empty state directory, and keeps a model that is already there.
pre=$(sed -n "s|^ExecStartPre=/bin/sh -c '\(.*\)'\$|\1|p" "$tmp/rnnd.service" | sed 's/\$\$/$/g')
[ -n "$pre" ] || fail "no ExecStartPre=/bin/sh -c '...' line in the unit"
mkdir -p "$tmp/state/models"
echo trained > "$tmp/state/models/sine.safetensors"
STATE_DIRECTORY=$tmp/state sh -c "$pre" || fail "ExecStartPre failed"
cmp -s "$tmp/state/models/chars.safetensors" "$stage/usr/local/share/rnnd/models/chars.safetensors" ||
  fail "ExecStartPre did not copy the chars demo model"
[ "$(cat "$tmp/state/models/sine.safetensors")" = trained ] || fail "ExecStartPre overwrote an existing model"
[ -d "$tmp/state/data" ] || fail "ExecStartPre did not make the data folder (uploads go there)"
grep -q '^UMask=00[02]2$' "$unit" || fail "the unit's UMask leaves trained models unreadable to other users"

# ------------------------------------------------------------------ Docker
df=$here/docker/Dockerfile
nfrom=$(grep -c '^FROM ' "$df")
[ "$nfrom" -ge 2 ] || fail "docker/Dockerfile is not multi-stage"
grep '^FROM ' "$df" | head -1 | grep -q 'debian:bookworm ' || fail "the build stage is not debian:bookworm"
grep '^FROM ' "$df" | tail -1 | grep -q 'debian:bookworm-slim' || fail "the runtime stage is not debian:bookworm-slim"
# the packages `apt-get install` names in a stage (continuation lines joined)
stage_pkgs() {
  awk -v want="$1" '/^FROM /{n++} n==want' "$df" | sed -e ':a' -e '/\\$/N; s/\\\n//; ta' |
    grep 'apt-get install' | sed 's/.*apt-get install//; s/&&.*//' | tr ' ' '\n' | grep -v '^-' | grep . || true
}
runtime=$(stage_pkgs "$nfrom")
build=$(stage_pkgs 1)
[ -n "$runtime" ] || fail "the runtime stage installs no packages"
for p in $(sed -n 's/^pkgs="\([^$]*\)"$/\1/p' "$here/scripts/deps.sh"); do
  echo "$build" | grep -qx "$p" || [ "$p" = gcc ] || fail "the build stage does not install $p (scripts/deps.sh build needs it)"
done
echo "$runtime" | grep -q -- '-dev$' && fail "the runtime stage installs -dev packages"
if ldd "$rnnd" | grep -Eq 'lib(a|ub|t)san\.so'; then
  echo "ops: SKIP the Docker library check: $rnnd is a sanitizer build (the plain build is checked)"
elif command -v apt-cache >/dev/null 2>&1 && command -v dpkg >/dev/null 2>&1; then
  for p in $runtime; do
    apt-cache show "$p" >/dev/null 2>&1 || fail "runtime package $p does not exist"
  done
  # what the runtime packages bring in
  # shellcheck disable=SC2086
  closure=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
              --no-replaces --no-enhances $runtime 2>/dev/null | grep -v '^ ' | sed 's/:.*//' | sort -u)
  owner() {
    for f in "$1" "$(realpath "$1")" "$(echo "$1" | sed 's|^/usr||')" "/usr$1"; do
      o=$(dpkg -S "$f" 2>/dev/null | head -1 | sed 's/:.*//; s/,.*//') && [ -n "$o" ] && { echo "$o"; return; }
    done
  }
  n=0
  before=$fails
  for lib in $(ldd "$rnnd" | awk '/=>/ {print $3}'); do
    o=$(owner "$lib")
    n=$((n + 1))
    if [ -z "$o" ]; then
      fail "no Debian package owns $lib"
    elif [ "$o" = libc6 ] || echo "$runtime" | grep -qx "$o"; then
      :
    elif echo "$closure" | grep -qx "$o"; then
      :
    else
      fail "$lib comes from $o, which the runtime stage does not install"
    fi
  done
  [ "$fails" = "$before" ] &&
    echo "ops: Dockerfile runtime stage provides all $n libraries rnnd loads ($(echo $runtime))"
else
  echo "ops: SKIP the Docker library check: not a Debian system"
fi
for src in $(grep '^COPY ' "$df" | grep -v -- '--from' | awk '{print $2}'); do
  [ -e "$here/$src" ] || fail "Dockerfile: COPY $src: no such file in the project"
done
for d in HEALTHCHECK USER VOLUME ENTRYPOINT; do
  grep -q "^$d " "$df" || fail "Dockerfile has no $d"
done
# the health check asks the port the config gives the daemon, not only RNND_PORT
sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$df" | grep '^HEALTHCHECK' | grep -q -- '"--config", "/etc/rnnd/rnnd.conf"' ||
  fail "the HEALTHCHECK does not read the daemon's config file"
# a drain fits Docker's default 10 s stop timeout (a SIGKILL would cut it)
grep -q "drain_timeout = [1-9]|" "$df" || fail "the image's drain_timeout is not set under Docker's 10 s stop timeout"
# the entrypoint: an empty model folder gets the demo models; one the
# container's user cannot write is refused, naming the fix
ep=$here/docker/entrypoint.sh
mkdir -p "$tmp/ep/state" && chmod 755 "$tmp/ep" "$tmp/ep/state"
RNND_STATE_DIR=$tmp/ep/state RNND_DEMO_DIR=$3 sh "$ep" true 2>/dev/null || fail "the entrypoint failed on an empty folder"
[ -f "$tmp/ep/state/models/sine.safetensors" ] || fail "the entrypoint did not copy the demo models into an empty folder"
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1; then
  mkdir -p "$tmp/ep/root" && chmod 755 "$tmp/ep/root"
  if RNND_STATE_DIR=$tmp/ep/root RNND_DEMO_DIR=$3 setpriv --reuid=10001 --regid=10001 --clear-groups \
       sh "$ep" true 2> "$tmp/ep.err"; then
    fail "the entrypoint ran on a folder its user cannot write"
  fi
  grep -q "not writable by uid 10001" "$tmp/ep.err" || fail "the entrypoint's refusal does not say why: $(cat "$tmp/ep.err")"
else
  echo "ops: SKIP the entrypoint's unwritable-folder check: needs root and setpriv"
fi

# ------------------------------------------------------------------ PyTorch
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  /usr/bin/python3 "$here/tests/ref/check_rnnd_torch.py" "$rnnd" "$3" || fail "tools/rnnd_torch.py round trip"
else
  echo "ops: SKIP tools/rnnd_torch.py check: /usr/bin/python3 has no torch (apt-get install python3-torch)"
fi

# ------------------------------------------------------------------ Kubernetes
python3 "$here/tests/ops/check_k8s.py" "$here/deploy/kubernetes" || fail "deploy/kubernetes"

if [ "$fails" -gt 0 ]; then
  echo "ops: $fails check(s) failed" >&2
  exit 1
fi
echo "ops: all checks passed"
