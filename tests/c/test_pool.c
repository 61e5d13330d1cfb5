/* test_pool.c — max/avg/adaptive pooling against a direct float64 loop over
 * every kernel tap (written from the definitions, not from ops_pool.c's
 * window arithmetic), PyTorch 1.13 numbers for ceil_mode/padding cases,
 * gradients against finite differences, and the error paths. */
#include "harness.h"
#include <stdbool.h>
#include <stdlib.h>

/* ---- the reference ---------------------------------------------------------- */

typedef struct pcfg {
  int64_t n, c, h, w; /* n == 0 with three_d: a [C,H,W] input */
  int k[2], s[2], p[2], d[2];
  bool ceil, cip, three_d;
} pcfg;

/* Counts output positions one by one: a window is kept when it fits whole
 * in the padded input, or (ceil mode) when it still starts before one
 * stride past the last whole window and inside the input or left padding. */
static int64_t ref_out(int64_t in, int k, int s, int p, int d, bool ceil) {
  int64_t last = in + 2 * p - 1 - (int64_t)d * (k - 1); /* last whole start, padded coords */
  int64_t n = 0;
  for (int64_t o = 0;; o++, n++) {
    int64_t start = o * s;
    bool keep = ceil ? start < last + s && start < in + p : start <= last;
    if (!keep) break;
  }
  return n;
}

/* Max over the taps of one window: the first largest, NaN beating all.
 * *at = -1 when every tap is in the padding. */
static double ref_max(const double *x, const pcfg *g, int64_t oh, int64_t ow, int64_t *at) {
  double best = -INFINITY;
  *at = -1;
  for (int i = 0; i < g->k[0]; i++)
    for (int j = 0; j < g->k[1]; j++) {
      int64_t ih = oh * g->s[0] - g->p[0] + (int64_t)i * g->d[0];
      int64_t iw = ow * g->s[1] - g->p[1] + (int64_t)j * g->d[1];
      if (ih < 0 || ih >= g->h || iw < 0 || iw >= g->w) continue;
      double v = x[ih * g->w + iw];
      if (*at < 0 || v > best || isnan(v)) best = v, *at = ih * g->w + iw; /* a later NaN moves it */
    }
  return best;
}

static double ref_avg(const double *x, const pcfg *g, int64_t oh, int64_t ow) {
  double sum = 0;
  int64_t in_input = 0, in_padded = 0;
  for (int i = 0; i < g->k[0]; i++)
    for (int j = 0; j < g->k[1]; j++) {
      int64_t ih = oh * g->s[0] - g->p[0] + i, iw = ow * g->s[1] - g->p[1] + j;
      if (ih >= g->h + g->p[0] || iw >= g->w + g->p[1]) continue; /* past the right padding */
      in_padded++;
      if (ih < 0 || ih >= g->h || iw < 0 || iw >= g->w) continue;
      in_input++;
      sum += x[ih * g->w + iw];
    }
  return in_input == 0 ? 0 : sum / (double)(g->cip ? in_padded : in_input);
}

/* Adaptive windows from floating-point floor/ceil. */
static void ref_adaptive_window(int64_t o, int64_t out, int64_t in, int64_t *a, int64_t *b) {
  *a = (int64_t)floor((double)o * (double)in / (double)out);
  *b = (int64_t)ceil((double)(o + 1) * (double)in / (double)out);
}

static double ref_adaptive(const double *x, int64_t h, int64_t w, int64_t oh, int64_t ow, int64_t Ho,
                           int64_t Wo, bool is_max, int64_t *at) {
  int64_t h0, h1, w0, w1;
  ref_adaptive_window(oh, Ho, h, &h0, &h1);
  ref_adaptive_window(ow, Wo, w, &w0, &w1);
  double best = -INFINITY, sum = 0;
  *at = -1;
  for (int64_t i = h0; i < h1; i++)
    for (int64_t j = w0; j < w1; j++) {
      double v = x[i * w + j];
      sum += v;
      if (*at < 0 || v > best || isnan(v)) best = v, *at = i * w + j;
    }
  return is_max ? best : sum / (double)((h1 - h0) * (w1 - w0));
}

/* ---- inputs ------------------------------------------------------------------ */

static uint64_t lcg_state = 12345;
static int pick(int lo, int hi) { /* uniform-ish in [lo, hi] */
  lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
  return lo + (int)((lcg_state >> 33) % (uint64_t)(hi - lo + 1));
}

