/* test_norm.c — batch, layer and group norm, dropout and embedding.
 *
 * Forward values are checked against naive float64 loops written here from
 * the definitions (and, for one batch-norm training step and one group
 * norm, against numbers PyTorch 1.13 printed for the inputs made by gen();
 * pasted as literals, this test never runs Python). Running statistics are
 * worked by hand. Gradients are checked against central differences in
 * float64 (the harness's GRADCHECK), contiguous and strided. */
#include "harness.h"
#include <stdbool.h>
#include <stdlib.h>

/* The generator's round function (runtime/random.c; not public API). */
void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);


/* The inputs the pasted PyTorch numbers were computed from. */
static fc_tensor *gen(int dtype, int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) n *= shape[d];
  double *v = malloc(sizeof(double) * (size_t)n);
  for (int64_t i = 0; i < n; i++) v[i] = sin(0.37 * (double)i + 0.2) * (1 + 0.05 * (double)i) + 0.1 * (double)(i % 3);
  fc_tensor *t = mk(dtype, ndim, shape, v);
  free(v);
  return t;
}
#define GEN(dtype, shape) gen(dtype, sizeof((int64_t[])shape) / sizeof(int64_t), (int64_t[])shape)

static fc_tensor *randn64(int ndim, const int64_t *shape) { return fc_randn(ndim, shape, FC_FLOAT64, CPU); }
#define RANDN(shape) randn64(sizeof((int64_t[])shape) / sizeof(int64_t), (int64_t[])shape)

/* ---- references -------------------------------------------------------------
 * x is [N, C, S] row-major; w, b may be NULL. */

/* Batch norm; training: batch statistics, and rm/rv (if given) updated. */
static void ref_batch_norm(const double *x, int64_t N, int64_t C, int64_t S, const double *w, const double *b,
                           bool training, double *rm, double *rv, double momentum, double eps, bool relu,
                           double *out) {
  for (int64_t c = 0; c < C; c++) {
    double M = (double)(N * S), mean = 0, var = 0;
    for (int64_t n = 0; n < N; n++)
      for (int64_t s = 0; s < S; s++) mean += x[(n * C + c) * S + s] / M;
    for (int64_t n = 0; n < N; n++)
      for (int64_t s = 0; s < S; s++) var += pow(x[(n * C + c) * S + s] - mean, 2) / M;
    if (training && rm) {
      rm[c] = (1 - momentum) * rm[c] + momentum * mean;
      rv[c] = (1 - momentum) * rv[c] + momentum * var * M / (M - 1);
    } else if (!training) {
      mean = rm[c], var = rv[c];
    }
    for (int64_t n = 0; n < N; n++)
      for (int64_t s = 0; s < S; s++) {
        int64_t i = (n * C + c) * S + s;
        double y = (x[i] - mean) / sqrt(var + eps) * (w ? w[c] : 1) + (b ? b[c] : 0);
        out[i] = relu && y < 0 ? 0 : y;
      }
  }
}

/* Layer norm over rows of K. */
static void ref_layer_norm(const double *x, int64_t M, int64_t K, const double *w, const double *b, double eps,
                           double *out) {
  for (int64_t r = 0; r < M; r++) {
    double mean = 0, var = 0;
    for (int64_t k = 0; k < K; k++) mean += x[r * K + k] / (double)K;
    for (int64_t k = 0; k < K; k++) var += pow(x[r * K + k] - mean, 2) / (double)K;
    for (int64_t k = 0; k < K; k++)
      out[r * K + k] = (x[r * K + k] - mean) / sqrt(var + eps) * (w ? w[k] : 1) + (b ? b[k] : 0);
  }
}

static void ref_group_norm(const double *x, int64_t N, int64_t C, int64_t S, int64_t G, const double *w,
                           const double *b, double eps, double *out) {
  int64_t Cg = C / G, K = Cg * S;
  for (int64_t n = 0; n < N; n++)
    for (int64_t g = 0; g < G; g++) {
      const double *xb = x + (n * C + g * Cg) * S;
      double mean = 0, var = 0;
      for (int64_t i = 0; i < K; i++) mean += xb[i] / (double)K;
      for (int64_t i = 0; i < K; i++) var += pow(xb[i] - mean, 2) / (double)K;
      for (int64_t i = 0; i < K; i++) {
        int64_t c = g * Cg + i / S;
        out[(n * C + g * Cg) * S + i] = (xb[i] - mean) / sqrt(var + eps) * (w ? w[c] : 1) + (b ? b[c] : 0);
      }
    }
}

/* ---- batch norm: forward ------------------------------------------------------ */

/* Runs fc_batch_norm on x [N, C, S...] of `dtype` (and its running stats)
 * against the reference, in training and then eval mode. */
