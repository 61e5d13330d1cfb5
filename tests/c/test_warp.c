/* test_warp.c — affine_grid and grid_sample (ops_warp.c).
 *
 * Checked by hand on images small enough to work out on paper (identity,
 * mirror, half-pixel shifts read at each padding mode), and against numbers
 * PyTorch 1.13 printed for torch.nn.functional.affine_grid/grid_sample on
 * the inputs below (float64, run once offline and pasted; this test never
 * runs Python). Then the errors, and that float32 agrees with float64. */
#include "harness.h"

enum { BIL = FC_SAMPLE_BILINEAR, NEAR = FC_SAMPLE_NEAREST };
enum { ZEROS = FC_PAD_ZEROS, BORDER = FC_PAD_BORDER, REFL = FC_PAD_REFLECTION };

/* The grid of a theta made for the call (released here). */
static fc_tensor *grid_of(fc_tensor *theta, int64_t H, int64_t W, int align) {
  fc_tensor *g = fc_affine_grid(theta, H, W, align);
  fc_release(theta);
  return g;
}

/* Samples x through theta into an H x W output and releases both inputs. */
static fc_tensor *warp(fc_tensor *x, fc_tensor *theta, int64_t H, int64_t W, int mode, int pad,
                       int align) {
  fc_tensor *g = fc_affine_grid(theta, H, W, align);
  fc_tensor *y = g ? fc_grid_sample(x, g, mode, pad, align) : NULL;
  fc_release(g);
  fc_release(x);
  fc_release(theta);
  return y;
}

#define THETA(...) MK(FC_FLOAT64, S(1, 2, 3), __VA_ARGS__)
#define IMG3x4 MK(FC_FLOAT64, S(1, 1, 3, 4), 0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23)
#define ROW3 MK(FC_FLOAT64, S(1, 1, 1, 3), 0, 10, 20)

TEST(affine_grid_by_hand) {
  /* align_corners: pixel centres at -1, 0, 1 across 3 columns; rows at -1, 1 */
  EXPECT(grid_of(THETA(1, 0, 0, 0, 1, 0), 2, 3, 1), FC_FLOAT64, S(1, 2, 3, 2), 1e-12,
         -1, -1, 0, -1, 1, -1, -1, 1, 0, 1, 1, 1);
  /* not aligned: centres at -2/3, 0, 2/3 and -1/2, 1/2 */
  fc_tensor *th = THETA(1, 0, 0, 0, 1, 0);
  EXPECT(fc_affine_grid(th, 2, 3, 0), FC_FLOAT64, S(1, 2, 3, 2), 1e-12,
         -2.0 / 3, -0.5, 0, -0.5, 2.0 / 3, -0.5, -2.0 / 3, 0.5, 0, 0.5, 2.0 / 3, 0.5);
  fc_release(th);
  /* x' = 2x + 0.5, y' = 3x - y on a single row (y = 0, as in PyTorch) */
  EXPECT(grid_of(THETA(2, 0, 0.5, 3, -1, 0), 1, 2, 1), FC_FLOAT64, S(1, 1, 2, 2), 1e-12,
         -1.5, -3, 2.5, 3);
}

TEST(identity_and_mirror) {
  for (int align = 0; align <= 1; align++) {
    EXPECT(warp(IMG3x4, THETA(1, 0, 0, 0, 1, 0), 3, 4, BIL, ZEROS, align), FC_FLOAT64,
           S(1, 1, 3, 4), 1e-12, 0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23);
    EXPECT(warp(IMG3x4, THETA(1, 0, 0, 0, 1, 0), 3, 4, NEAR, REFL, align), FC_FLOAT64,
           S(1, 1, 3, 4), 1e-12, 0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23);
    /* x -> -x mirrors each row; y -> -y the rows */
    EXPECT(warp(IMG3x4, THETA(-1, 0, 0, 0, 1, 0), 3, 4, BIL, REFL, align), FC_FLOAT64,
           S(1, 1, 3, 4), 1e-12, 3, 2, 1, 0, 13, 12, 11, 10, 23, 22, 21, 20);
    EXPECT(warp(IMG3x4, THETA(1, 0, 0, 0, -1, 0), 3, 4, BIL, ZEROS, align), FC_FLOAT64,
           S(1, 1, 3, 4), 1e-12, 20, 21, 22, 23, 10, 11, 12, 13, 0, 1, 2, 3);
  }
  /* a 2x downscale of the width keeps columns 0 and 3 when aligned */
  EXPECT(warp(IMG3x4, THETA(1, 0, 0, 0, 1, 0), 3, 2, BIL, ZEROS, 1), FC_FLOAT64, S(1, 1, 3, 2),
         1e-12, 0, 3, 10, 13, 20, 23);
}

