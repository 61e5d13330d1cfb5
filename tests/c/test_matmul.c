/* test_matmul.c — matmul, addmm, dot and outer against naive float64 loops
 * on random data: contiguous, transposed, sliced, stepped, expanded and
 * broadcast batched operands, 1-D cases, every dtype, errors, gradients. */
#include "harness.h"
#include <stdbool.h>
#include <stdlib.h>

#define SHP(...) (int64_t[]){__VA_ARGS__}
#define NDIM(...) (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t))

/* Element (batch..., i, j) of a matmul operand as the definition reads it:
 * a 1-D left operand is one row, a 1-D right operand one column, and batch
 * dims of size 1 broadcast. */
static double operand_at(fc_tensor *t, bool left, const int64_t *bidx, int nb, int64_t i, int64_t j) {
  int64_t idx[FC_MAX_DIMS];
  double v = NAN;
  if (t->ndim == 1) {
    idx[0] = left ? j : i;
  } else {
    int lead = nb - (t->ndim - 2);
    for (int d = 0; d < t->ndim - 2; d++) idx[d] = t->shape[d] == 1 ? 0 : bidx[d + lead];
    idx[t->ndim - 2] = i;
    idx[t->ndim - 1] = j;
  }
  fc_get(t, idx, &v);
  return v;
}

/* fc_matmul(a, b) must have shape `shape` and equal the float64 triple loop
 * within tol relative to the sum of |terms|. */
static void check_mm(const char *file, int line, fc_tensor *a, fc_tensor *b, int nd,
                     const int64_t *shape, double tol) {
  fc_tensor *c = fc_matmul(a, b);
  if (!c) {
    harness_fail(file, line, "matmul failed: %s", fc_last_error());
    return;
  }
  bool same = c->ndim == nd && c->dtype == a->dtype;
  for (int d = 0; same && d < nd; d++) same = c->shape[d] == shape[d];
  if (!same) {
    harness_fail(file, line, "result shape/dtype wrong (%d dims, %s)", c->ndim, fc_dtype_name(c->dtype));
    fc_release(c);
    return;
  }
  int na = a->ndim > 2 ? a->ndim - 2 : 0, nbb = b->ndim > 2 ? b->ndim - 2 : 0;
  int nb = na > nbb ? na : nbb;
  int64_t n = a->ndim == 1 ? 1 : a->shape[a->ndim - 2], m = b->ndim == 1 ? 1 : b->shape[b->ndim - 1];
  int64_t k = a->shape[a->ndim - 1], bidx[FC_MAX_DIMS];
  double *got = malloc(sizeof(double) * (size_t)(c->numel + 1));
  fc_to_doubles(c, got);
  for (int64_t q = 0, e = 0; e < c->numel; q++) {
    int64_t rest = q;
    for (int d = nb - 1; d >= 0; d--) {
      bidx[d] = rest % c->shape[d];
      rest /= c->shape[d];
    }
    for (int64_t i = 0; i < n; i++)
      for (int64_t j = 0; j < m; j++, e++) {
        double want = 0, mag = 0;
        for (int64_t p = 0; p < k; p++) {
          double t = operand_at(a, true, bidx, nb, i, p) * operand_at(b, false, bidx, nb, p, j);
          want += t;
          mag += fabs(t);
        }
        if (!(fabs(got[e] - want) <= tol * (1 + mag))) {
          harness_fail(file, line, "element %lld = %.9g, expected %.9g", (long long)e, got[e], want);
          e = c->numel; /* one report per product */
          i = n, j = m;
        }
      }
  }
  free(got);
  fc_release(c);
}
#define CHECK_MM(a, b, tol, ...) check_mm(__FILE__, __LINE__, a, b, NDIM(__VA_ARGS__), SHP(__VA_ARGS__), tol)

/* Tensors a test made, released together at its end (K for "keep"). */
static fc_tensor *kept[256];
static int nkept;
static fc_tensor *K(fc_tensor *t) {
  if (!t) harness_fail(__FILE__, __LINE__, "setup failed: %s", fc_last_error());
  else if (nkept < 256) kept[nkept++] = t;
  return t;
}
static void drop(void) {
  while (nkept > 0) fc_release(kept[--nkept]);
}
#define RANDN(dtype, ...) K(fc_randn(NDIM(__VA_ARGS__), SHP(__VA_ARGS__), dtype, CPU))
#define KMK(dtype, shape, ...) K(mk(dtype, sizeof((int64_t[])shape) / sizeof(int64_t), \
                                    (int64_t[])shape, (double[]){__VA_ARGS__}))
#define T(t, a, b) K(fc_transpose(t, a, b))

