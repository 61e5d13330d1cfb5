/* fastc.h — the public C API of the fastc runtime.
 *
 * This is the only header a C user includes. It is also the source of the
 * LuaJIT FFI declarations: the build runs it through the C preprocessor with
 * FC_CDEF defined, which drops the system includes and the macros below, and
 * the result is what lua/fastc/ffi.lua hands to ffi.cdef. Keep it plain C
 * declarations (no inline functions, no function-like macros in the body).
 *
 * Conventions
 * - Every call that makes a tensor returns a new reference (release it with
 *   fc_release) or NULL on error; calls that return int give 0 on success and
 *   -1 on error. On error fc_last_error() says what was wrong.
 * - Dims count from 0; a negative dim counts from the end (-1 = last).
 * - Ops that take or give index tensors take an explicit `base`: 0 for C
 *   users, 1 for the Lua binding, so error messages quote the caller's own
 *   numbers.
 * - In-place ops end with an underscore, as in PyTorch.
 */
#ifndef FASTC_H
#define FASTC_H

#ifndef FC_CDEF
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
#endif

enum { FC_MAX_DIMS = 8 };
enum { FC_ALL_DIMS = -1000 }; /* "reduce over every dim" for single-dim reductions */

typedef enum fc_dtype {
  FC_FLOAT32 = 0, FC_FLOAT64, FC_FLOAT16, FC_BFLOAT16,
  FC_INT64, FC_INT32, FC_UINT8, FC_BOOL, FC_NUM_DTYPES
} fc_dtype;

typedef enum fc_device_type { FC_CPU = 0, FC_CUDA = 1 } fc_device_type;

typedef struct fc_device { int32_t type; int32_t index; } fc_device;

/* Reference-counted memory shared by every view of it. `version` counts
 * in-place writes, so autograd can tell a saved tensor was modified. */
typedef struct fc_storage {
  void *data;
  size_t nbytes;
  int64_t refcount;
  int64_t version;
  fc_device device;
  int32_t pinned; /* CPU memory page-locked by the CUDA plugin (fc_pin_memory) */
} fc_storage;

/* A strided view of a storage. Shape and strides are in elements. */
typedef struct fc_tensor {
  fc_storage *storage;
  int64_t offset;
  int64_t numel;
  int64_t shape[FC_MAX_DIMS];
  int64_t stride[FC_MAX_DIMS];
  int32_t ndim;
  int32_t dtype;
  fc_device device;
  int64_t refcount;
  int32_t requires_grad;
  struct fc_tensor *grad;
  void *grad_fn;
} fc_tensor;

/* ---- runtime ----------------------------------------------------------- */
const char *fc_last_error(void);
void fc_set_error(const char *fmt, ...);
const char *fc_version(void);
void fc_set_num_threads(int n);
int fc_get_num_threads(void);
const char *fc_dtype_name(int dtype);
int fc_dtype_size(int dtype);
int fc_dtype_is_float(int dtype);
int fc_promote_types(int a, int b);

/* Memory accounting: bytes held by live tensors per device type, and bytes
 * allocated since the last fc_mem_mark() (the Lua binding steps its GC on it). */
int64_t fc_live_bytes(int device_type);
int64_t fc_bytes_since_mark(void);
void fc_mem_mark(void);
void fc_empty_cache(void);

/* ---- lifetime ---------------------------------------------------------- */
fc_tensor *fc_retain(fc_tensor *t);
void fc_release(fc_tensor *t);
/* A one-pointer box: the LuaJIT binding's tensor object. fc_release_handle is
 * its GC finaliser, called with the box's address, so collecting a tensor
 * costs no Lua call. */
typedef struct fc_handle { fc_tensor *p; } fc_handle;
void fc_release_handle(fc_handle *handle);
/* Frees the storage now if this is its only user, else just drops the data
 * reference; the tensor becomes empty (numel 0). */
void fc_free(fc_tensor *t);

/* ---- inspection -------------------------------------------------------- */
int fc_is_contiguous(const fc_tensor *t);
void *fc_data_ptr(const fc_tensor *t);
int fc_item(const fc_tensor *t, double *out);
int fc_get(const fc_tensor *t, const int64_t *index, double *out);
int fc_set(fc_tensor *t, const int64_t *index, double value);
/* Copies the elements, in logical order, as float64 into `out` (numel slots). */
int fc_to_doubles(const fc_tensor *t, double *out);

/* ---- creation ---------------------------------------------------------- */
fc_tensor *fc_empty(int ndim, const int64_t *shape, int dtype, fc_device dev);
fc_tensor *fc_zeros(int ndim, const int64_t *shape, int dtype, fc_device dev);
fc_tensor *fc_ones(int ndim, const int64_t *shape, int dtype, fc_device dev);
fc_tensor *fc_full(int ndim, const int64_t *shape, double value, int dtype, fc_device dev);
fc_tensor *fc_scalar(double value, int dtype, fc_device dev);
fc_tensor *fc_arange(double start, double end, double step, int dtype, fc_device dev);
fc_tensor *fc_linspace(double start, double end, int64_t steps, int dtype, fc_device dev);
fc_tensor *fc_eye(int64_t n, int64_t m, int dtype, fc_device dev);
/* Copies `data`, laid out contiguously in `src_dtype`, into a new tensor. */
fc_tensor *fc_from_buffer(const void *data, int src_dtype, int ndim, const int64_t *shape,
                          int dtype, fc_device dev);
