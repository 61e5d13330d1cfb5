/* test_loss.c — softmax family and losses. Reference values come from
 * PyTorch 1.13 (torch.nn.functional, float64), computed once with the
 * inputs below and pasted here; gradients against finite differences. */
#include "harness.h"
#include <stdlib.h>

#define X4x3 MK(FC_FLOAT64, S(4, 3), 1.0, 2.0, 0.5, -1.0, 0.0, 3.0, 0.2, 0.2, 0.2, 2.0, -2.0, 1.0)
#define Y4 MK(FC_INT64, S(4), 2, 0, 1, 2)

TEST(softmax_values) {
  fc_tensor *x = MK(FC_FLOAT32, S(2, 3), 1, 2, 3, 1000, 1000, 1000);
  double e = exp(1) + exp(2) + exp(3);
  EXPECT(fc_softmax(x, 1), FC_FLOAT32, S(2, 3), 1e-6, exp(1) / e, exp(2) / e, exp(3) / e, 1.0 / 3, 1.0 / 3, 1.0 / 3);
  EXPECT(fc_log_softmax(x, -1), FC_FLOAT32, S(2, 3), 1e-6, 1 - log(e), 2 - log(e), 3 - log(e), -log(3), -log(3), -log(3));
  fc_tensor *t = fc_transpose(x, 0, 1); /* softmax over a strided dim */
  EXPECT(fc_softmax(t, 0), FC_FLOAT32, S(3, 2), 1e-6, exp(1) / e, 1.0 / 3, exp(2) / e, 1.0 / 3, exp(3) / e, 1.0 / 3);
  CHECK_ERR(fc_softmax(x, 2), "softmax: dim 2 out of range");
  fc_release(t), fc_release(x);
}

TEST(cross_entropy_matches_pytorch) {
  fc_tensor *x = X4x3, *y = Y4, *w = MK(FC_FLOAT64, S(3), 1.0, 2.0, 0.5);
  fc_tensor *y1 = MK(FC_INT64, S(4), 3, 1, 2, 3); /* the same classes counted from 1 */
  EXPECT0(fc_cross_entropy(x, y, NULL, FC_NO_INDEX, 0, FC_REDUCE_MEAN, 0), FC_FLOAT64, 1e-12, 2.1138569044502384);
  EXPECT0(fc_cross_entropy(x, y1, NULL, FC_NO_INDEX, 0, FC_REDUCE_MEAN, 1), FC_FLOAT64, 1e-12, 2.1138569044502384);
  EXPECT0(fc_cross_entropy(x, y, w, FC_NO_INDEX, 0, FC_REDUCE_MEAN, 0), FC_FLOAT64, 1e-12, 1.9771435484453392);
  EXPECT0(fc_cross_entropy(x, y, NULL, 2, 0, FC_REDUCE_MEAN, 0), FC_FLOAT64, 1e-12, 2.5822480962127696);
  EXPECT0(fc_cross_entropy(x, y, NULL, FC_NO_INDEX, 0.1, FC_REDUCE_MEAN, 0), FC_FLOAT64, 1e-12, 2.072190237783572);
  EXPECT0(fc_cross_entropy(x, y, w, FC_NO_INDEX, 0.2, FC_REDUCE_MEAN, 0), FC_FLOAT64, 1e-12, 2.0332814497946603);
  EXPECT0(fc_cross_entropy(x, y, NULL, FC_NO_INDEX, 0, FC_REDUCE_SUM, 0), FC_FLOAT64, 1e-12, 8.455427617800954);
  EXPECT(fc_cross_entropy(x, y, NULL, FC_NO_INDEX, 0, FC_REDUCE_NONE, 0), FC_FLOAT64, S(4), 1e-12,
         1.964368784107945, 4.065883903757429, 1.0986122886681098, 1.3265626412674705);
  fc_tensor *lp = fc_log_softmax(x, 1);
  EXPECT0(fc_nll_loss(lp, y, NULL, FC_NO_INDEX, FC_REDUCE_MEAN, 0), FC_FLOAT64, 1e-12, 2.1138569044502384);
  /* probability targets */
  fc_tensor *praw = MK(FC_FLOAT64, S(4, 3), 0.3, 0.1, 0.6, 0.5, 0.25, 0.25, 0, 1.0, 0, 0.2, 0.2, 0.6);
  fc_tensor *p = fc_softmax(praw, 1);
  EXPECT0(fc_cross_entropy(x, p, NULL, FC_NO_INDEX, 0, FC_REDUCE_MEAN, 0), FC_FLOAT64, 1e-12, 1.740072237775124);
  /* [N,C,H,W] logits: torch.arange(24).reshape(2,3,2,2).sin() */
  double v[24];
  for (int i = 0; i < 24; i++) v[i] = sin(i);
  fc_tensor *x4 = mk(FC_FLOAT64, 4, (int64_t[]){2, 3, 2, 2}, v);
  fc_tensor *y4 = MK(FC_INT64, S(2, 2, 2), 0, 1, 2, 1, 1, 1, 0, 2);
  EXPECT0(fc_cross_entropy(x4, y4, NULL, FC_NO_INDEX, 0, FC_REDUCE_MEAN, 0), FC_FLOAT64, 1e-12, 1.6064477918968663);
  fc_release(x4), fc_release(y4), fc_release(praw), fc_release(p), fc_release(lp), fc_release(y1);
  fc_release(w), fc_release(x), fc_release(y);
}

