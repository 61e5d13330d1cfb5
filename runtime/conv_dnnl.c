/* conv_dnnl.c — float32 convolution through oneDNN: forward (bias fused),
 * backward data, backward weights (bias gradient fused).
 *
 * Making a oneDNN primitive costs far more than running a small one (it
 * picks an implementation and JIT-compiles it), so primitives live in a
 * small cache keyed by everything they depend on: direction, geometry,
 * bias, and the OpenMP thread count the kernel was generated for. Entries
 * are reference counted, so one thread may evict an entry another is still
 * running; the last user frees it. Everything left is freed at exit.
 *
 * Layouts: the caller's tensors are plain NCHW / OIHW. Letting oneDNN pick
 * its blocked layouts (format "any") costs a reorder in and out per call;
 * which wins was decided by measurement (`backend` below), and any
 * reorder a primitive needs is made and cached with it.
 *
 * Algorithm "auto" lets oneDNN use Winograd (F(4x4,3x3)) for large-batch
 * stride-1 3x3 layers: about 1.4-1.7x less CPU time than its direct kernels
 * on the ResNet's 3x3 layers, at a float32 error still well under 1e-4.
 *
 * oneDNN declines a trailing padding below -(stride - 1), which a transpose
 * gets when output_padding - padding >= stride (allowed while output_padding
 * is smaller than the dilation); build() fails and im2col takes the case.
 *
 * Threads: this oneDNN is built on the same OpenMP runtime as fastc
 * (libgomp), and sizes its parallel regions from omp_get_max_threads(), which
 * fc_set_num_threads / FASTC_NUM_THREADS set: one pool, no oversubscription. */
#include "internal.h"
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* oneDNN's own blocked layouts (format "any") plus reorders in and out
 * took 1.2-3.5x less CPU time than its kernels on plain NCHW for the
 * benchmark models' layers (bench/conv_layers.lua, one thread, forward and
 * backward),
 * so CONV_DNNL means blocked and CONV_DNNL_PLAIN the plain layouts. */
static int backend = CONV_DNNL;

/* Winograd F(4x4,3x3) works on 4x4 output tiles: on small feature maps
 * most of each tile is padding. On xresnet18's layers at 32 px, batch 64,
 * one thread (forward + both backwards, ONEDNN_VERBOSE times), Winograd
 * took 6x the direct kernels' time on the 1x1 maps and 1.4x on the 2x2
 * ones, but 0.8x on 4x4 and 0.5-0.7x on 8x8 and 16x16. So "auto" (Winograd
 * where oneDNN finds it applicable) only from wino_min_pixels output pixels
 * up; FASTC_WINO_MIN overrides it for benchmarks. */
static int64_t wino_min_pixels = 16;

enum { CACHE_SLOTS = 64, MAX_ARGS = 4 };
enum { FWD, BWD_DATA, BWD_WEIGHTS };

typedef struct key {
  int dir, bias, nthreads, plain;
  conv_geom g;
} key;

/* One tensor argument: the caller's plain layout, the primitive's, and the
 * reorder between them (user -> inner for inputs, inner -> user for outputs)
 * when they differ. */
typedef struct slot {
  int arg;
  bool out;
  dnnl_memory_desc_t user, inner;
  dnnl_primitive_t reorder;
} slot;

typedef struct entry {
  key k;
  int refs; /* the cache's reference plus one per running call */
  uint64_t last_use;
  dnnl_primitive_t prim;
  int nslots;
  slot s[MAX_ARGS];
} entry;

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static dnnl_engine_t engine;
static entry *cache[CACHE_SLOTS];
static uint64_t use_clock;

static void entry_free(entry *e) {
  if (!e) return;
  for (int i = 0; i < e->nslots; i++)
    if (e->s[i].reorder) dnnl_primitive_destroy(e->s[i].reorder);
  if (e->prim) dnnl_primitive_destroy(e->prim);
  free(e);
}

static void entry_unref(entry *e) {
  pthread_mutex_lock(&cache_lock);
  bool last = --e->refs == 0;
  pthread_mutex_unlock(&cache_lock);
  if (last) entry_free(e);
}

static void free_all(void) {
  for (int i = 0; i < CACHE_SLOTS; i++)
    if (cache[i]) entry_unref(cache[i]), cache[i] = NULL;
  if (engine) dnnl_engine_destroy(engine), engine = NULL;
}