fc_tensor *fc_empty_like(const fc_tensor *t);
fc_tensor *fc_zeros_like(const fc_tensor *t);

/* ---- randomness (Philox 4x32-10, counter based) ------------------------ */
void fc_manual_seed(uint64_t seed);
uint64_t fc_initial_seed(void);
fc_tensor *fc_rand(int ndim, const int64_t *shape, int dtype, fc_device dev);
fc_tensor *fc_randn(int ndim, const int64_t *shape, int dtype, fc_device dev);
fc_tensor *fc_randint(int64_t low, int64_t high, int ndim, const int64_t *shape, int dtype,
                      fc_device dev);
fc_tensor *fc_randperm(int64_t n, int dtype, fc_device dev);
int fc_uniform_(fc_tensor *t, double low, double high);
int fc_normal_(fc_tensor *t, double mean, double std);
int fc_bernoulli_(fc_tensor *t, double p);

/* ---- views (share storage) --------------------------------------------- */
fc_tensor *fc_view(fc_tensor *t, int ndim, const int64_t *shape);
fc_tensor *fc_reshape(fc_tensor *t, int ndim, const int64_t *shape);
fc_tensor *fc_permute(fc_tensor *t, int ndim, const int *dims);
fc_tensor *fc_transpose(fc_tensor *t, int dim0, int dim1);
fc_tensor *fc_squeeze(fc_tensor *t, int dim);          /* FC_ALL_DIMS: every size-1 dim */
fc_tensor *fc_unsqueeze(fc_tensor *t, int dim);
fc_tensor *fc_expand(fc_tensor *t, int ndim, const int64_t *shape); /* -1 keeps a size */
fc_tensor *fc_flatten(fc_tensor *t, int start_dim, int end_dim);
fc_tensor *fc_narrow(fc_tensor *t, int dim, int64_t start, int64_t length);
fc_tensor *fc_select(fc_tensor *t, int dim, int64_t index);
fc_tensor *fc_slice(fc_tensor *t, int dim, int64_t start, int64_t end, int64_t step);
fc_tensor *fc_as_strided(fc_tensor *t, int ndim, const int64_t *shape, const int64_t *stride,
                         int64_t offset);
fc_tensor *fc_contiguous(fc_tensor *t);

/* ---- copies and dtypes ------------------------------------------------- */
fc_tensor *fc_clone(const fc_tensor *t);
fc_tensor *fc_to_dtype(fc_tensor *t, int dtype);      /* same dtype: another reference */
fc_tensor *fc_to_device(fc_tensor *t, fc_device dev); /* same device: another reference */
int fc_copy_(fc_tensor *dst, const fc_tensor *src);   /* broadcasts, converts dtype */
int fc_fill_(fc_tensor *t, double value);

/* ---- elementwise (NumPy broadcasting, PyTorch type promotion) ---------- */
fc_tensor *fc_add(fc_tensor *a, fc_tensor *b);
fc_tensor *fc_sub(fc_tensor *a, fc_tensor *b);
fc_tensor *fc_mul(fc_tensor *a, fc_tensor *b);
fc_tensor *fc_div(fc_tensor *a, fc_tensor *b);
fc_tensor *fc_pow(fc_tensor *a, fc_tensor *b);
fc_tensor *fc_maximum(fc_tensor *a, fc_tensor *b);
fc_tensor *fc_minimum(fc_tensor *a, fc_tensor *b);
fc_tensor *fc_eq(fc_tensor *a, fc_tensor *b);
fc_tensor *fc_ne(fc_tensor *a, fc_tensor *b);
fc_tensor *fc_lt(fc_tensor *a, fc_tensor *b);
fc_tensor *fc_le(fc_tensor *a, fc_tensor *b);
fc_tensor *fc_gt(fc_tensor *a, fc_tensor *b);
fc_tensor *fc_ge(fc_tensor *a, fc_tensor *b);
fc_tensor *fc_logical_and(fc_tensor *a, fc_tensor *b);
fc_tensor *fc_logical_or(fc_tensor *a, fc_tensor *b);
int fc_add_(fc_tensor *a, fc_tensor *b);
int fc_sub_(fc_tensor *a, fc_tensor *b);
int fc_mul_(fc_tensor *a, fc_tensor *b);
int fc_div_(fc_tensor *a, fc_tensor *b);
int fc_pow_(fc_tensor *a, fc_tensor *b);
/* a + alpha * b, the axpy PyTorch spells add(a, b, alpha=...) */
fc_tensor *fc_add_scaled(fc_tensor *a, fc_tensor *b, double alpha);
int fc_add_scaled_(fc_tensor *a, fc_tensor *b, double alpha);

