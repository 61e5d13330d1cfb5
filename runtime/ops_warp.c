/* ops_warp.c — resampling images through a coordinate grid, for data
 * augmentation: affine_grid and grid_sample with PyTorch's semantics.
 *
 * Coordinates are normalised: -1 and 1 are the left/top and right/bottom
 * edges of the input (align_corners = 0: the outer edges of the border
 * pixels; 1: the centres of the corner pixels). A grid holds, for every
 * output pixel, the (x, y) it reads from. These ops run forward only: the
 * data pipeline needs no gradient through them, so they refuse inputs that
 * would record one rather than silently dropping it. */
#include "internal.h"

/* Builds out[n, h, w] = theta[n] @ (x_w, y_h, 1) from the base grid. */
#define AFFINE_GRID(T)                                                                   \
  static void affine_grid_##T(const T *theta, T *out, int64_t N, int64_t H, int64_t W,   \
                              bool align) {                                              \
    for (int64_t n = 0; n < N; n++) {                                                    \
      const T *m = theta + n * 6;                                                        \
      for (int64_t h = 0; h < H; h++) {                                                  \
        double y = base_coord(h, H, align);                                              \
        T *row = out + (n * H + h) * W * 2;                                              \
        for (int64_t w = 0; w < W; w++) {                                                \
          double x = base_coord(w, W, align);                                            \
          row[2 * w] = (T)(m[0] * x + m[1] * y + m[2]);                                  \
          row[2 * w + 1] = (T)(m[3] * x + m[4] * y + m[5]);                              \
        }                                                                                \
      }                                                                                  \
    }                                                                                    \
  }

/* The normalised coordinate of pixel i of `size` in the identity grid. */
static double base_coord(int64_t i, int64_t size, bool align) {
  if (size == 1) return 0;
  if (align) return -1.0 + 2.0 * (double)i / (double)(size - 1);
  return (2.0 * (double)i + 1.0) / (double)size - 1.0;
}

AFFINE_GRID(float)
AFFINE_GRID(double)

/* ---- checks ------------------------------------------------------------- */

static int check_no_grad(const char *op, int n, fc_tensor *const *ts) {
  if (grad_needed(n, ts))
    FAIL_INT("%s: has no backward (a data-augmentation op); call it under no_grad or on "
             "detached tensors", op);
  return 0;
}

static int check_float_cpu(const char *op, const fc_tensor *t, const char *what) {
  if (check_defined(op, t, what) < 0) return -1;
  if (t->dtype != FC_FLOAT32 && t->dtype != FC_FLOAT64)
    FAIL_INT("%s: %s must be float32 or float64, got %s", op, what, DTYPE(t));
  if (t->device.type != FC_CPU) FAIL_INT("%s: %s must be on the cpu", op, what);
  return 0;
}

fc_tensor *fc_affine_grid(fc_tensor *theta, int64_t H, int64_t W, int align_corners) {
  if (check_float_cpu("affine_grid", theta, "theta") < 0) return NULL;
  if (theta->ndim != 3 || theta->shape[1] != 2 || theta->shape[2] != 3)
    FAIL("affine_grid: theta must have shape [N,2,3], got %s", SHAPE(theta));
  if (H < 1 || W < 1) FAIL("affine_grid: output size must be positive, got %lldx%lld",
                           (long long)H, (long long)W);
  if (check_no_grad("affine_grid", 1, &theta) < 0) return NULL;
  fc_tensor *m = fc_contiguous(theta);
  if (!m) return NULL;
  int64_t N = theta->shape[0], shape[4] = {N, H, W, 2};
  fc_tensor *out = fc_empty(4, shape, theta->dtype, theta->device);
  if (out) {
    if (theta->dtype == FC_FLOAT32)
      affine_grid_float((const float *)elem_ptr(m), (float *)elem_ptr(out), N, H, W, align_corners);
    else
      affine_grid_double((const double *)elem_ptr(m), (double *)elem_ptr(out), N, H, W, align_corners);
  }
  fc_release(m);
  return out;
}

