/* test_index.c — cat, stack, index_select, gather, scatter, masks, nonzero,
 * one_hot, flip, roll: hand-worked values, strided inputs, errors, grads. */
#include "harness.h"
#include <stdlib.h>

#define SHP(...) (int64_t[]){__VA_ARGS__}

TEST(cat_and_stack) {
  fc_tensor *a = MK(FC_FLOAT32, S(2, 2), 1, 2, 3, 4), *b = MK(FC_INT64, S(2, 1), 5, 6);
  EXPECT(fc_cat(2, (fc_tensor *[]){a, b}, 1), FC_FLOAT32, S(2, 3), 0, 1, 2, 5, 3, 4, 6);
  fc_tensor *at = fc_transpose(a, 0, 1);
  EXPECT(fc_cat(2, (fc_tensor *[]){a, at}, 0), FC_FLOAT32, S(4, 2), 0, 1, 2, 3, 4, 1, 3, 2, 4);
  EXPECT(fc_stack(2, (fc_tensor *[]){a, at}, -1), FC_FLOAT32, S(2, 2, 2), 0, 1, 1, 2, 3, 3, 2, 4, 4);
  CHECK_ERR(fc_cat(2, (fc_tensor *[]){a, b}, 0), "cat: tensor 1 has shape [2,1] but tensor 0 has shape [2,2]");
  CHECK_ERR(fc_stack(2, (fc_tensor *[]){a, b}, 0), "stack: tensor 1 has shape [2,1]");
  CHECK_ERR(fc_cat(2, (fc_tensor *[]){a, b}, 2), "dim 2 out of range");
  CHECK_ERR(fc_cat(0, NULL, 0), "at least one tensor");
  fc_release(at), fc_release(a), fc_release(b);
}

TEST(index_select_and_gather) {
  fc_tensor *t = MK(FC_FLOAT32, S(3, 2), 1, 2, 3, 4, 5, 6);
  fc_tensor *i = MK(FC_INT64, S(3), 3, 1, 3);
  EXPECT(fc_index_select(t, 0, i, 1), FC_FLOAT32, S(3, 2), 0, 5, 6, 1, 2, 5, 6);
  fc_tensor *tt = fc_transpose(t, 0, 1); /* [[1,3,5],[2,4,6]] */
  EXPECT(fc_index_select(tt, 1, i, 1), FC_FLOAT32, S(2, 3), 0, 5, 1, 5, 6, 2, 6);
  fc_tensor *g = MK(FC_INT64, S(3, 1), 1, 0, 1);
  EXPECT(fc_gather(t, 1, g, 0), FC_FLOAT32, S(3, 1), 0, 2, 3, 6);
  fc_tensor *bad = MK(FC_INT64, S(2), 4, 0);
  CHECK_ERR(fc_index_select(t, 0, bad, 1), "index_select: index 4 out of range for dim of size 3 (valid 1..3)");
  CHECK_ERR(fc_index_select(t, 0, bad, 0), "(valid 0..2)");
  fc_tensor *fidx = MK(FC_FLOAT32, S(1), 0);
  CHECK_ERR(fc_index_select(t, 0, fidx, 0), "index tensor must be int64 (or int32), got float32");
  fc_tensor *g3 = MK(FC_INT64, S(3), 0, 0, 0);
  CHECK_ERR(fc_gather(t, 1, g3, 0), "must have as many dims as the input");
  fc_release(g3), fc_release(fidx), fc_release(bad), fc_release(g), fc_release(tt), fc_release(i), fc_release(t);
}

