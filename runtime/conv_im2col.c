/* conv_im2col.c — 2-D convolution as im2col + GEMM, forward and backward.
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

typedef struct conv_geom {
  int64_t N, C, H, W, Co, kh, kw, Ho, Wo;
  int sh, sw, ph, pw, dh, dw, groups;
} conv_geom;

static int64_t out_size(int64_t in, int64_t k, int s, int p, int d) {
  return (in + 2 * p - d * (k - 1) - 1) / s + 1;
}

/* The geometry from the shapes and the op's integer parameters. */
static conv_geom geometry(const fc_tensor *x, const fc_tensor *w, const int *stride, const int *padding,
                          const int *dilation, int groups) {
  conv_geom g = {x->shape[0], x->shape[1], x->shape[2], x->shape[3], w->shape[0], w->shape[2], w->shape[3], 0, 0,
                 stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1], groups};
  g.Ho = out_size(g.H, g.kh, g.sh, g.ph, g.dh);
  g.Wo = out_size(g.W, g.kw, g.sw, g.pw, g.dw);
  return g;
}

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

/* y = conv(x, w): x [N,C,H,W], w [Co,C/g,kh,kw], y [N,Co,Ho,Wo]; all contiguous. */
static void conv_forward(const conv_geom *g, const char *x, const char *w, char *y, bool f64) {
  int es = f64 ? 8 : 4;
  int64_t cg = g->C / g->groups, cog = g->Co / g->groups, K = cg * g->kh * g->kw, hw = g->Ho * g->Wo;
#pragma omp parallel
  {
    char *col = malloc((size_t)(K * hw * es) + 1);
#pragma omp for schedule(static)
    for (int64_t n = 0; n < g->N; n++)
      for (int gi = 0; gi < g->groups && col; gi++) {
        im2col(f64, x + ((n * g->C + gi * cg) * g->H * g->W) * es, col, g, cg);
        gemm(f64, false, false, cog, hw, K, w + gi * cog * K * es, K, col, hw, 0,
             y + ((n * g->Co + gi * cog) * hw) * es, hw);
      }
    free(col);
  }
}

/* dx (if wanted) and dw (if wanted, accumulated per thread then summed). */
static int conv_backward_data(const conv_geom *g, const char *x, const char *w, const char *gy, char *dx, char *dw,
                              bool f64) {
  int es = f64 ? 8 : 4;
  int64_t cg = g->C / g->groups, cog = g->Co / g->groups, K = cg * g->kh * g->kw, hw = g->Ho * g->Wo;
  int64_t wn = g->Co * K;
  int nt = num_threads();
  char *partial = dw ? calloc((size_t)(nt * wn * es) + 1, 1) : NULL;
  if (dw && !partial) FAIL_INT("conv2d backward: out of memory");
#pragma omp parallel num_threads(nt)
  {
    int tid = 0;
#ifdef _OPENMP
    tid = omp_get_thread_num();
#endif
    char *col = malloc((size_t)(K * hw * es) + 1);
    char *mine = partial ? partial + tid * wn * es : NULL;
#pragma omp for schedule(static)
    for (int64_t n = 0; n < g->N; n++)
      for (int gi = 0; gi < g->groups && col; gi++) {
        const char *gyn = gy + ((n * g->Co + gi * cog) * hw) * es;
        if (mine) {
          im2col(f64, x + ((n * g->C + gi * cg) * g->H * g->W) * es, col, g, cg);
          gemm(f64, false, true, cog, K, hw, gyn, hw, col, hw, 1, mine + gi * cog * K * es, K);
        }
        if (dx) {
          gemm(f64, true, false, K, hw, cog, w + gi * cog * K * es, K, gyn, hw, 0, col, hw);
          col2im(f64, col, dx + ((n * g->C + gi * cg) * g->H * g->W) * es, g, cg);
        }
      }
    free(col);
  }
  if (dw) {
    for (int t = 0; t < nt; t++)
      for (int64_t i = 0; i < wn; i++) {
        if (f64) ((double *)dw)[i] += ((double *)partial)[t * wn + i];
        else ((float *)dw)[i] += ((float *)partial)[t * wn + i];
      }
    free(partial);
  }
  return 0;
}

/* ---- the op -------------------------------------------------------------- */

static int conv_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  fc_tensor *x = n->saved[0], *w = n->saved[1];
  /* iarg: stride h/w, padding h/w, dilation h/w, groups */
  int p[7];
  for (int i = 0; i < 7; i++) p[i] = (int)n->iarg[i];
  conv_geom geom = geometry(x, w, p, p + 2, p + 4, p[6]);
  bool f64 = x->dtype == FC_FLOAT64;
  fc_tensor *gc = fc_contiguous(g);
  fc_tensor *dx = gc && (n->next[0] || n->leaf[0]) ? fc_zeros(x->ndim, x->shape, x->dtype, x->device) : NULL;
  fc_tensor *dw = gc && (n->next[1] || n->leaf[1]) ? fc_zeros(w->ndim, w->shape, w->dtype, w->device) : NULL;
  int rc = gc ? conv_backward_data(&geom, fc_data_ptr(x), fc_data_ptr(w), fc_data_ptr(gc), dx ? fc_data_ptr(dx) : NULL,
                                   dw ? fc_data_ptr(dw) : NULL, f64)
              : -1;
  if (rc == 0 && n->ninputs > 2 && (n->next[2] || n->leaf[2])) /* bias: sum over N, H, W */
    gi[2] = fc_sum(gc, 3, (int[]){0, 2, 3}, 0);
  fc_release(gc);
  gi[0] = dx;
  gi[1] = dw;
  return rc;
}

