/* backend.c — finds and loads the CUDA plugin, and fronts it for the core.
 *
 * Nothing here links CUDA. The first call that needs a cuda device looks for
 * libfastc_cuda.so (FASTC_CUDA_PLUGIN, then beside libfastc.so or the program
 * that holds this code, then the install and build dirs), dlopens it and asks
 * it to fill the fc_backend table. Every way this can fail (no plugin file, a
 * missing libcudart/cuBLAS, no driver, no GPU) ends as one reason string that
 * fc_cuda_why_unavailable() returns and every cuda error message quotes; the
 * device count stays 0. */
#include "backend.h"
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

#ifndef FASTC_BUILD_DIR
#define FASTC_BUILD_DIR "build"
#endif
#ifndef FASTC_LIB_DIR
#define FASTC_LIB_DIR "/usr/local/lib"
#endif
#define PLUGIN_NAME "libfastc_cuda.so"

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static fc_backend table;
static const fc_backend *loaded; /* &table once a device was found */
static int device_count;
static char why[1024];
static int allow_tf32 = 1;

static void set_why(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
}

/* ---- finding the plugin ------------------------------------------------ */

enum { MAX_CANDIDATES = 6 };
typedef struct candidates { int n; char path[MAX_CANDIDATES][PATH_MAX]; } candidates;

static void add_candidate(candidates *c, const char *dir, const char *file) {
  if (c->n == MAX_CANDIDATES || !dir || !*dir) return;
  char p[PATH_MAX + 64];
  if (strlen(dir) >= PATH_MAX) return;
  if (file) snprintf(p, sizeof p, "%s/%s", dir, file);
  else snprintf(p, sizeof p, "%s", dir);
  for (int i = 0; i < c->n; i++)
    if (strcmp(c->path[i], p) == 0) return;
  if (strlen(p) >= PATH_MAX) return;
  memcpy(c->path[c->n++], p, strlen(p) + 1);
}

static void add_dir_of(candidates *c, const char *file) {
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", file);
  char *slash = strrchr(dir, '/');
  if (!slash) snprintf(dir, sizeof dir, ".");
  else *slash = 0;
  add_candidate(c, dir, PLUGIN_NAME);
}

static void plugin_candidates(candidates *c) {
  c->n = 0;
  const char *env = getenv("FASTC_CUDA_PLUGIN");
  if (env && *env) add_candidate(c, env, NULL);
  Dl_info info; /* libfastc.so, or the executable that carries libfastc.a */
  if (dladdr((void *)&fc_cuda_is_available, &info) && info.dli_fname) add_dir_of(c, info.dli_fname);
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = 0;
    add_dir_of(c, exe);
  }
  add_candidate(c, FASTC_LIB_DIR, PLUGIN_NAME);
  add_candidate(c, FASTC_BUILD_DIR, PLUGIN_NAME);
}

static void load_from(const char *path) {
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (!h) {
    set_why("cannot load the CUDA plugin: %s", dlerror());
    return;
  }
  bk_init_fn init = (bk_init_fn)dlsym(h, BK_INIT_SYMBOL);
  if (!init) {
    set_why("%s is not a fastc CUDA plugin (no %s)", path, BK_INIT_SYMBOL);
    return;
  }
  bk_host host = {BK_ABI_VERSION, fc_set_error};
  char reason[512] = "";
  if (init(&host, &table, reason, sizeof reason) < 0) {
    set_why("%s", reason[0] ? reason : "the CUDA plugin failed to start");
    return;
  }
  if (table.abi != BK_ABI_VERSION) {
    set_why("%s was built for backend ABI %d, this libfastc needs %d; rebuild it", path,
            table.abi, BK_ABI_VERSION);
    return;
  }
  int count = table.device_count();
  if (count <= 0) {
    set_why("no CUDA device found (the driver reports %d GPUs)", count);
    return;
  }
  device_count = count;
  why[0] = 0;
  loaded = &table;
}

static void load(void) {
  candidates c;
  plugin_candidates(&c);
  for (int i = 0; i < c.n; i++)
    if (access(c.path[i], F_OK) == 0) {
      load_from(c.path[i]);
      return;
    }
  char looked[4 * PATH_MAX] = "";
  for (int i = 0; i < c.n; i++) {
    size_t k = strlen(looked);
    snprintf(looked + k, sizeof looked - k, "%s%s", i ? ", " : "", c.path[i]);
  }
  set_why("the CUDA plugin " PLUGIN_NAME " was not found (fastc was built without nvcc, or "
          "the plugin is not installed; set FASTC_CUDA_PLUGIN to its path). Looked for: %s",
          looked);
}

const fc_backend *backend_get(void) {
  pthread_once(&load_once, load);
  if (!loaded) fc_set_error("%s", why);
  return loaded;
}

/* ---- the public API ------------------------------------------------------ */

