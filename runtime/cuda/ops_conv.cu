/* ops_conv.cu — convolutions and batch norm through cuDNN (backend.h:
 * bk_conv, bk_bn).
 *
 * cuDNN 9 still carries the v7-style descriptor calls (deprecated, without
 * warnings unless CUDNN_WARN_DEPRECATED is defined); they cover NCHW
 * float32/float64 convolutions with groups and dilation, and spatial batch
 * norm, which is all the core asks for.
 *
 * The algorithm for each convolution shape is chosen once and cached:
 * cudnnFind*AlgorithmEx times the candidates on the call's own buffers
 * (the default, as torch.backends.cudnn.benchmark = True), or, with
 * FASTC_CUDNN_BENCHMARK=0, cudnnGet*_v7's heuristic order is taken as is.
 * The first candidate that ran and whose workspace the caching allocator
 * can give wins. Workspaces come from the caching allocator on the
 * device's stream, so they are reused without synchronising. */
#include "common.cuh"
#include <cudnn.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <vector>

static cudnnHandle_t handles[64];
static pthread_mutex_t handle_lock = PTHREAD_MUTEX_INITIALIZER;

#define CUDNN_TRY(op, call) do { cudnnStatus_t st_ = (call); if (st_ != CUDNN_STATUS_SUCCESS) { \
  plugin_set_error("%s: cuDNN error %s (status %d)", op, cudnnGetErrorString(st_), (int)st_); \
  return -1; } } while (0)

/* The device's cuDNN handle bound to its stream; made on first use. */
static cudnnHandle_t cudnn_for(int device, cudaStream_t s, const char *op) {
  pthread_mutex_lock(&handle_lock);
  cudnnHandle_t h = handles[device];
  if (!h && cudnnCreate(&h) != CUDNN_STATUS_SUCCESS) h = NULL;
  handles[device] = h;
  pthread_mutex_unlock(&handle_lock);
  if (!h) plugin_set_error("%s: cudnnCreate failed on cuda:%d", op, device);
  else if (cudnnSetStream(h, s) != CUDNN_STATUS_SUCCESS) h = NULL;
  return h;
}

static cudnnDataType_t cudnn_type(int dtype) {
  return dtype == FC_FLOAT64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
}

/* cuDNN's alpha and beta are host values of the compute type. */
typedef struct scale { float f; double d; } scale;
static const scale ONE = {1.f, 1.0}, ZERO = {0.f, 0.0};
static const void *scale_ptr(const scale &s, int dtype) {
  return dtype == FC_FLOAT64 ? (const void *)&s.d : (const void *)&s.f;
}

/* ---- descriptors -------------------------------------------------------------------- */

struct conv_descs {
  cudnnTensorDescriptor_t x = NULL, y = NULL, b = NULL;
  cudnnFilterDescriptor_t w = NULL;
  cudnnConvolutionDescriptor_t conv = NULL;
  ~conv_descs() {
    if (x) cudnnDestroyTensorDescriptor(x);
    if (y) cudnnDestroyTensorDescriptor(y);
    if (b) cudnnDestroyTensorDescriptor(b);
    if (w) cudnnDestroyFilterDescriptor(w);
    if (conv) cudnnDestroyConvolutionDescriptor(conv);
  }
};

static bool fits_int(const bk_conv *c) {
  const int64_t dims[] = {c->N, c->C, c->H, c->W, c->K, c->kh, c->kw, c->Ho, c->Wo,
                          c->N * c->C * c->H * c->W, c->N * c->K * c->Ho * c->Wo};
  for (int64_t d : dims)
    if (d > INT_MAX) return false;
  return true;
}

static cudnnMathType_t math_of(const bk_conv *c) {
  if (c->dtype == FC_FLOAT64) return CUDNN_DEFAULT_MATH;
  return c->allow_tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH; /* FMA: no TF32 tensor cores */
}

