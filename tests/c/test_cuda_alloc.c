/* test_cuda_alloc.c — the GPU caching allocator's bookkeeping (size classes,
 * per-stream reuse, out-of-memory retry, statistics), run on the host with a
 * fake device whose malloc counts calls and has a fixed capacity. The plugin
 * compiles the very same file with cudaMalloc/cudaFree behind it. */
#include "harness.h"
#include "cuda/caching_alloc.c"

/* A device with `capacity` bytes; its pointers are real host blocks. */
typedef struct fake_device {
  size_t capacity, used;
  int mallocs, frees, live;
} fake_device;

static void *fake_malloc(void *ctx, int device, size_t n) {
  fake_device *f = (fake_device *)ctx + device;
  if (f->used + n > f->capacity) return NULL;
  char *p = aligned_alloc(512, n + 512); /* the size sits in front of the block */
  if (!p) return NULL;
  memcpy(p, &n, sizeof n);
  f->used += n, f->mallocs++, f->live++;
  return p + 512;
}

static void fake_free(void *ctx, int device, void *p) {
  fake_device *f = (fake_device *)ctx + device;
  char *base = (char *)p - 512;
  size_t n;
  memcpy(&n, base, sizeof n);
  f->used -= n, f->frees++, f->live--;
  free(base);
}

static fake_device devs[2];
static caching_allocator *make(size_t capacity) {
  memset(devs, 0, sizeof devs);
  devs[0].capacity = devs[1].capacity = capacity;
  return ca_create((ca_device_ops){fake_malloc, fake_free, devs}, 2);
}

static const size_t MiB = (size_t)1 << 20;
static void *const STREAM_A = (void *)0x10, *const STREAM_B = (void *)0x20;

TEST(size_classes) {
  CHECK(ca_size_class(0) == 512);
  CHECK(ca_size_class(1) == 512);
  CHECK(ca_size_class(512) == 512);
  CHECK(ca_size_class(513) == 1024);
  CHECK(ca_size_class(MiB - 1) == MiB);
  CHECK(ca_size_class(MiB) == MiB);
  CHECK(ca_size_class(MiB + 1) == MiB + MiB / 4);
  CHECK(ca_size_class(3 * MiB) == 3 * MiB);          /* 1.5 x 2 MiB */
  CHECK(ca_size_class(5 * MiB) == 5 * MiB);          /* 1.25 x 4 MiB */
  CHECK(ca_size_class(5 * MiB + 1) == 6 * MiB);      /* 1.5 x 4 MiB */
  CHECK(ca_size_class(7 * MiB + 1) == 8 * MiB);      /* past 1.75 x 4 MiB: the next power */
  for (size_t n = 1; n < 300 * MiB; n = n * 3 + 7) { /* never smaller, at most a quarter more */
    size_t c = ca_size_class(n);
    CHECK(c >= n && (c - n) * 4 <= (n < MiB ? 4 * 512 : n));
  }
}

TEST(same_stream_reuses_a_block_of_its_class) {
  caching_allocator *ca = make(64 * MiB);
  void *a = ca_alloc(ca, 0, STREAM_A, 1000);
  CHECK(a != NULL);
  CHECK(ca_free(ca, a) == 0);
  void *b = ca_alloc(ca, 0, STREAM_A, 600); /* 1024 class again */
  CHECK(b == a);
  void *c = ca_alloc(ca, 0, STREAM_A, 2000); /* another class: fresh */
  CHECK(c != a);
  fc_cuda_mem_stats s;
  ca_stats(ca, 0, &s);
  CHECK(s.num_allocs == 3 && s.num_frees == 1 && s.num_cache_hits == 1);
  CHECK(s.num_device_mallocs == 2 && devs[0].mallocs == 2);
  CHECK(s.allocated_bytes == 1024 + 2048 && s.reserved_bytes == 1024 + 2048 && s.cached_bytes == 0);
  ca_free(ca, b), ca_free(ca, c);
  ca_destroy(ca);
  CHECK(devs[0].live == 0 && devs[0].frees == 2);
}

TEST(other_streams_do_not_share_a_freed_block) {
  caching_allocator *ca = make(64 * MiB);
  void *a = ca_alloc(ca, 0, STREAM_A, 4096);
  ca_free(ca, a);
  void *b = ca_alloc(ca, 0, STREAM_B, 4096); /* a may still be in use on stream A */
  CHECK(b != NULL && b != a);
  void *c = ca_alloc(ca, 0, STREAM_A, 4096);
  CHECK(c == a);
  fc_cuda_mem_stats s;
  ca_stats(ca, 0, &s);
  CHECK(s.num_device_mallocs == 2 && s.num_cache_hits == 1);
  ca_free(ca, b), ca_free(ca, c);
  ca_destroy(ca);
  CHECK(devs[0].live == 0);
}

