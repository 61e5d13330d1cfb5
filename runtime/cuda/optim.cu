/* optim.cu — the fused SGD and Adam/AdamW steps of optim.c, one pass over
 * a parameter, its gradient and its state, with the same formulas in the
 * parameter's own precision. */
#include "common.cuh"

template <typename T> __global__ void sgd_kernel(bk_sgd k) {
  T *p = (T *)k.param, *buf = (T *)k.buf;
  const T *g = (const T *)k.grad;
  GRID_STRIDE(i, k.n) {
    T d = g[i] + (T)k.weight_decay * p[i];
    if (buf) {
      buf[i] = k.first_step ? d : (T)k.momentum * buf[i] + (T)(1 - k.dampening) * d;
      d = k.nesterov ? d + (T)k.momentum * buf[i] : buf[i];
    }
    p[i] -= (T)k.lr * d;
  }
}

template <typename T> __global__ void adam_kernel(bk_adam k) {
  T *p = (T *)k.param, *m = (T *)k.exp_avg, *v = (T *)k.exp_avg_sq;
  const T *g = (const T *)k.grad;
  GRID_STRIDE(i, k.n) {
    T gi = g[i];
    if (k.decoupled) p[i] *= (T)(1 - k.lr * k.weight_decay);
    else gi += (T)k.weight_decay * p[i];
    m[i] = (T)k.beta1 * m[i] + (T)(1 - k.beta1) * gi;
    v[i] = (T)k.beta2 * v[i] + (T)(1 - k.beta2) * gi * gi;
    p[i] -= (T)k.step_size * m[i] / (sqrt(v[i]) / (T)k.sqrt_bc2 + (T)k.eps);
  }
}

int cuda_sgd_step(int device, const bk_sgd *k) {
  if (k->n == 0) return 0;
  STREAM_OR_FAIL(s, device);
  if (k->dtype == FC_FLOAT64) sgd_kernel<double><<<grid_for(device, k->n), THREADS, 0, s>>>(*k);
  else sgd_kernel<float><<<grid_for(device, k->n), THREADS, 0, s>>>(*k);
  LAUNCH_CHECK("sgd_step");
  return 0;
}

int cuda_adam_step(int device, const bk_adam *k) {
  if (k->n == 0) return 0;
  STREAM_OR_FAIL(s, device);
  if (k->dtype == FC_FLOAT64) adam_kernel<double><<<grid_for(device, k->n), THREADS, 0, s>>>(*k);
  else adam_kernel<float><<<grid_for(device, k->n), THREADS, 0, s>>>(*k);
  LAUNCH_CHECK("adam_step");
  return 0;
}
