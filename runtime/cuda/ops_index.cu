/* ops_index.cu — the index walks of ops_index.c (backend.h: bk_walk):
 * gather, scatter and scatter_add, which also carry index_select, its
 * backward and embedding. One thread per position of the index's shape.
 *
 * gather and scatter move elements by size, so every dtype is one of four
 * kernels. scatter_add adds with atomics in the tensor's own dtype, as the
 * CPU adds: floats and halves round each add, integers wrap (added as
 * unsigned), bool ors; bytes go through a compare-and-swap on their word.
 * Like PyTorch on CUDA, the order of adds into one place (and which write
 * wins a scatter to one place) is not fixed. */
#include "common.cuh"
#include <string.h>

/* Element offsets of position p in the index, self (before the index value
 * is applied) and other. */
__device__ __forceinline__ void walk_offsets(const bk_walk &w, int64_t p, int64_t *io, int64_t *to, int64_t *oo) {
  *io = *to = *oo = 0;
  for (int k = w.nd - 1; k >= 0; k--) {
    int64_t i = p % w.shape[k];
    p /= w.shape[k];
    *io += i * w.is[k], *to += i * w.ts[k], *oo += i * w.os[k];
  }
}

template <typename U> __device__ __forceinline__ U scalar_bits(uint64_t s) {
  U v;
  memcpy(&v, &s, sizeof v);
  return v;
}

/* gather (other = self) and scatter (self = other), by element size. */
template <typename U> __global__ void move_kernel(bk_walk w, int64_t n) {
  GRID_STRIDE(p, n) {
    int64_t io, to, oo;
    walk_offsets(w, p, &io, &to, &oo);
    U *self = (U *)w.self + to + (w.idx[io] - w.base) * w.td;
    if (w.kind == BK_GATHER) ((U *)w.other)[oo] = *self;
    else *self = w.other ? ((const U *)w.other)[oo] : scalar_bits<U>(w.scalar);
  }
}

/* *p += v (or |= for bool) on one byte, through its aligned 32-bit word. */
__device__ void atomic_byte(uint8_t *p, uint8_t v, bool is_or) {
  unsigned *word = (unsigned *)((uintptr_t)p & ~(uintptr_t)3);
  unsigned shift = (unsigned)((uintptr_t)p & 3) * 8, old = *word, seen;
  do {
    seen = old;
    unsigned b = (seen >> shift) & 0xffu, nb = is_or ? (b | v) != 0 : (b + v) & 0xffu;
    old = atomicCAS(word, seen, (seen & ~(0xffu << shift)) | (nb << shift));
  } while (seen != old);
}

__device__ __forceinline__ void atomic_add_to(float *p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add_to(double *p, double v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add_to(f16 *p, f16 v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add_to(bf16 *p, bf16 v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add_to(int64_t *p, int64_t v) {
  atomicAdd((unsigned long long *)p, (unsigned long long)v);
}
__device__ __forceinline__ void atomic_add_to(int32_t *p, int32_t v) { atomicAdd((unsigned *)p, (unsigned)v); }

template <typename T> __global__ void add_kernel(bk_walk w, int64_t n) {
  GRID_STRIDE(p, n) {
    int64_t io, to, oo;
    walk_offsets(w, p, &io, &to, &oo);
    T *self = (T *)w.self + to + (w.idx[io] - w.base) * w.td;
    T v = w.other ? ((const T *)w.other)[oo] : scalar_bits<T>(w.scalar);
    if constexpr (std::is_same<T, uint8_t>::value) atomic_byte(self, v, w.dtype == FC_BOOL);
    else atomic_add_to(self, v);
  }
}

int cuda_index_walk(int device, const bk_walk *w) {
  int64_t n = 1;
  for (int k = 0; k < w->nd; k++) n *= w->shape[k];
  if (n == 0) return 0;
  STREAM_OR_FAIL(s, device);
  unsigned grid = grid_for(device, n);
  if (w->kind != BK_SCATTER_ADD) {
    switch (dtype_size(w->dtype)) {
    case 1: move_kernel<uint8_t><<<grid, THREADS, 0, s>>>(*w, n); break;
    case 2: move_kernel<uint16_t><<<grid, THREADS, 0, s>>>(*w, n); break;
    case 4: move_kernel<uint32_t><<<grid, THREADS, 0, s>>>(*w, n); break;
    default: move_kernel<uint64_t><<<grid, THREADS, 0, s>>>(*w, n); break;
    }
  } else {
    switch (w->dtype) {
    case FC_FLOAT32: add_kernel<float><<<grid, THREADS, 0, s>>>(*w, n); break;
    case FC_FLOAT64: add_kernel<double><<<grid, THREADS, 0, s>>>(*w, n); break;
    case FC_FLOAT16: add_kernel<f16><<<grid, THREADS, 0, s>>>(*w, n); break;
    case FC_BFLOAT16: add_kernel<bf16><<<grid, THREADS, 0, s>>>(*w, n); break;
    case FC_INT64: add_kernel<int64_t><<<grid, THREADS, 0, s>>>(*w, n); break;
    case FC_INT32: add_kernel<int32_t><<<grid, THREADS, 0, s>>>(*w, n); break;
    default: add_kernel<uint8_t><<<grid, THREADS, 0, s>>>(*w, n); break; /* uint8, bool */
    }
  }
  LAUNCH_CHECK(w->kind == BK_GATHER ? "gather" : w->kind == BK_SCATTER ? "scatter" : "scatter_add");
  return 0;
}
