/* ops_index.c — joining, indexing and reordering: cat, stack, index_select,
 * gather, scatter(_add), masked_fill/select, nonzero, one_hot, flip, roll.
 *
 * Index tensors count from `base` (0 from C, 1 from Lua) and every bad
 * index is reported in the caller's own numbering. Ops that only move
 * elements copy bytes, so they serve every dtype alike. */
#include "internal.h"
#include <stdlib.h>

static bool needs(const fc_node *n, int i) { return n->next[i] || n->leaf[i]; }

/* An index tensor's values as int64 (new reference), after checks. */
static fc_tensor *index_values(const char *op, fc_tensor *idx) {
  if (idx->dtype != FC_INT64 && idx->dtype != FC_INT32)
    FAIL("%s: index tensor must be int64 (or int32), got %s", op, DTYPE(idx));
  fc_tensor *i64 = fc_to_dtype(idx, FC_INT64), *c = i64 ? fc_contiguous(i64) : NULL;
  fc_release(i64);
  return c;
}

static int check_index(const char *op, int64_t v, int64_t size, int64_t base) {
  if (v < base || v >= size + base)
    FAIL_INT("%s: index %lld out of range for dim of size %lld (valid %lld..%lld)", op, (long long)v,
             (long long)size, (long long)base, (long long)(size + base - 1));
  return 0;
}

/* ---- cat and stack ------------------------------------------------------ */

static int cat_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  int dim = (int)n->iarg[0];
  int64_t at = 0;
  for (int i = 0; i < n->ninputs; i++) {
    int64_t len = n->in_shape[i][dim];
    if (needs(n, i) && !(gi[i] = fc_narrow(g, dim, at, len))) return -1;
    at += len;
  }
  return 0;
}

static fc_tensor *cat_some(int n, fc_tensor *const *ts, int dim);

fc_tensor *fc_cat(int n, fc_tensor *const *ts, int dim) {
  if (n < 1) FAIL("cat: expects at least one tensor");
  if (check_same_device("cat", n, (const fc_tensor *const *)ts) < 0) return NULL;
  /* autograd nodes hold a few inputs: a long list is joined in rounds */
  if (n > NODE_MAX_INPUTS && grad_needed(n, ts)) {
    fc_tensor *acc = cat_some(NODE_MAX_INPUTS, ts, dim);
    for (int i = NODE_MAX_INPUTS; acc && i < n; i += NODE_MAX_INPUTS - 1) {
      fc_tensor *part[NODE_MAX_INPUTS] = {acc};
      int m = 1;
      while (m < NODE_MAX_INPUTS && i + m - 1 < n) part[m] = ts[i + m - 1], m++;
      fc_tensor *next = cat_some(m, part, dim);
      fc_release(acc);
      acc = next;
    }
    return acc;
  }
  return cat_some(n, ts, dim);
}

static fc_tensor *cat_some(int n, fc_tensor *const *ts, int dim) {
  const fc_tensor *first = ts[0];
  int d = wrap_dim("cat", dim, first->ndim);
  if (d < 0) return NULL;
  if (first->ndim == 0) FAIL("cat: zero-dim tensors cannot be joined; use stack");
  int dtype = first->dtype;
  int64_t shape[FC_MAX_DIMS], total = 0;
  memcpy(shape, first->shape, sizeof shape);
  for (int i = 0; i < n; i++) {
    const fc_tensor *t = ts[i];
    bool same = t->ndim == first->ndim;
    for (int k = 0; same && k < t->ndim; k++) same = k == d || t->shape[k] == first->shape[k];
    if (!same)
      FAIL("cat: tensor %d has shape %s but tensor 0 has shape %s; they must match except in dim %d",
           i, SHAPE(t), SHAPE(first), dim);
    total += t->shape[d];
    dtype = fc_promote_types(dtype, t->dtype);
  }
  shape[d] = total;
  fc_tensor *out = fc_empty(first->ndim, shape, dtype, first->device);
  int64_t at = 0;
  int prev = grad_mode_push(false);
  for (int i = 0; out && i < n; i++) {
    fc_tensor *slot = fc_narrow(out, d, at, ts[i]->shape[d]);
    int rc = slot ? fc_copy_(slot, ts[i]) : -1;
    fc_release(slot);
    if (rc < 0) {
      fc_release(out);
      out = NULL;
    }
    at += ts[i]->shape[d];
  }
  grad_mode_pop(prev);
  if (out && is_float_dtype(dtype) && grad_needed(n, ts)) {
    fc_node *node = record("cat", cat_backward, out, n, ts);
    if (!node) {
      fc_release(out);
      return NULL;
    }
    node->iarg[0] = d;
  }
  return out;
}

