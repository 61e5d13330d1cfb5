/* runtime.c — errors, threads, dtype facts and the checks every op shares. */
#include "backend.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static _Thread_local char last_error[1024];

const char *fc_last_error(void) { return last_error; }

void fc_set_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_error, sizeof last_error, fmt, ap);
  va_end(ap);
}

const char *fc_version(void) { return "0.1.0"; }

/* ---- threads ---------------------------------------------------------- */

static int thread_count;

/* FASTC_NUM_THREADS wins; otherwise OpenMP's default (the core count). */
__attribute__((constructor)) static void init_threads(void) {
  const char *env = getenv("FASTC_NUM_THREADS");
  int n = env ? atoi(env) : 0;
#ifdef _OPENMP
  if (n <= 0) n = omp_get_max_threads();
  omp_set_num_threads(n);
#else
  if (n <= 0) n = 1;
#endif
  thread_count = n;
}

void fc_set_num_threads(int n) {
  if (n < 1) n = 1;
  thread_count = n;
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
}

int fc_get_num_threads(void) { return thread_count; }
int num_threads(void) { return thread_count; }

/* ---- dtypes ----------------------------------------------------------- */

static const char *const dtype_names[FC_NUM_DTYPES] = {
    "float32", "float64", "float16", "bfloat16", "int64", "int32", "uint8", "bool"};
static const int dtype_sizes[FC_NUM_DTYPES] = {4, 8, 2, 2, 8, 4, 1, 1};

const char *fc_dtype_name(int d) { return valid_dtype(d) ? dtype_names[d] : "invalid"; }
int fc_dtype_size(int d) { return valid_dtype(d) ? dtype_sizes[d] : 0; }
int fc_dtype_is_float(int d) { return is_float_dtype(d); }

float half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000 | (man << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  } else if (man == 0) {
    bits = sign;
  } else { /* subnormal: renormalise */
    int e = -1;
    do { man <<= 1; e++; } while (!(man & 0x400));
    bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

/* Round to nearest even, with overflow to inf and gradual underflow. */
uint16_t float_to_half(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  uint32_t absx = x & 0x7fffffff;
  if (absx >= 0x7f800000) return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000 ? 0x200 : 0));
  if (absx >= 0x477ff000) return (uint16_t)(sign | 0x7c00); /* rounds past 65504 */
  if (absx < 0x38800000) {                                  /* subnormal or zero */
    float a;
    memcpy(&a, &absx, 4);
    return (uint16_t)(sign | (uint32_t)lrintf(a * 16777216.0f));
  }
  uint32_t mant_odd = (absx >> 13) & 1;
  absx += 0xc8000fff + mant_odd; /* rebias exponent and round */
  return (uint16_t)(sign | (absx >> 13));
}

float bf16_to_float(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

uint16_t float_to_bf16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
  x += 0x7fff + ((x >> 16) & 1);
  return (uint16_t)(x >> 16);
}

double load_as_double(const void *p, int dtype) {
  switch (dtype) {
  case FC_FLOAT32: return *(const float *)p;
  case FC_FLOAT64: return *(const double *)p;
  case FC_FLOAT16: return half_to_float(*(const uint16_t *)p);
  case FC_BFLOAT16: return bf16_to_float(*(const uint16_t *)p);
  case FC_INT64: return (double)*(const int64_t *)p;
  case FC_INT32: return *(const int32_t *)p;
  case FC_UINT8: return *(const uint8_t *)p;
  case FC_BOOL: return *(const uint8_t *)p != 0;
  }
  return 0;
}

/* Float to integer conversion truncates toward zero like C and PyTorch; out
 * of range values are clamped instead of being undefined behaviour. */
static int64_t double_to_i64(double v) {
  if (v != v) return 0;
  if (v >= 9.2233720368547758e18) return INT64_MAX;
  if (v <= -9.2233720368547758e18) return INT64_MIN;
  return (int64_t)v;
}

void store_from_double(void *p, int dtype, double v) {
  switch (dtype) {
  case FC_FLOAT32: *(float *)p = (float)v; break;
  case FC_FLOAT64: *(double *)p = v; break;
  case FC_FLOAT16: *(uint16_t *)p = float_to_half((float)v); break;
  case FC_BFLOAT16: *(uint16_t *)p = float_to_bf16((float)v); break;
  case FC_INT64: *(int64_t *)p = double_to_i64(v); break;
  case FC_INT32: *(int32_t *)p = (int32_t)double_to_i64(v); break;
  case FC_UINT8: *(uint8_t *)p = (uint8_t)double_to_i64(v); break;
  case FC_BOOL: *(uint8_t *)p = v != 0; break;
  }
}

/* ---- type promotion --------------------------------------------------- */

static int category(int d) { return d == FC_BOOL ? 0 : is_float_dtype(d) ? 2 : 1; }