static int make_descs(const bk_conv *c, conv_descs *d, const char *op) {
  if (!fits_int(c)) {
    plugin_set_error("%s: tensors of more than 2^31 elements have no cuDNN kernel", op);
    return -1;
  }
  cudnnDataType_t t = cudnn_type(c->dtype);
  CUDNN_TRY(op, cudnnCreateTensorDescriptor(&d->x));
  CUDNN_TRY(op, cudnnSetTensor4dDescriptor(d->x, CUDNN_TENSOR_NCHW, t, (int)c->N, (int)c->C, (int)c->H, (int)c->W));
  CUDNN_TRY(op, cudnnCreateTensorDescriptor(&d->y));
  CUDNN_TRY(op, cudnnSetTensor4dDescriptor(d->y, CUDNN_TENSOR_NCHW, t, (int)c->N, (int)c->K, (int)c->Ho, (int)c->Wo));
  CUDNN_TRY(op, cudnnCreateTensorDescriptor(&d->b));
  CUDNN_TRY(op, cudnnSetTensor4dDescriptor(d->b, CUDNN_TENSOR_NCHW, t, 1, (int)c->K, 1, 1));
  CUDNN_TRY(op, cudnnCreateFilterDescriptor(&d->w));
  CUDNN_TRY(op, cudnnSetFilter4dDescriptor(d->w, t, CUDNN_TENSOR_NCHW, (int)c->K, (int)(c->C / c->groups),
                                           (int)c->kh, (int)c->kw));
  CUDNN_TRY(op, cudnnCreateConvolutionDescriptor(&d->conv));
  CUDNN_TRY(op, cudnnSetConvolution2dDescriptor(d->conv, c->ph, c->pw, c->sh, c->sw, c->dh, c->dw,
                                                CUDNN_CROSS_CORRELATION, t));
  CUDNN_TRY(op, cudnnSetConvolutionGroupCount(d->conv, c->groups));
  CUDNN_TRY(op, cudnnSetConvolutionMathType(d->conv, math_of(c)));
  return 0;
}

/* ---- the algorithm cache ------------------------------------------------------------ */

enum { FWD, BWD_DATA, BWD_FILTER };
static const char *const OP_NAMES[] = {"conv2d", "conv2d backward (data)", "conv2d backward (weight)"};

/* Everything that decides the algorithm: direction, device, dtype, math and geometry. */
struct algo_key {
  int v[20];
  bool operator==(const algo_key &o) const { return memcmp(v, o.v, sizeof v) == 0; }
};
struct algo_choice { int algo; size_t workspace; cudnnMathType_t math; };
struct algo_entry { algo_key key; algo_choice choice; };

static std::vector<algo_entry> *algo_cache;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static algo_key key_of(int kind, int device, const bk_conv *c) {
  algo_key k;
  memset(&k, 0, sizeof k);
  const int v[] = {kind, device, c->dtype, (int)math_of(c), (int)c->N, (int)c->C, (int)c->H, (int)c->W,
                   (int)c->K, (int)c->kh, (int)c->kw, c->sh, c->sw, c->ph, c->pw, c->dh, c->dw, c->groups};
  memcpy(k.v, v, sizeof v);
  return k;
}

static bool cached_choice(const algo_key &k, algo_choice *out) {
  pthread_mutex_lock(&cache_lock);
  bool found = false;
  if (algo_cache)
    for (const algo_entry &e : *algo_cache)
      if (e.key == k) {
        *out = e.choice, found = true;
        break;
      }
  pthread_mutex_unlock(&cache_lock);
  return found;
}

static void remember_choice(const algo_key &k, const algo_choice &c) {
  pthread_mutex_lock(&cache_lock);
  if (!algo_cache) algo_cache = new std::vector<algo_entry>();
  algo_cache->push_back(algo_entry{k, c});
  pthread_mutex_unlock(&cache_lock);
}

static bool benchmark_mode(void) {
  const char *e = getenv("FASTC_CUDNN_BENCHMARK");
  return !(e && strcmp(e, "0") == 0);
}

/* The buffers of one call, for FindEx to run the candidates on. */
struct conv_args {
  const bk_conv *c;
  const conv_descs *d;
  cudnnHandle_t h;
  int device;
};

/* Up to `most` candidates, best first, as (algo, status, memory, math). */
struct candidate { int algo; cudnnStatus_t status; size_t memory; cudnnMathType_t math; };
enum { MAX_CANDIDATES = 16 };

template <typename Perf> static int copy_perf(const Perf *p, int n, candidate *out) {
  for (int i = 0; i < n; i++) out[i] = candidate{(int)p[i].algo, p[i].status, p[i].memory, p[i].mathType};
  return n;
}

