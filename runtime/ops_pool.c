/* ops_pool.c — 2-D pooling: max, average and their adaptive forms over
 * [N,C,H,W] or [C,H,W] inputs, forward and backward, PyTorch semantics.
 *
 * Every op sees its input as P = N*C contiguous planes of H x W and works
 * plane by plane, planes in parallel (OpenMP): a plane's outputs and its
 * gradient touch no other plane, so the backward passes need no atomics.
 *
 * Windows are products of one window per axis, so each op is planned per
 * axis first (axis_plan: the taps of every output along that axis) and the
 * kernels are separable: a pass along each input row per output column
 * into a scratch [H, Wo] buffer, then a pass down the rows of each window,
 * which runs along contiguous output rows and vectorises. The axis rules
 * (PyTorch's):
 * - max_pool2d: output o taps o*s - p + j*d for j < k, skipping the padding.
 *   The first maximum in row-major order wins and NaN wins over everything
 *   (the last NaN's index): taking each row's first max (or last NaN), then
 *   the first row's (last row's) gives the same element as a direct scan.
 *   Indices are flat positions h*W + w within the plane, plus the base.
 * - avg_pool2d: [o*s - p, o*s - p + k) clipped to the padded input gives the
 *   divisor when count_include_pad, clipped to the input the sum (and the
 *   divisor otherwise); a window with nothing inside the input gives 0.
 * - adaptive: output o of n over an input of m covers
 *   [floor(o*m/n), ceil((o+1)*m/n)): windows may overlap, differ in size
 *   or (n > m) repeat an element.
 * Fast paths: 2x2 stride-2 max pool without padding or partial windows (no
 * scratch at all), and the global pools (adaptive to 1x1). float32
 * and float64 have kernels; the half types compute in float32; integer
 * tensors are refused. */
#include "backend.h"
#include <stdlib.h>

/* The selects below compare floats; with trapping math GCC keeps them as
 * branches, which mispredict on every random window. fastc never reads the
 * floating-point exception flags. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

typedef enum { MAX_POOL, AVG_POOL, ADAPTIVE_MAX, ADAPTIVE_AVG } pool_kind;
static const char *const OP_NAME[] = {"max_pool2d", "avg_pool2d", "adaptive_max_pool2d",
                                      "adaptive_avg_pool2d"};

typedef struct pool_geom {
  int64_t P, H, W, Ho, Wo; /* planes; input and output plane sizes */
  int kh, kw, sh, sw, ph, pw, dh, dw;
  bool count_include_pad;
} pool_geom;

/* ---- axis plans ------------------------------------------------------------
 * Output o reads the input at start[o], start[o] + step, ... < end[o] (an
 * empty window has end <= start; start is then only the index PyTorch
 * reports). span[o]: the window's length in the padded input, the average's
 * divisor with count_include_pad. Inverse: the outputs whose window holds
 * input i are lo[i] <= o < hi[i] (step 1 plans only; starts and ends never
 * decrease, so that set is a range). */
typedef struct axis_plan {
  int64_t n, in, step;
  int64_t *start, *end, *span, *lo, *hi;
} axis_plan;

static void max_axis(axis_plan *a, int k, int s, int p, int d) {
  a->step = d;
  for (int64_t o = 0; o < a->n; o++) {
    int64_t first = o * s - p, last = first + (int64_t)(k - 1) * d;
    while (first < 0) first += d;
    a->start[o] = first, a->end[o] = last + 1 < a->in ? last + 1 : a->in;
  }
}

static void avg_axis(axis_plan *a, int k, int s, int p) {
  a->step = 1;
  for (int64_t o = 0; o < a->n; o++) {
    int64_t first = o * s - p, end = first + k;
    if (end > a->in + p) end = a->in + p;
    a->span[o] = end - first;
    a->start[o] = first < 0 ? 0 : first, a->end[o] = end < a->in ? end : a->in;
  }
}

/* floor(o*in/n) and ceil((o+1)*in/n), split so o*in cannot overflow */
static void adaptive_axis(axis_plan *a) {
  a->step = 1;
  for (int64_t o = 0; o < a->n; o++) {
    a->start[o] = (o / a->n) * a->in + (o % a->n) * a->in / a->n;
    a->end[o] = 1 + ((o + 1) * a->in - 1) / a->n;
    a->span[o] = a->end[o] - a->start[o];
  }
}

