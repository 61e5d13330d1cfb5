/* plugin.cu — libfastc_cuda.so's entry: device discovery, one stream per
 * device, memory through the caching allocator, copies, and the table the
 * core calls through (backend.h). */
#include "common.cuh"
#include "caching_alloc.h"
#include <cudnn.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void no_error_sink(const char *fmt, ...) { (void)fmt; }
void (*plugin_set_error)(const char *fmt, ...) = no_error_sink;

static int device_total;
static cudaStream_t streams[CA_MAX_DEVICES];
static int sms[CA_MAX_DEVICES];
static caching_allocator *allocator;
static char info_line[1024];
static thread_local int current_device = -1;
/* The thread's chosen stream per device (fc_cuda_set_stream); NULL: the default. */
static thread_local cudaStream_t user_stream[CA_MAX_DEVICES];

int cuda_check(const char *op, cudaError_t e) {
  if (e == cudaSuccess) return 0;
  cudaGetLastError(); /* clear a non-sticky error so later calls start clean */
  plugin_set_error("%s: CUDA error %s (%s)", op, cudaGetErrorString(e), cudaGetErrorName(e));
  return -1;
}

/* Streams are made on first use; the core serialises nothing, so a lock
 * guards their creation. */
static pthread_mutex_t stream_lock = PTHREAD_MUTEX_INITIALIZER;

cudaStream_t stream_for(int device) {
  if (device < 0 || device >= device_total) {
    plugin_set_error("cuda: device %d out of range (%d devices)", device, device_total);
    return NULL;
  }
  if (current_device != device) {
    if (cuda_check("cudaSetDevice", cudaSetDevice(device)) < 0) return NULL;
    current_device = device;
  }
  pthread_mutex_lock(&stream_lock);
  if (!streams[device]) {
    cudaStream_t s;
    if (cuda_check("cudaStreamCreate", cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking)) == 0)
      streams[device] = s;
  }
  cudaStream_t s = streams[device];
  pthread_mutex_unlock(&stream_lock);
  return user_stream[device] ? user_stream[device] : s;
}

const char *dtype_name(int d) {
  static const char *const names[FC_NUM_DTYPES] = {"float32", "float64", "float16", "bfloat16",
                                                   "int64", "int32", "uint8", "bool"};
  return d >= 0 && d < FC_NUM_DTYPES ? names[d] : "invalid";
}

int sm_count(int device) { return sms[device] > 0 ? sms[device] : 80; }

/* ---- memory ------------------------------------------------------------- */

static void *device_malloc(void *ctx, int device, size_t n) {
  (void)ctx;
  void *p = NULL;
  if (!stream_for(device) || cudaMalloc(&p, n) != cudaSuccess) {
    cudaGetLastError(); /* out of memory is not sticky; the allocator retries */
    return NULL;
  }
  return p;
}

static void device_free(void *ctx, int device, void *p) {
  (void)ctx;
  if (stream_for(device)) cudaFree(p);
}

static void *plugin_alloc(int device, size_t nbytes) {
  cudaStream_t s = stream_for(device);
  if (!s) return NULL;
  void *p = ca_alloc(allocator, device, (void *)s, nbytes);
  if (!p) {
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    fc_cuda_mem_stats st;
    ca_stats(allocator, device, &st);
    plugin_set_error("alloc: cuda:%d out of memory allocating %zu bytes (%lld held by tensors, "
                     "%zu of %zu free on the device)", device, nbytes,
                     (long long)st.allocated_bytes, free_b, total_b);
  }
  return p;
}

static void plugin_free(int device, void *ptr) {
  (void)device;
  ca_free(allocator, ptr);
}

void *scratch_alloc(int device, size_t nbytes) { return plugin_alloc(device, nbytes); }
void scratch_free(int device, void *ptr) { plugin_free(device, ptr); }

static int plugin_memory_stats(int device, fc_cuda_mem_stats *out) {
  ca_stats(allocator, device, out);
  return 0;
}

static void plugin_empty_cache(int device) {
  if (stream_for(device)) cudaDeviceSynchronize(); /* blocks cached on any stream may be in use */
  ca_empty_cache(allocator, device);
}

/* Host to device returns once the source is staged (pageable memory) or
 * queued (pinned); device to host waits, since the caller reads it next. */
