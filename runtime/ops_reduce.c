/* ops_reduce.c — reductions over any set of dims (sum, mean, prod, amax,
 * amin, all, any, norm, var, std, logsumexp) with their backward.
 *
 * A reduction is planned as `outer` output elements, each folding `inner`
 * input elements. The input is viewed with the kept dims first and the
 * reduced dims last, each group coalesced, so the common cases become one
 * contiguous run per output (rows) or a row-wise accumulation (columns). */
#include "internal.h"
#include <stdlib.h>

typedef enum { R_SUM, R_PROD, R_MAX, R_MIN, R_ALL, R_ANY, R_ABSPOW, R_ABSMAX, R_ABSMIN, R_NONZERO } reduce_kind;

typedef struct plan {
  int nk, nr;                     /* kept and reduced dims after coalescing */
  int64_t kshape[FC_MAX_DIMS], kstride[FC_MAX_DIMS];
  int64_t rshape[FC_MAX_DIMS], rstride[FC_MAX_DIMS];
  int64_t outer, inner;
} plan;

/* Merges adjacent dims that step through memory as one. */
static int coalesce(int n, int64_t *shape, int64_t *stride) {
  int m = 0;
  for (int d = 0; d < n; d++) {
    if (shape[d] == 1) continue;
    if (m > 0 && stride[m - 1] == stride[d] * shape[d]) {
      shape[m - 1] *= shape[d];
      stride[m - 1] = stride[d];
    } else {
      shape[m] = shape[d];
      stride[m++] = stride[d];
    }
  }
  return m;
}

static void make_plan(const fc_tensor *t, const bool *reduce, plan *p) {
  p->nk = p->nr = 0;
  p->outer = p->inner = 1;
  for (int d = 0; d < t->ndim; d++) {
    if (reduce[d]) {
      p->rshape[p->nr] = t->shape[d];
      p->rstride[p->nr++] = t->stride[d];
      p->inner *= t->shape[d];
    } else {
      p->kshape[p->nk] = t->shape[d];
      p->kstride[p->nk++] = t->stride[d];
      p->outer *= t->shape[d];
    }
  }
  p->nk = coalesce(p->nk, p->kshape, p->kstride);
  p->nr = coalesce(p->nr, p->rshape, p->rstride);
}

/* Element offset of the i-th position in a coalesced dim group. */
static int64_t group_offset(int n, const int64_t *shape, const int64_t *stride, int64_t i) {
  int64_t off = 0;
  for (int d = n - 1; d >= 0; d--) {
    off += (i % shape[d]) * stride[d];
    i /= shape[d];
  }
  return off;
}

/* ---- folding a run ---------------------------------------------------- */

typedef struct fold { reduce_kind kind; double p; } fold;

static double fold_init(reduce_kind k) {
  switch (k) {
  case R_PROD: case R_ALL: return 1;
  case R_MAX: return -INFINITY;
  case R_MIN: case R_ABSMIN: return INFINITY;
  default: return 0;
  }
}

static inline double fold_step(const fold *f, double acc, double x) {
  switch (f->kind) {
  case R_SUM: return acc + x;
  case R_PROD: return acc * x;
  case R_MAX: return (x > acc || x != x) && acc == acc ? x : acc;
  case R_MIN: return (x < acc || x != x) && acc == acc ? x : acc;
  case R_ALL: return acc && x != 0;
  case R_ANY: return acc || x != 0;
  case R_ABSPOW: return acc + pow(fabs(x), f->p);
  case R_ABSMAX: return fabs(x) > acc || x != x ? fabs(x) : acc;
  case R_ABSMIN: return fabs(x) < acc || x != x ? fabs(x) : acc;
  case R_NONZERO: return acc + (x != 0);
  }
  return acc;
}

/* Combines two partial results of the same fold. */
static double fold_merge(const fold *f, double a, double b) {
  switch (f->kind) {
  case R_PROD: return a * b;
  case R_MAX: case R_ABSMAX: return a != a || b > a ? b : a;
  case R_MIN: case R_ABSMIN: return a != a || b < a ? b : a;
  case R_ALL: return a && b;
  case R_ANY: return a || b;
  default: return a + b;
  }
}

/* Contiguous float sums: blocks of 256 are summed in sixteen float lanes
 * (vectorised, cheap) and the block sums in double, so 16M-element sums stay
 * accurate without converting every element. */
