/* common.cuh — what every kernel file of the CUDA plugin shares: the error
 * path back to the core, the current stream, launch shapes, and dtype
 * loads, stores and conversions with the CPU's exact semantics. */
#pragma once
#define FASTC_PLUGIN
#include "backend.h"
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <pthread.h>
#include <stdint.h>
#include <type_traits>

/* plugin.cu */
extern void (*plugin_set_error)(const char *fmt, ...);
/* Makes `device` current for this thread and returns its stream (NULL with
 * the error set if the device cannot be selected). */
cudaStream_t stream_for(int device);
int sm_count(int device);
/* Temporary device memory from the caching allocator, on the device's stream. */
void *scratch_alloc(int device, size_t nbytes);
void scratch_free(int device, void *ptr);

int cuda_check(const char *op, cudaError_t e);
#define CUDA_TRY(op, call) do { if (cuda_check(op, (call)) < 0) return -1; } while (0)
/* After a launch: the launch error, if any, as the op's error. */
#define LAUNCH_CHECK(op) CUDA_TRY(op, cudaGetLastError())
#define STREAM_OR_FAIL(s, device) cudaStream_t s = stream_for(device); if (!s) return -1

/* Grid-stride launches: enough blocks to fill the device, no more. */
enum { THREADS = 256 };
static inline unsigned grid_for(int device, int64_t n, int threads = THREADS) {
  int64_t want = (n + threads - 1) / threads, most = (int64_t)sm_count(device) * 32;
  if (want > most) want = most;
  return (unsigned)(want > 0 ? want : 1);
}
#define GRID_STRIDE(i, n) \
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

/* ---- dtypes ------------------------------------------------------------ */

typedef __half f16;
typedef __nv_bfloat16 bf16;

/* Arithmetic type of a storage type: halves compute in float. */
template <typename T> struct compute_of { typedef T type; };
template <> struct compute_of<f16> { typedef float type; };
template <> struct compute_of<bf16> { typedef float type; };

template <typename T> __device__ __forceinline__ typename compute_of<T>::type widen(T x) { return x; }
template <> __device__ __forceinline__ float widen<f16>(f16 x) { return __half2float(x); }
template <> __device__ __forceinline__ float widen<bf16>(bf16 x) { return __bfloat162float(x); }

template <typename T> __device__ __forceinline__ T narrow(typename compute_of<T>::type x) { return x; }
template <> __device__ __forceinline__ f16 narrow<f16>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ bf16 narrow<bf16>(float x) { return __float2bfloat16_rn(x); }

template <typename T> constexpr bool is_float_v =
    std::is_floating_point<T>::value || std::is_same<T, f16>::value || std::is_same<T, bf16>::value;

/* The plugin links nothing of libfastc, so it keeps its own dtype facts. */
__host__ __device__ __forceinline__ int dtype_size(int d) {
  switch (d) {
  case FC_FLOAT64: case FC_INT64: return 8;
  case FC_FLOAT32: case FC_INT32: return 4;
  case FC_FLOAT16: case FC_BFLOAT16: return 2;
  default: return 1;
  }
}
const char *dtype_name(int d);

/* Element of any dtype as double, and back with the CPU's rules: floats to
 * integers truncate toward zero, clamp to int64 and send NaN to 0, then wrap
 * into narrower integers; bool is "not zero". */
__device__ __forceinline__ double load_double(const char *p, int dtype) {
  switch (dtype) {
  case FC_FLOAT32: return *(const float *)p;
  case FC_FLOAT64: return *(const double *)p;
  case FC_FLOAT16: return __half2float(*(const f16 *)p);
  case FC_BFLOAT16: return __bfloat162float(*(const bf16 *)p);
  case FC_INT64: return (double)*(const int64_t *)p;
  case FC_INT32: return *(const int32_t *)p;
  case FC_UINT8: return *(const uint8_t *)p;
  default: return *(const uint8_t *)p != 0;
  }
}

