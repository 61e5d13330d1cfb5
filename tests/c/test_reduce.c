/* test_reduce.c — reductions and ops along a dim against naive float64
 * loops and hand-worked values, strided inputs, errors, and gradchecks. */
#include "harness.h"
#include <math.h>
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

/* ---- every reduction against naive float64 loops ------------------------
 * A [3,4,5] tensor in four layouts (contiguous, permuted, strided slice,
 * expanded), every dim subset, keepdim on and off. */

enum { N_SUM, N_MEAN, N_PROD, N_AMAX, N_AMIN, N_ALL, N_ANY, N_NORM1, N_NORM2, N_NORM3, N_NORMINF,
       N_NORMNINF, N_NORM0, N_VAR0, N_VAR1, N_STD1, N_LSE, N_OPS };
static const char *const op_names[N_OPS] = {"sum", "mean", "prod", "amax", "amin", "all", "any",
  "norm1", "norm2", "norm3", "norm_inf", "norm_-inf", "norm0", "var0", "var1", "std1", "logsumexp"};

/* x is [3,4,5] row-major; out gets the reduced values in output order. */
static int naive(int op, const double *x, int mask, double *out) {
  int n[3] = {3, 4, 5}, on[3];
  for (int d = 0; d < 3; d++) on[d] = mask & (1 << d) ? 1 : n[d];
  int nout = on[0] * on[1] * on[2];
  for (int o = 0; o < nout; o++) {
    int oc[3] = {o / (on[1] * on[2]), o / on[2] % on[1], o % on[2]};
    double v[60];
    int m = 0;
    for (int a = 0; a < 3; a++)
      for (int b = 0; b < 4; b++)
        for (int c = 0; c < 5; c++) {
          int ic[3] = {a, b, c}, match = 1;
          for (int d = 0; d < 3; d++)
            if (!(mask & (1 << d)) && ic[d] != oc[d]) match = 0;
          if (match) v[m++] = x[(a * 4 + b) * 5 + c];
        }
    double r = 0, mean = 0;
    for (int i = 0; i < m; i++) mean += v[i] / m;
    switch (op) {
    case N_SUM: for (int i = 0; i < m; i++) r += v[i]; break;
    case N_MEAN: r = mean; break;
    case N_PROD: r = 1; for (int i = 0; i < m; i++) r *= v[i]; break;
    case N_AMAX: r = -INFINITY; for (int i = 0; i < m; i++) r = fmax(r, v[i]); break;
    case N_AMIN: r = INFINITY; for (int i = 0; i < m; i++) r = fmin(r, v[i]); break;
    case N_ALL: r = 1; for (int i = 0; i < m; i++) r = r && v[i] != 0; break;
    case N_ANY: for (int i = 0; i < m; i++) r = r || v[i] != 0; break;
    case N_NORM1: for (int i = 0; i < m; i++) r += fabs(v[i]); break;
    case N_NORM2: for (int i = 0; i < m; i++) r += v[i] * v[i]; r = sqrt(r); break;
    case N_NORM3: for (int i = 0; i < m; i++) r += pow(fabs(v[i]), 3); r = cbrt(r); break;
    case N_NORMINF: for (int i = 0; i < m; i++) r = fmax(r, fabs(v[i])); break;
    case N_NORMNINF: r = INFINITY; for (int i = 0; i < m; i++) r = fmin(r, fabs(v[i])); break;
    case N_NORM0: for (int i = 0; i < m; i++) r += v[i] != 0; break;
    case N_VAR0: case N_VAR1: case N_STD1:
      for (int i = 0; i < m; i++) r += (v[i] - mean) * (v[i] - mean);
      r /= op == N_VAR0 ? m : m - 1;
      if (op == N_STD1) r = sqrt(r);
      break;
    case N_LSE: {
      double mx = -INFINITY;
      for (int i = 0; i < m; i++) mx = fmax(mx, v[i]);
      for (int i = 0; i < m; i++) r += exp(v[i] - mx);
      r = log(r) + mx;
      break;
    }
    }
    out[o] = r;
  }
  return nout;
}

static fc_tensor *run_op(int op, fc_tensor *t, int nd, const int *dims, int keep) {
  switch (op) {
  case N_SUM: return fc_sum(t, nd, dims, keep);
  case N_MEAN: return fc_mean(t, nd, dims, keep);
  case N_PROD: return fc_prod(t, nd, dims, keep);
  case N_AMAX: return fc_amax(t, nd, dims, keep);
  case N_AMIN: return fc_amin(t, nd, dims, keep);
  case N_ALL: return fc_all(t, nd, dims, keep);
  case N_ANY: return fc_any(t, nd, dims, keep);
  case N_NORM1: return fc_norm(t, 1, nd, dims, keep);
  case N_NORM2: return fc_norm(t, 2, nd, dims, keep);
  case N_NORM3: return fc_norm(t, 3, nd, dims, keep);
  case N_NORMINF: return fc_norm(t, INFINITY, nd, dims, keep);
  case N_NORMNINF: return fc_norm(t, -INFINITY, nd, dims, keep);
  case N_NORM0: return fc_norm(t, 0, nd, dims, keep);
  case N_VAR0: return fc_var(t, nd, dims, 0, keep);
  case N_VAR1: return fc_var(t, nd, dims, 1, keep);
  case N_STD1: return fc_std(t, nd, dims, 1, keep);
  default: return fc_logsumexp(t, nd, dims, keep);
  }
}

static int expected_dtype(int op, int dtype) {
  if (op == N_ALL || op == N_ANY) return FC_BOOL;
  if ((op == N_SUM || op == N_PROD) && !fc_dtype_is_float(dtype)) return FC_INT64;
  return dtype;
}

