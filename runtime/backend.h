/* backend.h — the table a device plugin (libfastc_cuda.so) fills in, and the
 * core's entry points to it. Internal: never installed.
 *
 * The core never links CUDA. On first use of a cuda device it dlopens the
 * plugin and calls its one exported function, fastc_cuda_plugin_init, which
 * fills an fc_backend. Every kernel entry takes plain pointers, shapes and
 * strides (no fc_tensor), so the plugin needs nothing of the core but the
 * dtype enum and an error setter passed in bk_host. The plugin is C++ (nvcc),
 * so everything above the FASTC_CORE block is plain C declarations. */
#ifndef FASTC_BACKEND_H
#define FASTC_BACKEND_H
#include "fastc.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { BK_ABI_VERSION = 2, BK_MAX_OPS = 4 };

/* An elementwise walk: operand 0 is the output, the rest broadcast to it
 * (stride 0). Dims are coalesced; strides are in bytes. */
typedef struct bk_iter {
  int nops, ndim;
  int64_t numel;
  int64_t shape[FC_MAX_DIMS];
  int64_t stride[BK_MAX_OPS][FC_MAX_DIMS];
  char *data[BK_MAX_OPS];
  int dtype[BK_MAX_OPS];
} bk_iter;

/* Elementwise ops. Binary ops read operands 1 and 2 of one dtype (the
 * compute dtype) and write that dtype, or bool for comparisons. The G* ops
 * are unary gradients: x (saved input or output) in operand 1, the incoming
 * gradient in 2. Unary ops read operand 1 and write its dtype (NOT: bool).
 * WHERE: out = cond(1) ? a(2) : b(3), any element size. */
typedef enum bk_op {
  BK_ADD, BK_SUB, BK_MUL, BK_DIV, BK_POW, BK_AXPY, BK_MAX, BK_MIN,
  BK_EQ, BK_NE, BK_LT, BK_LE, BK_GT, BK_GE, BK_AND, BK_OR,
  BK_GEXP, BK_GLOG, BK_GLOG1P, BK_GSQRT, BK_GRSQRT, BK_GSIN, BK_GCOS, BK_GTANH,
  BK_GSIGMOID, BK_GGELU, BK_GSILU, BK_GRELU, BK_GLEAKY, BK_GABS,
  BK_EXP, BK_LOG, BK_LOG1P, BK_SQRT, BK_RSQRT, BK_SIN, BK_COS, BK_TANH, BK_SIGMOID,
  BK_GELU, BK_SILU, BK_LEAKY, BK_FLOOR, BK_CEIL, BK_ROUND, BK_NEG, BK_ABS, BK_RELU,
  BK_SIGN, BK_CLAMP, BK_NOT, BK_WHERE,
  BK_NUM_OPS
} bk_op;
enum { BK_FIRST_UNARY = BK_EXP };

/* A reduction: `outer` outputs (contiguous, out_dtype), each folding `inner`
 * inputs. Kept and reduced dims are coalesced groups with element strides;
 * output o sits at the kept-group offset of o, input position r of it at the
 * reduced-group offset of r (the innermost reduced dim has the smallest
 * stride). Floats accumulate in their own type, integers in int64. */
typedef enum bk_reduce_kind { BK_RSUM, BK_RPROD, BK_RMAX, BK_RMIN, BK_RALL, BK_RANY } bk_reduce_kind;
typedef struct bk_reduce {
  int kind, mean; /* mean: divide the sum by inner */
  int in_dtype, out_dtype;
  const char *in;
  char *out;
  int nk, nr;
  int64_t kshape[FC_MAX_DIMS], kstride[FC_MAX_DIMS];
  int64_t rshape[FC_MAX_DIMS], rstride[FC_MAX_DIMS];
  int64_t outer, inner;
} bk_reduce;

/* Row-major c[m,n] = alpha a @ b + beta c, as cblas_?gemm(CblasRowMajor, ...):
 * trans_a/trans_b say a (b) is stored transposed; beta 0 never reads c. */
typedef struct bk_gemm {
  int dtype, trans_a, trans_b, allow_tf32;
  int64_t m, n, k, lda, ldb, ldc;
  double alpha, beta;
  const void *a, *b;
  void *c;
} bk_gemm;

