/* ops_index.c — ops driven by index tensors and masks: index_select,
 * gather, scatter(_add)(_), masked_fill(_), masked_select, nonzero, one_hot,
 * with backward where a gradient exists.
 *
 * Index tensors are int64 (int32 accepted) and count from `base` (0 from C,
 * 1 from Lua); every index is checked before anything is written, and a bad
 * one is reported in the caller's numbering. Ops that only move elements
 * copy them by size, so they serve every dtype alike; scatter_add adds in
 * the tensor's own dtype (integers wrap, bool is or, halves round each add).
 * Masks are bool (uint8 accepted), nonzero meaning true. */
#include "backend.h"
#include <stdlib.h>

static bool needs_grad(const fc_node *n, int i) { return n->next[i] || n->leaf[i]; }

#define ORD(i) ordinal((i), (char[24]){0}, 24)

/* A 0-dim tensor takes part as one dim of size 1. */
static int dims_of(const fc_tensor *t) { return t->ndim ? t->ndim : 1; }
static int64_t size_at(const fc_tensor *t, int k) { return t->ndim ? t->shape[k] : 1; }
static int64_t stride_at(const fc_tensor *t, int k) { return t->ndim ? t->stride[k] : 0; }

/* Runs `STMT` with T the unsigned integer type of an element of es bytes. */
#define BY_SIZE(es, STMT)                                 \
  do {                                                    \
    switch (es) {                                         \
    case 1: { typedef uint8_t T; STMT; } break;           \
    case 2: { typedef uint16_t T; STMT; } break;          \
    case 4: { typedef uint32_t T; STMT; } break;          \
    default: { typedef uint64_t T; STMT; } break;         \
    }                                                     \
  } while (0)

/* ---- index tensors -------------------------------------------------------- */

/* The caller's index as contiguous int64: a new reference (the same tensor
 * when it already is one). */
static fc_tensor *index_values(const char *op, fc_tensor *idx) {
  if (idx->dtype != FC_INT64 && idx->dtype != FC_INT32)
    FAIL("%s: index tensor must be int64 (or int32), got %s", op, DTYPE(idx));
  int prev = grad_mode_push(false);
  fc_tensor *i64 = fc_to_dtype(idx, FC_INT64), *c = i64 ? fc_contiguous(i64) : NULL;
  grad_mode_pop(prev);
  fc_release(i64);
  return c;
}

/* Every value in [base, base + size), or an error quoting the first that
 * is not. The min/max pass vectorises (and splits across threads); the
 * search for the culprit runs only on failure. */
static int check_range(const char *op, const fc_tensor *iv, int64_t size, int64_t base);

/* On a cuda device: the bounds by two reductions (one sync); only a failing
 * check copies the index to the host, to name the culprit. */
static int check_range_device(const char *op, const fc_tensor *iv, int64_t size, int64_t base) {
  if (iv->numel == 0) return 0;
  int prev = grad_mode_push(false);
  fc_tensor *lo = fc_amin((fc_tensor *)iv, 0, NULL, 0), *hi = lo ? fc_amax((fc_tensor *)iv, 0, NULL, 0) : NULL;
  grad_mode_pop(prev);
  double l = 0, h = 0;
  int rc = hi && fc_item(lo, &l) == 0 && fc_item(hi, &h) == 0 ? 0 : -1;
  fc_release(lo), fc_release(hi);
  if (rc < 0 || (l >= (double)base && h - (double)base < (double)size)) return rc;
  fc_tensor *host = backend_host_copy(iv);
  rc = host ? check_range(op, host, size, base) : -1;
  fc_release(host);
  return rc;
}

static int check_range(const char *op, const fc_tensor *iv, int64_t size, int64_t base) {
  if (iv->device.type == FC_CUDA) return check_range_device(op, iv, size, base);
  const int64_t *v = (const int64_t *)elem_ptr(iv);
  int64_t n = iv->numel, lo = INT64_MAX, hi = INT64_MIN;
#pragma omp parallel for if (n > PARALLEL_GRAIN) reduction(min : lo) reduction(max : hi) schedule(static)
  for (int64_t i = 0; i < n; i++) {
    lo = v[i] < lo ? v[i] : lo;
    hi = v[i] > hi ? v[i] : hi;
  }
  if (n == 0 || (lo >= base && hi - base < size)) return 0;
  int64_t bad = 0;
  for (int64_t i = 0; i < n; i++)
    if (v[i] < base || v[i] - base >= size) {
      bad = v[i];
      break;
    }
  if (size == 0) FAIL_INT("%s: index %lld out of range for an empty dim", op, (long long)bad);
  FAIL_INT("%s: index %lld out of range for dim of size %lld (valid %lld..%lld)", op, (long long)bad,
           (long long)size, (long long)base, (long long)(base + size - 1));
}

/* ---- index_select ---------------------------------------------------------
 * Around dim d the input is [outer, size, inner] and the output, contiguous,
 * [outer, k, inner]: output row (o, i) is input row (o, index[i]). The
 * input's outer dims may be strided (their offsets are listed once); its
 * inner block is one memcpy when contiguous, else a strided walk. */

/* Merges dims that step through memory as one and drops size-1 dims;
 * returns how many remain. */
static int coalesce(int nd, const int64_t *shape, const int64_t *stride, int64_t *cshape,
                    int64_t *cstride) {
  int m = 0;
  for (int k = 0; k < nd; k++) {
    if (shape[k] == 1) continue;
    if (m > 0 && cstride[m - 1] == stride[k] * shape[k]) {
      cshape[m - 1] *= shape[k];
      cstride[m - 1] = stride[k];
    } else {
      cshape[m] = shape[k];
      cstride[m++] = stride[k];
    }
  }
  return m;
}

/* Element offsets of the positions of an nd-dim grid, in row-major order. */
static void grid_offsets(int nd, const int64_t *shape, const int64_t *stride, int64_t *out) {
  int64_t count = shape_numel(nd, shape), pos[FC_MAX_DIMS] = {0}, off = 0;
  for (int64_t r = 0; r < count; r++) {
    out[r] = off;
    for (int k = nd - 1; k >= 0; k--) {
      off += stride[k];
      if (++pos[k] < shape[k]) break;
      off -= stride[k] * shape[k];
      pos[k] = 0;
    }
  }
}

/* A strided block (m coalesced dims) into contiguous dst. */
static void copy_block(char *dst, const char *src, int m, const int64_t *shape, const int64_t *stride,
                       int es) {
  int64_t n = shape[m - 1], s = stride[m - 1], rows = shape_numel(m - 1, shape);
  int64_t pos[FC_MAX_DIMS] = {0}, off = 0;
  for (int64_t r = 0; r < rows; r++) {
    BY_SIZE(es, {
      T *o = (T *)dst + r * n;
      const T *a = (const T *)src + off;
      for (int64_t j = 0; j < n; j++) o[j] = a[j * s];
    });
    for (int k = m - 2; k >= 0; k--) {
      off += stride[k];
      if (++pos[k] < shape[k]) break;
      off -= stride[k] * shape[k];
      pos[k] = 0;
    }
  }
}

