/* test_reduce.c — reductions and ops along a dim against naive float64
 * loops and hand-worked values, strided inputs, errors, and gradchecks. */
#include "harness.h"
#include <stdbool.h>
#include <stdlib.h>

#define SHP(...) (int64_t[]){__VA_ARGS__}
#define DIMS(...) (int[]){__VA_ARGS__}

TEST(sum_mean_prod_by_hand) {
  fc_tensor *t = MK(FC_FLOAT32, S(2, 3), 1, 5, 2, 7, 0, 3);
  EXPECT0(fc_sum(t, 0, NULL, 0), FC_FLOAT32, 0, 18);
  EXPECT(fc_sum(t, 1, DIMS(0), 0), FC_FLOAT32, S(3), 0, 8, 5, 5);
  EXPECT(fc_sum(t, 1, DIMS(-1), 1), FC_FLOAT32, S(2, 1), 0, 8, 10);
  EXPECT(fc_sum(t, 2, DIMS(0, 1), 1), FC_FLOAT32, S(1, 1), 0, 18);
  EXPECT0(fc_mean(t, 0, NULL, 0), FC_FLOAT32, 0, 3);
  EXPECT(fc_mean(t, 1, DIMS(1), 0), FC_FLOAT32, S(2), 1e-7, 8.0 / 3, 10.0 / 3);
  EXPECT(fc_prod(t, 1, DIMS(1), 0), FC_FLOAT32, S(2), 0, 10, 0);
  EXPECT(fc_amax(t, 1, DIMS(0), 0), FC_FLOAT32, S(3), 0, 7, 5, 3);
  EXPECT(fc_amin(t, 1, DIMS(1), 0), FC_FLOAT32, S(2), 0, 1, 0);
  fc_tensor *tr = fc_transpose(t, 0, 1); /* [[1,7],[5,0],[2,3]] */
  EXPECT(fc_sum(tr, 1, DIMS(1), 0), FC_FLOAT32, S(3), 0, 8, 5, 5);
  EXPECT(fc_sum(tr, 1, DIMS(0), 0), FC_FLOAT32, S(2), 0, 8, 10);
  fc_release(tr);
  fc_release(t);
}

TEST(integer_and_bool_reductions) {
  fc_tensor *i = MK(FC_INT32, S(4), 3, -1, 4, 2);
  EXPECT0(fc_sum(i, 0, NULL, 0), FC_INT64, 0, 8);
  EXPECT0(fc_prod(i, 0, NULL, 0), FC_INT64, 0, -24);
  EXPECT0(fc_amax(i, 0, NULL, 0), FC_INT32, 0, 4);
  CHECK_ERR(fc_mean(i, 0, NULL, 0), "mean: needs a floating point tensor, got int32");
  fc_tensor *big = MK(FC_INT64, S(2), 9007199254740993.0, 1); /* 2^53 + 1 is not a double */
  int64_t *bv = fc_data_ptr(big);
  bv[0] = ((int64_t)1 << 53) + 1;
  fc_tensor *s = fc_sum(big, 0, NULL, 0);
  CHECK(s && *(int64_t *)fc_data_ptr(s) == ((int64_t)1 << 53) + 2);
  fc_release(s);
  fc_tensor *b = MK(FC_BOOL, S(2, 2), 1, 0, 1, 1);
  EXPECT(fc_all(b, 1, DIMS(1), 0), FC_BOOL, S(2), 0, 0, 1);
  EXPECT(fc_any(b, 1, DIMS(0), 0), FC_BOOL, S(2), 0, 1, 1);
  EXPECT0(fc_sum(b, 0, NULL, 0), FC_INT64, 0, 3);
  fc_release(b), fc_release(big), fc_release(i);
}

