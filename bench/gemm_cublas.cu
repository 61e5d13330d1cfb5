// bench/gemm_cublas.cu — the GEMM ceiling for bench/gpu.sh: cuBLAS called
// directly on an N x N product, float32 (TF32 tensor cores, as fastc's
// default) or bfloat16 (float32 accumulation). Prints TFLOP/s.
//   nvcc -O2 -o build/bench_gemm_cublas bench/gemm_cublas.cu -lcublas
//   build/bench_gemm_cublas N float32|bfloat16
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRY(call, what) do { if ((call) != 0) { fprintf(stderr, "gemm_cublas: %s failed\n", what); return 2; } } while (0)

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 8192;
  bool bf16 = argc > 2 && strcmp(argv[2], "bfloat16") == 0;
  size_t es = bf16 ? 2 : 4, bytes = (size_t)n * n * es;
  void *a, *b, *c;
  TRY(cudaMalloc(&a, bytes), "cudaMalloc");
  TRY(cudaMalloc(&b, bytes), "cudaMalloc");
  TRY(cudaMalloc(&c, bytes), "cudaMalloc");
  cudaMemset(a, 0x3c, bytes), cudaMemset(b, 0x3c, bytes); /* finite values; the timing ignores them */
  cublasHandle_t h;
  TRY(cublasCreate(&h), "cublasCreate");
  cudaDataType_t t = bf16 ? CUDA_R_16BF : CUDA_R_32F;
  cublasComputeType_t ct = bf16 ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_32F_FAST_TF32;
  float alpha = 1, beta = 0;
  auto run = [&]() {
    return cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a, t, n, b, t, n, &beta, c, t, n, ct,
                        CUBLAS_GEMM_DEFAULT);
  };
  for (int i = 0; i < 3; i++) TRY(run(), "cublasGemmEx");
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0), cudaEventCreate(&e1);
  int iters = 20;
  cudaEventRecord(e0);
  for (int i = 0; i < iters; i++) run();
  cudaEventRecord(e1);
  TRY(cudaEventSynchronize(e1), "cudaEventSynchronize");
  float ms = 0;
  cudaEventElapsedTime(&ms, e0, e1);
  printf("%.2f\n", 2.0 * n * n * (double)n * iters / (ms / 1e3) / 1e12);
  return 0;
}
