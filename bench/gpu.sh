#!/bin/sh
# bench/gpu.sh — fastc on a CUDA GPU against cuBLAS called directly and
# PyTorch eager on the same device, in one run (make bench-gpu):
#   GEMM TFLOP/s (N = 8192): fastc matmul, cuBLAS direct, torch.mm;
#   training samples/s: bench/models.lua's resnet (1x28x28) and a
#   ResNet-18-shaped model at 128 px, batch 256, float32 (TF32 on).
# bfloat16 GEMM is measured for cuBLAS and PyTorch; fastc has no bf16
# matmul on the GPU yet, so its column says n/a. Needs build/libfastc_cuda.so,
# a GPU and PyTorch with CUDA; without them it says which is missing and
# exits 2. BENCH_GPU_STEPS, BENCH_GPU_BATCH, BENCH_GPU_PX, BENCH_GPU_N
# shrink the run (smoke tests).
set -u
FASTLUA=${FASTLUA:-build/fastlua}
PY=${PYTHON:-/usr/bin/python3}
N=${BENCH_GPU_N:-8192}
STEPS=${BENCH_GPU_STEPS:-20}
BATCH=${BENCH_GPU_BATCH:-256}
PX=${BENCH_GPU_PX:-128}

fail() { echo "bench/gpu.sh: $*" >&2; exit 2; }
[ -x "$FASTLUA" ] || fail "$FASTLUA not built (run make)"
why=$($FASTLUA -e 'local fc = require "fastc"; if not fc.cuda.is_available() then print(fc.cuda.why_unavailable()) end' 2>&1) ||
  fail "fastlua failed: $why"
[ -z "$why" ] || fail "fastc cannot use a GPU: $why"
$PY -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null ||
  fail "PyTorch with CUDA is not available to $PY (torch.cuda.is_available() is false or torch is missing)"

CUBLAS=build/bench_gemm_cublas
if [ ! -x $CUBLAS ] && command -v nvcc >/dev/null 2>&1; then
  nvcc -O2 -std=c++17 -o $CUBLAS bench/gemm_cublas.cu -lcublas || echo "bench/gpu.sh: could not build $CUBLAS" >&2
fi
cublas() { if [ -x $CUBLAS ]; then $CUBLAS "$@"; else echo 0; fi; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a > 0) printf "%.2f", a / b; else printf "n/a" }'; }

echo "device: $($FASTLUA -e 'print(require("fastc").cuda.info())')"
echo "torch: $($PY -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())')"
echo
echo "| GEMM N=$N | fastc TFLOP/s | cuBLAS direct | torch.mm | fastc / cuBLAS | fastc / torch |"
echo "|---|---|---|---|---|---|"
for dt in float32 bfloat16; do
  if [ $dt = float32 ]; then f=$($FASTLUA bench/gpu_train.lua gemm $N $dt); else f=n/a; fi
  c=$(cublas $N $dt)
  t=$($PY bench/gpu_train.py gemm $N $dt)
  echo "| $dt | $f | $c | $t | $(ratio "$f" "$c") | $(ratio "$f" "$t") |"
done
echo
echo "| training, float32, batch $BATCH | fastc samples/s | PyTorch eager samples/s | fastc / PyTorch |"
echo "|---|---|---|---|"
for m in resnet resnet18; do
  f=$($FASTLUA bench/gpu_train.lua $m $BATCH $PX $STEPS)
  t=$($PY bench/gpu_train.py $m $BATCH $PX $STEPS)
  label=$m; [ $m = resnet18 ] && label="resnet18 (${PX} px)"
  echo "| $label | $f | $t | $(ratio "$f" "$t") |"
done