fc_tensor *fc_neg(fc_tensor *t);
fc_tensor *fc_abs(fc_tensor *t);
fc_tensor *fc_exp(fc_tensor *t);
fc_tensor *fc_log(fc_tensor *t);
fc_tensor *fc_log1p(fc_tensor *t);
fc_tensor *fc_sqrt(fc_tensor *t);
fc_tensor *fc_rsqrt(fc_tensor *t);
fc_tensor *fc_sin(fc_tensor *t);
fc_tensor *fc_cos(fc_tensor *t);
fc_tensor *fc_tanh(fc_tensor *t);
fc_tensor *fc_sigmoid(fc_tensor *t);
fc_tensor *fc_relu(fc_tensor *t);
fc_tensor *fc_gelu(fc_tensor *t);
fc_tensor *fc_silu(fc_tensor *t);
fc_tensor *fc_floor(fc_tensor *t);
fc_tensor *fc_ceil(fc_tensor *t);
fc_tensor *fc_round(fc_tensor *t);
fc_tensor *fc_sign(fc_tensor *t);
fc_tensor *fc_logical_not(fc_tensor *t);
fc_tensor *fc_leaky_relu(fc_tensor *t, double negative_slope);
fc_tensor *fc_clamp(fc_tensor *t, double min, double max); /* -inf/inf: no bound */
int fc_neg_(fc_tensor *t);
int fc_abs_(fc_tensor *t);
int fc_exp_(fc_tensor *t);
int fc_log_(fc_tensor *t);
int fc_log1p_(fc_tensor *t);
int fc_sqrt_(fc_tensor *t);
int fc_rsqrt_(fc_tensor *t);
int fc_sin_(fc_tensor *t);
int fc_cos_(fc_tensor *t);
int fc_tanh_(fc_tensor *t);
int fc_sigmoid_(fc_tensor *t);
int fc_relu_(fc_tensor *t);
int fc_gelu_(fc_tensor *t);
int fc_silu_(fc_tensor *t);
int fc_floor_(fc_tensor *t);
int fc_ceil_(fc_tensor *t);
int fc_round_(fc_tensor *t);
int fc_sign_(fc_tensor *t);
int fc_leaky_relu_(fc_tensor *t, double negative_slope);
int fc_clamp_(fc_tensor *t, double min, double max);

fc_tensor *fc_where(fc_tensor *cond, fc_tensor *a, fc_tensor *b);
fc_tensor *fc_lerp(fc_tensor *a, fc_tensor *b, fc_tensor *weight);
int fc_lerp_(fc_tensor *a, fc_tensor *b, fc_tensor *weight);

/* ---- reductions -------------------------------------------------------- */
/* dims: `ndims` dims to reduce; ndims == 0 reduces over every dim. */
fc_tensor *fc_sum(fc_tensor *t, int ndims, const int *dims, int keepdim);
fc_tensor *fc_mean(fc_tensor *t, int ndims, const int *dims, int keepdim);
fc_tensor *fc_prod(fc_tensor *t, int ndims, const int *dims, int keepdim);
fc_tensor *fc_logsumexp(fc_tensor *t, int ndims, const int *dims, int keepdim);
fc_tensor *fc_all(fc_tensor *t, int ndims, const int *dims, int keepdim);
fc_tensor *fc_any(fc_tensor *t, int ndims, const int *dims, int keepdim);
fc_tensor *fc_amax(fc_tensor *t, int ndims, const int *dims, int keepdim);
fc_tensor *fc_amin(fc_tensor *t, int ndims, const int *dims, int keepdim);
fc_tensor *fc_norm(fc_tensor *t, double p, int ndims, const int *dims, int keepdim);
/* correction: 1 for the unbiased estimate, 0 for the population one */
fc_tensor *fc_var(fc_tensor *t, int ndims, const int *dims, int correction, int keepdim);
fc_tensor *fc_std(fc_tensor *t, int ndims, const int *dims, int correction, int keepdim);
/* Values and (0-based + base) int64 indices of the max/min along one dim. */
fc_tensor *fc_max_dim(fc_tensor *t, int dim, int keepdim, int64_t base, fc_tensor **indices);
fc_tensor *fc_min_dim(fc_tensor *t, int dim, int keepdim, int64_t base, fc_tensor **indices);
/* dim FC_ALL_DIMS: index into the flattened tensor */
fc_tensor *fc_argmax(fc_tensor *t, int dim, int keepdim, int64_t base);
fc_tensor *fc_argmin(fc_tensor *t, int dim, int keepdim, int64_t base);
fc_tensor *fc_cumsum(fc_tensor *t, int dim);
fc_tensor *fc_cumprod(fc_tensor *t, int dim);
fc_tensor *fc_sort(fc_tensor *t, int dim, int descending, int64_t base, fc_tensor **indices);
fc_tensor *fc_topk(fc_tensor *t, int64_t k, int dim, int largest, int64_t base,
                   fc_tensor **indices);