static void bn_case(int dtype, int ndim, const int64_t *shape, bool affine, bool relu, double tol) {
  int64_t N = shape[0], C = shape[1], S = 1;
  for (int d = 2; d < ndim; d++) S *= shape[d];
  fc_tensor *x = fc_randn(ndim, shape, FC_FLOAT64, CPU), *xt = fc_to_dtype(x, dtype);
  fc_tensor *w = fc_randn(1, &C, FC_FLOAT64, CPU), *b = fc_randn(1, &C, FC_FLOAT64, CPU);
  fc_tensor *rm = fc_randn(1, &C, dtype, CPU), *rv = fc_rand(1, &C, dtype, CPU);
  double *xv = tensor_values(xt), *wv = tensor_values(w), *bv = tensor_values(b), *rmv = tensor_values(rm), *rvv = tensor_values(rv);
  double *want = malloc(sizeof(double) * (size_t)x->numel);
  fc_tensor *wt = affine ? fc_to_dtype(w, dtype) : NULL, *bt = affine ? fc_to_dtype(b, dtype) : NULL;
  fc_tensor *(*bn)(fc_tensor *, fc_tensor *, fc_tensor *, fc_tensor *, fc_tensor *, int, double, double) =
      relu ? fc_batch_norm_relu : fc_batch_norm;
  ref_batch_norm(xv, N, C, S, affine ? wv : NULL, affine ? bv : NULL, true, rmv, rvv, 0.3, 1e-5, relu, want);
  EXPECT_VALUES(bn(xt, rm, rv, wt, bt, 1, 0.3, 1e-5), want, x->numel, tol);
  EXPECT_VALUES(fc_retain(rm), rmv, C, tol);
  EXPECT_VALUES(fc_retain(rv), rvv, C, tol);
  ref_batch_norm(xv, N, C, S, affine ? wv : NULL, affine ? bv : NULL, false, rmv, rvv, 0.3, 1e-3, relu, want);
  EXPECT_VALUES(bn(xt, rm, rv, wt, bt, 0, 0.3, 1e-3), want, x->numel, tol);
  EXPECT_VALUES(fc_retain(rm), rmv, C, tol); /* eval leaves them alone */
  free(xv), free(wv), free(bv), free(rmv), free(rvv), free(want);
  fc_release(x), fc_release(xt), fc_release(w), fc_release(b), fc_release(rm), fc_release(rv);
  fc_release(wt), fc_release(bt);
}

TEST(batch_norm_matches_reference) {
  fc_manual_seed(1);
  for (int relu = 0; relu < 2; relu++)
    for (int affine = 0; affine < 2; affine++) {
      bn_case(FC_FLOAT64, 2, (int64_t[]){6, 5}, affine, relu, 1e-12);     /* [N, C]: lanes */
      bn_case(FC_FLOAT64, 2, (int64_t[]){9, 70}, affine, relu, 1e-12);    /* two lane groups */
      bn_case(FC_FLOAT64, 3, (int64_t[]){3, 4, 5}, affine, relu, 1e-12);  /* [N, C, L] */
      bn_case(FC_FLOAT64, 4, (int64_t[]){2, 3, 4, 5}, affine, relu, 1e-12);
      bn_case(FC_FLOAT64, 5, (int64_t[]){2, 2, 2, 3, 2}, affine, relu, 1e-12);
      bn_case(FC_FLOAT64, 3, (int64_t[]){7, 1, 3}, affine, relu, 1e-12);  /* one channel */
      bn_case(FC_FLOAT32, 2, (int64_t[]){6, 5}, affine, relu, 1e-5);
      bn_case(FC_FLOAT32, 4, (int64_t[]){8, 16, 32, 32}, affine, relu, 1e-5); /* parallel */
      bn_case(FC_FLOAT32, 2, (int64_t[]){512, 130}, affine, relu, 1e-5);      /* parallel lanes */
    }
}

TEST(batch_norm_half_computes_in_float32) {
  fc_tensor *x = MK(FC_FLOAT16, S(4, 1), 1, 2, 3, 4);
  double s = sqrt(1.25 + 1e-5);
  EXPECT(fc_batch_norm(x, NULL, NULL, NULL, NULL, 1, 0.1, 1e-5), FC_FLOAT16, S(4, 1), 1e-3, -1.5 / s, -0.5 / s,
         0.5 / s, 1.5 / s);
  fc_release(x);
}

/* x = 1, 2, 3, 4 in one channel: mean 2.5, biased var 1.25, unbiased 5/3. */
TEST(batch_norm_running_stats_by_hand) {
  fc_tensor *x = MK(FC_FLOAT32, S(2, 1, 2), 1, 2, 3, 4);
  fc_tensor *rm = MK(FC_FLOAT32, S(1), 0), *rv = MK(FC_FLOAT32, S(1), 1);
  double s = sqrt(1.25 + 1e-5);
  EXPECT(fc_batch_norm(x, rm, rv, NULL, NULL, 1, 0.1, 1e-5), FC_FLOAT32, S(2, 1, 2), 1e-6, -1.5 / s, -0.5 / s,
         0.5 / s, 1.5 / s);
  EXPECT(fc_retain(rm), FC_FLOAT32, S(1), 1e-7, 0.25);
  EXPECT(fc_retain(rv), FC_FLOAT32, S(1), 1e-7, 0.9 + 0.1 * 5.0 / 3.0);
  int64_t version = rm->storage->version;
  /* eval: (x - 0.25) / sqrt(rv + eps), running stats untouched */
  double sv = sqrt(0.9 + 0.5 / 3 + 1e-5);
  EXPECT(fc_batch_norm(x, rm, rv, NULL, NULL, 0, 0.1, 1e-5), FC_FLOAT32, S(2, 1, 2), 1e-6, 0.75 / sv, 1.75 / sv,
         2.75 / sv, 3.75 / sv);
  CHECK(rm->storage->version == version);
  fc_release(x), fc_release(rm), fc_release(rv);
}

/* momentum 1/k on the k-th batch (what nn.BatchNorm passes for
 * momentum=nil) makes the running stats the plain average of the batches'. */
TEST(batch_norm_cumulative_average) {
  fc_tensor *a = MK(FC_FLOAT64, S(2, 2), 1, 10, 3, 30);  /* means 2, 20; unbiased vars 2, 200 */
  fc_tensor *b = MK(FC_FLOAT64, S(2, 2), 5, -4, 9, 0);   /* means 7, -2; unbiased vars 8, 8 */
  fc_tensor *c = MK(FC_FLOAT64, S(3, 2), 0, 0, 0, 1, 3, 2); /* means 1, 1; unbiased vars 3, 1 */
  fc_tensor *rm = MK(FC_FLOAT64, S(2), 100, 100), *rv = MK(FC_FLOAT64, S(2), 100, 100);
  fc_release(fc_batch_norm(a, rm, rv, NULL, NULL, 1, 1.0, 1e-5));
  fc_release(fc_batch_norm(b, rm, rv, NULL, NULL, 1, 1.0 / 2, 1e-5));
  fc_release(fc_batch_norm(c, rm, rv, NULL, NULL, 1, 1.0 / 3, 1e-5));
  EXPECT(fc_retain(rm), FC_FLOAT64, S(2), 1e-12, (2 + 7 + 1) / 3.0, (20 - 2 + 1) / 3.0);
  EXPECT(fc_retain(rv), FC_FLOAT64, S(2), 1e-12, (2 + 8 + 3) / 3.0, (200 + 8 + 1) / 3.0);
  fc_release(a), fc_release(b), fc_release(c), fc_release(rm), fc_release(rv);
}

