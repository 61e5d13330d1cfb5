/* ops_sort.cu — sort and topk (backend.h: bk_sort) by CUB's segmented
 * radix sort, one segment per row.
 *
 * Values become unsigned keys exactly as in ops_sort.c (NaN the largest,
 * -0 as +0, descending as complemented keys), and (key, position) pairs are
 * radix-sorted, which is stable: equal values keep their order, so the GPU
 * returns the CPU's indices. topk takes each row's first k of the full
 * sort. Scratch (keys, positions, CUB's temporary storage) comes from the
 * caching allocator on the device's stream. */
#include "common.cuh"
#include <cub/device/device_segmented_radix_sort.cuh>
#include <limits.h>

__device__ __forceinline__ uint32_t sort_key(float v) {
  if (v != v) return UINT32_MAX;
  if (v == 0) v = 0;
  uint32_t b = __float_as_uint(v);
  return b & 0x80000000u ? ~b : b | 0x80000000u;
}
__device__ __forceinline__ uint64_t sort_key(double v) {
  if (v != v) return UINT64_MAX;
  if (v == 0) v = 0;
  uint64_t b = (uint64_t)__double_as_longlong(v);
  return b >> 63 ? ~b : b | (1ull << 63);
}
__device__ __forceinline__ uint64_t sort_key(int64_t v) { return (uint64_t)v ^ (1ull << 63); }
__device__ __forceinline__ uint32_t sort_key(int32_t v) { return (uint32_t)v ^ 0x80000000u; }
__device__ __forceinline__ uint32_t sort_key(uint8_t v) { return v; }

template <typename T, typename K>
__global__ void make_keys(const T *x, int64_t n, int64_t L, K flip, K *keys, int64_t *pos) {
  GRID_STRIDE(i, n) {
    keys[i] = sort_key(x[i]) ^ flip;
    pos[i] = i % L;
  }
}

__global__ void row_offsets(int *off, int64_t rows, int64_t L) {
  GRID_STRIDE(r, rows + 1) off[r] = (int)(r * L);
}

__global__ void first_k(const int64_t *sorted, int64_t rows, int64_t L, int64_t k, int64_t *idx) {
  GRID_STRIDE(q, rows * k) idx[q] = sorted[(q / k) * L + q % k];
}

/* Scratch blocks given back when the call ends, however it ends. */
struct scratch_set {
  int device;
  void *p[6] = {0};
  int n = 0;
  explicit scratch_set(int d) : device(d) {}
  void *take(size_t bytes) {
    void *q = scratch_alloc(device, bytes ? bytes : 1);
    if (q) p[n++] = q;
    return q;
  }
  ~scratch_set() {
    for (int i = 0; i < n; i++) scratch_free(device, p[i]);
  }
};

template <typename T, typename K> static int sort_typed(int device, const bk_sort *s, int end_bit) {
  STREAM_OR_FAIL(st, device);
  int64_t n = s->rows * s->L;
  scratch_set mem(device);
  K *keys = (K *)mem.take(sizeof(K) * (size_t)n), *keys_out = (K *)mem.take(sizeof(K) * (size_t)n);
  int64_t *pos = (int64_t *)mem.take(sizeof(int64_t) * (size_t)n);
  int64_t *pos_out = (int64_t *)mem.take(sizeof(int64_t) * (size_t)n);
  int *off = (int *)mem.take(sizeof(int) * (size_t)(s->rows + 1));
  if (!keys || !keys_out || !pos || !pos_out || !off) return -1; /* the allocator said why */
  K flip = s->descending ? (K)~(K)0 : (K)0;
  make_keys<T, K><<<grid_for(device, n), THREADS, 0, st>>>((const T *)s->keys, n, s->L, flip, keys, pos);
  row_offsets<<<grid_for(device, s->rows + 1), THREADS, 0, st>>>(off, s->rows, s->L);
  LAUNCH_CHECK("sort");
  size_t temp_bytes = 0;
  CUDA_TRY("sort", cub::DeviceSegmentedRadixSort::SortPairs(NULL, temp_bytes, keys, keys_out, pos, pos_out, (int)n,
                                                            (int)s->rows, off, off + 1, 0, end_bit, st));
  void *temp = mem.take(temp_bytes);
  if (!temp) return -1;
  CUDA_TRY("sort", cub::DeviceSegmentedRadixSort::SortPairs(temp, temp_bytes, keys, keys_out, pos, pos_out, (int)n,
                                                            (int)s->rows, off, off + 1, 0, end_bit, st));
  first_k<<<grid_for(device, s->rows * s->k), THREADS, 0, st>>>(pos_out, s->rows, s->L, s->k, s->idx);
  LAUNCH_CHECK("sort");
  return 0;
}

int cuda_sort_rows(int device, const bk_sort *s) {
  if (s->rows * s->k == 0) return 0;
  if (s->rows * s->L > INT_MAX) {
    plugin_set_error("sort: %lld elements are more than CUB's segmented sort takes (2^31 - 1)",
                     (long long)(s->rows * s->L));
    return -1;
  }
  switch (s->dtype) {
  case FC_FLOAT32: return sort_typed<float, uint32_t>(device, s, 32);
  case FC_FLOAT64: return sort_typed<double, uint64_t>(device, s, 64);
  case FC_INT64: return sort_typed<int64_t, uint64_t>(device, s, 64);
  case FC_INT32: return sort_typed<int32_t, uint32_t>(device, s, 32);
  case FC_UINT8: case FC_BOOL: return sort_typed<uint8_t, uint32_t>(device, s, 8);
  default:
    plugin_set_error("sort: %s has no CUDA sort kernel", dtype_name(s->dtype));
    return -1;
  }
}
