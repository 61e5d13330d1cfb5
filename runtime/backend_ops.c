/* backend_ops.c — CUDA paths of ops whose CPU code cannot hand its inner
 * loop to the plugin: fused cross-entropy (one kernel per direction instead
 * of log_softmax, gather and a reduction).
 *
 * Semantics are the CPU's (ops_loss.c): class-index targets counted from
 * base, optional per-class weights, label smoothing, ignore_index, logits
 * [C], [N, C] or [N, C, d1, ...], and the mean divided by the weight of the
 * targets that count. Class-probability targets have no CUDA kernel yet. */
#include "backend.h"

/* A one-element device tensor's value on the host (a sync); -1 on error. */
static int scalar_of(fc_tensor *t, double *v) { return t ? fc_item(t, v) : -1; }

typedef struct xent_args {
  int64_t N, C, S, base, ignore;
  double eps;
  int reduction, dtype;
} xent_args;

static int check_args(const xent_args *a, fc_tensor *logits, fc_tensor *target, fc_tensor *weight) {
  const char *op = "cross_entropy";
  if (a->reduction < FC_REDUCE_NONE || a->reduction > FC_REDUCE_SUM)
    FAIL_INT("%s: reduction must be none (0), mean (1) or sum (2), got %d", op, a->reduction);
  if (!is_float_dtype(logits->dtype))
    FAIL_INT("%s: input must be floating point, got %s", op, DTYPE(logits));
  if (logits->ndim == 0)
    FAIL_INT("%s: input must have a class dim ([C], [N,C] or [N,C,d1,...]), got shape []", op);
  if (is_float_dtype(target->dtype))
    FAIL_INT("%s: class-probability targets have no CUDA kernel yet; pass int64 class indices", op);
  if (target->dtype != FC_INT64 && target->dtype != FC_INT32)
    FAIL_INT("%s: target must hold class indices (int64), got %s", op, DTYPE(target));
  bool fits = target->ndim == (logits->ndim == 1 ? 0 : logits->ndim - 1);
  for (int d = 0; fits && d < target->ndim; d++)
    fits = target->shape[d] == logits->shape[d == 0 ? 0 : d + 1];
  if (!fits)
    FAIL_INT("%s: target of shape %s does not match input of shape %s", op, SHAPE(target),
             SHAPE(logits));
  if (weight && (!is_float_dtype(weight->dtype) || weight->ndim != 1 || weight->shape[0] != a->C))
    FAIL_INT("%s: weight must be a float tensor with one entry per class (%lld), got %s %s", op,
             (long long)a->C, DTYPE(weight), SHAPE(weight));
  if (!(a->eps >= 0 && a->eps <= 1))
    FAIL_INT("%s: label_smoothing must be between 0.0 and 1.0, got %g", op, a->eps);
  return 0;
}

static int xent_backward(fc_node *n, fc_tensor *g, fc_tensor **gi);

/* Reduces the per-row losses as the CPU does: none keeps them, sum adds
 * them, mean divides the sum by the weight of the rows that count. */
static fc_tensor *reduce_rows(fc_tensor *loss, int reduction, double denom) {
  if (reduction == FC_REDUCE_NONE) return fc_retain(loss);
  fc_tensor *total = fc_sum(loss, 0, NULL, 0);
  if (!total || reduction == FC_REDUCE_SUM) return total;
  fc_tensor *d = fc_scalar(denom, loss->dtype, loss->device);
  fc_tensor *mean = d ? fc_div(total, d) : NULL;
  fc_release(d), fc_release(total);
  return mean;
}

static fc_tensor *record_xent(fc_tensor *out, fc_tensor *logits, const xent_args *a, double denom,
                              double wsum, fc_tensor *x, fc_tensor *tgt, fc_tensor *lse, fc_tensor *w) {
  if (!grad_needed(1, &logits)) return out;
  fc_node *n = record("cross_entropy", xent_backward, out, 1, &logits);
  if (!n) {
    fc_release(out);
    return NULL;
  }
  fc_tensor *slots[4] = {x, tgt, lse, w};
  for (int i = 0; i < 4; i++)
    if (slots[i]) n->nsaved = i, node_save(n, slots[i]);
  n->nsaved = 4;
  n->iarg[0] = a->reduction, n->iarg[1] = a->base, n->iarg[2] = a->ignore;
  n->iarg[3] = a->N, n->iarg[4] = a->C, n->iarg[5] = a->S;
  n->arg[0] = a->eps, n->arg[1] = denom, n->arg[2] = wsum;
  return out;
}

/* The first row with a bad target, reported as the CPU does. */
static void report_bad(const xent_args *a, fc_tensor *tgt, int64_t row) {
  double v = 0;
  int64_t rows = tgt->numel;
  fc_tensor *flat = fc_reshape(tgt, 1, &rows);
  if (flat) fc_get(flat, (int64_t[]){row}, &v);
  fc_release(flat);
  fc_set_error("cross_entropy: target %lld is out of range for %lld classes (expected %lld to %lld)",
               (long long)v, (long long)a->C, (long long)a->base, (long long)(a->base + a->C - 1));
}

