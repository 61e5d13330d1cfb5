/* test_cuda_dispatch.c — the core's CUDA paths, run against the host-memory
 * fake plugin (fake_cuda_plugin.c) so they are checked on any machine:
 * loading, allocation and statistics through the plugin's allocator,
 * transfers both ways, creation on a device, op dispatch with the CPU's
 * results, autograd and optimizer steps on a device, and the errors for
 * ops without a CUDA kernel. The fake's device pointers are non-canonical:
 * a path that reads device memory on the host crashes this test. */
#include "harness.h"
#include <dlfcn.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

static const fc_device GPU = {FC_CUDA, 0}, GPU1 = {FC_CUDA, 1};

static fc_tensor *to(fc_tensor *t, fc_device d) {
  fc_tensor *r = fc_to_device(t, d);
  if (!r) harness_fail(__FILE__, __LINE__, "to_device: %s", fc_last_error());
  return r;
}

/* cpu and gpu (released) hold the same values within tol. */
static void same(const char *file, int line, fc_tensor *cpu, fc_tensor *gpu, double tol) {
  if (!cpu || !gpu) {
    harness_fail(file, line, "missing result: %s", fc_last_error());
  } else if (gpu->device.type != FC_CUDA) {
    harness_fail(file, line, "result is not on the GPU");
  } else if (cpu->numel != gpu->numel || cpu->ndim != gpu->ndim || cpu->dtype != gpu->dtype) {
    harness_fail(file, line, "shape/dtype differ: %d-dim %s vs %d-dim %s", cpu->ndim,
                 fc_dtype_name(cpu->dtype), gpu->ndim, fc_dtype_name(gpu->dtype));
  } else {
    double *a = malloc(sizeof(double) * (size_t)(cpu->numel + 1));
    double *b = malloc(sizeof(double) * (size_t)(cpu->numel + 1));
    fc_to_doubles(cpu, a);
    if (fc_to_doubles(gpu, b) < 0) harness_fail(file, line, "to_doubles: %s", fc_last_error());
    for (int64_t i = 0; i < cpu->numel; i++)
      if (a[i] != b[i] && !(fabs(a[i] - b[i]) <= tol * (1 + fabs(a[i]))) && !(isnan(a[i]) && isnan(b[i]))) {
        harness_fail(file, line, "element %lld: cpu %.9g, gpu %.9g", (long long)i, a[i], b[i]);
        break;
      }
    free(a), free(b);
  }
  fc_release(cpu), fc_release(gpu);
}
#define SAME(cpu, gpu, tol) same(__FILE__, __LINE__, cpu, gpu, tol)

static fc_tensor *randn(int ndim, const int64_t *shape, int dtype) {
  return fc_randn(ndim, shape, dtype, CPU);
}

TEST(plugin_loads_and_reports) {
  CHECK(fc_cuda_is_available() == 1);
  CHECK(fc_cuda_device_count() == 2);
  CHECK(strcmp(fc_cuda_why_unavailable(), "") == 0);
  CHECK(strstr(fc_cuda_info(), "fake") != NULL);
  CHECK(fc_cuda_synchronize(0) == 0 && fc_cuda_synchronize(-1) == 0);
  CHECK_ERR(fc_cuda_synchronize(2), "cuda:2 does not exist");
  CHECK(fc_cuda_allow_tf32() == 1);
  fc_cuda_set_allow_tf32(0);
  CHECK(fc_cuda_allow_tf32() == 0);
  fc_cuda_set_allow_tf32(1);
}

TEST(transfers_round_trip_every_dtype) {
  for (int dt = 0; dt < FC_NUM_DTYPES; dt++) {
    fc_tensor *c = MK(dt, S(2, 3), 1, 0, 1, 1, 0, 1); /* values every dtype holds */
    fc_tensor *g = to(c, GPU);
    CHECK(g->device.type == FC_CUDA && g->dtype == dt);
    CHECK(((uintptr_t)fc_data_ptr(g) >> 62) & 1); /* really "device" memory */
    fc_tensor *back = to(g, CPU);
    EXPECT(back, dt, S(2, 3), 0, 1, 0, 1, 1, 0, 1);
    fc_release(g), fc_release(c);
  }
  fc_tensor *m = MK(FC_FLOAT32, S(2, 3), 1, 2, 3, 4, 5, 6);
  fc_tensor *t = fc_transpose(m, 0, 1); /* strided: made contiguous on the way */
  fc_tensor *g = to(t, GPU1), *g0 = to(g, GPU); /* and across devices */
  CHECK(g->device.index == 1 && g0->device.index == 0);
  EXPECT(to(g0, CPU), FC_FLOAT32, S(3, 2), 0, 1, 4, 2, 5, 3, 6);
  fc_release(m), fc_release(t), fc_release(g), fc_release(g0);
}

TEST(creation_on_the_device_matches_the_cpu) {
  int64_t sh[2] = {3, 4};
  SAME(fc_full(2, sh, 2.5, FC_FLOAT64, CPU), fc_full(2, sh, 2.5, FC_FLOAT64, GPU), 0);
  SAME(fc_arange(0, 5, 0.5, FC_FLOAT32, CPU), fc_arange(0, 5, 0.5, FC_FLOAT32, GPU), 0);
  SAME(fc_linspace(-1, 1, 7, FC_FLOAT32, CPU), fc_linspace(-1, 1, 7, FC_FLOAT32, GPU), 0);
  SAME(fc_eye(3, 4, FC_INT64, CPU), fc_eye(3, 4, FC_INT64, GPU), 0);
  fc_manual_seed(7);
  fc_tensor *a = fc_randn(2, sh, FC_FLOAT32, CPU);
  fc_manual_seed(7);
  SAME(a, fc_randn(2, sh, FC_FLOAT32, GPU), 0); /* the same Philox numbers */
  fc_manual_seed(3);
  fc_tensor *p = fc_randperm(10, FC_INT64, CPU);
  fc_manual_seed(3);
  SAME(p, fc_randperm(10, FC_INT64, GPU), 0);
  fc_tensor *g = fc_zeros(2, sh, FC_FLOAT32, GPU);
  CHECK(fc_normal_(g, 0, 1) == 0);
  fc_tensor *s = fc_sum(g, 0, NULL, 0);
  double v;
  CHECK(fc_item(s, &v) == 0 && v != 0);
  CHECK(fc_set(g, (int64_t[]){1, 2}, 42) == 0);
  CHECK(fc_get(g, (int64_t[]){1, 2}, &v) == 0 && v == 42);
  fc_release(s), fc_release(g);
}

typedef fc_tensor *(*binop)(fc_tensor *, fc_tensor *);