/* Selection of single elements (nothing inside the dim): output row r is
 * input row r's elements at the index. Threads split the rows, or with few
 * rows the index. */
#define SELECT_ELEMS(name, T)                                                              \
  static void name(char *dst, const char *src, const int64_t *ooff, int64_t outer,         \
                   const int64_t *v, int64_t k, int64_t base, int64_t sd, int nt) {       \
    T *o = (T *)dst;                                                                       \
    const T *a = (const T *)src;                                                           \
    if (outer >= nt) {                                                                     \
      _Pragma("omp parallel for num_threads(nt) if (nt > 1) schedule(static)")             \
      for (int64_t r = 0; r < outer; r++) {                                                \
        const T *ar = a + ooff[r];                                                         \
        for (int64_t i = 0; i < k; i++) o[r * k + i] = ar[(v[i] - base) * sd];             \
      }                                                                                    \
    } else {                                                                               \
      for (int64_t r = 0; r < outer; r++) {                                                \
        const T *ar = a + ooff[r];                                                         \
        _Pragma("omp parallel for num_threads(nt) schedule(static)")                       \
        for (int64_t i = 0; i < k; i++) o[r * k + i] = ar[(v[i] - base) * sd];             \
      }                                                                                    \
    }                                                                                      \
  }
SELECT_ELEMS(select_elems1, uint8_t)
SELECT_ELEMS(select_elems2, uint16_t)
SELECT_ELEMS(select_elems4, uint32_t)
SELECT_ELEMS(select_elems8, uint64_t)

/* One output row's block from the input's (strided) block. */
static inline void copy_row(char *o, const char *a, size_t row, bool contiguous, int m, const int64_t *shape,
                            const int64_t *stride, int es) {
  if (contiguous) memcpy(o, a, row);
  else copy_block(o, a, m, shape, stride, es);
}

static int select_rows(fc_tensor *out, const fc_tensor *t, int d, const int64_t *v, int64_t k,
                       int64_t base) {
  int es = fc_dtype_size(t->dtype);
  if (out->numel == 0) return 0;
  if (t->ndim == 0) {
    memcpy(elem_ptr(out), elem_ptr(t), (size_t)es);
    return 0;
  }
  int64_t outer = shape_numel(d, t->shape), inner = out->numel / (outer * k), sd = t->stride[d];
  int64_t *ooff = malloc(sizeof *ooff * (size_t)outer);
  if (!ooff) FAIL_INT("index_select: out of memory");
  grid_offsets(d, t->shape, t->stride, ooff);
  int64_t ishape[FC_MAX_DIMS], istride[FC_MAX_DIMS];
  int m = coalesce(t->ndim - d - 1, t->shape + d + 1, t->stride + d + 1, ishape, istride);
  const char *src = elem_ptr(t);
  char *dst = elem_ptr(out);
  int nt = out->numel > PARALLEL_GRAIN ? num_threads() : 1;
  if (inner == 1) {
    static void (*const by_size[9])(char *, const char *, const int64_t *, int64_t, const int64_t *,
                                    int64_t, int64_t, int64_t, int) = {
        0, select_elems1, select_elems2, 0, select_elems4, 0, 0, 0, select_elems8};
    by_size[es](dst, src, ooff, outer, v, k, base, sd, nt);
  } else {
    bool contiguous = m == 1 && istride[0] == 1;
    size_t row = (size_t)(inner * es);
    if (outer >= nt) {
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
      for (int64_t r = 0; r < outer; r++)
        for (int64_t i = 0; i < k; i++)
          copy_row(dst + (size_t)(r * k + i) * row, src + (ooff[r] + (v[i] - base) * sd) * es, row, contiguous,
                   m, ishape, istride, es);
    } else {
      for (int64_t r = 0; r < outer; r++)
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t i = 0; i < k; i++)
          copy_row(dst + (size_t)(r * k + i) * row, src + (ooff[r] + (v[i] - base) * sd) * es, row, contiguous,
                   m, ishape, istride, es);
    }
  }
  free(ooff);
  return 0;
}

/* dst[0..n) += src[0..n), contiguous, in dtype (float32/float64 here). */
static void add_run(int dtype, char *dst, const char *src, int64_t n) {
  if (dtype == FC_FLOAT32) {
    float *o = (float *)dst;
    const float *a = (const float *)src;
    for (int64_t j = 0; j < n; j++) o[j] += a[j];
  } else {
    double *o = (double *)dst;
    const double *a = (const double *)src;
    for (int64_t j = 0; j < n; j++) o[j] += a[j];
  }
}

/* Gradients in float32 or float64: halves are summed in float32 (the
 * engine casts the result back to the input's dtype). */
/* On a cuda device index_select runs as a gather (and its backward as a
 * scatter_add) whose index is the 1-D one expanded over the output's shape:
 * stride 0 in every dim but d. The walks are defined below. */
enum { GATHER, SCATTER, SCATTER_ADD }; /* the walks' kinds, as backend.h's BK_GATHER ... */
static int select_walk_device(fc_tensor *self, fc_tensor *other, int d, const fc_tensor *iv, int64_t base,
                              int kind);

static fc_tensor *grad_work(fc_tensor *g) {
  fc_tensor *w = is_half_dtype(g->dtype) ? fc_to_dtype(g, FC_FLOAT32) : fc_retain(g);
  fc_tensor *c = w ? fc_contiguous(w) : NULL;
  fc_release(w);
  return c;
}

/* Records out's backward for an op along dim d with `index` (1- or 0-based
 * per base; kind tells scatter from scatter_add); on failure out is released
 * and NULL returned, so callers can return what this gives. */
static fc_tensor *record_along(const char *op, backward_fn fn, fc_tensor *out, int n_in, fc_tensor *const *ins,
                               fc_tensor *index, int d, int64_t base, int kind) {
  fc_node *n = record(op, fn, out, n_in, ins);
  if (!n) {
    fc_release(out);
    return NULL;
  }
  node_save(n, index);
  n->iarg[0] = d;
  n->iarg[1] = base;
  n->iarg[2] = kind;
  return out;
}

/* saved[0]: the index; iarg: dim, base. The gradient adds each output row
 * back into the input row it came from (index_add). Rows of different
 * outer positions never meet, so threads split them; with a single outer
 * position they split the columns instead. */
