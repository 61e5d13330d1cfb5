/* random.c — Philox 4x32-10, the counter-based generator behind every draw.
 *
 * Counter based means element i of a draw is a pure function of (seed,
 * offset + i): threads fill disjoint ranges with no shared state, the CUDA
 * backend can produce the very same numbers, and each draw just advances the
 * offset. */
#include "backend.h"
#include <pthread.h>

typedef struct { uint32_t v[4]; } philox_block;

static uint64_t gen_seed = 67280421310721ULL;
static uint64_t gen_offset;
static pthread_mutex_t gen_lock = PTHREAD_MUTEX_INITIALIZER;

/* The Random123 round function; exported (not public) for its known-answer test. */
void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3], k0 = key[0], k1 = key[1];
  for (int r = 0; r < 10; r++) {
    uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
    c0 = n0;
    c1 = (uint32_t)p1;
    c2 = n2;
    c3 = (uint32_t)p0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

static philox_block philox(uint64_t seed, uint64_t counter) {
  const uint32_t ctr[4] = {(uint32_t)counter, (uint32_t)(counter >> 32), 0, 0};
  const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
  philox_block b;
  philox4x32_10(ctr, key, b.v);
  return b;
}

void fc_manual_seed(uint64_t seed) {
  pthread_mutex_lock(&gen_lock);
  gen_seed = seed;
  gen_offset = 0;
  pthread_mutex_unlock(&gen_lock);
}

uint64_t fc_initial_seed(void) { return gen_seed; }

/* Reserves `blocks` counters; returns the first. */
static uint64_t take_counters(uint64_t blocks, uint64_t *seed) {
  pthread_mutex_lock(&gen_lock);
  uint64_t first = gen_offset;
  gen_offset += blocks;
  *seed = gen_seed;
  pthread_mutex_unlock(&gen_lock);
  return first;
}

/* (0, 1]: never 0, so log() in Box-Muller is safe. */
static inline double unit_open(uint32_t hi, uint32_t lo) {
  return ((double)(((uint64_t)hi << 21) ^ lo >> 11) + 1.0) * (1.0 / 9007199254740992.0);
}

typedef enum { DRAW_UNIFORM, DRAW_NORMAL, DRAW_INT, DRAW_BERNOULLI } draw_kind;
typedef struct { draw_kind kind; double a, b; } draw;

/* Element i takes lanes (0,1) or (2,3) of block i/2: two 32-bit words each. */
static double draw_one(const draw *d, uint64_t seed, uint64_t first, int64_t i) {
  philox_block blk = philox(seed, first + (uint64_t)i / 2);
  uint32_t w0 = blk.v[(i & 1) * 2], w1 = blk.v[(i & 1) * 2 + 1];
  switch (d->kind) {
  case DRAW_UNIFORM: return d->a + (d->b - d->a) * (1.0 - unit_open(w0, w1));
  case DRAW_BERNOULLI: return (1.0 - unit_open(w0, w1)) < d->a;
  case DRAW_INT: {
    uint64_t range = (uint64_t)(d->b - d->a), x = ((uint64_t)w0 << 32) | w1;
    return d->a + (double)(x % range);
  }
  case DRAW_NORMAL: {
    /* Box-Muller from this block's other pair as the angle. */
    uint32_t w2 = blk.v[((i & 1) * 2 + 2) & 3], w3 = blk.v[((i & 1) * 2 + 3) & 3];
    double r = sqrt(-2.0 * log(unit_open(w0, w1)));
    double z = (i & 1) ? r * sin(2 * M_PI * unit_open(w2, w3)) : r * cos(2 * M_PI * unit_open(w2, w3));
    return d->a + d->b * z;
  }
  }
  return 0;
}

/* On a cuda device: the plugin draws the same stream into a contiguous dst. */
static int fill_device(fc_tensor *dst, draw d, uint64_t seed, uint64_t first) {
  if (dst->numel == 0) return 0;
  bk_random r = {.kind = (int)d.kind, .dtype = dst->dtype, .n = dst->numel, .seed = seed, .first = first,
                 .a = d.a, .b = d.b, .out = elem_ptr(dst)};
  return backend_get()->random(dst->device.index, &r);
}

static int fill_random(const char *op, fc_tensor *t, draw d) {
  if (check_same_device(op, 1, (const fc_tensor *const[]){t}) < 0) return -1;
  if (check_inplace(op, t) < 0) return -1;
  fc_tensor *dst = fc_is_contiguous(t) ? fc_retain(t) : fc_empty(t->ndim, t->shape, t->dtype, t->device);
  if (!dst) return -1;
  uint64_t seed, first = take_counters((uint64_t)(t->numel + 1) / 2, &seed);
  if (t->device.type == FC_CUDA) {
    int previous = grad_mode_push(false);
    int rc = fill_device(dst, d, seed, first);
    if (rc == 0 && dst != t) rc = fc_copy_(t, dst);
    grad_mode_pop(previous);
    fc_release(dst);
    bump_version(t);
    return rc;
  }
  char *p = elem_ptr(dst);
  int es = fc_dtype_size(t->dtype), dtype = t->dtype;
  int64_t n = t->numel;
#pragma omp parallel for if (n > PARALLEL_GRAIN) schedule(static)
  for (int64_t i = 0; i < n; i++) store_from_double(p + i * es, dtype, draw_one(&d, seed, first, i));
  int previous = grad_mode_push(false);
  int rc = dst == t ? 0 : fc_copy_(t, dst);
  grad_mode_pop(previous);
  fc_release(dst);
  bump_version(t);
  return rc;
}

int fc_uniform_(fc_tensor *t, double low, double high) {
  if (!(low <= high)) FAIL_INT("uniform_: low %g must not exceed high %g", low, high);
  return fill_random("uniform_", t, (draw){DRAW_UNIFORM, low, high});
}

int fc_normal_(fc_tensor *t, double mean, double std) {
  if (!(std >= 0)) FAIL_INT("normal_: std must be non-negative, got %g", std);
  return fill_random("normal_", t, (draw){DRAW_NORMAL, mean, std});
}

int fc_bernoulli_(fc_tensor *t, double p) {
  if (!(p >= 0 && p <= 1)) FAIL_INT("bernoulli_: p must be in [0, 1], got %g", p);
  return fill_random("bernoulli_", t, (draw){DRAW_BERNOULLI, p, 0});
}

static fc_tensor *new_random(const char *op, int ndim, const int64_t *shape, int dtype,
                             fc_device dev, draw d) {
  fc_tensor *t = fc_empty(ndim, shape, dtype, dev);
  if (t && fill_random(op, t, d) < 0) {
    fc_release(t);
    return NULL;
  }
  return t;
}

fc_tensor *fc_rand(int ndim, const int64_t *shape, int dtype, fc_device dev) {
  if (!is_float_dtype(dtype)) FAIL("rand: dtype must be a float type, got %s", fc_dtype_name(dtype));
  return new_random("rand", ndim, shape, dtype, dev, (draw){DRAW_UNIFORM, 0, 1});
}

fc_tensor *fc_randn(int ndim, const int64_t *shape, int dtype, fc_device dev) {
  if (!is_float_dtype(dtype)) FAIL("randn: dtype must be a float type, got %s", fc_dtype_name(dtype));
  return new_random("randn", ndim, shape, dtype, dev, (draw){DRAW_NORMAL, 0, 1});
}

fc_tensor *fc_randint(int64_t low, int64_t high, int ndim, const int64_t *shape, int dtype,
                      fc_device dev) {
  if (high <= low) FAIL("randint: high %lld must be greater than low %lld", (long long)high, (long long)low);
  return new_random("randint", ndim, shape, dtype, dev, (draw){DRAW_INT, (double)low, (double)high});
}

fc_tensor *fc_randperm(int64_t n, int dtype, fc_device dev) {
  if (n < 0) FAIL("randperm: n must be non-negative, got %lld", (long long)n);
  if (dev.type != FC_CPU) { /* drawn on the host, like every random op */
    fc_tensor *h = fc_randperm(n, dtype, (fc_device){FC_CPU, 0});
    fc_tensor *t = h ? fc_to_device(h, dev) : NULL;
    fc_release(h);
    return t;
  }
  fc_tensor *t = fc_arange(0, (double)n, 1, FC_INT64, dev);
  if (!t) return NULL;
  int64_t *v = (int64_t *)elem_ptr(t);
  uint64_t seed, first = take_counters((uint64_t)n, &seed);
  for (int64_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
    philox_block b = philox(seed, first + (uint64_t)i);
    int64_t j = (int64_t)((((uint64_t)b.v[0] << 32) | b.v[1]) % (uint64_t)(i + 1));
    int64_t tmp = v[i];
    v[i] = v[j];
    v[j] = tmp;
  }
  if (dtype == FC_INT64) return t;
  fc_tensor *c = fc_to_dtype(t, dtype);
  fc_release(t);
  return c;
}

uint64_t philox_take(uint64_t blocks, uint64_t *seed) { return take_counters(blocks, seed); }

void philox_words(uint64_t seed, uint64_t counter, uint32_t out[4]) {
  philox_block b = philox(seed, counter);
  memcpy(out, b.v, sizeof b.v);
}
