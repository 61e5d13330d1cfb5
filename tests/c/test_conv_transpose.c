/* test_conv_transpose.c — conv_transpose2d against a direct float64
 * scatter loop on fixed and random shapes (stride, padding, output_padding,
 * dilation, groups, non-contiguous operands) through each float32 backend,
 * against PyTorch 1.13 numbers, its gradients against finite differences and
 * float32 against float64, and its shape errors. */
#include "harness.h"
#include "internal.h" /* conv_set_backend, conv_last_backend */
#include <stdlib.h>

typedef struct cfg { int64_t n, cin, h, w, cout, kh, kw; int s[2], p[2], op[2], d[2], g; bool bias; } cfg;
static const int backends[] = {CONV_DNNL, CONV_DNNL_PLAIN, CONV_IM2COL};
static const char *const backend_names[] = {"oneDNN blocked", "oneDNN plain", "im2col"};

static int64_t out_size(int64_t in, int64_t k, int s, int p, int op, int d) {
  return (in - 1) * s - 2 * p + d * (k - 1) + op + 1;
}

/* Every input pixel scatters its kernel-weighted copy into the output:
 * y[n, g*cog+o, i*s-p+a*d, j*s-p+q*d] += x[n,c,i,j] w[c,o,a,q]. */
static double *direct(const cfg *k, const double *x, const double *w, const double *b, int64_t ho, int64_t wo) {
  int64_t cig = k->cin / k->g, cog = k->cout / k->g;
  double *y = calloc((size_t)(k->n * k->cout * ho * wo), sizeof(double));
  for (int64_t n = 0; n < k->n; n++)
    for (int64_t o = 0; o < k->cout; o++)
      for (int64_t e = 0; e < ho * wo; e++) y[(n * k->cout + o) * ho * wo + e] = k->bias ? b[o] : 0;
  for (int64_t n = 0; n < k->n; n++)
    for (int64_t c = 0; c < k->cin; c++)
      for (int64_t i = 0; i < k->h; i++)
        for (int64_t j = 0; j < k->w; j++) {
          double xv = x[((n * k->cin + c) * k->h + i) * k->w + j];
          int64_t g = c / cig;
          for (int64_t o = 0; o < cog; o++)
            for (int64_t a = 0; a < k->kh; a++)
              for (int64_t q = 0; q < k->kw; q++) {
                int64_t oh = i * k->s[0] - k->p[0] + a * k->d[0], ow = j * k->s[1] - k->p[1] + q * k->d[1];
                if (oh < 0 || oh >= ho || ow < 0 || ow >= wo) continue;
                y[((n * k->cout + g * cog + o) * ho + oh) * wo + ow] += xv * w[((c * cog + o) * k->kh + a) * k->kw + q];
              }
        }
  return y;
}

static fc_tensor *convt(const cfg *k, fc_tensor *x, fc_tensor *w, fc_tensor *b) {
  return fc_conv_transpose2d(x, w, k->bias ? b : NULL, k->s, k->p, k->op, k->d, k->g);
}

static void check_against_direct(const cfg *k, fc_tensor *x, fc_tensor *w, fc_tensor *b, double tol, const char *what,
                                 int expect_backend) {
  fc_tensor *y = convt(k, x, w, b);
  if (!y) {
    harness_fail(__FILE__, __LINE__, "conv_transpose2d (%s): %s", what, fc_last_error());
    return;
  }
  if (expect_backend >= 0 && conv_last_backend() != expect_backend)
    harness_fail(__FILE__, __LINE__, "conv_transpose2d (%s): ran on backend %d: x [%lld,%lld,%lld,%lld] cout %lld "
                 "k %lldx%lld s %d,%d p %d,%d op %d,%d d %d,%d g %d", what, conv_last_backend(), (long long)k->n,
                 (long long)k->cin, (long long)k->h, (long long)k->w, (long long)k->cout, (long long)k->kh,
                 (long long)k->kw, k->s[0], k->s[1], k->p[0], k->p[1], k->op[0], k->op[1], k->d[0], k->d[1], k->g);
  int64_t ho = out_size(k->h, k->kh, k->s[0], k->p[0], k->op[0], k->d[0]);
  int64_t wo = out_size(k->w, k->kw, k->s[1], k->p[1], k->op[1], k->d[1]);
  CHECK(y->ndim == 4 && y->shape[0] == k->n && y->shape[1] == k->cout && y->shape[2] == ho && y->shape[3] == wo);
  double *xv = tensor_values(x), *wv = tensor_values(w), *bv = tensor_values(b), *yv = tensor_values(y), *want = direct(k, xv, wv, bv, ho, wo);
  int bad = 0;
  for (int64_t e = 0; e < y->numel; e++) bad += fabs(yv[e] - want[e]) > tol * (1 + fabs(want[e]));
  if (bad)
    harness_fail(__FILE__, __LINE__, "conv_transpose2d (%s) x [%lld,%lld,%lld,%lld] cout %lld k %lldx%lld s %d,%d "
                 "p %d,%d op %d,%d d %d,%d g %d: %d wrong", what, (long long)k->n, (long long)k->cin, (long long)k->h,
                 (long long)k->w, (long long)k->cout, (long long)k->kh, (long long)k->kw, k->s[0], k->s[1], k->p[0],
                 k->p[1], k->op[0], k->op[1], k->d[0], k->d[1], k->g, bad);
  free(xv), free(wv), free(bv), free(yv), free(want);
  fc_release(y);
}