/* ---- grid_sample ------------------------------------------------------ */

/* Normalised coordinate to pixel space. */
static double unnormalize(double c, int64_t size, bool align) {
  return align ? (c + 1) / 2 * (double)(size - 1) : ((c + 1) * (double)size - 1) / 2;
}

/* Folds c into [lo, hi] (given doubled, so half-pixel bounds stay integers)
 * by mirroring at both ends, as many times as it takes. */
static double reflect(double c, int64_t twice_lo, int64_t twice_hi) {
  if (twice_lo == twice_hi) return 0;
  if (!isfinite(c)) return c; /* NaN stays NaN; infinities clip to an edge */
  double lo = (double)twice_lo / 2, span = (double)(twice_hi - twice_lo) / 2;
  c = fabs(c - lo);
  double extra = fmod(c, span), flips = floor(c / span);
  return fmod(flips, 2.0) == 0 ? extra + lo : span - extra + lo;
}

static double clip(double c, int64_t size) {
  return c < 0 ? 0 : c > (double)(size - 1) ? (double)(size - 1) : c;
}

/* The pixel-space coordinate to read for normalised c after padding. */
static double source_coord(double c, int64_t size, int padding, bool align) {
  c = unnormalize(c, size, align);
  if (padding == FC_PAD_BORDER) return clip(c, size);
  if (padding == FC_PAD_REFLECTION) {
    c = align ? reflect(c, 0, 2 * (size - 1)) : reflect(c, -1, 2 * size - 1);
    return clip(c, size);
  }
  return c;
}

typedef struct sample_geom {
  int64_t N, C, H, W, Ho, Wo;
  int mode, padding;
  bool align;
} sample_geom;

/* One output row (n, oh) for every channel; x is [N,C,H,W], grid
 * [N,Ho,Wo,2], out [N,C,Ho,Wo], all contiguous. */
#define SAMPLE_ROW(T)                                                                    \
  static void sample_row_##T(const T *x, const T *grid, T *out, const sample_geom *g,    \
                             int64_t n, int64_t oh) {                                    \
    const T *gr = grid + (n * g->Ho + oh) * g->Wo * 2;                                   \
    int64_t plane = g->H * g->W, oplane = g->Ho * g->Wo;                                 \
    const T *xn = x + n * g->C * plane;                                                  \
    T *on = out + n * g->C * oplane + oh * g->Wo;                                        \
    for (int64_t ow = 0; ow < g->Wo; ow++) {                                             \
      double ix = source_coord(gr[2 * ow], g->W, g->padding, g->align);                  \
      double iy = source_coord(gr[2 * ow + 1], g->H, g->padding, g->align);              \
      if (g->mode == FC_SAMPLE_NEAREST) {                                                \
        double rx = nearbyint(ix), ry = nearbyint(iy);                                   \
        bool in = rx >= 0 && ry >= 0 && rx < (double)g->W && ry < (double)g->H;          \
        int64_t at = in ? (int64_t)ry * g->W + (int64_t)rx : 0;                          \
        for (int64_t c = 0; c < g->C; c++)                                               \
          on[c * oplane + ow] = in ? xn[c * plane + at] : (T)0;                          \
        continue;                                                                        \
      }                                                                                  \
      /* far outside (or NaN): every neighbour reads as zero */                          \
      bool near = ix > -2 && iy > -2 && ix < (double)g->W + 1 && iy < (double)g->H + 1;  \
      double fx = near ? floor(ix) : -2, fy = near ? floor(iy) : -2;                     \
      double wx = ix - fx, wy = iy - fy;                                                 \
      int64_t x0 = (int64_t)fx, y0 = (int64_t)fy;                                        \
      /* the four neighbours, those outside the image read as zero */                    \
      int64_t at[4];                                                                     \
      double wt[4] = {(1 - wx) * (1 - wy), wx * (1 - wy), (1 - wx) * wy, wx * wy};       \
      for (int k = 0; k < 4; k++) {                                                      \
        int64_t xx = x0 + (k & 1), yy = y0 + (k >> 1);                                   \
        bool in = xx >= 0 && yy >= 0 && xx < g->W && yy < g->H;                          \
        at[k] = in ? yy * g->W + xx : -1;                                                \
      }                                                                                  \
      for (int64_t c = 0; c < g->C; c++) {                                               \
        const T *xc = xn + c * plane;                                                    \
        double v = 0;                                                                    \
        for (int k = 0; k < 4; k++)                                                      \
          if (at[k] >= 0) v += wt[k] * xc[at[k]];                                        \
        on[c * oplane + ow] = (T)v;                                                      \
      }                                                                                  \
    }                                                                                    \
  }
