/* ops_loss.c — softmax, log_softmax and the losses, with their backward.
 *
 * Softmax-family ops work on rows: the class dim is moved last (a copy only
 * when it is not already the contiguous last dim) and each row is one fused
 * pass — max, sum of exp, write. cross_entropy fuses log_softmax with the
 * negative log likelihood and never builds a one-hot. */
#include "internal.h"
#include <stdlib.h>

/* ---- rows along a dim ----------------------------------------------------- */

/* t with dim d moved last, contiguous, as float32 or float64 (new ref). */
static fc_tensor *rows_last(fc_tensor *t, int d, int dtype) {
  int perm[FC_MAX_DIMS], n = 0;
  for (int i = 0; i < t->ndim; i++)
    if (i != d) perm[n++] = i;
  perm[n] = d;
  int prev = grad_mode_push(false);
  fc_tensor *p = t->ndim ? fc_permute(t, t->ndim, perm) : fc_retain(t);
  fc_tensor *c = p ? fc_to_dtype(p, dtype) : NULL, *r = c ? fc_contiguous(c) : NULL;
  grad_mode_pop(prev);
  fc_release(p), fc_release(c);
  return r;
}

/* The inverse of rows_last for a result laid out like it. */
static fc_tensor *rows_back(fc_tensor *m, int d, int dtype) {
  int n = m->ndim, perm[FC_MAX_DIMS];
  for (int i = 0, k = 0; i < n; i++) perm[i] = i == d ? n - 1 : k++;
  int prev = grad_mode_push(false);
  fc_tensor *p = n ? fc_permute(m, n, perm) : fc_retain(m);
  fc_tensor *c = p ? fc_contiguous(p) : NULL, *r = c ? fc_to_dtype(c, dtype) : NULL;
  grad_mode_pop(prev);
  fc_release(p), fc_release(c);
  return r;
}

#define SOFTMAX_ROWS(T, EXP, LOG)                                                  \
  static void softmax_rows_##T(const T *x, T *y, int64_t R, int64_t L, bool take_log) { \
    _Pragma("omp parallel for if (R * L > PARALLEL_GRAIN) schedule(static)")     \
    for (int64_t r = 0; r < R; r++) {                                              \
      const T *xr = x + r * L;                                                     \
      T *yr = y + r * L, m = -INFINITY, s = 0;                                     \
      for (int64_t j = 0; j < L; j++) m = xr[j] > m ? xr[j] : m;                   \
      if (m == -INFINITY) m = 0; /* an all -inf row: keep exp finite */            \
      for (int64_t j = 0; j < L; j++) s += EXP(xr[j] - m);                         \
      if (take_log) {                                                              \
        T ls = LOG(s); /* (x - m) - log s keeps precision for large x */           \
        for (int64_t j = 0; j < L; j++) yr[j] = (xr[j] - m) - ls;                  \
      } else {                                                                     \
        T inv = 1 / s;                                                             \
        for (int64_t j = 0; j < L; j++) yr[j] = EXP(xr[j] - m) * inv;              \
      }                                                                            \
    }                                                                              \
  }
SOFTMAX_ROWS(float, expf, logf)
SOFTMAX_ROWS(double, exp, log)

/* Softmax backward: dx = y (g - sum(g y)); log_softmax: dx = g - exp(y) sum(g). */
#define SOFTMAX_GRAD_ROWS(T, EXP)                                                              \
  static void softmax_grad_rows_##T(const T *y, const T *g, T *dx, int64_t R, int64_t L, bool take_log) { \
    _Pragma("omp parallel for if (R * L > PARALLEL_GRAIN) schedule(static)")                 \
    for (int64_t r = 0; r < R; r++) {                                                          \
      const T *yr = y + r * L, *gr = g + r * L;                                                \
      T *dr = dx + r * L, s = 0;                                                               \
      if (take_log) {                                                                          \
        for (int64_t j = 0; j < L; j++) s += gr[j];                                            \
        for (int64_t j = 0; j < L; j++) dr[j] = gr[j] - EXP(yr[j]) * s;                        \
      } else {                                                                                 \
        for (int64_t j = 0; j < L; j++) s += gr[j] * yr[j];                                    \
        for (int64_t j = 0; j < L; j++) dr[j] = yr[j] * (gr[j] - s);                           \
      }                                                                                        \
    }                                                                                          \
  }
