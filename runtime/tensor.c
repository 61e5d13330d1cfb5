/* tensor.c — tensor lifetime, creation and element access. */
#include "backend.h"
#include <stdlib.h>

int64_t shape_numel(int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= shape[i];
  return n;
}

void contiguous_strides(int ndim, const int64_t *shape, int64_t *stride) {
  int64_t s = 1;
  for (int i = ndim - 1; i >= 0; i--) {
    stride[i] = s;
    s *= shape[i] > 1 ? shape[i] : 1;
  }
}

/* Sizes must be non-negative and their product must not overflow. */
static int check_shape(const char *op, int ndim, const int64_t *shape) {
  if (ndim < 0 || ndim > FC_MAX_DIMS)
    FAIL_INT("%s: %d dims requested, at most %d supported", op, ndim, FC_MAX_DIMS);
  int64_t total = 1;
  bool empty = false;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0) FAIL_INT("%s: negative size in shape %s", op, dims_str(ndim, shape, (char[96]){0}, 96));
    empty |= shape[i] == 0;
  }
  for (int i = 0; i < ndim && !empty; i++) {
    if (shape[i] > ((int64_t)1 << 50) / total)
      FAIL_INT("%s: shape %s is too large", op, dims_str(ndim, shape, (char[96]){0}, 96));
    total *= shape[i];
  }
  return 0;
}

static fc_tensor *header_new(int ndim, const int64_t *shape, const int64_t *stride, int dtype,
                             fc_device dev) {
  fc_tensor *t = header_alloc();
  if (!t) FAIL("alloc: out of memory for a tensor header");
  t->ndim = ndim;
  t->dtype = dtype;
  t->device = dev;
  t->refcount = 1;
  for (int i = 0; i < ndim; i++) {
    t->shape[i] = shape[i];
    t->stride[i] = stride[i];
  }
  t->numel = shape_numel(ndim, shape);
  return t;
}

fc_tensor *tensor_view_of(fc_tensor *base, int ndim, const int64_t *shape,
                          const int64_t *stride, int64_t offset) {
  fc_tensor *t = header_new(ndim, shape, stride, base->dtype, base->device);
  if (!t) return NULL;
  t->storage = base->storage;
  if (t->storage) __atomic_add_fetch(&t->storage->refcount, 1, __ATOMIC_RELAXED);
  t->offset = offset;
  return t;
}

fc_tensor *fc_empty(int ndim, const int64_t *shape, int dtype, fc_device dev) {
  if (check_shape("empty", ndim, shape) < 0) return NULL;
  if (!valid_dtype(dtype)) FAIL("empty: invalid dtype %d", dtype);
  int64_t stride[FC_MAX_DIMS];
  contiguous_strides(ndim, shape, stride);
  int64_t numel = shape_numel(ndim, shape);
  if (numel > ((int64_t)1 << 50) / fc_dtype_size(dtype))
    FAIL("empty: shape %s is too large", dims_str(ndim, shape, (char[96]){0}, 96));
  fc_storage *s = storage_new((size_t)numel * (size_t)fc_dtype_size(dtype), dev);
  if (!s) return NULL;
  fc_tensor *t = header_new(ndim, shape, stride, dtype, dev);
  if (!t) {
    storage_release(s);
    return NULL;
  }
  t->storage = s;
  return t;
}

fc_tensor *empty_dtype_like(const fc_tensor *t, int dtype) {
  return fc_empty(t->ndim, t->shape, dtype, t->device);
}

fc_tensor *fc_empty_like(const fc_tensor *t) {
  if (check_defined("empty_like", t, "tensor") < 0) return NULL;
  return empty_dtype_like(t, t->dtype);
}

fc_tensor *fc_full(int ndim, const int64_t *shape, double value, int dtype, fc_device dev) {
  fc_tensor *t = fc_empty(ndim, shape, dtype, dev);
  if (t && fc_fill_(t, value) < 0) {
    fc_release(t);
    return NULL;
  }
  return t;
}

fc_tensor *fc_zeros(int ndim, const int64_t *shape, int dtype, fc_device dev) {
  return fc_full(ndim, shape, 0, dtype, dev);
}

fc_tensor *fc_ones(int ndim, const int64_t *shape, int dtype, fc_device dev) {
  return fc_full(ndim, shape, 1, dtype, dev);
}

fc_tensor *fc_zeros_like(const fc_tensor *t) {
  if (check_defined("zeros_like", t, "tensor") < 0) return NULL;
  return fc_full(t->ndim, t->shape, 0, t->dtype, t->device);
}

