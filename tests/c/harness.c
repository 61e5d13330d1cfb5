#include "harness.h"
#include <stdarg.h>
#include <stdlib.h>

int harness_failed_checks;
static int passed, failed;
static const char *current;
const fc_device CPU = {FC_CPU, 0};

void harness_fail(const char *file, int line, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "  FAIL %s (%s:%d): ", current, file, line);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n");
  harness_failed_checks++;
}

void harness_run(const char *name, void (*fn)(void)) {
  int before = harness_failed_checks;
  current = name;
  fn();
  if (harness_failed_checks == before) passed++;
  else failed++;
}

int harness_report(void) {
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}

int harness_null_and_free(fc_tensor *t) {
  if (!t) return 1;
  fc_release(t);
  return 0;
}
int harness_negative(long rc) { return rc < 0; }

fc_tensor *mk(int dtype, int ndim, const int64_t *shape, const double *vals) {
  fc_tensor *t = fc_from_buffer(vals, FC_FLOAT64, ndim, shape, dtype, CPU);
  if (!t) { fprintf(stderr, "mk: %s\n", fc_last_error()); abort(); }
  return t;
}

void expect_tensor(const char *file, int line, fc_tensor *t, int dtype, int ndim,
                   const int64_t *shape, const double *vals, double tol) {
  if (!t) { harness_fail(file, line, "got NULL: %s", fc_last_error()); return; }
  if (t->dtype != dtype)
    harness_fail(file, line, "dtype %s, expected %s", fc_dtype_name(t->dtype), fc_dtype_name(dtype));
  int same = t->ndim == ndim;
  for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
  if (!same) {
    harness_fail(file, line, "shape mismatch (ndim %d vs %d)", t->ndim, ndim);
    fc_release(t);
    return;
  }
  double *got = tensor_values(t);
  for (int64_t i = 0; i < t->numel; i++) {
    double a = got[i], b = vals[i];
    int ok = (isnan(a) && isnan(b)) || a == b || fabs(a - b) <= tol * (1 + fabs(b));
    if (!ok) { harness_fail(file, line, "element %lld = %.9g, expected %.9g", (long long)i, a, b); break; }
  }
  free(got);
  fc_release(t);
}

double *tensor_values(const fc_tensor *t) {
  double *v = malloc(sizeof(double) * (size_t)(t->numel + 1));
  if (v) fc_to_doubles(t, v);
  return v;
}

void expect_values(const char *file, int line, fc_tensor *t, const double *want, int64_t n, double tol) {
  if (!t) {
    harness_fail(file, line, "got NULL: %s", fc_last_error());
    return;
  }
  if (t->numel != n) harness_fail(file, line, "numel %lld, expected %lld", (long long)t->numel, (long long)n);
  double *got = tensor_values(t);
  for (int64_t i = 0; i < n && i < t->numel; i++)
    if (got[i] != want[i] && !(fabs(got[i] - want[i]) <= tol * (1 + fabs(want[i]))) &&
        !(isnan(got[i]) && isnan(want[i]))) {
      harness_fail(file, line, "[%lld] = %.12g, expected %.12g", (long long)i, got[i], want[i]);
      break;
    }
  free(got);
  fc_release(t);
}

fc_tensor *apply_one(fc_tensor **inputs, void *ctx) { return ((unary_grad_fn)ctx)(inputs[0]); }

static double weighted_sum(fc_tensor *out, const double *g) {
  double *v = malloc(sizeof(double) * (size_t)(out->numel + 1)), s = 0;
  fc_to_doubles(out, v);
  for (int64_t i = 0; i < out->numel; i++) s += v[i] * g[i];
  free(v);
  return s;
}

static double loss_at(grad_fn f, fc_tensor **in, void *ctx, const double *g) {
  fc_set_grad_enabled(0);
  fc_tensor *out = f(in, ctx);
  fc_set_grad_enabled(1);
  double s = out ? weighted_sum(out, g) : NAN;
  fc_release(out);
  return s;
}

/* The k-th logical element of a float64 tensor, wherever its strides put it. */
static double *element_at(fc_tensor *t, int64_t flat) {
  int64_t off = t->offset;
  for (int d = t->ndim - 1; d >= 0; d--) {
    off += (flat % t->shape[d]) * t->stride[d];
    flat /= t->shape[d];
  }
  return (double *)t->storage->data + off;
}

void check_gradients(const char *file, int line, const char *name, grad_fn f, int n, fc_tensor **in,
                     void *ctx, double h, double tol, int stride) {
  for (int i = 0; i < n; i++) fc_set_requires_grad(in[i], 1);
  fc_tensor *out = f(in, ctx);
  if (!out) {
    harness_fail(file, line, "%s: forward failed: %s", name, fc_last_error());
    return;
  }
  fc_tensor *G = fc_randn(out->ndim, out->shape, FC_FLOAT64, CPU);
  double *g = malloc(sizeof(double) * (size_t)(out->numel + 1));
  fc_to_doubles(G, g);
  if (fc_backward(out, G, 0) < 0) harness_fail(file, line, "%s: backward failed: %s", name, fc_last_error());
  for (int i = 0; i < n; i++) {
    fc_tensor *grad = fc_get_grad(in[i]);
    double *an = malloc(sizeof(double) * (size_t)(in[i]->numel + 1));
    if (grad) fc_to_doubles(grad, an);
    for (int64_t k = 0; k < in[i]->numel; k += stride) {
      double *x = element_at(in[i], k), x0 = *x;
      *x = x0 + h;
      double up = loss_at(f, in, ctx, g);
      *x = x0 - h;
      double down = loss_at(f, in, ctx, g);
      *x = x0;
      double num = (up - down) / (2 * h), ana = grad ? an[k] : 0;
      if (fabs(num - ana) > tol * (1 + fabs(num))) {
        harness_fail(file, line, "%s: d/d input %d [%lld]: backward %.9g, numeric %.9g", name, i,
                     (long long)k, ana, num);
        break;
      }
    }
    free(an);
    fc_release(grad);
    fc_set_grad(in[i], NULL);
  }
  free(g);
  fc_release(G);
  fc_release(out);
}
