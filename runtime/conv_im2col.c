/* conv_im2col.c — 2-D convolution kernels as im2col + GEMM, float32 and
 * float64: the path for float64 (gradient checks) and for any float32 case
 * oneDNN does not take (conv.c chooses).
 *
 * Per image and group: col[Cg*kh*kw, Ho*Wo] = im2col(x), then
 * y[Cog, Ho*Wo] = W[Cog, Cg*kh*kw] @ col. Backward: dW += g @ col^T and
 * dcol = W^T @ g, scattered back by col2im. Images run in parallel (OpenMP),
 * each with its own column buffer; BLAS runs single-threaded inside. */
#include "internal.h"
#include <cblas.h>
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define IM2COL(T)                                                                       \
  static void im2col_##T(const T *x, T *col, const conv_geom *g, int64_t cg) {          \
    int64_t hw = g->Ho * g->Wo;                                                         \
    for (int64_t c = 0; c < cg; c++)                                                    \
      for (int64_t i = 0; i < g->kh; i++)                                               \
        for (int64_t j = 0; j < g->kw; j++) {                                           \
          T *row = col + ((c * g->kh + i) * g->kw + j) * hw;                            \
          for (int64_t oh = 0; oh < g->Ho; oh++) {                                      \
            int64_t ih = oh * g->sh - g->ph + i * g->dh;                                \
            for (int64_t ow = 0; ow < g->Wo; ow++) {                                    \
              int64_t iw = ow * g->sw - g->pw + j * g->dw;                              \
              bool in = ih >= 0 && ih < g->H && iw >= 0 && iw < g->W;                   \
              row[oh * g->Wo + ow] = in ? x[(c * g->H + ih) * g->W + iw] : 0;           \
            }                                                                           \
          }                                                                             \
        }                                                                               \
  }                                                                                     \
  static void col2im_##T(const T *col, T *x, const conv_geom *g, int64_t cg) {          \
    int64_t hw = g->Ho * g->Wo;                                                         \
    for (int64_t c = 0; c < cg; c++)                                                    \
      for (int64_t i = 0; i < g->kh; i++)                                               \
        for (int64_t j = 0; j < g->kw; j++) {                                           \
          const T *row = col + ((c * g->kh + i) * g->kw + j) * hw;                      \
          for (int64_t oh = 0; oh < g->Ho; oh++) {                                      \
            int64_t ih = oh * g->sh - g->ph + i * g->dh;                                \
            if (ih < 0 || ih >= g->H) continue;                                         \
            for (int64_t ow = 0; ow < g->Wo; ow++) {                                    \
              int64_t iw = ow * g->sw - g->pw + j * g->dw;                              \
              if (iw >= 0 && iw < g->W) x[(c * g->H + ih) * g->W + iw] += row[oh * g->Wo + ow]; \
            }                                                                           \
          }                                                                             \
        }                                                                               \
  }
IM2COL(float)
IM2COL(double)