fc_tensor *fc_scalar(double value, int dtype, fc_device dev) {
  return fc_full(0, NULL, value, dtype, dev);
}

/* Creation that writes elements from the host: made on the CPU, then moved. */
static const fc_device CPU0 = {FC_CPU, 0};
static fc_tensor *moved_to(const char *op, fc_tensor *cpu, fc_device dev) {
  fc_tensor *t = cpu && backend_check_device(op, dev) == 0 ? fc_to_device(cpu, dev) : NULL;
  fc_release(cpu);
  return t;
}

/* Element i is start + i*step, computed in double so float steps don't drift. */
fc_tensor *fc_arange(double start, double end, double step, int dtype, fc_device dev) {
  if (step == 0) FAIL("arange: step must be non-zero");
  if (!isfinite(start) || !isfinite(end) || !isfinite(step))
    FAIL("arange: start, end and step must be finite");
  if ((end - start) / step < 0)
    FAIL("arange: step %g goes away from end (start %g, end %g)", step, start, end);
  if (dev.type != FC_CPU) return moved_to("arange", fc_arange(start, end, step, dtype, CPU0), dev);
  int64_t n = (int64_t)ceil((end - start) / step);
  fc_tensor *t = fc_empty(1, &n, dtype, dev);
  if (!t) return NULL;
  char *p = elem_ptr(t);
  int es = fc_dtype_size(dtype);
  for (int64_t i = 0; i < n; i++) store_from_double(p + i * es, dtype, start + (double)i * step);
  return t;
}

fc_tensor *fc_linspace(double start, double end, int64_t steps, int dtype, fc_device dev) {
  if (steps < 0) FAIL("linspace: steps must be non-negative, got %lld", (long long)steps);
  if (dev.type != FC_CPU) return moved_to("linspace", fc_linspace(start, end, steps, dtype, CPU0), dev);
  fc_tensor *t = fc_empty(1, &steps, dtype, dev);
  if (!t) return NULL;
  char *p = elem_ptr(t);
  int es = fc_dtype_size(dtype);
  double step = steps > 1 ? (end - start) / (double)(steps - 1) : 0;
  /* Fill from both ends, as PyTorch does, so the last element is exactly `end`. */
  for (int64_t i = 0; i < steps; i++) {
    double v = i < steps / 2 ? start + step * (double)i : end - step * (double)(steps - 1 - i);
    store_from_double(p + i * es, dtype, v);
  }
  return t;
}

fc_tensor *fc_eye(int64_t n, int64_t m, int dtype, fc_device dev) {
  if (m < 0) m = n;
  if (dev.type != FC_CPU) return moved_to("eye", fc_eye(n, m, dtype, CPU0), dev);
  int64_t shape[2] = {n, m};
  fc_tensor *t = fc_zeros(2, shape, dtype, dev);
  if (!t) return NULL;
  char *p = elem_ptr(t);
  int es = fc_dtype_size(dtype);
  for (int64_t i = 0; i < n && i < m; i++) store_from_double(p + (i * m + i) * es, dtype, 1);
  return t;
}

fc_tensor *fc_from_buffer(const void *data, int src_dtype, int ndim, const int64_t *shape,
                          int dtype, fc_device dev) {
  if (!valid_dtype(src_dtype)) FAIL("from_buffer: invalid source dtype %d", src_dtype);
  if (dev.type != FC_CPU)
    return moved_to("from_buffer", fc_from_buffer(data, src_dtype, ndim, shape, dtype, CPU0), dev);
  fc_tensor *t = fc_empty(ndim, shape, dtype, dev);
  if (!t) return NULL;
  int ss = fc_dtype_size(src_dtype), ds = fc_dtype_size(dtype);
  if (t->numel > 0 && !data) {
    fc_release(t);
    FAIL("from_buffer: data is NULL");
  }
  if (src_dtype == dtype) {
    memcpy(elem_ptr(t), data, (size_t)(t->numel * ds));
  } else {
    const char *src = data;
    char *dst = elem_ptr(t);
    for (int64_t i = 0; i < t->numel; i++)
      store_from_double(dst + i * ds, dtype, load_as_double(src + i * ss, src_dtype));
  }
  return t;
}

/* ---- lifetime --------------------------------------------------------- */

fc_tensor *fc_retain(fc_tensor *t) {
  if (t) __atomic_add_fetch(&t->refcount, 1, __ATOMIC_RELAXED);
  return t;
}

