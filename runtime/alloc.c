/* alloc.c — CPU memory: a small caching allocator and live-byte accounting.
 *
 * Why cache: a fresh 64 MB malloc is an mmap whose pages fault in on first
 * touch, which costs as much as the elementwise op that fills them. Training
 * loops allocate the same sizes every step, so freed large blocks are kept in
 * a bounded list and handed back on an exact size match.
 *
 * Why count: the Lua GC cannot see C memory. fc_bytes_since_mark() tells the
 * binding how much tensor memory appeared since its last GC step. */
#include "backend.h"
#include <pthread.h>
#include <stdlib.h>

enum { ALIGN = 64, CACHE_SLOTS = 32 };
static const size_t CACHE_MIN_BLOCK = 1 << 16;       /* smaller blocks: malloc is fast */
static const size_t CACHE_MAX_BYTES = (size_t)256 << 20; /* bound on idle cached memory */

typedef struct block { void *ptr; size_t nbytes; } block;

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static block cache[CACHE_SLOTS];
static int cache_count;
static size_t cache_bytes;

static int64_t live_bytes[2];
static int64_t allocated_since_mark;

static size_t round_up(size_t n) { return (n + ALIGN - 1) / ALIGN * ALIGN; }

static void *cache_take(size_t nbytes) {
  void *p = NULL;
  pthread_mutex_lock(&cache_lock);
  for (int i = cache_count - 1; i >= 0; i--) {
    if (cache[i].nbytes != nbytes) continue;
    p = cache[i].ptr;
    cache_bytes -= nbytes;
    cache[i] = cache[--cache_count];
    break;
  }
  pthread_mutex_unlock(&cache_lock);
  return p;
}

/* Keeps the block unless the cache is full; then the oldest block goes. */
static void cache_put(void *p, size_t nbytes) {
  void *evict[CACHE_SLOTS];
  int nevict = 0;
  pthread_mutex_lock(&cache_lock);
  while (cache_count > 0 && (cache_count == CACHE_SLOTS || cache_bytes + nbytes > CACHE_MAX_BYTES)) {
    evict[nevict++] = cache[0].ptr;
    cache_bytes -= cache[0].nbytes;
    memmove(cache, cache + 1, (size_t)(--cache_count) * sizeof *cache);
  }
  if (nbytes <= CACHE_MAX_BYTES) {
    cache[cache_count++] = (block){p, nbytes};
    cache_bytes += nbytes;
    p = NULL;
  }
  pthread_mutex_unlock(&cache_lock);
  for (int i = 0; i < nevict; i++) free(evict[i]);
  free(p);
}

void *cpu_alloc(size_t nbytes) {
  nbytes = round_up(nbytes ? nbytes : 1);
  void *p = nbytes >= CACHE_MIN_BLOCK ? cache_take(nbytes) : NULL;
  if (!p) p = aligned_alloc(ALIGN, nbytes);
  if (!p) return NULL;
  __atomic_add_fetch(&live_bytes[FC_CPU], (int64_t)nbytes, __ATOMIC_RELAXED);
  __atomic_add_fetch(&allocated_since_mark, (int64_t)nbytes, __ATOMIC_RELAXED);
  return p;
}

void cpu_free(void *p, size_t nbytes) {
  if (!p) return;
  nbytes = round_up(nbytes ? nbytes : 1);
  __atomic_sub_fetch(&live_bytes[FC_CPU], (int64_t)nbytes, __ATOMIC_RELAXED);
  if (nbytes >= CACHE_MIN_BLOCK) cache_put(p, nbytes);
  else free(p);
}

void fc_empty_cache(void) {
  pthread_mutex_lock(&cache_lock);
  for (int i = 0; i < cache_count; i++) free(cache[i].ptr);
  cache_count = 0;
  cache_bytes = 0;
  pthread_mutex_unlock(&cache_lock);
}

int64_t fc_live_bytes(int device_type) {
  if (device_type < 0 || device_type > 1) return 0;
  return __atomic_load_n(&live_bytes[device_type], __ATOMIC_RELAXED);
}

int64_t fc_bytes_since_mark(void) {
  return __atomic_load_n(&allocated_since_mark, __ATOMIC_RELAXED);
}

void fc_mem_mark(void) { __atomic_store_n(&allocated_since_mark, 0, __ATOMIC_RELAXED); }

/* ---- small objects ----------------------------------------------------
 * Tiny tensors are what per-op latency is made of: a header, a storage and
 * a few bytes of data. Both come from free lists, and the data of
 * a small storage lives inside its own block, so a 1-element op allocates
 * nothing from malloc in the steady state. */

/* Under AddressSanitizer nothing is pooled, so leaks are reported where the
 * leaked object was really made (a pooled block keeps its first site). */
#ifdef __SANITIZE_ADDRESS__
enum { SMALL_DATA = 256, STORAGE_BLOCK = 64 + SMALL_DATA, POOL_MAX = 0 };
#else
enum { SMALL_DATA = 256, STORAGE_BLOCK = 64 + SMALL_DATA, POOL_MAX = 1024 };
#endif