static int plugin_memcpy(int device, void *dst, const void *src, size_t n, int kind) {
  STREAM_OR_FAIL(s, device);
  cudaMemcpyKind k = kind == BK_H2D ? cudaMemcpyHostToDevice
                   : kind == BK_D2H ? cudaMemcpyDeviceToHost : cudaMemcpyDeviceToDevice;
  CUDA_TRY("to_device", cudaMemcpyAsync(dst, src, n, k, s));
  if (kind == BK_D2H) CUDA_TRY("to_device", cudaStreamSynchronize(s));
  return 0;
}

/* Every stream of the device, as torch.cuda.synchronize. */
static int plugin_synchronize(int device) {
  STREAM_OR_FAIL(s, device);
  (void)s;
  CUDA_TRY("cuda_synchronize", cudaDeviceSynchronize());
  return 0;
}

/* ---- user streams, events, pinned memory ----------------------------------------- */

static void *plugin_stream_create(int device) {
  if (!stream_for(device)) return NULL; /* makes the device current */
  cudaStream_t s;
  if (cuda_check("cuda_stream", cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking)) < 0) return NULL;
  return (void *)s;
}

static int plugin_stream_destroy(int device, void *stream) {
  if (user_stream[device] == (cudaStream_t)stream) user_stream[device] = NULL;
  CUDA_TRY("cuda_stream", cudaStreamSynchronize((cudaStream_t)stream));
  CUDA_TRY("cuda_stream", cudaStreamDestroy((cudaStream_t)stream));
  return 0;
}

static int plugin_stream_synchronize(int device, void *stream) {
  if (!stream_for(device)) return -1;
  CUDA_TRY("cuda_stream_synchronize", cudaStreamSynchronize((cudaStream_t)stream));
  return 0;
}

static int query_result(const char *op, cudaError_t e) {
  if (e == cudaErrorNotReady) {
    cudaGetLastError();
    return 0;
  }
  return cuda_check(op, e) < 0 ? -1 : 1;
}

static int plugin_stream_query(int device, void *stream) {
  if (!stream_for(device)) return -1;
  return query_result("cuda_stream_query", cudaStreamQuery((cudaStream_t)stream));
}

static int plugin_set_stream(int device, void *stream) {
  if (device < 0 || device >= device_total) {
    plugin_set_error("cuda_set_stream: device %d out of range", device);
    return -1;
  }
  user_stream[device] = (cudaStream_t)stream;
  return 0;
}

static int plugin_stream_wait_event(int device, void *stream, void *event) {
  cudaStream_t s = stream ? (cudaStream_t)stream : stream_for(device);
  if (!s || !stream_for(device)) return -1;
  CUDA_TRY("cuda_stream_wait_event", cudaStreamWaitEvent(s, (cudaEvent_t)event, 0));
  return 0;
}

static void *plugin_event_create(int device, int timing) {
  if (!stream_for(device)) return NULL;
  cudaEvent_t e;
  if (cuda_check("cuda_event", cudaEventCreateWithFlags(&e, timing ? cudaEventDefault : cudaEventDisableTiming)) < 0)
    return NULL;
  return (void *)e;
}

static int plugin_event_destroy(int device, void *event) {
  if (!stream_for(device)) return -1;
  CUDA_TRY("cuda_event", cudaEventDestroy((cudaEvent_t)event));
  return 0;
}

static int plugin_event_record(int device, void *event, void *stream) {
  cudaStream_t s = stream_for(device);
  if (!s) return -1;
  CUDA_TRY("cuda_event_record", cudaEventRecord((cudaEvent_t)event, stream ? (cudaStream_t)stream : s));
  return 0;
}

static int plugin_event_synchronize(int device, void *event) {
  if (!stream_for(device)) return -1;
  CUDA_TRY("cuda_event_synchronize", cudaEventSynchronize((cudaEvent_t)event));
  return 0;
}

static int plugin_event_query(int device, void *event) {
  if (!stream_for(device)) return -1;
  return query_result("cuda_event_query", cudaEventQuery((cudaEvent_t)event));
}

static int plugin_event_elapsed_ms(int device, void *start, void *end, float *ms) {
  if (!stream_for(device)) return -1;
  CUDA_TRY("cuda_event_elapsed", cudaEventElapsedTime(ms, (cudaEvent_t)start, (cudaEvent_t)end));
  return 0;
}

/* Page-locked memory for fc_pin_memory. cudaFreeHost waits for the device,
 * so no copy from a block is still running when it is unmapped. */
static void *plugin_host_alloc(size_t nbytes) {
  void *p = NULL;
  if (cuda_check("pin_memory", cudaHostAlloc(&p, nbytes, cudaHostAllocPortable)) < 0) return NULL;
  return p;
}