fc_tensor *fc_stack(int n, fc_tensor *const *ts, int dim) {
  if (n < 1) FAIL("stack: expects at least one tensor");
  if (check_same_device("stack", n, (const fc_tensor *const *)ts) < 0) return NULL;
  int nd = ts[0]->ndim + 1;
  if (dim < -nd || dim >= nd) FAIL("stack: dim %d out of range for %d-dim results", dim, nd);
  if (dim < 0) dim += nd;
  fc_tensor **u = calloc((size_t)n, sizeof *u);
  if (!u) FAIL("stack: out of memory");
  fc_tensor *out = NULL;
  bool ok = true;
  for (int i = 0; i < n && ok; i++) {
    bool same = ts[i]->ndim == ts[0]->ndim;
    for (int k = 0; same && k < ts[i]->ndim; k++) same = ts[i]->shape[k] == ts[0]->shape[k];
    if (!same) {
      fc_set_error("stack: tensor %d has shape %s but tensor 0 has shape %s", i, SHAPE(ts[i]), SHAPE(ts[0]));
      ok = false;
    } else {
      ok = (u[i] = fc_unsqueeze(ts[i], dim)) != NULL;
    }
  }
  if (ok) out = fc_cat(n, u, dim);
  for (int i = 0; i < n; i++) fc_release(u[i]);
  free(u);
  return out;
}

/* ---- index_select --------------------------------------------------------- *
 * Viewed as [outer, size, inner] (contiguous), a selection copies `inner`
 * elements per (outer, index) pair. */

typedef struct split3 { int64_t outer, size, inner; } split3;

static split3 split_at(const int64_t *shape, int ndim, int d) {
  split3 s = {1, ndim ? shape[d] : 1, 1};
  for (int k = 0; k < d; k++) s.outer *= shape[k];
  for (int k = d + 1; k < ndim; k++) s.inner *= shape[k];
  return s;
}

static int index_select_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  const fc_tensor *idx = n->saved[0];
  int d = (int)n->iarg[0];
  fc_tensor *gc = fc_contiguous(g), *z = gc ? fc_zeros(n->in_ndim[0], n->in_shape[0], g->dtype, g->device) : NULL;
  if (!z) {
    fc_release(gc);
    return -1;
  }
  split3 s = split_at(n->in_shape[0], n->in_ndim[0], d);
  const int64_t *iv = fc_data_ptr(idx);
  int64_t k = idx->numel;
  int es = fc_dtype_size(g->dtype);
  char *zp = elem_ptr(z);
  const char *gp = elem_ptr(gc);
  for (int64_t o = 0; o < s.outer; o++)
    for (int64_t i = 0; i < k; i++)
      for (int64_t j = 0; j < s.inner; j++) {
        char *dst = zp + ((o * s.size + iv[i]) * s.inner + j) * es;
        const char *src = gp + ((o * k + i) * s.inner + j) * es;
        store_from_double(dst, g->dtype, load_as_double(dst, g->dtype) + load_as_double(src, g->dtype));
      }
  fc_release(gc);
  gi[0] = z;
  return 0;
}