/* ---- linear algebra (OpenBLAS) ----------------------------------------- */
fc_tensor *fc_matmul(fc_tensor *a, fc_tensor *b);
fc_tensor *fc_addmm(fc_tensor *c, fc_tensor *a, fc_tensor *b, double beta, double alpha);
fc_tensor *fc_outer(fc_tensor *a, fc_tensor *b);
fc_tensor *fc_dot(fc_tensor *a, fc_tensor *b);

/* ---- joining, indexing, reordering ------------------------------------- */
fc_tensor *fc_cat(int n, fc_tensor *const *ts, int dim);
fc_tensor *fc_stack(int n, fc_tensor *const *ts, int dim);
fc_tensor *fc_index_select(fc_tensor *t, int dim, fc_tensor *index, int64_t base);
fc_tensor *fc_gather(fc_tensor *t, int dim, fc_tensor *index, int64_t base);
fc_tensor *fc_scatter(fc_tensor *t, int dim, fc_tensor *index, fc_tensor *src, int64_t base);
fc_tensor *fc_scatter_add(fc_tensor *t, int dim, fc_tensor *index, fc_tensor *src,
                          int64_t base);
int fc_scatter_(fc_tensor *t, int dim, fc_tensor *index, fc_tensor *src, int64_t base);
int fc_scatter_add_(fc_tensor *t, int dim, fc_tensor *index, fc_tensor *src, int64_t base);
fc_tensor *fc_masked_fill(fc_tensor *t, fc_tensor *mask, double value);
int fc_masked_fill_(fc_tensor *t, fc_tensor *mask, double value);
fc_tensor *fc_masked_select(fc_tensor *t, fc_tensor *mask);
/* [n, ndim] int64 coordinates (+ base) of the non-zero elements */
fc_tensor *fc_nonzero(fc_tensor *t, int64_t base);
fc_tensor *fc_one_hot(fc_tensor *index, int64_t num_classes, int64_t base);
fc_tensor *fc_flip(fc_tensor *t, int ndims, const int *dims);
/* ndims == 0: roll the flattened tensor by shifts[0] */
fc_tensor *fc_roll(fc_tensor *t, int ndims, const int64_t *shifts, const int *dims);

/* ---- autograd ---------------------------------------------------------- */
/* Reverse mode over a graph recorded as ops run (PyTorch semantics). Grad
 * mode is per thread; ops record a node when it is on and an input requires
 * grad. In-place ops refuse tensors that require grad while recording, and a
 * tensor saved for backward that is modified afterwards makes backward fail
 * (version counter) instead of giving a wrong gradient. */
void fc_set_grad_enabled(int enabled);
int fc_is_grad_enabled(void);
int fc_set_requires_grad(fc_tensor *t, int requires_grad); /* leaves only */
int fc_is_leaf(const fc_tensor *t);
const char *fc_grad_fn_name(const fc_tensor *t); /* NULL for leaves */
/* grad: NULL for a single-element root (implicit 1). retain_graph keeps the
 * saved tensors so backward can run through the graph again. */
int fc_backward(fc_tensor *root, fc_tensor *grad, int retain_graph);
fc_tensor *fc_get_grad(const fc_tensor *t); /* new reference, or NULL with no error */
int fc_set_grad(fc_tensor *t, fc_tensor *grad); /* NULL clears it */
fc_tensor *fc_detach(fc_tensor *t); /* shares storage, no history */

/* ---- neural-network ops (NCHW layouts, PyTorch semantics) -------------- */
enum { FC_REDUCE_NONE = 0, FC_REDUCE_MEAN = 1, FC_REDUCE_SUM = 2 };
enum { FC_NO_INDEX = -1000000 }; /* "no ignore_index / padding_idx" */
fc_tensor *fc_softmax(fc_tensor *t, int dim);
fc_tensor *fc_log_softmax(fc_tensor *t, int dim);
/* target: class indices (int64, counted from base) of shape [N] or [N,d1,...]
 * for logits [N,C] or [N,C,d1,...]; or class probabilities shaped like the
 * logits. weight: per-class weights or NULL. */
fc_tensor *fc_cross_entropy(fc_tensor *logits, fc_tensor *target, fc_tensor *weight,
                            int64_t ignore_index, double label_smoothing, int reduction,
                            int64_t base);
fc_tensor *fc_nll_loss(fc_tensor *log_probs, fc_tensor *target, fc_tensor *weight,
                       int64_t ignore_index, int reduction, int64_t base);
fc_tensor *fc_mse_loss(fc_tensor *input, fc_tensor *target, int reduction);
fc_tensor *fc_l1_loss(fc_tensor *input, fc_tensor *target, int reduction);
fc_tensor *fc_smooth_l1_loss(fc_tensor *input, fc_tensor *target, double beta, int reduction);
fc_tensor *fc_binary_cross_entropy(fc_tensor *input, fc_tensor *target, fc_tensor *weight,
                                   int reduction);
