/* ops_norm.c — batch, layer and group normalisation: fused forward passes
 * and closed-form backward passes.
 *
 * Each op splits its contiguous input into blocks it normalises on their own:
 * - batch norm: a channel of [N, C, S] (S = the trailing dims multiplied), N
 *   runs of S elements C*S apart; for [N, C] (S == 1) a channel's values are
 *   C apart, so up to LANES neighbouring channels go together and the inner
 *   loops run across them;
 * - layer norm: a row of the last K elements;
 * - group norm: an (n, group) block of C/G * S contiguous elements.
 * One parallel iteration per block computes its mean and variance (two
 * passes; float64 totals, see SUM_BLOCK) and writes the output while the
 * block is still in cache; backward likewise sums and then writes in one
 * visit. (Batch norm writes in a second pass in memory order instead: its
 * blocks are scattered runs, see BN_GROUPS.) The closed-form gradient is
 *   gx = invstd * (g' - mean(g') - xhat * mean(g' xhat)),  g' = g * weight
 * (training batch norm, layer and group norm; eval batch norm is affine).
 * Saved for backward: the dense input, the per-block mean and 1/std in
 * float64, and the weight's values. float32 and float64 have kernels; the
 * half types compute in float32. */
#include "backend.h"
#include <omp.h>
#include <stdlib.h>

/* With trapping math GCC will not if-convert the relu compares; fastc never
 * reads the floating-point exception flags. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

enum { LANES = 64 };
/* Sums run in the data's own type over blocks of up to SUM_BLOCK elements
 * (full vector width) and add up in float64 across blocks, so float32
 * rounding stays at one block's scale. */
enum { SUM_BLOCK = 256 };

/* A channel's runs in [N, C, S] are short (S elements) and far apart (C*S),
 * which the hardware prefetcher follows poorly: each loop over runs asks
 * for the next run while it works on this one. */
static inline void prefetch_run(const void *p, int64_t bytes) {
  for (int64_t o = 0; o < bytes; o += 64) __builtin_prefetch((const char *)p + o);
}

/* ---- kernels -------------------------------------------------------------
 * A "run" is len contiguous elements; "lanes" are nc neighbouring channels
 * of an [N, C] tensor, a row of them every C elements. Where y is given
 * (batch norm fused with relu, y its output) the gradient g counts only
 * where y > 0, as relu's backward would pass it. */

#define NORM_KERNELS(T, SFX)                                                             \
  /* Mean and biased variance of nrun runs of len elements, rs apart. */                 \
  static void moments_##SFX(const T *x, int64_t nrun, int64_t len, int64_t rs,           \
                            double *mean, double *var) {                                 \
    double s = 0, q = 0, cnt = (double)(nrun * len);                                     \
    for (int64_t r = 0; r < nrun; r++) {                                                 \
      if (r + 1 < nrun) prefetch_run(x + (r + 1) * rs, len * (int64_t)sizeof(T));        \
      for (int64_t i0 = 0; i0 < len; i0 += SUM_BLOCK) {                                  \
        const T *p = x + r * rs + i0;                                                    \
        int64_t n = len - i0 < SUM_BLOCK ? len - i0 : SUM_BLOCK;                         \
        T b = 0;                                                                         \
        _Pragma("omp simd reduction(+:b)") for (int64_t i = 0; i < n; i++) b += p[i];    \
        s += b;                                                                          \
      }                                                                                  \
    }                                                                                    \
    double m = s / cnt;                                                                  \
    T tm = (T)m;                                                                         \
    for (int64_t r = 0; r < nrun; r++)                                                   \
      for (int64_t i0 = 0; i0 < len; i0 += SUM_BLOCK) {                                  \
        const T *p = x + r * rs + i0;                                                    \
        int64_t n = len - i0 < SUM_BLOCK ? len - i0 : SUM_BLOCK;                         \
        T b = 0;                                                                         \
        _Pragma("omp simd reduction(+:b)") for (int64_t i = 0; i < n; i++) {             \
          T d = p[i] - tm;                                                               \
          b += d * d;                                                                    \
        }                                                                                \
        q += b;                                                                          \
      }                                                                                  \
    /* the second pass measured around tm, not m: correct for the difference */         \
    double dm = m - (double)tm;                                                          \
    *mean = m, *var = q / cnt - dm * dm;                                                 \
    if (*var < 0) *var = 0;                                                              \
  }                                                                                      \
                                                                                         \
  /* y = x a + c over one run, then relu (NaN stays NaN, as in PyTorch). */              \
  static void affine_##SFX(T *y, const T *x, int64_t len, T a, T c, bool relu) {         \
    if (relu)                                                                            \
      for (int64_t i = 0; i < len; i++) {                                                \
        T v = x[i] * a + c;                                                              \
        y[i] = v < 0 ? 0 : v;                                                            \
      }                                                                                  \
    else                                                                                 \
      for (int64_t i = 0; i < len; i++) y[i] = x[i] * a + c;                             \
  }                                                                                      \
                                                                                         \
  /* Adds sum(g) and sum(g (x - mean)) over one run to *sg and *sgx. */                  \
  static void grad_sums_##SFX(const T *g, const T *x, const T *y, int64_t len,           \
                              double mean, double *sg, double *sgx) {                    \
    T tm = (T)mean;                                                                      \
    double a = 0, b = 0;                                                                 \
    for (int64_t i0 = 0; i0 < len; i0 += SUM_BLOCK) {                                    \
      int64_t n = len - i0 < SUM_BLOCK ? len - i0 : SUM_BLOCK;                           \
      const T *gp = g + i0, *xp = x + i0, *yp = y ? y + i0 : NULL;                       \
      T ba = 0, bb = 0;                                                                  \
      if (yp) {                                                                          \
        _Pragma("omp simd reduction(+:ba, bb)") for (int64_t i = 0; i < n; i++) {        \
          T gi = yp[i] <= 0 ? 0 : gp[i];                                                 \
          ba += gi, bb += gi * (xp[i] - tm);                                             \
        }                                                                                \
      } else {                                                                           \
        _Pragma("omp simd reduction(+:ba, bb)") for (int64_t i = 0; i < n; i++) {        \
          ba += gp[i], bb += gp[i] * (xp[i] - tm);                                       \
        }                                                                                \
      }                                                                                  \
      a += ba, b += bb;                                                                  \
    }                                                                                    \
    /* measured around tm: sum g (x - mean) = sum g (x - tm) - (mean - tm) sum g */      \
    *sg += a, *sgx += b - (mean - (double)tm) * a;                                       \
  }                                                                                      \
                                                                                         \
  /* gx = k1 g + k2 x + k3 over one run: every closed form here has that shape. */       \
  static void grad_linear_##SFX(T *gx, const T *g, const T *x, const T *y, int64_t len,  \
                                T k1, T k2, T k3) {                                      \
    if (y)                                                                               \
      for (int64_t i = 0; i < len; i++) gx[i] = (y[i] <= 0 ? 0 : k1 * g[i]) + k2 * x[i] + k3; \
    else                                                                                 \
      for (int64_t i = 0; i < len; i++) gx[i] = k1 * g[i] + k2 * x[i] + k3;              \
  }                                                                                      \
                                                                                         \
  static void lanes_moments_##SFX(const T *x, int64_t N, int64_t C, int64_t nc,          \
                                  double *mean, double *var) {                           \
    double s[LANES] = {0}, q[LANES] = {0};                                               \
    for (int64_t n = 0; n < N; n++)                                                      \
      for (int64_t l = 0; l < nc; l++) s[l] += x[n * C + l];                             \
    for (int64_t l = 0; l < nc; l++) mean[l] = s[l] / (double)N;                         \
    for (int64_t n = 0; n < N; n++)                                                      \
      for (int64_t l = 0; l < nc; l++) {                                                 \
        double d = x[n * C + l] - mean[l];                                               \
        q[l] += d * d;                                                                   \
      }                                                                                  \
    for (int64_t l = 0; l < nc; l++) var[l] = q[l] / (double)N;                          \
  }                                                                                      \
                                                                                         \
  static void lanes_affine_##SFX(T *y, const T *x, int64_t N, int64_t C, int64_t nc,     \
                                 const T *a, const T *c, bool relu) {                    \
    for (int64_t n = 0; n < N; n++) {                                                    \
      T *yr = y + n * C;                                                                 \
      const T *xr = x + n * C;                                                           \
      for (int64_t l = 0; l < nc; l++) {                                                 \
        T v = xr[l] * a[l] + c[l];                                                       \
        yr[l] = relu && v < 0 ? 0 : v;                                                   \
      }                                                                                  \
    }                                                                                    \
  }                                                                                      \
                                                                                         \
  static void lanes_grad_sums_##SFX(const T *g, const T *x, const T *y, int64_t N,       \
                                    int64_t C, int64_t nc, const double *mean,           \
                                    double *sg, double *sgx) {                           \
    for (int64_t n = 0; n < N; n++)                                                      \
      for (int64_t l = 0; l < nc; l++) {                                                 \
        int64_t i = n * C + l;                                                           \
        double gi = y && y[i] <= 0 ? 0 : g[i];                                           \
        sg[l] += gi, sgx[l] += gi * (x[i] - mean[l]);                                    \
      }                                                                                  \
  }                                                                                      \
                                                                                         \
  static void lanes_grad_linear_##SFX(T *gx, const T *g, const T *x, const T *y,         \
                                      int64_t N, int64_t C, int64_t nc, const T *k1,     \
                                      const T *k2, const T *k3) {                        \
    for (int64_t n = 0; n < N; n++)                                                      \
      for (int64_t l = 0; l < nc; l++) {                                                 \
        int64_t i = n * C + l;                                                           \
        T gi = y && y[i] <= 0 ? 0 : g[i];                                                \
        gx[i] = k1[l] * gi + k2[l] * x[i] + k3[l];                                       \
      }                                                                                  \
  }