static void check_cfg(const cfg *k, int dtype, const char *what, int expect_backend) {
  fc_tensor *x = fc_randn(4, (int64_t[]){k->n, k->cin, k->h, k->w}, dtype, CPU);
  fc_tensor *w = fc_randn(4, (int64_t[]){k->cin, k->cout / k->g, k->kh, k->kw}, dtype, CPU);
  fc_tensor *b = fc_randn(1, (int64_t[]){k->cout}, dtype, CPU);
  check_against_direct(k, x, w, b, dtype == FC_FLOAT64 ? 1e-12 : 1e-4, what, expect_backend);
  fc_release(x), fc_release(w), fc_release(b);
}

static const cfg fixed_cases[] = {
    {2, 3, 4, 5, 2, 3, 3, {1, 1}, {0, 0}, {0, 0}, {1, 1}, 1, true},
    {2, 4, 5, 5, 6, 3, 3, {2, 2}, {1, 1}, {1, 1}, {1, 1}, 2, true}, /* the usual 2x upsampling */
    {1, 3, 4, 3, 2, 2, 3, {3, 2}, {1, 2}, {2, 0}, {2, 2}, 1, false},
    {2, 4, 3, 4, 4, 3, 2, {1, 2}, {2, 0}, {1, 1}, {2, 3}, 4, true}, /* output_padding < dilation */
    {1, 2, 6, 6, 3, 4, 4, {2, 2}, {1, 1}, {0, 0}, {1, 1}, 1, false},
    {2, 16, 7, 7, 8, 2, 2, {2, 2}, {0, 0}, {0, 0}, {1, 1}, 1, true},
};

static uint32_t lcg_state = 777;
static int rnd(int lo, int hi) {
  lcg_state = lcg_state * 1664525u + 1013904223u;
  return lo + (int)((lcg_state >> 8) % (uint32_t)(hi - lo + 1));
}

static cfg random_cfg(void) {
  for (;;) {
    cfg k;
    k.g = rnd(1, 3);
    k.n = rnd(1, 3), k.cin = k.g * rnd(1, 3), k.cout = k.g * rnd(1, 3);
    k.h = rnd(1, 7), k.w = rnd(1, 7), k.kh = rnd(1, 4), k.kw = rnd(1, 4);
    for (int i = 0; i < 2; i++) {
      k.s[i] = rnd(1, 3), k.p[i] = rnd(0, 2), k.d[i] = rnd(1, 3);
      int most = (k.s[i] > k.d[i] ? k.s[i] : k.d[i]) - 1;
      k.op[i] = rnd(0, most);
    }
    k.bias = rnd(0, 1);
    if (out_size(k.h, k.kh, k.s[0], k.p[0], k.op[0], k.d[0]) >= 1 &&
        out_size(k.w, k.kw, k.s[1], k.p[1], k.op[1], k.d[1]) >= 1)
      return k;
  }
}

/* oneDNN declines a trailing padding (padding - output_padding) below
 * -(stride - 1), possible when output_padding >= stride (allowed while it is
 * smaller than the dilation); im2col takes those. */
static bool dnnl_takes_case(const cfg *k) {
  return k->op[0] - k->p[0] < k->s[0] && k->op[1] - k->p[1] < k->s[1];
}

