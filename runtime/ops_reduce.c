/* ops_reduce.c — reductions over any set of dims (sum, mean, prod, amax,
 * amin, all, any, norm, var, std, logsumexp) with their backward.
 *
 * A reduction is planned as `outer` output elements, each folding `inner`
 * input elements. The kept dims and the reduced dims are gathered into two
 * groups (reduced dims ordered by stride, so their walk follows memory) and
 * each group is coalesced. Then one of two walks runs:
 * - rows: each output folds its elements in runs along the innermost
 *   reduced dim (sum(-1), full reductions, and the general strided case);
 * - columns: when the innermost memory dim is kept, whole rows of outputs
 *   are accumulated at once (sum(0) of [N,C]), never striding down columns.
 * Floats fold into double accumulators, integers into int64 ones; float16 and
 * bfloat16 are reduced from a float32 copy and stored back in their dtype. */
#include "backend.h"
#include <stdlib.h>

typedef enum {
  R_SUM, R_PROD, R_MAX, R_MIN, R_ALL, R_ANY,                  /* every dtype */
  R_SQSUM, R_ABSSUM, R_ABSPOW, R_ABSMAX, R_ABSMIN, R_NONZERO, /* norms: floats only */
  R_NKINDS
} reduce_kind;

/* One accumulator: f for float inputs, i for all/any and integer max/min,
 * u for integer sums and products (wrapping like PyTorch, never undefined). */
typedef union acc { double f; int64_t i; uint64_t u; } acc;

/* Folds n elements at element stride s into *a (p: the norm's order). */
typedef void (*run_fn)(acc *a, const char *x, int64_t s, int64_t n, double p);
/* Folds a contiguous run of n elements into *a, in lanes the compiler vectorises. */
typedef void (*lanes_fn)(acc *a, const char *x, int64_t n, double p);
/* a[c] = fold(a[c], x[c]) for a contiguous row of n elements. */
typedef void (*row_fn)(acc *a, const char *x, int64_t n, double p);
/* The same for four rows at once: a quarter of the accumulator traffic. */
typedef void (*row4_fn)(acc *a, const char *const *x, int64_t n, double p);
typedef struct kernel { run_fn run; lanes_fn lanes; row_fn row; row4_fn row4; } kernel;

enum { K_F32, K_F64, K_I64, K_I32, K_U8, K_NTYPES };

/* ---- kernels ------------------------------------------------------------
 * Each fold is a STEP (accumulator a, element v) and a MERGE of two partial
 * accumulators. Max and min let NaN win and stick, as PyTorch's do. */
#define ST_SUM(a, v) a += v
#define ST_PROD(a, v) a *= v
#define ST_MAX(a, v) a = ((v) > a || (v) != (v)) ? (v) : a
#define ST_MIN(a, v) a = ((v) < a || (v) != (v)) ? (v) : a
#define ST_ALL(a, v) a &= (v != 0)
#define ST_ANY(a, v) a |= (v != 0)
#define ST_SQSUM(a, v) a += v * v
#define ST_ABSSUM(a, v) a += fabs(v)
#define ST_ABSPOW(a, v) a += pow(fabs(v), p)
#define ST_ABSMAX(a, v) ST_MAX(a, fabs(v))
#define ST_ABSMIN(a, v) ST_MIN(a, fabs(v))
#define ST_NONZERO(a, v) a += (v != 0)

/* Folds 16 lanes into l[0] as a tree of fixed-size steps, which the
 * compiler keeps in registers (a loop over the widths spills them). */
#define TREE16(l, M)                                  \
  do {                                                \
    for (int j_ = 0; j_ < 8; j_++) M(l[j_], l[j_ + 8]); \
    for (int j_ = 0; j_ < 4; j_++) M(l[j_], l[j_ + 4]); \
    for (int j_ = 0; j_ < 2; j_++) M(l[j_], l[j_ + 2]); \
    M(l[0], l[1]);                                    \
  } while (0)

/* T: element type, V: the type an element is read as, A/F: accumulator type
 * and union field, I: the fold's identity, M: the merge step. */
#define KERNELS(NAME, T, V, A, F, I, STEP, M)                                            \
  static void run_##NAME(acc *out, const char *px, int64_t s, int64_t n, double p) {    \
    const T *x = (const T *)px;                                                         \
    A a = out->F;                                                                       \
    for (int64_t i = 0; i < n; i++) { V v = (V)x[i * s]; STEP(a, v); }                 \
    out->F = a;                                                                         \
    (void)p;                                                                            \
  }                                                                                     \
  static void lanes_##NAME(acc *out, const char *px, int64_t n, double p) {             \
    const T *x = (const T *)px;                                                         \
    A l[16], a = out->F;                                                                \
    int64_t i = 0;                                                                      \
    if (n >= 16) {                                                                      \
      for (int j = 0; j < 16; j++) l[j] = (I);                                          \
      for (; i + 16 <= n; i += 16)                                                      \
        for (int j = 0; j < 16; j++) { V v = (V)x[i + j]; STEP(l[j], v); }              \
      TREE16(l, M);                                                                     \
      M(a, l[0]);                                                                       \
    }                                                                                   \
    for (; i < n; i++) { V v = (V)x[i]; STEP(a, v); }                                   \
    out->F = a;                                                                         \
    (void)p;                                                                            \
  }                                                                                     \
  static void row_##NAME(acc *out, const char *px, int64_t n, double p) {               \
    const T *x = (const T *)px;                                                         \
    A *a = (A *)(void *)out; /* as a plain array, so the loop vectorises */              \
    for (int64_t i = 0; i < n; i++) { V v = (V)x[i]; STEP(a[i], v); }                  \
    (void)p;                                                                            \
  }                                                                                     \
  static void row4_##NAME(acc *out, const char *const *px, int64_t n, double p) {       \
    const T *x0 = (const T *)px[0], *x1 = (const T *)px[1];                             \
    const T *x2 = (const T *)px[2], *x3 = (const T *)px[3];                             \
    A *a = (A *)(void *)out;                                                            \
    for (int64_t i = 0; i < n; i++) {                                                   \
      A t = a[i];                                                                       \
      V v0 = (V)x0[i], v1 = (V)x1[i], v2 = (V)x2[i], v3 = (V)x3[i];                     \
      STEP(t, v0);                                                                      \
      STEP(t, v1);                                                                      \
      STEP(t, v2);                                                                      \
      STEP(t, v3);                                                                      \
      a[i] = t;                                                                         \
    }                                                                                   \
    (void)p;                                                                            \
  }