NORM_KERNELS(float, f32)
NORM_KERNELS(double, f64)

/* ---- shared plumbing ------------------------------------------------------ */

/* out, computed in float32 for a half input, back in the input's dtype. */
static fc_tensor *to_input_dtype(fc_tensor *out, int dtype) {
  if (!out || out->dtype == dtype) return out;
  fc_tensor *h = fc_to_dtype(out, dtype);
  fc_release(out);
  return h;
}

static int check_input(const char *op, fc_tensor *x, int min_dims) {
  if (check_defined(op, x, "input") < 0) return -1;
  if (!is_float_dtype(x->dtype)) FAIL_INT("%s: input must be floating point, got %s", op, DTYPE(x));
  if (x->ndim < min_dims)
    FAIL_INT("%s: expected an input of at least %d dims, got shape %s", op, min_dims, SHAPE(x));
  return 0;
}

/* A per-channel vector argument: NULL, or a float tensor of shape [n]. */
static int check_vector(const char *op, fc_tensor *t, const char *what, int64_t n) {
  if (!t) return 0;
  if (!is_float_dtype(t->dtype)) FAIL_INT("%s: %s must be floating point, got %s", op, what, DTYPE(t));
  if (t->ndim != 1 || t->shape[0] != n)
    FAIL_INT("%s: %s must have shape [%lld], got %s", op, what, (long long)n, SHAPE(t));
  return 0;
}

/* The values of t (NULL: `fill`) as n doubles; NULL when out of memory. */
static double *values_or(fc_tensor *t, int64_t n, double fill) {
  double *v = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
  if (!v) return NULL;
  if (t) fc_to_doubles(t, v);
  else for (int64_t i = 0; i < n; i++) v[i] = fill;
  return v;
}

/* A float64 tensor of n values (a gradient, or saved statistics). */
static fc_tensor *doubles_tensor(const double *v, int ndim, const int64_t *shape) {
  return fc_from_buffer(v, FC_FLOAT64, ndim, shape, FC_FLOAT64, (fc_device){FC_CPU, 0});
}

static bool wants_grad(const fc_node *n, int i) { return i >= 0 && (n->next[i] || n->leaf[i]); }

/* Records the node of an op over x and its optional weight and bias (in
 * that order, the absent ones left out); iarg[0], iarg[1] say where the
 * weight and bias sit among the inputs (-1: absent). */
static fc_node *record_affine(const char *op, backward_fn fn, fc_tensor *out, fc_tensor *x,
                              fc_tensor *w, fc_tensor *b) {
  fc_tensor *in[3] = {x};
  int n = 1, wi = -1, bi = -1;
  if (w) wi = n, in[n++] = w;
  if (b) bi = n, in[n++] = b;
  fc_node *node = record(op, fn, out, n, in);
  if (node) node->iarg[0] = wi, node->iarg[1] = bi;
  return node;
}

/* Records the backward of layer or group norm: it keeps the float64 input
 * xd, the per-row mean and 1/std (st, shaped sshape), the float64 weight wv
 * (taken over; NULL when there is no weight) and `arg` in iarg[2]. Gives out,
 * or NULL with out released when recording fails. */
