/* ops_sort.c — ops along one dim: max/min with indices, argmax/argmin,
 * cumsum/cumprod, sort and topk, with their backward.
 *
 * Each works on rows: the input is copied with the dim moved last, so a row
 * is a contiguous run of L elements; results come back in the input's dim
 * order. Values are read as double, so every dtype goes the same way. */
#include "internal.h"
#include <stdlib.h>

typedef struct rows {
  fc_tensor *t;  /* contiguous, the dim moved last */
  int dim, ndim; /* the dim in the input's order */
  int64_t R, L;  /* rows, row length */
  double *v;     /* the values as double, R*L */
} rows;

static void rows_free(rows *r) {
  fc_release(r->t);
  free(r->v);
}

static int rows_of(const char *op, fc_tensor *t, int dim, rows *r) {
  memset(r, 0, sizeof *r);
  if (check_same_device(op, 1, (const fc_tensor *const[]){t}) < 0) return -1;
  int d = wrap_dim(op, dim, t->ndim);
  if (d < 0) return -1;
  int perm[FC_MAX_DIMS], n = 0;
  for (int i = 0; i < t->ndim; i++)
    if (i != d) perm[n++] = i;
  if (t->ndim) perm[n] = d;
  int prev = grad_mode_push(false);
  fc_tensor *p = t->ndim ? fc_permute(t, t->ndim, perm) : fc_retain(t);
  r->t = p ? fc_contiguous(p) : NULL;
  grad_mode_pop(prev);
  fc_release(p);
  if (!r->t) return -1;
  r->dim = d;
  r->ndim = t->ndim;
  r->L = t->ndim ? t->shape[d] : 1;
  r->R = r->L ? t->numel / r->L : 0;
  r->v = malloc(sizeof(double) * (size_t)(t->numel + 1));
  if (!r->v) {
    rows_free(r);
    FAIL_INT("%s: out of memory", op);
  }
  fc_to_doubles(r->t, r->v);
  return 0;
}

/* A tensor of the moved layout with row length `len`, filled from doubles. */
static fc_tensor *moved_tensor(const rows *r, int64_t len, const double *vals, int dtype) {
  int64_t shape[FC_MAX_DIMS];
  int n = r->t->ndim;
  memcpy(shape, r->t->shape, sizeof(int64_t) * (size_t)n);
  if (n) shape[n - 1] = len;
  fc_tensor *m = fc_empty(n, shape, dtype, r->t->device);
  if (!m) return NULL;
  char *p = elem_ptr(m);
  int es = fc_dtype_size(dtype);
  for (int64_t i = 0; i < m->numel; i++) store_from_double(p + i * es, dtype, vals[i]);
  return m;
}

/* Back to the input's dim order; keepdim = 0 drops the (length-1) dim. */
static fc_tensor *restore(const rows *r, fc_tensor *m, bool keep) {
  if (!m) return NULL;
  int n = m->ndim, perm[FC_MAX_DIMS];
  if (n == 0) return m;
  for (int i = 0, k = 0; i < n; i++) perm[i] = i == r->dim ? n - 1 : k++;
  int prev = grad_mode_push(false);
  fc_tensor *p = fc_permute(m, n, perm), *c = p ? fc_contiguous(p) : NULL;
  fc_release(p);
  fc_release(m);
  if (c && !keep) {
    fc_tensor *s = fc_squeeze(c, r->dim);
    fc_release(c);
    c = s;
  }
  grad_mode_pop(prev);
  return c;
}

/* ---- gradient: g goes to the positions an index tensor names --------------
 * Saved: the index tensor in the moved layout (0-based) and its row count;
 * iarg[0] = dim, iarg[1] = input ndim. */
static int scatter_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  fc_tensor *idx = n->saved[0];
  int dim = (int)n->iarg[0], nd = n->in_ndim[0];
  int64_t L = nd ? n->in_shape[0][dim] : 1, K = nd ? idx->shape[idx->ndim - 1] : 1;
  int64_t R = K ? idx->numel / K : 0;
  /* g into the moved layout, as doubles */
  rows gr;
  fc_tensor *gk = g;
  if (n->iarg[2] == 0 && nd) gk = fc_unsqueeze(g, dim); /* keepdim was off */
  else fc_retain(gk);
  int rc = gk ? rows_of("backward", gk, dim, &gr) : -1;
  fc_release(gk);
  if (rc < 0) return -1;
  double *out = calloc((size_t)(R * L + 1), sizeof(double));
  const int64_t *ix = (const int64_t *)elem_ptr(idx);
  for (int64_t r = 0; r < R; r++)
    for (int64_t k = 0; k < K; k++) out[r * L + ix[r * K + k]] += gr.v[r * K + k];
  rows shape = gr;
  shape.dim = dim;
  fc_tensor *m = moved_tensor(&shape, L, out, g->dtype);
  free(out);
  rows_free(&gr);
  gi[0] = restore(&shape, m, true);
  return gi[0] ? 0 : -1;
}