fc_tensor *fc_index_select(fc_tensor *t, int dim, fc_tensor *index, int64_t base) {
  if (check_same_device("index_select", 2, (const fc_tensor *const[]){t, index}) < 0) return NULL;
  int d = wrap_dim("index_select", dim, t->ndim);
  if (d < 0) return NULL;
  if (index->ndim > 1) FAIL("index_select: index must be 1-D, got shape %s", SHAPE(index));
  fc_tensor *iv = index_values("index_select", index);
  if (!iv) return NULL;
  split3 s = split_at(t->shape, t->ndim, d);
  int64_t *v = fc_data_ptr(iv), k = iv->numel;
  for (int64_t i = 0; i < k; i++)
    if (check_index("index_select", v[i], s.size, base) < 0) {
      fc_release(iv);
      return NULL;
    }
  int64_t shape[FC_MAX_DIMS];
  memcpy(shape, t->shape, sizeof shape);
  if (t->ndim) shape[d] = k;
  fc_tensor *src = fc_contiguous(t), *out = src ? fc_empty(t->ndim, shape, t->dtype, t->device) : NULL;
  if (out) {
    size_t row = (size_t)(s.inner * fc_dtype_size(t->dtype));
    const char *sp = elem_ptr(src);
    char *op = elem_ptr(out);
#pragma omp parallel for if (s.outer * k * s.inner > PARALLEL_GRAIN) schedule(static)
    for (int64_t o = 0; o < s.outer; o++)
      for (int64_t i = 0; i < k; i++)
        memcpy(op + (size_t)(o * k + i) * row, sp + (size_t)(o * s.size + v[i] - base) * row, row);
  }
  fc_release(src);
  if (out && is_float_dtype(t->dtype) && grad_needed(1, &t)) {
    fc_node *n = record("index_select", index_select_backward, out, 1, &t);
    if (!n) {
      fc_release(out);
      out = NULL;
    } else {
      for (int64_t i = 0; i < k; i++) v[i] -= base; /* stored 0-based */
      n->saved[0] = fc_retain(iv);
      n->saved_version[0] = iv->storage->version;
      n->nsaved = 1;
      n->iarg[0] = d;
    }
  }
  fc_release(iv);
  return out;
}

/* ---- gather and scatter -------------------------------------------------- *
 * Both walk the index tensor's shape; the element at index position p lives
 * at p in every dim but `dim`, where the index value says. */

typedef struct walk {
  const fc_tensor *idx;     /* int64, contiguous */
  int d;
  int64_t pos[FC_MAX_DIMS]; /* current position in idx's shape */
} walk;

static int64_t offset_at(const fc_tensor *t, const int64_t *pos, int d, int64_t dimval) {
  int64_t off = t->offset;
  for (int k = 0; k < t->ndim; k++) off += (k == d ? dimval : pos[k]) * t->stride[k];
  return off;
}

static void step(walk *w) {
  for (int k = w->idx->ndim - 1; k >= 0 && ++w->pos[k] == w->idx->shape[k]; k--) w->pos[k] = 0;
}

/* Index shape rules: same ndim; idx.size(k) <= t.size(k) for k != dim (and
 * <= src.size(k) for every k when there is a src). */
static int check_gather_shapes(const char *op, const fc_tensor *t, const fc_tensor *idx,
                               const fc_tensor *src, int d) {
  if (idx->ndim != t->ndim)
    FAIL_INT("%s: index of shape %s must have as many dims as the input of shape %s", op, SHAPE(idx), SHAPE(t));
  for (int k = 0; k < t->ndim; k++) {
    if (k != d && idx->shape[k] > t->shape[k])
      FAIL_INT("%s: index of shape %s is larger than the input of shape %s outside dim %d", op,
               SHAPE(idx), SHAPE(t), d);
    if (src && src->ndim && (src->ndim != t->ndim || idx->shape[k] > src->shape[k]))
      FAIL_INT("%s: index of shape %s is larger than the source of shape %s", op, SHAPE(idx), SHAPE(src));
  }
  return 0;
}

static int validate_all(const char *op, const fc_tensor *iv, int64_t size, int64_t base) {
  const int64_t *v = fc_data_ptr(iv);
  for (int64_t i = 0; i < iv->numel; i++)
    if (check_index(op, v[i], size, base) < 0) return -1;
  return 0;
}

static int gather_backward(fc_node *n, fc_tensor *g, fc_tensor **gi);