static fc_tensor *record_row_norm(const char *op, backward_fn fn, fc_tensor *out, fc_tensor *x, fc_tensor *weight,
                                  fc_tensor *bias, fc_tensor *xd, const double *st, const int64_t *sshape,
                                  fc_tensor *wv, int64_t arg) {
  fc_tensor *stats = doubles_tensor(st, 2, sshape);
  fc_node *n = stats && (wv || !weight) ? record_affine(op, fn, out, x, weight, bias) : NULL;
  if (n) {
    node_save(n, xd);
    node_save(n, stats);
    if (wv) node_save(n, wv);
    n->iarg[2] = arg;
  } else {
    fc_release(out);
    out = NULL;
  }
  fc_release(stats), fc_release(wv);
  return out;
}

/* ---- batch norm ------------------------------------------------------------ */

typedef struct {
  int64_t N, C, S;
  bool training, relu;
  double eps;
  const double *w, *b;          /* C each (1 and 0 where absent) */
  double *mean, *var, *invstd;  /* C each: computed when training, else given */
  double *sg, *sgx;             /* backward: per-channel sums */
} bn_args;

static bool bn_lanes(const bn_args *a) { return a->S == 1 && a->C > 1; }
static int64_t bn_groups(const bn_args *a) { return bn_lanes(a) ? (a->C + LANES - 1) / LANES : a->C; }
/* Channel c as runs: N runs of S, C*S apart (one run of N*S when C == 1). */
static int64_t bn_nrun(const bn_args *a) { return a->C == 1 ? 1 : a->N; }
static int64_t bn_len(const bn_args *a) { return a->C == 1 ? a->N * a->S : a->S; }

/* Batch norm runs in two phases. Phase 1, per channel group in parallel:
 * the statistics (forward, training) or the gradient sums (backward). A
 * channel of [N, C, S] is N short runs far apart, so this phase prefetches
 * the next run as it goes. Phase 2 is affine per channel, y = a x + c or
 * gx = k1 g + k2 x + k3, and walks the tensor in memory order. For [N, C]
 * (lanes) both phases run within a group, already in memory order. */
#define BN_GROUPS(T, SFX)                                                                \
  /* Phase 1 of the forward for channels c0 .. c0 + nc; lanes do phase 2 too. */         \
  static void bn_forward_##SFX(T *y, const T *x, const bn_args *a, int64_t c0,           \
                               int64_t nc) {                                             \
    int64_t N = a->N, C = a->C, S = a->S;                                                \
    if (a->training) {                                                                   \
      if (bn_lanes(a)) lanes_moments_##SFX(x + c0, N, C, nc, a->mean + c0, a->var + c0); \
      else moments_##SFX(x + c0 * S, bn_nrun(a), bn_len(a), C * S, a->mean + c0, a->var + c0); \
      for (int64_t c = c0; c < c0 + nc; c++) a->invstd[c] = 1 / sqrt(a->var[c] + a->eps); \
    }                                                                                    \
    if (!bn_lanes(a)) return;                                                            \
    T sc[LANES], sh[LANES];                                                              \
    for (int64_t l = 0; l < nc; l++) {                                                   \
      double k = a->w[c0 + l] * a->invstd[c0 + l];                                       \
      sc[l] = (T)k, sh[l] = (T)(a->b[c0 + l] - a->mean[c0 + l] * k);                     \
    }                                                                                    \
    lanes_affine_##SFX(y + c0, x + c0, N, C, nc, sc, sh, a->relu);                       \
  }                                                                                      \
                                                                                         \
  /* Phase 1 of the backward: sums for channels c0 .. into a->sg, a->sgx; lanes          \
   * also write gx (when given). */                                                      \
  static void bn_backward_##SFX(T *gx, const T *g, const T *x, const T *y,               \
                                const bn_args *a, int64_t c0, int64_t nc) {              \
    int64_t N = a->N, C = a->C, S = a->S, nrun = bn_nrun(a), len = bn_len(a);            \
    double *sg = a->sg + c0, *sgx = a->sgx + c0;                                         \
    for (int64_t l = 0; l < nc; l++) sg[l] = sgx[l] = 0;                                 \
    if (!bn_lanes(a)) {                                                                  \
      for (int64_t r = 0; r < nrun; r++) {                                               \
        int64_t o = c0 * S + r * C * S, next = o + C * S, bytes = len * (int64_t)sizeof(T); \
        if (r + 1 < nrun) {                                                              \
          prefetch_run(g + next, bytes), prefetch_run(x + next, bytes);                  \
          if (y) prefetch_run(y + next, bytes);                                          \
        }                                                                                \
        grad_sums_##SFX(g + o, x + o, y ? y + o : NULL, len, a->mean[c0], sg, sgx);      \
      }                                                                                  \
      return;                                                                            \
    }                                                                                    \
    lanes_grad_sums_##SFX(g + c0, x + c0, y ? y + c0 : NULL, N, C, nc, a->mean + c0, sg, sgx); \
    if (!gx) return;                                                                     \
    T k1[LANES], k2[LANES], k3[LANES];                                                   \
    for (int64_t l = 0; l < nc; l++) {                                                   \
      double k[3];                                                                       \
      bn_grad_coefs(a, c0 + l, k);                                                       \
      k1[l] = (T)k[0], k2[l] = (T)k[1], k3[l] = (T)k[2];                                 \
    }                                                                                    \
    lanes_grad_linear_##SFX(gx + c0, g + c0, x + c0, y ? y + c0 : NULL, N, C, nc, k1, k2, k3); \
  }                                                                                      \
                                                                                         \
  /* Phase 2, forward: y = sc[c] x + sh[c], run after run. */                            \
  static void bn_affine_##SFX(T *y, const T *x, const bn_args *a, const T *sc, const T *sh) { \
    int64_t C = a->C, S = a->S, runs = a->N * C;                                         \
    _Pragma("omp parallel for if (runs * S > PARALLEL_GRAIN) schedule(static)")          \
    for (int64_t i = 0; i < runs; i++)                                                   \
      affine_##SFX(y + i * S, x + i * S, S, sc[i % C], sh[i % C], a->relu);             \
  }                                                                                      \
                                                                                         \
  /* Phase 2, backward: gx = k1[c] g + k2[c] x + k3[c] (k: k1s, k2s, k3s). */             \
  static void bn_linear_##SFX(T *gx, const T *g, const T *x, const T *y, const bn_args *a, \
                              const T *k) {                                              \
    int64_t C = a->C, S = a->S, runs = a->N * C;                                         \
    _Pragma("omp parallel for if (runs * S > PARALLEL_GRAIN) schedule(static)")          \
    for (int64_t i = 0; i < runs; i++) {                                                 \
      int64_t c = i % C, o = i * S;                                                      \
      grad_linear_##SFX(gx + o, g + o, x + o, y ? y + o : NULL, S, k[c], k[C + c], k[2 * C + c]); \
    }                                                                                    \
  }