static void invert_axis(axis_plan *a) {
  int64_t lo = 0, hi = 0;
  for (int64_t i = 0; i < a->in; i++) {
    while (lo < a->n && a->end[lo] <= i) lo++;
    while (hi < a->n && a->start[hi] <= i) hi++;
    a->lo[i] = lo, a->hi[i] = hi > lo ? hi : lo;
  }
}

/* Both axes of one op in one allocation; NULL if out of memory. */
typedef struct pool_plan { axis_plan rows, cols; int64_t *mem; } pool_plan;

static int make_plan(pool_kind kind, const pool_geom *g, pool_plan *pl) {
  int64_t nr = 3 * g->Ho + 2 * g->H, nc = 3 * g->Wo + 2 * g->W;
  pl->mem = malloc(sizeof(int64_t) * (size_t)(nr + nc + 1));
  if (!pl->mem) FAIL_INT("%s: out of memory", OP_NAME[kind]);
  axis_plan *ax[2] = {&pl->rows, &pl->cols};
  int64_t *m = pl->mem, n[2] = {g->Ho, g->Wo}, in[2] = {g->H, g->W};
  int k[2] = {g->kh, g->kw}, s[2] = {g->sh, g->sw}, p[2] = {g->ph, g->pw}, d[2] = {g->dh, g->dw};
  for (int i = 0; i < 2; i++) {
    axis_plan *a = ax[i];
    a->n = n[i], a->in = in[i];
    a->start = m, a->end = m + n[i], a->span = m + 2 * n[i], a->lo = m + 3 * n[i];
    a->hi = a->lo + in[i];
    m = a->hi + in[i];
    if (kind == MAX_POOL) max_axis(a, k[i], s[i], p[i], d[i]);
    else if (kind == AVG_POOL) avg_axis(a, k[i], s[i], p[i]);
    else adaptive_axis(a);
    if (a->step == 1) invert_axis(a);
  }
  return 0;
}

/* ---- kernels, one plane each ----------------------------------------------- */

/* v replaces the running max m: larger, or NaN (which then stays). A
 * bitwise | so no short-circuit branch is made. */
#define TAKES(v, m) (((v) > (m)) | ((v) != (v)))

