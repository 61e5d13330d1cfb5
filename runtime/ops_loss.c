/* ops_loss.c — loss functions with torch.nn.functional's semantics, forward
 * and backward.
 *
 * Class losses (cross_entropy, nll_loss) see the input as [N, C, S]: N
 * samples, C classes along dim 1, S = the product of any further dims, so
 * N * S rows of C classes. cross_entropy fuses log_softmax and nll: per row
 * it takes the log-sum-exp from ops_softmax.c's kernels and reads the
 * target's logit, never materialising log-probabilities or a one-hot; its
 * gradient, scale * softmax minus the target's share, is one pass per row.
 *
 * Pointwise losses (mse, l1, smooth_l1, binary cross entropy with and
 * without logits) run one loop that writes each element's loss or sums it;
 * sums go by fixed-size chunks added in order, so a result never depends on
 * the thread count. All compute in float32 or float64 (half types via
 * float32) and give the input's floating dtype. */
#include "backend.h"
#include "softmax_rows.h"
#include <stdlib.h>

enum { GROUP = SOFTMAX_GROUP };

/* ---- shared helpers ------------------------------------------------------ */

static bool needs(const fc_node *n, int i) { return n->next[i] || n->leaf[i]; }

/* A tensor's first element, or NULL for a missing tensor (an unused operand). */
static void *data(const fc_tensor *t) { return t ? elem_ptr(t) : NULL; }

static int check_reduction(const char *op, int reduction) {
  if (reduction != FC_REDUCE_NONE && reduction != FC_REDUCE_MEAN && reduction != FC_REDUCE_SUM)
    FAIL_INT("%s: reduction must be FC_REDUCE_NONE (0), FC_REDUCE_MEAN (1) or FC_REDUCE_SUM (2), "
             "got %d", op, reduction);
  return 0;
}

/* A contiguous copy of t in `dtype`, expanded to `shape` when given (or t
 * itself when it already is that), made outside autograd. */
static fc_tensor *dense(fc_tensor *t, int dtype, int ndim, const int64_t *shape) {
  int previous = grad_mode_push(false);
  fc_tensor *e = shape ? fc_expand(t, ndim, shape) : fc_retain(t);
  fc_tensor *c = e ? fc_to_dtype(e, dtype) : NULL, *d = c ? fc_contiguous(c) : NULL;
  grad_mode_pop(previous);
  fc_release(e);
  fc_release(c);
  return d;
}

static bool same_shape(int na, const int64_t *a, int nb, const int64_t *b) {
  if (na != nb) return false;
  for (int i = 0; i < na; i++)
    if (a[i] != b[i]) return false;
  return true;
}

/* A tensor of `dtype` from double values (a 0-dim one when ndim == 0). */
static fc_tensor *from_doubles(const double *v, int ndim, const int64_t *shape, int dtype,
                               fc_device dev) {
  int c = kernel_dtype(dtype);
  fc_tensor *t = fc_empty(ndim, shape, c, dev);
  if (!t) return NULL;
  if (c == FC_FLOAT64) memcpy(elem_ptr(t), v, sizeof(double) * (size_t)t->numel);
  else
    for (int64_t i = 0; i < t->numel; i++) ((float *)elem_ptr(t))[i] = (float)v[i];
  if (c == dtype) return t;
  fc_tensor *h = fc_to_dtype(t, dtype);
  fc_release(t);
  return h;
}

/* The loss as the caller asked: each element's, or their sum or mean. */
static fc_tensor *reduced(const double *v, int64_t count, double denom, int reduction, int ndim,
                          const int64_t *shape, int dtype, fc_device dev) {
  if (reduction == FC_REDUCE_NONE) return from_doubles(v, ndim, shape, dtype, dev);
  double total = 0;
  for (int64_t i = 0; i < count; i++) total += v[i];
  if (reduction == FC_REDUCE_MEAN) total /= denom; /* 0 / 0 is NaN, as in PyTorch */
  return fc_scalar(total, dtype, dev);
}

/* ---- class losses -------------------------------------------------------- */

typedef struct class_loss {
  const char *op;
  bool fused;      /* cross_entropy (logits) rather than nll_loss (log-probabilities) */
  bool probs;      /* class-probability targets rather than class indices */
  int dtype;       /* compute dtype */
  int reduction;
  int64_t N, C, S; /* the input seen as [N, C, S] */
  int64_t base, ignore;
  double eps;      /* label smoothing */
  double *w, wsum; /* per-class weights (NULL: all 1) and their sum */
  double denom;    /* the mean's divisor */
} class_loss;

static void class_dims(class_loss *L, int ndim, const int64_t *shape) {
  L->N = ndim == 1 ? 1 : shape[0];
  L->C = ndim == 1 ? shape[0] : shape[1];
  L->S = 1;
  for (int d = 2; d < ndim; d++) L->S *= shape[d];
}

