#!/bin/sh
# The image's entrypoint, before rnnd serve: the state folders, the demo
# models in a model folder that has none (a new volume or bind mount), and a
# clear message when the folder mounted there is not writable by the user
# the container runs as (a bind mount owned by root, say).
set -eu
state=${RNND_STATE_DIR:-/var/lib/rnnd}
mkdir -p "$state/models" "$state/data" 2>/dev/null || true
for d in "$state/models" "$state/data"; do
  if ! [ -d "$d" ] || ! [ -w "$d" ]; then
    echo "rnnd: $d is not writable by uid $(id -u): give the host folder to that user" \
         "(chown -R $(id -u) DIR) or run the container as its owner (docker run --user \$(stat -c %u DIR))" >&2
    exit 1
  fi
done
if ! ls "$state/models"/*.safetensors >/dev/null 2>&1; then
  cp "${RNND_DEMO_DIR:-/usr/local/share/rnnd/models}"/*.safetensors "$state/models/"
  echo "rnnd: $state/models had no models: copied in the demo models" >&2
fi
exec "$@"
