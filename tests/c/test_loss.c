/* test_loss.c — softmax family and losses, forward and backward.
 *
 * Values are checked three ways: by hand (small softmaxes), against naive
 * float64 loops written here straight from PyTorch's definitions (random
 * [N,C,H,W] inputs, every option), and against numbers PyTorch 1.13 printed
 * for the inputs below (torch.nn.functional in float64, run once offline and
 * pasted as literals; this test never runs Python). Gradients are checked
 * against central differences in float64. */
#include "harness.h"
#include <stdbool.h>
#include <stdlib.h>

#define X4x3 MK(FC_FLOAT64, S(4, 3), 1.0, 2.0, 0.5, -1.0, 0.0, 3.0, 0.2, 0.2, 0.2, 2.0, -2.0, 1.0)
#define Y4 MK(FC_INT64, S(4), 2, 0, 1, 2)
enum { MEAN = FC_REDUCE_MEAN, SUM = FC_REDUCE_SUM, NONE = FC_REDUCE_NONE };


/* x[n, c, s] of a [N, C, S] row-major buffer */
#define AT3(x, n, c, s) (x)[((n) * C + (c)) * S + (s)]

/* Naive log_softmax over dim 1 of [N, C, S]. */
static void naive_log_softmax(const double *x, int64_t N, int64_t C, int64_t S, double *out) {
  for (int64_t n = 0; n < N; n++)
    for (int64_t s = 0; s < S; s++) {
      double m = -INFINITY, sum = 0;
      for (int64_t c = 0; c < C; c++) m = fmax(m, AT3(x, n, c, s));
      for (int64_t c = 0; c < C; c++) sum += exp(AT3(x, n, c, s) - m);
      for (int64_t c = 0; c < C; c++) AT3(out, n, c, s) = AT3(x, n, c, s) - m - log(sum);
    }
}

/* PyTorch's cross_entropy for class indices, spelled out: per row
 * (1 - eps) * w[y] * -logp[y] + eps / C * sum_c w[c] * -logp[c]; a mean
 * divides by the summed w[y] of the rows not ignored. Rows into row[]. */
static double naive_ce(const double *x, int64_t N, int64_t C, int64_t S, const int64_t *y, const double *w,
                       int64_t ignore, double eps, int red, double *row, bool logits) {
  double *lp = malloc(sizeof(double) * (size_t)(N * C * S));
  if (logits) naive_log_softmax(x, N, C, S, lp);
  else memcpy(lp, x, sizeof(double) * (size_t)(N * C * S));
  double total = 0, denom = 0;
  for (int64_t n = 0; n < N; n++)
    for (int64_t s = 0; s < S; s++) {
      int64_t t = y[n * S + s];
      double l = 0;
      if (t != ignore) {
        double smooth = 0;
        for (int64_t c = 0; c < C; c++) smooth -= (w ? w[c] : 1) * AT3(lp, n, c, s);
        l = (1 - eps) * (w ? w[t] : 1) * -AT3(lp, n, t, s) + eps / C * smooth;
        denom += w ? w[t] : 1;
      }
      if (row) row[n * S + s] = l;
      total += l;
    }
  free(lp);
  return red == MEAN ? total / denom : total;
}

/* Probability targets p: per row -sum_c w[c] ((1 - eps) p[c] + eps / C) logp[c];
 * a mean divides by the number of rows. */
static double naive_ce_probs(const double *x, int64_t N, int64_t C, int64_t S, const double *p,
                             const double *w, double eps, int red, double *row) {
  double *lp = malloc(sizeof(double) * (size_t)(N * C * S)), total = 0;
  naive_log_softmax(x, N, C, S, lp);
  for (int64_t n = 0; n < N; n++)
    for (int64_t s = 0; s < S; s++) {
      double l = 0;
      for (int64_t c = 0; c < C; c++)
        l -= (w ? w[c] : 1) * ((1 - eps) * AT3(p, n, c, s) + eps / C) * AT3(lp, n, c, s);
      if (row) row[n * S + s] = l;
      total += l;
    }
  free(lp);
  return red == MEAN ? total / (double)(N * S) : total;
}

/* ---- softmax -------------------------------------------------------------- */

TEST(softmax_by_hand) {
  fc_tensor *x = MK(FC_FLOAT32, S(2, 3), 1, 2, 3, 1000, 1000, 1000);
  double e = exp(1) + exp(2) + exp(3);
  EXPECT(fc_softmax(x, 1), FC_FLOAT32, S(2, 3), 1e-6, exp(1) / e, exp(2) / e, exp(3) / e, 1.0 / 3, 1.0 / 3,
         1.0 / 3);
  EXPECT(fc_log_softmax(x, -1), FC_FLOAT32, S(2, 3), 1e-6, 1 - log(e), 2 - log(e), 3 - log(e), -log(3),
         -log(3), -log(3));
  fc_tensor *t = fc_transpose(x, 0, 1); /* softmax over a strided dim */
  EXPECT(fc_softmax(t, 0), FC_FLOAT32, S(3, 2), 1e-6, exp(1) / e, 1.0 / 3, exp(2) / e, 1.0 / 3, exp(3) / e,
         1.0 / 3);
  EXPECT(fc_log_softmax(t, 0), FC_FLOAT32, S(3, 2), 1e-6, 1 - log(e), -log(3), 2 - log(e), -log(3),
         3 - log(e), -log(3));
  fc_release(t), fc_release(x);
  /* -inf entries (masks) give exactly 0 / -inf; an all -inf row is NaN, as in PyTorch */
  fc_tensor *m = MK(FC_FLOAT32, S(2, 3), 0, -INFINITY, 1, -INFINITY, -INFINITY, -INFINITY);
  fc_tensor *sm = fc_softmax(m, 1);
  double *v = tensor_values(sm);
  CHECK_NEAR(v[0], 1 / (1 + exp(1)), 1e-6);
  CHECK(v[1] == 0);
  CHECK_NEAR(v[2], exp(1) / (1 + exp(1)), 1e-6);
  CHECK(isnan(v[3]) && isnan(v[4]) && isnan(v[5]));
  free(v), fc_release(sm);
  sm = fc_log_softmax(m, 1);
  v = tensor_values(sm);
  CHECK(isinf(v[1]) && v[1] < 0);
  CHECK_NEAR(v[2], 1 - log(1 + exp(1)), 1e-6);
  free(v), fc_release(sm), fc_release(m);
  /* a NaN poisons its row only */
  fc_tensor *nan = MK(FC_FLOAT64, S(2, 2), NAN, 0, 0, 0);
  EXPECT(fc_softmax(nan, 1), FC_FLOAT64, S(2, 2), 1e-12, NAN, NAN, 0.5, 0.5);
  fc_release(nan);
  /* a 0-dim tensor is a single class */
  fc_tensor *s0 = fc_scalar(3.5, FC_FLOAT64, CPU);
  EXPECT0(fc_softmax(s0, 0), FC_FLOAT64, 0, 1.0);
  EXPECT0(fc_log_softmax(s0, -1), FC_FLOAT64, 0, 0.0);
  fc_release(s0);
}

