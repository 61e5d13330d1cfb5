/* ops_pool.cu — max, average and adaptive pooling, forward and backward
 * (backend.h: bk_pool), one thread per output element.
 *
 * Not cuDNN: its pooling gives no argmax indices (max_pool2d returns them,
 * and its backward uses them), has no dilation, and sizes outputs without
 * ceil_mode's rule; direct kernels follow ops_pool.c's windows exactly.
 * The backward passes scatter each output's gradient into its window with
 * atomicAdd (windows overlap when stride < kernel), after zeroing gx. */
#include "common.cuh"

/* Output o's window along one axis: inputs lo, lo + step, ... < hi, and
 * the average's divisor along it with count_include_pad (span). */
struct window { int64_t lo, hi, step, span; };

__device__ __forceinline__ window axis_window(const bk_pool &p, bool rows, int64_t o) {
  int64_t in = rows ? p.H : p.W, n = rows ? p.Ho : p.Wo;
  int k = rows ? p.kh : p.kw, s = rows ? p.sh : p.sw, pad = rows ? p.ph : p.pw, d = rows ? p.dh : p.dw;
  window w;
  w.step = 1;
  if (p.kind == BK_ADAPTIVE_MAX_POOL || p.kind == BK_ADAPTIVE_AVG_POOL) {
    w.lo = o * in / n, w.hi = ((o + 1) * in + n - 1) / n, w.span = w.hi - w.lo;
  } else if (p.kind == BK_MAX_POOL) {
    int64_t first = o * s - pad, last = first + (int64_t)(k - 1) * d;
    if (first < 0) first += (-first + d - 1) / d * d; /* the first tap inside the input */
    w.lo = first, w.hi = last + 1 < in ? last + 1 : in, w.step = d, w.span = 0;
  } else {
    int64_t first = o * s - pad, end = first + k;
    if (end > in + pad) end = in + pad;
    w.span = end - first;
    w.lo = first < 0 ? 0 : first, w.hi = end < in ? end : in;
  }
  return w;
}

__device__ __forceinline__ bool is_max_kind(int kind) {
  return kind == BK_MAX_POOL || kind == BK_ADAPTIVE_MAX_POOL;
}

/* The first maximum in row-major order wins; NaN beats everything and the
 * last NaN wins, as on the CPU. */
template <typename T> __global__ void pool_forward_kernel(bk_pool p) {
  GRID_STRIDE(o, p.P * p.Ho * p.Wo) {
    int64_t plane = o / (p.Ho * p.Wo), oh = o / p.Wo % p.Ho, ow = o % p.Wo;
    window wh = axis_window(p, true, oh), ww = axis_window(p, false, ow);
    const T *x = (const T *)p.x + plane * p.H * p.W;
    if (is_max_kind(p.kind)) {
      T best = 0;
      int64_t arg = -1;
      for (int64_t h = wh.lo; h < wh.hi; h += wh.step)
        for (int64_t w = ww.lo; w < ww.hi; w += ww.step) {
          T v = x[h * p.W + w];
          if (arg < 0 || v != v || (best == best && v > best)) best = v, arg = h * p.W + w;
        }
      ((T *)p.y)[o] = best;
      if (p.ix) p.ix[o] = arg + p.base;
    } else {
      T sum = 0;
      for (int64_t h = wh.lo; h < wh.hi; h++)
        for (int64_t w = ww.lo; w < ww.hi; w++) sum += x[h * p.W + w];
      int64_t count = (wh.hi - wh.lo) * (ww.hi - ww.lo);
      int64_t div = p.kind == BK_AVG_POOL && p.count_include_pad ? wh.span * ww.span : count;
      ((T *)p.y)[o] = count > 0 ? sum / (T)div : (T)0;
    }
  }
}

template <typename T> __global__ void pool_backward_kernel(bk_pool p) {
  GRID_STRIDE(o, p.P * p.Ho * p.Wo) {
    int64_t plane = o / (p.Ho * p.Wo), oh = o / p.Wo % p.Ho, ow = o % p.Wo;
    T *gx = (T *)p.gx + plane * p.H * p.W, g = ((const T *)p.gy)[o];
    if (is_max_kind(p.kind)) {
      atomicAdd(gx + (p.gix[o] - p.base), g);
      continue;
    }
    window wh = axis_window(p, true, oh), ww = axis_window(p, false, ow);
    int64_t count = (wh.hi - wh.lo) * (ww.hi - ww.lo);
    int64_t div = p.kind == BK_AVG_POOL && p.count_include_pad ? wh.span * ww.span : count;
    if (count == 0) continue;
    T share = g / (T)div;
    for (int64_t h = wh.lo; h < wh.hi; h++)
      for (int64_t w = ww.lo; w < ww.hi; w++) atomicAdd(gx + h * p.W + w, share);
  }
}

static int check_pool(const bk_pool *p, const char *op) {
  if (p->dtype == FC_FLOAT32 || p->dtype == FC_FLOAT64) return 0;
  plugin_set_error("%s: %s has no CUDA pooling kernel (float32 and float64 do)", op, dtype_name(p->dtype));
  return -1;
}

int cuda_pool_forward(int device, const bk_pool *p) {
  int64_t n = p->P * p->Ho * p->Wo;
  if (check_pool(p, "pool2d") < 0) return -1;
  if (n == 0) return 0;
  STREAM_OR_FAIL(s, device);
  if (p->dtype == FC_FLOAT64) pool_forward_kernel<double><<<grid_for(device, n), THREADS, 0, s>>>(*p);
  else pool_forward_kernel<float><<<grid_for(device, n), THREADS, 0, s>>>(*p);
  LAUNCH_CHECK("pool2d");
  return 0;
}

int cuda_pool_backward(int device, const bk_pool *p) {
  int64_t n = p->P * p->Ho * p->Wo;
  if (check_pool(p, "pool2d backward") < 0) return -1;
  STREAM_OR_FAIL(s, device);
  CUDA_TRY("pool2d backward", cudaMemsetAsync(p->gx, 0, (size_t)(p->P * p->H * p->W) * (size_t)dtype_size(p->dtype), s));
  if (n == 0) return 0;
  if (p->dtype == FC_FLOAT64) pool_backward_kernel<double><<<grid_for(device, n), THREADS, 0, s>>>(*p);
  else pool_backward_kernel<float><<<grid_for(device, n), THREADS, 0, s>>>(*p);
  LAUNCH_CHECK("pool2d backward");
  return 0;
}