/* gx = k1 g + k2 x + k3 for channel c: w invstd, and in training the terms
 * through the batch mean and variance, which depend on x too. */
static void bn_grad_coefs(const bn_args *a, int64_t c, double k[3]) {
  double is = a->invstd[c], w = a->w[c], M = (double)(a->N * a->S);
  k[0] = w * is, k[1] = 0, k[2] = 0;
  if (!a->training) return;
  k[1] = -w * is * is * is * a->sgx[c] / M;
  k[2] = -w * is * a->sg[c] / M - k[1] * a->mean[c];
}

BN_GROUPS(float, f32)
BN_GROUPS(double, f64)

static void bn_geometry(bn_args *a, const fc_tensor *x) {
  a->N = x->shape[0], a->C = x->shape[1], a->S = 1;
  for (int d = 2; d < x->ndim; d++) a->S *= x->shape[d];
}

/* Phase 1 over every channel group. */
static void bn_phase1(char *gx, const char *g, const char *x, const char *y, int dtype, const bn_args *a,
                      bool backward) {
  int64_t groups = bn_groups(a), total = a->N * a->C * a->S;
#pragma omp parallel for if (total > PARALLEL_GRAIN) schedule(static)
  for (int64_t i = 0; i < groups; i++) {
    int64_t c0 = bn_lanes(a) ? i * LANES : i, nc = bn_lanes(a) ? (a->C - c0 < LANES ? a->C - c0 : LANES) : 1;
    if (backward && dtype == FC_FLOAT64)
      bn_backward_f64((double *)gx, (const double *)g, (const double *)x, (const double *)y, a, c0, nc);
    else if (backward)
      bn_backward_f32((float *)gx, (const float *)g, (const float *)x, (const float *)y, a, c0, nc);
    else if (dtype == FC_FLOAT64)
      bn_forward_f64((double *)y, (const double *)x, a, c0, nc);
    else
      bn_forward_f32((float *)y, (const float *)x, a, c0, nc);
  }
}

/* n per-channel coefficient rows of C as dtype (float or double). */
static void *coef_rows(int dtype, int n, int64_t C, const double *v) {
  size_t es = dtype == FC_FLOAT64 ? sizeof(double) : sizeof(float);
  char *k = malloc(es * (size_t)(n * C + 1));
  for (int64_t i = 0; k && i < n * C; i++) {
    if (dtype == FC_FLOAT64) ((double *)k)[i] = v[i];
    else ((float *)k)[i] = (float)v[i];
  }
  return k;
}

static int bn_run_forward(char *y, const char *x, int dtype, const bn_args *a) {
  bn_phase1(NULL, NULL, x, y, dtype, a, false);
  if (bn_lanes(a)) return 0;
  int64_t C = a->C;
  double *v = malloc(sizeof(double) * (size_t)(2 * C + 1));
  for (int64_t c = 0; v && c < C; c++) {
    v[c] = a->w[c] * a->invstd[c];
    v[C + c] = a->b[c] - a->mean[c] * v[c];
  }
  void *k = v ? coef_rows(dtype, 2, C, v) : NULL;
  free(v);
  if (!k) FAIL_INT("batch_norm: out of memory");
  if (dtype == FC_FLOAT64) bn_affine_f64((double *)y, (const double *)x, a, k, (double *)k + C);
  else bn_affine_f32((float *)y, (const float *)x, a, k, (float *)k + C);
  free(k);
  return 0;
}

static int bn_run_backward(char *gx, const char *g, const char *x, const char *y, int dtype,
                           const bn_args *a) {
  bn_phase1(gx, g, x, y, dtype, a, true);
  if (!gx || bn_lanes(a)) return 0;
  int64_t C = a->C;
  double *v = malloc(sizeof(double) * (size_t)(3 * C + 1));
  for (int64_t c = 0; v && c < C; c++) {
    double k[3];
    bn_grad_coefs(a, c, k);
    v[c] = k[0], v[C + c] = k[1], v[2 * C + c] = k[2];
  }
  void *k = v ? coef_rows(dtype, 3, C, v) : NULL;
  free(v);
  if (!k) FAIL_INT("batch_norm backward: out of memory");
  if (dtype == FC_FLOAT64)
    bn_linear_f64((double *)gx, (const double *)g, (const double *)x, (const double *)y, a, k);
  else
    bn_linear_f32((float *)gx, (const float *)g, (const float *)x, (const float *)y, a, k);
  free(k);
  return 0;
}

/* Saved: [0] the dense input, [1] stats [3, C] (mean, invstd, weight) in
 * float64, [2] the output when fused with relu. iarg[2]: training. */
static int batch_norm_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  fc_tensor *x = n->saved[0], *stats = n->saved[1], *y = n->nsaved > 2 ? n->saved[2] : NULL;
  int dtype = x->dtype, wi = (int)n->iarg[0], bi = (int)n->iarg[1];
  bn_args a = {.training = n->iarg[2] != 0};
  bn_geometry(&a, x);
  const double *st = (const double *)elem_ptr(stats);
  a.mean = (double *)st, a.invstd = (double *)st + a.C, a.w = st + 2 * a.C;
  double *sums = malloc(sizeof(double) * (size_t)(2 * a.C + 1));
  fc_tensor *gd = sums ? dense_in(g, dtype) : NULL;
  fc_tensor *gx = gd && wants_grad(n, 0) ? fc_empty(x->ndim, x->shape, dtype, x->device) : NULL;
  int rc = gd && (gx || !wants_grad(n, 0)) ? 0 : -1;
  if (rc == 0) {
    a.sg = sums, a.sgx = sums + a.C;
    if (x->numel)
      rc = bn_run_backward(gx ? elem_ptr(gx) : NULL, elem_ptr(gd), elem_ptr(x), y ? elem_ptr(y) : NULL, dtype, &a);
    else
      for (int64_t c = 0; c < 2 * a.C; c++) sums[c] = 0;
    gi[0] = gx, gx = NULL;
    if (rc == 0 && wants_grad(n, bi)) rc = (gi[bi] = doubles_tensor(a.sg, 1, &a.C)) ? 0 : -1;
    for (int64_t c = 0; c < a.C; c++) a.sgx[c] *= a.invstd[c]; /* sum g * xhat */
    if (rc == 0 && wants_grad(n, wi)) rc = (gi[wi] = doubles_tensor(a.sgx, 1, &a.C)) ? 0 : -1;
  } else if (!sums) {
    fc_set_error("batch_norm backward: out of memory");
  }
  fc_release(gx);
  fc_release(gd);
  free(sums);
  return rc;
}