fc_tensor *fc_gather(fc_tensor *t, int dim, fc_tensor *index, int64_t base) {
  if (check_same_device("gather", 2, (const fc_tensor *const[]){t, index}) < 0) return NULL;
  int d = wrap_dim("gather", dim, t->ndim);
  if (d < 0 || check_gather_shapes("gather", t, index, NULL, d) < 0) return NULL;
  fc_tensor *iv = index_values("gather", index);
  if (!iv) return NULL;
  if (validate_all("gather", iv, t->ndim ? t->shape[d] : 1, base) < 0) {
    fc_release(iv);
    return NULL;
  }
  fc_tensor *out = fc_empty(iv->ndim, iv->shape, t->dtype, t->device);
  if (out) {
    int es = fc_dtype_size(t->dtype);
    const int64_t *v = fc_data_ptr(iv);
    char *op = elem_ptr(out);
    walk w = {iv, d, {0}};
    for (int64_t i = 0; i < iv->numel; i++, step(&w))
      memcpy(op + i * es, (char *)t->storage->data + offset_at(t, w.pos, d, v[i] - base) * es, (size_t)es);
  }
  if (out && is_float_dtype(t->dtype) && grad_needed(1, &t)) {
    fc_node *n = record("gather", gather_backward, out, 1, &t);
    if (!n) {
      fc_release(out);
      out = NULL;
    } else {
      n->saved[0] = fc_retain(iv);
      n->saved_version[0] = iv->storage->version;
      n->nsaved = 1;
      n->iarg[0] = d;
      n->iarg[1] = base;
    }
  }
  fc_release(iv);
  return out;
}

/* Writes (or adds) src into t at the index positions, in place. */
static void scatter_into(fc_tensor *t, int d, const fc_tensor *iv, const fc_tensor *src, int64_t base, bool add) {
  int es = fc_dtype_size(t->dtype), ss = fc_dtype_size(src->dtype);
  const int64_t *v = fc_data_ptr(iv);
  walk w = {iv, d, {0}};
  for (int64_t i = 0; i < iv->numel; i++, step(&w)) {
    char *dst = (char *)t->storage->data + offset_at(t, w.pos, d, v[i] - base) * es;
    double x = src->ndim == 0 ? load_as_double(elem_ptr(src), src->dtype)
                              : load_as_double((char *)src->storage->data + offset_at(src, w.pos, -1, 0) * ss, src->dtype);
    store_from_double(dst, t->dtype, add ? load_as_double(dst, t->dtype) + x : x);
  }
}

static int gather_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  fc_tensor *z = fc_zeros(n->in_ndim[0], n->in_shape[0], g->dtype, g->device);
  if (!z) return -1;
  scatter_into(z, (int)n->iarg[0], n->saved[0], g, n->iarg[1], true);
  gi[0] = z;
  return 0;
}

static int scatter_checked(const char *op, fc_tensor *t, int dim, fc_tensor *index, fc_tensor *src,
                           int64_t base, bool add) {
  if (check_same_device(op, 3, (const fc_tensor *const[]){t, index, src}) < 0) return -1;
  int d = wrap_dim(op, dim, t->ndim);
  if (d < 0 || check_gather_shapes(op, t, index, src, d) < 0) return -1;
  fc_tensor *iv = index_values(op, index);
  if (!iv) return -1;
  int rc = validate_all(op, iv, t->ndim ? t->shape[d] : 1, base);
  if (rc == 0) {
    scatter_into(t, d, iv, src, base, add);
    bump_version(t);
  }
  fc_release(iv);
  return rc;
}

int fc_scatter_(fc_tensor *t, int dim, fc_tensor *index, fc_tensor *src, int64_t base) {
  if (check_defined("scatter_", t, "tensor") < 0 || check_inplace("scatter_", t) < 0) return -1;
  return scatter_checked("scatter_", t, dim, index, src, base, false);
}
int fc_scatter_add_(fc_tensor *t, int dim, fc_tensor *index, fc_tensor *src, int64_t base) {
  if (check_defined("scatter_add_", t, "tensor") < 0 || check_inplace("scatter_add_", t) < 0) return -1;
  return scatter_checked("scatter_add_", t, dim, index, src, base, true);
}

/* Out of place: a copy of t with src scattered in. The gradient reaches t
 * (identity for add; zero where overwritten) and src (gathered back). */
static int scatter_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  int d = (int)n->iarg[0];
  int64_t base = n->iarg[1];
  fc_tensor *iv = n->saved[0];
  if (needs(n, 0)) {
    fc_tensor *gt = fc_clone(g);
    if (!gt) return -1;
    if (!n->iarg[2]) { /* overwritten positions get nothing */
      fc_tensor *zero = fc_scalar(0, g->dtype, g->device);
      scatter_into(gt, d, iv, zero, base, false);
      fc_release(zero);
    }
    gi[0] = gt;
  }
  if (needs(n, 1) && !(gi[1] = fc_gather(g, d, iv, base))) return -1;
  return 0;
}