SOFTMAX_GRAD_ROWS(float, expf)
SOFTMAX_GRAD_ROWS(double, exp)

static int softmax_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  int d = (int)n->iarg[0], dtype = n->saved[0]->dtype == FC_FLOAT64 ? FC_FLOAT64 : FC_FLOAT32;
  bool log = n->iarg[1];
  fc_tensor *y = rows_last(n->saved[0], d, dtype), *gr = y ? rows_last(g, d, dtype) : NULL;
  fc_tensor *dx = gr ? fc_empty_like(y) : NULL;
  if (dx) {
    int64_t L = y->ndim ? y->shape[y->ndim - 1] : 1, R = L ? y->numel / L : 0;
    if (dtype == FC_FLOAT64) softmax_grad_rows_double(fc_data_ptr(y), fc_data_ptr(gr), fc_data_ptr(dx), R, L, log);
    else softmax_grad_rows_float(fc_data_ptr(y), fc_data_ptr(gr), fc_data_ptr(dx), R, L, log);
    gi[0] = rows_back(dx, d, g->dtype);
  }
  fc_release(y), fc_release(gr), fc_release(dx);
  return gi[0] ? 0 : -1;
}

static fc_tensor *softmax_op(const char *op, fc_tensor *t, int dim, bool log) {
  if (check_same_device(op, 1, (const fc_tensor *const[]){t}) < 0) return NULL;
  int d = wrap_dim(op, dim, t->ndim);
  if (d < 0) return NULL;
  int dtype = t->dtype == FC_FLOAT64 ? FC_FLOAT64 : FC_FLOAT32;
  fc_tensor *x = rows_last(t, d, dtype), *y = x ? fc_empty_like(x) : NULL;
  if (!y) {
    fc_release(x);
    return NULL;
  }
  int64_t L = x->ndim ? x->shape[x->ndim - 1] : 1, R = L ? x->numel / L : 0;
  if (dtype == FC_FLOAT64) softmax_rows_double(fc_data_ptr(x), fc_data_ptr(y), R, L, log);
  else softmax_rows_float(fc_data_ptr(x), fc_data_ptr(y), R, L, log);
  fc_tensor *out = rows_back(y, d, is_float_dtype(t->dtype) ? t->dtype : FC_FLOAT32);
  fc_release(x), fc_release(y);
  if (out && grad_needed(1, &t)) {
    fc_node *n = record(op, softmax_backward, out, 1, &t);
    if (!n) {
      fc_release(out);
      return NULL;
    }
    node_save(n, out);
    n->iarg[0] = d;
    n->iarg[1] = log;
  }
  return out;
}

fc_tensor *fc_softmax(fc_tensor *t, int dim) { return softmax_op("softmax", t, dim, false); }
fc_tensor *fc_log_softmax(fc_tensor *t, int dim) { return softmax_op("log_softmax", t, dim, true); }

/* ---- reductions of a per-element loss --------------------------------------- */

static int check_reduction(const char *op, int reduction) {
  if (reduction < FC_REDUCE_NONE || reduction > FC_REDUCE_SUM)
    FAIL_INT("%s: reduction must be none (0), mean (1) or sum (2), got %d", op, reduction);
  return 0;
}

static fc_tensor *reduce_loss(fc_tensor *l, int reduction) {
  if (reduction == FC_REDUCE_NONE) return fc_retain(l);
  return reduction == FC_REDUCE_SUM ? fc_sum(l, 0, NULL, 0) : fc_mean(l, 0, NULL, 0);
}