TEST(other_losses_match_pytorch) {
  fc_tensor *i = MK(FC_FLOAT64, S(4), 0.2, -1.0, 3.0, 0.0), *t = MK(FC_FLOAT64, S(4), 0.0, 1.0, 1.0, 0.5);
  fc_tensor *pw = fc_scalar(2, FC_FLOAT64, CPU), *s = fc_sigmoid(i);
  EXPECT0(fc_binary_cross_entropy_with_logits(i, t, NULL, pw, FC_REDUCE_MEAN), FC_FLOAT64, 1e-12, 1.14038942960136);
  EXPECT0(fc_binary_cross_entropy(s, t, NULL, FC_REDUCE_MEAN), FC_FLOAT64, 1e-12, 0.7132837722583756);
  EXPECT0(fc_smooth_l1_loss(i, t, 0.5, FC_REDUCE_MEAN), FC_FLOAT64, 1e-12, 0.9475);
  EXPECT0(fc_mse_loss(i, t, FC_REDUCE_SUM), FC_FLOAT64, 1e-12, 0.04 + 4 + 4 + 0.25);
  EXPECT(fc_l1_loss(i, t, FC_REDUCE_NONE), FC_FLOAT64, S(4), 1e-12, 0.2, 2, 2, 0.5);
  fc_release(pw), fc_release(s), fc_release(i), fc_release(t);
}

TEST(errors) {
  fc_tensor *x = X4x3, *y = Y4, *bad = MK(FC_INT64, S(4), 0, 3, 1, 1), *y3 = MK(FC_INT64, S(3), 0, 1, 2);
  CHECK_ERR(fc_cross_entropy(x, bad, NULL, FC_NO_INDEX, 0, 1, 0), "cross_entropy: target 3 out of range for 3 classes (valid 0..2)");
  CHECK_ERR(fc_cross_entropy(x, bad, NULL, FC_NO_INDEX, 0, 1, 1), "target 0 out of range for 3 classes (valid 1..3)");
  CHECK_ERR(fc_cross_entropy(x, y3, NULL, FC_NO_INDEX, 0, 1, 0), "target of shape [3] does not match input of shape [4,3]");
  CHECK_ERR(fc_cross_entropy(x, y, NULL, FC_NO_INDEX, 1.5, 1, 0), "label_smoothing must be in [0, 1]");
  CHECK_ERR(fc_cross_entropy(x, y, NULL, FC_NO_INDEX, 0, 7, 0), "reduction must be none (0), mean (1) or sum (2)");
  fc_tensor *w2 = MK(FC_FLOAT64, S(2), 1, 1);
  CHECK_ERR(fc_cross_entropy(x, y, w2, FC_NO_INDEX, 0, 1, 0), "weight of shape [2] does not match 3 classes");
  CHECK_ERR(fc_mse_loss(x, y3, 1), "mse_loss: input of shape [4,3] and target of shape [3] differ");
  fc_release(w2), fc_release(x), fc_release(y), fc_release(bad), fc_release(y3);
}

/* ---- gradients ---------------------------------------------------------- */
static fc_tensor *target_g, *weight_g;
static int mode_g;

static fc_tensor *loss_fn(fc_tensor *x) {
  switch (mode_g) {
  case 0: return fc_cross_entropy(x, target_g, NULL, FC_NO_INDEX, 0, FC_REDUCE_MEAN, 0);
  case 1: return fc_cross_entropy(x, target_g, weight_g, 2, 0.15, FC_REDUCE_MEAN, 0);
  case 2: return fc_cross_entropy(x, target_g, weight_g, FC_NO_INDEX, 0, FC_REDUCE_NONE, 0);
  case 3: return fc_nll_loss(x, target_g, weight_g, FC_NO_INDEX, FC_REDUCE_SUM, 0);
  case 4: return fc_softmax(x, 0);
  case 5: return fc_log_softmax(x, 1);
  case 6: return fc_binary_cross_entropy_with_logits(x, weight_g, NULL, NULL, FC_REDUCE_MEAN);
  case 7: return fc_smooth_l1_loss(x, weight_g, 0.7, FC_REDUCE_SUM);
  }
  return NULL;
}

TEST(gradients) {
  fc_manual_seed(17);
  for (mode_g = 0; mode_g < 8; mode_g++) {
    fc_tensor *x = fc_randn(2, (int64_t[]){4, 3}, FC_FLOAT64, CPU);
    target_g = Y4;
    weight_g = mode_g >= 6 ? fc_rand(2, (int64_t[]){4, 3}, FC_FLOAT64, CPU) : MK(FC_FLOAT64, S(3), 1.0, 2.0, 0.5);
    char name[32];
    snprintf(name, sizeof name, "loss mode %d", mode_g);
    check_gradients(__FILE__, __LINE__, name, apply_one, 1, &x, (void *)loss_fn, 1e-6, 1e-6, 1);
    fc_release(x), fc_release(target_g), fc_release(weight_g);
  }
}

int main(void) {
  RUN(softmax_values);
  RUN(cross_entropy_matches_pytorch);
  RUN(other_losses_match_pytorch);
  RUN(errors);
  RUN(gradients);
  return harness_report();
}
