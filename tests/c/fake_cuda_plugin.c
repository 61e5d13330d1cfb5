/* fake_cuda_plugin.c — a stand-in for libfastc_cuda.so that runs every
 * entry of backend.h on the host, so the core's CUDA paths (loading,
 * allocation through the plugin's caching allocator, transfers both ways,
 * op dispatch, autograd and a training loop on a "cuda" tensor) are tested
 * on machines without a GPU: test_cuda_dispatch.c and the GPU cases of
 * cuda_spec.lua run against it.
 *
 * Its device pointers are host pointers with bit 62 set: non-canonical on
 * x86-64, so any place where the core reads "device" memory directly
 * crashes instead of silently working. The kernels are plain loops in
 * double (int64 for integers), a reference for the conventions the CUDA
 * kernels implement, not a copy of them. */
#define FASTC_PLUGIN
#include "backend.h"
#include "cuda/caching_alloc.h"
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAG ((uintptr_t)1 << 62)
static char *H(const void *p) { return (char *)((uintptr_t)p ^ TAG); } /* device -> host */

enum { DEVICES = 2 };
static void (*set_error)(const char *fmt, ...);
static caching_allocator *allocator;
static char fake_stream; /* one "stream" for every device */

/* ---- dtypes -------------------------------------------------------------- */

static bool is_int(int d) { return d == FC_INT64 || d == FC_INT32 || d == FC_UINT8 || d == FC_BOOL; }
static int size_of(int d) {
  static const int sizes[FC_NUM_DTYPES] = {4, 8, 2, 2, 8, 4, 1, 1};
  return sizes[d];
}