static int index_select_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  int d = (int)n->iarg[0];
  int64_t base = n->iarg[1];
  fc_tensor *iv = index_values("index_select", n->saved[0]), *gw = iv ? grad_work(g) : NULL;
  fc_tensor *z = gw ? fc_zeros(n->in_ndim[0], n->in_shape[0], gw->dtype, g->device) : NULL;
  if (!z) {
    fc_release(iv), fc_release(gw);
    return -1;
  }
  const int64_t *v = (const int64_t *)elem_ptr(iv);
  int64_t k = iv->numel, nd = n->in_ndim[0];
  if (z->numel == 0 || k == 0 || z->device.type == FC_CUDA) {
    int rc = z->numel && k && z->device.type == FC_CUDA ? select_walk_device(z, gw, d, iv, base, SCATTER_ADD) : 0;
    fc_release(iv), fc_release(gw);
    if (rc < 0) fc_release(z), z = NULL;
    gi[0] = z;
    return rc;
  }
  int64_t outer = nd ? shape_numel(d, n->in_shape[0]) : 1, size = nd ? n->in_shape[0][d] : 1;
  int64_t inner = z->numel / (outer * size);
  int dt = z->dtype, es = fc_dtype_size(dt);
  char *zp = elem_ptr(z);
  const char *gp = elem_ptr(gw);
  bool par = gw->numel > PARALLEL_GRAIN;
  if (outer > 1) {
#pragma omp parallel for if (par) schedule(static)
    for (int64_t o = 0; o < outer; o++)
      for (int64_t i = 0; i < k; i++)
        add_run(dt, zp + ((o * size + v[i] - base) * inner) * es, gp + ((o * k + i) * inner) * es, inner);
  } else {
    int64_t blocks = par && inner >= 1024 ? num_threads() : 1;
#pragma omp parallel for if (blocks > 1) schedule(static)
    for (int64_t b = 0; b < blocks; b++) {
      int64_t c0 = inner * b / blocks, c1 = inner * (b + 1) / blocks;
      for (int64_t i = 0; i < k; i++)
        add_run(dt, zp + ((v[i] - base) * inner + c0) * es, gp + (i * inner + c0) * es, c1 - c0);
    }
  }
  fc_release(iv), fc_release(gw);
  gi[0] = z;
  return 0;
}

fc_tensor *fc_index_select(fc_tensor *t, int dim, fc_tensor *index, int64_t base) {
  const char *op = "index_select";
  if (check_same_device(op, 2, (const fc_tensor *const[]){t, index}) < 0) return NULL;
  int d = wrap_dim(op, dim, t->ndim);
  if (d < 0) return NULL;
  if (index->ndim > 1) FAIL("index_select: index must be 1-D (or 0-dim), got shape %s", SHAPE(index));
  fc_tensor *iv = index_values(op, index);
  if (!iv) return NULL;
  int64_t k = iv->numel;
  if (t->ndim == 0 && k != 1) {
    fc_release(iv);
    FAIL("index_select: a 0-dim tensor takes exactly one index, got %lld", (long long)k);
  }
  if (check_range(op, iv, size_at(t, d), base) < 0) {
    fc_release(iv);
    return NULL;
  }
  int64_t shape[FC_MAX_DIMS];
  memcpy(shape, t->shape, sizeof shape);
  if (t->ndim) shape[d] = k;
  fc_tensor *out = fc_empty(t->ndim, shape, t->dtype, t->device);
  bool on_device = out && out->device.type == FC_CUDA;
  if (on_device && out->numel && select_walk_device(t, out, d, iv, base, GATHER) < 0) {
    fc_release(out);
    out = NULL;
  } else if (out && !on_device && select_rows(out, t, d, (const int64_t *)elem_ptr(iv), k, base) < 0) {
    fc_release(out);
    out = NULL;
  }
  fc_release(iv);
  if (out && is_float_dtype(t->dtype) && grad_needed(1, &t))
    return record_along(op, index_select_backward, out, 1, &t, index, d, base, 0);
  return out;
}

/* ---- gather and scatter ---------------------------------------------------
 * Both walk the index's shape. At position p the index value v picks the
 * element of `self` at p in every dim but d, and at v in dim d; `other` (the
 * gather output, or scatter's src) is read or written at p itself. The walk
 * drops size-1 dims, merges dims that step through all three operands as
 * one, and goes by rows along the last remaining dim, with an odometer over
 * the others. Threads split the rows, or the columns: gather never writes
 * one place twice, so either will do; scatter writes one place twice only
 * from positions that differ in dim d alone, so its threads split along a
 * dim other than d (rows when d is the row dim, else columns), keeping the
 * walk in memory order. */


typedef struct walk {
  int nd, d; /* walked dims (>= 1); d: the indexed dim's place, or -1 once dropped */
  int64_t shape[FC_MAX_DIMS];
  int64_t is[FC_MAX_DIMS]; /* strides, in elements: the index */
  int64_t ts[FC_MAX_DIMS]; /* self: 0 along d, where the index value decides */
  int64_t os[FC_MAX_DIMS]; /* other: all 0 for a scalar src */
  int64_t td;              /* self's stride along d, scaled by each index value */
  const int64_t *idx;
  char *self, *other;
  int64_t base;
  int dtype, es;
  fc_device dev; /* self's: a cuda walk runs in the plugin */
} walk;

/* iv: contiguous int64 index; other: NULL for a scalar at other_ptr. */
static void walk_init(walk *w, fc_tensor *self, int d, const fc_tensor *iv, const fc_tensor *other,
                      char *other_ptr, int64_t base) {
  int nd = dims_of(iv);
  int64_t shape[FC_MAX_DIMS] = {0}, is[FC_MAX_DIMS];
  for (int k = 0; k < nd; k++) shape[k] = size_at(iv, k), is[k] = stride_at(iv, k); /* may be expanded */
  w->nd = 0;
  w->d = -1;
  for (int k = 0; k < nd; k++) {
    if (shape[k] == 1) continue;
    int64_t ts = k == d ? 0 : stride_at(self, k), os = other ? stride_at(other, k) : 0;
    int m = w->nd;
    bool merge = m > 0 && k != d && w->d != m - 1 && w->is[m - 1] == is[k] * shape[k] &&
                 w->ts[m - 1] == ts * shape[k] && w->os[m - 1] == os * shape[k];
    if (merge) {
      w->shape[m - 1] *= shape[k];
      w->is[m - 1] = is[k], w->ts[m - 1] = ts, w->os[m - 1] = os;
    } else {
      if (k == d) w->d = m;
      w->shape[m] = shape[k];
      w->is[m] = is[k], w->ts[m] = ts, w->os[m] = os;
      w->nd++;
    }
  }
  if (w->nd == 0) { /* a single position */
    w->nd = 1;
    w->shape[0] = 1;
    w->is[0] = w->ts[0] = w->os[0] = 0;
  }
  w->td = stride_at(self, d);
  w->idx = (const int64_t *)elem_ptr(iv);
  w->self = elem_ptr(self);
  w->other = other ? elem_ptr(other) : other_ptr;
  w->base = base;
  w->dtype = self->dtype;
  w->es = fc_dtype_size(self->dtype);
  w->dev = self->device;
}

/* The run's element loop over j: TP is self's element, OP other's. The
 * common case, index and other contiguous along the run, gets its own loop
 * (for a gather along a contiguous last dim that is a vector gather). */
#define RUN_LOOP(BODY)                                                          \
  do {                                                                          \
    if (il == 1 && ol == 1 && tl == 0) { /* the run is along d itself */        \
      for (int64_t j = 0; j < n; j++) {                                         \
        int64_t TP = (v[j] - base) * td, OP = j;                                \
        BODY;                                                                   \
      }                                                                         \
    } else if (il == 1 && ol == 1) {                                            \
      for (int64_t j = 0; j < n; j++) {                                         \
        int64_t TP = j * tl + (v[j] - base) * td, OP = j;                       \
        BODY;                                                                   \
      }                                                                         \
    } else {                                                                    \
      for (int64_t j = 0; j < n; j++) {                                         \
        int64_t TP = j * tl + (v[j * il] - base) * td, OP = j * ol;             \
        BODY;                                                                   \
      }                                                                         \
    }                                                                           \
  } while (0)

