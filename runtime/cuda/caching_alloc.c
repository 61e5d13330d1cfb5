/* caching_alloc.c — size classes, per-stream free lists and statistics for
 * GPU memory (see caching_alloc.h).
 *
 * Why cache: cudaMalloc and cudaFree synchronise the device and cost tens of
 * microseconds, while a training step allocates the same few hundred sizes
 * every iteration. Freed blocks are kept and handed back on a later request
 * of the same size class.
 *
 * Why per stream: a block freed by the host may still be in use by kernels
 * queued on its stream. Reusing it for work on the same stream is safe (the
 * stream runs in order); on another stream it is not. So each (device,
 * stream) has its own free list.
 *
 * Size classes: multiples of 512 bytes below 1 MiB; above, the quarter
 * steps between powers of two (1, 1.25, 1.5, 1.75 MiB, 2, 2.5, ...), which
 * wastes at most a fifth of a block and lets varying batch shapes share. */
#include "caching_alloc.h"
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

enum { SMALL_ROUND = 512, HASH_BUCKETS = 4096, MAX_POOLS = 64 };
static const size_t SMALL_LIMIT = (size_t)1 << 20;

typedef struct block {
  void *ptr;
  size_t size; /* its size class */
  int device;
  void *stream;
  struct block *next; /* in a free list, or in a hash chain while live */
} block;

typedef struct pool { void *stream; block *free; } pool; /* one stream's cache */

typedef struct device_state {
  pool pools[MAX_POOLS];
  int npools;
  fc_cuda_mem_stats stats;
} device_state;

struct caching_allocator {
  ca_device_ops ops;
  int ndevices;
  pthread_mutex_t lock;
  block *live[HASH_BUCKETS];
  device_state dev[CA_MAX_DEVICES];
};

size_t ca_size_class(size_t n) {
  if (n < SMALL_LIMIT) return n == 0 ? SMALL_ROUND : (n + SMALL_ROUND - 1) / SMALL_ROUND * SMALL_ROUND;
  if (n > ((size_t)1 << 62)) return n; /* no device has that; let its malloc say no */
  size_t pow2 = SMALL_LIMIT;
  while (pow2 * 2 <= n && pow2 * 2 > pow2) pow2 *= 2;
  size_t step = pow2 / 4;
  return (n + step - 1) / step * step; /* pow2 * {1, 1.25, 1.5, 1.75, 2} */
}

static size_t hash_ptr(const void *p) {
  uintptr_t x = (uintptr_t)p >> 9; /* blocks are at least 512-byte aligned */
  x ^= x >> 17;
  x *= 0x9E3779B97F4A7C15ull;
  return (size_t)(x >> 40) % HASH_BUCKETS;
}

caching_allocator *ca_create(ca_device_ops ops, int ndevices) {
  if (ndevices < 0 || ndevices > CA_MAX_DEVICES) return NULL;
  caching_allocator *ca = calloc(1, sizeof *ca);
  if (!ca) return NULL;
  ca->ops = ops;
  ca->ndevices = ndevices;
  pthread_mutex_init(&ca->lock, NULL);
  return ca;
}

static pool *pool_of(device_state *d, void *stream, bool create) {
  for (int i = 0; i < d->npools; i++)
    if (d->pools[i].stream == stream) return &d->pools[i];
  if (!create || d->npools == MAX_POOLS) return NULL;
  d->pools[d->npools] = (pool){stream, NULL};
  return &d->pools[d->npools++];
}

static block *take_cached(pool *p, size_t size) {
  for (block **b = p ? &p->free : NULL; b && *b; b = &(*b)->next)
    if ((*b)->size == size) {
      block *found = *b;
      *b = found->next;
      return found;
    }
  return NULL;
}

/* Releases one device's cached blocks; the lock is held. */
static void release_cached(caching_allocator *ca, int device) {
  device_state *d = &ca->dev[device];
  for (int i = 0; i < d->npools; i++) {
    block *b = d->pools[i].free;
    while (b) {
      block *next = b->next;
      ca->ops.free(ca->ops.ctx, device, b->ptr);
      d->stats.reserved_bytes -= (int64_t)b->size;
      d->stats.num_device_frees++;
      free(b);
      b = next;
    }
    d->pools[i].free = NULL;
  }
  d->stats.cached_bytes = d->stats.reserved_bytes - d->stats.allocated_bytes;
}

