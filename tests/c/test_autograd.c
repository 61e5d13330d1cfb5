/* test_autograd.c — the engine, and every differentiable op's backward
 * against central finite differences in float64. */
#include "harness.h"
#include <stdbool.h>
#include <stdlib.h>

/* Finite-difference step; the dtype-cast check needs one float32 can resolve. */
static double step = 1e-6;

typedef fc_tensor *(*fn_of)(fc_tensor **in, void *ctx);
/* Failures name the op; the line reported is this one. */
static void gradcheck(const char *name, fn_of f, int n, fc_tensor **in, void *ctx) {
  check_gradients(__FILE__, __LINE__, name, f, n, in, ctx, step, 1e-5, 1);
}

static fc_tensor *rnd(int ndim, const int64_t *shape) {
  return fc_randn(ndim, shape, FC_FLOAT64, CPU);
}
/* Values bounded away from 0 and ties, for log/sqrt/div/pow. */
static fc_tensor *positive(int ndim, const int64_t *shape) {
  fc_tensor *t = fc_rand(ndim, shape, FC_FLOAT64, CPU);
  fc_tensor *h = fc_scalar(0.5, FC_FLOAT64, CPU);
  fc_add_(t, h);
  fc_release(h);
  return t;
}

typedef fc_tensor *(*binary_fn)(fc_tensor *, fc_tensor *);
typedef fc_tensor *(*unary_fn)(fc_tensor *);
static fc_tensor *apply_binary(fc_tensor **in, void *ctx) { return ((binary_fn)ctx)(in[0], in[1]); }
static fc_tensor *apply_unary(fc_tensor **in, void *ctx) { return ((unary_fn)ctx)(in[0]); }

#define SHP(...) (int64_t[]){__VA_ARGS__}

static void check_binary(const char *name, binary_fn f, bool pos) {
  fc_tensor *(*make)(int, const int64_t *) = pos ? positive : rnd;
  /* same shape; broadcasting both ways; a transposed operand */
  fc_tensor *a = make(2, SHP(3, 4)), *b = make(2, SHP(3, 4));
  gradcheck(name, apply_binary, 2, (fc_tensor *[]){a, b}, (void *)f);
  fc_tensor *col = make(2, SHP(3, 1)), *row = make(1, SHP(4));
  gradcheck(name, apply_binary, 2, (fc_tensor *[]){col, row}, (void *)f);
  fc_tensor *base = make(2, SHP(4, 3)), *tr = fc_transpose(base, 0, 1);
  gradcheck(name, apply_binary, 2, (fc_tensor *[]){tr, a}, (void *)f);
  fc_release(a), fc_release(b), fc_release(col), fc_release(row), fc_release(tr), fc_release(base);
}

TEST(binary_grads) {
  fc_manual_seed(11);
  check_binary("add", fc_add, false);
  check_binary("sub", fc_sub, false);
  check_binary("mul", fc_mul, false);
  check_binary("div", fc_div, true);
  check_binary("pow", fc_pow, true);
  check_binary("maximum", fc_maximum, false);
  check_binary("minimum", fc_minimum, false);
}

static fc_tensor *axpy(fc_tensor **in, void *ctx) { return fc_add_scaled(in[0], in[1], -2.5); }
static fc_tensor *leaky(fc_tensor **in, void *ctx) { return fc_leaky_relu(in[0], 0.2); }
static fc_tensor *clamp(fc_tensor **in, void *ctx) { return fc_clamp(in[0], -0.5, 0.7); }
static fc_tensor *lerp(fc_tensor **in, void *ctx) { return fc_lerp(in[0], in[1], in[2]); }
static fc_tensor *where(fc_tensor **in, void *ctx) { return fc_where(ctx, in[0], in[1]); }