static fc_tensor *record_scatter(const char *op, fc_tensor *out, fc_tensor *t, const rows *r,
                                 const int64_t *idx, int64_t K, bool keep) {
  if (!out || !is_float_dtype(out->dtype) || !grad_needed(1, &t)) return out;
  fc_node *n = record(op, scatter_backward, out, 1, &t);
  double *dv = malloc(sizeof(double) * (size_t)(r->R * K + 1));
  fc_tensor *it = NULL;
  if (n && dv) {
    for (int64_t i = 0; i < r->R * K; i++) dv[i] = (double)idx[i];
    it = moved_tensor(r, K, dv, FC_INT64);
  }
  free(dv);
  if (!it) {
    fc_release(out);
    return NULL;
  }
  n->saved[0] = it; /* internal: not a user tensor, so no version to track */
  n->saved_version[0] = it->storage->version;
  n->nsaved = 1;
  n->iarg[0] = r->dim;
  n->iarg[2] = keep;
  return out;
}

/* ---- max / min / argmax / argmin ------------------------------------------- */

/* First index of the extreme of each row; NaN wins, as in PyTorch. */
static void row_extremes(const rows *r, bool max, int64_t *idx, double *val) {
#pragma omp parallel for if (r->R * r->L > PARALLEL_GRAIN) schedule(static)
  for (int64_t i = 0; i < r->R; i++) {
    const double *x = r->v + i * r->L;
    int64_t best = 0;
    for (int64_t j = 1; j < r->L; j++) {
      double a = x[j], b = x[best];
      if (b != b) break;
      if (a != a || (max ? a > b : a < b)) best = j;
    }
    idx[i] = best;
    val[i] = x[best];
  }
}

static fc_tensor *extreme_dim(const char *op, fc_tensor *t, int dim, int keepdim, int64_t base,
                              fc_tensor **indices, bool max, bool want_values) {
  rows r;
  if (rows_of(op, t, dim, &r) < 0) return NULL;
  if (r.L == 0) {
    rows_free(&r);
    FAIL("%s: cannot reduce over an empty dim of a tensor of shape %s", op, SHAPE(t));
  }
  int64_t *idx = malloc(sizeof(int64_t) * (size_t)(r.R + 1));
  double *val = malloc(sizeof(double) * (size_t)(r.R + 1)), *dix = malloc(sizeof(double) * (size_t)(r.R + 1));
  fc_tensor *values = NULL, *ind = NULL;
  if (idx && val && dix) {
    row_extremes(&r, max, idx, val);
    for (int64_t i = 0; i < r.R; i++) dix[i] = (double)(idx[i] + base);
    ind = restore(&r, moved_tensor(&r, 1, dix, FC_INT64), keepdim);
    if (want_values) {
      values = restore(&r, moved_tensor(&r, 1, val, t->dtype), keepdim);
      values = record_scatter(op, values, t, &r, idx, 1, keepdim);
    }
  }
  free(idx), free(val), free(dix);
  rows_free(&r);
  if (!want_values) return ind;
  if (indices && values) *indices = ind;
  else fc_release(ind);
  return values;
}

fc_tensor *fc_max_dim(fc_tensor *t, int dim, int keepdim, int64_t base, fc_tensor **indices) {
  return extreme_dim("max", t, dim, keepdim, base, indices, true, true);
}
fc_tensor *fc_min_dim(fc_tensor *t, int dim, int keepdim, int64_t base, fc_tensor **indices) {
  return extreme_dim("min", t, dim, keepdim, base, indices, false, true);
}

static fc_tensor *arg_extreme(const char *op, fc_tensor *t, int dim, int keepdim, int64_t base, bool max) {
  if (dim != FC_ALL_DIMS) return extreme_dim(op, t, dim, keepdim, base, NULL, max, false);
  if (check_same_device(op, 1, (const fc_tensor *const[]){t}) < 0) return NULL;
  int prev = grad_mode_push(false);
  fc_tensor *flat = fc_reshape(t, 1, (int64_t[]){t->numel});
  grad_mode_pop(prev);
  fc_tensor *r = flat ? extreme_dim(op, flat, 0, 0, base, NULL, max, false) : NULL;
  fc_release(flat);
  if (r && keepdim && t->ndim) { /* every dim kept as size 1 */
    int64_t ones[FC_MAX_DIMS] = {1, 1, 1, 1, 1, 1, 1, 1};
    fc_tensor *v = fc_reshape(r, t->ndim, ones);
    fc_release(r);
    r = v;
  }
  return r;
}
fc_tensor *fc_argmax(fc_tensor *t, int dim, int keepdim, int64_t base) {
  return arg_extreme("argmax", t, dim, keepdim, base, true);
}
fc_tensor *fc_argmin(fc_tensor *t, int dim, int keepdim, int64_t base) {
  return arg_extreme("argmin", t, dim, keepdim, base, false);
}

/* ---- cumulative ops ---------------------------------------------------------- */

static int cumsum_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  rows r;
  if (rows_of("cumsum backward", g, (int)n->iarg[0], &r) < 0) return -1;
  for (int64_t i = 0; i < r.R; i++) { /* suffix sums: the reverse cumsum */
    double *x = r.v + i * r.L, acc = 0;
    for (int64_t j = r.L - 1; j >= 0; j--) x[j] = acc += x[j];
  }
  gi[0] = restore(&r, moved_tensor(&r, r.L, r.v, g->dtype), true);
  rows_free(&r);
  return gi[0] ? 0 : -1;
}