/* The four [3,4,5] layouts of one set of values x (float64 in, dtype out). */
static void layouts(const double *x, int dtype, fc_tensor **v) {
  fc_tensor *c = mk(dtype, 3, SHP(3, 4, 5), x);
  v[0] = c;
  /* permuted: a [5,3,4] tensor whose permute(1,2,0) is x */
  double px[60];
  for (int a = 0; a < 3; a++)
    for (int b = 0; b < 4; b++)
      for (int k = 0; k < 5; k++) px[(k * 3 + a) * 4 + b] = x[(a * 4 + b) * 5 + k];
  fc_tensor *pb = mk(dtype, 3, SHP(5, 3, 4), px);
  v[1] = fc_permute(pb, 3, DIMS(1, 2, 0));
  fc_release(pb);
  /* sliced: every other row of dim 0 and element of dim 2 of a [6,4,10] tensor */
  double sx[240] = {0};
  for (int a = 0; a < 3; a++)
    for (int b = 0; b < 4; b++)
      for (int k = 0; k < 5; k++) sx[(2 * a * 4 + b) * 10 + 2 * k + 1] = x[(a * 4 + b) * 5 + k];
  fc_tensor *sb = mk(dtype, 3, SHP(6, 4, 10), sx), *s1 = fc_slice(sb, 0, 0, 6, 2);
  v[2] = fc_slice(s1, 2, 1, 10, 2);
  fc_release(sb), fc_release(s1);
  /* expanded: x's row b = 0 repeated along dim 1 (stride 0) */
  double ex[15];
  for (int a = 0; a < 3; a++)
    for (int k = 0; k < 5; k++) ex[a * 5 + k] = x[(a * 4) * 5 + k];
  fc_tensor *eb = mk(dtype, 3, SHP(3, 1, 5), ex);
  v[3] = fc_expand(eb, 3, SHP(3, 4, 5));
  fc_release(eb);
}

static void check_all_ops(int dtype, double tol, const int *ops, int nops, bool nonneg_ints) {
  fc_manual_seed(11);
  double x[60];
  fc_tensor *r = fc_randn(1, SHP(60), FC_FLOAT64, CPU);
  fc_to_doubles(r, x);
  fc_release(r);
  for (int i = 0; i < 60; i++) {
    if (!fc_dtype_is_float(dtype)) x[i] = floor(x[i] * 3) + (nonneg_ints ? 6 : 0);
    if (dtype == FC_BOOL) x[i] = x[i] > 5;
    if (i % 7 == 3) x[i] = 0; /* zeros for all/any/norm0 */
    if (fc_dtype_is_float(dtype) && i % 2) x[i] = 1 + x[i] / 8; /* prods stay moderate */
  }
  fc_tensor *v[4];
  layouts(x, dtype, v);
  for (int l = 0; l < 4; l++) {
    double xl[60];
    fc_to_doubles(v[l], xl); /* the values in this layout (the expanded one repeats) */
    for (int mask = 0; mask < 8; mask++)
      for (int keep = 0; keep < 2; keep++)
        for (int k = 0; k < nops; k++) {
          int op = ops[k], dims[3], nd = 0;
          for (int d = 0; d < 3; d++) /* dims given negative on odd masks */
            if (mask & (1 << d)) dims[nd++] = mask % 2 ? d - 3 : d;
          double want[60], got[60];
          int nout = naive(op, xl, nd ? mask : 7, want);
          fc_tensor *out = run_op(op, v[l], nd, dims, keep);
          if (!out) {
            harness_fail(__FILE__, __LINE__, "%s %s layout %d mask %d: %s", op_names[op],
                         fc_dtype_name(dtype), l, mask, fc_last_error());
            continue;
          }
          int m = nd ? mask : 7, shape_ok = out->numel == nout && out->dtype == expected_dtype(op, dtype);
          shape_ok = shape_ok && out->ndim == (keep ? 3 : 3 - __builtin_popcount(m));
          for (int d = 0, od = 0; shape_ok && d < 3; d++) {
            int64_t want_size = m & (1 << d) ? 1 : v[l]->shape[d];
            if (keep || !(m & (1 << d))) shape_ok = out->shape[od++] == want_size;
          }
          if (!shape_ok) {
            harness_fail(__FILE__, __LINE__, "%s %s layout %d mask %d keep %d: shape %s dtype %s",
                         op_names[op], fc_dtype_name(dtype), l, mask, keep, "wrong",
                         fc_dtype_name(out->dtype));
          } else {
            fc_to_doubles(out, got);
            for (int o = 0; o < nout; o++) {
              double g = got[o], w = want[o];
              if (!(fabs(g - w) <= tol * (1 + fabs(w))) && !(isnan(g) && isnan(w)) && g != w) {
                harness_fail(__FILE__, __LINE__, "%s %s layout %d mask %d keep %d [%d]: %.9g, expected %.9g",
                             op_names[op], fc_dtype_name(dtype), l, mask, keep, o, g, w);
                break;
              }
            }
          }
          fc_release(out);
        }
  }
  for (int l = 0; l < 4; l++) fc_release(v[l]);
}

static const int float_ops[] = {N_SUM, N_MEAN, N_PROD, N_AMAX, N_AMIN, N_ALL, N_ANY, N_NORM1, N_NORM2,
                                N_NORM3, N_NORMINF, N_NORMNINF, N_NORM0, N_VAR0, N_VAR1, N_STD1, N_LSE};
static const int int_ops[] = {N_SUM, N_PROD, N_AMAX, N_AMIN, N_ALL, N_ANY};

TEST(every_op_layout_and_dims_float64) { check_all_ops(FC_FLOAT64, 1e-12, float_ops, N_OPS, false); }
TEST(every_op_layout_and_dims_float32) { check_all_ops(FC_FLOAT32, 2e-6, float_ops, N_OPS, false); }
TEST(every_op_layout_and_dims_integers) {
  check_all_ops(FC_INT64, 0, int_ops, 6, false);
  check_all_ops(FC_INT32, 0, int_ops, 6, false);
  check_all_ops(FC_UINT8, 0, int_ops, 6, true);
  check_all_ops(FC_BOOL, 0, int_ops, 6, true);
}

