/* ops_matmul.c — matmul (torch.matmul semantics), addmm, dot and outer
 * through OpenBLAS, with their backward.
 *
 * Every product is alpha * a @ b + beta * c on operands promoted to
 * [batch..., rows, cols] (a 1-D a is one row, a 1-D b one column) into a
 * fresh contiguous output. A matrix goes to BLAS as it lies in memory when it
 * is row-major or column-major with some leading dimension, so transposed and
 * sliced views need no copy; only other layouts are made contiguous.
 * float32/float64 run on BLAS, float16/bfloat16 in float32, integers in exact
 * (wrapping) int64 loops. */
#include "backend.h"
#include <cblas.h>
#include <limits.h>
#include <stdlib.h>

/* One matrix: element (i, j) lies at p + (i * rs + j * cs) elements. */
typedef struct mat { char *p; int64_t rows, cols, rs, cs; } mat;

/* How BLAS reads a matrix: as stored (row-major, leading dim ld) or as the
 * transpose of a row-major one. */
typedef struct blas_view { CBLAS_TRANSPOSE trans; int64_t ld; } blas_view;

static int64_t at_least_1(int64_t x) { return x > 1 ? x : 1; }

/* Size-1 dims have no meaningful stride, so only real dims constrain. */
static bool blas_layout(const mat *m, blas_view *v) {
  int64_t r = m->rows, c = m->cols;
  if (r > INT_MAX || c > INT_MAX) return false;
  if ((c <= 1 || m->cs == 1) && (r <= 1 || m->rs >= at_least_1(c))) {
    *v = (blas_view){CblasNoTrans, r <= 1 ? at_least_1(c) : m->rs};
  } else if ((r <= 1 || m->rs == 1) && (c <= 1 || m->cs >= at_least_1(r))) {
    *v = (blas_view){CblasTrans, c <= 1 ? at_least_1(r) : m->cs};
  } else {
    return false;
  }
  return v->ld <= INT_MAX;
}

/* ---- kernels on one matrix -------------------------------------------------
 * c[M,N] (row-major, ldc) = alpha * a @ b + beta * c; with beta == 0 c is
 * never read (it may be uninitialised). */

static void scale_rows(int dtype, char *c, int64_t M, int64_t N, int64_t ldc, double beta) {
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) {
      if (dtype == FC_FLOAT32) {
        float *p = (float *)c + i * ldc + j;
        *p = beta == 0 ? 0.0f : (float)beta * *p;
      } else {
        double *p = (double *)c + i * ldc + j;
        *p = beta == 0 ? 0.0 : beta * *p;
      }
    }
}

/* BLAS-ready a and b (blas_layout holds). Rows or columns of one become
 * gemv or dot: OpenBLAS's gemm kernels pack both operands even then. */