TEST(unary_grads) {
  fc_manual_seed(12);
  struct { const char *name; unary_fn f; bool pos; } ops[] = {
      {"neg", fc_neg, 0},     {"abs", fc_abs, 0},         {"exp", fc_exp, 0},   {"log", fc_log, 1},
      {"log1p", fc_log1p, 1}, {"sqrt", fc_sqrt, 1},       {"rsqrt", fc_rsqrt, 1}, {"sin", fc_sin, 0},
      {"cos", fc_cos, 0},     {"tanh", fc_tanh, 0},       {"sigmoid", fc_sigmoid, 0},
      {"relu", fc_relu, 0},   {"gelu", fc_gelu, 0},       {"silu", fc_silu, 0},
      {"floor", fc_floor, 0}, {"sign", fc_sign, 0}};
  for (size_t i = 0; i < sizeof ops / sizeof *ops; i++) {
    fc_tensor *base = ops[i].pos ? positive(2, SHP(4, 3)) : rnd(2, SHP(4, 3));
    fc_tensor *tr = fc_transpose(base, 0, 1);
    gradcheck(ops[i].name, apply_unary, 1, &tr, (void *)ops[i].f);
    fc_release(tr), fc_release(base);
  }
  fc_tensor *x = rnd(1, SHP(7)), *y = rnd(1, SHP(7)), *w = fc_rand(1, SHP(7), FC_FLOAT64, CPU);
  gradcheck("leaky_relu", leaky, 1, &x, NULL);
  gradcheck("clamp", clamp, 1, &x, NULL);
  gradcheck("add_scaled", axpy, 2, (fc_tensor *[]){x, y}, NULL);
  gradcheck("lerp", lerp, 3, (fc_tensor *[]){x, y, w}, NULL);
  fc_tensor *cond = fc_gt(w, y);
  gradcheck("where", where, 2, (fc_tensor *[]){x, y}, cond);
  fc_release(cond), fc_release(x), fc_release(y), fc_release(w);
}

static fc_tensor *view_chain(fc_tensor **in, void *ctx) {
  /* [2,3,4] -> permute -> reshape -> narrow -> select -> unsqueeze/expand */
  fc_tensor *p = fc_permute(in[0], 3, (int[]){2, 0, 1});           /* [4,2,3] */
  fc_tensor *r = fc_reshape(p, 2, (int64_t[]){4, 6});              /* copy: not viewable */
  fc_tensor *n = fc_narrow(r, 1, 1, 4);                            /* [4,4] */
  fc_tensor *s = fc_select(n, 0, 2);                               /* [4] */
  fc_tensor *u = fc_unsqueeze(s, 0);                               /* [1,4] */
  fc_tensor *e = fc_expand(u, 2, (int64_t[]){3, 4});               /* [3,4] */
  fc_tensor *sl = fc_slice(r, 0, 0, 4, 2);                         /* [2,6] */
  fc_tensor *f = fc_flatten(sl, 0, -1);                            /* [12] */
  fc_tensor *v = fc_view(f, 2, (int64_t[]){3, 4});
  fc_tensor *sq = fc_squeeze(u, 0);
  fc_tensor *m = fc_mul(e, v);
  fc_tensor *out = fc_add(m, sq);
  fc_release(p), fc_release(r), fc_release(n), fc_release(s), fc_release(u), fc_release(e);
  fc_release(sl), fc_release(f), fc_release(v), fc_release(sq), fc_release(m);
  return out;
}

static fc_tensor *casts(fc_tensor **in, void *ctx) {
  fc_tensor *f = fc_to_dtype(in[0], FC_FLOAT32), *d = fc_to_dtype(f, FC_FLOAT64);
  fc_tensor *t = fc_transpose(d, 0, 1), *c = fc_contiguous(t), *k = fc_clone(c);
  fc_release(f), fc_release(d), fc_release(t), fc_release(c);
  return k;
}

TEST(view_grads) {
  fc_manual_seed(13);
  fc_tensor *x = rnd(3, SHP(2, 3, 4));
  gradcheck("views", view_chain, 1, &x, NULL);
  fc_release(x);
  /* float32 round trip loses precision: check against a float32-exact input */
  fc_tensor *y = fc_arange(0, 6, 1, FC_FLOAT64, CPU), *y2 = fc_view(y, 2, (int64_t[]){2, 3});
  fc_tensor *yy = fc_clone(y2);
  step = 1.0 / 64; /* the function is linear, so a large step is exact */
  gradcheck("casts", casts, 1, &yy, NULL);
  step = 1e-6;
  fc_release(yy), fc_release(y2), fc_release(y);
}