/* torch.nn.functional.batch_norm(x, rm, rv, w, b, training=True,
 * momentum=0.2, eps=1e-5) in float64, then the same in eval mode with the
 * updated running stats; x = gen() of shape [3, 2, 3]. */
TEST(batch_norm_matches_pytorch) {
  fc_tensor *x = GEN(FC_FLOAT64, S(3, 2, 3));
  fc_tensor *w = MK(FC_FLOAT64, S(2), 0.5, -1.2), *b = MK(FC_FLOAT64, S(2), 0.1, -0.3);
  fc_tensor *rm = MK(FC_FLOAT64, S(2), 0.2, -0.1), *rv = MK(FC_FLOAT64, S(2), 1.5, 0.8);
  EXPECT(fc_batch_norm(x, rm, rv, w, b, 1, 0.2, 1e-5), FC_FLOAT64, S(3, 2, 3), 1e-10, 0.237944713863,
         0.475573203502, 0.689718330024, -1.60978814258, -1.83600314032, -1.85635576215, 0.573145478661,
         0.423937462229, 0.225534683617, 0.456763211177, 0.932885741664, 1.26788394032, -0.673316141124,
         -0.61321939562, -0.439318335151, 0.880407134877, 0.0127641725428, -0.948557155528);
  EXPECT(fc_retain(rm), FC_FLOAT64, S(2), 1e-10, 0.145404988779, -0.0682319259907);
  EXPECT(fc_retain(rv), FC_FLOAT64, S(2), 1e-10, 1.41812698304, 0.84911949669);
  EXPECT(fc_batch_norm(x, rm, rv, w, b, 0, 0.2, 1e-5), FC_FLOAT64, S(3, 2, 3), 1e-10, 0.122363896791,
         0.318837899634, 0.495895584346, -1.83580123552, -2.07247099571, -2.09376423522, 0.399511793139,
         0.276144867359, 0.112103139246, 0.326257947989, 0.824384978631, 1.17486546901, -0.631077191379,
         -0.581388502262, -0.437605080076, 0.769481018207, -0.138260970063, -1.14401076761);
  fc_release(x), fc_release(w), fc_release(b), fc_release(rm), fc_release(rv);
}

TEST(batch_norm_strided_input) {
  fc_manual_seed(3);
  fc_tensor *base = RANDN(S(4, 5, 3)), *x = fc_transpose(base, 0, 2); /* [3, 5, 4], strided */
  fc_tensor *xc = fc_contiguous(x);
  double *xv = tensor_values(xc), want[60];
  ref_batch_norm(xv, 3, 5, 4, NULL, NULL, true, NULL, NULL, 0, 1e-5, false, want);
  EXPECT_VALUES(fc_batch_norm(x, NULL, NULL, NULL, NULL, 1, 0.1, 1e-5), want, 60, 1e-12);
  free(xv);
  fc_release(base), fc_release(x), fc_release(xc);
}

/* ---- batch norm: gradients ----------------------------------------------------- */

typedef struct { bool training, relu, strided; fc_tensor *rm, *rv; } bn_ctx;

static fc_tensor *bn_fn(fc_tensor **in, void *ctx) {
  bn_ctx *c = ctx;
  fc_tensor *x = c->strided ? fc_transpose(in[0], 0, 1) : fc_retain(in[0]);
  fc_tensor *y = (c->relu ? fc_batch_norm_relu : fc_batch_norm)(x, c->rm, c->rv, in[1], in[2], c->training,
                                                                0.1, 1e-5);
  fc_release(x);
  return y;
}

static void bn_gradcheck(const char *name, int ndim, const int64_t *shape, bn_ctx ctx) {
  int64_t C = shape[ctx.strided ? 0 : 1];
  fc_tensor *in[3] = {randn64(ndim, shape), randn64(1, &C), randn64(1, &C)};
  ctx.rm = randn64(1, &C), ctx.rv = fc_rand(1, &C, FC_FLOAT64, CPU);
  check_gradients(__FILE__, __LINE__, name, bn_fn, 3, in, &ctx, 1e-6, 1e-5, 1);
  for (int i = 0; i < 3; i++) fc_release(in[i]);
  fc_release(ctx.rm), fc_release(ctx.rv);
}

TEST(batch_norm_gradients) {
  fc_manual_seed(4);
  for (int t = 0; t < 2; t++)
    for (int r = 0; r < 2; r++) {
      bn_ctx c = {.training = t, .relu = r};
      bn_gradcheck("bn [N,C,H,W]", 4, (int64_t[]){3, 2, 2, 3}, c);
      bn_gradcheck("bn [N,C]", 2, (int64_t[]){5, 3}, c);
      bn_gradcheck("bn [N,C,L]", 3, (int64_t[]){4, 2, 3}, c);
      bn_gradcheck("bn one channel", 3, (int64_t[]){4, 1, 3}, c);
      c.strided = true; /* x is the transpose of a [C, N, L] tensor */
      bn_gradcheck("bn strided", 3, (int64_t[]){3, 4, 2}, c);
    }
}