/* A non-contiguous [N,C,H,W] (or [C,H,W]) view: the transpose of a random
 * [.., W, H] tensor. Values are rounded to 1/8 so ties happen. */
static fc_tensor *strided_input(const pcfg *g, int dtype) {
  int64_t shape[4];
  int nd = 0;
  if (!g->three_d) shape[nd++] = g->n;
  shape[nd++] = g->c, shape[nd++] = g->w, shape[nd++] = g->h;
  fc_tensor *r = fc_randn(nd, shape, FC_FLOAT64, CPU);
  fc_tensor *m = fc_scalar(8, FC_FLOAT64, CPU), *rm = fc_mul(r, m), *q = fc_round(rm), *v = fc_div(q, m);
  fc_tensor *t = fc_to_dtype(v, dtype), *x = fc_transpose(t, nd - 2, nd - 1);
  fc_release(r), fc_release(m), fc_release(rm), fc_release(q), fc_release(v), fc_release(t);
  return x;
}

static double *doubles_of(const fc_tensor *t) {
  double *v = malloc(sizeof(double) * (size_t)(t->numel + 1));
  fc_to_doubles(t, v);
  return v;
}

/* ---- forward against the reference ------------------------------------------ */

/* One max or avg configuration in one dtype; returns the number of bad elements. */
static int check_sliding(const pcfg *g, bool is_max, int dtype) {
  fc_tensor *x = strided_input(g, dtype), *ix = NULL;
  int64_t Ho = ref_out(g->h, g->k[0], g->s[0], g->p[0], is_max ? g->d[0] : 1, g->ceil);
  int64_t Wo = ref_out(g->w, g->k[1], g->s[1], g->p[1], is_max ? g->d[1] : 1, g->ceil);
  int64_t base = g->ceil ? 1 : 0;
  fc_tensor *y = is_max ? fc_max_pool2d(x, g->k, g->s, g->p, g->d, g->ceil, &ix, base)
                        : fc_avg_pool2d(x, g->k, g->s, g->p, g->ceil, g->cip);
  int bad = 0;
  if (Ho < 1 || Wo < 1) { /* the reference says no window fits */
    if (y || !strstr(fc_last_error(), "too small")) bad++;
  } else if (!y || y->shape[x->ndim - 2] != Ho || y->shape[x->ndim - 1] != Wo) {
    harness_fail(__FILE__, __LINE__, "%s k%dx%d s%dx%d p%dx%d d%dx%d ceil %d on %lldx%lld: %s",
                 is_max ? "max" : "avg", g->k[0], g->k[1], g->s[0], g->s[1], g->p[0], g->p[1], g->d[0],
                 g->d[1], g->ceil, (long long)g->h, (long long)g->w, y ? "wrong output size" : fc_last_error());
    bad++;
  } else {
    double *xv = doubles_of(x), *yv = doubles_of(y), *iv = ix ? doubles_of(ix) : NULL;
    double tol = dtype == FC_FLOAT64 ? 1e-12 : 1e-5;
    int64_t planes = x->numel / (g->h * g->w);
    pcfg local = *g;
    if (!is_max) local.d[0] = local.d[1] = 1;
    for (int64_t p = 0, o = 0; p < planes; p++)
      for (int64_t oh = 0; oh < Ho; oh++)
        for (int64_t ow = 0; ow < Wo; ow++, o++) {
          int64_t at;
          const double *plane = xv + p * g->h * g->w;
          double want = is_max ? ref_max(plane, &local, oh, ow, &at) : ref_avg(plane, &local, oh, ow);
          if (!(fabs(yv[o] - want) <= tol * (1 + fabs(want))) && !(isinf(want) && yv[o] == want)) bad++;
          if (is_max && at >= 0 && iv[o] != (double)(at + base)) bad++;
        }
    free(xv), free(yv), free(iv);
  }
  fc_release(x), fc_release(y), fc_release(ix);
  return bad;
}

static pcfg random_cfg(bool allow_dilation) {
  pcfg g = {pick(1, 3), pick(1, 4), 2 * pick(2, 6) + 1, 2 * pick(2, 6) + 1};
  g.three_d = pick(0, 3) == 0;
  for (int i = 0; i < 2; i++) {
    g.k[i] = pick(1, 4);
    g.s[i] = pick(1, 3);
    g.p[i] = pick(0, g.k[i] / 2);
    g.d[i] = allow_dilation ? pick(1, 3) : 1;
  }
  g.ceil = pick(0, 1), g.cip = pick(0, 1);
  return g;
}