/* float16/bfloat16: computed in float32 (or wider) and returned in their dtype. */
TEST(half_types_compute_wide_return_own_dtype) {
  int64_t n = 100000;
  fc_tensor *ones = fc_ones(1, &n, FC_FLOAT16, CPU); /* a float16 sum of these would overflow */
  EXPECT0(fc_mean(ones, 0, NULL, 0), FC_FLOAT16, 0, 1);
  EXPECT0(fc_sum(ones, 0, NULL, 0), FC_FLOAT16, 0, INFINITY); /* 100000 > float16's max */
  EXPECT0(fc_var(ones, 0, NULL, 1, 0), FC_FLOAT16, 0, 0);
  fc_release(ones);
  fc_tensor *h = MK(FC_BFLOAT16, S(2, 3), 1, -2, 3, 0.5, 4, -8);
  EXPECT(fc_sum(h, 1, DIMS(1), 0), FC_BFLOAT16, S(2), 0, 2, -3.5);
  EXPECT(fc_amax(h, 1, DIMS(0), 0), FC_BFLOAT16, S(3), 0, 1, 4, 3);
  EXPECT(fc_norm(h, 1, 1, DIMS(1), 0), FC_BFLOAT16, S(2), 0, 6, 12.5);
  EXPECT0(fc_logsumexp(h, 0, NULL, 0), FC_BFLOAT16, 1e-2, 4.3490);
  fc_tensor *idx = NULL;
  EXPECT(fc_max_dim(h, 1, 0, 0, &idx), FC_BFLOAT16, S(2), 0, 3, 4);
  EXPECT(idx, FC_INT64, S(2), 0, 2, 1);
  EXPECT(fc_sort(h, 1, 0, 0, NULL), FC_BFLOAT16, S(2, 3), 0, -2, 1, 3, -8, 0.5, 4);
  EXPECT(fc_cumsum(h, 1), FC_BFLOAT16, S(2, 3), 0, 1, -1, 2, 0.5, 4.5, -3.5);
  fc_release(h);
}

TEST(dtype_results) {
  fc_tensor *u = MK(FC_UINT8, S(3), 200, 100, 250);
  EXPECT0(fc_sum(u, 0, NULL, 0), FC_INT64, 0, 550); /* no uint8 wrap-around */
  EXPECT0(fc_prod(u, 0, NULL, 0), FC_INT64, 0, 5000000);
  EXPECT0(fc_amax(u, 0, NULL, 0), FC_UINT8, 0, 250);
  EXPECT(fc_cumsum(u, 0), FC_INT64, S(3), 0, 200, 300, 550);
  fc_tensor *f = MK(FC_FLOAT32, S(3), 0.5, 0, NAN);
  EXPECT0(fc_all(f, 0, NULL, 0), FC_BOOL, 0, 0);
  EXPECT0(fc_any(f, 0, NULL, 0), FC_BOOL, 0, 1);
  fc_tensor *nan_only = MK(FC_FLOAT32, S(1), NAN);
  EXPECT0(fc_all(nan_only, 0, NULL, 0), FC_BOOL, 0, 1); /* NaN is non-zero */
  fc_tensor *b = MK(FC_BOOL, S(2, 2), 1, 0, 1, 1);
  EXPECT0(fc_amax(b, 0, NULL, 0), FC_BOOL, 0, 1);
  EXPECT(fc_amin(b, 1, DIMS(1), 0), FC_BOOL, S(2), 0, 0, 1);
  EXPECT(fc_prod(b, 1, DIMS(0), 0), FC_INT64, S(2), 0, 1, 0);
  fc_tensor *i = MK(FC_INT32, S(2), 2147483647, 2147483647);
  EXPECT0(fc_sum(i, 0, NULL, 0), FC_INT64, 0, 4294967294.0); /* int64 accumulation */
  fc_release(u), fc_release(f), fc_release(nan_only), fc_release(b), fc_release(i);
}

TEST(zero_dim_tensors) {
  fc_tensor *s = fc_scalar(-2.5, FC_FLOAT32, CPU), *idx = NULL;
  EXPECT0(fc_sum(s, 0, NULL, 0), FC_FLOAT32, 0, -2.5);
  EXPECT0(fc_sum(s, 1, DIMS(0), 1), FC_FLOAT32, 0, -2.5);
  EXPECT0(fc_mean(s, 1, DIMS(-1), 0), FC_FLOAT32, 0, -2.5);
  EXPECT0(fc_norm(s, 2, 0, NULL, 0), FC_FLOAT32, 0, 2.5);
  EXPECT0(fc_max_dim(s, 0, 0, 0, &idx), FC_FLOAT32, 0, -2.5);
  EXPECT0(idx, FC_INT64, 0, 0);
  EXPECT0(fc_argmax(s, FC_ALL_DIMS, 0, 1), FC_INT64, 0, 1);
  EXPECT0(fc_cumsum(s, 0), FC_FLOAT32, 0, -2.5);
  EXPECT0(fc_sort(s, -1, 0, 0, NULL), FC_FLOAT32, 0, -2.5);
  CHECK_ERR(fc_sum(s, 1, DIMS(1), 0), "sum: dim 1 out of range for a 0-dim tensor");
  CHECK_ERR(fc_sum(s, 2, DIMS(0, -1), 0), "sum: dim -1 appears more than once");
  fc_release(s);
}