/* Only the weight needs a gradient: the input's is neither computed nor required. */
TEST(batch_norm_weight_grad_only) {
  fc_tensor *x = GEN(FC_FLOAT64, S(3, 2, 3)), *w = MK(FC_FLOAT64, S(2), 1, 1);
  fc_set_requires_grad(w, 1);
  fc_tensor *y = fc_batch_norm(x, NULL, NULL, w, NULL, 1, 0.1, 0);
  fc_tensor *g = fc_ones(3, y->shape, FC_FLOAT64, CPU);
  CHECK(fc_backward(y, g, 0) == 0);
  /* d/dw sum(y) = sum(xhat) = 0 per channel */
  EXPECT(fc_get_grad(w), FC_FLOAT64, S(2), 1e-9, 0, 0);
  fc_release(x), fc_release(w), fc_release(y), fc_release(g);
}

TEST(batch_norm_errors) {
  fc_tensor *x = MK(FC_FLOAT32, S(2, 3), 1, 2, 3, 4, 5, 6), *v3 = MK(FC_FLOAT32, S(3), 0, 0, 0);
  fc_tensor *v2 = MK(FC_FLOAT32, S(2), 1, 1), *one = MK(FC_FLOAT32, S(1, 3), 1, 2, 3);
  fc_tensor *ints = MK(FC_INT64, S(2, 3), 1, 2, 3, 4, 5, 6), *flat = MK(FC_FLOAT32, S(3), 1, 2, 3);
  CHECK_ERR(fc_batch_norm(flat, NULL, NULL, NULL, NULL, 1, 0.1, 1e-5), "at least 2 dims, got shape [3]");
  CHECK_ERR(fc_batch_norm(ints, NULL, NULL, NULL, NULL, 1, 0.1, 1e-5), "input must be floating point, got int64");
  CHECK_ERR(fc_batch_norm(x, NULL, NULL, v2, NULL, 1, 0.1, 1e-5), "weight must have shape [3], got [2]");
  CHECK_ERR(fc_batch_norm(x, NULL, NULL, NULL, v2, 1, 0.1, 1e-5), "bias must have shape [3], got [2]");
  CHECK_ERR(fc_batch_norm(x, v2, v2, NULL, NULL, 1, 0.1, 1e-5), "running_mean must have shape [3]");
  CHECK_ERR(fc_batch_norm(x, v3, NULL, NULL, NULL, 1, 0.1, 1e-5), "both running_mean and running_var");
  CHECK_ERR(fc_batch_norm(x, NULL, NULL, NULL, NULL, 0, 0.1, 1e-5), "evaluation mode");
  CHECK_ERR(fc_batch_norm(x, NULL, NULL, NULL, NULL, 1, 1.5, 1e-5), "momentum must be in [0, 1], got 1.5");
  CHECK_ERR(fc_batch_norm(x, NULL, NULL, NULL, NULL, 1, 0.1, -1), "eps must be non-negative");
  CHECK_ERR(fc_batch_norm(one, NULL, NULL, NULL, NULL, 1, 0.1, 1e-5), "more than 1 value per channel");
  fc_tensor *rm = MK(FC_FLOAT32, S(3), 0, 0, 0);
  fc_set_requires_grad(rm, 1);
  CHECK_ERR(fc_batch_norm(x, rm, v3, NULL, NULL, 1, 0.1, 1e-5), "in-place op on a tensor that requires grad");
  fc_tensor *ones3 = MK(FC_FLOAT32, S(3), 1, 1, 1);
  EXPECT(fc_batch_norm(one, v3, ones3, NULL, NULL, 0, 0.1, 0), FC_FLOAT32, S(1, 3), 0, 1, 2, 3); /* eval: fine */
  fc_release(ones3);
  fc_release(x), fc_release(v3), fc_release(v2), fc_release(one), fc_release(ints), fc_release(flat);
  fc_release(rm);
}

/* ---- layer norm ------------------------------------------------------------------ */

static void ln_case(int dtype, int ndim, const int64_t *shape, int ndims, bool affine, double tol) {
  fc_tensor *x = fc_randn(ndim, shape, dtype, CPU);
  int64_t K = 1;
  for (int d = ndim - ndims; d < ndim; d++) K *= shape[d];
  fc_tensor *w = fc_randn(ndims, shape + ndim - ndims, dtype, CPU), *b = fc_randn(ndims, shape + ndim - ndims, dtype, CPU);
  double *xv = tensor_values(x), *wv = tensor_values(w), *bv = tensor_values(b), *want = malloc(sizeof(double) * (size_t)x->numel);
  ref_layer_norm(xv, x->numel / K, K, affine ? wv : NULL, affine ? bv : NULL, 1e-5, want);
  EXPECT_VALUES(fc_layer_norm(x, ndims, affine ? w : NULL, affine ? b : NULL, 1e-5), want, x->numel, tol);
  free(xv), free(wv), free(bv), free(want);
  fc_release(x), fc_release(w), fc_release(b);
}

TEST(layer_norm_matches_reference) {
  fc_manual_seed(5);
  for (int affine = 0; affine < 2; affine++) {
    ln_case(FC_FLOAT64, 3, (int64_t[]){2, 3, 4}, 1, affine, 1e-12);
    ln_case(FC_FLOAT64, 3, (int64_t[]){2, 3, 4}, 2, affine, 1e-12);
    ln_case(FC_FLOAT64, 2, (int64_t[]){3, 7}, 2, affine, 1e-12);
    ln_case(FC_FLOAT64, 1, (int64_t[]){9}, 1, affine, 1e-12);
    ln_case(FC_FLOAT32, 3, (int64_t[]){64, 50, 48}, 1, affine, 1e-5); /* parallel rows */
  }
}

typedef struct { int ndims; bool strided, affine; } ln_ctx;

static fc_tensor *ln_fn(fc_tensor **in, void *ctx) {
  ln_ctx *c = ctx;
  fc_tensor *x = c->strided ? fc_transpose(in[0], 0, 2) : fc_retain(in[0]);
  fc_tensor *y = fc_layer_norm(x, c->ndims, c->affine ? in[1] : NULL, c->affine ? in[2] : NULL, 1e-5);
  fc_release(x);
  return y;
}

