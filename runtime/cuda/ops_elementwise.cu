/* ops_elementwise.cu — fill, copy with dtype conversion, and every
 * elementwise op of ops_elementwise.c through one generic strided kernel
 * family: one kernel per storage type walks any coalesced, broadcast layout
 * (bk_iter) and switches on the op. The switch is uniform across a launch,
 * so it costs a few instructions per element of a memory-bound loop, and it
 * keeps the plugin to a handful of kernels per type instead of hundreds.
 * Formulas and NaN rules are the CPU's, op for op. */
#include "common.cuh"

/* ---- fill and copy ---------------------------------------------------------- */

template <typename T> __global__ void fill_kernel(bk_iter it, T value) {
  int64_t off[BK_MAX_OPS];
  GRID_STRIDE(i, it.numel) {
    iter_offsets(it, i, off);
    *(T *)(it.data[0] + off[0]) = value;
  }
}

int cuda_fill(int device, const bk_iter *it, uint64_t pattern) {
  STREAM_OR_FAIL(s, device);
  unsigned g = grid_for(device, it->numel);
  switch (it->dtype[0] == FC_BOOL ? 1 : dtype_size(it->dtype[0])) {
  case 1: fill_kernel<uint8_t><<<g, THREADS, 0, s>>>(*it, (uint8_t)pattern); break;
  case 2: fill_kernel<uint16_t><<<g, THREADS, 0, s>>>(*it, (uint16_t)pattern); break;
  case 4: fill_kernel<uint32_t><<<g, THREADS, 0, s>>>(*it, (uint32_t)pattern); break;
  default: fill_kernel<uint64_t><<<g, THREADS, 0, s>>>(*it, pattern); break;
  }
  LAUNCH_CHECK("fill_");
  return 0;
}

/* Same dtype (or bool into uint8): a move of fixed-size elements. */
template <typename T> __global__ void move_kernel(bk_iter it) {
  int64_t off[BK_MAX_OPS];
  GRID_STRIDE(i, it.numel) {
    iter_offsets(it, i, off);
    *(T *)(it.data[0] + off[0]) = *(const T *)(it.data[1] + off[1]);
  }
}

/* Conversions go through double like the CPU's generic path, except int64
 * to float32, which the CPU casts directly (one rounding, not two). */
__global__ void convert_kernel(bk_iter it) {
  int64_t off[BK_MAX_OPS];
  int src = it.dtype[1], dst = it.dtype[0];
  GRID_STRIDE(i, it.numel) {
    iter_offsets(it, i, off);
    const char *p = it.data[1] + off[1];
    char *q = it.data[0] + off[0];
    if (src == FC_INT64 && dst == FC_FLOAT32) *(float *)q = (float)*(const int64_t *)p;
    else store_double(q, dst, load_double(p, src));
  }
}

int cuda_copy(int device, const bk_iter *it) {
  STREAM_OR_FAIL(s, device);
  unsigned g = grid_for(device, it->numel);
  int src = it->dtype[1], dst = it->dtype[0];
  if (src == dst || (src == FC_BOOL && dst == FC_UINT8)) {
    switch (dtype_size(src)) {
    case 1: move_kernel<uint8_t><<<g, THREADS, 0, s>>>(*it); break;
    case 2: move_kernel<uint16_t><<<g, THREADS, 0, s>>>(*it); break;
    case 4: move_kernel<uint32_t><<<g, THREADS, 0, s>>>(*it); break;
    default: move_kernel<uint64_t><<<g, THREADS, 0, s>>>(*it); break;
    }
  } else {
    convert_kernel<<<g, THREADS, 0, s>>>(*it);
  }
  LAUNCH_CHECK("copy_");
  return 0;
}

/* ---- binary ops ---------------------------------------------------------------- */

__device__ __forceinline__ int64_t ipow(int64_t x, int64_t y) {
  if (y < 0) return x == 1 ? 1 : x == -1 ? (y & 1 ? -1 : 1) : 0;
  uint64_t r = 1, b = (uint64_t)x;
  for (; y; y >>= 1, b *= b)
    if (y & 1) r *= b;
  return (int64_t)r;
}

__device__ __forceinline__ float f_exp(float x) { return expf(x); }
__device__ __forceinline__ double f_exp(double x) { return exp(x); }
__device__ __forceinline__ float f_log(float x) { return logf(x); }
__device__ __forceinline__ double f_log(double x) { return log(x); }
__device__ __forceinline__ float f_erf(float x) { return erff(x); }
__device__ __forceinline__ double f_erf(double x) { return erf(x); }

template <typename C> __device__ __forceinline__ C sigmoid(C x) { return (C)1 / ((C)1 + f_exp(-x)); }