#define POOL_KERNELS(T, SFX)                                                                \
  /* Each row's max over every column window: hm[ow] and (if hc) its column. */            \
  static void row_max_##SFX(const T *row, const axis_plan *c, T *hm, int64_t *hc) {         \
    for (int64_t o = 0; o < c->n; o++) {                                                    \
      int64_t a = c->start[o], b = c->end[o], s = c->step;                                  \
      T m = -INFINITY;                                                                      \
      int nan = 0;                                                                          \
      for (int64_t w = a; w < b; w += s) {                                                  \
        T v = row[w];                                                                       \
        m = v > m ? v : m;                                                                  \
        nan |= v != v;                                                                      \
      }                                                                                     \
      hm[o] = nan ? (T)NAN : m;                                                             \
      if (!hc) continue;                                                                    \
      int64_t at = a; /* the first tap when no element is larger than -inf */               \
      if (nan) {                                                                            \
        for (int64_t w = a; w < b; w += s) at = row[w] != row[w] ? w : at;                  \
      } else {                                                                              \
        int found = 0;                                                                      \
        for (int64_t w = a; w < b; w += s) {                                                \
          int hit = !found & (row[w] == m);                                                 \
          at = hit ? w : at;                                                                \
          found |= hit;                                                                     \
        }                                                                                   \
      }                                                                                     \
      hc[o] = at;                                                                           \
    }                                                                                       \
  }                                                                                         \
                                                                                            \
  /* y = max over each window; ix (or NULL) = base + the argmax's flat index.               \
   * hm, hc: [H, Wo] scratch. */                                                            \
  static void max_plane_##SFX(const T *x, T *y, int64_t *ix, const pool_plan *pl, T *hm,    \
                              int64_t *hc, int64_t base) {                                  \
    const axis_plan *r = &pl->rows, *c = &pl->cols;                                         \
    int64_t W = c->in, Wo = c->n;                                                           \
    for (int64_t h = 0; h < r->in; h++)                                                     \
      row_max_##SFX(x + h * W, c, hm + h * Wo, ix ? hc + h * Wo : NULL);                    \
    for (int64_t oh = 0; oh < r->n; oh++) {                                                 \
      T *yo = y + oh * Wo;                                                                  \
      int64_t *io = ix ? ix + oh * Wo : NULL;                                               \
      for (int64_t ow = 0; ow < Wo; ow++) yo[ow] = -INFINITY;                               \
      if (io)                                                                               \
        for (int64_t ow = 0; ow < Wo; ow++) io[ow] = base + r->start[oh] * W + c->start[ow]; \
      for (int64_t h = r->start[oh]; h < r->end[oh]; h += r->step) {                        \
        const T *hr = hm + h * Wo;                                                          \
        if (!io) {                                                                          \
          for (int64_t ow = 0; ow < Wo; ow++) yo[ow] = TAKES(hr[ow], yo[ow]) ? hr[ow] : yo[ow]; \
          continue;                                                                         \
        }                                                                                   \
        const int64_t *cr = hc + h * Wo;                                                    \
        for (int64_t ow = 0; ow < Wo; ow++) {                                               \
          T v = hr[ow], m = yo[ow];                                                         \
          int take = TAKES(v, m);                                                           \
          yo[ow] = take ? v : m;                                                            \
          io[ow] = take ? base + h * W + cr[ow] : io[ow];                                   \
        }                                                                                   \
      }                                                                                     \
    }                                                                                       \
  }                                                                                         \
                                                                                            \
  /* The 2x2 stride-2 case with every window whole: no plan, no scratch.                    \
   * Scan order a b / c d as in the general kernel. */                                      \
  static void max2x2_plane_##SFX(const T *x, T *y, int64_t *ix, int64_t W, int64_t Ho,      \
                                 int64_t Wo, int64_t base) {                                \
    for (int64_t oh = 0; oh < Ho; oh++) {                                                   \
      const T *r0 = x + 2 * oh * W, *r1 = r0 + W;                                           \
      T *yo = y + oh * Wo;                                                                  \
      int64_t *io = ix ? ix + oh * Wo : NULL, row = base + 2 * oh * W;                      \
      for (int64_t ow = 0; ow < Wo; ow++) {                                                 \
        T a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];           \
        T m = b > a ? b : a;                                                                \
        m = c > m ? c : m;                                                                  \
        m = d > m ? d : m;                                                                  \
        int nan = (a != a) | (b != b) | (c != c) | (d != d);                                \
        yo[ow] = nan ? (T)NAN : m;                                                          \
        if (!io) continue;                                                                  \
        int64_t at = d == m ? W + 1 : 0; /* the first of a b c d equal to m */              \
        at = c == m ? W : at;                                                               \
        at = b == m ? 1 : at;                                                               \
        at = a == m ? 0 : at;                                                               \
        if (nan) at = d != d ? W + 1 : c != c ? W : b != b ? 1 : 0; /* the last NaN */      \
        io[ow] = row + 2 * ow + at;                                                         \
      }                                                                                     \
    }                                                                                       \
  }                                                                                         \
                                                                                            \
  /* Sums over each window divided per the plan (0 for a window outside the                \
   * input); hs: [H, Wo] scratch. */                                                        \
  static void avg_plane_##SFX(const T *x, T *y, const pool_plan *pl, bool cip, T *hs) {     \
    const axis_plan *r = &pl->rows, *c = &pl->cols;                                         \
    int64_t W = c->in, Wo = c->n;                                                           \
    for (int64_t h = 0; h < r->in; h++)                                                     \
      for (int64_t ow = 0; ow < Wo; ow++) {                                                 \
        T s = 0;                                                                            \
        for (int64_t w = c->start[ow]; w < c->end[ow]; w++) s += x[h * W + w];              \
        hs[h * Wo + ow] = s;                                                                \
      }                                                                                     \
    for (int64_t oh = 0; oh < r->n; oh++) {                                                 \
      T *yo = y + oh * Wo;                                                                  \
      for (int64_t ow = 0; ow < Wo; ow++) yo[ow] = 0;                                       \
      for (int64_t h = r->start[oh]; h < r->end[oh]; h++)                                   \
        for (int64_t ow = 0; ow < Wo; ow++) yo[ow] += hs[h * Wo + ow];                      \
      int64_t nh = r->end[oh] - r->start[oh];                                               \
      for (int64_t ow = 0; ow < Wo; ow++) {                                                 \
        int64_t nw = c->end[ow] - c->start[ow];                                             \
        T n = cip ? (T)(r->span[oh] * c->span[ow]) : (T)(nh * nw);                          \
        yo[ow] = nh > 0 && nw > 0 ? yo[ow] / n : 0;                                         \
      }                                                                                     \
    }                                                                                       \
  }                                                                                         \
                                                                                            \
  /* The whole plane's max (NaN if any) and, if wanted, the first index of                \
   * it (the last NaN's): a vectorised pass, then a search that stops early. */            \
  static T plane_max_##SFX(const T *x, int64_t n, int64_t *at) {                            \
    T m = -INFINITY;                                                                        \
    int nan = 0;                                                                            \
    _Pragma("omp simd reduction(max:m) reduction(|:nan)") for (int64_t i = 0; i < n; i++) { \
      m = x[i] > m ? x[i] : m;                                                              \
      nan |= x[i] != x[i];                                                                  \
    }                                                                                       \
    if (!at) return nan ? (T)NAN : m;                                                       \
    int64_t i = nan ? n - 1 : 0;                                                            \
    if (nan) while (x[i] == x[i]) i--;                                                      \
    else while (i < n - 1 && x[i] != m) i++;                                                \
    *at = i;                                                                                \
    return nan ? (T)NAN : m;                                                                \
  }                                                                                         \
                                                                                            \
  static T plane_mean_##SFX(const T *x, int64_t n) {                                        \
    T s = 0;                                                                                \
    _Pragma("omp simd reduction(+:s)") for (int64_t i = 0; i < n; i++) s += x[i];           \
    return s / (T)n;                                                                        \
  }                                                                                         \
                                                                                            \
  /* ---- backward: every gx element is written (no zeroed tensor needed) ---- */           \
  static void max_back_plane_##SFX(T *gx, const T *gy, const int64_t *ix, int64_t n,        \
                                   int64_t hw, int64_t base) {                              \
    memset(gx, 0, sizeof(T) * (size_t)hw);                                                  \
    for (int64_t o = 0; o < n; o++) {                                                       \
      int64_t i = ix[o] - base;                                                             \
      if (i >= 0 && i < hw) gx[i] += gy[o]; /* an all-padding window has no argmax */       \
    }                                                                                       \
  }                                                                                         \
                                                                                            \
  /* The transpose of avg_plane: each output's share summed down the rows of               \
   * its window into t [H, Wo], then gathered along each row through the                    \
   * inverse column plan. g1: [Wo] scratch. */                                              \
  static void avg_back_plane_##SFX(T *gx, const T *gy, const pool_plan *pl, bool cip, T *t, \
                                   T *g1) {                                                 \
    const axis_plan *r = &pl->rows, *c = &pl->cols;                                         \
    int64_t W = c->in, Wo = c->n;                                                           \
    memset(t, 0, sizeof(T) * (size_t)(r->in * Wo));                                         \
    for (int64_t oh = 0; oh < r->n; oh++) {                                                 \
      int64_t nh = r->end[oh] - r->start[oh];                                               \
      for (int64_t ow = 0; ow < Wo; ow++) {                                                 \
        int64_t nw = c->end[ow] - c->start[ow];                                             \
        T n = cip ? (T)(r->span[oh] * c->span[ow]) : (T)(nh * nw);                          \
        g1[ow] = nh > 0 && nw > 0 ? gy[oh * Wo + ow] / n : 0;                               \
      }                                                                                     \
      for (int64_t h = r->start[oh]; h < r->end[oh]; h++)                                   \
        for (int64_t ow = 0; ow < Wo; ow++) t[h * Wo + ow] += g1[ow];                       \
    }                                                                                       \
    for (int64_t h = 0; h < r->in; h++)                                                     \
      for (int64_t w = 0; w < W; w++) {                                                     \
        T s = 0;                                                                            \
        for (int64_t ow = c->lo[w]; ow < c->hi[w]; ow++) s += t[h * Wo + ow];               \
        gx[h * W + w] = s;                                                                  \
      }                                                                                     \
  }                                                                                         \
                                                                                            \
  /* One plane of `kind`; scratch holds [H, Wo] values and [H, Wo] columns. */             \
  static void forward_plane_##SFX(pool_kind kind, const pool_geom *g, const pool_plan *pl,  \
                                  const T *x, T *y, int64_t *ix, int64_t base, void *scratch) { \
    int64_t *hc = scratch;                                                                  \
    T *hm = (T *)(hc + g->H * g->Wo);                                                       \
    bool global = g->Ho == 1 && g->Wo == 1 && (kind == ADAPTIVE_AVG || kind == ADAPTIVE_MAX);   \
    if (global && kind == ADAPTIVE_AVG) y[0] = plane_mean_##SFX(x, g->H * g->W);           \
    else if (global) {                                                                      \
      int64_t at;                                                                           \
      y[0] = plane_max_##SFX(x, g->H * g->W, ix ? &at : NULL);                              \
      if (ix) ix[0] = at + base;                                                            \
    }                                                                                       \
    else if (kind == MAX_POOL && is_2x2(g)) max2x2_plane_##SFX(x, y, ix, g->W, g->Ho, g->Wo, base); \
    else if (kind == MAX_POOL || kind == ADAPTIVE_MAX) max_plane_##SFX(x, y, ix, pl, hm, hc, base); \
    else avg_plane_##SFX(x, y, pl, kind == ADAPTIVE_AVG || g->count_include_pad, hm);       \
  }                                                                                         \
                                                                                            \
  static void backward_plane_##SFX(pool_kind kind, const pool_geom *g, const pool_plan *pl, \
                                   const T *gy, const int64_t *ix, T *gx, int64_t base,     \
                                   void *scratch) {                                         \
    int64_t hw = g->H * g->W;                                                               \
    if (kind == MAX_POOL || kind == ADAPTIVE_MAX) {                                         \
      max_back_plane_##SFX(gx, gy, ix, g->Ho * g->Wo, hw, base);                            \
    } else if (kind == ADAPTIVE_AVG && g->Ho == 1 && g->Wo == 1) {                          \
      T share = gy[0] / (T)hw;                                                              \
      for (int64_t i = 0; i < hw; i++) gx[i] = share;                                       \
    } else {                                                                                \
      T *t = scratch;                                                                       \
      avg_back_plane_##SFX(gx, gy, pl, kind == ADAPTIVE_AVG || g->count_include_pad, t,     \
                           t + g->H * g->Wo);                                               \
    }                                                                                       \
  }