/* The environment picks the backend for benchmarks that compare them. */
static void init(void) {
  const char *layout = getenv("FASTC_DNNL_LAYOUT"), *name = getenv("FASTC_CONV_BACKEND");
  const char *wino_min = getenv("FASTC_WINO_MIN");
  if (layout && !strcmp(layout, "nchw")) backend = CONV_DNNL_PLAIN;
  if (name && !strcmp(name, "im2col")) backend = CONV_IM2COL;
  if (wino_min) wino_min_pixels = atoll(wino_min);
  if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) engine = NULL;
  atexit(free_all);
}

/* ---- building a primitive ------------------------------------------------ */

/* dims as a full dnnl_dims_t: the header declares the parameter that way. */
static void md(dnnl_memory_desc_t *d, int ndims, const int64_t *dims, dnnl_format_tag_t tag) {
  dnnl_dims_t full = {0};
  memcpy(full, dims, (size_t)ndims * sizeof *dims);
  dnnl_memory_desc_init_by_tag(d, ndims, full, dnnl_f32, tag);
}

/* The weights as oneDNN sees them: [G, Co/G, C/G, kh, kw] when grouped. */
static void weights_md(dnnl_memory_desc_t *d, const conv_geom *g, bool any) {
  int64_t G = g->groups;
  if (G == 1) md(d, 4, (int64_t[]){g->Co, g->C, g->kh, g->kw}, any ? dnnl_format_tag_any : dnnl_oihw);
  else md(d, 5, (int64_t[]){G, g->Co / G, g->C / G, g->kh, g->kw}, any ? dnnl_format_tag_any : dnnl_goihw);
}

/* The padding after the last window, so that Ho windows fit exactly; smaller
 * than the leading padding (even negative) when stride leaves a remainder or
 * a transpose has output padding. */
static int64_t pad_after(int64_t in, int64_t out, int64_t k, int s, int p, int d) {
  return (out - 1) * s + (k - 1) * d + 1 - in - p;
}

static dnnl_status_t make_reorder(slot *s) {
  if (dnnl_memory_desc_equal(&s->user, &s->inner)) return dnnl_success;
  const dnnl_memory_desc_t *from = s->out ? &s->inner : &s->user, *to = s->out ? &s->user : &s->inner;
  dnnl_primitive_desc_t pd;
  dnnl_status_t st = dnnl_reorder_primitive_desc_create(&pd, from, engine, to, engine, NULL);
  if (st != dnnl_success) return st;
  st = dnnl_primitive_create(&s->reorder, pd);
  dnnl_primitive_desc_destroy(pd);
  return st;
}

/* `index` 1 of the (diff) weights query is the bias. */
static void add_slot(entry *e, int arg, bool out, const dnnl_memory_desc_t *user, dnnl_primitive_desc_t pd,
                     dnnl_query_t what, int index) {
  slot *s = &e->s[e->nslots++];
  s->arg = arg, s->out = out, s->user = *user, s->inner = *dnnl_primitive_desc_query_md(pd, what, index);
}

static dnnl_alg_kind_t algorithm_for(const conv_geom *g) {
  return g->Ho * g->Wo >= wino_min_pixels ? dnnl_convolution_auto : dnnl_convolution_direct;
}

