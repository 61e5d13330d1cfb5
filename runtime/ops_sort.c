/* ops_sort.c — ops along one dim: max/min with indices, argmax/argmin,
 * cumsum/cumprod, sort and topk, with their backward.
 *
 * The input is seen as [outer, L, inner] in its own dim order (made
 * contiguous if it is not), L being the dim's length:
 * - max/min and the cumulative ops sweep it as it lies: along each row when
 *   inner == 1, else a whole [inner] slab at a time (no transposing copies);
 * - sort and topk move the dim last, so each row is L contiguous elements,
 *   turn the values into unsigned keys that order like them (NaN largest)
 *   and radix-sort (key, position) pairs: stable, and linear in L.
 * Kernels are typed (float32, float64, int64, int32, uint8/bool; float16 and
 * bfloat16 read as float32); returned values are the input's own elements,
 * so int64 stays exact. */
#include "backend.h"
#include <stdlib.h>

/* ---- layouts ------------------------------------------------------------- */

/* The input contiguous in its own order, as [outer, L, inner]. */
typedef struct strips {
  fc_tensor *t;   /* contiguous, the input's dtype */
  fc_tensor *key; /* what kernels read: t, or a float32 copy of halves */
  int dim, ndim;
  int64_t outer, L, inner;
  int64_t shape[FC_MAX_DIMS];
} strips;

static void strips_free(strips *s) {
  if (s->key != s->t) fc_release(s->key);
  fc_release(s->t);
  s->t = s->key = NULL;
}

/* dim_last: view the input with the dim moved last first (rows for sorting). */
static int strips_of(const char *op, fc_tensor *t, int dim, bool dim_last, strips *s) {
  memset(s, 0, sizeof *s);
  if (check_same_device(op, 1, (const fc_tensor *const[]){t}) < 0) return -1;
  int d = wrap_dim(op, dim, t->ndim);
  if (d < 0) return -1;
  int prev = grad_mode_push(false);
  fc_tensor *v = fc_retain(t);
  if (dim_last && t->ndim > 1 && d != t->ndim - 1) { /* the dim moved last */
    int perm[FC_MAX_DIMS], n = 0;
    for (int i = 0; i < t->ndim; i++)
      if (i != d) perm[n++] = i;
    perm[n] = d;
    fc_release(v);
    v = fc_permute(t, t->ndim, perm);
  }
  s->t = v ? fc_contiguous(v) : NULL;
  fc_release(v);
  s->key = s->t && is_half_dtype(t->dtype) ? fc_to_dtype(s->t, FC_FLOAT32) : s->t;
  grad_mode_pop(prev);
  if (!s->t || !s->key) {
    strips_free(s);
    return -1;
  }
  s->ndim = t->ndim;
  s->dim = dim_last && t->ndim ? t->ndim - 1 : d;
  s->outer = s->inner = 1;
  for (int i = 0; i < s->ndim; i++) {
    s->shape[i] = s->t->shape[i];
    if (i < s->dim) s->outer *= s->shape[i];
    if (i > s->dim) s->inner *= s->shape[i];
  }
  s->L = t->ndim ? s->shape[s->dim] : 1;
  return 0;
}

/* A new contiguous tensor shaped like s with the dim's length `len`. */
static fc_tensor *strips_empty(const strips *s, int64_t len, int dtype) {
  int64_t shape[FC_MAX_DIMS];
  memcpy(shape, s->shape, sizeof shape);
  if (s->ndim) shape[s->dim] = len;
  return fc_empty(s->ndim, shape, dtype, s->t->device);
}

/* Elements of s->t at positions idx along the dim (idx laid out [outer, k,
 * inner]), copied as they are: exact for every dtype. */