TEST(forward_matches_direct) {
  fc_manual_seed(41);
  cfg cases[sizeof fixed_cases / sizeof *fixed_cases + 40];
  int ncases = 0;
  for (size_t i = 0; i < sizeof fixed_cases / sizeof *fixed_cases; i++) cases[ncases++] = fixed_cases[i];
  while (ncases < (int)(sizeof cases / sizeof *cases)) cases[ncases++] = random_cfg();
  for (int i = 0; i < ncases; i++) {
    check_cfg(&cases[i], FC_FLOAT64, "float64", CONV_IM2COL);
    bool dnnl_takes = dnnl_takes_case(&cases[i]);
    for (int b = 0; b < 3; b++) {
      conv_set_backend(backends[b]);
      check_cfg(&cases[i], FC_FLOAT32, backend_names[b], backends[b] != CONV_IM2COL && dnnl_takes ? CONV_DNNL : CONV_IM2COL);
    }
  }
  conv_set_backend(CONV_DNNL);
}

TEST(noncontiguous_operands) {
  fc_manual_seed(42);
  const cfg *k = &fixed_cases[1];
  for (int dtype = FC_FLOAT32; dtype <= FC_FLOAT64; dtype++) {
    fc_tensor *xb = fc_randn(4, (int64_t[]){k->n, k->cin, k->w, k->h}, dtype, CPU);
    fc_tensor *wb = fc_randn(4, (int64_t[]){k->cin, k->cout / k->g, k->kw, k->kh}, dtype, CPU);
    fc_tensor *bb = fc_randn(1, (int64_t[]){2 * k->cout}, dtype, CPU);
    fc_tensor *x = fc_transpose(xb, 2, 3), *w = fc_transpose(wb, 2, 3), *b = fc_slice(bb, 0, 0, 2 * k->cout, 2);
    CHECK(!fc_is_contiguous(x) && !fc_is_contiguous(w) && !fc_is_contiguous(b));
    check_against_direct(k, x, w, b, dtype == FC_FLOAT64 ? 1e-12 : 1e-4, "non-contiguous", -1);
    fc_release(xb), fc_release(wb), fc_release(bb), fc_release(x), fc_release(w), fc_release(b);
  }
}

/* PyTorch 1.13: x [1,2,2,3], w [2,1,3,3], groups 2, stride 2, padding 1,
 * output_padding 1, with v(n, a, m, c)[i] = ((i * a) % m - c) / 4, loss
 * sum(y * G); printed by torch.nn.functional.conv_transpose2d in float64. */
static double v(int64_t i, int a, int m, int c) { return (double)((i * a) % m - c) / 4; }

TEST(matches_pytorch) {
  double xs[12], ws[18], gs[48];
  for (int i = 0; i < 12; i++) xs[i] = v(i, 7, 11, 5);
  for (int i = 0; i < 18; i++) ws[i] = v(i, 5, 9, 4);
  for (int i = 0; i < 48; i++) gs[i] = v(i, 3, 7, 3);
  static const double y_torch[48] = {
      1.125, -0.1875, 0.25, 0.625, 0.75, 0.125, -0.4375, -0.8125, 1.0625, 1.1875, -0.1875, 1.0625,
      -0.125, 1.5625, 0.375, 0.3125, 0.875, -0.0625, 1.75, 0.4375, 0.75, 0.6875, -0.25, 0.5,
      -0.75, 0.5, -0.25, -0.75, 0.25, -1, 0.9375, -0.5625, -0.3125, 1.4375, -1.5625, 0.6875,
      -0.625, 0.1875, -0.125, -1.0625, 0.375, -1.1875, 0.5, -0.1875, -0.5, 0.0625, -1.5, -0.25};
  static const double dx_torch[12] = {0.625, -0.375, -1.1875, 1.5625, 1.0625, -1.5625, 1.25, 1.25, 0.875, 0.1875, 2.375, 2.375};
  static const double dw_torch[18] = {-0.75, 0.5, -1.125, 0.1875, -0.3125, 0.625, -0.3125, 0.5, -0.3125,
                                      0.6875, 0.125, 0.875, -1.0625, 1.1875, 0.625, 0.8125, -0.875, 1.1875};
  for (int b = 0; b < 3; b++)
    for (int dtype = FC_FLOAT32; dtype <= FC_FLOAT64; dtype++) {
      conv_set_backend(backends[b]);
      fc_tensor *x = fc_from_buffer(xs, FC_FLOAT64, 4, (int64_t[]){1, 2, 2, 3}, dtype, CPU);
      fc_tensor *w = fc_from_buffer(ws, FC_FLOAT64, 4, (int64_t[]){2, 1, 3, 3}, dtype, CPU);
      fc_tensor *bias = fc_from_buffer((double[]){0.5, -0.25}, FC_FLOAT64, 1, (int64_t[]){2}, dtype, CPU);
      fc_tensor *G = fc_from_buffer(gs, FC_FLOAT64, 4, (int64_t[]){1, 2, 4, 6}, dtype, CPU);
      fc_set_requires_grad(x, 1), fc_set_requires_grad(w, 1), fc_set_requires_grad(bias, 1);
      fc_tensor *y = fc_conv_transpose2d(x, w, bias, (int[]){2, 2}, (int[]){1, 1}, (int[]){1, 1}, (int[]){1, 1}, 2);
      CHECK(y && fc_backward(y, G, 0) == 0);
      double tol = dtype == FC_FLOAT64 ? 1e-12 : 1e-5;
      if (y) expect_tensor(__FILE__, __LINE__, fc_retain(y), dtype, 4, (int64_t[]){1, 2, 4, 6}, y_torch, tol);
      expect_tensor(__FILE__, __LINE__, fc_get_grad(x), dtype, 4, (int64_t[]){1, 2, 2, 3}, dx_torch, tol);
      expect_tensor(__FILE__, __LINE__, fc_get_grad(w), dtype, 4, (int64_t[]){2, 1, 3, 3}, dw_torch, tol);
      expect_tensor(__FILE__, __LINE__, fc_get_grad(bias), dtype, 1, (int64_t[]){2}, (double[]){0, -0.25}, tol);
      fc_release(x), fc_release(w), fc_release(bias), fc_release(G), fc_release(y);
    }
  conv_set_backend(CONV_DNNL);
}

