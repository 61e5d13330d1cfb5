#!/bin/sh
# bench/run.sh — `make bench`: every benchmark, fastc beside PyTorch in one
# run, written to bench/RESULTS.md (and shown).
set -e
BLAS_DIR=/usr/lib/$(cc -print-multiarch)/openblas-openmp
cc -O2 -std=gnu11 -Iruntime bench/sgemm.c build/libfastc.a -L$BLAS_DIR -Wl,-rpath,$BLAS_DIR \
  -lopenblas -ldnnl -lcjson -lz -lm -fopenmp -o build/bench_sgemm
out=bench/RESULTS.md.tmp
{
  echo "# Benchmark results"
  echo
  echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) cores of" \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem/ {print $2}') GiB;" \
    "PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)' 2>/dev/null || echo 'not installed'), 2 threads both sides."
  echo "Command: \`make bench\`."
  echo
  echo "## (a) sgemm, square N: GFLOP/s"
  echo
  build/bench_sgemm
  echo
  echo "## (b)-(d) elementwise, reduction, per-op latency"
  echo
  echo "Times are medians; GB/s counts bytes read + written; speed-up is PyTorch time / fastc time."
  echo
  build/fastlua bench/ops.lua
  echo
  echo "## (e) start-up"
  echo
  echo "| what | fastc | PyTorch | ratio |"
  echo "|---|---|---|---|"
  sh bench/startup.sh
  if [ "${BENCH_TRAIN:-1}" = 1 ]; then
    echo
    echo "## (f) training one epoch of Fashion-MNIST (issue 3)"
    echo
    echo "Adam 1e-3, batch 128, 2 threads, data in memory; PyTorch at its best of default and"
    echo "OMP_WAIT_POLICY=PASSIVE. Command: \`sh bench/train_cpu.sh\` (\`MAX_STEPS=N\` for a quick run)."
    echo
    MAX_STEPS=${MAX_STEPS:-0} sh bench/train_cpu.sh
    echo
    echo "## (g) memory over 20,000 training steps (MLP, no collectgarbage())"
    echo
    echo "Command: \`build/fastlua bench/memory_curve.lua mlp 20000 2000\`."
    echo
    build/fastlua bench/memory_curve.lua mlp 20000 2000
  fi
  echo
  echo "## (h) batch_norm forward + backward (fused C kernels)"
  echo
  echo "Times are medians; \`1 cpu\` counts the CPU time one thread used, steadier on a shared machine."
  echo
  build/fastlua bench/norm.lua 2
  echo
  build/fastlua bench/norm.lua 1 cpu
  echo
  echo "## (i) pooling on [128,64,14,14] (C kernels)"
  echo
  build/fastlua bench/pool.lua 2
  echo
  echo "## (j) conv2d forward + backward per layer, batch 128 (oneDNN)"
  echo
  echo "fastc: \`build/fastlua bench/conv_layers.lua\`; PyTorch: \`/usr/bin/python3 bench/conv_layers.py\`."
  echo
  echo '```'
  build/fastlua bench/conv_layers.lua
  if /usr/bin/python3 -c 'import torch' >/dev/null 2>&1; then /usr/bin/python3 bench/conv_layers.py; fi
  echo '```'
  echo
  echo "## (k) data loader (issue 5): \`sh bench/loader.sh\`"
  echo
  sh bench/loader.sh
  echo
  echo "## (l) xresnet18 training step at 28 px (issue 7): \`build/fastlua bench/xresnet_step.lua\`"
  echo
  echo '```'
  build/fastlua bench/xresnet_step.lua 128
  echo '```'
  echo
  echo "## (m) bf16 autocast training step on the CPU: \`build/fastlua bench/amp.lua 1 25 cpu\`"
  echo
  build/fastlua bench/amp.lua 1 25 cpu
} > $out
mv $out bench/RESULTS.md
cat bench/RESULTS.md