static fc_tensor *gather_values(const strips *s, const int64_t *idx, int64_t k) {
  fc_tensor *m = strips_empty(s, k, s->t->dtype);
  if (!m) return NULL;
  int64_t L = s->L, in = s->inner, n = s->outer * k * in;
#define GATHER(T)                                                                      \
  do {                                                                                 \
    const T *src = (const T *)elem_ptr(s->t);                                          \
    T *dst = (T *)elem_ptr(m);                                                         \
    _Pragma("omp parallel for if (n > PARALLEL_GRAIN) schedule(static)")               \
    for (int64_t q = 0; q < n; q++) {                                                  \
      int64_t o = q / (k * in), c = q % in;                                            \
      dst[q] = src[(o * L + idx[q]) * in + c];                                         \
    }                                                                                  \
  } while (0)
  switch (fc_dtype_size(s->t->dtype)) {
  case 1: GATHER(uint8_t); break;
  case 2: GATHER(uint16_t); break;
  case 4: GATHER(uint32_t); break;
  default: GATHER(uint64_t); break;
  }
#undef GATHER
  return m;
}

/* idx + base as an int64 tensor shaped like s with the dim's length k. */
static fc_tensor *index_tensor(const strips *s, const int64_t *idx, int64_t k, int64_t base) {
  fc_tensor *m = strips_empty(s, k, FC_INT64);
  if (!m) return NULL;
  int64_t *o = (int64_t *)elem_ptr(m);
  for (int64_t i = 0; i < m->numel; i++) o[i] = idx[i] + base;
  return m;
}

/* A tensor of the moved layout (dim last) back in the input's dim order. */
static fc_tensor *unmove(fc_tensor *m, int dim) {
  if (!m || m->ndim < 2 || dim == m->ndim - 1) return m;
  int n = m->ndim, perm[FC_MAX_DIMS];
  for (int i = 0, k = 0; i < n; i++) perm[i] = i == dim ? n - 1 : k++;
  int prev = grad_mode_push(false);
  fc_tensor *p = fc_permute(m, n, perm), *c = p ? fc_contiguous(p) : NULL;
  grad_mode_pop(prev);
  fc_release(p);
  fc_release(m);
  return c;
}

static fc_tensor *squeezed(fc_tensor *m, int dim) {
  if (!m || m->ndim == 0) return m;
  fc_tensor *s = fc_squeeze(m, dim);
  fc_release(m);
  return s;
}

#define ISNAN(x) ((x) != (x)) /* always false for integers */

enum { K_F32, K_F64, K_I64, K_I32, K_U8 };
static int ktype_of(int dtype) {
  switch (dtype) {
  case FC_FLOAT32: return K_F32;
  case FC_FLOAT64: return K_F64;
  case FC_INT64: return K_I64;
  case FC_INT32: return K_I32;
  default: return K_U8; /* uint8, bool */
  }
}

/* Expands X(suffix, C type) once per kernel type; DISPATCH calls fn_<suffix>. */
#define FOR_EACH_KTYPE(X) X(f32, float) X(f64, double) X(i64, int64_t) X(i32, int32_t) X(u8, uint8_t)
#define DISPATCH(key, fn, ...)              \
  switch (ktype_of((key)->dtype)) {         \
  case K_F32: fn##_f32(__VA_ARGS__); break; \
  case K_F64: fn##_f64(__VA_ARGS__); break; \
  case K_I64: fn##_i64(__VA_ARGS__); break; \
  case K_I32: fn##_i32(__VA_ARGS__); break; \
  default: fn##_u8(__VA_ARGS__); break;     \
  }

/* ---- gradient: g goes to the positions an index tensor names --------------
 * saved[0]: the 0-based indices in the input's dim order with the dim's
 * length K; iarg[0] = dim, iarg[2] = keepdim. */