/* Softmax over the middle dim of a contiguous [outer, C, inner]; with g set,
 * the backward: out = dx from y (the saved output) in x and dy in g. */
typedef struct bk_softmax {
  int dtype, log;
  int64_t outer, C, inner;
  void *out;
  const void *x, *g;
} bk_softmax;

/* Fused cross-entropy on logits x of a contiguous [N, C, S] (class c of row
 * (n, s) at n*C*S + c*S + s) with int64 class targets (counted from base)
 * per row, optional per-class weights (x's dtype), label smoothing eps and
 * ignore_index (FC_NO_INDEX: none). Forward writes per row lse, loss and the
 * row's weight in the mean's divisor (0 when ignored), and lowers *bad (a
 * device int32 set to INT32_MAX) to each row whose target is out of range.
 * Backward writes gx = s_row * (a_row softmax - target share) where s_row
 * is g[row * g_stride] * g_scale. */
typedef struct bk_xent {
  int dtype;
  int64_t N, C, S, base, ignore;
  double eps, wsum;
  const void *x, *weight;
  const int64_t *target;
  void *lse, *loss, *row_weight;
  int *bad;
  const void *g;
  int64_t g_stride;
  double g_scale;
  void *gx;
} bk_xent;

/* torch.optim.SGD / Adam on n contiguous elements (float32 or float64). */
typedef struct bk_sgd {
  int dtype, nesterov, first_step;
  int64_t n;
  void *param, *buf;
  const void *grad;
  double lr, momentum, dampening, weight_decay;
} bk_sgd;
typedef struct bk_adam {
  int dtype, decoupled;
  int64_t n;
  void *param, *exp_avg, *exp_avg_sq;
  const void *grad;
  double lr, beta1, beta2, eps, weight_decay, step_size, sqrt_bc2;
} bk_adam;

/* ---- convolution, pooling, batch norm (ABI 2) ---------------------------- */

/* A 2-D convolution over contiguous NCHW tensors of one dtype (float32 or
 * float64): x [N,C,H,W], w [K,C/groups,kh,kw], y [N,K,Ho,Wo], b [K].
 * forward: y = conv(x, w) (+ b when set); backward_data: gx from gy and w;
 * backward_filter: gw from x and gy, and gb = gy summed over N, Ho, Wo
 * when gb is set. Every output is overwritten, never accumulated into. */
typedef struct bk_conv {
  int dtype, allow_tf32;
  int64_t N, C, H, W, K, kh, kw, Ho, Wo;
  int sh, sw, ph, pw, dh, dw, groups;
  const void *x, *w, *b, *gy;
  void *y, *gx, *gw, *gb;
} bk_conv;

/* Pooling over P contiguous planes of H x W into Ho x Wo, PyTorch's
 * windows (ops_pool.c describes them; the kinds are in its order). Max
 * kinds write the flat index h*W + w (+ base) of each window's maximum to
 * ix when set; their backward adds gy at gix's indices (base taken off).
 * Forward: x -> y; backward: gy -> gx (every element written). */
enum { BK_MAX_POOL, BK_AVG_POOL, BK_ADAPTIVE_MAX_POOL, BK_ADAPTIVE_AVG_POOL };
typedef struct bk_pool {
  int kind, dtype, count_include_pad;
  int64_t P, H, W, Ho, Wo, base;
  int kh, kw, sh, sw, ph, pw, dh, dw;
  const void *x;
  void *y;
  int64_t *ix;
  const void *gy;
  const int64_t *gix;
  void *gx;
} bk_pool;

/* Batch norm over a contiguous [N, C, S] (float32 or float64; the
 * per-channel vectors in the same dtype, weight and bias never NULL).
 * Training forward: batch statistics into save_mean and save_invstd
 * (1/sqrt(var + eps)), y, and when running_mean is set the running
 * statistics updated by momentum with the unbiased variance. Evaluation
 * forward: y from running_mean and running_var. Backward (training
 * statistics only): gx, gweight and gbias from gy, x, weight and the saved
 * statistics. */
typedef struct bk_bn {
  int dtype, training;
  int64_t N, C, S;
  double eps, momentum;
  const void *x, *weight, *bias, *gy;
  void *y, *running_mean, *running_var, *save_mean, *save_invstd;
  void *gx, *gweight, *gbias;
} bk_bn;

