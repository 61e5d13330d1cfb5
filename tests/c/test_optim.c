/* test_optim.c — fused optimizer steps against the update rules written
 * out plainly in float64 (torch.optim's documented algorithms). */
#include "harness.h"

enum { N = 5, STEPS = 4 };
static const double P0[N] = {0.5, -1.0, 2.0, 0.0, -0.25};
static const double G[STEPS][N] = {{0.1, -0.2, 0.3, 0.0, 1.0},
                                   {-0.5, 0.4, 0.1, 0.2, -1.0},
                                   {0.05, 0.05, -0.3, -0.2, 0.5},
                                   {0.2, -0.1, 0.0, 0.3, -0.4}};

static fc_tensor *vec(int dtype, const double *v) { return mk(dtype, 1, (int64_t[]){N}, v); }

static void sgd_reference(double *p, double lr, double mom, double damp, double wd, int nesterov) {
  double buf[N] = {0};
  for (int s = 0; s < STEPS; s++)
    for (int i = 0; i < N; i++) {
      double d = G[s][i] + wd * p[i];
      if (mom != 0) {
        buf[i] = s == 0 ? d : mom * buf[i] + (1 - damp) * d;
        d = nesterov ? d + mom * buf[i] : buf[i];
      }
      p[i] -= lr * d;
    }
}

static void check_sgd(int dtype, double lr, double mom, double damp, double wd, int nesterov) {
  double want[N];
  memcpy(want, P0, sizeof want);
  sgd_reference(want, lr, mom, damp, wd, nesterov);
  fc_tensor *p = vec(dtype, P0), *buf = fc_zeros(1, (int64_t[]){N}, dtype, CPU);
  for (int s = 0; s < STEPS; s++) {
    fc_tensor *g = vec(dtype, G[s]);
    CHECK(fc_sgd_step(p, g, mom != 0 ? buf : NULL, lr, mom, damp, wd, nesterov, s == 0) == 0);
    fc_release(g);
  }
  expect_tensor(__FILE__, __LINE__, p, dtype, 1, (int64_t[]){N}, want, dtype == FC_FLOAT32 ? 1e-6 : 1e-12);
  fc_release(buf);
}

TEST(sgd_variants) {
  check_sgd(FC_FLOAT64, 0.1, 0, 0, 0, 0);
  check_sgd(FC_FLOAT64, 0.1, 0.9, 0, 0, 0);
  check_sgd(FC_FLOAT64, 0.05, 0.9, 0.1, 1e-2, 0);
  check_sgd(FC_FLOAT64, 0.05, 0.9, 0, 1e-2, 1);
  check_sgd(FC_FLOAT32, 0.1, 0.9, 0, 5e-4, 1);
}

static void adam_reference(double *p, double lr, double b1, double b2, double eps, double wd, int decoupled) {
  double m[N] = {0}, v[N] = {0};
  for (int s = 0; s < STEPS; s++) {
    int t = s + 1;
    for (int i = 0; i < N; i++) {
      double g = G[s][i];
      if (decoupled) p[i] *= 1 - lr * wd;
      else g += wd * p[i];
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      double mhat = m[i] / (1 - pow(b1, t)), vhat = v[i] / (1 - pow(b2, t));
      p[i] -= lr * mhat / (sqrt(vhat) + eps);
    }
  }
}

static void check_adam(int dtype, double lr, double wd, int decoupled) {
  double want[N];
  memcpy(want, P0, sizeof want);
  adam_reference(want, lr, 0.9, 0.999, 1e-8, wd, decoupled);
  fc_tensor *p = vec(dtype, P0);
  fc_tensor *m = fc_zeros(1, (int64_t[]){N}, dtype, CPU), *v = fc_zeros(1, (int64_t[]){N}, dtype, CPU);
  for (int s = 0; s < STEPS; s++) {
    fc_tensor *g = vec(dtype, G[s]);
    CHECK(fc_adam_step(p, g, m, v, lr, 0.9, 0.999, 1e-8, wd, decoupled, s + 1) == 0);
    fc_release(g);
  }
  expect_tensor(__FILE__, __LINE__, p, dtype, 1, (int64_t[]){N}, want, dtype == FC_FLOAT32 ? 1e-5 : 1e-9);
  fc_release(m), fc_release(v);
}

TEST(adam_and_adamw) {
  check_adam(FC_FLOAT64, 1e-2, 0, 0);
  check_adam(FC_FLOAT64, 1e-2, 0.1, 0);
  check_adam(FC_FLOAT64, 1e-2, 0.1, 1);
  check_adam(FC_FLOAT32, 1e-3, 0.01, 1);
}

/* A hand-worked first Adam step: m = 0.1 g, v = 0.001 g^2, so the update
 * is lr * g / |g| (bias-corrected) = lr * sign(g), up to eps. */
TEST(adam_first_step_is_sign) {
  fc_tensor *p = MK(FC_FLOAT64, S(3), 1, 1, 1), *g = MK(FC_FLOAT64, S(3), 3, -0.5, 2);
  fc_tensor *m = fc_zeros(1, (int64_t[]){3}, FC_FLOAT64, CPU), *v = fc_zeros(1, (int64_t[]){3}, FC_FLOAT64, CPU);
  CHECK(fc_adam_step(p, g, m, v, 0.1, 0.9, 0.999, 1e-12, 0, 0, 1) == 0);
  EXPECT(p, FC_FLOAT64, S(3), 1e-9, 0.9, 1.1, 0.9);
  fc_release(g), fc_release(m), fc_release(v);
}

TEST(errors) {
  fc_tensor *p = MK(FC_FLOAT32, S(3), 1, 2, 3), *g2 = MK(FC_FLOAT32, S(2), 1, 2);
  fc_tensor *gi = MK(FC_INT64, S(3), 1, 2, 3), *g = MK(FC_FLOAT32, S(3), 1, 2, 3);
  CHECK_ERR(fc_sgd_step(p, g2, NULL, 0.1, 0, 0, 0, 0, 1), "gradient of shape [2] (float32) does not match parameter of shape [3]");
  CHECK_ERR(fc_sgd_step(gi, gi, NULL, 0.1, 0, 0, 0, 0, 1), "parameters must be float32 or float64, got int64");
  CHECK_ERR(fc_sgd_step(p, g, NULL, 0.1, 0.9, 0, 0, 0, 1), "needs a momentum buffer");
  CHECK_ERR(fc_sgd_step(p, g, p, 0.1, 0.9, 0.5, 0, 1, 1), "nesterov needs momentum > 0 and zero dampening");
  CHECK_ERR(fc_adam_step(p, g, g, NULL, 0.1, 0.9, 0.999, 1e-8, 0, 0, 1), "both moment buffers");
  CHECK_ERR(fc_adam_step(p, g, g, g, 0.1, 0.9, 0.999, 1e-8, 0, 0, 0), "step counts from 1");
  CHECK_ERR(fc_adam_step(p, g, g, g, 0.1, 1.0, 0.999, 1e-8, 0, 0, 1), "betas must be in [0, 1)");
  fc_tensor *tr = fc_as_strided(p, 1, (int64_t[]){2}, (int64_t[]){2}, 0);
  CHECK_ERR(fc_sgd_step(tr, g2, NULL, 0.1, 0, 0, 0, 0, 1), "parameter must be contiguous");
  fc_release(tr), fc_release(p), fc_release(g2), fc_release(gi), fc_release(g);
}

int main(void) {
  RUN(sgd_variants);
  RUN(adam_and_adamw);
  RUN(adam_first_step_is_sign);
  RUN(errors);
  return harness_report();
}