int fc_cuda_is_available(void) {
  pthread_once(&load_once, load);
  return loaded != NULL;
}

const char *fc_cuda_why_unavailable(void) {
  pthread_once(&load_once, load);
  return why;
}

int fc_cuda_device_count(void) {
  pthread_once(&load_once, load);
  return device_count;
}

const char *fc_cuda_info(void) {
  pthread_once(&load_once, load);
  return loaded ? loaded->info() : why;
}

static int check_index(const char *op, int device) {
  if (!backend_get()) FAIL_INT("%s: CUDA is not available: %s", op, why);
  if (device < 0 || device >= device_count)
    FAIL_INT("%s: cuda:%d does not exist (%d CUDA device%s: cuda:0 to cuda:%d)", op, device,
             device_count, device_count == 1 ? "" : "s", device_count - 1);
  return 0;
}

/* device -1 runs f on every device. */
static int each_device(const char *op, int device, int (*f)(int)) {
  if (device != -1) return check_index(op, device) < 0 ? -1 : f(device);
  if (!fc_cuda_is_available()) return 0; /* nothing to do anywhere */
  for (int d = 0; d < device_count; d++)
    if (f(d) < 0) return -1;
  return 0;
}

static int synchronize_one(int device) { return loaded->synchronize(device); }
int fc_cuda_synchronize(int device) { return each_device("cuda_synchronize", device, synchronize_one); }

static int empty_one(int device) {
  loaded->empty_cache(device);
  return 0;
}
int fc_cuda_empty_cache(int device) { return each_device("cuda_empty_cache", device, empty_one); }

int fc_cuda_memory_stats(int device, fc_cuda_mem_stats *out) {
  if (!out) FAIL_INT("cuda_memory_stats: out is NULL");
  memset(out, 0, sizeof *out);
  if (check_index("cuda_memory_stats", device) < 0) return -1;
  return loaded->memory_stats(device, out);
}

void fc_cuda_set_allow_tf32(int allow) { __atomic_store_n(&allow_tf32, allow != 0, __ATOMIC_RELAXED); }
int fc_cuda_allow_tf32(void) { return __atomic_load_n(&allow_tf32, __ATOMIC_RELAXED); }
int backend_tf32(void) { return fc_cuda_allow_tf32(); }

/* ---- checks --------------------------------------------------------------- */

int backend_check_device(const char *op, fc_device dev) {
  if (dev.type != FC_CUDA) FAIL_INT("%s: unknown device type %d", op, dev.type);
  if (!backend_get())
    FAIL_INT("%s: cuda:%d used but the CUDA backend is not loaded: %s", op, dev.index, why);
  return check_index(op, dev.index);
}

/* Ops whose every path dispatches to the plugin, by the name they check
 * devices under. Elementwise ops carry their plugin op code. */
typedef struct named_op { const char *name; int code; } named_op;
static const named_op elementwise_ops[] = {
  {"add", BK_ADD}, {"sub", BK_SUB}, {"mul", BK_MUL}, {"div", BK_DIV}, {"pow", BK_POW},
  {"maximum", BK_MAX}, {"minimum", BK_MIN}, {"eq", BK_EQ}, {"ne", BK_NE}, {"lt", BK_LT},
  {"le", BK_LE}, {"gt", BK_GT}, {"ge", BK_GE}, {"logical_and", BK_AND}, {"logical_or", BK_OR},
  {"exp_backward", BK_GEXP}, {"log_backward", BK_GLOG}, {"log1p_backward", BK_GLOG1P},
  {"sqrt_backward", BK_GSQRT}, {"rsqrt_backward", BK_GRSQRT}, {"sin_backward", BK_GSIN},
  {"cos_backward", BK_GCOS}, {"tanh_backward", BK_GTANH}, {"sigmoid_backward", BK_GSIGMOID},
  {"gelu_backward", BK_GGELU}, {"silu_backward", BK_GSILU}, {"relu_backward", BK_GRELU},
  {"leaky_backward", BK_GLEAKY}, {"abs_backward", BK_GABS},
  {"exp", BK_EXP}, {"log", BK_LOG}, {"log1p", BK_LOG1P}, {"sqrt", BK_SQRT}, {"rsqrt", BK_RSQRT},
  {"sin", BK_SIN}, {"cos", BK_COS}, {"tanh", BK_TANH}, {"sigmoid", BK_SIGMOID},
  {"gelu", BK_GELU}, {"silu", BK_SILU}, {"leaky_relu", BK_LEAKY}, {"floor", BK_FLOOR},
  {"ceil", BK_CEIL}, {"round", BK_ROUND}, {"neg", BK_NEG}, {"abs", BK_ABS}, {"relu", BK_RELU},
  {"sign", BK_SIGN}, {"clamp", BK_CLAMP}, {"logical_not", BK_NOT}, {"where", BK_WHERE},
};
static const char *const other_ops[] = {
  "copy_", "fill_", "clone", "to_dtype", "contiguous", "to_device",
  "view", "reshape", "permute", "transpose", "squeeze", "unsqueeze", "expand", "flatten",
  "slice", "narrow", "select", "as_strided",
  "add_", "sub_", "mul_", "div_", "pow_",
  "sum", "mean", "prod", "amax", "amin", "all", "any",
  "matmul", "addmm", "dot", "outer", "softmax", "log_softmax", "cross_entropy",
  "sgd_step", "adam_step", "uniform_", "normal_", "bernoulli_", "rand", "randn", "randint",
  "get", "set", "to_doubles", /* elements cross to the host */
  /* cuDNN convolutions and batch norm, pooling kernels (backend_nn.c) */
  "conv2d", "conv1d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d",
  "adaptive_max_pool2d", "batch_norm", "batch_norm_relu",
  /* index walks (ops_index.c) and embedding */
  "index_select", "gather", "scatter", "scatter_add", "scatter_", "scatter_add_", "embedding",
  "dropout", /* Philox on the device (random.c's streams) */
  "sort", "topk", /* CUB segmented radix sort */
};

