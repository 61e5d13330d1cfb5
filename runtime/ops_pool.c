/* ops_pool.c — 2-D pooling: max, average and their adaptive forms over
 * [N,C,H,W] or [C,H,W] inputs, forward and backward, PyTorch semantics.
 *
 * Every op sees its input as P = N*C contiguous planes of H x W and works
 * plane by plane, planes in parallel (OpenMP): a plane's outputs and its
 * gradient touch no other plane, so the backward scatters need no atomics.
 * Windows, along each axis (PyTorch's rules):
 * - max_pool2d: output o taps o*s - p + j*d for j < k, skipping taps in the
 *   padding. The first maximum in row-major order wins and a NaN wins over
 *   everything (NaNs propagate); indices are flat positions h*W + w within
 *   the plane, plus the caller's base.
 * - avg_pool2d: [o*s - p, o*s - p + k) clipped to the padded input gives
 *   the divisor when count_include_pad, clipped to the input the sum (and
 *   the divisor otherwise).
 * - adaptive: output o of n over an input of m covers
 *   [floor(o*m/n), ceil((o+1)*m/n)), so windows may overlap, differ in size
 *   or (n > m) repeat an element.
 * Fast paths: 2x2 stride-2 max pool without padding or partial windows, and
 * the global average pool (adaptive to 1x1). float32 and float64 have
 * kernels; the half types compute in float32; integer tensors are refused. */
#include "internal.h"

/* The NaN tests below are plain compares; with trapping math GCC would keep
 * the selects as branches and the 2x2 loop would not vectorise. fastc never
 * reads the floating-point exception flags. */
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

/* ---- windows along one axis --------------------------------------------- */

/* Max pool: the taps of output o are start, start + d, ... < end. */
static inline void max_window(int64_t o, int s, int p, int k, int d, int64_t in, int64_t *start,
                              int64_t *end) {
  int64_t a = o * s - p, b = a + (int64_t)(k - 1) * d + 1;
  while (a < 0) a += d;
  *start = a, *end = b < in ? b : in;
}

/* Avg pool: [start, end) inside the input; returns the window's length
 * inside the padded input (the count_include_pad divisor). */
static inline int64_t avg_window(int64_t o, int s, int p, int k, int64_t in, int64_t *start,
                                 int64_t *end) {
  int64_t a = o * s - p, b = a + k;
  if (b > in + p) b = in + p;
  *start = a < 0 ? 0 : a, *end = b < in ? b : in;
  return b - a;
}

/* Adaptive: [floor(o*in/out), ceil((o+1)*in/out)), split so o*in cannot overflow. */
static inline void adaptive_window(int64_t o, int64_t out, int64_t in, int64_t *start, int64_t *end) {
  *start = (o / out) * in + (o % out) * in / out;
  *end = 1 + ((o + 1) * in - 1) / out;
}

/* v replaces the running max m: larger, or NaN (which then stays). */
#define TAKES(v, m) ((v) > (m) || (v) != (v))

/* ---- kernels, one plane each --------------------------------------------- */