TEST(elementwise_ops_match_with_broadcasting_and_promotion) {
  fc_tensor *a = randn(2, (int64_t[]){4, 5}, FC_FLOAT32), *b = randn(1, (int64_t[]){5}, FC_FLOAT32);
  fc_tensor *i = MK(FC_INT64, S(5), 1, -2, 3, 0, 7);
  fc_tensor *ga = to(a, GPU), *gb = to(b, GPU), *gi = to(i, GPU);
  binop ops[] = {fc_add, fc_sub, fc_mul, fc_div, fc_maximum, fc_minimum, fc_lt, fc_ge, fc_eq};
  for (size_t k = 0; k < sizeof ops / sizeof *ops; k++) {
    SAME(ops[k](a, b), ops[k](ga, gb), 1e-6);
    SAME(ops[k](a, i), ops[k](ga, gi), 1e-6); /* int64 promoted to float32 */
  }
  SAME(fc_mul(i, i), fc_mul(gi, gi), 0);
  SAME(fc_pow(i, i), fc_pow(gi, gi), 0);
  SAME(fc_add_scaled(a, b, -2), fc_add_scaled(ga, gb, -2), 1e-6);
  fc_tensor *(*unary[])(fc_tensor *) = {fc_exp, fc_tanh, fc_sigmoid, fc_relu, fc_gelu, fc_silu,
                                       fc_abs, fc_neg, fc_floor, fc_sign, fc_sin};
  for (size_t k = 0; k < sizeof unary / sizeof *unary; k++) SAME(unary[k](a), unary[k](ga), 1e-6);
  SAME(fc_clamp(a, -0.5, 0.5), fc_clamp(ga, -0.5, 0.5), 0);
  SAME(fc_leaky_relu(a, 0.1), fc_leaky_relu(ga, 0.1), 1e-6);
  SAME(fc_abs(i), fc_abs(gi), 0);
  fc_tensor *cond = fc_gt(a, b), *gcond = fc_gt(ga, gb);
  SAME(fc_where(cond, a, b), fc_where(gcond, ga, gb), 0);
  SAME(fc_logical_not(cond), fc_logical_not(gcond), 0);
  fc_tensor *h = fc_to_dtype(a, FC_BFLOAT16), *gh = fc_to_dtype(ga, FC_BFLOAT16);
  SAME(fc_mul(h, h), fc_mul(gh, gh), 1e-2);
  fc_tensor *at = fc_transpose(a, 0, 1), *gat = fc_transpose(ga, 0, 1); /* strided operands */
  SAME(fc_add(at, at), fc_add(gat, gat), 1e-6);
  CHECK(fc_add_(a, b) == 0 && fc_add_(ga, gb) == 0); /* in place, broadcast */
  SAME(fc_clone(a), fc_clone(ga), 1e-6);
  fc_tensor *tmp[] = {a, b, i, ga, gb, gi, cond, gcond, h, gh, at, gat};
  for (size_t k = 0; k < sizeof tmp / sizeof *tmp; k++) fc_release(tmp[k]);
}

TEST(reductions_match) {
  fc_tensor *a = randn(3, (int64_t[]){3, 4, 5}, FC_FLOAT64), *ga = to(a, GPU);
  int d0[] = {0}, d12[] = {1, 2}, d02[] = {0, 2}, dl[] = {-1};
  SAME(fc_sum(a, 0, NULL, 0), fc_sum(ga, 0, NULL, 0), 1e-12);
  SAME(fc_sum(a, 1, d0, 0), fc_sum(ga, 1, d0, 0), 1e-12);
  SAME(fc_mean(a, 2, d12, 1), fc_mean(ga, 2, d12, 1), 1e-12);
  SAME(fc_amax(a, 2, d02, 0), fc_amax(ga, 2, d02, 0), 0);
  SAME(fc_amin(a, 1, dl, 0), fc_amin(ga, 1, dl, 0), 0);
  SAME(fc_prod(a, 1, dl, 0), fc_prod(ga, 1, dl, 0), 1e-12);
  fc_tensor *i = MK(FC_INT32, S(2, 3), 1, 2, 3, 4, 5, 6), *gi = to(i, GPU);
  SAME(fc_sum(i, 1, d0, 0), fc_sum(gi, 1, d0, 0), 0); /* int64 result */
  SAME(fc_any(i, 0, NULL, 0), fc_any(gi, 0, NULL, 0), 0);
  fc_tensor *e = fc_zeros(2, (int64_t[]){0, 3}, FC_FLOAT32, GPU); /* the mean of nothing */
  fc_tensor *m = fc_mean(e, 1, d0, 0);
  double v;
  CHECK(m && fc_get(m, (int64_t[]){0}, &v) == 0 && isnan(v));
  CHECK_ERR(fc_norm(ga, 2, 0, NULL, 0), "no CUDA kernel yet");
  fc_release(a), fc_release(ga), fc_release(i), fc_release(gi), fc_release(e), fc_release(m);
}

TEST(matmul_and_addmm_match) {
  fc_tensor *a = randn(2, (int64_t[]){3, 4}, FC_FLOAT32), *b = randn(2, (int64_t[]){4, 5}, FC_FLOAT32);
  fc_tensor *c = randn(1, (int64_t[]){5}, FC_FLOAT32), *v = randn(1, (int64_t[]){4}, FC_FLOAT32);
  fc_tensor *bat = randn(3, (int64_t[]){2, 3, 4}, FC_FLOAT32);
  fc_tensor *ga = to(a, GPU), *gb = to(b, GPU), *gc = to(c, GPU), *gv = to(v, GPU), *gbat = to(bat, GPU);
  SAME(fc_matmul(a, b), fc_matmul(ga, gb), 1e-5);
  SAME(fc_matmul(a, v), fc_matmul(ga, gv), 1e-5);
  SAME(fc_matmul(bat, b), fc_matmul(gbat, gb), 1e-5);
  fc_tensor *bt = fc_transpose(b, 0, 1), *gbt = fc_transpose(gb, 0, 1); /* [5,4], stored transposed */
  fc_tensor *at = fc_transpose(a, 0, 1), *gat = fc_transpose(ga, 0, 1);
  SAME(fc_matmul(bt, at), fc_matmul(gbt, gat), 1e-5);
  SAME(fc_addmm(c, a, b, 0.5, 2), fc_addmm(gc, ga, gb, 0.5, 2), 1e-5);
  fc_tensor *e = fc_zeros(2, (int64_t[]){3, 0}, FC_FLOAT32, CPU), *f = fc_zeros(2, (int64_t[]){0, 5}, FC_FLOAT32, CPU);
  fc_tensor *ge = to(e, GPU), *gf = to(f, GPU);
  SAME(fc_matmul(e, f), fc_matmul(ge, gf), 0); /* k == 0: zeros */
  fc_tensor *il = MK(FC_INT64, S(1, 1), 2), *gil = to(il, GPU);
  CHECK_ERR(fc_matmul(gil, gil), "no CUDA kernel yet");
  fc_tensor *tmp[] = {a, b, c, v, bat, ga, gb, gc, gv, gbat, bt, gbt, at, gat, e, f, ge, gf, il, gil};
  for (size_t k = 0; k < sizeof tmp / sizeof *tmp; k++) fc_release(tmp[k]);
}