#define RUN_TYPED(T, BODY)                                                      \
  do {                                                                          \
    T *s = (T *)(w->self + to * w->es), *o = (T *)(w->other + oo * w->es);      \
    RUN_LOOP(BODY);                                                             \
  } while (0)

/* One run of n positions starting at element offsets io, to, oo. */
static void walk_run1(const walk *w, int kind, int64_t io, int64_t to, int64_t oo, int64_t n) {
  int last = w->nd - 1;
  int64_t il = w->is[last], ol = w->os[last], tl = w->ts[last], td = w->td, base = w->base;
  const int64_t *v = w->idx + io;
  if (kind == GATHER) {
    switch (w->es) {
    case 1: RUN_TYPED(uint8_t, o[OP] = s[TP]); break;
    case 2: RUN_TYPED(uint16_t, o[OP] = s[TP]); break;
    case 4: RUN_TYPED(uint32_t, o[OP] = s[TP]); break;
    default: RUN_TYPED(uint64_t, o[OP] = s[TP]); break;
    }
  } else if (kind == SCATTER) {
    switch (w->es) {
    case 1: RUN_TYPED(uint8_t, s[TP] = o[OP]); break;
    case 2: RUN_TYPED(uint16_t, s[TP] = o[OP]); break;
    case 4: RUN_TYPED(uint32_t, s[TP] = o[OP]); break;
    default: RUN_TYPED(uint64_t, s[TP] = o[OP]); break;
    }
  } else {
    switch (w->dtype) {
    case FC_FLOAT32: RUN_TYPED(float, s[TP] += o[OP]); break;
    case FC_FLOAT64: RUN_TYPED(double, s[TP] += o[OP]); break;
    /* integers wrap as in PyTorch: added as unsigned, never overflowing */
    case FC_INT64: RUN_TYPED(uint64_t, s[TP] += o[OP]); break;
    case FC_INT32: RUN_TYPED(uint32_t, s[TP] += o[OP]); break;
    case FC_UINT8: RUN_TYPED(uint8_t, s[TP] = (uint8_t)(s[TP] + o[OP])); break;
    case FC_BOOL: RUN_TYPED(uint8_t, s[TP] |= o[OP]); break;
    case FC_FLOAT16: RUN_TYPED(uint16_t, s[TP] = float_to_half(half_to_float(s[TP]) + half_to_float(o[OP]))); break;
    default: RUN_TYPED(uint16_t, s[TP] = float_to_bf16(bf16_to_float(s[TP]) + bf16_to_float(o[OP]))); break;
    }
  }
}

/* Rows [r0, r1), columns [c0, c1) of each. */
static void walk_range(const walk *w, int kind, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  int last = w->nd - 1;
  int64_t pos[FC_MAX_DIMS] = {0}, io = 0, to = 0, oo = 0, rest = r0;
  for (int k = last - 1; k >= 0; k--) {
    pos[k] = rest % w->shape[k];
    rest /= w->shape[k];
    io += pos[k] * w->is[k], to += pos[k] * w->ts[k], oo += pos[k] * w->os[k];
  }
  for (int64_t r = r0; r < r1; r++) {
    walk_run1(w, kind, io + c0 * w->is[last], to + c0 * w->ts[last], oo + c0 * w->os[last], c1 - c0);
    for (int k = last - 1; k >= 0; k--) {
      io += w->is[k], to += w->ts[k], oo += w->os[k];
      if (++pos[k] < w->shape[k]) break;
      io -= w->is[k] * w->shape[k], to -= w->ts[k] * w->shape[k], oo -= w->os[k] * w->shape[k];
      pos[k] = 0;
    }
  }
}

/* The same walk on a cuda device; a scalar `other` travels by value. */
static int walk_device(const walk *w, int kind, bool scalar_other) {
  bk_walk b = {.kind = kind, .dtype = w->dtype, .nd = w->nd, .td = w->td, .base = w->base, .idx = w->idx,
               .self = w->self, .other = scalar_other ? NULL : w->other};
  for (int k = 0; k < w->nd; k++) b.shape[k] = w->shape[k], b.is[k] = w->is[k], b.ts[k] = w->ts[k], b.os[k] = w->os[k];
  if (scalar_other) memcpy(&b.scalar, w->other, (size_t)w->es);
  return backend_get()->index_walk(w->dev.index, &b);
}

static int walk_all(const walk *w, int kind) {
  int64_t numel = shape_numel(w->nd, w->shape);
  if (numel == 0) return 0;
  if (w->dev.type == FC_CUDA) return walk_device(w, kind, false);
  int last = w->nd - 1;
  int64_t n = w->shape[last], rows = numel / n, nt = numel > PARALLEL_GRAIN ? num_threads() : 1;
  bool rows_apart = kind == GATHER || w->d < 0 || w->d == last;
  bool cols_apart = kind == GATHER || w->d != last;
  for (int k = 0; k < w->nd && kind != GATHER; k++)
    if (k != w->d && w->ts[k] == 0) nt = 1; /* an expanded target: its places repeat */
  if (nt > 1 && rows_apart && (rows >= nt || !cols_apart)) {
    nt = rows < nt ? rows : nt;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t c = 0; c < nt; c++) walk_range(w, kind, rows * c / nt, rows * (c + 1) / nt, 0, n);
  } else if (nt > 1 && cols_apart) {
    nt = n < nt ? n : nt;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t c = 0; c < nt; c++) walk_range(w, kind, 0, rows, n * c / nt, n * (c + 1) / nt);
  } else {
    walk_range(w, kind, 0, rows, 0, n);
  }
  return 0;
}

static int select_walk_device(fc_tensor *self, fc_tensor *other, int d, const fc_tensor *iv, int64_t base,
                              int kind) {
  int64_t st[FC_MAX_DIMS] = {0};
  if (other->ndim) st[d] = iv->ndim ? iv->stride[0] : 0;
  fc_tensor *ev = other->ndim ? tensor_view_of((fc_tensor *)iv, other->ndim, other->shape, st, iv->offset)
                              : fc_retain((fc_tensor *)iv);
  if (!ev) return -1;
  walk w;
  walk_init(&w, self, d, ev, other, NULL, base);
  int rc = walk_all(&w, kind);
  fc_release(ev);
  return rc;
}

/* PyTorch's rules: index, self (and src) have the same number of dims;
 * index.size(k) <= self.size(k) for k != d and <= src.size(k) for all k. */
