/* view.c — ops that return a new header over the same storage. */
#include "internal.h"

static int check_one(const char *op, fc_tensor *t) {
  return check_same_device(op, 1, (const fc_tensor *const[]){t});
}

/* ---- gradients of views ------------------------------------------------ */

static int reshape_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  gi[0] = fc_reshape(g, n->in_ndim[0], n->in_shape[0]);
  return gi[0] ? 0 : -1;
}

/* iarg holds the inverse permutation. */
static int permute_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  int inv[FC_MAX_DIMS];
  for (int i = 0; i < n->in_ndim[0]; i++) inv[i] = (int)n->iarg[i];
  gi[0] = fc_permute(g, n->in_ndim[0], inv);
  return gi[0] ? 0 : -1;
}

/* The engine sums the gradient over the expanded dims. */
static int expand_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  gi[0] = fc_retain(g);
  return 0;
}

/* Zeros of the input's shape, with the gradient written into the same view.
 * iarg: dim, start, end, step, and select's index when iarg[4] is set. */
static int slice_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  fc_tensor *z = fc_zeros(n->in_ndim[0], n->in_shape[0], g->dtype, g->device);
  if (!z) return -1;
  int dim = (int)n->iarg[0];
  fc_tensor *v = n->iarg[4] ? fc_select(z, dim, n->iarg[1]) : fc_slice(z, dim, n->iarg[1], n->iarg[2], n->iarg[3]);
  int rc = v ? fc_copy_(v, g) : -1;
  fc_release(v);
  if (rc < 0) {
    fc_release(z);
    return -1;
  }
  gi[0] = z;
  return 0;
}

static fc_node *track(fc_tensor **out, fc_tensor *in, const char *op, backward_fn fn) {
  if (!*out || !grad_needed(1, &in)) return NULL;
  fc_node *n = record(op, fn, *out, 1, &in);
  if (!n) {
    fc_release(*out);
    *out = NULL;
  }
  return n;
}

static fc_tensor *reshaped(fc_tensor *out, fc_tensor *in, const char *op) {
  track(&out, in, op, reshape_backward);
  return out;
}

/* Resolves one -1 entry and checks the element count matches. */
static int infer_shape(const char *op, const fc_tensor *t, int ndim, const int64_t *in,
                       int64_t *out) {
  if (ndim < 0 || ndim > FC_MAX_DIMS) FAIL_INT("%s: %d dims, at most %d supported", op, ndim, FC_MAX_DIMS);
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < ndim; i++) {
    out[i] = in[i];
    if (in[i] == -1) {
      if (infer >= 0) FAIL_INT("%s: only one dimension can be -1", op);
      infer = i;
    } else if (in[i] < 0) {
      FAIL_INT("%s: invalid size %lld in shape %s", op, (long long)in[i],
               dims_str(ndim, in, (char[96]){0}, 96));
    } else {
      known *= in[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || t->numel % known)
      FAIL_INT("%s: shape %s is invalid for input of shape %s (%lld elements)", op,
               dims_str(ndim, in, (char[96]){0}, 96), SHAPE(t), (long long)t->numel);
    out[infer] = t->numel / known;
  } else if (known != t->numel) {
    FAIL_INT("%s: shape %s is invalid for input of shape %s (%lld elements)", op,
             dims_str(ndim, in, (char[96]){0}, 96), SHAPE(t), (long long)t->numel);
  }
  return 0;
}

/* Strides for viewing `t` as `shape` without a copy, if that exists: each run
 * of new dims must lie within a run of old dims that are contiguous with each
 * other (PyTorch's computeStride rule). Returns 0 if a view is impossible. */
