#!/bin/sh
# Checks the Debian packages the build needs; installs them when it can
# (root with apt-get), otherwise prints the exact command and stops.
PKGS="gcc make pkg-config luajit libluajit-5.1-dev lua-busted libopenblas-openmp-dev libedit-dev zlib1g-dev libcjson-dev libstb-dev libdnnl-dev libturbojpeg0-dev libjpeg62-turbo-dev dataset-fashion-mnist"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "deps: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null && apt-get install -y -q $missing >/dev/null || {
    echo "deps: apt-get install failed for:$missing" >&2; exit 1; }
else
  echo "deps: missing Debian packages. Run:" >&2
  echo "  sudo apt-get install -y$missing" >&2
  exit 1
fi
