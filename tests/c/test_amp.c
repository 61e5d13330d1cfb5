/* test_amp.c — half-precision conversions (bit patterns from PyTorch 1.13 and
 * by hand), ops on float16/bfloat16 computing in float32, gradients through
 * casts to float32 master weights, and the loss-scaling unscale kernel. */
#include "harness.h"
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

static uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* float32 bits -> float16 bits, bfloat16 bits: torch.tensor(v).half() /
 * .bfloat16() viewed as int16 in PyTorch 1.13 (tools: see the commit). */
static const uint32_t torch_ref[][3] = {
  {0x3f800000u, 0x3c00, 0x3f80}, /* 1.0 */
  {0xc0200000u, 0xc100, 0xc020}, /* -2.5 */
  {0x477fe000u, 0x7bff, 0x4780}, /* 65504, the largest half */
  {0x477fefffu, 0x7bff, 0x4780}, /* just under the halfway point to 65536 */
  {0x477ff000u, 0x7c00, 0x4780}, /* 65520: the tie rounds to even, which is inf */
  {0x49742400u, 0x7c00, 0x4974}, /* 1e6 */
  {0x33800000u, 0x0001, 0x3380}, /* 2^-24, the smallest half subnormal */
  {0x33000000u, 0x0000, 0x3300}, /* 2^-25: a tie between 0 and 2^-24, to even 0 */
  {0x33000001u, 0x0001, 0x3300}, /* just above that tie */
  {0x33c00000u, 0x0002, 0x33c0}, /* 1.5 * 2^-24: tie, to even 2 */
  {0x38800000u, 0x0400, 0x3880}, /* 2^-14, the smallest half normal */
  {0x387fc000u, 0x03ff, 0x3880}, /* the largest half subnormal */
  {0x3f801000u, 0x3c00, 0x3f80}, /* 1 + 2^-11: tie, to even 1.0 */
  {0x3f803000u, 0x3c02, 0x3f80}, /* 1 + 3 * 2^-11: tie, to even 1 + 2^-9 */
  {0x3f802000u, 0x3c01, 0x3f80}, /* 1 + 2^-10 */
  {0x3dcccccdu, 0x2e66, 0x3dcd}, /* 0.1 */
  {0x40490fdbu, 0x4248, 0x4049}, /* pi */
  {0x80000000u, 0x8000, 0x8000}, /* -0 */
  {0x7f800000u, 0x7c00, 0x7f80}, /* inf */
  {0xff800000u, 0xfc00, 0xff80}, /* -inf */
  {0x2edbe6ffu, 0x0000, 0x2edc}, /* 1e-10 */
  {0x7f7f0000u, 0x7c00, 0x7f7f}, /* the largest bfloat16 */
  {0x7f7fc99eu, 0x7c00, 0x7f80}, /* 3.4e38 rounds past it to inf */
  {0x3f808000u, 0x3c04, 0x3f80}, /* 1 + 2^-8: a bfloat16 tie, to even 1.0 */
  {0x3f818000u, 0x3c0c, 0x3f82}, /* 1 + 3 * 2^-8: tie, to even 1 + 2^-6 */
  {0x3f810000u, 0x3c08, 0x3f81}, /* 1 + 2^-7 */
};

TEST(float_to_half_and_bf16_match_pytorch) {
  int n = sizeof torch_ref / sizeof torch_ref[0];
  int64_t shape[1] = {n};
  float src[64];
  for (int i = 0; i < n; i++) src[i] = bits_f32(torch_ref[i][0]);
  fc_tensor *h = fc_from_buffer(src, FC_FLOAT32, 1, shape, FC_FLOAT16, CPU);
  fc_tensor *b = fc_from_buffer(src, FC_FLOAT32, 1, shape, FC_BFLOAT16, CPU);
  const uint16_t *hp = fc_data_ptr(h), *bp = fc_data_ptr(b);
  for (int i = 0; i < n; i++) {
    if (hp[i] != torch_ref[i][1]) harness_fail(__FILE__, __LINE__, "half of %08x: %04x, expected %04x", torch_ref[i][0], hp[i], torch_ref[i][1]);
    if (bp[i] != torch_ref[i][2]) harness_fail(__FILE__, __LINE__, "bf16 of %08x: %04x, expected %04x", torch_ref[i][0], bp[i], torch_ref[i][2]);
  }
  fc_release(h), fc_release(b);
}