TEST(max_pool_matches_reference) {
  fc_manual_seed(41);
  int bad = 0;
  for (int i = 0; i < 150; i++) {
    pcfg g = random_cfg(true);
    bad += check_sliding(&g, true, FC_FLOAT64) + check_sliding(&g, true, FC_FLOAT32);
  }
  CHECK(bad == 0);
}

TEST(avg_pool_matches_reference) {
  fc_manual_seed(42);
  int bad = 0;
  for (int i = 0; i < 150; i++) {
    pcfg g = random_cfg(false);
    bad += check_sliding(&g, false, FC_FLOAT64) + check_sliding(&g, false, FC_FLOAT32);
  }
  CHECK(bad == 0);
}

/* The fast paths: 2x2 stride 2 (even and odd sizes) and kernel = input. */
TEST(fast_paths_match_reference) {
  fc_manual_seed(43);
  int bad = 0;
  for (int64_t h = 4; h <= 9; h++) {
    pcfg g = {3, 5, h, h + 3, {2, 2}, {2, 2}, {0, 0}, {1, 1}, false, true, false};
    bad += check_sliding(&g, true, FC_FLOAT32) + check_sliding(&g, true, FC_FLOAT64);
    g.ceil = true; /* odd sizes: a partial last window, the general kernel */
    bad += check_sliding(&g, true, FC_FLOAT32) + check_sliding(&g, false, FC_FLOAT32);
  }
  CHECK(bad == 0);
}

static int check_adaptive(int64_t n, int64_t c, int64_t h, int64_t w, int64_t Ho, int64_t Wo, bool is_max,
                          int dtype) {
  pcfg g = {n, c, h, w, .three_d = n == 0};
  fc_tensor *x = strided_input(&g, dtype), *ix = NULL;
  fc_tensor *y = is_max ? fc_adaptive_max_pool2d(x, (int64_t[]){Ho, Wo}, &ix, 1)
                        : fc_adaptive_avg_pool2d(x, (int64_t[]){Ho, Wo});
  int bad = 0;
  if (!y || y->shape[x->ndim - 2] != Ho || y->shape[x->ndim - 1] != Wo || (is_max && !ix)) {
    harness_fail(__FILE__, __LINE__, "adaptive %lldx%lld: %s", (long long)Ho, (long long)Wo,
                 y ? "wrong output" : fc_last_error());
    bad++;
  } else {
    double *xv = doubles_of(x), *yv = doubles_of(y), *iv = ix ? doubles_of(ix) : NULL;
    double tol = dtype == FC_FLOAT64 ? 1e-12 : 1e-5;
    for (int64_t p = 0, o = 0; p < x->numel / (h * w); p++)
      for (int64_t oh = 0; oh < Ho; oh++)
        for (int64_t ow = 0; ow < Wo; ow++, o++) {
          int64_t at;
          double want = ref_adaptive(xv + p * h * w, h, w, oh, ow, Ho, Wo, is_max, &at);
          if (!(fabs(yv[o] - want) <= tol * (1 + fabs(want)))) bad++;
          if (is_max && iv[o] != (double)(at + 1)) bad++;
        }
    free(xv), free(yv), free(iv);
  }
  fc_release(x), fc_release(y), fc_release(ix);
  return bad;
}

TEST(adaptive_pools_match_reference) {
  fc_manual_seed(44);
  /* dividing, non-dividing, larger than the input, global, one axis kept */
  const int64_t sizes[][2] = {{1, 1}, {2, 3}, {3, 4}, {5, 2}, {7, 9}, {11, 13}, {4, 1}, {6, 6}};
  int bad = 0;
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
    for (int dt = 0; dt < 2; dt++) {
      int dtype = dt ? FC_FLOAT32 : FC_FLOAT64;
      for (int is_max = 0; is_max < 2; is_max++) {
        bad += check_adaptive(2, 3, 7, 9, sizes[i][0], sizes[i][1], is_max, dtype);
        bad += check_adaptive(0, 4, 6, 5, sizes[i][0], sizes[i][1], is_max, dtype); /* [C,H,W] */
      }
    }
  CHECK(bad == 0);
}

