/* ops_random.cu — Philox 4x32-10 on the device: rand/randn/randint/
 * bernoulli draws and dropout, with random.c's and ops_dropout.c's streams
 * (backend.h: bk_random, bk_dropout).
 *
 * The core reserves the counters exactly as for a CPU draw, so a seed gives
 * the same sequence on either device and draws interleave across devices
 * without disturbing each other. The integer words are bit-identical; the
 * transforms (log, sqrt, sin, cos in Box-Muller) are CUDA's double math,
 * which can differ from the host's libm in the last ulp of a float64. */
#include "common.cuh"

__device__ __forceinline__ void philox(uint64_t seed, uint64_t counter, uint32_t out[4]) {
  uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
#pragma unroll
  for (int r = 0; r < 10; r++) {
    uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
    c0 = n0, c1 = (uint32_t)p1, c2 = n2, c3 = (uint32_t)p0;
    k0 += 0x9E3779B9u, k1 += 0xBB67AE85u;
  }
  out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

/* (0, 1], as random.c's unit_open. */
__device__ __forceinline__ double unit_open(uint32_t hi, uint32_t lo) {
  return ((double)(((uint64_t)hi << 21) ^ lo >> 11) + 1.0) * (1.0 / 9007199254740992.0);
}

/* Element i takes words (0,1) or (2,3) of counter first + i / 2. */
__device__ double draw_one(const bk_random &d, int64_t i) {
  uint32_t w[4];
  philox(d.seed, d.first + (uint64_t)i / 2, w);
  int lane = (int)(i & 1) * 2;
  uint32_t w0 = w[lane], w1 = w[lane + 1];
  switch (d.kind) {
  case BK_UNIFORM: return d.a + (d.b - d.a) * (1.0 - unit_open(w0, w1));
  case BK_BERNOULLI: return (1.0 - unit_open(w0, w1)) < d.a;
  case BK_RANDINT: {
    uint64_t range = (uint64_t)(d.b - d.a), x = ((uint64_t)w0 << 32) | w1;
    return d.a + (double)(x % range);
  }
  default: { /* Box-Muller, the other pair as the angle */
    uint32_t w2 = w[(lane + 2) & 3], w3 = w[(lane + 3) & 3];
    double r = sqrt(-2.0 * log(unit_open(w0, w1))), t = 2 * 3.14159265358979323846 * unit_open(w2, w3);
    return d.a + d.b * ((i & 1) ? r * sin(t) : r * cos(t));
  }
  }
}

__global__ void random_kernel(bk_random d) {
  int es = dtype_size(d.dtype);
  GRID_STRIDE(i, d.n) store_double((char *)d.out + i * es, d.dtype, draw_one(d, i));
}

int cuda_random(int device, const bk_random *r) {
  if (r->n == 0) return 0;
  STREAM_OR_FAIL(s, device);
  random_kernel<<<grid_for(device, r->n), THREADS, 0, s>>>(*r);
  LAUNCH_CHECK("random");
  return 0;
}

/* One thread per mask byte: elements 8j .. 8j + 7 take counters
 * first + 2j and first + 2j + 1, word i % 4 each. */
template <typename T> __global__ void dropout_forward_kernel(bk_dropout d) {
  int64_t bytes = (d.n + 7) / 8;
  T scale = (T)d.scale;
  GRID_STRIDE(j, bytes) {
    uint32_t w[8];
    philox(d.seed, d.first + 2 * (uint64_t)j, w);
    philox(d.seed, d.first + 2 * (uint64_t)j + 1, w + 4);
    unsigned bits = 0;
    for (int k = 0; k < 8 && 8 * j + k < d.n; k++) {
      bool keep = (uint64_t)w[k] < d.threshold;
      bits |= (unsigned)keep << k;
      ((T *)d.y)[8 * j + k] = ((const T *)d.x)[8 * j + k] * (keep ? scale : (T)0);
    }
    d.mask[j] = (uint8_t)bits;
  }
}

template <typename T> __global__ void dropout_backward_kernel(bk_dropout d) {
  T scale = (T)d.scale;
  GRID_STRIDE(i, d.n) {
    bool keep = (d.mask[i >> 3] >> (i & 7)) & 1;
    ((T *)d.gx)[i] = ((const T *)d.g)[i] * (keep ? scale : (T)0);
  }
}

int cuda_dropout_forward(int device, const bk_dropout *d) {
  if (d->n == 0) return 0;
  STREAM_OR_FAIL(s, device);
  unsigned grid = grid_for(device, (d->n + 7) / 8);
  if (d->dtype == FC_FLOAT64) dropout_forward_kernel<double><<<grid, THREADS, 0, s>>>(*d);
  else dropout_forward_kernel<float><<<grid, THREADS, 0, s>>>(*d);
  LAUNCH_CHECK("dropout");
  return 0;
}

int cuda_dropout_backward(int device, const bk_dropout *d) {
  if (d->n == 0) return 0;
  STREAM_OR_FAIL(s, device);
  if (d->dtype == FC_FLOAT64) dropout_backward_kernel<double><<<grid_for(device, d->n), THREADS, 0, s>>>(*d);
  else dropout_backward_kernel<float><<<grid_for(device, d->n), THREADS, 0, s>>>(*d);
  LAUNCH_CHECK("dropout backward");
  return 0;
}