#define POOL_KERNELS(T, SFX)                                                                \
  /* y = max over each window; ix (or NULL) = base + the argmax's flat position. */        \
  static void max_plane_##SFX(const T *x, T *y, int64_t *ix, const pool_geom *g,            \
                              int64_t base) {                                               \
    for (int64_t oh = 0; oh < g->Ho; oh++) {                                                \
      int64_t h0, h1;                                                                       \
      max_window(oh, g->sh, g->ph, g->kh, g->dh, g->H, &h0, &h1);                           \
      for (int64_t ow = 0; ow < g->Wo; ow++) {                                              \
        int64_t w0, w1;                                                                     \
        max_window(ow, g->sw, g->pw, g->kw, g->dw, g->W, &w0, &w1);                         \
        T m = -INFINITY;                                                                    \
        int64_t at = h0 * g->W + w0;                                                        \
        for (int64_t h = h0; h < h1; h += g->dh)                                            \
          for (int64_t w = w0; w < w1; w += g->dw) {                                        \
            T v = x[h * g->W + w];                                                          \
            if (TAKES(v, m)) m = v, at = h * g->W + w;                                      \
          }                                                                                 \
        y[oh * g->Wo + ow] = m;                                                             \
        if (ix) ix[oh * g->Wo + ow] = at + base;                                            \
      }                                                                                     \
    }                                                                                       \
  }                                                                                         \
                                                                                            \
  /* The 2x2 stride-2 case with every window whole: selects only, so the                   \
   * loops vectorise. Scan order a b / c d as in the general kernel. */                     \
  static void max2x2_plane_##SFX(const T *x, T *y, int64_t *ix, const pool_geom *g,         \
                                 int64_t base) {                                            \
    int64_t W = g->W, Wo = g->Wo;                                                           \
    for (int64_t oh = 0; oh < g->Ho; oh++) {                                                \
      const T *r0 = x + 2 * oh * W, *r1 = r0 + W;                                           \
      T *yo = y + oh * Wo;                                                                  \
      if (!ix) {                                                                            \
        for (int64_t ow = 0; ow < Wo; ow++) {                                               \
          T m = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];         \
          m = TAKES(b, m) ? b : m;                                                          \
          m = TAKES(c, m) ? c : m;                                                          \
          yo[ow] = TAKES(d, m) ? d : m;                                                     \
        }                                                                                   \
        continue;                                                                           \
      }                                                                                     \
      int64_t *io = ix + oh * Wo, row = base + 2 * oh * W;                                  \
      for (int64_t ow = 0; ow < Wo; ow++) {                                                 \
        T m = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];           \
        int64_t at = 0;                                                                     \
        if (TAKES(b, m)) m = b, at = 1;                                                     \
        if (TAKES(c, m)) m = c, at = W;                                                     \
        if (TAKES(d, m)) m = d, at = W + 1;                                                 \
        yo[ow] = m;                                                                         \
        io[ow] = row + 2 * ow + at;                                                         \
      }                                                                                     \
    }                                                                                       \
  }                                                                                         \
                                                                                            \
  static void avg_plane_##SFX(const T *x, T *y, const pool_geom *g) {                       \
    for (int64_t oh = 0; oh < g->Ho; oh++) {                                                \
      int64_t h0, h1, sh = avg_window(oh, g->sh, g->ph, g->kh, g->H, &h0, &h1);             \
      for (int64_t ow = 0; ow < g->Wo; ow++) {                                              \
        int64_t w0, w1, sw = avg_window(ow, g->sw, g->pw, g->kw, g->W, &w0, &w1);           \
        T s = 0;                                                                            \
        for (int64_t h = h0; h < h1; h++)                                                   \
          for (int64_t w = w0; w < w1; w++) s += x[h * g->W + w];                           \
        int64_t n = g->count_include_pad ? sh * sw : (h1 - h0) * (w1 - w0);                 \
        y[oh * g->Wo + ow] = n > 0 ? s / (T)n : 0;                                          \
      }                                                                                     \
    }                                                                                       \
  }                                                                                         \
                                                                                            \
  static void adaptive_plane_##SFX(const T *x, T *y, int64_t *ix, const pool_geom *g,       \
                                   bool is_max, int64_t base) {                             \
    for (int64_t oh = 0; oh < g->Ho; oh++) {                                                \
      int64_t h0, h1;                                                                       \
      adaptive_window(oh, g->Ho, g->H, &h0, &h1);                                           \
      for (int64_t ow = 0; ow < g->Wo; ow++) {                                              \
        int64_t w0, w1;                                                                     \
        adaptive_window(ow, g->Wo, g->W, &w0, &w1);                                         \
        int64_t at = h0 * g->W + w0;                                                        \
        T m = -INFINITY, s = 0;                                                             \
        for (int64_t h = h0; h < h1; h++)                                                   \
          for (int64_t w = w0; w < w1; w++) {                                               \
            T v = x[h * g->W + w];                                                          \
            if (!is_max) s += v;                                                            \
            else if (TAKES(v, m)) m = v, at = h * g->W + w;                                 \
          }                                                                                 \
        y[oh * g->Wo + ow] = is_max ? m : s / (T)((h1 - h0) * (w1 - w0));                   \
        if (ix) ix[oh * g->Wo + ow] = at + base;                                            \
      }                                                                                     \
    }                                                                                       \
  }                                                                                         \
                                                                                            \
  static T plane_mean_##SFX(const T *x, int64_t n) {                                        \
    T s = 0;                                                                                \
    _Pragma("omp simd reduction(+:s)") for (int64_t i = 0; i < n; i++) s += x[i];           \
    return s / (T)n;                                                                        \
  }                                                                                         \
                                                                                            \
  /* ---- backward: gx (zeroed, except for the global average) += ... ---- */              \
  static void max_back_plane_##SFX(T *gx, const T *gy, const int64_t *ix, int64_t n,        \
                                   int64_t hw, int64_t base) {                              \
    for (int64_t o = 0; o < n; o++) {                                                       \
      int64_t i = ix[o] - base;                                                             \
      if (i >= 0 && i < hw) gx[i] += gy[o]; /* an all-padding window has no argmax */       \
    }                                                                                       \
  }                                                                                         \
                                                                                            \
  static void avg_back_plane_##SFX(T *gx, const T *gy, const pool_geom *g) {                \
    for (int64_t oh = 0; oh < g->Ho; oh++) {                                                \
      int64_t h0, h1, sh = avg_window(oh, g->sh, g->ph, g->kh, g->H, &h0, &h1);             \
      for (int64_t ow = 0; ow < g->Wo; ow++) {                                              \
        int64_t w0, w1, sw = avg_window(ow, g->sw, g->pw, g->kw, g->W, &w0, &w1);           \
        int64_t n = g->count_include_pad ? sh * sw : (h1 - h0) * (w1 - w0);                 \
        if (n <= 0) continue;                                                               \
        T share = gy[oh * g->Wo + ow] / (T)n;                                               \
        for (int64_t h = h0; h < h1; h++)                                                   \
          for (int64_t w = w0; w < w1; w++) gx[h * g->W + w] += share;                      \
      }                                                                                     \
    }                                                                                       \
  }                                                                                         \
                                                                                            \
  static void adaptive_avg_back_plane_##SFX(T *gx, const T *gy, const pool_geom *g) {       \
    if (g->Ho == 1 && g->Wo == 1) { /* global: gx was left uninitialised */                 \
      T share = gy[0] / (T)(g->H * g->W);                                                   \
      for (int64_t i = 0; i < g->H * g->W; i++) gx[i] = share;                              \
      return;                                                                               \
    }                                                                                       \
    for (int64_t oh = 0; oh < g->Ho; oh++) {                                                \
      int64_t h0, h1;                                                                       \
      adaptive_window(oh, g->Ho, g->H, &h0, &h1);                                           \
      for (int64_t ow = 0; ow < g->Wo; ow++) {                                              \
        int64_t w0, w1;                                                                     \
        adaptive_window(ow, g->Wo, g->W, &w0, &w1);                                         \
        T share = gy[oh * g->Wo + ow] / (T)((h1 - h0) * (w1 - w0));                         \
        for (int64_t h = h0; h < h1; h++)                                                   \
          for (int64_t w = w0; w < w1; w++) gx[h * g->W + w] += share;                      \
      }                                                                                     \
    }                                                                                       \
  }                                                                                         \
                                                                                            \
  static void forward_plane_##SFX(pool_kind kind, const pool_geom *g, const T *x, T *y,     \
                                  int64_t *ix, int64_t base) {                              \
    switch (kind) {                                                                         \
    case MAX_POOL:                                                                          \
      if (is_2x2(g)) max2x2_plane_##SFX(x, y, ix, g, base);                                 \
      else max_plane_##SFX(x, y, ix, g, base);                                              \
      break;                                                                                \
    case AVG_POOL: avg_plane_##SFX(x, y, g); break;                                         \
    case ADAPTIVE_MAX: adaptive_plane_##SFX(x, y, ix, g, true, base); break;                \
    case ADAPTIVE_AVG:                                                                      \
      if (g->Ho == 1 && g->Wo == 1) y[0] = plane_mean_##SFX(x, g->H * g->W);                \
      else adaptive_plane_##SFX(x, y, NULL, g, false, 0);                                   \
      break;                                                                                \
    }                                                                                       \
  }                                                                                         \
                                                                                            \
  static void backward_plane_##SFX(pool_kind kind, const pool_geom *g, const T *gy,         \
                                   const int64_t *ix, T *gx, int64_t base) {                \
    switch (kind) {                                                                         \
    case MAX_POOL:                                                                          \
    case ADAPTIVE_MAX: max_back_plane_##SFX(gx, gy, ix, g->Ho * g->Wo, g->H * g->W, base); break; \
    case AVG_POOL: avg_back_plane_##SFX(gx, gy, g); break;                                  \
    case ADAPTIVE_AVG: adaptive_avg_back_plane_##SFX(gx, gy, g); break;                     \
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

/* ---- plane loops ------------------------------------------------------------ */

static void forward_planes(pool_kind kind, const pool_geom *g, const char *x, char *y, int64_t *ix,
                           int64_t base, bool f64) {
  int64_t in = g->H * g->W, out = g->Ho * g->Wo;
#pragma omp parallel for if (g->P * (in + out) > PARALLEL_GRAIN) schedule(static)
  for (int64_t p = 0; p < g->P; p++) {
    int64_t *ixp = ix ? ix + p * out : NULL;
    if (f64) forward_plane_f64(kind, g, (const double *)x + p * in, (double *)y + p * out, ixp, base);
    else forward_plane_f32(kind, g, (const float *)x + p * in, (float *)y + p * out, ixp, base);
  }
}

static void backward_planes(pool_kind kind, const pool_geom *g, const char *gy, const int64_t *ix,
                            char *gx, int64_t base, bool f64) {
  int64_t in = g->H * g->W, out = g->Ho * g->Wo;
#pragma omp parallel for if (g->P * (in + out) > PARALLEL_GRAIN) schedule(static)
  for (int64_t p = 0; p < g->P; p++) {
    const int64_t *ixp = ix ? ix + p * out : NULL;
    if (f64) backward_plane_f64(kind, g, (const double *)gy + p * out, ixp, (double *)gx + p * in, base);
    else backward_plane_f32(kind, g, (const float *)gy + p * out, ixp, (float *)gx + p * in, base);
  }
}

/* ---- checks and geometry ------------------------------------------------------ */

static int compute_dtype(int dtype) { return dtype == FC_FLOAT64 ? FC_FLOAT64 : FC_FLOAT32; }

/* A contiguous copy in `dtype` (or t itself), made outside autograd. */
static fc_tensor *dense(fc_tensor *t, int dtype) {
  int previous = grad_mode_push(false);
  fc_tensor *c = fc_to_dtype(t, dtype), *d = c ? fc_contiguous(c) : NULL;
  grad_mode_pop(previous);
  fc_release(c);
  return d;
}

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

/* ---- the ops --------------------------------------------------------------------
 * Node layout: iarg = kh, kw, sh, sw, ph, pw, dh, dw; arg = kind,
 * count_include_pad, base; saved[0] = the indices (max pools). */

static int pool_backward(fc_node *n, fc_tensor *gy, fc_tensor **gi) {
  pool_kind kind = (pool_kind)n->arg[0];
  const int64_t *shape = n->in_shape[0];
  int ndim = n->in_ndim[0], dtype = compute_dtype(n->in_dtype[0]);
  pool_geom g = {.P = ndim == 4 ? shape[0] * shape[1] : shape[0], .H = shape[ndim - 2],
                 .W = shape[ndim - 1], .Ho = gy->shape[ndim - 2], .Wo = gy->shape[ndim - 1]};
  int v[8];
  for (int i = 0; i < 8; i++) v[i] = (int)n->iarg[i];
  g.kh = v[0], g.kw = v[1], g.sh = v[2], g.sw = v[3], g.ph = v[4], g.pw = v[5], g.dh = v[6], g.dw = v[7];
  g.count_include_pad = n->arg[1] != 0;
  bool global = kind == ADAPTIVE_AVG && g.Ho == 1 && g.Wo == 1; /* writes every element */
  fc_tensor *gc = dense(gy, dtype);
  fc_tensor *gx = !gc ? NULL : global ? fc_empty(ndim, shape, dtype, gy->device)
                                      : fc_zeros(ndim, shape, dtype, gy->device);
  if (gx && gx->numel && gc->numel) {
    const int64_t *ix = n->nsaved ? (const int64_t *)elem_ptr(n->saved[0]) : NULL;
    backward_planes(kind, &g, elem_ptr(gc), ix, elem_ptr(gx), (int64_t)n->arg[2], dtype == FC_FLOAT64);
  }
  fc_release(gc);
  gi[0] = gx;
  return gx ? 0 : -1;
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
  int dtype = compute_dtype(x->dtype);
  int64_t shape[4];
  memcpy(shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
  shape[x->ndim - 2] = g->Ho, shape[x->ndim - 1] = g->Wo;
  fc_tensor *xc = dense(x, dtype);
  fc_tensor *y = xc ? fc_empty(x->ndim, shape, dtype, x->device) : NULL, *ix = NULL;
  if (y && is_max && (indices || grad) && !(ix = fc_empty(x->ndim, shape, FC_INT64, x->device))) {
    fc_release(y);
    y = NULL;
  }
  if (y && y->numel)
    forward_planes(kind, g, elem_ptr(xc), elem_ptr(y), ix ? (int64_t *)elem_ptr(ix) : NULL, base,
                   dtype == FC_FLOAT64);
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
