/* ops_softmax.c — softmax and log_softmax along one dim, forward and
 * backward, and the row kernels cross_entropy shares (ops_loss.c).
 *
 * A contiguous tensor is seen as [outer, C, inner] around the softmax dim:
 * each of its outer * inner rows holds C classes, `cs` elements apart.
 * - inner == 1 (the last dim): a row is contiguous and is done in one fused
 *   pass while it sits in cache (max, exp-sum, write), rows in parallel.
 * - inner > 1: a row's classes are `inner` apart, so a group of up to
 *   GROUP neighbouring rows (rs = 1) goes together and the innermost loops
 *   run along the rows, which are contiguous and vectorise.
 * float32 and float64 have kernels; half types compute in float32. */
#include "backend.h"
#include "softmax_rows.h"


enum { GROUP = SOFTMAX_GROUP };

/* expf written so loops over it vectorise (a libm call per element does
 * not): x = k ln2 + r with |r| <= ln2/2 (Cody-Waite), e^r by Cephes'
 * degree-6 polynomial, 2^k built in the exponent bits; within 1 ulp of the
 * exact value. It gives exactly 0 below -87.33 (expf gives denormals there) and inf
 * above 88.37 (expf overflows at 88.72); NaN stays NaN. The magic-number
 * rounding never converts a NaN to an int. Softmax only feeds it x <= ~0. */
static inline float exp_f32(float x) {
  const float lo = -87.33654f, hi = 88.37626f, magic = 12582912.0f; /* 1.5 * 2^23 */
  float xc = x < lo ? lo : x > hi ? hi : x;
  float t = xc * 1.44269504088896341f + magic; /* k = round(x / ln2) in the low bits */
  float k = t - magic;
  float r = xc - k * 0.693359375f - k * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  uint32_t kb, sb;
  memcpy(&kb, &t, 4);
  sb = (kb - 0x4B400000u + 127u) << 23; /* the float 2^k */
  float scale;
  memcpy(&scale, &sb, 4);
  float y = p * scale;
  return x < lo ? 0.0f : x > hi ? INFINITY : y;
}
static inline double exp_f64(double x) { return exp(x); }

/* ---- row groups -------------------------------------------------------- */

/* Number of row groups of a contiguous [outer, C, inner] tensor. */
int64_t softmax_groups(int64_t outer, int64_t inner) {
  return inner == 1 ? outer : outer * ((inner + GROUP - 1) / GROUP);
}

/* Group g: its first row (rows numbered o * inner + s), its row count, the
 * element offset of its first row's class 0, and the row and class strides. */
void softmax_group(int64_t g, int64_t C, int64_t inner, int64_t *row, int64_t *nrows,
                   int64_t *offset, int64_t *rs, int64_t *cs) {
  if (inner == 1) {
    *row = g, *nrows = 1, *offset = g * C, *rs = C, *cs = 1;
    return;
  }
  int64_t per = (inner + GROUP - 1) / GROUP, o = g / per, s0 = (g % per) * GROUP;
  *row = o * inner + s0;
  *nrows = inner - s0 < GROUP ? inner - s0 : GROUP;
  *offset = o * C * inner + s0;
  *rs = 1, *cs = inner;
}

/* ---- kernels -----------------------------------------------------------
 * Each works on one group: n rows (n == 1 when cs == 1, else rs == 1 and
 * n <= GROUP) of C classes. In the row form (cs == 1) the loops run along
 * the classes; in the group form they run along the rows, one lane each. */