__device__ __forceinline__ int64_t double_to_i64(double v) {
  if (v != v) return 0;
  if (v >= 9.2233720368547758e18) return INT64_MAX;
  if (v <= -9.2233720368547758e18) return INT64_MIN;
  return (int64_t)v;
}

__device__ __forceinline__ void store_double(char *p, int dtype, double v) {
  switch (dtype) {
  case FC_FLOAT32: *(float *)p = (float)v; break;
  case FC_FLOAT64: *(double *)p = v; break;
  case FC_FLOAT16: *(f16 *)p = __float2half_rn((float)v); break;
  case FC_BFLOAT16: *(bf16 *)p = __float2bfloat16_rn((float)v); break;
  case FC_INT64: *(int64_t *)p = double_to_i64(v); break;
  case FC_INT32: *(int32_t *)p = (int32_t)double_to_i64(v); break;
  case FC_UINT8: *(uint8_t *)p = (uint8_t)double_to_i64(v); break;
  default: *(uint8_t *)p = v != 0; break;
  }
}

/* Byte offsets of element i in each operand of a coalesced walk. */
__device__ __forceinline__ void iter_offsets(const bk_iter &it, int64_t i, int64_t *off) {
  if (it.ndim == 1) {
    for (int k = 0; k < BK_MAX_OPS; k++) off[k] = i * it.stride[k][0];
    return;
  }
  for (int k = 0; k < BK_MAX_OPS; k++) off[k] = 0;
  for (int d = it.ndim - 1; d >= 0; d--) {
    int64_t idx = i % it.shape[d];
    i /= it.shape[d];
    for (int k = 0; k < BK_MAX_OPS; k++) off[k] += idx * it.stride[k][d];
  }
}

/* ---- warp reductions ------------------------------------------------------ */

template <typename A> __device__ __forceinline__ A shfl_down(A v, int delta) {
  return __shfl_down_sync(0xffffffffu, v, delta);
}
template <typename A> __device__ __forceinline__ A warp_sum(A v) {
  for (int d = 16; d > 0; d /= 2) v += shfl_down(v, d);
  return __shfl_sync(0xffffffffu, v, 0);
}
template <typename A> __device__ __forceinline__ A warp_max(A v) {
  for (int d = 16; d > 0; d /= 2) {
    A o = shfl_down(v, d);
    v = (o > v || o != o) ? o : v;
  }
  return __shfl_sync(0xffffffffu, v, 0);
}

/* Kernel entry points, one per file. */
int cuda_fill(int device, const bk_iter *it, uint64_t pattern);
int cuda_copy(int device, const bk_iter *it);
int cuda_elementwise(int device, int op, const bk_iter *it, const double *args);
int cuda_reduce(int device, const bk_reduce *r);
int cuda_gemm(int device, const bk_gemm *g);
int cuda_softmax(int device, const bk_softmax *s);
int cuda_xent_forward(int device, const bk_xent *x);
int cuda_xent_backward(int device, const bk_xent *x);
int cuda_sgd_step(int device, const bk_sgd *s);
int cuda_adam_step(int device, const bk_adam *a);
const char *cublas_version_string(int device);
/* ops_conv.cu (cuDNN) and ops_pool.cu */
int cuda_conv_forward(int device, const bk_conv *c);
int cuda_conv_backward_data(int device, const bk_conv *c);
int cuda_conv_backward_filter(int device, const bk_conv *c);
int cuda_bn_forward(int device, const bk_bn *b);
int cuda_bn_backward(int device, const bk_bn *b);
int cuda_pool_forward(int device, const bk_pool *p);
int cuda_pool_backward(int device, const bk_pool *p);
int cuda_index_walk(int device, const bk_walk *w); /* ops_index.cu */
int cuda_random(int device, const bk_random *r);   /* ops_random.cu */
int cuda_dropout_forward(int device, const bk_dropout *d);
int cuda_dropout_backward(int device, const bk_dropout *d);
int cuda_sort_rows(int device, const bk_sort *s); /* ops_sort.cu */
