/* test_conv2d.c — conv2d/conv1d against a direct float64 convolution on
 * fixed and random shapes (groups, dilation, stride, padding, odd sizes,
 * non-contiguous operands), through each float32 backend (oneDNN blocked,
 * oneDNN plain, im2col); float32 gradients against float64 ones, and the
 * float64 gradients against finite differences. */
#include "harness.h"
#include "internal.h" /* conv_set_backend: reaches every float32 kernel */
#include <pthread.h>
#include <stdlib.h>

typedef struct cfg { int64_t n, c, h, w, co, kh, kw; int s[2], p[2], d[2], g; bool bias; } cfg;
static const int backends[] = {CONV_DNNL, CONV_DNNL_PLAIN, CONV_IM2COL};
static const char *const backend_names[] = {"oneDNN blocked", "oneDNN plain", "im2col"};
static int expect_backend = -1; /* the kernel float32 must have run on; -1: any */
static int kind(int backend) { return backend == CONV_IM2COL ? CONV_IM2COL : CONV_DNNL; }

/* y[n,o,i,j] = b[o] + sum_{c in group, a, b} x[n,c,i*s-p+a*d, j*s-p+b*d] w[o,c',a,b] */
static double direct(const cfg *k, const double *x, const double *w, const double *b, int64_t n, int64_t o,
                     int64_t i, int64_t j) {
  int64_t cg = k->c / k->g, cog = k->co / k->g, g = o / cog;
  double s = k->bias ? b[o] : 0;
  for (int64_t c = 0; c < cg; c++)
    for (int64_t a = 0; a < k->kh; a++)
      for (int64_t q = 0; q < k->kw; q++) {
        int64_t ih = i * k->s[0] - k->p[0] + a * k->d[0], iw = j * k->s[1] - k->p[1] + q * k->d[1];
        if (ih < 0 || ih >= k->h || iw < 0 || iw >= k->w) continue;
        s += x[((n * k->c + g * cg + c) * k->h + ih) * k->w + iw] * w[((o * cg + c) * k->kh + a) * k->kw + q];
      }
  return s;
}

/* conv2d(x, w, b) against the direct loop on the same (logical) values. */
static void check_against_direct(const cfg *k, fc_tensor *x, fc_tensor *w, fc_tensor *b, double tol, const char *what) {
  fc_tensor *y = fc_conv2d(x, w, k->bias ? b : NULL, k->s, k->p, k->d, k->g);
  if (!y) {
    harness_fail(__FILE__, __LINE__, "conv2d (%s): %s", what, fc_last_error());
    return;
  }
  if (x->dtype == FC_FLOAT32 && expect_backend >= 0 && conv_last_backend() != expect_backend)
    harness_fail(__FILE__, __LINE__, "conv2d (%s): ran on backend %d, expected %d", what, conv_last_backend(),
                 expect_backend);
  double *xv = tensor_values(x), *wv = tensor_values(w), *bv = tensor_values(b), *yv = tensor_values(y);
  int64_t ho = (k->h + 2 * k->p[0] - k->d[0] * (k->kh - 1) - 1) / k->s[0] + 1;
  int64_t wo = (k->w + 2 * k->p[1] - k->d[1] * (k->kw - 1) - 1) / k->s[1] + 1;
  CHECK(y->shape[0] == k->n && y->shape[1] == k->co && y->shape[2] == ho && y->shape[3] == wo);
  int bad = 0;
  double worst = 0;
  for (int64_t n = 0, at = 0; n < k->n; n++)
    for (int64_t o = 0; o < k->co; o++)
      for (int64_t i = 0; i < ho; i++)
        for (int64_t j = 0; j < wo; j++, at++) {
          double want = direct(k, xv, wv, bv, n, o, i, j), err = fabs(yv[at] - want) / (1 + fabs(want));
          if (err > tol) bad++;
          if (err > worst) worst = err;
        }
  if (bad)
    harness_fail(__FILE__, __LINE__, "conv2d (%s) [%lld,%lld,%lld,%lld] w [%lld,%lld,%lld,%lld] s %d,%d p %d,%d "
                 "d %d,%d g %d: %d wrong, worst %.3g", what, (long long)k->n, (long long)k->c, (long long)k->h,
                 (long long)k->w, (long long)k->co, (long long)(k->c / k->g), (long long)k->kh, (long long)k->kw,
                 k->s[0], k->s[1], k->p[0], k->p[1], k->d[0], k->d[1], k->g, bad, worst);
  free(xv), free(wv), free(bv), free(yv);
  fc_release(y);
}

