/* ops_softmax.cu — softmax and log_softmax (forward and backward) and the
 * fused cross-entropy of backend_ops.c, one warp per row.
 *
 * A row is the C classes of one (outer, inner) position: class c sits at
 * base + c * inner, so for the usual [N, C] layout (inner 1) a warp reads
 * consecutive memory. Each pass over a row is a warp-stride loop finished
 * by a shuffle tree (max, then the sum of exponentials). Math is in the
 * row's own type, float32 or float64, as on the CPU. */
#include "common.cuh"

__device__ __forceinline__ float x_exp(float x) { return expf(x); }
__device__ __forceinline__ double x_exp(double x) { return exp(x); }
__device__ __forceinline__ float x_log(float x) { return logf(x); }
__device__ __forceinline__ double x_log(double x) { return log(x); }

enum { WARPS_PER_BLOCK = THREADS / 32 };

/* This thread's row, or -1; every lane of a warp gets the same answer. */
__device__ __forceinline__ int64_t warp_row(int64_t rows) {
  int64_t r = (int64_t)blockIdx.x * WARPS_PER_BLOCK + threadIdx.x / 32;
  return r < rows ? r : -1;
}

/* max and log-sum-exp of one row: lse = max + log(sum exp(x - max)). */
template <typename T> __device__ T row_lse(const T *x, int64_t C, int64_t cs, int lane) {
  T m = -INFINITY;
  for (int64_t c = lane; c < C; c += 32) {
    T v = x[c * cs];
    m = (v > m || v != v) ? v : m;
  }
  m = warp_max(m);
  T sum = 0;
  for (int64_t c = lane; c < C; c += 32) sum += x_exp(x[c * cs] - m);
  return m + x_log(warp_sum(sum));
}

template <typename T> __global__ void softmax_kernel(bk_softmax p) {
  int64_t row = warp_row(p.outer * p.inner);
  if (row < 0) return;
  int lane = threadIdx.x % 32;
  int64_t base = (row / p.inner) * p.C * p.inner + row % p.inner, cs = p.inner;
  const T *x = (const T *)p.x + base;
  T *out = (T *)p.out + base;
  if (p.g) { /* backward: x holds y, the forward's output */
    const T *g = (const T *)p.g + base;
    T dot = 0;
    for (int64_t c = lane; c < p.C; c += 32) dot += p.log ? g[c * cs] : g[c * cs] * x[c * cs];
    dot = warp_sum(dot);
    for (int64_t c = lane; c < p.C; c += 32) {
      T y = x[c * cs];
      out[c * cs] = p.log ? g[c * cs] - x_exp(y) * dot : y * (g[c * cs] - dot);
    }
    return;
  }
  T lse = row_lse(x, p.C, cs, lane);
  for (int64_t c = lane; c < p.C; c += 32)
    out[c * cs] = p.log ? x[c * cs] - lse : x_exp(x[c * cs] - lse);
}

static unsigned row_blocks(int64_t rows) {
  return (unsigned)((rows + WARPS_PER_BLOCK - 1) / WARPS_PER_BLOCK);
}

int cuda_softmax(int device, const bk_softmax *p) {
  int64_t rows = p->outer * p->inner;
  if (rows == 0 || p->C == 0) return 0;
  STREAM_OR_FAIL(s, device);
  if (p->dtype == FC_FLOAT64) softmax_kernel<double><<<row_blocks(rows), THREADS, 0, s>>>(*p);
  else softmax_kernel<float><<<row_blocks(rows), THREADS, 0, s>>>(*p);
  LAUNCH_CHECK("softmax");
  return 0;
}

/* ---- fused cross-entropy --------------------------------------------------- */

__device__ __forceinline__ bool ignored(const bk_xent &k, int64_t t) {
  return k.ignore != FC_NO_INDEX && t == k.ignore;
}

