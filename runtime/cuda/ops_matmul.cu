/* ops_matmul.cu — GEMM through cuBLAS for ops_matmul.c's products.
 *
 * The core hands over row-major operands exactly as it would give them to
 * cblas_?gemm(CblasRowMajor, ...). cuBLAS is column-major, and a row-major
 * matrix is the column-major view of its transpose, so c = a b is computed
 * as c^T = b^T a^T: the operands swap places and keep their own transpose
 * flags. float32 uses TF32 tensor cores when allowed (the default, switched
 * by fc_cuda_set_allow_tf32), otherwise full float32 math. */
#include "common.cuh"
#include <cublas_v2.h>
#include <stdio.h>

static cublasHandle_t handles[64];
static pthread_mutex_t handle_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *cublas_error(cublasStatus_t st) {
  switch (st) {
  case CUBLAS_STATUS_NOT_INITIALIZED: return "cuBLAS not initialized";
  case CUBLAS_STATUS_ALLOC_FAILED: return "cuBLAS could not allocate memory";
  case CUBLAS_STATUS_INVALID_VALUE: return "cuBLAS got an invalid value";
  case CUBLAS_STATUS_ARCH_MISMATCH: return "cuBLAS: the GPU lacks a needed feature";
  case CUBLAS_STATUS_EXECUTION_FAILED: return "cuBLAS kernel failed to run";
  case CUBLAS_STATUS_NOT_SUPPORTED: return "cuBLAS: not supported";
  default: return "cuBLAS internal error";
  }
}

#define CUBLAS_TRY(call) do { cublasStatus_t st_ = (call); if (st_ != CUBLAS_STATUS_SUCCESS) { \
  plugin_set_error("matmul: %s (status %d)", cublas_error(st_), (int)st_); return -1; } } while (0)

/* The device's handle, bound to its stream; made on first use. */
static cublasHandle_t handle_for(int device, cudaStream_t s) {
  pthread_mutex_lock(&handle_lock);
  cublasHandle_t h = handles[device];
  if (!h && cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) h = NULL;
  handles[device] = h;
  pthread_mutex_unlock(&handle_lock);
  if (!h) plugin_set_error("matmul: cublasCreate failed on cuda:%d", device);
  else cublasSetStream(h, s);
  return h;
}

const char *cublas_version_string(int device) {
  static char buf[64];
  int major = 0, minor = 0, patch = 0;
  cublasGetProperty(MAJOR_VERSION, &major);
  cublasGetProperty(MINOR_VERSION, &minor);
  cublasGetProperty(PATCH_LEVEL, &patch);
  snprintf(buf, sizeof buf, "cuBLAS %d.%d.%d", major, minor, patch);
  return buf;
}

/* c = beta c (0 when beta is 0, never reading c): the k == 0 product. */
template <typename T> __global__ void scale_kernel(T *c, int64_t m, int64_t n, int64_t ldc, double beta) {
  GRID_STRIDE(i, m * n) {
    T *p = c + (i / n) * ldc + i % n;
    *p = beta == 0 ? (T)0 : (T)beta * *p;
  }
}

int cuda_gemm(int device, const bk_gemm *g) {
  if (g->m == 0 || g->n == 0) return 0;
  STREAM_OR_FAIL(s, device);
  bool f32 = g->dtype == FC_FLOAT32;
  if (!f32 && g->dtype != FC_FLOAT64) {
    plugin_set_error("matmul: %s has no CUDA kernel yet", dtype_name(g->dtype));
    return -1;
  }
  if (g->k == 0) {
    unsigned blocks = grid_for(device, g->m * g->n);
    if (f32) scale_kernel<float><<<blocks, THREADS, 0, s>>>((float *)g->c, g->m, g->n, g->ldc, g->beta);
    else scale_kernel<double><<<blocks, THREADS, 0, s>>>((double *)g->c, g->m, g->n, g->ldc, g->beta);
    LAUNCH_CHECK("matmul");
    return 0;
  }
  cublasHandle_t h = handle_for(device, s);
  if (!h) return -1;
  cublasOperation_t ta = g->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t tb = g->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  int m = (int)g->m, n = (int)g->n, k = (int)g->k;
  if (f32) {
    CUBLAS_TRY(cublasSetMathMode(h, g->allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    float alpha = (float)g->alpha, beta = (float)g->beta;
    CUBLAS_TRY(cublasSgemm(h, tb, ta, n, m, k, &alpha, (const float *)g->b, (int)g->ldb,
                           (const float *)g->a, (int)g->lda, &beta, (float *)g->c, (int)g->ldc));
  } else {
    CUBLAS_TRY(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
    double alpha = g->alpha, beta = g->beta;
    CUBLAS_TRY(cublasDgemm(h, tb, ta, n, m, k, &alpha, (const double *)g->b, (int)g->ldb,
                           (const double *)g->a, (int)g->lda, &beta, (double *)g->c, (int)g->ldc));
  }
  return 0;
}
