/* test_matmul.c — matmul, addmm, dot, outer against naive float64 loops,
 * on transposed, sliced and broadcast batched operands; gradients. */
#include "harness.h"
#include <stdlib.h>

#define SHP(...) (int64_t[]){__VA_ARGS__}

/* Element (.., i, j) of a >= 2-D tensor through the batch index list. */
static double at(fc_tensor *t, const int64_t *bidx, int nb, int64_t i, int64_t j) {
  int64_t idx[FC_MAX_DIMS];
  int lead = nb - (t->ndim - 2);
  for (int d = 0; d < t->ndim - 2; d++) idx[d] = t->shape[d] == 1 ? 0 : bidx[d + lead];
  idx[t->ndim - 2] = i;
  idx[t->ndim - 1] = j;
  double v;
  fc_get(t, idx, &v);
  return v;
}

/* a @ b for >= 2-D operands by the definition. */
static void check_product(fc_tensor *a, fc_tensor *b, double tol) {
  fc_tensor *c = fc_matmul(a, b);
  if (!c) {
    harness_fail(__FILE__, __LINE__, "matmul failed: %s", fc_last_error());
    return;
  }
  int nb = c->ndim - 2;
  int64_t n = c->shape[nb], m = c->shape[nb + 1], k = a->shape[a->ndim - 1];
  int64_t count = n * m > 0 ? c->numel / (n * m) : 0, bidx[FC_MAX_DIMS];
  int bad = 0;
  for (int64_t q = 0; q < count && !bad; q++) {
    int64_t rest = q;
    for (int d = nb - 1; d >= 0; d--) {
      bidx[d] = rest % c->shape[d];
      rest /= c->shape[d];
    }
    for (int64_t i = 0; i < n; i++)
      for (int64_t j = 0; j < m; j++) {
        double want = 0;
        for (int64_t p = 0; p < k; p++) want += at(a, bidx, nb, i, p) * at(b, bidx, nb, p, j);
        double got = at(c, bidx, nb, i, j);
        if (fabs(got - want) > tol * (1 + fabs(want))) bad++;
      }
  }
  CHECK(bad == 0);
  fc_release(c);
}

TEST(products_match_definition) {
  fc_manual_seed(4);
  fc_tensor *a = fc_randn(2, SHP(5, 7), FC_FLOAT32, CPU), *b = fc_randn(2, SHP(7, 3), FC_FLOAT32, CPU);
  check_product(a, b, 1e-5);
  /* transposed operands go to BLAS without a copy */
  fc_tensor *at_ = fc_randn(2, SHP(7, 5), FC_FLOAT32, CPU), *bt = fc_randn(2, SHP(3, 7), FC_FLOAT32, CPU);
  fc_tensor *aT = fc_transpose(at_, 0, 1), *bT = fc_transpose(bt, 0, 1);
  check_product(aT, bT, 1e-5);
  /* sliced rows (lda > cols) and a stepped view that must be copied */
  fc_tensor *wide = fc_randn(2, SHP(5, 12), FC_FLOAT32, CPU);
  fc_tensor *sl = fc_narrow(wide, 1, 2, 7), *step = fc_slice(wide, 1, 0, 12, 2); /* [5,6] */
  check_product(sl, b, 1e-5);
  fc_tensor *b6 = fc_randn(2, SHP(6, 4), FC_FLOAT32, CPU);
  check_product(step, b6, 1e-5);
  /* batched with broadcasting: [2,1,3,4] @ [5,4,2] -> [2,5,3,2] */
  fc_tensor *ba = fc_randn(4, SHP(2, 1, 3, 4), FC_FLOAT64, CPU), *bb = fc_randn(3, SHP(5, 4, 2), FC_FLOAT64, CPU);
  fc_tensor *c = fc_matmul(ba, bb);
  CHECK(c && c->ndim == 4 && c->shape[0] == 2 && c->shape[1] == 5 && c->shape[2] == 3 && c->shape[3] == 2);
  fc_release(c);
  check_product(ba, bb, 1e-12);
  /* batch folded into M: [4,3,5] @ [5,2] */
  fc_tensor *fa = fc_randn(3, SHP(4, 3, 5), FC_FLOAT32, CPU), *fb = fc_randn(2, SHP(5, 2), FC_FLOAT32, CPU);
  check_product(fa, fb, 1e-5);
  fc_release(fa), fc_release(fb), fc_release(ba), fc_release(bb), fc_release(b6), fc_release(step);
  fc_release(sl), fc_release(wide), fc_release(aT), fc_release(bT), fc_release(at_), fc_release(bt);
  fc_release(a), fc_release(b);
}