/* The shape of one loss per row: the input's without its class dim. */
static int row_shape(const fc_tensor *input, int64_t *shape) {
  if (input->ndim == 1) return 0;
  shape[0] = input->shape[0];
  for (int d = 2; d < input->ndim; d++) shape[d - 1] = input->shape[d];
  return input->ndim - 1;
}

/* Weights as doubles (C of them) and their sum; NULL weight: none. */
static int load_weights(class_loss *L, fc_tensor *weight) {
  L->w = NULL;
  L->wsum = (double)L->C;
  if (!weight) return 0;
  if (!(L->w = malloc(sizeof(double) * (size_t)(L->C + 1))))
    FAIL_INT("%s: out of memory", L->op);
  fc_to_doubles(weight, L->w);
  L->wsum = 0;
  for (int64_t c = 0; c < L->C; c++) L->wsum += L->w[c];
  return 0;
}

static int check_class_args(class_loss *L, fc_tensor *input, fc_tensor *target, fc_tensor *weight) {
  const char *op = L->op;
  if (check_reduction(op, L->reduction) < 0) return -1;
  if (!is_float_dtype(input->dtype))
    FAIL_INT("%s: input must be floating point, got %s", op, DTYPE(input));
  if (input->ndim == 0)
    FAIL_INT("%s: input must have a class dim ([C], [N,C] or [N,C,d1,...]), got shape []", op);
  class_dims(L, input->ndim, input->shape);
  int64_t rows[FC_MAX_DIMS];
  int nr = row_shape(input, rows);
  bool index_shaped = same_shape(target->ndim, target->shape, nr, rows);
  if (is_float_dtype(target->dtype)) {
    if (!L->fused)
      FAIL_INT("%s: target must hold class indices (int64), got %s", op, DTYPE(target));
    if (index_shaped && !same_shape(target->ndim, target->shape, input->ndim, input->shape))
      FAIL_INT("%s: target of shape %s holds class indices but is %s; pass int64 (or class "
               "probabilities shaped like the input %s)", op, SHAPE(target), DTYPE(target),
               SHAPE(input));
    if (!same_shape(target->ndim, target->shape, input->ndim, input->shape))
      FAIL_INT("%s: class-probability target of shape %s does not match input of shape %s", op,
               SHAPE(target), SHAPE(input));
    if (L->ignore != FC_NO_INDEX)
      FAIL_INT("%s: ignore_index is not supported with class-probability targets", op);
    L->probs = true;
  } else if (target->dtype == FC_INT64 || target->dtype == FC_INT32) {
    if (!index_shaped)
      FAIL_INT("%s: target of shape %s does not match input of shape %s (expected %s)", op,
               SHAPE(target), SHAPE(input), dims_str(nr, rows, (char[96]){0}, 96));
    L->probs = false;
  } else {
    FAIL_INT("%s: target must hold class indices (int64)%s, got %s", op,
             L->fused ? " or class probabilities (float)" : "", DTYPE(target));
  }
  if (weight) {
    if (!is_float_dtype(weight->dtype))
      FAIL_INT("%s: weight must be floating point, got %s", op, DTYPE(weight));
    if (weight->ndim != 1 || weight->shape[0] != L->C)
      FAIL_INT("%s: weight must have one entry per class (%lld), got shape %s", op,
               (long long)L->C, SHAPE(weight));
  }
  if (!(L->eps >= 0 && L->eps <= 1))
    FAIL_INT("%s: label_smoothing must be between 0.0 and 1.0, got %g", op, L->eps);
  return 0;
}

static bool ignored(const class_loss *L, int64_t v) {
  return L->ignore != FC_NO_INDEX && v == L->ignore;
}

/* Every index target in range (or ignored); sets the mean's divisor: the
 * weight of the targets that count (their number without weights). */
static int check_targets(class_loss *L, const int64_t *tgt) {
  int64_t rows = L->N * L->S;
  double denom = 0;
  for (int64_t i = 0; i < rows; i++) {
    int64_t v = tgt[i];
    if (ignored(L, v)) continue;
    if (v < L->base || v >= L->base + L->C)
      FAIL_INT("%s: target %lld is out of range for %lld classes (expected %lld to %lld)", L->op,
               (long long)v, (long long)L->C, (long long)L->base, (long long)(L->base + L->C - 1));
    denom += L->w ? L->w[v - L->base] : 1;
  }
  L->denom = denom;
  return 0;
}

/* Per row: loss[i] (forward) or the gradient rows (backward). Row i of a
 * group has class c at x[r * rs + c * cs]; `lse` is NULL for nll_loss. */