/* Bytes allocated by one matmul: only its output when no operand is copied. */
static int64_t bytes_of_matmul(fc_tensor *a, fc_tensor *b) {
  fc_mem_mark();
  fc_tensor *c = fc_matmul(a, b);
  int64_t bytes = fc_bytes_since_mark();
  if (!c) harness_fail(__FILE__, __LINE__, "matmul failed: %s", fc_last_error());
  fc_release(c);
  return bytes;
}

TEST(matrices_match_definition) {
  fc_manual_seed(4);
  for (int dt = 0; dt < 2; dt++) {
    int dtype = dt ? FC_FLOAT64 : FC_FLOAT32;
    double tol = dt ? 1e-13 : 1e-5;
    fc_tensor *a = RANDN(dtype, 5, 7), *b = RANDN(dtype, 7, 3);
    CHECK_MM(a, b, tol, 5, 3);
    /* larger than OpenBLAS's small-matrix paths, with ragged edges */
    CHECK_MM(RANDN(dtype, 67, 129), RANDN(dtype, 129, 45), tol, 67, 45);
    /* transposed operands, alone and together */
    fc_tensor *aT = T(RANDN(dtype, 7, 5), 0, 1), *bT = T(RANDN(dtype, 3, 7), 0, 1);
    CHECK_MM(aT, b, tol, 5, 3);
    CHECK_MM(a, bT, tol, 5, 3);
    CHECK_MM(aT, bT, tol, 5, 3);
    /* sliced views: row stride larger than the row (lda > cols), offsets */
    fc_tensor *wide = RANDN(dtype, 9, 12);
    fc_tensor *sl = K(fc_narrow(K(fc_narrow(wide, 0, 1, 5)), 1, 2, 7));  /* [5,7] */
    fc_tensor *slb = K(fc_narrow(K(fc_narrow(wide, 1, 4, 3)), 0, 2, 7)); /* [7,3] */
    CHECK_MM(sl, slb, tol, 5, 3);
    CHECK_MM(T(sl, 0, 1), sl, tol, 7, 7); /* column-major with ld 12 */
    CHECK_MM(T(slb, 0, 1), T(sl, 0, 1), tol, 3, 5);
    /* a stepped view fits no BLAS layout and is copied */
    fc_tensor *step = K(fc_slice(wide, 1, 0, 12, 2)); /* [9,6] */
    CHECK_MM(step, RANDN(dtype, 6, 4), tol, 9, 4);
    /* an expanded operand (stride 0) */
    CHECK_MM(K(fc_expand(RANDN(dtype, 1, 7), 2, SHP(4, 7))), b, tol, 4, 3);
  }
  drop();
}

TEST(transposed_and_sliced_views_are_not_copied) {
  fc_manual_seed(1);
  fc_tensor *a = RANDN(FC_FLOAT32, 200, 300), *b = RANDN(FC_FLOAT32, 300, 200);
  fc_tensor *aT = T(b, 0, 1), *bT = T(a, 0, 1); /* [200,300], [300,200] */
  int64_t out_bytes = 200 * 200 * 4, operand_bytes = 200 * 300 * 4;
  CHECK(bytes_of_matmul(a, b) < out_bytes + operand_bytes / 2);
  CHECK(bytes_of_matmul(aT, bT) < out_bytes + operand_bytes / 2);
  CHECK(bytes_of_matmul(a, bT) < out_bytes + operand_bytes / 2);
  fc_tensor *sl = K(fc_narrow(a, 1, 10, 250)), *slb = K(fc_narrow(b, 0, 0, 250)); /* lda 300 > 250 */
  CHECK(bytes_of_matmul(sl, slb) < out_bytes + operand_bytes / 2);
  CHECK(bytes_of_matmul(T(slb, 0, 1), T(sl, 0, 1)) < out_bytes + operand_bytes / 2);
  fc_tensor *v = K(fc_select(b, 1, 3)); /* a strided column as a vector: gemv with incx 200 */
  CHECK(bytes_of_matmul(a, v) < operand_bytes / 10);
  CHECK(bytes_of_matmul(v, bT) < operand_bytes / 10);
  CHECK_MM(a, v, 1e-5, 200);
  /* a batch of transposed matrices */
  fc_tensor *ba = T(RANDN(FC_FLOAT32, 8, 60, 50), 1, 2), *bb = T(RANDN(FC_FLOAT32, 8, 40, 60), 1, 2);
  CHECK(bytes_of_matmul(ba, bb) < 8 * 50 * 40 * 4 + 8 * 60 * 40 * 4 / 2);
  /* a stepped view is copied */
  fc_tensor *step = K(fc_slice(b, 1, 0, 200, 2));
  CHECK(bytes_of_matmul(step, T(step, 0, 1)) >= 300 * 100 * 4);
  drop();
}