TEST(vector_cases_and_dtypes) {
  fc_tensor *m = MK(FC_FLOAT64, S(2, 3), 1, 2, 3, 4, 5, 6), *v = MK(FC_FLOAT64, S(3), 1, 0, -1);
  fc_tensor *u = MK(FC_FLOAT64, S(2), 1, 1);
  EXPECT(fc_matmul(m, v), FC_FLOAT64, S(2), 0, -2, -2);
  EXPECT(fc_matmul(u, m), FC_FLOAT64, S(3), 0, 5, 7, 9);
  EXPECT0(fc_matmul(v, v), FC_FLOAT64, 0, 2);
  EXPECT0(fc_dot(v, v), FC_FLOAT64, 0, 2);
  EXPECT(fc_outer(u, v), FC_FLOAT64, S(2, 3), 0, 1, 0, -1, 1, 0, -1);
  fc_tensor *mi = MK(FC_INT64, S(2, 2), 1, 2, 3, 4);
  EXPECT(fc_matmul(mi, mi), FC_INT64, S(2, 2), 0, 7, 10, 15, 22);
  fc_tensor *h = MK(FC_FLOAT16, S(2, 2), 1, 2, 3, 4);
  EXPECT(fc_matmul(h, h), FC_FLOAT16, S(2, 2), 0, 7, 10, 15, 22);
  fc_tensor *c = MK(FC_FLOAT64, S(2), 10, 20), *sq = MK(FC_FLOAT64, S(2, 2), 1, 2, 3, 4);
  EXPECT(fc_addmm(c, sq, sq, 0.5, 2), FC_FLOAT64, S(2, 2), 0, 19, 30, 35, 54);
  fc_tensor *e = fc_empty(2, SHP(2, 0), FC_FLOAT32, CPU), *e2 = fc_empty(2, SHP(0, 3), FC_FLOAT32, CPU);
  EXPECT(fc_matmul(e, e2), FC_FLOAT32, S(2, 3), 0, 0, 0, 0, 0, 0, 0);
  fc_release(e), fc_release(e2), fc_release(c), fc_release(sq), fc_release(h), fc_release(mi);
  fc_release(m), fc_release(v), fc_release(u);
}

TEST(errors) {
  fc_tensor *a = fc_ones(2, SHP(3, 4), FC_FLOAT32, CPU), *b = fc_ones(2, SHP(5, 6), FC_FLOAT32, CPU);
  fc_tensor *d = fc_ones(2, SHP(4, 2), FC_FLOAT64, CPU), *s = fc_scalar(1, FC_FLOAT32, CPU);
  CHECK_ERR(fc_matmul(a, b), "matmul: shapes [3,4] and [5,6] do not match (4 != 5)");
  CHECK_ERR(fc_matmul(a, d), "matmul: dtypes float32 and float64 differ");
  CHECK_ERR(fc_matmul(s, a), "need at least 1 dim");
  fc_tensor *v3 = fc_ones(1, SHP(3), FC_FLOAT32, CPU), *v4 = fc_ones(1, SHP(4), FC_FLOAT32, CPU);
  CHECK_ERR(fc_dot(v3, v4), "dot: expects two 1-D tensors of one size");
  CHECK_ERR(fc_addmm(v3, a, v4, 1, 1), "addmm: expects 2-D matrices");
  fc_tensor *b1 = fc_ones(3, SHP(2, 4, 2), FC_FLOAT32, CPU), *b2 = fc_ones(3, SHP(3, 3, 4), FC_FLOAT32, CPU);
  CHECK_ERR(fc_matmul(b2, b1), "matmul: shapes [3] and [2] cannot broadcast");
  fc_release(b1), fc_release(b2), fc_release(v3), fc_release(v4), fc_release(a), fc_release(b);
  fc_release(d), fc_release(s);
}

/* Gradients through every shape case against finite differences. */
static fc_tensor *matmul2(fc_tensor **in, void *ctx) { return fc_matmul(in[0], in[1]); }
static void gradcheck_mm(fc_tensor *a, fc_tensor *b) {
  check_gradients(__FILE__, __LINE__, "matmul", matmul2, 2, (fc_tensor *[]){a, b}, NULL, 1e-6, 1e-6, 1);
}

TEST(gradients) {
  fc_manual_seed(5);
  int64_t shapes[][2][4] = {{{2, 3}, {3, 4}}, {{3}, {3, 2}}, {{2, 3}, {3}}, {{3}, {3}}, {{2, 1, 2, 3}, {3, 3, 2}}};
  int nd[][2] = {{2, 2}, {1, 2}, {2, 1}, {1, 1}, {4, 3}};
  for (int i = 0; i < 5; i++) {
    fc_tensor *a = fc_randn(nd[i][0], shapes[i][0], FC_FLOAT64, CPU);
    fc_tensor *b = fc_randn(nd[i][1], shapes[i][1], FC_FLOAT64, CPU);
    gradcheck_mm(a, b);
    fc_release(a), fc_release(b);
  }
}

int main(void) {
  RUN(products_match_definition);
  RUN(vector_cases_and_dtypes);
  RUN(errors);
  RUN(gradients);
  return harness_report();
}