static int check_index_shape(const char *op, const fc_tensor *self, const fc_tensor *idx,
                             const fc_tensor *src, int d) {
  if (dims_of(idx) != dims_of(self))
    FAIL_INT("%s: index of shape %s must have as many dims as the input of shape %s", op, SHAPE(idx),
             SHAPE(self));
  if (src && dims_of(src) != dims_of(idx))
    FAIL_INT("%s: index of shape %s must have as many dims as src of shape %s", op, SHAPE(idx),
             SHAPE(src));
  for (int k = 0; k < dims_of(idx); k++) {
    int64_t n = size_at(idx, k);
    if (k != d && n > size_at(self, k))
      FAIL_INT("%s: index of shape %s is larger than the input of shape %s in the %s dim (%lld > %lld); "
               "only the indexed dim (the %s) may be larger", op, SHAPE(idx), SHAPE(self), ORD(k),
               (long long)n, (long long)size_at(self, k), ORD(d));
    if (src && n > size_at(src, k))
      FAIL_INT("%s: index of shape %s is larger than src of shape %s in the %s dim (%lld > %lld)", op,
               SHAPE(idx), SHAPE(src), ORD(k), (long long)n, (long long)size_at(src, k));
  }
  return 0;
}

/* self += other scattered by the (validated) index; other has g's dtype. */
static int scatter_add_grad(fc_tensor *z, int d, fc_tensor *index, fc_tensor *g, int64_t base) {
  fc_tensor *iv = index_values("gather", index);
  if (!iv) return -1;
  walk w;
  walk_init(&w, z, d, iv, g, NULL, base);
  int rc = walk_all(&w, SCATTER_ADD);
  fc_release(iv);
  return rc;
}

/* saved[0]: the index; iarg: dim, base. Each gathered element's gradient
 * flows back to where it came from, summed where picked more than once. */
static int gather_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  fc_tensor *gw = grad_work(g);
  fc_tensor *z = gw ? fc_zeros(n->in_ndim[0], n->in_shape[0], gw->dtype, g->device) : NULL;
  int rc = z ? scatter_add_grad(z, (int)n->iarg[0], n->saved[0], gw, n->iarg[1]) : -1;
  fc_release(gw);
  if (rc < 0) {
    fc_release(z);
    return -1;
  }
  gi[0] = z;
  return 0;
}

fc_tensor *fc_gather(fc_tensor *t, int dim, fc_tensor *index, int64_t base) {
  const char *op = "gather";
  if (check_same_device(op, 2, (const fc_tensor *const[]){t, index}) < 0) return NULL;
  int d = wrap_dim(op, dim, t->ndim);
  if (d < 0 || check_index_shape(op, t, index, NULL, d) < 0) return NULL;
  fc_tensor *iv = index_values(op, index);
  if (!iv) return NULL;
  fc_tensor *out = NULL;
  if (check_range(op, iv, size_at(t, d), base) == 0) out = fc_empty(iv->ndim, iv->shape, t->dtype, t->device);
  if (out) {
    walk w;
    walk_init(&w, t, d, iv, out, NULL, base);
    if (walk_all(&w, GATHER) < 0) fc_release(out), out = NULL;
  }
  fc_release(iv);
  if (out && is_float_dtype(t->dtype) && grad_needed(1, &t))
    return record_along(op, gather_backward, out, 1, &t, index, d, base, 0);
  return out;
}

/* Checks a scatter's arguments; gives the wrapped dim and the index values.
 * A 0-dim src is a scalar written at every index (PyTorch's value form). */
static fc_tensor *scatter_check(const char *op, fc_tensor *t, int dim, fc_tensor *index, fc_tensor *src,
                                int64_t base, int *d) {
  if (check_same_device(op, 3, (const fc_tensor *const[]){t, index, src}) < 0) return NULL;
  if ((*d = wrap_dim(op, dim, t->ndim)) < 0) return NULL;
  bool scalar = src->ndim == 0;
  if (!scalar && src->dtype != t->dtype)
    FAIL("%s: src has dtype %s but the tensor has %s; they must match", op, DTYPE(src), DTYPE(t));
  if (check_index_shape(op, t, index, scalar ? NULL : src, *d) < 0) return NULL;
  fc_tensor *iv = index_values(op, index);
  if (iv && check_range(op, iv, size_at(t, *d), base) < 0) {
    fc_release(iv);
    return NULL;
  }
  return iv;
}

/* Writes (kind SCATTER) or adds (SCATTER_ADD) src into t; checked already. */
static int scatter_apply(fc_tensor *t, int d, const fc_tensor *iv, const fc_tensor *src, int64_t base,
                         int kind) {
  uint64_t value = 0; /* a scalar src, in t's dtype */
  if (src->ndim == 0 && src->device.type == FC_CUDA) { /* its value, from the device */
    double v = 0;
    if (fc_item(src, &v) < 0) return -1;
    store_from_double(&value, t->dtype, v);
  } else if (src->ndim == 0) {
    if (src->dtype == t->dtype) memcpy(&value, elem_ptr(src), (size_t)fc_dtype_size(t->dtype));
    else store_from_double(&value, t->dtype, load_as_double(elem_ptr(src), src->dtype));
  }
  walk w;
  walk_init(&w, t, d, iv, src->ndim ? src : NULL, (char *)&value, base);
  if (w.dev.type == FC_CUDA && shape_numel(w.nd, w.shape) > 0) return walk_device(&w, kind, src->ndim == 0);
  return walk_all(&w, kind);
}

static int scatter_inplace(const char *op, fc_tensor *t, int dim, fc_tensor *index, fc_tensor *src,
                           int64_t base, int kind) {
  if (check_same_device(op, 3, (const fc_tensor *const[]){t, index, src}) < 0) return -1;
  if (check_inplace(op, t) < 0) return -1;
  int d;
  fc_tensor *iv = scatter_check(op, t, dim, index, src, base, &d);
  if (!iv) return -1;
  int rc = scatter_apply(t, d, iv, src, base, kind);
  bump_version(t);
  fc_release(iv);
  return rc;
}

int fc_scatter_(fc_tensor *t, int dim, fc_tensor *index, fc_tensor *src, int64_t base) {
  return scatter_inplace("scatter_", t, dim, index, src, base, SCATTER);
}
int fc_scatter_add_(fc_tensor *t, int dim, fc_tensor *index, fc_tensor *src, int64_t base) {
  return scatter_inplace("scatter_add_", t, dim, index, src, base, SCATTER_ADD);
}

/* saved[0]: the index; iarg: dim, base, kind. The tensor's gradient passes
 * through except where scatter overwrote it; src's is g gathered at the
 * index, placed in a zero tensor of src's shape when src is larger than the
 * index (a 0-dim src gets the sum from the engine). */