/* softmax over every dim of a [3, 70, 5] tensor (so the strided form runs
 * full and partial groups of rows) against the naive float64 loop. */
TEST(softmax_every_dim) {
  fc_manual_seed(3);
  int64_t shape[3] = {3, 70, 5};
  fc_tensor *x64 = fc_randn(3, shape, FC_FLOAT64, CPU), *x32 = fc_to_dtype(x64, FC_FLOAT32);
  fc_tensor *x16 = fc_to_dtype(x64, FC_FLOAT16);
  double *x = tensor_values(x64), *want = malloc(sizeof(double) * 3 * 70 * 5);
  for (int dim = 0; dim < 3; dim++) {
    int64_t N = 1, C = shape[dim], S = 1;
    for (int d = 0; d < dim; d++) N *= shape[d];
    for (int d = dim + 1; d < 3; d++) S *= shape[d];
    naive_log_softmax(x, N, C, S, want);
    EXPECT_VALUES(fc_log_softmax(x64, dim), want, 1050, 1e-12);
    EXPECT_VALUES(fc_log_softmax(x32, dim - 3), want, 1050, 2e-6);
    for (int i = 0; i < 1050; i++) want[i] = exp(want[i]);
    EXPECT_VALUES(fc_softmax(x64, dim), want, 1050, 1e-12);
    EXPECT_VALUES(fc_softmax(x32, dim), want, 1050, 1e-6);
    fc_tensor *h = fc_softmax(x16, dim);
    CHECK(h && h->dtype == FC_FLOAT16);
    EXPECT_VALUES(h, want, 1050, 2e-3);
  }
  /* a permuted (non-contiguous) view: dim 1 of the view is dim 2 of x */
  fc_tensor *p = fc_permute(x64, 3, (int[]){0, 2, 1});
  naive_log_softmax(x, 3, 70, 5, want); /* over x's dim 1 = the view's dim 2 */
  fc_tensor *r = fc_log_softmax(p, 2), *back = fc_permute(r, 3, (int[]){0, 2, 1});
  EXPECT_VALUES(fc_contiguous(back), want, 1050, 1e-12);
  fc_release(r), fc_release(back), fc_release(p);
  free(x), free(want);
  fc_release(x64), fc_release(x32), fc_release(x16);
}

/* float32 exp inside the kernels (a vectorised polynomial) against libm
 * over its whole range: softmax of [x, 0] is e^x / (1 + e^x). */
TEST(softmax_float32_accuracy) {
  enum { K = 2000 };
  double *vals = malloc(sizeof(double) * 2 * K), *want = malloc(sizeof(double) * 2 * K);
  for (int i = 0; i < K; i++) {
    double x = -87.0 + 87.0 * i / (K - 1);
    vals[2 * i] = (float)x, vals[2 * i + 1] = 0;
    double e = exp((float)x);
    want[2 * i] = e / (1 + e), want[2 * i + 1] = 1 / (1 + e);
  }
  fc_tensor *t = mk(FC_FLOAT32, 2, (int64_t[]){K, 2}, vals);
  fc_tensor *sm = fc_softmax(t, 1);
  double *got = tensor_values(sm), worst = 0;
  for (int i = 0; i < 2 * K; i++) worst = fmax(worst, fabs(got[i] - want[i]) / want[i]);
  CHECK(worst < 4e-7);
  if (worst >= 4e-7) printf("  worst relative error %.3g\n", worst);
  free(got), free(vals), free(want);
  fc_release(sm), fc_release(t);
}

TEST(softmax_errors) {
  fc_tensor *x = X4x3, *i = MK(FC_INT64, S(2), 1, 2);
  CHECK_ERR(fc_softmax(x, 2), "softmax: dim 2 out of range");
  CHECK_ERR(fc_log_softmax(x, -3), "log_softmax: dim -3 out of range");
  CHECK_ERR(fc_softmax(i, 0), "softmax: needs a floating point tensor, got int64");
  CHECK_ERR(fc_softmax(NULL, 0), "softmax: ");
  fc_release(x), fc_release(i);
}

/* ---- class losses: PyTorch's numbers ----------------------------------------- */

TEST(cross_entropy_matches_pytorch) {
  fc_tensor *x = X4x3, *y = Y4, *w = MK(FC_FLOAT64, S(3), 1.0, 2.0, 0.5);
  fc_tensor *y1 = MK(FC_INT64, S(4), 3, 1, 2, 3); /* the same classes counted from 1 */
  fc_tensor *y32 = MK(FC_INT32, S(4), 2, 0, 1, 2);
  EXPECT0(fc_cross_entropy(x, y, NULL, FC_NO_INDEX, 0, MEAN, 0), FC_FLOAT64, 1e-12, 2.1138569044502384);
  EXPECT0(fc_cross_entropy(x, y1, NULL, FC_NO_INDEX, 0, MEAN, 1), FC_FLOAT64, 1e-12, 2.1138569044502384);
  EXPECT0(fc_cross_entropy(x, y32, NULL, FC_NO_INDEX, 0, MEAN, 0), FC_FLOAT64, 1e-12, 2.1138569044502384);
  EXPECT0(fc_cross_entropy(x, y, w, FC_NO_INDEX, 0, MEAN, 0), FC_FLOAT64, 1e-12, 1.9771435484453392);
  EXPECT0(fc_cross_entropy(x, y, NULL, 2, 0, MEAN, 0), FC_FLOAT64, 1e-12, 2.5822480962127696);
  EXPECT0(fc_cross_entropy(x, y1, NULL, 3, 0, MEAN, 1), FC_FLOAT64, 1e-12, 2.5822480962127696);
  EXPECT0(fc_cross_entropy(x, y, NULL, FC_NO_INDEX, 0.1, MEAN, 0), FC_FLOAT64, 1e-12, 2.072190237783572);
  EXPECT0(fc_cross_entropy(x, y, w, FC_NO_INDEX, 0.2, MEAN, 0), FC_FLOAT64, 1e-12, 2.0332814497946603);
  EXPECT0(fc_cross_entropy(x, y, NULL, FC_NO_INDEX, 0, SUM, 0), FC_FLOAT64, 1e-12, 8.455427617800954);
  EXPECT(fc_cross_entropy(x, y, NULL, FC_NO_INDEX, 0, NONE, 0), FC_FLOAT64, S(4), 1e-12, 1.964368784107945,
         4.065883903757429, 1.0986122886681098, 1.3265626412674705);
  fc_tensor *lp = fc_log_softmax(x, 1);
  EXPECT0(fc_nll_loss(lp, y, NULL, FC_NO_INDEX, MEAN, 0), FC_FLOAT64, 1e-12, 2.1138569044502384);
  /* probability targets */
  fc_tensor *praw = MK(FC_FLOAT64, S(4, 3), 0.3, 0.1, 0.6, 0.5, 0.25, 0.25, 0, 1.0, 0, 0.2, 0.2, 0.6);
  fc_tensor *p = fc_softmax(praw, 1);
  EXPECT0(fc_cross_entropy(x, p, NULL, FC_NO_INDEX, 0, MEAN, 0), FC_FLOAT64, 1e-12, 1.740072237775124);
  /* [C] logits with a 0-dim target: F.cross_entropy(tensor([0.5,-1.,2.]), tensor(2)) */
  fc_tensor *x1 = MK(FC_FLOAT64, S(3), 0.5, -1.0, 2.0), *t0 = fc_scalar(2, FC_INT64, CPU);
  EXPECT0(fc_cross_entropy(x1, t0, NULL, FC_NO_INDEX, 0, MEAN, 0), FC_FLOAT64, 1e-12, 0.24131129665715703);
  EXPECT0(fc_cross_entropy(x1, t0, NULL, FC_NO_INDEX, 0, NONE, 0), FC_FLOAT64, 1e-12, 0.24131129665715703);
  fc_release(x1), fc_release(t0), fc_release(praw), fc_release(p), fc_release(lp), fc_release(y1);
  fc_release(y32), fc_release(w), fc_release(x), fc_release(y);
}