static void blas_mm(int dtype, const mat *a, const mat *b, char *c, int64_t ldc, double alpha,
                    double beta) {
  int M = (int)a->rows, N = (int)b->cols, K = (int)a->cols;
  if (M == 0 || N == 0) return;
  if (K == 0) {
    scale_rows(dtype, c, M, N, ldc, beta);
    return;
  }
  blas_view va, vb;
  blas_layout(a, &va);
  blas_layout(b, &vb);
  bool f32 = dtype == FC_FLOAT32;
  /* x is a's row (M == 1) or b's column (N == 1); one stride walks it */
  int inca = K > 1 ? (int)a->cs : 1, incb = K > 1 ? (int)b->rs : 1;
  if (M == 1 && N == 1) {
    double d = f32 ? cblas_sdot(K, (const float *)a->p, inca, (const float *)b->p, incb)
                   : cblas_ddot(K, (const double *)a->p, inca, (const double *)b->p, incb);
    double old = beta == 0 ? 0 : beta * (f32 ? *(float *)c : *(double *)c);
    if (f32) *(float *)c = (float)(alpha * d + old);
    else *(double *)c = alpha * d + old;
    return;
  }
  if (M == 1 || N == 1) {
    /* y = op(stored) x: a's rows against b's column, or b's columns against a's row */
    bool col = N == 1;
    const mat *m = col ? a : b;
    const blas_view *v = col ? &va : &vb;
    int rows = (int)m->rows, cols = (int)m->cols, inc = col ? incb : inca, len = col ? M : N;
    int64_t incy = col ? ldc : 1;
    /* transposed view: the storage is [cols, rows] row-major */
    bool stored_t = v->trans == CblasTrans;
    CBLAS_TRANSPOSE t = (stored_t != !col) ? CblasTrans : CblasNoTrans;
    int sr = stored_t ? cols : rows, sc = stored_t ? rows : cols;
    if (beta == 0) scale_rows(dtype, c, col ? len : 1, col ? 1 : len, ldc, 0); /* no NaN from garbage */
    const char *x = col ? b->p : a->p;
    if (f32)
      cblas_sgemv(CblasRowMajor, t, sr, sc, (float)alpha, (const float *)m->p, (int)v->ld,
                  (const float *)x, inc, (float)beta, (float *)c, (int)incy);
    else
      cblas_dgemv(CblasRowMajor, t, sr, sc, alpha, (const double *)m->p, (int)v->ld,
                  (const double *)x, inc, beta, (double *)c, (int)incy);
    return;
  }
  if (f32)
    cblas_sgemm(CblasRowMajor, va.trans, vb.trans, M, N, K, (float)alpha, (const float *)a->p,
                (int)va.ld, (const float *)b->p, (int)vb.ld, (float)beta, (float *)c, (int)ldc);
  else
    cblas_dgemm(CblasRowMajor, va.trans, vb.trans, M, N, K, alpha, (const double *)a->p,
                (int)va.ld, (const double *)b->p, (int)vb.ld, beta, (double *)c, (int)ldc);
}

static int64_t load_int(const char *p, int dtype) {
  switch (dtype) {
  case FC_INT64: return *(const int64_t *)p;
  case FC_INT32: return *(const int32_t *)p;
  default: return *(const uint8_t *)p;
  }
}

static void store_int(char *p, int dtype, uint64_t v) {
  switch (dtype) {
  case FC_INT64: *(int64_t *)p = (int64_t)v; break;
  case FC_INT32: *(int32_t *)p = (int32_t)(uint32_t)v; break;
  default: *(uint8_t *)p = (uint8_t)v; break;
  }
}

/* Integers: exact products in int64 that wrap on overflow like PyTorch
 * (unsigned arithmetic, so the wrap is defined). Any strides. */
static void int_mm(int dtype, const mat *a, const mat *b, char *c, int64_t ldc, int64_t alpha,
                   int64_t beta) {
  int64_t es = fc_dtype_size(dtype);
  for (int64_t i = 0; i < a->rows; i++)
    for (int64_t j = 0; j < b->cols; j++) {
      uint64_t acc = 0;
      for (int64_t k = 0; k < a->cols; k++)
        acc += (uint64_t)load_int(a->p + (i * a->rs + k * a->cs) * es, dtype) *
               (uint64_t)load_int(b->p + (k * b->rs + j * b->cs) * es, dtype);
      char *pc = c + (i * ldc + j) * es;
      uint64_t old = beta == 0 ? 0 : (uint64_t)beta * (uint64_t)load_int(pc, dtype);
      store_int(pc, dtype, (uint64_t)alpha * acc + old);
    }
}

/* ---- batches ---------------------------------------------------------------- */

/* The matrix of a >= 1-D operand: a 1-D left operand is one row, a 1-D right
 * operand one column. Its batch dims are t's leading ndim - 2. */
static mat matrix_of(const fc_tensor *t, bool left) {
  int n = t->ndim;
  if (n == 1)
    return left ? (mat){elem_ptr(t), 1, t->shape[0], t->shape[0] * t->stride[0], t->stride[0]}
                : (mat){elem_ptr(t), t->shape[0], 1, t->stride[0], 1};
  return (mat){elem_ptr(t), t->shape[n - 2], t->shape[n - 1], t->stride[n - 2], t->stride[n - 1]};
}

static int batch_dims(const fc_tensor *t) { return t->ndim > 2 ? t->ndim - 2 : 0; }

/* Element strides of a and b along the broadcast batch (0 where one
 * broadcasts), so batch i's matrices sit at fixed offsets. */
