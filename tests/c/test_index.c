/* test_index.c — cat, stack, index_select, gather, scatter(_add), masks,
 * nonzero, one_hot, flip, roll: hand-worked values, strided and expanded
 * inputs, every dtype where bytes move, sizes past the threading grain
 * checked against naive loops, every error path, and gradients. */
#include "harness.h"
#include <stdbool.h>
#include <stdlib.h>

#define SHP(...) (int64_t[]){__VA_ARGS__}
#define LIST(...) (fc_tensor *[]){__VA_ARGS__}
#define REL(...) release_all((fc_tensor *[]){__VA_ARGS__, NULL})

static void release_all(fc_tensor **ts) {
  for (; *ts; ts++) fc_release(*ts);
}

/* Exact values: index ops move elements, they compute nothing. */
#define EXPECT_VALS(t, want, n) EXPECT_VALUES(t, want, n, 0)

static int64_t shape_numel_(int nd, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < nd; i++) n *= shape[i];
  return n;
}

/* 0, 1, 2, ... as `dtype` in `shape`. */
static fc_tensor *iota(int dtype, int nd, const int64_t *shape) {
  fc_tensor *a = fc_arange(0, (double)shape_numel_(nd, shape), 1, FC_FLOAT64, CPU);
  fc_tensor *r = fc_reshape(a, nd, shape), *c = fc_to_dtype(r, dtype);
  fc_release(a), fc_release(r);
  return c;
}

/* Runs f with 1, 3 and 8 threads: the chunking of every parallel path. */
static void with_threads(void (*f)(void)) {
  static const int counts[] = {1, 3, 8};
  for (int i = 0; i < 3; i++) {
    fc_set_num_threads(counts[i]);
    f();
  }
  fc_set_num_threads(2);
}

/* ---- cat and stack ------------------------------------------------------- */

TEST(cat_values) {
  fc_tensor *a = MK(FC_FLOAT32, S(2, 2), 1, 2, 3, 4), *b = MK(FC_FLOAT32, S(2, 1), 5, 6);
  fc_tensor *c = MK(FC_FLOAT32, S(1, 2), 7, 8);
  EXPECT(fc_cat(2, LIST(a, b), 1), FC_FLOAT32, S(2, 3), 0, 1, 2, 5, 3, 4, 6);
  EXPECT(fc_cat(2, LIST(a, b), -1), FC_FLOAT32, S(2, 3), 0, 1, 2, 5, 3, 4, 6);
  EXPECT(fc_cat(3, LIST(a, c, a), 0), FC_FLOAT32, S(5, 2), 0, 1, 2, 3, 4, 7, 8, 1, 2, 3, 4);
  EXPECT(fc_cat(1, LIST(a), 0), FC_FLOAT32, S(2, 2), 0, 1, 2, 3, 4);
  /* strided inputs: a transpose and a stepped slice */
  fc_tensor *at = fc_transpose(a, 0, 1); /* [[1,3],[2,4]] */
  fc_tensor *big = MK(FC_FLOAT32, S(2, 4), 1, 2, 3, 4, 5, 6, 7, 8);
  fc_tensor *step = fc_slice(big, 1, 0, 4, 2); /* [[1,3],[5,7]] */
  EXPECT(fc_cat(3, LIST(a, at, step), 0), FC_FLOAT32, S(6, 2), 0, 1, 2, 3, 4, 1, 3, 2, 4, 1, 3, 5, 7);
  EXPECT(fc_cat(3, LIST(step, at, b), 1), FC_FLOAT32, S(2, 5), 0, 1, 3, 1, 3, 5, 5, 7, 2, 4, 6);
  /* an expanded (stride 0) input */
  fc_tensor *row = MK(FC_FLOAT32, S(1, 2), 9, 8), *ex = fc_expand(row, 2, SHP(3, 2));
  EXPECT(fc_cat(2, LIST(ex, a), 0), FC_FLOAT32, S(5, 2), 0, 9, 8, 9, 8, 9, 8, 1, 2, 3, 4);
  /* 3-D, joining the middle dim */
  fc_tensor *x = iota(FC_FLOAT64, 3, SHP(2, 1, 2)), *y = iota(FC_FLOAT64, 3, SHP(2, 2, 2));
  EXPECT(fc_cat(2, LIST(x, y), 1), FC_FLOAT64, S(2, 3, 2), 0, 0, 1, 0, 1, 2, 3, 2, 3, 4, 5, 6, 7);
  REL(a, b, c, at, big, step, row, ex, x, y);
}

TEST(cat_dtypes_and_empties) {
  fc_tensor *f = MK(FC_FLOAT32, S(2), 1.5, 2), *i64 = MK(FC_INT64, S(1), 7), *i32 = MK(FC_INT32, S(2), -1, 3);
  fc_tensor *u8 = MK(FC_UINT8, S(1), 200), *bl = MK(FC_BOOL, S(2), 1, 0), *h = MK(FC_FLOAT16, S(1), 0.5);
  fc_tensor *bf = MK(FC_BFLOAT16, S(1), 2), *f64 = MK(FC_FLOAT64, S(1), 0.25);
  EXPECT(fc_cat(2, LIST(f, i64), 0), FC_FLOAT32, S(3), 0, 1.5, 2, 7);
  EXPECT(fc_cat(2, LIST(i32, i64), 0), FC_INT64, S(3), 0, -1, 3, 7);
  EXPECT(fc_cat(2, LIST(bl, u8), 0), FC_UINT8, S(3), 0, 1, 0, 200);
  EXPECT(fc_cat(2, LIST(bl, bl), 0), FC_BOOL, S(4), 0, 1, 0, 1, 0);
  EXPECT(fc_cat(2, LIST(h, h), 0), FC_FLOAT16, S(2), 0, 0.5, 0.5);
  EXPECT(fc_cat(2, LIST(h, bf), 0), FC_FLOAT32, S(2), 0, 0.5, 2);
  EXPECT(fc_cat(2, LIST(bf, bf), 0), FC_BFLOAT16, S(2), 0, 2, 2);
  EXPECT(fc_cat(3, LIST(i32, u8, f64), 0), FC_FLOAT64, S(4), 0, -1, 3, 200, 0.25);
  EXPECT(fc_cat(2, LIST(u8, i32), 0), FC_INT32, S(3), 0, 200, -1, 3);
  /* a 1-D empty tensor joins anything (PyTorch's legacy rule) but still promotes */
  fc_tensor *e = fc_empty(1, SHP(0), FC_FLOAT64, CPU), *m = MK(FC_FLOAT32, S(2, 2), 1, 2, 3, 4);
  EXPECT(fc_cat(3, LIST(e, m, e), 1), FC_FLOAT64, S(2, 2), 0, 1, 2, 3, 4);
  EXPECT(fc_cat(2, LIST(m, e), 0), FC_FLOAT64, S(2, 2), 0, 1, 2, 3, 4);
  fc_tensor *ee = fc_cat(2, LIST(e, e), 0);
  CHECK(ee && ee->ndim == 1 && ee->shape[0] == 0);
  fc_release(ee);
  /* zero-size dims elsewhere */
  fc_tensor *z = fc_empty(2, SHP(0, 2), FC_FLOAT32, CPU);
  EXPECT(fc_cat(2, LIST(z, m), 0), FC_FLOAT32, S(2, 2), 0, 1, 2, 3, 4);
  fc_tensor *z2 = fc_empty(2, SHP(2, 0), FC_FLOAT32, CPU), *r = fc_cat(2, LIST(z2, z2), 1);
  CHECK(r && r->shape[0] == 2 && r->shape[1] == 0);
  fc_release(r);
  REL(f, i64, i32, u8, bl, h, bf, f64, e, m, z, z2);
}

static void cat_large_once(void) {
  /* many rows: the row-parallel path; mixing fast and converted inputs */
  fc_tensor *a = fc_randn(2, SHP(40000, 3), FC_FLOAT32, CPU), *b = fc_randn(2, SHP(40000, 2), FC_FLOAT32, CPU);
  fc_tensor *bt = fc_randn(2, SHP(1, 40000), FC_FLOAT64, CPU), *c = fc_transpose(bt, 0, 1);
  fc_tensor *out = fc_cat(3, LIST(a, b, c), 1);
  double *va = tensor_values(a), *vb = tensor_values(b), *vc = tensor_values(c), *want = malloc(sizeof(double) * 40000 * 6);
  for (int64_t r = 0; r < 40000; r++) {
    for (int j = 0; j < 3; j++) want[r * 6 + j] = (float)va[r * 3 + j];
    for (int j = 0; j < 2; j++) want[r * 6 + 3 + j] = (float)vb[r * 2 + j];
    want[r * 6 + 5] = vc[r]; /* float64 into float64 output */
  }
  CHECK(out && out->dtype == FC_FLOAT64 && out->shape[1] == 6);
  EXPECT_VALS(out, want, 40000 * 6);
  free(va), free(vb), free(vc), free(want);
  /* two long blocks: each copy split across threads */
  fc_tensor *p = fc_randn(1, SHP(300000), FC_FLOAT32, CPU), *q = fc_randn(1, SHP(200000), FC_FLOAT32, CPU);
  double *vp = tensor_values(p), *vq = tensor_values(q), *w2 = malloc(sizeof(double) * 500000);
  memcpy(w2, vp, sizeof(double) * 300000);
  memcpy(w2 + 300000, vq, sizeof(double) * 200000);
  EXPECT_VALS(fc_cat(2, LIST(p, q), 0), w2, 500000);
  free(vp), free(vq), free(w2);
  REL(a, b, bt, c, p, q);
}
TEST(cat_large) { with_threads(cat_large_once); }