static double sum_f32(const float *x, int64_t n) {
  double s = 0;
  int64_t i = 0;
  for (; i + 256 <= n; i += 256) {
    float acc[16] = {0};
    for (int64_t k = 0; k < 256; k += 16)
      for (int j = 0; j < 16; j++) acc[j] += x[i + k + j];
    float block = 0;
    for (int j = 0; j < 16; j++) block += acc[j];
    s += block;
  }
  for (; i < n; i++) s += x[i];
  return s;
}

static double sum_f64(const double *x, int64_t n) {
  double acc[8] = {0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) acc[j] += x[i + j];
  double s = 0;
  for (; i < n; i++) s += x[i];
  for (int j = 0; j < 8; j++) s += acc[j];
  return s;
}

/* Folds n elements from p with element stride s (in elements) of dtype. */
static double fold_run(const fold *f, const char *p, int dtype, int64_t s, int64_t n) {
  if (f->kind == R_SUM && s == 1 && dtype == FC_FLOAT32) return sum_f32((const float *)p, n);
  if (f->kind == R_SUM && s == 1 && dtype == FC_FLOAT64) return sum_f64((const double *)p, n);
  double acc = fold_init(f->kind);
  if (dtype == FC_FLOAT32) {
    for (int64_t i = 0; i < n; i++) acc = fold_step(f, acc, ((const float *)p)[i * s]);
  } else if (dtype == FC_FLOAT64) {
    for (int64_t i = 0; i < n; i++) acc = fold_step(f, acc, ((const double *)p)[i * s]);
  } else {
    int es = fc_dtype_size(dtype);
    for (int64_t i = 0; i < n; i++) acc = fold_step(f, acc, load_as_double(p + i * s * es, dtype));
  }
  return acc;
}

/* Folds the whole reduced group for output element o. */
static double fold_group(const fold *f, const fc_tensor *t, const plan *p, int64_t base) {
  int es = fc_dtype_size(t->dtype);
  const char *data = (const char *)t->storage->data;
  if (p->nr <= 1) {
    int64_t s = p->nr ? p->rstride[0] : 1;
    return fold_run(f, data + base * es, t->dtype, s, p->inner);
  }
  /* runs along the innermost reduced dim */
  int64_t run = p->rshape[p->nr - 1], s = p->rstride[p->nr - 1], runs = p->inner / run;
  double acc = fold_init(f->kind);
  for (int64_t r = 0; r < runs; r++) {
    int64_t off = base + group_offset(p->nr - 1, p->rshape, p->rstride, r);
    acc = fold_merge(f, acc, fold_run(f, data + off * es, t->dtype, s, run));
  }
  return acc;
}

/* One output: the whole tensor folded, split across threads. */
static double fold_all(const fold *f, const fc_tensor *t, const plan *p) {
  if (p->nr > 1 || p->inner < 4 * PARALLEL_GRAIN || num_threads() < 2) return fold_group(f, t, p, t->offset);
  int nt = num_threads();
  double part[64];
  if (nt > 64) nt = 64;
  int es = fc_dtype_size(t->dtype);
  int64_t s = p->nr ? p->rstride[0] : 1, n = p->inner;
  const char *data = (const char *)t->storage->data + t->offset * es;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int c = 0; c < nt; c++) {
    int64_t b = n * c / nt, e = n * (c + 1) / nt;
    part[c] = fold_run(f, data + b * s * es, t->dtype, s, e - b);
  }
  double acc = fold_init(f->kind);
  for (int c = 0; c < nt; c++) acc = fold_merge(f, acc, part[c]);
  return acc;
}

