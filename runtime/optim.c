/* optim.c — fused per-parameter optimizer updates.
 *
 * One pass over the parameter, its gradient and its state instead of the
 * five or six elementwise ops (and temporaries) the update takes when
 * composed: the optimizers of the training layer call these per parameter. */
#include "backend.h"

static int check_state(const char *op, fc_tensor *param, fc_tensor *other, const char *what) {
  if (!other) return 0;
  if (check_defined(op, other, what) < 0) return -1;
  if (other->device.type != param->device.type || other->device.index != param->device.index)
    FAIL_INT("%s: %s is on another device than the parameter", op, what);
  if (other->numel != param->numel || other->dtype != param->dtype || !fc_is_contiguous(other))
    FAIL_INT("%s: %s of shape %s (%s) does not match parameter of shape %s (%s), or is not contiguous",
             op, what, SHAPE(other), DTYPE(other), SHAPE(param), DTYPE(param));
  return 0;
}

static int check_param(const char *op, fc_tensor *param, fc_tensor *grad) {
  if (check_same_device(op, 2, (const fc_tensor *const[]){param, grad}) < 0) return -1;
  if (param->dtype != FC_FLOAT32 && param->dtype != FC_FLOAT64)
    FAIL_INT("%s: parameters must be float32 or float64, got %s", op, DTYPE(param));
  if (!fc_is_contiguous(param)) FAIL_INT("%s: parameter must be contiguous", op);
  return check_state(op, param, grad, "gradient");
}

#define SGD_LOOP(T)                                                                  \
  do {                                                                               \
    T *p = (T *)elem_ptr(param), *buf = momentum_buf ? (T *)elem_ptr(momentum_buf) : NULL; \
    const T *g = (const T *)elem_ptr(grad);                                          \
    _Pragma("omp parallel for if (n > PARALLEL_GRAIN) schedule(static)")            \
    for (int64_t i = 0; i < n; i++) {                                                \
      T d = g[i] + (T)weight_decay * p[i];                                           \
      if (buf) {                                                                     \
        buf[i] = first_step ? d : (T)momentum * buf[i] + (T)(1 - dampening) * d;     \
        d = nesterov ? d + (T)momentum * buf[i] : buf[i];                            \
      }                                                                              \
      p[i] -= (T)lr * d;                                                             \
    }                                                                                \
  } while (0)

int fc_sgd_step(fc_tensor *param, fc_tensor *grad, fc_tensor *momentum_buf, double lr,
                double momentum, double dampening, double weight_decay, int nesterov,
                int first_step) {
  if (check_param("sgd_step", param, grad) < 0 ||
      check_state("sgd_step", param, momentum_buf, "momentum buffer") < 0)
    return -1;
  if (momentum != 0 && !momentum_buf) FAIL_INT("sgd_step: momentum %g needs a momentum buffer", momentum);
  if (nesterov && (momentum <= 0 || dampening != 0))
    FAIL_INT("sgd_step: nesterov needs momentum > 0 and zero dampening");
  if (momentum == 0) momentum_buf = NULL;
  int64_t n = param->numel;
  if (param->device.type == FC_CUDA) {
    bk_sgd k = {param->dtype, nesterov, first_step, n, elem_ptr(param),
                momentum_buf ? elem_ptr(momentum_buf) : NULL, elem_ptr(grad), lr, momentum,
                dampening, weight_decay};
    if (backend_get()->sgd_step(param->device.index, &k) < 0) return -1;
  } else if (param->dtype == FC_FLOAT32) SGD_LOOP(float);
  else SGD_LOOP(double);
  bump_version(param);
  if (momentum_buf) bump_version(momentum_buf);
  return 0;
}

#define ADAM_LOOP(T, SQRT)                                                           \
  do {                                                                               \
    T *p = (T *)elem_ptr(param), *m = (T *)elem_ptr(exp_avg), *v = (T *)elem_ptr(exp_avg_sq); \
    const T *g = (const T *)elem_ptr(grad);                                          \
    _Pragma("omp parallel for if (n > PARALLEL_GRAIN) schedule(static)")            \
    for (int64_t i = 0; i < n; i++) {                                                \
      T gi = g[i];                                                                   \
      if (decoupled) p[i] *= (T)(1 - lr * weight_decay);                             \
      else gi += (T)weight_decay * p[i];                                             \
      m[i] = (T)beta1 * m[i] + (T)(1 - beta1) * gi;                                  \
      v[i] = (T)beta2 * v[i] + (T)(1 - beta2) * gi * gi;                             \
      p[i] -= (T)step_size * m[i] / (SQRT(v[i]) / (T)sqrt_bc2 + (T)eps);             \
    }                                                                                \
  } while (0)