void fc_release(fc_tensor *t) {
  if (!t || __atomic_sub_fetch(&t->refcount, 1, __ATOMIC_ACQ_REL) > 0) return;
  fc_release(t->grad);
  node_release(t->grad_fn);
  storage_release(t->storage);
  header_free(t);
}

void fc_release_handle(fc_handle *handle) {
  if (handle) fc_release(handle->p);
}

void fc_free(fc_tensor *t) {
  if (!t) return;
  storage_release(t->storage);
  t->storage = NULL; /* every op now reports "was freed" */
}

/* ---- element access --------------------------------------------------- */

int fc_is_contiguous(const fc_tensor *t) {
  if (t->numel == 0) return 1; /* as in PyTorch: nothing to lay out */
  int64_t expected = 1;
  for (int i = t->ndim - 1; i >= 0; i--) {
    if (t->shape[i] == 1) continue;
    if (t->stride[i] != expected) return 0;
    expected *= t->shape[i];
  }
  return 1;
}

void *fc_data_ptr(const fc_tensor *t) {
  return t && t->storage ? elem_ptr(t) : NULL;
}

static int element_offset(const char *op, const fc_tensor *t, const int64_t *index,
                          int64_t *off) {
  *off = t->offset;
  for (int i = 0; i < t->ndim; i++) {
    if (index[i] < 0 || index[i] >= t->shape[i])
      FAIL_INT("%s: index %lld out of range for dim %d of size %lld", op,
               (long long)index[i], i, (long long)t->shape[i]);
    *off += index[i] * t->stride[i];
  }
  return 0;
}

/* One element of a GPU tensor as a 0-dim view, to read or write from the host. */
static fc_tensor *element_view(const fc_tensor *t, int64_t off) {
  return tensor_view_of((fc_tensor *)t, 0, NULL, NULL, off);
}

int fc_get(const fc_tensor *t, const int64_t *index, double *out) {
  int64_t off;
  if (check_defined("get", t, "tensor") < 0 || check_same_device("get", 1, &t) < 0) return -1;
  if (element_offset("get", t, index, &off) < 0) return -1;
  if (t->device.type != FC_CPU) { /* one element crosses to the host */
    fc_tensor *e = element_view(t, off), *h = e ? backend_host_copy(e) : NULL;
    fc_release(e);
    if (!h) return -1;
    *out = load_as_double(elem_ptr(h), h->dtype);
    fc_release(h);
    return 0;
  }
  *out = load_as_double((char *)t->storage->data + off * fc_dtype_size(t->dtype), t->dtype);
  return 0;
}

int fc_set(fc_tensor *t, const int64_t *index, double value) {
  int64_t off;
  const fc_tensor *c = t;
  if (check_defined("set", t, "tensor") < 0 || check_same_device("set", 1, &c) < 0) return -1;
  if (check_inplace("set", t) < 0) return -1;
  if (element_offset("set", t, index, &off) < 0) return -1;
  if (t->device.type != FC_CPU) {
    fc_tensor *e = element_view(t, off);
    int rc = e ? fc_fill_(e, value) : -1;
    fc_release(e);
    return rc;
  }
  store_from_double((char *)t->storage->data + off * fc_dtype_size(t->dtype), t->dtype, value);
  bump_version(t);
  return 0;
}

int fc_item(const fc_tensor *t, double *out) {
  if (check_defined("item", t, "tensor") < 0) return -1;
  if (t->numel != 1)
    FAIL_INT("item: tensor of shape %s has %lld elements, expected exactly 1", SHAPE(t),
             (long long)t->numel);
  int64_t zero[FC_MAX_DIMS] = {0};
  return fc_get(t, zero, out);
}

int fc_to_doubles(const fc_tensor *t, double *out) {
  if (check_defined("to_doubles", t, "tensor") < 0 ||
      check_same_device("to_doubles", 1, &t) < 0)
    return -1;
  if (t->device.type != FC_CPU) {
    fc_tensor *h = backend_host_copy(t);
    int rc = h ? fc_to_doubles(h, out) : -1;
    fc_release(h);
    return rc;
  }
  int64_t idx[FC_MAX_DIMS] = {0};
  int es = fc_dtype_size(t->dtype);
  const char *base = t->storage ? t->storage->data : NULL;
  for (int64_t n = 0; n < t->numel; n++) {
    int64_t off = t->offset;
    for (int d = 0; d < t->ndim; d++) off += idx[d] * t->stride[d];
    out[n] = load_as_double(base + off * es, t->dtype);
    for (int d = t->ndim - 1; d >= 0 && ++idx[d] == t->shape[d]; d--) idx[d] = 0;
  }
  return 0;
}