static float bf16_f(uint16_t h) {
  uint32_t b = (uint32_t)h << 16;
  float f;
  memcpy(&f, &b, 4);
  return f;
}
static uint16_t f_bf16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x40);
  return (uint16_t)((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

static double ld(const char *p, int d) {
  switch (d) {
  case FC_FLOAT32: return *(const float *)p;
  case FC_FLOAT64: return *(const double *)p;
  case FC_FLOAT16: return (double)*(const _Float16 *)p;
  case FC_BFLOAT16: return bf16_f(*(const uint16_t *)p);
  case FC_INT64: return (double)*(const int64_t *)p;
  case FC_INT32: return *(const int32_t *)p;
  case FC_UINT8: return *(const uint8_t *)p;
  default: return *(const uint8_t *)p != 0;
  }
}
static int64_t ld_int(const char *p, int d) {
  switch (d) {
  case FC_INT64: return *(const int64_t *)p;
  case FC_INT32: return *(const int32_t *)p;
  default: return *(const uint8_t *)p;
  }
}
static int64_t to_i64(double v) {
  if (v != v) return 0;
  if (v >= 9.2233720368547758e18) return INT64_MAX;
  if (v <= -9.2233720368547758e18) return INT64_MIN;
  return (int64_t)v;
}
static void st_int(char *p, int d, int64_t v) {
  switch (d) {
  case FC_INT64: *(int64_t *)p = v; break;
  case FC_INT32: *(int32_t *)p = (int32_t)v; break;
  case FC_UINT8: *(uint8_t *)p = (uint8_t)v; break;
  default: *(uint8_t *)p = v != 0; break;
  }
}
static void st(char *p, int d, double v) {
  switch (d) {
  case FC_FLOAT32: *(float *)p = (float)v; break;
  case FC_FLOAT64: *(double *)p = v; break;
  case FC_FLOAT16: *(_Float16 *)p = (_Float16)(float)v; break; /* IEEE round to nearest even */
  case FC_BFLOAT16: *(uint16_t *)p = f_bf16((float)v); break;
  case FC_BOOL: *(uint8_t *)p = v != 0; break;
  default: st_int(p, d, to_i64(v)); break;
  }
}
/* Rounds a double result to what the dtype would have computed in. */
static double rnd(double v, int d) { return d == FC_FLOAT64 ? v : (double)(float)v; }

static void offsets(const bk_iter *it, int64_t i, int64_t *off) {
  for (int k = 0; k < BK_MAX_OPS; k++) off[k] = 0;
  for (int d = it->ndim - 1; d >= 0; d--) {
    int64_t idx = i % it->shape[d];
    i /= it->shape[d];
    for (int k = 0; k < it->nops; k++) off[k] += idx * it->stride[k][d];
  }
}
/* Calls f with host pointers to each element's operands, in order. */
typedef struct walk_ctx { const bk_iter *it; int op; const double *args; uint64_t pattern; } walk_ctx;
static void walk(const bk_iter *it, void (*f)(char **p, const walk_ctx *c), const walk_ctx *c) {
  for (int64_t i = 0; i < it->numel; i++) {
    int64_t off[BK_MAX_OPS];
    char *p[BK_MAX_OPS] = {0};
    offsets(it, i, off);
    for (int k = 0; k < it->nops; k++) p[k] = H(it->data[k]) + off[k];
    f(p, c);
  }
}

/* ---- device, memory, copies ------------------------------------------------- */

/* "Device" blocks sit on a list whose links are plain pointers: the device
 * owns them, so LeakSanitizer sees them as reachable even though the core
 * only ever holds their tagged addresses. The link header keeps the block
 * 512-byte aligned. */
typedef struct dev_block { struct dev_block *prev, *next; } dev_block;
enum { HEADER = 512 };
static dev_block device_memory = {&device_memory, &device_memory};
static pthread_mutex_t device_lock = PTHREAD_MUTEX_INITIALIZER;

static void *dev_malloc(void *ctx, int device, size_t n) {
  (void)ctx, (void)device;
  dev_block *b = aligned_alloc(HEADER, HEADER + n);
  if (!b) return NULL;
  pthread_mutex_lock(&device_lock);
  b->prev = &device_memory, b->next = device_memory.next;
  device_memory.next->prev = b, device_memory.next = b;
  pthread_mutex_unlock(&device_lock);
  return H((char *)b + HEADER);
}
static void dev_free(void *ctx, int device, void *p) {
  (void)ctx, (void)device;
  dev_block *b = (dev_block *)(H(p) - HEADER);
  pthread_mutex_lock(&device_lock);
  b->prev->next = b->next, b->next->prev = b->prev;
  pthread_mutex_unlock(&device_lock);
  free(b);
}

static int count(void) { return DEVICES; }
static int sync_dev(int device) { (void)device; return 0; }
static const char *info(void) { return "fake CUDA plugin (host memory, for tests)"; }
static void *alloc(int device, size_t n) {
  void *p = ca_alloc(allocator, device, &fake_stream, n);
  if (!p) set_error("alloc: fake cuda:%d out of memory", device);
  return p;
}
static void release(int device, void *p) { (void)device, ca_free(allocator, p); }
static int stats(int device, fc_cuda_mem_stats *out) { ca_stats(allocator, device, out); return 0; }
static void empty(int device) { ca_empty_cache(allocator, device); }
static int copy_mem(int device, void *dst, const void *src, size_t n, int kind) {
  (void)device;
  memcpy(kind == BK_D2H ? dst : H(dst), kind == BK_H2D ? src : H(src), n);
  return 0;
}

static void fill_one(char **p, const walk_ctx *c) {
  memcpy(p[0], &c->pattern, (size_t)size_of(c->it->dtype[0]));
}
static int fill(int device, const bk_iter *it, uint64_t pattern) {
  (void)device;
  walk(it, fill_one, &(walk_ctx){it, 0, NULL, pattern});
  return 0;
}

static void copy_one(char **p, const walk_ctx *c) {
  int s = c->it->dtype[1], d = c->it->dtype[0];
  if (s == d) memcpy(p[0], p[1], (size_t)size_of(d));
  else if (is_int(s) && is_int(d) && d != FC_BOOL) st_int(p[0], d, ld_int(p[1], s));
  else if (s == FC_INT64 && d == FC_FLOAT32) *(float *)p[0] = (float)*(const int64_t *)p[1];
  else st(p[0], d, ld(p[1], s));
}
static int copy(int device, const bk_iter *it) {
  (void)device;
  walk(it, copy_one, &(walk_ctx){it, 0, NULL, 0});
  return 0;
}

/* ---- elementwise ---------------------------------------------------------------- */

static double sigm(double x) { return 1 / (1 + exp(-x)); }

static double float_op(int op, double x, double y, const double *a) {
  double a0 = a ? a[0] : 0;
  switch (op) {
  case BK_ADD: return x + y;
  case BK_SUB: return x - y;
  case BK_MUL: return x * y;
  case BK_DIV: return x / y;
  case BK_POW: return pow(x, y);
  case BK_AXPY: return x + a0 * y;
  case BK_MAX: return (x != x || x > y) ? x : y;
  case BK_MIN: return (x != x || x < y) ? x : y;
  case BK_EQ: return x == y;
  case BK_NE: return x != y;
  case BK_LT: return x < y;
  case BK_LE: return x <= y;
  case BK_GT: return x > y;
  case BK_GE: return x >= y;
  case BK_GEXP: return y * x;
  case BK_GLOG: return y / x;
  case BK_GLOG1P: return y / (x + 1);
  case BK_GSQRT: return y / (2 * x);
  case BK_GRSQRT: return -0.5 * y * x * x * x;
  case BK_GSIN: return y * cos(x);
  case BK_GCOS: return -y * sin(x);
  case BK_GTANH: return y * (1 - x * x);
  case BK_GSIGMOID: return y * x * (1 - x);
  case BK_GGELU: return y * (0.5 * (1 + erf(x * M_SQRT1_2)) + x * 0.39894228040143267794 * exp(-0.5 * x * x));
  case BK_GSILU: { double s = sigm(x); return y * (s + x * s * (1 - s)); }
  case BK_GRELU: return x > 0 ? y : 0;
  case BK_GLEAKY: return x > 0 ? y : y * a0;
  case BK_GABS: return x > 0 ? y : x < 0 ? -y : 0;
  case BK_EXP: return exp(x);
  case BK_LOG: return log(x);
  case BK_LOG1P: return log1p(x);
  case BK_SQRT: return sqrt(x);
  case BK_RSQRT: return 1 / sqrt(x);
  case BK_SIN: return sin(x);
  case BK_COS: return cos(x);
  case BK_TANH: return tanh(x);
  case BK_SIGMOID: return sigm(x);
  case BK_GELU: return 0.5 * x * (1 + erf(x * M_SQRT1_2));
  case BK_SILU: return x * sigm(x);
  case BK_LEAKY: return x > 0 ? x : x * a0;
  case BK_FLOOR: return floor(x);
  case BK_CEIL: return ceil(x);
  case BK_ROUND: return nearbyint(x);
  case BK_NEG: return -x;
  case BK_ABS: return fabs(x);
  case BK_RELU: return x > 0 ? x : (x != x ? x : 0);
  case BK_SIGN: return x != x ? x : (x > 0) - (x < 0);
  case BK_CLAMP: return x < a0 ? a0 : x > a[1] ? a[1] : x;
  }
  return NAN;
}

static int64_t int_op(int op, int64_t x, int64_t y, const double *a) {
  uint64_t u = (uint64_t)x, v = (uint64_t)y;
  switch (op) {
  case BK_ADD: return (int64_t)(u + v);
  case BK_SUB: return (int64_t)(u - v);
  case BK_MUL: return (int64_t)(u * v);
  case BK_AXPY: return (int64_t)(u + (uint64_t)(int64_t)a[0] * v);
  case BK_MAX: return x > y ? x : y;
  case BK_MIN: return x < y ? x : y;
  case BK_EQ: return x == y;
  case BK_NE: return x != y;
  case BK_LT: return x < y;
  case BK_LE: return x <= y;
  case BK_GT: return x > y;
  case BK_GE: return x >= y;
  case BK_AND: return x && y;
  case BK_OR: return x || y;
  case BK_FLOOR: case BK_CEIL: case BK_ROUND: return x;
  case BK_NEG: return (int64_t)(0 - u);
  case BK_ABS: return x < 0 ? (int64_t)(0 - u) : x;
  case BK_RELU: return x > 0 ? x : 0;
  case BK_SIGN: return (x > 0) - (x < 0);
  case BK_CLAMP: return (double)x < a[0] ? (int64_t)a[0] : (double)x > a[1] ? (int64_t)a[1] : x;
  case BK_POW: {
    int64_t r = 1;
    if (y < 0) return x == 1 ? 1 : x == -1 ? (y & 1 ? -1 : 1) : 0;
    for (int64_t k = 0; k < y; k++) r = (int64_t)((uint64_t)r * u);
    return r;
  }
  }
  return 0;
}

static void elementwise_one(char **p, const walk_ctx *c) {
  int op = c->op, in = c->it->dtype[1], out = c->it->dtype[0];
  if (op == BK_WHERE) {
    memcpy(p[0], *p[1] ? p[2] : p[3], (size_t)size_of(out));
  } else if (op == BK_NOT) {
    *(uint8_t *)p[0] = ld(p[1], in) == 0;
  } else if (is_int(in)) {
    bool unary = op >= BK_FIRST_UNARY;
    st_int(p[0], out, int_op(op, ld_int(p[1], in), unary ? 0 : ld_int(p[2], in), c->args));
  } else {
    bool unary = op >= BK_FIRST_UNARY;
    st(p[0], out, rnd(float_op(op, ld(p[1], in), unary ? 0 : ld(p[2], in), c->args), in));
  }
}
static int elementwise(int device, int op, const bk_iter *it, const double *args) {
  (void)device;
  walk(it, elementwise_one, &(walk_ctx){it, op, args, 0});
  return 0;
}

/* ---- reductions, products, rows ------------------------------------------------------ */

static int64_t group(int n, const int64_t *shape, const int64_t *stride, int64_t i) {
  int64_t off = 0;
  for (int d = n - 1; d >= 0; d--) off += (i % shape[d]) * stride[d], i /= shape[d];
  return off;
}

static int reduce(int device, const bk_reduce *r) {
  (void)device;
  int es = size_of(r->in_dtype), os = size_of(r->out_dtype);
  bool ints = is_int(r->in_dtype) || r->kind == BK_RALL || r->kind == BK_RANY;
  for (int64_t o = 0; o < r->outer; o++) {
    const char *base = H(r->in) + group(r->nk, r->kshape, r->kstride, o) * es;
    double f = r->kind == BK_RPROD ? 1 : r->kind == BK_RMAX ? -INFINITY : r->kind == BK_RMIN ? INFINITY : 0;
    int64_t n = r->kind == BK_RPROD || r->kind == BK_RALL ? 1 : r->kind == BK_RMAX ? INT64_MIN
              : r->kind == BK_RMIN ? INT64_MAX : 0;
    for (int64_t j = 0; j < r->inner; j++) {
      const char *p = base + group(r->nr, r->rshape, r->rstride, j) * es;
      if (ints) {
        int64_t v = is_int(r->in_dtype) ? ld_int(p, r->in_dtype) : ld(p, r->in_dtype) != 0;
        switch (r->kind) {
        case BK_RSUM: n = (int64_t)((uint64_t)n + (uint64_t)v); break;
        case BK_RPROD: n = (int64_t)((uint64_t)n * (uint64_t)v); break;
        case BK_RMAX: n = v > n ? v : n; break;
        case BK_RMIN: n = v < n ? v : n; break;
        case BK_RALL: n = n && v; break;
        default: n = n || v; break;
        }
      } else {
        double v = ld(p, r->in_dtype);
        switch (r->kind) {
        case BK_RSUM: f += v; break;
        case BK_RPROD: f *= v; break;
        case BK_RMAX: f = (v > f || v != v) ? v : f; break;
        default: f = (v < f || v != v) ? v : f; break;
        }
      }
    }
    char *q = H(r->out) + o * os;
    if (ints && is_int(r->out_dtype)) st_int(q, r->out_dtype, n);
    else st(q, r->out_dtype, ints ? (double)n : r->mean ? f / (double)r->inner : f);
  }
  return 0;
}

static int gemm(int device, const bk_gemm *g) {
  (void)device;
  int es = size_of(g->dtype);
  for (int64_t i = 0; i < g->m; i++)
    for (int64_t j = 0; j < g->n; j++) {
      double acc = 0;
      for (int64_t k = 0; k < g->k; k++) {
        int64_t ai = g->trans_a ? k * g->lda + i : i * g->lda + k;
        int64_t bi = g->trans_b ? j * g->ldb + k : k * g->ldb + j;
        acc += ld(H(g->a) + ai * es, g->dtype) * ld(H(g->b) + bi * es, g->dtype);
      }
      char *c = H(g->c) + (i * g->ldc + j) * es;
      st(c, g->dtype, g->alpha * acc + (g->beta == 0 ? 0 : g->beta * ld(c, g->dtype)));
    }
  return 0;
}

/* Element c of row r of a [outer, C, inner] block, as a host pointer. */
static char *at(const void *base, int dtype, int64_t r, int64_t c, int64_t C, int64_t inner) {
  return H(base) + ((r / inner) * C * inner + c * inner + r % inner) * size_of(dtype);
}

static double row_lse(const void *x, int dt, int64_t r, int64_t C, int64_t inner) {
  double m = -INFINITY, s = 0;
  for (int64_t c = 0; c < C; c++) m = fmax(m, ld(at(x, dt, r, c, C, inner), dt));
  for (int64_t c = 0; c < C; c++) s += exp(ld(at(x, dt, r, c, C, inner), dt) - m);
  return m + log(s);
}

static int softmax(int device, const bk_softmax *p) {
  (void)device;
  int dt = p->dtype;
  for (int64_t r = 0; r < p->outer * p->inner; r++) {
    if (p->g) {
      double dot = 0;
      for (int64_t c = 0; c < p->C; c++) {
        double g = ld(at(p->g, dt, r, c, p->C, p->inner), dt), y = ld(at(p->x, dt, r, c, p->C, p->inner), dt);
        dot += p->log ? g : g * y;
      }
      for (int64_t c = 0; c < p->C; c++) {
        double g = ld(at(p->g, dt, r, c, p->C, p->inner), dt), y = ld(at(p->x, dt, r, c, p->C, p->inner), dt);
        st(at(p->out, dt, r, c, p->C, p->inner), dt, p->log ? g - exp(y) * dot : y * (g - dot));
      }
      continue;
    }
    double lse = row_lse(p->x, dt, r, p->C, p->inner);
    for (int64_t c = 0; c < p->C; c++) {
      double x = ld(at(p->x, dt, r, c, p->C, p->inner), dt);
      st(at(p->out, dt, r, c, p->C, p->inner), dt, p->log ? x - lse : exp(x - lse));
    }
  }
  return 0;
}

static double weight_of(const bk_xent *k, int64_t c) {
  return k->weight ? ld(H(k->weight) + c * size_of(k->dtype), k->dtype) : 1;
}

static int xent_forward(int device, const bk_xent *k) {
  (void)device;
  int dt = k->dtype, es = size_of(dt);
  for (int64_t r = 0; r < k->N * k->S; r++) {
    double lse = row_lse(k->x, dt, r, k->C, k->S), loss = 0, w = 0;
    int64_t t = ((const int64_t *)H(k->target))[r];
    bool skip = k->ignore != FC_NO_INDEX && t == k->ignore;
    if (!skip && (t < k->base || t >= k->base + k->C)) {
      int *bad = (int *)H(k->bad);
      if (r < *bad) *bad = (int)r;
      skip = true;
    }
    if (!skip) {
      t -= k->base;
      w = weight_of(k, t);
      loss = w * (lse - ld(at(k->x, dt, r, t, k->C, k->S), dt));
      if (k->eps > 0) {
        double smooth = 0;
        for (int64_t c = 0; c < k->C; c++) smooth += weight_of(k, c) * (lse - ld(at(k->x, dt, r, c, k->C, k->S), dt));
        loss = (1 - k->eps) * loss + k->eps / (double)k->C * smooth;
      }
    }
    st(H(k->lse) + r * es, dt, lse);
    st(H(k->loss) + r * es, dt, loss);
    st(H(k->row_weight) + r * es, dt, w);
  }
  return 0;
}

static int xent_backward(int device, const bk_xent *k) {
  (void)device;
  int dt = k->dtype, es = size_of(dt);
  double kc = k->eps / (double)k->C;
  for (int64_t r = 0; r < k->N * k->S; r++) {
    int64_t t = ((const int64_t *)H(k->target))[r];
    bool skip = k->ignore != FC_NO_INDEX && t == k->ignore;
    double s = skip ? 0 : ld(H(k->g) + r * k->g_stride * es, dt) * k->g_scale;
    double lse = ld(H(k->lse) + r * es, dt), wt = skip ? 0 : weight_of(k, t - k->base);
    double a = s * ((1 - k->eps) * wt + kc * k->wsum);
    for (int64_t c = 0; c < k->C; c++) {
      double v = skip ? 0 : a * exp(ld(at(k->x, dt, r, c, k->C, k->S), dt) - lse) - s * kc * weight_of(k, c);
      if (!skip && c == t - k->base) v -= s * (1 - k->eps) * wt;
      st(at(k->gx, dt, r, c, k->C, k->S), dt, v);
    }
  }
  return 0;
}

static int sgd(int device, const bk_sgd *k) {
  (void)device;
  int dt = k->dtype, es = size_of(dt);
  for (int64_t i = 0; i < k->n; i++) {
    char *p = H(k->param) + i * es, *b = k->buf ? H(k->buf) + i * es : NULL;
    double d = ld(H(k->grad) + i * es, dt) + k->weight_decay * ld(p, dt);
    if (b) {
      double nb = k->first_step ? d : k->momentum * ld(b, dt) + (1 - k->dampening) * d;
      st(b, dt, nb);
      d = k->nesterov ? d + k->momentum * nb : nb;
    }
    st(p, dt, ld(p, dt) - k->lr * d);
  }
  return 0;
}

static int adam(int device, const bk_adam *k) {
  (void)device;
  int dt = k->dtype, es = size_of(dt);
  for (int64_t i = 0; i < k->n; i++) {
    char *p = H(k->param) + i * es, *m = H(k->exp_avg) + i * es, *v = H(k->exp_avg_sq) + i * es;
    double g = ld(H(k->grad) + i * es, dt), pv = ld(p, dt);
    if (k->decoupled) pv *= 1 - k->lr * k->weight_decay;
    else g += k->weight_decay * pv;
    double mv = k->beta1 * ld(m, dt) + (1 - k->beta1) * g, vv = k->beta2 * ld(v, dt) + (1 - k->beta2) * g * g;
    st(m, dt, mv), st(v, dt, vv);
    st(p, dt, pv - k->step_size * mv / (sqrt(vv) / k->sqrt_bc2 + k->eps));
  }
  return 0;
}

/* ---- convolution, pooling, batch norm ---------------------------------------------
 * Direct loops in double over the NCHW layouts of backend.h: slow and
 * plain, the definition the cuDNN calls and pooling kernels must meet. */

static double *zeroed(int64_t n) { return calloc((size_t)(n > 0 ? n : 1), sizeof(double)); }
static void store_all(void *dst, int dt, const double *v, int64_t n) {
  for (int64_t i = 0; i < n; i++) st(H(dst) + i * size_of(dt), dt, v[i]);
}
static double ldi(const void *base, int dt, int64_t i) { return ld(H(base) + i * size_of(dt), dt); }

/* Calls f for every (output, weight, input) tap of the convolution. */
typedef void (*tap_fn)(const bk_conv *c, int64_t yi, int64_t wi, int64_t xi, double *acc);
static void each_tap(const bk_conv *c, tap_fn f, double *acc) {
  int64_t kpg = c->K / c->groups, cpg = c->C / c->groups;
  for (int64_t n = 0; n < c->N; n++)
    for (int64_t k = 0; k < c->K; k++)
      for (int64_t oh = 0; oh < c->Ho; oh++)
        for (int64_t ow = 0; ow < c->Wo; ow++) {
          int64_t yi = ((n * c->K + k) * c->Ho + oh) * c->Wo + ow;
          for (int64_t cc = 0; cc < cpg; cc++)
            for (int64_t i = 0; i < c->kh; i++)
              for (int64_t j = 0; j < c->kw; j++) {
                int64_t h = oh * c->sh - c->ph + i * c->dh, w = ow * c->sw - c->pw + j * c->dw;
                if (h < 0 || h >= c->H || w < 0 || w >= c->W) continue;
                int64_t ci = (k / kpg) * cpg + cc;
                f(c, yi, ((k * cpg + cc) * c->kh + i) * c->kw + j, ((n * c->C + ci) * c->H + h) * c->W + w, acc);
              }
        }
}
static void tap_forward(const bk_conv *c, int64_t yi, int64_t wi, int64_t xi, double *acc) {
  acc[yi] += ldi(c->x, c->dtype, xi) * ldi(c->w, c->dtype, wi);
}
static void tap_data(const bk_conv *c, int64_t yi, int64_t wi, int64_t xi, double *acc) {
  acc[xi] += ldi(c->gy, c->dtype, yi) * ldi(c->w, c->dtype, wi);
}
static void tap_filter(const bk_conv *c, int64_t yi, int64_t wi, int64_t xi, double *acc) {
  acc[wi] += ldi(c->gy, c->dtype, yi) * ldi(c->x, c->dtype, xi);
}

static int conv_run(const bk_conv *c, tap_fn f, void *out, int64_t n) {
  double *acc = zeroed(n);
  if (!acc) return -1;
  each_tap(c, f, acc);
  if (f == tap_forward && c->b)
    for (int64_t i = 0; i < n; i++) acc[i] += ldi(c->b, c->dtype, i / (c->Ho * c->Wo) % c->K);
  store_all(out, c->dtype, acc, n);
  free(acc);
  return 0;
}
static int conv_forward(int device, const bk_conv *c) {
  (void)device;
  return conv_run(c, tap_forward, c->y, c->N * c->K * c->Ho * c->Wo);
}
static int conv_backward_data(int device, const bk_conv *c) {
  (void)device;
  return conv_run(c, tap_data, c->gx, c->N * c->C * c->H * c->W);
}
static int conv_backward_filter(int device, const bk_conv *c) {
  (void)device;
  if (conv_run(c, tap_filter, c->gw, c->K * (c->C / c->groups) * c->kh * c->kw) < 0) return -1;
  if (!c->gb) return 0;
  double *gb = zeroed(c->K);
  for (int64_t i = 0; gb && i < c->N * c->K * c->Ho * c->Wo; i++) gb[i / (c->Ho * c->Wo) % c->K] += ldi(c->gy, c->dtype, i);
  if (gb) store_all(c->gb, c->dtype, gb, c->K);
  free(gb);
  return gb ? 0 : -1;
}

/* The input range [*lo, *hi) with step *step that output o of an axis reads;
 * *span: the average's divisor along the axis with count_include_pad. */
static void pool_window(const bk_pool *p, bool rows, int64_t o, int64_t *lo, int64_t *hi, int64_t *step,
                        int64_t *span) {
  int64_t in = rows ? p->H : p->W, n = rows ? p->Ho : p->Wo;
  int k = rows ? p->kh : p->kw, s = rows ? p->sh : p->sw, pad = rows ? p->ph : p->pw, d = rows ? p->dh : p->dw;
  *step = 1;
  if (p->kind == BK_ADAPTIVE_MAX_POOL || p->kind == BK_ADAPTIVE_AVG_POOL) {
    *lo = o * in / n, *hi = ((o + 1) * in + n - 1) / n, *span = *hi - *lo;
  } else if (p->kind == BK_MAX_POOL) {
    int64_t first = o * s - pad, last = first + (int64_t)(k - 1) * d;
    while (first < 0) first += d;
    *lo = first, *hi = last + 1 < in ? last + 1 : in, *step = d, *span = 0;
  } else {
    int64_t first = o * s - pad, end = first + k;
    if (end > in + pad) end = in + pad;
    *span = end - first;
    *lo = first < 0 ? 0 : first, *hi = end < in ? end : in;
  }
}

/* Calls f(plane, output, input, weight) for each input of each window; max
 * kinds get the window's chosen element only. */
static int pool_walk(const bk_pool *p, bool backward, double *acc) {
  bool is_max = p->kind == BK_MAX_POOL || p->kind == BK_ADAPTIVE_MAX_POOL;
  int dt = p->dtype;
  for (int64_t pl = 0; pl < p->P; pl++)
    for (int64_t oh = 0; oh < p->Ho; oh++)
      for (int64_t ow = 0; ow < p->Wo; ow++) {
        int64_t hl, hh, hs, hspan, wl, wh, ws, wspan, o = (pl * p->Ho + oh) * p->Wo + ow;
        pool_window(p, true, oh, &hl, &hh, &hs, &hspan);
        pool_window(p, false, ow, &wl, &wh, &ws, &wspan);
        if (is_max && backward) {
          acc[pl * p->H * p->W + p->gix[o] - p->base] += ldi(p->gy, dt, o);
          continue;
        }
        double best = 0, sum = 0;
        int64_t arg = -1, cnt = 0;
        for (int64_t h = hl; h < hh; h += hs)
          for (int64_t w = wl; w < wh; w += ws) {
            int64_t i = (pl * p->H + h) * p->W + w;
            cnt++;
            if (backward) continue;
            double v = ldi(p->x, dt, i);
            sum += v;
            if (arg < 0 || v != v || (best == best && v > best)) best = v, arg = h * p->W + w;
          }
        bool counts_pad = p->kind == BK_AVG_POOL && p->count_include_pad;
        double div = counts_pad ? (double)(hspan * wspan) : (double)cnt;
        if (backward) {
          for (int64_t h = hl; h < hh; h++)
            for (int64_t w = wl; w < wh; w++) acc[(pl * p->H + h) * p->W + w] += ldi(p->gy, dt, o) / div;
        } else if (is_max) {
          acc[o] = best;
          if (p->ix) ((int64_t *)H(p->ix))[o] = arg + p->base;
        } else {
          acc[o] = cnt ? sum / div : 0;
        }
      }
  return 0;
}

static int pool_forward(int device, const bk_pool *p) {
  (void)device;
  int64_t n = p->P * p->Ho * p->Wo;
  double *acc = zeroed(n);
  if (!acc) return -1;
  pool_walk(p, false, acc);
  store_all(p->y, p->dtype, acc, n);
  free(acc);
  return 0;
}
static int pool_backward(int device, const bk_pool *p) {
  (void)device;
  int64_t n = p->P * p->H * p->W;
  double *acc = zeroed(n);
  if (!acc) return -1;
  bk_pool q = *p;
  q.gix = p->gix ? (const int64_t *)H(p->gix) : NULL;
  pool_walk(&q, true, acc);
  store_all(p->gx, p->dtype, acc, n);
  free(acc);
  return 0;
}

/* Element s of channel c of sample n of a [N, C, S] block. */
static int64_t bn_at(const bk_bn *b, int64_t n, int64_t c, int64_t s) { return (n * b->C + c) * b->S + s; }

static int bn_forward(int device, const bk_bn *b) {
  (void)device;
  int dt = b->dtype;
  double M = (double)(b->N * b->S);
  for (int64_t c = 0; c < b->C; c++) {
    double mean = 0, var = 0;
    if (b->training) {
      for (int64_t n = 0; n < b->N; n++)
        for (int64_t s = 0; s < b->S; s++) mean += ldi(b->x, dt, bn_at(b, n, c, s));
      mean /= M;
      for (int64_t n = 0; n < b->N; n++)
        for (int64_t s = 0; s < b->S; s++) {
          double d = ldi(b->x, dt, bn_at(b, n, c, s)) - mean;
          var += d * d;
        }
      var /= M;
    } else {
      mean = ldi(b->running_mean, dt, c), var = ldi(b->running_var, dt, c);
    }
    double is = 1 / sqrt(var + b->eps), w = ldi(b->weight, dt, c), bias = ldi(b->bias, dt, c);
    for (int64_t n = 0; n < b->N; n++)
      for (int64_t s = 0; s < b->S; s++) {
        int64_t i = bn_at(b, n, c, s);
        st(H(b->y) + i * size_of(dt), dt, (ldi(b->x, dt, i) - mean) * is * w + bias);
      }
    if (!b->training) continue;
    st(H(b->save_mean) + c * size_of(dt), dt, mean);
    st(H(b->save_invstd) + c * size_of(dt), dt, is);
    if (!b->running_mean) continue;
    double m = b->momentum;
    st(H(b->running_mean) + c * size_of(dt), dt, (1 - m) * ldi(b->running_mean, dt, c) + m * mean);
    st(H(b->running_var) + c * size_of(dt), dt, (1 - m) * ldi(b->running_var, dt, c) + m * var * M / (M - 1));
  }
  return 0;
}

static int bn_backward(int device, const bk_bn *b) {
  (void)device;
  int dt = b->dtype;
  double M = (double)(b->N * b->S);
  for (int64_t c = 0; c < b->C; c++) {
    double mean = ldi(b->save_mean, dt, c), is = ldi(b->save_invstd, dt, c), w = ldi(b->weight, dt, c);
    double sg = 0, sgx = 0;
    for (int64_t n = 0; n < b->N; n++)
      for (int64_t s = 0; s < b->S; s++) {
        int64_t i = bn_at(b, n, c, s);
        double g = ldi(b->gy, dt, i);
        sg += g, sgx += g * (ldi(b->x, dt, i) - mean);
      }
    for (int64_t n = 0; n < b->N; n++)
      for (int64_t s = 0; s < b->S; s++) {
        int64_t i = bn_at(b, n, c, s);
        double xm = ldi(b->x, dt, i) - mean, g = ldi(b->gy, dt, i);
        st(H(b->gx) + i * size_of(dt), dt, w * is * (g - sg / M - xm * is * is * sgx / M));
      }
    st(H(b->gweight) + c * size_of(dt), dt, sgx * is);
    st(H(b->gbias) + c * size_of(dt), dt, sg);
  }
  return 0;
}

/* ---- index walks ---------------------------------------------------------------------- */

static int index_walk(int device, const bk_walk *w) {
  (void)device;
  int64_t numel = 1;
  for (int k = 0; k < w->nd; k++) numel *= w->shape[k];
  int es = size_of(w->dtype);
  for (int64_t p = 0; p < numel; p++) {
    int64_t rest = p, io = 0, to = 0, oo = 0;
    for (int k = w->nd - 1; k >= 0; k--) {
      int64_t i = rest % w->shape[k];
      rest /= w->shape[k];
      io += i * w->is[k], to += i * w->ts[k], oo += i * w->os[k];
    }
    int64_t v = ((const int64_t *)H(w->idx))[io];
    char *self = H(w->self) + (to + (v - w->base) * w->td) * es;
    const char *other = w->other ? H(w->other) + oo * es : (const char *)&w->scalar;
    char *out = w->kind == BK_GATHER ? H(w->other) + oo * es : self;
    if (w->kind == BK_GATHER) memcpy(out, self, (size_t)es);
    else if (w->kind == BK_SCATTER) memcpy(self, other, (size_t)es);
    else if (w->dtype == FC_BOOL) *self = *self || *other;
    else if (is_int(w->dtype)) st_int(self, w->dtype, (int64_t)((uint64_t)ld_int(self, w->dtype) + (uint64_t)ld_int(other, w->dtype)));
    else st(self, w->dtype, ld(self, w->dtype) + ld(other, w->dtype));
  }
  return 0;
}

/* ---- Philox draws and dropout ------------------------------------------------------------
 * The generator written out once more (Random123's Philox 4x32-10), so the
 * core's device path is checked to hand over the CPU's (seed, counter). */

static void philox(uint64_t seed, uint64_t counter, uint32_t out[4]) {
  uint32_t c[4] = {(uint32_t)counter, (uint32_t)(counter >> 32), 0, 0}, k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  for (int r = 0; r < 10; r++, k0 += 0x9E3779B9u, k1 += 0xBB67AE85u) {
    uint64_t p0 = (uint64_t)0xD2511F53u * c[0], p1 = (uint64_t)0xCD9E8D57u * c[2];
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c[1] ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c[3] ^ k1;
    c[0] = n0, c[1] = (uint32_t)p1, c[2] = n2, c[3] = (uint32_t)p0;
  }
  memcpy(out, c, sizeof c);
}
static double unit(uint32_t hi, uint32_t lo) { /* (0, 1] */
  return ((double)(((uint64_t)hi << 21) ^ (lo >> 11)) + 1.0) / 9007199254740992.0;
}

static int random_draw(int device, const bk_random *r) {
  (void)device;
  for (int64_t i = 0; i < r->n; i++) {
    uint32_t w[4];
    philox(r->seed, r->first + (uint64_t)i / 2, w);
    int l = (int)(i & 1) * 2;
    double u = unit(w[l], w[l + 1]), v;
    if (r->kind == BK_UNIFORM) v = r->a + (r->b - r->a) * (1 - u);
    else if (r->kind == BK_BERNOULLI) v = (1 - u) < r->a;
    else if (r->kind == BK_RANDINT) v = r->a + (double)((((uint64_t)w[l] << 32) | w[l + 1]) % (uint64_t)(r->b - r->a));
    else {
      double rad = sqrt(-2 * log(u)), t = 2 * M_PI * unit(w[(l + 2) & 3], w[(l + 3) & 3]);
      v = r->a + r->b * ((i & 1) ? rad * sin(t) : rad * cos(t));
    }
    st(H(r->out) + i * size_of(r->dtype), r->dtype, v);
  }
  return 0;
}

static int dropout_forward(int device, const bk_dropout *d) {
  (void)device;
  uint8_t *mask = (uint8_t *)H(d->mask);
  memset(mask, 0, (size_t)(d->n + 7) / 8);
  for (int64_t i = 0; i < d->n; i++) {
    uint32_t w[4];
    philox(d->seed, d->first + (uint64_t)i / 4, w);
    bool keep = w[i % 4] < d->threshold;
    mask[i / 8] |= (uint8_t)(keep << (i % 8));
    st(H(d->y) + i * size_of(d->dtype), d->dtype, rnd(ldi(d->x, d->dtype, i) * (keep ? rnd(d->scale, d->dtype) : 0), d->dtype));
  }
  return 0;
}

static int dropout_backward(int device, const bk_dropout *d) {
  (void)device;
  const uint8_t *mask = (const uint8_t *)H(d->mask);
  for (int64_t i = 0; i < d->n; i++) {
    bool keep = (mask[i / 8] >> (i % 8)) & 1;
    st(H(d->gx) + i * size_of(d->dtype), d->dtype, rnd(ldi(d->g, d->dtype, i) * (keep ? rnd(d->scale, d->dtype) : 0), d->dtype));
  }
  return 0;
}

/* ---- streams, events, pinned memory ----------------------------------------------------
 * Work runs at once here, so streams and events only keep their bookkeeping:
 * which stream each thread chose, and a fake clock for elapsed times. */

typedef struct fake_event { int device, recorded; double at_ms; } fake_event;
static _Thread_local void *chosen[DEVICES];
static double fake_clock_ms;

static void *stream_create(int device) { (void)device; return malloc(16); }
static int stream_destroy(int device, void *s) {
  if (chosen[device] == s) chosen[device] = NULL;
  free(s);
  return 0;
}
static int stream_synchronize(int device, void *s) { (void)device, (void)s; return 0; }
static int stream_query(int device, void *s) { (void)device, (void)s; return 1; }
static int set_stream(int device, void *s) {
  if (device < 0 || device >= DEVICES) {
    set_error("cuda_set_stream: device %d out of range", device);
    return -1;
  }
  chosen[device] = s;
  return 0;
}
static int stream_wait_event(int device, void *s, void *e) { (void)device, (void)s, (void)e; return 0; }
static void *event_create(int device, int timing) {
  (void)timing;
  fake_event *e = calloc(1, sizeof *e);
  if (e) e->device = device;
  return e;
}
static int event_destroy(int device, void *e) { (void)device, free(e); return 0; }
static int event_record(int device, void *e, void *s) {
  (void)device, (void)s;
  fake_event *ev = e;
  ev->recorded = 1, ev->at_ms = fake_clock_ms += 1.5; /* each record 1.5 "ms" later */
  return 0;
}
static int event_synchronize(int device, void *e) { (void)device, (void)e; return 0; }
static int event_query(int device, void *e) { (void)device; return ((fake_event *)e)->recorded; }
static int event_elapsed_ms(int device, void *a, void *b, float *ms) {
  (void)device;
  fake_event *s = a, *e = b;
  if (!s->recorded || !e->recorded) {
    set_error("cuda_event_elapsed: an event was never recorded");
    return -1;
  }
  *ms = (float)(e->at_ms - s->at_ms);
  return 0;
}
static int pinned_live; /* blocks out: the test checks each comes back */
static void *host_alloc(size_t n) {
  void *p = aligned_alloc(64, (n + 63) / 64 * 64);
  if (p) __atomic_add_fetch(&pinned_live, 1, __ATOMIC_RELAXED);
  return p;
}
static void host_free(void *p) {
  __atomic_sub_fetch(&pinned_live, 1, __ATOMIC_RELAXED);
  free(p);
}
/* For test_cuda_dispatch: pinned blocks not yet freed. */
__attribute__((visibility("default"))) int fake_cuda_pinned_live(void) { return pinned_live; }

/* ---- sort ---------------------------------------------------------------------------------
 * Keys ordered as ops_sort.c orders values (NaN largest, -0 as +0), sorted
 * with the position as the tie-break: a stable sort. */

typedef struct sort_pair { double key; int nan; int64_t pos; } sort_pair;
static int sort_desc;
static int pair_cmp(const void *a, const void *b) {
  const sort_pair *x = a, *y = b;
  int c = x->nan != y->nan ? (x->nan ? 1 : -1) : x->key < y->key ? -1 : x->key > y->key ? 1 : 0;
  if (sort_desc) c = -c;
  return c ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

static int sort_rows(int device, const bk_sort *s) {
  (void)device;
  sort_pair *row = malloc(sizeof *row * (size_t)(s->L + 1));
  if (!row) return -1;
  sort_desc = s->descending;
  for (int64_t r = 0; r < s->rows; r++) {
    for (int64_t j = 0; j < s->L; j++) {
      double v = is_int(s->dtype) ? (double)ld_int(H(s->keys) + (r * s->L + j) * size_of(s->dtype), s->dtype)
                                  : ldi(s->keys, s->dtype, r * s->L + j);
      row[j] = (sort_pair){v == 0 ? 0 : v, v != v, j};
    }
    qsort(row, (size_t)s->L, sizeof *row, pair_cmp);
    for (int64_t j = 0; j < s->k; j++) ((int64_t *)H(s->idx))[r * s->k + j] = row[j].pos;
  }
  free(row);
  return 0;
}

__attribute__((visibility("default"))) int fastc_cuda_plugin_init(const bk_host *host, fc_backend *vt,
                                                                   char *why, size_t n) {
  if (getenv("FAKE_CUDA_FAIL")) { /* lets a test see a plugin that refuses to start */
    snprintf(why, n, "fake plugin: %s", getenv("FAKE_CUDA_FAIL"));
    return -1;
  }
  set_error = host->set_error;
  allocator = ca_create((ca_device_ops){dev_malloc, dev_free, NULL}, DEVICES);
  *vt = (fc_backend){BK_ABI_VERSION, count, sync_dev, info, alloc, release, copy_mem, stats, empty,
                     fill, copy, elementwise, reduce, gemm, softmax, xent_forward, xent_backward,
                     sgd, adam, conv_forward, conv_backward_data, conv_backward_filter,
                     pool_forward, pool_backward, bn_forward, bn_backward, index_walk, random_draw,
                     dropout_forward, dropout_backward, stream_create, stream_destroy, stream_synchronize,
                     stream_query, set_stream, stream_wait_event, event_create, event_destroy, event_record,
                     event_synchronize, event_query, event_elapsed_ms, host_alloc, host_free, sort_rows};
  return 0;
}