#define CLASS_KERNELS(T, SFX)                                                                 \
  static double row_loss_##SFX(const class_loss *L, const T *x, int64_t cs, const int64_t *tgt, \
                               const T *tp, double l) {                                       \
    const double *w = L->w;                                                                   \
    double eps = L->eps, loss = 0;                                                            \
    if (L->probs) {                                                                           \
      for (int64_t c = 0; c < L->C; c++)                                                      \
        loss += (w ? w[c] : 1) * ((1 - eps) * tp[c * cs] + eps / L->C) * (l - x[c * cs]);     \
      return loss;                                                                            \
    }                                                                                         \
    if (ignored(L, *tgt)) return 0;                                                           \
    int64_t t = *tgt - L->base;                                                               \
    loss = (w ? w[t] : 1) * (L->fused ? l - x[t * cs] : -(double)x[t * cs]);                  \
    if (eps > 0) {                                                                            \
      double smooth = 0;                                                                      \
      for (int64_t c = 0; c < L->C; c++) smooth += (w ? w[c] : 1) * (l - x[c * cs]);          \
      loss = (1 - eps) * loss + eps / L->C * smooth;                                          \
    }                                                                                         \
    return loss;                                                                              \
  }                                                                                           \
                                                                                              \
  static void class_forward_##SFX(const class_loss *L, const T *x, const int64_t *tgt,        \
                                  const T *tp, T *lse, double *loss) {                        \
    int64_t ngroups = softmax_groups(L->N, L->S);                                             \
    _Pragma("omp parallel for if (L->N * L->C * L->S > PARALLEL_GRAIN) schedule(static)")     \
    for (int64_t g = 0; g < ngroups; g++) {                                                   \
      int64_t row, n, off, rs, cs;                                                            \
      softmax_group(g, L->C, L->S, &row, &n, &off, &rs, &cs);                                 \
      if (L->fused) softmax_lse_##SFX(x + off, n, L->C, cs, lse + row);                       \
      for (int64_t r = 0; r < n; r++)                                                         \
        loss[row + r] = row_loss_##SFX(L, x + off + r * rs, cs, tgt ? tgt + row + r : NULL,   \
                                       tp ? tp + off + r * rs : NULL,                         \
                                       lse ? lse[row + r] : 0);                               \
    }                                                                                         \
  }                                                                                           \
                                                                                              \
  /* gx = s * (a * softmax - the target's share), with s the row's share of                   \
   * the upstream gradient; nll_loss: gx = -s * w[t] at the target only. */                   \
  static void class_backward_##SFX(const class_loss *L, const T *x, const int64_t *tgt,       \
                                   const T *tp, const T *lse, const T *g, double g0, T *gx,   \
                                   T *gt) {                                                   \
    const double *w = L->w;                                                                   \
    double eps = L->eps, k = eps / L->C;                                                      \
    int64_t ngroups = softmax_groups(L->N, L->S), C = L->C;                                   \
    _Pragma("omp parallel for if (L->N * L->C * L->S > PARALLEL_GRAIN) schedule(static)")     \
    for (int64_t grp = 0; grp < ngroups; grp++) {                                             \
      int64_t row, n, off, rs, cs;                                                            \
      T s[GROUP], a[GROUP];                                                                   \
      softmax_group(grp, C, L->S, &row, &n, &off, &rs, &cs);                                  \
      for (int64_t r = 0; r < n; r++) { /* the row's scale and softmax factor */              \
        int64_t i = row + r;                                                                  \
        double si = g ? (double)g[i] : g0, ai = 0;                                            \
        if (L->probs) {                                                                       \
          const T *tr = tp + off + r * rs;                                                    \
          for (int64_t c = 0; c < C; c++) ai += (w ? w[c] : 1) * ((1 - eps) * tr[c * cs] + k); \
        } else if (ignored(L, tgt[i])) {                                                      \
          si = 0;                                                                             \
        } else {                                                                              \
          ai = (1 - eps) * (w ? w[tgt[i] - L->base] : 1) + k * L->wsum;                       \
        }                                                                                     \
        s[r] = (T)si, a[r] = (T)(si * ai);                                                    \
      }                                                                                       \
      if (gx && L->fused) softmax_scaled_##SFX(gx + off, x + off, n, C, cs, lse + row, a);    \
      for (int64_t r = 0; r < n; r++) {                                                       \
        T *gr = gx ? gx + off + r * rs : NULL;                                                \
        if (L->probs) {                                                                       \
          const T *tr = tp + off + r * rs, *xr = x + off + r * rs;                            \
          for (int64_t c = 0; c < C; c++) {                                                   \
            double wc = w ? w[c] : 1;                                                         \
            if (gr) gr[c * cs] -= (T)(s[r] * wc * ((1 - eps) * tr[c * cs] + k));              \
            if (gt) gt[off + r * rs + c * cs] =                                               \
                (T)(-s[r] * (1 - eps) * wc * (xr[c * cs] - lse[row + r]));                    \
          }                                                                                   \
          continue;                                                                           \
        }                                                                                     \
        if (!L->fused)                                                                        \
          for (int64_t c = 0; c < C; c++) gr[c * cs] = 0;                                     \
        if (s[r] == 0) continue;                                                              \
        int64_t t = tgt[row + r] - L->base;                                                   \
        double wt = w ? w[t] : 1;                                                             \
        gr[t * cs] -= (T)(s[r] * (1 - eps) * wt);                                             \
        if (L->fused && eps > 0)                                                              \
          for (int64_t c = 0; c < C; c++) gr[c * cs] -= (T)(s[r] * k * (w ? w[c] : 1));       \
      }                                                                                       \
    }                                                                                         \
  }

