#!/bin/sh
# bench/startup.sh — median wall time of starting fastlua vs importing torch.
median_ms() { # runs "$@" 21 times, prints the median in ms
  for i in $(seq 21); do
    s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N)
    echo $(( (e - s) / 1000 ))
  done | sort -n | sed -n 11p | awk '{ printf "%.1f", $1 / 1000 }'
}
bare=$(median_ms build/fastlua -e '')
with=$(median_ms build/fastlua -e "require 'fastc'")
if /usr/bin/python3 -c 'import torch' >/dev/null 2>&1; then
  torch=$(median_ms /usr/bin/python3 -c 'import torch')
  ratio=$(awk -v a="$torch" -v b="$with" 'BEGIN { printf "%.0f", a / b }')
else
  torch=n/a; ratio=n/a
fi
echo "| start-up | fastlua -e '': $bare ms; with require 'fastc': $with ms | python3 -c 'import torch': $torch ms | ${ratio}× faster |"
