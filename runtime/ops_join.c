/* ops_join.c — joining and reordering: cat, stack, flip, roll, with backward.
 *
 * These ops only move elements, so they copy bytes and serve every dtype
 * alike; cat also converts the inputs whose dtype is not the promoted one.
 * Results are fresh contiguous tensors. Error messages name tensors and dims
 * by ordinal ("the 2nd tensor", "the 1st dim"), which reads the same to a C
 * caller counting from 0 and a Lua caller counting from 1. */
#include "internal.h"
#include <stdlib.h>

static bool needs_grad(const fc_node *n, int i) { return n->next[i] || n->leaf[i]; }

/* "1st", "2nd", ... for the 0-based position i. */
#define ORD(i) ordinal((i), (char[24]){0}, 24)

/* Records a one-input node for `out`; on failure releases out. */
static fc_node *record1(const char *op, backward_fn fn, fc_tensor **out, fc_tensor *in) {
  fc_node *n = record(op, fn, *out, 1, &in);
  if (!n) {
    fc_release(*out);
    *out = NULL;
  }
  return n;
}

/* ---- cat ------------------------------------------------------------------
 * The output is viewed as [outer, total, inner] around the joined dim; each
 * input fills a [outer, len, inner] slab of it. A contiguous input of the
 * output's dtype is one block of len*inner elements per outer row, copied
 * with memcpy, the rows of all inputs in the order they land in the output.
 * Any other input goes through fc_copy_ into its slab (strides, dtypes). */

/* PyTorch's legacy rule: a 1-D empty tensor joins anything, adding nothing. */
static bool skipped(const fc_tensor *t) { return t->ndim == 1 && t->shape[0] == 0; }

typedef struct cat_plan {
  int d, ndim;
  int64_t shape[FC_MAX_DIMS]; /* the reference tensor's shape */
} cat_plan;

static int plan_cat(int n, fc_tensor *const *ts, int dim, cat_plan *p) {
  int ref = 0;
  while (ref < n && skipped(ts[ref])) ref++;
  if (ref == n) ref = 0; /* all empty: they join into an empty 1-D tensor */
  for (int i = 0; i < n; i++)
    if (ts[i]->ndim == 0)
      FAIL_INT("cat: the %s tensor is 0-dim; only tensors with dims can be joined (stack adds one)", ORD(i));
  const fc_tensor *r = ts[ref];
  int d = wrap_dim("cat", dim, r->ndim);
  if (d < 0) return -1;
  for (int i = 0; i < n; i++) {
    const fc_tensor *t = ts[i];
    if (skipped(t)) continue;
    if (t->ndim != r->ndim)
      FAIL_INT("cat: the %s tensor has shape %s but the %s has shape %s; they must have the same "
               "number of dims", ORD(i), SHAPE(t), ORD(ref), SHAPE(r));
    for (int k = 0; k < t->ndim; k++)
      if (k != d && t->shape[k] != r->shape[k])
        FAIL_INT("cat: the %s tensor has shape %s but the %s has shape %s; they must match in every "
                 "dim except the %s (the one joined)", ORD(i), SHAPE(t), ORD(ref), SHAPE(r), ORD(d));
  }
  p->d = d;
  p->ndim = r->ndim;
  memcpy(p->shape, r->shape, sizeof p->shape);
  return 0;
}

/* memcpy, except when dst lies just past src modulo 4096: then glibc's copy
 * (rep movsb) runs several times slower, its loads waiting on stores to the
 * same low address bits (4K aliasing). Copying backwards never reads what
 * was just written; a roll by a few elements lands there on every row. */
typedef char bytes32 __attribute__((vector_size(32), aligned(1), may_alias));
static void copy_ahead(char *dst, const char *src, size_t n) {
  size_t gap = ((uintptr_t)dst - (uintptr_t)src) & 4095;
  if (n < 256 || gap == 0 || gap >= 64) {
    memcpy(dst, src, n);
    return;
  }
  size_t i = n;
  for (; i >= 32; i -= 32) *(bytes32 *)(dst + i - 32) = *(const bytes32 *)(src + i - 32);
  memcpy(dst, src, i);
}

/* Copies `bytes` from src to dst, split across threads when it is large. */
static void parallel_memcpy(char *dst, const char *src, size_t bytes) {
  enum { CHUNK = 1 << 18 };
  int64_t chunks = (int64_t)(bytes / CHUNK);
  if (chunks < 2 || num_threads() < 2) {
    copy_ahead(dst, src, bytes);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; c++) {
    size_t b = (size_t)c * CHUNK, e = c + 1 == chunks ? bytes : b + CHUNK;
    copy_ahead(dst + b, src + b, e - b);
  }
}