fc_tensor *fc_conv2d(fc_tensor *x, fc_tensor *weight, fc_tensor *bias, const int *stride, const int *padding,
                     const int *dilation, int groups) {
  const fc_tensor *ins[3] = {x, weight, bias};
  if (check_same_device("conv2d", bias ? 3 : 2, ins) < 0) return NULL;
  if (x->ndim != 4 || weight->ndim != 4)
    FAIL("conv2d: expects input [N,C,H,W] and weight [Cout,Cin/groups,kh,kw], got %s and %s", SHAPE(x), SHAPE(weight));
  if (!is_float_dtype(x->dtype) || x->dtype != weight->dtype || (bias && bias->dtype != x->dtype))
    FAIL("conv2d: input, weight and bias must share one float dtype, got %s and %s", DTYPE(x), DTYPE(weight));
  if (groups < 1 || x->shape[1] % groups || weight->shape[0] % groups)
    FAIL("conv2d: groups %d must divide the %lld input and %lld output channels", groups,
         (long long)x->shape[1], (long long)weight->shape[0]);
  if (weight->shape[1] * groups != x->shape[1])
    FAIL("conv2d: weight of shape %s expects %lld input channels, input of shape %s has %lld", SHAPE(weight),
         (long long)(weight->shape[1] * groups), SHAPE(x), (long long)x->shape[1]);
  if (bias && (bias->ndim != 1 || bias->shape[0] != weight->shape[0]))
    FAIL("conv2d: bias of shape %s does not match %lld output channels", SHAPE(bias), (long long)weight->shape[0]);
  for (int i = 0; i < 2; i++)
    if (stride[i] < 1 || padding[i] < 0 || dilation[i] < 1)
      FAIL("conv2d: stride and dilation must be >= 1 and padding >= 0");
  conv_geom g = geometry(x, weight, stride, padding, dilation, groups);
  if (g.Ho < 1 || g.Wo < 1)
    FAIL("conv2d: kernel %lldx%lld (dilation %d) is larger than the padded input of shape %s", (long long)g.kh,
         (long long)g.kw, g.dh, SHAPE(x));
  int dtype = x->dtype, compute = dtype == FC_FLOAT64 ? FC_FLOAT64 : FC_FLOAT32;
  int prev = grad_mode_push(false);
  fc_tensor *xc0 = fc_to_dtype(x, compute), *wc0 = fc_to_dtype(weight, compute);
  fc_tensor *xc = xc0 ? fc_contiguous(xc0) : NULL, *wc = wc0 ? fc_contiguous(wc0) : NULL;
  fc_tensor *y = xc && wc ? fc_empty(4, (int64_t[]){g.N, g.Co, g.Ho, g.Wo}, compute, x->device) : NULL;
  if (y) conv_forward(&g, fc_data_ptr(xc), fc_data_ptr(wc), fc_data_ptr(y), compute == FC_FLOAT64);
  if (y && bias) {
    fc_tensor *b = fc_view(bias, 3, (int64_t[]){g.Co, 1, 1});
    if (!b || fc_add_(y, b) < 0) {
      fc_release(y);
      y = NULL;
    }
    fc_release(b);
  }
  if (y && compute != dtype) {
    fc_tensor *h = fc_to_dtype(y, dtype);
    fc_release(y);
    y = h;
  }
  grad_mode_pop(prev);
  fc_tensor *inputs[3] = {x, weight, bias};
  if (y && grad_needed(bias ? 3 : 2, inputs)) {
    fc_node *n = record("conv2d", conv_backward, y, bias ? 3 : 2, inputs);
    if (!n) {
      fc_release(y);
      y = NULL;
    } else { /* the contiguous copies are what backward reads */
      node_save(n, xc);
      node_save(n, wc);
      const int p[7] = {stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1], groups};
      for (int i = 0; i < 7; i++) n->iarg[i] = p[i];
    }
  }
  fc_release(xc0), fc_release(wc0), fc_release(xc), fc_release(wc);
  return y;
}

fc_tensor *fc_conv1d(fc_tensor *x, fc_tensor *weight, fc_tensor *bias, int stride, int padding, int dilation,
                     int groups) {
  if (check_same_device("conv1d", 2, (const fc_tensor *const[]){x, weight}) < 0) return NULL;
  if (x->ndim != 3 || weight->ndim != 3)
    FAIL("conv1d: expects input [N,C,L] and weight [Cout,Cin/groups,k], got %s and %s", SHAPE(x), SHAPE(weight));
  fc_tensor *x4 = fc_unsqueeze(x, 2), *w4 = fc_unsqueeze(weight, 2);
  fc_tensor *y4 = x4 && w4 ? fc_conv2d(x4, w4, bias, (int[]){1, stride}, (int[]){0, padding}, (int[]){1, dilation}, groups)
                           : NULL;
  fc_tensor *y = y4 ? fc_squeeze(y4, 2) : NULL;
  fc_release(x4), fc_release(w4), fc_release(y4);
  return y;
}