/* [0, 10, 20] read at pixel positions 0.5, 1.5, 2.5 (aligned, shifted by half
 * a pixel = 0.5 in normalised units): 5 and 15 inside; at 2.5 the right
 * neighbour is outside: zeros gives 20 * 0.5, border clips to 2 (20),
 * reflection folds 2.5 back to 1.5 (15). Nearest rounds half to even:
 * 0.5 -> 0, 1.5 -> 2, 2.5 -> 2. */
TEST(half_pixel_shifts_and_padding) {
  EXPECT(warp(ROW3, THETA(1, 0, 1, 0, 1, 0), 1, 3, BIL, ZEROS, 1), FC_FLOAT64, S(1, 1, 1, 3), 1e-12,
         10, 20, 0);
  fc_tensor *th = THETA(1, 0, 0.5, 0, 1, 0);
  EXPECT(warp(ROW3, fc_retain(th), 1, 3, BIL, ZEROS, 1), FC_FLOAT64, S(1, 1, 1, 3), 1e-12, 5, 15, 10);
  EXPECT(warp(ROW3, fc_retain(th), 1, 3, BIL, BORDER, 1), FC_FLOAT64, S(1, 1, 1, 3), 1e-12, 5, 15, 20);
  EXPECT(warp(ROW3, fc_retain(th), 1, 3, BIL, REFL, 1), FC_FLOAT64, S(1, 1, 1, 3), 1e-12, 5, 15, 15);
  EXPECT(warp(ROW3, fc_retain(th), 1, 3, NEAR, ZEROS, 1), FC_FLOAT64, S(1, 1, 1, 3), 1e-12, 0, 20, 20);
  fc_release(th);
  /* shift left by 1.5 pixels: positions -1.5, -0.5, 0.5; reflection about
   * pixel 0 maps them to 1.5, 0.5, 0.5 */
  EXPECT(warp(ROW3, THETA(1, 0, -1.5, 0, 1, 0), 1, 3, BIL, REFL, 1), FC_FLOAT64, S(1, 1, 1, 3),
         1e-12, 15, 5, 5);
  /* zeros: -0.5 blends pixel 0 with an outside zero: 0.5 * 0 */
  EXPECT(warp(ROW3, THETA(1, 0, -1.5, 0, 1, 0), 1, 3, BIL, ZEROS, 1), FC_FLOAT64, S(1, 1, 1, 3),
         1e-12, 0, 0, 5);
  /* not aligned, reflection about the outer edge: normalised 1 is pixel
   * 2.5, so a shift of 2/3 (one pixel) reads 1, 2, then 3 -> 2 */
  EXPECT(warp(ROW3, THETA(1, 0, 2.0 / 3, 0, 1, 0), 1, 3, BIL, REFL, 0), FC_FLOAT64, S(1, 1, 1, 3),
         1e-12, 10, 20, 20);
}

/* x = 1.5 * arange(12) + 0.25 as [1,1,3,4], theta * 1.6 for a 3x3 output */
#define PT_IMG mk(FC_FLOAT64, 4, (int64_t[]){1, 1, 3, 4}, pt_vals)
#define PT_THETA THETA(1.6 * 0.9, 1.6 * -0.3, 1.6 * 0.25, 1.6 * 0.35, 1.6 * 1.2, 1.6 * -0.4)
static const double pt_vals[12] = {0.25, 1.75, 3.25, 4.75, 6.25, 7.75, 9.25, 10.75, 12.25, 13.75,
                                   15.25, 16.75};