static void check_cfg(const cfg *k, int dtype, const char *what) {
  fc_tensor *x = fc_randn(4, (int64_t[]){k->n, k->c, k->h, k->w}, dtype, CPU);
  fc_tensor *w = fc_randn(4, (int64_t[]){k->co, k->c / k->g, k->kh, k->kw}, dtype, CPU);
  fc_tensor *b = fc_randn(1, (int64_t[]){k->co}, dtype, CPU);
  check_against_direct(k, x, w, b, dtype == FC_FLOAT64 ? 1e-12 : 1e-4, what);
  fc_release(x), fc_release(w), fc_release(b);
}

static const cfg fixed_cases[] = {
    {2, 3, 7, 6, 4, 3, 3, {1, 1}, {0, 0}, {1, 1}, 1, true},
    {2, 4, 9, 9, 6, 3, 2, {2, 1}, {1, 2}, {1, 1}, 2, false},
    {1, 3, 10, 8, 2, 3, 3, {1, 2}, {2, 1}, {2, 3}, 1, true},
    {3, 4, 5, 5, 4, 3, 3, {1, 1}, {1, 1}, {1, 1}, 4, true}, /* depthwise */
    {2, 1, 28, 28, 16, 3, 3, {2, 2}, {1, 1}, {1, 1}, 1, false},
    {2, 16, 14, 14, 32, 3, 3, {2, 2}, {1, 1}, {1, 1}, 1, true}, /* the benchmark CNN's layers */
    {2, 64, 4, 4, 128, 3, 3, {2, 2}, {1, 1}, {1, 1}, 1, false},
    {2, 32, 7, 7, 64, 1, 1, {2, 2}, {0, 0}, {1, 1}, 1, false}, /* a ResNet shortcut */
};

TEST(forward_matches_direct) {
  fc_manual_seed(31);
  for (size_t i = 0; i < sizeof fixed_cases / sizeof *fixed_cases; i++) {
    check_cfg(&fixed_cases[i], FC_FLOAT64, "float64");
    for (int b = 0; b < 3; b++) {
      conv_set_backend(backends[b]);
      expect_backend = kind(backends[b]);
      check_cfg(&fixed_cases[i], FC_FLOAT32, backend_names[b]);
    }
  }
  conv_set_backend(CONV_DNNL);
  expect_backend = -1;
}

/* A small deterministic generator for the random shapes. */
static uint32_t lcg_state = 12345;
static int rnd(int lo, int hi) { /* in [lo, hi] */
  lcg_state = lcg_state * 1664525u + 1013904223u;
  return lo + (int)((lcg_state >> 8) % (uint32_t)(hi - lo + 1));
}

static cfg random_cfg(void) {
  for (;;) {
    cfg k;
    k.g = rnd(1, 3);
    k.n = rnd(1, 3), k.c = k.g * rnd(1, 4), k.co = k.g * rnd(1, 4);
    k.h = rnd(1, 11), k.w = rnd(1, 11), k.kh = rnd(1, 4), k.kw = rnd(1, 4);
    for (int i = 0; i < 2; i++) k.s[i] = rnd(1, 3), k.p[i] = rnd(0, 2), k.d[i] = rnd(1, 3);
    k.bias = rnd(0, 1);
    if (k.h + 2 * k.p[0] >= k.d[0] * (k.kh - 1) + 1 && k.w + 2 * k.p[1] >= k.d[1] * (k.kw - 1) + 1) return k;
  }
}

