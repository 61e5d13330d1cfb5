/* ops_dropout.c — inverted dropout with a bit-packed mask.
 *
 * Element i is kept when word i % 4 of Philox counter first + i / 4 is below
 * (1 - p) 2^32: a pure function of (seed, counter, i), so any number of
 * threads draws the same mask, and one call advances the global generator
 * by ceil(n / 4) counters. Kept elements are scaled by 1 / (1 - p), dropped
 * ones multiplied by 0 (so NaN stays NaN, as in PyTorch). Backward needs
 * only the mask, kept as one bit per element: n / 8 bytes instead of a
 * float copy of the input. */
#include "backend.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

enum { CHUNK = 64 }; /* elements per parallel step: 64 mask bits, 8 bytes */

typedef struct {
  uint64_t seed, first, threshold; /* keep when word < threshold */
  double scale;
} dropout_draw;

/* Philox 4x32-10 (random.c's generator, key = seed) of the 16 counters
 * ctr .. ctr + 15, written lane by lane so the compiler runs the 16 in
 * vector registers: 4x faster than one counter at a time. */
static void philox16(uint64_t seed, uint64_t ctr, uint32_t c0[16], uint32_t c1[16], uint32_t c2[16],
                     uint32_t c3[16]) {
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  for (int l = 0; l < 16; l++) {
    uint64_t c = ctr + (uint64_t)l;
    c0[l] = (uint32_t)c, c1[l] = (uint32_t)(c >> 32), c2[l] = 0, c3[l] = 0;
  }
  for (int r = 0; r < 10; r++) {
    for (int l = 0; l < 16; l++) {
      uint64_t p0 = (uint64_t)0xD2511F53u * c0[l], p1 = (uint64_t)0xCD9E8D57u * c2[l];
      uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1[l] ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3[l] ^ k1;
      c0[l] = n0, c1[l] = (uint32_t)p1, c2[l] = n2, c3[l] = (uint32_t)p0;
    }
    k0 += 0x9E3779B9u, k1 += 0xBB67AE85u;
  }
}

/* The keep bits of elements i0 .. i0 + 63 (those below n): element
 * i0 + 4l + k takes word k of counter first + i0 / 4 + l. */
static uint64_t chunk_bits(const dropout_draw *d, int64_t i0, int64_t n) {
  uint32_t w[4][16];
  philox16(d->seed, d->first + (uint64_t)i0 / 4, w[0], w[1], w[2], w[3]);
  uint64_t bits = 0;
  for (int l = 0; l < 16; l++)
    for (int k = 0; k < 4; k++) bits |= (uint64_t)((uint64_t)w[k][l] < d->threshold) << (4 * l + k);
  int64_t count = n - i0;
  return count >= CHUNK ? bits : bits & ((UINT64_C(1) << count) - 1);
}

static inline bool mask_bit(const uint8_t *mask, int64_t i) { return (mask[i >> 3] >> (i & 7)) & 1; }

#define DROPOUT_KERNELS(T, SFX)                                                          \
  static void dropout_forward_##SFX(T *y, const T *x, uint8_t *mask, int64_t n,          \
                                    const dropout_draw *d) {                             \
    int64_t chunks = (n + CHUNK - 1) / CHUNK;                                            \
    T scale = (T)d->scale;                                                               \
    _Pragma("omp parallel for if (n > PARALLEL_GRAIN / 8) schedule(static)")             \
    for (int64_t c = 0; c < chunks; c++) {                                               \
      int64_t i0 = c * CHUNK, count = n - i0 < CHUNK ? n - i0 : CHUNK;                   \
      uint64_t bits = chunk_bits(d, i0, n);                                              \
      for (int64_t j = 0; j < (count + 7) / 8; j++) mask[c * 8 + j] = (uint8_t)(bits >> (8 * j)); \
      for (int64_t j = 0; j < count; j++) y[i0 + j] = x[i0 + j] * ((bits >> j) & 1 ? scale : 0); \
    }                                                                                    \
  }                                                                                      \
  static void dropout_backward_##SFX(T *gx, const T *g, const uint8_t *mask, int64_t n,  \
                                     double scale) {                                     \
    T s = (T)scale;                                                                      \
    _Pragma("omp parallel for if (n > PARALLEL_GRAIN) schedule(static)")                 \
    for (int64_t i = 0; i < n; i++) gx[i] = g[i] * (mask_bit(mask, i) ? s : 0);          \
  }

