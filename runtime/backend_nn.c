/* backend_nn.c — the CUDA paths of the convolution, pooling and batch norm
 * ops: conv.c and ops_pool.c hand their kernels' pointers and geometry
 * here for cuda tensors; batch norm has its own op here, since the CPU's
 * keeps its statistics in host doubles and cuDNN keeps them on the device.
 *
 * Semantics are the CPU's. Batch norm: training normalises with the batch
 * statistics and moves the running ones (unbiased variance) by momentum;
 * evaluation uses the running ones. Its training backward is cuDNN's; the
 * evaluation backward (an affine map per channel) is composed of device
 * ops here, since cuDNN has no kernel for it. */
#include "backend.h"

/* ---- convolution and pooling -------------------------------------------------- */

int backend_conv(int which, const conv_geom *g, int dtype, fc_device dev, const void *a,
                 const void *b, const void *bias, void *out, void *gbias) {
  const fc_backend *bk = backend_get();
  if (!bk) return -1;
  bk_conv c = {.dtype = dtype, .allow_tf32 = backend_tf32(), .N = g->N, .C = g->C, .H = g->H,
               .W = g->W, .K = g->Co, .kh = g->kh, .kw = g->kw, .Ho = g->Ho, .Wo = g->Wo,
               .sh = g->sh, .sw = g->sw, .ph = g->ph, .pw = g->pw, .dh = g->dh, .dw = g->dw,
               .groups = g->groups};
  switch (which) {
  case BK_CONV_FORWARD:
    c.x = a, c.w = b, c.b = bias, c.y = out;
    return bk->conv_forward(dev.index, &c);
  case BK_CONV_BACKWARD_DATA:
    c.w = a, c.gy = b, c.gx = out;
    return bk->conv_backward_data(dev.index, &c);
  default:
    c.x = a, c.gy = b, c.gw = out, c.gb = gbias;
    return bk->conv_backward_filter(dev.index, &c);
  }
}

int backend_pool(const bk_pool *p, fc_device dev, bool backward) {
  const fc_backend *bk = backend_get();
  if (!bk) return -1;
  return backward ? bk->pool_backward(dev.index, p) : bk->pool_forward(dev.index, p);
}

/* ---- batch norm ------------------------------------------------------------------ */

/* Saved: x (dense, compute dtype), weight, stats [2, C] (mean, invstd: the
 * batch's in training, the running ones in evaluation), and y when fused
 * with relu. iarg: where weight and bias sit among the inputs (-1: absent),
 * training. */
enum { SAVED_X, SAVED_W, SAVED_STATS, SAVED_Y };

static bool wants_grad(const fc_node *n, int i) { return i >= 0 && (n->next[i] || n->leaf[i]); }

/* t viewed as [1, C, 1, ...] to broadcast over an ndim-dim input. */
static fc_tensor *per_channel(fc_tensor *t, int ndim) {
  int64_t shape[FC_MAX_DIMS];
  for (int d = 0; d < ndim; d++) shape[d] = d == 1 ? t->shape[0] : 1;
  return fc_view(t, ndim, shape);
}

/* Evaluation: y = (x - mean) invstd w + b, so gx = g w invstd, and the
 * parameter gradients are sums of g and g xhat over every dim but C. */
static int eval_backward(fc_tensor *const *s, fc_tensor *gd, fc_tensor **gx, fc_tensor **gw,
                         fc_tensor **gb) {
  fc_tensor *x = s[SAVED_X], *mean = fc_select(s[SAVED_STATS], 0, 0), *inv = fc_select(s[SAVED_STATS], 0, 1);
  int dims[FC_MAX_DIMS], nd = 0;
  for (int d = 0; d < x->ndim; d++)
    if (d != 1) dims[nd++] = d;
  fc_tensor *w = per_channel(s[SAVED_W], x->ndim), *m = mean ? per_channel(mean, x->ndim) : NULL;
  fc_tensor *is = inv ? per_channel(inv, x->ndim) : NULL;
  fc_tensor *k = w && is ? fc_mul(w, is) : NULL, *xm = m ? fc_sub(x, m) : NULL;
  fc_tensor *xhat = xm && is ? fc_mul(xm, is) : NULL, *gxh = xhat ? fc_mul(gd, xhat) : NULL;
  *gx = k ? fc_mul(gd, k) : NULL;
  *gb = fc_sum(gd, nd, dims, 0);
  *gw = gxh ? fc_sum(gxh, nd, dims, 0) : NULL;
  fc_tensor *tmp[] = {mean, inv, w, m, is, k, xm, xhat, gxh};
  for (size_t i = 0; i < sizeof tmp / sizeof *tmp; i++) fc_release(tmp[i]);
  return *gx && *gb && *gw ? 0 : -1;
}