static int scatter_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  fc_tensor *idx = n->saved[0];
  int dim = (int)n->iarg[0], nd = n->in_ndim[0];
  const int64_t *shape = n->in_shape[0];
  int64_t outer = 1, inner = 1, L = nd ? shape[dim] : 1, K = nd ? idx->shape[dim] : 1;
  for (int i = 0; i < nd; i++) {
    if (i < dim) outer *= shape[i];
    if (i > dim) inner *= shape[i];
  }
  fc_tensor *gk = n->iarg[2] == 0 && nd ? fc_unsqueeze(g, dim) : fc_retain(g);
  if (g->device.type == FC_CUDA) { /* a scatter_add kernel into zeros */
    fc_tensor *gc = gk ? fc_contiguous(gk) : NULL;
    fc_tensor *z = gc ? fc_zeros(nd, shape, gc->dtype, gc->device) : NULL;
    if (z && nd && fc_scatter_add_(z, dim, idx, gc, 0) < 0) fc_release(z), z = NULL;
    if (z && !nd && fc_copy_(z, gc) < 0) fc_release(z), z = NULL;
    fc_release(gk), fc_release(gc);
    gi[0] = z;
    return z ? 0 : -1;
  }
  double *gv = malloc(sizeof(double) * (size_t)(outer * K * inner + 1));
  double *out = calloc((size_t)(outer * L * inner + 1), sizeof(double));
  gi[0] = NULL;
  if (gk && gv && out && fc_to_doubles(gk, gv) == 0) {
    const int64_t *ix = (const int64_t *)elem_ptr(idx);
    for (int64_t o = 0; o < outer; o++)
      for (int64_t k = 0; k < K; k++)
        for (int64_t c = 0; c < inner; c++) {
          int64_t q = (o * K + k) * inner + c;
          out[(o * L + ix[q]) * inner + c] += gv[q];
        }
    gi[0] = fc_from_buffer(out, FC_FLOAT64, nd, shape, g->dtype, g->device);
  } else if (gk && (!gv || !out)) {
    fc_set_error("backward: out of memory");
  }
  free(gv), free(out);
  fc_release(gk);
  return gi[0] ? 0 : -1;
}

/* idx0: the 0-based index tensor in the input's dim order (keepdim shape);
 * the node takes this reference. */
static fc_tensor *record_scatter(const char *op, fc_tensor *out, fc_tensor *t, fc_tensor *idx0,
                                 int dim, bool keep) {
  if (!out || !is_float_dtype(out->dtype) || !grad_needed(1, &t)) {
    fc_release(idx0);
    return out;
  }
  fc_node *n = idx0 ? record(op, scatter_backward, out, 1, &t) : NULL;
  if (!n) {
    fc_release(idx0);
    fc_release(out);
    return NULL;
  }
  n->saved[0] = idx0; /* internal: not a user tensor, so no version to track */
  n->saved_version[0] = idx0->storage->version;
  n->nsaved = 1;
  n->iarg[0] = dim;
  n->iarg[2] = keep;
  return out;
}

/* ---- max / min / argmax / argmin ------------------------------------------- */

/* For each (outer, inner) lane, the position of the first max (or min) along
 * the dim into idx[outer * inner]; a NaN wins, as in PyTorch. Slabs of
 * `inner` lanes are swept row by row so memory is read in order. */
#define EXTREMES(S, T)                                                                    \
  static void extremes_##S(const strips *s, bool max, int64_t *idx) {                    \
    const T *data = (const T *)elem_ptr(s->key);                                          \
    int64_t L = s->L, in = s->inner;                                                      \
    if (in == 1) {                                                                        \
      _Pragma("omp parallel for if (s->outer * L > PARALLEL_GRAIN) schedule(static)")     \
      for (int64_t o = 0; o < s->outer; o++) {                                           \
        const T *x = data + o * L;                                                        \
        int64_t best = 0;                                                                 \
        T b = x[0];                                                                       \
        for (int64_t j = 1; j < L && !ISNAN(b); j++)                                      \
          if (ISNAN(x[j]) || (max ? x[j] > b : x[j] < b)) best = j, b = x[j];             \
        idx[o] = best;                                                                    \
      }                                                                                   \
      return;                                                                             \
    }                                                                                     \
    enum { CHUNK = 512 };                                                                 \
    int64_t chunks = (in + CHUNK - 1) / CHUNK;                                            \
    _Pragma("omp parallel for if (s->outer * L * in > PARALLEL_GRAIN) schedule(static)")  \
    for (int64_t task = 0; task < s->outer * chunks; task++) {                           \
      int64_t o = task / chunks, c0 = task % chunks * CHUNK;                              \
      int64_t w = in - c0 < CHUNK ? in - c0 : CHUNK;                                      \
      T b[CHUNK];                                                                         \
      int64_t *bi = idx + o * in + c0;                                                    \
      const T *x = data + o * L * in + c0;                                                \
      for (int64_t c = 0; c < w; c++) b[c] = x[c], bi[c] = 0;                             \
      for (int64_t j = 1; j < L; j++)                                                     \
        for (int64_t c = 0; c < w; c++) {                                                 \
          T v = x[j * in + c];                                                            \
          bool better = !ISNAN(b[c]) && (ISNAN(v) || (max ? v > b[c] : v < b[c]));        \
          b[c] = better ? v : b[c];                                                       \
          bi[c] = better ? j : bi[c];                                                     \
        }                                                                                 \
    }                                                                                     \
  }
