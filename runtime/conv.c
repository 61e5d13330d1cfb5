/* conv.c — the convolution ops: conv2d, conv1d, conv_transpose2d, their
 * autograd nodes, and the one place that picks a kernel.
 *
 * Kernels: float32 goes to oneDNN (conv_dnnl.c); float64 (gradient checks)
 * and anything oneDNN declines go to im2col + BLAS (conv_im2col.c). Half
 * dtypes compute in float32 and convert back.
 *
 * A transposed convolution is the data gradient of a convolution whose
 * input is the transpose's output: with w [Cin, Cout/g, kh, kw] read as a
 * convolution weight [Co=Cin, C/g=Cout/g, kh, kw],
 *   conv_transpose2d(x, w) = conv backward-data(gy = x, w),
 * and its gradients are a forward convolution (dx = conv(gy, w)) and a
 * convolution weight gradient (dw with the roles of input and output
 * gradient swapped). So the three kernels serve both ops. */
#include "backend.h"
#include <stdlib.h>

/* ---- dispatch ------------------------------------------------------------- */

static _Thread_local int last_backend = CONV_IM2COL;
int conv_last_backend(void) { return last_backend; }

/* rc of a oneDNN kernel: 1 means it declined, so im2col runs instead. */
static bool dnnl_took(int rc) {
  if (rc <= 0) last_backend = CONV_DNNL;
  return rc <= 0;
}

/* Tensors on a cuda device go to the plugin's cuDNN kernels (backend_nn.c). */
static int kernel_forward(const conv_geom *g, int dtype, fc_device dev, const void *x, const void *w, const void *b,
                          void *y) {
  if (dev.type == FC_CUDA) return backend_conv(BK_CONV_FORWARD, g, dtype, dev, x, w, b, y, NULL);
  if (dtype == FC_FLOAT32) {
    int rc = dnnl_conv_forward(g, x, w, b, y);
    if (dnnl_took(rc)) return rc;
  }
  last_backend = CONV_IM2COL;
  return im2col_conv_forward(g, dtype == FC_FLOAT64, x, w, b, y);
}

static int kernel_backward_data(const conv_geom *g, int dtype, fc_device dev, const void *w, const void *gy,
                                void *gx) {
  if (dev.type == FC_CUDA) return backend_conv(BK_CONV_BACKWARD_DATA, g, dtype, dev, w, gy, NULL, gx, NULL);
  if (dtype == FC_FLOAT32) {
    int rc = dnnl_conv_backward_data(g, w, gy, gx);
    if (dnnl_took(rc)) return rc;
  }
  last_backend = CONV_IM2COL;
  return im2col_conv_backward_data(g, dtype == FC_FLOAT64, w, gy, gx);
}

static int kernel_backward_weights(const conv_geom *g, int dtype, fc_device dev, const void *x, const void *gy,
                                   void *gw, void *gb) {
  if (dev.type == FC_CUDA) return backend_conv(BK_CONV_BACKWARD_FILTER, g, dtype, dev, x, gy, NULL, gw, gb);
  if (dtype == FC_FLOAT32) {
    int rc = dnnl_conv_backward_weights(g, x, gy, gw, gb);
    if (dnnl_took(rc)) return rc;
  }
  last_backend = CONV_IM2COL;
  return im2col_conv_backward_weights(g, dtype == FC_FLOAT64, x, gy, gw, gb);
}

/* ---- shared pieces ------------------------------------------------------ */

/* iarg layout of both ops' nodes: stride h/w, padding h/w, dilation h/w, groups */
enum { IARG_COUNT = 7 };

/* The convolution geometry from its input x, weight w and output y shapes. */
static conv_geom geometry(const int64_t *x, const int64_t *w, const int64_t *y, const int64_t *iarg) {
  conv_geom g = {x[0], x[1], x[2], x[3], w[0], w[2], w[3], y[2], y[3], (int)iarg[0], (int)iarg[1],
                 (int)iarg[2], (int)iarg[3], (int)iarg[4], (int)iarg[5], (int)iarg[6]};
  return g;
}