static fc_tensor *softmax_sum(fc_tensor **in, void *ctx) {
  fc_tensor *s = *(int *)ctx ? fc_log_softmax(in[0], 1) : fc_softmax(in[0], 1);
  fc_tensor *w = fc_arange(1, 1 + (double)s->numel, 1, s->dtype, s->device);
  fc_tensor *ws = fc_reshape(w, s->ndim, s->shape), *p = fc_mul(s, ws), *r = fc_sum(p, 0, NULL, 0);
  fc_release(s), fc_release(w), fc_release(ws), fc_release(p);
  return r;
}

/* grad of f(x) on the GPU equals grad on the CPU. */
static void same_grad(const char *file, int line, fc_tensor *x, grad_fn f, void *ctx, double tol) {
  fc_tensor *cx = fc_clone(x), *gx = fc_to_device(x, GPU);
  fc_set_requires_grad(cx, 1), fc_set_requires_grad(gx, 1);
  fc_tensor *lc = f(&cx, ctx), *lg = f(&gx, ctx);
  if (!lc || !lg || fc_backward(lc, NULL, 0) < 0 || fc_backward(lg, NULL, 0) < 0) {
    harness_fail(file, line, "backward: %s", fc_last_error());
  } else {
    same(file, line, fc_detach(lc), fc_detach(lg), tol);
    same(file, line, fc_get_grad(cx), fc_get_grad(gx), tol);
  }
  fc_release(cx), fc_release(gx), fc_release(lc), fc_release(lg);
}

TEST(softmax_forward_and_backward_match) {
  fc_tensor *x = randn(3, (int64_t[]){2, 5, 3}, FC_FLOAT64);
  for (int log = 0; log < 2; log++) same_grad(__FILE__, __LINE__, x, softmax_sum, &log, 1e-12);
  fc_release(x);
}

typedef struct xent_case { int reduction; double eps; int64_t ignore; bool weighted; } xent_case;
static fc_tensor *xent(fc_tensor **in, void *ctx) {
  const xent_case *c = ctx;
  fc_device d = in[0]->device;
  fc_tensor *t = fc_from_buffer((int64_t[]){2, 0, 4, 1, 2, 3}, FC_INT64, 2, (int64_t[]){2, 3}, FC_INT64, d);
  fc_tensor *w = c->weighted ? fc_from_buffer((double[]){1, 2, 0.5, 1, 3}, FC_FLOAT64, 1, (int64_t[]){5}, FC_FLOAT64, d) : NULL;
  fc_tensor *l = fc_cross_entropy(in[0], t, w, c->ignore, c->eps, c->reduction, 0);
  fc_tensor *r = l && c->reduction == FC_REDUCE_NONE ? fc_sum(l, 0, NULL, 0) : fc_retain(l);
  fc_release(t), fc_release(w), fc_release(l);
  return r;
}

TEST(cross_entropy_forward_and_backward_match) {
  fc_tensor *x = randn(3, (int64_t[]){2, 5, 3}, FC_FLOAT64); /* [N, C, d1] */
  xent_case cases[] = {{FC_REDUCE_MEAN, 0, FC_NO_INDEX, false}, {FC_REDUCE_SUM, 0.1, FC_NO_INDEX, false},
                       {FC_REDUCE_NONE, 0, 4, true}, {FC_REDUCE_MEAN, 0.2, 2, true}};
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++)
    same_grad(__FILE__, __LINE__, x, xent, &cases[k], 1e-12);
  fc_tensor *gx = to(x, GPU);
  fc_tensor *bad = fc_from_buffer((int64_t[]){0, 9, 1, 2, 3, 4}, FC_INT64, 2, (int64_t[]){2, 3}, FC_INT64, GPU);
  CHECK_ERR(fc_cross_entropy(gx, bad, NULL, FC_NO_INDEX, 0, 1, 0), "target 9 is out of range for 5 classes");
  fc_tensor *probs = fc_zeros(3, (int64_t[]){2, 5, 3}, FC_FLOAT64, GPU);
  CHECK_ERR(fc_cross_entropy(gx, probs, NULL, FC_NO_INDEX, 0, 1, 0), "no CUDA kernel yet");
  fc_release(x), fc_release(gx), fc_release(bad), fc_release(probs);
}

TEST(a_small_mlp_trains_like_on_the_cpu) {
  fc_manual_seed(1);
  int64_t n = 16;
  fc_tensor *X = randn(2, (int64_t[]){n, 6}, FC_FLOAT32), *W1 = randn(2, (int64_t[]){6, 8}, FC_FLOAT32);
  fc_tensor *W2 = randn(2, (int64_t[]){8, 3}, FC_FLOAT32), *b2 = fc_zeros(1, (int64_t[]){3}, FC_FLOAT32, CPU);
  fc_tensor *y = fc_randint(0, 3, 1, &n, FC_INT64, CPU);
  fc_tensor *p[2][3], *m[2][3], *v[2][3], *x[2], *t[2];
  for (int d = 0; d < 2; d++) {
    fc_device dev = d ? GPU : CPU;
    fc_tensor *src[3] = {W1, W2, b2};
    for (int k = 0; k < 3; k++) {
      p[d][k] = d ? fc_to_device(src[k], dev) : fc_clone(src[k]);
      fc_set_requires_grad(p[d][k], 1);
      m[d][k] = fc_zeros_like(p[d][k]), v[d][k] = fc_zeros_like(p[d][k]);
    }
    x[d] = fc_to_device(X, dev), t[d] = fc_to_device(y, dev);
  }
  double loss[2] = {0, 0};
  for (int step = 1; step <= 5; step++)
    for (int d = 0; d < 2; d++) {
      fc_tensor *h = fc_matmul(x[d], p[d][0]), *r = fc_relu(h), *o = fc_addmm(p[d][2], r, p[d][1], 1, 1);
      fc_tensor *l = fc_cross_entropy(o, t[d], NULL, FC_NO_INDEX, 0, FC_REDUCE_MEAN, 0);
      CHECK(l && fc_backward(l, NULL, 0) == 0);
      fc_item(l, &loss[d]);
      for (int k = 0; k < 3; k++) {
        fc_tensor *g = fc_get_grad(p[d][k]);
        CHECK(fc_adam_step(p[d][k], g, m[d][k], v[d][k], 0.01, 0.9, 0.999, 1e-8, 0.01, 1, step) == 0);
        fc_release(g);
        fc_set_grad(p[d][k], NULL);
      }
      fc_release(h), fc_release(r), fc_release(o), fc_release(l);
    }
  CHECK_NEAR(loss[1], loss[0], 1e-5);
  for (int k = 0; k < 3; k++) SAME(fc_retain(p[0][k]), fc_retain(p[1][k]), 1e-4);
  fc_tensor *buf = fc_zeros_like(p[1][0]);
  CHECK(fc_sgd_step(p[1][0], buf, buf, 0.1, 0.9, 0, 0, 1, 1) == 0);
  fc_tensor *cpu_buf = fc_zeros(2, (int64_t[]){6, 8}, FC_FLOAT32, CPU);
  CHECK_ERR(fc_sgd_step(p[1][0], buf, cpu_buf, 0.1, 0.9, 0, 0, 0, 1), "another device");
  fc_release(buf), fc_release(cpu_buf);
  for (int d = 0; d < 2; d++) {
    for (int k = 0; k < 3; k++) fc_release(p[d][k]), fc_release(m[d][k]), fc_release(v[d][k]);
    fc_release(x[d]), fc_release(t[d]);
  }
  fc_release(X), fc_release(W1), fc_release(W2), fc_release(b2), fc_release(y);
}