TEST(layer_norm_gradients) {
  fc_manual_seed(6);
  for (int ndims = 1; ndims <= 2; ndims++) {
    ln_ctx c = {ndims, false, true};
    fc_tensor *in[3] = {RANDN(S(2, 3, 4)), randn64(ndims, (int64_t[]){3, 4} + 2 - ndims),
                        randn64(ndims, (int64_t[]){3, 4} + 2 - ndims)};
    GRADCHECK("layer_norm", ln_fn, 3, in, &c);
    c.affine = false;
    GRADCHECK("layer_norm no affine", ln_fn, 1, in, &c);
    for (int i = 0; i < 3; i++) fc_release(in[i]);
  }
  ln_ctx c = {2, true, true}; /* x is the transpose of a [4, 3, 2] tensor */
  fc_tensor *in[3] = {RANDN(S(4, 3, 2)), RANDN(S(3, 4)), RANDN(S(3, 4))};
  GRADCHECK("layer_norm strided", ln_fn, 3, in, &c);
  for (int i = 0; i < 3; i++) fc_release(in[i]);
}

/* Big enough to split rows across threads: the weight's partial sums add up. */
TEST(layer_norm_parallel_weight_grad) {
  fc_manual_seed(7);
  fc_tensor *x = fc_randn(2, (int64_t[]){700, 64}, FC_FLOAT64, CPU), *w = fc_ones(1, (int64_t[]){64}, FC_FLOAT64, CPU);
  fc_set_requires_grad(w, 1);
  fc_tensor *y = fc_layer_norm(x, 1, w, NULL, 1e-5), *g = fc_randn(2, y->shape, FC_FLOAT64, CPU);
  CHECK(fc_backward(y, g, 0) == 0);
  double *xv = tensor_values(x), *gv = tensor_values(g), *xh = malloc(sizeof(double) * 700 * 64), want[64] = {0};
  ref_layer_norm(xv, 700, 64, NULL, NULL, 1e-5, xh);
  for (int r = 0; r < 700; r++)
    for (int k = 0; k < 64; k++) want[k] += gv[r * 64 + k] * xh[r * 64 + k];
  EXPECT_VALUES(fc_get_grad(w), want, 64, 1e-10);
  free(xv), free(gv), free(xh);
  fc_release(x), fc_release(w), fc_release(y), fc_release(g);
}

TEST(layer_norm_errors) {
  fc_tensor *x = MK(FC_FLOAT32, S(2, 3), 1, 2, 3, 4, 5, 6), *w2 = MK(FC_FLOAT32, S(2), 1, 1);
  fc_tensor *w23 = MK(FC_FLOAT32, S(3, 2), 1, 1, 1, 1, 1, 1), *ints = MK(FC_INT32, S(2), 1, 2);
  CHECK_ERR(fc_layer_norm(x, 3, NULL, NULL, 1e-5), "ndims must be 1..2 for an input of shape [2,3], got 3");
  CHECK_ERR(fc_layer_norm(x, 0, NULL, NULL, 1e-5), "got 0");
  CHECK_ERR(fc_layer_norm(x, 1, w2, NULL, 1e-5), "weight of shape [2] does not match the normalised shape [3]");
  CHECK_ERR(fc_layer_norm(x, 2, NULL, w23, 1e-5), "bias of shape [3,2] does not match the normalised shape [2,3]");
  CHECK_ERR(fc_layer_norm(ints, 1, NULL, NULL, 1e-5), "input must be floating point, got int32");
  fc_release(x), fc_release(w2), fc_release(w23), fc_release(ints);
}

/* ---- group norm ------------------------------------------------------------------- */

static void gn_case(int dtype, int ndim, const int64_t *shape, int G, bool affine, double tol) {
  int64_t N = shape[0], C = shape[1], S = 1;
  for (int d = 2; d < ndim; d++) S *= shape[d];
  fc_tensor *x = fc_randn(ndim, shape, dtype, CPU), *w = fc_randn(1, &C, dtype, CPU), *b = fc_randn(1, &C, dtype, CPU);
  double *xv = tensor_values(x), *wv = tensor_values(w), *bv = tensor_values(b), *want = malloc(sizeof(double) * (size_t)x->numel);
  ref_group_norm(xv, N, C, S, G, affine ? wv : NULL, affine ? bv : NULL, 1e-5, want);
  EXPECT_VALUES(fc_group_norm(x, G, affine ? w : NULL, affine ? b : NULL, 1e-5), want, x->numel, tol);
  free(xv), free(wv), free(bv), free(want);
  fc_release(x), fc_release(w), fc_release(b);
}

TEST(group_norm_matches_reference) {
  fc_manual_seed(8);
  for (int affine = 0; affine < 2; affine++) {
    gn_case(FC_FLOAT64, 4, (int64_t[]){2, 6, 3, 2}, 3, affine, 1e-12);
    gn_case(FC_FLOAT64, 4, (int64_t[]){2, 6, 3, 2}, 1, affine, 1e-12); /* one group: layer norm of [C,H,W] */
    gn_case(FC_FLOAT64, 3, (int64_t[]){3, 4, 5}, 4, affine, 1e-12);    /* groups = C: instance norm */
    gn_case(FC_FLOAT64, 2, (int64_t[]){3, 4}, 2, affine, 1e-12);
    gn_case(FC_FLOAT32, 4, (int64_t[]){8, 32, 16, 16}, 8, affine, 1e-5); /* parallel */
  }
}