static const double pt_want[2][2][3][9] = {
  { /* align_corners = 0 */
    {{0, 0, 0, 0.3936, 3.94, 0, 6.401, 14.5, 3.3768},
     {1.78, 4.66, 4.75, 0.82, 3.94, 8.35, 8.65, 14.5, 16.75},
     {10.42, 9.94, 5.38, 0.82, 3.94, 8.02, 8.65, 14.5, 16.75}},
    {{0, 0, 0, 0, 3.25, 0, 6.25, 15.25, 0},
     {1.75, 4.75, 4.75, 0.25, 3.25, 10.75, 6.25, 15.25, 16.75},
     {7.75, 10.75, 3.25, 0.25, 3.25, 10.75, 6.25, 15.25, 16.75}}},
  { /* align_corners = 1 */
    {{0, 0, 0, 0.188, 5.56, 0, 2.3254, 10.3104, 1.2328},
     {1.24, 4.48, 4.75, 0.25, 5.56, 10.27, 10.57, 14.32, 16.75},
     {12.52, 13.84, 7.78, 1.54, 5.56, 8.38, 11.74, 12.64, 10.9}},
    {{0, 0, 0, 0.25, 3.25, 0, 0, 13.75, 0},
     {1.75, 4.75, 4.75, 0.25, 3.25, 10.75, 12.25, 13.75, 16.75},
     {13.75, 16.75, 7.75, 0.25, 3.25, 9.25, 13.75, 13.75, 9.25}}}};

TEST(matches_pytorch) {
  /* the 2x3 grid PyTorch printed for theta (unscaled), aligned */
  EXPECT(grid_of(THETA(0.9, -0.3, 0.25, 0.35, 1.2, -0.4), 2, 3, 1), FC_FLOAT64, S(1, 2, 3, 2),
         1e-12, -0.35, -1.95, 0.55, -1.6, 1.45, -1.25, -0.95, 0.45, -0.05, 0.8, 0.85, 1.15);
  for (int align = 0; align <= 1; align++)
    for (int mode = 0; mode <= 1; mode++)
      for (int pad = 0; pad <= 2; pad++) {
        fc_tensor *y = warp(PT_IMG, PT_THETA, 3, 3, mode, pad, align);
        const double *w = pt_want[align][mode][pad];
        expect_tensor(__FILE__, __LINE__, y, FC_FLOAT64, 4, (int64_t[]){1, 1, 3, 3}, w, 1e-6);
      }
}

/* Several images and channels: each image uses its own theta, each channel
 * the same coordinates; float32 agrees with float64. */
TEST(batches_channels_and_float32) {
  fc_tensor *x = MK(FC_FLOAT64, S(2, 2, 1, 2), 1, 2, 3, 4, 5, 6, 7, 8);
  fc_tensor *th = MK(FC_FLOAT64, S(2, 2, 3), 1, 0, 0, 0, 1, 0, -1, 0, 0, 0, 1, 0);
  fc_tensor *g = fc_affine_grid(th, 1, 2, 1);
  EXPECT(fc_grid_sample(x, g, BIL, ZEROS, 1), FC_FLOAT64, S(2, 2, 1, 2), 1e-12, 1, 2, 3, 4, 6, 5, 8, 7);
  fc_tensor *x32 = fc_to_dtype(x, FC_FLOAT32), *g32 = fc_to_dtype(g, FC_FLOAT32);
  EXPECT(fc_grid_sample(x32, g32, BIL, REFL, 1), FC_FLOAT32, S(2, 2, 1, 2), 1e-6, 1, 2, 3, 4, 6, 5, 8, 7);
  /* a strided (transposed) input reads the same as its contiguous copy */
  fc_tensor *xt = fc_transpose(x, 2, 3), *xtc = fc_contiguous(xt);
  fc_tensor *g2 = fc_affine_grid(th, 2, 1, 1);
  fc_tensor *a = fc_grid_sample(xt, g2, BIL, BORDER, 1), *b = fc_grid_sample(xtc, g2, BIL, BORDER, 1);
  double va[8], vb[8];
  fc_to_doubles(a, va);
  fc_to_doubles(b, vb);
  for (int i = 0; i < 8; i++) CHECK(va[i] == vb[i]);
  fc_release(a), fc_release(b), fc_release(xt), fc_release(xtc), fc_release(g2);
  fc_release(x32), fc_release(g32), fc_release(x), fc_release(th), fc_release(g);
}