static int check_batch_norm_args(const char *op, fc_tensor *x, fc_tensor *rm, fc_tensor *rv,
                                 fc_tensor *w, fc_tensor *b, int training, double momentum,
                                 double eps) {
  if (check_input(op, x, 2) < 0) return -1;
  const fc_tensor *all[5] = {x, rm, rv, w, b};
  const fc_tensor *present[5];
  int np = 0;
  for (int i = 0; i < 5; i++)
    if (all[i]) present[np++] = all[i];
  if (check_same_device(op, np, present) < 0) return -1;
  int64_t C = x->shape[1];
  if (check_vector(op, w, "weight", C) < 0 || check_vector(op, b, "bias", C) < 0 ||
      check_vector(op, rm, "running_mean", C) < 0 || check_vector(op, rv, "running_var", C) < 0)
    return -1;
  if (!rm != !rv) FAIL_INT("%s: give both running_mean and running_var, or neither", op);
  if (!training && !rm)
    FAIL_INT("%s: evaluation mode normalises with running_mean and running_var; none given", op);
  if (!(momentum >= 0 && momentum <= 1)) FAIL_INT("%s: momentum must be in [0, 1], got %g", op, momentum);
  if (!(eps >= 0)) FAIL_INT("%s: eps must be non-negative, got %g", op, eps);
  int64_t per_channel = C ? x->numel / C : 0;
  if (training && per_channel <= 1)
    FAIL_INT("%s: training needs more than 1 value per channel, got input of shape %s", op, SHAPE(x));
  if (training && rm && (check_inplace(op, rm) < 0 || check_inplace(op, rv) < 0)) return -1;
  return 0;
}

/* running = (1 - momentum) running + momentum batch, with the batch
 * variance made unbiased (times M / (M - 1)) as PyTorch does. */
static int update_running(fc_tensor *rm, fc_tensor *rv, const bn_args *a, double momentum) {
  int64_t C = a->C;
  double M = (double)(a->N * a->S);
  double *m = values_or(rm, C, 0), *v = values_or(rv, C, 0);
  int rc = m && v ? 0 : -1;
  for (int64_t c = 0; rc == 0 && c < C; c++) {
    m[c] = (1 - momentum) * m[c] + momentum * a->mean[c];
    v[c] = (1 - momentum) * v[c] + momentum * a->var[c] * M / (M - 1);
  }
  fc_tensor *tm = rc == 0 ? doubles_tensor(m, 1, &C) : NULL, *tv = tm ? doubles_tensor(v, 1, &C) : NULL;
  int previous = grad_mode_push(false);
  rc = tm && tv && fc_copy_(rm, tm) == 0 && fc_copy_(rv, tv) == 0 ? 0 : -1;
  grad_mode_pop(previous);
  fc_release(tm), fc_release(tv);
  free(m), free(v);
  return rc;
}

static fc_tensor *batch_norm_op(const char *op, fc_tensor *x, fc_tensor *rm, fc_tensor *rv,
                                fc_tensor *w, fc_tensor *b, int training, double momentum,
                                double eps, bool relu) {
  if (check_batch_norm_args(op, x, rm, rv, w, b, training, momentum, eps) < 0) return NULL;
  if (x->device.type == FC_CUDA) /* cuDNN: backend_nn.c */
    return cuda_batch_norm(op, x, rm, rv, w, b, training, momentum, eps, relu);
  bn_args a = {.training = training != 0, .relu = relu, .eps = eps};
  bn_geometry(&a, x);
  int64_t C = a.C, sshape[2] = {3, C};
  int dtype = kernel_dtype(x->dtype);
  /* stats: mean, invstd, weight (saved for backward), then var, bias */
  double *st = malloc(sizeof(double) * (size_t)(5 * C + 1));
  fc_tensor *xd = st ? dense_in(x, dtype) : NULL;
  fc_tensor *out = xd ? fc_empty(x->ndim, x->shape, dtype, x->device) : NULL;
  if (!st) fc_set_error("%s: out of memory", op);
  if (!out) goto fail;
  a.mean = st, a.invstd = st + C, a.var = st + 3 * C;
  if (w) fc_to_doubles(w, st + 2 * C);
  else for (int64_t c = 0; c < C; c++) st[2 * C + c] = 1;
  if (b) fc_to_doubles(b, st + 4 * C);
  else for (int64_t c = 0; c < C; c++) st[4 * C + c] = 0;
  a.w = st + 2 * C, a.b = st + 4 * C;
  if (!a.training) {
    fc_to_doubles(rm, a.mean);
    fc_to_doubles(rv, a.var);
    for (int64_t c = 0; c < C; c++) a.invstd[c] = 1 / sqrt(a.var[c] + eps);
  }
  if (x->numel && bn_run_forward(elem_ptr(out), elem_ptr(xd), dtype, &a) < 0) goto fail;
  if (a.training && rm && update_running(rm, rv, &a, momentum) < 0) goto fail;
  fc_tensor *inputs[3] = {x, w, b};
  if (grad_needed(3, inputs)) {
    fc_tensor *stats = doubles_tensor(st, 2, sshape);
    fc_node *n = stats ? record_affine(op, batch_norm_backward, out, x, w, b) : NULL;
    if (n) {
      node_save(n, xd);
      node_save(n, stats);
      if (relu) node_save(n, out);
      n->iarg[2] = a.training;
    }
    fc_release(stats);
    if (!n) goto fail;
  }
  fc_release(xd);
  free(st);
  return to_input_dtype(out, x->dtype);
fail:
  fc_release(out);
  fc_release(xd);
  free(st);
  return NULL;
}

fc_tensor *fc_batch_norm(fc_tensor *x, fc_tensor *running_mean, fc_tensor *running_var,
                         fc_tensor *weight, fc_tensor *bias, int training, double momentum,
                         double eps) {
  return batch_norm_op("batch_norm", x, running_mean, running_var, weight, bias, training,
                       momentum, eps, false);
}