TEST(random_shapes_every_backend) {
  fc_manual_seed(33);
  for (int t = 0; t < 40; t++) {
    cfg k = random_cfg();
    check_cfg(&k, FC_FLOAT64, "float64");
    for (int b = 0; b < 3; b++) {
      conv_set_backend(backends[b]);
      expect_backend = kind(backends[b]);
      check_cfg(&k, FC_FLOAT32, backend_names[b]);
    }
  }
  conv_set_backend(CONV_DNNL);
  expect_backend = -1;
}

/* x as the transpose of a [N,C,W,H] tensor, w as every other filter of a
 * bigger one, b as a strided slice: none contiguous. */
static void check_noncontiguous(const cfg *k, int dtype) {
  fc_tensor *xb = fc_randn(4, (int64_t[]){k->n, k->c, k->w, k->h}, dtype, CPU);
  fc_tensor *wb = fc_randn(4, (int64_t[]){2 * k->co, k->c / k->g, k->kh, k->kw}, dtype, CPU);
  fc_tensor *bb = fc_randn(1, (int64_t[]){2 * k->co}, dtype, CPU);
  fc_tensor *x = fc_transpose(xb, 2, 3), *w = fc_slice(wb, 0, 0, 2 * k->co, 2), *b = fc_slice(bb, 0, 1, 2 * k->co, 2);
  CHECK(!fc_is_contiguous(x) && !fc_is_contiguous(w) && !fc_is_contiguous(b));
  check_against_direct(k, x, w, b, dtype == FC_FLOAT64 ? 1e-12 : 1e-4, "non-contiguous");
  fc_release(xb), fc_release(wb), fc_release(bb), fc_release(x), fc_release(w), fc_release(b);
}

TEST(noncontiguous_operands) {
  fc_manual_seed(34);
  cfg k = {2, 4, 6, 9, 6, 3, 2, {2, 1}, {1, 0}, {1, 2}, 2, true};
  check_noncontiguous(&k, FC_FLOAT64);
  check_noncontiguous(&k, FC_FLOAT32);
  check_noncontiguous(&fixed_cases[4], FC_FLOAT32);
}

/* More distinct shapes than the primitive cache holds: evicted entries are
 * freed and rebuilt, results stay right. */
TEST(primitive_cache_eviction) {
  fc_manual_seed(35);
  for (int round = 0; round < 2; round++)
    for (int h = 3; h < 3 + 70; h++) {
      cfg k = {1, 2, h, 3, 2, 3, 3, {1, 1}, {1, 1}, {1, 1}, 1, h % 2 == 0};
      check_cfg(&k, FC_FLOAT32, "cache");
    }
}

/* Threads sharing the primitive cache: each runs every shape (more than the
 * cache holds, so entries are evicted while others use them) in its own
 * order; every result must match the one made alone. */
enum { SHARED_SHAPES = 70, SHARED_THREADS = 3 };
static fc_tensor *shared_x[SHARED_SHAPES], *shared_w[SHARED_SHAPES], *shared_y[SHARED_SHAPES];
static int shared_bad[SHARED_THREADS];

static void *conv_worker(void *arg) {
  int t = (int)(intptr_t)arg;
  for (int i = 0; i < SHARED_SHAPES; i++) {
    int s = (i * (2 * t + 1) + 7 * t) % SHARED_SHAPES; /* a different order per thread */
    fc_tensor *y = fc_conv2d(shared_x[s], shared_w[s], NULL, (int[]){1, 1}, (int[]){1, 1}, (int[]){1, 1}, 1);
    if (!y) {
      shared_bad[t]++;
      continue;
    }
    const float *a = fc_data_ptr(y), *b = fc_data_ptr(shared_y[s]);
    for (int64_t e = 0; e < y->numel; e++) shared_bad[t] += fabsf(a[e] - b[e]) > 1e-5f * (1 + fabsf(b[e]));
    fc_release(y);
  }
  return NULL;
}