typedef struct batch_plan {
  int nb;
  int64_t count, shape[FC_MAX_DIMS], astride[FC_MAX_DIMS], bstride[FC_MAX_DIMS];
} batch_plan;

static void plan_batch(batch_plan *p, const fc_tensor *a, const fc_tensor *b, int nb,
                       const int64_t *batch) {
  int na = batch_dims(a), nbb = batch_dims(b);
  p->nb = nb;
  p->count = shape_numel(nb, batch);
  for (int d = 0; d < nb; d++) {
    int da = d - (nb - na), db = d - (nb - nbb);
    p->shape[d] = batch[d];
    p->astride[d] = da >= 0 && a->shape[da] != 1 ? a->stride[da] : 0;
    p->bstride[d] = db >= 0 && b->shape[db] != 1 ? b->stride[db] : 0;
  }
}

static void batch_offsets(const batch_plan *p, int64_t i, int64_t *ao, int64_t *bo) {
  *ao = *bo = 0;
  for (int d = p->nb - 1; d >= 0 && i > 0; d--) {
    int64_t idx = i % p->shape[d];
    i /= p->shape[d];
    *ao += idx * p->astride[d];
    *bo += idx * p->bstride[d];
  }
}

/* When b is one matrix for the whole batch and a's batch and row dims
 * collapse into one strided dim, the batch folds into M: a [B,n,k] @ [k,m]
 * is a single [B*n,k] @ [k,m] GEMM. */
static bool fold_batch(const batch_plan *p, const mat *a, mat *folded) {
  if (p->count <= 1) return false;
  for (int d = 0; d < p->nb; d++)
    if (p->bstride[d] != 0 && p->shape[d] != 1) return false;
  int64_t stride = 0, expect = -1;
  for (int d = 0; d <= p->nb; d++) { /* the batch dims, then the rows */
    int64_t size = d < p->nb ? p->shape[d] : a->rows, st = d < p->nb ? p->astride[d] : a->rs;
    if (size == 1) continue;
    if (expect >= 0 && expect != size * st) return false;
    expect = st;
    stride = st;
  }
  *folded = (mat){a->p, p->count * a->rows, a->cols, stride, a->cs};
  blas_view v;
  return blas_layout(folded, &v);
}

/* Batch-parallel small products; OpenBLAS runs single-threaded inside an
 * active OpenMP region (its OpenMP build checks omp_in_parallel), so the
 * team is not oversubscribed. Large products keep BLAS's own threading. */
enum { SMALL_GEMM_FLOPS = 1 << 24 };
static bool batch_parallel(int64_t count, int64_t n, int64_t m, int64_t k) {
  int nt = num_threads();
  if (nt < 2 || count < 2) return false;
  return count >= 4 * nt || 2.0 * (double)n * (double)m * (double)k < SMALL_GEMM_FLOPS;
}

/* t itself when its matrices are in a layout BLAS takes, else a copy. */
static fc_tensor *blas_ready(fc_tensor *t, bool left) {
  mat m = matrix_of(t, left);
  blas_view v;
  if (blas_layout(&m, &v)) return fc_retain(t);
  fc_tensor *c = fc_contiguous(t);
  m = c ? matrix_of(c, left) : m;
  if (c && !blas_layout(&m, &v)) {
    fc_release(c);
    FAIL("matmul: a %lldx%lld matrix is too large for BLAS", (long long)m.rows, (long long)m.cols);
  }
  return c;
}

/* The batch on the GPU: one cuBLAS GEMM per matrix, each as BLAS reads it. */
static int cuda_product(const batch_plan *plan, const mat *A, const mat *B, fc_tensor *out,
                        double alpha, double beta) {
  const fc_backend *bk = backend_get();
  int64_t m = B->cols, es = fc_dtype_size(out->dtype);
  for (int64_t i = 0; i < plan->count; i++) {
    int64_t ao, bo;
    batch_offsets(plan, i, &ao, &bo);
    blas_view va = {CblasNoTrans, 1}, vb = {CblasNoTrans, 1};
    blas_layout(A, &va);
    blas_layout(B, &vb);
    bk_gemm g = {.dtype = out->dtype, .trans_a = va.trans == CblasTrans,
                 .trans_b = vb.trans == CblasTrans, .allow_tf32 = backend_tf32(),
                 .m = A->rows, .n = m, .k = A->cols, .lda = va.ld, .ldb = vb.ld, .ldc = m,
                 .alpha = alpha, .beta = beta, .a = A->p + ao * es, .b = B->p + bo * es,
                 .c = elem_ptr(out) + i * A->rows * m * es};
    if (bk->gemm(out->device.index, &g) < 0) return -1;
  }
  return 0;
}