/* ---- PyTorch 1.13 reference numbers -------------------------------------------
 * x = ((i * 37) % 53) / 10 - 2.5 for i in 0..69, viewed as [1,2,5,7]. */

static fc_tensor *torch_input(void) {
  double v[70];
  for (int i = 0; i < 70; i++) v[i] = ((i * 37) % 53) / 10.0 - 2.5;
  return mk(FC_FLOAT64, 4, (int64_t[]){1, 2, 5, 7}, v);
}

TEST(max_pool_torch_reference) {
  fc_tensor *x = torch_input(), *ix = NULL;
  /* F.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True, return_indices=True) */
  EXPECT(fc_max_pool2d(x, (int[]){3, 3}, (int[]){2, 2}, (int[]){1, 1}, NULL, 1, &ix, 0), FC_FLOAT64,
         S(1, 2, 3, 4), 1e-12, 2.2, 2.7, 2.7, 0.1, 2.2, 2.7, 2.7, 2.6, 1, 2.5, 1.5, 2, -0.2, 1.9, 2.4, 2.4,
         2.3, 2.3, 2.2, 1.8, 2.7, 1.7, 2.2, 0.6);
  EXPECT(ix, FC_INT64, S(1, 2, 3, 4), 0, 7, 10, 10, 5, 7, 10, 10, 20, 21, 30, 24, 27, 0, 2, 5, 5, 15, 15,
         25, 12, 28, 22, 25, 26);
  /* kernel (2,3), stride 2, padding (1,0), dilation (2,1), ceil_mode, indices + 1 */
  EXPECT(fc_max_pool2d(x, (int[]){2, 3}, (int[]){2, 2}, (int[]){1, 0}, (int[]){2, 1}, 1, &ix, 1),
         FC_FLOAT64, S(1, 2, 3, 3), 1e-12, 2.2, 2.7, 1.1, 2.2, 2.7, 2, 1, 1.5, 2, 1.3, 1.3, 1.8, 1.7, 2.2, 2.2,
         1.7, 2.2, 2.2);
  EXPECT(ix, FC_INT64, S(1, 2, 3, 3), 0, 8, 11, 12, 8, 11, 28, 22, 25, 28, 10, 10, 13, 23, 26, 26, 23, 26,
         26);
  /* ceil mode lets a kernel larger than the input keep one window */
  fc_tensor *small = fc_ones(4, (int64_t[]){1, 1, 2, 2}, FC_FLOAT32, CPU);
  EXPECT(fc_max_pool2d(small, (int[]){3, 3}, (int[]){2, 2}, NULL, NULL, 1, NULL, 0), FC_FLOAT32,
         S(1, 1, 1, 1), 0, 1);
  fc_release(small);
  fc_release(x);
}

TEST(avg_pool_torch_reference) {
  fc_tensor *x = torch_input();
  int k[2] = {3, 3}, s[2] = {2, 2}, p[2] = {1, 1};
  EXPECT(fc_avg_pool2d(x, k, s, p, 1, 1), FC_FLOAT64, S(1, 2, 3, 4), 1e-9, 0.1666666667, 0.1222222222,
         0.3444444444, -0.4444444444, 0.5333333333, 0.1666666667, 0.5, -0.08888888889, -0.04444444444, 0.1,
         -0.2666666667, -0.06666666667, -0.5777777778, -0.1111111111, 0.1111111111, 0.5777777778,
         -0.2888888889, 0.1111111111, -0.1444444444, 0.2666666667, 0.3888888889, -0.1333333333,
         0.08888888889, -0.2222222222);
  EXPECT(fc_avg_pool2d(x, k, s, p, 1, 0), FC_FLOAT64, S(1, 2, 3, 4), 1e-9, 0.375, 0.1833333333,
         0.5166666667, -1, 0.8, 0.1666666667, 0.5, -0.1333333333, -0.1, 0.15, -0.4, -0.15, -1.3,
         -0.1666666667, 0.1666666667, 1.3, -0.4333333333, 0.1111111111, -0.1444444444, 0.4, 0.875, -0.2,
         0.1333333333, -0.5);
  EXPECT(fc_avg_pool2d(x, (int[]){2, 2}, NULL, NULL, 1, 1), FC_FLOAT64, S(1, 2, 3, 4), 1e-9, 0.375,
         -0.175, 0.6, -1.8, 0.5, -0.05, -0.6, 2.3, -0.4, 1.7, -1.5, 1.4, -1.3, 0.8, 0.25, 0.5, 0.15, -0.4,
         0.375, -0.7, 1.9, -1.3, 0.8, -1.6);
  /* the gradient of sum(avg_pool2d(x, 3, 2, 1, ceil_mode, count_include_pad=False)), one plane */
  fc_set_requires_grad(x, 1);
  fc_tensor *y = fc_avg_pool2d(x, k, s, p, 1, 0), *l = fc_sum(y, 0, NULL, 0);
  CHECK(fc_backward(l, NULL, 0) == 0);
  fc_tensor *g = fc_get_grad(x), *g0 = g ? fc_select(g, 1, 0) : NULL;
  EXPECT(g0, FC_FLOAT64, S(1, 5, 7), 1e-9, 0.25, 0.4166666667, 0.1666666667, 0.3333333333, 0.1666666667,
         0.4166666667, 0.25, 0.4166666667, 0.6944444444, 0.2777777778, 0.5555555556, 0.2777777778,
         0.6944444444, 0.4166666667, 0.1666666667, 0.2777777778, 0.1111111111, 0.2222222222, 0.1111111111,
         0.2777777778, 0.1666666667, 0.4166666667, 0.6944444444, 0.2777777778, 0.5555555556, 0.2777777778,
         0.6944444444, 0.4166666667, 0.25, 0.4166666667, 0.1666666667, 0.3333333333, 0.1666666667,
         0.4166666667, 0.25);
  fc_release(y), fc_release(l), fc_release(g), fc_release(x);
}