fc_tensor *fc_binary_cross_entropy_with_logits(fc_tensor *input, fc_tensor *target,
                                               fc_tensor *weight, fc_tensor *pos_weight,
                                               int reduction);

/* stride, padding, dilation, output_padding: {height, width} */
fc_tensor *fc_conv2d(fc_tensor *x, fc_tensor *weight, fc_tensor *bias, const int *stride,
                     const int *padding, const int *dilation, int groups);
fc_tensor *fc_conv1d(fc_tensor *x, fc_tensor *weight, fc_tensor *bias, int stride, int padding,
                     int dilation, int groups);
fc_tensor *fc_conv_transpose2d(fc_tensor *x, fc_tensor *weight, fc_tensor *bias,
                               const int *stride, const int *padding,
                               const int *output_padding, const int *dilation, int groups);
/* indices (may be NULL): int64 flat positions within each input plane, + base */
fc_tensor *fc_max_pool2d(fc_tensor *x, const int *kernel, const int *stride, const int *padding,
                         const int *dilation, int ceil_mode, fc_tensor **indices, int64_t base);
fc_tensor *fc_avg_pool2d(fc_tensor *x, const int *kernel, const int *stride, const int *padding,
                         int ceil_mode, int count_include_pad);
fc_tensor *fc_adaptive_avg_pool2d(fc_tensor *x, const int64_t *output_size);
fc_tensor *fc_adaptive_max_pool2d(fc_tensor *x, const int64_t *output_size, fc_tensor **indices,
                                  int64_t base);

/* x: [N, C, ...]. training: normalise with the batch statistics and, when
 * running stats are given, update them in place (running = (1 - momentum)
 * * running + momentum * batch, the variance unbiased); momentum = 1/k on
 * the k-th batch gives their cumulative average (PyTorch's momentum=None:
 * nn.BatchNorm passes 1 / num_batches_tracked). Otherwise normalise with
 * the running statistics, which must then be given. weight and bias may be
 * NULL. The _relu form applies relu in the same pass. */
fc_tensor *fc_batch_norm(fc_tensor *x, fc_tensor *running_mean, fc_tensor *running_var,
                         fc_tensor *weight, fc_tensor *bias, int training, double momentum,
                         double eps);
fc_tensor *fc_batch_norm_relu(fc_tensor *x, fc_tensor *running_mean, fc_tensor *running_var,
                              fc_tensor *weight, fc_tensor *bias, int training,
                              double momentum, double eps);
/* normalises over the last `ndims` dims; weight and bias (or NULL) have their shape */
fc_tensor *fc_layer_norm(fc_tensor *x, int ndims, fc_tensor *weight, fc_tensor *bias, double eps);
/* x: [N, C, ...], groups dividing C; weight and bias (or NULL): [C] */
fc_tensor *fc_group_norm(fc_tensor *x, int groups, fc_tensor *weight, fc_tensor *bias, double eps);
/* Inverted dropout with a Philox mask from the global generator (the same
 * numbers for any thread count). Not training, or p == 0: x itself (another
 * reference, no copy); p == 1: x * 0. */
fc_tensor *fc_dropout(fc_tensor *x, double p, int training);
/* Rows of weight [V, D] picked by an integer index of any shape (counted
 * from base): [*index.shape, D]. padding_idx in the caller's base, or
 * FC_NO_INDEX; its row gets no gradient. Repeated indices add up. */
fc_tensor *fc_embedding(fc_tensor *weight, fc_tensor *indices, int64_t padding_idx, int64_t base);

/* ---- image warping (data augmentation, forward only) ------------------- */
/* PyTorch's affine_grid / grid_sample for 2-D images. Coordinates are
 * normalised to [-1, 1]; a grid holds the (x, y) each output pixel reads.
 * No autograd: inputs that require grad (with grad mode on) are refused. */
enum { FC_SAMPLE_BILINEAR = 0, FC_SAMPLE_NEAREST = 1 };
/* padding: FC_PAD_ZEROS, FC_PAD_BORDER, FC_PAD_REFLECTION (the loader's, below) */
/* theta [N,2,3] (float32/64) -> grid [N,H,W,2] */
fc_tensor *fc_affine_grid(fc_tensor *theta, int64_t H, int64_t W, int align_corners);
/* x [N,C,H,W], grid [N,Ho,Wo,2] of x's dtype -> [N,C,Ho,Wo] */
fc_tensor *fc_grid_sample(fc_tensor *x, fc_tensor *grid, int mode, int padding, int align_corners);

/* ---- optimizer steps (fused, in place, outside autograd) --------------- */
/* PyTorch's torch.optim.SGD update for one parameter. momentum_buf may be
 * NULL when momentum is 0; first_step initialises it from the gradient. */
int fc_sgd_step(fc_tensor *param, fc_tensor *grad, fc_tensor *momentum_buf, double lr,
                double momentum, double dampening, double weight_decay, int nesterov,
                int first_step);