fc_tensor *fc_batch_norm_relu(fc_tensor *x, fc_tensor *running_mean, fc_tensor *running_var,
                              fc_tensor *weight, fc_tensor *bias, int training, double momentum,
                              double eps) {
  return batch_norm_op("batch_norm_relu", x, running_mean, running_var, weight, bias, training,
                       momentum, eps, true);
}

/* ---- layer norm ------------------------------------------------------------
 * x is [M, K] for K = the last `ndims` dims multiplied; the weight and bias
 * are shaped like those dims. Rows run in parallel; the weight and bias
 * gradients sum over rows into one partial per thread. */

typedef struct {
  int64_t M, K;
  double eps;
  double *mean, *invstd; /* M each */
} ln_args;

#define LN_KERNELS(T, SFX)                                                               \
  static void ln_forward_##SFX(T *y, const T *x, const T *w, const T *b,                 \
                               const ln_args *a) {                                       \
    int64_t K = a->K;                                                                    \
    _Pragma("omp parallel for if (a->M * K > PARALLEL_GRAIN) schedule(static)")          \
    for (int64_t r = 0; r < a->M; r++) {                                                 \
      const T *xr = x + r * K;                                                           \
      T *yr = y + r * K;                                                                 \
      double m, v;                                                                       \
      moments_##SFX(xr, 1, K, K, &m, &v);                                                \
      a->mean[r] = m, a->invstd[r] = 1 / sqrt(v + a->eps);                               \
      T tm = (T)m, ti = (T)a->invstd[r];                                                 \
      for (int64_t k = 0; k < K; k++) yr[k] = (xr[k] - tm) * ti * w[k] + b[k];           \
    }                                                                                    \
  }                                                                                      \
                                                                                         \
  /* One row: with g' = g w, gx = invstd (g' - mean(g') - xhat mean(g' xhat)); adds      \
   * g xhat and g into the partial weight and bias gradients pw, pb. */                  \
  static void ln_backward_row_##SFX(T *gx, const T *g, const T *x, const T *w,           \
                                    int64_t K, double mean, double is, double *pw,       \
                                    double *pb) {                                        \
    if (pw)                                                                              \
      for (int64_t k = 0; k < K; k++) {                                                  \
        pw[k] += g[k] * ((x[k] - mean) * is);                                            \
        pb[k] += g[k];                                                                   \
      }                                                                                  \
    if (!gx) return;                                                                     \
    double sa = 0, sb = 0;                                                               \
    _Pragma("omp simd reduction(+:sa, sb)") for (int64_t k = 0; k < K; k++) {            \
      double gw = (double)g[k] * w[k];                                                   \
      sa += gw * (x[k] - mean), sb += gw;                                                \
    }                                                                                    \
    double k2 = -is * is * is * sa / (double)K, k3 = -is * sb / (double)K - k2 * mean;   \
    T ti = (T)is, t2 = (T)k2, t3 = (T)k3;                                                \
    for (int64_t k = 0; k < K; k++) gx[k] = ti * w[k] * g[k] + t2 * x[k] + t3;           \
  }                                                                                      \
                                                                                         \
  /* partial: nthreads * 2K doubles of scratch, or NULL when no weight/bias grad. */     \
  static void ln_backward_##SFX(T *gx, const T *g, const T *x, const T *w,               \
                                const ln_args *a, double *partial, int nthreads) {       \
    int64_t M = a->M, K = a->K;                                                          \
    _Pragma("omp parallel num_threads(nthreads)") {                                      \
      int t = omp_get_thread_num(), nt = omp_get_num_threads();                          \
      int64_t r0 = M * t / nt, r1 = M * (t + 1) / nt;                                    \
      double *pw = partial ? partial + (int64_t)t * 2 * K : NULL, *pb = pw ? pw + K : NULL; \
      if (pw) memset(pw, 0, sizeof(double) * (size_t)(2 * K));                           \
      for (int64_t r = r0; r < r1; r++)                                                  \
        ln_backward_row_##SFX(gx ? gx + r * K : NULL, g + r * K, x + r * K, w, K,        \
                              a->mean[r], a->invstd[r], pw, pb);                         \
    }                                                                                    \
  }

LN_KERNELS(float, f32)
LN_KERNELS(double, f64)

/* The values of a weight-like tensor (NULL: fill) as n elements of dtype. */
static void *typed_values(fc_tensor *t, int64_t n, double fill, int dtype) {
  double *v = values_or(t, n, fill);
  if (!v || dtype == FC_FLOAT64) return v;
  float *f = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
  for (int64_t i = 0; f && i < n; i++) f[i] = (float)v[i];
  free(v);
  return f;
}

/* Saved: [0] dense input, [1] stats [2, M] (mean, invstd), [2] the weight's
 * values (K doubles) when there is a weight. iarg[2]: ndims. */
static int layer_norm_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  fc_tensor *x = n->saved[0], *stats = n->saved[1];
  int dtype = x->dtype, wi = (int)n->iarg[0], bi = (int)n->iarg[1], ndims = (int)n->iarg[2];
  ln_args a = {.K = shape_numel(ndims, x->shape + x->ndim - ndims)};
  a.M = a.K ? x->numel / a.K : 0;
  a.mean = (double *)elem_ptr(stats), a.invstd = a.mean + a.M;
  bool need_wb = wants_grad(n, wi) || wants_grad(n, bi);
  int nt = num_threads() < 1 ? 1 : num_threads();
  if (x->numel <= PARALLEL_GRAIN) nt = 1;
  void *w = typed_values(n->nsaved > 2 ? n->saved[2] : NULL, a.K, 1, dtype);
  double *partial = need_wb ? calloc((size_t)nt * 2 * (size_t)(a.K ? a.K : 1), sizeof(double)) : NULL;
  fc_tensor *gd = w && (partial || !need_wb) ? dense_in(g, dtype) : NULL;
  fc_tensor *gx = gd && wants_grad(n, 0) ? fc_empty(x->ndim, x->shape, dtype, x->device) : NULL;
  int rc = gd && (gx || !wants_grad(n, 0)) ? 0 : -1;
  if (rc < 0 && (!w || (need_wb && !partial))) fc_set_error("layer_norm backward: out of memory");
  if (rc == 0 && x->numel) {
    if (dtype == FC_FLOAT64)
      ln_backward_f64(gx ? (double *)elem_ptr(gx) : NULL, (const double *)elem_ptr(gd),
                      (const double *)elem_ptr(x), w, &a, partial, nt);
    else
      ln_backward_f32(gx ? (float *)elem_ptr(gx) : NULL, (const float *)elem_ptr(gd),
                      (const float *)elem_ptr(x), w, &a, partial, nt);
  }
  if (rc == 0 && need_wb) {
    for (int t = 1; t < nt; t++)
      for (int64_t k = 0; k < 2 * a.K; k++) partial[k] += partial[(int64_t)t * 2 * a.K + k];
    const int64_t *wshape = x->shape + x->ndim - ndims;
    if (wants_grad(n, wi)) rc = (gi[wi] = doubles_tensor(partial, ndims, wshape)) ? 0 : -1;
    if (rc == 0 && wants_grad(n, bi)) rc = (gi[bi] = doubles_tensor(partial + a.K, ndims, wshape)) ? 0 : -1;
  }
  gi[0] = rc == 0 ? gx : NULL;
  if (rc < 0) fc_release(gx);
  fc_release(gd);
  free(w), free(partial);
  return rc;
}

