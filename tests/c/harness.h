/* harness.h — a small test harness: each TEST is one pass or one fail. */
#ifndef FASTC_HARNESS_H
#define FASTC_HARNESS_H
#include "fastc.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

extern int harness_failed_checks;
void harness_fail(const char *file, int line, const char *fmt, ...);
void harness_run(const char *name, void (*fn)(void));
int harness_report(void);

#define TEST(name) static void name(void)
#define RUN(name) harness_run(#name, name)
#define CHECK(c) do { if (!(c)) harness_fail(__FILE__, __LINE__, "%s", #c); } while (0)
#define CHECK_NEAR(a, b, tol) do { double a_ = (a), b_ = (b); \
  if (!(fabs(a_ - b_) <= (tol) * (1 + fabs(b_))) && !(isnan(a_) && isnan(b_))) \
    harness_fail(__FILE__, __LINE__, "%s = %.9g, expected %.9g", #a, a_, b_); } while (0)
/* The call must fail (NULL or -1) with an error containing `needle`. */
#define CHECK_ERR(call, needle) do { int failed_ = check_failed_call((call)); \
  const char *e_ = fc_last_error(); \
  if (!failed_) harness_fail(__FILE__, __LINE__, "%s succeeded, expected an error", #call); \
  else if (!strstr(e_, needle)) harness_fail(__FILE__, __LINE__, "error '%s' lacks '%s'", e_, needle); \
} while (0)
#define check_failed_call(x) _Generic((x), fc_tensor *: harness_null_and_free, default: harness_negative)(x)
int harness_null_and_free(fc_tensor *t);
int harness_negative(long rc);

extern const fc_device CPU;
/* A tensor of `dtype` holding `vals` (row-major) in the given shape. */
fc_tensor *mk(int dtype, int ndim, const int64_t *shape, const double *vals);
#define MK(dtype, shape, ...) mk(dtype, sizeof((int64_t[])shape) / sizeof(int64_t), \
                                  (int64_t[])shape, (double[]){__VA_ARGS__})
#define S(...) {__VA_ARGS__}
/* Checks shape, then every element within tol; releases t. */
void expect_tensor(const char *file, int line, fc_tensor *t, int dtype, int ndim,
                   const int64_t *shape, const double *vals, double tol);
#define EXPECT(t, dtype, shape, tol, ...) expect_tensor(__FILE__, __LINE__, t, dtype, \
  sizeof((int64_t[])shape) / sizeof(int64_t), (int64_t[])shape, (double[]){__VA_ARGS__}, tol)
/* t's values as a malloc'd array of doubles (the caller frees it). */
double *tensor_values(const fc_tensor *t);
/* Every element of t within tol (relative; NaN matches NaN) of want[0..n);
 * releases t. */
void expect_values(const char *file, int line, fc_tensor *t, const double *want, int64_t n, double tol);
#define EXPECT_VALUES(t, want, n, tol) expect_values(__FILE__, __LINE__, t, want, n, tol)
#define EXPECT0(t, dtype, tol, v) expect_tensor(__FILE__, __LINE__, t, dtype, 0, NULL, (double[]){v}, tol)

/* ---- gradient checks -------------------------------------------------------
 * L = sum(f(inputs) * G) for a random G: dL/dx from backward must match the
 * central difference (L(x + h) - L(x - h)) / 2h, within tol relative, on
 * every `stride`-th element of each input (float64, possibly strided).
 * The inputs are set to require grad; their grads are cleared after. */
typedef fc_tensor *(*grad_fn)(fc_tensor **inputs, void *ctx);
void check_gradients(const char *file, int line, const char *name, grad_fn f, int n, fc_tensor **inputs,
                     void *ctx, double h, double tol, int stride);
#define GRADCHECK(name, f, n, inputs, ctx) \
  check_gradients(__FILE__, __LINE__, name, f, n, inputs, ctx, 1e-6, 1e-5, 1)
/* For a function of one tensor, passed as ctx. */
typedef fc_tensor *(*unary_grad_fn)(fc_tensor *x);
fc_tensor *apply_one(fc_tensor **inputs, void *ctx);
#endif