static fc_tensor *scatter_op(const char *op, fc_tensor *t, int dim, fc_tensor *index, fc_tensor *src,
                             int64_t base, bool add) {
  if (check_same_device(op, 3, (const fc_tensor *const[]){t, index, src}) < 0) return NULL;
  int prev = grad_mode_push(false);
  fc_tensor *out = fc_clone(t);
  int rc = out ? scatter_checked(op, out, dim, index, src, base, add) : -1;
  grad_mode_pop(prev);
  if (rc < 0) {
    fc_release(out);
    return NULL;
  }
  fc_tensor *ins[2] = {t, src};
  if (is_float_dtype(out->dtype) && grad_needed(2, ins)) {
    fc_node *n = record(op, scatter_backward, out, 2, ins);
    fc_tensor *iv = n ? index_values(op, index) : NULL;
    if (!iv) {
      fc_release(out);
      return NULL;
    }
    n->saved[0] = iv;
    n->saved_version[0] = iv->storage->version;
    n->nsaved = 1;
    n->iarg[0] = wrap_dim(op, dim, t->ndim);
    n->iarg[1] = base;
    n->iarg[2] = add;
  }
  return out;
}

fc_tensor *fc_scatter(fc_tensor *t, int dim, fc_tensor *index, fc_tensor *src, int64_t base) {
  return scatter_op("scatter", t, dim, index, src, base, false);
}
fc_tensor *fc_scatter_add(fc_tensor *t, int dim, fc_tensor *index, fc_tensor *src, int64_t base) {
  return scatter_op("scatter_add", t, dim, index, src, base, true);
}

/* ---- masks ------------------------------------------------------------------ */

static int check_mask(const char *op, const fc_tensor *mask) {
  if (mask->dtype != FC_BOOL && mask->dtype != FC_UINT8)
    FAIL_INT("%s: mask must be a bool tensor, got %s", op, DTYPE(mask));
  return 0;
}

fc_tensor *fc_masked_fill(fc_tensor *t, fc_tensor *mask, double value) {
  if (check_same_device("masked_fill", 2, (const fc_tensor *const[]){t, mask}) < 0) return NULL;
  if (check_mask("masked_fill", mask) < 0) return NULL;
  fc_tensor *v = fc_scalar(value, t->dtype, t->device);
  fc_tensor *r = v ? fc_where(mask, v, t) : NULL;
  fc_release(v);
  if (r && (r->ndim != t->ndim || r->numel != t->numel)) {
    fc_set_error("masked_fill: mask of shape %s does not broadcast to the tensor's shape %s", SHAPE(mask), SHAPE(t));
    fc_release(r);
    return NULL;
  }
  if (r && r->dtype != t->dtype) { /* where() promoted a 0-dim value */
    fc_tensor *c = fc_to_dtype(r, t->dtype);
    fc_release(r);
    r = c;
  }
  return r;
}

int fc_masked_fill_(fc_tensor *t, fc_tensor *mask, double value) {
  if (check_defined("masked_fill_", t, "tensor") < 0 || check_inplace("masked_fill_", t) < 0) return -1;
  fc_tensor *r = fc_masked_fill(t, mask, value);
  int rc = r ? fc_copy_(t, r) : -1;
  fc_release(r);
  return rc;
}

/* Both broadcast to one shape, made contiguous for a flat walk. */
static int broadcast_pair(const char *op, fc_tensor *t, fc_tensor *mask, fc_tensor **tc, fc_tensor **mc) {
  int nd;
  int64_t shape[FC_MAX_DIMS];
  *tc = *mc = NULL;
  if (broadcast_shapes(op, t->ndim, t->shape, mask->ndim, mask->shape, &nd, shape) < 0) return -1;
  int prev = grad_mode_push(false);
  fc_tensor *te = fc_expand(t, nd, shape), *me = fc_expand(mask, nd, shape);
  *tc = te ? fc_contiguous(te) : NULL;
  *mc = me ? fc_contiguous(me) : NULL;
  grad_mode_pop(prev);
  fc_release(te), fc_release(me);
  return *tc && *mc ? 0 : -1;
}