/* memcpy with the common small sizes spelled out, so they compile to moves
 * (cat along the last dim of narrow tensors copies a few bytes a row). */
static inline void copy_bytes(char *dst, const char *src, size_t n) {
  switch (n) {
  case 1: memcpy(dst, src, 1); break;
  case 2: memcpy(dst, src, 2); break;
  case 4: memcpy(dst, src, 4); break;
  case 8: memcpy(dst, src, 8); break;
  case 16: memcpy(dst, src, 16); break;
  default: copy_ahead(dst, src, n); break;
  }
}

/* Fills out ([outer, total, inner] around dim d) from the inputs. */
static int fill_cat(fc_tensor *out, int n, fc_tensor *const *ts, int d) {
  if (out->numel == 0) return 0;
  int64_t outer = 1, inner = 1, total = out->shape[d];
  for (int k = 0; k < d; k++) outer *= out->shape[k];
  for (int k = d + 1; k < out->ndim; k++) inner *= out->shape[k];
  size_t es = (size_t)fc_dtype_size(out->dtype), row = (size_t)(total * inner) * es;
  const char **src = calloc((size_t)n, sizeof *src); /* NULL: not a fast input */
  int64_t *len = calloc((size_t)n, sizeof *len);
  if (!src || !len) {
    free(src), free(len);
    FAIL_INT("cat: out of memory");
  }
  int rc = 0, fast = 0;
  int64_t at = 0;
  for (int i = 0; i < n && rc == 0; i++) {
    fc_tensor *t = ts[i];
    if (skipped(t) && out->ndim != 1) continue;
    len[i] = t->shape[d];
    if (t->numel > 0 && t->dtype == out->dtype && fc_is_contiguous(t)) {
      src[i] = elem_ptr(t);
      fast++;
    } else if (t->numel > 0) {
      fc_tensor *slab = fc_narrow(out, d, at, len[i]);
      rc = slab ? fc_copy_(slab, t) : -1;
      fc_release(slab);
    }
    at += len[i];
  }
  char *dst = elem_ptr(out);
  if (rc == 0 && fast && outer < 2 * num_threads()) {
    /* few rows (cat along dim 0 above all): split each block instead */
    for (int64_t o = 0; o < outer; o++) {
      size_t pos = (size_t)o * row;
      for (int i = 0; i < n; i++) {
        size_t block = (size_t)(len[i] * inner) * es;
        if (src[i]) parallel_memcpy(dst + pos, src[i] + (size_t)o * block, block);
        pos += block;
      }
    }
  } else if (rc == 0 && fast) {
#pragma omp parallel for if (out->numel > PARALLEL_GRAIN) schedule(static)
    for (int64_t o = 0; o < outer; o++) {
      size_t pos = (size_t)o * row;
      for (int i = 0; i < n; i++) {
        size_t block = (size_t)(len[i] * inner) * es;
        if (src[i]) copy_bytes(dst + pos, src[i] + (size_t)o * block, block);
        pos += block;
      }
    }
  }
  free(src), free(len);
  return rc;
}

/* iarg[0]: the joined dim. Each input's gradient is its slab of g. */
static int cat_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  int d = (int)n->iarg[0];
  int64_t at = 0;
  for (int i = 0; i < n->ninputs; i++) {
    bool empty = n->in_ndim[i] == 1 && n->in_shape[i][0] == 0 && g->ndim != 1;
    int64_t len = empty ? 0 : n->in_shape[i][d];
    if (needs_grad(n, i)) {
      gi[i] = empty ? fc_empty(1, (int64_t[]){0}, g->dtype, g->device) : fc_narrow(g, d, at, len);
      if (!gi[i]) return -1;
    }
    at += len;
  }
  return 0;
}

/* Joins ts (already checked against p) into one new tensor, with a node. */
static fc_tensor *cat_node(int n, fc_tensor *const *ts, const cat_plan *p) {
  int dtype = ts[0]->dtype;
  int64_t shape[FC_MAX_DIMS];
  memcpy(shape, p->shape, sizeof shape);
  shape[p->d] = 0;
  bool all_skipped = true;
  for (int i = 0; i < n; i++) {
    dtype = fc_promote_types(dtype, ts[i]->dtype);
    if (!skipped(ts[i]) || p->ndim == 1) shape[p->d] += ts[i]->shape[p->d];
    all_skipped &= skipped(ts[i]);
  }
  /* A group of empty tensors stays 1-D, so the next round skips it too. */
  fc_tensor *out = all_skipped ? fc_empty(1, (int64_t[]){0}, dtype, ts[0]->device)
                               : fc_empty(p->ndim, shape, dtype, ts[0]->device);
  if (out && !all_skipped && fill_cat(out, n, ts, p->d) < 0) {
    fc_release(out);
    return NULL;
  }
  if (out && is_float_dtype(dtype) && grad_needed(n, ts)) {
    fc_node *node = record("cat", cat_backward, out, n, ts);
    if (!node) {
      fc_release(out);
      return NULL;
    }
    node->iarg[0] = p->d;
  }
  return out;
}