/* NaN and huge coordinates read as zero (zeros) or an edge (border), never
 * out of bounds. */
TEST(wild_coordinates) {
  fc_tensor *x = ROW3;
  fc_tensor *g = MK(FC_FLOAT64, S(1, 1, 3, 2), NAN, 0, 1e300, 0, -INFINITY, 0);
  EXPECT(fc_grid_sample(x, g, BIL, ZEROS, 1), FC_FLOAT64, S(1, 1, 1, 3), 0, 0, 0, 0);
  EXPECT(fc_grid_sample(x, g, NEAR, ZEROS, 1), FC_FLOAT64, S(1, 1, 1, 3), 0, 0, 0, 0);
  fc_tensor *y = fc_grid_sample(x, g, BIL, REFL, 1);
  CHECK(y != NULL);
  fc_release(y);
  fc_tensor *g2 = MK(FC_FLOAT64, S(1, 1, 2, 2), 1e300, 0, -INFINITY, 0);
  EXPECT(fc_grid_sample(x, g2, BIL, BORDER, 1), FC_FLOAT64, S(1, 1, 1, 2), 0, 20, 0);
  fc_release(x), fc_release(g), fc_release(g2);
}

TEST(errors) {
  fc_tensor *x = IMG3x4, *bad = MK(FC_FLOAT64, S(1, 3, 3), 1, 0, 0, 0, 1, 0, 0, 0, 1);
  CHECK_ERR(fc_affine_grid(bad, 2, 2, 1), "theta must have shape [N,2,3], got [1,3,3]");
  fc_tensor *th = THETA(1, 0, 0, 0, 1, 0);
  CHECK_ERR(fc_affine_grid(th, 0, 2, 1), "output size must be positive");
  fc_tensor *g = fc_affine_grid(th, 2, 2, 1);
  fc_tensor *xi = fc_to_dtype(x, FC_INT64), *g32 = fc_to_dtype(g, FC_FLOAT32);
  CHECK_ERR(fc_grid_sample(xi, g, BIL, ZEROS, 1), "input must be float32 or float64, got int64");
  CHECK_ERR(fc_grid_sample(x, g32, BIL, ZEROS, 1), "grid dtype float32 differs from input dtype float64");
  CHECK_ERR(fc_grid_sample(x, g, 7, ZEROS, 1), "unknown mode 7");
  CHECK_ERR(fc_grid_sample(x, g, BIL, 9, 1), "unknown padding 9");
  fc_tensor *th2 = MK(FC_FLOAT64, S(2, 2, 3), 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0);
  fc_tensor *g2 = fc_affine_grid(th2, 2, 2, 1);
  CHECK_ERR(fc_grid_sample(x, g2, BIL, ZEROS, 1), "grid batch 2 does not match input batch 1");
  fc_release(th2), fc_release(g2);
  fc_tensor *x3 = fc_select(x, 0, 0);
  CHECK_ERR(fc_grid_sample(x3, g, BIL, ZEROS, 1), "input must be [N,C,H,W], got [1,3,4]");
  CHECK_ERR(fc_grid_sample(x, x, BIL, ZEROS, 1), "grid must be [N,Ho,Wo,2]");
  CHECK_ERR(fc_grid_sample(NULL, g, BIL, ZEROS, 1), "input");
  fc_set_requires_grad(x, 1);
  CHECK_ERR(fc_grid_sample(x, g, BIL, ZEROS, 1), "has no backward");
  fc_set_grad_enabled(0);
  fc_tensor *y = fc_grid_sample(x, g, BIL, ZEROS, 1);
  CHECK(y != NULL && y->grad_fn == NULL);
  fc_set_grad_enabled(1);
  fc_release(y), fc_release(x3), fc_release(xi), fc_release(g32);
  fc_release(x), fc_release(bad), fc_release(th), fc_release(g);
}

int main(void) {
  RUN(affine_grid_by_hand);
  RUN(identity_and_mirror);
  RUN(half_pixel_shifts_and_padding);
  RUN(matches_pytorch);
  RUN(batches_channels_and_float32);
  RUN(wild_coordinates);
  RUN(errors);
  return harness_report();
}