static int masked_select_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  const fc_tensor *mc = n->saved[0];
  fc_tensor *z = fc_zeros(mc->ndim, mc->shape, g->dtype, g->device);
  if (!z) return -1;
  const uint8_t *m = fc_data_ptr(mc);
  int es = fc_dtype_size(g->dtype);
  char *zp = elem_ptr(z);
  const char *gp = elem_ptr(g);
  for (int64_t i = 0, k = 0; i < mc->numel; i++)
    if (m[i]) memcpy(zp + i * es, gp + (k++) * g->stride[0] * es, (size_t)es);
  gi[0] = z; /* the engine sums over dims the mask broadcast t along */
  return 0;
}

fc_tensor *fc_masked_select(fc_tensor *t, fc_tensor *mask) {
  if (check_same_device("masked_select", 2, (const fc_tensor *const[]){t, mask}) < 0) return NULL;
  if (check_mask("masked_select", mask) < 0) return NULL;
  fc_tensor *tc, *mc;
  if (broadcast_pair("masked_select", t, mask, &tc, &mc) < 0) {
    fc_release(tc), fc_release(mc);
    return NULL;
  }
  const uint8_t *m = fc_data_ptr(mc);
  int64_t count = 0;
  for (int64_t i = 0; i < mc->numel; i++) count += m[i] != 0;
  fc_tensor *out = fc_empty(1, &count, t->dtype, t->device);
  if (out) {
    int es = fc_dtype_size(t->dtype);
    const char *tp = elem_ptr(tc);
    char *op = elem_ptr(out);
    for (int64_t i = 0, k = 0; i < mc->numel; i++)
      if (m[i]) memcpy(op + (k++) * es, tp + i * es, (size_t)es);
  }
  if (out && is_float_dtype(t->dtype) && grad_needed(1, &t)) {
    fc_node *n = record("masked_select", masked_select_backward, out, 1, &t);
    if (!n) {
      fc_release(out);
      out = NULL;
    } else {
      n->saved[0] = fc_retain(mc);
      n->saved_version[0] = mc->storage->version;
      n->nsaved = 1;
    }
  }
  fc_release(tc), fc_release(mc);
  return out;
}

fc_tensor *fc_nonzero(fc_tensor *t, int64_t base) {
  if (check_same_device("nonzero", 1, (const fc_tensor *const[]){t}) < 0) return NULL;
  fc_tensor *c = fc_contiguous(t);
  if (!c) return NULL;
  int es = fc_dtype_size(t->dtype), nd = t->ndim;
  const char *p = elem_ptr(c);
  int64_t count = 0;
  for (int64_t i = 0; i < c->numel; i++) count += load_as_double(p + i * es, t->dtype) != 0;
  int64_t shape[2] = {count, nd};
  fc_tensor *out = fc_empty(2, shape, FC_INT64, t->device);
  if (out) {
    int64_t *o = fc_data_ptr(out), pos[FC_MAX_DIMS] = {0};
    for (int64_t i = 0, k = 0; i < c->numel; i++) {
      if (load_as_double(p + i * es, t->dtype) != 0)
        for (int d = 0; d < nd; d++) o[k * nd + d] = pos[d] + base, k += d == nd - 1;
      for (int d = nd - 1; d >= 0 && ++pos[d] == t->shape[d]; d--) pos[d] = 0;
    }
  }
  fc_release(c);
  return out;
}

fc_tensor *fc_one_hot(fc_tensor *index, int64_t num_classes, int64_t base) {
  if (check_same_device("one_hot", 1, (const fc_tensor *const[]){index}) < 0) return NULL;
  fc_tensor *iv = index_values("one_hot", index);
  if (!iv) return NULL;
  const int64_t *v = fc_data_ptr(iv);
  if (num_classes < 0) { /* infer: the largest class + 1 */
    num_classes = 0;
    for (int64_t i = 0; i < iv->numel; i++)
      if (v[i] - base + 1 > num_classes) num_classes = v[i] - base + 1;
  }
  if (validate_all("one_hot", iv, num_classes, base) < 0) {
    fc_release(iv);
    return NULL;
  }
  if (iv->ndim >= FC_MAX_DIMS) {
    fc_release(iv);
    FAIL("one_hot: index has too many dims");
  }
  int64_t shape[FC_MAX_DIMS];
  memcpy(shape, iv->shape, sizeof(int64_t) * (size_t)iv->ndim);
  shape[iv->ndim] = num_classes;
  fc_tensor *out = fc_zeros(iv->ndim + 1, shape, FC_INT64, index->device);
  if (out) {
    int64_t *o = fc_data_ptr(out);
    for (int64_t i = 0; i < iv->numel; i++) o[i * num_classes + v[i] - base] = 1;
  }
  fc_release(iv);
  return out;
}