/* A node holds NODE_MAX_INPUTS inputs, so a longer list that needs grad is
 * joined as a tree: groups first, then the groups' results. */
static fc_tensor *cat_tree(int n, fc_tensor *const *ts, const cat_plan *p) {
  if (n <= NODE_MAX_INPUTS) return cat_node(n, ts, p);
  fc_tensor *part[NODE_MAX_INPUTS] = {0};
  int per = (n + NODE_MAX_INPUTS - 1) / NODE_MAX_INPUTS, m = 0;
  bool ok = true;
  for (int at = 0; at < n && ok; at += per, m++)
    ok = (part[m] = cat_tree(n - at < per ? n - at : per, ts + at, p)) != NULL;
  fc_tensor *out = ok ? cat_node(m, part, p) : NULL;
  for (int i = 0; i < m; i++) fc_release(part[i]);
  return out;
}

fc_tensor *fc_cat(int n, fc_tensor *const *ts, int dim) {
  if (n < 1 || !ts) FAIL("cat: expects a non-empty list of tensors");
  if (check_same_device("cat", n, (const fc_tensor *const *)ts) < 0) return NULL;
  cat_plan p;
  if (plan_cat(n, ts, dim, &p) < 0) return NULL;
  if (n > NODE_MAX_INPUTS && grad_needed(n, ts)) return cat_tree(n, ts, &p);
  return cat_node(n, ts, &p);
}

/* ---- stack: cat of the inputs, each with a new size-1 dim ---------------- */

fc_tensor *fc_stack(int n, fc_tensor *const *ts, int dim) {
  if (n < 1 || !ts) FAIL("stack: expects a non-empty list of tensors");
  if (check_same_device("stack", n, (const fc_tensor *const *)ts) < 0) return NULL;
  const fc_tensor *first = ts[0];
  int nd = first->ndim + 1;
  if (nd > FC_MAX_DIMS)
    FAIL("stack: the result would have %d dims (at most %d)", nd, FC_MAX_DIMS);
  if (dim < -nd || dim >= nd)
    FAIL("stack: dim %d out of range for stacking %d-dim tensors (expected %d to %d)", dim, nd - 1,
         -nd, nd - 1);
  int d = dim < 0 ? dim + nd : dim;
  for (int i = 1; i < n; i++) {
    bool same = ts[i]->ndim == first->ndim;
    for (int k = 0; same && k < first->ndim; k++) same = ts[i]->shape[k] == first->shape[k];
    if (!same)
      FAIL("stack: the %s tensor has shape %s but the 1st has shape %s; stacked tensors must have "
           "equal shapes", ORD(i), SHAPE(ts[i]), SHAPE(first));
  }
  fc_tensor **u = calloc((size_t)n, sizeof *u);
  if (!u) FAIL("stack: out of memory");
  bool ok = true;
  for (int i = 0; i < n && ok; i++) ok = (u[i] = fc_unsqueeze(ts[i], d)) != NULL;
  fc_tensor *out = ok ? fc_cat(n, u, d) : NULL;
  for (int i = 0; i < n; i++) fc_release(u[i]);
  free(u);
  return out;
}

/* ---- flip -----------------------------------------------------------------
 * A view with the flipped dims' strides negated (it exists only inside this
 * function) copied into a contiguous output. The iterator coalesces the dims
 * that are not flipped into memcpy runs; a flipped last dim is a reversed
 * run, which the compiler vectorises with a lane shuffle. */

#define FLIP_KERNEL(name, T)                                                      \
  static void name(char **p, const int64_t *s, int64_t n, void *ctx) {            \
    (void)ctx;                                                                     \
    T *o = (T *)p[0];                                                              \
    const T *a = (const T *)p[1];                                                  \
    if (s[0] == sizeof(T) && s[1] == -(int64_t)sizeof(T)) {                        \
      for (int64_t i = 0; i < n; i++) o[i] = a[-i];                                \
    } else if (s[0] == sizeof(T) && s[1] == sizeof(T)) {                           \
      memcpy(o, a, (size_t)n * sizeof(T));                                         \
    } else {                                                                       \
      for (int64_t i = 0; i < n; i++) AT(p[0], s[0], i, T) = AT(p[1], s[1], i, T); \
    }                                                                              \
  }