TEST(vectors) {
  fc_manual_seed(2);
  fc_tensor *m = RANDN(FC_FLOAT64, 6, 5), *u = RANDN(FC_FLOAT64, 5), *w = RANDN(FC_FLOAT64, 6);
  check_mm(__FILE__, __LINE__, u, u, 0, NULL, 1e-13); /* dot -> 0-dim */
  CHECK_MM(m, u, 1e-13, 6);                            /* matrix @ vector */
  CHECK_MM(w, m, 1e-13, 5);                            /* vector @ matrix */
  fc_tensor *mT = T(m, 0, 1);
  CHECK_MM(mT, w, 1e-13, 5);
  CHECK_MM(u, mT, 1e-13, 6);
  /* strided vectors: a column of a matrix, a stepped slice */
  fc_tensor *col = K(fc_select(m, 1, 2)), *stepped = K(fc_slice(w, 0, 0, 6, 2)); /* [6] stride 5, [3] */
  check_mm(__FILE__, __LINE__, col, col, 0, NULL, 1e-13);
  CHECK_MM(mT, col, 1e-13, 5);
  CHECK_MM(col, m, 1e-13, 5);
  CHECK_MM(stepped, RANDN(FC_FLOAT64, 3, 4), 1e-13, 4);
  CHECK_MM(K(fc_expand(RANDN(FC_FLOAT64, 1), 1, SHP(5))), mT, 1e-13, 6); /* stride 0: copied */
  /* batched with a 1-D operand: [k] @ [B,k,m] and [B,n,k] @ [k] */
  CHECK_MM(u, RANDN(FC_FLOAT64, 2, 3, 5, 4), 1e-13, 2, 3, 4);
  CHECK_MM(RANDN(FC_FLOAT64, 2, 3, 4, 5), u, 1e-13, 2, 3, 4);
  CHECK_MM(T(RANDN(FC_FLOAT64, 2, 5, 4), 1, 2), u, 1e-13, 2, 4);
  /* float32 row and column of one (gemv both ways, dot) */
  fc_tensor *f = RANDN(FC_FLOAT32, 1, 300), *g = RANDN(FC_FLOAT32, 300, 1), *h = RANDN(FC_FLOAT32, 300, 70);
  CHECK_MM(f, g, 1e-5, 1, 1);
  CHECK_MM(f, h, 1e-5, 1, 70);
  CHECK_MM(T(h, 0, 1), g, 1e-5, 70, 1);
  CHECK_MM(f, T(RANDN(FC_FLOAT32, 70, 300), 0, 1), 1e-5, 1, 70);
  CHECK_MM(RANDN(FC_FLOAT32, 70, 300), T(f, 0, 1), 1e-5, 70, 1);
  EXPECT0(fc_dot(KMK(FC_FLOAT64, S(3), 1, 2, 3), KMK(FC_FLOAT64, S(3), 4, -5, 6)), FC_FLOAT64, 0, 12);
  drop();
}