static int64_t conv_out_size(int64_t in, int64_t k, int s, int p, int d) {
  return (in + 2 * (int64_t)p - (int64_t)d * (k - 1) - 1) / s + 1;
}

static bool wants_grad(const fc_node *n, int i) { return n->ninputs > i && (n->next[i] || n->leaf[i]); }

/* The checks both ops share. */
static int check_args(const char *op, fc_tensor *x, fc_tensor *w, fc_tensor *b, const int *stride,
                      const int *padding, const int *dilation, int groups) {
  const fc_tensor *ins[3] = {x, w, b};
  if (check_same_device(op, b ? 3 : 2, ins) < 0) return -1;
  if (!is_float_dtype(x->dtype) || x->dtype != w->dtype || (b && b->dtype != x->dtype))
    FAIL_INT("%s: input, weight and bias must share one float dtype, got input %s, weight %s%s%s", op, DTYPE(x),
             DTYPE(w), b ? ", bias " : "", b ? DTYPE(b) : "");
  for (int i = 0; i < 2; i++)
    if (stride[i] < 1 || padding[i] < 0 || dilation[i] < 1)
      FAIL_INT("%s: stride {%d,%d} and dilation {%d,%d} must be >= 1 and padding {%d,%d} >= 0", op, stride[0],
               stride[1], dilation[0], dilation[1], padding[0], padding[1]);
  if (groups < 1) FAIL_INT("%s: groups must be >= 1, got %d", op, groups);
  return 0;
}

/* Contiguous copies of x and w in the compute dtype (new references). */
static int compute_inputs(fc_tensor *x, fc_tensor *w, fc_tensor *b, int compute, fc_tensor **xc, fc_tensor **wc,
                          fc_tensor **bc) {
  fc_tensor *x0 = fc_to_dtype(x, compute), *w0 = fc_to_dtype(w, compute), *b0 = b ? fc_to_dtype(b, compute) : NULL;
  *xc = x0 ? fc_contiguous(x0) : NULL;
  *wc = w0 ? fc_contiguous(w0) : NULL;
  *bc = b0 ? fc_contiguous(b0) : NULL;
  fc_release(x0), fc_release(w0), fc_release(b0);
  return *xc && *wc && (!b || *bc) ? 0 : -1;
}

/* y back in the caller's dtype (y itself when that is the compute dtype). */
static fc_tensor *to_caller_dtype(fc_tensor *y, int dtype) {
  if (!y || y->dtype == dtype) return y;
  fc_tensor *h = fc_to_dtype(y, dtype);
  fc_release(y);
  return h;
}

/* Records the node (saving the compute copies) or releases y on failure. */
static fc_tensor *record_conv(const char *op, backward_fn fn, fc_tensor *y, fc_tensor **inputs, int ninputs,
                              fc_tensor *xc, fc_tensor *wc, const int *stride, const int *padding,
                              const int *dilation, int groups) {
  if (!y || !grad_needed(ninputs, inputs)) return y;
  fc_node *n = record(op, fn, y, ninputs, inputs);
  if (!n) {
    fc_release(y);
    return NULL;
  }
  node_save(n, xc);
  node_save(n, wc);
  const int p[IARG_COUNT] = {stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1], groups};
  for (int i = 0; i < IARG_COUNT; i++) n->iarg[i] = p[i];
  return y;
}

/* The output's gradient, contiguous, in the dtype the inputs were saved in:
 * a half output has a half gradient, but the kernels read the float32 copies. */
static fc_tensor *grad_in(fc_tensor *g, int compute) {
  fc_tensor *gd = fc_to_dtype(g, compute);
  fc_tensor *gc = gd ? fc_contiguous(gd) : NULL;
  fc_release(gd);
  return gc;
}

/* ---- conv2d --------------------------------------------------------------- */