static int check_pair(const char *op, fc_tensor *input, fc_tensor *target) {
  if (check_same_device(op, 2, (const fc_tensor *const[]){input, target}) < 0) return -1;
  if (!is_float_dtype(input->dtype)) FAIL_INT("%s: input must be a float tensor, got %s", op, DTYPE(input));
  bool same = input->ndim == target->ndim;
  for (int d = 0; same && d < input->ndim; d++) same = input->shape[d] == target->shape[d];
  if (!same) FAIL_INT("%s: input of shape %s and target of shape %s differ", op, SHAPE(input), SHAPE(target));
  return 0;
}

/* The elementwise losses are compositions, so autograd differentiates them. */
fc_tensor *fc_mse_loss(fc_tensor *input, fc_tensor *target, int reduction) {
  if (check_reduction("mse_loss", reduction) < 0 || check_pair("mse_loss", input, target) < 0) return NULL;
  fc_tensor *d = fc_sub(input, target), *sq = d ? fc_mul(d, d) : NULL;
  fc_tensor *r = sq ? reduce_loss(sq, reduction) : NULL;
  fc_release(d), fc_release(sq);
  return r;
}

fc_tensor *fc_l1_loss(fc_tensor *input, fc_tensor *target, int reduction) {
  if (check_reduction("l1_loss", reduction) < 0 || check_pair("l1_loss", input, target) < 0) return NULL;
  fc_tensor *d = fc_sub(input, target), *a = d ? fc_abs(d) : NULL;
  fc_tensor *r = a ? reduce_loss(a, reduction) : NULL;
  fc_release(d), fc_release(a);
  return r;
}

/* |d| < beta: 0.5 d^2 / beta; otherwise |d| - 0.5 beta (beta 0 is L1). */
fc_tensor *fc_smooth_l1_loss(fc_tensor *input, fc_tensor *target, double beta, int reduction) {
  if (check_reduction("smooth_l1_loss", reduction) < 0 || check_pair("smooth_l1_loss", input, target) < 0)
    return NULL;
  if (beta < 0) FAIL("smooth_l1_loss: beta must be non-negative, got %g", beta);
  if (beta == 0) return fc_l1_loss(input, target, reduction);
  fc_tensor *d = fc_sub(input, target), *a = d ? fc_abs(d) : NULL;
  fc_tensor *b = fc_scalar(beta, input->dtype, input->device), *half = fc_scalar(0.5 / beta, input->dtype, input->device);
  fc_tensor *hb = fc_scalar(0.5 * beta, input->dtype, input->device);
  fc_tensor *small = a && b ? fc_lt(a, b) : NULL, *sq = d ? fc_mul(d, d) : NULL;
  fc_tensor *quad = sq && half ? fc_mul(sq, half) : NULL, *lin = a && hb ? fc_sub(a, hb) : NULL;
  fc_tensor *l = small && quad && lin ? fc_where(small, quad, lin) : NULL;
  fc_tensor *r = l ? reduce_loss(l, reduction) : NULL;
  fc_release(d), fc_release(a), fc_release(b), fc_release(half), fc_release(hb), fc_release(small);
  fc_release(sq), fc_release(quad), fc_release(lin), fc_release(l);
  return r;
}

/* -(t log(x) + (1 - t) log(1 - x)), each log clamped at -100 as PyTorch does. */
fc_tensor *fc_binary_cross_entropy(fc_tensor *input, fc_tensor *target, fc_tensor *weight, int reduction) {
  if (check_reduction("binary_cross_entropy", reduction) < 0 ||
      check_pair("binary_cross_entropy", input, target) < 0)
    return NULL;
  fc_tensor *lx = fc_log(input), *one = fc_scalar(1, input->dtype, input->device);
  fc_tensor *omx = one ? fc_sub(one, input) : NULL, *lomx = omx ? fc_log(omx) : NULL;
  fc_tensor *clx = lx ? fc_clamp(lx, -100, INFINITY) : NULL, *clomx = lomx ? fc_clamp(lomx, -100, INFINITY) : NULL;
  fc_tensor *omt = one ? fc_sub(one, target) : NULL;
  fc_tensor *a = clx ? fc_mul(target, clx) : NULL, *b = omt && clomx ? fc_mul(omt, clomx) : NULL;
  fc_tensor *s = a && b ? fc_add(a, b) : NULL, *l = s ? fc_neg(s) : NULL;
  fc_tensor *w = l && weight ? fc_mul(l, weight) : fc_retain(l);
  fc_tensor *r = w ? reduce_loss(w, reduction) : NULL;
  fc_release(lx), fc_release(one), fc_release(omx), fc_release(lomx), fc_release(clx), fc_release(clomx);
  fc_release(omt), fc_release(a), fc_release(b), fc_release(s), fc_release(l), fc_release(w);
  return r;
}

