/* test_conv2d.c — conv2d/conv1d against a direct float64 convolution, and
 * their gradients against finite differences. */
#include "harness.h"
#include <stdbool.h>
#include <stdlib.h>

typedef struct cfg { int64_t n, c, h, w, co, kh, kw; int s[2], p[2], d[2], g; bool bias; } cfg;

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

static void check_cfg(const cfg *k, int dtype) {
  fc_tensor *x = fc_randn(4, (int64_t[]){k->n, k->c, k->h, k->w}, FC_FLOAT64, CPU);
  fc_tensor *w = fc_randn(4, (int64_t[]){k->co, k->c / k->g, k->kh, k->kw}, FC_FLOAT64, CPU);
  fc_tensor *b = fc_randn(1, (int64_t[]){k->co}, FC_FLOAT64, CPU);
  fc_tensor *xt = fc_to_dtype(x, dtype), *wt = fc_to_dtype(w, dtype), *bt = fc_to_dtype(b, dtype);
  fc_tensor *y = fc_conv2d(xt, wt, k->bias ? bt : NULL, k->s, k->p, k->d, k->g);
  if (!y) {
    harness_fail(__FILE__, __LINE__, "conv2d: %s", fc_last_error());
  } else {
    double *yv = malloc(sizeof(double) * (size_t)y->numel);
    fc_to_doubles(y, yv);
    const double *xv = fc_data_ptr(x), *wv = fc_data_ptr(w), *bv = fc_data_ptr(b);
    int bad = 0;
    for (int64_t n = 0, at = 0; n < k->n; n++)
      for (int64_t o = 0; o < k->co; o++)
        for (int64_t i = 0; i < y->shape[2]; i++)
          for (int64_t j = 0; j < y->shape[3]; j++, at++) {
            double want = direct(k, xv, wv, bv, n, o, i, j);
            if (fabs(yv[at] - want) > (dtype == FC_FLOAT64 ? 1e-12 : 1e-4) * (1 + fabs(want))) bad++;
          }
    CHECK(bad == 0);
    free(yv);
  }
  fc_release(y), fc_release(x), fc_release(w), fc_release(b), fc_release(xt), fc_release(wt), fc_release(bt);
}

TEST(forward_matches_direct) {
  fc_manual_seed(31);
  cfg cases[] = {
      {2, 3, 7, 6, 4, 3, 3, {1, 1}, {0, 0}, {1, 1}, 1, true},
      {2, 4, 9, 9, 6, 3, 2, {2, 1}, {1, 2}, {1, 1}, 2, false},
      {1, 3, 10, 8, 2, 3, 3, {1, 2}, {2, 1}, {2, 3}, 1, true},
      {3, 4, 5, 5, 4, 3, 3, {1, 1}, {1, 1}, {1, 1}, 4, true}, /* depthwise */
      {2, 1, 28, 28, 16, 3, 3, {2, 2}, {1, 1}, {1, 1}, 1, false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    check_cfg(&cases[i], FC_FLOAT64);
    check_cfg(&cases[i], FC_FLOAT32);
  }
}

TEST(conv1d_and_errors) {
  fc_tensor *x = MK(FC_FLOAT32, S(1, 1, 5), 1, 2, 3, 4, 5), *w = MK(FC_FLOAT32, S(1, 1, 2), 1, -1);
  EXPECT(fc_conv1d(x, w, NULL, 1, 0, 1, 1), FC_FLOAT32, S(1, 1, 4), 0, -1, -1, -1, -1);
  EXPECT(fc_conv1d(x, w, NULL, 2, 1, 1, 1), FC_FLOAT32, S(1, 1, 3), 0, -1, -1, -1);
  fc_tensor *x4 = fc_ones(4, (int64_t[]){1, 3, 5, 5}, FC_FLOAT32, CPU), *w4 = fc_ones(4, (int64_t[]){2, 2, 3, 3}, FC_FLOAT32, CPU);
  int one[2] = {1, 1}, zero[2] = {0, 0};
  CHECK_ERR(fc_conv2d(x4, w4, NULL, one, zero, one, 1), "weight of shape [2,2,3,3] expects 2 input channels, input of shape [1,3,5,5] has 3");
  CHECK_ERR(fc_conv2d(x4, w4, NULL, one, zero, one, 2), "groups 2 must divide the 3 input and 2 output channels");
  fc_tensor *big = fc_ones(4, (int64_t[]){1, 3, 7, 7}, FC_FLOAT32, CPU);
  CHECK_ERR(fc_conv2d(x4, big, NULL, one, zero, one, 1), "larger than the padded input");
  CHECK_ERR(fc_conv2d(x, w, NULL, one, zero, one, 1), "conv2d: expects input [N,C,H,W]");
  fc_release(x), fc_release(w), fc_release(x4), fc_release(w4), fc_release(big);
}

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

int main(void) {
  RUN(forward_matches_direct);
  RUN(conv1d_and_errors);
  RUN(gradients);
  return harness_report();
}