/* torch.optim.Adam (decoupled = 0, L2 penalty added to the gradient) and
 * AdamW (decoupled = 1, weight decay applied to the parameter); step counts
 * from 1 for the bias corrections. */
int fc_adam_step(fc_tensor *param, fc_tensor *grad, fc_tensor *exp_avg, fc_tensor *exp_avg_sq,
                 double lr, double beta1, double beta2, double eps, double weight_decay,
                 int decoupled, int64_t step);
/* fastai's update rules (fastai/optimizer.py), each one pass per parameter.
 * Weight decay first: decoupled (p *= 1 - lr*wd) or L2 (wd*p added to the
 * gradient, the gradient tensor itself untouched); wd 0 skips it.
 * fastai's Adam is fc_adam_step with fastai's defaults: its debias
 * damp*(1-mom^t)/(1-mom) with damp = 1-mom is torch's 1-mom^t, and eps sits
 * outside the square root in both.
 * SGD: grad_avg = mom*grad_avg + g (no dampening; NULL: plain SGD), then
 * p -= lr*grad_avg. */
int fc_sgdw_step(fc_tensor *param, fc_tensor *grad, fc_tensor *grad_avg, double lr, double mom,
                 double wd, int decoupled);
/* RMSProp: sqr_avg = sqr_mom*sqr_avg + (1-sqr_mom)*g^2; grad_avg (NULL: none)
 * = mom*grad_avg + g; p -= lr * (grad_avg or g) / (sqrt(sqr_avg) + eps). */
int fc_rmsprop_step(fc_tensor *param, fc_tensor *grad, fc_tensor *grad_avg, fc_tensor *sqr_avg,
                    double lr, double mom, double sqr_mom, double eps, double wd, int decoupled);
/* RAdam: Adam's moments, then the variance rectification for step t; while
 * the rectified length r <= 5 the step is momentum only. beta > 0 passes the
 * denominator through softplus(beta). */
int fc_radam_step(fc_tensor *param, fc_tensor *grad, fc_tensor *grad_avg, fc_tensor *sqr_avg,
                  double lr, double mom, double sqr_mom, double eps, double wd, int decoupled,
                  double beta, int64_t step);

/* ---- mixed precision (runtime/amp.c; autocast is lua/fastc/amp.lua) ----- */
/* Dynamic loss scaling's unscale: t *= inv_scale in place (float32 or
 * float64 gradients; float32 ones by the float32-rounded inverse, as PyTorch).
 * Returns 1 when t held an inf or a NaN before the multiply, 0 when every
 * element was finite, -1 on error. */
int fc_amp_unscale_(fc_tensor *t, double inv_scale);

/* ---- files ------------------------------------------------------------- */
/* safetensors: an 8-byte little-endian header length, a JSON header naming
 * each tensor's dtype, shape and byte range plus a "__metadata__" map of
 * strings, then the raw data. Writes go to a temp file that is fsynced and
 * renamed, so a crash never leaves a half-written file. */
int fc_save(const char *path, int n, const char *const *names, fc_tensor *const *tensors,
            int nmeta, const char *const *meta_keys, const char *const *meta_values);
typedef struct fc_file fc_file; /* a loaded safetensors file */
fc_file *fc_load(const char *path);
int fc_file_count(const fc_file *f);
const char *fc_file_name(const fc_file *f, int i);
fc_tensor *fc_file_tensor(const fc_file *f, int i); /* a new reference */
int fc_file_meta_count(const fc_file *f);
const char *fc_file_meta_key(const fc_file *f, int i);
const char *fc_file_meta_value(const fc_file *f, int i);
void fc_file_close(fc_file *f);
/* An IDX file (the MNIST format), gzipped or plain, as a uint8/int32/float
 * tensor of the shape its header gives. */
fc_tensor *fc_read_idx(const char *path);

/* ---- images, CSV and the threaded data loader --------------------------- */
/* Images are uint8 tensors [C,H,W]. JPEG decodes through libjpeg-turbo,
 * PNG, BMP, GIF (first frame) and TGA through stb_image. `channels` 1 (grey),
 * 3 (RGB) or 4 (RGBA) converts whatever the file holds; 0 keeps the file's.
 * min_height/min_width (0: none) let a JPEG decode with DCT scaling straight
 * to the smallest size still at least that big; other formats decode whole.
 * Every error names the file. */
fc_tensor *fc_image_read(const char *path, int channels, int min_height, int min_width);
fc_tensor *fc_image_decode(const void *data, size_t nbytes, int channels, const char *name);
/* Writes a uint8 [C,H,W] (or [H,W]) image; the format follows the extension:
 * .jpg/.jpeg (quality 1..100), .png, .bmp, .tga. */
int fc_image_write(const char *path, fc_tensor *image, int quality);