/* out (contiguous, memory laid out as [batch..., n, m]) = alpha * a @ b +
 * beta * out, for a and b of out's dtype, which is not a half type. */
static int run_product(fc_tensor *out, fc_tensor *a, fc_tensor *b, double alpha, double beta,
                       int nb, const int64_t *batch) {
  int dtype = out->dtype;
  bool blas = dtype == FC_FLOAT32 || dtype == FC_FLOAT64;
  fc_tensor *ra = blas ? blas_ready(a, true) : fc_retain(a);
  fc_tensor *rb = ra ? (blas ? blas_ready(b, false) : fc_retain(b)) : NULL;
  if (!rb) {
    fc_release(ra);
    return -1;
  }
  mat A = matrix_of(ra, true), B = matrix_of(rb, false), F;
  int64_t n = A.rows, m = B.cols, k = A.cols, es = fc_dtype_size(dtype);
  batch_plan plan;
  plan_batch(&plan, ra, rb, nb, batch);
  char *C = elem_ptr(out);
  if (blas && (n > INT_MAX || m > INT_MAX)) {
    fc_release(ra), fc_release(rb);
    FAIL_INT("matmul: a %lldx%lld result is too large for BLAS", (long long)n, (long long)m);
  }
  if (fold_batch(&plan, &A, &F) && (!blas || F.rows <= INT_MAX)) {
    plan.count = 1;
    A = F;
  }
  if (out->device.type == FC_CUDA) {
    int rc = blas ? cuda_product(&plan, &A, &B, out, alpha, beta)
                  : (fc_set_error("matmul: %s matmul has no CUDA kernel yet", DTYPE(out)), -1);
    fc_release(ra), fc_release(rb);
    return rc;
  }
  bool par = blas && batch_parallel(plan.count, n, m, k);
#pragma omp parallel for if (par) num_threads(num_threads()) schedule(static)
  for (int64_t i = 0; i < plan.count; i++) {
    int64_t ao, bo;
    batch_offsets(&plan, i, &ao, &bo);
    mat Ai = A, Bi = B;
    Ai.p += ao * es;
    Bi.p += bo * es;
    char *Ci = C + i * A.rows * m * es;
    if (blas) blas_mm(dtype, &Ai, &Bi, Ci, m, alpha, beta);
    else int_mm(dtype, &Ai, &Bi, Ci, m, (int64_t)alpha, (int64_t)beta);
  }
  fc_release(ra), fc_release(rb);
  return 0;
}

/* alpha * a @ b + beta * c (c broadcasts to the result; NULL: none) into a
 * new tensor of `shape`, whose memory is laid out as [batch..., n, m]. */
static fc_tensor *product(fc_tensor *a, fc_tensor *b, fc_tensor *c, double alpha, double beta,
                          int nd, const int64_t *shape, int nb, const int64_t *batch) {
  int dtype = a->dtype;
  if (is_half_dtype(dtype)) { /* in float32, rounded once at the end */
    fc_tensor *a32 = fc_to_dtype(a, FC_FLOAT32), *b32 = a32 ? fc_to_dtype(b, FC_FLOAT32) : NULL;
    fc_tensor *c32 = b32 && c ? fc_to_dtype(c, FC_FLOAT32) : NULL;
    fc_tensor *r32 = b32 && (c32 || !c) ? product(a32, b32, c32, alpha, beta, nd, shape, nb, batch) : NULL;
    fc_tensor *r = r32 ? fc_to_dtype(r32, dtype) : NULL;
    fc_release(a32), fc_release(b32), fc_release(c32), fc_release(r32);
    return r;
  }
  fc_tensor *out = fc_empty(nd, shape, dtype, a->device);
  if (!out) return NULL;
  if (!c || beta == 0) beta = 0; /* c is not read at all, as in PyTorch */
  else if (fc_copy_(out, c) < 0) goto fail;
  if (out->numel > 0 && run_product(out, a, b, alpha, beta, nb, batch) < 0) goto fail;
  return out;
fail:
  fc_release(out);
  return NULL;
}