static int scatter_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  int d = (int)n->iarg[0];
  int64_t base = n->iarg[1];
  fc_tensor *index = n->saved[0];
  if (needs_grad(n, 0) && n->iarg[2] == SCATTER_ADD) {
    gi[0] = fc_retain(g);
  } else if (needs_grad(n, 0)) {
    fc_tensor *iv = index_values("scatter", index), *zero = fc_scalar(0, g->dtype, g->device);
    gi[0] = iv && zero ? fc_clone(g) : NULL;
    if (gi[0] && scatter_apply(gi[0], d, iv, zero, base, SCATTER) < 0) fc_release(gi[0]), gi[0] = NULL;
    fc_release(iv), fc_release(zero);
    if (!gi[0]) return -1;
  }
  if (!needs_grad(n, 1)) return 0;
  fc_tensor *gs = fc_gather(g, d, index, base);
  if (!gs) return -1;
  int nd = n->in_ndim[1]; /* a src with dims has the index's number of them */
  if (nd == 0 || memcmp(gs->shape, n->in_shape[1], sizeof(int64_t) * (size_t)nd) == 0) {
    gi[1] = gs;
    return 0;
  }
  fc_tensor *z = fc_zeros(nd, n->in_shape[1], gs->dtype, gs->device);
  fc_tensor *corner = z ? tensor_view_of(z, nd, gs->shape, z->stride, z->offset) : NULL;
  int rc = corner ? fc_copy_(corner, gs) : -1;
  fc_release(corner), fc_release(gs);
  if (rc < 0) {
    fc_release(z);
    return -1;
  }
  gi[1] = z;
  return 0;
}

static fc_tensor *scatter_op(const char *op, fc_tensor *t, int dim, fc_tensor *index, fc_tensor *src,
                             int64_t base, int kind) {
  int d;
  fc_tensor *iv = scatter_check(op, t, dim, index, src, base, &d);
  if (!iv) return NULL;
  int prev = grad_mode_push(false);
  fc_tensor *out = fc_clone(t);
  grad_mode_pop(prev);
  if (out && scatter_apply(out, d, iv, src, base, kind) < 0) fc_release(out), out = NULL;
  fc_release(iv);
  fc_tensor *ins[2] = {t, src};
  if (out && is_float_dtype(out->dtype) && grad_needed(2, ins))
    return record_along(op, scatter_backward, out, 2, ins, index, d, base, kind);
  return out;
}

fc_tensor *fc_scatter(fc_tensor *t, int dim, fc_tensor *index, fc_tensor *src, int64_t base) {
  return scatter_op("scatter", t, dim, index, src, base, SCATTER);
}
fc_tensor *fc_scatter_add(fc_tensor *t, int dim, fc_tensor *index, fc_tensor *src, int64_t base) {
  return scatter_op("scatter_add", t, dim, index, src, base, SCATTER_ADD);
}

/* ---- masks ------------------------------------------------------------------ */

static int check_mask(const char *op, const fc_tensor *mask) {
  if (mask->dtype != FC_BOOL && mask->dtype != FC_UINT8)
    FAIL_INT("%s: mask must be a bool tensor, got %s", op, DTYPE(mask));
  return 0;
}

/* masked_fill keeps the tensor's shape: the mask must broadcast to it. */
static int check_mask_fits(const char *op, const fc_tensor *t, const fc_tensor *mask) {
  bool fits = mask->ndim <= t->ndim;
  for (int i = 1; fits && i <= mask->ndim; i++) {
    int64_t m = mask->shape[mask->ndim - i];
    fits = m == 1 || m == t->shape[t->ndim - i];
  }
  if (!fits)
    FAIL_INT("%s: mask of shape %s does not broadcast to the tensor's shape %s", op, SHAPE(mask), SHAPE(t));
  return 0;
}

/* o = m ? value : a over runs of [out, in, mask]; in place when out is in. */
#define MASKED_FILL_KERNEL(name, T)                                                   \
  static void name(char **p, const int64_t *s, int64_t n, void *ctx) {                \
    T v = *(const T *)ctx;                                                             \
    if (s[0] == sizeof(T) && s[1] == sizeof(T) && s[2] == 1) {                         \
      T *o = (T *)p[0];                                                                \
      const T *a = (const T *)p[1];                                                    \
      const uint8_t *m = (const uint8_t *)p[2];                                        \
      for (int64_t i = 0; i < n; i++) o[i] = m[i] ? v : a[i];                          \
    } else if (s[2] == 0) { /* one mask value for the whole run */                     \
      bool on = *(const uint8_t *)p[2] != 0;                                           \
      if (on || p[0] != p[1] || s[0] != s[1])                                          \
        for (int64_t i = 0; i < n; i++) AT(p[0], s[0], i, T) = on ? v : AT(p[1], s[1], i, T); \
    } else {                                                                           \
      for (int64_t i = 0; i < n; i++)                                                  \
        AT(p[0], s[0], i, T) = AT(p[2], s[2], i, uint8_t) ? v : AT(p[1], s[1], i, T);  \
    }                                                                                  \
  }
MASKED_FILL_KERNEL(mfill1, uint8_t)
MASKED_FILL_KERNEL(mfill2, uint16_t)
MASKED_FILL_KERNEL(mfill4, uint32_t)
MASKED_FILL_KERNEL(mfill8, uint64_t)

static void masked_fill_into(fc_tensor *out, fc_tensor *t, fc_tensor *mask, double value) {
  static const iter_kernel by_size[9] = {0, mfill1, mfill2, 0, mfill4, 0, 0, 0, mfill8};
  uint64_t pattern = 0; /* the value as one element of t's dtype */
  store_from_double(&pattern, t->dtype, value);
  iter it;
  iter_init(&it, 3, (fc_tensor *const[]){out, t, mask});
  iter_run(&it, by_size[fc_dtype_size(t->dtype)], &pattern);
}

/* saved[0]: the mask. Filled positions get no gradient. */
static int masked_fill_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  gi[0] = fc_masked_fill(g, n->saved[0], 0);
  return gi[0] ? 0 : -1;
}

fc_tensor *fc_masked_fill(fc_tensor *t, fc_tensor *mask, double value) {
  const char *op = "masked_fill";
  if (check_same_device(op, 2, (const fc_tensor *const[]){t, mask}) < 0) return NULL;
  if (check_mask(op, mask) < 0 || check_mask_fits(op, t, mask) < 0) return NULL;
  fc_tensor *out = empty_dtype_like(t, t->dtype);
  if (!out) return NULL;
  masked_fill_into(out, t, mask, value);
  if (is_float_dtype(t->dtype) && grad_needed(1, &t)) {
    fc_node *n = record(op, masked_fill_backward, out, 1, &t);
    if (!n) {
      fc_release(out);
      return NULL;
    }
    node_save(n, mask);
  }
  return out;
}

int fc_masked_fill_(fc_tensor *t, fc_tensor *mask, double value) {
  const char *op = "masked_fill_";
  if (check_same_device(op, 2, (const fc_tensor *const[]){t, mask}) < 0) return -1;
  if (check_inplace(op, t) < 0) return -1;
  if (check_mask(op, mask) < 0 || check_mask_fits(op, t, mask) < 0) return -1;
  masked_fill_into(t, t, mask, value);
  bump_version(t);
  return 0;
}

/* ---- walking in logical order ----------------------------------------------
 * masked_select and nonzero emit elements in row-major order, so they walk
 * rows along the last dim with an odometer over the others. */

typedef struct odometer {
  int nd;                       /* >= 1 */
  int64_t shape[FC_MAX_DIMS], pos[FC_MAX_DIMS];
  int64_t off[2];               /* current row's offsets, per operand */
  int64_t stride[2][FC_MAX_DIMS];
} odometer;