/* An index walk (ops_index.c): over `shape`, position p reads the index v
 * at idx[p . is]; self's element is at p . ts + (v - base) td, other's at
 * p . os (strides in elements). GATHER: other = self; SCATTER: self =
 * other; SCATTER_ADD: self += other (integers wrap, bool ors). With other
 * NULL the scalar (in dtype's bits) stands for every element of other.
 * Indices are checked by the core before. */
enum { BK_GATHER, BK_SCATTER, BK_SCATTER_ADD };
typedef struct bk_walk {
  int kind, dtype, nd;
  int64_t shape[FC_MAX_DIMS], is[FC_MAX_DIMS], ts[FC_MAX_DIMS], os[FC_MAX_DIMS];
  int64_t td, base;
  const int64_t *idx;
  char *self, *other;
  uint64_t scalar;
} bk_walk;

/* Philox 4x32-10 draws with random.c's streams: element i of a contiguous
 * n-element out takes counter first + i / 2 under key seed, exactly as
 * random.c's draw_one (kinds in its order): uniform a + (b - a) u, normal
 * a + b z (Box-Muller), integers in [a, b), bernoulli u < a. */
enum { BK_UNIFORM, BK_NORMAL, BK_RANDINT, BK_BERNOULLI };
typedef struct bk_random {
  int kind, dtype;
  int64_t n;
  uint64_t seed, first;
  double a, b;
  void *out;
} bk_random;

/* Inverted dropout on n contiguous elements (float32/float64), with
 * ops_dropout.c's mask: element i is kept when word i % 4 of counter
 * first + i / 4 is below threshold, bit i % 8 of mask byte i / 8.
 * Forward: y = x * (kept ? scale : 0) and the mask; backward: gx from g. */
typedef struct bk_dropout {
  int dtype;
  int64_t n;
  uint64_t seed, first, threshold;
  double scale;
  const void *x, *g;
  void *y, *gx;
  uint8_t *mask;
} bk_dropout;

/* Stable sort of `rows` contiguous rows of L values (float32, float64,
 * int64, int32, uint8/bool), ops_sort.c's order: NaN largest, -0 as +0,
 * descending by complemented keys (equal values keep their order). Writes
 * the positions (0-based) of each row's first k sorted values to idx. */
typedef struct bk_sort {
  int dtype, descending;
  int64_t rows, L, k;
  const void *keys;
  int64_t *idx;
} bk_sort;

enum { BK_H2D = 1, BK_D2H = 2, BK_D2D = 3 };

/* What the plugin provides. Calls that can fail return 0 or -1 with the
 * error set through bk_host.set_error. Work is queued on the device's
 * current stream; only d2h copies and synchronize wait for it. */
typedef struct fc_backend {
  int abi;
  int (*device_count)(void);
  int (*synchronize)(int device);
  const char *(*info)(void);
  void *(*alloc)(int device, size_t nbytes);
  void (*free)(int device, void *ptr);
  int (*memcpy)(int device, void *dst, const void *src, size_t nbytes, int kind);
  int (*memory_stats)(int device, fc_cuda_mem_stats *out);
  void (*empty_cache)(int device);
  int (*fill)(int device, const bk_iter *it, uint64_t pattern); /* dtype[0]'s size */
  int (*copy)(int device, const bk_iter *it);                   /* converts dtype[1] to [0] */
  int (*elementwise)(int device, int op, const bk_iter *it, const double *args);
  int (*reduce)(int device, const bk_reduce *r);
  int (*gemm)(int device, const bk_gemm *g);
  int (*softmax)(int device, const bk_softmax *s);
  int (*xent_forward)(int device, const bk_xent *x);
  int (*xent_backward)(int device, const bk_xent *x);
  int (*sgd_step)(int device, const bk_sgd *s);
  int (*adam_step)(int device, const bk_adam *a);
  /* ABI 2: cuDNN convolutions and batch norm, pooling kernels */
  int (*conv_forward)(int device, const bk_conv *c);
  int (*conv_backward_data)(int device, const bk_conv *c);
  int (*conv_backward_filter)(int device, const bk_conv *c);
  int (*pool_forward)(int device, const bk_pool *p);
  int (*pool_backward)(int device, const bk_pool *p);
  int (*bn_forward)(int device, const bk_bn *b);
  int (*bn_backward)(int device, const bk_bn *b);
  int (*index_walk)(int device, const bk_walk *w); /* gather, scatter, scatter_add, index_select */
  int (*random)(int device, const bk_random *r);
  int (*dropout_forward)(int device, const bk_dropout *d);
  int (*dropout_backward)(int device, const bk_dropout *d);
  /* streams and events (cudaStream_t, cudaEvent_t as void *), pinned host memory */
  void *(*stream_create)(int device);
  int (*stream_destroy)(int device, void *stream);
  int (*stream_synchronize)(int device, void *stream);
  int (*stream_query)(int device, void *stream);       /* 1 done, 0 busy */
  int (*set_stream)(int device, void *stream);         /* this thread's; NULL: the default */
  int (*stream_wait_event)(int device, void *stream, void *event); /* stream NULL: current */
  void *(*event_create)(int device, int timing);
  int (*event_destroy)(int device, void *event);
  int (*event_record)(int device, void *event, void *stream);     /* stream NULL: current */
  int (*event_synchronize)(int device, void *event);
  int (*event_query)(int device, void *event);
  int (*event_elapsed_ms)(int device, void *start, void *end, float *ms);
  void *(*host_alloc)(size_t nbytes);
  void (*host_free)(void *ptr);                        /* waits for copies from it */
  int (*sort_rows)(int device, const bk_sort *s);      /* sort, topk (CUB radix sort) */
} fc_backend;