/* Heuristic order (cudnnGet*_v7); -1 on error. */
static int heuristic_candidates(int kind, const conv_args &a, candidate *out) {
  const char *op = OP_NAMES[kind];
  const conv_descs *d = a.d;
  int n = 0;
  if (kind == FWD) {
    cudnnConvolutionFwdAlgoPerf_t p[MAX_CANDIDATES];
    CUDNN_TRY(op, cudnnGetConvolutionForwardAlgorithm_v7(a.h, d->x, d->w, d->conv, d->y, MAX_CANDIDATES, &n, p));
    return copy_perf(p, n, out);
  } else if (kind == BWD_DATA) {
    cudnnConvolutionBwdDataAlgoPerf_t p[MAX_CANDIDATES];
    CUDNN_TRY(op, cudnnGetConvolutionBackwardDataAlgorithm_v7(a.h, d->w, d->y, d->conv, d->x, MAX_CANDIDATES, &n, p));
    return copy_perf(p, n, out);
  }
  cudnnConvolutionBwdFilterAlgoPerf_t p[MAX_CANDIDATES];
  CUDNN_TRY(op, cudnnGetConvolutionBackwardFilterAlgorithm_v7(a.h, d->x, d->y, d->conv, d->w, MAX_CANDIDATES, &n, p));
  return copy_perf(p, n, out);
}

/* Measured order (cudnnFind*AlgorithmEx) with a workspace of `ws` bytes. */
static int timed_candidates(int kind, const conv_args &a, void *ws, size_t ws_bytes, candidate *out) {
  const char *op = OP_NAMES[kind];
  const conv_descs *d = a.d;
  const bk_conv *c = a.c;
  int n = 0;
  if (kind == FWD) {
    cudnnConvolutionFwdAlgoPerf_t p[MAX_CANDIDATES];
    CUDNN_TRY(op, cudnnFindConvolutionForwardAlgorithmEx(a.h, d->x, c->x, d->w, c->w, d->conv, d->y, c->y,
                                                         MAX_CANDIDATES, &n, p, ws, ws_bytes));
    return copy_perf(p, n, out);
  } else if (kind == BWD_DATA) {
    cudnnConvolutionBwdDataAlgoPerf_t p[MAX_CANDIDATES];
    CUDNN_TRY(op, cudnnFindConvolutionBackwardDataAlgorithmEx(a.h, d->w, c->w, d->y, c->gy, d->conv, d->x, c->gx,
                                                              MAX_CANDIDATES, &n, p, ws, ws_bytes));
    return copy_perf(p, n, out);
  }
  cudnnConvolutionBwdFilterAlgoPerf_t p[MAX_CANDIDATES];
  CUDNN_TRY(op, cudnnFindConvolutionBackwardFilterAlgorithmEx(a.h, d->x, c->x, d->y, c->gy, d->conv, d->w, c->gw,
                                                              MAX_CANDIDATES, &n, p, ws, ws_bytes));
  return copy_perf(p, n, out);
}

/* The most workspace the search offers: what the heuristic candidates ask
 * for, capped, and halved until the allocator has it. */
enum { SEARCH_WORKSPACE_CAP = 1 << 30 };
static void *search_workspace(int device, const candidate *cands, int n, size_t *bytes) {
  size_t want = 0;
  for (int i = 0; i < n; i++)
    if (cands[i].status == CUDNN_STATUS_SUCCESS && cands[i].memory > want) want = cands[i].memory;
  if (want > SEARCH_WORKSPACE_CAP) want = SEARCH_WORKSPACE_CAP;
  for (; want > 0; want /= 2) {
    void *p = scratch_alloc(device, want);
    if (p) {
      *bytes = want;
      return p;
    }
  }
  *bytes = 0;
  return NULL;
}