#define X(S, T) EXTREMES(S, T)
FOR_EACH_KTYPE(X)
#undef X

static fc_tensor *extreme_dim(const char *op, fc_tensor *t, int dim, int keepdim, int64_t base,
                              fc_tensor **indices, bool max, bool want_values) {
  strips s;
  if (strips_of(op, t, dim, false, &s) < 0) return NULL;
  if (s.L == 0) {
    strips_free(&s);
    FAIL("%s: cannot reduce over an empty dim of a tensor of shape %s", op, SHAPE(t));
  }
  int64_t *idx = malloc(sizeof(int64_t) * (size_t)(s.outer * s.inner + 1));
  fc_tensor *values = NULL, *ind = NULL;
  if (idx) {
    DISPATCH(s.key, extremes, &s, max, idx);
    ind = index_tensor(&s, idx, 1, base);
    if (ind && want_values) {
      values = gather_values(&s, idx, 1);
      fc_tensor *idx0 = values && grad_needed(1, &t) ? index_tensor(&s, idx, 1, 0) : NULL;
      values = record_scatter(op, values, t, idx0, s.dim, keepdim);
      if (!keepdim) values = squeezed(values, s.dim);
    }
    if (!keepdim) ind = squeezed(ind, s.dim);
  } else {
    fc_set_error("%s: out of memory", op);
  }
  free(idx);
  strips_free(&s);
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

/* Running sums/products along the dim: floats accumulate in double (as
 * PyTorch's CPU kernels do) and keep their dtype; integers wrap in int64. */
#define CUMULATE(S, T)                                                                    \
  static void cumulate_##S(const strips *s, bool product, fc_tensor *out) {              \
    const T *data = (const T *)elem_ptr(s->key);                                          \
    char *o = elem_ptr(out);                                                              \
    int od = out->dtype, es = fc_dtype_size(od);                                          \
    bool fl = is_float_dtype(s->key->dtype);                                              \
    int64_t L = s->L, in = s->inner;                                                      \
    if (in == 1) { /* rows */                                                             \
      _Pragma("omp parallel for if (s->outer * L > PARALLEL_GRAIN) schedule(static)")     \
      for (int64_t r = 0; r < s->outer; r++) {                                           \
        const T *x = data + r * L;                                                        \
        if (fl) {                                                                         \
          double a = product;                                                             \
          for (int64_t j = 0; j < L; j++) {                                               \
            a = product ? a * (double)x[j] : a + (double)x[j];                            \
            if (od == FC_FLOAT32) ((float *)o)[r * L + j] = (float)a;                     \
            else if (od == FC_FLOAT64) ((double *)o)[r * L + j] = a;                      \
            else store_from_double(o + (r * L + j) * es, od, a);                          \
          }                                                                               \
        } else {                                                                          \
          uint64_t a = product;                                                           \
          for (int64_t j = 0; j < L; j++) {                                               \
            uint64_t v = (uint64_t)(int64_t)x[j];                                         \
            ((int64_t *)o)[r * L + j] = (int64_t)(a = product ? a * v : a + v);           \
          }                                                                               \
        }                                                                                 \
      }                                                                                   \
      return;                                                                             \
    }                                                                                     \
    enum { CHUNK = 256 };                                                                 \
    int64_t chunks = (in + CHUNK - 1) / CHUNK;                                            \
    _Pragma("omp parallel for if (s->outer * L * in > PARALLEL_GRAIN) schedule(static)")  \
    for (int64_t task = 0; task < s->outer * chunks; task++) {                           \
      int64_t ob = task / chunks, c0 = task % chunks * CHUNK;                             \
      int64_t w = in - c0 < CHUNK ? in - c0 : CHUNK;                                      \
      double fa[CHUNK];                                                                   \
      uint64_t ia[CHUNK];                                                                 \
      for (int64_t c = 0; c < w; c++) fa[c] = product, ia[c] = product;                   \
      for (int64_t j = 0; j < L; j++) {                                                   \
        int64_t at = (ob * L + j) * in + c0;                                              \
        const T *x = data + at;                                                           \
        if (!fl) {                                                                        \
          for (int64_t c = 0; c < w; c++) {                                               \
            uint64_t v = (uint64_t)(int64_t)x[c];                                         \
            ia[c] = product ? ia[c] * v : ia[c] + v;                                      \
            ((int64_t *)o)[at + c] = (int64_t)ia[c];                                      \
          }                                                                               \
        } else {                                                                          \
          for (int64_t c = 0; c < w; c++)                                                 \
            fa[c] = product ? fa[c] * (double)x[c] : fa[c] + (double)x[c];                \
          if (od == FC_FLOAT32)                                                           \
            for (int64_t c = 0; c < w; c++) ((float *)o)[at + c] = (float)fa[c];          \
          else if (od == FC_FLOAT64)                                                      \
            for (int64_t c = 0; c < w; c++) ((double *)o)[at + c] = fa[c];                \
          else                                                                            \
            for (int64_t c = 0; c < w; c++) store_from_double(o + (at + c) * es, od, fa[c]); \
        }                                                                                 \
      }                                                                                   \
    }                                                                                     \
  }