/* torch.nn.functional.group_norm(x, 2, w, b, eps=1e-5), float64, x = gen() [2, 4, 3]. */
TEST(group_norm_matches_pytorch) {
  fc_tensor *x = GEN(FC_FLOAT64, S(2, 4, 3));
  fc_tensor *w = MK(FC_FLOAT64, S(4), 0.5, -1.2, 2.0, 0.7), *b = MK(FC_FLOAT64, S(4), 0.1, -0.3, 0.0, 0.25);
  EXPECT(fc_group_norm(x, 2, w, b, 1e-5), FC_FLOAT64, S(2, 4, 3), 1e-10, -0.843942103257, -0.251668787358,
         0.282073796964, -0.806232077067, -1.35829390132, -1.40796304637, 2.72064080138, 1.95152578941,
         0.928829026212, -0.0876306964498, -0.438073648221, -0.684644121279, -0.431946415264, -0.354299434048,
         -0.12961351699, -0.135550656811, -1.23318410584, -2.44932771647, -3.85296921874, -0.328591291987,
         2.14309318394, 0.809964053999, 0.658436437268, -0.00493692689032);
  fc_release(x), fc_release(w), fc_release(b);
}

typedef struct { int groups; bool strided, affine; } gn_ctx;

static fc_tensor *gn_fn(fc_tensor **in, void *ctx) {
  gn_ctx *c = ctx;
  fc_tensor *x = c->strided ? fc_transpose(in[0], 0, 2) : fc_retain(in[0]);
  fc_tensor *y = fc_group_norm(x, c->groups, c->affine ? in[1] : NULL, c->affine ? in[2] : NULL, 1e-5);
  fc_release(x);
  return y;
}

TEST(group_norm_gradients) {
  fc_manual_seed(9);
  for (int groups = 1; groups <= 4; groups *= 2) {
    gn_ctx c = {groups, false, true};
    fc_tensor *in[3] = {RANDN(S(2, 4, 3)), RANDN(S(4)), RANDN(S(4))};
    GRADCHECK("group_norm", gn_fn, 3, in, &c);
    c.affine = false;
    GRADCHECK("group_norm no affine", gn_fn, 1, in, &c);
    for (int i = 0; i < 3; i++) fc_release(in[i]);
  }
  gn_ctx c = {2, true, true}; /* x: the transpose of [3, 4, 2] */
  fc_tensor *in[3] = {RANDN(S(3, 4, 2)), RANDN(S(4)), RANDN(S(4))};
  GRADCHECK("group_norm strided", gn_fn, 3, in, &c);
  for (int i = 0; i < 3; i++) fc_release(in[i]);
}

TEST(group_norm_errors) {
  fc_tensor *x = MK(FC_FLOAT32, S(1, 3, 2), 1, 2, 3, 4, 5, 6), *w2 = MK(FC_FLOAT32, S(2), 1, 1);
  CHECK_ERR(fc_group_norm(x, 2, NULL, NULL, 1e-5), "2 groups do not divide 3 channels");
  CHECK_ERR(fc_group_norm(x, 0, NULL, NULL, 1e-5), "groups must be at least 1, got 0");
  CHECK_ERR(fc_group_norm(x, 3, w2, NULL, 1e-5), "weight must have shape [3], got [2]");
  CHECK_ERR(fc_group_norm(w2, 1, NULL, NULL, 1e-5), "at least 2 dims");
  fc_release(x), fc_release(w2);
}

/* ---- dropout -------------------------------------------------------------------------- */

TEST(dropout_statistics_and_scale) {
  fc_manual_seed(10);
  int64_t n = 200000;
  for (int k = 0; k < 3; k++) {
    double p = (double[]){0.1, 0.5, 0.8}[k];
    fc_tensor *x = fc_full(1, &n, 3.0, FC_FLOAT32, CPU), *y = fc_dropout(x, p, 1);
    double *v = tensor_values(y);
    int64_t kept = 0, bad = 0;
    for (int64_t i = 0; i < n; i++) {
      if (v[i] != 0) kept++;
      if (v[i] != 0 && fabs(v[i] - 3 / (1 - p)) > 1e-5) bad++;
    }
    CHECK(bad == 0);
    double frac = (double)kept / (double)n, sd = sqrt(p * (1 - p) / (double)n);
    if (fabs(frac - (1 - p)) > 5 * sd) harness_fail(__FILE__, __LINE__, "p=%g kept %g", p, frac);
    free(v);
    fc_release(x), fc_release(y);
  }
}

/* The same mask for 1 or 2 threads, and from the same seed; a new draw differs. */
TEST(dropout_reproducible) {
  int64_t n = 300001;
  fc_tensor *x = fc_ones(1, &n, FC_FLOAT64, CPU);
  int threads = fc_get_num_threads();
  fc_set_num_threads(1);
  fc_manual_seed(11);
  fc_tensor *a = fc_dropout(x, 0.3, 1), *a2 = fc_dropout(x, 0.3, 1);
  fc_set_num_threads(2);
  fc_manual_seed(11);
  fc_tensor *b = fc_dropout(x, 0.3, 1);
  fc_set_num_threads(threads);
  double *va = tensor_values(a), *va2 = tensor_values(a2), *vb = tensor_values(b);
  CHECK(memcmp(va, vb, sizeof(double) * (size_t)n) == 0);
  CHECK(memcmp(va, va2, sizeof(double) * (size_t)n) != 0);
  free(va), free(va2), free(vb);
  fc_release(x), fc_release(a), fc_release(a2), fc_release(b);
}