TEST(batched_broadcasting) {
  fc_manual_seed(3);
  /* [2,1,3,4] @ [5,4,2] -> [2,5,3,2] */
  fc_tensor *b = RANDN(FC_FLOAT64, 5, 4, 2);
  CHECK_MM(RANDN(FC_FLOAT64, 2, 1, 3, 4), b, 1e-13, 2, 5, 3, 2);
  CHECK_MM(RANDN(FC_FLOAT64, 3, 4), b, 1e-13, 5, 3, 2); /* 2-D @ batch */
  CHECK_MM(RANDN(FC_FLOAT64, 5, 3, 4), RANDN(FC_FLOAT64, 1, 4, 2), 1e-13, 5, 3, 2);
  /* batch folded into M: [4,3,5] @ [5,2], [2,3,6,5] @ [1,5,2], a sliced a */
  fc_tensor *fb = RANDN(FC_FLOAT32, 5, 2);
  CHECK_MM(RANDN(FC_FLOAT32, 4, 3, 5), fb, 1e-5, 4, 3, 2);
  CHECK_MM(RANDN(FC_FLOAT32, 2, 3, 6, 5), RANDN(FC_FLOAT32, 1, 5, 2), 1e-5, 2, 3, 6, 2);
  CHECK_MM(K(fc_narrow(RANDN(FC_FLOAT32, 4, 3, 9), 2, 1, 5)), fb, 1e-5, 4, 3, 2); /* rows of 9 */
  CHECK_MM(RANDN(FC_FLOAT32, 4, 1, 5), fb, 1e-5, 4, 1, 2);
  CHECK_MM(RANDN(FC_FLOAT32, 4, 3, 5), T(RANDN(FC_FLOAT32, 2, 5), 0, 1), 1e-5, 4, 3, 2);
  /* batches that cannot fold: transposed per batch, sliced rows, expanded */
  CHECK_MM(T(RANDN(FC_FLOAT32, 4, 5, 3), 1, 2), fb, 1e-5, 4, 3, 2);
  CHECK_MM(K(fc_narrow(RANDN(FC_FLOAT32, 4, 5, 5), 1, 1, 3)), fb, 1e-5, 4, 3, 2);
  CHECK_MM(K(fc_expand(RANDN(FC_FLOAT32, 1, 3, 5), 3, SHP(4, 3, 5))), fb, 1e-5, 4, 3, 2);
  /* transposed batches on both sides, a permuted batch dim */
  fc_tensor *p = K(fc_permute(RANDN(FC_FLOAT32, 3, 6, 4), 3, (int[]){1, 0, 2})); /* [6,3,4] */
  CHECK_MM(p, T(RANDN(FC_FLOAT32, 6, 7, 4), 1, 2), 1e-5, 6, 3, 7);
  /* many small matrices (the batch-parallel loop) and a few large ones */
  CHECK_MM(RANDN(FC_FLOAT32, 64, 8, 9), RANDN(FC_FLOAT32, 64, 9, 7), 1e-5, 64, 8, 7);
  CHECK_MM(RANDN(FC_FLOAT64, 2, 33, 1, 9), RANDN(FC_FLOAT64, 33, 9, 7), 1e-13, 2, 33, 1, 7);
  CHECK_MM(RANDN(FC_FLOAT32, 3, 90, 110), RANDN(FC_FLOAT32, 3, 110, 80), 1e-5, 3, 90, 80);
  drop();
}

TEST(empty_dims) {
  /* k = 0: a sum of nothing is zero */
  fc_tensor *e = K(fc_empty(2, SHP(2, 0), FC_FLOAT32, CPU)), *e2 = K(fc_empty(2, SHP(0, 3), FC_FLOAT32, CPU));
  EXPECT(fc_matmul(e, e2), FC_FLOAT32, S(2, 3), 0, 0, 0, 0, 0, 0, 0);
  fc_tensor *v0 = K(fc_empty(1, SHP(0), FC_FLOAT64, CPU));
  EXPECT0(fc_matmul(v0, v0), FC_FLOAT64, 0, 0);
  EXPECT(fc_matmul(K(fc_empty(2, SHP(2, 0), FC_INT64, CPU)), K(fc_empty(2, SHP(0, 2), FC_INT64, CPU))),
         FC_INT64, S(2, 2), 0, 0, 0, 0, 0);
  EXPECT(fc_matmul(K(fc_empty(3, SHP(2, 1, 0), FC_FLOAT16, CPU)), K(fc_empty(1, SHP(0), FC_FLOAT16, CPU))),
         FC_FLOAT16, S(2, 1), 0, 0, 0);
  /* n = 0, m = 0, batch 0: empty results of the right shape */
  fc_tensor *r = fc_matmul(e2, K(fc_empty(2, SHP(3, 4), FC_FLOAT32, CPU)));
  CHECK(r && r->ndim == 2 && r->shape[0] == 0 && r->shape[1] == 4);
  fc_release(r);
  r = fc_matmul(K(fc_empty(3, SHP(0, 2, 3), FC_FLOAT32, CPU)), K(fc_ones(2, SHP(3, 5), FC_FLOAT32, CPU)));
  CHECK(r && r->ndim == 3 && r->shape[0] == 0 && r->shape[1] == 2 && r->shape[2] == 5);
  fc_release(r);
  /* addmm with k = 0 is beta * c */
  EXPECT(fc_addmm(KMK(FC_FLOAT32, S(3), 1, 2, 3), e, e2, 2, 5), FC_FLOAT32, S(2, 3), 0, 2, 4, 6, 2, 4, 6);
  EXPECT(fc_addmm(KMK(FC_FLOAT32, S(3), 1, 2, 3), e, e2, 0, 5), FC_FLOAT32, S(2, 3), 0, 0, 0, 0, 0, 0, 0);
  drop();
}