/* Within a category the wider type wins; float16 with bfloat16 gives float32. */
int fc_promote_types(int a, int b) {
  if (a == b) return a;
  int ca = category(a), cb = category(b);
  if (ca != cb) return ca > cb ? a : b;
  if (ca == 1) {
    static const int rank[FC_NUM_DTYPES] = {0, 0, 0, 0, 3, 2, 1, 0};
    return rank[a] > rank[b] ? a : b;
  }
  if (a == FC_FLOAT64 || b == FC_FLOAT64) return FC_FLOAT64;
  return FC_FLOAT32; /* float32 with a half type, or float16 with bfloat16 */
}

int result_type(const fc_tensor *a, const fc_tensor *b) {
  bool a0 = a->ndim == 0, b0 = b->ndim == 0;
  if (a0 != b0) {
    const fc_tensor *dim = a0 ? b : a, *zero = a0 ? a : b;
    if (category(zero->dtype) <= category(dim->dtype)) return dim->dtype;
  }
  return fc_promote_types(a->dtype, b->dtype);
}

/* ---- shared checks ---------------------------------------------------- */

const char *dims_str(int ndim, const int64_t *shape, char *buf, size_t n) {
  size_t k = (size_t)snprintf(buf, n, "[");
  for (int i = 0; i < ndim && k < n; i++)
    k += (size_t)snprintf(buf + k, n - k, i ? ",%lld" : "%lld", (long long)shape[i]);
  if (k < n) snprintf(buf + k, n - k, "]");
  return buf;
}

const char *shape_str(const fc_tensor *t, char *buf, size_t n) {
  return dims_str(t->ndim, t->shape, buf, n);
}

/* "1st", "2nd", ... for the 0-based position i: reads right whether the
 * caller counts from 0 (C) or from 1 (Lua). */
const char *ordinal(int64_t i, char *buf, size_t size) {
  long long n = (long long)i + 1;
  const char *suffix = "th";
  if (n % 100 < 11 || n % 100 > 13) suffix = n % 10 == 1 ? "st" : n % 10 == 2 ? "nd" : n % 10 == 3 ? "rd" : "th";
  snprintf(buf, size, "%lld%s", n, suffix);
  return buf;
}

int wrap_dim(const char *op, int dim, int ndim) {
  int n = ndim > 0 ? ndim : 1; /* a 0-dim tensor accepts dim 0 and -1 */
  if (dim < -n || dim >= n)
    FAIL_INT("%s: dim %d out of range for a %d-dim tensor (expected %d to %d)", op, dim, ndim,
             -n, n - 1);
  return dim < 0 ? dim + n : dim;
}

int check_defined(const char *op, const fc_tensor *t, const char *what) {
  if (!t) FAIL_INT("%s: %s is NULL", op, what);
  if (!t->storage) FAIL_INT("%s: %s was freed", op, what);
  return 0;
}

static const char *device_str(fc_device d, char *buf, size_t n) {
  if (d.type == FC_CPU) snprintf(buf, n, "cpu");
  else snprintf(buf, n, "cuda:%d", d.index);
  return buf;
}

/* On a cuda device the op must also have a CUDA kernel (backend.c knows). */
int check_same_device(const char *op, int n, const fc_tensor *const *ts) {
  for (int i = 0; i < n; i++) {
    if (check_defined(op, ts[i], "tensor") < 0) return -1;
    const fc_device d = ts[i]->device;
    if (d.type != FC_CPU && backend_check_device(op, d) < 0) return -1;
    if (d.type != ts[0]->device.type || d.index != ts[0]->device.index)
      FAIL_INT("%s: tensors on different devices (%s and %s); move one with :to()", op,
               device_str(ts[0]->device, (char[16]){0}, 16), device_str(d, (char[16]){0}, 16));
  }
  return n > 0 && ts[0]->device.type != FC_CPU ? backend_check_op(op) : 0;
}

int broadcast_shapes(const char *op, int na, const int64_t *sa, int nb, const int64_t *sb,
                     int *nout, int64_t *out) {
  int n = na > nb ? na : nb;
  for (int i = 0; i < n; i++) {
    int ia = na - n + i, ib = nb - n + i;
    int64_t x = ia >= 0 ? sa[ia] : 1, y = ib >= 0 ? sb[ib] : 1;
    if (x != y && x != 1 && y != 1) {
      char b1[96], b2[96];
      FAIL_INT("%s: shapes %s and %s cannot broadcast (%lld vs %lld in dim %d)", op,
               dims_str(na, sa, b1, 96), dims_str(nb, sb, b2, 96), (long long)x, (long long)y,
               i - n);
    }
    out[i] = x == 1 ? y : x;
  }
  *nout = n;
  return 0;
}

fc_tensor *dense_in(fc_tensor *t, int dtype) {
  int previous = grad_mode_push(false);
  fc_tensor *c = fc_to_dtype(t, dtype), *d = c ? fc_contiguous(c) : NULL;
  grad_mode_pop(previous);
  fc_release(c);
  return d;
}