TEST(threads_share_the_cache) {
  fc_manual_seed(40);
  for (int s = 0; s < SHARED_SHAPES; s++) {
    shared_x[s] = fc_randn(4, (int64_t[]){2, 3, 4 + s, 5}, FC_FLOAT32, CPU);
    shared_w[s] = fc_randn(4, (int64_t[]){4, 3, 3, 3}, FC_FLOAT32, CPU);
    shared_y[s] = fc_conv2d(shared_x[s], shared_w[s], NULL, (int[]){1, 1}, (int[]){1, 1}, (int[]){1, 1}, 1);
  }
  pthread_t th[SHARED_THREADS];
  for (int t = 0; t < SHARED_THREADS; t++) pthread_create(&th[t], NULL, conv_worker, (void *)(intptr_t)t);
  for (int t = 0; t < SHARED_THREADS; t++) pthread_join(th[t], NULL);
  for (int t = 0; t < SHARED_THREADS; t++) CHECK(shared_bad[t] == 0);
  for (int s = 0; s < SHARED_SHAPES; s++) fc_release(shared_x[s]), fc_release(shared_w[s]), fc_release(shared_y[s]);
}

/* The thread count is part of the cache key: a primitive made for two
 * threads is not reused for one. */
TEST(thread_count_changes) {
  fc_manual_seed(36);
  int before = fc_get_num_threads();
  for (int nt = 1; nt <= 3; nt++) {
    fc_set_num_threads(nt);
    check_cfg(&fixed_cases[5], FC_FLOAT32, "threads");
  }
  fc_set_num_threads(before);
}

/* ---- gradients ------------------------------------------------------------ */

static int sg[2], pg[2], dg[2], gg;
static fc_tensor *conv3(fc_tensor **in, void *ctx) { return fc_conv2d(in[0], in[1], in[2], sg, pg, dg, gg); }

/* Every third element of input, weight and bias (the full check is slow). */
static void gradcheck_conv(int groups, int stride, int pad, int dil) {
  fc_tensor *in[3] = {fc_randn(4, (int64_t[]){2, 4, 6, 5}, FC_FLOAT64, CPU),
                      fc_randn(4, (int64_t[]){4, 4 / groups, 3, 2}, FC_FLOAT64, CPU),
                      fc_randn(1, (int64_t[]){4}, FC_FLOAT64, CPU)};
  sg[0] = stride, sg[1] = 1, pg[0] = pad, pg[1] = pad, dg[0] = dil, dg[1] = 1, gg = groups;
  check_gradients(__FILE__, __LINE__, "conv2d", conv3, 3, in, NULL, 1e-6, 1e-6, 3);
  fc_release(in[0]), fc_release(in[1]), fc_release(in[2]);
}

TEST(gradients) {
  fc_manual_seed(32);
  gradcheck_conv(1, 1, 0, 1);
  gradcheck_conv(2, 2, 1, 1);
  gradcheck_conv(4, 1, 2, 2);
}

TEST(gradients_noncontiguous_and_odd) {
  fc_manual_seed(37);
  fc_tensor *xb = fc_randn(4, (int64_t[]){1, 3, 5, 7}, FC_FLOAT64, CPU);
  fc_tensor *in[3] = {fc_transpose(xb, 2, 3), fc_randn(4, (int64_t[]){3, 3, 2, 3}, FC_FLOAT64, CPU),
                      fc_randn(1, (int64_t[]){3}, FC_FLOAT64, CPU)};
  sg[0] = 3, sg[1] = 2, pg[0] = 2, pg[1] = 1, dg[0] = 2, dg[1] = 1, gg = 1;
  GRADCHECK("conv2d odd", conv3, 3, in, NULL);
  fc_release(xb), fc_release(in[0]), fc_release(in[1]), fc_release(in[2]);
}