/* Creates the primitive (and reorders) for e->k; false if oneDNN declines. */
static bool build(entry *e) {
  const conv_geom *g = &e->k.g;
  bool any = !e->k.plain;
  dnnl_memory_desc_t src, dst, wei, bias, usrc, udst, uwei;
  md(&usrc, 4, (int64_t[]){g->N, g->C, g->H, g->W}, dnnl_nchw);
  md(&udst, 4, (int64_t[]){g->N, g->Co, g->Ho, g->Wo}, dnnl_nchw);
  weights_md(&uwei, g, false);
  src = usrc, dst = udst, wei = uwei;
  if (any) {
    md(&src, 4, usrc.dims, dnnl_format_tag_any);
    md(&dst, 4, udst.dims, dnnl_format_tag_any);
    weights_md(&wei, g, true);
  }
  md(&bias, 1, (int64_t[]){g->Co}, dnnl_a);
  const dnnl_memory_desc_t *b = e->k.bias ? &bias : NULL;
  dnnl_dims_t strides = {g->sh, g->sw}, dil = {g->dh - 1, g->dw - 1}, pl = {g->ph, g->pw};
  dnnl_dims_t pr = {pad_after(g->H, g->Ho, g->kh, g->sh, g->ph, g->dh),
                    pad_after(g->W, g->Wo, g->kw, g->sw, g->pw, g->dw)};
  dnnl_convolution_desc_t fd, bd;
  dnnl_primitive_desc_t fwd = NULL, pd = NULL;
  dnnl_alg_kind_t alg = algorithm_for(g);
  if (dnnl_dilated_convolution_forward_desc_init(&fd, dnnl_forward_training, alg, &src, &wei,
                                                 b, &dst, strides, dil, pl, pr) != dnnl_success ||
      dnnl_primitive_desc_create(&fwd, &fd, NULL, engine, NULL) != dnnl_success)
    return false;
  dnnl_status_t st = dnnl_success;
  if (e->k.dir == FWD) {
    pd = fwd, fwd = NULL;
    add_slot(e, DNNL_ARG_SRC, false, &usrc, pd, dnnl_query_src_md, 0);
    add_slot(e, DNNL_ARG_WEIGHTS, false, &uwei, pd, dnnl_query_weights_md, 0);
    add_slot(e, DNNL_ARG_DST, true, &udst, pd, dnnl_query_dst_md, 0);
    if (b) add_slot(e, DNNL_ARG_BIAS, false, &bias, pd, dnnl_query_weights_md, 1);
  } else if (e->k.dir == BWD_DATA) {
    st = dnnl_dilated_convolution_backward_data_desc_init(&bd, alg, &src, &wei, &dst, strides,
                                                          dil, pl, pr);
    if (st == dnnl_success) st = dnnl_primitive_desc_create(&pd, &bd, NULL, engine, fwd);
    if (st == dnnl_success) {
      add_slot(e, DNNL_ARG_DIFF_DST, false, &udst, pd, dnnl_query_diff_dst_md, 0);
      add_slot(e, DNNL_ARG_WEIGHTS, false, &uwei, pd, dnnl_query_weights_md, 0);
      add_slot(e, DNNL_ARG_DIFF_SRC, true, &usrc, pd, dnnl_query_diff_src_md, 0);
    }
  } else {
    st = dnnl_dilated_convolution_backward_weights_desc_init(&bd, alg, &src, &wei, b, &dst,
                                                             strides, dil, pl, pr);
    if (st == dnnl_success) st = dnnl_primitive_desc_create(&pd, &bd, NULL, engine, fwd);
    if (st == dnnl_success) {
      add_slot(e, DNNL_ARG_SRC, false, &usrc, pd, dnnl_query_src_md, 0);
      add_slot(e, DNNL_ARG_DIFF_DST, false, &udst, pd, dnnl_query_diff_dst_md, 0);
      add_slot(e, DNNL_ARG_DIFF_WEIGHTS, true, &uwei, pd, dnnl_query_diff_weights_md, 0);
      if (b) add_slot(e, DNNL_ARG_DIFF_BIAS, true, &bias, pd, dnnl_query_diff_weights_md, 1);
    }
  }
  if (st == dnnl_success) st = dnnl_primitive_create(&e->prim, pd);
  for (int i = 0; i < e->nslots && st == dnnl_success; i++) st = make_reorder(&e->s[i]);
  if (fwd) dnnl_primitive_desc_destroy(fwd);
  if (pd) dnnl_primitive_desc_destroy(pd);
  return st == dnnl_success;
}

/* ---- the cache ------------------------------------------------------------ */

/* A referenced entry for k, built on a miss; NULL if oneDNN declines. */
static entry *acquire(const key *k) {
  pthread_mutex_lock(&cache_lock);
  for (int i = 0; i < CACHE_SLOTS; i++)
    if (cache[i] && !memcmp(&cache[i]->k, k, sizeof *k)) {
      entry *e = cache[i];
      e->refs++, e->last_use = ++use_clock;
      pthread_mutex_unlock(&cache_lock);
      return e;
    }
  pthread_mutex_unlock(&cache_lock);
  entry *e = calloc(1, sizeof *e); /* built outside the lock: it takes milliseconds */
  if (!e) return NULL;
  e->k = *k;
  if (!build(e)) {
    entry_free(e);
    return NULL;
  }
  pthread_mutex_lock(&cache_lock);
  int victim = 0;
  for (int i = 0; i < CACHE_SLOTS; i++) {
    if (!cache[i]) { victim = i; break; }
    if (cache[i]->last_use < cache[victim]->last_use) victim = i;
  }
  entry *old = cache[victim];
  bool free_old = old && --old->refs == 0;
  cache[victim] = e;
  e->refs = 2, e->last_use = ++use_clock;
  pthread_mutex_unlock(&cache_lock);
  if (free_old) entry_free(old);
  return e;
}

/* ---- running one ---------------------------------------------------------- */