/* Shared by all threads (a tensor may die on another thread than the one
 * that made it); the lock is uncontended in practice. */
typedef struct pool { pthread_mutex_t lock; void *items[POOL_MAX + 1]; int n; } pool;
static pool header_pool = {PTHREAD_MUTEX_INITIALIZER}, storage_pool = {PTHREAD_MUTEX_INITIALIZER};

static void *pool_take(pool *p, size_t size) {
  void *item = NULL;
  pthread_mutex_lock(&p->lock);
  if (p->n > 0) item = p->items[--p->n];
  pthread_mutex_unlock(&p->lock);
  return item ? item : aligned_alloc(ALIGN, size);
}

static void pool_give(pool *p, void *item) {
  pthread_mutex_lock(&p->lock);
  bool kept = p->n < POOL_MAX;
  if (kept) p->items[p->n++] = item;
  pthread_mutex_unlock(&p->lock);
  if (!kept) free(item);
}

fc_tensor *header_alloc(void) {
  fc_tensor *t = pool_take(&header_pool, (sizeof(fc_tensor) + ALIGN - 1) / ALIGN * ALIGN);
  if (t) memset(t, 0, sizeof *t);
  return t;
}

void header_free(fc_tensor *t) {
  if (t) pool_give(&header_pool, t);
}

static char *inline_data(fc_storage *s) { return (char *)s + 64; }

/* GPU memory comes from the plugin's caching allocator; the header stays here. */
static fc_storage *device_storage_new(size_t nbytes, fc_device dev) {
  fc_storage *s = malloc(sizeof *s);
  void *data = s ? backend_alloc(dev, nbytes) : NULL;
  if (!data) {
    free(s);
    if (!s) fc_set_error("alloc: out of memory for a storage header");
    return NULL;
  }
  __atomic_add_fetch(&live_bytes[FC_CUDA], (int64_t)nbytes, __ATOMIC_RELAXED);
  __atomic_add_fetch(&allocated_since_mark, (int64_t)nbytes, __ATOMIC_RELAXED);
  *s = (fc_storage){.data = data, .nbytes = nbytes, .refcount = 1, .device = dev};
  return s;
}

fc_storage *storage_new(size_t nbytes, fc_device dev) {
  if (dev.type != FC_CPU) return device_storage_new(nbytes, dev);
  bool small = nbytes <= SMALL_DATA;
  fc_storage *s = small ? pool_take(&storage_pool, STORAGE_BLOCK) : malloc(sizeof *s);
  void *data = !s ? NULL : small ? inline_data(s) : cpu_alloc(nbytes);
  if (!data) {
    if (s && !small) free(s);
    fc_set_error("alloc: out of memory allocating %zu bytes", nbytes);
    return NULL;
  }
  if (small) {
    __atomic_add_fetch(&live_bytes[FC_CPU], (int64_t)SMALL_DATA, __ATOMIC_RELAXED);
    __atomic_add_fetch(&allocated_since_mark, (int64_t)SMALL_DATA, __ATOMIC_RELAXED);
  }
  *s = (fc_storage){.data = data, .nbytes = nbytes, .refcount = 1, .device = dev};
  return s;
}

/* A CPU storage over page-locked memory from the CUDA plugin (fc_pin_memory);
 * storage_release gives it back through backend_host_free. */
fc_storage *storage_wrap_pinned(void *data, size_t nbytes) {
  fc_storage *s = malloc(sizeof *s);
  if (!s) FAIL("pin_memory: out of memory for a storage header");
  __atomic_add_fetch(&live_bytes[FC_CPU], (int64_t)nbytes, __ATOMIC_RELAXED);
  *s = (fc_storage){.data = data, .nbytes = nbytes, .refcount = 1, .device = {FC_CPU, 0}, .pinned = 1};
  return s;
}

void storage_release(fc_storage *s) {
  if (!s || __atomic_sub_fetch(&s->refcount, 1, __ATOMIC_ACQ_REL) > 0) return;
  if (s->device.type != FC_CPU) {
    __atomic_sub_fetch(&live_bytes[FC_CUDA], (int64_t)s->nbytes, __ATOMIC_RELAXED);
    backend_free(s->device, s->data);
    free(s);
    return;
  }
  if (s->pinned) { /* fc_pin_memory: the plugin's page-locked memory */
    __atomic_sub_fetch(&live_bytes[FC_CPU], (int64_t)s->nbytes, __ATOMIC_RELAXED);
    backend_host_free(s->data);
    free(s);
    return;
  }
  if (s->data == inline_data(s)) {
    __atomic_sub_fetch(&live_bytes[FC_CPU], (int64_t)SMALL_DATA, __ATOMIC_RELAXED);
    pool_give(&storage_pool, s);
    return;
  }
  cpu_free(s->data, s->nbytes);
  free(s);
}