/* Stable: (1 - t) x + (1 + (pw - 1) t) (log1p(exp(-|x|)) + max(-x, 0)). */
fc_tensor *fc_binary_cross_entropy_with_logits(fc_tensor *input, fc_tensor *target, fc_tensor *weight,
                                               fc_tensor *pos_weight, int reduction) {
  const char *op = "binary_cross_entropy_with_logits";
  if (check_reduction(op, reduction) < 0 || check_pair(op, input, target) < 0) return NULL;
  fc_tensor *one = fc_scalar(1, input->dtype, input->device);
  fc_tensor *omt = fc_sub(one, target), *a = omt ? fc_mul(omt, input) : NULL;
  fc_tensor *ax = fc_abs(input), *nax = ax ? fc_neg(ax) : NULL, *e = nax ? fc_exp(nax) : NULL;
  fc_tensor *sp = e ? fc_log1p(e) : NULL, *nx = fc_neg(input), *rel = nx ? fc_relu(nx) : NULL;
  fc_tensor *soft = sp && rel ? fc_add(sp, rel) : NULL, *coef = NULL;
  if (pos_weight) {
    fc_tensor *pm1 = fc_sub(pos_weight, one), *pt = pm1 ? fc_mul(pm1, target) : NULL;
    coef = pt ? fc_add(one, pt) : NULL;
    fc_release(pm1), fc_release(pt);
  } else {
    coef = fc_retain(one);
  }
  fc_tensor *b = soft && coef ? fc_mul(coef, soft) : NULL, *l = a && b ? fc_add(a, b) : NULL;
  fc_tensor *w = l && weight ? fc_mul(l, weight) : fc_retain(l);
  fc_tensor *r = w ? reduce_loss(w, reduction) : NULL;
  fc_release(one), fc_release(omt), fc_release(a), fc_release(ax), fc_release(nax), fc_release(e);
  fc_release(sp), fc_release(nx), fc_release(rel), fc_release(soft), fc_release(coef), fc_release(b);
  fc_release(l), fc_release(w);
  return r;
}

/* ---- nll and cross entropy ----------------------------------------------------
 * Class-index targets: loss_i = -w[y_i] logp[i, y_i], mean divides by the sum
 * of w[y_i] over targets that are not ignored. Rows are [N*, C] after moving
 * the class dim (1) last; targets [N*]. */

typedef struct nll_plan {
  fc_tensor *logp;   /* [R, C] float, contiguous (class last) */
  fc_tensor *target; /* [R] int64, contiguous, 0-based (ignored: -1) */
  fc_tensor *weight; /* [C] float or NULL */
  int64_t R, C;
  int dtype;
} nll_plan;

static void plan_free(nll_plan *p) {
  fc_release(p->logp), fc_release(p->target), fc_release(p->weight);
}