/* A NaN pattern read back as float32 (bit tests, no runtime helpers). */
static float half_back(uint16_t h, int dt) {
  if (dt == FC_BFLOAT16) return bits_f32((uint32_t)h << 16);
  return (h & 0x7c00) == 0x7c00 && (h & 0x3ff) ? NAN : 0;
}

/* Every one of the 65536 patterns widens to float32 and rounds back to
 * itself (NaNs stay NaN), through the tensor conversions. */
TEST(every_half_pattern_round_trips) {
  for (int dt = FC_FLOAT16; dt <= FC_BFLOAT16; dt++) {
    int64_t shape[1] = {65536};
    uint16_t *bits = malloc(65536 * 2);
    for (int i = 0; i < 65536; i++) bits[i] = (uint16_t)i;
    fc_tensor *t = fc_from_buffer(bits, dt, 1, shape, dt, CPU);
    fc_tensor *f = fc_to_dtype(t, FC_FLOAT32), *back = fc_to_dtype(f, dt);
    const float *fp = fc_data_ptr(f);
    const uint16_t *bp = fc_data_ptr(back);
    int bad = 0;
    for (int i = 0; i < 65536; i++) {
      bool nan = dt == FC_FLOAT16 ? (i & 0x7c00) == 0x7c00 && (i & 0x3ff) : (i & 0x7f80) == 0x7f80 && (i & 0x7f);
      if (nan ? !isnan(fp[i]) || !isnan(half_back(bp[i], dt)) : bp[i] != i) bad++;
    }
    CHECK(bad == 0);
    /* widening is exact: 0x3555 is 1/3 rounded, 0x0001 is 2^-24 */
    if (dt == FC_FLOAT16) {
      CHECK(fp[0x3555] == 0.333251953125f);
      CHECK(fp[0x0001] == 0x1p-24f && fp[0x8001] == -0x1p-24f);
      CHECK(fp[0x7bff] == 65504.0f && isinf(fp[0x7c00]));
    } else {
      CHECK(fp[0x3eab] == 0.333984375f && fp[0x0001] == 0x1p-133f);
    }
    fc_release(t), fc_release(f), fc_release(back);
    free(bits);
  }
}

/* NaNs stay NaN (PyTorch 1.13 gives 0x7e00/0xfe00 for half, 0xffff for
 * bfloat16: any NaN pattern passes), extremes round as PyTorch does; both
 * the vectorised contiguous runs and the strided per-element path. */