TEST(dtypes) {
  /* int64 exactly, beyond float64's 53 bits: (2^40 + 1)(2^20 + 1) - 6 */
  fc_tensor *c = fc_matmul(KMK(FC_INT64, S(1, 2), 1099511627777.0, 3), KMK(FC_INT64, S(2, 1), 1048577, -2));
  CHECK(c && c->dtype == FC_INT64);
  if (c) CHECK(*(int64_t *)fc_data_ptr(c) == (int64_t)1099511627777 * 1048577 - 6);
  fc_release(c);
  fc_tensor *mi = KMK(FC_INT64, S(2, 2), 1, 2, 3, 4);
  EXPECT(fc_matmul(mi, mi), FC_INT64, S(2, 2), 0, 7, 10, 15, 22);
  EXPECT(fc_matmul(T(mi, 0, 1), mi), FC_INT64, S(2, 2), 0, 10, 14, 14, 20);
  fc_tensor *bi = KMK(FC_INT32, S(2, 2, 2), 1, 2, 3, 4, 0, 1, 1, 0), *vi = KMK(FC_INT32, S(2), 1, -1);
  EXPECT(fc_matmul(bi, vi), FC_INT32, S(2, 2), 0, -1, -1, -1, 1);
  fc_tensor *u8 = KMK(FC_UINT8, S(2), 200, 3);
  EXPECT0(fc_matmul(u8, u8), FC_UINT8, 0, (200 * 200 + 9) % 256); /* wraps like PyTorch */
  /* random int64 against the double loop (exact in this range), batched and transposed */
  fc_manual_seed(9);
  fc_tensor *ra = K(fc_randint(-50, 50, 3, SHP(2, 4, 6), FC_INT64, CPU));
  CHECK_MM(ra, K(fc_randint(-50, 50, 2, SHP(6, 3), FC_INT64, CPU)), 0, 2, 4, 3);
  CHECK_MM(ra, T(K(fc_randint(-50, 50, 2, SHP(3, 6), FC_INT64, CPU)), 0, 1), 0, 2, 4, 3);
  CHECK_MM(K(fc_randint(-50, 50, 4, SHP(3, 1, 1, 6), FC_INT32, CPU)),
           K(fc_randint(-50, 50, 3, SHP(2, 6, 2), FC_INT32, CPU)), 0, 3, 2, 1, 2);
  /* float16 / bfloat16 compute in float32 */
  fc_tensor *h = KMK(FC_FLOAT16, S(2, 2), 1, 2, 3, 4), *bf = KMK(FC_BFLOAT16, S(2, 2), 1, 2, 3, 4);
  EXPECT(fc_matmul(h, h), FC_FLOAT16, S(2, 2), 0, 7, 10, 15, 22);
  EXPECT(fc_matmul(bf, bf), FC_BFLOAT16, S(2, 2), 0, 7, 10, 15, 22);
  fc_tensor *hr = K(fc_to_dtype(RANDN(FC_FLOAT32, 5, 33), FC_FLOAT16));
  CHECK_MM(hr, T(hr, 0, 1), 2e-3, 5, 5);
  fc_tensor *br = K(fc_to_dtype(RANDN(FC_FLOAT32, 3, 5, 33), FC_BFLOAT16));
  CHECK_MM(br, T(br, 1, 2), 1e-2, 3, 5, 5);
  EXPECT0(fc_dot(KMK(FC_BFLOAT16, S(2), 1, 2), KMK(FC_BFLOAT16, S(2), 3, 4)), FC_BFLOAT16, 0, 11);
  drop();
}