/* ---- gradients ------------------------------------------------------------ */

static const cfg *grad_cfg;
static fc_tensor *convt3(fc_tensor **in, void *ctx) { return convt(grad_cfg, in[0], in[1], in[2]); }

TEST(gradients) {
  fc_manual_seed(43);
  for (size_t i = 0; i < 4; i++) {
    const cfg *k = &fixed_cases[i];
    grad_cfg = k;
    fc_tensor *in[3] = {fc_randn(4, (int64_t[]){k->n, k->cin, k->h, k->w}, FC_FLOAT64, CPU),
                        fc_randn(4, (int64_t[]){k->cin, k->cout / k->g, k->kh, k->kw}, FC_FLOAT64, CPU),
                        fc_randn(1, (int64_t[]){k->cout}, FC_FLOAT64, CPU)};
    GRADCHECK("conv_transpose2d", convt3, k->bias ? 3 : 2, in, NULL);
    fc_release(in[0]), fc_release(in[1]), fc_release(in[2]);
  }
}

/* float32 gradients (each backend) against float64 ones. */
TEST(float32_gradients_match_float64) {
  fc_manual_seed(44);
  for (int t = 0; t < 6 + 12; t++) {
    cfg k = t < 6 ? fixed_cases[t] : random_cfg();
    fc_tensor *in64[3] = {fc_randn(4, (int64_t[]){k.n, k.cin, k.h, k.w}, FC_FLOAT64, CPU),
                          fc_randn(4, (int64_t[]){k.cin, k.cout / k.g, k.kh, k.kw}, FC_FLOAT64, CPU),
                          fc_randn(1, (int64_t[]){k.cout}, FC_FLOAT64, CPU)};
    fc_tensor *ref[3] = {0}, *g64 = NULL; /* one output gradient for every pass */
    for (int b = -1; b < 3; b++) { /* -1: the float64 reference */
      fc_tensor *in[3];
      for (int i = 0; i < 3; i++) {
        fc_set_grad_enabled(0); /* the float32 copies are leaves of their own */
        in[i] = b < 0 ? fc_clone(in64[i]) : fc_to_dtype(in64[i], FC_FLOAT32);
        fc_set_grad_enabled(1);
        fc_set_requires_grad(in[i], 1);
      }
      if (b >= 0) conv_set_backend(backends[b]);
      fc_tensor *y = convt(&k, in[0], in[1], in[2]);
      if (!g64 && y) g64 = fc_randn(4, y->shape, FC_FLOAT64, CPU);
      fc_tensor *G = g64 ? fc_to_dtype(g64, y ? y->dtype : FC_FLOAT64) : NULL;
      if (!y || fc_backward(y, G, 0) < 0) harness_fail(__FILE__, __LINE__, "backward: %s", fc_last_error());
      bool dnnl_takes = dnnl_takes_case(&k);
      if (b >= 0 && conv_last_backend() != (backends[b] != CONV_IM2COL && dnnl_takes ? CONV_DNNL : CONV_IM2COL))
        harness_fail(__FILE__, __LINE__, "%s: backward ran on backend %d", backend_names[b], conv_last_backend());
      for (int i = 0; i < (k.bias ? 3 : 2); i++) {
        fc_tensor *gr = fc_get_grad(in[i]);
        if (!gr) {
          harness_fail(__FILE__, __LINE__, "missing gradient %d", i);
        } else if (b < 0) {
          ref[i] = gr;
          continue;
        } else {
          double *a = tensor_values(ref[i]), *c = tensor_values(gr);
          int bad = 0;
          for (int64_t e = 0; e < gr->numel; e++) bad += fabs(a[e] - c[e]) > 1e-3 * (1 + fabs(a[e]));
          if (bad) harness_fail(__FILE__, __LINE__, "%s case %d: gradient %d: %d differ", backend_names[b], t, i, bad);
          free(a), free(c);
        }
        fc_release(gr);
      }
      if (!k.bias) CHECK(!fc_get_grad(in[2]));
      for (int i = 0; i < 3; i++) fc_release(in[i]);
      fc_release(y), fc_release(G);
    }
    conv_set_backend(CONV_DNNL);
    for (int i = 0; i < 3; i++) fc_release(in64[i]), fc_release(ref[i]);
    fc_release(g64);
  }
}

