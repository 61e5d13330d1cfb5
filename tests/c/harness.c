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
  double *got = malloc(sizeof(double) * (size_t)(t->numel + 1));
  fc_to_doubles(t, got);
  for (int64_t i = 0; i < t->numel; i++) {
    double a = got[i], b = vals[i];
    int ok = (isnan(a) && isnan(b)) || a == b || fabs(a - b) <= tol * (1 + fabs(b));
    if (!ok) { harness_fail(file, line, "element %lld = %.9g, expected %.9g", (long long)i, a, b); break; }
  }
  free(got);
  fc_release(t);
}