/* x4 = torch.arange(24.).sin().reshape(2,3,2,2), y4 below, w = [1, 2, 0.5] */
static fc_tensor *x4_sin(void) {
  double v[24];
  for (int i = 0; i < 24; i++) v[i] = sin(i);
  return mk(FC_FLOAT64, 4, (int64_t[]){2, 3, 2, 2}, v);
}
#define Y4D MK(FC_INT64, S(2, 2, 2), 0, 1, 2, 1, 1, 1, 0, 2)

TEST(cross_entropy_nchw_matches_pytorch) {
  fc_tensor *x = x4_sin(), *y = Y4D, *w = MK(FC_FLOAT64, S(3), 1.0, 2.0, 0.5);
  EXPECT0(fc_cross_entropy(x, y, NULL, FC_NO_INDEX, 0, MEAN, 0), FC_FLOAT64, 1e-12, 1.6064477918968663);
  /* weight + ignore_index=1 + label_smoothing=0.1 */
  EXPECT0(fc_cross_entropy(x, y, w, 1, 0.1, MEAN, 0), FC_FLOAT64, 1e-12, 1.3775447636436622);
  EXPECT0(fc_cross_entropy(x, y, w, 1, 0.1, SUM, 0), FC_FLOAT64, 1e-12, 4.132634290930986);
  EXPECT(fc_cross_entropy(x, y, w, 1, 0.1, NONE, 0), FC_FLOAT64, S(2, 2, 2), 1e-12, 1.4829132766233246, 0.0,
         1.0015527889350389, 0.0, 0.0, 0.0, 0.5739317482390333, 1.074236477133589);
  EXPECT0(fc_cross_entropy(x, y, NULL, 1, 0.3, MEAN, 0), FC_FLOAT64, 1e-12, 1.4184807209208703);
  /* probability targets: torch.arange(24.).cos().reshape(2,3,2,2).softmax(1), weight, smoothing 0.2 */
  double c[24];
  for (int i = 0; i < 24; i++) c[i] = cos(i);
  fc_tensor *craw = mk(FC_FLOAT64, 4, (int64_t[]){2, 3, 2, 2}, c), *p = fc_softmax(craw, 1);
  EXPECT0(fc_cross_entropy(x, p, w, FC_NO_INDEX, 0.2, MEAN, 0), FC_FLOAT64, 1e-12, 1.8317000679996918);
  EXPECT(fc_cross_entropy(x, p, w, FC_NO_INDEX, 0.2, NONE, 0), FC_FLOAT64, S(2, 2, 2), 1e-12,
         1.6351580610725096, 2.1570311475298296, 2.284141538272061, 1.1392889846720695, 1.4850508927854353,
         1.7374203760014475, 2.4961048239685404, 1.7194047196956406);
  /* nll_loss on log_softmax(x, 1) */
  fc_tensor *lp = fc_log_softmax(x, 1);
  EXPECT0(fc_nll_loss(lp, y, w, 2, MEAN, 0), FC_FLOAT64, 1e-12, 1.5874043759942227);
  EXPECT(fc_nll_loss(lp, y, w, FC_NO_INDEX, NONE, 0), FC_FLOAT64, S(2, 2, 2), 1e-12, 1.4251958174228057,
         4.794243689228843, 0.9420327479749148, 1.1618571901533354, 3.2595682543159157, 4.799243270796892,
         0.43393553802443496, 1.0504646407651825);
  /* the gradient PyTorch gives for weight + ignore_index=1 + smoothing 0.1, mean */
  fc_set_requires_grad(x, 1);
  fc_tensor *loss = fc_cross_entropy(x, y, w, 1, 0.1, MEAN, 0);
  CHECK(fc_backward(loss, NULL, 0) == 0);
  EXPECT(fc_get_grad(x), FC_FLOAT64, S(2, 3, 2, 2), 1e-12, -0.22962142390903612, 0.0, 0.1116710815719006, 0.0,
         0.01600982053106627, 0.0, 0.015178838644878755, 0.0, 0.21361160337796983, 0.0, -0.12684992021677938,
         0.0, 0.0, 0.0, -0.0915266923629658, 0.09209601638114208, 0.0, 0.0, 0.016257913457602333,
         0.04035036541398201, 0.0, 0.0, 0.07526877890536346, -0.13244638179512414);
  fc_release(loss), fc_release(lp), fc_release(craw), fc_release(p);
  fc_release(x), fc_release(y), fc_release(w);
}

/* ---- class losses against the naive loops --------------------------------- */

/* Random [N,C,H,W] logits, float64 and float32, contiguous and channels-last
 * views, every reduction with and without weight / ignore_index / smoothing. */
