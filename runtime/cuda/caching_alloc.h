/* caching_alloc.h — the host-side bookkeeping of the GPU caching allocator.
 *
 * Plain C with no CUDA in it: the device's malloc and free come in as
 * function pointers, so the same file runs inside libfastc_cuda.so (with
 * cudaMalloc/cudaFree) and in tests/c/test_cuda_alloc.c (with a fake device
 * on the host). */
#ifndef FASTC_CACHING_ALLOC_H
#define FASTC_CACHING_ALLOC_H
#include "fastc.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ca_device_ops {
  void *(*malloc)(void *ctx, int device, size_t nbytes); /* NULL when out of memory */
  void (*free)(void *ctx, int device, void *ptr);
  void *ctx;
} ca_device_ops;

typedef struct caching_allocator caching_allocator;

enum { CA_MAX_DEVICES = 64 };

caching_allocator *ca_create(ca_device_ops ops, int ndevices);
/* Returns every cached block to the device; live blocks are the caller's. */
void ca_destroy(caching_allocator *ca);
/* A block of at least nbytes for work queued on `stream`: a cached block
 * of the same size class freed on the same stream, else a fresh one; when
 * the device is out of memory the device's cache is released and the
 * malloc retried once. NULL when the device has no room even then. */
void *ca_alloc(caching_allocator *ca, int device, void *stream, size_t nbytes);
/* Takes the block back into its stream's cache; -1 if ptr is not live. */
int ca_free(caching_allocator *ca, void *ptr);
/* Returns the device's cached blocks (-1: every device's) to the device. */
void ca_empty_cache(caching_allocator *ca, int device);
void ca_stats(caching_allocator *ca, int device, fc_cuda_mem_stats *out);
/* The size class a request is rounded up to. */
size_t ca_size_class(size_t nbytes);

#ifdef __cplusplus
}
#endif
#endif