/* Writes fold results as doubles into out[outer]. */
static void reduce_to_doubles(const fold *f, const fc_tensor *t, const plan *p, double *out) {
  if (p->outer == 1) {
    out[0] = fold_all(f, t, p);
    return;
  }
  /* Columns: the reduced dims are outer in memory and the kept dims form
   * one contiguous run, so whole rows are accumulated at a time. */
  if (p->nk == 1 && p->kstride[0] == 1 && p->nr == 1 && t->dtype == FC_FLOAT32 &&
      (f->kind == R_SUM || f->kind == R_MAX || f->kind == R_MIN)) {
    const float *x = (const float *)t->storage->data + t->offset;
    int64_t cols = p->outer, rows = p->inner, rs = p->rstride[0];
#pragma omp parallel for if (cols * rows > PARALLEL_GRAIN) schedule(static)
    for (int64_t c = 0; c < cols; c++) out[c] = fold_init(f->kind);
    int nt = num_threads();
    int64_t chunk = (cols + nt - 1) / nt;
#pragma omp parallel for if (cols * rows > PARALLEL_GRAIN && cols >= 64) schedule(static)
    for (int tid = 0; tid < nt; tid++) {
      int64_t c0 = tid * chunk, c1 = c0 + chunk < cols ? c0 + chunk : cols;
      for (int64_t r = 0; r < rows; r++)
        for (int64_t c = c0; c < c1; c++) out[c] = fold_step(f, out[c], x[r * rs + c]);
    }
    return;
  }
#pragma omp parallel for if (p->outer * p->inner > PARALLEL_GRAIN) schedule(static)
  for (int64_t o = 0; o < p->outer; o++)
    out[o] = fold_group(f, t, p, t->offset + group_offset(p->nk, p->kshape, p->kstride, o));
}

/* ---- entry points ------------------------------------------------------ */

/* Marks the reduced dims; ndims == 0 means all. -1 on a bad or repeated dim. */
static int reduced_dims(const char *op, const fc_tensor *t, int ndims, const int *dims, bool *reduce) {
  memset(reduce, 0, sizeof(bool) * FC_MAX_DIMS);
  if (ndims == 0) {
    for (int d = 0; d < t->ndim; d++) reduce[d] = true;
    return 0;
  }
  for (int i = 0; i < ndims; i++) {
    int d = wrap_dim(op, dims[i], t->ndim);
    if (d < 0) return -1;
    if (t->ndim == 0) continue;
    if (reduce[d]) FAIL_INT("%s: dim %d appears more than once", op, dims[i]);
    reduce[d] = true;
  }
  return 0;
}

static fc_tensor *out_shaped(const fc_tensor *t, const bool *reduce, int keepdim, int dtype) {
  int64_t shape[FC_MAX_DIMS];
  int n = 0;
  for (int d = 0; d < t->ndim; d++) {
    if (!reduce[d]) shape[n++] = t->shape[d];
    else if (keepdim) shape[n++] = 1;
  }
  return fc_empty(n, shape, dtype, t->device);
}

static bool reduces_empty(const fc_tensor *t, const bool *reduce) {
  for (int d = 0; d < t->ndim; d++)
    if (reduce[d] && t->shape[d] == 0) return true;
  return false;
}

/* Runs a fold into a new tensor of out_dtype; doubles are stored converted. */
static fc_tensor *reduce_op(const char *op, fc_tensor *t, int ndims, const int *dims, int keepdim,
                            fold f, int out_dtype, bool empty_ok) {
  if (check_same_device(op, 1, (const fc_tensor *const[]){t}) < 0) return NULL;
  bool reduce[FC_MAX_DIMS];
  if (reduced_dims(op, t, ndims, dims, reduce) < 0) return NULL;
  if (!empty_ok && reduces_empty(t, reduce))
    FAIL("%s: cannot reduce over an empty dim of a tensor of shape %s", op, SHAPE(t));
  plan p;
  make_plan(t, reduce, &p);
  fc_tensor *out = out_shaped(t, reduce, keepdim, out_dtype);
  if (!out) return NULL;
  double *acc = malloc(sizeof(double) * (size_t)(p.outer + 1));
  if (!acc) {
    fc_release(out);
    FAIL("%s: out of memory", op);
  }
  if (p.inner == 0) {
    for (int64_t o = 0; o < p.outer; o++) acc[o] = fold_init(f.kind);
  } else {
    reduce_to_doubles(&f, t, &p, acc);
  }
  char *o = elem_ptr(out);
  int es = fc_dtype_size(out_dtype);
  for (int64_t i = 0; i < p.outer; i++) store_from_double(o + i * es, out_dtype, acc[i]);
  free(acc);
  return out;
}