typedef struct bk_host {
  int abi;
  void (*set_error)(const char *fmt, ...);
} bk_host;

/* The plugin's only export: fills *vt and returns 0, or returns -1 with the
 * reason (no driver, no device, ...) in why. */
typedef int (*bk_init_fn)(const bk_host *host, fc_backend *vt, char *why, size_t n);
#define BK_INIT_SYMBOL "fastc_cuda_plugin_init"

#ifdef __cplusplus
}
#endif

/* ---- the core's side -------------------------------------------------- */
#ifndef FASTC_PLUGIN
#include "internal.h"

/* The loaded plugin, or NULL with the reason as the error (loads once). */
const fc_backend *backend_get(void);
/* 0 when dev is a usable cuda device; -1 with "<op>: ..." otherwise. */
int backend_check_device(const char *op, fc_device dev);
/* 0 when op has a CUDA kernel; -1 with "op X has no CUDA kernel yet". */
int backend_check_op(const char *op);
int backend_op_code(const char *name);
/* Runs one elementwise op (a bk_op) over an iterator of tensors ops[]. */
int backend_iter_run(int op, const iter *it, fc_tensor *const *ops, const double *args);
int backend_copy(const iter *it, fc_tensor *dst, const fc_tensor *src);
int backend_fill(const iter *it, fc_tensor *t, uint64_t pattern);
/* Copies between devices: both contiguous, same dtype and numel. */
int backend_transfer(fc_tensor *dst, const fc_tensor *src);
void *backend_alloc(fc_device dev, size_t nbytes);
void backend_free(fc_device dev, void *ptr);
/* t on the CPU (a new reference): t itself, or a copy from the GPU. */
fc_tensor *backend_host_copy(const fc_tensor *t);
int backend_tf32(void);
/* Frees page-locked host memory (alloc.c, for storages with pinned set). */
void backend_host_free(void *ptr);
fc_storage *storage_wrap_pinned(void *data, size_t nbytes); /* alloc.c */
/* CUDA paths of the ops whose CPU kernels cannot serve as the template. */
fc_tensor *cuda_cross_entropy(fc_tensor *logits, fc_tensor *target, fc_tensor *weight,
                              int64_t ignore_index, double label_smoothing, int reduction,
                              int64_t base);
/* backend_nn.c: the CUDA paths of conv.c, ops_pool.c and ops_norm.c. */
enum { BK_CONV_FORWARD, BK_CONV_BACKWARD_DATA, BK_CONV_BACKWARD_FILTER };
int backend_conv(int which, const conv_geom *g, int dtype, fc_device dev, const void *a,
                 const void *b, const void *bias, void *out, void *gbias);
int backend_pool(const bk_pool *p, fc_device dev, bool backward);
fc_tensor *cuda_batch_norm(const char *op, fc_tensor *x, fc_tensor *rm, fc_tensor *rv, fc_tensor *w,
                           fc_tensor *b, int training, double momentum, double eps, bool relu);
#endif
#endif