TEST(cat_errors) {
  fc_tensor *a = MK(FC_FLOAT32, S(2, 2), 1, 2, 3, 4), *b = MK(FC_INT64, S(2, 1), 5, 6);
  fc_tensor *v = MK(FC_FLOAT32, S(2), 1, 2), *s = fc_scalar(1, FC_FLOAT32, CPU);
  CHECK_ERR(fc_cat(2, LIST(a, b), 0),
            "cat: the 2nd tensor has shape [2,1] but the 1st has shape [2,2]; they must match in every "
            "dim except the 1st (the one joined)");
  CHECK_ERR(fc_cat(2, LIST(a, v), 0), "cat: the 2nd tensor has shape [2] but the 1st has shape [2,2]; "
                                     "they must have the same number of dims");
  CHECK_ERR(fc_cat(2, LIST(a, s), 0), "cat: the 2nd tensor is 0-dim");
  CHECK_ERR(fc_cat(2, LIST(a, b), 2), "cat: dim 2 out of range for a 2-dim tensor");
  CHECK_ERR(fc_cat(2, LIST(a, b), -3), "cat: dim -3 out of range");
  CHECK_ERR(fc_cat(0, LIST(a), 0), "cat: expects a non-empty list of tensors");
  CHECK_ERR(fc_cat(1, NULL, 0), "cat: expects a non-empty list of tensors");
  CHECK_ERR(fc_cat(2, LIST(a, NULL), 0), "cat: tensor is NULL");
  REL(a, b, v, s);
}

TEST(stack_values_and_errors) {
  fc_tensor *a = MK(FC_FLOAT32, S(2, 2), 1, 2, 3, 4), *at = fc_transpose(a, 0, 1);
  EXPECT(fc_stack(2, LIST(a, at), 0), FC_FLOAT32, S(2, 2, 2), 0, 1, 2, 3, 4, 1, 3, 2, 4);
  EXPECT(fc_stack(2, LIST(a, at), 1), FC_FLOAT32, S(2, 2, 2), 0, 1, 2, 1, 3, 3, 4, 2, 4);
  EXPECT(fc_stack(2, LIST(a, at), 2), FC_FLOAT32, S(2, 2, 2), 0, 1, 1, 2, 3, 3, 2, 4, 4);
  EXPECT(fc_stack(2, LIST(a, at), -1), FC_FLOAT32, S(2, 2, 2), 0, 1, 1, 2, 3, 3, 2, 4, 4);
  EXPECT(fc_stack(2, LIST(a, at), -3), FC_FLOAT32, S(2, 2, 2), 0, 1, 2, 3, 4, 1, 3, 2, 4);
  fc_tensor *s1 = fc_scalar(3, FC_INT32, CPU), *s2 = fc_scalar(4.5, FC_FLOAT64, CPU);
  EXPECT(fc_stack(2, LIST(s1, s2), 0), FC_FLOAT64, S(2), 0, 3, 4.5);
  fc_tensor *b = MK(FC_INT64, S(2, 1), 5, 6);
  CHECK_ERR(fc_stack(2, LIST(a, b), 0),
            "stack: the 2nd tensor has shape [2,1] but the 1st has shape [2,2]; stacked tensors must have "
            "equal shapes");
  CHECK_ERR(fc_stack(2, LIST(a, at), 3), "stack: dim 3 out of range for stacking 2-dim tensors (expected -3 to 2)");
  CHECK_ERR(fc_stack(2, LIST(a, at), -4), "stack: dim -4 out of range");
  CHECK_ERR(fc_stack(0, LIST(a), 0), "stack: expects a non-empty list of tensors");
  fc_tensor *d8 = fc_zeros(8, SHP(1, 1, 1, 1, 1, 1, 1, 1), FC_FLOAT32, CPU);
  CHECK_ERR(fc_stack(1, LIST(d8), 0), "stack: the result would have 9 dims (at most 8)");
  REL(a, at, s1, s2, b, d8);
}

/* ---- index_select ------------------------------------------------------------ */

TEST(index_select_values) {
  fc_tensor *t = MK(FC_FLOAT32, S(3, 2), 1, 2, 3, 4, 5, 6);
  fc_tensor *i = MK(FC_INT64, S(3), 3, 1, 3);
  EXPECT(fc_index_select(t, 0, i, 1), FC_FLOAT32, S(3, 2), 0, 5, 6, 1, 2, 5, 6);
  fc_tensor *i0 = MK(FC_INT64, S(3), 2, 0, 2);
  EXPECT(fc_index_select(t, 0, i0, 0), FC_FLOAT32, S(3, 2), 0, 5, 6, 1, 2, 5, 6);
  EXPECT(fc_index_select(t, -2, i0, 0), FC_FLOAT32, S(3, 2), 0, 5, 6, 1, 2, 5, 6);
  fc_tensor *c = MK(FC_INT32, S(3), 1, 1, 0); /* int32 indices */
  EXPECT(fc_index_select(t, 1, c, 0), FC_FLOAT32, S(3, 3), 0, 2, 2, 1, 4, 4, 3, 6, 6, 5);
  EXPECT(fc_index_select(t, -1, c, 0), FC_FLOAT32, S(3, 3), 0, 2, 2, 1, 4, 4, 3, 6, 6, 5);
  fc_tensor *one = fc_scalar(2, FC_INT64, CPU); /* a 0-dim index keeps the dim, size 1 */
  EXPECT(fc_index_select(t, 0, one, 1), FC_FLOAT32, S(1, 2), 0, 3, 4);
  fc_tensor *none = fc_empty(1, SHP(0), FC_INT64, CPU), *r = fc_index_select(t, 0, none, 0);
  CHECK(r && r->ndim == 2 && r->shape[0] == 0 && r->shape[1] == 2);
  fc_release(r);
  fc_tensor *s = fc_scalar(7, FC_FLOAT64, CPU), *z = MK(FC_INT64, S(1), 1);
  EXPECT0(fc_index_select(s, 0, z, 1), FC_FLOAT64, 0, 7);
  /* strided inputs: transposed (strided outer), stepped (strided inner), permuted 3-D */
  fc_tensor *tt = fc_transpose(t, 0, 1); /* [[1,3,5],[2,4,6]] */
  EXPECT(fc_index_select(tt, 1, i, 1), FC_FLOAT32, S(2, 3), 0, 5, 1, 5, 6, 2, 6);
  fc_tensor *two = MK(FC_INT64, S(1), 2);
  EXPECT(fc_index_select(tt, 0, two, 1), FC_FLOAT32, S(1, 3), 0, 2, 4, 6);
  fc_tensor *w = MK(FC_FLOAT32, S(2, 6), 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11), *ws = fc_slice(w, 1, 0, 6, 2);
  fc_tensor *ix = MK(FC_INT64, S(3), 1, 0, 1); /* ws = [[0,2,4],[6,8,10]] */
  EXPECT(fc_index_select(ws, 0, ix, 0), FC_FLOAT32, S(3, 3), 0, 6, 8, 10, 0, 2, 4, 6, 8, 10);
  fc_tensor *cube = iota(FC_FLOAT64, 3, SHP(2, 3, 4)), *perm = fc_permute(cube, 3, (int[]){2, 0, 1});
  /* perm[a][b][c] = cube[b][c][a] = 12b + 4c + a, shape [4,2,3]; its inner block is [2,3] strided */
  fc_tensor *ip = MK(FC_INT64, S(2), 3, 0);
  EXPECT(fc_index_select(perm, 0, ip, 0), FC_FLOAT64, S(2, 2, 3), 0, 3, 7, 11, 15, 19, 23, 0, 4, 8, 12, 16, 20);
  EXPECT(fc_index_select(perm, 2, two, 0), FC_FLOAT64, S(4, 2, 1), 0, 8, 20, 9, 21, 10, 22,
         11, 23);
  /* a strided index */
  fc_tensor *ibig = MK(FC_INT64, S(4), 2, 9, 0, 9), *istep = fc_slice(ibig, 0, 0, 4, 2);
  EXPECT(fc_index_select(t, 0, istep, 0), FC_FLOAT32, S(2, 2), 0, 5, 6, 1, 2);
  REL(t, i, i0, c, one, none, s, z, tt, two, w, ws, ix, cube, perm, ip, ibig, istep);
}

static void index_select_dtypes_and_large_once(void) {
  int dtypes[] = {FC_FLOAT64, FC_FLOAT16, FC_BFLOAT16, FC_INT64, FC_INT32, FC_UINT8, FC_BOOL};
  fc_tensor *i = MK(FC_INT64, S(3), 1, 0, 1);
  for (int k = 0; k < 7; k++) {
    fc_tensor *t = MK(dtypes[k], S(2, 2), 1, 0, 0, 1);
    EXPECT(fc_index_select(t, 0, i, 0), dtypes[k], S(3, 2), 0, 0, 1, 1, 0, 0, 1);
    EXPECT(fc_index_select(t, 1, i, 0), dtypes[k], S(2, 3), 0, 0, 1, 0, 1, 0, 1);
    fc_release(t);
  }
  fc_tensor *t = fc_randn(2, SHP(300, 200), FC_FLOAT32, CPU), *tt = fc_transpose(t, 0, 1);
  fc_tensor *idx = fc_randint(0, 200, 1, SHP(500), FC_INT64, CPU);
  double *vt = tensor_values(t), *vi = tensor_values(idx), *want = malloc(sizeof(double) * 300 * 500);
  for (int r = 0; r < 300; r++) /* along the last dim: one element a row */
    for (int j = 0; j < 500; j++) want[r * 500 + j] = vt[r * 200 + (int)vi[j]];
  EXPECT_VALS(fc_index_select(t, 1, idx, 0), want, 300 * 500);
  for (int j = 0; j < 500; j++) /* rows of the transpose: strided inner blocks */
    for (int r = 0; r < 300; r++) want[j * 300 + r] = vt[r * 200 + (int)vi[j]];
  EXPECT_VALS(fc_index_select(tt, 0, idx, 0), want, 300 * 500);
  free(vt), free(vi), free(want);
  REL(i, t, tt, idx);
}
TEST(index_select_dtypes_and_large) { with_threads(index_select_dtypes_and_large_once); }

