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

/* ---- fastai's rules: references written as fastai's stepper chains ------ */

enum { LONG_STEPS = 8 }; /* RAdam rectifies from step 6 with sqr_mom 0.9 */
static double grad_at(int s, int i) { return G[s % STEPS][i]; }

static void fastai_decay(double *p, double *g, double lr, double wd, int decoupled) {
  for (int i = 0; i < N; i++) {
    if (decoupled) p[i] *= 1 - lr * wd; /* weight_decay */
    else g[i] += wd * p[i];             /* l2_reg */
  }
}
static double debias(double mom, double damp, int step) { return damp * (1 - pow(mom, step)) / (1 - mom); }

static void sgdw_reference(double *p, int steps, double lr, double mom, double wd, int decoupled) {
  double avg[N] = {0}, g[N];
  for (int s = 0; s < steps; s++) {
    for (int i = 0; i < N; i++) g[i] = grad_at(s, i);
    fastai_decay(p, g, lr, wd, decoupled);
    for (int i = 0; i < N; i++) {
      if (mom != 0) avg[i] = avg[i] * mom + g[i]; /* average_grad, no dampening */
      p[i] -= lr * (mom != 0 ? avg[i] : g[i]);    /* momentum_step / sgd_step */
    }
  }
}

static void rmsprop_reference(double *p, int steps, double lr, double mom, double sqr_mom, double eps,
                              double wd, int decoupled) {
  double avg[N] = {0}, sq[N] = {0}, g[N];
  for (int s = 0; s < steps; s++) {
    for (int i = 0; i < N; i++) g[i] = grad_at(s, i);
    fastai_decay(p, g, lr, wd, decoupled);
    for (int i = 0; i < N; i++) {
      if (mom != 0) avg[i] = avg[i] * mom + g[i];
      sq[i] = sq[i] * sqr_mom + (1 - sqr_mom) * g[i] * g[i]; /* average_sqr_grad, dampened */
      p[i] -= lr * (mom != 0 ? avg[i] : g[i]) / (sqrt(sq[i]) + eps);
    }
  }
}

/* adam_step and radam_step in fastai's own terms: debias() and the
 * rectification term, with eps added after the square root. */
static void adam_family_reference(double *p, int steps, double lr, double mom, double sqr_mom, double eps,
                                  double wd, int decoupled, int radam, double beta) {
  double m[N] = {0}, v[N] = {0}, g[N];
  for (int s = 0; s < steps; s++) {
    int t = s + 1;
    for (int i = 0; i < N; i++) g[i] = grad_at(s, i);
    fastai_decay(p, g, lr, wd, decoupled);
    double d1 = debias(mom, 1 - mom, t), d2 = debias(sqr_mom, 1 - sqr_mom, t);
    double r_inf = 2 / (1 - sqr_mom) - 1, r = r_inf - 2 * t * pow(sqr_mom, t) / (1 - pow(sqr_mom, t));
    for (int i = 0; i < N; i++) {
      m[i] = m[i] * mom + (1 - mom) * g[i];
      v[i] = v[i] * sqr_mom + (1 - sqr_mom) * g[i] * g[i];
      double denom = sqrt(v[i] / d2) + eps;
      if (!radam) { p[i] -= lr / d1 * m[i] / denom; continue; }
      if (r > 5) {
        double rect = sqrt((r - 4) * (r - 2) * r_inf / ((r_inf - 4) * (r_inf - 2) * r));
        if (beta > 0) denom = log(1 + exp(beta * denom)) / beta;
        p[i] -= lr * rect / d1 * m[i] / denom;
      } else {
        p[i] -= lr / d1 * m[i];
      }
    }
  }
}

static fc_tensor *zeros_n(int dtype) { return fc_zeros(1, (int64_t[]){N}, dtype, CPU); }
static double tol_for(int dtype) { return dtype == FC_FLOAT32 ? 2e-5 : 1e-10; }

static void check_sgdw(int dtype, double lr, double mom, double wd, int decoupled) {
  double want[N];
  memcpy(want, P0, sizeof want);
  sgdw_reference(want, LONG_STEPS, lr, mom, wd, decoupled);
  fc_tensor *p = vec(dtype, P0), *avg = zeros_n(dtype);
  for (int s = 0; s < LONG_STEPS; s++) {
    fc_tensor *g = vec(dtype, G[s % STEPS]);
    CHECK(fc_sgdw_step(p, g, mom != 0 ? avg : NULL, lr, mom, wd, decoupled) == 0);
    fc_release(g);
  }
  expect_tensor(__FILE__, __LINE__, p, dtype, 1, (int64_t[]){N}, want, tol_for(dtype));
  fc_release(avg);
}