SAMPLE_ROW(float)
SAMPLE_ROW(double)

static void sample_all(bool f64, const void *x, const void *grid, void *out, const sample_geom *g) {
  int64_t rows = g->N * g->Ho;
  int64_t work = rows * g->Wo * g->C;
#pragma omp parallel for schedule(static) if (work > PARALLEL_GRAIN && num_threads() > 1) \
  num_threads(num_threads())
  for (int64_t r = 0; r < rows; r++) {
    if (f64) sample_row_double(x, grid, out, g, r / g->Ho, r % g->Ho);
    else sample_row_float(x, grid, out, g, r / g->Ho, r % g->Ho);
  }
}

static int check_sample_args(fc_tensor *x, fc_tensor *grid, int mode, int padding) {
  const char *op = "grid_sample";
  if (check_float_cpu(op, x, "input") < 0 || check_float_cpu(op, grid, "grid") < 0) return -1;
  if (x->ndim != 4) FAIL_INT("%s: input must be [N,C,H,W], got %s", op, SHAPE(x));
  if (grid->ndim != 4 || grid->shape[3] != 2)
    FAIL_INT("%s: grid must be [N,Ho,Wo,2], got %s", op, SHAPE(grid));
  if (grid->shape[0] != x->shape[0])
    FAIL_INT("%s: grid batch %lld does not match input batch %lld (input %s, grid %s)", op,
             (long long)grid->shape[0], (long long)x->shape[0], SHAPE(x), SHAPE(grid));
  if (grid->dtype != x->dtype)
    FAIL_INT("%s: grid dtype %s differs from input dtype %s", op, DTYPE(grid), DTYPE(x));
  if (mode != FC_SAMPLE_BILINEAR && mode != FC_SAMPLE_NEAREST)
    FAIL_INT("%s: unknown mode %d (0 bilinear, 1 nearest)", op, mode);
  if (padding < FC_PAD_ZEROS || padding > FC_PAD_REFLECTION)
    FAIL_INT("%s: unknown padding %d (0 zeros, 1 border, 2 reflection)", op, padding);
  if (x->shape[2] < 1 || x->shape[3] < 1) FAIL_INT("%s: input %s has an empty image", op, SHAPE(x));
  fc_tensor *both[2] = {x, grid};
  return check_no_grad(op, 2, both);
}

fc_tensor *fc_grid_sample(fc_tensor *x, fc_tensor *grid, int mode, int padding, int align_corners) {
  if (check_sample_args(x, grid, mode, padding) < 0) return NULL;
  sample_geom g = {x->shape[0], x->shape[1], x->shape[2], x->shape[3], grid->shape[1],
                   grid->shape[2], mode, padding, align_corners != 0};
  int64_t shape[4] = {g.N, g.C, g.Ho, g.Wo};
  fc_tensor *xc = fc_contiguous(x), *gc = xc ? fc_contiguous(grid) : NULL;
  fc_tensor *out = gc ? fc_empty(4, shape, x->dtype, x->device) : NULL;
  if (out && out->numel > 0)
    sample_all(x->dtype == FC_FLOAT64, elem_ptr(xc), elem_ptr(gc), elem_ptr(out), &g);
  fc_release(xc);
  fc_release(gc);
  return out;
}