/* Backward passes g where the forward kept x (times 1/(1-p)), 0 elsewhere. */
TEST(dropout_backward_uses_the_mask) {
  fc_manual_seed(12);
  int64_t shape[2] = {300, 257};
  fc_tensor *base = fc_rand(2, shape, FC_FLOAT64, CPU), *one = fc_scalar(1, FC_FLOAT64, CPU);
  fc_tensor *x0 = fc_add(base, one); /* no zeros */
  fc_set_requires_grad(x0, 1);
  fc_tensor *x = fc_transpose(x0, 0, 1); /* strided */
  fc_tensor *y = fc_dropout(x, 0.4, 1), *g = fc_randn(2, y->shape, FC_FLOAT64, CPU);
  if (fc_backward(y, g, 0) != 0) harness_fail(__FILE__, __LINE__, "%s", fc_last_error());
  fc_tensor *gx = fc_get_grad(x0), *gxt = gx ? fc_transpose(gx, 0, 1) : NULL;
  double *vy = tensor_values(y), *vg = tensor_values(g), *vgx = gxt ? tensor_values(gxt) : NULL;
  int64_t bad = 0;
  for (int64_t i = 0; vgx && i < y->numel; i++)
    if (fabs(vgx[i] - (vy[i] != 0 ? vg[i] / 0.6 : 0)) > 1e-12 * (1 + fabs(vg[i]))) bad++;
  CHECK(vgx && bad == 0);
  free(vy), free(vg), free(vgx);
  fc_release(base), fc_release(one), fc_release(x0), fc_release(x), fc_release(y), fc_release(g);
  fc_release(gx), fc_release(gxt);
}

/* The mask is defined by the global Philox stream: after manual_seed(s),
 * element i is kept when word i % 4 of counter i / 4 (key s) is below
 * (1 - p) 2^32. A CUDA kernel can draw the very same mask. */
TEST(dropout_mask_is_the_philox_stream) {
  int64_t n = 1001;
  fc_tensor *x = fc_ones(1, &n, FC_FLOAT32, CPU);
  fc_manual_seed(21);
  fc_tensor *y = fc_dropout(x, 0.3, 1);
  double *v = tensor_values(y);
  int64_t bad = 0;
  for (int64_t i = 0; i < n; i++) {
    uint32_t ctr[4] = {(uint32_t)(i / 4), 0, 0, 0}, key[2] = {21, 0}, w[4];
    philox4x32_10(ctr, key, w);
    bool keep = (uint64_t)w[i % 4] < (uint64_t)(0.7 * 4294967296.0);
    bad += keep != (v[i] != 0);
  }
  CHECK(bad == 0);
  free(v);
  fc_release(x), fc_release(y);
}

static fc_tensor *dropout_seeded(fc_tensor *x) {
  fc_manual_seed(13); /* the same mask at every evaluation */
  return fc_dropout(x, 0.5, 1);
}

TEST(dropout_gradient_check) {
  fc_tensor *x = RANDN(S(4, 6));
  GRADCHECK("dropout", apply_one, 1, &x, (void *)dropout_seeded);
  fc_release(x);
}

TEST(dropout_edge_cases) {
  fc_tensor *x = MK(FC_FLOAT32, S(2, 2), 1, NAN, 3, 4);
  fc_tensor *e = fc_dropout(x, 0.5, 0), *z = fc_dropout(x, 0, 1);
  CHECK(e == x && z == x); /* eval and p = 0: the input itself, no copy */
  fc_release(e), fc_release(z);
  EXPECT(fc_dropout(x, 1, 1), FC_FLOAT32, S(2, 2), 0, 0, NAN, 0, 0); /* x * 0 */
  fc_tensor *w = MK(FC_FLOAT64, S(3), 1, 2, 3);
  fc_set_requires_grad(w, 1);
  fc_tensor *y = fc_dropout(w, 1, 1), *g = fc_ones(1, (int64_t[]){3}, FC_FLOAT64, CPU);
  CHECK(fc_backward(y, g, 0) == 0);
  EXPECT(fc_get_grad(w), FC_FLOAT64, S(3), 0, 0, 0, 0);
  fc_tensor *h = MK(FC_FLOAT16, S(4), 1, 1, 1, 1), *hy = fc_dropout(h, 0.5, 1);
  CHECK(hy && hy->dtype == FC_FLOAT16);
  fc_tensor *ints = MK(FC_INT64, S(2), 1, 2);
  CHECK_ERR(fc_dropout(x, 1.5, 1), "p must be in [0, 1], got 1.5");
  CHECK_ERR(fc_dropout(x, -0.1, 1), "p must be in [0, 1]");
  CHECK_ERR(fc_dropout(ints, 0.5, 1), "input must be floating point, got int64");
  fc_release(x), fc_release(w), fc_release(y), fc_release(g), fc_release(h), fc_release(hy), fc_release(ints);
}

/* ---- embedding ------------------------------------------------------------------------ */

TEST(embedding_gathers_rows) {
  fc_tensor *w = MK(FC_FLOAT32, S(4, 2), 0, 1, 10, 11, 20, 21, 30, 31);
  fc_tensor *i1 = MK(FC_INT64, S(2, 3), 1, 4, 4, 2, 1, 3), *i0 = MK(FC_INT32, S(3), 3, 0, 3);
  EXPECT(fc_embedding(w, i1, FC_NO_INDEX, 1), FC_FLOAT32, S(2, 3, 2), 0, 0, 1, 30, 31, 30, 31, 10, 11, 0, 1, 20,
         21);
  EXPECT(fc_embedding(w, i0, FC_NO_INDEX, 0), FC_FLOAT32, S(3, 2), 0, 30, 31, 0, 1, 30, 31);
  fc_tensor *s = MK(FC_INT64, S(), 2); /* a 0-dim index gives one row */
  EXPECT(fc_embedding(w, s, FC_NO_INDEX, 0), FC_FLOAT32, S(2), 0, 20, 21);
  fc_tensor *col = fc_narrow(w, 1, 1, 1); /* a strided weight */
  EXPECT(fc_embedding(col, i0, FC_NO_INDEX, 0), FC_FLOAT32, S(3, 1), 0, 31, 1, 31);
  fc_release(w), fc_release(i1), fc_release(i0), fc_release(s), fc_release(col);
}