/* A fresh block from the device, emptying the cache once if it is full. */
static block *device_block(caching_allocator *ca, int device, void *stream, size_t size) {
  device_state *d = &ca->dev[device];
  block *b = malloc(sizeof *b);
  if (!b) return NULL;
  void *ptr = ca->ops.malloc(ca->ops.ctx, device, size);
  if (!ptr) {
    d->stats.num_oom_retries++;
    release_cached(ca, device);
    ptr = ca->ops.malloc(ca->ops.ctx, device, size);
  }
  if (!ptr) {
    free(b);
    return NULL;
  }
  *b = (block){ptr, size, device, stream, NULL};
  d->stats.reserved_bytes += (int64_t)size;
  d->stats.num_device_mallocs++;
  if (d->stats.reserved_bytes > d->stats.peak_reserved_bytes)
    d->stats.peak_reserved_bytes = d->stats.reserved_bytes;
  return b;
}

void *ca_alloc(caching_allocator *ca, int device, void *stream, size_t nbytes) {
  if (!ca || device < 0 || device >= ca->ndevices) return NULL;
  size_t size = ca_size_class(nbytes);
  pthread_mutex_lock(&ca->lock);
  device_state *d = &ca->dev[device];
  block *b = take_cached(pool_of(d, stream, false), size);
  if (b) d->stats.num_cache_hits++;
  else if (pool_of(d, stream, true)) b = device_block(ca, device, stream, size);
  if (b) {
    size_t h = hash_ptr(b->ptr);
    b->next = ca->live[h];
    ca->live[h] = b;
    d->stats.num_allocs++;
    d->stats.allocated_bytes += (int64_t)size;
    if (d->stats.allocated_bytes > d->stats.peak_allocated_bytes)
      d->stats.peak_allocated_bytes = d->stats.allocated_bytes;
    d->stats.cached_bytes = d->stats.reserved_bytes - d->stats.allocated_bytes;
  }
  pthread_mutex_unlock(&ca->lock);
  return b ? b->ptr : NULL;
}

int ca_free(caching_allocator *ca, void *ptr) {
  if (!ca || !ptr) return -1;
  pthread_mutex_lock(&ca->lock);
  block **link = &ca->live[hash_ptr(ptr)];
  while (*link && (*link)->ptr != ptr) link = &(*link)->next;
  block *b = *link;
  if (b) {
    *link = b->next;
    device_state *d = &ca->dev[b->device];
    pool *p = pool_of(d, b->stream, false); /* made when the block was */
    b->next = p->free;
    p->free = b;
    d->stats.num_frees++;
    d->stats.allocated_bytes -= (int64_t)b->size;
    d->stats.cached_bytes = d->stats.reserved_bytes - d->stats.allocated_bytes;
  }
  pthread_mutex_unlock(&ca->lock);
  return b ? 0 : -1;
}

void ca_empty_cache(caching_allocator *ca, int device) {
  if (!ca) return;
  pthread_mutex_lock(&ca->lock);
  for (int i = 0; i < ca->ndevices; i++)
    if (device < 0 || device == i) release_cached(ca, i);
  pthread_mutex_unlock(&ca->lock);
}

void ca_stats(caching_allocator *ca, int device, fc_cuda_mem_stats *out) {
  memset(out, 0, sizeof *out);
  if (!ca || device < 0 || device >= ca->ndevices) return;
  pthread_mutex_lock(&ca->lock);
  *out = ca->dev[device].stats;
  pthread_mutex_unlock(&ca->lock);
}

void ca_destroy(caching_allocator *ca) {
  if (!ca) return;
  ca_empty_cache(ca, -1);
  for (int h = 0; h < HASH_BUCKETS; h++) /* live blocks: the memory is the caller's */
    for (block *b = ca->live[h], *next; b; b = next) {
      next = b->next;
      free(b);
    }
  pthread_mutex_destroy(&ca->lock);
  free(ca);
}