/* The float32 kernels' gradients (oneDNN blocked/plain, im2col) against
 * the float64 ones (checked above against finite differences). */
static void compare_grads(const cfg *k, int backend, const char *what) {
  fc_tensor *x = fc_randn(4, (int64_t[]){k->n, k->c, k->h, k->w}, FC_FLOAT64, CPU);
  fc_tensor *w = fc_randn(4, (int64_t[]){k->co, k->c / k->g, k->kh, k->kw}, FC_FLOAT64, CPU);
  fc_tensor *b = fc_randn(1, (int64_t[]){k->co}, FC_FLOAT64, CPU);
  fc_tensor *in64[3] = {x, w, b}, *in32[3], *grads[2][3] = {{0}}, *g64 = NULL;
  for (int i = 0; i < 3; i++) in32[i] = fc_to_dtype(in64[i], FC_FLOAT32);
  conv_set_backend(backend);
  for (int pass = 0; pass < 2; pass++) {
    fc_tensor **in = pass ? in32 : in64;
    for (int i = 0; i < 3; i++) fc_set_requires_grad(in[i], 1);
    fc_tensor *y = fc_conv2d(in[0], in[1], k->bias ? in[2] : NULL, k->s, k->p, k->d, k->g);
    if (!g64 && y) g64 = fc_randn(4, y->shape, FC_FLOAT64, CPU); /* the same output gradient in both passes */
    fc_tensor *g = pass && g64 ? fc_to_dtype(g64, FC_FLOAT32) : fc_retain(g64);
    if (!y || fc_backward(y, g, 0) < 0) harness_fail(__FILE__, __LINE__, "%s: %s", what, fc_last_error());
    if (pass && conv_last_backend() != kind(backend))
      harness_fail(__FILE__, __LINE__, "%s: backward ran on backend %d", what, conv_last_backend());
    for (int i = 0; i < 3; i++) grads[pass][i] = fc_get_grad(in[i]);
    fc_release(y), fc_release(g);
  }
  fc_release(g64);
  conv_set_backend(CONV_DNNL);
  for (int i = 0; i < 3; i++) {
    if (i == 2 && !k->bias) {
      CHECK(!grads[0][2] && !grads[1][2]);
      continue;
    }
    if (!grads[0][i] || !grads[1][i]) {
      harness_fail(__FILE__, __LINE__, "%s: missing gradient of input %d", what, i);
      continue;
    }
    double *a = tensor_values(grads[0][i]), *c = tensor_values(grads[1][i]);
    int bad = 0;
    for (int64_t e = 0; e < grads[0][i]->numel; e++) bad += fabs(a[e] - c[e]) > 1e-3 * (1 + fabs(a[e]));
    if (bad) harness_fail(__FILE__, __LINE__, "%s: gradient of input %d: %d elements differ", what, i, bad);
    free(a), free(c);
  }
  for (int i = 0; i < 3; i++) fc_release(in64[i]), fc_release(in32[i]), fc_release(grads[0][i]), fc_release(grads[1][i]);
}

TEST(float32_gradients_match_float64) {
  fc_manual_seed(38);
  for (size_t i = 0; i < sizeof fixed_cases / sizeof *fixed_cases; i++)
    for (int b = 0; b < 3; b++) compare_grads(&fixed_cases[i], backends[b], backend_names[b]);
  for (int t = 0; t < 15; t++) {
    cfg k = random_cfg();
    for (int b = 0; b < 3; b++) compare_grads(&k, backends[b], backend_names[b]);
  }
}

/* A ResNet-like 3x3 layer big enough for oneDNN to pick Winograd: forward
 * and gradients against float64 (im2col, checked against the direct loop
 * and finite differences above; the direct loop is too slow at this size). */
