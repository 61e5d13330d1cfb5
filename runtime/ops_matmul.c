/* ops_matmul.c — matmul (torch.matmul semantics), addmm, dot and outer
 * through OpenBLAS, with their backward.
 *
 * A matrix operand goes to BLAS as it lies in memory whenever it is
 * row-major or column-major with some leading dimension (a transposed or
 * sliced view needs no copy); only other layouts are made contiguous. */
#include "internal.h"
#include <cblas.h>
#include <stdlib.h>

/* One matrix as BLAS sees it. */
typedef struct mat { const char *p; int64_t rows, cols, rs, cs; } mat;

/* Row-major with ld >= cols, or column-major (transposed) with ld >= rows. */
static bool blas_layout(const mat *m, CBLAS_TRANSPOSE *trans, int64_t *ld) {
  if (m->cs == 1 && m->rs >= (m->cols > 1 ? m->cols : 1)) {
    *trans = CblasNoTrans;
    *ld = m->rs > 1 ? m->rs : (m->cols > 1 ? m->cols : 1);
    return true;
  }
  if (m->rs == 1 && m->cs >= (m->rows > 1 ? m->rows : 1)) {
    *trans = CblasTrans;
    *ld = m->cs > 1 ? m->cs : (m->rows > 1 ? m->rows : 1);
    return true;
  }
  return false;
}

/* C[M,N] = alpha * A[M,K] B[K,N] + beta * C, C row-major with ldc. */
static void gemm(int dtype, const mat *a, const mat *b, char *c, int64_t ldc, double alpha, double beta) {
  CBLAS_TRANSPOSE ta = CblasNoTrans, tb = CblasNoTrans;
  int64_t lda = 1, ldb = 1, M = a->rows, N = b->cols, K = a->cols;
  blas_layout(a, &ta, &lda);
  blas_layout(b, &tb, &ldb);
  if (M == 0 || N == 0) return;
  if (dtype == FC_FLOAT32)
    cblas_sgemm(CblasRowMajor, ta, tb, (int)M, (int)N, (int)K, (float)alpha, (const float *)a->p, (int)lda,
                (const float *)b->p, (int)ldb, (float)beta, (float *)c, (int)ldc);
  else
    cblas_dgemm(CblasRowMajor, ta, tb, (int)M, (int)N, (int)K, alpha, (const double *)a->p, (int)lda,
                (const double *)b->p, (int)ldb, beta, (double *)c, (int)ldc);
}

/* Integer matmul: exact int64 arithmetic, plain loops. */
static void gemm_int(const mat *a, const mat *b, char *c, int64_t ldc, int dtype) {
  int es = fc_dtype_size(dtype);
  for (int64_t i = 0; i < a->rows; i++)
    for (int64_t j = 0; j < b->cols; j++) {
      uint64_t acc = 0;
      for (int64_t k = 0; k < a->cols; k++) {
        int64_t x = (int64_t)load_as_double(a->p + (i * a->rs + k * a->cs) * es, dtype);
        int64_t y = (int64_t)load_as_double(b->p + (k * b->rs + j * b->cs) * es, dtype);
        acc += (uint64_t)x * (uint64_t)y;
      }
      store_from_double(c + (i * ldc + j) * es, dtype, (double)(int64_t)acc);
    }
}

/* A copy in a layout BLAS takes, when the view's strides are neither. */
static fc_tensor *blas_ready(fc_tensor *t) {
  int n = t->ndim;
  mat m = {NULL, t->shape[n - 2], t->shape[n - 1], t->stride[n - 2], t->stride[n - 1]};
  CBLAS_TRANSPOSE tr;
  int64_t ld;
  return blas_layout(&m, &tr, &ld) ? fc_retain(t) : fc_clone(t);
}

static int matmul_dtype(const fc_tensor *a, const fc_tensor *b) {
  if (a->dtype != b->dtype)
    FAIL_INT("matmul: dtypes %s and %s differ; convert one first", DTYPE(a), DTYPE(b));
  if (a->dtype == FC_BOOL) FAIL_INT("matmul: not supported for bool tensors");
  return a->dtype;
}

/* Batched product of a [..., n, k] and b [..., k, m] (both >= 2-D, one
 * compute dtype, BLAS-ready last two dims) into a new [batch..., n, m]. */
