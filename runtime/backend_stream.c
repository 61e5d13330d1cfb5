/* backend_stream.c — CUDA streams, events and pinned host memory: the
 * public fc_cuda_stream / fc_cuda_event API over the plugin's handles.
 *
 * A stream or event belongs to one device. Each thread has a current
 * stream per device (the plugin keeps it, so every kernel, copy, cuBLAS and
 * cuDNN call of that thread goes there); this file mirrors which
 * fc_cuda_stream that is, for fc_cuda_current_stream. */
#include "backend.h"
#include <stdlib.h>

struct fc_cuda_stream { int device; void *handle; };
struct fc_cuda_event { int device, timing; void *handle; };

enum { MAX_DEVICES = 64 };
static _Thread_local fc_cuda_stream *current[MAX_DEVICES];

/* The plugin, with device a valid cuda device; NULL with the error set. */
static const fc_backend *plugin_for(const char *op, int device) {
  if (backend_check_device(op, (fc_device){FC_CUDA, device}) < 0) return NULL;
  return backend_get();
}

fc_cuda_stream *fc_cuda_stream_new(int device) {
  const fc_backend *bk = plugin_for("cuda_stream", device);
  fc_cuda_stream *s = bk ? malloc(sizeof *s) : NULL;
  if (bk && !s) FAIL("cuda_stream: out of memory");
  if (!s) return NULL;
  s->device = device;
  if (!(s->handle = bk->stream_create(device))) {
    free(s);
    return NULL;
  }
  return s;
}

void fc_cuda_stream_free(fc_cuda_stream *s) {
  if (!s) return;
  const fc_backend *bk = backend_get();
  if (current[s->device] == s) fc_cuda_set_stream(s->device, NULL);
  if (bk) bk->stream_destroy(s->device, s->handle);
  free(s);
}

int fc_cuda_stream_device(const fc_cuda_stream *s) { return s ? s->device : -1; }

int fc_cuda_stream_synchronize(fc_cuda_stream *s) {
  if (!s) FAIL_INT("cuda_stream_synchronize: stream is NULL");
  return backend_get()->stream_synchronize(s->device, s->handle);
}

int fc_cuda_stream_query(fc_cuda_stream *s) {
  if (!s) FAIL_INT("cuda_stream_query: stream is NULL");
  return backend_get()->stream_query(s->device, s->handle);
}

int fc_cuda_set_stream(int device, fc_cuda_stream *s) {
  const fc_backend *bk = plugin_for("cuda_set_stream", device);
  if (!bk) return -1;
  if (s && s->device != device)
    FAIL_INT("cuda_set_stream: the stream belongs to cuda:%d, not cuda:%d", s->device, device);
  if (bk->set_stream(device, s ? s->handle : NULL) < 0) return -1;
  current[device] = s;
  return 0;
}

fc_cuda_stream *fc_cuda_current_stream(int device) {
  return device >= 0 && device < MAX_DEVICES ? current[device] : NULL;
}

int fc_cuda_stream_wait_event(int device, fc_cuda_stream *s, fc_cuda_event *e) {
  const fc_backend *bk = plugin_for("cuda_stream_wait_event", device);
  if (!bk) return -1;
  if (!e) FAIL_INT("cuda_stream_wait_event: event is NULL");
  if (s && s->device != device)
    FAIL_INT("cuda_stream_wait_event: the stream belongs to cuda:%d, not cuda:%d", s->device, device);
  return bk->stream_wait_event(device, s ? s->handle : NULL, e->handle);
}

fc_cuda_event *fc_cuda_event_new(int device, int enable_timing) {
  const fc_backend *bk = plugin_for("cuda_event", device);
  fc_cuda_event *e = bk ? malloc(sizeof *e) : NULL;
  if (bk && !e) FAIL("cuda_event: out of memory");
  if (!e) return NULL;
  e->device = device, e->timing = enable_timing != 0;
  if (!(e->handle = bk->event_create(device, e->timing))) {
    free(e);
    return NULL;
  }
  return e;
}

void fc_cuda_event_free(fc_cuda_event *e) {
  if (!e) return;
  const fc_backend *bk = backend_get();
  if (bk) bk->event_destroy(e->device, e->handle);
  free(e);
}

int fc_cuda_event_record(fc_cuda_event *e, fc_cuda_stream *s) {
  if (!e) FAIL_INT("cuda_event_record: event is NULL");
  if (s && s->device != e->device)
    FAIL_INT("cuda_event_record: the event belongs to cuda:%d, the stream to cuda:%d", e->device, s->device);
  return backend_get()->event_record(e->device, e->handle, s ? s->handle : NULL);
}

int fc_cuda_event_synchronize(fc_cuda_event *e) {
  if (!e) FAIL_INT("cuda_event_synchronize: event is NULL");
  return backend_get()->event_synchronize(e->device, e->handle);
}

int fc_cuda_event_query(fc_cuda_event *e) {
  if (!e) FAIL_INT("cuda_event_query: event is NULL");
  return backend_get()->event_query(e->device, e->handle);
}

double fc_cuda_event_elapsed_ms(fc_cuda_event *start, fc_cuda_event *end) {
  if (!start || !end) FAIL_INT("cuda_event_elapsed: an event is NULL");
  if (!start->timing || !end->timing)
    FAIL_INT("cuda_event_elapsed: both events need enable_timing");
  if (start->device != end->device)
    FAIL_INT("cuda_event_elapsed: the events are on cuda:%d and cuda:%d", start->device, end->device);
  float ms = 0;
  if (backend_get()->event_elapsed_ms(start->device, start->handle, end->handle, &ms) < 0) return -1;
  return ms;
}

/* ---- pinned host memory ------------------------------------------------------ */

void backend_host_free(void *ptr) {
  const fc_backend *bk = backend_get();
  if (bk && ptr) bk->host_free(ptr);
}

int fc_is_pinned(const fc_tensor *t) { return t && t->storage && t->storage->pinned; }

fc_tensor *fc_pin_memory(fc_tensor *t) {
  const char *op = "pin_memory";
  if (check_defined(op, t, "tensor") < 0) return NULL;
  if (t->device.type != FC_CPU) FAIL("%s: only CPU tensors can be pinned, got one on cuda:%d", op, t->device.index);
  if (fc_is_pinned(t)) return fc_retain(t);
  const fc_backend *bk = backend_get();
  if (!bk) FAIL("%s: page-locked memory needs the CUDA backend: %s", op, fc_cuda_why_unavailable());
  size_t nbytes = (size_t)t->numel * (size_t)fc_dtype_size(t->dtype);
  void *data = bk->host_alloc(nbytes ? nbytes : 1);
  if (!data) return NULL;
  fc_storage *s = storage_wrap_pinned(data, nbytes);
  if (!s) {
    bk->host_free(data);
    return NULL;
  }
  fc_tensor base = {.storage = s, .dtype = t->dtype, .device = {FC_CPU, 0}};
  int64_t stride[FC_MAX_DIMS];
  contiguous_strides(t->ndim, t->shape, stride);
  fc_tensor *out = tensor_view_of(&base, t->ndim, t->shape, stride, 0);
  storage_release(s); /* out holds it now */
  int previous = grad_mode_push(false);
  if (out && fc_copy_(out, t) < 0) fc_release(out), out = NULL;
  grad_mode_pop(previous);
  return out;
}