/* ---- checks ------------------------------------------------------------------ */

static int check_dtypes(const char *op, int n, fc_tensor *const *ts) {
  for (int i = 1; i < n; i++)
    if (ts[i]->dtype != ts[0]->dtype)
      FAIL_INT("%s: dtypes %s and %s differ; convert one first", op, DTYPE(ts[0]), DTYPE(ts[i]));
  if (ts[0]->dtype == FC_BOOL) FAIL_INT("%s: not supported for bool tensors", op);
  return 0;
}

static int check_inner(const char *op, const fc_tensor *a, const fc_tensor *b) {
  int64_t ka = a->shape[a->ndim - 1], kb = b->shape[b->ndim == 1 ? 0 : b->ndim - 2];
  if (ka != kb)
    FAIL_INT("%s: shapes %s and %s do not match (%lld != %lld)", op, SHAPE(a), SHAPE(b),
             (long long)ka, (long long)kb);
  return 0;
}

/* ---- matmul --------------------------------------------------------------- */

static int matmul_backward(fc_node *n, fc_tensor *g, fc_tensor **gi);

static fc_tensor *matmul_op(const char *op, fc_tensor *a, fc_tensor *b) {
  fc_tensor *const ab[2] = {a, b};
  if (check_same_device(op, 2, (const fc_tensor *const *)ab) < 0) return NULL;
  if (a->ndim == 0 || b->ndim == 0)
    FAIL("%s: both arguments need at least 1 dim, got shapes %s and %s", op, SHAPE(a), SHAPE(b));
  if (check_dtypes(op, 2, ab) < 0 || check_inner(op, a, b) < 0) return NULL;
  int nb;
  int64_t batch[FC_MAX_DIMS], shape[FC_MAX_DIMS];
  if (broadcast_shapes(op, batch_dims(a), a->shape, batch_dims(b), b->shape, &nb, batch) < 0)
    FAIL("%s: batch dims of shapes %s and %s cannot broadcast", op, SHAPE(a), SHAPE(b));
  /* the result drops the row or column a 1-D operand was given */
  int nd = nb;
  memcpy(shape, batch, sizeof(int64_t) * (size_t)nb);
  if (a->ndim > 1) shape[nd++] = a->shape[a->ndim - 2];
  if (b->ndim > 1) shape[nd++] = b->shape[b->ndim - 1];
  int prev = grad_mode_push(false);
  fc_tensor *out = product(a, b, NULL, 1, 0, nd, shape, nb, batch);
  grad_mode_pop(prev);
  if (out && is_float_dtype(a->dtype) && grad_needed(2, ab)) {
    fc_node *node = record(op, matmul_backward, out, 2, ab);
    if (!node) {
      fc_release(out);
      return NULL;
    }
    node_save(node, a);
    node_save(node, b);
  }
  return out;
}

fc_tensor *fc_matmul(fc_tensor *a, fc_tensor *b) { return matmul_op("matmul", a, b); }

/* A view with the last two dims swapped, outside autograd. */
static fc_tensor *mT(fc_tensor *t) {
  int64_t shape[FC_MAX_DIMS], stride[FC_MAX_DIMS];
  int n = t->ndim;
  memcpy(shape, t->shape, sizeof(int64_t) * (size_t)n);
  memcpy(stride, t->stride, sizeof(int64_t) * (size_t)n);
  shape[n - 2] = t->shape[n - 1], shape[n - 1] = t->shape[n - 2];
  stride[n - 2] = t->stride[n - 1], stride[n - 1] = t->stride[n - 2];
  return tensor_view_of(t, n, shape, stride, t->offset);
}

