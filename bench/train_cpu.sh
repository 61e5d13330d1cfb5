#!/bin/sh
# bench/train_cpu.sh — fastc and PyTorch train the same three models for one
# epoch (or MAX_STEPS steps) on Fashion-MNIST; PyTorch runs both with its
# default OpenMP waiting and with OMP_WAIT_POLICY=PASSIVE, and the faster
# counts. Prints a markdown table.
MAX_STEPS=${MAX_STEPS:-0}
echo "| model | fastc samples/s | PyTorch samples/s (best of default, PASSIVE) | throughput ratio | fastc peak RSS | PyTorch peak RSS | RSS ratio | fastc acc | PyTorch acc |"
echo "|---|---|---|---|---|---|---|---|---|"
for m in mlp cnn resnet; do
  set -- $(build/fastlua bench/train_cpu.lua $m $MAX_STEPS)
  f_rate=$1 f_rss=$2 f_acc=$3
  t_rate=0 t_rss=n/a t_acc=n/a
  if /usr/bin/python3 -c 'import torch' >/dev/null 2>&1; then
    for policy in default PASSIVE; do
      if [ $policy = PASSIVE ]; then out=$(OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/train_cpu.py $m $MAX_STEPS)
      else out=$(/usr/bin/python3 bench/train_cpu.py $m $MAX_STEPS); fi
      set -- $out
      if awk -v a="$1" -v b="$t_rate" 'BEGIN { exit !(a > b) }'; then t_rate=$1 t_rss=$2 t_acc=$3; fi
    done
  fi
  awk -v m=$m -v fr=$f_rate -v fm=$f_rss -v fa=$f_acc -v tr=$t_rate -v tm=$t_rss -v ta=$t_acc 'BEGIN {
    printf "| %s | %.0f | %.0f | %.2f | %.0f MB | %s MB | %.2f | %.4f | %s |\n", m, fr, tr, (tr > 0 ? fr / tr : 0), fm, tm, (tm > 0 ? fm / tm : 0), fa, ta }'
done