/* ---- convolution, pooling, batch norm -------------------------------------------- */

/* f over inputs on the CPU and on the GPU: the values and every input's
 * gradient agree. */
typedef fc_tensor *(*grads_fn)(fc_tensor **in, int n, void *ctx);
static void same_grads(const char *file, int line, int n, fc_tensor **xs, grads_fn f, void *ctx, double tol) {
  fc_tensor *c[4], *g[4];
  for (int i = 0; i < n; i++) {
    c[i] = fc_clone(xs[i]), g[i] = fc_to_device(xs[i], GPU);
    fc_set_requires_grad(c[i], 1), fc_set_requires_grad(g[i], 1);
  }
  fc_tensor *lc = f(c, n, ctx), *lg = f(g, n, ctx);
  if (!lc || !lg || fc_backward(lc, NULL, 0) < 0 || fc_backward(lg, NULL, 0) < 0) {
    harness_fail(file, line, "forward/backward: %s", fc_last_error());
  } else {
    same(file, line, fc_detach(lc), fc_detach(lg), tol);
    for (int i = 0; i < n; i++) same(file, line, fc_get_grad(c[i]), fc_get_grad(g[i]), tol);
  }
  for (int i = 0; i < n; i++) fc_release(c[i]), fc_release(g[i]);
  fc_release(lc), fc_release(lg);
}
#define SAME_GRADS(n, xs, f, ctx, tol) same_grads(__FILE__, __LINE__, n, xs, f, ctx, tol)

/* sum(y * ramp): every output element gets its own gradient. */
static fc_tensor *weighted_sum(fc_tensor *y) {
  if (!y) return NULL;
  fc_tensor *r = fc_arange(1, 1 + (double)y->numel, 1, y->dtype, y->device);
  fc_tensor *rs = fc_reshape(r, y->ndim, y->shape), *s = fc_cos(rs), *p = fc_mul(y, s), *out = fc_sum(p, 0, NULL, 0);
  fc_release(r), fc_release(rs), fc_release(s), fc_release(p), fc_release(y);
  return out;
}

typedef struct conv_case { int stride[2], padding[2], dilation[2], out_padding[2], groups; bool transpose; } conv_case;
static fc_tensor *conv_loss(fc_tensor **in, int n, void *ctx) {
  const conv_case *k = ctx;
  fc_tensor *b = n > 2 ? in[2] : NULL;
  return weighted_sum(k->transpose ? fc_conv_transpose2d(in[0], in[1], b, k->stride, k->padding, k->out_padding,
                                                         k->dilation, k->groups)
                                   : fc_conv2d(in[0], in[1], b, k->stride, k->padding, k->dilation, k->groups));
}

TEST(conv2d_and_conv_transpose2d_match_with_gradients) {
  conv_case cases[] = {{{1, 1}, {0, 0}, {1, 1}, {0, 0}, 1, false}, {{2, 1}, {1, 2}, {1, 2}, {0, 0}, 2, false},
                       {{1, 1}, {1, 1}, {1, 1}, {0, 0}, 1, true}, {{2, 2}, {1, 0}, {1, 1}, {1, 1}, 2, true}};
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    const conv_case *c = &cases[k];
    fc_tensor *x = randn(4, (int64_t[]){2, 4, 7, 6}, FC_FLOAT64);
    int64_t wshape[4] = {6, 4 / c->groups, 3, 2}, cout = 6;
    if (c->transpose) wshape[0] = 4, wshape[1] = 6 / c->groups; /* [Cin, Cout/g, kh, kw] */
    fc_tensor *w = randn(4, wshape, FC_FLOAT64), *b = randn(1, &cout, FC_FLOAT64);
    for (int nin = 2; nin <= 3; nin++) SAME_GRADS(nin, ((fc_tensor *[]){x, w, b}), conv_loss, (void *)c, 1e-10);
    fc_release(x), fc_release(w), fc_release(b);
  }
  /* float32 and conv1d take the same path; an empty batch gives zero weight gradients */
  fc_tensor *x = randn(3, (int64_t[]){2, 3, 9}, FC_FLOAT32), *w = randn(3, (int64_t[]){4, 3, 3}, FC_FLOAT32);
  fc_tensor *gx = to(x, GPU), *gw = to(w, GPU);
  SAME(fc_conv1d(x, w, NULL, 2, 1, 1, 1), fc_conv1d(gx, gw, NULL, 2, 1, 1, 1), 1e-5);
  fc_tensor *e = fc_zeros(4, (int64_t[]){0, 4, 5, 5}, FC_FLOAT64, GPU), *ew = randn(4, (int64_t[]){2, 4, 3, 3}, FC_FLOAT64);
  fc_tensor *gew = to(ew, GPU);
  fc_set_requires_grad(gew, 1);
  fc_tensor *ey = fc_conv2d(e, gew, NULL, (int[]){1, 1}, (int[]){0, 0}, (int[]){1, 1}, 1), *es = fc_sum(ey, 0, NULL, 0);
  CHECK(ey && ey->shape[0] == 0 && es && fc_backward(es, NULL, 0) == 0);
  SAME(fc_zeros(4, (int64_t[]){2, 4, 3, 3}, FC_FLOAT64, CPU), fc_get_grad(gew), 0);
  CHECK_ERR(fc_conv2d(e, ew, NULL, (int[]){1, 1}, (int[]){0, 0}, (int[]){1, 1}, 1), "different devices");
  fc_tensor *tmp[] = {x, w, gx, gw, e, ew, gew, ey, es};
  for (size_t k = 0; k < sizeof tmp / sizeof *tmp; k++) fc_release(tmp[k]);
}