/* Item steps the loader runs on its worker threads (fastai's semantics):
 * RESIZE       to height x width by `method`: CROP (random position while
 *              training, centred when valid), SQUISH, or PAD (pad_mode);
 * RANDOM_RESIZED_CROP  a crop of area scale[0..1] and aspect ratio[0..1]
 *              (log-uniform) resized to the size; valid: the whole image
 *              squished to size + val_xtra then centre-cropped;
 * CENTER_CROP, PAD  centre crop and/or pad (pad_mode) to the size, no scaling;
 * FLIP         horizontal flip with probability p.
 * Downscaling is antialiased (bilinear filter widened by the scale, as PIL). */
enum { FC_TFM_RESIZE = 0, FC_TFM_RANDOM_RESIZED_CROP, FC_TFM_CENTER_CROP, FC_TFM_PAD, FC_TFM_FLIP };
enum { FC_RESIZE_CROP = 0, FC_RESIZE_SQUISH, FC_RESIZE_PAD };
enum { FC_PAD_ZEROS = 0, FC_PAD_BORDER, FC_PAD_REFLECTION };
typedef struct fc_tfm {
  int32_t kind;
  int32_t height, width;
  int32_t method;   /* RESIZE */
  int32_t pad_mode; /* RESIZE, CENTER_CROP, PAD */
  int32_t valid;    /* RESIZE, RANDOM_RESIZED_CROP: the deterministic validation form */
  double scale[2];  /* RANDOM_RESIZED_CROP: area fraction range */
  double ratio[2];  /* RANDOM_RESIZED_CROP: aspect ratio (w/h) range */
  double val_xtra;  /* RANDOM_RESIZED_CROP valid: extra size fraction (fastai 0.14) */
  double p;         /* FLIP */
} fc_tfm;
/* The steps applied to one image exactly as the loader applies them to item
 * `item` (0-based) in epoch `epoch`: the randomness is Philox keyed by
 * (seed, epoch, item), so no state is shared between items or threads. */
fc_tensor *fc_image_transform(fc_tensor *image, int ntfms, const fc_tfm *tfms, uint64_t seed,
                              int64_t epoch, int64_t item);

/* The loader: worker threads turn item indices into finished batches
 * (uint8 [B,C,H,W], or float32 with `normalize`; labels int64 [B]; item
 * positions int64 [B]) kept in a
 * bounded queue that the consumer drains in order with fc_loader_next. The
 * batches (order, augmentations, pixels) are the same for any num_workers.
 * on_error RAISE: a bad file fails fc_loader_next with an error naming it;
 * SKIP: the item is left out (its batch comes out smaller) and a warning is
 * kept for fc_loader_warnings. Workers never call back into the caller. */
enum { FC_ON_ERROR_RAISE = 0, FC_ON_ERROR_SKIP = 1 };
typedef struct fc_loader_opts {
  int64_t batch_size;
  int32_t shuffle, drop_last;
  uint64_t seed;
  int32_t num_workers; /* 0: batches are built on the calling thread */
  int32_t prefetch;    /* batches in flight ahead of the consumer, >= 1 */
  int32_t channels;    /* 1, 3 or 4 */
  int32_t on_error;
  int64_t index_base;  /* added to the item positions handed back (1 for Lua) */
  int32_t ntfms;
  const fc_tfm *tfms;
  /* normalize: the batch comes out float32, (pixel / 255 - mean[c]) / std[c],
   * computed by the workers in the same pass that lays the item out as CHW */
  int32_t normalize;
  float mean[4], std[4];
} fc_loader_opts;
typedef struct fc_loader fc_loader;
/* Copies paths, labels (may be NULL) and the steps. */
fc_loader *fc_loader_new(int64_t n, const char *const *paths, const int64_t *labels,
                         const fc_loader_opts *opts);
int64_t fc_loader_len(const fc_loader *l); /* batches per epoch */
/* Starts (or restarts, abandoning the current one) an epoch. */
int fc_loader_start_epoch(fc_loader *l, int64_t epoch);
/* The next batch in order: 1 with new references in *images, *labels (NULL
 * without labels) and *indices; 0 when the epoch is done; -1 on error. */
int fc_loader_next(fc_loader *l, fc_tensor **images, fc_tensor **labels, fc_tensor **indices);
/* Warnings of skipped items from the last fc_loader_next, "" when none. */
const char *fc_loader_warnings(const fc_loader *l);
/* Stops and joins the workers, mid-epoch or not, and frees everything. */
void fc_loader_free(fc_loader *l);

/* CSV (RFC 4180: quotes, "" escapes, CRLF, newlines inside quotes). A column
 * is numeric when every non-empty field parses as a number (empty: NaN). */
typedef struct fc_csv fc_csv;
fc_csv *fc_csv_read(const char *path, int header, char sep);
int64_t fc_csv_rows(const fc_csv *csv);
int fc_csv_cols(const fc_csv *csv);
const char *fc_csv_name(const fc_csv *csv, int col); /* NULL without a header */
int fc_csv_is_numeric(const fc_csv *csv, int col);
const char *fc_csv_string(const fc_csv *csv, int col, int64_t row);
double fc_csv_number(const fc_csv *csv, int col, int64_t row);
void fc_csv_free(fc_csv *csv);