static void odo_init(odometer *w, int nd, const int64_t *shape) {
  memset(w, 0, sizeof *w);
  w->nd = nd ? nd : 1;
  for (int k = 0; k < w->nd; k++) w->shape[k] = nd ? shape[k] : 1;
}

static void odo_next_row(odometer *w) {
  for (int k = w->nd - 2; k >= 0; k--) {
    w->off[0] += w->stride[0][k];
    w->off[1] += w->stride[1][k];
    if (++w->pos[k] < w->shape[k]) return;
    w->off[0] -= w->stride[0][k] * w->shape[k];
    w->off[1] -= w->stride[1][k] * w->shape[k];
    w->pos[k] = 0;
  }
}

/* Strides of t viewed at the broadcast shape (0 along broadcast dims). */
static void broadcast_strides(const fc_tensor *t, int nd, const int64_t *shape, int64_t *stride) {
  for (int k = 0; k < nd; k++) {
    int tk = k - (nd - t->ndim);
    stride[k] = tk < 0 || t->shape[tk] != shape[k] ? 0 : t->stride[tk];
  }
}

/* Positions where the mask is set, in order: counted first, then copied.
 * Contiguous operands of one shape split into chunks per thread, each
 * writing from its prefix count. */
static int64_t count_set(const uint8_t *m, int64_t n) {
  int64_t c = 0;
  for (int64_t i = 0; i < n; i++) c += m[i] != 0;
  return c;
}

static fc_tensor *select_contiguous(const fc_tensor *t, const uint8_t *m, int64_t numel) {
  enum { MAX_CHUNKS = 256 };
  int64_t chunks = numel > PARALLEL_GRAIN ? num_threads() : 1, start[MAX_CHUNKS + 1] = {0};
  if (chunks > MAX_CHUNKS) chunks = MAX_CHUNKS;
#pragma omp parallel for if (chunks > 1) schedule(static)
  for (int64_t c = 0; c < chunks; c++)
    start[c + 1] = count_set(m + numel * c / chunks, numel * (c + 1) / chunks - numel * c / chunks);
  for (int64_t c = 0; c < chunks; c++) start[c + 1] += start[c];
  fc_tensor *out = fc_empty(1, &start[chunks], t->dtype, t->device);
  if (!out) return NULL;
  int es = fc_dtype_size(t->dtype);
  const char *src = elem_ptr(t);
  char *dst = elem_ptr(out);
#pragma omp parallel for if (chunks > 1) schedule(static)
  for (int64_t c = 0; c < chunks; c++) {
    int64_t b = numel * c / chunks, e = numel * (c + 1) / chunks, k = start[c], end = start[c + 1];
    /* branch-free: every element is written at k, which moves on only past
     * selected ones (a random mask would defeat the branch predictor) */
    BY_SIZE(es, {
      const T *a = (const T *)src;
      T *o = (T *)dst;
      for (int64_t i = b; i < e; i++) {
        T x = a[i];
        if (k < end) o[k] = x;
        k += m[i] != 0;
      }
    });
  }
  return out;
}

static fc_tensor *select_strided(const fc_tensor *t, const fc_tensor *mask, int nd, const int64_t *shape) {
  odometer w;
  odo_init(&w, nd, shape);
  broadcast_strides(t, nd, shape, w.stride[0]);
  broadcast_strides(mask, nd, shape, w.stride[1]);
  int last = w.nd - 1;
  int64_t n = w.shape[last], rows = shape_numel(w.nd, w.shape) / (n ? n : 1), count = 0;
  int64_t ts = w.stride[0][last], ms = w.stride[1][last];
  const uint8_t *m = (const uint8_t *)elem_ptr(mask);
  for (int64_t r = 0; n && r < rows; r++, odo_next_row(&w))
    for (int64_t j = 0; j < n; j++) count += m[w.off[1] + j * ms] != 0;
  fc_tensor *out = fc_empty(1, &count, t->dtype, t->device);
  if (!out || count == 0) return out;
  odo_init(&w, nd, shape);
  broadcast_strides(t, nd, shape, w.stride[0]);
  broadcast_strides(mask, nd, shape, w.stride[1]);
  int64_t k = 0;
  BY_SIZE(fc_dtype_size(t->dtype), {
    const T *a = (const T *)elem_ptr(t);
    T *o = (T *)elem_ptr(out);
    for (int64_t r = 0; r < rows; r++, odo_next_row(&w))
      for (int64_t j = 0; j < n; j++) {
        T x = a[w.off[0] + j * ts];
        if (k < count) o[k] = x;
        k += m[w.off[1] + j * ms] != 0;
      }
  });
  return out;
}

/* saved[0]: the mask. The gradient lands on the selected positions of a
 * zero tensor of the broadcast shape; the engine sums it down to t's. */
static int masked_select_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  const fc_tensor *mask = n->saved[0];
  int nd;
  int64_t shape[FC_MAX_DIMS];
  if (broadcast_shapes("masked_select", n->in_ndim[0], n->in_shape[0], mask->ndim, mask->shape, &nd,
                       shape) < 0)
    return -1;
  fc_tensor *gw = grad_work(g);
  fc_tensor *z = gw ? fc_zeros(nd, shape, gw->dtype, g->device) : NULL;
  if (!z) {
    fc_release(gw);
    return -1;
  }
  odometer w;
  odo_init(&w, nd, shape);
  broadcast_strides(mask, nd, shape, w.stride[1]);
  contiguous_strides(w.nd, w.shape, w.stride[0]);
  int last = w.nd - 1;
  int64_t len = w.shape[last], rows = len ? z->numel / len : 0, k = 0, ms = w.stride[1][last];
  const uint8_t *m = (const uint8_t *)elem_ptr(mask);
  BY_SIZE(fc_dtype_size(z->dtype), {
    T *o = (T *)elem_ptr(z);
    const T *a = (const T *)elem_ptr(gw);
    for (int64_t r = 0; r < rows; r++, odo_next_row(&w))
      for (int64_t j = 0; j < len; j++)
        if (m[w.off[1] + j * ms]) o[w.off[0] + j] = a[k++];
  });
  fc_release(gw);
  gi[0] = z;
  return 0;
}

fc_tensor *fc_masked_select(fc_tensor *t, fc_tensor *mask) {
  const char *op = "masked_select";
  if (check_same_device(op, 2, (const fc_tensor *const[]){t, mask}) < 0) return NULL;
  if (check_mask(op, mask) < 0) return NULL;
  int nd;
  int64_t shape[FC_MAX_DIMS];
  if (broadcast_shapes(op, t->ndim, t->shape, mask->ndim, mask->shape, &nd, shape) < 0) return NULL;
  bool same = t->ndim == nd && mask->ndim == nd && t->numel == mask->numel;
  fc_tensor *out = same && fc_is_contiguous(t) && fc_is_contiguous(mask)
                       ? select_contiguous(t, (const uint8_t *)elem_ptr(mask), t->numel)
                       : select_strided(t, mask, nd, shape);
  if (out && is_float_dtype(t->dtype) && grad_needed(1, &t)) {
    fc_node *n = record(op, masked_select_backward, out, 1, &t);
    if (!n) {
      fc_release(out);
      return NULL;
    }
    node_save(n, mask);
  }
  return out;
}

