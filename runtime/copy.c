/* copy.c — copying between tensors of any layout and dtype, and fill. */
#include "backend.h"

typedef struct { int src_dtype, dst_dtype; } convert_ctx;

/* Same dtype: a strided move of fixed-size elements. */
#define COPY_KERNEL(name, T)                                                      \
  static void name(char **p, const int64_t *s, int64_t n, void *ctx) {            \
    (void)ctx;                                                                     \
    if (s[0] == sizeof(T) && s[1] == sizeof(T)) {                                  \
      memcpy(p[0], p[1], (size_t)n * sizeof(T));                                  \
    } else {                                                                       \
      for (int64_t i = 0; i < n; i++) AT(p[0], s[0], i, T) = AT(p[1], s[1], i, T); \
    }                                                                              \
  }
COPY_KERNEL(copy1, uint8_t)
COPY_KERNEL(copy2, uint16_t)
COPY_KERNEL(copy4, uint32_t)
COPY_KERNEL(copy8, uint64_t)

/* Widening and float-to-float conversions are exact or well defined in C;
 * the rest go through the clamping double path in runtime.c. */
#define CONVERT_KERNEL(name, S, D)                                                  \
  static void name(char **p, const int64_t *s, int64_t n, void *ctx) {              \
    (void)ctx;                                                                       \
    if (s[0] == sizeof(D) && s[1] == sizeof(S)) {                                    \
      D *o = (D *)p[0];                                                              \
      const S *a = (const S *)p[1];                                                  \
      for (int64_t i = 0; i < n; i++) o[i] = (D)a[i];                                \
    } else {                                                                         \
      for (int64_t i = 0; i < n; i++) AT(p[0], s[0], i, D) = (D)AT(p[1], s[1], i, S); \
    }                                                                                \
  }
CONVERT_KERNEL(f32_to_f64, float, double)
CONVERT_KERNEL(f64_to_f32, double, float)
CONVERT_KERNEL(i64_to_f32, int64_t, float)
CONVERT_KERNEL(i32_to_f32, int32_t, float)
CONVERT_KERNEL(u8_to_f32, uint8_t, float)
CONVERT_KERNEL(i64_to_f64, int64_t, double)
CONVERT_KERNEL(i32_to_i64, int32_t, int64_t)
CONVERT_KERNEL(u8_to_i64, uint8_t, int64_t)

#ifdef __F16C__
#include <immintrin.h>
/* Contiguous float16 runs convert eight at a time in hardware (F16C). */
static int64_t half_run_to_f32(float *o, const uint16_t *a, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(o + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i))));
  return i;
}
static int64_t f32_run_to_half(uint16_t *o, const float *a, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128((__m128i *)(o + i), _mm256_cvtps_ph(_mm256_loadu_ps(a + i), _MM_FROUND_TO_NEAREST_INT));
  return i;
}
#else
static int64_t half_run_to_f32(float *o, const uint16_t *a, int64_t n) { (void)o, (void)a, (void)n; return 0; }
static int64_t f32_run_to_half(uint16_t *o, const float *a, int64_t n) { (void)o, (void)a, (void)n; return 0; }
#endif

/* Contiguous bfloat16 runs: plain loops over the bit patterns that the
 * compiler vectorises (the scalar helpers in runtime.c are calls per element,
 * ~30x slower). Same rounding as float_to_bf16: to nearest even, NaNs quiet. */
static int64_t bf16_run_to_f32(float *o, const uint16_t *a, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    uint32_t bits = (uint32_t)a[i] << 16;
    memcpy(o + i, &bits, 4);
  }
  return n;
}
static int64_t f32_run_to_bf16(uint16_t *o, const float *a, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    uint32_t x;
    memcpy(&x, a + i, 4);
    uint32_t rounded = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
    o[i] = (uint16_t)((x & 0x7fffffffu) > 0x7f800000u ? (x >> 16) | 0x40u : rounded);
  }
  return n;
}

static void half_to_f32(char **p, const int64_t *s, int64_t n, void *ctx) {
  const convert_ctx *c = ctx;
  int64_t i = 0;
  if (c->src_dtype == FC_FLOAT16 && s[0] == 4 && s[1] == 2)
    i = half_run_to_f32((float *)p[0], (const uint16_t *)p[1], n);
  else if (s[0] == 4 && s[1] == 2)
    i = bf16_run_to_f32((float *)p[0], (const uint16_t *)p[1], n);
  for (; i < n; i++) {
    uint16_t h = AT(p[1], s[1], i, uint16_t);
    AT(p[0], s[0], i, float) = c->src_dtype == FC_FLOAT16 ? half_to_float(h) : bf16_to_float(h);
  }
}