/* C[M,N] (+)= op(A) op(B), row-major, in the tensor's float type. */
static void gemm(bool f64, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void *A, int64_t lda,
                 const void *B, int64_t ldb, double beta, void *C, int64_t ldc) {
  CBLAS_TRANSPOSE a = ta ? CblasTrans : CblasNoTrans, b = tb ? CblasTrans : CblasNoTrans;
  if (f64)
    cblas_dgemm(CblasRowMajor, a, b, (int)M, (int)N, (int)K, 1.0, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
  else
    cblas_sgemm(CblasRowMajor, a, b, (int)M, (int)N, (int)K, 1.0f, A, (int)lda, B, (int)ldb, (float)beta, C, (int)ldc);
}

static void im2col(bool f64, const char *x, char *col, const conv_geom *g, int64_t cg) {
  if (f64) im2col_double((const double *)x, (double *)col, g, cg);
  else im2col_float((const float *)x, (float *)col, g, cg);
}
static void col2im(bool f64, const char *col, char *x, const conv_geom *g, int64_t cg) {
  if (f64) col2im_double((const double *)col, (double *)x, g, cg);
  else col2im_float((const float *)col, (float *)x, g, cg);
}

/* y = conv(x, w) + b: x [N,C,H,W], w [Co,C/g,kh,kw], b [Co] or NULL, y [N,Co,Ho,Wo]. */
int im2col_conv_forward(const conv_geom *g, bool f64, const void *xv, const void *wv, const void *b, void *yv) {
  const char *x = xv, *w = wv;
  char *y = yv;
  int es = f64 ? 8 : 4;
  int64_t cg = g->C / g->groups, cog = g->Co / g->groups, K = cg * g->kh * g->kw, hw = g->Ho * g->Wo;
  bool oom = false;
#pragma omp parallel reduction(|| : oom)
  {
    char *col = malloc((size_t)(K * hw * es) + 1);
    oom = !col;
#pragma omp for schedule(static)
    for (int64_t n = 0; n < g->N; n++) {
      for (int gi = 0; gi < g->groups && col; gi++) {
        im2col(f64, x + ((n * g->C + gi * cg) * g->H * g->W) * es, col, g, cg);
        gemm(f64, false, false, cog, hw, K, w + gi * cog * K * es, K, col, hw, 0,
             y + ((n * g->Co + gi * cog) * hw) * es, hw);
      }
      for (int64_t o = 0; b && o < g->Co; o++)
        for (int64_t i = 0; i < hw; i++) {
          if (f64) ((double *)y)[(n * g->Co + o) * hw + i] += ((const double *)b)[o];
          else ((float *)y)[(n * g->Co + o) * hw + i] += ((const float *)b)[o];
        }
    }
    free(col);
  }
  if (oom) FAIL_INT("conv2d: out of memory for the column buffer");
  return 0;
}

/* gx = conv^T(gy, w): the column gradient W^T @ gy scattered back by col2im. */
int im2col_conv_backward_data(const conv_geom *g, bool f64, const void *wv, const void *gyv, void *gxv) {
  const char *w = wv, *gy = gyv;
  char *gx = gxv;
  int es = f64 ? 8 : 4;
  int64_t cg = g->C / g->groups, cog = g->Co / g->groups, K = cg * g->kh * g->kw, hw = g->Ho * g->Wo;
  int64_t chw = g->C * g->H * g->W;
  bool oom = false;
#pragma omp parallel reduction(|| : oom)
  {
    char *col = malloc((size_t)(K * hw * es) + 1);
    oom = !col;
#pragma omp for schedule(static)
    for (int64_t n = 0; n < g->N; n++) {
      memset(gx + n * chw * es, 0, (size_t)(chw * es));
      for (int gi = 0; gi < g->groups && col; gi++) {
        gemm(f64, true, false, K, hw, cog, w + gi * cog * K * es, K, gy + ((n * g->Co + gi * cog) * hw) * es, hw, 0,
             col, hw);
        col2im(f64, col, gx + ((n * g->C + gi * cg) * g->H * g->W) * es, g, cg);
      }
    }
    free(col);
  }
  if (oom) FAIL_INT("conv2d backward: out of memory for the column buffer");
  return 0;
}

/* gw = sum_n gy[n] @ col(x[n])^T (per-thread partial sums, then added);
 * gb (if wanted) = gy summed over N, H, W. */
int im2col_conv_backward_weights(const conv_geom *g, bool f64, const void *xv, const void *gyv, void *gwv,
                                 void *gb) {
  const char *x = xv, *gy = gyv;
  int es = f64 ? 8 : 4;
  int64_t cg = g->C / g->groups, cog = g->Co / g->groups, K = cg * g->kh * g->kw, hw = g->Ho * g->Wo;
  int64_t wn = g->Co * K;
  int nt = num_threads();
  char *partial = calloc((size_t)(nt * wn * es) + 1, 1);
  if (!partial) FAIL_INT("conv2d backward: out of memory");
  bool oom = false;
#pragma omp parallel num_threads(nt) reduction(|| : oom)
  {
    int tid = 0;
#ifdef _OPENMP
    tid = omp_get_thread_num();
#endif
    char *col = malloc((size_t)(K * hw * es) + 1);
    char *mine = partial + tid * wn * es;
    oom = !col;
#pragma omp for schedule(static)
    for (int64_t n = 0; n < g->N; n++)
      for (int gi = 0; gi < g->groups && col; gi++) {
        im2col(f64, x + ((n * g->C + gi * cg) * g->H * g->W) * es, col, g, cg);
        gemm(f64, false, true, cog, K, hw, gy + ((n * g->Co + gi * cog) * hw) * es, hw, col, hw, 1,
             mine + gi * cog * K * es, K);
      }
    free(col);
  }
  memset(gwv, 0, (size_t)(wn * es));
  for (int t = 0; t < nt; t++)
    for (int64_t i = 0; i < wn; i++) {
      if (f64) ((double *)gwv)[i] += ((double *)partial)[t * wn + i];
      else ((float *)gwv)[i] += ((float *)partial)[t * wn + i];
    }
  free(partial);
  if (oom) FAIL_INT("conv2d backward: out of memory for the column buffer");
  for (int64_t o = 0; gb && o < g->Co; o++) { /* summed in double for both dtypes */
    double s = 0;
    for (int64_t n = 0; n < g->N; n++)
      for (int64_t i = 0; i < hw; i++)
        s += f64 ? ((const double *)gy)[(n * g->Co + o) * hw + i] : ((const float *)gy)[(n * g->Co + o) * hw + i];
    if (f64) ((double *)gb)[o] = s;
    else ((float *)gb)[o] = (float)s;
  }
  return 0;
}