TEST(accumulation_and_reuse) {
  /* x used three times: grads meet at x and add up */
  fc_tensor *x = MK(FC_FLOAT64, S(2), 1.5, -2);
  fc_set_requires_grad(x, 1);
  fc_tensor *y = fc_mul(x, x), *z = fc_add(y, x); /* z = x^2 + x, dz/dx = 2x + 1 */
  fc_tensor *g = fc_ones(1, (int64_t[]){2}, FC_FLOAT64, CPU);
  CHECK(fc_backward(z, g, 1) == 0);
  EXPECT(fc_get_grad(x), FC_FLOAT64, S(2), 1e-12, 4, -3);
  /* retain_graph: a second pass accumulates into .grad */
  CHECK(fc_backward(z, g, 0) == 0);
  EXPECT(fc_get_grad(x), FC_FLOAT64, S(2), 1e-12, 8, -6);
  CHECK_ERR(fc_backward(z, g, 0), "a second time");
  CHECK(strcmp(fc_grad_fn_name(z), "add") == 0 && fc_grad_fn_name(x) == NULL && fc_is_leaf(x));
  fc_release(g), fc_release(z), fc_release(y), fc_release(x);
}

TEST(grad_mode_and_errors) {
  fc_tensor *x = MK(FC_FLOAT32, S(2), 1, 2), *i = MK(FC_INT64, S(2), 1, 2);
  CHECK_ERR(fc_set_requires_grad(i, 1), "only floating point tensors can require grad, got int64");
  fc_set_requires_grad(x, 1);
  fc_set_grad_enabled(0);
  fc_tensor *y = fc_exp(x);
  CHECK(y && !y->requires_grad && y->grad_fn == NULL);
  CHECK(fc_mul_(x, x) == 0); /* in place under no-grad is fine (optimizer steps) */
  fc_set_grad_enabled(1);
  CHECK_ERR(fc_add_(x, x), "in-place op on a tensor that requires grad");
  CHECK_ERR(fc_fill_(x, 0), "fill_: in-place op on a tensor that requires grad");
  CHECK_ERR(fc_backward(y, NULL, 0), "does not require grad");
  fc_tensor *z = fc_exp(x);
  CHECK_ERR(fc_backward(z, NULL, 0), "grad can be implicit only for a single-element output");
  CHECK_ERR(fc_set_requires_grad(z, 0), "only leaf tensors");
  fc_tensor *d = fc_detach(z);
  CHECK(d && !d->requires_grad && d->storage == z->storage);
  CHECK_ERR(fc_as_strided(z, 1, (int64_t[]){1}, (int64_t[]){1}, 0), "not differentiable");
  fc_release(d), fc_release(z), fc_release(y), fc_release(i), fc_release(x);
}

TEST(modified_saved_tensor_is_detected) {
  fc_tensor *w = MK(FC_FLOAT32, S(2), 1, 2), *x = MK(FC_FLOAT32, S(2), 3, 4);
  fc_set_requires_grad(w, 1);
  fc_tensor *y = fc_mul(w, x); /* saves x */
  CHECK(fc_add_(x, x) == 0);   /* x does not require grad, so this is allowed... */
  fc_tensor *g = fc_ones(1, (int64_t[]){2}, FC_FLOAT32, CPU);
  CHECK_ERR(fc_backward(y, g, 0), "saved by mul was modified in place"); /* ...but caught */
  fc_release(g), fc_release(y), fc_release(x), fc_release(w);
}

TEST(long_chain_frees_without_recursion) {
  fc_tensor *x = MK(FC_FLOAT32, S(1), 1);
  fc_set_requires_grad(x, 1);
  fc_tensor *y = fc_retain(x);
  for (int i = 0; i < 200000; i++) {
    fc_tensor *z = fc_neg(y);
    fc_release(y);
    y = z;
  }
  CHECK(fc_backward(y, NULL, 0) == 0);
  EXPECT(fc_get_grad(x), FC_FLOAT32, S(1), 0, 1);
  fc_release(y); /* releases 200000 nodes iteratively */
  fc_release(x);
}

int main(void) {
  RUN(binary_grads);
  RUN(unary_grads);
  RUN(view_grads);
  RUN(accumulation_and_reuse);
  RUN(grad_mode_and_errors);
  RUN(modified_saved_tensor_is_detected);
  RUN(long_chain_frees_without_recursion);
  return harness_report();
}