static int training_backward(fc_tensor *const *s, fc_tensor *gd, fc_tensor **gx, fc_tensor **gw,
                             fc_tensor **gb, double eps) {
  fc_tensor *x = s[SAVED_X];
  int64_t C = x->shape[1];
  *gx = fc_empty(x->ndim, x->shape, x->dtype, x->device);
  *gw = fc_empty(1, &C, x->dtype, x->device);
  *gb = fc_empty(1, &C, x->dtype, x->device);
  if (!*gx || !*gw || !*gb) return -1;
  char *stats = elem_ptr(s[SAVED_STATS]);
  bk_bn k = {.dtype = x->dtype, .training = 1, .N = x->shape[0], .C = C, .S = x->numel / (x->shape[0] * C),
             .eps = eps, .x = elem_ptr(x), .weight = elem_ptr(s[SAVED_W]), .gy = elem_ptr(gd),
             .save_mean = stats, .save_invstd = stats + C * fc_dtype_size(x->dtype),
             .gx = elem_ptr(*gx), .gweight = elem_ptr(*gw), .gbias = elem_ptr(*gb)};
  return backend_get()->bn_backward(x->device.index, &k);
}

static int batch_norm_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  fc_tensor *const *s = n->saved;
  fc_tensor *x = s[SAVED_X], *y = n->nsaved > SAVED_Y ? s[SAVED_Y] : NULL;
  int wi = (int)n->iarg[0], bi = (int)n->iarg[1];
  int previous = grad_mode_push(false);
  fc_tensor *gd = dense_in(g, x->dtype), *gx = NULL, *gw = NULL, *gb = NULL;
  if (gd && y) { /* through the fused relu first */
    fc_tensor *zero = fc_scalar(0, y->dtype, y->device), *mask = zero ? fc_gt(y, zero) : NULL;
    fc_tensor *masked = mask ? fc_mul(gd, mask) : NULL;
    fc_release(zero), fc_release(mask), fc_release(gd);
    gd = masked;
  }
  int rc = !gd ? -1
         : n->iarg[2] ? training_backward(s, gd, &gx, &gw, &gb, n->arg[0])
                      : eval_backward(s, gd, &gx, &gw, &gb);
  grad_mode_pop(previous);
  fc_release(gd);
  if (rc == 0) {
    if (wants_grad(n, 0)) gi[0] = gx, gx = NULL;
    if (wants_grad(n, wi)) gi[wi] = gw, gw = NULL;
    if (wants_grad(n, bi)) gi[bi] = gb, gb = NULL;
  }
  fc_release(gx), fc_release(gw), fc_release(gb);
  return rc;
}

/* A per-channel vector (NULL: `fill`) as a dense tensor in dtype. */
static fc_tensor *channel_vector(fc_tensor *t, int64_t C, double fill, int dtype, fc_device dev) {
  return t ? dense_in(t, dtype) : fc_full(1, &C, fill, dtype, dev);
}

/* The running statistic cuDNN updates in place: t itself when it is dense
 * in the compute dtype, else a copy that is written back afterwards. */
static fc_tensor *running_buffer(fc_tensor *t, int dtype) {
  if (!t) return NULL;
  if (t->dtype == dtype && fc_is_contiguous(t)) return fc_retain(t);
  return dense_in(t, dtype);
}

static fc_node *record_bn(const char *op, fc_tensor *out, fc_tensor *x, fc_tensor *w, fc_tensor *b,
                          fc_tensor *const *saved, int nsaved, bool training, double eps) {
  fc_tensor *in[3] = {x};
  int n = 1, wi = -1, bi = -1;
  if (w) wi = n, in[n++] = w;
  if (b) bi = n, in[n++] = b;
  fc_node *node = record(op, batch_norm_backward, out, n, in);
  if (!node) return NULL;
  node->iarg[0] = wi, node->iarg[1] = bi, node->iarg[2] = training;
  node->arg[0] = eps;
  for (int i = 0; i < nsaved; i++) node_save(node, saved[i]);
  return node;
}

