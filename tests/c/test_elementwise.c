/* test_elementwise.c — binary, unary and ternary ops against hand-worked
 * values and float64 libm references, on contiguous, broadcast and strided
 * inputs, with PyTorch's type promotion. */
#include "harness.h"
#include <stdlib.h>

typedef fc_tensor *(*binary_fn)(fc_tensor *, fc_tensor *);
typedef fc_tensor *(*unary_fn)(fc_tensor *);

TEST(binary_arithmetic) {
  fc_tensor *a = MK(FC_FLOAT32, S(4), 1, -2, 3, 0.5);
  fc_tensor *b = MK(FC_FLOAT32, S(4), 4, 5, -6, 2);
  EXPECT(fc_add(a, b), FC_FLOAT32, S(4), 0, 5, 3, -3, 2.5);
  EXPECT(fc_sub(a, b), FC_FLOAT32, S(4), 0, -3, -7, 9, -1.5);
  EXPECT(fc_mul(a, b), FC_FLOAT32, S(4), 0, 4, -10, -18, 1);
  EXPECT(fc_div(a, b), FC_FLOAT32, S(4), 1e-7, 0.25, -0.4, -0.5, 0.25);
  EXPECT(fc_pow(a, b), FC_FLOAT32, S(4), 1e-6, 1, -32, 1.0 / 729, 0.25);
  EXPECT(fc_maximum(a, b), FC_FLOAT32, S(4), 0, 4, 5, 3, 2);
  EXPECT(fc_minimum(a, b), FC_FLOAT32, S(4), 0, 1, -2, -6, 0.5);
  EXPECT(fc_add_scaled(a, b, -0.5), FC_FLOAT32, S(4), 0, -1, -4.5, 6, -0.5);
  fc_release(a);
  fc_release(b);
}

TEST(comparisons_and_logic) {
  fc_tensor *a = MK(FC_INT64, S(3), 1, 2, 3);
  fc_tensor *b = MK(FC_FLOAT32, S(3), 1, 2.5, 2);
  EXPECT(fc_eq(a, b), FC_BOOL, S(3), 0, 1, 0, 0);
  EXPECT(fc_ne(a, b), FC_BOOL, S(3), 0, 0, 1, 1);
  EXPECT(fc_lt(a, b), FC_BOOL, S(3), 0, 0, 1, 0);
  EXPECT(fc_le(a, b), FC_BOOL, S(3), 0, 1, 1, 0);
  EXPECT(fc_gt(a, b), FC_BOOL, S(3), 0, 0, 0, 1);
  EXPECT(fc_ge(a, b), FC_BOOL, S(3), 0, 1, 0, 1);
  fc_tensor *p = MK(FC_BOOL, S(4), 1, 1, 0, 0), *q = MK(FC_BOOL, S(4), 1, 0, 1, 0);
  EXPECT(fc_logical_and(p, q), FC_BOOL, S(4), 0, 1, 0, 0, 0);
  EXPECT(fc_logical_or(p, q), FC_BOOL, S(4), 0, 1, 1, 1, 0);
  EXPECT(fc_logical_not(b), FC_BOOL, S(3), 0, 0, 0, 0);
  EXPECT(fc_logical_not(q), FC_BOOL, S(4), 0, 0, 1, 0, 1);
  /* bool arithmetic as PyTorch: add is or, mul is and, sub is refused */
  EXPECT(fc_add(p, q), FC_BOOL, S(4), 0, 1, 1, 1, 0);
  EXPECT(fc_mul(p, q), FC_BOOL, S(4), 0, 1, 0, 0, 0);
  CHECK_ERR(fc_sub(p, q), "sub: not supported for bool");
  fc_release(p);
  fc_release(q);
  fc_release(a);
  fc_release(b);
}

TEST(broadcasting) {
  fc_tensor *col = MK(FC_FLOAT32, S(3, 1), 1, 2, 3);
  fc_tensor *row = MK(FC_FLOAT32, S(4), 10, 20, 30, 40);
  EXPECT(fc_add(col, row), FC_FLOAT32, S(3, 4), 0, 11, 21, 31, 41, 12, 22, 32, 42, 13, 23, 33, 43);
  fc_tensor *s = fc_scalar(2, FC_FLOAT32, CPU);
  EXPECT(fc_mul(s, col), FC_FLOAT32, S(3, 1), 0, 2, 4, 6);
  fc_tensor *bad = MK(FC_FLOAT32, S(3), 1, 2, 3);
  CHECK_ERR(fc_add(row, bad), "add: shapes [4] and [3] cannot broadcast (4 vs 3 in dim -1)");
  fc_tensor *e = fc_empty(2, (int64_t[]){0, 4}, FC_FLOAT32, CPU);
  fc_tensor *r = fc_add(e, row);
  CHECK(r && r->numel == 0 && r->shape[0] == 0);
  fc_release(r);
  fc_release(e);
  fc_release(bad);
  fc_release(s);
  fc_release(row);
  fc_release(col);
}