/* Checks shapes and targets; logits [N,C,d...] and target [N,d...]. */
static int nll_setup(const char *op, fc_tensor *x, fc_tensor *target, fc_tensor *weight, int64_t ignore,
                     int64_t base, bool log_softmax_first, nll_plan *p) {
  memset(p, 0, sizeof *p);
  if (check_same_device(op, 2, (const fc_tensor *const[]){x, target}) < 0) return -1;
  if (!is_float_dtype(x->dtype)) FAIL_INT("%s: input must be a float tensor, got %s", op, DTYPE(x));
  if (x->ndim < 1) FAIL_INT("%s: input must have a class dim, got shape %s", op, SHAPE(x));
  int cdim = x->ndim == 1 ? 0 : 1;
  bool ok = target->ndim == x->ndim - 1;
  for (int d = 0, k = 0; ok && d < x->ndim; d++)
    if (d != cdim) ok = target->shape[k++] == x->shape[d];
  if (!ok)
    FAIL_INT("%s: target of shape %s does not match input of shape %s (expected the input's shape "
             "without its class dim)", op, SHAPE(target), SHAPE(x));
  if (target->dtype != FC_INT64 && target->dtype != FC_INT32)
    FAIL_INT("%s: class targets must be int64, got %s", op, DTYPE(target));
  p->C = x->shape[cdim];
  if (weight && (weight->ndim != 1 || weight->shape[0] != p->C))
    FAIL_INT("%s: weight of shape %s does not match %lld classes", op, SHAPE(weight), (long long)p->C);
  p->dtype = x->dtype == FC_FLOAT64 ? FC_FLOAT64 : FC_FLOAT32;
  fc_tensor *rows = rows_last(x, cdim, p->dtype);
  if (!rows) return -1;
  p->R = p->C ? rows->numel / p->C : 0;
  if (log_softmax_first) {
    fc_tensor *lp = fc_empty_like(rows);
    if (lp && p->dtype == FC_FLOAT64) softmax_rows_double(fc_data_ptr(rows), fc_data_ptr(lp), p->R, p->C, true);
    else if (lp) softmax_rows_float(fc_data_ptr(rows), fc_data_ptr(lp), p->R, p->C, true);
    fc_release(rows);
    rows = lp;
  }
  p->logp = rows;
  int prev = grad_mode_push(false);
  fc_tensor *t64 = fc_to_dtype(target, FC_INT64);
  p->target = t64 ? fc_clone(t64) : NULL;
  p->weight = weight ? fc_to_dtype(weight, FC_FLOAT64) : NULL;
  fc_tensor *wc = p->weight ? fc_contiguous(p->weight) : NULL;
  fc_release(p->weight);
  p->weight = wc;
  grad_mode_pop(prev);
  fc_release(t64);
  if (!p->logp || !p->target || (weight && !p->weight)) return -1;
  int64_t *tv = fc_data_ptr(p->target);
  for (int64_t i = 0; i < p->R; i++) {
    if (ignore != FC_NO_INDEX && tv[i] == ignore) {
      tv[i] = -1;
      continue;
    }
    if (tv[i] < base || tv[i] >= p->C + base)
      FAIL_INT("%s: target %lld out of range for %lld classes (valid %lld..%lld)", op, (long long)tv[i],
               (long long)p->C, (long long)base, (long long)(p->C + base - 1));
    tv[i] -= base;
  }
  return 0;
}

static double row_weight(const nll_plan *p, int64_t c) {
  return p->weight ? ((const double *)fc_data_ptr(p->weight))[c] : 1.0;
}

static double logp_at(const nll_plan *p, int64_t r, int64_t c) {
  return p->dtype == FC_FLOAT64 ? ((const double *)fc_data_ptr(p->logp))[r * p->C + c]
                                : ((const float *)fc_data_ptr(p->logp))[r * p->C + c];
}

/* Per-row losses (-w[y] logp[y], with label smoothing eps: (1-eps) of that
 * plus eps/C times the weighted sum over classes) and the mean's divisor. */
static void nll_rows(const nll_plan *p, double eps, double *loss, double *divisor) {
  const int64_t *tv = fc_data_ptr(p->target);
  double div = 0;
  for (int64_t r = 0; r < p->R; r++) {
    int64_t y = tv[r];
    if (y < 0) {
      loss[r] = 0;
      continue;
    }
    double w = row_weight(p, y), l = -w * logp_at(p, r, y);
    if (eps > 0) {
      double smooth = 0;
      for (int64_t c = 0; c < p->C; c++) smooth -= row_weight(p, c) * logp_at(p, r, c);
      l = (1 - eps) * l + eps / (double)p->C * smooth;
    }
    loss[r] = l;
    div += w;
  }
  *divisor = div;
}