typedef struct pool_case { int kind, k[2], s[2], p[2], d[2], ceil, include_pad; int64_t out[2]; } pool_case;
static fc_tensor *pool_loss(fc_tensor **in, int n, void *ctx) {
  (void)n;
  const pool_case *c = ctx;
  switch (c->kind) {
  case 0: return weighted_sum(fc_max_pool2d(in[0], c->k, c->s, c->p, c->d, c->ceil, NULL, 0));
  case 1: return weighted_sum(fc_avg_pool2d(in[0], c->k, c->s, c->p, c->ceil, c->include_pad));
  case 2: return weighted_sum(fc_adaptive_max_pool2d(in[0], c->out, NULL, 0));
  default: return weighted_sum(fc_adaptive_avg_pool2d(in[0], c->out));
  }
}

TEST(pooling_matches_with_gradients_and_indices) {
  pool_case cases[] = {
    {0, {2, 2}, {2, 2}, {0, 0}, {1, 1}, 0, 0, {0, 0}}, {0, {3, 2}, {2, 1}, {1, 1}, {2, 1}, 1, 0, {0, 0}},
    {1, {3, 3}, {2, 2}, {1, 1}, {1, 1}, 1, 1, {0, 0}}, {1, {3, 2}, {2, 2}, {1, 1}, {1, 1}, 1, 0, {0, 0}},
    {2, {0}, {0}, {0}, {0}, 0, 0, {3, 4}}, {3, {0}, {0}, {0}, {0}, 0, 0, {4, 9}}, {3, {0}, {0}, {0}, {0}, 0, 0, {1, 1}},
  };
  fc_tensor *x = randn(4, (int64_t[]){2, 3, 7, 6}, FC_FLOAT64);
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) SAME_GRADS(1, &x, pool_loss, &cases[k], 1e-12);
  fc_tensor *x3 = randn(3, (int64_t[]){3, 5, 5}, FC_FLOAT32), *g3 = to(x3, GPU);
  fc_tensor *ic = NULL, *ig = NULL; /* [C,H,W], indices counted from 1 */
  SAME(fc_max_pool2d(x3, (int[]){2, 2}, NULL, NULL, NULL, 0, &ic, 1),
       fc_max_pool2d(g3, (int[]){2, 2}, NULL, NULL, NULL, 0, &ig, 1), 0);
  SAME(ic, ig, 0);
  fc_release(x), fc_release(x3), fc_release(g3);
}

typedef struct bn_case { bool training, relu, affine; } bn_case;
typedef struct bn_ctx { const bn_case *c; fc_tensor *rm, *rv; } bn_ctx;
static fc_tensor *bn_loss(fc_tensor **in, int n, void *ctx) {
  const bn_ctx *b = ctx;
  fc_tensor *rm = b->rm, *rv = b->rv; /* moved to x's device for the call */
  fc_tensor *m = rm ? fc_to_device(rm, in[0]->device) : NULL, *v = rv ? fc_to_device(rv, in[0]->device) : NULL;
  fc_tensor *w = n > 1 ? in[1] : NULL, *bias = n > 2 ? in[2] : NULL;
  fc_tensor *y = b->c->relu ? fc_batch_norm_relu(in[0], m, v, w, bias, b->c->training, 0.1, 1e-5)
                            : fc_batch_norm(in[0], m, v, w, bias, b->c->training, 0.1, 1e-5);
  if (m && in[0]->device.type == FC_CUDA && b->c->training) { /* the running statistics moved alike */
    fc_tensor *cm = fc_clone(rm), *cv = fc_clone(rv);
    fc_tensor *xc = fc_to_device(in[0], CPU), *yc = fc_batch_norm(xc, cm, cv, NULL, NULL, 1, 0.1, 1e-5);
    SAME(fc_retain(cm), fc_retain(m), 1e-12);
    SAME(fc_retain(cv), fc_retain(v), 1e-12);
    fc_release(cm), fc_release(cv), fc_release(xc), fc_release(yc);
  }
  fc_release(m), fc_release(v);
  return weighted_sum(y);
}

TEST(batch_norm_matches_in_training_and_evaluation) {
  bn_case cases[] = {{true, false, true}, {true, true, true}, {false, false, true}, {false, true, true},
                     {true, false, false}};
  int64_t C = 3;
  fc_tensor *rm = randn(1, &C, FC_FLOAT64), *rv0 = randn(1, &C, FC_FLOAT64), *rv = fc_exp(rv0);
  fc_tensor *w = randn(1, &C, FC_FLOAT64), *b = randn(1, &C, FC_FLOAT64);
  fc_tensor *x4 = randn(4, (int64_t[]){4, 3, 2, 3}, FC_FLOAT64), *x2 = randn(2, (int64_t[]){5, 3}, FC_FLOAT64);
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    bn_ctx ctx = {&cases[k], rm, rv};
    int n = cases[k].affine ? 3 : 1;
    SAME_GRADS(n, ((fc_tensor *[]){x4, w, b}), bn_loss, &ctx, 1e-10);
    SAME_GRADS(n, ((fc_tensor *[]){x2, w, b}), bn_loss, &ctx, 1e-10);
  }
  bn_ctx no_running = {&cases[0], NULL, NULL};
  SAME_GRADS(1, &x4, bn_loss, &no_running, 1e-10);
  fc_tensor *gx = to(x4, GPU), *gm = to(rm, GPU);
  CHECK_ERR(fc_batch_norm(gx, NULL, NULL, NULL, NULL, 0, 0.1, 1e-5), "evaluation mode normalises with running_mean");
  CHECK_ERR(fc_batch_norm(gx, rm, rv, NULL, NULL, 1, 0.1, 1e-5), "different devices");
  fc_tensor *xf = randn(4, (int64_t[]){2, 3, 2, 2}, FC_FLOAT32), *gxf = to(xf, GPU); /* float32 with float64 stats */
  fc_tensor *cm = fc_clone(rm), *cv = fc_clone(rv), *dm = to(rm, GPU), *dv = to(rv, GPU);
  SAME(fc_batch_norm(xf, cm, cv, NULL, NULL, 1, 0.1, 1e-5), fc_batch_norm(gxf, dm, dv, NULL, NULL, 1, 0.1, 1e-5), 1e-5);
  SAME(fc_retain(cv), fc_retain(dv), 1e-6);
  fc_tensor *tmp[] = {rm, rv0, rv, w, b, x4, x2, gx, gm, xf, gxf, cm, cv, dm, dv};
  for (size_t k = 0; k < sizeof tmp / sizeof *tmp; k++) fc_release(tmp[k]);
}