TEST(adaptive_torch_reference) {
  fc_tensor *x = torch_input(), *ix = NULL;
  EXPECT(fc_adaptive_avg_pool2d(x, (int64_t[]){4, 3}), FC_FLOAT64, S(1, 2, 4, 3), 1e-9, 0.01666666667,
         0.35, -0.2, 0.3, 0.6333333333, 0.08333333333, -0.3, 0.03333333333, 0.3666666667, -0.01666666667,
         0.3166666667, -0.2333333333, -0.3333333333, 0, 0.3333333333, -0.05, -0.6, -0.2666666667,
         0.2333333333, -0.3166666667, 0.01666666667, 0.5166666667, -0.03333333333, 0.3);
  EXPECT(fc_adaptive_max_pool2d(x, (int64_t[]){2, 5}, &ix, 0), FC_FLOAT64, S(1, 2, 2, 5), 1e-12, 2.2, 1.2,
         2.7, 1.7, 2.6, 1.6, 2.5, 2.5, 0.5, 2.6, 2.3, 2.3, 1.9, 2.4, 2.4, 2.7, 2.3, 2.2, 2.2, 1.2);
  EXPECT(ix, FC_INT64, S(1, 2, 2, 5), 0, 7, 1, 10, 4, 20, 14, 30, 30, 18, 20, 15, 15, 2, 5, 5, 28, 15, 25,
         25, 19);
  /* larger than the input: x[:, :1, :2, :3] to 3x4 */
  fc_tensor *a = fc_narrow(x, 1, 0, 1), *b = fc_narrow(a, 2, 0, 2), *c = fc_narrow(b, 3, 0, 3);
  EXPECT(fc_adaptive_max_pool2d(c, (int64_t[]){3, 4}, &ix, 0), FC_FLOAT64, S(1, 1, 3, 4), 1e-12, -2.5,
         1.2, 1.2, -0.4, 2.2, 2.2, 1.2, -0.4, 2.2, 2.2, 0.6, -1);
  EXPECT(ix, FC_INT64, S(1, 1, 3, 4), 0, 0, 1, 1, 2, 3, 3, 1, 2, 3, 3, 4, 5);
  fc_release(a), fc_release(b), fc_release(c), fc_release(x);
}

/* ---- special values, dtypes, shapes --------------------------------------------- */