CLASS_KERNELS(float, f32)
CLASS_KERNELS(double, f64)

static int class_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  fc_tensor *x = n->saved[0], *target = n->saved[1], *lse = n->saved[2];
  class_loss L = {.op = n->op, .fused = n->iarg[4], .probs = n->iarg[5], .dtype = x->dtype,
                  .reduction = (int)n->iarg[0], .base = n->iarg[1], .ignore = n->iarg[2],
                  .eps = n->arg[0], .denom = n->arg[1]};
  class_dims(&L, n->in_ndim[0], n->in_shape[0]);
  if (load_weights(&L, n->saved[3]) < 0) return -1;
  bool per_row = L.reduction == FC_REDUCE_NONE;
  fc_tensor *gd = per_row ? dense(g, L.dtype, 0, NULL) : NULL;
  double g0 = 0;
  if (!per_row) {
    fc_item(g, &g0);
    if (L.reduction == FC_REDUCE_MEAN) g0 /= L.denom;
  }
  bool want_x = needs(n, 0), want_t = L.probs && needs(n, 1);
  fc_tensor *gx = want_x ? fc_empty(x->ndim, x->shape, L.dtype, x->device) : NULL;
  fc_tensor *gt = want_t ? fc_empty(x->ndim, x->shape, L.dtype, x->device) : NULL;
  int rc = (per_row && !gd) || (want_x && !gx) || (want_t && !gt) ? -1 : 0;
  if (rc == 0 && x->numel > 0) {
    const int64_t *tgt = L.probs ? NULL : (const int64_t *)elem_ptr(target);
    if (L.dtype == FC_FLOAT64)
      class_backward_f64(&L, data(x), tgt, L.probs ? data(target) : NULL,
                         data(lse), data(gd), g0, data(gx), data(gt));
    else
      class_backward_f32(&L, data(x), tgt, L.probs ? data(target) : NULL,
                         data(lse), data(gd), g0, data(gx), data(gt));
  }
  free(L.w);
  fc_release(gd);
  gi[0] = gx, gi[1] = gt;
  return rc;
}

static fc_tensor *record_class(class_loss *L, fc_tensor *out, fc_tensor *input, fc_tensor *target,
                               fc_tensor *x, fc_tensor *tgt, fc_tensor *lse, fc_tensor *weight) {
  fc_tensor *in[2] = {input, target};
  if (!grad_needed(2, in)) return out;
  fc_node *n = record(L->op, class_backward, out, 2, in);
  if (!n) {
    fc_release(out);
    return NULL;
  }
  fc_tensor *slots[4] = {x, tgt, lse, weight};
  for (int i = 0; i < 4; i++)
    if (slots[i]) n->nsaved = i, node_save(n, slots[i]);
  n->nsaved = 4;
  n->iarg[0] = L->reduction, n->iarg[1] = L->base, n->iarg[2] = L->ignore;
  n->iarg[4] = L->fused, n->iarg[5] = L->probs;
  n->arg[0] = L->eps, n->arg[1] = L->denom;
  return out;
}

static fc_tensor *class_loss_op(class_loss *L, fc_tensor *input, fc_tensor *target,
                                fc_tensor *weight) {
  fc_tensor *all[3] = {input, target, weight};
  if (check_same_device(L->op, weight ? 3 : 2, (const fc_tensor *const *)all) < 0) return NULL;
  if (check_class_args(L, input, target, weight) < 0) return NULL;
  L->dtype = kernel_dtype(input->dtype);
  int64_t rows = L->N * L->S, rshape[FC_MAX_DIMS];
  int nr = row_shape(input, rshape);
  fc_tensor *x = dense(input, L->dtype, 0, NULL);
  fc_tensor *tgt = x ? dense(target, L->probs ? L->dtype : FC_INT64, 0, NULL) : NULL;
  fc_tensor *lse = tgt && L->fused ? fc_empty(1, &rows, L->dtype, input->device) : NULL;
  double *loss = malloc(sizeof(double) * (size_t)(rows + 1));
  fc_tensor *out = NULL;
  if (!loss) fc_set_error("%s: out of memory", L->op);
  if (loss && tgt && (lse || !L->fused) && load_weights(L, weight) == 0) {
    const int64_t *ti = L->probs ? NULL : (const int64_t *)elem_ptr(tgt);
    L->denom = (double)rows;
    if (L->probs || check_targets(L, ti) == 0) {
      if (x->numel == 0) {
        memset(loss, 0, sizeof(double) * (size_t)rows); /* no classes: rows stay 0 */
      } else if (L->dtype == FC_FLOAT64) {
        class_forward_f64(L, data(x), ti, L->probs ? data(tgt) : NULL, data(lse), loss);
      } else {
        class_forward_f32(L, data(x), ti, L->probs ? data(tgt) : NULL, data(lse), loss);
      }
      out = reduced(loss, rows, L->denom, L->reduction, nr, rshape, input->dtype, input->device);
      if (out) out = record_class(L, out, input, target, x, tgt, lse, weight);
    }
  }
  free(L->w);
  free(loss);
  fc_release(x), fc_release(tgt), fc_release(lse);
  return out;
}