TEST(cross_entropy_against_naive) {
  fc_manual_seed(5);
  const int64_t N = 3, C = 5, H = 4, W = 30, S = H * W; /* S > 64: several row groups */
  fc_tensor *nhwc = fc_randn(4, (int64_t[]){N, H, W, C}, FC_FLOAT64, CPU);
  fc_tensor *xv = fc_permute(nhwc, 4, (int[]){0, 3, 1, 2}); /* [N,C,H,W] view */
  fc_tensor *xc = fc_contiguous(xv), *x32 = fc_to_dtype(xv, FC_FLOAT32);
  fc_tensor *y = fc_randint(0, C, 3, (int64_t[]){N, H, W}, FC_INT64, CPU);
  fc_tensor *w = MK(FC_FLOAT64, S(5), 0.5, 1.5, 1.0, 2.0, 0.25);
  double *x = tensor_values(xc), *wv = tensor_values(w), *row = malloc(sizeof(double) * (size_t)(N * S));
  int64_t *yv = fc_data_ptr(y);
  yv[0] = 3, yv[1] = 3; /* make sure class 3 (ignored below) occurs */
  struct {
    bool weighted;
    int64_t ignore;
    double eps;
  } cases[] = {{false, FC_NO_INDEX, 0}, {true, FC_NO_INDEX, 0},    {false, 3, 0},
               {true, 3, 0.25},         {false, FC_NO_INDEX, 0.1}, {true, -100, 1.0}};
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    fc_tensor *wt = cases[k].weighted ? w : NULL;
    const double *wd = cases[k].weighted ? wv : NULL;
    for (int red = 0; red < 3; red++) {
      double want = naive_ce(x, N, C, S, yv, wd, cases[k].ignore, cases[k].eps, red, row, true);
      fc_tensor *views[3] = {xv, xc, x32};
      for (int v = 0; v < 3; v++) {
        double tol = v == 2 ? 2e-6 : 1e-12;
        fc_tensor *l = fc_cross_entropy(views[v], y, wt, cases[k].ignore, cases[k].eps, red, 0);
        if (red == NONE) {
          CHECK(l && l->ndim == 3 && l->shape[2] == W);
          EXPECT_VALUES(l, row, N * S, tol);
        } else {
          EXPECT_VALUES(l, &want, 1, tol);
        }
      }
    }
  }
  /* nll_loss on naive log-probabilities */
  double *lp = malloc(sizeof(double) * (size_t)(N * C * S));
  naive_log_softmax(x, N, C, S, lp);
  fc_tensor *lpt = mk(FC_FLOAT64, 4, (int64_t[]){N, C, H, W}, lp);
  for (int red = 0; red < 3; red++) {
    double want = naive_ce(lp, N, C, S, yv, wv, 3, 0, red, row, false);
    fc_tensor *l = fc_nll_loss(lpt, y, w, 3, red, 0);
    if (red == NONE) EXPECT_VALUES(l, row, N * S, 1e-12);
    else EXPECT_VALUES(l, &want, 1, 1e-12);
  }
  /* probability targets (any non-negative values), weighted and smoothed */
  fc_tensor *pt = fc_rand(4, (int64_t[]){N, C, H, W}, FC_FLOAT64, CPU);
  double *p = tensor_values(pt);
  for (int red = 0; red < 3; red++) {
    double want = naive_ce_probs(x, N, C, S, p, wv, 0.3, red, row);
    fc_tensor *l = fc_cross_entropy(xv, pt, w, FC_NO_INDEX, 0.3, red, 0);
    if (red == NONE) EXPECT_VALUES(l, row, N * S, 1e-12);
    else EXPECT_VALUES(l, &want, 1, 1e-12);
  }
  free(x), free(wv), free(row), free(lp), free(p);
  fc_release(nhwc), fc_release(xv), fc_release(xc), fc_release(x32), fc_release(y), fc_release(w);
  fc_release(lpt), fc_release(pt);
}

/* Above PARALLEL_GRAIN (threads on), half inputs, the mean of an all-ignored
 * batch (NaN, as in PyTorch), and results independent of the thread count. */
TEST(cross_entropy_large_and_odd) {
  fc_manual_seed(6);
  const int64_t N = 700, C = 100, S = 1;
  fc_tensor *x64 = fc_randn(2, (int64_t[]){N, C}, FC_FLOAT64, CPU);
  fc_tensor *x32 = fc_to_dtype(x64, FC_FLOAT32), *x16 = fc_to_dtype(x64, FC_BFLOAT16);
  fc_tensor *y = fc_randint(0, C, 1, (int64_t[]){N}, FC_INT64, CPU);
  double *x = tensor_values(x64),
         want = naive_ce(x, N, C, S, fc_data_ptr(y), NULL, FC_NO_INDEX, 0.05, MEAN, NULL, true);
  EXPECT_VALUES(fc_cross_entropy(x32, y, NULL, FC_NO_INDEX, 0.05, MEAN, 0), &want, 1, 1e-6);
  double *xb = tensor_values(x16);
  want = naive_ce(xb, N, C, S, fc_data_ptr(y), NULL, FC_NO_INDEX, 0.05, MEAN, NULL, true);
  fc_tensor *lb = fc_cross_entropy(x16, y, NULL, FC_NO_INDEX, 0.05, MEAN, 0);
  CHECK(lb && lb->dtype == FC_BFLOAT16);
  EXPECT_VALUES(lb, &want, 1, 1e-2);
  int threads = fc_get_num_threads();
  fc_set_num_threads(1);
  fc_tensor *one = fc_cross_entropy(x32, y, NULL, FC_NO_INDEX, 0, SUM, 0);
  fc_tensor *m1 = fc_mse_loss(x32, x16, MEAN);
  fc_set_num_threads(threads > 1 ? threads : 2);
  fc_tensor *many = fc_cross_entropy(x32, y, NULL, FC_NO_INDEX, 0, SUM, 0);
  fc_tensor *m2 = fc_mse_loss(x32, x16, MEAN);
  fc_set_num_threads(threads);
  double a, b;
  fc_item(one, &a), fc_item(many, &b);
  CHECK(a == b);
  fc_item(m1, &a), fc_item(m2, &b);
  CHECK(a == b);
  fc_release(one), fc_release(many), fc_release(m1), fc_release(m2);
  /* every target ignored: mean is 0/0, sum is 0; empty batch likewise */
  fc_tensor *xs = X4x3, *ign = MK(FC_INT64, S(4), 1, 1, 1, 1);
  fc_tensor *l = fc_cross_entropy(xs, ign, NULL, 1, 0, MEAN, 0);
  CHECK(l && isnan(((double *)fc_data_ptr(l))[0]));
  fc_release(l);
  EXPECT0(fc_cross_entropy(xs, ign, NULL, 1, 0, SUM, 0), FC_FLOAT64, 0, 0.0);
  fc_tensor *e = fc_empty(2, (int64_t[]){0, 3}, FC_FLOAT32, CPU),
            *ey = fc_empty(1, (int64_t[]){0}, FC_INT64, CPU);
  EXPECT(fc_cross_entropy(e, ey, NULL, FC_NO_INDEX, 0, NONE, 0), FC_FLOAT32, S(0), 0, 0);
  EXPECT0(fc_cross_entropy(e, ey, NULL, FC_NO_INDEX, 0, SUM, 0), FC_FLOAT32, 0, 0.0);
  free(x), free(xb);
  fc_release(xs), fc_release(ign), fc_release(e), fc_release(ey);
  fc_release(x64), fc_release(x32), fc_release(x16), fc_release(y);
}