TEST(winograd_sized_layer) {
  fc_manual_seed(39);
  cfg k = {64, 32, 12, 12, 32, 3, 3, {1, 1}, {1, 1}, {1, 1}, 1, true};
  fc_tensor *x = fc_randn(4, (int64_t[]){k.n, k.c, k.h, k.w}, FC_FLOAT64, CPU);
  fc_tensor *w = fc_randn(4, (int64_t[]){k.co, k.c, 3, 3}, FC_FLOAT64, CPU), *b = fc_randn(1, &k.co, FC_FLOAT64, CPU);
  fc_tensor *x32 = fc_to_dtype(x, FC_FLOAT32), *w32 = fc_to_dtype(w, FC_FLOAT32), *b32 = fc_to_dtype(b, FC_FLOAT32);
  fc_tensor *y = fc_conv2d(x, w, b, k.s, k.p, k.d, 1), *y32 = fc_conv2d(x32, w32, b32, k.s, k.p, k.d, 1);
  CHECK(conv_last_backend() == CONV_DNNL);
  if (y && y32) {
    double *a = tensor_values(y), *c = tensor_values(y32);
    int bad = 0;
    for (int64_t e = 0; e < y->numel; e++) bad += fabs(a[e] - c[e]) > 1e-4 * (1 + fabs(a[e]));
    CHECK(bad == 0);
    free(a), free(c);
  }
  compare_grads(&k, CONV_DNNL, "winograd-sized");
  fc_release(x), fc_release(w), fc_release(b), fc_release(x32), fc_release(w32), fc_release(b32);
  fc_release(y), fc_release(y32);
}

/* Only the bias needs a gradient (frozen weight): the bias-only path. */
TEST(bias_gradient_alone) {
  fc_tensor *x = fc_ones(4, (int64_t[]){2, 1, 3, 3}, FC_FLOAT32, CPU), *w = fc_ones(4, (int64_t[]){2, 1, 2, 2}, FC_FLOAT32, CPU);
  fc_tensor *b = fc_zeros(1, (int64_t[]){2}, FC_FLOAT32, CPU);
  fc_set_requires_grad(b, 1);
  fc_tensor *y = fc_conv2d(x, w, b, (int[]){1, 1}, (int[]){0, 0}, (int[]){1, 1}, 1);
  fc_tensor *g = y ? fc_ones(4, y->shape, FC_FLOAT32, CPU) : NULL;
  CHECK(y && fc_backward(y, g, 0) == 0);
  EXPECT(fc_get_grad(b), FC_FLOAT32, S(2), 0, 8, 8); /* N * Ho * Wo = 2 * 2 * 2 */
  CHECK(!fc_get_grad(x) && !fc_get_grad(w));
  fc_release(x), fc_release(w), fc_release(b), fc_release(y), fc_release(g);
}

/* Half dtypes compute in float32 and come back in their own dtype. */
TEST(half_dtypes) {
  fc_tensor *x = MK(FC_FLOAT16, S(1, 1, 2, 3), 1, 2, 3, 4, 5, 6), *w = MK(FC_FLOAT16, S(1, 1, 1, 2), 1, -1);
  EXPECT(fc_conv2d(x, w, NULL, (int[]){1, 1}, (int[]){0, 0}, (int[]){1, 1}, 1), FC_FLOAT16, S(1, 1, 2, 2), 0, -1, -1,
         -1, -1);
  fc_tensor *xb = fc_to_dtype(x, FC_BFLOAT16), *wb = fc_to_dtype(w, FC_BFLOAT16);
  EXPECT(fc_conv2d(xb, wb, NULL, (int[]){1, 1}, (int[]){0, 1}, (int[]){1, 1}, 1), FC_BFLOAT16, S(1, 1, 2, 4), 0, -1,
         -1, -1, 3, -4, -1, -1, 6);
  fc_release(x), fc_release(w), fc_release(xb), fc_release(wb);
}