TEST(empty_and_errors) {
  fc_tensor *e = fc_empty(2, SHP(0, 3), FC_FLOAT32, CPU);
  EXPECT(fc_sum(e, 1, DIMS(0), 0), FC_FLOAT32, S(3), 0, 0, 0, 0);
  EXPECT(fc_prod(e, 1, DIMS(0), 0), FC_FLOAT32, S(3), 0, 1, 1, 1);
  EXPECT(fc_mean(e, 1, DIMS(0), 0), FC_FLOAT32, S(3), 0, NAN, NAN, NAN);
  CHECK_ERR(fc_amax(e, 1, DIMS(0), 0), "amax: cannot reduce over an empty dim of a tensor of shape [0,3]");
  CHECK_ERR(fc_argmax(e, 0, 0, 0), "argmax: cannot reduce over an empty dim");
  fc_tensor *t = fc_ones(2, SHP(2, 3), FC_FLOAT32, CPU);
  CHECK_ERR(fc_sum(t, 1, DIMS(2), 0), "sum: dim 2 out of range for a 2-dim tensor");
  CHECK_ERR(fc_sum(t, 2, DIMS(1, -1), 0), "dim -1 appears more than once");
  CHECK_ERR(fc_topk(t, 4, 1, 1, 0, NULL), "topk: k = 4 out of range for a dim of size 3");
  CHECK_ERR(fc_max_dim(t, 5, 0, 0, NULL), "max: dim 5 out of range");
  fc_release(t), fc_release(e);
}

TEST(nan_propagation) {
  fc_tensor *t = MK(FC_FLOAT32, S(2, 3), 1, NAN, 3, 4, 5, 6);
  EXPECT(fc_amax(t, 1, DIMS(1), 0), FC_FLOAT32, S(2), 0, NAN, 6);
  EXPECT(fc_argmax(t, 1, 0, 0), FC_INT64, S(2), 0, 1, 2);
  EXPECT(fc_sum(t, 1, DIMS(1), 0), FC_FLOAT32, S(2), 0, NAN, 15);
  fc_release(t);
}

/* Every dim subset of a random [3,4,5] tensor, contiguous and permuted,
 * against a naive loop — this runs the row, column and strided paths. */
TEST(all_dim_subsets_match_naive) {
  fc_manual_seed(3);
  fc_tensor *base = fc_randn(3, SHP(5, 3, 4), FC_FLOAT32, CPU);
  fc_tensor *views[2];
  views[0] = fc_permute(base, 3, DIMS(1, 2, 0));
  views[1] = fc_contiguous(views[0]);
  for (int v = 0; v < 2; v++) {
    fc_tensor *t = views[v]; /* [3,4,5] */
    double x[60];
    fc_to_doubles(t, x);
    for (int mask = 1; mask < 8; mask++) {
      int dims[3], nd = 0;
      for (int d = 0; d < 3; d++)
        if (mask & (1 << d)) dims[nd++] = d;
      double want[60] = {0}, want_max[60];
      for (int k = 0; k < 60; k++) want_max[k] = -INFINITY;
      for (int a = 0; a < 3; a++)
        for (int b = 0; b < 4; b++)
          for (int c = 0; c < 5; c++) {
            int oa = mask & 1 ? 0 : a, ob = mask & 2 ? 0 : b, oc = mask & 4 ? 0 : c;
            int o = (oa * 4 + ob) * 5 + oc;
            double xv = x[(a * 4 + b) * 5 + c];
            want[o] += xv;
            if (xv > want_max[o]) want_max[o] = xv;
          }
      fc_tensor *s = fc_sum(t, nd, dims, 1), *m = fc_amax(t, nd, dims, 1);
      double got[60], gotm[60];
      fc_to_doubles(s, got);
      fc_to_doubles(m, gotm);
      for (int o = 0, a = 0; a < (mask & 1 ? 1 : 3); a++)
        for (int b = 0; b < (mask & 2 ? 1 : 4); b++)
          for (int c = 0; c < (mask & 4 ? 1 : 5); c++, o++) {
            CHECK_NEAR(got[o], want[(a * 4 + b) * 5 + c], 1e-5);
            CHECK_NEAR(gotm[o], want_max[(a * 4 + b) * 5 + c], 0);
          }
      fc_release(s), fc_release(m);
    }
  }
  fc_release(views[0]), fc_release(views[1]), fc_release(base);
}