#define X(S, T) CUMULATE(S, T)
FOR_EACH_KTYPE(X)
#undef X

/* The gradient of a cumsum is the reverse cumsum of g along the dim. */
static int cumsum_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  int dim = (int)n->iarg[0], nd = g->ndim;
  int64_t outer = 1, inner = 1, L = nd ? g->shape[dim] : 1;
  for (int i = 0; i < nd; i++) {
    if (i < dim) outer *= g->shape[i];
    if (i > dim) inner *= g->shape[i];
  }
  double *v = malloc(sizeof(double) * (size_t)(g->numel + 1));
  gi[0] = NULL;
  if (v && fc_to_doubles(g, v) == 0) {
    for (int64_t o = 0; o < outer; o++)
      for (int64_t c = 0; c < inner; c++) {
        double acc = 0;
        for (int64_t j = L - 1; j >= 0; j--) {
          double *x = v + (o * L + j) * inner + c;
          *x = acc += *x;
        }
      }
    gi[0] = fc_from_buffer(v, FC_FLOAT64, nd, g->shape, g->dtype, g->device);
  } else if (!v) {
    fc_set_error("cumsum backward: out of memory");
  }
  free(v);
  return gi[0] ? 0 : -1;
}

/* cumprod: with y_j = x_0 ... x_j, dL/dx_k = (x_0 ... x_{k-1}) * S_k where
 * S_k = sum over j >= k of g_j * x_{k+1} ... x_j, so S_k = g_k + x_{k+1} S_{k+1}.
 * No division, so zeros in x need no special case. */