/* Repeated indices add their gradient rows; the padding row gets none. */
TEST(embedding_backward_duplicates_and_padding) {
  fc_tensor *w = fc_zeros(2, (int64_t[]){4, 2}, FC_FLOAT64, CPU);
  fc_set_requires_grad(w, 1);
  fc_tensor *idx = MK(FC_INT64, S(5), 2, 2, 3, 2, 1);
  fc_tensor *y = fc_embedding(w, idx, 3, 1);
  fc_tensor *g = MK(FC_FLOAT64, S(5, 2), 1, 2, 10, 20, 100, 200, 1000, 2000, 5, 6);
  CHECK(fc_backward(y, g, 0) == 0);
  EXPECT(fc_get_grad(w), FC_FLOAT64, S(4, 2), 0, 5, 6, 1011, 2022, 0, 0, 0, 0);
  fc_release(w), fc_release(idx), fc_release(y), fc_release(g);
}

static fc_tensor *embedding_fn(fc_tensor **in, void *ctx) {
  return fc_embedding(in[0], (fc_tensor *)ctx, FC_NO_INDEX, 0);
}

TEST(embedding_gradient_check) {
  fc_tensor *w = RANDN(S(5, 3)), *idx = MK(FC_INT64, S(2, 4), 0, 4, 1, 4, 4, 2, 1, 0);
  GRADCHECK("embedding", embedding_fn, 1, &w, idx);
  fc_release(w), fc_release(idx);
}

/* Many repeats of few rows, split across threads: the same sums (bit for
 * bit) for 1 and 2 threads, matching a plain loop. */
TEST(embedding_backward_parallel) {
  fc_manual_seed(14);
  int64_t n = 20000, V = 50, D = 16;
  fc_tensor *w = fc_zeros(2, (int64_t[]){V, D}, FC_FLOAT32, CPU), *idx = fc_randint(0, V, 1, &n, FC_INT64, CPU);
  fc_set_requires_grad(w, 1);
  fc_tensor *g = fc_randn(2, (int64_t[]){n, D}, FC_FLOAT32, CPU);
  double *grads[2];
  int threads = fc_get_num_threads();
  for (int t = 0; t < 2; t++) {
    fc_set_num_threads(t + 1);
    fc_tensor *y = fc_embedding(w, idx, FC_NO_INDEX, 0);
    CHECK(fc_backward(y, g, 0) == 0);
    fc_tensor *gw = fc_get_grad(w);
    grads[t] = tensor_values(gw);
    fc_set_grad(w, NULL);
    fc_release(y), fc_release(gw);
  }
  fc_set_num_threads(threads);
  CHECK(memcmp(grads[0], grads[1], sizeof(double) * (size_t)(V * D)) == 0);
  double *iv = tensor_values(idx), *gv = tensor_values(g), *want = calloc((size_t)(V * D), sizeof(double));
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < D; j++) want[(int64_t)iv[i] * D + j] += gv[i * D + j];
  int64_t bad = 0;
  for (int64_t k = 0; k < V * D; k++) bad += fabs(grads[0][k] - want[k]) > 1e-3 * (1 + fabs(want[k]));
  CHECK(bad == 0);
  free(grads[0]), free(grads[1]), free(iv), free(gv), free(want);
  fc_release(w), fc_release(idx), fc_release(g);
}

TEST(embedding_errors) {
  fc_tensor *w = fc_zeros(2, (int64_t[]){5, 2}, FC_FLOAT32, CPU), *w1 = fc_zeros(1, (int64_t[]){5}, FC_FLOAT32, CPU);
  fc_tensor *hi = MK(FC_INT64, S(3), 1, 6, 2), *lo = MK(FC_INT64, S(2), 0, -1), *fl = MK(FC_FLOAT32, S(1), 1);
  fc_tensor *ok = MK(FC_INT64, S(1), 1);
  CHECK_ERR(fc_embedding(w, hi, FC_NO_INDEX, 1), "index 6 out of range for a weight of 5 rows (valid 1..5)");
  CHECK_ERR(fc_embedding(w, lo, FC_NO_INDEX, 1), "index 0 out of range for a weight of 5 rows (valid 1..5)");
  CHECK_ERR(fc_embedding(w, lo, FC_NO_INDEX, 0), "index -1 out of range for a weight of 5 rows (valid 0..4)");
  CHECK_ERR(fc_embedding(w, fl, FC_NO_INDEX, 0), "indices must be int64 (or int32), got float32");
  CHECK_ERR(fc_embedding(w1, ok, FC_NO_INDEX, 0), "weight must be 2-D [rows, dim], got shape [5]");
  CHECK_ERR(fc_embedding(w, ok, 0, 1), "padding_idx 0 out of range for a weight of 5 rows (valid 1..5)");
  fc_release(w), fc_release(w1), fc_release(hi), fc_release(lo), fc_release(fl), fc_release(ok);
}

int main(void) {
  RUN(batch_norm_matches_reference);
  RUN(batch_norm_half_computes_in_float32);
  RUN(batch_norm_running_stats_by_hand);
  RUN(batch_norm_cumulative_average);
  RUN(batch_norm_matches_pytorch);
  RUN(batch_norm_strided_input);
  RUN(batch_norm_gradients);
  RUN(batch_norm_weight_grad_only);
  RUN(batch_norm_errors);
  RUN(layer_norm_matches_reference);
  RUN(layer_norm_gradients);
  RUN(layer_norm_parallel_weight_grad);
  RUN(layer_norm_errors);
  RUN(group_norm_matches_reference);
  RUN(group_norm_matches_pytorch);
  RUN(group_norm_gradients);
  RUN(group_norm_errors);
  RUN(dropout_statistics_and_scale);
  RUN(dropout_reproducible);
  RUN(dropout_backward_uses_the_mask);
  RUN(dropout_mask_is_the_philox_stream);
  RUN(dropout_gradient_check);
  RUN(dropout_edge_cases);
  RUN(embedding_gathers_rows);
  RUN(embedding_backward_duplicates_and_padding);
  RUN(embedding_gradient_check);
  RUN(embedding_backward_parallel);
  RUN(embedding_errors);
  return harness_report();
}