fc_tensor *fc_cross_entropy(fc_tensor *logits, fc_tensor *target, fc_tensor *weight,
                            int64_t ignore_index, double label_smoothing, int reduction,
                            int64_t base) {
  if (logits && logits->device.type == FC_CUDA) /* fused kernels: backend_ops.c */
    return cuda_cross_entropy(logits, target, weight, ignore_index, label_smoothing, reduction, base);
  class_loss L = {.op = "cross_entropy", .fused = true, .reduction = reduction, .base = base,
                  .ignore = ignore_index, .eps = label_smoothing};
  return class_loss_op(&L, logits, target, weight);
}

fc_tensor *fc_nll_loss(fc_tensor *log_probs, fc_tensor *target, fc_tensor *weight,
                       int64_t ignore_index, int reduction, int64_t base) {
  class_loss L = {.op = "nll_loss", .fused = false, .reduction = reduction, .base = base,
                  .ignore = ignore_index, .eps = 0};
  return class_loss_op(&L, log_probs, target, weight);
}

/* ---- pointwise losses ---------------------------------------------------- */

typedef enum { MSE, L1, SMOOTH_L1, BCE, BCE_LOGITS } pointwise_kind;
static const char *const pointwise_names[] = {"mse_loss", "l1_loss", "smooth_l1_loss",
                                              "binary_cross_entropy",
                                              "binary_cross_entropy_with_logits"};

/* The operands of one pointwise loss, dense over the common shape. */
typedef struct pointwise {
  const char *op;
  pointwise_kind kind;
  int reduction, dtype, out_dtype, ndim;
  int64_t shape[FC_MAX_DIMS], numel;
  double beta;
  fc_tensor *x, *t, *w, *pw; /* w, pw may be NULL */
} pointwise;

enum { CHUNK = 4096 }; /* elements per partial sum */

/* One loss and its two derivatives per kind, each in T. BCE clamps its logs
 * at -100 as PyTorch does; BCE with logits uses softplus(-x) =
 * log1p(exp(-|x|)) + max(-x, 0), which never overflows. */
#define POINTWISE_FORMULAS(T, SFX, LOG, LOG1P, EXP)                                           \
  static inline T softplus_neg_##SFX(T x) {                                                   \
    return LOG1P(EXP(x < 0 ? x : -x)) + (x < 0 ? -x : 0);                                     \
  }                                                                                           \
  static inline T clamped_log_##SFX(T v) { return v < -100 ? -100 : v; }                      \
  static inline T mse_##SFX(T x, T t, T w, T pw, T b) { return (x - t) * (x - t); }           \
  static inline T l1_##SFX(T x, T t, T w, T pw, T b) { return x > t ? x - t : t - x; }        \
  static inline T smooth_l1_##SFX(T x, T t, T w, T pw, T b) {                                 \
    T d = x - t, ad = d < 0 ? -d : d;                                                         \
    return ad < b ? (T)0.5 * d * d / b : ad - (T)0.5 * b;                                     \
  }                                                                                           \
  static inline T bce_##SFX(T x, T t, T w, T pw, T b) {                                       \
    return w * ((t - 1) * clamped_log_##SFX(LOG1P(-x)) - t * clamped_log_##SFX(LOG(x)));      \
  }                                                                                           \
  static inline T bce_logits_##SFX(T x, T t, T w, T pw, T b) {                                \
    return w * ((1 - t) * x + (1 + (pw - 1) * t) * softplus_neg_##SFX(x));                    \
  }                                                                                           \
  /* derivatives: _dx by the input, _dt by the target */                                      \
  static inline T mse_dx_##SFX(T x, T t, T w, T pw, T b) { return 2 * (x - t); }              \
  static inline T l1_dx_##SFX(T x, T t, T w, T pw, T b) { return (T)((x > t) - (x < t)); }    \
  static inline T smooth_l1_dx_##SFX(T x, T t, T w, T pw, T b) {                              \
    T d = x - t, ad = d < 0 ? -d : d;                                                         \
    return ad < b ? d / b : (T)((d > 0) - (d < 0));                                           \
  }                                                                                           \
  static inline T mse_dt_##SFX(T x, T t, T w, T pw, T b) { return 2 * (t - x); }              \
  static inline T l1_dt_##SFX(T x, T t, T w, T pw, T b) { return (T)((t > x) - (t < x)); }    \
  static inline T smooth_l1_dt_##SFX(T x, T t, T w, T pw, T b) {                              \
    return -smooth_l1_dx_##SFX(x, t, w, pw, b);                                               \
  }                                                                                           \
  static inline T bce_dx_##SFX(T x, T t, T w, T pw, T b) {                                    \
    T den = (1 - x) * x;                                                                      \
    return w * (x - t) / (den > (T)1e-12 ? den : (T)1e-12);                                   \
  }                                                                                           \
  static inline T bce_dt_##SFX(T x, T t, T w, T pw, T b) {                                    \
    return w * (clamped_log_##SFX(LOG1P(-x)) - clamped_log_##SFX(LOG(x)));                    \
  }                                                                                           \
  static inline T bce_logits_dx_##SFX(T x, T t, T w, T pw, T b) {                             \
    return w * ((1 + (pw - 1) * t) / (1 + EXP(-x)) - pw * t);                                 \
  }                                                                                           \
  static inline T bce_logits_dt_##SFX(T x, T t, T w, T pw, T b) {                             \
    return w * (-x + (pw - 1) * softplus_neg_##SFX(x));                                       \
  }