/* Picks (once per shape) the algorithm for a call. */
static int choose(int kind, const conv_args &a, algo_choice *out) {
  algo_key key = key_of(kind, a.device, a.c);
  if (cached_choice(key, out)) return 0;
  candidate cands[MAX_CANDIDATES];
  int n = heuristic_candidates(kind, a, cands);
  if (n < 0) return -1;
  if (benchmark_mode() && n > 0) {
    size_t ws_bytes = 0;
    void *ws = search_workspace(a.device, cands, n, &ws_bytes);
    candidate timed[MAX_CANDIDATES];
    int m = timed_candidates(kind, a, ws, ws_bytes, timed);
    scratch_free(a.device, ws);
    if (m > 0) {
      memcpy(cands, timed, sizeof(candidate) * (size_t)m);
      n = m;
    } else {
      cudaGetLastError(); /* the heuristic order stands */
    }
  }
  for (int i = 0; i < n; i++) {
    if (cands[i].status != CUDNN_STATUS_SUCCESS) continue;
    void *probe = cands[i].memory ? scratch_alloc(a.device, cands[i].memory) : NULL;
    if (cands[i].memory && !probe) continue; /* too big for the memory left */
    scratch_free(a.device, probe);
    *out = algo_choice{cands[i].algo, cands[i].memory, cands[i].math};
    remember_choice(key, *out);
    return 0;
  }
  plugin_set_error("%s: cuDNN has no algorithm for this shape that fits in memory (N=%lld C=%lld H=%lld W=%lld, "
                   "K=%lld, kernel %lldx%lld, groups %d)", OP_NAMES[kind], (long long)a.c->N, (long long)a.c->C,
                   (long long)a.c->H, (long long)a.c->W, (long long)a.c->K, (long long)a.c->kh,
                   (long long)a.c->kw, a.c->groups);
  return -1;
}

/* ---- the three convolutions ---------------------------------------------------------- */

/* Sets up descriptors, handle and algorithm, then runs `run` with a workspace. */
template <typename Run> static int with_algorithm(int kind, int device, const bk_conv *c, Run run) {
  STREAM_OR_FAIL(s, device);
  const char *op = OP_NAMES[kind];
  cudnnHandle_t h = cudnn_for(device, s, op);
  if (!h) return -1;
  conv_descs d;
  if (make_descs(c, &d, op) < 0) return -1;
  conv_args a{c, &d, h, device};
  algo_choice ch;
  if (choose(kind, a, &ch) < 0) return -1;
  CUDNN_TRY(op, cudnnSetConvolutionMathType(d.conv, ch.math));
  void *ws = ch.workspace ? scratch_alloc(device, ch.workspace) : NULL;
  if (ch.workspace && !ws) return -1; /* the allocator set the error */
  int rc = run(h, d, ch.algo, ws, ch.workspace);
  scratch_free(device, ws); /* stream-ordered: reused only by later work on s */
  return rc;
}

int cuda_conv_forward(int device, const bk_conv *c) {
  if (c->N == 0) return 0;
  return with_algorithm(FWD, device, c, [c](cudnnHandle_t h, const conv_descs &d, int algo, void *ws, size_t n) {
    const char *op = OP_NAMES[FWD];
    CUDNN_TRY(op, cudnnConvolutionForward(h, scale_ptr(ONE, c->dtype), d.x, c->x, d.w, c->w, d.conv,
                                          (cudnnConvolutionFwdAlgo_t)algo, ws, n, scale_ptr(ZERO, c->dtype),
                                          d.y, c->y));
    if (c->b) CUDNN_TRY(op, cudnnAddTensor(h, scale_ptr(ONE, c->dtype), d.b, c->b, scale_ptr(ONE, c->dtype), d.y, c->y));
    return 0;
  });
}

int cuda_conv_backward_data(int device, const bk_conv *c) {
  if (c->N == 0) return 0;
  return with_algorithm(BWD_DATA, device, c, [c](cudnnHandle_t h, const conv_descs &d, int algo, void *ws, size_t n) {
    CUDNN_TRY(OP_NAMES[BWD_DATA],
              cudnnConvolutionBackwardData(h, scale_ptr(ONE, c->dtype), d.w, c->w, d.y, c->gy, d.conv,
                                           (cudnnConvolutionBwdDataAlgo_t)algo, ws, n, scale_ptr(ZERO, c->dtype),
                                           d.x, c->gx));
    return 0;
  });
}