/* ---- nonzero -------------------------------------------------------------
 * Counted, then written, in row chunks per thread: each chunk writes from
 * its prefix count. */

/* Nonzero elements among the n at element stride s (-0.0 is zero, NaN is
 * not, as in PyTorch). With coords, writes the coordinates (+ base) of each,
 * at most `limit`: the row's `pos`, then j; branch-free like masked_select. */
static int64_t nonzero_run(const char *p, int dtype, int64_t s, int64_t n, int64_t *coords, int nd,
                           const int64_t *pos, int64_t base, int64_t limit) {
  int64_t c = 0;
#define NZ_LOOP(T, TEST)                                             \
  {                                                                  \
    const T *x = (const T *)p;                                       \
    if (!coords) {                                                   \
      for (int64_t j = 0; j < n; j++) { T v = x[j * s]; c += (TEST); } \
      break;                                                         \
    }                                                                \
    for (int64_t j = 0; j < n; j++) {                                \
      T v = x[j * s];                                                \
      if (c < limit) {                                               \
        int64_t *o = coords + c * nd;                                \
        for (int k = 0; k < nd - 1; k++) o[k] = pos[k] + base;       \
        o[nd - 1] = j + base;                                        \
      }                                                              \
      c += (TEST);                                                   \
    }                                                                \
  }
  switch (dtype) {
  case FC_FLOAT32: NZ_LOOP(float, v != 0) break;
  case FC_FLOAT64: NZ_LOOP(double, v != 0) break;
  case FC_FLOAT16: case FC_BFLOAT16: NZ_LOOP(uint16_t, (v & 0x7fff) != 0) break;
  case FC_INT64: NZ_LOOP(int64_t, v != 0) break;
  case FC_INT32: NZ_LOOP(int32_t, v != 0) break;
  default: NZ_LOOP(uint8_t, v != 0) break;
  }
#undef NZ_LOOP
  return c;
}

/* Rows [r0, r1) of t (rows along the last dim); counts, or writes coords. */
static int64_t nonzero_rows(const fc_tensor *t, int64_t r0, int64_t r1, int64_t *coords, int64_t base,
                            int64_t limit) {
  if (r0 >= r1) return 0;
  odometer w;
  odo_init(&w, t->ndim, t->shape);
  for (int k = 0; k < t->ndim; k++) w.stride[0][k] = t->stride[k];
  int last = w.nd - 1, nd = t->ndim;
  int64_t rest = r0;
  for (int k = last - 1; k >= 0; k--) {
    w.pos[k] = rest % w.shape[k];
    rest /= w.shape[k];
    w.off[0] += w.pos[k] * w.stride[0][k];
  }
  int64_t n = w.shape[last], s = w.stride[0][last], count = 0;
  const char *p = elem_ptr(t);
  int es = fc_dtype_size(t->dtype);
  for (int64_t r = r0; r < r1; r++, odo_next_row(&w))
    count += nonzero_run(p + w.off[0] * es, t->dtype, s, n, coords ? coords + count * nd : NULL, nd, w.pos,
                         base, limit - count);
  return count;
}

fc_tensor *fc_nonzero(fc_tensor *t, int64_t base) {
  if (check_same_device("nonzero", 1, (const fc_tensor *const[]){t}) < 0) return NULL;
  enum { MAX_CHUNKS = 256 };
  int64_t n = t->ndim ? t->shape[t->ndim - 1] : 1, rows = n ? t->numel / n : 0;
  int64_t chunks = t->numel > PARALLEL_GRAIN ? num_threads() : 1, start[MAX_CHUNKS + 1] = {0};
  if (chunks > MAX_CHUNKS) chunks = MAX_CHUNKS;
  if (chunks > rows) chunks = rows ? rows : 1;
#pragma omp parallel for if (chunks > 1) schedule(static)
  for (int64_t c = 0; c < chunks; c++)
    start[c + 1] = nonzero_rows(t, rows * c / chunks, rows * (c + 1) / chunks, NULL, 0, 0);
  for (int64_t c = 0; c < chunks; c++) start[c + 1] += start[c];
  fc_tensor *out = fc_empty(2, (int64_t[]){start[chunks], t->ndim}, FC_INT64, t->device);
  if (!out || out->numel == 0) return out;
  int64_t *o = (int64_t *)elem_ptr(out);
#pragma omp parallel for if (chunks > 1) schedule(static)
  for (int64_t c = 0; c < chunks; c++)
    nonzero_rows(t, rows * c / chunks, rows * (c + 1) / chunks, o + start[c] * t->ndim, base,
                 start[c + 1] - start[c]);
  return out;
}

/* ---- one_hot --------------------------------------------------------------- */

fc_tensor *fc_one_hot(fc_tensor *index, int64_t num_classes, int64_t base) {
  const char *op = "one_hot";
  if (check_same_device(op, 1, (const fc_tensor *const[]){index}) < 0) return NULL;
  if (num_classes < -1)
    FAIL("one_hot: num_classes must be -1 (infer it) or at least 0, got %lld", (long long)num_classes);
  if (index->ndim >= FC_MAX_DIMS)
    FAIL("one_hot: index of shape %s has %d dims; the result would need %d (at most %d)", SHAPE(index),
         index->ndim, index->ndim + 1, FC_MAX_DIMS);
  fc_tensor *iv = index_values(op, index);
  if (!iv) return NULL;
  const int64_t *v = (const int64_t *)elem_ptr(iv);
  int64_t n = iv->numel;
  if (num_classes == -1) {
    if (n == 0) {
      fc_release(iv);
      FAIL("one_hot: cannot infer the number of classes from an empty index; pass num_classes");
    }
    int64_t hi = INT64_MIN;
    for (int64_t i = 0; i < n; i++) hi = v[i] > hi ? v[i] : hi;
    if (hi >= ((int64_t)1 << 48) + base) { /* no such tensor could be made */
      fc_release(iv);
      FAIL("one_hot: class %lld is too large to infer the number of classes from", (long long)hi);
    }
    num_classes = hi < base ? 0 : hi - base + 1;
  }
  for (int64_t i = 0; i < n; i++)
    if (v[i] < base || v[i] - base >= num_classes) {
      long long bad = (long long)v[i];
      fc_release(iv);
      if (num_classes == 0) FAIL("one_hot: class %lld out of range for 0 classes", bad);
      FAIL("one_hot: class %lld out of range for %lld classes (valid %lld..%lld)", bad,
           (long long)num_classes, (long long)base, (long long)(base + num_classes - 1));
    }
  int64_t shape[FC_MAX_DIMS];
  memcpy(shape, iv->shape, sizeof(int64_t) * (size_t)iv->ndim);
  shape[iv->ndim] = num_classes;
  fc_tensor *out = fc_zeros(iv->ndim + 1, shape, FC_INT64, index->device);
  if (out) {
    int64_t *o = (int64_t *)elem_ptr(out);
    for (int64_t i = 0; i < n; i++) o[i * num_classes + v[i] - base] = 1;
  }
  fc_release(iv);
  return out;
}