TEST(large_sums_are_accurate) {
  int64_t n = 1 << 22;
  fc_tensor *t = fc_full(1, &n, 0.1, FC_FLOAT32, CPU);
  double want = (double)n * (double)0.1f;
  EXPECT0(fc_sum(t, 0, NULL, 0), FC_FLOAT32, 1e-6, want);
  fc_tensor *m = fc_view(t, 2, SHP(1024, 4096));
  fc_tensor *cols = fc_sum(m, 1, DIMS(0), 0), *rows = fc_sum(m, 1, DIMS(1), 0);
  double c0, r0;
  fc_get(cols, SHP(17), &c0);
  fc_get(rows, SHP(5), &r0);
  CHECK_NEAR(c0, 1024 * (double)0.1f, 1e-6);
  CHECK_NEAR(r0, 4096 * (double)0.1f, 1e-6);
  fc_release(cols), fc_release(rows), fc_release(m), fc_release(t);
}

TEST(var_std_norm_logsumexp) {
  fc_tensor *t = MK(FC_FLOAT64, S(2, 3), 1, 5, 2, 7, 0, 3);
  EXPECT0(fc_var(t, 0, NULL, 1, 0), FC_FLOAT64, 1e-12, 6.8);
  EXPECT0(fc_var(t, 0, NULL, 0, 0), FC_FLOAT64, 1e-12, 34.0 / 6);
  EXPECT(fc_std(t, 1, DIMS(1), 1, 0), FC_FLOAT64, S(2), 1e-12, sqrt(13.0 / 3), sqrt(37.0 / 3));
  EXPECT0(fc_norm(t, 2, 0, NULL, 0), FC_FLOAT64, 1e-12, sqrt(88));
  EXPECT0(fc_norm(t, 1, 0, NULL, 0), FC_FLOAT64, 1e-12, 18);
  EXPECT0(fc_norm(t, INFINITY, 0, NULL, 0), FC_FLOAT64, 0, 7);
  EXPECT0(fc_norm(t, 0, 0, NULL, 0), FC_FLOAT64, 0, 5);
  EXPECT0(fc_norm(t, 3, 0, NULL, 0), FC_FLOAT64, 1e-12, cbrt(1 + 125 + 8 + 343 + 27));
  EXPECT(fc_logsumexp(t, 1, DIMS(1), 0), FC_FLOAT64, S(2), 1e-12, log(exp(1) + exp(5) + exp(2)),
         log(exp(7) + exp(0) + exp(3)));
  fc_tensor *big = MK(FC_FLOAT32, S(2), 1000, 1000), *neg = MK(FC_FLOAT32, S(2), -INFINITY, -INFINITY);
  EXPECT0(fc_logsumexp(big, 0, NULL, 0), FC_FLOAT32, 1e-6, 1000 + log(2));
  EXPECT0(fc_logsumexp(neg, 0, NULL, 0), FC_FLOAT32, 0, -INFINITY);
  fc_release(big), fc_release(neg), fc_release(t);
}

TEST(max_min_arg) {
  fc_tensor *t = MK(FC_FLOAT32, S(2, 3), 1, 5, 5, 7, 0, 3), *idx = NULL;
  EXPECT(fc_max_dim(t, 1, 0, 0, &idx), FC_FLOAT32, S(2), 0, 5, 7);
  EXPECT(idx, FC_INT64, S(2), 0, 1, 0); /* ties: the first */
  EXPECT(fc_min_dim(t, 0, 1, 1, &idx), FC_FLOAT32, S(1, 3), 0, 1, 0, 3);
  EXPECT(idx, FC_INT64, S(1, 3), 0, 1, 2, 2); /* base 1 */
  EXPECT0(fc_argmax(t, FC_ALL_DIMS, 0, 0), FC_INT64, 0, 3);
  EXPECT(fc_argmin(t, FC_ALL_DIMS, 1, 1), FC_INT64, S(1, 1), 0, 5);
  EXPECT(fc_argmax(t, -1, 0, 0), FC_INT64, S(2), 0, 1, 0);
  fc_tensor *i = MK(FC_INT64, S(3), 4, 9, -2);
  EXPECT0(fc_argmin(i, 0, 0, 0), FC_INT64, 0, 2);
  fc_release(i), fc_release(t);
}

