/* ops_reduce.cu — sum, prod, max, min, all, any (and mean) over any set of
 * dims, planned by ops_reduce.c as `outer` outputs each folding `inner`
 * strided inputs (bk_reduce).
 *
 * A group of threads folds one output: a warp when rows are short, a whole
 * block when they are long; lanes stride through the row (the innermost
 * reduced dim has the smallest stride, so a warp reads consecutive memory)
 * and meet in a warp-shuffle tree, then through shared memory across warps.
 * When there are few outputs with very long rows (a full reduction) each row
 * is split across many blocks whose partial results a second pass folds. */
#include "common.cuh"

/* Accumulator per input type: floats in their own precision, integers in
 * wrapping 64 bits, as the CPU's integer sums do. */
template <typename T> struct acc_of { typedef int64_t type; };
template <> struct acc_of<float> { typedef float type; };
template <> struct acc_of<double> { typedef double type; };

template <typename A> __device__ __forceinline__ A fold(int kind, A a, A v) {
  switch (kind) {
  case BK_RSUM: return std::is_integral<A>::value ? (A)((uint64_t)a + (uint64_t)v) : a + v;
  case BK_RPROD: return std::is_integral<A>::value ? (A)((uint64_t)a * (uint64_t)v) : a * v;
  case BK_RMAX: return (v > a || v != v) ? v : a; /* NaN wins and sticks */
  case BK_RMIN: return (v < a || v != v) ? v : a;
  case BK_RALL: return a && v != 0;
  default: return a || v != 0;
  }
}

template <typename A> __device__ __forceinline__ A fold_init(int kind) {
  switch (kind) {
  case BK_RPROD: case BK_RALL: return 1;
  case BK_RMAX: return std::is_integral<A>::value ? (A)INT64_MIN : (A)-INFINITY;
  case BK_RMIN: return std::is_integral<A>::value ? (A)INT64_MAX : (A)INFINITY;
  default: return 0;
  }
}

/* Element offset of position i in a coalesced group of dims. */
__device__ __forceinline__ int64_t group_offset(int n, const int64_t *shape, const int64_t *stride, int64_t i) {
  if (n == 1) return i * stride[0];
  int64_t off = 0;
  for (int d = n - 1; d >= 0; d--) {
    off += (i % shape[d]) * stride[d];
    i /= shape[d];
  }
  return off;
}

/* Folds across the `group` threads that share an output (32 or blockDim). */
template <typename A> __device__ A group_fold(int kind, A v, int group) {
  for (int d = 16; d > 0; d /= 2) v = fold(kind, v, shfl_down(v, d));
  if (group <= 32) return v;
  __shared__ A warps[32];
  int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) warps[warp] = v;
  __syncthreads();
  v = lane < group / 32 ? warps[lane] : fold_init<A>(kind);
  if (warp == 0)
    for (int d = 16; d > 0; d /= 2) v = fold(kind, v, shfl_down(v, d));
  return v;
}

/* Pass over [begin, end) of each row: `splits` blocks per output when the
 * rows are split, writing partial accumulators; otherwise final results. */
template <typename T> __global__ void reduce_kernel(bk_reduce r, int group, int64_t splits,
                                                    typename acc_of<T>::type *partial, double divisor) {
  typedef typename acc_of<T>::type A;
  int per_block = blockDim.x / group, lane = threadIdx.x % group;
  int64_t unit = (int64_t)blockIdx.x * per_block + threadIdx.x / group; /* output x split */
  int64_t o = unit / splits, part = unit % splits;
  int64_t chunk = (r.inner + splits - 1) / splits, begin = part * chunk;
  int64_t end = begin + chunk < r.inner ? begin + chunk : r.inner;
  A a = fold_init<A>(r.kind);
  if (o < r.outer) {
    const T *in = (const T *)r.in + group_offset(r.nk, r.kshape, r.kstride, o);
    for (int64_t j = begin + lane; j < end; j += group)
      a = fold(r.kind, a, (A)in[group_offset(r.nr, r.rshape, r.rstride, j)]);
  }
  a = group_fold(r.kind, a, group);
  if (lane != 0 || o >= r.outer) return;
  if (partial) {
    partial[unit] = a;
    return;
  }
  char *q = r.out + o * (int64_t)dtype_size(r.out_dtype);
  if (std::is_integral<A>::value) { /* exact, like the CPU's integer store */
    int64_t v = (int64_t)a;
    switch (r.out_dtype) {
    case FC_INT64: *(int64_t *)q = v; return;
    case FC_INT32: *(int32_t *)q = (int32_t)v; return;
    case FC_UINT8: *(uint8_t *)q = (uint8_t)v; return;
    case FC_BOOL: *(uint8_t *)q = v != 0; return;
    }
  }
  double v = (double)a;
  if (r.mean) v /= divisor; /* 0/0: the mean of nothing is NaN, as on the CPU */
  store_double(q, r.out_dtype, v);
}

template <typename T> static int launch(int device, cudaStream_t s, const bk_reduce *r) {
  typedef typename acc_of<T>::type A;
  int64_t splits = 1;
  if (r->outer < 2 * sm_count(device) && r->inner >= 65536) {
    splits = r->inner / 16384;
    int64_t most = (int64_t)sm_count(device) * 8 / (r->outer > 0 ? r->outer : 1);
    if (splits > most) splits = most > 1 ? most : 1;
  }
  int group = r->inner >= 2048 || splits > 1 ? THREADS : 32;
  int64_t units = r->outer * splits, per_block = THREADS / group;
  unsigned blocks = (unsigned)((units + per_block - 1) / per_block);
  double divisor = (double)r->inner;
  if (splits == 1) {
    reduce_kernel<T><<<blocks, THREADS, 0, s>>>(*r, group, 1, NULL, divisor);
    LAUNCH_CHECK("reduce");
    return 0;
  }
  A *partial = (A *)scratch_alloc(device, sizeof(A) * (size_t)units);
  if (!partial) return -1;
  reduce_kernel<T><<<blocks, THREADS, 0, s>>>(*r, group, splits, partial, divisor);
  bk_reduce second = *r; /* [outer, splits] partials, folded the same way */
  second.in = (const char *)partial;
  second.nk = 1, second.kshape[0] = r->outer, second.kstride[0] = splits;
  second.nr = 1, second.rshape[0] = splits, second.rstride[0] = 1;
  second.inner = splits;
  int g2 = splits >= 2048 ? THREADS : 32;
  unsigned b2 = (unsigned)((r->outer + THREADS / g2 - 1) / (THREADS / g2));
  reduce_kernel<A><<<b2, THREADS, 0, s>>>(second, g2, 1, NULL, divisor); /* acc_of<A> is A */
  scratch_free(device, partial); /* reused only by later work on this stream */
  LAUNCH_CHECK("reduce");
  return 0;
}

int cuda_reduce(int device, const bk_reduce *r) {
  STREAM_OR_FAIL(s, device);
  switch (r->in_dtype) {
  case FC_FLOAT32: return launch<float>(device, s, r);
  case FC_FLOAT64: return launch<double>(device, s, r);
  case FC_INT64: return launch<int64_t>(device, s, r);
  case FC_INT32: return launch<int32_t>(device, s, r);
  case FC_UINT8: case FC_BOOL: return launch<uint8_t>(device, s, r);
  }
  plugin_set_error("reduce: %s input has no CUDA kernel (halves arrive as float32)",
                   dtype_name(r->in_dtype));
  return -1;
}