/* ---- images and plot text (runtime/png.c) ----------------------------- */
/* pixels: h rows of w pixels of `channels` bytes (1 gray, 2 gray+alpha,
 * 3 RGB, 4 RGBA). Written to a temp file, fsynced and renamed over path. */
int fc_write_png(const char *path, int w, int h, int channels, const uint8_t *pixels);
/* A PNG file as a uint8 tensor [h, w, channels] (channels as stored). */
fc_tensor *fc_read_png(const char *path);
/* Draws ASCII text (a built-in bitmap font, about 6 x 12 pixels a
 * character at scale 1, '\n' starts a line) with its top-left at (x, y),
 * clipped to the image; returns the number of quads drawn, or -1. */
int fc_draw_text(uint8_t *pixels, int w, int h, int channels, int x, int y, const char *text,
                 const uint8_t *color, int scale);
/* The size fc_draw_text gives the text at scale 1. */
int fc_text_width(const char *text);
int fc_text_height(const char *text);

/* ---- CUDA (an optional plugin, libfastc_cuda.so, loaded on first use) -- */
/* The core never links CUDA: the first use of a cuda device loads the
 * plugin. Without it (built with no nvcc, no CUDA runtime or driver, no GPU)
 * the CPU build runs unchanged and fc_cuda_why_unavailable() says why. */
int fc_cuda_is_available(void);
const char *fc_cuda_why_unavailable(void); /* "" when available */
int fc_cuda_device_count(void);            /* 0 when unavailable */
int fc_cuda_synchronize(int device);       /* -1: every device */
/* One line naming the CUDA runtime, cuBLAS, cuDNN and the devices. */
const char *fc_cuda_info(void);
/* The caching allocator's counts for one device (bytes rounded to its size
 * classes): held by tensors, reserved from the driver (held + cached). */
typedef struct fc_cuda_mem_stats {
  int64_t allocated_bytes, peak_allocated_bytes;
  int64_t reserved_bytes, peak_reserved_bytes;
  int64_t cached_bytes;
  int64_t num_allocs, num_frees, num_cache_hits;
  int64_t num_device_mallocs, num_device_frees, num_oom_retries;
} fc_cuda_mem_stats;
int fc_cuda_memory_stats(int device, fc_cuda_mem_stats *out);
int fc_cuda_empty_cache(int device); /* returns cached blocks to the driver; -1: all */
/* TF32 tensor cores for float32 matmuls: on by default, as in PyTorch's
 * convolution default; turn off for float32-exact products. */
void fc_cuda_set_allow_tf32(int allow);
int fc_cuda_allow_tf32(void);

/* ---- CUDA streams, events and pinned host memory -------------------------
 * Work is queued on the calling thread's current stream of each device: the
 * device's default stream unless fc_cuda_set_stream chose another. Memory
 * freed on one stream is reused only by work on that stream; a tensor made
 * on one stream and used on another must be synchronised (an event, or
 * the stream) before it is released. */
typedef struct fc_cuda_stream fc_cuda_stream;
typedef struct fc_cuda_event fc_cuda_event;
fc_cuda_stream *fc_cuda_stream_new(int device);
void fc_cuda_stream_free(fc_cuda_stream *s);         /* waits for its work first */
int fc_cuda_stream_device(const fc_cuda_stream *s);
int fc_cuda_stream_synchronize(fc_cuda_stream *s);
int fc_cuda_stream_query(fc_cuda_stream *s);         /* 1 done, 0 busy, -1 error */
/* The thread's stream for s's device (s NULL: the default of `device`). */
int fc_cuda_set_stream(int device, fc_cuda_stream *s);
fc_cuda_stream *fc_cuda_current_stream(int device);  /* NULL: the default stream */
/* s (NULL: device's current stream) waits for e before its later work. */
int fc_cuda_stream_wait_event(int device, fc_cuda_stream *s, fc_cuda_event *e);
fc_cuda_event *fc_cuda_event_new(int device, int enable_timing);
void fc_cuda_event_free(fc_cuda_event *e);
int fc_cuda_event_record(fc_cuda_event *e, fc_cuda_stream *s); /* s NULL: current */
int fc_cuda_event_synchronize(fc_cuda_event *e);
int fc_cuda_event_query(fc_cuda_event *e);           /* 1 done, 0 pending, -1 error */
double fc_cuda_event_elapsed_ms(fc_cuda_event *start, fc_cuda_event *end); /* < 0: error */
/* A CPU copy of t in page-locked memory: copies from it to a GPU are queued
 * without waiting (the host must not change it until they are done). */
fc_tensor *fc_pin_memory(fc_tensor *t);
int fc_is_pinned(const fc_tensor *t);

#ifndef FC_CDEF
#ifdef __cplusplus
}
#endif
#endif
#endif /* FASTC_H */