TEST(class_loss_errors) {
  fc_tensor *x = X4x3, *y = Y4, *bad = MK(FC_INT64, S(4), 0, 3, 1, 1), *y3 = MK(FC_INT64, S(3), 0, 1, 2);
  CHECK_ERR(fc_cross_entropy(x, bad, NULL, FC_NO_INDEX, 0, MEAN, 0),
            "cross_entropy: target 3 is out of range for 3 classes (expected 0 to 2)");
  CHECK_ERR(fc_cross_entropy(x, bad, NULL, FC_NO_INDEX, 0, MEAN, 1),
            "cross_entropy: target 0 is out of range for 3 classes (expected 1 to 3)");
  CHECK_ERR(fc_nll_loss(x, bad, NULL, 0, MEAN, 0), "nll_loss: target 3 is out of range");
  fc_tensor *neg = MK(FC_INT64, S(4), 0, -100, 1, -1);
  CHECK_ERR(fc_cross_entropy(x, neg, NULL, -100, 0, MEAN, 0), "target -1 is out of range"); /* -100 ignored */
  CHECK_ERR(fc_cross_entropy(x, y3, NULL, FC_NO_INDEX, 0, MEAN, 0),
            "cross_entropy: target of shape [3] does not match input of shape [4,3] (expected [4])");
  fc_tensor *x4 = x4_sin(), *y2 = MK(FC_INT64, S(2, 2), 0, 1, 2, 0);
  CHECK_ERR(fc_cross_entropy(x4, y2, NULL, FC_NO_INDEX, 0, MEAN, 0),
            "target of shape [2,2] does not match input of shape [2,3,2,2] (expected [2,2,2])");
  fc_tensor *fy = MK(FC_FLOAT32, S(4), 2, 0, 1, 2), *fp = MK(FC_FLOAT64, S(4, 2), 0, 0, 0, 0, 0, 0, 0, 0);
  CHECK_ERR(fc_cross_entropy(x, fy, NULL, FC_NO_INDEX, 0, MEAN, 0),
            "cross_entropy: target of shape [4] holds class indices but is float32");
  CHECK_ERR(fc_cross_entropy(x, fp, NULL, FC_NO_INDEX, 0, MEAN, 0),
            "cross_entropy: class-probability target of shape [4,2] does not match input of shape [4,3]");
  CHECK_ERR(fc_nll_loss(x, fy, NULL, FC_NO_INDEX, MEAN, 0),
            "nll_loss: target must hold class indices (int64), got float32");
  fc_tensor *u8 = fc_to_dtype(y, FC_UINT8);
  CHECK_ERR(
      fc_cross_entropy(x, u8, NULL, FC_NO_INDEX, 0, MEAN, 0),
      "cross_entropy: target must hold class indices (int64) or class probabilities (float), got uint8");
  fc_tensor *p = fc_softmax(x, 1);
  CHECK_ERR(fc_cross_entropy(x, p, NULL, 0, 0, MEAN, 0),
            "cross_entropy: ignore_index is not supported with class-probability targets");
  CHECK_ERR(fc_cross_entropy(x, y, NULL, FC_NO_INDEX, 1.5, MEAN, 0),
            "cross_entropy: label_smoothing must be between 0.0 and 1.0, got 1.5");
  CHECK_ERR(fc_cross_entropy(x, y, NULL, FC_NO_INDEX, -0.1, MEAN, 0), "label_smoothing must be between");
  CHECK_ERR(fc_cross_entropy(x, y, NULL, FC_NO_INDEX, NAN, MEAN, 0), "label_smoothing must be between");
  CHECK_ERR(fc_cross_entropy(x, y, NULL, FC_NO_INDEX, 0, 7, 0),
            "cross_entropy: reduction must be FC_REDUCE_NONE (0)");
  CHECK_ERR(fc_nll_loss(x, y, NULL, FC_NO_INDEX, -1, 0), "nll_loss: reduction must be");
  fc_tensor *w2 = MK(FC_FLOAT64, S(2), 1, 1), *wi = MK(FC_INT64, S(3), 1, 1, 1);
  CHECK_ERR(fc_cross_entropy(x, y, w2, FC_NO_INDEX, 0, MEAN, 0),
            "cross_entropy: weight must have one entry per class (3), got shape [2]");
  CHECK_ERR(fc_cross_entropy(x, y, wi, FC_NO_INDEX, 0, MEAN, 0),
            "cross_entropy: weight must be floating point, got int64");
  fc_tensor *xi = MK(FC_INT64, S(4, 3), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
            *s0 = fc_scalar(1, FC_FLOAT32, CPU);
  CHECK_ERR(fc_cross_entropy(xi, y, NULL, FC_NO_INDEX, 0, MEAN, 0),
            "cross_entropy: input must be floating point, got int64");
  CHECK_ERR(fc_cross_entropy(s0, y, NULL, FC_NO_INDEX, 0, MEAN, 0),
            "cross_entropy: input must have a class dim");
  CHECK_ERR(fc_cross_entropy(NULL, y, NULL, FC_NO_INDEX, 0, MEAN, 0), "cross_entropy: ");
  fc_release(x), fc_release(y), fc_release(bad), fc_release(y3), fc_release(neg), fc_release(x4);
  fc_release(y2), fc_release(fy), fc_release(fp), fc_release(u8), fc_release(p), fc_release(w2);
  fc_release(wi), fc_release(xi), fc_release(s0);
}

/* ---- pointwise losses ----------------------------------------------------- */

TEST(pointwise_losses_match_pytorch) {
  fc_tensor *i = MK(FC_FLOAT64, S(4), 0.2, -1.0, 3.0, 0.0), *t = MK(FC_FLOAT64, S(4), 0.0, 1.0, 1.0, 0.5);
  fc_tensor *pw = fc_scalar(2, FC_FLOAT64, CPU), *s = fc_sigmoid(i);
  EXPECT0(fc_binary_cross_entropy_with_logits(i, t, NULL, pw, MEAN), FC_FLOAT64, 1e-12, 1.14038942960136);
  EXPECT0(fc_binary_cross_entropy(s, t, NULL, MEAN), FC_FLOAT64, 1e-12, 0.7132837722583756);
  EXPECT0(fc_smooth_l1_loss(i, t, 0.5, MEAN), FC_FLOAT64, 1e-12, 0.9475);
  EXPECT0(fc_mse_loss(i, t, SUM), FC_FLOAT64, 1e-12, 0.04 + 4 + 4 + 0.25);
  EXPECT(fc_l1_loss(i, t, NONE), FC_FLOAT64, S(4), 1e-12, 0.2, 2, 2, 0.5);
  fc_release(pw), fc_release(s), fc_release(i), fc_release(t);
  /* a [3] target broadcast against [2,3] input, as PyTorch does */
  fc_tensor *a = MK(FC_FLOAT64, S(2, 3), 0.2, -1.0, 3.0, 0.0, 0.7, -0.4),
            *b = MK(FC_FLOAT64, S(3), 0.0, 1.0, 0.5);
  EXPECT0(fc_mse_loss(a, b, MEAN), FC_FLOAT64, 1e-12, 1.8650000000000002);
  EXPECT0(fc_l1_loss(a, b, SUM), FC_FLOAT64, 1e-12, 5.9);
  EXPECT(fc_smooth_l1_loss(a, b, 0.5, NONE), FC_FLOAT64, S(2, 3), 1e-12, 0.04000000000000001, 1.75, 2.25, 0.0,
         0.09000000000000002, 0.65);
  EXPECT0(fc_smooth_l1_loss(a, b, 2.0, MEAN), FC_FLOAT64, 1e-12, 0.45583333333333337);
  EXPECT0(fc_smooth_l1_loss(a, b, 0.0, SUM), FC_FLOAT64, 1e-12, 5.9); /* beta 0 is l1 */
  /* BCE: logs clamped at -100 (inputs 0 and 1), weight [3] broadcast */
  fc_tensor *p = MK(FC_FLOAT64, S(2, 3), 0.1, 0.5, 0.9, 0.3, 0.0, 1.0);
  fc_tensor *q = MK(FC_FLOAT64, S(2, 3), 0.0, 1.0, 1.0, 0.25, 1.0, 0.0),
            *w3 = MK(FC_FLOAT64, S(3), 1.0, 2.0, 0.5);
  EXPECT(fc_binary_cross_entropy(p, q, w3, NONE), FC_FLOAT64, S(2, 3), 1e-12, 0.10536051565782628,
         1.3862943611198906, 0.05268025782891314, 0.5684994090355333, 200.0, 50.0);
  EXPECT0(fc_binary_cross_entropy(p, q, NULL, MEAN), FC_FLOAT64, 1e-12, 33.57872793681852);
  /* BCE with logits: extreme logits stay finite; weight [2,1], pos_weight [3] */
  fc_tensor *xl = MK(FC_FLOAT64, S(2, 3), 0.2, -1.0, 30.0, -50.0, 0.7, -0.4);
  fc_tensor *wl = MK(FC_FLOAT64, S(2, 1), 2.0, 0.5), *pw3 = MK(FC_FLOAT64, S(3), 3.0, 1.0, 0.5);
  EXPECT(fc_binary_cross_entropy_with_logits(xl, q, wl, pw3, NONE), FC_FLOAT64, S(2, 3), 1e-12,
         1.5962777387631837, 2.6265233750364456, 9.348077867343381e-14, 18.75, 0.20159302444272892,
         0.25650762619997625);
  EXPECT0(fc_binary_cross_entropy_with_logits(xl, q, NULL, NULL, MEAN), FC_FLOAT64, 1e-12,
          2.5879336430308864);
  fc_release(a), fc_release(b), fc_release(p), fc_release(q), fc_release(w3), fc_release(xl);
  fc_release(wl), fc_release(pw3);
}

/* float32 (threads on), float16, transposed inputs and integer targets,
 * against a naive double loop. */
TEST(pointwise_losses_against_naive) {
  fc_manual_seed(8);
  const int64_t R = 300, K = 200; /* 60000 elements: above PARALLEL_GRAIN */
  fc_tensor *base = fc_randn(2, (int64_t[]){K, R}, FC_FLOAT32, CPU), *x = fc_transpose(base, 0, 1);
  fc_tensor *t = fc_randn(2, (int64_t[]){R, K}, FC_FLOAT32, CPU);
  double *xv = tensor_values(x), *tv = tensor_values(t), mse = 0, l1 = 0, sl1 = 0, bcel = 0;
  for (int64_t i = 0; i < R * K; i++) {
    double d = xv[i] - tv[i], ad = fabs(d), z = xv[i], y = tv[i] > 0;
    mse += d * d, l1 += ad, sl1 += ad < 0.5 ? 0.5 * d * d / 0.5 : ad - 0.25;
    bcel += fmax(z, 0) - z * y + log1p(exp(-fabs(z)));
  }
  double n = (double)(R * K), want[4] = {mse / n, l1, sl1 / n, bcel / n};
  EXPECT_VALUES(fc_mse_loss(x, t, MEAN), &want[0], 1, 1e-6);
  EXPECT_VALUES(fc_l1_loss(x, t, SUM), &want[1], 1, 1e-6);
  EXPECT_VALUES(fc_smooth_l1_loss(x, t, 0.5, MEAN), &want[2], 1, 1e-6);
  fc_tensor *zero = fc_scalar(0, FC_FLOAT32, CPU), *pos = fc_gt(t, zero), *y = fc_to_dtype(pos, FC_FLOAT32);
  EXPECT_VALUES(fc_binary_cross_entropy_with_logits(x, y, NULL, NULL, MEAN), &want[3], 1, 1e-6);
  fc_tensor *h = fc_to_dtype(x, FC_FLOAT16), *l = fc_mse_loss(h, h, NONE);
  CHECK(l && l->dtype == FC_FLOAT16 && l->ndim == 2);
  fc_release(l);
  /* an integer target promotes to the input's float dtype */
  fc_tensor *fi = MK(FC_FLOAT32, S(3), 1.5, 2, 0), *ti = MK(FC_INT64, S(3), 1, 2, 3);
  EXPECT0(fc_mse_loss(fi, ti, SUM), FC_FLOAT32, 1e-6, 0.25 + 0 + 9);
  fc_tensor *f64 = MK(FC_FLOAT64, S(3), 1, 2, 3);
  EXPECT0(fc_l1_loss(fi, f64, SUM), FC_FLOAT64, 1e-12, 0.5 + 0 + 3);
  free(xv), free(tv);
  fc_release(base), fc_release(x), fc_release(t), fc_release(zero), fc_release(pos), fc_release(y);
  fc_release(h), fc_release(fi), fc_release(ti), fc_release(f64);
}

TEST(pointwise_errors) {
  fc_tensor *a = MK(FC_FLOAT64, S(2, 3), 0.1, 0.2, 0.3, 0.4, 0.5, 0.6), *b = MK(FC_FLOAT64, S(2), 0, 1);
  fc_tensor *ia = MK(FC_INT64, S(2), 1, 2), *ib = MK(FC_INT64, S(2), 1, 2);
  CHECK_ERR(fc_mse_loss(a, b, MEAN), "mse_loss: shapes [2,3] and [2]");
  CHECK_ERR(fc_mse_loss(ia, ib, MEAN), "mse_loss: needs floating point input, got int64 and int64");
  CHECK_ERR(fc_l1_loss(a, a, 3), "l1_loss: reduction must be");
  CHECK_ERR(fc_smooth_l1_loss(a, a, -1, MEAN), "smooth_l1_loss: beta must be non-negative, got -1");
  fc_tensor *row = MK(FC_FLOAT64, S(3), 0, 1, 0),
            *big = MK(FC_FLOAT64, S(2, 3), 0.1, 1.5, 0.3, 0.4, 0.5, 0.6);
  CHECK_ERR(fc_binary_cross_entropy(a, row, NULL, MEAN),
            "binary_cross_entropy: target of shape [3] must match input of shape [2,3]");
  CHECK_ERR(fc_binary_cross_entropy(big, a, NULL, MEAN),
            "binary_cross_entropy: all elements of input should be between 0 and 1, got 1.5");
  fc_tensor *nan = MK(FC_FLOAT32, S(1), NAN), *zero = MK(FC_FLOAT32, S(1), 0);
  CHECK_ERR(fc_binary_cross_entropy(nan, zero, NULL, SUM), "should be between 0 and 1, got nan");
  fc_tensor *w2 = MK(FC_FLOAT64, S(2), 1, 1),
            *w23 = MK(FC_FLOAT64, S(2, 2, 3), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
  CHECK_ERR(fc_binary_cross_entropy(a, a, w2, MEAN),
            "binary_cross_entropy: weight of shape [2] does not broadcast to input of shape [2,3]");
  CHECK_ERR(fc_binary_cross_entropy_with_logits(a, a, NULL, w23, MEAN),
            "binary_cross_entropy_with_logits: pos_weight of shape [2,2,3] does not broadcast to input of "
            "shape [2,3]");
  CHECK_ERR(fc_binary_cross_entropy_with_logits(a, row, NULL, NULL, MEAN),
            "target of shape [3] must match input of shape [2,3]");
  CHECK_ERR(fc_binary_cross_entropy_with_logits(a, a, ia, NULL, MEAN),
            "weight must be floating point, got int64");
  CHECK_ERR(fc_mse_loss(a, NULL, MEAN), "mse_loss: ");
  fc_release(a), fc_release(b), fc_release(ia), fc_release(ib), fc_release(row), fc_release(big);
  fc_release(nan), fc_release(zero), fc_release(w2), fc_release(w23);
}

/* ---- gradients ------------------------------------------------------------ */

typedef struct class_args {
  fc_tensor *target, *weight;
  int64_t ignore, base;
  double eps;
  int red;
  bool nll;
} class_args;

static fc_tensor *class_fn(fc_tensor **in, void *ctx) {
  class_args *a = ctx;
  return a->nll ? fc_nll_loss(in[0], a->target, a->weight, a->ignore, a->red, a->base)
                : fc_cross_entropy(in[0], a->target, a->weight, a->ignore, a->eps, a->red, a->base);
}
/* in[1] is a probability target that also gets a gradient */
static fc_tensor *prob_fn(fc_tensor **in, void *ctx) {
  class_args *a = ctx;
  return fc_cross_entropy(in[0], in[1], a->weight, FC_NO_INDEX, a->eps, a->red, 0);
}
static fc_tensor *softmax_d1(fc_tensor *x) { return fc_softmax(x, 1); }
static fc_tensor *softmax_last(fc_tensor *x) { return fc_softmax(x, -1); }
static fc_tensor *log_softmax_d0(fc_tensor *x) { return fc_log_softmax(x, 0); }
static fc_tensor *log_softmax_d1(fc_tensor *x) { return fc_log_softmax(x, 1); }

TEST(softmax_grads) {
  fc_manual_seed(21);
  fc_tensor *x = fc_randn(3, (int64_t[]){2, 5, 3}, FC_FLOAT64, CPU);
  fc_tensor *base = fc_randn(2, (int64_t[]){4, 3}, FC_FLOAT64, CPU), *tr = fc_transpose(base, 0, 1);
  /* dim 0 of [3, 70]: a full group of 64 rows and a partial one */
  fc_tensor *wide = fc_randn(2, (int64_t[]){3, 70}, FC_FLOAT64, CPU);
  unary_grad_fn fns[4] = {softmax_d1, softmax_last, log_softmax_d0, log_softmax_d1};
  const char *names[4] = {"softmax dim 1", "softmax dim -1", "log_softmax dim 0", "log_softmax dim 1"};
  for (int i = 0; i < 4; i++) {
    GRADCHECK(names[i], apply_one, 1, &x, (void *)fns[i]);
    GRADCHECK(names[i], apply_one, 1, &tr, (void *)fns[i]);
    GRADCHECK(names[i], apply_one, 1, &wide, (void *)fns[i]);
  }
  fc_release(x), fc_release(base), fc_release(tr), fc_release(wide);
}

TEST(class_loss_grads) {
  fc_manual_seed(22);
  fc_tensor *x = fc_randn(4, (int64_t[]){2, 4, 3, 25}, FC_FLOAT64, CPU); /* S = 75: two groups */
  fc_tensor *y = fc_randint(0, 4, 3, (int64_t[]){2, 3, 25}, FC_INT64, CPU);
  fc_tensor *y1 = fc_randint(1, 5, 3, (int64_t[]){2, 3, 25}, FC_INT64, CPU); /* counted from 1 */
  fc_tensor *w = MK(FC_FLOAT64, S(4), 0.5, 2.0, 1.0, 1.5);
  fc_tensor *base = fc_randn(2, (int64_t[]){3, 6}, FC_FLOAT64, CPU), *tr = fc_transpose(base, 0, 1);
  fc_tensor *y6 = MK(FC_INT64, S(6), 0, 2, 1, 1, 2, 0);
  struct {
    const char *name;
    fc_tensor **x;
    class_args a;
  } cases[] = {
      {"ce mean", &x, {y, NULL, FC_NO_INDEX, 0, 0, MEAN, false}},
      {"ce sum weight", &x, {y, w, FC_NO_INDEX, 0, 0, SUM, false}},
      {"ce none", &x, {y, NULL, FC_NO_INDEX, 0, 0, NONE, false}},
      {"ce weight ignore smoothing", &x, {y, w, 2, 0, 0.2, MEAN, false}},
      {"ce base 1 ignore smoothing none", &x, {y1, w, 1, 1, 0.7, NONE, false}},
      {"ce smoothing 1", &x, {y, NULL, FC_NO_INDEX, 0, 1.0, SUM, false}},
      {"ce transposed", &tr, {y6, NULL, 1, 0, 0.1, MEAN, false}},
      {"nll mean weight ignore", &x, {y, w, 3, 0, 0, MEAN, true}},
      {"nll none", &x, {y, NULL, FC_NO_INDEX, 0, 0, NONE, true}},
      {"nll transposed sum", &tr, {y6, NULL, FC_NO_INDEX, 0, 0, SUM, true}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    GRADCHECK(cases[i].name, class_fn, 1, cases[i].x, &cases[i].a);
  /* probability targets: gradients for the logits and the target */
  fc_tensor *p = fc_rand(4, (int64_t[]){2, 4, 3, 25}, FC_FLOAT64, CPU);
  for (int red = 0; red < 3; red++) {
    class_args a = {NULL, red == MEAN ? w : NULL, FC_NO_INDEX, 0, red == SUM ? 0 : 0.3, red, false};
    GRADCHECK("ce probabilities", prob_fn, 2, ((fc_tensor *[]){x, p}), &a);
  }
  fc_tensor *ptr_base = fc_rand(2, (int64_t[]){3, 6}, FC_FLOAT64, CPU), *ptr = fc_transpose(ptr_base, 0, 1);
  class_args a = {NULL, NULL, FC_NO_INDEX, 0, 0.1, NONE, false};
  GRADCHECK("ce probabilities transposed", prob_fn, 2, ((fc_tensor *[]){tr, ptr}), &a);
  fc_release(x), fc_release(y), fc_release(y1), fc_release(w), fc_release(base), fc_release(tr);
  fc_release(y6), fc_release(p), fc_release(ptr_base), fc_release(ptr);
}

typedef struct pw_args {
  int kind, red;
  fc_tensor *w, *pw;
  double beta;
} pw_args;
static fc_tensor *pointwise_fn(fc_tensor **in, void *ctx) {
  pw_args *a = ctx;
  switch (a->kind) {
  case 0:
    return fc_mse_loss(in[0], in[1], a->red);
  case 1:
    return fc_l1_loss(in[0], in[1], a->red);
  case 2:
    return fc_smooth_l1_loss(in[0], in[1], a->beta, a->red);
  case 3:
    return fc_binary_cross_entropy(in[0], in[1], a->w, a->red);
  default:
    return fc_binary_cross_entropy_with_logits(in[0], in[1], a->w, a->pw, a->red);
  }
}

TEST(pointwise_grads) {
  fc_manual_seed(23);
  fc_tensor *x = fc_randn(2, (int64_t[]){4, 3}, FC_FLOAT64, CPU),
            *t = fc_randn(2, (int64_t[]){4, 3}, FC_FLOAT64, CPU);
  fc_tensor *row = fc_randn(1, (int64_t[]){3}, FC_FLOAT64, CPU);
  fc_tensor *base = fc_randn(2, (int64_t[]){3, 4}, FC_FLOAT64, CPU), *tr = fc_transpose(base, 0, 1);
  /* BCE inputs inside (0.05, 0.95) so the finite differences stay smooth */
  fc_tensor *u = fc_rand(2, (int64_t[]){4, 3}, FC_FLOAT64, CPU), *k = fc_scalar(0.9, FC_FLOAT64, CPU);
  fc_tensor *c = fc_scalar(0.05, FC_FLOAT64, CPU), *uk = fc_mul(u, k), *prob = fc_add(uk, c);
  fc_tensor *tgt = fc_rand(2, (int64_t[]){4, 3}, FC_FLOAT64, CPU);
  fc_tensor *w3 = MK(FC_FLOAT64, S(3), 0.5, 2.0, 1.0), *pw = MK(FC_FLOAT64, S(4, 1), 3.0, 0.5, 1.0, 2.0);
  for (int red = 0; red < 3; red++) {
    pw_args a[] = {{0, red, 0, 0, 0}, {1, red, 0, 0, 0}, {2, red, 0, 0, 0.8}, {2, red, 0, 0, 0}};
    for (int i = 0; i < 4; i++) {
      GRADCHECK("mse/l1/smooth_l1", pointwise_fn, 2, ((fc_tensor *[]){x, t}), &a[i]);
      GRADCHECK("broadcast target", pointwise_fn, 2, ((fc_tensor *[]){x, row}), &a[i]);
      GRADCHECK("broadcast input", pointwise_fn, 2, ((fc_tensor *[]){row, tr}), &a[i]);
    }
    pw_args b[] = {
        {3, red, NULL, NULL, 0}, {3, red, w3, NULL, 0}, {4, red, NULL, NULL, 0}, {4, red, w3, pw, 0}};
    for (int i = 0; i < 4; i++) {
      GRADCHECK("bce", pointwise_fn, 2, ((fc_tensor *[]){b[i].kind == 3 ? prob : x, tgt}), &b[i]);
      GRADCHECK("bce transposed target", pointwise_fn, 2, ((fc_tensor *[]){b[i].kind == 3 ? prob : x, tr}),
                &b[i]);
    }
  }
  fc_release(x), fc_release(t), fc_release(row), fc_release(base), fc_release(tr), fc_release(u);
  fc_release(k), fc_release(c), fc_release(uk), fc_release(prob), fc_release(tgt), fc_release(w3),
      fc_release(pw);
}

/* Gradients flow only where they should; graphs are not recorded under
 * no_grad; a target changed in place after the forward fails backward. */
TEST(autograd_bookkeeping) {
  fc_tensor *x = X4x3, *y = Y4;
  fc_set_requires_grad(x, 1);
  fc_tensor *l = fc_cross_entropy(x, y, NULL, FC_NO_INDEX, 0, MEAN, 0);
  CHECK(l && fc_grad_fn_name(l) && !strcmp(fc_grad_fn_name(l), "cross_entropy"));
  int64_t *yv = fc_data_ptr(y);
  yv[0] = 1;
  fc_tensor *one = fc_scalar(1, FC_INT64, CPU);
  fc_add_(y, one); /* bumps the version */
  CHECK_ERR(fc_backward(l, NULL, 0), "backward: a tensor saved by cross_entropy was modified in place");
  fc_release(l), fc_release(one);
  fc_set_grad_enabled(0);
  l = fc_mse_loss(x, x, MEAN);
  CHECK(l && !l->requires_grad && !fc_grad_fn_name(l));
  fc_release(l);
  l = fc_softmax(x, 1);
  CHECK(l && !l->requires_grad);
  fc_release(l);
  fc_set_grad_enabled(1);
  /* a target that does not require grad gets none; the input gets its own */
  fc_tensor *t = MK(FC_FLOAT64, S(4, 3), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
  l = fc_mse_loss(x, t, SUM);
  CHECK(fc_backward(l, NULL, 0) == 0);
  fc_tensor *g = fc_get_grad(t);
  CHECK(g == NULL);
  EXPECT(fc_get_grad(x), FC_FLOAT64, S(4, 3), 1e-12, 2.0, 4.0, 1.0, -2.0, 0.0, 6.0, 0.4, 0.4, 0.4, 4.0, -4.0,
         2.0);
  fc_release(l), fc_release(t), fc_release(x), fc_release(y);
}

int main(void) {
  RUN(softmax_by_hand);
  RUN(softmax_every_dim);
  RUN(softmax_float32_accuracy);
  RUN(softmax_errors);
  RUN(cross_entropy_matches_pytorch);
  RUN(cross_entropy_nchw_matches_pytorch);
  RUN(cross_entropy_against_naive);
  RUN(cross_entropy_large_and_odd);
  RUN(class_loss_errors);
  RUN(pointwise_losses_match_pytorch);
  RUN(pointwise_losses_against_naive);
  RUN(pointwise_errors);
  RUN(softmax_grads);
  RUN(class_loss_grads);
  RUN(pointwise_grads);
  RUN(autograd_bookkeeping);
  return harness_report();
}