/* ---- index ops --------------------------------------------------------------------------- */

typedef struct index_case { int op, dim; } index_case;
static fc_tensor *index_loss(fc_tensor **in, int n, void *ctx) {
  const index_case *c = ctx;
  fc_device d = in[0]->device;
  fc_tensor *y = NULL;
  if (c->op == 0) { /* index_select with repeats, counted from 1 */
    fc_tensor *i = fc_from_buffer((int64_t[]){3, 1, 3, 2}, FC_INT64, 1, (int64_t[]){4}, FC_INT64, d);
    fc_tensor *tt = fc_transpose(in[0], 0, 2); /* strided input */
    y = fc_index_select(tt, c->dim, i, 1);
    fc_release(i), fc_release(tt);
  } else if (c->op == 1) { /* gather along dim, repeats */
    int64_t ish[3] = {2, 2, 2};
    ish[c->dim] = 3;
    int64_t v[12] = {2, 0, 1, 1, 0, 2, 2, 2, 0, 1, 0, 2};
    fc_tensor *i = fc_from_buffer(v, FC_INT64, 3, ish, FC_INT64, d);
    y = fc_gather(in[0], c->dim, i, 0);
    fc_release(i);
  } else { /* scatter_add of src (in[1]) into t, repeats add */
    fc_tensor *i = fc_from_buffer((int64_t[]){0, 2, 0, 1, 1, 1, 2, 0, 0, 2, 2, 2}, FC_INT64, 3,
                                  (int64_t[]){2, 3, 2}, FC_INT64, d);
    y = fc_scatter_add(in[0], 0, i, in[1], 0);
    fc_release(i);
  }
  (void)n;
  return weighted_sum(y);
}

TEST(index_ops_match_with_gradients) {
  fc_tensor *x = randn(3, (int64_t[]){3, 3, 3}, FC_FLOAT64), *src = randn(3, (int64_t[]){2, 3, 2}, FC_FLOAT64);
  for (int dim = 0; dim < 3; dim++) {
    SAME_GRADS(1, &x, index_loss, &((index_case){0, dim}), 1e-12);
    SAME_GRADS(1, &x, index_loss, &((index_case){1, dim}), 1e-12);
  }
  SAME_GRADS(2, ((fc_tensor *[]){x, src}), index_loss, &((index_case){2, 0}), 1e-12);
  /* every dtype moves; integers add; a scalar scatters; errors name the index */
  fc_tensor *ci = MK(FC_INT32, S(2, 3), 1, 2, 3, 4, 5, 6), *gi = to(ci, GPU);
  fc_tensor *i = MK(FC_INT64, S(2, 2), 2, 0, 1, 1), *gidx = to(i, GPU);
  SAME(fc_gather(ci, 1, i, 0), fc_gather(gi, 1, gidx, 0), 0);
  SAME(fc_scatter_add(ci, 1, i, ci, 0), fc_scatter_add(gi, 1, gidx, gi, 0), 0);
  fc_tensor *seven = fc_scalar(7, FC_INT32, CPU), *gseven = to(seven, GPU);
  fc_tensor *u = MK(FC_INT64, S(2, 1), 2, 0), *gu = to(u, GPU);
  SAME(fc_scatter(ci, 1, u, seven, 0), fc_scatter(gi, 1, gu, gseven, 0), 0);
  CHECK(fc_scatter_(gi, 1, gu, gseven, 0) == 0);
  SAME(fc_scatter(ci, 1, u, seven, 0), fc_retain(gi), 0);
  fc_tensor *bad = MK(FC_INT64, S(1, 2), 0, 3), *gbad = to(bad, GPU);
  CHECK_ERR(fc_gather(gi, 1, gbad, 0), "gather: index 3 out of range for dim of size 3 (valid 0..2)");
  fc_tensor *row = MK(FC_INT64, S(2), 1, 4), *grow = to(row, GPU);
  CHECK_ERR(fc_index_select(gi, 1, grow, 1), "index_select: index 4 out of range for dim of size 3 (valid 1..3)");
  fc_tensor *tmp[] = {x, src, ci, gi, i, gidx, seven, gseven, u, gu, bad, gbad, row, grow};
  for (size_t k = 0; k < sizeof tmp / sizeof *tmp; k++) fc_release(tmp[k]);
}

static fc_tensor *embedding_loss(fc_tensor **in, int n, void *ctx) {
  (void)n;
  int64_t pad = *(int64_t *)ctx;
  fc_tensor *i = fc_from_buffer((int64_t[]){1, 4, 1, 2, 4, 4}, FC_INT64, 2, (int64_t[]){2, 3}, FC_INT64, in[0]->device);
  fc_tensor *y = fc_embedding(in[0], i, pad, 0);
  fc_release(i);
  return weighted_sum(y);
}

TEST(embedding_matches_with_padding_and_gradients) {
  fc_tensor *w = randn(2, (int64_t[]){5, 3}, FC_FLOAT64);
  int64_t pads[] = {FC_NO_INDEX, 4, 0};
  for (int k = 0; k < 3; k++) SAME_GRADS(1, &w, embedding_loss, &pads[k], 1e-12);
  fc_tensor *gw = to(w, GPU), *i = fc_from_buffer((int64_t[]){1, 5}, FC_INT64, 1, (int64_t[]){2}, FC_INT64, GPU);
  CHECK_ERR(fc_embedding(gw, i, FC_NO_INDEX, 0), "embedding: index 5 out of range for a weight of 5 rows (valid 0..4)");
  fc_tensor *s = fc_scalar(3, FC_INT64, GPU), *e = fc_embedding(gw, s, FC_NO_INDEX, 0); /* a 0-dim index: one row */
  fc_tensor *wc = fc_select(w, 0, 3);
  SAME(wc, e, 0);
  fc_release(w), fc_release(gw), fc_release(i), fc_release(s);
}

/* ---- random draws ----------------------------------------------------------------------- */