/* The fast 2x2 kernel applies when every window is the whole 2x2 block
 * at (2*oh, 2*ow): no padding or dilation, and no ceil-mode partial window. */
static bool is_2x2(const pool_geom *g) {
  return g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->ph == 0 && g->pw == 0 &&
         g->dh == 1 && g->dw == 1 && 2 * g->Ho <= g->H && 2 * g->Wo <= g->W;
}

POOL_KERNELS(float, f32)
POOL_KERNELS(double, f64)

/* ---- plane loops -------------------------------------------------------------
 * Each thread has its own scratch: [H, Wo] values and [H, Wo] int64 columns
 * (max), or [H, Wo] + [Wo] values (average backward). */

static size_t scratch_bytes(const pool_geom *g) {
  return (size_t)(g->H * g->Wo + g->Wo) * (sizeof(double) + sizeof(int64_t)) + 64;
}

static int run_planes(pool_kind kind, const pool_geom *g, const pool_plan *pl, bool backward,
                      const char *in, char *out, int64_t *ix, int64_t base, bool f64) {
  int64_t hw = g->H * g->W, ohw = g->Ho * g->Wo;
  int64_t in_plane = backward ? ohw : hw, out_plane = backward ? hw : ohw;
  int es = f64 ? 8 : 4, failed = 0;
#pragma omp parallel if (g->P * (hw + ohw) > PARALLEL_GRAIN)
  {
    void *scratch = malloc(scratch_bytes(g));
    if (!scratch) __atomic_store_n(&failed, 1, __ATOMIC_RELAXED);
#pragma omp for schedule(static)
    for (int64_t p = 0; p < g->P; p++) {
      if (!scratch) continue;
      const char *src = in + p * in_plane * es;
      char *dst = out + p * out_plane * es;
      int64_t *ixp = ix ? ix + p * ohw : NULL;
      if (backward && f64) backward_plane_f64(kind, g, pl, (const double *)src, ixp, (double *)dst, base, scratch);
      else if (backward) backward_plane_f32(kind, g, pl, (const float *)src, ixp, (float *)dst, base, scratch);
      else if (f64) forward_plane_f64(kind, g, pl, (const double *)src, (double *)dst, ixp, base, scratch);
      else forward_plane_f32(kind, g, pl, (const float *)src, (float *)dst, ixp, base, scratch);
    }
    free(scratch);
  }
  if (failed) FAIL_INT("%s: out of memory for the scratch rows", OP_NAME[kind]);
  return 0;
}