TEST(errors) {
  fc_tensor *x = fc_ones(4, (int64_t[]){1, 4, 3, 3}, FC_FLOAT32, CPU);
  fc_tensor *w = fc_ones(4, (int64_t[]){4, 2, 3, 3}, FC_FLOAT32, CPU);
  fc_tensor *w3 = fc_ones(4, (int64_t[]){3, 2, 3, 3}, FC_FLOAT32, CPU), *b5 = fc_ones(1, (int64_t[]){5}, FC_FLOAT32, CPU);
  int one[2] = {1, 1}, two[2] = {2, 2}, zero[2] = {0, 0};
  CHECK_ERR(fc_conv_transpose2d(x, w, NULL, two, zero, two, one, 1),
            "output_padding 2 (height) must be >= 0 and smaller than either stride 2 or dilation 1");
  CHECK_ERR(fc_conv_transpose2d(x, w, NULL, one, zero, (int[]){0, 1}, one, 1),
            "output_padding 1 (width) must be >= 0 and smaller than either stride 1 or dilation 1");
  CHECK_ERR(fc_conv_transpose2d(x, w, NULL, one, zero, (int[]){-1, 0}, one, 1), "output_padding -1 (height)");
  CHECK_ERR(fc_conv_transpose2d(x, w3, NULL, one, zero, zero, one, 1),
            "weight of shape [3,2,3,3] expects 3 input channels, input of shape [1,4,3,3] has 4");
  CHECK_ERR(fc_conv_transpose2d(x, w, NULL, one, zero, zero, one, 3), "groups 3 must divide the 4 input channels");
  CHECK_ERR(fc_conv_transpose2d(x, w, b5, one, zero, zero, one, 2), "bias of shape [5] does not match 4 output channels");
  CHECK_ERR(fc_conv_transpose2d(x, w, NULL, one, (int[]){3, 0}, zero, one, 1),
            "output height would be -1 (input 3, kernel 3, stride 1, padding 3");
  CHECK_ERR(fc_conv_transpose2d(x, w, NULL, zero, zero, zero, one, 1), "stride {0,0} and dilation {1,1} must be >= 1");
  CHECK_ERR(fc_conv_transpose2d(w3, b5, NULL, one, zero, zero, one, 1), "expects input [N,Cin,H,W] and weight [Cin,Cout/groups,kh,kw]");
  fc_tensor *w64 = fc_to_dtype(w, FC_FLOAT64);
  CHECK_ERR(fc_conv_transpose2d(x, w64, NULL, one, zero, zero, one, 1), "got input float32, weight float64");
  fc_release(x), fc_release(w), fc_release(w3), fc_release(b5), fc_release(w64);
}

int main(void) {
  RUN(forward_matches_direct);
  RUN(noncontiguous_operands);
  RUN(matches_pytorch);
  RUN(gradients);
  RUN(float32_gradients_match_float64);
  RUN(errors);
  return harness_report();
}