static int conv2d_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  fc_tensor *x = n->saved[0], *w = n->saved[1];
  fc_tensor *gc = grad_in(g, x->dtype);
  if (!gc) return -1;
  conv_geom geom = geometry(x->shape, w->shape, gc->shape, n->iarg);
  bool want_b = wants_grad(n, 2), want_w = wants_grad(n, 1);
  fc_tensor *dx = wants_grad(n, 0) ? fc_empty(4, x->shape, x->dtype, x->device) : NULL;
  fc_tensor *dw = want_w ? fc_empty(4, w->shape, w->dtype, w->device) : NULL;
  fc_tensor *db = want_b && want_w ? fc_empty(1, &w->shape[0], w->dtype, w->device) : NULL;
  int rc = (wants_grad(n, 0) && !dx) || (want_w && !dw) || (want_b && want_w && !db) ? -1 : 0;
  if (rc == 0 && dx) rc = kernel_backward_data(&geom, x->dtype, x->device, fc_data_ptr(w), fc_data_ptr(gc), fc_data_ptr(dx));
  if (rc == 0 && dw)
    rc = kernel_backward_weights(&geom, x->dtype, x->device, fc_data_ptr(x), fc_data_ptr(gc), fc_data_ptr(dw),
                                 db ? fc_data_ptr(db) : NULL);
  if (rc == 0 && want_b && !want_w) { /* bias alone: sum over N, H, W */
    db = fc_sum(gc, 3, (int[]){0, 2, 3}, 0);
    if (!db) rc = -1;
  }
  fc_release(gc);
  if (rc < 0) {
    fc_release(dx), fc_release(dw), fc_release(db);
    return -1;
  }
  gi[0] = dx, gi[1] = dw;
  if (want_b) gi[2] = db;
  return 0;
}

fc_tensor *fc_conv2d(fc_tensor *x, fc_tensor *weight, fc_tensor *bias, const int *stride, const int *padding,
                     const int *dilation, int groups) {
  if (x->ndim != 4 || weight->ndim != 4)
    FAIL("conv2d: expects input [N,C,H,W] and weight [Cout,Cin/groups,kh,kw], got %s and %s", SHAPE(x), SHAPE(weight));
  if (check_args("conv2d", x, weight, bias, stride, padding, dilation, groups) < 0) return NULL;
  if (x->shape[1] % groups || weight->shape[0] % groups)
    FAIL("conv2d: groups %d must divide the %lld input and %lld output channels", groups,
         (long long)x->shape[1], (long long)weight->shape[0]);
  if (weight->shape[1] * groups != x->shape[1])
    FAIL("conv2d: weight of shape %s expects %lld input channels, input of shape %s has %lld", SHAPE(weight),
         (long long)(weight->shape[1] * groups), SHAPE(x), (long long)x->shape[1]);
  if (bias && (bias->ndim != 1 || bias->shape[0] != weight->shape[0]))
    FAIL("conv2d: bias of shape %s does not match %lld output channels", SHAPE(bias), (long long)weight->shape[0]);
  int64_t Ho = conv_out_size(x->shape[2], weight->shape[2], stride[0], padding[0], dilation[0]);
  int64_t Wo = conv_out_size(x->shape[3], weight->shape[3], stride[1], padding[1], dilation[1]);
  if (Ho < 1 || Wo < 1)
    FAIL("conv2d: kernel %lldx%lld (dilation %d,%d) is larger than the padded input of shape %s (padding %d,%d)",
         (long long)weight->shape[2], (long long)weight->shape[3], dilation[0], dilation[1], SHAPE(x), padding[0],
         padding[1]);
  int64_t yshape[4] = {x->shape[0], weight->shape[0], Ho, Wo};
  int64_t iarg[IARG_COUNT] = {stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1], groups};
  conv_geom g = geometry(x->shape, weight->shape, yshape, iarg);
  int compute = x->dtype == FC_FLOAT64 ? FC_FLOAT64 : FC_FLOAT32;
  int prev = grad_mode_push(false);
  fc_tensor *xc, *wc, *bc;
  fc_tensor *y = compute_inputs(x, weight, bias, compute, &xc, &wc, &bc) == 0
                     ? fc_empty(4, yshape, compute, x->device) : NULL;
  if (y && kernel_forward(&g, compute, x->device, fc_data_ptr(xc), fc_data_ptr(wc), bc ? fc_data_ptr(bc) : NULL,
                          fc_data_ptr(y)) < 0) {
    fc_release(y);
    y = NULL;
  }
  y = to_caller_dtype(y, x->dtype);
  grad_mode_pop(prev);
  fc_tensor *inputs[3] = {x, weight, bias};
  y = record_conv("conv2d", conv2d_backward, y, inputs, bias ? 3 : 2, xc, wc, stride, padding, dilation, groups);
  fc_release(xc), fc_release(wc), fc_release(bc);
  return y;
}