/* The evaluation statistics a backward needs in stats: the running mean
 * (copied, since the module moves it later) and 1/sqrt(running_var + eps). */
static int eval_stats(fc_tensor *rm, fc_tensor *rv, double eps, fc_tensor *stats) {
  fc_tensor *e = fc_scalar(eps, rv->dtype, rv->device), *ve = e ? fc_add(rv, e) : NULL;
  fc_tensor *is = ve ? fc_rsqrt(ve) : NULL, *mean = fc_select(stats, 0, 0), *inv = fc_select(stats, 0, 1);
  int rc = is && mean && inv && fc_copy_(mean, rm) == 0 && fc_copy_(inv, is) == 0 ? 0 : -1;
  fc_release(e), fc_release(ve), fc_release(is), fc_release(mean), fc_release(inv);
  return rc;
}

fc_tensor *cuda_batch_norm(const char *op, fc_tensor *x, fc_tensor *rm, fc_tensor *rv, fc_tensor *w,
                           fc_tensor *b, int training, double momentum, double eps, bool relu) {
  const fc_backend *bk = backend_get();
  if (!bk) return NULL;
  int dtype = kernel_dtype(x->dtype);
  fc_device dev = x->device;
  int64_t N = x->shape[0], C = x->shape[1], S = 1;
  for (int d = 2; d < x->ndim; d++) S *= x->shape[d];
  fc_tensor *inputs[3] = {x, w, b};
  bool grad = grad_needed(3, inputs);
  int previous = grad_mode_push(false);
  fc_tensor *xd = dense_in(x, dtype), *wd = channel_vector(w, C, 1, dtype, dev);
  fc_tensor *bd = channel_vector(b, C, 0, dtype, dev);
  fc_tensor *rmd = running_buffer(rm, dtype), *rvd = running_buffer(rv, dtype);
  fc_tensor *y = fc_empty(x->ndim, x->shape, dtype, dev);
  fc_tensor *stats = training || grad ? fc_empty(2, (int64_t[]){2, C}, dtype, dev) : NULL;
  bool ok = xd && wd && bd && (!rm || (rmd && rvd)) && y && (stats || !(training || grad));
  if (ok && x->numel) {
    bk_bn k = {.dtype = dtype, .training = training != 0, .N = N, .C = C, .S = S, .eps = eps,
               .momentum = momentum, .x = elem_ptr(xd), .weight = elem_ptr(wd), .bias = elem_ptr(bd),
               .y = elem_ptr(y), .running_mean = rmd ? elem_ptr(rmd) : NULL,
               .running_var = rvd ? elem_ptr(rvd) : NULL,
               .save_mean = stats ? elem_ptr(stats) : NULL,
               .save_invstd = stats ? elem_ptr(stats) + C * fc_dtype_size(dtype) : NULL};
    ok = bk->bn_forward(dev.index, &k) == 0;
  }
  if (ok && training && rm && rmd != rm) ok = fc_copy_(rm, rmd) == 0 && fc_copy_(rv, rvd) == 0;
  if (ok && relu) {
    fc_tensor *r = fc_relu(y);
    fc_release(y);
    ok = (y = r) != NULL;
  }
  if (ok && grad && !training) ok = eval_stats(rmd, rvd, eps, stats) == 0;
  grad_mode_pop(previous);
  fc_tensor *saved[4] = {xd, wd, stats, y};
  if (ok && grad) ok = record_bn(op, y, x, w, b, saved, relu ? 4 : 3, training, eps) != NULL;
  fc_tensor *tmp[] = {xd, wd, bd, rmd, rvd, stats};
  for (size_t i = 0; i < sizeof tmp / sizeof *tmp; i++) fc_release(tmp[i]);
  if (!ok) {
    fc_release(y);
    return NULL;
  }
  if (y->dtype == x->dtype) return y;
  fc_tensor *h = fc_to_dtype(y, x->dtype); /* half inputs: back from float32 */
  fc_release(y);
  return h;
}