TEST(conv1d_and_errors) {
  fc_tensor *x = MK(FC_FLOAT32, S(1, 1, 5), 1, 2, 3, 4, 5), *w = MK(FC_FLOAT32, S(1, 1, 2), 1, -1);
  EXPECT(fc_conv1d(x, w, NULL, 1, 0, 1, 1), FC_FLOAT32, S(1, 1, 4), 0, -1, -1, -1, -1);
  EXPECT(fc_conv1d(x, w, NULL, 2, 1, 1, 1), FC_FLOAT32, S(1, 1, 3), 0, -1, -1, -1);
  fc_tensor *x4 = fc_ones(4, (int64_t[]){1, 3, 5, 5}, FC_FLOAT32, CPU), *w4 = fc_ones(4, (int64_t[]){2, 2, 3, 3}, FC_FLOAT32, CPU);
  int one[2] = {1, 1}, zero[2] = {0, 0};
  CHECK_ERR(fc_conv2d(x4, w4, NULL, one, zero, one, 1), "weight of shape [2,2,3,3] expects 2 input channels, input of shape [1,3,5,5] has 3");
  CHECK_ERR(fc_conv2d(x4, w4, NULL, one, zero, one, 2), "groups 2 must divide the 3 input and 2 output channels");
  CHECK_ERR(fc_conv2d(x4, w4, NULL, one, zero, one, 0), "groups must be >= 1, got 0");
  fc_tensor *big = fc_ones(4, (int64_t[]){1, 3, 7, 7}, FC_FLOAT32, CPU);
  CHECK_ERR(fc_conv2d(x4, big, NULL, one, zero, one, 1), "larger than the padded input");
  CHECK_ERR(fc_conv2d(x, w, NULL, one, zero, one, 1), "conv2d: expects input [N,C,H,W]");
  fc_tensor *w3 = fc_ones(4, (int64_t[]){2, 3, 3, 3}, FC_FLOAT32, CPU), *b3 = fc_ones(1, (int64_t[]){3}, FC_FLOAT32, CPU);
  CHECK_ERR(fc_conv2d(x4, w3, b3, one, zero, one, 1), "bias of shape [3] does not match 2 output channels");
  CHECK_ERR(fc_conv2d(x4, w3, NULL, (int[]){0, 1}, zero, one, 1), "stride {0,1} and dilation {1,1} must be >= 1");
  CHECK_ERR(fc_conv2d(x4, w3, NULL, one, (int[]){-1, 0}, one, 1), "padding {-1,0} >= 0");
  fc_tensor *w64 = fc_to_dtype(w3, FC_FLOAT64), *xi = fc_to_dtype(x4, FC_INT64), *wi = fc_to_dtype(w3, FC_INT64);
  CHECK_ERR(fc_conv2d(x4, w64, NULL, one, zero, one, 1), "must share one float dtype, got input float32, weight float64");
  CHECK_ERR(fc_conv2d(xi, wi, NULL, one, zero, one, 1), "must share one float dtype, got input int64, weight int64");
  fc_release(x), fc_release(w), fc_release(x4), fc_release(w4), fc_release(big), fc_release(w3), fc_release(b3);
  fc_release(w64), fc_release(xi), fc_release(wi);
}

int main(void) {
  RUN(forward_matches_direct);
  RUN(random_shapes_every_backend);
  RUN(noncontiguous_operands);
  RUN(primitive_cache_eviction);
  RUN(thread_count_changes);
  RUN(threads_share_the_cache);
  RUN(gradients);
  RUN(gradients_noncontiguous_and_odd);
  RUN(float32_gradients_match_float64);
  RUN(winograd_sized_layer);
  RUN(bias_gradient_alone);
  RUN(half_dtypes);
  RUN(conv1d_and_errors);
  return harness_report();
}