/* ---- checks and geometry ------------------------------------------------------ */

/* A CPU float tensor [N,C,H,W] or [C,H,W] with C, H and W non-zero (N may be 0). */
static int check_input(const char *op, const fc_tensor *x) {
  if (check_same_device(op, 1, &x) < 0) return -1;
  if (x->ndim != 3 && x->ndim != 4)
    FAIL_INT("%s: expects an [N,C,H,W] or [C,H,W] input, got shape %s", op, SHAPE(x));
  for (int d = x->ndim - 3; d < x->ndim; d++)
    if (x->shape[d] == 0)
      FAIL_INT("%s: input of shape %s is empty in a C, H or W dim (only N may be 0)", op, SHAPE(x));
  if (!is_float_dtype(x->dtype))
    FAIL_INT("%s: needs a floating point input, got %s (convert it with to_dtype first)", op,
             DTYPE(x));
  return 0;
}

/* Planes and plane size of the input; the output size is filled in later. */
static pool_geom input_geometry(const fc_tensor *x) {
  pool_geom g = {0};
  g.H = x->shape[x->ndim - 2], g.W = x->shape[x->ndim - 1];
  g.P = x->ndim == 4 ? x->shape[0] * x->shape[1] : x->shape[0];
  return g;
}

/* PyTorch's output size, with ceil_mode's rule that the last window must
 * start inside the input or the left padding. */