static void f32_to_half(char **p, const int64_t *s, int64_t n, void *ctx) {
  const convert_ctx *c = ctx;
  int64_t i = 0;
  if (c->dst_dtype == FC_FLOAT16 && s[0] == 2 && s[1] == 4)
    i = f32_run_to_half((uint16_t *)p[0], (const float *)p[1], n);
  else if (c->dst_dtype == FC_BFLOAT16 && s[0] == 2 && s[1] == 4)
    i = f32_run_to_bf16((uint16_t *)p[0], (const float *)p[1], n);
  for (; i < n; i++) {
    float f = AT(p[1], s[1], i, float);
    AT(p[0], s[0], i, uint16_t) = c->dst_dtype == FC_FLOAT16 ? float_to_half(f) : float_to_bf16(f);
  }
}

static void generic_convert(char **p, const int64_t *s, int64_t n, void *ctx) {
  const convert_ctx *c = ctx;
  for (int64_t i = 0; i < n; i++)
    store_from_double(p[0] + i * s[0], c->dst_dtype, load_as_double(p[1] + i * s[1], c->src_dtype));
}

static iter_kernel pick_kernel(int src, int dst) {
  if (src == dst || (src == FC_BOOL && dst == FC_UINT8)) {
    static const iter_kernel by_size[9] = {0, copy1, copy2, 0, copy4, 0, 0, 0, copy8};
    return by_size[fc_dtype_size(src)];
  }
  if (src == FC_FLOAT32 && dst == FC_FLOAT64) return f32_to_f64;
  if (src == FC_FLOAT64 && dst == FC_FLOAT32) return f64_to_f32;
  if (src == FC_INT64 && dst == FC_FLOAT32) return i64_to_f32;
  if (src == FC_INT32 && dst == FC_FLOAT32) return i32_to_f32;
  if ((src == FC_UINT8 || src == FC_BOOL) && dst == FC_FLOAT32) return u8_to_f32;
  if (src == FC_INT64 && dst == FC_FLOAT64) return i64_to_f64;
  if (src == FC_INT32 && dst == FC_INT64) return i32_to_i64;
  if ((src == FC_UINT8 || src == FC_BOOL) && dst == FC_INT64) return u8_to_i64;
  if (is_half_dtype(src) && dst == FC_FLOAT32) return half_to_f32;
  if (src == FC_FLOAT32 && is_half_dtype(dst)) return f32_to_half;
  return generic_convert;
}

/* Across devices: the source moves to dst's device first, then copies there. */
static int copy_across(fc_tensor *dst, const fc_tensor *src) {
  if (check_inplace("copy_", dst) < 0) return -1;
  int previous = grad_mode_push(false);
  fc_tensor *moved = fc_to_device((fc_tensor *)src, dst->device);
  int rc = moved ? fc_copy_(dst, moved) : -1;
  grad_mode_pop(previous);
  fc_release(moved);
  return rc;
}

int fc_copy_(fc_tensor *dst, const fc_tensor *src) {
  const fc_tensor *pair[2] = {dst, src};
  if (check_defined("copy_", dst, "destination") < 0 || check_defined("copy_", src, "source") < 0)
    return -1;
  if (dst->device.type != src->device.type || dst->device.index != src->device.index)
    return copy_across(dst, src);
  if (check_same_device("copy_", 2, pair) < 0 || check_inplace("copy_", dst) < 0) return -1;
  bool fits = src->ndim <= dst->ndim;
  for (int i = 1; fits && i <= src->ndim; i++) {
    int64_t s = src->shape[src->ndim - i];
    fits = s == 1 || s == dst->shape[dst->ndim - i];
  }
  if (!fits)
    FAIL_INT("copy_: source of shape %s cannot broadcast to destination of shape %s",
             SHAPE(src), SHAPE(dst));
  iter it;
  iter_init(&it, 2, (fc_tensor *const[]){dst, (fc_tensor *)src});
  convert_ctx ctx = {src->dtype, dst->dtype};
  if (dst->device.type == FC_CUDA) {
    if (backend_copy(&it, dst, src) < 0) return -1;
  } else {
    iter_run(&it, pick_kernel(src->dtype, dst->dtype), &ctx);
  }
  bump_version(dst);
  return 0;
}

#define FILL_KERNEL(name, T)                                         \
  static void name(char **p, const int64_t *s, int64_t n, void *ctx) { \
    T v = *(const T *)ctx;                                             \
    if (s[0] == sizeof(T)) {                                           \
      T *o = (T *)p[0];                                                \
      for (int64_t i = 0; i < n; i++) o[i] = v;                        \
    } else {                                                           \
      for (int64_t i = 0; i < n; i++) AT(p[0], s[0], i, T) = v;        \
    }                                                                  \
  }