POINTWISE_FORMULAS(float, f32, logf, log1pf, expf)
POINTWISE_FORMULAS(double, f64, log, log1p, exp)

/* Elements [b, e) of one kind: each loss into out, or their sum into *sum.
 * The kind is fixed per loop, so the distances vectorise. */
#define FORWARD_LOOP(T, F)                                                                    \
  do {                                                                                        \
    if (out) {                                                                                \
      _Pragma("omp simd") for (int64_t i = b; i < e; i++)                                     \
        out[i] = F(x[i], t[i], w ? w[i] : 1, pw ? pw[i] : 1, beta);                           \
    } else {                                                                                  \
      _Pragma("omp simd reduction(+:sum)") for (int64_t i = b; i < e; i++)                    \
        sum += F(x[i], t[i], w ? w[i] : 1, pw ? pw[i] : 1, beta);                             \
    }                                                                                         \
  } while (0)

/* gx = s * dF/dx and gt = s * dF/dt for elements [0, n). */
#define BACKWARD_LOOP(T, DX, DT)                                                              \
  _Pragma("omp parallel for if (n > PARALLEL_GRAIN) schedule(static)")                        \
  for (int64_t i = 0; i < n; i++) {                                                           \
    T wi = w ? w[i] : 1, pi = pw ? pw[i] : 1, s = g ? g[i] : g0;                              \
    if (gx) gx[i] = s * DX(x[i], t[i], wi, pi, beta);                                         \
    if (gt) gt[i] = s * DT(x[i], t[i], wi, pi, beta);                                         \
  }