DROPOUT_KERNELS(float, f32)
DROPOUT_KERNELS(double, f64)

/* Saved: [0] the mask. arg[0]: the scale. */
static int dropout_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  int dtype = kernel_dtype(g->dtype);
  fc_tensor *gd = dense_in(g, dtype);
  fc_tensor *gx = gd ? fc_empty(gd->ndim, gd->shape, dtype, gd->device) : NULL;
  const uint8_t *mask = (const uint8_t *)elem_ptr(n->saved[0]);
  if (gx && gx->device.type == FC_CUDA) { /* the same mask bits, read on the device */
    bk_dropout k = {.dtype = dtype, .n = gx->numel, .scale = n->arg[0], .g = elem_ptr(gd), .gx = elem_ptr(gx),
                    .mask = (uint8_t *)mask};
    if (gx->numel && backend_get()->dropout_backward(gx->device.index, &k) < 0) fc_release(gx), gx = NULL;
  } else if (gx && dtype == FC_FLOAT64)
    dropout_backward_f64((double *)elem_ptr(gx), (const double *)elem_ptr(gd), mask, gx->numel, n->arg[0]);
  else if (gx)
    dropout_backward_f32((float *)elem_ptr(gx), (const float *)elem_ptr(gd), mask, gx->numel, n->arg[0]);
  fc_release(gd);
  gi[0] = gx;
  return gx ? 0 : -1;
}

fc_tensor *fc_dropout(fc_tensor *x, double p, int training) {
  const char *op = "dropout";
  if (check_defined(op, x, "input") < 0) return NULL;
  if (check_same_device(op, 1, (const fc_tensor *const[]){x}) < 0) return NULL;
  if (!is_float_dtype(x->dtype)) FAIL("%s: input must be floating point, got %s", op, DTYPE(x));
  if (!(p >= 0 && p <= 1)) FAIL("%s: p must be in [0, 1], got %g", op, p);
  if (!training || p == 0 || x->numel == 0) return fc_retain(x);
  if (p == 1) { /* everything dropped: x * 0, as PyTorch does */
    fc_tensor *zero = fc_scalar(0, x->dtype, x->device);
    fc_tensor *out = zero ? fc_mul(x, zero) : NULL;
    fc_release(zero);
    return out;
  }
  int dtype = kernel_dtype(x->dtype);
  int64_t n = x->numel, nbytes = (n + 7) / 8;
  fc_tensor *xd = dense_in(x, dtype);
  fc_tensor *out = xd ? fc_empty(x->ndim, x->shape, dtype, x->device) : NULL;
  fc_tensor *mask = out ? fc_empty(1, &nbytes, FC_UINT8, x->device) : NULL;
  if (!mask) {
    fc_release(xd), fc_release(out);
    return NULL;
  }
  dropout_draw d = {.threshold = (uint64_t)((1 - p) * 4294967296.0), .scale = 1 / (1 - p)};
  d.first = philox_take((uint64_t)(n + 3) / 4, &d.seed);
  uint8_t *m = (uint8_t *)elem_ptr(mask);
  if (x->device.type == FC_CUDA) {
    bk_dropout k = {.dtype = dtype, .n = n, .seed = d.seed, .first = d.first, .threshold = d.threshold,
                    .scale = d.scale, .x = elem_ptr(xd), .y = elem_ptr(out), .mask = m};
    if (backend_get()->dropout_forward(x->device.index, &k) < 0) {
      fc_release(xd), fc_release(out), fc_release(mask);
      return NULL;
    }
  } else if (dtype == FC_FLOAT64)
    dropout_forward_f64((double *)elem_ptr(out), (const double *)elem_ptr(xd), m, n, &d);
  else
    dropout_forward_f32((float *)elem_ptr(out), (const float *)elem_ptr(xd), m, n, &d);
  fc_release(xd);
  if (dtype != x->dtype) {
    fc_tensor *h = fc_to_dtype(out, x->dtype);
    fc_release(out);
    out = h;
  }
  if (out && grad_needed(1, &x)) {
    fc_node *node = record(op, dropout_backward, out, 1, &x);
    if (!node) {
      fc_release(out), fc_release(mask);
      return NULL;
    }
    node_save(node, mask);
    node->arg[0] = d.scale;
  }
  fc_release(mask);
  return out;
}