#define SOFTMAX_KERNELS(T, SFX, EXP, LOG)                                               \
  /* Max and sum of exp(x - max) per row: the shared first two passes. */               \
  static void max_sumexp_##SFX(const T *x, int64_t n, int64_t C, int64_t cs, T *m,      \
                               T *s, T *y) {                                            \
    if (cs == 1) {                                                                      \
      T mx = -INFINITY, sum = 0;                                                        \
      _Pragma("omp simd reduction(max:mx)") for (int64_t c = 0; c < C; c++)             \
        mx = x[c] > mx ? x[c] : mx;                                                     \
      if (y) {                                                                          \
        _Pragma("omp simd reduction(+:sum)") for (int64_t c = 0; c < C; c++) {          \
          T e = EXP(x[c] - mx);                                                         \
          y[c] = e;                                                                     \
          sum += e;                                                                     \
        }                                                                               \
      } else {                                                                          \
        _Pragma("omp simd reduction(+:sum)") for (int64_t c = 0; c < C; c++)            \
          sum += EXP(x[c] - mx);                                                        \
      }                                                                                 \
      m[0] = mx, s[0] = sum;                                                            \
      return;                                                                           \
    }                                                                                   \
    for (int64_t r = 0; r < n; r++) m[r] = -INFINITY, s[r] = 0;                         \
    for (int64_t c = 0; c < C; c++) {                                                   \
      const T *xc = x + c * cs;                                                         \
      for (int64_t r = 0; r < n; r++) m[r] = xc[r] > m[r] ? xc[r] : m[r];               \
    }                                                                                   \
    for (int64_t c = 0; c < C; c++) {                                                   \
      const T *xc = x + c * cs;                                                         \
      if (y) {                                                                          \
        T *yc = y + c * cs;                                                             \
        for (int64_t r = 0; r < n; r++) {                                               \
          T e = EXP(xc[r] - m[r]);                                                      \
          yc[r] = e;                                                                    \
          s[r] += e;                                                                    \
        }                                                                               \
      } else {                                                                          \
        for (int64_t r = 0; r < n; r++) s[r] += EXP(xc[r] - m[r]);                      \
      }                                                                                 \
    }                                                                                   \
  }                                                                                     \
                                                                                        \
  /* y = softmax(x) or log_softmax(x) of one group. */                                  \
  static void softmax_group_##SFX(T *y, const T *x, int64_t n, int64_t C, int64_t cs,   \
                                  bool is_log) {                                        \
    T m[GROUP], s[GROUP], a[GROUP];                                                     \
    max_sumexp_##SFX(x, n, C, cs, m, s, is_log ? NULL : y);                             \
    if (cs == 1) {                                                                      \
      T m0 = m[0], a0 = is_log ? LOG(s[0]) : 1 / s[0];                                  \
      if (is_log)                                                                       \
        for (int64_t c = 0; c < C; c++) y[c] = (x[c] - m0) - a0;                        \
      else                                                                              \
        for (int64_t c = 0; c < C; c++) y[c] *= a0;                                     \
      return;                                                                           \
    }                                                                                   \
    for (int64_t r = 0; r < n; r++) a[r] = is_log ? LOG(s[r]) : 1 / s[r];               \
    for (int64_t c = 0; c < C; c++) {                                                   \
      const T *xc = x + c * cs;                                                         \
      T *yc = y + c * cs;                                                               \
      if (is_log)                                                                       \
        for (int64_t r = 0; r < n; r++) yc[r] = (xc[r] - m[r]) - a[r];                  \
      else                                                                              \
        for (int64_t r = 0; r < n; r++) yc[r] *= a[r];                                  \
    }                                                                                   \
  }                                                                                     \
                                                                                        \
  /* lse[r] = log(sum_c exp(x[r, c])) for one group (cross_entropy). */                 \
  void softmax_lse_##SFX(const T *x, int64_t n, int64_t C, int64_t cs, T *lse) {        \
    T m[GROUP], s[GROUP];                                                               \
    max_sumexp_##SFX(x, n, C, cs, m, s, NULL);                                          \
    for (int64_t r = 0; r < n; r++) lse[r] = m[r] + LOG(s[r]);                          \
  }                                                                                     \
                                                                                        \
  /* y[r, c] = scale[r] * exp(x[r, c] - lse[r]): softmax times a per-row                \
   * factor, the bulk of cross_entropy's gradient. */                                   \
  void softmax_scaled_##SFX(T *y, const T *x, int64_t n, int64_t C, int64_t cs,         \
                            const T *lse, const T *scale) {                             \
    if (cs == 1) {                                                                      \
      T l = lse[0], k = scale[0];                                                       \
      for (int64_t c = 0; c < C; c++) y[c] = k * EXP(x[c] - l);                         \
      return;                                                                           \
    }                                                                                   \
    for (int64_t c = 0; c < C; c++) {                                                   \
      const T *xc = x + c * cs;                                                         \
      T *yc = y + c * cs;                                                               \
      for (int64_t r = 0; r < n; r++) yc[r] = scale[r] * EXP(xc[r] - lse[r]);           \
    }                                                                                   \
  }                                                                                     \
                                                                                        \
  /* Gradients from the output y and its gradient g:                                    \
   * softmax: gx = y (g - sum_c g y);  log_softmax: gx = g - exp(y) sum_c g. */         \
  static void softmax_grad_group_##SFX(T *gx, const T *y, const T *g, int64_t n,        \
                                       int64_t C, int64_t cs, bool is_log) {            \
    T d[GROUP];                                                                         \
    if (cs == 1) {                                                                      \
      T sum = 0;                                                                        \
      if (is_log) {                                                                     \
        _Pragma("omp simd reduction(+:sum)") for (int64_t c = 0; c < C; c++) sum += g[c]; \
        for (int64_t c = 0; c < C; c++) gx[c] = g[c] - EXP(y[c]) * sum;                 \
      } else {                                                                          \
        _Pragma("omp simd reduction(+:sum)") for (int64_t c = 0; c < C; c++)            \
          sum += g[c] * y[c];                                                           \
        for (int64_t c = 0; c < C; c++) gx[c] = y[c] * (g[c] - sum);                    \
      }                                                                                 \
      return;                                                                           \
    }                                                                                   \
    for (int64_t r = 0; r < n; r++) d[r] = 0;                                           \
    for (int64_t c = 0; c < C; c++) {                                                   \
      const T *gc = g + c * cs, *yc = y + c * cs;                                       \
      if (is_log)                                                                       \
        for (int64_t r = 0; r < n; r++) d[r] += gc[r];                                  \
      else                                                                              \
        for (int64_t r = 0; r < n; r++) d[r] += gc[r] * yc[r];                          \
    }                                                                                   \
    for (int64_t c = 0; c < C; c++) {                                                   \
      const T *gc = g + c * cs, *yc = y + c * cs;                                       \
      T *oc = gx + c * cs;                                                              \
      if (is_log)                                                                       \
        for (int64_t r = 0; r < n; r++) oc[r] = gc[r] - EXP(yc[r]) * d[r];              \
      else                                                                              \
        for (int64_t r = 0; r < n; r++) oc[r] = yc[r] * (gc[r] - d[r]);                 \
    }                                                                                   \
  }

