#!/bin/sh
# bench/loader.sh — the loader benchmark (fastc against PyTorch's DataLoader);
# writes the image folder once. Usage: sh bench/loader.sh [dir] [reps]
set -e
cd "$(dirname "$0")/.."
[ -x build/fastlua ] || make -s
build/fastlua bench/loader.lua "${1:-/tmp/fastc_bench_imagenette}" "${2:-3}"