/* Saved: the plan's tensors; iarg: reduction, the input's class dim, whether
 * the input was logits (cross entropy) or log-probabilities (nll); arg: eps
 * and the mean's divisor. */
static int nll_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  nll_plan p = {n->saved[0], n->saved[1], n->saved[2], 0, 0, n->saved[0]->dtype};
  p.C = p.logp->shape[p.logp->ndim - 1];
  p.R = p.C ? p.logp->numel / p.C : 0;
  int reduction = (int)n->iarg[0], cdim = (int)n->iarg[1];
  bool logits = n->iarg[2];
  double eps = n->arg[0], div = n->arg[1];
  double gs[1];
  double *gv = NULL;
  if (reduction == FC_REDUCE_NONE) {
    gv = malloc(sizeof(double) * (size_t)(g->numel + 1));
    if (!gv) FAIL_INT("backward: out of memory");
    fc_to_doubles(g, gv);
  } else {
    fc_to_doubles(g, gs);
    if (reduction == FC_REDUCE_MEAN) gs[0] = div > 0 ? gs[0] / div : 0;
  }
  fc_tensor *dx = fc_zeros_like(p.logp);
  if (!dx) {
    free(gv);
    return -1;
  }
  const int64_t *tv = fc_data_ptr(p.target);
  for (int64_t r = 0; r < p.R; r++) {
    int64_t y = tv[r];
    if (y < 0) continue;
    double gr = gv ? gv[r] : gs[0];
    /* d loss / d logp[c] = -(1-eps) w_y [c = y] - eps/C w_c; through
     * log_softmax, d loss / d logit[c] = that - softmax[c] * its sum over c */
    double sum_dl = -(1 - eps) * row_weight(&p, y);
    for (int64_t k = 0; eps > 0 && k < p.C; k++) sum_dl -= eps / (double)p.C * row_weight(&p, k);
    for (int64_t c = 0; c < p.C; c++) {
      double dl = -(c == y ? (1 - eps) * row_weight(&p, y) : 0) - eps / (double)p.C * row_weight(&p, c);
      double v = logits ? dl - exp(logp_at(&p, r, c)) * sum_dl : dl;
      store_from_double((char *)fc_data_ptr(dx) + (r * p.C + c) * fc_dtype_size(p.dtype), p.dtype, gr * v);
    }
  }
  free(gv);
  gi[0] = rows_back(dx, cdim, n->in_dtype[0]);
  fc_release(dx);
  return gi[0] ? 0 : -1;
}

static fc_tensor *nll_common(const char *op, fc_tensor *x, fc_tensor *target, fc_tensor *weight, int64_t ignore,
                             double eps, int reduction, int64_t base, bool logits) {
  if (check_reduction(op, reduction) < 0) return NULL;
  if (!(eps >= 0 && eps <= 1)) FAIL("%s: label_smoothing must be in [0, 1], got %g", op, eps);
  nll_plan p;
  if (nll_setup(op, x, target, weight, ignore, base, logits, &p) < 0) {
    plan_free(&p);
    return NULL;
  }
  double *loss = malloc(sizeof(double) * (size_t)(p.R + 1)), div = 0;
  if (!loss) {
    plan_free(&p);
    FAIL("%s: out of memory", op);
  }
  nll_rows(&p, eps, loss, &div);
  fc_tensor *out;
  int out_dtype = x->dtype;
  if (reduction == FC_REDUCE_NONE) {
    out = fc_from_buffer(loss, FC_FLOAT64, target->ndim, target->shape, out_dtype, x->device);
  } else {
    double s = 0;
    for (int64_t r = 0; r < p.R; r++) s += loss[r];
    if (reduction == FC_REDUCE_MEAN) s = div > 0 ? s / div : NAN;
    out = fc_scalar(s, out_dtype, x->device);
  }
  free(loss);
  if (out && grad_needed(1, &x)) {
    fc_node *n = record(op, nll_backward, out, 1, &x);
    if (!n) {
      fc_release(out);
      out = NULL;
    } else { /* the plan's tensors are private copies: nothing to version-check */
      n->saved[0] = fc_retain(p.logp);
      n->saved[1] = fc_retain(p.target);
      n->saved[2] = fc_retain(p.weight);
      for (int i = 0; i < 3; i++) n->saved_version[i] = n->saved[i] ? n->saved[i]->storage->version : 0;
      n->nsaved = 3;
      n->iarg[0] = reduction;
      n->iarg[1] = x->ndim == 1 ? 0 : 1;
      n->iarg[2] = logits;
      n->arg[0] = eps;
      n->arg[1] = div;
    }
  }
  plan_free(&p);
  return out;
}