static fc_tensor *cumulative(const char *op, fc_tensor *t, int dim, bool product) {
  if (product && grad_needed(1, &t)) FAIL("cumprod: backward is not implemented yet; detach() the input");
  rows r;
  if (rows_of(op, t, dim, &r) < 0) return NULL;
  for (int64_t i = 0; i < r.R; i++) {
    double *x = r.v + i * r.L, acc = product;
    for (int64_t j = 0; j < r.L; j++) x[j] = acc = product ? acc * x[j] : acc + x[j];
  }
  int dtype = is_float_dtype(t->dtype) ? t->dtype : FC_INT64; /* PyTorch: ints widen */
  fc_tensor *out = restore(&r, moved_tensor(&r, r.L, r.v, dtype), true);
  if (out && !product && is_float_dtype(dtype) && grad_needed(1, &t)) {
    fc_node *n = record(op, cumsum_backward, out, 1, &t);
    if (!n) {
      fc_release(out);
      out = NULL;
    } else {
      n->iarg[0] = r.dim;
    }
  }
  rows_free(&r);
  return out;
}

fc_tensor *fc_cumsum(fc_tensor *t, int dim) { return cumulative("cumsum", t, dim, false); }
fc_tensor *fc_cumprod(fc_tensor *t, int dim) { return cumulative("cumprod", t, dim, true); }

/* ---- sort and topk --------------------------------------------------------- */

typedef struct keyed { double v; int64_t i; } keyed;

/* NaN sorts as the largest value, ties keep their order (stable). */
static int cmp_asc(const void *a, const void *b) {
  const keyed *x = a, *y = b;
  bool xn = x->v != x->v, yn = y->v != y->v;
  if (xn != yn) return xn ? 1 : -1;
  if (!xn && x->v != y->v) return x->v < y->v ? -1 : 1;
  return x->i < y->i ? -1 : x->i > y->i;
}
static int cmp_desc(const void *a, const void *b) {
  const keyed *x = a, *y = b;
  bool xn = x->v != x->v, yn = y->v != y->v;
  if (xn != yn) return xn ? -1 : 1;
  if (!xn && x->v != y->v) return x->v > y->v ? -1 : 1;
  return x->i < y->i ? -1 : x->i > y->i;
}

static fc_tensor *sort_rows(const char *op, fc_tensor *t, int dim, int64_t k, bool descending,
                            int64_t base, fc_tensor **indices) {
  rows r;
  if (rows_of(op, t, dim, &r) < 0) return NULL;
  if (k < 0 || k > r.L) {
    rows_free(&r);
    FAIL("%s: k = %lld out of range for a dim of size %lld", op, (long long)k, (long long)r.L);
  }
  double *val = malloc(sizeof(double) * (size_t)(r.R * k + 1)), *dix = malloc(sizeof(double) * (size_t)(r.R * k + 1));
  int64_t *idx = malloc(sizeof(int64_t) * (size_t)(r.R * k + 1));
  keyed *buf = malloc(sizeof(keyed) * (size_t)(r.L + 1));
  fc_tensor *values = NULL;
  if (val && dix && idx && buf) {
    for (int64_t i = 0; i < r.R; i++) {
      for (int64_t j = 0; j < r.L; j++) buf[j] = (keyed){r.v[i * r.L + j], j};
      qsort(buf, (size_t)r.L, sizeof *buf, descending ? cmp_desc : cmp_asc);
      for (int64_t j = 0; j < k; j++) {
        val[i * k + j] = buf[j].v;
        idx[i * k + j] = buf[j].i;
        dix[i * k + j] = (double)(buf[j].i + base);
      }
    }
    values = restore(&r, moved_tensor(&r, k, val, t->dtype), true);
    values = record_scatter(op, values, t, &r, idx, k, true);
    fc_tensor *ind = values ? restore(&r, moved_tensor(&r, k, dix, FC_INT64), true) : NULL;
    if (values && !ind) {
      fc_release(values);
      values = NULL;
    }
    if (indices && ind) *indices = ind;
    else fc_release(ind);
  } else {
    fc_set_error("%s: out of memory", op);
  }
  free(val), free(dix), free(idx), free(buf);
  rows_free(&r);
  return values;
}

fc_tensor *fc_sort(fc_tensor *t, int dim, int descending, int64_t base, fc_tensor **indices) {
  if (check_same_device("sort", 1, (const fc_tensor *const[]){t}) < 0) return NULL;
  int d = wrap_dim("sort", dim, t->ndim);
  if (d < 0) return NULL;
  return sort_rows("sort", t, d, t->ndim ? t->shape[d] : 1, descending, base, indices);
}

fc_tensor *fc_topk(fc_tensor *t, int64_t k, int dim, int largest, int64_t base, fc_tensor **indices) {
  return sort_rows("topk", t, dim, k, largest, base, indices);
}