static int cumprod_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  int dim = (int)n->iarg[0], nd = g->ndim;
  int64_t outer = 1, inner = 1, L = nd ? g->shape[dim] : 1;
  for (int i = 0; i < nd; i++) {
    if (i < dim) outer *= g->shape[i];
    if (i > dim) inner *= g->shape[i];
  }
  size_t bytes = sizeof(double) * (size_t)(g->numel + 1);
  double *v = malloc(bytes), *x = malloc(bytes);
  gi[0] = NULL;
  if (v && x && fc_to_doubles(g, v) == 0 && fc_to_doubles(n->saved[0], x) == 0) {
    for (int64_t o = 0; o < outer; o++)
      for (int64_t c = 0; c < inner; c++) {
        double *gv = v + o * L * inner + c, *xv = x + o * L * inner + c;
        double s = 0;
        for (int64_t j = L - 1; j >= 0; j--) { /* S_j into gv[j] */
          s = gv[j * inner] + (j + 1 < L ? xv[(j + 1) * inner] * s : 0);
          gv[j * inner] = s;
        }
        double prefix = 1;
        for (int64_t j = 0; j < L; j++) {
          gv[j * inner] *= prefix;
          prefix *= xv[j * inner];
        }
      }
    gi[0] = fc_from_buffer(v, FC_FLOAT64, nd, g->shape, g->dtype, g->device);
  } else if (!v || !x) {
    fc_set_error("cumprod backward: out of memory");
  }
  free(v), free(x);
  return gi[0] ? 0 : -1;
}

static fc_tensor *cumulative(const char *op, fc_tensor *t, int dim, bool product) {
  if (check_same_device(op, 1, (const fc_tensor *const[]){t}) < 0) return NULL;
  strips s;
  if (strips_of(op, t, dim, false, &s) < 0) return NULL;
  int dtype = is_float_dtype(t->dtype) ? t->dtype : FC_INT64; /* PyTorch: ints widen */
  fc_tensor *out = strips_empty(&s, s.L, dtype);
  if (out) DISPATCH(s.key, cumulate, &s, product, out);
  if (out && is_float_dtype(dtype) && grad_needed(1, &t)) {
    fc_node *n = record(op, product ? cumprod_backward : cumsum_backward, out, 1, &t);
    if (!n) {
      fc_release(out);
      out = NULL;
    } else {
      n->iarg[0] = s.dim;
      if (product) node_save(n, t);
    }
  }
  strips_free(&s);
  return out;
}

fc_tensor *fc_cumsum(fc_tensor *t, int dim) { return cumulative("cumsum", t, dim, false); }
fc_tensor *fc_cumprod(fc_tensor *t, int dim) { return cumulative("cumprod", t, dim, true); }

/* ---- sort and topk ----------------------------------------------------------
 * Values become unsigned keys that sort like them: floats by their bits with
 * the sign folded (-0 taken as +0, every NaN the largest key), integers with
 * the sign bit flipped. Descending order sorts the complemented keys, which
 * keeps equal values in their original order too. */

static inline uint32_t key_f32(float v) {
  if (v != v) return UINT32_MAX;
  if (v == 0) v = 0;
  uint32_t b;
  memcpy(&b, &v, 4);
  return b & 0x80000000u ? ~b : b | 0x80000000u;
}
static inline uint64_t key_f64(double v) {
  if (v != v) return UINT64_MAX;
  if (v == 0) v = 0;
  uint64_t b;
  memcpy(&b, &v, 8);
  return b >> 63 ? ~b : b | (UINT64_C(1) << 63);
}
static inline uint64_t key_i64(int64_t v) { return (uint64_t)v ^ (UINT64_C(1) << 63); }
static inline uint32_t key_i32(int32_t v) { return (uint32_t)v ^ 0x80000000u; }
static inline uint32_t key_u8(uint8_t v) { return v; }

/* Stable sorts of (key, position) pairs; tk/ti are scratch of n entries.
 * The result may end in the scratch arrays: *k and *i point at it. */