static int view_strides(const fc_tensor *t, int ndim, const int64_t *shape, int64_t *stride) {
  if (t->numel == 0 || t->ndim == 0) {
    contiguous_strides(ndim, shape, stride);
    return 1;
  }
  int64_t view_d = ndim - 1;
  int64_t chunk_base_stride = t->stride[t->ndim - 1];
  int64_t tensor_numel = 1, view_numel = 1;
  for (int tensor_d = t->ndim - 1; tensor_d >= 0; tensor_d--) {
    tensor_numel *= t->shape[tensor_d];
    if (tensor_d == 0 || (t->shape[tensor_d - 1] != 1 &&
                          t->stride[tensor_d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
        stride[view_d] = view_numel * chunk_base_stride;
        view_numel *= shape[view_d];
        view_d--;
      }
      if (view_numel != tensor_numel) return 0;
      if (tensor_d > 0) {
        chunk_base_stride = t->stride[tensor_d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1;
}

fc_tensor *fc_view(fc_tensor *t, int ndim, const int64_t *shape) {
  int64_t s[FC_MAX_DIMS], st[FC_MAX_DIMS];
  if (check_one("view", t) < 0 || infer_shape("view", t, ndim, shape, s) < 0) return NULL;
  if (!view_strides(t, ndim, s, st))
    FAIL("view: shape %s is not compatible with the strides of input %s; use reshape",
         dims_str(ndim, s, (char[96]){0}, 96), SHAPE(t));
  return reshaped(tensor_view_of(t, ndim, s, st, t->offset), t, "view");
}

fc_tensor *fc_reshape(fc_tensor *t, int ndim, const int64_t *shape) {
  int64_t s[FC_MAX_DIMS], st[FC_MAX_DIMS];
  if (check_one("reshape", t) < 0 || infer_shape("reshape", t, ndim, shape, s) < 0) return NULL;
  if (view_strides(t, ndim, s, st)) return reshaped(tensor_view_of(t, ndim, s, st, t->offset), t, "reshape");
  fc_tensor *c = fc_clone(t);
  if (!c) return NULL;
  fc_tensor *v = fc_view(c, ndim, s);
  fc_release(c);
  return v;
}

fc_tensor *fc_permute(fc_tensor *t, int ndim, const int *dims) {
  if (check_one("permute", t) < 0) return NULL;
  if (ndim != t->ndim)
    FAIL("permute: %d dims given for a %d-dim tensor of shape %s", ndim, t->ndim, SHAPE(t));
  int64_t shape[FC_MAX_DIMS], stride[FC_MAX_DIMS];
  int perm[FC_MAX_DIMS];
  bool seen[FC_MAX_DIMS] = {0};
  for (int i = 0; i < ndim; i++) {
    int d = wrap_dim("permute", dims[i], ndim);
    if (d < 0) return NULL;
    if (seen[d]) FAIL("permute: dim %d repeated", dims[i]);
    seen[d] = true;
    shape[i] = t->shape[d];
    stride[i] = t->stride[d];
    perm[i] = d;
  }
  fc_tensor *out = tensor_view_of(t, ndim, shape, stride, t->offset);
  fc_node *n = track(&out, t, "permute", permute_backward);
  for (int i = 0; n && i < ndim; i++) n->iarg[perm[i]] = i;
  return out;
}

fc_tensor *fc_transpose(fc_tensor *t, int dim0, int dim1) {
  if (check_one("transpose", t) < 0) return NULL;
  int a = wrap_dim("transpose", dim0, t->ndim), b = a < 0 ? -1 : wrap_dim("transpose", dim1, t->ndim);
  if (b < 0) return NULL;
  if (t->ndim == 0) return reshaped(tensor_view_of(t, 0, NULL, NULL, t->offset), t, "transpose");
  int perm[FC_MAX_DIMS];
  for (int i = 0; i < t->ndim; i++) perm[i] = i;
  perm[a] = b;
  perm[b] = a;
  return fc_permute(t, t->ndim, perm);
}

fc_tensor *fc_squeeze(fc_tensor *t, int dim) {
  if (check_one("squeeze", t) < 0) return NULL;
  int only = -1;
  if (dim != FC_ALL_DIMS && (only = wrap_dim("squeeze", dim, t->ndim)) < 0) return NULL;
  int64_t shape[FC_MAX_DIMS], stride[FC_MAX_DIMS];
  int n = 0;
  for (int d = 0; d < t->ndim; d++) {
    bool drop = t->shape[d] == 1 && (only < 0 || only == d);
    if (drop) continue;
    shape[n] = t->shape[d];
    stride[n++] = t->stride[d];
  }
  return reshaped(tensor_view_of(t, n, shape, stride, t->offset), t, "squeeze");
}

fc_tensor *fc_unsqueeze(fc_tensor *t, int dim) {
  if (check_one("unsqueeze", t) < 0) return NULL;
  if (t->ndim >= FC_MAX_DIMS) FAIL("unsqueeze: tensor already has %d dims", FC_MAX_DIMS);
  if (dim < -(t->ndim + 1) || dim > t->ndim)
    FAIL("unsqueeze: dim %d out of range for a %d-dim tensor", dim, t->ndim);
  if (dim < 0) dim += t->ndim + 1;
  int64_t shape[FC_MAX_DIMS], stride[FC_MAX_DIMS];
  for (int d = 0, s = 0; d <= t->ndim; d++) {
    if (d == dim) {
      shape[d] = 1;
      stride[d] = d < t->ndim ? t->shape[s] * t->stride[s] : 1;
    } else {
      shape[d] = t->shape[s];
      stride[d] = t->stride[s++];
    }
  }
  return reshaped(tensor_view_of(t, t->ndim + 1, shape, stride, t->offset), t, "unsqueeze");
}

fc_tensor *fc_expand(fc_tensor *t, int ndim, const int64_t *shape) {
  if (check_one("expand", t) < 0) return NULL;
  if (ndim < t->ndim || ndim > FC_MAX_DIMS)
    FAIL("expand: cannot expand shape %s to %d dims", SHAPE(t), ndim);
  int64_t s[FC_MAX_DIMS], st[FC_MAX_DIMS];
  int lead = ndim - t->ndim;
  for (int d = 0; d < ndim; d++) {
    int td = d - lead;
    int64_t have = td >= 0 ? t->shape[td] : 1;
    int64_t want = shape[d] == -1 && td >= 0 ? have : shape[d];
    if (want < 0 || (have != 1 && have != want))
      FAIL("expand: cannot expand shape %s to %s (size %lld vs %lld in dim %d)", SHAPE(t),
           dims_str(ndim, shape, (char[96]){0}, 96), (long long)have, (long long)shape[d], d - ndim);
    s[d] = want;
    st[d] = td >= 0 && have == want ? t->stride[td] : 0;
  }
  fc_tensor *out = tensor_view_of(t, ndim, s, st, t->offset);
  track(&out, t, "expand", expand_backward);
  return out;
}

fc_tensor *fc_flatten(fc_tensor *t, int start_dim, int end_dim) {
  if (check_one("flatten", t) < 0) return NULL;
  if (t->ndim == 0) return fc_reshape(t, 1, (int64_t[]){1});
  int a = wrap_dim("flatten", start_dim, t->ndim), b = a < 0 ? -1 : wrap_dim("flatten", end_dim, t->ndim);
  if (b < 0) return NULL;
  if (a > b) FAIL("flatten: start dim %d comes after end dim %d", start_dim, end_dim);
  int64_t shape[FC_MAX_DIMS];
  int n = 0;
  for (int d = 0; d < t->ndim; d++) {
    if (d > a && d <= b) shape[n - 1] *= t->shape[d];
    else shape[n++] = t->shape[d];
  }
  return fc_reshape(t, n, shape);
}

fc_tensor *fc_slice(fc_tensor *t, int dim, int64_t start, int64_t end, int64_t step) {
  if (check_one("slice", t) < 0) return NULL;
  int d = wrap_dim("slice", dim, t->ndim);
  if (d < 0) return NULL;
  if (t->ndim == 0) FAIL("slice: cannot slice a 0-dim tensor");
  if (step <= 0) FAIL("slice: step must be positive, got %lld", (long long)step);
  int64_t size = t->shape[d];
  if (start < 0) start += size;
  if (end < 0) end += size;
  if (start < 0) start = 0;
  if (end > size) end = size;
  if (start > size) start = size;
  if (end < start) end = start;
  int64_t shape[FC_MAX_DIMS], stride[FC_MAX_DIMS];
  memcpy(shape, t->shape, sizeof shape);
  memcpy(stride, t->stride, sizeof stride);
  shape[d] = (end - start + step - 1) / step;
  stride[d] *= step;
  fc_tensor *out = tensor_view_of(t, t->ndim, shape, stride, t->offset + start * t->stride[d]);
  fc_node *n = track(&out, t, "slice", slice_backward);
  if (n) n->iarg[0] = d, n->iarg[1] = start, n->iarg[2] = end, n->iarg[3] = step;
  return out;
}

fc_tensor *fc_narrow(fc_tensor *t, int dim, int64_t start, int64_t length) {
  if (check_one("narrow", t) < 0) return NULL;
  int d = wrap_dim("narrow", dim, t->ndim);
  if (d < 0) return NULL;
  if (t->ndim == 0) FAIL("narrow: cannot narrow a 0-dim tensor");
  if (start < 0 || length < 0 || start + length > t->shape[d])
    FAIL("narrow: range [%lld, %lld) out of bounds for dim of size %lld", (long long)start,
         (long long)(start + length), (long long)t->shape[d]);
  return fc_slice(t, d, start, start + length, 1);
}

fc_tensor *fc_select(fc_tensor *t, int dim, int64_t index) {
  if (check_one("select", t) < 0) return NULL;
  if (t->ndim == 0) FAIL("select: cannot index a 0-dim tensor");
  int d = wrap_dim("select", dim, t->ndim);
  if (d < 0) return NULL;
  int64_t size = t->shape[d];
  if (index < -size || index >= size)
    FAIL("select: index %lld out of range for dim of size %lld", (long long)index, (long long)size);
  if (index < 0) index += size;
  int64_t shape[FC_MAX_DIMS], stride[FC_MAX_DIMS];
  for (int i = 0, n = 0; i < t->ndim; i++) {
    if (i == d) continue;
    shape[n] = t->shape[i];
    stride[n++] = t->stride[i];
  }
  fc_tensor *out = tensor_view_of(t, t->ndim - 1, shape, stride, t->offset + index * t->stride[d]);
  fc_node *n = track(&out, t, "select", slice_backward);
  if (n) n->iarg[0] = d, n->iarg[1] = index, n->iarg[4] = 1;
  return out;
}

fc_tensor *fc_as_strided(fc_tensor *t, int ndim, const int64_t *shape, const int64_t *stride,
                         int64_t offset) {
  if (check_one("as_strided", t) < 0) return NULL;
  if (grad_needed(1, &t)) FAIL("as_strided: not differentiable; detach() the input first");
  if (ndim < 0 || ndim > FC_MAX_DIMS) FAIL("as_strided: %d dims, at most %d", ndim, FC_MAX_DIMS);
  int64_t last = offset, cap = (int64_t)(t->storage->nbytes / (size_t)fc_dtype_size(t->dtype));
  for (int d = 0; d < ndim; d++) {
    if (shape[d] < 0 || stride[d] < 0) FAIL("as_strided: negative size or stride");
    if (shape[d] > 0) last += (shape[d] - 1) * stride[d];
  }
  if (offset < 0 || (shape_numel(ndim, shape) > 0 && last >= cap))
    FAIL("as_strided: view reaches element %lld of a storage of %lld elements", (long long)last,
         (long long)cap);
  return tensor_view_of(t, ndim, shape, stride, offset);
}