SOFTMAX_KERNELS(float, f32, exp_f32, logf)
SOFTMAX_KERNELS(double, f64, exp_f64, log)

/* ---- the ops ------------------------------------------------------------ */

/* The [outer, C, inner] split around `dim` (a 0-dim tensor is [1, 1, 1]). */
static void split_at(int ndim, const int64_t *shape, int dim, int64_t *outer, int64_t *C,
                     int64_t *inner) {
  *outer = *C = *inner = 1;
  for (int d = 0; d < ndim; d++) *(d < dim ? outer : d == dim ? C : inner) *= shape[d];
}

/* The same on the GPU: out, a and g are contiguous [outer, C, inner]. */
static int cuda_groups(fc_tensor *out, const fc_tensor *a, const fc_tensor *g, int64_t outer,
                       int64_t C, int64_t inner, bool log) {
  bk_softmax s = {.dtype = out->dtype, .log = log, .outer = outer, .C = C, .inner = inner,
                  .out = elem_ptr(out), .x = elem_ptr(a), .g = g ? elem_ptr(g) : NULL};
  return backend_get()->softmax(out->device.index, &s);
}

/* Runs the forward (g == NULL) or backward kernel over every group. */
static void run_groups(char *out, const char *a, const char *g, int dtype, int64_t outer,
                       int64_t C, int64_t inner, bool log) {
  int64_t ngroups = softmax_groups(outer, inner), total = outer * C * inner;
#pragma omp parallel for if (total > PARALLEL_GRAIN) schedule(static)
  for (int64_t i = 0; i < ngroups; i++) {
    int64_t row, n, off, rs, cs;
    softmax_group(i, C, inner, &row, &n, &off, &rs, &cs);
    if (dtype == FC_FLOAT64) {
      double *o = (double *)out + off;
      const double *x = (const double *)a + off;
      if (g) softmax_grad_group_f64(o, x, (const double *)g + off, n, C, cs, log);
      else softmax_group_f64(o, x, n, C, cs, log);
    } else {
      float *o = (float *)out + off;
      const float *x = (const float *)a + off;
      if (g) softmax_grad_group_f32(o, x, (const float *)g + off, n, C, cs, log);
      else softmax_group_f32(o, x, n, C, cs, log);
    }
  }
}