static fc_tensor *batched(fc_tensor *a, fc_tensor *b, int dtype) {
  int nb, na = a->ndim - 2, nbb = b->ndim - 2;
  int64_t batch[FC_MAX_DIMS], shape[FC_MAX_DIMS];
  if (broadcast_shapes("matmul", na, a->shape, nbb, b->shape, &nb, batch) < 0) return NULL;
  if (nb + 2 > FC_MAX_DIMS) FAIL("matmul: result would have more than %d dims", FC_MAX_DIMS);
  int64_t n = a->shape[a->ndim - 2], k = a->shape[a->ndim - 1], m = b->shape[b->ndim - 1];
  memcpy(shape, batch, sizeof(int64_t) * (size_t)nb);
  shape[nb] = n;
  shape[nb + 1] = m;
  /* with k = 0 the product is all zeros; otherwise GEMM writes every element */
  fc_tensor *out = k == 0 ? fc_zeros(nb + 2, shape, dtype, a->device) : fc_empty(nb + 2, shape, dtype, a->device);
  if (!out || out->numel == 0 || k == 0) return out;
  int es = fc_dtype_size(dtype);
  int64_t count = shape_numel(nb, batch);
  /* b shared by every batch and a contiguous: one GEMM with the batch folded into M */
  if (nbb == 0 && fc_is_contiguous(a) && na > 0) {
    mat A = {elem_ptr(a), count * n, k, k, 1};
    mat B = {elem_ptr(b), k, m, b->stride[b->ndim - 2], b->stride[b->ndim - 1]};
    if (dtype == FC_FLOAT32 || dtype == FC_FLOAT64) gemm(dtype, &A, &B, elem_ptr(out), m, 1, 0);
    else gemm_int(&A, &B, elem_ptr(out), m, dtype);
    return out;
  }
  for (int64_t i = 0; i < count; i++) {
    int64_t rest = i, aoff = a->offset, boff = b->offset;
    for (int d = nb - 1; d >= 0; d--) {
      int64_t idx = rest % batch[d];
      rest /= batch[d];
      int da = d - (nb - na), db = d - (nb - nbb);
      if (da >= 0 && a->shape[da] != 1) aoff += idx * a->stride[da];
      if (db >= 0 && b->shape[db] != 1) boff += idx * b->stride[db];
    }
    mat A = {(char *)a->storage->data + aoff * es, n, k, a->stride[a->ndim - 2], a->stride[a->ndim - 1]};
    mat B = {(char *)b->storage->data + boff * es, k, m, b->stride[b->ndim - 2], b->stride[b->ndim - 1]};
    char *C = elem_ptr(out) + i * n * m * es;
    if (dtype == FC_FLOAT32 || dtype == FC_FLOAT64) gemm(dtype, &A, &B, C, m, 1, 0);
    else gemm_int(&A, &B, C, m, dtype);
  }
  return out;
}

static int matmul_backward(fc_node *n, fc_tensor *g, fc_tensor **gi);

/* Runs the product on promoted (>= 2-D) operands in the compute dtype. */
static fc_tensor *product(fc_tensor *a2, fc_tensor *b2, int dtype) {
  int compute = is_half_dtype(dtype) ? FC_FLOAT32 : dtype;
  fc_tensor *ca = fc_to_dtype(a2, compute), *cb = ca ? fc_to_dtype(b2, compute) : NULL;
  fc_tensor *ra = cb ? blas_ready(ca) : NULL, *rb = ra ? blas_ready(cb) : NULL;
  fc_tensor *out = rb ? batched(ra, rb, compute) : NULL;
  fc_release(ca), fc_release(cb), fc_release(ra), fc_release(rb);
  if (out && compute != dtype) {
    fc_tensor *h = fc_to_dtype(out, dtype);
    fc_release(out);
    out = h;
  }
  return out;
}

fc_tensor *fc_matmul(fc_tensor *a, fc_tensor *b) {
  if (check_same_device("matmul", 2, (const fc_tensor *const[]){a, b}) < 0) return NULL;
  if (a->ndim == 0 || b->ndim == 0)
    FAIL("matmul: both arguments need at least 1 dim, got shapes %s and %s", SHAPE(a), SHAPE(b));
  int dtype = matmul_dtype(a, b);
  if (dtype < 0) return NULL;
  int64_t ka = a->shape[a->ndim - 1], kb = b->shape[b->ndim == 1 ? 0 : b->ndim - 2];
  if (ka != kb)
    FAIL("matmul: shapes %s and %s do not match (%lld != %lld)", SHAPE(a), SHAPE(b), (long long)ka,
         (long long)kb);
  int prev = grad_mode_push(false);
  fc_tensor *a2 = a->ndim == 1 ? fc_unsqueeze(a, 0) : fc_retain(a);
  fc_tensor *b2 = b->ndim == 1 ? fc_unsqueeze(b, 1) : fc_retain(b);
  fc_tensor *out = a2 && b2 ? product(a2, b2, dtype) : NULL;
  fc_release(a2), fc_release(b2);
  /* drop the dims a 1-D operand was given */
  if (out && (a->ndim == 1 || b->ndim == 1)) {
    fc_tensor *s = b->ndim == 1 ? fc_squeeze(out, -1) : fc_retain(out);
    fc_tensor *s2 = s && a->ndim == 1 ? fc_squeeze(s, s->ndim >= 1 ? -1 - (b->ndim == 1 ? 0 : 1) : 0) : fc_retain(s);
    fc_release(out), fc_release(s);
    out = s2 ? fc_contiguous(s2) : NULL;
    fc_release(s2);
  }
  grad_mode_pop(prev);
  if (out && is_float_dtype(dtype) && grad_needed(2, (fc_tensor *const[]){a, b})) {
    fc_node *n = record("matmul", matmul_backward, out, 2, (fc_tensor *const[]){a, b});
    if (!n) {
      fc_release(out);
      return NULL;
    }
    node_save(n, a);
    node_save(n, b);
  }
  return out;
}