TEST(nan_and_extremes_contiguous_and_strided) {
  static const uint32_t in[6] = {0x7f800001u, 0xff812345u, 0x7fc00000u, 0x7f7fffffu, 0x00000001u, 0x807fffffu};
  static const uint16_t want_h[6] = {0, 0, 0, 0x7c00, 0x0000, 0x8000}, want_b[6] = {0, 0, 0, 0x7f80, 0x0000, 0x8080};
  float src[24];
  for (int i = 0; i < 24; i++) src[i] = bits_f32(in[i % 6]);
  for (int strided = 0; strided <= 1; strided++) {
    fc_tensor *f = fc_from_buffer(src, FC_FLOAT32, 1, (int64_t[]){24}, FC_FLOAT32, CPU);
    fc_tensor *view = strided ? fc_as_strided(f, 1, (int64_t[]){12}, (int64_t[]){2}, 0) : fc_retain(f);
    fc_tensor *h = fc_to_dtype(view, FC_FLOAT16), *b = fc_to_dtype(view, FC_BFLOAT16);
    const uint16_t *hp = fc_data_ptr(h), *bp = fc_data_ptr(b);
    for (int i = 0; i < view->numel; i++) {
      int k = (int)((strided ? 2 * i : i) % 6);
      if (k < 3) {
        CHECK((hp[i] & 0x7c00) == 0x7c00 && (hp[i] & 0x3ff));
        CHECK((bp[i] & 0x7f80) == 0x7f80 && (bp[i] & 0x7f));
      } else {
        CHECK(hp[i] == want_h[k]);
        CHECK(bp[i] == want_b[k]);
      }
    }
    fc_tensor *back = fc_to_dtype(b, FC_FLOAT32);
    const float *fp = fc_data_ptr(back);
    for (int i = 0; i < back->numel; i++) {
      int k = (int)((strided ? 2 * i : i) % 6);
      CHECK(k < 3 ? isnan(fp[i]) : f32_bits(fp[i]) == (uint32_t)want_b[k] << 16);
    }
    fc_release(back), fc_release(h), fc_release(b), fc_release(view), fc_release(f);
  }
}

/* float64 -> half goes through float32 as in PyTorch (c10::Half from a
 * double): 1 + 2^-11 + 2^-40 first becomes the tie 1 + 2^-11, then 1.0.
 * PyTorch 1.13 gives 1.0 for both half and bfloat16 here. */
TEST(float64_rounds_through_float32_like_pytorch) {
  fc_tensor *d = MK(FC_FLOAT64, S(2), 1 + 0x1p-11 + 0x1p-40, 1 + 0x1p-8 + 0x1p-40);
  EXPECT(fc_to_dtype(d, FC_FLOAT16), FC_FLOAT16, S(2), 0, 1.0, 1.00390625);
  EXPECT(fc_to_dtype(d, FC_BFLOAT16), FC_BFLOAT16, S(2), 0, 1.0, 1.0);
  fc_release(d);
}

/* Strided sources convert element by element in logical order. */
TEST(strided_conversion_and_copy) {
  fc_tensor *a = MK(FC_FLOAT32, S(2, 3), 1, 2, 3, 1 + 0x1p-11, 0.1, -65520);
  fc_tensor *at = fc_transpose(a, 0, 1);
  EXPECT(fc_to_dtype(at, FC_FLOAT16), FC_FLOAT16, S(3, 2), 0, 1, 1, 2, 0.0999755859375, 3, -INFINITY);
  fc_tensor *dst = fc_zeros(2, (int64_t[]){3, 2}, FC_BFLOAT16, CPU);
  CHECK(fc_copy_(dst, at) == 0);
  EXPECT(fc_clone(dst), FC_BFLOAT16, S(3, 2), 0, 1, 1, 2, 0.10009765625, 3, -65536);
  /* and back to float32 from a strided half view */
  fc_tensor *dt = fc_transpose(dst, 0, 1);
  EXPECT(fc_to_dtype(dt, FC_FLOAT32), FC_FLOAT32, S(2, 3), 0, 1, 2, 3, 1, 0.10009765625, -65536);
  fc_release(dt), fc_release(dst), fc_release(at), fc_release(a);
}

/* Halves compute in float32 and round once: the bf16 product below is
 * 1 + 7 * 2^-8 in float32, a tie that rounds to even 1 + 2^-5. (PyTorch
 * 1.13's CPU kernel rounds partial sums and gives 1 + 3 * 2^-7 instead, one
 * ulp lower; cuBLAS with float32 accumulation agrees with the single rounding.) */