static int run(entry *e, void *const *ptrs) {
  dnnl_stream_t stream = NULL;
  dnnl_memory_t user[MAX_ARGS] = {0}, inner[MAX_ARGS] = {0};
  void *scratch[MAX_ARGS] = {0};
  size_t scratch_bytes[MAX_ARGS] = {0};
  dnnl_exec_arg_t args[MAX_ARGS];
  dnnl_status_t st = dnnl_stream_create(&stream, engine, dnnl_stream_default_flags);
  for (int i = 0; i < e->nslots && st == dnnl_success; i++) {
    slot *s = &e->s[i];
    st = dnnl_memory_create(&user[i], &s->user, engine, ptrs[i]);
    if (st == dnnl_success && s->reorder) {
      scratch_bytes[i] = dnnl_memory_desc_get_size(&s->inner);
      scratch[i] = cpu_alloc(scratch_bytes[i]);
      st = scratch[i] ? dnnl_memory_create(&inner[i], &s->inner, engine, scratch[i]) : dnnl_out_of_memory;
    }
    if (st == dnnl_success && s->reorder && !s->out)
      st = dnnl_primitive_execute(s->reorder, stream, 2,
                                  (dnnl_exec_arg_t[]){{DNNL_ARG_FROM, user[i]}, {DNNL_ARG_TO, inner[i]}});
    args[i] = (dnnl_exec_arg_t){s->arg, s->reorder ? inner[i] : user[i]};
  }
  if (st == dnnl_success) st = dnnl_primitive_execute(e->prim, stream, e->nslots, args);
  for (int i = 0; i < e->nslots && st == dnnl_success; i++)
    if (e->s[i].reorder && e->s[i].out)
      st = dnnl_primitive_execute(e->s[i].reorder, stream, 2,
                                  (dnnl_exec_arg_t[]){{DNNL_ARG_FROM, inner[i]}, {DNNL_ARG_TO, user[i]}});
  if (stream) {
    if (st == dnnl_success) st = dnnl_stream_wait(stream);
    dnnl_stream_destroy(stream);
  }
  for (int i = 0; i < e->nslots; i++) {
    if (user[i]) dnnl_memory_destroy(user[i]);
    if (inner[i]) dnnl_memory_destroy(inner[i]);
    if (scratch[i]) cpu_free(scratch[i], scratch_bytes[i]);
  }
  if (st != dnnl_success) FAIL_INT("conv2d: oneDNN failed (status %d)", (int)st);
  return 0;
}

void conv_set_backend(int b) {
  pthread_once(&init_once, init); /* so the environment does not undo it later */
  backend = b;
}

/* 1 when oneDNN declines the case, so the caller takes the im2col path. */
static int conv(int dir, const conv_geom *g, bool bias, void *const *ptrs) {
  pthread_once(&init_once, init);
  if (!engine || backend == CONV_IM2COL) return 1;
  key k;
  memset(&k, 0, sizeof k); /* padding bytes too: keys compare with memcmp */
  k.dir = dir, k.bias = bias, k.plain = backend == CONV_DNNL_PLAIN;
  k.g.N = g->N, k.g.C = g->C, k.g.H = g->H, k.g.W = g->W, k.g.Co = g->Co, k.g.kh = g->kh, k.g.kw = g->kw;
  k.g.Ho = g->Ho, k.g.Wo = g->Wo, k.g.sh = g->sh, k.g.sw = g->sw, k.g.ph = g->ph, k.g.pw = g->pw;
  k.g.dh = g->dh, k.g.dw = g->dw, k.g.groups = g->groups;
  k.nthreads = 1;
#ifdef _OPENMP
  k.nthreads = omp_get_max_threads();
#endif
  entry *e = acquire(&k);
  if (!e) return 1;
  int rc = run(e, ptrs);
  entry_unref(e);
  return rc;
}

int dnnl_conv_forward(const conv_geom *g, const float *x, const float *w, const float *b, float *y) {
  return conv(FWD, g, b != NULL, (void *const[]){(void *)x, (void *)w, y, (void *)b});
}

int dnnl_conv_backward_data(const conv_geom *g, const float *w, const float *gy, float *gx) {
  return conv(BWD_DATA, g, false, (void *const[]){(void *)gy, (void *)w, gx});
}

int dnnl_conv_backward_weights(const conv_geom *g, const float *x, const float *gy, float *gw, float *gb) {
  return conv(BWD_WEIGHTS, g, gb != NULL, (void *const[]){(void *)x, (void *)gy, gw, gb});
}