/* int64 sums and products stay exact: they are folded in integer arithmetic. */
static fc_tensor *integer_fold(const char *op, fc_tensor *t, int ndims, const int *dims, int keepdim,
                               bool product) {
  bool reduce[FC_MAX_DIMS];
  if (reduced_dims(op, t, ndims, dims, reduce) < 0) return NULL;
  plan p;
  make_plan(t, reduce, &p);
  fc_tensor *out = out_shaped(t, reduce, keepdim, FC_INT64);
  if (!out) return NULL;
  int64_t *o = (int64_t *)elem_ptr(out);
  int es = fc_dtype_size(t->dtype);
  const char *data = (const char *)t->storage->data;
  for (int64_t i = 0; i < p.outer; i++) {
    uint64_t acc = product;
    int64_t base = t->offset + group_offset(p.nk, p.kshape, p.kstride, i);
    for (int64_t r = 0; r < p.inner; r++) {
      const char *e = data + (base + group_offset(p.nr, p.rshape, p.rstride, r)) * es;
      int64_t v = t->dtype == FC_INT64 ? *(const int64_t *)e : (int64_t)load_as_double(e, t->dtype);
      acc = product ? acc * (uint64_t)v : acc + (uint64_t)v;
    }
    o[i] = (int64_t)acc;
  }
  return out;
}

static int sum_backward(fc_node *n, fc_tensor *g, fc_tensor **gi);
static int mean_backward(fc_node *n, fc_tensor *g, fc_tensor **gi);

/* Records a reduction's node: iarg[0..] hold the keepdim shape of the output
 * so the backward can broadcast g back over the reduced dims. */
static fc_tensor *record_reduce(const char *op, backward_fn fn, fc_tensor *out, fc_tensor *t,
                                int ndims, const int *dims) {
  if (!out || !is_float_dtype(out->dtype) || !grad_needed(1, &t)) return out;
  fc_node *n = record(op, fn, out, 1, &t);
  if (!n) {
    fc_release(out);
    return NULL;
  }
  bool reduce[FC_MAX_DIMS];
  reduced_dims(op, t, ndims, dims, reduce);
  for (int d = 0; d < t->ndim; d++) n->iarg[d] = reduce[d] ? 1 : t->shape[d];
  return out;
}

fc_tensor *fc_sum(fc_tensor *t, int ndims, const int *dims, int keepdim) {
  if (check_same_device("sum", 1, (const fc_tensor *const[]){t}) < 0) return NULL;
  if (!is_float_dtype(t->dtype)) return integer_fold("sum", t, ndims, dims, keepdim, false);
  fc_tensor *out = reduce_op("sum", t, ndims, dims, keepdim, (fold){R_SUM, 0}, t->dtype, true);
  return record_reduce("sum", sum_backward, out, t, ndims, dims);
}

fc_tensor *fc_prod(fc_tensor *t, int ndims, const int *dims, int keepdim) {
  if (check_same_device("prod", 1, (const fc_tensor *const[]){t}) < 0) return NULL;
  if (!is_float_dtype(t->dtype)) return integer_fold("prod", t, ndims, dims, keepdim, true);
  if (grad_needed(1, &t)) FAIL("prod: backward is not implemented yet; detach() the input");
  return reduce_op("prod", t, ndims, dims, keepdim, (fold){R_PROD, 0}, t->dtype, true);
}

fc_tensor *fc_mean(fc_tensor *t, int ndims, const int *dims, int keepdim) {
  if (check_same_device("mean", 1, (const fc_tensor *const[]){t}) < 0) return NULL;
  if (!is_float_dtype(t->dtype))
    FAIL("mean: needs a floating point tensor, got %s; convert it first", DTYPE(t));
  int prev = grad_mode_push(false);
  fc_tensor *s = fc_sum(t, ndims, dims, keepdim);
  grad_mode_pop(prev);
  if (!s) return NULL;
  double count = s->numel ? (double)t->numel / (double)s->numel : 0;
  if (t->numel == 0 && s->numel) { /* every output folds zero elements */
    fc_fill_(s, NAN);
    count = 1;
  }
  fc_tensor *c = fc_scalar(count, s->dtype, s->device);
  int rc = c ? fc_div_(s, c) : -1;
  fc_release(c);
  if (rc < 0) {
    fc_release(s);
    return NULL;
  }
  return record_reduce("mean", mean_backward, s, t, ndims, dims);
}

static int extreme_backward(fc_node *n, fc_tensor *g, fc_tensor **gi);