/* weight/bias: NULL or shaped exactly like the last ndims dims of x. */
static int check_trailing(const char *op, const fc_tensor *x, int ndims, fc_tensor *t, const char *what) {
  if (!t) return 0;
  if (!is_float_dtype(t->dtype)) FAIL_INT("%s: %s must be floating point, got %s", op, what, DTYPE(t));
  bool same = t->ndim == ndims;
  for (int d = 0; same && d < ndims; d++) same = t->shape[d] == x->shape[x->ndim - ndims + d];
  if (!same)
    FAIL_INT("%s: %s of shape %s does not match the normalised shape %s (the last %d dims of %s)", op,
             what, SHAPE(t), dims_str(ndims, x->shape + x->ndim - ndims, (char[96]){0}, 96), ndims,
             SHAPE(x));
  return 0;
}

fc_tensor *fc_layer_norm(fc_tensor *x, int ndims, fc_tensor *weight, fc_tensor *bias, double eps) {
  const char *op = "layer_norm";
  if (check_input(op, x, 1) < 0) return NULL;
  if (ndims < 1 || ndims > x->ndim)
    FAIL("%s: ndims must be 1..%d for an input of shape %s, got %d", op, x->ndim, SHAPE(x), ndims);
  const fc_tensor *dev[3] = {x, weight ? weight : x, bias ? bias : x};
  if (check_same_device(op, 3, dev) < 0) return NULL;
  if (check_trailing(op, x, ndims, weight, "weight") < 0 || check_trailing(op, x, ndims, bias, "bias") < 0)
    return NULL;
  if (!(eps >= 0)) FAIL("%s: eps must be non-negative, got %g", op, eps);
  int dtype = kernel_dtype(x->dtype);
  ln_args a = {.K = shape_numel(ndims, x->shape + x->ndim - ndims), .eps = eps};
  a.M = a.K ? x->numel / a.K : 0;
  int64_t sshape[2] = {2, a.M};
  double *st = calloc((size_t)(2 * a.M + 1), sizeof(double));
  void *w = typed_values(weight, a.K, 1, dtype), *b = typed_values(bias, a.K, 0, dtype);
  fc_tensor *xd = st && w && b ? dense_in(x, dtype) : NULL;
  fc_tensor *out = xd ? fc_empty(x->ndim, x->shape, dtype, x->device) : NULL;
  if (!st || !w || !b) fc_set_error("%s: out of memory", op);
  if (out && x->numel) {
    a.mean = st, a.invstd = st + a.M;
    if (dtype == FC_FLOAT64) ln_forward_f64((double *)elem_ptr(out), (const double *)elem_ptr(xd), w, b, &a);
    else ln_forward_f32((float *)elem_ptr(out), (const float *)elem_ptr(xd), w, b, &a);
  }
  fc_tensor *inputs[3] = {x, weight, bias};
  if (out && grad_needed(3, inputs)) {
    fc_tensor *wv = weight ? dense_in(weight, FC_FLOAT64) : NULL;
    out = record_row_norm(op, layer_norm_backward, out, x, weight, bias, xd, st, sshape, wv, ndims);
  }
  fc_release(xd);
  free(st), free(w), free(b);
  return to_input_dtype(out, x->dtype);
}

/* ---- group norm ------------------------------------------------------------
 * x is [N, C, S]; the C channels form G groups of Cg = C / G, so block
 * (n, g) is Cg * S contiguous elements with its own mean and variance, and
 * channel c inside it is scaled by weight[c]. */

typedef struct {
  int64_t N, C, S, G;
  double eps;
  const double *w, *b;   /* C each */
  double *mean, *invstd; /* N * G each */
  double *sg, *sgx;      /* backward: N * C each, per (n, c) sums */
} gn_args;

#define GN_KERNELS(T, SFX)                                                               \
  static void gn_forward_##SFX(T *y, const T *x, const gn_args *a) {                     \
    int64_t Cg = a->C / a->G, S = a->S, blocks = a->N * a->G;                            \
    _Pragma("omp parallel for if (blocks * Cg * S > PARALLEL_GRAIN) schedule(static)")   \
    for (int64_t i = 0; i < blocks; i++) {                                               \
      const T *xb = x + i * Cg * S;                                                      \
      double m, v;                                                                       \
      moments_##SFX(xb, 1, Cg * S, Cg * S, &m, &v);                                      \
      double is = 1 / sqrt(v + a->eps);                                                  \
      a->mean[i] = m, a->invstd[i] = is;                                                 \
      for (int64_t j = 0; j < Cg; j++) {                                                 \
        int64_t c = (i % a->G) * Cg + j;                                                 \
        double k = a->w[c] * is;                                                         \
        affine_##SFX(y + (i * Cg + j) * S, xb + j * S, S, (T)k, (T)(a->b[c] - m * k), false); \
      }                                                                                  \
    }                                                                                    \
  }                                                                                      \
                                                                                         \
  /* Per block: the channel sums, then (when gx) the closed form with                    \
   * A = sum g' (x - mean) and B = sum g' over the block, g' = g w[c]. */                \
  static void gn_backward_##SFX(T *gx, const T *g, const T *x, const gn_args *a) {       \
    int64_t Cg = a->C / a->G, S = a->S, blocks = a->N * a->G;                            \
    double K = (double)(Cg * S);                                                         \
    _Pragma("omp parallel for if (blocks * Cg * S > PARALLEL_GRAIN) schedule(static)")   \
    for (int64_t i = 0; i < blocks; i++) {                                               \
      double m = a->mean[i], is = a->invstd[i], A = 0, B = 0;                            \
      int64_t c0 = (i % a->G) * Cg;                                                      \
      for (int64_t j = 0; j < Cg; j++) {                                                 \
        int64_t o = (i * Cg + j) * S;                                                    \
        double *sg = a->sg + i * Cg + j, *sgx = a->sgx + i * Cg + j;                     \
        *sg = *sgx = 0;                                                                  \
        grad_sums_##SFX(g + o, x + o, NULL, S, m, sg, sgx);                              \
        A += a->w[c0 + j] * *sgx, B += a->w[c0 + j] * *sg;                               \
      }                                                                                  \
      if (!gx) continue;                                                                 \
      double k2 = -is * is * is * A / K, k3 = -is * B / K - k2 * m;                      \
      for (int64_t j = 0; j < Cg; j++) {                                                 \
        int64_t o = (i * Cg + j) * S;                                                    \
        grad_linear_##SFX(gx + o, g + o, x + o, NULL, S, (T)(is * a->w[c0 + j]), (T)k2, (T)k3); \
      }                                                                                  \
    }                                                                                    \
  }