FILL_KERNEL(fill1, uint8_t)
FILL_KERNEL(fill2, uint16_t)
FILL_KERNEL(fill4, uint32_t)
FILL_KERNEL(fill8, uint64_t)

int fc_fill_(fc_tensor *t, double value) {
  if (check_same_device("fill_", 1, (const fc_tensor *const[]){t}) < 0) return -1;
  if (check_inplace("fill_", t) < 0) return -1;
  uint64_t pattern = 0; /* the element's bytes, replicated by the kernel */
  store_from_double(&pattern, t->dtype, value);
  static const iter_kernel by_size[9] = {0, fill1, fill2, 0, fill4, 0, 0, 0, fill8};
  iter it;
  iter_init(&it, 1, &t);
  if (t->device.type == FC_CUDA) {
    if (backend_fill(&it, t, pattern) < 0) return -1;
    bump_version(t);
    return 0;
  }
  iter_run(&it, by_size[fc_dtype_size(t->dtype)], &pattern);
  bump_version(t);
  return 0;
}

/* clone, contiguous and dtype casts pass the gradient straight through; the
 * engine casts it back to the input's dtype. */
static int identity_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  gi[0] = fc_retain(g);
  return 0;
}

static fc_tensor *record_copy(const char *op, fc_tensor *out, fc_tensor *in) {
  if (out && out != in && is_float_dtype(out->dtype) && grad_needed(1, &in) &&
      !record(op, identity_backward, out, 1, &in)) {
    fc_release(out);
    return NULL;
  }
  return out;
}

/* A copy made inside the runtime (no history). */
static fc_tensor *copy_of(const fc_tensor *t, int dtype) {
  fc_tensor *c = empty_dtype_like(t, dtype);
  int previous = grad_mode_push(false);
  if (c && fc_copy_(c, t) < 0) {
    fc_release(c);
    c = NULL;
  }
  grad_mode_pop(previous);
  return c;
}

fc_tensor *fc_clone(const fc_tensor *t) {
  if (check_same_device("clone", 1, &t) < 0) return NULL;
  return record_copy("clone", copy_of(t, t->dtype), (fc_tensor *)t);
}

fc_tensor *fc_to_dtype(fc_tensor *t, int dtype) {
  if (check_same_device("to_dtype", 1, (const fc_tensor *const[]){t}) < 0) return NULL;
  if (!valid_dtype(dtype)) FAIL("to_dtype: invalid dtype %d", dtype);
  if (t->dtype == dtype) return fc_retain(t);
  return record_copy("to_dtype", copy_of(t, dtype), t);
}

fc_tensor *fc_contiguous(fc_tensor *t) {
  if (check_same_device("contiguous", 1, (const fc_tensor *const[]){t}) < 0) return NULL;
  return fc_is_contiguous(t) ? fc_retain(t) : fc_clone(t);
}

/* The gradient goes back to the device the input came from (iarg 0, 1). */
static int to_device_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  gi[0] = fc_to_device(g, (fc_device){(int32_t)n->iarg[0], (int32_t)n->iarg[1]});
  return gi[0] ? 0 : -1;
}

/* A contiguous copy of t on dev: laid out on t's device, then one transfer. */
fc_tensor *fc_to_device(fc_tensor *t, fc_device dev) {
  if (check_same_device("to_device", 1, (const fc_tensor *const[]){t}) < 0) return NULL;
  if (dev.type == t->device.type && dev.index == t->device.index) return fc_retain(t);
  if (dev.type != FC_CPU && backend_check_device("to_device", dev) < 0) return NULL;
  if (dev.type == FC_CPU && dev.index != 0) FAIL("to_device: there is only one cpu device, cpu:0");
  int previous = grad_mode_push(false);
  fc_tensor *src = fc_contiguous(t);
  grad_mode_pop(previous);
  fc_tensor *out = src ? fc_empty(t->ndim, t->shape, t->dtype, dev) : NULL;
  int rc = out ? backend_transfer(out, src) : -1;
  fc_release(src);
  if (rc < 0) {
    fc_release(out);
    return NULL;
  }
  if (is_float_dtype(t->dtype) && grad_needed(1, &t)) {
    fc_node *n = record("to_device", to_device_backward, out, 1, &t);
    if (!n) {
      fc_release(out);
      return NULL;
    }
    n->iarg[0] = t->device.type, n->iarg[1] = t->device.index;
  }
  return out;
}