int fc_adam_step(fc_tensor *param, fc_tensor *grad, fc_tensor *exp_avg, fc_tensor *exp_avg_sq,
                 double lr, double beta1, double beta2, double eps, double weight_decay,
                 int decoupled, int64_t step) {
  if (check_param("adam_step", param, grad) < 0) return -1;
  if (!exp_avg || !exp_avg_sq) FAIL_INT("adam_step: both moment buffers are required");
  if (check_state("adam_step", param, exp_avg, "exp_avg") < 0 ||
      check_state("adam_step", param, exp_avg_sq, "exp_avg_sq") < 0)
    return -1;
  if (step < 1) FAIL_INT("adam_step: step counts from 1, got %lld", (long long)step);
  if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1))
    FAIL_INT("adam_step: betas must be in [0, 1), got %g and %g", beta1, beta2);
  double step_size = lr / (1 - pow(beta1, (double)step));
  double sqrt_bc2 = sqrt(1 - pow(beta2, (double)step));
  int64_t n = param->numel;
  if (param->device.type == FC_CUDA) {
    bk_adam k = {param->dtype, decoupled, n, elem_ptr(param), elem_ptr(exp_avg),
                 elem_ptr(exp_avg_sq), elem_ptr(grad), lr, beta1, beta2, eps, weight_decay,
                 step_size, sqrt_bc2};
    if (backend_get()->adam_step(param->device.index, &k) < 0) return -1;
  } else if (param->dtype == FC_FLOAT32) ADAM_LOOP(float, sqrtf);
  else ADAM_LOOP(double, sqrt);
  bump_version(param);
  bump_version(exp_avg);
  bump_version(exp_avg_sq);
  return 0;
}

/* ---- fastai's update rules ----------------------------------------------
 * Each loop below is fastai's chain of steppers (weight_decay or l2_reg, the
 * running averages, the step) folded into one pass: the decay reads p before
 * the step writes it, exactly as the sequential steppers do. */

static int check_mom(const char *op, const char *name, double mom) {
  if (!(mom >= 0 && mom < 1)) FAIL_INT("%s: %s must be in [0, 1), got %g", op, name, mom);
  return 0;
}

/* The decayed parameter and the L2-regularised gradient of element i. */
#define DECAY(T, pi, gi)                                                             \
  do {                                                                               \
    if (decoupled) pi *= (T)decay;                                                   \
    else gi += (T)wd * pi;                                                           \
  } while (0)

#define SGDW_LOOP(T)                                                                 \
  do {                                                                               \
    T *p = (T *)elem_ptr(param), *avg = grad_avg ? (T *)elem_ptr(grad_avg) : NULL;   \
    const T *g = (const T *)elem_ptr(grad);                                          \
    _Pragma("omp parallel for if (n > PARALLEL_GRAIN) schedule(static)")            \
    for (int64_t i = 0; i < n; i++) {                                                \
      T pi = p[i], gi = g[i];                                                        \
      DECAY(T, pi, gi);                                                              \
      if (avg) gi = avg[i] = (T)mom * avg[i] + gi;                                   \
      p[i] = pi - (T)lr * gi;                                                        \
    }                                                                                \
  } while (0)

int fc_sgdw_step(fc_tensor *param, fc_tensor *grad, fc_tensor *grad_avg, double lr, double mom,
                 double wd, int decoupled) {
  const char *op = "sgdw_step";
  if (check_param(op, param, grad) < 0 || check_state(op, param, grad_avg, "grad_avg") < 0) return -1;
  if (!(mom >= 0)) FAIL_INT("%s: mom must be >= 0, got %g", op, mom);
  if (mom != 0 && !grad_avg) FAIL_INT("%s: mom %g needs a grad_avg buffer", op, mom);
  double decay = 1 - lr * wd;
  if (wd == 0) decoupled = 1; /* decay is then exactly 1 */
  int64_t n = param->numel;
  if (param->dtype == FC_FLOAT32) SGDW_LOOP(float);
  else SGDW_LOOP(double);
  bump_version(param);
  if (grad_avg) bump_version(grad_avg);
  return 0;
}

#define RMSPROP_LOOP(T, SQRT)                                                        \
  do {                                                                               \
    T *p = (T *)elem_ptr(param), *sq = (T *)elem_ptr(sqr_avg);                       \
    T *avg = grad_avg ? (T *)elem_ptr(grad_avg) : NULL;                              \
    const T *g = (const T *)elem_ptr(grad);                                          \
    _Pragma("omp parallel for if (n > PARALLEL_GRAIN) schedule(static)")            \
    for (int64_t i = 0; i < n; i++) {                                                \
      T pi = p[i], gi = g[i];                                                        \
      DECAY(T, pi, gi);                                                              \
      T num = avg ? (avg[i] = (T)mom * avg[i] + gi) : gi;                            \
      sq[i] = (T)sqr_mom * sq[i] + (T)(1 - sqr_mom) * gi * gi;                       \
      p[i] = pi - (T)lr * num / (SQRT(sq[i]) + (T)eps);                              \
    }                                                                                \
  } while (0)