/* ---- flip and roll ---------------------------------------------------------- */

static int flip_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  int dims[FC_MAX_DIMS], nd = 0;
  for (int d = 0; d < n->in_ndim[0]; d++)
    if (n->iarg[d]) dims[nd++] = d;
  gi[0] = fc_flip(g, nd, dims);
  return gi[0] ? 0 : -1;
}

fc_tensor *fc_flip(fc_tensor *t, int ndims, const int *dims) {
  if (check_same_device("flip", 1, (const fc_tensor *const[]){t}) < 0) return NULL;
  bool flip[FC_MAX_DIMS] = {0};
  for (int i = 0; i < ndims; i++) {
    int d = wrap_dim("flip", dims[i], t->ndim);
    if (d < 0) return NULL;
    if (flip[d]) FAIL("flip: dim %d appears more than once", dims[i]);
    flip[d] = true;
  }
  /* A reversed view (negative strides) exists only inside this copy. */
  int64_t stride[FC_MAX_DIMS], offset = t->offset;
  for (int d = 0; d < t->ndim; d++) {
    stride[d] = flip[d] ? -t->stride[d] : t->stride[d];
    if (flip[d] && t->shape[d] > 0) offset += (t->shape[d] - 1) * t->stride[d];
  }
  fc_tensor *view = tensor_view_of(t, t->ndim, t->shape, stride, offset);
  fc_tensor *out = view ? empty_dtype_like(t, t->dtype) : NULL;
  int prev = grad_mode_push(false);
  int rc = out ? fc_copy_(out, view) : -1;
  grad_mode_pop(prev);
  fc_release(view);
  if (rc < 0) {
    fc_release(out);
    return NULL;
  }
  if (is_float_dtype(t->dtype) && grad_needed(1, &t)) {
    fc_node *n = record("flip", flip_backward, out, 1, &t);
    if (!n) {
      fc_release(out);
      return NULL;
    }
    for (int d = 0; d < t->ndim; d++) n->iarg[d] = flip[d];
  }
  return out;
}

/* Rolling is two narrows joined the other way round, per dim. */
static fc_tensor *roll_dim(fc_tensor *t, int64_t shift, int d) {
  int64_t size = t->shape[d];
  if (size == 0) return fc_retain(t);
  shift = ((shift % size) + size) % size;
  if (shift == 0) return fc_clone(t);
  fc_tensor *tail = fc_narrow(t, d, size - shift, shift), *head = fc_narrow(t, d, 0, size - shift);
  fc_tensor *r = tail && head ? fc_cat(2, (fc_tensor *const[]){tail, head}, d) : NULL;
  fc_release(tail), fc_release(head);
  return r;
}

fc_tensor *fc_roll(fc_tensor *t, int ndims, const int64_t *shifts, const int *dims) {
  if (check_same_device("roll", 1, (const fc_tensor *const[]){t}) < 0) return NULL;
  if (ndims == 0) {
    fc_tensor *flat = fc_reshape(t, 1, (int64_t[]){t->numel});
    fc_tensor *r = flat ? roll_dim(flat, shifts[0], 0) : NULL;
    fc_tensor *back = r ? fc_reshape(r, t->ndim, t->shape) : NULL;
    fc_release(flat), fc_release(r);
    return back;
  }
  fc_tensor *cur = fc_retain(t);
  for (int i = 0; cur && i < ndims; i++) {
    int d = wrap_dim("roll", dims[i], t->ndim);
    fc_tensor *next = d < 0 ? NULL : roll_dim(cur, shifts[i], d);
    fc_release(cur);
    cur = next;
  }
  return cur;
}