#define POINTWISE_KERNELS(T, SFX)                                                             \
  /* Writes each loss into out, or each chunk's sum (in double) into part[];                  \
   * bad[c] is the first element of chunk c outside [0, 1] (BCE), or -1. */                   \
  static void pointwise_forward_##SFX(const pointwise *P, T *out, double *part,               \
                                      int64_t *bad) {                                         \
    const T *x = (const T *)elem_ptr(P->x), *t = (const T *)elem_ptr(P->t);                   \
    const T *w = P->w ? (const T *)elem_ptr(P->w) : NULL;                                     \
    const T *pw = P->pw ? (const T *)elem_ptr(P->pw) : NULL;                                  \
    const T beta = (T)P->beta;                                                                \
    int64_t nchunks = (P->numel + CHUNK - 1) / CHUNK;                                         \
    _Pragma("omp parallel for if (P->numel > PARALLEL_GRAIN) schedule(static)")               \
    for (int64_t c = 0; c < nchunks; c++) {                                                   \
      int64_t b = c * CHUNK, e = b + CHUNK < P->numel ? b + CHUNK : P->numel;                 \
      double sum = 0;                                                                         \
      bad[c] = -1;                                                                            \
      switch (P->kind) {                                                                      \
      case MSE: FORWARD_LOOP(T, mse_##SFX); break;                                            \
      case L1: FORWARD_LOOP(T, l1_##SFX); break;                                              \
      case SMOOTH_L1: FORWARD_LOOP(T, smooth_l1_##SFX); break;                                \
      case BCE:                                                                               \
        for (int64_t i = b; i < e && bad[c] < 0; i++)                                         \
          if (!(x[i] >= 0 && x[i] <= 1)) bad[c] = i;                                          \
        FORWARD_LOOP(T, bce_##SFX);                                                           \
        break;                                                                                \
      case BCE_LOGITS: FORWARD_LOOP(T, bce_logits_##SFX); break;                              \
      }                                                                                       \
      part[c] = sum;                                                                          \
    }                                                                                         \
  }                                                                                           \
                                                                                              \
  static void pointwise_backward_##SFX(const pointwise *P, const T *g, double g0d, T *gx,     \
                                       T *gt) {                                               \
    const T *x = (const T *)elem_ptr(P->x), *t = (const T *)elem_ptr(P->t);                   \
    const T *w = P->w ? (const T *)elem_ptr(P->w) : NULL;                                     \
    const T *pw = P->pw ? (const T *)elem_ptr(P->pw) : NULL;                                  \
    const T beta = (T)P->beta, g0 = (T)g0d;                                                   \
    const int64_t n = P->numel;                                                               \
    switch (P->kind) {                                                                        \
    case MSE: BACKWARD_LOOP(T, mse_dx_##SFX, mse_dt_##SFX) break;                             \
    case L1: BACKWARD_LOOP(T, l1_dx_##SFX, l1_dt_##SFX) break;                                \
    case SMOOTH_L1: BACKWARD_LOOP(T, smooth_l1_dx_##SFX, smooth_l1_dt_##SFX) break;           \
    case BCE: BACKWARD_LOOP(T, bce_dx_##SFX, bce_dt_##SFX) break;                             \
    case BCE_LOGITS: BACKWARD_LOOP(T, bce_logits_dx_##SFX, bce_logits_dt_##SFX) break;        \
    }                                                                                         \
  }

POINTWISE_KERNELS(float, f32)
POINTWISE_KERNELS(double, f64)

static void pointwise_free(pointwise *P) {
  fc_release(P->x), fc_release(P->t), fc_release(P->w), fc_release(P->pw);
}

/* Checks the operands and makes them dense over the common shape. */
static int pointwise_setup(pointwise *P, fc_tensor *input, fc_tensor *target, fc_tensor *weight,
                           fc_tensor *pos_weight) {
  const char *op = P->op;
  fc_tensor *all[4] = {input, target, weight, pos_weight};
  int n = 2 + (weight != NULL);
  if (pos_weight) all[n++] = pos_weight;
  if (check_same_device(op, n, (const fc_tensor *const *)all) < 0) return -1;
  if (check_reduction(op, P->reduction) < 0) return -1;
  int rt = result_type(input, target);
  if (!is_float_dtype(rt))
    FAIL_INT("%s: needs floating point input, got %s and %s", op, DTYPE(input), DTYPE(target));
  if (P->kind >= BCE) { /* PyTorch insists on equal shapes here */
    if (!same_shape(input->ndim, input->shape, target->ndim, target->shape))
      FAIL_INT("%s: target of shape %s must match input of shape %s", op, SHAPE(target),
               SHAPE(input));
    P->ndim = input->ndim;
    memcpy(P->shape, input->shape, sizeof(int64_t) * (size_t)input->ndim);
  } else if (broadcast_shapes(op, input->ndim, input->shape, target->ndim, target->shape,
                              &P->ndim, P->shape) < 0) {
    return -1;
  }
  fc_tensor *extra[2] = {weight, pos_weight};
  const char *names[2] = {"weight", "pos_weight"};
  for (int i = 0; i < 2; i++) {
    if (!extra[i]) continue;
    int nd;
    int64_t s[FC_MAX_DIMS];
    if (!is_float_dtype(extra[i]->dtype))
      FAIL_INT("%s: %s must be floating point, got %s", op, names[i], DTYPE(extra[i]));
    if (broadcast_shapes(op, extra[i]->ndim, extra[i]->shape, P->ndim, P->shape, &nd, s) < 0 ||
        !same_shape(nd, s, P->ndim, P->shape))
      FAIL_INT("%s: %s of shape %s does not broadcast to input of shape %s", op, names[i],
               SHAPE(extra[i]), SHAPE(input));
  }
  P->out_dtype = rt;
  P->dtype = kernel_dtype(rt);
  P->numel = shape_numel(P->ndim, P->shape);
  P->x = dense(input, P->dtype, P->ndim, P->shape);
  P->t = P->x ? dense(target, P->dtype, P->ndim, P->shape) : NULL;
  P->w = P->t && weight ? dense(weight, P->dtype, P->ndim, P->shape) : NULL;
  P->pw = P->t && pos_weight ? dense(pos_weight, P->dtype, P->ndim, P->shape) : NULL;
  return P->t && (!weight || P->w) && (!pos_weight || P->pw) ? 0 : -1;
}

static int pointwise_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  pointwise P = {.op = n->op, .kind = (pointwise_kind)n->iarg[0],
                 .reduction = (int)n->iarg[1], .beta = n->arg[0]};
  if (pointwise_setup(&P, n->saved[0], n->saved[1], n->saved[2], n->saved[3]) < 0) {
    pointwise_free(&P);
    return -1;
  }
  bool per_elem = P.reduction == FC_REDUCE_NONE;
  fc_tensor *gd = per_elem ? dense(g, P.dtype, P.ndim, P.shape) : NULL;
  double g0 = 0;
  if (!per_elem) {
    fc_item(g, &g0);
    if (P.reduction == FC_REDUCE_MEAN) g0 /= (double)P.numel;
  }
  fc_tensor *gx = needs(n, 0) ? fc_empty(P.ndim, P.shape, P.dtype, g->device) : NULL;
  fc_tensor *gt = needs(n, 1) ? fc_empty(P.ndim, P.shape, P.dtype, g->device) : NULL;
  int rc = (per_elem && !gd) || (needs(n, 0) && !gx) || (needs(n, 1) && !gt) ? -1 : 0;
  if (rc == 0 && P.numel > 0) {
    if (P.dtype == FC_FLOAT64)
      pointwise_backward_f64(&P, data(gd), g0, data(gx), data(gt));
    else
      pointwise_backward_f32(&P, data(gd), g0, data(gx), data(gt));
  }
  fc_release(gd);
  pointwise_free(&P);
  gi[0] = gx, gi[1] = gt;
  return rc;
}

static fc_tensor *pointwise_loss(pointwise_kind kind, fc_tensor *input, fc_tensor *target,
                                 fc_tensor *weight, fc_tensor *pos_weight, double beta,
                                 int reduction) {
  const char *op = pointwise_names[kind];
  pointwise P = {.op = op, .kind = kind, .reduction = reduction, .beta = beta};
  if (kind == SMOOTH_L1 && !(beta >= 0))
    FAIL("%s: beta must be non-negative, got %g", op, beta);
  if (kind == SMOOTH_L1 && beta == 0) P.kind = L1; /* PyTorch: beta 0 is l1_loss */
  if (pointwise_setup(&P, input, target, weight, pos_weight) < 0) {
    pointwise_free(&P);
    return NULL;
  }
  int64_t nchunks = (P.numel + CHUNK - 1) / CHUNK;
  double *part = malloc(sizeof(double) * (size_t)(nchunks + 1));
  int64_t *bad = malloc(sizeof(int64_t) * (size_t)(nchunks + 1));
  bool per_elem = reduction == FC_REDUCE_NONE;
  fc_tensor *out =
      part && bad ? fc_empty(per_elem ? P.ndim : 0, P.shape, P.dtype, input->device) : NULL;
  if (!part || !bad) fc_set_error("%s: out of memory", op);
  if (out && P.numel > 0) {
    if (P.dtype == FC_FLOAT64)
      pointwise_forward_f64(&P, per_elem ? data(out) : NULL, part, bad);
    else
      pointwise_forward_f32(&P, per_elem ? data(out) : NULL, part, bad);
    for (int64_t c = 0; c < nchunks && out; c++)
      if (bad[c] >= 0) {
        double v = P.dtype == FC_FLOAT64 ? ((double *)elem_ptr(P.x))[bad[c]]
                                         : ((float *)elem_ptr(P.x))[bad[c]];
        fc_set_error("%s: all elements of input should be between 0 and 1, got %g", op, v);
        fc_release(out);
        out = NULL;
      }
  }
  if (out && !per_elem) { /* the chunk sums, in order */
    double total = 0;
    for (int64_t c = 0; c < nchunks; c++) total += part[c];
    if (reduction == FC_REDUCE_MEAN) total /= (double)P.numel;
    store_from_double(elem_ptr(out), P.dtype, total);
  }
  free(part);
  free(bad);
  if (out && P.dtype != P.out_dtype) {
    fc_tensor *h = fc_to_dtype(out, P.out_dtype);
    fc_release(out);
    out = h;
  }
  fc_tensor *in[2] = {input, target};
  if (out && is_float_dtype(input->dtype) && grad_needed(2, in)) {
    fc_node *n = record(op, pointwise_backward, out, 2, in);
    if (!n) {
      fc_release(out);
      out = NULL;
    } else {
      fc_tensor *slots[4] = {input, target, weight, pos_weight};
      for (int i = 0; i < 4; i++)
        if (slots[i]) n->nsaved = i, node_save(n, slots[i]);
      n->nsaved = 4;
      n->iarg[0] = P.kind, n->iarg[1] = reduction;
      n->arg[0] = beta;
    }
  }
  pointwise_free(&P);
  return out;
}

fc_tensor *fc_mse_loss(fc_tensor *input, fc_tensor *target, int reduction) {
  return pointwise_loss(MSE, input, target, NULL, NULL, 0, reduction);
}
fc_tensor *fc_l1_loss(fc_tensor *input, fc_tensor *target, int reduction) {
  return pointwise_loss(L1, input, target, NULL, NULL, 0, reduction);
}
fc_tensor *fc_smooth_l1_loss(fc_tensor *input, fc_tensor *target, double beta, int reduction) {
  return pointwise_loss(SMOOTH_L1, input, target, NULL, NULL, beta, reduction);
}
fc_tensor *fc_binary_cross_entropy(fc_tensor *input, fc_tensor *target, fc_tensor *weight,
                                   int reduction) {
  return pointwise_loss(BCE, input, target, weight, NULL, 0, reduction);
}
fc_tensor *fc_binary_cross_entropy_with_logits(fc_tensor *input, fc_tensor *target,
                                               fc_tensor *weight, fc_tensor *pos_weight,
                                               int reduction) {
  return pointwise_loss(BCE_LOGITS, input, target, weight, pos_weight, 0, reduction);
}