TEST(addmm) {
  fc_tensor *sq = KMK(FC_FLOAT64, S(2, 2), 1, 2, 3, 4); /* sq @ sq = [[7,10],[15,22]] */
  fc_tensor *c = KMK(FC_FLOAT64, S(2, 2), 1, 1, 1, 1);
  EXPECT(fc_addmm(c, sq, sq, 1, 1), FC_FLOAT64, S(2, 2), 0, 8, 11, 16, 23);
  fc_tensor *row = KMK(FC_FLOAT64, S(2), 10, 20), *col = KMK(FC_FLOAT64, S(2, 1), 10, 20);
  EXPECT(fc_addmm(row, sq, sq, 0.5, 2), FC_FLOAT64, S(2, 2), 0, 19, 30, 35, 54);
  EXPECT(fc_addmm(col, sq, sq, 0.5, 2), FC_FLOAT64, S(2, 2), 0, 19, 25, 40, 54);
  EXPECT(fc_addmm(K(fc_scalar(3, FC_FLOAT64, CPU)), sq, sq, -1, 1), FC_FLOAT64, S(2, 2), 0, 4, 7, 12, 19);
  /* beta = 0 ignores c, NaN included */
  fc_tensor *nan = K(fc_full(2, SHP(2, 2), NAN, FC_FLOAT64, CPU));
  EXPECT(fc_addmm(nan, sq, sq, 0, 1), FC_FLOAT64, S(2, 2), 0, 7, 10, 15, 22);
  /* transposed operands; vector-shaped products (gemv and dot paths) */
  EXPECT(fc_addmm(c, T(sq, 0, 1), sq, 2, 1), FC_FLOAT64, S(2, 2), 0, 12, 16, 16, 22);
  fc_tensor *x = KMK(FC_FLOAT64, S(2, 1), 1, -1);
  EXPECT(fc_addmm(col, sq, x, 1, 3), FC_FLOAT64, S(2, 1), 0, 7, 17);
  EXPECT(fc_addmm(K(fc_full(2, SHP(2, 1), NAN, FC_FLOAT64, CPU)), sq, x, 0, 1), FC_FLOAT64, S(2, 1), 0, -1, -1);
  fc_tensor *f = KMK(FC_FLOAT32, S(1, 2), 1, 2), *fsq = K(fc_to_dtype(sq, FC_FLOAT32));
  EXPECT(fc_addmm(KMK(FC_FLOAT32, S(1), 5), f, fsq, 1, -1), FC_FLOAT32, S(1, 2), 0, -2, -5);
  EXPECT(fc_addmm(KMK(FC_FLOAT32, S(1, 1), 4), f, KMK(FC_FLOAT32, S(2, 1), 1, 1), 0.5, 2), FC_FLOAT32,
         S(1, 1), 0, 8);
  /* integers with integral alpha/beta, half types */
  EXPECT(fc_addmm(KMK(FC_INT64, S(2), 1, 2), K(fc_to_dtype(sq, FC_INT64)), K(fc_to_dtype(sq, FC_INT64)), 3, -1),
         FC_INT64, S(2, 2), 0, -4, -4, -12, -16);
  fc_tensor *sh = K(fc_to_dtype(sq, FC_FLOAT16));
  EXPECT(fc_addmm(KMK(FC_FLOAT16, S(2), 1, 2), sh, sh, 1, 2), FC_FLOAT16, S(2, 2), 0, 15, 22, 31, 46);
  /* random float32 against beta * c + alpha * (the definition) */
  fc_manual_seed(6);
  fc_tensor *ra = RANDN(FC_FLOAT32, 30, 40), *rb = T(RANDN(FC_FLOAT32, 20, 40), 0, 1), *rc = RANDN(FC_FLOAT32, 20);
  fc_tensor *got = K(fc_addmm(rc, ra, rb, 0.25, -1.5));
  bool ok = got != NULL;
  for (int64_t i = 0; ok && i < 30; i++)
    for (int64_t j = 0; ok && j < 20; j++) {
      double want = 0, v, cj, mag = 0;
      for (int64_t p = 0; p < 40; p++) {
        double x1, x2;
        fc_get(ra, (int64_t[]){i, p}, &x1);
        fc_get(rb, (int64_t[]){p, j}, &x2);
        want += x1 * x2;
        mag += fabs(x1 * x2);
      }
      fc_get(rc, (int64_t[]){j}, &cj);
      fc_get(got, (int64_t[]){i, j}, &v);
      ok = fabs(v - (0.25 * cj - 1.5 * want)) < 1e-5 * (1 + mag);
    }
  CHECK(ok);
  drop();
}

TEST(outer_and_dot) {
  fc_tensor *u = KMK(FC_FLOAT64, S(2), 1, 1), *v = KMK(FC_FLOAT64, S(3), 1, 0, -1);
  EXPECT(fc_outer(u, v), FC_FLOAT64, S(2, 3), 0, 1, 0, -1, 1, 0, -1);
  /* promotes like torch.outer */
  EXPECT(fc_outer(KMK(FC_INT64, S(2), 2, 3), KMK(FC_FLOAT32, S(2), 0.5, 1)), FC_FLOAT32, S(2, 2), 0, 1, 2, 1.5, 3);
  fc_tensor *m = KMK(FC_FLOAT64, S(2, 3), 1, 2, 3, 4, 5, 6), *mc = K(fc_select(m, 1, 1)); /* [2, 5] */
  EXPECT(fc_outer(mc, u), FC_FLOAT64, S(2, 2), 0, 2, 2, 5, 5);
  EXPECT0(fc_dot(mc, mc), FC_FLOAT64, 0, 29);
  EXPECT0(fc_dot(v, v), FC_FLOAT64, 0, 2);
  fc_tensor *iv = KMK(FC_INT64, S(3), 1, 2, 3);
  EXPECT0(fc_dot(iv, iv), FC_INT64, 0, 14);
  fc_manual_seed(8);
  fc_tensor *big = RANDN(FC_FLOAT32, 1000);
  check_mm(__FILE__, __LINE__, big, big, 0, NULL, 1e-5);
  fc_tensor *outer = K(fc_outer(big, K(fc_narrow(big, 0, 0, 7))));
  CHECK(outer && outer->shape[0] == 1000 && outer->shape[1] == 7);
  drop();
}