fc_tensor *fc_conv1d(fc_tensor *x, fc_tensor *weight, fc_tensor *bias, int stride, int padding, int dilation,
                     int groups) {
  if (check_same_device("conv1d", 2, (const fc_tensor *const[]){x, weight}) < 0) return NULL;
  if (x->ndim != 3 || weight->ndim != 3)
    FAIL("conv1d: expects input [N,C,L] and weight [Cout,Cin/groups,k], got %s and %s", SHAPE(x), SHAPE(weight));
  fc_tensor *x4 = fc_unsqueeze(x, 2), *w4 = fc_unsqueeze(weight, 2);
  fc_tensor *y4 = x4 && w4 ? fc_conv2d(x4, w4, bias, (int[]){1, stride}, (int[]){0, padding}, (int[]){1, dilation}, groups)
                           : NULL;
  fc_tensor *y = y4 ? fc_squeeze(y4, 2) : NULL;
  fc_release(x4), fc_release(w4), fc_release(y4);
  return y;
}

/* ---- conv_transpose2d ----------------------------------------------------- */

/* Saved: x [N,Cin,H,W] and w [Cin,Cout/g,kh,kw]; g is the output's gradient
 * [N,Cout,Hout,Wout], the input of the equivalent convolution. */
static int conv_transpose2d_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  fc_tensor *x = n->saved[0], *w = n->saved[1];
  fc_tensor *gc = grad_in(g, x->dtype);
  if (!gc) return -1;
  conv_geom geom = geometry(gc->shape, w->shape, x->shape, n->iarg);
  fc_tensor *dx = wants_grad(n, 0) ? fc_empty(4, x->shape, x->dtype, x->device) : NULL;
  fc_tensor *dw = wants_grad(n, 1) ? fc_empty(4, w->shape, w->dtype, w->device) : NULL;
  int rc = (wants_grad(n, 0) && !dx) || (wants_grad(n, 1) && !dw) ? -1 : 0;
  if (rc == 0 && dx) rc = kernel_forward(&geom, x->dtype, x->device, fc_data_ptr(gc), fc_data_ptr(w), NULL, fc_data_ptr(dx));
  if (rc == 0 && dw)
    rc = kernel_backward_weights(&geom, x->dtype, x->device, fc_data_ptr(gc), fc_data_ptr(x), fc_data_ptr(dw), NULL);
  fc_tensor *db = NULL;
  if (rc == 0 && wants_grad(n, 2) && !(db = fc_sum(gc, 3, (int[]){0, 2, 3}, 0))) rc = -1;
  fc_release(gc);
  if (rc < 0) {
    fc_release(dx), fc_release(dw), fc_release(db);
    return -1;
  }
  gi[0] = dx, gi[1] = dw;
  if (n->ninputs > 2) gi[2] = db;
  return 0;
}