static int64_t pooled_size(int64_t in, int k, int s, int p, int d, bool ceil_mode) {
  int64_t span = in + 2 * (int64_t)p - (int64_t)d * (k - 1) - 1 + (ceil_mode ? s - 1 : 0);
  int64_t out = (span >= 0 ? span / s : -((-span + s - 1) / s)) + 1; /* floor division */
  if (ceil_mode && out > 0 && (out - 1) * s >= in + p) out--;
  return out;
}

/* Checks the window parameters (NULL stride: the kernel; NULL padding: 0;
 * NULL dilation: 1) and fills in the geometry of a sliding-window pool. */
static int sliding_geometry(const char *op, const fc_tensor *x, const int *kernel,
                            const int *stride, const int *padding, const int *dilation,
                            bool ceil_mode, pool_geom *g) {
  if (check_input(op, x) < 0) return -1;
  if (!kernel) FAIL_INT("%s: kernel size is NULL", op);
  const int *k = kernel, *s = stride ? stride : kernel;
  const int *p = padding ? padding : (const int[]){0, 0}, *d = dilation ? dilation : (const int[]){1, 1};
  if (k[0] < 1 || k[1] < 1) FAIL_INT("%s: kernel size must be positive, got %dx%d", op, k[0], k[1]);
  if (s[0] < 1 || s[1] < 1) FAIL_INT("%s: stride must be positive, got %dx%d", op, s[0], s[1]);
  if (d[0] < 1 || d[1] < 1) FAIL_INT("%s: dilation must be positive, got %dx%d", op, d[0], d[1]);
  if (p[0] < 0 || p[1] < 0) FAIL_INT("%s: padding must be non-negative, got %dx%d", op, p[0], p[1]);
  if (p[0] > k[0] / 2 || p[1] > k[1] / 2)
    FAIL_INT("%s: padding %dx%d must be at most half the kernel size %dx%d", op, p[0], p[1], k[0], k[1]);
  *g = input_geometry(x);
  g->kh = k[0], g->kw = k[1], g->sh = s[0], g->sw = s[1];
  g->ph = p[0], g->pw = p[1], g->dh = d[0], g->dw = d[1];
  g->Ho = pooled_size(g->H, k[0], s[0], p[0], d[0], ceil_mode);
  g->Wo = pooled_size(g->W, k[1], s[1], p[1], d[1], ceil_mode);
  if (g->Ho < 1 || g->Wo < 1)
    FAIL_INT("%s: input of shape %s is too small for kernel %dx%d (stride %dx%d, padding %dx%d, "
             "dilation %dx%d): the output would be %lldx%lld", op, SHAPE(x), k[0], k[1], s[0], s[1],
             p[0], p[1], d[0], d[1], (long long)g->Ho, (long long)g->Wo);
  return 0;
}