TEST(errors) {
  fc_tensor *a = K(fc_ones(2, SHP(3, 4), FC_FLOAT32, CPU)), *b = K(fc_ones(2, SHP(5, 6), FC_FLOAT32, CPU));
  fc_tensor *d = K(fc_ones(2, SHP(4, 2), FC_FLOAT64, CPU)), *s = K(fc_scalar(1, FC_FLOAT32, CPU));
  fc_tensor *v3 = K(fc_ones(1, SHP(3), FC_FLOAT32, CPU)), *v4 = K(fc_ones(1, SHP(4), FC_FLOAT32, CPU));
  CHECK_ERR(fc_matmul(a, b), "matmul: shapes [3,4] and [5,6] do not match (4 != 5)");
  CHECK_ERR(fc_matmul(a, v3), "matmul: shapes [3,4] and [3] do not match (4 != 3)");
  CHECK_ERR(fc_matmul(v3, v4), "matmul: shapes [3] and [4] do not match (3 != 4)");
  CHECK_ERR(fc_matmul(v4, K(fc_ones(3, SHP(2, 3, 4), FC_FLOAT32, CPU))),
            "matmul: shapes [4] and [2,3,4] do not match (4 != 3)");
  CHECK_ERR(fc_matmul(a, d), "matmul: dtypes float32 and float64 differ");
  CHECK_ERR(fc_matmul(s, a), "matmul: both arguments need at least 1 dim, got shapes [] and [3,4]");
  CHECK_ERR(fc_matmul(a, s), "need at least 1 dim");
  fc_tensor *bo = K(fc_ones(2, SHP(2, 2), FC_BOOL, CPU));
  CHECK_ERR(fc_matmul(bo, bo), "matmul: not supported for bool tensors");
  fc_tensor *b1 = K(fc_ones(3, SHP(2, 4, 2), FC_FLOAT32, CPU)), *b2 = K(fc_ones(3, SHP(3, 3, 4), FC_FLOAT32, CPU));
  CHECK_ERR(fc_matmul(b2, b1), "matmul: batch dims of shapes [3,3,4] and [2,4,2] cannot broadcast");
  CHECK_ERR(fc_matmul(NULL, a), "matmul");
  CHECK_ERR(fc_dot(v3, v4), "dot: expects two 1-D tensors of one size, got shapes [3] and [4]");
  CHECK_ERR(fc_dot(a, a), "dot: expects two 1-D tensors");
  fc_tensor *v3d = K(fc_ones(1, SHP(3), FC_FLOAT64, CPU));
  CHECK_ERR(fc_dot(v3, v3d), "dot: dtypes float32 and float64 differ");
  CHECK_ERR(fc_outer(a, v3), "outer: expects two 1-D tensors, got shapes [3,4] and [3]");
  CHECK_ERR(fc_addmm(v3, a, v4, 1, 1), "addmm: expects 2-D matrices, got shapes [3,4] and [4]");
  CHECK_ERR(fc_addmm(v3, a, b, 1, 1), "addmm: shapes [3,4] and [5,6] do not match (4 != 5)");
  fc_tensor *w = K(fc_ones(2, SHP(4, 2), FC_FLOAT32, CPU));
  CHECK_ERR(fc_addmm(K(fc_ones(1, SHP(5), FC_FLOAT32, CPU)), a, w, 1, 1),
            "addmm: c of shape [5] does not broadcast to the product's shape [3,2]");
  CHECK_ERR(fc_addmm(K(fc_ones(3, SHP(1, 3, 2), FC_FLOAT32, CPU)), a, w, 1, 1),
            "addmm: c of shape [1,3,2] does not broadcast");
  CHECK_ERR(fc_addmm(v3d, a, w, 1, 1), "addmm: dtypes float32 and float64 differ");
  fc_tensor *i2 = K(fc_ones(2, SHP(2, 2), FC_INT64, CPU));
  CHECK_ERR(fc_addmm(i2, i2, i2, 0.5, 1), "addmm: beta 0.5 and alpha 1 must be integers for int64");
  drop();
}

/* ---- gradients against finite differences (float64) ---------------------- */

static fc_tensor *matmul2(fc_tensor **in, void *ctx) { return fc_matmul(in[0], in[1]); }