TEST(empty_tensors) {
  fc_tensor *e = fc_empty(2, SHP(0, 3), FC_FLOAT32, CPU), *idx = NULL;
  EXPECT0(fc_sum(e, 0, NULL, 0), FC_FLOAT32, 0, 0);
  EXPECT0(fc_prod(e, 0, NULL, 0), FC_FLOAT32, 0, 1);
  EXPECT0(fc_mean(e, 0, NULL, 0), FC_FLOAT32, 0, NAN);
  EXPECT0(fc_all(e, 0, NULL, 0), FC_BOOL, 0, 1);
  EXPECT0(fc_any(e, 0, NULL, 0), FC_BOOL, 0, 0);
  EXPECT0(fc_norm(e, 2, 0, NULL, 0), FC_FLOAT32, 0, 0);
  EXPECT0(fc_logsumexp(e, 0, NULL, 0), FC_FLOAT32, 0, -INFINITY);
  EXPECT(fc_sum(e, 1, DIMS(1), 0), FC_FLOAT32, S(0), 0, 0);       /* nothing to reduce into */
  EXPECT(fc_amax(e, 1, DIMS(1), 1), FC_FLOAT32, S(0, 1), 0, 0);   /* dim 1 is not empty */
  EXPECT(fc_argmax(e, 1, 0, 0), FC_INT64, S(0), 0, 0);
  EXPECT(fc_cumsum(e, 0), FC_FLOAT32, S(0, 3), 0, 0);
  EXPECT(fc_sort(e, 0, 0, 0, &idx), FC_FLOAT32, S(0, 3), 0, 0);
  EXPECT(idx, FC_INT64, S(0, 3), 0, 0);
  EXPECT(fc_topk(e, 0, 0, 1, 0, &idx), FC_FLOAT32, S(0, 3), 0, 0);
  fc_release(idx);
  CHECK_ERR(fc_amax(e, 0, NULL, 0), "amax: cannot reduce over an empty dim of a tensor of shape [0,3]");
  CHECK_ERR(fc_amin(e, 1, DIMS(0), 1), "amin: cannot reduce over an empty dim");
  CHECK_ERR(fc_argmin(e, FC_ALL_DIMS, 0, 0), "argmin: cannot reduce over an empty dim");
  CHECK_ERR(fc_max_dim(e, 0, 0, 0, &idx), "max: cannot reduce over an empty dim");
  CHECK_ERR(fc_min_dim(e, -2, 1, 0, &idx), "min: cannot reduce over an empty dim");
  CHECK_ERR(fc_norm(e, INFINITY, 0, NULL, 0), "norm: cannot reduce over an empty dim");
  CHECK_ERR(fc_topk(e, 1, 0, 1, 0, &idx), "topk: k = 1 out of range for a dim of size 0");
  fc_release(e);
}

TEST(error_paths) {
  fc_tensor *t = fc_ones(2, SHP(2, 3), FC_FLOAT32, CPU), *i = fc_ones(1, SHP(3), FC_INT64, CPU);
  fc_tensor *idx = NULL;
  CHECK_ERR(fc_sum(t, 1, DIMS(2), 0), "sum: dim 2 out of range for a 2-dim tensor (expected -2 to 1)");
  CHECK_ERR(fc_mean(t, 1, DIMS(-3), 0), "mean: dim -3 out of range");
  CHECK_ERR(fc_prod(t, 2, DIMS(0, 0), 0), "prod: dim 0 appears more than once");
  CHECK_ERR(fc_amax(t, 2, DIMS(1, -1), 0), "amax: dim -1 appears more than once");
  CHECK_ERR(fc_var(t, 2, DIMS(0, -2), 1, 0), "var: dim -2 appears more than once");
  CHECK_ERR(fc_norm(t, 2, 1, DIMS(5), 0), "norm: dim 5 out of range");
  CHECK_ERR(fc_logsumexp(t, 1, DIMS(9), 0), "logsumexp: dim 9 out of range");
  CHECK_ERR(fc_all(t, 1, DIMS(-5), 0), "all: dim -5 out of range");
  CHECK_ERR(fc_sum(t, 1, NULL, 0), "sum: 1 dims given but the dims array is NULL");
  CHECK_ERR(fc_sum(t, -1, NULL, 0), "sum: ndims = -1 is negative");
  CHECK_ERR(fc_argmax(t, 2, 0, 0), "argmax: dim 2 out of range");
  CHECK_ERR(fc_min_dim(t, -3, 0, 0, &idx), "min: dim -3 out of range");
  CHECK_ERR(fc_cumsum(t, 2), "cumsum: dim 2 out of range");
  CHECK_ERR(fc_cumprod(t, -3), "cumprod: dim -3 out of range");
  CHECK_ERR(fc_sort(t, 3, 0, 0, &idx), "sort: dim 3 out of range");
  CHECK_ERR(fc_topk(t, 4, 1, 1, 0, &idx), "topk: k = 4 out of range for a dim of size 3");
  CHECK_ERR(fc_topk(t, -1, 1, 1, 0, &idx), "topk: k = -1 out of range");
  CHECK_ERR(fc_topk(t, 1, 2, 1, 0, &idx), "topk: dim 2 out of range");
  CHECK_ERR(fc_mean(i, 0, NULL, 0), "mean: needs a floating point tensor, got int64");
  CHECK_ERR(fc_var(i, 0, NULL, 1, 0), "var: needs a floating point tensor, got int64");
  CHECK_ERR(fc_std(i, 0, NULL, 1, 0), "std: needs a floating point tensor, got int64");
  CHECK_ERR(fc_norm(i, 2, 0, NULL, 0), "norm: needs a floating point tensor, got int64");
  CHECK_ERR(fc_logsumexp(i, 0, NULL, 0), "logsumexp: needs a floating point tensor, got int64");
  CHECK_ERR(fc_var(t, 0, NULL, -1, 0), "var: correction = -1 is negative");
  CHECK_ERR(fc_norm(t, NAN, 0, NULL, 0), "norm: p is NaN");
  CHECK_ERR(fc_sum(NULL, 0, NULL, 0), "sum: tensor is NULL");
  CHECK_ERR(fc_amax(NULL, 0, NULL, 0), "amax: tensor is NULL");
  CHECK_ERR(fc_std(NULL, 0, NULL, 1, 0), "std: tensor is NULL");
  CHECK_ERR(fc_argmax(NULL, FC_ALL_DIMS, 0, 0), "argmax: tensor is NULL");
  CHECK_ERR(fc_sort(NULL, 0, 0, 0, &idx), "sort: tensor is NULL");
  CHECK_ERR(fc_topk(NULL, 1, 0, 1, 0, &idx), "topk: tensor is NULL");
  CHECK_ERR(fc_cumsum(NULL, 0), "cumsum: tensor is NULL");
  CHECK(idx == NULL); /* no failed call wrote an index tensor */
  fc_release(t), fc_release(i);
}

