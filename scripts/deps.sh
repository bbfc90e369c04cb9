#!/bin/sh
# Installs the Debian packages rnnd needs to build and test, if any is missing.
# As root it runs apt-get; otherwise it prints the command to run and fails.
# For `test` it also tries to install chromium, for the admin page's browser
# test; without it that test fails unless RNND_SKIP_BROWSER=1 asks to skip it.
# Usage: scripts/deps.sh [build|test|bench]
set -eu
what=${1:-test}
pkgs="gcc make pkg-config libcjson-dev libmicrohttpd-dev libdnnl-dev"
case "$what" in
  test)  pkgs="$pkgs check libcurl4-openssl-dev curl libopenmpi-dev openmpi-bin python3-yaml" ;;
  bench) pkgs="$pkgs check libcurl4-openssl-dev wrk python3-torch python3-flask libopenmpi-dev openmpi-bin" ;;
  build) ;;
  *) echo "usage: $0 [build|test|bench]" >&2; exit 2 ;;
esac
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=""
for p in $pkgs; do
  installed "$p" || missing="$missing $p"
done
if [ "$what" = test ] && ! installed chromium; then
  if [ "$(id -u)" = 0 ]; then
    echo "deps: installing chromium (for the admin page's browser test)" >&2
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -q && apt-get install -y -q --no-install-recommends chromium; } >&2 ||
      echo "deps: chromium could not be installed; the browser test will fail (RNND_SKIP_BROWSER=1 skips it)" >&2
  else
    echo "deps: sudo apt-get install chromium for the admin page's browser test (RNND_SKIP_BROWSER=1 skips it)" >&2
  fi
fi
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "deps: installing$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends $missing >&2
else
  echo "deps: missing Debian packages:$missing" >&2
  echo "deps: run: sudo apt-get install$missing" >&2
  exit 1
fi