FLIP_KERNEL(flip1, uint8_t)
FLIP_KERNEL(flip2, uint16_t)
FLIP_KERNEL(flip4, uint32_t)
FLIP_KERNEL(flip8, uint64_t)

/* iarg[d]: whether dim d was flipped; flipping again undoes it. */
static int flip_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  int dims[FC_MAX_DIMS], nd = 0;
  for (int d = 0; d < n->in_ndim[0]; d++)
    if (n->iarg[d]) dims[nd++] = d;
  gi[0] = fc_flip(g, nd, dims);
  return gi[0] ? 0 : -1;
}

fc_tensor *fc_flip(fc_tensor *t, int ndims, const int *dims) {
  if (check_same_device("flip", 1, (const fc_tensor *const[]){t}) < 0) return NULL;
  if (ndims < 0 || (ndims > 0 && !dims)) FAIL("flip: expects a list of dims (got %d of them)", ndims);
  bool flip[FC_MAX_DIMS] = {0};
  for (int i = 0; i < ndims; i++) {
    int d = wrap_dim("flip", dims[i], t->ndim);
    if (d < 0) return NULL;
    if (flip[d]) FAIL("flip: the %s dim is listed more than once", ORD(d));
    flip[d] = true;
  }
  int64_t stride[FC_MAX_DIMS], offset = t->offset;
  for (int d = 0; d < t->ndim; d++) {
    bool f = flip[d] && t->shape[d] > 1;
    stride[d] = f ? -t->stride[d] : t->stride[d];
    if (f) offset += (t->shape[d] - 1) * t->stride[d];
  }
  fc_tensor *view = tensor_view_of(t, t->ndim, t->shape, stride, offset);
  fc_tensor *out = view ? empty_dtype_like(t, t->dtype) : NULL;
  if (out && out->numel) {
    static const iter_kernel by_size[9] = {0, flip1, flip2, 0, flip4, 0, 0, 0, flip8};
    iter it;
    iter_init(&it, 2, (fc_tensor *const[]){out, view});
    iter_run(&it, by_size[fc_dtype_size(t->dtype)], NULL);
  }
  fc_release(view);
  if (out && is_float_dtype(t->dtype) && grad_needed(1, &t)) {
    fc_node *n = record1("flip", flip_backward, &out, t);
    for (int d = 0; n && d < t->ndim; d++) n->iarg[d] = flip[d];
  }
  return out;
}

/* ---- roll -----------------------------------------------------------------
 * out[p] = src[(p - shift) mod size] along each rolled dim. The output is
 * written row by row (rows along the last dim); an odometer over the other
 * dims tracks the source row, and the last dim is two runs: out[0, s) from
 * src[n-s, n) and out[s, n) from src[0, n-s). */

/* v mod size in [0, size); 0 for an empty dim. */
static int64_t wrap_shift(int64_t v, int64_t size) {
  if (size <= 0) return 0;
  v %= size;
  return v < 0 ? v + size : v;
}

/* n elements at element stride s into contiguous o. */
static void copy_run(char *o, const char *a, int64_t n, int64_t s, int es, bool may_split) {
  if (s == 1 && may_split) {
    parallel_memcpy(o, a, (size_t)(n * es));
  } else if (s == 1) {
    copy_ahead(o, a, (size_t)(n * es));
  } else {
    switch (es) {
    case 1: for (int64_t j = 0; j < n; j++) ((uint8_t *)o)[j] = ((const uint8_t *)a)[j * s]; break;
    case 2: for (int64_t j = 0; j < n; j++) ((uint16_t *)o)[j] = ((const uint16_t *)a)[j * s]; break;
    case 4: for (int64_t j = 0; j < n; j++) ((uint32_t *)o)[j] = ((const uint32_t *)a)[j * s]; break;
    default: for (int64_t j = 0; j < n; j++) ((uint64_t *)o)[j] = ((const uint64_t *)a)[j * s]; break;
    }
  }
}