TEST(type_promotion) {
  fc_tensor *i = MK(FC_INT32, S(2), 3, -4), *l = MK(FC_INT64, S(2), 1, 2);
  EXPECT(fc_add(i, l), FC_INT64, S(2), 0, 4, -2);
  /* integer division is true division into the default float type */
  EXPECT(fc_div(i, l), FC_FLOAT32, S(2), 0, 3, -2);
  /* a 0-dim int64 does not widen int32; a 0-dim float does */
  fc_tensor *s64 = fc_scalar(2, FC_INT64, CPU), *sf = fc_scalar(0.5, FC_FLOAT64, CPU);
  EXPECT(fc_mul(i, s64), FC_INT32, S(2), 0, 6, -8);
  EXPECT(fc_mul(i, sf), FC_FLOAT64, S(2), 0, 1.5, -2);
  fc_tensor *f = MK(FC_FLOAT32, S(2), 1, 2);
  EXPECT(fc_add(f, sf), FC_FLOAT32, S(2), 0, 1.5, 2.5);
  fc_tensor *h = MK(FC_FLOAT16, S(2), 1, 2), *bf = MK(FC_BFLOAT16, S(2), 1, 2);
  EXPECT(fc_add(h, h), FC_FLOAT16, S(2), 0, 2, 4);
  EXPECT(fc_add(h, bf), FC_FLOAT32, S(2), 0, 2, 4);
  EXPECT(fc_exp(i), FC_FLOAT32, S(2), 1e-6, exp(3), exp(-4));
  EXPECT(fc_sqrt(h), FC_FLOAT16, S(2), 1e-3, 1, sqrt(2));
  fc_release(h);
  fc_release(bf);
  fc_release(f);
  fc_release(s64);
  fc_release(sf);
  fc_release(i);
  fc_release(l);
}

TEST(integer_ops_wrap_and_pow) {
  fc_tensor *a = MK(FC_INT32, S(3), 2147483647, -3, 2), *one = MK(FC_INT32, S(3), 1, 2, 10);
  EXPECT(fc_add(a, one), FC_INT32, S(3), 0, -2147483648.0, -1, 12);
  EXPECT(fc_pow(a, one), FC_INT32, S(3), 0, 2147483647, 9, 1024);
  EXPECT(fc_neg(a), FC_INT32, S(3), 0, -2147483647, 3, -2);
  EXPECT(fc_abs(a), FC_INT32, S(3), 0, 2147483647, 3, 2);
  EXPECT(fc_sign(a), FC_INT32, S(3), 0, 1, -1, 1);
  EXPECT(fc_relu(a), FC_INT32, S(3), 0, 2147483647, 0, 2);
  EXPECT(fc_clamp(a, -1, 5), FC_INT32, S(3), 0, 5, -1, 2);
  fc_release(a);
  fc_release(one);
}

TEST(nan_handling) {
  fc_tensor *a = MK(FC_FLOAT32, S(3), NAN, 1, 2), *b = MK(FC_FLOAT32, S(3), 0, NAN, 1);
  EXPECT(fc_maximum(a, b), FC_FLOAT32, S(3), 0, NAN, NAN, 2);
  EXPECT(fc_minimum(a, b), FC_FLOAT32, S(3), 0, NAN, NAN, 1);
  EXPECT(fc_relu(a), FC_FLOAT32, S(3), 0, NAN, 1, 2);
  EXPECT(fc_eq(a, a), FC_BOOL, S(3), 0, 0, 1, 1);
  fc_release(a);
  fc_release(b);
}

/* Each unary op against the libm float64 formula, float32 and float64. */
static double ref_sigmoid(double x) { return 1 / (1 + exp(-x)); }
static double ref_gelu(double x) { return 0.5 * x * (1 + erf(x / sqrt(2.0))); }
static double ref_silu(double x) { return x / (1 + exp(-x)); }
static double ref_rsqrt(double x) { return 1 / sqrt(x); }
static double ref_relu(double x) { return x > 0 ? x : 0; }
static double ref_neg(double x) { return -x; }
static double ref_sign(double x) { return (x > 0) - (x < 0); }