TEST(stats_track_peaks_and_the_cache) {
  caching_allocator *ca = make(64 * MiB);
  void *a = ca_alloc(ca, 0, STREAM_A, 3 * MiB), *b = ca_alloc(ca, 0, STREAM_A, MiB + 1);
  fc_cuda_mem_stats s;
  ca_stats(ca, 0, &s);
  int64_t both = (int64_t)(3 * MiB + MiB + MiB / 4);
  CHECK(s.allocated_bytes == both && s.peak_allocated_bytes == both);
  ca_free(ca, a);
  ca_stats(ca, 0, &s);
  CHECK(s.allocated_bytes == (int64_t)(MiB + MiB / 4) && s.peak_allocated_bytes == both);
  CHECK(s.reserved_bytes == both && s.cached_bytes == (int64_t)(3 * MiB));
  ca_empty_cache(ca, 0); /* only the cached 3 MiB go back */
  ca_stats(ca, 0, &s);
  CHECK(s.reserved_bytes == (int64_t)(MiB + MiB / 4) && s.cached_bytes == 0);
  CHECK(s.peak_reserved_bytes == both && s.num_device_frees == 1 && devs[0].live == 1);
  ca_stats(ca, 1, &s); /* the other device saw nothing */
  CHECK(s.num_allocs == 0 && s.reserved_bytes == 0);
  ca_free(ca, b);
  ca_destroy(ca);
  CHECK(devs[0].live == 0);
}

TEST(out_of_memory_empties_the_cache_and_retries) {
  caching_allocator *ca = make(4 * MiB);
  void *a = ca_alloc(ca, 0, STREAM_A, 3 * MiB);
  ca_free(ca, a); /* cached: the device is still 3/4 full */
  void *b = ca_alloc(ca, 0, STREAM_A, 2 * MiB);
  CHECK(b != NULL);
  fc_cuda_mem_stats s;
  ca_stats(ca, 0, &s);
  CHECK(s.num_oom_retries == 1 && s.num_device_frees == 1 && s.reserved_bytes == (int64_t)(2 * MiB));
  void *c = ca_alloc(ca, 0, STREAM_A, 3 * MiB); /* live memory cannot be freed: a real OOM */
  CHECK(c == NULL);
  ca_stats(ca, 0, &s);
  CHECK(s.num_oom_retries == 2 && s.allocated_bytes == (int64_t)(2 * MiB));
  ca_free(ca, b);
  ca_destroy(ca);
  CHECK(devs[0].live == 0);
}

TEST(bad_frees_and_devices) {
  caching_allocator *ca = make(MiB);
  int x;
  CHECK(ca_free(ca, &x) == -1);
  CHECK(ca_free(ca, NULL) == -1);
  void *a = ca_alloc(ca, 1, STREAM_A, 10);
  CHECK(a != NULL && devs[1].mallocs == 1 && devs[0].mallocs == 0);
  CHECK(ca_free(ca, a) == 0);
  CHECK(ca_free(ca, a) == -1); /* double free is refused, not corrupting */
  CHECK(ca_alloc(ca, 2, STREAM_A, 10) == NULL);
  CHECK(ca_alloc(ca, -1, STREAM_A, 10) == NULL);
  fc_cuda_mem_stats s;
  ca_stats(ca, 7, &s);
  CHECK(s.num_allocs == 0);
  ca_destroy(ca);
  CHECK(devs[1].live == 0);
}

TEST(many_blocks_round_trip) {
  enum { N = 5000 };
  static void *ptrs[N];
  caching_allocator *ca = make(256 * MiB);
  for (int i = 0; i < N; i++) ptrs[i] = ca_alloc(ca, 0, STREAM_A, (size_t)(i % 7 + 1) * 700);
  for (int i = 0; i < N; i++) CHECK(ca_free(ca, ptrs[i]) == 0);
  for (int i = 0; i < N; i++) ptrs[i] = ca_alloc(ca, 0, STREAM_A, (size_t)(i % 7 + 1) * 700);
  fc_cuda_mem_stats s;
  ca_stats(ca, 0, &s);
  CHECK(s.num_device_mallocs == N && s.num_cache_hits == N && s.cached_bytes == 0);
  for (int i = 0; i < N; i++) ca_free(ca, ptrs[i]);
  ca_stats(ca, 0, &s);
  CHECK(s.allocated_bytes == 0 && s.cached_bytes == s.reserved_bytes);
  ca_destroy(ca);
  CHECK(devs[0].live == 0 && devs[0].frees == N);
}

static caching_allocator *shared_ca;
static void *churn(void *stream) {
  for (int i = 0; i < 20000; i++) {
    void *p = ca_alloc(shared_ca, 0, stream, (size_t)(i % 5 + 1) * 1000);
    if (p) ca_free(shared_ca, p);
  }
  return NULL;
}

TEST(threads_share_it_safely) {
  shared_ca = make(256 * MiB);
  pthread_t t1, t2;
  pthread_create(&t1, NULL, churn, STREAM_A);
  pthread_create(&t2, NULL, churn, STREAM_B);
  pthread_join(t1, NULL);
  pthread_join(t2, NULL);
  fc_cuda_mem_stats s;
  ca_stats(shared_ca, 0, &s);
  CHECK(s.num_allocs == 40000 && s.num_frees == 40000 && s.allocated_bytes == 0);
  CHECK(s.num_device_mallocs <= 10); /* five classes per stream, all reused */
  ca_destroy(shared_ca);
  CHECK(devs[0].live == 0);
}

int main(void) {
  RUN(size_classes);
  RUN(same_stream_reuses_a_block_of_its_class);
  RUN(other_streams_do_not_share_a_freed_block);
  RUN(stats_track_peaks_and_the_cache);
  RUN(out_of_memory_empties_the_cache_and_retries);
  RUN(bad_frees_and_devices);
  RUN(many_blocks_round_trip);
  RUN(threads_share_it_safely);
  return harness_report();
}