/* A view of t with a size-1 dim inserted at `dim`. */
static fc_tensor *with_unit_dim(fc_tensor *t, int dim) {
  int64_t shape[FC_MAX_DIMS], stride[FC_MAX_DIMS];
  for (int d = 0, s = 0; d <= t->ndim; d++) {
    shape[d] = d == dim ? 1 : t->shape[s];
    stride[d] = d == dim ? 1 : t->stride[s++];
  }
  return tensor_view_of(t, t->ndim + 1, shape, stride, t->offset);
}

/* A view of t without its size-1 dim `dim`. */
static fc_tensor *without_dim(fc_tensor *t, int dim) {
  int64_t shape[FC_MAX_DIMS], stride[FC_MAX_DIMS];
  for (int d = 0, s = 0; d < t->ndim; d++)
    if (d != dim) shape[s] = t->shape[d], stride[s++] = t->stride[d];
  return tensor_view_of(t, t->ndim - 1, shape, stride, t->offset);
}

static fc_tensor *matrix_view(fc_tensor *t, bool left) {
  return t->ndim > 1 ? fc_retain(t) : with_unit_dim(t, left ? 0 : 1);
}

/* With a, b promoted to >= 2-D and g to their product's [batch..., n, m]:
 * da = g b^T, db = a^T g; the engine sums broadcast batch dims away. A 2-D
 * b under a batched a gets one GEMM over the folded batch, not a sum of
 * per-batch products. */
static int matmul_backward(fc_node *node, fc_tensor *g, fc_tensor **gi) {
  fc_tensor *a = node->saved[0], *b = node->saved[1];
  fc_tensor *a2 = matrix_view(a, true), *b2 = matrix_view(b, false), *g2 = fc_retain(g);
  if (g2 && a->ndim == 1) {
    fc_tensor *u = with_unit_dim(g2, b->ndim == 1 ? 0 : g2->ndim - 1);
    fc_release(g2), g2 = u;
  }
  if (g2 && b->ndim == 1) {
    fc_tensor *u = with_unit_dim(g2, g2->ndim);
    fc_release(g2), g2 = u;
  }
  int rc = a2 && b2 && g2 ? 0 : -1;
  if (rc == 0 && (node->next[0] || node->leaf[0])) {
    fc_tensor *bt = mT(b2), *ga = bt ? fc_matmul(g2, bt) : NULL;
    gi[0] = ga && a->ndim == 1 ? without_dim(ga, ga->ndim - 2) : fc_retain(ga);
    fc_release(bt), fc_release(ga);
    if (!gi[0]) rc = -1;
  }
  if (rc == 0 && (node->next[1] || node->leaf[1])) {
    fc_tensor *a3 = fc_retain(a2), *g3 = fc_retain(g2);
    if (b2->ndim == 2 && a2->ndim > 2) { /* [B*n, k]^T @ [B*n, m] */
      fc_release(a3), fc_release(g3);
      a3 = fc_reshape(a2, 2, (int64_t[]){-1, a2->shape[a2->ndim - 1]});
      g3 = fc_reshape(g2, 2, (int64_t[]){-1, g2->shape[g2->ndim - 1]});
    }
    fc_tensor *at = a3 ? mT(a3) : NULL, *gb = at && g3 ? fc_matmul(at, g3) : NULL;
    gi[1] = gb && b->ndim == 1 ? without_dim(gb, gb->ndim - 1) : fc_retain(gb);
    fc_release(a3), fc_release(g3), fc_release(at), fc_release(gb);
    if (!gi[1]) rc = -1;
  }
  fc_release(a2), fc_release(b2), fc_release(g2);
  return rc;
}

/* ---- addmm ------------------------------------------------------------------- */

static int addmm_backward(fc_node *n, fc_tensor *g, fc_tensor **gi);