int cuda_conv_backward_filter(int device, const bk_conv *c) {
  if (c->N == 0) { /* no samples: the gradients are zero */
    STREAM_OR_FAIL(s, device);
    size_t es = (size_t)dtype_size(c->dtype);
    CUDA_TRY(OP_NAMES[BWD_FILTER], cudaMemsetAsync(c->gw, 0, es * (size_t)(c->K * (c->C / c->groups) * c->kh * c->kw), s));
    if (c->gb) CUDA_TRY(OP_NAMES[BWD_FILTER], cudaMemsetAsync(c->gb, 0, es * (size_t)c->K, s));
    return 0;
  }
  return with_algorithm(BWD_FILTER, device, c, [c](cudnnHandle_t h, const conv_descs &d, int algo, void *ws, size_t n) {
    const char *op = OP_NAMES[BWD_FILTER];
    CUDNN_TRY(op, cudnnConvolutionBackwardFilter(h, scale_ptr(ONE, c->dtype), d.x, c->x, d.y, c->gy, d.conv,
                                                 (cudnnConvolutionBwdFilterAlgo_t)algo, ws, n,
                                                 scale_ptr(ZERO, c->dtype), d.w, c->gw));
    if (c->gb)
      CUDNN_TRY(op, cudnnConvolutionBackwardBias(h, scale_ptr(ONE, c->dtype), d.y, c->gy, scale_ptr(ZERO, c->dtype),
                                                 d.b, c->gb));
    return 0;
  });
}

/* ---- batch norm ----------------------------------------------------------------------- */

struct bn_descs {
  cudnnTensorDescriptor_t x = NULL, stats = NULL;
  ~bn_descs() {
    if (x) cudnnDestroyTensorDescriptor(x);
    if (stats) cudnnDestroyTensorDescriptor(stats);
  }
};

/* [N, C, S] as NCHW [N, C, S, 1]; the per-channel vectors as [1, C, 1, 1]. */
static int bn_setup(int device, const bk_bn *b, const char *op, cudnnHandle_t *h, bn_descs *d) {
  if (b->N > INT_MAX || b->C > INT_MAX || b->S > INT_MAX || b->N * b->C * b->S > INT_MAX) {
    plugin_set_error("%s: tensors of more than 2^31 elements have no cuDNN kernel", op);
    return -1;
  }
  STREAM_OR_FAIL(s, device);
  if (!(*h = cudnn_for(device, s, op))) return -1;
  CUDNN_TRY(op, cudnnCreateTensorDescriptor(&d->x));
  CUDNN_TRY(op, cudnnSetTensor4dDescriptor(d->x, CUDNN_TENSOR_NCHW, cudnn_type(b->dtype), (int)b->N, (int)b->C,
                                           (int)b->S, 1));
  CUDNN_TRY(op, cudnnCreateTensorDescriptor(&d->stats));
  CUDNN_TRY(op, cudnnDeriveBNTensorDescriptor(d->stats, d->x, CUDNN_BATCHNORM_SPATIAL));
  return 0;
}

int cuda_bn_forward(int device, const bk_bn *b) {
  const char *op = "batch_norm";
  if (b->N * b->C * b->S == 0) return 0;
  cudnnHandle_t h;
  bn_descs d;
  if (bn_setup(device, b, op, &h, &d) < 0) return -1;
  const void *one = scale_ptr(ONE, b->dtype), *zero = scale_ptr(ZERO, b->dtype);
  if (b->training)
    CUDNN_TRY(op, cudnnBatchNormalizationForwardTraining(h, CUDNN_BATCHNORM_SPATIAL, one, zero, d.x, b->x, d.x, b->y,
                                                         d.stats, b->weight, b->bias, b->momentum,
                                                         b->running_mean, b->running_var, b->eps, b->save_mean,
                                                         b->save_invstd));
  else
    CUDNN_TRY(op, cudnnBatchNormalizationForwardInference(h, CUDNN_BATCHNORM_SPATIAL, one, zero, d.x, b->x, d.x,
                                                          b->y, d.stats, b->weight, b->bias, b->running_mean,
                                                          b->running_var, b->eps));
  return 0;
}

int cuda_bn_backward(int device, const bk_bn *b) {
  const char *op = "batch_norm backward";
  if (!b->training) {
    plugin_set_error("%s: cuDNN differentiates the training statistics only", op);
    return -1;
  }
  if (b->N * b->C * b->S == 0) return 0;
  cudnnHandle_t h;
  bn_descs d;
  if (bn_setup(device, b, op, &h, &d) < 0) return -1;
  const void *one = scale_ptr(ONE, b->dtype), *zero = scale_ptr(ZERO, b->dtype);
  CUDNN_TRY(op, cudnnBatchNormalizationBackward(h, CUDNN_BATCHNORM_SPATIAL, one, zero, one, zero, d.x, b->x, d.x,
                                                b->gy, d.x, b->gx, d.stats, b->weight, b->gweight, b->gbias,
                                                b->eps, b->save_mean, b->save_invstd));
  return 0;
}