/* loss = w[t] (lse - x[t]), smoothed toward the mean over classes by eps. */
template <typename T> __global__ void xent_forward_kernel(bk_xent k) {
  int64_t row = warp_row(k.N * k.S);
  if (row < 0) return;
  int lane = threadIdx.x % 32;
  int64_t base = (row / k.S) * k.C * k.S + row % k.S, cs = k.S;
  const T *x = (const T *)k.x + base, *w = (const T *)k.weight;
  T lse = row_lse(x, k.C, cs, lane);
  int64_t t = k.target[row];
  T loss = 0, weight = 0;
  bool skip = ignored(k, t);
  if (!skip && (t < k.base || t >= k.base + k.C)) {
    if (lane == 0) atomicMin(k.bad, (int)(row < INT32_MAX ? row : INT32_MAX - 1));
    skip = true;
  }
  if (!skip) {
    t -= k.base;
    weight = w ? w[t] : (T)1;
    loss = weight * (lse - x[t * cs]);
    if (k.eps > 0) {
      T smooth = 0;
      for (int64_t c = lane; c < k.C; c += 32) smooth += (w ? w[c] : (T)1) * (lse - x[c * cs]);
      smooth = warp_sum(smooth);
      loss = (T)(1 - k.eps) * loss + (T)(k.eps / k.C) * smooth;
    }
  }
  if (lane == 0) {
    ((T *)k.lse)[row] = lse;
    ((T *)k.loss)[row] = loss;
    ((T *)k.row_weight)[row] = weight;
  }
}

/* gx = s (a softmax - (1 - eps) w[t] onehot(t) - eps/C w), a = (1 - eps) w[t] + eps/C sum(w). */
template <typename T> __global__ void xent_backward_kernel(bk_xent k) {
  int64_t row = warp_row(k.N * k.S);
  if (row < 0) return;
  int lane = threadIdx.x % 32;
  int64_t base = (row / k.S) * k.C * k.S + row % k.S, cs = k.S;
  const T *x = (const T *)k.x + base, *w = (const T *)k.weight;
  T *gx = (T *)k.gx + base;
  int64_t t = k.target[row];
  if (ignored(k, t)) {
    for (int64_t c = lane; c < k.C; c += 32) gx[c * cs] = 0;
    return;
  }
  t -= k.base;
  T s = ((const T *)k.g)[row * k.g_stride] * (T)k.g_scale, lse = ((const T *)k.lse)[row];
  T kc = (T)(k.eps / k.C), wt = w ? w[t] : (T)1, a = s * ((T)(1 - k.eps) * wt + kc * (T)k.wsum);
  for (int64_t c = lane; c < k.C; c += 32) {
    T v = a * x_exp(x[c * cs] - lse) - s * kc * (w ? w[c] : (T)1);
    if (c == t) v -= s * (T)(1 - k.eps) * wt;
    gx[c * cs] = v;
  }
}

int cuda_xent_forward(int device, const bk_xent *k) {
  int64_t rows = k->N * k->S;
  if (rows == 0) return 0;
  STREAM_OR_FAIL(s, device);
  if (k->dtype == FC_FLOAT64) xent_forward_kernel<double><<<row_blocks(rows), THREADS, 0, s>>>(*k);
  else xent_forward_kernel<float><<<row_blocks(rows), THREADS, 0, s>>>(*k);
  LAUNCH_CHECK("cross_entropy");
  return 0;
}

int cuda_xent_backward(int device, const bk_xent *k) {
  int64_t rows = k->N * k->S;
  if (rows == 0) return 0;
  STREAM_OR_FAIL(s, device);
  if (k->dtype == FC_FLOAT64) xent_backward_kernel<double><<<row_blocks(rows), THREADS, 0, s>>>(*k);
  else xent_backward_kernel<float><<<row_blocks(rows), THREADS, 0, s>>>(*k);
  LAUNCH_CHECK("cross_entropy backward");
  return 0;
}