TEST(fastai_sgd) {
  check_sgdw(FC_FLOAT64, 0.1, 0, 0, 1);
  check_sgdw(FC_FLOAT64, 0.1, 0.9, 0, 1);
  check_sgdw(FC_FLOAT64, 0.05, 0.9, 0.1, 1);
  check_sgdw(FC_FLOAT64, 0.05, 0.9, 0.1, 0);
  check_sgdw(FC_FLOAT32, 0.1, 0.85, 0.01, 1);
}

/* Two steps worked by hand: p = 1, g = 0.5 then -1, lr 0.1, mom 0.9, wd 0.1
 * decoupled. Step 1: p = 1 * 0.99 = 0.99, avg = 0.5, p = 0.99 - 0.05 = 0.94.
 * Step 2: p = 0.94 * 0.99 = 0.9306, avg = 0.45 - 1 = -0.55, p = 0.9306 + 0.055. */
TEST(fastai_sgd_by_hand) {
  fc_tensor *p = MK(FC_FLOAT64, S(1), 1), *avg = fc_zeros(1, (int64_t[]){1}, FC_FLOAT64, CPU);
  fc_tensor *g1 = MK(FC_FLOAT64, S(1), 0.5), *g2 = MK(FC_FLOAT64, S(1), -1);
  CHECK(fc_sgdw_step(p, g1, avg, 0.1, 0.9, 0.1, 1) == 0);
  CHECK(fc_sgdw_step(p, g2, avg, 0.1, 0.9, 0.1, 1) == 0);
  EXPECT(fc_retain(avg), FC_FLOAT64, S(1), 1e-12, -0.55);
  EXPECT(p, FC_FLOAT64, S(1), 1e-12, 0.9856);
  fc_release(avg), fc_release(g1), fc_release(g2);
}

static void check_rmsprop(int dtype, double lr, double mom, double sqr_mom, double wd, int decoupled) {
  double want[N];
  memcpy(want, P0, sizeof want);
  rmsprop_reference(want, LONG_STEPS, lr, mom, sqr_mom, 1e-8, wd, decoupled);
  fc_tensor *p = vec(dtype, P0), *avg = zeros_n(dtype), *sq = zeros_n(dtype);
  for (int s = 0; s < LONG_STEPS; s++) {
    fc_tensor *g = vec(dtype, G[s % STEPS]);
    CHECK(fc_rmsprop_step(p, g, mom != 0 ? avg : NULL, sq, lr, mom, sqr_mom, 1e-8, wd, decoupled) == 0);
    fc_release(g);
  }
  expect_tensor(__FILE__, __LINE__, p, dtype, 1, (int64_t[]){N}, want, tol_for(dtype));
  fc_release(avg), fc_release(sq);
}

TEST(fastai_rmsprop) {
  check_rmsprop(FC_FLOAT64, 0.01, 0, 0.99, 0, 1);
  check_rmsprop(FC_FLOAT64, 0.01, 0.9, 0.99, 0.1, 1);
  check_rmsprop(FC_FLOAT64, 0.01, 0.9, 0.9, 0.1, 0);
  check_rmsprop(FC_FLOAT32, 0.01, 0.5, 0.99, 0.01, 1);
}

static void check_adam_family(int dtype, int radam, double lr, double mom, double sqr_mom, double eps,
                              double wd, int decoupled, double beta) {
  double want[N];
  memcpy(want, P0, sizeof want);
  adam_family_reference(want, LONG_STEPS, lr, mom, sqr_mom, eps, wd, decoupled, radam, beta);
  fc_tensor *p = vec(dtype, P0), *m = zeros_n(dtype), *v = zeros_n(dtype);
  for (int s = 0; s < LONG_STEPS; s++) {
    fc_tensor *g = vec(dtype, G[s % STEPS]);
    int rc = radam ? fc_radam_step(p, g, m, v, lr, mom, sqr_mom, eps, wd, decoupled, beta, s + 1)
                   : fc_adam_step(p, g, m, v, lr, mom, sqr_mom, eps, wd, decoupled, s + 1);
    CHECK(rc == 0);
    fc_release(g);
  }
  expect_tensor(__FILE__, __LINE__, p, dtype, 1, (int64_t[]){N}, want, tol_for(dtype));
  fc_release(m), fc_release(v);
}