TEST(index_select_errors) {
  fc_tensor *t = MK(FC_FLOAT32, S(3, 4), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
  fc_tensor *bad = MK(FC_INT64, S(2), 1, 5);
  CHECK_ERR(fc_index_select(t, 1, bad, 1), "index_select: index 5 out of range for dim of size 4 (valid 1..4)");
  CHECK_ERR(fc_index_select(t, 0, bad, 0), "index_select: index 5 out of range for dim of size 3 (valid 0..2)");
  fc_tensor *zero = MK(FC_INT64, S(1), 0);
  CHECK_ERR(fc_index_select(t, 0, zero, 1), "index_select: index 0 out of range for dim of size 3 (valid 1..3)");
  fc_tensor *neg = MK(FC_INT32, S(1), -1);
  CHECK_ERR(fc_index_select(t, 0, neg, 0), "index -1 out of range");
  fc_tensor *fidx = MK(FC_FLOAT32, S(1), 0), *bidx = MK(FC_BOOL, S(1), 0);
  CHECK_ERR(fc_index_select(t, 0, fidx, 0), "index_select: index tensor must be int64 (or int32), got float32");
  CHECK_ERR(fc_index_select(t, 0, bidx, 0), "got bool");
  fc_tensor *i2 = MK(FC_INT64, S(1, 1), 0);
  CHECK_ERR(fc_index_select(t, 0, i2, 0), "index_select: index must be 1-D (or 0-dim), got shape [1,1]");
  CHECK_ERR(fc_index_select(t, 2, zero, 0), "index_select: dim 2 out of range");
  fc_tensor *s = fc_scalar(1, FC_FLOAT32, CPU), *two = MK(FC_INT64, S(2), 0, 0);
  CHECK_ERR(fc_index_select(s, 0, two, 0), "index_select: a 0-dim tensor takes exactly one index, got 2");
  fc_tensor *e = fc_empty(2, SHP(0, 2), FC_FLOAT32, CPU);
  CHECK_ERR(fc_index_select(e, 0, zero, 0), "index_select: index 0 out of range for an empty dim");
  CHECK_ERR(fc_index_select(t, 0, NULL, 0), "index_select: tensor is NULL");
  REL(t, bad, zero, neg, fidx, bidx, i2, s, two, e);
}

/* ---- gather and scatter ------------------------------------------------------ */

TEST(gather_values) {
  fc_tensor *t = MK(FC_FLOAT32, S(2, 2), 1, 2, 3, 4), *i = MK(FC_INT64, S(2, 2), 0, 0, 1, 0);
  EXPECT(fc_gather(t, 1, i, 0), FC_FLOAT32, S(2, 2), 0, 1, 1, 4, 3); /* PyTorch's docs example */
  EXPECT(fc_gather(t, 0, i, 0), FC_FLOAT32, S(2, 2), 0, 1, 2, 3, 2);
  EXPECT(fc_gather(t, -1, i, 0), FC_FLOAT32, S(2, 2), 0, 1, 1, 4, 3);
  fc_tensor *i1 = MK(FC_INT32, S(2, 2), 1, 1, 2, 1); /* int32, counted from 1 */
  EXPECT(fc_gather(t, 1, i1, 1), FC_FLOAT32, S(2, 2), 0, 1, 1, 4, 3);
  /* the index may be smaller than the input outside the gathered dim, and longer along it */
  fc_tensor *m = MK(FC_INT64, S(3, 4), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12);
  fc_tensor *g = MK(FC_INT64, S(2, 1), 3, 0), *g3 = MK(FC_INT64, S(5, 1), 2, 0, 1, 2, 2);
  EXPECT(fc_gather(m, 1, g, 0), FC_INT64, S(2, 1), 0, 4, 5);
  EXPECT(fc_gather(m, 0, g3, 0), FC_INT64, S(5, 1), 0, 9, 1, 5, 9, 9);
  /* strided input and index */
  fc_tensor *mt = fc_transpose(m, 0, 1); /* [4,3]: mt[a][b] = m[b][a] */
  fc_tensor *gm = MK(FC_INT64, S(2, 1), 2, 0);
  EXPECT(fc_gather(mt, 1, gm, 0), FC_INT64, S(2, 1), 0, 9, 2);
  fc_tensor *gi = MK(FC_INT64, S(2, 2), 2, 1, 0, 2), *git = fc_transpose(gi, 0, 1); /* [[2,0],[1,2]] */
  EXPECT(fc_gather(m, 1, git, 0), FC_INT64, S(2, 2), 0, 3, 1, 6, 7);
  /* 1-D and 0-dim */
  fc_tensor *v = MK(FC_FLOAT64, S(4), 10, 20, 30, 40), *vi = MK(FC_INT64, S(5), 3, 3, 0, 1, 2);
  EXPECT(fc_gather(v, 0, vi, 0), FC_FLOAT64, S(5), 0, 40, 40, 10, 20, 30);
  fc_tensor *si = fc_scalar(2, FC_INT64, CPU);
  EXPECT0(fc_gather(v, 0, si, 1), FC_FLOAT64, 0, 20);
  fc_tensor *s = fc_scalar(5, FC_FLOAT32, CPU);
  EXPECT0(fc_gather(s, 0, si, 2), FC_FLOAT32, 0, 5);
  /* every byte size */
  int dtypes[] = {FC_FLOAT16, FC_BFLOAT16, FC_INT32, FC_UINT8, FC_BOOL};
  for (int k = 0; k < 5; k++) {
    fc_tensor *x = MK(dtypes[k], S(2, 2), 1, 0, 0, 1);
    EXPECT(fc_gather(x, 1, i, 0), dtypes[k], S(2, 2), 0, 1, 1, 1, 0);
    fc_release(x);
  }
  fc_tensor *e = fc_empty(2, SHP(2, 0), FC_INT64, CPU), *r = fc_gather(t, 1, e, 0);
  CHECK(r && r->shape[0] == 2 && r->shape[1] == 0);
  fc_release(r);
  REL(t, i, i1, m, g, g3, mt, gm, gi, git, v, vi, si, s, e);
}

/* A naive gather/scatter_add over [A,B,C] contiguous arrays, dim d. */
static int64_t at3(const int64_t *shape, int64_t a, int64_t b, int64_t c) { return (a * shape[1] + b) * shape[2] + c; }

static void gather_scatter_large_once(void) {
  int64_t ts[3] = {20, 30, 40}, is[3] = {20, 30, 40};
  for (int d = 0; d < 3; d++) {
    is[0] = 20, is[1] = 30, is[2] = 40;
    is[d] = 70; /* longer along d: many repeated targets */
    fc_tensor *t = fc_randn(3, ts, FC_FLOAT64, CPU), *idx = fc_randint(0, ts[d], 3, is, FC_INT64, CPU);
    fc_tensor *src = fc_randint(-50, 50, 3, is, FC_FLOAT64, CPU), *base = fc_randint(-9, 9, 3, ts, FC_FLOAT64, CPU);
    double *vt = tensor_values(t), *vi = tensor_values(idx), *vs = tensor_values(src), *vb = tensor_values(base);
    int64_t n = is[0] * is[1] * is[2];
    double *want = malloc(sizeof(double) * (size_t)n);
    for (int64_t a = 0; a < is[0]; a++)
      for (int64_t b = 0; b < is[1]; b++)
        for (int64_t c = 0; c < is[2]; c++) {
          int64_t p[3] = {a, b, c}, q = at3(is, a, b, c);
          p[d] = (int64_t)vi[q];
          want[q] = vt[at3(ts, p[0], p[1], p[2])];
          vb[at3(ts, p[0], p[1], p[2])] += vs[q]; /* integers: exact in any order */
        }
    EXPECT_VALS(fc_gather(t, d, idx, 0), want, n);
    EXPECT_VALS(fc_scatter_add(base, d, idx, src, 0), vb, ts[0] * ts[1] * ts[2]);
    /* int64 and int32 accumulate too, also into a transposed (strided) target */
    fc_tensor *b64 = fc_to_dtype(base, FC_INT64), *s64 = fc_to_dtype(src, FC_INT64);
    EXPECT_VALS(fc_scatter_add(b64, d, idx, s64, 0), vb, ts[0] * ts[1] * ts[2]);
    fc_tensor *b32 = fc_to_dtype(base, FC_INT32), *s32 = fc_to_dtype(src, FC_INT32);
    fc_tensor *tr = fc_transpose(b32, 0, 2), *b32t = fc_clone(tr); /* contiguous [40,30,20] */
    fc_tensor *view = fc_transpose(b32t, 0, 2); /* strided [20,30,40] view of it, holding b32 */
    CHECK(fc_scatter_add_(view, d, idx, s32, 0) == 0);
    EXPECT_VALS(fc_clone(view), vb, ts[0] * ts[1] * ts[2]);
    free(vt), free(vi), free(vs), free(vb), free(want);
    REL(t, idx, src, base, b64, s64, b32, s32, tr, b32t, view);
  }
}
TEST(gather_scatter_large) { with_threads(gather_scatter_large_once); }

TEST(scatter_values) {
  /* PyTorch's docs examples */
  fc_tensor *src = fc_arange(1, 11, 1, FC_FLOAT32, CPU), *s25 = fc_reshape(src, 2, SHP(2, 5));
  fc_tensor *idx = MK(FC_INT64, S(1, 4), 0, 1, 2, 0), *z = fc_zeros(2, SHP(3, 5), FC_FLOAT32, CPU);
  EXPECT(fc_scatter(z, 0, idx, s25, 0), FC_FLOAT32, S(3, 5), 0, 1, 0, 0, 4, 0, 0, 2, 0, 0, 0, 0, 0, 3, 0, 0);
  fc_tensor *idx2 = MK(FC_INT64, S(2, 2), 0, 1, 0, 2), *z2 = fc_zeros(2, SHP(3, 5), FC_FLOAT32, CPU);
  EXPECT(fc_scatter(z2, 1, idx2, s25, 0), FC_FLOAT32, S(3, 5), 0, 1, 2, 0, 0, 0, 6, 0, 7, 0, 0, 0, 0, 0, 0, 0);
  fc_tensor *ones = fc_ones(2, SHP(2, 5), FC_FLOAT32, CPU), *ia = MK(FC_INT64, S(2, 5), 0, 1, 2, 0, 0, 0, 1, 2, 2, 2);
  EXPECT(fc_scatter_add(z, 0, ia, ones, 0), FC_FLOAT32, S(3, 5), 0, 2, 0, 0, 1, 1, 0, 2, 0, 0, 0, 0, 0, 2, 1, 1);
  CHECK(((float *)fc_data_ptr(z))[0] == 0); /* out of place left z alone */
  /* in place, repeatedly; last write wins for scatter */
  fc_tensor *t = fc_zeros(2, SHP(2, 3), FC_FLOAT32, CPU);
  fc_tensor *i = MK(FC_INT64, S(2, 2), 3, 1, 1, 1), *sv = MK(FC_FLOAT32, S(2, 2), 1, 2, 3, 4);
  EXPECT(fc_scatter(t, 1, i, sv, 1), FC_FLOAT32, S(2, 3), 0, 2, 0, 1, 4, 0, 0);
  CHECK(fc_scatter_add_(t, 1, i, sv, 1) == 0);
  CHECK(fc_scatter_add_(t, -1, i, sv, 1) == 0);
  EXPECT(fc_clone(t), FC_FLOAT32, S(2, 3), 0, 4, 0, 2, 14, 0, 0);
  /* a 0-dim src is a value; it may have another dtype */
  fc_tensor *nine = fc_scalar(9, FC_INT64, CPU);
  CHECK(fc_scatter_(t, 1, i, nine, 1) == 0);
  EXPECT(fc_clone(t), FC_FLOAT32, S(2, 3), 0, 9, 0, 9, 9, 0, 0);
  fc_tensor *half = fc_scalar(0.5, FC_FLOAT64, CPU);
  fc_tensor *i110 = MK(FC_INT64, S(1, 3), 1, 1, 0);
  EXPECT(fc_scatter_add(t, 0, i110, half, 0), FC_FLOAT32, S(2, 3), 0, 9, 0, 9.5,
         9.5, 0.5, 0);
  /* a strided target (in place into a transposed view) and a strided src */
  fc_tensor *base = fc_zeros(2, SHP(3, 2), FC_INT64, CPU), *view = fc_transpose(base, 0, 1); /* [2,3] */
  fc_tensor *s2 = MK(FC_INT64, S(3, 2), 1, 2, 3, 4, 5, 6), *s2t = fc_transpose(s2, 0, 1); /* [[1,3,5],[2,4,6]] */
  fc_tensor *ii = MK(FC_INT64, S(2, 2), 2, 0, 1, 1);
  CHECK(fc_scatter_(view, 1, ii, s2t, 0) == 0);
  EXPECT(fc_clone(base), FC_INT64, S(3, 2), 0, 3, 0, 0, 4, 1, 0);
  /* every dtype's add: integers wrap, bool ors, halves round */
  fc_tensor *i3 = MK(FC_INT64, S(3), 0, 0, 1);
  fc_tensor *u = MK(FC_UINT8, S(2), 250, 1), *us = MK(FC_UINT8, S(3), 3, 4, 5);
  EXPECT(fc_scatter_add(u, 0, i3, us, 0), FC_UINT8, S(2), 0, 1, 6);
  fc_tensor *b = MK(FC_BOOL, S(2), 0, 0), *bs = MK(FC_BOOL, S(3), 0, 1, 0);
  EXPECT(fc_scatter_add(b, 0, i3, bs, 0), FC_BOOL, S(2), 0, 1, 0);
  fc_tensor *w = MK(FC_INT32, S(2), 2147483647, 0), *ws = MK(FC_INT32, S(3), 1, 0, -5);
  EXPECT(fc_scatter_add(w, 0, i3, ws, 0), FC_INT32, S(2), 0, -2147483648.0, -5);
  fc_tensor *h = MK(FC_FLOAT16, S(2), 1, 2), *hs = MK(FC_FLOAT16, S(3), 0.5, 0.25, 8);
  EXPECT(fc_scatter_add(h, 0, i3, hs, 0), FC_FLOAT16, S(2), 0, 1.75, 10);
  fc_tensor *bf = MK(FC_BFLOAT16, S(2), 1, 2), *bfs = MK(FC_BFLOAT16, S(3), 0.5, 0.25, 8);
  EXPECT(fc_scatter_add(bf, 0, i3, bfs, 0), FC_BFLOAT16, S(2), 0, 1.75, 10);
  fc_tensor *d = MK(FC_FLOAT64, S(2), 1, 2), *ds = MK(FC_FLOAT64, S(3), 0.5, 0.25, 8);
  EXPECT(fc_scatter_add(d, 0, i3, ds, 0), FC_FLOAT64, S(2), 0, 1.75, 10);
  EXPECT(fc_scatter(d, 0, i3, ds, 0), FC_FLOAT64, S(2), 0, 0.25, 8);
  REL(src, s25, idx, z, idx2, z2, ones, ia, t, i, sv, nine, half, i110, base, view, s2, s2t, ii, i3, u, us, b, bs, w,
      ws, h, hs, bf, bfs, d, ds);
}

TEST(gather_scatter_errors) {
  fc_tensor *t = fc_zeros(2, SHP(3, 4), FC_FLOAT32, CPU);
  fc_tensor *i1 = MK(FC_INT64, S(3), 0, 0, 0), *big = fc_zeros(2, SHP(4, 1), FC_INT64, CPU);
  CHECK_ERR(fc_gather(t, 1, i1, 0), "gather: index of shape [3] must have as many dims as the input of shape [3,4]");
  CHECK_ERR(fc_gather(t, 1, big, 0),
            "gather: index of shape [4,1] is larger than the input of shape [3,4] in the 1st dim (4 > 3); "
            "only the indexed dim (the 2nd) may be larger");
  fc_tensor *far = MK(FC_INT64, S(1, 2), 0, 4);
  CHECK_ERR(fc_gather(t, 1, far, 0), "gather: index 4 out of range for dim of size 4 (valid 0..3)");
  CHECK_ERR(fc_gather(t, 1, far, 1), "gather: index 0 out of range for dim of size 4 (valid 1..4)");
  fc_tensor *fi = fc_zeros(2, SHP(1, 1), FC_FLOAT64, CPU);
  CHECK_ERR(fc_gather(t, 0, fi, 0), "gather: index tensor must be int64 (or int32), got float64");
  CHECK_ERR(fc_gather(t, 2, far, 0), "gather: dim 2 out of range");
  /* scatter: src must match dtype, be at least the index's size, have its dims */
  fc_tensor *src = fc_zeros(2, SHP(1, 2), FC_FLOAT64, CPU), *small = fc_zeros(2, SHP(1, 1), FC_FLOAT32, CPU);
  fc_tensor *ok = MK(FC_INT64, S(1, 2), 0, 3), *v1 = fc_zeros(1, SHP(2), FC_FLOAT32, CPU);
  fc_tensor *src32 = fc_zeros(2, SHP(1, 2), FC_FLOAT32, CPU);
  CHECK_ERR(fc_scatter(t, 1, ok, src, 0), "scatter: src has dtype float64 but the tensor has float32; they must match");
  CHECK_ERR(fc_scatter_add(t, 1, ok, small, 0),
            "scatter_add: index of shape [1,2] is larger than src of shape [1,1] in the 2nd dim (2 > 1)");
  CHECK_ERR(fc_scatter_(t, 1, ok, v1, 0), "scatter_: index of shape [1,2] must have as many dims as src of shape [2]");
  CHECK_ERR(fc_scatter_add_(t, 1, far, src32, 1), "scatter_add_: index 0 out of range for dim of size 4 (valid 1..4)");
  fc_tensor *one = fc_scalar(1, FC_FLOAT32, CPU);
  CHECK_ERR(fc_scatter_(t, 1, big, one, 0), "scatter_: index of shape [4,1] is larger than the input of shape [3,4]");
  /* nothing was written by the failed calls */
  double *v = tensor_values(t);
  bool zero = true;
  for (int k = 0; k < 12; k++) zero &= v[k] == 0;
  CHECK(zero);
  free(v);
  /* in place on a tensor that requires grad */
  fc_tensor *p = fc_zeros(1, SHP(3), FC_FLOAT32, CPU), *pi = MK(FC_INT64, S(1), 0);
  fc_set_requires_grad(p, 1);
  CHECK_ERR(fc_scatter_(p, 0, pi, one, 0), "scatter_: in-place op on a tensor that requires grad");
  CHECK_ERR(fc_scatter_add_(p, 0, pi, one, 0), "scatter_add_: in-place op on a tensor that requires grad");
  CHECK_ERR(fc_scatter(t, 1, ok, NULL, 0), "scatter: tensor is NULL");
  REL(t, i1, big, far, fi, src, small, ok, v1, src32, one, p, pi);
}

/* ---- masks ----------------------------------------------------------------------- */

TEST(masked_fill_values) {
  fc_tensor *t = MK(FC_INT32, S(2, 3), 0, 5, 0, 7, 0, 9);
  fc_tensor *m = MK(FC_BOOL, S(3), 1, 0, 1), *col = MK(FC_BOOL, S(2, 1), 0, 1), *u8 = MK(FC_UINT8, S(2, 3), 0, 2, 0, 0, 0, 1);
  EXPECT(fc_masked_fill(t, m, -1), FC_INT32, S(2, 3), 0, -1, 5, -1, -1, 0, -1);
  EXPECT(fc_masked_fill(t, col, 4), FC_INT32, S(2, 3), 0, 0, 5, 0, 4, 4, 4);
  EXPECT(fc_masked_fill(t, u8, 8), FC_INT32, S(2, 3), 0, 0, 8, 0, 7, 0, 8);
  fc_tensor *all = fc_scalar(1, FC_BOOL, CPU);
  EXPECT(fc_masked_fill(t, all, 2.9), FC_INT32, S(2, 3), 0, 2, 2, 2, 2, 2, 2);
  /* a transposed tensor and a transposed mask */
  fc_tensor *tt = fc_transpose(t, 0, 1); /* [[0,7],[5,0],[0,9]] */
  fc_tensor *mm = MK(FC_BOOL, S(2, 3), 1, 0, 0, 0, 0, 1), *mt = fc_transpose(mm, 0, 1); /* [[1,0],[0,0],[0,1]] */
  EXPECT(fc_masked_fill(tt, mt, 3), FC_INT32, S(3, 2), 0, 3, 7, 5, 0, 0, 3);
  fc_tensor *f = MK(FC_FLOAT32, S(3), 1, 2, 3), *fm = MK(FC_BOOL, S(3), 0, 1, 1);
  EXPECT(fc_masked_fill(f, fm, NAN), FC_FLOAT32, S(3), 0, 1, NAN, NAN);
  EXPECT(fc_masked_fill(f, fm, -INFINITY), FC_FLOAT32, S(3), 0, 1, -INFINITY, -INFINITY);
  int dtypes[] = {FC_FLOAT64, FC_FLOAT16, FC_BFLOAT16, FC_INT64, FC_UINT8, FC_BOOL};
  for (int k = 0; k < 6; k++) {
    fc_tensor *x = MK(dtypes[k], S(3), 1, 0, 1);
    EXPECT(fc_masked_fill(x, fm, dtypes[k] == FC_BOOL ? 0 : 2), dtypes[k], S(3), 0, 1, dtypes[k] == FC_BOOL ? 0 : 2,
           dtypes[k] == FC_BOOL ? 0 : 2);
    fc_release(x);
  }
  /* in place: through a stepped view only the view changes */
  fc_tensor *base = MK(FC_FLOAT64, S(6), 1, 2, 3, 4, 5, 6), *odd = fc_slice(base, 0, 0, 6, 2);
  CHECK(fc_masked_fill_(odd, fm, 0) == 0);
  EXPECT(fc_clone(base), FC_FLOAT64, S(6), 0, 1, 2, 0, 4, 0, 6);
  CHECK(fc_masked_fill_(t, m, 3) == 0);
  EXPECT(fc_clone(t), FC_INT32, S(2, 3), 0, 3, 5, 3, 3, 0, 3);
  fc_tensor *none = MK(FC_BOOL, S(1), 0);
  CHECK(fc_masked_fill_(t, none, 100) == 0); /* a broadcast all-false mask */
  EXPECT(fc_clone(t), FC_INT32, S(2, 3), 0, 3, 5, 3, 3, 0, 3);
  REL(t, m, col, u8, all, tt, mm, mt, f, fm, base, odd, none);
}

static void masked_large_once(void) {
  int64_t n = 100000;
  fc_tensor *t = fc_randn(2, SHP(n / 100, 100), FC_FLOAT32, CPU), *r = fc_rand(2, SHP(n / 100, 100), FC_FLOAT32, CPU);
  fc_tensor *half = fc_scalar(0.5, FC_FLOAT32, CPU), *m = fc_lt(r, half);
  double *vt = tensor_values(t), *vm = tensor_values(m), *want = malloc(sizeof(double) * (size_t)n);
  int64_t k = 0;
  for (int64_t i = 0; i < n; i++)
    if (vm[i]) want[k++] = vt[i];
  fc_tensor *sel = fc_masked_select(t, m);
  CHECK(sel && sel->ndim == 1 && sel->shape[0] == k);
  EXPECT_VALS(sel, want, k);
  for (int64_t i = 0; i < n; i++) want[i] = vm[i] ? -7 : (float)vt[i];
  EXPECT_VALS(fc_masked_fill(t, m, -7), want, n);
  /* strided (transposed) operands take the ordered walk */
  fc_tensor *tt = fc_transpose(t, 0, 1), *mt = fc_transpose(m, 0, 1);
  k = 0;
  for (int64_t c = 0; c < 100; c++)
    for (int64_t rr = 0; rr < n / 100; rr++)
      if (vm[rr * 100 + c]) want[k++] = vt[rr * 100 + c];
  EXPECT_VALS(fc_masked_select(tt, mt), want, k);
  /* nonzero of the mask, and of its transpose, against the same walk */
  int64_t *nz = malloc(sizeof(int64_t) * (size_t)n * 2), cnt = 0;
  for (int64_t i = 0; i < n; i++)
    if (vm[i]) nz[cnt * 2] = i / 100, nz[cnt * 2 + 1] = i % 100, cnt++;
  fc_tensor *nzt = fc_nonzero(m, 1);
  CHECK(nzt && nzt->shape[0] == cnt && nzt->shape[1] == 2);
  double *vn = tensor_values(nzt);
  for (int64_t i = 0; i < 2 * cnt; i++)
    if (vn[i] != (double)nz[i] + 1) {
      harness_fail(__FILE__, __LINE__, "nonzero element %lld = %g, expected %lld", (long long)i, vn[i], (long long)nz[i] + 1);
      break;
    }
  free(vn), fc_release(nzt);
  cnt = 0;
  for (int64_t c = 0; c < 100; c++)
    for (int64_t rr = 0; rr < n / 100; rr++)
      if (vm[rr * 100 + c]) nz[cnt * 2] = c, nz[cnt * 2 + 1] = rr, cnt++;
  nzt = fc_nonzero(mt, 0);
  vn = tensor_values(nzt);
  CHECK(nzt && nzt->shape[0] == cnt);
  for (int64_t i = 0; i < 2 * cnt; i++)
    if (vn[i] != (double)nz[i]) {
      harness_fail(__FILE__, __LINE__, "nonzero of transpose element %lld = %g, expected %lld", (long long)i, vn[i], (long long)nz[i]);
      break;
    }
  free(vn), free(nz), fc_release(nzt);
  CHECK(fc_masked_fill_(tt, mt, 0) == 0);
  for (int64_t i = 0; i < n; i++) want[i] = vm[i] ? 0 : (float)vt[i];
  EXPECT_VALS(fc_clone(t), want, n);
  free(vt), free(vm), free(want);
  REL(t, r, half, m, tt, mt);
}
TEST(masked_large) { with_threads(masked_large_once); }

TEST(masked_select_values) {
  fc_tensor *t = MK(FC_INT32, S(2, 3), 0, 5, 0, 7, 0, 9), *m = MK(FC_BOOL, S(3), 1, 0, 1);
  EXPECT(fc_masked_select(t, m), FC_INT32, S(4), 0, 0, 0, 7, 9);
  fc_tensor *m2 = MK(FC_UINT8, S(2, 3), 0, 1, 0, 1, 0, 1);
  EXPECT(fc_masked_select(t, m2), FC_INT32, S(3), 0, 5, 7, 9);
  /* the tensor broadcasts too: the result follows the broadcast shape */
  fc_tensor *v = MK(FC_FLOAT32, S(3), 1, 2, 3), *big = MK(FC_BOOL, S(2, 3), 1, 1, 0, 0, 1, 1);
  EXPECT(fc_masked_select(v, big), FC_FLOAT32, S(4), 0, 1, 2, 2, 3);
  fc_tensor *col = MK(FC_FLOAT32, S(2, 1), 4, 5), *row = MK(FC_BOOL, S(3), 1, 0, 1);
  EXPECT(fc_masked_select(col, row), FC_FLOAT32, S(4), 0, 4, 4, 5, 5);
  fc_tensor *tt = fc_transpose(t, 0, 1), *mt = fc_transpose(m2, 0, 1); /* [[0,7],[5,0],[0,9]], [[0,1],[1,0],[0,1]] */
  EXPECT(fc_masked_select(tt, mt), FC_INT32, S(3), 0, 7, 5, 9);
  fc_tensor *none = MK(FC_BOOL, S(3), 0, 0, 0);
  EXPECT(fc_masked_select(t, none), FC_INT32, S(0), 0, 0);
  fc_tensor *s = fc_scalar(3, FC_FLOAT64, CPU), *yes = fc_scalar(1, FC_BOOL, CPU);
  EXPECT(fc_masked_select(s, yes), FC_FLOAT64, S(1), 0, 3);
  int dtypes[] = {FC_FLOAT64, FC_FLOAT16, FC_INT64, FC_UINT8, FC_BOOL};
  for (int k = 0; k < 5; k++) {
    fc_tensor *x = MK(dtypes[k], S(3), 1, 0, 1);
    EXPECT(fc_masked_select(x, m), dtypes[k], S(2), 0, 1, 1);
    fc_release(x);
  }
  REL(t, m, m2, v, big, col, row, tt, mt, none, s, yes);
}

TEST(mask_errors) {
  fc_tensor *t = fc_zeros(2, SHP(2, 3), FC_FLOAT32, CPU);
  fc_tensor *fm = MK(FC_FLOAT32, S(3), 1, 0, 1), *im = MK(FC_INT64, S(3), 1, 0, 1);
  CHECK_ERR(fc_masked_fill(t, fm, 0), "masked_fill: mask must be a bool tensor, got float32");
  CHECK_ERR(fc_masked_fill_(t, im, 0), "masked_fill_: mask must be a bool tensor, got int64");
  CHECK_ERR(fc_masked_select(t, fm), "masked_select: mask must be a bool tensor, got float32");
  fc_tensor *m4 = MK(FC_BOOL, S(4), 1, 1, 1, 1), *m223 = fc_zeros(3, SHP(2, 2, 3), FC_BOOL, CPU);
  CHECK_ERR(fc_masked_fill(t, m4, 0), "masked_fill: mask of shape [4] does not broadcast to the tensor's shape [2,3]");
  CHECK_ERR(fc_masked_fill_(t, m223, 0), "masked_fill_: mask of shape [2,2,3] does not broadcast");
  CHECK_ERR(fc_masked_select(t, m4), "masked_select: shapes [2,3] and [4] cannot broadcast");
  fc_tensor *p = fc_zeros(1, SHP(3), FC_FLOAT32, CPU), *m3 = MK(FC_BOOL, S(3), 1, 0, 0);
  fc_set_requires_grad(p, 1);
  CHECK_ERR(fc_masked_fill_(p, m3, 1), "masked_fill_: in-place op on a tensor that requires grad");
  CHECK_ERR(fc_masked_select(t, NULL), "masked_select: tensor is NULL");
  REL(t, fm, im, m4, m223, p, m3);
}

/* ---- nonzero and one_hot ------------------------------------------------------------ */

TEST(nonzero_values) {
  fc_tensor *t = MK(FC_INT32, S(2, 3), 0, 5, 0, 7, 0, 9);
  EXPECT(fc_nonzero(t, 1), FC_INT64, S(3, 2), 0, 1, 2, 2, 1, 2, 3);
  EXPECT(fc_nonzero(t, 0), FC_INT64, S(3, 2), 0, 0, 1, 1, 0, 1, 2);
  fc_tensor *tt = fc_transpose(t, 0, 1); /* [[0,7],[5,0],[0,9]] */
  EXPECT(fc_nonzero(tt, 0), FC_INT64, S(3, 2), 0, 0, 1, 1, 0, 2, 1);
  fc_tensor *f = MK(FC_FLOAT32, S(4), -0.0, NAN, 0, 1e-30); /* -0 is zero; NaN is not */
  EXPECT(fc_nonzero(f, 0), FC_INT64, S(2, 1), 0, 1, 3);
  fc_tensor *h = MK(FC_FLOAT16, S(3), -0.0, 0.5, 0), *bf = MK(FC_BFLOAT16, S(3), 2, -0.0, -1);
  EXPECT(fc_nonzero(h, 1), FC_INT64, S(1, 1), 0, 2);
  EXPECT(fc_nonzero(bf, 1), FC_INT64, S(2, 1), 0, 1, 3);
  fc_tensor *b = MK(FC_BOOL, S(2, 2), 1, 0, 0, 1), *u = MK(FC_UINT8, S(3), 0, 200, 0), *i64 = MK(FC_INT64, S(2), -5, 0);
  fc_tensor *d = MK(FC_FLOAT64, S(2), 0, -2);
  EXPECT(fc_nonzero(b, 0), FC_INT64, S(2, 2), 0, 0, 0, 1, 1);
  EXPECT(fc_nonzero(u, 0), FC_INT64, S(1, 1), 0, 1);
  EXPECT(fc_nonzero(i64, 0), FC_INT64, S(1, 1), 0, 0);
  EXPECT(fc_nonzero(d, 0), FC_INT64, S(1, 1), 0, 1);
  fc_tensor *cube = iota(FC_FLOAT32, 3, SHP(2, 2, 2)), *cp = fc_permute(cube, 3, (int[]){2, 1, 0});
  EXPECT(fc_nonzero(cp, 0), FC_INT64, S(7, 3), 0, 0, 0, 1, 0, 1, 0, 0, 1, 1, 1, 0, 0, 1, 0, 1, 1, 1, 0, 1, 1, 1);
  fc_tensor *s1 = fc_scalar(3, FC_FLOAT32, CPU), *s0 = fc_scalar(0, FC_FLOAT32, CPU);
  fc_tensor *r1 = fc_nonzero(s1, 1), *r0 = fc_nonzero(s0, 1);
  CHECK(r1 && r1->ndim == 2 && r1->shape[0] == 1 && r1->shape[1] == 0);
  CHECK(r0 && r0->ndim == 2 && r0->shape[0] == 0 && r0->shape[1] == 0);
  fc_tensor *e = fc_empty(2, SHP(0, 3), FC_FLOAT32, CPU), *re = fc_nonzero(e, 0);
  CHECK(re && re->shape[0] == 0 && re->shape[1] == 2);
  CHECK_ERR(fc_nonzero(NULL, 0), "nonzero: tensor is NULL");
  REL(t, tt, f, h, bf, b, u, i64, d, cube, cp, s1, s0, r1, r0, e, re);
}

TEST(one_hot_values_and_errors) {
  fc_tensor *c = MK(FC_INT64, S(3), 2, 0, 1);
  EXPECT(fc_one_hot(c, -1, 0), FC_INT64, S(3, 3), 0, 0, 0, 1, 1, 0, 0, 0, 1, 0);
  EXPECT(fc_one_hot(c, 4, 0), FC_INT64, S(3, 4), 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 0, 0);
  fc_tensor *l = MK(FC_INT32, S(2, 2), 3, 1, 1, 2); /* 1-based class ids, int32 */
  EXPECT(fc_one_hot(l, -1, 1), FC_INT64, S(2, 2, 3), 0, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0, 1, 0);
  fc_tensor *lt = fc_transpose(l, 0, 1); /* [[3,1],[1,2]] */
  EXPECT(fc_one_hot(lt, 3, 1), FC_INT64, S(2, 2, 3), 0, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0, 1, 0);
  fc_tensor *s = fc_scalar(2, FC_INT64, CPU);
  EXPECT(fc_one_hot(s, 3, 1), FC_INT64, S(3), 0, 0, 1, 0);
  fc_tensor *e = fc_empty(1, SHP(0), FC_INT64, CPU), *re = fc_one_hot(e, 5, 0);
  CHECK(re && re->ndim == 2 && re->shape[0] == 0 && re->shape[1] == 5);
  CHECK_ERR(fc_one_hot(e, -1, 0), "one_hot: cannot infer the number of classes from an empty index");
  CHECK_ERR(fc_one_hot(c, 2, 0), "one_hot: class 2 out of range for 2 classes (valid 0..1)");
  CHECK_ERR(fc_one_hot(c, 3, 1), "one_hot: class 0 out of range for 3 classes (valid 1..3)");
  CHECK_ERR(fc_one_hot(c, -1, 1), "one_hot: class 0 out of range for 2 classes (valid 1..2)");
  CHECK_ERR(fc_one_hot(c, 0, 0), "one_hot: class 2 out of range for 0 classes");
  fc_tensor *neg = MK(FC_INT64, S(1), -1);
  CHECK_ERR(fc_one_hot(neg, -1, 0), "one_hot: class -1 out of range for 0 classes");
  fc_tensor *huge = MK(FC_INT64, S(1), 9e18);
  CHECK_ERR(fc_one_hot(huge, -1, 0), "one_hot: class 9000000000000000000 is too large to infer the number of classes");
  fc_release(huge);
  CHECK_ERR(fc_one_hot(c, -2, 0), "one_hot: num_classes must be -1 (infer it) or at least 0, got -2");
  fc_tensor *f = MK(FC_FLOAT32, S(1), 1), *d8 = fc_zeros(8, SHP(1, 1, 1, 1, 1, 1, 1, 1), FC_INT64, CPU);
  CHECK_ERR(fc_one_hot(f, 3, 0), "one_hot: index tensor must be int64 (or int32), got float32");
  CHECK_ERR(fc_one_hot(d8, 3, 0), "one_hot: index of shape [1,1,1,1,1,1,1,1] has 8 dims; the result would need 9");
  REL(c, l, lt, s, e, re, neg, f, d8);
}

/* ---- flip and roll ---------------------------------------------------------------- */

TEST(flip_values) {
  fc_tensor *t = MK(FC_FLOAT64, S(2, 3), 1, 2, 3, 4, 5, 6);
  EXPECT(fc_flip(t, 1, (int[]){1}), FC_FLOAT64, S(2, 3), 0, 3, 2, 1, 6, 5, 4);
  EXPECT(fc_flip(t, 1, (int[]){-2}), FC_FLOAT64, S(2, 3), 0, 4, 5, 6, 1, 2, 3);
  EXPECT(fc_flip(t, 2, (int[]){0, 1}), FC_FLOAT64, S(2, 3), 0, 6, 5, 4, 3, 2, 1);
  EXPECT(fc_flip(t, 0, NULL), FC_FLOAT64, S(2, 3), 0, 1, 2, 3, 4, 5, 6);
  fc_tensor *tt = fc_transpose(t, 0, 1); /* [[1,4],[2,5],[3,6]] */
  EXPECT(fc_flip(tt, 1, (int[]){0}), FC_FLOAT64, S(3, 2), 0, 3, 6, 2, 5, 1, 4);
  EXPECT(fc_flip(tt, 1, (int[]){1}), FC_FLOAT64, S(3, 2), 0, 4, 1, 5, 2, 6, 3);
  int dtypes[] = {FC_FLOAT32, FC_FLOAT16, FC_INT64, FC_INT32, FC_UINT8, FC_BOOL};
  for (int k = 0; k < 6; k++) {
    fc_tensor *x = MK(dtypes[k], S(2, 2), 1, 0, 0, 0);
    EXPECT(fc_flip(x, 1, (int[]){-1}), dtypes[k], S(2, 2), 0, 0, 1, 0, 0);
    EXPECT(fc_flip(x, 2, (int[]){1, 0}), dtypes[k], S(2, 2), 0, 0, 0, 0, 1);
    fc_release(x);
  }
  fc_tensor *s = fc_scalar(4, FC_INT32, CPU);
  EXPECT0(fc_flip(s, 1, (int[]){0}), FC_INT32, 0, 4);
  fc_tensor *cube = iota(FC_FLOAT32, 3, SHP(2, 2, 2));
  EXPECT(fc_flip(cube, 2, (int[]){0, 2}), FC_FLOAT32, S(2, 2, 2), 0, 5, 4, 7, 6, 1, 0, 3, 2);
  CHECK_ERR(fc_flip(t, 2, (int[]){1, -1}), "flip: the 2nd dim is listed more than once");
  CHECK_ERR(fc_flip(t, 1, (int[]){2}), "flip: dim 2 out of range for a 2-dim tensor");
  CHECK_ERR(fc_flip(t, -1, NULL), "flip: expects a list of dims");
  CHECK_ERR(fc_flip(t, 1, NULL), "flip: expects a list of dims");
  REL(t, tt, s, cube);
}

TEST(roll_values) {
  fc_tensor *t = MK(FC_FLOAT64, S(2, 3), 1, 2, 3, 4, 5, 6);
  EXPECT(fc_roll(t, 1, (int64_t[]){1}, (int[]){1}), FC_FLOAT64, S(2, 3), 0, 3, 1, 2, 6, 4, 5);
  EXPECT(fc_roll(t, 1, (int64_t[]){-1}, (int[]){-1}), FC_FLOAT64, S(2, 3), 0, 2, 3, 1, 5, 6, 4);
  EXPECT(fc_roll(t, 1, (int64_t[]){7}, (int[]){1}), FC_FLOAT64, S(2, 3), 0, 3, 1, 2, 6, 4, 5);
  EXPECT(fc_roll(t, 1, (int64_t[]){-1}, (int[]){0}), FC_FLOAT64, S(2, 3), 0, 4, 5, 6, 1, 2, 3);
  EXPECT(fc_roll(t, 2, (int64_t[]){1, 1}, (int[]){0, 1}), FC_FLOAT64, S(2, 3), 0, 6, 4, 5, 3, 1, 2);
  EXPECT(fc_roll(t, 2, (int64_t[]){1, 1}, (int[]){1, 1}), FC_FLOAT64, S(2, 3), 0, 2, 3, 1, 5, 6, 4);
  EXPECT(fc_roll(t, 1, (int64_t[]){3}, (int[]){1}), FC_FLOAT64, S(2, 3), 0, 1, 2, 3, 4, 5, 6);
  /* flattened */
  EXPECT(fc_roll(t, 0, (int64_t[]){2}, NULL), FC_FLOAT64, S(2, 3), 0, 5, 6, 1, 2, 3, 4);
  EXPECT(fc_roll(t, 0, (int64_t[]){-13}, NULL), FC_FLOAT64, S(2, 3), 0, 2, 3, 4, 5, 6, 1);
  fc_tensor *tt = fc_transpose(t, 0, 1); /* [[1,4],[2,5],[3,6]], flattened 1,4,2,5,3,6 */
  EXPECT(fc_roll(tt, 0, (int64_t[]){1}, NULL), FC_FLOAT64, S(3, 2), 0, 6, 1, 4, 2, 5, 3);
  EXPECT(fc_roll(tt, 1, (int64_t[]){1}, (int[]){0}), FC_FLOAT64, S(3, 2), 0, 3, 6, 1, 4, 2, 5);
  int dtypes[] = {FC_FLOAT32, FC_BFLOAT16, FC_INT64, FC_INT32, FC_UINT8, FC_BOOL};
  for (int k = 0; k < 6; k++) {
    fc_tensor *x = MK(dtypes[k], S(4), 1, 0, 0, 1);
    EXPECT(fc_roll(x, 1, (int64_t[]){1}, (int[]){0}), dtypes[k], S(4), 0, 1, 1, 0, 0);
    fc_release(x);
  }
  fc_tensor *s = fc_scalar(4, FC_INT32, CPU), *e = fc_empty(2, SHP(0, 3), FC_FLOAT32, CPU);
  EXPECT0(fc_roll(s, 1, (int64_t[]){3}, (int[]){0}), FC_INT32, 0, 4);
  EXPECT0(fc_roll(s, 0, (int64_t[]){3}, NULL), FC_INT32, 0, 4);
  fc_tensor *re = fc_roll(e, 1, (int64_t[]){1}, (int[]){0});
  CHECK(re && re->shape[0] == 0 && re->shape[1] == 3);
  fc_release(re);
  CHECK_ERR(fc_roll(t, 1, (int64_t[]){1}, (int[]){2}), "roll: dim 2 out of range for a 2-dim tensor");
  CHECK_ERR(fc_roll(t, 0, NULL, NULL), "roll: expects shifts");
  CHECK_ERR(fc_roll(t, 1, (int64_t[]){1}, NULL), "roll: expects shifts");
  REL(t, tt, s, e);
}

static void reorder_large_once(void) {
  /* flip: a reversed last dim, a reversed outer dim */
  fc_tensor *big = fc_randn(2, SHP(300, 257), FC_FLOAT32, CPU);
  double *vb = tensor_values(big), *want = malloc(sizeof(double) * 300 * 257);
  for (int r = 0; r < 300; r++)
    for (int c = 0; c < 257; c++) want[r * 257 + c] = vb[r * 257 + 256 - c];
  EXPECT_VALS(fc_flip(big, 1, (int[]){1}), want, 300 * 257);
  for (int r = 0; r < 300; r++)
    for (int c = 0; c < 257; c++) want[r * 257 + c] = vb[(299 - r) * 257 + c];
  EXPECT_VALS(fc_flip(big, 1, (int[]){0}), want, 300 * 257);
  /* roll: by rows, both dims at once, and from a transposed input */
  for (int r = 0; r < 300; r++)
    for (int c = 0; c < 257; c++) want[r * 257 + c] = vb[((r + 300 - 7) % 300) * 257 + (c + 257 - 3) % 257];
  EXPECT_VALS(fc_roll(big, 2, (int64_t[]){3, -293}, (int[]){1, 0}), want, 300 * 257);
  fc_tensor *bt = fc_transpose(big, 0, 1); /* [257,300] */
  for (int c = 0; c < 257; c++)
    for (int r = 0; r < 300; r++) want[c * 300 + r] = vb[((r + 300 - 1) % 300) * 257 + c];
  EXPECT_VALS(fc_roll(bt, 1, (int64_t[]){1}, (int[]){1}), want, 300 * 257);
  /* few long rows: each row's copies split across threads; and flattened */
  fc_tensor *wide = fc_reshape(big, 2, SHP(2, 300 * 257 / 2));
  int64_t half = 300 * 257 / 2;
  for (int64_t i = 0; i < 2 * half; i++) want[i] = vb[(i / half) * half + (i % half + half - 5) % half];
  EXPECT_VALS(fc_roll(wide, 1, (int64_t[]){5}, (int[]){1}), want, 300 * 257);
  for (int64_t i = 0; i < 2 * half; i++) want[i] = vb[(i + 2 * half - 1) % (2 * half)];
  EXPECT_VALS(fc_roll(big, 0, (int64_t[]){1}, NULL), want, 300 * 257);
  free(vb), free(want);
  REL(big, bt, wide);
}
TEST(reorder_large) { with_threads(reorder_large_once); }

/* ---- gradients ------------------------------------------------------------------- */

typedef fc_tensor *(*fn1)(fc_tensor *);
/* Backward of f at a random 3x4 float64 x against central differences. */
static void gradcheck1(const char *name, fn1 f) {
  fc_tensor *x = fc_randn(2, SHP(3, 4), FC_FLOAT64, CPU);
  check_gradients(__FILE__, __LINE__, name, apply_one, 1, &x, (void *)f, 1e-6, 1e-6, 1);
  fc_release(x);
}

static fc_tensor *f_cat(fc_tensor *x) { return fc_cat(3, LIST(x, x, x), 1); }
static fc_tensor *f_cat9(fc_tensor *x) { /* a tree of nodes, with constants and an empty mixed in */
  fc_tensor *c = fc_ones(2, SHP(1, 4), FC_FLOAT32, CPU), *e = fc_empty(1, SHP(0), FC_FLOAT64, CPU);
  fc_tensor *xt = fc_slice(x, 0, 0, 3, 2), *r = fc_cat(9, LIST(x, c, x, e, xt, x, c, x, xt), 0);
  REL(c, e, xt);
  return r;
}
static fc_tensor *f_stack(fc_tensor *x) {
  fc_tensor *xt = fc_flip(x, 1, (int[]){0});
  fc_tensor *r = fc_stack(2, LIST(x, xt), 1);
  fc_release(xt);
  return r;
}
static fc_tensor *f_isel(fc_tensor *x) {
  fc_tensor *i = MK(FC_INT64, S(4), 3, 1, 3, 2), *r = fc_index_select(x, 0, i, 1);
  fc_release(i);
  return r;
}
static fc_tensor *f_isel_last(fc_tensor *x) {
  fc_tensor *i = MK(FC_INT32, S(5), 3, 3, 0, 1, 3), *xt = fc_transpose(x, 0, 1), *r = fc_index_select(xt, 0, i, 0);
  REL(i, xt);
  return r;
}
static fc_tensor *f_gather(fc_tensor *x) {
  fc_tensor *i = MK(FC_INT64, S(3, 2), 3, 3, 0, 1, 2, 2), *r = fc_gather(x, 1, i, 0);
  fc_release(i);
  return r;
}
static fc_tensor *f_gather0(fc_tensor *x) {
  fc_tensor *i = MK(FC_INT64, S(4, 2), 1, 2, 2, 2, 3, 3, 1, 1), *r = fc_gather(x, 0, i, 1);
  fc_release(i);
  return r;
}
static fc_tensor *f_scatter_add(fc_tensor *x) {
  fc_tensor *i = MK(FC_INT64, S(1, 4), 0, 2, 1, 0), *s = fc_slice(x, 0, 1, 2, 1);
  fc_tensor *r = fc_scatter_add(x, 0, i, s, 0);
  REL(i, s);
  return r;
}
static fc_tensor *f_scatter(fc_tensor *x) { /* both inputs: overwritten places get nothing */
  fc_tensor *i = MK(FC_INT64, S(2, 2), 1, 3, 0, 3), *s = fc_slice(x, 1, 1, 3, 1);
  fc_tensor *s2 = fc_mul(s, s), *r = fc_scatter(x, 1, i, s2, 0);
  REL(i, s, s2);
  return r;
}
static fc_tensor *f_scatter_src(fc_tensor *x) { /* src larger than the index */
  fc_tensor *z = fc_zeros(2, SHP(3, 5), FC_FLOAT64, CPU), *i = MK(FC_INT64, S(2, 3), 4, 0, 2, 1, 1, 3);
  fc_tensor *r = fc_scatter_add(z, 1, i, x, 0);
  REL(z, i);
  return r;
}
static fc_tensor *f_scatter_scalar(fc_tensor *x) { /* a 0-dim src requiring grad */
  fc_tensor *s = fc_sum(x, 0, NULL, 0), *z = fc_zeros(2, SHP(2, 2), FC_FLOAT64, CPU);
  fc_tensor *i = MK(FC_INT64, S(2, 1), 0, 0), *r = fc_scatter_add(z, 1, i, s, 0);
  REL(s, z, i);
  return r;
}
static fc_tensor *f_mselect(fc_tensor *x) {
  fc_tensor *m = MK(FC_BOOL, S(4), 1, 0, 0, 1), *r = fc_masked_select(x, m);
  fc_release(m);
  return r;
}
static fc_tensor *f_mselect_bcast(fc_tensor *x) { /* the mask broadcasts x to [2,3,4] */
  fc_tensor *m = MK(FC_BOOL, S(2, 1, 4), 1, 0, 1, 1, 0, 1, 1, 0), *r = fc_masked_select(x, m);
  fc_release(m);
  return r;
}
static fc_tensor *f_mfill(fc_tensor *x) {
  fc_tensor *m = MK(FC_BOOL, S(3, 1), 0, 1, 0), *r = fc_masked_fill(x, m, 2);
  fc_release(m);
  return r;
}
static fc_tensor *f_flip(fc_tensor *x) { return fc_flip(x, 2, (int[]){1, 0}); }
static fc_tensor *f_roll(fc_tensor *x) { return fc_roll(x, 2, (int64_t[]){1, -5}, (int[]){1, 0}); }
static fc_tensor *f_roll_flat(fc_tensor *x) {
  fc_tensor *xt = fc_transpose(x, 0, 1), *r = fc_roll(xt, 0, (int64_t[]){5}, NULL);
  fc_release(xt);
  return r;
}

TEST(gradients) {
  fc_manual_seed(9);
  gradcheck1("cat", f_cat);
  gradcheck1("cat of 9", f_cat9);
  gradcheck1("stack", f_stack);
  gradcheck1("index_select", f_isel);
  gradcheck1("index_select last dim", f_isel_last);
  gradcheck1("gather", f_gather);
  gradcheck1("gather dim 0", f_gather0);
  gradcheck1("scatter_add", f_scatter_add);
  gradcheck1("scatter", f_scatter);
  gradcheck1("scatter_add src", f_scatter_src);
  gradcheck1("scatter_add scalar", f_scatter_scalar);
  gradcheck1("masked_select", f_mselect);
  gradcheck1("masked_select broadcast", f_mselect_bcast);
  gradcheck1("masked_fill", f_mfill);
  gradcheck1("flip", f_flip);
  gradcheck1("roll", f_roll);
  gradcheck1("roll flattened", f_roll_flat);
}

TEST(gradient_details) {
  /* the caller's index is never changed, and changing it later is caught */
  fc_tensor *x = fc_randn(2, SHP(3, 2), FC_FLOAT32, CPU), *i = MK(FC_INT64, S(2), 3, 1);
  fc_set_requires_grad(x, 1);
  fc_tensor *y = fc_index_select(x, 0, i, 1);
  EXPECT(fc_clone(i), FC_INT64, S(2), 0, 3, 1);
  fc_tensor *one = fc_scalar(1, FC_INT64, CPU);
  fc_add_(i, one);
  fc_tensor *g = fc_ones(2, SHP(2, 2), FC_FLOAT32, CPU);
  CHECK_ERR(fc_backward(y, g, 0), "a tensor saved by index_select was modified in place");
  /* a float16 input gets a float16 gradient, summed over repeats */
  fc_tensor *h = MK(FC_FLOAT16, S(3), 1, 2, 3), *ri = MK(FC_INT64, S(4), 2, 2, 0, 2);
  fc_set_requires_grad(h, 1);
  fc_tensor *hy = fc_index_select(h, 0, ri, 0), *hg = fc_ones(1, SHP(4), FC_FLOAT16, CPU);
  CHECK(fc_backward(hy, hg, 0) == 0);
  EXPECT(fc_get_grad(h), FC_FLOAT16, S(3), 0, 1, 0, 3);
  /* cat with mixed dtypes: each input gets a gradient of its own dtype */
  fc_tensor *a = fc_ones(1, SHP(2), FC_FLOAT32, CPU), *b = fc_ones(1, SHP(3), FC_FLOAT64, CPU);
  fc_set_requires_grad(a, 1), fc_set_requires_grad(b, 1);
  fc_tensor *c = fc_cat(2, LIST(a, b), 0), *cg = MK(FC_FLOAT64, S(5), 1, 2, 3, 4, 5);
  CHECK(c && c->dtype == FC_FLOAT64 && strcmp(fc_grad_fn_name(c), "cat") == 0);
  CHECK(fc_backward(c, cg, 0) == 0);
  EXPECT(fc_get_grad(a), FC_FLOAT32, S(2), 0, 1, 2);
  EXPECT(fc_get_grad(b), FC_FLOAT64, S(3), 0, 3, 4, 5);
  /* integer outputs record nothing; no grad mode records nothing */
  fc_tensor *n = fc_nonzero(x, 0);
  CHECK(n && !n->requires_grad);
  fc_set_grad_enabled(0);
  fc_tensor *f = fc_flip(x, 1, (int[]){0});
  CHECK(f && !f->requires_grad);
  fc_set_grad_enabled(1);
  REL(x, i, y, one, g, h, ri, hy, hg, a, b, c, cg, n, f);
}

int main(void) {
  RUN(cat_values);
  RUN(cat_dtypes_and_empties);
  RUN(cat_large);
  RUN(cat_errors);
  RUN(stack_values_and_errors);
  RUN(index_select_values);
  RUN(index_select_dtypes_and_large);
  RUN(index_select_errors);
  RUN(gather_values);
  RUN(gather_scatter_large);
  RUN(scatter_values);
  RUN(gather_scatter_errors);
  RUN(masked_fill_values);
  RUN(masked_large);
  RUN(masked_select_values);
  RUN(mask_errors);
  RUN(nonzero_values);
  RUN(one_hot_values_and_errors);
  RUN(flip_values);
  RUN(roll_values);
  RUN(reorder_large);
  RUN(gradients);
  RUN(gradient_details);
  return harness_report();
}