TEST(nan_and_inf) {
  double nan = NAN, inf = INFINITY;
  fc_tensor *x = MK(FC_FLOAT32, S(1, 2, 4), 1, nan, 3, 4, 5, 6, 7, nan), *ix = NULL;
  /* 2x2 fast path and the general kernel agree: NaN propagates, the last NaN's index */
  EXPECT(fc_max_pool2d(x, (int[]){2, 2}, NULL, NULL, NULL, 0, &ix, 0), FC_FLOAT32, S(1, 1, 2), 0, nan, nan);
  EXPECT(ix, FC_INT64, S(1, 1, 2), 0, 1, 7);
  EXPECT(fc_max_pool2d(x, (int[]){2, 2}, (int[]){1, 2}, NULL, NULL, 0, &ix, 0), FC_FLOAT32, S(1, 1, 2), 0,
         nan, nan);
  EXPECT(ix, FC_INT64, S(1, 1, 2), 0, 1, 7);
  /* NaNs in two rows: the last in row-major order, through the separable
   * kernel (max_pool2d 3x3) and the whole-plane one (adaptive to 1x1) */
  fc_tensor *r = MK(FC_FLOAT64, S(1, 3, 3), 1, nan, 2, nan, 3, 4, 5, 6, 7);
  EXPECT(fc_max_pool2d(r, (int[]){3, 3}, NULL, NULL, NULL, 0, &ix, 0), FC_FLOAT64, S(1, 1, 1), 0, nan);
  EXPECT(ix, FC_INT64, S(1, 1, 1), 0, 3);
  EXPECT(fc_adaptive_max_pool2d(r, (int64_t[]){1, 1}, &ix, 0), FC_FLOAT64, S(1, 1, 1), 0, nan);
  EXPECT(ix, FC_INT64, S(1, 1, 1), 0, 3);
  EXPECT(fc_adaptive_max_pool2d(r, (int64_t[]){1, 1}, NULL, 0), FC_FLOAT64, S(1, 1, 1), 0, nan);
  fc_release(r);
  r = MK(FC_FLOAT32, S(1, 1, 5), 1, nan, 2, nan, 5); /* two NaNs in one row */
  EXPECT(fc_max_pool2d(r, (int[]){1, 4}, (int[]){1, 1}, NULL, NULL, 0, &ix, 0), FC_FLOAT32, S(1, 1, 2), 0,
         nan, nan);
  EXPECT(ix, FC_INT64, S(1, 1, 2), 0, 3, 3);
  fc_release(r);
  fc_tensor *m = MK(FC_FLOAT64, S(1, 2, 2), -inf, -inf, -inf, -inf);
  EXPECT(fc_adaptive_max_pool2d(m, (int64_t[]){1, 1}, &ix, 1), FC_FLOAT64, S(1, 1, 1), 0, -inf);
  EXPECT(ix, FC_INT64, S(1, 1, 1), 0, 1); /* the window's first element */
  fc_release(x), fc_release(m);
}

TEST(dtypes_and_empty_batch) {
  fc_tensor *x = MK(FC_FLOAT32, S(1, 1, 2, 4), 1, 2, 3, 4, 5, 6, 7, 8);
  fc_tensor *h = fc_to_dtype(x, FC_FLOAT16), *b = fc_to_dtype(x, FC_BFLOAT16);
  fc_tensor *y = fc_avg_pool2d(h, (int[]){2, 2}, NULL, NULL, 0, 1);
  CHECK(y && y->dtype == FC_FLOAT16);
  EXPECT(y, FC_FLOAT16, S(1, 1, 1, 2), 0, 3.5, 5.5);
  EXPECT(fc_max_pool2d(b, (int[]){2, 2}, NULL, NULL, NULL, 0, NULL, 0), FC_BFLOAT16, S(1, 1, 1, 2), 0, 6, 8);
  fc_tensor *i = fc_to_dtype(x, FC_INT64);
  CHECK_ERR(fc_max_pool2d(i, (int[]){2, 2}, NULL, NULL, NULL, 0, NULL, 0),
            "max_pool2d: needs a floating point input, got int64");
  CHECK_ERR(fc_adaptive_avg_pool2d(i, (int64_t[]){1, 1}), "adaptive_avg_pool2d: needs a floating point");
  fc_tensor *e = fc_zeros(4, (int64_t[]){0, 3, 6, 6}, FC_FLOAT32, CPU), *ix = NULL;
  EXPECT(fc_max_pool2d(e, (int[]){2, 2}, NULL, NULL, NULL, 0, &ix, 0), FC_FLOAT32, S(0, 3, 3, 3), 0, 0);
  EXPECT(ix, FC_INT64, S(0, 3, 3, 3), 0, 0);
  EXPECT(fc_adaptive_avg_pool2d(e, (int64_t[]){1, 1}), FC_FLOAT32, S(0, 3, 1, 1), 0, 0);
  EXPECT(fc_adaptive_avg_pool2d(x, (int64_t[]){0, 2}), FC_FLOAT32, S(1, 1, 0, 2), 0, 0);
  fc_release(x), fc_release(h), fc_release(b), fc_release(i), fc_release(e);
}