/* fastai's Adam (mom 0.9, sqr_mom 0.99, eps 1e-5, wd 0.01 decoupled) is the
 * AdamW kernel: the same numbers as fastai's debias() formulation. */
TEST(fastai_adam_is_adamw_kernel) {
  check_adam_family(FC_FLOAT64, 0, 1e-2, 0.9, 0.99, 1e-5, 0.01, 1, 0);
  check_adam_family(FC_FLOAT64, 0, 1e-2, 0.95, 0.99, 1e-5, 0.1, 0, 0);
  check_adam_family(FC_FLOAT32, 0, 1e-3, 0.85, 0.99, 1e-5, 0.01, 1, 0);
}

TEST(fastai_radam) {
  check_adam_family(FC_FLOAT64, 1, 1e-2, 0.9, 0.9, 1e-5, 0, 1, 0);     /* both branches */
  check_adam_family(FC_FLOAT64, 1, 1e-2, 0.9, 0.9, 1e-5, 0.1, 0, 0);
  check_adam_family(FC_FLOAT64, 1, 1e-2, 0.95, 0.9, 1e-6, 0.01, 1, 5); /* softplus */
  check_adam_family(FC_FLOAT64, 1, 1e-2, 0.9, 0.99, 1e-5, 0.01, 1, 0); /* never rectified */
  check_adam_family(FC_FLOAT32, 1, 1e-3, 0.9, 0.9, 1e-5, 0.01, 1, 0);
}

/* RAdam's first step is unrectified: p -= lr/debias1 * m = lr * g. */
TEST(fastai_radam_first_step_by_hand) {
  fc_tensor *p = MK(FC_FLOAT64, S(2), 1, -1), *g = MK(FC_FLOAT64, S(2), 0.3, -2);
  fc_tensor *m = fc_zeros(1, (int64_t[]){2}, FC_FLOAT64, CPU), *v = fc_zeros(1, (int64_t[]){2}, FC_FLOAT64, CPU);
  CHECK(fc_radam_step(p, g, m, v, 0.1, 0.9, 0.99, 1e-5, 0, 1, 0, 1) == 0);
  EXPECT(p, FC_FLOAT64, S(2), 1e-12, 0.97, -0.8);
  fc_release(g), fc_release(m), fc_release(v);
}

TEST(fastai_errors) {
  fc_tensor *p = MK(FC_FLOAT32, S(3), 1, 2, 3), *g = MK(FC_FLOAT32, S(3), 1, 2, 3);
  fc_tensor *b2 = MK(FC_FLOAT32, S(2), 0, 0), *bd = MK(FC_FLOAT64, S(3), 0, 0, 0);
  CHECK_ERR(fc_sgdw_step(p, g, NULL, 0.1, 0.9, 0, 1), "sgdw_step: mom 0.9 needs a grad_avg buffer");
  CHECK_ERR(fc_sgdw_step(p, g, b2, 0.1, 0.9, 0, 1), "grad_avg of shape [2] (float32) does not match");
  CHECK_ERR(fc_sgdw_step(p, g, bd, 0.1, 0.9, 0, 1), "grad_avg of shape [3] (float64) does not match");
  CHECK_ERR(fc_rmsprop_step(p, g, NULL, NULL, 0.1, 0, 0.99, 1e-8, 0, 1), "sqr_avg buffer is required");
  CHECK_ERR(fc_rmsprop_step(p, g, NULL, g, 0.1, 0, 1.5, 1e-8, 0, 1), "sqr_mom must be in [0, 1), got 1.5");
  CHECK_ERR(fc_radam_step(p, g, NULL, g, 0.1, 0.9, 0.99, 1e-5, 0, 1, 0, 1), "both the grad_avg and sqr_avg");
  CHECK_ERR(fc_radam_step(p, g, g, g, 0.1, 0.9, 0.99, 1e-5, 0, 1, 0, 0), "radam_step: step counts from 1");
  CHECK_ERR(fc_radam_step(p, g, g, g, 0.1, 1, 0.99, 1e-5, 0, 1, 0, 1), "mom must be in [0, 1)");
  fc_release(p), fc_release(g), fc_release(b2), fc_release(bd);
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
  RUN(fastai_sgd);
  RUN(fastai_sgd_by_hand);
  RUN(fastai_rmsprop);
  RUN(fastai_adam_is_adamw_kernel);
  RUN(fastai_radam);
  RUN(fastai_radam_first_step_by_hand);
  RUN(fastai_errors);
  return harness_report();
}