/* Output rows [r0, r1) of out (contiguous, nd >= 1 dims like src). */
static void roll_rows(fc_tensor *out, const fc_tensor *src, const int64_t *shift, int64_t r0, int64_t r1,
                      bool may_split) {
  int last = src->ndim - 1, es = fc_dtype_size(src->dtype);
  const int64_t *size = src->shape, *stride = src->stride;
  int64_t pos[FC_MAX_DIMS] = {0}, q[FC_MAX_DIMS] = {0}, off = 0, rest = r0;
  for (int k = last - 1; k >= 0; k--) { /* q: the source position of pos */
    pos[k] = rest % size[k];
    rest /= size[k];
    q[k] = wrap_shift(pos[k] - shift[k], size[k]);
    off += q[k] * stride[k];
  }
  int64_t n = size[last], s = shift[last], sl = stride[last];
  const char *a = elem_ptr(src);
  char *o = elem_ptr(out);
  for (int64_t r = r0; r < r1; r++) {
    const char *row = a + off * es;
    char *dst = o + r * n * es;
    copy_run(dst, row + (n - s) * sl * es, s, sl, es, may_split);
    copy_run(dst + s * es, row, n - s, sl, es, may_split);
    for (int k = last - 1; k >= 0; k--) { /* q cycles with pos, period size[k] */
      off += stride[k];
      if (++q[k] == size[k]) q[k] = 0, off -= stride[k] * size[k];
      if (++pos[k] < size[k]) break;
      pos[k] = 0;
    }
  }
}

static void roll_into(fc_tensor *out, const fc_tensor *src, const int64_t *shift) {
  if (out->numel == 0) return;
  if (src->ndim == 0) {
    memcpy(elem_ptr(out), elem_ptr(src), (size_t)fc_dtype_size(src->dtype));
    return;
  }
  int64_t rows = out->numel / out->shape[out->ndim - 1];
  int64_t nt = out->numel > PARALLEL_GRAIN ? num_threads() : 1;
  if (rows < nt) { /* few long rows: split the copies instead */
    roll_rows(out, src, shift, 0, rows, true);
    return;
  }
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
  for (int64_t c = 0; c < nt; c++) roll_rows(out, src, shift, rows * c / nt, rows * (c + 1) / nt, false);
}

/* iarg[d]: dim d's shift; arg[0] set: a flattened roll by arg[1]. */
static int roll_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  if (n->arg[0]) {
    gi[0] = fc_roll(g, 0, (int64_t[]){-(int64_t)n->arg[1]}, NULL);
    return gi[0] ? 0 : -1;
  }
  int dims[FC_MAX_DIMS], nd = 0;
  int64_t shifts[FC_MAX_DIMS];
  for (int d = 0; d < n->in_ndim[0]; d++)
    if (n->iarg[d]) dims[nd] = d, shifts[nd++] = -n->iarg[d];
  gi[0] = nd ? fc_roll(g, nd, shifts, dims) : fc_retain(g);
  return gi[0] ? 0 : -1;
}

fc_tensor *fc_roll(fc_tensor *t, int ndims, const int64_t *shifts, const int *dims) {
  if (check_same_device("roll", 1, (const fc_tensor *const[]){t}) < 0) return NULL;
  if (ndims < 0 || !shifts || (ndims > 0 && !dims))
    FAIL("roll: expects shifts, and as many dims (or none, to roll the flattened tensor)");
  int64_t shift[FC_MAX_DIMS] = {0};
  bool flat = ndims == 0;
  for (int i = 0; i < ndims; i++) {
    int d = wrap_dim("roll", dims[i], t->ndim);
    if (d < 0) return NULL;
    if (t->ndim == 0) continue;
    int64_t size = t->shape[d];
    shift[d] = wrap_shift(shift[d] + wrap_shift(shifts[i], size), size); /* a dim may repeat */
  }
  int prev = grad_mode_push(false);
  fc_tensor *src = flat ? fc_contiguous(t) : fc_retain(t);
  grad_mode_pop(prev);
  fc_tensor *out = src ? empty_dtype_like(t, t->dtype) : NULL;
  if (out && flat) {
    /* contiguous data rolled as one dim of numel elements */
    int64_t numel = t->numel, one = 1;
    fc_tensor *a = tensor_view_of(src, 1, &numel, &one, src->offset);
    fc_tensor *b = a ? tensor_view_of(out, 1, &numel, &one, out->offset) : NULL;
    if (b) roll_into(b, a, (int64_t[]){wrap_shift(shifts[0], numel)});
    else fc_release(out), out = NULL;
    fc_release(a), fc_release(b);
  } else if (out) {
    roll_into(out, src, shift);
  }
  fc_release(src);
  if (!out) return NULL;
  if (is_float_dtype(t->dtype) && grad_needed(1, &t)) {
    fc_node *n = record1("roll", roll_backward, &out, t);
    if (n && flat) {
      n->arg[0] = 1;
      n->arg[1] = (double)wrap_shift(shifts[0], t->numel);
    }
    for (int d = 0; n && !flat && d < t->ndim; d++) n->iarg[d] = shift[d];
  }
  return out;
}