#define SORTS(W, KT)                                                                   \
  static void insertion_##W(KT *k, int64_t *ix, int64_t n) {                           \
    for (int64_t j = 1; j < n; j++) {                                                  \
      KT kv = k[j];                                                                    \
      int64_t iv = ix[j], at = j;                                                      \
      for (; at > 0 && k[at - 1] > kv; at--) k[at] = k[at - 1], ix[at] = ix[at - 1];   \
      k[at] = kv, ix[at] = iv;                                                         \
    }                                                                                  \
  }                                                                                    \
  /* LSD radix sort, 8 bits a pass, skipping passes where every key agrees. */         \
  static void radix_##W(KT **k, int64_t **ix, KT *tk, int64_t *ti, int64_t n) {       \
    enum { PASSES = sizeof(KT) };                                                      \
    int64_t count[PASSES][256];                                                        \
    memset(count, 0, sizeof count);                                                    \
    KT *a = *k, *b = tk;                                                               \
    int64_t *ai = *ix, *bi = ti;                                                       \
    for (int64_t j = 0; j < n; j++)                                                    \
      for (int p = 0; p < PASSES; p++) count[p][(a[j] >> (8 * p)) & 255]++;            \
    for (int p = 0; p < PASSES; p++) {                                                 \
      int64_t *c = count[p], sum = 0;                                                  \
      if (c[(a[0] >> (8 * p)) & 255] == n) continue;                                   \
      for (int d = 0; d < 256; d++) {                                                  \
        int64_t here = c[d];                                                           \
        c[d] = sum;                                                                    \
        sum += here;                                                                   \
      }                                                                                \
      for (int64_t j = 0; j < n; j++) {                                                \
        int64_t to = c[(a[j] >> (8 * p)) & 255]++;                                     \
        b[to] = a[j], bi[to] = ai[j];                                                  \
      }                                                                                \
      KT *tkp = a; a = b; b = tkp;                                                     \
      int64_t *tip = ai; ai = bi; bi = tip;                                            \
    }                                                                                  \
    *k = a, *ix = ai;                                                                  \
  }                                                                                    \
  /* The k smallest keys in order, earlier positions first among equals. */          \
  static void smallest_##W(const KT *key, int64_t n, int64_t k, KT *bk, int64_t *bi) { \
    int64_t m = 0;                                                                     \
    for (int64_t j = 0; j < n; j++) {                                                  \
      KT kv = key[j];                                                                  \
      if (m == k && !(kv < bk[m - 1])) continue;                                       \
      int64_t at = m < k ? m++ : k - 1;                                                \
      for (; at > 0 && bk[at - 1] > kv; at--) bk[at] = bk[at - 1], bi[at] = bi[at - 1]; \
      bk[at] = kv, bi[at] = j;                                                         \
    }                                                                                  \
  }
SORTS(u32, uint32_t)
SORTS(u64, uint64_t)

/* First k positions of each row (rows of L along the last dim) in sorted
 * order into idx[R * k]; *ok turns false if scratch memory runs out. */
#define SORTER(S, T, W, KT)                                                             \
  static void sort_##S(const strips *s, int64_t k, bool desc, int64_t *idx, bool *ok) { \
    const T *data = (const T *)elem_ptr(s->key);                                        \
    int64_t L = s->L, R = s->outer;                                                     \
    KT flip = desc ? (KT)~(KT)0 : 0;                                                    \
    if (k == 0) return;                                                                 \
    _Pragma("omp parallel if (R > 1 && R * L > PARALLEL_GRAIN)")                        \
    {                                                                                   \
      KT *keys = malloc(sizeof(KT) * (size_t)(2 * L + 1));                              \
      int64_t *pos = malloc(sizeof(int64_t) * (size_t)(2 * L + 1));                     \
      if (!keys || !pos) {                                                              \
        _Pragma("omp atomic write")                                                     \
        *ok = false;                                                                    \
      }                                                                                 \
      _Pragma("omp for schedule(dynamic, 8)")                                           \
      for (int64_t r = 0; r < R; r++) {                                                 \
        if (!keys || !pos) continue;                                                    \
        const T *x = data + r * L;                                                      \
        int64_t *out = idx + r * k;                                                     \
        for (int64_t j = 0; j < L; j++) keys[j] = key_##S(x[j]) ^ flip, pos[j] = j;     \
        if (k <= 16 && L > 64) { /* a few of many: select, don't sort */                \
          smallest_##W(keys, L, k, keys + L, out);                                      \
          continue;                                                                     \
        }                                                                               \
        KT *sk = keys;                                                                  \
        int64_t *si = pos;                                                              \
        if (L <= 32) insertion_##W(sk, si, L);                                          \
        else radix_##W(&sk, &si, keys + L, pos + L, L);                                 \
        memcpy(out, si, sizeof(int64_t) * (size_t)k);                                   \
      }                                                                                 \
      free(keys);                                                                       \
      free(pos);                                                                        \
    }                                                                                   \
  }