/* Each walk (rows, rows split in pieces, columns by prefix, by band of
 * columns, by share of rows) on shapes big enough to run threaded. */
static void check_big(const char *what, fc_tensor *t, int nd, const int *dims) {
  /* the naive answer: copy to a contiguous float64 tensor, reduce one dim at a time in doubles */
  double *x = malloc(sizeof(double) * (size_t)t->numel);
  fc_to_doubles(t, x);
  int64_t shape[FC_MAX_DIMS], n = t->numel;
  int ndim = t->ndim;
  for (int d = 0; d < ndim; d++) shape[d] = t->shape[d];
  double *sum = malloc(sizeof(double) * (size_t)n), *mx = malloc(sizeof(double) * (size_t)n);
  memcpy(sum, x, sizeof(double) * (size_t)n);
  memcpy(mx, x, sizeof(double) * (size_t)n);
  bool red[FC_MAX_DIMS] = {0};
  for (int k = 0; k < nd; k++) red[dims[k] < 0 ? dims[k] + ndim : dims[k]] = true;
  for (int d = 0; nd == 0 && d < ndim; d++) red[d] = true;
  for (int d = 0; d < ndim; d++) {
    if (!red[d]) continue;
    int64_t outer = 1, inner = 1;
    for (int e = 0; e < d; e++) outer *= shape[e];
    for (int e = d + 1; e < ndim; e++) inner *= shape[e];
    for (int64_t o = 0; o < outer; o++)
      for (int64_t i = 0; i < inner; i++) {
        double s = 0, m = -INFINITY;
        for (int64_t j = 0; j < shape[d]; j++) {
          s += sum[(o * shape[d] + j) * inner + i];
          m = fmax(m, mx[(o * shape[d] + j) * inner + i]);
        }
        sum[o * inner + i] = s;
        mx[o * inner + i] = m;
      }
    shape[d] = 1;
  }
  bool fl = fc_dtype_is_float(t->dtype);
  fc_tensor *s = fc_sum(t, nd, dims, 0), *m = fc_amax(t, nd, dims, 0);
  fc_tensor *mean = fl ? fc_mean(t, nd, dims, 0) : fc_retain(s);
  if (!s || !m || !mean) {
    harness_fail(__FILE__, __LINE__, "%s: %s", what, fc_last_error());
  } else {
    double *gs = malloc(sizeof(double) * (size_t)s->numel), *gm = malloc(sizeof(double) * (size_t)s->numel);
    double *gmean = malloc(sizeof(double) * (size_t)s->numel);
    fc_to_doubles(s, gs), fc_to_doubles(m, gm), fc_to_doubles(mean, gmean);
    int64_t count = fl ? t->numel / s->numel : 1;
    for (int64_t o = 0; o < s->numel; o++) {
      if (fabs(gs[o] - sum[o]) > 1e-5 * (1 + fabs(sum[o])) || gm[o] != mx[o] ||
          fabs(gmean[o] - sum[o] / count) > 1e-6 * (1 + fabs(sum[o] / count))) {
        harness_fail(__FILE__, __LINE__, "%s [%lld]: sum %.9g (want %.9g) amax %.9g (want %.9g)", what,
                     (long long)o, gs[o], sum[o], gm[o], mx[o]);
        break;
      }
    }
    free(gs), free(gm), free(gmean);
  }
  fc_release(s), fc_release(m), fc_release(mean);
  free(x), free(sum), free(mx);
}

TEST(threaded_walks_match_naive) {
  int saved = fc_get_num_threads();
  fc_manual_seed(5);
  for (int threads = 1; threads <= 3; threads += 2) {
    fc_set_num_threads(threads);
    fc_tensor *a = fc_randn(2, SHP(3, 70000), FC_FLOAT32, CPU); /* few long rows: pieces */
    check_big("rows in pieces", a, 1, DIMS(1));
    check_big("all of it", a, 0, NULL);
    fc_tensor *at = fc_transpose(a, 0, 1); /* [70000,3]: short strided runs */
    check_big("transposed rows", at, 1, DIMS(0));
    check_big("transposed all", at, 0, NULL);
    fc_tensor *b = fc_randn(3, SHP(8, 300, 40), FC_FLOAT32, CPU); /* columns by prefix */
    check_big("columns by prefix", b, 1, DIMS(1));
    check_big("two dims", b, 2, DIMS(0, -1));
    fc_tensor *c = fc_randn(2, SHP(300, 700), FC_FLOAT64, CPU); /* columns by band */
    check_big("columns by band", c, 1, DIMS(0));
    fc_tensor *d = fc_randn(3, SHP(2, 20000, 24), FC_FLOAT32, CPU); /* columns by share of rows */
    check_big("columns by rows", d, 1, DIMS(1));
    fc_tensor *ds = fc_slice(d, 2, 2, 22, 1); /* the same with rows not contiguous */
    check_big("sliced columns", ds, 1, DIMS(1));
    check_big("sliced rows", ds, 2, DIMS(0, 2));
    fc_tensor *i = fc_randint(-50, 50, 2, SHP(40000, 20), FC_INT32, CPU);
    check_big("int columns", i, 1, DIMS(0));
    check_big("int rows", i, 1, DIMS(1));
    fc_release(a), fc_release(at), fc_release(b), fc_release(c), fc_release(d), fc_release(ds), fc_release(i);
  }
  fc_set_num_threads(saved);
}