static fc_tensor *extreme(const char *op, fc_tensor *t, int ndims, const int *dims, int keepdim,
                          reduce_kind k) {
  fc_tensor *out = reduce_op(op, t, ndims, dims, keepdim, (fold){k, 0}, t->dtype, false);
  out = record_reduce(op, extreme_backward, out, t, ndims, dims);
  if (out && out->grad_fn) {
    node_save(out->grad_fn, t);
    node_save(out->grad_fn, out);
  }
  return out;
}
fc_tensor *fc_amax(fc_tensor *t, int ndims, const int *dims, int keepdim) {
  return extreme("amax", t, ndims, dims, keepdim, R_MAX);
}
fc_tensor *fc_amin(fc_tensor *t, int ndims, const int *dims, int keepdim) {
  return extreme("amin", t, ndims, dims, keepdim, R_MIN);
}

fc_tensor *fc_all(fc_tensor *t, int ndims, const int *dims, int keepdim) {
  return reduce_op("all", t, ndims, dims, keepdim, (fold){R_ALL, 0}, FC_BOOL, true);
}
fc_tensor *fc_any(fc_tensor *t, int ndims, const int *dims, int keepdim) {
  return reduce_op("any", t, ndims, dims, keepdim, (fold){R_ANY, 0}, FC_BOOL, true);
}

/* p-norms: 2 (default), 1, inf, -inf, 0 (count of non-zeros), any other p. */
fc_tensor *fc_norm(fc_tensor *t, double p, int ndims, const int *dims, int keepdim) {
  if (check_same_device("norm", 1, (const fc_tensor *const[]){t}) < 0) return NULL;
  if (!is_float_dtype(t->dtype)) FAIL("norm: needs a floating point tensor, got %s", DTYPE(t));
  if (p == 2 || p == 1) { /* differentiable compositions */
    fc_tensor *a = p == 2 ? fc_mul(t, t) : fc_abs(t);
    fc_tensor *s = a ? fc_sum(a, ndims, dims, keepdim) : NULL;
    fc_tensor *r = s && p == 2 ? fc_sqrt(s) : fc_retain(s);
    fc_release(a);
    fc_release(s);
    return r;
  }
  if (grad_needed(1, &t)) FAIL("norm: backward is implemented for p = 1 and 2 only");
  fold f = {p == INFINITY ? R_ABSMAX : p == -INFINITY ? R_ABSMIN : p == 0 ? R_NONZERO : R_ABSPOW, p};
  fc_tensor *r = reduce_op("norm", t, ndims, dims, keepdim, f, t->dtype, true);
  if (r && f.kind == R_ABSPOW) {
    fc_tensor *e = fc_scalar(1 / p, t->dtype, t->device);
    int rc = e ? fc_pow_(r, e) : -1;
    fc_release(e);
    if (rc < 0) {
      fc_release(r);
      return NULL;
    }
  }
  return r;
}

/* var = sum((x - mean)^2) / (N - correction), composed so it differentiates. */
fc_tensor *fc_var(fc_tensor *t, int ndims, const int *dims, int correction, int keepdim) {
  if (check_same_device("var", 1, (const fc_tensor *const[]){t}) < 0) return NULL;
  if (!is_float_dtype(t->dtype)) FAIL("var: needs a floating point tensor, got %s", DTYPE(t));
  bool reduce[FC_MAX_DIMS];
  if (reduced_dims("var", t, ndims, dims, reduce) < 0) return NULL;
  int64_t count = 1;
  for (int d = 0; d < t->ndim; d++)
    if (reduce[d]) count *= t->shape[d];
  fc_tensor *m = fc_mean(t, ndims, dims, 1);
  fc_tensor *dev = m ? fc_sub(t, m) : NULL, *sq = dev ? fc_mul(dev, dev) : NULL;
  fc_tensor *s = sq ? fc_sum(sq, ndims, dims, keepdim) : NULL;
  double denom = (double)(count - correction);
  fc_tensor *c = s ? fc_scalar(denom > 0 ? denom : 0, s->dtype, s->device) : NULL;
  fc_tensor *r = c ? fc_div(s, c) : NULL;
  fc_release(m), fc_release(dev), fc_release(sq), fc_release(s), fc_release(c);
  return r;
}

fc_tensor *fc_std(fc_tensor *t, int ndims, const int *dims, int correction, int keepdim) {
  fc_tensor *v = fc_var(t, ndims, dims, correction, keepdim);
  fc_tensor *r = v ? fc_sqrt(v) : NULL;
  fc_release(v);
  return r;
}