/* op(x, y) for arithmetic ops and unary gradients, in compute type C. */
template <typename C> __device__ C arith(int op, C x, C y, double alpha) {
  if constexpr (is_float_v<C>) {
    switch (op) {
    case BK_ADD: return x + y;
    case BK_SUB: return x - y;
    case BK_MUL: return x * y;
    case BK_DIV: return x / y;
    case BK_POW: return pow(x, y);
    case BK_AXPY: return x + (C)alpha * y;
    case BK_MAX: return (x != x || x > y) ? x : y;
    case BK_MIN: return (x != x || x < y) ? x : y;
    case BK_GEXP: return y * x;
    case BK_GLOG: return y / x;
    case BK_GLOG1P: return y / (x + 1);
    case BK_GSQRT: return y / (2 * x);
    case BK_GRSQRT: return (C)-0.5 * y * x * x * x;
    case BK_GSIN: return y * cos(x);
    case BK_GCOS: return -y * sin(x);
    case BK_GTANH: return y * (1 - x * x);
    case BK_GSIGMOID: return y * x * (1 - x);
    case BK_GGELU:
      return y * ((C)0.5 * (1 + f_erf(x * (C)0.70710678118654752440)) +
                  x * (C)0.39894228040143267794 * f_exp((C)-0.5 * x * x));
    case BK_GSILU: { C s = sigmoid(x); return y * (s + x * s * (1 - s)); }
    case BK_GRELU: return x > 0 ? y : 0;
    case BK_GLEAKY: return x > 0 ? y : y * (C)alpha;
    case BK_GABS: return x > 0 ? y : x < 0 ? -y : 0;
    }
  } else { /* integers wrap like the CPU's, through uint64 */
    uint64_t a = (uint64_t)x, b = (uint64_t)y;
    switch (op) {
    case BK_ADD: return (C)(a + b);
    case BK_SUB: return (C)(a - b);
    case BK_MUL: return (C)(a * b);
    case BK_POW: return (C)ipow((int64_t)x, (int64_t)y);
    case BK_AXPY: return (C)(a + (uint64_t)(int64_t)alpha * b);
    case BK_MAX: return x > y ? x : y;
    case BK_MIN: return x < y ? x : y;
    case BK_AND: return (C)((x != 0) & (y != 0));
    case BK_OR: return (C)((x != 0) | (y != 0));
    }
  }
  return 0;
}

__device__ __forceinline__ bool is_compare(int op) { return op >= BK_EQ && op <= BK_GE; }

template <typename C> __device__ __forceinline__ uint8_t compare(int op, C x, C y) {
  switch (op) {
  case BK_EQ: return x == y;
  case BK_NE: return x != y;
  case BK_LT: return x < y;
  case BK_LE: return x <= y;
  case BK_GT: return x > y;
  default: return x >= y;
  }
}

template <typename T> __global__ void binary_kernel(bk_iter it, int op, double alpha) {
  typedef typename compute_of<T>::type C;
  int64_t off[BK_MAX_OPS];
  bool cmp = is_compare(op);
  GRID_STRIDE(i, it.numel) {
    iter_offsets(it, i, off);
    C x = widen(*(const T *)(it.data[1] + off[1])), y = widen(*(const T *)(it.data[2] + off[2]));
    if (cmp) *(uint8_t *)(it.data[0] + off[0]) = compare(op, x, y);
    else *(T *)(it.data[0] + off[0]) = narrow<T>(arith<C>(op, x, y, alpha));
  }
}

/* ---- unary ops ---------------------------------------------------------------------- */

/* x < 0 without a pointless-comparison warning for unsigned types. */
template <typename C> __device__ __forceinline__ bool negative(C x) {
  if constexpr (std::is_signed<C>::value) return x < 0;
  else return false;
}

template <typename C> __device__ C unary(int op, C x, double a0, double a1) {
  if constexpr (is_float_v<C>) {
    switch (op) {
    case BK_EXP: return f_exp(x);
    case BK_LOG: return f_log(x);
    case BK_LOG1P: return log1p(x);
    case BK_SQRT: return sqrt(x);
    case BK_RSQRT: return (C)1 / sqrt(x);
    case BK_SIN: return sin(x);
    case BK_COS: return cos(x);
    case BK_TANH: return tanh(x);
    case BK_SIGMOID: return sigmoid(x);
    case BK_GELU: return (C)0.5 * x * ((C)1 + f_erf(x * (C)0.70710678118654752440));
    case BK_SILU: return x * sigmoid(x);
    case BK_LEAKY: return x > 0 ? x : x * (C)a0;
    case BK_FLOOR: return floor(x);
    case BK_CEIL: return ceil(x);
    case BK_ROUND: return nearbyint(x);
    case BK_NEG: return -x;
    case BK_ABS: return fabs(x);
    case BK_RELU: return x > 0 ? x : (x != x ? x : 0);
    case BK_SIGN: return x != x ? x : (C)((x > 0) - (x < 0));
    case BK_CLAMP: return x < (C)a0 ? (C)a0 : x > (C)a1 ? (C)a1 : x;
    }
  } else {
    switch (op) {
    case BK_FLOOR: case BK_CEIL: case BK_ROUND: return x;
    case BK_NEG: return (C)(0 - (uint64_t)x);
    case BK_ABS: return negative(x) ? (C)(0 - (uint64_t)x) : x;
    case BK_RELU: return x > 0 ? x : 0;
    case BK_SIGN: return (C)((x > 0) - negative(x));
    case BK_CLAMP: return (double)x < a0 ? (C)a0 : (double)x > a1 ? (C)a1 : x;
    }
  }
  return 0;
}