TEST(large_int64_stays_exact) {
  double big = 9007199254740992.0; /* 2^53: adding 1 is lost in a double */
  fc_tensor *t = MK(FC_INT64, S(2, 2), 0, 1, 0, 3);
  int64_t *v = fc_data_ptr(t);
  v[0] = (int64_t)big + 1, v[2] = (int64_t)big + 2;
  fc_tensor *idx = NULL, *s = fc_amax(t, 1, DIMS(0), 0), *m = fc_max_dim(t, 0, 0, 0, &idx);
  fc_tensor *c = fc_cumsum(t, 0), *so = fc_sort(t, 0, 1, 0, NULL);
  CHECK(s && ((int64_t *)fc_data_ptr(s))[0] == (int64_t)big + 2);
  CHECK(m && ((int64_t *)fc_data_ptr(m))[0] == (int64_t)big + 2 && ((int64_t *)fc_data_ptr(idx))[0] == 1);
  CHECK(c && ((int64_t *)fc_data_ptr(c))[2] == 2 * (int64_t)big + 3);
  CHECK(so && ((int64_t *)fc_data_ptr(so))[0] == (int64_t)big + 2 && ((int64_t *)fc_data_ptr(so))[2] == (int64_t)big + 1);
  fc_release(s), fc_release(m), fc_release(idx), fc_release(c), fc_release(so), fc_release(t);
}

TEST(max_min_non_contiguous_and_nan) {
  /* t = [[4,9,1],[7,2,9]]; its transpose is [[4,7],[9,2],[1,9]] */
  fc_tensor *t = MK(FC_FLOAT64, S(2, 3), 4, 9, 1, 7, 2, 9), *tr = fc_transpose(t, 0, 1), *idx = NULL;
  EXPECT(fc_max_dim(tr, 0, 0, 0, &idx), FC_FLOAT64, S(2), 0, 9, 9);
  EXPECT(idx, FC_INT64, S(2), 0, 1, 2);
  EXPECT(fc_min_dim(tr, -1, 1, 1, &idx), FC_FLOAT64, S(3, 1), 0, 4, 2, 1);
  EXPECT(idx, FC_INT64, S(3, 1), 0, 1, 2, 1);
  EXPECT0(fc_argmax(tr, FC_ALL_DIMS, 0, 0), FC_INT64, 0, 2); /* flat index into the view: 9 at [1,0] */
  EXPECT(fc_argmax(tr, FC_ALL_DIMS, 1, 0), FC_INT64, S(1, 1), 0, 2);
  EXPECT(fc_argmin(tr, 1, 1, 0), FC_INT64, S(3, 1), 0, 0, 1, 0);
  fc_tensor *n = MK(FC_FLOAT32, S(2, 4), 1, NAN, 5, NAN, -INFINITY, -INFINITY, -INFINITY, -INFINITY);
  EXPECT(fc_max_dim(n, 1, 0, 0, &idx), FC_FLOAT32, S(2), 0, NAN, -INFINITY);
  EXPECT(idx, FC_INT64, S(2), 0, 1, 0); /* the first NaN; the first of equal values */
  EXPECT(fc_min_dim(n, 1, 0, 0, &idx), FC_FLOAT32, S(2), 0, NAN, -INFINITY);
  EXPECT(idx, FC_INT64, S(2), 0, 1, 0);
  EXPECT(fc_amin(n, 1, DIMS(1), 0), FC_FLOAT32, S(2), 0, NAN, -INFINITY);
  EXPECT(fc_amax(n, 1, DIMS(0), 0), FC_FLOAT32, S(4), 0, 1, NAN, 5, NAN);
  EXPECT(fc_norm(n, INFINITY, 1, DIMS(1), 0), FC_FLOAT32, S(2), 0, NAN, INFINITY);
  fc_tensor *cols = MK(FC_FLOAT64, S(3, 2), NAN, 1, 5, 2, 7, NAN); /* along dim 0: slabs, not rows */
  EXPECT(fc_max_dim(cols, 0, 0, 0, &idx), FC_FLOAT64, S(2), 0, NAN, NAN);
  EXPECT(idx, FC_INT64, S(2), 0, 0, 2);
  EXPECT(fc_min_dim(cols, 0, 1, 0, &idx), FC_FLOAT64, S(1, 2), 0, NAN, NAN);
  EXPECT(idx, FC_INT64, S(1, 2), 0, 0, 2);
  EXPECT(fc_argmax(cols, 1, 0, 0), FC_INT64, S(3), 0, 0, 0, 1);
  fc_release(cols);
  fc_tensor *ties = MK(FC_INT32, S(6), 3, 8, 8, 1, 1, 8);
  EXPECT0(fc_argmax(ties, 0, 0, 0), FC_INT64, 0, 1);
  EXPECT0(fc_argmin(ties, FC_ALL_DIMS, 0, 1), FC_INT64, 0, 4);
  fc_release(ties), fc_release(n), fc_release(tr), fc_release(t);
}

TEST(cumulative_against_naive) {
  fc_manual_seed(8);
  fc_tensor *base = fc_randn(2, SHP(5, 7), FC_FLOAT32, CPU), *t = fc_transpose(base, 0, 1); /* [7,5] */
  double x[35], got[35];
  fc_to_doubles(t, x);
  for (int dim = 0; dim < 2; dim++)
    for (int prod = 0; prod < 2; prod++) {
      fc_tensor *c = prod ? fc_cumprod(t, dim - 2) : fc_cumsum(t, dim);
      CHECK(c && c->dtype == FC_FLOAT32 && c->shape[0] == 7 && c->shape[1] == 5);
      if (!c) continue;
      fc_to_doubles(c, got);
      for (int a = 0; a < 7; a++)
        for (int b = 0; b < 5; b++) {
          double acc = prod;
          for (int k = 0; k <= (dim ? b : a); k++) {
            double v = dim ? x[a * 5 + k] : x[k * 5 + b];
            acc = prod ? acc * v : acc + v;
          }
          CHECK_NEAR(got[a * 5 + b], acc, 1e-6);
        }
      fc_release(c);
    }
  fc_tensor *i = MK(FC_INT32, S(2, 3), 1, -2, 3, 4, 5, -6);
  EXPECT(fc_cumprod(i, 1), FC_INT64, S(2, 3), 0, 1, -2, -6, 4, 20, -120);
  EXPECT(fc_cumsum(i, 0), FC_INT64, S(2, 3), 0, 1, -2, 3, 5, 3, -3);
  EXPECT(fc_cumprod(i, 0), FC_INT64, S(2, 3), 0, 1, -2, 3, 4, -10, -18);
  fc_release(i), fc_release(t), fc_release(base);
}