TEST(errors) {
  fc_tensor *x = fc_ones(4, (int64_t[]){1, 2, 5, 5}, FC_FLOAT32, CPU);
  int two[2] = {2, 2}, three[2] = {3, 3}, zero[2] = {0, 0}, one[2] = {1, 1};
  CHECK_ERR(fc_max_pool2d(x, (int[]){0, 2}, NULL, NULL, NULL, 0, NULL, 0),
            "max_pool2d: kernel size must be positive, got 0x2");
  CHECK_ERR(fc_max_pool2d(x, two, (int[]){2, 0}, NULL, NULL, 0, NULL, 0), "stride must be positive, got 2x0");
  CHECK_ERR(fc_max_pool2d(x, two, two, zero, zero, 0, NULL, 0), "dilation must be positive");
  CHECK_ERR(fc_avg_pool2d(x, two, two, (int[]){-1, 0}, 0, 1), "avg_pool2d: padding must be non-negative");
  CHECK_ERR(fc_max_pool2d(x, three, one, two, NULL, 0, NULL, 0),
            "padding 2x2 must be at most half the kernel size 3x3");
  CHECK_ERR(fc_avg_pool2d(x, (int[]){6, 2}, NULL, NULL, 0, 1),
            "avg_pool2d: input of shape [1,2,5,5] is too small for kernel 6x2");
  CHECK_ERR(fc_max_pool2d(x, three, one, NULL, three, 0, NULL, 0), "the output would be -1x-1");
  CHECK_ERR(fc_max_pool2d(x, NULL, NULL, NULL, NULL, 0, NULL, 0), "kernel size is NULL");
  fc_tensor *flat = fc_ones(2, (int64_t[]){5, 5}, FC_FLOAT32, CPU);
  CHECK_ERR(fc_max_pool2d(flat, two, NULL, NULL, NULL, 0, NULL, 0),
            "max_pool2d: expects an [N,C,H,W] or [C,H,W] input, got shape [5,5]");
  fc_tensor *five = fc_ones(5, (int64_t[]){1, 1, 1, 5, 5}, FC_FLOAT32, CPU);
  CHECK_ERR(fc_adaptive_max_pool2d(five, (int64_t[]){1, 1}, NULL, 0), "got shape [1,1,1,5,5]");
  fc_tensor *empty = fc_ones(4, (int64_t[]){1, 0, 5, 5}, FC_FLOAT32, CPU);
  CHECK_ERR(fc_avg_pool2d(empty, two, NULL, NULL, 0, 1), "is empty in a C, H or W dim");
  CHECK_ERR(fc_adaptive_avg_pool2d(x, (int64_t[]){-1, 2}), "output size must be non-negative, got -1x2");
  CHECK_ERR(fc_adaptive_avg_pool2d(x, NULL), "output size is NULL");
  CHECK_ERR(fc_max_pool2d(NULL, two, NULL, NULL, NULL, 0, NULL, 0), "max_pool2d: tensor is NULL");
  fc_tensor *ix = (fc_tensor *)&ix; /* must come back NULL on failure */
  CHECK(!fc_max_pool2d(flat, two, NULL, NULL, NULL, 0, &ix, 0) && ix == NULL);
  fc_release(x), fc_release(flat), fc_release(five), fc_release(empty);
}

/* ---- gradients ---------------------------------------------------------------- */

/* Distinct values 0.1 apart in a random order, so no max ties under the
 * finite-difference step; non-contiguous (a transpose). */
static fc_tensor *distinct_input(int64_t n, int64_t c, int64_t h, int64_t w) {
  int64_t numel = n * c * h * w;
  fc_tensor *perm = fc_randperm(numel, FC_INT64, CPU), *d = fc_to_dtype(perm, FC_FLOAT64);
  fc_tensor *tenth = fc_scalar(0.1, FC_FLOAT64, CPU), *v = fc_mul(d, tenth);
  fc_tensor *r = fc_reshape(v, 4, (int64_t[]){n, c, w, h}), *x = fc_transpose(r, 2, 3);
  fc_release(perm), fc_release(d), fc_release(tenth), fc_release(v), fc_release(r);
  return x;
}