int fc_rmsprop_step(fc_tensor *param, fc_tensor *grad, fc_tensor *grad_avg, fc_tensor *sqr_avg,
                    double lr, double mom, double sqr_mom, double eps, double wd, int decoupled) {
  const char *op = "rmsprop_step";
  if (check_param(op, param, grad) < 0) return -1;
  if (!sqr_avg) FAIL_INT("%s: the sqr_avg buffer is required", op);
  if (check_state(op, param, sqr_avg, "sqr_avg") < 0 || check_state(op, param, grad_avg, "grad_avg") < 0 ||
      check_mom(op, "sqr_mom", sqr_mom) < 0)
    return -1;
  if (!(mom >= 0)) FAIL_INT("%s: mom must be >= 0, got %g", op, mom);
  if (mom != 0 && !grad_avg) FAIL_INT("%s: mom %g needs a grad_avg buffer", op, mom);
  double decay = 1 - lr * wd;
  if (wd == 0) decoupled = 1;
  int64_t n = param->numel;
  if (param->dtype == FC_FLOAT32) RMSPROP_LOOP(float, sqrtf);
  else RMSPROP_LOOP(double, sqrt);
  bump_version(param);
  bump_version(sqr_avg);
  if (grad_avg) bump_version(grad_avg);
  return 0;
}

/* softplus(x) = log(1 + exp(beta x)) / beta, linear past beta x > 20 as in
 * torch.nn.functional.softplus (exp would overflow, and the two agree). */
static inline double softplus(double x, double beta) {
  return beta * x > 20 ? x : log1p(exp(beta * x)) / beta;
}

/* One loop per case, so the common ones stay branch-free and vectorise:
 * momentum only (not yet rectified), rectified, rectified with softplus. */
#define RADAM_LOOP(T, SQRT, UPDATE)                                                  \
  do {                                                                               \
    T *p = (T *)elem_ptr(param), *m = (T *)elem_ptr(grad_avg), *v = (T *)elem_ptr(sqr_avg); \
    const T *g = (const T *)elem_ptr(grad);                                          \
    const T inv_sqrt_d2 = (T)(1 / sqrt(debias2));                                    \
    (void)inv_sqrt_d2;                                                               \
    _Pragma("omp parallel for if (n > PARALLEL_GRAIN) schedule(static)")            \
    for (int64_t i = 0; i < n; i++) {                                                \
      T pi = p[i], gi = g[i];                                                        \
      DECAY(T, pi, gi);                                                              \
      m[i] = (T)mom * m[i] + (T)(1 - mom) * gi;                                      \
      v[i] = (T)sqr_mom * v[i] + (T)(1 - sqr_mom) * gi * gi;                         \
      p[i] = pi - (T)step_size * (UPDATE);                                           \
    }                                                                                \
  } while (0)

#define RADAM_CASES(T, SQRT)                                                         \
  do {                                                                               \
    if (!rectified) RADAM_LOOP(T, SQRT, m[i]);                                       \
    else if (beta > 0) RADAM_LOOP(T, SQRT, m[i] / (T)softplus(SQRT(v[i]) * inv_sqrt_d2 + (T)eps, beta)); \
    else RADAM_LOOP(T, SQRT, m[i] / (SQRT(v[i]) * inv_sqrt_d2 + (T)eps));            \
  } while (0)

int fc_radam_step(fc_tensor *param, fc_tensor *grad, fc_tensor *grad_avg, fc_tensor *sqr_avg,
                  double lr, double mom, double sqr_mom, double eps, double wd, int decoupled,
                  double beta, int64_t step) {
  const char *op = "radam_step";
  if (check_param(op, param, grad) < 0) return -1;
  if (!grad_avg || !sqr_avg) FAIL_INT("%s: both the grad_avg and sqr_avg buffers are required", op);
  if (check_state(op, param, grad_avg, "grad_avg") < 0 || check_state(op, param, sqr_avg, "sqr_avg") < 0 ||
      check_mom(op, "mom", mom) < 0 || check_mom(op, "sqr_mom", sqr_mom) < 0)
    return -1;
  if (step < 1) FAIL_INT("%s: step counts from 1, got %lld", op, (long long)step);
  double t = (double)step, sqr_t = pow(sqr_mom, t);
  double debias1 = 1 - pow(mom, t), debias2 = 1 - sqr_t;
  /* the length of the approximated simple moving average, and its limit */
  double r_inf = 2 / (1 - sqr_mom) - 1, r = r_inf - 2 * t * sqr_t / debias2;
  int rectified = r > 5;
  double step_size = lr / debias1;
  if (rectified) step_size *= sqrt((r - 4) * (r - 2) * r_inf / ((r_inf - 4) * (r_inf - 2) * r));
  double decay = 1 - lr * wd;
  if (wd == 0) decoupled = 1;
  int64_t n = param->numel;
  if (param->dtype == FC_FLOAT32) RADAM_CASES(float, sqrtf);
  else RADAM_CASES(double, sqrt);
  bump_version(param);
  bump_version(grad_avg);
  bump_version(sqr_avg);
  return 0;
}