static int adaptive_geometry(const char *op, const fc_tensor *x, const int64_t *size, pool_geom *g) {
  if (check_input(op, x) < 0) return -1;
  if (!size) FAIL_INT("%s: output size is NULL", op);
  if (size[0] < 0 || size[1] < 0)
    FAIL_INT("%s: output size must be non-negative, got %lldx%lld", op, (long long)size[0],
             (long long)size[1]);
  *g = input_geometry(x);
  g->Ho = size[0], g->Wo = size[1];
  return 0;
}

/* ---- on a cuda device ------------------------------------------------------------
 * The plugin's kernels take the same geometry (backend.h: bk_pool; the
 * kinds are in pool_kind's order) and need no plan. */

static int device_planes(pool_kind kind, const pool_geom *g, bool backward, const void *in, void *out,
                         int64_t *ix, int64_t base, int dtype, fc_device dev) {
  bk_pool p = {.kind = (int)kind, .dtype = dtype, .count_include_pad = g->count_include_pad,
               .P = g->P, .H = g->H, .W = g->W, .Ho = g->Ho, .Wo = g->Wo, .base = base,
               .kh = g->kh, .kw = g->kw, .sh = g->sh, .sw = g->sw, .ph = g->ph, .pw = g->pw,
               .dh = g->dh, .dw = g->dw};
  if (backward) p.gy = in, p.gx = out, p.gix = ix;
  else p.x = in, p.y = out, p.ix = ix;
  return backend_pool(&p, dev, backward);
}

/* ---- the ops --------------------------------------------------------------------
 * Node layout: iarg = kh, kw, sh, sw, ph, pw, dh, dw; arg = kind,
 * count_include_pad, base; saved[0] = the indices (max pools). */

static int pool_backward(fc_node *n, fc_tensor *gy, fc_tensor **gi) {
  pool_kind kind = (pool_kind)n->arg[0];
  const int64_t *shape = n->in_shape[0];
  int ndim = n->in_ndim[0], dtype = kernel_dtype(n->in_dtype[0]);
  pool_geom g = {.P = ndim == 4 ? shape[0] * shape[1] : shape[0], .H = shape[ndim - 2],
                 .W = shape[ndim - 1], .Ho = gy->shape[ndim - 2], .Wo = gy->shape[ndim - 1]};
  int v[8];
  for (int i = 0; i < 8; i++) v[i] = (int)n->iarg[i];
  g.kh = v[0], g.kw = v[1], g.sh = v[2], g.sw = v[3], g.ph = v[4], g.pw = v[5], g.dh = v[6], g.dw = v[7];
  g.count_include_pad = n->arg[1] != 0;
  pool_plan pl = {0};
  fc_tensor *gc = dense_in(gy, dtype);
  fc_tensor *gx = gc ? fc_empty(ndim, shape, dtype, gy->device) : NULL; /* every element written */
  int rc = gx ? 0 : -1;
  const int64_t *ix = n->nsaved ? (const int64_t *)elem_ptr(n->saved[0]) : NULL;
  if (rc == 0 && gx->numel && gx->device.type == FC_CUDA) {
    rc = device_planes(kind, &g, true, elem_ptr(gc), elem_ptr(gx), (int64_t *)ix, (int64_t)n->arg[2],
                       dtype, gx->device);
  } else if (rc == 0 && gx->numel && (rc = make_plan(kind, &g, &pl)) == 0) {
    rc = run_planes(kind, &g, &pl, true, elem_ptr(gc), elem_ptr(gx), (int64_t *)ix,
                    (int64_t)n->arg[2], dtype == FC_FLOAT64);
  }
  free(pl.mem);
  fc_release(gc);
  if (rc < 0) {
    fc_release(gx);
    gx = NULL;
  }
  gi[0] = gx;
  return rc;
}

static fc_node *record_pool(pool_kind kind, fc_tensor *y, fc_tensor *x, const pool_geom *g,
                            fc_tensor *ix, int64_t base) {
  fc_node *n = record(OP_NAME[kind], pool_backward, y, 1, &x);
  if (!n) return NULL;
  if (ix) node_save(n, ix);
  const int v[8] = {g->kh, g->kw, g->sh, g->sw, g->ph, g->pw, g->dh, g->dw};
  for (int i = 0; i < 8; i++) n->iarg[i] = v[i];
  n->arg[0] = kind, n->arg[1] = g->count_include_pad, n->arg[2] = (double)base;
  return n;
}