static pcfg gcfg;
static fc_tensor *max_fn(fc_tensor **in, void *ctx) {
  return fc_max_pool2d(in[0], gcfg.k, gcfg.s, gcfg.p, gcfg.d, gcfg.ceil, NULL, 0);
}
static fc_tensor *avg_fn(fc_tensor **in, void *ctx) {
  return fc_avg_pool2d(in[0], gcfg.k, gcfg.s, gcfg.p, gcfg.ceil, gcfg.cip);
}
static int64_t osize[2];
static fc_tensor *amax_fn(fc_tensor **in, void *ctx) { return fc_adaptive_max_pool2d(in[0], osize, NULL, 0); }
static fc_tensor *aavg_fn(fc_tensor **in, void *ctx) { return fc_adaptive_avg_pool2d(in[0], osize); }

TEST(gradients) {
  fc_manual_seed(45);
  const pcfg cases[] = {
      {.k = {2, 2}, .s = {2, 2}, .p = {0, 0}, .d = {1, 1}},                           /* fast path */
      {.k = {3, 3}, .s = {2, 2}, .p = {1, 1}, .d = {1, 1}, .ceil = true},             /* overlapping */
      {.k = {3, 2}, .s = {1, 2}, .p = {1, 1}, .d = {2, 1}, .ceil = true, .cip = true}, /* dilated */
      {.k = {2, 3}, .s = {3, 1}, .p = {1, 0}, .d = {1, 1}, .cip = true},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    gcfg = cases[i];
    fc_tensor *x = distinct_input(2, 3, 7, 6);
    GRADCHECK("max_pool2d", max_fn, 1, &x, NULL);
    gcfg.d[0] = gcfg.d[1] = 1;
    GRADCHECK("avg_pool2d", avg_fn, 1, &x, NULL);
    gcfg.cip = !gcfg.cip;
    GRADCHECK("avg_pool2d", avg_fn, 1, &x, NULL);
    fc_release(x);
  }
  const int64_t sizes[][2] = {{1, 1}, {3, 4}, {9, 8}, {7, 1}};
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    osize[0] = sizes[i][0], osize[1] = sizes[i][1];
    fc_tensor *x = distinct_input(2, 2, 7, 6);
    GRADCHECK("adaptive_max_pool2d", amax_fn, 1, &x, NULL);
    GRADCHECK("adaptive_avg_pool2d", aavg_fn, 1, &x, NULL);
    fc_release(x);
  }
}

/* Backward reads the saved indices, so changing them in place must fail
 * instead of giving a wrong gradient; without grad no node is made. */
TEST(indices_saved_for_backward) {
  fc_tensor *x = fc_randn(3, (int64_t[]){2, 4, 4}, FC_FLOAT32, CPU), *ix = NULL;
  fc_set_requires_grad(x, 1);
  fc_tensor *y = fc_max_pool2d(x, (int[]){2, 2}, NULL, NULL, NULL, 0, &ix, 1);
  CHECK(y && strcmp(fc_grad_fn_name(y), "max_pool2d") == 0);
  fc_tensor *s = fc_sum(y, 0, NULL, 0);
  fc_set_grad_enabled(0);
  CHECK(fc_fill_(ix, 1) == 0);
  fc_set_grad_enabled(1);
  CHECK_ERR(fc_backward(s, NULL, 0), "modified in place");
  fc_set_grad_enabled(0);
  fc_tensor *z = fc_adaptive_max_pool2d(x, (int64_t[]){1, 1}, NULL, 0);
  CHECK(z && fc_grad_fn_name(z) == NULL);
  fc_set_grad_enabled(1);
  fc_release(x), fc_release(y), fc_release(ix), fc_release(s), fc_release(z);
}

int main(void) {
  RUN(max_pool_matches_reference);
  RUN(avg_pool_matches_reference);
  RUN(fast_paths_match_reference);
  RUN(adaptive_pools_match_reference);
  RUN(max_pool_torch_reference);
  RUN(avg_pool_torch_reference);
  RUN(adaptive_torch_reference);
  RUN(nan_and_inf);
  RUN(dtypes_and_empty_batch);
  RUN(errors);
  RUN(gradients);
  RUN(indices_saved_for_backward);
  return harness_report();
}