TEST(matmul_gradients) {
  fc_manual_seed(5);
  int64_t shapes[][2][4] = {{{2, 3}, {3, 4}},       {{3}, {3, 2}},        {{2, 3}, {3}},
                            {{3}, {3}},             {{2, 1, 2, 3}, {3, 3, 2}}, {{2, 3, 4}, {4, 2}},
                            {{2, 2, 3}, {3}},       {{3}, {2, 3, 2}},     {{3, 4}, {2, 4, 2}}};
  int nd[][2] = {{2, 2}, {1, 2}, {2, 1}, {1, 1}, {4, 3}, {3, 2}, {3, 1}, {1, 3}, {2, 3}};
  for (int i = 0; i < 9; i++) {
    fc_tensor *a = fc_randn(nd[i][0], shapes[i][0], FC_FLOAT64, CPU);
    fc_tensor *b = fc_randn(nd[i][1], shapes[i][1], FC_FLOAT64, CPU);
    check_gradients(__FILE__, __LINE__, "matmul", matmul2, 2, (fc_tensor *[]){a, b}, NULL, 1e-6, 1e-6, 1);
    fc_release(a), fc_release(b);
  }
  /* a leaf laid out transposed */
  fc_tensor *base = fc_randn(2, SHP(4, 3), FC_FLOAT64, CPU), *bt = fc_randn(2, SHP(4, 2), FC_FLOAT64, CPU);
  fc_tensor *leaf = fc_as_strided(base, 2, SHP(3, 4), SHP(1, 3), 0);
  check_gradients(__FILE__, __LINE__, "matmul", matmul2, 2, (fc_tensor *[]){leaf, bt}, NULL, 1e-6, 1e-6, 1);
  /* the grad_fn is named after the op */
  fc_set_requires_grad(bt, 1);
  fc_tensor *y = fc_matmul(leaf, bt);
  CHECK(y && strcmp(fc_grad_fn_name(y), "matmul") == 0);
  fc_tensor *v = fc_randn(1, SHP(4), FC_FLOAT64, CPU), *vd = fc_select(bt, 1, 0);
  fc_tensor *dt = fc_dot(vd, v);
  CHECK(dt && strcmp(fc_grad_fn_name(dt), "dot") == 0);
  fc_release(y), fc_release(dt), fc_release(v), fc_release(vd), fc_release(base), fc_release(bt);
  fc_release(leaf);
}

typedef struct { double beta, alpha; } coeffs;
static fc_tensor *addmm3(fc_tensor **in, void *ctx) {
  coeffs *k = ctx;
  return fc_addmm(in[0], in[1], in[2], k->beta, k->alpha);
}

TEST(addmm_gradients) {
  fc_manual_seed(7);
  int64_t cshapes[][2] = {{3, 4}, {4}, {3, 1}, {1, 4}};
  int cnd[] = {2, 1, 2, 2};
  coeffs k[] = {{1, 1}, {0.5, -2}, {0, 3}, {2, 1}};
  for (int i = 0; i < 4; i++) {
    fc_tensor *c = fc_randn(cnd[i], cshapes[i], FC_FLOAT64, CPU);
    fc_tensor *a = fc_randn(2, SHP(3, 5), FC_FLOAT64, CPU), *b = fc_randn(2, SHP(5, 4), FC_FLOAT64, CPU);
    check_gradients(__FILE__, __LINE__, "addmm", addmm3, 3, (fc_tensor *[]){c, a, b}, &k[i], 1e-6, 1e-6, 1);
    fc_release(c), fc_release(a), fc_release(b);
  }
  fc_tensor *c = fc_randn(2, SHP(3, 4), FC_FLOAT64, CPU), *a = fc_randn(2, SHP(3, 5), FC_FLOAT64, CPU);
  fc_set_requires_grad(a, 1);
  fc_tensor *y = fc_addmm(c, a, a, 1, 1);
  CHECK(!y); /* [3,5] @ [3,5] does not match */
  fc_tensor *b = fc_randn(2, SHP(5, 4), FC_FLOAT64, CPU);
  y = fc_addmm(c, a, b, 1, 1);
  CHECK(y && strcmp(fc_grad_fn_name(y), "addmm") == 0);
  fc_release(y), fc_release(c), fc_release(a), fc_release(b);
}

int main(void) {
  RUN(matrices_match_definition);
  RUN(transposed_and_sliced_views_are_not_copied);
  RUN(vectors);
  RUN(batched_broadcasting);
  RUN(empty_dims);
  RUN(dtypes);
  RUN(addmm);
  RUN(outer_and_dot);
  RUN(errors);
  RUN(matmul_gradients);
  RUN(addmm_gradients);
  return harness_report();
}