TEST(half_matmul_rounds_once) {
  fc_tensor *a = MK(FC_BFLOAT16, S(2, 3), 1, 0x1p-8, 3, 0.5, -1, 0x1p-9);
  fc_tensor *b = MK(FC_BFLOAT16, S(3, 2), 1, 1, 1, -1, 0x1p-7, 1);
  EXPECT(fc_matmul(a, b), FC_BFLOAT16, S(2, 2), 0, 1.03125, 4.0, -0.5, 1.5);
  fc_tensor *ah = fc_to_dtype(a, FC_FLOAT16), *bh = fc_to_dtype(b, FC_FLOAT16);
  /* float16 keeps 10 bits: 1.02734375, 3.99609375, -0.49998474 -> -0.5, 1.501953125 */
  EXPECT(fc_matmul(ah, bh), FC_FLOAT16, S(2, 2), 0, 1.02734375, 3.99609375, -0.5, 1.501953125);
  fc_tensor *f = fc_to_dtype(a, FC_FLOAT32);
  CHECK_ERR(fc_matmul(a, f), "matmul: dtypes bfloat16 and float32 differ");
  fc_release(a), fc_release(b), fc_release(ah), fc_release(bh), fc_release(f);
}

/* Reductions accumulate in float32: 1000 ones summed in bfloat16 steps
 * would stop at 256 (256 + 1 rounds back to 256). */
TEST(half_reductions_accumulate_in_float32) {
  for (int dt = FC_FLOAT16; dt <= FC_BFLOAT16; dt++) {
    fc_tensor *o = fc_ones(1, (int64_t[]){1000}, dt, CPU);
    EXPECT0(fc_sum(o, 0, NULL, 0), dt, 0, 1000);
    EXPECT0(fc_mean(o, 0, NULL, 0), dt, 0, 1);
    fc_release(o);
  }
  /* softmax of bf16 logits [0, ln 3]: 1/4 and 3/4, each exact in bf16 */
  fc_tensor *l = MK(FC_BFLOAT16, S(2), 0, 1.0986328125);
  fc_tensor *s = fc_softmax(l, 0);
  CHECK(s && s->dtype == FC_BFLOAT16);
  double v[2];
  fc_to_doubles(s, v);
  CHECK_NEAR(v[0], 0.25, 4e-3);
  CHECK_NEAR(v[1], 0.75, 4e-3);
  fc_release(s), fc_release(l);
}

/* w (float32, the master weight) -> bf16 cast -> matmul -> float32 sum:
 * dL/dw arrives in float32 and equals x^T 1 (exact small integers here). */
TEST(gradient_flows_to_float32_master_weights) {
  fc_tensor *w = MK(FC_FLOAT32, S(2, 2), 0.5, -1, 2, 0.25);
  fc_set_requires_grad(w, 1);
  fc_tensor *x = MK(FC_BFLOAT16, S(3, 2), 1, 2, 3, 4, 5, 6);
  fc_tensor *wb = fc_to_dtype(w, FC_BFLOAT16);
  fc_tensor *y = fc_matmul(x, wb), *y32 = fc_to_dtype(y, FC_FLOAT32), *L = fc_sum(y32, 0, NULL, 0);
  CHECK(wb->dtype == FC_BFLOAT16 && y->dtype == FC_BFLOAT16 && L->dtype == FC_FLOAT32);
  CHECK(fc_backward(L, NULL, 0) == 0);
  /* dL/dw[i][j] = sum_n x[n][i] = 9, 12 */
  EXPECT(fc_get_grad(w), FC_FLOAT32, S(2, 2), 0, 9, 9, 12, 12);
  fc_release(L), fc_release(y32), fc_release(y), fc_release(wb), fc_release(x), fc_release(w);
}