/* beta * c + alpha * (a @ b) for 2-D a, b; c broadcasts to [n, m]. */
fc_tensor *fc_addmm(fc_tensor *c, fc_tensor *a, fc_tensor *b, double beta, double alpha) {
  fc_tensor *const cab[3] = {c, a, b};
  if (check_same_device("addmm", 3, (const fc_tensor *const *)cab) < 0) return NULL;
  if (a->ndim != 2 || b->ndim != 2)
    FAIL("addmm: expects 2-D matrices, got shapes %s and %s", SHAPE(a), SHAPE(b));
  if (check_dtypes("addmm", 3, (fc_tensor *const[]){a, b, c}) < 0 || check_inner("addmm", a, b) < 0) return NULL;
  int64_t shape[2] = {a->shape[0], b->shape[1]};
  bool fits = c->ndim <= 2;
  for (int i = 1; fits && i <= c->ndim; i++)
    fits = c->shape[c->ndim - i] == 1 || c->shape[c->ndim - i] == shape[2 - i];
  if (!fits)
    FAIL("addmm: c of shape %s does not broadcast to the product's shape %s", SHAPE(c),
         dims_str(2, shape, (char[96]){0}, 96));
  if (!is_float_dtype(a->dtype) && (beta != floor(beta) || alpha != floor(alpha)))
    FAIL("addmm: beta %g and alpha %g must be integers for %s tensors", beta, alpha, DTYPE(a));
  int prev = grad_mode_push(false);
  fc_tensor *out = product(a, b, c, alpha, beta, 2, shape, 0, NULL);
  grad_mode_pop(prev);
  if (out && is_float_dtype(a->dtype) && grad_needed(3, cab)) {
    fc_node *node = record("addmm", addmm_backward, out, 3, cab);
    if (!node) {
      fc_release(out);
      return NULL;
    }
    node_save(node, a);
    node_save(node, b);
    node->arg[0] = beta;
    node->arg[1] = alpha;
  }
  return out;
}

/* alpha * x @ y for 2-D x, y, outside autograd. */
static fc_tensor *scaled_mm(fc_tensor *x, fc_tensor *y, double alpha) {
  int64_t shape[2] = {x->shape[0], y->shape[1]};
  return product(x, y, NULL, alpha, 0, 2, shape, 0, NULL);
}

/* dc = beta g (summed to c's shape by the engine), da = alpha g b^T,
 * db = alpha a^T g. */
static int addmm_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  fc_tensor *a = n->saved[0], *b = n->saved[1];
  double beta = n->arg[0], alpha = n->arg[1];
  if (n->next[0] || n->leaf[0]) {
    fc_tensor *s = beta == 1 ? NULL : fc_scalar(beta, g->dtype, g->device);
    gi[0] = beta == 1 ? fc_retain(g) : s ? fc_mul(g, s) : NULL;
    fc_release(s);
    if (!gi[0]) return -1;
  }
  if (n->next[1] || n->leaf[1]) {
    fc_tensor *bt = mT(b);
    gi[1] = bt ? scaled_mm(g, bt, alpha) : NULL;
    fc_release(bt);
    if (!gi[1]) return -1;
  }
  if (n->next[2] || n->leaf[2]) {
    fc_tensor *at = mT(a);
    gi[2] = at ? scaled_mm(at, g, alpha) : NULL;
    fc_release(at);
    if (!gi[2]) return -1;
  }
  return 0;
}

/* ---- vectors ------------------------------------------------------------------ */

fc_tensor *fc_dot(fc_tensor *a, fc_tensor *b) {
  if (check_same_device("dot", 2, (const fc_tensor *const[]){a, b}) < 0) return NULL;
  if (a->ndim != 1 || b->ndim != 1 || a->numel != b->numel)
    FAIL("dot: expects two 1-D tensors of one size, got shapes %s and %s", SHAPE(a), SHAPE(b));
  return matmul_op("dot", a, b);
}

/* a[:, None] * b: a broadcast product, promoting dtypes as torch.outer does. */
fc_tensor *fc_outer(fc_tensor *a, fc_tensor *b) {
  if (check_same_device("outer", 2, (const fc_tensor *const[]){a, b}) < 0) return NULL;
  if (a->ndim != 1 || b->ndim != 1)
    FAIL("outer: expects two 1-D tensors, got shapes %s and %s", SHAPE(a), SHAPE(b));
  fc_tensor *col = fc_unsqueeze(a, 1);
  fc_tensor *r = col ? fc_mul(col, b) : NULL;
  fc_release(col);
  return r;
}