static void plugin_host_free(void *p) {
  if (cudaFreeHost(p) != cudaSuccess) cudaGetLastError();
}

static int plugin_device_count(void) { return device_total; }
static const char *plugin_info(void) { return info_line; }

static void describe(void) {
  int rt = 0, drv = 0;
  cudaRuntimeGetVersion(&rt);
  cudaDriverGetVersion(&drv);
  size_t k = (size_t)snprintf(info_line, sizeof info_line,
                              "CUDA runtime %d.%d, driver %d.%d, %s, cuDNN %zu", rt / 1000,
                              rt % 1000 / 10, drv / 1000, drv % 1000 / 10,
                              cublas_version_string(0), cudnnGetVersion());
  for (int d = 0; d < device_total && k < sizeof info_line; d++) {
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, d) != cudaSuccess) continue;
    sms[d] = p.multiProcessorCount;
    k += (size_t)snprintf(info_line + k, sizeof info_line - k, "; cuda:%d %s (sm_%d%d, %.0f GiB)",
                          d, p.name, p.major, p.minor, (double)p.totalGlobalMem / (1 << 30));
  }
}

extern "C" __attribute__((visibility("default"))) int
fastc_cuda_plugin_init(const bk_host *host, fc_backend *vt, char *why, size_t n) {
  if (!host || host->abi != BK_ABI_VERSION) {
    snprintf(why, n, "libfastc_cuda.so speaks backend ABI %d but libfastc %d; rebuild the plugin",
             BK_ABI_VERSION, host ? host->abi : -1);
    return -1;
  }
  plugin_set_error = host->set_error;
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    snprintf(why, n, "cudaGetDeviceCount failed: %s (%s)", cudaGetErrorString(e), cudaGetErrorName(e));
    return -1;
  }
  if (count <= 0) {
    snprintf(why, n, "no CUDA device found (cudaGetDeviceCount reports 0)");
    return -1;
  }
  device_total = count < CA_MAX_DEVICES ? count : CA_MAX_DEVICES;
  allocator = ca_create(ca_device_ops{device_malloc, device_free, NULL}, device_total);
  if (!allocator) {
    snprintf(why, n, "CUDA plugin: out of host memory");
    return -1;
  }
  describe();
  memset(vt, 0, sizeof *vt);
  vt->abi = BK_ABI_VERSION;
  vt->device_count = plugin_device_count;
  vt->synchronize = plugin_synchronize;
  vt->info = plugin_info;
  vt->alloc = plugin_alloc;
  vt->free = plugin_free;
  vt->memcpy = plugin_memcpy;
  vt->memory_stats = plugin_memory_stats;
  vt->empty_cache = plugin_empty_cache;
  vt->fill = cuda_fill;
  vt->copy = cuda_copy;
  vt->elementwise = cuda_elementwise;
  vt->reduce = cuda_reduce;
  vt->gemm = cuda_gemm;
  vt->softmax = cuda_softmax;
  vt->xent_forward = cuda_xent_forward;
  vt->xent_backward = cuda_xent_backward;
  vt->sgd_step = cuda_sgd_step;
  vt->adam_step = cuda_adam_step;
  vt->conv_forward = cuda_conv_forward;
  vt->conv_backward_data = cuda_conv_backward_data;
  vt->conv_backward_filter = cuda_conv_backward_filter;
  vt->pool_forward = cuda_pool_forward;
  vt->pool_backward = cuda_pool_backward;
  vt->bn_forward = cuda_bn_forward;
  vt->bn_backward = cuda_bn_backward;
  vt->index_walk = cuda_index_walk;
  vt->random = cuda_random;
  vt->dropout_forward = cuda_dropout_forward;
  vt->dropout_backward = cuda_dropout_backward;
  vt->stream_create = plugin_stream_create;
  vt->stream_destroy = plugin_stream_destroy;
  vt->stream_synchronize = plugin_stream_synchronize;
  vt->stream_query = plugin_stream_query;
  vt->set_stream = plugin_set_stream;
  vt->stream_wait_event = plugin_stream_wait_event;
  vt->event_create = plugin_event_create;
  vt->event_destroy = plugin_event_destroy;
  vt->event_record = plugin_event_record;
  vt->event_synchronize = plugin_event_synchronize;
  vt->event_query = plugin_event_query;
  vt->event_elapsed_ms = plugin_event_elapsed_ms;
  vt->host_alloc = plugin_host_alloc;
  vt->host_free = plugin_host_free;
  vt->sort_rows = cuda_sort_rows;
  return 0;
}