TEST(unscale_multiplies_and_reports_non_finite) {
  fc_tensor *g = MK(FC_FLOAT32, S(4), 1024, -512, 3, 0.5);
  CHECK(fc_amp_unscale_(g, 1.0 / 1024) == 0);
  EXPECT(fc_clone(g), FC_FLOAT32, S(4), 0, 1, -0.5, 0.0029296875, 0.00048828125);
  fc_tensor *inf = MK(FC_FLOAT32, S(3), 1, INFINITY, 2);
  CHECK(fc_amp_unscale_(inf, 0.5) == 1);
  EXPECT(fc_clone(inf), FC_FLOAT32, S(3), 0, 0.5, INFINITY, 1); /* multiplied anyway */
  fc_tensor *nan = MK(FC_FLOAT64, S(2, 2), 1, 2, NAN, 4);
  CHECK(fc_amp_unscale_(nan, 0.25) == 1);
  fc_tensor *d = MK(FC_FLOAT64, S(2), 3, 1e300);
  CHECK(fc_amp_unscale_(d, 0.5) == 0);
  EXPECT(fc_clone(d), FC_FLOAT64, S(2), 0, 1.5, 5e299);
  fc_release(g), fc_release(inf), fc_release(nan), fc_release(d);
}

/* The float32 path multiplies by the float32-rounded inverse (PyTorch:
 * scale.double().reciprocal().float()): 1/3 in float32 is 0x3eaaaaab. */
TEST(unscale_uses_float32_inverse_for_float32) {
  fc_tensor *g = MK(FC_FLOAT32, S(1), 3);
  CHECK(fc_amp_unscale_(g, 1.0 / 3) == 0);
  float got = *(float *)fc_data_ptr(g);
  CHECK(f32_bits(got) == f32_bits(3.0f * bits_f32(0x3eaaaaabu)));
  fc_release(g);
}

/* A big strided gradient is split across threads; an inf in any chunk is
 * seen, and every element is scaled exactly once. */
TEST(unscale_large_strided) {
  int64_t n = 600, m = 500;
  fc_tensor *g = fc_full(2, (int64_t[]){n, m}, 8, FC_FLOAT32, CPU);
  fc_tensor *gt = fc_transpose(g, 0, 1);
  CHECK(fc_amp_unscale_(gt, 0.125) == 0);
  fc_tensor *s = fc_sum(g, 0, NULL, 0);
  double v;
  fc_item(s, &v);
  CHECK_NEAR(v, (double)n * m, 1e-9);
  fc_release(s);
  CHECK(fc_set(g, (int64_t[]){n - 1, m - 7}, INFINITY) == 0);
  CHECK(fc_amp_unscale_(gt, 1) == 1);
  CHECK(fc_set(g, (int64_t[]){n - 1, m - 7}, 1) == 0);
  CHECK(fc_set(g, (int64_t[]){0, 3}, NAN) == 0);
  CHECK(fc_amp_unscale_(g, 1) == 1);
  fc_release(gt), fc_release(g);
}

TEST(unscale_errors) {
  fc_tensor *h = MK(FC_FLOAT16, S(2), 1, 2);
  CHECK_ERR(fc_amp_unscale_(h, 0.5), "amp_unscale_: gradients must be float32 or float64 (float32 master weights), got float16");
  fc_tensor *i = MK(FC_INT64, S(2), 1, 2);
  CHECK_ERR(fc_amp_unscale_(i, 0.5), "got int64");
  fc_tensor *f = MK(FC_FLOAT32, S(2), 1, 2);
  CHECK_ERR(fc_amp_unscale_(f, INFINITY), "amp_unscale_: the inverse scale must be finite");
  CHECK_ERR(fc_amp_unscale_(NULL, 1), "amp_unscale_");
  fc_release(h), fc_release(i), fc_release(f);
}

int main(void) {
  RUN(float_to_half_and_bf16_match_pytorch);
  RUN(every_half_pattern_round_trips);
  RUN(nan_and_extremes_contiguous_and_strided);
  RUN(float64_rounds_through_float32_like_pytorch);
  RUN(strided_conversion_and_copy);
  RUN(half_matmul_rounds_once);
  RUN(half_reductions_accumulate_in_float32);
  RUN(gradient_flows_to_float32_master_weights);
  RUN(unscale_multiplies_and_reports_non_finite);
  RUN(unscale_uses_float32_inverse_for_float32);
  RUN(unscale_large_strided);
  RUN(unscale_errors);
  return harness_report();
}
