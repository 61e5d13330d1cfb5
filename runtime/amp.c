/* amp.c — the one kernel dynamic loss scaling needs: unscale a gradient in
 * place and say whether it held an inf or a NaN (PyTorch's
 * _amp_foreach_non_finite_check_and_unscale_, one tensor at a time).
 *
 * Autocast itself is a Lua-level policy (lua/fastc/amp.lua): it only decides
 * which dtype each op's inputs are cast to, and the casts are ordinary
 * fc_to_dtype calls that autograd records. */
#include "internal.h"

/* Set by any thread that meets a non-finite value; several threads may
 * write it, so the store is atomic. */
typedef struct unscale_ctx { float inv32; double inv64; int found; } unscale_ctx;

static void mark_found(unscale_ctx *c) { __atomic_store_n(&c->found, 1, __ATOMIC_RELAXED); }

/* The multiply runs on every element whatever it holds, as in PyTorch: the
 * step is skipped anyway when something was not finite. */
static void unscale_f32(char **p, const int64_t *s, int64_t n, void *ctx) {
  unscale_ctx *c = ctx;
  bool bad = false;
  if (s[0] == 4) {
    float *x = (float *)p[0];
    for (int64_t i = 0; i < n; i++) {
      bad |= !isfinite(x[i]);
      x[i] *= c->inv32;
    }
  } else {
    for (int64_t i = 0; i < n; i++) {
      float *x = &AT(p[0], s[0], i, float);
      bad |= !isfinite(*x);
      *x *= c->inv32;
    }
  }
  if (bad) mark_found(c);
}

static void unscale_f64(char **p, const int64_t *s, int64_t n, void *ctx) {
  unscale_ctx *c = ctx;
  bool bad = false;
  for (int64_t i = 0; i < n; i++) {
    double *x = &AT(p[0], s[0], i, double);
    bad |= !isfinite(*x);
    *x *= c->inv64;
  }
  if (bad) mark_found(c);
}

/* Any device: t *= inv, then sum(t * 0) is NaN exactly when t held an inf or
 * a NaN (inf * 0 and NaN * 0 are NaN, every finite product is 0). Built from
 * ops every backend has, so a device without the fused kernel still works. */
static int unscale_composed(fc_tensor *t, double inv) {
  fc_tensor *s = fc_scalar(inv, t->dtype, t->device), *zero = NULL, *prod = NULL, *sum = NULL;
  int rc = -1;
  double v;
  if (!s || fc_mul_(t, s) < 0) goto done;
  zero = fc_scalar(0, t->dtype, t->device);
  prod = zero ? fc_mul(t, zero) : NULL;
  sum = prod ? fc_sum(prod, 0, NULL, 0) : NULL;
  if (sum && fc_item(sum, &v) == 0) rc = isnan(v) ? 1 : 0;
done:
  fc_release(s); fc_release(zero); fc_release(prod); fc_release(sum);
  return rc;
}

int fc_amp_unscale_(fc_tensor *t, double inv_scale) {
  const char *op = "amp_unscale_";
  if (check_defined(op, t, "gradient") < 0) return -1;
  if (t->dtype != FC_FLOAT32 && t->dtype != FC_FLOAT64)
    FAIL_INT("%s: gradients must be float32 or float64 (float32 master weights), got %s; "
             "keep the parameters in float32 and let autocast lower the ops", op, DTYPE(t));
  if (!isfinite(inv_scale)) FAIL_INT("%s: the inverse scale must be finite, got %g", op, inv_scale);
  /* other devices: the composed ops check their own kernels */
  if (t->device.type != FC_CPU) return unscale_composed(t, inv_scale);
  bump_version(t);
  /* float32 gradients are scaled by the float32 inverse, as PyTorch does. */
  unscale_ctx c = {(float)inv_scale, inv_scale, 0};
  iter it;
  iter_init(&it, 1, (fc_tensor *const[]){t});
  iter_run(&it, t->dtype == FC_FLOAT32 ? unscale_f32 : unscale_f64, &c);
  return c.found;
}