/* Stable sort against insertion sort on rows full of ties, both directions:
 * NaN sorts largest, -0 equals +0. Row lengths and k pick every path
 * (insertion for short rows, radix for long ones, selection for small k). */
static bool naive_before(double a, double b, bool desc) { /* a strictly before b? */
  if (isnan(a) || isnan(b)) return desc ? isnan(a) && !isnan(b) : isnan(b) && !isnan(a);
  return desc ? a > b : a < b;
}

static void check_sort(int dtype, int64_t R, int64_t L, int64_t k, uint64_t seed) {
  fc_manual_seed(seed);
  fc_tensor *r = fc_randint(-5, 6, 2, SHP(L, R), FC_INT64, CPU); /* [L,R]: sort dim 0 of a view */
  double *x = malloc(sizeof(double) * (size_t)(R * L)); /* x[row * L + j] */
  double *v0 = malloc(sizeof(double) * (size_t)(R * L));
  fc_to_doubles(r, v0);
  for (int64_t j = 0; j < L; j++)
    for (int64_t row = 0; row < R; row++) {
      double v = v0[j * R + row];
      if (dtype == FC_UINT8) v += 5;
      if (dtype == FC_BOOL) v = v > 0;
      if (fc_dtype_is_float(dtype)) {
        v = v / 4;
        if ((j * 7 + row) % 13 == 0) v = NAN;
        if (v == 0 && j % 2) v = -0.0;
      }
      x[row * L + j] = v;
      v0[j * R + row] = v;
    }
  fc_tensor *t = mk(dtype, 2, SHP(L, R), v0), *tt = fc_transpose(t, 0, 1); /* [R,L], strided */
  int64_t *order = malloc(sizeof(int64_t) * (size_t)L);
  double *gv = malloc(sizeof(double) * (size_t)(R * L)), *gi = malloc(sizeof(double) * (size_t)(R * L));
  for (int desc = 0; desc < 2; desc++) {
    fc_tensor *idx = NULL, *kidx = NULL;
    fc_tensor *v = fc_sort(t, 0, desc, 0, &idx), *kv = fc_topk(tt, k, 1, desc, 1, &kidx);
    if (!v || !kv) {
      harness_fail(__FILE__, __LINE__, "%s: %s", fc_dtype_name(dtype), fc_last_error());
      fc_release(v), fc_release(idx), fc_release(kv), fc_release(kidx);
      continue;
    }
    CHECK(v->dtype == dtype && v->shape[0] == L && kv->shape[0] == R && kv->shape[1] == k);
    for (int64_t row = 0; row < R; row++) {
      for (int64_t j = 0; j < L; j++) { /* stable insertion sort of positions */
        int64_t at = j;
        for (; at > 0 && naive_before(x[row * L + j], x[row * L + order[at - 1]], desc); at--)
          order[at] = order[at - 1];
        order[at] = j;
      }
      fc_to_doubles(v, gv), fc_to_doubles(idx, gi); /* [L,R] */
      bool bad = false;
      for (int64_t j = 0; j < L && !bad; j++) {
        double want = x[row * L + order[j]], got = gv[j * R + row];
        bad = gi[j * R + row] != order[j] || !(got == want || (isnan(got) && isnan(want)));
        if (bad)
          harness_fail(__FILE__, __LINE__, "sort %s L=%lld desc=%d row %lld [%lld]: index %g value %g, want %lld %g",
                       fc_dtype_name(dtype), (long long)L, desc, (long long)row, (long long)j,
                       gi[j * R + row], got, (long long)order[j], want);
      }
      fc_to_doubles(kv, gv), fc_to_doubles(kidx, gi); /* [R,k], indices from 1 */
      for (int64_t j = 0; j < k && !bad; j++) {
        bad = gi[row * k + j] != order[j] + 1;
        if (bad)
          harness_fail(__FILE__, __LINE__, "topk %s L=%lld k=%lld largest=%d row %lld [%lld]: index %g, want %lld",
                       fc_dtype_name(dtype), (long long)L, (long long)k, desc, (long long)row,
                       (long long)j, gi[row * k + j], (long long)order[j] + 1);
      }
      if (bad) break;
    }
    fc_release(v), fc_release(idx), fc_release(kv), fc_release(kidx);
  }
  free(order), free(gv), free(gi), free(x), free(v0);
  fc_release(tt), fc_release(t), fc_release(r);
}

TEST(sort_topk_against_naive) {
  check_sort(FC_FLOAT32, 9, 50, 7, 1);    /* radix; topk by sorting */
  check_sort(FC_FLOAT32, 3, 300, 5, 2);   /* topk by selection */
  check_sort(FC_FLOAT64, 4, 100, 16, 3);
  check_sort(FC_FLOAT64, 5, 20, 20, 4);   /* insertion */
  check_sort(FC_INT64, 3, 200, 3, 5);
  check_sort(FC_INT32, 6, 31, 31, 6);
  check_sort(FC_INT32, 2, 1000, 40, 7);
  check_sort(FC_UINT8, 4, 90, 9, 8);
  check_sort(FC_BOOL, 4, 70, 2, 9);
  check_sort(FC_BFLOAT16, 3, 80, 10, 10);
  check_sort(FC_FLOAT32, 70, 600, 600, 11); /* threaded over rows */
  fc_tensor *f = fc_ones(2, SHP(9, 4), FC_FLOAT32, CPU), *ti = NULL;
  EXPECT(fc_topk(f, 0, 1, 1, 0, &ti), FC_FLOAT32, S(9, 0), 0, 0);
  EXPECT(ti, FC_INT64, S(9, 0), 0, 0);
  fc_release(f);
}