static int softmax_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  int dim = (int)n->iarg[0], dtype = kernel_dtype(n->saved[0]->dtype);
  int64_t outer, C, inner;
  split_at(n->in_ndim[0], n->in_shape[0], dim, &outer, &C, &inner);
  fc_tensor *y = dense_in(n->saved[0], dtype), *gd = y ? dense_in(g, dtype) : NULL;
  fc_tensor *gx = gd ? fc_empty(n->in_ndim[0], n->in_shape[0], dtype, g->device) : NULL;
  if (gx && gx->numel && gx->device.type == FC_CUDA) {
    if (cuda_groups(gx, y, gd, outer, C, inner, n->iarg[1]) < 0) fc_release(gx), gx = NULL;
  } else if (gx && gx->numel) {
    run_groups(elem_ptr(gx), elem_ptr(y), elem_ptr(gd), dtype, outer, C, inner, n->iarg[1]);
  }
  fc_release(y);
  fc_release(gd);
  gi[0] = gx;
  return gx ? 0 : -1;
}

static fc_tensor *softmax_op(const char *op, fc_tensor *t, int dim, bool log) {
  if (check_same_device(op, 1, (const fc_tensor *const[]){t}) < 0) return NULL;
  if (!is_float_dtype(t->dtype)) FAIL("%s: needs a floating point tensor, got %s", op, DTYPE(t));
  if ((dim = wrap_dim(op, dim, t->ndim)) < 0) return NULL;
  int dtype = kernel_dtype(t->dtype);
  int64_t outer, C, inner;
  split_at(t->ndim, t->shape, dim, &outer, &C, &inner);
  fc_tensor *x = dense_in(t, dtype), *out = x ? fc_empty(t->ndim, t->shape, dtype, t->device) : NULL;
  if (out && out->numel && out->device.type == FC_CUDA) {
    if (cuda_groups(out, x, NULL, outer, C, inner, log) < 0) fc_release(out), out = NULL;
  } else if (out && out->numel) {
    run_groups(elem_ptr(out), elem_ptr(x), NULL, dtype, outer, C, inner, log);
  }
  fc_release(x);
  if (out && dtype != t->dtype) { /* half types: back from float32 */
    fc_tensor *h = fc_to_dtype(out, t->dtype);
    fc_release(out);
    out = h;
  }
  if (out && grad_needed(1, &t)) {
    fc_node *n = record(op, softmax_backward, out, 1, &t);
    if (!n) {
      fc_release(out);
      return NULL;
    }
    node_save(n, out);
    n->iarg[0] = dim;
    n->iarg[1] = log;
  }
  return out;
}

fc_tensor *fc_softmax(fc_tensor *t, int dim) { return softmax_op("softmax", t, dim, false); }
fc_tensor *fc_log_softmax(fc_tensor *t, int dim) { return softmax_op("log_softmax", t, dim, true); }