TEST(scatter_family) {
  fc_tensor *z = fc_zeros(2, SHP(2, 3), FC_FLOAT32, CPU);
  fc_tensor *idx = MK(FC_INT64, S(2, 2), 2, 0, 0, 0), *src = MK(FC_FLOAT32, S(2, 2), 1, 2, 3, 4);
  EXPECT(fc_scatter(z, 1, idx, src, 0), FC_FLOAT32, S(2, 3), 0, 2, 0, 1, 4, 0, 0); /* last write wins */
  EXPECT(fc_scatter_add(z, 1, idx, src, 0), FC_FLOAT32, S(2, 3), 0, 2, 0, 1, 7, 0, 0);
  CHECK(fc_scatter_add_(z, 1, idx, src, 0) == 0);
  CHECK(fc_scatter_add_(z, 1, idx, src, 0) == 0);
  EXPECT(fc_clone(z), FC_FLOAT32, S(2, 3), 0, 4, 0, 2, 14, 0, 0);
  fc_tensor *v = fc_scalar(9, FC_FLOAT32, CPU);
  CHECK(fc_scatter_(z, 1, idx, v, 0) == 0);
  EXPECT(fc_clone(z), FC_FLOAT32, S(2, 3), 0, 9, 0, 9, 9, 0, 0);
  fc_tensor *bad = MK(FC_INT64, S(1, 1), 3);
  CHECK_ERR(fc_scatter_(z, 1, bad, v, 0), "scatter_: index 3 out of range for dim of size 3");
  fc_release(bad), fc_release(v), fc_release(z), fc_release(idx), fc_release(src);
}

TEST(masks_nonzero_one_hot) {
  fc_tensor *t = MK(FC_INT32, S(2, 3), 0, 5, 0, 7, 0, 9);
  fc_tensor *m = MK(FC_BOOL, S(3), 1, 0, 1);
  EXPECT(fc_masked_fill(t, m, -1), FC_INT32, S(2, 3), 0, -1, 5, -1, -1, 0, -1);
  EXPECT(fc_masked_select(t, m), FC_INT32, S(4), 0, 0, 0, 7, 9);
  EXPECT(fc_nonzero(t, 1), FC_INT64, S(3, 2), 0, 1, 2, 2, 1, 2, 3);
  fc_tensor *fm = MK(FC_FLOAT32, S(3), 1, 0, 1);
  CHECK_ERR(fc_masked_fill(t, fm, 0), "mask must be a bool tensor, got float32");
  fc_tensor *big = MK(FC_BOOL, S(4), 1, 1, 1, 1);
  CHECK_ERR(fc_masked_select(t, big), "cannot broadcast");
  fc_tensor *cls = MK(FC_INT64, S(3), 2, 0, 1);
  EXPECT(fc_one_hot(cls, -1, 0), FC_INT64, S(3, 3), 0, 0, 0, 1, 1, 0, 0, 0, 1, 0);
  CHECK_ERR(fc_one_hot(cls, 2, 0), "one_hot: index 2 out of range for dim of size 2");
  CHECK(fc_masked_fill_(t, m, 3) == 0);
  EXPECT(fc_clone(t), FC_INT32, S(2, 3), 0, 3, 5, 3, 3, 0, 3);
  fc_release(cls), fc_release(big), fc_release(fm), fc_release(m), fc_release(t);
}

TEST(flip_and_roll) {
  fc_tensor *t = MK(FC_FLOAT64, S(2, 3), 1, 2, 3, 4, 5, 6);
  EXPECT(fc_flip(t, 1, (int[]){1}), FC_FLOAT64, S(2, 3), 0, 3, 2, 1, 6, 5, 4);
  EXPECT(fc_flip(t, 2, (int[]){0, 1}), FC_FLOAT64, S(2, 3), 0, 6, 5, 4, 3, 2, 1);
  EXPECT(fc_roll(t, 1, (int64_t[]){1}, (int[]){1}), FC_FLOAT64, S(2, 3), 0, 3, 1, 2, 6, 4, 5);
  EXPECT(fc_roll(t, 1, (int64_t[]){-1}, (int[]){0}), FC_FLOAT64, S(2, 3), 0, 4, 5, 6, 1, 2, 3);
  EXPECT(fc_roll(t, 0, (int64_t[]){2}, NULL), FC_FLOAT64, S(2, 3), 0, 5, 6, 1, 2, 3, 4);
  CHECK_ERR(fc_flip(t, 2, (int[]){1, -1}), "flip: dim -1 appears more than once");
  fc_release(t);
}