TEST(cumulative) {
  fc_tensor *t = MK(FC_FLOAT32, S(2, 3), 1, 2, 3, 4, 5, 6);
  EXPECT(fc_cumsum(t, 1), FC_FLOAT32, S(2, 3), 0, 1, 3, 6, 4, 9, 15);
  EXPECT(fc_cumsum(t, 0), FC_FLOAT32, S(2, 3), 0, 1, 2, 3, 5, 7, 9);
  EXPECT(fc_cumprod(t, -1), FC_FLOAT32, S(2, 3), 0, 1, 2, 6, 4, 20, 120);
  fc_tensor *b = MK(FC_BOOL, S(3), 1, 1, 0);
  EXPECT(fc_cumsum(b, 0), FC_INT64, S(3), 0, 1, 2, 2);
  fc_release(b), fc_release(t);
}

TEST(sort_and_topk) {
  fc_tensor *t = MK(FC_FLOAT32, S(2, 4), 3, 1, NAN, 1, -1, 8, 2, 8), *idx = NULL;
  EXPECT(fc_sort(t, 1, 0, 0, &idx), FC_FLOAT32, S(2, 4), 0, 1, 1, 3, NAN, -1, 2, 8, 8);
  EXPECT(idx, FC_INT64, S(2, 4), 0, 1, 3, 0, 2, 0, 2, 1, 3); /* stable */
  EXPECT(fc_sort(t, 1, 1, 1, &idx), FC_FLOAT32, S(2, 4), 0, NAN, 3, 1, 1, 8, 8, 2, -1);
  EXPECT(idx, FC_INT64, S(2, 4), 0, 3, 1, 2, 4, 2, 4, 3, 1);
  EXPECT(fc_topk(t, 2, 1, 1, 0, &idx), FC_FLOAT32, S(2, 2), 0, NAN, 3, 8, 8);
  fc_release(idx);
  EXPECT(fc_topk(t, 1, 1, 0, 0, &idx), FC_FLOAT32, S(2, 1), 0, 1, -1);
  EXPECT(idx, FC_INT64, S(2, 1), 0, 1, 0);
  fc_tensor *tr = fc_transpose(t, 0, 1);
  EXPECT(fc_sort(tr, 0, 0, 0, NULL), FC_FLOAT32, S(4, 2), 0, 1, -1, 1, 2, 3, 8, NAN, 8);
  fc_release(tr), fc_release(t);
}

/* ---- gradients (float64 finite differences) ---------------------------- */

static double weighted(fc_tensor *out, const double *g) {
  double *v = malloc(sizeof(double) * (size_t)(out->numel + 1)), s = 0;
  fc_to_doubles(out, v);
  for (int64_t i = 0; i < out->numel; i++) s += v[i] * g[i];
  free(v);
  return s;
}

typedef fc_tensor *(*fn1)(fc_tensor *x);