/* ---- gradient ------------------------------------------------------------
 * With a, b promoted to >= 2-D and g viewed as their product's shape:
 * da = g b^T, db = a^T g; the engine sums broadcast batch dims away. */
static fc_tensor *mT(fc_tensor *t) { return fc_transpose(t, -1, -2); }

static int matmul_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  fc_tensor *a = n->saved[0], *b = n->saved[1];
  fc_tensor *a2 = a->ndim == 1 ? fc_unsqueeze(a, 0) : fc_retain(a);
  fc_tensor *b2 = b->ndim == 1 ? fc_unsqueeze(b, 1) : fc_retain(b);
  fc_tensor *g2 = fc_retain(g);
  if (a->ndim == 1 && g2) { /* restore the row dim a lost */
    fc_tensor *u = fc_unsqueeze(g2, b->ndim == 1 ? 0 : g2->ndim - 1);
    fc_release(g2);
    g2 = u;
  }
  if (b->ndim == 1 && g2) {
    fc_tensor *u = fc_unsqueeze(g2, g2->ndim);
    fc_release(g2);
    g2 = u;
  }
  int rc = a2 && b2 && g2 ? 0 : -1;
  if (rc == 0 && (n->next[0] || n->leaf[0])) {
    fc_tensor *bt = mT(b2), *ga = bt ? fc_matmul(g2, bt) : NULL;
    fc_release(bt);
    gi[0] = ga && a->ndim == 1 ? fc_squeeze(ga, -2) : fc_retain(ga);
    fc_release(ga);
    if (!gi[0]) rc = -1;
  }
  if (rc == 0 && (n->next[1] || n->leaf[1])) {
    fc_tensor *at = mT(a2), *gb = at ? fc_matmul(at, g2) : NULL;
    fc_release(at);
    gi[1] = gb && b->ndim == 1 ? fc_squeeze(gb, -1) : fc_retain(gb);
    fc_release(gb);
    if (!gi[1]) rc = -1;
  }
  fc_release(a2), fc_release(b2), fc_release(g2);
  return rc;
}

/* ---- composites ------------------------------------------------------------ */

fc_tensor *fc_dot(fc_tensor *a, fc_tensor *b) {
  if (check_same_device("dot", 2, (const fc_tensor *const[]){a, b}) < 0) return NULL;
  if (a->ndim != 1 || b->ndim != 1 || a->numel != b->numel)
    FAIL("dot: expects two 1-D tensors of one size, got shapes %s and %s", SHAPE(a), SHAPE(b));
  return fc_matmul(a, b);
}

fc_tensor *fc_outer(fc_tensor *a, fc_tensor *b) {
  if (check_same_device("outer", 2, (const fc_tensor *const[]){a, b}) < 0) return NULL;
  if (a->ndim != 1 || b->ndim != 1)
    FAIL("outer: expects two 1-D tensors, got shapes %s and %s", SHAPE(a), SHAPE(b));
  fc_tensor *col = fc_unsqueeze(a, 1);
  fc_tensor *r = col ? fc_mul(col, b) : NULL;
  fc_release(col);
  return r;
}

/* beta * c + alpha * (a @ b) for 2-D a, b; c broadcasts to the result. */
fc_tensor *fc_addmm(fc_tensor *c, fc_tensor *a, fc_tensor *b, double beta, double alpha) {
  if (check_same_device("addmm", 3, (const fc_tensor *const[]){c, a, b}) < 0) return NULL;
  if (a->ndim != 2 || b->ndim != 2)
    FAIL("addmm: expects 2-D matrices, got shapes %s and %s", SHAPE(a), SHAPE(b));
  fc_tensor *ab = fc_matmul(a, b);
  if (!ab) return NULL;
  fc_tensor *sab = alpha == 1 ? fc_retain(ab) : NULL, *sc = beta == 1 ? fc_retain(c) : NULL;
  if (!sab) {
    fc_tensor *s = fc_scalar(alpha, ab->dtype, ab->device);
    sab = s ? fc_mul(ab, s) : NULL;
    fc_release(s);
  }
  if (!sc) {
    fc_tensor *s = fc_scalar(beta, c->dtype, c->device);
    sc = s ? fc_mul(c, s) : NULL;
    fc_release(s);
  }
  fc_tensor *r = sab && sc ? fc_add(sc, sab) : NULL;
  if (r && (r->ndim != 2 || r->shape[0] != ab->shape[0] || r->shape[1] != ab->shape[1])) {
    fc_set_error("addmm: c of shape %s does not broadcast to the product's shape %s", SHAPE(c), SHAPE(ab));
    fc_release(r);
    r = NULL;
  }
  fc_release(ab), fc_release(sab), fc_release(sc);
  return r;
}