/* log(sum(exp(x))) shifted by the max so it neither overflows nor underflows. */
fc_tensor *fc_logsumexp(fc_tensor *t, int ndims, const int *dims, int keepdim) {
  if (check_same_device("logsumexp", 1, (const fc_tensor *const[]){t}) < 0) return NULL;
  if (!is_float_dtype(t->dtype)) FAIL("logsumexp: needs a floating point tensor, got %s", DTYPE(t));
  int prev = grad_mode_push(false);
  fc_tensor *m = reduce_op("logsumexp", t, ndims, dims, 1, (fold){R_MAX, 0}, t->dtype, false);
  grad_mode_pop(prev);
  if (!m) return NULL;
  /* an all -inf (or inf) slice would give inf - inf: shift by 0 there */
  fc_tensor *am = fc_abs(m), *inf = fc_scalar(INFINITY, t->dtype, t->device);
  fc_tensor *isf = am && inf ? fc_lt(am, inf) : NULL, *zero = fc_scalar(0, t->dtype, t->device);
  fc_tensor *shift = isf && zero ? fc_where(isf, m, zero) : NULL;
  fc_tensor *d = shift ? fc_sub(t, shift) : NULL, *e = d ? fc_exp(d) : NULL;
  fc_tensor *s = e ? fc_sum(e, ndims, dims, 1) : NULL, *l = s ? fc_log(s) : NULL;
  fc_tensor *r = l ? fc_add(l, shift) : NULL;
  fc_release(m), fc_release(am), fc_release(inf), fc_release(isf), fc_release(zero), fc_release(shift);
  fc_release(d), fc_release(e), fc_release(s), fc_release(l);
  if (r && !keepdim) {
    bool reduce[FC_MAX_DIMS];
    reduced_dims("logsumexp", t, ndims, dims, reduce);
    int64_t shape[FC_MAX_DIMS];
    int n = 0;
    for (int dd = 0; dd < t->ndim; dd++)
      if (!reduce[dd]) shape[n++] = t->shape[dd];
    fc_tensor *v = fc_reshape(r, n, shape);
    fc_release(r);
    r = v;
  }
  return r;
}

/* ---- gradients ---------------------------------------------------------- */

/* g viewed with the reduced dims kept as size 1 (iarg holds that shape),
 * so it broadcasts against the input. */
static fc_tensor *g_keepdim(fc_node *n, fc_tensor *g) {
  return fc_reshape(g, n->in_ndim[0], n->iarg);
}

static int sum_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  fc_tensor *k = g_keepdim(n, g);
  gi[0] = k ? fc_expand(k, n->in_ndim[0], n->in_shape[0]) : NULL;
  fc_release(k);
  return gi[0] ? 0 : -1;
}

static int mean_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  int64_t in = shape_numel(n->in_ndim[0], n->in_shape[0]), out = g->numel;
  fc_tensor *k = g_keepdim(n, g);
  fc_tensor *c = fc_scalar(out ? (double)out / (double)(in ? in : 1) : 0, g->dtype, g->device);
  gi[0] = k && c ? fc_mul(k, c) : NULL;
  fc_release(k), fc_release(c);
  return gi[0] ? 0 : -1;
}

/* amax/amin: the gradient is shared evenly by the elements equal to the result. */
static int extreme_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  fc_tensor *x = n->saved[0], *out = fc_reshape(n->saved[1], n->in_ndim[0], n->iarg);
  fc_tensor *mask = out ? fc_eq(x, out) : NULL, *fm = mask ? fc_to_dtype(mask, g->dtype) : NULL;
  bool reduce[FC_MAX_DIMS];
  int dims[FC_MAX_DIMS], nd = 0;
  for (int d = 0; d < n->in_ndim[0]; d++) {
    reduce[d] = n->iarg[d] == 1 && n->in_shape[0][d] != 1;
    if (reduce[d] || n->iarg[d] == 1) dims[nd++] = d;
  }
  fc_tensor *cnt = fm ? fc_sum(fm, nd, dims, 1) : NULL, *k = g_keepdim(n, g);
  fc_tensor *share = cnt && k ? fc_div(k, cnt) : NULL;
  gi[0] = share ? fc_mul(fm, share) : NULL;
  fc_release(out), fc_release(mask), fc_release(fm), fc_release(cnt), fc_release(k), fc_release(share);
  return gi[0] ? 0 : -1;
}