static void gradcheck1(const char *name, fn1 f, fc_tensor *x) {
  fc_set_requires_grad(x, 1);
  fc_tensor *out = f(x);
  if (!out) {
    harness_fail(__FILE__, __LINE__, "%s: %s", name, fc_last_error());
    return;
  }
  fc_tensor *G = fc_randn(out->ndim, out->shape, FC_FLOAT64, CPU);
  double *g = malloc(sizeof(double) * (size_t)(out->numel + 1));
  fc_to_doubles(G, g);
  if (fc_backward(out, G, 0) < 0) harness_fail(__FILE__, __LINE__, "%s backward: %s", name, fc_last_error());
  fc_tensor *grad = fc_get_grad(x);
  double *an = malloc(sizeof(double) * (size_t)(x->numel + 1));
  if (grad) fc_to_doubles(grad, an);
  double *xd = fc_data_ptr(x);
  fc_set_grad_enabled(0);
  for (int64_t k = 0; k < x->numel; k++) {
    double x0 = xd[k];
    xd[k] = x0 + 1e-6;
    fc_tensor *u = f(x);
    xd[k] = x0 - 1e-6;
    fc_tensor *d = f(x);
    xd[k] = x0;
    double num = (weighted(u, g) - weighted(d, g)) / 2e-6;
    fc_release(u), fc_release(d);
    if (fabs(num - (grad ? an[k] : 0)) > 1e-5 * (1 + fabs(num))) {
      harness_fail(__FILE__, __LINE__, "%s [%lld]: backward %.9g numeric %.9g", name, (long long)k,
                   grad ? an[k] : 0, num);
      break;
    }
  }
  fc_set_grad_enabled(1);
  fc_set_grad(x, NULL);
  free(g), free(an);
  fc_release(grad), fc_release(G), fc_release(out);
}

static fc_tensor *f_sum_all(fc_tensor *x) { return fc_sum(x, 0, NULL, 0); }
static fc_tensor *f_sum_01(fc_tensor *x) { return fc_sum(x, 2, DIMS(0, 2), 0); }
static fc_tensor *f_mean_1k(fc_tensor *x) { return fc_mean(x, 1, DIMS(1), 1); }
static fc_tensor *f_amax(fc_tensor *x) { return fc_amax(x, 1, DIMS(-1), 0); }
static fc_tensor *f_var(fc_tensor *x) { return fc_var(x, 1, DIMS(1), 1, 0); }
static fc_tensor *f_std(fc_tensor *x) { return fc_std(x, 2, DIMS(0, 1), 0, 1); }
static fc_tensor *f_norm(fc_tensor *x) { return fc_norm(x, 2, 1, DIMS(2), 0); }
static fc_tensor *f_lse(fc_tensor *x) { return fc_logsumexp(x, 1, DIMS(1), 0); }
static fc_tensor *f_max(fc_tensor *x) { return fc_max_dim(x, 1, 0, 0, NULL); }
static fc_tensor *f_min_k(fc_tensor *x) { return fc_min_dim(x, 0, 1, 0, NULL); }
static fc_tensor *f_cumsum(fc_tensor *x) { return fc_cumsum(x, 1); }
static fc_tensor *f_sort(fc_tensor *x) { return fc_sort(x, -1, 1, 0, NULL); }
static fc_tensor *f_topk(fc_tensor *x) { return fc_topk(x, 2, 1, 0, 0, NULL); }

TEST(gradients) {
  fc_manual_seed(21);
  struct { const char *name; fn1 f; } cases[] = {
      {"sum", f_sum_all}, {"sum dims", f_sum_01}, {"mean", f_mean_1k}, {"amax", f_amax},
      {"var", f_var},     {"std", f_std},         {"norm", f_norm},    {"logsumexp", f_lse},
      {"max", f_max},     {"min", f_min_k},       {"cumsum", f_cumsum}, {"sort", f_sort},
      {"topk", f_topk}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    fc_tensor *x = fc_randn(3, SHP(3, 4, 2), FC_FLOAT64, CPU);
    gradcheck1(cases[i].name, cases[i].f, x);
    fc_release(x);
  }
}

int main(void) {
  RUN(sum_mean_prod_by_hand);
  RUN(integer_and_bool_reductions);
  RUN(empty_and_errors);
  RUN(nan_propagation);
  RUN(all_dim_subsets_match_naive);
  RUN(large_sums_are_accurate);
  RUN(var_std_norm_logsumexp);
  RUN(max_min_arg);
  RUN(cumulative);
  RUN(sort_and_topk);
  RUN(gradients);
  return harness_report();
}