/* The output size along one dim, or an error naming the dim's numbers. */
static int64_t transpose_out_size(int64_t in, int64_t k, int s, int p, int op, int d, const char *dim) {
  if (op < 0 || (op >= s && op >= d)) {
    fc_set_error("conv_transpose2d: output_padding %d (%s) must be >= 0 and smaller than either stride %d or "
                 "dilation %d", op, dim, s, d);
    return -1;
  }
  int64_t out = (in - 1) * s - 2 * (int64_t)p + (int64_t)d * (k - 1) + op + 1;
  if (out < 1)
    fc_set_error("conv_transpose2d: output %s would be %lld (input %lld, kernel %lld, stride %d, padding %d, "
                 "dilation %d, output_padding %d); padding is too large", dim, (long long)out, (long long)in,
                 (long long)k, s, p, d, op);
  return out < 1 ? -1 : out;
}

fc_tensor *fc_conv_transpose2d(fc_tensor *x, fc_tensor *weight, fc_tensor *bias, const int *stride,
                               const int *padding, const int *output_padding, const int *dilation, int groups) {
  if (x->ndim != 4 || weight->ndim != 4)
    FAIL("conv_transpose2d: expects input [N,Cin,H,W] and weight [Cin,Cout/groups,kh,kw], got %s and %s",
         SHAPE(x), SHAPE(weight));
  if (check_args("conv_transpose2d", x, weight, bias, stride, padding, dilation, groups) < 0) return NULL;
  if (weight->shape[0] != x->shape[1])
    FAIL("conv_transpose2d: weight of shape %s expects %lld input channels, input of shape %s has %lld",
         SHAPE(weight), (long long)weight->shape[0], SHAPE(x), (long long)x->shape[1]);
  if (x->shape[1] % groups)
    FAIL("conv_transpose2d: groups %d must divide the %lld input channels", groups, (long long)x->shape[1]);
  int64_t cout = weight->shape[1] * groups;
  if (bias && (bias->ndim != 1 || bias->shape[0] != cout))
    FAIL("conv_transpose2d: bias of shape %s does not match %lld output channels", SHAPE(bias), (long long)cout);
  int64_t Ho = transpose_out_size(x->shape[2], weight->shape[2], stride[0], padding[0], output_padding[0],
                                  dilation[0], "height");
  int64_t Wo = Ho < 0 ? -1 : transpose_out_size(x->shape[3], weight->shape[3], stride[1], padding[1],
                                                output_padding[1], dilation[1], "width");
  if (Ho < 0 || Wo < 0) return NULL;
  int64_t yshape[4] = {x->shape[0], cout, Ho, Wo};
  int64_t iarg[IARG_COUNT] = {stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1], groups};
  conv_geom g = geometry(yshape, weight->shape, x->shape, iarg); /* y is the convolution's input */
  int compute = x->dtype == FC_FLOAT64 ? FC_FLOAT64 : FC_FLOAT32;
  int prev = grad_mode_push(false);
  fc_tensor *xc, *wc, *bc;
  fc_tensor *y = compute_inputs(x, weight, bias, compute, &xc, &wc, &bc) == 0
                     ? fc_empty(4, yshape, compute, x->device) : NULL;
  if (y && kernel_backward_data(&g, compute, x->device, fc_data_ptr(wc), fc_data_ptr(xc), fc_data_ptr(y)) < 0) {
    fc_release(y);
    y = NULL;
  }
  if (y && bc) {
    fc_tensor *b3 = fc_view(bc, 3, (int64_t[]){cout, 1, 1});
    if (!b3 || fc_add_(y, b3) < 0) {
      fc_release(y);
      y = NULL;
    }
    fc_release(b3);
  }
  y = to_caller_dtype(y, x->dtype);
  grad_mode_pop(prev);
  fc_tensor *inputs[3] = {x, weight, bias};
  y = record_conv("conv_transpose2d", conv_transpose2d_backward, y, inputs, bias ? 3 : 2, xc, wc, stride, padding,
                  dilation, groups);
  fc_release(xc), fc_release(wc), fc_release(bc);
  return y;
}