GN_KERNELS(float, f32)
GN_KERNELS(double, f64)

static void gn_geometry(gn_args *a, const fc_tensor *x, int64_t groups) {
  a->N = x->shape[0], a->C = x->shape[1], a->S = 1, a->G = groups;
  for (int d = 2; d < x->ndim; d++) a->S *= x->shape[d];
}

/* Saved: [0] dense input, [1] stats [2, N*G] (mean, invstd), [2] the
 * weight's values (C doubles) when there is a weight. iarg[2]: groups. */
static int group_norm_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  fc_tensor *x = n->saved[0], *stats = n->saved[1];
  int dtype = x->dtype, wi = (int)n->iarg[0], bi = (int)n->iarg[1];
  gn_args a;
  gn_geometry(&a, x, n->iarg[2]);
  int64_t NG = a.N * a.G, NC = a.N * a.C, C = a.C, Cg = a.C / a.G;
  a.mean = (double *)elem_ptr(stats), a.invstd = a.mean + NG;
  double *w = values_or(n->nsaved > 2 ? n->saved[2] : NULL, C, 1);
  double *sums = calloc((size_t)(2 * NC + 2 * C + 1), sizeof(double));
  fc_tensor *gd = w && sums ? dense_in(g, dtype) : NULL;
  fc_tensor *gx = gd && wants_grad(n, 0) ? fc_empty(x->ndim, x->shape, dtype, x->device) : NULL;
  int rc = gd && (gx || !wants_grad(n, 0)) ? 0 : -1;
  if (!w || !sums) fc_set_error("group_norm backward: out of memory");
  if (rc == 0) {
    a.w = w, a.sg = sums, a.sgx = sums + NC;
    if (x->numel && dtype == FC_FLOAT64)
      gn_backward_f64(gx ? (double *)elem_ptr(gx) : NULL, (const double *)elem_ptr(gd),
                      (const double *)elem_ptr(x), &a);
    else if (x->numel)
      gn_backward_f32(gx ? (float *)elem_ptr(gx) : NULL, (const float *)elem_ptr(gd),
                      (const float *)elem_ptr(x), &a);
    /* weight: sum over n of invstd * sum g (x - mean); bias: sum of g */
    double *gw = sums + 2 * NC, *gb = gw + C;
    for (int64_t b = 0; b < a.N; b++)
      for (int64_t c = 0; c < C; c++) {
        gw[c] += a.invstd[b * a.G + c / Cg] * a.sgx[b * C + c];
        gb[c] += a.sg[b * C + c];
      }
    if (wants_grad(n, wi)) rc = (gi[wi] = doubles_tensor(gw, 1, &C)) ? 0 : -1;
    if (rc == 0 && wants_grad(n, bi)) rc = (gi[bi] = doubles_tensor(gb, 1, &C)) ? 0 : -1;
  }
  gi[0] = rc == 0 ? gx : NULL;
  if (rc < 0) fc_release(gx);
  fc_release(gd);
  free(w), free(sums);
  return rc;
}

fc_tensor *fc_group_norm(fc_tensor *x, int groups, fc_tensor *weight, fc_tensor *bias, double eps) {
  const char *op = "group_norm";
  if (check_input(op, x, 2) < 0) return NULL;
  const fc_tensor *dev[3] = {x, weight ? weight : x, bias ? bias : x};
  if (check_same_device(op, 3, dev) < 0) return NULL;
  int64_t C = x->shape[1];
  if (groups < 1) FAIL("%s: groups must be at least 1, got %d", op, groups);
  if (C % groups != 0) FAIL("%s: %d groups do not divide %lld channels (input of shape %s)", op, groups,
                            (long long)C, SHAPE(x));
  if (check_vector(op, weight, "weight", C) < 0 || check_vector(op, bias, "bias", C) < 0) return NULL;
  if (!(eps >= 0)) FAIL("%s: eps must be non-negative, got %g", op, eps);
  int dtype = kernel_dtype(x->dtype);
  gn_args a = {.eps = eps};
  gn_geometry(&a, x, groups);
  int64_t NG = a.N * a.G, sshape[2] = {2, NG};
  double *st = calloc((size_t)(2 * NG + 1), sizeof(double));
  double *w = values_or(weight, C, 1), *b = values_or(bias, C, 0);
  fc_tensor *xd = st && w && b ? dense_in(x, dtype) : NULL;
  fc_tensor *out = xd ? fc_empty(x->ndim, x->shape, dtype, x->device) : NULL;
  if (!st || !w || !b) fc_set_error("%s: out of memory", op);
  if (out && x->numel) {
    a.w = w, a.b = b, a.mean = st, a.invstd = st + NG;
    if (dtype == FC_FLOAT64) gn_forward_f64((double *)elem_ptr(out), (const double *)elem_ptr(xd), &a);
    else gn_forward_f32((float *)elem_ptr(out), (const float *)elem_ptr(xd), &a);
  }
  fc_tensor *inputs[3] = {x, weight, bias};
  if (out && grad_needed(3, inputs)) {
    fc_tensor *wv = weight ? doubles_tensor(w, 1, &C) : NULL;
    out = record_row_norm(op, group_norm_backward, out, x, weight, bias, xd, st, sshape, wv, groups);
  }
  fc_release(xd);
  free(st), free(w), free(b);
  return to_input_dtype(out, x->dtype);
}