fc_tensor *fc_nll_loss(fc_tensor *log_probs, fc_tensor *target, fc_tensor *weight, int64_t ignore_index,
                       int reduction, int64_t base) {
  return nll_common("nll_loss", log_probs, target, weight, ignore_index, 0, reduction, base, false);
}

/* Probability targets: -sum_c w_c t_c log_softmax(x)_c per row. */
static fc_tensor *soft_cross_entropy(fc_tensor *x, fc_tensor *target, fc_tensor *weight, double eps, int reduction) {
  int cdim = x->ndim == 1 ? 0 : 1;
  fc_tensor *lp = fc_log_softmax(x, cdim), *t = fc_retain(target);
  if (eps > 0 && t) { /* (1 - eps) t + eps / C */
    fc_tensor *a = fc_scalar(1 - eps, x->dtype, x->device), *b = fc_scalar(eps / (double)x->shape[cdim], x->dtype, x->device);
    fc_tensor *ta = a ? fc_mul(t, a) : NULL, *tb = ta && b ? fc_add(ta, b) : NULL;
    fc_release(a), fc_release(b), fc_release(ta), fc_release(t);
    t = tb;
  }
  fc_tensor *prod = lp && t ? fc_mul(lp, t) : NULL, *wp = NULL;
  if (prod && weight) { /* weight broadcasts along the class dim */
    int64_t shape[FC_MAX_DIMS] = {0};
    for (int d = 0; d < x->ndim; d++) shape[d] = d == cdim ? x->shape[cdim] : 1;
    fc_tensor *wv = fc_reshape(weight, x->ndim, shape);
    wp = wv ? fc_mul(prod, wv) : NULL;
    fc_release(wv);
  } else {
    wp = fc_retain(prod);
  }
  fc_tensor *s = wp ? fc_sum(wp, 1, (int[]){cdim}, 0) : NULL, *l = s ? fc_neg(s) : NULL;
  fc_tensor *r = l ? reduce_loss(l, reduction) : NULL;
  fc_release(lp), fc_release(t), fc_release(prod), fc_release(wp), fc_release(s), fc_release(l);
  return r;
}

fc_tensor *fc_cross_entropy(fc_tensor *logits, fc_tensor *target, fc_tensor *weight, int64_t ignore_index,
                            double label_smoothing, int reduction, int64_t base) {
  if (check_same_device("cross_entropy", 2, (const fc_tensor *const[]){logits, target}) < 0) return NULL;
  if (is_float_dtype(target->dtype)) {
    if (check_reduction("cross_entropy", reduction) < 0 || check_pair("cross_entropy", logits, target) < 0)
      return NULL;
    if (!(label_smoothing >= 0 && label_smoothing <= 1))
      FAIL("cross_entropy: label_smoothing must be in [0, 1], got %g", label_smoothing);
    return soft_cross_entropy(logits, target, weight, label_smoothing, reduction);
  }
  return nll_common("cross_entropy", logits, target, weight, ignore_index, label_smoothing, reduction, base, true);
}