int backend_op_code(const char *name) {
  for (size_t i = 0; i < sizeof elementwise_ops / sizeof *elementwise_ops; i++)
    if (strcmp(elementwise_ops[i].name, name) == 0) return elementwise_ops[i].code;
  return -1;
}

int backend_check_op(const char *op) {
  if (backend_op_code(op) >= 0) return 0;
  for (size_t i = 0; i < sizeof other_ops / sizeof *other_ops; i++)
    if (strcmp(other_ops[i], op) == 0) return 0;
  FAIL_INT("%s: op %s has no CUDA kernel yet; move the tensors to the CPU (t:cpu()) for it", op, op);
}

/* ---- memory and copies ---------------------------------------------------- */

void *backend_alloc(fc_device dev, size_t nbytes) {
  if (backend_check_device("alloc", dev) < 0) return NULL;
  return loaded->alloc(dev.index, nbytes);
}

void backend_free(fc_device dev, void *ptr) {
  if (ptr && loaded) loaded->free(dev.index, ptr);
}

int backend_transfer(fc_tensor *dst, const fc_tensor *src) {
  size_t n = (size_t)src->numel * (size_t)fc_dtype_size(src->dtype);
  if (n == 0) return 0;
  bool from_gpu = src->device.type == FC_CUDA, to_gpu = dst->device.type == FC_CUDA;
  int kind = from_gpu && to_gpu ? BK_D2D : to_gpu ? BK_H2D : BK_D2H;
  int device = to_gpu ? dst->device.index : src->device.index;
  /* the copy runs on dst's stream: the source's own stream must be done first */
  if (kind == BK_D2D && src->device.index != device && loaded->synchronize(src->device.index) < 0)
    return -1;
  return loaded->memcpy(device, elem_ptr(dst), elem_ptr(src), n, kind);
}

fc_tensor *backend_host_copy(const fc_tensor *t) {
  if (t->device.type == FC_CPU) return fc_retain((fc_tensor *)t);
  return fc_to_device((fc_tensor *)t, (fc_device){FC_CPU, 0});
}

/* ---- elementwise ------------------------------------------------------------ */

static void to_bk_iter(bk_iter *b, const iter *it, fc_tensor *const *ops) {
  memset(b, 0, sizeof *b);
  b->nops = it->nops;
  b->ndim = it->ndim;
  b->numel = it->numel;
  for (int d = 0; d < it->ndim; d++) b->shape[d] = it->shape[d];
  for (int k = 0; k < it->nops; k++) {
    b->data[k] = it->data[k];
    b->dtype[k] = ops[k]->dtype;
    for (int d = 0; d < it->ndim; d++) b->stride[k][d] = it->stride[k][d];
  }
}

int backend_iter_run(int op, const iter *it, fc_tensor *const *ops, const double *args) {
  if (op < 0) FAIL_INT("elementwise: op has no CUDA kernel yet");
  if (it->numel == 0) return 0;
  bk_iter b;
  to_bk_iter(&b, it, ops);
  return loaded->elementwise(ops[0]->device.index, op, &b, args);
}

int backend_copy(const iter *it, fc_tensor *dst, const fc_tensor *src) {
  if (it->numel == 0) return 0;
  bk_iter b;
  to_bk_iter(&b, it, (fc_tensor *const[]){dst, (fc_tensor *)src});
  return loaded->copy(dst->device.index, &b);
}

int backend_fill(const iter *it, fc_tensor *t, uint64_t pattern) {
  if (it->numel == 0) return 0;
  bk_iter b;
  to_bk_iter(&b, it, &t);
  return loaded->fill(t->device.index, &b, pattern);
}