/* ---- gradients (float64 finite differences) ---------------------------- */

typedef fc_tensor *(*fn1)(fc_tensor *x);

static void gradcheck1(const char *name, fn1 f, fc_tensor *x) {
  check_gradients(__FILE__, __LINE__, name, apply_one, 1, &x, (void *)f, 1e-6, 1e-5, 1);
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
static fc_tensor *f_norm3(fc_tensor *x) { return fc_norm(x, 3, 2, DIMS(0, 1), 1); }
static fc_tensor *f_norm1(fc_tensor *x) { return fc_norm(x, 1, 1, DIMS(-1), 0); }
static fc_tensor *f_norminf(fc_tensor *x) { return fc_norm(x, INFINITY, 1, DIMS(1), 0); }
static fc_tensor *f_amin_all(fc_tensor *x) { return fc_amin(x, 0, NULL, 0); }

TEST(gradients) {
  fc_manual_seed(21);
  struct { const char *name; fn1 f; } cases[] = {
      {"sum", f_sum_all}, {"sum dims", f_sum_01}, {"mean", f_mean_1k}, {"amax", f_amax},
      {"var", f_var},     {"std", f_std},         {"norm", f_norm},    {"logsumexp", f_lse},
      {"max", f_max},     {"min", f_min_k},       {"cumsum", f_cumsum}, {"sort", f_sort},
      {"topk", f_topk},   {"norm3", f_norm3},     {"norm1", f_norm1},  {"norm inf", f_norminf},
      {"amin all", f_amin_all}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    fc_tensor *x = fc_randn(3, SHP(3, 4, 2), FC_FLOAT64, CPU);
    gradcheck1(cases[i].name, cases[i].f, x);
    fc_release(x);
  }
}

static fc_tensor *f_prod_all(fc_tensor *x) { return fc_prod(x, 0, NULL, 0); }
static fc_tensor *f_prod_1(fc_tensor *x) { return fc_prod(x, 1, DIMS(1), 0); }
static fc_tensor *f_prod_02k(fc_tensor *x) { return fc_prod(x, 2, DIMS(0, 2), 1); }
static fc_tensor *f_cumprod_1(fc_tensor *x) { return fc_cumprod(x, 1); }
static fc_tensor *f_cumprod_0(fc_tensor *x) { return fc_cumprod(x, 0); }

/* Products are multilinear, so central differences are exact even at zeros:
 * groups with no, one and two zeros check each branch of the backward. */
TEST(product_gradients_with_zeros) {
  fc_manual_seed(22);
  fn1 fs[] = {f_prod_all, f_prod_1, f_prod_02k, f_cumprod_1, f_cumprod_0};
  const char *names[] = {"prod all", "prod dim", "prod dims keepdim", "cumprod 1", "cumprod 0"};
  for (int i = 0; i < 5; i++) {
    fc_tensor *x = fc_randn(3, SHP(3, 4, 2), FC_FLOAT64, CPU);
    gradcheck1(names[i], fs[i], x);
    fc_release(x);
  }
  /* row 0: no zero; row 1: one zero; row 2: two zeros */
  fc_tensor *z = MK(FC_FLOAT64, S(3, 4), 1.5, -2, 0.5, 3, 2, 0, -1, 0.25, 0, 4, 0, -3);
  for (int i = 1; i < 5; i++) if (i != 2) gradcheck1(names[i], fs[i], z);
  /* by hand: d prod(row) for [2, 0, -1, 0.25] is [0, -0.5, 0, 0] */
  fc_set_requires_grad(z, 1);
  fc_tensor *p = fc_prod(z, 1, DIMS(1), 0), *l = fc_sum(p, 0, NULL, 0);
  CHECK(fc_backward(l, NULL, 0) == 0);
  EXPECT(fc_get_grad(z), FC_FLOAT64, S(3, 4), 1e-12, -3, 2.25, -9, -1.5, 0, -0.5, 0, 0,
         0, 0, 0, 0);
  fc_release(p), fc_release(l), fc_release(z);
  /* float32 agrees with float64 */
  fc_tensor *y = fc_rand(2, SHP(5, 6), FC_FLOAT32, CPU), *y64 = fc_to_dtype(y, FC_FLOAT64);
  fc_set_requires_grad(y, 1);
  fc_tensor *c = fc_cumprod(y, 1), *s = fc_sum(c, 0, NULL, 0);
  CHECK(fc_backward(s, NULL, 0) == 0);
  fc_set_requires_grad(y64, 1);
  fc_tensor *c64 = fc_cumprod(y64, 1), *s64 = fc_sum(c64, 0, NULL, 0);
  CHECK(fc_backward(s64, NULL, 0) == 0);
  double a[30], b[30];
  fc_tensor *gy = fc_get_grad(y), *gy64 = fc_get_grad(y64);
  fc_to_doubles(gy, a), fc_to_doubles(gy64, b);
  fc_release(gy), fc_release(gy64);
  for (int i = 0; i < 30; i++) CHECK(fabs(a[i] - b[i]) < 1e-5 * (1 + fabs(b[i])));
  fc_release(y), fc_release(c), fc_release(s), fc_release(y64), fc_release(c64), fc_release(s64);
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
  RUN(product_gradients_with_zeros);
  RUN(sort_and_topk);
  RUN(every_op_layout_and_dims_float64);
  RUN(every_op_layout_and_dims_float32);
  RUN(every_op_layout_and_dims_integers);
  RUN(half_types_compute_wide_return_own_dtype);
  RUN(dtype_results);
  RUN(zero_dim_tensors);
  RUN(empty_tensors);
  RUN(error_paths);
  RUN(threaded_walks_match_naive);
  RUN(large_int64_stays_exact);
  RUN(max_min_non_contiguous_and_nan);
  RUN(cumulative_against_naive);
  RUN(sort_topk_against_naive);
  RUN(gradients);
  return harness_report();
}