fc_tensor *cuda_cross_entropy(fc_tensor *logits, fc_tensor *target, fc_tensor *weight,
                              int64_t ignore_index, double label_smoothing, int reduction,
                              int64_t base) {
  fc_tensor *all[3] = {logits, target, weight};
  if (check_same_device("cross_entropy", weight ? 3 : 2, (const fc_tensor *const *)all) < 0)
    return NULL;
  xent_args a = {.base = base, .ignore = ignore_index, .eps = label_smoothing,
                 .reduction = reduction};
  a.N = logits->ndim == 1 ? 1 : logits->shape[0];
  a.C = logits->ndim == 1 ? logits->shape[0] : logits->shape[1];
  a.S = 1;
  for (int d = 2; d < logits->ndim; d++) a.S *= logits->shape[d];
  if (check_args(&a, logits, target, weight) < 0) return NULL;
  a.dtype = logits->dtype == FC_FLOAT64 ? FC_FLOAT64 : FC_FLOAT32;
  int64_t rows = a.N * a.S, rshape[FC_MAX_DIMS];
  int nr = logits->ndim == 1 ? 0 : logits->ndim - 1;
  for (int d = 0; d < nr; d++) rshape[d] = logits->shape[d == 0 ? 0 : d + 1];

  int previous = grad_mode_push(false);
  fc_tensor *x = dense_in(logits, a.dtype), *tgt = x ? dense_in(target, FC_INT64) : NULL;
  fc_tensor *w = tgt && weight ? dense_in(weight, a.dtype) : NULL;
  fc_tensor *lse = fc_empty(1, &rows, a.dtype, logits->device);
  fc_tensor *loss = fc_empty(nr, rshape, a.dtype, logits->device);
  fc_tensor *rw = fc_empty(1, &rows, a.dtype, logits->device);
  fc_tensor *bad = fc_full(0, NULL, INT32_MAX, FC_INT32, logits->device);
  fc_tensor *out = NULL, *wtotal = NULL, *counted = NULL;
  double wsum = (double)a.C, denom = (double)rows;
  bool ready = tgt && (w || !weight) && lse && loss && rw && bad;
  if (ready && w) ready = scalar_of(wtotal = fc_sum(w, 0, NULL, 0), &wsum) == 0;
  if (ready && rows > 0) {
    bk_xent k = {.dtype = a.dtype, .N = a.N, .C = a.C, .S = a.S, .base = a.base,
                 .ignore = a.ignore, .eps = a.eps, .wsum = wsum, .x = elem_ptr(x),
                 .weight = w ? elem_ptr(w) : NULL, .target = (const int64_t *)elem_ptr(tgt),
                 .lse = elem_ptr(lse), .loss = elem_ptr(loss), .row_weight = elem_ptr(rw),
                 .bad = (int *)elem_ptr(bad)};
    double first_bad = INT32_MAX;
    ready = backend_get()->xent_forward(logits->device.index, &k) == 0 &&
            scalar_of(bad, &first_bad) == 0;
    if (ready && first_bad != INT32_MAX) {
      report_bad(&a, tgt, (int64_t)first_bad);
      ready = false;
    }
    if (ready) ready = scalar_of(counted = fc_sum(rw, 0, NULL, 0), &denom) == 0;
  } else if (ready) {
    fc_fill_(loss, 0);
  }
  if (ready) out = reduce_rows(loss, reduction, denom);
  if (out && out->dtype != logits->dtype) {
    fc_tensor *h = fc_to_dtype(out, logits->dtype);
    fc_release(out);
    out = h;
  }
  grad_mode_pop(previous);
  if (out) out = record_xent(out, logits, &a, denom, wsum, x, tgt, lse, w);
  fc_tensor *tmp[] = {x, tgt, w, lse, loss, rw, bad, wtotal, counted};
  for (size_t i = 0; i < sizeof tmp / sizeof *tmp; i++) fc_release(tmp[i]);
  return out;
}

static int xent_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  fc_tensor *x = n->saved[0], *tgt = n->saved[1], *lse = n->saved[2], *w = n->saved[3];
  int reduction = (int)n->iarg[0];
  fc_tensor *gd = dense_in(g, x->dtype);
  fc_tensor *gx = gd ? fc_empty(x->ndim, x->shape, x->dtype, x->device) : NULL;
  if (gx && x->numel > 0) {
    bk_xent k = {.dtype = x->dtype, .N = n->iarg[3], .C = n->iarg[4], .S = n->iarg[5],
                 .base = n->iarg[1], .ignore = n->iarg[2], .eps = n->arg[0], .wsum = n->arg[2],
                 .x = elem_ptr(x), .weight = w ? elem_ptr(w) : NULL,
                 .target = (const int64_t *)elem_ptr(tgt), .lse = elem_ptr(lse),
                 .g = elem_ptr(gd), .g_stride = reduction == FC_REDUCE_NONE ? 1 : 0,
                 .g_scale = reduction == FC_REDUCE_MEAN ? 1 / n->arg[1] : 1, .gx = elem_ptr(gx)};
    if (backend_get()->xent_backward(x->device.index, &k) < 0) fc_release(gx), gx = NULL;
  }
  fc_release(gd);
  gi[0] = gx;
  return gx ? 0 : -1;
}