static void check_unary(unary_fn f, double (*ref)(double), int positive_only, const char *name) {
  double xs[8] = {-2.5, -1.0, -0.3, 0.0, 0.2, 0.7, 1.5, 3.0};
  for (int dt = 0; dt < 2; dt++) {
    int dtype = dt ? FC_FLOAT64 : FC_FLOAT32;
    double in[8], want[8];
    for (int i = 0; i < 8; i++) {
      in[i] = positive_only ? fabs(xs[i]) + 0.1 : xs[i];
      want[i] = ref(in[i]);
    }
    fc_tensor *t = mk(dtype, 1, (int64_t[]){8}, in);
    fc_tensor *r = f(t);
    double got[8];
    if (!r || fc_to_doubles(r, got) < 0) {
      harness_fail(__FILE__, __LINE__, "%s returned NULL: %s", name, fc_last_error());
    } else {
      for (int i = 0; i < 8; i++)
        if (fabs(got[i] - want[i]) > (dt ? 1e-12 : 2e-6) * (1 + fabs(want[i])))
          harness_fail(__FILE__, __LINE__, "%s(%g) = %.9g, expected %.9g", name, in[i], got[i], want[i]);
    }
    fc_release(r);
    fc_release(t);
  }
}

TEST(unary_against_libm) {
  check_unary(fc_exp, exp, 0, "exp");
  check_unary(fc_log, log, 1, "log");
  check_unary(fc_log1p, log1p, 0, "log1p");
  check_unary(fc_sqrt, sqrt, 1, "sqrt");
  check_unary(fc_rsqrt, ref_rsqrt, 1, "rsqrt");
  check_unary(fc_sin, sin, 0, "sin");
  check_unary(fc_cos, cos, 0, "cos");
  check_unary(fc_tanh, tanh, 0, "tanh");
  check_unary(fc_sigmoid, ref_sigmoid, 0, "sigmoid");
  check_unary(fc_gelu, ref_gelu, 0, "gelu");
  check_unary(fc_silu, ref_silu, 0, "silu");
  check_unary(fc_relu, ref_relu, 0, "relu");
  check_unary(fc_neg, ref_neg, 0, "neg");
  check_unary(fc_abs, fabs, 0, "abs");
  check_unary(fc_floor, floor, 0, "floor");
  check_unary(fc_ceil, ceil, 0, "ceil");
  check_unary(fc_sign, ref_sign, 0, "sign");
}

TEST(round_half_to_even_and_params) {
  fc_tensor *t = MK(FC_FLOAT32, S(5), 0.5, 1.5, 2.5, -0.5, -1.7);
  EXPECT(fc_round(t), FC_FLOAT32, S(5), 0, 0, 2, 2, -0, -2);
  EXPECT(fc_leaky_relu(t, 0.1), FC_FLOAT32, S(5), 1e-7, 0.5, 1.5, 2.5, -0.05, -0.17);
  EXPECT(fc_clamp(t, -1, 1), FC_FLOAT32, S(5), 0, 0.5, 1, 1, -0.5, -1);
  EXPECT(fc_clamp(t, -INFINITY, 0), FC_FLOAT32, S(5), 1e-7, 0, 0, 0, -0.5, -1.7);
  CHECK_ERR(fc_clamp(t, 2, 1), "min 2 is greater than max 1");
  fc_release(t);
}

TEST(inplace_ops) {
  fc_tensor *a = MK(FC_FLOAT32, S(2, 2), 1, 2, 3, 4);
  fc_tensor *row = MK(FC_FLOAT32, S(2), 10, 20);
  int64_t v0 = a->storage->version;
  CHECK(fc_add_(a, row) == 0);
  CHECK(a->storage->version > v0);
  CHECK(fc_mul_(a, row) == 0);
  CHECK(fc_exp_(row) == 0 && fc_log_(row) == 0);
  EXPECT(fc_clone(a), FC_FLOAT32, S(2, 2), 0, 110, 440, 130, 480);
  EXPECT(fc_clone(row), FC_FLOAT32, S(2), 1e-6, 10, 20);
  CHECK(fc_add_scaled_(a, row, 2) == 0);
  EXPECT(fc_clone(a), FC_FLOAT32, S(2, 2), 0, 130, 480, 150, 520);
  fc_tensor *big = fc_ones(2, (int64_t[]){3, 2}, FC_FLOAT32, CPU);
  CHECK_ERR(fc_add_(row, big), "add_: shape [3,2] cannot broadcast into the in-place target of shape [2]");
  fc_tensor *ints = MK(FC_INT64, S(2), 1, 2);
  CHECK_ERR(fc_div_(ints, ints), "div_: result type float32 cannot be stored in a int64 tensor");
  CHECK_ERR(fc_mul_(ints, row), "result type float32 cannot be stored");
  CHECK_ERR(fc_sqrt_(ints), "sqrt_: result type float32 cannot be stored");
  /* a float16 target computes in float32 and stores back */
  fc_tensor *h = MK(FC_FLOAT16, S(2), 1, 4);
  CHECK(fc_sqrt_(h) == 0 && fc_add_(h, h) == 0);
  EXPECT(fc_clone(h), FC_FLOAT16, S(2), 0, 2, 4);
  /* in place on a transposed view writes through to the base */
  fc_tensor *tr = fc_transpose(a, 0, 1);
  CHECK(fc_neg_(tr) == 0);
  EXPECT(fc_clone(a), FC_FLOAT32, S(2, 2), 0, -130, -480, -150, -520);
  fc_release(tr);
  fc_release(h);
  fc_release(ints);
  fc_release(big);
  fc_release(row);
  fc_release(a);
}