template <typename T> __global__ void unary_kernel(bk_iter it, int op, double a0, double a1) {
  typedef typename compute_of<T>::type C;
  int64_t off[BK_MAX_OPS];
  GRID_STRIDE(i, it.numel) {
    iter_offsets(it, i, off);
    C x = widen(*(const T *)(it.data[1] + off[1]));
    *(T *)(it.data[0] + off[0]) = narrow<T>(unary<C>(op, x, a0, a1));
  }
}

__global__ void not_kernel(bk_iter it) {
  int64_t off[BK_MAX_OPS];
  GRID_STRIDE(i, it.numel) {
    iter_offsets(it, i, off);
    *(uint8_t *)(it.data[0] + off[0]) = load_double(it.data[1] + off[1], it.dtype[1]) == 0;
  }
}

/* out = cond ? a : b, elements moved as raw bits of their size. */
template <typename T> __global__ void where_kernel(bk_iter it) {
  int64_t off[BK_MAX_OPS];
  GRID_STRIDE(i, it.numel) {
    iter_offsets(it, i, off);
    bool c = *(const uint8_t *)(it.data[1] + off[1]) != 0;
    *(T *)(it.data[0] + off[0]) = *(const T *)(it.data[c ? 2 : 3] + off[c ? 2 : 3]);
  }
}

/* ---- dispatch ---------------------------------------------------------------------- */

#define BY_TYPE(dtype, KERNEL, ...)                                            \
  switch (dtype) {                                                             \
  case FC_FLOAT32: KERNEL<float><<<g, THREADS, 0, s>>>(__VA_ARGS__); break;    \
  case FC_FLOAT64: KERNEL<double><<<g, THREADS, 0, s>>>(__VA_ARGS__); break;   \
  case FC_FLOAT16: KERNEL<f16><<<g, THREADS, 0, s>>>(__VA_ARGS__); break;      \
  case FC_BFLOAT16: KERNEL<bf16><<<g, THREADS, 0, s>>>(__VA_ARGS__); break;    \
  case FC_INT64: KERNEL<int64_t><<<g, THREADS, 0, s>>>(__VA_ARGS__); break;    \
  case FC_INT32: KERNEL<int32_t><<<g, THREADS, 0, s>>>(__VA_ARGS__); break;    \
  default: KERNEL<uint8_t><<<g, THREADS, 0, s>>>(__VA_ARGS__); break;          \
  }

static bool float_only(int op) {
  return op == BK_DIV || (op >= BK_GEXP && op <= BK_GABS) ||
         (op >= BK_EXP && op <= BK_LEAKY);
}

int cuda_elementwise(int device, int op, const bk_iter *it, const double *args) {
  if (op < 0 || op >= BK_NUM_OPS) {
    plugin_set_error("elementwise: unknown op code %d", op);
    return -1;
  }
  int dtype = it->dtype[op == BK_WHERE ? 0 : 1];
  if (float_only(op) && dtype != FC_FLOAT32 && dtype != FC_FLOAT64 && dtype != FC_FLOAT16 &&
      dtype != FC_BFLOAT16) {
    plugin_set_error("elementwise: op %d needs a float dtype, got %s", op, dtype_name(dtype));
    return -1;
  }
  STREAM_OR_FAIL(s, device);
  unsigned g = grid_for(device, it->numel);
  double a0 = args ? args[0] : 0, a1 = op == BK_CLAMP && args ? args[1] : 0;
  if (op == BK_WHERE) {
    switch (dtype_size(dtype)) {
    case 1: where_kernel<uint8_t><<<g, THREADS, 0, s>>>(*it); break;
    case 2: where_kernel<uint16_t><<<g, THREADS, 0, s>>>(*it); break;
    case 4: where_kernel<uint32_t><<<g, THREADS, 0, s>>>(*it); break;
    default: where_kernel<uint64_t><<<g, THREADS, 0, s>>>(*it); break;
    }
  } else if (op == BK_NOT) {
    not_kernel<<<g, THREADS, 0, s>>>(*it);
  } else if (op >= BK_FIRST_UNARY) {
    BY_TYPE(dtype, unary_kernel, *it, op, a0, a1)
  } else {
    BY_TYPE(dtype, binary_kernel, *it, op, a0)
  }
  LAUNCH_CHECK("elementwise");
  return 0;
}