SORTER(f32, float, u32, uint32_t)
SORTER(f64, double, u64, uint64_t)
SORTER(i64, int64_t, u64, uint64_t)
SORTER(i32, int32_t, u32, uint32_t)
SORTER(u8, uint8_t, u32, uint32_t)

/* The same on a cuda device: the plugin sorts the rows of s->key, the
 * values are gathered along the last dim, indices shifted by base. */
static fc_tensor *sort_rows_device(const char *op, fc_tensor *t, strips *s, int odim, int64_t k, bool desc, int64_t base,
                                   fc_tensor **indices) {
  fc_tensor *idx = strips_empty(s, k, FC_INT64), *values = NULL, *ind = NULL;
  if (idx && s->ndim == 0) { /* one element: itself, at 0 */
    values = fc_clone(s->t);
    if (fc_fill_(idx, 0) < 0) fc_release(values), values = NULL;
  } else if (idx) {
    bk_sort b = {.dtype = s->key->dtype, .descending = desc, .rows = s->outer, .L = s->L, .k = k,
                 .keys = elem_ptr(s->key), .idx = (int64_t *)elem_ptr(idx)};
    int previous = grad_mode_push(false); /* s->t may be t itself: the node is recorded below */
    if (idx->numel == 0 || backend_get()->sort_rows(t->device.index, &b) == 0)
      values = fc_gather(s->t, s->ndim - 1, idx, 0);
    grad_mode_pop(previous);
  }
  fc_tensor *b = values ? fc_scalar((double)base, FC_INT64, t->device) : NULL;
  ind = b ? unmove(fc_add(idx, b), odim) : NULL;
  if (!ind) fc_release(values), values = NULL;
  values = unmove(values, odim);
  fc_tensor *idx0 = values && grad_needed(1, &t) ? unmove(fc_retain(idx), odim) : NULL;
  values = record_scatter(op, values, t, idx0, odim, true);
  fc_release(idx), fc_release(b);
  if (indices && values) *indices = ind;
  else fc_release(ind);
  return values;
}

static fc_tensor *sort_rows(const char *op, fc_tensor *t, int dim, int64_t k, bool descending,
                            int64_t base, fc_tensor **indices) {
  strips s;
  if (strips_of(op, t, dim, true, &s) < 0) return NULL;
  int odim = wrap_dim(op, dim, t->ndim);
  if (k < 0 || k > s.L) {
    strips_free(&s);
    FAIL("%s: k = %lld out of range for a dim of size %lld", op, (long long)k, (long long)s.L);
  }
  s.outer *= s.inner, s.inner = 1; /* rows of L: the dim is last */
  if (t->device.type == FC_CUDA) {
    fc_tensor *v = sort_rows_device(op, t, &s, odim, k, descending, base, indices);
    strips_free(&s);
    return v;
  }
  int64_t *idx = malloc(sizeof(int64_t) * (size_t)(s.outer * k + 1));
  bool ok = idx != NULL;
  if (ok && s.L > 0) DISPATCH(s.key, sort, &s, k, descending, idx, &ok);
  fc_tensor *values = NULL, *ind = NULL;
  if (ok) {
    ind = unmove(index_tensor(&s, idx, k, base), odim);
    values = ind ? unmove(gather_values(&s, idx, k), odim) : NULL;
    fc_tensor *idx0 = values && grad_needed(1, &t) ? unmove(index_tensor(&s, idx, k, 0), odim) : NULL;
    values = record_scatter(op, values, t, idx0, odim, true);
  } else {
    fc_set_error("%s: out of memory", op);
  }
  free(idx);
  strips_free(&s);
  if (indices && values) *indices = ind;
  else fc_release(ind);
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