/* A large strided case runs the threaded path; check it element by element. */
TEST(large_strided_matches_naive) {
  fc_manual_seed(1);
  fc_tensor *a = fc_randn(2, (int64_t[]){300, 500}, FC_FLOAT32, CPU);
  fc_tensor *b = fc_randn(2, (int64_t[]){500, 300}, FC_FLOAT32, CPU);
  fc_tensor *bt = fc_transpose(b, 0, 1);
  fc_tensor *c = fc_mul(a, bt);
  fc_tensor *r = c ? fc_relu(c) : NULL;
  CHECK(r != NULL);
  const float *pa = fc_data_ptr(a), *pb = fc_data_ptr(b), *pr = fc_data_ptr(r);
  int bad = 0;
  for (int i = 0; i < 300 && r; i++)
    for (int j = 0; j < 500; j++) {
      float want = pa[i * 500 + j] * pb[j * 300 + i];
      if (want < 0) want = 0;
      if (pr[i * 500 + j] != want) bad++;
    }
  CHECK(bad == 0);
  fc_release(r);
  fc_release(c);
  fc_release(bt);
  fc_release(b);
  fc_release(a);
}

TEST(where_and_lerp) {
  fc_tensor *cond = MK(FC_BOOL, S(2, 1), 1, 0);
  fc_tensor *a = MK(FC_FLOAT32, S(3), 1, 2, 3), *b = MK(FC_INT64, S(1), -1);
  EXPECT(fc_where(cond, a, b), FC_FLOAT32, S(2, 3), 0, 1, 2, 3, -1, -1, -1);
  fc_tensor *fcond = MK(FC_FLOAT32, S(1), 1);
  CHECK_ERR(fc_where(fcond, a, b), "condition must be a bool tensor, got float32");
  fc_tensor *end = MK(FC_FLOAT32, S(3), 3, 4, 5), *w = MK(FC_FLOAT32, S(3), 0, 0.5, 1);
  EXPECT(fc_lerp(a, end, w), FC_FLOAT32, S(3), 0, 1, 3, 5);
  fc_tensor *half_w = fc_scalar(0.25, FC_FLOAT32, CPU);
  CHECK(fc_lerp_(a, end, half_w) == 0);
  EXPECT(fc_clone(a), FC_FLOAT32, S(3), 0, 1.5, 2.5, 3.5);
  CHECK_ERR(fc_lerp(a, b, w), "start and end must be float tensors of one dtype");
  fc_release(half_w);
  fc_release(end);
  fc_release(w);
  fc_release(fcond);
  fc_release(cond);
  fc_release(a);
  fc_release(b);
}

TEST(device_and_null_errors) {
  fc_tensor *a = MK(FC_FLOAT32, S(1), 1);
  CHECK_ERR(fc_add(a, NULL), "add: tensor is NULL");
  fc_tensor fake = *a;
  fake.device.type = FC_CUDA;
  CHECK_ERR(fc_add(a, &fake), fc_cuda_is_available() ? "different devices" : "CUDA backend is not loaded");
  fc_release(a);
}

int main(void) {
  RUN(binary_arithmetic);
  RUN(comparisons_and_logic);
  RUN(broadcasting);
  RUN(type_promotion);
  RUN(integer_ops_wrap_and_pow);
  RUN(nan_handling);
  RUN(unary_against_libm);
  RUN(round_half_to_even_and_params);
  RUN(inplace_ops);
  RUN(large_strided_matches_naive);
  RUN(where_and_lerp);
  RUN(device_and_null_errors);
  return harness_report();
}