/* ---- gradients ---------------------------------------------------------- */
typedef fc_tensor *(*fn1)(fc_tensor *);
static double wsum(fc_tensor *o, const double *g) {
  double *v = malloc(sizeof(double) * (size_t)(o->numel + 1)), s = 0;
  fc_to_doubles(o, v);
  for (int64_t i = 0; i < o->numel; i++) s += v[i] * g[i];
  free(v);
  return s;
}
static void gradcheck1(const char *name, fn1 f) {
  fc_tensor *x = fc_randn(2, SHP(3, 4), FC_FLOAT64, CPU);
  fc_set_requires_grad(x, 1);
  fc_tensor *out = f(x);
  if (!out) { harness_fail(__FILE__, __LINE__, "%s: %s", name, fc_last_error()); fc_release(x); return; }
  fc_tensor *G = fc_randn(out->ndim, out->shape, FC_FLOAT64, CPU);
  double *g = malloc(sizeof(double) * (size_t)(out->numel + 1)), an[12];
  fc_to_doubles(G, g);
  CHECK(fc_backward(out, G, 0) == 0);
  fc_tensor *grad = fc_get_grad(x);
  fc_to_doubles(grad, an);
  double *xd = fc_data_ptr(x);
  fc_set_grad_enabled(0);
  for (int k = 0; k < 12; k++) {
    double x0 = xd[k];
    xd[k] = x0 + 1e-6;
    fc_tensor *u = f(x);
    xd[k] = x0 - 1e-6;
    fc_tensor *d = f(x);
    xd[k] = x0;
    double num = (wsum(u, g) - wsum(d, g)) / 2e-6;
    if (fabs(num - an[k]) > 1e-6 * (1 + fabs(num)))
      harness_fail(__FILE__, __LINE__, "%s [%d]: backward %g numeric %g", name, k, an[k], num);
    fc_release(u), fc_release(d);
  }
  fc_set_grad_enabled(1);
  free(g);
  fc_release(grad), fc_release(G), fc_release(out), fc_release(x);
}

static fc_tensor *f_cat(fc_tensor *x) { return fc_cat(3, (fc_tensor *[]){x, x, x}, 1); }
static fc_tensor *f_cat6(fc_tensor *x) { return fc_cat(6, (fc_tensor *[]){x, x, x, x, x, x}, 0); }
static fc_tensor *f_stack(fc_tensor *x) { return fc_stack(2, (fc_tensor *[]){x, x}, 1); }
static fc_tensor *f_isel(fc_tensor *x) {
  fc_tensor *i = MK(FC_INT64, S(4), 2, 0, 2, 1), *r = fc_index_select(x, 0, i, 0);
  fc_release(i);
  return r;
}
static fc_tensor *f_gather(fc_tensor *x) {
  fc_tensor *i = MK(FC_INT64, S(3, 2), 3, 3, 0, 1, 2, 2), *r = fc_gather(x, 1, i, 0);
  fc_release(i);
  return r;
}
static fc_tensor *f_scatter(fc_tensor *x) {
  fc_tensor *i = MK(FC_INT64, S(1, 4), 0, 2, 1, 0), *s = fc_slice(x, 0, 1, 2, 1);
  fc_tensor *r = fc_scatter_add(x, 0, i, s, 0);
  fc_release(i), fc_release(s);
  return r;
}
static fc_tensor *f_mselect(fc_tensor *x) {
  fc_tensor *m = MK(FC_BOOL, S(4), 1, 0, 0, 1), *r = fc_masked_select(x, m);
  fc_release(m);
  return r;
}
static fc_tensor *f_mfill(fc_tensor *x) {
  fc_tensor *m = MK(FC_BOOL, S(3, 1), 0, 1, 0), *r = fc_masked_fill(x, m, 2);
  fc_release(m);
  return r;
}
static fc_tensor *f_flip(fc_tensor *x) { return fc_flip(x, 1, (int[]){1}); }
static fc_tensor *f_roll(fc_tensor *x) { return fc_roll(x, 1, (int64_t[]){1}, (int[]){1}); }

TEST(gradients) {
  fc_manual_seed(9);
  gradcheck1("cat", f_cat);
  gradcheck1("cat of 6", f_cat6);
  gradcheck1("stack", f_stack);
  gradcheck1("index_select", f_isel);
  gradcheck1("gather", f_gather);
  gradcheck1("scatter_add", f_scatter);
  gradcheck1("masked_select", f_mselect);
  gradcheck1("masked_fill", f_mfill);
  gradcheck1("flip", f_flip);
  gradcheck1("roll", f_roll);
}

int main(void) {
  RUN(cat_and_stack);
  RUN(index_select_and_gather);
  RUN(scatter_family);
  RUN(masks_nonzero_one_hot);
  RUN(flip_and_roll);
  RUN(gradients);
  return harness_report();
}