#define FLOAT_KERNELS(S, T)                                                          \
  KERNELS(sum_##S, T, double, double, f, 0, ST_SUM, ST_SUM)                          \
  KERNELS(prod_##S, T, double, double, f, 1, ST_PROD, ST_PROD)                       \
  KERNELS(max_##S, T, double, double, f, -INFINITY, ST_MAX, ST_MAX)                  \
  KERNELS(min_##S, T, double, double, f, INFINITY, ST_MIN, ST_MIN)                   \
  KERNELS(all_##S, T, double, int64_t, i, 1, ST_ALL, ST_ALL)                         \
  KERNELS(any_##S, T, double, int64_t, i, 0, ST_ANY, ST_ANY)                         \
  KERNELS(sqsum_##S, T, double, double, f, 0, ST_SQSUM, ST_SUM)                      \
  KERNELS(abssum_##S, T, double, double, f, 0, ST_ABSSUM, ST_SUM)                    \
  KERNELS(abspow_##S, T, double, double, f, 0, ST_ABSPOW, ST_SUM)                    \
  KERNELS(absmax_##S, T, double, double, f, 0, ST_ABSMAX, ST_MAX)                    \
  KERNELS(absmin_##S, T, double, double, f, INFINITY, ST_ABSMIN, ST_MIN)             \
  KERNELS(nonzero_##S, T, double, double, f, 0, ST_NONZERO, ST_SUM)

#define INT_KERNELS(S, T)                                                            \
  KERNELS(sum_##S, T, uint64_t, uint64_t, u, 0, ST_SUM, ST_SUM)                      \
  KERNELS(prod_##S, T, uint64_t, uint64_t, u, 1, ST_PROD, ST_PROD)                   \
  KERNELS(max_##S, T, int64_t, int64_t, i, INT64_MIN, ST_MAX, ST_MAX)                \
  KERNELS(min_##S, T, int64_t, int64_t, i, INT64_MAX, ST_MIN, ST_MIN)                \
  KERNELS(all_##S, T, int64_t, int64_t, i, 1, ST_ALL, ST_ALL)                        \
  KERNELS(any_##S, T, int64_t, int64_t, i, 0, ST_ANY, ST_ANY)

FLOAT_KERNELS(f32, float)
FLOAT_KERNELS(f64, double)
INT_KERNELS(i64, int64_t)
INT_KERNELS(i32, int32_t)
INT_KERNELS(u8, uint8_t)

#define K(NAME) {run_##NAME, lanes_##NAME, row_##NAME, row4_##NAME}
#define FLOAT_ROW(S)                                                                  \
  {K(sum_##S), K(prod_##S), K(max_##S), K(min_##S), K(all_##S), K(any_##S),           \
   K(sqsum_##S), K(abssum_##S), K(abspow_##S), K(absmax_##S), K(absmin_##S), K(nonzero_##S)}
#define INT_ROW(S) {K(sum_##S), K(prod_##S), K(max_##S), K(min_##S), K(all_##S), K(any_##S)}
static const kernel kernels[K_NTYPES][R_NKINDS] = {
    FLOAT_ROW(f32), FLOAT_ROW(f64), INT_ROW(i64), INT_ROW(i32), INT_ROW(u8)};

/* Contiguous float sums, the case that must run at memory bandwidth, in
 * GCC/Clang vector types so the code generated is the code written: blocks
 * of 256 float32 are summed in 32 float lanes (no conversions in the hot
 * loop), then widened into 16 double lanes, so even a 16M-element sum keeps
 * about 1e-7 relative accuracy. */
typedef float f32x8 __attribute__((vector_size(32)));
typedef double f64x4 __attribute__((vector_size(32)));

/* Macros, not functions: a 32-byte vector crossing a call is an ABI
 * question on builds without AVX (the sanitizer builds). */
#define LOAD(v, p) memcpy(&(v), (p), sizeof(v)) /* an unaligned load */
#define WIDEN_LO(v) __builtin_convertvector(__builtin_shufflevector(v, v, 0, 1, 2, 3), f64x4)
#define WIDEN_HI(v) __builtin_convertvector(__builtin_shufflevector(v, v, 4, 5, 6, 7), f64x4)
#define HSUM(out, a, b, c, d)                  \
  do {                                         \
    f64x4 s_ = ((a) + (b)) + ((c) + (d));      \
    out = (s_[0] + s_[1]) + (s_[2] + s_[3]);   \
  } while (0)

static void lanes_sum_f32_fast(acc *out, const char *px, int64_t n, double p) {
  const float *x = (const float *)px;
  f64x4 d0 = {0}, d1 = {0}, d2 = {0}, d3 = {0};
  int64_t i = 0;
  for (; i + 256 <= n; i += 256) {
    f32x8 a = {0}, b = {0}, c = {0}, e = {0}, v;
    for (int k = 0; k < 256; k += 32) {
      LOAD(v, x + i + k), a += v;
      LOAD(v, x + i + k + 8), b += v;
      LOAD(v, x + i + k + 16), c += v;
      LOAD(v, x + i + k + 24), e += v;
    }
    a += b, c += e;
    d0 += WIDEN_LO(a), d1 += WIDEN_HI(a), d2 += WIDEN_LO(c), d3 += WIDEN_HI(c);
  }
  for (; i + 8 <= n; i += 8) {
    f32x8 v;
    LOAD(v, x + i);
    d0 += WIDEN_LO(v), d1 += WIDEN_HI(v);
  }
  double s;
  HSUM(s, d0, d1, d2, d3);
  for (; i < n; i++) s += x[i];
  out->f += s;
  (void)p;
}

static void lanes_sum_f64_fast(acc *out, const char *px, int64_t n, double p) {
  const double *x = (const double *)px;
  f64x4 d0 = {0}, d1 = {0}, d2 = {0}, d3 = {0}, v;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    LOAD(v, x + i), d0 += v;
    LOAD(v, x + i + 4), d1 += v;
    LOAD(v, x + i + 8), d2 += v;
    LOAD(v, x + i + 12), d3 += v;
  }
  for (; i + 4 <= n; i += 4) LOAD(v, x + i), d0 += v;
  double s;
  HSUM(s, d0, d1, d2, d3);
  for (; i < n; i++) s += x[i];
  out->f += s;
  (void)p;
}

/* Contiguous float32 max/min compare in float lanes; a NaN wins and sticks. */
#define F32_EXTREME(NAME, STEP, I)                                           \
  static void NAME(acc *out, const char *px, int64_t n, double p) {          \
    const float *x = (const float *)px;                                      \
    double a = out->f;                                                       \
    int64_t i = 0;                                                           \
    if (n >= 32) {                                                           \
      float l[32];                                                           \
      for (int j = 0; j < 32; j++) l[j] = (I);                               \
      for (; i + 32 <= n; i += 32)                                           \
        for (int j = 0; j < 32; j++) STEP(l[j], x[i + j]);                   \
      for (int j = 0; j < 16; j++) STEP(l[j], l[j + 16]);                    \
      TREE16(l, STEP);                                                       \
      STEP(a, (double)l[0]);                                                 \
    }                                                                        \
    for (; i < n; i++) STEP(a, (double)x[i]);                                \
    out->f = a;                                                              \
    (void)p;                                                                 \
  }
F32_EXTREME(lanes_max_f32_fast, ST_MAX, -INFINITY)
F32_EXTREME(lanes_min_f32_fast, ST_MIN, INFINITY)

static int ktype_of(int dtype) {
  switch (dtype) {
  case FC_FLOAT32: case FC_FLOAT16: case FC_BFLOAT16: return K_F32;
  case FC_FLOAT64: return K_F64;
  case FC_INT64: return K_I64;
  case FC_INT32: return K_I32;
  default: return K_U8; /* uint8, bool */
  }
}

typedef struct fold {
  reduce_kind kind;
  int ktype;
  double p;
  kernel k;
} fold;

static fold make_fold(reduce_kind kind, int dtype, double p) {
  fold f = {kind, ktype_of(dtype), p, kernels[ktype_of(dtype)][kind]};
  if (f.ktype == K_F64 && kind == R_SUM) f.k.lanes = lanes_sum_f64_fast;
  if (f.ktype == K_F32) {
    if (kind == R_SUM) f.k.lanes = lanes_sum_f32_fast;
    if (kind == R_MAX) f.k.lanes = lanes_max_f32_fast;
    if (kind == R_MIN) f.k.lanes = lanes_min_f32_fast;
  }
  return f;
}

static bool int_acc(const fold *f) { return f->ktype >= K_I64 || f->kind == R_ALL || f->kind == R_ANY; }

static acc fold_init(const fold *f) {
  bool fl = !int_acc(f);
  switch (f->kind) {
  case R_PROD: return fl ? (acc){.f = 1} : (acc){.u = 1};
  case R_ALL: return (acc){.i = 1};
  case R_MAX: return fl ? (acc){.f = -INFINITY} : (acc){.i = INT64_MIN};
  case R_MIN: case R_ABSMIN: return fl ? (acc){.f = INFINITY} : (acc){.i = INT64_MAX};
  default: return (acc){.u = 0};
  }
}

static void fold_merge(const fold *f, acc *a, acc b) {
  if (int_acc(f)) {
    switch (f->kind) {
    case R_PROD: a->u *= b.u; break;
    case R_MAX: ST_MAX(a->i, b.i); break;
    case R_MIN: ST_MIN(a->i, b.i); break;
    case R_ALL: a->i &= b.i; break;
    case R_ANY: a->i |= b.i; break;
    default: a->u += b.u; break;
    }
    return;
  }
  switch (f->kind) {
  case R_PROD: a->f *= b.f; break;
  case R_MAX: case R_ABSMAX: ST_MAX(a->f, b.f); break;
  case R_MIN: case R_ABSMIN: ST_MIN(a->f, b.f); break;
  default: a->f += b.f; break;
  }
}

/* ---- the plan ------------------------------------------------------------ */

typedef struct plan {
  int nk, nr;                     /* kept and reduced dims after coalescing */
  int64_t kshape[FC_MAX_DIMS], kstride[FC_MAX_DIMS];
  int64_t rshape[FC_MAX_DIMS], rstride[FC_MAX_DIMS];
  int64_t outer, inner;           /* outputs, elements folded into each */
  int64_t run, rs;                /* innermost reduced dim: length, stride */
  const char *data;               /* the input's first element */
  int es;
} plan;

/* Merges adjacent dims that step through memory as one; drops size-1 dims. */
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
      /* insertion by decreasing stride: the fold order is free, memory order is fastest */
      int j = p->nr++;
      for (; j > 0 && llabs(p->rstride[j - 1]) < llabs(t->stride[d]); j--) {
        p->rshape[j] = p->rshape[j - 1];
        p->rstride[j] = p->rstride[j - 1];
      }
      p->rshape[j] = t->shape[d];
      p->rstride[j] = t->stride[d];
      p->inner *= t->shape[d];
    } else {
      p->kshape[p->nk] = t->shape[d];
      p->kstride[p->nk++] = t->stride[d];
      p->outer *= t->shape[d];
    }
  }
  p->nk = coalesce(p->nk, p->kshape, p->kstride);
  p->nr = coalesce(p->nr, p->rshape, p->rstride);
  p->run = p->nr ? p->rshape[p->nr - 1] : 1;
  p->rs = p->nr ? p->rstride[p->nr - 1] : 1;
  p->es = fc_dtype_size(t->dtype);
  p->data = (const char *)t->storage->data + t->offset * p->es;
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

static inline void fold_run(const fold *f, acc *a, const char *x, int64_t s, int64_t n) {
  if (s == 1) f->k.lanes(a, x, n, f->p);
  else f->k.run(a, x, s, n, f->p);
}

/* Folds the reduced positions [b, e) of the output whose first element is at
 * element offset `base`, run by run. */
static void fold_span(const fold *f, const plan *p, int64_t base, int64_t b, int64_t e, acc *a) {
  while (b < e) {
    int64_t r = b / p->run, j = b % p->run, n = p->run - j;
    if (n > e - b) n = e - b;
    int64_t off = base + group_offset(p->nr - 1, p->rshape, p->rstride, r) + j * p->rs;
    fold_run(f, a, p->data + off * p->es, p->rs, n);
    b += n;
  }
}

/* ---- rows: each output folds its own elements ---------------------------- */

static void reduce_rows(const fold *f, const plan *p, acc *out) {
  int nt = num_threads();
  int64_t total = p->outer * p->inner;
  /* Few outputs over many elements: each output's span is cut into pieces
   * so every thread has work; the pieces are merged in order afterwards. */
  int64_t pieces = 1;
  if (nt > 1 && p->outer < 4 * nt && p->inner >= 2 * PARALLEL_GRAIN) {
    pieces = (4 * nt + p->outer - 1) / p->outer;
    if (pieces > p->inner / PARALLEL_GRAIN) pieces = p->inner / PARALLEL_GRAIN;
  }
  if (pieces == 1) {
    /* one run per output at a fixed step (rows of a matrix): no index maths */
    bool simple = p->nr <= 1 && p->nk <= 1;
    int64_t step = p->nk ? p->kstride[0] : 0;
#pragma omp parallel for if (total > PARALLEL_GRAIN && p->outer > 1) schedule(static)
    for (int64_t o = 0; o < p->outer; o++) {
      acc a = fold_init(f);
      if (simple) fold_run(f, &a, p->data + o * step * p->es, p->rs, p->inner);
      else fold_span(f, p, group_offset(p->nk, p->kshape, p->kstride, o), 0, p->inner, &a);
      out[o] = a;
    }
    return;
  }
  int64_t tasks = p->outer * pieces;
  acc *part = malloc(sizeof(acc) * (size_t)tasks);
  if (!part) { /* no room for pieces: one output at a time */
    for (int64_t o = 0; o < p->outer; o++) {
      out[o] = fold_init(f);
      fold_span(f, p, group_offset(p->nk, p->kshape, p->kstride, o), 0, p->inner, &out[o]);
    }
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t task = 0; task < tasks; task++) {
    int64_t o = task / pieces, c = task % pieces;
    int64_t b = p->inner * c / pieces, e = p->inner * (c + 1) / pieces;
    part[task] = fold_init(f);
    fold_span(f, p, group_offset(p->nk, p->kshape, p->kstride, o), b, e, &part[task]);
  }
  for (int64_t o = 0; o < p->outer; o++) {
    out[o] = part[o * pieces];
    for (int64_t c = 1; c < pieces; c++) fold_merge(f, &out[o], part[o * pieces + c]);
  }
  free(part);
}

/* ---- columns: whole rows of outputs at a time ------------------------------
 * The innermost kept dim (K outputs) is contiguous in the input. For each of
 * the P combinations of the other kept dims, every reduced position adds a
 * contiguous row of K elements into K accumulators. */

static bool columns_fit(const plan *p) {
  return p->nk >= 1 && p->kstride[p->nk - 1] == 1 && p->kshape[p->nk - 1] >= 16 &&
         (p->nr == 0 || p->rs != 1);
}

/* Accumulates reduced positions [r0, r1) of prefix pi, columns [c0, c1). */
static void column_block(const fold *f, const plan *p, int64_t pi, int64_t r0, int64_t r1,
                         int64_t c0, int64_t c1, acc *a) {
  /* tiles of columns keep their accumulators in cache while the rows stream by */
  enum { TILE = 4096 };
  int64_t base = group_offset(p->nk - 1, p->kshape, p->kstride, pi);
  for (int64_t t0 = c0; t0 < c1; t0 += TILE) {
    int64_t w = c1 - t0 < TILE ? c1 - t0 : TILE, r = r0;
    for (; r + 4 <= r1; r += 4) {
      const char *x[4];
      for (int q = 0; q < 4; q++)
        x[q] = p->data + (base + t0 + group_offset(p->nr, p->rshape, p->rstride, r + q)) * p->es;
      f->k.row4(a + t0, x, w, f->p);
    }
    for (; r < r1; r++) {
      int64_t off = base + t0 + group_offset(p->nr, p->rshape, p->rstride, r);
      f->k.row(a + t0, p->data + off * p->es, w, f->p);
    }
  }
}

static void reduce_columns(const fold *f, const plan *p, acc *out) {
  int nt = num_threads();
  int64_t K = p->kshape[p->nk - 1], P = p->outer / K, R = p->inner;
  bool par = nt > 1 && p->outer * p->inner > PARALLEL_GRAIN;
#pragma omp parallel for if (par) schedule(static)
  for (int64_t o = 0; o < p->outer; o++) out[o] = fold_init(f);
  if (!par || P >= 2 * nt) { /* one prefix per task */
#pragma omp parallel for if (par) schedule(static)
    for (int64_t pi = 0; pi < P; pi++) column_block(f, p, pi, 0, R, 0, K, out + pi * K);
    return;
  }
  if (K >= 64 * nt) { /* wide rows: each thread owns a band of columns */
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int c = 0; c < nt; c++) {
      int64_t c0 = (K * c / nt) & ~(int64_t)15, c1 = c + 1 == nt ? K : (K * (c + 1) / nt) & ~(int64_t)15;
      for (int64_t pi = 0; pi < P; pi++) column_block(f, p, pi, 0, R, c0, c1, out + pi * K);
    }
    return;
  }
  /* narrow rows, few prefixes: each thread folds a share of the reduced
   * positions into its own accumulators, merged at the end */
  acc *part = malloc(sizeof(acc) * (size_t)(p->outer * (nt - 1)));
  if (!part) {
    for (int64_t pi = 0; pi < P; pi++) column_block(f, p, pi, 0, R, 0, K, out + pi * K);
    return;
  }
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int c = 0; c < nt; c++) {
    acc *a = c ? part + (c - 1) * p->outer : out;
    if (c)
      for (int64_t o = 0; o < p->outer; o++) a[o] = fold_init(f);
    int64_t r0 = R * c / nt, r1 = R * (c + 1) / nt;
    for (int64_t pi = 0; pi < P; pi++) column_block(f, p, pi, r0, r1, 0, K, a + pi * K);
  }
  for (int c = 1; c < nt; c++)
    for (int64_t o = 0; o < p->outer; o++) fold_merge(f, &out[o], part[(c - 1) * p->outer + o]);
  free(part);
}

/* ---- entry points -------------------------------------------------------- */

/* Marks the reduced dims; ndims == 0 means all. -1 on a bad or repeated dim. */
static int reduced_dims(const char *op, const fc_tensor *t, int ndims, const int *dims, bool *reduce) {
  memset(reduce, 0, sizeof(bool) * FC_MAX_DIMS);
  if (ndims < 0) FAIL_INT("%s: ndims = %d is negative", op, ndims);
  if (ndims > 0 && !dims) FAIL_INT("%s: %d dims given but the dims array is NULL", op, ndims);
  if (ndims == 0) {
    for (int d = 0; d < t->ndim; d++) reduce[d] = true;
    return 0;
  }
  bool seen0 = false; /* a 0-dim tensor accepts dim 0 / -1 once */
  for (int i = 0; i < ndims; i++) {
    int d = wrap_dim(op, dims[i], t->ndim);
    if (d < 0) return -1;
    bool *mark = t->ndim ? &reduce[d] : &seen0;
    if (*mark) FAIL_INT("%s: dim %d appears more than once", op, dims[i]);
    *mark = true;
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

/* What happens to a float accumulator before it is stored. */
typedef enum { POST_NONE, POST_MEAN, POST_SQRT, POST_ROOT } post_kind;

static void store(const fold *f, post_kind post, int64_t count, acc *a, fc_tensor *out) {
  int64_t n = out->numel;
  char *o = elem_ptr(out);
  if (int_acc(f)) {
#pragma omp parallel for if (n > PARALLEL_GRAIN) schedule(static)
    for (int64_t k = 0; k < n; k++) {
      int64_t v = a[k].i;
      switch (out->dtype) {
      case FC_INT64: ((int64_t *)o)[k] = v; break;
      case FC_INT32: ((int32_t *)o)[k] = (int32_t)v; break;
      case FC_BOOL: ((uint8_t *)o)[k] = v != 0; break;
      case FC_UINT8: ((uint8_t *)o)[k] = (uint8_t)v; break;
      default: store_from_double(o + k * fc_dtype_size(out->dtype), out->dtype, (double)v);
      }
    }
    return;
  }
  double root = f->p ? 1 / f->p : 1;
#pragma omp parallel for if (n > PARALLEL_GRAIN) schedule(static)
  for (int64_t k = 0; k < n; k++) {
    double x = a[k].f;
    if (post == POST_MEAN) x /= (double)count; /* 0/0: the mean of nothing is NaN */
    else if (post == POST_SQRT) x = sqrt(x);
    else if (post == POST_ROOT) x = pow(x, root);
    if (out->dtype == FC_FLOAT32) ((float *)o)[k] = (float)x;
    else if (out->dtype == FC_FLOAT64) ((double *)o)[k] = x;
    else store_from_double(o + k * fc_dtype_size(out->dtype), out->dtype, x);
  }
}

/* The plan handed to the CUDA plugin; its kernels fold the same groups. */
static int cuda_reduce(const char *op, const plan *p, reduce_kind kind, post_kind post,
                       const fc_tensor *src, fc_tensor *out) {
  static const int codes[R_NKINDS] = {[R_SUM] = BK_RSUM, [R_PROD] = BK_RPROD, [R_MAX] = BK_RMAX,
                                      [R_MIN] = BK_RMIN, [R_ALL] = BK_RALL, [R_ANY] = BK_RANY};
  if (kind > R_ANY || (post != POST_NONE && post != POST_MEAN))
    FAIL_INT("%s: op %s has no CUDA kernel yet", op, op);
  bk_reduce r = {.kind = codes[kind], .mean = post == POST_MEAN, .in_dtype = src->dtype,
                 .out_dtype = out->dtype, .in = p->data, .out = elem_ptr(out), .nk = p->nk,
                 .nr = p->nr, .outer = p->outer, .inner = p->inner};
  memcpy(r.kshape, p->kshape, sizeof r.kshape), memcpy(r.kstride, p->kstride, sizeof r.kstride);
  memcpy(r.rshape, p->rshape, sizeof r.rshape), memcpy(r.rstride, p->rstride, sizeof r.rstride);
  return p->outer == 0 ? 0 : backend_get()->reduce(out->device.index, &r);
}

/* Runs a fold into a new tensor of out_dtype. */
static fc_tensor *reduce_op(const char *op, fc_tensor *t, int ndims, const int *dims, int keepdim,
                            reduce_kind kind, double pw, post_kind post, int out_dtype, bool empty_ok) {
  if (check_same_device(op, 1, (const fc_tensor *const[]){t}) < 0) return NULL;
  bool reduce[FC_MAX_DIMS];
  if (reduced_dims(op, t, ndims, dims, reduce) < 0) return NULL;
  if (!empty_ok && reduces_empty(t, reduce))
    FAIL("%s: cannot reduce over an empty dim of a tensor of shape %s", op, SHAPE(t));
  fc_tensor *src = t;
  if (is_half_dtype(t->dtype)) { /* halves are read from a float32 copy */
    int prev = grad_mode_push(false);
    src = fc_to_dtype(t, FC_FLOAT32);
    grad_mode_pop(prev);
    if (!src) return NULL;
  }
  plan p;
  make_plan(src, reduce, &p);
  fold f = make_fold(kind, src->dtype, pw);
  fc_tensor *out = out_shaped(t, reduce, keepdim, out_dtype);
  if (out && t->device.type == FC_CUDA) {
    if (cuda_reduce(op, &p, kind, post, src, out) < 0) fc_release(out), out = NULL;
    if (src != t) fc_release(src);
    return out;
  }
  acc *a = out ? malloc(sizeof(acc) * (size_t)(p.outer + 1)) : NULL;
  if (out && !a) fc_set_error("%s: out of memory", op);
  if (a) {
    if (p.inner == 0) {
      for (int64_t o = 0; o < p.outer; o++) a[o] = fold_init(&f);
    } else if (p.outer > 0) {
      if (columns_fit(&p)) reduce_columns(&f, &p, a);
      else reduce_rows(&f, &p, a);
    }
    store(&f, post, p.inner, a, out);
  }
  free(a);
  if (src != t) fc_release(src);
  if (out && !a) {
    fc_release(out);
    return NULL;
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

/* Sums and products of integers and bools are int64, as in PyTorch. */
static int widened(int dtype) { return is_float_dtype(dtype) ? dtype : FC_INT64; }

fc_tensor *fc_sum(fc_tensor *t, int ndims, const int *dims, int keepdim) {
  if (check_same_device("sum", 1, (const fc_tensor *const[]){t}) < 0) return NULL;
  fc_tensor *out = reduce_op("sum", t, ndims, dims, keepdim, R_SUM, 0, POST_NONE, widened(t->dtype), true);
  return record_reduce("sum", sum_backward, out, t, ndims, dims);
}

static int prod_backward(fc_node *n, fc_tensor *g, fc_tensor **gi);

fc_tensor *fc_prod(fc_tensor *t, int ndims, const int *dims, int keepdim) {
  if (check_same_device("prod", 1, (const fc_tensor *const[]){t}) < 0) return NULL;
  fc_tensor *out = reduce_op("prod", t, ndims, dims, keepdim, R_PROD, 0, POST_NONE, widened(t->dtype), true);
  out = record_reduce("prod", prod_backward, out, t, ndims, dims);
  if (out && out->grad_fn) node_save(out->grad_fn, t);
  return out;
}

fc_tensor *fc_mean(fc_tensor *t, int ndims, const int *dims, int keepdim) {
  if (check_same_device("mean", 1, (const fc_tensor *const[]){t}) < 0) return NULL;
  if (!is_float_dtype(t->dtype))
    FAIL("mean: needs a floating point tensor, got %s; convert it first", DTYPE(t));
  fc_tensor *out = reduce_op("mean", t, ndims, dims, keepdim, R_SUM, 0, POST_MEAN, t->dtype, true);
  return record_reduce("mean", mean_backward, out, t, ndims, dims);
}

static int extreme_backward(fc_node *n, fc_tensor *g, fc_tensor **gi);

static fc_tensor *extreme(const char *op, fc_tensor *t, int ndims, const int *dims, int keepdim,
                          reduce_kind k) {
  fc_tensor *out = reduce_op(op, t, ndims, dims, keepdim, k, 0, POST_NONE, t ? t->dtype : 0, false);
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
  return reduce_op("all", t, ndims, dims, keepdim, R_ALL, 0, POST_NONE, FC_BOOL, true);
}
fc_tensor *fc_any(fc_tensor *t, int ndims, const int *dims, int keepdim) {
  return reduce_op("any", t, ndims, dims, keepdim, R_ANY, 0, POST_NONE, FC_BOOL, true);
}

/* float16/bfloat16 in, float32 through f, their dtype out (differentiably). */
typedef fc_tensor *(*float_fn)(fc_tensor *t, int ndims, const int *dims, double a, int keepdim);
static fc_tensor *via_float32(float_fn f, fc_tensor *t, int ndims, const int *dims, double a, int keepdim) {
  fc_tensor *x = fc_to_dtype(t, FC_FLOAT32);
  fc_tensor *r = x ? f(x, ndims, dims, a, keepdim) : NULL;
  fc_tensor *back = r ? fc_to_dtype(r, t->dtype) : NULL;
  fc_release(x), fc_release(r);
  return back;
}

/* The differentiable compositions of the p-norms. */
static fc_tensor *norm_composed(fc_tensor *t, int ndims, const int *dims, double p, int keepdim) {
  fc_tensor *a = fc_abs(t), *r = NULL;
  if (!a) return NULL;
  if (p == INFINITY) r = fc_amax(a, ndims, dims, keepdim);
  else if (p == -INFINITY) r = fc_amin(a, ndims, dims, keepdim);
  else if (p == 1) r = fc_sum(a, ndims, dims, keepdim);
  else {
    fc_tensor *e = fc_scalar(p, t->dtype, t->device), *ie = fc_scalar(1 / p, t->dtype, t->device);
    fc_tensor *ap = p == 2 ? fc_mul(t, t) : e ? fc_pow(a, e) : NULL;
    fc_tensor *s = ap ? fc_sum(ap, ndims, dims, keepdim) : NULL;
    r = s ? (p == 2 ? fc_sqrt(s) : ie ? fc_pow(s, ie) : NULL) : NULL;
    fc_release(e), fc_release(ie), fc_release(ap), fc_release(s);
  }
  fc_release(a);
  return r;
}

/* p-norms: 2 (the default), 1, inf, -inf, 0 (count of non-zeros), any other p.
 * Without autograd each is one pass; with it, a composition of differentiable ops. */
fc_tensor *fc_norm(fc_tensor *t, double p, int ndims, const int *dims, int keepdim) {
  if (check_same_device("norm", 1, (const fc_tensor *const[]){t}) < 0) return NULL;
  if (!is_float_dtype(t->dtype)) FAIL("norm: needs a floating point tensor, got %s", DTYPE(t));
  if (p != p) FAIL("norm: p is NaN");
  bool infinite = p == INFINITY || p == -INFINITY;
  if (grad_needed(1, &t) && p != 0) {
    bool reduce[FC_MAX_DIMS];
    if (reduced_dims("norm", t, ndims, dims, reduce) < 0) return NULL;
    if (infinite && reduces_empty(t, reduce))
      FAIL("norm: cannot reduce over an empty dim of a tensor of shape %s", SHAPE(t));
    if (is_half_dtype(t->dtype)) return via_float32(norm_composed, t, ndims, dims, p, keepdim);
    return norm_composed(t, ndims, dims, p, keepdim);
  }
  reduce_kind k = p == 2 ? R_SQSUM : p == 1 ? R_ABSSUM : p == INFINITY ? R_ABSMAX
                : p == -INFINITY ? R_ABSMIN : p == 0 ? R_NONZERO : R_ABSPOW;
  post_kind post = p == 2 ? POST_SQRT : k == R_ABSPOW ? POST_ROOT : POST_NONE;
  return reduce_op("norm", t, ndims, dims, keepdim, k, p, post, t->dtype, !infinite);
}

/* var = sum((x - mean)^2) / max(0, N - correction), composed so it
 * differentiates; two passes over the data keep it accurate. */
static fc_tensor *var_f(fc_tensor *t, int ndims, const int *dims, double correction, int keepdim) {
  bool reduce[FC_MAX_DIMS];
  if (reduced_dims("var", t, ndims, dims, reduce) < 0) return NULL;
  int64_t count = 1;
  for (int d = 0; d < t->ndim; d++)
    if (reduce[d]) count *= t->shape[d];
  fc_tensor *m = fc_mean(t, ndims, dims, 1);
  fc_tensor *dev = m ? fc_sub(t, m) : NULL, *sq = dev ? fc_mul(dev, dev) : NULL;
  fc_tensor *s = sq ? fc_sum(sq, ndims, dims, keepdim) : NULL;
  double denom = (double)count - correction;
  fc_tensor *c = s ? fc_scalar(denom > 0 ? denom : 0, s->dtype, s->device) : NULL;
  fc_tensor *r = c ? fc_div(s, c) : NULL;
  fc_release(m), fc_release(dev), fc_release(sq), fc_release(s), fc_release(c);
  return r;
}

fc_tensor *fc_var(fc_tensor *t, int ndims, const int *dims, int correction, int keepdim) {
  if (check_same_device("var", 1, (const fc_tensor *const[]){t}) < 0) return NULL;
  if (!is_float_dtype(t->dtype)) FAIL("var: needs a floating point tensor, got %s", DTYPE(t));
  if (correction < 0) FAIL("var: correction = %d is negative", correction);
  if (is_half_dtype(t->dtype)) return via_float32(var_f, t, ndims, dims, correction, keepdim);
  return var_f(t, ndims, dims, correction, keepdim);
}

fc_tensor *fc_std(fc_tensor *t, int ndims, const int *dims, int correction, int keepdim) {
  if (check_same_device("std", 1, (const fc_tensor *const[]){t}) < 0) return NULL;
  if (!is_float_dtype(t->dtype)) FAIL("std: needs a floating point tensor, got %s", DTYPE(t));
  fc_tensor *v = fc_var(t, ndims, dims, correction, keepdim);
  fc_tensor *r = v ? fc_sqrt(v) : NULL;
  fc_release(v);
  return r;
}

/* log(sum(exp(x - m))) + m with m the max, so it neither overflows nor
 * underflows; where m is infinite the shift is 0 (no inf - inf). */
static fc_tensor *lse_f(fc_tensor *t, int ndims, const int *dims, double unused, int keepdim) {
  int prev = grad_mode_push(false);
  fc_tensor *m = reduce_op("logsumexp", t, ndims, dims, 1, R_MAX, 0, POST_NONE, t->dtype, true);
  fc_tensor *am = m ? fc_abs(m) : NULL, *inf = fc_scalar(INFINITY, t->dtype, t->device);
  fc_tensor *isf = am && inf ? fc_lt(am, inf) : NULL, *zero = fc_scalar(0, t->dtype, t->device);
  fc_tensor *shift = isf && zero ? fc_where(isf, m, zero) : NULL;
  grad_mode_pop(prev);
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
  (void)unused;
  return r;
}

fc_tensor *fc_logsumexp(fc_tensor *t, int ndims, const int *dims, int keepdim) {
  if (check_same_device("logsumexp", 1, (const fc_tensor *const[]){t}) < 0) return NULL;
  if (!is_float_dtype(t->dtype)) FAIL("logsumexp: needs a floating point tensor, got %s", DTYPE(t));
  bool reduce[FC_MAX_DIMS];
  if (reduced_dims("logsumexp", t, ndims, dims, reduce) < 0) return NULL;
  if (is_half_dtype(t->dtype)) return via_float32(lse_f, t, ndims, dims, 0, keepdim);
  return lse_f(t, ndims, dims, 0, keepdim);
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

/* d prod / d x_i is the product of the others. Dividing the product by x_i
 * breaks on zeros, so groups are told apart by their count of zeros: none
 * (product / x_i), one (only the zero gets the product of the rest), more
 * (every gradient is 0). */
static int prod_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  fc_tensor *x = n->saved[0];
  int dims[FC_MAX_DIMS], nd = 0;
  for (int d = 0; d < n->in_ndim[0]; d++)
    if (n->iarg[d] == 1) dims[nd++] = d;
  fc_tensor *zero = fc_scalar(0, x->dtype, x->device), *one = fc_scalar(1, x->dtype, x->device);
  fc_tensor *is_zero = fc_eq(x, zero);
  fc_tensor *zeros = is_zero ? fc_sum(is_zero, nd, dims, 1) : NULL;
  fc_tensor *nonzero = is_zero ? fc_where(is_zero, one, x) : NULL;
  fc_tensor *rest = nonzero ? fc_prod(nonzero, nd, dims, 1) : NULL; /* product of the nonzeros */
  fc_tensor *izero = fc_scalar(0, FC_INT64, x->device), *ione = fc_scalar(1, FC_INT64, x->device);
  fc_tensor *none = zeros ? fc_eq(zeros, izero) : NULL, *single = zeros ? fc_eq(zeros, ione) : NULL;
  fc_tensor *quotient = rest ? fc_div(rest, nonzero) : NULL;
  fc_tensor *lone = single ? fc_where(single, rest, zero) : NULL;   /* per group */
  fc_tensor *at_zero = lone ? fc_where(is_zero, lone, zero) : NULL; /* per element */
  fc_tensor *others = quotient && at_zero ? fc_where(none, quotient, at_zero) : NULL;
  fc_tensor *k = g_keepdim(n, g);
  gi[0] = others && k ? fc_mul(k, others) : NULL;
  fc_tensor *tmp[] = {zero, one, is_zero, zeros, nonzero, rest, izero, ione, none, single,
                      quotient, lone, at_zero, others, k};
  for (size_t i = 0; i < sizeof tmp / sizeof *tmp; i++) fc_release(tmp[i]);
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