TEST(random_draws_follow_the_cpu_stream) {
  int64_t shape[2] = {7, 5};
  for (int dt = FC_FLOAT32; dt <= FC_FLOAT64; dt++) {
    fc_manual_seed(11);
    fc_tensor *c1 = fc_rand(2, shape, dt, CPU), *c2 = fc_randn(2, shape, dt, CPU);
    fc_tensor *c3 = fc_randint(-3, 9, 2, shape, FC_INT64, CPU), *c4 = fc_rand(1, shape, dt, CPU);
    fc_manual_seed(11); /* the same counters, half of them drawn on the device */
    fc_tensor *g1 = fc_rand(2, shape, dt, GPU), *h2 = fc_randn(2, shape, dt, CPU);
    fc_tensor *g3 = fc_randint(-3, 9, 2, shape, FC_INT64, GPU), *h4 = fc_rand(1, shape, dt, CPU);
    SAME(c1, g1, 0);
    SAME(fc_to_device(c2, GPU), fc_to_device(h2, GPU), 0);
    SAME(c3, g3, 0);
    SAME(fc_to_device(c4, GPU), fc_to_device(h4, GPU), 0);
    fc_release(c2), fc_release(h2), fc_release(c4), fc_release(h4);
  }
  fc_manual_seed(3);
  fc_tensor *cn = fc_randn(1, (int64_t[]){9}, FC_FLOAT64, CPU);
  fc_manual_seed(3);
  SAME(cn, fc_randn(1, (int64_t[]){9}, FC_FLOAT64, GPU), 1e-15);
  fc_tensor *m = fc_zeros(2, (int64_t[]){4, 6}, FC_FLOAT32, GPU), *mt = fc_transpose(m, 0, 1);
  fc_manual_seed(4);
  CHECK(fc_bernoulli_(mt, 0.3) == 0); /* a strided view is filled in its logical order */
  fc_tensor *cm = fc_zeros(2, (int64_t[]){6, 4}, FC_FLOAT32, CPU);
  fc_manual_seed(4);
  fc_bernoulli_(cm, 0.3);
  SAME(cm, fc_retain(mt), 0);
  fc_release(m), fc_release(mt);
}

static fc_tensor *dropout_loss(fc_tensor **in, int n, void *ctx) {
  (void)n, (void)ctx;
  fc_manual_seed(21);
  return weighted_sum(fc_dropout(in[0], 0.35, 1));
}

TEST(dropout_draws_the_cpu_mask) {
  fc_tensor *x = randn(3, (int64_t[]){3, 7, 5}, FC_FLOAT64), *xf = randn(1, (int64_t[]){37}, FC_FLOAT32);
  SAME_GRADS(1, &x, dropout_loss, NULL, 1e-12);
  fc_tensor *gxf = to(xf, GPU);
  fc_manual_seed(5);
  fc_tensor *cy = fc_dropout(xf, 0.5, 1);
  fc_manual_seed(5);
  SAME(cy, fc_dropout(gxf, 0.5, 1), 0);
  fc_release(x), fc_release(xf), fc_release(gxf);
}

/* ---- streams, events, pinned memory ---------------------------------------------------- */

static int pinned_live(void) { /* the fake plugin's count of page-locked blocks out */
  void *h = dlopen(getenv("FASTC_CUDA_PLUGIN"), RTLD_NOW | RTLD_NOLOAD);
  int (*f)(void) = h ? (int (*)(void))dlsym(h, "fake_cuda_pinned_live") : NULL;
  int n = f ? f() : -1;
  if (h) dlclose(h);
  return n;
}

TEST(streams_and_events_keep_their_devices_apart) {
  fc_cuda_stream *s = fc_cuda_stream_new(1);
  CHECK(s && fc_cuda_stream_device(s) == 1 && fc_cuda_current_stream(1) == NULL);
  CHECK_ERR(fc_cuda_set_stream(0, s), "the stream belongs to cuda:1, not cuda:0");
  CHECK(fc_cuda_set_stream(1, s) == 0 && fc_cuda_current_stream(1) == s && fc_cuda_current_stream(0) == NULL);
  fc_tensor *a = fc_ones(1, (int64_t[]){5}, FC_FLOAT32, GPU1), *b = fc_add(a, a); /* queued on s */
  SAME(fc_full(1, (int64_t[]){5}, 2, FC_FLOAT32, CPU), b, 0);
  fc_cuda_event *e0 = fc_cuda_event_new(1, 1), *e1 = fc_cuda_event_new(1, 1), *quiet = fc_cuda_event_new(1, 0);
  CHECK(fc_cuda_event_record(e0, NULL) == 0 && fc_cuda_event_record(e1, s) == 0 && fc_cuda_event_record(quiet, s) == 0);
  CHECK(fc_cuda_event_synchronize(e1) == 0 && fc_cuda_event_query(e1) == 1 && fc_cuda_stream_query(s) == 1);
  CHECK_NEAR(fc_cuda_event_elapsed_ms(e0, e1), 1.5, 1e-6);
  CHECK_ERR(fc_cuda_event_elapsed_ms(e0, quiet), "both events need enable_timing");
  CHECK(fc_cuda_stream_wait_event(1, NULL, e1) == 0 && fc_cuda_stream_synchronize(s) == 0);
  fc_cuda_event *other = fc_cuda_event_new(0, 1);
  CHECK_ERR(fc_cuda_event_record(other, s), "the event belongs to cuda:0, the stream to cuda:1");
  CHECK_ERR(fc_cuda_stream_wait_event(0, s, other), "belongs to cuda:1, not cuda:0");
  CHECK(fc_cuda_stream_new(7) == NULL && strstr(fc_last_error(), "cuda:7 does not exist"));
  fc_cuda_stream_free(s); /* was current: the default stream is back */
  CHECK(fc_cuda_current_stream(1) == NULL);
  fc_cuda_event_free(e0), fc_cuda_event_free(e1), fc_cuda_event_free(quiet), fc_cuda_event_free(other);
  fc_release(a);
}

TEST(pinned_memory_holds_a_copy_and_is_given_back) {
  int before = pinned_live();
  CHECK(before >= 0);
  fc_tensor *m = MK(FC_FLOAT64, S(2, 3), 1, 2, 3, 4, 5, 6), *t = fc_transpose(m, 0, 1);
  fc_tensor *p = fc_pin_memory(t);
  CHECK(p && fc_is_pinned(p) && !fc_is_pinned(m) && fc_is_contiguous(p) && pinned_live() == before + 1);
  fc_tensor *again = fc_pin_memory(p); /* already pinned: the same tensor */
  CHECK(again == p);
  fc_tensor *g = to(p, GPU);
  EXPECT(to(g, CPU), FC_FLOAT64, S(3, 2), 0, 1, 4, 2, 5, 3, 6);
  fc_tensor *view = fc_narrow(p, 0, 1, 2); /* views keep the storage, and it stays pinned */
  CHECK(fc_is_pinned(view));
  fc_release(again), fc_release(p);
  CHECK(pinned_live() == before + 1);
  fc_release(view);
  CHECK(pinned_live() == before);
  CHECK_ERR(fc_pin_memory(g), "only CPU tensors can be pinned");
  fc_release(m), fc_release(t), fc_release(g);
}