/* Runs a checked pool: output (and indices for the max pools when asked for
 * or needed by backward), the autograd node, half types back from float32. */
static fc_tensor *pool_op(pool_kind kind, fc_tensor *x, const pool_geom *g, fc_tensor **indices,
                          int64_t base) {
  bool is_max = kind == MAX_POOL || kind == ADAPTIVE_MAX, grad = grad_needed(1, &x);
  int dtype = kernel_dtype(x->dtype);
  int64_t shape[4];
  memcpy(shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
  shape[x->ndim - 2] = g->Ho, shape[x->ndim - 1] = g->Wo;
  fc_tensor *xc = dense_in(x, dtype);
  fc_tensor *y = xc ? fc_empty(x->ndim, shape, dtype, x->device) : NULL, *ix = NULL;
  if (y && is_max && (indices || grad) && !(ix = fc_empty(x->ndim, shape, FC_INT64, x->device))) {
    fc_release(y);
    y = NULL;
  }
  pool_plan pl = {0};
  if (y && y->numel && y->device.type == FC_CUDA) {
    if (device_planes(kind, g, false, elem_ptr(xc), elem_ptr(y), ix ? (int64_t *)elem_ptr(ix) : NULL, base,
                      dtype, y->device) < 0) {
      fc_release(y);
      y = NULL;
    }
  } else if (y && y->numel &&
      (make_plan(kind, g, &pl) < 0 || run_planes(kind, g, &pl, false, elem_ptr(xc), elem_ptr(y),
                                                 ix ? (int64_t *)elem_ptr(ix) : NULL, base,
                                                 dtype == FC_FLOAT64) < 0)) {
    fc_release(y);
    y = NULL;
  }
  free(pl.mem);
  fc_release(xc);
  if (y && dtype != x->dtype) {
    int previous = grad_mode_push(false);
    fc_tensor *h = fc_to_dtype(y, x->dtype);
    grad_mode_pop(previous);
    fc_release(y);
    y = h;
  }
  if (y && grad && !record_pool(kind, y, x, g, ix, base)) {
    fc_release(y);
    y = NULL;
  }
  if (y && indices) *indices = ix;
  else fc_release(ix);
  return y;
}

fc_tensor *fc_max_pool2d(fc_tensor *x, const int *kernel, const int *stride, const int *padding,
                         const int *dilation, int ceil_mode, fc_tensor **indices, int64_t base) {
  if (indices) *indices = NULL;
  pool_geom g;
  if (sliding_geometry("max_pool2d", x, kernel, stride, padding, dilation, ceil_mode, &g) < 0)
    return NULL;
  return pool_op(MAX_POOL, x, &g, indices, base);
}

fc_tensor *fc_avg_pool2d(fc_tensor *x, const int *kernel, const int *stride, const int *padding,
                         int ceil_mode, int count_include_pad) {
  pool_geom g;
  if (sliding_geometry("avg_pool2d", x, kernel, stride, padding, NULL, ceil_mode, &g) < 0)
    return NULL;
  g.count_include_pad = count_include_pad != 0;
  return pool_op(AVG_POOL, x, &g, NULL, 0);
}

fc_tensor *fc_adaptive_avg_pool2d(fc_tensor *x, const int64_t *output_size) {
  pool_geom g;
  if (adaptive_geometry("adaptive_avg_pool2d", x, output_size, &g) < 0) return NULL;
  g.kh = g.kw = g.sh = g.sw = g.dh = g.dw = 1;
  return pool_op(ADAPTIVE_AVG, x, &g, NULL, 0);
}

fc_tensor *fc_adaptive_max_pool2d(fc_tensor *x, const int64_t *output_size, fc_tensor **indices,
                                  int64_t base) {
  if (indices) *indices = NULL;
  pool_geom g;
  if (adaptive_geometry("adaptive_max_pool2d", x, output_size, &g) < 0) return NULL;
  g.kh = g.kw = g.sh = g.sw = g.dh = g.dw = 1;
  return pool_op(ADAPTIVE_MAX, x, &g, indices, base);
}