/* ---- sort and topk ------------------------------------------------------------------------- */

typedef struct sort_case { int dim; int64_t k; bool largest, topk; } sort_case;
static fc_tensor *sort_loss(fc_tensor **in, int n, void *ctx) {
  (void)n;
  const sort_case *c = ctx;
  fc_tensor *ix = NULL;
  fc_tensor *v = c->topk ? fc_topk(in[0], c->k, c->dim, c->largest, 1, &ix) : fc_sort(in[0], c->dim, c->largest, 1, &ix);
  fc_tensor *ixf = ix ? fc_to_dtype(ix, v->dtype) : NULL, *m = ixf ? fc_mul(v, ixf) : NULL; /* indices checked too */
  fc_release(v), fc_release(ix), fc_release(ixf);
  return weighted_sum(m);
}

TEST(sort_and_topk_match_with_ties_nan_and_gradients) {
  fc_tensor *x = randn(3, (int64_t[]){3, 6, 4}, FC_FLOAT64);
  sort_case cases[] = {{0, 3, false, false}, {1, 6, true, false}, {2, 4, false, false}, {1, 2, true, true},
                       {2, 1, false, true}, {0, 0, true, true}};
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) SAME_GRADS(1, &x, sort_loss, &cases[k], 1e-12);
  /* ties keep their order either way; NaN sorts largest; integers are exact */
  fc_tensor *t = MK(FC_FLOAT32, S(8), 2, NAN, -0.0, 1, 2, 0, NAN, 1), *gt = to(t, GPU);
  for (int desc = 0; desc < 2; desc++) {
    fc_tensor *ci = NULL, *gi = NULL;
    SAME(fc_sort(t, 0, desc, 0, &ci), fc_sort(gt, 0, desc, 0, &gi), 0);
    SAME(ci, gi, 0);
  }
  fc_tensor *it = MK(FC_INT64, S(2, 5), 5, -3, 5, 9, 0, 1, 1, -7, 4, 4), *git = to(it, GPU);
  fc_tensor *ci = NULL, *gi = NULL;
  SAME(fc_topk(it, 3, 1, 1, 0, &ci), fc_topk(git, 3, 1, 1, 0, &gi), 0);
  SAME(ci, gi, 0);
  CHECK_ERR(fc_topk(git, 6, 1, 1, 0, NULL), "k = 6 out of range for a dim of size 5");
  fc_release(x), fc_release(t), fc_release(gt), fc_release(it), fc_release(git);
}

TEST(ops_without_a_kernel_and_mixed_devices_fail_clearly) {
  fc_tensor *c = MK(FC_FLOAT32, S(2, 2), 1, 2, 3, 4), *g = to(c, GPU), *g1 = to(c, GPU1);
  CHECK_ERR(fc_cumsum(g, 0), "cumsum: op cumsum has no CUDA kernel yet");
  CHECK_ERR(fc_cat(2, (fc_tensor *const[]){g, g}, 0), "has no CUDA kernel yet");
  CHECK_ERR(fc_add(c, g), "tensors on different devices (cpu and cuda:0)");
  CHECK_ERR(fc_add(g, g1), "different devices (cuda:0 and cuda:1)");
  CHECK_ERR(fc_empty(1, (int64_t[]){2}, FC_FLOAT32, ((fc_device){FC_CUDA, 5})), "cuda:5 does not exist");
  CHECK(fc_copy_(c, g1) == 0); /* copy_ moves across devices */
  fc_release(c), fc_release(g), fc_release(g1);
}

TEST(memory_goes_through_the_caching_allocator) {
  fc_cuda_empty_cache(-1);
  fc_cuda_mem_stats s0, s1, s2;
  CHECK(fc_cuda_memory_stats(1, &s0) == 0);
  int64_t live0 = fc_live_bytes(FC_CUDA);
  fc_tensor *t = fc_zeros(1, (int64_t[]){1000}, FC_FLOAT32, GPU1);
  fc_cuda_memory_stats(1, &s1);
  CHECK(s1.allocated_bytes - s0.allocated_bytes == 4096 && fc_live_bytes(FC_CUDA) - live0 == 4000);
  fc_free(t); /* released now */
  fc_cuda_memory_stats(1, &s2);
  CHECK(s2.allocated_bytes == s0.allocated_bytes && s2.cached_bytes >= 4096);
  fc_tensor *u = fc_zeros(1, (int64_t[]){900}, FC_FLOAT32, GPU1); /* same class: reused */
  fc_cuda_memory_stats(1, &s1);
  CHECK(s1.num_cache_hits == s2.num_cache_hits + 1 && s1.num_device_mallocs == s2.num_device_mallocs);
  fc_release(u), fc_release(t);
  CHECK(fc_cuda_empty_cache(1) == 0);
  fc_cuda_memory_stats(1, &s2);
  CHECK(s2.cached_bytes == 0 && s2.reserved_bytes == s2.allocated_bytes);
  CHECK_ERR(fc_cuda_memory_stats(9, &s2), "cuda:9 does not exist");
}

int main(int argc, char **argv) {
  (void)argc;
  char path[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", path, sizeof path - 32);
  if (n <= 0) return 1;
  path[n] = 0;
  snprintf(strrchr(path, '/'), 32, "/libfake_cuda.so");
  setenv("FASTC_CUDA_PLUGIN", path, 1);
  (void)argv;
  RUN(plugin_loads_and_reports);
  RUN(transfers_round_trip_every_dtype);
  RUN(creation_on_the_device_matches_the_cpu);
  RUN(elementwise_ops_match_with_broadcasting_and_promotion);
  RUN(reductions_match);
  RUN(matmul_and_addmm_match);
  RUN(softmax_forward_and_backward_match);
  RUN(cross_entropy_forward_and_backward_match);
  RUN(a_small_mlp_trains_like_on_the_cpu);
  RUN(conv2d_and_conv_transpose2d_match_with_gradients);
  RUN(pooling_matches_with_gradients_and_indices);
  RUN(batch_norm_matches_in_training_and_evaluation);
  RUN(index_ops_match_with_gradients);
  RUN(embedding_matches_with_padding_and_gradients);
  RUN(random_draws_follow_the_cpu_stream);
  RUN(dropout_draws_the_cpu_mask);
  RUN(streams_and_events_keep_their_devices_apart);
  RUN(pinned_memory_holds_a_copy_and_is_given_back);
  RUN(sort_and_topk_match_with_ties_nan_and_gradients);
  RUN(ops_without_a_kernel_and_mixed_devices_fail_clearly);
  RUN(memory_goes_through_the_caching_allocator);
  return harness_report();
}
